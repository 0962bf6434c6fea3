/* The presence service's threads. The workers (PRESENCE_WORKERS of them) do
 * everything that waits on the network: compare-and-set of presence:{user}
 * in KV, paging the user's rooms with chat.rooms.list, publishing
 * presence_update and the claimed presence_diffs, and the periodic refresh of
 * online users' keys. The sweeper removes silent edges every second, forgets
 * idle users, ends the warm-up and handles gaps. None of them holds the
 * state's mutex during a network call. */
#include "presence.h"

#include "nt_clock.h"
#include "nt_id.h"
#include "nt_log.h"
#include "presence_map.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOD              "presence"
#define CAS_TRIES        5
#define ROOMS_TIMEOUT_MS 2000
#define SWEEP_EVERY_MS   1000

/* ---- the worker ---- */

/* What waits for one user: the latest wanted state (a transition), or a
 * refresh of the key. One per user, so memory is bounded by the users. */
typedef struct uent {
    struct uent *next; /* in the queue while queued */
    presence_transition t;
    bool refresh; /* t asks for a refresh, not a transition */
    bool queued;  /* in the queue */
    bool busy;    /* a thread handles it: not queued again until it is done */
    bool dirty;   /* t changed while busy: queue it again after */
} uent;

/* The diffs of one claim, from one push: claimed once, published together. */
typedef struct ditem {
    struct ditem *next;
    presence_leave *v; /* json owned */
    size_t n;
} ditem;

struct presence_worker {
    nt_nats *nc;
    nt_kv *kv;
    presence_ctx *ctx;
    int64_t refresh_ms;
    pthread_t threads[PRESENCE_WORKERS];
    size_t nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    pmap users; /* user id → uent */
    uent *uhead, *utail;
    ditem *dhead, *dtail;
    int64_t next_refresh;
    /* The value this instance writes into its claims: unique, so a claim
     * another instance created is never mistaken for ours (nt_kv_update
     * takes an identical stored value as its own write). */
    char claim_value[NT_ID_LEN];
};

static void u_enqueue(presence_worker *w, uent *e)
{
    e->next = NULL;
    e->queued = true;
    if (w->utail != NULL)
        w->utail->next = e;
    else
        w->uhead = e;
    w->utail = e;
}

static uent *u_pop(presence_worker *w)
{
    uent *e = w->uhead;
    if (e != NULL) {
        w->uhead = e->next;
        if (w->uhead == NULL)
            w->utail = NULL;
        e->queued = false;
    }
    return e;
}

static void ditem_free(ditem *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].json);
    free(d->v);
    free(d);
}

/* Sets what user t->user_id waits for (w->mu held): a transition replaces
 * whatever waited; a refresh only fills an empty slot. */
static void u_want(presence_worker *w, const presence_transition *t, bool refresh)
{
    uent *e = pmap_get(&w->users, t->user_id);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        NT_ASSERT(e != NULL);
        e->t = *t;
        e->refresh = refresh;
        pmap_put(&w->users, t->user_id, e);
        u_enqueue(w, e);
        return;
    }
    if (refresh)
        return;
    e->t = *t;
    e->refresh = false;
    if (e->busy)
        e->dirty = true;
    else if (!e->queued)
        u_enqueue(w, e);
}

static int leave_cmp(const void *a, const void *b)
{
    return strcmp(((const presence_leave *)a)->claim, ((const presence_leave *)b)->claim);
}

void presence_worker_push(void *arg, presence_out *out)
{
    presence_worker *w = arg;
    /* One item per claim: a second item of the same claim would lose it to
     * the first and never be published, so the diffs are grouped by claim
     * whatever order they came in. */
    if (out->nleaves > 1)
        qsort(out->leaves, out->nleaves, sizeof(*out->leaves), leave_cmp);
    pthread_mutex_lock(&w->mu);
    bool stopped = w->stop;
    size_t i = 0;
    while (i < out->nleaves && !stopped) {
        size_t k = i;
        while (k < out->nleaves && strcmp(out->leaves[k].claim, out->leaves[i].claim) == 0)
            k++;
        ditem *d = calloc(1, sizeof(*d));
        NT_ASSERT(d != NULL);
        d->v = calloc(k - i, sizeof(*d->v));
        NT_ASSERT(d->v != NULL);
        for (size_t m = i; m < k; m++) {
            d->v[d->n++] = out->leaves[m];
            out->leaves[m].json = NULL;
        }
        if (w->dtail != NULL)
            w->dtail->next = d;
        else
            w->dhead = d;
        w->dtail = d;
        i = k;
    }
    for (i = 0; i < out->ntrans && !stopped; i++)
        u_want(w, &out->trans[i], false);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    presence_out_free(out);
}

