/* nt_store: one writing SQLite connection per process (WAL, foreign keys on,
 * FULL sync) behind one mutex, a read-only connection behind another for
 * reads that must not wait for a writer, and a migration runner that records applied files in
 * d1_migrations exactly as `wrangler d1 migrations apply` does. */
#include "nt_store.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MOD "store"

/* A migration larger than this is refused: ours are a few KiB, and the whole
 * file is held in memory and handed to SQLite in one piece. */
#define NT_STORE_MIGRATION_MAX (1024 * 1024)
/* More files than this in the migrations folder is a mistake, not a schema. */
#define NT_STORE_MIGRATIONS_MAX 10000
#define NT_STORE_PATH_MAX       4096
#define NT_STORE_BUSY_MS        10000

/* Wrangler's table, word for word, so both runners agree about a database. */
static const char D1_MIGRATIONS_DDL[] = "CREATE TABLE IF NOT EXISTS d1_migrations("
                                        "id INTEGER PRIMARY KEY AUTOINCREMENT, "
                                        "name TEXT UNIQUE, "
                                        "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)";

/* Prepared statements kept per connection, keyed by the SQL text's address. */
#define NT_STORE_STMTS 32
typedef struct {
    const char *sql;
    sqlite3_stmt *stmt;
    bool in_use; /* handed out and not yet released */
} stmt_slot;

struct nt_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* The reader: a second connection, so that reads see the last commit
     * without waiting behind a writer (WAL); the writer's own for :memory:. */
    sqlite3 *rdb;
    pthread_mutex_t rmu;
    stmt_slot wstmts[NT_STORE_STMTS]; /* the writer's, under mu */
    stmt_slot rstmts[NT_STORE_STMTS]; /* the reader's, under rmu */
};

/* The open stores, so that a connection leads back to its statement cache. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static nt_store **reg;
static size_t nreg, capreg;

static void reg_add(nt_store *s)
{
    pthread_mutex_lock(&reg_mu);
    if (nreg == capreg) {
        size_t cap = capreg ? capreg * 2 : 8;
        nt_store **grown = realloc(reg, cap * sizeof(*reg));
        NT_ASSERT(grown != NULL);
        reg = grown;
        capreg = cap;
    }
    reg[nreg++] = s;
    pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(nt_store *s)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < nreg; i++) {
        if (reg[i] == s) {
            reg[i] = reg[--nreg];
            break;
        }
    }
    if (nreg == 0) {
        free(reg);
        reg = NULL;
        capreg = 0;
    }
    pthread_mutex_unlock(&reg_mu);
}

/* The statement slots of connection db, or NULL when no open store owns it. */
static stmt_slot *slots_of(sqlite3 *db)
{
    stmt_slot *out = NULL;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < nreg && out == NULL; i++) {
        if (reg[i]->db == db)
            out = reg[i]->wstmts;
        else if (reg[i]->rdb == db)
            out = reg[i]->rstmts;
    }
    pthread_mutex_unlock(&reg_mu);
    return out;
}

sqlite3_stmt *nt_store_stmt(sqlite3 *db, const char *sql)
{
    stmt_slot *slots = slots_of(db);
    stmt_slot *free_slot = NULL;
    for (size_t i = 0; slots != NULL && i < NT_STORE_STMTS; i++) {
        if (slots[i].sql == sql && !slots[i].in_use) {
            slots[i].in_use = true;
            return slots[i].stmt;
        }
        if (slots[i].sql == sql) {
            /* Still in use higher up this thread's stack (a row callback
             * running the same query): a statement of its own, for this use. */
            free_slot = NULL;
            break;
        }
        if (slots[i].sql == NULL && free_slot == NULL)
            free_slot = &slots[i];
    }
    sqlite3_stmt *st = NULL;
    unsigned flags = free_slot != NULL ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(db, sql, -1, flags, &st, NULL) != SQLITE_OK) {
        nt_log_error(MOD, "prepare failed err=\"%s\"", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return NULL;
    }
    if (free_slot != NULL) {
        free_slot->sql = sql;
        free_slot->stmt = st;
        free_slot->in_use = true;
    }
    return st;
}

