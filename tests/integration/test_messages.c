/* Integration tests of the messages service: real HTTP through the real
 * gateway, one or two real messages processes behind a real nats-server, a
 * nats.c subscriber watching the events, and the real SQLite file read
 * directly (read-only) to count what was stored. */
#include "flow.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define EVENT_WAIT_MS 5000
#define ID_LEN        37 /* a UUID's 36 characters and the NUL */
#define ZERO_ID       "00000000-0000-0000-0000-000000000000"

/* Far beyond the default send rates, in the service and in the gateway. */
#define UNLIMITED                                                                                  \
    "NATTER_MESSAGES_RATE=1000000", "NATTER_MESSAGES_BURST=1000000",                               \
        "NATTER_RATE_IP_PER_S=100000", "NATTER_RATE_IP_BURST=1000000",                             \
        "NATTER_RATE_USER_PER_S=100000", "NATTER_RATE_USER_BURST=1000000"

static h_stack stack;

static void fini(void)
{
    h_stop_all();
}

TestSuite(messages, .fini = fini, .timeout = 60);

/* ---- small helpers ---- */

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* ---- users ---- */

typedef h_user user;

/* ---- HTTP ---- */

/* ---- JSON checks ---- */

/* A message as the schema has it: every member, of the right kind. */
static void expect_message(const cJSON *m, const char *room, const user *author,
                           const char *content, const char *type)
{
    static const char *const keys[] = {
        "id",           "room_id",    "user_id",    "username", "content",
        "message_type", "client_ref", "created_at", "edited",   "edited_at",
        "deleted",      "deleted_at", "deleted_by", NULL};
    for (size_t i = 0; keys[i] != NULL; i++)
        h_field(m, keys[i]);
    cr_assert_eq(cJSON_GetArraySize(m), 13, "members beyond the schema's in %s",
                 cJSON_PrintUnformatted(m));
    cr_assert_eq(strlen(h_get_str(m, "id")), 36, "id in %s", cJSON_PrintUnformatted(m));
    h_expect_str(m, "room_id", room);
    h_expect_str(m, "user_id", author->id);
    h_expect_str(m, "username", author->name);
    if (content != NULL)
        h_expect_str(m, "content", content);
    h_expect_str(m, "message_type", type);
    h_expect_time(m, "created_at");
}

static void copy_id(const cJSON *m, char id[ID_LEN])
{
    const char *s = h_get_str(m, "id");
    cr_assert_eq(strlen(s), 36, "not an id: %s", s);
    snprintf(id, ID_LEN, "%s", s);
}

/* ---- rooms and messages over REST ---- */

static void room_create(const user *u, bool priv, char id[ID_LEN])
{
    char body[100];
    cJSON *d = h_ok(&stack, "POST", "/api/rooms", u->tok,
                    h_fmt(body, sizeof(body), "{\"name\":\"talk\",\"is_private\":%s}",
                          priv ? "true" : "false"));
    copy_id(d, id);
    cJSON_Delete(d);
}

static void join(const user *u, const char *room)
{
    char path[128];
    cJSON_Delete(
        h_ok(&stack, "POST", h_fmt(path, sizeof(path), "/api/rooms/%s/join", room), u->tok, NULL));
}

static void set_role(const user *admin, const char *room, const user *who, const char *role)
{
    char path[300], body[64];
    cJSON_Delete(h_ok(&stack, "PUT",
                      h_fmt(path, sizeof(path), "/api/rooms/%s/members/%s", room, who->id),
                      admin->tok, h_fmt(body, sizeof(body), "{\"role\":\"%s\"}", role)));
}

/* The JSON body of a send; ref may be NULL. The caller frees. */
static char *send_body(const char *content, const char *ref)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", content);
    if (ref != NULL)
        cJSON_AddStringToObject(o, "client_ref", ref);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const char *msgs_path(char *out, size_t outlen, const char *room)
{
    return h_fmt(out, outlen, "/api/rooms/%s/messages", room);
}

static const char *msg_path(char *out, size_t outlen, const char *id)
{
    return h_fmt(out, outlen, "/api/messages/%s", id);
}

/* Sends content (with ref, or none) to room as u; returns the stored message. */
static cJSON *send_ok(const user *u, const char *room, const char *content, const char *ref)
{
    char path[128];
    char *body = send_body(content, ref);
    cJSON *d = h_ok(&stack, "POST", msgs_path(path, sizeof(path), room), u->tok, body);
    free(body);
    return d;
}

/* Sends and returns only the new id. */
static void send_id(const user *u, const char *room, const char *content, char id[ID_LEN])
{
    cJSON *d = send_ok(u, room, content, NULL);
    copy_id(d, id);
    cJSON_Delete(d);
}

/* GET the room's history with query (may be ""); returns data. */
static cJSON *history(const user *u, const char *room, const char *query)
{
    char path[300];
    return h_ok(&stack, "GET",
                h_fmt(path, sizeof(path), "/api/rooms/%s/messages%s%s", room,
                      query[0] != '\0' ? "?" : "", query),
                u->tok, NULL);
}

/* The message with id in a history page's "messages", or NULL. */
static const cJSON *find_id(const cJSON *page, const char *id)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, h_field(page, "messages"))
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
            return it;
    }
    return NULL;
}

/* ---- events ---- */

typedef struct {
    natsConnection *nc;
    natsSubscription *sub; /* chat.room.<id>.> */
} watcher;

/* Subscribes before the actions it watches; the flush makes sure the server
 * has the subscription when it returns. */
static void watch_start(watcher *w, const char *room_id)
{
    char subj[128];
    memset(w, 0, sizeof(*w));
    cr_assert_eq(natsConnection_ConnectTo(&w->nc, stack.nats_url), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&w->sub, w->nc,
                                              h_fmt(subj, sizeof(subj), "chat.room.%s.>", room_id)),
                 NATS_OK);
    cr_assert_eq(natsConnection_Flush(w->nc), NATS_OK);
}

static void watch_stop(watcher *w)
{
    natsSubscription_Destroy(w->sub);
    natsConnection_Destroy(w->nc);
    memset(w, 0, sizeof(*w));
}

/* The next event, which must be chat.room.<room>.<event>; returns its payload. */
static cJSON *next_event(watcher *w, const char *room, const char *event)
{
    char subj[160];
    natsMsg *m = NULL;
    h_fmt(subj, sizeof(subj), "chat.room.%s.%s", room, event);
    natsStatus s = natsSubscription_NextMsg(&m, w->sub, EVENT_WAIT_MS);
    cr_assert_eq(s, NATS_OK, "no event within %d ms, expected %s", EVENT_WAIT_MS, subj);
    cr_assert_str_eq(natsMsg_GetSubject(m), subj, "unexpected event, payload %s",
                     natsMsg_GetData(m));
    cJSON *j = cJSON_Parse(natsMsg_GetData(m));
    cr_assert_not_null(j, "%s: payload is not JSON: %s", subj, natsMsg_GetData(m));
    natsMsg_Destroy(m);
    return j;
}

