/* Outgoing HTTP over libcurl, for the few calls a service makes to the outside:
 * JWKS, Clerk's Backend API, and later Cloudflare. Bounded in time and size. */
#ifndef NT_HTTP_H
#define NT_HTTP_H

#include "nt_status.h"

#include <stddef.h>

/* Call once in main before threads start (curl_global_init). */
void nt_http_global_init(void);

/* GETs url with an optional "Authorization: Bearer <bearer>" (bearer may be NULL)
 * and up to max_bytes of body within timeout_ms. NT_OK with *http_status
 * (any status) and *body (malloc'd, NUL-terminated, the caller's) when an HTTP
 * answer arrived; NT_EUNAVAIL when the connection failed, NT_ETIMEOUT on time
 * out, NT_ETOOBIG past max_bytes, NT_EINVAL for a malformed URL, a scheme
 * other than http or https, or a bearer containing CR or LF. Redirects are not
 * followed. Never logs the bearer. Thread-safe. */
nt_status nt_http_get(const char *url, const char *bearer, int timeout_ms, size_t max_bytes,
                      int *http_status, char **body, size_t *len);

#endif
