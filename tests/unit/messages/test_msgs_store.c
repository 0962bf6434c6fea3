/* Tests of the messages store's statements on a real SQLite file in a
 * temporary directory, with schemas/migrations applied (tests run from the
 * repository root) and users and rooms seeded with plain SQL. */
#include "../../../services/messages/msgs.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATIONS "schemas/migrations"
#define T0         1796452812345LL /* 2026-12-05T06:40:12.345Z */
#define T0_TEXT    "2026-12-05T06:40:12.345Z"
#define T1_TEXT    "2026-12-05T07:00:00.000Z"
#define ROOM1      "0190f5e2-7b1c-7c3d-8e4f-000000000001"
#define ROOM2      "0190f5e2-7b1c-7c3d-8e4f-000000000002"
#define ROOM3      "0190f5e2-7b1c-7c3d-8e4f-000000000003"
#define MISSING    "0190f5e2-7b1c-7c3d-8e4f-0000000000ff" /* a room that never exists */
#define FUTURE     "ffffffff-0000-7000-8000-000000000000" /* year 10889 */
#define ZERO_ID    "00000000-0000-0000-0000-000000000000"
#define TOP_ID     "ffffffff-ffff-7fff-bfff-ffffffffffff"

static char tmp[256];
static char dbpath[320];
static nt_store *store;

static int64_t fake_ms;

static int64_t fake_now(void)
{
    return fake_ms;
}

/* Runs SQL on the writer connection. */
static void sql(const char *text)
{
    sqlite3 *db = nt_store_lock(store);
    char *err = NULL;
    int rc = sqlite3_exec(db, text, NULL, NULL, &err);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", text, err != NULL ? err : "?");
    sqlite3_free(err);
    nt_store_unlock(store);
}

static long long count(const char *text)
{
    sqlite3 *db = nt_store_lock(store);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, text, -1, &s, NULL), SQLITE_OK, "%s", text);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    nt_store_unlock(store);
    return n;
}

