/* Unit tests of the messages handlers, driven through the route table exactly
 * as the NATS adapter drives them, on a real SQLite file built from
 * schemas/migrations (tests run from the repository root; a file, so that
 * history and loads go through the store's separate reader connection) with
 * the real group committer. rooms is a fake that answers from a table of
 * roles the way chat.rooms.authorize would, events are captured instead of
 * published, and the wall clock is fake so that times are ours to check. */
#include "../../../services/messages/msgs.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PUB        "0190f5e2-7b1c-7c3d-8e4f-00000000a001" /* a public room */
#define PRIV       "0190f5e2-7b1c-7c3d-8e4f-00000000a002" /* a private room */
#define GONE       "0190f5e2-7b1c-7c3d-8e4f-00000000a003" /* rooms knows it; the database does not */
#define MISSING    "0190f5e2-7b1c-7c3d-8e4f-123456789abc" /* never a room or a message */
#define T0         1767225600000LL                        /* 2026-01-01T00:00:00.000Z */
#define T0_TEXT    "2026-01-01T00:00:00.000Z"
#define T1_TEXT    "2026-01-01T00:00:05.000Z"
#define MAX_EVENTS 512

static char dir[64];
static nt_store *store;
static msgs_committer *committer;
static nt_ratelimit *limit;
static msgs_ctx ctx;
static cJSON *env;                 /* the envelope of the last call */
static long long last_retry_after; /* the reply's retry hint of the last call */

/* ---- the fake clock ---- */

static _Atomic int64_t now_ms;

static int64_t fake_now(void)
{
    return atomic_load(&now_ms);
}

/* ---- captured events (the committer publishes from its own thread) ---- */

typedef struct {
    char subject[200];
    cJSON *payload;
} captured;

static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static captured events[MAX_EVENTS];
static size_t nevents;

static nt_status capture(void *arg, const char *subject, const char *data, size_t len)
{
    cr_assert_eq(arg, &events, "publish_arg is passed through");
    pthread_mutex_lock(&events_mu);
    cr_assert_lt(nevents, (size_t)MAX_EVENTS);
    snprintf(events[nevents].subject, sizeof(events[nevents].subject), "%s", subject);
    events[nevents].payload = cJSON_ParseWithLength(data, len);
    cr_assert_not_null(events[nevents].payload, "event payload is JSON: %.*s", (int)len, data);
    nevents++;
    pthread_mutex_unlock(&events_mu);
    return NT_OK;
}

/* The committer publishes message_received after it wakes the sender but
 * before it lets go of the store's lock: once the lock has been ours, every
 * event of every send that has returned has been captured. */
static size_t settled_events(void)
{
    nt_store_lock(store);
    nt_store_unlock(store);
    pthread_mutex_lock(&events_mu);
    size_t n = nevents;
    pthread_mutex_unlock(&events_mu);
    return n;
}

static void events_clear(void)
{
    settled_events();
    for (size_t i = 0; i < nevents; i++)
        cJSON_Delete(events[i].payload);
    memset(events, 0, sizeof(events));
    nevents = 0;
}

/* The subject of event i is chat.room.<room>.<name>. */
static void assert_event(size_t i, const char *room, const char *name)
{
    char want[200];
    snprintf(want, sizeof(want), "chat.room.%s.%s", room, name);
    cr_assert_lt(i, nevents, "event %zu of %zu", i, nevents);
    cr_assert_str_eq(events[i].subject, want);
}

/* ---- the fake rooms ---- */

typedef enum { OUTSIDER, MEMBER, MODERATOR, ADMIN } role;

static const struct {
    const char *room;
    bool is_private;
    const char *user;
    role r;
} members[] = {
    {PUB, false, "u_ann", ADMIN},  {PUB, false, "u_bob", MODERATOR}, {PUB, false, "u_cat", MEMBER},
    {PUB, false, "u_dan", MEMBER}, {PRIV, true, "u_ann", ADMIN},     {PRIV, true, "u_cat", MEMBER},
    {GONE, false, "u_ann", ADMIN},
};

static struct {
    int calls;
    nt_status force; /* NT_OK: answer from the table */
    char action[16];
    char room[NT_ID_LEN];
    char request_id[64];
} authz;

static nt_status fake_authorize(void *arg, const char *user, const char *request_id,
                                const char *room_id, const char *action, char *msg, size_t msglen)
{
    cr_assert_eq(arg, &authz, "authorize_arg is passed through");
    cr_assert(nt_id_valid(room_id), "rooms is only asked about well-formed ids");
    authz.calls++;
    snprintf(authz.action, sizeof(authz.action), "%s", action);
    snprintf(authz.room, sizeof(authz.room), "%s", room_id);
    snprintf(authz.request_id, sizeof(authz.request_id), "%s", request_id);
    if (authz.force != NT_OK)
        return authz.force;
    bool exists = false, is_private = false;
    role r = OUTSIDER;
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        if (strcmp(members[i].room, room_id) != 0)
            continue;
        exists = true;
        is_private = members[i].is_private;
        if (strcmp(members[i].user, user) == 0)
            r = members[i].r;
    }
    if (!exists || (r == OUTSIDER && is_private)) {
        snprintf(msg, msglen, "room %s does not exist", room_id);
        return NT_ENOTFOUND;
    }
    if (r == OUTSIDER) {
        snprintf(msg, msglen, "you are not a member of room %s", room_id);
        return NT_EFORBIDDEN;
    }
    if (strcmp(action, "moderate") == 0 && r < MODERATOR) {
        snprintf(msg, msglen, "only an admin or moderator of room %s may do this", room_id);
        return NT_EFORBIDDEN;
    }
    cr_assert(strcmp(action, "read") == 0 || strcmp(action, "send") == 0 ||
                  strcmp(action, "moderate") == 0,
              "unexpected action %s", action);
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

