/* http.h: a small HTTP/1.1 server for the generation server: one request
 * per connection (answers carry "Connection: close"), bodies by
 * Content-Length (chunked uploads are answered 411), "Expect:
 * 100-continue" honoured, limits on the head and the body answered 431 and
 * 413, read and write timeouts so that a stalled client cannot hold a slot.
 *
 * Threads: connections are read and written by their own threads, but
 * every handler runs on the thread that called mt_http_serve, one request
 * at a time in arrival order, because the model and its backend (OpenMP
 * teams, a CUDA context) belong to that thread. Requests beyond
 * max_connections in flight are answered 503 at once. */
#ifndef MT_SERVE_HTTP_H
#define MT_SERVE_HTTP_H
#include "core/strbuf.h"
#include <stddef.h>

struct mt_http_request {
    char method[16];
    char path[512]; /* without the query string */
    char *body;     /* NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
    char peer[64];  /* the client's address, for the access log */
};

struct mt_http_response {
    int status;
    const char *content_type; /* default application/json */
    const char *allow;        /* 405: the methods allowed, or NULL */
    struct mt_strbuf body;
};

typedef void (*mt_http_handler)(void *ctx, const struct mt_http_request *req,
                                struct mt_http_response *res);

struct mt_http_options {
    const char *host;      /* numeric address or a name to resolve; 127.0.0.1 */
    int port;              /* 0: any free port (the one chosen is reported) */
    size_t max_body;       /* bytes; larger bodies get 413 */
    int max_connections;   /* in flight at once; more get 503 */
    int timeout_s;         /* per read and per write */
    int access_log;        /* one line per request on stdout */
};

/* Binds and listens (failures are user errors naming the address), calls
 * on_listen(ctx, address, port) once the socket is ready, then serves
 * until SIGTERM or SIGINT, after which it stops accepting, answers what
 * has arrived, and returns 0. */
int mt_http_serve(const struct mt_http_options *opt, mt_http_handler handler, void *ctx,
                  void (*on_listen)(void *ctx, const char *address, int port));

/* The request line and headers, parsed: for the server and the fuzzer. */
struct mt_http_head {
    char method[16];
    char path[512];        /* without the query string */
    size_t content_length; /* 0 without the header */
    int expect_continue;   /* the client waits for "100 Continue" before the body */
};
/* Parses head[0, n), the bytes up to and including the blank line that
 * ends the headers (any bytes: NULs and a missing end are errors). 0, or
 * the HTTP status of the problem (400, 411, 413 over max_body, 414) with
 * its message in msg. */
int mt_http_parse_head(const char *head, size_t n, size_t max_body, struct mt_http_head *h, char *msg,
                       size_t msglen);

#endif /* MT_SERVE_HTTP_H */
