/* Tests of the group committer on a real SQLite file in a temporary directory
 * with schemas/migrations applied (tests run from the repository root).
 * Events are collected instead of published. To know that a send is queued
 * (so that a batch is sure to form), the test holds the store's lock, starts
 * the sender and waits until its thread sleeps: a queued sender sleeps on its
 * own condition, and nothing else it does before that sleeps while the
 * committer is held up (Linux: /proc/self/task/<tid>/stat). */
#include "../../../services/messages/msgs.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MIGRATIONS "schemas/migrations"
#define NUSERS     8
#define ROOM1      "0190f5e2-7b1c-7c3d-8e4f-000000000001"
#define ROOM2      "0190f5e2-7b1c-7c3d-8e4f-000000000002"
#define ROOM3      "0190f5e2-7b1c-7c3d-8e4f-000000000003"
#define ROOM4      "0190f5e2-7b1c-7c3d-8e4f-000000000004"
#define MISSING    "0190f5e2-7b1c-7c3d-8e4f-0000000000ff"

static const char *const rooms[] = {ROOM1, ROOM2, ROOM3, ROOM4};
static const char *const users[NUSERS] = {"user_1", "user_2", "user_3", "user_4",
                                          "user_5", "user_6", "user_7", "user_8"};

static char tmp[256];
static char dbpath[320];
static nt_store *store;
static msgs_committer *committer;

/* ---- collected events ---- */

typedef struct {
    char subject[128];
    char id[NT_ID_LEN];
    char room_id[NT_ID_LEN];
    char user_id[MSGS_USER_ID_MAX];
} event;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gated; /* publish waits while this is true */
    size_t n, cap;
    event *v;
} events = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, NULL};

static void copy_field(const cJSON *obj, const char *key, char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    snprintf(out, outlen, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static nt_status collect(void *arg, const char *subject, const char *data, size_t len)
{
    cr_assert_eq(arg, &events, "pub_arg is passed through");
    cJSON *j = cJSON_ParseWithLength(data, len);
    cr_assert_not_null(j, "the payload is JSON");
    pthread_mutex_lock(&events.mu);
    if (events.n == events.cap) {
        events.cap = events.cap ? 2 * events.cap : 256;
        events.v = realloc(events.v, events.cap * sizeof(*events.v));
        cr_assert_not_null(events.v);
    }
    event *e = &events.v[events.n++];
    snprintf(e->subject, sizeof(e->subject), "%s", subject);
    copy_field(j, "id", e->id, sizeof(e->id));
    copy_field(j, "room_id", e->room_id, sizeof(e->room_id));
    copy_field(j, "user_id", e->user_id, sizeof(e->user_id));
    pthread_cond_broadcast(&events.cv);
    while (events.gated)
        pthread_cond_wait(&events.cv, &events.mu);
    pthread_mutex_unlock(&events.mu);
    cJSON_Delete(j);
    return NT_OK;
}

static size_t events_count(void)
{
    pthread_mutex_lock(&events.mu);
    size_t n = events.n;
    pthread_mutex_unlock(&events.mu);
    return n;
}

/* The number of events once every batch acknowledged so far has published
 * its events: the committer publishes under the store's lock. */
static size_t events_settled(void)
{
    nt_store_lock(store);
    nt_store_unlock(store);
    return events_count();
}

static void events_gate(bool gated)
{
    pthread_mutex_lock(&events.mu);
    events.gated = gated;
    pthread_cond_broadcast(&events.cv);
    pthread_mutex_unlock(&events.mu);
}

/* Waits until at least n events have been published (or are being). */
static void events_wait(size_t n)
{
    pthread_mutex_lock(&events.mu);
    while (events.n < n)
        pthread_cond_wait(&events.cv, &events.mu);
    pthread_mutex_unlock(&events.mu);
}

/* ---- the store ---- */

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
    sqlite3 *db = nt_store_lock_read(store);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, text, -1, &s, NULL), SQLITE_OK, "%s", text);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    nt_store_unlock_read(store);
    return n;
}

