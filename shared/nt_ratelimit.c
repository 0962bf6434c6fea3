/* nt_ratelimit: token buckets in a chained hash table, with an LRU list and a
 * min-heap on "time the bucket is full again", so that making room for a new
 * key is O(log n): drop buckets that have refilled (a full bucket is the same
 * as no bucket), else the least recently used.
 *
 * A bucket is kept as the time it was (or would have been) empty, in integer
 * microseconds (the GCRA form of a token bucket), so refills never accumulate
 * rounding error and a take at now + retry_after always succeeds. The time
 * per token is 1/rate rounded to the microsecond. nt_bucket_take is that step
 * alone; the table here and the edge's per-socket budgets both use it.
 *
 * Keys longer than NT_RATELIMIT_KEY_MAX bytes are not truncated blindly: such
 * a key is stored as its first NT_RATELIMIT_KEY_MAX - 16 bytes plus the 64-bit
 * FNV-1a hash of the whole key, marked as hashed so it never equals a short
 * key. Two long keys share a bucket only if they share that prefix and hash. */
#include "nt_ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define NT_RATELIMIT_KEY_MAX 256
#define LONG_PREFIX          (NT_RATELIMIT_KEY_MAX - 16)
/* Refill from empty to burst takes at most this (about 31 years). */
#define BURST_US_MAX 1e15
/* Times are clamped to this many ms either side of the epoch, so microseconds
 * plus a burst always fit in 64 bits. */
#define NOW_MS_MAX ((int64_t)2000000000000000)

typedef struct bucket {
    struct bucket *chain;               /* next in the hash chain */
    struct bucket *lru_prev, *lru_next; /* lru_prev is more recent */
    size_t heap_i;                      /* index in rl->heap */
    uint64_t hash;
    /* The microsecond at which the bucket held zero tokens; tokens at t are
     * min(burst, (t - empty_us) / interval). full_at_us = empty_us + burst_us
     * is the heap key. */
    int64_t empty_us;
    int64_t full_at_us;
    bool hashed; /* key is prefix + hash of a longer key */
    size_t klen;
    char key[];
} bucket;

struct nt_ratelimit {
    pthread_mutex_t mu;
    nt_bucket_rate rate;
    size_t max_keys;
    uint64_t seed;

    bucket **table;
    size_t nslots; /* power of two */
    size_t count;

    bucket *lru_head, *lru_tail; /* head is the most recent */
    bucket **heap;               /* min-heap on full_at_us, count entries */
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- heap ---- */

static void heap_set(nt_ratelimit *rl, size_t i, bucket *b)
{
    rl->heap[i] = b;
    b->heap_i = i;
}

static void heap_up(nt_ratelimit *rl, size_t i)
{
    bucket *b = rl->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (rl->heap[parent]->full_at_us <= b->full_at_us)
            break;
        heap_set(rl, i, rl->heap[parent]);
        i = parent;
    }
    heap_set(rl, i, b);
}

static void heap_down(nt_ratelimit *rl, size_t i)
{
    bucket *b = rl->heap[i];
    size_t n = rl->count;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && rl->heap[c + 1]->full_at_us < rl->heap[c]->full_at_us)
            c++;
        if (b->full_at_us <= rl->heap[c]->full_at_us)
            break;
        heap_set(rl, i, rl->heap[c]);
        i = c;
    }
    heap_set(rl, i, b);
}

/* ---- LRU list ---- */

static void lru_unlink(nt_ratelimit *rl, bucket *b)
{
    if (b->lru_prev != NULL)
        b->lru_prev->lru_next = b->lru_next;
    else
        rl->lru_head = b->lru_next;
    if (b->lru_next != NULL)
        b->lru_next->lru_prev = b->lru_prev;
    else
        rl->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = NULL;
}

static void lru_push_front(nt_ratelimit *rl, bucket *b)
{
    b->lru_prev = NULL;
    b->lru_next = rl->lru_head;
    if (rl->lru_head != NULL)
        rl->lru_head->lru_prev = b;
    rl->lru_head = b;
    if (rl->lru_tail == NULL)
        rl->lru_tail = b;
}

/* ---- buckets ---- */

static bool is_full(const bucket *b, int64_t now_us)
{
    return now_us >= b->full_at_us;
}

