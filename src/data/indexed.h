/* indexed.h: Megatron's indexed dataset, PREFIX.bin + PREFIX.idx ("MMIDIDX",
 * version 1), read and written byte for byte as megatron/core/datasets/
 * indexed_dataset.py does (doc/ and the reference, section 2.1):
 *
 *   .idx  0  magic "MMIDIDX\0\0"        9 bytes
 *         9  version, u64 = 1
 *        17  dtype code, u8 (4 = int32, 8 = uint16 are the token types)
 *        18  sequence_count N, u64
 *        26  document_count M, u64 (= number of documents + 1)
 *        34  sequence_lengths  int32[N]
 *            sequence_pointers int64[N]  (byte offsets into .bin)
 *            document_indices  int64[M]  (0, end of doc 0, ..., N)
 *            [sequence_modes int8[N]: multimodal datasets only; ignored]
 *   .bin  the tokens of every sequence in order, in the dtype, no header.
 * All little-endian, no alignment padding.
 *
 * Nothing here exits: every function that can meet bad input returns -1 (or
 * NULL) with a message in err naming the file and the field, e.g.
 * "x.idx: sequence_pointers[17] = 123456 points past the end of x.bin (1000
 * bytes)"; the command layer passes it to mt_user_error. */
#ifndef MT_INDEXED_H
#define MT_INDEXED_H
#include <stddef.h>
#include <stdint.h>

/* dtype codes of Megatron's DType enum */
enum { MT_IDX_UINT8 = 1, MT_IDX_INT8 = 2, MT_IDX_INT16 = 3, MT_IDX_INT32 = 4, MT_IDX_INT64 = 5,
       MT_IDX_FLOAT64 = 6, MT_IDX_FLOAT32 = 7, MT_IDX_UINT16 = 8 };

/* DType.optimal_dtype: uint16 when vocab_size < 65500, else int32. */
int mt_indexed_optimal_dtype(int vocab_size);
/* "uint16", "int32", ... or "unknown" */
const char *mt_indexed_dtype_name(int code);

/* ---- reader ------------------------------------------------------------------- */

struct mt_indexed {
    char *prefix, *idx_path, *bin_path;
    int dtype;                /* MT_IDX_INT32 or MT_IDX_UINT16 */
    int itemsize;             /* 4 or 2 */
    uint64_t num_sequences;   /* N */
    uint64_t num_doc_indices; /* M = documents + 1 */
    uint64_t bin_size;        /* bytes */
    /* internals */
    const unsigned char *idx; /* the whole .idx (mapped or read) */
    size_t idx_size;
    int idx_mapped;
    const unsigned char *bin; /* the mapped .bin, or NULL: then read with pread */
    int bin_fd;
};

/* Opens PREFIX.idx and PREFIX.bin (prefix without extension, as Megatron's
 * --data-path) and checks every field: sizes, magic, version, dtype, counts,
 * lengths >= 0, pointers consecutive and inside .bin, .bin size equal to the
 * end of the last sequence, document_indices from 0 up to N. Returns NULL
 * with a message in err on any defect. */
struct mt_indexed *mt_indexed_open(const char *prefix, char *err, size_t errlen);
void mt_indexed_close(struct mt_indexed *x);

/* Field access (i < num_sequences, j < num_doc_indices). Unaligned-safe. */
int32_t mt_indexed_length(const struct mt_indexed *x, uint64_t i);
int64_t mt_indexed_pointer(const struct mt_indexed *x, uint64_t i);
int64_t mt_indexed_doc_index(const struct mt_indexed *x, uint64_t j);

/* Tokens [offset, offset + len) of sequence i as int32 into out. The range
 * must lie inside the sequence (a checked internal invariant). */
void mt_indexed_read(const struct mt_indexed *x, uint64_t i, uint64_t offset, uint64_t len,
                     int32_t *out);

/* ---- writer ------------------------------------------------------------------- */

struct mt_indexed_writer;

/* Starts PREFIX.bin / PREFIX.idx with the dtype (MT_IDX_UINT16 or
 * MT_IDX_INT32). Everything goes to temporary names next to the final ones
 * (PREFIX.bin.tmp-PID, ...); the .bin is written as documents come. */
struct mt_indexed_writer *mt_indexed_writer_open(const char *prefix, int dtype, char *err,
                                                 size_t errlen);
/* Appends one document of n tokens as one sequence (GPT: one sequence per
 * document), like IndexedDatasetBuilder.add_document(ids, [n]). A document
 * of 0 tokens adds no sequence but still a document boundary, as Megatron's
 * builder does with an empty lengths list. Fails when a token does not fit
 * the dtype. Same as: n > 0 ? append + end_sequence : nothing; end_document. */
int mt_indexed_writer_add(struct mt_indexed_writer *w, const int32_t *ids, size_t n, char *err,
                          size_t errlen);
/* The streaming form: append tokens to the open sequence (any number of
 * calls), close it, and close the document (several sequences per document
 * are allowed, as Megatron's sentence-level datasets have). */
int mt_indexed_writer_append(struct mt_indexed_writer *w, const int32_t *ids, size_t n,
                             char *err, size_t errlen);
int mt_indexed_writer_end_sequence(struct mt_indexed_writer *w, char *err, size_t errlen);
int mt_indexed_writer_end_document(struct mt_indexed_writer *w, char *err, size_t errlen);
/* tokens appended to the open sequence so far */
uint64_t mt_indexed_writer_pending(const struct mt_indexed_writer *w);
/* Writes the .idx, then renames both files to their final names (an open
 * sequence must have been ended). Frees w (also on failure, after removing
 * the temporary files). */
int mt_indexed_writer_finalize(struct mt_indexed_writer *w, char *err, size_t errlen);
/* Removes the temporary files and frees w. */
void mt_indexed_writer_abort(struct mt_indexed_writer *w);
/* Counts so far. */
uint64_t mt_indexed_writer_documents(const struct mt_indexed_writer *w);
uint64_t mt_indexed_writer_tokens(const struct mt_indexed_writer *w);
uint64_t mt_indexed_writer_sequences(const struct mt_indexed_writer *w);

#endif
