/* Unit tests of the presence codec: reports of every type, every truncation
 * of valid reports, wrong types, oversized arrays and byte flips (none may
 * crash or leak), and the small request, KV and rooms-page formats. */
#include "../../../services/presence/presence_codec.h"
#include "../../../services/presence/presence_state.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EA "AAAAAAAAAAAAAAAAAAAAAA"
#define META                                                                                       \
    "{\"phx_ref\":\"A-1\",\"username\":\"alice\",\"online_at\":\"2026-01-01T00:00:01.000Z\"}"

static const char *const valid[] = {
    "{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"12\",\"user_id\":\"u1\"}",
    "{\"edge\":\"" EA "\",\"seq\":2,\"type\":\"disconnect\",\"conn\":\"12\",\"user_id\":\"u1\"}",
    "{\"edge\":\"" EA "\",\"seq\":3,\"type\":\"join\",\"conn\":\"12\",\"user_id\":\"u1\","
    "\"room_id\":\"r-1\",\"meta\":" META "}",
    "{\"edge\":\"" EA "\",\"seq\":4,\"type\":\"leave\",\"conn\":\"12\",\"user_id\":\"u1\","
    "\"room_id\":\"r-1\",\"phx_ref\":\"A-1\"}",
    "{\"edge\":\"" EA "\",\"seq\":5,\"type\":\"snapshot\",\"round\":2,\"part\":0,\"parts\":1,"
    "\"conns\":[{\"conn\":\"12\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r-1\",\"meta\":" META
    "}]},{\"conn\":\"13\",\"user_id\":\"u2\",\"joins\":[]}]}",
    "{\"edge\":\"" EA "\",\"seq\":6,\"type\":\"bye\"}",
};
#define NVALID (sizeof(valid) / sizeof(valid[0]))

static nt_status parse(const char *s, size_t len, presence_report *r)
{
    char err[NT_ERRMSG_LEN] = "";
    nt_status st = presence_report_parse(s, len, r, err, sizeof(err));
    if (st != NT_OK)
        cr_assert_neq(err[0], '\0', "a failure says why");
    return st;
}

static void expect_bad(const char *s)
{
    presence_report r;
    nt_status st = parse(s, strlen(s), &r);
    cr_assert(st == NT_EINVAL || st == NT_ETOOBIG, "accepted: %s", s);
    cr_assert_eq(r.nconns, 0);
    cr_assert_null(r.conns);
    cr_assert_null(r.phx_ref);
}

Test(presence_codec, parses_every_report_type)
{
    presence_report r;
    cr_assert_eq(parse(valid[0], strlen(valid[0]), &r), NT_OK);
    cr_assert_eq(r.type, PRESENCE_CONNECT);
    cr_assert_str_eq(r.edge, EA);
    cr_assert_eq(r.seq, 1);
    cr_assert_str_eq(r.conn, "12");
    cr_assert_str_eq(r.user_id, "u1");
    presence_report_free(&r);

    cr_assert_eq(parse(valid[2], strlen(valid[2]), &r), NT_OK);
    cr_assert_eq(r.type, PRESENCE_JOIN);
    cr_assert_str_eq(r.join.room_id, "r-1");
    cr_assert_str_eq(r.join.phx_ref, "A-1");
    cr_assert_str_eq(r.join.online_at, "2026-01-01T00:00:01.000Z");
    cr_assert_str_eq(r.join.meta, META);
    presence_report_free(&r);

    cr_assert_eq(parse(valid[3], strlen(valid[3]), &r), NT_OK);
    cr_assert_eq(r.type, PRESENCE_LEAVE);
    cr_assert_str_eq(r.room_id, "r-1");
    cr_assert_str_eq(r.phx_ref, "A-1");
    presence_report_free(&r);

    cr_assert_eq(parse(valid[4], strlen(valid[4]), &r), NT_OK);
    cr_assert_eq(r.type, PRESENCE_SNAPSHOT);
    cr_assert_eq(r.round, 2);
    cr_assert_eq(r.part, 0);
    cr_assert_eq(r.parts, 1);
    cr_assert_eq(r.nconns, 2);
    cr_assert_eq(r.conns[0].njoins, 1);
    cr_assert_str_eq(r.conns[0].joins[0].meta, META);
    cr_assert_eq(r.conns[1].njoins, 0);
    presence_report_free(&r);

    cr_assert_eq(parse(valid[5], strlen(valid[5]), &r), NT_OK);
    cr_assert_eq(r.type, PRESENCE_BYE);
    cr_assert_eq(r.seq, 6);
    presence_report_free(&r);
    presence_report_free(NULL);
}

