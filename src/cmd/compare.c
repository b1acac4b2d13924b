/* compare.c: `megatron-c compare A.jsonl B.jsonl`, the numerical regression
 * check between two --log-json traces (backends, layouts, versions,
 * machines). It matches the lines that carry --key (default "loss") by their
 * "iteration" value and holds every pair to |a - b| <= atol + rtol * |b|;
 * B is the reference.
 *
 * Exit status: 0 the traces agree; 1 they differ (a value beyond tolerance,
 * or an iteration present in one trace and missing in the other); 2 a usage
 * error or an unreadable or malformed trace. Usage and file errors are
 * reported through mt_user_error, whose status 1 would be mistaken for
 * "differ": while arguments and files are read, an abort hook turns that
 * status into 2 (see usage_status below).
 *
 * The reader is deliberately small: one flat JSON object per line, whose
 * values are numbers (including the nan, -nan, inf, -inf that printf writes
 * for non-finite values; null, which the training log writes for them, is
 * read as NaN), strings, true/false/null; nested values are
 * skipped. Blank lines are ignored. Every other line must be such an object
 * with a non-negative integer "iteration". When an iteration appears more than
 * once in a trace (a resumed run appends to the same file), the last
 * occurrence wins, with a warning. */
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "cmd/commands.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define COMPARE_USAGE_STATUS 2

struct cmp_args {
    const char *rtol, *atol, *key;
};

