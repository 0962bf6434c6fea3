/* The users table: every SQL statement of the auth service, parameterised. */
#include "auth.h"

#include "nt_log.h"

#include <string.h>

void auth_profile_clear(auth_profile *p)
{
    free(p->username);
    free(p->email);
    free(p->avatar_url);
    memset(p, 0, sizeof(*p));
}

static char *dup_col(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (t == NULL)
        return NULL;
    char *c = strdup((const char *)t);
    NT_ASSERT(c != NULL);
    return c;
}

/* SQLite's CURRENT_TIMESTAMP is "YYYY-MM-DD HH:MM:SS" in UTC; the API speaks RFC 3339. */
static void iso_col(sqlite3_stmt *s, int col, char out[32])
{
    const unsigned char *t = sqlite3_column_text(s, col);
    out[0] = '\0';
    if (t == NULL)
        return;
    snprintf(out, 32, "%.31s", (const char *)t);
    if (strlen(out) == 19 && out[10] == ' ') {
        out[10] = 'T';
        out[19] = 'Z';
        out[20] = '\0';
    }
}

static nt_status select_locked(sqlite3 *db, const char *user_id, auth_profile *out)
{
    static const char *sql = "SELECT id, clerk_user_id, username, email, avatar_url, created_at, "
                             "updated_at FROM users WHERE clerk_user_id = ?1";
    sqlite3_stmt *s = NULL;
    nt_status st = NT_EINTERNAL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, user_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        st = NT_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        st = nt_store_status(rc);
        goto out;
    }
    auth_profile p;
    memset(&p, 0, sizeof(p));
    snprintf(p.id, sizeof(p.id), "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(p.user_id, sizeof(p.user_id), "%s", (const char *)sqlite3_column_text(s, 1));
    p.username = dup_col(s, 2);
    p.email = dup_col(s, 3);
    p.avatar_url = dup_col(s, 4);
    iso_col(s, 5, p.created_at);
    iso_col(s, 6, p.updated_at);
    *out = p;
    st = NT_OK;
out:
    if (st == NT_EINTERNAL)
        nt_log_error("auth", "store select failed err=\"%s\"", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return st;
}

nt_status auth_store_get(nt_store *st, const char *user_id, auth_profile *out)
{
    sqlite3 *db = nt_store_lock(st);
    nt_status r = select_locked(db, user_id, out);
    nt_store_unlock(st);
    return r;
}

/* Runs one write statement with up to five text parameters (NULL binds NULL). */
static nt_status exec_locked(sqlite3 *db, const char *sql, const char *const *params, int n)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        for (int i = 0; i < n; i++) {
            if (params[i] != NULL)
                sqlite3_bind_text(s, i + 1, params[i], -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(s, i + 1);
        }
        rc = sqlite3_step(s);
    }
    nt_status r = nt_store_status(rc);
    if (r != NT_OK)
        nt_log_error("auth", "store write failed err=\"%s\"", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return r;
}

/* Runs one write in a BEGIN IMMEDIATE transaction, reads the row back, lets
 * the hook see it, then commits. The write lock taken by BEGIN IMMEDIATE
 * orders writers across processes too. */
static nt_status write_txn(nt_store *st, const char *sql, const char *const *params, int n,
                           const char *user_id, bool must_change, auth_before_commit hook,
                           auth_after_rollback undo, void *arg, auth_profile *out)
{
    sqlite3 *db = nt_store_lock(st);
    nt_status r = nt_store_status(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    if (r != NT_OK) {
        nt_log_error("auth", "store begin failed err=\"%s\"", sqlite3_errmsg(db));
        nt_store_unlock(st);
        return r;
    }
    auth_profile p;
    memset(&p, 0, sizeof(p));
    r = exec_locked(db, sql, params, n);
    if (r == NT_OK && must_change && sqlite3_changes(db) == 0)
        r = NT_ENOTFOUND;
    if (r == NT_OK)
        r = select_locked(db, user_id, &p);
    bool hooked = false;
    if (r == NT_OK && hook != NULL) {
        r = hook(arg, &p);
        hooked = r == NT_OK;
    }
    if (r == NT_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        nt_log_error("auth", "store commit failed err=\"%s\"", sqlite3_errmsg(db));
        r = NT_EINTERNAL;
    }
    if (r != NT_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (hooked && undo != NULL)
            undo(arg, user_id);
        auth_profile_clear(&p);
    }
    nt_store_unlock(st);
    if (r == NT_OK)
        *out = p;
    return r;
}

nt_status auth_store_upsert(nt_store *st, const char *user_id, const char *username,
                            const char *email, const char *avatar, auth_before_commit hook,
                            auth_after_rollback undo, void *arg, auth_profile *out)
{
    char id[NT_ID_LEN];
    nt_id_new(id);
    const char *params[] = {id, user_id, username, email, avatar};
    return write_txn(st,
                     "INSERT INTO users (id, clerk_user_id, username, email, avatar_url) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (clerk_user_id) DO UPDATE "
                     "SET username = excluded.username, email = excluded.email, "
                     "avatar_url = excluded.avatar_url, updated_at = CURRENT_TIMESTAMP",
                     params, 5, user_id, false, hook, undo, arg, out);
}

nt_status auth_store_insert_if_absent(nt_store *st, const char *user_id, const char *username,
                                      const char *email, auth_before_commit hook,
                                      auth_after_rollback undo, void *arg, auth_profile *out)
{
    char id[NT_ID_LEN];
    nt_id_new(id);
    const char *params[] = {id, user_id, username, email};
    return write_txn(st,
                     "INSERT INTO users (id, clerk_user_id, username, email) "
                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (clerk_user_id) DO NOTHING",
                     params, 4, user_id, false, hook, undo, arg, out);
}

nt_status auth_store_update(nt_store *st, const char *user_id, const char *username,
                            bool set_avatar, const char *avatar, auth_before_commit hook,
                            auth_after_rollback undo, void *arg, auth_profile *out)
{
    /* COALESCE keeps the username when none is given; the flag decides the avatar. */
    const char *params[] = {user_id, username, set_avatar ? "1" : "0", avatar};
    return write_txn(st,
                     "UPDATE users SET username = COALESCE(?2, username), "
                     "avatar_url = CASE WHEN ?3 = '1' THEN ?4 ELSE avatar_url END, "
                     "updated_at = CURRENT_TIMESTAMP WHERE clerk_user_id = ?1",
                     params, 4, user_id, true, hook, undo, arg, out);
}