static bool stored(const char *id)
{
    msgs_message m = {0};
    sqlite3 *db = nt_store_lock_read(store);
    nt_status st = msgs_db_get(db, id, &m);
    nt_store_unlock_read(store);
    cr_assert(st == NT_OK || st == NT_ENOTFOUND);
    msgs_message_clear(&m);
    return st == NT_OK;
}

static void setup(void)
{
    nt_log_set_level(NT_LOG_ERROR);
    snprintf(tmp, sizeof(tmp), "/tmp/msgs_commit_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
    snprintf(dbpath, sizeof(dbpath), "%s/natter.db", tmp);
    cr_assert_eq(nt_store_open(dbpath, MIGRATIONS, &store), NT_OK,
                 "cannot open the store: run the unit tests from the repository root");
    char q[256];
    for (int i = 0; i < NUSERS; i++) {
        snprintf(q, sizeof(q),
                 "INSERT INTO users (id, clerk_user_id, username, email) "
                 "VALUES ('u%d', '%s', 'name%d', 'u%d@example.com')",
                 i, users[i], i, i);
        sql(q);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(q, sizeof(q),
                 "INSERT INTO chat_rooms (id, name, created_by) VALUES ('%s', 'r%d', 'user_1')",
                 rooms[i], i);
        sql(q);
    }
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
    events_gate(false);
    msgs_committer_destroy(committer);
    committer = NULL;
    nt_store_close(store);
    store = NULL;
    free(events.v);
    events.v = NULL;
    events.n = events.cap = 0;
    if (tmp[0] != '\0')
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(msgs_commit, .init = setup, .fini = teardown, .timeout = 30);

static void start_committer(size_t max_batch, bool publish)
{
    cr_assert_eq(msgs_committer_create(store, max_batch, publish ? collect : NULL,
                                       publish ? &events : NULL, &committer),
                 NT_OK);
}

static void stats(uint64_t *commits, uint64_t *sends)
{
    msgs_committer_stats(committer, commits, sends);
}

/* ---- threads ---- */

/* The state of a thread as Linux reports it ('S' sleeping, 'R' running). */
static char task_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold anything */
    return p != NULL && p[1] == ' ' ? p[2] : '?';
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until every thread of tids has been asleep three times in a row. */
static void wait_asleep(const pid_t *tids, size_t n)
{
    int64_t deadline = nt_clock_mono_ms() + 10000;
    int streak = 0;
    while (streak < 3) {
        bool all = true;
        for (size_t i = 0; i < n && all; i++)
            all = task_state(tids[i]) == 'S';
        streak = all ? streak + 1 : 0;
        cr_assert_lt(nt_clock_mono_ms(), deadline, "the senders never went to sleep");
        pause_ms(1);
    }
}

/* One sending thread: count sends of n (content numbered), results kept. */
typedef struct {
    pthread_t th;
    char room[NT_ID_LEN];
    const char *user;
    char ref[MSGS_CLIENT_REF_MAX + 1]; /* "" for none */
    char content[64];
    int count;
    atomic_int tid;
    atomic_bool started, finished;
    /* The results, one per send. */
    nt_status st[32];
    bool dup[32];
    char id[32][NT_ID_LEN];
    char err[32][200];
} sender;

static void *sender_main(void *arg)
{
    sender *s = arg;
    atomic_store(&s->tid, (int)syscall(SYS_gettid));
    atomic_store(&s->started, true);
    for (int i = 0; i < s->count; i++) {
        char content[96];
        snprintf(content, sizeof(content), "%s#%d", s->content, i);
        msgs_new n = {s->room, s->user, content, "text", s->ref[0] != '\0' ? s->ref : NULL};
        msgs_message m = {0};
        s->st[i] = msgs_committer_send(committer, &n, &m, &s->dup[i], s->err[i], sizeof(s->err[i]));
        if (s->st[i] == NT_OK) {
            memcpy(s->id[i], m.id, NT_ID_LEN);
            /* What the sender gets back is what it sent (or the first send). */
            if (strcmp(m.room_id, s->room) != 0 || strcmp(m.user_id, s->user) != 0 ||
                (!s->dup[i] && strcmp(m.content, content) != 0))
                s->st[i] = NT_EINTERNAL;
        }
        msgs_message_clear(&m);
    }
    atomic_store(&s->finished, true);
    return NULL;
}

static void sender_init(sender *s, const char *room, const char *user, const char *ref,
                        const char *content, int count)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->room, sizeof(s->room), "%s", room);
    s->user = user;
    snprintf(s->ref, sizeof(s->ref), "%s", ref != NULL ? ref : "");
    snprintf(s->content, sizeof(s->content), "%s", content);
    s->count = count;
    cr_assert_leq(count, 32);
}