#define F(field) offsetof(struct cmp_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"rtol", MT_ARG_STRING, F(rtol), "R", "relative tolerance against B (1e-5)"},
    {"atol", MT_ARG_STRING, F(atol), "A", "absolute tolerance (0)"},
    {"key", MT_ARG_STRING, F(key), "NAME", "the field to compare: loss, val_loss, grad_norm, ... (loss)"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char SYNOPSIS[] =
    "       megatron-c compare A.jsonl B.jsonl [flags]\n"
    "Compares two --log-json traces of `megatron-c train` iteration by iteration:\n"
    "every iteration that has --key must satisfy |a - b| <= atol + rtol * |b|\n"
    "(B is the reference), and both traces must have the same iterations.\n"
    "nan equals nan and inf equals inf of the same sign; nothing else non-finite\n"
    "is equal. Exit status: 0 agree, 1 differ, 2 usage error or unreadable or\n"
    "malformed trace.";

/* Installed while reading arguments and files: mt_user_error exits with 1,
 * which for compare means "the traces differ"; a usage or file error must
 * exit with 2 instead. Other statuses (mt_die's 2, assertions) pass through. */
static void usage_status(int status)
{
    if (status == 1) exit(COMPARE_USAGE_STATUS);
}

enum { FINITE = 0, NAN_V, POS_INF, NEG_INF };

static int kind_of(double x)
{
    if (isnan(x)) return NAN_V;
    if (isinf(x)) return x > 0 ? POS_INF : NEG_INF;
    return FINITE;
}

/* A value as the report prints it: %.9g for finite numbers (the precision
 * train writes), nan / inf / -inf otherwise (printf may write -nan). */
static const char *fmt_value(char *buf, size_t n, double x)
{
    switch (kind_of(x)) {
    case NAN_V: snprintf(buf, n, "nan"); break;
    case POS_INF: snprintf(buf, n, "inf"); break;
    case NEG_INF: snprintf(buf, n, "-inf"); break;
    default: snprintf(buf, n, "%.9g", x); break;
    }
    return buf;
}

struct point {
    long iter;
    double value;
    long line;
};

struct trace {
    const char *path;
    struct point *p;
    size_t n, cap;
    long lines;        /* non-blank lines read */
    char first_keys[200]; /* the field names of the first line, for a hint */
};

/* ---- a minimal reader for one flat JSON object per line ---- */

struct cursor {
    const char *s, *end;
    const char *path;
    long line;
};

MT_NORETURN static void malformed(const struct cursor *c, const char *what)
{
    char hint[300];
    snprintf(hint, sizeof hint,
             "each line of a trace must be one JSON object as written by "
             "'megatron-c train --log-json FILE'");
    mt_user_error(hint, "%s:%ld: %s", c->path, c->line, what);
}

static void skip_ws(struct cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\r')) c->s++;
}

/* Reads a JSON string at c->s (which is at the opening quote) into buf
 * (truncated to n - 1 bytes; escapes kept verbatim, which is enough for
 * field names). */
static void read_string(struct cursor *c, char *buf, size_t n)
{
    size_t k = 0;
    c->s++; /* opening quote */
    while (c->s < c->end && *c->s != '"') {
        if (*c->s == '\\') {
            if (k + 1 < n) buf[k++] = *c->s;
            c->s++;
            if (c->s >= c->end) break;
        }
        if (k + 1 < n) buf[k++] = *c->s;
        c->s++;
    }
    if (c->s >= c->end) malformed(c, "unterminated string");
    c->s++; /* closing quote */
    if (n) buf[k < n ? k : n - 1] = 0;
}

/* Skips a nested array or object, minding strings. */
static void skip_nested(struct cursor *c)
{
    int depth = 0;
    char tmp[2];
    while (c->s < c->end) {
        char ch = *c->s;
        if (ch == '"') {
            read_string(c, tmp, sizeof tmp);
            continue;
        }
        if (ch == '{' || ch == '[') depth++;
        if (ch == '}' || ch == ']') depth--;
        c->s++;
        if (depth == 0) return;
    }
    malformed(c, "unterminated array or object");
}

/* The bare token at c->s (a number, nan, inf, true, false, null). */
static size_t token_len(const struct cursor *c)
{
    const char *p = c->s;
    while (p < c->end && (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.' ||
                          *p == '(' || *p == ')' || *p == '_'))
        p++;
    return (size_t)(p - c->s);
}

/* Parses one line. *has_value says whether `key` is present; a line without
 * a valid "iteration" is an error. */
static void parse_line(struct cursor *c, const char *key, long *iter, int *has_value,
                       double *value, char *keys, size_t keys_n)
{
    int has_iter = 0;
    char name[128], msg[400];
    *has_value = 0;
    skip_ws(c);
    if (c->s >= c->end || *c->s != '{') malformed(c, "not a JSON object (expected '{')");
    c->s++;
    skip_ws(c);
    if (c->s < c->end && *c->s == '}') {
        c->s++;
    } else {
        for (;;) {
            skip_ws(c);
            if (c->s >= c->end || *c->s != '"') malformed(c, "expected a quoted field name");
            read_string(c, name, sizeof name);
            if (keys && keys_n) {
                size_t used = strlen(keys);
                if (used + strlen(name) + 3 < keys_n)
                    snprintf(keys + used, keys_n - used, "%s%s", used ? ", " : "", name);
            }
            skip_ws(c);
            if (c->s >= c->end || *c->s != ':') {
                snprintf(msg, sizeof msg, "expected ':' after field \"%s\"", name);
                malformed(c, msg);
            }
            c->s++;
            skip_ws(c);
            if (c->s >= c->end) {
                snprintf(msg, sizeof msg, "field \"%s\" has no value", name);
                malformed(c, msg);
            }
            int is_iter = strcmp(name, "iteration") == 0, is_key = strcmp(name, key) == 0;
            if (*c->s == '"') {
                char tmp[2];
                read_string(c, tmp, sizeof tmp);
                if (is_iter || is_key) {
                    snprintf(msg, sizeof msg, "the value of \"%s\" is a string, not a number", name);
                    malformed(c, msg);
                }
            } else if (*c->s == '{' || *c->s == '[') {
                skip_nested(c);
                if (is_iter || is_key) {
                    snprintf(msg, sizeof msg, "the value of \"%s\" is not a number", name);
                    malformed(c, msg);
                }
            } else {
                size_t len = token_len(c);
                char tok[64];
                if (len == 0 || len >= sizeof tok) {
                    snprintf(msg, sizeof msg, "field \"%s\" has %s value", name,
                             len ? "an overlong" : "a missing or invalid");
                    malformed(c, msg);
                }
                memcpy(tok, c->s, len);
                tok[len] = 0;
                c->s += len;
                int word = strcmp(tok, "true") == 0 || strcmp(tok, "false") == 0 ||
                           strcmp(tok, "null") == 0;
                char *end;
                errno = 0;
                double x = word ? 0 : strtod(tok, &end);
                if (!word && (*end || end == tok)) {
                    snprintf(msg, sizeof msg, "the value of \"%s\" is not a number: '%s'", name, tok);
                    malformed(c, msg);
                }
                /* null is how a trace writes a non-finite value (a
                 * skipped iteration's grad norm, a NaN loss) */
                const int null_key = is_key && strcmp(tok, "null") == 0;
                if (null_key) x = NAN;
                if ((is_iter || is_key) && word && !null_key) {
                    snprintf(msg, sizeof msg, "the value of \"%s\" is not a number: '%s'", name, tok);
                    malformed(c, msg);
                }
                if (is_iter) {
                    if (!isfinite(x) || x < 0 || x != floor(x) || x > 9.0e15) {
                        snprintf(msg, sizeof msg,
                                 "\"iteration\" must be a non-negative integer, got '%s'", tok);
                        malformed(c, msg);
                    }
                    *iter = (long)x;
                    has_iter = 1;
                }
                if (is_key) {
                    *value = x;
                    *has_value = 1;
                }
            }
            skip_ws(c);
            if (c->s < c->end && *c->s == ',') {
                c->s++;
                continue;
            }
            if (c->s < c->end && *c->s == '}') {
                c->s++;
                break;
            }
            malformed(c, c->s < c->end ? "expected ',' or '}' after a value"
                                       : "the line ends inside the object (truncated?)");
        }
    }
    skip_ws(c);
    if (c->s < c->end) malformed(c, "text after the closing '}'");
    if (!has_iter) malformed(c, "no \"iteration\" field");
}

static int by_iter_then_line(const void *pa, const void *pb)
{
    const struct point *a = pa, *b = pb;
    if (a->iter != b->iter) return a->iter < b->iter ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

static void read_trace(struct trace *t, const char *path, const char *key)
{
    size_t len;
    char *buf = mt_read_file(path, &len, "megatron-c compare");
    memset(t, 0, sizeof *t);
    t->path = path;
    struct cursor c = {.path = path};
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        c.line++;
        c.s = p;
        c.end = le;
        if (memchr(p, 0, (size_t)(le - p))) malformed(&c, "contains a NUL byte (not a text file?)");
        skip_ws(&c);
        if (c.s < c.end) {
            long iter = -1;
            int has;
            double v = 0;
            parse_line(&c, key, &iter, &has, &v, t->lines == 0 ? t->first_keys : NULL,
                       sizeof t->first_keys);
            t->lines++;
            if (has) {
                if (t->n == t->cap) {
                    t->cap = t->cap ? 2 * t->cap : 256;
                    t->p = realloc(t->p, t->cap * sizeof *t->p);
                    if (!t->p) mt_die("out of memory reading %s", path);
                }
                t->p[t->n++] = (struct point){iter, v, c.line};
            }
        }
        p = nl ? nl + 1 : end;
    }
    free(buf);
    if (t->n == 0) return;
    /* sort by iteration; of equal iterations keep the last line */
    qsort(t->p, t->n, sizeof *t->p, by_iter_then_line);
    size_t w = 0, dups = 0;
    long dup_iter = -1, dup_l1 = 0, dup_l2 = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (w > 0 && t->p[w - 1].iter == t->p[i].iter) {
            if (dups++ == 0) dup_iter = t->p[i].iter, dup_l1 = t->p[w - 1].line, dup_l2 = t->p[i].line;
            t->p[w - 1] = t->p[i];
        } else {
            t->p[w++] = t->p[i];
        }
    }
    if (dups)
        mt_warn("%s: %zu line(s) with \"%s\" repeat an earlier iteration (first: iteration %ld on "
                "lines %ld and %ld; a resumed run?); the last occurrence of each is used",
                path, dups, key, dup_iter, dup_l1, dup_l2);
    t->n = w;
}

