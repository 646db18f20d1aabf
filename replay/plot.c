/* plot.c: `bodhi replay RUN_DIR --plot FILE.svg|FILE.png`: learning curves (see replay.h),
 * drawn with cairo (SVG and PNG surfaces, with text).
 *
 * One panel per agent, each with its own y axis (CartPole's 0-500 does not flatten Tag's
 * 0-10). x is env steps (each world's; an agent's agent-steps are that times its columns,
 * which the panel states), counted on across the phases in file order, so a train phase
 * and the test phase after it stand side by side; the envs of a phase step together, so
 * the phase boundaries, dashed lines with the phase's name, fall at the same x in every
 * panel. In a panel: every episode's return as a faint dot where it ended, and its moving
 * average over a window of n / 50 episodes (1 to 100), as a line; the legend, beside the
 * panel and outside its data, states the window of each phase. */
#define _GNU_SOURCE
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "memory/memory.h"
#include "replay/replay.h"

#define PLOT_W 1400.0
#define PLOT_PANEL 330.0 /* a panel's height, its x labels included */
#define PLOT_L 90.0  /* margins: room for the y labels ... */
#define PLOT_R 330.0 /* ... the legend beside each panel ... */
#define PLOT_T 60.0  /* ... the title ... */
#define PLOT_B 20.0
#define PLOT_GAP 70.0 /* below a panel's frame: its x labels and axis title */
#define PLOT_MAX_DOTS 20000 /* dots per trace at most (evenly thinned) */

typedef struct {
    char *phase, *agent, *env;
    double *x, *y, *avg; /* (n) by end step: env steps, return, moving average */
    int64_t n;
    int colour;          /* its agent's index: its panel */
    int columns;         /* the agent's columns (worlds x members) */
    int64_t window;      /* the moving average's episodes */
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

/* A legend entry at (lx, ly): a line in colour c, then text. */
static void legend_line(cairo_t *cr, const double *c, double lx, double ly, const char *text)
{
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, 2.2);
    cairo_move_to(cr, lx, ly);
    cairo_line_to(cr, lx + 24, ly);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text_at(cr, lx + 30, ly, text, 0, 0.5);
}

/* Panel a's legend (agent name) with its top left at (lx, ly), right of the frame: what
 * the marks are, and each phase's window. */
static void draw_legend(cairo_t *cr, int a, const char *name, const plot_trace *tr, int nt, double lx, double ly)
{
    const double *c = plot_colours[a % PLOT_NCOLOURS];
    char xt[320];
    cairo_set_font_size(cr, 14);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, lx, ly, name, 0, 0.5);
    cairo_set_font_size(cr, 12);
    ly += 22;
    cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.5);
    cairo_arc(cr, lx + 12, ly, 2.5, 0, 2 * M_PI);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text_at(cr, lx + 30, ly, "an episode's return, where it ended", 0, 0.5);
    for (int k = 0; k < nt; k++) {
        if (tr[k].colour != a)
            continue;
        ly += 20;
        snprintf(xt, sizeof xt, "%s: moving average of %lld episode%s", tr[k].phase, (long long)tr[k].window,
                 tr[k].window == 1 ? "" : "s");
        legend_line(cr, c, lx, ly, xt);
    }
}

/* A panel's frame on the page (L, R, T, B) and the data ranges it maps onto it. */
typedef struct {
    double L, R, T, B, xmin, xmax, ymin, ymax;
} plot_frame;

/* The frame of the panel with its top at y0 over x in [xmin, xmax] (widened when empty) and
 * y from its data's min to max (infinite when there is none), padded. */
static plot_frame panel_frame(double y0, double xmin, double xmax, double ymin, double ymax)
{
    if (!isfinite(ymin) || !isfinite(ymax)) {
        ymin = 0;
        ymax = 1;
    }
    if (ymax - ymin < 1e-9) {
        ymin -= 1;
        ymax += 1;
    }
    double pad = 0.05 * (ymax - ymin);
    if (xmax <= xmin)
        xmax = xmin + 1;
    return (plot_frame){PLOT_L, PLOT_W - PLOT_R, y0 + 10,  y0 + PLOT_PANEL - PLOT_GAP,
                        xmin,   xmax,           ymin - pad, ymax + pad};
}

