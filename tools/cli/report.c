/*
 * report.c - `opecom report`: one self-contained HTML page about a model on
 * a CSV file: metrics, ROC and precision-recall curves, calibration, score
 * distribution and global feature importance, drawn as inline SVG (svg.c).
 * No script, no network: the page reads the same in any browser or mail.
 *
 * Rows stream through the CSV reader and batches as in `eval`; of each row
 * only (probability, label) is kept (8 bytes), plus the explain sample. The
 * importance is the mean |contribution| (opecom_explain_importance) over a
 * systematic sample: every k-th row (rows 0, k, 2k, ...), k the smallest
 * power of two that leaves at most N rows (--explain-rows, default 2000;
 * 0 = every row). It is drawn while streaming: rows whose index is a
 * multiple of k are copied; when the sample would pass N, every other one
 * is dropped and k doubles. So the sample spans the whole file (exports
 * are often sorted by date) and is the same on every run. The figures come
 * from metrics.c, so they are `opecom eval`'s.
 *
 * Without the label column the page holds only the score distribution and
 * the importance, and says why.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define BATCH_ROWS 256
#define DEFAULT_EXPLAIN_ROWS 2000

static const char report_usage[] =
    "Usage: opecom report --model MODEL.opm [OPTIONS] [INPUT.csv|-] [-o REPORT.html]\n"
    "\n"
    "Scores every row of a CSV file and writes one self-contained HTML page\n"
    "(inline CSS and SVG, no script, no network): the metrics table, ROC and\n"
    "precision-recall curves, the calibration plot (when the label column is\n"
    "present), the distribution of the scores and the global feature\n"
    "importance (mean |contribution| over a sample of rows).\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE      model file (.opm); required\n"
    "  -o, --output FILE     write the page to FILE (default: standard output)\n"
    "  -l, --label COL       label column (default: Revenue); TRUE/FALSE or 1/0.\n"
    "                        Without it the page has no metrics or curves\n"
    "  -n, --explain-rows N  importance over a sample of at most N rows: every\n"
    "                        k-th row, k the smallest power of two that fits\n"
    "                        (default 2000; 0: every row)\n"
    "      --no-explain      leave the importance out (faster)\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "A bad row ends the run (exit 1), as in 'opecom eval'. A model without an\n"
    "explanation baseline gives a page without importance.\n"
    "\n"
    "Exit status: 0 success, 1 bad input data (also: no rows) or I/O error,\n"
    "2 usage error, 3 the model could not be loaded.\n";

typedef struct report_ctx {
    cli_stream s;
    uint32_t n_features;
    /* importance */
    int explain;
    uint64_t explain_rows; /* N; 0: all */
    uint64_t step;         /* k: rows whose index is a multiple are sampled */
    opecom_value **sample; /* [explain_rows] rows, each one block with its text */
    uint64_t *sample_idx;  /* [explain_rows] their row indices */
    size_t n_sample, cap_sample;
    uint64_t n_explained;
    double *importance;    /* [n_features] mean |contribution| */
    double *batch_imp;     /* [n_features] */
    cli_scores pairs;
} report_ctx;

/* ===================================================================== *
 * Reading
 * ===================================================================== */

/* One block holding a copy of the row's values and their text. */
static opecom_value *copy_row(const opecom_value *v, uint32_t n) {
    size_t bytes = n * sizeof(*v);
    opecom_value *r;
    char *text;
    uint32_t f;
    for (f = 0; f < n; f++)
        bytes += v[f].str ? strlen(v[f].str) + 1 : 0;
    r = malloc(bytes);
    if (r == NULL)
        return NULL;
    memcpy(r, v, n * sizeof(*v));
    text = (char *)(r + n);
    for (f = 0; f < n; f++) {
        if (v[f].str) {
            size_t len = strlen(v[f].str) + 1;
            memcpy(text, v[f].str, len);
            r[f].str = text;
            text += len;
        }
    }
    return r;
}

