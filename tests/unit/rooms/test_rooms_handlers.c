/* Unit tests of the rooms handlers, driven through the route table exactly as
 * the NATS adapter drives them, on a real in-memory SQLite store built from
 * schemas/migrations (tests run from the repository root). Events are
 * captured instead of published, auth's ensure_user is a fake, the clock is
 * fake so that joining order is ours to choose, and the cache is off. */
#include "../../../services/rooms/rooms.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_PROFILE "no profile for this user yet; create it with POST /api/users"
#define T0         1767225600000LL /* 2026-01-01T00:00:00.000Z */
#define T0_TEXT    "2026-01-01T00:00:00.000Z"
#define MISSING    "0190f5e2-7b1c-7c3d-8e4f-123456789abc" /* a room that never exists */
#define MAX_EVENTS 64

static nt_store *store;
static rooms_ctx ctx;
static cJSON *env; /* the envelope of the last call */

/* ---- the fake clock ---- */

static int64_t now_ms;

static int64_t fake_now(void)
{
    return now_ms;
}

/* ---- captured events ---- */

typedef struct {
    char subject[200];
    cJSON *payload;
} captured;

static captured events[MAX_EVENTS];
static size_t nevents;

static nt_status capture(void *arg, const char *subject, const char *data, size_t len)
{
    cr_assert_eq(arg, &events, "publish_arg is passed through");
    cr_assert_lt(nevents, (size_t)MAX_EVENTS);
    snprintf(events[nevents].subject, sizeof(events[nevents].subject), "%s", subject);
    events[nevents].payload = cJSON_ParseWithLength(data, len);
    cr_assert_not_null(events[nevents].payload, "event payload is JSON: %.*s", (int)len, data);
    nevents++;
    return NT_OK;
}

static void events_clear(void)
{
    for (size_t i = 0; i < nevents; i++)
        cJSON_Delete(events[i].payload);
    memset(events, 0, sizeof(events));
    nevents = 0;
}

/* The payload of the one captured event with this subject. */
static const cJSON *event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const cJSON *event(const char *fmt, ...)
{
    char subject[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(subject, sizeof(subject), fmt, ap);
    va_end(ap);
    const cJSON *found = NULL;
    for (size_t i = 0; i < nevents; i++) {
        if (strcmp(events[i].subject, subject) == 0) {
            cr_assert_null(found, "event %s published twice", subject);
            found = events[i].payload;
        }
    }
    cr_assert_not_null(found, "event %s was not published (%zu events)", subject, nevents);
    return found;
}

/* ---- the fake ensure_user ---- */

static struct {
    int calls;
    char user[ROOMS_USER_ID_MAX];
    char request_id[64];
    bool create;      /* insert the users row, as auth would */
    nt_status answer; /* what to return */
} ensure;

static void add_user(const char *user_id, const char *username);

static nt_status fake_ensure(void *arg, const char *user_id, const char *request_id)
{
    cr_assert_eq(arg, &ensure, "ensure_arg is passed through");
    ensure.calls++;
    snprintf(ensure.user, sizeof(ensure.user), "%s", user_id);
    snprintf(ensure.request_id, sizeof(ensure.request_id), "%s", request_id);
    if (ensure.create)
        add_user(user_id, "made_by_auth");
    return ensure.answer;
}

/* ---- the fake messages service (ctx.latest) ---- */

static struct {
    int calls;
    char user[ROOMS_USER_ID_MAX];
    char request_id[64];
    char room_id[NT_ID_LEN];
    nt_status answer;  /* what to return */
    const char *reply; /* the body returned with NT_OK */
    size_t reply_len;  /* its length (0: strlen) */
    bool call_back;    /* ask chat.rooms.authorize first, as the messages service does */
    nt_status authz;   /* what that returned */
} latest;

static nt_status fake_latest(void *arg, const char *user, const char *request_id,
                             const char *room_id, char **json_out, size_t *len)
{
    cr_assert_eq(arg, &latest, "latest_arg is passed through");
    latest.calls++;
    snprintf(latest.user, sizeof(latest.user), "%s", user);
    snprintf(latest.request_id, sizeof(latest.request_id), "%s", request_id);
    snprintf(latest.room_id, sizeof(latest.room_id), "%s", room_id);
    if (latest.call_back) {
        /* Through the route table, as the NATS adapter would run it: this
         * hangs (and the test times out) if rooms_get still holds a lock. */
        char body[128];
        snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"action\":\"read\"}", room_id);
        const nt_route *r = nt_route_find(rooms_routes, rooms_nroutes, "chat.rooms.authorize");
        nt_request req = {"chat.rooms.authorize", user, request_id, body, strlen(body)};
        nt_reply rep;
        memset(&rep, 0, sizeof(rep));
        nt_buf b;
        nt_buf_init(&b, 1 << 16);
        latest.authz = nt_route_dispatch(r, &ctx, &req, &rep, &b);
        nt_reply_clear(&rep);
        nt_buf_free(&b);
    }
    if (latest.answer != NT_OK)
        return latest.answer;
    size_t n = latest.reply_len > 0 ? latest.reply_len : strlen(latest.reply);
    *json_out = malloc(n + 1);
    cr_assert_not_null(*json_out);
    memcpy(*json_out, latest.reply, n);
    (*json_out)[n] = '\0';
    *len = n;
    return NT_OK;
}

/* ---- the fake presence service (ctx.online) ---- */

static struct {
    int calls;
    char user[ROOMS_USER_ID_MAX];
    char request_id[64];
    char body[4096];   /* the request body it was given */
    nt_status answer;  /* what to return */
    const char *reply; /* the body returned with NT_OK */
    size_t reply_len;  /* its length (0: strlen) */
} presence;

static nt_status fake_online(void *arg, const char *user, const char *request_id, const char *body,
                             size_t body_len, char **json_out, size_t *len)
{
    cr_assert_eq(arg, &presence, "online_arg is passed through");
    presence.calls++;
    snprintf(presence.user, sizeof(presence.user), "%s", user);
    snprintf(presence.request_id, sizeof(presence.request_id), "%s", request_id);
    cr_assert_lt(body_len, sizeof(presence.body));
    memcpy(presence.body, body, body_len);
    presence.body[body_len] = '\0';
    if (presence.answer != NT_OK)
        return presence.answer;
    size_t n = presence.reply_len > 0 ? presence.reply_len : strlen(presence.reply);
    *json_out = malloc(n + 1);
    cr_assert_not_null(*json_out);
    memcpy(*json_out, presence.reply, n);
    (*json_out)[n] = '\0';
    *len = n;
    return NT_OK;
}

/* ---- the store ---- */

static void sql_exec(const char *sql, const char *const *params, int n)
{
    sqlite3 *db = nt_store_lock(store);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(s, i + 1, params[i], -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    nt_store_unlock(store);
    cr_assert_eq(rc, SQLITE_DONE, "%s", sql);
}

static long long sql_count(const char *sql, const char *param)
{
    sqlite3 *db = nt_store_lock(store);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sql);
    if (param != NULL)
        sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "%s", sql);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    nt_store_unlock(store);
    return n;
}

static void add_user(const char *user_id, const char *username)
{
    char id[ROOMS_USER_ID_MAX + 8], email[ROOMS_USER_ID_MAX + 16];
    snprintf(id, sizeof(id), "p-%s", user_id);
    snprintf(email, sizeof(email), "%s@example.com", user_id);
    const char *p[] = {id, user_id, username, email};
    sql_exec("INSERT INTO users (id, clerk_user_id, username, email) VALUES (?1, ?2, ?3, ?4)", p,
             4);
}

/* The stored role of user in room ("" when not a member). */
static const char *stored_role(const char *room, const char *user)
{
    static char role[16];
    sqlite3 *db = nt_store_lock(store);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "SELECT role FROM room_members WHERE room_id = ?1 AND user_id = ?2", -1,
                       &s, NULL);
    sqlite3_bind_text(s, 1, room, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, user, -1, SQLITE_TRANSIENT);
    role[0] = '\0';
    if (sqlite3_step(s) == SQLITE_ROW)
        snprintf(role, sizeof(role), "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    nt_store_unlock(store);
    return role;
}

static long long member_count(const char *room)
{
    return sql_count("SELECT COUNT(*) FROM room_members WHERE room_id = ?1", room);
}

/* ---- fixture ---- */

static void setup(void)
{
    nt_log_set_level(NT_LOG_ERROR);
    now_ms = T0;
    nt_clock_set_fake(fake_now);
    cr_assert_eq(nt_store_open(":memory:", "schemas/migrations", &store), NT_OK,
                 "run the unit tests from the repository root");
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = store;
    ctx.cache = NULL;
    ctx.publish = capture;
    ctx.publish_arg = &events;
    ctx.ensure_user = fake_ensure;
    ctx.ensure_arg = &ensure;
    memset(&ensure, 0, sizeof(ensure));
    ensure.answer = NT_OK;
    ctx.latest = NULL; /* as before the messages service: tests that want it set it */
    ctx.latest_arg = &latest;
    memset(&latest, 0, sizeof(latest));
    latest.answer = NT_OK;
    latest.reply = "{\"data\":{\"messages\":[],\"has_more\":false,\"next_cursor\":null}}";
    ctx.online = NULL; /* as without a presence service: tests that want it set it */
    ctx.online_arg = &presence;
    memset(&presence, 0, sizeof(presence));
    presence.answer = NT_OK;
    presence.reply = "{\"data\":{\"users\":{}}}";
    add_user("u_ann", "ann");
    add_user("u_bob", "bob");
    add_user("u_cat", "cat");
    add_user("u_dan", "dan");
    add_user("u_eve", "eve");
}

static void teardown(void)
{
    cJSON_Delete(env);
    env = NULL;
    events_clear();
    nt_store_close(store);
    store = NULL;
    nt_clock_set_fake(NULL);
}

TestSuite(rooms_handlers, .init = setup, .fini = teardown);

/* ---- calling a route ---- */

/* Dispatches body as user (NULL: no Chat-User) to subject through the route
 * table and keeps the parsed envelope in env. */
static nt_status call_raw(const char *subject, const char *user, const char *body, size_t len)
{
    const nt_route *r = nt_route_find(rooms_routes, rooms_nroutes, subject);
    cr_assert_not_null(r, "no route %s", subject);
    nt_request req = {subject, user, "rid-1", body, len};
    nt_reply rep;
    memset(&rep, 0, sizeof(rep));
    nt_buf b;
    nt_buf_init(&b, 1 << 22);
    nt_status st = nt_route_dispatch(r, &ctx, &req, &rep, &b);
    nt_reply_clear(&rep);
    size_t n = 0;
    char *out = nt_buf_steal(&b, &n);
    cJSON_Delete(env);
    env = cJSON_ParseWithLength(out, n);
    cr_assert_not_null(env, "reply is JSON: %s", out);
    free(out);
    /* The envelope agrees with the status. */
    if (st == NT_OK)
        cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(env, "data"));
    else
        cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(env, "error"));
    return st;
}

