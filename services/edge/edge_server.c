/* The edge's WebSocket server. Everything here runs on the one lws service
 * thread except the NATS callbacks at the bottom of the file, which only
 * encode and hand items to the inbox. Per socket: the Phoenix channels
 * (edge_chan), an outbound queue of shared frames (edge_out), a frame budget
 * and the typing state of each joined room. Per topic ("room:<id>",
 * "user:<id>"): one NATS subscription while at least one local socket has it
 * joined, and the list of those joins. */
#include "edge_server.h"

#include "edge_chan.h"
#include "edge_codec.h"
#include "edge_frame.h"
#include "edge_out.h"
#include "edge_presence.h"
#include "nt_clock.h"
#include "nt_id.h"
#include "nt_log.h"
#include "nt_ratelimit.h"

/* uv.h first: lws's libuv declarations need it (LIBRARIES.md §3). */
#include <uv.h>

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD                   "edge"
#define SOCKET_PATH           "/socket/websocket"
#define TOKEN_MAX             8192
#define TICK_US               (200 * 1000)
#define HISTORY_PAGE          100
#define OUT_FRAME_MAX         (1024 * 1024) /* one reply or push, at most */
#define CLOSE_GRACE_S         2             /* a socket told to close is killed after this */
#define CLOSE_SERVICE_RESTART 1012
#define CLOSE_GOING_AWAY      1001
/* lws 4.1 writes a close frame for this value, which its public enum no
 * longer names ("LWS_WRITE_CLOSE is handled by lws_close_reason()"). */
#define WS_OPCODE_CLOSE_WRITE 4
#define HEARTBEAT_RATE        1.0 /* per second, per socket */
#define HEARTBEAT_BURST       10.0
#define IDLE_SWEEP_MS         1000
/* lws keeps a receive buffer of this size per socket for its life; a larger
 * message arrives in pieces, which receive() gathers. 1 KiB holds a typical
 * frame; lws's default (4 KiB) would be most of an idle socket's memory. */
#define RX_CHUNK 1024
/* Events waiting for the service thread, at most (each a frame shared by a
 * topic's sockets); past it the edge is far behind and drops them. */
#define INBOX_EVENTS_MAX 100000
/* A presence snapshot part stays under this (NATS's default payload cap is
 * 1 MiB; small parts keep one report from delaying the others). */
#define SNAPSHOT_PART_MAX (60 * 1024)
#define PRESENCE_REPORT   "chat.presence.report"

typedef struct edge_topic edge_topic;
typedef struct edge_conn edge_conn;
typedef struct edge_member edge_member;
typedef struct edge_typist edge_typist;

/* A user typing in a room, over all of that user's sockets on this edge:
 * the debounce and the automatic stop are per user and room. */
struct edge_typist {
    edge_topic *topic;
    char user_id[128];
    char username[EDGE_USERNAME_MAX];
    int64_t last_start, until;
    uint32_t sockets;           /* members of the user typing in the topic */
    edge_typist *tnext;         /* the topic's typists */
    edge_typist *snext, *sprev; /* every typist, for the sweep */
};

/* One joined channel of one socket (the edge_chan's data). */
struct edge_member {
    edge_conn *conn;
    edge_topic *topic;
    uint32_t idx; /* in topic->members */
    char join_ref[EDGE_REF_MAX + 1];
    /* Catch-up after a join with "after": live events are held meanwhile.
     * caught_up_to stays for the join's life: a message_received at or
     * below it is one the client has (from history or before), even when
     * its event comes late from another messages instance. */
    bool catching_up;
    edge_outq held;
    char caught_up_to[40];
    int catchup_sent;
    bool detached; /* replaced by a newer join of the topic: receives nothing */
    /* Presence (room topics): the join is tracked from its grant to its end.
     * Until its presence_state is pushed live frames are held, and diffs the
     * state already covers (seqs) are dropped for the join's life. */
    bool tracked;
    edge_pmeta meta;
    bool awaiting_presence;
    bool awaiting_profile; /* tracked once the socket's username is known */
    bool interrupted;      /* held frames were lost: phx_error when presence answers */
    edge_pseqs seqs;
    /* Typing. */
    bool typing; /* counted in its user's typist of the topic */
};

struct edge_topic {
    char name[EDGE_TOPIC_MAX + 1]; /* "room:<id>" or "user:<id>" */
    edge_member **members;
    uint32_t n, cap;
    uint32_t pending; /* joins waiting for authorisation: subscribed already */
    edge_typist *typists;
    nt_sub *sub;
    uint64_t tag; /* the subscription's, to drop events of an earlier one */
    edge_topic *hnext;
    /* Presence changes of this edge in the room not yet published: they go
     * out as one diff per tick, so a crowd joining at once costs each
     * member a few frames rather than one per joiner. */
    edge_pchange *pchanges;
    size_t npchanges, cappchanges;
    edge_topic *pnext; /* in the server's list of topics with changes */
    bool warned_crowd; /* its presence_state was too large once (logged once) */
};

struct edge_conn {
    struct lws *wsi;
    uint64_t id;
    char user_id[128];
    char username[EDGE_USERNAME_MAX]; /* "" until auth answers */
    bool profile_done;                /* auth answered (or failed to) */
    edge_chans chans;
    edge_outq out;
    nt_buf rx;                /* a message arriving in several pieces */
    int64_t frame_budget;     /* an nt_bucket at the server's frame rate */
    int64_t heartbeat_budget; /* heartbeats have their own, small one */
    uint32_t refused_in_row;  /* frames refused by the budget since the last one taken */
    int64_t last_rx_ms;       /* for the idle sweep */
    int close_code;           /* non-zero: close with it at the next chance */
    bool close_sent;          /* the close frame is out; waiting for the client's */
    const char *close_reason;
};

/* lws's per-connection data, for HTTP requests and sockets alike. */
typedef struct {
    edge_conn *conn;
    unsigned char *http_body; /* LWS_PRE + len, for /healthz and /metrics */
    size_t http_len;
} edge_pss;

/* Work handed from nats.c threads to the service thread. */
typedef enum {
    ITEM_EVENT,    /* a frame for every member of topic (tag checked) */
    ITEM_TO_CONN,  /* a ready frame for one socket */
    ITEM_JOIN,     /* the authorize reply of a join */
    ITEM_HISTORY,  /* a catch-up page */
    ITEM_PROFILE,  /* the socket's profile (username) */
    ITEM_GAP,      /* NATS may have lost events: every join must start again */
    ITEM_PRESENCE, /* the presence state for a join */
    ITEM_RESYNC,   /* a presence instance asks for a snapshot now */
} item_kind;

typedef struct edge_item {
    struct edge_item *next;
    item_kind kind;
    uint64_t conn_id, tag;
    char topic[EDGE_TOPIC_MAX + 1];
    char join_ref[EDGE_REF_MAX + 1];
    char after[40];
    edge_msg *msg;
    nt_status st;
    nt_response resp; /* owned copy */
} edge_item;

/* The context of one NATS request of the edge. */
typedef struct {
    edge_server *s;
    item_kind kind;
    uint64_t conn_id;
    char topic[EDGE_TOPIC_MAX + 1];
    char join_ref[EDGE_REF_MAX + 1];
    char ref[EDGE_REF_MAX + 1];
    char after[40];
} edge_rq;

struct edge_server {
    edge_opts o;
    nt_nats *nc;
    nt_verifier *verifier;
    nt_requester *rq;
    struct lws_context *ctx;
    /* lws runs on our own libuv loop (a "foreign loop"): epoll, so a wake-up
     * costs the same with 10 or 100 000 idle sockets; poll() would scan
     * them all each time. */
    uv_loop_t loop;
    bool loop_ready;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop_asked;
    bool draining;
    int64_t drain_deadline;
    bool done;
    lws_sorted_usec_list_t tick;

    pthread_mutex_t inbox_mu;
    edge_item *inbox_head, *inbox_tail;
    bool inbox_closed;   /* the lws context is going: items are dropped */
    size_t inbox_events; /* room and user events waiting */
    bool inbox_overflow; /* events were dropped: every join must start again */

    /* Sockets by id: slot in the low 32 bits, generation in the high. */
    edge_conn **slots;
    uint32_t *gens;
    uint32_t nslots, capslots, *free_slots, nfree;

    edge_topic **buckets;
    size_t nbuckets, ntopics;
    uint64_t next_tag;

    edge_typist *typists;                      /* every typist, for the automatic stop */
    nt_bucket_rate frame_rate, heartbeat_rate; /* the sockets' budgets */
    int64_t last_sweep_ms;

    /* The socket being upgraded: its verified user, from CONFIRM_UPGRADE to
     * ESTABLISHED (the same wsi, on this thread). */
    struct lws *pending_wsi;
    char pending_sub[128];

    /* Presence: one seq for every report and diff this edge publishes. */
    char id[NT_MICRO_ID_LEN]; /* when the caller names none */
    uint64_t pseq, next_phx, snapshot_round;
    edge_topic *ptopics; /* topics with unpublished presence changes */
    int64_t last_snapshot_ms;
    nt_sub *resync_sub;
    atomic_bool resync_pending; /* one ITEM_RESYNC in the inbox at most */
    int64_t presence_warned_ms;

    /* Counters for /healthz and /metrics. */
    uint64_t nconns, nsubs, deliveries, refused_upgrades, slow_closed, frames_in;
};

static void free_item(edge_item *it)
{
    edge_msg_unref(it->msg);
    nt_response_free(&it->resp);
    free(it);
}

/* ---- Inbox (any thread → service thread) ---------------------------------- */

static void inbox_push(edge_server *s, edge_item *it)
{
    pthread_mutex_lock(&s->inbox_mu);
    if (s->inbox_closed) {
        pthread_mutex_unlock(&s->inbox_mu);
        free_item(it);
        return;
    }
    if (it->kind == ITEM_EVENT) {
        /* A service thread this far behind must not grow without bound:
         * the event is dropped, and every join is told to start again
         * (replies are never dropped: joins count on theirs). */
        if (s->inbox_events >= INBOX_EVENTS_MAX) {
            s->inbox_overflow = true;
            pthread_mutex_unlock(&s->inbox_mu);
            free_item(it);
            return;
        }
        s->inbox_events++;
    }
    it->next = NULL;
    bool was_empty = s->inbox_head == NULL;
    if (s->inbox_tail != NULL)
        s->inbox_tail->next = it;
    else
        s->inbox_head = it;
    s->inbox_tail = it;
    /* One wake-up per batch: the service thread takes the whole inbox. Under
     * the lock, so that the context cannot go in between. */
    if (was_empty)
        lws_cancel_service(s->ctx);
    pthread_mutex_unlock(&s->inbox_mu);
}

