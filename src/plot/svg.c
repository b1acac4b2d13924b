/* svg.c: the chart as SVG, written directly (see chart.h) */
#include "core/error.h"
#include "core/io.h"
#include "core/strbuf.h"
#include "plot/chart.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void xml_text(struct mt_strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': mt_sb_puts(b, "&amp;"); break;
        case '<': mt_sb_puts(b, "&lt;"); break;
        case '>': mt_sb_puts(b, "&gt;"); break;
        case '"': mt_sb_puts(b, "&quot;"); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') mt_sb_put(b, s, 1); /* controls are not XML */
        }
    }
}

static void svg_polyline(void *ctx, const double *x, const double *y, int n, uint32_t rgb, double width, int dashed)
{
    struct mt_strbuf *b = ctx;
    mt_sb_puts(b, "<polyline fill=\"none\" points=\"");
    for (int i = 0; i < n; i++) mt_sb_printf(b, "%s%.1f,%.1f", i ? " " : "", x[i], y[i]);
    mt_sb_printf(b, "\" stroke=\"#%06x\" stroke-width=\"%.1f\"%s/>\n", (unsigned)rgb, width,
                 dashed ? " stroke-dasharray=\"6,4\"" : "");
}

static void svg_text(void *ctx, double x, double y, const char *s, double size, int anchor, uint32_t rgb)
{
    struct mt_strbuf *b = ctx;
    mt_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"%s\" fill=\"#%06x\"", x, y, size,
                 anchor < 0 ? "start" : anchor > 0 ? "end" : "middle", (unsigned)rgb);
    mt_sb_puts(b, ">");
    xml_text(b, s);
    mt_sb_puts(b, "</text>\n");
}

static void svg_rect(void *ctx, double x, double y, double w, double h, uint32_t fill, uint32_t stroke)
{
    mt_sb_printf(ctx, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#%06x\" stroke=\"#%06x\"/>\n",
                 x, y, w, h, (unsigned)fill, (unsigned)stroke);
}

void mt_chart_svg(const struct mt_trace *t, int n, const char *path)
{
    struct mt_strbuf b = {0};
    int width, height;
    mt_chart_size(t, n, &width, &height);
    mt_sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                 "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, "
                 "sans-serif\">\n<title>", width, height, width, height);
    for (int i = 0; i < n; i++) {
        if (i) mt_sb_puts(&b, ", ");
        xml_text(&b, t[i].name);
    }
    mt_sb_puts(&b, ": training curves (megatron-c plot)</title>\n");
    const struct mt_canvas c = {&b, svg_polyline, svg_text, svg_rect};
    mt_chart_draw(t, n, &c);
    mt_sb_puts(&b, "</svg>\n");
    FILE *f = fopen(path, "wb");
    if (!f) mt_user_error("check that the directory exists and is writable", "cannot write %s: %s", path,
                          strerror(errno));
    mt_fwrite_all(f, b.s, b.n, path);
    if (fclose(f) != 0) mt_user_error(NULL, "cannot write %s: %s", path, strerror(errno));
    mt_sb_free(&b);
}
