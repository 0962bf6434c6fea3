/* Unit tests of the KV logical-key mapping (pure: no broker). */
#include "nt_kv.h"

#include <criterion/criterion.h>
#include <string.h>

static void expect_key(const char *logical, nt_kv_class want_cls, const char *want_key)
{
    nt_kv_class cls = NT_KV__COUNT;
    char key[256];
    cr_assert_eq(nt_kv_map_key(logical, &cls, key, sizeof(key)), NT_OK, "%s", logical);
    cr_assert_eq(cls, want_cls, "%s", logical);
    cr_assert_str_eq(key, want_key, "%s", logical);
}

static void expect_bad(const char *logical)
{
    nt_kv_class cls = NT_KV__COUNT;
    char key[256] = "untouched";
    const char *shown = logical != NULL ? logical : "(null)";
    cr_assert_eq(nt_kv_map_key(logical, &cls, key, sizeof(key)), NT_EINVAL, "'%s'", shown);
    cr_assert_eq(cls, NT_KV__COUNT, "class written on failure for '%s'", shown);
    cr_assert_str_eq(key, "untouched", "key written on failure for '%s'", shown);
}

Test(nt_kv_keys, maps_the_three_logical_forms)
{
    expect_key("session:user_1", NT_KV_SESSION, "user_1");
    expect_key("presence:u", NT_KV_PRESENCE, "u");
    expect_key("room:R:members", NT_KV_ROOM_MEMBERS, "R");
    expect_key("room:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b:members", NT_KV_ROOM_MEMBERS,
               "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    expect_key("session:user_2abcXYZ-_", NT_KV_SESSION, "user_2abcXYZ-_");
}

Test(nt_kv_keys, accepts_ids_of_exactly_200_characters)
{
    char logical[300], id[201];
    memset(id, 'a', 200);
    id[200] = '\0';
    snprintf(logical, sizeof(logical), "session:%s", id);
    expect_key(logical, NT_KV_SESSION, id);
    snprintf(logical, sizeof(logical), "room:%s:members", id);
    expect_key(logical, NT_KV_ROOM_MEMBERS, id);
}

Test(nt_kv_keys, refuses_ids_over_200_characters)
{
    char logical[300], id[202];
    memset(id, 'a', 201);
    id[201] = '\0';
    snprintf(logical, sizeof(logical), "presence:%s", id);
    expect_bad(logical);
    snprintf(logical, sizeof(logical), "room:%s:members", id);
    expect_bad(logical);
}

Test(nt_kv_keys, refuses_empty_ids)
{
    expect_bad("session:");
    expect_bad("presence:");
    expect_bad("room::members");
}

Test(nt_kv_keys, refuses_characters_nats_keys_or_subjects_would_misread)
{
    expect_bad("session:a.b");
    expect_bad("session:.a");
    expect_bad("session:a b");
    expect_bad("session: a");
    expect_bad("presence:a>");
    expect_bad("presence:*");
    expect_bad("presence:a/b");
    expect_bad("presence:a=b");
    expect_bad("session:caf\xc3\xa9");
    expect_bad("session:a\tb");
    expect_bad("room:a.b:members");
    expect_bad("room:a:b:members");
}

Test(nt_kv_keys, refuses_unknown_prefixes_and_malformed_room_keys)
{
    expect_bad("");
    expect_bad("user:1");
    expect_bad("Session:1");
    expect_bad("session");
    expect_bad("sessions:1");
    expect_bad("room:x");
    expect_bad("room:x:member");
    expect_bad("room:x:members:");
    expect_bad("room:members");
    expect_bad("room::members:");
    expect_bad("room:");
    expect_bad(":members");
    expect_bad(NULL);
}

Test(nt_kv_keys, refuses_when_the_key_buffer_is_too_small)
{
    nt_kv_class cls = NT_KV__COUNT;
    char key[4];
    cr_assert_eq(nt_kv_map_key("session:abcd", &cls, key, sizeof(key)), NT_EINVAL);
    cr_assert_eq(nt_kv_map_key("session:abc", &cls, key, sizeof(key)), NT_OK);
    cr_assert_str_eq(key, "abc");
}

Test(nt_kv_keys, classes_have_their_bucket_suffix_and_ttl)
{
    cr_assert_str_eq(nt_kv_bucket_suffix(NT_KV_SESSION), "sessions");
    cr_assert_str_eq(nt_kv_bucket_suffix(NT_KV_PRESENCE), "presence");
    cr_assert_str_eq(nt_kv_bucket_suffix(NT_KV_ROOM_MEMBERS), "room_members");
    cr_assert_eq(nt_kv_ttl_seconds(NT_KV_SESSION), 86400);
    cr_assert_eq(nt_kv_ttl_seconds(NT_KV_PRESENCE), 300);
    cr_assert_eq(nt_kv_ttl_seconds(NT_KV_ROOM_MEMBERS), 3600);
}

Test(nt_kv_keys, maps_presence_claims_into_the_presence_bucket_with_a_dot)
{
    expect_key("presence-claim:AbCdEfGhIjKlMnOpQrStUv-12", NT_KV_PRESENCE,
               "claim.AbCdEfGhIjKlMnOpQrStUv-12");
    expect_key("presence-claim:E-gone", NT_KV_PRESENCE, "claim.E-gone");
    expect_key("presence-claim:x", NT_KV_PRESENCE, "claim.x");
    /* A user's key never has a dot, so it cannot be taken for a claim. */
    expect_bad("presence:claim.x");
}

Test(nt_kv_keys, refuses_malformed_presence_claims)
{
    expect_bad("presence-claim:");
    expect_bad("presence-claim:a.b");
    expect_bad("presence-claim:a b");
    expect_bad("presence-claim:a>");
    expect_bad("presence-claim");
    expect_bad("presence-claims:x");
    expect_bad("Presence-claim:x");
    char logical[300], id[202];
    memset(id, 'c', 201);
    id[201] = '\0';
    snprintf(logical, sizeof(logical), "presence-claim:%s", id);
    expect_bad(logical);
}

Test(nt_kv_keys, claims_of_200_characters_fit_with_their_prefix)
{
    char logical[300], id[201], want[220];
    memset(id, 'c', 200);
    id[200] = '\0';
    snprintf(logical, sizeof(logical), "presence-claim:%s", id);
    snprintf(want, sizeof(want), "claim.%s", id);
    expect_key(logical, NT_KV_PRESENCE, want);
    /* The buffer must hold the prefix too. */
    nt_kv_class cls = NT_KV__COUNT;
    char key[8];
    cr_assert_eq(nt_kv_map_key("presence-claim:abc", &cls, key, sizeof(key)), NT_EINVAL);
    cr_assert_eq(nt_kv_map_key("presence-claim:a", &cls, key, sizeof(key)), NT_OK);
    cr_assert_str_eq(key, "claim.a");
}