/* Takes every waiting item; *overflow says whether events were dropped
 * since the last take. */
static edge_item *inbox_take_all(edge_server *s, bool *overflow)
{
    pthread_mutex_lock(&s->inbox_mu);
    edge_item *it = s->inbox_head;
    s->inbox_head = s->inbox_tail = NULL;
    s->inbox_events = 0;
    *overflow = s->inbox_overflow;
    s->inbox_overflow = false;
    pthread_mutex_unlock(&s->inbox_mu);
    return it;
}

/* ---- Sockets by id ---------------------------------------------------------- */

static void conn_register(edge_server *s, edge_conn *c)
{
    uint32_t slot;
    if (s->nfree > 0) {
        slot = s->free_slots[--s->nfree];
    } else {
        if (s->nslots == s->capslots) {
            uint32_t cap = s->capslots ? s->capslots * 2 : 64;
            s->capslots = cap;
            s->slots = realloc(s->slots, cap * sizeof(*s->slots));
            s->gens = realloc(s->gens, cap * sizeof(*s->gens));
            s->free_slots = realloc(s->free_slots, cap * sizeof(*s->free_slots));
            NT_ASSERT(s->slots != NULL && s->gens != NULL && s->free_slots != NULL);
        }
        slot = s->nslots++;
        s->gens[slot] = 0;
    }
    s->gens[slot]++;
    s->slots[slot] = c;
    c->id = ((uint64_t)s->gens[slot] << 32) | slot;
}

static void conn_unregister(edge_server *s, edge_conn *c)
{
    uint32_t slot = (uint32_t)(c->id & 0xffffffffu);
    s->slots[slot] = NULL;
    s->free_slots[s->nfree++] = slot;
}

static edge_conn *conn_find(edge_server *s, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu);
    if (slot >= s->nslots || s->slots[slot] == NULL || s->slots[slot]->id != id)
        return NULL;
    return s->slots[slot];
}

/* ---- Output ------------------------------------------------------------------- */

/* Closes c with code at the next chance: its queue is dropped now (a slow
 * reader must not hold memory), the close frame goes out when the socket can
 * take it, and a socket that cannot take even that is cut after a grace. */
static void conn_close(edge_conn *c, int code, const char *reason)
{
    if (c->close_code != 0)
        return;
    c->close_code = code;
    c->close_reason = reason;
    edge_outq_free(&c->out);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
    lws_callback_on_writable(c->wsi);
}

/* Queues m (a reference is taken) for c. */
static void conn_send(edge_server *s, edge_conn *c, edge_msg *m)
{
    if (c->close_code != 0)
        return;
    if (!edge_outq_push(&c->out, m, s->o.max_queue_bytes)) {
        s->slow_closed++;
        nt_log_info(MOD, "socket closed: it does not read its messages user=%s queued=%zu",
                    c->user_id, c->out.bytes);
        conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
        return;
    }
    if (c->out.n == 1)
        lws_callback_on_writable(c->wsi);
}

/* Queues a frame encoded in b for c. */
static void conn_send_buf(edge_server *s, edge_conn *c, const nt_buf *b)
{
    edge_msg *m = edge_msg_new(b->data, b->len, LWS_PRE);
    conn_send(s, c, m);
    edge_msg_unref(m);
}

static void send_reply(edge_server *s, edge_conn *c, const char *jr, const char *ref,
                       const char *topic, const char *response)
{
    nt_buf b;
    nt_buf_init(&b, OUT_FRAME_MAX);
    if (edge_frame_reply(&b, jr, ref, topic, "ok", response) == NT_OK)
        conn_send_buf(s, c, &b);
    nt_buf_free(&b);
}

static void send_error(edge_server *s, edge_conn *c, const char *jr, const char *ref,
                       const char *topic, const char *reason, const char *extra)
{
    nt_buf b;
    nt_buf_init(&b, OUT_FRAME_MAX);
    if (edge_frame_reply_error(&b, jr, ref, topic, reason, extra) == NT_OK)
        conn_send_buf(s, c, &b);
    nt_buf_free(&b);
}

static void send_push(edge_server *s, edge_conn *c, const char *jr, const char *ref,
                      const char *topic, const char *event, const char *payload)
{
    nt_buf b;
    nt_buf_init(&b, OUT_FRAME_MAX);
    if (edge_frame_push(&b, jr, ref, topic, event, payload, strlen(payload)) == NT_OK)
        conn_send_buf(s, c, &b);
    nt_buf_free(&b);
}

/* ---- Topics ------------------------------------------------------------------ */

static size_t topic_hash(const char *name, size_t nbuckets)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h & (nbuckets - 1));
}

