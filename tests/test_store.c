/*
 * test_store.c - the contract of a storage backend (examples/server/store.h),
 * run against each backend: SQLite on a scratch file, MariaDB on a real
 * mariadbd that tests/mariadb_harness.h starts (the MariaDB cases skip,
 * saying why, when Debian's mariadb-server is not installed).
 *
 * Every case takes its backend from cmocka's state and a fresh, empty
 * database from it, so the same function checks both. A few cases only
 * make sense for MariaDB (the URL, lost connections, the tables' engine)
 * and are listed for it alone.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "mariadb_harness.h"
#include "server.h"
#include "store.h"
#include "store_mariadb.h" /* POOL_MAX */
#include "testutil.h"

#define CONCURRENT_APPENDS 200 /* per writer thread */
#define CONCURRENT_DEADLINE_MS 40000
#define MANY_COMMITS 600
#define READ_THREADS (POOL_MAX + 8) /* more than the MariaDB pool holds */
#define READS_PER_THREAD 25

/* ===================================================================== *
 * Backends under test
 * ===================================================================== */

typedef struct backend {
    const char *name;
    const srv_store_backend *be;
    int available;
    char why[256];
    int n_db;
    /* a fresh empty database: its target (what follows the scheme) */
    int (*fresh)(struct backend *b, char *target, size_t size);
    /* sets the stored schema version behind the backend's back */
    int (*set_version)(struct backend *b, const char *target, int version);
} backend;

static mh maria;

static int sqlite_fresh(backend *b, char *target, size_t size) {
    (void)b;
    snprintf(target, size, "%s", tu_tmp_path("store-sqlite"));
    return 0;
}

static int sqlite_set_version(backend *b, const char *target, int version) {
    (void)b;
    sqlite3 *c = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    int rc = sqlite3_open(target, &c) == SQLITE_OK &&
                     sqlite3_exec(c, sql, NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    sqlite3_close(c);
    return rc;
}

static int maria_fresh(backend *b, char *target, size_t size) {
    char name[32], url[1024];
    snprintf(name, sizeof name, "t%d", ++b->n_db);
    if (mh_new_db(&maria, name, 0, url, sizeof url) != 0)
        return -1;
    snprintf(target, size, "%s", url + strlen("mariadb://"));
    return 0;
}

static int maria_set_version(backend *b, const char *target, int version) {
    (void)b;
    /* the database name sits between the first '/' and the '?' */
    const char *db = strchr(target, '/') + 1;
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE `%.*s`.schema_version SET version = %d",
             (int)strcspn(db, "?"), db, version);
    return mh_exec(&maria, sql);
}

static backend sqlite_be = {"sqlite", &srv_store_sqlite, 1, "", 0, sqlite_fresh,
                            sqlite_set_version};
static backend maria_be = {"mariadb", &srv_store_mariadb, 0, "", 0, maria_fresh,
                           maria_set_version};

/* Skips when the backend is not there; opens a fresh database. */
static void *open_fresh(backend *b, char *target, size_t size) {
    if (!b->available) {
        print_message("# %s: %s\n", b->name, b->why);
        skip();
    }
    assert_int_equal(b->fresh(b, target, size), 0);
    char err[SRV_STORE_ERR] = "";
    void *db = NULL;
    if (b->be->open(target, &db, err) != 0)
        fail_msg("%s: open: %s", b->name, err);
    assert_non_null(db);
    return db;
}

static void *open_again(backend *b, const char *target) {
    char err[SRV_STORE_ERR] = "";
    void *db = NULL;
    if (b->be->open(target, &db, err) != 0)
        fail_msg("%s: open: %s", b->name, err);
    return db;
}

/* ===================================================================== *
 * Events and the log reader
 * ===================================================================== */

static srv_event pageview(const char *variant, const char *visitor, const char *session,
                          int64_t ts, int page_type, const char *page_id, double duration,
                          const char *os) {
    srv_event e;
    memset(&e, 0, sizeof e);
    e.type = SRV_PAGEVIEW;
    e.variant = variant;
    snprintf(e.visitor_id, sizeof e.visitor_id, "%s", visitor);
    snprintf(e.session_id, sizeof e.session_id, "%s", session);
    e.ts = ts;
    e.page_type = page_type;
    snprintf(e.page_id, sizeof e.page_id, "%s", page_id);
    e.duration = duration;
    snprintf(e.os, sizeof e.os, "%s", os);
    snprintf(e.browser, sizeof e.browser, "Firefox");
    return e;
}

static srv_event purchase(const char *variant, const char *visitor, const char *session,
                          int64_t ts, double revenue) {
    srv_event e;
    memset(&e, 0, sizeof e);
    e.type = SRV_PURCHASE;
    e.variant = variant;
    snprintf(e.visitor_id, sizeof e.visitor_id, "%s", visitor);
    snprintf(e.session_id, sizeof e.session_id, "%s", session);
    e.ts = ts;
    e.revenue = revenue;
    return e;
}

