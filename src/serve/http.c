/* http.c: see http.h */
#define _GNU_SOURCE /* memmem */
#include "serve/http.h"
#include "core/error.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384 /* request line and headers */

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

/* a request handed from its connection thread to the serving thread */
struct job {
    struct mt_http_request req;
    struct mt_http_response res;
    int done;
    pthread_cond_t cv;
    struct job *next;
};

struct server {
    const struct mt_http_options *opt;
    int lfd;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* a job queued or a connection ended */
    struct job *head, *tail;
    int active;              /* connection threads alive */
    int *reading;            /* per slot: the fd of a connection still reading, else -1 */
};

struct conn {
    struct server *s;
    int fd, slot;
    char peer[64];
};

/* the reason phrase of a status code */
static const char *mt_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void write_response(int fd, const struct mt_http_response *r)
{
    char head[512];
    const char *body = r->body.s ? r->body.s : "";
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     r->status, mt_http_reason(r->status),
                     r->content_type ? r->content_type : "application/json", r->body.n,
                     r->allow ? "Allow: " : "", r->allow ? r->allow : "", r->allow ? "\r\n" : "");
    if (send_all(fd, head, (size_t)k) == 0) send_all(fd, body, r->body.n);
}

/* an error answered by the connection thread itself: {"error": {...}} */
static void error_response(struct mt_http_response *r, int status, const char *msg)
{
    r->status = status;
    mt_sb_puts(&r->body, "{\"error\": {\"message\": ");
    mt_sb_json_str(&r->body, msg, strlen(msg));
    mt_sb_printf(&r->body, ", \"type\": \"invalid_request_error\", \"code\": %d}}", status);
}

/* After an early answer (the body unread): stop sending, then read what
 * the client still sends for a moment, so that closing does not reset the
 * connection before the client has read the answer. */
static void linger_close(int fd)
{
    shutdown(fd, SHUT_WR);
    char buf[4096];
    const double end = now_ms() + 1000.0;
    struct pollfd p = {fd, POLLIN, 0};
    while (now_ms() < end && poll(&p, 1, 100) >= 0) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (recv(fd, buf, sizeof buf, 0) <= 0) break;
    }
    close(fd);
}

/* the value of header `name` in the NUL-terminated head (the lines after
 * the request line), trimmed, into out; 1 if present */
static int header(const char *head, const char *name, char *out, size_t cap)
{
    const size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2] != '\r' && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nl) != 0 || h[nl] != ':') continue;
        const char *v = h + nl + 1, *end = strstr(v, "\r\n");
        if (!end) end = v + strlen(v);
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
        size_t n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

int mt_http_parse_head(const char *raw, size_t n, size_t max_body, struct mt_http_head *h, char *msg,
                       size_t msglen)
{
    memset(h, 0, sizeof *h);
    if (n < 4 || memcmp(raw + n - 4, "\r\n\r\n", 4) != 0) {
        snprintf(msg, msglen, "the headers do not end with an empty line");
        return 400;
    }
    if (memchr(raw, '\0', n)) {
        snprintf(msg, msglen, "a NUL byte in the request line or headers");
        return 400;
    }
    char *head = malloc(n + 1);
    if (!head) mt_die("out of memory");
    memcpy(head, raw, n);
    head[n] = '\0';
    int status = 0;
    char target[2048], version[16], v[64];
    if (sscanf(head, "%15s %2047s %15s", h->method, target, version) != 3 || strncmp(version, "HTTP/1.", 7) != 0 ||
        strcspn(head, "\r\n") > sizeof target + 40) {
        snprintf(msg, msglen, "malformed request line (expected METHOD PATH HTTP/1.1)");
        status = 400;
        goto out;
    }
    char *path = target;
    if (strncmp(path, "http://", 7) == 0) { /* absolute form: keep the path */
        path = strchr(target + 7, '/');
        if (!path) path = strcpy(target, "/");
    }
    path[strcspn(path, "?#")] = '\0';
    if (strlen(path) >= sizeof h->path) {
        snprintf(msg, msglen, "the path is longer than %zu bytes", sizeof h->path - 1);
        status = 414;
        goto out;
    }
    strcpy(h->path, path);
    if (header(head, "Transfer-Encoding", v, sizeof v) && strcasecmp(v, "identity") != 0) {
        snprintf(msg, msglen, "Transfer-Encoding '%s' is not supported: send the body with a Content-Length", v);
        status = 411;
        goto out;
    }
    if (header(head, "Content-Length", v, sizeof v)) {
        char *e;
        errno = 0;
        unsigned long long L = strtoull(v, &e, 10);
        if (!isdigit((unsigned char)v[0]) || *e || errno) {
            snprintf(msg, msglen, "Content-Length '%s' is not a number", v);
            status = 400;
            goto out;
        }
        if (L > max_body) {
            snprintf(msg, msglen, "the body of %llu bytes exceeds the limit of %zu (serve --max-request-bytes)",
                     L, max_body);
            status = 413;
            goto out;
        }
        h->content_length = (size_t)L;
    }
    h->expect_continue = header(head, "Expect", v, sizeof v) && strcasecmp(v, "100-continue") == 0;
out:
    free(head);
    return status;
}

