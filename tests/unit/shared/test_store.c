/* Tests for nt_store: real SQLite files in a temporary directory, the real
 * schemas/migrations folder (tests run from the repository root), and forked
 * processes racing to migrate one fresh database. */
#include "nt_store.h"

#include "nt_clock.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REAL_MIGRATIONS "schemas/migrations"

static char tmp[256];

static void setup(void)
{
    struct stat sb;
    cr_assert(stat(REAL_MIGRATIONS, &sb) == 0 && S_ISDIR(sb.st_mode),
              "%s is missing: run the unit tests from the repository root", REAL_MIGRATIONS);
    snprintf(tmp, sizeof tmp, "/tmp/nt_store_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
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
    if (tmp[0] != '\0')
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < cap, "path too long: %s/%s", dir, name);
}

static void path_in_tmp(char *out, size_t cap, const char *rel)
{
    join(out, cap, tmp, rel);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    join(p, sizeof p, dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
}

static bool is_migration_name(const char *s)
{
    size_t d = 0;
    while (s[d] >= '0' && s[d] <= '9')
        d++;
    size_t n = strlen(s);
    return d > 0 && s[d] == '_' && n >= d + 5 && strcmp(s + n - 4, ".sql") == 0;
}

/* Copies the real migrations folder to tmp/<rel>; returns how many of its
 * files are migrations. */
static int copy_migrations(const char *rel, char *out, size_t cap)
{
    path_in_tmp(out, cap, rel);
    cr_assert_eq(mkdir(out, 0700), 0);
    DIR *d = opendir(REAL_MIGRATIONS);
    cr_assert_not_null(d);
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char src[512], dst[512];
        join(src, sizeof src, REAL_MIGRATIONS, e->d_name);
        join(dst, sizeof dst, out, e->d_name);
        FILE *in = fopen(src, "rb");
        cr_assert_not_null(in);
        FILE *o = fopen(dst, "wb");
        cr_assert_not_null(o);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            cr_assert_eq(fwrite(buf, 1, n, o), n);
        fclose(in);
        cr_assert_eq(fclose(o), 0);
        count += is_migration_name(e->d_name);
    }
    closedir(d);
    cr_assert_geq(count, 1, "no migrations in %s", REAL_MIGRATIONS);
    return count;
}

static int64_t query_int(nt_store *st, const char *sql)
{
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    nt_store_unlock(st);
    return v;
}

static void query_text(nt_store *st, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    const unsigned char *t = sqlite3_column_text(stmt, 0);
    snprintf(out, cap, "%s", t ? (const char *)t : "(null)");
    sqlite3_finalize(stmt);
    nt_store_unlock(st);
}

/* Runs sql (one statement) and returns the raw SQLite result of stepping it. */
static int exec_step(nt_store *st, const char *sql)
{
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    nt_store_unlock(st);
    return rc;
}

static bool table_exists(nt_store *st, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='%s'",
             name);
    return query_int(st, sql) == 1;
}

static int64_t migration_rows(nt_store *st, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM d1_migrations WHERE name='%s'", name);
    return query_int(st, sql);
}

static nt_store *open_fresh(const char *rel, const char *migrations)
{
    char db[512];
    path_in_tmp(db, sizeof db, rel);
    nt_store *st = NULL;
    cr_assert_eq(nt_store_open(db, migrations, &st), NT_OK);
    cr_assert_not_null(st);
    return st;
}

/* ---- opening ---- */

