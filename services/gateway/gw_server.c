/* The MHD adapter of the gateway. MHD calls on_request several times per
 * request: once with the headers (checks, routing, authentication), once per
 * body chunk, once at the end (body checks, then the NATS request), and once
 * more after a suspended connection is resumed (the reply).
 *
 * Lifetime of a pending request: the connection is suspended before the NATS
 * request is sent, and MHD neither times out nor closes a suspended
 * connection. nt_requester runs on_reply exactly once per sent request, and
 * on_reply resumes the connection as its very last step, so the gw_conn it
 * receives is alive for the whole callback. At shutdown nt_requester_destroy
 * runs every pending callback (NT_EUNAVAIL) before MHD_stop_daemon. The
 * completion callback cancels by id, never by pointer, in the case that
 * cannot happen. */
#include "gw_server.h"

#include "gw_body.h"
#include "gw_cors.h"
#include "gw_limit.h"
#include "gw_req.h"
#include "gw_route.h"
#include "gw_static.h"
#include "nt_buf.h"
#include "nt_clock.h"
#include "nt_json.h"
#include "nt_jwt.h"
#include "nt_log.h"
#include "nt_ratelimit.h"
#include "nt_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOD                   "gateway"
#define RATE_MAX_KEYS         65536
#define READY_TIMEOUT_MS      1000
#define READY_SUBJECT         "$SRV.PING.auth"
#define EDGE_SUBJECT          "$SRV.PING.edge"
#define EDGE_WATCH_MS         2000
#define EDGE_WATCH_TIMEOUT_MS 500
#define MAX_QUERY             16
#define DISCARD_MAX_BYTES     (8u * 1024 * 1024)
#define DISCARD_MAX_MS        2000
#define JSON_TYPE             "application/json"
/* Per connection, MHD keeps the request line, every header and its own
 * parsed copies (cookies included) in one pool of this size; 32 KiB (its
 * default) fails on a browser's 12-16 KB cookie jar with a 431 or a dropped
 * connection. Pages are only touched as used. */
#define CONNECTION_MEMORY ((size_t)128 * 1024)
/* File descriptors kept free of connections: NATS, logs, epoll, static files. */
#define FD_RESERVE 64
/* MHD log lines per second at most (a flood of refused connections must not
 * flood the log); the rest are counted and reported. */
#define MHD_LOG_PER_S 10

struct gw_server {
    gw_opts opts;
    nt_nats *nc;
    nt_verifier *verifier;
    bool clerk;
    nt_ratelimit *ip_rl;
    nt_ratelimit *user_rl;
    gw_cors *cors;
    gw_static *web; /* NULL: no web app */
    struct MHD_Daemon *daemon;
    /* rq is read under the read lock for every send and swapped out under the
     * write lock at shutdown, so no send ever races with its destruction. */
    pthread_rwlock_t rq_lock;
    nt_requester *rq;
    atomic_int active; /* requests between their first call and completion */
    /* mhd_log's throttle. */
    pthread_mutex_t log_mu;
    int64_t log_sec;
    unsigned log_count;
    unsigned long long log_dropped;
    /* The WebSocket edge, as the watcher last saw it (EDGE_*), reported by
     * /readyz but not required: the REST API serves without it. */
    atomic_int edge_state;
    pthread_t watcher;
    bool watcher_started;
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cond;
    bool watch_stop;
};

enum { EDGE_UNKNOWN, EDGE_OK, EDGE_DOWN };

/* ST_DISCARD: a 413 went out mid-body; the rest is read and dropped for a
 * bounded time, so the client reads the answer instead of a reset. */
typedef enum { ST_HEADERS, ST_BODY, ST_WAITING, ST_ANSWERED, ST_DISCARD } conn_state;

/* What the final call does. Successful answers wait for it (a response queued
 * before the request is read closes the connection); refusals do not. */
typedef enum { ACT_NATS, ACT_HEALTH, ACT_READY, ACT_STATIC, ACT_PREFLIGHT } conn_action;

typedef struct {
    gw_server *srv;
    struct MHD_Connection *mc;
    conn_state state;
    conn_action action;
    int64_t start_ms;
    char method[16];
    char path[256]; /* log-safe */
    char ip[GW_IP_MAX];
    char request_id[GW_REQUEST_ID_MAX];
    char user[sizeof(((nt_claims *)0)->sub)]; /* "" when anonymous */
    char service[64];                         /* of the pending request, for errors */
    gw_match match;
    nt_buf body;
    uint64_t body_seen;    /* bytes received, kept or not */
    uint64_t discard_max;  /* ST_DISCARD: close once body_seen passes this */
    int64_t discard_until; /* ST_DISCARD: or once the monotonic clock passes this */
    /* The reply, written by on_reply under mu, read after the resume. */
    pthread_mutex_t mu;
    bool sent;
    bool done;
    uint64_t rq_id;
    nt_status rq_st;
    nt_response resp;
    /* For the access log. */
    unsigned status;
    uint64_t bytes;
} gw_conn;

/* ---- Responses -------------------------------------------------------------- */

