/* plot.c: `bodhi replay RUN_DIR --plot FILE.svg|FILE.png`: learning curves (see cli.h),
 * drawn with cairo (SVG and PNG surfaces, with text).
 *
 * x is agent-steps (env steps x the phase's worlds), counted on across the phases in file
 * order, so a train phase and the test phase after it stand side by side; phase
 * boundaries are dashed lines with the phase's name. Per agent: every episode's return
 * as a faint dot where it ended, and the moving average over a window that grows with the
 * episode count (1 to 100), as a line; one colour per agent name, the same in every
 * phase. */
#define _GNU_SOURCE
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"
#include "memory/memory.h"

#define PLOT_W 1200.0
#define PLOT_H 700.0
#define PLOT_L 90.0  /* margins: room for the y labels ... */
#define PLOT_R 30.0
#define PLOT_T 60.0  /* ... the title and phase names ... */
#define PLOT_B 70.0  /* ... and the x labels */
#define PLOT_MAX_DOTS 20000 /* dots per trace at most (evenly thinned) */

typedef struct {
    char *phase, *agent;
    double *x, *y, *avg; /* (n) by end step */
    int64_t n;
    int colour;
} plot_trace;

typedef struct {
    char *name;
    double x0, x1; /* agent-steps */
} plot_phase;

static const double plot_colours[][3] = {
    {0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17}, {1.00, 0.50, 0.05},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
};
#define PLOT_NCOLOURS ((int)(sizeof plot_colours / sizeof plot_colours[0]))

static int cmp_end(const void *a, const void *b)
{
    const bd_episode *x = a, *y = b;
    int64_t ex = x->start_step + x->length, ey = y->start_step + y->length;
    return (ex > ey) - (ex < ey);
}

/* A "nice" step (1, 2 or 5 times a power of ten) giving about n ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* "1.5M", "200k", "12" */
static void tick_label(double v, double step, char *buf, size_t len)
{
    double a = fabs(v);
    if (a >= 1e6 && step >= 1e5)
        snprintf(buf, len, "%gM", v / 1e6);
    else if (a >= 1e3 && step >= 100)
        snprintf(buf, len, "%gk", v / 1e3);
    else
        snprintf(buf, len, "%g", fabs(v) < step * 1e-6 ? 0.0 : v);
}

static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void draw(cairo_t *cr, const char *title, plot_trace *tr, int nt, plot_phase *ph, int np, char **names,
                 int nnames)
{
    double xmin = 0, xmax = np ? ph[np - 1].x1 : 1, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < nt; k++)
        for (int64_t i = 0; i < tr[k].n; i++) {
            ymin = fmin(ymin, tr[k].y[i]);
            ymax = fmax(ymax, tr[k].y[i]);
        }
    if (!isfinite(ymin)) {
        ymin = 0;
        ymax = 1;
    }
    if (ymax - ymin < 1e-9) {
        ymin -= 1;
        ymax += 1;
    }
    double pad = 0.05 * (ymax - ymin);
    ymin -= pad;
    ymax += pad;
    if (xmax <= xmin)
        xmax = xmin + 1;
    const double L = PLOT_L, R = PLOT_W - PLOT_R, T = PLOT_T, B = PLOT_H - PLOT_B;