Test(store, open_creates_parent_dir_and_file)
{
    char db[512], dir[512];
    path_in_tmp(db, sizeof db, "a/b/natter.db");
    path_in_tmp(dir, sizeof dir, "a/b");
    nt_store *st = NULL;
    cr_assert_eq(nt_store_open(db, REAL_MIGRATIONS, &st), NT_OK);
    cr_assert_not_null(st);

    struct stat sb;
    cr_assert_eq(stat(dir, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    cr_assert_eq(sb.st_mode & 0777, 0700, "parent created with mode %o", sb.st_mode & 0777);
    cr_assert_eq(stat(db, &sb), 0);
    cr_assert(S_ISREG(sb.st_mode));
    nt_store_close(st);
}

Test(store, open_without_migrations_dir_creates_no_tables)
{
    nt_store *st = open_fresh("plain.db", NULL);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM sqlite_master"), 0);
    nt_store_close(st);
}

Test(store, open_sets_wal_foreign_keys_and_full_sync)
{
    nt_store *st = open_fresh("wal.db", REAL_MIGRATIONS);
    char mode[32];
    query_text(st, "PRAGMA journal_mode", mode, sizeof mode);
    cr_assert_str_eq(mode, "wal");
    cr_assert_eq(query_int(st, "PRAGMA foreign_keys"), 1);
    cr_assert_eq(query_int(st, "PRAGMA synchronous"), 2, "synchronous is not FULL");
    cr_assert_geq(query_int(st, "PRAGMA busy_timeout"), 1000);
    nt_store_close(st);
}

Test(store, open_fails_when_parent_is_a_file)
{
    char file[512], db[512];
    path_in_tmp(file, sizeof file, "afile");
    write_file(tmp, "afile", "x");
    path_in_tmp(db, sizeof db, "afile/natter.db");
    nt_store *st = (nt_store *)0x1;
    cr_assert_eq(nt_store_open(db, NULL, &st), NT_EUNAVAIL);
    cr_assert_eq(st, (nt_store *)0x1, "out written on failure");
}

Test(store, open_refuses_empty_path)
{
    nt_store *st = NULL;
    cr_assert_eq(nt_store_open("", NULL, &st), NT_EINVAL);
    cr_assert_null(st);
}

Test(store, close_null_is_harmless)
{
    nt_store_close(NULL);
}

/* ---- the schema of the specification ---- */

Test(store, foreign_keys_enforced_as_conflict)
{
    nt_store *st = open_fresh("fk.db", REAL_MIGRATIONS);
    int rc = exec_step(st, "INSERT INTO chat_rooms (id, name, created_by) "
                           "VALUES ('r1', 'general', 'user_nobody')");
    cr_assert_eq(rc & 0xff, SQLITE_CONSTRAINT, "rc=%d", rc);
    cr_assert_eq(nt_store_status(rc), NT_ECONFLICT);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM chat_rooms"), 0);

    /* The same row with a real creator goes in. */
    cr_assert_eq(exec_step(st, "INSERT INTO users (id, clerk_user_id, username, email) "
                               "VALUES ('u1', 'user_1', 'ann', 'ann@example.com')"),
                 SQLITE_DONE);
    cr_assert_eq(exec_step(st, "INSERT INTO chat_rooms (id, name, created_by) "
                               "VALUES ('r1', 'general', 'user_1')"),
                 SQLITE_DONE);
    /* A message in a room that does not exist is refused too. */
    rc = exec_step(st, "INSERT INTO messages (id, room_id, user_id, content) "
                       "VALUES ('m1', 'nope', 'user_1', 'hi')");
    cr_assert_eq(nt_store_status(rc), NT_ECONFLICT);
    nt_store_close(st);
}

typedef struct {
    const char *name;
    const char *type;
    int notnull;
    const char *dflt; /* NULL: no default */
    int pk;
} column;

static void check_table(nt_store *st, const char *table, const column *cols, size_t n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", table);
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    size_t i = 0;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        cr_assert_lt(i, n, "%s has more columns than expected", table);
        const char *name = (const char *)sqlite3_column_text(stmt, 1);
        const char *type = (const char *)sqlite3_column_text(stmt, 2);
        int notnull = sqlite3_column_int(stmt, 3);
        const char *dflt = (const char *)sqlite3_column_text(stmt, 4);
        int pk = sqlite3_column_int(stmt, 5);
        cr_assert_str_eq(name, cols[i].name, "%s column %zu", table, i);
        cr_assert_str_eq(type, cols[i].type, "%s.%s type", table, name);
        cr_assert_eq(notnull, cols[i].notnull, "%s.%s notnull", table, name);
        if (cols[i].dflt == NULL)
            cr_assert_null(dflt, "%s.%s has default %s", table, name, dflt);
        else
            cr_assert(dflt != NULL && strcmp(dflt, cols[i].dflt) == 0, "%s.%s default %s", table,
                      name, dflt ? dflt : "(none)");
        cr_assert_eq(pk, cols[i].pk, "%s.%s pk", table, name);
        i++;
    }
    cr_assert_eq(i, n, "%s has %zu columns, expected %zu", table, i, n);
    sqlite3_finalize(stmt);
    nt_store_unlock(st);
}

/* Counts foreign keys of table from column `from` to parent(to). */
static int64_t fk_count(nt_store *st, const char *table, const char *from, const char *parent,
                        const char *to)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pragma_foreign_key_list('%s') "
             "WHERE \"from\"='%s' AND \"table\"='%s' AND \"to\"='%s'",
             table, from, parent, to);
    return query_int(st, sql);
}

