/* openai_api.c: POST /v1/completions (and /completions) in the form of
 * OpenAI's legacy completions API, as vLLM and Megatron's dynamic server
 * serve it: prompt (a string, a list of strings, a list of token ids or
 * a list of such lists), max_tokens (16), temperature (1; 0 is greedy),
 * top_p (1), top_k (vLLM's; 0 or -1 = off), n, stop, seed, echo, logprobs
 * (the number of top tokens per position, up to 20), ignore_eos.
 * echo with logprobs scores the prompt's tokens too, the first one null:
 * lm-evaluation-harness's log-likelihood requests (max_tokens 1) read the
 * prompt's part. The end-of-document token stops a choice (finish_reason
 * "stop") and is left out of its text; so does a stop string, the text cut
 * before it. */
#include "serve/api_internal.h"
#include "core/error.h"
#include "infer/complete.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STOPS 16
#define MAX_TOP_LOGPROBS 20
#define MAX_N 16

struct oa_request {
    int nprompts, n, max_tokens, top_k, echo, logprobs, ignore_eos;
    int32_t **ids;
    size_t *len;
    double temperature, top_p;
    const char *stops[MAX_STOPS];
    int nstop;
    long long seed;
    int has_seed;
};

/* one prompt (a string or a list of ids) into slot i */
static void add_prompt(struct mt_server *s, struct oa_request *r, const struct mt_jvalue *v, int i,
                       struct mt_req_error *e)
{
    char what[32];
    snprintf(what, sizeof what, "prompt[%d]", i);
    if (v->type == MT_J_STRING) {
        r->ids[i] = mt_req_encode(s->tok, v->str, strlen(v->str), &r->len[i]);
        if (r->len[i] == 0 && s->tok->eod >= 0) r->ids[i][0] = s->tok->eod, r->len[i] = 1; /* as OpenAI's default prompt */
    } else if (v->type == MT_J_ARRAY) {
        mt_req_ids(v, s->tok, what, &r->ids[i], &r->len[i], e);
    } else {
        mt_req_fail(e, 400, "%s is neither a string nor a list of token ids", what);
    }
    if (!e->status && r->len[i] == 0) mt_req_fail(e, 400, "%s is empty", what);
}

