/* The NATS adapter over nats.c 3.4.1: connection with unlimited reconnect,
 * route tables served on queue subscriptions with NATS micro discovery, a
 * blocking request, and a non-blocking requester (one wildcard inbox, our own
 * deadline thread). natsStatus is converted to nt_status here and in nt_kv only.
 *
 * Threads: every async subscription has its own nats.c delivery thread (the
 * library default). The shared delivery pool of 3.4.1 pins subscriptions to
 * workers round-robin, so one slow handler would stall unrelated routes,
 * discovery and requester replies that share its worker; a thread per
 * subscription costs a few stacks and keeps them independent. */
#include "nt_nats.h"

#include "nt_buf.h"
#include "nt_clock.h"
#include "nt_id.h"
#include "nt_log.h"
#include "nt_micro.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NATS_MOD          "nats"
#define NATS_MAX_SERVERS  32
#define NATS_URL_MAX      512
#define NATS_RETRY_MS     200
#define NATS_CLOSE_WAIT   5000 /* ms to wait for the closed callback in destroy */
#define SVC_NAME_MAX      64
#define SVC_ENVELOPE_MAX  (256u * 1024u * 1024u) /* checked against max_payload after */
#define SVC_HDR_ROOM      1024                   /* bytes kept free for reply headers */
#define SVC_STOP_GRACE_MS 500
#define SVC_FORCE_WAIT_MS 5000
#define RQ_BUCKETS_MIN    1024
#define RQ_SUB_WAIT_MS    5000

/* ---- Small helpers -------------------------------------------------------- */

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    NT_ASSERT(pthread_condattr_init(&a) == 0);
    NT_ASSERT(pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0);
    NT_ASSERT(pthread_cond_init(c, &a) == 0);
    pthread_condattr_destroy(&a);
}

/* Waits on c until signalled or until the monotonic deadline (ms). */
static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ms / 1000);
    ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    int rc = pthread_cond_timedwait(c, m, &ts);
    NT_ASSERT(rc == 0 || rc == ETIMEDOUT);
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

nt_status nt_nats_status(int s)
{
    switch ((natsStatus)s) {
    case NATS_OK:
        return NT_OK;
    case NATS_TIMEOUT:
        return NT_ETIMEOUT;
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NOT_YET_CONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_DRAINING:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_CONNECTION_AUTH_FAILED:
        return NT_EUNAVAIL;
    case NATS_MAX_PAYLOAD:
        return NT_ETOOBIG;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG:
        return NT_EINVAL;
    default:
        return NT_EINTERNAL;
    }
}

/* Copies a URL without any user:password@ part, so logs never hold credentials. */
/* True when a header value could break the header block. */
static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

/* True for NULL, "" and all-space strings. */
static bool blank(const char *s)
{
    if (s == NULL)
        return true;
    s += strspn(s, " ");
    return *s == '\0';
}

/* Copies s with control characters replaced by spaces: safe in a header value. */
static void header_safe(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < outlen; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
    out[i] = '\0';
}

/* A short, log-safe copy of a request id from the network. */
static void log_safe_id(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i + 1 < outlen; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

/* Builds a message with the request headers. */
static natsStatus request_msg(natsMsg **out, const char *subject, const char *reply,
                              const char *user, const char *request_id, const void *data,
                              size_t len)
{
    natsMsg *m = NULL;
    char rid[NT_ID_LEN];
    if (blank(request_id)) {
        nt_id_new(rid);
        request_id = rid;
    }
    natsStatus s = natsMsg_Create(&m, subject, reply, data, (int)len);
    /* An empty header value is never sent: nats.c 3.4.1's header parser skips
     * the line break after it and takes the next line as the value. */
    if (s == NATS_OK && !blank(user))
        s = natsMsgHeader_Set(m, NT_HDR_USER, user);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, NT_HDR_REQUEST_ID, request_id);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return s;
    }
    *out = m;
    return NATS_OK;
}

static nt_status request_check(const char *subject, const char *user, const char *request_id,
                               size_t len)
{
    if (subject == NULL || subject[0] == '\0')
        return NT_EINVAL;
    if ((user != NULL && has_ctl(user)) || (request_id != NULL && has_ctl(request_id)))
        return NT_EINVAL;
    if (len > INT_MAX)
        return NT_ETOOBIG;
    return NT_OK;
}

/* Reads status, retry hint and body of a reply; data is borrowed from m. */
static void response_read(natsMsg *m, nt_response *r)
{
    const char *v = NULL;
    memset(r, 0, sizeof(*r));
    r->http = 200;
    if (natsMsgHeader_Get(m, NT_HDR_SVC_CODE, &v) == NATS_OK && v != NULL) {
        char *end = NULL;
        errno = 0;
        long code = strtol(v, &end, 10);
        r->http = (errno == 0 && end != v && *end == '\0' && code >= 100 && code <= 599) ? (int)code
                                                                                         : 500;
    }
    v = NULL;
    if (natsMsgHeader_Get(m, NT_HDR_RETRY_AFTER, &v) == NATS_OK && v != NULL) {
        char *end = NULL;
        errno = 0;
        long long ms = strtoll(v, &end, 10);
        if (errno == 0 && end != v && *end == '\0' && ms > 0)
            r->retry_after_ms = ms;
    }
    const char *d = natsMsg_GetData(m);
    int n = natsMsg_GetDataLength(m);
    r->data = (char *)(d != NULL ? d : "");
    r->len = (d != NULL && n > 0) ? (size_t)n : 0;
}

void nt_response_free(nt_response *r)
{
    if (r == NULL)
        return;
    free(r->data);
    r->data = NULL;
    r->len = 0;
}

/* ---- Connection ------------------------------------------------------------ */

struct nt_nats {
    natsConnection *conn;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool closed; /* the closed callback has run */
    char name[64];
    /* Told after a reconnect or a slow-consumer drop (under mu). */
    nt_gap_cb gap_cb;
    void *gap_ctx;
};

