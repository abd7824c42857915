/*
 * predict.c - `opecom predict`: score the sessions of a CSV file.
 *
 * Records stream from the CSV reader into a batch of BATCH_ROWS rows; each
 * full batch is scored with one opecom_predict_batch call through a single
 * workspace and written out at once, so memory stays flat however long the
 * input is. Kept input columns (--keep) ride along with the batch in an
 * arena of their own until the batch is written.
 *
 * Bad rows: with --on-error stop (default), the rows before the first bad
 * one are still scored and written, then the error (with its input line)
 * ends the run with exit 1. With skip, every bad row is reported and left
 * out, and a count is printed at the end. An output file (-o) is only put
 * in place when the run succeeds.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BATCH_ROWS 256
#define MAX_UNKNOWN_WARNINGS 3

static const char predict_usage[] =
    "Usage: opecom predict --model MODEL.opm [OPTIONS] [INPUT.csv|-]\n"
    "\n"
    "Scores every row (one session) of a CSV file with a libopecom model and\n"
    "writes one row of predictions per input row, in input order.\n"
    "\n"
    "Input: CSV with a header row (LF or CRLF, quoted fields allowed), read\n"
    "from INPUT.csv, or from standard input when INPUT is '-' or absent.\n"
    "Columns are matched to the model's features by header name, in any\n"
    "order; other columns are ignored. Numeric features must be plain finite\n"
    "numbers; categorical features are text (Month 'Nov', VisitorType\n"
    "'Returning_Visitor', OperatingSystems '2').\n"
    "\n"
    "Output columns: [kept columns,]probability,p_member_0,...,p_member_{k-1},\n"
    "spread[,label]\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE      model file (.opm); required\n"
    "  -o, --output FILE     write to FILE instead of standard output\n"
    "  -t, --threshold T     add a 'label' column: 1 when probability >= T, else 0;\n"
    "                        T is a number in [0, 1] or 'model' (the model's own\n"
    "                        threshold)\n"
    "  -k, --keep COLS       copy these input columns (comma-separated names, or\n"
    "                        'all') to the output, before the predictions\n"
    "  -f, --format FMT      'csv' (default) or 'jsonl' (one JSON object a line)\n"
    "  -e, --on-error MODE   'stop' (default): the first bad row ends the run;\n"
    "                        'skip': bad rows are reported and left out\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "A progress line is shown on stderr for long runs when stderr is a terminal.\n"
    "\n"
    "Exit status: 0 success (with --on-error skip: at least one row scored, or\n"
    "no data rows), 1 bad input data or I/O error, 2 usage error, 3 the model\n"
    "could not be loaded.\n";

enum { LABEL_NONE, LABEL_MODEL, LABEL_VALUE };

typedef struct predict_ctx {
    /* options */
    int jsonl;
    int label_mode;         /* LABEL_* */
    double threshold;       /* LABEL_VALUE */
    const char *keep_spec;  /* --keep as given, or NULL */
    cli_on_error on_error;
    /* model and input */
    const char *input_name;
    const opecom_model *model;
    opecom_workspace *ws;
    uint32_t n_features;
    uint32_t k;
    cli_colmap map;
    cli_batch batch;
    int ready;              /* header seen, map and batch made */
    FILE *out;
    cli_progress progress;
    /* kept columns: header index and name of each, and the text of each
     * batch row's kept fields in an arena (offset, length per cell) */
    size_t n_keep;
    size_t *keep_col;       /* [n_keep] */
    char **keep_name;       /* [n_keep] */
    size_t *keep_off;       /* [BATCH_ROWS, n_keep] */
    size_t *keep_len;       /* [BATCH_ROWS, n_keep] */
    char *keep_arena;
    size_t keep_arena_len, keep_arena_cap;
    /* counts */
    uint64_t n_rows;        /* data records read */
    uint64_t n_scored;
    uint64_t n_skipped;
    uint64_t unknown_rows;  /* rows with at least one unknown category */
} predict_ctx;

/* ===================================================================== *
 * Kept columns
 * ===================================================================== */

static void keep_free(predict_ctx *c) {
    size_t i;
    if (c->keep_name) {
        for (i = 0; i < c->n_keep; i++)
            free(c->keep_name[i]);
    }
    free(c->keep_name);
    free(c->keep_col);
    free(c->keep_off);
    free(c->keep_len);
    free(c->keep_arena);
    c->keep_name = NULL;
    c->keep_col = NULL;
    c->keep_off = NULL;
    c->keep_len = NULL;
    c->keep_arena = NULL;
    c->n_keep = 0;
}