static void sender_start(sender *s)
{
    cr_assert_eq(pthread_create(&s->th, NULL, sender_main, s), 0);
    while (!atomic_load(&s->started))
        sched_yield();
}

static void sender_join(sender *s)
{
    cr_assert_eq(pthread_join(s->th, NULL), 0);
}

/* With the store's lock held, starts each sender in turn and waits until it
 * is queued; then lets the committer go and waits for them all. The sends
 * form one batch when there are no more than max_batch of them. */
static void one_batch(sender *s, size_t n)
{
    nt_store_lock(store);
    for (size_t i = 0; i < n; i++) {
        sender_start(&s[i]);
        pid_t tid = atomic_load(&s[i].tid);
        wait_asleep(&tid, 1);
    }
    nt_store_unlock(store);
    for (size_t i = 0; i < n; i++)
        sender_join(&s[i]);
}

/* ---- grouping ---- */

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(msgs_commit, concurrent_sends_are_stored_once_in_groups)
{
    enum { THREADS = 64, EACH = 20, TOTAL = THREADS * EACH };
    start_committer(128, true);
    static sender s[THREADS];
    for (int t = 0; t < THREADS; t++) {
        char content[32];
        snprintf(content, sizeof(content), "t%d", t);
        sender_init(&s[t], rooms[t % 4], users[t % NUSERS], NULL, content, EACH);
    }
    /* Every thread's first send is queued before the committer may begin:
     * the first transaction holds at least all 64 of them. */
    nt_store_lock(store);
    pid_t tids[THREADS];
    for (int t = 0; t < THREADS; t++) {
        sender_start(&s[t]);
        tids[t] = atomic_load(&s[t].tid);
    }
    wait_asleep(tids, THREADS);
    nt_store_unlock(store);
    for (int t = 0; t < THREADS; t++)
        sender_join(&s[t]);

    static char ids[TOTAL][NT_ID_LEN];
    int k = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < EACH; i++) {
            cr_assert_eq(s[t].st[i], NT_OK, "thread %d send %d: %s", t, i, s[t].err[i]);
            cr_assert_not(s[t].dup[i]);
            memcpy(ids[k++], s[t].id[i], NT_ID_LEN);
        }
    }
    qsort(ids, TOTAL, NT_ID_LEN, cmp_id);
    for (int i = 1; i < TOTAL; i++)
        cr_assert_str_neq(ids[i], ids[i - 1], "an id was returned twice");
    cr_assert_eq(count("SELECT count(*) FROM messages"), TOTAL, "every send stored once");
    for (int i = 0; i < TOTAL; i++)
        cr_assert(stored(ids[i]), "returned id %s is stored", ids[i]);

    uint64_t commits = 0, sends = 0;
    stats(&commits, &sends);
    cr_assert_eq(sends, (uint64_t)TOTAL);
    cr_assert_lt(commits, sends, "sends were grouped (%llu commits)", (unsigned long long)commits);
    cr_assert_leq(commits, sends - (THREADS - 1), "the first 64 sends went in one commit");

    /* One event per message, each room's in id (commit) order. */
    cr_assert_eq(events_settled(), (size_t)TOTAL);
    char last[4][NT_ID_LEN] = {"", "", "", ""};
    for (size_t i = 0; i < events.n; i++) {
        const event *e = &events.v[i];
        int r = -1;
        for (int j = 0; j < 4; j++)
            r = strcmp(e->room_id, rooms[j]) == 0 ? j : r;
        cr_assert_geq(r, 0);
        char want[128];
        snprintf(want, sizeof(want), "chat.room.%s.message_received", rooms[r]);
        cr_assert_str_eq(e->subject, want);
        cr_assert_gt(strcmp(e->id, last[r]), 0, "event %zu out of order", i);
        memcpy(last[r], e->id, NT_ID_LEN);
    }
}