Test(presence_codec, every_truncation_of_a_valid_report_is_refused)
{
    for (size_t v = 0; v < NVALID; v++) {
        size_t n = strlen(valid[v]);
        for (size_t len = 0; len < n; len++) {
            char *copy = malloc(len + 1);
            memcpy(copy, valid[v], len);
            copy[len] = '\0';
            presence_report r;
            cr_assert_neq(parse(copy, len, &r), NT_OK, "report %zu cut at %zu", v, len);
            free(copy);
        }
    }
}

Test(presence_codec, byte_flips_never_crash)
{
    static const char subst[] = {'\0', '"', '{', '}', '[', ']', ',', ':', '1', 'x', '\\', '\xff'};
    for (size_t v = 0; v < NVALID; v++) {
        size_t n = strlen(valid[v]);
        char *copy = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < sizeof(subst); k++) {
                memcpy(copy, valid[v], n + 1);
                copy[i] = subst[k];
                presence_report r;
                char err[NT_ERRMSG_LEN];
                if (presence_report_parse(copy, n, &r, err, sizeof(err)) == NT_OK)
                    presence_report_free(&r);
            }
        }
        free(copy);
    }
}

Test(presence_codec, refuses_wrong_types_and_malformed_fields)
{
    expect_bad("[]");
    expect_bad("null");
    expect_bad("{}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"dance\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":7}");
    expect_bad("{\"edge\":\"short\",\"seq\":1,\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"AAAAAAAAAAAAAAAAAAAAA-\",\"seq\":1,\"type\":\"bye\"}");
    expect_bad("{\"edge\":42,\"seq\":1,\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":0,\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":-1,\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1.5,\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":\"1\",\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1e300,\"type\":\"bye\"}");
    expect_bad("{\"edge\":\"" EA
               "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"a1\",\"user_id\":\"u\"}");
    expect_bad("{\"edge\":\"" EA
               "\",\"seq\":1,\"type\":\"connect\",\"conn\":12,\"user_id\":\"u\"}");
    expect_bad("{\"edge\":\"" EA
               "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"123456789012345678901\","
               "\"user_id\":\"u\"}");
    expect_bad("{\"edge\":\"" EA
               "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":\"a.b\"}");
    expect_bad("{\"edge\":\"" EA
               "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":\"\"}");
    expect_bad("{\"edge\":\"" EA
               "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":\"a b\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"join\",\"conn\":\"1\",\"user_id\":\"u\","
               "\"room_id\":\"r\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"join\",\"conn\":\"1\",\"user_id\":\"u\","
               "\"room_id\":\"r\",\"meta\":[]}");
    expect_bad(
        "{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"join\",\"conn\":\"1\",\"user_id\":\"u\","
        "\"room_id\":\"r\",\"meta\":{\"phx_ref\":1,\"username\":\"a\",\"online_at\":\"t\"}}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"join\",\"conn\":\"1\",\"user_id\":\"u\","
               "\"room_id\":\"r\",\"meta\":{\"phx_ref\":\"x\",\"online_at\":\"t\"}}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"join\",\"conn\":\"1\",\"user_id\":\"u\","
               "\"room_id\":\"r r\",\"meta\":" META "}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"leave\",\"conn\":\"1\",\"user_id\":\"u\","
               "\"room_id\":\"r\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"leave\",\"conn\":\"1\",\"user_id\":\"u\","
               "\"room_id\":\"r\",\"phx_ref\":\"\"}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,\"part\":1,"
               "\"parts\":1,\"conns\":[]}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,\"part\":0,"
               "\"parts\":0,\"conns\":[]}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,\"part\":0,"
               "\"parts\":1}");
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,\"part\":0,"
               "\"parts\":1,\"conns\":{}}");
    /* Not UTF-8. */
    expect_bad("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"bye\",\"x\":\"\xc3\"}");
}

