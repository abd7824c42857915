/*
 * svg.c - the little inline-SVG plotting `opecom report` needs: a plot
 * frame mapping data to pixels, axes with "nice" ticks (1, 2 or 5 times a
 * power of ten), lines, and text escaped for HTML/XML.
 *
 * Then the plots of `opecom report` that need only the figures: ROC and
 * precision-recall curves, calibration, the distribution of the scores.
 *
 * Everything is written straight to a FILE; no memory is allocated. The
 * SVG is meant to sit inside an HTML page, styled by that page's CSS
 * (classes: axis, grid, tick, label, title, ref, curve, dot, count, bar,
 * neg, pos, name).
 */
#include <math.h>
#include <string.h>

#include "cli.h"

void cli_html_text(FILE *fp, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default:
            /* control characters other than tab and newline are not XML */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n')
                putc(' ', fp);
            else
                putc(*s, fp);
        }
    }
}

void cli_svg_begin(cli_svg *g, FILE *fp, const char *id, int width, int height,
                   const cli_svg_margins *m, const char *title) {
    memset(g, 0, sizeof(*g));
    g->fp = fp;
    g->x0 = 0.0;
    g->x1 = 1.0;
    g->y0 = 0.0;
    g->y1 = 1.0;
    g->left = m->left;
    g->top = m->top;
    g->width = width - m->left - m->right;
    g->height = height - m->top - m->bottom;
    fprintf(fp,
            "<svg id=\"%s\" class=\"plot %s\" xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<title>",
            id, id, width, height, width, height);
    cli_html_text(fp, title);
    fputs("</title>\n", fp);
    fprintf(fp, "<text class=\"title\" x=\"%.1f\" y=\"20\" text-anchor=\"middle\">",
            (double)width / 2.0);
    cli_html_text(fp, title);
    fputs("</text>\n", fp);
}

void cli_svg_range(cli_svg *g, double x0, double x1, double y0, double y1) {
    g->x0 = x0;
    g->x1 = x1 > x0 ? x1 : x0 + 1.0;
    g->y0 = y0;
    g->y1 = y1 > y0 ? y1 : y0 + 1.0;
}

double cli_svg_x(const cli_svg *g, double v) {
    return g->left + (v - g->x0) / (g->x1 - g->x0) * g->width;
}

double cli_svg_y(const cli_svg *g, double v) {
    return g->top + g->height - (v - g->y0) / (g->y1 - g->y0) * g->height;
}

double cli_nice_step(double range, int n) {
    double raw = range / (n > 0 ? n : 1);
    double p;
    double f;
    if (!(raw > 0.0) || !isfinite(raw))
        return 1.0;
    p = pow(10.0, floor(log10(raw)));
    f = raw / p;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * p;
}

/* Digits after the point that show every tick of `step` exactly. */
static int decimals_of(double step) {
    int d = (int)-floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d > 6 ? 6 : d;
}

static void ticks(cli_svg *g, int vertical, int n) {
    double lo = vertical ? g->y0 : g->x0;
    double hi = vertical ? g->y1 : g->x1;
    double step = cli_nice_step(hi - lo, n);
    int dec = decimals_of(step);
    double v;
    long k;
    for (k = (long)ceil(lo / step - 1e-9); (v = (double)k * step) <= hi + step * 1e-9; k++) {
        if (vertical) {
            double y = cli_svg_y(g, v);
            fprintf(g->fp,
                    "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                    "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
                    g->left, y, g->left + g->width, y, g->left - 5, y, g->left, y,
                    g->left - 8, y + 4, dec, v);
        } else {
            double x = cli_svg_x(g, v);
            double yb = g->top + g->height;
            fprintf(g->fp,
                    "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                    "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
                    "%.*f</text>\n",
                    x, g->top, x, yb, x, yb, x, yb + 5, x, yb + 18, dec, v);
        }
    }
}

void cli_svg_axes(cli_svg *g, const char *xlabel, const char *ylabel, int nx, int ny) {
    double yb = g->top + g->height;
    if (nx > 0)
        ticks(g, 0, nx);
    if (ny > 0)
        ticks(g, 1, ny);
    fprintf(g->fp,
            "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
            g->left, g->top, g->width, g->height);
    if (xlabel) {
        fprintf(g->fp, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                g->left + g->width / 2.0, yb + 38);
        cli_html_text(g->fp, xlabel);
        fputs("</text>\n", g->fp);
    }
    if (ylabel) {
        double x = g->left - 48;
        double y = g->top + g->height / 2.0;
        fprintf(g->fp,
                "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                "transform=\"rotate(-90 %.1f %.1f)\">",
                x, y, x, y);
        cli_html_text(g->fp, ylabel);
        fputs("</text>\n", g->fp);
    }
}

