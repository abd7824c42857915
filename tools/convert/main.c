/*
 * main.c - opecom-convert: turns exported TabM weights plus a JSON spec into
 * a validated .opm model file, or checks an existing one.
 *
 *   opecom-convert --weights W.npz|W.safetensors [--spec S.json] -o M.opm
 *   opecom-convert --verify M.opm
 *
 * Exit status: 0 success, 1 invalid input (one line on stderr,
 * "opecom-convert: <file>: <detail>"), 2 usage error. The written file is
 * loaded back with opecom_model_load before the conversion counts as done.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"

#define PROG "opecom-convert"
#define EXIT_INVALID 1
#define EXIT_USAGE 2

static void usage(FILE *out) {
    fprintf(out,
            "usage: " PROG " --weights W.npz|W.safetensors [--spec S.json] -o M.opm\n"
            "       " PROG " --verify M.opm\n"
            "\n"
            "Converts exported TabM weights and their JSON spec into a .opm model file,\n"
            "or checks a model file and prints its summary.\n"
            "\n"
            "  --weights FILE   float32 tensors: .npz (stored or deflated) or .safetensors\n"
            "  --spec FILE      the JSON spec (opecom-spec/1); required for .npz, optional\n"
            "                   for .safetensors, which may carry it as __metadata__.opecom_spec\n"
            "  -o, --output FILE  the model file to write (atomically)\n"
            "  --verify FILE    load FILE and print format, architecture and features\n"
            "  -h, --help       this text\n"
            "  --version        program and library versions\n"
            "\n"
            "Exit status: 0 ok, 1 invalid input, 2 usage error.\n");
}

static int usage_error(const char *what, const char *arg) {
    fprintf(stderr, PROG ": %s%s%s%s\nTry '" PROG " --help'.\n", what, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    return EXIT_USAGE;
}

static int fail(const char *file, const char *detail) {
    fprintf(stderr, PROG ": %s: %s\n", file, detail);
    return EXIT_INVALID;
}

/* Reads a whole file into a malloc'd buffer with a NUL after the end. */
static int read_file(const char *path, unsigned char **out, size_t *len, cv_err *e) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cv_fail(e, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16;
    size_t n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            return cv_fail(e, "out of memory");
        }
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        unsigned char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (bigger == NULL)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cv_fail(e, "read error");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int verify(const char *path) {
    opecom_model *model = NULL;
    opecom_error err;
    memset(&err, 0, sizeof err);
    if (opecom_model_load(path, NULL, &model, &err) != OPECOM_OK) {
        err.message[sizeof err.message - 1] = '\0';
        return fail(path, err.message[0] ? err.message : opecom_strerror(err.status));
    }
    printf("%s: valid model\n", path);
    cv_print_summary(model);
    opecom_model_free(model);
    return 0;
}

