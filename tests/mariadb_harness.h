/*
 * mariadb_harness.h - a real MariaDB server for the tests: Debian's
 * mariadbd (package mariadb-server) in a scratch folder, on a private unix
 * socket (and 127.0.0.1 on a free port when asked), with a database and a
 * user with a password; stopped and removed at the end.
 *
 *   mh m;
 *   int rc = mh_start(&m, tcp);  0 running; 1 mariadb-server is missing
 *                                (m.why says so: skip); -1 failed (stderr)
 *   m.url        "mariadb://opecom:PW@localhost/opecom?socket=DIR/sock"
 *   mh_new_db    another empty database for the same user, and its URL
 *   mh_exec      runs SQL as root
 *   mh_stop(&m)
 *
 * The user gets exactly the grants opecom-server documents: SELECT,
 * INSERT, UPDATE, CREATE, INDEX, CREATE VIEW and REFERENCES on its
 * database. Its password needs percent-encoding in a URL (MH_PASSWORD).
 *
 * Every wait is bounded (install, start, stop; then SIGKILL). A leftover
 * server would block the next run, so: the server gets SIGKILL when the
 * test process dies (PR_SET_PDEATHSIG), and an atexit handler and
 * SIGINT/SIGTERM/SIGHUP/SIGALRM handlers kill it and remove the folder.
 *
 * Functions are static and marked unused, like server_harness.h.
 */
#ifndef OPECOM_MARIADB_HARNESS_H
#define OPECOM_MARIADB_HARNESS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#define MH_UNUSED __attribute__((unused))
#define MH_INSTALL_MS 60000
#define MH_START_MS 30000
#define MH_STOP_MS 15000
#define MH_USER "opecom"
#define MH_PASSWORD "s3cr:t@/pw%"            /* as the server knows it */
#define MH_PASSWORD_URL "s3cr%3At%40%2Fpw%25" /* percent-encoded */

typedef struct mh {
    char dir[200];      /* scratch folder */
    char sock[240];     /* unix socket */
    char url[1024];     /* mariadb://... of database "opecom" */
    char why[256];      /* mh_start returned 1: why the tests skip */
    int port;           /* TCP port on 127.0.0.1, 0: none */
    pid_t pid;
    MYSQL *root;        /* root's connection */
} mh;

/* ===================================================================== *
 * Leftovers: what a signal or exit must clean
 * ===================================================================== */

static volatile pid_t mh_live_pid;
static char mh_live_dir[200];
static char *const mh_rm_env[] = {NULL};

/* Async-signal-safe: kill, waitpid, fork, execve. */
static void mh_cleanup_now(void) {
    pid_t pid = mh_live_pid;
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        mh_live_pid = 0;
    }
    if (mh_live_dir[0] != '\0') {
        pid_t rm = fork();
        if (rm == 0) {
            char *const argv[] = {"/bin/rm", "-rf", mh_live_dir, NULL};
            execve("/bin/rm", argv, mh_rm_env);
            _exit(127);
        }
        if (rm > 0)
            waitpid(rm, NULL, 0);
        mh_live_dir[0] = '\0';
    }
}

static void mh_on_signal(int sig) {
    mh_cleanup_now();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void mh_install_cleanup(void) {
    static int installed;
    if (installed)
        return;
    installed = 1;
    atexit(mh_cleanup_now);
    signal(SIGINT, mh_on_signal);
    signal(SIGTERM, mh_on_signal);
    signal(SIGHUP, mh_on_signal);
    signal(SIGALRM, mh_on_signal);
}

/* ===================================================================== *
 * Processes
 * ===================================================================== */

static long long mh_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void mh_sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The program's path in the usual folders, or NULL. */
static const char *mh_find(const char *name) {
    static char path[8][256];
    static int ring;
    static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin",
                                       "/usr/local/sbin", "/usr/local/bin"};
    char *p = path[ring++ % 8];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof path[0], "%s/%s", dirs[i], name);
        if (access(p, X_OK) == 0)
            return p;
    }
    return NULL;
}

/* Starts argv with stdout and stderr appended to log, in its own process
 * group, killed when this process dies. @return its pid or -1. */
static pid_t mh_spawn(char *const argv[], const char *log) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid at most ms; kills its group when it takes longer.
 * @return its exit status, -1 when it was killed. */
static int mh_wait(pid_t pid, long long ms) {
    long long until = mh_now_ms() + ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0)
            return -1;
        if (mh_now_ms() >= until) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        mh_sleep_ms(20);
    }
}