static void set_empty(nt_ratelimit *rl, bucket *b, int64_t empty_us)
{
    b->empty_us = empty_us;
    b->full_at_us = empty_us + rl->rate.burst_us;
}

static void remove_bucket(nt_ratelimit *rl, bucket *b)
{
    bucket **pp = &rl->table[b->hash & (rl->nslots - 1)];
    while (*pp != b)
        pp = &(*pp)->chain;
    *pp = b->chain;

    lru_unlink(rl, b);

    size_t i = b->heap_i;
    rl->count--;
    if (i != rl->count) {
        bucket *moved = rl->heap[rl->count];
        heap_set(rl, i, moved);
        heap_up(rl, i);
        heap_down(rl, moved->heap_i);
    }
    rl->heap[rl->count] = NULL;
    free(b);
}

static void grow_table(nt_ratelimit *rl)
{
    size_t n = rl->nslots * 2;
    bucket **t = calloc(n, sizeof *t);
    NT_ASSERT(t != NULL);
    for (size_t i = 0; i < rl->nslots; i++) {
        bucket *b = rl->table[i];
        while (b != NULL) {
            bucket *next = b->chain;
            size_t slot = b->hash & (n - 1);
            b->chain = t[slot];
            t[slot] = b;
            b = next;
        }
    }
    free(rl->table);
    rl->table = t;
    rl->nslots = n;
}

/* Makes room for one more bucket: first every bucket that is full at now (the
 * same as no bucket), then, if none was, the least recently used. */
static void evict(nt_ratelimit *rl, int64_t now_us)
{
    while (rl->count > 0 && is_full(rl->heap[0], now_us))
        remove_bucket(rl, rl->heap[0]);
    if (rl->count >= rl->max_keys)
        remove_bucket(rl, rl->lru_tail);
}

/* Saturates so that microseconds cannot overflow (±73,000 years). */
static int64_t clamp_ms(int64_t now_ms)
{
    if (now_ms > NOW_MS_MAX)
        return NOW_MS_MAX;
    if (now_ms < -NOW_MS_MAX)
        return -NOW_MS_MAX;
    return now_ms;
}

nt_status nt_bucket_rate_make(double rate, double burst, nt_bucket_rate *out)
{
    /* Below one token in about eleven days a limit is a ban, and above a
     * million a second the microsecond clock cannot tell tokens apart. */
    if (!isfinite(rate) || rate < 1e-6 || rate > 1e6 || !isfinite(burst) || burst < 1)
        return NT_EINVAL;
    double burst_us = burst * 1e6 / rate;
    if (burst_us > BURST_US_MAX)
        return NT_EINVAL;
    out->interval_us = llround(1e6 / rate);
    out->burst_us = llround(burst_us);
    NT_ASSERT(out->interval_us >= 1 && out->burst_us >= out->interval_us);
    return NT_OK;
}

bool nt_bucket_take(const nt_bucket_rate *r, int64_t *empty_us, int64_t now_ms,
                    int64_t *retry_after_ms)
{
    int64_t now_us = clamp_ms(now_ms) * 1000;
    /* Tokens beyond burst are not kept: a full bucket empties from now. */
    int64_t base = *empty_us > now_us - r->burst_us ? *empty_us : now_us - r->burst_us;
    if (now_us - base >= r->interval_us) {
        *empty_us = base + r->interval_us;
        return true;
    }
    if (retry_after_ms != NULL) {
        /* Exact in integers: a take at now + retry finds its token. A
         * refusal changes nothing, and a clock that ran backwards finds
         * fewer tokens, never more. */
        int64_t wait_us = base + r->interval_us - now_us;
        int64_t ms = (wait_us + 999) / 1000;
        *retry_after_ms = ms < 1 ? 1 : ms;
    }
    return false;
}

