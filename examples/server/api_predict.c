/*
 * api_predict.c - POST /api/predict: parses the request (raw features, or a
 * session id), calls the scoring service, renders the answer.
 *
 * Hot path: a raw-feature request with "reasons": 0. It costs one jansson
 * parse, one opecom_predict in this thread's workspace and one jansson
 * reply; no lock.
 *
 * Validation follows docs/server.md: every UCI column except Revenue is
 * required; numbers must be numbers (counts and durations >= 0, rates and
 * SpecialDay in [0, 1]); categories may be text or numbers; Weekend is a
 * boolean or "TRUE"/"FALSE". Each failure is a 422 naming the key. Values
 * the library still refuses (its feature ranges) come back as OPECOM_EINVAL
 * with err.feature, and are named the same way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "server.h"

#define N_UCI 17        /* feature columns; 17 is Revenue, ignored */

/* ===================================================================== *
 * Rendering
 * ===================================================================== */

static json_t *result_json(srv *s, const srv_score_result *res) {
    const srv_model *m = res->model;
    json_t *members = json_array(), *reasons = json_array(), *unknown = json_array();
    for (uint32_t i = 0; i < res->r.k; i++)
        json_array_append_new(members, json_real(res->r.member[i]));
    for (uint32_t i = 0; i < res->n_reasons; i++) {
        opecom_feature_info fi;
        const char *name = "?";
        if (opecom_model_feature(m->model, res->reasons[i].feature, &fi) == OPECOM_OK)
            name = fi.name;
        json_array_append_new(reasons, json_pack("{s:s, s:f, s:s}", "feature", name,
                                                 "contribution", res->reasons[i].contribution,
                                                 "text", res->reasons[i].text));
    }
    for (uint32_t i = 0; i < 64 && res->r.n_unknown > 0; i++) {
        opecom_feature_info fi;
        if ((res->r.unknown_mask >> i & 1) &&
            opecom_model_feature(m->model, i, &fi) == OPECOM_OK)
            json_array_append_new(unknown, json_string(fi.name));
    }
    return json_pack("{s:f, s:f, s:f, s:o, s:b, s:f, s:s, s:s, s:s, s:s, s:o, s:o}",
                     "probability", (double)res->r.probability, "spread",
                     (double)res->r.spread, "confidence", (double)res->r.confidence, "members",
                     members, "label", res->r.label, "threshold", m->threshold, "variant",
                     s->cfg.variants[res->variant].name, "model", m->name, "kernel", m->kernel,
                     "action",
                     res->action, "reasons", reasons, "unknown", unknown);
}

/* ===================================================================== *
 * POST /api/predict
 * ===================================================================== */

/* 1: 0..max bytes of printable ASCII (min 1 when nonempty is set). */
static int printable_id(json_t *v, int nonempty) {
    const char *s;
    size_t n, i;
    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n >= OPECOM_ID_MAX || (nonempty && n == 0))
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* Column rules: 0 count, 1 duration, 2 rate in [0, 1], 3 value >= 0,
 * 4 category, 5 Weekend. */
static const unsigned char col_rule[N_UCI] = {0, 1, 0, 1, 0, 1, 2, 2, 3, 2, 4, 4, 4, 4, 4, 4, 5};

/* Reads column col of the request into *val; 0, or -1 after a 422. */
static int read_column(int col, json_t *v, opecom_value *val, srv_reply *out) {
    const char *key = opecom_session_column_name(col);
    val->num = 0;
    val->str = NULL;
    switch (col_rule[col]) {
    case 0:
    case 1:
    case 2:
    case 3: {
        double x;
        if (!json_is_number(v)) {
            srv_reply_error(out, 422, key, "must be a number");
            return -1;
        }
        x = json_number_value(v);
        if (!isfinite(x)) {
            srv_reply_error(out, 422, key, "must be a finite number");
            return -1;
        }
        if (x < 0) {
            srv_reply_error(out, 422, key, "must not be negative");
            return -1;
        }
        if (col_rule[col] == 2 && x > 1) {
            srv_reply_error(out, 422, key, "must be in [0, 1]");
            return -1;
        }
        val->num = x;
        return 0;
    }
    case 4:
        if (json_is_string(v)) {
            if (json_string_length(v) == 0 || json_string_length(v) >= OPECOM_CODE_TEXT_MAX ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                srv_reply_error(out, 422, key, "must be a text of 1 to %d bytes or a number",
                                OPECOM_CODE_TEXT_MAX - 1);
                return -1;
            }
            val->str = json_string_value(v);
            return 0;
        }
        if (json_is_number(v) && isfinite(json_number_value(v))) {
            val->num = json_number_value(v);
            return 0;
        }
        srv_reply_error(out, 422, key, "must be a text or a number");
        return -1;
    default: /* Weekend */
        if (json_is_boolean(v)) {
            val->str = json_is_true(v) ? "TRUE" : "FALSE";
            return 0;
        }
        if (json_is_string(v) && strcasecmp(json_string_value(v), "TRUE") == 0) {
            val->str = "TRUE";
            return 0;
        }
        if (json_is_string(v) && strcasecmp(json_string_value(v), "FALSE") == 0) {
            val->str = "FALSE";
            return 0;
        }
        srv_reply_error(out, 422, key, "must be true/false or \"TRUE\"/\"FALSE\"");
        return -1;
    }
}

