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
    mt_chart_check_output("--output", a.output);
    struct mt_trace *t = calloc((size_t)nfiles, sizeof *t);
    if (!t) mt_die("out of memory");
    for (int i = 0; i < nfiles; i++) mt_trace_read(&t[i], files[i]);
    mt_chart_write(t, nfiles, a.output);
    for (int i = 0; i < nfiles; i++) mt_chart_report(&t[i], stdout);
    printf("megatron-c plot: %d run%s -> %s\n", nfiles, nfiles == 1 ? "" : "s", a.output);
    for (int i = 0; i < nfiles; i++) mt_trace_free(&t[i]);
    free(t);
    free(files);
    return 0;
}
