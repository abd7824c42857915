/*
 * config.c - the server's settings: defaults, then the JSON --config file,
 * then the command-line flags (docs/server.md, "Running it").
 *
 * Every value is checked where it is read, and a bad one stops the server
 * with one message naming the flag or key (`config shop.json:
 * intervention.min_probability: must be a number in [0, 1]`). Flag errors
 * return -2 (a usage error: exit status 2), everything else -1.
 *
 * The default code table (the tracker's os / browser / traffic_type texts ->
 * UCI codes) is documented in docs/server.md; the UCI data does not publish
 * its code book, so these are our own choices within the codes the model
 * knows (OperatingSystems 1..8, Browser 1..13, TrafficType 1..20).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server.h"

#define USAGE_ERROR -2

/* ===================================================================== *
 * Defaults
 * ===================================================================== */

typedef struct default_code {
    opecom_code_field field;
    const char *text;
    uint16_t code;
} default_code;

static const default_code default_codes[] = {
    {OPECOM_CODE_OS, "Windows", 2},
    {OPECOM_CODE_OS, "Mac OS", 3},
    {OPECOM_CODE_OS, "Linux", 4},
    {OPECOM_CODE_OS, "Android", 1},
    {OPECOM_CODE_OS, "iOS", 5},
    {OPECOM_CODE_OS, "Chrome OS", 6},
    {OPECOM_CODE_BROWSER, "Chrome", 2},
    {OPECOM_CODE_BROWSER, "Safari", 1},
    {OPECOM_CODE_BROWSER, "Firefox", 5},
    {OPECOM_CODE_BROWSER, "Edge", 4},
    {OPECOM_CODE_BROWSER, "Opera", 6},
    {OPECOM_CODE_BROWSER, "Samsung Internet", 10},
    {OPECOM_CODE_TRAFFIC_TYPE, "direct", 1},
    {OPECOM_CODE_TRAFFIC_TYPE, "search", 2},
    {OPECOM_CODE_TRAFFIC_TYPE, "social", 3},
    {OPECOM_CODE_TRAFFIC_TYPE, "referral", 4},
    {OPECOM_CODE_TRAFFIC_TYPE, "email", 5},
    {OPECOM_CODE_TRAFFIC_TYPE, "campaign", 6},
};
#define N_DEFAULT_CODES (sizeof(default_codes) / sizeof(default_codes[0]))

static const char *const code_field_name[4] = {"os", "browser", "region", "traffic_type"};

static void set_defaults(srv_config *cfg) {
    size_t i;
    cfg->port = 8080;
    snprintf(cfg->db, sizeof(cfg->db), "opecom.db");
    cfg->threads = 8;
    cfg->follow_ms = 100;
    snprintf(cfg->store_dir, sizeof(cfg->store_dir), "examples/store");
    snprintf(cfg->dashboard_dir, sizeof(cfg->dashboard_dir), "examples/dashboard");
    cfg->n_variants = 1;
    snprintf(cfg->variants[0].name, SRV_NAME_MAX, "default");
    snprintf(cfg->variants[0].path, SRV_PATH_MAX, "models/shoppers-tabm-k4.opm");
    cfg->variants[0].weight = 1;
    snprintf(cfg->action, sizeof(cfg->action), "discount");
    cfg->min_p = 0.2;
    cfg->max_p = 0.6;
    cfg->drift_window = SRV_DRIFT_WINDOW_DEFAULT;
    opecom_session_config_default(&cfg->session);
    for (i = 0; i < N_DEFAULT_CODES; i++) {
        cfg->codes[i].field = default_codes[i].field;
        cfg->codes[i].text = default_codes[i].text;
        cfg->codes[i].code = default_codes[i].code;
    }
    cfg->session.codes = cfg->codes;
    cfg->session.n_codes = (uint32_t)N_DEFAULT_CODES;
}

/* ===================================================================== *
 * Shared checks
 * ===================================================================== */