static json_t *features_json(const opecom_session *ses) {
    static const int32_t all[N_UCI] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    opecom_value row[N_UCI];
    if (opecom_session_row(ses, all, N_UCI, row, NULL) != OPECOM_OK)
        return json_null();
    json_t *o = json_object();
    for (int i = 0; i < N_UCI; i++) {
        json_t *v;
        if (i == 16)
            v = json_boolean(row[i].str != NULL && strcmp(row[i].str, "TRUE") == 0);
        else if (row[i].str != NULL)
            v = json_string(row[i].str);
        else
            v = json_real(row[i].num);
        json_object_set_new(o, opecom_session_column_name(i), v);
    }
    return o;
}

void api_predict(srv *s, const srv_request *rq, srv_reply *out) {
    const char *body = rq->body;
    size_t len = rq->len;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v, *session_id = NULL, *visitor = NULL;
    opecom_value uci[N_UCI];
    uint32_t seen = 0; /* bit per UCI column */
    uint32_t n_reasons = 3;
    int variant = -1, is_open = 0, col;
    opecom_session ses;
    srv_score_result res;
    opecom_error err;
    opecom_status st;
    const char *key;

    if (root == NULL) {
        srv_reply_error(out, 400, NULL, "body is not JSON: line %d, column %d: %s", jerr.line,
                        jerr.column, jerr.text);
        return;
    }
    if (!json_is_object(root)) {
        srv_reply_error(out, 400, NULL, "body must be a JSON object");
        goto done;
    }
    session_id = json_object_get(root, "session_id");
    /* Keys: options, then the features (raw mode only). */
    json_object_foreach(root, key, v) {
        if (strcmp(key, "reasons") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 17) {
                srv_reply_error(out, 422, "reasons", "must be an integer in [0, 17]");
                goto done;
            }
            n_reasons = (uint32_t)json_integer_value(v);
        } else if (strcmp(key, "variant") == 0) {
            if (!json_is_string(v) || (variant = srv_variant_index(s, json_string_value(v))) < 0) {
                srv_reply_error(out, 422, "variant", "must be the name of a variant (the "
                                "control is \"%s\")", s->cfg.variants[0].name);
                goto done;
            }
        } else if (strcmp(key, "visitor_id") == 0) {
            if (!printable_id(v, 0)) {
                srv_reply_error(out, 422, "visitor_id", "must be a text of 0 to %d printable "
                                "ASCII bytes", OPECOM_ID_MAX - 1);
                goto done;
            }
            visitor = v;
        } else if (strcmp(key, "session_id") == 0) {
            if (!printable_id(v, 1)) {
                srv_reply_error(out, 422, "session_id", "must be a text of 1 to %d printable "
                                "ASCII bytes", OPECOM_ID_MAX - 1);
                goto done;
            }
        } else if ((col = opecom_session_column(key)) >= 0) {
            if (session_id != NULL) {
                srv_reply_error(out, 422, key, "features are not allowed with session_id");
                goto done;
            }
            if (col >= N_UCI)
                continue; /* Revenue: the label, ignored */
            if (read_column(col, v, &uci[col], out) != 0)
                goto done;
            seen |= 1u << col;
        } else {
            srv_reply_error(out, 422, key, "unknown key");
            goto done;
        }
    }

    if (session_id == NULL) {
        /* Raw features. */
        for (col = 0; col < N_UCI; col++) {
            if (!(seen >> col & 1)) {
                srv_reply_error(out, 422, opecom_session_column_name(col), "missing");
                goto done;
            }
        }
        if (variant < 0)
            variant = visitor != NULL ? srv_variant_for(s, json_string_value(visitor)) : 0;
    } else {
        const char *vid = visitor != NULL ? json_string_value(visitor) : NULL;
        int found = live_session(s, vid, json_string_value(session_id), &ses, &is_open);
        if (found < 0) {
            srv_reply_error(out, 503, NULL, "the session store failed; try again");
            goto done;
        }
        if (found == 0) {
            srv_reply_error(out, 404, "session_id", "unknown session \"%s\"",
                            json_string_value(session_id));
            goto done;
        }
        if (variant < 0)
            variant = srv_variant_for(s, ses.visitor_id);
        if (srv_session_row(&ses, uci, &err) != OPECOM_OK) {
            srv_reply_error(out, 500, NULL, "cannot build the session's row: %s", err.message);
            goto done;
        }
    }

    st = srv_score(s, variant, uci, n_reasons, &res, &err);
    if (st == OPECOM_EINVAL && err.feature >= 0 && err.feature < N_UCI) {
        srv_reply_error(out, 422, opecom_session_column_name(err.feature), "%s", err.message);
        srv_score_done(&res);
        goto done;
    }
    if (st != OPECOM_OK) {
        srv_reply_error(out, 500, NULL, "scoring failed: %s", opecom_strerror(st));
        srv_score_done(&res);
        goto done;
    }

    json_t *o = result_json(s, &res);
    srv_score_done(&res);
    if (o != NULL && session_id != NULL)
        json_object_update_new(o, json_pack("{s:s, s:s, s:b, s:o}", "session_id", ses.session_id,
                                            "visitor_id", ses.visitor_id, "open", is_open,
                                            "features", features_json(&ses)));
    srv_reply_object(out, 200, o, 9);
done:
    json_decref(root);
}
