/*
 * store_mariadb.c - the MariaDB backend of the store (store.h), through
 * MariaDB Connector/C: the database several replicas of opecom-server
 * share.
 *
 * Target (what follows "mariadb://"):
 *   user[:password]@host[:port]/database
 *   user[:password]@localhost/database?socket=/path/to.sock
 * User, password and socket path are percent-decoded. A message about a
 * malformed target names the part at fault and quotes none of it (a
 * password typed with an unencoded '@' or '/' could show up); later
 * messages name user@host/database, never the password.
 *
 * This file: the target, connections and their pool, the schema, opening
 * and closing. store_mariadb_write.c writes, store_mariadb_read.c reads;
 * store_mariadb.h is what they share.
 *
 * Connections. The writer thread owns one connection and its prepared
 * statements; reads take one from a pool (at most POOL_MAX open, a reader
 * waits at most POOL_WAIT_MS for one). Every connection runs in strict
 * sql_mode and READ COMMITTED, so each read sees every commit made before
 * it began: a replica polling the log sees the other replicas' commits.
 * Lost connections are replaced here (not by MYSQL_OPT_RECONNECT,
 * which would silently drop the session's settings and transaction): a
 * write whose connection was lost before COMMIT was sent is retried once
 * at once on a new connection (the server rolled back what the lost one
 * had begun); otherwise the next call reconnects. A read retries once
 * when it had delivered nothing yet.
 *
 * The log. append numbers its transaction with UPDATE log_head SET seq =
 * LAST_INSERT_ID(seq + 1): the row lock is held until COMMIT, so commits
 * of every replica are numbered in commit order, and a reader never sees
 * a number before every smaller one is committed (store.h).
 *
 * Text columns use utf8mb4_nopad_bin, MariaDB's collation that compares
 * bytes as SQLite does: ids that differ in case or in trailing spaces are
 * different sessions, as they are with SQLite.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_mariadb.h"

#define POOL_WAIT_MS 5000    /* a reader's wait for a pooled connection */
#define CONNECT_TIMEOUT_S 5
#define IO_TIMEOUT_S 30      /* one read or write on the socket */
#define LOCK_WAIT_S 20       /* < IO_TIMEOUT_S: a lock wait ends with its own error */
#define SCHEMA_LOCK_S 30     /* replicas starting together create the schema in turn */

static const char table_options[] =
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin";
static const char id_type[] = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY";

/* ===================================================================== *
 * Helpers
 * ===================================================================== */

