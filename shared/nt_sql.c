/* Parameterised SQL over the store's kept statements. */
#include "nt_sql.h"

#include "nt_log.h"
#include "nt_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "store"

nt_status nt_sql_prepare(sqlite3 *db, const char *sql, const char *const *params, int n,
                         sqlite3_stmt **out)
{
    sqlite3_stmt *s = nt_store_stmt(db, sql);
    if (s == NULL)
        return NT_EINTERNAL;
    for (int i = 0; i < n; i++) {
        if (params[i] != NULL)
            sqlite3_bind_text(s, i + 1, params[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, i + 1);
    }
    *out = s;
    return NT_OK;
}

static nt_status step_error(sqlite3 *db, int rc)
{
    nt_status st = nt_store_status(rc);
    if (st != NT_ECONFLICT)
        nt_log_error(MOD, "store step failed err=\"%s\"", sqlite3_errmsg(db));
    return st;
}

nt_status nt_sql_exec(sqlite3 *db, const char *sql, const char *const *params, int n, int *changes)
{
    sqlite3_stmt *s = NULL;
    nt_status st = nt_sql_prepare(db, sql, params, n, &s);
    if (st != NT_OK)
        return st;
    int rc = sqlite3_step(s);
    st = rc == SQLITE_DONE ? NT_OK : step_error(db, rc);
    if (st == NT_OK && changes != NULL)
        *changes = sqlite3_changes(db);
    nt_store_stmt_release(s);
    return st;
}

nt_status nt_sql_query_each(sqlite3 *db, const char *sql, const char *const *params, int n,
                            int limit, nt_sql_row_fn row, void *arg)
{
    sqlite3_stmt *s = NULL;
    nt_status st = nt_sql_prepare(db, sql, params, n, &s);
    if (st != NT_OK)
        return st;
    if (limit > 0)
        sqlite3_bind_int(s, n + 1, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        row(s, arg);
    st = rc == SQLITE_DONE ? NT_OK : step_error(db, rc);
    nt_store_stmt_release(s);
    return st;
}

nt_status nt_sql_query_one(sqlite3 *db, const char *sql, const char *const *params, int n,
                           nt_sql_row_fn row, void *out)
{
    sqlite3_stmt *s = NULL;
    nt_status st = nt_sql_prepare(db, sql, params, n, &s);
    if (st != NT_OK)
        return st;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        row(s, out);
    st = rc == SQLITE_ROW ? NT_OK : rc == SQLITE_DONE ? NT_ENOTFOUND : step_error(db, rc);
    nt_store_stmt_release(s);
    return st;
}

char *nt_sql_col_dup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (t == NULL)
        return NULL;
    char *c = strdup((const char *)t);
    NT_ASSERT(c != NULL);
    return c;
}

void nt_sql_col_copy(sqlite3_stmt *s, int col, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
}
