/*
 * server_harness.h - what the end-to-end tests of opecom-server need: start
 * $BUILD/opecom-server as a child process on a free port, with a fresh
 * database in a scratch folder, learn the port from the URL line it prints,
 * wait for /readyz, talk HTTP over a plain socket, stop it with SIGTERM.
 *
 * The HTTP client is deliberately tiny: one request per connection
 * ("Connection: close"), any method, raw path bytes (no normalisation, so
 * traversal attempts reach the server as written), extra header lines and a
 * body; it returns the status, the raw header block and the body. Every wait
 * has a timeout, so a hung server fails the test instead of blocking it.
 *
 * Servers are also recorded while they run: a failed test jumps out before
 * it stops its server, and sh_kill_leftovers (a cmocka teardown) kills what
 * is left. Replies that must be JSON are parsed with jansson (sh_json).
 *
 * Functions are static and marked unused: a binary that needs only some of
 * them still builds with -Werror.
 */
#ifndef OPECOM_SERVER_HARNESS_H
#define OPECOM_SERVER_HARNESS_H

#define _XOPEN_SOURCE 700 /* realpath */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "opecom.h"
#include "testutil.h"

#define SH_UNUSED __attribute__((unused))
#define SH_MODEL "models/shoppers-tabm-k4.opm"
#define SH_TIMEOUT_MS 20000

/* A valid /api/predict row: the 17 UCI features, as JSON. */
SH_UNUSED static const char sh_base_row[] =
    "{\"Administrative\": 2, \"Administrative_Duration\": 40.5, \"Informational\": 0,"
    " \"Informational_Duration\": 0, \"ProductRelated\": 18, \"ProductRelated_Duration\": 620,"
    " \"BounceRates\": 0.01, \"ExitRates\": 0.03, \"PageValues\": 12.4, \"SpecialDay\": 0,"
    " \"Month\": \"Nov\", \"OperatingSystems\": 2, \"Browser\": 2, \"Region\": 1,"
    " \"TrafficType\": 2, \"VisitorType\": \"Returning_Visitor\", \"Weekend\": false}";

/* ===================================================================== *
 * Scratch folder
 * ===================================================================== */

static char sh_dir[400]; /* per-binary scratch folder under $BUILD/tmp */

SH_UNUSED static int sh_make_dir(void) {
    char path[450];
    snprintf(path, sizeof(path), "%s/tmp", tu_build_dir());
    mkdir(path, 0777);
    snprintf(sh_dir, sizeof(sh_dir), "%s/tmp/server-XXXXXX", tu_build_dir());
    if (mkdtemp(sh_dir) == NULL) {
        fprintf(stderr, "# cannot make a scratch folder under %s/tmp\n", tu_build_dir());
        return -1;
    }
    return 0;
}

SH_UNUSED static void sh_remove_dir(void) {
    char cmd[500];
    if (sh_dir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sh_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", sh_dir);
}

/* "<scratch>/<name>" (a ring of static buffers). */
SH_UNUSED static const char *sh_path(const char *name) {
    static char path[8][600];
    static int i;
    i = (i + 1) % 8;
    snprintf(path[i], sizeof(path[i]), "%s/%s", sh_dir, name);
    return path[i];
}

SH_UNUSED static void sh_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

SH_UNUSED static char *sh_slurp(const char *path) {
    size_t n = 0;
    unsigned char *b = tu_read_file(path, &n);
    char *s = malloc(n + 1);
    assert_non_null(s);
    if (b != NULL)
        memcpy(s, b, n);
    s[b != NULL ? n : 0] = '\0';
    free(b);
    return s;
}

static void sh_sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int64_t sh_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ===================================================================== *
 * The server process
 * ===================================================================== */

typedef struct sh_server {
    pid_t pid;
    int port;
    int out_fd;          /* the child's stdout (the URL lines) */
    char urls[1024];     /* what it printed */
    char err_path[600];  /* its stderr */
    char db[128];        /* the name sh_start was given */
    char db_path[600];   /* its --db: a scratch file, or a URL (sh_db_target) */
} sh_server;

/* How sh_start turns a database name into the server's --db: NULL (the
 * default) gives the SQLite file of that name in the scratch folder; a test
 * that runs on MariaDB too sets its own (server_backends.h).
 * @return 0, or -1 when there is no such database (the test fails). */
static int (*sh_db_target)(const char *db, char *target, size_t size);

/* Servers started and not yet stopped (0: a free slot). */
static pid_t sh_running[16];

/* Replaces `old` by `pid` in sh_running (0 adds or removes). */
SH_UNUSED static void sh_note_running(pid_t old, pid_t pid) {
    size_t i;
    for (i = 0; i < sizeof(sh_running) / sizeof(sh_running[0]); i++)
        if (sh_running[i] == old) {
            sh_running[i] = pid;
            return;
        }
}

/* A cmocka teardown: kills the servers a failed test left running. */
SH_UNUSED static int sh_kill_leftovers(void **state) {
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(sh_running) / sizeof(sh_running[0]); i++)
        if (sh_running[i] > 0) {
            kill(sh_running[i], SIGKILL);
            waitpid(sh_running[i], NULL, 0);
            sh_running[i] = 0;
        }
    return 0;
}