static int fail(char *err, size_t size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t size, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return code;
}

/* Variant and action names: 1..63 bytes of [A-Za-z0-9_.-]. */
static int valid_name(const char *s) {
    size_t n = strlen(s);
    size_t i;
    if (n == 0 || n >= SRV_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* A whole decimal integer in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_weight(const char *s, double *out) {
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !(v > 0) || v > 1e6)
        return -1;
    *out = v;
    return 0;
}

static int add_variant(srv_config *cfg, const char *name, const char *path, double weight,
                       const char *where, char *err, size_t size, int code) {
    srv_variant *v;
    int i;
    if (cfg->n_variants >= SRV_MAX_VARIANTS)
        return fail(err, size, code, "%s: at most %d variants", where, SRV_MAX_VARIANTS);
    if (!valid_name(name))
        return fail(err, size, code,
                    "%s: variant name \"%s\" must be 1 to %d characters of A-Z a-z 0-9 _ . -",
                    where, name, SRV_NAME_MAX - 1);
    for (i = 0; i < cfg->n_variants; i++)
        if (strcmp(cfg->variants[i].name, name) == 0)
            return fail(err, size, code, "%s: variant name \"%s\" used twice", where, name);
    if (path[0] == '\0' || strlen(path) >= SRV_PATH_MAX)
        return fail(err, size, code, "%s: model path must be 1 to %d bytes", where,
                    SRV_PATH_MAX - 1);
    v = &cfg->variants[cfg->n_variants++];
    memset(v, 0, sizeof(*v));
    snprintf(v->name, sizeof(v->name), "%s", name);
    snprintf(v->path, sizeof(v->path), "%s", path);
    v->weight = weight;
    return 0;
}

/* ===================================================================== *
 * The JSON file
 * ===================================================================== */

typedef struct file_ctx {
    const char *file;
    char *err;
    size_t size;
    srv_config *cfg;
    char *text_next; /* free space in cfg->code_text */
    char *text_end;
} file_ctx;

static int ffail(file_ctx *f, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ffail(file_ctx *f, const char *key, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(f->err, f->size, "config %s: %s: %s", f->file, key, msg);
    return -1;
}

static int get_number(file_ctx *f, json_t *v, const char *key, double lo, double hi,
                      double *out) {
    double x;
    if (!json_is_number(v))
        return ffail(f, key, "must be a number in [%g, %g]", lo, hi);
    x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return ffail(f, key, "must be a number in [%g, %g]", lo, hi);
    *out = x;
    return 0;
}

static int get_int(file_ctx *f, json_t *v, const char *key, long lo, long hi, long *out) {
    json_int_t x;
    if (!json_is_integer(v))
        return ffail(f, key, "must be an integer in [%ld, %ld]", lo, hi);
    x = json_integer_value(v);
    if (x < lo || x > hi)
        return ffail(f, key, "must be an integer in [%ld, %ld]", lo, hi);
    *out = (long)x;
    return 0;
}

static int get_path(file_ctx *f, json_t *v, const char *key, char *dst, size_t size) {
    const char *s;
    if (!json_is_string(v))
        return ffail(f, key, "must be a string (a path)");
    s = json_string_value(v);
    if (s[0] == '\0' || strlen(s) >= size || strlen(s) != json_string_length(v))
        return ffail(f, key, "must be a path of 1 to %zu bytes", size - 1);
    snprintf(dst, size, "%s", s);
    return 0;
}

/* Rejects any key of object o not in the NULL-terminated list. */
static int check_keys(file_ctx *f, json_t *o, const char *prefix, const char *const *known) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t i;
        for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
            ;
        if (known[i] == NULL) {
            char where[256];
            snprintf(where, sizeof(where), "%s%s", prefix, key);
            return ffail(f, where, "unknown key");
        }
    }
    return 0;
}

