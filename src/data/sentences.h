/* sentences.h: a rule-based English sentence splitter, for
 * `preprocess --split-sentences` (BERT's sentence-level datasets).
 *
 * Megatron splits with NLTK's punkt, a model trained on English text that
 * learns abbreviations, initials and collocations from data. This splitter
 * is a fixed set of rules instead, in one pass and without a model file:
 *
 *   1. A sentence ends after a run of '.', '!' or '?' and any closing quotes
 *      or brackets after it, when whitespace follows and the next visible
 *      character is not a lowercase ASCII letter (nor one of , ; :), or the
 *      text ends.
 *   2. Not after a '.' that ends a known abbreviation (Mr. Dr. St. e.g.
 *      i.e. etc. vs. Inc. Jan. ... - the list is in sentences.c, matched
 *      without regard to case) or a single letter (an initial: "J. Smith").
 *   3. A blank line (two newlines with only spaces or tabs between) ends a
 *      sentence: paragraphs never share one.
 *   4. Sentences are trimmed of whitespace; empty ones are dropped.
 *
 * Where it differs from punkt: punkt may split after an abbreviation that
 * ends a sentence ("... etc. The"), which rule 2 never does; punkt ignores
 * blank lines (rule 3); punkt knows abbreviations it learned that the list
 * lacks, and treats a lowercase word after a period as a continuation as
 * rule 1 does. */
#ifndef MT_SENTENCES_H
#define MT_SENTENCES_H
#include <stddef.h>

struct mt_span {
    size_t begin, end; /* bytes [begin, end) of the text */
};

/* The sentences of text[0..len) into *spans (realloc'd; *cap updated);
 * returns their number. */
size_t mt_split_sentences(const char *text, size_t len, struct mt_span **spans, size_t *cap);

#endif
