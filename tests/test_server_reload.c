/*
 * test_server_reload.c - swapping models while opecom-server serves, run
 * against the real program: the operator route's token; a reload by POST
 * /api/admin/reload and by SIGHUP that changes the answers and the model id
 * in /metrics; a damaged and an incompatible file refused while the old
 * model keeps serving (message, metric); a reload of one variant of two;
 * and 20 swaps under wrk load (predictions over keep-alive connections)
 * with not one failed request.
 *
 * The second model is the default one with its logits shifted by +1.5
 * ($BUILD/test-models/shoppers-shifted.opm, made by the Makefile with
 * tests/shift_model.py): the same network, higher probabilities. The
 * incompatible one names its first feature Admin_Pages (shoppers-renamed).
 *
 * Run from the repository root: BUILD=build build/tests/test_server_reload
 */
#include "server_harness.h" /* first: it sets _XOPEN_SOURCE */

#define TOKEN "reload-test-token-0123456789"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

static char shifted[600], renamed[600];

static int group_setup(void **state) {
    (void)state;
    snprintf(shifted, sizeof shifted, "%s/test-models/shoppers-shifted.opm", tu_build_dir());
    snprintf(renamed, sizeof renamed, "%s/test-models/shoppers-renamed.opm", tu_build_dir());
    if (access(shifted, R_OK) != 0 || access(renamed, R_OK) != 0) {
        fprintf(stderr, "# %s/test-models is missing its models (make builds them)\n",
                tu_build_dir());
        return -1;
    }
    return sh_make_dir();
}

static int group_teardown(void **state) {
    sh_kill_leftovers(state);
    sh_remove_dir();
    return 0;
}

/* ===================================================================== *
 * Helpers
 * ===================================================================== */

/* Copies src over dst the way an operator should: a new file renamed into
 * place, so the server never reads half a file. */
static void put_model(const char *src, const char *dst) {
    size_t n = 0;
    unsigned char *b = tu_read_file(src, &n);
    assert_non_null(b);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.new", dst);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, dst), 0);
    free(b);
}

/* The first `bytes` bytes of src as dst (a damaged file). */
static void put_truncated(const char *src, const char *dst, size_t bytes) {
    size_t n = 0;
    unsigned char *b = tu_read_file(src, &n);
    assert_non_null(b);
    assert_true(bytes < n);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, bytes, f), bytes);
    assert_int_equal(fclose(f), 0);
    free(b);
}

static double predict(int port, const char *variant) {
    char body[2048];
    snprintf(body, sizeof body, "{\"variant\": \"%s\", \"reasons\": 0, %s", variant,
             sh_base_row + 1);
    sh_resp r = sh_post(port, "/api/predict", body);
    assert_int_equal(r.status, 200);
    json_t *j = sh_json(&r);
    double p = json_number_value(json_object_get(j, "probability"));
    json_decref(j);
    sh_resp_free(&r);
    return p;
}

static sh_resp reload(int port, const char *body) {
    return sh_request_raw(port, "POST", "/api/admin/reload",
                          "Content-Type: application/json\r\n" AUTH, body, strlen(body), 1);
}

/* The id label of variant's opecom_model_info line in /metrics (static). */
static const char *model_id(int port, const char *variant) {
    static char id[16];
    char key[128];
    sh_resp r = sh_get(port, "/metrics");
    assert_int_equal(r.status, 200);
    snprintf(key, sizeof key, "opecom_model_info{variant=\"%s\",", variant);
    const char *p = strstr(r.body, key);
    assert_non_null(p);
    p = strstr(p, "id=\"");
    assert_non_null(p);
    snprintf(id, sizeof id, "%.8s", p + 4);
    sh_resp_free(&r);
    return id;
}

/* The value of a metric line that starts with `prefix`, or -1. */
static double metric(int port, const char *prefix) {
    sh_resp r = sh_get(port, "/metrics");
    const char *p = strstr(r.body, prefix);
    double v = p != NULL ? atof(p + strlen(prefix)) : -1;
    sh_resp_free(&r);
    return v;
}

static void write_config(const char *name, const char *a_path, const char *b_path) {
    char text[2048];
    if (b_path == NULL)
        snprintf(text, sizeof text,
                 "{\"admin_token\": \"" TOKEN "\","
                 " \"variants\": [{\"name\": \"a\", \"model\": \"%s\", \"weight\": 1}]}",
                 a_path);
    else
        snprintf(text, sizeof text,
                 "{\"admin_token\": \"" TOKEN "\","
                 " \"variants\": [{\"name\": \"a\", \"model\": \"%s\", \"weight\": 1},"
                 " {\"name\": \"b\", \"model\": \"%s\", \"weight\": 1}]}",
                 a_path, b_path);
    sh_write(sh_path(name), text);
}

/* ===================================================================== *
 * Tests
 * ===================================================================== */