/* The event's payload must be exactly the reply's message. */
static void expect_same(const cJSON *event, const cJSON *reply)
{
    cr_assert(cJSON_Compare(event, reply, true), "event %s differs from reply %s",
              cJSON_PrintUnformatted(event), cJSON_PrintUnformatted(reply));
}

/* ---- NATS directly ---- */

static natsConnection *nats_connect(void)
{
    natsConnection *nc = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, stack.nats_url), NATS_OK);
    return nc;
}

typedef struct {
    long status;         /* 200, or Nats-Service-Error-Code */
    long long retry_hdr; /* Chat-Retry-After-Ms, 0 when absent */
    cJSON *body;
} nreply;

/* A request on subject as user (NULL: no Chat-User). */
static nreply nats_call(natsConnection *nc, const char *subject, const char *user_id,
                        const char *body)
{
    natsMsg *m = NULL, *rep = NULL;
    nreply r = {200, 0, NULL};
    cr_assert_eq(natsMsg_Create(&m, subject, NULL, body, (int)strlen(body)), NATS_OK);
    if (user_id != NULL)
        cr_assert_eq(natsMsgHeader_Set(m, "Chat-User", user_id), NATS_OK);
    natsStatus s = natsConnection_RequestMsg(&rep, nc, m, 5000);
    natsMsg_Destroy(m);
    cr_assert_eq(s, NATS_OK, "%s %s: %s", subject, body, natsStatus_GetText(s));
    const char *v = NULL;
    if (natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &v) == NATS_OK && v != NULL)
        r.status = strtol(v, NULL, 10);
    v = NULL;
    if (natsMsgHeader_Get(rep, "Chat-Retry-After-Ms", &v) == NATS_OK && v != NULL)
        r.retry_hdr = strtoll(v, NULL, 10);
    r.body = cJSON_ParseWithLength(natsMsg_GetData(rep), (size_t)natsMsg_GetDataLength(rep));
    cr_assert_not_null(r.body, "%s: reply is not JSON: %s", subject, natsMsg_GetData(rep));
    natsMsg_Destroy(rep);
    return r;
}

/* Asks $SRV.<verb>.messages and collects the answers that arrive within
 * wait_ms (every instance answers once); returns how many, parsed into out
 * (the caller deletes them). Stops early once max have come. */
static int srv_ask(natsConnection *nc, const char *verb, cJSON **out, int max, int wait_ms)
{
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    char subj[64];
    int n = 0;
    cr_assert_eq(natsInbox_Create(&inbox), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, inbox), NATS_OK);
    cr_assert_eq(natsConnection_PublishRequestString(
                     nc, h_fmt(subj, sizeof(subj), "$SRV.%s.messages", verb), inbox, ""),
                 NATS_OK);
    long end = mono_ms() + wait_ms;
    while (n < max) {
        long left = end - mono_ms();
        natsMsg *m = NULL;
        if (left <= 0 || natsSubscription_NextMsg(&m, sub, left) != NATS_OK)
            break;
        out[n] = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        natsMsg_Destroy(m);
        if (out[n] != NULL)
            n++;
    }
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return n;
}

/* Waits until want messages instances answer $SRV.PING. */
static void wait_instances(natsConnection *nc, int want)
{
    long end = mono_ms() + 15000;
    int n = 0;
    while (mono_ms() < end) {
        cJSON *got[8] = {NULL};
        n = srv_ask(nc, "PING", got, 8, 300);
        for (int i = 0; i < n; i++)
            cJSON_Delete(got[i]);
        if (n == want)
            return;
    }
    h_dump_logs();
    cr_assert_fail("%d messages instances answer $SRV.PING, want %d", n, want);
}

/* The send endpoint's num_requests of each instance, into counts (up to max);
 * returns how many instances answered (waits for want of them). */
static int send_counts(natsConnection *nc, long long *counts, int want)
{
    cJSON *got[8] = {NULL};
    int n = srv_ask(nc, "STATS", got, want, 3000);
    for (int i = 0; i < n; i++) {
        counts[i] = -1;
        const cJSON *ep;
        cJSON_ArrayForEach(ep, cJSON_GetObjectItemCaseSensitive(got[i], "endpoints"))
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(ep, "name");
            const cJSON *num = cJSON_GetObjectItemCaseSensitive(ep, "num_requests");
            if (cJSON_IsString(name) && strcmp(name->valuestring, "send") == 0 &&
                cJSON_IsNumber(num))
                counts[i] = (long long)num->valuedouble;
        }
        cr_assert(counts[i] >= 0, "no send endpoint in STATS: %s", cJSON_PrintUnformatted(got[i]));
        cJSON_Delete(got[i]);
    }
    return n;
}

/* ---- SQLite, read-only ---- */

static sqlite3 *db_open(void)
{
    char path[600];
    sqlite3 *db = NULL;
    h_fmt(path, sizeof(path), "%s/data/natter.db", h_tmpdir());
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK,
                 "cannot open %s", path);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row as an integer (0 when no row); the
 * parameters are text. */
