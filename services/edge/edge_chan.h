/* One socket's channels: which topics it has joined or is joining, under
 * which join_ref, and what an incoming frame means given that (PHOENIX.md §4,
 * §5, §6, §10). Pure bookkeeping on the service thread: no socket, no NATS,
 * so the join_ref rules are tested on their own. */
#ifndef EDGE_CHAN_H
#define EDGE_CHAN_H

#include "edge_frame.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

#define EDGE_CHANS_MAX 100 /* topics joined or joining per socket (Phoenix's limit) */

/* One topic of a socket. A topic may be joined (joined_ref set) and at the
 * same time have a newer join waiting for its authorisation (pending_ref
 * set): the old join keeps receiving until the new one is decided. */
typedef struct {
    char topic[EDGE_TOPIC_MAX + 1];
    char joined_ref[EDGE_REF_MAX + 1];  /* "" when not joined */
    char pending_ref[EDGE_REF_MAX + 1]; /* "" when no join is waiting */
    void *data;                         /* the server's per-join state; not touched here */
} edge_chan;

typedef struct {
    edge_chan *v; /* owned */
    size_t n, cap;
} edge_chans;

/* What to do with a decoded frame. */
typedef enum {
    EDGE_ROUTE_HEARTBEAT,      /* topic "phoenix", event "heartbeat": reply ok at once */
    EDGE_ROUTE_JOIN,           /* phx_join: authorise, then edge_chans_join_done */
    EDGE_ROUTE_LEAVE,          /* phx_leave of a joined (or joining) topic with its current
                                * join_ref or null: reply ok, then phx_close, then edge_chans_remove */
    EDGE_ROUTE_LEAVE_UNJOINED, /* phx_leave of a topic not joined: reply ok, nothing else */
    EDGE_ROUTE_PUSH,           /* an event on a joined topic (current join_ref or null) */
    EDGE_ROUTE_UNMATCHED,      /* an event on a topic not joined: error reply
                                * {"reason":"unmatched topic"} with a null join_ref */
    EDGE_ROUTE_STALE,          /* a non-null join_ref that is not the topic's current
                                * one: ignore silently (no reply) */
    EDGE_ROUTE_PHOENIX_OTHER,  /* any other event on topic "phoenix": unmatched */
} edge_route;

void edge_chans_init(edge_chans *c);
/* Frees the table (not the data pointers, which the caller owns). */
void edge_chans_free(edge_chans *c);

/* The entry for topic, or NULL. */
edge_chan *edge_chans_find(edge_chans *c, const char *topic);

/* Classifies f against the table. "Current" join_ref means joined_ref when
 * the topic is joined; a topic that is only joining (no joined_ref) counts as
 * not joined for pushes (UNMATCHED) and as joined for leaves (LEAVE, when the
 * join_ref is the pending one or null). A phx_join is always JOIN, whatever
 * its join_ref. A leave carrying a stale non-null join_ref is STALE. */
edge_route edge_chans_route(const edge_chans *c, const edge_frame *f);

/* Records a join of topic under join_ref waiting for authorisation, replacing
 * any earlier pending join of that topic (whose result will then be ignored).
 * NT_ETOOBIG when the topic is new and EDGE_CHANS_MAX topics are already
 * joined or joining; NT_EINVAL when join_ref is NULL or empty (a phx_join
 * with a null join_ref) or a field is longer than its maximum; the table is
 * unchanged then. Entry pointers from edge_chans_find may move. */
nt_status edge_chans_join_begin(edge_chans *c, const char *topic, const char *join_ref);

/* The outcome of a join whose authorisation came back. */
typedef struct {
    bool current; /* false: the join was replaced or left meanwhile; ignore the result entirely */
    bool had_old; /* an earlier join of the topic was joined: send phx_close for old_ref
                   * after the reply */
    char old_ref[EDGE_REF_MAX + 1];
    void *old_data; /* the earlier join's data, for the caller to release */
} edge_join_outcome;

/* Applies the authorisation result of the join of topic under join_ref.
 * When it is the topic's pending join: on ok, joined_ref becomes join_ref and
 * data is set to data; on refusal the earlier join (if any) is dropped too (Phoenix
 * shuts the old channel down before running the new join) and, with nothing
 * left, the entry is removed. Fills *out. */
void edge_chans_join_done(edge_chans *c, const char *topic, const char *join_ref, bool ok,
                          void *data, edge_join_outcome *out);

/* Removes topic's entry (joined and pending). Returns its data (NULL when
 * absent or never joined) for the caller to release. */
void *edge_chans_remove(edge_chans *c, const char *topic);

#endif