/* Offers row `idx` (0-based among the scored rows) to the sample. */
static int sample_row(report_ctx *c, uint64_t idx, const opecom_value *v) {
    if (idx % c->step != 0)
        return 0;
    if (c->explain_rows && c->n_sample == c->explain_rows) {
        /* Full: keep the multiples of 2k, then this row only if it is one. */
        size_t i;
        size_t kept = 0;
        for (i = 0; i < c->n_sample; i++) {
            if (c->sample_idx[i] % (2 * c->step) == 0) {
                c->sample[kept] = c->sample[i];
                c->sample_idx[kept++] = c->sample_idx[i];
            } else {
                free(c->sample[i]);
            }
        }
        c->n_sample = kept;
        c->step *= 2;
        if (idx % c->step != 0)
            return 0;
    }
    if (c->n_sample == c->cap_sample) {
        size_t cap = c->cap_sample ? c->cap_sample * 2 : 256;
        opecom_value **s;
        uint64_t *x;
        if (c->explain_rows && cap > c->explain_rows)
            cap = (size_t)c->explain_rows;
        s = realloc(c->sample, cap * sizeof(*s));
        if (s)
            c->sample = s;
        x = s ? realloc(c->sample_idx, cap * sizeof(*x)) : NULL;
        if (x == NULL) {
            cli_error("out of memory for the explain sample");
            return -1;
        }
        c->sample_idx = x;
        c->cap_sample = cap;
    }
    c->sample[c->n_sample] = copy_row(v, c->n_features);
    if (c->sample[c->n_sample] == NULL) {
        cli_error("out of memory for the explain sample");
        return -1;
    }
    c->sample_idx[c->n_sample++] = idx;
    return 0;
}

/* The importance over the sample, BATCH_ROWS rows per call. */
static int explain_sample(report_ctx *c) {
    opecom_value *rows = malloc((size_t)BATCH_ROWS * c->n_features * sizeof(*rows));
    size_t i = 0;
    uint32_t f;
    if (rows == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_DATA;
    }
    while (i < c->n_sample) {
        size_t n = c->n_sample - i < BATCH_ROWS ? c->n_sample - i : BATCH_ROWS;
        opecom_error err;
        size_t r;
        for (r = 0; r < n; r++)
            memcpy(&rows[r * c->n_features], c->sample[i + r],
                   c->n_features * sizeof(*rows));
        memset(&err, 0, sizeof(err));
        if (opecom_explain_importance(c->s.model, c->s.ws, rows, n, NULL, c->batch_imp, &err) !=
            OPECOM_OK) {
            size_t at = i + (err.row >= 0 ? (size_t)err.row : 0);
            cli_error("%s: cannot explain data row %llu: %s", c->s.input_name,
                      (unsigned long long)c->sample_idx[at] + 1, err.message);
            free(rows);
            return CLI_EXIT_DATA;
        }
        for (f = 0; f < c->n_features; f++)
            c->importance[f] += c->batch_imp[f] * (double)n;
        i += n;
    }
    for (f = 0; f < c->n_features; f++)
        c->importance[f] /= c->n_sample ? (double)c->n_sample : 1.0;
    c->n_explained = c->n_sample;
    free(rows);
    return CLI_EXIT_OK;
}

/* Keeps a scored row's pair, and offers the row to the sample. */
static int take_row(void *ctx, size_t i) {
    report_ctx *c = ctx;
    if (cli_scores_add(&c->pairs, c->s.batch.result[i].probability, c->s.batch.label[i]) !=
        CLI_EXIT_OK)
        return CLI_EXIT_DATA;
    if (c->explain && sample_row(c, c->pairs.n - 1, &c->s.batch.values[i * c->n_features]) != 0)
        return CLI_EXIT_DATA;
    return CLI_EXIT_OK;
}

/* ===================================================================== *
 * The page
 * ===================================================================== */

