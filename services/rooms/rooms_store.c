/* Every SQL statement of the rooms service, parameterised. Runs inside the
 * transactions of rooms_txn_begin / rooms_read_begin, with the store's lock held. */
#include "rooms.h"

#include "nt_clock.h"
#include "nt_log.h"
#include "nt_sql.h"

#include <stdlib.h>
#include <string.h>

#define MOD "rooms"

/* Every time the service writes or returns has one form; older rows written
 * by CURRENT_TIMESTAMP ("YYYY-MM-DD HH:MM:SS") are read through the same. */
#define ISO(col) "strftime('%Y-%m-%dT%H:%M:%fZ'," col ")"

void rooms_now(char out[ROOMS_TIME_LEN])
{
    char buf[NT_ISO8601_LEN];
    nt_clock_iso8601(nt_clock_now_ms(), buf);
    snprintf(out, ROOMS_TIME_LEN, "%.24s", buf);
}

void rooms_room_clear(rooms_room *r)
{
    free(r->name);
    free(r->description);
    memset(r, 0, sizeof(*r));
}

void rooms_member_clear(rooms_member *m)
{
    free(m->username);
    free(m->avatar_url);
    memset(m, 0, sizeof(*m));
}

void rooms_access_clear(rooms_access *a)
{
    free(a->members);
    memset(a, 0, sizeof(*a));
}

rooms_role rooms_access_role(const rooms_access *a, const char *user_id)
{
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->members[i].user_id, user_id) == 0)
            return a->members[i].role;
    }
    return ROOMS_OUTSIDER;
}

#define LIST_PUSH(l)                                                                               \
    do {                                                                                           \
        if ((l)->n == (l)->cap) {                                                                  \
            (l)->cap = (l)->cap ? (l)->cap * 2 : 8;                                                \
            (l)->v = realloc((l)->v, (l)->cap * sizeof(*(l)->v));                                  \
            NT_ASSERT((l)->v != NULL);                                                             \
        }                                                                                          \
        memset(&(l)->v[(l)->n], 0, sizeof(*(l)->v));                                               \
        return &(l)->v[(l)->n++];                                                                  \
    } while (0)

rooms_room *rooms_room_list_push(rooms_room_list *l)
{
    LIST_PUSH(l);
}

rooms_member *rooms_member_list_push(rooms_member_list *l)
{
    LIST_PUSH(l);
}

