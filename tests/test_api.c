/*
 * test_api.c - the shared library exports exactly the functions declared in
 * include/opecom.h, nothing more (internal names stay hidden) and nothing
 * less.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

enum { MAX_NAMES = 256 };

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every "OPECOM_API <type> *name(" in the header. */
static size_t header_names(char **names)
{
    FILE *f = fopen("include/opecom.h", "r");
    assert_non_null(f);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f) && n < MAX_NAMES) {
        if (strncmp(line, "OPECOM_API ", 11) != 0)
            continue;
        char *paren = strchr(line, '(');
        assert_non_null(paren);
        char *start = paren;
        while (start > line && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                                (start[-1] >= '0' && start[-1] <= '9')))
            start--;
        *paren = '\0';
        names[n++] = strdup(start);
    }
    fclose(f);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

/* Every defined dynamic text symbol of the shared library. */
static size_t exported_names(char **names)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/libopecom.so", tu_build_dir());
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char addr[64], type[8], name[256];
    size_t n = 0;
    while (fscanf(p, "%63s %7s %255s", addr, type, name) == 3 && n < MAX_NAMES)
        names[n++] = strdup(name);
    assert_int_equal(pclose(p), 0);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

static void test_shared_object_exports_exactly_the_header(void **state)
{
    (void)state;
    char *want[MAX_NAMES], *got[MAX_NAMES];
    size_t nw = header_names(want), ng = exported_names(got);
    assert_true(nw >= 15);
    for (size_t i = 0; i < ng; i++) {
        if (!bsearch(&got[i], want, nw, sizeof *want, cmp_str))
            fail_msg("exported but not in opecom.h: %s", got[i]);
    }
    for (size_t i = 0; i < nw; i++) {
        if (!bsearch(&want[i], got, ng, sizeof *got, cmp_str))
            fail_msg("declared in opecom.h but not exported: %s", want[i]);
    }
    assert_int_equal(ng, nw);
    for (size_t i = 0; i < nw; i++)
        free(want[i]);
    for (size_t i = 0; i < ng; i++)
        free(got[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_object_exports_exactly_the_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