static int read_variants(file_ctx *f, json_t *arr) {
    static const char *const keys[] = {"name", "model", "weight", NULL};
    size_t i;
    json_t *o;
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > SRV_MAX_VARIANTS)
        return ffail(f, "variants", "must be an array of 1 to %d variants", SRV_MAX_VARIANTS);
    f->cfg->n_variants = 0;
    json_array_foreach(arr, i, o) {
        char where[64], key[96], path[SRV_PATH_MAX];
        double weight = 1;
        json_t *v;
        snprintf(where, sizeof(where), "variants[%zu]", i);
        if (!json_is_object(o))
            return ffail(f, where, "must be an object {\"name\", \"model\", \"weight\"}");
        snprintf(key, sizeof(key), "%s.", where);
        if (check_keys(f, o, key, keys) != 0)
            return -1;
        v = json_object_get(o, "name");
        if (!json_is_string(v)) {
            snprintf(key, sizeof(key), "%s.name", where);
            return ffail(f, key, "must be a string");
        }
        snprintf(key, sizeof(key), "%s.model", where);
        if (json_object_get(o, "model") == NULL)
            return ffail(f, key, "missing");
        if (get_path(f, json_object_get(o, "model"), key, path, sizeof(path)) != 0)
            return -1;
        if ((v = json_object_get(o, "weight")) != NULL) {
            snprintf(key, sizeof(key), "%s.weight", where);
            if (!json_is_number(v) || !(json_number_value(v) > 0) ||
                json_number_value(v) > 1e6)
                return ffail(f, key, "must be a number in (0, 1e6]");
            weight = json_number_value(v);
        }
        snprintf(key, sizeof(key), "config %s: %s", f->file, where);
        if (add_variant(f->cfg, json_string_value(json_object_get(o, "name")), path, weight, key,
                        f->err, f->size, -1) != 0)
            return -1;
    }
    return 0;
}

static int read_intervention(file_ctx *f, json_t *o) {
    static const char *const keys[] = {"action", "min_probability", "max_probability", NULL};
    json_t *v;
    if (!json_is_object(o))
        return ffail(f, "intervention", "must be an object");
    if (check_keys(f, o, "intervention.", keys) != 0)
        return -1;
    if ((v = json_object_get(o, "action")) != NULL) {
        if (!json_is_string(v) || !valid_name(json_string_value(v)) ||
            strcmp(json_string_value(v), "none") == 0)
            return ffail(f, "intervention.action",
                         "must be a name of 1 to %d characters of A-Z a-z 0-9 _ . - (not "
                         "\"none\")",
                         SRV_NAME_MAX - 1);
        snprintf(f->cfg->action, sizeof(f->cfg->action), "%s", json_string_value(v));
    }
    if ((v = json_object_get(o, "min_probability")) != NULL &&
        get_number(f, v, "intervention.min_probability", 0, 1, &f->cfg->min_p) != 0)
        return -1;
    if ((v = json_object_get(o, "max_probability")) != NULL &&
        get_number(f, v, "intervention.max_probability", 0, 1, &f->cfg->max_p) != 0)
        return -1;
    if (f->cfg->min_p > f->cfg->max_p)
        return ffail(f, "intervention", "min_probability (%g) is above max_probability (%g)",
                     f->cfg->min_p, f->cfg->max_p);
    return 0;
}

static int read_session(file_ctx *f, json_t *o) {
    static const char *const keys[] = {"idle_timeout_s", "utc_offset_min", NULL};
    json_t *v;
    long x;
    if (!json_is_object(o))
        return ffail(f, "session", "must be an object");
    if (check_keys(f, o, "session.", keys) != 0)
        return -1;
    if ((v = json_object_get(o, "idle_timeout_s")) != NULL) {
        if (get_int(f, v, "session.idle_timeout_s", 1, 366L * 86400, &x) != 0)
            return -1;
        f->cfg->session.idle_timeout_s = x;
    }
    if ((v = json_object_get(o, "utc_offset_min")) != NULL) {
        if (get_int(f, v, "session.utc_offset_min", -1440, 1440, &x) != 0)
            return -1;
        f->cfg->session.utc_offset_min = (int32_t)x;
    }
    return 0;
}

