/* Every SQL statement of the messages service, parameterised. Runs on a
 * connection the caller holds (the writer under nt_store_lock inside
 * msgs_db_begin/commit, or the reader under nt_store_lock_read). */
#include "msgs.h"

#include "nt_clock.h"
#include "nt_log.h"
#include "nt_sql.h"

#include <stdlib.h>
#include <string.h>

#define MOD "messages"

/* Every time the service writes or returns has one form; older rows written
 * by CURRENT_TIMESTAMP ("YYYY-MM-DD HH:MM:SS") are read through the same. */
#define ISO(col) "strftime('%Y-%m-%dT%H:%M:%fZ'," col ")"

/* How often an insert tries a higher id when the one it chose is taken by a
 * message of another room (ids are unique across rooms). */
#define INSERT_ID_TRIES 8

void msgs_message_clear(msgs_message *m)
{
    free(m->username);
    free(m->content);
    free(m->client_ref);
    memset(m, 0, sizeof(*m));
}

msgs_message *msgs_message_list_push(msgs_message_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        NT_ASSERT(l->v != NULL);
    }
    memset(&l->v[l->n], 0, sizeof(*l->v));
    return &l->v[l->n++];
}

void msgs_message_list_clear(msgs_message_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        msgs_message_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- transactions ---- */

nt_status msgs_db_begin(sqlite3 *db)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return NT_OK;
    nt_log_error(MOD, "store begin failed err=\"%s\"", sqlite3_errmsg(db));
    /* Busy: another process held the write lock past the busy timeout. */
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? NT_EUNAVAIL : NT_EINTERNAL;
}

nt_status msgs_db_commit(sqlite3 *db)
{
    int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return NT_OK;
    nt_log_error(MOD, "store commit failed err=\"%s\"", sqlite3_errmsg(db));
    return (rc & 0xff) == SQLITE_BUSY ? NT_EUNAVAIL : NT_EINTERNAL;
}