static void setup(void)
{
    nt_log_set_level(NT_LOG_ERROR);
    snprintf(tmp, sizeof(tmp), "/tmp/msgs_store_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
    snprintf(dbpath, sizeof(dbpath), "%s/natter.db", tmp);
    cr_assert_eq(nt_store_open(dbpath, MIGRATIONS, &store), NT_OK,
                 "cannot open the store: run the unit tests from the repository root");
    sql("INSERT INTO users (id, clerk_user_id, username, email) VALUES "
        "('u1', 'user_1', 'alice', 'a@example.com'), ('u2', 'user_2', 'bob', 'b@example.com');"
        "INSERT INTO chat_rooms (id, name, created_by) VALUES "
        "('" ROOM1 "', 'one', 'user_1'), ('" ROOM2 "', 'two', 'user_1'), "
        "('" ROOM3 "', 'three', 'user_2');");
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    nt_clock_set_fake(NULL);
    nt_store_close(store);
    store = NULL;
    if (tmp[0] != '\0')
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(msgs_store, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ---- */

/* Inserts one message in its own transaction. */
static nt_status put(const char *room, const char *user, const char *content, const char *ref,
                     msgs_message *out)
{
    msgs_new n = {
        .room_id = room, .user_id = user, .content = content, .type = "text", .client_ref = ref};
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(msgs_db_begin(db), NT_OK);
    nt_status st = msgs_db_insert(db, &n, out);
    if (st == NT_OK)
        cr_assert_eq(msgs_db_commit(db), NT_OK);
    else
        msgs_db_rollback(db);
    cr_assert(sqlite3_get_autocommit(db), "no transaction is left open");
    nt_store_unlock(store);
    return st;
}

/* Inserts one message and returns its id in out. */
static void put_id(const char *room, const char *user, char out[NT_ID_LEN])
{
    msgs_message m = {0};
    cr_assert_eq(put(room, user, "hello", NULL, &m), NT_OK);
    memcpy(out, m.id, NT_ID_LEN);
    msgs_message_clear(&m);
}

static nt_status get(const char *id, msgs_message *out)
{
    sqlite3 *db = nt_store_lock_read(store);
    nt_status st = msgs_db_get(db, id, out);
    nt_store_unlock_read(store);
    return st;
}

static nt_status page(const char *room, msgs_page_kind kind, const char *cursor, int limit,
                      msgs_page *out)
{
    msgs_page_req req = {.kind = kind, .limit = limit};
    snprintf(req.cursor, sizeof(req.cursor), "%s", cursor != NULL ? cursor : "");
    sqlite3 *db = nt_store_lock_read(store);
    nt_status st = msgs_db_page(db, room, &req, out);
    nt_store_unlock_read(store);
    return st;
}

static nt_status edit(const char *id, const char *content, const char *now)
{
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(msgs_db_begin(db), NT_OK);
    nt_status st = msgs_db_edit(db, id, content, now);
    if (st == NT_OK)
        cr_assert_eq(msgs_db_commit(db), NT_OK);
    else
        msgs_db_rollback(db);
    nt_store_unlock(store);
    return st;
}

static nt_status del(const char *id, const char *by, const char *now, bool *changed)
{
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(msgs_db_begin(db), NT_OK);
    nt_status st = msgs_db_delete(db, id, by, now, changed);
    if (st == NT_OK)
        cr_assert_eq(msgs_db_commit(db), NT_OK);
    else
        msgs_db_rollback(db);
    nt_store_unlock(store);
    return st;
}

/* ---- insert and get ---- */

Test(msgs_store, insert_and_get_round_trip_with_username)
{
    fake_ms = T0;
    nt_clock_set_fake(fake_now);
    msgs_new n = {.room_id = ROOM1,
                  .user_id = "user_2",
                  .content = "héllo\nworld",
                  .type = "image",
                  .client_ref = "ref-1"};
    msgs_message m = {0};
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(msgs_db_begin(db), NT_OK);
    cr_assert_eq(msgs_db_insert(db, &n, &m), NT_OK);
    cr_assert_eq(msgs_db_commit(db), NT_OK);
    nt_store_unlock(store);

    cr_assert(nt_id_valid(m.id));
    cr_assert_eq(nt_id_time_ms(m.id), T0, "a fresh room's id carries the time of the send");
    cr_assert_str_eq(m.room_id, ROOM1);
    cr_assert_str_eq(m.user_id, "user_2");
    cr_assert_str_eq(m.username, "bob");
    cr_assert_str_eq(m.content, "héllo\nworld");
    cr_assert_str_eq(m.type, "image");
    cr_assert_str_eq(m.client_ref, "ref-1");
    cr_assert_str_eq(m.created_at, T0_TEXT);
    cr_assert_str_eq(m.edited_at, "");
    cr_assert_str_eq(m.deleted_at, "");
    cr_assert_str_eq(m.deleted_by, "");

    msgs_message g = {0};
    cr_assert_eq(get(m.id, &g), NT_OK, "the reader sees the commit");
    cr_assert_str_eq(g.id, m.id);
    cr_assert_str_eq(g.room_id, ROOM1);
    cr_assert_str_eq(g.username, "bob");
    cr_assert_str_eq(g.content, m.content);
    cr_assert_str_eq(g.type, "image");
    cr_assert_str_eq(g.client_ref, "ref-1");
    cr_assert_str_eq(g.created_at, T0_TEXT);
    msgs_message_clear(&g);

    msgs_message p = {0};
    cr_assert_eq(put(ROOM1, "user_1", "plain", NULL, &p), NT_OK);
    cr_assert_str_eq(p.username, "alice");
    cr_assert_null(p.client_ref, "no client_ref reads as NULL");
    cr_assert_str_eq(p.type, "text");
    msgs_message_clear(&p);
    msgs_message_clear(&m);
    cr_assert_null(m.content, "clear frees and zeroes");
}

Test(msgs_store, get_of_a_missing_message_is_not_found)
{
    msgs_message g = {0};
    snprintf(g.id, sizeof(g.id), "untouched");
    cr_assert_eq(get(MISSING, &g), NT_ENOTFOUND);
    cr_assert_str_eq(g.id, "untouched", "out is written only on success");
}

Test(msgs_store, older_rows_read_in_the_service_form)
{
    /* A row written before this service, through a connection without
     * foreign keys: the default time form, an unknown type, no users row. */
    sqlite3 *raw = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &raw), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(raw,
                              "INSERT INTO messages (id, room_id, user_id, content, message_type, "
                              "created_at) VALUES ('0190f5e2-7b1c-7c3d-8e4f-aaaaaaaaaaaa', '" ROOM1
                              "', 'ghost', 'old', 'video', '2026-12-05 06:40:12')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(raw);
    msgs_message g = {0};
    cr_assert_eq(get("0190f5e2-7b1c-7c3d-8e4f-aaaaaaaaaaaa", &g), NT_OK);
    cr_assert_null(g.username, "an author without a users row has no username");
    cr_assert_str_eq(g.created_at, "2026-12-05T06:40:12.000Z");
    cr_assert_str_eq(g.type, "text");
    cr_assert_str_eq(g.content, "old");
    msgs_message_clear(&g);
}

/* ---- ids ---- */

Test(msgs_store, ids_rise_above_a_future_id_in_the_room)
{
    sql("INSERT INTO messages (id, room_id, user_id, content) VALUES ('" FUTURE "', '" ROOM1
        "', 'user_1', 'from a fast clock')");
    char a[NT_ID_LEN], b[NT_ID_LEN], c[NT_ID_LEN];
    put_id(ROOM1, "user_1", a);
    put_id(ROOM1, "user_2", b);
    cr_assert_str_eq(a, "ffffffff-0000-7000-8000-000000000001");
    cr_assert_str_eq(b, "ffffffff-0000-7000-8000-000000000002");
    /* Another room is not held back by it. */
    put_id(ROOM2, "user_1", c);
    cr_assert_lt(strcmp(c, FUTURE), 0);
    cr_assert_lt(nt_id_time_ms(c) - nt_clock_now_ms(), 5000);
}

Test(msgs_store, ids_rise_in_a_room_in_insert_order)
{
    char prev[NT_ID_LEN] = "";
    for (int i = 0; i < 50; i++) {
        char id[NT_ID_LEN];
        put_id(i % 2 ? ROOM1 : ROOM2, "user_1", id);
        if (i % 2) {
            cr_assert_gt(strcmp(id, prev), 0, "%s after %s", id, prev);
            memcpy(prev, id, sizeof(prev));
        }
    }
}

Test(msgs_store, an_id_taken_by_another_room_is_stepped_over)
{
    /* ROOM1's ids run ahead of the clock; ROOM2 already holds the next one. */
    sql("INSERT INTO messages (id, room_id, user_id, content) VALUES "
        "('" FUTURE "', '" ROOM1 "', 'user_1', 'a'), "
        "('ffffffff-0000-7000-8000-000000000001', '" ROOM2 "', 'user_1', 'b')");
    char a[NT_ID_LEN];
    put_id(ROOM1, "user_1", a);
    cr_assert_str_eq(a, "ffffffff-0000-7000-8000-000000000002");
}

/* ---- client_ref ---- */

Test(msgs_store, client_ref_is_unique_per_user)
{
    msgs_message a = {0}, b = {0}, c = {0};
    cr_assert_eq(put(ROOM1, "user_1", "one", "r:1", &a), NT_OK);
    cr_assert_eq(put(ROOM2, "user_1", "two", "r:1", &b), NT_ECONFLICT, "same user, same ref");
    cr_assert_eq(put(ROOM1, "user_2", "three", "r:1", &c), NT_OK, "another user may use it");
    cr_assert_str_neq(a.id, c.id);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);

    msgs_message f = {0};
    sqlite3 *db = nt_store_lock_read(store);
    cr_assert_eq(msgs_db_by_client_ref(db, "user_1", "r:1", &f), NT_OK);
    cr_assert_str_eq(f.id, a.id);
    cr_assert_str_eq(f.username, "alice");
    msgs_message_clear(&f);
    cr_assert_eq(msgs_db_by_client_ref(db, "user_2", "r:1", &f), NT_OK);
    cr_assert_str_eq(f.id, c.id);
    msgs_message_clear(&f);
    cr_assert_eq(msgs_db_by_client_ref(db, "user_1", "r:2", &f), NT_ENOTFOUND);
    cr_assert_eq(msgs_db_by_client_ref(db, "user_3", "r:1", &f), NT_ENOTFOUND);
    nt_store_unlock_read(store);
    msgs_message_clear(&a);
    msgs_message_clear(&c);
}

Test(msgs_store, a_refused_insert_leaves_the_transaction_usable)
{
    msgs_new ok1 = {ROOM1, "user_1", "first", "text", "k1"};
    msgs_new dup = {ROOM1, "user_1", "again", "text", "k1"};
    msgs_new gone = {MISSING, "user_1", "nowhere", "text", NULL};
    msgs_new ok2 = {ROOM1, "user_1", "second", "text", "k2"};
    msgs_message m = {0};
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(msgs_db_begin(db), NT_OK);
    cr_assert_eq(msgs_db_insert(db, &ok1, &m), NT_OK);
    msgs_message_clear(&m);
    cr_assert_eq(msgs_db_insert(db, &dup, &m), NT_ECONFLICT);
    cr_assert_null(m.content, "out untouched on failure");
    cr_assert_eq(msgs_db_insert(db, &gone, &m), NT_ENOTFOUND);
    cr_assert_eq(msgs_db_insert(db, &ok2, &m), NT_OK);
    msgs_message_clear(&m);
    cr_assert_eq(msgs_db_commit(db), NT_OK);
    nt_store_unlock(store);
    cr_assert_eq(count("SELECT count(*) FROM messages WHERE room_id = '" ROOM1 "'"), 2);
    cr_assert_eq(count("SELECT count(*) FROM messages WHERE content IN ('first', 'second')"), 2);
}

/* ---- foreign keys ---- */

Test(msgs_store, a_missing_room_or_author_is_not_found)
{
    msgs_message m = {0};
    cr_assert_eq(put(MISSING, "user_1", "hello", NULL, &m), NT_ENOTFOUND);
    cr_assert_eq(put(ROOM1, "user_9", "hello", NULL, &m), NT_ENOTFOUND);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 0);
}

/* ---- edit ---- */

Test(msgs_store, edit_sets_content_and_edited_at)
{
    char id[NT_ID_LEN];
    put_id(ROOM1, "user_1", id);
    cr_assert_eq(edit(id, "changed", T1_TEXT), NT_OK);
    msgs_message g = {0};
    cr_assert_eq(get(id, &g), NT_OK);
    cr_assert_str_eq(g.content, "changed");
    cr_assert_str_eq(g.edited_at, T1_TEXT);
    cr_assert_str_eq(g.deleted_at, "");
    msgs_message_clear(&g);
    cr_assert_eq(edit(MISSING, "x", T1_TEXT), NT_ENOTFOUND);
}

Test(msgs_store, edit_of_a_deleted_message_conflicts)
{
    char id[NT_ID_LEN];
    put_id(ROOM1, "user_1", id);
    bool changed = false;
    cr_assert_eq(del(id, "user_1", T0_TEXT, &changed), NT_OK);
    cr_assert_eq(edit(id, "resurrected", T1_TEXT), NT_ECONFLICT);
    msgs_message g = {0};
    cr_assert_eq(get(id, &g), NT_OK);
    cr_assert_str_eq(g.content, "");
    cr_assert_str_eq(g.edited_at, "");
    msgs_message_clear(&g);
}

/* ---- delete ---- */

Test(msgs_store, delete_leaves_a_tombstone_once)
{
    char before[NT_ID_LEN], id[NT_ID_LEN], after[NT_ID_LEN];
    put_id(ROOM1, "user_1", before);
    put_id(ROOM1, "user_1", id);
    put_id(ROOM1, "user_1", after);
    cr_assert_eq(edit(id, "edited first", T0_TEXT), NT_OK);
    bool changed = false;
    cr_assert_eq(del(id, "user_2", T0_TEXT, &changed), NT_OK);
    cr_assert(changed);
    msgs_message g = {0};
    cr_assert_eq(get(id, &g), NT_OK);
    cr_assert_str_eq(g.content, "");
    cr_assert_str_eq(g.deleted_at, T0_TEXT);
    cr_assert_str_eq(g.deleted_by, "user_2");
    cr_assert_str_eq(g.user_id, "user_1", "the author stays");
    msgs_message_clear(&g);

    changed = true;
    cr_assert_eq(del(id, "user_1", T1_TEXT, &changed), NT_OK);
    cr_assert_not(changed, "a second delete changes nothing");
    cr_assert_eq(get(id, &g), NT_OK);
    cr_assert_str_eq(g.deleted_at, T0_TEXT);
    cr_assert_str_eq(g.deleted_by, "user_2");
    msgs_message_clear(&g);

    changed = true;
    cr_assert_eq(del(MISSING, "user_1", T1_TEXT, &changed), NT_ENOTFOUND);

    /* The tombstone keeps its place in history. */
    msgs_page p = {0};
    cr_assert_eq(page(ROOM1, MSGS_PAGE_LATEST, NULL, 10, &p), NT_OK);
    cr_assert_eq(p.list.n, 3);
    cr_assert_str_eq(p.list.v[0].id, before);
    cr_assert_str_eq(p.list.v[1].id, id);
    cr_assert_str_eq(p.list.v[1].content, "");
    cr_assert_str_eq(p.list.v[1].deleted_by, "user_2");
    cr_assert_str_eq(p.list.v[2].id, after);
    msgs_message_list_clear(&p.list);
}

/* ---- pages ---- */

/* Inserts n messages into room (and one into ROOM3 after every seventh, so
 * that pages must keep to their room), in one transaction; ids[] gets the
 * room's ids in order. */
static void fill(const char *room, int n, char (*ids)[NT_ID_LEN])
{
    sqlite3 *db = nt_store_lock(store);
    cr_assert_eq(msgs_db_begin(db), NT_OK);
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof(text), "m%d", i);
        msgs_new nm = {room, i % 3 ? "user_1" : "user_2", text, "text", NULL};
        msgs_message m = {0};
        cr_assert_eq(msgs_db_insert(db, &nm, &m), NT_OK);
        memcpy(ids[i], m.id, NT_ID_LEN);
        msgs_message_clear(&m);
        if (i % 7 == 0) {
            msgs_new other = {ROOM3, "user_2", "elsewhere", "text", NULL};
            cr_assert_eq(msgs_db_insert(db, &other, &m), NT_OK);
            msgs_message_clear(&m);
        }
    }
    cr_assert_eq(msgs_db_commit(db), NT_OK);
    nt_store_unlock(store);
    for (int i = 1; i < n; i++)
        cr_assert_gt(strcmp(ids[i], ids[i - 1]), 0);
}

