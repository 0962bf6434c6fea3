/* Unit tests of the edge's presence JSON: the reports (exact bytes), the
 * Phoenix diff, snapshot parts, the per-edge seq filter and the
 * presence_state made from the service's reply with this edge's part
 * replaced by its local one (including every way the reply can be wrong). */
#include "../../../services/edge/edge_presence.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EDGE_A "AAAAAAAAAAAAAAAAAAAAAA"
#define EDGE_B "BBBBBBBBBBBBBBBBBBBBBB"

static edge_pmeta meta(const char *ref, const char *name)
{
    edge_pmeta m;
    memset(&m, 0, sizeof(m));
    snprintf(m.phx_ref, sizeof(m.phx_ref), "%s", ref);
    snprintf(m.username, sizeof(m.username), "%s", name);
    snprintf(m.online_at, sizeof(m.online_at), "2026-12-05T10:00:00.000Z");
    return m;
}

/* out's text, NUL-terminated. */
static const char *text(nt_buf *b)
{
    cr_assert_eq(nt_buf_append(b, "", 1), NT_OK);
    b->len--;
    return b->data;
}

Test(edge_presence, reports_are_exact)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_presence_report_conn(&b, EDGE_A, 7, "connect", 42, "u1"), NT_OK);
    cr_assert_str_eq(text(&b), "{\"edge\":\"" EDGE_A "\",\"seq\":7,\"type\":\"connect\","
                               "\"conn\":\"42\",\"user_id\":\"u1\"}");
    nt_buf_reset(&b);
    edge_pmeta m = meta(EDGE_A "-1", "al\"ice");
    cr_assert_eq(edge_presence_report_join(&b, EDGE_A, 8, 42, "u1", "r1", &m), NT_OK);
    cr_assert_str_eq(text(&b), "{\"edge\":\"" EDGE_A "\",\"seq\":8,\"type\":\"join\",\"conn\":"
                               "\"42\",\"user_id\":\"u1\",\"room_id\":\"r1\",\"meta\":{\"phx_ref\":"
                               "\"" EDGE_A "-1\",\"username\":\"al\\\"ice\",\"online_at\":"
                               "\"2026-12-05T10:00:00.000Z\"}}");
    nt_buf_reset(&b);
    cr_assert_eq(edge_presence_report_leave(&b, EDGE_A, 9, 42, "u1", "r1", EDGE_A "-1"), NT_OK);
    cr_assert_str_eq(text(&b),
                     "{\"edge\":\"" EDGE_A "\",\"seq\":9,\"type\":\"leave\",\"conn\":"
                     "\"42\",\"user_id\":\"u1\",\"room_id\":\"r1\",\"phx_ref\":\"" EDGE_A "-1\"}");
    nt_buf_reset(&b);
    cr_assert_eq(edge_presence_report_bye(&b, EDGE_A, 10), NT_OK);
    cr_assert_str_eq(text(&b), "{\"edge\":\"" EDGE_A "\",\"seq\":10,\"type\":\"bye\"}");
    nt_buf_free(&b);
}

Test(edge_presence, large_seqs_print_whole)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_presence_report_bye(&b, EDGE_A, 4294967296ULL), NT_OK);
    cr_assert_str_eq(text(&b), "{\"edge\":\"" EDGE_A "\",\"seq\":4294967296,\"type\":\"bye\"}");
    nt_buf_free(&b);
}

static edge_pchange change(const char *user, const char *ref, bool join)
{
    edge_pchange c;
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", user);
    c.meta = meta(ref, "bob");
    c.join = join;
    return c;
}