static edge_topic *topic_find(edge_server *s, const char *name)
{
    for (edge_topic *t = s->buckets[topic_hash(name, s->nbuckets)]; t != NULL; t = t->hnext)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static void topics_grow(edge_server *s)
{
    size_t n = s->nbuckets * 2;
    edge_topic **b = calloc(n, sizeof(*b));
    NT_ASSERT(b != NULL);
    for (size_t i = 0; i < s->nbuckets; i++) {
        edge_topic *t = s->buckets[i];
        while (t != NULL) {
            edge_topic *next = t->hnext;
            size_t h = topic_hash(t->name, n);
            t->hnext = b[h];
            b[h] = t;
            t = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static void on_event(void *ctx, uint64_t tag, const nt_msg *msg);

/* The topic named name, created and subscribed when new. NULL when NATS
 * refuses the subscription. */
static edge_topic *topic_get(edge_server *s, const char *name)
{
    edge_topic *t = topic_find(s, name);
    if (t != NULL)
        return t;
    /* "room:<id>" → chat.room.<id>.>, "user:<id>" → chat.user.<id>.> */
    const char *colon = strchr(name, ':');
    NT_ASSERT(colon != NULL);
    char subject[EDGE_TOPIC_MAX + 16];
    snprintf(subject, sizeof(subject), "chat.%.*s.%s.>", (int)(colon - name), name, colon + 1);
    t = calloc(1, sizeof(*t));
    NT_ASSERT(t != NULL);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->tag = ++s->next_tag;
    if (nt_nats_subscribe(s->nc, subject, on_event, s, t->tag, &t->sub) != NT_OK) {
        free(t);
        return NULL;
    }
    s->nsubs++;
    if (s->ntopics + 1 > s->nbuckets)
        topics_grow(s);
    size_t h = topic_hash(name, s->nbuckets);
    t->hnext = s->buckets[h];
    s->buckets[h] = t;
    s->ntopics++;
    return t;
}

static void presence_flush_topic(edge_server *s, edge_topic *t);

static void topic_drop(edge_server *s, edge_topic *t)
{
    /* The last leaves of the room still go out. */
    presence_flush_topic(s, t);
    edge_topic **pp = &s->buckets[topic_hash(t->name, s->nbuckets)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    s->ntopics--;
    if (t->sub != NULL) {
        nt_sub_destroy(t->sub);
        s->nsubs--;
    }
    free(t->members);
    free(t->pchanges);
    free(t);
}

static void topic_release_if_unused(edge_server *s, edge_topic *t)
{
    if (t != NULL && t->n == 0 && t->pending == 0)
        topic_drop(s, t);
}

static void topic_add(edge_topic *t, edge_member *m)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->members = realloc(t->members, t->cap * sizeof(*t->members));
        NT_ASSERT(t->members != NULL);
    }
    m->topic = t;
    m->idx = t->n;
    t->members[t->n++] = m;
}

static void topic_remove(edge_server *s, edge_member *m)
{
    edge_topic *t = m->topic;
    if (t == NULL)
        return;
    edge_member *last = t->members[--t->n];
    t->members[m->idx] = last;
    last->idx = m->idx;
    m->topic = NULL;
    topic_release_if_unused(s, t);
}

/* ---- Typing ------------------------------------------------------------------ */

static const char *room_id_of(const char *topic)
{
    return strncmp(topic, "room:", 5) == 0 ? topic + 5 : NULL;
}

static void typing_publish(edge_server *s, const edge_typist *ty, bool typing)
{
    const char *room = room_id_of(ty->topic->name);
    if (room == NULL)
        return;
    nt_buf b;
    nt_buf_init(&b, 1024);
    if (edge_codec_typing(ty->user_id, ty->username[0] ? ty->username : NULL, typing, &b) ==
        NT_OK) {
        char subject[EDGE_TOPIC_MAX + 48];
        snprintf(subject, sizeof(subject), "chat.room.%s.typing_indicator", room);
        nt_status st = nt_nats_publish(s->nc, subject, b.data, b.len);
        if (st != NT_OK)
            nt_log_warn(MOD, "typing not published room=%s err=\"%s\"", room, nt_status_str(st));
    }
    nt_buf_free(&b);
}

static edge_typist *typist_find(edge_topic *t, const char *user_id)
{
    for (edge_typist *ty = t->typists; ty != NULL; ty = ty->tnext)
        if (strcmp(ty->user_id, user_id) == 0)
            return ty;
    return NULL;
}

/* Ends ty: publishes the stop, clears its members' flags, frees it. */
static void typist_end(edge_server *s, edge_typist *ty)
{
    edge_topic *t = ty->topic;
    typing_publish(s, ty, false);
    for (uint32_t i = 0; i < t->n && ty->sockets > 0; i++) {
        edge_member *x = t->members[i];
        if (x->typing && strcmp(x->conn->user_id, ty->user_id) == 0) {
            x->typing = false;
            ty->sockets--;
        }
    }
    edge_typist **pp = &t->typists;
    while (*pp != ty)
        pp = &(*pp)->tnext;
    *pp = ty->tnext;
    if (ty->sprev != NULL)
        ty->sprev->snext = ty->snext;
    else
        s->typists = ty->snext;
    if (ty->snext != NULL)
        ty->snext->sprev = ty->sprev;
    free(ty);
}

static void typing_start(edge_server *s, edge_member *m, int64_t now)
{
    edge_conn *c = m->conn;
    edge_typist *ty = typist_find(m->topic, c->user_id);
    bool fresh = ty == NULL;
    if (fresh) {
        ty = calloc(1, sizeof(*ty));
        NT_ASSERT(ty != NULL);
        ty->topic = m->topic;
        snprintf(ty->user_id, sizeof(ty->user_id), "%s", c->user_id);
        ty->tnext = m->topic->typists;
        m->topic->typists = ty;
        ty->snext = s->typists;
        if (s->typists != NULL)
            s->typists->sprev = ty;
        s->typists = ty;
    }
    if (ty->username[0] == '\0' && c->username[0] != '\0')
        snprintf(ty->username, sizeof(ty->username), "%s", c->username);
    if (!m->typing) {
        m->typing = true;
        ty->sockets++;
    }
    if (fresh || now - ty->last_start >= s->o.typing_debounce_ms) {
        typing_publish(s, ty, true);
        ty->last_start = now;
    }
    ty->until = now + s->o.typing_timeout_ms;
}

/* m stops typing; its user stops when none of their sockets types on. */
static void typing_stop(edge_server *s, edge_member *m)
{
    if (!m->typing)
        return;
    edge_typist *ty = typist_find(m->topic, m->conn->user_id);
    NT_ASSERT(ty != NULL && ty->sockets > 0);
    m->typing = false;
    if (--ty->sockets == 0)
        typist_end(s, ty);
}

/* ---- Presence ----------------------------------------------------------------- */

/* Publishes a report made in b to the presence service. */
static void presence_report(edge_server *s, const nt_buf *b, const char *what)
{
    nt_status st = nt_nats_publish(s->nc, PRESENCE_REPORT, b->data, b->len);
    if (st != NT_OK)
        nt_log_warn(MOD, "presence report not published type=%s err=\"%s\"", what,
                    nt_status_str(st));
}

static void presence_conn(edge_server *s, const edge_conn *c, const char *type)
{
    nt_buf b;
    nt_buf_init(&b, 1024);
    if (edge_presence_report_conn(&b, s->o.instance_id, ++s->pseq, type, c->id, c->user_id) ==
        NT_OK)
        presence_report(s, &b, type);
    nt_buf_free(&b);
}

/* Publishes t's pending changes as one Phoenix diff, with this edge's name
 * and newest seq in headers (every change in it has a seq at or below). */
static void presence_flush_topic(edge_server *s, edge_topic *t)
{
    if (t->npchanges == 0)
        return;
    edge_topic **pp = &s->ptopics;
    while (*pp != t)
        pp = &(*pp)->pnext;
    *pp = t->pnext;
    t->pnext = NULL;
    const char *room = room_id_of(t->name);
    nt_buf b;
    nt_buf_init(&b, SIZE_MAX / 2);
    if (room != NULL && edge_presence_diff(&b, t->pchanges, t->npchanges) == NT_OK) {
        char subject[EDGE_TOPIC_MAX + 48], seqs[24];
        snprintf(subject, sizeof(subject), "chat.room.%s.presence_diff", room);
        snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)s->pseq);
        const nt_header h[] = {{"Chat-Presence-Edge", s->o.instance_id},
                               {"Chat-Presence-Seq", seqs}};
        nt_status st = nt_nats_publish_hdrs(s->nc, subject, b.data, b.len, h, 2);
        if (st != NT_OK)
            nt_log_warn(MOD, "presence_diff not published room=%s err=\"%s\"", room,
                        nt_status_str(st));
    }
    nt_buf_free(&b);
    t->npchanges = 0;
}

static void presence_flush(edge_server *s)
{
    while (s->ptopics != NULL)
        presence_flush_topic(s, s->ptopics);
}

/* Reports m's join or leave to presence at once; the room's diff follows at
 * the next tick. The report goes first, so a presence instance that answers
 * a snapshot after the diff was delivered has already applied it. */
static void presence_change(edge_server *s, edge_member *m, bool join)
{
    edge_topic *t = m->topic;
    const char *room = room_id_of(t->name);
    edge_conn *c = m->conn;
    uint64_t seq = ++s->pseq;
    nt_buf b;
    nt_buf_init(&b, 4096);
    nt_status st = join ? edge_presence_report_join(&b, s->o.instance_id, seq, c->id, c->user_id,
                                                    room, &m->meta)
                        : edge_presence_report_leave(&b, s->o.instance_id, seq, c->id, c->user_id,
                                                     room, m->meta.phx_ref);
    if (st == NT_OK)
        presence_report(s, &b, join ? "join" : "leave");
    nt_buf_free(&b);
    if (t->npchanges == t->cappchanges) {
        t->cappchanges = t->cappchanges ? t->cappchanges * 2 : 4;
        edge_pchange *v = realloc(t->pchanges, t->cappchanges * sizeof(*t->pchanges));
        NT_ASSERT(v != NULL);
        t->pchanges = v;
    }
    if (t->npchanges == 0) {
        t->pnext = s->ptopics;
        s->ptopics = t;
    }
    edge_pchange *ch = &t->pchanges[t->npchanges++];
    snprintf(ch->user_id, sizeof(ch->user_id), "%s", c->user_id);
    ch->meta = m->meta;
    ch->join = join;
}

/* A granted room join becomes a tracked presence: one meta per channel. */
static void presence_track(edge_server *s, edge_member *m)
{
    edge_conn *c = m->conn;
    snprintf(m->meta.phx_ref, sizeof(m->meta.phx_ref), "%s-%llu", s->o.instance_id,
             (unsigned long long)++s->next_phx);
    /* The profile is asked at connect; a join that beats its answer shows
     * the user id rather than nothing. */
    snprintf(m->meta.username, sizeof(m->meta.username), "%s",
             c->username[0] ? c->username : c->user_id);
    nt_clock_iso8601(nt_clock_now_ms(), m->meta.online_at);
    m->tracked = true;
    presence_change(s, m, true);
}

static void presence_untrack(edge_server *s, edge_member *m)
{
    if (!m->tracked || m->topic == NULL)
        return;
    m->tracked = false;
    presence_change(s, m, false);
}

/* Sends presence every socket of this edge with its tracked joins, in parts
 * of consecutive seqs (nothing else is published between them). Also the
 * edge's heartbeat to presence: an edge without sockets sends one empty
 * part. */
static void presence_snapshot(edge_server *s)
{
    nt_buf all, part;
    nt_buf_init(&all, SIZE_MAX / 2);
    nt_buf_init(&part, SNAPSHOT_PART_MAX * 2);
    size_t *ends = NULL, nends = 0, cap = 0;
    const char **rooms = NULL;
    const edge_pmeta **metas = NULL;
    size_t mcap = 0;
    for (uint32_t i = 0; i < s->nslots; i++) {
        edge_conn *c = s->slots[i];
        if (c == NULL)
            continue;
        if (mcap < c->chans.n) {
            mcap = c->chans.n;
            const char **r = realloc(rooms, mcap * sizeof(*rooms));
            NT_ASSERT(r != NULL);
            rooms = r;
            const edge_pmeta **mt = realloc(metas, mcap * sizeof(*metas));
            NT_ASSERT(mt != NULL);
            metas = mt;
        }
        size_t n = 0;
        for (size_t k = 0; k < c->chans.n; k++) {
            edge_chan *ch = &c->chans.v[k];
            edge_member *m = ch->joined_ref[0] ? ch->data : NULL;
            if (m != NULL && m->tracked && m->topic != NULL) {
                rooms[n] = room_id_of(m->topic->name);
                metas[n++] = &m->meta;
            }
        }
        if (nends > 0)
            nt_buf_append_str(&all, ",");
        edge_presence_snapshot_conn(&all, c->id, c->user_id, rooms, metas, n);
        if (nends == cap) {
            cap = cap ? cap * 2 : 64;
            size_t *e = realloc(ends, cap * sizeof(*ends));
            NT_ASSERT(e != NULL);
            ends = e;
        }
        ends[nends++] = all.len;
    }
    /* Parts: consecutive entries up to SNAPSHOT_PART_MAX each (an entry is
     * never split). First count them, then publish. */
    size_t parts = 0, start = 0;
    for (size_t i = 0; i < nends;) {
        size_t j = i;
        while (j + 1 < nends && ends[j + 1] - start <= SNAPSHOT_PART_MAX)
            j++;
        parts++;
        start = ends[j];
        i = j + 1;
    }
    if (parts == 0)
        parts = 1;
    uint64_t round = ++s->snapshot_round;
    start = 0;
    size_t i = 0;
    for (size_t p = 0; p < parts; p++) {
        size_t j = i;
        const char *from = all.data != NULL ? all.data + start : "";
        size_t len = 0;
        if (nends > 0) {
            while (j + 1 < nends && ends[j + 1] - start <= SNAPSHOT_PART_MAX)
                j++;
            len = ends[j] - start;
            if (*from == ',') {
                from++;
                len--;
            }
        }
        nt_buf_reset(&part);
        if (edge_presence_report_snapshot(&part, s->o.instance_id, ++s->pseq, round, p, parts, from,
                                          len) == NT_OK)
            presence_report(s, &part, "snapshot");
        if (nends > 0) {
            start = ends[j];
            i = j + 1;
        }
    }
    free(ends);
    free(rooms);
    free(metas);
    nt_buf_free(&part);
    nt_buf_free(&all);
    s->last_snapshot_ms = nt_clock_mono_ms();
}

/* True when the diff in msg is already in the state m's client has. */
static bool presence_covered(const edge_member *m, const edge_msg *msg)
{
    return msg->pres_edge[0] != '\0' && edge_pseqs_covers(&m->seqs, msg->pres_edge, msg->pres_seq);
}

/* ---- Joins -------------------------------------------------------------------- */

static bool member_holds(const edge_member *m)
{
    return m->catching_up || m->awaiting_presence;
}

/* Ends a join: its presence leaves, typing stops, the topic forgets it, held
 * frames go. */
static void member_release(edge_server *s, edge_member *m)
{
    if (m == NULL)
        return;
    presence_untrack(s, m);
    if (m->topic != NULL)
        typing_stop(s, m);
    topic_remove(s, m);
    edge_outq_free(&m->held);
    edge_pseqs_free(&m->seqs);
    free(m);
}

/* True when m's client already has the message of this frame. */
static bool already_sent(const edge_member *m, const edge_msg *msg)
{
    return msg->msg_id[0] != '\0' && m->caught_up_to[0] != '\0' &&
           strcmp(msg->msg_id, m->caught_up_to) <= 0;
}

/* Sends the frames held for m during its catch-up and presence wait, less
 * what the client already has. */
static void release_held(edge_server *s, edge_member *m)
{
    edge_msg *h;
    while ((h = edge_outq_peek(&m->held)) != NULL) {
        /* Ids rise in commit order within a room, so a held message at or
         * below the newest one catch-up read was in that read. */
        if (!already_sent(m, h) && !presence_covered(m, h))
            conn_send(s, m->conn, h);
        edge_outq_pop(&m->held);
    }
    edge_outq_free(&m->held);
}

/* Held frames could not be kept: while the presence state is awaited they
 * include diffs the client needs, so the join starts again (phx_error when
 * presence answers: m may not go from under its caller now). */
static void held_lost(edge_member *m)
{
    edge_outq_free(&m->held);
    m->detached = true;
    m->interrupted = true;
}

/* The join of topic on c ends with phx_error: phoenix.js rejoins (with its
 * "after", so it catches up). A rejoin already waiting for rooms stays. */
static void join_interrupt(edge_server *s, edge_conn *c, const char *name)
{
    edge_chan *ch = edge_chans_find(&c->chans, name);
    if (ch == NULL || ch->joined_ref[0] == '\0')
        return;
    char topic[EDGE_TOPIC_MAX + 1], jr[EDGE_REF_MAX + 1], pending[EDGE_REF_MAX + 1];
    snprintf(topic, sizeof(topic), "%s", ch->topic);
    snprintf(jr, sizeof(jr), "%s", ch->joined_ref);
    snprintf(pending, sizeof(pending), "%s", ch->pending_ref);
    send_push(s, c, jr, jr, topic, "phx_error", "{\"reason\":\"events_interrupted\"}");
    member_release(s, edge_chans_remove(&c->chans, topic));
    if (pending[0] != '\0')
        edge_chans_join_begin(&c->chans, topic, pending);
}

static edge_member *member_of(edge_conn *c, const char *topic)
{
    edge_chan *ch = edge_chans_find(&c->chans, topic);
    return ch != NULL && ch->joined_ref[0] != '\0' ? ch->data : NULL;
}

static void catchup_finish(edge_server *s, edge_member *m, bool truncated, const char *reason);

static nt_status request(edge_server *s, edge_conn *c, const char *subject, const nt_buf *body,
                         const edge_rq *proto);

static void send_history_request(edge_server *s, edge_member *m, const char *after)
{
    edge_conn *c = m->conn;
    int left = s->o.catchup_max - m->catchup_sent;
    int limit = left < HISTORY_PAGE ? left : HISTORY_PAGE;
    nt_buf body;
    nt_buf_init(&body, 1024);
    edge_rq proto = {.kind = ITEM_HISTORY};
    snprintf(proto.topic, sizeof(proto.topic), "%s", m->topic->name);
    snprintf(proto.join_ref, sizeof(proto.join_ref), "%s", m->join_ref);
    snprintf(proto.after, sizeof(proto.after), "%s", after);
    nt_status st = edge_codec_history_body(room_id_of(m->topic->name), after, limit, &body);
    if (st == NT_OK)
        st = request(s, c, "chat.messages.history", &body, &proto);
    nt_buf_free(&body);
    if (st != NT_OK)
        catchup_finish(s, m, true, "unavailable");
}

/* Ends a catch-up: tells the client when it did not get everything, then
 * releases the live frames held meanwhile, less the messages catch-up sent. */
static void catchup_finish(edge_server *s, edge_member *m, bool truncated, const char *reason)
{
    edge_conn *c = m->conn;
    if (c->out.bytes + m->held.bytes > s->o.max_queue_bytes) {
        /* The last page and the held frames do not fit together: the held
         * ones go, and the client pages them over REST instead. */
        if (m->awaiting_presence) {
            held_lost(m);
            return;
        }
        edge_outq_free(&m->held);
        if (!truncated)
            reason = "too_many";
        truncated = true;
    }
    if (truncated) {
        /* The client pages the rest over REST from this position. */
        char payload[160];
        snprintf(payload, sizeof(payload), "{\"after\":\"%s\",\"reason\":\"%s\"}", m->caught_up_to,
                 reason);
        send_push(s, c, m->join_ref, NULL, m->topic->name, "catch_up_incomplete", payload);
    }
    m->catching_up = false;
    if (!m->awaiting_presence)
        release_held(s, m);
}

/* Pushes m's presence_state: the service's answer (body, NULL when none)
 * with this edge's part from its own joins of the topic, or {} for a crowd
 * past the cap (crowd: presence said so), then releases what was held
 * unless catch-up still runs. */
static void presence_state_push(edge_server *s, edge_conn *c, edge_member *m, const char *body,
                                bool crowd)
{
    edge_topic *t = m->topic;
    size_t cap = s->o.presence_state_max;
    const char **users = calloc(t->n + 1, sizeof(*users));
    const edge_pmeta **metas = calloc(t->n + 1, sizeof(*metas));
    NT_ASSERT(users != NULL && metas != NULL);
    size_t n = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->members[i]->tracked) {
            users[n] = t->members[i]->conn->user_id;
            metas[n++] = &t->members[i]->meta;
        }
    }
    nt_buf b;
    nt_buf_init(&b, OUT_FRAME_MAX);
    /* A meta prints to 90 bytes at least: a crowd that cannot fit is not
     * built at all (each join of it would cost the whole crowd's JSON). */
    nt_status st = crowd || n * EDGE_PRESENCE_META_MIN > cap
                       ? NT_ETOOBIG
                       : edge_presence_state(body, body != NULL ? strlen(body) : 0,
                                             s->o.instance_id, users, metas, n, &b, &m->seqs);
    free(users);
    free(metas);
    /* Every diff this edge published so far is in the local part. */
    edge_pseqs_set(&m->seqs, s->o.instance_id, s->pseq);
    m->awaiting_presence = false;
    if (st != NT_OK || b.len > cap) {
        /* A crowd too large for one frame on a socket's queue: the client
         * still gets a state to sync on, and every change from now on. */
        if (!t->warned_crowd)
            nt_log_warn(MOD,
                        "presence_state too large: sent empty (logged once per room) "
                        "topic=%s joins=%zu",
                        t->name, n);
        t->warned_crowd = true;
        nt_buf_reset(&b);
        nt_buf_append_str(&b, "{}");
    }
    nt_buf_append(&b, "", 1);
    send_push(s, c, m->join_ref, NULL, t->name, "presence_state", b.data);
    nt_buf_free(&b);
    if (!m->catching_up)
        release_held(s, m);
}

