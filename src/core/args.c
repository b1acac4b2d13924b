/* args.c: see args.h */
#include "core/args.h"
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif
#include "core/error.h"
#include <errno.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mt_args_find(const struct mt_arg_spec *specs, int nspecs, const char *name)
{
    for (int i = 0; i < nspecs; i++)
        if (specs[i].type != MT_ARG_GROUP && strcmp(specs[i].name, name) == 0) return i;
    return -1;
}

/* Levenshtein distance, for "did you mean" hints. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static void set_value(const struct mt_arg_spec *s, void *dst, const char *v, const char *cmd)
{
    char *base = (char *)dst + s->offset;
    char *end = NULL;
    char hint[160];
    snprintf(hint, sizeof hint, "see 'megatron-c %s --help'", cmd);
    errno = 0;
    switch (s->type) {
    case MT_ARG_INT:
    case MT_ARG_LONG: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            mt_user_error(hint, "--%s expects an integer, got '%s'", s->name, v);
        if (s->type == MT_ARG_INT) {
            if (x < -2147483647LL || x > 2147483647LL)
                mt_user_error(hint, "--%s value %s is out of range", s->name, v);
            *(int *)base = (int)x;
        } else {
            *(long *)base = (long)x;
        }
        break;
    }
    case MT_ARG_FLOAT:
    case MT_ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            mt_user_error(hint, "--%s expects a finite number, got '%s'", s->name, v);
        if (s->type == MT_ARG_FLOAT && !isfinite((float)x))
            mt_user_error(hint, "--%s value %s is beyond single precision (|x| < 3.4e38)", s->name, v);
        if (s->type == MT_ARG_FLOAT) *(float *)base = (float)x;
        else *(double *)base = x;
        break;
    }
    case MT_ARG_STRING: *(const char **)base = v; break;
    case MT_ARG_WORDS: /* handled by the caller */
    case MT_ARG_GROUP: break;
    case MT_ARG_BOOL:
        if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) *(int *)base = 1;
        else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) *(int *)base = 0;
        else mt_user_error(hint, "--%s is a switch; it takes no value (got '%s')", s->name, v);
        break;
    }
}

/* The closest flag when it is close: one edit, or at most one per four
 * letters (--num-layer for --num-layers, --rtl for --rtol; not --tf32 for
 * --bf16), or -1. */
static int suggestion(const struct mt_arg_spec *specs, int nspecs, const char *name)
{
    int best = -1, bestd = 99;
    for (int j = 0; j < nspecs; j++) {
        if (specs[j].type == MT_ARG_GROUP) continue;
        int d = edit_distance(name, specs[j].name);
        if (d < bestd) bestd = d, best = j;
    }
    const int len = (int)strlen(name);
    return best >= 0 && len >= 3 && (bestd == 1 || (bestd <= 3 && 4 * bestd <= len)) ? best : -1;
}

/* Unknown flags, collected so that one message names them all. */
struct unknown {
    char text[1024];
    size_t len;
    int n;
};

static void unknown_add(struct unknown *u, const struct mt_arg_spec *specs, int nspecs, const char *name)
{
    const int s = suggestion(specs, nspecs, name);
    if (u->len < sizeof u->text - 160) {
        u->len += (size_t)snprintf(u->text + u->len, sizeof u->text - u->len, "%s--%s", u->n ? ", " : "", name);
        if (s >= 0)
            u->len += (size_t)snprintf(u->text + u->len, sizeof u->text - u->len, " (did you mean --%s?)",
                                       specs[s].name);
    }
    u->n++;
}