static int64_t append(backend *b, void *db, const srv_event *ev, size_t n) {
    srv_store_span span = {ev, n};
    int64_t seq = -1;
    char err[SRV_STORE_ERR] = "";
    if (b->be->append(db, &span, 1, &seq, err) != 0)
        fail_msg("%s: append: %s", b->name, err);
    return seq;
}

/* What read_log delivered. */
typedef struct got {
    srv_event *ev;
    size_t n, cap;
    int calls;
    int64_t chunk_seq[64]; /* the seq of each call */
    size_t max_chunk;
    int stop_after;        /* > 0: fn asks to stop after that many calls */
} got;

static int collect(void *ctx, const srv_event *ev, size_t n, int64_t seq) {
    got *g = ctx;
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2;
        g->ev = realloc(g->ev, g->cap * sizeof *g->ev);
        if (g->ev == NULL)
            abort();
    }
    memcpy(g->ev + g->n, ev, n * sizeof *ev);
    g->n += n;
    if (g->calls < 64)
        g->chunk_seq[g->calls] = seq;
    g->calls++;
    if (n > g->max_chunk)
        g->max_chunk = n;
    return g->stop_after > 0 && g->calls >= g->stop_after;
}

static int64_t read_all(backend *b, void *db, int64_t after, got *g) {
    int64_t last = -1;
    char err[SRV_STORE_ERR] = "";
    if (b->be->read_log(db, after, collect, g, &last, err) != 0)
        fail_msg("%s: read_log: %s", b->name, err);
    return last;
}

/* ===================================================================== *
 * The log
 * ===================================================================== */

/* Each append takes the next number, from every connection alike. */
static void test_append_numbers(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    srv_event a[2] = {pageview("A", "v1", "s1", 1000, 3, "/p/1", 2.5, "Linux"),
                      pageview("A", "v1", "s1", 2000, 1, "/cart", 1.0, "Linux")};
    srv_event c = purchase("A", "v1", "s1", 3000, 19.99);
    srv_store_span spans[2] = {{a, 2}, {&c, 1}};
    int64_t seq = -1;
    char err[SRV_STORE_ERR] = "";
    assert_int_equal(b->be->append(db, spans, 2, &seq, err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(append(b, db, &c, 1), 2);
    assert_int_equal(append(b, db, a, 1), 3);
    void *db2 = open_again(b, target);
    assert_int_equal(append(b, db2, a, 2), 4);
    assert_int_equal(append(b, db, a, 1), 5);
    b->be->close(db2);
    b->be->close(db);
}

/* A failing event fails its whole transaction: nothing of it is stored,
 * not even its log number. */
static void test_append_all_or_nothing(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    srv_event ok = pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, "");
    assert_int_equal(append(b, db, &ok, 1), 1);
    srv_event bad[2] = {pageview("A", "vx", "sx", 2000, 3, "/p", 1.0, ""),
                        pageview("A", "vx", "sx", 3000, 3, "/q", -1.0, "")};
    srv_store_span spans[2] = {{&ok, 1}, {bad, 2}};
    int64_t seq = -1;
    char err[SRV_STORE_ERR] = "";
    assert_int_equal(b->be->append(db, spans, 2, &seq, err), -1);
    print_message("# %s: %s\n", b->name, err);
    assert_true(err[0] != '\0');
    assert_int_equal(append(b, db, &ok, 1), 2);
    got g = {0};
    assert_int_equal(read_all(b, db, 0, &g), 2);
    assert_int_equal(g.n, 2);
    free(g.ev);
    int64_t sessions = -1, conversions = -1;
    assert_int_equal(b->be->variant_counts(db, "A", &sessions, &conversions, err), 0);
    assert_int_equal(sessions, 1);
    b->be->close(db);
}

/* Three commits, read back from 0: log order (seq, ts, kind, id), every
 * field, the session's device texts merged (the first non-empty wins, also
 * when it is not the first event of a commit's run of one session). */
static void fill_three_commits(backend *b, void *db) {
    srv_event c1[3] = {pageview("A", "v1", "s1", 2000, 3, "/p/2", 4.0, ""),
                       purchase("A", "v1", "s1", 1000, 5.5),
                       pageview("A", "v1", "s1", 1000, 2, "/about", 0.25, "Linux")};
    srv_event c2[2] = {pageview("B", "v2", "s2", 500, 1, "/account", 1.5, "Windows"),
                       pageview("A", "v1", "s1", 3000, 3, "/p/3", 3.0, "Mac")};
    srv_event c3[1] = {pageview("A", "v1", "s1", 4000, 3, "/p/4", 1.0, "Mac")};
    assert_int_equal(append(b, db, c1, 3), 1);
    assert_int_equal(append(b, db, c2, 2), 2);
    assert_int_equal(append(b, db, c3, 1), 3);
}

static void test_read_log_all(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    fill_three_commits(b, db);
    got g = {0};
    assert_int_equal(read_all(b, db, 0, &g), 3);
    assert_int_equal(g.n, 6);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.chunk_seq[0], 3);
    /* commit 1 sorted by ts, then page view before purchase */
    static const struct {
        int type;
        const char *visitor;
        int64_t ts;
        const char *page_id;
    } want[6] = {{SRV_PAGEVIEW, "v1", 1000, "/about"}, {SRV_PURCHASE, "v1", 1000, ""},
                 {SRV_PAGEVIEW, "v1", 2000, "/p/2"},   {SRV_PAGEVIEW, "v2", 500, "/account"},
                 {SRV_PAGEVIEW, "v1", 3000, "/p/3"},   {SRV_PAGEVIEW, "v1", 4000, "/p/4"}};
    for (size_t i = 0; i < 6; i++) {
        const srv_event *e = &g.ev[i];
        assert_int_equal(e->type, want[i].type);
        assert_string_equal(e->visitor_id, want[i].visitor);
        assert_int_equal(e->ts, want[i].ts);
        assert_string_equal(e->page_id, want[i].page_id);
        assert_null(e->variant);
        /* v1's session took "Linux", the first os it was given */
        assert_string_equal(e->os, want[i].visitor[1] == '1' ? "Linux" : "Windows");
        assert_string_equal(e->browser, "Firefox");
        assert_string_equal(e->region, "");
    }
    assert_string_equal(g.ev[0].session_id, "s1");
    assert_int_equal(g.ev[0].page_type, 2);
    assert_true(g.ev[0].duration == 0.25);
    assert_true(g.ev[0].revenue == 0.0);
    assert_int_equal(g.ev[1].page_type, 0);
    assert_true(g.ev[1].revenue == 5.5);
    assert_int_equal(g.ev[3].page_type, 1);
    assert_string_equal(g.ev[3].session_id, "s2");
    assert_true(g.ev[3].duration == 1.5);
    free(g.ev);
    b->be->close(db);
}