static void tell_gap(nt_nats *nc, const char *why)
{
    pthread_mutex_lock(&nc->mu);
    nt_gap_cb cb = nc->gap_cb;
    void *ctx = nc->gap_ctx;
    pthread_mutex_unlock(&nc->mu);
    if (cb != NULL)
        cb(ctx, why);
}

void nt_nats_on_gap(nt_nats *nc, nt_gap_cb cb, void *ctx)
{
    pthread_mutex_lock(&nc->mu);
    nc->gap_cb = cb;
    nc->gap_ctx = ctx;
    pthread_mutex_unlock(&nc->mu);
}

static void on_disconnected(natsConnection *c, void *closure)
{
    nt_nats *nc = closure;
    /* Our own close or drain also disconnects; only a lost server is news. */
    if (natsConnection_IsClosed(c) || natsConnection_IsDraining(c))
        nt_log_debug(NATS_MOD, "disconnected name=%s", nc->name);
    else
        nt_log_warn(NATS_MOD, "disconnected name=%s", nc->name);
}

static void on_reconnected(natsConnection *c, void *closure)
{
    nt_nats *nc = closure;
    char url[NATS_URL_MAX] = "", safe[NATS_URL_MAX];
    natsConnection_GetConnectedUrl(c, url, sizeof(url));
    nt_log_redact_url(url, safe, sizeof(safe));
    nt_log_info(NATS_MOD, "reconnected name=%s url=%s", nc->name, safe);
    /* What was published while we were away is not coming. */
    tell_gap(nc, "reconnected");
}

static void on_closed(natsConnection *c, void *closure)
{
    (void)c;
    nt_nats *nc = closure;
    nt_log_info(NATS_MOD, "closed name=%s", nc->name);
    /* After the unlock nc may be freed by a waiter: touch nothing after it. */
    pthread_mutex_lock(&nc->mu);
    nc->closed = true;
    pthread_cond_broadcast(&nc->cond);
    pthread_mutex_unlock(&nc->mu);
}

static void on_async_error(natsConnection *c, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)c;
    (void)sub;
    nt_nats *nc = closure;
    nt_log_warn(NATS_MOD, "async error name=%s err=%s", nc->name, natsStatus_GetText(err));
    if (err == NATS_SLOW_CONSUMER)
        tell_gap(nc, "slow_consumer");
}

/* Splits the comma-separated list in place into trimmed, non-empty URLs. */
static int split_urls(char *list, const char **urls, int max)
{
    int n = 0;
    char *p = list;
    while (p != NULL && n < max) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        char *u = nt_str_trim(p);
        if (u[0] != '\0')
            urls[n++] = u;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return p == NULL ? n : -1;
}

static void log_urls(const char *what, const char **urls, int n, const char *extra)
{
    char line[1024], safe[NATS_URL_MAX];
    size_t used = 0;
    line[0] = '\0';
    for (int i = 0; i < n && used < sizeof(line); i++) {
        nt_log_redact_url(urls[i], safe, sizeof(safe));
        int w = snprintf(line + used, sizeof(line) - used, "%s%s", i ? "," : "", safe);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    nt_log_info(NATS_MOD, "%s urls=%s%s", what, line, extra);
}

static nt_status connect_with(const char *urls, const char *client_name, int wait_ms, int pool_size,
                              nt_nats **out);

nt_status nt_nats_connect(const char *urls, const char *client_name, int wait_ms, nt_nats **out)
{
    return connect_with(urls, client_name, wait_ms, 0, out);
}

nt_status nt_nats_connect_pooled(const char *urls, const char *client_name, int wait_ms,
                                 int pool_size, nt_nats **out)
{
    if (pool_size < 1 || pool_size > 64)
        return NT_EINVAL;
    return connect_with(urls, client_name, wait_ms, pool_size, out);
}

static nt_status connect_with(const char *urls, const char *client_name, int wait_ms, int pool_size,
                              nt_nats **out)
{
    NT_ASSERT(out != NULL);
    if (urls == NULL || client_name == NULL)
        return NT_EINVAL;
    nt_status st = NT_OK;
    natsOptions *opts = NULL;
    const char *list[NATS_MAX_SERVERS];
    char *copy = strdup(urls);
    NT_ASSERT(copy != NULL);
    nt_nats *nc = calloc(1, sizeof(*nc));
    NT_ASSERT(nc != NULL);
    NT_ASSERT(pthread_mutex_init(&nc->mu, NULL) == 0);
    cond_init_mono(&nc->cond);
    snprintf(nc->name, sizeof(nc->name), "%s", client_name);

    int n = split_urls(copy, list, NATS_MAX_SERVERS);
    if (n <= 0) {
        st = NT_EINVAL;
        goto out;
    }
    int64_t attempt_ms = wait_ms > 0 && wait_ms < 2000 ? wait_ms : 2000;
    if (attempt_ms < NATS_RETRY_MS)
        attempt_ms = NATS_RETRY_MS;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, list, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, client_name);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 500);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, attempt_ms);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, nc);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, nc);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, nc);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_async_error, nc);
    if (s == NATS_OK && pool_size > 0)
        s = nats_SetMessageDeliveryPoolSize(pool_size);
    if (s == NATS_OK && pool_size > 0)
        s = natsOptions_UseGlobalMessageDelivery(opts, true);
    if (s != NATS_OK) {
        /* A bad URL shows up here as NATS_INVALID_ARG. */
        nt_log_error(NATS_MOD, "options failed err=%s", natsStatus_GetText(s));
        st = s == NATS_INVALID_ARG ? NT_EINVAL : NT_EINTERNAL;
        goto out;
    }

    int64_t deadline = nt_clock_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    bool warned = false;
    for (;;) {
        s = natsConnection_Connect(&nc->conn, opts);
        if (s == NATS_OK)
            break;
        nc->conn = NULL;
        int64_t left = deadline - nt_clock_mono_ms();
        if (left <= 0) {
            char extra[128];
            snprintf(extra, sizeof(extra), " err=%s", natsStatus_GetText(s));
            log_urls("connect failed", list, n, extra);
            st = NT_EUNAVAIL;
            goto out;
        }
        if (!warned) {
            char extra[160];
            snprintf(extra, sizeof(extra), " err=%s wait_ms=%d", natsStatus_GetText(s), wait_ms);
            log_urls("connect failed, retrying", list, n, extra);
            warned = true;
        }
        sleep_ms(left < NATS_RETRY_MS ? left : NATS_RETRY_MS);
    }
    {
        char url[NATS_URL_MAX] = "", safe[NATS_URL_MAX];
        natsConnection_GetConnectedUrl(nc->conn, url, sizeof(url));
        nt_log_redact_url(url, safe, sizeof(safe));
        nt_log_info(NATS_MOD, "connected name=%s url=%s", nc->name, safe);
    }