/* The last lines of a log on stderr, to say why something failed. */
static void mh_show_log(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    static char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "# --- %s (end) ---\n%s\n# ---\n", path, buf);
}

static int mh_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* ===================================================================== *
 * SQL as root
 * ===================================================================== */

MH_UNUSED static int mh_exec(mh *m, const char *sql) {
    if (mysql_query(m->root, sql) != 0) {
        fprintf(stderr, "# mariadb (root): %s: %s\n", sql, mysql_error(m->root));
        return -1;
    }
    MYSQL_RES *r = mysql_store_result(m->root);
    mysql_free_result(r);
    return 0;
}

/* How many connections user has open, -1 on error. */
MH_UNUSED static int mh_connections(mh *m, const char *user) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '%s'", user);
    if (mysql_query(m->root, sql) != 0)
        return -1;
    MYSQL_RES *r = mysql_store_result(m->root);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    int n = row && row[0] ? atoi(row[0]) : -1;
    mysql_free_result(r);
    return n;
}

/* Kills every connection of user (as a crash or a restart of the
 * database would end them). @return how many, -1 on error. */
MH_UNUSED static int mh_kill_user(mh *m, const char *user) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '%s'", user);
    if (mysql_query(m->root, sql) != 0)
        return -1;
    MYSQL_RES *r = mysql_store_result(m->root);
    if (r == NULL)
        return -1;
    unsigned long ids[256];
    int n = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r)) != NULL && n < 256)
        ids[n++] = strtoul(row[0], NULL, 10);
    mysql_free_result(r);
    for (int i = 0; i < n; i++) {
        snprintf(sql, sizeof sql, "KILL CONNECTION %lu", ids[i]);
        mysql_query(m->root, sql); /* one may have ended meanwhile */
    }
    return n;
}

/* Creates database name for the user and writes its URL (over TCP when
 * tcp and the server listens there). @return 0 or -1. */
MH_UNUSED static int mh_new_db(mh *m, const char *name, int tcp, char *url, size_t size) {
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE DATABASE `%s`", name);
    if (mh_exec(m, sql) != 0)
        return -1;
    snprintf(sql, sizeof sql,
             "GRANT SELECT, INSERT, UPDATE, CREATE, INDEX, CREATE VIEW, REFERENCES ON `%s`.*"
             " TO '" MH_USER "'@'localhost', '" MH_USER "'@'127.0.0.1'",
             name);
    if (mh_exec(m, sql) != 0)
        return -1;
    if (tcp && m->port > 0)
        snprintf(url, size, "mariadb://%s:%s@127.0.0.1:%d/%s", MH_USER, MH_PASSWORD_URL, m->port,
                 name);
    else
        snprintf(url, size, "mariadb://%s:%s@localhost/%s?socket=%s", MH_USER, MH_PASSWORD_URL,
                 name, m->sock);
    return 0;
}

/* ===================================================================== *
 * Start and stop
 * ===================================================================== */

MH_UNUSED static void mh_stop(mh *m) {
    if (m->root) {
        mysql_close(m->root);
        m->root = NULL;
    }
    if (m->pid > 0) {
        kill(m->pid, SIGTERM);
        if (mh_wait(m->pid, MH_STOP_MS) < 0)
            fprintf(stderr, "# mariadbd did not stop within %d ms: killed\n", MH_STOP_MS);
        m->pid = 0;
        mh_live_pid = 0;
    }
    if (m->dir[0] != '\0') {
        char *const argv[] = {"/bin/rm", "-rf", m->dir, NULL};
        pid_t rm = mh_spawn(argv, "/dev/null");
        if (rm < 0 || mh_wait(rm, MH_STOP_MS) != 0)
            fprintf(stderr, "# could not remove %s\n", m->dir);
        m->dir[0] = '\0';
        mh_live_dir[0] = '\0';
    }
}

