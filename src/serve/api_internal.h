/* api_internal.h: what the endpoint files of the server share: reading a
 * request's fields with the checks and messages of the API they belong
 * to, encoding prompts, writing token strings. */
#ifndef MT_SERVE_API_INTERNAL_H
#define MT_SERVE_API_INTERNAL_H
#include "core/json_value.h"
#include "serve/api.h"
#include <stdint.h>

/* The first problem found in a request: its HTTP status and message. */
struct mt_req_error {
    int status;        /* 0: none */
    char msg[320];
};
/* Records the first problem; returns -1. */
int mt_req_fail(struct mt_req_error *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Optional typed members of the request object: the default when absent
 * (or JSON null), an error when present with the wrong type or outside
 * [lo, hi]; nothing happens once e holds an error. */
long long mt_req_int(const struct mt_jvalue *o, const char *key, long long def, long long lo, long long hi,
                     struct mt_req_error *e);
double mt_req_num(const struct mt_jvalue *o, const char *key, double def, double lo, double hi,
                  struct mt_req_error *e);
int mt_req_bool(const struct mt_jvalue *o, const char *key, int def, struct mt_req_error *e);

/* Token ids of text with the end-of-document string ("<|endoftext|>")
 * read as that token, as Hugging Face's tokenizers read special tokens;
 * malloc'd, count in *n. */
int32_t *mt_req_encode(const struct mt_tokenizer *tok, const char *text, size_t len, size_t *n);
/* A JSON list of integer token ids into ids (malloc'd, count in *n); 0, or
 * -1 with e set when it is not one, or an id lies outside the vocabulary. */
int mt_req_ids(const struct mt_jvalue *a, const struct mt_tokenizer *tok, const char *what, int32_t **ids,
               size_t *n, struct mt_req_error *e);
/* The JSON string of one token (a part of a character written as U+FFFD). */
void mt_req_token_str(struct mt_strbuf *b, const struct mt_tokenizer *tok, int32_t id);

/* The endpoints (res->status is 200 on entry). */
void mt_api_megatron(struct mt_server *s, const struct mt_jvalue *body, struct mt_http_response *res);
void mt_api_completions(struct mt_server *s, const struct mt_jvalue *body, struct mt_http_response *res);

/* OpenAI's error object {"error": {"message", "type", "param", "code"}}. */
void mt_api_openai_error(struct mt_http_response *res, const struct mt_req_error *e);

#endif /* MT_SERVE_API_INTERNAL_H */