#define PX(v) (L + ((v) - xmin) / (xmax - xmin) * (R - L))
#define PY(v) (B - ((v) - ymin) / (ymax - ymin) * (B - T))
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    /* grid and ticks */
    char buf[64];
    cairo_set_font_size(cr, 13);
    cairo_set_line_width(cr, 1);
    double ys = nice_step(ymax - ymin, 6), xs = nice_step(xmax - xmin, 8);
    for (double v = ceil(ymin / ys) * ys; v <= ymax; v += ys) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, PY(v));
        cairo_line_to(cr, R, PY(v));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(v, ys, buf, sizeof buf);
        text_at(cr, L - 8, PY(v), buf, 1, 0.5);
    }
    for (double v = ceil(xmin / xs) * xs; v <= xmax; v += xs) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, PX(v), T);
        cairo_line_to(cr, PX(v), B);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(v, xs, buf, sizeof buf);
        text_at(cr, PX(v), B + 8, buf, 0.5, 0);
    }
    /* phases */
    const double dash[] = {6, 4};
    for (int k = 0; k < np; k++) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        if (k > 0) {
            cairo_set_dash(cr, dash, 2, 0);
            cairo_move_to(cr, PX(ph[k].x0), T);
            cairo_line_to(cr, PX(ph[k].x0), B);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        cairo_set_font_size(cr, 13);
        text_at(cr, PX(ph[k].x0) + 6, T + 6, ph[k].name, 0, 0);
    }
    /* episodes: faint dots, then the moving averages */
    for (int k = 0; k < nt; k++) {
        const double *c = plot_colours[tr[k].colour % PLOT_NCOLOURS];
        cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.18);
        int64_t stride = tr[k].n > PLOT_MAX_DOTS ? tr[k].n / PLOT_MAX_DOTS + 1 : 1;
        for (int64_t i = 0; i < tr[k].n; i += stride) {
            cairo_arc(cr, PX(tr[k].x[i]), PY(tr[k].y[i]), 1.6, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    }
    cairo_set_line_width(cr, 2.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int k = 0; k < nt; k++) {
        const double *c = plot_colours[tr[k].colour % PLOT_NCOLOURS];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        for (int64_t i = 0; i < tr[k].n; i++) {
            if (i == 0)
                cairo_move_to(cr, PX(tr[k].x[i]), PY(tr[k].avg[i]));
            else
                cairo_line_to(cr, PX(tr[k].x[i]), PY(tr[k].avg[i]));
        }
        cairo_stroke(cr);
    }
    /* frame, labels, legend */
    cairo_set_line_width(cr, 1.2);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 15);
    text_at(cr, (L + R) / 2, PLOT_H - 22, "agent-steps (env steps x worlds)", 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, 24, (T + B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, "episode return", 0.5, 0.5);
    cairo_restore(cr);
    cairo_set_font_size(cr, 17);
    char head[320];
    snprintf(head, sizeof head, "%s: episode returns (dots) and their moving average (lines)", title);
    text_at(cr, (L + R) / 2, 26, head, 0.5, 0.5);
    cairo_set_font_size(cr, 13);
    double lx = R - 12, ly = B - 12 - 20.0 * (nnames - 1);
    for (int k = 0; k < nnames; k++) {
        const double *c = plot_colours[k % PLOT_NCOLOURS];
        char label[160];
        snprintf(label, sizeof label, "%s (moving average)", names[k]);
        cairo_text_extents_t e;
        cairo_text_extents(cr, label, &e);
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2.2);
        cairo_move_to(cr, lx - e.width - 34, ly + 20.0 * k);
        cairo_line_to(cr, lx - e.width - 10, ly + 20.0 * k);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text_at(cr, lx - e.width - 4, ly + 20.0 * k, label, 0, 0.5);
    }
#undef PX
#undef PY
}

