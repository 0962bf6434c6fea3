/* The presence service's shared types: the context its NATS handlers and
 * threads share (the state behind one mutex), the route table, the report
 * entry point, and the worker and sweeper threads. Handlers never see nats.c
 * (STYLE.md): what a report changes leaves through ctx->handoff. */
#ifndef PRESENCE_H
#define PRESENCE_H

#include "nt_kv.h"
#include "nt_nats.h"
#include "nt_route.h"
#include "presence_state.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define PRESENCE_BODY_MAX (64 * 1024)
#define PRESENCE_WORKERS  2

/* Takes over what out holds (transitions and leaves to act on) and leaves
 * out empty. Must not block on the network: it runs on the delivery thread. */
typedef void (*presence_handoff)(void *arg, presence_out *out);

typedef struct {
    pthread_mutex_t mu;    /* guards state */
    presence_state *state; /* owned by main */
    presence_handoff handoff;
    void *handoff_arg;
    atomic_ullong reports;     /* applied */
    atomic_ullong bad_reports; /* malformed or unknown: logged and dropped */
    atomic_ullong stale_reports;
    atomic_ullong bad_entries;     /* snapshot conns and joins skipped as malformed */
    atomic_ullong dropped_joins;   /* joins past PRESENCE_CONN_JOINS_MAX per conn */
    atomic_ullong dropped_reports; /* reports of edges past PRESENCE_EDGES_MAX */
    atomic_llong edges_warned_at;  /* mono ms of the last "too many edges" warning */
    /* Set by presence_on_gap, taken by the sweeper: messages may have been lost. */
    atomic_bool gap;
} presence_ctx;

/* chat.presence.get and chat.presence.online. */
extern const nt_route presence_routes[];
extern const size_t presence_nroutes;

/* Parses and applies one chat.presence.report, then hands what changed to
 * ctx->handoff. A malformed report is counted and logged (by field, never
 * its content). Thread-safe (takes ctx->mu). */
void presence_on_report(presence_ctx *ctx, const char *data, size_t len);

/* An nt_gap_cb (ctx is the presence_ctx): flags the gap for the sweeper,
 * which counts every edge as heard, asks the edges to resync and enters
 * the warm-up again. Short: runs on a nats.c thread. */
void presence_on_gap(void *ctx, const char *why);

/* The wall time now as RFC 3339 with milliseconds. */
void presence_now(char out[PRESENCE_TIME_LEN]);

/* ---- the worker: KV writes and events (presence_worker.c) ---- */

typedef struct presence_worker presence_worker;

/* Starts PRESENCE_WORKERS threads that, for each user with a transition
 * (coalesced: only the latest wanted state of a user waits, one entry per
 * user, and a user is handled by one thread at a time), compare-and-set
 * presence:{user} and (when they win) publish presence_update to each room
 * of the user; for each claim's diffs, claim presence-claim:<claim> and
 * (when they win, or KV is down) publish them; and every refresh_ms extend
 * presence:{user} of every online user whose key says online, so its TTL
 * never lapses.
 *
 * The documented offline bound (edge timeout + 1 s) is the state's; the
 * presence_update then waits its turn here. In practice the bound is the
 * timeout + 1 s + the time the workers need for the users queued ahead,
 * divided by the PRESENCE_WORKERS threads: per user up to CAS_TRIES KV
 * reads and writes (1 s each at worst, KV_API_WAIT_MS) and one
 * chat.rooms.list per 100 rooms (ROOMS_TIMEOUT_MS, 2 s, at worst; a failure
 * ends that user's listing). A dead edge with N users therefore takes about
 * N x (a few ms) when KV and rooms answer, and up to N x 3 s / 2 when they
 * time out. */
nt_status presence_worker_start(nt_nats *nc, nt_kv *kv, presence_ctx *ctx, int64_t refresh_ms,
                                presence_worker **out);

/* Queues what out holds (a presence_handoff). Thread-safe, never blocks on
 * the network; after stop it frees instead. */
void presence_worker_push(void *worker, presence_out *out);

/* Stops the thread (dropping what is queued) and frees. NULL is harmless. */
void presence_worker_stop(presence_worker *w);

/* ---- the sweeper: dead edges and the warm-up (presence_worker.c) ---- */

typedef struct presence_sweeper presence_sweeper;

/* Starts the thread that every second removes edges silent for timeout_ms
 * and, once warmup_ms have passed, ends the warm-up. While nc is not
 * connected, or when the sweep itself ran more than timeout_ms late (the
 * process stalled), it counts every edge as heard instead: silence it could
 * not hear proves nothing. On a gap (ctx->gap) it does the same, publishes
 * chat.presence.resync and starts the warm-up again. nc may be NULL (tests:
 * always connected, no resync). */
nt_status presence_sweeper_start(presence_ctx *ctx, presence_worker *w, nt_nats *nc,
                                 int64_t timeout_ms, int64_t warmup_ms, presence_sweeper **out);
void presence_sweeper_stop(presence_sweeper *s);

#endif