static void wipe(void *p, size_t n) {
    volatile unsigned char *b = p;
    while (n--)
        *b++ = 0;
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_failed;

/* mysql_init would do it on first use, but not safely from two threads. */
static void lib_init(void) {
    lib_failed = mysql_library_init(0, NULL, NULL) != 0;
}

/* ===================================================================== *
 * The target
 * ===================================================================== */

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out. @return 0, -1 bad escape or %00,
 * -2 too long. */
static int pct_decode(const char *s, size_t n, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= size)
            return -2;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

static int url_fail(char *err, const char *what) {
    set_err(err, "mariadb URL: %s (expected user:password@host[:port]/database or"
                 " user:password@localhost/database?socket=/path)",
            what);
    return -1;
}

static int parse_target(const char *s, md_target *t, char *err) {
    memset(t, 0, sizeof *t);
    const char *at = strchr(s, '@');
    if (at == NULL)
        return url_fail(err, "no user: user:password@ is missing");
    /* user and password */
    if (strcspn(s, "/?#") < (size_t)(at - s))
        return url_fail(err, "user or password: '/', '?', '#' and '@' in them must be"
                             " percent-encoded");
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *uend = colon ? colon : at;
    if (uend == s)
        return url_fail(err, "user: empty");
    int rc = pct_decode(s, (size_t)(uend - s), t->user, sizeof t->user);
    if (rc != 0)
        return url_fail(err, rc == -1 ? "user: bad percent-encoding" : "user: too long");
    if (colon) {
        rc = pct_decode(colon + 1, (size_t)(at - colon - 1), t->password, sizeof t->password);
        if (rc != 0)
            return url_fail(err, rc == -1 ? "password: bad percent-encoding ('%' must be"
                                            " followed by two hex digits, not 00)"
                                          : "password: longer than 255 bytes");
    }
    /* host: a name, an IPv4 address or [IPv6] */
    const char *h = at + 1, *p;
    size_t hn;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL)
            return url_fail(err, "host: '[' without ']'");
        h++;
        hn = (size_t)(close - h);
        if (hn == 0 || strspn(h, "0123456789abcdefABCDEF:.") != hn)
            return url_fail(err, "host: not an IPv6 address inside [ ]");
        p = close + 1;
    } else {
        hn = strcspn(h, ":/?#");
        if (hn == 0)
            return url_fail(err, "host: empty");
        if (strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != hn)
            return url_fail(err, "host: only letters, digits, '.', '-' and '_' (a password"
                                 " with '@' must be percent-encoded)");
        p = h + hn;
    }
    if (hn >= sizeof t->host)
        return url_fail(err, "host: too long");
    memcpy(t->host, h, hn);
    t->host[hn] = '\0';
    /* port */
    if (*p == ':') {
        p++;
        unsigned long port = 0;
        size_t nd = strspn(p, "0123456789");
        for (size_t i = 0; i < nd && port <= 65535; i++)
            port = port * 10 + (unsigned long)(p[i] - '0');
        if (nd == 0 || port == 0 || port > 65535 || (p[nd] != '/' && p[nd] != '\0'))
            return url_fail(err, "port: not a number 1..65535");
        t->port = (unsigned)port;
        p += nd;
    }
    /* database */
    if (*p != '/')
        return url_fail(err, "database: '/database' after the host is missing");
    p++;
    size_t dn = strcspn(p, "?#");
    if (dn == 0)
        return url_fail(err, "database: empty name");
    if (dn >= sizeof t->database ||
        strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") != dn)
        return url_fail(err, "database: a name of 1..64 letters, digits, '_' or '$'");
    memcpy(t->database, p, dn);
    p += dn;
    /* parameters */
    if (*p == '#')
        return url_fail(err, "a '#' fragment is not allowed");
    while (*p == '?' || *p == '&') {
        p++;
        size_t pn = strcspn(p, "&#");
        if (pn > 7 && strncmp(p, "socket=", 7) == 0) {
            if (t->socket[0])
                return url_fail(err, "socket: given twice");
            rc = pct_decode(p + 7, pn - 7, t->socket, sizeof t->socket);
            if (rc != 0)
                return url_fail(err, rc == -1 ? "socket: bad percent-encoding"
                                              : "socket: path longer than 107 bytes");
            if (t->socket[0] != '/')
                return url_fail(err, "socket: not an absolute path");
        } else if (pn == 7 && strncmp(p, "socket=", 7) == 0) {
            return url_fail(err, "socket: empty path");
        } else {
            return url_fail(err, "unknown parameter (socket=/path is the only one)");
        }
        p += pn;
    }
    if (*p != '\0')
        return url_fail(err, "a '#' fragment is not allowed");
    if (t->socket[0] && strcmp(t->host, "localhost") != 0)
        return url_fail(err, "socket: only with host localhost");
    if (t->socket[0] && t->port)
        return url_fail(err, "socket: not together with a port");
    return 0;
}

/* ===================================================================== *
 * Connections
 * ===================================================================== */

static int exec_sql(MYSQL *c, const char *sql, const md_target *t, char *err) {
    if (mysql_real_query(c, sql, (unsigned long)strlen(sql)) != 0) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        return -1;
    }
    MYSQL_RES *r = mysql_store_result(c); /* a SET or DDL has none */
    mysql_free_result(r);
    return 0;
}

/* A new connection with this file's session settings, or NULL. */
MYSQL *mdb_connect(const md_target *t, char *err) {
    pthread_once(&lib_once, lib_init);
    MYSQL *c = lib_failed ? NULL : mysql_init(NULL);
    if (c == NULL) {
        set_err(err, "mariadb: cannot start Connector/C (out of memory)");
        return NULL;
    }
    unsigned connect_s = CONNECT_TIMEOUT_S, io_s = IO_TIMEOUT_S, off = 0;
    my_bool on = 1;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &io_s);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(c, MYSQL_REPORT_DATA_TRUNCATION, &on);
    mysql_options(c, MYSQL_OPT_LOCAL_INFILE, &off);
    if (!mysql_real_connect(c, t->host, t->user, t->password, t->database, t->port,
                            t->socket[0] ? t->socket : NULL, 0)) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        mysql_close(c);
        return NULL;
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
             "NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY',"
             " SESSION innodb_lock_wait_timeout = %d, SESSION net_write_timeout = %d,"
             " SESSION net_read_timeout = %d",
             LOCK_WAIT_S, IO_TIMEOUT_S, IO_TIMEOUT_S);
    if (exec_sql(c, sql, t, err) != 0 ||
        exec_sql(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", t, err) != 0) {
        mysql_close(c);
        return NULL;
    }
    return c;
}

