/* pipeline.c: see pipeline.h */
#include "parallel/pipeline.h"
#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building ---------------------------------------------------------------- */

struct builder {
    struct mt_pp_action *out;
    int max, n;
};

static void emit(struct builder *b, enum mt_pp_kind kind, int micro, int micro2)
{
    if (b->n < b->max) b->out[b->n] = (struct mt_pp_action){kind, micro, micro2};
    b->n++;
}

int mt_pp_schedule_1f1b(struct mt_pp_action *out, int max, int stages, int stage, int n_micro)
{
    if (stages < 1 || stage < 0 || stage >= stages || n_micro < 1 || max < 0) return -1;
    if (max > 0 && !out) return -1;
    struct builder b = {out, max, 0};
    const int first = stage == 0, last = stage == stages - 1;
    int warmup = stages - stage - 1;
    if (warmup > n_micro) warmup = n_micro;
    const int remaining = n_micro - warmup;

    /* warmup forwards */
    for (int i = 0; i < warmup; i++) {
        if (!first) emit(&b, MT_PP_RECV_FWD, i, -1);
        emit(&b, MT_PP_FWD, i, -1);
        if (!last) emit(&b, MT_PP_SEND_FWD, i, -1);
    }
    /* the first steady-state forward needs its input */
    if (remaining > 0 && !first) emit(&b, MT_PP_RECV_FWD, warmup, -1);
    /* steady state: one forward, one backward */
    for (int i = 0; i < remaining; i++) {
        const int f = warmup + i; /* forwarded now */
        const int k = i;          /* backwarded now */
        emit(&b, MT_PP_FWD, f, -1);
        if (!last) emit(&b, MT_PP_SEND_FWD_RECV_BWD, f, k);
        emit(&b, MT_PP_BWD, k, -1);
        if (!first) {
            if (i == remaining - 1)
                emit(&b, MT_PP_SEND_BWD, k, -1);
            else
                emit(&b, MT_PP_SEND_BWD_RECV_FWD, k, f + 1);
        }
    }
    /* cooldown: the backwards of the warmup micro-batches */
    for (int i = 0; i < warmup; i++) {
        const int k = remaining + i;
        if (!last) emit(&b, MT_PP_RECV_BWD, k, -1);
        emit(&b, MT_PP_BWD, k, -1);
        if (!first) emit(&b, MT_PP_SEND_BWD, k, -1);
    }
    return b.n;
}

int mt_pp_schedule_forward(struct mt_pp_action *out, int max, int stages, int stage, int n_micro)
{
    if (stages < 1 || stage < 0 || stage >= stages || n_micro < 1 || max < 0) return -1;
    if (max > 0 && !out) return -1;
    struct builder b = {out, max, 0};
    for (int k = 0; k < n_micro; k++) {
        if (stage > 0) emit(&b, MT_PP_RECV_FWD, k, -1);
        emit(&b, MT_PP_FWD, k, -1);
        if (stage < stages - 1) emit(&b, MT_PP_SEND_FWD, k, -1);
    }
    return b.n;
}

/* ---- names and notation ------------------------------------------------------- */

const char *mt_pp_kind_name(enum mt_pp_kind k)
{
    switch (k) {
    case MT_PP_RECV_FWD: return "recv_forward";
    case MT_PP_FWD: return "forward";
    case MT_PP_SEND_FWD: return "send_forward";
    case MT_PP_RECV_BWD: return "recv_backward";
    case MT_PP_BWD: return "backward";
    case MT_PP_SEND_BWD: return "send_backward";
    case MT_PP_SEND_FWD_RECV_BWD: return "send_forward_recv_backward";
    case MT_PP_SEND_BWD_RECV_FWD: return "send_backward_recv_forward";
    }
    return "unknown";
}

static int format_one(const struct mt_pp_action *a, char *buf, size_t n)
{
    switch (a->kind) {
    case MT_PP_RECV_FWD: return snprintf(buf, n, "RF%d", a->micro);
    case MT_PP_FWD: return snprintf(buf, n, "F%d", a->micro);
    case MT_PP_SEND_FWD: return snprintf(buf, n, "SF%d", a->micro);
    case MT_PP_RECV_BWD: return snprintf(buf, n, "RB%d", a->micro);
    case MT_PP_BWD: return snprintf(buf, n, "B%d", a->micro);
    case MT_PP_SEND_BWD: return snprintf(buf, n, "SB%d", a->micro);
    case MT_PP_SEND_FWD_RECV_BWD: return snprintf(buf, n, "SF%dRB%d", a->micro, a->micro2);
    case MT_PP_SEND_BWD_RECV_FWD: return snprintf(buf, n, "SB%dRF%d", a->micro, a->micro2);
    }
    return snprintf(buf, n, "?%d", (int)a->kind);
}