/* The stored content of message id ("<none>" when there is no such row). */
static const char *stored_content(const char *id)
{
    static char out[20000];
    sqlite3 *db = nt_store_lock(store);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "SELECT content FROM messages WHERE id = ?1", -1, &s, NULL);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    snprintf(out, sizeof(out), "<none>");
    if (sqlite3_step(s) == SQLITE_ROW)
        snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    nt_store_unlock(store);
    return out;
}

static long long message_count(void)
{
    return sql_count("SELECT COUNT(*) FROM messages", NULL);
}

static void add_user(const char *user_id, const char *username)
{
    char id[64], email[64];
    snprintf(id, sizeof(id), "p-%s", user_id);
    snprintf(email, sizeof(email), "%s@example.com", user_id);
    const char *p[] = {id, user_id, username, email};
    sql_exec("INSERT INTO users (id, clerk_user_id, username, email) VALUES (?1, ?2, ?3, ?4)", p,
             4);
}

static void add_room(const char *id, const char *name, const char *is_private)
{
    const char *p[] = {id, name, is_private};
    sql_exec("INSERT INTO chat_rooms (id, name, created_by, is_private) VALUES (?1, ?2, 'u_ann', "
             "?3)",
             p, 3);
}

/* ---- fixture ---- */

static void setup(void)
{
    nt_log_set_level(NT_LOG_ERROR);
    atomic_store(&now_ms, T0);
    nt_clock_set_fake(fake_now);
    snprintf(dir, sizeof(dir), "/tmp/msgs-handlers-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/natter.db", dir);
    cr_assert_eq(nt_store_open(path, "schemas/migrations", &store), NT_OK,
                 "run the unit tests from the repository root");
    add_user("u_ann", "ann");
    add_user("u_bob", "bob");
    add_user("u_cat", "cat");
    add_user("u_dan", "dan");
    add_user("u_eve", "eve");
    add_room(PUB, "lobby", "0");
    add_room(PRIV, "secret", "1");
    cr_assert_eq(msgs_committer_create(store, 16, capture, &events, &committer), NT_OK);
    /* Other tests never meet the limit; the rate-limit test makes its own. */
    cr_assert_eq(nt_ratelimit_create(1e6, 1e6, 1000, &limit), NT_OK);
    memset(&authz, 0, sizeof(authz));
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = store;
    ctx.committer = committer;
    ctx.send_limit = limit;
    ctx.authorize = fake_authorize;
    ctx.authorize_arg = &authz;
    ctx.publish = capture;
    ctx.publish_arg = &events;
}

static void teardown(void)
{
    cJSON_Delete(env);
    env = NULL;
    msgs_committer_destroy(committer);
    committer = NULL;
    events_clear();
    nt_ratelimit_destroy(limit);
    limit = NULL;
    nt_store_close(store);
    store = NULL;
    char path[128];
    const char *files[] = {"natter.db", "natter.db-wal", "natter.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    nt_clock_set_fake(NULL);
}

TestSuite(msgs_handlers, .init = setup, .fini = teardown);

/* ---- calling a route ---- */

/* Dispatches body as user (NULL: no Chat-User) to subject through the route
 * table and keeps the parsed envelope in env. */
static nt_status call_raw(const char *subject, const char *user, const char *body, size_t len)
{
    const nt_route *r = nt_route_find(msgs_routes, MSGS_NROUTES, subject);
    cr_assert_not_null(r, "no route %s", subject);
    nt_request req = {subject, user, "rid-1", body, len};
    nt_reply rep;
    memset(&rep, 0, sizeof(rep));
    nt_buf b;
    nt_buf_init(&b, 1 << 24);
    nt_status st = nt_route_dispatch(r, &ctx, &req, &rep, &b);
    last_retry_after = rep.retry_after_ms;
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
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    char *body = malloc((size_t)n + 1);
    cr_assert_not_null(body);
    va_start(ap, fmt);
    vsnprintf(body, (size_t)n + 1, fmt, ap);
    va_end(ap);
    nt_status st = call_raw(subject, user, body, (size_t)n);
    free(body);
    return st;
}

static const cJSON *data(void)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(env, "data");
    cr_assert_not_null(d, "a data reply");
    return d;
}

static const char *err_message(void)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(env, "error");
    cr_assert_not_null(e, "an error reply");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    cr_assert(cJSON_IsString(m));
    return m->valuestring;
}

static const char *err_code(void)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(env, "error");
    cr_assert_not_null(e, "an error reply");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    cr_assert(cJSON_IsString(c));
    return c->valuestring;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsString(v), "'%s' is a string", key);
    return v->valuestring;
}

static bool is_null(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert_not_null(v, "'%s' is present", key);
    return cJSON_IsNull(v);
}

static bool flag(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsBool(v), "'%s' is a boolean", key);
    return cJSON_IsTrue(v);
}

/* Asserts the last call failed with st and exactly message. */
static void assert_failed(nt_status got, nt_status st, const char *message)
{
    cr_assert_eq(got, st, "status %d, want %d: %s", got, st,
                 cJSON_GetObjectItemCaseSensitive(env, "error") ? err_message() : "(ok)");
    cr_assert_str_eq(err_message(), message);
}

/* Sends content to room as user, expecting success; writes the new id to id. */
static void send_ok(const char *user, const char *room, const char *content, char id[NT_ID_LEN])
{
    nt_status st =
        call("chat.messages.send", user, "{\"room_id\":\"%s\",\"content\":\"%s\"}", room, content);
    cr_assert_eq(st, NT_OK, "send: %s", st != NT_OK ? err_message() : "");
    snprintf(id, NT_ID_LEN, "%s", str(data(), "id"));
}

/* ---- send ---- */