static void test_read_log_after(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    got g = {0};
    assert_int_equal(read_all(b, db, 0, &g), 0); /* empty: *last is after */
    assert_int_equal(g.calls, 0);
    fill_three_commits(b, db);
    assert_int_equal(read_all(b, db, 1, &g), 3);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.ev[0].page_id, "/account");
    assert_string_equal(g.ev[2].page_id, "/p/4");
    g.n = 0;
    g.calls = 0;
    assert_int_equal(read_all(b, db, 3, &g), 3);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(read_all(b, db, 2, &g), 3);
    assert_int_equal(g.n, 1);
    free(g.ev);
    b->be->close(db);
}

/* More events than a chunk: chunks of at most SRV_STORE_LOG_CHUNK with
 * their last event's number; fn can stop the read. */
static void test_read_log_chunks(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    size_t n = 2 * SRV_STORE_LOG_CHUNK + 100;
    srv_event *ev = calloc(n, sizeof *ev);
    assert_non_null(ev);
    for (size_t i = 0; i < n; i++) {
        char page[32];
        snprintf(page, sizeof page, "/p/%zu", i);
        ev[i] = pageview("A", "v1", "s1", 1000 + (int64_t)i, 3, page, 1.0, "");
    }
    assert_int_equal(append(b, db, ev, n), 1);
    assert_int_equal(append(b, db, ev, 10), 2);
    got g = {0};
    assert_int_equal(read_all(b, db, 0, &g), 2);
    assert_int_equal(g.n, n + 10);
    assert_int_equal(g.max_chunk, SRV_STORE_LOG_CHUNK);
    assert_int_equal(g.calls, 3);
    assert_int_equal(g.chunk_seq[0], 1);
    assert_int_equal(g.chunk_seq[1], 1);
    assert_int_equal(g.chunk_seq[2], 2); /* the last chunk ends in commit 2 */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(g.ev[i].ts, 1000 + (int64_t)i);
    /* stop after the first chunk: not an error, *last is what was delivered */
    got s = {0};
    s.stop_after = 1;
    assert_int_equal(read_all(b, db, 0, &s), 1);
    assert_int_equal(s.n, SRV_STORE_LOG_CHUNK);
    /* and the backend goes on working */
    char err[SRV_STORE_ERR] = "";
    int64_t head = -1;
    if (b->be->head(db, &head, err) != 0)
        fail_msg("%s: head: %s", b->name, err);
    assert_int_equal(head, 2);
    g.n = 0;
    assert_int_equal(read_all(b, db, 1, &g), 2);
    assert_int_equal(g.n, 10);
    free(s.ev);
    free(g.ev);
    free(ev);
    b->be->close(db);
}

/* Many small commits (more than one query's range in the MariaDB
 * backend) come back whole and in order, from any point. */
static void test_read_log_many_commits(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    for (int i = 0; i < MANY_COMMITS; i++) {
        char page[32];
        snprintf(page, sizeof page, "%d", i);
        srv_event e = pageview("A", "v1", "s1", 100000 - i, 3, page, 1.0, "");
        assert_int_equal(append(b, db, &e, 1), i + 1);
    }
    int64_t from[3] = {0, 37, MANY_COMMITS - 1};
    for (int k = 0; k < 3; k++) {
        got g = {0};
        assert_int_equal(read_all(b, db, from[k], &g), MANY_COMMITS);
        assert_int_equal(g.n, MANY_COMMITS - from[k]);
        for (size_t i = 0; i < g.n; i++)
            assert_int_equal(atoi(g.ev[i].page_id), from[k] + (int64_t)i);
        free(g.ev);
    }
    b->be->close(db);
}