static int convert(const char *weights, const char *spec_path, const char *output) {
    int is_npz = ends_with(weights, ".npz");
    int rc = EXIT_INVALID;
    cv_err e;
    unsigned char *wbuf = NULL;
    unsigned char *sbuf = NULL;
    size_t wlen;
    size_t slen = 0;
    cv_tensors ts;
    cv_spec spec;
    opecom_block_desc *blocks = NULL;
    opecom_model *model = NULL;
    memset(&ts, 0, sizeof ts);
    memset(&spec, 0, sizeof spec);

    if (read_file(weights, &wbuf, &wlen, &e) < 0 ||
        (is_npz ? cv_npz_read(wbuf, wlen, &ts, &e) : cv_safetensors_read(wbuf, wlen, &ts, &e)) < 0) {
        fail(weights, e.msg);
        goto done;
    }
    free(wbuf);
    wbuf = NULL;

    const char *spec_file = spec_path;
    const char *spec_text;
    if (spec_path != NULL) {
        if (read_file(spec_path, &sbuf, &slen, &e) < 0) {
            fail(spec_path, e.msg);
            goto done;
        }
        spec_text = (const char *)sbuf;
    } else if (ts.spec != NULL) {
        spec_file = weights;
        spec_text = ts.spec;
        slen = strlen(ts.spec);
    } else {
        fail(weights, is_npz ? "no spec: a .npz cannot carry one, pass --spec S.json"
                             : "no spec: pass --spec S.json or embed it in "
                               "__metadata__ as 'opecom_spec'");
        goto done;
    }
    if (cv_spec_parse(spec_text, slen, &spec, &e) < 0) {
        fail(spec_file, e.msg);
        goto done;
    }

    blocks = calloc(spec.n_blocks, sizeof *blocks);
    if (blocks == NULL) {
        fail(weights, "out of memory");
        goto done;
    }
    opecom_model_desc desc;
    if (cv_model_build(&spec, &ts, spec_text, blocks, &desc, &e) < 0) {
        fail(weights, e.msg);
        goto done;
    }

    opecom_error err;
    memset(&err, 0, sizeof err);
    if (opecom_model_save(&desc, output, &err) != OPECOM_OK) {
        err.message[sizeof err.message - 1] = '\0';
        fail(output, err.message[0] ? err.message : opecom_strerror(err.status));
        goto done;
    }
    memset(&err, 0, sizeof err);
    if (opecom_model_load(output, NULL, &model, &err) != OPECOM_OK) {
        char msg[320];
        err.message[sizeof err.message - 1] = '\0';
        snprintf(msg, sizeof msg, "the written file does not load back: %s",
                 err.message[0] ? err.message : opecom_strerror(err.status));
        fail(output, msg);
        goto done;
    }
    printf("wrote %s\n", output);
    cv_print_summary(model);
    rc = 0;

done:
    opecom_model_free(model);
    free(blocks);
    cv_spec_free(&spec);
    cv_tensors_free(&ts);
    free(sbuf);
    free(wbuf);
    return rc;
}

/* "--name VALUE" or "--name=VALUE"; advances *i past what it used. */
static int option_value(int argc, char **argv, int *i, const char *name, const char **out,
                        int *status) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=' && name[1] == '-') {
        *out = a + n + 1;
    } else if (a[n] == '\0') {
        if (*i + 1 >= argc) {
            *status = usage_error("missing value after", name);
            return 1;
        }
        *out = argv[++*i];
    } else {
        return 0;
    }
    if (**out == '\0')
        *status = usage_error("empty value for", name);
    return 1;
}

int main(int argc, char **argv) {
    const char *weights = NULL;
    const char *spec = NULL;
    const char *output = NULL;
    const char *verify_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int status = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf(PROG " %s (libopecom %s)\n", OPECOM_VERSION_STRING, opecom_version_string());
            return 0;
        }
        const char **slot = NULL;
        const char *value = NULL;
        if (option_value(argc, argv, &i, "--weights", &value, &status))
            slot = &weights;
        else if (option_value(argc, argv, &i, "--spec", &value, &status))
            slot = &spec;
        else if (option_value(argc, argv, &i, "--output", &value, &status) ||
                 option_value(argc, argv, &i, "-o", &value, &status))
            slot = &output;
        else if (option_value(argc, argv, &i, "--verify", &value, &status))
            slot = &verify_path;
        else
            return usage_error(a[0] == '-' ? "unknown option" : "unexpected argument", a);
        if (status != 0)
            return status;
        if (*slot != NULL)
            return usage_error("option given twice:", a);
        *slot = value;
    }

    if (verify_path != NULL) {
        if (weights != NULL || spec != NULL || output != NULL)
            return usage_error("--verify takes no other option", NULL);
        return verify(verify_path);
    }
    if (weights == NULL)
        return usage_error("missing --weights (or --verify)", NULL);
    if (output == NULL)
        return usage_error("missing -o M.opm", NULL);
    if (!ends_with(weights, ".npz") && !ends_with(weights, ".safetensors"))
        return usage_error("--weights must name a .npz or .safetensors file, not", weights);
    return convert(weights, spec, output);
}
