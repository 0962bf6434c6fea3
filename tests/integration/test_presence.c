/* Integration tests of the presence service against the real stack: fake
 * edges publish reports on chat.presence.report (and answer
 * chat.presence.resync with a snapshot), and the tests watch
 * chat.presence.get, the presence_update and presence_diff events and
 * presence:{user} in KV. presence runs with a 2 s edge timeout, a 3 s
 * warm-up and a 1 s refresh so the dead-edge, restart and refresh paths fit
 * in a few seconds. */
#include "flow.h"
#include "harness.h"
#include "nt_clock.h"
#include "nt_id.h"
#include "nt_kv.h"
#include "nt_nats.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS  2000
#define WARMUP_MS   3000
#define BEAT_MS     400
#define ONLINE_AT_1 "2026-01-01T00:00:01.000Z"
#define ONLINE_AT_2 "2026-01-01T00:00:02.000Z"

static const char *const extra[] = {"NATTER_PRESENCE_EDGE_TIMEOUT_MS=2000",
                                    "NATTER_PRESENCE_WARMUP_MS=3000",
                                    "NATTER_PRESENCE_REFRESH_MS=1000", NULL};
static h_stack stack;
static h_user alice, bob;
static char room[64];
static nt_nats *nc;
static nt_kv *kv;

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- events seen on chat.room.*.presence_update / presence_diff ---- */

#define EVENTS_MAX 256
static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char subject[160];
    char data[2048];
    int64_t at;
} events[EVENTS_MAX];
static size_t nevents;
static nt_sub *ev_subs[2];

static void on_event(void *ctx, uint64_t tag, const nt_msg *m)
{
    (void)ctx;
    (void)tag;
    pthread_mutex_lock(&ev_mu);
    if (nevents < EVENTS_MAX) {
        snprintf(events[nevents].subject, sizeof(events[nevents].subject), "%s", m->subject);
        snprintf(events[nevents].data, sizeof(events[nevents].data), "%.*s", (int)m->len, m->data);
        events[nevents].at = nt_clock_mono_ms();
        nevents++;
    }
    pthread_mutex_unlock(&ev_mu);
}

/* How many events on subject kind ("presence_update"/"presence_diff") of
 * room contain needle (and, when online is "true"/"false", that flag). */
static size_t count_events(const char *kind, const char *needle, const char *online)
{
    char subject[160], flag[32] = "";
    snprintf(subject, sizeof(subject), "chat.room.%s.%s", room, kind);
    if (online != NULL)
        snprintf(flag, sizeof(flag), "\"online\":%s", online);
    size_t n = 0;
    pthread_mutex_lock(&ev_mu);
    for (size_t i = 0; i < nevents; i++) {
        if (strcmp(events[i].subject, subject) == 0 && strstr(events[i].data, needle) != NULL &&
            strstr(events[i].data, flag) != NULL)
            n++;
    }
    pthread_mutex_unlock(&ev_mu);
    return n;
}

/* Waits up to ms for count_events to reach want; returns the count. */
static size_t wait_events(const char *kind, const char *needle, const char *online, size_t want,
                          int ms)
{
    int64_t end = nt_clock_mono_ms() + ms;
    size_t n;
    while ((n = count_events(kind, needle, online)) < want && nt_clock_mono_ms() < end)
        msleep(20);
    return n;
}

/* ---- a fake edge ---- */

typedef struct {
    char conn[16], user[128], ref[64], at[32];
    bool joined;
} fe_conn;

typedef struct {
    char id[23];
    nt_nats *nc;
    nt_sub *resync;
    pthread_mutex_t mu;
    uint64_t seq, round;
    fe_conn conns[8];
    size_t nconns;
    pthread_t beat;
    volatile bool beating, stop;
} fake_edge;

static void fe_publish(fake_edge *fe, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fe_publish(fake_edge *fe, const char *fmt, ...)
{
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(body));
    cr_assert_eq(nt_nats_publish(fe->nc, "chat.presence.report", body, (size_t)n), NT_OK);
}

