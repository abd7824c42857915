/*
 * predict.c - `opecom predict`: score the sessions of a CSV file.
 *
 * Records stream from the CSV reader into a batch of BATCH_ROWS rows; each
 * full batch is scored with one opecom_predict_batch call through a single
 * workspace and written out at once, so memory stays flat however long the
 * input is. On the first bad row the rows before it are still scored and
 * written, then the error (with its input line) ends the run with exit 1;
 * an output file (-o) is only put in place when the whole input succeeded.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BATCH_ROWS 256
#define MAX_UNKNOWN_WARNINGS 3

static const char predict_usage[] =
    "Usage: opecom predict --model MODEL.opm [INPUT.csv|-] [-o OUTPUT.csv]\n"
    "\n"
    "Scores every row (one session) of a CSV file with a libopecom model and\n"
    "writes one CSV row of predictions per input row, in input order.\n"
    "\n"
    "Input: CSV with a header row (LF or CRLF, quoted fields allowed), read\n"
    "from INPUT.csv, or from standard input when INPUT is '-' or absent.\n"
    "Columns are matched to the model's features by header name, in any\n"
    "order; other columns are ignored. Numeric features must be plain finite\n"
    "numbers; categorical features are text (Month 'Nov', VisitorType\n"
    "'Returning_Visitor', OperatingSystems '2').\n"
    "\n"
    "Output columns: probability,p_member_0,...,p_member_{k-1},spread\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE    model file (.opm); required\n"
    "  -o, --output FILE   write to FILE instead of standard output\n"
    "  -h, --help          show this help and exit\n"
    "\n"
    "Exit status: 0 success, 1 bad input data or I/O error, 2 usage error,\n"
    "3 the model could not be loaded.\n";

typedef struct predict_ctx {
    const char *input_name;
    const opecom_model *model;
    opecom_workspace *ws;
    uint32_t n_features;
    uint32_t k;
    cli_colmap map;
    cli_batch batch;
    int ready;              /* header seen, map and batch made */
    FILE *out;
    uint64_t unknown_rows;  /* rows with at least one unknown category */
} predict_ctx;

/* Warns (on stderr, a few times) about categories the model never saw: they
 * are scored, encoded as all zeros, but usually mean a typo or a new code. */
static void warn_unknown(predict_ctx *c, size_t i) {
    const opecom_result *r = &c->batch.result[i];
    uint32_t f;
    if (r->n_unknown == 0)
        return;
    if (c->unknown_rows++ >= MAX_UNKNOWN_WARNINGS)
        return;
    for (f = 0; f < c->n_features && f < 64; f++) {
        if (r->unknown_mask & ((uint64_t)1 << f)) {
            cli_error("warning: %s:%llu: column '%s': unknown category '%s' (scored as none)",
                      c->input_name, (unsigned long long)c->batch.line[i], c->map.info[f].name,
                      c->batch.values[i * c->n_features + f].str);
        }
    }
}

static void write_header(predict_ctx *c) {
    uint32_t j;
    fputs("probability", c->out);
    for (j = 0; j < c->k; j++)
        fprintf(c->out, ",p_member_%u", j);
    fputs(",spread\n", c->out);
}

static void write_row(predict_ctx *c, const opecom_result *r) {
    uint32_t j;
    fprintf(c->out, "%.9g", (double)r->probability);
    for (j = 0; j < c->k; j++)
        fprintf(c->out, ",%.9g", (double)(j < r->k ? r->member[j] : 0.0f));
    fprintf(c->out, ",%.9g\n", (double)r->spread);
}

/* Scores and writes the pending rows; on a failing row writes the rows
 * before it and reports it. */
static int flush(predict_ctx *c) {
    size_t n_ok;
    size_t i;
    int rc = cli_batch_predict(&c->batch, c->model, c->ws, c->input_name, &n_ok);
    for (i = 0; i < n_ok; i++) {
        warn_unknown(c, i);
        write_row(c, &c->batch.result[i]);
    }
    cli_batch_clear(&c->batch);
    return rc;
}