/* Forks "$BUILD/opecom-server ARGV..." (argv NULL-terminated, without the
 * program) with stdout on a pipe and stderr in err_path. */
static pid_t sh_spawn(char *const *args, int *out_fd, const char *err_path) {
    char prog[600];
    char *argv[64];
    int fds[2];
    int n = 0;
    pid_t pid;
    snprintf(prog, sizeof(prog), "%s/opecom-server", tu_build_dir());
    argv[n++] = prog;
    while (args[n - 1] != NULL && n < 63) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        dup2(fds[1], 1);
        if (e >= 0)
            dup2(e, 2);
        if (in >= 0)
            dup2(in, 0);
        close(fds[0]);
        close(fds[1]);
        execv(prog, argv);
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    *out_fd = fds[0];
    return pid;
}

/* Waits for the child, at most timeout_ms; kills it after that.
 * @return its exit status, or -1 when it was killed or timed out. */
static int sh_wait(pid_t pid, int timeout_ms) {
    int64_t end = sh_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r < 0)
            return -1;
        if (sh_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sh_sleep_ms(5);
    }
}

typedef struct sh_run {
    int code;  /* exit status; -1 killed or timed out */
    char *out; /* stdout */
    char *err; /* stderr */
} sh_run;

/* Runs the server expecting it to stop by itself (bad settings, --help). */
SH_UNUSED static sh_run sh_run_server(char *const *args) {
    sh_run r = {-1, NULL, NULL};
    char err_path[600];
    char buf[8192];
    size_t len = 0;
    int fd = -1;
    pid_t pid;
    snprintf(err_path, sizeof(err_path), "%s/run-stderr", sh_dir);
    pid = sh_spawn(args, &fd, err_path);
    assert_true(pid > 0);
    for (;;) { /* read stdout to EOF (the child exits) */
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, SH_TIMEOUT_MS) <= 0)
            break;
        n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len + 1 >= sizeof(buf))
            break;
    }
    buf[len] = '\0';
    close(fd);
    r.code = sh_wait(pid, SH_TIMEOUT_MS);
    r.out = strdup(buf);
    r.err = sh_slurp(err_path);
    return r;
}

SH_UNUSED static void sh_run_free(sh_run *r) {
    free(r->out);
    free(r->err);
}

/* Starts a server with database `db` (a name in the scratch folder, or
 * what sh_db_target makes of it; fresh the first time the name is used)
 * and args (NULL-terminated; "--port 0 --db ..." are added), reads the
 * three URL lines and waits for /readyz. Fails the test when it does not
 * come up; its stderr is printed then. */
static int sh_get_status(int port, const char *path);