Test(msgs_handlers, send_stores_the_message_and_announces_it)
{
    nt_status st = call("chat.messages.send", "u_cat",
                        "{\"room_id\":\"" PUB "\",\"content\":\"  hello \\u00e9\\n  \"}");
    cr_assert_eq(st, NT_OK, "%s", st != NT_OK ? err_message() : "");
    const cJSON *m = data();
    cr_assert(nt_id_valid(str(m, "id")));
    cr_assert_str_eq(str(m, "room_id"), PUB);
    cr_assert_str_eq(str(m, "user_id"), "u_cat");
    cr_assert_str_eq(str(m, "username"), "cat");
    cr_assert_str_eq(str(m, "content"), "hello \xc3\xa9", "trimmed");
    cr_assert_str_eq(str(m, "message_type"), "text");
    cr_assert(is_null(m, "client_ref"));
    cr_assert_str_eq(str(m, "created_at"), T0_TEXT);
    cr_assert_not(flag(m, "edited"));
    cr_assert(is_null(m, "edited_at"));
    cr_assert_not(flag(m, "deleted"));
    cr_assert(is_null(m, "deleted_at"));
    cr_assert(is_null(m, "deleted_by"));
    cr_assert_str_eq(stored_content(str(m, "id")), "hello \xc3\xa9");
    /* rooms was asked whether u_cat may send in the room, with the request id. */
    cr_assert_eq(authz.calls, 1);
    cr_assert_str_eq(authz.action, "send");
    cr_assert_str_eq(authz.room, PUB);
    cr_assert_str_eq(authz.request_id, "rid-1");
    /* One event, the message exactly as replied. */
    cr_assert_eq(settled_events(), 1);
    assert_event(0, PUB, "message_received");
    cr_assert(cJSON_Compare(events[0].payload, m, true));
}

Test(msgs_handlers, send_keeps_type_ref_newlines_and_tabs)
{
    nt_status st = call("chat.messages.send", "u_ann",
                        "{\"room_id\":\"" PUB "\",\"content\":\"a\\n\\tb\",\"message_type\":"
                        "\"image\",\"client_ref\":\"web:1.2_3-x\"}");
    cr_assert_eq(st, NT_OK);
    cr_assert_str_eq(str(data(), "content"), "a\n\tb");
    cr_assert_str_eq(str(data(), "message_type"), "image");
    cr_assert_str_eq(str(data(), "client_ref"), "web:1.2_3-x");
    cr_assert_eq(call("chat.messages.send", "u_ann",
                      "{\"room_id\":\"" PUB "\",\"content\":\"f\",\"message_type\":\"file\"}"),
                 NT_OK);
    cr_assert_str_eq(str(data(), "message_type"), "file");
}

/* Every refusal of a malformed send: 400 with its message, before rooms is
 * asked, with nothing stored and nothing published. */
