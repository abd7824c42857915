/*
 * bench.c - opecom-bench: the libopecom contender of `make bench`.
 *
 * Uses the public header only. At start it loads every model given with
 * --model under every kernel of --kernels; a kernel the build or the CPU
 * lacks (OPECOM_EKERNEL) is reported as skipped with the library's reason.
 * Every loaded (model, kernel) pair scores all --rows once and is checked
 * against the model's expected probabilities (--model NAME=FILE.opm,EXPECT),
 * a float32 file of one probability per row computed by PyTorch.
 *
 * Then it serves measurement commands, one per stdin line, each answered by
 * one JSON line on stdout, so that tools/bench/bench.py can interleave the
 * contenders round by round on one core:
 *
 *   info                               models, kernels, skips, accuracy
 *   peak avx2|avx512 SECONDS           FMA peak of this core, GFLOP/s
 *   bw BYTES SECONDS                   read bandwidth of this core over a
 *                                      buffer of BYTES (cache-resident if it
 *                                      fits), GB/s
 *   lat MODEL KERNEL SECONDS           opecom_predict from raw rows, one
 *                                      call timed at a time: p50, p99 (us)
 *   thr MODEL KERNEL BATCH SECONDS     opecom_predict_batch of BATCH rows,
 *                                      each call timed: BATCH / median call
 *                                      time (rows/s), and the plain mean
 *   load MODEL KERNEL SECONDS          opecom_model_load + free: median us
 *   explain MODEL KERNEL SECONDS       opecom_explain (default options) of
 *                                      one row at a time, rows cycling, with
 *                                      a 256-row workspace: p50, p99 (us),
 *                                      mean network evaluations
 *   quit
 *
 * Every timed loop runs for at least SECONDS (and a minimum call count) on
 * rows cycling through the CSV, after a short untimed warm-up.
 *
 * Usage: opecom-bench --rows tests/data/reference.csv \
 *            --model default=models/shoppers-tabm-k4.opm,build/bench/default.prob.f32 \
 *            [--kernels scalar,avx2,avx512] [--once]
 * --once runs a short self-check of every command instead of serving.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fma_peak.h"
#include "opecom.h"

#define MAX_MODELS 8
#define MAX_KERNELS 8
#define MAX_BATCH 4096
#define MAX_SAMPLES 400000

typedef struct kernel_slot {
    char name[32];
    opecom_model *model;       /* NULL when skipped */
    char skip[300];            /* reason when skipped */
    opecom_workspace *ws_one;  /* max_rows 1 */
    opecom_workspace *ws_batch;
    size_t ws_batch_rows;
    double max_err_expect;     /* vs the expected probabilities */
    double max_err_scalar;     /* vs the first loaded kernel */
} kernel_slot;

typedef struct bench_model {
    char name[64];
    char path[1024];
    char expect[1024];
    opecom_model_info info;
    opecom_value *rows;     /* (n_rows + MAX_BATCH) * n_features, cycling */
    size_t n_rows;
    float *expected;        /* n_rows or NULL */
    char auto_kernel[32];
    kernel_slot kernels[MAX_KERNELS];
    size_t n_kernels;
} bench_model;

static bench_model models[MAX_MODELS];
static size_t n_models;
static char *kernel_names[MAX_KERNELS];
static size_t n_kernel_names;
static opecom_result results[MAX_BATCH];
static double samples[MAX_SAMPLES];

/* CSV: header names and all cells as strings (reference.csv has no quotes). */
static char **csv_header;
static size_t csv_cols;
static char ***csv_cells;
static size_t csv_rows;

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "opecom-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_number(double v)
{
    if (isnan(v))
        printf("NaN");
    else
        printf("%.3g", v);
}

static size_t split(char *line, char **out, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *q = strchr(p, ',');
        if (n < max)
            out[n] = p;
        n++;
        if (q == NULL)
            break;
        *q = '\0';
        p = q + 1;
    }
    return n;
}

