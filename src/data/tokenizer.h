/* tokenizer.h: the tokenizer interface used by training, generation and
 * evaluation. Implementations: CharLevel (one token per byte, vocabulary
 * 256: no vocabulary file, any text and any prompt encode),
 * GPT2BPETokenizer (GPT-2's byte-level BPE from encoder.json + vocab.bpe,
 * data/bpe.c; the shipped files are in data/gpt2-vocab/), BERT's WordPiece
 * BertWordPieceLowerCase / BertWordPieceCase (vocab.txt, data/wordpiece.c;
 * the uncased vocabulary is in data/bert-vocab/) and Megatron's
 * NullTokenizer (text is the ids themselves, written as decimal numbers
 * separated by spaces; --vocab-size N ids plus the end-of-document id N:
 * for datasets already tokenized, and models whose tokenizer megatron-c
 * does not have, e.g. one converted from Hugging Face). */
#ifndef MT_TOKENIZER_H
#define MT_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

/* Longest token in bytes over all tokenizers: GPT-2's longest is 128 bytes.
 * Buffers handed to decode_token must hold this many. */
#define MT_TOKEN_MAX_BYTES 128

struct mt_tokenizer {
    const char *type;  /* Megatron's --tokenizer-type name, e.g. "CharLevel" */
    int vocab_size;    /* real vocabulary (before padding) */
    int eod;           /* end-of-document id, or -1 */
    int cls, sep, pad, mask; /* BERT's special ids ([CLS] [SEP] [PAD] [MASK]), or -1 */
    int appended;      /* ids Megatron appends after the file's ([BOS], [EOS]); text never encodes to them */
    void *impl;
    /* appends the ids of text[0..len) to *ids (realloc'd, *n updated) */
    void (*encode)(const struct mt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                   size_t *n, size_t *cap);
    /* writes the bytes of one token into buf (MT_TOKEN_MAX_BYTES bytes); returns the
     * count (0 for an id outside the vocabulary) */
    size_t (*decode_token)(const struct mt_tokenizer *t, int32_t id, char *buf);
    void (*free)(struct mt_tokenizer *t);
};

/* Opens a tokenizer by Megatron type name. vocab_file / merge_file may be
 * NULL where the type needs none; vocab_size is Megatron's --vocab-size
 * (NullTokenizer only: ids below it, and it the end of document; 0
 * otherwise). Exits with a user error on failure. */
void mt_tokenizer_open(struct mt_tokenizer *t, const char *type, const char *vocab_file,
                       const char *merge_file, int vocab_size);
void mt_tokenizer_close(struct mt_tokenizer *t);
/* Convenience: encodes a whole buffer into a freshly malloc'd array. */
int32_t *mt_tokenizer_encode_all(const struct mt_tokenizer *t, const char *text, size_t len,
                                 size_t *n_out);
/* A generation prompt: the ids of text, or, when it encodes to nothing (a
 * newline under NullTokenizer), the end-of-document id alone, from which
 * Megatron starts unconditional generation; *n_out 0 if there is neither. */
int32_t *mt_tokenizer_encode_prompt(const struct mt_tokenizer *t, const char *text, size_t *n_out);
/* The tokenizer type vocabulary files describe, for a command given
 * --vocab-file / --merge-file without --tokenizer-type (Megatron's older
 * scripts pass none): a merge file or a JSON vocabulary is GPT-2's BPE, a
 * vocabulary of one token per line BERT's WordPiece (cased when its tokens
 * hold capitals). With `given` (the --tokenizer-type of the command line),
 * checks instead that the files fit it. Exits with a user error naming the
 * file when they fit no type, or not the given one. */
const char *mt_tokenizer_infer(const char *given, const char *vocab_file, const char *merge_file);
/* Known type names, comma separated, for messages. */
const char *mt_tokenizer_types(void);

#endif
