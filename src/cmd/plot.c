/* plot.c: `megatron-c plot TRACE.jsonl [MORE.jsonl ...] --output FILE.svg|FILE.png`:
 * the training curves of --log-json traces as a picture (plot/chart.h),
 * several runs overlaid, and each run's loss as a sparkline on stdout. */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/error.h"
#include "plot/chart.h"
#include "plot/trace.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plot_args {
    const char *output;
};

#define F(field) offsetof(struct plot_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"output", MT_ARG_STRING, F(output), "FILE", "the picture: FILE.svg (always) or FILE.png (a build with cairo) (required)"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))
static const char SYNOPSIS[] =
    "megatron-c plot TRACE.jsonl [MORE.jsonl ...] --output FILE.svg|FILE.png\n"
    "Draws the loss (validation dashed), learning rate and tokens/s of train --log-json traces against\n"
    "the iteration, the runs overlaid with a legend, and prints each run's loss as a sparkline.";

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int mt_cmd_plot(int argc, char **argv)
{
    char **flags = malloc((size_t)argc * sizeof *flags);
    const char **files = malloc((size_t)argc * sizeof *files);
    if (!flags || !files) mt_die("out of memory");
    int nflags, nfiles;
    mt_args_split(argc, argv, flags, &nflags, files, &nfiles);
    struct plot_args a = {0};
    mt_args_parse(SPECS, NSPECS, &a, NULL, nflags, flags, 2, "plot", SYNOPSIS);
    free(flags);
    if (nfiles == 0)
        mt_user_error("write 'megatron-c plot TRACE.jsonl --output loss.svg', a file written by "
                      "'megatron-c train --log-json TRACE.jsonl'", "plot needs a trace file");
    if (!a.output) mt_user_error("write --output FILE.svg (or FILE.png)", "plot needs --output");
    const int png = ends_with(a.output, ".png");
    if (!png && !ends_with(a.output, ".svg"))
        mt_user_error("name the picture FILE.svg or FILE.png", "--output %s: unknown picture type", a.output);
    struct mt_trace *t = calloc((size_t)nfiles, sizeof *t);
    if (!t) mt_die("out of memory");
    for (int i = 0; i < nfiles; i++) mt_trace_read(&t[i], files[i]);
    if (png) {
        if (mt_chart_png(t, nfiles, a.output) != 0)
            mt_user_error("write --output FILE.svg, or rebuild with cairo (Debian: apt-get install libcairo2-dev, "
                          "then ./configure again)", "this build of megatron-c has no PNG writer (cairo)");
    } else {
        mt_chart_svg(t, nfiles, a.output);
    }
    for (int i = 0; i < nfiles; i++) mt_chart_report(&t[i], stdout);
    printf("megatron-c plot: %d run%s -> %s\n", nfiles, nfiles == 1 ? "" : "s", a.output);
    for (int i = 0; i < nfiles; i++) mt_trace_free(&t[i]);
    free(t);
    free(files);
    return 0;
}