static const char *header(gw_conn *c, const char *name)
{
    return MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, name);
}

static void add_header(struct MHD_Response *r, const char *name, const char *value)
{
    /* Only fails for invalid header text, which all of ours is not. */
    NT_ASSERT(MHD_add_response_header(r, name, value) == MHD_YES);
}

typedef void (*header_fn)(void *ctx, const char *name, const char *value);

/* Calls fn for each header every response carries: the request id and CORS. */
static void common_headers(gw_conn *c, header_fn fn, void *ctx)
{
    gw_server *srv = c->srv;
    fn(ctx, "X-Request-Id", c->request_id);
    if (gw_cors_count(srv->cors) > 0) {
        const char *origin = header(c, MHD_HTTP_HEADER_ORIGIN);
        fn(ctx, MHD_HTTP_HEADER_VARY, "Origin");
        if (gw_cors_allowed(srv->cors, origin)) {
            fn(ctx, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            fn(ctx, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
            fn(ctx, MHD_HTTP_HEADER_ACCESS_CONTROL_EXPOSE_HEADERS, GW_CORS_EXPOSE);
        }
    }
}

static void add_header_cb(void *ctx, const char *name, const char *value)
{
    add_header(ctx, name, value);
}

/* Adds the headers every response carries, queues r and records it. */
static enum MHD_Result finish(gw_conn *c, unsigned status, struct MHD_Response *r, uint64_t bytes)
{
    common_headers(c, add_header_cb, r);
    enum MHD_Result ret = MHD_queue_response(c->mc, status, r);
    MHD_destroy_response(r);
    c->state = ST_ANSWERED;
    c->status = status;
    c->bytes = bytes;
    return ret;
}

/* A response owning text[0..len) (malloc'd; MHD frees it). */
static struct MHD_Response *text_response(char *text, size_t len, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    NT_ASSERT(r != NULL);
    add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return r;
}

static enum MHD_Result send_json(gw_conn *c, unsigned status, const char *json)
{
    size_t len = strlen(json);
    char *copy = malloc(len + 1);
    NT_ASSERT(copy != NULL);
    memcpy(copy, json, len + 1);
    return finish(c, status, text_response(copy, len, JSON_TYPE), len);
}

static void add_retry_after(struct MHD_Response *r, long long retry_ms)
{
    if (retry_ms <= 0)
        return;
    char v[32];
    snprintf(v, sizeof(v), "%lld", gw_req_retry_after_s(retry_ms));
    add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
}

/* An error envelope, with Allow for 405. */
static enum MHD_Result send_error_allow(gw_conn *c, nt_status st, const char *msg,
                                        long long retry_ms, const char *allow)
{
    nt_buf b;
    nt_buf_init(&b, (size_t)64 * 1024);
    nt_envelope_error(&b, st, msg, retry_ms);
    size_t len = 0;
    char *text = nt_buf_steal(&b, &len);
    struct MHD_Response *r = text_response(text, len, JSON_TYPE);
    add_retry_after(r, retry_ms);
    if (allow != NULL)
        add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return finish(c, (unsigned)nt_status_http(st), r, len);
}

static enum MHD_Result send_error(gw_conn *c, nt_status st, const char *msg, long long retry_ms)
{
    return send_error_allow(c, st, msg, retry_ms, NULL);
}

static enum MHD_Result send_unauthorized(gw_conn *c, const char *msg, bool had_token)
{
    nt_buf b;
    nt_buf_init(&b, (size_t)64 * 1024);
    nt_envelope_error(&b, NT_EUNAUTH, msg, 0);
    size_t len = 0;
    char *text = nt_buf_steal(&b, &len);
    struct MHD_Response *r = text_response(text, len, JSON_TYPE);
    add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
               had_token ? "Bearer error=\"invalid_token\"" : "Bearer");
    return finish(c, (unsigned)nt_status_http(NT_EUNAUTH), r, len);
}

static enum MHD_Result send_rate_limited(gw_conn *c, const char *who, int64_t retry_ms)
{
    char msg[NT_ERRMSG_LEN];
    snprintf(msg, sizeof(msg), "too many requests from this %s; retry in %lld ms", who,
             (long long)retry_ms);
    return send_error(c, NT_ERATE, msg, retry_ms);
}

/* ---- Gateway-answered routes ------------------------------------------------- */

static enum MHD_Result send_preflight(gw_conn *c)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    NT_ASSERT(r != NULL);
    const char *origin = header(c, MHD_HTTP_HEADER_ORIGIN);
    add_header(r, MHD_HTTP_HEADER_ALLOW, GW_CORS_ALLOW_METHODS);
    if (gw_cors_allowed(c->srv->cors, origin)) {
        add_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS, GW_CORS_ALLOW_METHODS);
        add_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_HEADERS, GW_CORS_ALLOW_HEADERS);
        add_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_MAX_AGE, GW_CORS_MAX_AGE);
    }
    return finish(c, MHD_HTTP_NO_CONTENT, r, 0);
}

/* Ready means: NATS connected, auth answers, and tokens can be checked (the
 * signing keys are loaded). */