static int read_special_days(file_ctx *f, json_t *arr) {
    static const char *const keys[] = {"month", "day", "weekday", "nth", "offset_days", NULL};
    size_t i;
    json_t *o;
    if (!json_is_array(arr) || json_array_size(arr) > 64)
        return ffail(f, "special_days", "must be an array of at most 64 days");
    json_array_foreach(arr, i, o) {
        opecom_special_day *d = &f->cfg->special_days[i];
        char where[64], key[96];
        long month, x;
        json_t *v;
        snprintf(where, sizeof(where), "special_days[%zu]", i);
        if (!json_is_object(o))
            return ffail(f, where,
                         "must be {\"month\", \"day\"} or {\"month\", \"weekday\", \"nth\", "
                         "\"offset_days\"}");
        snprintf(key, sizeof(key), "%s.", where);
        if (check_keys(f, o, key, keys) != 0)
            return -1;
        memset(d, 0, sizeof(*d));
        snprintf(key, sizeof(key), "%s.month", where);
        if ((v = json_object_get(o, "month")) == NULL)
            return ffail(f, key, "missing");
        if (get_int(f, v, key, 1, 12, &month) != 0)
            return -1;
        d->month = (uint8_t)month;
        if ((v = json_object_get(o, "day")) != NULL) {
            snprintf(key, sizeof(key), "%s.day", where);
            if (json_object_get(o, "weekday") != NULL || json_object_get(o, "nth") != NULL)
                return ffail(f, key, "give either day or weekday and nth, not both");
            if (get_int(f, v, key, 1, 31, &x) != 0)
                return -1;
            d->day = (uint8_t)x;
        } else {
            snprintf(key, sizeof(key), "%s.weekday", where);
            if ((v = json_object_get(o, "weekday")) == NULL)
                return ffail(f, where, "needs day, or weekday and nth");
            if (get_int(f, v, key, 0, 6, &x) != 0)
                return -1;
            d->weekday = (uint8_t)x;
            snprintf(key, sizeof(key), "%s.nth", where);
            if ((v = json_object_get(o, "nth")) == NULL)
                return ffail(f, key, "missing (1..5, or -1 for the last)");
            if (get_int(f, v, key, -1, 5, &x) != 0 || x == 0)
                return ffail(f, key, "must be 1..5, or -1 for the last");
            d->nth = (int8_t)x;
        }
        if ((v = json_object_get(o, "offset_days")) != NULL) {
            snprintf(key, sizeof(key), "%s.offset_days", where);
            if (get_int(f, v, key, -31, 31, &x) != 0)
                return -1;
            d->offset_days = (int8_t)x;
        }
    }
    f->cfg->session.special_days = f->cfg->special_days;
    f->cfg->session.n_special_days = (uint32_t)json_array_size(arr);
    return 0;
}