Test(store, init_creates_the_four_tables_of_the_specification)
{
    static const column users[] = {
        {"id", "TEXT", 0, NULL, 1},
        {"clerk_user_id", "TEXT", 1, NULL, 0},
        {"username", "TEXT", 1, NULL, 0},
        {"email", "TEXT", 1, NULL, 0},
        {"avatar_url", "TEXT", 0, NULL, 0},
        {"created_at", "DATETIME", 0, "CURRENT_TIMESTAMP", 0},
        {"updated_at", "DATETIME", 0, "CURRENT_TIMESTAMP", 0},
    };
    static const column rooms[] = {
        {"id", "TEXT", 0, NULL, 1},
        {"name", "TEXT", 1, NULL, 0},
        {"description", "TEXT", 0, NULL, 0},
        {"created_by", "TEXT", 1, NULL, 0},
        {"is_private", "BOOLEAN", 0, "FALSE", 0},
        {"created_at", "DATETIME", 0, "CURRENT_TIMESTAMP", 0},
    };
    static const column messages[] = {
        {"id", "TEXT", 0, NULL, 1},
        {"room_id", "TEXT", 1, NULL, 0},
        {"user_id", "TEXT", 1, NULL, 0},
        {"content", "TEXT", 1, NULL, 0},
        {"message_type", "TEXT", 0, "'text'", 0},
        {"created_at", "DATETIME", 0, "CURRENT_TIMESTAMP", 0},
    };
    static const column members[] = {
        {"room_id", "TEXT", 1, NULL, 1},
        {"user_id", "TEXT", 1, NULL, 2},
        {"joined_at", "DATETIME", 0, "CURRENT_TIMESTAMP", 0},
        {"role", "TEXT", 0, "'member'", 0},
    };
    /* Later migrations may add columns; the spec's come first, in order, so
     * check 0001 alone on a copy that holds only it. */
    char only[512];
    path_in_tmp(only, sizeof only, "only0001");
    cr_assert_eq(mkdir(only, 0700), 0);
    FILE *in = fopen(REAL_MIGRATIONS "/0001_init.sql", "rb");
    cr_assert_not_null(in, "0001_init.sql is missing");
    char text[16384];
    size_t len = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[len] = '\0';
    cr_assert(strncmp(text, "-- Migration number: 0001 ", 26) == 0, "wrangler header missing");
    cr_assert_null(strstr(text, "BEGIN"), "D1 refuses BEGIN in a migration");
    cr_assert_null(strstr(text, "COMMIT"), "D1 refuses COMMIT in a migration");
    write_file(only, "0001_init.sql", text);
    nt_store *st = open_fresh("schema0001.db", only);

    check_table(st, "users", users, sizeof users / sizeof users[0]);
    check_table(st, "chat_rooms", rooms, sizeof rooms / sizeof rooms[0]);
    check_table(st, "messages", messages, sizeof messages / sizeof messages[0]);
    check_table(st, "room_members", members, sizeof members / sizeof members[0]);

    /* clerk_user_id is UNIQUE: an automatic unique index on that one column. */
    cr_assert_eq(query_int(st, "SELECT count(*) FROM pragma_index_list('users') l, "
                               "pragma_index_info(l.name) i "
                               "WHERE l.\"unique\"=1 AND l.origin='u' AND i.name='clerk_user_id'"),
                 1);
    cr_assert_eq(fk_count(st, "chat_rooms", "created_by", "users", "clerk_user_id"), 1);
    cr_assert_eq(fk_count(st, "messages", "room_id", "chat_rooms", "id"), 1);
    cr_assert_eq(fk_count(st, "messages", "user_id", "users", "clerk_user_id"), 1);
    cr_assert_eq(fk_count(st, "room_members", "room_id", "chat_rooms", "id"), 1);
    cr_assert_eq(fk_count(st, "room_members", "user_id", "users", "clerk_user_id"), 1);

    /* Defaults work as written. */
    cr_assert_eq(exec_step(st, "INSERT INTO users (id, clerk_user_id, username, email) "
                               "VALUES ('u1', 'user_1', 'ann', 'a@example.com')"),
                 SQLITE_DONE);
    cr_assert_eq(nt_store_status(exec_step(st, "INSERT INTO users (id, clerk_user_id, username, "
                                               "email) VALUES ('u2', 'user_1', 'bob', 'b@x')")),
                 NT_ECONFLICT, "clerk_user_id is not unique");
    cr_assert_eq(exec_step(st, "INSERT INTO chat_rooms (id, name, created_by) "
                               "VALUES ('r1', 'general', 'user_1')"),
                 SQLITE_DONE);
    cr_assert_eq(
        exec_step(st, "INSERT INTO room_members (room_id, user_id) VALUES ('r1', 'user_1')"),
        SQLITE_DONE);
    cr_assert_eq(nt_store_status(exec_step(
                     st, "INSERT INTO room_members (room_id, user_id) VALUES ('r1', 'user_1')")),
                 NT_ECONFLICT, "(room_id, user_id) is not the primary key");
    cr_assert_eq(exec_step(st, "INSERT INTO messages (id, room_id, user_id, content) "
                               "VALUES ('m1', 'r1', 'user_1', 'hello')"),
                 SQLITE_DONE);
    char v[64];
    query_text(st, "SELECT message_type FROM messages WHERE id='m1'", v, sizeof v);
    cr_assert_str_eq(v, "text");
    query_text(st, "SELECT role FROM room_members", v, sizeof v);
    cr_assert_str_eq(v, "member");
    cr_assert_eq(query_int(st, "SELECT is_private FROM chat_rooms"), 0);
    nt_store_close(st);
}