Test(edge_presence, the_diff_is_the_phoenix_shape)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    edge_pchange c = change("u2", "R1", true);
    cr_assert_eq(edge_presence_diff(&b, &c, 1), NT_OK);
    cr_assert_str_eq(text(&b), "{\"joins\":{\"u2\":{\"metas\":[{\"phx_ref\":\"R1\",\"username\":"
                               "\"bob\",\"online_at\":\"2026-12-05T10:00:00.000Z\"}]}},"
                               "\"leaves\":{}}");
    nt_buf_reset(&b);
    c.join = false;
    cr_assert_eq(edge_presence_diff(&b, &c, 1), NT_OK);
    cr_assert_str_eq(text(&b),
                     "{\"joins\":{},\"leaves\":{\"u2\":{\"metas\":[{\"phx_ref\":\"R1\","
                     "\"username\":\"bob\",\"online_at\":\"2026-12-05T10:00:00.000Z\"}]}}}");
    nt_buf_reset(&b);
    cr_assert_eq(edge_presence_diff(&b, NULL, 0), NT_OK);
    cr_assert_str_eq(text(&b), "{\"joins\":{},\"leaves\":{}}");
    nt_buf_free(&b);
}

Test(edge_presence, a_batched_diff_groups_metas_per_user_in_order)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    edge_pchange c[] = {change("u1", "A", true), change("u2", "B", true), change("u1", "C", true),
                        change("u1", "A", false)};
    cr_assert_eq(edge_presence_diff(&b, c, 4), NT_OK);
    cJSON *o = cJSON_Parse(text(&b));
    cr_assert_not_null(o);
    cJSON *u1 = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "joins"), "u1");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(u1, "metas")), 2);
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(u1, "metas"), 1), "phx_ref")
            ->valuestring,
        "C");
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "joins"), "u2"));
    cJSON *l1 = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "leaves"), "u1");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(l1, "metas")), 1);
    cJSON_Delete(o);
    nt_buf_free(&b);
}

Test(edge_presence, snapshot_parts_wrap_their_entries)
{
    nt_buf e, b;
    nt_buf_init(&e, 4096);
    nt_buf_init(&b, 4096);
    edge_pmeta m1 = meta("R1", "a"), m2 = meta("R2", "a");
    const char *rooms[] = {"r1", "r2"};
    const edge_pmeta *metas[] = {&m1, &m2};
    cr_assert_eq(edge_presence_snapshot_conn(&e, 5, "u1", rooms, metas, 2), NT_OK);
    cr_assert_eq(nt_buf_append_str(&e, ","), NT_OK);
    cr_assert_eq(edge_presence_snapshot_conn(&e, 6, "u2", NULL, NULL, 0), NT_OK);
    cr_assert_eq(edge_presence_report_snapshot(&b, EDGE_A, 3, 2, 0, 1, e.data, e.len), NT_OK);
    cJSON *o = cJSON_Parse(text(&b));
    cr_assert_not_null(o, "not JSON: %s", text(&b));
    cr_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "snapshot");
    cr_assert_eq(cJSON_GetObjectItem(o, "round")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(o, "part")->valueint, 0);
    cr_assert_eq(cJSON_GetObjectItem(o, "parts")->valueint, 1);
    cJSON *conns = cJSON_GetObjectItem(o, "conns");
    cr_assert_eq(cJSON_GetArraySize(conns), 2);
    cJSON *c0 = cJSON_GetArrayItem(conns, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(c0, "conn")->valuestring, "5");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c0, "joins")), 2);
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c0, "joins"), 1), "room_id")
            ->valuestring,
        "r2");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(conns, 1), "joins")), 0);
    cJSON_Delete(o);
    /* No sockets: an empty list. */
    nt_buf_reset(&b);
    cr_assert_eq(edge_presence_report_snapshot(&b, EDGE_A, 4, 3, 0, 1, "", 0), NT_OK);
    cr_assert_str_eq(text(&b), "{\"edge\":\"" EDGE_A "\",\"seq\":4,\"type\":\"snapshot\","
                               "\"round\":3,\"part\":0,\"parts\":1,\"conns\":[]}");
    nt_buf_free(&e);
    nt_buf_free(&b);
}

