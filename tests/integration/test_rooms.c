/* Integration tests of the rooms service: real HTTP through the real gateway,
 * a real nats-server whose events a nats.c subscriber watches, the real KV
 * bucket and the real SQLite file. The authorisation matrix itself lives in
 * test_rooms_authz.c; these tests follow whole flows and their side effects. */
#include "flow.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <nats/nats.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENT_WAIT_MS 5000

static h_stack stack;

static void fini(void)
{
    h_stop_all();
}

TestSuite(rooms, .fini = fini, .timeout = 60);

/* ---- users, paths and HTTP ---- */

typedef h_user user;

/* ---- JSON checks ---- */

static void expect_num(const cJSON *o, const char *key, double want)
{
    const cJSON *v = h_field(o, key);
    cr_assert(cJSON_IsNumber(v) && v->valuedouble == want, "\"%s\" should be %g in %s", key, want,
              cJSON_PrintUnformatted(o));
}

static void expect_absent(const cJSON *o, const char *key)
{
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, key), "\"%s\" must not be in %s", key,
                   cJSON_PrintUnformatted(o));
}

/* The room with id in a rooms array, or NULL. */
static const cJSON *find_by(const cJSON *arr, const char *key, const char *id)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, key);
        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
            return it;
    }
    return NULL;
}

static void clock_past(const char *iso);

/* Creates a room as u from body and copies its id into id. Returns once the
 * clock has moved past the creation, so every room and join made in these
 * tests has its own millisecond and orders by time are never ties. */
static void room_create(const user *u, const char *body, char *id, size_t idlen)
{
    cJSON *d = h_ok(&stack, "POST", "/api/rooms", u->tok, body);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, "id");
    cr_assert(cJSON_IsString(v) && strlen(v->valuestring) == 36, "no room id");
    snprintf(id, idlen, "%s", v->valuestring);
    clock_past(h_get_str(d, "created_at"));
    cJSON_Delete(d);
}

/* ---- events ---- */

typedef struct {
    natsConnection *nc;
    natsSubscription *room; /* chat.room.<id>.> */
    natsSubscription *user; /* chat.user.> */
} watcher;

/* Subscribes before the actions it watches; the flush makes sure the server
 * has both subscriptions when it returns. */
static void watch_start(watcher *w, const char *room_id)
{
    char subj[128];
    memset(w, 0, sizeof(*w));
    cr_assert_eq(natsConnection_ConnectTo(&w->nc, stack.nats_url), NATS_OK);
    h_fmt(subj, sizeof(subj), "chat.room.%s.>", room_id);
    cr_assert_eq(natsConnection_SubscribeSync(&w->room, w->nc, subj), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&w->user, w->nc, "chat.user.>"), NATS_OK);
    cr_assert_eq(natsConnection_Flush(w->nc), NATS_OK);
}

static void watch_stop(watcher *w)
{
    natsSubscription_Destroy(w->room);
    natsSubscription_Destroy(w->user);
    natsConnection_Destroy(w->nc);
    memset(w, 0, sizeof(*w));
}

/* The next event on sub, which must be on subject; returns its payload. */
static cJSON *next_event(natsSubscription *sub, const char *subject)
{
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, sub, EVENT_WAIT_MS);
    cr_assert_eq(s, NATS_OK, "no event within %d ms, expected %s", EVENT_WAIT_MS, subject);
    cr_assert_str_eq(natsMsg_GetSubject(m), subject, "unexpected event, payload %s",
                     natsMsg_GetData(m));
    cJSON *j = cJSON_Parse(natsMsg_GetData(m));
    cr_assert_not_null(j, "%s: payload is not JSON: %s", subject, natsMsg_GetData(m));
    natsMsg_Destroy(m);
    return j;
}

static cJSON *room_event(watcher *w, const char *room_id, const char *event)
{
    char subj[160];
    return next_event(w->room, h_fmt(subj, sizeof(subj), "chat.room.%s.%s", room_id, event));
}

static cJSON *user_event(watcher *w, const char *user_id, const char *event)
{
    char subj[260];
    return next_event(w->user, h_fmt(subj, sizeof(subj), "chat.user.%s.%s", user_id, event));
}

/* ---- SQLite, the KV cache and chat.rooms.authorize ---- */

static sqlite3 *db_open(void)
{
    char path[600];
    sqlite3 *db = NULL;
    h_fmt(path, sizeof(path), "%s/data/natter.db", h_tmpdir());
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK,
                 "cannot open %s", path);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Runs sql with text parameters; returns the first column of the first row
 * as an integer (0 when no row). */
static long long db_run(sqlite3 *db, const char *sql, const char *const *params, int n)
{
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(s, i + 1, params[i], -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    long long v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return v;
}

static long long db_count1(sqlite3 *db, const char *sql, const char *param)
{
    const char *p[] = {param};
    return db_run(db, sql, p, 1);
}

typedef struct {
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
} cache;

static void cache_open(cache *c)
{
    memset(c, 0, sizeof(*c));
    cr_assert_eq(natsConnection_ConnectTo(&c->nc, stack.nats_url), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&c->js, c->nc, NULL), NATS_OK);
    cr_assert_eq(js_KeyValue(&c->kv, c->js, "natter_room_members"), NATS_OK,
                 "no bucket natter_room_members");
}

static void cache_close(cache *c)
{
    kvStore_Destroy(c->kv);
    jsCtx_Destroy(c->js);
    natsConnection_Destroy(c->nc);
}

/* The cached access state of room_id, parsed; NULL when there is no entry. */
static cJSON *cache_get(cache *c, const char *room_id)
{
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, c->kv, room_id);
    if (s == NATS_NOT_FOUND)
        return NULL;
    cr_assert_eq(s, NATS_OK, "kvStore_Get %s: %s", room_id, natsStatus_GetText(s));
    cJSON *j = cJSON_Parse(kvEntry_ValueString(e));
    cr_assert_not_null(j, "cache entry is not JSON: %s", kvEntry_ValueString(e));
    kvEntry_Destroy(e);
    return j;
}

/* Asserts that the cache entry lists exactly the n members with their roles. */
static void expect_cached(cache *c, const char *room_id, bool is_private, const char *const *uids,
                          const char *const *roles, int n)
{
    cJSON *j = cache_get(c, room_id);
    cr_assert_not_null(j, "no cache entry for room %s", room_id);
    h_expect_str(j, "room_id", room_id);
    h_expect_bool(j, "exists", true);
    h_expect_bool(j, "is_private", is_private);
    const cJSON *arr = h_field(j, "members");
    cr_assert_eq(cJSON_GetArraySize(arr), n, "cached members: %s", cJSON_PrintUnformatted(j));
    for (int i = 0; i < n; i++) {
        const cJSON *m = find_by(arr, "user_id", uids[i]);
        cr_assert_not_null(m, "%s missing from the cache: %s", uids[i], cJSON_PrintUnformatted(j));
        h_expect_str(m, "role", roles[i]);
    }
    cJSON_Delete(j);
}

