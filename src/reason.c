/*
 * reason.c - short plain-language reasons for explanation contributions
 * (opecom_reason), from one template table.
 *
 * A template is chosen by the feature's UCI name, the sign of the
 * contribution ('+', '-', or '*' for either) and the value's bucket:
 *   numeric      ZERO  the value is 0 (counts, durations, rates, values)
 *                HIGH  the encoded value is at or above the reference: the
 *                      baseline's weighted mean of that encoded column, or
 *                      the training mean (encoded 0) without a baseline
 *                LOW   below the reference
 *   categorical  the category text, or any category (NULL)
 * The first matching row wins. In the text, {v} is the value formatted for
 * the feature (a count, a duration, a percentage...) and {c} the category
 * (months spelled out). A feature without a matching row gets a generic
 * text: "<name> is high (<value>)", "<name> is 0", "<name> is <category>".
 * docs/explanations.md shows the table; keep the two in step.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef enum bucket { B_ANY_CAT, B_ZERO, B_HIGH, B_LOW, B_CAT } bucket;

typedef enum value_kind { V_NUMBER, V_COUNT, V_SECONDS, V_RATE, V_MONEY } value_kind;

typedef struct reason_template {
    const char *feature;
    char sign;          /* '+', '-' or '*' */
    bucket bucket;
    const char *category; /* B_CAT only */
    const char *text;
} reason_template;

static const reason_template templates[] = {
    {"PageValues", '*', B_HIGH, NULL, "viewed pages with high page value ({v})"},
    {"PageValues", '*', B_LOW, NULL, "viewed pages with low page value ({v})"},
    {"PageValues", '*', B_ZERO, NULL, "viewed no pages with page value"},
    {"ProductRelated", '*', B_HIGH, NULL, "many product pages ({v})"},
    {"ProductRelated", '*', B_LOW, NULL, "few product pages ({v})"},
    {"ProductRelated", '*', B_ZERO, NULL, "no product pages"},
    {"ProductRelated_Duration", '*', B_HIGH, NULL, "long time on product pages ({v})"},
    {"ProductRelated_Duration", '-', B_LOW, NULL, "left product pages quickly ({v})"},
    {"ProductRelated_Duration", '*', B_LOW, NULL, "little time on product pages ({v})"},
    {"ProductRelated_Duration", '*', B_ZERO, NULL, "no time on product pages"},
    {"Administrative", '*', B_HIGH, NULL, "many account and checkout pages ({v})"},
    {"Administrative", '*', B_LOW, NULL, "few account and checkout pages ({v})"},
    {"Administrative", '*', B_ZERO, NULL, "no account or checkout pages"},
    {"Administrative_Duration", '*', B_HIGH, NULL,
     "long time on account and checkout pages ({v})"},
    {"Administrative_Duration", '*', B_LOW, NULL,
     "little time on account and checkout pages ({v})"},
    {"Administrative_Duration", '*', B_ZERO, NULL, "no time on account or checkout pages"},
    {"Informational", '*', B_HIGH, NULL, "many information pages ({v})"},
    {"Informational", '*', B_LOW, NULL, "few information pages ({v})"},
    {"Informational", '*', B_ZERO, NULL, "no information pages"},
    {"Informational_Duration", '*', B_HIGH, NULL, "long time on information pages ({v})"},
    {"Informational_Duration", '*', B_LOW, NULL, "little time on information pages ({v})"},
    {"Informational_Duration", '*', B_ZERO, NULL, "no time on information pages"},
    {"BounceRates", '-', B_HIGH, NULL, "left quickly (high bounce rate, {v})"},
    {"BounceRates", '*', B_HIGH, NULL, "high bounce rate ({v})"},
    {"BounceRates", '*', B_LOW, NULL, "stayed on (low bounce rate, {v})"},
    {"BounceRates", '*', B_ZERO, NULL, "visited pages nobody leaves at once (bounce rate 0)"},
    {"ExitRates", '*', B_HIGH, NULL, "visited pages where visits often end (exit rate {v})"},
    {"ExitRates", '*', B_LOW, NULL, "visited pages where visits rarely end (exit rate {v})"},
    {"ExitRates", '*', B_ZERO, NULL, "visited pages where visits never end (exit rate 0)"},
    {"SpecialDay", '*', B_HIGH, NULL, "close to a special day ({v})"},
    {"SpecialDay", '*', B_LOW, NULL, "some days before a special day ({v})"},
    {"SpecialDay", '*', B_ZERO, NULL, "not near a special day"},
    {"Month", '*', B_ANY_CAT, NULL, "visited in {c}"},
    {"VisitorType", '*', B_CAT, "New_Visitor", "new visitor"},
    {"VisitorType", '*', B_CAT, "Returning_Visitor", "returning visitor"},
    {"VisitorType", '*', B_CAT, "Other", "visitor neither new nor returning"},
    {"Weekend", '*', B_CAT, "TRUE", "visited at the weekend"},
    {"Weekend", '*', B_CAT, "FALSE", "visited on a weekday"},
    {"TrafficType", '*', B_ANY_CAT, NULL, "came from traffic source {c}"},
    {"Region", '*', B_ANY_CAT, NULL, "visitor from region {c}"},
    {"Browser", '*', B_ANY_CAT, NULL, "uses browser {c}"},
    {"OperatingSystems", '*', B_ANY_CAT, NULL, "uses operating system {c}"},
};

static const struct {
    const char *feature;
    value_kind kind;
} kinds[] = {
    {"Administrative", V_COUNT},       {"Administrative_Duration", V_SECONDS},
    {"Informational", V_COUNT},        {"Informational_Duration", V_SECONDS},
    {"ProductRelated", V_COUNT},       {"ProductRelated_Duration", V_SECONDS},
    {"BounceRates", V_RATE},           {"ExitRates", V_RATE},
    {"PageValues", V_MONEY},
};

