/* The NATS boundary as plain data: a service's routes are a table of
 * {name, subject, handler, max_body}; a handler reads a parsed request and
 * fills a reply, and never sees nats.c. nt_route_dispatch runs one route and
 * encodes the reply envelope, so every handler can be unit-tested by pushing
 * bytes through the table with no broker. */
#ifndef NT_ROUTE_H
#define NT_ROUTE_H

#include "nt_buf.h"
#include "nt_json.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

/* Request headers on every chat.* request. */
#define NT_HDR_USER       "Chat-User"
#define NT_HDR_REQUEST_ID "Chat-Request-Id"
/* Reply headers of the NATS micro protocol, and ours for rate limits. */
#define NT_HDR_SVC_ERROR   "Nats-Service-Error"
#define NT_HDR_SVC_CODE    "Nats-Service-Error-Code"
#define NT_HDR_RETRY_AFTER "Chat-Retry-After-Ms"

/* A request as a handler sees it. Everything is borrowed for the call. */
typedef struct {
    const char *subject;
    const char *user;       /* Chat-User, the verified user id; NULL when absent */
    const char *request_id; /* Chat-Request-Id; never NULL inside a handler */
    const char *data;       /* the body, NUL-terminated */
    size_t len;
} nt_request;

/* What a handler fills in. On NT_OK, data (owned by the reply; NULL means {})
 * becomes {"data": ...}. On an error status, message (or the status text when
 * empty) becomes {"error":{"code","message"}}. */
typedef struct {
    cJSON *data;
    char message[NT_ERRMSG_LEN];
    long long retry_after_ms; /* > 0: sent as "retry_after_ms" and Chat-Retry-After-Ms */
} nt_reply;

typedef nt_status (*nt_handler)(void *ctx, const nt_request *req, nt_reply *rep);

typedef struct {
    const char *name;    /* endpoint name for $SRV INFO/STATS, e.g. "users_get" */
    const char *subject; /* e.g. "chat.auth.users.get" */
    nt_handler handler;
    size_t max_body;      /* larger requests get NT_ETOOBIG without the handler */
    bool needs_user;      /* a request without Chat-User gets NT_EUNAUTH */
    unsigned concurrency; /* requests of this route handled at once per instance
                           * (1..NT_ROUTE_CONCURRENCY_MAX); 0: the service's */
} nt_route;

#define NT_ROUTE_CONCURRENCY_MAX 256

/* Sets the reply's message from a format and returns st, so a handler can
 * write `return nt_reply_fail(rep, NT_EINVAL, "'name' is required");`. */
nt_status nt_reply_fail(nt_reply *rep, nt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the success payload; takes ownership of data (replacing any earlier). */
void nt_reply_set(nt_reply *rep, cJSON *data);

/* Frees what the reply owns; the reply is empty after. */
void nt_reply_clear(nt_reply *rep);

/* The route whose subject is exactly subject, or NULL. */
const nt_route *nt_route_find(const nt_route *routes, size_t n, const char *subject);

/* Runs route->handler on req after the generic checks (body size, Chat-User),
 * and appends the envelope to out ({"data":...} or {"error":...}). Returns
 * the status the handler returned (or the check's), and copies the error
 * message and retry hint into *rep for the adapter's headers. A handler that
 * returns an error with no message gets the status text. Thread-safe if the
 * handler is. */
nt_status nt_route_dispatch(const nt_route *route, void *ctx, const nt_request *req, nt_reply *rep,
                            nt_buf *out);

/* Encodes an error envelope on its own (used by adapters for transport errors). */
void nt_envelope_error(nt_buf *out, nt_status st, const char *message, long long retry_after_ms);

#endif
