/*
 * csvio.c - streaming CSV reader on top of libcsv.
 *
 * The input is read in 64 KiB chunks and fed to csv_parse one physical line
 * at a time, which is how we know the line a record starts on for error
 * messages (libcsv itself counts nothing). libcsv hands over fields one by
 * one; we collect a record's fields in one growing buffer and pass the whole
 * record to the caller, so memory is bounded by the longest record (fields
 * are capped at CLI_CSV_MAX_FIELD bytes, records at CLI_CSV_MAX_FIELDS
 * fields), whatever the size of the input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#include "cli.h"

#define CHUNK_SIZE (64u * 1024u)

/* libcsv's parser state between records (ROW_NOT_BEGUN in libcsv.c). The
 * state lives in the public struct csv_parser; we only compare it to 0. */
#define LIBCSV_ROW_NOT_BEGUN 0

typedef struct reader {
    struct csv_parser parser;
    const char *name;
    cli_csv_record_fn header_fn;
    cli_csv_record_fn row_fn;
    void *ctx;
    int result;        /* non-zero: stop, and return this */
    int seen_header;
    uint64_t line;     /* physical line being fed (1-based) */
    uint64_t rec_line; /* line the current record started on */
    /* the record being collected: field i is buf + off[i], len[i] bytes */
    char *buf;
    size_t buf_len, buf_cap;
    size_t *off;
    size_t *len;
    const char **ptr;
    size_t n_fields, fields_cap;
} reader;

/* libcsv grows its field buffer through this; refusing past the cap turns a
 * runaway field (say, an unterminated quote in a huge file) into an error
 * instead of unbounded memory. */
static void *capped_realloc(void *p, size_t size) {
    if (size > CLI_CSV_MAX_FIELD + 1024)
        return NULL;
    return realloc(p, size);
}

static int grow_fields(reader *r) {
    size_t cap = r->fields_cap ? r->fields_cap * 2 : 32;
    size_t *off = realloc(r->off, cap * sizeof(*off));
    size_t *len;
    const char **ptr;
    if (off == NULL)
        return -1;
    r->off = off;
    len = realloc(r->len, cap * sizeof(*len));
    if (len == NULL)
        return -1;
    r->len = len;
    ptr = realloc(r->ptr, cap * sizeof(*ptr));
    if (ptr == NULL)
        return -1;
    r->ptr = ptr;
    r->fields_cap = cap;
    return 0;
}

static void on_field(void *s, size_t len, void *data) {
    reader *r = data;
    if (r->result)
        return;
    if (r->n_fields == CLI_CSV_MAX_FIELDS) {
        cli_error("%s:%llu: more than %u fields in one record", r->name,
                  (unsigned long long)r->rec_line, CLI_CSV_MAX_FIELDS);
        r->result = CLI_EXIT_DATA;
        return;
    }
    if (r->n_fields == r->fields_cap && grow_fields(r) != 0)
        goto oom;
    if (r->buf_cap - r->buf_len < len + 1) {
        size_t cap = r->buf_cap ? r->buf_cap : 1024;
        char *buf;
        while (cap - r->buf_len < len + 1)
            cap *= 2;
        buf = realloc(r->buf, cap);
        if (buf == NULL)
            goto oom;
        r->buf = buf;
        r->buf_cap = cap;
    }
    if (len)
        memcpy(r->buf + r->buf_len, s, len);
    r->buf[r->buf_len + len] = '\0';
    r->off[r->n_fields] = r->buf_len;
    r->len[r->n_fields] = len;
    r->n_fields++;
    r->buf_len += len + 1;
    return;
oom:
    cli_error("%s:%llu: out of memory", r->name, (unsigned long long)r->rec_line);
    r->result = CLI_EXIT_DATA;
}