static void read_csv(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, rows_cap = 0;
    ssize_t len;
    char *fields[256];
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        char *copy = strdup(line);
        size_t n = split(copy, fields, 256);
        if (n > 256)
            die("%s: more than 256 columns", path);
        if (csv_header == NULL) {
            csv_cols = n;
            csv_header = xmalloc(n * sizeof(char *));
            memcpy(csv_header, fields, n * sizeof(char *));
            continue;
        }
        if (n != csv_cols)
            die("%s: a row has the wrong number of fields", path);
        if (csv_rows == rows_cap) {
            rows_cap = rows_cap ? rows_cap * 2 : 1024;
            csv_cells = realloc(csv_cells, rows_cap * sizeof(char **));
            if (csv_cells == NULL)
                die("out of memory");
        }
        csv_cells[csv_rows] = xmalloc(n * sizeof(char *));
        memcpy(csv_cells[csv_rows], fields, n * sizeof(char *));
        csv_rows++;
    }
    free(line);
    fclose(f);
    if (csv_rows == 0)
        die("%s: no data rows", path);
}

/* Raw rows in the model's feature order, numbers parsed once. */
static void build_rows(bench_model *m, opecom_model *om)
{
    uint32_t nf = m->info.n_features;
    int *col = xmalloc(nf * sizeof(int));
    for (uint32_t j = 0; j < nf; j++) {
        opecom_feature_info fi;
        if (opecom_model_feature(om, j, &fi) != OPECOM_OK)
            die("%s: cannot describe a feature", m->path);
        col[j] = -1;
        for (size_t c = 0; c < csv_cols; c++)
            if (strcmp(csv_header[c], fi.name) == 0)
                col[j] = (int)c;
        if (col[j] < 0)
            die("the rows CSV has no column %s (needed by %s)", fi.name, m->path);
        if (fi.type == OPECOM_FEATURE_NUMERIC)
            col[j] = -2 - col[j]; /* mark numeric */
    }
    m->n_rows = csv_rows;
    m->rows = xmalloc((csv_rows + MAX_BATCH) * nf * sizeof(opecom_value));
    for (size_t i = 0; i < csv_rows + MAX_BATCH; i++) {
        char **cells = csv_cells[i % csv_rows];
        opecom_value *v = m->rows + i * nf;
        for (uint32_t j = 0; j < nf; j++) {
            if (col[j] <= -2) {
                char *end;
                const char *s = cells[-2 - col[j]];
                v[j].num = strtod(s, &end);
                v[j].str = NULL;
                if (end == s || *end != '\0')
                    die("not a number in the rows CSV: %s", s);
            } else {
                v[j].num = 0.0;
                v[j].str = cells[col[j]];
            }
        }
    }
    free(col);
}

static void read_expect(bench_model *m)
{
    if (m->expect[0] == '\0')
        return;
    FILE *f = fopen(m->expect, "rb");
    if (f == NULL)
        die("cannot open %s: %s", m->expect, strerror(errno));
    m->expected = xmalloc(m->n_rows * sizeof(float));
    size_t got = fread(m->expected, sizeof(float), m->n_rows, f);
    fclose(f);
    if (got != m->n_rows)
        die("%s: fewer probabilities than rows in the CSV", m->expect);
}

static opecom_status load(const bench_model *m, const char *kernel, opecom_model **out,
                          opecom_error *err)
{
    opecom_load_options o;
    o.kernel = kernel;
    return opecom_model_load(m->path, &o, out, err);
}

/* Scores every row with one kernel; returns the max |p - ref| (ref NULL: none). */
static double score_all(const bench_model *m, kernel_slot *k, float *probs, const float *ref)
{
    uint32_t nf = m->info.n_features;
    double worst = 0.0;
    for (size_t i = 0; i < m->n_rows; i += k->ws_batch_rows) {
        size_t n = m->n_rows - i < k->ws_batch_rows ? m->n_rows - i : k->ws_batch_rows;
        opecom_error err;
        opecom_status st = opecom_predict_batch(k->model, k->ws_batch, m->rows + i * nf, n,
                                                results, &err);
        if (st != OPECOM_OK)
            die("predict_batch failed on the rows CSV: %s", err.message);
        for (size_t r = 0; r < n; r++) {
            probs[i + r] = results[r].probability;
            if (ref != NULL) {
                double d = fabs((double)results[r].probability - (double)ref[i + r]);
                if (!(d <= worst))
                    worst = d; /* NaN sticks */
            }
        }
    }
    return worst;
}

