/* Unit tests of a socket's channel table: the route of every kind of frame
 * against joined, joining and unknown topics (Phoenix's join_ref rules), the
 * 100-topic limit, and the outcome of a join whose authorisation came back
 * current, replaced, removed, accepted or refused. */
#include "../../../services/edge/edge_chan.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---- */

/* A decoded frame; jr NULL means a null join_ref. */
static edge_frame frame(const char *jr, const char *topic, const char *event)
{
    edge_frame f;
    memset(&f, 0, sizeof(f));
    if (jr != NULL) {
        f.has_join_ref = true;
        snprintf(f.join_ref, sizeof(f.join_ref), "%s", jr);
    }
    f.has_ref = true;
    snprintf(f.ref, sizeof(f.ref), "%s", "99");
    snprintf(f.topic, sizeof(f.topic), "%s", topic);
    snprintf(f.event, sizeof(f.event), "%s", event);
    return f;
}

static edge_route route(const edge_chans *c, const char *jr, const char *topic, const char *event)
{
    edge_frame f = frame(jr, topic, event);
    return edge_chans_route(c, &f);
}

/* Joins topic under jr with data, as a server whose authorisation said yes. */
static void join(edge_chans *c, const char *topic, const char *jr, void *data)
{
    cr_assert_eq(edge_chans_join_begin(c, topic, jr), NT_OK);
    edge_join_outcome o;
    edge_chans_join_done(c, topic, jr, true, data, &o);
    cr_assert(o.current);
}

static int A, B, C; /* distinct addresses for per-join data */

/* ---- routing ---- */

Test(edge_chan, heartbeat_needs_no_channel)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(route(&c, NULL, "phoenix", "heartbeat"), EDGE_ROUTE_HEARTBEAT);
    cr_assert_eq(route(&c, "5", "phoenix", "heartbeat"), EDGE_ROUTE_HEARTBEAT);
    join(&c, "room:1", "1", &A);
    cr_assert_eq(route(&c, NULL, "phoenix", "heartbeat"), EDGE_ROUTE_HEARTBEAT);
    edge_chans_free(&c);
}

Test(edge_chan, other_phoenix_events_are_phoenix_other)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(route(&c, NULL, "phoenix", "ping"), EDGE_ROUTE_PHOENIX_OTHER);
    cr_assert_eq(route(&c, "1", "phoenix", "phx_join"), EDGE_ROUTE_PHOENIX_OTHER);
    cr_assert_eq(route(&c, "1", "phoenix", "phx_leave"), EDGE_ROUTE_PHOENIX_OTHER);
    cr_assert_eq(route(&c, NULL, "phoenix", "Heartbeat"), EDGE_ROUTE_PHOENIX_OTHER);
    /* Only the exact topic is reserved. */
    cr_assert_eq(route(&c, NULL, "phoenix2", "heartbeat"), EDGE_ROUTE_UNMATCHED);
    edge_chans_free(&c);
}

Test(edge_chan, join_is_always_join)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(route(&c, "1", "room:1", "phx_join"), EDGE_ROUTE_JOIN);
    cr_assert_eq(route(&c, NULL, "room:1", "phx_join"), EDGE_ROUTE_JOIN);
    join(&c, "room:1", "1", &A);
    cr_assert_eq(route(&c, "1", "room:1", "phx_join"), EDGE_ROUTE_JOIN);
    cr_assert_eq(route(&c, "5", "room:1", "phx_join"), EDGE_ROUTE_JOIN);
    cr_assert_eq(edge_chans_join_begin(&c, "room:2", "6"), NT_OK);
    cr_assert_eq(route(&c, "0", "room:2", "phx_join"), EDGE_ROUTE_JOIN);
    edge_chans_free(&c);
}

Test(edge_chan, push_on_a_joined_topic)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "3", &A);
    cr_assert_eq(route(&c, "3", "room:1", "new_msg"), EDGE_ROUTE_PUSH);
    cr_assert_eq(route(&c, NULL, "room:1", "new_msg"), EDGE_ROUTE_PUSH);
    cr_assert_eq(route(&c, "2", "room:1", "new_msg"), EDGE_ROUTE_STALE);
    cr_assert_eq(route(&c, "33", "room:1", "new_msg"), EDGE_ROUTE_STALE);
    edge_chans_free(&c);
}

