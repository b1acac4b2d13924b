/* wordpiece.h: BERT's WordPiece tokenizer (Megatron's BertWordPieceLowerCase
 * and BertWordPieceCase), reading a vocab.txt (one token per line, the line
 * number is the id). Gives exactly the ids of Hugging Face's BertTokenizer
 * (the tokenizers-backed one of transformers 5; encode without special
 * tokens):
 *
 *   1. the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] written in the
 *      text are matched first, as they are (case-sensitive, also inside a
 *      word), and become their ids;
 *   2. normalisation, per character (data/wordpiece_tables.c): controls,
 *      NUL and U+FFFD removed, whitespace made a space, CJK ideographs
 *      padded with spaces; uncased: NFD, nonspacing marks removed,
 *      lowercased. Invalid UTF-8 reads as U+FFFD, so it is removed;
 *   3. words split at spaces, punctuation characters split off alone;
 *   4. each word greedily into the longest vocabulary pieces from its
 *      start, continuations prefixed "##"; a word with a piece that is in
 *      no entry, or of over 100 characters, is [UNK] as a whole.
 *
 * Megatron's own tokenizer is Google's Python original, which differs on
 * rare characters (it keeps unassigned and private-use code points, and
 * knows Unicode by Python's tables) and does not match special tokens in
 * the text. Like Megatron, the vocabulary is extended by [BOS] and [EOS]
 * when the file has neither (so the uncased vocabulary has 30524 ids and
 * pads to Megatron's 30592). */
#ifndef MT_WORDPIECE_H
#define MT_WORDPIECE_H
#include <stddef.h>
#include <stdint.h>

struct mt_wordpiece;
struct mt_tokenizer;

/* Loads vocab_file; lower: the uncased rules. Exits with a user error
 * naming the file and line on any problem (missing file, no [UNK], a
 * token used twice, a line too long). */
struct mt_wordpiece *mt_wordpiece_load(const char *vocab_file, int lower);
void mt_wordpiece_free(struct mt_wordpiece *w);
int mt_wordpiece_vocab_size(const struct mt_wordpiece *w);
/* id of a token ("[CLS]"), or -1 */
int mt_wordpiece_id(const struct mt_wordpiece *w, const char *token);
/* Appends the ids of text[0..len) to *ids (realloc'd; *n, *cap updated). */
void mt_wordpiece_encode(const struct mt_wordpiece *w, const char *text, size_t len,
                         int32_t **ids, size_t *n, size_t *cap);
/* The token's text (a continuation without "##", any other with a leading
 * space) into buf (MT_TOKEN_MAX_BYTES bytes); returns its length. */
size_t mt_wordpiece_decode_token(const struct mt_wordpiece *w, int32_t id, char *buf);

/* Fills t (data/tokenizer.h) with a WordPiece tokenizer: type is
 * "BertWordPieceLowerCase" or "BertWordPieceCase". */
void mt_wordpiece_tokenizer_open(struct mt_tokenizer *t, const char *type, const char *vocab_file);

#endif
