/* chart.c: the layout of the picture and the sparkline (see chart.h) */
#include "plot/chart.h"
#include "core/error.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define W 860.0
#define PANEL_H 230.0
#define LEFT 78.0
#define RIGHT 24.0
#define TOP 34.0
#define BOTTOM 44.0

static const uint32_t PALETTE[] = {0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f};
#define NPAL ((int)(sizeof PALETTE / sizeof PALETTE[0]))

enum panel { P_LOSS, P_LR, P_TPUT, NPANELS };
static const char *const TITLES[NPANELS] = {"loss", "learning rate", "tokens/s"};

static int has_panel(const struct mt_trace *t, int n, enum panel p)
{
    if (p == P_LOSS) return 1;
    for (int i = 0; i < n; i++)
        if ((p == P_LR ? t[i].lr.n : t[i].tokens_per_sec.n) > 0) return 1;
    return 0;
}

void mt_chart_size(const struct mt_trace *t, int n, int *width, int *height)
{
    int panels = 0;
    for (int p = 0; p < NPANELS; p++) panels += has_panel(t, n, (enum panel)p);
    *width = (int)W;
    *height = (int)(panels * (PANEL_H + TOP + BOTTOM) + 10);
}

/* range of the finite values of a series into [*lo, *hi] */
static void extend(const double *v, int n, double *lo, double *hi)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

/* a tick step of 1, 2 or 5 x 10^k giving about `want` ticks over the span */
static double nice_step(double span, int want)
{
    const double raw = span / want, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

static void padded(double *lo, double *hi)
{
    if (!(*lo <= *hi)) *lo = 0.0, *hi = 1.0; /* nothing finite */
    if (*hi - *lo < 1e-12 * (fabs(*hi) + 1e-30)) {
        const double d = *hi != 0.0 ? fabs(*hi) * 0.1 : 1.0;
        *lo -= d, *hi += d;
    }
    const double pad = 0.05 * (*hi - *lo);
    *lo -= pad, *hi += pad;
}

struct frame {
    double x0, y0, w, h; /* the plot area in pixels */
    double xlo, xhi, ylo, yhi;
};

static double px(const struct frame *f, double x) { return f->x0 + (x - f->xlo) / (f->xhi - f->xlo) * f->w; }
static double py(const struct frame *f, double y) { return f->y0 + f->h - (y - f->ylo) / (f->yhi - f->ylo) * f->h; }

/* the series as polylines, broken at non-finite values */
static void draw_series(const struct mt_canvas *c, const struct frame *f, const struct mt_series *s, uint32_t rgb,
                        int dashed)
{
    double xs[512], ys[512];
    int k = 0;
    for (int i = 0; i <= s->n; i++) {
        const int ok = i < s->n && isfinite(s->y[i]);
        if (ok) {
            xs[k] = px(f, s->x[i]);
            ys[k] = py(f, s->y[i]);
            k++;
        }
        if ((!ok || k == 512) && k > 0) {
            if (k == 1) { /* a lone point: a short mark */
                xs[1] = xs[0] + 1.5, ys[1] = ys[0];
                k = 2;
            }
            c->polyline(c->ctx, xs, ys, k, rgb, 1.6, dashed);
            if (ok) { /* a full buffer: continue from its last point */
                xs[0] = xs[k - 1], ys[0] = ys[k - 1];
                k = 1;
            } else {
                k = 0;
            }
        }
    }
}

static void axes(const struct mt_canvas *c, const struct frame *f, const char *title, int last)
{
    char buf[64];
    c->rect(c->ctx, f->x0, f->y0, f->w, f->h, 0xffffff, 0x888888);
    const double ys = nice_step(f->yhi - f->ylo, 5);
    for (double v = ceil(f->ylo / ys) * ys; v <= f->yhi + 1e-9 * ys; v += ys) {
        const double y = py(f, v), gx[2] = {f->x0, f->x0 + f->w}, gy[2] = {y, y};
        c->polyline(c->ctx, gx, gy, 2, 0xe4e4e4, 1.0, 0);
        snprintf(buf, sizeof buf, "%.6g", fabs(v) < 1e-9 * ys ? 0.0 : v);
        c->text(c->ctx, f->x0 - 6, y + 4, buf, 11, 1, 0x333333);
    }
    const double xs = nice_step(f->xhi - f->xlo, 8);
    for (double v = ceil(f->xlo / xs) * xs; v <= f->xhi + 1e-9 * xs; v += xs) {
        const double x = px(f, v), gx[2] = {x, x}, gy[2] = {f->y0, f->y0 + f->h};
        c->polyline(c->ctx, gx, gy, 2, 0xe4e4e4, 1.0, 0);
        snprintf(buf, sizeof buf, "%.6g", v);
        c->text(c->ctx, x, f->y0 + f->h + 15, buf, 11, 0, 0x333333);
    }
    c->text(c->ctx, f->x0, f->y0 - 10, title, 14, -1, 0x000000);
    if (last) c->text(c->ctx, f->x0 + f->w / 2, f->y0 + f->h + 34, "iteration", 12, 0, 0x333333);
}

static void legend(const struct mt_canvas *c, const struct frame *f, const struct mt_trace *t, int n)
{
    int val = 0;
    for (int i = 0; i < n; i++) val |= t[i].val_loss.n > 0;
    const double x = f->x0 + f->w - 200, y = f->y0 + 10;
    const int rows = n + val;
    c->rect(c->ctx, x - 8, y - 4, 204, 18.0 * rows + 6, 0xffffff, 0xcccccc);
    for (int i = 0; i < rows; i++) {
        const double ly = y + 18.0 * i + 8, lx[2] = {x, x + 26}, lyy[2] = {ly, ly};
        const int is_val = i == n;
        c->polyline(c->ctx, lx, lyy, 2, is_val ? 0x555555 : PALETTE[i % NPAL], 2.0, is_val);
        c->text(c->ctx, x + 32, ly + 4, is_val ? "validation (dashed)" : t[i].name, 11, -1, 0x222222);
    }
}

void mt_chart_draw(const struct mt_trace *t, int n, const struct mt_canvas *c)
{
    int width, height;
    mt_chart_size(t, n, &width, &height);
    c->rect(c->ctx, 0, 0, width, height, 0xffffff, 0xffffff);
    double xlo = INFINITY, xhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        extend(t[i].loss.x, t[i].loss.n, &xlo, &xhi);
        extend(t[i].val_loss.x, t[i].val_loss.n, &xlo, &xhi);
    }
    if (!(xlo < xhi)) xlo = (xlo <= xhi ? xlo : 0) - 1, xhi = xlo + 2;
    double top = 0;
    int last_panel = 0;
    for (int p = 0; p < NPANELS; p++)
        if (has_panel(t, n, (enum panel)p)) last_panel = p;
    for (int p = 0; p < NPANELS; p++) {
        if (!has_panel(t, n, (enum panel)p)) continue;
        struct frame f = {LEFT, top + TOP, W - LEFT - RIGHT, PANEL_H, xlo, xhi, INFINITY, -INFINITY};
        for (int i = 0; i < n; i++) {
            if (p == P_LOSS) {
                extend(t[i].loss.y, t[i].loss.n, &f.ylo, &f.yhi);
                extend(t[i].val_loss.y, t[i].val_loss.n, &f.ylo, &f.yhi);
            } else {
                const struct mt_series *s = p == P_LR ? &t[i].lr : &t[i].tokens_per_sec;
                extend(s->y, s->n, &f.ylo, &f.yhi);
            }
        }
        padded(&f.ylo, &f.yhi);
        axes(c, &f, TITLES[p], p == last_panel);
        for (int i = 0; i < n; i++) {
            const uint32_t rgb = PALETTE[i % NPAL];
            if (p == P_LOSS) {
                draw_series(c, &f, &t[i].loss, rgb, 0);
                draw_series(c, &f, &t[i].val_loss, rgb, 1);
            } else {
                draw_series(c, &f, p == P_LR ? &t[i].lr : &t[i].tokens_per_sec, rgb, 0);
            }
        }
        if (p == P_LOSS) legend(c, &f, t, n);
        top += PANEL_H + TOP + BOTTOM;
    }
}