/* ---- two writers and a follower ---- */

typedef struct writer_arg {
    backend *b;
    void *db;
    int id;
    int failed;
} writer_arg;

static void *writer_main(void *p) {
    writer_arg *w = p;
    char err[SRV_STORE_ERR];
    for (int i = 0; i < CONCURRENT_APPENDS; i++) {
        char visitor[32], page[32];
        snprintf(visitor, sizeof visitor, "w%d", w->id);
        snprintf(page, sizeof page, "%d", i);
        srv_event e = pageview("A", visitor, "s", 1000 + i, 3, page, 1.0, "");
        srv_store_span span = {&e, 1};
        int64_t seq;
        if (w->b->be->append(w->db, &span, 1, &seq, err) != 0) {
            fprintf(stderr, "# writer %d: %s\n", w->id, err);
            w->failed = 1;
            return NULL;
        }
    }
    return NULL;
}

typedef struct follower {
    int seen[2][CONCURRENT_APPENDS];
    int next[2];         /* each writer's events come in its order */
    int64_t last_seq;
    int bad_order, dup, calls;
} follower;

static int follow(void *ctx, const srv_event *ev, size_t n, int64_t seq) {
    follower *f = ctx;
    if (seq < f->last_seq)
        f->bad_order++;
    f->last_seq = seq;
    f->calls++;
    for (size_t i = 0; i < n; i++) {
        int w = ev[i].visitor_id[1] - '0', k = atoi(ev[i].page_id);
        if (w < 0 || w > 1 || k < 0 || k >= CONCURRENT_APPENDS || f->seen[w][k]++)
            f->dup++;
        else if (k != f->next[w]++)
            f->bad_order++;
    }
    return 0;
}

/* A reader polling read_log(after = last) while two connections append
 * must see every event exactly once, in non-decreasing log order. */
static void test_concurrent_follow(void **state) {
    backend *b = *state;
    char target[1024];
    void *reader = open_fresh(b, target, sizeof target);
    writer_arg w[2] = {{b, open_again(b, target), 0, 0}, {b, open_again(b, target), 1, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    follower *f = calloc(1, sizeof *f);
    assert_non_null(f);
    int64_t last = 0, polls = 0;
    long long until = mh_now_ms() + CONCURRENT_DEADLINE_MS;
    char err[SRV_STORE_ERR] = "";
    while (last < 2 * CONCURRENT_APPENDS && mh_now_ms() < until) {
        int64_t next = -1;
        if (b->be->read_log(reader, last, follow, f, &next, err) != 0)
            fail_msg("%s: read_log: %s", b->name, err);
        assert_true(next >= last);
        last = next;
        polls++;
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failed, 0);
        b->be->close(w[i].db);
    }
    print_message("# %s: %lld polls, %d deliveries\n", b->name, (long long)polls, f->calls);
    assert_int_equal(last, 2 * CONCURRENT_APPENDS);
    assert_int_equal(f->dup, 0);
    assert_int_equal(f->bad_order, 0);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < CONCURRENT_APPENDS; k++)
            assert_int_equal(f->seen[i][k], 1);
    free(f);
    b->be->close(reader);
}

/* ---- many readers at once ---- */

typedef struct reader_arg {
    backend *b;
    void *db;
    int failed;
} reader_arg;

static void *reader_main(void *p) {
    reader_arg *r = p;
    const srv_store_backend *be = r->b->be;
    char err[SRV_STORE_ERR] = "";
    for (int i = 0; i < READS_PER_THREAD && !r->failed; i++) {
        int64_t sessions = 0, conversions = 0, last = 0, head = -1;
        opecom_session s;
        got g = {0};
        if (be->variant_counts(r->db, "A", &sessions, &conversions, err) != 0 ||
            sessions != 1 || conversions != 1 ||
            be->closed_session(r->db, "v1", "s1", &s, err) != 1 || s.n_events != 2 ||
            be->read_log(r->db, 0, collect, &g, &last, err) != 0 || g.n != 2 || last != 1 ||
            be->head(r->db, &head, err) != 0 || head != 1) {
            fprintf(stderr, "# reader: %s\n", err);
            r->failed = 1;
        }
        free(g.ev);
    }
    return NULL;
}

/* ===================================================================== *
 * Closed sessions, counts, readiness
 * ===================================================================== */