out:
    natsOptions_Destroy(opts);
    free(copy);
    if (st != NT_OK) {
        pthread_cond_destroy(&nc->cond);
        pthread_mutex_destroy(&nc->mu);
        free(nc);
        return st;
    }
    *out = nc;
    return NT_OK;
}

bool nt_nats_is_connected(nt_nats *nc)
{
    return nc != NULL && natsConnection_Status(nc->conn) == NATS_CONN_STATUS_CONNECTED;
}

nt_status nt_nats_publish(nt_nats *nc, const char *subject, const void *data, size_t len)
{
    NT_ASSERT(nc != NULL);
    if (subject == NULL || subject[0] == '\0')
        return NT_EINVAL;
    if (len > INT_MAX)
        return NT_ETOOBIG;
    return nt_nats_status(natsConnection_Publish(nc->conn, subject, data, (int)len));
}

nt_status nt_nats_publish_hdrs(nt_nats *nc, const char *subject, const void *data, size_t len,
                               const nt_header *hdrs, size_t n)
{
    NT_ASSERT(nc != NULL && (n == 0 || hdrs != NULL));
    if (subject == NULL || subject[0] == '\0')
        return NT_EINVAL;
    if (len > INT_MAX)
        return NT_ETOOBIG;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
    for (size_t i = 0; s == NATS_OK && i < n; i++)
        s = natsMsgHeader_Set(m, hdrs[i].key, hdrs[i].value);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(nc->conn, m);
    natsMsg_Destroy(m);
    return nt_nats_status(s);
}

nt_status nt_nats_request(nt_nats *nc, const char *subject, const char *user,
                          const char *request_id, const void *data, size_t len, int timeout_ms,
                          nt_response *out)
{
    NT_ASSERT(nc != NULL && out != NULL);
    nt_status st = request_check(subject, user, request_id, len);
    if (st != NT_OK)
        return st;
    natsMsg *req = NULL, *rep = NULL;
    natsStatus s = request_msg(&req, subject, NULL, user, request_id, data, len);
    if (s == NATS_OK)
        s = natsConnection_RequestMsg(&rep, nc->conn, req, timeout_ms > 0 ? timeout_ms : 1);
    if (s == NATS_OK && natsMsg_IsNoResponders(rep))
        s = NATS_NO_RESPONDERS;
    if (s != NATS_OK) {
        st = s == NATS_NO_RESPONDERS ? NT_EUNAVAIL : nt_nats_status(s);
        goto out;
    }
    nt_response r;
    response_read(rep, &r);
    char *copy = malloc(r.len + 1);
    NT_ASSERT(copy != NULL);
    memcpy(copy, r.data, r.len);
    copy[r.len] = '\0';
    r.data = copy;
    *out = r;
out:
    natsMsg_Destroy(req);
    natsMsg_Destroy(rep);
    return st;
}

/* Waits for the closed callback until the monotonic deadline; true once closed. */
static bool wait_closed(nt_nats *nc, int64_t deadline)
{
    pthread_mutex_lock(&nc->mu);
    while (!nc->closed && nt_clock_mono_ms() < deadline)
        cond_wait_until(&nc->cond, &nc->mu, deadline);
    bool closed = nc->closed;
    pthread_mutex_unlock(&nc->mu);
    return closed;
}

void nt_nats_drain(nt_nats *nc, int timeout_ms)
{
    if (nc == NULL)
        return;
    if (timeout_ms < 1)
        timeout_ms = 1;
    natsStatus s = natsConnection_DrainTimeout(nc->conn, timeout_ms);
    if (s != NATS_OK) {
        nt_log_warn(NATS_MOD, "drain failed name=%s err=%s", nc->name, natsStatus_GetText(s));
        natsConnection_Close(nc->conn);
    }
    /* The library closes the connection itself when the drain times out. */
    if (!wait_closed(nc, nt_clock_mono_ms() + timeout_ms + SVC_STOP_GRACE_MS))
        nt_log_warn(NATS_MOD, "drain did not finish name=%s timeout_ms=%d", nc->name, timeout_ms);
}

void nt_nats_destroy(nt_nats *nc)
{
    if (nc == NULL)
        return;
    natsConnection_Close(nc->conn);
    if (!wait_closed(nc, nt_clock_mono_ms() + NATS_CLOSE_WAIT)) {
        /* The closed callback still points at nc: keep it rather than free it. */
        nt_log_error(NATS_MOD, "close did not finish name=%s; leaking the handle", nc->name);
        natsConnection_Destroy(nc->conn);
        return;
    }
    natsConnection_Destroy(nc->conn);
    pthread_cond_destroy(&nc->cond);
    pthread_mutex_destroy(&nc->mu);
    free(nc);
}

struct __natsConnection *nt_nats_raw(nt_nats *nc)
{
    NT_ASSERT(nc != NULL);
    return nc->conn;
}

/* ---- Event subscriptions ------------------------------------------------- */

struct nt_sub {
    natsSubscription *sub;
    nt_msg_cb cb;
    void *ctx;
    uint64_t tag;
};