static long long db_int(sqlite3 *db, const char *sql, const char *p1, const char *p2)
{
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    if (p1 != NULL)
        sqlite3_bind_text(s, 1, p1, -1, SQLITE_TRANSIENT);
    if (p2 != NULL)
        sqlite3_bind_text(s, 2, p2, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    long long v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return v;
}

/* The first text column of the first row into out ("" when no row). */
static void db_text(sqlite3 *db, const char *sql, const char *p1, const char *p2, char *out,
                    size_t outlen)
{
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, p1, -1, SQLITE_TRANSIENT);
    if (p2 != NULL)
        sqlite3_bind_text(s, 2, p2, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
    snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
    sqlite3_finalize(s);
}

/* Every id of the room in id order; returns how many (at most max). */
static int db_ids(sqlite3 *db, const char *room, char (*ids)[ID_LEN], int max)
{
    sqlite3_stmt *s = NULL;
    int n = 0;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT id FROM messages WHERE room_id = ?1 ORDER BY id",
                                    -1, &s, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(s, 1, room, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(s) == SQLITE_ROW) {
        cr_assert(n < max, "more than %d messages in the room", max);
        snprintf(ids[n++], ID_LEN, "%s", (const char *)sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return n;
}

/* ---- paging ---- */

/* Pages through the whole history of room, limit at a time: backwards from
 * the latest page following next_cursor with before=, or forwards from the
 * beginning with after=. Checks each page (oldest first, full when has_more,
 * next_cursor the oldest or newest id of the page) and returns every id in
 * the order the pages make, oldest first. */
static int page_all(const user *u, const char *room, bool forward, int limit, char (*ids)[ID_LEN],
                    int max)
{
    char query[160], cursor[ID_LEN];
    int n = 0, pages = 0;
    snprintf(cursor, sizeof(cursor), "%s", ZERO_ID);
    for (;;) {
        if (forward)
            h_fmt(query, sizeof(query), "after=%s&limit=%d", cursor, limit);
        else if (pages == 0)
            h_fmt(query, sizeof(query), "limit=%d", limit);
        else
            h_fmt(query, sizeof(query), "before=%s&limit=%d", cursor, limit);
        cJSON *d = history(u, room, query);
        pages++;
        const cJSON *list = h_field(d, "messages");
        int k = cJSON_GetArraySize(list);
        const cJSON *more = h_field(d, "has_more");
        const cJSON *next = h_field(d, "next_cursor");
        cr_assert(cJSON_IsBool(more), "has_more in %s", query);
        cr_assert(k <= limit, "%d messages on a page of %d", k, limit);
        if (cJSON_IsTrue(more)) {
            cr_assert_eq(k, limit, "%s: has_more with a short page of %d", query, k);
            const cJSON *edge = cJSON_GetArrayItem(list, forward ? k - 1 : 0);
            h_expect_str(d, "next_cursor", h_get_str(edge, "id"));
        } else {
            cr_assert(cJSON_IsNull(next), "%s: next_cursor without has_more", query);
        }
        /* Backwards, the pages come newest first: append each reversed and
         * reverse everything at the end. */
        for (int i = 0; i < k; i++) {
            const cJSON *m = cJSON_GetArrayItem(list, forward ? i : k - 1 - i);
            cr_assert(n < max, "more than %d messages", max);
            h_expect_str(m, "room_id", room);
            copy_id(m, ids[n++]);
        }
        bool again = cJSON_IsTrue(more);
        if (again)
            snprintf(cursor, sizeof(cursor), "%s", h_get_str(d, "next_cursor"));
        cJSON_Delete(d);
        if (!again)
            break;
        cr_assert(pages < 1000, "paging does not end");
    }
    if (!forward) {
        for (int i = 0, j = n - 1; i < j; i++, j--) {
            char t[ID_LEN];
            memcpy(t, ids[i], ID_LEN);
            memcpy(ids[i], ids[j], ID_LEN);
            memcpy(ids[j], t, ID_LEN);
        }
    }
    return n;
}

/* ids must rise strictly (so no id appears twice). */
static void expect_rising(char (*ids)[ID_LEN], int n, const char *what)
{
    for (int i = 1; i < n; i++)
        cr_assert(strcmp(ids[i - 1], ids[i]) < 0, "%s: %s then %s at %d", what, ids[i - 1], ids[i],
                  i);
}

static bool sorted_has(char (*ids)[ID_LEN], int n, const char *id)
{
    return bsearch(id, ids, (size_t)n, ID_LEN, cmp_str) != NULL;
}

/* ---- concurrent senders over REST ---- */

typedef struct {
    char ref[48];
    char id[ID_LEN];
} acked;

typedef struct {
    const user *u;
    const char *room;
    int thread;         /* part of every client_ref */
    int count;          /* sends to make; 0: until *stop */
    atomic_bool *stop;  /* when count is 0 */
    atomic_int *nacked; /* shared count of acknowledged sends */
    acked *ok;          /* acknowledged sends */
    int nok, cap;
    int n503, n504, nother;
    double seconds, max_seconds; /* HTTP time of every send, in all and the longest */
    char first_error[300];
} sender;

static void *sender_run(void *arg)
{
    sender *s = arg;
    char path[128], ref[48], content[96];
    msgs_path(path, sizeof(path), s->room);
    for (int i = 0; s->count > 0 ? i < s->count : !atomic_load(s->stop); i++) {
        snprintf(ref, sizeof(ref), "t%d-%d", s->thread, i);
        snprintf(content, sizeof(content), "message %d of sender %d", i, s->thread);
        char *body = send_body(content, ref);
        h_http r = h_api(&stack, "POST", path, s->u->tok, body);
        free(body);
        s->seconds += r.seconds;
        if (r.seconds > s->max_seconds)
            s->max_seconds = r.seconds;
        const cJSON *id = NULL;
        cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
        if (j != NULL)
            id =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "id");
        if (cJSON_IsString(id) && strlen(id->valuestring) == 36) {
            if (s->nok == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 64;
                s->ok = realloc(s->ok, (size_t)s->cap * sizeof(*s->ok));
                if (s->ok == NULL)
                    abort();
            }
            snprintf(s->ok[s->nok].ref, sizeof(s->ok[s->nok].ref), "%s", ref);
            snprintf(s->ok[s->nok].id, ID_LEN, "%s", id->valuestring);
            s->nok++;
            atomic_fetch_add(s->nacked, 1);
        } else {
            if (r.status == 503)
                s->n503++;
            else if (r.status == 504)
                s->n504++;
            else
                s->nother++;
            if (s->first_error[0] == '\0' || (r.status != 503 && r.status != 504))
                snprintf(s->first_error, sizeof(s->first_error), "%ld %s", r.status, r.body);
        }
        cJSON_Delete(j);
        h_http_free(&r);
    }
    return NULL;
}

/* Every acknowledged send of the senders, sorted by id; returns how many. */
static int acked_ids(sender *s, int ns, char (**out)[ID_LEN])
{
    int n = 0;
    for (int i = 0; i < ns; i++)
        n += s[i].nok;
    char(*ids)[ID_LEN] = calloc((size_t)n + 1, ID_LEN);
    cr_assert_not_null(ids);
    int k = 0;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < s[i].nok; j++)
            memcpy(ids[k++], s[i].ok[j].id, ID_LEN);
    qsort(ids, (size_t)n, ID_LEN, cmp_str);
    *out = ids;
    return n;
}

/* Each acknowledged (client_ref, id) is that user's row in the database. */
static void expect_acked_stored(sqlite3 *db, sender *s, int ns, const char *room)
{
    for (int i = 0; i < ns; i++) {
        for (int j = 0; j < s[i].nok; j++) {
            char got[ID_LEN];
            db_text(db, "SELECT id FROM messages WHERE user_id = ?1 AND client_ref = ?2",
                    s[i].u->id, s[i].ok[j].ref, got, sizeof(got));
            cr_assert_str_eq(got, s[i].ok[j].id, "acknowledged %s (%s) is not stored as such",
                             s[i].ok[j].id, s[i].ok[j].ref);
            db_text(db, "SELECT room_id FROM messages WHERE id = ?1", got, NULL, got, sizeof(got));
            cr_assert_str_eq(got, room);
        }
    }
}

/* "avg X ms, max Y ms" of the senders' HTTP exchanges, into out. */
static const char *senders_times(const sender *s, int ns, char *out, size_t outlen)
{
    double sum = 0, max = 0;
    int n = 0;
    for (int i = 0; i < ns; i++) {
        sum += s[i].seconds;
        max = s[i].max_seconds > max ? s[i].max_seconds : max;
        n += s[i].nok + s[i].n503 + s[i].n504 + s[i].nother;
    }
    snprintf(out, outlen, "avg %.1f ms, max %.1f ms per send", n ? 1000 * sum / n : 0, 1000 * max);
    return out;
}

static void senders_free(sender *s, int ns)
{
    for (int i = 0; i < ns; i++)
        free(s[i].ok);
}

/* One send of a fixed body, for racing retries. */
typedef struct {
    const user *u;
    const char *path;
    const char *body;
    long status;
    char id[ID_LEN];
} racer;

static void *racer_run(void *arg)
{
    racer *r = arg;
    h_http h = h_api(&stack, "POST", r->path, r->u->tok, r->body);
    r->status = h.status;
    cJSON *j = h.status == 200 ? cJSON_Parse(h.body) : NULL;
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "id");
    snprintf(r->id, sizeof(r->id), "%s", cJSON_IsString(id) ? id->valuestring : h.body);
    cJSON_Delete(j);
    h_http_free(&h);
    return NULL;
}