Test(msgs_commit, a_batch_of_one_commits_each_send_alone)
{
    enum { THREADS = 8, EACH = 5 };
    start_committer(1, false);
    static sender s[THREADS];
    nt_store_lock(store);
    pid_t tids[THREADS];
    for (int t = 0; t < THREADS; t++) {
        sender_init(&s[t], ROOM1, users[t], NULL, "alone", EACH);
        sender_start(&s[t]);
        tids[t] = atomic_load(&s[t].tid);
    }
    wait_asleep(tids, THREADS);
    nt_store_unlock(store);
    for (int t = 0; t < THREADS; t++) {
        sender_join(&s[t]);
        for (int i = 0; i < EACH; i++) {
            cr_assert_eq(s[t].st[i], NT_OK);
            cr_assert(stored(s[t].id[i]));
        }
    }
    uint64_t commits = 0, sends = 0;
    stats(&commits, &sends);
    cr_assert_eq(sends, (uint64_t)(THREADS * EACH));
    cr_assert_eq(commits, sends);
    cr_assert_eq(count("SELECT count(*) FROM messages"), THREADS * EACH);
}

/* ---- client_ref ---- */

Test(msgs_commit, a_repeated_client_ref_returns_the_first_message)
{
    start_committer(128, true);
    sender s[4];
    sender_init(&s[0], ROOM1, "user_1", "dup-1", "first", 1);
    sender_init(&s[1], ROOM1, "user_2", NULL, "other", 1);
    sender_init(&s[2], ROOM1, "user_1", "dup-1", "second", 1);
    sender_init(&s[3], ROOM1, "user_1", "dup-1", "third", 1);
    one_batch(s, 4);
    uint64_t commits = 0, sends = 0;
    stats(&commits, &sends);
    cr_assert_eq(commits, 1, "one batch");
    cr_assert_eq(sends, 2, "new messages only: the duplicates are not counted");

    int fresh = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(s[i].st[0], NT_OK, "%d: %s", i, s[i].err[0]);
        fresh += !s[i].dup[0];
    }
    cr_assert_eq(fresh, 2, "two messages are new, two are the first again");
    cr_assert_str_eq(s[2].id[0], s[0].id[0]);
    cr_assert_str_eq(s[3].id[0], s[0].id[0]);
    cr_assert_eq(count("SELECT count(*) FROM messages WHERE client_ref = 'dup-1'"), 1);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);

    /* Events: one per new message, in id order. */
    cr_assert_eq(events_settled(), 2);
    cr_assert_lt(strcmp(events.v[0].id, events.v[1].id), 0);

    /* In a later batch, the same. */
    sender again;
    sender_init(&again, ROOM1, "user_1", "dup-1", "fourth", 1);
    one_batch(&again, 1);
    cr_assert_eq(again.st[0], NT_OK);
    cr_assert(again.dup[0]);
    cr_assert_str_eq(again.id[0], s[0].id[0]);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);
    cr_assert_eq(events_settled(), 2, "a duplicate publishes nothing");

    /* Another user's same reference is their own. */
    sender mine;
    sender_init(&mine, ROOM1, "user_3", "dup-1", "mine", 1);
    one_batch(&mine, 1);
    cr_assert_eq(mine.st[0], NT_OK);
    cr_assert_not(mine.dup[0]);
    cr_assert_str_neq(mine.id[0], s[0].id[0]);
    cr_assert_eq(events_settled(), 3);
}

