/*
 * http.c - libmicrohttpd: the router, request bodies, static files, replies.
 *
 * The daemon runs a pool of cfg.threads epoll threads; each connection stays
 * on one thread, and handlers may block (POST /api/track waits for its
 * commit), so the pool should be larger than the number of cores. Each
 * connection owns a small context (made when it opens, kept across its
 * keep-alive requests) holding the body buffer, so an ordinary request
 * allocates nothing here beyond the reply.
 *
 * A request is answered as early as possible: an unknown route, a wrong
 * method, a Content-Length over the route's limit or a wrong Content-Type are
 * answered from the headers, without reading the body (libmicrohttpd then
 * closes the connection). A chunked body that grows past the limit is
 * dropped as it arrives and answered 413 at its end.
 *
 * Static files: "/..." from cfg.store_dir and "/dashboard/..." from
 * cfg.dashboard_dir. The path is decoded by our own unescape callback (a
 * %00 becomes a control byte, refused below), any "." or ".." segment,
 * control byte or backslash is refused with 400, and the file's realpath
 * must lie under the root's realpath (symlinks cannot lead out either).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "http.h"
#include "server.h"

/* ===================================================================== *
 * Replies
 * ===================================================================== */

void srv_reply_json(srv_reply *r, int status, char *json) {
    free(r->body);
    if (json == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\", \"field\": null}";
        r->status = 500;
        r->body = malloc(sizeof(oom));
        r->len = r->body != NULL ? sizeof(oom) - 1 : 0;
        if (r->body != NULL)
            memcpy(r->body, oom, sizeof(oom));
        r->content_type = NULL;
        return;
    }
    r->status = status;
    r->body = json;
    r->len = strlen(json);
    r->content_type = NULL;
}

void srv_reply_object(srv_reply *r, int status, json_t *o, int digits) {
    srv_reply_json(r, status, o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(digits))
                                        : NULL);
    json_decref(o);
}

void srv_reply_error(srv_reply *r, int status, const char *field, const char *fmt, ...) {
    char msg[768], full[1024];
    json_t *o;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(full, sizeof(full), "%s: %s", field, msg);
    else
        snprintf(full, sizeof(full), "%s", msg);
    /* json_string refuses invalid UTF-8, and a message may echo a client's
     * bytes (an unknown key, a path): then a fixed text is sent instead. */
    o = json_object();
    if (o != NULL) {
        json_t *m = json_string(full);
        json_t *f = field != NULL ? json_string(field) : json_null();
        if (m == NULL)
            m = json_string("invalid request (message not printable)");
        if (f == NULL)
            f = json_string("?");
        json_object_set_new(o, "error", m);
        json_object_set_new(o, "field", f);
    }
    srv_reply_json(r, status, o != NULL ? json_dumps(o, JSON_COMPACT) : NULL);
    json_decref(o);
}

/* ===================================================================== *
 * Routes (the table is routes.c's)
 * ===================================================================== */

/* Route indices beyond the table: static files and unknown API paths. */
#define R_STATIC srv_n_routes
#define R_UNMATCHED (srv_n_routes + 1)

static size_t match_route(const char *url) {
    for (size_t i = 0; i < srv_n_routes; i++)
        if (strcmp(url, srv_routes[i].path) == 0)
            return i;
    if (strcmp(url, "/api") == 0 || strncmp(url, "/api/", 5) == 0)
        return R_UNMATCHED;
    return R_STATIC;
}

/* ===================================================================== *
 * Connections and requests
 * ===================================================================== */

#define KEEP_BUFFER (64 * 1024) /* a body buffer above this is freed after use */

typedef struct conn {
    char *buf;           /* the body, NUL-terminated */
    size_t len, cap;
    int too_big;         /* the body passed the route's limit: dropped */
    size_t route;
    struct timespec start;
} conn;

struct srv_http {
    struct MHD_Daemon *daemon;
    srv *s;
    char store_root[PATH_MAX];     /* realpath, or "" when missing */
    char dashboard_root[PATH_MAX];
};

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(conn)); /* NULL: requests answer 500 */
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn *k = *socket_context;
        if (k != NULL)
            free(k->buf);
        free(k);
        *socket_context = NULL;
    }
}

static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe) {
    conn *k = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (k != NULL && k->cap > KEEP_BUFFER) {
        free(k->buf);
        k->buf = NULL;
        k->cap = 0;
    }
    *con_cls = NULL;
}

/* Percent-decoding of the path and the query arguments. A %00 turns into
 * 0x01 instead of ending the string, so the checks below see a control
 * byte and refuse the path instead of silently cutting it. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    char *r = s, *w = s;
    (void)cls;
    (void)c;
    while (*r != '\0') {
        if (r[0] == '%' && r[1] != '\0' && r[2] != '\0') {
            char hex[3] = {r[1], r[2], '\0'};
            char *end;
            unsigned long v = strtoul(hex, &end, 16);
            if (*end == '\0' && hex[0] != '+' && hex[0] != '-' && hex[0] != ' ') {
                *w++ = v == 0 ? '\x01' : (char)v;
                r += 3;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* ===================================================================== *
 * Queueing replies
 * ===================================================================== */

