/*
 * testutil.c - see testutil.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

uint64_t tu_next(tu_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

double tu_uniform(tu_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * (double)(tu_next(r) >> 11) / 9007199254740992.0;
}

uint64_t tu_seed(const char *test, uint64_t fallback)
{
    const char *e = getenv("OPECOM_TEST_SEED");
    uint64_t s = e && *e ? strtoull(e, NULL, 0) : fallback;
    printf("# %s: seed %llu (replay with OPECOM_TEST_SEED=%llu)\n", test, (unsigned long long)s,
           (unsigned long long)s);
    return s ? s : 1;
}

const char *tu_build_dir(void)
{
    const char *b = getenv("BUILD");
    return b && *b ? b : "build";
}

const char *tu_tmp_path(const char *tag)
{
    static char path[512];
    static unsigned n;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/tmp", tu_build_dir());
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/%s-%ld-%u", dir, tag, (long)getpid(), n++);
    return path;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void tu_model_make(tu_model *m, const tu_model_shape *sh, uint64_t seed)
{
    tu_rng r = {seed ? seed : 1};
    uint32_t n_feat = sh->n_numeric + sh->n_categorical;
    uint32_t d_in = sh->n_numeric + sh->n_categorical * sh->n_categories;
    uint32_t k = sh->k, d = sh->d_block;
    memset(m, 0, sizeof *m);
    m->features = calloc(n_feat, sizeof *m->features);
    m->blocks = calloc(sh->n_blocks, sizeof *m->blocks);
    m->names = calloc(n_feat * (1 + sh->n_categories), sizeof *m->names);
    m->cat_ptrs = calloc(n_feat * sh->n_categories + 1, sizeof *m->cat_ptrs);
    m->quantiles = calloc(n_feat * 9 + 1, sizeof *m->quantiles);

    size_t total = 0;
    for (uint32_t l = 0; l < sh->n_blocks; l++) {
        uint32_t in = l == 0 ? d_in : d;
        total += (size_t)d * in + (size_t)k * in + 2 * (size_t)k * d;
    }
    total += (size_t)k * d + k;
    m->floats = malloc(total * sizeof(float));
    float *p = m->floats;
    for (uint32_t l = 0; l < sh->n_blocks; l++) {
        uint32_t in = l == 0 ? d_in : d;
        double bound = 1.0 / sqrt((double)in);
        opecom_block_desc *B = &m->blocks[l];
        B->weight = p;
        for (size_t i = 0; i < (size_t)d * in; i++)
            *p++ = (float)tu_uniform(&r, -bound, bound);
        B->r = p;
        for (size_t i = 0; i < (size_t)k * in; i++)
            *p++ = (float)tu_uniform(&r, 0.5, 1.5) * (tu_next(&r) & 1 ? 1.0f : -1.0f);
        B->s = p;
        for (size_t i = 0; i < (size_t)k * d; i++)
            *p++ = (float)tu_uniform(&r, 0.5, 1.5);
        B->bias = p;
        for (size_t i = 0; i < (size_t)k * d; i++)
            *p++ = (float)tu_uniform(&r, -bound, bound);
        if (sh->omit_adapters) {
            if (l == 0)
                B->s = NULL;
            else
                B->r = NULL;
        }
    }
    m->desc.head_weight = p;
    for (size_t i = 0; i < (size_t)k * d; i++)
        *p++ = (float)tu_uniform(&r, -1.0, 1.0) / sqrtf((float)d) * 4.0f;
    m->desc.head_bias = p;
    for (size_t i = 0; i < k; i++)
        *p++ = (float)tu_uniform(&r, -0.5, 0.5);

    size_t name_i = 0, cat_i = 0;
    for (uint32_t f = 0; f < n_feat; f++) {
        opecom_feature_desc *F = &m->features[f];
        char buf[32];
        snprintf(buf, sizeof buf, "f%u", f);
        F->name = m->names[name_i++] = dup_str(buf);
        if (f < sh->n_numeric) {
            F->type = OPECOM_FEATURE_NUMERIC;
            F->transform = (opecom_transform)(OPECOM_TRANSFORM_NONE + f % 3);
            F->mean = tu_uniform(&r, -1, 1);
            F->std = tu_uniform(&r, 0.5, 2);
            F->has_min = 1;
            F->min = 0;
            F->has_max = f % 2;
            F->max = 100;
            if (F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL) {
                double *q = m->quantiles + f * 9;
                for (int i = 0; i < 9; i++)
                    q[i] = i * i * 1.5 + (i == 4 ? 0.0 : 0.0);
                q[5] = q[4]; /* a tie, as quantiles of discrete data have */
                F->quantiles = q;
                F->n_quantiles = 9;
            }
        } else {
            F->type = OPECOM_FEATURE_CATEGORICAL;
            F->categories = m->cat_ptrs + cat_i;
            F->n_categories = sh->n_categories;
            for (uint32_t c = 0; c < sh->n_categories; c++) {
                snprintf(buf, sizeof buf, "c%u", c + 1);
                m->cat_ptrs[cat_i++] = m->names[name_i++] = dup_str(buf);
            }
        }
    }
    m->n_names = name_i;
    m->desc.k = k;
    m->desc.n_blocks = sh->n_blocks;
    m->desc.d_block = d;
    m->desc.n_features = n_feat;
    m->desc.features = m->features;
    m->desc.blocks = m->blocks;
    m->desc.threshold = 0.5f;
    m->desc.spec_json = "{\"format\":\"opecom-spec/1\"}";
}

