/* Key-value cache over NATS JetStream KV: one bucket per TTL class (server
 * 2.9 has bucket-wide TTLs only), logical keys mapped to bucket keys by a pure
 * function, and natsStatus converted to nt_status here and nowhere else. */
#include "nt_kv.h"

#include "nt_log.h"

#include <limits.h>
#include <stdbool.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_API_WAIT_MS  1000
#define KV_MOD          "kv"
#define KV_ID_MAX       200
#define KV_BUCKET_MAX   128
#define KV_CLAIM_PREFIX "claim."
/* The longest bucket key: a claim, "claim." and a 200-character id. */
#define KV_KEY_MAX      (KV_ID_MAX + sizeof(KV_CLAIM_PREFIX) - 1)
#define KV_KEYS_WAIT_MS 5000

struct nt_kv {
    jsCtx *js;
    kvStore *stores[NT_KV__COUNT];
};

static const struct {
    const char *suffix;
    long long ttl_s;
} kv_classes[NT_KV__COUNT] = {
    [NT_KV_SESSION] = {"sessions", 86400},
    [NT_KV_PRESENCE] = {"presence", 300},
    [NT_KV_ROOM_MEMBERS] = {"room_members", 3600},
};

const char *nt_kv_bucket_suffix(nt_kv_class cls)
{
    NT_ASSERT(cls >= 0 && cls < NT_KV__COUNT);
    return kv_classes[cls].suffix;
}

long long nt_kv_ttl_seconds(nt_kv_class cls)
{
    NT_ASSERT(cls >= 0 && cls < NT_KV__COUNT);
    return kv_classes[cls].ttl_s;
}

static int kv_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* True when s[0..n) is a valid id: 1-200 characters of [A-Za-z0-9_-]. */
static int kv_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > KV_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!kv_id_char(s[i]))
            return 0;
    }
    return 1;
}

nt_status nt_kv_map_key(const char *logical, nt_kv_class *cls, char *key, size_t keylen)
{
    static const char room_tail[] = ":members";
    static const char claim[] = "presence-claim:";
    if (logical == NULL || cls == NULL || key == NULL)
        return NT_EINVAL;
    nt_kv_class c;
    const char *id;
    const char *bucket_prefix = "";
    size_t n;
    size_t total = strlen(logical);
    if (strncmp(logical, claim, sizeof(claim) - 1) == 0) {
        c = NT_KV_PRESENCE;
        id = logical + sizeof(claim) - 1;
        n = total - (sizeof(claim) - 1);
        bucket_prefix = KV_CLAIM_PREFIX;
    } else if (strncmp(logical, "session:", 8) == 0) {
        c = NT_KV_SESSION;
        id = logical + 8;
        n = total - 8;
    } else if (strncmp(logical, "presence:", 9) == 0) {
        c = NT_KV_PRESENCE;
        id = logical + 9;
        n = total - 9;
    } else if (strncmp(logical, "room:", 5) == 0) {
        size_t tail = sizeof(room_tail) - 1;
        if (total < 5 + tail || strcmp(logical + total - tail, room_tail) != 0)
            return NT_EINVAL;
        c = NT_KV_ROOM_MEMBERS;
        id = logical + 5;
        n = total - 5 - tail;
    } else {
        return NT_EINVAL;
    }
    size_t np = strlen(bucket_prefix);
    if (!kv_id_valid(id, n) || np + n + 1 > keylen)
        return NT_EINVAL;
    memcpy(key, bucket_prefix, np);
    memcpy(key + np, id, n);
    key[np + n] = '\0';
    *cls = c;
    return NT_OK;
}

/* Converts a nats.c failure. Timeouts and missing responders mean that the
 * server (or JetStream, or the bucket's leader) is unavailable: NT_EUNAVAIL. */
/* As nt_nats_status, but a missing key is not found, and a cache call that
 * ran out of time is the same as an unreachable cache. */
static nt_status kv_status(natsStatus s)
{
    if (s == NATS_NOT_FOUND)
        return NT_ENOTFOUND;
    nt_status st = nt_nats_status(s);
    return st == NT_ETIMEOUT ? NT_EUNAVAIL : st;
}