static nt_status call(const char *subject, const char *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nt_status call(const char *subject, const char *user, const char *fmt, ...)
{
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(body));
    return call_raw(subject, user, body, (size_t)n);
}

static const cJSON *data(void)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(env, "data");
    cr_assert_not_null(d, "not a success envelope");
    return d;
}

static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert_not_null(v, "no '%s'", key);
    return v;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = field(o, key);
    cr_assert(cJSON_IsString(v), "'%s' is not a string", key);
    return v->valuestring;
}

static bool is_null(const cJSON *o, const char *key)
{
    return cJSON_IsNull(field(o, key));
}

static bool flag(const cJSON *o, const char *key)
{
    const cJSON *v = field(o, key);
    cr_assert(cJSON_IsBool(v), "'%s' is not a boolean", key);
    return cJSON_IsTrue(v);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = field(o, key);
    cr_assert(cJSON_IsNumber(v), "'%s' is not a number", key);
    return v->valuedouble;
}

static const char *err_code(void)
{
    return str(field(env, "error"), "code");
}

static const char *err_message(void)
{
    return str(field(env, "error"), "message");
}

/* True when obj has exactly the keys in names (NULL-terminated). */
static bool has_exactly(const cJSON *obj, const char *const *names)
{
    int n = 0;
    for (; names[n] != NULL; n++) {
        if (cJSON_GetObjectItemCaseSensitive(obj, names[n]) == NULL)
            return false;
    }
    return cJSON_IsObject(obj) && cJSON_GetArraySize(obj) == n;
}

static const char *const room_view_keys[] = {
    "id",         "name",         "description", "is_private",       "created_by",
    "created_at", "member_count", "role",        "last_activity_at", NULL};
static const char *const room_event_keys[] = {
    "id",         "name",         "description",      "is_private", "created_by",
    "created_at", "member_count", "last_activity_at", NULL};
static const char *const member_keys[] = {"room_id", "user_id",   "username", "avatar_url",
                                          "role",    "joined_at", NULL};
/* A member as chat.rooms.members lists it: with presence's view of them. */
static const char *const listed_member_keys[] = {"room_id",    "user_id",   "username",
                                                 "avatar_url", "role",      "joined_at",
                                                 "online",     "last_seen", NULL};

/* ---- helpers for common steps ---- */

static void create_room(const char *user, const char *name, bool is_private, char out[NT_ID_LEN])
{
    cr_assert_eq(call("chat.rooms.create", user, "{\"name\":\"%s\",\"is_private\":%s}", name,
                      is_private ? "true" : "false"),
                 NT_OK, "create %s: %s", name, cJSON_PrintUnformatted(env));
    snprintf(out, NT_ID_LEN, "%s", str(data(), "id"));
    cr_assert(nt_id_valid(out));
}

static void join(const char *user, const char *room)
{
    cr_assert_eq(call("chat.rooms.join", user, "{\"room_id\":\"%s\"}", room), NT_OK, "join %s",
                 user);
}

static void invite(const char *by, const char *room, const char *user)
{
    cr_assert_eq(
        call("chat.rooms.invite", by, "{\"room_id\":\"%s\",\"user_id\":\"%s\"}", room, user), NT_OK,
        "invite %s", user);
}

static void set_role(const char *by, const char *room, const char *user, const char *role)
{
    cr_assert_eq(call("chat.rooms.set_role", by,
                      "{\"room_id\":\"%s\",\"user_id\":\"%s\",\"role\":\"%s\"}", room, user, role),
                 NT_OK, "set_role %s %s", user, role);
}

static void iso(int64_t ms, char out[NT_ISO8601_LEN])
{
    nt_clock_iso8601(ms, out);
}

/* ---- create ---- */

Test(rooms_handlers, create_makes_the_caller_admin_and_replies_with_the_room_view)
{
    cr_assert_eq(call("chat.rooms.create", "u_ann",
                      "{\"name\":\"  Lobby  \",\"description\":\"  hello\\nworld \"}"),
                 NT_OK, "%s", err_message());
    const cJSON *d = data();
    cr_assert(has_exactly(d, room_view_keys), "%s", cJSON_PrintUnformatted(d));
    char room[NT_ID_LEN];
    snprintf(room, sizeof(room), "%s", str(d, "id"));
    cr_assert(nt_id_valid(room));
    cr_assert_str_eq(str(d, "name"), "Lobby", "trimmed");
    cr_assert_str_eq(str(d, "description"), "hello\nworld");
    cr_assert_not(flag(d, "is_private"), "public by default");
    cr_assert_str_eq(str(d, "created_by"), "u_ann");
    cr_assert_str_eq(str(d, "created_at"), T0_TEXT);
    cr_assert_eq(num(d, "member_count"), 1);
    cr_assert_str_eq(str(d, "role"), "admin");
    cr_assert_str_eq(str(d, "last_activity_at"), T0_TEXT);
    cr_assert_eq(nevents, 0, "the contract names no event for create");
    cr_assert_str_eq(stored_role(room, "u_ann"), "admin");
    cr_assert_eq(ensure.calls, 0, "the profile exists: auth is not asked");

    cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    const cJSON *ms = field(data(), "members");
    cr_assert_eq(cJSON_GetArraySize(ms), 1);
    const cJSON *m = cJSON_GetArrayItem(ms, 0);
    cr_assert(has_exactly(m, listed_member_keys), "%s", cJSON_PrintUnformatted(m));
    cr_assert(is_null(m, "online"), "no presence seam: null");
    cr_assert(is_null(m, "last_seen"));
    cr_assert_str_eq(str(m, "user_id"), "u_ann");
    cr_assert_str_eq(str(m, "username"), "ann");
    cr_assert(is_null(m, "avatar_url"));
    cr_assert_str_eq(str(m, "role"), "admin");
    cr_assert_str_eq(str(m, "joined_at"), T0_TEXT);
    cr_assert(is_null(data(), "next_cursor"));

    /* A blank description is no description; privacy is honoured. */
    cr_assert_eq(call("chat.rooms.create", "u_ann",
                      "{\"name\":\"Den\",\"description\":\"   \",\"is_private\":true}"),
                 NT_OK);
    cr_assert(is_null(data(), "description"));
    cr_assert(flag(data(), "is_private"));
    cr_assert_eq(call("chat.rooms.create", "u_ann", "{\"name\":\"Den\",\"description\":null}"),
                 NT_OK);
    cr_assert(is_null(data(), "description"));
}

Test(rooms_handlers, create_checks_its_fields_and_writes_nothing_on_refusal)
{
    char long_name[200], long_desc[1100];
    memset(long_name, 'n', 101);
    long_name[101] = '\0';
    memset(long_desc, 'd', 1001);
    long_desc[1001] = '\0';
    struct {
        const char *body, *field;
    } bad[] = {
        {"{}", "'name'"},
        {"{\"name\":\"\"}", "'name'"},
        {"{\"name\":\"   \"}", "'name'"},
        {"{\"name\":null}", "'name'"},
        {"{\"name\":5}", "'name'"},
        {"{\"name\":[\"x\"]}", "'name'"},
        {"{\"name\":\"a\\u0001b\"}", "'name'"},
        {"{\"name\":\"a\\nb\"}", "'name'"},
        {"{\"name\":\"a\\tb\"}", "'name'"},
        {"{\"name\":\"x\",\"description\":5}", "'description'"},
        {"{\"name\":\"x\",\"description\":\"bell\\u0007\"}", "'description'"},
        {"{\"name\":\"x\",\"description\":\"a\\rb\"}", "'description'"},
        {"{\"name\":\"x\",\"is_private\":\"yes\"}", "'is_private'"},
        {"{\"name\":\"x\",\"is_private\":1}", "'is_private'"},
        {"{\"name\":\"x\",\"colour\":\"red\"}", "unknown field 'colour'"},
        {"{\"Name\":\"x\"}", "unknown field 'Name'"},
        {"[1]", "object"},
        {"{", "JSON"},
        {"\"x\"", "object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(call_raw("chat.rooms.create", "u_ann", bad[i].body, strlen(bad[i].body)),
                     NT_EINVAL, "%s", bad[i].body);
        cr_assert_str_eq(err_code(), "invalid_request");
        cr_assert(strstr(err_message(), bad[i].field) != NULL, "%s: '%s' should name %s",
                  bad[i].body, err_message(), bad[i].field);
    }
    cr_assert_eq(call("chat.rooms.create", "u_ann", "{\"name\":\"%s\"}", long_name), NT_EINVAL);
    cr_assert(strstr(err_message(), "'name'") != NULL, "%s", err_message());
    cr_assert_eq(
        call("chat.rooms.create", "u_ann", "{\"name\":\"x\",\"description\":\"%s\"}", long_desc),
        NT_EINVAL);
    cr_assert(strstr(err_message(), "'description'") != NULL, "%s", err_message());
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms", NULL), 0);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM room_members", NULL), 0);
    cr_assert_eq(nevents, 0);

    /* The limits themselves are allowed: 100 characters of name, 1000 of description. */
    long_name[100] = '\0';
    long_desc[1000] = '\0';
    cr_assert_eq(call("chat.rooms.create", "u_ann", "{\"name\":\"%s\",\"description\":\"%s\"}",
                      long_name, long_desc),
                 NT_OK, "%s", err_message());
}

/* ---- the ensure_user path ---- */

Test(rooms_handlers, create_without_a_profile_asks_auth_and_succeeds_when_it_makes_one)
{
    ensure.create = true;
    cr_assert_eq(call("chat.rooms.create", "u_new", "{\"name\":\"Fresh\"}"), NT_OK, "%s",
                 cJSON_PrintUnformatted(env));
    cr_assert_eq(ensure.calls, 1);
    cr_assert_str_eq(ensure.user, "u_new");
    cr_assert_str_eq(ensure.request_id, "rid-1", "the request id is passed on");
    cr_assert_str_eq(str(data(), "created_by"), "u_new");
    cr_assert_str_eq(str(data(), "role"), "admin");
    cr_assert_str_eq(stored_role(str(data(), "id"), "u_new"), "admin");
}

