/* Integration tests of the KV additions the presence service uses (revision
 * reads, compare-and-set, key listing, presence-claim keys) against a real
 * nats-server with JetStream. Each test starts its own server. */
#include "harness.h"
#include "nt_kv.h"
#include "nt_nats.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *url;

static void setup(void)
{
    url = h_nats_start();
}

static void teardown(void)
{
    h_stop_all();
}

TestSuite(nt_kv, .init = setup, .fini = teardown, .timeout = 30);

static nt_nats *connect_ok(const char *name)
{
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(url, name, 5000, &nc), NT_OK);
    return nc;
}

static nt_kv *open_ok(nt_nats *nc)
{
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    return kv;
}

Test(nt_kv, get_rev_returns_the_revision_that_update_expects)
{
    nt_nats *nc = connect_ok("kv1");
    nt_kv *kv = open_ok(nc);
    char *val = NULL;
    size_t len = 0;
    uint64_t rev = 99;
    cr_assert_eq(nt_kv_get_rev(kv, "presence:u1", &val, &len, &rev), NT_ENOTFOUND);
    cr_assert_eq(rev, 99, "rev written on failure");

    cr_assert_eq(nt_kv_update(kv, "presence:u1", "{\"online\":true}", 15, 0), NT_OK, "create");
    cr_assert_eq(nt_kv_get_rev(kv, "presence:u1", &val, &len, &rev), NT_OK);
    cr_assert_str_eq(val, "{\"online\":true}");
    cr_assert_eq(len, 15);
    cr_assert_gt(rev, 0);
    free(val);
    uint64_t first = rev;

    cr_assert_eq(nt_kv_update(kv, "presence:u1", "off", 3, first), NT_OK);
    cr_assert_eq(nt_kv_get_rev(kv, "presence:u1", &val, &len, &rev), NT_OK);
    cr_assert_str_eq(val, "off");
    cr_assert_gt(rev, first, "the revision moves on");
    free(val);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}

Test(nt_kv, update_at_a_stale_revision_is_a_conflict_and_writes_nothing)
{
    nt_nats *nc = connect_ok("kv2");
    nt_kv *kv = open_ok(nc);
    char *val = NULL;
    size_t len = 0;
    uint64_t rev = 0, rev2 = 0;
    cr_assert_eq(nt_kv_put(kv, "presence:u2", "a", 1), NT_OK);
    cr_assert_eq(nt_kv_get_rev(kv, "presence:u2", &val, &len, &rev), NT_OK);
    free(val);
    /* Two writers read the same revision: the first wins, the second conflicts. */
    cr_assert_eq(nt_kv_update(kv, "presence:u2", "b", 1, rev), NT_OK);
    cr_assert_eq(nt_kv_update(kv, "presence:u2", "c", 1, rev), NT_ECONFLICT);
    cr_assert_eq(nt_kv_get_rev(kv, "presence:u2", &val, &len, &rev2), NT_OK);
    cr_assert_str_eq(val, "b");
    free(val);
    /* rev 0 means "must not exist". */
    cr_assert_eq(nt_kv_update(kv, "presence:u2", "d", 1, 0), NT_ECONFLICT);
    /* An update of a key that is gone conflicts too: the caller re-reads and creates. */
    cr_assert_eq(nt_kv_delete(kv, "presence:u2"), NT_OK);
    cr_assert_eq(nt_kv_update(kv, "presence:u2", "e", 1, rev2), NT_ECONFLICT);
    cr_assert_eq(nt_kv_update(kv, "presence:u2", "f", 1, 0), NT_OK, "create after a delete");
    cr_assert_eq(nt_kv_get_rev(kv, "presence:u2", &val, &len, &rev), NT_OK);
    cr_assert_str_eq(val, "f");
    free(val);
    cr_assert_eq(nt_kv_update(kv, "presence:a.b", "x", 1, 0), NT_EINVAL);
    cr_assert_eq(nt_kv_get_rev(kv, "bad", &val, &len, &rev), NT_EINVAL);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}

