/* Token-bucket rate limits keyed by a string (a user id, an IP address).
 * Memory is bounded: at most max_keys buckets; buckets that have refilled are
 * forgotten first, since a full bucket is the same as no bucket. */
#ifndef NT_RATELIMIT_H
#define NT_RATELIMIT_H

#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