Test(rooms_handlers, create_without_a_profile_is_a_conflict_when_auth_cannot_help)
{
    /* Auth says there is no profile. */
    ensure.answer = NT_ENOTFOUND;
    cr_assert_eq(call("chat.rooms.create", "u_new", "{\"name\":\"Fresh\"}"), NT_ECONFLICT);
    cr_assert_str_eq(err_code(), "conflict");
    cr_assert_str_eq(err_message(), NO_PROFILE);
    cr_assert_eq(ensure.calls, 1);
    /* Auth cannot be asked: that is an outage, not a missing profile. */
    ensure.answer = NT_ETIMEOUT;
    cr_assert_eq(call("chat.rooms.create", "u_new", "{\"name\":\"Fresh\"}"), NT_EUNAVAIL);
    cr_assert_str_eq(err_code(), "unavailable");
    cr_assert(strstr(err_message(), "auth is unavailable") != NULL, "%s", err_message());
    cr_assert_eq(ensure.calls, 2);
    /* Auth says yes but no row appears. */
    ensure.answer = NT_OK;
    cr_assert_eq(call("chat.rooms.create", "u_new", "{\"name\":\"Fresh\"}"), NT_ECONFLICT);
    cr_assert_str_eq(err_message(), NO_PROFILE);
    cr_assert_eq(ensure.calls, 3, "asked once per request");
    /* No auth to ask at all. */
    ctx.ensure_user = NULL;
    cr_assert_eq(call("chat.rooms.create", "u_new", "{\"name\":\"Fresh\"}"), NT_ECONFLICT);
    cr_assert_str_eq(err_message(), NO_PROFILE);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms", NULL), 0);
    cr_assert_eq(nevents, 0);
}

Test(rooms_handlers, join_without_a_profile_asks_auth_too)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Open", false, room);
    ensure.answer = NT_ENOTFOUND;
    cr_assert_eq(call("chat.rooms.join", "u_new", "{\"room_id\":\"%s\"}", room), NT_ECONFLICT);
    cr_assert_str_eq(err_message(), NO_PROFILE);
    cr_assert_eq(member_count(room), 1);
    cr_assert_eq(nevents, 0);
    ensure.answer = NT_OK;
    ensure.create = true;
    cr_assert_eq(call("chat.rooms.join", "u_new", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert_eq(ensure.calls, 2);
    cr_assert_str_eq(stored_role(room, "u_new"), "member");
    cr_assert_str_eq(str(event("chat.room.%s.user_joined", room), "username"), "made_by_auth");
}

/* ---- events after each write ---- */

Test(rooms_handlers, invite_publishes_user_joined_and_room_invited)
{
    char room[NT_ID_LEN], at[NT_ISO8601_LEN];
    create_room("u_ann", "Lobby", false, room);
    now_ms = T0 + 1500;
    iso(now_ms, at);
    invite("u_ann", room, "u_bob");
    const cJSON *d = data();
    cr_assert(has_exactly(d, member_keys), "%s", cJSON_PrintUnformatted(d));
    cr_assert_str_eq(str(d, "room_id"), room);
    cr_assert_str_eq(str(d, "user_id"), "u_bob");
    cr_assert_str_eq(str(d, "username"), "bob");
    cr_assert(is_null(d, "avatar_url"));
    cr_assert_str_eq(str(d, "role"), "member");
    cr_assert_str_eq(str(d, "joined_at"), at);

    cr_assert_eq(nevents, 2);
    static const char *const joined_keys[] = {"room_id", "user_id",   "username",   "avatar_url",
                                              "role",    "joined_at", "invited_by", NULL};
    const cJSON *j = event("chat.room.%s.user_joined", room);
    cr_assert(has_exactly(j, joined_keys), "%s", cJSON_PrintUnformatted(j));
    cr_assert_str_eq(str(j, "user_id"), "u_bob");
    cr_assert_str_eq(str(j, "username"), "bob");
    cr_assert_str_eq(str(j, "role"), "member");
    cr_assert_str_eq(str(j, "joined_at"), at);
    cr_assert_str_eq(str(j, "invited_by"), "u_ann");

    static const char *const invited_keys[] = {"room", "role", "invited_by", NULL};
    const cJSON *inv = event("chat.user.u_bob.room_invited");
    cr_assert(has_exactly(inv, invited_keys), "%s", cJSON_PrintUnformatted(inv));
    cr_assert_str_eq(str(inv, "role"), "member");
    cr_assert_str_eq(str(inv, "invited_by"), "u_ann");
    const cJSON *r = field(inv, "room");
    cr_assert(has_exactly(r, room_event_keys), "%s", cJSON_PrintUnformatted(r));
    cr_assert_str_eq(str(r, "id"), room);
    cr_assert_eq(num(r, "member_count"), 2);
    cr_assert_str_eq(str(r, "last_activity_at"), at, "the invitation is the newest join");
}

Test(rooms_handlers, join_publishes_user_joined_once)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    const cJSON *d = data();
    cr_assert(has_exactly(d, room_view_keys));
    cr_assert_str_eq(str(d, "role"), "member");
    cr_assert_eq(num(d, "member_count"), 2);
    cr_assert_eq(nevents, 1);
    const cJSON *j = event("chat.room.%s.user_joined", room);
    cr_assert_str_eq(str(j, "user_id"), "u_bob");
    cr_assert(is_null(j, "invited_by"));
    events_clear();

    /* Already a member: the same reply, no event. */
    join("u_bob", room);
    cr_assert_str_eq(str(data(), "role"), "member");
    cr_assert_eq(num(data(), "member_count"), 2);
    join("u_ann", room);
    cr_assert_str_eq(str(data(), "role"), "admin", "joining again changes no role");
    cr_assert_eq(nevents, 0);
    cr_assert_eq(member_count(room), 2);
}

Test(rooms_handlers, set_role_publishes_member_updated_unless_unchanged)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    events_clear();

    set_role("u_ann", room, "u_bob", "moderator");
    cr_assert(has_exactly(data(), member_keys));
    cr_assert_str_eq(str(data(), "role"), "moderator");
    cr_assert_eq(nevents, 1);
    static const char *const keys[] = {"room_id",       "user_id", "username", "role",
                                       "previous_role", "by",      NULL};
    const cJSON *e = event("chat.room.%s.member_updated", room);
    cr_assert(has_exactly(e, keys), "%s", cJSON_PrintUnformatted(e));
    cr_assert_str_eq(str(e, "room_id"), room);
    cr_assert_str_eq(str(e, "user_id"), "u_bob");
    cr_assert_str_eq(str(e, "username"), "bob");
    cr_assert_str_eq(str(e, "role"), "moderator");
    cr_assert_str_eq(str(e, "previous_role"), "member");
    cr_assert_str_eq(str(e, "by"), "u_ann");
    events_clear();

    /* The same role again: 200 and no event. */
    set_role("u_ann", room, "u_bob", "moderator");
    cr_assert_str_eq(str(data(), "role"), "moderator");
    cr_assert_eq(nevents, 0);

    /* Two admins: the first may step down; then the last may not. */
    set_role("u_ann", room, "u_bob", "admin");
    cr_assert_str_eq(str(event("chat.room.%s.member_updated", room), "previous_role"), "moderator");
    events_clear();
    set_role("u_ann", room, "u_ann", "member");
    cr_assert_str_eq(stored_role(room, "u_ann"), "member");
    events_clear();
    cr_assert_eq(call("chat.rooms.set_role", "u_bob",
                      "{\"room_id\":\"%s\",\"user_id\":\"u_bob\",\"role\":\"moderator\"}", room),
                 NT_ECONFLICT);
    cr_assert(strstr(err_message(), "at least one admin") != NULL, "%s", err_message());
    cr_assert_str_eq(stored_role(room, "u_bob"), "admin");
    cr_assert_eq(nevents, 0);

    const char *bad[] = {"\"owner\"", "\"Admin\"", "null", "1", "\"\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(call("chat.rooms.set_role", "u_bob",
                          "{\"room_id\":\"%s\",\"user_id\":\"u_ann\",\"role\":%s}", room, bad[i]),
                     NT_EINVAL, "%s", bad[i]);
        cr_assert(strstr(err_message(), "'role'") != NULL, "%s", err_message());
    }
    cr_assert_eq(
        call("chat.rooms.set_role", "u_bob", "{\"room_id\":\"%s\",\"user_id\":\"u_ann\"}", room),
        NT_EINVAL);
    cr_assert_eq(nevents, 0);
}

Test(rooms_handlers, update_publishes_room_updated_without_role)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    events_clear();
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"name\":\" Hall \"}", room), NT_OK,
        "%s", err_message());
    cr_assert(has_exactly(data(), room_view_keys));
    cr_assert_str_eq(str(data(), "name"), "Hall");
    cr_assert_str_eq(str(data(), "role"), "admin");
    cr_assert_eq(nevents, 1);
    const cJSON *e = event("chat.room.%s.room_updated", room);
    cr_assert(has_exactly(e, room_event_keys), "%s", cJSON_PrintUnformatted(e));
    cr_assert_str_eq(str(e, "id"), room);
    cr_assert_str_eq(str(e, "name"), "Hall");
    cr_assert_eq(num(e, "member_count"), 2);
    events_clear();

    /* Description: set, then null clears it; a blank one is null too. */
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"description\":\"d\"}", room),
        NT_OK);
    cr_assert_str_eq(str(data(), "description"), "d");
    cr_assert_str_eq(str(data(), "name"), "Hall", "the name is kept");
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"description\":null}", room),
        NT_OK);
    cr_assert(is_null(data(), "description"));
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"description\":\"d\"}", room),
        NT_OK);
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"description\":\"  \"}", room),
        NT_OK);
    cr_assert(is_null(data(), "description"));
    cr_assert_eq(nevents, 4);
    events_clear();

    /* Public to private keeps the members; outsiders then see nothing. */
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"is_private\":true}", room),
        NT_OK);
    cr_assert(flag(event("chat.room.%s.room_updated", room), "is_private"));
    cr_assert_eq(member_count(room), 2);
    cr_assert_eq(call("chat.rooms.get", "u_bob", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert_eq(call("chat.rooms.get", "u_eve", "{\"room_id\":\"%s\"}", room), NT_ENOTFOUND);
    events_clear();

    /* Nothing to update, or a null name: 400 and no event. */
    cr_assert_eq(call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\"}", room), NT_EINVAL);
    cr_assert_eq(call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"name\":null}", room),
                 NT_EINVAL);
    cr_assert(strstr(err_message(), "'name'") != NULL, "%s", err_message());
    cr_assert_eq(call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"name\":\"\"}", room),
                 NT_EINVAL);
    cr_assert_eq(
        call("chat.rooms.update", "u_ann", "{\"room_id\":\"%s\",\"is_private\":\"no\"}", room),
        NT_EINVAL);
    cr_assert_eq(nevents, 0);
}

