/* The merged presence state: edges (each with its connections and its
 * current snapshot round), connections (each with its room joins), users
 * (connection counts, last seen) and rooms (their joins), indexed by small
 * string hash tables so a report, a get and a snapshot cost in proportion to
 * what they touch. Room and edge ids are checked by the codec to be
 * [A-Za-z0-9_-] and metas are JSON the codec printed, so replies are built as
 * text; user ids are printable ASCII and are escaped. */
#include "presence_state.h"

#include "nt_buf.h"
#include "presence_map.h"
#include "nt_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest presence_diff: NATS refuses payloads over 1 MB by default. */
#define DIFF_MAX PRESENCE_GET_MAX

/* ---- the model ---- */

typedef struct {
    char id[PRESENCE_ID_MAX + 1];
    size_t conns;
    bool seeded_online; /* KV said online at start-up; cleared by the warm-up end */
    char last_seen[PRESENCE_TIME_LEN];
    /* With no connection: the first sweep that saw the user idle stamps
     * idle_since, and PRESENCE_USER_FORGET_MS later the user is forgotten. */
    bool idle_stamped;
    int64_t idle_since;
} puser;

struct pjoin;

typedef struct {
    char id[PRESENCE_ID_MAX + 1];
    struct pjoin *head;
} proom;

struct pconn;

typedef struct pjoin {
    struct pjoin *rprev, *rnext; /* in the room's list */
    struct pconn *conn;
    proom *room;
    char *phx_ref, *online_at, *meta;
    uint64_t seen_seq;
    bool unannounced; /* added by a snapshot: no join report (and no diff) had it */
} pjoin;

struct pedge;

typedef struct pconn {
    struct pconn *prev, *next; /* in the edge's list */
    struct pedge *edge;
    char key[PRESENCE_EDGE_LEN + 1 + PRESENCE_CONN_MAX + 1]; /* "<edge>/<conn>" */
    puser *user;
    uint64_t seen_seq;
    pjoin **joins;
    size_t nj, cap;
} pconn;

typedef struct pedge {
    char id[PRESENCE_EDGE_LEN + 1];
    bool alive;
    bool removed; /* declared dead or said bye; remembered for its seq */
    bool revived; /* reported again after a removal: its snapshots' joins are news */
    int64_t last_heard, removed_at;
    uint64_t last_seq;
    pconn *head;
    /* The snapshot round being received: parts round_next.. are to come, and
     * part i must carry seq round_s0 + i. */
    bool round_ok;
    uint64_t round, round_s0;
    uint32_t round_next, round_parts;
} pedge;

struct presence_state {
    pedge **edges; /* in the order first heard */
    size_t nedges, cap_edges;
    pmap edge_ids; /* id → pedge */
    pmap conns, users, rooms;
    size_t njoins;
    bool warmed;
};

/* A removed join whose leave presence must publish: owns its strings. */
typedef struct {
    const char *user_id; /* borrowed from the user, which outlives the call */
    char room_id[PRESENCE_ID_MAX + 1];
    char *phx_ref, *online_at, *meta;
} gone_join;

typedef struct {
    gone_join *v;
    size_t n, cap;
} gone_list;

void presence_out_free(presence_out *out)
{
    if (out == NULL)
        return;
    for (size_t i = 0; i < out->nleaves; i++)
        free(out->leaves[i].json);
    free(out->leaves);
    free(out->trans);
    memset(out, 0, sizeof(*out));
}

static void out_transition(presence_out *out, const puser *u, bool online, const char *now)
{
    if (out->ntrans == out->cap_trans) {
        out->cap_trans = out->cap_trans == 0 ? 8 : out->cap_trans * 2;
        out->trans = realloc(out->trans, out->cap_trans * sizeof(*out->trans));
        NT_ASSERT(out->trans != NULL);
    }
    presence_transition *t = &out->trans[out->ntrans++];
    memset(t, 0, sizeof(*t));
    snprintf(t->user_id, sizeof(t->user_id), "%s", u->id);
    t->online = online;
    snprintf(t->last_seen, sizeof(t->last_seen), "%s", now);
}