/* chat.rooms.authorize as uid over NATS; returns the parsed envelope. */
static cJSON *authorize(cache *c, const char *uid, const char *room_id, const char *action)
{
    char body[256];
    natsMsg *m = NULL, *rep = NULL;
    h_fmt(body, sizeof(body), "{\"room_id\":\"%s\",\"action\":\"%s\"}", room_id, action);
    cr_assert_eq(natsMsg_Create(&m, "chat.rooms.authorize", NULL, body, (int)strlen(body)),
                 NATS_OK);
    cr_assert_eq(natsMsgHeader_Set(m, "Chat-User", uid), NATS_OK);
    cr_assert_eq(natsConnection_RequestMsg(&rep, c->nc, m, 5000), NATS_OK,
                 "chat.rooms.authorize unanswered");
    cJSON *j = cJSON_Parse(natsMsg_GetData(rep));
    cr_assert_not_null(j, "authorize reply is not JSON: %s", natsMsg_GetData(rep));
    natsMsg_Destroy(rep);
    natsMsg_Destroy(m);
    return j;
}

static void expect_allowed(cache *c, const char *uid, const char *room_id, const char *action,
                           const char *role, bool is_private)
{
    cJSON *env = authorize(c, uid, room_id, action);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(env, "data");
    cr_assert_not_null(d, "%s %s refused: %s", uid, action, cJSON_PrintUnformatted(env));
    h_expect_str(d, "room_id", room_id);
    h_expect_str(d, "user_id", uid);
    h_expect_str(d, "action", action);
    h_expect_str(d, "role", role);
    h_expect_bool(d, "is_private", is_private);
    cJSON_Delete(env);
}

static void expect_denied(cache *c, const char *uid, const char *room_id, const char *action,
                          const char *code)
{
    cJSON *env = authorize(c, uid, room_id, action);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(env, "error");
    cr_assert_not_null(e, "%s %s allowed: %s", uid, action, cJSON_PrintUnformatted(env));
    h_expect_str(e, "code", code);
    cJSON_Delete(env);
}

/* ---- time ---- */

/* Waits (polling the clock, which the services share) until now is past the
 * millisecond stamp iso, so the next write gets a later time. */
static void clock_past(const char *iso)
{
    for (int i = 0; i < 2000; i++) {
        struct timespec ts;
        struct tm tm;
        char now[64], ms[24];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ms, sizeof(ms), ".%03ldZ", ts.tv_nsec / 1000000L);
        strncat(now, ms, sizeof(now) - strlen(now) - 1);
        if (strcmp(now, iso) > 0)
            return;
        struct timespec tick = {0, 1000000L};
        nanosleep(&tick, NULL);
    }
    cr_assert_fail("the clock never passed %s", iso);
}

/* Joins room_id as u and waits until the clock has moved past the join. */
static void join_in_order(const user *u, const char *room_id)
{
    char path[128];
    cJSON *d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", room_id),
                    u->tok, NULL);
    h_expect_str(d, "role", "member");
    clock_past(h_get_str(d, "last_activity_at"));
    cJSON_Delete(d);
}

/* ---- the tests ---- */

Test(rooms, private_room_invite_promote_demote_remove_with_events)
{
    user alice, bob, carol;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", &carol, "carol", NULL);
    char id[64], path[256], body[256];

    cJSON *d =
        h_ok(&stack, "POST", "/api/rooms", alice.tok, "{\"name\":\"Plans\",\"is_private\":true}");
    snprintf(id, sizeof(id), "%s", h_get_str(d, "id"));
    h_expect_str(d, "role", "admin");
    h_expect_bool(d, "is_private", true);
    expect_num(d, "member_count", 1);
    cJSON_Delete(d);

    watcher w;
    watch_start(&w, id);

    /* Invited by username: bob becomes a member, the room and bob are told. */
    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/invite", id), alice.tok,
             "{\"username\":\"bob\"}");
    h_expect_str(d, "room_id", id);
    h_expect_str(d, "user_id", bob.id);
    h_expect_str(d, "username", "bob");
    h_expect_str(d, "role", "member");
    h_expect_time(d, "joined_at");
    cJSON_Delete(d);
    cJSON *e = room_event(&w, id, "user_joined");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "user_id", bob.id);
    h_expect_str(e, "username", "bob");
    h_expect_str(e, "avatar_url", NULL);
    h_expect_str(e, "role", "member");
    h_expect_time(e, "joined_at");
    h_expect_str(e, "invited_by", alice.id);
    cJSON_Delete(e);
    e = user_event(&w, bob.id, "room_invited");
    const cJSON *room = h_field(e, "room");
    h_expect_str(room, "id", id);
    h_expect_str(room, "name", "Plans");
    h_expect_bool(room, "is_private", true);
    expect_num(room, "member_count", 2);
    expect_absent(room, "role");
    h_expect_str(e, "role", "member");
    h_expect_str(e, "invited_by", alice.id);
    cJSON_Delete(e);

    /* bob sees it among his rooms, as a member. */
    d = h_ok(&stack, "GET", "/api/rooms", bob.tok, NULL);
    const cJSON *mine = find_by(h_field(d, "rooms"), "id", id);
    cr_assert_not_null(mine, "bob does not see the room: %s", cJSON_PrintUnformatted(d));
    h_expect_str(mine, "role", "member");
    expect_num(mine, "member_count", 2);
    cJSON_Delete(d);

    /* carol cannot join a private room: it does not exist for her. */
    h_refused(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), carol.tok, NULL,
              404, "not_found", "does not exist");

    /* Promote, then demote: each change is an event naming who did it. The
     * first room event after carol's attempt must be this one: she produced none. */
    const char *steps[][2] = {{"moderator", "member"}, {"member", "moderator"}};
    for (int i = 0; i < 2; i++) {
        h_fmt(body, sizeof(body), "{\"role\":\"%s\"}", steps[i][0]);
        d = h_ok(&stack, "PUT", h_fmt(path, sizeof(path), "/api/rooms/%s/members/%s", id, bob.id),
                 alice.tok, body);
        h_expect_str(d, "user_id", bob.id);
        h_expect_str(d, "role", steps[i][0]);
        cJSON_Delete(d);
        e = room_event(&w, id, "member_updated");
        h_expect_str(e, "room_id", id);
        h_expect_str(e, "user_id", bob.id);
        h_expect_str(e, "username", "bob");
        h_expect_str(e, "role", steps[i][0]);
        h_expect_str(e, "previous_role", steps[i][1]);
        h_expect_str(e, "by", alice.id);
        cJSON_Delete(e);
    }

    /* Removal: bob leaves the room's list and gets told personally. */
    d = h_ok(&stack, "DELETE", h_fmt(path, sizeof(path), "/api/rooms/%s/members/%s", id, bob.id),
             alice.tok, NULL);
    h_expect_str(d, "room_id", id);
    h_expect_str(d, "user_id", bob.id);
    h_expect_bool(d, "removed", true);
    cJSON_Delete(d);
    e = room_event(&w, id, "user_left");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "user_id", bob.id);
    h_expect_str(e, "username", "bob");
    h_expect_str(e, "reason", "removed");
    h_expect_str(e, "by", alice.id);
    cJSON_Delete(e);
    e = user_event(&w, bob.id, "room_removed");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "reason", "removed");
    h_expect_str(e, "by", alice.id);
    cJSON_Delete(e);

    d = h_ok(&stack, "GET", "/api/rooms", bob.tok, NULL);
    cr_assert_null(find_by(h_field(d, "rooms"), "id", id), "bob still sees the room: %s",
                   cJSON_PrintUnformatted(d));
    cJSON_Delete(d);
    h_refused(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s", id), bob.tok, NULL, 404,
              "not_found", NULL);
    d = h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s/members", id), alice.tok,
             NULL);
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "members")), 1, "%s", cJSON_PrintUnformatted(d));
    cJSON_Delete(d);

    watch_stop(&w);
    h_users_free(&alice, &bob, &carol, NULL);
}