static srv_closed closed(const char *visitor, const char *session, uint32_t part,
                         uint32_t n_events, int64_t closed_ms) {
    srv_closed c;
    memset(&c, 0, sizeof c);
    snprintf(c.s.visitor_id, sizeof c.s.visitor_id, "%s", visitor);
    snprintf(c.s.session_id, sizeof c.s.session_id, "%s", session);
    c.s.part = part;
    c.s.n_events = n_events;
    c.s.start_ms = closed_ms - 5000;
    c.s.end_ms = closed_ms - 1800;
    c.s.revenue_total = 12.25;
    c.s.administrative = 2;
    c.s.administrative_duration = 40.5;
    c.s.informational = 1;
    c.s.informational_duration = 3.25;
    c.s.product_related = 18;
    c.s.product_related_duration = 620.125;
    c.s.bounce_rates = 0.0125;
    c.s.exit_rates = 0.03;
    c.s.page_values = 12.4;
    c.s.special_day = 0.4;
    c.s.month = "June";
    c.s.operating_systems = 3;
    c.s.browser = 2;
    c.s.region = 9;
    c.s.traffic_type = 20;
    c.s.visitor_type = "Returning_Visitor";
    c.s.weekend = 1;
    c.s.revenue = 1;
    return c;
}

static void put_closed(backend *b, void *db, const srv_closed *c, size_t n) {
    char err[SRV_STORE_ERR] = "";
    if (b->be->put_closed(db, c, n, err) != 0)
        fail_msg("%s: put_closed: %s", b->name, err);
}

static int lookup(backend *b, void *db, const char *visitor, const char *session,
                  opecom_session *out) {
    char err[SRV_STORE_ERR] = "";
    int rc = b->be->closed_session(db, visitor, session, out, err);
    if (rc < 0)
        fail_msg("%s: closed_session: %s", b->name, err);
    return rc;
}

static void test_put_closed_first_wins(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    srv_event e = pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, "");
    append(b, db, &e, 1);
    srv_closed first = closed("v1", "s1", 0, 3, 10000);
    put_closed(b, db, &first, 1);
    srv_closed again[2] = {closed("v1", "s1", 0, 9, 50000), closed("v1", "s1", 1, 4, 20000)};
    put_closed(b, db, again, 2);
    opecom_session s;
    /* part 0 kept its first row (closed at 10000), so part 1 is the last */
    assert_int_equal(lookup(b, db, "v1", "s1", &s), 1);
    assert_int_equal(s.part, 1);
    assert_int_equal(s.n_events, 4);
    put_closed(b, db, again, 1);
    assert_int_equal(lookup(b, db, "v1", "s1", &s), 1);
    assert_int_equal(s.part, 1);
    b->be->close(db);
}

static void test_closed_session_lookup(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    srv_event ev[2] = {pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, ""),
                       pageview("A", "v2", "s2", 1000, 3, "/p", 1.0, "")};
    append(b, db, ev, 2);
    srv_closed c[3] = {closed("v1", "s1", 0, 3, 10000), closed("v1", "s1", 1, 7, 30000),
                       closed("v2", "s2", 0, 2, 20000)};
    c[2].s.month = "Nov";
    c[2].s.visitor_type = "New_Visitor";
    c[2].s.weekend = 0;
    c[2].s.revenue = 0;
    put_closed(b, db, c, 3);
    opecom_session s;
    assert_int_equal(lookup(b, db, "v1", "s1", &s), 1);
    const opecom_session *w = &c[1].s;
    assert_string_equal(s.visitor_id, "v1");
    assert_string_equal(s.session_id, "s1");
    assert_int_equal(s.part, 1);
    assert_int_equal(s.n_events, 7);
    assert_int_equal(s.start_ms, w->start_ms);
    assert_int_equal(s.end_ms, w->end_ms);
    assert_true(s.revenue_total == w->revenue_total);
    assert_true(s.administrative == 2 && s.informational == 1 && s.product_related == 18);
    assert_true(s.administrative_duration == w->administrative_duration);
    assert_true(s.informational_duration == w->informational_duration);
    assert_true(s.product_related_duration == w->product_related_duration);
    assert_true(s.bounce_rates == w->bounce_rates && s.exit_rates == w->exit_rates);
    assert_true(s.page_values == w->page_values && s.special_day == w->special_day);
    assert_string_equal(s.month, "June");
    assert_int_equal(s.operating_systems, 3);
    assert_int_equal(s.browser, 2);
    assert_int_equal(s.region, 9);
    assert_int_equal(s.traffic_type, 20);
    assert_string_equal(s.visitor_type, "Returning_Visitor");
    assert_int_equal(s.weekend, 1);
    assert_int_equal(s.revenue, 1);
    /* by session id alone */
    memset(&s, 0, sizeof s);
    assert_int_equal(lookup(b, db, NULL, "s1", &s), 1);
    assert_string_equal(s.visitor_id, "v1");
    assert_int_equal(s.part, 1);
    assert_int_equal(lookup(b, db, NULL, "s2", &s), 1);
    assert_string_equal(s.month, "Nov");
    assert_string_equal(s.visitor_type, "New_Visitor");
    assert_int_equal(s.weekend, 0);
    assert_int_equal(s.revenue, 0);
    /* unknown ones */
    assert_int_equal(lookup(b, db, "v2", "s1", &s), 0);
    assert_int_equal(lookup(b, db, NULL, "nope", &s), 0);
    assert_int_equal(lookup(b, db, "S1", "v1", &s), 0);
    b->be->close(db);
}

