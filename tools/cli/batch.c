/*
 * batch.c - from CSV records to rows the library can score.
 *
 * cli_colmap ties each model feature to a CSV column by header name, once,
 * so column order does not matter and extra columns are ignored. cli_batch
 * collects up to `cap` records as opecom_value rows: numeric fields are
 * parsed strictly (the whole field must be a finite decimal number), and
 * categorical fields are copied as text into an arena owned by the batch.
 * The arena may move while it grows, so rows store arena offsets and the
 * pointers are fixed up just before opecom_predict_batch borrows them.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Longest piece of a bad field quoted back in an error message. */
#define QUOTE_MAX 40

/* ===================================================================== *
 * Column map
 * ===================================================================== */

int cli_colmap_init(cli_colmap *m, const opecom_model *model, const cli_csv_record *header,
                    const char *input_name) {
    opecom_model_info mi;
    uint32_t f;
    uint32_t n_missing = 0;
    int rc = CLI_EXIT_OK;

    memset(m, 0, sizeof(*m));
    if (opecom_model_describe(model, &mi) != OPECOM_OK) {
        cli_error("cannot describe the model");
        return CLI_EXIT_DATA;
    }
    m->model = model;
    m->n_features = mi.n_features;
    m->n_columns = header->n_fields;
    m->column = calloc(mi.n_features ? mi.n_features : 1, sizeof(*m->column));
    m->info = calloc(mi.n_features ? mi.n_features : 1, sizeof(*m->info));
    if (m->column == NULL || m->info == NULL) {
        cli_error("out of memory");
        cli_colmap_free(m);
        return CLI_EXIT_DATA;
    }
    for (f = 0; f < mi.n_features; f++) {
        size_t c;
        size_t found = 0;
        if (opecom_model_feature(model, f, &m->info[f]) != OPECOM_OK) {
            cli_error("cannot describe model feature %u", f);
            cli_colmap_free(m);
            return CLI_EXIT_DATA;
        }
        for (c = 0; c < header->n_fields; c++) {
            if (strcmp(header->field[c], m->info[f].name) != 0)
                continue;
            if (found++ == 0)
                m->column[f] = c;
        }
        if (found == 0) {
            n_missing++;
            rc = CLI_EXIT_DATA;
        } else if (found > 1) {
            cli_error("%s: column '%s' appears %zu times in the header", input_name,
                      m->info[f].name, found);
            rc = CLI_EXIT_DATA;
        }
    }
    if (n_missing > 0 && n_missing == mi.n_features) {
        /* Nothing matches: most likely no header row, or another delimiter. */
        cli_error("%s: missing column '%s' (no column matches any of the model's %u features: "
                  "the first row must be a header of comma-separated names)",
                  input_name, m->info[0].name, mi.n_features);
    } else if (n_missing > 0) {
        for (f = 0; f < mi.n_features; f++) {
            if (cli_csv_find(header, m->info[f].name) < 0)
                cli_error("%s: missing column '%s'", input_name, m->info[f].name);
        }
    }
    if (rc != CLI_EXIT_OK)
        cli_colmap_free(m);
    return rc;
}

void cli_colmap_free(cli_colmap *m) {
    free(m->column);
    free(m->info);
    m->column = NULL;
    m->info = NULL;
}

/* ===================================================================== *
 * Batch
 * ===================================================================== */

int cli_batch_init(cli_batch *b, uint32_t n_features, size_t cap) {
    size_t cells = cap * (n_features ? n_features : 1);
    memset(b, 0, sizeof(*b));
    b->n_features = n_features;
    b->cap = cap;
    b->values = calloc(cells, sizeof(*b->values));
    b->text = calloc(cells, sizeof(*b->text));
    b->line = calloc(cap, sizeof(*b->line));
    b->label = calloc(cap, sizeof(*b->label));
    b->result = calloc(cap, sizeof(*b->result));
    b->arena_cap = 4096;
    b->arena = malloc(b->arena_cap);
    if (!b->values || !b->text || !b->line || !b->label || !b->result || !b->arena) {
        cli_batch_free(b);
        cli_error("out of memory");
        return CLI_EXIT_DATA;
    }
    return CLI_EXIT_OK;
}

void cli_batch_free(cli_batch *b) {
    free(b->values);
    free(b->text);
    free(b->line);
    free(b->label);
    free(b->result);
    free(b->arena);
    memset(b, 0, sizeof(*b));
}

void cli_batch_clear(cli_batch *b) {
    b->n = 0;
    b->arena_len = 0;
}

/* Parses a whole field as a finite decimal number. Leading blanks, hex
 * floats, "nan" and "inf" are refused: a CSV cell that is not plainly a
 * number is far more often a shifted column than a value someone meant. */
static int parse_number(const char *s, size_t len, double *out, int *nonfinite) {
    const char *p = s;
    char *end;
    double v;
    *nonfinite = 0;
    if (len == 0 || isspace((unsigned char)s[0]))
        return -1;
    if (*p == '+' || *p == '-')
        p++;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (end != s + len)
        return -1;
    if (!isfinite(v)) {
        *nonfinite = 1;
        return -1;
    }
    *out = v;
    return 0;
}

