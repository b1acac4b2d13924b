/* checkpoint.h: megatron-c checkpoints.
 *
 * Layout (as Megatron's): DIR/latest_checkpointed_iteration.txt holds the
 * iteration; DIR/iter_0000100/model_optim_rng.mtc holds everything, as whole
 * (unsharded) tensors so that any parallel layout can load it.
 *
 * File format, version 2 (all integers little-endian):
 *   magic "MTCKPT\r\n" (8 bytes), u32 version = 2, u32 reserved = 0
 *   u64 meta_len, meta_len bytes of "key=value\n" lines (configuration,
 *       iteration, consumed samples, optimizer step, dropout seed, ...)
 *   u32 ntensors, u32 crc32 of every byte before it (the header)
 *   per tensor:
 *       u32 name_len, name (e.g. "model/decoder.layers.0.mlp.linear_fc1.weight",
 *       "optim/exp_avg/...", "optim/exp_avg_sq/..."), u32 dtype (0 = f32),
 *       u32 ndim, ndim x i64 dims, u64 nbytes, data,
 *       u32 crc32 of the tensor's bytes from name_len to the end of data
 *   trailer "MTCKEND\n" (8 bytes)
 * Version 1 (still read) had no header checksum and a tensor's crc32 over
 * its data alone. The reader also requires the metadata's iteration to be
 * its directory's (iter_N) and every value to be finite.
 * Files are written to a temporary name (removed if the save fails),
 * fsynced and renamed, the directories fsynced, and the tracker file is
 * updated last the same way, so an interrupted save never replaces a good
 * checkpoint. */
#ifndef MT_CHECKPOINT_H
#define MT_CHECKPOINT_H
#include "backend/backend.h"
#include "model/params.h"
#include <stdint.h>

#define MT_CKPT_VERSION 2

/* Metadata: an ordered list of key/value strings. */
struct mt_kv {
    int n, cap;
    char **key, **val;
};
void mt_kv_set(struct mt_kv *kv, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *mt_kv_get(const struct mt_kv *kv, const char *key); /* NULL if absent */
void mt_kv_free(struct mt_kv *kv);

/* One group of tensors stored in the checkpoint: prefix + table names. */
struct mt_ckpt_group {
    const char *prefix;   /* "model/", "optim/exp_avg/", "optim/exp_avg_sq/" */
    float *base;          /* device flat buffer with the table's offsets */
    int required;         /* on load: missing tensors are an error */
    const struct mt_param_table *table; /* its layout (an optimizer's view); NULL: the
                                         * parameters' table */
};

/* Streaming writer (one process writes; parallel runs gather whole tensors
 * to it). Writes DIR/iter_%07ld/model_optim_rng.mtc.tmp, renamed by close. */
struct mt_ckpt_writer;
struct mt_ckpt_writer *mt_ckpt_writer_open(const char *dir, long iteration,
                                           const struct mt_kv *meta, uint32_t ntensors);
/* name = prefix + parameter name; p gives the global shape; data is host */
void mt_ckpt_writer_tensor(struct mt_ckpt_writer *w, const char *name, const struct mt_param *p,
                           const float *data);
/* Finishes the file and then updates the tracker file. */
void mt_ckpt_writer_close(struct mt_ckpt_writer *w);

/* Before a run: creates dir, checks that a file can be written in it and
 * that `bytes` (one checkpoint) fit in its free space; exits with a
 * message otherwise. */
void mt_ckpt_check_writable(const char *dir, uint64_t bytes);

/* Reads the tracker; returns the iteration, or -1 if DIR has no tracker. */
long mt_ckpt_latest(const char *dir);
/* Path of the checkpoint file of an iteration (static buffer). */
const char *mt_ckpt_path(const char *dir, long iteration);

/* Reads the metadata of a checkpoint file (exits with a message naming the
 * file and field on any defect). */
void mt_ckpt_read_meta(const char *path, struct mt_kv *meta);
/* Reads the tensors of table (this rank's shards) into the groups' buffers,
 * checking names, global shapes and CRCs. Tensors of the model that this
 * rank does not hold (other pipeline stages) are skipped; `known` (may be
 * NULL = table) lists every tensor the model has, and a model tensor outside
 * it is an error. Groups with required = 0 may be absent; returns a bit
 * mask of the groups fully loaded. */
unsigned mt_ckpt_read_tensors(const char *path, const struct mt_param_table *table,
                              const struct mt_param_table *known,
                              const struct mt_ckpt_group *groups, int ngroups, mt_backend *be);

#endif
