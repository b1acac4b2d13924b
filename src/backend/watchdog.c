/* watchdog.c: see watchdog.h. The calls being watched are the main
 * thread's; the watchdog thread only reads what begin/end publish. */
#include "backend/watchdog.h"
#include "core/error.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static _Atomic long long t_begin_ms; /* 0: no call in progress */
static const char *_Atomic op_name;
static _Atomic size_t op_bytes;
static _Atomic int op_peer, op_group;
static _Atomic long long timeout_ms;
static int my_rank;
static pthread_t thread;
static int started;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void expire(long long waited_ms)
{
    char peer[48] = "";
    const int p = atomic_load(&op_peer);
    if (p >= 0) snprintf(peer, sizeof peer, " with rank %d", p);
    /* the message first (the abort may cut the process short) */
    fprintf(stderr, "[rank %d] megatron-c: error: %s%s of %zu bytes in a group of %d ranks has not finished "
            "after %.0f s (--distributed-timeout-minutes %g): a peer rank is stuck, stopped or dead; "
            "aborting the job\n", my_rank, atomic_load(&op_name), peer, atomic_load(&op_bytes),
            atomic_load(&op_group), (double)waited_ms / 1000.0, (double)atomic_load(&timeout_ms) / 60000.0);
    fflush(stderr);
    alarm(10); /* SIGALRM ends the process should the abort below hang */
    mt_exit(1);
}

static void *watch(void *arg)
{
    (void)arg;
    for (;;) {
        const struct timespec tick = {0, 200 * 1000 * 1000};
        nanosleep(&tick, NULL);
        const long long t0 = atomic_load(&t_begin_ms), limit = atomic_load(&timeout_ms);
        if (t0 && limit > 0 && now_ms() - t0 > limit) expire(now_ms() - t0);
    }
    return NULL;
}

void mt_watch_start(double seconds, int rank)
{
    atomic_store(&timeout_ms, seconds > 0 ? (long long)(seconds * 1000.0) : 0);
    my_rank = rank;
    if (started || seconds <= 0) return;
    if (pthread_create(&thread, NULL, watch, NULL) != 0) mt_die("cannot start the communication watchdog thread");
    pthread_detach(thread);
    started = 1;
}

void mt_watch_begin(const char *op, size_t bytes, int peer, int group)
{
    if (!started) return;
    atomic_store(&op_name, op);
    atomic_store(&op_bytes, bytes);
    atomic_store(&op_peer, peer);
    atomic_store(&op_group, group);
    atomic_store(&t_begin_ms, now_ms());
}

void mt_watch_end(void)
{
    if (started) atomic_store(&t_begin_ms, 0);
}
