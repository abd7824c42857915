/*
 * stream.c - the run every scoring subcommand shares: load the model, make a
 * workspace, open input and output, then read the CSV records into a batch
 * (cli_batch) and flush it when it is full, before a bad row is reported
 * (so messages and output stay in input order) and at the end. A flush
 * scores the batch and hands each scored row to the subcommand's take_fn,
 * or lets its flush_fn consume the batch (explain does not score).
 */
#include <string.h>

#include "cli.h"

int cli_stream_load(cli_stream *s, const char *model_path) {
    int rc = cli_load_model(model_path, &s->model);
    s->model_path = model_path;
    if (rc == CLI_EXIT_OK && opecom_model_describe(s->model, &s->mi) != OPECOM_OK) {
        cli_error("%s: cannot describe the model", model_path);
        rc = CLI_EXIT_MODEL;
    }
    return rc;
}

int cli_stream_open(cli_stream *s, const char *input_path, const char *output_path,
                    size_t ws_rows) {
    opecom_error err;
    int rc;
    memset(&err, 0, sizeof(err));
    if (opecom_workspace_create(s->model, ws_rows, &s->ws, &err) != OPECOM_OK) {
        cli_error("%s: cannot make a workspace: %s", s->model_path, err.message);
        return CLI_EXIT_DATA;
    }
    rc = cli_open_input(input_path, &s->in, &s->input_name);
    if (rc == CLI_EXIT_OK)
        rc = cli_output_open(&s->out, output_path);
    return rc;
}

/* Scores the batch and hands over each row that scored: under --on-error
 * stop those before the first failing one, under skip all but the failing. */
static int score(cli_stream *s) {
    size_t i;
    size_t n_ok;
    int rc = cli_batch_predict(&s->batch, s->model, s->ws, s->input_name, s->on_error, &n_ok);
    for (i = 0; i < n_ok; i++) {
        if (s->batch.result[i].status != OPECOM_OK)
            s->n_skipped++;
        else if (s->take_fn(s->ctx, i) != CLI_EXIT_OK)
            return CLI_EXIT_DATA;
    }
    return rc;
}

static int flush(cli_stream *s) {
    int rc = s->flush_fn ? s->flush_fn(s->ctx) : score(s);
    cli_batch_clear(&s->batch);
    cli_progress_update(&s->progress, s->n_rows);
    return rc;
}

static int on_header(void *ctx, const cli_csv_record *header) {
    cli_stream *s = ctx;
    int32_t label = s->label_name ? cli_csv_find(header, s->label_name) : -1;
    int rc;
    if (label < 0 && s->label_required) {
        cli_error("%s: missing label column '%s' (choose another with --label)", s->input_name,
                  s->label_name);
        return CLI_EXIT_DATA;
    }
    rc = cli_colmap_init(&s->map, s->model, header, s->input_name);
    if (rc != CLI_EXIT_OK)
        return rc;
    s->map.label = label < 0 ? SIZE_MAX : (size_t)label;
    s->map.label_name = s->label_name;
    rc = cli_batch_init(&s->batch, s->mi.n_features, s->batch_rows);
    if (rc != CLI_EXIT_OK) {
        cli_colmap_free(&s->map);
        return rc;
    }
    s->ready = 1;
    return s->header_fn ? s->header_fn(s->ctx, header) : CLI_EXIT_OK;
}

static int on_row(void *ctx, const cli_csv_record *rec) {
    cli_stream *s = ctx;
    char msg[CLI_MSG_SIZE];
    int rc;
    s->n_rows++;
    rc = cli_batch_add(&s->batch, &s->map, rec, s->input_name, msg, sizeof(msg));
    if (rc != CLI_EXIT_OK) {
        if (flush(s) != CLI_EXIT_OK)
            return CLI_EXIT_DATA;
        cli_error("%s", msg);
        if (s->on_error == CLI_ON_ERROR_SKIP) {
            s->n_skipped++;
            return CLI_EXIT_OK;
        }
        return rc;
    }
    if (s->row_fn && s->row_fn(s->ctx, rec) != CLI_EXIT_OK)
        return CLI_EXIT_DATA;
    if (s->batch.n == s->batch.cap)
        return flush(s);
    return CLI_EXIT_OK;
}

int cli_stream_run(cli_stream *s) {
    int rc;
    cli_progress_start(&s->progress, s->in);
    rc = cli_csv_read(s->in, s->input_name, on_header, on_row, s);
    if (rc == CLI_EXIT_OK && s->ready)
        rc = flush(s); /* the last, partial batch */
    cli_progress_end(&s->progress);
    if (s->in != stdin)
        fclose(s->in);
    s->in = NULL;
    return rc;
}

void cli_stream_free(cli_stream *s) {
    cli_output_abort(&s->out);
    if (s->in != NULL && s->in != stdin)
        fclose(s->in);
    if (s->ready) {
        cli_batch_free(&s->batch);
        cli_colmap_free(&s->map);
    }
    opecom_workspace_free(s->ws);
    opecom_model_free(s->model);
}
