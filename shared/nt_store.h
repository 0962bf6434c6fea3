/* The SQLite store: one writing connection per process in WAL mode with
 * foreign keys enforced, shared behind one mutex, a read-only connection for
 * reads behind another, and the migration runner that applies
 * schemas/migrations/NNNN_name.sql in order and records each in d1_migrations
 * exactly as wrangler does, so our runner and `wrangler d1 migrations apply`
 * agree about a database. */
#ifndef NT_STORE_H
#define NT_STORE_H

#include "nt_status.h"

#include <sqlite3.h>

typedef struct nt_store nt_store;

/* Opens (creating) the database at path, creating its parent directory if
 * missing; sets journal_mode=WAL, foreign_keys=ON, synchronous=FULL and a busy
 * timeout; then, when migrations_dir is non-NULL, applies every migration not
 * yet recorded (nt_store_migrate). Several processes may open the same file at
 * once: migration runs inside BEGIN IMMEDIATE, so exactly one applies each file.
 * NT_EUNAVAIL when the file cannot be opened, NT_EINTERNAL when a migration
 * fails (the message is logged, naming the file). ":memory:" is accepted, for
 * tests. */
nt_status nt_store_open(const char *path, const char *migrations_dir, nt_store **out);

/* Applies pending migrations from dir: files named NNNN_*.sql, in numeric
 * order; each in one transaction together with
 * INSERT INTO d1_migrations (name) values ('<file name>'). Writes the number
 * applied to *applied (may be NULL), only on success. NT_EINVAL when dir is
 * missing or not a directory or a file is malformed (a NUL byte), NT_ETOOBIG
 * for a file over 1 MiB, NT_EINTERNAL when a migration fails. Takes the
 * store's lock: never call it while holding nt_store_lock. */
nt_status nt_store_migrate(nt_store *st, const char *dir, int *applied);

/* Takes the store's mutex and returns the connection. Every use of the
 * connection happens between nt_store_lock and nt_store_unlock. */
sqlite3 *nt_store_lock(nt_store *st);
void nt_store_unlock(nt_store *st);

/* Takes the reader's mutex and returns the reader connection: a second,
 * read-only connection to the same file, so reads see the last committed
 * state without waiting for a writer (WAL) or its lock. With ":memory:" it is
 * the writer's connection and lock. Use between nt_store_lock_read and
 * nt_store_unlock_read; never write through it. Thread-safe. */
sqlite3 *nt_store_lock_read(nt_store *st);
void nt_store_unlock_read(nt_store *st);

/* A prepared statement for sql on db, which must be a connection of an open
 * store held under its lock (nt_store_lock or nt_store_lock_read): prepared
 * the first time and kept for the connection's life, so a hot statement is
 * parsed once. sql is the cache key by address: pass a string with static
 * storage (a literal or a static const). Give it back with
 * nt_store_stmt_release after every use, which resets it (ending any read it
 * holds) and clears its bindings. On any other connection, or when the cache
 * (32 per connection) is full, the statement is prepared for this use only
 * and release finalizes it; so is a statement asked for again before its
 * release (the same query run from inside a row callback). NULL when SQLite
 * refuses the SQL (logged). */
sqlite3_stmt *nt_store_stmt(sqlite3 *db, const char *sql);
void nt_store_stmt_release(sqlite3_stmt *st);

/* Maps an SQLite result code: SQLITE_OK/ROW/DONE → NT_OK, CONSTRAINT →
 * NT_ECONFLICT, BUSY/LOCKED → NT_EUNAVAIL, anything else → NT_EINTERNAL. */
nt_status nt_store_status(int rc);

/* Closes the connection. NULL is harmless. */
void nt_store_close(nt_store *st);

#endif