void msgs_db_rollback(sqlite3 *db)
{
    /* Some failures (I/O, a trigger's RAISE(ROLLBACK), a refused COMMIT) end
     * the transaction by themselves: ask before undoing. */
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- statements ---- */

/* The columns of a message as every query below selects them, from messages
 * m joined to the author's users row u. A type the service does not know
 * (older rows) reads as the schema's default, "text". */
#define MSG_COLS                                                                                   \
    "m.id, m.room_id, m.user_id, u.username, coalesce(m.content, ''), "                            \
    "CASE WHEN m.message_type IN ('image', 'file') THEN m.message_type ELSE 'text' END, "          \
    "m.client_ref, " ISO("m.created_at") ", " ISO("m.edited_at") ", " ISO(                         \
        "m.deleted_at") ", m.deleted_by "

#define MSG_FROM "FROM messages m LEFT JOIN users u ON u.clerk_user_id = m.user_id "

static void message_from_row(sqlite3_stmt *s, msgs_message *m)
{
    nt_sql_col_copy(s, 0, m->id, sizeof(m->id));
    nt_sql_col_copy(s, 1, m->room_id, sizeof(m->room_id));
    nt_sql_col_copy(s, 2, m->user_id, sizeof(m->user_id));
    m->username = nt_sql_col_dup(s, 3);
    m->content = nt_sql_col_dup(s, 4);
    nt_sql_col_copy(s, 5, m->type, sizeof(m->type));
    m->client_ref = nt_sql_col_dup(s, 6);
    nt_sql_col_copy(s, 7, m->created_at, sizeof(m->created_at));
    nt_sql_col_copy(s, 8, m->edited_at, sizeof(m->edited_at));
    nt_sql_col_copy(s, 9, m->deleted_at, sizeof(m->deleted_at));
    nt_sql_col_copy(s, 10, m->deleted_by, sizeof(m->deleted_by));
}

static void message_one(sqlite3_stmt *s, void *m)
{
    message_from_row(s, m);
}

static void message_row(sqlite3_stmt *s, void *list)
{
    message_from_row(s, msgs_message_list_push(list));
}

/* Runs a single-message query into a local message, moved to *out on success. */
static nt_status query_message(sqlite3 *db, const char *sql, const char *const *params, int n,
                               msgs_message *out)
{
    msgs_message m;
    memset(&m, 0, sizeof(m));
    nt_status st = nt_sql_query_one(db, sql, params, n, message_one, &m);
    if (st == NT_OK)
        *out = m;
    else
        msgs_message_clear(&m);
    return st;
}

nt_status msgs_db_get(sqlite3 *db, const char *id, msgs_message *out)
{
    const char *p[] = {id};
    return query_message(db, "SELECT " MSG_COLS MSG_FROM "WHERE m.id = ?1", p, 1, out);
}

nt_status msgs_db_by_client_ref(sqlite3 *db, const char *user_id, const char *client_ref,
                                msgs_message *out)
{
    /* The partial unique index (user_id, client_ref) serves this: an
     * equality on client_ref implies the index's "client_ref IS NOT NULL". */
    const char *p[] = {user_id, client_ref};
    return query_message(
        db, "SELECT " MSG_COLS MSG_FROM "WHERE m.user_id = ?1 AND m.client_ref = ?2", p, 2, out);
}

/* A message's JSON at worst: every byte of its strings escaped, plus the
 * fixed fields and names. */
static size_t page_bytes(const msgs_message *m)
{
    size_t n = 512;
    n += 2 * strlen(m->content != NULL ? m->content : "");
    n += 2 * strlen(m->username != NULL ? m->username : "");
    n += 2 * strlen(m->client_ref != NULL ? m->client_ref : "");
    return n + 2 * strlen(m->user_id) + 2 * strlen(m->deleted_by);
}

nt_status msgs_db_page(sqlite3 *db, const char *room_id, const msgs_page_req *req, msgs_page *out)
{
    /* One statement per kind, each a seek and a walk along (room_id, id) in
     * the direction of travel; one row more than asked tells has_more. */
    static const char *latest =
        "SELECT " MSG_COLS MSG_FROM "WHERE m.room_id = ?1 ORDER BY m.id DESC LIMIT ?3";
    static const char *before = "SELECT " MSG_COLS MSG_FROM
                                "WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3";
    static const char *after =
        "SELECT " MSG_COLS MSG_FROM "WHERE m.room_id = ?1 AND m.id > ?2 ORDER BY m.id ASC LIMIT ?3";
    NT_ASSERT(req->limit >= 1 && req->limit <= MSGS_PAGE_MAX);

    const char *sql = req->kind == MSGS_PAGE_AFTER    ? after
                      : req->kind == MSGS_PAGE_BEFORE ? before
                                                      : latest;
    const char *p[] = {room_id, req->kind == MSGS_PAGE_LATEST ? NULL : req->cursor};
    msgs_page pg;
    memset(&pg, 0, sizeof(pg));
    nt_status st = nt_sql_query_each(db, sql, p, 2, req->limit + 1, message_row, &pg.list);
    if (st != NT_OK) {
        msgs_message_list_clear(&pg.list);
        return st;
    }
    if (pg.list.n > (size_t)req->limit) {
        /* The extra row is the farthest in the direction of travel. */
        pg.has_more = true;
        msgs_message_clear(&pg.list.v[--pg.list.n]);
    }
    /* Rows are in the direction of travel: keep them while the page fits. */
    size_t bytes = 0;
    for (size_t i = 0; i < pg.list.n; i++) {
        bytes += page_bytes(&pg.list.v[i]);
        if (i > 0 && bytes > MSGS_PAGE_MAX_BYTES) {
            while (pg.list.n > i)
                msgs_message_clear(&pg.list.v[--pg.list.n]);
            pg.has_more = true;
            break;
        }
    }
    if (req->kind != MSGS_PAGE_AFTER) {
        /* Fetched newest first; pages are always oldest first. */
        for (size_t i = 0, j = pg.list.n; i + 1 < j; i++, j--) {
            msgs_message t = pg.list.v[i];
            pg.list.v[i] = pg.list.v[j - 1];
            pg.list.v[j - 1] = t;
        }
    }
    *out = pg;
    return NT_OK;
}

static void max_id_one(sqlite3_stmt *s, void *out)
{
    nt_sql_col_copy(s, 0, out, NT_ID_LEN);
}

/* The current time in the service's one form. */
static void now_iso(char out[MSGS_TIME_LEN])
{
    char buf[NT_ISO8601_LEN];
    nt_clock_iso8601(nt_clock_now_ms(), buf);
    snprintf(out, MSGS_TIME_LEN, "%.24s", buf);
}

nt_status msgs_db_insert(sqlite3 *db, const msgs_new *n, msgs_message *out)
{
    /* The room's newest id, under the write lock: the new id is above it, so
     * ids in a room rise in commit order even across processes. */
    char floor[NT_ID_LEN] = "";
    const char *pr[] = {n->room_id};
    nt_status st = nt_sql_query_one(db, "SELECT max(id) FROM messages WHERE room_id = ?1", pr, 1,
                                    max_id_one, floor);
    if (st != NT_OK)
        return st;

    char now[MSGS_TIME_LEN];
    now_iso(now);
    char id[NT_ID_LEN];
    for (int tries = 0;; tries++) {
        nt_id_next_after(floor, id);
        const char *p[] = {id, n->room_id, n->user_id, n->content, n->type, n->client_ref, now};
        sqlite3_stmt *s = NULL;
        st = nt_sql_prepare(db,
                            "INSERT INTO messages (id, room_id, user_id, content, message_type, "
                            "client_ref, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            p, 7, &s);
        if (st != NT_OK)
            return st;
        /* sqlite3_step gives the primary code; the extended one tells which
         * constraint. The failed statement is undone, the transaction kept. */
        int rc = sqlite3_step(s);
        int ext = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
        nt_store_stmt_release(s);
        if (rc == SQLITE_DONE)
            break;
        if (ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
            /* Ids are unique across rooms: another room holds this one (only
             * possible when a room's ids run ahead of the clock). Go above it. */
            if (tries + 1 < INSERT_ID_TRIES) {
                memcpy(floor, id, sizeof(floor));
                continue;
            }
            nt_log_error(MOD, "no free id above the room's newest room=%s", n->room_id);
            return NT_EINTERNAL;
        }
        if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) {
            nt_log_info(MOD, "insert refused, room or author gone room=%s", n->room_id);
            return NT_ENOTFOUND;
        }
        if (ext == SQLITE_CONSTRAINT_UNIQUE)
            return NT_ECONFLICT;
        if ((rc & 0xff) == SQLITE_CONSTRAINT) {
            /* Another rule of the schema (a CHECK, NOT NULL or a trigger's
             * RAISE(ABORT)) refused this row: a fault of this message, not
             * of the store. */
            nt_log_warn(MOD, "insert refused room=%s err=\"%s\"", n->room_id, sqlite3_errmsg(db));
            return NT_EINVAL;
        }
        nt_log_error(MOD, "store insert failed err=\"%s\"", sqlite3_errmsg(db));
        return nt_store_status(rc);
    }
    return msgs_db_get(db, id, out);
}

/* Reads whether the message is deleted. */
static void deleted_one(sqlite3_stmt *s, void *out)
{
    *(bool *)out = sqlite3_column_int(s, 0) != 0;
}

/* NT_ENOTFOUND when the message is absent; else NT_OK and *deleted. */
static nt_status message_state(sqlite3 *db, const char *id, bool *deleted)
{
    const char *p[] = {id};
    return nt_sql_query_one(db, "SELECT coalesce(deleted_at, '') <> '' FROM messages WHERE id = ?1",
                            p, 1, deleted_one, deleted);
}

nt_status msgs_db_edit(sqlite3 *db, const char *id, const char *content, const char *now)
{
    const char *p[] = {id, content, now};
    int changes = 0;
    nt_status st = nt_sql_exec(db,
                               "UPDATE messages SET content = ?2, edited_at = ?3 "
                               "WHERE id = ?1 AND coalesce(deleted_at, '') = ''",
                               p, 3, &changes);
    if (st != NT_OK || changes > 0)
        return st;
    bool deleted = false;
    st = message_state(db, id, &deleted);
    if (st == NT_OK)
        st = deleted ? NT_ECONFLICT : NT_EINTERNAL; /* present, not deleted, not updated? */
    return st;
}

nt_status msgs_db_delete(sqlite3 *db, const char *id, const char *by, const char *now,
                         bool *changed)
{
    /* A tombstone: the row stays so that history keeps its shape. */
    const char *p[] = {id, by, now};
    int changes = 0;
    nt_status st = nt_sql_exec(db,
                               "UPDATE messages SET content = '', deleted_at = ?3, deleted_by = ?2 "
                               "WHERE id = ?1 AND coalesce(deleted_at, '') = ''",
                               p, 3, &changes);
    if (st != NT_OK)
        return st;
    if (changes > 0) {
        *changed = true;
        return NT_OK;
    }
    bool deleted = false;
    st = message_state(db, id, &deleted);
    if (st == NT_OK && !deleted)
        st = NT_EINTERNAL; /* present, not deleted, not updated: cannot happen */
    if (st == NT_OK)
        *changed = false;
    return st;
}