static int keep_add(predict_ctx *c, size_t col, const char *name) {
    size_t n = c->n_keep;
    c->keep_col[n] = col;
    c->keep_name[n] = strdup(name);
    if (c->keep_name[n] == NULL)
        return -1;
    c->n_keep++;
    return 0;
}

/* Resolves --keep against the header: "all", or names that must all exist. */
static int keep_init(predict_ctx *c, const cli_csv_record *header) {
    size_t cap = 1;
    const char *p;
    int missing = 0;
    for (p = c->keep_spec; *p; p++)
        cap += *p == ',';
    if (strcmp(c->keep_spec, "all") == 0)
        cap = header->n_fields;
    c->keep_col = calloc(cap ? cap : 1, sizeof(*c->keep_col));
    c->keep_name = calloc(cap ? cap : 1, sizeof(*c->keep_name));
    c->keep_off = calloc(BATCH_ROWS * (cap ? cap : 1), sizeof(*c->keep_off));
    c->keep_len = calloc(BATCH_ROWS * (cap ? cap : 1), sizeof(*c->keep_len));
    c->keep_arena_cap = 4096;
    c->keep_arena = malloc(c->keep_arena_cap);
    if (!c->keep_col || !c->keep_name || !c->keep_off || !c->keep_len || !c->keep_arena)
        goto oom;
    if (strcmp(c->keep_spec, "all") == 0) {
        size_t i;
        for (i = 0; i < header->n_fields; i++) {
            if (keep_add(c, i, header->field[i]) != 0)
                goto oom;
        }
        return CLI_EXIT_OK;
    }
    p = c->keep_spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[256];
        int32_t col;
        snprintf(name, sizeof(name), "%.*s", (int)(len < 255 ? len : 255), p);
        col = cli_csv_find(header, name);
        if (col < 0) {
            cli_error("%s: missing column '%s' (named in --keep)", c->input_name, name);
            missing = 1;
        } else if (keep_add(c, (size_t)col, name) != 0) {
            goto oom;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return missing ? CLI_EXIT_DATA : CLI_EXIT_OK;
oom:
    cli_error("out of memory");
    return CLI_EXIT_DATA;
}

/* Copies the kept fields of rec, the batch's row `row`. */
static int keep_row(predict_ctx *c, size_t row, const cli_csv_record *rec) {
    size_t j;
    for (j = 0; j < c->n_keep; j++) {
        size_t len = rec->len[c->keep_col[j]];
        if (c->keep_arena_cap - c->keep_arena_len < len + 1) {
            size_t cap = c->keep_arena_cap;
            char *a;
            while (cap - c->keep_arena_len < len + 1)
                cap *= 2;
            a = realloc(c->keep_arena, cap);
            if (a == NULL) {
                cli_error("out of memory");
                return CLI_EXIT_DATA;
            }
            c->keep_arena = a;
            c->keep_arena_cap = cap;
        }
        memcpy(c->keep_arena + c->keep_arena_len, rec->field[c->keep_col[j]], len);
        c->keep_off[row * c->n_keep + j] = c->keep_arena_len;
        c->keep_len[row * c->n_keep + j] = len;
        c->keep_arena_len += len;
    }
    return CLI_EXIT_OK;
}

/* ===================================================================== *
 * Output
 * ===================================================================== */

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
    size_t i;
    if (c->jsonl)
        return;
    for (i = 0; i < c->n_keep; i++) {
        cli_put_csv_field(c->out, c->keep_name[i], strlen(c->keep_name[i]));
        putc(',', c->out);
    }
    fputs("probability", c->out);
    for (j = 0; j < c->k; j++)
        fprintf(c->out, ",p_member_%u", j);
    fputs(",spread", c->out);
    if (c->label_mode != LABEL_NONE)
        fputs(",label", c->out);
    putc('\n', c->out);
}

static unsigned row_label(const predict_ctx *c, const opecom_result *r) {
    if (c->label_mode == LABEL_MODEL)
        return r->label;
    return (double)r->probability >= c->threshold;
}