nt_status nt_ratelimit_create(double rate, double burst, size_t max_keys, nt_ratelimit **out)
{
    NT_ASSERT(out != NULL);
    nt_bucket_rate r;
    if (max_keys == 0 || max_keys > SIZE_MAX / 4 / sizeof(bucket *) ||
        nt_bucket_rate_make(rate, burst, &r) != NT_OK)
        return NT_EINVAL;

    nt_ratelimit *rl = calloc(1, sizeof *rl);
    NT_ASSERT(rl != NULL);
    NT_ASSERT(pthread_mutex_init(&rl->mu, NULL) == 0);
    rl->rate = r;
    rl->max_keys = max_keys;
    /* A per-table seed makes chains harder to predict for whoever picks keys. */
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)(uintptr_t)rl;
    rl->seed = 0xcbf29ce484222325ULL ^ seed;
    rl->nslots = 64;
    rl->table = calloc(rl->nslots, sizeof *rl->table);
    NT_ASSERT(rl->table != NULL);
    /* One pointer per key, allocated once: the bound is the point. */
    rl->heap = calloc(max_keys, sizeof *rl->heap);
    NT_ASSERT(rl->heap != NULL);
    *out = rl;
    return NT_OK;
}

bool nt_ratelimit_take(nt_ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_after_ms)
{
    NT_ASSERT(rl != NULL && key != NULL);

    /* The stored form of the key: itself, or a prefix plus a hash of the whole. */
    unsigned char kbuf[NT_RATELIMIT_KEY_MAX];
    size_t klen = strlen(key);
    bool hashed = klen > NT_RATELIMIT_KEY_MAX;
    if (hashed) {
        uint64_t full = fnv1a(0xcbf29ce484222325ULL, key, klen);
        memcpy(kbuf, key, LONG_PREFIX);
        for (int i = 0; i < 8; i++)
            kbuf[LONG_PREFIX + i] = (unsigned char)(full >> (8 * i));
        klen = LONG_PREFIX + 8;
    } else {
        memcpy(kbuf, key, klen);
    }
    uint64_t h = fnv1a(rl->seed, kbuf, klen) ^ (uint64_t)hashed;

    int64_t now_us = clamp_ms(now_ms) * 1000;

    NT_ASSERT(pthread_mutex_lock(&rl->mu) == 0);
    bucket *b = rl->table[h & (rl->nslots - 1)];
    while (b != NULL && !(b->hash == h && b->hashed == hashed && b->klen == klen &&
                          memcmp(b->key, kbuf, klen) == 0))
        b = b->chain;

    bool ok;
    if (b == NULL) {
        if (rl->count >= rl->max_keys)
            evict(rl, now_us);
        if (rl->count + 1 > rl->nslots - rl->nslots / 4)
            grow_table(rl);
        b = calloc(1, sizeof *b + klen);
        NT_ASSERT(b != NULL);
        b->hash = h;
        b->hashed = hashed;
        b->klen = klen;
        memcpy(b->key, kbuf, klen);
        size_t slot = h & (rl->nslots - 1);
        b->chain = rl->table[slot];
        rl->table[slot] = b;
        /* A new key starts full and takes one token. */
        int64_t empty = NT_BUCKET_FULL;
        ok = nt_bucket_take(&rl->rate, &empty, now_ms, retry_after_ms);
        NT_ASSERT(ok);
        set_empty(rl, b, empty);
        heap_set(rl, rl->count, b);
        rl->count++;
        heap_up(rl, b->heap_i);
        lru_push_front(rl, b);
    } else {
        int64_t empty = b->empty_us;
        ok = nt_bucket_take(&rl->rate, &empty, now_ms, retry_after_ms);
        if (ok) {
            set_empty(rl, b, empty);
            heap_down(rl, b->heap_i); /* full_at only moves later */
        }
        lru_unlink(rl, b);
        lru_push_front(rl, b);
    }
    NT_ASSERT(pthread_mutex_unlock(&rl->mu) == 0);
    return ok;
}

size_t nt_ratelimit_size(nt_ratelimit *rl)
{
    NT_ASSERT(rl != NULL);
    NT_ASSERT(pthread_mutex_lock(&rl->mu) == 0);
    size_t n = rl->count;
    NT_ASSERT(pthread_mutex_unlock(&rl->mu) == 0);
    return n;
}

void nt_ratelimit_destroy(nt_ratelimit *rl)
{
    if (rl == NULL)
        return;
    bucket *b = rl->lru_head;
    while (b != NULL) {
        bucket *next = b->lru_next;
        free(b);
        b = next;
    }
    free(rl->table);
    free(rl->heap);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}
