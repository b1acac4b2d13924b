/* wordpiece_tables.h: the character tables of BERT's basic tokenisation
 * (generated into wordpiece_tables.c by gen_wordpiece_tables.py). Per code
 * point, for the uncased (lowercase + accent stripping) and the cased
 * vocabularies: kept as is (not listed), removed (controls, U+FFFD,
 * nonspacing marks when uncased), made a space (whitespace), padded with
 * spaces (CJK ideographs), or mapped to a string (lowercase, accents
 * stripped). Then the punctuation the pre-tokenizer splits off. */
#ifndef MT_WORDPIECE_TABLES_H
#define MT_WORDPIECE_TABLES_H
#include <stdint.h>

enum { MT_WP_KEEP = 0, MT_WP_REMOVE = 1, MT_WP_SPACE = 2, MT_WP_CJK = 3 };

struct mt_wp_range {
    uint32_t lo, hi; /* inclusive */
    uint8_t kind;    /* MT_WP_* (punctuation table: 1) */
};
struct mt_wp_map {
    uint32_t cp;
    const char *utf8; /* what the code point becomes */
};

extern const struct mt_wp_range mt_wp_uncased_ranges[], mt_wp_cased_ranges[], mt_wp_punct_ranges[];
extern const int mt_wp_uncased_nranges, mt_wp_cased_nranges, mt_wp_punct_nranges;
extern const struct mt_wp_map mt_wp_uncased_maps[], mt_wp_cased_maps[];
extern const int mt_wp_uncased_nmaps, mt_wp_cased_nmaps;
/* 1: Hangul syllables decompose into their jamo (NFD, by rule) */
extern const int mt_wp_uncased_hangul, mt_wp_cased_hangul;
extern const char mt_wp_tables_source[];

#endif
