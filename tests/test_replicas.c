/*
 * test_replicas.c - opecom-server as several replicas behind nginx on one
 * MariaDB, run for real: Debian's mariadbd on a private socket
 * (mariadb_harness.h), three $BUILD/opecom-server processes on it, and
 * Debian's nginx in front with examples/deploy/nginx/opecom.conf.
 *
 *   - equal to one process: the same tracker traffic, sent through nginx
 *     (so a session's batches land on different replicas) and to a single
 *     server on SQLite, gives every session the same features and the same
 *     probability on each replica as on the single server, closed sessions
 *     (history, page statistics, returning visitors) and open ones alike;
 *   - a replica killed (SIGKILL) in the middle of traffic: every event
 *     acknowledged through nginx is in the database, and every acknowledged
 *     session is served by both survivors with all its page views.
 *
 * nginx runs the example file with the documented substitutions (its
 * header): "listen 80" becomes a free loopback port, the upstream list the
 * three replicas, /var/log/nginx the scratch folder; the limit_req lines
 * are dropped (the test's client is one address sending far more than a
 * visitor would).
 *
 * Skips with a message when mariadb-server or nginx is missing.
 * Run from the repository root: BUILD=build build/tests/test_replicas
 */
#include "server_harness.h" /* first: it sets _XOPEN_SOURCE */

#include <limits.h>
#include <pthread.h>

#include "mariadb_harness.h"

#define N_REPLICAS 3
#define NGINX "/usr/sbin/nginx"

typedef struct cluster {
    mh db;
    sh_server replica[N_REPLICAS];
    sh_server one; /* the single process, on SQLite */
    pid_t nginx;
    int port;      /* nginx's */
    int skipped;
    int started;   /* the cluster is up */
} cluster;

static cluster C;

/* ===================================================================== *
 * nginx
 * ===================================================================== */

/* Replaces every `from` in *text by `to` (realloc'd). @return how many. */
static int replace(char **text, const char *from, const char *to) {
    int n = 0;
    for (char *p = strstr(*text, from); p != NULL; p = strstr(p, from))
        n++, p += strlen(from);
    if (n == 0)
        return 0;
    size_t size = strlen(*text) + (size_t)n * strlen(to) + 1;
    char *out = malloc(size), *w = out;
    assert_non_null(out);
    for (char *r = *text, *q; (q = strstr(r, from)) != NULL || *r; r = q + strlen(from)) {
        size_t len = q ? (size_t)(q - r) : strlen(r);
        memcpy(w, r, len);
        w += len;
        if (q == NULL)
            break;
        memcpy(w, to, strlen(to));
        w += strlen(to);
    }
    *w = '\0';
    free(*text);
    *text = out;
    return n;
}

/* Drops the lines that contain `word`. */
static void drop_lines(char *text, const char *word) {
    char *w = text;
    for (char *r = text; *r;) {
        char *eol = strchr(r, '\n');
        size_t len = eol ? (size_t)(eol - r + 1) : strlen(r);
        char keep = 1;
        char save = r[len - (eol ? 1 : 0)];
        r[len - (eol ? 1 : 0)] = '\0';
        if (strstr(r, word) != NULL)
            keep = 0;
        r[len - (eol ? 1 : 0)] = save;
        if (keep) {
            memmove(w, r, len);
            w += len;
        }
        r += len;
    }
    *w = '\0';
}

