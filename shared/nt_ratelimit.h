/* Token-bucket rate limits keyed by a string (a user id, an IP address).
 * Memory is bounded: at most max_keys buckets; buckets that have refilled are
 * forgotten first, since a full bucket is the same as no bucket. */
#ifndef NT_RATELIMIT_H
#define NT_RATELIMIT_H

#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- One bucket ----------------------------------------------------------
 * The token-bucket step on its own, for a caller that keeps one bucket per
 * object it owns (the edge: a budget per socket), with no table or lock. A
 * bucket is an int64_t: the microsecond at which it was (or would have been)
 * empty (GCRA form), so refills never accumulate rounding error and a take at
 * now + retry_after always succeeds. NT_BUCKET_FULL is a bucket that is full
 * at any time. */

#define NT_BUCKET_FULL INT64_MIN

/* A rate: rate tokens per second, burst at most. */
typedef struct {
    int64_t interval_us; /* time for one token */
    int64_t burst_us;    /* time to refill from empty to burst */
} nt_bucket_rate;

/* NT_EINVAL unless 1e-6 <= rate <= 1e6, burst >= 1 and burst/rate <= 1e9 s. */
nt_status nt_bucket_rate_make(double rate, double burst, nt_bucket_rate *out);

/* Takes one token from the bucket *empty_us at time now_ms: true when there
 * was one (and *empty_us moves on); when refused, *empty_us is unchanged and
 * *retry_after_ms (may be NULL) is how long until a token is there (>= 1). A
 * clock that ran backwards finds fewer tokens, never more. Not thread-safe:
 * the caller owns the bucket. */
bool nt_bucket_take(const nt_bucket_rate *r, int64_t *empty_us, int64_t now_ms,
                    int64_t *retry_after_ms);

/* ---- Keyed buckets ------------------------------------------------------- */

typedef struct nt_ratelimit nt_ratelimit;

/* rate tokens per second, burst tokens at most. NT_EINVAL unless
 * 1e-6 <= rate <= 1e6, burst >= 1, max_keys >= 1 and burst/rate <= 1e9 s.
 * Keys over 256 bytes are stored as a 240-byte prefix plus a 64-bit hash of
 * the whole key. */
nt_status nt_ratelimit_create(double rate, double burst, size_t max_keys, nt_ratelimit **out);

/* Takes one token for key at time now_ms. True when allowed; when refused,
 * *retry_after_ms (may be NULL) is how long until a token is there (>= 1).
 * When the table is full of buckets that are not full, the least recently
 * used is dropped. Thread-safe. */
bool nt_ratelimit_take(nt_ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_after_ms);

/* The number of keys tracked now (for tests and metrics). */
size_t nt_ratelimit_size(nt_ratelimit *rl);

void nt_ratelimit_destroy(nt_ratelimit *rl);

#endif