Test(rooms, public_room_discover_join_twice_then_leave)
{
    user alice, bob;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", NULL);
    char id[64], other[64], hidden[64], path[256];
    room_create(&alice, "{\"name\":\"Gardening Club\",\"description\":\"Roses\"}", id, sizeof(id));
    room_create(&alice, "{\"name\":\"Cooking\"}", other, sizeof(other));
    room_create(&alice, "{\"name\":\"Gardening secrets\",\"is_private\":true}", hidden,
                sizeof(hidden));

    /* A substring in another case finds the public room only. */
    cJSON *d = h_ok(&stack, "GET", "/api/rooms?scope=public&q=DENING", bob.tok, NULL);
    const cJSON *rooms = h_field(d, "rooms");
    cr_assert_eq(cJSON_GetArraySize(rooms), 1, "%s", cJSON_PrintUnformatted(d));
    const cJSON *r = find_by(rooms, "id", id);
    cr_assert_not_null(r, "%s", cJSON_PrintUnformatted(d));
    h_expect_str(r, "name", "Gardening Club");
    h_expect_str(r, "description", "Roses");
    h_expect_str(r, "role", NULL);
    expect_num(r, "member_count", 1);
    h_expect_str(d, "next_cursor", NULL);
    cJSON_Delete(d);

    watcher w;
    watch_start(&w, id);
    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), bob.tok, NULL);
    h_expect_str(d, "id", id);
    h_expect_str(d, "role", "member");
    expect_num(d, "member_count", 2);
    cJSON_Delete(d);
    cJSON *e = room_event(&w, id, "user_joined");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "user_id", bob.id);
    h_expect_str(e, "username", "bob");
    h_expect_str(e, "role", "member");
    h_expect_str(e, "invited_by", NULL);
    cJSON_Delete(e);

    /* Joining again is the same answer and no event: the next event on the
     * room is the leave below, not a second user_joined. */
    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), bob.tok, NULL);
    h_expect_str(d, "role", "member");
    expect_num(d, "member_count", 2);
    cJSON_Delete(d);

    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/leave", id), bob.tok, NULL);
    h_expect_str(d, "room_id", id);
    h_expect_bool(d, "left", true);
    h_expect_bool(d, "room_deleted", false);
    h_expect_str(d, "new_admin", NULL);
    cJSON_Delete(d);
    e = room_event(&w, id, "user_left");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "user_id", bob.id);
    h_expect_str(e, "username", "bob");
    h_expect_str(e, "reason", "left");
    h_expect_str(e, "by", NULL);
    cJSON_Delete(e);

    d = h_ok(&stack, "GET", "/api/rooms?scope=public&q=dening", bob.tok, NULL);
    r = find_by(h_field(d, "rooms"), "id", id);
    cr_assert_not_null(r);
    h_expect_str(r, "role", NULL);
    expect_num(r, "member_count", 1);
    cJSON_Delete(d);

    watch_stop(&w);
    h_users_free(&alice, &bob, NULL);
}

Test(rooms, leaving_hands_admin_to_the_longest_standing_member_and_the_last_out_deletes)
{
    user alice, u1, u2;
    h_users_start(&stack, NULL, &alice, "alice", &u1, "uma", &u2, "vic", NULL);
    /* The first to join has the larger user id, so an heir chosen by id
     * instead of by seniority is caught. */
    user *first = strcmp(u1.id, u2.id) > 0 ? &u1 : &u2;
    user *second = first == &u1 ? &u2 : &u1;
    char id[64], path[256];
    room_create(&alice, "{\"name\":\"Relay\"}", id, sizeof(id));
    watcher w;
    watch_start(&w, id);
    join_in_order(first, id);
    join_in_order(second, id);
    cJSON_Delete(room_event(&w, id, "user_joined"));
    cJSON_Delete(room_event(&w, id, "user_joined"));

    /* The last admin leaves with others present: the senior member takes over. */
    cJSON *d =
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/leave", id), alice.tok, NULL);
    h_expect_bool(d, "left", true);
    h_expect_bool(d, "room_deleted", false);
    h_expect_str(d, "new_admin", first->id);
    cJSON_Delete(d);
    cJSON *e = room_event(&w, id, "user_left");
    h_expect_str(e, "user_id", alice.id);
    h_expect_str(e, "reason", "left");
    h_expect_str(e, "by", NULL);
    cJSON_Delete(e);
    e = room_event(&w, id, "member_updated");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "user_id", first->id);
    h_expect_str(e, "username", first->name);
    h_expect_str(e, "role", "admin");
    h_expect_str(e, "previous_role", "member");
    h_expect_str(e, "by", NULL);
    cJSON_Delete(e);
    d = h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s/members", id), second->tok,
             NULL);
    const cJSON *members = h_field(d, "members");
    cr_assert_eq(cJSON_GetArraySize(members), 2, "%s", cJSON_PrintUnformatted(d));
    h_expect_str(find_by(members, "user_id", first->id), "role", "admin");
    h_expect_str(find_by(members, "user_id", second->id), "role", "member");
    cJSON_Delete(d);

    /* Again with the new admin. */
    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/leave", id), first->tok,
             NULL);
    h_expect_str(d, "new_admin", second->id);
    cJSON_Delete(d);
    cJSON_Delete(room_event(&w, id, "user_left"));
    e = room_event(&w, id, "member_updated");
    h_expect_str(e, "user_id", second->id);
    h_expect_str(e, "role", "admin");
    h_expect_str(e, "by", NULL);
    cJSON_Delete(e);

    /* The last member leaves: the room is gone. */
    d = h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/leave", id), second->tok,
             NULL);
    h_expect_bool(d, "left", true);
    h_expect_bool(d, "room_deleted", true);
    h_expect_str(d, "new_admin", NULL);
    cJSON_Delete(d);
    e = room_event(&w, id, "room_deleted");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "deleted_by", second->id);
    cJSON_Delete(e);
    e = user_event(&w, second->id, "room_removed");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "reason", "deleted");
    h_expect_str(e, "by", second->id);
    cJSON_Delete(e);
    h_refused(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s", id), second->tok, NULL, 404,
              "not_found", "does not exist");
    sqlite3 *db = db_open();
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM chat_rooms WHERE id = ?1", id), 0);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM room_members WHERE room_id = ?1", id), 0);
    sqlite3_close(db);

    watch_stop(&w);
    h_users_free(&alice, &u1, &u2, NULL);
}

