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
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2.2);
        cairo_move_to(cr, lx, ly);
        cairo_line_to(cr, lx + 24, ly);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        snprintf(xt, sizeof xt, "%s: moving average of %lld episode%s", tr[k].phase, (long long)tr[k].window,
                 tr[k].window == 1 ? "" : "s");
        text_at(cr, lx + 30, ly, xt, 0, 0.5);
    }
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
    const double L = PLOT_L, R = PLOT_W - PLOT_R, T = y0 + 10, B = y0 + PLOT_PANEL - PLOT_GAP;
#define PX(v) (L + ((v) - xmin) / (xmax - xmin) * (R - L))
#define PY(v) (B - ((v) - ymin) / (ymax - ymin) * (B - T))
    char buf[64];
    cairo_set_font_size(cr, 13);
    cairo_set_line_width(cr, 1);
    double ys = nice_step(ymax - ymin, 5), xs = nice_step(xmax - xmin, 8);
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
        text_at(cr, PX(v), B + 6, buf, 0.5, 0);
    }
    /* phases: the same x in every panel */
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
        text_at(cr, PX(ph[k].x0) + 6, T + 6, ph[k].name, 0, 0);
    }
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
            cairo_arc(cr, PX(tr[k].x[i]), PY(tr[k].y[i]), 1.6, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    }
    cairo_set_line_width(cr, 2.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    for (int k = 0; k < nt; k++) {
        for (int64_t i = 0; tr[k].colour == a && i < tr[k].n; i++) {
            if (i == 0)
                cairo_move_to(cr, PX(tr[k].x[i]), PY(tr[k].avg[i]));
            else
                cairo_line_to(cr, PX(tr[k].x[i]), PY(tr[k].avg[i]));
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    /* frame and axis titles */
    cairo_set_line_width(cr, 1.2);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    const plot_trace *first = NULL;
    for (int k = 0; k < nt && !first; k++)
        if (tr[k].colour == a)
            first = &tr[k];
    char xt[320];
    snprintf(xt, sizeof xt, "env steps of %s (each of its worlds; the agent-steps of %s are %d times as many)",
             first && first->env ? first->env : "its env", name, first ? first->columns : 1);
    text_at(cr, (L + R) / 2, B + 36, xt, 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, 22, (T + B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, "episode return", 0.5, 0.5);
    cairo_restore(cr);
    draw_legend(cr, a, name, tr, nt, R + 18, T + 8);
#undef PX
#undef PY
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
        int64_t end = info.rows * info.every;
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
        double H = PLOT_T + PLOT_PANEL * (na > 0 ? na : 1) + PLOT_B;
        cairo_surface_t *s = svg ? cairo_svg_surface_create(out_path, PLOT_W, H)
                                 : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)PLOT_W, (int)H);
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
    return rc;
}