static void test_operator_route_needs_the_token(void **state) {
    (void)state;
    sh_server sv;
    char *plain[] = {"--model", SH_MODEL, NULL};
    sh_start(&sv, "token-off.db", plain);
    sh_resp r = sh_post(sv.port, "/api/admin/reload", "{}");
    assert_int_equal(r.status, 403); /* no token configured: the route is off */
    assert_non_null(strstr(r.body, "admin_token"));
    sh_resp_free(&r);
    assert_int_equal(sh_stop(&sv), 0);

    char a[600];
    snprintf(a, sizeof a, "%s", sh_path("token-a.opm"));
    put_model(SH_MODEL, a);
    write_config("token.json", a, NULL);
    char *cfg[] = {"--config", (char *)sh_path("token.json"), NULL};
    sh_start(&sv, "token.db", cfg);
    const char *bad[] = {"", "Authorization: Bearer nope\r\n",
                         "Authorization: Bearer " TOKEN "x\r\n",
                         "Authorization: Basic " TOKEN "\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char headers[256];
        snprintf(headers, sizeof headers, "Content-Type: application/json\r\n%s", bad[i]);
        r = sh_request_raw(sv.port, "POST", "/api/admin/reload", headers, "{}", 2, 1);
        assert_int_equal(r.status, 401);
        sh_resp_free(&r);
    }
    r = reload(sv.port, "{}");
    assert_int_equal(r.status, 200);
    sh_resp_free(&r);
    r = reload(sv.port, "{\"variant\": \"zz\"}");
    assert_int_equal(r.status, 422);
    sh_resp_free(&r);
    assert_int_equal(sh_stop(&sv), 0);
}

static void test_reload_swaps_and_refuses(void **state) {
    (void)state;
    char a[600];
    snprintf(a, sizeof a, "%s", sh_path("swap-a.opm"));
    put_model(SH_MODEL, a);
    write_config("swap.json", a, NULL);
    char *cfg[] = {"--config", (char *)sh_path("swap.json"), NULL};
    sh_server sv;
    sh_start(&sv, "swap.db", cfg);
    double p0 = predict(sv.port, "a");
    char id0[16];
    snprintf(id0, sizeof id0, "%s", model_id(sv.port, "a"));

    /* a new file, by the admin route */
    put_model(shifted, a);
    sh_resp r = reload(sv.port, "{}");
    assert_int_equal(r.status, 200);
    json_t *j = sh_json(&r), *x = json_array_get(json_object_get(j, "reloaded"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "variant")), "a");
    char id1[16];
    snprintf(id1, sizeof id1, "%s", json_string_value(json_object_get(x, "id")));
    json_decref(j);
    sh_resp_free(&r);
    assert_string_not_equal(id0, id1);
    assert_string_equal(model_id(sv.port, "a"), id1);
    double p1 = predict(sv.port, "a");
    assert_true(p1 > p0 + 0.05);

    /* a damaged file and an incompatible one: refused, the shifted model
     * keeps answering */
    put_truncated(shifted, a, 5000);
    r = reload(sv.port, "{}");
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "reload refused, the old model keeps serving"));
    sh_resp_free(&r);
    put_model(renamed, a);
    r = reload(sv.port, "{}");
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "UCI"));
    sh_resp_free(&r);
    assert_true(predict(sv.port, "a") == p1);
    assert_string_equal(model_id(sv.port, "a"), id1);
    assert_true(metric(sv.port, "opecom_model_reloads_total{variant=\"a\",result=\"failed\"} ") ==
                2);
    assert_true(metric(sv.port, "opecom_model_reloads_total{variant=\"a\",result=\"ok\"} ") == 1);

    /* back to the first file, by SIGHUP */
    put_model(SH_MODEL, a);
    kill(sv.pid, SIGHUP);
    int64_t end = sh_ms() + SH_TIMEOUT_MS;
    while (strcmp(model_id(sv.port, "a"), id0) != 0 && sh_ms() < end)
        sh_sleep_ms(20);
    assert_string_equal(model_id(sv.port, "a"), id0);
    assert_true(predict(sv.port, "a") == p0);
    assert_int_equal(sh_stop(&sv), 0);
    char *log = sh_slurp(sv.err_path);
    assert_non_null(strstr(log, "reload refused, the old model keeps serving: variant a: cannot "
                                "load model"));
    assert_non_null(strstr(log, "does not take the UCI features"));
    free(log);
}

