/* The authorisation cache protocol of the rooms service, with a fake cache
 * that can fail on purpose: a write whose cache put fails, or lands but
 * reports a failure, or whose commit fails after the put, leaves the cache
 * holding the committed state (or nothing), never the refused one. */
#include "../../../services/rooms/rooms.h"

#include "nt_log.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- a fake cache: a few keys in memory ---- */

#define SLOTS 8

typedef enum { WORKS, FAILS, LANDS_BUT_FAILS } put_mode;

static struct {
    char keys[SLOTS][80];
    char *vals[SLOTS];
    put_mode put_mode; /* for the next put only */
    int puts, creates, dels;
} kv;

static int slot(const char *key, bool add)
{
    for (int i = 0; i < SLOTS; i++)
        if (kv.vals[i] != NULL && strcmp(kv.keys[i], key) == 0)
            return i;
    for (int i = 0; add && i < SLOTS; i++) {
        if (kv.vals[i] == NULL) {
            snprintf(kv.keys[i], sizeof(kv.keys[i]), "%s", key);
            return i;
        }
    }
    cr_assert(!add, "fake cache full");
    return -1;
}

static void store_val(const char *key, const char *val, size_t len)
{
    int i = slot(key, true);
    free(kv.vals[i]);
    kv.vals[i] = strndup(val, len);
}

static nt_status fake_put(void *arg, const char *key, const char *val, size_t len)
{
    (void)arg;
    kv.puts++;
    put_mode mode = kv.put_mode;
    kv.put_mode = WORKS; /* a passing outage: the next put works */
    if (mode == FAILS)
        return NT_EUNAVAIL;
    store_val(key, val, len);
    return mode == LANDS_BUT_FAILS ? NT_ETIMEOUT : NT_OK;
}

static nt_status fake_create(void *arg, const char *key, const char *val, size_t len)
{
    (void)arg;
    kv.creates++;
    if (slot(key, false) >= 0)
        return NT_ECONFLICT;
    store_val(key, val, len);
    return NT_OK;
}

static nt_status fake_get(void *arg, const char *key, char **val, size_t *len)
{
    (void)arg;
    int i = slot(key, false);
    if (i < 0)
        return NT_ENOTFOUND;
    *val = strdup(kv.vals[i]);
    *len = strlen(*val);
    return NT_OK;
}

static nt_status fake_del(void *arg, const char *key)
{
    (void)arg;
    kv.dels++;
    int i = slot(key, false);
    if (i >= 0) {
        free(kv.vals[i]);
        kv.vals[i] = NULL;
    }
    return NT_OK;
}

static const rooms_cache_ops fake_ops = {fake_put, fake_create, fake_get, fake_del, NULL};

/* The cached entry of a room, or NULL. */
static const char *cached(const char *room_id)
{
    char key[80];
    snprintf(key, sizeof(key), "room:%s:members", room_id);
    int i = slot(key, false);
    return i >= 0 ? kv.vals[i] : NULL;
}

/* ---- the service ---- */

static nt_store *store;
static rooms_ctx ctx;
static int published;
static char reply[4096];

static nt_status count_publish(void *arg, const char *subject, const char *data, size_t len)
{
    (void)arg;
    (void)subject;
    (void)data;
    (void)len;
    published++;
    return NT_OK;
}

static void add_user(const char *user_id)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO users (id, clerk_user_id, username, email) "
             "VALUES ('p-%s', '%s', '%s', '%s@example.com')",
             user_id, user_id, user_id, user_id);
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    nt_store_unlock(store);
}

static nt_status call(const char *subject, const char *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nt_status call(const char *subject, const char *user, const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    const nt_route *r = nt_route_find(rooms_routes, rooms_nroutes, subject);
    cr_assert_not_null(r);
    nt_request req = {subject, user, "rid", body, strlen(body)};
    nt_reply rep;
    memset(&rep, 0, sizeof(rep));
    nt_buf out;
    nt_buf_init(&out, 1 << 20);
    nt_status st = nt_route_dispatch(r, &ctx, &req, &rep, &out);
    snprintf(reply, sizeof(reply), "%.*s", (int)out.len, out.data);
    nt_buf_free(&out);
    nt_reply_clear(&rep);
    return st;
}

static long long members_in_db(const char *room_id)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM room_members WHERE room_id = '%s'", room_id);
    sqlite3 *db = nt_store_lock(store);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    sqlite3_step(s);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    nt_store_unlock(store);
    return n;
}

/* Creates a public room as u_ann and returns its id. */
static void create_room(char id[NT_ID_LEN])
{
    cr_assert_eq(call("chat.rooms.create", "u_ann", "{\"name\":\"Room\"}"), NT_OK, "%s", reply);
    const char *p = strstr(reply, "\"id\":\"");
    cr_assert_not_null(p);
    snprintf(id, NT_ID_LEN, "%.36s", p + 6);
}

static void setup(void)
{
    nt_log_set_level(NT_LOG_ERROR);
    memset(&kv, 0, sizeof(kv));
    cr_assert_eq(nt_store_open(":memory:", "schemas/migrations", &store), NT_OK);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = store;
    ctx.cache = &fake_ops;
    ctx.publish = count_publish;
    published = 0;
    add_user("u_ann");
    add_user("u_bob");
}

static void teardown(void)
{
    for (int i = 0; i < SLOTS; i++)
        free(kv.vals[i]);
    nt_store_close(store);
}

TestSuite(rooms_cache, .init = setup, .fini = teardown);