/* @return 0 running, 1 mariadb-server is not installed (m->why), -1 failed. */
MH_UNUSED static int mh_start(mh *m, int tcp) {
    memset(m, 0, sizeof *m);
    const char *server = mh_find("mariadbd");
    const char *install = mh_find("mariadb-install-db");
    if (server == NULL || install == NULL) {
        snprintf(m->why, sizeof m->why,
                 "mariadbd not found: install Debian's mariadb-server package"
                 " (tools/install-deps.sh test)");
        return 1;
    }
    mh_install_cleanup();
    const char *tmp = getenv("TMPDIR");
    snprintf(m->dir, sizeof m->dir, "%s/opecom-mariadb-XXXXXX",
             tmp && tmp[0] && strlen(tmp) < 100 ? tmp : "/tmp");
    if (mkdtemp(m->dir) == NULL) {
        fprintf(stderr, "# cannot make a scratch folder %s\n", m->dir);
        m->dir[0] = '\0';
        return -1;
    }
    snprintf(mh_live_dir, sizeof mh_live_dir, "%s", m->dir);
    snprintf(m->sock, sizeof m->sock, "%s/sock", m->dir);
    char datadir[300], log[300], pidfile[300], a_datadir[320], a_sock[320], a_pid[320],
        a_log[320], a_port[32], tmpdir[300], a_tmp[320];
    snprintf(datadir, sizeof datadir, "%s/data", m->dir);
    /* its own temporary folder: another mariadbd's in /tmp must not touch it */
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", m->dir);
    snprintf(a_tmp, sizeof a_tmp, "--tmpdir=%s", tmpdir);
    mkdir(tmpdir, 0700);
    snprintf(log, sizeof log, "%s/mariadbd.log", m->dir);
    snprintf(pidfile, sizeof pidfile, "%s/mariadbd.pid", m->dir);
    snprintf(a_datadir, sizeof a_datadir, "--datadir=%s", datadir);
    snprintf(a_sock, sizeof a_sock, "--socket=%s", m->sock);
    snprintf(a_pid, sizeof a_pid, "--pid-file=%s", pidfile);
    snprintf(a_log, sizeof a_log, "--log-error=%s", log);
    int root = geteuid() == 0;

    /* 1. the system tables */
    char *inst[] = {(char *)install, "--no-defaults", a_datadir, a_tmp,
                    "--auth-root-authentication-method=normal", "--skip-test-db",
                    "--skip-name-resolve", "--innodb-log-file-size=16M",
                    root ? "--user=root" : NULL, NULL};
    pid_t pid = mh_spawn(inst, log);
    int rc = pid < 0 ? -1 : mh_wait(pid, MH_INSTALL_MS);
    if (rc != 0) {
        fprintf(stderr, "# mariadb-install-db failed (%d)\n", rc);
        mh_show_log(log);
        mh_stop(m);
        return -1;
    }

    /* 2. the server */
    if (tcp) {
        m->port = mh_free_port();
        snprintf(a_port, sizeof a_port, "--port=%d", m->port);
    }
    char *argv[] = {(char *)server, "--no-defaults", a_datadir, a_tmp, a_sock, a_pid, a_log,
                    "--innodb-flush-log-at-trx-commit=1", "--innodb-log-file-size=16M",
                    "--innodb-buffer-pool-size=64M", "--skip-name-resolve",
                    "--max-connections=100",
                    tcp ? "--bind-address=127.0.0.1" : "--skip-networking",
                    tcp ? a_port : (root ? "--user=root" : NULL),
                    tcp && root ? "--user=root" : NULL, NULL};
    m->pid = mh_spawn(argv, log);
    if (m->pid < 0) {
        m->pid = 0;
        mh_stop(m);
        return -1;
    }
    mh_live_pid = m->pid;

    /* 3. wait until it answers */
    long long until = mh_now_ms() + MH_START_MS;
    while (m->root == NULL) {
        if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
            m->pid = 0;
            mh_live_pid = 0;
            fprintf(stderr, "# mariadbd exited while starting\n");
            mh_show_log(log);
            mh_stop(m);
            return -1;
        }
        MYSQL *c = mysql_init(NULL);
        unsigned timeout = 1;
        mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        if (mysql_real_connect(c, "localhost", "root", "", NULL, 0, m->sock, 0) != NULL) {
            m->root = c;
            break;
        }
        mysql_close(c);
        if (mh_now_ms() >= until) {
            fprintf(stderr, "# mariadbd did not answer within %d ms\n", MH_START_MS);
            mh_show_log(log);
            mh_stop(m);
            return -1;
        }
        mh_sleep_ms(100);
    }

    /* 4. the user (no anonymous user may shadow it) and its database */
    if (mh_exec(m, "DELETE FROM mysql.global_priv WHERE User = ''") != 0 ||
        mh_exec(m, "FLUSH PRIVILEGES") != 0 ||
        mh_exec(m, "CREATE USER '" MH_USER "'@'localhost' IDENTIFIED BY '" MH_PASSWORD "',"
                   " '" MH_USER "'@'127.0.0.1' IDENTIFIED BY '" MH_PASSWORD "'") != 0 ||
        mh_new_db(m, "opecom", 0, m->url, sizeof m->url) != 0) {
        mh_stop(m);
        return -1;
    }
    return 0;
}

#endif