Test(rooms_handlers, remove_member_publishes_user_left_and_room_removed)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    join("u_cat", room);
    set_role("u_ann", room, "u_bob", "moderator");
    events_clear();
    cr_assert_eq(call("chat.rooms.remove_member", "u_bob",
                      "{\"room_id\":\"%s\",\"user_id\":\"u_cat\"}", room),
                 NT_OK, "%s", cJSON_PrintUnformatted(env));
    static const char *const reply_keys[] = {"room_id", "user_id", "removed", NULL};
    cr_assert(has_exactly(data(), reply_keys), "%s", cJSON_PrintUnformatted(data()));
    cr_assert_str_eq(str(data(), "room_id"), room);
    cr_assert_str_eq(str(data(), "user_id"), "u_cat");
    cr_assert(flag(data(), "removed"));
    cr_assert_eq(nevents, 2);
    static const char *const left_keys[] = {"room_id", "user_id", "username", "reason", "by", NULL};
    const cJSON *l = event("chat.room.%s.user_left", room);
    cr_assert(has_exactly(l, left_keys), "%s", cJSON_PrintUnformatted(l));
    cr_assert_str_eq(str(l, "user_id"), "u_cat");
    cr_assert_str_eq(str(l, "username"), "cat");
    cr_assert_str_eq(str(l, "reason"), "removed");
    cr_assert_str_eq(str(l, "by"), "u_bob");
    static const char *const removed_keys[] = {"room_id", "reason", "by", NULL};
    const cJSON *r = event("chat.user.u_cat.room_removed");
    cr_assert(has_exactly(r, removed_keys), "%s", cJSON_PrintUnformatted(r));
    cr_assert_str_eq(str(r, "room_id"), room);
    cr_assert_str_eq(str(r, "reason"), "removed");
    cr_assert_str_eq(str(r, "by"), "u_bob");
    cr_assert_str_eq(stored_role(room, "u_cat"), "");

    /* An admin removes a moderator. */
    events_clear();
    cr_assert_eq(call("chat.rooms.remove_member", "u_ann",
                      "{\"room_id\":\"%s\",\"user_id\":\"u_bob\"}", room),
                 NT_OK);
    cr_assert_str_eq(str(event("chat.room.%s.user_left", room), "by"), "u_ann");
    cr_assert_eq(member_count(room), 1);
}

Test(rooms_handlers, leave_publishes_user_left)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    events_clear();
    cr_assert_eq(call("chat.rooms.leave", "u_bob", "{\"room_id\":\"%s\"}", room), NT_OK);
    static const char *const keys[] = {"room_id", "left", "room_deleted", "new_admin", NULL};
    cr_assert(has_exactly(data(), keys), "%s", cJSON_PrintUnformatted(data()));
    cr_assert_str_eq(str(data(), "room_id"), room);
    cr_assert(flag(data(), "left"));
    cr_assert_not(flag(data(), "room_deleted"));
    cr_assert(is_null(data(), "new_admin"));
    cr_assert_eq(nevents, 1);
    const cJSON *l = event("chat.room.%s.user_left", room);
    cr_assert_str_eq(str(l, "user_id"), "u_bob");
    cr_assert_str_eq(str(l, "reason"), "left");
    cr_assert(is_null(l, "by"));
    cr_assert_eq(member_count(room), 1);
    /* Leaving again: no longer a member. */
    events_clear();
    cr_assert_eq(call("chat.rooms.leave", "u_bob", "{\"room_id\":\"%s\"}", room), NT_EFORBIDDEN);
    cr_assert_eq(nevents, 0);
}