static const char css[] =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;"
    "margin:24px auto;max-width:1120px;padding:0 16px;line-height:1.4}\n"
    "h1{font-size:26px;margin:0 0 8px}h2{font-size:20px;border-bottom:1px solid #ccc;"
    "padding-bottom:4px;margin-top:32px}\n"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;"
    "padding:4px 10px;text-align:left}td.num{text-align:right;font-variant-numeric:"
    "tabular-nums}th{background:#f3f3f3}\n"
    ".row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}\n"
    ".note{color:#555;font-size:14px}\n"
    "code{white-space:nowrap}\n"
    "svg.plot{background:#fff;border:1px solid #ddd;font-size:12px}\n"
    "svg .title{font-size:15px;font-weight:bold;fill:#222}svg .tick{fill:#444}\n"
    "svg .label{font-size:13px;fill:#222}svg .frame{fill:none;stroke:#444}\n"
    "svg .axis{stroke:#444}svg .grid{stroke:#eee}\n"
    "svg .ref{stroke:#999;stroke-dasharray:5 4;fill:none}\n"
    "svg .curve{fill:none;stroke:#1f77b4;stroke-width:2}\n"
    "svg .dot{fill:#1f77b4}svg .count{fill:#555;font-size:11px}\n"
    "svg .bar{fill:#1f77b4}svg .neg{fill:#1f77b4}"
    "svg .pos{fill:#d62728}svg .name{fill:#222;font-size:13px}\n";

static void put_row(FILE *fp, const char *id, const char *name, double v, const char *note) {
    fprintf(fp, "<tr><th>%s</th><td class=\"num\" id=\"m-%s\">", name, id);
    if (isnan(v))
        fputs("undefined", fp);
    else
        fprintf(fp, "%.6f", v);
    fprintf(fp, "</td><td class=\"note\">%s</td></tr>\n", note);
}

static void metrics_section(FILE *fp, const cli_metrics *m) {
    fputs("<h2 id=\"metrics\">Metrics</h2>\n<div class=\"row\"><table class=\"metrics\">\n", fp);
    put_row(fp, "roc_auc", "ROC-AUC", m->roc_auc, "area under the ROC curve");
    put_row(fp, "pr_auc", "PR-AUC", m->pr_auc, "average precision");
    put_row(fp, "log_loss", "log loss", m->log_loss, "lower is better");
    put_row(fp, "accuracy", "accuracy", m->accuracy, "at the threshold");
    put_row(fp, "precision", "precision", m->precision, "at the threshold");
    put_row(fp, "recall", "recall", m->recall, "at the threshold");
    put_row(fp, "f1", "F1", m->f1, "at the threshold");
    fprintf(fp,
            "</table>\n<table class=\"confusion\"><tr><th>confusion matrix</th>"
            "<th>predicted 0</th><th>predicted 1</th></tr>\n"
            "<tr><th>actual 0</th><td class=\"num\" id=\"m-tn\">%llu</td>"
            "<td class=\"num\" id=\"m-fp\">%llu</td></tr>\n"
            "<tr><th>actual 1</th><td class=\"num\" id=\"m-fn\">%llu</td>"
            "<td class=\"num\" id=\"m-tp\">%llu</td></tr></table></div>\n",
            (unsigned long long)m->tn, (unsigned long long)m->fp, (unsigned long long)m->fn,
            (unsigned long long)m->tp);
    if (m->positives == 0 || m->positives == m->n)
        fputs("<p class=\"note\">Every label is the same: ROC-AUC is undefined.</p>\n", fp);
}

static const double *sort_key; /* qsort has no context argument in C11 */

static int by_key_desc(const void *a, const void *b) {
    double x = sort_key[*(const uint32_t *)a];
    double y = sort_key[*(const uint32_t *)b];
    return (x < y) - (x > y);
}

