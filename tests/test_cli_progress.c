/*
 * test_cli_progress.c - the progress line of the `opecom` tool, in process.
 *
 * progress.c is compiled into this test (it uses nothing else of the tool),
 * so its formatting can be checked with chosen times and byte counts, and
 * its silence checked with stderr sent to a file. The drawing on a real
 * terminal is tested end to end in test_cli.c (under script(1)).
 *
 * Run from the repository root: BUILD=build build/tests/test_cli_progress
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tools/cli/progress.c"
#include "testutil.h"

static void test_known_size_shows_bar_percent_and_eta(void **state) {
    char buf[160];
    size_t n;
    (void)state;
    /* a quarter of 400 MB in 10 s: 30 s to go */
    n = cli_progress_format(buf, sizeof(buf), 2500000, 10.0, 100u << 20, 400u << 20);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "[######..................]  25%  2.50M rows  250.0k rows/s  ETA "
                             "0:00:30");
}

static void test_unknown_size_shows_rows_and_rate(void **state) {
    char buf[160];
    (void)state;
    cli_progress_format(buf, sizeof(buf), 9000, 2.0, 123, 0);
    assert_string_equal(buf, "9000 rows  4500 rows/s");
    cli_progress_format(buf, sizeof(buf), 12345678, 4.0, 0, 0);
    assert_string_equal(buf, "12.35M rows  3.09M rows/s");
}

static void test_long_runs_and_overshoot(void **state) {
    char buf[160];
    (void)state;
    /* 1 % in 100 s: 9900 s = 2:45:00 to go */
    cli_progress_format(buf, sizeof(buf), 1000, 100.0, 1, 100);
    assert_non_null(strstr(buf, "   1%"));
    assert_non_null(strstr(buf, "ETA 2:45:00"));
    /* bytes read past the size (the file grew): capped at 100 % */
    cli_progress_format(buf, sizeof(buf), 10, 1.0, 200, 100);
    assert_non_null(strstr(buf, "[########################] 100%"));
    assert_non_null(strstr(buf, "ETA 0:00:00"));
    /* nothing read yet: no ETA */
    cli_progress_format(buf, sizeof(buf), 0, 0.0, 0, 100);
    assert_null(strstr(buf, "ETA"));
}

static void test_small_buffer_is_terminated(void **state) {
    char buf[8];
    (void)state;
    memset(buf, 'x', sizeof(buf));
    cli_progress_format(buf, sizeof(buf), 123456, 1.0, 5, 10);
    assert_int_equal(buf[7], '\0');
}

/* stderr not a terminal: start disables the bar; nothing is ever written. */
static void test_silent_when_stderr_is_a_file(void **state) {
    const char *path = tu_tmp_path("progress-stderr");
    FILE *f = fopen(path, "w+");
    int saved = dup(2);
    cli_progress p;
    size_t n;
    (void)state;
    assert_non_null(f);
    assert_true(saved >= 0);
    fflush(stderr);
    assert_true(dup2(fileno(f), 2) >= 0);
    cli_progress_start(&p, stdin);
    p.start -= 100.0; /* as if the run had been going for long */
    cli_progress_update(&p, 1000000);
    cli_progress_interrupt();
    cli_progress_end(&p);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(p.enabled, 0);
    fseek(f, 0, SEEK_END);
    n = (size_t)ftell(f);
    fclose(f);
    unlink(path);
    assert_int_equal(n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_size_shows_bar_percent_and_eta),
        cmocka_unit_test(test_unknown_size_shows_rows_and_rate),
        cmocka_unit_test(test_long_runs_and_overshoot),
        cmocka_unit_test(test_small_buffer_is_terminated),
        cmocka_unit_test(test_silent_when_stderr_is_a_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