static void out_leave(presence_out *out, const char *claim, const char *room, char *json,
                      size_t len)
{
    if (out->nleaves == out->cap_leaves) {
        out->cap_leaves = out->cap_leaves == 0 ? 8 : out->cap_leaves * 2;
        out->leaves = realloc(out->leaves, out->cap_leaves * sizeof(*out->leaves));
        NT_ASSERT(out->leaves != NULL);
    }
    presence_leave *l = &out->leaves[out->nleaves++];
    memset(l, 0, sizeof(*l));
    snprintf(l->claim, sizeof(l->claim), "%s", claim);
    snprintf(l->room_id, sizeof(l->room_id), "%s", room);
    l->json = json;
    l->len = len;
}

presence_state *presence_state_create(void)
{
    presence_state *st = calloc(1, sizeof(*st));
    NT_ASSERT(st != NULL);
    return st;
}

static void join_free(pjoin *j)
{
    free(j->phx_ref);
    free(j->online_at);
    free(j->meta);
    free(j);
}

static void conn_free(void *p)
{
    pconn *c = p;
    for (size_t i = 0; i < c->nj; i++)
        join_free(c->joins[i]);
    free(c->joins);
    free(c);
}

void presence_state_destroy(presence_state *st)
{
    if (st == NULL)
        return;
    pmap_free(&st->conns, conn_free);
    pmap_free(&st->users, free);
    pmap_free(&st->rooms, free);
    pmap_free(&st->edge_ids, NULL);
    for (size_t i = 0; i < st->nedges; i++)
        free(st->edges[i]);
    free(st->edges);
    free(st);
}

static puser *user_get(presence_state *st, const char *id)
{
    puser *u = pmap_get(&st->users, id);
    if (u == NULL) {
        u = calloc(1, sizeof(*u));
        NT_ASSERT(u != NULL);
        snprintf(u->id, sizeof(u->id), "%s", id);
        pmap_put(&st->users, id, u);
    }
    return u;
}

/* The edge of id, added when new; NULL when PRESENCE_EDGES_MAX edges are
 * known already. */
static pedge *edge_get(presence_state *st, const char *id)
{
    pedge *e = pmap_get(&st->edge_ids, id);
    if (e != NULL)
        return e;
    if (st->nedges >= PRESENCE_EDGES_MAX)
        return NULL;
    if (st->nedges == st->cap_edges) {
        st->cap_edges = st->cap_edges == 0 ? 8 : st->cap_edges * 2;
        st->edges = realloc(st->edges, st->cap_edges * sizeof(*st->edges));
        NT_ASSERT(st->edges != NULL);
    }
    e = calloc(1, sizeof(*e));
    NT_ASSERT(e != NULL);
    snprintf(e->id, sizeof(e->id), "%s", id);
    st->edges[st->nedges++] = e;
    pmap_put(&st->edge_ids, e->id, e);
    return e;
}

static void conn_key(char *out, size_t outlen, const char *edge, const char *conn)
{
    int n = snprintf(out, outlen, "%s/%s", edge, conn);
    NT_ASSERT(n > 0 && (size_t)n < outlen);
}

static pconn *conn_find(presence_state *st, const pedge *e, const char *conn)
{
    char key[sizeof(((pconn *)0)->key)];
    conn_key(key, sizeof(key), e->id, conn);
    return pmap_get(&st->conns, key);
}

static pconn *conn_add(presence_state *st, pedge *e, const char *conn, const char *user_id,
                       const char *now, presence_out *out)
{
    pconn *c = calloc(1, sizeof(*c));
    NT_ASSERT(c != NULL);
    conn_key(c->key, sizeof(c->key), e->id, conn);
    c->edge = e;
    c->user = user_get(st, user_id);
    c->next = e->head;
    if (e->head != NULL)
        e->head->prev = c;
    e->head = c;
    pmap_put(&st->conns, c->key, c);
    /* A connection decides the online flag from now on, not what KV said. */
    c->user->seeded_online = false;
    if (c->user->conns++ == 0) {
        snprintf(c->user->last_seen, sizeof(c->user->last_seen), "%s", now);
        out_transition(out, c->user, true, now);
    }
    return c;
}