Test(rooms_handlers, delete_publishes_room_deleted_and_room_removed_to_every_member)
{
    char room[NT_ID_LEN], other[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    create_room("u_ann", "Other", false, other);
    join("u_bob", room);
    invite("u_ann", room, "u_cat");
    join("u_bob", other);
    const char *p[] = {room};
    sql_exec(
        "INSERT INTO messages (id, room_id, user_id, content) VALUES ('m1', ?1, 'u_bob', 'hi')", p,
        1);
    events_clear();
    cr_assert_eq(call("chat.rooms.delete", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    static const char *const keys[] = {"room_id", "deleted", NULL};
    cr_assert(has_exactly(data(), keys));
    cr_assert_str_eq(str(data(), "room_id"), room);
    cr_assert(flag(data(), "deleted"));
    cr_assert_eq(nevents, 4, "room_deleted and one room_removed per former member");
    static const char *const deleted_keys[] = {"room_id", "deleted_by", NULL};
    const cJSON *e = event("chat.room.%s.room_deleted", room);
    cr_assert(has_exactly(e, deleted_keys));
    cr_assert_str_eq(str(e, "room_id"), room);
    cr_assert_str_eq(str(e, "deleted_by"), "u_ann");
    const char *users[] = {"u_ann", "u_bob", "u_cat"};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *r = event("chat.user.%s.room_removed", users[i]);
        cr_assert_str_eq(str(r, "room_id"), room);
        cr_assert_str_eq(str(r, "reason"), "deleted");
        cr_assert_str_eq(str(r, "by"), "u_ann");
    }
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms WHERE id = ?1", room), 0);
    cr_assert_eq(member_count(room), 0);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM messages WHERE room_id = ?1", room), 0);
    cr_assert_eq(member_count(other), 2, "other rooms are untouched");
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_ENOTFOUND);
}

/* ---- leaving as the last member or the last admin ---- */

Test(rooms_handlers, last_member_leaving_deletes_the_room_and_its_messages)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Solo", true, room);
    const char *p[] = {room};
    sql_exec(
        "INSERT INTO messages (id, room_id, user_id, content) VALUES ('m1', ?1, 'u_ann', 'hi')", p,
        1);
    events_clear();
    cr_assert_eq(call("chat.rooms.leave", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert(flag(data(), "left"));
    cr_assert(flag(data(), "room_deleted"));
    cr_assert(is_null(data(), "new_admin"));
    cr_assert_eq(nevents, 2, "room_deleted and room_removed, no user_left");
    cr_assert_str_eq(str(event("chat.room.%s.room_deleted", room), "deleted_by"), "u_ann");
    const cJSON *r = event("chat.user.u_ann.room_removed");
    cr_assert_str_eq(str(r, "reason"), "deleted");
    cr_assert_str_eq(str(r, "by"), "u_ann");
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms WHERE id = ?1", room), 0);
    cr_assert_eq(member_count(room), 0);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM messages WHERE room_id = ?1", room), 0);
}

Test(rooms_handlers, last_admin_leaving_promotes_the_longest_standing_member)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    /* Bob is inserted first but joins later: the order is joined_at, not
     * insertion order nor user id. */
    now_ms = T0 + 2000;
    join("u_bob", room);
    now_ms = T0 + 1000;
    join("u_cat", room);
    now_ms = T0 + 3000;
    join("u_dan", room);
    set_role("u_ann", room, "u_dan", "moderator");
    events_clear();
    now_ms = T0 + 5000;
    cr_assert_eq(call("chat.rooms.leave", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert_not(flag(data(), "room_deleted"));
    cr_assert_str_eq(str(data(), "new_admin"), "u_cat");
    cr_assert_eq(nevents, 2);
    const cJSON *l = event("chat.room.%s.user_left", room);
    cr_assert_str_eq(str(l, "user_id"), "u_ann");
    cr_assert_str_eq(str(l, "reason"), "left");
    cr_assert(is_null(l, "by"));
    const cJSON *u = event("chat.room.%s.member_updated", room);
    cr_assert_str_eq(str(u, "user_id"), "u_cat");
    cr_assert_str_eq(str(u, "username"), "cat");
    cr_assert_str_eq(str(u, "role"), "admin");
    cr_assert_str_eq(str(u, "previous_role"), "member");
    cr_assert(is_null(u, "by"), "an automatic promotion has no author");
    cr_assert_str_eq(stored_role(room, "u_cat"), "admin");
    cr_assert_str_eq(stored_role(room, "u_bob"), "member");
    cr_assert_str_eq(stored_role(room, "u_dan"), "moderator");
    cr_assert_str_eq(stored_role(room, "u_ann"), "");
}

Test(rooms_handlers, succession_ties_go_to_the_first_of_the_member_list)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    /* Same millisecond: Dan is inserted first, Bob has the smaller user id. */
    now_ms = T0 + 1000;
    join("u_dan", room);
    join("u_bob", room);
    cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    const char *first = str(cJSON_GetArrayItem(field(data(), "members"), 1), "user_id");
    cr_assert_str_eq(first, "u_bob", "the member list breaks ties by user id");
    cr_assert_eq(call("chat.rooms.leave", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert_str_eq(str(data(), "new_admin"), "u_bob", "succession follows the member list");
    cr_assert_str_eq(stored_role(room, "u_bob"), "admin");
    cr_assert_str_eq(stored_role(room, "u_dan"), "member");
}

Test(rooms_handlers, admin_leaving_while_another_admin_remains_promotes_nobody)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    now_ms = T0 + 1000;
    join("u_cat", room);
    now_ms = T0 + 2000;
    join("u_bob", room);
    set_role("u_ann", room, "u_bob", "admin");
    events_clear();
    cr_assert_eq(call("chat.rooms.leave", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert(is_null(data(), "new_admin"));
    cr_assert_eq(nevents, 1, "user_left only");
    event("chat.room.%s.user_left", room);
    cr_assert_str_eq(stored_role(room, "u_cat"), "member");
    cr_assert_str_eq(stored_role(room, "u_bob"), "admin");
}

/* ---- refusals change nothing and publish nothing ---- */

Test(rooms_handlers, refused_writes_publish_nothing)
{
    char pub[NT_ID_LEN], priv[NT_ID_LEN];
    create_room("u_ann", "Public", false, pub);
    create_room("u_ann", "Private", true, priv);
    join("u_bob", pub);
    join("u_cat", pub);
    join("u_dan", pub);
    set_role("u_ann", pub, "u_cat", "moderator");
    set_role("u_ann", pub, "u_dan", "moderator");
    invite("u_ann", priv, "u_bob");
    events_clear();
    struct {
        const char *subject, *user;
        char which; /* P: the public room, Q: the private one, X: a missing one */
        const char *extra;
        nt_status want;
    } cases[] = {
        {"chat.rooms.update", "u_bob", 'P', ",\"name\":\"Mine\"", NT_EFORBIDDEN},
        {"chat.rooms.update", "u_cat", 'P', ",\"name\":\"Mine\"", NT_EFORBIDDEN},
        {"chat.rooms.delete", "u_bob", 'P', "", NT_EFORBIDDEN},
        {"chat.rooms.delete", "u_cat", 'P', "", NT_EFORBIDDEN},
        {"chat.rooms.set_role", "u_bob", 'P', ",\"user_id\":\"u_bob\",\"role\":\"admin\"",
         NT_EFORBIDDEN},
        {"chat.rooms.set_role", "u_cat", 'P', ",\"user_id\":\"u_bob\",\"role\":\"moderator\"",
         NT_EFORBIDDEN},
        {"chat.rooms.remove_member", "u_bob", 'P', ",\"user_id\":\"u_cat\"", NT_EFORBIDDEN},
        {"chat.rooms.remove_member", "u_cat", 'P', ",\"user_id\":\"u_dan\"", NT_EFORBIDDEN},
        {"chat.rooms.remove_member", "u_cat", 'P', ",\"user_id\":\"u_ann\"", NT_EFORBIDDEN},
        {"chat.rooms.invite", "u_bob", 'Q', ",\"user_id\":\"u_eve\"", NT_EFORBIDDEN},
        {"chat.rooms.leave", "u_eve", 'P', "", NT_EFORBIDDEN},
        {"chat.rooms.invite", "u_eve", 'P', ",\"user_id\":\"u_eve\"", NT_EFORBIDDEN},
        {"chat.rooms.join", "u_eve", 'Q', "", NT_ENOTFOUND},
        {"chat.rooms.update", "u_eve", 'Q', ",\"name\":\"Mine\"", NT_ENOTFOUND},
        {"chat.rooms.delete", "u_eve", 'Q', "", NT_ENOTFOUND},
        {"chat.rooms.set_role", "u_ann", 'P', ",\"user_id\":\"u_ann\",\"role\":\"member\"",
         NT_ECONFLICT},
        {"chat.rooms.invite", "u_ann", 'P', ",\"user_id\":\"u_bob\"", NT_ECONFLICT},
        {"chat.rooms.invite", "u_ann", 'P', ",\"user_id\":\"u_ghost\"", NT_ENOTFOUND},
        {"chat.rooms.invite", "u_ann", 'P', ",\"username\":\"nobody\"", NT_ENOTFOUND},
        {"chat.rooms.remove_member", "u_ann", 'P', ",\"user_id\":\"u_ann\"", NT_EINVAL},
        /* A moderator may not remove a moderator, themselves included. */
        {"chat.rooms.remove_member", "u_cat", 'P', ",\"user_id\":\"u_cat\"", NT_EFORBIDDEN},
        {"chat.rooms.remove_member", "u_ann", 'P', ",\"user_id\":\"u_eve\"", NT_ENOTFOUND},
        {"chat.rooms.set_role", "u_ann", 'P', ",\"user_id\":\"u_eve\",\"role\":\"admin\"",
         NT_ENOTFOUND},
        {"chat.rooms.update", "u_ann", 'X', ",\"name\":\"Mine\"", NT_ENOTFOUND},
        {"chat.rooms.delete", "u_ann", 'X', "", NT_ENOTFOUND},
        {"chat.rooms.join", "u_ann", 'X', "", NT_ENOTFOUND},
        {"chat.rooms.leave", "u_ann", 'X', "", NT_ENOTFOUND},
        {"chat.rooms.invite", "u_ann", 'X', ",\"user_id\":\"u_eve\"", NT_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *room = cases[i].which == 'P' ? pub : cases[i].which == 'Q' ? priv : MISSING;
        nt_status got =
            call(cases[i].subject, cases[i].user, "{\"room_id\":\"%s\"%s}", room, cases[i].extra);
        cr_assert_eq(got, cases[i].want, "case %zu: %s by %s: got %s (%s)", i, cases[i].subject,
                     cases[i].user, nt_status_str(got), err_message());
        cr_assert_eq(nevents, 0, "case %zu published %zu events", i, nevents);
    }
    cr_assert_str_eq(err_message(), "room " MISSING " does not exist");
    /* Nothing changed. */
    cr_assert_eq(member_count(pub), 4);
    cr_assert_eq(member_count(priv), 2);
    cr_assert_str_eq(stored_role(pub, "u_ann"), "admin");
    cr_assert_str_eq(stored_role(pub, "u_bob"), "member");
    cr_assert_str_eq(stored_role(pub, "u_cat"), "moderator");
    cr_assert_str_eq(stored_role(pub, "u_dan"), "moderator");
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms WHERE name = 'Mine'", NULL), 0);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms", NULL), 2);
}

Test(rooms_handlers, private_rooms_look_like_missing_rooms_to_outsiders)
{
    char pub[NT_ID_LEN], priv[NT_ID_LEN];
    create_room("u_ann", "Public", false, pub);
    create_room("u_ann", "Private", true, priv);
    const char *subjects[] = {"chat.rooms.get", "chat.rooms.members", "chat.rooms.join",
                              "chat.rooms.leave", "chat.rooms.delete"};
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
        char want[128];
        cr_assert_eq(call(subjects[i], "u_eve", "{\"room_id\":\"%s\"}", priv), NT_ENOTFOUND, "%s",
                     subjects[i]);
        snprintf(want, sizeof(want), "room %s does not exist", priv);
        cr_assert_str_eq(err_code(), "not_found");
        cr_assert_str_eq(err_message(), want, "%s", subjects[i]);
        /* The very same answer as for a room that does not exist. */
        cr_assert_eq(call(subjects[i], "u_eve", "{\"room_id\":\"%s\"}", MISSING), NT_ENOTFOUND);
        cr_assert_str_eq(err_message(), "room " MISSING " does not exist");
    }
    cr_assert_eq(
        call("chat.rooms.authorize", "u_eve", "{\"room_id\":\"%s\",\"action\":\"read\"}", priv),
        NT_ENOTFOUND);
    /* A public room says that the caller is not a member. */
    cr_assert_eq(call("chat.rooms.get", "u_eve", "{\"room_id\":\"%s\"}", pub), NT_EFORBIDDEN);
    cr_assert_str_eq(err_code(), "forbidden");
    cr_assert_eq(call("chat.rooms.members", "u_eve", "{\"room_id\":\"%s\"}", pub), NT_EFORBIDDEN);
    cr_assert_eq(nevents, 0);
}

/* ---- generic checks on every route ---- */

static const char *const all_subjects[] = {
    "chat.rooms.list",    "chat.rooms.create",   "chat.rooms.get",           "chat.rooms.update",
    "chat.rooms.delete",  "chat.rooms.join",     "chat.rooms.leave",         "chat.rooms.invite",
    "chat.rooms.members", "chat.rooms.set_role", "chat.rooms.remove_member", "chat.rooms.authorize",
};
#define NSUBJECTS (sizeof(all_subjects) / sizeof(all_subjects[0]))

Test(rooms_handlers, the_route_table_has_every_subject)
{
    cr_assert_eq(rooms_nroutes, NSUBJECTS);
    for (size_t i = 0; i < NSUBJECTS; i++) {
        const nt_route *r = nt_route_find(rooms_routes, rooms_nroutes, all_subjects[i]);
        cr_assert_not_null(r, "%s", all_subjects[i]);
        cr_assert(r->needs_user, "%s", all_subjects[i]);
        cr_assert_eq(r->max_body, 16384, "%s", all_subjects[i]);
    }
}

Test(rooms_handlers, unknown_fields_are_refused_on_every_route)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    for (size_t i = 0; i < NSUBJECTS; i++) {
        cr_assert_eq(call(all_subjects[i], "u_ann", "{\"bogus\":1}"), NT_EINVAL, "%s",
                     all_subjects[i]);
        cr_assert_str_eq(err_message(), "unknown field 'bogus'", "%s", all_subjects[i]);
        /* Beside valid fields too. */
        cr_assert_eq(
            call(all_subjects[i], "u_ann", "{\"room_id\":\"%s\",\"name\":\"x\",\"bogus\":1}", room),
            NT_EINVAL, "%s", all_subjects[i]);
        cr_assert(strstr(err_message(), "unknown field") != NULL, "%s: %s", all_subjects[i],
                  err_message());
    }
    cr_assert_eq(nevents, 0);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms", NULL), 1);
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert_str_eq(str(data(), "name"), "Lobby", "the update with a bogus field changed nothing");
}

Test(rooms_handlers, missing_or_malformed_chat_user_is_unauthorised)
{
    char too_long[ROOMS_USER_ID_MAX + 1];
    memset(too_long, 'u', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    const char *bad[] = {"", "a b", "u/1", "../u_ann", "u.ann", "caf\xc3\xa9", "u_ann\n", too_long};
    for (size_t i = 0; i < NSUBJECTS; i++) {
        cr_assert_eq(call_raw(all_subjects[i], NULL, "{}", 2), NT_EUNAUTH, "%s", all_subjects[i]);
        cr_assert_str_eq(err_code(), "unauthorized");
        for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
            cr_assert_eq(call_raw(all_subjects[i], bad[j], "{\"name\":\"x\"}", 12), NT_EUNAUTH,
                         "%s as '%s'", all_subjects[i], bad[j]);
            cr_assert_str_eq(err_code(), "unauthorized");
        }
    }
    cr_assert_eq(ensure.calls, 0);
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms", NULL), 0);
    cr_assert_eq(nevents, 0);
}

Test(rooms_handlers, bodies_over_16_kib_are_too_big)
{
    /* Leading white space keeps the JSON valid at any size. */
    static const char tail[] = "{\"name\":\"Big\"}";
    size_t len = 16384 + 1;
    char *body = malloc(len + 1);
    memset(body, ' ', len - strlen(tail));
    memcpy(body + len - strlen(tail), tail, strlen(tail) + 1);
    for (size_t i = 0; i < NSUBJECTS; i++) {
        cr_assert_eq(call_raw(all_subjects[i], "u_ann", body, len), NT_ETOOBIG, "%s",
                     all_subjects[i]);
        cr_assert_str_eq(err_code(), "too_large");
        cr_assert(strstr(err_message(), "16384") != NULL, "%s", err_message());
    }
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM chat_rooms", NULL), 0);
    /* Exactly 16 KiB is allowed. */
    cr_assert_eq(call_raw("chat.rooms.create", "u_ann", body + 1, len - 1), NT_OK, "%s",
                 cJSON_PrintUnformatted(env));
    cr_assert_str_eq(str(data(), "name"), "Big");
    free(body);
}

Test(rooms_handlers, a_bad_room_id_is_refused_before_any_query)
{
    const char *ids[] = {"\"0190F5E2-7B1C-7C3D-8E4F-123456789ABC\"",
                         "\"0190f5e2-7b1c-7c3d-8e4f-123456789ab\"",
                         "\"0190f5e2-7b1c-7c3d-8e4f-123456789abcd\"",
                         "42",
                         "true",
                         "\"' OR 1=1 --\""};
    for (size_t i = 0; i < NSUBJECTS; i++) {
        if (strcmp(all_subjects[i], "chat.rooms.list") == 0 ||
            strcmp(all_subjects[i], "chat.rooms.create") == 0)
            continue;
        for (size_t j = 0; j < sizeof(ids) / sizeof(ids[0]); j++) {
            cr_assert_eq(call(all_subjects[i], "u_ann", "{\"room_id\":%s}", ids[j]), NT_EINVAL,
                         "%s %s", all_subjects[i], ids[j]);
            cr_assert_str_eq(err_message(), "'room_id' is not a valid room id", "%s",
                             all_subjects[i]);
        }
        cr_assert_eq(call(all_subjects[i], "u_ann", "{}"), NT_EINVAL);
        cr_assert_str_eq(err_message(), "'room_id' is required", "%s", all_subjects[i]);
    }
}

/* ---- the other handlers ---- */

Test(rooms_handlers, get_replies_with_the_room_view_and_messages)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    cr_assert_eq(call("chat.rooms.get", "u_bob", "{\"room_id\":\"%s\"}", room), NT_OK);
    const cJSON *d = data();
    for (size_t i = 0; room_view_keys[i] != NULL; i++)
        field(d, room_view_keys[i]);
    cr_assert_eq(cJSON_GetArraySize(d), 10, "the room view and messages");
    cr_assert(is_null(d, "messages"), "no messages seam: null, not an empty list");
    cr_assert_str_eq(str(d, "role"), "member");
    cr_assert_eq(num(d, "member_count"), 2);
}

/* Two messages as the messages service shows them. */
#define TWO_MESSAGES                                                                               \
    "[{\"id\":\"0190f5e2-7b1c-7c3d-8e4f-000000000001\",\"content\":\"hi "                          \
    "\\u00e9\\n\",\"edited\":false},"                                                              \
    "{\"id\":\"0190f5e2-7b1c-7c3d-8e4f-000000000002\",\"content\":\"\",\"deleted\":true,"          \
    "\"deleted_by\":null}]"

Test(rooms_handlers, get_shows_the_latest_messages_from_the_messages_service, .timeout = 20)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, room);
    join("u_bob", room);
    ctx.latest = fake_latest;
    latest.call_back = true;
    latest.authz = NT_EINTERNAL;
    latest.reply = "{\"data\":{\"messages\":" TWO_MESSAGES
                   ",\"has_more\":true,\"next_cursor\":\"0190f5e2-7b1c-7c3d-8e4f-000000000001\"}}";
    cr_assert_eq(call("chat.rooms.get", "u_bob", "{\"room_id\":\"%s\"}", room), NT_OK, "%s",
                 cJSON_PrintUnformatted(env));
    cr_assert_eq(latest.calls, 1);
    cr_assert_str_eq(latest.user, "u_bob", "asked as the caller");
    cr_assert_str_eq(latest.request_id, "rid-1", "with the caller's request id");
    cr_assert_str_eq(latest.room_id, room);
    cr_assert_eq(latest.authz, NT_OK, "messages' authorize call back ran while get waited");
    const cJSON *d = data();
    cr_assert_eq(cJSON_GetArraySize(d), 10, "the room view and messages");
    cr_assert_str_eq(str(d, "id"), room);
    cr_assert_str_eq(str(d, "role"), "member");
    cJSON *want = cJSON_Parse(TWO_MESSAGES);
    cr_assert_not_null(want);
    cr_assert(cJSON_Compare(field(d, "messages"), want, true), "messages copied as given: %s",
              cJSON_PrintUnformatted(field(d, "messages")));
    cJSON_Delete(want);
    cr_assert_eq(nevents, 1, "only the join's event: get publishes nothing");

    /* An empty history is an empty list, not null. */
    latest.reply = "{\"data\":{\"messages\":[],\"has_more\":false,\"next_cursor\":null}}";
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert(cJSON_IsArray(field(data(), "messages")));
    cr_assert_eq(cJSON_GetArraySize(field(data(), "messages")), 0);
    cr_assert_str_eq(latest.user, "u_ann");
    cr_assert_eq(latest.calls, 2);
}

