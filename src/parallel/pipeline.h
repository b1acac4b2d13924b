/* pipeline.h: the pipeline schedule as data (Megatron's
 * forward_backward_pipelining_without_interleaving, "1F1B").
 *
 * A schedule is the list of actions one pipeline stage performs in one
 * training step. It is built here without any communication, tested on its
 * own (tests/test_schedule.c), and executed elsewhere. Stage s receives
 * activations from stage s-1 and sends them to s+1; gradients flow back the
 * other way. Only actions that communicate or compute are listed: where
 * Megatron calls a p2p function that is a no-op on the first or last stage,
 * no action appears, and a combined step whose one half is a no-op shrinks to
 * its other half (on the first stage Megatron skips send_backward_recv_forward
 * entirely, on the last stage send_forward_recv_backward).
 *
 * Notation of mt_pp_format (m, n micro-batch numbers, 0-based):
 *   RF<m>      recv forward:  receive the input activation of m from stage-1
 *   F<m>       forward step of m
 *   SF<m>      send forward:  send the output activation of m to stage+1
 *   RB<m>      recv backward: receive the gradient of m's output from stage+1
 *   B<m>       backward step of m
 *   SB<m>      send backward: send the gradient of m's input to stage-1
 *   SF<m>RB<n> send the activation of m to stage+1 and, in the same
 *              sendrecv, receive the output gradient of n from stage+1
 *   SB<m>RF<n> send the input gradient of m to stage-1 and, in the same
 *              sendrecv, receive the input activation of n from stage-1
 * Actions are separated by one space. Example, 2 stages, 4 micro-batches:
 *   stage 0: F0 SF0 F1 SF1RB0 B0 F2 SF2RB1 B1 F3 SF3RB2 B2 RB3 B3
 *   stage 1: RF0 F0 B0 SB0RF1 F1 B1 SB1RF2 F2 B2 SB2RF3 F3 B3 SB3
 *
 * The combined kinds must be executed as one exchange (mt_sendrecv with the
 * neighbour as both dst and src), never as a blocking send followed by a
 * blocking recv: two neighbours both sending first would deadlock once
 * messages exceed MPI's eager limit. */
#ifndef MT_PARALLEL_PIPELINE_H
#define MT_PARALLEL_PIPELINE_H
#include "backend/backend.h"
#include <stddef.h>

enum mt_pp_kind {
    MT_PP_RECV_FWD,          /* RF: recv activation of micro from stage-1 */
    MT_PP_FWD,               /* F */
    MT_PP_SEND_FWD,          /* SF: send activation of micro to stage+1 */
    MT_PP_RECV_BWD,          /* RB: recv output gradient of micro from stage+1 */
    MT_PP_BWD,               /* B */
    MT_PP_SEND_BWD,          /* SB: send input gradient of micro to stage-1 */
    MT_PP_SEND_FWD_RECV_BWD, /* SF<micro>RB<micro2>, one exchange with stage+1 */
    MT_PP_SEND_BWD_RECV_FWD, /* SB<micro>RF<micro2>, one exchange with stage-1 */
};

struct mt_pp_action {
    enum mt_pp_kind kind;
    int micro;  /* the micro-batch computed, sent or received */
    int micro2; /* combined kinds: the micro-batch received (micro is the one
                 * sent); -1 for the other kinds */
};

/* Upper bound on the length of any schedule of n_micro micro-batches. */
#define MT_PP_MAX_ACTIONS(n_micro) (6 * (n_micro))