/* Publishes chat.room.<r>.presence_update to every room of the user, read
 * page by page from rooms as the user. A failed page (rooms slow or absent:
 * ROOMS_TIMEOUT_MS) ends the listing, so one user never holds a worker for
 * more than that per page read. */
static void publish_update(presence_worker *w, const presence_transition *t)
{
    char *json = presence_update_json(t->user_id, t->online, t->last_seen);
    char **rooms = NULL;
    size_t nrooms = 0;
    char *cursor = NULL;
    for (int page = 0; page < PRESENCE_ROOMS_PAGES; page++) {
        char rid[NT_ID_LEN];
        nt_id_new(rid);
        char *body = presence_rooms_list_body(cursor);
        nt_response r = {0};
        nt_status st = nt_nats_request(w->nc, "chat.rooms.list", t->user_id, rid, body,
                                       strlen(body), ROOMS_TIMEOUT_MS, &r);
        free(body);
        free(cursor);
        cursor = NULL;
        if (st == NT_OK && r.http == 200)
            st = presence_rooms_page_parse(r.data, r.len, &rooms, &nrooms, &cursor);
        else if (st == NT_OK)
            st = nt_status_from_http(r.http);
        nt_response_free(&r);
        if (st != NT_OK) {
            nt_log_warn(MOD, "rooms list failed user=%s err=\"%s\"", t->user_id, nt_status_str(st));
            break;
        }
        if (cursor == NULL)
            break;
    }
    free(cursor);
    for (size_t i = 0; i < nrooms; i++) {
        char subject[PRESENCE_ID_MAX + 64];
        snprintf(subject, sizeof(subject), "chat.room.%s.presence_update", rooms[i]);
        if (nt_nats_publish(w->nc, subject, json, strlen(json)) != NT_OK)
            nt_log_warn(MOD, "publish failed subject=%s", subject);
    }
    nt_log_info(MOD, "presence_update user=%s online=%s rooms=%zu", t->user_id,
                t->online ? "true" : "false", nrooms);
    presence_ids_free(rooms, nrooms);
    free(json);
}

/* The KV key of a user, false for an id that cannot be a KV key (the edge
 * takes any printable JWT sub, "auth0|123"; KV keys are [A-Za-z0-9_-]). */
static bool user_key(const char *user, char *key, size_t keylen)
{
    nt_kv_class cls;
    char bucket_key[PRESENCE_ID_MAX + 16];
    int n = snprintf(key, keylen, "presence:%s", user);
    return n > 0 && (size_t)n < keylen &&
           nt_kv_map_key(key, &cls, bucket_key, sizeof(bucket_key)) == NT_OK;
}

/* Makes presence:{user} say t->online, at the revision read, and publishes
 * the change when this instance made it. When KV is down the event goes out
 * anyway: a duplicate beats a lost update. */
static void settle(presence_worker *w, const presence_transition *t)
{
    char key[PRESENCE_ID_MAX + 16];
    if (!user_key(t->user_id, key, sizeof(key))) {
        /* No KV key to decide who publishes: every instance does, so with
         * several instances such a user's presence_update comes once per
         * instance (clients take the last one; the state is the same). */
        publish_update(w, t);
        return;
    }
    char *value = presence_kv_value(t->online, t->last_seen);
    bool publish = false;
    for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
        char *cur = NULL;
        size_t len = 0;
        uint64_t rev = 0;
        bool same = false;
        nt_status st = nt_kv_get_rev(w->kv, key, &cur, &len, &rev);
        if (st == NT_OK) {
            bool online = false;
            char seen[PRESENCE_TIME_LEN];
            same = presence_kv_value_parse(cur, len, &online, seen) == NT_OK && online == t->online;
        } else if (st == NT_ENOTFOUND) {
            rev = 0;
        }
        free(cur);
        if (st != NT_OK && st != NT_ENOTFOUND) {
            publish = true;
            nt_log_warn(MOD, "kv read failed user=%s err=\"%s\"", t->user_id, nt_status_str(st));
            break;
        }
        /* Another instance made this change already. */
        if (same)
            break;
        st = nt_kv_update(w->kv, key, value, strlen(value), rev);
        if (st == NT_OK) {
            publish = true;
            break;
        }
        if (st != NT_ECONFLICT) {
            publish = true;
            nt_log_warn(MOD, "kv write failed user=%s err=\"%s\"", t->user_id, nt_status_str(st));
            break;
        }
        if (attempt + 1 == CAS_TRIES)
            nt_log_warn(MOD, "kv kept changing user=%s: gave up", t->user_id);
    }
    free(value);
    if (publish)
        publish_update(w, t);
}

