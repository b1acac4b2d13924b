/* generate.c: `megatron-c generate`, text generation from a checkpoint with a
 * KV cache. Deterministic for a fixed --seed; greedy at --temperature 0. */
#include "core/args.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "cmd/commands.h"
#include "cmd/common.h"
#include "infer/generate.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct gen_args {
    const char *load, *prompt, *backend, *vocab_file, *merge_file;
    long ckpt_step, seed;
    int max_new_tokens, top_k, tf32;
    float temperature, top_p;
};

#define F(field) offsetof(struct gen_args, field)
static const struct mt_arg_spec SPECS[] = {
    MT_SPECS_LOAD,
    {"prompt", MT_ARG_STRING, F(prompt), "TEXT", "text to continue (default: a newline)"},
    {"max-new-tokens", MT_ARG_INT, F(max_new_tokens), "N", "tokens to generate (100)"},
    {"temperature", MT_ARG_FLOAT, F(temperature), "X", "sampling temperature; 0 = greedy (1.0)"},
    {"top-k", MT_ARG_INT, F(top_k), "K", "sample from the K most likely tokens (0 = all)"},
    {"top-p", MT_ARG_FLOAT, F(top_p), "P", "nucleus sampling threshold (0 or 1 = off)"},
    {"seed", MT_ARG_LONG, F(seed), "N", "random seed (1234)"},
    MT_SPECS_BACKEND,
    MT_SPECS_BPE_FILES,
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

int mt_cmd_generate(int argc, char **argv)
{
    struct gen_args a = {.backend = "cpu", .ckpt_step = -1, .seed = 1234, .max_new_tokens = 100,
                         .temperature = 1.0f, .prompt = "\n"};
    mt_args_parse(SPECS, NSPECS, &a, NULL, argc, argv, 2, "generate",
                  "Continues --prompt with text from a trained checkpoint and prints it.");
    if (!a.load) mt_user_error("write --load DIR, the --save directory of a training run",
                               "generate needs --load");
    if (a.max_new_tokens < 0) mt_user_error(NULL, "--max-new-tokens must not be negative");
    if (a.temperature < 0) mt_user_error(NULL, "--temperature must not be negative");
    if (a.top_k < 0) mt_user_error(NULL, "--top-k must not be negative");
    if (a.top_p < 0 || a.top_p > 1) mt_user_error(NULL, "--top-p must lie in [0, 1]");

    struct mt_model_source ck;
    mt_cmd_open_source(&ck, a.load, a.ckpt_step, "generate");
    mt_cmd_need_decoder(&ck, "generate text");
    struct mt_tokenizer tok;
    mt_cmd_open_tokenizer(&ck, &tok, a.vocab_file, a.merge_file);
    mt_backend *be = mt_backend_open(a.backend, a.tf32);
    struct mt_model m;
    mt_cmd_load_model(&ck, &m, be, 1, ck.desc.model.max_position_embeddings);

    size_t np;
    int32_t *prompt = mt_tokenizer_encode_prompt(&tok, a.prompt, &np);
    if (np == 0) mt_user_error("give a non-empty --prompt", "the prompt encodes to no tokens");
    struct mt_rng rng;
    mt_rng_seed(&rng, (uint64_t)a.seed, 3);
    fputs(a.prompt, stdout);
    mt_generate(&m, &tok, prompt, (int)np, a.max_new_tokens, a.temperature, a.top_k, a.top_p,
                &rng, stdout);
    fputc('\n', stdout);
    free(prompt);
    mt_model_free(&m);
    mt_backend_free(be);
    mt_tokenizer_close(&tok);
    mt_cmd_close_source(&ck);
    return 0;
}