static void parse(struct mt_server *s, const struct mt_jvalue *b, struct oa_request *r, struct mt_req_error *e)
{
    const struct mt_jvalue *p = mt_json_get(b, "prompt");
    if (!p) {
        mt_req_fail(e, 400, "prompt is required (a string, a list of strings or of token ids)");
        return;
    }
    /* a list of numbers is one prompt of token ids; other lists hold prompts */
    const int many = p->type == MT_J_ARRAY && !(p->n > 0 && p->v[0].type == MT_J_NUMBER);
    r->nprompts = many ? p->n : 1;
    if (r->nprompts == 0) mt_req_fail(e, 400, "prompt is an empty list");
    if (r->nprompts > s->max_prompts)
        mt_req_fail(e, 400, "%d prompts exceed the limit of %d per request", r->nprompts, s->max_prompts);
    if (e->status) return;
    r->ids = calloc((size_t)r->nprompts, sizeof *r->ids);
    r->len = calloc((size_t)r->nprompts, sizeof *r->len);
    if (!r->ids || !r->len) mt_die("out of memory");
    for (int i = 0; i < r->nprompts && !e->status; i++) add_prompt(s, r, many ? &p->v[i] : p, i, e);

    r->max_tokens = (int)mt_req_int(b, "max_tokens", 16, 0, s->max_tokens, e);
    r->temperature = mt_req_num(b, "temperature", 1.0, 0.0, 100.0, e);
    r->top_p = mt_req_num(b, "top_p", 1.0, 0.0, 1.0, e);
    if (!e->status && r->top_p <= 0.0) mt_req_fail(e, 400, "top_p must be in (0, 1]");
    r->top_k = (int)mt_req_int(b, "top_k", 0, -1, 1 << 30, e);
    if (r->top_k < 0) r->top_k = 0;
    r->n = (int)mt_req_int(b, "n", 1, 1, MAX_N, e);
    r->echo = mt_req_bool(b, "echo", 0, e);
    const struct mt_jvalue *lp = mt_json_get(b, "logprobs");
    if (lp && lp->type == MT_J_BOOL) r->logprobs = lp->num ? 0 : -1; /* true: the token's own only */
    else r->logprobs = (int)mt_req_int(b, "logprobs", -1, 0, MAX_TOP_LOGPROBS, e);
    r->ignore_eos = mt_req_bool(b, "ignore_eos", 0, e);
    r->has_seed = mt_json_get(b, "seed") && mt_json_get(b, "seed")->type != MT_J_NULL;
    r->seed = mt_req_int(b, "seed", 0, -(1LL << 53), 1LL << 53, e);
    if (mt_req_bool(b, "stream", 0, e)) mt_req_fail(e, 400, "stream is not supported: ask without \"stream\"");
    if (mt_req_num(b, "presence_penalty", 0, -2, 2, e) != 0 || mt_req_num(b, "frequency_penalty", 0, -2, 2, e) != 0)
        mt_req_fail(e, 400, "presence_penalty and frequency_penalty are not supported by megatron-c");
    if (mt_req_int(b, "best_of", 1, 1, MAX_N, e) != 1) mt_req_fail(e, 400, "best_of is not supported by megatron-c");
    const struct mt_jvalue *bias = mt_json_get(b, "logit_bias");
    if (bias && bias->type == MT_J_OBJECT && bias->n > 0)
        mt_req_fail(e, 400, "logit_bias is not supported by megatron-c");
    const struct mt_jvalue *st = mt_json_get(b, "stop");
    if (st && st->type == MT_J_STRING) {
        r->stops[r->nstop++] = st->str;
    } else if (st && st->type == MT_J_ARRAY) {
        if (st->n > MAX_STOPS) mt_req_fail(e, 400, "stop holds %d strings; at most %d", st->n, MAX_STOPS);
        for (int i = 0; i < st->n && !e->status; i++) {
            if (st->v[i].type != MT_J_STRING) mt_req_fail(e, 400, "stop[%d] is not a string", i);
            else r->stops[r->nstop++] = st->v[i].str;
        }
    } else if (st && st->type != MT_J_NULL) {
        mt_req_fail(e, 400, "stop must be a string or a list of strings");
    }
    for (int i = 0; i < r->nprompts && !e->status; i++)
        if ((long)r->len[i] + r->max_tokens > s->m->T)
            mt_req_fail(e, 400, "This model's maximum context length is %d tokens; prompt %d has %zu tokens and "
                        "max_tokens is %d", s->m->T, i, r->len[i], r->max_tokens);
}

/* the character count of s[0, upto): each valid UTF-8 sequence and each
 * stray byte one character, as the JSON text shows them */
static long chars_before(const char *s, size_t n, size_t upto)
{
    long k = 0;
    for (size_t i = 0; i < upto && i < n; k++) {
        size_t l = mt_utf8_valid_len((const unsigned char *)s + i, n - i);
        i += l ? l : 1;
    }
    return k;
}