void tu_model_free(tu_model *m)
{
    for (size_t i = 0; i < m->n_names; i++)
        free(m->names[i]);
    free(m->names);
    free(m->cat_ptrs);
    free(m->quantiles);
    free(m->floats);
    free(m->blocks);
    free(m->features);
    memset(m, 0, sizeof *m);
}

opecom_model *tu_model_load_desc(const opecom_model_desc *desc, const char *kernel)
{
    const char *path = tu_tmp_path("model");
    opecom_error err;
    if (opecom_model_save(desc, path, &err) != OPECOM_OK) {
        fprintf(stderr, "save: %s\n", err.message);
        return NULL;
    }
    opecom_load_options opts = {kernel};
    opecom_model *m = NULL;
    if (opecom_model_load(path, &opts, &m, &err) != OPECOM_OK)
        fprintf(stderr, "load: %s\n", err.message);
    unlink(path);
    return m;
}

void tu_random_row(const opecom_model *model, tu_rng *r, opecom_value *row, int unknown)
{
    opecom_model_info info;
    opecom_model_describe(model, &info);
    for (uint32_t f = 0; f < info.n_features; f++) {
        opecom_feature_info fi;
        opecom_model_feature(model, f, &fi);
        row[f].str = NULL;
        row[f].num = 0;
        if (fi.type == OPECOM_FEATURE_NUMERIC) {
            double lo = fi.has_min ? fi.min : -50, hi = fi.has_max ? fi.max : 50;
            row[f].num = tu_uniform(r, lo, hi);
        } else if (unknown) {
            row[f].str = "not-a-category";
        } else {
            row[f].str = opecom_model_category(model, f, (uint32_t)(tu_next(r) % fi.n_categories));
        }
    }
}

unsigned char *tu_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = '\0'; /* callers may treat text files as strings */
    fclose(f);
    *size = (size_t)n;
    return b;
}

int tu_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Splits a CSV line (no quoting: the trainer writes none) in place. */
static size_t split_csv(char *line, char **fields, size_t cap)
{
    size_t n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < cap;) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

double tu_reference_max_diff(const char *model_path, const char *csv, const char *kernel,
                             size_t *n_rows)
{
    opecom_load_options opts = {kernel};
    opecom_model *m = NULL;
    opecom_error err;
    *n_rows = 0;
    if (opecom_model_load(model_path, &opts, &m, &err) != OPECOM_OK) {
        fprintf(stderr, "%s: %s\n", model_path, err.message);
        return -1;
    }
    FILE *f = fopen(csv, "r");
    if (!f) {
        perror(csv);
        opecom_model_free(m);
        return -1;
    }
    enum { MAXF = 256 };
    static char line[1 << 16], header[1 << 16];
    char *cols[MAXF], *vals[MAXF];
    opecom_model_info info;
    opecom_model_describe(m, &info);
    int32_t feat_col[MAXF], member_col[OPECOM_MAX_K], prob_col = -1, unknown_col = -1;
    size_t nc = 0;
    double worst = 0.0;
    for (size_t i = 0; i < MAXF; i++)
        feat_col[i] = -1;
    if (!fgets(header, sizeof header, f))
        goto bad;
    nc = split_csv(header, cols, MAXF);
    for (size_t c = 0; c < nc; c++) {
        int32_t fi = opecom_feature_index(m, cols[c]);
        unsigned mi;
        if (fi >= 0)
            feat_col[fi] = (int32_t)c;
        else if (sscanf(cols[c], "p_member_%u", &mi) == 1 && mi < OPECOM_MAX_K)
            member_col[mi] = (int32_t)c;
        else if (strcmp(cols[c], "probability") == 0)
            prob_col = (int32_t)c;
        else if (strcmp(cols[c], "unknown") == 0)
            unknown_col = (int32_t)c;
    }
    for (uint32_t i = 0; i < info.n_features; i++)
        if (feat_col[i] < 0) {
            fprintf(stderr, "%s: no column for feature %u\n", csv, i);
            goto bad;
        }
    if (prob_col < 0)
        goto bad;
    while (fgets(line, sizeof line, f)) {
        opecom_value row[MAXF];
        opecom_result res;
        if (split_csv(line, vals, MAXF) != nc)
            goto bad;
        for (uint32_t i = 0; i < info.n_features; i++) {
            opecom_feature_info fi;
            opecom_model_feature(m, i, &fi);
            row[i].str = NULL;
            row[i].num = 0;
            if (fi.type == OPECOM_FEATURE_NUMERIC)
                row[i].num = strtod(vals[feat_col[i]], NULL);
            else
                row[i].str = vals[feat_col[i]];
        }
        if (opecom_predict(m, NULL, row, &res, &err) != OPECOM_OK) {
            fprintf(stderr, "%s row %zu: %s\n", csv, *n_rows + 1, err.message);
            goto bad;
        }
        double d = fabs((double)res.probability - strtod(vals[prob_col], NULL));
        worst = d > worst ? d : worst;
        for (uint32_t i = 0; i < info.k; i++) {
            d = fabs((double)res.member[i] - strtod(vals[member_col[i]], NULL));
            worst = d > worst ? d : worst;
        }
        if (unknown_col >= 0 && (res.n_unknown > 0) != (atoi(vals[unknown_col]) != 0)) {
            fprintf(stderr, "%s row %zu: unknown flag %u disagrees\n", csv, *n_rows + 1,
                    res.n_unknown);
            goto bad;
        }
        (*n_rows)++;
    }
    fclose(f);
    opecom_model_free(m);
    return worst;
bad:
    fclose(f);
    opecom_model_free(m);
    return -1;
}