Test(rooms, delete_removes_room_members_and_messages_and_tells_every_member)
{
    user alice, bob, carol;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", &carol, "carol", NULL);
    char id[64], keep[64], path[256];
    room_create(&alice, "{\"name\":\"Doomed\"}", id, sizeof(id));
    room_create(&alice, "{\"name\":\"Keeper\"}", keep, sizeof(keep));
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), bob.tok, NULL));
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), carol.tok, NULL));

    /* Messages, written as the messages service will write them. */
    sqlite3 *db = db_open();
    static const char ins[] = "INSERT INTO messages (id, room_id, user_id, content, created_at) "
                              "VALUES (?1, ?2, ?3, ?4, ?5)";
    const char *rows[][5] = {
        {"00000000-0000-7000-8000-000000000001", id, alice.id, "one", "2030-01-01 00:00:00"},
        {"00000000-0000-7000-8000-000000000002", id, bob.id, "two", "2030-01-02 00:00:00"},
        {"00000000-0000-7000-8000-000000000003", id, carol.id, "three", "2030-01-03 04:05:06.789"},
        {"00000000-0000-7000-8000-000000000004", keep, alice.id, "stays", "2030-01-01 00:00:00"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        db_run(db, ins, rows[i], 5);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", id), 3);

    /* The newest message counts as the room's last activity. */
    cJSON *d = h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s", id), bob.tok, NULL);
    h_expect_str(d, "last_activity_at", "2030-01-03T04:05:06.789Z");
    expect_num(d, "member_count", 3);
    cJSON_Delete(d);

    /* Only the admin may delete (the matrix is tested elsewhere; this shows
     * a refused delete leaves everything in place). */
    h_refused(&stack, "DELETE", h_fmt(path, sizeof(path), "/api/rooms/%s", id), bob.tok, NULL, 403,
              "forbidden", NULL);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", id), 3);

    watcher w;
    watch_start(&w, id);
    d = h_ok(&stack, "DELETE", h_fmt(path, sizeof(path), "/api/rooms/%s", id), alice.tok, NULL);
    h_expect_str(d, "room_id", id);
    h_expect_bool(d, "deleted", true);
    cJSON_Delete(d);

    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", id), 0);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM room_members WHERE room_id = ?1", id), 0);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM chat_rooms WHERE id = ?1", id), 0);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", keep), 1,
                 "another room's messages went too");
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM room_members WHERE room_id = ?1", keep), 1);
    sqlite3_close(db);

    cJSON *e = room_event(&w, id, "room_deleted");
    h_expect_str(e, "room_id", id);
    h_expect_str(e, "deleted_by", alice.id);
    cJSON_Delete(e);
    /* Every former member, the deleter included, in any order. */
    const user *all[] = {&alice, &bob, &carol};
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(natsSubscription_NextMsg(&m, w.user, EVENT_WAIT_MS), NATS_OK,
                     "only %d room_removed events", i);
        int who = -1;
        for (int k = 0; k < 3; k++) {
            char subj[260];
            h_fmt(subj, sizeof(subj), "chat.user.%s.room_removed", all[k]->id);
            if (strcmp(natsMsg_GetSubject(m), subj) == 0)
                who = k;
        }
        cr_assert(who >= 0 && !seen[who], "unexpected event on %s", natsMsg_GetSubject(m));
        seen[who] = true;
        e = cJSON_Parse(natsMsg_GetData(m));
        cr_assert_not_null(e);
        h_expect_str(e, "room_id", id);
        h_expect_str(e, "reason", "deleted");
        h_expect_str(e, "by", alice.id);
        cJSON_Delete(e);
        natsMsg_Destroy(m);
    }
    h_refused(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s", id), alice.tok, NULL, 404,
              "not_found", NULL);
    d = h_ok(&stack, "GET", "/api/rooms", carol.tok, NULL);
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "rooms")), 0, "%s", cJSON_PrintUnformatted(d));
    cJSON_Delete(d);

    watch_stop(&w);
    h_users_free(&alice, &bob, &carol, NULL);
}