/* Checks that p holds ids[from..from+n) oldest first, all of room. */
static void check_page(const msgs_page *p, const char *room, char (*ids)[NT_ID_LEN], int from,
                       int n)
{
    cr_assert_eq(p->list.n, (size_t)n, "page of %zu, want %d", p->list.n, n);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(p->list.v[i].id, ids[from + i], "position %d", i);
        cr_assert_str_eq(p->list.v[i].room_id, room);
        cr_assert_not_null(p->list.v[i].username);
    }
}

Test(msgs_store, pages_backwards_from_the_latest_by_37)
{
    enum { N = 237, L = 37 };
    static char ids[N][NT_ID_LEN];
    fill(ROOM1, N, ids);
    int seen = 0, pages = 0, end = N;
    char cursor[NT_ID_LEN] = "";
    for (;;) {
        msgs_page p = {0};
        cr_assert_eq(page(ROOM1, pages == 0 ? MSGS_PAGE_LATEST : MSGS_PAGE_BEFORE, cursor, L, &p),
                     NT_OK);
        int want = end >= L ? L : end;
        check_page(&p, ROOM1, ids, end - want, want);
        end -= want;
        seen += want;
        pages++;
        cr_assert_eq(p.has_more, end > 0, "page %d: has_more %d with %d older left", pages,
                     p.has_more, end);
        bool more = p.has_more;
        memcpy(cursor, p.list.v[0].id, NT_ID_LEN); /* the oldest of the page */
        msgs_message_list_clear(&p.list);
        if (!more)
            break;
    }
    cr_assert_eq(seen, N);
    cr_assert_eq(pages, 7);
}

