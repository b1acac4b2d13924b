/* test_sentences.c: the rule-based sentence splitter (src/data/sentences.c):
 * each rule of sentences.h on cases written by hand, with the sentences
 * expected. */
#include "data/sentences.h"
#include "tap.h"
#include <stdlib.h>
#include <string.h>

struct split_case {
    const char *rule, *text;
    const char *want[6]; /* the sentences, NULL-ended */
};

static const struct split_case CASES[] = {
    {"terminators", "One. Two! Three? Four", {"One.", "Two!", "Three?", "Four", NULL}},
    {"runs and closers", "Really?! \"Yes.\" (Quite.) Done...", {"Really?!", "\"Yes.\"", "(Quite.)", "Done...", NULL}},
    {"curly closers", "He said \xe2\x80\x9cgo.\xe2\x80\x9d Then left.", {"He said \xe2\x80\x9cgo.\xe2\x80\x9d", "Then left.", NULL}},
    {"lowercase continues", "It cost 5 p. or so. Next", {"It cost 5 p. or so.", "Next", NULL}},
    {"no space after", "Pi is 3.14 and e.g.x stays. Ok", {"Pi is 3.14 and e.g.x stays.", "Ok", NULL}},
    {"comma after", "Wait., then. Go", {"Wait., then.", "Go", NULL}},
    {"abbreviations", "Mr. Smith met Dr. Who at St. Paul. They", {"Mr. Smith met Dr. Who at St. Paul.", "They", NULL}},
    {"dotted abbreviations", "In the U.S. Army, e.g. Bob. Fine", {"In the U.S. Army, e.g. Bob.", "Fine", NULL}},
    {"initials", "J. R. R. Tolkien wrote it. Yes", {"J. R. R. Tolkien wrote it.", "Yes", NULL}},
    {"digits start a sentence", "It ended. 1999 was next.", {"It ended.", "1999 was next.", NULL}},
    {"blank line", "No period here\n\nNew paragraph", {"No period here", "New paragraph", NULL}},
    {"blank line with spaces", "a\n \t\nb", {"a", "b", NULL}},
    {"single newline is a space", "one line\nsame sentence.", {"one line\nsame sentence.", NULL}},
    {"trimmed, empty dropped", "  \n\n  Hi.   \n\n\n  ", {"Hi.", NULL}},
    {"empty text", "", {NULL}},
};

int main(void)
{
    struct mt_span *spans = NULL;
    size_t cap = 0;
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        const struct split_case *c = &CASES[k];
        const size_t n = mt_split_sentences(c->text, strlen(c->text), &spans, &cap);
        size_t want = 0;
        while (c->want[want]) want++;
        int ok = n == want;
        for (size_t i = 0; ok && i < n; i++)
            ok = spans[i].end - spans[i].begin == strlen(c->want[i]) &&
                 memcmp(c->text + spans[i].begin, c->want[i], strlen(c->want[i])) == 0;
        if (!tap_ok(ok, "%s: %zu sentences as expected", c->rule, want))
            for (size_t i = 0; i < n; i++)
                tap_diag("  got [%.*s]", (int)(spans[i].end - spans[i].begin), c->text + spans[i].begin);
    }
    free(spans);
    return tap_done();
}