/* Publishes a one-part snapshot of every connection; fe->mu is held. */
static void fe_snapshot_locked(fake_edge *fe)
{
    char conns[3000] = "[";
    size_t len = 1;
    for (size_t i = 0; i < fe->nconns; i++) {
        const fe_conn *c = &fe->conns[i];
        char joins[600] = "";
        if (c->joined)
            snprintf(joins, sizeof(joins),
                     "{\"room_id\":\"%s\",\"meta\":{\"phx_ref\":\"%s\",\"username\":\"%s\","
                     "\"online_at\":\"%s\"}}",
                     room, c->ref, c->user, c->at);
        len += (size_t)snprintf(conns + len, sizeof(conns) - len,
                                "%s{\"conn\":\"%s\",\"user_id\":\"%s\",\"joins\":[%s]}",
                                i > 0 ? "," : "", c->conn, c->user, joins);
    }
    snprintf(conns + len, sizeof(conns) - len, "]");
    fe_publish(fe,
               "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"snapshot\",\"round\":%llu,\"part\":0,"
               "\"parts\":1,\"conns\":%s}",
               fe->id, (unsigned long long)++fe->seq, (unsigned long long)++fe->round, conns);
}

static void fe_on_resync(void *ctx, uint64_t tag, const nt_msg *m)
{
    (void)tag;
    (void)m;
    fake_edge *fe = ctx;
    pthread_mutex_lock(&fe->mu);
    if (fe->beating)
        fe_snapshot_locked(fe);
    pthread_mutex_unlock(&fe->mu);
}

static void *fe_beat(void *arg)
{
    fake_edge *fe = arg;
    while (!fe->stop) {
        pthread_mutex_lock(&fe->mu);
        if (fe->beating)
            fe_snapshot_locked(fe);
        pthread_mutex_unlock(&fe->mu);
        msleep(BEAT_MS);
    }
    return NULL;
}

static void fe_start(fake_edge *fe, char letter)
{
    memset(fe, 0, sizeof(*fe));
    memset(fe->id, letter, 22);
    pthread_mutex_init(&fe->mu, NULL);
    cr_assert_eq(nt_nats_connect(stack.nats_url, "fake-edge", 5000, &fe->nc), NT_OK);
    cr_assert_eq(
        nt_nats_subscribe(fe->nc, "chat.presence.resync", fe_on_resync, fe, 0, &fe->resync), NT_OK);
    fe->beating = true;
    cr_assert_eq(pthread_create(&fe->beat, NULL, fe_beat, fe), 0);
}

static void fe_stop(fake_edge *fe)
{
    fe->stop = true;
    pthread_join(fe->beat, NULL);
    nt_sub_destroy(fe->resync);
    nt_nats_destroy(fe->nc);
}

/* A socket of user opens and joins the room with meta phx_ref "<edge>-<n>". */
static void fe_connect_join(fake_edge *fe, const char *conn, const char *user, const char *at)
{
    pthread_mutex_lock(&fe->mu);
    cr_assert(fe->nconns < 8);
    fe_conn *c = &fe->conns[fe->nconns++];
    memset(c, 0, sizeof(*c));
    snprintf(c->conn, sizeof(c->conn), "%s", conn);
    snprintf(c->user, sizeof(c->user), "%s", user);
    char ref[64];
    snprintf(ref, sizeof(ref), "%s-%s", fe->id, conn);
    memcpy(c->ref, ref, sizeof(c->ref));
    snprintf(c->at, sizeof(c->at), "%s", at);
    fe_publish(
        fe,
        "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"connect\",\"conn\":\"%s\",\"user_id\":\"%s\"}",
        fe->id, (unsigned long long)++fe->seq, conn, user);
    c->joined = true;
    /* A diff published by the edge shares the seq counter: leave a gap. */
    fe->seq++;
    fe_publish(fe,
               "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"join\",\"conn\":\"%s\",\"user_id\":\"%s\","
               "\"room_id\":\"%s\",\"meta\":{\"phx_ref\":\"%s\",\"username\":\"%s\","
               "\"online_at\":\"%s\"}}",
               fe->id, (unsigned long long)++fe->seq, conn, user, room, c->ref, user, at);
    pthread_mutex_unlock(&fe->mu);
}

static void fe_disconnect(fake_edge *fe, const char *conn)
{
    pthread_mutex_lock(&fe->mu);
    for (size_t i = 0; i < fe->nconns; i++) {
        if (strcmp(fe->conns[i].conn, conn) == 0) {
            fe_publish(fe,
                       "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"disconnect\",\"conn\":\"%s\","
                       "\"user_id\":\"%s\"}",
                       fe->id, (unsigned long long)++fe->seq, conn, fe->conns[i].user);
            fe->conns[i] = fe->conns[--fe->nconns];
            break;
        }
    }
    pthread_mutex_unlock(&fe->mu);
}