Test(msgs_store, pages_forwards_from_the_start_by_37)
{
    enum { N = 237, L = 37 };
    static char ids[N][NT_ID_LEN];
    fill(ROOM1, N, ids);
    int start = 0, pages = 0;
    char cursor[NT_ID_LEN] = ZERO_ID; /* a position before every id */
    for (;;) {
        msgs_page p = {0};
        cr_assert_eq(page(ROOM1, MSGS_PAGE_AFTER, cursor, L, &p), NT_OK);
        int want = N - start >= L ? L : N - start;
        check_page(&p, ROOM1, ids, start, want);
        start += want;
        pages++;
        cr_assert_eq(p.has_more, start < N, "page %d: has_more %d at %d", pages, p.has_more, start);
        bool more = p.has_more;
        memcpy(cursor, p.list.v[p.list.n - 1].id, NT_ID_LEN); /* the newest of the page */
        msgs_message_list_clear(&p.list);
        if (!more)
            break;
    }
    cr_assert_eq(start, N);
    cr_assert_eq(pages, 7);
}

Test(msgs_store, has_more_is_false_on_an_exactly_full_last_page)
{
    enum { N = 74, L = 37 };
    static char ids[N][NT_ID_LEN];
    fill(ROOM1, N, ids);
    msgs_page p = {0};
    cr_assert_eq(page(ROOM1, MSGS_PAGE_LATEST, NULL, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, L, L);
    cr_assert(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_BEFORE, ids[L], L, &p), NT_OK);
    check_page(&p, ROOM1, ids, 0, L);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);

    cr_assert_eq(page(ROOM1, MSGS_PAGE_AFTER, ids[L - 1], L, &p), NT_OK);
    check_page(&p, ROOM1, ids, L, L);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_AFTER, ids[N - 1], L, &p), NT_OK);
    check_page(&p, ROOM1, ids, 0, 0);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);

    /* limit 1 and the largest limit. */
    cr_assert_eq(page(ROOM1, MSGS_PAGE_LATEST, NULL, 1, &p), NT_OK);
    check_page(&p, ROOM1, ids, N - 1, 1);
    cr_assert(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_LATEST, NULL, MSGS_PAGE_MAX, &p), NT_OK);
    check_page(&p, ROOM1, ids, 0, N);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
}

