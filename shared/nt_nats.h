/* The NATS adapter: the only module (with nt_kv) that includes nats.h.
 * A connection to a list of servers with unlimited reconnect; a service that
 * serves a route table on queue subscriptions and answers NATS micro
 * discovery; publishing events; a blocking request for tools and tests; and a
 * non-blocking requester for the gateway and the edge (one inbox
 * subscription, publish-request, our own deadline). */
#ifndef NT_NATS_H
#define NT_NATS_H

#include "nt_route.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nt_nats nt_nats;

/* nats.c's connection type, for the few shared modules that need it (nt_kv). */
struct __natsConnection;

/* Connects to urls (comma-separated, e.g. "nats://127.0.0.1:4222,nats://h2:4222"),
 * naming the connection client_name. Retries the first connection for up to
 * wait_ms (so a service may start just before its server), then fails with
 * NT_EUNAVAIL. Once connected, reconnects forever. Connection state changes
 * are logged. *out is the caller's (nt_nats_destroy). */
nt_status nt_nats_connect(const char *urls, const char *client_name, int wait_ms, nt_nats **out);

/* As nt_nats_connect, but every subscription of this connection delivers on
 * nats.c's process-wide pool of pool_size (1..64) delivery threads instead of
 * a thread each: for a process with many subscriptions whose callbacks are
 * short (the edge holds one per room). A slow callback delays the others on
 * its pool thread, so callbacks must only hand work off. */
nt_status nt_nats_connect_pooled(const char *urls, const char *client_name, int wait_ms,
                                 int pool_size, nt_nats **out);

/* Called when messages may have been lost: after a reconnect (what was
 * published meanwhile never arrives) or when nats.c dropped messages for a
 * slow subscription. why is "reconnected" or "slow_consumer". Runs on a
 * nats.c thread; keep it short. */
typedef void (*nt_gap_cb)(void *ctx, const char *why);

/* Sets (or with NULL clears) the gap callback; ctx must outlive the
 * connection. Thread-safe. */
void nt_nats_on_gap(nt_nats *nc, nt_gap_cb cb, void *ctx);

/* True while connected (not while reconnecting). Thread-safe. */
bool nt_nats_is_connected(nt_nats *nc);

/* Publishes an event (no reply expected). Thread-safe. */
nt_status nt_nats_publish(nt_nats *nc, const char *subject, const void *data, size_t len);

/* A NATS header: key and value, borrowed. */
typedef struct {
    const char *key;
    const char *value;
} nt_header;

/* As nt_nats_publish, with n headers (keys are case-sensitive). Thread-safe. */
nt_status nt_nats_publish_hdrs(nt_nats *nc, const char *subject, const void *data, size_t len,
                               const nt_header *hdrs, size_t n);

/* A reply received from a request. */
typedef struct {
    int http;   /* 200, or the Nats-Service-Error-Code of the reply */
    char *data; /* the reply body, NUL-terminated, owned */
    size_t len;
    long long retry_after_ms; /* from Chat-Retry-After-Ms, 0 when absent */
} nt_response;

void nt_response_free(nt_response *r);

/* Sends a request with the Chat-User (when user is non-NULL) and
 * Chat-Request-Id headers and waits up to timeout_ms. NT_OK when any reply
 * arrived (look at out->http), NT_EUNAVAIL when nobody subscribes (at once),
 * NT_ETIMEOUT when nobody answered in time. Blocks the calling thread: never
 * call it from an event loop. Thread-safe. */
nt_status nt_nats_request(nt_nats *nc, const char *subject, const char *user,
                          const char *request_id, const void *data, size_t len, int timeout_ms,
                          nt_response *out);

/* Drains every subscription and pending publish, then closes; waits at most
 * timeout_ms for the close. Safe to call once; nt_nats_destroy after. */
void nt_nats_drain(nt_nats *nc, int timeout_ms);

/* Closes (if still open) and frees. NULL is harmless. */
void nt_nats_destroy(nt_nats *nc);

/* The nt_status for a nats.c natsStatus (passed as int, so this header needs
 * no nats.h): the one conversion, for this module and the other shared
 * adapters over nats.c (nt_kv). */
nt_status nt_nats_status(int s);

/* The underlying nats.c connection, borrowed. For shared adapters only. */
struct __natsConnection *nt_nats_raw(nt_nats *nc);

/* ---- Event subscriptions ------------------------------------------------- */

typedef struct nt_sub nt_sub;

