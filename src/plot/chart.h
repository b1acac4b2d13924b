/* chart.h: the picture of one or more training traces (plot/trace.h):
 * stacked panels against the iteration, the training loss (solid) with
 * the validation loss (dashed), the learning rate and tokens/s, one colour
 * per run with a legend. Drawn once onto an abstract canvas, which the SVG
 * writer (no dependency) and the PNG writer (cairo, when configure found
 * it) implement; and the loss as a terminal sparkline. */
#ifndef MT_PLOT_CHART_H
#define MT_PLOT_CHART_H
#include "plot/trace.h"
#include <stdint.h>
#include <stdio.h>

struct mt_canvas {
    void *ctx;
    /* a line through n points (x[i], y[i]) in pixels */
    void (*polyline)(void *ctx, const double *x, const double *y, int n, uint32_t rgb, double width, int dashed);
    /* anchor: -1 start, 0 middle, 1 end of the text at x; y is its baseline */
    void (*text)(void *ctx, double x, double y, const char *s, double size, int anchor, uint32_t rgb);
    void (*rect)(void *ctx, double x, double y, double w, double h, uint32_t fill, uint32_t stroke);
};

/* The picture's size in pixels for these traces. */
void mt_chart_size(const struct mt_trace *t, int n, int *width, int *height);
void mt_chart_draw(const struct mt_trace *t, int n, const struct mt_canvas *c);

/* Writes the picture to path; a failure to write is a user error naming
 * the file. mt_chart_png returns -1 without writing when the build has no
 * cairo. */
void mt_chart_svg(const struct mt_trace *t, int n, const char *path);
int mt_chart_png(const struct mt_trace *t, int n, const char *path);
int mt_chart_png_available(void); /* 1 in a build with cairo */

/* Checks that path names a picture this build writes (FILE.svg, or
 * FILE.png in a build with cairo), before any work: else a user error
 * naming the flag that gave it. */
void mt_chart_check_output(const char *flag, const char *path);
/* Writes the picture in the type its name says (checked as above). */
void mt_chart_write(const struct mt_trace *t, int n, const char *path);

/* The finite values of y[0, n) as at most width block characters
 * (U+2581..U+2588, UTF-8) in out (cap >= 3 * width + 1), averaged over
 * equal runs of points; "" when there are none. */
void mt_sparkline(const double *y, int n, int width, char *out, size_t cap);

/* One line on out: the trace's loss (else its validation loss) as a
 * sparkline, with its first and last values. */
void mt_chart_report(const struct mt_trace *t, FILE *out);

#endif /* MT_PLOT_CHART_H */
