/*
 * metrics.c - the figures of a model on labelled sessions, shared by
 * `opecom eval` and `opecom report` (definitions: eval.c and docs/cli.md;
 * they follow scikit-learn's).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static int by_p_desc(const void *a, const void *b) {
    float x = ((const cli_scored *)a)->p;
    float y = ((const cli_scored *)b)->p;
    return (x < y) - (x > y);
}

int cli_scores_add(cli_scores *s, float p, uint32_t y) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        cli_scored *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL) {
            cli_error("out of memory after %zu rows", s->n);
            return CLI_EXIT_DATA;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].p = p;
    s->v[s->n].y = y;
    s->n++;
    return CLI_EXIT_OK;
}

double cli_ratio(uint64_t a, uint64_t b) {
    return b ? (double)a / (double)b : 0.0;
}

/* The bin of calibration_curve(n_bins=10, strategy="uniform"): the number
 * of inner edges (np.linspace(0, 1, 11)[1:-1], i.e. i * 0.1) below p. */
int cli_calibration_bin(double p) {
    int b = 0;
    int i;
    for (i = 1; i < CLI_CAL_BINS; i++)
        b += (double)i * (1.0 / CLI_CAL_BINS) < p;
    return b;
}

void cli_metrics_compute(cli_scored *s, size_t n, double threshold, cli_metrics *m) {
    const double eps = DBL_EPSILON;
    uint64_t tp = 0;
    uint64_t fp = 0;
    uint64_t area2 = 0; /* twice the ROC area, in units of 1 / (P * N) */
    double ap = 0.0;
    double prev_recall = 0.0;
    double loss = 0.0;
    size_t i;

    memset(m, 0, sizeof(*m));
    m->n = n;
    m->threshold = threshold;
    for (i = 0; i < n; i++) {
        double p = s[i].p;
        double q = p < eps ? eps : p > 1.0 - eps ? 1.0 - eps : p;
        double sum = (1.0 - q) + q; /* sklearn renormalises the two columns */
        int yhat = p >= threshold;
        cli_bin *b = &m->bins[cli_calibration_bin(p)];
        m->positives += s[i].y;
        loss -= s[i].y ? log(q / sum) : log((1.0 - q) / sum);
        if (s[i].y) {
            m->tp += (uint64_t)yhat;
            m->fn += (uint64_t)!yhat;
        } else {
            m->fp += (uint64_t)yhat;
            m->tn += (uint64_t)!yhat;
        }
        b->count++;
        b->positives += s[i].y;
        b->sum_p += p;
    }
    m->log_loss = n ? loss / (double)n : (double)NAN;
    m->accuracy = cli_ratio(m->tp + m->tn, n);
    m->precision = cli_ratio(m->tp, m->tp + m->fp);
    m->recall = cli_ratio(m->tp, m->tp + m->fn);
    m->f1 = m->precision + m->recall > 0
                ? 2.0 * m->precision * m->recall / (m->precision + m->recall)
                : 0.0;

    qsort(s, n, sizeof(*s), by_p_desc);
    for (i = 0; i < n;) {
        uint64_t gtp = 0;
        uint64_t gfp = 0;
        size_t j;
        for (j = i; j < n && s[j].p == s[i].p; j++) {
            gtp += s[j].y;
            gfp += !s[j].y;
        }
        area2 += gfp * (2 * tp + gtp); /* trapezoid under this ROC step */
        tp += gtp;
        fp += gfp;
        if (m->positives > 0) {
            double recall = (double)tp / (double)m->positives;
            ap += (recall - prev_recall) * ((double)tp / (double)(tp + fp));
            prev_recall = recall;
        }
        i = j;
    }
    {
        uint64_t neg = n - m->positives;
        m->roc_auc = m->positives > 0 && neg > 0
                         ? (double)area2 / (2.0 * (double)m->positives * (double)neg)
                         : (double)NAN;
    }
    m->pr_auc = m->positives > 0 ? ap : (double)NAN;
}

int cli_parse_label(const char *s, uint32_t *y) {
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0)
        *y = 1;
    else if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0)
        *y = 0;
    else
        return -1;
    return 0;
}
