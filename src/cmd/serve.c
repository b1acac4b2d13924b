/* serve.c: `megatron-c serve`, the generation server: a checkpoint behind
 * Megatron's PUT /api and OpenAI-style POST /v1/completions (serve/api.h)
 * on loopback unless --host says otherwise. SIGTERM or Ctrl-C stops it
 * after the requests that have arrived are answered. */
#include "cmd/commands.h"
#include "cmd/common.h"
#include "core/args.h"
#include "core/error.h"
#include "serve/api.h"
#include "serve/http.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct serve_args {
    const char *load, *backend, *vocab_file, *merge_file, *host, *name;
    long ckpt_step, seed, max_request_bytes;
    int port, max_tokens, max_prompts, max_connections, timeout, quiet, tf32;
};

#define F(field) offsetof(struct serve_args, field)
static const struct mt_arg_spec SPECS[] = {
    MT_SPECS_LOAD,
    {"host", MT_ARG_STRING, F(host), "ADDR", "address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)"},
    {"port", MT_ARG_INT, F(port), "N", "port to listen on (5000, Megatron's; 0 = any free port, printed)"},
    {"served-model-name", MT_ARG_STRING, F(name), "NAME", "the model's name in /v1/models and answers (default: the --load directory's name)"},
    {"max-tokens", MT_ARG_INT, F(max_tokens), "N", "tokens one prompt may ask to generate (default: the model's context)"},
    {"max-prompts", MT_ARG_INT, F(max_prompts), "N", "prompts in one request (128, Megatron's limit)"},
    {"max-request-bytes", MT_ARG_LONG, F(max_request_bytes), "N", "largest request body; larger ones get 413 (1048576)"},
    {"max-connections", MT_ARG_INT, F(max_connections), "N", "requests in flight at once, queued; more get 503 (64)"},
    {"timeout", MT_ARG_INT, F(timeout), "S", "seconds a client may take to send its request or read the answer (30)"},
    {"seed", MT_ARG_LONG, F(seed), "N", "seeds the sampling of requests that give no seed (1234)"},
    {"quiet", MT_ARG_BOOL, F(quiet), NULL, "no access log line per request on stdout"},
    MT_SPECS_BACKEND,
    MT_SPECS_BPE_FILES,
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static void on_listen(void *ctx, const char *address, int port)
{
    struct mt_server *s = ctx;
    const int v6 = strchr(address, ':') != NULL;
    printf("megatron-c serve: %s (%d layers, hidden %d, context %d, %s tokenizer)\n", s->model_name,
           s->m->cfg.num_layers, s->m->cfg.hidden_size, s->m->T, s->tok->type);
    printf("listening on http://%s%s%s:%d  (PUT /api, POST /v1/completions, GET /v1/models, GET /health)\n",
           v6 ? "[" : "", address, v6 ? "]" : "", port);
    printf("stop with Ctrl-C or SIGTERM\n");
    fflush(stdout);
}

static const char *base_name(const char *path, char *buf, size_t cap)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), path + b);
    return buf;
}

int mt_cmd_serve(int argc, char **argv)
{
    struct serve_args a = {.backend = "cpu", .ckpt_step = -1, .host = "127.0.0.1", .port = 5000,
                           .max_prompts = 128, .max_request_bytes = 1 << 20, .max_connections = 64,
                           .timeout = 30, .seed = 1234};
    mt_args_parse(SPECS, NSPECS, &a, NULL, argc, argv, 2, "serve",
                  "Serves text generation from a checkpoint over HTTP: Megatron's PUT /api and OpenAI-style\n"
                  "POST /v1/completions (lm-evaluation-harness's local-completions model).");
    if (!a.load) mt_user_error("write megatron-c serve --load DIR", "serve needs --load");
    if (a.port < 0 || a.port > 65535) mt_user_error(NULL, "--port %d is not a port (0..65535)", a.port);
    if (a.max_tokens < 0) mt_user_error(NULL, "--max-tokens must not be negative");
    if (a.max_prompts < 1) mt_user_error(NULL, "--max-prompts must be at least 1");
    if (a.max_request_bytes < 1) mt_user_error(NULL, "--max-request-bytes must be at least 1");
    if (a.max_connections < 1) mt_user_error(NULL, "--max-connections must be at least 1");
    if (a.timeout < 1) mt_user_error(NULL, "--timeout must be at least 1 second");

    struct mt_model_source src;
    mt_cmd_open_source(&src, a.load, a.ckpt_step, "serve");
    mt_cmd_need_decoder(&src, "serve generations");
    struct mt_tokenizer tok;
    mt_cmd_open_tokenizer(&src, &tok, a.vocab_file, a.merge_file);
    mt_backend *be = mt_backend_open(a.backend, a.tf32);
    struct mt_model m;
    const int T = src.desc.model.max_position_embeddings;
    mt_cmd_load_model(&src, &m, be, 1, T);

    char name[256];
    struct mt_server s = {.m = &m, .tok = &tok, .model_name = a.name ? a.name : base_name(a.load, name, sizeof name),
                          .max_tokens = a.max_tokens && a.max_tokens < T ? a.max_tokens : T,
                          .max_prompts = a.max_prompts, .created = (long)time(NULL)};
    mt_rng_seed(&s.rng, (uint64_t)a.seed, 11);
    const struct mt_http_options opt = {.host = a.host, .port = a.port, .max_body = (size_t)a.max_request_bytes,
                                        .max_connections = a.max_connections, .timeout_s = a.timeout,
                                        .access_log = !a.quiet};
    mt_http_serve(&opt, mt_serve_handle, &s, on_listen);
    printf("megatron-c serve: stopped after %ld request%s\n", s.requests, s.requests == 1 ? "" : "s");
    mt_model_free(&m);
    mt_backend_free(be);
    mt_tokenizer_close(&tok);
    mt_cmd_close_source(&src);
    return 0;
}
