/*
 * fuzz_model.c - the model loader on arbitrary bytes. Whatever the bytes,
 * opecom_model_load_buffer returns a status (no crash, no leak, no hang);
 * when it accepts them, the model must also predict a plain row.
 *
 * Each input is tried twice: as it is, and with its CRC32 recomputed, so
 * that mutations reach the structural checks behind the checksum. A model
 * with an explanation baseline (and few enough features and baseline rows
 * to stay fast) is also explained, and its contributions must add up; a
 * model with a drift reference bins the row, every index must fall inside
 * the counts array, and the PSI of those counts must be >= 0 (or NaN).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/format.h"
#include "fuzz.h"
#include "opecom.h"

static void check_drift(const opecom_model *m, const opecom_value *row, float p,
                        const opecom_drift_info *di)
{
    uint32_t *index = calloc(di->n_dims, sizeof *index);
    uint64_t *counts = calloc(di->n_counts, sizeof *counts);
    double *psi = calloc(di->n_dims, sizeof *psi);
    if (index && counts && psi && opecom_drift_bin(m, row, p, index, NULL) == OPECOM_OK) {
        for (uint32_t d = 0; d < di->n_dims; d++) {
            if (index[d] >= di->n_counts)
                abort();
            counts[index[d]]++;
        }
        if (opecom_drift_psi(m, counts, psi, NULL) != OPECOM_OK)
            abort();
        for (uint32_t d = 0; d < di->n_dims; d++)
            if (!(psi[d] >= 0.0) && !isnan(psi[d]))
                abort();
    }
    free(index);
    free(counts);
    free(psi);
}

static void try_load(const uint8_t *data, size_t size)
{
    opecom_model *m = NULL;
    opecom_error err;
    if (opecom_model_load_buffer(data, size, NULL, &m, &err) != OPECOM_OK) {
        if (m != NULL || err.message[0] == '\0')
            abort(); /* a failure must leave no model and say why */
        return;
    }
    opecom_model_info info;
    opecom_model_describe(m, &info);
    opecom_value *row = calloc(info.n_features, sizeof *row);
    for (uint32_t f = 0; f < info.n_features; f++) {
        opecom_feature_info fi;
        opecom_model_feature(m, f, &fi);
        if (fi.type == OPECOM_FEATURE_CATEGORICAL)
            row[f].str = opecom_model_category(m, f, 0);
        else
            row[f].num = fi.has_min ? fi.min : fi.has_max ? fi.max : 0.0;
    }
    opecom_workspace *ws = NULL;
    opecom_result r;
    if (opecom_workspace_create(m, 3, &ws, NULL) == OPECOM_OK) {
        opecom_status s = opecom_predict(m, ws, row, &r, &err);
        if (s == OPECOM_OK && !(r.probability >= 0.0f && r.probability <= 1.0f))
            abort();
        if (info.n_baseline > 0 && info.n_baseline * info.n_features <= 256) {
            opecom_explain_options o = {OPECOM_ESTIMATOR_AUTO, 64, 1};
            opecom_explanation e;
            double *phi = calloc(info.n_features, sizeof *phi), sum = 0.0;
            if (phi != NULL && opecom_explain(m, ws, row, &o, &e, phi, &err) == OPECOM_OK) {
                for (uint32_t f = 0; f < info.n_features; f++)
                    sum += phi[f];
                if (!(fabs(sum - (e.probability - e.baseline)) <= 1e-9))
                    abort();
            }
            free(phi);
        }
        opecom_drift_info di;
        if (s == OPECOM_OK && opecom_drift_describe(m, &di, NULL) == OPECOM_OK)
            check_drift(m, row, r.probability, &di);
        opecom_workspace_free(ws);
    }
    free(row);
    opecom_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_load(data, size);
    if (size >= OPM_HDR_SIZE && opm_rd64(data + OPM_HDR_FILE_SIZE) == size) {
        uint8_t *fixed = malloc(size);
        if (fixed == NULL)
            return 0;
        memcpy(fixed, data, size);
        opm_wr32(fixed + OPM_HDR_CRC, opecom_opm_crc(fixed, size));
        try_load(fixed, size);
        free(fixed);
    }
    return 0;
}