/* Stops reporting altogether, as an edge killed with SIGKILL. */
static void fe_silence(fake_edge *fe)
{
    pthread_mutex_lock(&fe->mu);
    fe->beating = false;
    pthread_mutex_unlock(&fe->mu);
}

/* Reports again after fe_silence, as an edge that was only cut off. */
static void fe_resume(fake_edge *fe)
{
    pthread_mutex_lock(&fe->mu);
    fe->beating = true;
    pthread_mutex_unlock(&fe->mu);
}

/* ---- the stack ---- */

static void setup_with(const char *const *ex)
{
    h_users_start(&stack, ex, &alice, "alice", &bob, "bob", NULL);
    cJSON *d = h_ok(&stack, "POST", "/api/rooms", alice.tok, "{\"name\":\"presence room\"}");
    snprintf(room, sizeof(room), "%s", h_get_str(d, "id"));
    cJSON_Delete(d);
    char path[256];
    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", room), bob.tok, NULL);
    cJSON_Delete(d);
    cr_assert_eq(nt_nats_connect(stack.nats_url, "presence-test", 5000, &nc), NT_OK);
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    nevents = 0;
    cr_assert_eq(
        nt_nats_subscribe(nc, "chat.room.*.presence_update", on_event, NULL, 0, &ev_subs[0]),
        NT_OK);
    cr_assert_eq(nt_nats_subscribe(nc, "chat.room.*.presence_diff", on_event, NULL, 1, &ev_subs[1]),
                 NT_OK);
}

static void setup(void)
{
    setup_with(extra);
}

static void teardown(void)
{
    nt_sub_destroy(ev_subs[0]);
    nt_sub_destroy(ev_subs[1]);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
    h_users_free(&alice, &bob, NULL);
    h_stop_all();
}

TestSuite(presence, .init = setup, .fini = teardown, .timeout = 60);

/* chat.presence.get for the room; returns data (the caller deletes it). */
static cJSON *get_room(void)
{
    char body[128], rid[NT_ID_LEN];
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\"}", room);
    nt_id_new(rid);
    nt_response r = {0};
    cr_assert_eq(
        nt_nats_request(nc, "chat.presence.get", alice.id, rid, body, strlen(body), 3000, &r),
        NT_OK);
    cr_assert_eq(r.http, 200, "%s", r.data);
    cJSON *j = cJSON_Parse(r.data);
    cr_assert_not_null(j);
    cJSON *d = cJSON_DetachItemFromObject(j, "data");
    cr_assert_not_null(d, "%s", r.data);
    cJSON_Delete(j);
    nt_response_free(&r);
    return d;
}

/* The number of metas of user in the room's presence state. */
static int metas_of(const cJSON *d, const char *user)
{
    const cJSON *p = cJSON_GetObjectItem(d, "presence");
    cr_assert(cJSON_IsObject(p));
    const cJSON *u = cJSON_GetObjectItem(p, user);
    return u == NULL ? 0 : cJSON_GetArraySize(cJSON_GetObjectItem(u, "metas"));
}

static int wait_metas(const char *user, int want, int ms)
{
    int64_t end = nt_clock_mono_ms() + ms;
    int n;
    for (;;) {
        cJSON *d = get_room();
        n = metas_of(d, user);
        cJSON_Delete(d);
        if (n == want || nt_clock_mono_ms() > end)
            return n;
        msleep(50);
    }
}

/* presence:{user} in KV says online (1), offline (0), or is absent (-1). */
static int kv_online(const char *user)
{
    char key[200], *val = NULL;
    size_t len = 0;
    snprintf(key, sizeof(key), "presence:%s", user);
    if (nt_kv_get(kv, key, &val, &len) != NT_OK)
        return -1;
    int on = strstr(val, "\"online\":true") != NULL ? 1 : 0;
    cr_assert(strstr(val, "\"last_seen\":\"") != NULL, "%s", val);
    free(val);
    return on;
}

static int wait_kv(const char *user, int want, int ms)
{
    int64_t end = nt_clock_mono_ms() + ms;
    int v;
    while ((v = kv_online(user)) != want && nt_clock_mono_ms() < end)
        msleep(50);
    return v;
}

static char *user_needle(const h_user *u, char *buf, size_t len)
{
    snprintf(buf, len, "\"user_id\":\"%s\"", u->id);
    return buf;
}

