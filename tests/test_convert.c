/*
 * test_convert.c - end-to-end tests of opecom-convert ($BUILD/opecom-convert).
 *
 * Every fixture is made here at test time: a small TabM (k = 2, two blocks
 * of width 3, three features, d_in = 5) with synthetic weights, written as a
 * stored or deflated .npz (a tiny zip writer below), as a .safetensors with
 * the spec embedded, and as a spec .json. Each test then breaks one thing
 * (a spec key, a tensor's shape or dtype, a CRC, an offset...) and runs the
 * converter, checking the exit status and that the one-line message names
 * the key or tensor at fault. One test also feeds files written by numpy
 * itself, when numpy is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "opecom.h"

/* ===================================================================== *
 * Environment
 * ===================================================================== */

static char g_dir[256];        /* scratch directory */
static char g_convert[512];    /* the converter binary */
static char g_err[8192];       /* stderr of the last run */
static char g_out[8192];       /* stdout of the last run */

static const char SPEC[] =
    "{\n"
    " \"format\": \"opecom-spec/1\",\n"
    " \"task\": \"binary\",\n"
    " \"architecture\": {\"type\": \"tabm\", \"k\": 2, \"n_blocks\": 2, \"d_block\": 3, "
    "\"activation\": \"relu\"},\n"
    " \"features\": [\n"
    "  {\"name\": \"pages\", \"type\": \"numeric\", \"transform\": \"log1p\", \"mean\": 0.5, "
    "\"std\": 1.5, \"min\": 0},\n"
    "  {\"name\": \"rate\", \"type\": \"numeric\", \"transform\": \"quantile_normal\", "
    "\"mean\": 0, \"std\": 1, \"min\": 0, \"max\": 1, \"quantiles\": [0, 0.25, 0.5, 1]},\n"
    "  {\"name\": \"month\", \"type\": \"categorical\", \"categories\": [\"Feb\", \"Mar\", "
    "\"Nov\"]}\n"
    " ],\n"
    " \"threshold\": 0.4,\n"
    " \"training\": {\"note\": \"synthetic fixture\", \"free\": {\"any key\": [1, 2]}}\n"
    "}\n";

static void path_of(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", g_dir, name);
}

static size_t slurp(const char *path, char *out, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    if (f != NULL) {
        n = fread(out, 1, size - 1, f);
        fclose(f);
    }
    out[n] = '\0';
    return n;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Runs the converter with args (file names are relative to g_dir); returns
 * its exit status, or 128 + signal when it died. */
static int run(const char *fmt, ...) {
    char args[2048];
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >stdout.txt 2>stderr.txt", g_dir, g_convert,
             args);
    int st = system(cmd);
    char p[512];
    path_of(p, sizeof p, "stdout.txt");
    slurp(p, g_out, sizeof g_out);
    path_of(p, sizeof p, "stderr.txt");
    slurp(p, g_err, sizeof g_err);
    if (st == -1)
        return -1;
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* The rejection contract: exit 1 and one line "opecom-convert: <file>: ..."
 * that contains `needle`. */
static void expect_rejected(int status, const char *file, const char *needle) {
    char prefix[300];
    snprintf(prefix, sizeof prefix, "opecom-convert: %s: ", file);
    if (status != 1 || strncmp(g_err, prefix, strlen(prefix)) != 0 ||
        strstr(g_err, needle) == NULL || strchr(g_err, '\n') != g_err + strlen(g_err) - 1)
        print_error("status %d, stderr:\n%s\nwanted status 1, '%s' and '%s'\n", status, g_err,
                    prefix, needle);
    assert_int_equal(status, 1);
    assert_true(strncmp(g_err, prefix, strlen(prefix)) == 0);
    assert_non_null(strstr(g_err, needle));
    assert_true(strchr(g_err, '\n') == g_err + strlen(g_err) - 1);
}

/* ===================================================================== *
 * Fixture writers
 * ===================================================================== */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n > 0)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_le(bytes *b, uint64_t v, int width) {
    unsigned char t[8];
    for (int i = 0; i < width; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)width);
}

static void put_str(bytes *b, const char *s) {
    put(b, s, strlen(s));
}

typedef struct fx_tensor {
    char name[48];
    char descr[8];       /* npy dtype, "<f4" unless a test changes it */
    char st_dtype[8];    /* safetensors dtype, "F32" unless changed */
    uint32_t ndim;
    uint64_t shape[3];
    int fortran;         /* header claims fortran_order True */
    size_t truncate;     /* data bytes dropped from the end */
    int omit;
    int nan_at;          /* element set to NaN, or -1 */
    int set_offsets;     /* safetensors: use offsets below */
    uint64_t begin, end;
} fx_tensor;

typedef struct fixture {
    fx_tensor t[12];
    size_t n;
    int deflate;         /* npz entries deflated (else stored) */
    int bad_crc;         /* first entry's CRC off by one bit */
    int bad_magic;       /* first entry's .npy magic broken */
    int64_t hlen_delta;  /* added to the safetensors header length */
    const char *spec;    /* embedded in safetensors, or NULL */
} fixture;