static void start_nginx(cluster *c) {
    char *site = sh_slurp("examples/deploy/nginx/opecom.conf");
    char listen[64], upstream[512], dir[512], real[PATH_MAX];
    c->port = mh_free_port();
    snprintf(listen, sizeof listen, "listen 127.0.0.1:%d;", c->port);
    assert_int_equal(replace(&site, "listen 80;", listen), 1);
    snprintf(upstream, sizeof upstream,
             "server 127.0.0.1:%d max_fails=3 fail_timeout=10s;\n"
             "    server 127.0.0.1:%d max_fails=3 fail_timeout=10s;\n"
             "    server 127.0.0.1:%d max_fails=3 fail_timeout=10s;",
             c->replica[0].port, c->replica[1].port, c->replica[2].port);
    assert_int_equal(replace(&site, "server 127.0.0.1:8081 max_fails=3 fail_timeout=10s;",
                             upstream),
                     1);
    drop_lines(site, "server 127.0.0.1:8082 ");
    drop_lines(site, "limit_req");
    char rel[600];
    snprintf(rel, sizeof rel, "%s/nginx", sh_dir);
    mkdir(rel, 0755);
    assert_non_null(realpath(rel, real)); /* nginx takes paths from its prefix */
    assert_true(strlen(real) < sizeof dir);
    snprintf(dir, sizeof dir, "%s", real);
    assert_true(replace(&site, "/var/log/nginx", dir) >= 2); /* the two logs (and comments) */
    char path[600];
    snprintf(path, sizeof path, "%s/site.conf", dir);
    sh_write(path, site);
    free(site);
    char conf[16384];
    snprintf(conf, sizeof conf,
             "pid %s/nginx.pid;\nerror_log %s/error.log warn;\nworker_processes 1;\n"
             "events { worker_connections 1024; }\n"
             "http {\n  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n"
             "  fastcgi_temp_path %s/fcgi;\n  uwsgi_temp_path %s/uwsgi;\n"
             "  scgi_temp_path %s/scgi;\n  access_log off;\n  include %s/site.conf;\n}\n",
             dir, dir, dir, dir, dir, dir, dir, dir);
    char conf_path[600], err_path[600];
    snprintf(conf_path, sizeof conf_path, "%s/nginx.conf", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.log", dir);
    sh_write(conf_path, conf);
    fflush(NULL);
    c->nginx = fork();
    if (c->nginx == 0) {
        setpgid(0, 0); /* its workers too: teardown kills the group */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(NGINX, "nginx", "-p", dir, "-c", conf_path, "-e", err_path, "-g", "daemon off;",
              (char *)NULL);
        _exit(127);
    }
    assert_true(c->nginx > 0);
    int64_t end = sh_ms() + SH_TIMEOUT_MS;
    while (sh_get_status(c->port, "/healthz") != 200) {
        if (sh_ms() > end || waitpid(c->nginx, NULL, WNOHANG) == c->nginx) {
            char *e = sh_slurp(err_path);
            fail_msg("nginx did not come up: %s", e);
        }
        sh_sleep_ms(20);
    }
}

/* ===================================================================== *
 * Fixture: MariaDB, three replicas, nginx, one SQLite server
 * ===================================================================== */

static const char config[] = "{\"session\": {\"idle_timeout_s\": 2}, \"follow_ms\": 50}";

static int group_setup(void **state) {
    (void)state;
    memset(&C, 0, sizeof C);
    if (access(NGINX, X_OK) != 0) {
        fprintf(stderr, "# skipped: %s is missing (apt-get install nginx)\n", NGINX);
        C.skipped = 1;
        return sh_make_dir();
    }
    int rc = mh_start(&C.db, 0);
    if (rc == 1) {
        fprintf(stderr, "# skipped: %s\n", C.db.why);
        C.skipped = 1;
        return sh_make_dir();
    }
    if (rc != 0)
        return -1;
    return sh_make_dir();
}

static int group_teardown(void **state) {
    if (C.nginx > 0) {
        kill(C.nginx, SIGTERM); /* the master stops its workers */
        if (sh_wait(C.nginx, 5000) < 0)
            kill(-C.nginx, SIGKILL);
        kill(-C.nginx, SIGKILL); /* a worker the master left behind */
    }
    sh_kill_leftovers(state);
    mh_stop(&C.db);
    sh_remove_dir();
    return 0;
}

static void start_cluster(cluster *c) {
    for (int i = 0; i < N_REPLICAS; i++) {
        char name[32];
        snprintf(name, sizeof name, "replica%d", i);
        char *args[] = {"--model", SH_MODEL, "--db", c->db.url, NULL};
        sh_start_config(&c->replica[i], name, config, args);
    }
    char *one[] = {"--model", SH_MODEL, NULL};
    sh_start_config(&c->one, "one.db", config, one);
    start_nginx(c);
    c->started = 1;
}

/* ===================================================================== *
 * Traffic
 * ===================================================================== */

static const char *const pages[][2] = {
    {"product_related", "/p/chair"}, {"product_related", "/p/lamp"},
    {"product_related", "/c/living"}, {"administrative", "/cart"},
    {"administrative", "/checkout"}, {"informational", "/faq"}};

/* One batch of session s of visitor v: `n` page views from `first`, and a
 * purchase when buy. ts: now. */
static void batch(char *out, size_t size, int v, int s, int first, int n, int buy) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    size_t len = (size_t)snprintf(out, size, "{\"events\": [");
    for (int i = 0; i < n; i++) {
        int k = (v * 7 + s * 3 + first + i) % 6;
        len += (size_t)snprintf(out + len, size - len,
                                "%s{\"type\": \"pageview\", \"visitor_id\": \"v%d\","
                                " \"session_id\": \"s%d\", \"ts\": %lld, \"page_type\": \"%s\","
                                " \"page_id\": \"%s\", \"duration\": %d, \"region\": %d}",
                                i ? ", " : "", v, s, (long long)(now - (n - i)), pages[k][0],
                                pages[k][1], 5 + (v * 13 + i * 7) % 90, 1 + v % 9);
    }
    if (buy)
        len += (size_t)snprintf(out + len, size - len,
                                ", {\"type\": \"purchase\", \"visitor_id\": \"v%d\","
                                " \"session_id\": \"s%d\", \"ts\": %lld, \"revenue\": %d}",
                                v, s, (long long)now, 20 + s % 50);
    snprintf(out + len, size - len, "]}");
}

