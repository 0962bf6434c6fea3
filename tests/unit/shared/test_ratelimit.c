/* Tests for nt_ratelimit: pure, with time passed explicitly. The last test
 * checks the table against a naive model over many random operations. */
#include "nt_ratelimit.h"

#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static nt_ratelimit *make(double rate, double burst, size_t max_keys)
{
    nt_ratelimit *rl = NULL;
    cr_assert_eq(nt_ratelimit_create(rate, burst, max_keys, &rl), NT_OK);
    cr_assert_not_null(rl);
    return rl;
}

/* How many takes succeed in a row at time t. */
static int drain(nt_ratelimit *rl, const char *key, int64_t t)
{
    int n = 0;
    while (nt_ratelimit_take(rl, key, t, NULL)) {
        n++;
        cr_assert_lt(n, 100000, "bucket never empties");
    }
    return n;
}

Test(ratelimit, burst_then_refusal)
{
    nt_ratelimit *rl = make(1, 5, 100);
    for (int i = 0; i < 5; i++)
        cr_assert(nt_ratelimit_take(rl, "u1", 1000, NULL), "take %d refused", i);
    int64_t retry = -1;
    cr_assert_not(nt_ratelimit_take(rl, "u1", 1000, &retry));
    cr_assert_eq(retry, 1000);
    cr_assert_not(nt_ratelimit_take(rl, "u1", 1000, NULL), "NULL retry_after is allowed");
    cr_assert_eq(nt_ratelimit_size(rl), 1);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, retry_after_is_exact)
{
    nt_ratelimit *rl = make(3, 1, 10);
    cr_assert(nt_ratelimit_take(rl, "k", 0, NULL));
    int64_t retry = -1;
    cr_assert_not(nt_ratelimit_take(rl, "k", 0, &retry));
    cr_assert_eq(retry, 334); /* ceil(1 / 3 * 1000) */
    cr_assert_not(nt_ratelimit_take(rl, "k", 333, NULL), "token given early");
    cr_assert(nt_ratelimit_take(rl, "k", 334, NULL));

    /* Partly refilled: 0.3 tokens at +100 ms, so 0.7 more needs ceil(233.3) ms. */
    cr_assert_not(nt_ratelimit_take(rl, "k", 434, &retry));
    cr_assert_eq(retry, 234);
    cr_assert_not(nt_ratelimit_take(rl, "k", 434 + retry - 1, NULL));
    cr_assert(nt_ratelimit_take(rl, "k", 434 + retry, NULL));
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, retry_after_then_take_succeeds_for_many_rates)
{
    static const double rates[] = {0.1, 0.3, 0.5, 0.7, 1, 3, 7, 10, 33.3, 1000, 5000};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        nt_ratelimit *rl = make(rates[r], 2, 4);
        int64_t t = 12345;
        for (int round = 0; round < 50; round++) {
            drain(rl, "k", t);
            int64_t retry = -1;
            cr_assert_not(nt_ratelimit_take(rl, "k", t, &retry));
            cr_assert_geq(retry, 1, "rate %g: retry %ld", rates[r], (long)retry);
            if (retry > 1)
                cr_assert_not(nt_ratelimit_take(rl, "k", t + retry - 1, NULL),
                              "rate %g: token before retry_after", rates[r]);
            cr_assert(nt_ratelimit_take(rl, "k", t + retry, NULL),
                      "rate %g: no token at retry_after %ld", rates[r], (long)retry);
            t += retry + (round % 7);
        }
        nt_ratelimit_destroy(rl);
    }
}