static void fx_add(fixture *f, const char *name, uint32_t ndim, uint64_t a, uint64_t b,
                   uint64_t c) {
    fx_tensor *t = &f->t[f->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    strcpy(t->descr, "<f4");
    strcpy(t->st_dtype, "F32");
    t->ndim = ndim;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = c;
    t->nan_at = -1;
}

/* The model of SPEC: d_in = 2 numerics + 3 categories = 5; block 1 has no s. */
static void fx_init(fixture *f) {
    memset(f, 0, sizeof *f);
    fx_add(f, "blocks.0.weight", 2, 3, 5, 0);
    fx_add(f, "blocks.0.r", 2, 2, 5, 0);
    fx_add(f, "blocks.0.s", 2, 2, 3, 0);
    fx_add(f, "blocks.0.bias", 2, 2, 3, 0);
    fx_add(f, "blocks.1.weight", 2, 3, 3, 0);
    fx_add(f, "blocks.1.r", 2, 2, 3, 0);
    fx_add(f, "blocks.1.bias", 2, 2, 3, 0);
    fx_add(f, "head.weight", 3, 2, 1, 3);
    fx_add(f, "head.bias", 2, 2, 1, 0);
    f->spec = SPEC;
}

static fx_tensor *fx_get(fixture *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    fail_msg("fixture has no tensor %s", name);
    return NULL;
}

static size_t fx_count(const fx_tensor *t) {
    size_t n = 1;
    for (uint32_t i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

/* Raw little-endian data of tensor ti in dtype, synthetic values. */
static void fx_data(bytes *b, const fx_tensor *t, size_t ti, const char *dtype) {
    size_t n = fx_count(t);
    for (size_t i = 0; i < n; i++) {
        double v = (double)((int)((ti * 7 + i * 13) % 23) - 11) / 8.0;
        if ((int)i == t->nan_at)
            v = strtod("nan", NULL);
        if (strcmp(dtype, "<f8") == 0) {
            uint64_t bits;
            memcpy(&bits, &v, 8);
            put_le(b, bits, 8);
        } else if (strcmp(dtype, "<i4") == 0) {
            put_le(b, (uint32_t)(int32_t)(v * 8), 4);
        } else if (strcmp(dtype, "F16") == 0) {
            put_le(b, 0x3c00, 2);
        } else {
            float x = (float)v;
            uint32_t bits;
            memcpy(&bits, &x, 4);
            put_le(b, bits, 4);
        }
    }
}

static void npy_bytes(bytes *b, const fixture *f, size_t ti, int first) {
    const fx_tensor *t = &f->t[ti];
    char shape[96] = "";
    for (uint32_t i = 0; i < t->ndim; i++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu",
                 i ? ", " : "", (unsigned long long)t->shape[i]);
    if (t->ndim == 1)
        strcat(shape, ",");
    char header[256];
    snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }",
             t->descr, t->fortran ? "True" : "False", shape);
    size_t hlen = strlen(header) + 1;
    while ((10 + hlen) % 64 != 0) {
        strcat(header, " ");
        hlen++;
    }
    strcat(header, "\n");
    put(b, first && f->bad_magic ? "\x93NUMPX" : "\x93NUMPY", 6);
    put(b, "\x01\x00", 2);
    put_le(b, hlen, 2);
    put_str(b, header);
    size_t start = b->n;
    fx_data(b, t, ti, t->descr);
    size_t len = b->n - start;
    b->n -= t->truncate < len ? t->truncate : len;
}

static void deflate_raw(bytes *out, const unsigned char *in, size_t n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uLong bound = deflateBound(&zs, (uLong)n);
    out->p = malloc(bound);
    assert_non_null(out->p);
    out->cap = bound;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out->p;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out->n = zs.total_out;
    deflateEnd(&zs);
}

static void write_npz(const fixture *f, const char *name) {
    bytes zip = {0};
    bytes cd = {0};
    size_t n_entries = 0;
    for (size_t i = 0; i < f->n; i++) {
        const fx_tensor *t = &f->t[i];
        if (t->omit)
            continue;
        bytes npy = {0};
        npy_bytes(&npy, f, i, n_entries == 0);
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), npy.p, (uInt)npy.n);
        if (n_entries == 0 && f->bad_crc)
            crc ^= 1;
        bytes packed = {0};
        if (f->deflate)
            deflate_raw(&packed, npy.p, npy.n);
        else
            put(&packed, npy.p, npy.n);
        char ename[64];
        snprintf(ename, sizeof ename, "%s.npy", t->name);
        uint16_t method = f->deflate ? 8 : 0;
        size_t local_off = zip.n;
        put_le(&zip, 0x04034b50, 4);
        put_le(&zip, 20, 2);
        put_le(&zip, 0, 2);
        put_le(&zip, method, 2);
        put_le(&zip, 0, 2);
        put_le(&zip, 0x21, 2);
        put_le(&zip, crc, 4);
        put_le(&zip, packed.n, 4);
        put_le(&zip, npy.n, 4);
        put_le(&zip, strlen(ename), 2);
        put_le(&zip, 0, 2);
        put_str(&zip, ename);
        put(&zip, packed.p, packed.n);
        put_le(&cd, 0x02014b50, 4);
        put_le(&cd, 20, 2);
        put_le(&cd, 20, 2);
        put_le(&cd, 0, 2);
        put_le(&cd, method, 2);
        put_le(&cd, 0, 2);
        put_le(&cd, 0x21, 2);
        put_le(&cd, crc, 4);
        put_le(&cd, packed.n, 4);
        put_le(&cd, npy.n, 4);
        put_le(&cd, strlen(ename), 2);
        put_le(&cd, 0, 6);
        put_le(&cd, 0, 2);
        put_le(&cd, 0, 4);
        put_le(&cd, local_off, 4);
        put_str(&cd, ename);
        free(npy.p);
        free(packed.p);
        n_entries++;
    }
    size_t cd_off = zip.n;
    put(&zip, cd.p, cd.n);
    put_le(&zip, 0x06054b50, 4);
    put_le(&zip, 0, 4);
    put_le(&zip, n_entries, 2);
    put_le(&zip, n_entries, 2);
    put_le(&zip, cd.n, 4);
    put_le(&zip, cd_off, 4);
    put_le(&zip, 0, 2);
    char p[512];
    path_of(p, sizeof p, name);
    write_bytes(p, zip.p, zip.n);
    free(zip.p);
    free(cd.p);
}

