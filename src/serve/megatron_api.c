/* megatron_api.c: PUT /api, Megatron's text-generation server
 * (tools/run_text_generation_server.py): the request fields, checks and
 * messages of its MegatronGenerate.put, answered with
 * {"text": [prompt + generation], "segments": [[token strings]],
 *  "logprobs": [[log p of each token after the first]] or null}.
 * Errors are a JSON string with status 400, as Flask-RESTful writes them.
 * Sampling as Megatron's: top_k 1 is greedy, otherwise the logits divided
 * by the temperature, top-k or top-p; the end-of-document token ends a
 * generation and stays in its text. Each prompt generates
 * tokens_to_generate tokens (Megatron's batch lets a shorter prompt run on
 * to the longest one's length). */
#include "serve/api_internal.h"
#include "core/error.h"
#include "infer/complete.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_request {
    int nprompts;
    const struct mt_jvalue *prompts;
    int tokens_to_generate, logprobs, top_k, add_bos;
    double temperature, top_p;
    const char *stops[2];
    int nstop;
    long long seed; /* -1: none given */
};

/* a field's error in Megatron's own words */
static int reword(struct mt_req_error *e, const char *msg)
{
    e->status = 400;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return -1;
}

static int parse(struct mt_server *s, const struct mt_jvalue *b, struct mg_request *r, struct mt_req_error *e)
{
    const struct mt_jvalue *p = mt_json_get(b, "prompts");
    if (!p) return mt_req_fail(e, 400, "prompts argument required");
    if (p->type != MT_J_ARRAY) return mt_req_fail(e, 400, "prompts is not a list of strings");
    if (p->n == 0) return mt_req_fail(e, 400, "prompts is empty");
    if (p->n > s->max_prompts)
        return mt_req_fail(e, 400, "Maximum number of prompts is %d", s->max_prompts);
    for (int i = 0; i < p->n; i++)
        if (p->v[i].type != MT_J_STRING) return mt_req_fail(e, 400, "prompts is not a list of strings");
    r->prompts = p;
    r->nprompts = p->n;
    r->tokens_to_generate = (int)mt_req_int(b, "tokens_to_generate", 64, 0, s->max_tokens, e);
    if (e->status) /* Megatron's wording for a negative count, with the limit */
        return snprintf(e->msg, sizeof e->msg, "tokens_to_generate must be an integer greater than or "
                        "equal to 0 and at most %d (serve --max-tokens)", s->max_tokens), -1;
    r->logprobs = mt_req_bool(b, "logprobs", 0, e);
    if (r->tokens_to_generate == 0 && !r->logprobs && !e->status)
        return mt_req_fail(e, 400, "tokens_to_generate=0 implies logprobs should be True");
    r->temperature = mt_req_num(b, "temperature", 1.0, 0.0, 100.0, e);
    if (e->status || r->temperature <= 0.0)
        return reword(e, "temperature must be a positive number less than or equal to 100.0");
    r->top_k = (int)mt_req_int(b, "top_k", 0, 0, 1000, e);
    if (e->status)
        return reword(e, "top_k must be equal to or greater than 0 and less than or equal to 1000");
    r->top_p = mt_req_num(b, "top_p", 0.0, 0.0, 1.0, e);
    if (e->status) return reword(e, "top_p must be less than or equal to 1.0");
    if (r->top_p > 0.0 && r->top_k > 0) return mt_req_fail(e, 400, "cannot set both top-k and top-p samplings.");
    if (mt_req_num(b, "top_p_decay", 0.0, 0.0, 1.0, e) != 0.0 || mt_req_num(b, "top_p_bound", 0.0, 0.0, 1.0, e) != 0.0)
        return mt_req_fail(e, 400, "top_p_decay and top_p_bound are not supported by megatron-c");
    r->add_bos = mt_req_bool(b, "add_BOS", 0, e);
    if (r->add_bos && s->tok->eod < 0) return mt_req_fail(e, 400, "add_BOS: the %s tokenizer has no BOS token", s->tok->type);
    r->nstop = 0;
    if (mt_req_bool(b, "stop_on_double_eol", 0, e)) r->stops[r->nstop++] = "\n\n";
    if (mt_req_bool(b, "stop_on_eol", 0, e)) r->stops[r->nstop++] = "\n";
    if (mt_req_bool(b, "prevent_newline_after_colon", 0, e))
        return mt_req_fail(e, 400, "prevent_newline_after_colon is not supported by megatron-c");
    if (mt_req_int(b, "beam_width", 0, 0, 1 << 20, e) > 0)
        return mt_req_fail(e, 400, "beam_width: beam search is not supported by megatron-c");
    r->seed = mt_req_int(b, "random_seed", -1, 0, (1LL << 53), e);
    if (e->status) return reword(e, "random_seed must be a positive integer");
    mt_req_bool(b, "no_log", 0, e);
    return e->status ? -1 : 0;
}