static double parse_tol(const char *s, const char *flag)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(x) || x < 0)
        mt_user_error("see 'megatron-c compare --help'",
                      "--%s expects a non-negative number, got '%s'", flag, s);
    return x;
}

static const char *its(size_t n) { return n == 1 ? "iteration" : "iterations"; }

static void describe(const char *label, const struct trace *t)
{
    if (t->n) printf("%s: %s: %zu %s (%ld..%ld)\n", label, t->path, t->n, its(t->n), t->p[0].iter,
                     t->p[t->n - 1].iter);
    else printf("%s: %s: 0 iterations\n", label, t->path);
}

int mt_cmd_compare(int argc, char **argv)
{
    mt_set_abort_hook(usage_status);

    /* positionals (the two traces) here, flags (each with a value) to mt_args_parse */
    char **flags = malloc((size_t)argc * sizeof *flags);
    const char **pos = malloc((size_t)argc * sizeof *pos);
    if (!flags || !pos) mt_die("out of memory");
    int nflags, npos;
    mt_args_split(argc, argv, flags, &nflags, pos, &npos);
    if (npos > 2)
        mt_user_error("write 'megatron-c compare A.jsonl B.jsonl [flags]'",
                      "compare takes two trace files; '%s' is a third", pos[2]);
    const char *files[2] = {npos > 0 ? pos[0] : NULL, npos > 1 ? pos[1] : NULL};
    const int nfiles = npos;
    free(pos);
    struct cmp_args a = {.rtol = "1e-5", .atol = "0", .key = "loss"};
    mt_args_parse(SPECS, NSPECS, &a, NULL, nflags, flags, 2, "compare", SYNOPSIS);
    free(flags);
    if (nfiles < 2)
        mt_user_error("write 'megatron-c compare A.jsonl B.jsonl [flags]', two files written by "
                      "'megatron-c train --log-json FILE'",
                      "compare needs two trace files, got %d", nfiles);
    double rtol = parse_tol(a.rtol, "rtol"), atol = parse_tol(a.atol, "atol");
    if (!*a.key || strcmp(a.key, "iteration") == 0)
        mt_user_error("try --key loss, --key val_loss or --key grad_norm",
                      "--key must name a field other than \"iteration\" (the lines are matched by it)");

    struct trace A, B;
    read_trace(&A, files[0], a.key);
    read_trace(&B, files[1], a.key);
    if (A.n == 0 && B.n == 0) {
        char hint[400];
        const char *keys = A.first_keys[0] ? A.first_keys : B.first_keys;
        if (keys[0]) snprintf(hint, sizeof hint, "the first line has: %s", keys);
        else snprintf(hint, sizeof hint, "both traces are empty; train with --log-json FILE");
        mt_user_error(hint, "neither %s nor %s has a \"%s\" field on any line", files[0], files[1],
                      a.key);
    }
    mt_set_abort_hook(NULL);

    /* Walk both sorted traces together. */
    size_t compared = 0, beyond = 0, nonfinite = 0, nonfinite_bad = 0, only_a = 0, only_b = 0;
    long first_only_a = -1, first_only_b = -1;
    double max_abs = -1, max_rel = -1;
    const struct point *at_abs_a = NULL, *at_abs_b = NULL, *at_rel_a = NULL, *at_rel_b = NULL;
    const struct point *bad_a = NULL, *bad_b = NULL, *nf_a = NULL, *nf_b = NULL;
    double bad_diff = 0, bad_allowed = 0;
    size_t i = 0, j = 0;
    while (i < A.n || j < B.n) {
        if (j >= B.n || (i < A.n && A.p[i].iter < B.p[j].iter)) {
            if (only_a++ == 0) first_only_a = A.p[i].iter;
            i++;
            continue;
        }
        if (i >= A.n || B.p[j].iter < A.p[i].iter) {
            if (only_b++ == 0) first_only_b = B.p[j].iter;
            j++;
            continue;
        }
        const struct point *pa = &A.p[i++], *pb = &B.p[j++];
        compared++;
        int ka = kind_of(pa->value), kb = kind_of(pb->value);
        if (ka != FINITE || kb != FINITE) {
            int same = ka == kb;
            if (nonfinite++ == 0 || (!same && nonfinite_bad == 0)) nf_a = pa, nf_b = pb;
            if (!same) {
                nonfinite_bad++;
                if (beyond++ == 0) bad_a = pa, bad_b = pb, bad_diff = NAN, bad_allowed = NAN;
            }
            continue;
        }
        double d = fabs(pa->value - pb->value);
        double rel = d == 0 ? 0 : pb->value == 0 ? INFINITY : d / fabs(pb->value);
        double allowed = atol + rtol * fabs(pb->value);
        if (d > max_abs) max_abs = d, at_abs_a = pa, at_abs_b = pb;
        if (rel > max_rel) max_rel = rel, at_rel_a = pa, at_rel_b = pb;
        if (d > allowed && beyond++ == 0) bad_a = pa, bad_b = pb, bad_diff = d, bad_allowed = allowed;
    }

    char v1[40], v2[40];
    printf("key: %s  rtol: %g  atol: %g\n", a.key, rtol, atol);
    describe("A", &A);
    describe("B", &B);
    printf("compared: %zu %s\n", compared, its(compared));
    if (at_abs_a && max_abs == 0) printf("max abs diff: 0\n");
    else if (at_abs_a)
        printf("max abs diff: %.6g at iteration %ld (A %s, B %s)\n", max_abs, at_abs_a->iter,
               fmt_value(v1, sizeof v1, at_abs_a->value), fmt_value(v2, sizeof v2, at_abs_b->value));
    else printf("max abs diff: none (no finite pair)\n");
    if (at_rel_a && max_rel == 0) printf("max rel diff: 0\n");
    else if (at_rel_a)
        printf("max rel diff: %.6g at iteration %ld (A %s, B %s)\n", max_rel, at_rel_a->iter,
               fmt_value(v1, sizeof v1, at_rel_a->value), fmt_value(v2, sizeof v2, at_rel_b->value));
    else printf("max rel diff: none (no finite pair)\n");
    if (nonfinite)
        printf("non-finite: %zu %s, %zu mismatched; first%s at iteration %ld (A %s, B %s)\n",
               nonfinite, its(nonfinite), nonfinite_bad, nonfinite_bad ? " mismatch" : "", nf_a->iter,
               fmt_value(v1, sizeof v1, nf_a->value), fmt_value(v2, sizeof v2, nf_b->value));
    else printf("non-finite: none\n");
    if (beyond == 0) printf("beyond tolerance: none\n");
    else if (isnan(bad_diff))
        printf("beyond tolerance: %zu %s; first at iteration %ld (A %s, B %s: non-finite "
               "mismatch)\n", beyond, its(beyond), bad_a->iter, fmt_value(v1, sizeof v1, bad_a->value),
               fmt_value(v2, sizeof v2, bad_b->value));
    else
        printf("beyond tolerance: %zu %s; first at iteration %ld (A %s, B %s: |diff| %.6g > "
               "allowed %.6g)\n", beyond, its(beyond), bad_a->iter, fmt_value(v1, sizeof v1, bad_a->value),
               fmt_value(v2, sizeof v2, bad_b->value), bad_diff, bad_allowed);
    if (only_a == 0 && only_b == 0) printf("missing: none\n");
    if (only_a)
        printf("missing in B: %zu %s; first: iteration %ld (A has %zu, B has %zu)\n",
               only_a, its(only_a), first_only_a, A.n, B.n);
    if (only_b)
        printf("missing in A: %zu %s; first: iteration %ld (A has %zu, B has %zu)\n",
               only_b, its(only_b), first_only_b, A.n, B.n);
    int differ = beyond || only_a || only_b;
    if (!differ) printf("result: agree\n");
    else {
        printf("result: differ (");
        const char *sep = "";
        if (beyond) printf("%s%zu beyond tolerance", sep, beyond), sep = ", ";
        if (only_a) printf("%s%zu missing in B", sep, only_a), sep = ", ";
        if (only_b) printf("%s%zu missing in A", sep, only_b);
        printf(")\n");
    }
    free(A.p);
    free(B.p);
    fflush(stdout);
    return differ ? 1 : 0;
}
