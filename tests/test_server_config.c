/*
 * test_server_config.c - end-to-end tests of how opecom-server starts, run
 * against the real program ($BUILD/opecom-server): each kind of bad flag or
 * configuration-file setting with its exit status and its one-line message
 * (naming the flag, or the file and key); start-up failures (a missing or
 * invalid model, a port in use) and --help; a good configuration file whose
 * variants, intervention and code table reach the API, and flags that
 * override it. Each test runs or starts its own servers (server_harness.h);
 * the HTTP API itself is test_server.c's.
 *
 * Run from the repository root: BUILD=build build/tests/test_server_config
 */
#include "server_harness.h" /* first: it sets _XOPEN_SOURCE */

/* ===================================================================== *
 * Fixture
 * ===================================================================== */

static int group_setup(void **state) {
    (void)state;
    return sh_make_dir();
}

static int group_teardown(void **state) {
    sh_kill_leftovers(state);
    sh_remove_dir();
    return 0;
}

/* ===================================================================== *
 * Bad settings: exit status and message
 * ===================================================================== */

static void test_bad_settings(void **state) {
    char cfg_key[600], cfg_range[600], cfg_syntax[600], cfg_variant[600], cfg_codes[600],
        cfg_days[600];
    struct {
        const char *args[8];
        int code;
        const char *message; /* the whole stderr line after "opecom-server: " */
    } cases[] = {
        {{"--bogus", NULL}, 2, "--bogus: unknown flag (see --help)"},
        {{"--port", NULL}, 2, "--port: needs a value"},
        {{"--port", "70000", NULL}, 2, "--port \"70000\": must be an integer in [0, 65535]"},
        {{"--threads", "0", NULL}, 2, "--threads \"0\": must be an integer in [1, 256]"},
        {{"--variant", "b=models/x.opm", NULL}, 2,
         "--variant \"b=models/x.opm\": expected NAME=PATH:WEIGHT"},
        {{"--variant", "=models/x.opm:1", NULL}, 2,
         "--variant \"=models/x.opm:1\": expected NAME=PATH:WEIGHT"},
        {{"--variant", "b=models/x.opm:-1", NULL}, 2,
         "--variant \"b=models/x.opm:-1\": WEIGHT must be a number in (0, 1e6]"},
        {{"--variant", "a=" SH_MODEL ":1", "--variant", "a=" SH_MODEL ":1", NULL}, 2,
         "--variant \"a=" SH_MODEL ":1\": variant name \"a\" used twice"},
        {{"--model", SH_MODEL, "--variant", "a=" SH_MODEL ":1", NULL}, 2,
         "--model and --variant exclude each other"},
        {{"--config", cfg_key, NULL}, 1, NULL},
        {{"--config", cfg_range, NULL}, 1, NULL},
        {{"--config", cfg_syntax, NULL}, 1, NULL},
        {{"--config", cfg_variant, NULL}, 1, NULL},
        {{"--config", cfg_codes, NULL}, 1, NULL},
        {{"--config", cfg_days, NULL}, 1, NULL},
        {{"--model", "no/such/model.opm", "--db", NULL}, 2, "--db: needs a value"},
    };
    char expect[6][700];
    size_t i;
    (void)state;
    snprintf(cfg_key, sizeof(cfg_key), "%s", sh_path("key.json"));
    sh_write(cfg_key, "{\"port\": 8080, \"colour\": \"red\"}");
    snprintf(expect[0], sizeof(expect[0]), "config %s: colour: unknown key", cfg_key);
    snprintf(cfg_range, sizeof(cfg_range), "%s", sh_path("range.json"));
    sh_write(cfg_range, "{\"intervention\": {\"min_probability\": 2}}");
    snprintf(expect[1], sizeof(expect[1]),
             "config %s: intervention.min_probability: must be a number in [0, 1]", cfg_range);
    snprintf(cfg_syntax, sizeof(cfg_syntax), "%s", sh_path("syntax.json"));
    sh_write(cfg_syntax, "{\"port\": 80,\n \"db\" \"x\"}");
    snprintf(expect[2], sizeof(expect[2]), "config %s: line 2, column ", cfg_syntax);
    snprintf(cfg_variant, sizeof(cfg_variant), "%s", sh_path("variant.json"));
    sh_write(cfg_variant, "{\"variants\": [{\"name\": \"a\", \"model\": \"m.opm\", \"wieght\": 1}]}");
    snprintf(expect[3], sizeof(expect[3]), "config %s: variants[0].wieght: unknown key",
             cfg_variant);
    snprintf(cfg_codes, sizeof(cfg_codes), "%s", sh_path("codes.json"));
    sh_write(cfg_codes, "{\"codes\": {\"os\": {\"Windows\": 1000}}}");
    snprintf(expect[4], sizeof(expect[4]),
             "config %s: codes.os.Windows: must be an integer code in [1, 999]", cfg_codes);
    snprintf(cfg_days, sizeof(cfg_days), "%s", sh_path("days.json"));
    sh_write(cfg_days, "{\"special_days\": [{\"month\": 2, \"day\": 14}, {\"month\": 13, \"day\": 1}]}");
    snprintf(expect[5], sizeof(expect[5]),
             "config %s: special_days[1].month: must be an integer in [1, 12]", cfg_days);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sh_run r = sh_run_server((char *const *)cases[i].args);
        char line[800];
        const char *msg = cases[i].message;
        if (msg == NULL)
            msg = expect[i - 9];
        snprintf(line, sizeof(line), "opecom-server: %s", msg);
        if (r.code != cases[i].code)
            fail_msg("%s ...: exit %d, expected %d; stderr: %s", cases[i].args[0], r.code,
                     cases[i].code, r.err);
        if (strncmp(r.err, line, strlen(line)) != 0 || strchr(r.err, '\n') != r.err + strlen(r.err) - 1)
            fail_msg("stderr is \"%s\", expected one line \"%s...\"", r.err, line);
        assert_string_equal(r.out, "");
        sh_run_free(&r);
    }
}