Test(nt_kv, a_claim_is_won_once)
{
    nt_nats *nc = connect_ok("kv3");
    nt_kv *kv = open_ok(nc);
    nt_nats *nc2 = connect_ok("kv3b");
    nt_kv *kv2 = open_ok(nc2);
    cr_assert_eq(nt_kv_update(kv, "presence-claim:EdgeEdgeEdgeEdgeEdge12-7", "1", 1, 0), NT_OK);
    /* Each instance writes its own value: an identical one would read as its own write. */
    cr_assert_eq(nt_kv_update(kv2, "presence-claim:EdgeEdgeEdgeEdgeEdge12-7", "2", 1, 0),
                 NT_ECONFLICT, "a second instance loses the claim");
    cr_assert_eq(nt_kv_update(kv2, "presence-claim:EdgeEdgeEdgeEdgeEdge12-8", "1", 1, 0), NT_OK,
                 "another round is another claim");
    /* The claim does not touch the user key of the same text. */
    char *val = NULL;
    size_t len = 0;
    cr_assert_eq(nt_kv_get(kv, "presence:EdgeEdgeEdgeEdgeEdge12-7", &val, &len), NT_ENOTFOUND);
    nt_kv_close(kv2);
    nt_nats_destroy(nc2);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}

Test(nt_kv, a_refused_update_is_a_conflict_even_when_the_key_holds_the_same_bytes)
{
    /* Two instances writing the same value in the same millisecond: only one
     * wrote it. (A timed-out write that was applied counts as written; that
     * path needs a lost reply and is not reproduced here.) */
    nt_nats *nc = connect_ok("kv5");
    nt_kv *kv = open_ok(nc);
    const char *v = "{\"online\":true,\"last_seen\":\"2026-01-01T00:00:00.000Z\"}";
    cr_assert_eq(nt_kv_update(kv, "presence:kv_same", v, strlen(v), 0), NT_OK);
    cr_assert_eq(nt_kv_update(kv, "presence:kv_same", v, strlen(v), 0), NT_ECONFLICT);
    char *cur = NULL;
    size_t len = 0;
    uint64_t rev = 0;
    cr_assert_eq(nt_kv_get_rev(kv, "presence:kv_same", &cur, &len, &rev), NT_OK);
    free(cur);
    cr_assert_eq(nt_kv_update(kv, "presence:kv_same", v, strlen(v), rev), NT_OK);
    cr_assert_eq(nt_kv_update(kv, "presence:kv_same", v, strlen(v), rev), NT_ECONFLICT);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}

static int has_key(char **keys, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], k) == 0)
            return 1;
    }
    return 0;
}

Test(nt_kv, keys_lists_the_bucket_keys_of_one_class)
{
    nt_nats *nc = connect_ok("kv4");
    nt_kv *kv = open_ok(nc);
    char **keys = (char **)1;
    size_t n = 7;
    cr_assert_eq(nt_kv_keys(kv, NT_KV_PRESENCE, &keys, &n), NT_OK, "an empty bucket");
    cr_assert_null(keys);
    cr_assert_eq(n, 0);

    cr_assert_eq(nt_kv_put(kv, "presence:ua", "1", 1), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "presence:ub", "1", 1), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "presence:uc", "1", 1), NT_OK);
    cr_assert_eq(nt_kv_update(kv, "presence-claim:E-gone", "1", 1, 0), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "session:ua", "1", 1), NT_OK);
    cr_assert_eq(nt_kv_delete(kv, "presence:uc"), NT_OK);

    cr_assert_eq(nt_kv_keys(kv, NT_KV_PRESENCE, &keys, &n), NT_OK);
    cr_assert_eq(n, 3, "ua, ub and the claim; not the deleted uc");
    cr_assert(has_key(keys, n, "ua"));
    cr_assert(has_key(keys, n, "ub"));
    cr_assert(has_key(keys, n, "claim.E-gone"));
    cr_assert(!has_key(keys, n, "uc"));
    nt_kv_keys_free(keys, n);

    cr_assert_eq(nt_kv_keys(kv, NT_KV_SESSION, &keys, &n), NT_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(keys[0], "ua");
    nt_kv_keys_free(keys, n);
    nt_kv_keys_free(NULL, 0);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}