/* Sessions per variant, with a purchase; the variant is the one a session
 * was created with; ids are compared byte for byte. */
static void test_variant_counts(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    srv_event ev[7] = {pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, ""),
                       pageview("A", "v2", "s2", 1000, 3, "/p", 1.0, ""),
                       purchase("A", "v2", "s2", 2000, 30.0),
                       pageview("A", "V1", "s1", 1000, 3, "/p", 1.0, ""),
                       pageview("A", "v1 ", "s1", 1000, 3, "/p", 1.0, ""),
                       purchase("B", "v4", "s4", 2000, 10.0),
                       pageview("B", "v1", "s1", 5000, 3, "/q", 1.0, "")};
    append(b, db, ev, 5);
    append(b, db, ev + 5, 2);
    int64_t sessions = -1, conversions = -1;
    char err[SRV_STORE_ERR] = "";
    assert_int_equal(b->be->variant_counts(db, "A", &sessions, &conversions, err), 0);
    assert_int_equal(sessions, 4);
    assert_int_equal(conversions, 1);
    assert_int_equal(b->be->variant_counts(db, "B", &sessions, &conversions, err), 0);
    assert_int_equal(sessions, 1);
    assert_int_equal(conversions, 1);
    assert_int_equal(b->be->variant_counts(db, "C", &sessions, &conversions, err), 0);
    assert_int_equal(sessions, 0);
    assert_int_equal(conversions, 0);
    b->be->close(db);
}

/* Reads from many threads at once on one handle all succeed; MariaDB
 * keeps no more than POOL_MAX read connections (and the writer's). */
static void test_concurrent_reads(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    srv_event ev[2] = {pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, ""),
                       purchase("A", "v1", "s1", 2000, 9.5)};
    append(b, db, ev, 2);
    srv_closed c = closed("v1", "s1", 0, 2, 9000);
    put_closed(b, db, &c, 1);
    reader_arg r[READ_THREADS];
    pthread_t t[READ_THREADS];
    for (int i = 0; i < READ_THREADS; i++) {
        r[i] = (reader_arg){b, db, 0};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
    }
    for (int i = 0; i < READ_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < READ_THREADS; i++)
        assert_int_equal(r[i].failed, 0);
    if (b == &maria_be) {
        int n = mh_connections(&maria, MH_USER);
        print_message("# mariadb: %d connections after %d reader threads\n", n, READ_THREADS);
        assert_true(n >= 2 && n <= POOL_MAX + 1);
    }
    b->be->close(db);
}

/* The head is the last commit's number: 0 in a new database, then one more
 * per append. */
static void test_head(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    char err[SRV_STORE_ERR] = "";
    int64_t head = -1;
    assert_int_equal(b->be->head(db, &head, err), 0);
    assert_int_equal(head, 0);
    srv_event e = pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, "");
    assert_int_equal(append(b, db, &e, 1), 1);
    assert_int_equal(append(b, db, &e, 1), 2);
    assert_int_equal(b->be->head(db, &head, err), 0);
    assert_int_equal(head, 2);
    b->be->close(db);
}

/* A database written by a newer server is refused, saying so. */
static void test_newer_schema_refused(void **state) {
    backend *b = *state;
    char target[1024];
    void *db = open_fresh(b, target, sizeof target);
    b->be->close(db);
    assert_int_equal(b->set_version(b, target, SRV_STORE_SCHEMA_VERSION + 1), 0);
    char err[SRV_STORE_ERR] = "";
    db = (void *)1;
    assert_int_equal(b->be->open(target, &db, err), -1);
    assert_null(db);
    print_message("# %s: %s\n", b->name, err);
    assert_non_null(strstr(err, "newer"));
    assert_null(strstr(err, MH_PASSWORD));
    assert_null(strstr(err, MH_PASSWORD_URL));
}

/* ===================================================================== *
 * MariaDB only
 * ===================================================================== */

static void need_maria(void) {
    if (!maria_be.available) {
        print_message("# mariadb: %s\n", maria_be.why);
        skip();
    }
}