Test(msgs_commit, a_client_ref_used_in_another_room_conflicts)
{
    start_committer(128, true);
    sender a, b;
    sender_init(&a, ROOM1, "user_1", "ref-x", "here", 1);
    one_batch(&a, 1);
    cr_assert_eq(a.st[0], NT_OK);
    sender_init(&b, ROOM2, "user_1", "ref-x", "there", 1);
    one_batch(&b, 1);
    cr_assert_eq(b.st[0], NT_ECONFLICT);
    cr_assert_str_eq(b.err[0], "client_ref 'ref-x' was already used for a message in another room");

    /* Both in one batch: whichever is first is stored, the other conflicts. */
    sender s[2];
    sender_init(&s[0], ROOM3, "user_2", "ref-y", "one", 1);
    sender_init(&s[1], ROOM4, "user_2", "ref-y", "two", 1);
    one_batch(s, 2);
    int won_i = s[0].st[0] == NT_OK ? 0 : 1;
    cr_assert_eq(s[won_i].st[0], NT_OK);
    cr_assert_eq(s[1 - won_i].st[0], NT_ECONFLICT);
    const char *won = won_i == 0 ? ROOM3 : ROOM4;
    char q[200];
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM messages WHERE client_ref = 'ref-y' AND room_id = '%s'", won);
    cr_assert_eq(count(q), 1);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);
    cr_assert_eq(events_settled(), 2);
}

/* ---- failures ---- */

Test(msgs_commit, a_missing_room_fails_only_that_send)
{
    start_committer(128, true);
    sender s[3];
    sender_init(&s[0], ROOM1, "user_1", NULL, "a", 1);
    sender_init(&s[1], MISSING, "user_1", NULL, "lost", 1);
    sender_init(&s[2], ROOM1, "user_2", NULL, "b", 1);
    one_batch(s, 3);
    cr_assert_eq(s[0].st[0], NT_OK);
    cr_assert_eq(s[2].st[0], NT_OK);
    cr_assert_eq(s[1].st[0], NT_ENOTFOUND);
    cr_assert_str_eq(s[1].err[0], "room " MISSING " does not exist");
    cr_assert(stored(s[0].id[0]) && stored(s[2].id[0]));
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);
    uint64_t commits = 0;
    stats(&commits, NULL);
    cr_assert_eq(commits, 1);
    cr_assert_eq(events_settled(), 2);
}

Test(msgs_commit, a_row_a_trigger_refuses_fails_only_that_send)
{
    sql("CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.content LIKE 'refused%' "
        "BEGIN SELECT RAISE(ABORT, 'refused by policy'); END");
    start_committer(128, true);
    sender s[3];
    sender_init(&s[0], ROOM1, "user_1", "ok-1", "fine", 1);
    sender_init(&s[1], ROOM1, "user_2", "bad-1", "refused", 1);
    sender_init(&s[2], ROOM1, "user_3", "ok-2", "fine too", 1);
    one_batch(s, 3);
    cr_assert_eq(s[0].st[0], NT_OK);
    cr_assert_eq(s[2].st[0], NT_OK);
    cr_assert_eq(s[1].st[0], NT_EINVAL);
    cr_assert_str_eq(s[1].err[0], "the store refused the message");
    cr_assert(stored(s[0].id[0]) && stored(s[2].id[0]));
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);
    uint64_t commits = 0, sends = 0;
    stats(&commits, &sends);
    cr_assert_eq(commits, 1);
    cr_assert_eq(sends, 2, "the refused row is not counted");
    cr_assert_eq(events_settled(), 2);
}