void mt_args_parse(const struct mt_arg_spec *specs, int nspecs, void *dst, unsigned char *given,
                   int argc, char **argv, int first, const char *cmd, const char *synopsis)
{
    char hint[200];
    struct unknown unk = {"", 0, 0};
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            mt_args_usage(stdout, specs, nspecs, cmd, synopsis);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("megatron-c %s\n", PACKAGE_VERSION); /* every subcommand answers it */
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            snprintf(hint, sizeof hint, "flags start with '--'; see 'megatron-c %s --help'", cmd);
            mt_user_error(hint, "unexpected argument '%s' for 'megatron-c %s'", a, cmd);
        }
        char name[128];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a + 2, len);
        name[len] = 0;
        /* Megatron accepts underscores in a few flag names; accept both */
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        int k = mt_args_find(specs, nspecs, name);
        if (k < 0) {
            /* its values, if any, are the words up to the next flag */
            unknown_add(&unk, specs, nspecs, name);
            while (!eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) i++;
            continue;
        }
        const struct mt_arg_spec *s = &specs[k];
        if (given) given[k] = 1;
        if (s->type == MT_ARG_BOOL) {
            set_value(s, dst, eq ? eq + 1 : "1", cmd);
            continue;
        }
        if (s->type == MT_ARG_WORDS) {
            struct mt_words *w = (struct mt_words *)((char *)dst + s->offset);
            if (eq) {
                /* --flag=a keeps a single word; point at the text after '=' */
                argv[i] = (char *)eq + 1;
                w->n = 1;
                w->v = &argv[i];
                continue;
            }
            int j = i + 1;
            while (j < argc && strncmp(argv[j], "--", 2) != 0) j++;
            if (j == i + 1) {
                snprintf(hint, sizeof hint, "write --%s %s", s->name, s->metavar ? s->metavar : "VALUE");
                mt_user_error(hint, "flag '--%s' needs a value", s->name);
            }
            w->n = j - (i + 1);
            w->v = &argv[i + 1];
            i = j - 1;
            continue;
        }
        const char *v;
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else {
            snprintf(hint, sizeof hint, "write --%s %s", s->name, s->metavar ? s->metavar : "VALUE");
            mt_user_error(hint, "flag '--%s' needs a value", s->name);
        }
        set_value(s, dst, v, cmd);
    }
    if (unk.n) {
        snprintf(hint, sizeof hint, "see 'megatron-c %s --help' for the flags", cmd);
        mt_user_error(hint, "unknown flag%s for 'megatron-c %s': %s", unk.n > 1 ? "s" : "", cmd, unk.text);
    }
}

static int terminal_columns(FILE *f)
{
    const char *c = getenv("COLUMNS");
    int w = c ? atoi(c) : 0;
#ifdef TIOCGWINSZ
    struct winsize ws;
    if (w <= 0 && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0) w = ws.ws_col;
#else
    (void)f;
#endif
    if (w <= 0) w = 100;
    return w < 60 ? 60 : w > 200 ? 200 : w;
}

enum { LEFT = 34 }; /* the width of the flag column */

/* text wrapped at spaces into lines of at most width - LEFT - 3 columns,
 * the first after the flag column, the others indented to it */
static void wrapped(FILE *f, const char *text, int width)
{
    const int room = width - LEFT - 3;
    int first = 1;
    while (*text) {
        int n = (int)strlen(text);
        if (n > room) {
            n = room;
            while (n > 0 && text[n] != ' ') n--;
            if (n == 0) n = room; /* one long word */
        }
        fprintf(f, "%*s%.*s\n", first ? 0 : LEFT + 3, "", n, text);
        first = 0;
        text += n;
        while (*text == ' ') text++;
    }
    if (first) fputc('\n', f);
}

void mt_args_usage(FILE *f, const struct mt_arg_spec *specs, int nspecs, const char *cmd,
                   const char *synopsis)
{
    const int width = terminal_columns(f);
    fprintf(f, "usage: megatron-c %s [flags]\n", cmd);
    if (synopsis) fprintf(f, "%s\n", synopsis);
    if (nspecs == 0 || specs[0].type != MT_ARG_GROUP) fprintf(f, "\nflags:\n");
    for (int i = 0; i < nspecs; i++) {
        if (specs[i].type == MT_ARG_GROUP) {
            fprintf(f, "\n%s:\n", specs[i].name);
            continue;
        }
        char left[96];
        if (specs[i].type == MT_ARG_BOOL) snprintf(left, sizeof left, "--%s", specs[i].name);
        else snprintf(left, sizeof left, "--%s %s", specs[i].name, specs[i].metavar);
        if (strlen(left) > LEFT) fprintf(f, "  %s\n  %-*s ", left, LEFT, "");
        else fprintf(f, "  %-*s ", LEFT, left);
        wrapped(f, specs[i].help ? specs[i].help : "", width);
    }
}

void mt_args_split(int argc, char **argv, char **flags, int *nflags, const char **pos, int *npos)
{
    int only_pos = 0;
    *nflags = *npos = 0;
    for (int i = 0; i < argc && i < 2; i++) flags[(*nflags)++] = argv[i];
    for (int i = 2; i < argc; i++) {
        const char *w = argv[i];
        if (!only_pos && strcmp(w, "--") == 0) {
            only_pos = 1;
        } else if (!only_pos && (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0)) {
            flags[(*nflags)++] = argv[i];
        } else if (!only_pos && strncmp(w, "--", 2) == 0) {
            flags[(*nflags)++] = argv[i];
            if (!strchr(w, '=') && i + 1 < argc) flags[(*nflags)++] = argv[++i];
        } else {
            pos[(*npos)++] = w;
        }
    }
}