/* Reads and checks one request; 0 with req filled, the status of an
 * error with its message in msg, or -1 when the client went away. */
static int read_request(struct conn *c, struct mt_http_request *req, char *msg, size_t msglen)
{
    char *buf = malloc(HEAD_MAX + 1);
    if (!buf) mt_die("out of memory");
    size_t n = 0;
    char *end = NULL;
    int status = 0;
    while (!end) {
        if (n == HEAD_MAX) {
            snprintf(msg, msglen, "the request line and headers exceed %d bytes", HEAD_MAX);
            status = 431;
            goto out;
        }
        ssize_t k = recv(c->fd, buf + n, HEAD_MAX - n, 0);
        if (k < 0 && errno == EINTR && !g_stop) continue;
        if (k <= 0) {
            snprintf(msg, msglen, "no complete request within the timeout");
            status = k == 0 || g_stop ? -1 : 408;
            goto out;
        }
        const size_t from = n > 3 ? n - 3 : 0;
        n += (size_t)k;
        end = memmem(buf + from, n - from, "\r\n\r\n", 4);
    }
    const size_t hn = (size_t)(end + 4 - buf);
    struct mt_http_head h;
    status = mt_http_parse_head(buf, hn, c->s->opt->max_body, &h, msg, msglen);
    if (status) goto out;
    memcpy(req->method, h.method, sizeof req->method);
    memcpy(req->path, h.path, sizeof req->path);
    const size_t len = h.content_length;
    if (h.expect_continue && len > 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        send_all(c->fd, cont, sizeof cont - 1);
    }
    req->body = malloc(len + 1);
    if (!req->body) mt_die("out of memory");
    size_t have = n - hn;
    if (have > len) have = len; /* a pipelined second request is not read */
    memcpy(req->body, buf + hn, have);
    while (have < len) {
        ssize_t k = recv(c->fd, req->body + have, len - have, 0);
        if (k < 0 && errno == EINTR && !g_stop) continue;
        if (k <= 0) {
            snprintf(msg, msglen, "the body ended after %zu of %zu bytes", have, len);
            status = k == 0 || g_stop ? -1 : 408;
            goto out;
        }
        have += (size_t)k;
    }
    req->body[len] = '\0';
    req->body_len = len;
out:
    free(buf);
    return status;
}

static void end_connection(struct conn *c)
{
    struct server *s = c->s;
    pthread_mutex_lock(&s->mu);
    s->reading[c->slot] = -2;
    s->active--;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    free(c);
}