/* The 1F1B schedule of `stage` (0-based) in a pipeline of `stages` stages
 * for n_micro micro-batches (Megatron's order exactly):
 *   warmup   = min(stages - stage - 1, n_micro) forwards, each preceded by RF
 *              (not on the first stage) and followed by SF (not on the last);
 *   steady   : remaining = n_micro - warmup; RF of the first one if
 *              remaining > 0 (not on the first stage); then for steady i:
 *              F(warmup+i), SF(warmup+i)RB(i) (not on the last stage), B(i),
 *              then SB(i)RF(warmup+i+1), or SB(i) after the last steady one
 *              (neither on the first stage);
 *   cooldown : for the warmup micro-batches w: RB(w) (not on the last stage),
 *              B(w), SB(w) (not on the first stage).
 * stages == 1 gives F0 B0 F1 B1 ... (gradient accumulation).
 * Writes at most max actions to out (out may be NULL when max is 0) and
 * returns how many the schedule has (call with max 0 to size the array), or
 * -1 when stages < 1, stage outside [0, stages) or n_micro < 1. */
int mt_pp_schedule_1f1b(struct mt_pp_action *out, int max, int stages, int stage, int n_micro);

/* The forward-only schedule (validation): each micro-batch received (not on
 * the first stage), forwarded, and sent on (not on the last). Returns the
 * count as mt_pp_schedule_1f1b does. */
int mt_pp_schedule_forward(struct mt_pp_action *out, int max, int stages, int stage, int n_micro);

/* "recv_forward", "forward", "send_forward", "recv_backward", "backward",
 * "send_backward", "send_forward_recv_backward", "send_backward_recv_forward" */
const char *mt_pp_kind_name(enum mt_pp_kind k);

/* Writes the notation above into buf (always NUL-terminated when n > 0,
 * truncated to n bytes); returns the length the full text needs. */
int mt_pp_format(const struct mt_pp_action *a, int n_actions, char *buf, size_t n);

/* Simulates all stages in lock-step and checks that the schedules work
 * together. acts[s] / n_acts[s] is the action list of stage s. Semantics:
 * every send blocks until the neighbour's matching receive is posted
 * (rendezvous: no buffering is assumed, the worst case); a combined action
 * posts its send and its receive together and completes when both have
 * matched (MPI_Sendrecv). Checks:
 *   - no stage sends past the ends of the pipeline or receives from there;
 *   - every send meets a receive of the same direction and micro-batch, in
 *     order, and no stage blocks forever (no deadlock);
 *   - every stage forwards and backwards each micro-batch exactly once;
 *     F(m) only after its activation arrived (RF, not on stage 0), B(m) only
 *     after F(m) and after its gradient arrived (RB, not on the last stage),
 *     SF(m) only after F(m), SB(m) only after B(m); nothing is received twice.
 * Returns 0, or -1 with the first problem in err (stage, action index, what). */
int mt_pp_schedule_check(const struct mt_pp_action *const *acts, const int *n_acts, int stages,
                         int n_micro, char *err, size_t errlen);

/* ---- executing a schedule (pipeline_run.c) ------------------------------------
 * What the executor asks of the stage's model, through callbacks (parallel/
 * knows no model). A stage keeps nslots activation sets; micro-batch k of
 * the step uses slot k % nslots (1F1B finishes micro-batches in order, so
 * at most nslots are in flight). */
struct mt_pp_stage_ops {
    void *user;
    int nslots;
    /* forward of micro-batch `micro` into `slot`; the loss (last stage) or 0 */
    double (*forward)(void *user, int slot, int micro);
    /* backward of the micro-batch in `slot` (its output gradient received
     * into dinput unless the stage is the last) */
    void (*backward)(void *user, int slot, int micro);
    mt_tensor (*input)(void *user, int slot);  /* where the received activation goes */
    mt_tensor (*output)(void *user, int slot); /* what is sent on */
    mt_tensor (*dinput)(void *user);           /* the received output gradient, then the
                                                * input gradient sent back */
};

/* Runs this stage's actions, sending and receiving with the neighbouring
 * stages of the pipeline group pp (this rank is `stage` in it). Returns the
 * sum of the micro-batch losses (0 off the last stage). backward = 0 for a
 * forward-only schedule. */
double mt_pp_execute(mt_backend *be, mt_comm *pp, int stage, const struct mt_pp_action *act,
                     int n, int backward, const struct mt_pp_stage_ops *ops);

#endif /* MT_PARALLEL_PIPELINE_H */