/* The index of the first id greater than cursor. */
static int first_above(char (*ids)[NT_ID_LEN], int n, const char *cursor)
{
    int i = 0;
    while (i < n && strcmp(ids[i], cursor) <= 0)
        i++;
    return i;
}

Test(msgs_store, a_cursor_that_names_no_message_is_a_position)
{
    enum { N = 30, L = 5 };
    static char ids[N][NT_ID_LEN];
    fill(ROOM1, N, ids);
    /* Between ids[11] and ids[12]: the same time and counter as ids[11],
     * the largest random tail. */
    char mid[NT_ID_LEN];
    memcpy(mid, ids[11], NT_ID_LEN);
    memcpy(mid + 28, "ffffffff", 8);
    int above = first_above(ids, N, mid);
    cr_assert_eq(above, 12, "the cursor falls between ids[11] and ids[12] (%d)", above);
    const char *absent = mid;

    msgs_page p = {0};
    cr_assert_eq(page(ROOM1, MSGS_PAGE_BEFORE, absent, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, 12 - L, L);
    cr_assert(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_AFTER, absent, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, 12, L);
    cr_assert(p.has_more);
    msgs_message_list_clear(&p.list);

    cr_assert_eq(page(ROOM1, MSGS_PAGE_BEFORE, TOP_ID, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, N - L, L);
    cr_assert(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_BEFORE, ZERO_ID, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, 0, 0);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_AFTER, TOP_ID, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, 0, 0);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
    /* A cursor naming a message of another room is a position too. */
    msgs_message other = {0};
    cr_assert_eq(put(ROOM2, "user_1", "x", NULL, &other), NT_OK);
    cr_assert_eq(page(ROOM1, MSGS_PAGE_BEFORE, other.id, L, &p), NT_OK);
    check_page(&p, ROOM1, ids, N - L, L);
    msgs_message_list_clear(&p.list);
    msgs_message_clear(&other);
}

Test(msgs_store, a_page_of_an_empty_room_is_empty)
{
    msgs_page p = {0};
    cr_assert_eq(page(ROOM2, MSGS_PAGE_LATEST, NULL, 50, &p), NT_OK);
    cr_assert_eq(p.list.n, 0);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM2, MSGS_PAGE_BEFORE, TOP_ID, 50, &p), NT_OK);
    cr_assert_eq(p.list.n, 0);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(ROOM2, MSGS_PAGE_AFTER, ZERO_ID, 50, &p), NT_OK);
    cr_assert_eq(p.list.n, 0);
    cr_assert_not(p.has_more);
    msgs_message_list_clear(&p.list);
    cr_assert_eq(page(MISSING, MSGS_PAGE_LATEST, NULL, 50, &p), NT_OK, "no room, no messages");
    cr_assert_eq(p.list.n, 0);
    msgs_message_list_clear(&p.list);
}

