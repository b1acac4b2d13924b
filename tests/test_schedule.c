/* test_schedule.c: the pipeline schedule and the rank grid, as pure data.
 *
 * The expected 1F1B action lists below were written out by hand from
 * Megatron's forward_backward_pipelining_without_interleaving (warmup =
 * min(stages - stage - 1, micro); recv_forward before the steady state;
 * forward, send_forward_recv_backward, backward, send_backward_recv_forward
 * or send_backward; cooldown recv_backward, backward, send_backward; the p2p
 * calls that are no-ops on the first or last stage dropped), not produced by
 * the code under test. Notation: see src/parallel/pipeline.h.
 * The group table for 8 ranks, tp 2, pp 2 is written out the same way from
 * rank = tp_rank + tp * (dp_rank + dp * pp_rank). */
#include "parallel/grid.h"
#include "parallel/pipeline.h"
#include "tap.h"
#include <stdlib.h>
#include <string.h>

struct expect {
    int stages, micro;
    const char *per_stage[8];
};

static const struct expect cases[] = {
    {1, 4, {"F0 B0 F1 B1 F2 B2 F3 B3"}},
    {2, 4,
     {"F0 SF0 F1 SF1RB0 B0 F2 SF2RB1 B1 F3 SF3RB2 B2 RB3 B3",
      "RF0 F0 B0 SB0RF1 F1 B1 SB1RF2 F2 B2 SB2RF3 F3 B3 SB3"}},
    {4, 8,
     {"F0 SF0 F1 SF1 F2 SF2 F3 SF3RB0 B0 F4 SF4RB1 B1 F5 SF5RB2 B2 F6 SF6RB3 B3 F7 SF7RB4 B4 "
      "RB5 B5 RB6 B6 RB7 B7",
      "RF0 F0 SF0 RF1 F1 SF1 RF2 F2 SF2RB0 B0 SB0RF3 F3 SF3RB1 B1 SB1RF4 F4 SF4RB2 B2 SB2RF5 "
      "F5 SF5RB3 B3 SB3RF6 F6 SF6RB4 B4 SB4RF7 F7 SF7RB5 B5 SB5 RB6 B6 SB6 RB7 B7 SB7",
      "RF0 F0 SF0 RF1 F1 SF1RB0 B0 SB0RF2 F2 SF2RB1 B1 SB1RF3 F3 SF3RB2 B2 SB2RF4 F4 SF4RB3 B3 "
      "SB3RF5 F5 SF5RB4 B4 SB4RF6 F6 SF6RB5 B5 SB5RF7 F7 SF7RB6 B6 SB6 RB7 B7 SB7",
      "RF0 F0 B0 SB0RF1 F1 B1 SB1RF2 F2 B2 SB2RF3 F3 B3 SB3RF4 F4 B4 SB4RF5 F5 B5 SB5RF6 F6 B6 "
      "SB6RF7 F7 B7 SB7"}},
    /* fewer micro-batches than stages: warmup is capped by the micro count */
    {4, 2,
     {"F0 SF0 F1 SF1 RB0 B0 RB1 B1",
      "RF0 F0 SF0 RF1 F1 SF1 RB0 B0 SB0 RB1 B1 SB1",
      "RF0 F0 SF0 RF1 F1 SF1RB0 B0 SB0 RB1 B1 SB1",
      "RF0 F0 B0 SB0RF1 F1 B1 SB1"}},
    {3, 5,
     {"F0 SF0 F1 SF1 F2 SF2RB0 B0 F3 SF3RB1 B1 F4 SF4RB2 B2 RB3 B3 RB4 B4",
      "RF0 F0 SF0 RF1 F1 SF1RB0 B0 SB0RF2 F2 SF2RB1 B1 SB1RF3 F3 SF3RB2 B2 SB2RF4 F4 SF4RB3 B3 "
      "SB3 RB4 B4 SB4",
      "RF0 F0 B0 SB0RF1 F1 B1 SB1RF2 F2 B2 SB2RF3 F3 B3 SB3RF4 F4 B4 SB4"}},
    {2, 1, {"F0 SF0 RB0 B0", "RF0 F0 B0 SB0"}},
};

