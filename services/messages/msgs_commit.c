/* The group committer: one thread that commits the sends queued while the
 * previous transaction was being committed in one transaction of their own,
 * wakes each sender only once that transaction is durable, and then publishes
 * message_received for the new messages in commit order. */
#include "msgs.h"

#include "nt_log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MOD "messages"

#define ERR_LEN 200

/* One send waiting for its transaction; the sender frees it once answered. */
typedef struct msgs_job {
    const msgs_new *n; /* borrowed: the sender waits */
    msgs_message out;  /* the result, owned by the job until the sender takes it */
    bool duplicate;
    nt_status status;
    char err[ERR_LEN];
    bool done;
    pthread_cond_t cv;
    struct msgs_job *next;
} msgs_job;

struct msgs_committer {
    nt_store *store;
    size_t max_batch;
    msgs_publish_fn pub;
    void *pub_arg;

    pthread_mutex_t mu;  /* everything below */
    pthread_cond_t cv;   /* the queue has jobs, or stopping */
    pthread_cond_t idle; /* no sender is inside msgs_committer_send */
    msgs_job *head, *tail;
    bool stopping;
    size_t inflight; /* senders inside msgs_committer_send */
    uint64_t commits, sends;

    pthread_t thread;
};

/* A batch as the committer thread works on it. */
typedef struct {
    msgs_job **jobs;
    msgs_message *msgs; /* the committer's own copy of each new message */
    bool *fresh;        /* msgs[i] is a new message to announce */
    size_t n;
} batch;

static char *dup_or_null(const char *s)
{
    if (s == NULL)
        return NULL;
    char *c = strdup(s);
    NT_ASSERT(c != NULL);
    return c;
}

static void message_copy(msgs_message *dst, const msgs_message *src)
{
    *dst = *src;
    dst->username = dup_or_null(src->username);
    dst->content = dup_or_null(src->content);
    dst->client_ref = dup_or_null(src->client_ref);
}

static void fail_job(msgs_job *j, nt_status st, const char *fmt, const char *arg)
{
    msgs_message_clear(&j->out);
    j->duplicate = false;
    j->status = st;
    snprintf(j->err, sizeof(j->err), fmt, arg);
}

/* Runs one job inside the batch's transaction. NT_OK when the job has its
 * answer (a message, a duplicate, or a failure of its own); any other status
 * means the transaction cannot be trusted and the whole batch fails. */
static nt_status run_job(sqlite3 *db, msgs_job *j, msgs_message *mine, bool *fresh)
{
    const msgs_new *n = j->n;
    *fresh = false;
    if (n->client_ref != NULL) {
        /* Same connection, same transaction: an earlier job of this batch
         * with the same reference is seen here. */
        nt_status st = msgs_db_by_client_ref(db, n->user_id, n->client_ref, &j->out);
        if (st == NT_OK) {
            if (strcmp(j->out.room_id, n->room_id) == 0) {
                j->duplicate = true;
                j->status = NT_OK;
            } else {
                fail_job(j, NT_ECONFLICT,
                         "client_ref '%s' was already used for a message in another room",
                         n->client_ref);
            }
            return NT_OK;
        }
        if (st != NT_ENOTFOUND)
            return st;
    }
    nt_status st = msgs_db_insert(db, n, &j->out);
    if (sqlite3_get_autocommit(db))
        return NT_EUNAVAIL; /* SQLite ended the transaction: earlier jobs are undone */
    switch (st) {
    case NT_OK:
        j->status = NT_OK;
        message_copy(mine, &j->out);
        *fresh = true;
        return NT_OK;
    case NT_ENOTFOUND:
        fail_job(j, NT_ENOTFOUND, "room %s does not exist", n->room_id);
        return NT_OK;
    case NT_ECONFLICT:
        /* The unique index caught a reference the lookup above did not see
         * (only possible if lookup and insert ever stop sharing one
         * transaction): answer exactly as the lookup would have. */
        if (msgs_db_by_client_ref(db, n->user_id, n->client_ref, &j->out) == NT_OK &&
            strcmp(j->out.room_id, n->room_id) == 0) {
            j->duplicate = true;
            j->status = NT_OK;
            return NT_OK;
        }
        fail_job(j, NT_ECONFLICT, "client_ref '%s' was already used for a message in another room",
                 n->client_ref);
        return NT_OK;
    case NT_EINVAL:
        /* A rule of the schema refused this one row; the statement is undone. */
        fail_job(j, NT_EINVAL, "%s", "the store refused the message");
        return NT_OK;
    default:
        return st;
    }
}

/* Takes up to max_batch jobs from the queue (never empty here). */
static void take_batch(msgs_committer *c, batch *b)
{
    pthread_mutex_lock(&c->mu);
    b->n = 0;
    while (c->head != NULL && b->n < c->max_batch) {
        b->jobs[b->n++] = c->head;
        c->head = c->head->next;
    }
    if (c->head == NULL)
        c->tail = NULL;
    pthread_mutex_unlock(&c->mu);
}

