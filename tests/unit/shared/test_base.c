/* Unit tests of the small shared modules: status table, buffers, clock, ids. */
#include "nt_buf.h"
#include "nt_clock.h"
#include "nt_id.h"
#include "nt_status.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

Test(nt_status, maps_every_status_to_code_and_http)
{
    cr_assert_str_eq(nt_status_code(NT_ENOTFOUND), "not_found");
    cr_assert_eq(nt_status_http(NT_ENOTFOUND), 404);
    cr_assert_eq(nt_status_http(NT_EINVAL), 400);
    cr_assert_eq(nt_status_http(NT_EUNAUTH), 401);
    cr_assert_eq(nt_status_http(NT_EFORBIDDEN), 403);
    cr_assert_eq(nt_status_http(NT_EMETHOD), 405);
    cr_assert_eq(nt_status_http(NT_ECONFLICT), 409);
    cr_assert_eq(nt_status_http(NT_ETOOBIG), 413);
    cr_assert_eq(nt_status_http(NT_ERATE), 429);
    cr_assert_eq(nt_status_http(NT_EINTERNAL), 500);
    cr_assert_eq(nt_status_http(NT_EUNAVAIL), 503);
    cr_assert_eq(nt_status_http(NT_ETIMEOUT), 504);
    cr_assert_eq(nt_status_http(NT_OK), 200);
}

Test(nt_status, round_trips_codes_and_http)
{
    for (int i = 0; i < NT__COUNT; i++) {
        cr_assert_eq(nt_status_from_code(nt_status_code((nt_status)i)), (nt_status)i);
        cr_assert_eq(nt_status_from_http(nt_status_http((nt_status)i)), (nt_status)i);
    }
    cr_assert_eq(nt_status_from_code("no_such_code"), NT_EINTERNAL);
    cr_assert_eq(nt_status_from_code(NULL), NT_EINTERNAL);
    cr_assert_eq(nt_status_from_http(418), NT_EINVAL);
    cr_assert_eq(nt_status_from_http(502), NT_EINTERNAL);
    cr_assert_eq(nt_status_from_http(204), NT_OK);
    cr_assert_str_eq(nt_status_code((nt_status)999), "internal");
}

Test(nt_buf, appends_within_cap_and_refuses_past_it)
{
    nt_buf b;
    nt_buf_init(&b, 10);
    cr_assert_eq(nt_buf_append_str(&b, "hello"), NT_OK);
    cr_assert_eq(nt_buf_appendf(&b, "%d", 1234), NT_OK);
    cr_assert_str_eq(b.data, "hello1234");
    cr_assert_eq(nt_buf_append_str(&b, "ab"), NT_ETOOBIG);
    cr_assert_str_eq(b.data, "hello1234", "a refused append leaves the buffer unchanged");
    cr_assert_eq(nt_buf_appendf(&b, "%s", "xy"), NT_ETOOBIG);
    cr_assert_eq(nt_buf_append(&b, "z", 1), NT_OK);
    cr_assert_eq(b.len, 10);
    size_t len = 0;
    char *s = nt_buf_steal(&b, &len);
    cr_assert_eq(len, 10);
    cr_assert_str_eq(s, "hello1234z");
    cr_assert_null(b.data);
    free(s);
    nt_buf_free(&b);
}

Test(nt_buf, grows_byte_by_byte_and_handles_huge_sizes)
{
    nt_buf b;
    nt_buf_init(&b, 100000);
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(nt_buf_append(&b, "x", 1), NT_OK);
    cr_assert_eq(b.len, 100000);
    cr_assert_eq(nt_buf_append(&b, "x", 1), NT_ETOOBIG);
    cr_assert_eq(nt_buf_append(&b, "x", (size_t)-1), NT_ETOOBIG, "overflow-safe size check");
    nt_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    nt_buf_free(&b);
    char *empty = nt_buf_steal(&b, NULL);
    cr_assert_str_eq(empty, "");
    free(empty);
}

static int64_t fixed_now(void)
{
    return 1767323045678; /* 2026-01-02T03:04:05.678Z */
}

Test(nt_clock, formats_rfc3339_and_can_be_faked)
{
    char ts[NT_ISO8601_LEN];
    nt_clock_iso8601(fixed_now(), ts);
    cr_assert_str_eq(ts, "2026-01-02T03:04:05.678Z");
    nt_clock_iso8601(0, ts);
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
    nt_clock_set_fake(fixed_now);
    cr_assert_eq(nt_clock_now_ms(), 1767323045678);
    nt_clock_set_fake(NULL);
    cr_assert_gt(nt_clock_now_ms(), 1767323045678);
    int64_t a = nt_clock_mono_ns(), b = nt_clock_mono_ns();
    cr_assert_geq(b, a);
}