/* Starts fe (its id ends in letter), connects conn of u joined to the room
 * at online_at, and waits for u's online presence_update; needle (len
 * bytes) gets u's event needle. */
static void fe_online(fake_edge *fe, char letter, const char *conn, const h_user *u,
                      const char *online_at, char *needle, size_t len)
{
    fe_start(fe, letter);
    fe_connect_join(fe, conn, u->id, online_at);
    cr_assert_eq(wait_events("presence_update", user_needle(u, needle, len), "true", 1, 5000), 1,
                 "%s online", u->id);
}

/* Silences fe and returns how long until the offline presence_update of
 * needle came (at most wait_ms; the test fails without it). */
static int64_t silent_until_offline(fake_edge *fe, const char *needle, int wait_ms)
{
    int64_t silent_at = nt_clock_mono_ms();
    fe_silence(fe);
    cr_assert_eq(wait_events("presence_update", needle, "false", 1, wait_ms), 1,
                 "offline after the edge went silent");
    return nt_clock_mono_ms() - silent_at;
}

Test(presence, get_returns_the_state_and_a_user_on_two_edges_stays_online_when_one_closes)
{
    fake_edge a, b;
    char na[200];
    fe_start(&a, 'A');
    fe_start(&b, 'B');
    fe_connect_join(&a, "1", alice.id, ONLINE_AT_1);
    fe_connect_join(&b, "1", alice.id, ONLINE_AT_2);
    cr_assert_eq(wait_metas(alice.id, 2, 3000), 2);
    cJSON *d = get_room();
    const cJSON *metas = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(d, "presence"), alice.id), "metas");
    char ref_a[64];
    snprintf(ref_a, sizeof(ref_a), "%s-1", a.id);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(metas, 0), "phx_ref")->valuestring,
                     ref_a, "metas ordered by online_at");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(metas, 0), "online_at")->valuestring,
                     ONLINE_AT_1);
    const cJSON *edges = cJSON_GetObjectItem(d, "edges");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(edges, a.id)));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(edges, b.id)));
    cJSON_Delete(d);

    cr_assert_eq(
        wait_events("presence_update", user_needle(&alice, na, sizeof(na)), "true", 1, 5000), 1,
        "alice online, announced once");
    cr_assert_eq(wait_kv(alice.id, 1, 3000), 1);

    fe_disconnect(&b, "1");
    cr_assert_eq(wait_metas(alice.id, 1, 3000), 1);
    msleep(800);
    cr_assert_eq(count_events("presence_update", na, "false"), 0, "still online on edge A");
    cr_assert_eq(kv_online(alice.id), 1);

    fe_disconnect(&a, "1");
    cr_assert_eq(wait_events("presence_update", na, "false", 1, 5000), 1, "offline at last");
    cr_assert_eq(wait_kv(alice.id, 0, 3000), 0);
    cr_assert_eq(count_events("presence_diff", "leaves", NULL), 0,
                 "the edges announced their own leaves");
    fe_stop(&a);
    fe_stop(&b);
}

Test(presence, an_edge_that_stops_reporting_loses_its_users_within_the_timeout)
{
    fake_edge a, b;
    char na[200], nb[200];
    fe_online(&a, 'C', "4", &alice, ONLINE_AT_1, na, sizeof(na));
    fe_online(&b, 'D', "5", &bob, ONLINE_AT_1, nb, sizeof(nb));

    int64_t took = silent_until_offline(&a, na, TIMEOUT_MS + 4000);
    /* The bound is the timeout plus one sweep; allow for the last beat's age
     * and the worker's KV write and rooms look-up. */
    cr_assert(took >= TIMEOUT_MS - BEAT_MS - 100 && took <= TIMEOUT_MS + 1000 + 1500,
              "offline after %lld ms", (long long)took);

    /* Her join is left for the clients, with the same meta. */
    char leave[600];
    snprintf(leave, sizeof(leave),
             "{\"joins\":{},\"leaves\":{\"%s\":{\"metas\":[{\"phx_ref\":\"%s-4\",\"username\":"
             "\"%s\",\"online_at\":\"%s\"}]}}}",
             alice.id, a.id, alice.id, ONLINE_AT_1);
    cr_assert_eq(wait_events("presence_diff", leave, NULL, 1, 3000), 1, "want %s", leave);
    cr_assert_eq(wait_kv(alice.id, 0, 3000), 0);
    cJSON *d = get_room();
    cr_assert_eq(metas_of(d, alice.id), 0);
    cJSON_Delete(d);
    msleep(500);
    cr_assert_eq(count_events("presence_update", nb, "false"), 0, "bob's edge still reports");
    cr_assert_eq(kv_online(bob.id), 1);
    fe_stop(&a);
    fe_stop(&b);
}