/* Appends j's meta to g: taken from j (about to be freed) when steal, else copied. */
static void gone_push(gone_list *g, const char *user_id, pjoin *j, bool steal)
{
    if (g->n == g->cap) {
        g->cap = g->cap == 0 ? 8 : g->cap * 2;
        g->v = realloc(g->v, g->cap * sizeof(*g->v));
        NT_ASSERT(g->v != NULL);
    }
    gone_join *x = &g->v[g->n++];
    x->user_id = user_id;
    snprintf(x->room_id, sizeof(x->room_id), "%s", j->room->id);
    if (steal) {
        x->phx_ref = j->phx_ref;
        x->online_at = j->online_at;
        x->meta = j->meta;
        j->phx_ref = j->online_at = j->meta = NULL;
    } else {
        x->phx_ref = strdup(j->phx_ref);
        x->online_at = strdup(j->online_at);
        x->meta = strdup(j->meta);
        NT_ASSERT(x->phx_ref != NULL && x->online_at != NULL && x->meta != NULL);
    }
}

/* Removes join i of c; its leave goes to gone when non-NULL. */
static void join_remove(presence_state *st, pconn *c, size_t i, gone_list *gone)
{
    pjoin *j = c->joins[i];
    proom *r = j->room;
    if (j->rprev != NULL)
        j->rprev->rnext = j->rnext;
    else
        r->head = j->rnext;
    if (j->rnext != NULL)
        j->rnext->rprev = j->rprev;
    if (gone != NULL)
        gone_push(gone, c->user->id, j, true);
    if (r->head == NULL) {
        pmap_del(&st->rooms, r->id);
        free(r);
    }
    c->joins[i] = c->joins[--c->nj];
    st->njoins--;
    join_free(j);
}

/* Adds (or marks seen) a join of c. Returns the join when it is new, NULL
 * when it was known or when c has PRESENCE_CONN_JOINS_MAX joins already
 * (dropped and counted in out). The scan is linear in c's joins, which the
 * cap bounds. */
static pjoin *join_add(presence_state *st, pconn *c, const presence_join_rec *rec, uint64_t seq,
                       presence_out *out)
{
    for (size_t i = 0; i < c->nj; i++) {
        pjoin *j = c->joins[i];
        if (strcmp(j->room->id, rec->room_id) == 0 && strcmp(j->phx_ref, rec->phx_ref) == 0) {
            j->seen_seq = seq;
            return NULL;
        }
    }
    if (c->nj >= PRESENCE_CONN_JOINS_MAX) {
        out->dropped_joins++;
        return NULL;
    }
    if (c->nj == c->cap) {
        c->cap = c->cap == 0 ? 4 : c->cap * 2;
        c->joins = realloc(c->joins, c->cap * sizeof(*c->joins));
        NT_ASSERT(c->joins != NULL);
    }
    pjoin *j = calloc(1, sizeof(*j));
    NT_ASSERT(j != NULL);
    j->conn = c;
    j->phx_ref = strdup(rec->phx_ref);
    j->online_at = strdup(rec->online_at);
    j->meta = strdup(rec->meta);
    NT_ASSERT(j->phx_ref != NULL && j->online_at != NULL && j->meta != NULL);
    j->seen_seq = seq;
    proom *r = pmap_get(&st->rooms, rec->room_id);
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        NT_ASSERT(r != NULL);
        snprintf(r->id, sizeof(r->id), "%s", rec->room_id);
        pmap_put(&st->rooms, r->id, r);
    }
    j->room = r;
    j->rnext = r->head;
    if (r->head != NULL)
        r->head->rprev = j;
    r->head = j;
    c->joins[c->nj++] = j;
    st->njoins++;
    return j;
}

