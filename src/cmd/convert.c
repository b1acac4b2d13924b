/* convert.c: `megatron-c convert`, checkpoints between megatron-c and
 * Hugging Face (src/interop/hf.h). The source format is detected: a
 * Hugging Face directory has config.json and model.safetensors (or a
 * sharded index), a megatron-c one latest_checkpointed_iteration.txt. */
#include "cmd/commands.h"
#include "cmd/common.h"
#include "ckpt/dist.h"
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "interop/hf.h"
#include "model/layout.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct convert_args {
    const char *load, *save, *save_format, *save_dtype, *tokenizer_type;
    long ckpt_step;
    int make_vocab_divisible_by;
};

#define F(field) offsetof(struct convert_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"load", MT_ARG_STRING, F(load), "DIR", "the checkpoint to convert: Hugging Face or megatron-c (required)"},
    {"save", MT_ARG_STRING, F(save), "DIR", "where to write it (required)"},
    {"save-format", MT_ARG_STRING, F(save_format), "FMT", "hf | megatron-c (default: the other one)"},
    {"save-dtype", MT_ARG_STRING, F(save_dtype), "T", "hf: f32 | bf16 | f16 (f32)"},
    {"ckpt-step", MT_ARG_LONG, F(ckpt_step), "N", "megatron-c source: the iteration (default: the latest)"},
    {"tokenizer-type", MT_ARG_STRING, F(tokenizer_type), "S",
     "Hugging Face source: the tokenizer recorded (GPT2BPETokenizer for GPT-2's vocabulary, else NullTokenizer)"},
    {"make-vocab-size-divisible-by", MT_ARG_INT, F(make_vocab_divisible_by), "N",
     "Hugging Face source: pad the vocabulary to a multiple of N (128)"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char *SYNOPSIS =
    "Converts a checkpoint between Hugging Face (GPT2LMHeadModel, LlamaForCausalLM:\n"
    "config.json + model.safetensors) and megatron-c. The converted model computes\n"
    "the source's function (the vocabulary padding takes no part in the softmax).";

/* A megatron-c checkpoint with the model's weights only (iteration 0, no
 * optimizer state: training from it starts a fine-tune). */
static void write_megatron(const char *dir, const struct mt_model_desc *d, const struct mt_param_table *t,
                           const float *data, const char *source)
{
    struct mt_kv kv = {0};
    mt_model_desc_to_kv(d, &kv);
    mt_kv_set(&kv, "iteration", "0");
    mt_kv_set(&kv, "consumed_train_samples", "0");
    mt_kv_set(&kv, "optimizer_step", "0");
    mt_kv_set(&kv, "has_optimizer", "0");
    mt_kv_set(&kv, "seq_length", "%d", d->model.max_position_embeddings);
    mt_kv_set(&kv, "converted_from", "%s", source);
    struct mt_ckpt_writer *w = mt_ckpt_writer_open(dir, 0, &kv, (uint32_t)t->n);
    char name[MT_PARAM_NAME_MAX + 16];
    for (int i = 0; i < t->n; i++) {
        snprintf(name, sizeof name, "model/%s", t->p[i].name);
        mt_ckpt_writer_tensor(w, name, &t->p[i], data + t->p[i].offset);
    }
    mt_ckpt_writer_close(w);
    mt_kv_free(&kv);
}

int mt_cmd_convert(int argc, char **argv)
{
    struct convert_args a = {.ckpt_step = -1, .make_vocab_divisible_by = 128, .save_dtype = "f32"};
    mt_args_parse(SPECS, NSPECS, &a, NULL, argc, argv, 2, "convert", SYNOPSIS);
    if (!a.load || !a.save)
        mt_user_error("write megatron-c convert --load SRC --save DST", "convert needs --load and --save");
    const int from_hf = mt_hf_is_dir(a.load);
    if (!from_hf && mt_ckpt_latest(a.load) < 0 && a.ckpt_step < 0)
        mt_user_error("--load takes a Hugging Face model directory (config.json, model.safetensors) or a "
                      "megatron-c checkpoint directory (latest_checkpointed_iteration.txt)",
                      "%s is neither a Hugging Face nor a megatron-c checkpoint", a.load);
    const char *format = a.save_format ? a.save_format : from_hf ? "megatron-c" : "hf";
    if (strcmp(format, "hf") != 0 && strcmp(format, "megatron-c") != 0)
        mt_user_error("use --save-format hf or megatron-c", "unknown --save-format '%s'", format);
    enum mt_st_dtype dtype = !strcmp(a.save_dtype, "f32") ? MT_ST_F32 : !strcmp(a.save_dtype, "bf16") ? MT_ST_BF16
                             : !strcmp(a.save_dtype, "f16") ? MT_ST_F16 : MT_ST_OTHER;
    if (dtype == MT_ST_OTHER) mt_user_error("use f32, bf16 or f16", "unknown --save-dtype '%s'", a.save_dtype);
    if (dtype != MT_ST_F32 && strcmp(format, "hf") != 0)
        mt_user_error("megatron-c checkpoints hold f32 master weights; --save-dtype is for --save-format hf",
                      "--save-dtype %s with --save-format megatron-c", a.save_dtype);
    if (a.make_vocab_divisible_by < 1) mt_user_error(NULL, "--make-vocab-size-divisible-by must be positive");

    /* never write over a checkpoint: a megatron-c one would have its latest
     * iteration moved back to 0 */
    if (mt_hf_is_dir(a.save) || mt_ckpt_latest(a.save) >= 0)
        mt_user_error("give --save a new or empty directory", "%s already holds a checkpoint", a.save);

    struct mt_model_source src;
    if (from_hf) mt_cmd_open_hf(&src, a.load, a.make_vocab_divisible_by, a.tokenizer_type);
    else mt_cmd_open_source(&src, a.load, a.ckpt_step, "convert");
    const struct mt_model_desc desc = src.desc;
    struct mt_param_table table;
    float *data = mt_cmd_weights(&src, &table);
    const char *what = from_hf ? src.hfm.architecture : "megatron-c checkpoint";
    const struct mt_transformer_config *c = &desc.model;
    if (strcmp(format, "hf") == 0) mt_hf_write(a.save, &desc, &table, data, dtype);
    else write_megatron(a.save, &desc, &table, data, a.load);
    printf("megatron-c convert: %s %s -> %s %s: %d layers, hidden %d, %d heads (%d key/value), vocab %d, "
           "%.2fM parameters\n", what, a.load, strcmp(format, "hf") == 0 ? "Hugging Face" : "megatron-c",
           a.save, c->num_layers, c->hidden_size, c->num_attention_heads, c->num_query_groups, c->vocab_size,
           (double)mt_config_param_count(c) / 1e6);
    mt_cmd_free_weights(&src, &table, data);
    mt_cmd_close_source(&src);
    return 0;
}