Test(presence_codec, refuses_oversized_arrays_and_reports)
{
    size_t n = PRESENCE_CONNS_MAX + 1;
    size_t cap = 200 + n * 32;
    char *s = malloc(cap);
    size_t len =
        (size_t)snprintf(s, cap,
                         "{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,"
                         "\"part\":0,\"parts\":1,\"conns\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s{\"conn\":\"1\",\"user_id\":\"u\"}",
                                i ? "," : "");
    len += (size_t)snprintf(s + len, cap - len, "]}");
    presence_report r;
    cr_assert_eq(parse(s, len, &r), NT_ETOOBIG);
    cr_assert_eq(parse(s, PRESENCE_REPORT_MAX + 1, &r), NT_ETOOBIG);
    free(s);

    /* Too many joins on one connection: the first ones are kept. */
    n = PRESENCE_CONN_JOINS_MAX + 7;
    cap = 300 + n * 140;
    s = malloc(cap);
    len = (size_t)snprintf(s, cap,
                           "{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,"
                           "\"part\":0,\"parts\":1,\"conns\":[{\"conn\":\"1\",\"user_id\":\"u\","
                           "\"joins\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s{\"room_id\":\"r\",\"meta\":" META "}",
                                i ? "," : "");
    len += (size_t)snprintf(s + len, cap - len, "]}]}");
    cr_assert_eq(parse(s, len, &r), NT_OK);
    cr_assert_eq(r.nconns, 1);
    cr_assert_eq(r.conns[0].njoins, PRESENCE_CONN_JOINS_MAX);
    cr_assert_eq(r.dropped_joins, 7);
    presence_report_free(&r);
    free(s);
    cr_assert_eq(parse(NULL, 0, &r), NT_EINVAL);
}

Test(presence_codec, ignores_unknown_fields_for_later_versions)
{
    const char *s = "{\"edge\":\"" EA "\",\"seq\":9,\"type\":\"bye\",\"why\":\"sigterm\"}";
    presence_report r;
    cr_assert_eq(parse(s, strlen(s), &r), NT_OK);
    presence_report_free(&r);
}

