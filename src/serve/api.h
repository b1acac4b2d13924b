/* api.h: the generation server's endpoints over one loaded model.
 *   PUT  /api               Megatron's text-generation API (prompts, tokens_to_generate, ...)
 *   POST /v1/completions    OpenAI-style completions (also /completions), what
 *                           lm-evaluation-harness's local-completions model calls
 *   GET  /v1/models, GET /health
 *   POST /tokenize, POST /detokenize, GET /tokenizer_info
 *                           vLLM's tokenizer endpoints, which lm-evaluation-harness
 *                           uses as its "remote" tokenizer
 * Requests run one at a time on the serving thread (serve/http.h). */
#ifndef MT_SERVE_API_H
#define MT_SERVE_API_H
#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "serve/http.h"

struct mt_server {
    struct mt_model *m;            /* serial, B = 1, T = the context */
    const struct mt_tokenizer *tok;
    const char *model_name;        /* /v1/models and the "model" of answers */
    int max_tokens;                /* tokens one request may ask to generate, per prompt */
    int max_prompts;               /* prompts in one request */
    struct mt_rng rng;             /* seeds for requests that give none */
    long created;                  /* when the server started (Unix time) */
    long requests;                 /* answered so far: the ids of completions */
};

/* The mt_http_handler of the server (ctx: struct mt_server). */
void mt_serve_handle(void *ctx, const struct mt_http_request *req, struct mt_http_response *res);

#endif /* MT_SERVE_API_H */