Test(edge_chan, push_on_a_joining_or_unknown_topic_is_unmatched)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(route(&c, "1", "room:1", "new_msg"), EDGE_ROUTE_UNMATCHED);
    cr_assert_eq(route(&c, NULL, "room:1", "new_msg"), EDGE_ROUTE_UNMATCHED);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "1"), NT_OK);
    cr_assert_eq(route(&c, "1", "room:1", "new_msg"), EDGE_ROUTE_UNMATCHED);
    cr_assert_eq(route(&c, NULL, "room:1", "new_msg"), EDGE_ROUTE_UNMATCHED);
    cr_assert_eq(route(&c, "7", "room:1", "new_msg"), EDGE_ROUTE_UNMATCHED);
    join(&c, "room:2", "2", &A);
    cr_assert_eq(route(&c, "2", "room:3", "new_msg"), EDGE_ROUTE_UNMATCHED);
    edge_chans_free(&c);
}

Test(edge_chan, old_join_keeps_receiving_while_a_rejoin_waits)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "1", &A);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "5"), NT_OK);
    cr_assert_eq(route(&c, "1", "room:1", "new_msg"), EDGE_ROUTE_PUSH);
    cr_assert_eq(route(&c, "5", "room:1", "new_msg"), EDGE_ROUTE_STALE);
    edge_join_outcome o;
    edge_chans_join_done(&c, "room:1", "5", true, &B, &o);
    cr_assert_eq(route(&c, "5", "room:1", "new_msg"), EDGE_ROUTE_PUSH);
    cr_assert_eq(route(&c, "1", "room:1", "new_msg"), EDGE_ROUTE_STALE);
    edge_chans_free(&c);
}

Test(edge_chan, leave_of_a_joined_topic)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "3", &A);
    cr_assert_eq(route(&c, "3", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE);
    cr_assert_eq(route(&c, NULL, "room:1", "phx_leave"), EDGE_ROUTE_LEAVE);
    cr_assert_eq(route(&c, "2", "room:1", "phx_leave"), EDGE_ROUTE_STALE);
    edge_chans_free(&c);
}

Test(edge_chan, leave_of_a_joining_topic)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "4"), NT_OK);
    cr_assert_eq(route(&c, "4", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE);
    cr_assert_eq(route(&c, NULL, "room:1", "phx_leave"), EDGE_ROUTE_LEAVE);
    cr_assert_eq(route(&c, "3", "room:1", "phx_leave"), EDGE_ROUTE_STALE);
    edge_chans_free(&c);
}

Test(edge_chan, leave_while_joined_and_joining_accepts_either_ref)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "1", &A);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "5"), NT_OK);
    cr_assert_eq(route(&c, "1", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE);
    cr_assert_eq(route(&c, "5", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE);
    cr_assert_eq(route(&c, "3", "room:1", "phx_leave"), EDGE_ROUTE_STALE);
    edge_chans_free(&c);
}

Test(edge_chan, leave_of_an_unknown_topic_is_unjoined)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(route(&c, "3", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE_UNJOINED);
    cr_assert_eq(route(&c, NULL, "room:1", "phx_leave"), EDGE_ROUTE_LEAVE_UNJOINED);
    join(&c, "room:2", "3", &A);
    cr_assert_eq(route(&c, "3", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE_UNJOINED);
    cr_assert_eq(edge_chans_remove(&c, "room:2"), &A);
    cr_assert_eq(route(&c, "3", "room:2", "phx_leave"), EDGE_ROUTE_LEAVE_UNJOINED);
    edge_chans_free(&c);
}

/* ---- join_begin ---- */

Test(edge_chan, join_begin_records_a_pending_join)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_null(edge_chans_find(&c, "room:1"));
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "1"), NT_OK);
    edge_chan *e = edge_chans_find(&c, "room:1");
    cr_assert_not_null(e);
    cr_assert_str_eq(e->topic, "room:1");
    cr_assert_str_eq(e->pending_ref, "1");
    cr_assert_str_eq(e->joined_ref, "");
    cr_assert_null(e->data);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "2"), NT_OK);
    e = edge_chans_find(&c, "room:1");
    cr_assert_str_eq(e->pending_ref, "2", "the newer join replaces the pending one");
    cr_assert_eq(c.n, 1);
    edge_chans_free(&c);
    cr_assert_null(c.v);
    cr_assert_eq(c.n, 0);
    edge_chans_free(&c);
    edge_chans_free(NULL);
}