Test(edge_presence, seqs_cover_what_they_have_seen_and_only_rise)
{
    edge_pseqs s = {0};
    cr_assert_not(edge_pseqs_covers(&s, EDGE_A, 1));
    edge_pseqs_set(&s, EDGE_A, 10);
    edge_pseqs_set(&s, EDGE_B, 3);
    cr_assert(edge_pseqs_covers(&s, EDGE_A, 10));
    cr_assert(edge_pseqs_covers(&s, EDGE_A, 1));
    cr_assert_not(edge_pseqs_covers(&s, EDGE_A, 11));
    cr_assert_not(edge_pseqs_covers(&s, EDGE_B, 4));
    edge_pseqs_set(&s, EDGE_A, 5); /* lower: ignored */
    cr_assert(edge_pseqs_covers(&s, EDGE_A, 10));
    cr_assert_not(edge_pseqs_covers(&s, "other", 0));
    edge_pseqs_free(&s);
    cr_assert_eq(s.n, 0);
}

Test(edge_presence, refs_belong_to_their_edge_only)
{
    cr_assert(edge_presence_ref_of(EDGE_A "-1", EDGE_A));
    cr_assert_not(edge_presence_ref_of(EDGE_A "1", EDGE_A));
    cr_assert_not(edge_presence_ref_of(EDGE_B "-1", EDGE_A));
    cr_assert_not(edge_presence_ref_of(EDGE_A, EDGE_A));
    cr_assert_not(edge_presence_ref_of("", EDGE_A));
    cr_assert_not(edge_presence_ref_of(EDGE_A "-1", ""));
}

/* edge_presence_state on reply with one local meta of u1 (EDGE_A-9). */
static char *state_of(const char *reply, edge_pseqs *seqs)
{
    edge_pmeta local = meta(EDGE_A "-9", "me");
    const char *users[] = {"u1"};
    const edge_pmeta *metas[] = {&local};
    nt_buf b;
    nt_buf_init(&b, 1 << 20);
    char *copy = NULL;
    size_t len = 0;
    if (reply != NULL) {
        len = strlen(reply);
        copy = malloc(len + 1);
        memcpy(copy, reply, len + 1);
    }
    cr_assert_eq(edge_presence_state(copy, len, EDGE_A, users, metas, 1, &b, seqs), NT_OK);
    free(copy);
    size_t n = 0;
    cr_assert_eq(nt_buf_append(&b, "", 1), NT_OK);
    return nt_buf_steal(&b, &n);
}

Test(edge_presence, the_state_takes_this_edge_s_part_from_local_and_keeps_the_others)
{
    edge_pseqs seqs = {0};
    /* The service still has a stale meta of this edge and one of B. */
    char *out = state_of("{\"data\":{\"room_id\":\"r\",\"presence\":{"
                         "\"u1\":{\"metas\":[{\"phx_ref\":\"" EDGE_A "-3\",\"username\":\"me\"}]},"
                         "\"u2\":{\"metas\":[{\"phx_ref\":\"" EDGE_B "-1\",\"username\":\"b\"}]}},"
                         "\"edges\":{\"" EDGE_B "\":12,\"" EDGE_A "\":4}}}",
                         &seqs);
    cr_assert_str_eq(out, "{\"u2\":{\"metas\":[{\"phx_ref\":\"" EDGE_B "-1\",\"username\":\"b\"}]},"
                          "\"u1\":{\"metas\":[{\"phx_ref\":\"" EDGE_A "-9\",\"username\":\"me\","
                          "\"online_at\":\"2026-12-05T10:00:00.000Z\"}]}}");
    cr_assert(edge_pseqs_covers(&seqs, EDGE_B, 12));
    cr_assert_not(edge_pseqs_covers(&seqs, EDGE_B, 13));
    free(out);
    edge_pseqs_free(&seqs);
}