/* "codes": each field given replaces that field's default entries. */
static int read_codes(file_ctx *f, json_t *o) {
    static const char *const keys[] = {"os", "browser", "region", "traffic_type", NULL};
    srv_config *cfg = f->cfg;
    opecom_code_entry kept[N_DEFAULT_CODES];
    size_t n_kept = 0, total = 0, i;
    int field;
    if (!json_is_object(o))
        return ffail(f, "codes", "must be an object");
    if (check_keys(f, o, "codes.", keys) != 0)
        return -1;
    for (i = 0; i < cfg->session.n_codes && i < N_DEFAULT_CODES; i++)
        if (json_object_get(o, code_field_name[cfg->codes[i].field]) == NULL)
            kept[n_kept++] = cfg->codes[i];
    for (field = 0; field < 4; field++) {
        json_t *t = json_object_get(o, code_field_name[field]);
        char key[64];
        snprintf(key, sizeof(key), "codes.%s", code_field_name[field]);
        if (t != NULL && !json_is_object(t))
            return ffail(f, key, "must be an object of text -> code 1..999");
        total += t != NULL ? json_object_size(t) : 0;
    }
    if (n_kept + total > SRV_MAX_CODES)
        return ffail(f, "codes", "at most %d entries", SRV_MAX_CODES);
    free(cfg->code_text);
    cfg->code_text = malloc(total * OPECOM_CODE_TEXT_MAX + 1);
    if (cfg->code_text == NULL)
        return ffail(f, "codes", "out of memory");
    f->text_next = cfg->code_text;
    memcpy(cfg->codes, kept, n_kept * sizeof(kept[0]));
    total = n_kept;
    for (field = 0; field < 4; field++) {
        json_t *t = json_object_get(o, code_field_name[field]);
        const char *text;
        json_t *v;
        if (t == NULL)
            continue;
        json_object_foreach(t, text, v) {
            char key[160];
            size_t len = strlen(text);
            snprintf(key, sizeof(key), "codes.%s.%s", code_field_name[field], text);
            if (len == 0 || len >= OPECOM_CODE_TEXT_MAX)
                return ffail(f, key, "the text must be 1 to %d bytes", OPECOM_CODE_TEXT_MAX - 1);
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 999)
                return ffail(f, key, "must be an integer code in [1, 999]");
            memcpy(f->text_next, text, len + 1);
            cfg->codes[total].field = (opecom_code_field)field;
            cfg->codes[total].text = f->text_next;
            cfg->codes[total].code = (uint16_t)json_integer_value(v);
            f->text_next += len + 1;
            total++;
        }
    }
    cfg->session.codes = cfg->codes;
    cfg->session.n_codes = (uint32_t)total;
    return 0;
}

/* An operator token: 16 to SRV_TOKEN_MAX-1 printable ASCII bytes, no
 * spaces (it travels in an Authorization header). @return 0 or -1. */
static int check_token(const char *t) {
    size_t n = strlen(t);
    if (n < 16 || n >= SRV_TOKEN_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= 0x20 || t[i] > 0x7e)
            return -1;
    return 0;
}

static int read_file(srv_config *cfg, const char *file, char *err, size_t size) {
    static const char *const keys[] = {"port",          "db",       "threads",      "follow_ms",
                                       "admin_token",   "store_dir",     "dashboard_dir",
                                       "variants",      "intervention",  "session",
                                       "special_days",  "codes",    "drift_window",
                                       NULL};
    file_ctx f = {file, err, size, cfg, NULL, NULL};
    json_error_t jerr;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v;
    long x;
    int rc = -1;
    if (root == NULL) {
        if (jerr.line <= 0)
            return fail(err, size, -1, "config %s: %s", file, jerr.text);
        return fail(err, size, -1, "config %s: line %d, column %d: %s", file, jerr.line,
                    jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        fail(err, size, -1, "config %s: must be a JSON object", file);
        goto done;
    }
    if (check_keys(&f, root, "", keys) != 0)
        goto done;
    if ((v = json_object_get(root, "port")) != NULL) {
        if (get_int(&f, v, "port", 0, 65535, &x) != 0)
            goto done;
        cfg->port = (int)x;
    }
    if ((v = json_object_get(root, "threads")) != NULL) {
        if (get_int(&f, v, "threads", 1, 256, &x) != 0)
            goto done;
        cfg->threads = (int)x;
    }
    if ((v = json_object_get(root, "follow_ms")) != NULL) {
        if (get_int(&f, v, "follow_ms", 10, 10000, &x) != 0)
            goto done;
        cfg->follow_ms = (int)x;
    }
    if ((v = json_object_get(root, "drift_window")) != NULL) {
        if (get_int(&f, v, "drift_window", SRV_DRIFT_WINDOW_MIN, SRV_DRIFT_WINDOW_MAX, &x) != 0)
            goto done;
        cfg->drift_window = (int)x;
    }
    if ((v = json_object_get(root, "admin_token")) != NULL) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            check_token(json_string_value(v)) != 0) {
            ffail(&f, "admin_token", "must be 16 to %d printable ASCII bytes without spaces",
                  SRV_TOKEN_MAX - 1);
            goto done;
        }
        snprintf(cfg->admin_token, sizeof cfg->admin_token, "%s", json_string_value(v));
    }
    if ((v = json_object_get(root, "db")) != NULL &&
        get_path(&f, v, "db", cfg->db, sizeof(cfg->db)) != 0)
        goto done;
    if ((v = json_object_get(root, "store_dir")) != NULL &&
        get_path(&f, v, "store_dir", cfg->store_dir, sizeof(cfg->store_dir)) != 0)
        goto done;
    if ((v = json_object_get(root, "dashboard_dir")) != NULL &&
        get_path(&f, v, "dashboard_dir", cfg->dashboard_dir, sizeof(cfg->dashboard_dir)) != 0)
        goto done;
    if ((v = json_object_get(root, "variants")) != NULL && read_variants(&f, v) != 0)
        goto done;
    if ((v = json_object_get(root, "intervention")) != NULL && read_intervention(&f, v) != 0)
        goto done;
    if ((v = json_object_get(root, "session")) != NULL && read_session(&f, v) != 0)
        goto done;
    if ((v = json_object_get(root, "special_days")) != NULL && read_special_days(&f, v) != 0)
        goto done;
    if ((v = json_object_get(root, "codes")) != NULL && read_codes(&f, v) != 0)
        goto done;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ===================================================================== *
 * Flags
 * ===================================================================== */