static void test_reload_one_variant(void **state) {
    (void)state;
    char a[600], b[600];
    snprintf(a, sizeof a, "%s", sh_path("one-a.opm"));
    snprintf(b, sizeof b, "%s", sh_path("one-b.opm"));
    put_model(SH_MODEL, a);
    put_model(SH_MODEL, b);
    write_config("one.json", a, b);
    char *cfg[] = {"--config", (char *)sh_path("one.json"), NULL};
    sh_server sv;
    sh_start(&sv, "one.db", cfg);
    char ida[16];
    snprintf(ida, sizeof ida, "%s", model_id(sv.port, "a"));
    double pa = predict(sv.port, "a");
    put_model(shifted, a); /* a's file changes too, but only b is reloaded */
    put_model(shifted, b);
    sh_resp r = reload(sv.port, "{\"variant\": \"b\"}");
    assert_int_equal(r.status, 200);
    sh_resp_free(&r);
    assert_string_equal(model_id(sv.port, "a"), ida);
    assert_string_not_equal(model_id(sv.port, "b"), ida);
    assert_true(predict(sv.port, "a") == pa);
    assert_true(predict(sv.port, "b") > pa + 0.05);
    assert_int_equal(sh_stop(&sv), 0);
}

/* ===================================================================== *
 * Under load
 * ===================================================================== */

/* Starts wrk (POST /api/predict, 2 threads, 32 connections, `seconds`),
 * its stdout to out_path. @return its pid, or -1 when wrk is missing. */
static pid_t start_wrk(int port, int seconds, const char *out_path) {
    char script[600], url[64], dur[16];
    snprintf(script, sizeof script, "%s", sh_path("predict.lua"));
    char text[2048];
    snprintf(text, sizeof text,
             "wrk.method = \"POST\"\n"
             "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
             "wrk.body = '{\"reasons\": 0, %s'\n"
             "function done(summary, latency, requests)\n"
             "  local e = summary.errors\n"
             "  io.write(string.format(\"RESULT requests=%%d connect=%%d read=%%d write=%%d"
             " status=%%d timeout=%%d\\n\", summary.requests, e.connect, e.read, e.write,"
             " e.status, e.timeout))\n"
             "end\n",
             sh_base_row + 1);
    sh_write(script, text);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/predict", port);
    snprintf(dur, sizeof dur, "%ds", seconds);
    const char *wrk = access("/usr/bin/wrk", X_OK) == 0 ? "/usr/bin/wrk" : NULL;
    if (wrk == NULL)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(wrk, "wrk", "-t", "2", "-c", "32", "-d", dur, "--timeout", "5s", "-s", script,
              url, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void test_twenty_swaps_under_load(void **state) {
    (void)state;
    if (access("/usr/bin/wrk", X_OK) != 0) {
        fprintf(stderr, "# skipped: wrk is missing (apt-get install wrk)\n");
        skip();
    }
    char a[600], out[600];
    snprintf(a, sizeof a, "%s", sh_path("load-a.opm"));
    snprintf(out, sizeof out, "%s", sh_path("wrk.out"));
    put_model(SH_MODEL, a);
    write_config("load.json", a, NULL);
    char *cfg[] = {"--config", (char *)sh_path("load.json"), NULL};
    sh_server sv;
    sh_start(&sv, "load.db", cfg);
    pid_t w = start_wrk(sv.port, 8, out);
    assert_true(w > 0);
    sh_sleep_ms(1000);
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        put_model(i % 2 == 0 ? shifted : SH_MODEL, a);
        sh_resp r = reload(sv.port, "{}");
        ok += r.status == 200;
        sh_resp_free(&r);
        sh_sleep_ms(250);
    }
    int st = 0;
    int64_t end = sh_ms() + 30000;
    while (waitpid(w, &st, WNOHANG) == 0 && sh_ms() < end)
        sh_sleep_ms(50);
    if (sh_ms() >= end) {
        kill(w, SIGKILL);
        waitpid(w, &st, 0);
        fail_msg("wrk did not finish");
    }
    char *text = sh_slurp(out);
    const char *res = strstr(text, "RESULT ");
    if (res == NULL)
        fail_msg("no result from wrk: %s", text);
    long requests = 0, connect = -1, rd = -1, wr = -1, status = -1, timeout = -1;
    assert_int_equal(sscanf(res, "RESULT requests=%ld connect=%ld read=%ld write=%ld status=%ld"
                                 " timeout=%ld",
                            &requests, &connect, &rd, &wr, &status, &timeout),
                     6);
    fprintf(stderr, "# 20 reloads under load: %d answered 200; wrk: %ld requests, errors: "
                    "connect %ld, read %ld, write %ld, status %ld, timeout %ld\n",
            ok, requests, connect, rd, wr, status, timeout);
    free(text);
    assert_int_equal(ok, 20);
    assert_true(requests > 1000);
    assert_int_equal(connect + rd + wr + status + timeout, 0);
    assert_true(metric(sv.port, "opecom_model_reloads_total{variant=\"a\",result=\"ok\"} ") ==
                20);
    assert_int_equal(sh_stop(&sv), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_route_needs_the_token),
        cmocka_unit_test(test_reload_swaps_and_refuses),
        cmocka_unit_test(test_reload_one_variant),
        cmocka_unit_test(test_twenty_swaps_under_load),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