/* The traces of file as curves, with the phases' spans. */
static int plot_load(const char *file, plot_trace **trs, int *ntr, plot_phase **phs, int *nph, char ***agents,
                     int *nagents)
{
    char **names = NULL;
    int count = 0;
    int rc = bd_trace_list(file, &names, &count);
    if (rc)
        return rc;
    plot_trace *tr = calloc((size_t)(count ? count : 1), sizeof *tr);
    plot_phase *ph = calloc((size_t)(count ? count : 1), sizeof *ph);
    char **an = calloc((size_t)(count ? count : 1), sizeof *an);
    int np = 0, na = 0;
    if (!tr || !ph || !an)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    double offset = 0;
    for (int i = 0; rc == BD_OK && i < count; i++) {
        plot_trace *t = &tr[i];
        char *slash = strchr(names[i], '/');
        if (!slash) {
            rc = bd_seterr(BD_EINVAL, "bad trace name '%s'", names[i]);
            break;
        }
        t->phase = strndup(names[i], (size_t)(slash - names[i]));
        t->agent = bd_strdup(slash + 1);
        bd_trace_info info;
        bd_episode *eps = NULL;
        int64_t n = 0;
        if (!t->phase || !t->agent)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
        if (rc || (rc = bd_trace_read_info(file, t->phase, t->agent, &info)))
            break;
        if ((rc = bd_trace_read_episodes(file, t->phase, t->agent, &eps, &n))) {
            bd_trace_info_free(&info);
            break;
        }
        /* a new phase starts where the one before it ended */
        if (np == 0 || strcmp(ph[np - 1].name, t->phase) != 0) {
            if (np)
                offset = ph[np - 1].x1;
            ph[np].name = bd_strdup(t->phase);
            ph[np].x0 = ph[np].x1 = offset;
            np++;
        }
        int64_t end = info.rows * info.every;
        qsort(eps, (size_t)n, sizeof *eps, cmp_end);
        t->x = malloc(sizeof(double) * (size_t)(n ? n : 1));
        t->y = malloc(sizeof(double) * (size_t)(n ? n : 1));
        t->avg = malloc(sizeof(double) * (size_t)(n ? n : 1));
        if (!t->x || !t->y || !t->avg)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
        int64_t w = n / 50 < 1 ? 1 : n / 50 > 100 ? 100 : n / 50;
        double sum = 0;
        for (int64_t e = 0; rc == BD_OK && e < n; e++) {
            int64_t stop = eps[e].start_step + eps[e].length;
            end = stop > end ? stop : end;
            t->x[e] = offset + (double)stop * info.worlds;
            t->y[e] = eps[e].ret;
            sum += t->y[e];
            if (e >= w)
                sum -= t->y[e - w];
            t->avg[e] = sum / (double)(e + 1 < w ? e + 1 : w);
        }
        t->n = n;
        double x1 = offset + (double)end * info.worlds;
        ph[np - 1].x1 = x1 > ph[np - 1].x1 ? x1 : ph[np - 1].x1;
        int c = -1;
        for (int k = 0; k < na; k++)
            if (strcmp(an[k], t->agent) == 0)
                c = k;
        if (c < 0 && !(an[c = na++] = bd_strdup(t->agent)))
            rc = bd_seterr(BD_ENOMEM, "out of memory");
        t->colour = c;
        free(eps);
        bd_trace_info_free(&info);
    }
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
    *trs = tr;
    *ntr = count;
    *phs = ph;
    *nph = np;
    *agents = an;
    *nagents = na;
    return rc;
}

int bd_replay_plot(const char *file, const char *title, const char *out_path)
{
    const char *dot = strrchr(out_path, '.');
    int svg = dot && strcasecmp(dot, ".svg") == 0, png = dot && strcasecmp(dot, ".png") == 0;
    if (!svg && !png)
        return bd_seterr(BD_EINVAL, "--plot %s: name a .svg or a .png file", out_path);
    plot_trace *tr = NULL;
    plot_phase *ph = NULL;
    char **agents = NULL;
    int nt = 0, np = 0, na = 0;
    int rc = plot_load(file, &tr, &nt, &ph, &np, &agents, &na);
    if (rc == BD_OK) {
        cairo_surface_t *s = svg ? cairo_svg_surface_create(out_path, PLOT_W, PLOT_H)
                                 : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)PLOT_W, (int)PLOT_H);
        cairo_t *cr = cairo_create(s);
        draw(cr, title, tr, nt, ph, np, agents, na);
        cairo_destroy(cr);
        cairo_status_t st = png ? cairo_surface_write_to_png(s, out_path) : CAIRO_STATUS_SUCCESS;
        cairo_surface_finish(s);
        if (st == CAIRO_STATUS_SUCCESS)
            st = cairo_surface_status(s);
        cairo_surface_destroy(s);
        if (st != CAIRO_STATUS_SUCCESS)
            rc = bd_seterr(BD_EIO, "--plot %s: %s", out_path, cairo_status_to_string(st));
    }
    for (int k = 0; tr && k < nt; k++) {
        free(tr[k].phase);
        free(tr[k].agent);
        free(tr[k].x);
        free(tr[k].y);
        free(tr[k].avg);
    }
    for (int k = 0; ph && k < np; k++)
        free(ph[k].name);
    for (int k = 0; agents && k < na; k++)
        free(agents[k]);
    free(tr);
    free(ph);
    free(agents);
    return rc;
}