void mt_api_megatron(struct mt_server *s, const struct mt_jvalue *body, struct mt_http_response *res)
{
    struct mg_request r = {0};
    struct mt_req_error e = {0};
    parse(s, body, &r, &e);
    /* the prompts' tokens, checked against the context before any work */
    int32_t **ids = calloc((size_t)(r.nprompts ? r.nprompts : 1), sizeof *ids);
    size_t *n = calloc((size_t)(r.nprompts ? r.nprompts : 1), sizeof *n);
    if (!ids || !n) mt_die("out of memory");
    for (int i = 0; i < r.nprompts && !e.status; i++) {
        const char *t = r.prompts->v[i].str;
        int32_t *raw = mt_req_encode(s->tok, t, strlen(t), &n[i]);
        ids[i] = malloc((n[i] + 1) * sizeof *ids[i]);
        if (!ids[i]) mt_die("out of memory");
        memcpy(ids[i] + r.add_bos, raw, n[i] * sizeof *raw);
        free(raw);
        if (r.add_bos) ids[i][0] = s->tok->eod, n[i]++;
        if (n[i] == 0) mt_req_fail(&e, 400, "prompts[%d] is empty", i);
        else if ((long)n[i] + r.tokens_to_generate > s->m->T)
            mt_req_fail(&e, 400, "prompts[%d] has %zu tokens; with tokens_to_generate %d that exceeds the model's "
                        "%d positions", i, n[i], r.tokens_to_generate, s->m->T);
    }
    if (e.status) {
        res->status = e.status;
        mt_sb_json_str(&res->body, e.msg, strlen(e.msg));
    } else {
        struct mt_rng rng;
        mt_rng_seed(&rng, r.seed >= 0 ? (uint64_t)r.seed : mt_rng_u64(&s->rng), 3);
        const struct mt_complete_params p = {
            .max_new = r.tokens_to_generate, .temperature = r.top_k == 1 ? 0.0f : (float)r.temperature,
            .top_k = r.top_k, .top_p = (float)r.top_p, .score_prompt = r.logprobs, .stop_at_eod = 1,
            .stop = r.stops, .nstop = r.nstop};
        struct mt_completion *c = calloc((size_t)r.nprompts, sizeof *c);
        if (!c) mt_die("out of memory");
        for (int i = 0; i < r.nprompts; i++) mt_complete(s->m, s->tok, ids[i], (int)n[i], &p, &rng, &c[i]);
        struct mt_strbuf *b = &res->body;
        mt_sb_puts(b, "{\"text\": [");
        for (int i = 0; i < r.nprompts; i++) {
            size_t len;
            char *t = mt_completion_text(s->tok, &c[i], 0, 0, &len);
            mt_sb_puts(b, i ? ", " : "");
            mt_sb_json_str(b, t, len);
            free(t);
        }
        mt_sb_puts(b, "], \"segments\": [");
        for (int i = 0; i < r.nprompts; i++) {
            mt_sb_puts(b, i ? ", [" : "[");
            for (int j = 0; j < c[i].n; j++) {
                mt_sb_puts(b, j ? ", " : "");
                mt_req_token_str(b, s->tok, c[i].ids[j]);
            }
            mt_sb_puts(b, "]");
        }
        mt_sb_puts(b, "], \"logprobs\": ");
        if (!r.logprobs) mt_sb_puts(b, "null");
        for (int i = 0; i < r.nprompts && r.logprobs; i++) {
            mt_sb_puts(b, i ? ", [" : "[[");
            for (int j = 1; j < c[i].n; j++) {
                mt_sb_puts(b, j > 1 ? ", " : "");
                mt_sb_json_num(b, c[i].lp[j]);
            }
            mt_sb_puts(b, i + 1 == r.nprompts ? "]]" : "]");
        }
        mt_sb_puts(b, "}");
        for (int i = 0; i < r.nprompts; i++) mt_completion_free(&c[i]);
        free(c);
    }
    for (int i = 0; i < r.nprompts; i++) free(ids[i]);
    free(ids);
    free(n);
}
