/* Key-value cache over NATS JetStream KV with the specification's logical
 * keys and TTLs: session:{user} (24 h), presence:{user} (5 min),
 * room:{room}:members (1 h). nats-server 2.9 has bucket-wide TTLs only, so
 * each TTL class is its own bucket, created when absent. */
#ifndef NT_KV_H
#define NT_KV_H

#include "nt_nats.h"
#include "nt_status.h"

#include <stddef.h>

typedef enum { NT_KV_SESSION, NT_KV_PRESENCE, NT_KV_ROOM_MEMBERS, NT_KV__COUNT } nt_kv_class;

/* The bucket suffix and TTL of each class: "sessions" 86400 s, "presence"
 * 300 s, "room_members" 3600 s. */
const char *nt_kv_bucket_suffix(nt_kv_class cls);
long long nt_kv_ttl_seconds(nt_kv_class cls);

/* Maps a logical key to its class and the key inside the bucket:
 * "session:user_1" → (NT_KV_SESSION, "user_1"); "presence:u" → (NT_KV_PRESENCE, "u");
 * "room:R:members" → (NT_KV_ROOM_MEMBERS, "R"). The id part must be 1–200
 * characters of [A-Za-z0-9_-] (what NATS KV keys allow, without dots). NT_EINVAL
 * for anything else. Pure. */
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

/* Deletes a key; deleting a missing key is NT_OK. Thread-safe. */
nt_status nt_kv_delete(nt_kv *kv, const char *key);

/* NULL is harmless. */
void nt_kv_close(nt_kv *kv);

#endif