SH_UNUSED static void sh_start(sh_server *sv, const char *db, char *const *args) {
    char *all[64];
    size_t len = 0;
    int n = 0, i;
    int64_t end = sh_ms() + SH_TIMEOUT_MS;
    const char *p;
    memset(sv, 0, sizeof(*sv));
    snprintf(sv->db, sizeof(sv->db), "%s", db);
    if (sh_db_target == NULL)
        snprintf(sv->db_path, sizeof(sv->db_path), "%s/%s", sh_dir, db);
    else if (sh_db_target(db, sv->db_path, sizeof(sv->db_path)) != 0)
        fail_msg("no database for %s", db);
    all[n++] = "--port";
    all[n++] = "0";
    all[n++] = "--db";
    all[n++] = sv->db_path;
    for (i = 0; args != NULL && args[i] != NULL && n < 62; i++)
        all[n++] = args[i];
    all[n] = NULL;
    snprintf(sv->err_path, sizeof(sv->err_path), "%s/%s.stderr", sh_dir, db);
    sv->pid = sh_spawn(all, &sv->out_fd, sv->err_path);
    assert_true(sv->pid > 0);
    sh_note_running(0, sv->pid);
    /* The metrics line is the last of the three. */
    while (strstr(sv->urls, "metrics http://") == NULL ||
           strchr(strstr(sv->urls, "metrics http://"), '\n') == NULL) {
        struct pollfd pf = {sv->out_fd, POLLIN, 0};
        ssize_t r;
        int left = (int)(end - sh_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            break;
        r = read(sv->out_fd, sv->urls + len, sizeof(sv->urls) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        sv->urls[len] = '\0';
        if (len + 1 >= sizeof(sv->urls))
            break;
    }
    p = strstr(sv->urls, "opecom-server: store http://127.0.0.1:");
    if (p == NULL) {
        char *e = sh_slurp(sv->err_path);
        fprintf(stderr, "# the server did not start; stdout:\n%s# stderr:\n%s", sv->urls, e);
        free(e);
        kill(sv->pid, SIGKILL);
        sh_wait(sv->pid, 2000);
        sh_note_running(sv->pid, 0);
        fail_msg("opecom-server did not print its URLs");
    }
    sv->port = atoi(p + strlen("opecom-server: store http://127.0.0.1:"));
    assert_true(sv->port > 0 && sv->port < 65536);
    while (sh_get_status(sv->port, "/readyz") != 200) {
        if (sh_ms() > end)
            fail_msg("/readyz never answered 200");
        sh_sleep_ms(10);
    }
}

/* Like sh_start, with the JSON configuration text `config_json` written to
 * "<db>.json" in the scratch folder and passed as --config (after args). */
SH_UNUSED static void sh_start_config(sh_server *sv, const char *db, const char *config_json,
                                      char *const *args) {
    char cfg[600];
    char *all[64];
    int n = 0, i;
    snprintf(cfg, sizeof(cfg), "%s/%s.json", sh_dir, db);
    sh_write(cfg, config_json);
    for (i = 0; args != NULL && args[i] != NULL && n < 61; i++)
        all[n++] = args[i];
    all[n++] = "--config";
    all[n++] = cfg;
    all[n] = NULL;
    sh_start(sv, db, all);
}

/* SIGTERM, then the exit status (0 expected). */
SH_UNUSED static int sh_stop(sh_server *sv) {
    int code;
    if (sv->pid <= 0)
        return -1;
    kill(sv->pid, SIGTERM);
    code = sh_wait(sv->pid, SH_TIMEOUT_MS);
    sh_note_running(sv->pid, 0);
    close(sv->out_fd);
    sv->pid = 0;
    return code;
}

/* ===================================================================== *
 * HTTP client
 * ===================================================================== */

typedef struct sh_resp {
    int status;     /* -1: no answer */
    char *headers;  /* the header block, "Name: value\r\n" lines */
    char *body;     /* NUL-terminated */
    size_t body_len;
} sh_resp;

SH_UNUSED static void sh_resp_free(sh_resp *r) {
    free(r->headers);
    free(r->body);
    r->headers = r->body = NULL;
}

/* The value of header `name` (case-insensitive) in static memory, or NULL. */
SH_UNUSED static const char *sh_header(const sh_resp *r, const char *name) {
    static char value[512];
    const char *p = r->headers;
    size_t n = strlen(name);
    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            eol = p + strlen(p);
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            snprintf(value, sizeof(value), "%.*s", (int)(eol - v), v);
            return value;
        }
        p = *eol != '\0' ? eol + 2 : eol;
    }
    return NULL;
}

