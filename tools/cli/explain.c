/*
 * explain.c - `opecom explain`: why each session got its probability.
 *
 * Rows stream from the CSV reader into batches as for `predict`; each row is
 * explained with opecom_explain (Shapley contributions per raw feature,
 * relative to the model's baseline) through one workspace, and written at
 * once, so memory stays flat. Three outputs:
 *
 *   default   per row: probability, baseline and the top N contributions by
 *             size, each with its feature, value, signed contribution and
 *             the library's reason text (opecom_reason);
 *   --all     per row: probability, baseline and every feature's
 *             contribution (JSONL: a map from every feature name);
 *   --global  no per-row output: the mean |contribution| of each feature
 *             over all rows (opecom_explain_importance per batch), largest
 *             first.
 *
 * A bad row (a field that is not a number, a value the library refuses)
 * ends the run with exit 1 after the rows before it were written; an output
 * file (-o) is only put in place when the run succeeds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BATCH_ROWS 64
#define DEFAULT_TOP 3

static const char explain_usage[] =
    "Usage: opecom explain --model MODEL.opm [OPTIONS] [INPUT.csv|-]\n"
    "\n"
    "Explains every row (one session) of a CSV file: how much each feature\n"
    "moved the purchase probability away from the model's baseline (Shapley\n"
    "values on the probability scale; they add up to probability - baseline).\n"
    "The baseline is a few weighted training sessions stored in the model.\n"
    "\n"
    "Input: as for 'opecom predict' (a header row; columns matched by name).\n"
    "\n"
    "Output, one record per input row (default): probability, baseline and the\n"
    "N largest contributions, each as feature, value, signed contribution and\n"
    "a short reason:\n"
    "  csv    probability,baseline,feature_1,value_1,contribution_1,reason_1,...\n"
    "  jsonl  {\"probability\":P,\"baseline\":B,\"top\":[{\"feature\":..,\"value\":..,\n"
    "         \"contribution\":..,\"reason\":..},...]}\n"
    "With --all, every feature instead:\n"
    "  csv    probability,baseline,<one column per feature>\n"
    "  jsonl  {\"probability\":P,\"baseline\":B,\"contributions\":{FEATURE:C,...}}\n"
    "With --global, one line per feature, largest first: the mean |contribution|\n"
    "over all rows (csv: feature,importance; jsonl: {\"feature\":..,\"importance\":..}).\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE      model file (.opm) with a baseline; required\n"
    "  -o, --output FILE     write to FILE instead of standard output\n"
    "  -n, --top N           contributions per row (default 3)\n"
    "  -a, --all             every feature's contribution per row\n"
    "  -g, --global          global importance over the input instead of rows\n"
    "  -f, --format FMT      'csv' (default) or 'jsonl'\n"
    "      --estimator E     'auto' (default: exact when it fits the budget),\n"
    "                        'exact' or 'permutation'\n"
    "      --evals N         network evaluations per explanation (default: the\n"
    "                        library's budget, about 1 ms of work)\n"
    "      --seed S          seed of permutation sampling (default 0)\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "Exit status: 0 success, 1 bad input data or I/O error, 2 usage error,\n"
    "3 the model could not be loaded or has no baseline.\n";

typedef struct explain_ctx {
    cli_stream s;
    int jsonl;
    int all;
    int global;
    uint32_t top;
    opecom_explain_options opts;
    FILE *out;            /* s.out.fp */
    uint32_t n_features;  /* s.mi.n_features */
    double *phi;        /* [n_features] */
    uint32_t *order;    /* [n_features] */
    double *importance; /* [n_features] global: sum of batch means x rows */
    double *batch_imp;  /* [n_features] */
} explain_ctx;

/* ===================================================================== *
 * Output
 * ===================================================================== */

/* A number as its shortest text that reads back exactly (0.2, not
 * 0.20000000000000001). */
