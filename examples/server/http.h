/*
 * http.h - what main.c needs from http.c beyond server.h: starting and
 * stopping the libmicrohttpd daemon. Private to http.c and main.c.
 */
#ifndef OPECOM_SERVER_HTTP_H
#define OPECOM_SERVER_HTTP_H

#include <stddef.h>

#include "server.h"

typedef struct srv_http srv_http;

/* Starts listening on cfg.port with cfg.threads worker threads.
 * @return the daemon, or NULL with a message in err. */
srv_http *srv_http_start(srv *s, char *err, size_t err_size);
/* The port actually bound (useful with port 0). */
int srv_http_port(const srv_http *h);
/* Stops the daemon (joins its threads) and frees it. Accepts NULL. */
void srv_http_stop(srv_http *h);

#endif
