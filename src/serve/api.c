/* api.c: the server's routing, the request-field readers, and the small
 * endpoints (health, models, the tokenizer endpoints). See api.h. */
#include "serve/api_internal.h"
#include "core/error.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_req_fail(struct mt_req_error *e, int status, const char *fmt, ...)
{
    if (e->status) return -1;
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct mt_jvalue *member(const struct mt_jvalue *o, const char *key)
{
    const struct mt_jvalue *v = mt_json_get(o, key);
    return v && v->type != MT_J_NULL ? v : NULL;
}

long long mt_req_int(const struct mt_jvalue *o, const char *key, long long def, long long lo, long long hi,
                     struct mt_req_error *e)
{
    const struct mt_jvalue *v = member(o, key);
    if (!v || e->status) return def;
    if (v->type != MT_J_NUMBER || v->num != floor(v->num) || v->num < (double)lo || v->num > (double)hi) {
        mt_req_fail(e, 400, "%s must be an integer in [%lld, %lld]", key, lo, hi);
        return def;
    }
    return (long long)v->num;
}

double mt_req_num(const struct mt_jvalue *o, const char *key, double def, double lo, double hi,
                  struct mt_req_error *e)
{
    const struct mt_jvalue *v = member(o, key);
    if (!v || e->status) return def;
    if (v->type != MT_J_NUMBER || !isfinite(v->num) || v->num < lo || v->num > hi) {
        mt_req_fail(e, 400, "%s must be a number in [%g, %g]", key, lo, hi);
        return def;
    }
    return v->num;
}

int mt_req_bool(const struct mt_jvalue *o, const char *key, int def, struct mt_req_error *e)
{
    const struct mt_jvalue *v = member(o, key);
    if (!v || e->status) return def;
    if (v->type != MT_J_BOOL) {
        mt_req_fail(e, 400, "%s must be true or false", key);
        return def;
    }
    return v->num != 0;
}

/* the end-of-document token's text, or NULL */
static const char *eod_text(const struct mt_tokenizer *tok, char *buf)
{
    if (tok->eod < 0) return NULL;
    size_t k = tok->decode_token(tok, tok->eod, buf);
    buf[k] = '\0';
    return k > 1 ? buf : NULL; /* a tokenizer whose end of document is one plain byte has no special text */
}

int32_t *mt_req_encode(const struct mt_tokenizer *tok, const char *text, size_t len, size_t *n)
{
    char buf[MT_TOKEN_MAX_BYTES + 1];
    const char *eod = eod_text(tok, buf);
    int32_t *ids = NULL;
    size_t cap = 0;
    *n = 0;
    const size_t L = eod ? strlen(eod) : 0;
    size_t start = 0;
    for (size_t i = 0; eod && i + L <= len; i++) {
        if (memcmp(text + i, eod, L) != 0) continue;
        if (i > start) tok->encode(tok, text + start, i - start, &ids, n, &cap);
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            ids = realloc(ids, cap * sizeof *ids);
            if (!ids) mt_die("out of memory");
        }
        ids[(*n)++] = tok->eod;
        start = i + L;
        i += L - 1;
    }
    if (len > start) tok->encode(tok, text + start, len - start, &ids, n, &cap);
    if (!ids && !(ids = malloc(sizeof *ids))) mt_die("out of memory");
    return ids;
}

int mt_req_ids(const struct mt_jvalue *a, const struct mt_tokenizer *tok, const char *what, int32_t **ids,
               size_t *n, struct mt_req_error *e)
{
    if (a->type != MT_J_ARRAY) {
        mt_req_fail(e, 400, "%s must be a list of token ids", what);
        return -1;
    }
    int32_t *out = malloc((size_t)(a->n ? a->n : 1) * sizeof *out);
    if (!out) mt_die("out of memory");
    for (int i = 0; i < a->n; i++) {
        const struct mt_jvalue *x = &a->v[i];
        if (x->type != MT_J_NUMBER || x->num != floor(x->num) || x->num < 0 || x->num >= tok->vocab_size) {
            mt_req_fail(e, 400, "%s[%d] is not a token id of this model's vocabulary [0, %d)", what, i,
                        tok->vocab_size);
            free(out);
            return -1;
        }
        out[i] = (int32_t)x->num;
    }
    *ids = out;
    *n = (size_t)a->n;
    return 0;
}