/* Data x and y to the page. */
static double px(const plot_frame *f, double v)
{
    return f->L + (v - f->xmin) / (f->xmax - f->xmin) * (f->R - f->L);
}

static double py(const plot_frame *f, double v)
{
    return f->B - (v - f->ymin) / (f->ymax - f->ymin) * (f->B - f->T);
}

/* A panel's grid, tick labels and phase lines in frame f. */
static void draw_grid(cairo_t *cr, const plot_frame *f, const plot_phase *ph, int np)
{
    const double L = f->L, R = f->R, T = f->T, B = f->B, xmin = f->xmin, xmax = f->xmax, ymin = f->ymin,
                 ymax = f->ymax;
    char buf[64];
    cairo_set_font_size(cr, 13);
    cairo_set_line_width(cr, 1);
    double ys = nice_step(ymax - ymin, 5), xs = nice_step(xmax - xmin, 8);
    for (double v = ceil(ymin / ys) * ys; v <= ymax; v += ys) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, py(f, v));
        cairo_line_to(cr, R, py(f, v));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(v, ys, buf, sizeof buf);
        text_at(cr, L - 8, py(f, v), buf, 1, 0.5);
    }
    for (double v = ceil(xmin / xs) * xs; v <= xmax; v += xs) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px(f, v), T);
        cairo_line_to(cr, px(f, v), B);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(v, xs, buf, sizeof buf);
        text_at(cr, px(f, v), B + 6, buf, 0.5, 0);
    }
    /* phases: the same x in every panel */
    const double dash[] = {6, 4};
    for (int k = 0; k < np; k++) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        if (k > 0) {
            cairo_set_dash(cr, dash, 2, 0);
            cairo_move_to(cr, px(f, ph[k].x0), T);
            cairo_line_to(cr, px(f, ph[k].x0), B);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        text_at(cr, px(f, ph[k].x0) + 6, T + 6, ph[k].name, 0, 0);
    }
}