/* Removes c and its joins (their leaves to gone when non-NULL). */
static void conn_remove(presence_state *st, pconn *c, const char *now, gone_list *gone,
                        presence_out *out)
{
    while (c->nj > 0)
        join_remove(st, c, c->nj - 1, gone);
    pedge *e = c->edge;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        e->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pmap_del(&st->conns, c->key);
    puser *u = c->user;
    NT_ASSERT(u->conns > 0);
    if (--u->conns == 0) {
        u->idle_stamped = false;
        snprintf(u->last_seen, sizeof(u->last_seen), "%s", now);
        out_transition(out, u, false, now);
    }
    conn_free(c);
}

static int gone_cmp(const void *a, const void *b)
{
    const gone_join *x = a, *y = b;
    int c = strcmp(x->room_id, y->room_id);
    if (c == 0)
        c = strcmp(x->user_id, y->user_id);
    if (c == 0)
        c = strcmp(x->online_at, y->online_at);
    if (c == 0)
        c = strcmp(x->phx_ref, y->phx_ref);
    return c;
}

/* Appends "id" as a JSON string: user ids are printable ASCII, of which
 * only '"' and '\\' need escaping. */
static nt_status buf_add_id(nt_buf *b, const char *id)
{
    nt_status st = nt_buf_append(b, "\"", 1);
    const char *p = id;
    while (st == NT_OK && *p != '\0') {
        size_t run = strcspn(p, "\"\\");
        st = nt_buf_append(b, p, run);
        p += run;
        if (st == NT_OK && *p != '\0') {
            char esc[2] = {'\\', *p};
            st = nt_buf_append(b, esc, 2);
            p++;
        }
    }
    if (st == NT_OK)
        st = nt_buf_append(b, "\"", 1);
    return st;
}

/* Appends s (or the id) unless an earlier append failed: one check at the end. */
static void put(nt_buf *b, nt_status *st, const char *s)
{
    if (*st == NT_OK)
        *st = nt_buf_append_str(b, s);
}

static void put_id(nt_buf *b, nt_status *st, const char *id)
{
    if (*st == NT_OK)
        *st = buf_add_id(b, id);
}

/* Turns the listed joins into one presence_diff per room, claimed as claim
 * (as leaves, or as joins when joins is true), and frees them. A room whose
 * diff would pass DIFF_MAX is logged and skipped: NATS would refuse it. */
static void gone_flush(gone_list *g, const char *claim, bool joins, presence_out *out)
{
    if (g->n > 0)
        qsort(g->v, g->n, sizeof(*g->v), gone_cmp);
    size_t i = 0;
    while (i < g->n) {
        const char *room = g->v[i].room_id;
        nt_buf b;
        nt_status st = NT_OK;
        nt_buf_init(&b, DIFF_MAX);
        put(&b, &st, joins ? "{\"joins\":{" : "{\"joins\":{},\"leaves\":{");
        size_t k = i;
        while (k < g->n && strcmp(g->v[k].room_id, room) == 0) {
            const char *user = g->v[k].user_id;
            if (k > i)
                put(&b, &st, ",");
            put_id(&b, &st, user);
            put(&b, &st, ":{\"metas\":[");
            size_t m = k;
            while (m < g->n && strcmp(g->v[m].room_id, room) == 0 &&
                   strcmp(g->v[m].user_id, user) == 0) {
                if (m > k)
                    put(&b, &st, ",");
                put(&b, &st, g->v[m].meta);
                m++;
            }
            put(&b, &st, "]}");
            k = m;
        }
        put(&b, &st, joins ? "},\"leaves\":{}}" : "}}");
        if (st == NT_OK) {
            size_t len = 0;
            char *json = nt_buf_steal(&b, &len);
            out_leave(out, claim, room, json, len);
        } else {
            nt_log_warn("presence", "presence_diff too large room=%s claim=%s: not published", room,
                        claim);
            nt_buf_free(&b);
        }
        i = k;
    }
    for (size_t j = 0; j < g->n; j++) {
        free(g->v[j].phx_ref);
        free(g->v[j].online_at);
        free(g->v[j].meta);
    }
    free(g->v);
    memset(g, 0, sizeof(*g));
}