static void json_escape(bytes *b, const char *s) {
    put_str(b, "\"");
    for (; *s; s++) {
        char esc[8];
        if (*s == '"' || *s == '\\') {
            snprintf(esc, sizeof esc, "\\%c", *s);
            put_str(b, esc);
        } else if (*s == '\n') {
            put_str(b, "\\n");
        } else {
            put(b, s, 1);
        }
    }
    put_str(b, "\"");
}

static void write_safetensors(const fixture *f, const char *name) {
    bytes h = {0};
    bytes data = {0};
    put_str(&h, "{");
    if (f->spec != NULL) {
        put_str(&h, "\"__metadata__\":{\"opecom_spec\":");
        json_escape(&h, f->spec);
        put_str(&h, "}");
    }
    for (size_t i = 0; i < f->n; i++) {
        const fx_tensor *t = &f->t[i];
        if (t->omit)
            continue;
        size_t begin = data.n;
        fx_data(&data, t, i, t->st_dtype);
        char entry[256];
        char shape[96] = "";
        for (uint32_t d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu",
                     d ? "," : "", (unsigned long long)t->shape[d]);
        snprintf(entry, sizeof entry,
                 "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%llu,%llu]}",
                 h.n > 1 ? "," : "", t->name, t->st_dtype, shape,
                 (unsigned long long)(t->set_offsets ? t->begin : begin),
                 (unsigned long long)(t->set_offsets ? t->end : data.n));
        put_str(&h, entry);
    }
    put_str(&h, "}");
    while (h.n % 8 != 0)
        put_str(&h, " ");
    bytes file = {0};
    put_le(&file, (uint64_t)((int64_t)h.n + f->hlen_delta), 8);
    put(&file, h.p, h.n);
    put(&file, data.p, data.n);
    char p[512];
    path_of(p, sizeof p, name);
    write_bytes(p, file.p, file.n);
    free(h.p);
    free(data.p);
    free(file.p);
}

static void write_spec(const char *text, const char *name) {
    char p[512];
    path_of(p, sizeof p, name);
    write_bytes(p, text, strlen(text));
}

/* SPEC with the one occurrence of `from` replaced by `to`, as s.json. */
static void write_spec_with(const char *from, const char *to) {
    const char *at = strstr(SPEC, from);
    assert_non_null(at);
    assert_null(strstr(at + 1, from));
    char text[4096];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - SPEC), SPEC, to, at + strlen(from));
    write_spec(text, "s.json");
}

static int files_equal(const char *a, const char *b) {
    static char x[1 << 16];
    static char y[1 << 16];
    char pa[512];
    char pb[512];
    path_of(pa, sizeof pa, a);
    path_of(pb, sizeof pb, b);
    size_t na = slurp(pa, x, sizeof x);
    size_t nb = slurp(pb, y, sizeof y);
    return na > 0 && na == nb && memcmp(x, y, na) == 0;
}

/* A good fixture written as w.npz and s.json, converted to expect an error. */
static int convert_npz(const fixture *f) {
    write_npz(f, "w.npz");
    return run("--weights w.npz --spec s.json -o m.opm");
}

static int convert_st(const fixture *f) {
    write_safetensors(f, "w.safetensors");
    return run("--weights w.safetensors -o m.opm");
}

/* ===================================================================== *
 * Setup
 * ===================================================================== */