/* ---- query plans ---- */

#define MAX_TRACED 16

static char *traced[MAX_TRACED];
static int ntraced;

static int trace(unsigned type, void *ctx, void *p, void *x)
{
    (void)ctx;
    (void)p;
    if (type == SQLITE_TRACE_STMT && ntraced < MAX_TRACED) {
        const char *text = x;
        if (strncmp(text, "--", 2) != 0) /* not a trigger */
            traced[ntraced++] = strdup(text);
    }
    return 0;
}

static void traced_clear(void)
{
    for (int i = 0; i < ntraced; i++)
        free(traced[i]);
    ntraced = 0;
}

/* The traced statement containing needle. */
static const char *traced_with(const char *needle)
{
    for (int i = 0; i < ntraced; i++) {
        if (strstr(traced[i], needle) != NULL)
            return traced[i];
    }
    cr_assert_fail("no statement containing \"%s\" was run", needle);
    return NULL;
}

/* The query plan of text, its lines joined by " | ". */
static void plan_of(sqlite3 *db, const char *text, char *out, size_t outlen)
{
    char q[4096];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", text);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    out[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        size_t len = strlen(out);
        snprintf(out + len, outlen - len, "%s | ", (const char *)sqlite3_column_text(s, 3));
    }
    sqlite3_finalize(s);
}