/* Sends a, breaker, b in one batch and checks that none of them was stored. */
static void check_batch_fails(const char *breaker, const char *why)
{
    sender s[3];
    sender_init(&s[0], ROOM1, "user_1", "ok-a", "fine", 1);
    sender_init(&s[1], ROOM1, "user_2", NULL, breaker, 1);
    sender_init(&s[2], ROOM2, "user_3", "ok-b", "fine too", 1);
    one_batch(s, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s[i].st[0], NT_EUNAVAIL, "send %d: never acknowledge what did not commit", i);
        cr_assert_str_eq(s[i].err[0], why);
    }
    cr_assert_eq(count("SELECT count(*) FROM messages"), 0);
    uint64_t commits = 0, sends = 0;
    stats(&commits, &sends);
    cr_assert_eq(commits, 0);
    cr_assert_eq(sends, 0);
    cr_assert_eq(events_settled(), 0);

    /* The committer goes on: the same sends again are stored. */
    sender_init(&s[0], ROOM1, "user_1", "ok-a", "fine", 1);
    sender_init(&s[2], ROOM2, "user_3", "ok-b", "fine too", 1);
    sender_start(&s[0]);
    sender_start(&s[2]);
    sender_join(&s[0]);
    sender_join(&s[2]);
    cr_assert_eq(s[0].st[0], NT_OK);
    cr_assert_eq(s[2].st[0], NT_OK);
    cr_assert_not(s[0].dup[0]);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 2);
    cr_assert_eq(events_settled(), 2);
}

Test(msgs_commit, a_store_failure_fails_the_whole_batch)
{
    /* A failure that is not about the row: the batch cannot be trusted. */
    sql("CREATE TRIGGER explode BEFORE INSERT ON messages WHEN NEW.content LIKE 'explode%' "
        "BEGIN SELECT zeroblob(2000000000); END");
    start_committer(128, true);
    check_batch_fails("explode", "the store failed");
}

Test(msgs_commit, a_rolled_back_transaction_fails_the_whole_batch)
{
    /* SQLite ends the transaction itself: the jobs before were undone. */
    sql("CREATE TRIGGER undo BEFORE INSERT ON messages WHEN NEW.content LIKE 'undo%' "
        "BEGIN SELECT RAISE(ROLLBACK, 'undone'); END");
    start_committer(128, true);
    check_batch_fails("undo", "the store failed");
}

static int refuse_commit(void *arg)
{
    return atomic_load((atomic_bool *)arg) ? 1 : 0;
}

Test(msgs_commit, a_failed_commit_fails_every_send)
{
    static atomic_bool refuse;
    atomic_store(&refuse, true);
    sqlite3 *db = nt_store_lock(store);
    sqlite3_commit_hook(db, refuse_commit, &refuse);
    nt_store_unlock(store);
    start_committer(128, true);
    sender s[3];
    for (int i = 0; i < 3; i++)
        sender_init(&s[i], ROOM1, users[i], NULL, "never", 1);
    one_batch(s, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s[i].st[0], NT_EUNAVAIL);
        cr_assert_str_eq(s[i].err[0], "the store failed to commit");
    }
    cr_assert_eq(count("SELECT count(*) FROM messages"), 0);
    cr_assert_eq(events_settled(), 0);
    uint64_t commits = 1;
    stats(&commits, NULL);
    cr_assert_eq(commits, 0);

    atomic_store(&refuse, false);
    sender ok;
    sender_init(&ok, ROOM1, "user_1", NULL, "now", 1);
    one_batch(&ok, 1);
    cr_assert_eq(ok.st[0], NT_OK);
    cr_assert(stored(ok.id[0]));
    cr_assert_eq(events_settled(), 1);
}

