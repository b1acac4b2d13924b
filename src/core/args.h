/* args.h: a small table-driven parser for Megatron-style long flags
 * (`--flag value` or `--flag=value`). Every subcommand describes its flags
 * in a table; unknown or malformed flags are rejected with a message that
 * names the flag (and the closest known one). */
#ifndef MT_ARGS_H
#define MT_ARGS_H
#include <stddef.h>
#include <stdio.h>

enum mt_arg_type { MT_ARG_INT, MT_ARG_LONG, MT_ARG_FLOAT, MT_ARG_DOUBLE, MT_ARG_STRING, MT_ARG_BOOL,
                   MT_ARG_WORDS, /* one or more words up to the next --flag: struct mt_words */
                   MT_ARG_GROUP  /* not a flag: the heading of the flags after it in --help */ };
/* A heading in a table: MT_ARG_GROUP_("learning rate") */
#define MT_ARG_GROUP_(title) {title, MT_ARG_GROUP, 0, NULL, NULL}

/* The value of an MT_ARG_WORDS flag, e.g. --data-path 0.7 A 0.3 B.
 * Points into argv. */
struct mt_words {
    int n;
    char **v;
};

struct mt_arg_spec {
    const char *name;     /* without the leading dashes, e.g. "num-layers" */
    enum mt_arg_type type;
    size_t offset;        /* offsetof the field in the destination struct */
    const char *metavar;  /* NULL for booleans */
    const char *help;
};

/* Parses argv[first..argc). Fills the fields of dst, marks given[i] = 1 for
 * each spec i that appeared. Positional arguments are not accepted. Exits
 * with a message on error. --help prints usage and exits 0. */
void mt_args_parse(const struct mt_arg_spec *specs, int nspecs, void *dst, unsigned char *given,
                   int argc, char **argv, int first, const char *cmd, const char *synopsis);
/* --help: the flags (under their group headings), each help text wrapped
 * to the terminal ($COLUMNS, else the window of f, else 100 columns). */
void mt_args_usage(FILE *f, const struct mt_arg_spec *specs, int nspecs, const char *cmd,
                   const char *synopsis);
/* For a command with positional arguments whose flags all take a value
 * (compare, plot): splits argv into the words for mt_args_parse (argv[0],
 * argv[1], then every flag with its value; -h and --help too) and the
 * positionals; "--" ends the flags. Both arrays need argc entries. */
void mt_args_split(int argc, char **argv, char **flags, int *nflags, const char **pos, int *npos);
/* Index of the spec with this name, or -1. */
int mt_args_find(const struct mt_arg_spec *specs, int nspecs, const char *name);

#endif