static int on_header(void *ctx, const cli_csv_record *header) {
    predict_ctx *c = ctx;
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
    predict_ctx *c = ctx;
    char msg[CLI_MSG_SIZE];
    int rc = cli_batch_add(&c->batch, &c->map, rec, c->input_name, msg, sizeof(msg));
    if (rc != CLI_EXIT_OK) {
        /* The rows before a bad one still get their predictions, and the
         * first error in input order is the one reported. */
        if (flush(c) != CLI_EXIT_OK)
            return CLI_EXIT_DATA;
        cli_error("%s", msg);
        return rc;
    }
    if (c->batch.n == c->batch.cap)
        return flush(c);
    return CLI_EXIT_OK;
}

int cli_predict(int argc, char **argv) {
    const char *model_path = NULL;
    const char *input_path = NULL;
    const char *output_path = NULL;
    int n_inputs = 0;
    opecom_model *model = NULL;
    opecom_model_info mi;
    opecom_error err;
    predict_ctx c;
    cli_output out;
    FILE *in = NULL;
    cli_args a;
    int rc;

    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r;
        if (cli_args_flag(&a, "--help", "-h")) {
            fputs(predict_usage, stdout);
            return CLI_EXIT_OK;
        }
        if ((r = cli_args_value(&a, "--model", "-m", &model_path)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if ((r = cli_args_value(&a, "--output", "-o", &output_path)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (cli_args_positional(&a)) {
            input_path = a.arg;
            n_inputs++;
            continue;
        }
        return cli_usage_error(argv[0], "unknown option '%s'", a.arg);
    }
    if (model_path == NULL)
        return cli_usage_error(argv[0], "--model is required");
    if (n_inputs > 1)
        return cli_usage_error(argv[0], "one input file at most (got %d)", n_inputs);

    rc = cli_load_model(model_path, &model);
    if (rc != CLI_EXIT_OK)
        return rc;
    memset(&c, 0, sizeof(c));
    if (opecom_model_describe(model, &mi) != OPECOM_OK) {
        cli_error("%s: cannot describe the model", model_path);
        opecom_model_free(model);
        return CLI_EXIT_MODEL;
    }
    c.model = model;
    c.n_features = mi.n_features;
    c.k = mi.k;
    memset(&err, 0, sizeof(err));
    if (opecom_workspace_create(model, BATCH_ROWS, &c.ws, &err) != OPECOM_OK) {
        cli_error("%s: cannot make a workspace: %s", model_path, err.message);
        opecom_model_free(model);
        return CLI_EXIT_DATA;
    }

    rc = cli_open_input(input_path, &in, &c.input_name);
    if (rc == CLI_EXIT_OK) {
        rc = cli_output_open(&out, output_path);
        if (rc != CLI_EXIT_OK && in != stdin)
            fclose(in);
    }
    if (rc != CLI_EXIT_OK) {
        opecom_workspace_free(c.ws);
        opecom_model_free(model);
        return rc;
    }
    c.out = out.fp;

    rc = cli_csv_read(in, c.input_name, on_header, on_row, &c);
    if (rc == CLI_EXIT_OK && c.ready)
        rc = flush(&c); /* the last, partial batch */
    if (in != stdin)
        fclose(in);
    if (rc == CLI_EXIT_OK && c.unknown_rows > MAX_UNKNOWN_WARNINGS)
        cli_error("warning: %llu rows had unknown categories",
                  (unsigned long long)c.unknown_rows);
    if (rc == CLI_EXIT_OK)
        rc = cli_output_commit(&out);
    else
        cli_output_abort(&out);

    if (c.ready) {
        cli_batch_free(&c.batch);
        cli_colmap_free(&c.map);
    }
    opecom_workspace_free(c.ws);
    opecom_model_free(model);
    return rc;
}