Test(msgs_handlers, send_refuses_malformed_bodies)
{
    char over[80];
    memset(over, 'r', 65);
    over[65] = '\0';
    const struct {
        const char *body;
        const char *message;
    } cases[] = {
        {"", "'room_id' is required"},
        {"[]", "body must be a JSON object"},
        {"{\"content\":\"hi\"}", "'room_id' is required"},
        {"{\"room_id\":5,\"content\":\"hi\"}", "'room_id' must be a room id"},
        {"{\"room_id\":\"0190F5E2-7B1C-7C3D-8E4F-00000000A001\",\"content\":\"hi\"}",
         "'room_id' must be a room id"},
        {"{\"room_id\":\"lobby\",\"content\":\"hi\"}", "'room_id' must be a room id"},
        {"{\"room_id\":\"lobby\",\"colour\":\"red\"}", "'room_id' must be a room id"},
        {"{\"room_id\":\"" PUB "\"}", "'content' is required"},
        {"{\"room_id\":\"" PUB "\",\"content\":null}", "'content' is required"},
        {"{\"room_id\":\"" PUB "\",\"content\":42}", "'content' must be a string"},
        {"{\"room_id\":\"" PUB "\",\"content\":\" \\n\\t \"}", "'content' must not be empty"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"a\\u0001b\"}",
         "'content' contains a control character"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"a\\u0085b\"}",
         "'content' contains a control character"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"x\",\"message_type\":\"video\"}",
         "'message_type' must be text, image or file"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"x\",\"message_type\":3}",
         "'message_type' must be text, image or file"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"x\",\"client_ref\":\"\"}",
         "'client_ref' must be 1 to 64 characters of letters, digits, '.', '_', ':' or '-'"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"x\",\"client_ref\":\"a b\"}",
         "'client_ref' must be 1 to 64 characters of letters, digits, '.', '_', ':' or '-'"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"x\",\"client_ref\":12}",
         "'client_ref' must be 1 to 64 characters of letters, digits, '.', '_', ':' or '-'"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"x\",\"colour\":\"red\"}",
         "unknown field 'colour'"},
        {"{\"room_id\":\"" PUB "\",\"content\":\"\xc3\x28\"}", "body is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nt_status st =
            call_raw("chat.messages.send", "u_ann", cases[i].body, strlen(cases[i].body));
        cr_assert_eq(st, NT_EINVAL, "%s", cases[i].body);
        cr_assert_str_eq(err_message(), cases[i].message, "%s", cases[i].body);
        cr_assert_str_eq(err_code(), "invalid_request");
    }
    char *b = NULL;
    cr_assert_gt(
        asprintf(&b, "{\"room_id\":\"" PUB "\",\"content\":\"x\",\"client_ref\":\"%s\"}", over), 0);
    assert_failed(call_raw("chat.messages.send", "u_ann", b, strlen(b)), NT_EINVAL,
                  "'client_ref' must be 1 to 64 characters of letters, digits, '.', '_', ':' or "
                  "'-'");
    free(b);
    cr_assert_eq(authz.calls, 0, "rooms is never asked about a malformed send");
    cr_assert_eq(message_count(), 0);
    cr_assert_eq(settled_events(), 0);
}

/* content of n copies of the one-character unit, between pad on each side. */
static nt_status send_repeated(const char *unit, size_t n, const char *pad)
{
    size_t ul = strlen(unit), pl = strlen(pad);
    char *c = malloc(ul * n + 2 * pl + 1);
    cr_assert_not_null(c);
    memcpy(c, pad, pl);
    for (size_t i = 0; i < n; i++)
        memcpy(c + pl + i * ul, unit, ul);
    memcpy(c + pl + n * ul, pad, pl + 1);
    nt_status st =
        call("chat.messages.send", "u_ann", "{\"room_id\":\"" PUB "\",\"content\":\"%s\"}", c);
    free(c);
    return st;
}

Test(msgs_handlers, content_length_counts_characters_not_bytes)
{
    const char *units[] = {"x", "\xc3\xa9", "\xf0\x9f\x98\x80"}; /* x, é, 😀 */
    for (size_t u = 0; u < 3; u++) {
        nt_status st = send_repeated(units[u], MSGS_CONTENT_MAX, " ");
        cr_assert_eq(st, NT_OK, "4000 x unit %zu: %s", u, st != NT_OK ? err_message() : "");
        const char *content = str(data(), "content");
        cr_assert_eq(strlen(content), MSGS_CONTENT_MAX * strlen(units[u]));
        cr_assert_eq(nt_utf8_chars(content, strlen(content)), (size_t)MSGS_CONTENT_MAX);
        cr_assert_str_eq(stored_content(str(data(), "id")), content);
        assert_failed(send_repeated(units[u], MSGS_CONTENT_MAX + 1, ""), NT_EINVAL,
                      "'content' must be 1 to 4000 characters, got 4001");
    }
    cr_assert_eq(message_count(), 3);
}

Test(msgs_handlers, too_large_and_anonymous_requests_are_refused)
{
    size_t n = MSGS_BODY_MAX + 1;
    char *big = malloc(n + 1);
    cr_assert_not_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    cr_assert_eq(call_raw("chat.messages.send", "u_ann", big, n), NT_ETOOBIG);
    free(big);
    cr_assert_eq(call("chat.messages.send", NULL, "{\"room_id\":\"" PUB "\",\"content\":\"x\"}"),
                 NT_EUNAUTH);
    cr_assert_eq(call("chat.messages.send", "u ann", "{\"room_id\":\"" PUB "\",\"content\":\"x\"}"),
                 NT_EUNAUTH);
    cr_assert_eq(authz.calls, 0);
    cr_assert_eq(message_count(), 0);
}

Test(msgs_handlers, send_needs_rooms_to_say_yes)
{
    /* An outsider of a public room: rooms' 403 and its message. */
    assert_failed(
        call("chat.messages.send", "u_eve", "{\"room_id\":\"" PUB "\",\"content\":\"x\"}"),
        NT_EFORBIDDEN, "you are not a member of room " PUB);
    /* An outsider of a private room, or a room that does not exist: rooms' 404. */
    assert_failed(
        call("chat.messages.send", "u_eve", "{\"room_id\":\"" PRIV "\",\"content\":\"x\"}"),
        NT_ENOTFOUND, "room " PRIV " does not exist");
    assert_failed(
        call("chat.messages.send", "u_ann", "{\"room_id\":\"" MISSING "\",\"content\":\"x\"}"),
        NT_ENOTFOUND, "room " MISSING " does not exist");
    cr_assert_eq(message_count(), 0);
    cr_assert_eq(settled_events(), 0);
}

Test(msgs_handlers, send_to_a_room_deleted_meanwhile_is_a_404)
{
    /* rooms still says yes; the database no longer has the room. */
    assert_failed(
        call("chat.messages.send", "u_ann", "{\"room_id\":\"" GONE "\",\"content\":\"x\"}"),
        NT_ENOTFOUND, "room " GONE " does not exist");
    cr_assert_eq(message_count(), 0);
    cr_assert_eq(settled_events(), 0);
}

Test(msgs_handlers, rooms_unavailable_is_a_503_on_every_route)
{
    char id[NT_ID_LEN];
    send_ok("u_ann", PUB, "first", id);
    events_clear();
    authz.force = NT_EUNAVAIL;
    assert_failed(
        call("chat.messages.send", "u_ann", "{\"room_id\":\"" PUB "\",\"content\":\"x\"}"),
        NT_EUNAVAIL, "rooms is unavailable: cannot check access to room " PUB);
    cr_assert_str_eq(err_code(), "unavailable");
    assert_failed(call("chat.messages.history", "u_ann", "{\"room_id\":\"" PUB "\"}"), NT_EUNAVAIL,
                  "rooms is unavailable: cannot check access to room " PUB);
    /* Edits and deletes name the message, never its room: an outsider must
     * not learn which room a message is in while rooms is down. */
    char want[160];
    snprintf(want, sizeof(want), "rooms is unavailable: cannot check access to message %s", id);
    assert_failed(
        call("chat.messages.edit", "u_ann", "{\"message_id\":\"%s\",\"content\":\"y\"}", id),
        NT_EUNAVAIL, want);
    assert_failed(call("chat.messages.delete", "u_ann", "{\"message_id\":\"%s\"}", id), NT_EUNAVAIL,
                  want);
    /* A timeout is the same to the caller. */
    authz.force = NT_ETIMEOUT;
    assert_failed(
        call("chat.messages.send", "u_ann", "{\"room_id\":\"" PUB "\",\"content\":\"x\"}"),
        NT_EUNAVAIL, "rooms is unavailable: cannot check access to room " PUB);
    cr_assert_eq(message_count(), 1);
    cr_assert_str_eq(stored_content(id), "first");
    cr_assert_eq(settled_events(), 0);
}

Test(msgs_handlers, a_repeated_client_ref_returns_the_first_message)
{
    const char *body = "{\"room_id\":\"" PUB "\",\"content\":\"once\",\"client_ref\":\"r-1\"}";
    cr_assert_eq(call_raw("chat.messages.send", "u_cat", body, strlen(body)), NT_OK);
    char id[NT_ID_LEN];
    snprintf(id, sizeof(id), "%s", str(data(), "id"));
    cJSON *first = cJSON_Duplicate(data(), true);
    /* The retry, even with other content: the first message, unchanged. */
    cr_assert_eq(call("chat.messages.send", "u_cat",
                      "{\"room_id\":\"" PUB "\",\"content\":\"twice\",\"client_ref\":\"r-1\"}"),
                 NT_OK);
    cr_assert(cJSON_Compare(data(), first, true), "the same message");
    cJSON_Delete(first);
    cr_assert_eq(message_count(), 1);
    cr_assert_eq(settled_events(), 1, "one event for one message");
    assert_event(0, PUB, "message_received");
    cr_assert_str_eq(str(events[0].payload, "id"), id);
    /* The same reference in another room is a conflict. */
    assert_failed(call("chat.messages.send", "u_cat",
                       "{\"room_id\":\"" PRIV "\",\"content\":\"x\",\"client_ref\":\"r-1\"}"),
                  NT_ECONFLICT, "client_ref 'r-1' was already used for a message in another room");
    /* References are per user. */
    cr_assert_eq(call("chat.messages.send", "u_dan",
                      "{\"room_id\":\"" PUB "\",\"content\":\"mine\",\"client_ref\":\"r-1\"}"),
                 NT_OK);
    cr_assert_str_neq(str(data(), "id"), id);
    cr_assert_eq(message_count(), 2);
    cr_assert_eq(settled_events(), 2);
}

/* Sleeps ms milliseconds of real time. */
static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

Test(msgs_handlers, sends_over_the_rate_limit_get_429_then_recover)
{
    /* Two at once, then one every 500 ms. */
    nt_ratelimit *rl = NULL;
    cr_assert_eq(nt_ratelimit_create(2, 2, 100, &rl), NT_OK);
    ctx.send_limit = rl;
    /* Refused bodies do not count: they are checked first. */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(call("chat.messages.send", "u_cat", "{\"room_id\":\"" PUB "\"}"), NT_EINVAL);
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "one", id);
    send_ok("u_cat", PUB, "two", id);
    int calls = authz.calls;
    nt_status st =
        call("chat.messages.send", "u_cat", "{\"room_id\":\"" PUB "\",\"content\":\"3\"}");
    cr_assert_eq(st, NT_ERATE);
    cr_assert_str_eq(err_code(), "rate_limited");
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(env, "error"), "retry_after_ms");
    cr_assert(cJSON_IsNumber(ra), "the envelope carries retry_after_ms");
    long long retry = (long long)ra->valuedouble;
    cr_assert(retry > 0 && retry <= 500, "retry_after_ms %lld", retry);
    cr_assert_eq(last_retry_after, retry, "the reply carries it for the adapter's header");
    char want[NT_ERRMSG_LEN];
    snprintf(want, sizeof(want), "too many messages: try again in %lld ms", retry);
    cr_assert_str_eq(err_message(), want);
    cr_assert_eq(authz.calls, calls, "a refused send does not reach rooms");
    cr_assert_eq(message_count(), 2);
    /* The limit is per user. */
    send_ok("u_dan", PUB, "other user", id);
    /* Once the hint has passed, a token is there again. */
    sleep_ms(retry + 5);
    send_ok("u_cat", PUB, "three", id);
    cr_assert_eq(message_count(), 4);
    ctx.send_limit = limit;
    nt_ratelimit_destroy(rl);
}