Test(nt_id, makes_valid_v7_ids_in_strictly_increasing_order)
{
    char prev[NT_ID_LEN] = "";
    for (int i = 0; i < 20000; i++) {
        char id[NT_ID_LEN];
        nt_id_new(id);
        cr_assert(nt_id_valid(id), "%s", id);
        cr_assert_eq(id[14], '7', "version nibble: %s", id);
        cr_assert(strchr("89ab", id[19]) != NULL, "variant: %s", id);
        if (prev[0])
            cr_assert_gt(strcmp(id, prev), 0, "%s after %s", id, prev);
        memcpy(prev, id, NT_ID_LEN);
    }
}

Test(nt_id, keeps_order_within_one_faked_millisecond_and_reads_time_back)
{
    nt_clock_set_fake(fixed_now);
    char a[NT_ID_LEN], b[NT_ID_LEN];
    nt_id_new(a);
    nt_id_new(b);
    nt_clock_set_fake(NULL);
    cr_assert_gt(strcmp(b, a), 0);
    cr_assert_eq(nt_id_time_ms(a), 1767323045678);
    cr_assert_eq(nt_id_time_ms(b), 1767323045678);
}

Test(nt_id, rejects_malformed_ids)
{
    cr_assert(nt_id_valid("0190f5e2-7b1c-7c3d-8e4f-123456789abc"));
    cr_assert_not(nt_id_valid(NULL));
    cr_assert_not(nt_id_valid(""));
    cr_assert_not(nt_id_valid("0190F5E2-7B1C-7C3D-8E4F-123456789ABC"), "upper case");
    cr_assert_not(nt_id_valid("0190f5e2-7b1c-7c3d-8e4f-123456789abcd"), "too long");
    cr_assert_not(nt_id_valid("0190f5e2-7b1c-7c3d-8e4f-123456789ab"), "too short");
    cr_assert_not(nt_id_valid("0190f5e2x7b1c-7c3d-8e4f-123456789abc"), "dash");
    cr_assert_not(nt_id_valid("0190f5e2-7b1c-7c3d-8e4f-12345678'abc"), "quote");
    cr_assert_eq(nt_id_time_ms("0190f5e2-7b1c-4c3d-8e4f-123456789abc"), -1, "v4 has no time");
}

Test(nt_id, next_after_is_strictly_greater_than_a_floor_from_the_future)
{
    char id[NT_ID_LEN], floor[NT_ID_LEN];
    /* A floor far in the future: the new id must still sort after it. */
    snprintf(floor, sizeof(floor), "%s", "ffffffff-ffff-7fff-bfff-fffffffffffe");
    nt_id_next_after(floor, id);
    cr_assert_str_eq(id, "ffffffff-ffff-7fff-bfff-ffffffffffff");
    snprintf(floor, sizeof(floor), "%s", "7fffffff-ffff-7fff-bfff-ffffffffffff");
    nt_id_next_after(floor, id);
    /* The carry skips the variant bits and the version nibble. */
    cr_assert_str_eq(id, "80000000-0000-7000-8000-000000000000");
    snprintf(floor, sizeof(floor), "%s", "fffffff0-0000-7abc-8000-0000000000ff");
    nt_id_next_after(floor, id);
    cr_assert_str_eq(id, "fffffff0-0000-7abc-8000-000000000100");
    cr_assert(nt_id_valid(id));
    cr_assert_eq(nt_id_time_ms(id), nt_id_time_ms(floor));
}

Test(nt_id, next_after_a_past_or_missing_floor_is_a_new_id)
{
    char a[NT_ID_LEN], b[NT_ID_LEN];
    nt_id_new(a);
    nt_id_next_after("00000000-0000-7000-8000-000000000000", b);
    cr_assert_gt(strcmp(b, a), 0);
    cr_assert_geq(nt_id_time_ms(b), nt_id_time_ms(a));
    nt_id_next_after(NULL, a);
    nt_id_next_after("", b);
    cr_assert_gt(strcmp(b, a), 0);
    nt_id_next_after("not an id", a);
    cr_assert(nt_id_valid(a));
    cr_assert_eq(a[14], '7');
}

Test(nt_id, next_after_goes_above_a_legacy_id_and_stops_at_the_last)
{
    char id[NT_ID_LEN];
    /* A v4 id from an older database still bounds the new one from below. */
    nt_id_next_after("ffffffff-0000-4000-8000-000000000000", id);
    cr_assert_str_eq(id, "ffffffff-0000-4000-8000-000000000001");
    /* Nothing is above the last id: a fresh one, not a wrapped zero. */
    nt_id_next_after("ffffffff-ffff-7fff-bfff-ffffffffffff", id);
    cr_assert(nt_id_valid(id));
    cr_assert_neq(strncmp(id, "00000000", 8), 0);
    cr_assert_eq(id[14], '7');
}