static void write_logprobs(struct mt_server *s, const struct oa_request *r, const struct mt_completion *c,
                           const char *text, size_t tlen, struct mt_strbuf *b)
{
    const int from = r->echo ? 0 : c->nprompt, N = r->logprobs > 0 ? r->logprobs : 0;
    mt_sb_puts(b, "{\"tokens\": [");
    for (int i = from; i < c->n; i++) {
        mt_sb_puts(b, i > from ? ", " : "");
        mt_req_token_str(b, s->tok, c->ids[i]);
    }
    mt_sb_puts(b, "], \"token_logprobs\": [");
    for (int i = from; i < c->n; i++) {
        mt_sb_puts(b, i > from ? ", " : "");
        mt_sb_json_num(b, c->lp[i]);
    }
    mt_sb_puts(b, "], \"top_logprobs\": [");
    for (int i = from; i < c->n; i++) {
        mt_sb_puts(b, i > from ? ", " : "");
        if (i == 0 || N == 0) {
            mt_sb_puts(b, "null");
            continue;
        }
        mt_sb_puts(b, "{");
        for (int j = 0; j < N; j++) {
            mt_sb_puts(b, j ? ", " : "");
            mt_req_token_str(b, s->tok, c->top_ids[(size_t)i * N + j]);
            mt_sb_puts(b, ": ");
            mt_sb_json_num(b, c->top_lp[(size_t)i * N + j]);
        }
        mt_sb_puts(b, "}");
    }
    /* offsets into prompt + completion (the prompt's own text when not echoed) */
    mt_sb_puts(b, "], \"text_offset\": [");
    size_t at = 0;
    char piece[MT_TOKEN_MAX_BYTES];
    long base = 0;
    if (!r->echo) {
        size_t plen;
        struct mt_completion head = *c;
        head.n = c->nprompt;
        char *pt = mt_completion_text(s->tok, &head, 0, 0, &plen);
        base = chars_before(pt, plen, plen);
        free(pt);
    }
    for (int i = from; i < c->n; i++) {
        mt_sb_printf(b, "%s%ld", i > from ? ", " : "", base + chars_before(text, tlen, at));
        at += s->tok->decode_token(s->tok, c->ids[i], piece);
    }
    mt_sb_puts(b, "]}");
}

void mt_api_completions(struct mt_server *s, const struct mt_jvalue *body, struct mt_http_response *res)
{
    struct oa_request r = {0};
    struct mt_req_error e = {0};
    parse(s, body, &r, &e);
    if (e.status) {
        mt_api_openai_error(res, &e);
    } else {
        struct mt_rng rng;
        mt_rng_seed(&rng, r.has_seed ? (uint64_t)r.seed : mt_rng_u64(&s->rng), 3);
        const int N = r.logprobs > 0 ? r.logprobs : 0;
        const struct mt_complete_params p = {
            .max_new = r.max_tokens, .temperature = (float)r.temperature, .top_k = r.top_k,
            .top_p = r.top_p < 1.0 ? (float)r.top_p : 0.0f, .score_prompt = r.echo && r.logprobs >= 0,
            .top_n = N, .stop_at_eod = !r.ignore_eos, .stop = r.stops, .nstop = r.nstop};
        const char *model = mt_json_get_str(body, "model");
        if (!model) model = s->model_name;
        struct mt_strbuf *b = &res->body;
        mt_sb_printf(b, "{\"id\": \"cmpl-%ld\", \"object\": \"text_completion\", \"created\": %ld, \"model\": ",
                     s->requests, (long)time(NULL));
        mt_sb_json_str(b, model, strlen(model));
        mt_sb_puts(b, ", \"choices\": [");
        long prompt_tokens = 0, completion_tokens = 0;
        for (int i = 0; i < r.nprompts; i++) {
            prompt_tokens += (long)r.len[i] * r.n;
            for (int k = 0; k < r.n; k++) {
                struct mt_completion c;
                mt_complete(s->m, s->tok, r.ids[i], (int)r.len[i], &p, &rng, &c);
                completion_tokens += c.n - c.nprompt;
                size_t tlen;
                char *text = mt_completion_text(s->tok, &c, r.echo ? 0 : c.nprompt, 1, &tlen);
                mt_sb_printf(b, "%s{\"index\": %d, \"text\": ", i || k ? ", " : "", i * r.n + k);
                mt_sb_json_str(b, text, tlen);
                mt_sb_puts(b, ", \"logprobs\": ");
                if (r.logprobs >= 0) write_logprobs(s, &r, &c, text, tlen, b);
                else mt_sb_puts(b, "null");
                mt_sb_printf(b, ", \"finish_reason\": \"%s\"}", c.finish == MT_FINISH_LENGTH ? "length" : "stop");
                free(text);
                mt_completion_free(&c);
            }
        }
        mt_sb_printf(b, "], \"usage\": {\"prompt_tokens\": %ld, \"completion_tokens\": %ld, \"total_tokens\": %ld}}",
                     prompt_tokens, completion_tokens, prompt_tokens + completion_tokens);
    }
    for (int i = 0; i < r.nprompts && r.ids; i++) free(r.ids[i]);
    free(r.ids);
    free(r.len);
}