static void setup_model(bench_model *m)
{
    opecom_error err;
    opecom_model *om = NULL;
    opecom_status st = load(m, "auto", &om, &err);
    if (st != OPECOM_OK)
        die("cannot load %s: %s", m->path, err.message);
    opecom_model_describe(om, &m->info);
    snprintf(m->auto_kernel, sizeof m->auto_kernel, "%s", m->info.kernel);
    build_rows(m, om);
    read_expect(m);
    opecom_model_free(om);
    m->info.kernel = NULL;
    m->info.spec_json = NULL;

    float *first = NULL, *probs = xmalloc(m->n_rows * sizeof(float));
    for (size_t i = 0; i < n_kernel_names; i++) {
        kernel_slot *k = &m->kernels[m->n_kernels++];
        snprintf(k->name, sizeof k->name, "%s", kernel_names[i]);
        st = load(m, k->name, &k->model, &err);
        if (st == OPECOM_EKERNEL) {
            snprintf(k->skip, sizeof k->skip, "%s", err.message);
            k->model = NULL;
            continue;
        }
        if (st != OPECOM_OK)
            die("cannot load %s: %s", m->path, err.message);
        opecom_model_info info;
        opecom_model_describe(k->model, &info);
        if (strcmp(info.kernel, k->name) != 0) {
            fprintf(stderr, "opecom-bench: asked for kernel %s, model reports %s\n", k->name,
                    info.kernel);
            exit(1);
        }
        k->ws_batch_rows = 256;
        if (opecom_workspace_create(k->model, 1, &k->ws_one, &err) != OPECOM_OK ||
            opecom_workspace_create(k->model, k->ws_batch_rows, &k->ws_batch, &err) != OPECOM_OK)
            die("workspace: %s", err.message);
        /* scores every row into probs, checked against the expected ones if any */
        double err_expect = score_all(m, k, probs, m->expected);
        k->max_err_expect = m->expected ? err_expect : -1.0;
        if (first == NULL) {
            first = probs;
            probs = xmalloc(m->n_rows * sizeof(float));
            k->max_err_scalar = 0.0;
        } else {
            k->max_err_scalar = score_all(m, k, probs, first);
        }
    }
    free(first);
    free(probs);
}