/* A message delivered to a subscription, borrowed for the callback's call. */
typedef struct {
    const char *subject;
    const char *data; /* len bytes, NUL-terminated by nats.c */
    size_t len;
    void *raw; /* nats.c's message, for nt_msg_header */
} nt_msg;

/* The value of header key of m (case-sensitive), borrowed like m; NULL when
 * absent. */
const char *nt_msg_header(const nt_msg *m, const char *key);

/* Called for each message on a nats.c delivery thread with the tag given at
 * subscribe. Keep it short. */
typedef void (*nt_msg_cb)(void *ctx, uint64_t tag, const nt_msg *m);

/* Subscribes to subject (wildcards allowed), no queue group. ctx must outlive
 * the subscription, including a callback still running when nt_sub_destroy
 * returns: use a context that lives as long as the connection, and tag to
 * tell subscriptions apart. Thread-safe. */
nt_status nt_nats_subscribe(nt_nats *nc, const char *subject, nt_msg_cb cb, void *ctx, uint64_t tag,
                            nt_sub **out);

/* Unsubscribes and frees (the last free happens on nats.c's side once no
 * delivery is in progress). After it returns at most one callback already
 * running may still finish. NULL is harmless. Thread-safe. */
void nt_sub_destroy(nt_sub *s);

/* ---- Serving a route table -------------------------------------------- */

typedef struct {
    const char *name;    /* service kind, also the queue group: "auth" */
    const char *version; /* SemVer: "0.1.0" */
    const char *description;
    const nt_route *routes; /* borrowed; must outlive the service */
    size_t nroutes;
    void *ctx;            /* passed to every handler */
    unsigned concurrency; /* requests of one route handled at once per instance; 0 means 1 */
} nt_service_def;

typedef struct nt_service nt_service;

/* Subscribes every route's subject in queue group def->name, plus the nine
 * discovery subjects ($SRV.PING|INFO|STATS, with .name and .name.id) as plain
 * subscriptions. Each route gets its own concurrency (or def->concurrency) queue subscriptions,
 * each with its own delivery thread, so that many requests of one route run at once and a slow
 * request (an outside call) holds up only its own thread. Handlers therefore run on nats.c delivery
 * threads, possibly at once. Each request is dispatched with nt_route_dispatch; error replies carry
 * Nats-Service-Error and Nats-Service-Error-Code. Per-endpoint statistics
 * (num_requests, num_errors, last_error, processing_time) are kept for STATS. */
nt_status nt_service_start(nt_nats *nc, const nt_service_def *def, nt_service **out);

/* The instance id (22 characters) used in discovery. */
const char *nt_service_id(const nt_service *svc);

/* Drains the service's subscriptions (requests in flight finish and are
 * answered), waits up to timeout_ms, and frees. True when every handler has
 * returned; false when some are still running after a further grace period
 * (then the service is leaked, and so must be everything its handlers use:
 * the caller may not free its context). NULL is harmless (true). */
bool nt_service_stop(nt_service *svc, int timeout_ms);

/* ---- Non-blocking requests ----------------------------------------------- */

typedef struct nt_requester nt_requester;

/* Called exactly once per sent request, on a nats.c or timer thread:
 * st is NT_OK with resp (borrowed for the call) when a reply arrived,
 * NT_EUNAVAIL when nobody subscribes or the requester is being destroyed,
 * NT_ETIMEOUT at the deadline (resp NULL in both). Keep it short. */
typedef void (*nt_response_cb)(void *ctx, nt_status st, const nt_response *resp);

/* One wildcard inbox subscription and one deadline thread, shared by every
 * request sent through it. */
nt_status nt_requester_create(nt_nats *nc, nt_requester **out);

/* Publishes a request whose reply subject is <inbox>.<id> and returns at once.
 * On NT_OK, cb will run exactly once (unless cancelled); on an error return it
 * never runs. *id_out (may be NULL) identifies the request for cancel. Thread-safe. */
nt_status nt_requester_send(nt_requester *rq, const char *subject, const char *user,
                            const char *request_id, const void *data, size_t len, int timeout_ms,
                            nt_response_cb cb, void *ctx, uint64_t *id_out);

/* Forgets a pending request: true if it was still pending (cb will never run);
 * false if cb has already run or is running now. Thread-safe. */
bool nt_requester_cancel(nt_requester *rq, uint64_t id);

/* Calls every pending callback with NT_EUNAVAIL, unsubscribes, stops the
 * deadline thread and frees. NULL is harmless. */
void nt_requester_destroy(nt_requester *rq);

#endif