/* Removes every connection of e (dead, or said bye) and publishes their
 * joins as leaves claimed "<edge>-gone-<last seq>": unique per removal, so a
 * second death of the edge within the claim's 5 min TTL is published too. */
static void edge_remove(presence_state *st, pedge *e, int64_t mono_ms, const char *now,
                        presence_out *out)
{
    gone_list g = {0};
    while (e->head != NULL)
        conn_remove(st, e->head, now, &g, out);
    char claim[PRESENCE_CLAIM_MAX];
    snprintf(claim, sizeof(claim), "%s-gone-%" PRIu64, e->id, e->last_seq);
    gone_flush(&g, claim, false, out);
    e->alive = false;
    e->removed = true;
    e->revived = false;
    e->removed_at = mono_ms;
    e->round_ok = false;
}

/* A complete round whose first part had seq s0: what the edge had before it
 * and did not report in it was lost; its leaves are claimed "<edge>-<round>". */
static void reconcile(presence_state *st, pedge *e, const char *now, presence_out *out)
{
    gone_list g = {0};
    pconn *c = e->head;
    while (c != NULL) {
        pconn *next = c->next;
        if (c->seen_seq < e->round_s0) {
            conn_remove(st, c, now, &g, out);
        } else {
            for (size_t i = c->nj; i > 0; i--) {
                if (c->joins[i - 1]->seen_seq < e->round_s0)
                    join_remove(st, c, i - 1, &g);
            }
        }
        c = next;
    }
    char claim[PRESENCE_CLAIM_MAX];
    snprintf(claim, sizeof(claim), "%s-%" PRIu64, e->id, e->round);
    gone_flush(&g, claim, false, out);
}

/* When publish, publishes as joins, claimed "<edge>-add-<seq>", the joins
 * of e still flagged unannounced; either way clears every flag of e. */
static void announce_adds(pedge *e, uint64_t seq, bool publish, presence_out *out)
{
    gone_list g = {0};
    for (pconn *c = e->head; c != NULL; c = c->next) {
        for (size_t i = 0; i < c->nj; i++) {
            pjoin *j = c->joins[i];
            if (j->unannounced && publish)
                gone_push(&g, c->user->id, j, false);
            j->unannounced = false;
        }
    }
    char claim[PRESENCE_CLAIM_MAX];
    snprintf(claim, sizeof(claim), "%s-add-%" PRIu64, e->id, seq);
    gone_flush(&g, claim, true, out);
}

static void apply_snapshot(presence_state *st, pedge *e, const presence_report *r, const char *now,
                           presence_out *out)
{
    if (r->part == 0) {
        e->round_ok = true;
        e->round = r->round;
        e->round_s0 = r->seq;
        e->round_next = 1;
        e->round_parts = r->parts;
    } else if (e->round_ok && e->round == r->round && e->round_parts == r->parts &&
               e->round_next == r->part && r->seq == e->round_s0 + r->part) {
        e->round_next++;
    } else {
        /* A part is missing: this round reconciles nothing. */
        e->round_ok = false;
    }
    bool added = false;
    for (size_t i = 0; i < r->nconns; i++) {
        const presence_conn_rec *cr = &r->conns[i];
        pconn *c = conn_find(st, e, cr->conn);
        if (c == NULL)
            c = conn_add(st, e, cr->conn, cr->user_id, now, out);
        c->seen_seq = r->seq;
        for (size_t k = 0; k < cr->njoins; k++) {
            pjoin *j = join_add(st, c, &cr->joins[k], r->seq, out);
            if (j != NULL) {
                j->unannounced = true;
                added = true;
            }
        }
    }
    /* A revived edge's clients were told its joins left: tell them at once
     * that they are back, whatever becomes of the round. */
    if (e->revived && added)
        announce_adds(e, r->seq, true, out);
    if (e->round_ok && e->round_next == e->round_parts) {
        reconcile(st, e, now, out);
        e->round_ok = false;
        /* Joins a complete round brought that no join report had: their
         * report was lost by this instance, and maybe their diff by
         * clients. During a warm-up this instance missed what the edges
         * announced themselves, so it stays quiet. */
        announce_adds(e, r->seq, st->warmed, out);
        e->revived = false;
    }
}