static bench_model *find_model(const char *name)
{
    for (size_t i = 0; i < n_models; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

static kernel_slot *find_kernel(bench_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_kernels; i++)
        if (strcmp(m->kernels[i].name, name) == 0)
            return &m->kernels[i];
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void cmd_info(void)
{
    printf("{\"version\":");
    json_string(stdout, opecom_version_string());
    printf(",\"models\":[");
    for (size_t i = 0; i < n_models; i++) {
        bench_model *m = &models[i];
        printf("%s{\"name\":", i ? "," : "");
        json_string(stdout, m->name);
        printf(",\"path\":");
        json_string(stdout, m->path);
        printf(",\"k\":%u,\"n_blocks\":%u,\"d_block\":%u,\"d_in\":%u,\"n_features\":%u,"
               "\"file_size\":%llu,\"n_params\":%llu,\"rows\":%zu,\"auto_kernel\":",
               m->info.k, m->info.n_blocks, m->info.d_block, m->info.d_in, m->info.n_features,
               (unsigned long long)m->info.file_size, (unsigned long long)m->info.n_params,
               m->n_rows);
        json_string(stdout, m->auto_kernel);
        printf(",\"kernels\":[");
        for (size_t j = 0; j < m->n_kernels; j++) {
            kernel_slot *k = &m->kernels[j];
            printf("%s{\"name\":", j ? "," : "");
            json_string(stdout, k->name);
            if (k->model == NULL) {
                printf(",\"skipped\":");
                json_string(stdout, k->skip);
            } else {
                /* NaN (a kernel that produced NaN) as JSON's NaN token */
                printf(",\"max_err_expected\":");
                json_number(k->max_err_expect);
                printf(",\"max_err_first\":");
                json_number(k->max_err_scalar);
            }
            printf("}");
        }
        printf("]}");
    }
    printf("]}\n");
}

static void cmd_peak(const char *isa, double seconds)
{
    __builtin_cpu_init();
    if (strcmp(isa, "avx2") == 0) {
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
            printf("{\"skipped\":\"CPU lacks AVX2+FMA\"}\n");
        else
            printf("{\"gflops\":%.3f}\n", bench_fma_peak_avx2(seconds));
    } else if (strcmp(isa, "avx512") == 0) {
        if (!__builtin_cpu_supports("avx512f"))
            printf("{\"skipped\":\"CPU lacks AVX-512F\"}\n");
        else
            printf("{\"gflops\":%.3f}\n", bench_fma_peak_avx512(seconds));
    } else {
        printf("{\"error\":\"unknown ISA\"}\n");
    }
}

static void cmd_bw(double bytes, double seconds)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) {
        printf("{\"skipped\":\"CPU lacks AVX2\"}\n");
        return;
    }
    size_t n = ((size_t)(bytes / 4.0) + 31) / 32 * 32;
    if (n < 32 || n > ((size_t)1 << 30)) {
        printf("{\"error\":\"size out of range\"}\n");
        return;
    }
    float *buf = NULL;
    if (posix_memalign((void **)&buf, 64, n * sizeof(float)) != 0)
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        buf[i] = 1.0f;
    bench_read_bw_avx2(buf, n, seconds / 10); /* warm: pages and caches */
    printf("{\"gbps\":%.3f,\"bytes\":%zu}\n", bench_read_bw_avx2(buf, n, seconds),
           n * sizeof(float));
    free(buf);
}

static void cmd_lat(bench_model *m, kernel_slot *k, double seconds)
{
    uint32_t nf = m->info.n_features;
    opecom_result res;
    opecom_error err;
    size_t row = 0, n = 0;
    for (int w = 0; w < 20; w++, row = (row + 1) % m->n_rows)
        opecom_predict(k->model, k->ws_one, m->rows + row * nf, &res, &err);
    double t0 = bench_now(), t = t0;
    while ((t - t0 < seconds || n < 100) && n < MAX_SAMPLES) {
        double a = bench_now();
        opecom_status st = opecom_predict(k->model, k->ws_one, m->rows + row * nf, &res, &err);
        t = bench_now();
        if (st != OPECOM_OK) {
            printf("{\"error\":");
            json_string(stdout, err.message);
            printf("}\n");
            return;
        }
        samples[n++] = t - a;
        row = (row + 1) % m->n_rows;
    }
    double p50 = percentile(samples, n, 0.50), p99 = percentile(samples, n, 0.99);
    printf("{\"p50_us\":%.4f,\"p99_us\":%.4f,\"n\":%zu}\n", p50 * 1e6, p99 * 1e6, n);
}

static void cmd_thr(bench_model *m, kernel_slot *k, size_t batch, double seconds)
{
    uint32_t nf = m->info.n_features;
    opecom_error err;
    opecom_workspace *ws = k->ws_one;
    /* a workspace sized for the batch, as a caller would make it */
    if (batch > 1 && opecom_workspace_create(k->model, batch, &ws, &err) != OPECOM_OK)
        die("workspace: %s", err.message);
    size_t off = 0, calls = 0;
    for (int w = 0; w < 2; w++)
        opecom_predict_batch(k->model, ws, m->rows, batch, results, &err);
    double t0 = bench_now(), t = t0;
    while ((t - t0 < seconds || calls < 3) && calls < MAX_SAMPLES) {
        double a = bench_now();
        opecom_status st = opecom_predict_batch(k->model, ws, m->rows + off * nf, batch,
                                                results, &err);
        t = bench_now();
        if (st != OPECOM_OK) {
            printf("{\"error\":");
            json_string(stdout, err.message);
            printf("}\n");
            goto out;
        }
        samples[calls++] = t - a;
        off = (off + batch) % m->n_rows;
    }
    printf("{\"rows_per_s\":%.2f,\"rows_per_s_mean\":%.2f,\"calls\":%zu,\"seconds\":%.4f}\n",
           (double)batch / percentile(samples, calls, 0.5), (double)(calls * batch) / (t - t0),
           calls, t - t0);
out:
    if (ws != k->ws_one)
        opecom_workspace_free(ws);
}

