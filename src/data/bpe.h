/* bpe.h: GPT-2's byte-level BPE tokenizer (Megatron's GPT2BPETokenizer),
 * reading OpenAI's encoder.json + vocab.bpe. Gives exactly the ids of
 * tiktoken's "gpt2" encoding (encode_ordinary: "<|endoftext|>" in the text
 * is plain text; the eod id is only ever inserted by the data pipeline).
 *
 * Normally used through data/tokenizer.h (mt_tokenizer_open with type
 * "GPT2BPETokenizer"); the pieces below are exposed for tests and tools. */
#ifndef MT_BPE_H
#define MT_BPE_H
#include <stddef.h>
#include <stdint.h>

struct mt_bpe;
struct mt_tokenizer;

/* Loads the two files; any problem with them (missing, unreadable,
 * malformed, not belonging together) exits with a user error naming the
 * file and the offset or line. */
struct mt_bpe *mt_bpe_load(const char *vocab_file, const char *merge_file);
void mt_bpe_free(struct mt_bpe *b);
int mt_bpe_vocab_size(const struct mt_bpe *b);
/* id of "<|endoftext|>", or -1 when the vocabulary has none */
int mt_bpe_eod(const struct mt_bpe *b);

/* Appends the ids of text[0..len) to *ids (realloc'd; *n, *cap updated).
 * Any bytes are accepted: invalid UTF-8 still round-trips exactly. Time is
 * O(len log len) in the worst case (one huge pre-token piece). */
void mt_bpe_encode(const struct mt_bpe *b, const char *text, size_t len, int32_t **ids,
                   size_t *n, size_t *cap);
/* Writes the bytes of token id into buf (MT_TOKEN_MAX_BYTES bytes); returns
 * the count, 0 for an id out of range. */
size_t mt_bpe_decode_token(const struct mt_bpe *b, int32_t id, char *buf);

/* Pre-tokenization: the end (byte offset) of the piece of GPT-2's pattern
 * that starts at text[pos], pos < len. */
size_t mt_bpe_next_piece(const char *text, size_t len, size_t pos);

/* Fills *t with a GPT2BPETokenizer (called by mt_tokenizer_open). */
void mt_bpe_tokenizer_open(struct mt_tokenizer *t, const char *vocab_file,
                           const char *merge_file);

#endif
