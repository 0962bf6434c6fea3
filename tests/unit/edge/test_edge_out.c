/* Unit tests of the edge's outbound frames and per-socket queues: reference
 * counts (the sanitizer build catches a leak or a double free), headroom,
 * FIFO order across growth and wrap-around, the byte cap, and the ring given
 * back after a burst. */
#include "../../../services/edge/edge_out.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---- */

/* A message whose text is "m<i>", with 16 bytes of headroom. */
static edge_msg *numbered(int i)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "m%d", i);
    cr_assert(n > 0 && (size_t)n < sizeof(text));
    return edge_msg_new(text, (size_t)n, 16);
}

/* Asserts that the oldest queued message is "m<i>", then pops it. */
static void pop_expect(edge_outq *q, int i)
{
    char want[32];
    snprintf(want, sizeof(want), "m%d", i);
    edge_msg *m = edge_outq_peek(q);
    cr_assert_not_null(m, "queue empty, wanted %s", want);
    cr_assert_eq(m->len, strlen(want), "wanted %s", want);
    cr_assert(memcmp(edge_msg_data(m), want, m->len) == 0, "wanted %s, got %.*s", want, (int)m->len,
              (const char *)edge_msg_data(m));
    edge_outq_pop(q);
}

/* ---- messages ---- */

Test(edge_out, new_message_has_one_reference_and_a_copy_of_the_data)
{
    char text[] = "hello";
    edge_msg *m = edge_msg_new(text, 5, 0);
    text[0] = 'J'; /* the message holds a copy, not the caller's bytes */
    cr_assert_eq(m->refs, 1);
    cr_assert_eq(m->len, 5);
    cr_assert_eq(m->pre, 0);
    cr_assert_str_eq(m->msg_id, "");
    cr_assert(memcmp(edge_msg_data(m), "hello", 5) == 0);
    edge_msg_unref(m);
}

Test(edge_out, data_starts_after_the_headroom_and_ends_with_a_nul)
{
    const size_t pres[] = {0, 1, 16, 4096};
    for (size_t i = 0; i < sizeof(pres) / sizeof(pres[0]); i++) {
        edge_msg *m = edge_msg_new("[1,2]", 5, pres[i]);
        cr_assert_eq(m->pre, pres[i]);
        cr_assert_eq(edge_msg_data(m), m->buf + pres[i]);
        cr_assert(memcmp(m->buf + pres[i], "[1,2]", 5) == 0, "pre %zu", pres[i]);
        cr_assert_eq(m->buf[pres[i] + 5], '\0', "pre %zu", pres[i]);
        /* The headroom is writable: the WebSocket library puts its header there. */
        memset(m->buf, 0xAB, pres[i]);
        cr_assert(memcmp(edge_msg_data(m), "[1,2]", 5) == 0);
        edge_msg_unref(m);
    }
}

Test(edge_out, empty_message_is_a_lone_nul)
{
    edge_msg *m = edge_msg_new("", 0, 8);
    cr_assert_eq(m->len, 0);
    cr_assert_eq(edge_msg_data(m)[0], '\0');
    edge_msg_unref(m);
}

Test(edge_out, ref_and_unref_count_and_free_at_zero)
{
    edge_msg *m = edge_msg_new("x", 1, 4);
    cr_assert_eq(edge_msg_ref(m), m, "ref returns its argument");
    cr_assert_eq(edge_msg_ref(m), m);
    cr_assert_eq(m->refs, 3);
    edge_msg_unref(m);
    cr_assert_eq(m->refs, 2);
    edge_msg_unref(m);
    cr_assert_eq(m->refs, 1);
    /* The last reference frees it: the sanitizer build reports a leak if it
     * does not, and a double free if an earlier unref already had. */
    edge_msg_unref(m);
}

Test(edge_out, unref_of_null_is_harmless)
{
    edge_msg_unref(NULL);
}

/* ---- queues ---- */

Test(edge_out, new_queue_is_empty)
{
    edge_outq q;
    memset(&q, 0x5A, sizeof(q)); /* init must not rely on zeroed memory */
    edge_outq_init(&q);
    cr_assert_eq(q.n, 0);
    cr_assert_eq(q.bytes, 0);
    cr_assert_null(edge_outq_peek(&q));
    edge_outq_free(&q);
}

Test(edge_out, peek_on_empty_is_null_and_pop_on_empty_is_harmless)
{
    edge_outq q;
    edge_outq_init(&q);
    edge_outq_pop(&q);
    cr_assert_null(edge_outq_peek(&q));
    cr_assert_eq(q.n, 0);
    cr_assert_eq(q.bytes, 0);
    /* Also once the ring exists and has been emptied again. */
    edge_msg *m = numbered(1);
    cr_assert(edge_outq_push(&q, m, 1000));
    pop_expect(&q, 1);
    edge_outq_pop(&q);
    edge_outq_pop(&q);
    cr_assert_null(edge_outq_peek(&q));
    cr_assert_eq(q.n, 0);
    cr_assert_eq(q.bytes, 0);
    cr_assert_eq(m->refs, 1, "popping an empty queue must not unref anything");
    edge_msg_unref(m);
    edge_outq_free(&q);
}