/* Each malformed part of the target is named; the password never shows. */
static void test_maria_bad_targets(void **state) {
    (void)state;
    need_maria();
    char wrong_pw[512], no_socket[512];
    snprintf(wrong_pw, sizeof wrong_pw, "opecom:hunter2@localhost/opecom?socket=%s", maria.sock);
    snprintf(no_socket, sizeof no_socket, "opecom:hunter2@localhost/opecom?socket=%s.none",
             maria.sock);
    const struct {
        const char *target, *word;
    } bad[] = {
        {"opecom:hunter2localhost/opecom", "user"},
        {":hunter2@localhost/opecom", "user: empty"},
        {"op%4:hunter2@localhost/opecom", "user: bad percent"},
        {"opecom:hunter2%4@localhost/opecom", "password: bad percent"},
        {"opecom:hunter2%zz@localhost/opecom", "password: bad percent"},
        {"opecom:hunter2%00@localhost/opecom", "password: bad percent"},
        {"opecom:hun/ter2@localhost/opecom", "password"},
        {"opecom:hun@ter2@localhost/opecom", "host"},
        {"opecom:hunter2@/opecom", "host: empty"},
        {"opecom:hunter2@[::1/opecom", "host"},
        {"opecom:hunter2@local host/opecom", "host"},
        {"opecom:hunter2@localhost:/opecom", "port"},
        {"opecom:hunter2@localhost:0/opecom", "port"},
        {"opecom:hunter2@localhost:65536/opecom", "port"},
        {"opecom:hunter2@localhost:33o6/opecom", "port"},
        {"opecom:hunter2@localhost", "database"},
        {"opecom:hunter2@localhost/", "database: empty"},
        {"opecom:hunter2@localhost/op-ecom", "database"},
        {"opecom:hunter2@localhost/opecom?sock=/x", "unknown parameter"},
        {"opecom:hunter2@localhost/opecom?socket=", "socket: empty"},
        {"opecom:hunter2@localhost/opecom?socket=run/x.sock", "socket: not an absolute"},
        {"opecom:hunter2@localhost/opecom?socket=/a&socket=/b", "socket: given twice"},
        {"opecom:hunter2@127.0.0.1/opecom?socket=/x", "socket: only with host localhost"},
        {"opecom:hunter2@localhost:3306/opecom?socket=/x", "socket: not together"},
        {"opecom:hunter2@localhost/opecom#x", "fragment"},
        {wrong_pw, "Access denied"},
        {no_socket, "Can't connect"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[SRV_STORE_ERR] = "";
        void *db = (void *)1;
        int rc = srv_store_mariadb.open(bad[i].target, &db, err);
        if (rc != -1 || db != NULL || strstr(err, bad[i].word) == NULL ||
            strstr(err, "hunter") != NULL || strstr(err, "ter2") != NULL)
            fail_msg("target %zu (%s): rc %d, message \"%s\" (wanted \"%s\")", i,
                     bad[i].target, rc, err, bad[i].word);
    }
}

/* host:port over TCP works as well as the socket. */
static void test_maria_tcp(void **state) {
    (void)state;
    need_maria();
    char url[1024];
    assert_int_equal(mh_new_db(&maria, "tcp", 1, url, sizeof url), 0);
    assert_non_null(strstr(url, "@127.0.0.1:"));
    char err[SRV_STORE_ERR] = "";
    void *db = NULL;
    if (srv_store_mariadb.open(url + strlen("mariadb://"), &db, err) != 0)
        fail_msg("open over TCP: %s", err);
    srv_event e = pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, "");
    assert_int_equal(append(&maria_be, db, &e, 1), 1);
    int64_t head = -1;
    assert_int_equal(srv_store_mariadb.head(db, &head, err), 0);
    assert_int_equal(head, 1);
    srv_store_mariadb.close(db);
}

/* Connections killed on the server (a restart, a failover) are replaced:
 * the writer's before its next transaction, the readers' on their next read. */
static void test_maria_reconnect(void **state) {
    (void)state;
    char target[1024];
    void *db = open_fresh(&maria_be, target, sizeof target);
    srv_event e = pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, "");
    assert_int_equal(append(&maria_be, db, &e, 1), 1);
    char err[SRV_STORE_ERR] = "";
    int64_t head = -1;
    assert_int_equal(srv_store_mariadb.head(db, &head, err), 0); /* a reader in the pool */
    assert_true(mh_kill_user(&maria, MH_USER) >= 2);
    assert_int_equal(append(&maria_be, db, &e, 1), 2);
    assert_true(mh_kill_user(&maria, MH_USER) >= 1); /* the pool's reader is still dead */
    got g = {0};
    assert_int_equal(read_all(&maria_be, db, 0, &g), 2);
    assert_int_equal(g.n, 2);
    free(g.ev);
    assert_true(mh_kill_user(&maria, MH_USER) >= 1);
    assert_int_equal(srv_store_mariadb.head(db, &head, err), 0);
    assert_int_equal(head, 2);
    assert_true(mh_kill_user(&maria, MH_USER) >= 1);
    srv_closed c = closed("v1", "s1", 0, 2, 9000);
    put_closed(&maria_be, db, &c, 1);
    srv_store_mariadb.close(db);
}

typedef struct append_job {
    void *db;
    srv_event e;
    int rc;
    int64_t seq;
    char err[SRV_STORE_ERR];
} append_job;

static void *append_main(void *p) {
    append_job *j = p;
    srv_store_span span = {&j->e, 1};
    j->rc = srv_store_mariadb.append(j->db, &span, 1, &j->seq, j->err);
    return NULL;
}

/* An append that InnoDB picks as a deadlock's victim is run once more.
 * Root's transaction holds the session row and more changes (so the
 * append is the lighter one, the victim) and then wants log_head. */