/* Asserts that the statement of the last call containing needle searches
 * with index and never scans a table or sorts. */
static void assert_plan(sqlite3 *db, const char *needle, const char *index)
{
    char plan[2048];
    plan_of(db, traced_with(needle), plan, sizeof(plan));
    cr_assert_not_null(strstr(plan, index), "plan of \"%s\" uses %s: %s", needle, index, plan);
    cr_assert_null(strstr(plan, "SCAN"), "plan of \"%s\" scans: %s", needle, plan);
    cr_assert_null(strstr(plan, "TEMP B-TREE"), "plan of \"%s\" sorts: %s", needle, plan);
}

Test(msgs_store, queries_search_the_room_index)
{
    enum { N = 20 };
    static char ids[N][NT_ID_LEN];
    fill(ROOM1, N, ids);
    sqlite3 *db = nt_store_lock(store);
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, trace, NULL);

    msgs_page_req req = {.kind = MSGS_PAGE_LATEST, .limit = 5};
    msgs_page p = {0};
    cr_assert_eq(msgs_db_page(db, ROOM1, &req, &p), NT_OK);
    msgs_message_list_clear(&p.list);
    assert_plan(db, "ORDER BY m.id DESC", "USING INDEX messages_room_id (room_id=?)");
    traced_clear();

    req.kind = MSGS_PAGE_BEFORE;
    memcpy(req.cursor, ids[10], NT_ID_LEN);
    cr_assert_eq(msgs_db_page(db, ROOM1, &req, &p), NT_OK);
    msgs_message_list_clear(&p.list);
    assert_plan(db, "m.id < ?2", "USING INDEX messages_room_id (room_id=? AND id<?)");
    traced_clear();

    req.kind = MSGS_PAGE_AFTER;
    cr_assert_eq(msgs_db_page(db, ROOM1, &req, &p), NT_OK);
    msgs_message_list_clear(&p.list);
    assert_plan(db, "m.id > ?2", "USING INDEX messages_room_id (room_id=? AND id>?)");
    traced_clear();

    cr_assert_eq(msgs_db_begin(db), NT_OK);
    msgs_new n = {ROOM1, "user_1", "x", "text", "plan"};
    msgs_message m = {0};
    cr_assert_eq(msgs_db_insert(db, &n, &m), NT_OK);
    assert_plan(db, "max(id)", "USING COVERING INDEX messages_room_id (room_id=?)");
    assert_plan(db, "WHERE m.id = ?1", "sqlite_autoindex_messages_1 (id=?)");
    traced_clear();
    msgs_message_clear(&m);
    cr_assert_eq(msgs_db_by_client_ref(db, "user_1", "plan", &m), NT_OK);
    assert_plan(db, "m.client_ref = ?2", "messages_user_client_ref (user_id=? AND client_ref=?)");
    traced_clear();
    msgs_message_clear(&m);
    msgs_db_rollback(db);
    sqlite3_trace_v2(db, 0, NULL, NULL);
    nt_store_unlock(store);
}

