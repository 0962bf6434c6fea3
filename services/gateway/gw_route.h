/* The gateway's HTTP routes as data: each line maps a method and a path
 * pattern ("/api/rooms/:room_id") to one NATS subject, or to a check the
 * gateway answers itself (/healthz, /readyz). Adding a route is one line in
 * gw_routes[]. Matching is pure and tells "no such path" (404) from "no such
 * method on this path" (405, with the Allow list). */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

/* Route flags. */
#define GW_AUTH       0x01u /* a verified token is required */
#define GW_LOCAL_ONLY 0x02u /* exists only in local mode (no Clerk configured) */
#define GW_UNWRAP     0x04u /* reply with the "data" member of a success envelope */
#define GW_HEALTH     0x08u /* answered by the gateway: liveness */
#define GW_READY      0x10u /* answered by the gateway: readiness (NATS + auth ping) */

#define GW_MAX_PARAMS    4
#define GW_PARAM_KEY_MAX 32
#define GW_PARAM_MAX     256 /* a longer path segment never matches a :param */
#define GW_ALLOW_MAX     96

typedef struct {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/rooms/:room_id"; ":name" matches one non-empty segment */
    const char *subject; /* NATS subject; NULL for GW_HEALTH / GW_READY */
    unsigned flags;
    const char *query; /* query keys passed on, comma-separated ("before,limit"); NULL = none */
} gw_route;

/* The gateway's route table. */
extern const gw_route gw_routes[];
extern const size_t gw_nroutes;

typedef struct {
    char key[GW_PARAM_KEY_MAX];
    char value[GW_PARAM_MAX];
} gw_param;

typedef enum {
    GW_MATCH_OK,        /* m->route and m->params are set */
    GW_MATCH_NO_PATH,   /* no route has this path: 404 */
    GW_MATCH_NO_METHOD, /* the path exists with other methods: 405, m->allow lists them */
} gw_match_result;

typedef struct {
    const gw_route *route;
    gw_param params[GW_MAX_PARAMS];
    size_t nparams;
    char allow[GW_ALLOW_MAX]; /* "GET, PUT" for a 405 */
} gw_match;

/* Matches method and path (already percent-decoded, without the query) against
 * routes[0..n). Routes flagged GW_LOCAL_ONLY are skipped when clerk_mode.
 * A route whose method is GET also matches HEAD. Pure; m is always written. */
gw_match_result gw_route_match(const gw_route *routes, size_t n, bool clerk_mode,
                               const char *method, const char *path, gw_match *m);

/* True when key appears in the comma-separated list (NULL = empty). Pure. */
bool gw_route_query_allowed(const gw_route *route, const char *key);

/* True for "/api" and every path under "/api/". */
bool gw_route_is_api(const char *path);

#endif