static enum MHD_Result send_ready(gw_conn *c, bool nats_ok, const char *auth)
{
    bool keys = nt_verifier_ready(c->srv->verifier);
    bool ready = nats_ok && strcmp(auth, "ok") == 0 && keys;
    int edge = atomic_load(&c->srv->edge_state);
    char json[320];
    snprintf(json, sizeof(json),
             "{\"status\":\"%s\",\"checks\":{\"nats\":\"%s\",\"auth\":\"%s\",\"keys\":\"%s\","
             "\"edge\":\"%s\"}}",
             ready ? "ready" : "not_ready", nats_ok ? "ok" : "disconnected", auth,
             keys ? "ok" : "loading",
             edge == EDGE_OK     ? "ok"
             : edge == EDGE_DOWN ? "unavailable"
                                 : "unknown");
    return send_json(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, json);
}

static enum MHD_Result send_static(gw_conn *c, const char *url)
{
    gw_file f;
    nt_status st = gw_static_open(c->srv->web, url, &f);
    if (st == NT_EINVAL)
        return send_error(c, NT_EINVAL, "malformed path", 0);
    if (st != NT_OK)
        return send_error(c, NT_ENOTFOUND, "no such file", 0);
    struct MHD_Response *r = MHD_create_response_from_fd((size_t)f.size, f.fd);
    if (r == NULL) {
        close(f.fd);
        return send_error(c, NT_EINTERNAL, "cannot send the file", 0);
    }
    add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f.content_type);
    add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, f.cache_control);
    add_header(r, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS, "nosniff");
    return finish(c, MHD_HTTP_OK, r, f.size);
}

/* ---- NATS requests --------------------------------------------------------- */

/* Runs on a nats.c or timer thread, exactly once per sent request. */
static void on_reply(void *ctx, nt_status st, const nt_response *resp)
{
    gw_conn *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->rq_st = st;
    if (st == NT_OK && resp != NULL) {
        c->resp.http = resp->http;
        c->resp.retry_after_ms = resp->retry_after_ms;
        c->resp.len = resp->data != NULL ? resp->len : 0;
        c->resp.data = malloc(c->resp.len + 1);
        NT_ASSERT(c->resp.data != NULL);
        if (c->resp.len > 0)
            memcpy(c->resp.data, resp->data, c->resp.len);
        c->resp.data[c->resp.len] = '\0';
    }
    c->done = true;
    struct MHD_Connection *mc = c->mc;
    pthread_mutex_unlock(&c->mu);
    /* The last touch: after this the request may complete and c be freed. */
    MHD_resume_connection(mc);
}

/* Suspends the connection and sends the request; the reply resumes it. */
static enum MHD_Result send_nats(gw_conn *c, const char *subject, const char *data, size_t len,
                                 int timeout_ms)
{
    gw_server *srv = c->srv;
    gw_req_service_name(subject, c->service, sizeof(c->service));
    c->state = ST_WAITING;
    /* Suspend first: a reply can then never arrive before the suspension. */
    MHD_suspend_connection(c->mc);
    nt_status st = NT_EUNAVAIL;
    pthread_rwlock_rdlock(&srv->rq_lock);
    if (srv->rq != NULL)
        st = nt_requester_send(srv->rq, subject, c->user[0] ? c->user : NULL, c->request_id, data,
                               len, timeout_ms, on_reply, c, &c->rq_id);
    pthread_rwlock_unlock(&srv->rq_lock);
    if (st == NT_OK) {
        pthread_mutex_lock(&c->mu);
        c->sent = true;
        pthread_mutex_unlock(&c->mu);
    } else {
        pthread_mutex_lock(&c->mu);
        c->rq_st = st;
        c->done = true;
        pthread_mutex_unlock(&c->mu);
        MHD_resume_connection(c->mc);
    }
    return MHD_YES;
}

/* The body sent back for an unwrapping route: the "data" member, or NULL. */
static char *unwrap_data(const char *text, size_t len)
{
    cJSON *root = NULL;
    char err[NT_ERRMSG_LEN];
    if (nt_json_parse(text, len, &root, err, sizeof(err)) != NT_OK)
        return NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    char *out = data != NULL ? nt_json_print(data) : NULL;
    cJSON_Delete(root);
    return out;
}