static int group_setup(void **state) {
    (void)state;
    const char *build = getenv("BUILD");
    char cwd[256];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return -1;
    snprintf(g_convert, sizeof g_convert, "%s/%s/opecom-convert", cwd,
             build != NULL && build[0] != '\0' ? build : "build");
    if (build != NULL && build[0] == '/')
        snprintf(g_convert, sizeof g_convert, "%s/opecom-convert", build);
    if (access(g_convert, X_OK) != 0) {
        fprintf(stderr, "test_convert: %s is missing: run make first\n", g_convert);
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/opecom-convert-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Every test starts from the good spec as s.json. */
static int setup(void **state) {
    (void)state;
    write_spec(SPEC, "s.json");
    return 0;
}

/* ===================================================================== *
 * Good inputs
 * ===================================================================== */

/* A stored .npz converts, and the model loads with the spec's architecture
 * and keeps the spec text byte for byte. */
static void test_stored_npz_converts(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o m.opm"), 0);
    char p[512];
    path_of(p, sizeof p, "m.opm");
    opecom_model *m = NULL;
    assert_int_equal(opecom_model_load(p, NULL, &m, NULL), OPECOM_OK);
    opecom_model_info info;
    assert_int_equal(opecom_model_describe(m, &info), OPECOM_OK);
    assert_int_equal(info.k, 2);
    assert_int_equal(info.n_blocks, 2);
    assert_int_equal(info.d_block, 3);
    assert_int_equal(info.d_in, 5);
    assert_int_equal(info.n_features, 3);
    assert_string_equal(info.spec_json, SPEC);
    opecom_model_free(m);
}

/* Deflated entries give the same model file as stored ones. */
static void test_deflated_npz_same_file(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o stored.opm"), 0);
    f.deflate = 1;
    write_npz(&f, "wd.npz");
    assert_int_equal(run("--weights wd.npz --spec s.json -o deflated.opm"), 0);
    assert_true(files_equal("stored.opm", "deflated.opm"));
}

/* A .safetensors carrying the spec in __metadata__ gives the same file as
 * the .npz with the spec beside it. */
static void test_safetensors_embedded_spec_same_file(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o npz.opm"), 0);
    write_safetensors(&f, "w.safetensors");
    assert_int_equal(run("--weights w.safetensors -o st.opm"), 0);
    assert_true(files_equal("npz.opm", "st.opm"));
}

/* --spec takes precedence over the spec embedded in a .safetensors. */
static void test_spec_flag_overrides_embedded(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_safetensors(&f, "w.safetensors");
    write_spec_with("\"threshold\": 0.4", "\"threshold\": 0.25");
    assert_int_equal(run("--weights w.safetensors --spec s.json -o m.opm"), 0);
    assert_int_equal(run("--verify m.opm"), 0);
    assert_non_null(strstr(g_out, "threshold       0.25"));
}

/* Files written by numpy's own savez / savez_compressed (zip64 local
 * headers) convert to the same model as ours. */
static void test_numpy_written_npz(void **state) {
    (void)state;
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        print_message("numpy is not installed for /usr/bin/python3: skipped\n");
        skip();
    }
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o ours.opm"), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && /usr/bin/python3 -c \"import numpy as np; a = dict(np.load('w.npz')); "
             "np.savez('np.npz', **a); np.savez_compressed('npc.npz', **a)\"", g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run("--weights np.npz --spec s.json -o np.opm"), 0);
    assert_int_equal(run("--weights npc.npz --spec s.json -o npc.opm"), 0);
    assert_true(files_equal("ours.opm", "np.opm"));
    assert_true(files_equal("ours.opm", "npc.opm"));
}

/* --verify on a good file prints the architecture and exits 0. */
static void test_verify_good_file(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o m.opm"), 0);
    assert_int_equal(run("--verify m.opm"), 0);
    assert_non_null(strstr(g_out, "k = 2, n_blocks = 2, d_block = 3, d_in = 5"));
    assert_non_null(strstr(g_out, "month"));
    assert_non_null(strstr(g_out, "quantile_normal (4 quantiles)"));
    assert_string_equal(g_err, "");
}

/* --verify on a corrupted file exits 1 with the loader's message. */
static void test_verify_corrupt_file(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o m.opm"), 0);
    static unsigned char buf[1 << 16];
    char p[512];
    path_of(p, sizeof p, "m.opm");
    size_t n = slurp(p, (char *)buf, sizeof buf);
    assert_true(n > 64);
    buf[n / 2] ^= 0x40;
    path_of(p, sizeof p, "bad.opm");
    write_bytes(p, buf, n);
    expect_rejected(run("--verify bad.opm"), "bad.opm", "");
}

/* ===================================================================== *
 * Spec errors: each names the key or feature at fault.
 * ===================================================================== */

static void spec_error(const char *from, const char *to, const char *needle) {
    fixture f;
    fx_init(&f);
    write_spec_with(from, to);
    expect_rejected(convert_npz(&f), "s.json", needle);
}

static void test_spec_unknown_feature_key(void **state) {
    (void)state;
    spec_error("\"std\": 1.5, \"min\": 0}", "\"std\": 1.5, \"min\": 0, \"scale\": 2}",
               "spec: features[0]: unknown key 'scale'");
}