/* ---- the migration runner ---- */

Test(store, d1_migrations_records_init_like_wrangler)
{
    nt_store *st = open_fresh("d1.db", REAL_MIGRATIONS);
    cr_assert_eq(migration_rows(st, "0001_init.sql"), 1);
    cr_assert_eq(query_int(st, "SELECT id FROM d1_migrations WHERE name='0001_init.sql'"), 1);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations WHERE applied_at IS NULL"), 0);
    /* The table is wrangler's: AUTOINCREMENT id, UNIQUE name, NOT NULL applied_at. */
    char sql[512];
    query_text(st, "SELECT sql FROM sqlite_master WHERE name='d1_migrations'", sql, sizeof sql);
    cr_assert(strstr(sql, "id INTEGER PRIMARY KEY AUTOINCREMENT") != NULL, "%s", sql);
    cr_assert(strstr(sql, "name TEXT UNIQUE") != NULL, "%s", sql);
    cr_assert(strstr(sql, "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL") != NULL, "%s",
              sql);
    nt_store_close(st);
}

Test(store, reopen_applies_nothing)
{
    char dir[512];
    int files = copy_migrations("mig", dir, sizeof dir);
    char db[512];
    path_in_tmp(db, sizeof db, "re.db");

    nt_store *st = NULL;
    cr_assert_eq(nt_store_open(db, dir, &st), NT_OK);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files);
    nt_store_close(st);

    st = NULL;
    cr_assert_eq(nt_store_open(db, NULL, &st), NT_OK);
    int applied = -1;
    cr_assert_eq(nt_store_migrate(st, dir, &applied), NT_OK);
    cr_assert_eq(applied, 0);
    applied = -1;
    cr_assert_eq(nt_store_migrate(st, dir, &applied), NT_OK);
    cr_assert_eq(applied, 0);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files);
    nt_store_close(st);
}

Test(store, new_migrations_apply_once_in_numeric_order)
{
    char dir[512];
    int files = copy_migrations("mig", dir, sizeof dir);
    nt_store *st = open_fresh("order.db", dir);

    /* Each depends on the one before, so a wrong order fails outright. The
     * unpadded 9 sorts after 0010 as text but before it as a number. */
    write_file(dir, "0010_c.sql", "ALTER TABLE zz_t ADD COLUMN c TEXT;\n");
    write_file(dir, "9_b.sql", "ALTER TABLE zz_t ADD COLUMN b TEXT;\n");
    write_file(dir, "0002_a.sql", "CREATE TABLE zz_t (a TEXT);\n");
    int applied = -1;
    cr_assert_eq(nt_store_migrate(st, dir, &applied), NT_OK);
    cr_assert_eq(applied, 3);

    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files + 3);
    int64_t a = query_int(st, "SELECT id FROM d1_migrations WHERE name='0002_a.sql'");
    int64_t b = query_int(st, "SELECT id FROM d1_migrations WHERE name='9_b.sql'");
    int64_t c = query_int(st, "SELECT id FROM d1_migrations WHERE name='0010_c.sql'");
    cr_assert(a < b && b < c, "order by id: 0002=%ld 9=%ld 0010=%ld", (long)a, (long)b, (long)c);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM pragma_table_info('zz_t')"), 3);

    applied = -1;
    cr_assert_eq(nt_store_migrate(st, dir, &applied), NT_OK);
    cr_assert_eq(applied, 0);
    cr_assert_eq(migration_rows(st, "0002_a.sql"), 1);
    nt_store_close(st);
}