MYSQL *mdb_reader_get(md_db *d, char *err) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += POOL_WAIT_MS / 1000;
    MYSQL *c = NULL;
    pthread_mutex_lock(&d->pool_mu);
    while (d->n_idle == 0 && d->n_open >= POOL_MAX)
        if (pthread_cond_timedwait(&d->pool_cv, &d->pool_mu, &until) != 0 && d->n_idle == 0 &&
            d->n_open >= POOL_MAX) {
            pthread_mutex_unlock(&d->pool_mu);
            set_err(err, "mariadb: all %d read connections stayed busy for %d ms", POOL_MAX,
                    POOL_WAIT_MS);
            return NULL;
        }
    if (d->n_idle > 0) {
        c = d->idle[--d->n_idle];
        pthread_mutex_unlock(&d->pool_mu);
        return c;
    }
    d->n_open++;
    pthread_mutex_unlock(&d->pool_mu);
    c = mdb_connect(&d->t, err);
    if (c == NULL) {
        pthread_mutex_lock(&d->pool_mu);
        d->n_open--;
        pthread_cond_signal(&d->pool_cv);
        pthread_mutex_unlock(&d->pool_mu);
    }
    return c;
}

/* Gives a connection back; closes it (c may be NULL: closed) when it is not
 * to be used again. */
void mdb_reader_put(md_db *d, MYSQL *c, int keep) {
    pthread_mutex_lock(&d->pool_mu);
    if (keep)
        d->idle[d->n_idle++] = c;
    else
        d->n_open--;
    pthread_cond_signal(&d->pool_cv);
    pthread_mutex_unlock(&d->pool_mu);
    if (!keep && c != NULL)
        mysql_close(c);
}

/* ===================================================================== *
 * Opening: the schema
 * ===================================================================== */

/* One schema statement: @ID@ replaced, table options added to a table. */
static int schema_statement(MYSQL *c, const md_target *t, const char *s, size_t n, char *err) {
    size_t cap = 2 * n + sizeof table_options + 64, o = 0;
    char *sql = malloc(cap);
    if (sql == NULL) {
        set_err(err, "mariadb: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n;) {
        if (n - i >= 4 && memcmp(s + i, "@ID@", 4) == 0) {
            memcpy(sql + o, id_type, sizeof id_type - 1);
            o += sizeof id_type - 1;
            i += 4;
        } else {
            sql[o++] = s[i++];
        }
    }
    sql[o] = '\0';
    if (strncmp(sql, "CREATE TABLE", 12) == 0)
        memcpy(sql + o, table_options, sizeof table_options);
    int rc = exec_sql(c, sql, t, err);
    free(sql);
    return rc;
}

/* Every statement of srv_schema_sql; one ends with ';' at a line end. */
static int create_schema(MYSQL *c, const md_target *t, char *err) {
    const char *s = srv_schema_sql;
    while (*s) {
        s += strspn(s, " \t\r\n");
        const char *end = s;
        while (*end && !(end[0] == ';' && (end[1] == '\n' || end[1] == '\0')))
            end++;
        if (end > s && schema_statement(c, t, s, (size_t)(end - s), err) != 0)
            return -1;
        s = *end ? end + 1 : end;
    }
    return 0;
}

/* The first column of the first row as an integer: 1, 0 no row, -1 error. */
static int query_int(MYSQL *c, const md_target *t, const char *sql, long long *v, char *err) {
    if (mysql_real_query(c, sql, (unsigned long)strlen(sql)) != 0) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        return -1;
    }
    MYSQL_RES *r = mysql_store_result(c);
    if (r == NULL) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    int found = row != NULL && row[0] != NULL;
    if (found)
        *v = strtoll(row[0], NULL, 10);
    mysql_free_result(r);
    return found;
}