/* Binds the bucket, creating it when missing. Another process may create it
 * between our look-up and our create; js_CreateKeyValue accepts an identical
 * existing bucket, and for any other failure we try to bind once more. */
static nt_status kv_bind(jsCtx *js, const char *bucket, long long ttl_s, int replicas,
                         kvStore **out)
{
    kvStore *kv = NULL;
    natsStatus s = js_KeyValue(&kv, js, bucket);
    if (s == NATS_NOT_FOUND) {
        kvConfig cfg;
        kvConfig_Init(&cfg);
        cfg.Bucket = bucket;
        cfg.TTL = (int64_t)ttl_s * 1000000000LL;
        cfg.History = 1;
        cfg.Replicas = replicas;
        s = js_CreateKeyValue(&kv, js, &cfg);
        if (s == NATS_OK) {
            nt_log_info(KV_MOD, "bucket created bucket=%s ttl_s=%lld replicas=%d", bucket, ttl_s,
                        replicas);
        } else {
            natsStatus first = s;
            kv = NULL;
            s = js_KeyValue(&kv, js, bucket);
            if (s != NATS_OK) {
                nt_log_error(KV_MOD, "bucket create failed bucket=%s err=%s", bucket,
                             natsStatus_GetText(first));
                s = first;
            }
        }
    }
    if (s != NATS_OK) {
        nt_log_error(KV_MOD, "bucket bind failed bucket=%s err=%s", bucket, natsStatus_GetText(s));
        nt_status st = kv_status(s);
        return st == NT_ENOTFOUND ? NT_EUNAVAIL : st;
    }
    /* An existing bucket keeps its own TTL; say so when it is not ours. */
    kvStatus *sts = NULL;
    if (kvStore_Status(&sts, kv) == NATS_OK) {
        int64_t have = kvStatus_TTL(sts);
        if (have != (int64_t)ttl_s * 1000000000LL)
            nt_log_warn(KV_MOD, "bucket ttl differs bucket=%s want_s=%lld have_s=%lld", bucket,
                        ttl_s, (long long)(have / 1000000000LL));
        kvStatus_Destroy(sts);
    }
    *out = kv;
    return NT_OK;
}

static int kv_prefix_valid(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!kv_id_char(p[i]))
            return 0;
    }
    return 1;
}

nt_status nt_kv_open(nt_nats *nc, const char *prefix, int replicas, nt_kv **out)
{
    NT_ASSERT(nc != NULL && out != NULL);
    if (prefix == NULL || !kv_prefix_valid(prefix) || replicas < 1 || replicas > 5)
        return NT_EINVAL;
    nt_status st = NT_OK;
    nt_kv *kv = calloc(1, sizeof(*kv));
    NT_ASSERT(kv != NULL);
    /* A cache must fail fast: 1 s for any JetStream API call, not the 5 s default. */
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = KV_API_WAIT_MS;
    natsStatus s = natsConnection_JetStream(&kv->js, nt_nats_raw(nc), &jo);
    if (s != NATS_OK) {
        st = kv_status(s) == NT_EINTERNAL ? NT_EINTERNAL : NT_EUNAVAIL;
        goto out;
    }
    for (int i = 0; i < NT_KV__COUNT; i++) {
        char bucket[KV_BUCKET_MAX];
        int w = snprintf(bucket, sizeof(bucket), "%s_%s", prefix, kv_classes[i].suffix);
        NT_ASSERT(w > 0 && (size_t)w < sizeof(bucket));
        st = kv_bind(kv->js, bucket, kv_classes[i].ttl_s, replicas, &kv->stores[i]);
        if (st != NT_OK)
            goto out;
    }
out:
    if (st != NT_OK) {
        nt_kv_close(kv);
        return st;
    }
    *out = kv;
    return NT_OK;
}

