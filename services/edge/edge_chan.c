/* One socket's table of topics with their joined and pending join_refs, and
 * the routing of each incoming frame by Phoenix's join_ref rules. A socket
 * has at most EDGE_CHANS_MAX topics, so a small array searched linearly is
 * both the simplest and the fastest table. */
#include "edge_chan.h"

#include <stdlib.h>
#include <string.h>

void edge_chans_init(edge_chans *c)
{
    c->v = NULL;
    c->n = 0;
    c->cap = 0;
}

void edge_chans_free(edge_chans *c)
{
    if (c == NULL)
        return;
    free(c->v);
    edge_chans_init(c);
}

/* The index of topic's entry, or c->n when there is none. */
static size_t find_index(const edge_chans *c, const char *topic)
{
    size_t i = 0;
    while (i < c->n && strcmp(c->v[i].topic, topic) != 0)
        i++;
    return i;
}

edge_chan *edge_chans_find(edge_chans *c, const char *topic)
{
    size_t i = find_index(c, topic);
    return i < c->n ? &c->v[i] : NULL;
}

/* True when ref is the non-empty stored ref cur. */
static bool same_ref(const char *cur, const char *ref)
{
    return cur[0] != '\0' && strcmp(cur, ref) == 0;
}

edge_route edge_chans_route(const edge_chans *c, const edge_frame *f)
{
    /* The topic "phoenix" needs no join and is never a channel. */
    if (strcmp(f->topic, "phoenix") == 0)
        return strcmp(f->event, "heartbeat") == 0 ? EDGE_ROUTE_HEARTBEAT : EDGE_ROUTE_PHOENIX_OTHER;
    if (strcmp(f->event, "phx_join") == 0)
        return EDGE_ROUTE_JOIN;
    size_t i = find_index(c, f->topic);
    const edge_chan *e = i < c->n ? &c->v[i] : NULL;
    if (strcmp(f->event, "phx_leave") == 0) {
        if (e == NULL)
            return EDGE_ROUTE_LEAVE_UNJOINED;
        /* A leave may name the joined ref or the pending one: the client
         * sends the pending ref when that join timed out on its side, and
         * either way it wants the topic gone. */
        if (!f->has_join_ref || same_ref(e->joined_ref, f->join_ref) ||
            same_ref(e->pending_ref, f->join_ref))
            return EDGE_ROUTE_LEAVE;
        return EDGE_ROUTE_STALE;
    }
    /* A topic that is only joining is not joined yet for events: the client
     * buffers its pushes until the join reply, so none can be current. */
    if (e == NULL || e->joined_ref[0] == '\0')
        return EDGE_ROUTE_UNMATCHED;
    if (!f->has_join_ref || same_ref(e->joined_ref, f->join_ref))
        return EDGE_ROUTE_PUSH;
    return EDGE_ROUTE_STALE;
}

/* Copies s into a field of max bytes plus the NUL; false when it does not fit. */
static bool copy_field(char *dst, size_t max, const char *s)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

nt_status edge_chans_join_begin(edge_chans *c, const char *topic, const char *join_ref)
{
    /* A join without a join_ref could never be told apart from "no join
     * waiting", and decoded frames never carry longer fields. */
    if (topic == NULL || join_ref == NULL || topic[0] == '\0' || join_ref[0] == '\0' ||
        strlen(topic) > EDGE_TOPIC_MAX || strlen(join_ref) > EDGE_REF_MAX)
        return NT_EINVAL;
    size_t i = find_index(c, topic);
    if (i == c->n) {
        if (c->n >= EDGE_CHANS_MAX)
            return NT_ETOOBIG;
        if (c->n == c->cap) {
            size_t cap = c->cap == 0 ? 4 : c->cap * 2;
            if (cap > EDGE_CHANS_MAX)
                cap = EDGE_CHANS_MAX;
            edge_chan *v = realloc(c->v, cap * sizeof(*v));
            NT_ASSERT(v != NULL);
            c->v = v;
            c->cap = cap;
        }
        memset(&c->v[i], 0, sizeof(c->v[i]));
        copy_field(c->v[i].topic, EDGE_TOPIC_MAX, topic);
        c->n++;
    }
    copy_field(c->v[i].pending_ref, EDGE_REF_MAX, join_ref);
    return NT_OK;
}

/* Removes entry i; the order of the table does not matter. */
static void remove_at(edge_chans *c, size_t i)
{
    if (i + 1 < c->n)
        c->v[i] = c->v[c->n - 1];
    c->n--;
}

void edge_chans_join_done(edge_chans *c, const char *topic, const char *join_ref, bool ok,
                          void *data, edge_join_outcome *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = find_index(c, topic);
    if (join_ref == NULL || i == c->n || !same_ref(c->v[i].pending_ref, join_ref))
        return;
    edge_chan *e = &c->v[i];
    out->current = true;
    /* Whatever the result, an earlier join ends here: replaced on success,
     * shut down before the refused join ran on refusal, as Phoenix does. */
    if (e->joined_ref[0] != '\0') {
        out->had_old = true;
        memcpy(out->old_ref, e->joined_ref, sizeof(out->old_ref));
        out->old_data = e->data;
    }
    if (ok) {
        memcpy(e->joined_ref, e->pending_ref, sizeof(e->joined_ref));
        e->pending_ref[0] = '\0';
        e->data = data;
    } else {
        remove_at(c, i);
    }
}

void *edge_chans_remove(edge_chans *c, const char *topic)
{
    size_t i = find_index(c, topic);
    if (i == c->n)
        return NULL;
    void *data = c->v[i].joined_ref[0] != '\0' ? c->v[i].data : NULL;
    remove_at(c, i);
    return data;
}