void mt_sparkline(const double *y, int n, int width, char *out, size_t cap)
{
    out[0] = '\0';
    double v[4096]; /* the finite values, thinned to at most 4096 */
    int m = 0, finite = 0;
    for (int i = 0; i < n; i++) finite += isfinite(y[i]) != 0;
    if (finite == 0 || width < 1 || cap < 4) return;
    const int stride = finite > 4096 ? (finite + 4095) / 4096 : 1;
    for (int i = 0, f = 0; i < n; i++)
        if (isfinite(y[i]) && f++ % stride == 0) v[m++] = y[i];
    const int cells = m < width ? m : width;
    double cell[512], lo = INFINITY, hi = -INFINITY;
    for (int c = 0; c < cells && c < 512; c++) {
        const int a = (int)((long)c * m / cells), b = (int)((long)(c + 1) * m / cells);
        double sum = 0;
        for (int i = a; i < b; i++) sum += v[i];
        cell[c] = sum / (b - a);
        lo = fmin(lo, cell[c]), hi = fmax(hi, cell[c]);
    }
    size_t at = 0;
    for (int c = 0; c < cells && c < 512 && at + 4 <= cap; c++) {
        int level = hi > lo ? (int)floor((cell[c] - lo) / (hi - lo) * 7.0 + 0.5) : 3;
        const char block[4] = {(char)0xE2, (char)0x96, (char)(0x81 + level), 0}; /* U+2581 + level */
        memcpy(out + at, block, 3);
        at += 3;
    }
    out[at] = '\0';
}

void mt_chart_report(const struct mt_trace *t, FILE *out)
{
    char spark[3 * 60 + 1];
    const struct mt_series *s = t->loss.n ? &t->loss : &t->val_loss;
    mt_sparkline(s->y, s->n, 60, spark, sizeof spark);
    int first = -1, last = -1;
    for (int i = 0; i < s->n; i++)
        if (isfinite(s->y[i])) last = i, first = first < 0 ? i : first;
    if (first < 0) {
        fprintf(out, " %s: no finite %s\n", t->name, t->loss.n ? "loss" : "validation loss");
        return;
    }
    fprintf(out, " %s %s %s: %.4g at iteration %.0f -> %.4g at iteration %.0f\n", t->name,
            t->loss.n ? "loss" : "validation loss", spark, s->y[first], s->x[first], s->y[last], s->x[last]);
}

static int is_png(const char *path)
{
    const size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".png") == 0;
}

void mt_chart_check_output(const char *flag, const char *path)
{
    const size_t n = strlen(path);
    if (!is_png(path) && !(n > 4 && strcmp(path + n - 4, ".svg") == 0))
        mt_user_error("name the picture FILE.svg or FILE.png", "%s %s: unknown picture type", flag, path);
    if (is_png(path) && !mt_chart_png_available())
        mt_user_error("write FILE.svg, or rebuild with cairo (Debian: apt-get install libcairo2-dev, then "
                      "./configure again)", "%s %s: this build of megatron-c has no PNG writer (cairo)", flag, path);
}

void mt_chart_write(const struct mt_trace *t, int n, const char *path)
{
    if (is_png(path)) mt_chart_png(t, n, path);
    else mt_chart_svg(t, n, path);
}