static const char *const month_abbr[] = {"Jan", "Feb", "Mar", "Apr", "May", "June", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const month_name[] = {"January", "February", "March",     "April",
                                         "May",     "June",     "June",      "July",
                                         "August",  "September", "October", "November",
                                         "December"};

static value_kind kind_of(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].feature, name) == 0)
            return kinds[i].kind;
    return V_NUMBER;
}

static void format_value(char *buf, size_t size, value_kind kind, double v)
{
    switch (kind) {
    case V_COUNT:
        snprintf(buf, size, v == floor(v) ? "%.0f" : "%.1f", v);
        break;
    case V_SECONDS:
        if (v < 90.0)
            snprintf(buf, size, "%.0f s", v);
        else if (v < 90.0 * 60.0)
            snprintf(buf, size, "%.0f min", v / 60.0);
        else
            snprintf(buf, size, "%.1f h", v / 3600.0);
        break;
    case V_RATE:
        snprintf(buf, size, v * 100.0 < 10.0 ? "%.1f%%" : "%.0f%%", v * 100.0);
        break;
    case V_MONEY:
        snprintf(buf, size, v < 10.0 ? "%.1f" : "%.0f", v);
        break;
    default:
        snprintf(buf, size, "%g", v);
        break;
    }
}

/* Copies text into buf, replacing {v} and {c}; truncates to size. */
static void expand(char *buf, size_t size, const char *text, const char *v, const char *c)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < size; p++) {
        const char *sub = NULL;
        if (p[0] == '{' && (p[1] == 'v' || p[1] == 'c') && p[2] == '}') {
            sub = p[1] == 'v' ? v : c;
            p += 2;
        }
        if (sub == NULL) {
            buf[n++] = *p;
            continue;
        }
        for (; *sub && n + 1 < size; sub++)
            buf[n++] = *sub;
    }
    buf[n] = '\0';
}

/* The encoded value of numeric feature F for raw x (as preprocess.c does it). */
static double encoded(const opecom_feature *F, double x)
{
    double t = x;
    if (F->transform == OPECOM_TRANSFORM_LOG1P)
        t = log1p(x);
    else if (F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL)
        t = opecom_quantile_normal(F->quantiles, F->n_items, x);
    return (double)(float)((t - F->mean) / F->std);
}

opecom_status opecom_reason(const opecom_model *m, const opecom_value *row, uint32_t feature,
                            double contribution, char *buf, size_t size, opecom_error *err)
{
    if (m == NULL || row == NULL || buf == NULL || size == 0)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "model, row and buf must not be NULL");
    buf[0] = '\0';
    if (feature >= m->n_features)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "feature %u is out of range (%u)",
                           feature, m->n_features);
    const opecom_feature *F = &m->features[feature];
    const opecom_value *v = &row[feature];
    char sign = contribution < 0.0 ? '-' : '+';
    char value[48] = "", cat[96] = "";
    bucket bk;

    if (F->type == OPECOM_FEATURE_NUMERIC) {
        if (v->str != NULL || !isfinite(v->num))
            return opecom_fail(err, OPECOM_EINVAL, (int32_t)feature, -1, -1,
                               "feature '%s' is numeric: needs a finite number", F->name);
        double ref = 0.0;
        for (uint32_t b = 0; b < m->n_baseline; b++)
            ref += m->baseline_w[b] / m->baseline_wsum *
                   (double)m->baseline_x[(size_t)b * m->d_in + F->col];
        if (v->num == 0.0 && F->has_min && F->min == 0.0)
            bk = B_ZERO;
        else
            bk = encoded(F, v->num) >= ref ? B_HIGH : B_LOW;
        format_value(value, sizeof value, kind_of(F->name), v->num);
    } else {
        if (v->str == NULL && !isfinite(v->num))
            return opecom_fail(err, OPECOM_EINVAL, (int32_t)feature, -1, -1,
                               "feature '%s' is categorical: needs a category", F->name);
        char text[64];
        const char *c = v->str;
        if (c == NULL) {
            snprintf(text, sizeof text, "%g", v->num);
            c = text;
        }
        int known = 0;
        for (uint32_t i = 0; i < F->n_items && !known; i++)
            known = v->str ? strcmp(F->cat_text[i], v->str) == 0 : F->cat_num[i] == v->num;
        const char *shown = c;
        if (strcmp(F->name, "Month") == 0)
            for (size_t i = 0; i < sizeof month_abbr / sizeof month_abbr[0]; i++)
                if (strcmp(month_abbr[i], c) == 0)
                    shown = month_name[i];
        snprintf(cat, sizeof cat, "%.60s%s", shown, known ? "" : " (not seen in training)");
        snprintf(value, sizeof value, "%.40s", c);
        bk = B_CAT;
    }

    for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++) {
        const reason_template *t = &templates[i];
        if (strcmp(t->feature, F->name) != 0 || (t->sign != '*' && t->sign != sign))
            continue;
        if (bk == B_CAT ? !(t->bucket == B_ANY_CAT ||
                            (t->bucket == B_CAT && strcmp(t->category, value) == 0))
                        : t->bucket != bk)
            continue;
        expand(buf, size, t->text, value, cat);
        return OPECOM_OK;
    }
    if (bk == B_CAT)
        snprintf(buf, size, "%s is %s", F->name, cat);
    else if (bk == B_ZERO)
        snprintf(buf, size, "%s is 0", F->name);
    else
        snprintf(buf, size, "%s is %s (%s)", F->name, bk == B_HIGH ? "high" : "low", value);
    return OPECOM_OK;
}