/* 100 messages of 4000 four-byte characters are 1.6 MB: a page stops before
 * it would pass MSGS_PAGE_MAX_BYTES, says has_more, and paging on still sees
 * every message once, in both directions. */
Test(msgs_store, a_page_of_long_messages_stops_at_the_byte_cap)
{
    enum { N = 60 };
    static char ids[N][NT_ID_LEN];
    size_t len = 4000 * 4;
    char *big = malloc(len + 1);
    cr_assert_not_null(big);
    for (size_t i = 0; i < len; i += 4)
        memcpy(big + i, "\xf0\x9f\x98\x80", 4);
    big[len] = '\0';
    for (int i = 0; i < N; i++) {
        msgs_message m = {0};
        cr_assert_eq(put(ROOM1, "user_1", big, NULL, &m), NT_OK);
        memcpy(ids[i], m.id, NT_ID_LEN);
        msgs_message_clear(&m);
    }
    free(big);
    for (int dir = 0; dir < 2; dir++) {
        int seen = 0, pages = 0;
        char cursor[NT_ID_LEN] = ZERO_ID;
        for (;;) {
            msgs_page p = {0};
            msgs_page_kind kind =
                dir == 0 ? (pages == 0 ? MSGS_PAGE_LATEST : MSGS_PAGE_BEFORE) : MSGS_PAGE_AFTER;
            cr_assert_eq(page(ROOM1, kind, cursor, MSGS_PAGE_MAX, &p), NT_OK);
            cr_assert_gt(p.list.n, 0);
            size_t bytes = 0;
            for (size_t i = 0; i < p.list.n; i++)
                bytes += 2 * strlen(p.list.v[i].content);
            cr_assert_leq(bytes, MSGS_PAGE_MAX_BYTES, "page of %zu bytes", bytes);
            int first = dir == 0 ? N - seen - (int)p.list.n : seen;
            check_page(&p, ROOM1, ids, first, (int)p.list.n);
            seen += (int)p.list.n;
            pages++;
            cr_assert_eq(p.has_more, seen < N);
            bool more = p.has_more;
            memcpy(cursor, dir == 0 ? p.list.v[0].id : p.list.v[p.list.n - 1].id, NT_ID_LEN);
            msgs_message_list_clear(&p.list);
            if (!more)
                break;
        }
        cr_assert_eq(seen, N);
        cr_assert_gt(pages, 1, "a page of %d long messages must be split", N);
    }
}
