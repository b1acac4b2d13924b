/* png.c: the chart as PNG through cairo, when configure found it (see
 * chart.h); the same drawing as the SVG, rasterised by cairo's image
 * surface with its toy text API (a sans-serif face of the system). */
#include "config.h"
#include "plot/chart.h"
#include "core/error.h"
#ifdef HAVE_CAIRO
#include <cairo.h>

static void set_rgb(cairo_t *cr, uint32_t rgb)
{
    cairo_set_source_rgb(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0, (rgb & 255) / 255.0);
}

static void png_polyline(void *ctx, const double *x, const double *y, int n, uint32_t rgb, double width, int dashed)
{
    cairo_t *cr = ctx;
    const double dash[2] = {6.0, 4.0};
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    cairo_set_line_width(cr, width);
    set_rgb(cr, rgb);
    cairo_move_to(cr, x[0], y[0]);
    for (int i = 1; i < n; i++) cairo_line_to(cr, x[i], y[i]);
    cairo_stroke(cr);
}

static void png_text(void *ctx, double x, double y, const char *s, double size, int anchor, uint32_t rgb)
{
    cairo_t *cr = ctx;
    cairo_save(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_translate(cr, x, y);
    const double dx = anchor < 0 ? 0.0 : anchor > 0 ? -e.x_advance : -e.x_advance / 2;
    set_rgb(cr, rgb);
    cairo_move_to(cr, dx, 0);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static void png_rect(void *ctx, double x, double y, double w, double h, uint32_t fill, uint32_t stroke)
{
    cairo_t *cr = ctx;
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_rectangle(cr, x + 0.5, y + 0.5, w, h);
    set_rgb(cr, fill);
    cairo_fill_preserve(cr);
    cairo_set_line_width(cr, 1.0);
    set_rgb(cr, stroke);
    cairo_stroke(cr);
}

int mt_chart_png(const struct mt_trace *t, int n, const char *path)
{
    int width, height;
    mt_chart_size(t, n, &width, &height);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(s);
    const struct mt_canvas c = {cr, png_polyline, png_text, png_rect};
    mt_chart_draw(t, n, &c);
    cairo_status_t st = cairo_status(cr);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png(s, path);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS)
        mt_user_error("check that the directory exists and is writable", "cannot write %s: %s", path,
                      cairo_status_to_string(st));
    return 0;
}

int mt_chart_png_available(void) { return 1; }
#else
int mt_chart_png_available(void) { return 0; }

int mt_chart_png(const struct mt_trace *t, int n, const char *path)
{
    (void)t, (void)n, (void)path;
    return -1;
}
#endif