/* Called when a suspended connection is resumed: answer from the reply. */
static enum MHD_Result on_resumed(gw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    bool done = c->done;
    nt_status st = c->rq_st;
    nt_response resp = c->resp;
    memset(&c->resp, 0, sizeof(c->resp));
    pthread_mutex_unlock(&c->mu);
    NT_ASSERT(done);

    const gw_route *route = c->match.route;
    enum MHD_Result ret;
    if (route->flags & GW_READY) {
        const char *auth = st == NT_OK && resp.http == 200 ? "ok"
                           : st == NT_ETIMEOUT             ? "timeout"
                                                           : "unavailable";
        ret = send_ready(c, true, auth);
    } else if (st == NT_ETIMEOUT) {
        char msg[NT_ERRMSG_LEN];
        snprintf(msg, sizeof(msg), "service %s did not answer within %d ms", c->service,
                 c->srv->opts.request_timeout_ms);
        ret = send_error(c, NT_ETIMEOUT, msg, 0);
    } else if (st != NT_OK) {
        char msg[NT_ERRMSG_LEN];
        snprintf(msg, sizeof(msg), "service %s is unavailable", c->service);
        ret = send_error(c, NT_EUNAVAIL, msg, 0);
    } else {
        unsigned http = resp.http >= 200 && resp.http <= 599 ? (unsigned)resp.http : 502;
        char *body = resp.data;
        size_t len = resp.len;
        if ((route->flags & GW_UNWRAP) && http == 200) {
            char *inner = unwrap_data(resp.data, resp.len);
            if (inner != NULL) {
                free(body);
                body = inner;
                len = strlen(inner);
            }
        }
        resp.data = NULL;
        struct MHD_Response *r = text_response(body, len, JSON_TYPE);
        add_retry_after(r, resp.retry_after_ms);
        ret = finish(c, http, r, len);
    }
    nt_response_free(&resp);
    return ret;
}

/* ---- The request phases ------------------------------------------------------ */

/* Checks the token of an authenticated route. NT_OK sets c->user; otherwise
 * the response has been queued. */
static nt_status authenticate(gw_conn *c, enum MHD_Result *ret)
{
    gw_server *srv = c->srv;
    const char *token = NULL;
    const char *authz = header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz != NULL)
        token = nt_jwt_from_bearer(authz);
    char *cookie_buf = NULL;
    if (token == NULL) {
        const char *cookie = header(c, MHD_HTTP_HEADER_COOKIE);
        cookie_buf = malloc(NT_JWT_MAX_BYTES + 1);
        NT_ASSERT(cookie_buf != NULL);
        if (cookie != NULL && nt_jwt_from_cookie(cookie, cookie_buf, NT_JWT_MAX_BYTES + 1) == NT_OK)
            token = cookie_buf;
    }
    nt_status st = NT_EUNAUTH;
    if (token == NULL) {
        *ret = send_unauthorized(
            c, "missing token: send Authorization: Bearer <token> or the __session cookie", false);
        goto out;
    }
    nt_claims claims;
    char reason[NT_ERRMSG_LEN] = "";
    st = nt_verifier_verify(srv->verifier, token, strlen(token), &claims, reason, sizeof(reason));
    if (st == NT_EUNAVAIL) {
        nt_log_warn(MOD, "cannot verify tokens: signing keys unavailable request_id=%s",
                    c->request_id);
        /* Being fetched: worth a retry in a second. The last fetch failed:
         * the next try is up to 5 s away. */
        bool fetching = strstr(reason, "being fetched") != NULL;
        char msg[NT_ERRMSG_LEN];
        snprintf(msg, sizeof(msg), "cannot verify the token now: %s",
                 reason[0] ? reason : "signing keys are unavailable");
        *ret = send_error(c, NT_EUNAVAIL, msg, fetching ? 1000 : 5000);
        goto out;
    }
    if (st != NT_OK) {
        st = NT_EUNAUTH;
        *ret = send_unauthorized(c, reason[0] ? reason : "invalid token", true);
        goto out;
    }
    snprintf(c->user, sizeof(c->user), "%s", claims.sub);
out:
    free(cookie_buf);
    return st;
}

static void too_big_message(gw_conn *c, char msg[NT_ERRMSG_LEN])
{
    snprintf(msg, NT_ERRMSG_LEN, "request body is larger than %zu bytes", c->srv->opts.max_body);
}

static enum MHD_Result send_too_big(gw_conn *c)
{
    char msg[NT_ERRMSG_LEN];
    too_big_message(c, msg);
    return send_error(c, NT_ETOOBIG, msg, 0);
}

static void append_header_cb(void *ctx, const char *name, const char *value)
{
    nt_buf *b = ctx;
    (void)nt_buf_append(b, name, strlen(name));
    (void)nt_buf_append(b, ": ", 2);
    (void)nt_buf_append(b, value, strlen(value));
    (void)nt_buf_append(b, "\r\n", 2);
}

/* Answers 413 in the middle of a body (chunked: its size was not declared).
 * The rest of the body is then read and dropped for at most DISCARD_MAX_MS
 * or DISCARD_MAX_BYTES before the connection is closed, never kept: a client
 * that only reads after sending still gets the answer rather than a reset,
 * and a client that sends forever is cut off. MHD 0.9.75 refuses MHD_queue_response while a body is
 * being read (only before it, or after all of it), so the response is written
 * to the socket here. That is safe: the connection is plain TCP, and MHD
 * writes nothing while it reads a body (a 100 Continue went out before the
 * first chunk), so the send buffer is empty and this short write completes
 * or fails whole. The same headers as every response, the JSON envelope, and
 * the access line (as status=413 end=error) all follow as usual. */