/* Frame f's border and axis titles (xt: the x axis's). */
static void draw_frame(cairo_t *cr, const plot_frame *f, const char *xt)
{
    const double L = f->L, R = f->R, T = f->T, B = f->B;
    cairo_set_line_width(cr, 1.2);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    text_at(cr, (L + R) / 2, B + 36, xt, 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, 22, (T + B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, "episode return", 0.5, 0.5);
    cairo_restore(cr);
}

/* Panel a (agent names[a]) with its top at y0: its traces, the phases, its legend. */
static void draw_panel(cairo_t *cr, double y0, int a, const char *name, plot_trace *tr, int nt, plot_phase *ph,
                       int np)
{
    double xmin = 0, xmax = np ? ph[np - 1].x1 : 1, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < nt; k++)
        for (int64_t i = 0; tr[k].colour == a && i < tr[k].n; i++) {
            ymin = fmin(ymin, tr[k].y[i]);
            ymax = fmax(ymax, tr[k].y[i]);
        }
    const plot_frame f = panel_frame(y0, xmin, xmax, ymin, ymax);
    const double L = f.L, R = f.R, T = f.T, B = f.B;
    draw_grid(cr, &f, ph, np);
    const double *c = plot_colours[a % PLOT_NCOLOURS];
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.18);
    for (int k = 0; k < nt; k++) {
        if (tr[k].colour != a)
            continue;
        int64_t stride = tr[k].n > PLOT_MAX_DOTS ? tr[k].n / PLOT_MAX_DOTS + 1 : 1;
        for (int64_t i = 0; i < tr[k].n; i += stride) {
            cairo_arc(cr, px(&f, tr[k].x[i]), py(&f, tr[k].y[i]), 1.6, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    }
    cairo_set_line_width(cr, 2.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    for (int k = 0; k < nt; k++) {
        for (int64_t i = 0; tr[k].colour == a && i < tr[k].n; i++) {
            if (i == 0)
                cairo_move_to(cr, px(&f, tr[k].x[i]), py(&f, tr[k].avg[i]));
            else
                cairo_line_to(cr, px(&f, tr[k].x[i]), py(&f, tr[k].avg[i]));
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    const plot_trace *first = NULL;
    for (int k = 0; k < nt && !first; k++)
        if (tr[k].colour == a)
            first = &tr[k];
    char xt[320];
    snprintf(xt, sizeof xt, "env steps of %s (each of its worlds; the agent-steps of %s are %d times as many)",
             first && first->env ? first->env : "its env", name, first ? first->columns : 1);
    draw_frame(cr, &f, xt);
    draw_legend(cr, a, name, tr, nt, R + 18, T + 8);
}

static void draw(cairo_t *cr, const char *title, plot_trace *tr, int nt, plot_phase *ph, int np, char **names,
                 int nnames)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 17);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    char head[320];
    snprintf(head, sizeof head, "%s: episode returns (dots) and their moving average (lines), one panel per agent",
             title);
    text_at(cr, PLOT_W / 2, 26, head, 0.5, 0.5);
    for (int a = 0; a < nnames; a++)
        draw_panel(cr, PLOT_T + PLOT_PANEL * a, a, names[a], tr, nt, ph, np);
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
        t->env = NULL;
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
        int64_t end = bd_trace_span(&info);
        qsort(eps, (size_t)n, sizeof *eps, cmp_end);
        t->x = malloc(sizeof(double) * (size_t)(n ? n : 1));
        t->y = malloc(sizeof(double) * (size_t)(n ? n : 1));
        t->avg = malloc(sizeof(double) * (size_t)(n ? n : 1));
        if (!t->x || !t->y || !t->avg)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
        int64_t w = n / 50 < 1 ? 1 : n / 50 > 100 ? 100 : n / 50;
        t->window = w;
        t->columns = info.worlds;
        t->env = bd_strdup(info.env ? info.env : "");
        double sum = 0;
        for (int64_t e = 0; rc == BD_OK && e < n; e++) {
            int64_t stop = eps[e].start_step + eps[e].length;
            end = stop > end ? stop : end;
            t->x[e] = offset + (double)stop; /* env steps */
            t->y[e] = eps[e].ret;
            sum += t->y[e];
            if (e >= w)
                sum -= t->y[e - w];
            t->avg[e] = sum / (double)(e + 1 < w ? e + 1 : w);
        }
        t->n = n;
        double x1 = offset + (double)end;
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

static void plot_free(plot_trace *tr, int nt, plot_phase *ph, int np, char **agents, int na)
{
    for (int k = 0; tr && k < nt; k++) {
        free(tr[k].phase);
        free(tr[k].agent);
        free(tr[k].env);
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
}

/* out_path's kind: 1 SVG, 2 PNG; 0 after recording the error. */
static int plot_kind(const char *out_path)
{
    const char *dot = strrchr(out_path, '.');
    if (dot && strcasecmp(dot, ".svg") == 0)
        return 1;
    if (dot && strcasecmp(dot, ".png") == 0)
        return 2;
    bd_seterr(BD_EINVAL, "--plot %s: name a .svg or a .png file", out_path);
    return 0;
}

/* A surface of height H for out_path's kind. */
static cairo_surface_t *plot_surface(const char *out_path, int kind, double H)
{
    return kind == 1 ? cairo_svg_surface_create(out_path, PLOT_W, H)
                     : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)PLOT_W, (int)H);
}

/* Writes s (a PNG) and finishes it: BD_OK or BD_EIO. */
static int plot_finish(cairo_surface_t *s, const char *out_path, int kind)
{
    cairo_status_t st = kind == 2 ? cairo_surface_write_to_png(s, out_path) : CAIRO_STATUS_SUCCESS;
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    return st == CAIRO_STATUS_SUCCESS ? BD_OK
                                      : bd_seterr(BD_EIO, "--plot %s: %s", out_path, cairo_status_to_string(st));
}

int bd_replay_plot(const char *file, const char *title, const char *out_path)
{
    int kind = plot_kind(out_path);
    if (!kind)
        return BD_EINVAL;
    plot_trace *tr = NULL;
    plot_phase *ph = NULL;
    char **agents = NULL;
    int nt = 0, np = 0, na = 0;
    int rc = plot_load(file, &tr, &nt, &ph, &np, &agents, &na);
    if (rc == BD_OK) {
        double H = PLOT_T + PLOT_PANEL * (na > 0 ? na : 1) + PLOT_B;
        cairo_surface_t *s = plot_surface(out_path, kind, H);
        cairo_t *cr = cairo_create(s);
        draw(cr, title, tr, nt, ph, np, agents, na);
        cairo_destroy(cr);
        rc = plot_finish(s, out_path, kind);
    }
    plot_free(tr, nt, ph, np, agents, na);
    return rc;
}

/* ---- a sweep: each point's mean curve over its seeds, with a band ----------------------- */

#define SWEEP_GRID 200 /* x positions of a point's mean curve */

/* One point's curve in one agent's panel: x, mean and standard deviation over its seeds. */
typedef struct {
    double x[SWEEP_GRID], mean[SWEEP_GRID], sd[SWEEP_GRID];
    int n, seeds;
} sweep_band;

/* A seed's curve of one agent: its traces' moving averages, one phase after another
 * (phase k from x = x0[k], its first point at index first[k]). */
#define SWEEP_MAX_PHASES 64
typedef struct {
    double *x, *avg;
    int64_t n;
    double x0[SWEEP_MAX_PHASES];
    int64_t first[SWEEP_MAX_PHASES];
    int nphases;
} seed_curve;

/* The value of curve c at x: its last moving average at or before x (c->n > 0, x >= c->x[0]);
 * NAN when x is in a phase that has no episode ended by x (an earlier phase's value does not
 * carry over). */
static double curve_at(const seed_curve *c, double x)
{
    int64_t lo = 0, hi = c->n - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (c->x[mid] <= x)
            lo = mid;
        else
            hi = mid - 1;
    }
    int k = c->nphases - 1;
    while (k > 0 && c->x0[k] > x)
        k--;
    return k >= 0 && lo < c->first[k] ? NAN : c->avg[lo];
}

/* band from the seeds' curves (those with episodes), on SWEEP_GRID x's from the last
 * first episode to the first last one: where every seed has a value. */
static void make_band(const seed_curve *cs, int nc, sweep_band *b)
{
    double x0 = -INFINITY, x1 = INFINITY;
    b->n = b->seeds = 0;
    for (int s = 0; s < nc; s++)
        if (cs[s].n > 0) {
            x0 = fmax(x0, cs[s].x[0]);
            x1 = fmin(x1, cs[s].x[cs[s].n - 1]);
            b->seeds++;
        }
    if (b->seeds == 0 || x1 < x0)
        return;
    b->n = x1 > x0 ? SWEEP_GRID : 1;
    for (int g = 0; g < b->n; g++) {
        double x = b->n > 1 ? x0 + (x1 - x0) * g / (b->n - 1) : x0, sum = 0, sq = 0;
        for (int s = 0; s < nc; s++) /* NAN (a gap) when a seed has no value there */
            sum += cs[s].n > 0 ? curve_at(&cs[s], x) : 0;
        double mean = sum / b->seeds;
        for (int s = 0; s < nc; s++)
            if (cs[s].n > 0)
                sq += (curve_at(&cs[s], x) - mean) * (curve_at(&cs[s], x) - mean);
        b->x[g] = x;
        b->mean[g] = mean;
        b->sd[g] = b->seeds > 1 ? sqrt(sq / (b->seeds - 1)) : 0;
    }
}

/* Appends trace t's curve to c; its phase starts at x0. */
static int curve_add(seed_curve *c, const plot_trace *t, double x0)
{
    if (c->nphases < SWEEP_MAX_PHASES) {
        c->x0[c->nphases] = x0;
        c->first[c->nphases++] = c->n;
    }
    const size_t n = (size_t)(c->n + t->n + 1);
    double *x = realloc(c->x, sizeof *x * n), *a = x ? realloc(c->avg, sizeof *a * n) : NULL;
    if (x)
        c->x = x;
    if (a)
        c->avg = a;
    if (!x || !a)
        return bd_seterr(BD_ENOMEM, "out of memory");
    memcpy(c->x + c->n, t->x, sizeof *x * (size_t)t->n);
    memcpy(c->avg + c->n, t->avg, sizeof *a * (size_t)t->n);
    c->n += t->n;
    return BD_OK;
}

/* The agent panels' names (union over every run) and each (agent, point)'s band. */
typedef struct {
    char **agents;
    int na;
    sweep_band *bands; /* [agent * npoints + point], 64 agents at most */
    plot_phase *ph;    /* the phases of the first run */
    int np;
    char *env[64];
    int columns[64];
} sweep_plot;

static int agent_index(sweep_plot *sp, const char *name)
{
    for (int k = 0; k < sp->na; k++)
        if (strcmp(sp->agents[k], name) == 0)
            return k;
    if (sp->na >= 64)
        return -1;
    char **more = realloc(sp->agents, sizeof *more * (size_t)(sp->na + 1));
    if (!more)
        return -1;
    sp->agents = more;
    return (more[sp->na] = bd_strdup(name)) ? sp->na++ : -1;
}

/* Point p's runs loaded into curves per agent (cur[agent * nfiles + file]), then bands. */
static int sweep_point(sweep_plot *sp, int p, int npoints, const char *const *files, int nfiles)
{
    seed_curve *cur = calloc((size_t)64 * (size_t)(nfiles ? nfiles : 1), sizeof *cur);
    int rc = cur ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
    for (int f = 0; rc == BD_OK && f < nfiles; f++) {
        plot_trace *tr = NULL;
        plot_phase *ph = NULL;
        char **an = NULL;
        int nt = 0, np = 0, na = 0;
        rc = plot_load(files[f], &tr, &nt, &ph, &np, &an, &na);
        for (int k = 0; rc == BD_OK && k < nt; k++) {
            int a = agent_index(sp, tr[k].agent);
            if (a < 0) {
                rc = bd_seterr(BD_EINVAL, "--plot: more than 64 agents in the sweep");
                break;
            }
            if (!sp->env[a]) {
                sp->env[a] = bd_strdup(tr[k].env ? tr[k].env : "");
                sp->columns[a] = tr[k].columns;
            }
            double x0 = 0;
            for (int q = 0; q < np; q++)
                if (strcmp(ph[q].name, tr[k].phase) == 0)
                    x0 = ph[q].x0;
            rc = curve_add(&cur[a * nfiles + f], &tr[k], x0);
        }
        if (rc == BD_OK && !sp->ph) { /* the phase lines: the first run's */
            sp->ph = ph;
            sp->np = np;
            ph = NULL;
            np = 0;
        }
        plot_free(tr, nt, ph, np, an, na);
    }
    for (int a = 0; rc == BD_OK && a < sp->na; a++)
        make_band(&cur[a * nfiles], nfiles, &sp->bands[a * npoints + p]);
    for (int k = 0; cur && k < 64 * nfiles; k++) {
        free(cur[k].x);
        free(cur[k].avg);
    }
    free(cur);
    return rc;
}

/* Agent a's panel of the sweep with its top at y0. */
static void draw_sweep_panel(cairo_t *cr, double y0, int a, const sweep_plot *sp, const char *const *points,
                             int npoints)
{
    double xmin = 0, xmax = sp->np ? sp->ph[sp->np - 1].x1 : 1, ymin = INFINITY, ymax = -INFINITY;
    for (int p = 0; p < npoints; p++) {
        const sweep_band *b = &sp->bands[a * npoints + p];
        for (int g = 0; g < b->n; g++) {
            ymin = fmin(ymin, b->mean[g] - b->sd[g]);
            ymax = fmax(ymax, b->mean[g] + b->sd[g]);
            xmax = fmax(xmax, b->x[g]);
        }
    }
    const plot_frame f = panel_frame(y0, xmin, xmax, ymin, ymax);
    const double L = f.L, R = f.R, T = f.T, B = f.B;
    draw_grid(cr, &f, sp->ph, sp->np);
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    for (int p = 0; p < npoints; p++) {
        const sweep_band *b = &sp->bands[a * npoints + p];
        const double *c = plot_colours[p % PLOT_NCOLOURS];
        if (b->n == 0)
            continue;
        for (int g0 = 0, g1; g0 < b->n; g0 = g1) { /* each run of x's with a value */
            while (g0 < b->n && isnan(b->mean[g0]))
                g0++;
            for (g1 = g0; g1 < b->n && !isnan(b->mean[g1]);)
                g1++;
            if (g0 >= b->n)
                break;
            cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.2); /* the band: mean +- sd */
            for (int g = g0; g < g1; g++)
                (g > g0 ? cairo_line_to : cairo_move_to)(cr, px(&f, b->x[g]), py(&f, b->mean[g] + b->sd[g]));
            for (int g = g1 - 1; g >= g0; g--)
                cairo_line_to(cr, px(&f, b->x[g]), py(&f, b->mean[g] - b->sd[g]));
            cairo_close_path(cr);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, c[0], c[1], c[2]);
            cairo_set_line_width(cr, 2.2);
            for (int g = g0; g < g1; g++)
                (g > g0 ? cairo_line_to : cairo_move_to)(cr, px(&f, b->x[g]), py(&f, b->mean[g]));
            if (g1 - g0 == 1)
                cairo_arc(cr, px(&f, b->x[g0]), py(&f, b->mean[g0]), 3, 0, 2 * M_PI);
            cairo_stroke(cr);
        }
    }
    cairo_restore(cr);
    char xt[320];
    snprintf(xt, sizeof xt, "env steps of %s (each of its worlds; the agent-steps of %s are %d times as many)",
             sp->env[a] && sp->env[a][0] ? sp->env[a] : "its env", sp->agents[a], sp->columns[a]);
    draw_frame(cr, &f, xt);
    double lx = R + 18, ly = T + 8; /* the legend: a point, its colour and its seeds */
    cairo_set_font_size(cr, 14);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, lx, ly, sp->agents[a], 0, 0.5);
    cairo_set_font_size(cr, 12);
    for (int p = 0; p < npoints && ly < B; p++) {
        const double *c = plot_colours[p % PLOT_NCOLOURS];
        ly += 20;
        cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.3);
        cairo_rectangle(cr, lx, ly - 6, 24, 12);
        cairo_fill(cr);
        char t[320];
        snprintf(t, sizeof t, "%.40s (%d seed%s)", points[p], sp->bands[a * npoints + p].seeds,
                 sp->bands[a * npoints + p].seeds == 1 ? "" : "s");
        legend_line(cr, c, lx, ly, t);
    }
}

