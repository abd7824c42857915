/*
 * server_backends.h - runs a server test binary once per storage backend,
 * and reads the database a server wrote, the same way on both.
 *
 * Each pass is one cmocka group, named after its backend:
 *
 *   for (int b = 0; b < SB_COUNT; b++) {
 *       int rc = sb_begin(b);        0 run the pass; 1 skip it (says why);
 *       if (rc == 0)                 -1 could not start (counts as failed)
 *           failed += cmocka_run_group_tests_name(sb_name(), tests, ...);
 *       failed += sb_end(rc);        prints the pass's time
 *   }
 *
 * "sqlite": sh_start gives the server the scratch file named by its `db`
 * argument, as before. "mariadb": sb_begin starts a private mariadbd
 * (mariadb_harness.h), and sh_start gives each `db` name a database of its
 * own, made the first time the name is started, so a restart with the same
 * name finds the same database (and replays its event log) while tests
 * stay independent. Without mariadb-server the MariaDB pass is skipped
 * with the reason.
 *
 * sb_query runs one SELECT on a server's database and returns every cell
 * as text with its kind: SQLite through a read-only connection, MariaDB
 * through the harness's root connection (autocommit, so each statement
 * sees the latest commits). The same SQL serves both where the schema
 * allows; floating values are written "%.17g" on both, so a test can
 * compare them. sb_only_sqlite skips a test whose subject only SQLite has
 * (its file, its pragmas).
 *
 * Functions are static and marked unused, like server_harness.h.
 */
#ifndef OPECOM_SERVER_BACKENDS_H
#define OPECOM_SERVER_BACKENDS_H

#include "server_harness.h" /* first: it sets _XOPEN_SOURCE */

#include <ctype.h>

#include <sqlite3.h>

#include "mariadb_harness.h"

#define SB_UNUSED __attribute__((unused))
#define SB_MAX_ROWS 10000 /* a query's answer is read whole: bounded */
#define SB_MAX_COLS 64

enum { SB_SQLITE, SB_MARIADB, SB_COUNT };

static int sb_backend;        /* the pass running */
static mh sb_maria;           /* its mariadbd, in the MariaDB pass */
static int64_t sb_pass_start; /* sh_ms() when the pass began */

SB_UNUSED static const char *sb_name(void) {
    return sb_backend == SB_MARIADB ? "mariadb" : "sqlite";
}

/* ===================================================================== *
 * Databases: a server's `db` name to its --db argument
 * ===================================================================== */

/* The MariaDB database of `db`: its letters and digits, the rest '_'
 * ("restart.db" -> "restart_db"). */
static void sb_maria_name(const char *db, char *out, size_t size) {
    size_t i;
    for (i = 0; db[i] != '\0' && i + 1 < size && i < 60; i++)
        out[i] = isalnum((unsigned char)db[i]) ? db[i] : '_';
    out[i] = '\0';
}

/* sh_db_target in the MariaDB pass: the URL of db's database, made when
 * the name is new. */
static int sb_maria_target(const char *db, char *target, size_t size) {
    char name[64];
    sb_maria_name(db, name, sizeof name);
    if (mysql_select_db(sb_maria.root, name) == 0) /* started before: the same one */
        return snprintf(target, size, "mariadb://%s:%s@localhost/%s?socket=%s", MH_USER,
                        MH_PASSWORD_URL, name, sb_maria.sock) < (int)size
                   ? 0
                   : -1;
    return mh_new_db(&sb_maria, name, 0, target, size);
}

/* ===================================================================== *
 * Passes
 * ===================================================================== */

/* Starts the pass of `backend`. @return 0 run it; 1 skip it (printed
 * why); -1 its database did not start (printed why). */
SB_UNUSED static int sb_begin(int backend) {
    sb_backend = backend;
    sb_pass_start = sh_ms();
    sh_db_target = NULL;
    if (backend != SB_MARIADB) {
        printf("# sqlite pass: each server on a file in the scratch folder\n");
        return 0;
    }
    int rc = mh_start(&sb_maria, 0);
    if (rc == 1) {
        printf("# mariadb pass skipped: %s\n", sb_maria.why);
    } else if (rc != 0) {
        fprintf(stderr, "# mariadb pass: mariadbd did not start (see above)\n");
    } else {
        printf("# mariadb pass: each server on a database of mariadbd at %s\n", sb_maria.sock);
        sh_db_target = sb_maria_target;
    }
    fflush(stdout);
    return rc;
}