/* The edge heard a report with seq: returns false for a stale one. */
static bool edge_heard(pedge *e, uint64_t seq, int64_t mono_ms)
{
    if (seq <= e->last_seq)
        return false;
    e->last_seq = seq;
    e->last_heard = mono_ms;
    if (e->removed)
        e->revived = true;
    e->alive = true;
    e->removed = false;
    e->removed_at = 0;
    return true;
}

nt_status presence_state_touch(presence_state *st, const char *edge, uint64_t seq, int64_t mono_ms)
{
    NT_ASSERT(st != NULL && edge != NULL);
    pedge *e = edge_get(st, edge);
    if (e == NULL)
        return NT_ETOOBIG;
    /* Whatever the report was (a snapshot part, maybe), its round is broken. */
    if (edge_heard(e, seq, mono_ms))
        e->round_ok = false;
    else if (e->alive)
        e->last_heard = mono_ms;
    return NT_OK;
}

void presence_state_touch_all(presence_state *st, int64_t mono_ms)
{
    NT_ASSERT(st != NULL);
    for (size_t i = 0; i < st->nedges; i++) {
        if (st->edges[i]->alive)
            st->edges[i]->last_heard = mono_ms;
    }
}

nt_status presence_state_apply(presence_state *st, const presence_report *r, int64_t mono_ms,
                               const char *now, presence_out *out)
{
    NT_ASSERT(st != NULL && r != NULL && now != NULL && out != NULL);
    pedge *e = edge_get(st, r->edge);
    if (e == NULL)
        return NT_ETOOBIG;
    if (!edge_heard(e, r->seq, mono_ms))
        return NT_ECONFLICT;
    pconn *c = NULL;
    switch (r->type) {
    case PRESENCE_CONNECT:
        c = conn_find(st, e, r->conn);
        if (c == NULL)
            c = conn_add(st, e, r->conn, r->user_id, now, out);
        c->seen_seq = r->seq;
        break;
    case PRESENCE_DISCONNECT:
        c = conn_find(st, e, r->conn);
        if (c != NULL)
            conn_remove(st, c, now, NULL, out);
        break;
    case PRESENCE_JOIN:
        /* A join whose connect was lost still counts the connection. */
        c = conn_find(st, e, r->conn);
        if (c == NULL)
            c = conn_add(st, e, r->conn, r->user_id, now, out);
        c->seen_seq = r->seq;
        join_add(st, c, &r->join, r->seq, out);
        break;
    case PRESENCE_LEAVE:
        c = conn_find(st, e, r->conn);
        for (size_t i = 0; c != NULL && i < c->nj; i++) {
            if (strcmp(c->joins[i]->room->id, r->room_id) == 0 &&
                strcmp(c->joins[i]->phx_ref, r->phx_ref) == 0) {
                join_remove(st, c, i, NULL);
                break;
            }
        }
        break;
    case PRESENCE_SNAPSHOT:
        apply_snapshot(st, e, r, now, out);
        break;
    case PRESENCE_BYE:
        edge_remove(st, e, mono_ms, now, out);
        break;
    }
    return NT_OK;
}

/* A user without connections is stamped idle at the first sweep that sees
 * it, and forgotten PRESENCE_USER_FORGET_MS later. */