static int sh_send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends one request and reads the answer until the server closes.
 * headers: extra lines, each ending "\r\n" (NULL: none). body: NULL for
 * none; with body, Content-Length is added unless headers carry
 * Transfer-Encoding or raw_length is set (then only the given headers). */
SH_UNUSED static sh_resp sh_request_raw(int port, const char *method, const char *path,
                                        const char *headers, const char *body, size_t body_len,
                                        int add_length) {
    sh_resp r = {-1, NULL, NULL, 0};
    struct sockaddr_in a;
    char head[8192];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int64_t end = sh_ms() + SH_TIMEOUT_MS;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *sep;
    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return r;
    }
    snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
             method, path, headers != NULL ? headers : "");
    if (body != NULL && add_length)
        snprintf(head + strlen(head), sizeof(head) - strlen(head), "Content-Length: %zu\r\n",
                 body_len);
    snprintf(head + strlen(head), sizeof(head) - strlen(head), "\r\n");
    /* A write may fail when the server answers early and closes: the
     * answer is still read below. */
    if (sh_send_all(fd, head, strlen(head)) == 0 && body != NULL)
        sh_send_all(fd, body, body_len);
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t n;
        int left = (int)(end - sh_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            break;
        if (len + 4096 + 1 > cap) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (buf == NULL)
        return r;
    buf[len] = '\0';
    sep = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || sep == NULL) {
        free(buf);
        return r;
    }
    r.status = atoi(buf + 9);
    r.headers = strndup(strstr(buf, "\r\n") + 2, (size_t)(sep + 2 - (strstr(buf, "\r\n") + 2)));
    r.body_len = len - (size_t)(sep + 4 - buf);
    r.body = malloc(r.body_len + 1);
    assert_non_null(r.body);
    memcpy(r.body, sep + 4, r.body_len);
    r.body[r.body_len] = '\0';
    free(buf);
    return r;
}

SH_UNUSED static sh_resp sh_get(int port, const char *path) {
    return sh_request_raw(port, "GET", path, NULL, NULL, 0, 0);
}

/* POST with Content-Type: application/json. */
SH_UNUSED static sh_resp sh_post(int port, const char *path, const char *json) {
    return sh_request_raw(port, "POST", path, "Content-Type: application/json\r\n", json,
                          strlen(json), 1);
}

static int sh_get_status(int port, const char *path) {
    sh_resp r = sh_get(port, path);
    int st = r.status;
    sh_resp_free(&r);
    return st;
}

/* The body of a reply that must be JSON, parsed (json_decref it); fails the
 * test when it is not. */
SH_UNUSED static json_t *sh_json(const sh_resp *r) {
    json_error_t e;
    json_t *o = json_loads(r->body != NULL ? r->body : "", 0, &e);
    if (o == NULL)
        fail_msg("reply is not JSON (%s): %s", e.text, r->body != NULL ? r->body : "(none)");
    return o;
}

/* ===================================================================== *
 * Variants, as the server assigns them (FNV-1a 64, weights x 1000)
 * ===================================================================== */

SH_UNUSED static int sh_variant_for(const char *visitor, const double *weights, int n) {
    uint64_t h = 14695981039346656037ULL, total = 0;
    const unsigned char *p = (const unsigned char *)visitor;
    int i;
    if (*p == '\0')
        return 0;
    for (; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    for (i = 0; i < n; i++)
        total += (uint64_t)(weights[i] * 1000 + 0.5);
    h %= total;
    for (i = 0; i < n; i++) {
        uint64_t w = (uint64_t)(weights[i] * 1000 + 0.5);
        if (h < w)
            return i;
        h -= w;
    }
    return 0;
}

#endif