/* ---- parsing the notation back, for hand-written (mutated) schedules ---- */

static int parse_one(const char *tok, struct mt_pp_action *a)
{
    int m = -1, n = -1;
    a->micro2 = -1;
    if (sscanf(tok, "SF%dRB%d", &m, &n) == 2) *a = (struct mt_pp_action){MT_PP_SEND_FWD_RECV_BWD, m, n};
    else if (sscanf(tok, "SB%dRF%d", &m, &n) == 2)
        *a = (struct mt_pp_action){MT_PP_SEND_BWD_RECV_FWD, m, n};
    else if (sscanf(tok, "RF%d", &m) == 1) *a = (struct mt_pp_action){MT_PP_RECV_FWD, m, -1};
    else if (sscanf(tok, "RB%d", &m) == 1) *a = (struct mt_pp_action){MT_PP_RECV_BWD, m, -1};
    else if (sscanf(tok, "SF%d", &m) == 1) *a = (struct mt_pp_action){MT_PP_SEND_FWD, m, -1};
    else if (sscanf(tok, "SB%d", &m) == 1) *a = (struct mt_pp_action){MT_PP_SEND_BWD, m, -1};
    else if (sscanf(tok, "F%d", &m) == 1) *a = (struct mt_pp_action){MT_PP_FWD, m, -1};
    else if (sscanf(tok, "B%d", &m) == 1) *a = (struct mt_pp_action){MT_PP_BWD, m, -1};
    else return -1;
    return 0;
}

static int parse(const char *s, struct mt_pp_action *out, int max)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        if (n >= max || parse_one(tok, &out[n]) != 0) return -1;
        n++;
    }
    return n;
}

/* check a hand-written multi-stage schedule; returns the checker's result */
static int check_written(int stages, int micro, const char *const *lists, char *err, size_t len)
{
    struct mt_pp_action acts[8][128];
    const struct mt_pp_action *ptr[8];
    int n[8];
    for (int s = 0; s < stages; s++) {
        n[s] = parse(lists[s], acts[s], 128);
        if (n[s] < 0) {
            snprintf(err, len, "unparsable test schedule '%s'", lists[s]);
            return -2;
        }
        ptr[s] = acts[s];
    }
    return mt_pp_schedule_check(ptr, n, stages, micro, err, len);
}

static void test_expected(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct expect *e = &cases[i];
        for (int s = 0; s < e->stages; s++) {
            struct mt_pp_action a[256];
            char got[4096];
            int n = mt_pp_schedule_1f1b(a, 256, e->stages, s, e->micro);
            int need = mt_pp_schedule_1f1b(NULL, 0, e->stages, s, e->micro);
            mt_pp_format(a, n, got, sizeof got);
            int ok = n == need && strcmp(got, e->per_stage[s]) == 0;
            if (!tap_ok(ok, "1f1b stages %d micro %d stage %d", e->stages, e->micro, s)) {
                tap_diag("got:  %s", got);
                tap_diag("want: %s", e->per_stage[s]);
            }
        }
        char err[512];
        int r = check_written(e->stages, e->micro, e->per_stage, err, sizeof err);
        if (!tap_ok(r == 0, "simulator accepts the hand-written stages %d micro %d", e->stages,
                    e->micro))
            tap_diag("%s", err);
    }
}