static void importance(FILE *fp, const report_ctx *c, const char *why_not) {
    uint32_t n = c->n_features;
    uint32_t *order = NULL;
    double *imp = NULL;
    double top = 0.0;
    cli_svg g;
    uint32_t i;
    fputs("<h2 id=\"feature-importance\">Global feature importance</h2>\n", fp);
    if (why_not || c->n_explained == 0 || (order = malloc(n * sizeof(*order))) == NULL ||
        (imp = malloc(n * sizeof(*imp))) == NULL) {
        fprintf(fp, "<p class=\"note\">Left out: %s.</p>\n",
                why_not ? why_not : c->n_explained ? "out of memory" : "no rows");
        free(order);
        return;
    }
    for (i = 0; i < n; i++) {
        order[i] = i;
        imp[i] = c->importance[i];
        top = imp[i] > top ? imp[i] : top;
    }
    sort_key = imp;
    qsort(order, n, sizeof(*order), by_key_desc);
    cli_svg_begin(&g, fp, "importance", 1000, (int)(90 + 26 * n),
                  &(cli_svg_margins){220, 34, 90, 52},
                  "Mean |contribution| to the probability, per feature");
    {
        double step = cli_nice_step(top, 6);
        cli_svg_range(&g, 0, top > 0 ? ceil(top / step) * step : 1, 0, n);
    }
    cli_svg_axes(&g, "mean |contribution| (probability points)", NULL, 6, 0);
    for (i = 0; i < n; i++) {
        opecom_feature_info info;
        double y = g.top + 26.0 * i + 5;
        double w = cli_svg_x(&g, imp[order[i]]) - g.left;
        opecom_model_feature(c->s.model, order[i], &info);
        fprintf(fp, "<text class=\"name\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                g.left - 8, y + 13);
        cli_html_text(fp, info.name);
        fprintf(fp,
                "</text><rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                "height=\"18\"/><text class=\"count\" x=\"%.1f\" y=\"%.1f\">%.4f</text>\n",
                g.left, y, w, g.left + w + 4, y + 13, imp[order[i]]);
    }
    cli_svg_end(&g);
    if (c->step > 1)
        fprintf(fp,
                "<p class=\"note\">Shapley contributions against the model's baseline, "
                "averaged in absolute value over a sample of %llu of the %zu rows: one row in "
                "%llu (rows 1, %llu, %llu, ...; at most %llu rows: "
                "<code>--explain-rows</code>).</p>\n",
                (unsigned long long)c->n_explained, c->pairs.n, (unsigned long long)c->step,
                (unsigned long long)c->step + 1, 2 * (unsigned long long)c->step + 1,
                (unsigned long long)c->explain_rows);
    else
        fprintf(fp,
                "<p class=\"note\">Shapley contributions against the model's baseline, "
                "averaged in absolute value over all %llu rows.</p>\n",
                (unsigned long long)c->n_explained);
    free(order);
    free(imp);
}

static void write_page(FILE *fp, report_ctx *c, const char *why_no_importance) {
    const opecom_model_info *mi = &c->s.mi;
    int has_label = c->s.map.label != SIZE_MAX;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    cli_metrics m;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
    cli_metrics_compute(c->pairs.v, c->pairs.n, (double)mi->threshold, &m);

    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<title>opecom report: ",
          fp);
    cli_html_text(fp, c->s.input_name);
    fprintf(fp, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", css);
    fputs("<h1>Model report</h1>\n<table class=\"header\">\n<tr><th>model</th><td>", fp);
    cli_html_text(fp, c->s.model_path);
    fprintf(fp, " (TabM, k = %u, %u features, threshold %.4f)</td></tr>\n<tr><th>data</th><td>",
            mi->k, mi->n_features, (double)mi->threshold);
    cli_html_text(fp, c->s.input_name);
    fprintf(fp, "</td></tr>\n<tr><th>rows</th><td id=\"rows\">%zu", c->pairs.n);
    if (has_label)
        fprintf(fp, " (%llu with label 1, %.2f%%)", (unsigned long long)m.positives,
                100.0 * cli_ratio(m.positives, m.n));
    fprintf(fp, "</td></tr>\n<tr><th>date</th><td>%s</td></tr>\n"
                "<tr><th>made by</th><td>opecom %s</td></tr>\n</table>\n",
            date, opecom_version_string());
    if (has_label) {
        metrics_section(fp, &m);
        cli_plot_curves(fp, c->pairs.v, &m);
        cli_plot_calibration(fp, &m);
    } else {
        fputs("<p class=\"note\" id=\"no-labels\">The input has no label column '", fp);
        cli_html_text(fp, c->s.label_name);
        fputs("': no metrics, curves or calibration, only the distribution of the scores "
              "and the feature importance (name the label column with --label).</p>\n",
              fp);
    }
    cli_plot_scores(fp, c->pairs.v, c->pairs.n, has_label, (double)mi->threshold);
    importance(fp, c, why_no_importance);
    fputs("</body>\n</html>\n", fp);
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

int cli_report(int argc, char **argv) {
    const char *model_path = NULL;
    const char *input_path = NULL;
    const char *output_path = NULL;
    const char *rows_arg = NULL;
    const char *why_not = NULL;
    int no_explain = 0;
    report_ctx c = {.s = {.ctx = &c, .take_fn = take_row, .label_name = "Revenue",
                          .batch_rows = BATCH_ROWS},
                    .explain_rows = DEFAULT_EXPLAIN_ROWS,
                    .step = 1};
    const cli_option opts[] = {{"--model", "-m", &model_path, NULL, 1},
                               {"--output", "-o", &output_path, NULL, 0},
                               {"--label", "-l", &c.s.label_name, NULL, 0},
                               {"--explain-rows", "-n", &rows_arg, NULL, 0},
                               {"--no-explain", NULL, NULL, &no_explain, 0},
                               {NULL, NULL, NULL, NULL, 0}};
    int rc = cli_args_parse(argc, argv, report_usage, opts, &input_path, "input file");

    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (c.s.label_name[0] == '\0')
        return cli_usage_error(argv[0], "--label needs a column name");
    if (rows_arg != NULL) {
        char *end;
        unsigned long long v = strtoull(rows_arg, &end, 10);
        if (rows_arg[0] < '0' || rows_arg[0] > '9' || *end != '\0')
            return cli_usage_error(argv[0], "--explain-rows '%s': expected a count (0: all)",
                                   rows_arg);
        c.explain_rows = v;
    }

    rc = cli_stream_load(&c.s, model_path);
    if (rc == CLI_EXIT_OK) {
        c.explain = !no_explain && c.s.mi.n_baseline > 0;
        why_not = no_explain                ? "--no-explain"
                  : c.s.mi.n_baseline == 0 ? "the model has no explanation baseline"
                                           : NULL;
        c.n_features = c.s.mi.n_features;
        c.importance = calloc(c.n_features, sizeof(double));
        c.batch_imp = calloc(c.n_features, sizeof(double));
        if (!c.importance || !c.batch_imp) {
            cli_error("%s: cannot make a workspace: out of memory", model_path);
            rc = CLI_EXIT_DATA;
        }
    }
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_open(&c.s, input_path, output_path, BATCH_ROWS);
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_run(&c.s);
    if (rc == CLI_EXIT_OK && c.pairs.n == 0) {
        cli_error("%s: no rows to report on", c.s.input_name);
        rc = CLI_EXIT_DATA;
    }
    if (rc == CLI_EXIT_OK && c.explain)
        rc = explain_sample(&c);
    if (rc == CLI_EXIT_OK) {
        write_page(c.s.out.fp, &c, why_not);
        rc = cli_output_commit(&c.s.out);
    }
    cli_stream_free(&c.s);
    free(c.pairs.v);
    while (c.n_sample > 0)
        free(c.sample[--c.n_sample]);
    free(c.sample);
    free(c.sample_idx);
    free(c.importance);
    free(c.batch_imp);
    return rc;
}