static const char *const flags_with_value[] = {"--port",      "--db",          "--model",
                                               "--variant",   "--config",      "--store-dir",
                                               "--dashboard-dir", "--threads", NULL};

/* Splits "--flag=value" or "--flag value"; *i moves past what was used.
 * @return the flag's index in flags_with_value, -1 unknown, -2 no value. */
static int next_flag(int argc, char **argv, int *i, char *name, size_t name_size,
                     const char **value) {
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    int f;
    snprintf(name, name_size, "%.*s", (int)len, arg);
    for (f = 0; flags_with_value[f] != NULL; f++)
        if (strcmp(flags_with_value[f], name) == 0)
            break;
    if (flags_with_value[f] == NULL)
        return -1;
    if (eq != NULL) {
        *value = eq + 1;
    } else {
        if (*i + 1 >= argc)
            return -2;
        *value = argv[++*i];
    }
    return f;
}

static int parse_variant_flag(srv_config *cfg, const char *arg, char *err, size_t size) {
    char buf[SRV_NAME_MAX + SRV_PATH_MAX + 64];
    char where[SRV_PATH_MAX + 32];
    char *eq, *colon;
    double weight;
    snprintf(where, sizeof(where), "--variant \"%s\"", arg);
    if (strlen(arg) >= sizeof(buf))
        return fail(err, size, USAGE_ERROR, "--variant: argument too long");
    snprintf(buf, sizeof(buf), "%s", arg);
    eq = strchr(buf, '=');
    colon = strrchr(buf, ':');
    if (eq == NULL || colon == NULL || colon < eq || eq == buf || colon == eq + 1)
        return fail(err, size, USAGE_ERROR, "%s: expected NAME=PATH:WEIGHT", where);
    *eq = '\0';
    *colon = '\0';
    if (parse_weight(colon + 1, &weight) != 0)
        return fail(err, size, USAGE_ERROR, "%s: WEIGHT must be a number in (0, 1e6]", where);
    return add_variant(cfg, buf, eq + 1, weight, where, err, size, USAGE_ERROR);
}