Test(store, failing_migration_leaves_no_partial_state)
{
    char dir[512];
    int files = copy_migrations("mig", dir, sizeof dir);
    nt_store *st = open_fresh("fail.db", dir);

    write_file(dir, "9000_bad.sql",
               "CREATE TABLE zz_partial (x INTEGER);\n"
               "INSERT INTO zz_partial VALUES (1);\n"
               "INSERT INTO zz_no_such_table VALUES (1);\n");
    write_file(dir, "9001_after.sql", "CREATE TABLE zz_after (x INTEGER);\n");
    int applied = -1;
    cr_assert_eq(nt_store_migrate(st, dir, &applied), NT_EINTERNAL);
    cr_assert_eq(applied, -1, "applied written on failure");
    cr_assert_not(table_exists(st, "zz_partial"), "partial migration kept");
    cr_assert_not(table_exists(st, "zz_after"), "ran past a failed migration");
    cr_assert_eq(migration_rows(st, "9000_bad.sql"), 0);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files);
    /* The connection is still usable and not inside a transaction. */
    sqlite3 *db = nt_store_lock(st);
    cr_assert(sqlite3_get_autocommit(db));
    nt_store_unlock(st);
    nt_store_close(st);

    /* Opening with the broken folder fails the same way and returns no store. */
    char db2[512];
    path_in_tmp(db2, sizeof db2, "fail2.db");
    nt_store *st2 = NULL;
    cr_assert_eq(nt_store_open(db2, dir, &st2), NT_EINTERNAL);
    cr_assert_null(st2);
}

Test(store, migration_with_its_own_transaction_fails)
{
    char dir[512];
    copy_migrations("mig", dir, sizeof dir);
    nt_store *st = open_fresh("tx.db", dir);
    write_file(dir, "9000_tx.sql", "BEGIN TRANSACTION;\nCREATE TABLE zz_tx (x);\nCOMMIT;\n");
    cr_assert_eq(nt_store_migrate(st, dir, NULL), NT_EINTERNAL);
    cr_assert_not(table_exists(st, "zz_tx"));
    cr_assert_eq(migration_rows(st, "9000_tx.sql"), 0);
    nt_store_close(st);

    /* A bare COMMIT would end our transaction early; it is reported, never recorded. */
    char dir2[512];
    copy_migrations("mig2", dir2, sizeof dir2);
    st = open_fresh("tx2.db", dir2);
    write_file(dir2, "9000_commit.sql", "CREATE TABLE zz_c (x);\nCOMMIT;\n");
    cr_assert_eq(nt_store_migrate(st, dir2, NULL), NT_EINTERNAL);
    cr_assert_eq(migration_rows(st, "9000_commit.sql"), 0);
    sqlite3 *db = nt_store_lock(st);
    cr_assert(sqlite3_get_autocommit(db));
    nt_store_unlock(st);
    nt_store_close(st);
}

Test(store, non_matching_file_names_are_ignored)
{
    char dir[512];
    int files = copy_migrations("mig", dir, sizeof dir);
    /* Each would fail if it were run. */
    const char *bad = "THIS IS NOT SQL;\n";
    write_file(dir, "README.md", bad);
    write_file(dir, "1.sql.bak", bad);
    write_file(dir, "1.sql", bad);
    write_file(dir, "7_", bad);
    write_file(dir, "7_sql", bad);
    write_file(dir, "0003.sql", bad);
    write_file(dir, "_0004_x.sql", bad);
    write_file(dir, "x0005_y.sql", bad);
    write_file(dir, "0006_y.SQL", bad);
    write_file(dir, "0007_y.sql~", bad);
    write_file(dir, ".0008_hidden.sql", bad);
    char sub[512];
    join(sub, sizeof sub, dir, "notes");
    cr_assert_eq(mkdir(sub, 0700), 0);

    nt_store *st = open_fresh("ignore.db", dir);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files);
    int applied = -1;
    cr_assert_eq(nt_store_migrate(st, dir, &applied), NT_OK);
    cr_assert_eq(applied, 0);
    nt_store_close(st);
}

Test(store, missing_migrations_dir_is_invalid)
{
    char missing[512];
    path_in_tmp(missing, sizeof missing, "no/such/dir");
    nt_store *st = open_fresh("missing.db", NULL);
    int applied = -1;
    cr_assert_eq(nt_store_migrate(st, missing, &applied), NT_EINVAL);
    cr_assert_eq(applied, -1);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM sqlite_master"), 0);
    nt_store_close(st);

    char db[512];
    path_in_tmp(db, sizeof db, "missing2.db");
    nt_store *st2 = NULL;
    cr_assert_eq(nt_store_open(db, missing, &st2), NT_EINVAL);
    cr_assert_null(st2);

    /* A file is not a directory either. */
    write_file(tmp, "plainfile", "x");
    char file[512];
    path_in_tmp(file, sizeof file, "plainfile");
    cr_assert_eq(nt_store_open(db, file, &st2), NT_EINVAL);
    cr_assert_null(st2);
}

Test(store, oversized_migration_is_refused)
{
    char dir[512];
    copy_migrations("mig", dir, sizeof dir);
    nt_store *st = open_fresh("big.db", dir);

    size_t n = 1024 * 1024 + 1;
    char *big = malloc(n + 1);
    cr_assert_not_null(big);
    memset(big, ' ', n);
    memcpy(big, "CREATE TABLE zz_big (x);", 24);
    big[n] = '\0';
    write_file(dir, "9000_big.sql", big);
    free(big);
    cr_assert_eq(nt_store_migrate(st, dir, NULL), NT_ETOOBIG);
    cr_assert_not(table_exists(st, "zz_big"));
    cr_assert_eq(migration_rows(st, "9000_big.sql"), 0);
    nt_store_close(st);
}