Test(presence, a_presence_killed_and_restarted_recovers_the_online_set_without_flapping)
{
    fake_edge a, b;
    char na[200], nb[200];
    fe_online(&a, 'E', "7", &alice, ONLINE_AT_1, na, sizeof(na));
    fe_online(&b, 'F', "8", &bob, ONLINE_AT_1, nb, sizeof(nb));
    cr_assert_eq(wait_kv(bob.id, 1, 3000), 1);

    cr_assert_eq(h_kill_by_name("presence", SIGKILL), 1);
    /* While presence is down, bob's edge dies too: nobody will report him. */
    fe_silence(&b);
    h_spawn("presence", stack.env);
    cr_assert(h_wait_service(stack.nats_url, "presence", 10000));
    /* The resync brings alice back at once, from edge A's snapshot. */
    cr_assert_eq(wait_metas(alice.id, 1, 2000), 1, "recovered from the snapshot");
    /* After the warm-up, bob, online in KV but reported by no edge, goes offline. */
    cr_assert_eq(wait_events("presence_update", nb, "false", 1, WARMUP_MS + 4000), 1);
    cr_assert_eq(wait_kv(bob.id, 0, 3000), 0);
    cr_assert_eq(count_events("presence_update", na, "false"), 0, "alice never flapped offline");
    cr_assert_eq(count_events("presence_update", na, "true"), 1, "nor online again");
    cr_assert_eq(kv_online(alice.id), 1);
    fe_stop(&a);
    fe_stop(&b);
}

Test(presence, two_instances_publish_each_event_exactly_once)
{
    h_spawn("presence", stack.env);
    /* Both instances are subscribed once the second answers discovery. */
    msleep(1500);
    fake_edge a, b;
    char na[200], nb[200];
    fe_online(&a, 'G', "1", &alice, ONLINE_AT_1, na, sizeof(na));
    fe_online(&b, 'H', "2", &bob, ONLINE_AT_2, nb, sizeof(nb));
    fe_disconnect(&a, "1");
    cr_assert_eq(wait_events("presence_update", na, "false", 1, 5000), 1);
    fe_silence(&b);
    cr_assert_eq(wait_events("presence_update", nb, "false", 1, TIMEOUT_MS + 4000), 1);
    char bob_key[160];
    snprintf(bob_key, sizeof(bob_key), "\"%s\":{\"metas\"", bob.id);
    cr_assert_eq(wait_events("presence_diff", bob_key, NULL, 1, 3000), 1);
    /* Give a duplicate every chance to show up. */
    msleep(1500);
    cr_assert_eq(count_events("presence_update", na, "true"), 1);
    cr_assert_eq(count_events("presence_update", na, "false"), 1);
    cr_assert_eq(count_events("presence_update", nb, "true"), 1);
    cr_assert_eq(count_events("presence_update", nb, "false"), 1);
    cr_assert_eq(count_events("presence_diff", bob_key, NULL), 1, "one leave for the dead edge");
    cr_assert_eq(h_kill_by_name("presence", SIGTERM), 2);
    fe_stop(&a);
    fe_stop(&b);
}

Test(presence, a_stalled_presence_does_not_declare_the_edges_dead)
{
    cr_assert_eq(h_kill_by_name("presence", SIGTERM), 1);
    h_proc *p = h_spawn("presence", stack.env);
    cr_assert(h_wait_service(stack.nats_url, "presence", 10000));
    fake_edge a;
    char na[200];
    fe_online(&a, 'I', "1", &alice, ONLINE_AT_1, na, sizeof(na));
    /* The process stops for longer than the edge timeout while the edge
     * keeps reporting: on waking, the silence it measured is its own. */
    cr_assert_eq(kill(p->pid, SIGSTOP), 0);
    msleep(TIMEOUT_MS + 1500);
    cr_assert_eq(kill(p->pid, SIGCONT), 0);
    msleep(1500);
    cr_assert_eq(count_events("presence_update", na, "false"), 0, "alice never went offline");
    cr_assert_eq(count_events("presence_diff", "leaves\":{\"", NULL), 0);
    cr_assert_eq(wait_metas(alice.id, 1, 1000), 1);
    fe_stop(&a);
}

