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
    /* options */
    int jsonl;
    int all;
    int global;
    uint32_t top;
    opecom_explain_options opts;
    /* model and input */
    const char *input_name;
    const opecom_model *model;
    opecom_workspace *ws;
    uint32_t n_features;
    cli_colmap map;
    cli_batch batch;
    int ready;
    FILE *out;
    cli_progress progress;
    double *phi;        /* [n_features] */
    uint32_t *order;    /* [n_features] */
    double *importance; /* [n_features] global: sum of batch means x rows */
    double *batch_imp;  /* [n_features] */
    uint64_t n_rows;
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

static void write_header(explain_ctx *c) {
    uint32_t i;
    if (c->jsonl || c->global)
        return;
    fputs("probability,baseline", c->out);
    if (c->all) {
        for (i = 0; i < c->n_features; i++) {
            putc(',', c->out);
            cli_put_csv_field(c->out, c->map.info[i].name, strlen(c->map.info[i].name));
        }
    } else {
        for (i = 1; i <= c->top; i++)
            fprintf(c->out, ",feature_%u,value_%u,contribution_%u,reason_%u", i, i, i, i);
    }
    putc('\n', c->out);
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
                cli_put_json_string(c->out, c->map.info[i].name, strlen(c->map.info[i].name));
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
        const char *name = c->map.info[f].name;
        if (opecom_reason(c->model, row, f, c->phi[f], reason, sizeof(reason), NULL) != OPECOM_OK)
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
    cli_error("%s:%llu: %s", c->input_name, (unsigned long long)c->batch.line[i],
              err->message[0] ? err->message : opecom_strerror((int)st));
    return CLI_EXIT_DATA;
}

/* Explains and writes (or accumulates) the pending rows. */
static int flush(explain_ctx *c) {
    size_t cells = c->batch.n * c->n_features;
    size_t i;
    uint32_t f;
    int rc = CLI_EXIT_OK;
    opecom_error err;
    for (i = 0; i < cells; i++)
        c->batch.values[i].str =
            c->batch.text[i] == SIZE_MAX ? NULL : c->batch.arena + c->batch.text[i];
    memset(&err, 0, sizeof(err));
    if (c->global && c->batch.n > 0) {
        opecom_status st = opecom_explain_importance(c->model, c->ws, c->batch.values,
                                                     c->batch.n, &c->opts, c->batch_imp, &err);
        if (st != OPECOM_OK)
            rc = err.row >= 0 ? row_error(c, (size_t)err.row, st, &err) : CLI_EXIT_DATA;
        for (f = 0; f < c->n_features && rc == CLI_EXIT_OK; f++)
            c->importance[f] += c->batch_imp[f] * (double)c->batch.n;
    }
    for (i = 0; i < c->batch.n && !c->global && rc == CLI_EXIT_OK; i++) {
        const opecom_value *row = c->batch.values + i * c->n_features;
        opecom_explanation e;
        opecom_status st = opecom_explain(c->model, c->ws, row, &c->opts, &e, c->phi, &err);
        if (st != OPECOM_OK)
            rc = row_error(c, i, st, &err);
        else
            write_row(c, row, &e);
    }
    if (rc == CLI_EXIT_OK)
        c->n_rows += c->batch.n;
    cli_batch_clear(&c->batch);
    cli_progress_update(&c->progress, c->n_rows);
    return rc;
}