static void put_number(FILE *fp, double v) {
    char buf[40];
    snprintf(buf, sizeof(buf), "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof(buf), "%.17g", v);
    fputs(buf, fp);
}

static void put_value_csv(explain_ctx *c, const opecom_value *v) {
    if (v->str != NULL)
        cli_put_csv_field(c->out, v->str, strlen(v->str));
    else
        put_number(c->out, v->num);
}

static void put_value_json(explain_ctx *c, const opecom_value *v) {
    if (v->str != NULL)
        cli_put_json_string(c->out, v->str, strlen(v->str));
    else
        put_number(c->out, v->num);
}

static int write_header(void *ctx, const cli_csv_record *header) {
    explain_ctx *c = ctx;
    uint32_t i;
    (void)header;
    if (c->jsonl || c->global)
        return CLI_EXIT_OK;
    fputs("probability,baseline", c->out);
    if (c->all) {
        for (i = 0; i < c->n_features; i++) {
            putc(',', c->out);
            cli_put_csv_field(c->out, c->s.map.info[i].name, strlen(c->s.map.info[i].name));
        }
    } else {
        for (i = 1; i <= c->top; i++)
            fprintf(c->out, ",feature_%u,value_%u,contribution_%u,reason_%u", i, i, i, i);
    }
    putc('\n', c->out);
    return CLI_EXIT_OK;
}

/* Feature indices by |contribution|, largest first (ties: model order). */
static void sort_by_size(explain_ctx *c) {
    uint32_t i, j;
    for (i = 0; i < c->n_features; i++) {
        uint32_t f = c->order[i] = i;
        double a = c->phi[f] < 0 ? -c->phi[f] : c->phi[f];
        for (j = i; j > 0; j--) {
            uint32_t g = c->order[j - 1];
            double b = c->phi[g] < 0 ? -c->phi[g] : c->phi[g];
            if (b >= a)
                break;
            c->order[j] = g;
        }
        c->order[j] = f;
    }
}

static void write_row(explain_ctx *c, const opecom_value *row, const opecom_explanation *e) {
    char reason[OPECOM_REASON_MAX];
    uint32_t i;
    if (c->jsonl) {
        fprintf(c->out, "{\"probability\":%.9g,\"baseline\":%.9g", e->probability, e->baseline);
    } else {
        fprintf(c->out, "%.9g,%.9g", e->probability, e->baseline);
    }
    if (c->all) {
        if (c->jsonl)
            fputs(",\"contributions\":{", c->out);
        for (i = 0; i < c->n_features; i++) {
            if (c->jsonl) {
                if (i > 0)
                    putc(',', c->out);
                cli_put_json_string(c->out, c->s.map.info[i].name, strlen(c->s.map.info[i].name));
                fprintf(c->out, ":%.9g", c->phi[i]);
            } else {
                fprintf(c->out, ",%+.9g", c->phi[i]);
            }
        }
        fputs(c->jsonl ? "}}\n" : "\n", c->out);
        return;
    }
    sort_by_size(c);
    if (c->jsonl)
        fputs(",\"top\":[", c->out);
    for (i = 0; i < c->top; i++) {
        uint32_t f = c->order[i];
        const char *name = c->s.map.info[f].name;
        if (opecom_reason(c->s.model, row, f, c->phi[f], reason, sizeof(reason), NULL) != OPECOM_OK)
            reason[0] = '\0';
        if (c->jsonl) {
            fputs(i ? ",{\"feature\":" : "{\"feature\":", c->out);
            cli_put_json_string(c->out, name, strlen(name));
            fputs(",\"value\":", c->out);
            put_value_json(c, &row[f]);
            fprintf(c->out, ",\"contribution\":%.9g,\"reason\":", c->phi[f]);
            cli_put_json_string(c->out, reason, strlen(reason));
            putc('}', c->out);
        } else {
            putc(',', c->out);
            cli_put_csv_field(c->out, name, strlen(name));
            putc(',', c->out);
            put_value_csv(c, &row[f]);
            fprintf(c->out, ",%+.9g,", c->phi[f]);
            cli_put_csv_field(c->out, reason, strlen(reason));
        }
    }
    fputs(c->jsonl ? "]}\n" : "\n", c->out);
}

/* Reports a failing row with its input line. */
static int row_error(explain_ctx *c, size_t i, opecom_status st, const opecom_error *err) {
    cli_error("%s:%llu: %s", c->s.input_name, (unsigned long long)c->s.batch.line[i],
              err->message[0] ? err->message : opecom_strerror((int)st));
    return CLI_EXIT_DATA;
}

/* Explains and writes (or accumulates) the pending rows. */
static int flush(void *ctx) {
    explain_ctx *c = ctx;
    const cli_batch *b = &c->s.batch;
    size_t i;
    uint32_t f;
    int rc = CLI_EXIT_OK;
    opecom_error err;
    cli_batch_bind(&c->s.batch);
    memset(&err, 0, sizeof(err));
    if (c->global && b->n > 0) {
        opecom_status st = opecom_explain_importance(c->s.model, c->s.ws, b->values, b->n,
                                                     &c->opts, c->batch_imp, &err);
        if (st != OPECOM_OK)
            rc = err.row >= 0 ? row_error(c, (size_t)err.row, st, &err) : CLI_EXIT_DATA;
        for (f = 0; f < c->n_features && rc == CLI_EXIT_OK; f++)
            c->importance[f] += c->batch_imp[f] * (double)b->n;
    }
    for (i = 0; i < b->n && !c->global && rc == CLI_EXIT_OK; i++) {
        const opecom_value *row = b->values + i * c->n_features;
        opecom_explanation e;
        opecom_status st = opecom_explain(c->s.model, c->s.ws, row, &c->opts, &e, c->phi, &err);
        if (st != OPECOM_OK)
            rc = row_error(c, i, st, &err);
        else
            write_row(c, row, &e);
    }
    return rc;
}

static void write_global(explain_ctx *c) {
    uint32_t i;
    for (i = 0; i < c->n_features; i++)
        c->phi[i] = c->s.n_rows ? c->importance[i] / (double)c->s.n_rows : 0.0;
    sort_by_size(c);
    if (!c->jsonl)
        fputs("feature,importance\n", c->out);
    for (i = 0; i < c->n_features; i++) {
        uint32_t f = c->order[i];
        const char *name = c->s.map.info[f].name;
        if (c->jsonl) {
            fputs("{\"feature\":", c->out);
            cli_put_json_string(c->out, name, strlen(name));
            fprintf(c->out, ",\"importance\":%.9g}\n", c->phi[f]);
        } else {
            cli_put_csv_field(c->out, name, strlen(name));
            fprintf(c->out, ",%.9g\n", c->phi[f]);
        }
    }
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

static int parse_count(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    unsigned long long v;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* @return 0, -1 after --help, or an exit code after a usage error. */
static int parse_args(explain_ctx *c, int argc, char **argv, const char **model_path,
                      const char **input_path, const char **output_path) {
    const char *top = NULL, *format = NULL, *estimator = NULL, *evals = NULL, *seed = NULL;
    const cli_option opts[] = {{"--model", "-m", model_path, NULL, 1},
                               {"--output", "-o", output_path, NULL, 0},
                               {"--top", "-n", &top, NULL, 0},
                               {"--format", "-f", &format, NULL, 0},
                               {"--estimator", NULL, &estimator, NULL, 0},
                               {"--evals", NULL, &evals, NULL, 0},
                               {"--seed", NULL, &seed, NULL, 0},
                               {"--all", "-a", NULL, &c->all, 0},
                               {"--global", "-g", NULL, &c->global, 0},
                               {NULL, NULL, NULL, NULL, 0}};
    uint64_t v;
    int rc = cli_args_parse(argc, argv, explain_usage, opts, input_path, "input file");
    if (rc != 0)
        return rc;
    if (c->all + c->global + (top != NULL) > 1)
        return cli_usage_error(argv[0], "--top, --all and --global exclude each other");
    if (top != NULL) {
        if (parse_count(top, 1, 1u << 20, &v) != 0)
            return cli_usage_error(argv[0], "--top '%s': expected a whole number >= 1", top);
        c->top = (uint32_t)v;
    }
    if (format != NULL) {
        if (strcmp(format, "jsonl") == 0)
            c->jsonl = 1;
        else if (strcmp(format, "csv") != 0)
            return cli_usage_error(argv[0], "--format '%s': expected 'csv' or 'jsonl'", format);
    }
    if (estimator != NULL) {
        if (strcmp(estimator, "auto") == 0)
            c->opts.estimator = OPECOM_ESTIMATOR_AUTO;
        else if (strcmp(estimator, "exact") == 0)
            c->opts.estimator = OPECOM_ESTIMATOR_EXACT;
        else if (strcmp(estimator, "permutation") == 0)
            c->opts.estimator = OPECOM_ESTIMATOR_PERMUTATION;
        else
            return cli_usage_error(argv[0],
                                   "--estimator '%s': expected 'auto', 'exact' or 'permutation'",
                                   estimator);
    }
    if (evals != NULL) {
        if (parse_count(evals, 1, UINT64_MAX, &v) != 0)
            return cli_usage_error(argv[0], "--evals '%s': expected a whole number >= 1", evals);
        c->opts.max_evals = v;
    }
    if (seed != NULL) {
        if (parse_count(seed, 0, UINT64_MAX, &v) != 0)
            return cli_usage_error(argv[0], "--seed '%s': expected a whole number", seed);
        c->opts.seed = v;
    }
    return 0;
}

int cli_explain(int argc, char **argv) {
    const char *model_path = NULL;
    const char *input_path = NULL;
    const char *output_path = NULL;
    explain_ctx c = {.s = {.ctx = &c, .header_fn = write_header, .flush_fn = flush,
                           .batch_rows = BATCH_ROWS},
                     .top = DEFAULT_TOP};
    int rc = parse_args(&c, argc, argv, &model_path, &input_path, &output_path);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;

    rc = cli_stream_load(&c.s, model_path);
    if (rc == CLI_EXIT_OK && c.s.mi.n_baseline == 0) {
        cli_error("%s: %s: re-convert it from a spec with a \"baseline\" (tools/baseline.py "
                  "adds one)",
                  model_path, opecom_strerror(OPECOM_ENOBASELINE));
        rc = CLI_EXIT_MODEL;
    }
    if (rc == CLI_EXIT_OK) {
        c.n_features = c.s.mi.n_features;
        if (c.top > c.n_features)
            c.top = c.n_features;
        c.phi = calloc(c.n_features, sizeof(*c.phi));
        c.order = calloc(c.n_features, sizeof(*c.order));
        c.importance = calloc(c.n_features, sizeof(*c.importance));
        c.batch_imp = calloc(c.n_features, sizeof(*c.batch_imp));
        if (!c.phi || !c.order || !c.importance || !c.batch_imp) {
            cli_error("out of memory");
            rc = CLI_EXIT_DATA;
        }
    }
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_open(&c.s, input_path, output_path, 128);
    if (rc == CLI_EXIT_OK) {
        c.out = c.s.out.fp;
        rc = cli_stream_run(&c.s);
        if (rc == CLI_EXIT_OK && c.global && c.s.ready)
            write_global(&c);
        if (rc == CLI_EXIT_OK)
            rc = cli_output_commit(&c.s.out);
    }
    cli_stream_free(&c.s);
    free(c.phi);
    free(c.order);
    free(c.importance);
    free(c.batch_imp);
    return rc;
}
