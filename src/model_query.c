/*
 * model_query.c - read-only questions about a loaded model: its summary,
 * its features and categories, and feature lookup by name.
 */
#include <string.h>

#include "format.h"
#include "internal.h"

opecom_status opecom_model_describe(const opecom_model *m, opecom_model_info *out)
{
    if (m == NULL || out == NULL)
        return OPECOM_EINVAL;
    memset(out, 0, sizeof *out);
    out->format_version = OPM_VERSION;
    out->k = m->k;
    out->n_blocks = m->n_blocks;
    out->d_block = m->d_block;
    out->d_in = m->d_in;
    out->n_features = m->n_features;
    out->threshold = m->threshold;
    out->file_size = m->size;
    out->n_params = m->n_params;
    out->kernel = m->kernel->name;
    out->spec_json = m->spec_json;
    out->n_baseline = m->n_baseline;
    out->checksum = opm_rd32(m->bytes + OPM_HDR_CRC);
    out->n_drift_dims = m->n_drift_dims;
    return OPECOM_OK;
}

opecom_status opecom_model_feature(const opecom_model *m, uint32_t index, opecom_feature_info *out)
{
    if (m == NULL || out == NULL || index >= m->n_features)
        return OPECOM_EINVAL;
    const opecom_feature *F = &m->features[index];
    memset(out, 0, sizeof *out);
    out->name = F->name;
    out->type = F->type;
    if (F->type == OPECOM_FEATURE_CATEGORICAL) {
        out->n_categories = F->n_items;
        return OPECOM_OK;
    }
    out->transform = F->transform;
    out->mean = F->mean;
    out->std = F->std;
    out->has_min = F->has_min;
    out->has_max = F->has_max;
    out->min = F->min;
    out->max = F->max;
    out->n_quantiles = F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL ? F->n_items : 0;
    return OPECOM_OK;
}

const char *opecom_model_category(const opecom_model *m, uint32_t feature, uint32_t c)
{
    if (m == NULL || feature >= m->n_features)
        return NULL;
    const opecom_feature *F = &m->features[feature];
    if (F->type != OPECOM_FEATURE_CATEGORICAL || c >= F->n_items)
        return NULL;
    return F->cat_text[c];
}

int32_t opecom_feature_index(const opecom_model *m, const char *name)
{
    if (m == NULL || name == NULL)
        return -1;
    for (uint32_t f = 0; f < m->n_features; f++)
        if (strcmp(m->features[f].name, name) == 0)
            return (int32_t)f;
    return -1;
}