Test(store, migration_with_nul_byte_is_refused)
{
    char dir[512];
    copy_migrations("mig", dir, sizeof dir);
    nt_store *st = open_fresh("nul.db", dir);
    char p[512];
    join(p, sizeof p, dir, "9000_nul.sql");
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fwrite("CREATE TABLE zz_a (x);\0CREATE TABLE zz_b (x);", 1, 46, f);
    fclose(f);
    cr_assert_eq(nt_store_migrate(st, dir, NULL), NT_EINVAL);
    cr_assert_not(table_exists(st, "zz_a"));
    cr_assert_eq(migration_rows(st, "9000_nul.sql"), 0);
    nt_store_close(st);
}

/* ---- concurrency ---- */

/* Children block on the pipe until the parent closes it, then all open the
 * same fresh database at once. Exit code 0 means nt_store_open returned NT_OK. */
static void race_open(const char *db, const char *dir, int nchild)
{
    int gate[2];
    cr_assert_eq(pipe(gate), 0);
    pid_t pids[8];
    cr_assert_leq(nchild, 8);
    for (int i = 0; i < nchild; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) < 0 && errno == EINTR)
                ;
            nt_store *st = NULL;
            nt_status s = nt_store_open(db, dir, &st);
            nt_store_close(st);
            _exit(s == NT_OK ? 0 : 10 + (int)s);
        }
    }
    close(gate[0]);
    close(gate[1]);

    /* Reap with a deadline, so a hung child fails the test instead of hanging it. */
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int left = nchild;
    int status[8] = {0};
    while (left > 0) {
        for (int i = 0; i < nchild; i++) {
            if (pids[i] <= 0)
                continue;
            int ws;
            pid_t r = waitpid(pids[i], &ws, WNOHANG);
            if (r == pids[i]) {
                status[i] = ws;
                pids[i] = 0;
                left--;
            }
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 30) {
            for (int i = 0; i < nchild; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            cr_assert_fail("children did not finish in 30 s");
        }
        usleep(2000);
    }
    for (int i = 0; i < nchild; i++) {
        cr_assert(WIFEXITED(status[i]), "child %d died", i);
        cr_assert_eq(WEXITSTATUS(status[i]), 0, "child %d: nt_store_open failed, exit %d", i,
                     WEXITSTATUS(status[i]));
    }
}

Test(store, concurrent_processes_apply_each_migration_once)
{
    char dir[512];
    int files = copy_migrations("mig", dir, sizeof dir);
    /* A few more, including a slow one, to widen the window for a race. */
    write_file(dir, "9000_a.sql", "CREATE TABLE zz_a (x);\n");
    write_file(dir, "9001_slow.sql",
               "CREATE TABLE zz_slow (x);\n"
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)\n"
               "INSERT INTO zz_slow SELECT i FROM n;\n");
    write_file(dir, "9002_b.sql", "INSERT INTO zz_a VALUES (1);\n");
    files += 3;

    for (int round = 0; round < 4; round++) {
        char db[512], rel[64];
        snprintf(rel, sizeof rel, "race%d/natter.db", round);
        path_in_tmp(db, sizeof db, rel);
        race_open(db, dir, 3);

        nt_store *st = NULL;
        cr_assert_eq(nt_store_open(db, NULL, &st), NT_OK);
        cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files);
        cr_assert_eq(query_int(st, "SELECT count(DISTINCT name) FROM d1_migrations"), files);
        /* Applied once means the insert in 9002 ran once and 9001's rows exist once. */
        cr_assert_eq(query_int(st, "SELECT count(*) FROM zz_a"), 1);
        cr_assert_eq(query_int(st, "SELECT count(*) FROM zz_slow"), 20000);
        nt_store_close(st);
    }
}

typedef struct {
    const char *db;
    const char *dir;
    nt_status status;
} thread_arg;

static void *thread_open(void *p)
{
    thread_arg *a = p;
    nt_store *st = NULL;
    a->status = nt_store_open(a->db, a->dir, &st);
    nt_store_close(st);
    return NULL;
}

