/* nt_sql: parameterised statements over the store's kept statements. */
#include "nt_sql.h"

#include "nt_store.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static nt_store *st;

static void setup(void)
{
    cr_assert_eq(nt_store_open(":memory:", NULL, &st), NT_OK);
    sqlite3 *db = nt_store_lock(st);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)", NULL, NULL, NULL),
                 SQLITE_OK);
    nt_store_unlock(st);
}

static void teardown(void)
{
    nt_store_close(st);
}

TestSuite(nt_sql, .init = setup, .fini = teardown);

static const char INSERT[] = "INSERT INTO t (k, v) VALUES (?1, ?2)";
static const char UPDATE[] = "UPDATE t SET v = ?2 WHERE k = ?1";
static const char ONE[] = "SELECT k, v FROM t WHERE k = ?1";
static const char ALL[] = "SELECT k, v FROM t WHERE k > ?1 ORDER BY k LIMIT ?2";

typedef struct {
    char k[4];
    char *v;
} row;

static void read_row(sqlite3_stmt *s, void *out)
{
    row *r = out;
    nt_sql_col_copy(s, 0, r->k, sizeof(r->k));
    r->v = nt_sql_col_dup(s, 1);
}

typedef struct {
    int n;
    char keys[8][4];
} rows;

static void read_rows(sqlite3_stmt *s, void *out)
{
    rows *r = out;
    nt_sql_col_copy(s, 0, r->keys[r->n++], 4);
}

Test(nt_sql, runs_writes_and_reads_with_text_parameters)
{
    sqlite3 *db = nt_store_lock(st);
    const char *a[] = {"a", "one"}, *b[] = {"b", NULL}, *c[] = {"cccc", "three"};
    cr_assert_eq(nt_sql_exec(db, INSERT, a, 2, NULL), NT_OK);
    cr_assert_eq(nt_sql_exec(db, INSERT, b, 2, NULL), NT_OK, "NULL binds NULL");
    cr_assert_eq(nt_sql_exec(db, INSERT, c, 2, NULL), NT_OK);
    cr_assert_eq(nt_sql_exec(db, INSERT, a, 2, NULL), NT_ECONFLICT, "a constraint");
    int changes = -1;
    const char *u[] = {"a", "uno"}, *none[] = {"zz", "x"};
    cr_assert_eq(nt_sql_exec(db, UPDATE, u, 2, &changes), NT_OK);
    cr_assert_eq(changes, 1);
    cr_assert_eq(nt_sql_exec(db, UPDATE, none, 2, &changes), NT_OK);
    cr_assert_eq(changes, 0);

    row r = {"", NULL};
    const char *ka[] = {"a"}, *kb[] = {"b"}, *kz[] = {"zz"}, *kc[] = {"cccc"};
    cr_assert_eq(nt_sql_query_one(db, ONE, ka, 1, read_row, &r), NT_OK);
    cr_assert_str_eq(r.k, "a");
    cr_assert_str_eq(r.v, "uno");
    free(r.v);
    cr_assert_eq(nt_sql_query_one(db, ONE, kb, 1, read_row, &r), NT_OK);
    cr_assert_null(r.v, "SQL NULL reads as NULL");
    cr_assert_eq(nt_sql_query_one(db, ONE, kz, 1, read_row, &r), NT_ENOTFOUND);
    cr_assert_eq(nt_sql_query_one(db, ONE, kc, 1, read_row, &r), NT_OK);
    cr_assert_str_eq(r.k, "ccc", "copies are cut to the buffer");
    free(r.v);

    rows got = {0};
    const char *from[] = {""};
    cr_assert_eq(nt_sql_query_each(db, ALL, from, 1, 2, read_rows, &got), NT_OK);
    cr_assert_eq(got.n, 2, "the limit binds ?2");
    cr_assert_str_eq(got.keys[0], "a");
    cr_assert_str_eq(got.keys[1], "b");
    memset(&got, 0, sizeof(got));
    const char *from_a[] = {"a"};
    cr_assert_eq(nt_sql_query_each(db, ALL, from_a, 1, 10, read_rows, &got), NT_OK);
    cr_assert_eq(got.n, 2, "the kept statement was reset and rebound");
    nt_store_unlock(st);
}

Test(nt_sql, refuses_bad_sql)
{
    static const char BAD[] = "SELEC nothing";
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(nt_sql_prepare(db, BAD, NULL, 0, &s), NT_EINTERNAL);
    cr_assert_null(s);
    cr_assert_eq(nt_sql_exec(db, BAD, NULL, 0, NULL), NT_EINTERNAL);
    nt_store_unlock(st);
}