static enum MHD_Result abort_too_big(gw_conn *c)
{
    char msg[NT_ERRMSG_LEN];
    too_big_message(c, msg);
    nt_buf body;
    nt_buf_init(&body, (size_t)64 * 1024);
    nt_envelope_error(&body, NT_ETOOBIG, msg, 0);
    nt_buf b;
    nt_buf_init(&b, (size_t)64 * 1024);
    char line[160];
    snprintf(line, sizeof(line),
             "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: %zu\r\n"
             "Content-Type: " JSON_TYPE "\r\nCache-Control: no-store\r\n",
             body.len);
    (void)nt_buf_append(&b, line, strlen(line));
    common_headers(c, append_header_cb, &b);
    (void)nt_buf_append(&b, "\r\n", 2);
    bool fits = nt_buf_append(&b, body.data, body.len) == NT_OK;

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    ssize_t sent = -1;
    if (fits && ci != NULL)
        sent = send(ci->connect_fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    bool whole = sent == (ssize_t)b.len;
    c->status = MHD_HTTP_CONTENT_TOO_LARGE;
    c->bytes = whole ? body.len : 0;
    nt_buf_free(&b);
    nt_buf_free(&body);
    if (!whole) {
        /* The answer did not go out whole: nothing better than closing now. */
        c->state = ST_ANSWERED;
        return MHD_NO;
    }
    /* Read and drop what the client is still sending, for a while, so a
     * client that reads only after sending sees the 413 and not a reset. */
    c->state = ST_DISCARD;
    c->discard_max = c->body_seen + DISCARD_MAX_BYTES;
    c->discard_until = nt_clock_mono_ms() + DISCARD_MAX_MS;
    return MHD_YES;
}

/* Ends a discard: FIN after the 413 already sent, then MHD closes. */
static enum MHD_Result end_discard(gw_conn *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL)
        shutdown(ci->connect_fd, SHUT_WR);
    c->state = ST_ANSWERED;
    return MHD_NO;
}

/* Waits for the rest of the request (a capped body) before acting: a declared
 * length over the cap is refused now, before any byte of it is read. */
static enum MHD_Result expect_body(gw_conn *c, conn_action action)
{
    c->action = action;
    c->state = ST_BODY;
    const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno != 0 || end == cl || n > c->srv->opts.max_body)
            return send_too_big(c);
    }
    if (action == ACT_NATS)
        nt_buf_init(&c->body, c->srv->opts.max_body);
    return MHD_YES;
}

static enum MHD_Result on_headers(gw_conn *c, const char *url, const char *method)
{
    gw_server *srv = c->srv;
    int64_t retry = 0;
    char key[GW_LIMIT_KEY_MAX];
    gw_limit_ip_key(c->ip, key);
    if (!gw_limit_take(srv->ip_rl, key, &retry))
        return send_rate_limited(c, "address", retry);

    if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
        return expect_body(c, ACT_PREFLIGHT);

    gw_match_result mr = gw_route_match(gw_routes, gw_nroutes, srv->clerk, method, url, &c->match);
    if (mr == GW_MATCH_NO_METHOD) {
        char msg[NT_ERRMSG_LEN];
        snprintf(msg, sizeof(msg), "method %s is not allowed here; use %s", c->method,
                 c->match.allow);
        return send_error_allow(c, NT_EMETHOD, msg, 0, c->match.allow);
    }
    if (mr == GW_MATCH_NO_PATH) {
        if (srv->web == NULL || gw_route_is_api(url)) {
            char msg[NT_ERRMSG_LEN];
            snprintf(msg, sizeof(msg), "no route for %s %.160s", c->method, c->path);
            return send_error(c, NT_ENOTFOUND, msg, 0);
        }
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return send_error_allow(c, NT_EMETHOD, "only GET and HEAD are allowed here", 0,
                                    "GET, HEAD");
        return expect_body(c, ACT_STATIC);
    }

    const gw_route *route = c->match.route;
    if (route->flags & (GW_HEALTH | GW_READY))
        return expect_body(c, (route->flags & GW_HEALTH) ? ACT_HEALTH : ACT_READY);

    if (route->flags & GW_AUTH) {
        enum MHD_Result ret = MHD_NO;
        if (authenticate(c, &ret) != NT_OK)
            return ret;
        if (!gw_limit_take(srv->user_rl, c->user, &retry))
            return send_rate_limited(c, "user", retry);
    }

    return expect_body(c, ACT_NATS);
}

/* Takes one body chunk. Past the cap the request is answered 413 at once
 * and the connection closed: reading a body of unbounded size to the end
 * only to refuse it would let one client keep a worker busy at will. */
static enum MHD_Result on_chunk(gw_conn *c, const char *data, size_t size)
{
    if (c->state == ST_DISCARD) {
        c->body_seen += size;
        if (c->body_seen > c->discard_max || nt_clock_mono_ms() > c->discard_until)
            return end_discard(c);
        return MHD_YES;
    }
    if (c->state != ST_BODY)
        return MHD_YES;
    /* Every body counts against the cap; only NATS routes keep theirs. */
    c->body_seen += size;
    if (c->body_seen > c->srv->opts.max_body ||
        (c->action == ACT_NATS && nt_buf_append(&c->body, data, size) != NT_OK)) {
        nt_buf_free(&c->body);
        return abort_too_big(c);
    }
    return MHD_YES;
}