/* ---- the tests ---- */

#define N_CONC    500
#define N_THREADS 16
#define PAGE      37

Test(messages, two_instances_500_concurrent)
{
    static const char *const extra[] = {UNLIMITED, NULL};
    user alice, bob;
    long t0 = mono_ms();
    h_users_start(&stack, extra, &alice, "alice", &bob, "bob", NULL);
    h_proc *second = h_spawn("messages", stack.env);
    natsConnection *nc = nats_connect();
    wait_instances(nc, 2);
    long t_ready = mono_ms();
    char room[ID_LEN];
    room_create(&alice, false, room);
    join(&bob, room);

    /* 16 threads, 8 per user, 500 sends in all, each with its own client_ref. */
    sender s[N_THREADS];
    pthread_t th[N_THREADS];
    atomic_int nacked = 0;
    memset(s, 0, sizeof(s));
    long t_go = mono_ms();
    for (int i = 0; i < N_THREADS; i++) {
        s[i].u = i < N_THREADS / 2 ? &alice : &bob;
        s[i].room = room;
        s[i].thread = i;
        s[i].count = N_CONC / N_THREADS + (i < N_CONC % N_THREADS);
        s[i].nacked = &nacked;
        cr_assert_eq(pthread_create(&th[i], NULL, sender_run, &s[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    long t_sent = mono_ms();
    for (int i = 0; i < N_THREADS; i++)
        cr_assert_eq(s[i].nok, s[i].count, "sender %d: %d of %d acknowledged, first error %s", i,
                     s[i].nok, s[i].count, s[i].first_error);
    char(*acks)[ID_LEN] = NULL;
    int nacks = acked_ids(s, N_THREADS, &acks);
    cr_assert_eq(nacks, N_CONC);
    expect_rising(acks, nacks, "acknowledged ids");

    /* Stored once each: 500 rows, 500 distinct client refs, each the acked id. */
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", room, NULL),
                 N_CONC);
    cr_assert_eq(db_int(db, "SELECT COUNT(DISTINCT client_ref) FROM messages WHERE room_id = ?1",
                        room, NULL),
                 N_CONC);
    expect_acked_stored(db, s, N_THREADS, room);
    char(*stored)[ID_LEN] = calloc(N_CONC + 1, ID_LEN);
    cr_assert_eq(db_ids(db, room, stored, N_CONC + 1), N_CONC);
    sqlite3_close(db);

    /* History by 37, backwards and forwards: exactly the stored ids, rising. */
    char(*paged)[ID_LEN] = calloc(N_CONC + 1, ID_LEN);
    for (int dir = 0; dir < 2; dir++) {
        const char *what = dir ? "paged forwards with after=" : "paged backwards with before=";
        int n = page_all(&alice, room, dir == 1, PAGE, paged, N_CONC + 1);
        cr_assert_eq(n, N_CONC, "%s: %d messages", what, n);
        expect_rising(paged, n, what);
        for (int i = 0; i < n; i++) {
            cr_assert_str_eq(paged[i], stored[i], "%s: gap or stranger at %d", what, i);
            cr_assert(sorted_has(acks, nacks, paged[i]), "%s: %s was never acknowledged", what,
                      paged[i]);
        }
    }

    /* Both instances took sends: each instance's send endpoint counted some,
     * and together exactly the 500 (NATS spreads a queue group at random). */
    long long counts[2] = {0, 0};
    cr_assert_eq(send_counts(nc, counts, 2), 2, "STATS from two instances");
    cr_assert(counts[0] > 0 && counts[1] > 0, "one instance took every send: %lld and %lld",
              counts[0], counts[1]);
    cr_assert_eq(counts[0] + counts[1], N_CONC, "%lld + %lld sends", counts[0], counts[1]);
    cr_assert(h_alive(second), "the second instance died");
    char times[96];
    cr_log_info("two_instances: stack up in %ld ms, 500 sends in %ld ms (%lld and %lld per "
                "instance; %s), checks in %ld ms",
                t_ready - t0, t_sent - t_go, counts[0], counts[1],
                senders_times(s, N_THREADS, times, sizeof(times)), mono_ms() - t_sent);

    free(paged);
    free(stored);
    free(acks);
    senders_free(s, N_THREADS);
    natsConnection_Destroy(nc);
    h_users_free(&alice, &bob, NULL);
}

#define RACERS 8

Test(messages, client_ref_retry)
{
    user alice, bob;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", NULL);
    h_spawn("messages", stack.env);
    char room[ID_LEN], other[ID_LEN], first[ID_LEN], path[128];
    room_create(&alice, false, room);
    room_create(&alice, false, other);
    join(&bob, room);
    watcher w;
    watch_start(&w, room);

    cJSON *a = send_ok(&alice, room, "hello once", "ref-1");
    copy_id(a, first);
    h_expect_str(a, "client_ref", "ref-1");
    cJSON_Delete(next_event(&w, room, "message_received"));

    /* A retry, even with other content, is the first message: same id, same content. */
    cJSON *b = send_ok(&alice, room, "hello again", "ref-1");
    h_expect_str(b, "id", first);
    h_expect_str(b, "content", "hello once");
    cr_assert(cJSON_Compare(a, b, true), "the retry's reply %s differs from %s",
              cJSON_PrintUnformatted(b), cJSON_PrintUnformatted(a));
    cJSON_Delete(a);
    cJSON_Delete(b);

    /* The same ref in another room is a conflict, and stores nothing. */
    char *body = send_body("elsewhere", "ref-1");
    h_refused(&stack, "POST", msgs_path(path, sizeof(path), other), alice.tok, body, 409,
              "conflict", "ref-1");
    free(body);

    /* Unique per user: bob may use the same ref. His is the next event, so
     * the retry published none. */
    cJSON *c = send_ok(&bob, room, "bob's", "ref-1");
    cr_assert_str_neq(h_get_str(c, "id"), first);
    cJSON *e = next_event(&w, room, "message_received");
    expect_same(e, c);
    cJSON_Delete(e);
    cJSON_Delete(c);

    /* Retries that race each other through two instances: one message. */
    natsConnection *nc = nats_connect();
    wait_instances(nc, 2);
    racer r[RACERS];
    pthread_t th[RACERS];
    msgs_path(path, sizeof(path), room);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer){
            .u = &alice, .path = path, .body = "{\"content\":\"race\",\"client_ref\":\"race-1\"}"};
        cr_assert_eq(pthread_create(&th[i], NULL, racer_run, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACERS; i++) {
        cr_assert_eq(r[i].status, 200, "racer %d: %ld %s", i, r[i].status, r[i].id);
        cr_assert_str_eq(r[i].id, r[0].id, "racers got different messages");
    }
    cJSON_Delete(next_event(&w, room, "message_received"));
    natsConnection_Destroy(nc);

    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT COUNT(*) FROM messages WHERE user_id = ?1 AND client_ref = ?2",
                        alice.id, "ref-1"),
                 1);
    cr_assert_eq(db_int(db, "SELECT COUNT(*) FROM messages WHERE user_id = ?1 AND client_ref = ?2",
                        alice.id, "race-1"),
                 1);
    cr_assert_eq(db_int(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", room, NULL), 3);
    cr_assert_eq(db_int(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", other, NULL), 0);
    sqlite3_close(db);

    watch_stop(&w);
    h_users_free(&alice, &bob, NULL);
}

Test(messages, rate_limit)
{
    static const char *const extra[] = {"NATTER_MESSAGES_RATE=2", "NATTER_MESSAGES_BURST=4", NULL};
    user alice, bob;
    h_users_start(&stack, extra, &alice, "alice", &bob, "bob", NULL);
    char room[ID_LEN], path[128];
    room_create(&alice, false, room);
    join(&bob, room);
    msgs_path(path, sizeof(path), room);

    /* The burst of 4 passes and then the limit answers: normally the 5th
     * send, well inside the half second a token takes to come back at 2 per
     * second. On a slow machine a token may come back meanwhile, so what is
     * checked is the bucket's arithmetic: at least the burst passes, and no
     * more than the burst plus 2 per second elapsed. */
    long t0 = mono_ms();
    int passed = 0;
    h_http r;
    for (;;) {
        r = h_api(&stack, "POST", path, alice.tok, "{\"content\":\"burst\"}");
        if (r.status != 200 || passed == 20)
            break;
        passed++;
        h_http_free(&r);
    }
    long elapsed = mono_ms() - t0;
    cr_assert_eq(r.status, 429, "send %d after %ld ms: %ld %s", passed + 1, elapsed, r.status,
                 r.body);
    cr_assert(passed >= 4 && passed <= 4 + 2 * elapsed / 1000,
              "%d sends passed in %ld ms at a rate of 2 and a burst of 4", passed, elapsed);
    cr_log_info("rate_limit: %d sends passed, refused after %ld ms", passed, elapsed);
    h_error_code(&r, "rate_limited");
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *err = h_field(j, "error");
    const cJSON *ms = h_field(err, "retry_after_ms");
    cr_assert(cJSON_IsNumber(ms) && ms->valuedouble >= 1 && ms->valuedouble <= 500,
              "retry_after_ms should be 1..500 at 2 per second: %s", r.body);
    long long retry_ms = (long long)ms->valuedouble;
    cr_assert(strstr(h_get_str(err, "message"), "too many messages") != NULL, "%s", r.body);
    char ra[32];
    cr_assert(h_header(&r, "Retry-After", ra, sizeof(ra)), "no Retry-After in %s", r.headers);
    long ra_s = strtol(ra, NULL, 10);
    cr_assert(ra_s >= 1 && ra_s == (retry_ms + 999) / 1000, "Retry-After %s for %lld ms", ra,
              retry_ms);
    cJSON_Delete(j);
    h_http_free(&r);

    /* Another user has a bucket of his own. */
    cJSON_Delete(send_ok(&bob, room, "not me", NULL));

    /* After the advised time, a send goes through again. */
    sleep_ms((long)retry_ms);
    cJSON_Delete(send_ok(&alice, room, "after waiting", NULL));

    /* Over NATS the refusal carries retry_after_ms and Chat-Retry-After-Ms.
     * The bucket is empty (or nearly): a refusal comes within a few sends. */
    natsConnection *nc = nats_connect();
    char body[160];
    h_fmt(body, sizeof(body), "{\"room_id\":\"%s\",\"content\":\"over nats\"}", room);
    nreply nr = {0};
    for (int i = 0; i < 6; i++) {
        nr = nats_call(nc, "chat.messages.send", alice.id, body);
        if (nr.status != 200)
            break;
        cJSON_Delete(nr.body);
        nr.body = NULL;
    }
    cr_assert_eq(nr.status, 429, "no refusal over NATS: %s", cJSON_PrintUnformatted(nr.body));
    err = h_field(nr.body, "error");
    h_expect_str(err, "code", "rate_limited");
    ms = h_field(err, "retry_after_ms");
    cr_assert(cJSON_IsNumber(ms) && ms->valuedouble >= 1, "%s", cJSON_PrintUnformatted(nr.body));
    cr_assert_eq(nr.retry_hdr, (long long)ms->valuedouble, "Chat-Retry-After-Ms %lld, body says %s",
                 nr.retry_hdr, cJSON_PrintUnformatted(nr.body));
    cJSON_Delete(nr.body);
    natsConnection_Destroy(nc);
    h_users_free(&alice, &bob, NULL);
}

Test(messages, edit_delete_rules)
{
    user alice, bob, carol, dave;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", &carol, "carol", &dave, "dave", NULL);
    char room[ID_LEN], m1[ID_LEN], m2[ID_LEN], m3[ID_LEN], path[128];
    room_create(&alice, false, room);
    join(&bob, room);
    join(&carol, room);
    join(&dave, room);
    set_role(&alice, room, &carol, "moderator");
    watcher w;
    watch_start(&w, room);

    send_id(&bob, room, "first draft", m1);
    cJSON_Delete(next_event(&w, room, "message_received"));

    /* The author edits: edited, with a time, and an event with the message. */
    cJSON *d = h_ok(&stack, "PUT", msg_path(path, sizeof(path), m1), bob.tok,
                    "{\"content\":\"  second draft \"}");
    expect_message(d, room, &bob, "second draft", "text");
    h_expect_str(d, "id", m1);
    h_expect_bool(d, "edited", true);
    h_expect_time(d, "edited_at");
    h_expect_bool(d, "deleted", false);
    cJSON *e = next_event(&w, room, "message_updated");
    expect_same(e, d);
    cJSON_Delete(e);

    /* The same content again changes nothing and tells nobody. */
    cJSON *same = h_ok(&stack, "PUT", path, bob.tok, "{\"content\":\"second draft\"}");
    h_expect_str(same, "edited_at", h_get_str(d, "edited_at"));
    cJSON_Delete(same);
    cJSON_Delete(d);

    /* Nobody else edits: not a member, not a moderator, not the admin. */
    h_refused(&stack, "PUT", path, dave.tok, "{\"content\":\"dave was here\"}", 403, "forbidden",
              "only the author may edit");
    h_refused(&stack, "PUT", path, carol.tok, "{\"content\":\"moderated\"}", 403, "forbidden",
              "only the author may edit");
    h_refused(&stack, "PUT", path, alice.tok, "{\"content\":\"admin's\"}", 403, "forbidden",
              "only the author may edit");

    /* A plain member does not delete another's message. */
    h_refused(&stack, "DELETE", path, dave.tok, NULL, 403, "forbidden", "only the author");

    /* The moderator does: a tombstone naming her. */
    d = h_ok(&stack, "DELETE", path, carol.tok, NULL);
    expect_message(d, room, &bob, "", "text");
    h_expect_str(d, "id", m1);
    h_expect_bool(d, "deleted", true);
    h_expect_time(d, "deleted_at");
    h_expect_str(d, "deleted_by", carol.id);
    e = next_event(&w, room, "message_deleted");
    expect_same(e, d);
    cJSON_Delete(e);
    cJSON_Delete(d);

    /* Deleted: no more edits; a second delete is the tombstone again, silently. */
    h_refused(&stack, "PUT", path, bob.tok, "{\"content\":\"resurrect\"}", 409, "conflict",
              "was deleted");
    d = h_ok(&stack, "DELETE", path, alice.tok, NULL);
    h_expect_str(d, "deleted_by", carol.id);
    cJSON_Delete(d);

    /* The admin deletes a member's message. */
    send_id(&bob, room, "second", m2);
    cJSON_Delete(next_event(&w, room, "message_received")); /* so no event came in between */
    d = h_ok(&stack, "DELETE", msg_path(path, sizeof(path), m2), alice.tok, NULL);
    h_expect_bool(d, "deleted", true);
    h_expect_str(d, "deleted_by", alice.id);
    h_expect_str(d, "content", "");
    e = next_event(&w, room, "message_deleted");
    expect_same(e, d);
    cJSON_Delete(e);
    cJSON_Delete(d);

    /* The author deletes their own. */
    send_id(&dave, room, "mine", m3);
    cJSON_Delete(next_event(&w, room, "message_received"));
    d = h_ok(&stack, "DELETE", msg_path(path, sizeof(path), m3), dave.tok, NULL);
    h_expect_str(d, "deleted_by", dave.id);
    cJSON_Delete(d);
    cJSON_Delete(next_event(&w, room, "message_deleted"));

    /* History keeps the tombstones, content emptied. */
    d = history(&dave, room, "");
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "messages")), 3, "%s", cJSON_PrintUnformatted(d));
    const cJSON *t = find_id(d, m1);
    cr_assert_not_null(t, "the tombstone is missing: %s", cJSON_PrintUnformatted(d));
    h_expect_str(t, "content", "");
    h_expect_bool(t, "deleted", true);
    h_expect_bool(t, "edited", true);
    h_expect_str(t, "deleted_by", carol.id);
    cJSON_Delete(d);

    sqlite3 *db = db_open();
    cr_assert_eq(
        db_int(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1 AND content = ''", room, NULL),
        3);
    sqlite3_close(db);
    watch_stop(&w);
    h_users_free(&alice, &bob, &carol, &dave, NULL);
}

Test(messages, non_member_403_everywhere)
{
    user alice, eve;
    h_users_start(&stack, NULL, &alice, "alice", &eve, "eve", NULL);
    char pub[ID_LEN], priv[ID_LEN], mpub[ID_LEN], mpriv[ID_LEN], path[160];
    room_create(&alice, false, pub);
    room_create(&alice, true, priv);
    send_id(&alice, pub, "public words", mpub);
    send_id(&alice, priv, "private words", mpriv);

    /* A public room: eve may see it exists, but is refused every call. */
    h_refused(&stack, "POST", msgs_path(path, sizeof(path), pub), eve.tok, "{\"content\":\"hi\"}",
              403, "forbidden", NULL);
    h_refused(&stack, "GET", path, eve.tok, NULL, 403, "forbidden", NULL);
    h_refused(&stack, "PUT", msg_path(path, sizeof(path), mpub), eve.tok, "{\"content\":\"x\"}",
              403, "forbidden", NULL);
    h_refused(&stack, "DELETE", path, eve.tok, NULL, 403, "forbidden", NULL);

    /* A private room does not exist for her. */
    h_refused(&stack, "POST", msgs_path(path, sizeof(path), priv), eve.tok, "{\"content\":\"hi\"}",
              404, "not_found", NULL);
    h_refused(&stack, "GET", path, eve.tok, NULL, 404, "not_found", NULL);

    /* Its messages look exactly like ids that name nothing. */
    char missing[ID_LEN];
    snprintf(missing, sizeof(missing), "%s", mpriv);
    missing[35] = missing[35] == '0' ? '1' : '0';
    const char *methods[][2] = {{"PUT", "{\"content\":\"x\"}"}, {"DELETE", NULL}};
    for (int i = 0; i < 2; i++) {
        char *none = h_refused_body(&stack, methods[i][0], msg_path(path, sizeof(path), missing),
                                    eve.tok, methods[i][1], 404, "not_found", missing);
        char *hidden = h_refused_body(&stack, methods[i][0], msg_path(path, sizeof(path), mpriv),
                                      eve.tok, methods[i][1], 404, "not_found", mpriv);
        /* The same text once the id is swapped. */
        char *at = strstr(none, missing);
        cr_assert_not_null(at);
        memcpy(at, mpriv, 36);
        cr_assert_str_eq(hidden, none, "%s of a private room's message", methods[i][0]);
        free(none);
        free(hidden);
    }

    /* Nothing changed. */
    cJSON *d = history(&alice, priv, "");
    const cJSON *m = find_id(d, mpriv);
    cr_assert_not_null(m);
    h_expect_str(m, "content", "private words");
    cJSON_Delete(d);
    d = history(&alice, pub, "");
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "messages")), 1);
    h_expect_str(find_id(d, mpub), "content", "public words");
    cJSON_Delete(d);
    h_users_free(&alice, &eve, NULL);
}