static void on_record(int term, void *data) {
    reader *r = data;
    cli_csv_record rec;
    size_t i;
    (void)term;
    if (r->result) {
        r->n_fields = 0;
        r->buf_len = 0;
        return;
    }
    for (i = 0; i < r->n_fields; i++)
        r->ptr[i] = r->buf + r->off[i];
    rec.n_fields = r->n_fields;
    rec.field = r->ptr;
    rec.len = r->len;
    rec.line = r->rec_line;
    if (!r->seen_header) {
        r->seen_header = 1;
        r->result = r->header_fn ? r->header_fn(r->ctx, &rec) : 0;
    } else {
        r->result = r->row_fn ? r->row_fn(r->ctx, &rec) : 0;
    }
    r->n_fields = 0;
    r->buf_len = 0;
}

/* Reports why csv_parse or csv_fini (at_end) stopped. */
static void parse_failed(reader *r, int at_end) {
    int e = csv_error(&r->parser);
    if (at_end && e == CSV_EPARSE)
        cli_error("%s:%llu: quoted field never closed (the input ends inside it)", r->name,
                  (unsigned long long)r->rec_line);
    else if (e == CSV_ENOMEM && r->parser.entry_size >= CLI_CSV_MAX_FIELD)
        cli_error("%s:%llu: field longer than %u bytes (unterminated quote?)", r->name,
                  (unsigned long long)r->line, CLI_CSV_MAX_FIELD);
    else if (e == CSV_EPARSE)
        cli_error("%s:%llu: malformed CSV (a quote inside an unquoted field, or text "
                  "after a closing quote)",
                  r->name, (unsigned long long)r->line);
    else
        cli_error("%s:%llu: %s", r->name, (unsigned long long)r->line, csv_strerror(e));
    r->result = CLI_EXIT_DATA;
}

/* Feeds one piece of input that lies within a single physical line (it may
 * end with that line's '\n'). */
static void feed(reader *r, const char *s, size_t n) {
    if (r->parser.pstate == LIBCSV_ROW_NOT_BEGUN)
        r->rec_line = r->line;
    if (csv_parse(&r->parser, s, n, on_field, on_record, r) != n && !r->result)
        parse_failed(r, 0);
}

int cli_csv_read(FILE *in, const char *name, cli_csv_record_fn header_fn,
                 cli_csv_record_fn row_fn, void *ctx) {
    reader r;
    char *chunk;
    int first = 1;

    memset(&r, 0, sizeof(r));
    r.name = name;
    r.header_fn = header_fn;
    r.row_fn = row_fn;
    r.ctx = ctx;
    r.line = 1;
    r.rec_line = 1;
    if (csv_init(&r.parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        cli_error("out of memory");
        return CLI_EXIT_DATA;
    }
    csv_set_realloc_func(&r.parser, capped_realloc);
    chunk = malloc(CHUNK_SIZE);
    if (chunk == NULL) {
        csv_free(&r.parser);
        cli_error("out of memory");
        return CLI_EXIT_DATA;
    }

    while (!r.result) {
        size_t n = fread(chunk, 1, CHUNK_SIZE, in);
        const char *p = chunk;
        const char *end = chunk + n;
        if (n == 0)
            break;
        if (first) {
            first = 0;
            if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
                p += 3; /* UTF-8 byte order mark, as Excel writes it */
        }
        while (p < end && !r.result) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl + 1 : end;
            feed(&r, p, (size_t)(stop - p));
            if (nl)
                r.line++;
            p = stop;
        }
    }
    if (!r.result && ferror(in)) {
        cli_error("%s: read error: %s", name, strerror(errno));
        r.result = CLI_EXIT_DATA;
    }
    if (!r.result) {
        if (r.parser.pstate == LIBCSV_ROW_NOT_BEGUN)
            r.rec_line = r.line;
        if (csv_fini(&r.parser, on_field, on_record, &r) != 0 && !r.result)
            parse_failed(&r, 1);
    }
    if (!r.result && !r.seen_header) {
        cli_error("%s: empty input: no header row", name);
        r.result = CLI_EXIT_DATA;
    }
    csv_free(&r.parser);
    free(chunk);
    free(r.buf);
    free(r.off);
    free(r.len);
    free(r.ptr);
    return r.result;
}

int32_t cli_csv_find(const cli_csv_record *header, const char *name) {
    size_t i;
    for (i = 0; i < header->n_fields; i++) {
        if (strcmp(header->field[i], name) == 0)
            return (int32_t)i;
    }
    return -1;
}