Test(msgs_handlers, a_busy_store_refuses_the_send_with_503)
{
    /* Another connection holds the write lock; the writer gives up quickly. */
    sqlite3 *w = nt_store_lock(store);
    sqlite3_busy_timeout(w, 50);
    nt_store_unlock(store);
    char path[128];
    snprintf(path, sizeof(path), "%s/natter.db", dir);
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_failed(call("chat.messages.send", "u_ann",
                       "{\"room_id\":\"" PUB "\",\"content\":\"x\",\"client_ref\":\"b-1\"}"),
                  NT_EUNAVAIL,
                  "the message was not stored: the store is busy; send it again with the same "
                  "client_ref");
    assert_failed(
        call("chat.messages.send", "u_ann", "{\"room_id\":\"" PUB "\",\"content\":\"x\"}"),
        NT_EUNAVAIL, "the message was not stored: the store is busy; send it again");
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    cr_assert_eq(message_count(), 0);
    cr_assert_eq(settled_events(), 0);
    /* The retry with the same reference goes through. */
    cr_assert_eq(call("chat.messages.send", "u_ann",
                      "{\"room_id\":\"" PUB "\",\"content\":\"x\",\"client_ref\":\"b-1\"}"),
                 NT_OK);
    cr_assert_eq(settled_events(), 1);
}

/* ---- concurrent sends ---- */

#define SENDERS    8
#define PER_SENDER 20

static void *sender(void *arg)
{
    const char *user = arg;
    for (int i = 0; i < PER_SENDER; i++) {
        char body[128];
        int n = snprintf(body, sizeof(body), "{\"room_id\":\"" PUB "\",\"content\":\"%s %d\"}",
                         user, i);
        nt_request req = {"chat.messages.send", user, "rid-c", body, (size_t)n};
        nt_reply rep;
        memset(&rep, 0, sizeof(rep));
        nt_buf b;
        nt_buf_init(&b, 1 << 16);
        nt_status st = nt_route_dispatch(&msgs_routes[0], &ctx, &req, &rep, &b);
        nt_reply_clear(&rep);
        nt_buf_free(&b);
        if (st != NT_OK)
            return (void *)1;
    }
    return NULL;
}

Test(msgs_handlers, concurrent_sends_are_all_stored_and_announced_in_id_order)
{
    cr_assert_str_eq(msgs_routes[0].subject, "chat.messages.send");
    static const char *users[SENDERS] = {"u_ann", "u_bob", "u_cat", "u_dan",
                                         "u_ann", "u_bob", "u_cat", "u_dan"};
    pthread_t t[SENDERS];
    for (int i = 0; i < SENDERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, sender, (void *)users[i]), 0);
    for (int i = 0; i < SENDERS; i++) {
        void *res = NULL;
        pthread_join(t[i], &res);
        cr_assert_null(res, "every send succeeded");
    }
    cr_assert_eq(message_count(), SENDERS * PER_SENDER);
    cr_assert_eq(settled_events(), (size_t)(SENDERS * PER_SENDER));
    /* Events leave in commit order, and ids rise in commit order. */
    for (size_t i = 1; i < nevents; i++)
        cr_assert_lt(strcmp(str(events[i - 1].payload, "id"), str(events[i].payload, "id")), 0,
                     "event %zu", i);
}