void nt_store_stmt_release(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    stmt_slot *slots = slots_of(sqlite3_db_handle(st));
    for (size_t i = 0; slots != NULL && i < NT_STORE_STMTS; i++) {
        if (slots[i].stmt == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            slots[i].in_use = false;
            return;
        }
    }
    sqlite3_finalize(st);
}

static void finalize_slots(stmt_slot *slots)
{
    for (size_t i = 0; i < NT_STORE_STMTS; i++) {
        sqlite3_finalize(slots[i].stmt);
        slots[i].sql = NULL;
        slots[i].stmt = NULL;
        slots[i].in_use = false;
    }
}

nt_status nt_store_status(int rc)
{
    /* Extended result codes keep the primary code in the low byte. */
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return NT_OK;
    case SQLITE_CONSTRAINT:
        return NT_ECONFLICT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return NT_EUNAVAIL;
    default:
        return NT_EINTERNAL;
    }
}

sqlite3 *nt_store_lock(nt_store *st)
{
    NT_ASSERT(st != NULL);
    /* An error-checking mutex: locking twice from one thread is a bug, and it
     * aborts here instead of hanging forever. */
    int rc = pthread_mutex_lock(&st->mu);
    NT_ASSERT(rc == 0);
    return st->db;
}

void nt_store_unlock(nt_store *st)
{
    NT_ASSERT(st != NULL);
    int rc = pthread_mutex_unlock(&st->mu);
    NT_ASSERT(rc == 0);
}

sqlite3 *nt_store_lock_read(nt_store *st)
{
    NT_ASSERT(st != NULL);
    if (st->rdb == st->db)
        return nt_store_lock(st);
    int rc = pthread_mutex_lock(&st->rmu);
    NT_ASSERT(rc == 0);
    return st->rdb;
}

void nt_store_unlock_read(nt_store *st)
{
    NT_ASSERT(st != NULL);
    if (st->rdb == st->db) {
        nt_store_unlock(st);
        return;
    }
    int rc = pthread_mutex_unlock(&st->rmu);
    NT_ASSERT(rc == 0);
}

static void init_mutex(pthread_mutex_t *mu)
{
    pthread_mutexattr_t attr;
    NT_ASSERT(pthread_mutexattr_init(&attr) == 0);
    NT_ASSERT(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK) == 0);
    NT_ASSERT(pthread_mutex_init(mu, &attr) == 0);
    pthread_mutexattr_destroy(&attr);
}

/* Opens the reader connection on path, read-only, after the migrations. */
static nt_status open_reader(nt_store *s, const char *path)
{
    const char *file = sqlite3_db_filename(s->db, "main");
    if (file == NULL || file[0] == '\0') {
        s->rdb = s->db; /* in memory: another connection would see another database */
        return NT_OK;
    }
    sqlite3 *r = NULL;
    int rc = sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(r, NT_STORE_BUSY_MS);
    if (rc != SQLITE_OK) {
        nt_log_error(MOD, "cannot open the reader path=%s err=\"%s\"", path,
                     r != NULL ? sqlite3_errmsg(r) : sqlite3_errstr(rc));
        sqlite3_close_v2(r);
        return NT_EUNAVAIL;
    }
    s->rdb = r;
    return NT_OK;
}

/* mkdir -p for the directory part of path, mode 0700 for what it creates. */
static nt_status make_parent_dir(const char *path)
{
    char dir[NT_STORE_PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof dir)
        return NT_EINVAL;
    memcpy(dir, path, n + 1);

    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return NT_OK; /* a bare file name lives in the current directory */
    if (slash == dir)
        return NT_OK; /* a file directly under / */
    *slash = '\0';

    for (char *p = dir + 1;; p++) {
        bool end = (*p == '\0');
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (p > dir && p[-1] != '/' && mkdir(dir, 0700) != 0 && errno != EEXIST) {
            nt_log_error(MOD, "cannot create directory dir=%s err=\"%s\"", dir, strerror(errno));
            return NT_EUNAVAIL;
        }
        if (end)
            break;
        *p = '/';
    }

    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        nt_log_error(MOD, "not a directory dir=%s", dir);
        return NT_EUNAVAIL;
    }
    return NT_OK;
}