static void write_row_csv(predict_ctx *c, size_t row, const opecom_result *r) {
    uint32_t j;
    size_t i;
    for (i = 0; i < c->n_keep; i++) {
        size_t cell = row * c->n_keep + i;
        cli_put_csv_field(c->out, c->keep_arena + c->keep_off[cell], c->keep_len[cell]);
        putc(',', c->out);
    }
    fprintf(c->out, "%.9g", (double)r->probability);
    for (j = 0; j < c->k; j++)
        fprintf(c->out, ",%.9g", (double)(j < r->k ? r->member[j] : 0.0f));
    fprintf(c->out, ",%.9g", (double)r->spread);
    if (c->label_mode != LABEL_NONE)
        fprintf(c->out, ",%u", row_label(c, r));
    putc('\n', c->out);
}

static void write_row_jsonl(predict_ctx *c, size_t row, const opecom_result *r) {
    uint32_t j;
    size_t i;
    putc('{', c->out);
    for (i = 0; i < c->n_keep; i++) {
        size_t cell = row * c->n_keep + i;
        cli_put_json_string(c->out, c->keep_name[i], strlen(c->keep_name[i]));
        putc(':', c->out);
        cli_put_json_string(c->out, c->keep_arena + c->keep_off[cell], c->keep_len[cell]);
        putc(',', c->out);
    }
    fprintf(c->out, "\"probability\":%.9g", (double)r->probability);
    for (j = 0; j < c->k; j++)
        fprintf(c->out, ",\"p_member_%u\":%.9g", j, (double)(j < r->k ? r->member[j] : 0.0f));
    fprintf(c->out, ",\"spread\":%.9g", (double)r->spread);
    if (c->label_mode != LABEL_NONE)
        fprintf(c->out, ",\"label\":%u", row_label(c, r));
    if (r->n_unknown > 0)
        fprintf(c->out, ",\"unknown\":%u", r->n_unknown);
    fputs("}\n", c->out);
}

static void write_row(predict_ctx *c, size_t row) {
    const opecom_result *r = &c->batch.result[row];
    warn_unknown(c, row);
    if (c->jsonl)
        write_row_jsonl(c, row, r);
    else
        write_row_csv(c, row, r);
    c->n_scored++;
}

/* ===================================================================== *
 * Reading
 * ===================================================================== */

/* Scores and writes the pending rows. --on-error stop: on a failing row,
 * writes the rows before it and reports it (exit 1). skip: writes every row
 * that scored, reports the others. */
static int flush(predict_ctx *c) {
    size_t i;
    int rc;
    if (c->on_error == CLI_ON_ERROR_SKIP) {
        size_t n_failed;
        rc = cli_batch_predict_each(&c->batch, c->model, c->ws, c->input_name, &n_failed);
        if (rc == CLI_EXIT_OK) {
            for (i = 0; i < c->batch.n; i++) {
                if (c->batch.result[i].status == OPECOM_OK)
                    write_row(c, i);
            }
            c->n_skipped += n_failed;
        }
    } else {
        size_t n_ok;
        rc = cli_batch_predict(&c->batch, c->model, c->ws, c->input_name, &n_ok);
        for (i = 0; i < n_ok; i++)
            write_row(c, i);
    }
    cli_batch_clear(&c->batch);
    c->keep_arena_len = 0;
    cli_progress_update(&c->progress, c->n_rows);
    return rc;
}