static int arena_put(cli_batch *b, const char *s, size_t len, size_t *off) {
    if (b->arena_cap - b->arena_len < len + 1) {
        size_t cap = b->arena_cap;
        char *a;
        while (cap - b->arena_len < len + 1)
            cap *= 2;
        a = realloc(b->arena, cap);
        if (a == NULL)
            return -1;
        b->arena = a;
        b->arena_cap = cap;
    }
    memcpy(b->arena + b->arena_len, s, len);
    b->arena[b->arena_len + len] = '\0';
    *off = b->arena_len;
    b->arena_len += len + 1;
    return 0;
}

int cli_batch_add(cli_batch *b, const cli_colmap *m, const cli_csv_record *rec,
                  const char *input_name, char *msg, size_t msg_size) {
    opecom_value *row = b->values + b->n * b->n_features;
    size_t *text = b->text + b->n * b->n_features;
    size_t arena_mark = b->arena_len;
    unsigned long long line = (unsigned long long)rec->line;
    uint32_t y = 0;
    uint32_t f;

    if (b->n == b->cap) {
        snprintf(msg, msg_size, "internal error: batch is full");
        return CLI_EXIT_DATA;
    }
    if (rec->n_fields != m->n_columns) {
        snprintf(msg, msg_size, "%s:%llu: %zu field%s, but the header has %zu", input_name, line,
                  rec->n_fields, rec->n_fields == 1 ? "" : "s", m->n_columns);
        return CLI_EXIT_DATA;
    }
    if (m->label != SIZE_MAX && cli_parse_label(rec->field[m->label], &y) != 0) {
        size_t len = rec->len[m->label];
        snprintf(msg, msg_size, "%s:%llu: column '%s': '%.*s%s' is not a label (TRUE/FALSE or 1/0)",
                 input_name, line, m->label_name, len > QUOTE_MAX ? QUOTE_MAX : (int)len,
                 rec->field[m->label], len > QUOTE_MAX ? "..." : "");
        return CLI_EXIT_DATA;
    }
    for (f = 0; f < m->n_features; f++) {
        const opecom_feature_info *fi = &m->info[f];
        const char *s = rec->field[m->column[f]];
        size_t len = rec->len[m->column[f]];
        if (fi->type == OPECOM_FEATURE_NUMERIC) {
            int nonfinite;
            if (parse_number(s, len, &row[f].num, &nonfinite) != 0) {
                int shown = len > QUOTE_MAX ? QUOTE_MAX : (int)len;
                snprintf(msg, msg_size, "%s:%llu: column '%s': '%.*s%s' is not a %snumber",
                         input_name, line, fi->name, shown, s, len > QUOTE_MAX ? "..." : "",
                         nonfinite ? "finite " : "");
                b->arena_len = arena_mark;
                return CLI_EXIT_DATA;
            }
            row[f].str = NULL;
            text[f] = SIZE_MAX;
        } else {
            row[f].num = 0.0;
            row[f].str = NULL;
            if (arena_put(b, s, len, &text[f]) != 0) {
                snprintf(msg, msg_size, "out of memory");
                b->arena_len = arena_mark;
                return CLI_EXIT_DATA;
            }
        }
    }
    b->line[b->n] = rec->line;
    b->label[b->n] = y;
    b->n++;
    return CLI_EXIT_OK;
}

void cli_batch_bind(cli_batch *b) {
    size_t i;
    for (i = 0; i < b->n * b->n_features; i++)
        b->values[i].str = b->text[i] == SIZE_MAX ? NULL : b->arena + b->text[i];
}

int cli_batch_predict(cli_batch *b, const opecom_model *model, opecom_workspace *ws,
                      const char *input_name, cli_on_error on_error, size_t *n_ok) {
    size_t i;
    size_t n_failed = 0;
    opecom_error err;
    opecom_status st;

    *n_ok = b->n;
    if (b->n == 0)
        return CLI_EXIT_OK;
    cli_batch_bind(b);
    memset(&err, 0, sizeof(err));
    err.row = -1;
    st = opecom_predict_batch(model, ws, b->values, b->n, b->result, &err);
    if (st == OPECOM_OK)
        return CLI_EXIT_OK;
    for (i = 0; i < b->n; i++) {
        unsigned long long line = (unsigned long long)b->line[i];
        opecom_result one;
        opecom_error e1;
        if (b->result[i].status == OPECOM_OK)
            continue;
        if (on_error == CLI_ON_ERROR_STOP) {
            *n_ok = i;
            cli_error("%s:%llu: %s", input_name, line,
                      err.row == (int64_t)i && err.message[0]
                          ? err.message
                          : opecom_strerror((int)b->result[i].status));
            return CLI_EXIT_DATA;
        }
        /* The batch call names only its first failing row: score each
         * failing row alone again to get its own message. */
        n_failed++;
        memset(&e1, 0, sizeof(e1));
        if (opecom_predict(model, ws, b->values + i * b->n_features, &one, &e1) != OPECOM_OK &&
            e1.message[0])
            cli_error("%s:%llu: %s", input_name, line, e1.message);
        else
            cli_error("%s:%llu: %s", input_name, line, opecom_strerror((int)b->result[i].status));
    }
    if (n_failed > 0)
        return CLI_EXIT_OK;
    /* No row is at fault: the call itself failed. */
    *n_ok = 0;
    cli_error("%s: cannot score rows: %s%s%s%s", input_name, opecom_strerror(st),
              err.message[0] ? " (" : "", err.message, err.message[0] ? ")" : "");
    return CLI_EXIT_DATA;
}