/* Runs a one-row PRAGMA (or any statement) and copies its first column as text
 * into out. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        goto out;
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            rc = SQLITE_ERROR;
        goto out;
    }
    const unsigned char *t = sqlite3_column_text(stmt, 0);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
    rc = SQLITE_OK;
out:
    sqlite3_finalize(stmt);
    return rc;
}

/* SQLite does not call the busy handler where waiting could deadlock, and
 * switching a fresh file to WAL while a peer opens it is such a place: it
 * fails at once with SQLITE_BUSY. Retry those, with backoff, up to the busy
 * timeout. */
static int retry_busy(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    int64_t deadline = nt_clock_mono_ms() + NT_STORE_BUSY_MS;
    useconds_t pause = 1000;
    for (;;) {
        int rc =
            out != NULL ? query_text(db, sql, out, cap) : sqlite3_exec(db, sql, NULL, NULL, NULL);
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || nt_clock_mono_ms() >= deadline)
            return rc;
        usleep(pause);
        if (pause < 100000)
            pause *= 2;
    }
}

static nt_status configure(sqlite3 *db, const char *path)
{
    char val[32];
    int rc;

    /* First, so that switching to WAL waits for a peer that is doing the same. */
    rc = sqlite3_busy_timeout(db, NT_STORE_BUSY_MS);
    if (rc != SQLITE_OK)
        goto fail;

    rc = retry_busy(db, "PRAGMA journal_mode=WAL", val, sizeof val);
    if (rc != SQLITE_OK)
        goto fail;
    /* An in-memory database cannot be in WAL mode; it has no file to share. */
    bool memory = strcmp(path, ":memory:") == 0;
    if (strcasecmp(val, "wal") != 0 && !(memory && strcasecmp(val, "memory") == 0)) {
        nt_log_error(MOD, "journal_mode is not wal path=%s mode=%s", path, val);
        return NT_EUNAVAIL;
    }

    rc = sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = query_text(db, "PRAGMA foreign_keys", val, sizeof val);
    if (rc != SQLITE_OK)
        goto fail;
    if (strcmp(val, "1") != 0) {
        nt_log_error(MOD, "foreign keys cannot be enabled path=%s", path);
        return NT_EUNAVAIL;
    }

    rc = sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    return NT_OK;

fail:
    nt_log_error(MOD, "cannot configure database path=%s err=\"%s\"", path, sqlite3_errmsg(db));
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? NT_EUNAVAIL : NT_EINTERNAL;
}

nt_status nt_store_open(const char *path, const char *migrations_dir, nt_store **out)
{
    NT_ASSERT(path != NULL && out != NULL);
    nt_status st = NT_OK;
    sqlite3 *db = NULL;
    nt_store *s = NULL;

    size_t plen = strlen(path);
    if (plen == 0 || plen >= NT_STORE_PATH_MAX) {
        nt_log_error(MOD, "bad database path len=%zu", plen);
        st = NT_EINVAL;
        goto out;
    }
    if (strcmp(path, ":memory:") != 0) {
        st = make_parent_dir(path);
        if (st != NT_OK)
            goto out;
    }

    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        nt_log_error(MOD, "cannot open database path=%s err=\"%s\"", path,
                     db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        st = NT_EUNAVAIL;
        goto out;
    }
    st = configure(db, path);
    if (st != NT_OK)
        goto out;

    s = calloc(1, sizeof *s);
    NT_ASSERT(s != NULL);
    init_mutex(&s->mu);
    init_mutex(&s->rmu);
    s->db = db;
    db = NULL;

    if (migrations_dir != NULL) {
        st = nt_store_migrate(s, migrations_dir, NULL);
        if (st != NT_OK)
            goto out;
    }
    st = open_reader(s, path);
    if (st != NT_OK)
        goto out;

    reg_add(s);
    *out = s;
    s = NULL;
out:
    nt_store_close(s);
    if (db != NULL)
        sqlite3_close_v2(db);
    return st;
}

