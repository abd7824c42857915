/*
 * main.c - opecom-server: start-up order, signals, shutdown.
 *
 * Start-up: settings (config.c), each variant's model, metrics, the
 * database (store.c), the sessionizer and the replay of the event log
 * (live.c), then the HTTP daemon; only then are the URLs printed, so a
 * script that waits for them knows the server answers.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked in every thread (the
 * mask is set before any thread starts) and taken by sigwait here. SIGHUP
 * reloads every variant's model file (score.c: a file that fails is
 * refused and the old model keeps serving); the others stop the daemon,
 * commit what the writer still holds, and free everything.
 *
 * Any start-up error is one line on stderr and exit 1 (2 for a bad command
 * line).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "server.h"
#include "store.h"

static const char usage[] =
    "usage: opecom-server [--port N] [--db PATH] [--model PATH | --variant NAME=PATH:WEIGHT ...]\n"
    "                     [--config FILE] [--store-dir DIR] [--dashboard-dir DIR] [--threads N]\n"
    "\n"
    "  --port N          TCP port on all interfaces (default 8080; 0 picks a free one)\n"
    "  --db URL          the database: sqlite:PATH (or a bare PATH; created when\n"
    "                    missing; default opecom.db), or mariadb://USER:PASSWORD@HOST:PORT/DB\n"
    "                    (a unix socket: mariadb://USER:PASSWORD@localhost/DB?socket=PATH)\n"
    "  --model PATH      one model, as variant \"default\" (default models/shoppers-tabm-k4.opm)\n"
    "  --variant NAME=PATH:WEIGHT\n"
    "                    a model variant; repeat for an A/B test (the first is the control)\n"
    "  --config FILE     JSON configuration file; flags override it\n"
    "  --store-dir DIR   files served under / (default examples/store)\n"
    "  --dashboard-dir DIR\n"
    "                    files served under /dashboard/ (default examples/dashboard)\n"
    "  --threads N       HTTP worker threads, 1..256 (default 8)\n"
    "\n"
    "See docs/server.md for the API and the configuration file.\n";

int main(int argc, char **argv) {
    static srv s; /* large (the code table): not on the stack */
    char err[1024];
    srv_http *http = NULL;
    sigset_t sigs;
    int rc, i, sig, port;
    int live_ok = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    }
    err[0] = '\0';
    rc = srv_config_parse(argc, argv, &s.cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "opecom-server: %s\n", err);
        srv_config_free(&s.cfg);
        return rc == -2 ? 2 : 1;
    }

    /* Block the signals before any thread exists: every thread
     * inherits the mask, and only sigwait below takes them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    if (score_open(&s, err, sizeof(err)) != 0)
        goto fail;
    if (metrics_open(&s) != 0) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    s.store = srv_store_open(s.cfg.db, s.metrics, err, sizeof(err));
    if (s.store == NULL)
        goto fail;
    if (live_open(&s, err, sizeof(err)) != 0)
        goto fail;
    live_ok = 1;
    if (live_start(&s, err, sizeof(err)) != 0)
        goto fail;
    s.ready = 1;
    http = srv_http_start(&s, err, sizeof(err));
    if (http == NULL)
        goto fail;

    port = srv_http_port(http);
    printf("opecom-server: store http://127.0.0.1:%d/\n", port);
    printf("opecom-server: dashboard http://127.0.0.1:%d/dashboard/\n", port);
    printf("opecom-server: metrics http://127.0.0.1:%d/metrics\n", port);
    fflush(stdout);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        score_reload(&s, -1, err, sizeof(err)); /* logs each variant's outcome */
    }
    rc = 0;
    goto stop;

fail:
    fprintf(stderr, "opecom-server: %s\n", err);
stop:
    srv_http_stop(http); /* joins the workers: nothing reads s.ready after */
    s.ready = 0;
    if (live_ok)
        live_close(&s); /* stops the follower: it queues closed sessions */
    srv_store_close(s.store);
    metrics_close(&s);
    score_close(&s);
    srv_config_free(&s.cfg);
    return rc;
}