Test(edge_out, push_takes_a_reference_and_pop_drops_it)
{
    edge_outq q;
    edge_outq_init(&q);
    edge_msg *m = numbered(7);
    cr_assert(edge_outq_push(&q, m, 1000));
    cr_assert_eq(m->refs, 2);
    cr_assert_eq(edge_outq_peek(&q), m, "peek returns the queued message itself");
    cr_assert_eq(m->refs, 2, "peek takes no reference");
    cr_assert_eq(q.n, 1);
    edge_outq_pop(&q);
    cr_assert_eq(m->refs, 1);
    cr_assert_null(edge_outq_peek(&q));
    edge_msg_unref(m);
    edge_outq_free(&q);
}

Test(edge_out, queue_is_fifo_across_growth)
{
    edge_outq q;
    edge_outq_init(&q);
    /* 100 pushes grow the ring several times (it starts at 4). */
    for (int i = 0; i < 100; i++) {
        edge_msg *m = numbered(i);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m); /* the queue now holds the only reference */
    }
    cr_assert_eq(q.n, 100);
    for (int i = 0; i < 100; i++)
        pop_expect(&q, i);
    cr_assert_null(edge_outq_peek(&q));
    edge_outq_free(&q);
}

Test(edge_out, queue_is_fifo_when_growing_a_wrapped_ring)
{
    edge_outq q;
    edge_outq_init(&q);
    int next_in = 0, next_out = 0;
    /* Fill the first ring (4 slots), then pop and push in turn so that the
     * head walks round it several times without growing it. */
    for (int i = 0; i < 4; i++) {
        edge_msg *m = numbered(next_in++);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m);
    }
    uint32_t cap = q.cap;
    for (int round = 0; round < 11; round++) {
        pop_expect(&q, next_out++);
        edge_msg *m = numbered(next_in++);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m);
    }
    cr_assert_eq(q.cap, cap, "the ring grew while never more than full");
    cr_assert_neq(q.head, 0, "the head should sit inside the ring, so that it wraps");
    /* Now grow it while wrapped, twice, and check the order survives. */
    for (int i = 0; i < 3 * (int)cap; i++) {
        edge_msg *m = numbered(next_in++);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m);
    }
    cr_assert_gt(q.cap, cap);
    /* Interleave again after growth, then drain. */
    for (int round = 0; round < 5; round++) {
        pop_expect(&q, next_out++);
        edge_msg *m = numbered(next_in++);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m);
    }
    while (next_out < next_in)
        pop_expect(&q, next_out++);
    cr_assert_null(edge_outq_peek(&q));
    cr_assert_eq(q.n, 0);
    cr_assert_eq(q.bytes, 0);
    edge_outq_free(&q);
}

Test(edge_out, bytes_count_the_queued_lengths)
{
    edge_outq q;
    edge_outq_init(&q);
    edge_msg *a = edge_msg_new("aaaaaaaaaa", 10, 16); /* 10 bytes */
    edge_msg *b = edge_msg_new("bbb", 3, 0);          /* 3 bytes; headroom is not counted */
    edge_msg *e = edge_msg_new("", 0, 16);            /* 0 bytes */
    cr_assert(edge_outq_push(&q, a, 1000));
    cr_assert_eq(q.bytes, 10);
    cr_assert(edge_outq_push(&q, b, 1000));
    cr_assert_eq(q.bytes, 13);
    cr_assert(edge_outq_push(&q, e, 1000));
    cr_assert_eq(q.bytes, 13);
    cr_assert(edge_outq_push(&q, a, 1000), "the same message may be queued twice");
    cr_assert_eq(q.bytes, 23);
    cr_assert_eq(a->refs, 3);
    edge_outq_pop(&q);
    cr_assert_eq(q.bytes, 13);
    edge_outq_pop(&q);
    cr_assert_eq(q.bytes, 10);
    edge_outq_pop(&q);
    cr_assert_eq(q.bytes, 10);
    edge_outq_pop(&q);
    cr_assert_eq(q.bytes, 0);
    cr_assert_eq(a->refs, 1);
    edge_msg_unref(a);
    edge_msg_unref(b);
    edge_msg_unref(e);
    edge_outq_free(&q);
}