void nt_store_close(nt_store *st)
{
    if (st == NULL)
        return;
    reg_remove(st);
    finalize_slots(st->wstmts);
    finalize_slots(st->rstmts);
    if (st->rdb != NULL && st->rdb != st->db && sqlite3_close(st->rdb) == SQLITE_BUSY) {
        nt_log_error(MOD, "closing the reader with unfinalized statements");
        sqlite3_close_v2(st->rdb);
    }
    if (sqlite3_close(st->db) == SQLITE_BUSY) {
        /* A caller leaked a statement; let SQLite close once it is finalized. */
        nt_log_error(MOD, "closing with unfinalized statements");
        sqlite3_close_v2(st->db);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->rmu);
    free(st);
}

/* ---- migrations ---- */

typedef struct {
    char *name;
    size_t digits; /* length of the numeric prefix */
} migration_file;

/* True for names matching ^[0-9]+_.*\.sql$. */
static bool migration_name(const char *name, size_t *digits)
{
    size_t d = 0;
    while (name[d] >= '0' && name[d] <= '9')
        d++;
    if (d == 0 || name[d] != '_')
        return false;
    size_t n = strlen(name);
    if (n < d + 1 + 4 || strcmp(name + n - 4, ".sql") != 0)
        return false;
    *digits = d;
    return true;
}

/* Orders by the numeric prefix, compared as a number of any length, then by name. */
static int migration_cmp(const void *pa, const void *pb)
{
    const migration_file *a = pa, *b = pb;
    const char *x = a->name, *y = b->name;
    size_t xn = a->digits, yn = b->digits;
    while (xn > 1 && *x == '0')
        x++, xn--;
    while (yn > 1 && *y == '0')
        y++, yn--;
    if (xn != yn)
        return xn < yn ? -1 : 1;
    int c = memcmp(x, y, xn);
    if (c != 0)
        return c;
    return strcmp(a->name, b->name);
}

static void free_files(migration_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].name);
    free(files);
}

/* Lists the migration files of dir, sorted. */
static nt_status list_migrations(const char *dir, migration_file **out, size_t *count)
{
    nt_status st = NT_OK;
    migration_file *files = NULL;
    size_t n = 0, cap = 0;

    DIR *d = opendir(dir);
    if (d == NULL) {
        nt_log_error(MOD, "cannot read migrations directory dir=%s err=\"%s\"", dir,
                     strerror(errno));
        return NT_EINVAL;
    }
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        size_t digits;
        if (!migration_name(e->d_name, &digits))
            continue;
        if (n == NT_STORE_MIGRATIONS_MAX) {
            nt_log_error(MOD, "too many migration files dir=%s max=%d", dir,
                         NT_STORE_MIGRATIONS_MAX);
            st = NT_ETOOBIG;
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            migration_file *p = realloc(files, cap * sizeof *files);
            NT_ASSERT(p != NULL);
            files = p;
        }
        files[n].name = strdup(e->d_name);
        NT_ASSERT(files[n].name != NULL);
        files[n].digits = digits;
        n++;
    }
    if (errno != 0) {
        nt_log_error(MOD, "cannot list migrations dir=%s err=\"%s\"", dir, strerror(errno));
        st = NT_EINTERNAL;
        goto out;
    }
    if (n > 1)
        qsort(files, n, sizeof *files, migration_cmp);
    *out = files;
    *count = n;
    files = NULL;
    n = 0;
out:
    closedir(d);
    free_files(files, n);
    return st;
}

/* Reads the whole file into a NUL-terminated string. */
static nt_status read_migration(const char *dir, const char *name, char **out)
{
    nt_status st = NT_OK;
    char path[NT_STORE_PATH_MAX];
    char *text = NULL;
    int fd = -1;

    int w = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= sizeof path) {
        nt_log_error(MOD, "migration path too long file=%s", name);
        st = NT_EINVAL;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        nt_log_error(MOD, "cannot open migration file=%s err=\"%s\"", name, strerror(errno));
        st = NT_EINTERNAL;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        nt_log_error(MOD, "migration is not a regular file file=%s", name);
        st = NT_EINVAL;
        goto out;
    }
    if (sb.st_size > NT_STORE_MIGRATION_MAX) {
        nt_log_error(MOD, "migration too large file=%s size=%lld max=%d", name,
                     (long long)sb.st_size, NT_STORE_MIGRATION_MAX);
        st = NT_ETOOBIG;
        goto out;
    }
    size_t want = (size_t)sb.st_size, got = 0;
    text = malloc(want + 1);
    NT_ASSERT(text != NULL);
    while (got < want) {
        ssize_t r = read(fd, text + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            nt_log_error(MOD, "cannot read migration file=%s", name);
            st = NT_EINTERNAL;
            goto out;
        }
        got += (size_t)r;
    }
    text[got] = '\0';
    /* SQLite stops at a NUL; what follows would be silently skipped. */
    if (memchr(text, '\0', got) != NULL) {
        nt_log_error(MOD, "migration contains a NUL byte file=%s", name);
        st = NT_EINVAL;
        goto out;
    }
    *out = text;
    text = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(text);
    return st;
}