static void test_spec_unknown_top_key(void **state) {
    (void)state;
    spec_error("\"task\": \"binary\",", "\"task\": \"binary\", \"epochs\": 3,",
               "unknown key 'epochs'");
}

static void test_spec_unknown_architecture_key(void **state) {
    (void)state;
    spec_error("\"activation\": \"relu\"", "\"activation\": \"relu\", \"dropout\": 0.1",
               "spec: architecture: unknown key 'dropout'");
}

static void test_spec_bad_format(void **state) {
    (void)state;
    spec_error("opecom-spec/1", "opecom-spec/2", "format 'opecom-spec/2' is not supported");
}

static void test_spec_bad_transform(void **state) {
    (void)state;
    spec_error("\"log1p\"", "\"sqrt\"", "spec: features[0]: transform 'sqrt'");
}

static void test_spec_missing_quantiles(void **state) {
    (void)state;
    spec_error(", \"quantiles\": [0, 0.25, 0.5, 1]", "", "spec: features[1]: transform "
               "'quantile_normal' needs 'quantiles'");
}

static void test_spec_decreasing_quantiles(void **state) {
    (void)state;
    spec_error("[0, 0.25, 0.5, 1]", "[0, 0.5, 0.25, 1]", "features[1]: quantiles[2]");
}

static void test_spec_quantiles_without_quantile_transform(void **state) {
    (void)state;
    spec_error("\"min\": 0},", "\"min\": 0, \"quantiles\": [0, 1]},",
               "features[0]: 'quantiles' is only allowed");
}

static void test_spec_duplicate_feature_name(void **state) {
    (void)state;
    spec_error("\"name\": \"rate\"", "\"name\": \"pages\"",
               "features[1]: feature name 'pages' is already used");
}

static void test_spec_duplicate_category(void **state) {
    (void)state;
    spec_error("\"Mar\", \"Nov\"", "\"Mar\", \"Feb\"", "features[2]: category 'Feb' appears twice");
}

static void test_spec_k_zero(void **state) {
    (void)state;
    spec_error("\"k\": 2", "\"k\": 0", "architecture: 'k' must be an integer in [1, 32]");
}

static void test_spec_k_33(void **state) {
    (void)state;
    spec_error("\"k\": 2", "\"k\": 33", "architecture: 'k' must be an integer in [1, 32]");
}

static void test_spec_threshold_out_of_range(void **state) {
    (void)state;
    spec_error("\"threshold\": 0.4", "\"threshold\": 1.5", "'threshold' must be in (0, 1)");
}

static void test_spec_std_zero(void **state) {
    (void)state;
    spec_error("\"std\": 1.5", "\"std\": 0", "features[0]: 'std' must be > 0");
}

static void test_spec_min_above_max(void **state) {
    (void)state;
    spec_error("\"min\": 0, \"max\": 1", "\"min\": 2, \"max\": 1",
               "features[1]: 'min' (2) is greater than 'max' (1)");
}

static void test_spec_duplicate_json_key(void **state) {
    (void)state;
    spec_error("\"task\": \"binary\",", "\"task\": \"binary\", \"task\": \"binary\",",
               "duplicate");
}

static void test_spec_bad_json(void **state) {
    (void)state;
    spec_error("\"threshold\": 0.4,", "\"threshold\": 0.4,,", "invalid JSON at line 10");
}

/* The spec disagrees with the weights: n_blocks = 1 leaves block 1 over. */
static void test_spec_n_blocks_disagrees(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_spec_with("\"n_blocks\": 2", "\"n_blocks\": 1");
    expect_rejected(convert_npz(&f), "w.npz", "blocks.1.weight: unexpected tensor");
}

/* A .npz needs --spec; the message says so. */
/* ===================================================================== *
 * Drift reference ("drift" key)
 * ===================================================================== */

static const char DRIFT[] =
    "\"drift\": {\"method\": \"fixture\", \"rows\": 200, \"features\": ["
    "{\"name\": \"pages\", \"edges\": [0, 3], \"fractions\": [0.5, 0.25, 0.25]}, "
    "{\"name\": \"rate\", \"edges\": [], \"fractions\": [1]}, "
    "{\"name\": \"month\", \"fractions\": [0.5, 0.25, 0.125, 0.125]}], "
    "\"score\": {\"edges\": [0.25, 0.5], \"fractions\": [0.5, 0.25, 0.25]}},";

/* SPEC with DRIFT (its one `from` replaced by `to`) before "threshold", as s.json. */
static void write_drift_spec(const char *from, const char *to) {
    char drift[1024];
    char key[1100];
    const char *at = strstr(DRIFT, from);
    assert_non_null(at);
    snprintf(drift, sizeof drift, "%.*s%s%s", (int)(at - DRIFT), DRIFT, to, at + strlen(from));
    snprintf(key, sizeof key, "%s \"threshold\": 0.4", drift);
    write_spec_with("\"threshold\": 0.4", key);
}

/* The reference goes through the converter into the DRIFT section intact,
 * and the .safetensors carrying the same spec gives the same file. */
