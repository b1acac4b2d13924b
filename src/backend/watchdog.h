/* watchdog.h: Megatron's --distributed-timeout-minutes for every backend.
 *
 * Each communication call (backend.c's wrappers) is bracketed by
 * mt_watch_begin / mt_watch_end. A thread started by mt_watch_start looks
 * once a second; a call that has not finished after the timeout (a peer
 * rank frozen, dead without the job noticing, or in another collective)
 * prints "[rank R] megatron-c: error: <op> ... has not finished after N s"
 * on stderr and ends the whole job through the abort hook (MPI_Abort),
 * with a SIGALRM deadline behind it in case the abort itself hangs. */
#ifndef MT_WATCHDOG_H
#define MT_WATCHDOG_H
#include <stddef.h>

/* Starts the watchdog (once; later calls change the timeout). seconds <= 0
 * turns it off. rank names this process in the message. */
void mt_watch_start(double seconds, int rank);
/* op: a static string ("all_reduce", "recv", ...); peer: the other rank of a
 * point-to-point call, or -1; group: the communicator's size. */
void mt_watch_begin(const char *op, size_t bytes, int peer, int group);
void mt_watch_end(void);

#endif
