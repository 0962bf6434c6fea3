/* Turning an HTTP request into the JSON object sent to NATS: the client's body
 * (a JSON object, or nothing), the allowed query parameters and the path
 * parameters, all merged as strings, path parameters winning. Pure. */
#ifndef GW_BODY_H
#define GW_BODY_H

#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *key;
    const char *value; /* NULL is taken as "" */
} gw_kv;

/* True when a request body with this Content-Type may be parsed as JSON:
 * absent, application/json, or any application/<x>+json, with parameters
 * (charset=utf-8) ignored and case-insensitive. */
bool gw_body_content_type_ok(const char *content_type);

/* Parses body[0..len) (empty = {}) as a JSON object, sets each query[i] and
 * then each params[i] on it as strings (later ones replace earlier ones and
 * the body's), and returns the compact JSON text in *out (malloc'd, the
 * caller's). NT_EINVAL with the parser's message ("invalid JSON at byte 12",
 * "body must be a JSON object", "parameter 'q' is not valid UTF-8") in err
 * otherwise. */
nt_status gw_body_build(const char *body, size_t len, const gw_kv *query, size_t nquery,
                        const gw_kv *params, size_t nparams, char **out, size_t *outlen, char *err,
                        size_t errlen);

#endif