typedef struct {
    const gw_route *route;
    gw_kv kv[MAX_QUERY];
    size_t n;
} query_ctx;

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    query_ctx *q = cls;
    if (key == NULL || !gw_route_query_allowed(q->route, key))
        return MHD_YES;
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->kv[i].key, key) == 0)
            return MHD_YES; /* the first occurrence wins */
    }
    if (q->n < MAX_QUERY) {
        q->kv[q->n].key = key;
        q->kv[q->n].value = value;
        q->n++;
    }
    return MHD_YES;
}

static enum MHD_Result on_body_done(gw_conn *c, const char *url)
{
    gw_server *srv = c->srv;
    switch (c->action) {
    case ACT_PREFLIGHT:
        return send_preflight(c);
    case ACT_STATIC:
        return send_static(c, url);
    case ACT_HEALTH:
        return send_json(c, MHD_HTTP_OK, "{\"status\":\"ok\"}");
    case ACT_READY:
        if (!nt_nats_is_connected(srv->nc))
            return send_ready(c, false, "unknown");
        return send_nats(c, READY_SUBJECT, "", 0, READY_TIMEOUT_MS);
    case ACT_NATS:
        break;
    }
    const char *ct = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (c->body.len > 0 && !gw_body_content_type_ok(ct)) {
        /* Name the media type only, made safe to echo. */
        char msg[NT_ERRMSG_LEN], type[80], shown[80];
        snprintf(type, sizeof(type), "%.*s", (int)strcspn(ct, "; \t"), ct);
        gw_req_log_path(type, shown, sizeof(shown));
        snprintf(msg, sizeof(msg), "unsupported Content-Type '%s': send application/json", shown);
        return send_error(c, NT_EINVAL, msg, 0);
    }

    const gw_route *route = c->match.route;
    query_ctx q = {.route = route};
    if (route->query != NULL)
        MHD_get_connection_values(c->mc, MHD_GET_ARGUMENT_KIND, collect_query, &q);
    gw_kv params[GW_MAX_PARAMS];
    for (size_t i = 0; i < c->match.nparams; i++) {
        params[i].key = c->match.params[i].key;
        params[i].value = c->match.params[i].value;
    }
    char *json = NULL;
    size_t len = 0;
    char err[NT_ERRMSG_LEN];
    if (gw_body_build(c->body.data, c->body.len, q.kv, q.n, params, c->match.nparams, &json, &len,
                      err, sizeof(err)) != NT_OK)
        return send_error(c, NT_EINVAL, err, 0);
    nt_buf_free(&c->body);
    enum MHD_Result ret = send_nats(c, route->subject, json, len, srv->opts.request_timeout_ms);
    free(json);
    return ret;
}

static enum MHD_Result keep_last_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    if (key != NULL && value != NULL && strcasecmp(key, "X-Forwarded-For") == 0)
        *(const char **)cls = value;
    return MHD_YES;
}

/* The last X-Forwarded-For header line: a proxy that adds its own line rather
 * than appending to the client's puts it after the client's. */
static const char *last_forwarded_for(struct MHD_Connection *mc)
{
    const char *last = NULL;
    MHD_get_connection_values(mc, MHD_HEADER_KIND, keep_last_xff, (void *)&last);
    return last;
}

static gw_conn *conn_new(gw_server *srv, struct MHD_Connection *mc, const char *url,
                         const char *method)
{
    gw_conn *c = calloc(1, sizeof(*c));
    NT_ASSERT(c != NULL);
    NT_ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
    c->srv = srv;
    c->mc = mc;
    c->state = ST_HEADERS;
    c->start_ms = nt_clock_mono_ms();
    gw_req_log_path(method, c->method, sizeof(c->method));
    gw_req_log_path(url, c->path, sizeof(c->path));
    gw_req_id_choose(header(c, "X-Request-Id"), c->request_id);

    char peer[GW_IP_MAX] = "";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, peer,
                      sizeof(peer));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, peer,
                      sizeof(peer));
    }
    const char *xff = srv->opts.trust_proxy ? last_forwarded_for(mc) : NULL;
    gw_req_client_ip(srv->opts.trust_proxy, xff, peer, c->ip);
    atomic_fetch_add(&srv->active, 1);
    return c;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    gw_conn *c = *con_cls;
    if (c == NULL) {
        c = conn_new(cls, mc, url, method);
        *con_cls = c;
        return on_headers(c, url, method);
    }
    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        return on_chunk(c, upload_data, size);
    }
    switch (c->state) {
    case ST_BODY:
        return on_body_done(c, url);
    case ST_WAITING:
        return on_resumed(c);
    case ST_DISCARD:
        return end_discard(c); /* the whole body came: the 413 is already out */
    default:
        return MHD_YES; /* already answered */
    }
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)mc;
    gw_server *srv = cls;
    gw_conn *c = *con_cls;
    if (c == NULL)
        return;
    *con_cls = NULL;

    pthread_mutex_lock(&c->mu);
    bool pending = c->sent && !c->done;
    pthread_mutex_unlock(&c->mu);
    if (pending) {
        /* MHD never completes a suspended request, so this cannot happen. If
         * it did, forget the request by id; should its callback be running,
         * leak c rather than free it under the callback's feet. */
        pthread_rwlock_rdlock(&srv->rq_lock);
        bool cancelled = srv->rq != NULL && nt_requester_cancel(srv->rq, c->rq_id);
        pthread_rwlock_unlock(&srv->rq_lock);
        pthread_mutex_lock(&c->mu);
        bool done = c->done;
        pthread_mutex_unlock(&c->mu);
        if (!cancelled && !done) {
            nt_log_error(MOD, "request completed while its reply is pending request_id=%s",
                         c->request_id);
            atomic_fetch_sub(&srv->active, 1);
            return;
        }
    }

    static const char *const ends[] = {"ok",       "error",      "timeout",
                                       "shutdown", "read_error", "client_abort"};
    const char *end = (unsigned)toe < sizeof(ends) / sizeof(ends[0]) ? ends[toe] : "other";
    nt_log_info(MOD,
                "access method=%s path=%s status=%u bytes=%llu ms=%lld user=%s request_id=%s "
                "ip=%s%s%s",
                c->method, c->path, c->status, (unsigned long long)c->bytes,
                (long long)(nt_clock_mono_ms() - c->start_ms), c->user[0] ? c->user : "-",
                c->request_id, c->ip, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " end=",
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : end);
    nt_buf_free(&c->body);
    nt_response_free(&c->resp);
    pthread_mutex_destroy(&c->mu);
    free(c);
    atomic_fetch_sub(&srv->active, 1);
}