Test(edge_out, push_past_the_byte_cap_is_refused_with_nothing_queued)
{
    edge_outq q;
    edge_outq_init(&q);
    edge_msg *six = edge_msg_new("123456", 6, 16);
    edge_msg *four = edge_msg_new("abcd", 4, 16);
    edge_msg *five = edge_msg_new("vwxyz", 5, 16);
    cr_assert(edge_outq_push(&q, six, 10));
    /* 6 + 5 > 10: refused, and neither the queue nor the count moves. */
    cr_assert_not(edge_outq_push(&q, five, 10));
    cr_assert_eq(q.n, 1);
    cr_assert_eq(q.bytes, 6);
    cr_assert_eq(five->refs, 1, "a refused push takes no reference");
    /* 6 + 4 == 10: exactly at the cap is allowed. */
    cr_assert(edge_outq_push(&q, four, 10));
    cr_assert_eq(q.bytes, 10);
    cr_assert_eq(four->refs, 2);
    /* A full queue takes no more, even a zero-length one would fit but a
     * one-byte one does not. */
    edge_msg *one = edge_msg_new("!", 1, 0);
    cr_assert_not(edge_outq_push(&q, one, 10));
    cr_assert_eq(one->refs, 1);
    cr_assert_eq(q.n, 2);
    /* A single message larger than the cap never fits, even in an empty queue. */
    edge_outq empty;
    edge_outq_init(&empty);
    cr_assert_not(edge_outq_push(&empty, six, 5));
    cr_assert_eq(empty.n, 0);
    cr_assert_eq(empty.bytes, 0);
    cr_assert_null(edge_outq_peek(&empty));
    cr_assert_eq(six->refs, 2, "only q holds a reference");
    edge_outq_free(&empty);
    /* Order is unchanged by the refusals. */
    cr_assert_eq(edge_outq_peek(&q), six);
    edge_outq_pop(&q);
    cr_assert_eq(edge_outq_peek(&q), four);
    edge_outq_pop(&q);
    cr_assert_null(edge_outq_peek(&q));
    edge_msg_unref(six);
    edge_msg_unref(four);
    edge_msg_unref(five);
    edge_msg_unref(one);
    edge_outq_free(&q);
}

Test(edge_out, free_drops_every_reference)
{
    edge_outq q[3];
    edge_msg *m = edge_msg_new("shared", 6, 16);
    edge_msg *other = edge_msg_new("other", 5, 16);
    for (int i = 0; i < 3; i++) {
        edge_outq_init(&q[i]);
        cr_assert(edge_outq_push(&q[i], m, 1000));
        cr_assert(edge_outq_push(&q[i], other, 1000));
    }
    cr_assert_eq(m->refs, 4);
    cr_assert_eq(other->refs, 4);
    for (int i = 0; i < 3; i++) {
        edge_outq_free(&q[i]);
        cr_assert_eq(m->refs, (uint32_t)(3 - i));
        cr_assert_eq(q[i].n, 0);
        cr_assert_eq(q[i].bytes, 0);
        cr_assert_null(q[i].v);
        cr_assert_null(edge_outq_peek(&q[i]), "a freed queue reads as empty");
    }
    cr_assert_eq(m->refs, 1);
    cr_assert_eq(other->refs, 1);
    edge_msg_unref(m);
    edge_msg_unref(other);
}

Test(edge_out, freed_queue_can_be_reused)
{
    edge_outq q;
    edge_outq_init(&q);
    edge_outq_free(&q); /* freeing a queue that never held anything */
    for (int i = 0; i < 10; i++) {
        edge_msg *m = numbered(i);
        cr_assert(edge_outq_push(&q, m, 1000));
        edge_msg_unref(m);
    }
    edge_outq_free(&q);
    edge_msg *m = numbered(42);
    cr_assert(edge_outq_push(&q, m, 1000));
    edge_msg_unref(m);
    pop_expect(&q, 42);
    edge_outq_free(&q);
}

Test(edge_out, ring_is_given_back_after_a_burst)
{
    edge_outq q;
    edge_outq_init(&q);
    for (int i = 0; i < 200; i++) {
        edge_msg *m = numbered(i);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m);
    }
    cr_assert_geq(q.cap, 200);
    for (int i = 0; i < 200; i++)
        pop_expect(&q, i);
    cr_assert_eq(q.n, 0);
    cr_assert_eq(q.bytes, 0);
    cr_assert_lt(q.cap, 200, "the burst's ring is kept after the queue emptied");
    /* The queue works as before after giving the ring back. */
    for (int i = 0; i < 20; i++) {
        edge_msg *m = numbered(i);
        cr_assert(edge_outq_push(&q, m, 1 << 20));
        edge_msg_unref(m);
    }
    for (int i = 0; i < 20; i++)
        pop_expect(&q, i);
    edge_outq_free(&q);
}
