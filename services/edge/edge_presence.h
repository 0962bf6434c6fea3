/* The JSON of presence as the edge speaks it (issue 6; schemas/nats.md,
 * "Presence"): the reports it sends to the presence service, the Phoenix
 * presence_diff it publishes for its own joins and leaves, and the
 * presence_state it pushes after a join, made from the service's snapshot
 * with this edge's own entries taken from its exact local state. Pure and
 * thread-safe; the service thread calls it. */
#ifndef EDGE_PRESENCE_H
#define EDGE_PRESENCE_H

#include "edge_codec.h"
#include "nt_buf.h"
#include "nt_clock.h"
#include "nt_micro.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDGE_PHX_REF_MAX 48
/* A meta in a presence_state prints to at least this many bytes (its keys,
 * a phx_ref and a timestamp): what the edge counts a crowd by. */
#define EDGE_PRESENCE_META_MIN 90

/* One tracked channel: a socket's join of a room. */
typedef struct {
    char phx_ref[EDGE_PHX_REF_MAX]; /* "<edge id>-<n>", unique per edge run */
    char username[EDGE_USERNAME_MAX];
    char online_at[NT_ISO8601_LEN];
} edge_pmeta;

/* The last presence seq known per edge: a diff of edge E with a seq at or
 * below it is already in the state the client has. */
typedef struct {
    char edge[NT_MICRO_ID_LEN];
    uint64_t seq;
} edge_pseq;

typedef struct {
    edge_pseq *v;
    size_t n;
} edge_pseqs;

/* Records seq for edge (raises it only). */
void edge_pseqs_set(edge_pseqs *s, const char *edge, uint64_t seq);

/* True when a diff of edge with this seq is already covered. */
bool edge_pseqs_covers(const edge_pseqs *s, const char *edge, uint64_t seq);

void edge_pseqs_free(edge_pseqs *s);

/* True when phx_ref was made by the edge named edge ("<edge>-<n>"). */
bool edge_presence_ref_of(const char *phx_ref, const char *edge);

/* Reports for chat.presence.report, appended to out. type is "connect" or
 * "disconnect". */
nt_status edge_presence_report_conn(nt_buf *out, const char *edge, uint64_t seq, const char *type,
                                    uint64_t conn, const char *user_id);
nt_status edge_presence_report_join(nt_buf *out, const char *edge, uint64_t seq, uint64_t conn,
                                    const char *user_id, const char *room_id,
                                    const edge_pmeta *meta);
nt_status edge_presence_report_leave(nt_buf *out, const char *edge, uint64_t seq, uint64_t conn,
                                     const char *user_id, const char *room_id, const char *phx_ref);
nt_status edge_presence_report_bye(nt_buf *out, const char *edge, uint64_t seq);

/* One connection of a snapshot: {"conn":"..","user_id":"..","joins":[...]},
 * appended to out (the caller joins entries with commas). */
nt_status edge_presence_snapshot_conn(nt_buf *out, uint64_t conn, const char *user_id,
                                      const char *const *room_ids, const edge_pmeta *const *metas,
                                      size_t n);

/* A snapshot part wrapping entries (comma-joined snapshot_conn texts). */
nt_status edge_presence_report_snapshot(nt_buf *out, const char *edge, uint64_t seq, uint64_t round,
                                        size_t part, size_t parts, const char *entries, size_t len);

/* A change for a diff: user's meta joined or left. */
typedef struct {
    char user_id[128];
    edge_pmeta meta;
    bool join;
} edge_pchange;

/* The Phoenix presence_diff of n changes, appended to out:
 * {"joins":{user:{"metas":[...]}},"leaves":{user:{"metas":[...]}}}, the metas
 * of one user under one key in the changes' order. Both maps are always
 * there. */
nt_status edge_presence_diff(nt_buf *out, const edge_pchange *changes, size_t n);

/* The presence_state payload for a join: the service's reply to
 * chat.presence.get ({"data":{"presence":…,"edges":…}} in body, len; NULL
 * when it did not answer) with every meta
 * of own_edge removed and the n local ones (users[i], metas[i]) added, so
 * this edge's part is exact. seqs gets the reply's "edges" (own_edge's is the
 * caller's to set). A malformed reply counts as none (NT_OK, local only). */
nt_status edge_presence_state(const char *body, size_t len, const char *own_edge,
                              const char *const *users, const edge_pmeta *const *metas, size_t n,
                              nt_buf *out, edge_pseqs *seqs);

#endif