static void do_transition(presence_worker *w, const presence_transition *t)
{
    /* A change the state has since undone is skipped: the change back is
     * what the user waits for now, or it was coalesced away. */
    pthread_mutex_lock(&w->ctx->mu);
    bool online_now = presence_state_conns(w->ctx->state, t->user_id) > 0;
    pthread_mutex_unlock(&w->ctx->mu);
    if (online_now != t->online)
        return;
    settle(w, t);
}

/* Extends presence:{user} of a user still online here: only a key that says
 * online now is rewritten (online, last_seen = now, at its revision). A key
 * that says offline or is missing was decided elsewhere (another instance,
 * the warm-up, the TTL): a refresh never writes online over it and never
 * publishes; the next transition settles it. */
static void refresh_one(presence_worker *w, const char *user)
{
    pthread_mutex_lock(&w->ctx->mu);
    bool online = presence_state_conns(w->ctx->state, user) > 0;
    pthread_mutex_unlock(&w->ctx->mu);
    char key[PRESENCE_ID_MAX + 16];
    if (!online || !user_key(user, key, sizeof(key)))
        return;
    char now[PRESENCE_TIME_LEN];
    presence_now(now);
    char *value = presence_kv_value(true, now);
    for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
        char *cur = NULL;
        size_t len = 0;
        uint64_t rev = 0;
        bool says_online = false;
        char seen[PRESENCE_TIME_LEN];
        nt_status st = nt_kv_get_rev(w->kv, key, &cur, &len, &rev);
        if (st == NT_OK && presence_kv_value_parse(cur, len, &says_online, seen) != NT_OK)
            says_online = false;
        free(cur);
        if (st != NT_OK || !says_online) {
            if (st == NT_OK || st == NT_ENOTFOUND)
                nt_log_debug(MOD, "refresh skipped user=%s: key not online", user);
            break;
        }
        st = nt_kv_update(w->kv, key, value, strlen(value), rev);
        if (st != NT_ECONFLICT) {
            if (st != NT_OK)
                nt_log_warn(MOD, "kv refresh failed user=%s err=\"%s\"", user, nt_status_str(st));
            break;
        }
    }
    free(value);
}

static void do_diffs(presence_worker *w, const ditem *d)
{
    char key[PRESENCE_CLAIM_MAX + 32];
    snprintf(key, sizeof(key), "presence-claim:%s", d->v[0].claim);
    nt_status st = nt_kv_update(w->kv, key, w->claim_value, strlen(w->claim_value), 0);
    if (st == NT_ECONFLICT)
        return;
    /* Without KV nobody can win: publish (clients drop duplicates by phx_ref). */
    if (st != NT_OK)
        nt_log_warn(MOD, "claim failed claim=%s err=\"%s\": publishing anyway", d->v[0].claim,
                    nt_status_str(st));
    for (size_t i = 0; i < d->n; i++) {
        char subject[PRESENCE_ID_MAX + 64];
        snprintf(subject, sizeof(subject), "chat.room.%s.presence_diff", d->v[i].room_id);
        if (nt_nats_publish(w->nc, subject, d->v[i].json, d->v[i].len) != NT_OK)
            nt_log_warn(MOD, "publish failed subject=%s", subject);
    }
}

static void abs_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Queues a refresh for every user online now that waits for nothing else
 * (w->mu held; dropped around the state's lock). */
static void start_refresh_round(presence_worker *w)
{
    pthread_mutex_unlock(&w->mu);
    size_t n = 0;
    pthread_mutex_lock(&w->ctx->mu);
    char **users = presence_state_online_users(w->ctx->state, &n);
    pthread_mutex_unlock(&w->ctx->mu);
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n && !w->stop; i++) {
        presence_transition t = {.online = true};
        snprintf(t.user_id, sizeof(t.user_id), "%s", users[i]);
        u_want(w, &t, true);
    }
    presence_ids_free(users, n);
    pthread_cond_broadcast(&w->cv);
}