Test(rooms_cache, a_write_puts_the_new_state_before_it_commits)
{
    char id[NT_ID_LEN];
    create_room(id);
    cr_assert_not_null(cached(id));
    cr_assert(strstr(cached(id), "u_ann") != NULL, "%s", cached(id));
    cr_assert_eq(call("chat.rooms.join", "u_bob", "{\"room_id\":\"%s\"}", id), NT_OK);
    cr_assert(strstr(cached(id), "u_bob") != NULL, "%s", cached(id));
}

Test(rooms_cache, a_put_that_fails_refuses_the_write_and_keeps_the_committed_state)
{
    char id[NT_ID_LEN];
    create_room(id);
    char *before = strdup(cached(id));
    kv.put_mode = FAILS;
    published = 0;
    cr_assert_eq(call("chat.rooms.join", "u_bob", "{\"room_id\":\"%s\"}", id), NT_EUNAVAIL);
    cr_assert(strstr(reply, "nothing was changed") != NULL, "%s", reply);
    cr_assert_eq(members_in_db(id), 1, "the join was rolled back");
    cr_assert_eq(published, 0, "a refused write publishes nothing");
    cr_assert_str_eq(cached(id), before, "the entry still holds the committed state");
    free(before);
}

Test(rooms_cache, a_put_that_landed_but_failed_is_replaced_by_the_committed_state)
{
    char id[NT_ID_LEN];
    create_room(id);
    char *before = strdup(cached(id));
    kv.put_mode = LANDS_BUT_FAILS;
    cr_assert_eq(call("chat.rooms.join", "u_bob", "{\"room_id\":\"%s\"}", id), NT_EUNAVAIL);
    cr_assert_eq(members_in_db(id), 1);
    cr_assert_str_eq(cached(id), before, "bob's refused join must not stay in the cache");
    cr_assert(strstr(cached(id), "u_bob") == NULL, "%s", cached(id));
    free(before);
    /* authorize agrees with the database. */
    cr_assert_eq(
        call("chat.rooms.authorize", "u_bob", "{\"room_id\":\"%s\",\"action\":\"send\"}", id),
        NT_EFORBIDDEN);
}

static int refuse_commit(void *arg)
{
    (void)arg;
    return 1; /* SQLite turns the COMMIT into a ROLLBACK */
}

Test(rooms_cache, a_commit_that_fails_after_the_put_removes_the_entry)
{
    char id[NT_ID_LEN];
    create_room(id);
    sqlite3 *db = nt_store_lock(store);
    sqlite3_commit_hook(db, refuse_commit, NULL);
    nt_store_unlock(store);
    published = 0;
    nt_status st = call("chat.rooms.join", "u_bob", "{\"room_id\":\"%s\"}", id);
    cr_assert(st == NT_EINTERNAL || st == NT_EUNAVAIL, "got %s: %s", nt_status_str(st), reply);
    cr_assert_eq(members_in_db(id), 1);
    cr_assert_eq(published, 0);
    /* SQLite ended the transaction itself, so the committed state cannot be
     * re-read under the write lock: the entry is deleted instead. */
    cr_assert_null(cached(id), "the uncommitted state stayed cached: %s", cached(id));
    db = nt_store_lock(store);
    sqlite3_commit_hook(db, NULL, NULL);
    nt_store_unlock(store);
    /* The next read refills it from the database. */
    cr_assert_eq(
        call("chat.rooms.authorize", "u_ann", "{\"room_id\":\"%s\",\"action\":\"read\"}", id),
        NT_OK);
    cr_assert_not_null(cached(id));
    cr_assert(strstr(cached(id), "u_bob") == NULL, "%s", cached(id));
}

Test(rooms_cache, a_reader_never_overwrites_what_a_writer_put)
{
    char id[NT_ID_LEN];
    create_room(id);
    /* A writer's entry exists: a miss-fill must not replace it. */
    char fake[256];
    snprintf(
        fake, sizeof(fake),
        "{\"room_id\":\"%s\",\"exists\":true,\"is_private\":false,\"members\":["
        "{\"user_id\":\"u_ann\",\"role\":\"admin\"},{\"user_id\":\"u_bob\",\"role\":\"member\"}]}",
        id);
    char key[80];
    snprintf(key, sizeof(key), "room:%s:members", id);
    store_val(key, fake, strlen(fake));
    cr_assert_eq(
        call("chat.rooms.authorize", "u_bob", "{\"room_id\":\"%s\",\"action\":\"send\"}", id),
        NT_OK, "authorize answers from the cache");
    cr_assert_str_eq(cached(id), fake);
    /* A miss fills once, with create. */
    fake_del(NULL, key);
    int creates = kv.creates;
    cr_assert_eq(
        call("chat.rooms.authorize", "u_bob", "{\"room_id\":\"%s\",\"action\":\"send\"}", id),
        NT_EFORBIDDEN);
    cr_assert_eq(kv.creates, creates + 1);
    cr_assert_not_null(cached(id));
}

Test(rooms_cache, a_marker_sends_authorize_to_the_database)
{
    char id[NT_ID_LEN];
    ctx.cache_max = 1;
    create_room(id);
    cr_assert(strstr(cached(id), "\"members\"") != NULL, "one member fits: %s", cached(id));
    cr_assert_eq(call("chat.rooms.join", "u_bob", "{\"room_id\":\"%s\"}", id), NT_OK);
    cr_assert(strstr(cached(id), "\"uncached\":true") != NULL, "%s", cached(id));
    cr_assert(strstr(cached(id), "u_bob") == NULL, "%s", cached(id));
    cr_assert_eq(
        call("chat.rooms.authorize", "u_bob", "{\"room_id\":\"%s\",\"action\":\"send\"}", id),
        NT_OK, "%s", reply);
    cr_assert(strstr(reply, "\"role\":\"member\"") != NULL, "%s", reply);
}