int mt_pp_format(const struct mt_pp_action *a, int n_actions, char *buf, size_t n)
{
    size_t len = 0;
    if (n) buf[0] = '\0';
    for (int i = 0; i < n_actions; i++) {
        char one[48];
        int k = format_one(&a[i], one, sizeof one);
        if (k < 0) k = 0;
        const char *sep = i ? " " : "";
        const int w = snprintf(len < n ? buf + len : NULL, len < n ? n - len : 0, "%s%s", sep, one);
        if (w > 0) len += (size_t)w;
    }
    return (int)len;
}

/* ---- the lock-step simulator ------------------------------------------------- */

/* What one stage's current action is still waiting for; -1 = nothing. */
struct pending {
    int send_next; /* activation of this micro to stage+1 */
    int recv_prev; /* activation of this micro from stage-1 */
    int send_prev; /* gradient of this micro to stage-1 */
    int recv_next; /* gradient of this micro from stage+1 */
};

struct sim {
    int stages, n_micro;
    const struct mt_pp_action *const *acts;
    const int *n_acts;
    int *pc;               /* next action per stage */
    int *started;          /* current action issued, parts pending */
    struct pending *pend;  /* per stage */
    unsigned char *fwd, *bwd, *act, *grad, *sent_f, *sent_b; /* [stage][micro] */
    char *err;
    size_t errlen;
};

MT_PRINTF(3, 4) static int fail(struct sim *S, int s, const char *fmt, ...)
{
    char what[256], one[48] = "end";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (s >= 0 && S->pc[s] < S->n_acts[s]) format_one(&S->acts[s][S->pc[s]], one, sizeof one);
    if (s >= 0)
        snprintf(S->err, S->errlen, "stage %d, action %d (%s): %s", s, S->pc[s], one, what);
    else
        snprintf(S->err, S->errlen, "%s", what);
    return -1;
}

#define AT(arr, s, m) ((arr)[(size_t)(s) * (size_t)S->n_micro + (size_t)(m)])

static int in_range(const struct sim *S, int m) { return m >= 0 && m < S->n_micro; }

/* Issue the current action of stage s: compute actions complete at once,
 * communication actions post their parts. */
static int issue(struct sim *S, int s)
{
    const struct mt_pp_action *a = &S->acts[s][S->pc[s]];
    const int first = s == 0, last = s == S->stages - 1;
    const int is_combined = a->kind == MT_PP_SEND_FWD_RECV_BWD || a->kind == MT_PP_SEND_BWD_RECV_FWD;
    if (!in_range(S, a->micro)) return fail(S, s, "micro-batch %d out of range", a->micro);
    if (is_combined && !in_range(S, a->micro2))
        return fail(S, s, "received micro-batch %d out of range", a->micro2);
    struct pending *p = &S->pend[s];
    *p = (struct pending){-1, -1, -1, -1};
    const int m = a->micro;
    switch (a->kind) {
    case MT_PP_FWD:
        if (AT(S->fwd, s, m)) return fail(S, s, "micro-batch %d is forwarded twice", m);
        if (!first && !AT(S->act, s, m))
            return fail(S, s, "forward of micro-batch %d before its activation arrived", m);
        AT(S->fwd, s, m) = 1;
        S->pc[s]++;
        return 1;
    case MT_PP_BWD:
        if (AT(S->bwd, s, m)) return fail(S, s, "micro-batch %d is backwarded twice", m);
        if (!AT(S->fwd, s, m)) return fail(S, s, "backward of micro-batch %d before its forward", m);
        if (!last && !AT(S->grad, s, m))
            return fail(S, s, "backward of micro-batch %d before its output gradient arrived", m);
        AT(S->bwd, s, m) = 1;
        S->pc[s]++;
        return 1;
    case MT_PP_SEND_FWD:
    case MT_PP_SEND_FWD_RECV_BWD:
        if (last) return fail(S, s, "the last stage has no next stage to send to");
        if (!AT(S->fwd, s, m)) return fail(S, s, "sends micro-batch %d before forwarding it", m);
        if (AT(S->sent_f, s, m)) return fail(S, s, "sends the activation of %d twice", m);
        AT(S->sent_f, s, m) = 1;
        p->send_next = m;
        if (a->kind == MT_PP_SEND_FWD_RECV_BWD) p->recv_next = a->micro2;
        break;
    case MT_PP_SEND_BWD:
    case MT_PP_SEND_BWD_RECV_FWD:
        if (first) return fail(S, s, "the first stage has no previous stage to send to");
        if (!AT(S->bwd, s, m)) return fail(S, s, "sends the gradient of %d before its backward", m);
        if (AT(S->sent_b, s, m)) return fail(S, s, "sends the gradient of %d twice", m);
        AT(S->sent_b, s, m) = 1;
        p->send_prev = m;
        if (a->kind == MT_PP_SEND_BWD_RECV_FWD) p->recv_prev = a->micro2;
        break;
    case MT_PP_RECV_FWD:
        if (first) return fail(S, s, "the first stage has no previous stage to receive from");
        p->recv_prev = m;
        break;
    case MT_PP_RECV_BWD:
        if (last) return fail(S, s, "the last stage has no next stage to receive from");
        p->recv_next = m;
        break;
    default:
        return fail(S, s, "unknown action kind %d", (int)a->kind);
    }
    S->started[s] = 1;
    return 1;
}