/* MHD's own messages, at most MHD_LOG_PER_S a second. Errors MHD answers by
 * itself (431 headers too large, 414, 400 malformed) never reach on_request,
 * so this line is their only trace: it names the status and drops MHD's HTML. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    gw_server *srv = cls;
    int64_t sec = nt_clock_mono_ms() / 1000;
    unsigned long long dropped = 0;
    pthread_mutex_lock(&srv->log_mu);
    if (sec != srv->log_sec) {
        dropped = srv->log_dropped;
        srv->log_sec = sec;
        srv->log_count = 0;
        srv->log_dropped = 0;
    }
    bool show = srv->log_count < MHD_LOG_PER_S;
    if (show)
        srv->log_count++;
    else
        srv->log_dropped++;
    pthread_mutex_unlock(&srv->log_mu);
    if (dropped > 0)
        nt_log_warn(MOD, "mhd: %llu more messages suppressed", dropped);
    if (!show)
        return;

    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    static const char marker[] = "HTTP response code is ";
    const char *code = strstr(line, marker);
    if (code != NULL) {
        char *end = NULL;
        unsigned long status = strtoul(code + sizeof(marker) - 1, &end, 10);
        if (end != code + sizeof(marker) - 1 && status >= 100 && status <= 599) {
            nt_log_warn(MOD, "mhd: refused a request itself status=%lu (HTML body, no request id)",
                        status);
            return;
        }
    }
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    nt_log_warn(MOD, "mhd: %s", line);
}

/* ---- Start and stop ------------------------------------------------------------ */

static void server_free(gw_server *s)
{
    if (s == NULL)
        return;
    nt_requester_destroy(s->rq);
    nt_ratelimit_destroy(s->ip_rl);
    nt_ratelimit_destroy(s->user_rl);
    gw_cors_destroy(s->cors);
    gw_static_destroy(s->web);
    pthread_rwlock_destroy(&s->rq_lock);
    pthread_mutex_destroy(&s->log_mu);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_cond_destroy(&s->watch_cond);
    free(s);
}

/* Asks whether any edge answers discovery, every EDGE_WATCH_MS, so that
 * /readyz can say so without a second request per probe. */