static void on_presence_item(edge_server *s, edge_item *it)
{
    edge_conn *c = conn_find(s, it->conn_id);
    if (c == NULL)
        return;
    edge_member *m = member_of(c, it->topic);
    if (m == NULL || strcmp(m->join_ref, it->join_ref) != 0 || !m->awaiting_presence)
        return;
    if (m->interrupted) {
        join_interrupt(s, c, it->topic);
        return;
    }
    if (m->detached) {
        m->awaiting_presence = false; /* replaced: its successor asks again */
        return;
    }
    bool answered = it->st == NT_OK && it->resp.http == 200 && it->resp.data != NULL;
    int64_t now = nt_clock_mono_ms();
    /* 413 is a crowd larger than the state cap: expected, and the state is
     * then {} anyway. Anything else is logged, once a second at most. */
    if (!answered && it->resp.http != 413 && now - s->presence_warned_ms >= 1000) {
        s->presence_warned_ms = now;
        nt_log_warn(MOD,
                    "presence did not answer: the state has this edge's joins only topic=%s "
                    "err=\"%s\" http=%d",
                    it->topic, nt_status_str(it->st), it->resp.http);
    }
    /* A room too large for presence to send is too large for this edge to
     * send either: its own part alone would be a misleading list. */
    presence_state_push(s, c, m, answered ? it->resp.data : NULL, it->resp.http == 413);
}

/* Tracks m's join, then asks presence for the room's state: it includes the
 * joiner. */
static void presence_begin(edge_server *s, edge_conn *c, edge_member *m)
{
    presence_track(s, m);
    nt_buf body;
    nt_buf_init(&body, 256);
    edge_rq proto = {.kind = ITEM_PRESENCE};
    snprintf(proto.topic, sizeof(proto.topic), "%s", m->topic->name);
    snprintf(proto.join_ref, sizeof(proto.join_ref), "%s", m->join_ref);
    /* presence refuses (413) a state larger than the edge would send. */
    nt_status st = nt_buf_appendf(&body, "{\"room_id\":\"%s\",\"max_bytes\":%zu}",
                                  room_id_of(m->topic->name), s->o.presence_state_max);
    if (st == NT_OK)
        st = request(s, c, "chat.presence.get", &body, &proto);
    nt_buf_free(&body);
    if (st != NT_OK)
        presence_state_push(s, c, m, NULL, false);
}

/* The socket's profile came (or will not): joins waiting for it start their
 * presence. */
static void on_profile_item(edge_server *s, edge_conn *c, edge_item *it)
{
    if (it->st == NT_OK && it->resp.http == 200 &&
        !edge_codec_username(it->resp.data, it->resp.len, c->username, sizeof(c->username)))
        c->username[0] = '\0';
    c->profile_done = true;
    /* Starting or ending a join may move the channel table: topics first. */
    size_t n = 0;
    char(*topics)[EDGE_TOPIC_MAX + 1] = calloc(c->chans.n + 1, sizeof(*topics));
    NT_ASSERT(topics != NULL);
    for (size_t k = 0; k < c->chans.n; k++) {
        edge_member *m = c->chans.v[k].joined_ref[0] ? c->chans.v[k].data : NULL;
        if (m != NULL && m->awaiting_profile)
            snprintf(topics[n++], sizeof(topics[0]), "%s", c->chans.v[k].topic);
    }
    for (size_t i = 0; i < n; i++) {
        edge_member *m = member_of(c, topics[i]);
        if (m == NULL || !m->awaiting_profile)
            continue;
        m->awaiting_profile = false;
        if (m->interrupted)
            join_interrupt(s, c, topics[i]);
        else if (m->detached)
            m->awaiting_presence = false; /* replaced: its successor tracks */
        else
            presence_begin(s, c, m);
    }
    free(topics);
}