static void sub_on_msg(natsConnection *conn, natsSubscription *ns, natsMsg *msg, void *closure)
{
    (void)conn;
    (void)ns;
    nt_sub *s = closure;
    nt_msg m = {
        .subject = natsMsg_GetSubject(msg),
        .data = natsMsg_GetData(msg),
        .len = (size_t)natsMsg_GetDataLength(msg),
        .raw = msg,
    };
    s->cb(s->ctx, s->tag, &m);
    natsMsg_Destroy(msg);
}

const char *nt_msg_header(const nt_msg *m, const char *key)
{
    const char *v = NULL;
    if (m == NULL || m->raw == NULL || key == NULL)
        return NULL;
    return natsMsgHeader_Get(m->raw, key, &v) == NATS_OK ? v : NULL;
}

/* Frees the nt_sub once nats.c has delivered its last message. */
static void sub_on_complete(void *closure)
{
    free(closure);
}

nt_status nt_nats_subscribe(nt_nats *nc, const char *subject, nt_msg_cb cb, void *ctx, uint64_t tag,
                            nt_sub **out)
{
    NT_ASSERT(nc != NULL && cb != NULL && out != NULL);
    if (subject == NULL || subject[0] == '\0')
        return NT_EINVAL;
    nt_sub *s = calloc(1, sizeof(*s));
    NT_ASSERT(s != NULL);
    s->cb = cb;
    s->ctx = ctx;
    s->tag = tag;
    natsStatus ns = natsConnection_Subscribe(&s->sub, nc->conn, subject, sub_on_msg, s);
    if (ns == NATS_OK)
        ns = natsSubscription_SetOnCompleteCB(s->sub, sub_on_complete, s);
    if (ns != NATS_OK) {
        nt_log_error(NATS_MOD, "subscribe failed subject=%s err=%s", subject,
                     natsStatus_GetText(ns));
        if (s->sub != NULL) {
            /* The complete callback may not be set: free here, once nats.c
             * has let go of the subscription. */
            natsSubscription_Unsubscribe(s->sub);
            natsSubscription_Destroy(s->sub);
        }
        free(s);
        return nt_nats_status(ns);
    }
    *out = s;
    return NT_OK;
}

void nt_sub_destroy(nt_sub *s)
{
    if (s == NULL)
        return;
    natsSubscription *ns = s->sub;
    /* After Unsubscribe no new message is delivered; one already being
     * delivered finishes, and then the complete callback frees s. */
    natsSubscription_Unsubscribe(ns);
    natsSubscription_Destroy(ns);
}

/* ---- Service ----------------------------------------------------------------- */

enum { VERB_PING, VERB_INFO, VERB_STATS, VERB__COUNT };
static const char *const verb_names[VERB__COUNT] = {"PING", "INFO", "STATS"};

typedef struct {
    nt_service *svc;
    size_t idx; /* route index, or verb */
} svc_sub_ctx;

struct nt_service {
    nt_nats *nc;
    char *name, *version, *description;
    const nt_route *routes;
    size_t nroutes;
    void *ctx;
    char id[NT_MICRO_ID_LEN];
    int64_t started_ms;
    size_t max_reply;

    pthread_mutex_t mu; /* guards eps and completed */
    pthread_cond_t cond;
    nt_micro_endpoint *eps;
    size_t completed; /* subscriptions whose last callback has returned */

    svc_sub_ctx *rctx;
    svc_sub_ctx vctx[VERB__COUNT];
    natsSubscription **subs;
    size_t nsubs;
};

static bool svc_name_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > SVC_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* MAJOR.MINOR.PATCH with an optional -pre or +build tail of [0-9A-Za-z.-+]. */
static bool svc_version_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int part = 0; part < 3; part++) {
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || (digits > 1 && s[0] == '0'))
            return false;
        s += digits;
        if (part < 2) {
            if (*s != '.')
                return false;
            s++;
        }
    }
    if (*s == '\0')
        return true;
    if (*s != '-' && *s != '+')
        return false;
    s++;
    if (*s == '\0')
        return false;
    return strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-+") ==
           strlen(s);
}

static void svc_on_complete(void *closure)
{
    nt_service *svc = closure;
    pthread_mutex_lock(&svc->mu);
    svc->completed++;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->mu);
}

static natsStatus svc_reply(natsConnection *conn, const char *reply, nt_status st,
                            const nt_reply *rep, const char *data, size_t len)
{
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, reply, NULL, data, (int)len);
    if (s == NATS_OK && st != NT_OK) {
        char msg[NT_ERRMSG_LEN], code[16];
        header_safe(rep->message, msg, sizeof(msg));
        if (blank(msg))
            snprintf(msg, sizeof(msg), "%s", nt_status_str(st));
        snprintf(code, sizeof(code), "%d", nt_status_http(st));
        s = natsMsgHeader_Set(m, NT_HDR_SVC_ERROR, msg);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, NT_HDR_SVC_CODE, code);
    }
    if (s == NATS_OK && rep->retry_after_ms > 0) {
        char ms[32];
        snprintf(ms, sizeof(ms), "%lld", rep->retry_after_ms);
        s = natsMsgHeader_Set(m, NT_HDR_RETRY_AFTER, ms);
    }
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(conn, m);
    natsMsg_Destroy(m);
    return s;
}