Test(rooms, update_changes_fields_publishes_the_room_and_refuses_bad_input)
{
    user alice, bob;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", NULL);
    char id[64], path[256];
    room_create(&alice, "{\"name\":\"Old\",\"description\":\"first\"}", id, sizeof(id));
    h_fmt(path, sizeof(path), "/api/rooms/%s", id);
    char join[256];
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(join, sizeof(join), "/api/rooms/%s/join", id), bob.tok, NULL));
    watcher w;
    watch_start(&w, id);

    cJSON *d = h_ok(&stack, "PUT", path, alice.tok, "{\"name\":\"  New name \\t\"}");
    h_expect_str(d, "name", "New name");
    h_expect_str(d, "description", "first");
    h_expect_str(d, "role", "admin");
    cJSON_Delete(d);
    cJSON *e = room_event(&w, id, "room_updated");
    static const char *const room_keys[] = {
        "id",         "name",       "description",  "is_private",
        "created_by", "created_at", "member_count", "last_activity_at"};
    for (size_t i = 0; i < sizeof(room_keys) / sizeof(room_keys[0]); i++)
        h_field(e, room_keys[i]);
    expect_absent(e, "role");
    h_expect_str(e, "id", id);
    h_expect_str(e, "name", "New name");
    h_expect_str(e, "created_by", alice.id);
    expect_num(e, "member_count", 2);
    cJSON_Delete(e);

    /* null clears the description; privacy may change, members stay. */
    d = h_ok(&stack, "PUT", path, alice.tok, "{\"description\":null,\"is_private\":true}");
    h_expect_str(d, "description", NULL);
    h_expect_bool(d, "is_private", true);
    cJSON_Delete(d);
    e = room_event(&w, id, "room_updated");
    h_expect_str(e, "description", NULL);
    h_expect_bool(e, "is_private", true);
    expect_absent(e, "role");
    cJSON_Delete(e);
    d = h_ok(&stack, "GET", path, bob.tok, NULL);
    h_expect_str(d, "role", "member");
    expect_num(d, "member_count", 2);
    cJSON_Delete(d);

    /* Multi-line descriptions keep their newlines and tabs. */
    d = h_ok(&stack, "PUT", path, alice.tok, "{\"description\":\"line 1\\n\\tline 2\"}");
    h_expect_str(d, "description", "line 1\n\tline 2");
    cJSON_Delete(d);
    cJSON_Delete(room_event(&w, id, "room_updated"));

    char long_name[160], long_desc[1100];
    memset(long_name, 'x', 101);
    long_name[101] = '\0';
    memset(long_desc, 'y', 1001);
    long_desc[1001] = '\0';
    char b_name[200], b_desc[1200];
    h_fmt(b_name, sizeof(b_name), "{\"name\":\"%s\"}", long_name);
    h_fmt(b_desc, sizeof(b_desc), "{\"description\":\"%s\"}", long_desc);
    struct {
        const char *body, *needle;
    } bad[] = {
        {"{\"name\":\"   \"}", "'name'"},
        {"{\"name\":\"\"}", "'name'"},
        {"{\"name\":null}", "'name'"},
        {b_name, "'name'"},
        {b_desc, "'description'"},
        {"{\"name\":\"a\\u0007b\"}", "'name'"},
        {"{\"name\":\"a\\nb\"}", "'name'"},
        {"{\"description\":\"bell\\u0007\"}", "'description'"},
        {"{\"name\":\"caf\xc3\"}", "UTF-8"},
        {"{\"name\":\"ok\",\"topic\":\"x\"}", "unknown field 'topic'"},
        {"{\"is_private\":\"yes\"}", "'is_private'"},
        {"{\"name\":7}", "'name'"},
        {"{}", "nothing to update"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        h_refused(&stack, "PUT", path, alice.tok, bad[i].body, 400, "invalid_request",
                  bad[i].needle);

    /* Nothing changed, and nothing was published: the next room event is
     * the one of the update below. */
    d = h_ok(&stack, "GET", path, alice.tok, NULL);
    h_expect_str(d, "name", "New name");
    h_expect_str(d, "description", "line 1\n\tline 2");
    h_expect_bool(d, "is_private", true);
    cJSON_Delete(d);
    d = h_ok(&stack, "PUT", path, alice.tok, "{\"description\":\"   \"}");
    h_expect_str(d, "description", NULL);
    cJSON_Delete(d);
    e = room_event(&w, id, "room_updated");
    h_expect_str(e, "name", "New name");
    h_expect_str(e, "description", NULL);
    cJSON_Delete(e);

    watch_stop(&w);
    h_users_free(&alice, &bob, NULL);
}

Test(rooms, create_validates_and_trims)
{
    user alice;
    h_users_start(&stack, NULL, &alice, "alice", NULL);
    char e100[512] = "", e101[512], x101[128], desc1001[1100];
    for (int i = 0; i < 100; i++)
        strncat(e100, "\xc3\xa9", sizeof(e100) - strlen(e100) - 1);
    h_fmt(e101, sizeof(e101), "%s\xc3\xa9", e100);
    memset(x101, 'x', 101);
    x101[101] = '\0';
    memset(desc1001, 'd', 1001);
    desc1001[1001] = '\0';
    char b_e101[600], b_x101[200], b_desc[1200];
    h_fmt(b_e101, sizeof(b_e101), "{\"name\":\"%s\"}", e101);
    h_fmt(b_x101, sizeof(b_x101), "{\"name\":\"%s\"}", x101);
    h_fmt(b_desc, sizeof(b_desc), "{\"name\":\"ok\",\"description\":\"%s\"}", desc1001);
    struct {
        const char *body, *needle;
    } bad[] = {
        {"{}", "'name' is required"},
        {"{\"name\":null}", "'name' is required"},
        {"{\"name\":\"\"}", "'name'"},
        {"{\"name\":\"   \"}", "'name'"},
        {"{\"name\":\" \\t\\n \"}", "'name'"},
        {b_x101, "'name'"},
        {b_e101, "'name'"},
        {"{\"name\":42}", "'name'"},
        {"{\"name\":\"a\\u001bb\"}", "'name'"},
        {"{\"name\":\"ok\",\"topic\":\"x\"}", "unknown field 'topic'"},
        {"{\"name\":\"ok\",\"is_private\":\"yes\"}", "'is_private'"},
        {"{\"name\":\"ok\",\"description\":5}", "'description'"},
        {b_desc, "'description'"},
        {"[]", "object"},
        {"\"ok\"", "object"},
        {"{\"name\":\"ok\"", "JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        h_refused(&stack, "POST", "/api/rooms", alice.tok, bad[i].body, 400, "invalid_request",
                  bad[i].needle);

    /* 100 two-byte characters fit: the limit counts characters. */
    char body[700];
    cJSON *d = h_ok(&stack, "POST", "/api/rooms", alice.tok,
                    h_fmt(body, sizeof(body), "{\"name\":\"%s\"}", e100));
    h_expect_str(d, "name", e100);
    cJSON_Delete(d);
    d = h_ok(&stack, "POST", "/api/rooms", alice.tok,
             "{\"name\":\"  Trimmed name \\t\",\"description\":\"   \"}");
    char id[64];
    snprintf(id, sizeof(id), "%s", h_get_str(d, "id"));
    h_expect_str(d, "name", "Trimmed name");
    h_expect_str(d, "description", NULL);
    h_expect_bool(d, "is_private", false);
    h_expect_str(d, "created_by", alice.id);
    h_expect_str(d, "role", "admin");
    expect_num(d, "member_count", 1);
    h_expect_time(d, "created_at");
    h_expect_time(d, "last_activity_at");
    cJSON_Delete(d);
    sqlite3 *db = db_open();
    cr_assert_eq(db_count1(db,
                           "SELECT COUNT(*) FROM chat_rooms WHERE name = 'Trimmed name' "
                           "AND description IS NULL AND id = ?1",
                           id),
                 1, "the stored name is not trimmed");
    /* Only the two good requests created anything. */
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM chat_rooms WHERE created_by = ?1", alice.id),
                 2);
    sqlite3_close(db);
    h_user_free(&alice);
}

Test(rooms, invite_errors)
{
    user alice, bob, dave, erin;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", &dave, "dave", &erin, "erin", NULL);
    char id[64], path[256], body[512];
    room_create(&alice, "{\"name\":\"Club\",\"is_private\":true}", id, sizeof(id));
    h_fmt(path, sizeof(path), "/api/rooms/%s/invite", id);

    h_refused(&stack, "POST", path, alice.tok, "{\"username\":\"nobody\"}", 404, "not_found",
              "no user");
    h_refused(&stack, "POST", path, alice.tok, "{\"username\":\"BOB\"}", 404, "not_found",
              "no user");
    h_refused(&stack, "POST", path, alice.tok, "{\"user_id\":\"user_000000000000000000000000\"}",
              404, "not_found", NULL);
    h_refused(&stack, "POST", path, alice.tok,
              h_fmt(body, sizeof(body), "{\"user_id\":\"%s\",\"username\":\"bob\"}", bob.id), 400,
              "invalid_request", "exactly one");
    h_refused(&stack, "POST", path, alice.tok, "{}", 400, "invalid_request", "exactly one");
    h_refused(&stack, "POST", path, alice.tok, "{\"user_id\":\"bad id!\"}", 400, "invalid_request",
              "'user_id'");
    h_refused(&stack, "POST", path, alice.tok, "{\"user_id\":\"\"}", 400, "invalid_request",
              "'user_id'");
    h_refused(&stack, "POST", path, alice.tok, "{\"user_id\":12}", 400, "invalid_request",
              "'user_id'");

    cJSON *d = h_ok(&stack, "POST", path, alice.tok,
                    h_fmt(body, sizeof(body), "{\"user_id\":\"%s\"}", bob.id));
    h_expect_str(d, "user_id", bob.id);
    h_expect_str(d, "role", "member");
    cJSON_Delete(d);
    h_refused(&stack, "POST", path, alice.tok, "{\"username\":\"bob\"}", 409, "conflict",
              "already a member");
    h_refused(&stack, "POST", path, alice.tok,
              h_fmt(body, sizeof(body), "{\"user_id\":\"%s\"}", alice.id), 409, "conflict",
              "already a member");

    /* Two users called dave: by name is ambiguous, by id works. */
    d = h_ok(&stack, "PUT", "/api/users/me", erin.tok, "{\"username\":\"dave\"}");
    cJSON_Delete(d);
    h_refused(&stack, "POST", path, alice.tok, "{\"username\":\"dave\"}", 409, "conflict",
              "several users");
    d = h_ok(&stack, "POST", path, alice.tok,
             h_fmt(body, sizeof(body), "{\"user_id\":\"%s\"}", erin.id));
    h_expect_str(d, "username", "dave");
    cJSON_Delete(d);

    d = h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s/members", id), alice.tok,
             NULL);
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "members")), 3, "%s", cJSON_PrintUnformatted(d));
    cr_assert_null(find_by(h_field(d, "members"), "user_id", dave.id));
    cJSON_Delete(d);
    h_users_free(&alice, &bob, &dave, &erin, NULL);
}