int srv_config_parse(int argc, char **argv, srv_config *cfg, char *err, size_t err_size) {
    const char *config_file = NULL;
    const char *model = NULL;
    int saw_variant = 0;
    int i, rc;
    char name[64];
    const char *value;

    memset(cfg, 0, sizeof(*cfg));
    set_defaults(cfg);

    /* First pass: syntax of every flag, and the config file's name. */
    for (i = 1; i < argc; i++) {
        int f = next_flag(argc, argv, &i, name, sizeof(name), &value);
        if (f == -1)
            return fail(err, err_size, USAGE_ERROR, "%s: unknown flag (see --help)", name);
        if (f == -2)
            return fail(err, err_size, USAGE_ERROR, "%s: needs a value", name);
        if (strcmp(name, "--config") == 0) {
            if (config_file != NULL)
                return fail(err, err_size, USAGE_ERROR, "--config: given twice");
            config_file = value;
        }
    }
    if (config_file != NULL && (rc = read_file(cfg, config_file, err, err_size)) != 0)
        return rc;
    /* the token may also come from the environment (a flag would show in ps) */
    const char *token = getenv("OPECOM_ADMIN_TOKEN");
    if (token != NULL && token[0] != '\0') {
        if (check_token(token) != 0)
            return fail(err, err_size, -1,
                        "OPECOM_ADMIN_TOKEN: must be 16 to %d printable ASCII bytes without "
                        "spaces", SRV_TOKEN_MAX - 1);
        snprintf(cfg->admin_token, sizeof cfg->admin_token, "%s", token);
    }

    /* Second pass: flags override the file. */
    for (i = 1; i < argc; i++) {
        long x;
        next_flag(argc, argv, &i, name, sizeof(name), &value);
        if (strcmp(name, "--port") == 0) {
            if (parse_int(value, 0, 65535, &x) != 0)
                return fail(err, err_size, USAGE_ERROR,
                            "--port \"%s\": must be an integer in [0, 65535]", value);
            cfg->port = (int)x;
        } else if (strcmp(name, "--threads") == 0) {
            if (parse_int(value, 1, 256, &x) != 0)
                return fail(err, err_size, USAGE_ERROR,
                            "--threads \"%s\": must be an integer in [1, 256]", value);
            cfg->threads = (int)x;
        } else if (strcmp(name, "--db") == 0 || strcmp(name, "--store-dir") == 0 ||
                   strcmp(name, "--dashboard-dir") == 0) {
            char *dst = strcmp(name, "--db") == 0          ? cfg->db
                        : strcmp(name, "--store-dir") == 0 ? cfg->store_dir
                                                           : cfg->dashboard_dir;
            if (value[0] == '\0' || strlen(value) >= SRV_PATH_MAX)
                return fail(err, err_size, USAGE_ERROR, "%s: must be a path of 1 to %d bytes",
                            name, SRV_PATH_MAX - 1);
            snprintf(dst, SRV_PATH_MAX, "%s", value);
        } else if (strcmp(name, "--model") == 0) {
            if (model != NULL)
                return fail(err, err_size, USAGE_ERROR, "--model: given twice");
            if (value[0] == '\0' || strlen(value) >= SRV_PATH_MAX)
                return fail(err, err_size, USAGE_ERROR, "--model: must be a path of 1 to %d bytes",
                            SRV_PATH_MAX - 1);
            model = value;
        } else if (strcmp(name, "--variant") == 0) {
            if (!saw_variant)
                cfg->n_variants = 0; /* the flags replace the file's variants */
            saw_variant = 1;
            if ((rc = parse_variant_flag(cfg, value, err, err_size)) != 0)
                return rc;
        }
    }
    if (model != NULL && saw_variant)
        return fail(err, err_size, USAGE_ERROR, "--model and --variant exclude each other");
    if (model != NULL) {
        cfg->n_variants = 0;
        add_variant(cfg, "default", model, 1, "--model", err, err_size, USAGE_ERROR);
    }
    return 0;
}

void srv_config_free(srv_config *cfg) {
    free(cfg->code_text);
    cfg->code_text = NULL;
    cfg->session.codes = NULL;
    cfg->session.n_codes = 0;
}