static void svc_on_route(natsConnection *conn, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    svc_sub_ctx *sc = closure;
    nt_service *svc = sc->svc;
    const nt_route *route = &svc->routes[sc->idx];
    nt_reply rep;
    memset(&rep, 0, sizeof(rep));
    nt_buf out;
    nt_buf_init(&out, SVC_ENVELOPE_MAX);
    char rid[NT_ID_LEN];
    const char *user = NULL, *reqid = NULL;
    if (natsMsgHeader_Get(msg, NT_HDR_USER, &user) != NATS_OK)
        user = NULL;
    if (natsMsgHeader_Get(msg, NT_HDR_REQUEST_ID, &reqid) != NATS_OK || reqid == NULL ||
        reqid[0] == '\0') {
        nt_id_new(rid);
        reqid = rid;
    }
    const char *data = natsMsg_GetData(msg);
    int dlen = natsMsg_GetDataLength(msg);
    nt_request req = {
        .subject = natsMsg_GetSubject(msg),
        .user = user,
        .request_id = reqid,
        .data = data != NULL ? data : "",
        .len = (data != NULL && dlen > 0) ? (size_t)dlen : 0,
    };

    int64_t t0 = nt_clock_mono_ns();
    nt_status st = nt_route_dispatch(route, svc->ctx, &req, &rep, &out);
    int64_t elapsed = nt_clock_mono_ns() - t0;

    nt_status counted = st;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL && reply[0] != '\0') {
        if (out.len + SVC_HDR_ROOM > svc->max_reply) {
            nt_log_error(NATS_MOD, "reply too large subject=%s bytes=%zu", req.subject, out.len);
            nt_reply_clear(&rep);
            nt_buf_reset(&out);
            st = counted = nt_reply_fail(&rep, NT_EINTERNAL, "the reply is too large");
            nt_envelope_error(&out, st, rep.message, 0);
        }
        natsStatus s = svc_reply(conn, reply, st, &rep, out.data, out.len);
        if (s != NATS_OK) {
            nt_log_warn(NATS_MOD, "reply failed subject=%s err=%s", req.subject,
                        natsStatus_GetText(s));
            if (counted == NT_OK) {
                counted = nt_reply_fail(&rep, nt_nats_status(s), "reply not sent: %s",
                                        natsStatus_GetText(s));
            }
        }
    }
    if (st != NT_OK) {
        char safe[72];
        log_safe_id(reqid, safe, sizeof(safe));
        nt_log_warn(NATS_MOD, "error reply subject=%s http=%d code=%s request_id=%s", req.subject,
                    nt_status_http(st), nt_status_code(st), safe);
    }
    pthread_mutex_lock(&svc->mu);
    nt_micro_record(&svc->eps[sc->idx], elapsed, counted, rep.message);
    pthread_mutex_unlock(&svc->mu);

    nt_reply_clear(&rep);
    nt_buf_free(&out);
    natsMsg_Destroy(msg);
}

static void svc_on_discovery(natsConnection *conn, natsSubscription *sub, natsMsg *msg,
                             void *closure)
{
    (void)sub;
    svc_sub_ctx *sc = closure;
    nt_service *svc = sc->svc;
    const char *reply = natsMsg_GetReply(msg);
    if (reply == NULL || reply[0] == '\0')
        goto out;
    nt_micro_endpoint *eps = NULL;
    if (svc->nroutes > 0) {
        eps = malloc(svc->nroutes * sizeof(*eps));
        NT_ASSERT(eps != NULL);
        pthread_mutex_lock(&svc->mu);
        memcpy(eps, svc->eps, svc->nroutes * sizeof(*eps));
        pthread_mutex_unlock(&svc->mu);
    }
    nt_micro_info info = {
        .name = svc->name,
        .id = svc->id,
        .version = svc->version,
        .description = svc->description,
        .started_ms = svc->started_ms,
        .endpoints = eps,
        .nendpoints = svc->nroutes,
    };
    char *json = sc->idx == VERB_PING   ? nt_micro_ping_json(&info)
                 : sc->idx == VERB_INFO ? nt_micro_info_json(&info)
                                        : nt_micro_stats_json(&info);
    natsStatus s = natsConnection_Publish(conn, reply, json, (int)strlen(json));
    if (s != NATS_OK)
        nt_log_warn(NATS_MOD, "discovery reply failed verb=%s err=%s", verb_names[sc->idx],
                    natsStatus_GetText(s));
    free(json);
    free(eps);
out:
    natsMsg_Destroy(msg);
}

/* Adds a created subscription, with the completion callback stop waits for. */
static void svc_add_sub(nt_service *svc, natsSubscription *sub)
{
    svc->subs[svc->nsubs++] = sub;
    if (natsSubscription_SetOnCompleteCB(sub, svc_on_complete, svc) != NATS_OK) {
        /* Already closed (the connection went away): nothing more will be delivered. */
        pthread_mutex_lock(&svc->mu);
        svc->completed++;
        pthread_mutex_unlock(&svc->mu);
    }
}

/* Waits until every subscription's delivery has ended or the deadline passes. */
static bool svc_wait_complete(nt_service *svc, int64_t deadline)
{
    pthread_mutex_lock(&svc->mu);
    while (svc->completed < svc->nsubs && nt_clock_mono_ms() < deadline)
        cond_wait_until(&svc->cond, &svc->mu, deadline);
    bool done = svc->completed >= svc->nsubs;
    pthread_mutex_unlock(&svc->mu);
    return done;
}

static void svc_free(nt_service *svc)
{
    for (size_t i = 0; i < svc->nsubs; i++)
        natsSubscription_Destroy(svc->subs[i]);
    free(svc->subs);
    free(svc->rctx);
    free(svc->eps);
    free(svc->name);
    free(svc->version);
    free(svc->description);
    pthread_cond_destroy(&svc->cond);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}

/* Stops delivery (drained when drain_ms > 0) and frees, unless a handler is
 * stuck past every grace period: then the service is leaked, not freed under it. */
static bool svc_teardown(nt_service *svc, int drain_ms)
{
    int64_t deadline = nt_clock_mono_ms() + drain_ms + SVC_STOP_GRACE_MS;
    for (size_t i = 0; i < svc->nsubs; i++) {
        natsStatus s = drain_ms > 0 ? natsSubscription_DrainTimeout(svc->subs[i], drain_ms)
                                    : natsSubscription_Unsubscribe(svc->subs[i]);
        if (s != NATS_OK && drain_ms > 0)
            natsSubscription_Unsubscribe(svc->subs[i]);
    }
    if (!svc_wait_complete(svc, deadline)) {
        nt_log_warn(NATS_MOD, "service drain timed out name=%s; unsubscribing", svc->name);
        for (size_t i = 0; i < svc->nsubs; i++)
            natsSubscription_Unsubscribe(svc->subs[i]);
        if (!svc_wait_complete(svc, nt_clock_mono_ms() + SVC_FORCE_WAIT_MS)) {
            nt_log_error(NATS_MOD, "service handlers still running name=%s; leaking", svc->name);
            return false;
        }
    }
    svc_free(svc);
    return true;
}