static enum MHD_Result queue(srv_http *h, struct MHD_Connection *c, conn *k, size_t route,
                             srv_reply *r, const char *allow, int api) {
    struct MHD_Response *resp;
    enum MHD_Result ret;
    if (r->body == NULL)
        srv_reply_json(r, 500, NULL);
    resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(r->body);
        r->body = NULL;
        return MHD_NO;
    }
    r->body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type != NULL ? r->content_type : "application/json");
    if (api)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (k != NULL)
        metrics_request(h->s->metrics, route, r->status, seconds_since(&k->start));
    return ret;
}

static enum MHD_Result queue_error(srv_http *h, struct MHD_Connection *c, conn *k, size_t route,
                                   int status, const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static enum MHD_Result queue_error(srv_http *h, struct MHD_Connection *c, conn *k, size_t route,
                                   int status, const char *allow, const char *fmt, ...) {
    srv_reply r = {0, NULL, 0, NULL};
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv_reply_error(&r, status, NULL, "%s", msg);
    return queue(h, c, k, route, &r, allow, 1);
}

/* ===================================================================== *
 * Static files
 * ===================================================================== */

static const char *content_type_of(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
    };
    const char *dot = strrchr(path, '.');
    size_t i;
    if (dot != NULL && strchr(dot, '/') == NULL)
        for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* 1: rel is a clean absolute path (no control byte, backslash, "." or ".."
 * segment). */
static int clean_path(const char *rel) {
    const char *p = rel;
    if (rel[0] != '/')
        return 0;
    for (; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return 0;
    for (p = rel; *p != '\0';) {
        const char *seg = p + 1;
        const char *end = strchr(seg, '/');
        size_t n = end != NULL ? (size_t)(end - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        if (end == NULL)
            break;
        p = end;
    }
    return 1;
}

static enum MHD_Result redirect(srv_http *h, struct MHD_Connection *c, conn *k,
                                const char *location) {
    static const char body[] = "moved\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    ret = MHD_queue_response(c, MHD_HTTP_MOVED_PERMANENTLY, resp);
    MHD_destroy_response(resp);
    metrics_request(h->s->metrics, R_STATIC, 301, seconds_since(&k->start));
    return ret;
}

/* url: the whole decoded path (for redirects); rel: the part under root. */
static enum MHD_Result serve_file(srv_http *h, struct MHD_Connection *c, conn *k,
                                  const char *root, const char *url, const char *rel) {
    char path[PATH_MAX + 32], real[PATH_MAX];
    struct stat st;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t root_len = strlen(root);
    int fd;
    if (!clean_path(rel))
        return queue_error(h, c, k, R_STATIC, 400, NULL, "bad path");
    if (root[0] == '\0')
        return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
    if (snprintf(path, sizeof(path), "%s%s%s", root, rel,
                 rel[strlen(rel) - 1] == '/' ? "index.html" : "") >= (int)sizeof(path))
        return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
    if (realpath(path, real) == NULL)
        return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
    if (strncmp(real, root, root_len) != 0 || (real[root_len] != '/' && real[root_len] != '\0'))
        return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
    fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
    }
    if (S_ISDIR(st.st_mode)) {
        char loc[PATH_MAX + 2];
        close(fd);
        if (strlen(url) + 2 > sizeof(loc) || url[strlen(url) - 1] == '/')
            return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
        snprintf(loc, sizeof(loc), "%s/", url);
        return redirect(h, c, k, loc);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return queue_error(h, c, k, R_STATIC, 404, NULL, "no such file");
    }
    resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* owns fd */
    if (resp == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(real));
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    metrics_request(h->s->metrics, R_STATIC, 200, seconds_since(&k->start));
    return ret;
}

static enum MHD_Result serve_static(srv_http *h, struct MHD_Connection *c, conn *k,
                                    const char *url) {
    if (strcmp(url, "/dashboard") == 0)
        return redirect(h, c, k, "/dashboard/");
    if (strncmp(url, "/dashboard/", 11) == 0)
        return serve_file(h, c, k, h->dashboard_root, url, url + 10);
    return serve_file(h, c, k, h->store_root, url, url);
}

/* ===================================================================== *
 * The handler
 * ===================================================================== */

/* application/json or text/plain, with optional parameters. */
static int acceptable_type(const char *ct) {
    size_t n;
    if (ct == NULL)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    for (n = 0; ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t'; n++)
        ;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 10 && strncasecmp(ct, "text/plain", 10) == 0);
}

/* Operator routes: "Authorization: Bearer <cfg.admin_token>", compared in
 * constant time. @return 0 allowed, else the status to answer (401 no or
 * wrong token, 403 operator routes are off: no token configured). */
static int operator_check(const srv *s, struct MHD_Connection *c) {
    const char *token = s->cfg.admin_token;
    if (token[0] == '\0')
        return 403;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (a == NULL || strncmp(a, "Bearer ", 7) != 0)
        return 401;
    a += 7;
    size_t n = strlen(token), m = strlen(a);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < m ? a[i] : 0);
    return diff == 0 ? 0 : 401;
}

const char *srv_request_arg(const srv_request *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result dispatch(srv_http *h, struct MHD_Connection *c, conn *k) {
    srv_reply r = {0, NULL, 0, NULL};
    srv_request rq = {k->buf, k->len, c};
    srv_routes[k->route].handle(h->s, &rq, &r);
    return queue(h, c, k, k->route, &r, NULL, 1);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    srv_http *h = cls;
    conn *k = *con_cls;
    (void)version;
    if (k == NULL) {
        /* First call: the headers are in. */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        size_t route;
        k = ci != NULL ? ci->socket_context : NULL;
        if (k == NULL)
            return MHD_NO; /* out of memory when the connection opened */
        *con_cls = k;
        clock_gettime(CLOCK_MONOTONIC, &k->start);
        k->len = 0;
        k->too_big = 0;
        k->route = route = match_route(url);
        if (route == R_UNMATCHED)
            return queue_error(h, c, k, route, 404, NULL, "no route %s %s", method, url);
        if (route == R_STATIC) {
            if (!is_get)
                return queue_error(h, c, k, route, 405, "GET, HEAD",
                                   "method %s not allowed; use GET", method);
            return MHD_YES; /* answered once the (empty) request is read: keeps alive */
        }
        if (srv_routes[route].access == SRV_OPERATOR) {
            int denied = operator_check(h->s, c);
            if (denied == 403)
                return queue_error(h, c, k, route, 403, NULL,
                                   "operator routes are off: set admin_token in the configuration"
                                   " (or OPECOM_ADMIN_TOKEN)");
            if (denied != 0)
                return queue_error(h, c, k, route, 401, NULL,
                                   "this route needs \"Authorization: Bearer <admin token>\"");
        }
        if (srv_routes[route].post) {
            const char *cl;
            if (strcmp(method, "POST") != 0)
                return queue_error(h, c, k, route, 405, "POST",
                                   "method %s not allowed on %s; use POST", method, url);
            cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl != NULL && strtoull(cl, NULL, 10) > srv_routes[route].body_max)
                return queue_error(h, c, k, route, 413, NULL, "body over %zu bytes",
                                   srv_routes[route].body_max);
            if (!acceptable_type(
                    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
                return queue_error(h, c, k, route, 415, NULL,
                                   "Content-Type must be application/json (or text/plain)");
            return MHD_YES; /* read the body */
        }
        if (!is_get)
            return queue_error(h, c, k, route, 405, "GET, HEAD",
                               "method %s not allowed on %s; use GET", method, url);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        size_t max = srv_routes[k->route].body_max;
        if (k->too_big || k->len + n > max) {
            k->too_big = 1;
            return MHD_YES;
        }
        if (k->len + n + 1 > k->cap) {
            size_t cap = k->cap < 4096 ? 4096 : k->cap;
            char *p;
            while (cap < k->len + n + 1)
                cap *= 2;
            if (cap > max + 1)
                cap = max + 1;
            p = realloc(k->buf, cap);
            if (p == NULL) {
                k->too_big = 2; /* out of memory: answered 500 at the end */
                return MHD_YES;
            }
            k->buf = p;
            k->cap = cap;
        }
        memcpy(k->buf + k->len, upload_data, n);
        k->len += n;
        return MHD_YES;
    }
    /* The whole request is in. */
    if (k->route == R_STATIC)
        return serve_static(h, c, k, url);
    if (k->too_big == 1)
        return queue_error(h, c, k, k->route, 413, NULL, "body over %zu bytes",
                           srv_routes[k->route].body_max);
    if (k->too_big == 2)
        return queue_error(h, c, k, k->route, 500, NULL, "out of memory");
    if (k->buf == NULL) {
        k->buf = malloc(4096);
        if (k->buf == NULL)
            return queue_error(h, c, k, k->route, 500, NULL, "out of memory");
        k->cap = 4096;
    }
    k->buf[k->len] = '\0';
    return dispatch(h, c, k);
}

/* ===================================================================== *
 * Start and stop
 * ===================================================================== */

static void resolve_root(const char *dir, char *out) {
    if (realpath(dir, out) == NULL)
        out[0] = '\0'; /* a missing folder serves nothing (404) */
}

srv_http *srv_http_start(srv *s, char *err, size_t err_size) {
    srv_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    h->s = s;
    resolve_root(s->cfg.store_dir, h->store_root);
    resolve_root(s->cfg.dashboard_dir, h->dashboard_root);
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)s->cfg.port, NULL, NULL,
        handler, h, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)30, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, (void *)h,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, (void *)h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, (void *)h, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(err, err_size, "cannot listen on port %d (in use, or not allowed)",
                 s->cfg.port);
        free(h);
        return NULL;
    }
    return h;
}

int srv_http_port(const srv_http *h) {
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info != NULL ? info->port : -1;
}

void srv_http_stop(srv_http *h) {
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