void cli_svg_line(cli_svg *g, const char *cls, double xa, double ya, double xb, double yb) {
    fprintf(g->fp, "<line class=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", cls,
            cli_svg_x(g, xa), cli_svg_y(g, ya), cli_svg_x(g, xb), cli_svg_y(g, yb));
}

void cli_svg_path_begin(cli_svg *g, const char *cls) {
    g->n_points = 0;
    fprintf(g->fp, "<polyline class=\"%s\" points=\"", cls);
}

void cli_svg_path_point(cli_svg *g, double x, double y, int force) {
    double px = cli_svg_x(g, x);
    double py = cli_svg_y(g, y);
    /* Points closer than half a pixel to the last one add nothing. */
    if (!force && g->n_points > 0 && fabs(px - g->last_x) < 0.5 && fabs(py - g->last_y) < 0.5)
        return;
    fprintf(g->fp, "%s%.1f,%.1f", g->n_points ? " " : "", px, py);
    g->last_x = px;
    g->last_y = py;
    g->n_points++;
}

void cli_svg_path_end(cli_svg *g) {
    fputs("\"/>\n", g->fp);
}

void cli_svg_end(cli_svg *g) {
    fputs("</svg>\n", g->fp);
}

/* ===================================================================== *
 * The report's plots
 * ===================================================================== */

#define SCORE_BINS 20

static const cli_svg_margins plot_margins = {66, 34, 20, 52};

/* ROC and PR curves from the pairs sorted by descending probability. */
void cli_plot_curves(FILE *fp, const cli_scored *s, const cli_metrics *m) {
    uint64_t neg = m->n - m->positives;
    uint64_t tp = 0;
    uint64_t fp_ = 0;
    char title[96];
    cli_svg g;
    size_t i;
    int pass;
    fputs("<h2 id=\"curves\">ROC and precision-recall curves</h2>\n<div class=\"row\">\n", fp);
    for (pass = 0; pass < 2; pass++) {
        int roc = pass == 0;
        if (roc)
            snprintf(title, sizeof(title), isnan(m->roc_auc) ? "ROC curve (AUC undefined)"
                                                              : "ROC curve (AUC = %.4f)",
                     m->roc_auc);
        else
            snprintf(title, sizeof(title),
                     isnan(m->pr_auc) ? "Precision-recall curve (AP undefined)"
                                      : "Precision-recall curve (AP = %.4f)",
                     m->pr_auc);
        cli_svg_begin(&g, fp, roc ? "roc" : "pr", 540, 440, &plot_margins, title);
        cli_svg_axes(&g, roc ? "false positive rate" : "recall (true positive rate)",
                     roc ? "true positive rate (recall)" : "precision", 5, 5);
        if (roc)
            cli_svg_line(&g, "ref", 0, 0, 1, 1);
        else
            cli_svg_line(&g, "ref", 0, cli_ratio(m->positives, m->n), 1,
                         cli_ratio(m->positives, m->n));
        tp = fp_ = 0;
        cli_svg_path_begin(&g, "curve");
        if (roc)
            cli_svg_path_point(&g, 0, 0, 1);
        for (i = 0; i < m->n;) {
            size_t j;
            for (j = i; j < m->n && s[j].p == s[i].p; j++) {
                tp += s[j].y;
                fp_ += !s[j].y;
            }
            if (roc)
                cli_svg_path_point(&g, cli_ratio(fp_, neg), cli_ratio(tp, m->positives),
                                   j == m->n);
            else if (m->positives > 0) {
                double prec = (double)tp / (double)(tp + fp_);
                if (i == 0)
                    cli_svg_path_point(&g, 0, prec, 1);
                cli_svg_path_point(&g, cli_ratio(tp, m->positives), prec, j == m->n);
            }
            i = j;
        }
        cli_svg_path_end(&g);
        cli_svg_end(&g);
    }
    fputs("</div>\n<p class=\"note\">Dashed: a model that guesses (ROC: the diagonal; "
          "precision-recall: the share of positives).</p>\n",
          fp);
}