static bool user_forgotten(void *val, void *arg)
{
    puser *u = val;
    int64_t mono_ms = *(const int64_t *)arg;
    if (u->conns > 0 || u->seeded_online)
        return false;
    if (!u->idle_stamped) {
        u->idle_stamped = true;
        u->idle_since = mono_ms;
        return false;
    }
    return mono_ms - u->idle_since > PRESENCE_USER_FORGET_MS;
}

size_t presence_state_sweep(presence_state *st, int64_t mono_ms, int64_t timeout_ms,
                            const char *now, presence_out *out)
{
    NT_ASSERT(st != NULL && now != NULL && out != NULL);
    size_t removed = 0, keep = 0;
    for (size_t i = 0; i < st->nedges; i++) {
        pedge *e = st->edges[i];
        if (e->alive && mono_ms - e->last_heard > timeout_ms) {
            nt_log_warn("presence", "edge dead edge=%s silent_ms=%lld", e->id,
                        (long long)(mono_ms - e->last_heard));
            edge_remove(st, e, mono_ms, now, out);
            removed++;
        }
        if (e->removed && mono_ms - e->removed_at > PRESENCE_EDGE_FORGET_MS) {
            pmap_del(&st->edge_ids, e->id);
            free(e);
            continue;
        }
        st->edges[keep++] = e;
    }
    st->nedges = keep;
    pmap_filter(&st->users, user_forgotten, &mono_ms, free);
    return removed;
}

size_t presence_state_nusers(const presence_state *st)
{
    return st->users.n;
}

void presence_state_seed(presence_state *st, const char *user_id, bool online,
                         const char *last_seen)
{
    NT_ASSERT(st != NULL && user_id != NULL);
    puser *u = user_get(st, user_id);
    if (u->conns > 0)
        return;
    if (last_seen != NULL && last_seen[0] != '\0' && u->last_seen[0] == '\0')
        snprintf(u->last_seen, sizeof(u->last_seen), "%s", last_seen);
    if (online && !st->warmed)
        u->seeded_online = true;
}

void presence_state_warmup_end(presence_state *st, const char *now, presence_out *out)
{
    NT_ASSERT(st != NULL && now != NULL && out != NULL);
    if (st->warmed)
        return;
    st->warmed = true;
    for (size_t i = 0; i < st->users.nb; i++) {
        for (pmap_ent *h = st->users.b[i]; h != NULL; h = h->next) {
            puser *u = h->val;
            if (u->seeded_online && u->conns == 0) {
                snprintf(u->last_seen, sizeof(u->last_seen), "%s", now);
                out_transition(out, u, false, now);
            }
            u->seeded_online = false;
        }
    }
}

void presence_state_warmup_restart(presence_state *st)
{
    NT_ASSERT(st != NULL);
    st->warmed = false;
}

static int join_cmp(const void *a, const void *b)
{
    const pjoin *x = *(pjoin *const *)a, *y = *(pjoin *const *)b;
    int c = strcmp(x->conn->user->id, y->conn->user->id);
    if (c == 0)
        c = strcmp(x->online_at, y->online_at);
    if (c == 0)
        c = strcmp(x->phx_ref, y->phx_ref);
    return c;
}