/* Joins that need no service: the user's own topic. */
static void join_done(edge_server *s, edge_conn *c, const char *topic, const char *jr, bool ok,
                      const char *reason, const char *after)
{
    edge_chan *ch = edge_chans_find(&c->chans, topic);
    if (ch == NULL || strcmp(ch->pending_ref, jr) != 0)
        return; /* replaced or left meanwhile */
    edge_member *m = NULL;
    edge_topic *t = NULL;
    if (ok) {
        t = topic_get(s, topic);
        if (t == NULL) {
            ok = false;
            reason = "unavailable";
        }
    }
    if (ok) {
        m = calloc(1, sizeof(*m));
        NT_ASSERT(m != NULL);
        m->conn = c;
        snprintf(m->join_ref, sizeof(m->join_ref), "%s", jr);
        edge_outq_init(&m->held);
        topic_add(t, m);
    }
    edge_join_outcome out;
    edge_chans_join_done(&c->chans, topic, jr, ok, m, &out);
    NT_ASSERT(out.current);
    if (ok)
        send_reply(s, c, jr, jr, topic, NULL);
    else
        send_error(s, c, jr, jr, topic, reason, NULL);
    if (out.had_old) {
        send_push(s, c, out.old_ref, out.old_ref, topic, "phx_close", "{}");
        member_release(s, out.old_data);
    }
    if (ok && room_id_of(topic) != NULL) {
        /* Live frames wait for the presence state. The meta carries the
         * username: a join that beats the socket's profile waits for it. */
        m->awaiting_presence = true;
        if (c->profile_done)
            presence_begin(s, c, m);
        else
            m->awaiting_profile = true;
    }
    if (ok && after != NULL && after[0] != '\0') {
        m->catching_up = true;
        snprintf(m->caught_up_to, sizeof(m->caught_up_to), "%s", after);
        if (s->o.catchup_max > 0)
            send_history_request(s, m, after);
        else
            catchup_finish(s, m, true, "catch_up_disabled");
    }
}

static void on_join_decided(edge_server *s, edge_conn *c, edge_item *it)
{
    edge_join_verdict v = edge_codec_authorize_verdict(it->st, &it->resp);
    const char *reason = v == EDGE_JOIN_FORBIDDEN   ? "forbidden"
                         : v == EDGE_JOIN_NOT_FOUND ? "not_found"
                                                    : "unavailable";
    if (v == EDGE_JOIN_UNAVAILABLE)
        nt_log_warn(MOD, "join not decided: rooms did not answer topic=%s err=\"%s\" http=%d",
                    it->topic, nt_status_str(it->st), it->resp.http);
    join_done(s, c, it->topic, it->join_ref, v == EDGE_JOIN_OK, reason, it->after);
}

/* Every join that asked rooms gets here exactly once, whatever became of its
 * socket: the subscription taken at the join's start is given back. */
static void on_join_item(edge_server *s, edge_item *it)
{
    edge_topic *t = topic_find(s, it->topic);
    if (t != NULL && t->pending > 0)
        t->pending--;
    edge_conn *c = conn_find(s, it->conn_id);
    if (c != NULL)
        on_join_decided(s, c, it);
    /* Looked up again: the join may have dropped the topic meanwhile. */
    topic_release_if_unused(s, topic_find(s, it->topic));
}

static void on_history_item(edge_server *s, edge_item *it)
{
    edge_conn *c = conn_find(s, it->conn_id);
    if (c == NULL)
        return;
    edge_member *m = member_of(c, it->topic);
    if (m == NULL || strcmp(m->join_ref, it->join_ref) != 0 || !m->catching_up || m->detached)
        return;
    if (it->st != NT_OK || it->resp.http != 200) {
        nt_log_warn(MOD, "catch-up failed topic=%s err=\"%s\" http=%d", it->topic,
                    nt_status_str(it->st), it->resp.http);
        catchup_finish(s, m, true, it->resp.http == 429 ? "rate_limited" : "unavailable");
        return;
    }
    edge_msg **msgs = NULL;
    size_t n = 0;
    bool more = false;
    char last[40] = "";
    if (edge_codec_history_page(it->resp.data, it->resp.len, m->join_ref, it->topic, LWS_PRE, &msgs,
                                &n, &more, last) != NT_OK) {
        for (size_t i = 0; i < n; i++)
            edge_msg_unref(msgs[i]);
        free(msgs);
        catchup_finish(s, m, true, "internal");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        conn_send(s, c, msgs[i]);
        edge_msg_unref(msgs[i]);
    }
    free(msgs);
    m->catchup_sent += (int)n;
    if (last[0] != '\0')
        snprintf(m->caught_up_to, sizeof(m->caught_up_to), "%s", last);
    if (more && n > 0 && m->catchup_sent < s->o.catchup_max)
        send_history_request(s, m, m->caught_up_to);
    else
        catchup_finish(s, m, more, "too_many");
}

static void on_event_item(edge_server *s, edge_item *it)
{
    edge_topic *t = topic_find(s, it->topic);
    if (t == NULL || t->tag != it->tag)
        return; /* an earlier subscription's late delivery */
    for (uint32_t i = 0; i < t->n; i++) {
        edge_member *m = t->members[i];
        if (m->detached || already_sent(m, it->msg))
            continue;
        /* Held and queued frames together stay under the socket's cap, so
         * that releasing the held ones later cannot overflow it. */
        size_t room_left = m->conn->out.bytes < s->o.max_queue_bytes
                               ? s->o.max_queue_bytes - m->conn->out.bytes
                               : 0;
        if (member_holds(m) && !edge_outq_push(&m->held, it->msg, room_left)) {
            if (m->awaiting_presence) {
                held_lost(m);
                continue;
            }
            /* History is slow, not the client: give up the catch-up (the
             * client pages the gap over REST) rather than the socket. */
            edge_outq_free(&m->held);
            catchup_finish(s, m, true, "too_many");
        }
        if (!member_holds(m) && !presence_covered(m, it->msg))
            conn_send(s, m->conn, it->msg);
        s->deliveries++;
    }
}

/* Events may have been lost (a NATS reconnect, a slow subscription): a
 * silent gap is the one thing a client cannot detect. Every join gets
 * phx_error, which makes phoenix.js rejoin (with its "after", so it catches
 * up), and is dropped here so that the rejoin starts afresh. */
static void on_gap(edge_server *s)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < s->nslots; i++) {
        edge_conn *c = s->slots[i];
        if (c == NULL)
            continue;
        size_t k = 0;
        while (k < c->chans.n) {
            edge_chan *ch = &c->chans.v[k];
            if (ch->joined_ref[0] == '\0') {
                k++;
                continue;
            }
            char topic[EDGE_TOPIC_MAX + 1];
            snprintf(topic, sizeof(topic), "%s", ch->topic);
            join_interrupt(s, c, topic);
            n++;
            k = 0; /* the table may have moved */
        }
    }
    nt_log_warn(MOD, "events may have been lost: %llu joins told to rejoin", (unsigned long long)n);
}

static void process_inbox(edge_server *s)
{
    bool overflow = false;
    edge_item *it = inbox_take_all(s, &overflow);
    while (it != NULL) {
        edge_item *next = it->next;
        switch (it->kind) {
        case ITEM_EVENT:
            on_event_item(s, it);
            break;
        case ITEM_TO_CONN: {
            edge_conn *c = conn_find(s, it->conn_id);
            if (c != NULL)
                conn_send(s, c, it->msg);
            break;
        }
        case ITEM_JOIN:
            on_join_item(s, it);
            break;
        case ITEM_HISTORY:
            on_history_item(s, it);
            break;
        case ITEM_GAP:
            on_gap(s);
            break;
        case ITEM_PRESENCE:
            on_presence_item(s, it);
            break;
        case ITEM_RESYNC: {
            /* At most one snapshot a second however often it is asked. */
            atomic_store(&s->resync_pending, false);
            int64_t now = nt_clock_mono_ms();
            if (now - s->last_snapshot_ms >= 1000)
                presence_snapshot(s);
            else
                s->last_snapshot_ms = now + 1000 - s->o.presence_interval_ms;
            break;
        }
        case ITEM_PROFILE: {
            edge_conn *c = conn_find(s, it->conn_id);
            if (c != NULL)
                on_profile_item(s, c, it);
            break;
        }
        }
        free_item(it);
        it = next;
    }
    if (overflow) {
        nt_log_warn(MOD, "events dropped: the service thread fell %d events behind",
                    INBOX_EVENTS_MAX);
        on_gap(s);
    }
}

/* ---- NATS requests -------------------------------------------------------------- */

/* Runs on a nats.c or timer thread, once per request. */
static void on_response(void *ctx, nt_status st, const nt_response *resp)
{
    edge_rq *rq = ctx;
    edge_server *s = rq->s;
    edge_item *it = calloc(1, sizeof(*it));
    NT_ASSERT(it != NULL);
    it->kind = rq->kind;
    it->conn_id = rq->conn_id;
    it->st = st;
    snprintf(it->topic, sizeof(it->topic), "%s", rq->topic);
    snprintf(it->join_ref, sizeof(it->join_ref), "%s", rq->join_ref);
    snprintf(it->after, sizeof(it->after), "%s", rq->after);
    if (rq->kind == ITEM_TO_CONN) {
        /* A client push: its reply frame is made here, off the service thread. */
        nt_buf b;
        nt_buf_init(&b, OUT_FRAME_MAX);
        if (edge_codec_service_reply(rq->join_ref, rq->ref, rq->topic, st, resp, &b) != NT_OK) {
            nt_buf_reset(&b);
            edge_frame_reply_error(&b, rq->join_ref, rq->ref, rq->topic, "internal", NULL);
        }
        it->msg = edge_msg_new(b.data, b.len, LWS_PRE);
        nt_buf_free(&b);
    } else if (st == NT_OK && resp != NULL) {
        it->resp.http = resp->http;
        it->resp.retry_after_ms = resp->retry_after_ms;
        it->resp.len = resp->len;
        it->resp.data = malloc(resp->len + 1);
        NT_ASSERT(it->resp.data != NULL);
        memcpy(it->resp.data, resp->data != NULL ? resp->data : "", resp->len);
        it->resp.data[resp->len] = '\0';
    }
    free(rq);
    inbox_push(s, it);
}

/* Sends a request as c's user; proto's kind, topic, refs and after are kept
 * for the reply. Never blocks. */