static void *edge_watcher(void *arg)
{
    gw_server *s = arg;
    pthread_mutex_lock(&s->watch_mu);
    while (!s->watch_stop) {
        pthread_mutex_unlock(&s->watch_mu);
        nt_response r = {0};
        nt_status st =
            nt_nats_request(s->nc, EDGE_SUBJECT, NULL, NULL, "", 0, EDGE_WATCH_TIMEOUT_MS, &r);
        atomic_store(&s->edge_state, st == NT_OK && r.http == 200 ? EDGE_OK : EDGE_DOWN);
        nt_response_free(&r);
        pthread_mutex_lock(&s->watch_mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += EDGE_WATCH_MS / 1000;
        if (!s->watch_stop)
            pthread_cond_timedwait(&s->watch_cond, &s->watch_mu, &ts);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

nt_status gw_server_start(const gw_opts *opts, nt_nats *nc, nt_verifier *verifier, bool clerk_mode,
                          gw_server **out)
{
    char err[NT_ERRMSG_LEN];
    gw_server *s = calloc(1, sizeof(*s));
    NT_ASSERT(s != NULL);
    NT_ASSERT(pthread_rwlock_init(&s->rq_lock, NULL) == 0);
    NT_ASSERT(pthread_mutex_init(&s->log_mu, NULL) == 0);
    NT_ASSERT(pthread_mutex_init(&s->watch_mu, NULL) == 0);
    NT_ASSERT(pthread_cond_init(&s->watch_cond, NULL) == 0);
    s->opts = *opts;
    s->nc = nc;
    s->verifier = verifier;
    s->clerk = clerk_mode;
    atomic_init(&s->active, 0);

    nt_status st = nt_ratelimit_create(opts->ip_rate, opts->ip_burst, RATE_MAX_KEYS, &s->ip_rl);
    if (st == NT_OK)
        st = nt_ratelimit_create(opts->user_rate, opts->user_burst, RATE_MAX_KEYS, &s->user_rl);
    if (st != NT_OK) {
        nt_log_error(MOD, "bad rate limits");
        goto out;
    }
    st = gw_cors_create(opts->cors_origins, &s->cors, err, sizeof(err));
    if (st != NT_OK) {
        nt_log_error(MOD, "%s", err);
        goto out;
    }
    if (gw_static_create(opts->web_dir, &s->web) == NT_OK)
        nt_log_info(MOD, "serving the web app from %s", gw_static_root(s->web));
    else
        nt_log_info(MOD, "no web app: %s is not a directory", opts->web_dir);
    st = nt_requester_create(nc, &s->rq);
    if (st != NT_OK) {
        nt_log_error(MOD, "cannot create the NATS requester: %s", nt_status_str(st));
        goto out;
    }

    /* Every connection is a descriptor: take all the process may have, and
     * never promise MHD more connections than that. */
    uint64_t nofile = 0;
    unsigned max_conn = opts->max_conn;
    if (gw_limit_raise_nofile(&nofile) == NT_OK) {
        nt_log_info(MOD, "open files limit=%llu", (unsigned long long)nofile);
        if (nofile < (uint64_t)max_conn + FD_RESERVE) {
            unsigned cap = nofile > FD_RESERVE + opts->threads ? (unsigned)(nofile - FD_RESERVE)
                                                               : opts->threads;
            nt_log_warn(MOD,
                        "NATTER_HTTP_MAX_CONN=%u does not fit the open files limit %llu; "
                        "using %u",
                        max_conn, (unsigned long long)nofile, cap);
            max_conn = cap;
        }
    } else {
        nt_log_warn(MOD, "cannot read the open files limit");
    }

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (opts->ipv6)
        flags |= MHD_USE_IPv6;
    uint16_t port = opts->ipv6 ? ntohs(((const struct sockaddr_in6 *)&opts->addr)->sin6_port)
                               : ntohs(((const struct sockaddr_in *)&opts->addr)->sin_port);
    /* clang-format off */
    s->daemon = MHD_start_daemon(flags, port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                                 MHD_OPTION_SOCK_ADDR, &s->opts.addr,
                                 MHD_OPTION_THREAD_POOL_SIZE,
                                 (unsigned)(opts->threads > 1 ? opts->threads : 0),
                                 MHD_OPTION_CONNECTION_TIMEOUT, opts->idle_timeout_s,
                                 MHD_OPTION_CONNECTION_LIMIT, max_conn,
                                 /* 0: no limit (behind a proxy) */
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, opts->max_conn_per_ip,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_END);
    /* clang-format on */
    if (s->daemon == NULL) {
        nt_log_error(MOD, "cannot listen on port %u (address in use or not available)", port);
        st = NT_EUNAVAIL;
        goto out;
    }
    nt_log_info(MOD,
                "listening port=%u threads=%u max_conn=%u max_conn_per_ip=%u idle_timeout_s=%u "
                "cors_origins=%zu mode=%s",
                port, opts->threads, max_conn, opts->max_conn_per_ip, opts->idle_timeout_s,
                gw_cors_count(s->cors), clerk_mode ? "clerk" : "local");
    if (pthread_create(&s->watcher, NULL, edge_watcher, s) == 0)
        s->watcher_started = true;
    *out = s;
    s = NULL;
out:
    server_free(s);
    return st;
}

void gw_server_stop(gw_server *s, int drain_ms)
{
    if (s == NULL)
        return;
    if (s->watcher_started) {
        pthread_mutex_lock(&s->watch_mu);
        s->watch_stop = true;
        pthread_cond_signal(&s->watch_cond);
        pthread_mutex_unlock(&s->watch_mu);
        pthread_join(s->watcher, NULL);
    }
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);

    /* Fail every pending request: their connections resume and answer 503. */
    pthread_rwlock_wrlock(&s->rq_lock);
    nt_requester *rq = s->rq;
    s->rq = NULL;
    pthread_rwlock_unlock(&s->rq_lock);
    nt_requester_destroy(rq);

    int64_t deadline = nt_clock_mono_ms() + drain_ms;
    while (atomic_load(&s->active) > 0 && nt_clock_mono_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&s->active);
    if (left > 0)
        nt_log_warn(MOD, "stopping with %d requests still in progress", left);
    MHD_stop_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    server_free(s);
}