static int on_header(void *ctx, const cli_csv_record *header) {
    predict_ctx *c = ctx;
    int rc = cli_colmap_init(&c->map, c->model, header, c->input_name);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (c->keep_spec != NULL && (rc = keep_init(c, header)) != CLI_EXIT_OK) {
        cli_colmap_free(&c->map);
        return rc;
    }
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
    size_t row = c->batch.n;
    int rc;
    c->n_rows++;
    rc = cli_batch_add(&c->batch, &c->map, rec, c->input_name, msg, sizeof(msg));
    if (rc != CLI_EXIT_OK) {
        /* The rows before a bad one are scored and written first, so the
         * messages come in input order. */
        if (flush(c) != CLI_EXIT_OK)
            return CLI_EXIT_DATA;
        cli_error("%s", msg);
        if (c->on_error == CLI_ON_ERROR_SKIP) {
            c->n_skipped++;
            return CLI_EXIT_OK;
        }
        return rc;
    }
    if (c->n_keep > 0 && keep_row(c, row, rec) != CLI_EXIT_OK)
        return CLI_EXIT_DATA;
    if (c->batch.n == c->batch.cap)
        return flush(c);
    return CLI_EXIT_OK;
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

/* @return 0, or an exit code after printing a usage error. */
static int parse_args(predict_ctx *c, int argc, char **argv, const char **model_path,
                      const char **input_path, const char **output_path) {
    int n_inputs = 0;
    const char *threshold = NULL;
    const char *format = NULL;
    const char *on_error = NULL;
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r;
        if (cli_args_flag(&a, "--help", "-h")) {
            fputs(predict_usage, stdout);
            return -1;
        }
        if ((r = cli_args_value(&a, "--model", "-m", model_path)) != 0 ||
            (r = cli_args_value(&a, "--output", "-o", output_path)) != 0 ||
            (r = cli_args_value(&a, "--threshold", "-t", &threshold)) != 0 ||
            (r = cli_args_value(&a, "--keep", "-k", &c->keep_spec)) != 0 ||
            (r = cli_args_value(&a, "--format", "-f", &format)) != 0 ||
            (r = cli_args_value(&a, "--on-error", "-e", &on_error)) != 0) {
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
    if (threshold != NULL) {
        if (strcmp(threshold, "model") == 0)
            c->label_mode = LABEL_MODEL;
        else if (cli_parse_threshold(threshold, &c->threshold) == 0)
            c->label_mode = LABEL_VALUE;
        else
            return cli_usage_error(argv[0],
                                   "--threshold '%s': expected a number in [0, 1] or 'model'",
                                   threshold);
    }
    if (format != NULL) {
        if (strcmp(format, "jsonl") == 0)
            c->jsonl = 1;
        else if (strcmp(format, "csv") != 0)
            return cli_usage_error(argv[0], "--format '%s': expected 'csv' or 'jsonl'", format);
    }
    if (on_error != NULL && cli_parse_on_error(on_error, &c->on_error) != 0)
        return cli_usage_error(argv[0], "--on-error '%s': expected 'stop' or 'skip'", on_error);
    if (c->keep_spec != NULL) {
        const char *p = c->keep_spec;
        /* no empty names: "", ",a", "a,,b", "a," */
        if (*p == '\0' || *p == ',' || p[strlen(p) - 1] == ',' || strstr(p, ",,") != NULL)
            return cli_usage_error(argv[0], "--keep '%s': expected comma-separated column "
                                   "names, or 'all'", c->keep_spec);
    }
    return 0;
}

int cli_predict(int argc, char **argv) {
    const char *model_path = NULL;
    const char *input_path = NULL;
    const char *output_path = NULL;
    opecom_model *model = NULL;
    opecom_model_info mi;
    opecom_error err;
    predict_ctx c;
    cli_output out;
    FILE *in = NULL;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = parse_args(&c, argc, argv, &model_path, &input_path, &output_path);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;

    rc = cli_load_model(model_path, &model);
    if (rc != CLI_EXIT_OK)
        return rc;
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

    cli_progress_start(&c.progress, in);
    rc = cli_csv_read(in, c.input_name, on_header, on_row, &c);
    if (rc == CLI_EXIT_OK && c.ready)
        rc = flush(&c); /* the last, partial batch */
    cli_progress_end(&c.progress);
    if (in != stdin)
        fclose(in);
    if (rc == CLI_EXIT_OK && c.unknown_rows > MAX_UNKNOWN_WARNINGS)
        cli_error("warning: %llu rows had unknown categories",
                  (unsigned long long)c.unknown_rows);
    if (rc == CLI_EXIT_OK && c.n_skipped > 0) {
        cli_error("%llu of %llu rows skipped (bad data), %llu scored",
                  (unsigned long long)c.n_skipped, (unsigned long long)c.n_rows,
                  (unsigned long long)c.n_scored);
        if (c.n_scored == 0)
            rc = CLI_EXIT_DATA; /* nothing usable came out */
    }
    if (rc == CLI_EXIT_OK)
        rc = cli_output_commit(&out);
    else
        cli_output_abort(&out);

    if (c.ready) {
        cli_batch_free(&c.batch);
        cli_colmap_free(&c.map);
    }
    keep_free(&c);
    opecom_workspace_free(c.ws);
    opecom_model_free(model);
    return rc;
}