/* Wakes every sender of the batch; counts the transaction when it committed. */
static void finish_batch(msgs_committer *c, batch *b, bool committed)
{
    pthread_mutex_lock(&c->mu);
    if (committed) {
        c->commits++;
        for (size_t i = 0; i < b->n; i++)
            c->sends += b->fresh[i] ? 1 : 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        b->jobs[i]->done = true;
        pthread_cond_signal(&b->jobs[i]->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

/* One transaction: begin, every job in arrival order, commit, wake, publish. */
static void commit_one(msgs_committer *c, batch *b)
{
    sqlite3 *db = nt_store_lock(c->store);
    /* The batch is taken once the write lock is ours, so that the sends that
     * arrived while it was busy (another batch, an edit, another process)
     * join this transaction. */
    nt_status st = msgs_db_begin(db);
    take_batch(c, b);
    const char *why = st == NT_EUNAVAIL ? "the store is busy" : "the store failed";
    for (size_t i = 0; i < b->n; i++) {
        b->fresh[i] = false;
        b->jobs[i]->status = NT_EINTERNAL;
    }
    for (size_t i = 0; i < b->n && st == NT_OK; i++) {
        st = run_job(db, b->jobs[i], &b->msgs[i], &b->fresh[i]);
        why = "the store failed";
    }
    if (st == NT_OK) {
        st = msgs_db_commit(db);
        why = "the store failed to commit";
    }
    if (st != NT_OK) {
        /* Never acknowledge what did not commit: every job of the batch
         * fails, including those whose statements went through. */
        msgs_db_rollback(db);
        nt_log_error(MOD, "batch not stored sends=%zu why=\"%s\"", b->n, why);
        for (size_t i = 0; i < b->n; i++) {
            fail_job(b->jobs[i], NT_EUNAVAIL, "%s", why);
            if (b->fresh[i])
                msgs_message_clear(&b->msgs[i]);
            b->fresh[i] = false;
        }
    }
    finish_batch(c, b, st == NT_OK);
    /* After the waiters, still under the store's lock, so that the events of
     * this instance leave in commit order. */
    for (size_t i = 0; i < b->n; i++) {
        if (!b->fresh[i])
            continue;
        if (c->pub != NULL)
            msgs_publish_message(c->pub, c->pub_arg, "message_received", &b->msgs[i]);
        msgs_message_clear(&b->msgs[i]);
    }
    nt_store_unlock(c->store);
}

static void *committer_main(void *arg)
{
    msgs_committer *c = arg;
    batch b;
    b.jobs = calloc(c->max_batch, sizeof(*b.jobs));
    b.msgs = calloc(c->max_batch, sizeof(*b.msgs));
    b.fresh = calloc(c->max_batch, sizeof(*b.fresh));
    NT_ASSERT(b.jobs != NULL && b.msgs != NULL && b.fresh != NULL);
    b.n = 0;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        /* Stopping: what is queued is still committed, then the thread ends. */
        bool empty = c->head == NULL;
        pthread_mutex_unlock(&c->mu);
        if (empty)
            break;
        commit_one(c, &b);
    }
    free(b.jobs);
    free(b.msgs);
    free(b.fresh);
    return NULL;
}

nt_status msgs_committer_create(nt_store *store, size_t max_batch, msgs_publish_fn pub,
                                void *pub_arg, msgs_committer **out)
{
    NT_ASSERT(store != NULL && out != NULL && max_batch >= 1);
    msgs_committer *c = calloc(1, sizeof(*c));
    NT_ASSERT(c != NULL);
    c->store = store;
    c->max_batch = max_batch;
    c->pub = pub;
    c->pub_arg = pub_arg;
    NT_ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
    NT_ASSERT(pthread_cond_init(&c->cv, NULL) == 0);
    NT_ASSERT(pthread_cond_init(&c->idle, NULL) == 0);
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        nt_log_error(MOD, "cannot start the committer thread");
        pthread_cond_destroy(&c->idle);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NT_EINTERNAL;
    }
    *out = c;
    return NT_OK;
}

nt_status msgs_committer_send(msgs_committer *c, const msgs_new *n, msgs_message *out,
                              bool *duplicate, char *err, size_t errlen)
{
    NT_ASSERT(c != NULL && n != NULL && out != NULL && duplicate != NULL);
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "the messages service is stopping");
        return NT_EUNAVAIL;
    }
    msgs_job *j = calloc(1, sizeof(*j));
    NT_ASSERT(j != NULL);
    j->n = n;
    j->status = NT_EINTERNAL;
    NT_ASSERT(pthread_cond_init(&j->cv, NULL) == 0);
    c->inflight++;
    if (c->tail != NULL)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    pthread_cond_signal(&c->cv);
    while (!j->done)
        pthread_cond_wait(&j->cv, &c->mu);
    /* The last touch of c: destroy waits for this before freeing it. */
    if (--c->inflight == 0 && c->stopping)
        pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->mu);

    nt_status st = j->status;
    if (st == NT_OK) {
        *out = j->out; /* the strings move to the caller */
        *duplicate = j->duplicate;
    } else {
        msgs_message_clear(&j->out);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s", j->err);
    }
    pthread_cond_destroy(&j->cv);
    free(j);
    return st;
}

void msgs_committer_stats(msgs_committer *c, uint64_t *commits, uint64_t *sends)
{
    pthread_mutex_lock(&c->mu);
    if (commits != NULL)
        *commits = c->commits;
    if (sends != NULL)
        *sends = c->sends;
    pthread_mutex_unlock(&c->mu);
}

void msgs_committer_destroy(msgs_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    /* Every queued job has its answer; wait until each sender has taken it
     * and let go of c. */
    pthread_mutex_lock(&c->mu);
    while (c->inflight > 0)
        pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