Test(edge_chan, join_begin_caps_topics_at_100)
{
    edge_chans c;
    edge_chans_init(&c);
    char topic[32];
    for (int i = 0; i < EDGE_CHANS_MAX; i++) {
        snprintf(topic, sizeof(topic), "room:%d", i);
        if (i % 2 == 0)
            join(&c, topic, "1", &A);
        else
            cr_assert_eq(edge_chans_join_begin(&c, topic, "1"), NT_OK, "topic %d", i);
    }
    cr_assert_eq(c.n, 100);
    cr_assert_eq(edge_chans_join_begin(&c, "room:100", "2"), NT_ETOOBIG);
    cr_assert_eq(c.n, 100);
    cr_assert_null(edge_chans_find(&c, "room:100"));
    /* Rejoining a topic already there needs no new slot. */
    cr_assert_eq(edge_chans_join_begin(&c, "room:0", "7"), NT_OK);
    cr_assert_eq(edge_chans_join_begin(&c, "room:99", "7"), NT_OK);
    cr_assert_str_eq(edge_chans_find(&c, "room:0")->pending_ref, "7");
    cr_assert_str_eq(edge_chans_find(&c, "room:0")->joined_ref, "1");
    cr_assert_eq(c.n, 100);
    /* Every topic is still there and findable. */
    for (int i = 0; i < EDGE_CHANS_MAX; i++) {
        snprintf(topic, sizeof(topic), "room:%d", i);
        cr_assert_not_null(edge_chans_find(&c, topic), "topic %d", i);
    }
    /* A slot freed is a slot usable again. */
    cr_assert_eq(edge_chans_remove(&c, "room:50"), &A);
    cr_assert_eq(edge_chans_join_begin(&c, "room:100", "2"), NT_OK);
    cr_assert_eq(edge_chans_join_begin(&c, "room:101", "2"), NT_ETOOBIG);
    edge_chans_free(&c);
}

Test(edge_chan, join_begin_refuses_a_missing_join_ref_or_oversized_fields)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", NULL), NT_EINVAL);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", ""), NT_EINVAL);
    cr_assert_eq(edge_chans_join_begin(&c, "", "1"), NT_EINVAL);
    char big[EDGE_TOPIC_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(edge_chans_join_begin(&c, big, "1"), NT_EINVAL);
    big[EDGE_REF_MAX + 1] = '\0';
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", big), NT_EINVAL);
    cr_assert_eq(c.n, 0);
    big[EDGE_REF_MAX] = '\0';
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", big), NT_OK);
    cr_assert_str_eq(edge_chans_find(&c, "room:1")->pending_ref, big);
    edge_chans_free(&c);
}

/* ---- join_done ---- */

Test(edge_chan, join_done_accepts_a_fresh_join)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "3"), NT_OK);
    edge_join_outcome o;
    memset(&o, 0xAB, sizeof(o));
    edge_chans_join_done(&c, "room:1", "3", true, &A, &o);
    cr_assert(o.current);
    cr_assert_not(o.had_old);
    cr_assert_null(o.old_data);
    edge_chan *e = edge_chans_find(&c, "room:1");
    cr_assert_str_eq(e->joined_ref, "3");
    cr_assert_str_eq(e->pending_ref, "");
    cr_assert_eq(e->data, &A);
    edge_chans_free(&c);
}

Test(edge_chan, join_done_of_a_replaced_join_is_not_current)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "3"), NT_OK);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "4"), NT_OK);
    edge_join_outcome o;
    for (int ok = 0; ok < 2; ok++) {
        edge_chans_join_done(&c, "room:1", "3", ok, &A, &o);
        cr_assert_not(o.current);
        cr_assert_not(o.had_old);
        edge_chan *e = edge_chans_find(&c, "room:1");
        cr_assert_not_null(e, "a stale result changes nothing");
        cr_assert_str_eq(e->pending_ref, "4");
        cr_assert_str_eq(e->joined_ref, "");
        cr_assert_null(e->data);
    }
    edge_chans_join_done(&c, "room:1", "4", true, &B, &o);
    cr_assert(o.current);
    cr_assert_eq(edge_chans_find(&c, "room:1")->data, &B);
    /* Once decided, the same result again is stale too. */
    edge_chans_join_done(&c, "room:1", "4", true, &C, &o);
    cr_assert_not(o.current);
    cr_assert_eq(edge_chans_find(&c, "room:1")->data, &B);
    edge_chans_free(&c);
}