Test(store, concurrent_threads_apply_each_migration_once)
{
    char dir[512];
    int files = copy_migrations("mig", dir, sizeof dir);
    write_file(dir, "9000_a.sql", "CREATE TABLE zz_a (x);\nINSERT INTO zz_a VALUES (1);\n");
    files += 1;
    char db[512];
    path_in_tmp(db, sizeof db, "threads/natter.db");

    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){db, dir, NT_EINTERNAL};
        cr_assert_eq(pthread_create(&th[i], NULL, thread_open, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].status, NT_OK, "thread %d: %d", i, args[i].status);
    }
    nt_store *st = open_fresh("threads/natter.db", NULL);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM d1_migrations"), files);
    cr_assert_eq(query_int(st, "SELECT count(*) FROM zz_a"), 1);
    nt_store_close(st);
}

typedef struct {
    nt_store *st;
    int base;
    int failures;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < 200; i++) {
        sqlite3 *db = nt_store_lock(a->st);
        sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2(db, "INSERT INTO zz_w (v) VALUES (?)", -1, &stmt, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(stmt, 1, a->base + i);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE)
            a->failures++;
        sqlite3_finalize(stmt);
        nt_store_unlock(a->st);
    }
    return NULL;
}

Test(store, lock_serialises_threads_on_one_connection)
{
    nt_store *st = open_fresh("lock.db", NULL);
    cr_assert_eq(exec_step(st, "CREATE TABLE zz_w (v INTEGER UNIQUE)"), SQLITE_DONE);
    pthread_t th[4];
    writer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (writer_arg){st, i * 1000, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].failures, 0);
    }
    cr_assert_eq(query_int(st, "SELECT count(*) FROM zz_w"), 800);
    nt_store_close(st);
}

/* ---- status mapping ---- */

Test(store, status_maps_sqlite_codes)
{
    cr_assert_eq(nt_store_status(SQLITE_OK), NT_OK);
    cr_assert_eq(nt_store_status(SQLITE_ROW), NT_OK);
    cr_assert_eq(nt_store_status(SQLITE_DONE), NT_OK);
    cr_assert_eq(nt_store_status(SQLITE_CONSTRAINT), NT_ECONFLICT);
    cr_assert_eq(nt_store_status(SQLITE_CONSTRAINT_FOREIGNKEY), NT_ECONFLICT);
    cr_assert_eq(nt_store_status(SQLITE_CONSTRAINT_UNIQUE), NT_ECONFLICT);
    cr_assert_eq(nt_store_status(SQLITE_BUSY), NT_EUNAVAIL);
    cr_assert_eq(nt_store_status(SQLITE_BUSY_SNAPSHOT), NT_EUNAVAIL);
    cr_assert_eq(nt_store_status(SQLITE_LOCKED), NT_EUNAVAIL);
    cr_assert_eq(nt_store_status(SQLITE_ERROR), NT_EINTERNAL);
    cr_assert_eq(nt_store_status(SQLITE_CORRUPT), NT_EINTERNAL);
    cr_assert_eq(nt_store_status(SQLITE_IOERR_WRITE), NT_EINTERNAL);
    cr_assert_eq(nt_store_status(SQLITE_MISUSE), NT_EINTERNAL);
}

Test(store, memory_database_opens_and_migrates)
{
    nt_store *st = NULL;
    cr_assert_eq(nt_store_open(":memory:", REAL_MIGRATIONS, &st), NT_OK);
    cr_assert(table_exists(st, "users"));
    cr_assert_eq(migration_rows(st, "0001_init.sql"), 1);
    cr_assert_eq(query_int(st, "PRAGMA foreign_keys"), 1);
    nt_store_close(st);
}

/* ---- the reader connection ---- */