/* Under a named lock, so replicas starting together do it in turn. */
static int setup_schema(MYSQL *c, const md_target *t, char *err) {
    char sql[256];
    long long got = 0, version = 0;
    snprintf(sql, sizeof sql, "SELECT GET_LOCK(CONCAT('opecom-schema.', DATABASE()), %d)",
             SCHEMA_LOCK_S);
    int rc = query_int(c, t, sql, &got, err);
    if (rc <= 0 || got != 1) {
        if (rc >= 0)
            set_err(err, "mariadb %s@%s/%s: another server held the schema lock for %d s",
                    t->user, t->host, t->database, SCHEMA_LOCK_S);
        return -1;
    }
    int status = -1;
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS schema_version (one INTEGER NOT NULL PRIMARY KEY"
             " CHECK (one = 1), version INTEGER NOT NULL)%s",
             table_options);
    if (exec_sql(c, sql, t, err) != 0)
        goto done;
    rc = query_int(c, t, "SELECT version FROM schema_version WHERE one = 1", &version, err);
    if (rc < 0)
        goto done;
    if (rc == 1 && version > SRV_STORE_SCHEMA_VERSION) {
        set_err(err, "mariadb %s@%s/%s: schema version %lld is newer than this server's (%d):"
                     " run a newer opecom-server",
                t->user, t->host, t->database, version, SRV_STORE_SCHEMA_VERSION);
        goto done;
    }
    if (rc == 1 && version < SRV_STORE_SCHEMA_VERSION) {
        set_err(err, "mariadb %s@%s/%s: schema version %lld cannot be upgraded to %d"
                     " (MariaDB databases start at version %d)",
                t->user, t->host, t->database, version, SRV_STORE_SCHEMA_VERSION,
                SRV_STORE_SCHEMA_VERSION);
        goto done;
    }
    if (rc == 0) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_version (one, version) VALUES (1, %d)",
                 SRV_STORE_SCHEMA_VERSION);
        if (create_schema(c, t, err) != 0 || exec_sql(c, sql, t, err) != 0)
            goto done;
    }
    if (exec_sql(c, "INSERT INTO log_head (one, seq) VALUES (1, 0)"
                    " ON DUPLICATE KEY UPDATE seq = seq", t, err) != 0)
        goto done;
    /* a table made by hand in another engine would not be transactional */
    if (mysql_query(c, "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES"
                       " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                       " AND TABLE_NAME IN ('schema_version', 'log_head', 'sessions',"
                       " 'page_views', 'purchases', 'session_features')"
                       " AND ENGINE <> 'InnoDB'") != 0) {
        set_err(err, "mariadb: checking the tables' engine: %s", mysql_error(c));
        goto done;
    }
    MYSQL_RES *r = mysql_store_result(c);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    if (r == NULL || row != NULL) {
        set_err(err, "mariadb %s@%s/%s: table %s uses the %s engine, not InnoDB",
                t->user, t->host, t->database, row ? row[0] : "?", row ? row[1] : "?");
        mysql_free_result(r);
        goto done;
    }
    mysql_free_result(r);
    status = 0;
done:
    exec_sql(c, "DO RELEASE_LOCK(CONCAT('opecom-schema.', DATABASE()))", t, NULL);
    return status;
}

/* Commits are durable only with these; the server runs anyway, told. */
static void check_durability(MYSQL *c, const md_target *t) {
    long long flush = 1, log_bin = 0, sync_binlog = 1;
    if (query_int(c, t, "SELECT @@innodb_flush_log_at_trx_commit", &flush, NULL) == 1 &&
        flush != 1)
        fprintf(stderr, "opecom-server: warning: mariadb innodb_flush_log_at_trx_commit is %lld,"
                        " not 1: an acknowledged event can be lost in a crash\n", flush);
    if (query_int(c, t, "SELECT @@log_bin", &log_bin, NULL) == 1 && log_bin &&
        query_int(c, t, "SELECT @@sync_binlog", &sync_binlog, NULL) == 1 && sync_binlog != 1)
        fprintf(stderr, "opecom-server: warning: mariadb sync_binlog is %lld, not 1: the binary"
                        " log can lose acknowledged events in a crash\n", sync_binlog);
}

/* ===================================================================== *
 * The backend
 * ===================================================================== */

static void md_close(void *db) {
    md_db *d = db;
    if (d == NULL)
        return;
    mdb_writer_drop(d);
    for (int i = 0; i < d->n_idle; i++)
        mysql_close(d->idle[i]);
    pthread_mutex_destroy(&d->pool_mu);
    pthread_cond_destroy(&d->pool_cv);
    wipe(d->t.password, sizeof d->t.password);
    free(d);
}

static int md_open(const char *target, void **db, char *err) {
    *db = NULL;
    md_db *d = calloc(1, sizeof *d);
    if (d == NULL) {
        set_err(err, "mariadb: out of memory");
        return -1;
    }
    pthread_mutex_init(&d->pool_mu, NULL);
    pthread_cond_init(&d->pool_cv, NULL);
    if (parse_target(target, &d->t, err) != 0) {
        md_close(d);
        return -1;
    }
    MYSQL *c = mdb_connect(&d->t, err);
    if (c == NULL || setup_schema(c, &d->t, err) != 0) {
        if (c)
            mysql_close(c);
        md_close(d);
        return -1;
    }
    check_durability(c, &d->t);
    mysql_close(c);
    if (mdb_writer_ready(d, err) != 0) {
        md_close(d);
        return -1;
    }
    *db = d;
    return 0;
}

const srv_store_backend srv_store_mariadb = {
    .scheme = "mariadb",
    .open = md_open,
    .close = md_close,
    .append = mdb_append,
    .put_closed = mdb_put_closed,
    .read_log = mdb_read_log,
    .variant_counts = mdb_variant_counts,
    .closed_session = mdb_closed_session,
    .head = mdb_head,
};