static void cmd_load(bench_model *m, kernel_slot *k, double seconds)
{
    opecom_error err;
    opecom_model *om;
    size_t n = 0;
    for (int w = 0; w < 3; w++) {
        if (load(m, k->name, &om, &err) != OPECOM_OK)
            die("load: %s", err.message);
        opecom_model_free(om);
    }
    double t0 = bench_now(), t = t0;
    while ((t - t0 < seconds || n < 20) && n < MAX_SAMPLES) {
        double a = bench_now();
        opecom_status st = load(m, k->name, &om, &err);
        opecom_model_free(om);
        t = bench_now();
        if (st != OPECOM_OK)
            die("load: %s", err.message);
        samples[n++] = t - a;
    }
    printf("{\"median_us\":%.3f,\"n\":%zu}\n", percentile(samples, n, 0.5) * 1e6, n);
}

static void cmd_explain(bench_model *m, kernel_slot *k, double seconds)
{
    uint32_t nf = m->info.n_features;
    opecom_explanation ex;
    opecom_error err;
    double contrib[256];
    if (nf > sizeof contrib / sizeof contrib[0]) {
        printf("{\"error\":\"too many features\"}\n");
        return;
    }
    size_t row = 0, n = 0;
    double evals = 0.0;
    for (int w = 0; w < 2; w++, row = (row + 1) % m->n_rows)
        opecom_explain(k->model, k->ws_batch, m->rows + row * nf, NULL, &ex, contrib, &err);
    double t0 = bench_now(), t = t0;
    /* at least 10 calls: the scalar kernel takes about 0.1 s a call */
    while ((t - t0 < seconds || n < 10) && n < MAX_SAMPLES) {
        double a = bench_now();
        opecom_status st =
            opecom_explain(k->model, k->ws_batch, m->rows + row * nf, NULL, &ex, contrib, &err);
        t = bench_now();
        if (st != OPECOM_OK) {
            printf("{\"error\":");
            json_string(stdout, err.message);
            printf("}\n");
            return;
        }
        samples[n++] = t - a;
        evals += (double)ex.evaluations;
        row = (row + 1) % m->n_rows;
    }
    double p50 = percentile(samples, n, 0.50), p99 = percentile(samples, n, 0.99);
    printf("{\"p50_us\":%.3f,\"p99_us\":%.3f,\"n\":%zu,\"evals\":%.1f}\n", p50 * 1e6,
           p99 * 1e6, n, evals / (double)n);
}