void cli_plot_calibration(FILE *fp, const cli_metrics *m) {
    cli_svg g;
    int i;
    fputs("<h2 id=\"calibration-plot\">Calibration</h2>\n", fp);
    cli_svg_begin(&g, fp, "calibration", 540, 460, &(cli_svg_margins){66, 34, 20, 72},
                  "Calibration (10 equal-width bins)");
    cli_svg_axes(&g, "mean predicted probability", "observed rate of purchases", 5, 5);
    cli_svg_line(&g, "ref", 0, 0, 1, 1);
    cli_svg_path_begin(&g, "curve");
    for (i = 0; i < CLI_CAL_BINS; i++) {
        const cli_bin *b = &m->bins[i];
        if (b->count)
            cli_svg_path_point(&g, b->sum_p / (double)b->count,
                               (double)b->positives / (double)b->count, 1);
    }
    cli_svg_path_end(&g);
    for (i = 0; i < CLI_CAL_BINS; i++) {
        const cli_bin *b = &m->bins[i];
        double yb = g.top + g.height;
        if (b->count)
            fprintf(fp, "<circle class=\"dot\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\"/>\n",
                    cli_svg_x(&g, b->sum_p / (double)b->count),
                    cli_svg_y(&g, (double)b->positives / (double)b->count));
        /* the bin's row count under the axis label, centred on the bin */
        fprintf(fp,
                "<text class=\"count\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%llu</text>\n",
                cli_svg_x(&g, (i + 0.5) / CLI_CAL_BINS), yb + 58,
                (unsigned long long)b->count);
    }
    fprintf(fp, "<text class=\"count\" x=\"4\" y=\"%.1f\">rows:</text>\n",
            g.top + g.height + 58);
    cli_svg_end(&g);
    fputs("<p class=\"note\">Each dot is one bin of predicted probability: its mean "
          "prediction against the share of its rows that bought; the numbers under the "
          "axis are the rows per bin. Dots on the dashed diagonal are well calibrated.</p>\n",
          fp);
}

void cli_plot_scores(FILE *fp, const cli_scored *s, size_t n, int labelled, double threshold) {
    uint64_t count[2][SCORE_BINS];
    uint64_t total[2] = {0, 0};
    double top = 0.0;
    cli_svg g;
    size_t i;
    int b;
    int k;
    memset(count, 0, sizeof(count));
    for (i = 0; i < n; i++) {
        int bin = (int)(s[i].p * SCORE_BINS);
        int y = labelled ? (int)s[i].y : 0;
        count[y][bin < 0 ? 0 : bin >= SCORE_BINS ? SCORE_BINS - 1 : bin]++;
        total[y]++;
    }
    for (k = 0; k < 2; k++)
        for (b = 0; b < SCORE_BINS; b++) {
            double v = labelled ? cli_ratio(count[k][b], total[k]) : (double)count[k][b];
            top = v > top ? v : top;
        }
    fputs("<h2 id=\"score-distribution\">Distribution of the scores</h2>\n", fp);
    cli_svg_begin(&g, fp, "scores", 1000, 400, &(cli_svg_margins){76, 34, 20, 52},
                  labelled ? "Predicted probability by actual label"
                           : "Predicted probability");
    {
        double step = cli_nice_step(top, 5);
        cli_svg_range(&g, 0, 1, 0, ceil(top / step) * step);
    }
    cli_svg_axes(&g, "predicted probability of a purchase",
                 labelled ? "share of the class's rows" : "rows", 10, 5);
    for (k = 0; k < (labelled ? 2 : 1); k++)
        for (b = 0; b < SCORE_BINS; b++) {
            double v = labelled ? cli_ratio(count[k][b], total[k]) : (double)count[k][b];
            double xa = cli_svg_x(&g, (double)b / SCORE_BINS) + 1;
            double xb = cli_svg_x(&g, (double)(b + 1) / SCORE_BINS) - 1;
            /* labelled: the two classes side by side in each bin */
            double x0 = labelled && k ? (xa + xb) / 2.0 : xa;
            double x1 = labelled && !k ? (xa + xb) / 2.0 : xb;
            double y = cli_svg_y(&g, v);
            fprintf(fp,
                    "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                    "<title>%.2f-%.2f: %llu rows</title></rect>\n",
                    labelled ? (k ? "pos" : "neg") : "bar", x0, y, x1 - x0,
                    g.top + g.height - y, (double)b / SCORE_BINS, (double)(b + 1) / SCORE_BINS,
                    (unsigned long long)count[k][b]);
        }
    cli_svg_line(&g, "ref", threshold, g.y0, threshold, g.y1);
    fprintf(fp, "<text class=\"count\" x=\"%.1f\" y=\"%.1f\">threshold %.3f</text>\n",
            cli_svg_x(&g, threshold) + 4, g.top + 14, threshold);
    if (labelled) {
        double x = g.left + g.width - 190;
        fprintf(fp,
                "<rect class=\"neg\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\"/>"
                "<text class=\"name\" x=\"%.1f\" y=\"%.1f\">no purchase (%llu rows)</text>\n"
                "<rect class=\"pos\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\"/>"
                "<text class=\"name\" x=\"%.1f\" y=\"%.1f\">purchase (%llu rows)</text>\n",
                x, g.top + 10, x + 20, g.top + 22, (unsigned long long)total[0], x,
                g.top + 32, x + 20, g.top + 44, (unsigned long long)total[1]);
    }
    cli_svg_end(&g);
    fprintf(fp, "<p class=\"note\">%d bins of width %.2f%s. Dashed: the decision threshold.</p>\n",
            SCORE_BINS, 1.0 / SCORE_BINS,
            labelled ? "; each class is scaled to its own total, so both show" : "");
}