static void test_simulate_all(void)
{
    for (int P = 1; P <= 8; P++) {
        int bad = 0;
        for (int M = 1; M <= 16 && !bad; M++) {
            struct mt_pp_action *acts[8];
            const struct mt_pp_action *ptr[8];
            int n[8];
            for (int s = 0; s < P; s++) {
                n[s] = mt_pp_schedule_1f1b(NULL, 0, P, s, M);
                acts[s] = malloc(sizeof(struct mt_pp_action) * (size_t)(n[s] > 0 ? n[s] : 1));
                mt_pp_schedule_1f1b(acts[s], n[s], P, s, M);
                ptr[s] = acts[s];
                /* count: every micro forwarded and backwarded once, bounded length */
                int f = 0, b = 0;
                for (int k = 0; k < n[s]; k++) {
                    f += acts[s][k].kind == MT_PP_FWD;
                    b += acts[s][k].kind == MT_PP_BWD;
                }
                if (f != M || b != M || n[s] > MT_PP_MAX_ACTIONS(M)) {
                    tap_diag("stages %d micro %d stage %d: %d F, %d B, %d actions", P, M, s, f, b,
                             n[s]);
                    bad = 1;
                }
            }
            char err[512];
            if (!bad && mt_pp_schedule_check(ptr, n, P, M, err, sizeof err) != 0) {
                tap_diag("stages %d micro %d: %s", P, M, err);
                bad = 1;
            }
            for (int s = 0; s < P; s++) free(acts[s]);
        }
        tap_ok(!bad, "simulator: stages %d x micro 1..16 run without deadlock", P);
    }
}