void mt_req_token_str(struct mt_strbuf *b, const struct mt_tokenizer *tok, int32_t id)
{
    char buf[MT_TOKEN_MAX_BYTES];
    size_t k = tok->decode_token(tok, id, buf);
    mt_sb_json_str(b, buf, k);
}

void mt_api_openai_error(struct mt_http_response *res, const struct mt_req_error *e)
{
    res->status = e->status;
    mt_sb_free(&res->body);
    mt_sb_puts(&res->body, "{\"error\": {\"message\": ");
    mt_sb_json_str(&res->body, e->msg, strlen(e->msg));
    mt_sb_printf(&res->body, ", \"type\": \"%s\", \"param\": null, \"code\": null}}",
                 e->status >= 500 ? "server_error" : "invalid_request_error");
}

/* ---- the small endpoints ------------------------------------------------------ */

static void models(struct mt_server *s, struct mt_http_response *res)
{
    mt_sb_puts(&res->body, "{\"object\": \"list\", \"data\": [{\"id\": ");
    mt_sb_json_str(&res->body, s->model_name, strlen(s->model_name));
    mt_sb_printf(&res->body, ", \"object\": \"model\", \"created\": %ld, \"owned_by\": \"megatron-c\", "
                 "\"max_model_len\": %d}]}", s->created, s->m->T);
}

static void tokenizer_info(struct mt_server *s, struct mt_http_response *res)
{
    char buf[MT_TOKEN_MAX_BYTES + 1];
    const char *eod = eod_text(s->tok, buf);
    struct mt_strbuf *b = &res->body;
    mt_sb_puts(b, "{\"tokenizer_type\": ");
    mt_sb_json_str(b, s->tok->type, strlen(s->tok->type));
    mt_sb_printf(b, ", \"vocab_size\": %d, \"model_max_length\": %d, \"eos_token\": ", s->tok->vocab_size, s->m->T);
    if (eod) mt_sb_json_str(b, eod, strlen(eod));
    else mt_sb_puts(b, "null");
    /* GPT-2's beginning of text is its end of text, as in Hugging Face's tokenizer */
    mt_sb_puts(b, ", \"bos_token\": ");
    if (eod) mt_sb_json_str(b, eod, strlen(eod));
    else mt_sb_puts(b, "null");
    mt_sb_puts(b, ", \"pad_token\": null}");
}

static void tokenize(struct mt_server *s, const struct mt_jvalue *body, struct mt_http_response *res)
{
    const char *text = mt_json_get_str(body, "prompt");
    if (!text) text = mt_json_get_str(body, "text");
    struct mt_req_error e = {0};
    mt_req_bool(body, "add_special_tokens", 0, &e); /* checked; GPT-2 adds none */
    if (!text) mt_req_fail(&e, 400, "tokenize needs \"prompt\" (a string)");
    if (e.status) {
        mt_api_openai_error(res, &e);
        return;
    }
    size_t n;
    int32_t *ids = mt_req_encode(s->tok, text, strlen(text), &n);
    mt_sb_puts(&res->body, "{\"tokens\": [");
    for (size_t i = 0; i < n; i++) mt_sb_printf(&res->body, "%s%d", i ? ", " : "", ids[i]);
    mt_sb_printf(&res->body, "], \"count\": %zu, \"max_model_len\": %d}", n, s->m->T);
    free(ids);
}

static void detokenize(struct mt_server *s, const struct mt_jvalue *body, struct mt_http_response *res)
{
    struct mt_req_error e = {0};
    const struct mt_jvalue *a = mt_json_get(body, "tokens");
    int32_t *ids = NULL;
    size_t n = 0;
    if (!a) mt_req_fail(&e, 400, "detokenize needs \"tokens\" (a list of token ids)");
    else mt_req_ids(a, s->tok, "tokens", &ids, &n, &e);
    if (e.status) {
        mt_api_openai_error(res, &e);
        return;
    }
    struct mt_strbuf text = {0};
    char buf[MT_TOKEN_MAX_BYTES];
    mt_sb_put(&text, "", 0);
    for (size_t i = 0; i < n; i++) mt_sb_put(&text, buf, s->tok->decode_token(s->tok, ids[i], buf));
    mt_sb_puts(&res->body, "{\"prompt\": ");
    mt_sb_json_str(&res->body, text.s, text.n);
    mt_sb_puts(&res->body, "}");
    mt_sb_free(&text);
    free(ids);
}