Test(rooms_handlers, get_shows_null_messages_when_the_messages_service_fails)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", true, room);
    ctx.latest = fake_latest;
    const nt_status down[] = {NT_ETIMEOUT, NT_EUNAVAIL, NT_EINTERNAL};
    for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
        latest.answer = down[i];
        cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK,
                     "status %d", down[i]);
        cr_assert(is_null(data(), "messages"), "status %d", down[i]);
        cr_assert_str_eq(str(data(), "name"), "Lobby", "the room is still shown");
    }
    latest.answer = NT_OK;
    const char *bad[] = {
        "{\"error\":{\"code\":\"forbidden\",\"message\":\"you are not a member of this room\"}}",
        "{\"error\":{\"code\":\"unavailable\",\"message\":\"x\"},\"data\":{\"messages\":[]}}",
        "",
        "not json",
        "[]",
        "null",
        "{}",
        "{\"data\":null}",
        "{\"data\":[]}",
        "{\"data\":{}}",
        "{\"data\":{\"messages\":null}}",
        "{\"data\":{\"messages\":{}}}",
        "{\"data\":{\"messages\":\"[]\"}}",
        "{\"data\":{\"messages\":[1]}}",
        "{\"data\":{\"messages\":[{},null]}}",
        "{\"data\":{\"messages\":[{\"content\":\"\\ud800\"}]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        latest.reply = bad[i];
        latest.reply_len = 0;
        cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK, "%s",
                     bad[i]);
        cr_assert(is_null(data(), "messages"), "reply %s", bad[i]);
        cr_assert_str_eq(str(data(), "role"), "admin");
    }
    /* Every truncation of a good reply is refused as a whole. */
    const char *good = "{\"data\":{\"messages\":" TWO_MESSAGES "}}";
    for (size_t n = 1; n < strlen(good); n++) {
        latest.reply = good;
        latest.reply_len = n;
        cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
        cr_assert(is_null(data(), "messages"), "%zu bytes", n);
    }
    latest.reply_len = 0;
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert_eq(cJSON_GetArraySize(field(data(), "messages")), 2, "the whole reply is taken");
}

Test(rooms_handlers, get_asks_for_messages_only_after_its_own_authorisation)
{
    char pub[NT_ID_LEN], priv[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, pub);
    create_room("u_ann", "Den", true, priv);
    ctx.latest = fake_latest;
    cr_assert_eq(call("chat.rooms.get", "u_bob", "{\"room_id\":\"%s\"}", pub), NT_EFORBIDDEN);
    cr_assert_eq(call("chat.rooms.get", "u_bob", "{\"room_id\":\"%s\"}", priv), NT_ENOTFOUND);
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", MISSING), NT_ENOTFOUND);
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"nope\"}"), NT_EINVAL);
    cr_assert_eq(latest.calls, 0, "messages is not asked for a room the caller may not read");
    cr_assert_eq(call("chat.rooms.get", "u_ann", "{\"room_id\":\"%s\"}", priv), NT_OK);
    cr_assert_eq(latest.calls, 1);
}

Test(rooms_handlers, invite_by_username)
{
    char room[NT_ID_LEN];
    create_room("u_ann", "Lobby", true, room);
    add_user("u_twin1", "twin");
    add_user("u_twin2", "twin");
    events_clear();
    cr_assert_eq(
        call("chat.rooms.invite", "u_ann", "{\"room_id\":\"%s\",\"username\":\"bob\"}", room),
        NT_OK);
    cr_assert_str_eq(str(data(), "user_id"), "u_bob");
    cr_assert_eq(nevents, 2);
    event("chat.user.u_bob.room_invited");
    events_clear();
    cr_assert_eq(
        call("chat.rooms.invite", "u_ann", "{\"room_id\":\"%s\",\"username\":\"twin\"}", room),
        NT_ECONFLICT);
    cr_assert(strstr(err_message(), "several users") != NULL, "%s", err_message());
    cr_assert_eq(
        call("chat.rooms.invite", "u_ann", "{\"room_id\":\"%s\",\"username\":\"Cat\"}", room),
        NT_ENOTFOUND, "usernames match case-sensitively");
    cr_assert_eq(call("chat.rooms.invite", "u_ann",
                      "{\"room_id\":\"%s\",\"username\":\"cat\",\"user_id\":\"u_cat\"}", room),
                 NT_EINVAL);
    cr_assert(strstr(err_message(), "exactly one") != NULL, "%s", err_message());
    cr_assert_eq(call("chat.rooms.invite", "u_ann", "{\"room_id\":\"%s\"}", room), NT_EINVAL);
    cr_assert_eq(
        call("chat.rooms.invite", "u_ann", "{\"room_id\":\"%s\",\"user_id\":\"a b\"}", room),
        NT_EINVAL);
    cr_assert(strstr(err_message(), "'user_id'") != NULL, "%s", err_message());
    cr_assert_eq(nevents, 0);
    cr_assert_eq(member_count(room), 2);
    /* A moderator may invite to a private room. */
    set_role("u_ann", room, "u_bob", "moderator");
    invite("u_bob", room, "u_cat");
    cr_assert_str_eq(str(event("chat.room.%s.user_joined", room), "invited_by"), "u_bob");
}