Test(edge_presence, a_local_meta_joins_a_user_the_service_has_from_another_edge)
{
    edge_pseqs seqs = {0};
    char *out = state_of("{\"data\":{\"presence\":{\"u1\":{\"metas\":[{\"phx_ref\":\"" EDGE_B
                         "-2\"}]}},\"edges\":{}}}",
                         &seqs);
    cr_assert_str_eq(out,
                     "{\"u1\":{\"metas\":[{\"phx_ref\":\"" EDGE_B "-2\"},{\"phx_ref\":\"" EDGE_A
                     "-9\",\"username\":\"me\",\"online_at\":\"2026-12-05T10:00:00.000Z\"}]}}");
    free(out);
    edge_pseqs_free(&seqs);
}

Test(edge_presence, no_reply_or_a_wrong_one_gives_the_local_part_only)
{
    static const char *const bad[] = {
        NULL,
        "",
        "not json",
        "[]",
        "{\"data\":[]}",
        "{\"presence\":{\"u9\":{\"metas\":[{\"phx_ref\":\"x\"}]}}}", /* no envelope */
        "{\"error\":{\"code\":\"unavailable\"}}",
        "{\"data\":{\"presence\":[]}}",
        "{\"data\":{\"presence\":\"x\"}}",
        "{\"data\":{\"presence\":{\"u9\":1}}}",
        "{\"data\":{\"presence\":{\"u9\":{\"metas\":{}}}}}",
        "{\"data\":{\"presence\":{\"u9\":{\"metas\":[1,\"x\",{\"phx_ref\":7}]}}}}",
        "{\"data\":{\"presence\":{\"u9\":{\"metas\":[]}}}}",
        "{\"data\":{\"edges\":{\"" EDGE_B "\":\"12\",\"x\":-1}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        edge_pseqs seqs = {0};
        char *out = state_of(bad[i], &seqs);
        cr_assert_str_eq(out,
                         "{\"u1\":{\"metas\":[{\"phx_ref\":\"" EDGE_A "-9\",\"username\":"
                         "\"me\",\"online_at\":\"2026-12-05T10:00:00.000Z\"}]}}",
                         "reply %zu", i);
        cr_assert_eq(seqs.n, 0, "reply %zu gave seqs", i);
        free(out);
        edge_pseqs_free(&seqs);
    }
}

Test(edge_presence, every_truncation_of_a_reply_is_survived)
{
    const char *full = "{\"data\":{\"room_id\":\"r\",\"presence\":{\"u2\":{\"metas\":[{\"phx_ref\":"
                       "\"" EDGE_B "-1\"}]}},\"edges\":{\"" EDGE_B "\":3}}}";
    size_t n = strlen(full);
    for (size_t i = 0; i <= n; i++) {
        char *cut = malloc(i + 1);
        memcpy(cut, full, i);
        cut[i] = '\0';
        edge_pseqs seqs = {0};
        char *out = state_of(cut, &seqs);
        cJSON *o = cJSON_Parse(out);
        cr_assert_not_null(o, "cut at %zu: %s", i, out);
        cr_assert_not_null(cJSON_GetObjectItem(o, "u1"), "cut at %zu lost the local meta", i);
        cJSON_Delete(o);
        free(out);
        free(cut);
        edge_pseqs_free(&seqs);
    }
}

Test(edge_presence, a_meta_prints_to_at_least_the_minimum_the_edge_counts_by)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    /* The shortest meta the edge makes: a 22-character edge id, "-1", no
     * username, a timestamp. */
    edge_pmeta m = meta(EDGE_A "-1", "");
    const char *users[] = {"u"};
    const edge_pmeta *metas[] = {&m};
    edge_pseqs seqs = {0};
    cr_assert_eq(edge_presence_state(NULL, 0, EDGE_A, users, metas, 1, &b, &seqs), NT_OK);
    size_t frame = strlen("{\"u\":{\"metas\":[]}}");
    cr_assert_geq(b.len - frame, (size_t)EDGE_PRESENCE_META_MIN, "a meta of %zu bytes",
                  b.len - frame);
    nt_buf_free(&b);
}