static nt_status svc_check_def(const nt_service_def *def)
{
    if (def == NULL || !svc_name_valid(def->name) || !svc_version_valid(def->version))
        return NT_EINVAL;
    if (def->nroutes > 0 && def->routes == NULL)
        return NT_EINVAL;
    if (def->concurrency > 64)
        return NT_EINVAL;
    for (size_t i = 0; i < def->nroutes; i++) {
        const nt_route *r = &def->routes[i];
        if (r->name == NULL || r->name[0] == '\0' || r->subject == NULL || r->subject[0] == '\0' ||
            r->handler == NULL || r->concurrency > NT_ROUTE_CONCURRENCY_MAX)
            return NT_EINVAL;
    }
    return NT_OK;
}

nt_status nt_service_start(nt_nats *nc, const nt_service_def *def, nt_service **out)
{
    NT_ASSERT(nc != NULL && out != NULL);
    nt_status st = svc_check_def(def);
    if (st != NT_OK) {
        nt_log_error(NATS_MOD, "invalid service definition name=%s",
                     def != NULL && def->name != NULL ? def->name : "(null)");
        return st;
    }
    natsConnection *conn = nc->conn;
    nt_service *svc = calloc(1, sizeof(*svc));
    NT_ASSERT(svc != NULL);
    NT_ASSERT(pthread_mutex_init(&svc->mu, NULL) == 0);
    cond_init_mono(&svc->cond);
    svc->nc = nc;
    svc->name = strdup(def->name);
    svc->version = strdup(def->version);
    svc->description = strdup(def->description != NULL ? def->description : "");
    NT_ASSERT(svc->name != NULL && svc->version != NULL && svc->description != NULL);
    svc->routes = def->routes;
    svc->nroutes = def->nroutes;
    svc->ctx = def->ctx;
    nt_micro_new_id(svc->id);
    svc->started_ms = nt_clock_now_ms();
    int64_t maxp = natsConnection_GetMaxPayload(conn);
    svc->max_reply = maxp > 0 ? (size_t)maxp : 1024u * 1024u;

    svc->eps = calloc(svc->nroutes + 1, sizeof(*svc->eps));
    svc->rctx = calloc(svc->nroutes + 1, sizeof(*svc->rctx));
    unsigned per_route = def->concurrency > 0 ? def->concurrency : 1;
    size_t nsubs = 3 * VERB__COUNT;
    for (size_t i = 0; i < svc->nroutes; i++)
        nsubs += svc->routes[i].concurrency > 0 ? svc->routes[i].concurrency : per_route;
    svc->subs = calloc(nsubs, sizeof(*svc->subs));
    NT_ASSERT(svc->eps != NULL && svc->rctx != NULL && svc->subs != NULL);

    natsStatus s = NATS_OK;
    for (size_t i = 0; i < svc->nroutes && s == NATS_OK; i++) {
        svc->eps[i].name = svc->routes[i].name;
        svc->eps[i].subject = svc->routes[i].subject;
        svc->eps[i].queue_group = svc->name;
        svc->rctx[i].svc = svc;
        svc->rctx[i].idx = i;
        unsigned subs_here =
            svc->routes[i].concurrency > 0 ? svc->routes[i].concurrency : per_route;
        for (unsigned k = 0; k < subs_here && s == NATS_OK; k++) {
            natsSubscription *sub = NULL;
            s = natsConnection_QueueSubscribe(&sub, conn, svc->routes[i].subject, svc->name,
                                              svc_on_route, &svc->rctx[i]);
            if (s == NATS_OK)
                svc_add_sub(svc, sub);
            else
                nt_log_error(NATS_MOD, "subscribe failed subject=%s err=%s", svc->routes[i].subject,
                             natsStatus_GetText(s));
        }
    }
    for (int v = 0; v < VERB__COUNT && s == NATS_OK; v++) {
        svc->vctx[v].svc = svc;
        svc->vctx[v].idx = (size_t)v;
        for (int form = 0; form < 3 && s == NATS_OK; form++) {
            char subj[256];
            int w = form == 0 ? snprintf(subj, sizeof(subj), "$SRV.%s", verb_names[v])
                    : form == 1
                        ? snprintf(subj, sizeof(subj), "$SRV.%s.%s", verb_names[v], svc->name)
                        : snprintf(subj, sizeof(subj), "$SRV.%s.%s.%s", verb_names[v], svc->name,
                                   svc->id);
            NT_ASSERT(w > 0 && (size_t)w < sizeof(subj));
            natsSubscription *sub = NULL;
            s = natsConnection_Subscribe(&sub, conn, subj, svc_on_discovery, &svc->vctx[v]);
            if (s == NATS_OK)
                svc_add_sub(svc, sub);
            else
                nt_log_error(NATS_MOD, "subscribe failed subject=%s err=%s", subj,
                             natsStatus_GetText(s));
        }
    }
    if (s != NATS_OK) {
        st = nt_nats_status(s);
        goto out;
    }
    /* Make sure the server knows the subscriptions before callers send requests.
     * While disconnected they are sent again on reconnect, so this is not fatal. */
    s = natsConnection_FlushTimeout(conn, 2000);
    if (s != NATS_OK)
        nt_log_warn(NATS_MOD, "service flush failed name=%s err=%s", svc->name,
                    natsStatus_GetText(s));
    nt_log_info(NATS_MOD, "service started name=%s id=%s version=%s endpoints=%zu", svc->name,
                svc->id, svc->version, svc->nroutes);
out:
    if (st != NT_OK) {
        svc_teardown(svc, 0);
        return st;
    }
    *out = svc;
    return NT_OK;
}

