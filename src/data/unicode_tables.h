/* unicode_tables.h: the character classes of GPT-2's pre-tokenization
 * pattern, as sorted code point ranges (generated into unicode_tables.c by
 * gen_unicode_tables.py from the Unicode Character Database). */
#ifndef MT_UNICODE_TABLES_H
#define MT_UNICODE_TABLES_H
#include <stdint.h>

enum mt_uc_class {
    MT_UC_OTHER = 0,  /* not in any range: punctuation, symbols, marks, unassigned,
                         and (by our choice) every byte of invalid UTF-8 */
    MT_UC_LETTER = 1, /* \p{L} */
    MT_UC_NUMBER = 2, /* \p{N} */
    MT_UC_SPACE = 3   /* \s = White_Space */
};

struct mt_uc_range {
    uint32_t lo, hi; /* inclusive code point bounds */
    uint8_t cls;     /* enum mt_uc_class */
};

extern const struct mt_uc_range mt_uc_ranges[];
extern const int mt_uc_nranges;
extern const char mt_unicode_version[];

#endif