Test(ratelimit, retry_after_is_at_least_one_ms)
{
    /* At 5000/s a token takes 0.2 ms; the hint still says 1. */
    nt_ratelimit *rl = make(5000, 1, 4);
    cr_assert(nt_ratelimit_take(rl, "k", 0, NULL));
    int64_t retry = -1;
    cr_assert_not(nt_ratelimit_take(rl, "k", 0, &retry));
    cr_assert_eq(retry, 1);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, refill_never_exceeds_burst)
{
    nt_ratelimit *rl = make(10, 3, 10);
    cr_assert_eq(drain(rl, "k", 0), 3);
    /* An hour later there are 3 tokens, not 36000. */
    cr_assert_eq(drain(rl, "k", 3600 * 1000), 3);
    /* Refill is proportional in between: 0.25 s at 10/s is 2.5 tokens. */
    cr_assert_eq(drain(rl, "k", 3600 * 1000 + 250), 2);
    /* The half token carried over: 50 ms more makes it 1.0. */
    cr_assert_eq(drain(rl, "k", 3600 * 1000 + 300), 1);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, keys_are_independent)
{
    nt_ratelimit *rl = make(1, 1, 10);
    cr_assert(nt_ratelimit_take(rl, "alice", 0, NULL));
    cr_assert_not(nt_ratelimit_take(rl, "alice", 0, NULL));
    cr_assert(nt_ratelimit_take(rl, "bob", 0, NULL));
    cr_assert(nt_ratelimit_take(rl, "alicf", 0, NULL));
    cr_assert(nt_ratelimit_take(rl, "", 0, NULL), "the empty key is a key");
    cr_assert_not(nt_ratelimit_take(rl, "", 0, NULL));
    cr_assert_not(nt_ratelimit_take(rl, "bob", 0, NULL));
    cr_assert_eq(nt_ratelimit_size(rl), 4);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, long_keys_are_hashed_not_merged)
{
    nt_ratelimit *rl = make(1, 1, 10);
    char a[600], b[600], prefix[300];
    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[sizeof b - 2] = 'y'; /* differs only in the last byte, far past 256 */
    memcpy(prefix, a, 240);
    prefix[240] = '\0';
    char *a_copy = strdup(a);

    cr_assert(nt_ratelimit_take(rl, a, 0, NULL));
    cr_assert_not(nt_ratelimit_take(rl, a_copy, 0, NULL), "same long key, other buffer");
    cr_assert(nt_ratelimit_take(rl, b, 0, NULL), "long keys differing late share a bucket");
    cr_assert(nt_ratelimit_take(rl, prefix, 0, NULL), "short key equals a long key's prefix");
    a[256] = '\0'; /* exactly the cap: stored as is, distinct from the longer one */
    cr_assert(nt_ratelimit_take(rl, a, 0, NULL));
    cr_assert_not(nt_ratelimit_take(rl, a, 0, NULL));
    cr_assert_eq(nt_ratelimit_size(rl), 4);
    free(a_copy);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, table_never_exceeds_max_keys)
{
    nt_ratelimit *rl = make(1, 5, 16);
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "ip-%d", i);
        cr_assert(nt_ratelimit_take(rl, key, i / 10, NULL), "a new key is always allowed");
        cr_assert_leq(nt_ratelimit_size(rl), 16, "size %zu at %d", nt_ratelimit_size(rl), i);
    }
    cr_assert_eq(nt_ratelimit_size(rl), 16);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, eviction_prefers_full_buckets_then_lru)
{
    nt_ratelimit *rl = make(1, 10, 3);
    /* b and c are 5 tokens down; a, used last, only 1. */
    for (int i = 0; i < 5; i++)
        cr_assert(nt_ratelimit_take(rl, "b", 0, NULL));
    for (int i = 0; i < 5; i++)
        cr_assert(nt_ratelimit_take(rl, "c", 0, NULL));
    cr_assert(nt_ratelimit_take(rl, "a", 0, NULL));
    cr_assert_eq(nt_ratelimit_size(rl), 3);

    /* At 1.5 s a is full again (the most recent, but equivalent to absent);
     * b and c are not. A new key must push out a, not b (the LRU). */
    cr_assert(nt_ratelimit_take(rl, "d", 1500, NULL));
    cr_assert_eq(nt_ratelimit_size(rl), 3);
    /* b kept its state: 5 + 1.5 tokens, so 6 takes, not a fresh 10. */
    cr_assert_eq(drain(rl, "b", 1500), 6);

    /* Now nothing is full (b, c, d are all down); LRU order is c, d, b. A new
     * key evicts c, the least recently used. */
    cr_assert(nt_ratelimit_take(rl, "e", 1500, NULL));
    cr_assert_eq(nt_ratelimit_size(rl), 3);
    /* d survived (9 tokens left); c is gone, so it would start fresh. */
    cr_assert_eq(drain(rl, "d", 1500), 9);
    /* c comes back fresh: 10 tokens (it would have had 6.5). */
    cr_assert_eq(drain(rl, "c", 1500), 10);
    cr_assert_eq(nt_ratelimit_size(rl), 3);
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, time_going_backwards_adds_nothing)
{
    nt_ratelimit *rl = make(1, 2, 10);
    cr_assert_eq(drain(rl, "k", 10000), 2);
    int64_t retry = -1;
    cr_assert_not(nt_ratelimit_take(rl, "k", 5000, &retry), "the past refilled the bucket");
    /* The hint is from the caller's now: 5 s back plus the 1 s a token takes. */
    cr_assert_eq(retry, 6000);
    cr_assert_not(nt_ratelimit_take(rl, "k", 0, NULL));
    cr_assert_not(nt_ratelimit_take(rl, "k", INT64_MIN / 2, NULL));
    /* Coming back to the present, the jump back and forth added nothing. */
    cr_assert_not(nt_ratelimit_take(rl, "k", 10999, NULL));
    cr_assert_eq(drain(rl, "k", 11000), 1);
    /* A new key in the past is fine too. */
    cr_assert(nt_ratelimit_take(rl, "new", 1, NULL));
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, fractional_rates)
{
    nt_ratelimit *rl = make(0.5, 1, 10);
    cr_assert(nt_ratelimit_take(rl, "k", 0, NULL));
    int64_t retry = -1;
    cr_assert_not(nt_ratelimit_take(rl, "k", 0, &retry));
    cr_assert_eq(retry, 2000);
    cr_assert_not(nt_ratelimit_take(rl, "k", 1999, NULL));
    cr_assert(nt_ratelimit_take(rl, "k", 2000, NULL));
    /* Ten minutes at 0.5/s is 300 tokens, capped at a burst of 1. */
    cr_assert_eq(drain(rl, "k", 602000), 1);
    nt_ratelimit_destroy(rl);

    /* A fractional burst: 2.5 tokens give 2 takes, then the half waits. */
    rl = make(0.5, 2.5, 10);
    cr_assert_eq(drain(rl, "k", 0), 2);
    cr_assert_not(nt_ratelimit_take(rl, "k", 0, &retry));
    cr_assert_eq(retry, 1000); /* 0.5 tokens there, 0.5 more at 0.5/s */
    cr_assert(nt_ratelimit_take(rl, "k", 1000, NULL));
    nt_ratelimit_destroy(rl);
}