const char *nt_service_id(const nt_service *svc)
{
    NT_ASSERT(svc != NULL);
    return svc->id;
}

bool nt_service_stop(nt_service *svc, int timeout_ms)
{
    if (svc == NULL)
        return true;
    nt_log_info(NATS_MOD, "service stopping name=%s id=%s", svc->name, svc->id);
    return svc_teardown(svc, timeout_ms > 0 ? timeout_ms : 1);
}

/* ---- Requester ------------------------------------------------------------------- */

typedef struct rq_entry {
    uint64_t id;
    int64_t deadline_ms; /* monotonic */
    nt_response_cb cb;
    void *ctx;
    struct rq_entry *hnext;       /* hash chain */
    struct rq_entry *prev, *next; /* deadline order */
} rq_entry;

struct nt_requester {
    nt_nats *nc;
    char *prefix;
    natsSubscription *sub;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started;
    bool stop;
    bool sub_done;
    uint64_t next_id;
    rq_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    rq_entry *head, *tail;
};

static void rq_grow_locked(nt_requester *rq)
{
    size_t nb = rq->nbuckets * 2;
    rq_entry **b = calloc(nb, sizeof(*b));
    NT_ASSERT(b != NULL);
    for (size_t i = 0; i < rq->nbuckets; i++) {
        rq_entry *e = rq->buckets[i];
        while (e != NULL) {
            rq_entry *nx = e->hnext;
            size_t h = (size_t)(e->id & (nb - 1));
            e->hnext = b[h];
            b[h] = e;
            e = nx;
        }
    }
    free(rq->buckets);
    rq->buckets = b;
    rq->nbuckets = nb;
}

/* Inserts e; returns true when it became the earliest deadline. */
static bool rq_insert_locked(nt_requester *rq, rq_entry *e)
{
    if (rq->count >= rq->nbuckets)
        rq_grow_locked(rq);
    size_t h = (size_t)(e->id & (rq->nbuckets - 1));
    e->hnext = rq->buckets[h];
    rq->buckets[h] = e;
    rq->count++;
    /* Requests mostly share one timeout, so the right place is near the tail. */
    rq_entry *p = rq->tail;
    while (p != NULL && p->deadline_ms > e->deadline_ms)
        p = p->prev;
    e->prev = p;
    e->next = p != NULL ? p->next : rq->head;
    if (e->next != NULL)
        e->next->prev = e;
    else
        rq->tail = e;
    if (p != NULL)
        p->next = e;
    else
        rq->head = e;
    return rq->head == e;
}

/* Removes and returns the entry with this id, or NULL. */
static rq_entry *rq_remove_locked(nt_requester *rq, uint64_t id)
{
    rq_entry **pp = &rq->buckets[id & (rq->nbuckets - 1)];
    while (*pp != NULL && (*pp)->id != id)
        pp = &(*pp)->hnext;
    rq_entry *e = *pp;
    if (e == NULL)
        return NULL;
    *pp = e->hnext;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        rq->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        rq->tail = e->prev;
    rq->count--;
    e->hnext = e->prev = e->next = NULL;
    return e;
}

static void *rq_timer_main(void *arg)
{
    nt_requester *rq = arg;
    pthread_mutex_lock(&rq->mu);
    while (!rq->stop) {
        if (rq->head == NULL) {
            pthread_cond_wait(&rq->cond, &rq->mu);
            continue;
        }
        int64_t now = nt_clock_mono_ms();
        if (rq->head->deadline_ms > now) {
            cond_wait_until(&rq->cond, &rq->mu, rq->head->deadline_ms);
            continue;
        }
        rq_entry *expired = NULL, *last = NULL;
        while (rq->head != NULL && rq->head->deadline_ms <= now) {
            rq_entry *e = rq_remove_locked(rq, rq->head->id);
            if (last != NULL)
                last->next = e;
            else
                expired = e;
            last = e;
        }
        pthread_mutex_unlock(&rq->mu);
        while (expired != NULL) {
            rq_entry *nx = expired->next;
            expired->cb(expired->ctx, NT_ETIMEOUT, NULL);
            free(expired);
            expired = nx;
        }
        pthread_mutex_lock(&rq->mu);
    }
    pthread_mutex_unlock(&rq->mu);
    /* Callbacks may have used nats.c on this thread. */
    nats_ReleaseThreadMemory();
    return NULL;
}

static void rq_on_msg(natsConnection *conn, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)conn;
    (void)sub;
    nt_requester *rq = closure;
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subj, '.');
    rq_entry *e = NULL;
    if (dot != NULL && dot[1] >= '0' && dot[1] <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long id = strtoull(dot + 1, &end, 10);
        if (errno == 0 && *end == '\0') {
            pthread_mutex_lock(&rq->mu);
            e = rq_remove_locked(rq, (uint64_t)id);
            pthread_mutex_unlock(&rq->mu);
        }
    }
    if (e != NULL) {
        if (natsMsg_IsNoResponders(msg)) {
            e->cb(e->ctx, NT_EUNAVAIL, NULL);
        } else {
            nt_response r;
            response_read(msg, &r);
            e->cb(e->ctx, NT_OK, &r);
        }
        free(e);
    }
    natsMsg_Destroy(msg);
}

static void rq_on_sub_done(void *closure)
{
    nt_requester *rq = closure;
    pthread_mutex_lock(&rq->mu);
    rq->sub_done = true;
    pthread_cond_broadcast(&rq->cond);
    pthread_mutex_unlock(&rq->mu);
}

