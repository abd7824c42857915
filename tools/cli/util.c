/*
 * util.c - what every `opecom` subcommand needs besides its own logic:
 * error messages in one format ("opecom: ..."), a small option parser that
 * accepts the usual long/short spellings without getopt_long (not POSIX),
 * model loading that reports the library's detailed message, and input and
 * output files. Output to a regular file goes through a temporary name and a
 * rename, so a run that fails half way never leaves a truncated result.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ===================================================================== *
 * Messages
 * ===================================================================== */

void cli_error(const char *fmt, ...) {
    va_list ap;
    cli_progress_interrupt();
    fputs("opecom: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    cli_progress_interrupt();
    fprintf(stderr, "opecom %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'opecom %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

/* ===================================================================== *
 * Options
 * ===================================================================== */

typedef struct cli_args {
    int argc;
    char **argv;
    int next;          /* index of the next argument to look at */
    const char *arg;   /* the current argument */
    int only_positional;
} cli_args;

/* @return 1 when a.arg holds the next argument, 0 at the end. */
static int args_next(cli_args *a) {
    while (a->next < a->argc) {
        a->arg = a->argv[a->next++];
        if (!a->only_positional && strcmp(a->arg, "--") == 0) {
            a->only_positional = 1;
            continue;
        }
        return 1;
    }
    a->arg = NULL;
    return 0;
}

static int is_option(const cli_args *a) {
    return !a->only_positional && a->arg[0] == '-' && a->arg[1] != '\0';
}

/* @return 1 if the current argument is the flag (long or short). */
static int args_flag(cli_args *a, const char *lng, const char *shrt) {
    return is_option(a) &&
           ((lng && strcmp(a->arg, lng) == 0) || (shrt && strcmp(a->arg, shrt) == 0));
}

/* @return 1 and sets *value if the current argument is the option, 0 if it
 * is not, -1 (after printing a usage error) if its value is missing. */
static int args_value(cli_args *a, const char *lng, const char *shrt, const char **value) {
    const char *arg = a->arg;
    const char *name;
    if (!is_option(a))
        return 0;
    if (lng && strcmp(arg, lng) == 0) {
        name = lng;
    } else if (shrt && strcmp(arg, shrt) == 0) {
        name = shrt;
    } else if (lng && strncmp(arg, lng, strlen(lng)) == 0 && arg[strlen(lng)] == '=') {
        *value = arg + strlen(lng) + 1;
        return 1;
    } else if (shrt && strlen(shrt) == 2 && strncmp(arg, shrt, 2) == 0 && arg[1] != '-') {
        *value = arg + 2; /* "-mMODEL" */
        return 1;
    } else {
        return 0;
    }
    if (a->next >= a->argc) {
        cli_usage_error(a->argv[0], "option '%s' needs a value", name);
        return -1;
    }
    *value = a->argv[a->next++];
    return 1;
}

int cli_args_parse(int argc, char **argv, const char *usage, const cli_option *opts,
                   const char **positional, const char *noun) {
    cli_args a = {argc, argv, 1, NULL, 0};
    const cli_option *o;
    int n_positional = 0;
    while (args_next(&a)) {
        int r = 0;
        if (args_flag(&a, "--help", "-h")) {
            fputs(usage, stdout);
            return -1;
        }
        for (o = opts; o->lng || o->shrt; o++) {
            if (o->flag ? (r = args_flag(&a, o->lng, o->shrt)) != 0
                        : (r = args_value(&a, o->lng, o->shrt, o->value)) != 0)
                break;
        }
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0) {
            if (o->flag)
                *o->flag = 1;
        } else if (!is_option(&a)) {
            *positional = a.arg;
            n_positional++;
        } else {
            return cli_usage_error(argv[0], "unknown option '%s'", a.arg);
        }
    }
    for (o = opts; o->lng || o->shrt; o++) {
        if (o->required && *o->value == NULL)
            return cli_usage_error(argv[0], "%s is required", o->lng);
    }
    if (n_positional > 1)
        return cli_usage_error(argv[0], "one %s at most (got %d)", noun, n_positional);
    return 0;
}

/* ===================================================================== *
 * Option values and output formatting
 * ===================================================================== */

int cli_parse_number(const char *s, double *out) {
    char *end;
    double v;
    if (s[0] == '\0' || s[0] == ' ' || s[0] == '\t')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int cli_parse_threshold(const char *s, double *out) {
    double v;
    if (cli_parse_number(s, &v) != 0 || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

int cli_parse_on_error(const char *s, cli_on_error *out) {
    if (strcmp(s, "stop") == 0)
        *out = CLI_ON_ERROR_STOP;
    else if (strcmp(s, "skip") == 0)
        *out = CLI_ON_ERROR_SKIP;
    else
        return -1;
    return 0;
}

void cli_put_csv_field(FILE *fp, const char *s, size_t len) {
    size_t i;
    int quote = len > 0 && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' ||
                            s[len - 1] == '\t');
    for (i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        fwrite(s, 1, len, fp);
        return;
    }
    putc('"', fp);
    for (i = 0; i < len; i++) {
        if (s[i] == '"')
            putc('"', fp);
        putc(s[i], fp);
    }
    putc('"', fp);
}

void cli_put_json_string(FILE *fp, const char *s, size_t len) {
    size_t i;
    putc('"', fp);
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(fp, "\\u%04x", ch);
            else
                putc(ch, fp);
        }
    }
    putc('"', fp);
}

void cli_put_json_number(FILE *fp, double v) {
    if (isfinite(v))
        fprintf(fp, "%.17g", v);
    else
        fputs("null", fp);
}

/* ===================================================================== *
 * Model and files
 * ===================================================================== */

int cli_load_model(const char *path, opecom_model **out) {
    opecom_error err;
    opecom_status st;
    memset(&err, 0, sizeof(err));
    st = opecom_model_load(path, NULL, out, &err);
    if (st != OPECOM_OK) {
        if (err.message[0])
            cli_error("%s: cannot load model: %s (%s)", path, opecom_strerror(st), err.message);
        else
            cli_error("%s: cannot load model: %s", path, opecom_strerror(st));
        *out = NULL;
        return CLI_EXIT_MODEL;
    }
    return CLI_EXIT_OK;
}

int cli_open_input(const char *path, FILE **out, const char **name) {
    if (path == NULL || strcmp(path, "-") == 0) {
        *out = stdin;
        *name = "<stdin>";
        return CLI_EXIT_OK;
    }
    *name = path;
    *out = fopen(path, "rb");
    if (*out == NULL) {
        cli_error("%s: %s", path, strerror(errno));
        return CLI_EXIT_DATA;
    }
    return CLI_EXIT_OK;
}

int cli_output_open(cli_output *o, const char *path) {
    struct stat sb;
    int fd;
    memset(o, 0, sizeof(*o));
    if (path == NULL || strcmp(path, "-") == 0) {
        o->fp = stdout;
        return CLI_EXIT_OK;
    }
    o->path = path;
    /* Devices, pipes and the like are written in place; regular files (or
     * new ones) through a temporary name in the same folder. */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        o->fp = fopen(path, "wb");
        if (o->fp == NULL) {
            cli_error("%s: %s", path, strerror(errno));
            return CLI_EXIT_DATA;
        }
        return CLI_EXIT_OK;
    }
    o->tmp_path = malloc(strlen(path) + sizeof(".tmpXXXXXX"));
    if (o->tmp_path == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_DATA;
    }
    strcpy(o->tmp_path, path);
    strcat(o->tmp_path, ".tmpXXXXXX");
    fd = mkstemp(o->tmp_path);
    if (fd < 0) {
        cli_error("%s: %s", path, strerror(errno));
        free(o->tmp_path);
        o->tmp_path = NULL;
        return CLI_EXIT_DATA;
    }
    /* mkstemp makes the file 0600; give the result the usual umask mode. */
    {
        mode_t mask = umask(0);
        umask(mask);
        (void)fchmod(fd, 0666 & ~mask);
    }
    o->fp = fdopen(fd, "wb");
    if (o->fp == NULL) {
        cli_error("%s: %s", path, strerror(errno));
        close(fd);
        unlink(o->tmp_path);
        free(o->tmp_path);
        o->tmp_path = NULL;
        return CLI_EXIT_DATA;
    }
    return CLI_EXIT_OK;
}

int cli_output_commit(cli_output *o) {
    const char *name = o->path ? o->path : "<stdout>";
    int bad = ferror(o->fp) != 0;
    if (fflush(o->fp) != 0)
        bad = 1;
    if (o->fp != stdout && fclose(o->fp) != 0)
        bad = 1;
    o->fp = NULL;
    if (bad) {
        cli_error("%s: write error: %s", name, strerror(errno));
        if (o->tmp_path) {
            unlink(o->tmp_path);
            free(o->tmp_path);
            o->tmp_path = NULL;
        }
        return CLI_EXIT_DATA;
    }
    if (o->tmp_path) {
        if (rename(o->tmp_path, o->path) != 0) {
            cli_error("%s: %s", o->path, strerror(errno));
            unlink(o->tmp_path);
            free(o->tmp_path);
            o->tmp_path = NULL;
            return CLI_EXIT_DATA;
        }
        free(o->tmp_path);
        o->tmp_path = NULL;
    }
    return CLI_EXIT_OK;
}

void cli_output_abort(cli_output *o) {
    if (o->fp == NULL)
        return;
    if (o->fp == stdout) {
        fflush(stdout);
    } else {
        fclose(o->fp);
    }
    o->fp = NULL;
    if (o->tmp_path) {
        unlink(o->tmp_path);
        free(o->tmp_path);
        o->tmp_path = NULL;
    }
}