nt_status presence_state_get_json(const presence_state *st, const char *room_id, size_t max,
                                  char **json, size_t *len)
{
    NT_ASSERT(st != NULL && room_id != NULL && json != NULL && len != NULL);
    nt_buf b;
    nt_status res = NT_OK;
    nt_buf_init(&b, max);
    put(&b, &res, "{\"room_id\":\"");
    put(&b, &res, room_id);
    put(&b, &res, "\",\"presence\":{");
    const proom *r = pmap_get(&st->rooms, room_id);
    size_t n = 0;
    for (const pjoin *j = r != NULL ? r->head : NULL; j != NULL; j = j->rnext)
        n++;
    /* A crowd that cannot fit is not sorted and printed only to be refused. */
    if (n * PRESENCE_META_MIN > max)
        res = NT_ETOOBIG;
    if (n > 0 && res == NT_OK) {
        pjoin **v = malloc(n * sizeof(*v));
        NT_ASSERT(v != NULL);
        size_t i = 0;
        for (pjoin *j = r->head; j != NULL; j = j->rnext)
            v[i++] = j;
        qsort(v, n, sizeof(*v), join_cmp);
        for (i = 0; i < n && res == NT_OK; i++) {
            const char *user = v[i]->conn->user->id;
            bool first = i == 0 || strcmp(v[i - 1]->conn->user->id, user) != 0;
            bool last = i + 1 == n || strcmp(v[i + 1]->conn->user->id, user) != 0;
            if (first) {
                put(&b, &res, i > 0 ? "," : "");
                put_id(&b, &res, user);
                put(&b, &res, ":{\"metas\":[");
            } else {
                put(&b, &res, ",");
            }
            put(&b, &res, v[i]->meta);
            if (last)
                put(&b, &res, "]}");
        }
        free(v);
    }
    put(&b, &res, "},\"edges\":{");
    for (size_t i = 0; i < st->nedges && res == NT_OK; i++) {
        char item[PRESENCE_EDGE_LEN + 32];
        snprintf(item, sizeof(item), "%s\"%s\":%" PRIu64, i > 0 ? "," : "", st->edges[i]->id,
                 st->edges[i]->last_seq);
        put(&b, &res, item);
    }
    put(&b, &res, "}}");
    if (res != NT_OK) {
        nt_buf_free(&b);
        return res;
    }
    *json = nt_buf_steal(&b, len);
    return NT_OK;
}

nt_status presence_state_online_json(const presence_state *st, char *const *ids, size_t n,
                                     const char *now, size_t max, char **json, size_t *len)
{
    NT_ASSERT(st != NULL && now != NULL && json != NULL && len != NULL);
    nt_buf b;
    nt_status res = NT_OK;
    nt_buf_init(&b, max);
    put(&b, &res, "{\"users\":{");
    for (size_t i = 0; i < n; i++) {
        const puser *u = pmap_get(&st->users, ids[i]);
        bool online = u != NULL && u->conns > 0;
        const char *seen = online ? now : (u != NULL && u->last_seen[0] ? u->last_seen : NULL);
        put(&b, &res, i > 0 ? "," : "");
        put_id(&b, &res, ids[i]);
        put(&b, &res,
            online ? ":{\"online\":true,\"last_seen\":" : ":{\"online\":false,\"last_seen\":");
        if (seen != NULL) {
            put(&b, &res, "\"");
            put(&b, &res, seen);
            put(&b, &res, "\"}");
        } else {
            put(&b, &res, "null}");
        }
    }
    put(&b, &res, "}}");
    if (res != NT_OK) {
        nt_buf_free(&b);
        return res;
    }
    *json = nt_buf_steal(&b, len);
    return NT_OK;
}

size_t presence_state_conns(const presence_state *st, const char *user_id)
{
    const puser *u = pmap_get(&st->users, user_id);
    return u != NULL ? u->conns : 0;
}

char **presence_state_online_users(const presence_state *st, size_t *n)
{
    size_t count = 0;
    char **v = NULL;
    for (size_t i = 0; i < st->users.nb; i++) {
        for (pmap_ent *h = st->users.b[i]; h != NULL; h = h->next) {
            const puser *u = h->val;
            if (u->conns == 0)
                continue;
            char **grown = realloc(v, (count + 1) * sizeof(*v));
            NT_ASSERT(grown != NULL);
            v = grown;
            v[count] = strdup(u->id);
            NT_ASSERT(v[count] != NULL);
            count++;
        }
    }
    *n = count;
    return v;
}

size_t presence_state_nedges(const presence_state *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nedges; i++)
        n += st->edges[i]->alive ? 1 : 0;
    return n;
}

size_t presence_state_nconns(const presence_state *st)
{
    return st->conns.n;
}

size_t presence_state_njoins(const presence_state *st)
{
    return st->njoins;
}
