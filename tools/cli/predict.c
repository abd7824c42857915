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
    cli_stream s;
    int jsonl;
    int label_mode;         /* LABEL_* */
    double threshold;       /* LABEL_VALUE */
    const char *keep_spec;  /* --keep as given, or NULL */
    FILE *out;
    /* kept columns: header index and name of each, and the text of each
     * batch row's kept fields in an arena (offset, length per cell) */
    size_t n_keep;
    size_t *keep_col;       /* [n_keep] */
    char **keep_name;       /* [n_keep] */
    size_t *keep_off;       /* [BATCH_ROWS, n_keep] */
    size_t *keep_len;       /* [BATCH_ROWS, n_keep] */
    char *keep_arena;
    size_t keep_arena_len, keep_arena_cap;
    uint64_t n_scored;
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
            cli_error("%s: missing column '%s' (named in --keep)", c->s.input_name, name);
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

/* Copies the kept fields of rec, the batch's last row; the first row of a
 * batch starts the arena afresh. */
static int keep_row(void *ctx, const cli_csv_record *rec) {
    predict_ctx *c = ctx;
    size_t row = c->s.batch.n - 1;
    size_t j;
    if (row == 0)
        c->keep_arena_len = 0;
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
    const opecom_result *r = &c->s.batch.result[i];
    uint32_t f;
    if (r->n_unknown == 0)
        return;
    if (c->unknown_rows++ >= MAX_UNKNOWN_WARNINGS)
        return;
    for (f = 0; f < c->s.mi.n_features && f < 64; f++) {
        if (r->unknown_mask & ((uint64_t)1 << f)) {
            cli_error("warning: %s:%llu: column '%s': unknown category '%s' (scored as none)",
                      c->s.input_name, (unsigned long long)c->s.batch.line[i],
                      c->s.map.info[f].name, c->s.batch.values[i * c->s.mi.n_features + f].str);
        }
    }
}

/* Resolves --keep and writes the CSV header. */
static int on_header(void *ctx, const cli_csv_record *header) {
    predict_ctx *c = ctx;
    uint32_t j;
    size_t i;
    int rc = c->keep_spec != NULL ? keep_init(c, header) : CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK || c->jsonl)
        return rc;
    for (i = 0; i < c->n_keep; i++) {
        cli_put_csv_field(c->out, c->keep_name[i], strlen(c->keep_name[i]));
        putc(',', c->out);
    }
    fputs("probability", c->out);
    for (j = 0; j < c->s.mi.k; j++)
        fprintf(c->out, ",p_member_%u", j);
    fputs(",spread", c->out);
    if (c->label_mode != LABEL_NONE)
        fputs(",label", c->out);
    putc('\n', c->out);
    return CLI_EXIT_OK;
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
    for (j = 0; j < c->s.mi.k; j++)
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
    for (j = 0; j < c->s.mi.k; j++)
        fprintf(c->out, ",\"p_member_%u\":%.9g", j, (double)(j < r->k ? r->member[j] : 0.0f));
    fprintf(c->out, ",\"spread\":%.9g", (double)r->spread);
    if (c->label_mode != LABEL_NONE)
        fprintf(c->out, ",\"label\":%u", row_label(c, r));
    if (r->n_unknown > 0)
        fprintf(c->out, ",\"unknown\":%u", r->n_unknown);
    fputs("}\n", c->out);
}

/* Writes a scored row (take_fn of the stream). */
static int write_row(void *ctx, size_t row) {
    predict_ctx *c = ctx;
    const opecom_result *r = &c->s.batch.result[row];
    warn_unknown(c, row);
    if (c->jsonl)
        write_row_jsonl(c, row, r);
    else
        write_row_csv(c, row, r);
    c->n_scored++;
    return CLI_EXIT_OK;
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

/* @return 0, or an exit code after printing a usage error. */
static int parse_args(predict_ctx *c, int argc, char **argv, const char **model_path,
                      const char **input_path, const char **output_path) {
    const char *threshold = NULL;
    const char *format = NULL;
    const char *on_error = NULL;
    const cli_option opts[] = {{"--model", "-m", model_path, NULL, 1},
                               {"--output", "-o", output_path, NULL, 0},
                               {"--threshold", "-t", &threshold, NULL, 0},
                               {"--keep", "-k", &c->keep_spec, NULL, 0},
                               {"--format", "-f", &format, NULL, 0},
                               {"--on-error", "-e", &on_error, NULL, 0},
                               {NULL, NULL, NULL, NULL, 0}};
    int rc = cli_args_parse(argc, argv, predict_usage, opts, input_path, "input file");
    if (rc != 0)
        return rc;
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
    if (on_error != NULL && cli_parse_on_error(on_error, &c->s.on_error) != 0)
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
    predict_ctx c = {.s = {.ctx = &c, .header_fn = on_header, .row_fn = keep_row,
                           .take_fn = write_row, .batch_rows = BATCH_ROWS}};
    int rc = parse_args(&c, argc, argv, &model_path, &input_path, &output_path);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;

    rc = cli_stream_load(&c.s, model_path);
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_open(&c.s, input_path, output_path, BATCH_ROWS);
    c.out = c.s.out.fp;
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_run(&c.s);
    if (rc == CLI_EXIT_OK && c.unknown_rows > MAX_UNKNOWN_WARNINGS)
        cli_error("warning: %llu rows had unknown categories",
                  (unsigned long long)c.unknown_rows);
    if (rc == CLI_EXIT_OK && c.s.n_skipped > 0) {
        cli_error("%llu of %llu rows skipped (bad data), %llu scored",
                  (unsigned long long)c.s.n_skipped, (unsigned long long)c.s.n_rows,
                  (unsigned long long)c.n_scored);
        if (c.n_scored == 0)
            rc = CLI_EXIT_DATA; /* nothing usable came out */
    }
    if (rc == CLI_EXIT_OK)
        rc = cli_output_commit(&c.s.out);
    cli_stream_free(&c.s);
    keep_free(&c);
    return rc;
}