/* Match the parts pending across the boundary between stages s and s+1. */
static int match(struct sim *S, int s)
{
    struct pending *lo = &S->pend[s], *hi = &S->pend[s + 1];
    int progress = 0;
    if (S->started[s] && S->started[s + 1] && lo->send_next >= 0 && hi->recv_prev >= 0) {
        if (lo->send_next != hi->recv_prev)
            return fail(S, s + 1, "expects the activation of micro-batch %d, but stage %d sends %d",
                        hi->recv_prev, s, lo->send_next);
        if (AT(S->act, s + 1, hi->recv_prev))
            return fail(S, s + 1, "receives the activation of %d twice", hi->recv_prev);
        AT(S->act, s + 1, hi->recv_prev) = 1;
        lo->send_next = hi->recv_prev = -1;
        progress = 1;
    }
    if (S->started[s] && S->started[s + 1] && lo->recv_next >= 0 && hi->send_prev >= 0) {
        if (lo->recv_next != hi->send_prev)
            return fail(S, s, "expects the gradient of micro-batch %d, but stage %d sends %d",
                        lo->recv_next, s + 1, hi->send_prev);
        if (AT(S->grad, s, lo->recv_next))
            return fail(S, s, "receives the gradient of %d twice", lo->recv_next);
        AT(S->grad, s, lo->recv_next) = 1;
        lo->recv_next = hi->send_prev = -1;
        progress = 1;
    }
    return progress;
}

static int run(struct sim *S)
{
    const int P = S->stages;
    for (;;) {
        int progress = 0, done = 1;
        for (int s = 0; s < P; s++) {
            if (S->pc[s] >= S->n_acts[s]) continue;
            done = 0;
            if (!S->started[s]) {
                int r = issue(S, s);
                if (r < 0) return r;
                progress |= r;
            }
        }
        if (done) break;
        for (int s = 0; s + 1 < P; s++) {
            int r = match(S, s);
            if (r < 0) return r;
            progress |= r;
        }
        for (int s = 0; s < P; s++) {
            const struct pending *p = &S->pend[s];
            if (S->started[s] && p->send_next < 0 && p->recv_prev < 0 && p->send_prev < 0 &&
                p->recv_next < 0) {
                S->started[s] = 0;
                S->pc[s]++;
                progress = 1;
            }
        }
        if (!progress) {
            /* every unfinished stage waits on a neighbour that never answers */
            char buf[512];
            size_t len = 0;
            len += (size_t)snprintf(buf, sizeof buf, "deadlock:");
            for (int s = 0; s < P && len < sizeof buf; s++) {
                char one[48] = "done";
                if (S->pc[s] < S->n_acts[s]) format_one(&S->acts[s][S->pc[s]], one, sizeof one);
                len += (size_t)snprintf(buf + len, sizeof buf - len, " stage %d at action %d (%s)%s",
                                        s, S->pc[s], one, s + 1 < P ? ";" : "");
            }
            return fail(S, -1, "%s", buf);
        }
    }
    for (int s = 0; s < P; s++)
        for (int m = 0; m < S->n_micro; m++) {
            if (!AT(S->fwd, s, m)) return fail(S, s, "micro-batch %d is never forwarded", m);
            if (!AT(S->bwd, s, m)) return fail(S, s, "micro-batch %d is never backwarded", m);
        }
    return 0;
}

int mt_pp_schedule_check(const struct mt_pp_action *const *acts, const int *n_acts, int stages,
                         int n_micro, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    err[0] = '\0';
    if (stages < 1 || n_micro < 1) {
        snprintf(err, errlen, "need at least one stage and one micro-batch (got %d, %d)", stages,
                 n_micro);
        return -1;
    }
    const size_t cells = (size_t)stages * (size_t)n_micro;
    struct sim S = {.stages = stages, .n_micro = n_micro, .acts = acts, .n_acts = n_acts,
                    .err = err, .errlen = errlen};
    S.pc = calloc((size_t)stages, sizeof *S.pc);
    S.started = calloc((size_t)stages, sizeof *S.started);
    S.pend = calloc((size_t)stages, sizeof *S.pend);
    unsigned char *flags = calloc(6 * cells, 1);
    if (!S.pc || !S.started || !S.pend || !flags) mt_die("pipeline check: out of memory");
    S.fwd = flags, S.bwd = flags + cells, S.act = flags + 2 * cells, S.grad = flags + 3 * cells;
    S.sent_f = flags + 4 * cells, S.sent_b = flags + 5 * cells;
    for (int s = 0; s < stages; s++) S.pend[s] = (struct pending){-1, -1, -1, -1};
    const int r = run(&S);
    free(S.pc), free(S.started), free(S.pend), free(flags);
    return r;
}