static nt_status request(edge_server *s, edge_conn *c, const char *subject, const nt_buf *body,
                         const edge_rq *proto)
{
    edge_rq *rq = malloc(sizeof(*rq));
    NT_ASSERT(rq != NULL);
    *rq = *proto;
    rq->s = s;
    rq->conn_id = c->id;
    char rid[NT_ID_LEN];
    nt_id_new(rid);
    nt_status st = nt_requester_send(s->rq, subject, c->user_id, rid, body->data, body->len,
                                     s->o.request_timeout_ms, on_response, rq, NULL);
    if (st != NT_OK) {
        nt_log_warn(MOD, "request not sent subject=%s err=\"%s\"", subject, nt_status_str(st));
        free(rq);
    }
    return st;
}

/* ---- Client frames ------------------------------------------------------------ */

static void handle_join(edge_server *s, edge_conn *c, const edge_frame *f)
{
    const char *jr = f->has_ref ? f->ref : NULL;
    if (jr == NULL) {
        /* The join's ref becomes its join_ref: without one nothing can match. */
        conn_close(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "join without a ref");
        return;
    }
    const char *room = room_id_of(f->topic);
    bool user = strncmp(f->topic, "user:", 5) == 0;
    if ((room == NULL || !nt_id_valid(room)) && !user) {
        send_error(s, c, NULL, f->ref, f->topic, "unmatched topic", NULL);
        return;
    }
    nt_status began = edge_chans_join_begin(&c->chans, f->topic, jr);
    if (began == NT_ETOOBIG) {
        send_error(s, c, jr, f->ref, f->topic, "too many channels joined", NULL);
        return;
    }
    if (began != NT_OK) {
        conn_close(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "malformed join");
        return;
    }
    /* Phoenix shuts the earlier join of the topic down as the new one
     * starts: it receives nothing more, and goes when the new one is decided. */
    edge_member *old = member_of(c, f->topic);
    if (old != NULL)
        old->detached = true;
    if (user) {
        bool own = strcmp(f->topic + 5, c->user_id) == 0;
        join_done(s, c, f->topic, jr, own, "forbidden", NULL);
        return;
    }
    const char *after = edge_frame_payload_str(f, "after");
    if (after != NULL && !nt_id_valid(after)) {
        join_done(s, c, f->topic, jr, false, "invalid_after", NULL);
        return;
    }
    /* Subscribe now, before asking rooms: the request follows the SUB on the
     * same connection, so by the time the join is granted the server
     * delivers everything published after it. */
    edge_topic *t = topic_get(s, f->topic);
    if (t == NULL) {
        join_done(s, c, f->topic, jr, false, "unavailable", NULL);
        return;
    }
    t->pending++;
    nt_buf body;
    nt_buf_init(&body, 1024);
    edge_rq proto = {.kind = ITEM_JOIN};
    snprintf(proto.topic, sizeof(proto.topic), "%s", f->topic);
    snprintf(proto.join_ref, sizeof(proto.join_ref), "%s", jr);
    snprintf(proto.after, sizeof(proto.after), "%s", after != NULL ? after : "");
    nt_status st = edge_codec_authorize_body(room, "read", &body);
    if (st == NT_OK)
        st = request(s, c, "chat.rooms.authorize", &body, &proto);
    nt_buf_free(&body);
    if (st != NT_OK) {
        t->pending--;
        join_done(s, c, f->topic, jr, false, "unavailable", NULL);
        topic_release_if_unused(s, topic_find(s, f->topic));
    }
}

static void handle_leave(edge_server *s, edge_conn *c, const edge_frame *f)
{
    edge_chan *ch = edge_chans_find(&c->chans, f->topic);
    const char *jr = f->has_join_ref ? f->join_ref : NULL;
    char close_ref[EDGE_REF_MAX + 1] = "";
    if (ch != NULL)
        snprintf(close_ref, sizeof(close_ref), "%s",
                 ch->joined_ref[0] ? ch->joined_ref : ch->pending_ref);
    send_reply(s, c, jr, f->has_ref ? f->ref : NULL, f->topic, NULL);
    if (ch == NULL)
        return;
    if (close_ref[0] != '\0')
        send_push(s, c, close_ref, close_ref, f->topic, "phx_close", "{}");
    member_release(s, edge_chans_remove(&c->chans, f->topic));
}

static void handle_push(edge_server *s, edge_conn *c, const edge_frame *f)
{
    edge_member *m = member_of(c, f->topic);
    NT_ASSERT(m != NULL); /* EDGE_ROUTE_PUSH: the topic is joined */
    const char *jr = m->join_ref;
    const char *ref = f->has_ref ? f->ref : NULL;
    const char *room = room_id_of(f->topic);
    if (room != NULL && strcmp(f->event, "send_message") == 0) {
        nt_buf body;
        nt_buf_init(&body, s->o.max_message + 256);
        edge_rq proto = {.kind = ITEM_TO_CONN};
        snprintf(proto.topic, sizeof(proto.topic), "%s", f->topic);
        snprintf(proto.join_ref, sizeof(proto.join_ref), "%s", jr);
        snprintf(proto.ref, sizeof(proto.ref), "%s", ref != NULL ? ref : "");
        nt_status st = edge_frame_payload_with_room(f, room, &body);
        if (st == NT_OK)
            st = request(s, c, "chat.messages.send", &body, &proto);
        nt_buf_free(&body);
        if (st != NT_OK && ref != NULL)
            send_error(s, c, jr, ref, f->topic, "unavailable",
                       "{\"message\":\"messages is unavailable\"}");
        return;
    }
    if (room != NULL && strcmp(f->event, "typing_start") == 0) {
        typing_start(s, m, nt_clock_mono_ms());
        if (ref != NULL)
            send_reply(s, c, jr, ref, f->topic, NULL);
        return;
    }
    if (room != NULL && strcmp(f->event, "typing_stop") == 0) {
        typing_stop(s, m);
        if (ref != NULL)
            send_reply(s, c, jr, ref, f->topic, NULL);
        return;
    }
    if (ref != NULL)
        send_error(s, c, jr, ref, f->topic, "unknown event", NULL);
}

/* Handles one complete text message from c. */
static void handle_message(edge_server *s, edge_conn *c, const char *data, size_t len)
{
    s->frames_in++;
    edge_frame f;
    char reason[EDGE_REASON_MAX];
    edge_frame_result r = edge_frame_decode(data, len, &f, reason, sizeof(reason));
    if (r == EDGE_FRAME_MALFORMED) {
        nt_log_debug(MOD, "malformed frame closed user=%s reason=\"%s\"", c->user_id, reason);
        conn_close(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "malformed frame");
        edge_frame_clear(&f);
        return;
    }
    edge_route route = edge_chans_route(&c->chans, &f);
    const char *jr = f.has_join_ref ? f.join_ref : NULL;
    const char *ref = f.has_ref ? f.ref : NULL;
    int64_t now = nt_clock_mono_ms(), retry = 0;
    if (route == EDGE_ROUTE_HEARTBEAT) {
        /* Always answered, first, before any channel work (PHOENIX.md §3),
         * from a budget of their own: phoenix.js sends one per 30 s, so a
         * socket that floods them is not a client and is closed. */
        if (!nt_bucket_take(&s->heartbeat_rate, &c->heartbeat_budget, now, &retry)) {
            conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "heartbeat flood");
            goto out;
        }
        send_reply(s, c, NULL, ref, "phoenix", NULL);
        goto out;
    }
    /* Every other frame, stale ones too, costs a token. A refused frame is
     * answered rate_limited; a socket that goes on sending into a refusal
     * for a whole burst is closed. */
    if (!nt_bucket_take(&s->frame_rate, &c->frame_budget, now, &retry)) {
        if (++c->refused_in_row > (uint32_t)s->o.frame_burst) {
            conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many frames");
            goto out;
        }
        char extra[64];
        snprintf(extra, sizeof(extra), "{\"retry_after_ms\":%lld}", (long long)retry);
        if (ref != NULL && route != EDGE_ROUTE_STALE)
            send_error(s, c, jr, ref, f.topic, "rate_limited", extra);
        goto out;
    }
    c->refused_in_row = 0;
    if (r == EDGE_FRAME_BAD_PAYLOAD) {
        if (ref != NULL)
            send_error(s, c, jr, ref, f.topic, "invalid_payload", NULL);
        goto out;
    }
    switch (route) {
    case EDGE_ROUTE_JOIN:
        handle_join(s, c, &f);
        break;
    case EDGE_ROUTE_LEAVE:
    case EDGE_ROUTE_LEAVE_UNJOINED:
        handle_leave(s, c, &f);
        break;
    case EDGE_ROUTE_PUSH:
        handle_push(s, c, &f);
        break;
    case EDGE_ROUTE_UNMATCHED:
    case EDGE_ROUTE_PHOENIX_OTHER:
        if (ref != NULL)
            send_error(s, c, NULL, ref, f.topic, "unmatched topic", NULL);
        break;
    case EDGE_ROUTE_STALE:
    case EDGE_ROUTE_HEARTBEAT:
        break;
    }
out:
    edge_frame_clear(&f);
}

/* ---- Socket lifecycle ---------------------------------------------------------- */

static void conn_free(edge_server *s, edge_conn *c)
{
    for (size_t i = 0; i < c->chans.n; i++) {
        edge_chan *ch = &c->chans.v[i];
        if (ch->joined_ref[0] != '\0')
            member_release(s, ch->data);
    }
    presence_conn(s, c, "disconnect");
    edge_chans_free(&c->chans);
    edge_outq_free(&c->out);
    nt_buf_free(&c->rx);
    conn_unregister(s, c);
    s->nconns--;
    free(c);
}

/* Verifies the token of the upgrade request on wsi; sub gets the user.
 * NT_OK; NT_EUNAUTH for a missing or bad token; NT_EUNAVAIL while the
 * signing keys cannot be had (the token may be good: 503, not 403). */
static nt_status upgrade_token(edge_server *s, struct lws *wsi, char *sub, size_t sublen)
{
    char *buf = malloc(TOKEN_MAX + 16);
    NT_ASSERT(buf != NULL);
    nt_status st = NT_EUNAUTH;
    const char *token = lws_get_urlarg_by_name(wsi, "token=", buf, TOKEN_MAX + 16);
    if (token != NULL && token[0] != '\0') {
        nt_claims claims;
        char why[128] = "";
        st = nt_verifier_verify(s->verifier, token, strlen(token), &claims, why, sizeof(why));
        if (st == NT_OK)
            snprintf(sub, sublen, "%s", claims.sub);
        else
            nt_log_debug(MOD, "upgrade refused reason=\"%s\"", why);
        if (st != NT_OK && st != NT_EUNAVAIL)
            st = NT_EUNAUTH;
    }
    free(buf);
    return st;
}

