/*
 * progress.c - a one-line progress bar on stderr for long inputs.
 *
 * Drawn only when stderr is a terminal, never in the first
 * CLI_PROGRESS_DELAY seconds, then at most every REDRAW seconds; each draw
 * rewrites the line from its start ("\r" + text + erase to end of line), and
 * cli_progress_end erases it. The input's size comes from fstat (regular
 * files only, stdin included when redirected from one) and the bytes read so
 * far from ftello, which counts what the CSV reader has pulled in its 64 KiB
 * chunks: close enough for a percentage.
 *
 * One bar runs at a time; `active` lets cli_error erase it before printing,
 * so a warning in the middle of a run starts on a clean line.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW 0.1    /* seconds between draws */
#define BAR_WIDTH 24  /* characters inside the brackets */

static cli_progress *active;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, FILE *in) {
    struct stat sb;
    memset(p, 0, sizeof(*p));
    p->enabled = isatty(STDERR_FILENO);
    if (!p->enabled)
        return;
    p->in = in;
    if (in != NULL && fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
        p->total = (uint64_t)sb.st_size;
    p->start = now();
    p->last = p->start;
    active = p;
}

/* Shortest readable count: 950, 12.3k, 4.56M. */
static void human(char *buf, size_t size, double v) {
    if (v < 1e4)
        snprintf(buf, size, "%.0f", v);
    else if (v < 1e6)
        snprintf(buf, size, "%.1fk", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else
        snprintf(buf, size, "%.2fG", v / 1e9);
}

size_t cli_progress_format(char *buf, size_t size, uint64_t rows, double seconds,
                           uint64_t done_bytes, uint64_t total_bytes) {
    char nrows[32];
    char rate[32];
    size_t n;
    double per_s = seconds > 0 ? (double)rows / seconds : 0.0;
    if (size == 0)
        return 0;
    human(nrows, sizeof(nrows), (double)rows);
    human(rate, sizeof(rate), per_s);
    if (total_bytes > 0) {
        double frac = (double)done_bytes / (double)total_bytes;
        char bar[BAR_WIDTH + 1];
        int fill;
        int i;
        if (frac > 1.0)
            frac = 1.0;
        fill = (int)(frac * BAR_WIDTH);
        for (i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        if (frac > 0 && seconds > 0) {
            double eta = seconds * (1.0 - frac) / frac;
            unsigned long e = (unsigned long)(eta + 0.5);
            snprintf(buf, size, "[%s] %3.0f%%  %s rows  %s rows/s  ETA %lu:%02lu:%02lu", bar,
                     frac * 100.0, nrows, rate, e / 3600, e / 60 % 60, e % 60);
        } else {
            snprintf(buf, size, "[%s] %3.0f%%  %s rows  %s rows/s", bar, frac * 100.0, nrows,
                     rate);
        }
    } else {
        snprintf(buf, size, "%s rows  %s rows/s", nrows, rate);
    }
    n = strlen(buf);
    return n;
}

static void draw(cli_progress *p, double t) {
    char line[160];
    uint64_t done = 0;
    if (p->total > 0) {
        off_t pos = ftello(p->in);
        done = pos > 0 ? (uint64_t)pos : 0;
    }
    cli_progress_format(line, sizeof(line), p->rows, t - p->start, done, p->total);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->drawn = 1;
    p->last = t;
}

void cli_progress_update(cli_progress *p, uint64_t rows) {
    double t;
    if (!p->enabled)
        return;
    p->rows = rows;
    t = now();
    if (t - p->start < CLI_PROGRESS_DELAY || t - p->last < REDRAW)
        return;
    draw(p, t);
}

static void erase(cli_progress *p) {
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = 0;
    }
}

void cli_progress_end(cli_progress *p) {
    if (!p->enabled)
        return;
    erase(p);
    if (active == p)
        active = NULL;
    p->enabled = 0;
}

void cli_progress_interrupt(void) {
    if (active != NULL)
        erase(active);
}