/* ---- history ---- */

/* Asserts the page's messages are exactly ids[from..to) of all, oldest first. */
static void assert_page(char all[][NT_ID_LEN], size_t from, size_t to, bool more,
                        const char *cursor)
{
    const cJSON *d = data();
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(d, "messages");
    cr_assert(cJSON_IsArray(arr));
    cr_assert_eq((size_t)cJSON_GetArraySize(arr), to - from, "page size");
    for (size_t i = from; i < to; i++)
        cr_assert_str_eq(str(cJSON_GetArrayItem(arr, (int)(i - from)), "id"), all[i], "item %zu",
                         i);
    cr_assert_eq(flag(d, "has_more"), more);
    if (cursor == NULL)
        cr_assert(is_null(d, "next_cursor"));
    else
        cr_assert_str_eq(str(d, "next_cursor"), cursor);
}

static nt_status history(const char *user, const char *extra)
{
    return call("chat.messages.history", user, "{\"room_id\":\"" PUB "\"%s}", extra);
}

Test(msgs_handlers, history_pages_back_and_forward)
{
    char ids[7][NT_ID_LEN], other[NT_ID_LEN], extra[128];
    for (int i = 0; i < 7; i++) {
        char c[8];
        snprintf(c, sizeof(c), "m%d", i);
        send_ok(i % 2 ? "u_cat" : "u_ann", PUB, c, ids[i]);
    }
    send_ok("u_ann", PRIV, "elsewhere", other);
    for (int i = 1; i < 7; i++)
        cr_assert_lt(strcmp(ids[i - 1], ids[i]), 0, "ids rise");

    /* The latest page: the newest three, oldest first; going back from the oldest. */
    cr_assert_eq(history("u_dan", ",\"limit\":3"), NT_OK);
    assert_page(ids, 4, 7, true, ids[4]);
    cr_assert_str_eq(authz.action, "read");
    cr_assert_str_eq(
        str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data(), "messages"), 0), "content"),
        "m4");
    snprintf(extra, sizeof(extra), ",\"before\":\"%s\",\"limit\":\"3\"", ids[4]);
    cr_assert_eq(history("u_dan", extra), NT_OK);
    assert_page(ids, 1, 4, true, ids[1]);
    snprintf(extra, sizeof(extra), ",\"before\":\"%s\",\"limit\":3", ids[1]);
    cr_assert_eq(history("u_dan", extra), NT_OK);
    assert_page(ids, 0, 1, false, NULL);

    /* Forward from the first: catching up, oldest first, from the newest. */
    snprintf(extra, sizeof(extra), ",\"after\":\"%s\",\"limit\":\"3\"", ids[0]);
    cr_assert_eq(history("u_dan", extra), NT_OK);
    assert_page(ids, 1, 4, true, ids[3]);
    snprintf(extra, sizeof(extra), ",\"after\":\"%s\",\"limit\":3", ids[3]);
    cr_assert_eq(history("u_dan", extra), NT_OK);
    assert_page(ids, 4, 7, false, NULL);
    snprintf(extra, sizeof(extra), ",\"after\":\"%s\"", ids[6]);
    cr_assert_eq(history("u_dan", extra), NT_OK);
    assert_page(ids, 7, 7, false, NULL);

    /* The default page holds everything here; the private room's message is not in it. */
    cr_assert_eq(history("u_dan", ""), NT_OK);
    assert_page(ids, 0, 7, false, NULL);
    cr_assert_eq(history("u_dan", ",\"limit\":7"), NT_OK);
    assert_page(ids, 0, 7, false, NULL);
    cr_assert_eq(history("u_dan", ",\"limit\":\"6\""), NT_OK);
    assert_page(ids, 1, 7, true, ids[1]);

    /* A cursor is a position: an id no message has works. MISSING is older than all. */
    cr_assert_eq(history("u_dan", ",\"after\":\"" MISSING "\",\"limit\":2"), NT_OK);
    assert_page(ids, 0, 2, true, ids[1]);
    cr_assert_eq(history("u_dan", ",\"before\":\"" MISSING "\""), NT_OK);
    assert_page(ids, 0, 0, false, NULL);
    cr_assert_eq(
        history("u_dan", ",\"before\":\"ffffffff-ffff-7fff-bfff-ffffffffffff\",\"limit\":2"),
        NT_OK);
    assert_page(ids, 5, 7, true, ids[5]);
}

Test(msgs_handlers, history_keeps_tombstones_in_place)
{
    char ids[3][NT_ID_LEN];
    send_ok("u_cat", PUB, "a", ids[0]);
    send_ok("u_cat", PUB, "b", ids[1]);
    send_ok("u_cat", PUB, "c", ids[2]);
    cr_assert_eq(call("chat.messages.delete", "u_cat", "{\"message_id\":\"%s\"}", ids[1]), NT_OK);
    cr_assert_eq(history("u_ann", ""), NT_OK);
    assert_page(ids, 0, 3, false, NULL);
    const cJSON *mid = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data(), "messages"), 1);
    cr_assert(flag(mid, "deleted"));
    cr_assert_str_eq(str(mid, "content"), "");
    cr_assert_str_eq(str(mid, "deleted_by"), "u_cat");
}

