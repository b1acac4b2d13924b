/* safetensors.h: Hugging Face's safetensors files, read and written in C.
 *
 * Format: u64 (little-endian) header length N, then N bytes of JSON: an
 * object with, per tensor, {"dtype": "F32" | "F16" | "BF16" | ...,
 * "shape": [...], "data_offsets": [begin, end]} (offsets into the data that
 * follows the header) and an optional "__metadata__" object of strings.
 * The reader checks every entry (known dtype, the bytes the shape needs,
 * offsets inside the file, no overlap) and converts F32, F16 and BF16 to
 * f32; the writer writes F32, F16 or BF16 (rounded to nearest even), the
 * header padded with spaces to a multiple of 8 bytes as the reference
 * implementation does.
 *
 * A checkpoint directory holds model.safetensors, or shards listed by
 * model.safetensors.index.json ({"weight_map": {name: file}}); mt_st_dir
 * opens either. */
#ifndef MT_INTEROP_SAFETENSORS_H
#define MT_INTEROP_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/half.h" /* the 16-bit float conversions its users round with */

enum mt_st_dtype { MT_ST_F32, MT_ST_F16, MT_ST_BF16, MT_ST_F64, MT_ST_I64, MT_ST_I32, MT_ST_OTHER };

struct mt_st_tensor {
    char *name;
    enum mt_st_dtype dtype;
    char dtype_name[16]; /* as written in the header */
    int ndim;
    int64_t shape[8];
    uint64_t begin, end; /* byte offsets in the data section */
    int used;            /* set by callers that check every tensor was read */
};

struct mt_st_file {
    char path[4200];
    FILE *f;
    uint64_t data_start; /* 8 + header length */
    uint64_t size;       /* of the file */
    int n;
    struct mt_st_tensor *t;
};

/* Opens and validates a file; 0, or -1 with a message naming the file and
 * what is wrong. */
int mt_st_open(struct mt_st_file *s, const char *path, char *err, size_t errlen);
void mt_st_close(struct mt_st_file *s);
struct mt_st_tensor *mt_st_find(struct mt_st_file *s, const char *name);
int64_t mt_st_numel(const struct mt_st_tensor *t);
/* Reads tensor t into out (numel floats), converting F32/F16/BF16; 0, or
 * -1 with a message (another dtype, a read error). */
int mt_st_read_f32(struct mt_st_file *s, const struct mt_st_tensor *t, float *out, char *err,
                   size_t errlen);

/* The tensors of a checkpoint directory, over one or more files. */
struct mt_st_dir {
    int nfiles;
    struct mt_st_file *files;
};
int mt_st_dir_open(struct mt_st_dir *d, const char *dir, char *err, size_t errlen);
void mt_st_dir_close(struct mt_st_dir *d);
/* The tensor and its file, or NULL. */
struct mt_st_tensor *mt_st_dir_find(struct mt_st_dir *d, const char *name, struct mt_st_file **file);

/* Writing: declare every tensor (name, stored dtype F32, F16 or BF16,
 * shape), then write their data in the order declared, as f32 (converted
 * when stored narrower). The file is written under a temporary name and
 * renamed by close. */
struct mt_st_writer;
struct mt_st_writer *mt_st_writer_new(const char *path);
void mt_st_writer_declare(struct mt_st_writer *w, const char *name, enum mt_st_dtype dtype,
                          int ndim, const int64_t *shape);
/* metadata: "__metadata__" entries (format "pt" is always written) */
void mt_st_writer_metadata(struct mt_st_writer *w, const char *key, const char *value);
void mt_st_writer_data(struct mt_st_writer *w, const char *name, const float *data);
/* Writes the remaining parts and closes; exits with a message on I/O errors. */
void mt_st_writer_close(struct mt_st_writer *w);

/* "F32" | "F16" | "BF16" -> dtype (MT_ST_OTHER if none) and back */
enum mt_st_dtype mt_st_dtype_parse(const char *s);
const char *mt_st_dtype_name(enum mt_st_dtype t);

#endif /* MT_INTEROP_SAFETENSORS_H */