/* Only vsn 2.x is spoken; a missing vsn means 1.0.0 (PHOENIX.md §1). The
 * buffer is as big as a token's: lws stops looking at the first argument
 * that does not fit, and the token comes first. */
static bool upgrade_vsn_ok(struct lws *wsi)
{
    char *buf = malloc(TOKEN_MAX + 16);
    NT_ASSERT(buf != NULL);
    const char *vsn = lws_get_urlarg_by_name(wsi, "vsn=", buf, TOKEN_MAX + 16);
    bool ok = vsn != NULL && strncmp(vsn, "2.", 2) == 0;
    free(buf);
    return ok;
}

static int confirm_upgrade(edge_server *s, struct lws *wsi)
{
    char uri[256] = "";
    lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    int status = 0;
    if (strcmp(uri, SOCKET_PATH) != 0)
        status = HTTP_STATUS_NOT_FOUND;
    else if (s->draining || s->nconns >= (uint64_t)s->o.max_sockets)
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    else if (!upgrade_vsn_ok(wsi))
        status = HTTP_STATUS_FORBIDDEN;
    else {
        nt_status st = upgrade_token(s, wsi, s->pending_sub, sizeof(s->pending_sub));
        status = st == NT_OK         ? 0
                 : st == NT_EUNAVAIL ? HTTP_STATUS_SERVICE_UNAVAILABLE
                                     : HTTP_STATUS_FORBIDDEN;
    }
    if (status != 0) {
        nt_log_debug(MOD, "upgrade refused status=%d path=%s", status, uri);
        s->refused_upgrades++;
        /* lws adds a small HTML body; browsers never see it (PHOENIX.md §1). */
        lws_return_http_status(wsi, (unsigned)status, "");
        return 1;
    }
    s->pending_wsi = wsi;
    return 0;
}

static int established(edge_server *s, struct lws *wsi, edge_pss *pss)
{
    char sub[128] = "";
    if (s->pending_wsi == wsi) {
        snprintf(sub, sizeof(sub), "%s", s->pending_sub);
    } else if (upgrade_token(s, wsi, sub, sizeof(sub)) != NT_OK) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
        return -1;
    }
    s->pending_wsi = NULL;
    edge_conn *c = calloc(1, sizeof(*c));
    NT_ASSERT(c != NULL);
    c->wsi = wsi;
    snprintf(c->user_id, sizeof(c->user_id), "%s", sub);
    edge_chans_init(&c->chans);
    edge_outq_init(&c->out);
    nt_buf_init(&c->rx, s->o.max_message);
    c->frame_budget = NT_BUCKET_FULL;
    c->heartbeat_budget = NT_BUCKET_FULL;
    c->last_rx_ms = nt_clock_mono_ms();
    conn_register(s, c);
    s->nconns++;
    pss->conn = c;
    presence_conn(s, c, "connect");
    /* The username, for typing indicators; asked once per socket. */
    nt_buf body;
    nt_buf_init(&body, 16);
    nt_buf_append_str(&body, "{}");
    edge_rq proto = {.kind = ITEM_PROFILE};
    if (request(s, c, "chat.auth.users.get", &body, &proto) != NT_OK)
        c->profile_done = true; /* joins use the user id as the name */
    nt_buf_free(&body);
    if (s->draining)
        conn_close(c, CLOSE_SERVICE_RESTART, "service restart");
    return 0;
}

