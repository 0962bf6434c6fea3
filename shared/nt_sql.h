/* Running parameterised SQL on a connection of an nt_store: the prepare,
 * bind, step and read-back steps every service's store module repeats, over
 * the store's kept statements (nt_store_stmt), so a hot statement is parsed
 * once per connection. Every SQL text passed here must have static storage
 * (a literal or a static const): its address is the cache key. The caller
 * holds the connection's lock. */
#ifndef NT_SQL_H
#define NT_SQL_H

#include "nt_status.h"

#include <sqlite3.h>
#include <stddef.h>

/* Reads one row of a statement into out. */
typedef void (*nt_sql_row_fn)(sqlite3_stmt *s, void *out);

/* Runs sql with text parameters ?1..?n (a NULL entry binds NULL), which
 * returns no rows; *changes (may be NULL) gets the rows it changed. NT_OK,
 * or nt_store_status of the failure (NT_ECONFLICT for a constraint, logged
 * at error level unless it is one). */
nt_status nt_sql_exec(sqlite3 *db, const char *sql, const char *const *params, int n, int *changes);

/* Runs a query, calling row(s, arg) for each row. limit > 0 binds parameter
 * n + 1 as an integer. */
nt_status nt_sql_query_each(sqlite3 *db, const char *sql, const char *const *params, int n,
                            int limit, nt_sql_row_fn row, void *arg);

/* Runs a query that returns at most one row; row(s, out) reads it.
 * NT_ENOTFOUND when there is none. */
nt_status nt_sql_query_one(sqlite3 *db, const char *sql, const char *const *params, int n,
                           nt_sql_row_fn row, void *out);

/* Prepares (or takes the kept) sql and binds ?1..?n as text; give it back
 * with nt_store_stmt_release. NT_EINTERNAL when SQLite refuses the SQL. */
nt_status nt_sql_prepare(sqlite3 *db, const char *sql, const char *const *params, int n,
                         sqlite3_stmt **out);

/* Column col as a malloc'd string (NULL for SQL NULL); aborts on OOM. */
char *nt_sql_col_dup(sqlite3_stmt *s, int col);

/* Column col copied into out ("" for SQL NULL), cut to outlen - 1 bytes. */
void nt_sql_col_copy(sqlite3_stmt *s, int col, char *out, size_t outlen);

#endif