static long long read_count(nt_store *st)
{
    sqlite3 *r = nt_store_lock_read(st);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(r, "SELECT count(*) FROM t", -1, &s, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    nt_store_unlock_read(st);
    return n;
}

Test(store, the_reader_sees_commits_and_never_waits_for_a_writer)
{
    nt_store *st = open_fresh("reader.db", NULL);
    sqlite3 *w = nt_store_lock(st);
    cr_assert_eq(sqlite3_exec(w, "CREATE TABLE t (x INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    nt_store_unlock(st);
    cr_assert_eq(read_count(st), 0);

    /* A writer in the middle of a transaction, holding the store's lock:
     * the reader answers at once with the last commit. */
    w = nt_store_lock(st);
    cr_assert_eq(sqlite3_exec(w, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1)", NULL, NULL, NULL),
                 SQLITE_OK);
    int64_t t0 = nt_clock_mono_ms();
    cr_assert_eq(read_count(st), 0, "the uncommitted row is not visible");
    cr_assert_lt(nt_clock_mono_ms() - t0, 1000, "the reader waited for the writer");
    cr_assert_eq(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    nt_store_unlock(st);
    cr_assert_eq(read_count(st), 1);

    /* The reader cannot write. */
    sqlite3 *r = nt_store_lock_read(st);
    cr_assert_neq(sqlite3_exec(r, "INSERT INTO t VALUES (2)", NULL, NULL, NULL), SQLITE_OK);
    nt_store_unlock_read(st);
    nt_store_close(st);
}

Test(store, in_memory_the_reader_is_the_writer)
{
    nt_store *st = NULL;
    cr_assert_eq(nt_store_open(":memory:", NULL, &st), NT_OK);
    sqlite3 *w = nt_store_lock(st);
    cr_assert_eq(
        sqlite3_exec(w, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)", NULL, NULL, NULL),
        SQLITE_OK);
    nt_store_unlock(st);
    cr_assert_eq(read_count(st), 1);
    nt_store_close(st);
}

/* ---- kept statements ---- */

static const char SELECT_PARAM[] = "SELECT ?1";

Test(store, keeps_a_statement_per_connection_and_resets_it_on_release)
{
    nt_store *st = NULL;
    char path[512];
    path_in_tmp(path, sizeof(path), "stmts.db");
    cr_assert_eq(nt_store_open(path, NULL, &st), NT_OK);
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *a = nt_store_stmt(db, SELECT_PARAM);
    cr_assert_not_null(a);
    sqlite3_bind_int(a, 1, 42);
    cr_assert_eq(sqlite3_step(a), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(a, 0), 42);
    nt_store_stmt_release(a);
    cr_assert_not(sqlite3_stmt_busy(a), "released: reset, holding no read");
    sqlite3_stmt *b = nt_store_stmt(db, SELECT_PARAM);
    cr_assert_eq(a, b, "the same statement again");
    cr_assert_eq(sqlite3_step(b), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_type(b, 0), SQLITE_NULL, "bindings were cleared");
    nt_store_stmt_release(b);
    nt_store_unlock(st);

    /* The reader keeps its own. */
    sqlite3 *rdb = nt_store_lock_read(st);
    sqlite3_stmt *r = nt_store_stmt(rdb, SELECT_PARAM);
    cr_assert_neq(r, a);
    cr_assert_eq(sqlite3_db_handle(r), rdb);
    nt_store_stmt_release(r);
    nt_store_unlock_read(st);
    nt_store_close(st);

    /* A store opened after the close (perhaps at the same address) starts
     * with no statement of the old one. */
    cr_assert_eq(nt_store_open(path, NULL, &st), NT_OK);
    db = nt_store_lock(st);
    sqlite3_stmt *c = nt_store_stmt(db, SELECT_PARAM);
    cr_assert_eq(sqlite3_db_handle(c), db);
    sqlite3_bind_int(c, 1, 7);
    cr_assert_eq(sqlite3_step(c), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(c, 0), 7);
    nt_store_stmt_release(c);
    nt_store_unlock(st);
    nt_store_close(st);
}

Test(store, prepares_for_one_use_on_a_connection_it_does_not_own)
{
    sqlite3 *raw = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &raw), SQLITE_OK);
    sqlite3_stmt *a = nt_store_stmt(raw, SELECT_PARAM);
    cr_assert_not_null(a);
    nt_store_stmt_release(a); /* finalized: a leak or a double free would show under ASan */
    cr_assert_null(nt_store_stmt(raw, "SELECT FROM WHERE"), "bad SQL is refused");
    cr_assert_eq(sqlite3_close(raw), SQLITE_OK, "nothing left unfinalized");
}

Test(store, the_same_query_nested_gets_a_statement_of_its_own)
{
    nt_store *st = NULL;
    char path[512];
    path_in_tmp(path, sizeof(path), "nested.db");
    cr_assert_eq(nt_store_open(path, NULL, &st), NT_OK);
    sqlite3 *db = nt_store_lock(st);
    sqlite3_stmt *outer = nt_store_stmt(db, SELECT_PARAM);
    sqlite3_bind_int(outer, 1, 1);
    cr_assert_eq(sqlite3_step(outer), SQLITE_ROW);

    /* A row callback running the same query must not reset the outer one. */
    sqlite3_stmt *inner = nt_store_stmt(db, SELECT_PARAM);
    cr_assert_not_null(inner);
    cr_assert_neq(inner, outer, "the kept statement is in use: a fresh one");
    sqlite3_bind_int(inner, 1, 2);
    cr_assert_eq(sqlite3_step(inner), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(inner, 0), 2);
    nt_store_stmt_release(inner); /* finalized, not kept */
    cr_assert_eq(sqlite3_column_int(outer, 0), 1, "the outer row is untouched");
    nt_store_stmt_release(outer);

    /* Released, the kept one is handed out again. */
    sqlite3_stmt *again = nt_store_stmt(db, SELECT_PARAM);
    cr_assert_eq(again, outer);
    nt_store_stmt_release(again);
    nt_store_unlock(st);
    nt_store_close(st);
}