static void test_start_failures(void **state) {
    char db[600], port[16];
    char *missing[] = {"--model", "no/such/model.opm", "--port", "0", "--db", db, NULL};
    char *not_model[] = {"--model", "Makefile", "--port", "0", "--db", db, NULL};
    char *help[] = {"--help", NULL};
    char *busy[] = {"--port", port, "--db", db, NULL};
    char *serve[] = {"--model", SH_MODEL, NULL};
    sh_server sv;
    sh_run r;
    (void)state;
    snprintf(db, sizeof(db), "%s", sh_path("fail.db"));
    r = sh_run_server(missing);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "opecom-server: variant default: cannot load model "
                                  "no/such/model.opm: "));
    sh_run_free(&r);
    r = sh_run_server(not_model);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "opecom-server: variant default: cannot load model Makefile: "));
    sh_run_free(&r);
    r = sh_run_server(help);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "usage: opecom-server"));
    sh_run_free(&r);
    /* A port already in use (a running server's). */
    sh_start(&sv, "busy.db", serve);
    snprintf(port, sizeof(port), "%d", sv.port);
    r = sh_run_server(busy);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "opecom-server: cannot listen on port"));
    sh_run_free(&r);
    assert_int_equal(sh_stop(&sv), 0);
}

/* ===================================================================== *
 * The configuration file
 * ===================================================================== */

