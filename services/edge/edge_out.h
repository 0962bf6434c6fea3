/* Outbound frames: a reference-counted message buffer, encoded once and
 * queued on every socket that should receive it, and each socket's queue of
 * such buffers with a cap in bytes. Used on the service thread only (the
 * counts are not atomic); a buffer made on another thread is handed over
 * whole through the inbox. */
#ifndef EDGE_OUT_H
#define EDGE_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One encoded frame. The bytes start pre bytes into buf, so that the
 * WebSocket library can write its frame header in front of them. */
typedef struct edge_msg {
    uint32_t refs;
    uint32_t pre;
    size_t len;
    char msg_id[40]; /* for room events carrying a message: its "id"; else "" */
    /* For a presence_diff published by an edge: that edge and its seq
     * (headers Chat-Presence-Edge and -Seq); else "" and 0. */
    char pres_edge[24];
    uint64_t pres_seq;
    unsigned char buf[];
} edge_msg;

/* A new message holding a copy of data[0..len), with pre bytes of headroom
 * and one reference (the caller's). Aborts on OOM. */
edge_msg *edge_msg_new(const void *data, size_t len, size_t pre);
/* The frame's bytes (len of them). */
static inline unsigned char *edge_msg_data(edge_msg *m)
{
    return m->buf + m->pre;
}
/* Takes one more reference; returns m. */
edge_msg *edge_msg_ref(edge_msg *m);
/* Drops one reference; frees at zero. NULL is harmless. */
void edge_msg_unref(edge_msg *m);

/* A socket's queue: a ring of message references. */
typedef struct {
    edge_msg **v;
    uint32_t head, n, cap;
    size_t bytes; /* sum of the queued messages' len */
} edge_outq;

void edge_outq_init(edge_outq *q);
/* Queues a reference to m (taking one). False, with nothing queued, when
 * the queue would then hold more than max_bytes (a slow reader). */
bool edge_outq_push(edge_outq *q, edge_msg *m, size_t max_bytes);
/* The oldest message, still queued, or NULL. */
edge_msg *edge_outq_peek(const edge_outq *q);
/* Removes the oldest message and drops its reference. */
void edge_outq_pop(edge_outq *q);
/* Drops every reference and frees the ring. */
void edge_outq_free(edge_outq *q);

#endif