/* Maps key and checks len, the common start of every write. */
static nt_status kv_prepare(const char *key, size_t len, nt_kv_class *cls, char *k, size_t klen)
{
    nt_status st = nt_kv_map_key(key, cls, k, klen);
    if (st == NT_OK && len > INT_MAX)
        st = NT_ETOOBIG;
    return st;
}

static nt_status kv_write_failed(nt_kv_class cls, const char *what, natsStatus s)
{
    nt_status st = kv_status(s);
    nt_log_warn(KV_MOD, "%s failed class=%s err=%s", what, kv_classes[cls].suffix,
                natsStatus_GetText(s));
    return st == NT_ENOTFOUND ? NT_EUNAVAIL : st;
}

nt_status nt_kv_put(nt_kv *kv, const char *key, const void *data, size_t len)
{
    NT_ASSERT(kv != NULL);
    nt_kv_class cls;
    char k[KV_KEY_MAX + 1];
    nt_status st = kv_prepare(key, len, &cls, k, sizeof(k));
    if (st != NT_OK)
        return st;
    uint64_t rev = 0;
    natsStatus s = kvStore_Put(&rev, kv->stores[cls], k, data, (int)len);
    return s == NATS_OK ? NT_OK : kv_write_failed(cls, "put", s);
}

nt_status nt_kv_create(nt_kv *kv, const char *key, const void *data, size_t len)
{
    NT_ASSERT(kv != NULL);
    nt_kv_class cls;
    char k[KV_KEY_MAX + 1];
    nt_status st = kv_prepare(key, len, &cls, k, sizeof(k));
    if (st != NT_OK)
        return st;
    uint64_t rev = 0;
    natsStatus s = kvStore_Create(&rev, kv->stores[cls], k, data, (int)len);
    if (s == NATS_OK)
        return NT_OK;
    /* nats.c 3.4.1 reports "wrong last sequence" as a plain NATS_ERR: look. */
    kvEntry *e = NULL;
    if (kvStore_Get(&e, kv->stores[cls], k) == NATS_OK) {
        kvEntry_Destroy(e);
        return NT_ECONFLICT;
    }
    return kv_write_failed(cls, "create", s);
}

nt_status nt_kv_get_rev(nt_kv *kv, const char *key, char **data, size_t *len, uint64_t *rev)
{
    NT_ASSERT(kv != NULL && data != NULL && len != NULL && rev != NULL);
    nt_kv_class cls;
    char k[KV_KEY_MAX + 1];
    nt_status st = nt_kv_map_key(key, &cls, k, sizeof(k));
    if (st != NT_OK)
        return st;
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, kv->stores[cls], k);
    if (s != NATS_OK) {
        st = kv_status(s);
        if (st != NT_ENOTFOUND)
            nt_log_warn(KV_MOD, "get failed class=%s err=%s", kv_classes[cls].suffix,
                        natsStatus_GetText(s));
        goto out;
    }
    kvOperation op = kvEntry_Operation(e);
    if (op == kvOp_Delete || op == kvOp_Purge) {
        st = NT_ENOTFOUND;
        goto out;
    }
    int n = kvEntry_ValueLen(e);
    const void *v = kvEntry_Value(e);
    size_t vlen = n > 0 ? (size_t)n : 0;
    char *copy = malloc(vlen + 1);
    NT_ASSERT(copy != NULL);
    if (vlen > 0)
        memcpy(copy, v, vlen);
    copy[vlen] = '\0';
    *data = copy;
    *len = vlen;
    *rev = kvEntry_Revision(e);
out:
    kvEntry_Destroy(e);
    return st;
}

nt_status nt_kv_get(nt_kv *kv, const char *key, char **data, size_t *len)
{
    uint64_t rev = 0;
    return nt_kv_get_rev(kv, key, data, len, &rev);
}