static void test_drift_round_trips(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_drift_spec("", "");
    write_npz(&f, "w.npz");
    assert_int_equal(run("--weights w.npz --spec s.json -o m.opm"), 0);
    char p[512];
    path_of(p, sizeof p, "m.opm");
    opecom_model *m = NULL;
    assert_int_equal(opecom_model_load(p, NULL, &m, NULL), OPECOM_OK);
    opecom_drift_info di;
    assert_int_equal(opecom_drift_describe(m, &di, NULL), OPECOM_OK);
    assert_int_equal(di.n_dims, 4);
    assert_int_equal(di.n_counts, 3 + 1 + 4 + 3);
    assert_int_equal(di.n_rows, 200);
    static const double fr[4][4] = {{.5, .25, .25}, {1}, {.5, .25, .125, .125}, {.5, .25, .25}};
    static const double ed[4][2] = {{0, 3}, {0}, {0}, {.25, .5}};
    static const uint32_t bins[4] = {3, 1, 4, 3};
    static const char *const names[4] = {"pages", "rate", "month", "score"};
    for (uint32_t d = 0; d < 4; d++) {
        const char *name;
        uint32_t n;
        uint32_t off;
        const double *e;
        const double *q;
        assert_int_equal(opecom_drift_dim(m, d, &name, &n, &off, NULL), OPECOM_OK);
        assert_int_equal(opecom_drift_reference(m, d, &e, &q, NULL), OPECOM_OK);
        assert_string_equal(name, names[d]);
        assert_int_equal(n, bins[d]);
        assert_memory_equal(q, fr[d], n * sizeof(double));
        if (d == 2)
            assert_null(e);
        else if (n > 1)
            assert_memory_equal(e, ed[d], (n - 1) * sizeof(double));
    }
    opecom_model_free(m);
    static char text[4096];
    path_of(p, sizeof p, "s.json");
    slurp(p, text, sizeof text);
    f.spec = text;
    write_safetensors(&f, "w.safetensors");
    assert_int_equal(run("--weights w.safetensors -o st.opm"), 0);
    assert_true(files_equal("m.opm", "st.opm"));
    /* without the key: a model without a reference */
    write_spec(SPEC, "s.json");
    assert_int_equal(run("--weights w.npz --spec s.json -o plain.opm"), 0);
    path_of(p, sizeof p, "plain.opm");
    assert_int_equal(opecom_model_load(p, NULL, &m, NULL), OPECOM_OK);
    assert_int_equal(opecom_drift_describe(m, &di, NULL), OPECOM_ENODRIFT);
    opecom_model_free(m);
}

static void drift_error(const char *from, const char *to, const char *needle) {
    fixture f;
    fx_init(&f);
    write_drift_spec(from, to);
    expect_rejected(convert_npz(&f), "s.json", needle);
}

static void test_drift_errors_name_the_key(void **state) {
    (void)state;
    drift_error("\"rows\": 200", "\"rows\": 200, \"bins\": 10", "spec: drift: unknown key 'bins'");
    drift_error("\"rows\": 200", "\"rows\": 0", "spec: drift: 'rows' must be an integer >= 1");
    drift_error("\"method\": \"fixture\", ", "", "spec: drift: missing key 'method'");
    drift_error("\"name\": \"rate\"", "\"name\": \"ratio\"",
                "spec: drift.features[1]: name 'ratio' is not 'rate'");
    drift_error("[0.5, 0.25, 0.25]}, {\"name\": \"rate\"", "[0.5, 0.25, 0.3]}, {\"name\": \"rate\"",
                "spec: drift.features[0]: fractions sum to 1.05, not 1");
    drift_error("\"edges\": [0, 3]", "\"edges\": [3, 3]",
                "spec: drift.features[0]: edges[1] is not above edges[0]");
    drift_error("\"edges\": [0, 3]", "\"edges\": [0, 3, 4]",
                "drift.features[0]: 'fractions' must be an array of 4 numbers");
    drift_error("{\"name\": \"month\", ", "{\"name\": \"month\", \"edges\": [1], ",
                "spec: drift.features[2]: 'edges' is not allowed for a categorical feature");
    drift_error("[0.5, 0.25, 0.125, 0.125]", "[0.5, 0.25, 0.25]",
                "drift.features[2]: 'fractions' must be an array of 4 numbers (one per category, "
                "then other)");
    drift_error("[0.5, 0.25, 0.125, 0.125]", "[0.5, 0.25, 0.375, -0.125]",
                "drift.features[2]: fractions[3] must be a finite number >= 0");
    drift_error("\"edges\": [0.25, 0.5]", "\"edges\": [0.25, 1.5]",
                "spec: drift.score: edges[1] is 1.5, outside [0, 1]");
    drift_error("\"score\": {\"edges\": [0.25, 0.5], ", "\"score\": {",
                "spec: drift.score: missing key 'edges'");
    drift_error(", {\"name\": \"month\", \"fractions\": [0.5, 0.25, 0.125, 0.125]}]", "]",
                "spec: drift: 'features' must be an array of 3 objects, one per feature");
}

