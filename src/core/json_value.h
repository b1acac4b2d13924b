/* json_value.h: a JSON document as a tree, for the files read whole: a
 * Hugging Face config.json, a safetensors header, a sharded checkpoint's
 * index. Built on the cursor of core/json.h (same grammar, NaN and
 * Infinity accepted as Python's json writes them). Numbers are kept as
 * double and as their text (an integer beyond 2^53 stays exact there). */
#ifndef MT_JSON_VALUE_H
#define MT_JSON_VALUE_H
#include <stddef.h>

enum mt_jtype { MT_J_NULL, MT_J_BOOL, MT_J_NUMBER, MT_J_STRING, MT_J_ARRAY, MT_J_OBJECT };

struct mt_jvalue {
    enum mt_jtype type;
    double num;          /* number; bool: 0 or 1 */
    char *str;           /* string (UTF-8, NUL-terminated); number: its text */
    int n;               /* array and object: members */
    char **keys;         /* object: member names */
    struct mt_jvalue *v; /* array and object: member values */
};

/* Parses text[0, len) (one value, then only whitespace) into *out; 0, or -1
 * with a message (what and where) in err. */
int mt_json_parse(const char *text, size_t len, struct mt_jvalue *out, char *err, size_t errlen);
void mt_json_free(struct mt_jvalue *v);
/* The member of an object (NULL if absent or not an object; a repeated key:
 * the last one). */
const struct mt_jvalue *mt_json_get(const struct mt_jvalue *obj, const char *key);
/* Typed members: 1 and the value when present with that type, else 0. */
int mt_json_get_number(const struct mt_jvalue *obj, const char *key, double *out);
int mt_json_get_int(const struct mt_jvalue *obj, const char *key, long long *out);
int mt_json_get_bool(const struct mt_jvalue *obj, const char *key, int *out);
const char *mt_json_get_str(const struct mt_jvalue *obj, const char *key); /* NULL if not a string */

#endif /* MT_JSON_VALUE_H */