static void post_ok(int port, const char *body) {
    sh_resp r = sh_post(port, "/api/track", body);
    if (r.status != 200)
        fail_msg("POST /api/track on port %d: %d %s", port, r.status, r.body ? r.body : "");
    sh_resp_free(&r);
}

/* Sends session s of visitor v in two batches to both nginx and the
 * single server. */
static void send_session(cluster *c, int v, int s) {
    char body[8192];
    int n = 2 + (v + s) % 5, buy = (v % 4 == 0) && (s % 2 == 0);
    batch(body, sizeof body, v, s, 0, n / 2 + 1, 0);
    post_ok(c->port, body);
    post_ok(c->one.port, body);
    batch(body, sizeof body, v, s, n / 2 + 1, n - n / 2, buy);
    post_ok(c->port, body);
    post_ok(c->one.port, body);
}

/* The features, probability and open flag of a session as `port` sees it. */
static char *session_view(int port, int v, int s) {
    char body[256];
    snprintf(body, sizeof body, "{\"session_id\": \"s%d\", \"visitor_id\": \"v%d\", \"reasons\": 0}",
             s, v);
    sh_resp r = sh_post(port, "/api/predict", body);
    if (r.status != 200)
        fail_msg("predict s%d on port %d: %d %s", s, port, r.status, r.body ? r.body : "");
    json_t *j = sh_json(&r);
    json_t *keep = json_pack("{s:O, s:O, s:O}", "features", json_object_get(j, "features"),
                             "probability", json_object_get(j, "probability"), "open",
                             json_object_get(j, "open"));
    char *text = json_dumps(keep, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(keep);
    json_decref(j);
    sh_resp_free(&r);
    return text;
}

/* ===================================================================== *
 * Tests
 * ===================================================================== */

static void test_replicas_equal_one_process(void **state) {
    (void)state;
    if (C.skipped)
        skip();
    start_cluster(&C);
    /* history: 40 sessions of 25 visitors, closed 2 s after their last
     * event; then 30 more (returning visitors among them), still open */
    int s = 0;
    for (; s < 40; s++)
        send_session(&C, s % 25, s);
    sh_sleep_ms(3500);
    for (; s < 70; s++)
        send_session(&C, (s * 7) % 40, s);
    int closed = 0, open = 0;
    for (int i = 0; i < s; i++) {
        int v = i < 40 ? i % 25 : (i * 7) % 40;
        char *want = session_view(C.one.port, v, i);
        for (int k = 0; k < N_REPLICAS; k++) {
            char *got = session_view(C.replica[k].port, v, i);
            if (strcmp(want, got) != 0)
                fail_msg("session s%d: replica %d\n  %s\nsingle process\n  %s", i, k, got, want);
            free(got);
        }
        if (strstr(want, "\"open\":true"))
            open++;
        else
            closed++;
        free(want);
    }
    fprintf(stderr, "# %d sessions (%d closed, %d open) equal on %d replicas and one process\n",
            s, closed, open, N_REPLICAS);
    assert_int_equal(closed, 40);
    assert_int_equal(open, 30);
}

typedef struct traffic {
    int port;
    int64_t until;
    int next;            /* session numbers from here */
    int acked[4096];     /* sessions acknowledged */
    int n_acked, n_failed;
} traffic;

static void *send_loop(void *arg) {
    traffic *t = arg;
    char body[4096];
    while (sh_ms() < t->until && t->n_acked < 4096) {
        int s = t->next++;
        batch(body, sizeof body, 1000 + s, 1000 + s, 0, 3, 0);
        sh_resp r = sh_post(t->port, "/api/track", body);
        if (r.status == 200)
            t->acked[t->n_acked++] = s;
        else
            t->n_failed++;
        sh_resp_free(&r);
    }
    return NULL;
}

static long long db_count(mh *m, const char *sql) {
    assert_int_equal(mysql_select_db(m->root, "opecom"), 0);
    assert_int_equal(mysql_query(m->root, sql), 0);
    MYSQL_RES *r = mysql_store_result(m->root);
    MYSQL_ROW row = mysql_fetch_row(r);
    long long n = atoll(row[0]);
    mysql_free_result(r);
    return n;
}

static void test_kill_a_replica_mid_traffic(void **state) {
    (void)state;
    if (C.skipped)
        skip();
    if (!C.started)
        fail_msg("the cluster did not start (see the test before)");
    long long before = db_count(&C.db, "SELECT count(*) FROM page_views");
    static traffic t;
    memset(&t, 0, sizeof t);
    t.port = C.port;
    t.until = sh_ms() + 3000;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_loop, &t), 0);
    sh_sleep_ms(1000);
    kill(C.replica[0].pid, SIGKILL);
    sh_wait(C.replica[0].pid, SH_TIMEOUT_MS);
    sh_note_running(C.replica[0].pid, 0);
    C.replica[0].pid = 0;
    pthread_join(th, NULL);
    long long stored = db_count(&C.db, "SELECT count(*) FROM page_views") - before;
    fprintf(stderr, "# kill -9 of one replica of 3 during 3 s of traffic: %d batches "
                    "acknowledged, %d not; %lld page views stored, %d acknowledged\n",
            t.n_acked, t.n_failed, stored, 3 * t.n_acked);
    assert_true(t.n_acked > 50);
    assert_true(stored >= 3LL * t.n_acked);
    for (int i = 0; i < t.n_acked; i++) {
        int s = t.acked[i];
        for (int k = 1; k < N_REPLICAS; k++) {
            char *view = session_view(C.replica[k].port, 1000 + s, 1000 + s);
            json_t *j = json_loads(view, 0, NULL), *f = json_object_get(j, "features");
            double pv = json_number_value(json_object_get(f, "Administrative")) +
                        json_number_value(json_object_get(f, "Informational")) +
                        json_number_value(json_object_get(f, "ProductRelated"));
            if (pv != 3)
                fail_msg("session s%d on replica %d: %g page views, 3 acknowledged", 1000 + s,
                         k, pv);
            json_decref(j);
            free(view);
        }
    }
    for (int k = 1; k < N_REPLICAS; k++)
        assert_int_equal(sh_get_status(C.replica[k].port, "/readyz"), 200);
    for (int k = 1; k < N_REPLICAS; k++)
        assert_int_equal(sh_stop(&C.replica[k]), 0);
    assert_int_equal(sh_stop(&C.one), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicas_equal_one_process),
        cmocka_unit_test(test_kill_a_replica_mid_traffic),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