static void run_command(char *line)
{
    char *argv[8];
    size_t argc = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok && argc < 8; tok = strtok(NULL, " \t\r\n"))
        argv[argc++] = tok;
    if (argc == 0)
        return;
    const char *cmd = argv[0];
    if (strcmp(cmd, "info") == 0) {
        cmd_info();
    } else if (strcmp(cmd, "peak") == 0 && argc == 3) {
        cmd_peak(argv[1], atof(argv[2]));
    } else if (strcmp(cmd, "bw") == 0 && argc == 3) {
        cmd_bw(atof(argv[1]), atof(argv[2]));
    } else if ((strcmp(cmd, "lat") == 0 && argc == 4) || (strcmp(cmd, "thr") == 0 && argc == 5) ||
               (strcmp(cmd, "load") == 0 && argc == 4) ||
               (strcmp(cmd, "explain") == 0 && argc == 4)) {
        bench_model *m = find_model(argv[1]);
        kernel_slot *k = m ? find_kernel(m, argv[2]) : NULL;
        if (k == NULL || k->model == NULL) {
            printf("{\"error\":\"no such model or kernel, or kernel skipped\"}\n");
        } else if (cmd[0] == 'e') {
            cmd_explain(m, k, atof(argv[3]));
        } else if (cmd[0] == 'l' && cmd[1] == 'a') {
            cmd_lat(m, k, atof(argv[3]));
        } else if (cmd[0] == 'l') {
            cmd_load(m, k, atof(argv[3]));
        } else {
            long b = atol(argv[3]);
            if (b < 1 || b > MAX_BATCH)
                printf("{\"error\":\"batch out of range\"}\n");
            else
                cmd_thr(m, k, (size_t)b, atof(argv[4]));
        }
    } else {
        printf("{\"error\":\"unknown command\"}\n");
    }
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr, "usage: opecom-bench --rows CSV --model NAME=FILE.opm[,EXPECT.f32]... "
                    "[--kernels scalar,avx2,avx512] [--once]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *rows = NULL;
    static char kernels[256] = "scalar,avx2,avx512";
    int once = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc) {
            rows = argv[++i];
        } else if (strcmp(argv[i], "--kernels") == 0 && i + 1 < argc) {
            snprintf(kernels, sizeof kernels, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--once") == 0) {
            once = 1;
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc && n_models < MAX_MODELS) {
            const char *spec = argv[++i];
            const char *eq = strchr(spec, '=');
            if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof models[0].name)
                usage();
            bench_model *m = &models[n_models++];
            memcpy(m->name, spec, (size_t)(eq - spec));
            snprintf(m->path, sizeof m->path, "%s", eq + 1);
            char *comma = strchr(m->path, ',');
            if (comma != NULL) {
                *comma = '\0';
                snprintf(m->expect, sizeof m->expect, "%s", comma + 1);
            }
        } else {
            usage();
        }
    }
    if (rows == NULL || n_models == 0)
        usage();
    for (char *tok = strtok(kernels, ","); tok && n_kernel_names < MAX_KERNELS;
         tok = strtok(NULL, ","))
        kernel_names[n_kernel_names++] = tok;
    read_csv(rows);
    for (size_t i = 0; i < n_models; i++)
        setup_model(&models[i]);

    if (once) {
        char line[sizeof models[0].name + 64];
        cmd_info();
        snprintf(line, sizeof line, "peak avx2 0.05");
        run_command(line);
        snprintf(line, sizeof line, "peak avx512 0.05");
        run_command(line);
        snprintf(line, sizeof line, "bw %llu 0.05",
                 (unsigned long long)models[0].info.n_params * 4);
        run_command(line);
        for (size_t i = 0; i < n_models; i++)
            for (size_t j = 0; j < models[i].n_kernels; j++) {
                const char *mn = models[i].name, *kn = models[i].kernels[j].name;
                /* names are shorter than 64 and 32 bytes (see their arrays) */
                if (models[i].kernels[j].model == NULL) {
                    printf("%s %s skipped: %s\n", mn, kn, models[i].kernels[j].skip);
                    continue;
                }
                for (int c = 0; c < 6; c++) {
                    if (c == 5)
                        snprintf(line, sizeof line, "explain %.63s %.31s 0.05", mn, kn);
                    else if (c == 0)
                        snprintf(line, sizeof line, "lat %.63s %.31s 0.05", mn, kn);
                    else if (c < 4)
                        snprintf(line, sizeof line, "thr %.63s %.31s %d 0.05", mn, kn,
                                 c == 1 ? 1 : c == 2 ? 16 : 256);
                    else
                        snprintf(line, sizeof line, "load %.63s %.31s 0.05", mn, kn);
                    printf("%s -> ", line);
                    run_command(line);
                }
            }
        return 0;
    }
    char line[512];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "quit", 4) == 0)
            break;
        run_command(line);
    }
    return 0;
}
