/*
 * test_cli_stream.c - `opecom predict` streams: ~200 MB through a pipe in
 * flat memory.
 *
 * A child process generates the input on the fly (header, then a 1,000-row
 * block of generated sessions written over and over, each row carrying a
 * wide free-text column the model ignores, so the bytes are many without
 * the rows being slow to score) into opecom's standard input; the parent
 * counts the output lines as they come. Nothing holds the 200 MB. opecom's
 * peak resident memory comes from wait4's rusage and must stay under
 * MAX_RSS_KB, and close to what a 10-row input needs.
 *
 * Run from the repository root: BUILD=build build/tests/test_cli_stream
 */
#define _DEFAULT_SOURCE /* wait4 */
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <fcntl.h>

#include "test_cli_harness.h"

#define TARGET_BYTES (200ull << 20)
#define BLOCK_ROWS 1000
#define NOTE_BYTES 900
#define MAX_RSS_KB (30 * 1024)

typedef struct stream_result {
    int code;
    uint64_t lines;      /* output lines */
    long max_rss_kb;     /* opecom's peak resident set */
    uint64_t rows;       /* input rows written */
    uint64_t bytes;      /* input bytes written */
    double seconds;
} stream_result;

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* One block of rows, as CSV text (malloc'd), and its header. */
static char *make_block(size_t *len, char *header, size_t header_size) {
    char note[NOTE_BYTES + 1];
    size_t cap = BLOCK_ROWS * (NOTE_BYTES + 400);
    char *b = malloc(cap);
    size_t n = 0;
    size_t i;
    int c;
    assert_non_null(b);
    for (i = 0; i < NOTE_BYTES; i++)
        note[i] = (char)('a' + i % 26);
    note[NOTE_BYTES] = '\0';
    n = 0;
    header[0] = '\0';
    for (c = 0; c < N_UCI; c++)
        snprintf(header + strlen(header), header_size - strlen(header), "%s,", uci_name[c]);
    snprintf(header + strlen(header), header_size - strlen(header), "note\n");
    for (i = 0; i < BLOCK_ROWS; i++) {
        char field[N_UCI][32];
        session_fields(i, field);
        for (c = 0; c < N_UCI; c++)
            n += (size_t)snprintf(b + n, cap - n, "%s,", field[c]);
        n += (size_t)snprintf(b + n, cap - n, "\"%s, row %zu\"\n", note, i);
    }
    *len = n;
    return b;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            _exit(1); /* opecom went away: it reports why */
        p += w;
        n -= (size_t)w;
    }
}

/* Pipes `blocks` blocks through `opecom predict --model M -`. */
static stream_result stream(uint64_t blocks) {
    char header[1024];
    size_t block_len;
    char *block = make_block(&block_len, header, sizeof(header));
    char opecom[600];
    char err_path[600];
    char buf[1 << 16];
    int in[2];
    int out[2];
    pid_t writer;
    pid_t child;
    int st;
    struct rusage ru;
    stream_result r;
    double t0;

    memset(&r, 0, sizeof(r));
    snprintf(opecom, sizeof(opecom), "%s/opecom", tu_build_dir());
    snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    fflush(stdout);
    t0 = now();
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (fd >= 0)
            dup2(fd, 2);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl(opecom, opecom, "predict", "--model", model_path, "-", (char *)NULL);
        _exit(127);
    }
    writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        uint64_t k;
        close(in[0]);
        close(out[0]);
        close(out[1]);
        write_all(in[1], header, strlen(header));
        for (k = 0; k < blocks; k++)
            write_all(in[1], block, block_len);
        close(in[1]);
        _exit(0);
    }
    close(in[0]);
    close(in[1]);
    close(out[1]);
    for (;;) {
        ssize_t n = read(out[0], buf, sizeof(buf));
        ssize_t i;
        if (n <= 0)
            break;
        for (i = 0; i < n; i++)
            r.lines += buf[i] == '\n';
    }
    close(out[0]);
    assert_int_equal(waitpid(writer, &st, 0), writer);
    assert_int_equal(wait4(child, &st, 0, &ru), child);
    r.seconds = now() - t0;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.max_rss_kb = ru.ru_maxrss;
    r.rows = blocks * BLOCK_ROWS;
    r.bytes = strlen(header) + blocks * block_len;
    free(block);
    return r;
}

static void test_200mb_through_a_pipe_in_flat_memory(void **state) {
    char header[1024];
    size_t block_len;
    char *block = make_block(&block_len, header, sizeof(header));
    uint64_t blocks = (TARGET_BYTES + block_len - 1) / block_len;
    stream_result small;
    stream_result big;
    char *err;
    (void)state;
    free(block);

    small = stream(1);
    assert_int_equal(small.code, 0);
    assert_int_equal(small.lines, small.rows + 1);

    big = stream(blocks);
    err = slurp(scratch("stderr"));
    if (big.code != 0)
        fail_msg("opecom exited %d: %s", big.code, err);
    assert_string_equal(err, "");
    free(err);
    printf("# %.0f MB, %llu rows in %.2f s (%.0f rows/s, %.0f MB/s); peak RSS %ld KB "
           "(%llu rows: %ld KB)\n",
           (double)big.bytes / 1e6, (unsigned long long)big.rows, big.seconds,
           (double)big.rows / big.seconds, (double)big.bytes / 1e6 / big.seconds,
           big.max_rss_kb, (unsigned long long)small.rows, small.max_rss_kb);
    assert_true(big.bytes >= TARGET_BYTES);
    assert_int_equal(big.lines, big.rows + 1);
    assert_true(big.max_rss_kb < MAX_RSS_KB);
    /* flat: 200 MB need no more than a few MB over 1,000 rows */
    assert_true(big.max_rss_kb < small.max_rss_kb + 8 * 1024);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_200mb_through_a_pipe_in_flat_memory),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
