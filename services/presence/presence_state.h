/* The presence service's merged view of every edge, in memory: connections
 * and room joins per edge, online counts per user, snapshot rounds with
 * reconciliation, dead-edge removal and the replies to chat.presence.get and
 * chat.presence.online. Pure: no NATS, no KV, no clock (callers pass the
 * times), so every rule is unit-tested. Not thread-safe: the service holds
 * one mutex around every call. */
#ifndef PRESENCE_STATE_H
#define PRESENCE_STATE_H

#include "presence_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Removed edges stay listed in get replies (with their last seq) this long. */
#define PRESENCE_EDGE_FORGET_MS (10 * 60 * 1000)
/* Users with no connection are forgotten (last_seen and all) this long after
 * their last one closed; their KV key (TTL 5 min) has lapsed by then too. */
#define PRESENCE_USER_FORGET_MS (10 * 60 * 1000)
/* Edges known at once, alive or removed: reports of further edges are dropped. */
#define PRESENCE_EDGES_MAX 1024
/* The largest chat.presence.get reply: a bigger room is refused (413). */
#define PRESENCE_GET_MAX (900 * 1024)
/* A meta printed in a state takes at least this many bytes (keys, a
 * phx_ref, a timestamp): a room with more joins than max / this is refused
 * before anything is built. */
#define PRESENCE_META_MIN 90
/* Claim ids: "<edge>-gone-<seq>" for an edge's removal, "<edge>-<round>" for a
 * round's reconciliation, "<edge>-add-<seq>" for joins re-announced. */
#define PRESENCE_CLAIM_MAX 64

typedef struct presence_state presence_state;

/* A user whose online flag changed (0 → 1 connection: online; 1 → 0:
 * offline), with the time of the change. */
typedef struct {
    char user_id[PRESENCE_ID_MAX + 1];
    bool online;
    char last_seen[PRESENCE_TIME_LEN];
} presence_transition;

/* A chat.room.<room_id>.presence_diff to publish for joins removed without
 * the edge announcing it (leaves), or for joins of a revived edge (or lost
 * join reports) that clients were never told of (joins), once across
 * instances: whoever creates presence-claim:<claim> first publishes. The
 * diffs of one claim are consecutive. json is owned. */
typedef struct {
    char claim[PRESENCE_CLAIM_MAX];
    char room_id[PRESENCE_ID_MAX + 1];
    char *json;
    size_t len;
} presence_leave;

/* What one call produced, appended in order. */
typedef struct {
    presence_transition *trans;
    size_t ntrans, cap_trans;
    presence_leave *leaves; /* every presence_diff: leaves and joins */
    size_t nleaves, cap_leaves;
    size_t dropped_joins; /* joins past PRESENCE_CONN_JOINS_MAX on their connection */
} presence_out;

/* Frees what out holds; out is empty (and reusable) after. */
void presence_out_free(presence_out *out);

presence_state *presence_state_create(void);
/* NULL is harmless. */
void presence_state_destroy(presence_state *st);

/* Applies one report heard at mono_ms (monotonic) when the wall time is now
 * (RFC 3339). Returns NT_OK, NT_ECONFLICT for a report whose seq is not
 * above the last one applied for its edge (ignored: a duplicate or stale),
 * or NT_ETOOBIG for a report of a new edge when PRESENCE_EDGES_MAX edges are
 * known (dropped). Transitions and diffs to publish are appended to out. A
 * removed edge that reports again is revived: the joins its snapshots bring
 * back are published as joins (claimed "<edge>-add-<seq>"), as are, after
 * the warm-up, joins that a complete round adds and no join report had. */
nt_status presence_state_apply(presence_state *st, const presence_report *r, int64_t mono_ms,
                               const char *now, presence_out *out);

/* A report whose edge and seq parsed but whose body did not: the edge was
 * still heard (last_heard = mono_ms, seq raised when above; a round in
 * progress reconciles nothing). NT_ETOOBIG as presence_state_apply. */
nt_status presence_state_touch(presence_state *st, const char *edge, uint64_t seq, int64_t mono_ms);

/* Every alive edge counts as heard at mono_ms: after a gap in what this
 * instance received (its own NATS outage or a stall), silence proves nothing. */
void presence_state_touch_all(presence_state *st, int64_t mono_ms);

/* Removes every edge not heard for more than timeout_ms at mono_ms, with all
 * its connections and joins (leaves claimed as "<edge>-gone-<last seq>"),
 * forgets removed edges after PRESENCE_EDGE_FORGET_MS and users without a
 * connection after PRESENCE_USER_FORGET_MS (counted from the first sweep
 * that saw them idle). Returns how many edges were removed now. */
size_t presence_state_sweep(presence_state *st, int64_t mono_ms, int64_t timeout_ms,
                            const char *now, presence_out *out);

/* The number of users known (with or without connections). */
size_t presence_state_nusers(const presence_state *st);

/* What KV said about a user at start-up: online flag and last_seen ("" for
 * none). A user already counted online keeps that. */
void presence_state_seed(presence_state *st, const char *user_id, bool online,
                         const char *last_seen);

/* The end of the warm-up: every seeded-online user with no connection now
 * goes offline (a transition with last_seen = now). Later calls do nothing
 * until presence_state_warmup_restart. */
void presence_state_warmup_end(presence_state *st, const char *now, presence_out *out);

/* Enters the warm-up again (after a gap): until its end, complete rounds
 * publish no joins (what this instance missed the edges announced). */
void presence_state_warmup_restart(presence_state *st);

/* {"room_id":"r","presence":{"u":{"metas":[...]}},"edges":{"E":seq}}: users
 * in id order, metas by online_at then phx_ref, edges in the order first
 * heard. *json is malloc'd, the caller's. NT_ETOOBIG when the reply would
 * pass max bytes (nothing returned). */
nt_status presence_state_get_json(const presence_state *st, const char *room_id, size_t max,
                                  char **json, size_t *len);

/* {"users":{"u":{"online":true,"last_seen":now},"v":{"online":false,
 * "last_seen":"t"|null}}} for ids in the given order; *json malloc'd.
 * NT_ETOOBIG past max bytes. */
nt_status presence_state_online_json(const presence_state *st, char *const *ids, size_t n,
                                     const char *now, size_t max, char **json, size_t *len);

/* The number of connections of user_id over all edges. */
size_t presence_state_conns(const presence_state *st, const char *user_id);

/* The users with at least one connection: a malloc'd array of *n malloc'd
 * ids (presence_ids_free). */
char **presence_state_online_users(const presence_state *st, size_t *n);

/* Totals, for logs and tests. */
size_t presence_state_nedges(const presence_state *st); /* alive edges */
size_t presence_state_nconns(const presence_state *st);
size_t presence_state_njoins(const presence_state *st);

#endif