static void test_npz_without_spec(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    expect_rejected(run("--weights w.npz -o m.opm"), "w.npz", "--spec");
}

/* ===================================================================== *
 * Tensor errors: each names the tensor (and both shapes for a shape error).
 * ===================================================================== */

static void test_tensor_missing(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_get(&f, "blocks.1.bias")->omit = 1;
    expect_rejected(convert_npz(&f), "w.npz", "blocks.1.bias: missing, expected shape [2, 3]");
}

static void test_tensor_wrong_shape(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_get(&f, "blocks.1.weight")->shape[1] = 4;
    expect_rejected(convert_npz(&f), "w.npz", "blocks.1.weight: shape [3, 4], expected [3, 3]");
}

static void test_tensor_wrong_rank(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_tensor *t = fx_get(&f, "head.weight");
    t->ndim = 2;
    t->shape[1] = 3;
    expect_rejected(convert_st(&f), "w.safetensors",
                    "head.weight: shape [2, 3], expected [2, 1, 3]");
}

static void test_npy_dtype_f8(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    strcpy(fx_get(&f, "blocks.0.r")->descr, "<f8");
    expect_rejected(convert_npz(&f), "w.npz", "blocks.0.r: dtype '<f8', expected '<f4'");
}

static void test_npy_dtype_i4(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    strcpy(fx_get(&f, "head.bias")->descr, "<i4");
    expect_rejected(convert_npz(&f), "w.npz", "head.bias: dtype '<i4', expected '<f4'");
}

static void test_safetensors_dtype_f16(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    strcpy(fx_get(&f, "blocks.0.s")->st_dtype, "F16");
    expect_rejected(convert_st(&f), "w.safetensors", "blocks.0.s: dtype 'F16', expected 'F32'");
}

static void test_tensor_extra(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_add(&f, "head.scale", 1, 2, 0, 0);
    expect_rejected(convert_npz(&f), "w.npz", "head.scale: unexpected tensor (shape [2])");
}

static void test_tensor_not_finite(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_get(&f, "blocks.1.r")->nan_at = 4;
    expect_rejected(convert_npz(&f), "w.npz", "blocks.1.r: element 4 is not finite");
}

static void test_npy_fortran_order(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_get(&f, "blocks.0.weight")->fortran = 1;
    expect_rejected(convert_npz(&f), "w.npz", "blocks.0.weight: fortran_order is True");
}

static void test_npy_truncated_data(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_get(&f, "blocks.0.bias")->truncate = 3;
    expect_rejected(convert_npz(&f), "w.npz",
                    "blocks.0.bias: shape [2, 3] needs 24 data bytes, found 21");
}

static void test_npy_bad_magic(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    f.bad_magic = 1;
    expect_rejected(convert_npz(&f), "w.npz", "blocks.0.weight: not a .npy file (bad magic)");
}

static void test_zip_bad_crc(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    f.bad_crc = 1;
    f.deflate = 1;
    expect_rejected(convert_npz(&f), "w.npz", "blocks.0.weight.npy: CRC mismatch");
}

static void test_zip_truncated(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    char p[512];
    path_of(p, sizeof p, "w.npz");
    assert_int_equal(truncate(p, 200), 0);
    expect_rejected(run("--weights w.npz --spec s.json -o m.opm"), "w.npz",
                    "no end of central directory");
}

static void test_safetensors_header_past_eof(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    f.hlen_delta = 1 << 20;
    expect_rejected(convert_st(&f), "w.safetensors", "runs past the end of the file");
}

static void test_safetensors_offsets_out_of_range(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_tensor *t = fx_get(&f, "head.bias");
    t->set_offsets = 1;
    t->begin = 1000;
    t->end = 1008;
    expect_rejected(convert_st(&f), "w.safetensors", "head.bias: data_offsets [1000, 1008] out of range");
}

static void test_safetensors_offsets_overlap(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    /* blocks.0.r is [2, 5] after blocks.0.weight [3, 5]: bytes 60..100. */
    fx_tensor *t = fx_get(&f, "blocks.0.s");
    t->set_offsets = 1;
    t->begin = 60;
    t->end = 84;
    expect_rejected(convert_st(&f), "w.safetensors", "overlap");
}

static void test_safetensors_offsets_disagree_with_shape(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    fx_tensor *t = fx_get(&f, "blocks.0.weight");
    t->set_offsets = 1;
    t->begin = 0;
    t->end = 56;
    expect_rejected(convert_st(&f), "w.safetensors",
                    "blocks.0.weight: data_offsets [0, 56] hold 56 bytes, shape [3, 5] needs 60");
}

static void test_safetensors_without_spec(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    f.spec = NULL;
    expect_rejected(convert_st(&f), "w.safetensors", "no spec");
}

/* ===================================================================== *
 * Hostile files: truncations and bit flips are rejected with one line,
 * never a crash or a sanitizer report.
 * ===================================================================== */

