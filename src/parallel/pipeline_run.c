/* pipeline_run.c: executing a pipeline schedule (pipeline.h). */
#include "parallel/pipeline.h"
#include "core/error.h"

static size_t count_of(mt_tensor t) { return (size_t)mt_numel(t); }

double mt_pp_execute(mt_backend *be, mt_comm *pp, int stage, const struct mt_pp_action *act,
                     int n, int backward, const struct mt_pp_stage_ops *ops)
{
    const int prev = stage - 1, next = stage + 1, ns = ops->nslots;
    void *u = ops->user;
    /* forwards and backwards are counted here (1F1B finishes them in order),
     * so the combined steps know which slot they move */
    int nf = 0, nb = 0;
    double loss = 0.0;
    for (int i = 0; i < n; i++) {
        const int fslot = nf % ns, lslot = (nf + ns - 1) % ns;
        mt_tensor in = ops->input(u, fslot), out, din;
        switch (act[i].kind) {
        case MT_PP_RECV_FWD: mt_recv(be, pp, in.data, count_of(in), in.dtype, prev); break;
        case MT_PP_FWD:
            loss += ops->forward(u, fslot, nf);
            nf++;
            break;
        case MT_PP_SEND_FWD:
            out = ops->output(u, lslot);
            mt_send(be, pp, out.data, count_of(out), out.dtype, next);
            break;
        case MT_PP_RECV_BWD:
            din = ops->dinput(u);
            mt_recv(be, pp, din.data, count_of(din), din.dtype, next);
            break;
        case MT_PP_BWD:
            MT_ASSERT(backward);
            ops->backward(u, nb % ns, nb);
            nb++;
            break;
        case MT_PP_SEND_BWD:
            din = ops->dinput(u);
            mt_send(be, pp, din.data, count_of(din), din.dtype, prev);
            break;
        case MT_PP_SEND_FWD_RECV_BWD:
            out = ops->output(u, lslot);
            din = ops->dinput(u);
            mt_sendrecv(be, pp, out.data, next, din.data, next, count_of(out), out.dtype);
            break;
        case MT_PP_SEND_BWD_RECV_FWD:
            din = ops->dinput(u);
            mt_sendrecv(be, pp, din.data, prev, in.data, prev, count_of(din), din.dtype);
            break;
        }
    }
    MT_ASSERT(backward ? nb == nf : nb == 0);
    return loss;
}