static void *connection(void *arg)
{
    struct conn *c = arg;
    struct server *s = c->s;
    const double t0 = now_ms();
    struct job *j = calloc(1, sizeof *j);
    if (!j) mt_die("out of memory");
    snprintf(j->req.peer, sizeof j->req.peer, "%s", c->peer);
    char msg[256];
    int status = read_request(c, &j->req, msg, sizeof msg);
    pthread_mutex_lock(&s->mu);
    s->reading[c->slot] = -1; /* from here on the stop does not cut it short */
    pthread_mutex_unlock(&s->mu);
    if (status < 0) { /* the client went away: nothing to answer */
        close(c->fd);
    } else if (status > 0) {
        error_response(&j->res, status, msg);
        write_response(c->fd, &j->res);
        linger_close(c->fd);
    } else {
        pthread_cond_init(&j->cv, NULL);
        pthread_mutex_lock(&s->mu);
        if (s->tail) s->tail->next = j;
        else s->head = j;
        s->tail = j;
        pthread_cond_broadcast(&s->work);
        while (!j->done) pthread_cond_wait(&j->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        pthread_cond_destroy(&j->cv);
        write_response(c->fd, &j->res);
        close(c->fd);
    }
    if (s->opt->access_log && status >= 0)
        printf("%s \"%s %s\" %d %.1f ms\n", c->peer, j->req.method[0] ? j->req.method : "-",
               j->req.path[0] ? j->req.path : "-", j->res.status, now_ms() - t0), fflush(stdout);
    free(j->req.body);
    mt_sb_free(&j->res.body);
    free(j);
    end_connection(c);
    return NULL;
}

static void *acceptor(void *arg)
{
    struct server *s = arg;
    const struct timeval tv = {s->opt->timeout_s, 0};
    while (!g_stop) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0 || !(p.revents & POLLIN)) continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept(s->lfd, (struct sockaddr *)&ss, &sl);
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) mt_die("out of memory");
        c->s = s;
        c->fd = fd;
        if (getnameinfo((struct sockaddr *)&ss, sl, c->peer, sizeof c->peer, NULL, 0, NI_NUMERICHOST) != 0)
            strcpy(c->peer, "?");
        pthread_mutex_lock(&s->mu);
        int slot = -1;
        if (s->active < s->opt->max_connections)
            for (int i = 0; i < s->opt->max_connections && slot < 0; i++)
                if (s->reading[i] == -2) slot = i;
        if (slot >= 0) {
            s->reading[slot] = fd;
            s->active++;
        }
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        c->slot = slot;
        if (slot < 0 || pthread_create(&t, &at, connection, c) != 0) {
            struct mt_http_response r = {0};
            error_response(&r, 503, "the server has too many requests in flight; try again");
            write_response(fd, &r);
            mt_sb_free(&r.body);
            close(fd);
            if (slot >= 0) end_connection(c);
            else free(c);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

/* binds opt->host:opt->port; the chosen port in *port */
static int listen_on(const struct mt_http_options *opt, char *addr, size_t addrlen, int *port)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", opt->port);
    int e = getaddrinfo(opt->host, ps, &hints, &res);
    if (e != 0)
        mt_user_error("give a numeric address (127.0.0.1, 0.0.0.0, ::1) or a resolvable name",
                      "serve --host %s: %s", opt->host, gai_strerror(e));
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        mt_user_error(err == EADDRINUSE ? "another program holds the port: choose another with --port (0 = any free one)"
                      : err == EACCES ? "ports below 1024 need privileges: choose --port 1024 or above" : NULL,
                      "serve: cannot listen on %s port %d: %s", opt->host, opt->port, strerror(err));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ps2[16];
    getnameinfo((struct sockaddr *)&ss, sl, addr, (socklen_t)addrlen, ps2, sizeof ps2, NI_NUMERICHOST | NI_NUMERICSERV);
    *port = atoi(ps2);
    return fd;
}

int mt_http_serve(const struct mt_http_options *opt, mt_http_handler handler, void *ctx,
                  void (*on_listen)(void *ctx, const char *address, int port))
{
    struct server s = {.opt = opt};
    char addr[128];
    int port;
    s.lfd = listen_on(opt, addr, sizeof addr, &port);
    s.reading = malloc((size_t)opt->max_connections * sizeof *s.reading);
    if (!s.reading) mt_die("out of memory");
    for (int i = 0; i < opt->max_connections; i++) s.reading[i] = -2; /* -2 free, -1 answering */
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.work, NULL);

    struct sigaction sa = {0}, old_term, old_int;
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked call returns */
    sigemptyset(&sa.sa_mask);
    g_stop = 0;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    signal(SIGPIPE, SIG_IGN);
    if (on_listen) on_listen(ctx, addr, port);

    pthread_t acc;
    if (pthread_create(&acc, NULL, acceptor, &s) != 0) mt_die("serve: cannot start the accepting thread");
    int accepting = 1;
    pthread_mutex_lock(&s.mu);
    for (;;) {
        if (s.head) {
            struct job *j = s.head;
            s.head = j->next;
            if (!s.head) s.tail = NULL;
            pthread_mutex_unlock(&s.mu);
            j->res.status = 200;
            handler(ctx, &j->req, &j->res);
            pthread_mutex_lock(&s.mu);
            j->done = 1;
            pthread_cond_signal(&j->cv);
            continue;
        }
        if (g_stop && accepting) { /* no connection starts after this */
            pthread_mutex_unlock(&s.mu);
            pthread_join(acc, NULL);
            pthread_mutex_lock(&s.mu);
            accepting = 0;
            continue;
        }
        if (g_stop) {
            /* cut short the connections still waiting for their request */
            for (int i = 0; i < opt->max_connections; i++)
                if (s.reading[i] >= 0) shutdown(s.reading[i], SHUT_RD);
            if (s.active == 0) break;
        }
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 100000000L;
        if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s.work, &s.mu, &t);
    }
    pthread_mutex_unlock(&s.mu);
    close(s.lfd);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    pthread_cond_destroy(&s.work);
    pthread_mutex_destroy(&s.mu);
    free(s.reading);
    return 0;
}
