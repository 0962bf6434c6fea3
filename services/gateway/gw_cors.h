/* CORS for the browser app when it is served from another origin: an exact
 * list of allowed origins (NATTER_CORS_ORIGINS). Responses to an allowed
 * Origin carry the Access-Control headers; any other origin gets none, so the
 * browser refuses to show it the response. */
#ifndef GW_CORS_H
#define GW_CORS_H

#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

#define GW_CORS_MAX_ORIGINS 32

/* What a preflight answer advertises. */
#define GW_CORS_ALLOW_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#define GW_CORS_ALLOW_HEADERS "Authorization, Content-Type, X-Request-Id"
#define GW_CORS_EXPOSE        "Retry-After, X-Request-Id"
#define GW_CORS_MAX_AGE       "600"

typedef struct gw_cors gw_cors;

/* Parses list, comma-separated exact origins ("https://app.example,
 * http://localhost:5173"; spaces around entries and a trailing slash are
 * dropped). NULL or "" gives an empty list (no CORS headers at all).
 * NT_EINVAL with a message in err for an entry that is not scheme://host[:port]
 * or for more than GW_CORS_MAX_ORIGINS entries. *out is the caller's. */
nt_status gw_cors_create(const char *list, gw_cors **out, char *err, size_t errlen);

/* True when origin is exactly one of the allowed origins. NULL is never
 * allowed. Thread-safe (read-only). */
bool gw_cors_allowed(const gw_cors *c, const char *origin);

/* The number of allowed origins. */
size_t gw_cors_count(const gw_cors *c);

void gw_cors_destroy(gw_cors *c);

#endif