static void test_maria_deadlock_retried(void **state) {
    (void)state;
    char target[1024];
    void *db = open_fresh(&maria_be, target, sizeof target);
    append_job j = {db, pageview("A", "v1", "s1", 1000, 3, "/p", 1.0, ""), -1, 0, ""};
    assert_int_equal(append(&maria_be, db, &j.e, 1), 1);
    const char *name = strchr(target, '/') + 1;
    int nl = (int)strcspn(name, "?");
    char sql[512];
    assert_int_equal(mh_exec(&maria, "START TRANSACTION"), 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO `%.*s`.purchases (session, ts, revenue, seq)"
             " SELECT s.id, q.seq, 0, 0 FROM `%.*s`.sessions s, `%.*s`.seq_1_to_500 q", nl, name,
             nl, name, nl, name);
    assert_int_equal(mh_exec(&maria, sql), 0);
    snprintf(sql, sizeof sql, "SELECT id FROM `%.*s`.sessions WHERE visitor_id = 'v1' FOR UPDATE",
             nl, name);
    assert_int_equal(mh_exec(&maria, sql), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, append_main, &j), 0);
    mh_sleep_ms(300); /* the append holds log_head and waits for the session row */
    snprintf(sql, sizeof sql, "UPDATE `%.*s`.log_head SET seq = seq WHERE one = 1", nl, name);
    int deadlock = mh_exec(&maria, sql); /* 0: the append was the victim */
    assert_int_equal(mh_exec(&maria, "ROLLBACK"), 0);
    pthread_join(t, NULL);
    if (j.rc != 0)
        fail_msg("append after a deadlock: %s", j.err);
    assert_int_equal(deadlock, 0);
    assert_int_equal(j.seq, 2);
    got g = {0};
    assert_int_equal(read_all(&maria_be, db, 0, &g), 2);
    assert_int_equal(g.n, 2);
    free(g.ev);
    srv_store_mariadb.close(db);
}

/* The tables are InnoDB (transactions, durable commits) and compare ids
 * as bytes; the schema version is recorded. */
static void test_maria_schema(void **state) {
    (void)state;
    char target[1024];
    void *db = open_fresh(&maria_be, target, sizeof target);
    srv_store_mariadb.close(db);
    const char *name = strchr(target, '/') + 1;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%.*s'"
             " AND ENGINE = 'InnoDB'),"
             " (SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%.*s'"
             " AND TABLE_NAME = 'sessions' AND COLUMN_NAME = 'visitor_id'),"
             " (SELECT version FROM `%.*s`.schema_version)",
             (int)strcspn(name, "?"), name, (int)strcspn(name, "?"), name,
             (int)strcspn(name, "?"), name);
    assert_int_equal(mysql_query(maria.root, sql), 0);
    MYSQL_RES *r = mysql_store_result(maria.root);
    assert_non_null(r);
    MYSQL_ROW row = mysql_fetch_row(r);
    assert_non_null(row);
    assert_string_equal(row[0], "6"); /* schema_version, log_head and the four */
    assert_string_equal(row[1], "utf8mb4_nopad_bin");
    assert_int_equal(atoi(row[2]), SRV_STORE_SCHEMA_VERSION);
    mysql_free_result(r);
}

/* ===================================================================== *
 * Main
 * ===================================================================== */

static int start_maria(void **state) {
    (void)state;
    int rc = mh_start(&maria, 1);
    if (rc == 0) {
        maria_be.available = 1;
    } else if (rc == 1) {
        snprintf(maria_be.why, sizeof maria_be.why, "%s", maria.why);
    } else {
        snprintf(maria_be.why, sizeof maria_be.why, "mariadbd did not start (see above)");
        return -1;
    }
    return 0;
}

static int stop_maria(void **state) {
    (void)state;
    mh_stop(&maria);
    return 0;
}

#define BOTH(fn)                                                                             \
    {#fn " [sqlite]", fn, NULL, NULL, &sqlite_be}, { #fn " [mariadb]", fn, NULL, NULL, &maria_be }
#define MARIA(fn) {#fn " [mariadb]", fn, NULL, NULL, &maria_be}

int main(void) {
    alarm(150); /* a hung database fails the run (the harness cleans up) */
    const struct CMUnitTest tests[] = {
        BOTH(test_append_numbers),
        BOTH(test_append_all_or_nothing),
        BOTH(test_read_log_all),
        BOTH(test_read_log_after),
        BOTH(test_read_log_chunks),
        BOTH(test_read_log_many_commits),
        BOTH(test_concurrent_follow),
        BOTH(test_put_closed_first_wins),
        BOTH(test_closed_session_lookup),
        BOTH(test_variant_counts),
        BOTH(test_concurrent_reads),
        BOTH(test_head),
        BOTH(test_newer_schema_refused),
        MARIA(test_maria_bad_targets),
        MARIA(test_maria_tcp),
        MARIA(test_maria_reconnect),
        MARIA(test_maria_deadlock_retried),
        MARIA(test_maria_schema),
    };
    int rc = cmocka_run_group_tests(tests, start_maria, stop_maria);
    mysql_library_end();
    return rc;
}