Test(rooms_handlers, authorize_answers_from_the_table)
{
    char pub[NT_ID_LEN], priv[NT_ID_LEN];
    create_room("u_ann", "Public", false, pub);
    create_room("u_ann", "Private", true, priv);
    join("u_bob", pub);
    join("u_cat", pub);
    set_role("u_ann", pub, "u_cat", "moderator");
    events_clear();
    cr_assert_eq(
        call("chat.rooms.authorize", "u_bob", "{\"room_id\":\"%s\",\"action\":\"read\"}", pub),
        NT_OK);
    static const char *const keys[] = {"room_id", "user_id", "action", "role", "is_private", NULL};
    cr_assert(has_exactly(data(), keys), "%s", cJSON_PrintUnformatted(data()));
    cr_assert_str_eq(str(data(), "room_id"), pub);
    cr_assert_str_eq(str(data(), "user_id"), "u_bob");
    cr_assert_str_eq(str(data(), "action"), "read");
    cr_assert_str_eq(str(data(), "role"), "member");
    cr_assert_not(flag(data(), "is_private"));
    struct {
        const char *user;
        bool priv;
        const char *action;
        nt_status want;
    } cases[] = {
        {"u_eve", false, "read", NT_EFORBIDDEN},
        {"u_eve", false, "join", NT_OK},
        {"u_eve", true, "join", NT_ENOTFOUND},
        {"u_eve", true, "read", NT_ENOTFOUND},
        {"u_bob", false, "send", NT_OK},
        {"u_bob", false, "delete", NT_EFORBIDDEN},
        {"u_bob", false, "invite", NT_OK},
        {"u_bob", false, "moderate", NT_EFORBIDDEN},
        {"u_cat", false, "moderate", NT_OK},
        {"u_cat", false, "remove_member", NT_OK},
        {"u_cat", false, "set_role", NT_EFORBIDDEN},
        {"u_ann", false, "delete", NT_OK},
        {"u_ann", true, "update", NT_OK},
        {"u_bob", true, "read", NT_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nt_status got =
            call("chat.rooms.authorize", cases[i].user, "{\"room_id\":\"%s\",\"action\":\"%s\"}",
                 cases[i].priv ? priv : pub, cases[i].action);
        cr_assert_eq(got, cases[i].want, "%s %s: %s", cases[i].user, cases[i].action,
                     nt_status_str(got));
    }
    cr_assert_eq(
        call("chat.rooms.authorize", "u_eve", "{\"room_id\":\"%s\",\"action\":\"join\"}", pub),
        NT_OK);
    cr_assert(is_null(data(), "role"), "an outsider has no role");
    const char *bad[] = {"\"fly\"", "\"READ\"", "1", "null", "\"\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(call("chat.rooms.authorize", "u_ann", "{\"room_id\":\"%s\",\"action\":%s}",
                          pub, bad[i]),
                     NT_EINVAL, "%s", bad[i]);
        cr_assert(strstr(err_message(), "'action'") != NULL, "%s", err_message());
    }
    cr_assert_eq(call("chat.rooms.authorize", "u_ann", "{\"room_id\":\"%s\"}", pub), NT_EINVAL);
    cr_assert_eq(
        call("chat.rooms.authorize", "u_ann", "{\"room_id\":\"" MISSING "\",\"action\":\"read\"}"),
        NT_ENOTFOUND);
    cr_assert_eq(nevents, 0);
}

/* The names of the rooms in the last list reply, comma-separated. */
static const char *listed_names(char *out, size_t outlen)
{
    out[0] = '\0';
    const cJSON *r;
    cJSON_ArrayForEach(r, field(data(), "rooms"))
    {
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "%s%s", n ? "," : "", str(r, "name"));
    }
    return out;
}

Test(rooms_handlers, list_mine_by_activity_and_public_by_name_with_cursors)
{
    char beta[NT_ID_LEN], alpha[NT_ID_LEN], gamma[NT_ID_LEN], delta[NT_ID_LEN], zeta[NT_ID_LEN];
    char names[512], cursor[1100];
    create_room("u_ann", "beta", false, beta);
    now_ms = T0 + 1000;
    create_room("u_ann", "Alpha", false, alpha);
    now_ms = T0 + 2000;
    create_room("u_ann", "gamma", false, gamma);
    now_ms = T0 + 3000;
    create_room("u_ann", "delta", true, delta);
    now_ms = T0 + 4000;
    create_room("u_bob", "Zeta", false, zeta);

    cr_assert_eq(call("chat.rooms.list", "u_ann", "{}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "delta,gamma,Alpha,beta");
    cr_assert(is_null(data(), "next_cursor"));
    const cJSON *first = cJSON_GetArrayItem(field(data(), "rooms"), 0);
    cr_assert(has_exactly(first, room_view_keys));
    cr_assert_str_eq(str(first, "role"), "admin");

    /* A join is activity: beta moves to the top. */
    now_ms = T0 + 10000;
    join("u_bob", beta);
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"scope\":\"mine\",\"limit\":\"2\"}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "beta,delta");
    cr_assert_str_eq(str(cJSON_GetArrayItem(field(data(), "rooms"), 0), "last_activity_at"),
                     "2026-01-01T00:00:10.000Z");
    snprintf(cursor, sizeof(cursor), "%s", str(data(), "next_cursor"));
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"limit\":2,\"cursor\":\"%s\"}", cursor),
                 NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "gamma,Alpha");
    cr_assert(is_null(data(), "next_cursor"), "four rooms, two pages");
    /* A cursor of one list is refused by another instead of paging it wrongly. */
    cr_assert_eq(call("chat.rooms.list", "u_ann",
                      "{\"scope\":\"public\",\"limit\":2,\"cursor\":\"%s\"}", cursor),
                 NT_EINVAL);
    cr_assert_str_eq(err_message(), "'cursor' is invalid");
    cr_assert_eq(
        call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\",\"cursor\":\"%s\"}", beta, cursor),
        NT_EINVAL);
    cr_assert_eq(call("chat.rooms.list", "u_bob", "{}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "beta,Zeta");

    /* Public: by name without regard to case, private rooms left out, role
     * null where the caller is not a member. */
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"scope\":\"public\"}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "Alpha,beta,gamma,Zeta");
    cr_assert(is_null(cJSON_GetArrayItem(field(data(), "rooms"), 3), "role"));
    /* Paged one by one it is the same list. */
    char paged[512] = "";
    cursor[0] = '\0';
    for (int page = 0; page < 10; page++) {
        if (cursor[0] == '\0')
            cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"scope\":\"public\",\"limit\":1}"),
                         NT_OK);
        else
            cr_assert_eq(call("chat.rooms.list", "u_ann",
                              "{\"scope\":\"public\",\"limit\":1,\"cursor\":\"%s\"}", cursor),
                         NT_OK);
        size_t n = strlen(paged);
        snprintf(paged + n, sizeof(paged) - n, "%s%s", n ? "," : "",
                 listed_names(names, sizeof(names)));
        if (is_null(data(), "next_cursor"))
            break;
        snprintf(cursor, sizeof(cursor), "%s", str(data(), "next_cursor"));
    }
    cr_assert_str_eq(paged, "Alpha,beta,gamma,Zeta");
    /* q: a case-insensitive substring, LIKE's wildcards taken literally. */
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"scope\":\"public\",\"q\":\"ET\"}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "beta,Zeta");
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"scope\":\"public\",\"q\":\"%%\"}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "");
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"scope\":\"public\",\"q\":\"_\"}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "");
    /* Your own rooms filter the same way (mine is the default scope). */
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"q\":\"ET\"}"), NT_OK);
    cr_assert_str_eq(listed_names(names, sizeof(names)), "beta");
    cr_assert_eq(call("chat.rooms.list", "u_ann", "{\"q\":\"\"}"), NT_OK);
    cr_assert_eq(cJSON_GetArraySize(field(data(), "rooms")), 4, "an empty q filters nothing");

    struct {
        const char *body, *needle;
    } bad[] = {
        {"{\"scope\":\"all\"}", "'scope'"},
        {"{\"scope\":1}", "'scope'"},
        {"{\"q\":7}", "'q'"},
        {"{\"q\":\"a\\u0007\"}", "'q'"},
        {"{\"limit\":0}", "'limit'"},
        {"{\"limit\":\"101\"}", "'limit'"},
        {"{\"limit\":\"1e2\"}", "'limit'"},
        {"{\"cursor\":\"!!\"}", "'cursor' is invalid"},
        {"{\"cursor\":5}", "'cursor' is invalid"},
        {"{\"cursor\":\"YWJj\"}", "'cursor' is invalid"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(call_raw("chat.rooms.list", "u_ann", bad[i].body, strlen(bad[i].body)),
                     NT_EINVAL, "%s", bad[i].body);
        cr_assert(strstr(err_message(), bad[i].needle) != NULL, "%s: %s", bad[i].body,
                  err_message());
    }
}

Test(rooms_handlers, members_are_listed_oldest_first_with_cursors)
{
    char room[NT_ID_LEN], cursor[1100];
    create_room("u_ann", "Lobby", false, room);
    now_ms = T0 + 2000;
    join("u_bob", room);
    now_ms = T0 + 1000;
    join("u_cat", room);
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\",\"limit\":\"2\"}", room),
                 NT_OK);
    const cJSON *ms = field(data(), "members");
    cr_assert_eq(cJSON_GetArraySize(ms), 2);
    cr_assert_str_eq(str(cJSON_GetArrayItem(ms, 0), "user_id"), "u_ann");
    cr_assert_str_eq(str(cJSON_GetArrayItem(ms, 1), "user_id"), "u_cat");
    cr_assert_str_eq(str(cJSON_GetArrayItem(ms, 1), "joined_at"), "2026-01-01T00:00:01.000Z");
    snprintf(cursor, sizeof(cursor), "%s", str(data(), "next_cursor"));
    cr_assert_eq(call("chat.rooms.members", "u_bob",
                      "{\"room_id\":\"%s\",\"limit\":2,\"cursor\":\"%s\"}", room, cursor),
                 NT_OK);
    ms = field(data(), "members");
    cr_assert_eq(cJSON_GetArraySize(ms), 1);
    cr_assert_str_eq(str(cJSON_GetArrayItem(ms, 0), "user_id"), "u_bob");
    cr_assert(is_null(data(), "next_cursor"));
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\",\"limit\":500}", room),
                 NT_OK);
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\",\"limit\":501}", room),
                 NT_EINVAL);
    cr_assert(strstr(err_message(), "'limit'") != NULL, "%s", err_message());
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\",\"cursor\":\"x\"}", room),
                 NT_EINVAL);
    cr_assert_str_eq(err_message(), "'cursor' is invalid");
}

/* Rows written with the schema's default time form ("YYYY-MM-DD HH:MM:SS",
 * e.g. by another program) page exactly once each, beside ours. */