Test(msgs_handlers, history_refuses_malformed_queries_before_asking_rooms)
{
    const char *limits[] = {"\"0\"", "\"101\"", "\"abc\"", "\"1.5\"", "\"-3\"", "\"\"",
                            "0",     "101",     "1.5",     "-3",      "true",   "\"7x\""};
    char extra[64];
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        snprintf(extra, sizeof(extra), ",\"limit\":%s", limits[i]);
        assert_failed(history("u_ann", extra), NT_EINVAL,
                      "'limit' must be an integer from 1 to 100");
    }
    assert_failed(history("u_ann", ",\"before\":\"" MISSING "\",\"after\":\"" MISSING "\""),
                  NT_EINVAL, "use 'before' or 'after', not both");
    assert_failed(history("u_ann", ",\"before\":\"m1\""), NT_EINVAL,
                  "'before' must be a message id");
    assert_failed(history("u_ann", ",\"after\":5"), NT_EINVAL, "'after' must be a message id");
    assert_failed(history("u_ann", ",\"cursor\":\"abc\""), NT_EINVAL, "unknown field 'cursor'");
    assert_failed(call("chat.messages.history", "u_ann", "{\"room_id\":\"nope\"}"), NT_EINVAL,
                  "'room_id' must be a room id");
    assert_failed(call("chat.messages.history", "u_ann", "{}"), NT_EINVAL, "'room_id' is required");
    cr_assert_eq(authz.calls, 0);
}

Test(msgs_handlers, history_is_for_members_only)
{
    char id[NT_ID_LEN];
    send_ok("u_ann", PRIV, "hush", id);
    assert_failed(history("u_eve", ""), NT_EFORBIDDEN, "you are not a member of room " PUB);
    assert_failed(call("chat.messages.history", "u_eve", "{\"room_id\":\"" PRIV "\"}"),
                  NT_ENOTFOUND, "room " PRIV " does not exist");
    cr_assert_eq(call("chat.messages.history", "u_cat", "{\"room_id\":\"" PRIV "\"}"), NT_OK);
}

/* ---- edit ---- */

Test(msgs_handlers, the_author_edits_and_everyone_hears_of_it)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "first draft", id);
    events_clear();
    atomic_store(&now_ms, T0 + 5000);
    nt_status st = call("chat.messages.edit", "u_cat",
                        "{\"message_id\":\"%s\",\"content\":\" second draft \"}", id);
    cr_assert_eq(st, NT_OK, "%s", st != NT_OK ? err_message() : "");
    const cJSON *m = data();
    cr_assert_str_eq(str(m, "id"), id);
    cr_assert_str_eq(str(m, "content"), "second draft");
    cr_assert(flag(m, "edited"));
    cr_assert_str_eq(str(m, "edited_at"), T1_TEXT);
    cr_assert_str_eq(str(m, "created_at"), T0_TEXT);
    cr_assert_str_eq(str(m, "username"), "cat");
    cr_assert_not(flag(m, "deleted"));
    cr_assert_str_eq(stored_content(id), "second draft");
    cr_assert_str_eq(authz.action, "send");
    cr_assert_eq(settled_events(), 1);
    assert_event(0, PUB, "message_updated");
    cr_assert(cJSON_Compare(events[0].payload, m, true));
    /* History shows the edit. */
    cr_assert_eq(history("u_ann", ""), NT_OK);
    const cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data(), "messages"), 0);
    cr_assert_str_eq(str(h, "content"), "second draft");
    cr_assert(flag(h, "edited"));
}

Test(msgs_handlers, an_edit_to_the_same_text_changes_nothing)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "same", id);
    events_clear();
    atomic_store(&now_ms, T0 + 5000);
    cr_assert_eq(call("chat.messages.edit", "u_cat",
                      "{\"message_id\":\"%s\",\"content\":\"\\n same  \"}", id),
                 NT_OK);
    cr_assert_str_eq(str(data(), "content"), "same");
    cr_assert_not(flag(data(), "edited"));
    cr_assert(is_null(data(), "edited_at"));
    cr_assert_eq(sql_count("SELECT COUNT(*) FROM messages WHERE edited_at IS NOT NULL", NULL), 0);
    cr_assert_eq(settled_events(), 0, "no event");
}

Test(msgs_handlers, only_the_author_may_edit)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "mine", id);
    events_clear();
    /* A moderator, an admin and another member: 403. */
    const char *others[] = {"u_bob", "u_ann", "u_dan"};
    for (size_t i = 0; i < 3; i++)
        assert_failed(call("chat.messages.edit", others[i],
                           "{\"message_id\":\"%s\",\"content\":\"theirs\"}", id),
                      NT_EFORBIDDEN, "only the author may edit a message");
    /* An outsider of the public room: rooms' refusal. */
    assert_failed(
        call("chat.messages.edit", "u_eve", "{\"message_id\":\"%s\",\"content\":\"x\"}", id),
        NT_EFORBIDDEN, "you are not a member of room " PUB);
    cr_assert_str_eq(stored_content(id), "mine");
    cr_assert_eq(settled_events(), 0);
}

Test(msgs_handlers, a_deleted_message_cannot_be_edited)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "soon gone", id);
    cr_assert_eq(call("chat.messages.delete", "u_cat", "{\"message_id\":\"%s\"}", id), NT_OK);
    events_clear();
    nt_status st =
        call("chat.messages.edit", "u_cat", "{\"message_id\":\"%s\",\"content\":\"back\"}", id);
    cr_assert_eq(st, NT_ECONFLICT);
    char want[NT_ERRMSG_LEN];
    snprintf(want, sizeof(want), "message %s was deleted", id);
    cr_assert_str_eq(err_message(), want);
    cr_assert_str_eq(stored_content(id), "");
    cr_assert_eq(settled_events(), 0);
}

Test(msgs_handlers, edit_refuses_malformed_bodies_before_loading)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "x", id);
    authz.calls = 0;
    assert_failed(call("chat.messages.edit", "u_cat", "{\"content\":\"y\"}"), NT_EINVAL,
                  "'message_id' is required");
    assert_failed(call("chat.messages.edit", "u_cat", "{\"message_id\":\"42\",\"content\":\"y\"}"),
                  NT_EINVAL, "'message_id' must be a message id");
    assert_failed(call("chat.messages.edit", "u_cat", "{\"message_id\":\"%s\"}", id), NT_EINVAL,
                  "'content' is required");
    assert_failed(
        call("chat.messages.edit", "u_cat", "{\"message_id\":\"%s\",\"content\":\"  \"}", id),
        NT_EINVAL, "'content' must not be empty");
    assert_failed(call("chat.messages.edit", "u_cat",
                       "{\"message_id\":\"%s\",\"content\":\"y\",\"room_id\":\"" PUB "\"}", id),
                  NT_EINVAL, "unknown field 'room_id'");
    cr_assert_eq(authz.calls, 0);
    cr_assert_str_eq(stored_content(id), "x");
}