/* ---- routing ---------------------------------------------------------------- */

enum api { A_HEALTH, A_MODELS, A_MEGATRON, A_COMPLETIONS, A_TOKENIZE, A_DETOKENIZE, A_TOKINFO, A_INDEX };
static const struct route {
    const char *path, *method;
    enum api api;
} ROUTES[] = {
    {"/health", "GET", A_HEALTH},           {"/v1/models", "GET", A_MODELS},
    {"/api", "PUT", A_MEGATRON},            {"/v1/completions", "POST", A_COMPLETIONS},
    {"/completions", "POST", A_COMPLETIONS}, {"/tokenize", "POST", A_TOKENIZE},
    {"/detokenize", "POST", A_DETOKENIZE},  {"/tokenizer_info", "GET", A_TOKINFO},
    {"/", "GET", A_INDEX},
};
#define NROUTES ((int)(sizeof ROUTES / sizeof ROUTES[0]))

static void index_page(struct mt_http_response *res)
{
    mt_sb_puts(&res->body, "{\"server\": \"megatron-c\", \"endpoints\": [");
    for (int i = 0; i < NROUTES - 1; i++)
        mt_sb_printf(&res->body, "%s\"%s %s\"", i ? ", " : "", ROUTES[i].method, ROUTES[i].path);
    mt_sb_puts(&res->body, "]}");
}

void mt_serve_handle(void *ctx, const struct mt_http_request *req, struct mt_http_response *res)
{
    struct mt_server *s = ctx;
    s->requests++;
    const struct route *r = NULL;
    for (int i = 0; i < NROUTES && !r; i++)
        if (strcmp(req->path, ROUTES[i].path) == 0) r = &ROUTES[i];
    struct mt_req_error e = {0};
    if (!r) {
        mt_req_fail(&e, 404, "no endpoint %s: this server has PUT /api, POST /v1/completions, GET /v1/models, "
                    "GET /health, POST /tokenize, POST /detokenize, GET /tokenizer_info", req->path);
        mt_api_openai_error(res, &e);
        return;
    }
    if (strcmp(req->method, r->method) != 0) {
        mt_req_fail(&e, 405, "%s takes %s, not %s", r->path, r->method, req->method);
        mt_api_openai_error(res, &e);
        res->allow = r->method;
        return;
    }
    switch (r->api) {
    case A_HEALTH: mt_sb_puts(&res->body, "{\"status\": \"ok\"}"); return;
    case A_MODELS: models(s, res); return;
    case A_TOKINFO: tokenizer_info(s, res); return;
    case A_INDEX: index_page(res); return;
    default: break;
    }
    /* the endpoints with a JSON object as their body */
    struct mt_jvalue body;
    char err[200] = "";
    int bad = mt_json_parse(req->body, req->body_len, &body, err, sizeof err) != 0;
    if (!bad && body.type != MT_J_OBJECT) {
        mt_json_free(&body);
        snprintf(err, sizeof err, "a JSON value that is not an object");
        bad = 1;
    }
    if (bad) {
        mt_req_fail(&e, 400, "the body is not a JSON object: %s", req->body_len ? err : "it is empty");
        if (r->api == A_MEGATRON) { /* Megatron's server answers a bare message */
            res->status = 400;
            mt_sb_json_str(&res->body, e.msg, strlen(e.msg));
        } else {
            mt_api_openai_error(res, &e);
        }
        return;
    }
    switch (r->api) {
    case A_MEGATRON: mt_api_megatron(s, &body, res); break;
    case A_COMPLETIONS: mt_api_completions(s, &body, res); break;
    case A_TOKENIZE: tokenize(s, &body, res); break;
    case A_DETOKENIZE: detokenize(s, &body, res); break;
    default: break;
    }
    mt_json_free(&body);
}