Test(ratelimit, create_rejects_bad_parameters)
{
    nt_ratelimit *rl = NULL;
    cr_assert_eq(nt_ratelimit_create(0, 1, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(-1, 1, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(NAN, 1, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(INFINITY, 1, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(1e-300, 1, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(1, 0.5, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(1, NAN, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(1, INFINITY, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(1, 1, 0, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(2e6, 1, 10, &rl), NT_EINVAL);
    cr_assert_eq(nt_ratelimit_create(1e-6, 1e6, 10, &rl), NT_EINVAL); /* 31,000 years to refill */
    cr_assert_null(rl, "out written on failure");
    nt_ratelimit_destroy(NULL);
}

typedef struct {
    nt_ratelimit *rl;
    int allowed;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    char key[16];
    for (int i = 0; i < 3000; i++) {
        /* One shared key, and some churn on others to exercise eviction. */
        if (nt_ratelimit_take(a->rl, "shared", 0, NULL))
            a->allowed++;
        snprintf(key, sizeof key, "k%d", i % 50);
        nt_ratelimit_take(a->rl, key, i, NULL);
    }
    return NULL;
}

Test(ratelimit, threads_share_one_bucket_exactly)
{
    nt_ratelimit *rl = make(1e-3, 1000, 32);
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){rl, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += args[i].allowed;
    }
    /* "shared" may be evicted by the churn and come back full; it is used
     * constantly, so it stays recent and is never full: exactly the burst. */
    cr_assert_eq(total, 1000);
    cr_assert_leq(nt_ratelimit_size(rl), 32);
    nt_ratelimit_destroy(rl);
}

/* ---- a naive model, to check the hash table, heap and LRU list together ----
 * Same arithmetic (a bucket is the microsecond at which it was empty), but a
 * flat array scanned in full: no hashing, no heap, no list. */

typedef struct {
    char key[8];
    int64_t empty_us;
    long used; /* larger is more recent */
    bool live;
} model_bucket;

typedef struct {
    int64_t interval_us, burst_us;
    size_t max;
    model_bucket b[64];
    long clock;
} model;

static size_t model_size(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < 64; i++)
        n += m->b[i].live;
    return n;
}

static bool model_take(model *m, const char *key, int64_t now_ms)
{
    int64_t now = now_ms * 1000;
    model_bucket *b = NULL;
    for (size_t i = 0; i < 64; i++)
        if (m->b[i].live && strcmp(m->b[i].key, key) == 0)
            b = &m->b[i];
    if (b == NULL) {
        if (model_size(m) >= m->max) {
            for (size_t i = 0; i < 64; i++)
                if (m->b[i].live && now >= m->b[i].empty_us + m->burst_us)
                    m->b[i].live = false;
            if (model_size(m) >= m->max) {
                model_bucket *lru = NULL;
                for (size_t i = 0; i < 64; i++)
                    if (m->b[i].live && (lru == NULL || m->b[i].used < lru->used))
                        lru = &m->b[i];
                lru->live = false;
            }
        }
        for (size_t i = 0; i < 64 && b == NULL; i++)
            if (!m->b[i].live)
                b = &m->b[i];
        cr_assert_not_null(b, "model out of slots");
        snprintf(b->key, sizeof b->key, "%s", key);
        b->live = true;
        b->empty_us = now - m->burst_us + m->interval_us;
        b->used = ++m->clock;
        return true;
    }
    b->used = ++m->clock;
    int64_t base = b->empty_us > now - m->burst_us ? b->empty_us : now - m->burst_us;
    if (now - base < m->interval_us)
        return false;
    b->empty_us = base + m->interval_us;
    return true;
}

Test(ratelimit, agrees_with_a_naive_model)
{
    static const struct {
        double rate, burst;
        size_t max;
    } cfgs[] = {{1, 3, 8}, {0.5, 1, 4}, {20, 5, 16}, {3, 2.5, 1}, {100, 10, 30}};
    unsigned seed = 12345;
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        nt_ratelimit *rl = make(cfgs[c].rate, cfgs[c].burst, cfgs[c].max);
        model m = {.interval_us = llround(1e6 / cfgs[c].rate),
                   .burst_us = llround(cfgs[c].burst * 1e6 / cfgs[c].rate),
                   .max = cfgs[c].max};
        int64_t t = 1000000;
        for (int i = 0; i < 20000; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 8;
            /* Mostly forward, sometimes a step back in time. */
            t += (int64_t)(r % 97) - ((r % 13 == 0) ? 150 : 0);
            char key[8];
            snprintf(key, sizeof key, "k%u", (r >> 8) % 40);
            bool want = model_take(&m, key, t);
            bool got = nt_ratelimit_take(rl, key, t, NULL);
            cr_assert_eq(got, want, "cfg %zu op %d key %s t %ld", c, i, key, (long)t);
            cr_assert_eq(nt_ratelimit_size(rl), model_size(&m), "cfg %zu op %d", c, i);
        }
        nt_ratelimit_destroy(rl);
    }
}

Test(ratelimit, one_bucket_alone_gives_its_burst_then_refills_exactly)
{
    nt_bucket_rate r;
    cr_assert_eq(nt_bucket_rate_make(5, 3, &r), NT_OK);
    cr_assert_eq(r.interval_us, 200000);
    int64_t b = NT_BUCKET_FULL, retry = 0;
    for (int i = 0; i < 3; i++)
        cr_assert(nt_bucket_take(&r, &b, 1000, &retry), "token %d of the burst", i);
    int64_t before = b;
    cr_assert_not(nt_bucket_take(&r, &b, 1000, &retry));
    cr_assert_eq(b, before, "a refusal changes nothing");
    cr_assert_eq(retry, 200);
    cr_assert_not(nt_bucket_take(&r, &b, 1000 + retry - 1, NULL));
    cr_assert(nt_bucket_take(&r, &b, 1000 + retry, NULL), "a take at now + retry succeeds");
    /* A long pause refills to the burst, never beyond. */
    for (int i = 0; i < 3; i++)
        cr_assert(nt_bucket_take(&r, &b, 100000, NULL));
    cr_assert_not(nt_bucket_take(&r, &b, 100000, NULL));
    cr_assert_eq(nt_bucket_rate_make(0, 3, &r), NT_EINVAL);
    cr_assert_eq(nt_bucket_rate_make(5, 0.5, &r), NT_EINVAL);
}