nt_status nt_kv_update(nt_kv *kv, const char *key, const void *data, size_t len, uint64_t rev)
{
    NT_ASSERT(kv != NULL);
    nt_kv_class cls;
    char k[KV_KEY_MAX + 1];
    nt_status st = kv_prepare(key, len, &cls, k, sizeof(k));
    if (st != NT_OK)
        return st;
    uint64_t out_rev = 0;
    natsStatus s = rev == 0 ? kvStore_Create(&out_rev, kv->stores[cls], k, data, (int)len)
                            : kvStore_Update(&out_rev, kv->stores[cls], k, data, (int)len, rev);
    if (s == NATS_OK)
        return NT_OK;
    /* nats.c 3.4.1 reports "wrong last sequence" as a plain NATS_ERR: look at
     * what the key holds now. A value at another revision (or any value for a
     * create, or none for an update) is a conflict, unless the write timed
     * out and the key holds exactly what we wrote: the write was applied
     * and only its answer was lost, and reading our own write as a conflict
     * would make the caller believe another writer won. (After a definite
     * refusal equal bytes are another writer's: two instances may write
     * the same value in the same millisecond.) The revision we expected
     * still being there means the write failed for another reason. */
    char *cur = NULL;
    size_t cur_len = 0;
    uint64_t cur_rev = 0;
    nt_status gs = nt_kv_get_rev(kv, key, &cur, &cur_len, &cur_rev);
    bool ours = s == NATS_TIMEOUT && gs == NT_OK && cur_rev != rev && cur_len == len &&
                (len == 0 || memcmp(cur, data, len) == 0);
    free(cur);
    if (ours)
        return NT_OK;
    if ((gs == NT_OK && cur_rev != rev) || (gs == NT_ENOTFOUND && rev != 0))
        return NT_ECONFLICT;
    return kv_write_failed(cls, rev == 0 ? "create" : "update", s);
}

nt_status nt_kv_keys(nt_kv *kv, nt_kv_class cls, char ***keys, size_t *n)
{
    NT_ASSERT(kv != NULL && keys != NULL && n != NULL);
    if (cls < 0 || cls >= NT_KV__COUNT)
        return NT_EINVAL;
    kvKeysList list = {0};
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.Timeout = KV_KEYS_WAIT_MS;
    natsStatus s = kvStore_Keys(&list, kv->stores[cls], &wo);
    /* An empty bucket is NATS_NOT_FOUND in nats.c, not an empty list. */
    if (s == NATS_NOT_FOUND) {
        *keys = NULL;
        *n = 0;
        return NT_OK;
    }
    if (s != NATS_OK) {
        nt_log_warn(KV_MOD, "keys failed class=%s err=%s", kv_classes[cls].suffix,
                    natsStatus_GetText(s));
        nt_status st = kv_status(s);
        return st == NT_ENOTFOUND ? NT_EUNAVAIL : st;
    }
    char **out = NULL;
    size_t count = list.Count > 0 ? (size_t)list.Count : 0;
    if (count > 0) {
        out = calloc(count, sizeof(*out));
        NT_ASSERT(out != NULL);
        for (size_t i = 0; i < count; i++) {
            out[i] = strdup(list.Keys[i]);
            NT_ASSERT(out[i] != NULL);
        }
    }
    kvKeysList_Destroy(&list);
    *keys = out;
    *n = count;
    return NT_OK;
}

void nt_kv_keys_free(char **keys, size_t n)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

nt_status nt_kv_delete(nt_kv *kv, const char *key)
{
    NT_ASSERT(kv != NULL);
    nt_kv_class cls;
    char k[KV_KEY_MAX + 1];
    nt_status st = nt_kv_map_key(key, &cls, k, sizeof(k));
    if (st != NT_OK)
        return st;
    natsStatus s = kvStore_Delete(kv->stores[cls], k);
    if (s == NATS_OK || s == NATS_NOT_FOUND)
        return NT_OK;
    nt_log_warn(KV_MOD, "delete failed class=%s err=%s", kv_classes[cls].suffix,
                natsStatus_GetText(s));
    st = kv_status(s);
    return st == NT_ENOTFOUND ? NT_OK : st;
}

void nt_kv_close(nt_kv *kv)
{
    if (kv == NULL)
        return;
    for (int i = 0; i < NT_KV__COUNT; i++)
        kvStore_Destroy(kv->stores[i]);
    jsCtx_Destroy(kv->js);
    free(kv);
}