static void mutate_all(const char *good, const char *ext, const char *args_fmt) {
    static unsigned char buf[1 << 16];
    char p[512];
    char name[64];
    path_of(p, sizeof p, good);
    size_t n = slurp(p, (char *)buf, sizeof buf);
    assert_true(n > 100);
    snprintf(name, sizeof name, "bad.%s", ext);
    uint32_t seed = 12345;
    for (int i = 0; i < 96; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % n;
        path_of(p, sizeof p, name);
        if (i % 3 == 0) {
            write_bytes(p, buf, at);             /* truncated */
        } else {
            unsigned char saved = buf[at];
            buf[at] ^= (unsigned char)(1u << ((seed >> 4) % 8));
            write_bytes(p, buf, n);              /* one bit flipped */
            buf[at] = saved;
        }
        int st = run(args_fmt, name);
        if (st != 0) {
            if (st != 1 || strncmp(g_err, "opecom-convert: ", 16) != 0 ||
                strchr(g_err, '\n') != g_err + strlen(g_err) - 1)
                fail_msg("mutation %d (offset %zu): status %d, stderr:\n%s", i, at, st, g_err);
        }
    }
}

static void test_hostile_npz(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "good.npz");
    mutate_all("good.npz", "npz", "--weights %s --spec s.json -o m.opm");
    f.deflate = 1;
    write_npz(&f, "good.npz");
    mutate_all("good.npz", "npz", "--weights %s --spec s.json -o m.opm");
}

static void test_hostile_safetensors(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_safetensors(&f, "good.safetensors");
    mutate_all("good.safetensors", "safetensors", "--weights %s -o m.opm");
}

/* ===================================================================== *
 * Command line
 * ===================================================================== */

static void test_usage_errors_exit_2(void **state) {
    (void)state;
    assert_int_equal(run(""), 2);
    assert_int_equal(run("--frobnicate"), 2);
    assert_non_null(strstr(g_err, "--frobnicate"));
    assert_int_equal(run("--weights w.npz"), 2);
    assert_int_equal(run("--weights w.bin -o m.opm"), 2);
    assert_int_equal(run("--weights"), 2);
    assert_int_equal(run("--verify m.opm -o x.opm"), 2);
}

static void test_help_and_version(void **state) {
    (void)state;
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(g_out, "--weights"));
    assert_int_equal(run("-h"), 0);
    assert_int_equal(run("--version"), 0);
    assert_non_null(strstr(g_out, OPECOM_VERSION_STRING));
}

static void test_missing_weights_file(void **state) {
    (void)state;
    expect_rejected(run("--weights nowhere.npz --spec s.json -o m.opm"), "nowhere.npz",
                    "cannot open");
}

static void test_unwritable_output(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    write_npz(&f, "w.npz");
    expect_rejected(run("--weights w.npz --spec s.json -o no/such/dir/m.opm"),
                    "no/such/dir/m.opm", "");
}

#define T(name) cmocka_unit_test_setup(name, setup)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_stored_npz_converts),
        T(test_deflated_npz_same_file),
        T(test_safetensors_embedded_spec_same_file),
        T(test_spec_flag_overrides_embedded),
        T(test_numpy_written_npz),
        T(test_verify_good_file),
        T(test_verify_corrupt_file),
        T(test_spec_unknown_feature_key),
        T(test_spec_unknown_top_key),
        T(test_spec_unknown_architecture_key),
        T(test_spec_bad_format),
        T(test_spec_bad_transform),
        T(test_spec_missing_quantiles),
        T(test_spec_decreasing_quantiles),
        T(test_spec_quantiles_without_quantile_transform),
        T(test_spec_duplicate_feature_name),
        T(test_spec_duplicate_category),
        T(test_spec_k_zero),
        T(test_spec_k_33),
        T(test_spec_threshold_out_of_range),
        T(test_spec_std_zero),
        T(test_spec_min_above_max),
        T(test_spec_duplicate_json_key),
        T(test_spec_bad_json),
        T(test_spec_n_blocks_disagrees),
        T(test_drift_round_trips),
        T(test_drift_errors_name_the_key),
        T(test_npz_without_spec),
        T(test_tensor_missing),
        T(test_tensor_wrong_shape),
        T(test_tensor_wrong_rank),
        T(test_npy_dtype_f8),
        T(test_npy_dtype_i4),
        T(test_safetensors_dtype_f16),
        T(test_tensor_extra),
        T(test_tensor_not_finite),
        T(test_npy_fortran_order),
        T(test_npy_truncated_data),
        T(test_npy_bad_magic),
        T(test_zip_bad_crc),
        T(test_zip_truncated),
        T(test_safetensors_header_past_eof),
        T(test_safetensors_offsets_out_of_range),
        T(test_safetensors_offsets_overlap),
        T(test_safetensors_offsets_disagree_with_shape),
        T(test_safetensors_without_spec),
        T(test_hostile_npz),
        T(test_hostile_safetensors),
        T(test_usage_errors_exit_2),
        T(test_help_and_version),
        T(test_missing_weights_file),
        T(test_unwritable_output),
    };
    return cmocka_run_group_tests_name("convert", tests, group_setup, group_teardown);
}