Test(rooms, set_role_and_remove_member_errors)
{
    user alice, bob, carol;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", &carol, "carol", NULL);
    char id[64], path[256], me[256], p_bob[256], p_carol[256];
    room_create(&alice, "{\"name\":\"Roles\"}", id, sizeof(id));
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), bob.tok, NULL));
    h_fmt(me, sizeof(me), "/api/rooms/%s/members/%s", id, alice.id);
    h_fmt(p_bob, sizeof(p_bob), "/api/rooms/%s/members/%s", id, bob.id);
    h_fmt(p_carol, sizeof(p_carol), "/api/rooms/%s/members/%s", id, carol.id);
    watcher w;
    watch_start(&w, id);

    h_refused(&stack, "PUT", me, alice.tok, "{\"role\":\"member\"}", 409, "conflict",
              "at least one admin");
    h_refused(&stack, "PUT", me, alice.tok, "{\"role\":\"moderator\"}", 409, "conflict",
              "at least one admin");
    h_refused(&stack, "PUT", p_bob, alice.tok, "{\"role\":\"owner\"}", 400, "invalid_request",
              "'role'");
    h_refused(&stack, "PUT", p_bob, alice.tok, "{\"role\":\"Admin\"}", 400, "invalid_request",
              "'role'");
    h_refused(&stack, "PUT", p_bob, alice.tok, "{}", 400, "invalid_request", "'role'");
    h_refused(&stack, "PUT", p_bob, alice.tok, "{\"role\":\"member\",\"x\":1}", 400,
              "invalid_request", "unknown field 'x'");
    h_refused(&stack, "PUT", p_carol, alice.tok, "{\"role\":\"moderator\"}", 404, "not_found",
              "not a member");
    h_refused(&stack, "DELETE", me, alice.tok, NULL, 400, "invalid_request", "leave");
    h_refused(&stack, "DELETE", p_carol, alice.tok, NULL, 404, "not_found", "not a member");

    /* The same role again is fine and silent: the next event is the promotion. */
    cJSON *d = h_ok(&stack, "PUT", p_bob, alice.tok, "{\"role\":\"member\"}");
    h_expect_str(d, "role", "member");
    cJSON_Delete(d);
    d = h_ok(&stack, "PUT", p_bob, alice.tok, "{\"role\":\"admin\"}");
    h_expect_str(d, "role", "admin");
    cJSON_Delete(d);
    cJSON *e = room_event(&w, id, "member_updated");
    h_expect_str(e, "user_id", bob.id);
    h_expect_str(e, "role", "admin");
    h_expect_str(e, "previous_role", "member");
    cJSON_Delete(e);

    /* With a second admin, alice may step down; then bob is the only one. */
    d = h_ok(&stack, "PUT", me, alice.tok, "{\"role\":\"member\"}");
    h_expect_str(d, "role", "member");
    cJSON_Delete(d);
    e = room_event(&w, id, "member_updated");
    h_expect_str(e, "user_id", alice.id);
    h_expect_str(e, "role", "member");
    h_expect_str(e, "previous_role", "admin");
    h_expect_str(e, "by", alice.id);
    cJSON_Delete(e);
    h_refused(&stack, "PUT", p_bob, bob.tok, "{\"role\":\"member\"}", 409, "conflict",
              "at least one admin");
    /* Nothing of the refusals reached the database. */
    sqlite3 *db = db_open();
    const char *q[] = {id, bob.id};
    cr_assert_eq(db_run(db,
                        "SELECT COUNT(*) FROM room_members WHERE room_id = ?1 AND user_id = ?2 "
                        "AND role = 'admin'",
                        q, 2),
                 1);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM room_members WHERE room_id = ?1", id), 2);
    sqlite3_close(db);

    watch_stop(&w);
    h_users_free(&alice, &bob, &carol, NULL);
}

/* Pages through url (which ends in "limit=N") collecting field key of each
 * item of array arr into out; returns how many. Asserts that each page but
 * the last is full and that the last has next_cursor null. */
static int page_all(const char *url, const char *tok, const char *arr, const char *key, int limit,
                    char out[][64], int max)
{
    char path[600];
    char cursor[400] = "";
    int n = 0;
    for (int page = 0; page < 20; page++) {
        if (cursor[0] != '\0')
            h_fmt(path, sizeof(path), "%s&cursor=%s", url, cursor);
        else
            h_fmt(path, sizeof(path), "%s", url);
        cJSON *d = h_ok(&stack, "GET", path, tok, NULL);
        const cJSON *items = h_field(d, arr);
        int got = cJSON_GetArraySize(items);
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            cr_assert_lt(n, max, "more items than expected");
            snprintf(out[n++], 64, "%s", h_get_str(it, key));
        }
        const cJSON *next = h_field(d, "next_cursor");
        if (cJSON_IsNull(next)) {
            cr_assert_leq(got, limit);
            cJSON_Delete(d);
            return n;
        }
        cr_assert(cJSON_IsString(next), "next_cursor: %s", cJSON_PrintUnformatted(d));
        cr_assert_eq(got, limit, "a page before the last is short: %s", cJSON_PrintUnformatted(d));
        snprintf(cursor, sizeof(cursor), "%s", next->valuestring);
        cJSON_Delete(d);
    }
    cr_assert_fail("paging never ended");
    return n;
}