Test(edge_chan, join_done_after_removal_is_not_current)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "3"), NT_OK);
    cr_assert_null(edge_chans_remove(&c, "room:1"), "a join never done has no data");
    edge_join_outcome o;
    edge_chans_join_done(&c, "room:1", "3", true, &A, &o);
    cr_assert_not(o.current);
    cr_assert_null(edge_chans_find(&c, "room:1"), "no entry comes back");
    edge_chans_join_done(&c, "room:9", "3", true, &A, &o);
    cr_assert_not(o.current);
    edge_chans_join_done(&c, "room:9", NULL, true, &A, &o);
    cr_assert_not(o.current);
    cr_assert_eq(c.n, 0);
    edge_chans_free(&c);
}

Test(edge_chan, join_done_ok_replaces_an_earlier_join)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "1", &A);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "5"), NT_OK);
    edge_join_outcome o;
    edge_chans_join_done(&c, "room:1", "5", true, &B, &o);
    cr_assert(o.current);
    cr_assert(o.had_old);
    cr_assert_str_eq(o.old_ref, "1");
    cr_assert_eq(o.old_data, &A);
    edge_chan *e = edge_chans_find(&c, "room:1");
    cr_assert_str_eq(e->joined_ref, "5");
    cr_assert_str_eq(e->pending_ref, "");
    cr_assert_eq(e->data, &B);
    cr_assert_eq(c.n, 1);
    edge_chans_free(&c);
}

Test(edge_chan, join_done_refusal_drops_the_earlier_join_too)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "1", &A);
    join(&c, "room:2", "2", &C);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "5"), NT_OK);
    edge_join_outcome o;
    edge_chans_join_done(&c, "room:1", "5", false, NULL, &o);
    cr_assert(o.current);
    cr_assert(o.had_old);
    cr_assert_str_eq(o.old_ref, "1");
    cr_assert_eq(o.old_data, &A);
    cr_assert_null(edge_chans_find(&c, "room:1"));
    cr_assert_eq(route(&c, "1", "room:1", "new_msg"), EDGE_ROUTE_UNMATCHED);
    cr_assert_eq(edge_chans_find(&c, "room:2")->data, &C, "other topics untouched");
    cr_assert_eq(c.n, 1);
    edge_chans_free(&c);
}

Test(edge_chan, join_done_refusal_of_a_fresh_join_removes_the_entry)
{
    edge_chans c;
    edge_chans_init(&c);
    cr_assert_eq(edge_chans_join_begin(&c, "room:1", "3"), NT_OK);
    edge_join_outcome o;
    edge_chans_join_done(&c, "room:1", "3", false, NULL, &o);
    cr_assert(o.current);
    cr_assert_not(o.had_old);
    cr_assert_str_eq(o.old_ref, "");
    cr_assert_null(o.old_data);
    cr_assert_null(edge_chans_find(&c, "room:1"));
    cr_assert_eq(c.n, 0);
    cr_assert_eq(route(&c, "3", "room:1", "phx_leave"), EDGE_ROUTE_LEAVE_UNJOINED);
    edge_chans_free(&c);
}

/* ---- remove ---- */

Test(edge_chan, remove_returns_the_data)
{
    edge_chans c;
    edge_chans_init(&c);
    join(&c, "room:1", "1", &A);
    join(&c, "room:2", "2", &B);
    join(&c, "room:3", "3", &C);
    cr_assert_null(edge_chans_remove(&c, "room:9"));
    cr_assert_eq(edge_chans_remove(&c, "room:1"), &A);
    cr_assert_null(edge_chans_find(&c, "room:1"));
    cr_assert_null(edge_chans_remove(&c, "room:1"), "removed once");
    cr_assert_eq(edge_chans_find(&c, "room:2")->data, &B);
    cr_assert_eq(edge_chans_find(&c, "room:3")->data, &C);
    cr_assert_str_eq(edge_chans_find(&c, "room:3")->joined_ref, "3");
    /* Joined with a rejoin pending: the joined data, and both go. */
    cr_assert_eq(edge_chans_join_begin(&c, "room:3", "8"), NT_OK);
    cr_assert_eq(edge_chans_remove(&c, "room:3"), &C);
    cr_assert_null(edge_chans_find(&c, "room:3"));
    edge_join_outcome o;
    edge_chans_join_done(&c, "room:3", "8", true, &A, &o);
    cr_assert_not(o.current);
    cr_assert_eq(edge_chans_remove(&c, "room:2"), &B);
    cr_assert_eq(c.n, 0);
    edge_chans_free(&c);
}