nt_status nt_requester_create(nt_nats *nc, nt_requester **out)
{
    NT_ASSERT(nc != NULL && out != NULL);
    nt_status st = NT_OK;
    natsInbox *inbox = NULL;
    char *wild = NULL;
    nt_requester *rq = calloc(1, sizeof(*rq));
    NT_ASSERT(rq != NULL);
    NT_ASSERT(pthread_mutex_init(&rq->mu, NULL) == 0);
    cond_init_mono(&rq->cond);
    rq->nc = nc;
    rq->nbuckets = RQ_BUCKETS_MIN;
    rq->buckets = calloc(rq->nbuckets, sizeof(*rq->buckets));
    NT_ASSERT(rq->buckets != NULL);

    natsStatus s = natsInbox_Create(&inbox);
    if (s != NATS_OK) {
        st = nt_nats_status(s);
        goto out;
    }
    rq->prefix = strdup(inbox);
    NT_ASSERT(rq->prefix != NULL);
    size_t wl = strlen(rq->prefix) + 3;
    wild = malloc(wl);
    NT_ASSERT(wild != NULL);
    snprintf(wild, wl, "%s.*", rq->prefix);
    s = natsConnection_Subscribe(&rq->sub, nc->conn, wild, rq_on_msg, rq);
    if (s == NATS_OK) {
        s = natsSubscription_SetOnCompleteCB(rq->sub, rq_on_sub_done, rq);
        if (s != NATS_OK) {
            /* Closed already (the connection went away); nothing was delivered to it. */
            natsSubscription_Destroy(rq->sub);
            rq->sub = NULL;
        }
    }
    if (s != NATS_OK) {
        nt_log_error(NATS_MOD, "requester subscribe failed err=%s", natsStatus_GetText(s));
        st = nt_nats_status(s);
        goto out;
    }
    NT_ASSERT(pthread_create(&rq->thread, NULL, rq_timer_main, rq) == 0);
    rq->thread_started = true;
out:
    natsInbox_Destroy(inbox);
    free(wild);
    if (st != NT_OK) {
        nt_requester_destroy(rq);
        return st;
    }
    *out = rq;
    return NT_OK;
}

nt_status nt_requester_send(nt_requester *rq, const char *subject, const char *user,
                            const char *request_id, const void *data, size_t len, int timeout_ms,
                            nt_response_cb cb, void *ctx, uint64_t *id_out)
{
    NT_ASSERT(rq != NULL && cb != NULL);
    nt_status st = request_check(subject, user, request_id, len);
    if (st != NT_OK)
        return st;
    if (timeout_ms <= 0)
        return NT_EINVAL;
    rq_entry *e = calloc(1, sizeof(*e));
    NT_ASSERT(e != NULL);
    e->cb = cb;
    e->ctx = ctx;
    e->deadline_ms = nt_clock_mono_ms() + timeout_ms;

    /* Registered before publishing: the reply may come back before we return. */
    pthread_mutex_lock(&rq->mu);
    if (rq->stop) {
        pthread_mutex_unlock(&rq->mu);
        free(e);
        return NT_EUNAVAIL;
    }
    uint64_t id = ++rq->next_id;
    e->id = id;
    if (rq_insert_locked(rq, e))
        pthread_cond_broadcast(&rq->cond);
    pthread_mutex_unlock(&rq->mu);
    /* From here e belongs to whoever removes it from the table. */

    char reply[128];
    int w = snprintf(reply, sizeof(reply), "%s.%" PRIu64, rq->prefix, id);
    NT_ASSERT(w > 0 && (size_t)w < sizeof(reply));
    natsMsg *m = NULL;
    natsStatus s = request_msg(&m, subject, reply, user, request_id, data, len);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(rq->nc->conn, m);
    natsMsg_Destroy(m);
    if (s != NATS_OK) {
        pthread_mutex_lock(&rq->mu);
        rq_entry *mine = rq_remove_locked(rq, id);
        pthread_mutex_unlock(&rq->mu);
        if (mine != NULL) {
            free(mine);
            return nt_nats_status(s);
        }
        /* Its deadline passed meanwhile and cb has run: that counts as sent. */
    }
    if (id_out != NULL)
        *id_out = id;
    return NT_OK;
}

bool nt_requester_cancel(nt_requester *rq, uint64_t id)
{
    NT_ASSERT(rq != NULL);
    pthread_mutex_lock(&rq->mu);
    rq_entry *e = rq_remove_locked(rq, id);
    pthread_mutex_unlock(&rq->mu);
    free(e);
    return e != NULL;
}

void nt_requester_destroy(nt_requester *rq)
{
    if (rq == NULL)
        return;
    pthread_mutex_lock(&rq->mu);
    rq->stop = true;
    pthread_cond_broadcast(&rq->cond);
    pthread_mutex_unlock(&rq->mu);

    /* Stop reply delivery first so that no reply callback runs after this. */
    bool sub_done = true;
    if (rq->sub != NULL) {
        natsSubscription_Unsubscribe(rq->sub);
        int64_t deadline = nt_clock_mono_ms() + RQ_SUB_WAIT_MS;
        pthread_mutex_lock(&rq->mu);
        while (!rq->sub_done && nt_clock_mono_ms() < deadline)
            cond_wait_until(&rq->cond, &rq->mu, deadline);
        sub_done = rq->sub_done;
        pthread_mutex_unlock(&rq->mu);
    }
    if (rq->thread_started)
        pthread_join(rq->thread, NULL);

    pthread_mutex_lock(&rq->mu);
    rq_entry *e = rq->head;
    rq->head = rq->tail = NULL;
    for (size_t i = 0; i < rq->nbuckets; i++)
        rq->buckets[i] = NULL;
    rq->count = 0;
    pthread_mutex_unlock(&rq->mu);
    while (e != NULL) {
        rq_entry *nx = e->next;
        e->cb(e->ctx, NT_EUNAVAIL, NULL);
        free(e);
        e = nx;
    }
    if (!sub_done) {
        /* A reply callback is stuck inside rq: keep the memory it uses. */
        nt_log_error(NATS_MOD, "requester reply callback still running; leaking");
        return;
    }
    natsSubscription_Destroy(rq->sub);
    free(rq->buckets);
    free(rq->prefix);
    pthread_cond_destroy(&rq->cond);
    pthread_mutex_destroy(&rq->mu);
    free(rq);
}