/* The configuration file's settings reach the API; flags override it. */
static void test_config_file(void **state) {
    char cfg[600], text[1500];
    char *args[] = {"--config", cfg, "--threads", "2", NULL};
    sh_server sv;
    sh_resp r;
    json_t *o;
    (void)state;
    snprintf(cfg, sizeof(cfg), "%s", sh_path("good.json"));
    snprintf(text, sizeof(text),
             "{\"port\": 1, \"threads\": 300000000000,"
             " \"variants\": [{\"name\": \"control\", \"model\": \"%s\", \"weight\": 2},"
             "                {\"name\": \"small\", \"model\": \"%s\", \"weight\": 0.5}],"
             " \"intervention\": {\"action\": \"coupon\", \"min_probability\": 0,"
             "                    \"max_probability\": 1},"
             " \"session\": {\"idle_timeout_s\": 600, \"utc_offset_min\": 60},"
             " \"special_days\": [{\"month\": 11, \"weekday\": 4, \"nth\": 4, \"offset_days\": 1}],"
             " \"codes\": {\"os\": {\"Plan9\": 7}}}",
             SH_MODEL, SH_MODEL);
    sh_write(cfg, text);
    /* threads is out of range in the file: an error even though the flag
     * would override it. */
    {
        char *a2[] = {"--config", cfg, "--port", "0", NULL};
        sh_run rr = sh_run_server(a2);
        assert_int_equal(rr.code, 1);
        assert_non_null(strstr(rr.err, "threads: must be an integer in [1, 256]"));
        sh_run_free(&rr);
    }
    snprintf(text, sizeof(text),
             "{\"port\": 1, \"threads\": 3,"
             " \"variants\": [{\"name\": \"control\", \"model\": \"%s\", \"weight\": 2},"
             "                {\"name\": \"small\", \"model\": \"%s\", \"weight\": 0.5}],"
             " \"intervention\": {\"action\": \"coupon\", \"min_probability\": 0,"
             "                    \"max_probability\": 1},"
             " \"session\": {\"idle_timeout_s\": 600, \"utc_offset_min\": 60},"
             " \"special_days\": [{\"month\": 11, \"weekday\": 4, \"nth\": 4, \"offset_days\": 1}],"
             " \"codes\": {\"os\": {\"Plan9\": 7}}}",
             SH_MODEL, SH_MODEL);
    sh_write(cfg, text);
    sh_start(&sv, "config.db", args); /* --port 0 from sh_start overrides port 1 */
    r = sh_post(sv.port, "/api/predict", sh_base_row);
    assert_int_equal(r.status, 200);
    o = sh_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "variant")), "control");
    assert_string_equal(json_string_value(json_object_get(o, "action")), "coupon");
    json_decref(o);
    sh_resp_free(&r);
    r = sh_get(sv.port, "/api/experiments");
    o = sh_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "control")), "control");
    assert_true(json_number_value(json_object_get(json_array_get(json_object_get(o, "variants"), 1),
                                                  "weight")) == 0.5);
    json_decref(o);
    sh_resp_free(&r);
    /* The file's code table: os "Plan9" -> 7; the default's others kept. */
    {
        char body[600];
        long long now = (long long)time(NULL) * 1000;
        json_t *f;
        snprintf(body, sizeof(body),
                 "{\"events\": [{\"type\": \"pageview\", \"visitor_id\": \"v-c\", "
                 "\"session_id\": \"s-c\", \"ts\": %lld, \"page_type\": \"informational\", "
                 "\"page_id\": \"faq\", \"duration\": 2, \"os\": \"Plan9\", \"browser\": "
                 "\"Chrome\"}]}",
                 now);
        r = sh_post(sv.port, "/api/track", body);
        assert_int_equal(r.status, 200);
        sh_resp_free(&r);
        r = sh_post(sv.port, "/api/predict", "{\"session_id\": \"s-c\", \"visitor_id\": \"v-c\"}");
        assert_int_equal(r.status, 200);
        o = sh_json(&r);
        f = json_object_get(o, "features");
        assert_true(json_number_value(json_object_get(f, "OperatingSystems")) == 7);
        assert_true(json_number_value(json_object_get(f, "Browser")) == 2);
        json_decref(o);
        sh_resp_free(&r);
    }
    assert_int_equal(sh_stop(&sv), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_start_failures),
        cmocka_unit_test(test_config_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