/* A private room's outsider gets the same answer for its messages as for a
 * message that does not exist: nothing leaks. */
Test(msgs_handlers, private_messages_do_not_exist_for_outsiders)
{
    char id[NT_ID_LEN];
    send_ok("u_ann", PRIV, "hush", id);
    events_clear();
    const char *bodies[][2] = {
        {"chat.messages.edit", "{\"message_id\":\"%s\",\"content\":\"x\"}"},
        {"chat.messages.delete", "{\"message_id\":\"%s\"}"},
    };
    for (size_t i = 0; i < 2; i++) {
        char want[NT_ERRMSG_LEN];
        snprintf(want, sizeof(want), "message %s does not exist", id);
        assert_failed(call(bodies[i][0], "u_eve", bodies[i][1], id), NT_ENOTFOUND, want);
        char *existing = cJSON_PrintUnformatted(env);
        assert_failed(call(bodies[i][0], "u_eve", bodies[i][1], MISSING), NT_ENOTFOUND,
                      "message " MISSING " does not exist");
        /* Byte for byte the same envelope, but for the id. */
        char *missing = cJSON_PrintUnformatted(env);
        char *at = strstr(existing, id);
        cr_assert_not_null(at);
        memcpy(at, MISSING, strlen(MISSING));
        cr_assert_str_eq(existing, missing);
        free(missing);
        free(existing);
    }
    cr_assert_str_eq(stored_content(id), "hush");
    cr_assert_eq(settled_events(), 0);
}

/* ---- delete ---- */

Test(msgs_handlers, the_author_deletes_once_and_again_harmlessly)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "regret", id);
    events_clear();
    atomic_store(&now_ms, T0 + 5000);
    cr_assert_eq(call("chat.messages.delete", "u_cat", "{\"message_id\":\"%s\"}", id), NT_OK);
    const cJSON *m = data();
    cr_assert_str_eq(str(m, "id"), id);
    cr_assert_str_eq(str(m, "content"), "");
    cr_assert(flag(m, "deleted"));
    cr_assert_str_eq(str(m, "deleted_at"), T1_TEXT);
    cr_assert_str_eq(str(m, "deleted_by"), "u_cat");
    cr_assert_str_eq(str(m, "user_id"), "u_cat");
    cr_assert_str_eq(authz.action, "send", "the author needs only to be able to send");
    cr_assert_str_eq(stored_content(id), "");
    cr_assert_eq(settled_events(), 1);
    assert_event(0, PUB, "message_deleted");
    cr_assert(cJSON_Compare(events[0].payload, m, true));
    cJSON *first = cJSON_Duplicate(m, true);
    /* Again, later: the same tombstone, no second event. */
    atomic_store(&now_ms, T0 + 9000);
    cr_assert_eq(call("chat.messages.delete", "u_cat", "{\"message_id\":\"%s\"}", id), NT_OK);
    cr_assert(cJSON_Compare(data(), first, true));
    cJSON_Delete(first);
    cr_assert_eq(settled_events(), 1);
}

Test(msgs_handlers, moderators_and_admins_delete_others_messages)
{
    char a[NT_ID_LEN], b[NT_ID_LEN];
    send_ok("u_cat", PUB, "spam", a);
    send_ok("u_dan", PUB, "more spam", b);
    events_clear();
    cr_assert_eq(call("chat.messages.delete", "u_bob", "{\"message_id\":\"%s\"}", a), NT_OK);
    cr_assert_str_eq(authz.action, "moderate");
    cr_assert_str_eq(str(data(), "deleted_by"), "u_bob");
    cr_assert_str_eq(str(data(), "user_id"), "u_cat");
    cr_assert_eq(call("chat.messages.delete", "u_ann", "{\"message_id\":\"%s\"}", b), NT_OK);
    cr_assert_str_eq(str(data(), "deleted_by"), "u_ann");
    cr_assert_eq(settled_events(), 2);
    assert_event(0, PUB, "message_deleted");
    assert_event(1, PUB, "message_deleted");
    cr_assert_str_eq(str(events[0].payload, "id"), a);
    cr_assert_str_eq(str(events[1].payload, "id"), b);
}

Test(msgs_handlers, members_and_outsiders_cannot_delete_others_messages)
{
    char id[NT_ID_LEN];
    send_ok("u_cat", PUB, "keep", id);
    events_clear();
    const char *who[] = {"u_dan", "u_eve"};
    for (size_t i = 0; i < 2; i++)
        assert_failed(call("chat.messages.delete", who[i], "{\"message_id\":\"%s\"}", id),
                      NT_EFORBIDDEN,
                      "only the author, or an admin or moderator of the room, may delete this "
                      "message");
    cr_assert_str_eq(stored_content(id), "keep");
    cr_assert_eq(settled_events(), 0);
}

Test(msgs_handlers, delete_and_edit_of_a_missing_message_are_404)
{
    assert_failed(call("chat.messages.delete", "u_ann", "{\"message_id\":\"" MISSING "\"}"),
                  NT_ENOTFOUND, "message " MISSING " does not exist");
    assert_failed(
        call("chat.messages.edit", "u_ann", "{\"message_id\":\"" MISSING "\",\"content\":\"x\"}"),
        NT_ENOTFOUND, "message " MISSING " does not exist");
    assert_failed(call("chat.messages.delete", "u_ann", "{\"message_id\":\"" MISSING "\",\"x\":1}"),
                  NT_EINVAL, "unknown field 'x'");
    cr_assert_eq(authz.calls, 0, "rooms is not asked about a message that does not exist");
}