int bd_replay_plot_sweep(const char *title, const char *const *points, const char *const *const *files,
                         const int *nfiles, int npoints, const char *out_path)
{
    int kind = plot_kind(out_path);
    if (!kind)
        return BD_EINVAL;
    sweep_plot sp = {.bands = calloc((size_t)64 * (size_t)(npoints ? npoints : 1), sizeof(sweep_band))};
    int rc = sp.bands ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
    for (int p = 0; rc == BD_OK && p < npoints; p++)
        rc = sweep_point(&sp, p, npoints, files[p], nfiles[p]);
    if (rc == BD_OK) {
        double H = PLOT_T + PLOT_PANEL * (sp.na > 0 ? sp.na : 1) + PLOT_B;
        cairo_surface_t *s = plot_surface(out_path, kind, H);
        cairo_t *cr = cairo_create(s);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_font_size(cr, 17);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        char head[400];
        snprintf(head, sizeof head, "%s: each point's mean over its seeds of their moving-average returns, "
                 "band: +- one standard deviation", title);
        text_at(cr, PLOT_W / 2, 26, head, 0.5, 0.5);
        for (int a = 0; a < sp.na; a++)
            draw_sweep_panel(cr, PLOT_T + PLOT_PANEL * a, a, &sp, points, npoints);
        cairo_destroy(cr);
        rc = plot_finish(s, out_path, kind);
    }
    plot_free(NULL, 0, sp.ph, sp.np, sp.agents, sp.na);
    for (int a = 0; a < 64; a++)
        free(sp.env[a]);
    free(sp.bands);
    return rc;
}