/* Ends the pass sb_begin answered `begun`: stops its database, prints its
 * time. @return 1 when the pass could not start (a failure), else 0. */
SB_UNUSED static int sb_end(int begun) {
    sh_db_target = NULL;
    if (sb_backend == SB_MARIADB && begun == 0)
        mh_stop(&sb_maria);
    if (begun == 0)
        printf("# %s pass: %.1f s\n", sb_name(), (double)(sh_ms() - sb_pass_start) / 1000);
    return begun < 0;
}

/* Skips the current test in the MariaDB pass: `what` is SQLite's own. */
SB_UNUSED static void sb_only_sqlite(const char *what) {
    if (sb_backend == SB_SQLITE)
        return;
    print_message("# SQLite only (%s): skipped on %s\n", what, sb_name());
    skip();
}

/* ===================================================================== *
 * Queries
 * ===================================================================== */

enum { SB_NULL, SB_INT, SB_FLOAT, SB_TEXT };

typedef struct sb_rows {
    int n_cols, n_rows;
    char names[SB_MAX_COLS][64];
    char **cell; /* n_rows * n_cols texts, row by row; NULL for SQL NULL */
    int *kind;   /* SB_NULL, SB_INT, SB_FLOAT or SB_TEXT, likewise */
} sb_rows;

SB_UNUSED static void sb_rows_free(sb_rows *r) {
    for (int i = 0; i < r->n_rows * r->n_cols; i++)
        free(r->cell[i]);
    free(r->cell);
    free(r->kind);
    memset(r, 0, sizeof *r);
}

/* Makes room for one more row. */
static void sb_grow(sb_rows *r) {
    size_t n = (size_t)(r->n_rows + 1) * (size_t)r->n_cols;
    if (r->n_rows >= SB_MAX_ROWS)
        fail_msg("a query answered more than %d rows", SB_MAX_ROWS);
    r->cell = realloc(r->cell, n * sizeof *r->cell);
    r->kind = realloc(r->kind, n * sizeof *r->kind);
    assert_non_null(r->cell);
    assert_non_null(r->kind);
    r->n_rows++;
}

/* Sets cell k of the last row (text NULL: SQL NULL; a float is written
 * again "%.17g", so both backends give the same text). */
static void sb_set(sb_rows *r, int k, int kind, const char *text) {
    size_t i = (size_t)(r->n_rows - 1) * (size_t)r->n_cols + (size_t)k;
    char num[64];
    if (text == NULL) {
        kind = SB_NULL;
    } else if (kind == SB_FLOAT) {
        snprintf(num, sizeof num, "%.17g", strtod(text, NULL));
        text = num;
    }
    r->kind[i] = kind;
    r->cell[i] = text != NULL ? strdup(text) : NULL;
    if (text != NULL)
        assert_non_null(r->cell[i]);
}

static void sb_set_cols(sb_rows *r, int n) {
    if (n <= 0 || n > SB_MAX_COLS)
        fail_msg("a query answered %d columns (1 to %d expected)", n, SB_MAX_COLS);
    r->n_cols = n;
}

static sb_rows sb_query_sqlite(const sh_server *sv, const char *sql) {
    sb_rows r;
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    memset(&r, 0, sizeof r);
    if (sqlite3_open_v2(sv->db_path, &c, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sv->db_path, sqlite3_errmsg(c));
    sqlite3_busy_timeout(c, 5000);
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("sqlite: %s: %s", sql, sqlite3_errmsg(c));
    sb_set_cols(&r, sqlite3_column_count(st));
    for (int k = 0; k < r.n_cols; k++)
        snprintf(r.names[k], sizeof r.names[k], "%s", sqlite3_column_name(st, k));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sb_grow(&r);
        for (int k = 0; k < r.n_cols; k++) {
            int t = sqlite3_column_type(st, k);
            sb_set(&r, k,
                   t == SQLITE_INTEGER ? SB_INT : t == SQLITE_FLOAT ? SB_FLOAT : SB_TEXT,
                   (const char *)sqlite3_column_text(st, k));
        }
    }
    if (rc != SQLITE_DONE)
        fail_msg("sqlite: %s: %s", sql, sqlite3_errmsg(c));
    sqlite3_finalize(st);
    sqlite3_close(c);
    return r;
}