Test(presence, an_edge_declared_dead_that_comes_back_announces_its_joins_again)
{
    fake_edge a;
    char na[200];
    fe_online(&a, 'J', "3", &alice, ONLINE_AT_1, na, sizeof(na));
    char meta[300], leave[600], back[600];
    snprintf(meta, sizeof(meta), "{\"phx_ref\":\"%s-3\",\"username\":\"%s\",\"online_at\":\"%s\"}",
             a.id, alice.id, ONLINE_AT_1);
    snprintf(leave, sizeof(leave), "{\"joins\":{},\"leaves\":{\"%s\":{\"metas\":[%s]}}}", alice.id,
             meta);
    snprintf(back, sizeof(back), "{\"joins\":{\"%s\":{\"metas\":[%s]}},\"leaves\":{}}", alice.id,
             meta);
    fe_silence(&a);
    cr_assert_eq(wait_events("presence_diff", leave, NULL, 1, TIMEOUT_MS + 4000), 1);
    /* Only cut off: its next snapshot brings alice back, and the clients,
     * told she left, are told she is back, with the same meta. */
    fe_resume(&a);
    cr_assert_eq(wait_events("presence_diff", back, NULL, 1, 3000), 1, "want %s", back);
    cr_assert_eq(wait_metas(alice.id, 1, 1000), 1);
    /* A second death within the claims' 5 min is announced too. */
    fe_silence(&a);
    cr_assert_eq(wait_events("presence_diff", leave, NULL, 2, TIMEOUT_MS + 4000), 2);
    msleep(300);
    cr_assert_eq(count_events("presence_diff", back, NULL), 1, "once");
    fe_stop(&a);
}

Test(presence, refresh_extends_only_an_online_key_and_odd_user_ids_are_in_room_presence)
{
    fake_edge a;
    char na[200];
    fe_start(&a, 'K');
    fe_connect_join(&a, "1", alice.id, ONLINE_AT_1);
    /* A JWT sub that is no KV key: kept in memory and room presence. */
    fe_connect_join(&a, "2", "auth0|123", ONLINE_AT_2);
    cr_assert_eq(wait_metas("auth0|123", 1, 3000), 1);
    cr_assert_eq(
        wait_events("presence_update", user_needle(&alice, na, sizeof(na)), "true", 1, 5000), 1);
    cr_assert_eq(wait_kv(alice.id, 1, 3000), 1);

    /* Another instance decided alice is offline: a refresh (every 1 s here)
     * must not write her back online, nor announce it. */
    const char *off = "{\"online\":false,\"last_seen\":\"2026-01-01T00:00:00.000Z\"}";
    char key[200];
    snprintf(key, sizeof(key), "presence:%s", alice.id);
    cr_assert_eq(nt_kv_put(kv, key, off, strlen(off)), NT_OK);
    msleep(2500);
    cr_assert_eq(kv_online(alice.id), 0, "the refresh left the offline key alone");
    cr_assert_eq(nt_kv_delete(kv, key), NT_OK);
    msleep(2500);
    cr_assert_eq(kv_online(alice.id), -1, "nor recreated a lapsed one");
    cr_assert_eq(count_events("presence_update", na, "true"), 1, "and announced nothing");
    fe_stop(&a);
}

/* ---- the documented bound, at the defaults ---- */

#define DEFAULT_TIMEOUT_MS 30000 /* NATTER_PRESENCE_EDGE_TIMEOUT_MS's default */

static void setup_defaults(void)
{
    static const char *const none[] = {NULL};
    setup_with(none);
}

TestSuite(presence_defaults, .init = setup_defaults, .fini = teardown, .timeout = 90);

Test(presence_defaults, a_silent_edge_s_users_are_offline_within_31_s)
{
    fake_edge a;
    char na[200];
    fe_online(&a, 'E', "6", &alice, ONLINE_AT_1, na, sizeof(na));
    int64_t took = silent_until_offline(&a, na, DEFAULT_TIMEOUT_MS + 5000);
    /* README and nats.md: within NATTER_PRESENCE_EDGE_TIMEOUT_MS + 1 s, so
     * 31 s by default (the worker's KV write and rooms look-up on top). */
    cr_assert(took >= DEFAULT_TIMEOUT_MS - BEAT_MS - 100 &&
                  took <= DEFAULT_TIMEOUT_MS + 1000 + 1500,
              "offline after %lld ms", (long long)took);
    fe_stop(&a);
}