Test(rooms, paging_public_rooms_my_rooms_and_members)
{
    user alice, bob;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", NULL);
    /* Case-insensitive order differs from byte order here, and two names are
     * equal without regard to case so a page boundary falls between them. */
    static const char *names[] = {"kw7q-fig",  "KW7Q-SAME",   "Kw7q-Apple", "kw7q-Grape",
                                  "kw7q-same", "KW7Q-banana", "Kw7q-Elder"};
    char ids[7][64];
    for (int i = 0; i < 7; i++) {
        char body[128];
        room_create(i % 3 == 1 ? &bob : &alice,
                    h_fmt(body, sizeof(body), "{\"name\":\"%s\"}", names[i]), ids[i],
                    sizeof(ids[i]));
    }
    char hidden[64], other[64];
    room_create(&alice, "{\"name\":\"kw7q-Hidden\",\"is_private\":true}", hidden, sizeof(hidden));
    room_create(&alice, "{\"name\":\"Elsewhere\"}", other, sizeof(other));
    /* Expected: Apple, banana, Elder, fig, Grape, then the two "same" by id:
     * the second page ends between them. */
    const char *same_a = strcmp(ids[1], ids[4]) < 0 ? ids[1] : ids[4];
    const char *same_b = same_a == ids[1] ? ids[4] : ids[1];
    const char *want[7] = {ids[2], ids[5], ids[6], ids[0], ids[3], same_a, same_b};

    char got[12][64];
    int n =
        page_all("/api/rooms?scope=public&q=W7Q-&limit=3", alice.tok, "rooms", "id", 3, got, 12);
    cr_assert_eq(n, 7, "%d public rooms listed", n);
    for (int i = 0; i < 7; i++)
        cr_assert_str_eq(got[i], want[i], "position %d", i);
    /* The caller's role shows, null where alice is not a member. */
    cJSON *d = h_ok(&stack, "GET", "/api/rooms?scope=public&q=kw7q&limit=100", alice.tok, NULL);
    h_expect_str(find_by(h_field(d, "rooms"), "id", ids[1]), "role", NULL);
    h_expect_str(find_by(h_field(d, "rooms"), "id", ids[0]), "role", "admin");
    cr_assert_null(find_by(h_field(d, "rooms"), "id", hidden), "a private room was listed");
    cJSON_Delete(d);

    /* alice's own rooms: each once, newest activity first. */
    n = page_all("/api/rooms?limit=2", alice.tok, "rooms", "id", 2, got, 12);
    cr_assert_eq(n, 7, "alice is in 7 rooms, listed %d", n);
    for (int i = 0; i < n; i++) {
        for (int k = i + 1; k < n; k++)
            cr_assert_str_neq(got[i], got[k], "room listed twice");
    }
    cr_assert_str_eq(got[0], other, "the newest room comes first");
    cr_assert_str_eq(got[n - 1], ids[0], "the oldest room comes last");

    /* Bad paging input. */
    const char *bad[][2] = {
        {"/api/rooms?scope=public&cursor=!!!", "'cursor' is invalid"},
        {"/api/rooms?cursor=AAAA", "'cursor' is invalid"},
        {"/api/rooms?scope=public&limit=0", "'limit'"},
        {"/api/rooms?scope=public&limit=101", "'limit'"},
        {"/api/rooms?scope=public&limit=abc", "'limit'"},
        {"/api/rooms?limit=-1", "'limit'"},
        {"/api/rooms?scope=all", "'scope'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        h_refused(&stack, "GET", bad[i][0], alice.tok, NULL, 400, "invalid_request", bad[i][1]);

    /* Members: five, two a page, in the order they joined (which is not the
     * order of their ids). */
    user joiners[4];
    static const char *jn[] = {"m1", "m2", "m3", "m4"};
    for (int i = 0; i < 4; i++)
        h_user_make(&stack, &joiners[i], jn[i]);
    for (int i = 0; i < 4; i++) { /* descending user id */
        for (int k = i + 1; k < 4; k++) {
            if (strcmp(joiners[k].id, joiners[i].id) > 0) {
                user t = joiners[i];
                joiners[i] = joiners[k];
                joiners[k] = t;
            }
        }
    }
    char crowd[64], url[256];
    room_create(&alice, "{\"name\":\"Crowd\"}", crowd, sizeof(crowd));
    for (int i = 0; i < 4; i++)
        join_in_order(&joiners[i], crowd);
    n = page_all(h_fmt(url, sizeof(url), "/api/rooms/%s/members?limit=2", crowd), alice.tok,
                 "members", "user_id", 2, got, 12);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(got[0], alice.id);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(got[i + 1], joiners[i].id, "member %d out of joining order", i + 1);
    h_refused(&stack, "GET", h_fmt(url, sizeof(url), "/api/rooms/%s/members?cursor=%%2A", crowd),
              alice.tok, NULL, 400, "invalid_request", "'cursor' is invalid");
    h_refused(&stack, "GET", h_fmt(url, sizeof(url), "/api/rooms/%s/members?limit=0", crowd),
              alice.tok, NULL, 400, "invalid_request", "'limit'");
    h_refused(&stack, "GET", h_fmt(url, sizeof(url), "/api/rooms/%s/members?limit=501", crowd),
              alice.tok, NULL, 400, "invalid_request", "'limit'");
    d = h_ok(&stack, "GET", h_fmt(url, sizeof(url), "/api/rooms/%s/members?limit=500", crowd),
             alice.tok, NULL);
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "members")), 5);
    cJSON_Delete(d);

    for (int i = 0; i < 4; i++)
        h_user_free(&joiners[i]);
    h_users_free(&alice, &bob, NULL);
}

Test(rooms, authorize_follows_the_cache_written_before_commit)
{
    user alice, bob, carol;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", &carol, "carol", NULL);
    char id[64], path[256], body[256];
    room_create(&alice, "{\"name\":\"Vault\",\"is_private\":true}", id, sizeof(id));
    cJSON_Delete(h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/invite", id),
                      alice.tok, h_fmt(body, sizeof(body), "{\"user_id\":\"%s\"}", bob.id)));
    cache c;
    cache_open(&c);

    expect_allowed(&c, bob.id, id, "send", "member", true);
    expect_allowed(&c, alice.id, id, "delete", "admin", true);
    expect_denied(&c, bob.id, id, "update", "forbidden");
    expect_denied(&c, carol.id, id, "read", "not_found");
    expect_denied(&c, bob.id, id, "fly", "invalid_request");
    const char *uids2[] = {alice.id, bob.id};
    const char *roles2[] = {"admin", "member"};
    expect_cached(&c, id, true, uids2, roles2, 2);

    /* authorize answers from the cache: an entry naming carol lets her in. */
    char fake[800];
    h_fmt(fake, sizeof(fake),
          "{\"room_id\":\"%s\",\"exists\":true,\"is_private\":true,\"members\":["
          "{\"user_id\":\"%s\",\"role\":\"admin\"},{\"user_id\":\"%s\",\"role\":\"member\"},"
          "{\"user_id\":\"%s\",\"role\":\"member\"}]}",
          id, alice.id, bob.id, carol.id);
    cr_assert_eq(kvStore_PutString(NULL, c.kv, id, fake), NATS_OK);
    expect_allowed(&c, carol.id, id, "read", "member", true);

    /* A removal rewrites the entry before its reply: refused at once. */
    cJSON_Delete(h_ok(&stack, "DELETE",
                      h_fmt(path, sizeof(path), "/api/rooms/%s/members/%s", id, bob.id), alice.tok,
                      NULL));
    expect_denied(&c, bob.id, id, "send", "not_found");
    expect_denied(&c, carol.id, id, "read", "not_found");
    const char *uids1[] = {alice.id};
    const char *roles1[] = {"admin"};
    expect_cached(&c, id, true, uids1, roles1, 1);

    /* A privacy change is written through too. */
    cJSON_Delete(h_ok(&stack, "PUT", h_fmt(path, sizeof(path), "/api/rooms/%s", id), alice.tok,
                      "{\"is_private\":false}"));
    expect_cached(&c, id, false, uids1, roles1, 1);
    expect_allowed(&c, carol.id, id, "join", NULL, false);
    expect_denied(&c, carol.id, id, "send", "forbidden");

    /* A miss reads the database and fills the cache. */
    cr_assert_eq(kvStore_Delete(c.kv, id), NATS_OK);
    cr_assert_null(cache_get(&c, id));
    expect_allowed(&c, alice.id, id, "read", "admin", false);
    expect_cached(&c, id, false, uids1, roles1, 1);

    /* Deletion leaves a tombstone. */
    cJSON_Delete(
        h_ok(&stack, "DELETE", h_fmt(path, sizeof(path), "/api/rooms/%s", id), alice.tok, NULL));
    cJSON *j = cache_get(&c, id);
    cr_assert_not_null(j, "no tombstone");
    h_expect_str(j, "room_id", id);
    h_expect_bool(j, "exists", false);
    expect_absent(j, "members");
    cJSON_Delete(j);
    expect_denied(&c, alice.id, id, "read", "not_found");

    cache_close(&c);
    h_users_free(&alice, &bob, &carol, NULL);
}