static int receive(edge_server *s, struct lws *wsi, edge_conn *c, const char *in, size_t len)
{
    if (c->close_code != 0)
        return 0;
    /* Idle sockets are found by the sweep: re-arming an lws timeout here
     * would walk lws's sorted timer list on every frame. */
    c->last_rx_ms = nt_clock_mono_ms();
    if (lws_frame_is_binary(wsi)) {
        conn_close(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary frames are not spoken");
        return 0;
    }
    bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (c->rx.len == 0 && final) {
        if (len > s->o.max_message) {
            conn_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
            return 0;
        }
        handle_message(s, c, in, len);
        return 0;
    }
    if (nt_buf_append(&c->rx, in, len) != NT_OK) {
        nt_buf_free(&c->rx);
        conn_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return 0;
    }
    if (final) {
        handle_message(s, c, c->rx.data, c->rx.len);
        nt_buf_free(&c->rx);
    }
    return 0;
}

static int writeable(struct lws *wsi, edge_conn *c)
{
    if (c->close_code != 0) {
        if (c->close_sent)
            return 0;
        /* The close frame is written here: lws_close_reason plus return -1
         * loses it on the libuv loop (lws 4.1.6), and a client must see the
         * code to know it may reconnect. The connection is not dropped yet:
         * closing it with the client's frames still unread would send a
         * reset that can destroy the close frame on its way. The client
         * answers with its own close, which ends the connection; one that
         * does not is cut by the grace timeout set in conn_close. The
         * reason is at most 123 bytes (RFC 6455). */
        const char *r = c->close_reason != NULL ? c->close_reason : "";
        size_t rl = strlen(r) < 120 ? strlen(r) : 120;
        unsigned char frame[LWS_PRE + 2 + 120];
        frame[LWS_PRE] = (unsigned char)((c->close_code >> 8) & 0xff);
        frame[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
        memcpy(frame + LWS_PRE + 2, r, rl);
        c->close_sent = true;
        if (lws_write(wsi, frame + LWS_PRE, 2 + rl,
                      (enum lws_write_protocol)WS_OPCODE_CLOSE_WRITE) < 0)
            return -1;
        return 0;
    }
    edge_msg *m = edge_outq_peek(&c->out);
    if (m == NULL)
        return 0;
    if (lws_write(wsi, edge_msg_data(m), m->len, LWS_WRITE_TEXT) < 0)
        return -1;
    edge_outq_pop(&c->out);
    if (c->out.n > 0)
        lws_callback_on_writable(wsi);
    return 0;
}

/* ---- HTTP: /healthz and /metrics ------------------------------------------------ */

static int http_respond(struct lws *wsi, edge_pss *pss, unsigned status, const char *type,
                        const char *body)
{
    size_t len = strlen(body);
    pss->http_body = malloc(LWS_PRE + len + 1);
    NT_ASSERT(pss->http_body != NULL);
    memcpy(pss->http_body + LWS_PRE, body, len + 1);
    pss->http_len = len;
    unsigned char hdr[LWS_PRE + 512], *start = &hdr[LWS_PRE], *p = start,
                                      *end = &hdr[sizeof(hdr) - 1];
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_request(edge_server *s, struct lws *wsi, edge_pss *pss, const char *uri)
{
    char body[1024];
    if (strcmp(uri, "/healthz") == 0) {
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"sockets\":%llu,\"topics\":%zu,\"subscriptions\":%llu,"
                 "\"nats\":\"%s\"}",
                 s->draining ? "draining" : "ok", (unsigned long long)s->nconns, s->ntopics,
                 (unsigned long long)s->nsubs,
                 nt_nats_is_connected(s->nc) ? "connected" : "disconnected");
        return http_respond(wsi, pss, s->draining ? 503 : 200, "application/json", body);
    }
    if (strcmp(uri, "/metrics") == 0) {
        snprintf(body, sizeof(body),
                 "# TYPE natter_edge_sockets gauge\nnatter_edge_sockets %llu\n"
                 "# TYPE natter_edge_topics gauge\nnatter_edge_topics %zu\n"
                 "# TYPE natter_edge_subscriptions gauge\nnatter_edge_subscriptions %llu\n"
                 "# TYPE natter_edge_deliveries_total counter\nnatter_edge_deliveries_total %llu\n"
                 "# TYPE natter_edge_frames_in_total counter\nnatter_edge_frames_in_total %llu\n"
                 "# TYPE natter_edge_refused_upgrades_total counter\n"
                 "natter_edge_refused_upgrades_total %llu\n"
                 "# TYPE natter_edge_slow_closed_total counter\n"
                 "natter_edge_slow_closed_total %llu\n",
                 (unsigned long long)s->nconns, s->ntopics, (unsigned long long)s->nsubs,
                 (unsigned long long)s->deliveries, (unsigned long long)s->frames_in,
                 (unsigned long long)s->refused_upgrades, (unsigned long long)s->slow_closed);
        return http_respond(wsi, pss, 200, "text/plain; version=0.0.4", body);
    }
    return http_respond(wsi, pss, 404, "application/json",
                        "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path; the "
                        "socket is at " SOCKET_PATH "\"}}");
}

/* ---- Service thread ------------------------------------------------------------- */

static void on_tick(lws_sorted_usec_list_t *sul)
{
    edge_server *s = lws_container_of(sul, edge_server, tick);
    int64_t now = nt_clock_mono_ms();
    edge_typist *ty = s->typists;
    while (ty != NULL) {
        edge_typist *next = ty->snext;
        if (now >= ty->until)
            typist_end(s, ty);
        ty = next;
    }
    if (now - s->last_sweep_ms >= IDLE_SWEEP_MS) {
        s->last_sweep_ms = now;
        int64_t idle_ms = (int64_t)s->o.idle_timeout_s * 1000;
        for (uint32_t i = 0; i < s->nslots; i++) {
            edge_conn *c = s->slots[i];
            if (c != NULL && c->close_code == 0 && now - c->last_rx_ms >= idle_ms)
                conn_close(c, CLOSE_GOING_AWAY, "idle");
        }
    }
    presence_flush(s);
    if (now - s->last_snapshot_ms >= s->o.presence_interval_ms)
        presence_snapshot(s);
    if (s->draining && (s->nconns == 0 || now >= s->drain_deadline))
        s->done = true;
    if (s->done)
        uv_stop(&s->loop);
    else
        lws_sul_schedule(s->ctx, 0, &s->tick, on_tick, TICK_US);
}

static void begin_drain(edge_server *s)
{
    if (s->draining)
        return;
    s->draining = true;
    s->drain_deadline = nt_clock_mono_ms() + s->o.drain_ms;
    nt_log_info(MOD, "draining sockets=%llu", (unsigned long long)s->nconns);
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i] != NULL)
            conn_close(s->slots[i], CLOSE_SERVICE_RESTART, "service restart");
    if (s->nconns == 0) {
        s->done = true;
        uv_stop(&s->loop);
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    edge_server *s = lws_context_user(lws_get_context(wsi));
    edge_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s == NULL)
            return 0;
        process_inbox(s);
        if (atomic_load(&s->stop_asked))
            begin_drain(s);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(s, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return established(s, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return pss->conn != NULL ? receive(s, wsi, pss->conn, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->conn != NULL ? writeable(wsi, pss->conn) : -1;
    case LWS_CALLBACK_CLOSED:
        if (pss->conn != NULL)
            conn_free(s, pss->conn);
        pss->conn = NULL;
        return 0;
    case LWS_CALLBACK_HTTP:
        return http_request(s, wsi, pss, in != NULL ? in : "");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (pss == NULL || pss->http_body == NULL)
            return -1;
        if (lws_write(wsi, pss->http_body + LWS_PRE, pss->http_len, LWS_WRITE_HTTP_FINAL) < 0)
            return -1;
        free(pss->http_body);
        pss->http_body = NULL;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The client answers the close frame the edge wrote itself: end the
         * connection without lws echoing a second close. */
        return pss != NULL && pss->conn != NULL && pss->conn->close_sent ? -1 : 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s->pending_wsi == wsi)
            s->pending_wsi = NULL;
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss != NULL) {
            free(pss->http_body);
            pss->http_body = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    /* One protocol for HTTP and WebSocket alike, named as phoenix.js's
     * optional subprotocol offer needs (PHOENIX.md §1); clients offering
     * none get it too, being the first. */
    {"phoenix", callback, sizeof(edge_pss), RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *service_main(void *arg)
{
    edge_server *s = arg;
    lws_sul_schedule(s->ctx, 0, &s->tick, on_tick, TICK_US);
    /* Returns at uv_stop, once the drain is over. */
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- NATS events (nats.c delivery threads) ---------------------------------------- */

/* chat.presence.resync: a presence instance (re)started and wants every
 * edge's state now rather than at the next interval. */
static void on_resync(void *ctx, uint64_t tag, const nt_msg *msg)
{
    (void)tag;
    (void)msg;
    edge_server *s = ctx;
    if (atomic_exchange(&s->resync_pending, true))
        return; /* one is waiting already */
    edge_item *it = calloc(1, sizeof(*it));
    NT_ASSERT(it != NULL);
    it->kind = ITEM_RESYNC;
    inbox_push(s, it);
}

/* Runs on a nats.c thread. */
static void on_nats_gap(void *ctx, const char *why)
{
    edge_server *s = ctx;
    nt_log_warn(MOD, "NATS gap why=%s", why);
    edge_item *it = calloc(1, sizeof(*it));
    NT_ASSERT(it != NULL);
    it->kind = ITEM_GAP;
    inbox_push(s, it);
}

/* chat.<kind>.<id>.<event>: encode once, hand over. */
static void on_event(void *ctx, uint64_t tag, const nt_msg *msg)
{
    edge_server *s = ctx;
    const char *subject = msg->subject, *data = msg->data;
    size_t len = msg->len;
    char kind[8], id[129], event[EDGE_EVENT_MAX + 1];
    const char *p = subject + 5; /* past "chat." */
    const char *d1 = strchr(p, '.');
    const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    if (strncmp(subject, "chat.", 5) != 0 || d1 == NULL || d2 == NULL ||
        (size_t)(d1 - p) >= sizeof(kind) || (size_t)(d2 - d1 - 1) >= sizeof(id) ||
        strlen(d2 + 1) >= sizeof(event))
        return;
    snprintf(kind, sizeof(kind), "%.*s", (int)(d1 - p), p);
    snprintf(id, sizeof(id), "%.*s", (int)(d2 - d1 - 1), d1 + 1);
    snprintf(event, sizeof(event), "%s", d2 + 1);
    edge_msg *m = NULL;
    if (edge_codec_event(kind, id, event, data, len, LWS_PRE, &m) != NT_OK) {
        nt_log_warn(MOD, "event not forwarded: not a plain event with an object subject=%s",
                    subject);
        return;
    }
    if (strcmp(event, "presence_diff") == 0) {
        /* An edge's own diff names it and its seq; the presence service's
         * leaves for a vanished edge name nobody and always pass. */
        const char *edge = nt_msg_header(msg, "Chat-Presence-Edge");
        const char *seq = nt_msg_header(msg, "Chat-Presence-Seq");
        char *end = NULL;
        unsigned long long v = seq != NULL ? strtoull(seq, &end, 10) : 0;
        if (edge != NULL && seq != NULL && end != seq && *end == '\0' &&
            strlen(edge) < sizeof(m->pres_edge)) {
            snprintf(m->pres_edge, sizeof(m->pres_edge), "%s", edge);
            m->pres_seq = v;
        }
    }
    edge_item *it = calloc(1, sizeof(*it));
    NT_ASSERT(it != NULL);
    it->kind = ITEM_EVENT;
    it->tag = tag;
    it->msg = m;
    snprintf(it->topic, sizeof(it->topic), "%s:%s", kind, id);
    inbox_push(s, it);
}

/* ---- Start and stop --------------------------------------------------------------- */

nt_status edge_server_start(const edge_opts *o, nt_nats *nc, nt_verifier *verifier,
                            edge_server **out)
{
    edge_server *s = calloc(1, sizeof(*s));
    NT_ASSERT(s != NULL);
    s->o = *o;
    if (s->o.instance_id == NULL || s->o.instance_id[0] == '\0') {
        nt_micro_new_id(s->id);
        s->o.instance_id = s->id;
    }
    s->nc = nc;
    s->verifier = verifier;
    NT_ASSERT(pthread_mutex_init(&s->inbox_mu, NULL) == 0);
    /* The configuration's bounds (edge_config.c) make both rates valid. */
    nt_status rates = nt_bucket_rate_make(o->frame_rate, o->frame_burst, &s->frame_rate);
    if (rates == NT_OK)
        rates = nt_bucket_rate_make(HEARTBEAT_RATE, HEARTBEAT_BURST, &s->heartbeat_rate);
    NT_ASSERT(rates == NT_OK);
    s->nbuckets = 1024;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    NT_ASSERT(s->buckets != NULL);
    nt_status st = nt_requester_create(nc, &s->rq);
    if (st != NT_OK) {
        edge_server_stop(s);
        edge_server_free(s);
        return st;
    }

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = o->port;
    info.iface = o->addr;
    info.protocols = protocols;
    info.user = s;
    if (uv_loop_init(&s->loop) != 0) {
        nt_log_error(MOD, "cannot make the event loop");
        edge_server_stop(s);
        edge_server_free(s);
        return NT_EINTERNAL;
    }
    s->loop_ready = true;
    void *foreign[1] = {&s->loop};
    info.foreign_loops = foreign;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBUV;
    info.fd_limit_per_thread = (unsigned)o->max_sockets + 256;
    info.count_threads = 1;
    info.pcontext = &s->ctx;
    info.timeout_secs = 10; /* the HTTP handshake */
    s->ctx = lws_create_context(&info);
    if (s->ctx == NULL) {
        nt_log_error(MOD, "cannot listen port=%d", o->port);
        edge_server_stop(s);
        edge_server_free(s);
        return NT_EUNAVAIL;
    }
    if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
        edge_server_stop(s);
        edge_server_free(s);
        return NT_EINTERNAL;
    }
    s->thread_started = true;
    nt_nats_on_gap(nc, on_nats_gap, s);
    if (nt_nats_subscribe(nc, "chat.presence.resync", on_resync, s, 0, &s->resync_sub) != NT_OK)
        nt_log_warn(MOD, "no chat.presence.resync subscription: presence learns this edge's "
                         "state at its next snapshot");
    nt_log_info(MOD, "listening port=%d path=%s", o->port, SOCKET_PATH);
    *out = s;
    return NT_OK;
}

void edge_server_stop(edge_server *s)
{
    if (s == NULL)
        return;
    nt_sub_destroy(s->resync_sub);
    s->resync_sub = NULL;
    if (s->thread_started) {
        nt_nats_on_gap(s->nc, NULL, NULL);
        atomic_store(&s->stop_asked, true);
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    /* Pending requests answer NT_EUNAVAIL into the inbox, which is freed below. */
    nt_requester_destroy(s->rq);
    pthread_mutex_lock(&s->inbox_mu);
    s->inbox_closed = true;
    pthread_mutex_unlock(&s->inbox_mu);
    /* What the requester answered on its way out is not processed: a wake-up
     * serviced during the destroy below must find nothing to do. */
    bool dropped = false;
    for (edge_item *it = inbox_take_all(s, &dropped); it != NULL;) {
        edge_item *next = it->next;
        free_item(it);
        it = next;
    }
    if (s->ctx != NULL) {
        lws_sul_cancel(&s->tick);
        /* Closing the remaining sockets runs CLOSED for each, which frees
         * them and their joins (and so the subscriptions). On a foreign
         * loop lws closes its handles asynchronously: run the loop until
         * they are gone. */
        lws_context_destroy(s->ctx);
    }
    if (s->loop_ready) {
        uv_run(&s->loop, UV_RUN_DEFAULT);
        /* lws sets s->ctx to NULL (info.pcontext) once the destroy is
         * complete; on a foreign loop the first call may only start it. */
        if (s->ctx != NULL)
            lws_context_destroy(s->ctx);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0)
            nt_log_warn(MOD, "event loop closed with handles left");
        s->loop_ready = false;
    }
    bool overflow = false;
    edge_item *it = inbox_take_all(s, &overflow);
    while (it != NULL) {
        edge_item *next = it->next;
        free_item(it);
        it = next;
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        while (s->buckets[i] != NULL) {
            edge_topic *t = s->buckets[i];
            topic_drop(s, t);
        }
    }
    /* Every socket's leave and disconnect went out as it closed; this tells
     * presence not to wait for the edge's timeout. */
    if (s->o.instance_id != NULL) {
        nt_buf b;
        nt_buf_init(&b, 256);
        if (edge_presence_report_bye(&b, s->o.instance_id, ++s->pseq) == NT_OK)
            presence_report(s, &b, "bye");
        nt_buf_free(&b);
    }
}

void edge_server_free(edge_server *s)
{
    if (s == NULL)
        return;
    free(s->buckets);
    free(s->slots);
    free(s->gens);
    free(s->free_slots);
    pthread_mutex_destroy(&s->inbox_mu);
    free(s);
}
