/* dist.c: see dist.h */
#include "ckpt/dist.h"
#include "core/error.h"
#include "core/io.h"
#include "model/layout.h"
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

/* One buffer's tensors in file order: the owning stage gathers its
 * tensor-parallel shards, its (tp 0, dp 0) rank sends the whole tensor to
 * world rank 0, which writes it. */
static void save_buffer(struct mt_ckpt_writer *w, const struct mt_ckpt_buffer *buf,
                        const struct mt_param_table *gt, const int *owner,
                        const struct mt_param_table *local, const struct mt_groups *G,
                        mt_backend *be, float *host, float *blocks_h, float *dev)
{
    for (int i = 0; i < gt->n; i++) {
        const struct mt_param *gp = &gt->p[i];
        const int stage = owner[i];
        const int src = mt_grid_rank(G->tp_size, G->dp_size, 0, 0, stage);
        if (G->pp_rank == stage && G->dp_rank == 0) {
            const struct mt_param *p = &local->p[mt_params_find(local, gp->name)];
            if (p->split_dim < 0 || G->tp_size == 1) {
                /* replicated: tp rank 0's copy is the tensor (gathering
                 * tp copies would also overflow dev for the largest one) */
                if (G->tp_rank == 0) mt_download(be, host, buf->base + p->offset, gp->numel * sizeof(float));
            } else {
                mt_all_gather(be, G->tp, dev, buf->base + p->offset, p->numel, MT_DTYPE_F32);
                /* the owner knows the split: it assembles the whole tensor */
                if (G->tp_rank == 0) {
                    mt_download(be, blocks_h, dev, gp->numel * sizeof(float));
                    mt_param_unshard(p, G->tp_size, blocks_h, host);
                }
            }
            if (G->tp_rank == 0 && src != 0) {
                mt_upload(be, dev, host, gp->numel * sizeof(float));
                mt_send(be, G->world, dev, gp->numel, MT_DTYPE_F32, 0);
            }
        }
        if (G->world_rank == 0) {
            if (src != 0) {
                mt_recv(be, G->world, dev, gp->numel, MT_DTYPE_F32, src);
                mt_download(be, host, dev, gp->numel * sizeof(float));
            }
            char name[256];
            snprintf(name, sizeof name, "%s%s", buf->prefix, gp->name);
            mt_ckpt_writer_tensor(w, name, gp, host);
        }
    }
}

void mt_ckpt_save_dist(const char *dir, long iteration, const struct mt_kv *meta,
                       const struct mt_transformer_config *cfg, const struct mt_param_table *local,
                       const struct mt_groups *G, mt_backend *be,
                       const struct mt_ckpt_buffer *bufs, int nbufs)
{
    struct mt_param_table gt;
    const int maxt = mt_layout_max_tensors(cfg);
    int *owner = malloc((size_t)maxt * sizeof *owner), *parent = malloc((size_t)maxt * sizeof *parent);
    if (!owner || !parent) mt_die("out of memory");
    mt_layout_global_table(cfg, G->pp_size, &gt, owner);
    /* each buffer's (view's) global and local tables and owners; a view is
     * never larger than the parameters, so the parameters size the buffers */
    enum { MAXBUF = 8 };
    struct mt_param_table vg[MAXBUF], vl[MAXBUF];
    int *vowner[MAXBUF];
    MT_ASSERT(nbufs <= MAXBUF);
    uint32_t ntensors = 0;
    for (int b = 0; b < nbufs; b++) {
        mt_params_view(&gt, bufs[b].view, &vg[b], parent);
        mt_params_view(local, bufs[b].view, &vl[b], NULL);
        vowner[b] = malloc((size_t)(vg[b].n + 1) * sizeof(int));
        if (!vowner[b]) mt_die("out of memory");
        for (int j = 0; j < vg[b].n; j++) vowner[b][j] = owner[parent[j]];
        ntensors += (uint32_t)vg[b].n;
    }
    size_t maxn = 0;
    for (int i = 0; i < gt.n; i++)
        if (gt.p[i].numel > maxn) maxn = gt.p[i].numel;
    float *host = malloc(maxn * sizeof(float)), *blocks_h = malloc(maxn * sizeof(float));
    float *dev = mt_alloc(be, maxn * sizeof(float));
    if (!host || !blocks_h) mt_die("out of memory");
    struct mt_ckpt_writer *w = NULL;
    if (G->world_rank == 0) w = mt_ckpt_writer_open(dir, iteration, meta, ntensors);
    for (int b = 0; b < nbufs; b++) {
        save_buffer(w, &bufs[b], &vg[b], vowner[b], &vl[b], G, be, host, blocks_h, dev);
        mt_params_free(&vg[b]);
        mt_params_free(&vl[b]);
        free(vowner[b]);
    }
    if (w) mt_ckpt_writer_close(w);
    mt_dealloc(be, dev);
    free(host);
    free(blocks_h);
    free(owner);
    free(parent);
    mt_params_free(&gt);
}

/* The largest N of the iter_N directories in dir that hold a complete
 * checkpoint file (-1: none); *count of them. A directory a save was
 * killed in holds only the temporary file and does not count. */
static long newest_iter_dir(const char *dir, int *count)
{
    long best = -1;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        if (strncmp(e->d_name, "iter_", 5) != 0) continue;
        long it = strtol(e->d_name + 5, &end, 10);
        if (*end || end == e->d_name + 5 || it < 0 || !mt_file_exists(mt_ckpt_path(dir, it))) continue;
        (*count)++;
        if (it > best) best = it;
    }
    closedir(d);
    return best;
}

int mt_ckpt_count(const char *dir, long *newest)
{
    int count;
    *newest = newest_iter_dir(dir, &count);
    return count;
}

int mt_ckpt_resolve(const char *dir, long step, char *path, size_t n)
{
    long it = step >= 0 ? step : mt_ckpt_latest(dir);
    if (step < 0 && mt_is_dir(dir)) {
        int count;
        const long newest = newest_iter_dir(dir, &count);
        if (it < 0 && newest >= 0) {
            /* checkpoints without their tracker: never start over on top of them */
            char hint[256];
            snprintf(hint, sizeof hint, "pass --ckpt-step %ld to load the newest, or restore "
                     "latest_checkpointed_iteration.txt; move them away to start from scratch", newest);
            mt_user_error(hint, "%s holds %d checkpoint director%s (newest iter_%07ld) but no "
                          "latest_checkpointed_iteration.txt", dir, count, count == 1 ? "y" : "ies", newest);
        }
        if (it >= 0 && newest > it)
            mt_warn("%s/latest_checkpointed_iteration.txt names iteration %ld, but iter_%07ld is newer; "
                    "loading %ld as the tracker says (--ckpt-step %ld loads the newer one)", dir, it, newest,
                    it, newest);
    }
    if (it < 0) return mt_is_dir(dir) ? -1 : -2;
    snprintf(path, n, "%s", mt_ckpt_path(dir, it));
    if (!mt_file_exists(path))
        mt_user_error("the tracker file names an iteration whose directory is gone; pass "
                      "--ckpt-step with one that exists",
                      "checkpoint %s does not exist", path);
    return 0;
}
