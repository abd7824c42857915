/*
 * replay.c - runs a fuzz target on files without libFuzzer, so any compiler
 * replays the corpus in `make test`. Arguments are files or directories (one
 * level). Each input gets 10 seconds: a hang is a failure, like a crash.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static const char *current;

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "replay: timeout (hang) on an input\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(3);
    _exit(2);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)n) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return -1;
    }
    current = path;
    alarm(10);
    LLVMFuzzerTestOneInput(buf, got);
    alarm(0);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGALRM, on_alarm);
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            count++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (run_file(path) != 0)
                return 1;
            count++;
        }
        if (d)
            closedir(d);
    }
    printf("%s: %d inputs replayed, no crash, no hang\n", argv[0], count);
    return count > 0 ? 0 : 1;
}
