/* Key-value cache over NATS JetStream KV with the specification's logical
 * keys and TTLs: session:{user} (24 h), presence:{user} (5 min),
 * room:{room}:members (1 h), plus presence-claim:{id} (5 min, the presence
 * service's publish-once claims). nats-server 2.9 has bucket-wide TTLs only,
 * so each TTL class is its own bucket, created when absent. */
#ifndef NT_KV_H
#define NT_KV_H

#include "nt_nats.h"
#include "nt_status.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { NT_KV_SESSION, NT_KV_PRESENCE, NT_KV_ROOM_MEMBERS, NT_KV__COUNT } nt_kv_class;

/* The bucket suffix and TTL of each class: "sessions" 86400 s, "presence"
 * 300 s, "room_members" 3600 s. */
const char *nt_kv_bucket_suffix(nt_kv_class cls);
long long nt_kv_ttl_seconds(nt_kv_class cls);

/* Maps a logical key to its class and the key inside the bucket:
 * "session:user_1" → (NT_KV_SESSION, "user_1"); "presence:u" → (NT_KV_PRESENCE, "u");
 * "room:R:members" → (NT_KV_ROOM_MEMBERS, "R"); "presence-claim:E-7" →
 * (NT_KV_PRESENCE, "claim.E-7"). The id part must be 1–200 characters of
 * [A-Za-z0-9_-] (what NATS KV keys allow, without dots), so a claim's bucket
 * key, the only one with a dot, never collides with a user's. NT_EINVAL for
 * anything else. Pure. */
nt_status nt_kv_map_key(const char *logical, nt_kv_class *cls, char *key, size_t keylen);

typedef struct nt_kv nt_kv;

/* Binds the three buckets <prefix>_<suffix> (e.g. "natter_sessions"), creating
 * any that is missing with its TTL, history 1 and the given replicas.
 * NT_EUNAVAIL when JetStream is not reachable. */
nt_status nt_kv_open(nt_nats *nc, const char *prefix, int replicas, nt_kv **out);

/* Puts value under a logical key (its TTL restarts). Thread-safe. */
nt_status nt_kv_put(nt_kv *kv, const char *key, const void *data, size_t len);

/* Puts value only when the key has no value now (never written, deleted or
 * expired): NT_ECONFLICT when it has one. For filling a cache on a read, so a
 * slow reader never overwrites what a writer put meanwhile. Thread-safe. */
nt_status nt_kv_create(nt_kv *kv, const char *key, const void *data, size_t len);

/* Gets the value: *data is malloc'd, NUL-terminated, the caller's. NT_ENOTFOUND
 * for missing, deleted or expired keys. Thread-safe. */
nt_status nt_kv_get(nt_kv *kv, const char *key, char **data, size_t *len);

/* As nt_kv_get, and *rev is the value's revision (> 0), for nt_kv_update.
 * NT_ENOTFOUND for missing, deleted or expired keys. Thread-safe. */
nt_status nt_kv_get_rev(nt_kv *kv, const char *key, char **data, size_t *len, uint64_t *rev);

/* Compare-and-set: puts value only when the key's current revision is rev,
 * or, with rev 0, only when the key has no value now (never written, deleted
 * or expired). NT_ECONFLICT when the key has moved on (another revision, or
 * it exists for rev 0, or it is gone for rev > 0): read it again and retry.
 * A write that timed out whose key moved on to exactly the bytes written
 * counts as written (NT_OK): it was applied and only its answer was lost.
 * So writers that must tell their write from another's (claims) write
 * values unique to themselves.
 * NT_EUNAVAIL when the bucket cannot be reached. Thread-safe. */
nt_status nt_kv_update(nt_kv *kv, const char *key, const void *data, size_t len, uint64_t rev);

/* Lists the keys of the bucket of cls as they are in the bucket (not logical
 * keys: "u1", "claim.E-7"), skipping deleted ones. *keys is a malloc'd array
 * of *n malloc'd strings (NULL and 0 for an empty bucket), the caller's: free
 * with nt_kv_keys_free. NT_EUNAVAIL when the bucket cannot be reached.
 * Thread-safe. */
nt_status nt_kv_keys(nt_kv *kv, nt_kv_class cls, char ***keys, size_t *n);

/* Frees what nt_kv_keys returned. NULL is harmless. */
void nt_kv_keys_free(char **keys, size_t n);

/* Deletes a key; deleting a missing key is NT_OK. Thread-safe. */
nt_status nt_kv_delete(nt_kv *kv, const char *key);

/* NULL is harmless. */
void nt_kv_close(nt_kv *kv);

#endif