/* Sets *applied to whether d1_migrations already records name. */
static int is_applied(sqlite3 *db, const char *name, bool *applied)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM d1_migrations WHERE name = ?", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        *applied = (rc == SQLITE_ROW);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static int record_applied(sqlite3 *db, const char *name)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO d1_migrations (name) values (?)", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_finalize(stmt);
    return rc;
}

/* Applies one file in its own write transaction; *done says whether this call
 * applied it (false when it was, or meanwhile has been, applied elsewhere). */
static nt_status apply_one(sqlite3 *db, const char *dir, const char *name, bool *done)
{
    nt_status st = NT_OK;
    char *text = NULL;
    char *err = NULL;
    bool in_tx = false;
    bool applied = false;

    *done = false;
    int rc = is_applied(db, name, &applied);
    if (rc != SQLITE_OK)
        goto sqlfail;
    if (applied)
        goto out;

    /* Read before taking the write lock, so a slow disk does not hold it. */
    st = read_migration(dir, name, &text);
    if (st != NT_OK)
        goto out;

    rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto sqlfail;
    in_tx = true;
    /* Another process may have applied it while we waited for the lock. */
    rc = is_applied(db, name, &applied);
    if (rc != SQLITE_OK)
        goto sqlfail;
    if (applied)
        goto out;

    rc = sqlite3_exec(db, text, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        goto sqlfail;
    if (sqlite3_get_autocommit(db)) {
        /* The file ended our transaction itself (a COMMIT or END in it); what
         * it did before that cannot be undone here. D1 refuses such files too. */
        nt_log_error(MOD, "migration ended the transaction itself file=%s", name);
        in_tx = false;
        st = NT_EINTERNAL;
        goto out;
    }
    rc = record_applied(db, name);
    if (rc != SQLITE_OK)
        goto sqlfail;
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto sqlfail;
    in_tx = false;
    *done = true;
    nt_log_info(MOD, "migration applied file=%s", name);
    goto out;

sqlfail:
    nt_log_error(MOD, "migration failed file=%s err=\"%s\"", name,
                 err != NULL ? err : sqlite3_errmsg(db));
    st = rc == SQLITE_BUSY ? NT_EUNAVAIL : NT_EINTERNAL;
out:
    /* Some errors (I/O, full disk) roll back by themselves; ask before undoing. */
    if (in_tx && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_free(err);
    free(text);
    return st;
}

nt_status nt_store_migrate(nt_store *st, const char *dir, int *applied)
{
    NT_ASSERT(st != NULL && dir != NULL);
    nt_status status = NT_OK;
    migration_file *files = NULL;
    size_t n = 0;
    int count = 0;

    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        nt_log_error(MOD, "migrations directory does not exist dir=%s", dir);
        return NT_EINVAL;
    }
    status = list_migrations(dir, &files, &n);
    if (status != NT_OK)
        return status;

    sqlite3 *db = nt_store_lock(st);
    int rc = retry_busy(db, D1_MIGRATIONS_DDL, NULL, 0);
    if (rc != SQLITE_OK) {
        nt_log_error(MOD, "cannot create d1_migrations err=\"%s\"", sqlite3_errmsg(db));
        status = rc == SQLITE_BUSY ? NT_EUNAVAIL : NT_EINTERNAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bool done;
        status = apply_one(db, dir, files[i].name, &done);
        if (status != NT_OK)
            goto out;
        count += done;
    }
    if (applied != NULL)
        *applied = count;
out:
    nt_store_unlock(st);
    free_files(files, n);
    return status;
}
