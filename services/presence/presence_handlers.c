/* The presence service's NATS entry points: chat.presence.get and
 * chat.presence.online read the state under its mutex, and each
 * chat.presence.report is applied under it. All three run on the one
 * delivery thread of the connection, so a get sees every report delivered
 * before it. Nothing here waits on the network. */
#include "presence.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "presence"

void presence_now(char out[PRESENCE_TIME_LEN])
{
    char iso[NT_ISO8601_LEN];
    nt_clock_iso8601(nt_clock_now_ms(), iso);
    int n = snprintf(out, PRESENCE_TIME_LEN, "%s", iso);
    NT_ASSERT(n > 0 && n < PRESENCE_TIME_LEN);
}

void presence_on_gap(void *arg, const char *why)
{
    presence_ctx *ctx = arg;
    atomic_store(&ctx->gap, true);
    nt_log_warn(MOD, "gap why=%s: resync and warm-up again", why);
}

/* Too many edges: counted, and warned at most once a minute. */
static void too_many_edges(presence_ctx *ctx, const char *edge)
{
    unsigned long long n = atomic_fetch_add(&ctx->dropped_reports, 1) + 1;
    int64_t now = nt_clock_mono_ms();
    int64_t last = atomic_load(&ctx->edges_warned_at);
    if ((last == 0 || now - last >= 60000) &&
        atomic_compare_exchange_strong(&ctx->edges_warned_at, &last, now))
        nt_log_warn(MOD, "too many edges max=%d edge=%s: report dropped dropped_reports=%llu",
                    PRESENCE_EDGES_MAX, edge, n);
}

void presence_on_report(presence_ctx *ctx, const char *data, size_t len)
{
    char err[NT_ERRMSG_LEN];
    presence_report r;
    presence_out out = {0};
    nt_status st = presence_report_parse(data, len, &r, err, sizeof(err));
    int64_t mono = nt_clock_mono_ms();
    if (st != NT_OK) {
        unsigned long long n = atomic_fetch_add(&ctx->bad_reports, 1) + 1;
        nt_log_error(MOD, "bad report err=\"%s\" len=%zu bad_reports=%llu", err, len, n);
        /* The edge is alive whatever it said: keep it from being declared dead. */
        if (r.head_ok) {
            pthread_mutex_lock(&ctx->mu);
            st = presence_state_touch(ctx->state, r.edge, r.seq, mono);
            pthread_mutex_unlock(&ctx->mu);
            if (st == NT_ETOOBIG)
                too_many_edges(ctx, r.edge);
        }
        return;
    }
    if (r.bad_entries > 0 || r.dropped_joins > 0) {
        atomic_fetch_add(&ctx->bad_entries, r.bad_entries);
        atomic_fetch_add(&ctx->dropped_joins, r.dropped_joins);
        nt_log_warn(MOD, "snapshot entries skipped edge=%s seq=%llu bad=%zu dropped_joins=%zu",
                    r.edge, (unsigned long long)r.seq, r.bad_entries, r.dropped_joins);
    }
    char now[PRESENCE_TIME_LEN];
    presence_now(now);
    pthread_mutex_lock(&ctx->mu);
    st = presence_state_apply(ctx->state, &r, mono, now, &out);
    pthread_mutex_unlock(&ctx->mu);
    if (st == NT_OK) {
        atomic_fetch_add(&ctx->reports, 1);
    } else if (st == NT_ETOOBIG) {
        too_many_edges(ctx, r.edge);
    } else {
        atomic_fetch_add(&ctx->stale_reports, 1);
        nt_log_debug(MOD, "stale report edge=%s seq=%llu", r.edge, (unsigned long long)r.seq);
    }
    if (out.dropped_joins > 0) {
        atomic_fetch_add(&ctx->dropped_joins, out.dropped_joins);
        nt_log_warn(MOD, "joins dropped edge=%s max_per_conn=%d dropped=%zu", r.edge,
                    PRESENCE_CONN_JOINS_MAX, out.dropped_joins);
    }
    if (out.ntrans > 0 || out.nleaves > 0)
        ctx->handoff(ctx->handoff_arg, &out);
    presence_out_free(&out);
    presence_report_free(&r);
}

static nt_status presence_get(void *arg, const nt_request *req, nt_reply *rep)
{
    presence_ctx *ctx = arg;
    char room[PRESENCE_ID_MAX + 1];
    size_t max = PRESENCE_GET_MAX;
    nt_status st = presence_get_body_parse(req->data, req->len, room, &max, rep->message,
                                           sizeof(rep->message));
    if (st != NT_OK)
        return st;
    size_t len = 0;
    char *json = NULL;
    pthread_mutex_lock(&ctx->mu);
    st = presence_state_get_json(ctx->state, room, max, &json, &len);
    pthread_mutex_unlock(&ctx->mu);
    if (st == NT_ETOOBIG) {
        /* The edge sends {} for a crowd. Every join of a crowded room ends
         * here: logged at debug only. */
        snprintf(rep->message, sizeof(rep->message), "room presence too large");
        nt_log_debug(MOD, "room presence too large room=%s max_bytes=%zu", room, max);
        return NT_ETOOBIG;
    }
    if (st != NT_OK)
        return NT_EINTERNAL;
    nt_reply_set(rep, presence_raw_json(json));
    return NT_OK;
}

static nt_status presence_online(void *arg, const nt_request *req, nt_reply *rep)
{
    presence_ctx *ctx = arg;
    char **ids = NULL;
    size_t n = 0;
    nt_status st = presence_online_body_parse(req->data, req->len, &ids, &n, rep->message,
                                              sizeof(rep->message));
    if (st != NT_OK)
        return st;
    char now[PRESENCE_TIME_LEN];
    presence_now(now);
    size_t len = 0;
    char *json = NULL;
    pthread_mutex_lock(&ctx->mu);
    st = presence_state_online_json(ctx->state, ids, n, now, PRESENCE_GET_MAX, &json, &len);
    pthread_mutex_unlock(&ctx->mu);
    presence_ids_free(ids, n);
    if (st != NT_OK)
        return NT_EINTERNAL;
    nt_reply_set(rep, presence_raw_json(json));
    return NT_OK;
}

/* clang-format off */
const nt_route presence_routes[] = {
    {"get",    "chat.presence.get",    presence_get,    PRESENCE_BODY_MAX, true, 0},
    {"online", "chat.presence.online", presence_online, PRESENCE_BODY_MAX, true, 0},
};
/* clang-format on */
const size_t presence_nroutes = sizeof(presence_routes) / sizeof(presence_routes[0]);