void rooms_room_list_clear(rooms_room_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        rooms_room_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

void rooms_member_list_clear(rooms_member_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        rooms_member_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- transactions ---- */

nt_status rooms_txn_begin(nt_store *st, sqlite3 **db)
{
    sqlite3 *d = nt_store_lock(st);
    nt_status r = nt_store_status(
        sqlite3_exec(d, "BEGIN IMMEDIATE; SAVEPOINT rooms_write", NULL, NULL, NULL));
    if (r != NT_OK) {
        nt_log_error(MOD, "store begin failed err=\"%s\"", sqlite3_errmsg(d));
        nt_store_unlock(st);
        return r;
    }
    *db = d;
    return NT_OK;
}

nt_status rooms_read_begin(nt_store *st, sqlite3 **db)
{
    /* The reader connection: a snapshot of the last commit, never queued
     * behind a writer of this process or another. */
    sqlite3 *d = nt_store_lock_read(st);
    nt_status r = nt_store_status(sqlite3_exec(d, "BEGIN", NULL, NULL, NULL));
    if (r != NT_OK) {
        nt_log_error(MOD, "store begin failed err=\"%s\"", sqlite3_errmsg(d));
        nt_store_unlock_read(st);
        return r;
    }
    *db = d;
    return NT_OK;
}

nt_status rooms_txn_commit(sqlite3 *db)
{
    int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return NT_OK;
    nt_log_error(MOD, "store commit failed err=\"%s\"", sqlite3_errmsg(db));
    /* Whatever SQLite says, nothing the caller asked for conflicted. */
    return (rc & 0xff) == SQLITE_BUSY ? NT_EUNAVAIL : NT_EINTERNAL;
}

nt_status rooms_txn_undo(sqlite3 *db)
{
    if (sqlite3_get_autocommit(db))
        return NT_EUNAVAIL;
    nt_status r = nt_store_status(sqlite3_exec(db, "ROLLBACK TO rooms_write", NULL, NULL, NULL));
    if (r != NT_OK)
        nt_log_error(MOD, "store undo failed err=\"%s\"", sqlite3_errmsg(db));
    return r;
}

void rooms_txn_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

void rooms_read_end(nt_store *st, sqlite3 *db)
{
    /* A read commits nothing; a failed COMMIT must not leave the shared
     * connection inside a transaction. */
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    nt_store_unlock_read(st);
}

/* ---- statements ---- */

static rooms_role role_col(sqlite3_stmt *s, int col)
{
    /* A row exists: NULL or an unknown name is the schema's default role. */
    rooms_role r = ROOMS_MEMBER;
    const unsigned char *t = sqlite3_column_text(s, col);
    if (t == NULL || !rooms_role_parse((const char *)t, &r))
        r = ROOMS_MEMBER;
    return r;
}

/* The columns of a room as every query below selects them, caller fields
 * included: ?1 is the caller (may be NULL). */
#define ROOM_COLS                                                                                  \
    "r.id, r.name, r.description, r.is_private, r.created_by, " ISO(                               \
        "r.created_at") ", "                                                                       \
                        "(SELECT COUNT(*) FROM room_members c WHERE c.room_id = r.id), "           \
                        "(SELECT coalesce(me.role, 'member') FROM room_members me WHERE "          \
                        "me.room_id = r.id AND "                                                   \
                        "me.user_id = ?1), "                                                       \
                        "max(" ISO(                                                                \
                            "r.created_at") ", "                                                   \
                                            "coalesce((SELECT " ISO(                               \
                                                "m.created_at") " FROM messages m WHERE "          \
                                                                "m.room_id = r.id "                \
                                                                "ORDER BY m.id DESC LIMIT 1), "    \
                                                                "''), "                            \
                                                                "coalesce((SELECT " ISO(           \
                                                                    "max(j.joined_at)") " FROM "   \
                                                                                        "room_"    \
                                                                                        "members " \
                                                                                        "j WHERE " \
                                                                                        "j.room_"  \
                                                                                        "id = "    \
                                                                                        "r.id), "  \
                                                                                        "'')) AS " \
                                                                                        "last_"    \
                                                                                        "activity" \
                                                                                        " "

static void room_from_row(sqlite3_stmt *s, rooms_room *r)
{
    nt_sql_col_copy(s, 0, r->id, sizeof(r->id));
    r->name = nt_sql_col_dup(s, 1);
    r->description = nt_sql_col_dup(s, 2);
    r->is_private = sqlite3_column_int(s, 3) != 0;
    nt_sql_col_copy(s, 4, r->created_by, sizeof(r->created_by));
    nt_sql_col_copy(s, 5, r->created_at, sizeof(r->created_at));
    r->member_count = sqlite3_column_int64(s, 6);
    r->role = sqlite3_column_type(s, 7) == SQLITE_NULL ? ROOMS_OUTSIDER : role_col(s, 7);
    nt_sql_col_copy(s, 8, r->last_activity_at, sizeof(r->last_activity_at));
}

static void room_one(sqlite3_stmt *s, void *room)
{
    room_from_row(s, room);
}

static void room_row(sqlite3_stmt *s, void *list)
{
    room_from_row(s, rooms_room_list_push(list));
}

/* Runs a query of rooms, appending each row to out. */
static nt_status query_rooms(sqlite3 *db, const char *sql, const char *const *params, int n,
                             int limit, rooms_room_list *out)
{
    return nt_sql_query_each(db, sql, params, n, limit, room_row, out);
}

nt_status rooms_db_room(sqlite3 *db, const char *room_id, const char *caller, rooms_room *out)
{
    const char *p[] = {caller, room_id};
    return nt_sql_query_one(db, "SELECT " ROOM_COLS "FROM chat_rooms r WHERE r.id = ?2", p, 2,
                            room_one, out);
}

/* q as a LIKE pattern matching it as a plain substring (malloc'd), or NULL. */
static char *like_pattern(const char *q)
{
    if (q == NULL)
        return NULL;
    size_t n = strlen(q), j = 0;
    char *like = malloc(2 * n + 1);
    NT_ASSERT(like != NULL);
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
            like[j++] = '\\';
        like[j++] = q[i];
    }
    like[j] = '\0';
    return like;
}

nt_status rooms_db_list_mine(sqlite3 *db, const char *user_id, const char *q, const char *cur_time,
                             const char *cur_id, int limit, rooms_room_list *out)
{
    static const char *sql =
        "SELECT * FROM (SELECT " ROOM_COLS "FROM room_members mm JOIN chat_rooms r "
        "ON r.id = mm.room_id WHERE mm.user_id = ?1 "
        "AND (?4 IS NULL OR r.name LIKE '%' || ?4 || '%' ESCAPE '\\')) "
        "WHERE ?2 IS NULL OR last_activity < ?2 OR (last_activity = ?2 AND id < ?3) "
        "ORDER BY last_activity DESC, id DESC LIMIT ?5";
    char *like = like_pattern(q);
    const char *p[] = {user_id, cur_time, cur_id, like};
    nt_status st = query_rooms(db, sql, p, 4, limit, out);
    free(like);
    return st;
}

nt_status rooms_db_list_public(sqlite3 *db, const char *caller, const char *q, const char *cur_name,
                               const char *cur_id, int limit, rooms_room_list *out)
{
    /* One statement per case, so that later pages seek in the index. */
    static const char *first = "SELECT " ROOM_COLS "FROM chat_rooms r WHERE r.is_private = 0 "
                               "AND (?2 IS NULL OR r.name LIKE '%' || ?2 || '%' ESCAPE '\\') "
                               "ORDER BY r.name COLLATE NOCASE, r.id LIMIT ?5";
    static const char *after = "SELECT " ROOM_COLS "FROM chat_rooms r WHERE r.is_private = 0 "
                               "AND (?2 IS NULL OR r.name LIKE '%' || ?2 || '%' ESCAPE '\\') "
                               "AND r.name COLLATE NOCASE >= ?3 "
                               "AND (r.name COLLATE NOCASE > ?3 OR r.id > ?4) "
                               "ORDER BY r.name COLLATE NOCASE, r.id LIMIT ?5";
    char *like = like_pattern(q);
    const char *p[] = {caller, like, cur_name, cur_id};
    nt_status st = query_rooms(db, cur_name != NULL ? after : first, p, 4, limit, out);
    free(like);
    return st;
}

static void role_one(sqlite3_stmt *s, void *role)
{
    *(rooms_role *)role = role_col(s, 0);
}

nt_status rooms_db_role(sqlite3 *db, const char *room_id, const char *user_id, rooms_role *out)
{
    const char *p[] = {room_id, user_id};
    rooms_role r = ROOMS_OUTSIDER;
    nt_status st =
        nt_sql_query_one(db, "SELECT role FROM room_members WHERE room_id = ?1 AND user_id = ?2", p,
                         2, role_one, &r);
    if (st == NT_ENOTFOUND)
        st = NT_OK; /* not a member */
    if (st == NT_OK)
        *out = r;
    return st;
}

#define MEMBER_COLS                                                                                \
    "m.room_id, m.user_id, coalesce(u.username, m.user_id), u.avatar_url, m.role, " ISO(           \
        "m.joined_at") ", m.joined_at "

static void member_from_row(sqlite3_stmt *s, rooms_member *m)
{
    nt_sql_col_copy(s, 0, m->room_id, sizeof(m->room_id));
    nt_sql_col_copy(s, 1, m->user_id, sizeof(m->user_id));
    m->username = nt_sql_col_dup(s, 2);
    m->avatar_url = nt_sql_col_dup(s, 3);
    m->role = role_col(s, 4);
    nt_sql_col_copy(s, 5, m->joined_at, sizeof(m->joined_at));
    nt_sql_col_copy(s, 6, m->joined_key, sizeof(m->joined_key));
}

static void member_row(sqlite3_stmt *s, void *list)
{
    member_from_row(s, rooms_member_list_push(list));
}

static nt_status query_members(sqlite3 *db, const char *sql, const char *const *params, int n,
                               int limit, rooms_member_list *out)
{
    return nt_sql_query_each(db, sql, params, n, limit, member_row, out);
}

static void member_one(sqlite3_stmt *s, void *member)
{
    member_from_row(s, member);
}

nt_status rooms_db_member(sqlite3 *db, const char *room_id, const char *user_id, rooms_member *out)
{
    const char *p[] = {room_id, user_id};
    return nt_sql_query_one(
        db,
        "SELECT " MEMBER_COLS "FROM room_members m LEFT JOIN users u "
        "ON u.clerk_user_id = m.user_id WHERE m.room_id = ?1 AND m.user_id = ?2",
        p, 2, member_one, out);
}

nt_status rooms_db_members(sqlite3 *db, const char *room_id, const char *cur_time,
                           const char *cur_id, int limit, rooms_member_list *out)
{
    /* On joined_at as stored, with the index (room_id, joined_at, user_id)
     * serving the order and, on later pages, the seek: one statement per
     * case, since "?2 IS NULL OR ..." would keep SQLite from seeking. */
    static const char *first = "SELECT " MEMBER_COLS "FROM room_members m "
                               "LEFT JOIN users u ON u.clerk_user_id = m.user_id "
                               "WHERE m.room_id = ?1 ORDER BY m.joined_at, m.user_id LIMIT ?4";
    static const char *after =
        "SELECT " MEMBER_COLS "FROM room_members m "
        "LEFT JOIN users u ON u.clerk_user_id = m.user_id WHERE m.room_id = ?1 "
        "AND m.joined_at >= ?2 AND (m.joined_at > ?2 OR m.user_id > ?3) "
        "ORDER BY m.joined_at, m.user_id LIMIT ?4";
    const char *p[] = {room_id, cur_time, cur_id};
    return query_members(db, cur_time != NULL ? after : first, p, 3, limit, out);
}

static void no_column(sqlite3_stmt *s, void *out)
{
    (void)s;
    (void)out;
}

nt_status rooms_db_user_exists(sqlite3 *db, const char *user_id, bool *out)
{
    const char *p[] = {user_id};
    nt_status st =
        nt_sql_query_one(db, "SELECT 1 FROM users WHERE clerk_user_id = ?1", p, 1, no_column, NULL);
    if (st != NT_OK && st != NT_ENOTFOUND)
        return st;
    *out = st == NT_OK;
    return NT_OK;
}

/* The users a name lookup found: how many (at most 2) and the first id. */
typedef struct {
    int n;
    char id[ROOMS_USER_ID_MAX];
} name_hits;

static void name_hit(sqlite3_stmt *s, void *arg)
{
    name_hits *h = arg;
    if (h->n++ == 0)
        nt_sql_col_copy(s, 0, h->id, sizeof(h->id));
}

nt_status rooms_db_user_by_name(sqlite3 *db, const char *username, char out[ROOMS_USER_ID_MAX])
{
    const char *p[] = {username};
    name_hits h = {0, ""};
    nt_status st = nt_sql_query_each(
        db, "SELECT clerk_user_id FROM users WHERE username = ?1 LIMIT 2", p, 1, 0, name_hit, &h);
    if (st != NT_OK)
        return st;
    if (h.n == 0)
        return NT_ENOTFOUND;
    if (h.n > 1)
        return NT_ECONFLICT;
    memcpy(out, h.id, sizeof(h.id));
    return NT_OK;
}

nt_status rooms_db_insert_room(sqlite3 *db, const rooms_room *r)
{
    const char *p[] = {r->id,         r->name,      r->description, r->is_private ? "1" : "0",
                       r->created_by, r->created_at};
    return nt_sql_exec(
        db,
        "INSERT INTO chat_rooms (id, name, description, is_private, created_by, created_at) "
        "VALUES (?1, ?2, ?3, CAST(?4 AS INTEGER), ?5, ?6)",
        p, 6, NULL);
}

nt_status rooms_db_update_room(sqlite3 *db, const rooms_room *r)
{
    const char *p[] = {r->id, r->name, r->description, r->is_private ? "1" : "0"};
    return nt_sql_exec(db,
                       "UPDATE chat_rooms SET name = ?2, description = ?3, "
                       "is_private = CAST(?4 AS INTEGER) WHERE id = ?1",
                       p, 4, NULL);
}

nt_status rooms_db_delete_room(sqlite3 *db, const char *room_id)
{
    const char *p[] = {room_id};
    nt_status st = nt_sql_exec(db, "DELETE FROM messages WHERE room_id = ?1", p, 1, NULL);
    if (st == NT_OK)
        st = nt_sql_exec(db, "DELETE FROM room_members WHERE room_id = ?1", p, 1, NULL);
    if (st == NT_OK)
        st = nt_sql_exec(db, "DELETE FROM chat_rooms WHERE id = ?1", p, 1, NULL);
    return st;
}

nt_status rooms_db_add_member(sqlite3 *db, const char *room_id, const char *user_id,
                              rooms_role role, const char *joined_at)
{
    const char *p[] = {room_id, user_id, rooms_role_name(role), joined_at};
    return nt_sql_exec(db,
                       "INSERT INTO room_members (room_id, user_id, role, joined_at) "
                       "VALUES (?1, ?2, ?3, ?4)",
                       p, 4, NULL);
}

nt_status rooms_db_set_role(sqlite3 *db, const char *room_id, const char *user_id, rooms_role role)
{
    const char *p[] = {room_id, user_id, rooms_role_name(role)};
    return nt_sql_exec(db, "UPDATE room_members SET role = ?3 WHERE room_id = ?1 AND user_id = ?2",
                       p, 3, NULL);
}

nt_status rooms_db_remove_member(sqlite3 *db, const char *room_id, const char *user_id)
{
    const char *p[] = {room_id, user_id};
    return nt_sql_exec(db, "DELETE FROM room_members WHERE room_id = ?1 AND user_id = ?2", p, 2,
                       NULL);
}

static void int64_one(sqlite3_stmt *s, void *out)
{
    *(long long *)out = sqlite3_column_int64(s, 0);
}

nt_status rooms_db_count(sqlite3 *db, const char *room_id, rooms_role role, long long *out)
{
    const char *p[] = {room_id, rooms_role_name(role)};
    return nt_sql_query_one(db,
                            "SELECT COUNT(*) FROM room_members WHERE room_id = ?1 "
                            "AND (?2 IS NULL OR role = ?2)",
                            p, 2, int64_one, out);
}

static void user_id_one(sqlite3_stmt *s, void *out)
{
    nt_sql_col_copy(s, 0, out, ROOMS_USER_ID_MAX);
}

nt_status rooms_db_oldest_member(sqlite3 *db, const char *room_id, char out[ROOMS_USER_ID_MAX])
{
    const char *p[] = {room_id};
    return nt_sql_query_one(db,
                            "SELECT user_id FROM room_members WHERE room_id = ?1 "
                            "ORDER BY joined_at, user_id LIMIT 1",
                            p, 1, user_id_one, out);
}

/* Reads the room's privacy into an access state; exists follows. */
static void access_room_one(sqlite3_stmt *s, void *access)
{
    rooms_access *a = access;
    a->exists = true;
    a->is_private = sqlite3_column_int(s, 0) != 0;
}

/* Appends the member in columns col (user_id) and col + 1 (role), growing
 * members by doubling from 16. */
static void access_add(rooms_access *a, sqlite3_stmt *s, int col)
{
    if (a->n == 0 || (a->n >= 16 && (a->n & (a->n - 1)) == 0)) {
        a->members = realloc(a->members, (a->n == 0 ? 16 : 2 * a->n) * sizeof(*a->members));
        NT_ASSERT(a->members != NULL);
    }
    nt_sql_col_copy(s, col, a->members[a->n].user_id, sizeof(a->members[a->n].user_id));
    a->members[a->n].role = role_col(s, col + 1);
    a->n++;
}

static void access_member_row(sqlite3_stmt *s, void *access)
{
    access_add(access, s, 0);
}

nt_status rooms_db_access(sqlite3 *db, const char *room_id, rooms_access *out)
{
    rooms_access a;
    memset(&a, 0, sizeof(a));
    snprintf(a.room_id, sizeof(a.room_id), "%s", room_id);
    const char *p[] = {room_id};
    nt_status st = nt_sql_query_one(db, "SELECT is_private FROM chat_rooms WHERE id = ?1", p, 1,
                                    access_room_one, &a);
    if (st == NT_OK)
        st = nt_sql_query_each(db, "SELECT user_id, role FROM room_members WHERE room_id = ?1", p,
                               1, 0, access_member_row, &a);
    else if (st == NT_ENOTFOUND)
        st = NT_OK; /* exists stays false */
    if (st == NT_OK)
        *out = a;
    else
        rooms_access_clear(&a);
    return st;
}

/* The room's privacy and, when present, the one member row joined to it. */
static void access_of_one(sqlite3_stmt *s, void *access)
{
    access_room_one(s, access);
    if (sqlite3_column_type(s, 1) != SQLITE_NULL)
        access_add(access, s, 1);
}

nt_status rooms_db_access_of(sqlite3 *db, const char *room_id, const char *user_id,
                             rooms_access *out)
{
    rooms_access a;
    memset(&a, 0, sizeof(a));
    snprintf(a.room_id, sizeof(a.room_id), "%s", room_id);
    const char *p[] = {room_id, user_id};
    nt_status st =
        nt_sql_query_one(db,
                         "SELECT r.is_private, m.user_id, m.role FROM chat_rooms r "
                         "LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = ?2 "
                         "WHERE r.id = ?1",
                         p, 2, access_of_one, &a);
    if (st == NT_ENOTFOUND)
        st = NT_OK; /* exists stays false */
    if (st == NT_OK)
        *out = a;
    else
        rooms_access_clear(&a);
    return st;
}