Test(presence_codec, get_body_needs_a_valid_room_id)
{
    char room[PRESENCE_ID_MAX + 1], err[NT_ERRMSG_LEN];
    size_t max = 0;
    const char *ok = "{\"room_id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\"}";
    cr_assert_eq(presence_get_body_parse(ok, strlen(ok), room, &max, err, sizeof(err)), NT_OK);
    cr_assert_str_eq(room, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    cr_assert_eq(max, PRESENCE_GET_MAX);
    const char *capped = "{\"room_id\":\"r\",\"max_bytes\":4096}";
    cr_assert_eq(presence_get_body_parse(capped, strlen(capped), room, &max, err, sizeof(err)),
                 NT_OK);
    cr_assert_eq(max, 4096);
    const char *bad[] = {"",
                         "{}",
                         "{\"room_id\":1}",
                         "{\"room_id\":\"a.b\"}",
                         "{\"room_id\":\"r\",\"x\":1}",
                         "{\"room_id\":\"r\",\"max_bytes\":1023}",
                         "{\"room_id\":\"r\",\"max_bytes\":9999999}",
                         "{\"room_id\":\"r\",\"max_bytes\":\"4096\"}",
                         "[",
                         "{\"room_id\":\"\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(presence_get_body_parse(bad[i], strlen(bad[i]), room, &max, err, sizeof(err)),
                     NT_EINVAL, "%s", bad[i]);
}

Test(presence_codec, online_body_takes_1_to_500_ids_without_duplicates)
{
    char **ids = NULL, err[NT_ERRMSG_LEN];
    size_t n = 0;
    const char *ok = "{\"user_ids\":[\"u1\",\"u2\",\"u1\"]}";
    cr_assert_eq(presence_online_body_parse(ok, strlen(ok), &ids, &n, err, sizeof(err)), NT_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ids[0], "u1");
    cr_assert_str_eq(ids[1], "u2");
    presence_ids_free(ids, n);
    const char *bad[] = {"{}",
                         "{\"user_ids\":[]}",
                         "{\"user_ids\":\"u1\"}",
                         "{\"user_ids\":[1]}",
                         "{\"user_ids\":[\"a b\"]}",
                         "{\"ids\":[\"u\"]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(presence_online_body_parse(bad[i], strlen(bad[i]), &ids, &n, err, sizeof(err)),
                     NT_EINVAL, "%s", bad[i]);
    char big[600 * 8 + 32];
    size_t len = (size_t)snprintf(big, sizeof(big), "{\"user_ids\":[");
    for (int i = 0; i < 501; i++)
        len += (size_t)snprintf(big + len, sizeof(big) - len, "%s\"u%d\"", i ? "," : "", i);
    len += (size_t)snprintf(big + len, sizeof(big) - len, "]}");
    cr_assert_eq(presence_online_body_parse(big, len, &ids, &n, err, sizeof(err)), NT_EINVAL);
}

Test(presence_codec, kv_values_round_trip_and_bad_last_seen_is_dropped)
{
    char *v = presence_kv_value(true, "2026-01-01T00:00:00.000Z");
    cr_assert_str_eq(v, "{\"online\":true,\"last_seen\":\"2026-01-01T00:00:00.000Z\"}");
    bool online = false;
    char seen[PRESENCE_TIME_LEN];
    cr_assert_eq(presence_kv_value_parse(v, strlen(v), &online, seen), NT_OK);
    cr_assert(online);
    cr_assert_str_eq(seen, "2026-01-01T00:00:00.000Z");
    free(v);
    const char *odd = "{\"online\":false,\"last_seen\":\"\\\"}\"}";
    cr_assert_eq(presence_kv_value_parse(odd, strlen(odd), &online, seen), NT_OK);
    cr_assert(!online);
    cr_assert_str_eq(seen, "");
    cr_assert_eq(presence_kv_value_parse("{\"online\":1}", 12, &online, seen), NT_EINVAL);
    cr_assert_eq(presence_kv_value_parse("nope", 4, &online, seen), NT_EINVAL);
}

Test(presence_codec, update_and_rooms_list_bodies)
{
    char *u = presence_update_json("u1", false, "2026-01-01T00:00:00.000Z");
    cr_assert_str_eq(
        u, "{\"user_id\":\"u1\",\"online\":false,\"last_seen\":\"2026-01-01T00:00:00.000Z\"}");
    free(u);
    char *b = presence_rooms_list_body(NULL);
    cr_assert_str_eq(b, "{\"scope\":\"mine\",\"limit\":100}");
    free(b);
    b = presence_rooms_list_body("abc");
    cr_assert_str_eq(b, "{\"scope\":\"mine\",\"limit\":100,\"cursor\":\"abc\"}");
    free(b);
}

Test(presence_codec, rooms_pages_accumulate_ids_and_the_cursor)
{
    char **ids = NULL, *cursor = NULL;
    size_t n = 0;
    const char *p1 = "{\"data\":{\"rooms\":[{\"id\":\"r1\"},{\"id\":\"r.2\"},{\"x\":1}],"
                     "\"next_cursor\":\"c1\"}}";
    cr_assert_eq(presence_rooms_page_parse(p1, strlen(p1), &ids, &n, &cursor), NT_OK);
    cr_assert_eq(n, 1, "malformed ids are skipped");
    cr_assert_str_eq(cursor, "c1");
    free(cursor);
    const char *p2 = "{\"data\":{\"rooms\":[{\"id\":\"r3\"}],\"next_cursor\":null}}";
    cr_assert_eq(presence_rooms_page_parse(p2, strlen(p2), &ids, &n, &cursor), NT_OK);
    cr_assert_eq(n, 2);
    cr_assert_null(cursor);
    cr_assert_str_eq(ids[1], "r3");
    presence_ids_free(ids, n);
    ids = NULL;
    n = 0;
    const char *bad = "{\"error\":{\"code\":\"x\"}}";
    cr_assert_eq(presence_rooms_page_parse(bad, strlen(bad), &ids, &n, &cursor), NT_EINVAL);
    presence_ids_free(ids, n);
}

/* Parses a snapshot part of the given conns; the caller frees r. */
static void parse_snapshot(const char *conns, presence_report *r)
{
    char json[4096];
    int n = snprintf(json, sizeof(json),
                     "{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"snapshot\",\"round\":1,"
                     "\"part\":0,\"parts\":1,\"conns\":%s}",
                     conns);
    cr_assert(n > 0 && (size_t)n < sizeof(json));
    cr_assert_eq(parse(json, (size_t)n, r), NT_OK, "%s", json);
}

Test(presence_codec, bad_snapshot_entries_are_skipped_and_counted_not_the_part)
{
    presence_report r;
    parse_snapshot("[1,{\"conn\":\"1\",\"user_id\":\"u\"},{\"conn\":\"x\"},"
                   "{\"conn\":\"2\",\"user_id\":\"bad.user\"},"
                   "{\"conn\":\"3\",\"user_id\":\"v\",\"joins\":{}}]",
                   &r);
    cr_assert_eq(r.nconns, 1);
    cr_assert_str_eq(r.conns[0].conn, "1");
    cr_assert_eq(r.bad_entries, 4);
    presence_report_free(&r);

    /* A bad join costs that join only. */
    parse_snapshot("[{\"conn\":\"1\",\"user_id\":\"u\",\"joins\":[{\"room_id\":\"r\",\"meta\":" META
                   "},{\"room_id\":\"r\"},{\"room_id\":\"r.x\",\"meta\":" META "}]}]",
                   &r);
    cr_assert_eq(r.nconns, 1);
    cr_assert_eq(r.conns[0].njoins, 1);
    cr_assert_eq(r.bad_entries, 2);
    presence_report_free(&r);
}

Test(presence_codec, user_ids_are_printable_ascii_without_space_dot_star_or_gt)
{
    cr_assert(presence_user_valid("auth0|123"));
    cr_assert(presence_user_valid("a\"b\\c@d:e/f"));
    cr_assert_not(presence_user_valid(""));
    cr_assert_not(presence_user_valid("a b"));
    cr_assert_not(presence_user_valid("a.b"));
    cr_assert_not(presence_user_valid("a*"));
    cr_assert_not(presence_user_valid("a>"));
    cr_assert_not(presence_user_valid("caf\xc3\xa9"));
    char id[PRESENCE_USER_MAX + 2];
    memset(id, 'u', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    cr_assert_not(presence_user_valid(id), "128 characters");
    id[PRESENCE_USER_MAX] = '\0';
    cr_assert(presence_user_valid(id), "127 characters");

    presence_report r;
    const char *s = "{\"edge\":\"" EA
                    "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":\"auth0|123\"}";
    cr_assert_eq(parse(s, strlen(s), &r), NT_OK);
    cr_assert_str_eq(r.user_id, "auth0|123");
    presence_report_free(&r);
}

Test(presence_codec, a_failed_report_still_says_its_edge_and_seq)
{
    presence_report r;
    const char *s = "{\"edge\":\"" EA "\",\"seq\":41,\"type\":\"connect\",\"conn\":\"1\","
                    "\"user_id\":\"a b\"}";
    cr_assert_eq(parse(s, strlen(s), &r), NT_EINVAL);
    cr_assert(r.head_ok);
    cr_assert_str_eq(r.edge, EA);
    cr_assert_eq(r.seq, 41);
    s = "{\"edge\":\"short\",\"seq\":41,\"type\":\"bye\"}";
    cr_assert_eq(parse(s, strlen(s), &r), NT_EINVAL);
    cr_assert_not(r.head_ok);
}