/* The checker must reject broken schedules, with a message that says why. */
static void test_simulator_rejects(void)
{
    struct {
        const char *name, *pattern;
        int stages, micro;
        const char *lists[3];
    } bad[] = {
        {"plain blocking sends both ways deadlock", "deadlock", 2, 2,
         {"F0 SF0 F1 SF1 RB0 B0 RB1 B1", "RF0 F0 B0 SB0 RF1 F1 B1 SB1"}},
        {"receive order differs from send order", "expects the activation of micro-batch 1", 2, 2,
         {"F0 SF0 F1 SF1 RB0 B0 RB1 B1", "RF1 F1 RF0 F0 B0 SB0 B1 SB1"}},
        {"backward before forward", "before its forward", 1, 2, {"F0 B1 F1 B0"}},
        {"forward before the activation arrived", "before its activation arrived", 2, 1,
         {"F0 SF0 RB0 B0", "F0 RF0 B0 SB0"}},
        {"backward before the gradient arrived", "before its output gradient arrived", 2, 1,
         {"F0 SF0 B0 RB0", "RF0 F0 B0 SB0"}},
        {"a micro-batch never backwarded", "never backwarded", 1, 2, {"F0 B0 F1"}},
        {"forwarded twice", "forwarded twice", 1, 1, {"F0 F0 B0"}},
        {"last stage sends forward", "no next stage", 2, 1, {"F0 SF0 RB0 B0", "RF0 F0 SF0 B0 SB0"}},
        {"first stage receives forward", "no previous stage", 2, 1,
         {"RF0 F0 SF0 RB0 B0", "RF0 F0 B0 SB0"}},
        {"a send nobody receives", "deadlock", 3, 1,
         {"F0 SF0 RB0 B0", "RF0 F0 SF0 RB0 B0 SB0", "RF0 F0 B0"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        int r = check_written(bad[i].stages, bad[i].micro, bad[i].lists, err, sizeof err);
        if (!tap_ok(r == -1 && strstr(err, bad[i].pattern) != NULL, "simulator rejects: %s",
                    bad[i].name))
            tap_diag("result %d, message: %s", r, err);
    }
}

static void test_misc(void)
{
    struct mt_pp_action a[4];
    tap_ok(mt_pp_schedule_1f1b(a, 4, 0, 0, 4) == -1 && mt_pp_schedule_1f1b(a, 4, 2, 2, 4) == -1 &&
               mt_pp_schedule_1f1b(a, 4, 2, 0, 0) == -1,
           "1f1b rejects bad arguments");
    /* truncated output: returns the full length, writes only max */
    int n = mt_pp_schedule_1f1b(a, 2, 1, 0, 4);
    tap_ok(n == 8 && a[0].kind == MT_PP_FWD && a[1].kind == MT_PP_BWD, "1f1b with a short array");
    tap_ok(strcmp(mt_pp_kind_name(MT_PP_SEND_FWD_RECV_BWD), "send_forward_recv_backward") == 0 &&
               strcmp(mt_pp_kind_name(MT_PP_RECV_FWD), "recv_forward") == 0,
           "kind names");
    char small[8];
    struct mt_pp_action b[3] = {{MT_PP_FWD, 0, -1}, {MT_PP_SEND_FWD_RECV_BWD, 12, 3}, {MT_PP_BWD, 0, -1}};
    int len = mt_pp_format(b, 3, small, sizeof small);
    tap_ok(len == (int)strlen("F0 SF12RB3 B0") && strcmp(small, "F0 SF12") == 0,
           "format truncates and returns the full length");
}

/* ---- the rank grid ---------------------------------------------------------- */

static const char *table_8_2_2 =
    "world size 8 = tensor-model-parallel 2 x data-parallel 2 x pipeline-model-parallel 2\n"
    "rank = tp_rank + 2 * (dp_rank + 2 * pp_rank)\n"
    "tensor-model-parallel groups: [0, 1] [2, 3] [4, 5] [6, 7]\n"
    "data-parallel groups: [0, 2] [1, 3] [4, 6] [5, 7]\n"
    "pipeline-model-parallel groups: [0, 4] [1, 5] [2, 6] [3, 7]\n"
    "embedding groups: [0, 4] [1, 5] [2, 6] [3, 7]\n"
    "model-parallel groups: [0, 1, 4, 5] [2, 3, 6, 7]\n";

/* 16 ranks, tp 2, pp 4 (dp 2): embedding groups join stages 0 and 3 only */
static const char *table_16_2_4 =
    "world size 16 = tensor-model-parallel 2 x data-parallel 2 x pipeline-model-parallel 4\n"
    "rank = tp_rank + 2 * (dp_rank + 2 * pp_rank)\n"
    "tensor-model-parallel groups: [0, 1] [2, 3] [4, 5] [6, 7] [8, 9] [10, 11] [12, 13] [14, 15]\n"
    "data-parallel groups: [0, 2] [1, 3] [4, 6] [5, 7] [8, 10] [9, 11] [12, 14] [13, 15]\n"
    "pipeline-model-parallel groups: [0, 4, 8, 12] [1, 5, 9, 13] [2, 6, 10, 14] [3, 7, 11, 15]\n"
    "embedding groups: [0, 12] [1, 13] [2, 14] [3, 15]\n"
    "model-parallel groups: [0, 1, 4, 5, 8, 9, 12, 13] [2, 3, 6, 7, 10, 11, 14, 15]\n";

static const char *table_4_1_1 =
    "world size 4 = tensor-model-parallel 1 x data-parallel 4 x pipeline-model-parallel 1\n"
    "rank = tp_rank + 1 * (dp_rank + 4 * pp_rank)\n"
    "tensor-model-parallel groups: [0] [1] [2] [3]\n"
    "data-parallel groups: [0, 1, 2, 3]\n"
    "pipeline-model-parallel groups: [0] [1] [2] [3]\n"
    "embedding groups: none\n"
    "model-parallel groups: [0] [1] [2] [3]\n";

static void test_grid(void)
{
    char buf[2048];
    int n = mt_groups_describe(NULL, 8, 2, 2, buf, sizeof buf);
    if (!tap_ok(n == (int)strlen(table_8_2_2) && strcmp(buf, table_8_2_2) == 0,
                "group table: 8 ranks, tp 2, pp 2 (dp 2)"))
        tap_diag("got:\n%s", buf);
    mt_groups_describe(NULL, 16, 2, 4, buf, sizeof buf);
    if (!tap_ok(strcmp(buf, table_16_2_4) == 0, "group table: 16 ranks, tp 2, pp 4 (dp 2)"))
        tap_diag("got:\n%s", buf);
    mt_groups_describe(NULL, 4, 1, 1, buf, sizeof buf);
    if (!tap_ok(strcmp(buf, table_4_1_1) == 0, "group table: 4 ranks, pure data parallel"))
        tap_diag("got:\n%s", buf);
    char tiny[10];
    n = mt_groups_describe(NULL, 8, 2, 2, tiny, sizeof tiny);
    tap_ok(n == (int)strlen(table_8_2_2) && strlen(tiny) == 9, "group table truncates safely");

    /* coordinates round-trip for 24 = tp 2 x dp 3 x pp 4 */
    int ok = 1;
    for (int r = 0; r < 24; r++) {
        int t, d, p;
        mt_grid_coords(r, 2, 3, &t, &d, &p);
        ok &= t == r % 2 && d == (r / 2) % 3 && p == r / 6 && mt_grid_rank(2, 3, t, d, p) == r;
    }
    tap_ok(ok, "rank <-> (tp, dp, pp) coordinates, tp fastest");

    /* invalid layouts, with the numbers in the message */
    struct {
        int world, tp, pp;
        const char *msg;
    } badl[] = {
        {6, 4, 1, "world size 6 is not divisible by tensor-model-parallel-size 4 x "
                  "pipeline-model-parallel-size 1"},
        {8, 3, 1, "world size 8 is not divisible by tensor-model-parallel-size 3 x "
                  "pipeline-model-parallel-size 1"},
        {12, 2, 4, "world size 12 is not divisible by tensor-model-parallel-size 2 x "
                   "pipeline-model-parallel-size 4"},
        {4, 0, 1, "tensor-model-parallel-size (0) and pipeline-model-parallel-size (1) must be "
                  "at least 1"},
    };
    for (size_t i = 0; i < sizeof badl / sizeof badl[0]; i++) {
        char err[256] = "";
        int r = mt_groups_check(badl[i].world, badl[i].tp, badl[i].pp, err, sizeof err);
        if (!tap_ok(r == -1 && strcmp(err, badl[i].msg) == 0, "layout rejected: world %d tp %d pp %d",
                    badl[i].world, badl[i].tp, badl[i].pp))
            tap_diag("got: %s", err);
    }
    char err[256];
    tap_ok(mt_groups_check(8, 2, 2, err, sizeof err) == 0 && mt_groups_check(1, 1, 1, err, sizeof err) == 0,
           "valid layouts accepted");

    /* the groups on this process's world (one rank unless run under mpiexec) */
    mt_backend *be = mt_backend_init("cpu", err, sizeof err);
    if (!be) {
        tap_ok(0, "cpu backend: %s", err);
        return;
    }
    const int world = mt_comm_size(be, mt_comm_world(be));
    struct mt_groups g;
    int r = mt_groups_init(&g, be, 1, 1, err, sizeof err);
    tap_ok(r == 0 && g.world_size == world && g.tp_size == 1 && g.pp_size == 1 &&
               g.dp_size == world && mt_comm_size(be, g.tp) == 1 && mt_comm_size(be, g.dp) == world &&
               mt_comm_rank(be, g.dp) == g.world_rank && g.embd == NULL && mt_comm_size(be, g.mp) == 1,
           "mt_groups_init tp 1 pp 1 on a world of %d", world);
    mt_groups_free(&g, be);
    r = mt_groups_init(&g, be, world + 1, 1, err, sizeof err);
    char want[256];
    snprintf(want, sizeof want,
             "world size %d is not divisible by tensor-model-parallel-size %d x "
             "pipeline-model-parallel-size 1",
             world, world + 1);
    if (!tap_ok(r == -1 && strcmp(err, want) == 0 && g.tp == NULL, "mt_groups_init rejects tp %d",
                world + 1))
        tap_diag("got: %s", err);
    mt_backend_free(be);
}

int main(void)
{
    test_expected();
    test_simulate_all();
    test_simulator_rejects();
    test_misc();
    test_grid();
    return tap_done();
}
