/* The HTTP server of the gateway, over libmicrohttpd: per request it applies
 * the IP rate limit, matches gw_routes, checks the token and the user rate
 * limit, reads a capped JSON body, and turns the request into one NATS
 * request. The connection is suspended while the request is pending and
 * resumed from the reply callback, so no worker thread ever waits on NATS.
 * It also answers /healthz and /readyz, CORS preflights, and serves the web
 * app from NATTER_WEB_DIR. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gw_config.h"
#include "nt_jwt.h"
#include "nt_nats.h"
#include "nt_status.h"

#include <stdbool.h>

typedef struct gw_server gw_server;

/* Starts listening on opts->addr with opts->threads workers, with the
 * connection limits and idle timeout of opts. Process-wide side effect: the
 * soft RLIMIT_NOFILE is raised to the hard limit (logged), and opts->max_conn
 * is lowered to fit it, with a warning, if it does not. nc and verifier
 * are borrowed and must outlive the server; opts is copied (its strings are
 * borrowed from the nt_config, which must outlive the server too).
 * clerk_mode hides the local-only routes. NT_EUNAVAIL when the address
 * cannot be bound, NT_EINVAL for a bad option. *out is the caller's. */
nt_status gw_server_start(const gw_opts *opts, nt_nats *nc, nt_verifier *verifier, bool clerk_mode,
                          gw_server **out);

/* Stops in order: no new connections (MHD_quiesce_daemon); every pending
 * NATS request fails, so suspended requests are resumed and answered 503;
 * requests in progress get up to drain_ms to finish; then the daemon stops
 * and everything is freed. NULL is harmless. Call once, from main. */
void gw_server_stop(gw_server *s, int drain_ms);

#endif