/* A room with more members than NATTER_ROOMS_CACHE_MAX_MEMBERS (2 here) is
 * marked in the cache instead of listed: authorize then asks SQLite for the
 * caller alone, and a reader's create-if-absent cannot put a stale list back. */
Test(rooms, rooms_too_large_to_cache_are_marked_and_still_authorised)
{
    static const char *const extra[] = {"NATTER_ROOMS_CACHE_MAX_MEMBERS=2", NULL};
    user alice, bob, carol, dave;
    h_users_start(&stack, extra, &alice, "alice", &bob, "bob", &carol, "carol", &dave, "dave",
                  NULL);
    char id[64], path[256];
    room_create(&alice, "{\"name\":\"Crowd\"}", id, sizeof(id));
    cache c;
    cache_open(&c);
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), bob.tok, NULL));
    const char *uids2[] = {alice.id, bob.id};
    const char *roles2[] = {"admin", "member"};
    expect_cached(&c, id, false, uids2, roles2, 2);

    /* The third member turns the entry into a marker. */
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), carol.tok, NULL));
    cJSON *j = cache_get(&c, id);
    cr_assert_not_null(j, "no cache entry");
    h_expect_bool(j, "exists", true);
    h_expect_bool(j, "uncached", true);
    expect_absent(j, "members");
    cJSON_Delete(j);
    expect_allowed(&c, carol.id, id, "send", "member", false);
    expect_allowed(&c, alice.id, id, "delete", "admin", false);
    expect_denied(&c, dave.id, id, "send", "forbidden");
    expect_allowed(&c, dave.id, id, "join", NULL, false);

    /* A miss on a large room fills the marker, not the list. */
    cr_assert_eq(kvStore_Delete(c.kv, id), NATS_OK);
    expect_allowed(&c, bob.id, id, "read", "member", false);
    j = cache_get(&c, id);
    cr_assert_not_null(j, "the miss did not fill the cache");
    h_expect_bool(j, "uncached", true);
    cJSON_Delete(j);

    /* Back to two members: the list is cached again. */
    cJSON_Delete(h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/leave", id),
                      carol.tok, NULL));
    expect_cached(&c, id, false, uids2, roles2, 2);
    expect_denied(&c, carol.id, id, "send", "forbidden");

    cache_close(&c);
    h_users_free(&alice, &bob, &carol, &dave, NULL);
}

Test(rooms, a_caller_without_a_profile_gets_409)
{
    user alice, ghost;
    h_users_start(&stack, NULL, &alice, "alice", &ghost, "ghost", NULL);
    char id[64], path[256];
    room_create(&alice, "{\"name\":\"Lobby\"}", id, sizeof(id));
    sqlite3 *db = db_open();
    db_count1(db, "DELETE FROM users WHERE clerk_user_id = ?1", ghost.id);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM users WHERE clerk_user_id = ?1", ghost.id), 0);

    h_refused(&stack, "POST", "/api/rooms", ghost.tok, "{\"name\":\"Mine\"}", 409, "conflict",
              "POST /api/users");
    h_refused(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), ghost.tok, NULL,
              409, "conflict", "POST /api/users");
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM chat_rooms WHERE created_by = ?1", ghost.id),
                 0);
    cr_assert_eq(db_count1(db, "SELECT COUNT(*) FROM room_members WHERE user_id = ?1", ghost.id),
                 0);

    /* Once the profile exists the same requests succeed. */
    cJSON_Delete(h_ok(&stack, "POST", "/api/users", ghost.tok,
                      "{\"username\":\"ghost\",\"email\":\"ghost@example.com\"}"));
    cJSON_Delete(h_ok(&stack, "POST", "/api/rooms", ghost.tok, "{\"name\":\"Mine\"}"));
    cJSON *d = h_ok(&stack, "POST", path, ghost.tok, NULL);
    h_expect_str(d, "role", "member");
    cJSON_Delete(d);
    sqlite3_close(db);
    h_users_free(&alice, &ghost, NULL);
}

/* Members never fail because presence is down: with no presence service
 * listening, the list is still 200 and every member's "online" and
 * "last_seen" are null. */
Test(rooms, members_are_listed_with_null_presence_when_presence_is_down)
{
    user alice, bob;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", NULL);
    /* Whether or not the stack runs presence, none may answer here. */
    h_kill_by_name("presence", SIGKILL);
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, stack.nats_url), NATS_OK);
    natsStatus ns = natsConnection_RequestString(&reply, nc, "chat.presence.online",
                                                 "{\"user_ids\":[\"x\"]}", 500);
    natsMsg_Destroy(reply);
    natsConnection_Destroy(nc);
    cr_assert_eq(ns, NATS_NO_RESPONDERS, "presence must not be running: %s",
                 natsStatus_GetText(ns));

    char id[64], path[256];
    room_create(&alice, "{\"name\":\"Lobby\"}", id, sizeof(id));
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", id), bob.tok, NULL));
    cJSON *d =
        h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s/members", id), bob.tok, NULL);
    const cJSON *members = h_field(d, "members");
    cr_assert_eq(cJSON_GetArraySize(members), 2, "%s", cJSON_PrintUnformatted(d));
    const char *ids[] = {alice.id, bob.id};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *m = find_by(members, "user_id", ids[i]);
        cr_assert_not_null(m, "%s is not listed: %s", ids[i], cJSON_PrintUnformatted(d));
        cr_assert(cJSON_IsNull(h_field(m, "online")), "%s", cJSON_PrintUnformatted(m));
        cr_assert(cJSON_IsNull(h_field(m, "last_seen")), "%s", cJSON_PrintUnformatted(m));
        h_expect_str(m, "role", i == 0 ? "admin" : "member");
    }
    cJSON_Delete(d);
    h_users_free(&alice, &bob, NULL);
}
