/*
 * cli.h - shared pieces of the `opecom` command-line tool.
 *
 * The tool is one binary with subcommands (`opecom predict ...`). Each
 * subcommand is a function with the signature of cli_command_fn, listed in
 * main.c's table. What subcommands share lives here: exit codes, error
 * printing, a small option parser, model loading, a streaming CSV reader
 * (csvio.c), a batch of raw rows mapped from CSV columns to model
 * features by header name (batch.c) and the loop that streams a CSV
 * through such batches (stream.c). Only opecom.h is used, never src/.
 */
#ifndef OPECOM_CLI_H
#define OPECOM_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "opecom.h"

/* ===================================================================== *
 * Exit codes (documented in docs/cli.md; never renumbered)
 * ===================================================================== */

enum {
    CLI_EXIT_OK = 0,     /* success */
    CLI_EXIT_DATA = 1,   /* bad input data, or an I/O error on input/output */
    CLI_EXIT_USAGE = 2,  /* bad command line */
    CLI_EXIT_MODEL = 3   /* the model file could not be loaded */
};

/* A subcommand: argv[0] is the subcommand's name. @return an exit code. */
typedef int (*cli_command_fn)(int argc, char **argv);

int cli_predict(int argc, char **argv);
int cli_explain(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_sessionize(int argc, char **argv);
int cli_report(int argc, char **argv);

/* ===================================================================== *
 * Messages (util.c)
 * ===================================================================== */

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* Prints "opecom: <message>\n" to stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/* Prints a usage error for subcommand cmd, points at --help, returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* ===================================================================== *
 * Options (util.c)
 *
 *     const cli_option opts[] = {
 *         {"--model", "-m", &model_path, NULL, 1},   value option, required
 *         {"--json", "-j", NULL, &json, 0},           flag: sets json to 1
 *         {NULL, NULL, NULL, NULL, 0}};
 *     rc = cli_args_parse(argc, argv, usage, opts, &input_path, "input file");
 *
 * Accepted spellings: "--name value", "--name=value", "-n value", "-nvalue".
 * "-" alone is a positional argument (stdin); "--" ends the options.
 * ===================================================================== */

typedef struct cli_option {
    const char *lng, *shrt; /* "--model", "-m"; either may be NULL */
    const char **value;     /* a value option: where its value goes */
    int *flag;              /* a flag: set to 1 when given */
    int required;           /* "--model is required" when *value is still NULL */
} cli_option;

/* Parses argv (argv[0] is the subcommand): -h/--help prints `usage` to
 * stdout; every positional argument goes to *positional, one at most ("one
 * NOUN at most"). Unknown options, missing values and required options are
 * usage errors. @return 0, -1 after --help, or CLI_EXIT_USAGE (reported). */
int cli_args_parse(int argc, char **argv, const char *usage, const cli_option *opts,
                   const char **positional, const char *noun);

/* ===================================================================== *
 * Model and files (util.c)
 * ===================================================================== */

/* Loads a model; on failure prints "opecom: PATH: cannot load model: ..."
 * and returns CLI_EXIT_MODEL. */
int cli_load_model(const char *path, opecom_model **out);

/* Opens the input: NULL or "-" is stdin. *name receives the name used in
 * messages ("<stdin>" or the path). @return CLI_EXIT_OK or CLI_EXIT_DATA. */
int cli_open_input(const char *path, FILE **out, const char **name);

/* Output to stdout (path NULL or "-") or to a file. A regular file is written
 * under a temporary name in the same folder and renamed over `path` only by
 * cli_output_commit, so a failed run never leaves a half-written file. */
typedef struct cli_output {
    FILE *fp;
    const char *path;  /* final path, or NULL for stdout */
    char *tmp_path;    /* temporary name, or NULL when writing in place */
} cli_output;

int cli_output_open(cli_output *o, const char *path);
/* Flushes and closes; renames the temporary file into place. Reports write
 * errors. @return CLI_EXIT_OK or CLI_EXIT_DATA. */
int cli_output_commit(cli_output *o);
/* Closes and removes the temporary file (after an error). */
void cli_output_abort(cli_output *o);

/* ===================================================================== *
 * Option values and output formatting (util.c)
 * ===================================================================== */

/* Parses a finite number filling the whole of s (no leading blank).
 * @return 0, or -1 when s is not one. */
int cli_parse_number(const char *s, double *out);

/* Parses a probability threshold: a plain number in [0, 1].
 * @return 0, or -1 when s is not one. */
int cli_parse_threshold(const char *s, double *out);

/* Writes one CSV field, quoted (RFC 4180) when it holds a comma, a quote,
 * CR, LF, or blanks at either end that a reader would trim. */
void cli_put_csv_field(FILE *fp, const char *s, size_t len);

/* Writes s as a JSON string: quotes, backslashes and control characters
 * escaped; other bytes (UTF-8) copied as they are. */
void cli_put_json_string(FILE *fp, const char *s, size_t len);

/* Writes a double as a JSON value: "%.17g" (exact round trip), or null when
 * it is not finite (JSON has no NaN). */
void cli_put_json_number(FILE *fp, double v);

/* ===================================================================== *
 * Progress bar on stderr (progress.c)
 *
 * For long runs, when stderr is a terminal: rows done and rows/s, plus a bar,
 * percent and ETA when the input is a regular file of known size. Nothing is
 * drawn during the first CLI_PROGRESS_DELAY seconds (short runs stay quiet),
 * then at most 10 times a second; cli_progress_end erases it. When stderr is
 * not a terminal nothing is ever written. cli_error erases a drawn bar before
 * its message, so messages never land in the middle of it.
 *
 *     cli_progress p;
 *     cli_progress_start(&p, in);          after opening the input
 *     cli_progress_update(&p, rows_done);  as often as you like (cheap)
 *     cli_progress_end(&p);                before the final messages
 * ===================================================================== */

#define CLI_PROGRESS_DELAY 0.5 /* seconds before the first draw */

typedef struct cli_progress {
    int enabled;       /* stderr is a terminal */
    int drawn;         /* a bar is on screen */
    FILE *in;          /* input, for the bytes read so far */
    uint64_t total;    /* input size in bytes, 0 when unknown (pipe) */
    double start;      /* monotonic seconds at start */
    double last;       /* monotonic seconds of the last draw */
    uint64_t rows;     /* rows at the last update */
} cli_progress;

void cli_progress_start(cli_progress *p, FILE *in);
void cli_progress_update(cli_progress *p, uint64_t rows);
void cli_progress_end(cli_progress *p);
/* Erases the bar of the running progress (if drawn); called by cli_error. */
void cli_progress_interrupt(void);

/* Formats one progress line (no CR, no newline) into buf: rows, rows/s and,
 * when total_bytes > 0, a bar, percent and ETA. @return its length. */
size_t cli_progress_format(char *buf, size_t size, uint64_t rows, double seconds,
                           uint64_t done_bytes, uint64_t total_bytes);

/* ===================================================================== *
 * Streaming CSV reader (csvio.c)
 *
 * Reads RFC 4180 CSV (LF or CRLF, quoted fields, embedded newlines, a
 * missing final newline) in fixed-size chunks, so memory depends on the
 * longest record, never on the input size. The first record is the header.
 * Blank lines are skipped. A UTF-8 byte order mark is dropped.
 * ===================================================================== */

#define CLI_CSV_MAX_FIELD  (1u << 20)  /* bytes in one field */
#define CLI_CSV_MAX_FIELDS 4096u       /* fields in one record */

typedef struct cli_csv_record {
    size_t n_fields;
    const char *const *field;  /* n_fields NUL-terminated strings */
    const size_t *len;         /* their lengths */
    uint64_t line;             /* input line the record starts on (1-based) */
} cli_csv_record;

/* Called once per record; the record is valid only during the call.
 * @return 0 to continue, anything else to stop: cli_csv_read returns it. */
typedef int (*cli_csv_record_fn)(void *ctx, const cli_csv_record *rec);

/* Reads `in` to the end, calling header_fn for the first record and row_fn
 * for every other. Malformed CSV and read errors are reported on stderr
 * with `name`; input without any record is an error ("no header row").
 * @return 0, CLI_EXIT_DATA, or the first non-zero callback result. */
int cli_csv_read(FILE *in, const char *name, cli_csv_record_fn header_fn,
                 cli_csv_record_fn row_fn, void *ctx);

/* @return the index of the header field equal to `name`, or -1. */
int32_t cli_csv_find(const cli_csv_record *header, const char *name);

/* ===================================================================== *
 * Batches of raw rows (batch.c)
 * ===================================================================== */

/* Which CSV column feeds each model feature. */
typedef struct cli_colmap {
    const opecom_model *model;
    uint32_t n_features;
    size_t n_columns;            /* fields in the header (and in every row) */
    size_t *column;              /* [n_features] header index per feature */
    opecom_feature_info *info;   /* [n_features] */
    size_t label;                /* label column, or SIZE_MAX (set by the caller) */
    const char *label_name;
} cli_colmap;

/* Maps the model's features to header columns by name, in any order; other
 * columns are ignored. A missing or repeated feature column is reported
 * ("missing column 'PageValues'"). @return CLI_EXIT_OK or CLI_EXIT_DATA. */
int cli_colmap_init(cli_colmap *m, const opecom_model *model, const cli_csv_record *header,
                    const char *input_name);
void cli_colmap_free(cli_colmap *m);

/* Up to `cap` raw rows ready for opecom_predict_batch. Categorical text is
 * copied into a per-batch arena, because a record's fields die with the
 * record while opecom_value.str must live until the batch is scored. */
typedef struct cli_batch {
    uint32_t n_features;
    size_t cap, n;
    opecom_value *values;   /* [cap, n_features] */
    size_t *text;           /* [cap, n_features] arena offset, or SIZE_MAX */
    uint64_t *line;         /* [cap] input line of each row */
    uint32_t *label;        /* [cap] 0/1 from the label column, 0 without one */
    opecom_result *result;  /* [cap] */
    char *arena;
    size_t arena_len, arena_cap;
} cli_batch;

int cli_batch_init(cli_batch *b, uint32_t n_features, size_t cap);
void cli_batch_free(cli_batch *b);
/* Empties the batch (keeps its memory). */
void cli_batch_clear(cli_batch *b);

/* Appends one CSV record: the label when the map has a label column, numbers
 * parsed strictly (the whole field, finite), categories copied as text. A
 * bad field is described in msg with line and
 * column ("in.csv:57: column 'BounceRates': '0.3x' is not a number"), not
 * printed, so the caller can first score the rows before it.
 * @return CLI_EXIT_OK or CLI_EXIT_DATA (the batch is unchanged then). */
#define CLI_MSG_SIZE 512
int cli_batch_add(cli_batch *b, const cli_colmap *m, const cli_csv_record *rec,
                  const char *input_name, char *msg, size_t msg_size);

/* Points each categorical value at its text, for a library call. */
void cli_batch_bind(cli_batch *b);

/* What to do with a bad row (a field that is not a number, a value the
 * library refuses, a record with the wrong field count). */
typedef enum cli_on_error {
    CLI_ON_ERROR_STOP = 0, /* report it, score the rows before it, exit 1 */
    CLI_ON_ERROR_SKIP = 1  /* report it, leave it out, go on */
} cli_on_error;

/* Parses "stop" or "skip". @return 0, or -1 for anything else. */
int cli_parse_on_error(const char *s, cli_on_error *out);

/* Scores the batch into b->result. A failing row is reported on stderr with
 * its line and the library's message. stop: only the first, and *n_ok is
 * the number of rows before it (exit 1). skip: every one, left with a non-OK
 * b->result[i].status, and *n_ok = b->n. @return CLI_EXIT_OK, or
 * CLI_EXIT_DATA on a failure under stop or when the call itself failed. */
int cli_batch_predict(cli_batch *b, const opecom_model *model, opecom_workspace *ws,
                      const char *input_name, cli_on_error on_error, size_t *n_ok);

/* ===================================================================== *
 * Scoring a CSV of raw sessions in batches (stream.c)
 *
 * What predict, explain, eval and report share: the model, a workspace, the
 * input and output, and the loop reading records into a batch and flushing
 * it when full, before a bad row is reported, and at the end.
 *
 *     rc = cli_stream_load(&s, model_path);                 model, s.mi
 *     rc = cli_stream_open(&s, input_path, output_path, ws_rows);
 *     rc = cli_stream_run(&s);     after setting ctx, the hooks, batch_rows
 *     ... cli_output_commit(&s.out) ...
 *     cli_stream_free(&s);         also after any failure above
 *
 * A bad record is reported after the rows before it were flushed; with
 * --on-error skip it is counted and left out, else it ends the run.
 * ===================================================================== */

typedef struct cli_stream {
    /* set by the subcommand (zero: not used) */
    void *ctx;                                                /* for the hooks */
    int (*header_fn)(void *ctx, const cli_csv_record *header); /* map and batch made */
    int (*row_fn)(void *ctx, const cli_csv_record *rec);      /* rec is row batch.n - 1 */
    int (*take_fn)(void *ctx, size_t row);  /* each row scored by cli_batch_predict* */
    int (*flush_fn)(void *ctx);             /* instead of scoring: consume the batch */
    const char *label_name;                 /* label column read into batch.label */
    int label_required;                     /* its absence is an error */
    cli_on_error on_error;
    size_t batch_rows;
    /* the rest is the stream's */
    const char *model_path;
    opecom_model *model;
    opecom_model_info mi;
    opecom_workspace *ws;
    FILE *in;
    const char *input_name;
    cli_output out;
    cli_colmap map;
    cli_batch batch;
    int ready;                 /* header seen, map and batch made */
    cli_progress progress;
    uint64_t n_rows;           /* data records read */
    uint64_t n_skipped;        /* bad rows left out (--on-error skip) */
} cli_stream;

/* Loads the model and describes it into s->mi. @return an exit code. */
int cli_stream_load(cli_stream *s, const char *model_path);
/* Makes a workspace for ws_rows rows, opens the input and the output (NULL:
 * stdout). @return an exit code. */
int cli_stream_open(cli_stream *s, const char *input_path, const char *output_path,
                    size_t ws_rows);
/* Reads the input to the end and closes it. @return an exit code. */
int cli_stream_run(cli_stream *s);
/* Frees everything; an output not committed is aborted. */
void cli_stream_free(cli_stream *s);

/* ===================================================================== *
 * Figures on labelled sessions (metrics.c), shared by eval and report
 * ===================================================================== */

#define CLI_CAL_BINS 10 /* calibration bins, equal width */

/* One scored row: a probability and its 0/1 label. */
typedef struct cli_scored {
    float p;
    uint32_t y;
} cli_scored;

typedef struct cli_bin {
    uint64_t count;
    uint64_t positives;
    double sum_p;
} cli_bin;

typedef struct cli_metrics {
    uint64_t n, positives;
    double threshold;
    double roc_auc, pr_auc, log_loss; /* NaN when undefined */
    double accuracy, precision, recall, f1;
    uint64_t tp, fp, tn, fn;
    cli_bin bins[CLI_CAL_BINS];
} cli_metrics;

/* A growing array of scored rows. */
typedef struct cli_scores {
    cli_scored *v;
    size_t n, cap;
} cli_scores;

/* Appends (p, y); reports running out of memory. @return an exit code. */
int cli_scores_add(cli_scores *s, float p, uint32_t y);

/* @return a / b, or 0 when b is 0. */
double cli_ratio(uint64_t a, uint64_t b);
/* The calibration bin of p: bin 0 is [0, 0.1], bin i is (i/10, (i+1)/10]. */
int cli_calibration_bin(double p);
/* Computes every figure (definitions in eval.c); sorts `s` by descending
 * probability, so a caller can walk the ROC and PR curves afterwards. */
void cli_metrics_compute(cli_scored *s, size_t n, double threshold, cli_metrics *m);
/* Parses a label: TRUE/FALSE in any case, or 1/0. @return 0, or -1. */
int cli_parse_label(const char *s, uint32_t *y);

/* ===================================================================== *
 * Inline SVG plots for the HTML report (svg.c)
 *
 *     cli_svg g;
 *     cli_svg_begin(&g, fp, "roc", 520, 420, &margins, "ROC curve");
 *     cli_svg_range(&g, 0, 1, 0, 1);       data ranges (default [0,1]^2)
 *     cli_svg_axes(&g, "x label", "y label", 5, 5);
 *     ... cli_svg_line / cli_svg_path_* in data coordinates ...
 *     cli_svg_end(&g);
 * ===================================================================== */

typedef struct cli_svg_margins {
    double left, top, right, bottom; /* pixels around the plot area */
} cli_svg_margins;

typedef struct cli_svg {
    FILE *fp;
    double x0, x1, y0, y1;            /* data ranges */
    double left, top, width, height;  /* plot area, pixels */
    size_t n_points;                  /* of the open polyline */
    double last_x, last_y;            /* its last point, pixels */
} cli_svg;

/* Writes s escaped for HTML and XML text or attribute values. */
void cli_html_text(FILE *fp, const char *s);
/* Opens <svg id="ID" class="plot ID"> with a <title> and a heading. */
void cli_svg_begin(cli_svg *g, FILE *fp, const char *id, int width, int height,
                   const cli_svg_margins *m, const char *title);
void cli_svg_range(cli_svg *g, double x0, double x1, double y0, double y1);
/* Data to pixels. */
double cli_svg_x(const cli_svg *g, double v);
double cli_svg_y(const cli_svg *g, double v);
/* A tick spacing of 1, 2 or 5 x 10^k giving about n ticks over range. */
double cli_nice_step(double range, int n);
/* Grid, ticks with labels (about nx and ny of them; 0: none), the frame
 * and the axis labels (NULL: none). */
void cli_svg_axes(cli_svg *g, const char *xlabel, const char *ylabel, int nx, int ny);
void cli_svg_line(cli_svg *g, const char *cls, double xa, double ya, double xb, double yb);
/* A polyline; points closer than half a pixel to the previous one are
 * dropped unless force is set. */
void cli_svg_path_begin(cli_svg *g, const char *cls);
void cli_svg_path_point(cli_svg *g, double x, double y, int force);
void cli_svg_path_end(cli_svg *g);
void cli_svg_end(cli_svg *g);

/* The report's plots (svg.c), each an <svg> with its id, inside a section
 * with its heading. ROC and PR curves (ids roc, pr) from pairs sorted by
 * descending probability, as cli_metrics_compute leaves them: */
void cli_plot_curves(FILE *fp, const cli_scored *s, const cli_metrics *m);
/* Calibration (id calibration): per bin, mean predicted against observed
 * rate, the diagonal and the row counts. */
void cli_plot_calibration(FILE *fp, const cli_metrics *m);
/* Histogram of the probabilities (id scores) in 20 bins, by label when
 * labelled (each class scaled to its total), with the threshold. */
void cli_plot_scores(FILE *fp, const cli_scored *s, size_t n, int labelled, double threshold);

#endif /* OPECOM_CLI_H */