/* n copies of unit, then tail. The caller frees. */
static char *repeat(const char *unit, int n, const char *tail)
{
    size_t u = strlen(unit), t = strlen(tail);
    char *s = malloc(u * (size_t)n + t + 1);
    cr_assert_not_null(s);
    for (int i = 0; i < n; i++)
        memcpy(s + u * (size_t)i, unit, u);
    memcpy(s + u * (size_t)n, tail, t + 1);
    return s;
}

Test(messages, validation)
{
    user alice;
    h_users_start(&stack, NULL, &alice, "alice", NULL);
    char room[ID_LEN], path[300];
    room_create(&alice, false, room);
    msgs_path(path, sizeof(path), room);

    /* 4000 characters pass, 4001 do not; characters are code points, so
     * two-byte and four-byte ones count once, and white space around is trimmed. */
    static const struct {
        const char *unit;
        int n;
        const char *tail;
        long want;
    } lengths[] = {
        {"a", 4000, "", 200},
        {"a", 4001, "", 400},
        {"\xc3\xa9", 3999, "\xf0\x9f\x98\x80", 200}, /* é x 3999 and 😀 */
        {"\xc3\xa9", 4000, "a", 400},
        {"\xe2\x82\xac", 4001, "", 400}, /* € */
    };
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        char *content = repeat(lengths[i].unit, lengths[i].n, lengths[i].tail);
        if (lengths[i].want == 200) {
            char *padded = malloc(strlen(content) + 8);
            snprintf(padded, strlen(content) + 8, "  %s \n\t", content);
            cJSON *d = send_ok(&alice, room, padded, NULL);
            h_expect_str(d, "content", content);
            cJSON_Delete(d);
            free(padded);
        } else {
            char *body = send_body(content, NULL);
            h_refused(&stack, "POST", path, alice.tok, body, 400, "invalid_request", "'content'");
            free(body);
        }
        free(content);
    }

    /* Invalid UTF-8 (0xC3 then '(') inside the JSON string. */
    h_refused(&stack, "POST", path, alice.tok,
              "{\"content\":\"a\xc3\x28"
              "b\"}",
              400, "invalid_request", NULL);
    /* Empty, blank, missing, not a string, NUL, a control character. */
    static const char *const bad[][2] = {
        {"{\"content\":\"\"}", "'content'"},
        {"{\"content\":\" \\t\\n  \"}", "'content'"},
        {"{}", "'content' is required"},
        {"{\"content\":null}", "'content'"},
        {"{\"content\":42}", "'content'"},
        {"{\"content\":\"a\\u0000b\"}", NULL},
        {"{\"content\":\"a\\u0007b\"}", "'content'"},
        {"{\"content\":\"hi\",\"colour\":\"red\"}", "colour"},
        {"{\"content\":\"hi\",\"message_type\":\"video\"}", "'message_type'"},
        {"{\"content\":\"hi\",\"client_ref\":\"has space\"}", "'client_ref'"},
        {"{\"content\":\"hi\",\"client_ref\":\"\"}", "'client_ref'"},
        {"[\"content\"]", NULL},
        {"not json", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        h_refused(&stack, "POST", path, alice.tok, bad[i][0], 400, "invalid_request", bad[i][1]);
    /* Multi-line text and the other types are fine. */
    cJSON *d = h_ok(&stack, "POST", path, alice.tok,
                    "{\"content\":\"line one\\nline\\ttwo\",\"message_type\":\"image\"}");
    h_expect_str(d, "content", "line one\nline\ttwo");
    h_expect_str(d, "message_type", "image");
    cJSON_Delete(d);

    /* Bad ids come first, named. */
    h_refused(&stack, "POST", "/api/rooms/not-a-room/messages", alice.tok, "{\"content\":\"hi\"}",
              400, "invalid_request", "'room_id'");
    char upper[ID_LEN];
    snprintf(upper, sizeof(upper), "%s", room);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    h_refused(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s/messages", upper), alice.tok,
              NULL, 400, "invalid_request", "'room_id'");
    h_refused(&stack, "PUT", "/api/messages/123", alice.tok, "{\"content\":\"x\"}", 400,
              "invalid_request", "'message_id'");
    h_refused(&stack, "DELETE", "/api/messages/123", alice.tok, NULL, 400, "invalid_request",
              "'message_id'");

    /* History's query. */
    static const char *const bad_q[][2] = {
        {"limit=101", "'limit'"}, {"limit=0", "'limit'"},
        {"limit=abc", "'limit'"}, {"limit=1.5", "'limit'"},
        {"limit=-3", "'limit'"},  {"before=xyz", "'before'"},
        {"after=xyz", "'after'"}, {"before=" ZERO_ID "&after=" ZERO_ID, "not both"},
        {"limit=", "'limit'"},    {"before=", "'before'"},
    };
    for (size_t i = 0; i < sizeof(bad_q) / sizeof(bad_q[0]); i++)
        h_refused(&stack, "GET",
                  h_fmt(path, sizeof(path), "/api/rooms/%s/messages?%s", room, bad_q[i][0]),
                  alice.tok, NULL, 400, "invalid_request", bad_q[i][1]);
    d = history(&alice, room, "limit=100");
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "messages")), 3, "%s", cJSON_PrintUnformatted(d));
    h_expect_bool(d, "has_more", false);
    h_expect_str(d, "next_cursor", NULL);
    char first[ID_LEN];
    copy_id(cJSON_GetArrayItem(h_field(d, "messages"), 0), first);
    cJSON_Delete(d);
    /* A cursor is a position: before the smallest id there is nothing. */
    d = history(&alice, room, "before=" ZERO_ID);
    cr_assert_eq(cJSON_GetArraySize(h_field(d, "messages")), 0, "%s", cJSON_PrintUnformatted(d));
    h_expect_bool(d, "has_more", false);
    cJSON_Delete(d);

    /* An edit's content follows the same rules. */
    msg_path(path, sizeof(path), first);
    char *long_text = repeat("\xc3\xa9", 4001, "");
    char *body = send_body(long_text, NULL);
    h_refused(&stack, "PUT", path, alice.tok, body, 400, "invalid_request", "'content'");
    free(body);
    free(long_text);
    h_refused(&stack, "PUT", path, alice.tok, "{\"content\":\" \"}", 400, "invalid_request",
              "'content'");
    h_refused(&stack, "PUT", path, alice.tok, "{}", 400, "invalid_request",
              "'content' is required");
    h_refused(&stack, "PUT", path, alice.tok, "{\"content\":\"x\",\"pinned\":true}", 400,
              "invalid_request", "pinned");

    /* Nothing refused was stored. */
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", room, NULL), 3);
    sqlite3_close(db);
    h_users_free(&alice, NULL);
}