/* The kind of a MariaDB column: numbers without decimals are integers
 * (SUM of an integer column is a DECIMAL with none). */
static int sb_maria_kind(const MYSQL_FIELD *f) {
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
        return SB_INT;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
        return f->decimals == 0 ? SB_INT : SB_FLOAT;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return SB_FLOAT;
    default:
        return SB_TEXT;
    }
}

static sb_rows sb_query_maria(const sh_server *sv, const char *sql) {
    sb_rows r;
    char name[64];
    memset(&r, 0, sizeof r);
    sb_maria_name(sv->db, name, sizeof name);
    if (mysql_select_db(sb_maria.root, name) != 0 || mysql_query(sb_maria.root, sql) != 0)
        fail_msg("mariadb (%s): %s: %s", name, sql, mysql_error(sb_maria.root));
    MYSQL_RES *res = mysql_store_result(sb_maria.root);
    if (res == NULL)
        fail_msg("mariadb (%s): %s: no result: %s", name, sql, mysql_error(sb_maria.root));
    MYSQL_FIELD *f = mysql_fetch_fields(res);
    sb_set_cols(&r, (int)mysql_num_fields(res));
    for (int k = 0; k < r.n_cols; k++)
        snprintf(r.names[k], sizeof r.names[k], "%s", f[k].name);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        sb_grow(&r);
        for (int k = 0; k < r.n_cols; k++)
            sb_set(&r, k, sb_maria_kind(&f[k]), row[k]);
    }
    mysql_free_result(res);
    return r;
}

/* Runs one SELECT on sv's database; fails the test on an error. */
SB_UNUSED static sb_rows sb_query(const sh_server *sv, const char *sql) {
    return sb_backend == SB_MARIADB ? sb_query_maria(sv, sql) : sb_query_sqlite(sv, sql);
}

/* The first cell of the first row, which must be there and not NULL. */
static const char *sb_first(const sb_rows *r, const char *sql) {
    if (r->n_rows < 1 || r->cell[0] == NULL)
        fail_msg("%s: %s", sql, r->n_rows < 1 ? "no row" : "NULL");
    return r->cell[0];
}

SB_UNUSED static int64_t sb_int(const sh_server *sv, const char *sql) {
    sb_rows r = sb_query(sv, sql);
    const char *t = sb_first(&r, sql);
    int64_t v = r.kind[0] == SB_FLOAT ? (int64_t)strtod(t, NULL) : strtoll(t, NULL, 10);
    sb_rows_free(&r);
    return v;
}

SB_UNUSED static double sb_double(const sh_server *sv, const char *sql) {
    sb_rows r = sb_query(sv, sql);
    double v = strtod(sb_first(&r, sql), NULL);
    sb_rows_free(&r);
    return v;
}

/* Writes the answer to sql as CSV with a header line (quoted where a
 * text needs it; NULL as an empty field). */
SB_UNUSED static void sb_write_csv(const sh_server *sv, const char *sql, const char *path) {
    sb_rows r = sb_query(sv, sql);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = -1; i < r.n_rows; i++)
        for (int k = 0; k < r.n_cols; k++) {
            const char *t = i < 0 ? r.names[k] : r.cell[i * r.n_cols + k];
            if (t != NULL && strpbrk(t, ",\"\n") != NULL) {
                fputc('"', f);
                for (; *t != '\0'; t++) {
                    if (*t == '"')
                        fputc('"', f);
                    fputc(*t, f);
                }
                fputc('"', f);
            } else {
                fputs(t != NULL ? t : "", f);
            }
            fputc(k + 1 < r.n_cols ? ',' : '\n', f);
        }
    assert_int_equal(fclose(f), 0);
    sb_rows_free(&r);
}

#endif