Test(rooms_handlers, members_page_once_each_whatever_the_stored_time_form)
{
    char room[NT_ID_LEN], cursor[1100] = "";
    create_room("u_ann", "Mixed", false, room);
    const char *p1[] = {room, "u_bob", "2020-05-01 10:00:00"};
    sql_exec("INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?1, ?2, "
             "'member', ?3)",
             p1, 3);
    const char *p2[] = {room, "u_cat", "2020-05-01 11:00:00"};
    sql_exec("INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?1, ?2, "
             "'member', ?3)",
             p2, 3);
    const char *p3[] = {room, "u_dan", "2020-05-02T09:00:00.000Z"};
    sql_exec("INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?1, ?2, "
             "'member', ?3)",
             p3, 3);
    char seen[256] = "";
    for (int page = 0; page < 10; page++) {
        if (cursor[0] == '\0')
            cr_assert_eq(
                call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\",\"limit\":1}", room),
                NT_OK);
        else
            cr_assert_eq(call("chat.rooms.members", "u_ann",
                              "{\"room_id\":\"%s\",\"limit\":1,\"cursor\":\"%s\"}", room, cursor),
                         NT_OK, "%s", err_message());
        const cJSON *m = cJSON_GetArrayItem(field(data(), "members"), 0);
        size_t n = strlen(seen);
        snprintf(seen + n, sizeof(seen) - n, "%s%s", n ? "," : "", str(m, "user_id"));
        if (is_null(data(), "next_cursor"))
            break;
        snprintf(cursor, sizeof(cursor), "%s", str(data(), "next_cursor"));
    }
    cr_assert_eq(strlen(seen), strlen("u_bob,u_cat,u_dan,u_ann"), "%s", seen);
    cr_assert(strstr(seen, "u_bob") && strstr(seen, "u_cat") && strstr(seen, "u_dan") &&
                  strstr(seen, "u_ann"),
              "every member once: %s", seen);
}

/* ---- members and presence ---- */

/* A room of ann (admin), then bob, then cat, one second apart. */
static void three_member_room(char room[NT_ID_LEN])
{
    create_room("u_ann", "Lobby", false, room);
    now_ms = T0 + 1000;
    join("u_bob", room);
    now_ms = T0 + 2000;
    join("u_cat", room);
}

/* The member of the last members reply whose user id is user_id. */
static const cJSON *listed(const char *user_id)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, field(data(), "members"))
    {
        if (strcmp(str(m, "user_id"), user_id) == 0) {
            cr_assert(has_exactly(m, listed_member_keys), "%s", cJSON_PrintUnformatted(m));
            return m;
        }
    }
    cr_assert_fail("%s is not listed", user_id);
    return NULL;
}

static void expect_unknown_presence(const char *user_id, const char *what)
{
    const cJSON *m = listed(user_id);
    cr_assert(is_null(m, "online"), "%s: %s", what, cJSON_PrintUnformatted(m));
    cr_assert(is_null(m, "last_seen"), "%s: %s", what, cJSON_PrintUnformatted(m));
}

#define SEEN_BOB "2026-01-01T00:00:05.123Z"
#define SEEN_NOW "2026-01-01T00:01:00.000Z"

Test(rooms_handlers, members_show_online_and_last_seen_from_presence)
{
    char room[NT_ID_LEN];
    three_member_room(room);
    ctx.online = fake_online;
    presence.reply = "{\"data\":{\"users\":{"
                     "\"u_ann\":{\"online\":true,\"last_seen\":\"" SEEN_NOW "\"},"
                     "\"u_bob\":{\"online\":false,\"last_seen\":\"" SEEN_BOB "\"},"
                     "\"u_cat\":{\"online\":false,\"last_seen\":null},"
                     "\"u_zed\":{\"online\":true,\"last_seen\":\"" SEEN_NOW "\"}}}}";
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\"}", room), NT_OK, "%s",
                 cJSON_PrintUnformatted(env));
    cr_assert_eq(presence.calls, 1);
    cr_assert_str_eq(presence.body, "{\"user_ids\":[\"u_ann\",\"u_bob\",\"u_cat\"]}",
                     "the page's ids, in page order");
    cr_assert_str_eq(presence.user, "u_bob", "asked as the caller");
    cr_assert_str_eq(presence.request_id, "rid-1", "with the caller's request id");
    cr_assert_eq(cJSON_GetArraySize(field(data(), "members")), 3, "only the room's members");
    cr_assert(flag(listed("u_ann"), "online"));
    cr_assert_str_eq(str(listed("u_ann"), "last_seen"), SEEN_NOW);
    cr_assert_not(flag(listed("u_bob"), "online"));
    cr_assert_str_eq(str(listed("u_bob"), "last_seen"), SEEN_BOB);
    cr_assert_not(flag(listed("u_cat"), "online"));
    cr_assert(is_null(listed("u_cat"), "last_seen"), "never seen: null");
    cr_assert_str_eq(str(listed("u_cat"), "role"), "member", "the member fields stay");

    /* A page asks about its own members only, not the one that tells a next
     * page exists. */
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\",\"limit\":2}", room),
                 NT_OK);
    cr_assert_str_eq(presence.body, "{\"user_ids\":[\"u_ann\",\"u_bob\"]}");
    cr_assert(flag(listed("u_ann"), "online"));
    cr_assert_eq(presence.calls, 2);
}

Test(rooms_handlers, members_ask_presence_only_after_their_own_authorisation)
{
    char pub[NT_ID_LEN], priv[NT_ID_LEN];
    create_room("u_ann", "Lobby", false, pub);
    create_room("u_ann", "Den", true, priv);
    ctx.online = fake_online;
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\"}", pub), NT_EFORBIDDEN);
    cr_assert_eq(call("chat.rooms.members", "u_bob", "{\"room_id\":\"%s\"}", priv), NT_ENOTFOUND);
    cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", MISSING),
                 NT_ENOTFOUND);
    cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\",\"limit\":0}", pub),
                 NT_EINVAL);
    cr_assert_eq(presence.calls, 0, "presence is not asked for a list the caller may not read");
    cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", priv), NT_OK);
    cr_assert_eq(presence.calls, 1);
}

Test(rooms_handlers, members_show_null_presence_when_presence_does_not_answer)
{
    char room[NT_ID_LEN];
    three_member_room(room);
    ctx.online = fake_online;
    const nt_status down[] = {NT_EUNAVAIL, NT_ETIMEOUT, NT_EINTERNAL};
    for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
        presence.answer = down[i];
        cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK,
                     "status %d: the members are still listed", down[i]);
        cr_assert_eq(cJSON_GetArraySize(field(data(), "members")), 3);
        expect_unknown_presence("u_ann", "unavailable");
        expect_unknown_presence("u_bob", "unavailable");
        expect_unknown_presence("u_cat", "unavailable");
        cr_assert_str_eq(str(listed("u_ann"), "role"), "admin");
    }
    cr_assert_eq(presence.calls, 3);
    /* Error replies (non-200) are no answer either. */
    presence.answer = NT_OK;
    const char *errors[] = {
        "{\"error\":{\"code\":\"invalid_request\",\"message\":\"'user_ids' is invalid\"}}",
        "{\"error\":{\"code\":\"unavailable\",\"message\":\"x\"},\"data\":{\"users\":"
        "{\"u_ann\":{\"online\":true,\"last_seen\":null}}}}",
    };
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        presence.reply = errors[i];
        cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
        expect_unknown_presence("u_ann", errors[i]);
        expect_unknown_presence("u_bob", errors[i]);
    }
}

Test(rooms_handlers, members_show_null_presence_when_the_answer_is_malformed)
{
    char room[NT_ID_LEN];
    three_member_room(room);
    ctx.online = fake_online;
    const char *bad[] = {
        "",
        "not json",
        "[]",
        "null",
        "{}",
        "{\"data\":null}",
        "{\"data\":[]}",
        "{\"data\":{}}",
        "{\"data\":{\"users\":null}}",
        "{\"data\":{\"users\":[]}}",
        "{\"data\":{\"users\":\"{}\"}}",
        "{\"data\":{\"users\":[{\"u_ann\":{\"online\":true,\"last_seen\":null}}]}}",
        "{\"users\":{\"u_ann\":{\"online\":true,\"last_seen\":null}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        presence.reply = bad[i];
        presence.reply_len = 0;
        cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK, "%s",
                     bad[i]);
        expect_unknown_presence("u_ann", bad[i]);
        expect_unknown_presence("u_cat", bad[i]);
    }
    /* Every truncation of a good answer is refused as a whole. */
    const char *good =
        "{\"data\":{\"users\":{\"u_ann\":{\"online\":true,\"last_seen\":\"" SEEN_NOW "\"}}}}";
    for (size_t n = 1; n < strlen(good); n++) {
        presence.reply = good;
        presence.reply_len = n;
        cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
        expect_unknown_presence("u_ann", "truncated");
    }
    presence.reply_len = 0;
    cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK);
    cr_assert(flag(listed("u_ann"), "online"), "the whole answer is taken");
}

Test(rooms_handlers, members_missing_from_the_answer_or_malformed_there_get_nulls)
{
    char room[NT_ID_LEN];
    three_member_room(room);
    ctx.online = fake_online;
    /* ann's entry is good; bob is missing; cat's entry is broken in turn. */
    const char *cat[] = {
        "null",
        "true",
        "[]",
        "{}",
        "{\"online\":true}",
        "{\"last_seen\":null}",
        "{\"online\":\"yes\",\"last_seen\":null}",
        "{\"online\":1,\"last_seen\":null}",
        "{\"online\":null,\"last_seen\":null}",
        "{\"online\":false,\"last_seen\":123}",
        "{\"online\":false,\"last_seen\":\"yesterday\"}",
        "{\"online\":false,\"last_seen\":\"2026-01-01T00:00:05Z\"}",
        "{\"online\":false,\"last_seen\":\"2026-01-01 00:00:05.123Z\"}",
        "{\"online\":false,\"last_seen\":\"2026-01-01T00:00:05.123Zx\"}",
        "{\"online\":false,\"last_seen\":\"\"}",
    };
    char reply[512];
    for (size_t i = 0; i < sizeof(cat) / sizeof(cat[0]); i++) {
        int n =
            snprintf(reply, sizeof(reply),
                     "{\"data\":{\"users\":{\"u_ann\":{\"online\":false,\"last_seen\":\"" SEEN_BOB
                     "\"},\"u_cat\":%s}}}",
                     cat[i]);
        cr_assert(n > 0 && (size_t)n < sizeof(reply));
        presence.reply = reply;
        cr_assert_eq(call("chat.rooms.members", "u_ann", "{\"room_id\":\"%s\"}", room), NT_OK, "%s",
                     reply);
        cr_assert_not(flag(listed("u_ann"), "online"), "%s", cat[i]);
        cr_assert_str_eq(str(listed("u_ann"), "last_seen"), SEEN_BOB, "%s", cat[i]);
        expect_unknown_presence("u_bob", "missing");
        expect_unknown_presence("u_cat", cat[i]);
    }
}