Test(msgs_commit, a_write_lock_held_elsewhere_fails_the_batch_as_busy)
{
    /* Another process holds the write lock past the busy timeout (shortened). */
    sqlite3 *db = nt_store_lock(store);
    sqlite3_busy_timeout(db, 50);
    nt_store_unlock(store);
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    start_committer(128, true);
    sender s;
    sender_init(&s, ROOM1, "user_1", NULL, "blocked", 1);
    one_batch(&s, 1);
    cr_assert_eq(s.st[0], NT_EUNAVAIL);
    cr_assert_str_eq(s.err[0], "the store is busy");
    cr_assert_eq(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    sender_init(&s, ROOM1, "user_1", NULL, "free", 1);
    one_batch(&s, 1);
    cr_assert_eq(s.st[0], NT_OK);
    cr_assert_eq(count("SELECT count(*) FROM messages"), 1);
}

/* ---- stopping ---- */

static void *destroy_main(void *arg)
{
    atomic_int *tid = arg;
    atomic_store(tid, (int)syscall(SYS_gettid));
    msgs_committer_destroy(committer);
    return NULL;
}

Test(msgs_commit, destroy_commits_what_is_queued_and_refuses_later_sends)
{
    start_committer(128, true);
    /* A first send; its event holds the committer inside the batch. */
    events_gate(true);
    sender first;
    sender_init(&first, ROOM1, "user_1", NULL, "first", 1);
    sender_start(&first);
    sender_join(&first); /* acknowledged before its event is published */
    cr_assert_eq(first.st[0], NT_OK);
    events_wait(1);

    /* Sends queued behind it. */
    sender q[3];
    pid_t tids[3];
    for (int i = 0; i < 3; i++) {
        sender_init(&q[i], ROOM2, users[i], NULL, "queued", 1);
        sender_start(&q[i]);
        tids[i] = atomic_load(&q[i].tid);
    }
    wait_asleep(tids, 3);

    /* Destroy begins: it sets stopping, then waits for the thread. Once the
     * destroying thread sleeps it is in that wait, so stopping is set. */
    pthread_t d;
    atomic_int dtid = 0;
    cr_assert_eq(pthread_create(&d, NULL, destroy_main, &dtid), 0);
    while (atomic_load(&dtid) == 0)
        sched_yield();
    pid_t dt = atomic_load(&dtid);
    wait_asleep(&dt, 1);

    msgs_new late = {ROOM1, "user_1", "too late", "text", NULL};
    msgs_message m = {0};
    bool dup = true;
    char err[200] = "";
    cr_assert_eq(msgs_committer_send(committer, &late, &m, &dup, err, sizeof(err)), NT_EUNAVAIL);
    cr_assert_str_eq(err, "the messages service is stopping");
    cr_assert_null(m.content, "out untouched");

    /* Let the committer go: it commits the queued sends, then ends. */
    events_gate(false);
    for (int i = 0; i < 3; i++)
        sender_join(&q[i]);
    cr_assert_eq(pthread_join(d, NULL), 0);
    committer = NULL;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(q[i].st[0], NT_OK, "%d: %s", i, q[i].err[0]);
        cr_assert(stored(q[i].id[0]));
    }
    cr_assert(stored(first.id[0]));
    cr_assert_eq(count("SELECT count(*) FROM messages"), 4);
    cr_assert_eq(count("SELECT count(*) FROM messages WHERE content = 'too late'"), 0);
    cr_assert_eq(events_settled(), 4);
}

Test(msgs_commit, destroy_of_an_idle_committer_and_of_null)
{
    msgs_committer_destroy(NULL);
    start_committer(MSGS_BATCH_DEFAULT, false);
    msgs_committer_destroy(committer);
    committer = NULL;
    cr_assert_eq(count("SELECT count(*) FROM messages"), 0);
}