#define KILL_THREADS 8

Test(messages, sigkill_loses_nothing_acknowledged)
{
    static const char *const extra[] = {UNLIMITED, "NATTER_REQUEST_TIMEOUT_MS=2000", NULL};
    user alice, bob;
    h_users_start(&stack, extra, &alice, "alice", &bob, "bob", NULL);
    h_proc *victim = h_spawn("messages", stack.env);
    natsConnection *nc = nats_connect();
    wait_instances(nc, 2);
    char room[ID_LEN];
    room_create(&alice, false, room);
    join(&bob, room);

    sender s[KILL_THREADS];
    pthread_t th[KILL_THREADS];
    atomic_bool stop = false;
    atomic_int nacked = 0;
    memset(s, 0, sizeof(s));
    for (int i = 0; i < KILL_THREADS; i++) {
        s[i].u = i % 2 ? &bob : &alice;
        s[i].room = room;
        s[i].thread = i;
        s[i].stop = &stop;
        s[i].nacked = &nacked;
        cr_assert_eq(pthread_create(&th[i], NULL, sender_run, &s[i]), 0);
    }

    /* Kill one instance once both are taking sends (at least a second in). */
    long t0 = mono_ms(), end = t0 + 15000;
    long long counts[2] = {0, 0};
    bool both = false;
    while (!both && mono_ms() < end) {
        sleep_ms(100);
        both = mono_ms() - t0 >= 1000 && send_counts(nc, counts, 2) == 2 && counts[0] >= 20 &&
               counts[1] >= 20;
    }
    int at_kill = atomic_load(&nacked);
    int status = h_kill(victim, SIGKILL);
    long t_kill = mono_ms();
    /* The senders go on past the gateway's timeout, so the sends the victim
     * held have failed, and until the survivor has acknowledged more. */
    while (mono_ms() < end && (mono_ms() - t_kill < 3000 || atomic_load(&nacked) - at_kill < 50))
        sleep_ms(50);
    atomic_store(&stop, true);
    for (int i = 0; i < KILL_THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert(both, "both instances never took sends: %lld and %lld", counts[0], counts[1]);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the victim was not killed");

    int n503 = 0, n504 = 0, nother = 0;
    for (int i = 0; i < KILL_THREADS; i++) {
        n503 += s[i].n503;
        n504 += s[i].n504;
        nother += s[i].nother;
        cr_assert_eq(s[i].nother, 0, "sender %d: a failure that is neither 503 nor 504: %s", i,
                     s[i].first_error);
    }
    int after = atomic_load(&nacked) - at_kill;
    cr_assert(after >= 50, "the survivor acknowledged only %d sends after the kill", after);

    /* Every acknowledged send is stored, under its client_ref, once. */
    char(*acks)[ID_LEN] = NULL;
    int nacks = acked_ids(s, KILL_THREADS, &acks);
    expect_rising(acks, nacks, "acknowledged ids");
    sqlite3 *db = db_open();
    expect_acked_stored(db, s, KILL_THREADS, room);
    long long rows = db_int(db, "SELECT COUNT(*) FROM messages WHERE room_id = ?1", room, NULL);
    cr_assert_eq(db_int(db,
                        "SELECT COUNT(*) - COUNT(DISTINCT user_id || ' ' || client_ref) "
                        "FROM messages WHERE room_id = ?1",
                        room, NULL),
                 0, "a client_ref appears twice");
    cr_assert(rows >= nacks, "%lld rows for %d acknowledged sends", rows, nacks);
    sqlite3_close(db);

    /* And history, read after the kill, has each of them. */
    char(*paged)[ID_LEN] = calloc((size_t)rows + 1, ID_LEN);
    int n = page_all(&alice, room, true, 100, paged, (int)rows + 1);
    cr_assert_eq(n, rows, "history has %d of %lld rows", n, rows);
    expect_rising(paged, n, "history after the kill");
    for (int i = 0; i < nacks; i++)
        cr_assert(bsearch(acks[i], paged, (size_t)n, ID_LEN, cmp_str) != NULL,
                  "acknowledged %s is not in history", acks[i]);
    char times[96];
    cr_log_info("sigkill: %d acknowledged (%d after the kill), %lld stored, %d answered 503, "
                "%d answered 504, killed after %ld ms (%s)",
                nacks, after, rows, n503, n504, t_kill - t0,
                senders_times(s, KILL_THREADS, times, sizeof(times)));

    free(paged);
    free(acks);
    senders_free(s, KILL_THREADS);
    natsConnection_Destroy(nc);
    h_users_free(&alice, &bob, NULL);
}

Test(messages, room_get_includes_latest_messages)
{
    user alice;
    h_users_start(&stack, NULL, &alice, "alice", NULL);
    char room[ID_LEN], empty[ID_LEN], ids[3][ID_LEN], path[128];
    room_create(&alice, false, room);
    room_create(&alice, false, empty);
    static const char *const texts[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++)
        send_id(&alice, room, texts[i], ids[i]);

    cJSON *d =
        h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s", room), alice.tok, NULL);
    h_expect_str(d, "id", room);
    const cJSON *list = h_field(d, "messages");
    cr_assert(cJSON_IsArray(list), "messages is not an array: %s", cJSON_PrintUnformatted(d));
    cr_assert_eq(cJSON_GetArraySize(list), 3, "%s", cJSON_PrintUnformatted(d));
    for (int i = 0; i < 3; i++) {
        const cJSON *m = cJSON_GetArrayItem(list, i);
        expect_message(m, room, &alice, texts[i], "text");
        h_expect_str(m, "id", ids[i]);
    }
    cJSON_Delete(d);

    d = h_ok(&stack, "GET", h_fmt(path, sizeof(path), "/api/rooms/%s", empty), alice.tok, NULL);
    list = h_field(d, "messages");
    cr_assert(cJSON_IsArray(list) && cJSON_GetArraySize(list) == 0, "%s",
              cJSON_PrintUnformatted(d));
    cJSON_Delete(d);
    h_users_free(&alice, NULL);
}

Test(messages, message_received_event)
{
    user alice, bob;
    h_users_start(&stack, NULL, &alice, "alice", &bob, "bob", NULL);
    char room[ID_LEN], path[128];
    room_create(&alice, false, room);
    join(&bob, room);
    watcher w;
    watch_start(&w, room);

    cJSON *d = send_ok(&bob, room, "  hello, room  ", "evt-1");
    expect_message(d, room, &bob, "hello, room", "text");
    h_expect_str(d, "client_ref", "evt-1");
    h_expect_bool(d, "edited", false);
    h_expect_str(d, "edited_at", NULL);
    h_expect_bool(d, "deleted", false);
    h_expect_str(d, "deleted_at", NULL);
    h_expect_str(d, "deleted_by", NULL);
    cJSON *e = next_event(&w, room, "message_received");
    expect_message(e, room, &bob, "hello, room", "text");
    expect_same(e, d);
    cJSON_Delete(e);
    cJSON_Delete(d);

    /* A file message over the same route; its event follows in order. */
    d = h_ok(&stack, "POST", msgs_path(path, sizeof(path), room), alice.tok,
             "{\"content\":\"report.pdf\",\"message_type\":\"file\"}");
    h_expect_str(d, "client_ref", NULL);
    e = next_event(&w, room, "message_received");
    expect_message(e, room, &alice, "report.pdf", "file");
    expect_same(e, d);
    cJSON_Delete(e);
    cJSON_Delete(d);

    /* A refused send publishes nothing: the next event is the next send's. */
    h_refused(&stack, "POST", path, alice.tok, "{\"content\":\"\"}", 400, "invalid_request", NULL);
    d = send_ok(&alice, room, "last", NULL);
    e = next_event(&w, room, "message_received");
    expect_same(e, d);
    cJSON_Delete(e);
    cJSON_Delete(d);

    watch_stop(&w);
    h_users_free(&alice, &bob, NULL);
}