static void *worker_main(void *arg)
{
    presence_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        /* Diffs first (they are cheap and clients wait for them), then the
         * users in the order they first asked. */
        ditem *d = w->dhead;
        if (d != NULL) {
            w->dhead = d->next;
            if (w->dhead == NULL)
                w->dtail = NULL;
            pthread_mutex_unlock(&w->mu);
            do_diffs(w, d);
            ditem_free(d);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        uent *e = u_pop(w);
        if (e != NULL) {
            e->busy = true;
            e->dirty = false;
            presence_transition t = e->t;
            bool refresh = e->refresh;
            pthread_mutex_unlock(&w->mu);
            if (refresh)
                refresh_one(w, t.user_id);
            else
                do_transition(w, &t);
            pthread_mutex_lock(&w->mu);
            e->busy = false;
            if (e->dirty) {
                u_enqueue(w, e);
            } else {
                pmap_del(&w->users, t.user_id);
                free(e);
            }
            continue;
        }
        int64_t now = nt_clock_mono_ms();
        if (now >= w->next_refresh) {
            w->next_refresh = now + w->refresh_ms;
            start_refresh_round(w);
            continue;
        }
        struct timespec ts;
        abs_deadline(&ts, w->next_refresh - now);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void worker_free(presence_worker *w)
{
    while (w->dhead != NULL) {
        ditem *d = w->dhead;
        w->dhead = d->next;
        ditem_free(d);
    }
    pmap_free(&w->users, free);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

nt_status presence_worker_start(nt_nats *nc, nt_kv *kv, presence_ctx *ctx, int64_t refresh_ms,
                                presence_worker **out)
{
    presence_worker *w = calloc(1, sizeof(*w));
    NT_ASSERT(w != NULL);
    w->nc = nc;
    w->kv = kv;
    w->ctx = ctx;
    w->refresh_ms = refresh_ms;
    w->next_refresh = nt_clock_mono_ms() + refresh_ms;
    nt_id_new(w->claim_value);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    for (size_t i = 0; i < PRESENCE_WORKERS; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            presence_worker_stop(w);
            return NT_EINTERNAL;
        }
        w->nthreads++;
    }
    *out = w;
    return NT_OK;
}

void presence_worker_stop(presence_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    worker_free(w);
}

/* ---- the sweeper ---- */

struct presence_sweeper {
    presence_ctx *ctx;
    presence_worker *worker;
    nt_nats *nc;
    int64_t timeout_ms, warmup_ms, warm_end, last_tick;
    bool warmed;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* One tick: the gap, the sweep (or, when this instance could not hear the
 * edges, touching them instead) and the warm-up. */
static void sweep_tick(presence_sweeper *s)
{
    presence_out out = {0};
    char now[PRESENCE_TIME_LEN];
    presence_now(now);
    int64_t mono = nt_clock_mono_ms();
    int64_t late = mono - s->last_tick - SWEEP_EVERY_MS;
    s->last_tick = mono;
    bool gap = atomic_exchange(&s->ctx->gap, false);
    bool connected = s->nc == NULL || nt_nats_is_connected(s->nc);
    bool stalled = late > s->timeout_ms;
    if (gap) {
        s->warmed = false;
        s->warm_end = mono + s->warmup_ms;
    }
    bool end_warmup = !s->warmed && mono >= s->warm_end;
    pthread_mutex_lock(&s->ctx->mu);
    if (gap)
        presence_state_warmup_restart(s->ctx->state);
    if (gap || !connected || stalled)
        presence_state_touch_all(s->ctx->state, mono);
    else
        presence_state_sweep(s->ctx->state, mono, s->timeout_ms, now, &out);
    if (end_warmup)
        presence_state_warmup_end(s->ctx->state, now, &out);
    pthread_mutex_unlock(&s->ctx->mu);
    if (stalled)
        nt_log_warn(MOD, "sweep late late_ms=%lld: edges count as heard", (long long)late);
    if (gap && s->nc != NULL && nt_nats_publish(s->nc, "chat.presence.resync", "{}", 2) != NT_OK)
        nt_log_warn(MOD, "resync publish failed: waiting for the edges' periodic snapshots");
    if (end_warmup) {
        s->warmed = true;
        nt_log_info(MOD, "warm-up over offline=%zu", out.ntrans);
    }
    presence_worker_push(s->worker, &out);
}

static void *sweeper_main(void *arg)
{
    presence_sweeper *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        abs_deadline(&ts, SWEEP_EVERY_MS);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
            ;
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->mu);
        sweep_tick(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

nt_status presence_sweeper_start(presence_ctx *ctx, presence_worker *w, nt_nats *nc,
                                 int64_t timeout_ms, int64_t warmup_ms, presence_sweeper **out)
{
    presence_sweeper *s = calloc(1, sizeof(*s));
    NT_ASSERT(s != NULL);
    s->ctx = ctx;
    s->worker = w;
    s->nc = nc;
    s->timeout_ms = timeout_ms;
    s->warmup_ms = warmup_ms;
    s->last_tick = nt_clock_mono_ms();
    s->warm_end = s->last_tick + warmup_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, sweeper_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NT_EINTERNAL;
    }
    *out = s;
    return NT_OK;
}

void presence_sweeper_stop(presence_sweeper *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
