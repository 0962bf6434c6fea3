/* Reference-counted frames and per-socket queues. */
#include "edge_out.h"

#include "nt_log.h"

#include <stdlib.h>
#include <string.h>

edge_msg *edge_msg_new(const void *data, size_t len, size_t pre)
{
    edge_msg *m = malloc(sizeof(*m) + pre + len + 1);
    NT_ASSERT(m != NULL);
    m->refs = 1;
    m->pre = (uint32_t)pre;
    m->len = len;
    m->msg_id[0] = '\0';
    memcpy(m->buf + pre, data, len);
    m->buf[pre + len] = '\0';
    return m;
}

edge_msg *edge_msg_ref(edge_msg *m)
{
    NT_ASSERT(m->refs < UINT32_MAX);
    m->refs++;
    return m;
}

void edge_msg_unref(edge_msg *m)
{
    if (m != NULL && --m->refs == 0)
        free(m);
}

void edge_outq_init(edge_outq *q)
{
    memset(q, 0, sizeof(*q));
}

bool edge_outq_push(edge_outq *q, edge_msg *m, size_t max_bytes)
{
    if (q->bytes + m->len > max_bytes)
        return false;
    if (q->n == q->cap) {
        /* Grow and unwrap: the ring starts small, as most sockets hold at
         * most a frame or two at a time. */
        uint32_t cap = q->cap ? q->cap * 2 : 4;
        edge_msg **v = malloc(cap * sizeof(*v));
        NT_ASSERT(v != NULL);
        for (uint32_t i = 0; i < q->n; i++)
            v[i] = q->v[(q->head + i) % q->cap];
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->n) % q->cap] = edge_msg_ref(m);
    q->n++;
    q->bytes += m->len;
    return true;
}

edge_msg *edge_outq_peek(const edge_outq *q)
{
    return q->n > 0 ? q->v[q->head] : NULL;
}

void edge_outq_pop(edge_outq *q)
{
    if (q->n == 0)
        return;
    edge_msg *m = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    q->bytes -= m->len;
    edge_msg_unref(m);
    if (q->n == 0 && q->cap > 16) {
        /* A burst is over: give the big ring back. */
        free(q->v);
        q->v = NULL;
        q->cap = 0;
        q->head = 0;
    }
}

void edge_outq_free(edge_outq *q)
{
    while (q->n > 0)
        edge_outq_pop(q);
    free(q->v);
    memset(q, 0, sizeof(*q));
}