static void write_global(explain_ctx *c) {
    uint32_t i;
    for (i = 0; i < c->n_features; i++)
        c->phi[i] = c->n_rows ? c->importance[i] / (double)c->n_rows : 0.0;
    sort_by_size(c);
    if (!c->jsonl)
        fputs("feature,importance\n", c->out);
    for (i = 0; i < c->n_features; i++) {
        uint32_t f = c->order[i];
        const char *name = c->map.info[f].name;
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
 * Reading
 * ===================================================================== */

static int on_header(void *ctx, const cli_csv_record *header) {
    explain_ctx *c = ctx;
    int rc = cli_colmap_init(&c->map, c->model, header, c->input_name);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_batch_init(&c->batch, c->n_features, BATCH_ROWS);
    if (rc != CLI_EXIT_OK) {
        cli_colmap_free(&c->map);
        return rc;
    }
    c->ready = 1;
    write_header(c);
    return CLI_EXIT_OK;
}

static int on_row(void *ctx, const cli_csv_record *rec) {
    explain_ctx *c = ctx;
    char msg[CLI_MSG_SIZE];
    int rc = cli_batch_add(&c->batch, &c->map, rec, c->input_name, msg, sizeof(msg));
    if (rc != CLI_EXIT_OK) {
        if (flush(c) != CLI_EXIT_OK)
            return CLI_EXIT_DATA;
        cli_error("%s", msg);
        return rc;
    }
    if (c->batch.n == c->batch.cap)
        return flush(c);
    return CLI_EXIT_OK;
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
    int n_inputs = 0;
    const char *top = NULL, *format = NULL, *estimator = NULL, *evals = NULL, *seed = NULL;
    uint64_t v;
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r;
        if (cli_args_flag(&a, "--help", "-h")) {
            fputs(explain_usage, stdout);
            return -1;
        }
        if (cli_args_flag(&a, "--all", "-a")) {
            c->all = 1;
            continue;
        }
        if (cli_args_flag(&a, "--global", "-g")) {
            c->global = 1;
            continue;
        }
        if ((r = cli_args_value(&a, "--model", "-m", model_path)) != 0 ||
            (r = cli_args_value(&a, "--output", "-o", output_path)) != 0 ||
            (r = cli_args_value(&a, "--top", "-n", &top)) != 0 ||
            (r = cli_args_value(&a, "--format", "-f", &format)) != 0 ||
            (r = cli_args_value(&a, "--estimator", NULL, &estimator)) != 0 ||
            (r = cli_args_value(&a, "--evals", NULL, &evals)) != 0 ||
            (r = cli_args_value(&a, "--seed", NULL, &seed)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (cli_args_positional(&a)) {
            *input_path = a.arg;
            n_inputs++;
            continue;
        }
        return cli_usage_error(argv[0], "unknown option '%s'", a.arg);
    }
    if (*model_path == NULL)
        return cli_usage_error(argv[0], "--model is required");
    if (n_inputs > 1)
        return cli_usage_error(argv[0], "one input file at most (got %d)", n_inputs);
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
    opecom_model *model = NULL;
    opecom_model_info mi;
    opecom_error err;
    explain_ctx c;
    cli_output out;
    FILE *in = NULL;
    int rc;

    memset(&c, 0, sizeof(c));
    c.top = DEFAULT_TOP;
    rc = parse_args(&c, argc, argv, &model_path, &input_path, &output_path);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;

    rc = cli_load_model(model_path, &model);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (opecom_model_describe(model, &mi) != OPECOM_OK || mi.n_baseline == 0) {
        cli_error("%s: %s: re-convert it from a spec with a \"baseline\" (tools/baseline.py "
                  "adds one)",
                  model_path, opecom_strerror(OPECOM_ENOBASELINE));
        opecom_model_free(model);
        return CLI_EXIT_MODEL;
    }
    c.model = model;
    c.n_features = mi.n_features;
    if (c.top > c.n_features)
        c.top = c.n_features;
    c.phi = calloc(c.n_features, sizeof(*c.phi));
    c.order = calloc(c.n_features, sizeof(*c.order));
    c.importance = calloc(c.n_features, sizeof(*c.importance));
    c.batch_imp = calloc(c.n_features, sizeof(*c.batch_imp));
    memset(&err, 0, sizeof(err));
    if (!c.phi || !c.order || !c.importance || !c.batch_imp) {
        cli_error("out of memory");
        rc = CLI_EXIT_DATA;
    } else if (opecom_workspace_create(model, 128, &c.ws, &err) != OPECOM_OK) {
        cli_error("%s: cannot make a workspace: %s", model_path, err.message);
        rc = CLI_EXIT_DATA;
    }
    if (rc == CLI_EXIT_OK) {
        rc = cli_open_input(input_path, &in, &c.input_name);
        if (rc == CLI_EXIT_OK) {
            rc = cli_output_open(&out, output_path);
            if (rc != CLI_EXIT_OK && in != stdin)
                fclose(in);
        }
    }
    if (rc == CLI_EXIT_OK) {
        c.out = out.fp;
        cli_progress_start(&c.progress, in);
        rc = cli_csv_read(in, c.input_name, on_header, on_row, &c);
        if (rc == CLI_EXIT_OK && c.ready)
            rc = flush(&c); /* the last, partial batch */
        cli_progress_end(&c.progress);
        if (in != stdin)
            fclose(in);
        if (rc == CLI_EXIT_OK && c.global && c.ready)
            write_global(&c);
        if (rc == CLI_EXIT_OK)
            rc = cli_output_commit(&out);
        else
            cli_output_abort(&out);
    }
    if (c.ready) {
        cli_batch_free(&c.batch);
        cli_colmap_free(&c.map);
    }
    free(c.phi);
    free(c.order);
    free(c.importance);
    free(c.batch_imp);
    opecom_workspace_free(c.ws);
    opecom_model_free(model);
    return rc;
}
