/* Unit tests of the presence service's merged state (presence_state): every
 * merging rule of the presence contract, fed with reports parsed by the real
 * codec, with no broker and no clock. */
#include "../../../services/presence/presence_codec.h"
#include "../../../services/presence/presence_state.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EA  "AAAAAAAAAAAAAAAAAAAAAA"
#define EB  "BBBBBBBBBBBBBBBBBBBBBB"
#define NOW "2026-01-02T03:04:05.678Z"
#define T1  "2026-01-01T00:00:01.000Z"
#define T2  "2026-01-01T00:00:02.000Z"

static presence_state *st;
static presence_out out;

static void setup(void)
{
    st = presence_state_create();
    memset(&out, 0, sizeof(out));
}

static void teardown(void)
{
    presence_out_free(&out);
    presence_state_destroy(st);
}

TestSuite(presence_state, .init = setup, .fini = teardown);

/* Applies the report printed from fmt at mono time mono; returns the status. */
static nt_status apply_at(int64_t mono, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static nt_status apply_at(int64_t mono, const char *fmt, ...)
{
    char json[8192], err[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(json));
    presence_report r;
    cr_assert_eq(presence_report_parse(json, (size_t)n, &r, err, sizeof(err)), NT_OK, "%s: %s",
                 json, err);
    nt_status s = presence_state_apply(st, &r, mono, NOW, &out);
    presence_report_free(&r);
    return s;
}

#define META(ref, user, at)                                                                        \
    "{\"phx_ref\":\"" ref "\",\"username\":\"" user "\",\"online_at\":\"" at "\"}"

static void connect(const char *edge, uint64_t seq, const char *conn, const char *user)
{
    cr_assert_eq(apply_at(0,
                          "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"connect\",\"conn\":\"%s\","
                          "\"user_id\":\"%s\"}",
                          edge, (unsigned long long)seq, conn, user),
                 NT_OK);
}

static void disconnect(const char *edge, uint64_t seq, const char *conn, const char *user)
{
    cr_assert_eq(apply_at(0,
                          "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"disconnect\",\"conn\":\"%s\","
                          "\"user_id\":\"%s\"}",
                          edge, (unsigned long long)seq, conn, user),
                 NT_OK);
}

static void join(const char *edge, uint64_t seq, const char *conn, const char *user,
                 const char *room, const char *meta)
{
    cr_assert_eq(apply_at(0,
                          "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"join\",\"conn\":\"%s\","
                          "\"user_id\":\"%s\",\"room_id\":\"%s\",\"meta\":%s}",
                          edge, (unsigned long long)seq, conn, user, room, meta),
                 NT_OK);
}

static void leave(const char *edge, uint64_t seq, const char *conn, const char *user,
                  const char *room, const char *ref)
{
    cr_assert_eq(apply_at(0,
                          "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"leave\",\"conn\":\"%s\","
                          "\"user_id\":\"%s\",\"room_id\":\"%s\",\"phx_ref\":\"%s\"}",
                          edge, (unsigned long long)seq, conn, user, room, ref),
                 NT_OK);
}

static void snapshot(int64_t mono, const char *edge, uint64_t seq, uint64_t round, int part,
                     int parts, const char *conns)
{
    cr_assert_eq(apply_at(mono,
                          "{\"edge\":\"%s\",\"seq\":%llu,\"type\":\"snapshot\",\"round\":%llu,"
                          "\"part\":%d,\"parts\":%d,\"conns\":%s}",
                          edge, (unsigned long long)seq, (unsigned long long)round, part, parts,
                          conns),
                 NT_OK);
}

static void expect_get(const char *room, const char *want)
{
    size_t len = 0;
    char *json = NULL;
    cr_assert_eq(presence_state_get_json(st, room, PRESENCE_GET_MAX, &json, &len), NT_OK);
    cr_assert_str_eq(json, want);
    cr_assert_eq(len, strlen(want));
    free(json);
}

static void expect_transitions(size_t n)
{
    cr_assert_eq(out.ntrans, n, "want %zu transitions, got %zu", n, out.ntrans);
}

static void expect_transition(size_t i, const char *user, bool online)
{
    cr_assert(i < out.ntrans);
    cr_assert_str_eq(out.trans[i].user_id, user);
    cr_assert_eq(out.trans[i].online, online, "%s", user);
    cr_assert_str_eq(out.trans[i].last_seen, NOW);
}

static void clear_out(void)
{
    presence_out_free(&out);
}

Test(presence_state, first_connection_anywhere_brings_a_user_online_and_the_last_takes_them_off)
{
    connect(EA, 1, "1", "u1");
    expect_transitions(1);
    expect_transition(0, "u1", true);
    clear_out();
    connect(EB, 1, "7", "u1");
    expect_transitions(0);
    cr_assert_eq(presence_state_conns(st, "u1"), 2);
    disconnect(EA, 2, "1", "u1");
    expect_transitions(0);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    disconnect(EB, 2, "7", "u1");
    expect_transitions(1);
    expect_transition(0, "u1", false);
    cr_assert_eq(presence_state_conns(st, "u1"), 0);
    cr_assert_eq(out.nleaves, 0, "the edge announced these itself");
}

Test(presence_state, a_second_tab_adds_a_meta_and_closing_it_removes_only_that_meta)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    connect(EA, 3, "2", "u1");
    join(EA, 4, "2", "u1", "r1", META("A-2", "alice", T2));
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{\"u1\":{\"metas\":[" META(
                         "A-1", "alice", T1) "," META("A-2", "alice", T2) "]}},\"edges\":{\"" EA
                                                                          "\":4}}");
    leave(EA, 6, "2", "u1", "r1", "A-2");
    disconnect(EA, 7, "2", "u1");
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{\"u1\":{\"metas\":[" META(
                         "A-1", "alice", T1) "]}},\"edges\":{\"" EA "\":7}}");
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    expect_transitions(1); /* only the first connect */
    cr_assert_eq(out.nleaves, 0);
}

Test(presence_state, a_disconnect_ends_every_join_of_the_connection)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    join(EA, 3, "1", "u1", "r2", META("A-2", "alice", T1));
    cr_assert_eq(presence_state_njoins(st), 2);
    disconnect(EA, 5, "1", "u1");
    cr_assert_eq(presence_state_njoins(st), 0);
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{},\"edges\":{\"" EA "\":5}}");
    expect_get("r2", "{\"room_id\":\"r2\",\"presence\":{},\"edges\":{\"" EA "\":5}}");
    cr_assert_eq(out.nleaves, 0, "the edge publishes these leaves itself");
}

Test(presence_state, get_of_an_unknown_room_is_empty_and_byte_exact)
{
    expect_get("r9", "{\"room_id\":\"r9\",\"presence\":{},\"edges\":{}}");
}

Test(presence_state, get_orders_users_by_id_and_metas_by_online_at_then_phx_ref)
{
    connect(EA, 1, "1", "zed");
    join(EA, 2, "1", "zed", "r1", META("A-9", "z", T2));
    connect(EA, 3, "2", "amy");
    join(EA, 4, "2", "amy", "r1", META("A-5", "a", T2));
    connect(EB, 1, "1", "amy");
    join(EB, 2, "1", "amy", "r1", META("B-1", "a", T1));
    connect(EB, 3, "2", "amy");
    join(EB, 4, "2", "amy", "r1", META("B-0", "a", T2));
    expect_get(
        "r1",
        "{\"room_id\":\"r1\",\"presence\":{\"amy\":{\"metas\":[" META("B-1", "a", T1) "," META(
            "A-5", "a", T2) "," META("B-0", "a",
                                     T2) "]},\"zed\":{\"metas\":[" META("A-9", "z",
                                                                        T2) "]}},\"edges\":{\"" EA
                                                                            "\":4,\"" EB "\":4}}");
}

Test(presence_state, a_join_whose_connect_was_lost_still_counts_the_connection)
{
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    expect_transitions(1);
    expect_transition(0, "u1", true);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
}

Test(presence_state, a_leave_with_another_phx_ref_removes_nothing)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    leave(EA, 3, "1", "u1", "r1", "A-7");
    leave(EA, 4, "9", "u1", "r1", "A-1");
    cr_assert_eq(presence_state_njoins(st), 1);
}

Test(presence_state, reports_at_or_below_the_last_seq_are_ignored)
{
    connect(EA, 5, "1", "u1");
    cr_assert_eq(apply_at(0,
                          "{\"edge\":\"" EA "\",\"seq\":5,\"type\":\"disconnect\",\"conn\":\"1\","
                          "\"user_id\":\"u1\"}"),
                 NT_ECONFLICT);
    cr_assert_eq(apply_at(0,
                          "{\"edge\":\"" EA "\",\"seq\":4,\"type\":\"disconnect\",\"conn\":\"1\","
                          "\"user_id\":\"u1\"}"),
                 NT_ECONFLICT);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
}

Test(presence_state, a_complete_round_removes_what_the_edge_lost_and_publishes_its_leaves)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    join(EA, 3, "1", "u1", "r2", META("A-2", "alice", T1));
    connect(EA, 4, "2", "u2");
    join(EA, 5, "2", "u2", "r1", META("A-3", "bob", T1));
    clear_out();
    /* The leave of r1 by u1 and the whole of conn 2 were lost. */
    snapshot(0, EA, 10, 3, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r2\",\"meta\":" META(
                 "A-2", "alice", T1) "}]}]");
    expect_transitions(1);
    expect_transition(0, "u2", false);
    cr_assert_eq(out.nleaves, 1, "one diff for r1");
    cr_assert_str_eq(out.leaves[0].claim, EA "-3");
    cr_assert_str_eq(out.leaves[0].room_id, "r1");
    cr_assert_str_eq(
        out.leaves[0].json,
        "{\"joins\":{},\"leaves\":{\"u1\":{\"metas\":[" META(
            "A-1", "alice", T1) "]},\"u2\":{\"metas\":[" META("A-3", "bob", T1) "]}}}");
    cr_assert_eq(out.leaves[0].len, strlen(out.leaves[0].json));
    cr_assert_eq(presence_state_njoins(st), 1);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
}

Test(presence_state, a_round_adds_what_it_reports_and_keeps_what_later_parts_report)
{
    connect(EA, 1, "1", "u1");
    clear_out();
    snapshot(0, EA, 10, 1, 0, 2,
             "[{\"conn\":\"2\",\"user_id\":\"u2\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
                 "A-9", "bob", T1) "}]}]");
    expect_transitions(1);
    expect_transition(0, "u2", true);
    cr_assert_eq(presence_state_conns(st, "u1"), 1, "not reconciled before the last part");
    snapshot(0, EA, 11, 1, 1, 2, "[{\"conn\":\"3\",\"user_id\":\"u3\"}]");
    /* conn 1 (seq 1 < S0 10) was in neither part: gone; 2 and 3 stay. */
    cr_assert_eq(presence_state_conns(st, "u1"), 0);
    cr_assert_eq(presence_state_conns(st, "u2"), 1);
    cr_assert_eq(presence_state_conns(st, "u3"), 1);
    cr_assert_eq(presence_state_njoins(st), 1);
    cr_assert_eq(out.nleaves, 0, "conn 1 had no joins");
    /* A join reported after the round is not touched by it. */
    join(EA, 12, "3", "u3", "r1", META("A-10", "carol", T2));
    cr_assert_eq(presence_state_njoins(st), 2);
    snapshot(0, EA, 14, 2, 0, 1,
             "[{\"conn\":\"2\",\"user_id\":\"u2\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
                 "A-9", "bob", T1) "}]},{\"conn\":\"3\",\"user_id\":\"u3\",\"joins\":[{\"room_"
                                   "id\":\"r1\",\"meta\":" META("A-10", "carol", T2) "}]}]");
    cr_assert_eq(presence_state_njoins(st), 2);
}

Test(presence_state, an_incomplete_round_reconciles_nothing)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    clear_out();
    /* Part 1 is missing: the next part seen has a gap in seq. */
    snapshot(0, EA, 10, 1, 0, 2, "[]");
    snapshot(0, EA, 12, 1, 1, 2, "[]");
    /* A part of another round, and a part 1 without its part 0. */
    snapshot(0, EA, 20, 2, 1, 2, "[]");
    snapshot(0, EA, 30, 3, 0, 2, "[]");
    snapshot(0, EA, 31, 4, 1, 2, "[]");
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    cr_assert_eq(presence_state_njoins(st), 1);
    expect_transitions(0);
    cr_assert_eq(out.nleaves, 0);
    /* A complete round afterwards does reconcile. */
    snapshot(0, EA, 40, 5, 0, 1, "[]");
    cr_assert_eq(presence_state_conns(st, "u1"), 0);
    cr_assert_eq(out.nleaves, 1);
    cr_assert_str_eq(out.leaves[0].claim, EA "-5");
}

Test(presence_state, an_empty_snapshot_is_a_heartbeat_that_keeps_the_edge_alive)
{
    snapshot(1000, EA, 1, 1, 0, 1, "[]");
    cr_assert_eq(presence_state_nedges(st), 1);
    snapshot(20000, EA, 2, 2, 0, 1, "[{\"conn\":\"1\",\"user_id\":\"u1\"}]");
    cr_assert_eq(presence_state_sweep(st, 49000, 30000, NOW, &out), 0);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
}

Test(presence_state, an_edge_silent_past_the_timeout_loses_its_users_and_not_before)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    connect(EB, 1, "1", "u2");
    connect(EA, 3, "2", "u2");
    snapshot(1000, EA, 4, 1, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
                 "A-1", "alice", T1) "}]},{\"conn\":\"2\",\"user_id\":\"u2\"}]");
    snapshot(30000, EB, 2, 1, 0, 1, "[{\"conn\":\"1\",\"user_id\":\"u2\"}]");
    clear_out();
    cr_assert_eq(presence_state_sweep(st, 31000, 30000, NOW, &out), 0, "exactly the timeout");
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    cr_assert_eq(presence_state_sweep(st, 31001, 30000, NOW, &out), 1);
    cr_assert_eq(presence_state_conns(st, "u1"), 0);
    cr_assert_eq(presence_state_conns(st, "u2"), 1, "u2 is still on edge B");
    expect_transitions(1);
    expect_transition(0, "u1", false);
    cr_assert_eq(out.nleaves, 1);
    cr_assert_str_eq(out.leaves[0].claim, EA "-gone-4");
    cr_assert_str_eq(out.leaves[0].room_id, "r1");
    cr_assert_str_eq(out.leaves[0].json, "{\"joins\":{},\"leaves\":{\"u1\":{\"metas\":[" META(
                                             "A-1", "alice", T1) "]}}}");
    cr_assert_eq(presence_state_nedges(st), 1);
    /* The removed edge's seq is still reported. */
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{},\"edges\":{\"" EA "\":4,\"" EB "\":2}}");
}

Test(presence_state, removed_edges_are_forgotten_after_ten_minutes)
{
    snapshot(0, EA, 7, 1, 0, 1, "[]");
    presence_state_sweep(st, 30001, 30000, NOW, &out);
    cr_assert_eq(presence_state_nedges(st), 0);
    presence_state_sweep(st, 30001 + PRESENCE_EDGE_FORGET_MS, 30000, NOW, &out);
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{},\"edges\":{\"" EA "\":7}}");
    presence_state_sweep(st, 30002 + PRESENCE_EDGE_FORGET_MS, 30000, NOW, &out);
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{},\"edges\":{}}");
}

Test(presence_state, a_removed_edge_that_reports_again_comes_back)
{
    connect(EA, 1, "1", "u1");
    presence_state_sweep(st, 30001, 30000, NOW, &out);
    cr_assert_eq(presence_state_conns(st, "u1"), 0);
    cr_assert_eq(apply_at(40000,
                          "{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\","
                          "\"user_id\":\"u1\"}"),
                 NT_ECONFLICT, "its seq is remembered");
    cr_assert_eq(apply_at(40000,
                          "{\"edge\":\"" EA "\",\"seq\":2,\"type\":\"connect\",\"conn\":\"1\","
                          "\"user_id\":\"u1\"}"),
                 NT_OK);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    cr_assert_eq(presence_state_nedges(st), 1);
}

Test(presence_state, bye_removes_the_edge_at_once)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    join(EA, 3, "1", "u1", "r2", META("A-2", "alice", T1));
    clear_out();
    cr_assert_eq(apply_at(5, "{\"edge\":\"" EA "\",\"seq\":9,\"type\":\"bye\"}"), NT_OK);
    expect_transitions(1);
    expect_transition(0, "u1", false);
    cr_assert_eq(out.nleaves, 2);
    cr_assert_str_eq(out.leaves[0].room_id, "r1");
    cr_assert_str_eq(out.leaves[1].room_id, "r2");
    cr_assert_str_eq(out.leaves[0].claim, EA "-gone-9");
    cr_assert_str_eq(out.leaves[1].claim, EA "-gone-9");
    cr_assert_eq(presence_state_nedges(st), 0);
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{},\"edges\":{\"" EA "\":9}}");
}

Test(presence_state, online_reply_says_now_for_online_users_and_null_for_unknown_ones)
{
    connect(EA, 1, "1", "u1");
    connect(EA, 2, "2", "u2");
    disconnect(EA, 3, "2", "u2");
    char *ids[] = {"u1", "u2", "u3"};
    size_t len = 0;
    char *json = NULL;
    cr_assert_eq(presence_state_online_json(st, ids, 3, "2030-01-01T00:00:00.000Z",
                                            PRESENCE_GET_MAX, &json, &len),
                 NT_OK);
    cr_assert_str_eq(json, "{\"users\":{\"u1\":{\"online\":true,\"last_seen\":\"2030-01-01T00:"
                           "00:00.000Z\"},\"u2\":{\"online\":false,\"last_seen\":\"" NOW
                           "\"},\"u3\":{\"online\":false,\"last_seen\":null}}}");
    cr_assert_eq(len, strlen(json));
    free(json);
}

Test(presence_state, warm_up_end_sets_offline_the_seeded_users_no_edge_reports)
{
    presence_state_seed(st, "gone", true, "2025-01-01T00:00:00.000Z");
    presence_state_seed(st, "back", true, "2025-01-01T00:00:00.000Z");
    presence_state_seed(st, "off", false, "2024-01-01T00:00:00.000Z");
    connect(EA, 1, "1", "back");
    expect_transition(0, "back", true);
    clear_out();
    char *ids[] = {"gone", "off"};
    size_t len = 0;
    char *json = NULL;
    cr_assert_eq(presence_state_online_json(st, ids, 2, NOW, PRESENCE_GET_MAX, &json, &len), NT_OK);
    cr_assert_str_eq(json, "{\"users\":{\"gone\":{\"online\":false,\"last_seen\":\"2025-01-01T00:"
                           "00:00.000Z\"},\"off\":{\"online\":false,\"last_seen\":\"2024-01-01T00:"
                           "00:00.000Z\"}}}");
    free(json);
    presence_state_warmup_end(st, NOW, &out);
    expect_transitions(1);
    expect_transition(0, "gone", false);
    clear_out();
    presence_state_warmup_end(st, NOW, &out);
    expect_transitions(0);
    /* A seed after the warm-up decides nothing. */
    presence_state_seed(st, "late", true, "");
    presence_state_warmup_end(st, NOW, &out);
    expect_transitions(0);
}

Test(presence_state, a_seed_does_not_override_a_user_already_connected)
{
    connect(EA, 1, "1", "u1");
    presence_state_seed(st, "u1", false, "2020-01-01T00:00:00.000Z");
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    clear_out();
    disconnect(EA, 2, "1", "u1");
    char *ids[] = {"u1"};
    size_t len = 0;
    char *json = NULL;
    cr_assert_eq(presence_state_online_json(st, ids, 1, "x", PRESENCE_GET_MAX, &json, &len), NT_OK);
    cr_assert_str_eq(json, "{\"users\":{\"u1\":{\"online\":false,\"last_seen\":\"" NOW "\"}}}");
    free(json);
}

Test(presence_state, online_users_lists_users_with_a_connection)
{
    connect(EA, 1, "1", "u1");
    connect(EB, 1, "1", "u2");
    connect(EB, 2, "2", "u3");
    disconnect(EB, 3, "2", "u3");
    size_t n = 0;
    char **ids = presence_state_online_users(st, &n);
    cr_assert_eq(n, 2);
    bool u1 = false, u2 = false;
    for (size_t i = 0; i < n; i++) {
        u1 |= strcmp(ids[i], "u1") == 0;
        u2 |= strcmp(ids[i], "u2") == 0;
    }
    cr_assert(u1 && u2);
    presence_ids_free(ids, n);
    cr_assert_eq(presence_state_nconns(st), 2);
}

Test(presence_state, many_connections_and_rooms_come_and_go_cleanly)
{
    uint64_t seq = 1;
    for (int i = 0; i < 500; i++) {
        char conn[16], user[16], room[16], meta[200];
        snprintf(conn, sizeof(conn), "%d", i);
        snprintf(user, sizeof(user), "u%d", i % 50);
        snprintf(room, sizeof(room), "r%d", i % 7);
        snprintf(meta, sizeof(meta),
                 "{\"phx_ref\":\"A-%d\",\"username\":\"x\",\"online_at\":\"%s\"}", i, T1);
        connect(EA, seq++, conn, user);
        join(EA, seq++, conn, user, room, meta);
    }
    cr_assert_eq(presence_state_nconns(st), 500);
    cr_assert_eq(presence_state_njoins(st), 500);
    expect_transitions(50);
    clear_out();
    cr_assert_eq(
        apply_at(0, "{\"edge\":\"" EA "\",\"seq\":%llu,\"type\":\"bye\"}", (unsigned long long)seq),
        NT_OK);
    expect_transitions(50);
    cr_assert_eq(out.nleaves, 7);
    cr_assert_eq(presence_state_nconns(st), 0);
    cr_assert_eq(presence_state_njoins(st), 0);
}

Test(presence_state, after_a_gap_every_edge_counts_as_heard)
{
    connect(EA, 1, "1", "u1");
    /* This instance heard nothing for 40 s because of its own outage. */
    presence_state_touch_all(st, 40000);
    cr_assert_eq(presence_state_sweep(st, 60000, 30000, NOW, &out), 0);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    cr_assert_eq(presence_state_sweep(st, 70001, 30000, NOW, &out), 1, "then silence counts");
}

Test(presence_state, a_report_that_fails_to_parse_still_keeps_its_edge_alive)
{
    connect(EA, 1, "1", "u1");
    cr_assert_eq(presence_state_touch(st, EA, 5, 25000), NT_OK);
    cr_assert_eq(presence_state_sweep(st, 31000, 30000, NOW, &out), 0);
    cr_assert_eq(presence_state_conns(st, "u1"), 1);
    cr_assert_eq(apply_at(31000,
                          "{\"edge\":\"" EA "\",\"seq\":5,\"type\":\"connect\",\"conn\":\"2\","
                          "\"user_id\":\"u2\"}"),
                 NT_ECONFLICT, "its seq was taken");
}

Test(presence_state, a_bad_snapshot_entry_is_skipped_and_the_rest_of_the_part_applies)
{
    connect(EA, 1, "1", "u1");
    clear_out();
    snapshot(10, EA, 2, 1, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\"},{\"conn\":\"2\",\"user_id\":\"no.dots\"},"
             "{\"conn\":\"3\",\"user_id\":\"auth0|7\"}]");
    cr_assert_eq(presence_state_conns(st, "u1"), 1, "not reconciled away");
    cr_assert_eq(presence_state_conns(st, "auth0|7"), 1);
    cr_assert_eq(presence_state_nconns(st), 2);
    expect_transitions(1);
    expect_transition(0, "auth0|7", true);
}

Test(presence_state, user_ids_with_quotes_are_escaped_in_replies)
{
    connect(EA, 1, "1", "a\\\"b");
    join(EA, 2, "1", "a\\\"b", "r1", META("A-1", "q", T1));
    expect_get("r1", "{\"room_id\":\"r1\",\"presence\":{\"a\\\"b\":{\"metas\":[" META(
                         "A-1", "q", T1) "]}},\"edges\":{\"" EA "\":2}}");
    char *ids[] = {"a\"b"};
    size_t len = 0;
    char *json = NULL;
    cr_assert_eq(presence_state_online_json(st, ids, 1, NOW, PRESENCE_GET_MAX, &json, &len), NT_OK);
    cr_assert_str_eq(json, "{\"users\":{\"a\\\"b\":{\"online\":true,\"last_seen\":\"" NOW "\"}}}");
    free(json);
}

Test(presence_state, a_revived_edge_announces_the_joins_its_snapshot_brings_back)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    clear_out();
    cr_assert_eq(presence_state_sweep(st, 30001, 30000, NOW, &out), 1);
    cr_assert_eq(out.nleaves, 1);
    cr_assert_str_eq(out.leaves[0].claim, EA "-gone-2");
    clear_out();
    /* The edge was only cut off: its next snapshot has the same join. No
     * warm-up end here: a revived edge's joins go out regardless. */
    snapshot(31000, EA, 5, 3, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
                 "A-1", "alice", T1) "}]}]");
    expect_transitions(1);
    expect_transition(0, "u1", true);
    cr_assert_eq(out.nleaves, 1);
    cr_assert_str_eq(out.leaves[0].claim, EA "-add-5");
    cr_assert_str_eq(out.leaves[0].room_id, "r1");
    cr_assert_str_eq(out.leaves[0].json, "{\"joins\":{\"u1\":{\"metas\":[" META(
                                             "A-1", "alice", T1) "]}},\"leaves\":{}}");
    clear_out();
    /* The next heartbeat announces nothing more. */
    snapshot(32000, EA, 6, 4, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
                 "A-1", "alice", T1) "}]}]");
    cr_assert_eq(out.nleaves, 0);
    /* A second death has its own claim, so it is published again. */
    cr_assert_eq(presence_state_sweep(st, 62001, 30000, NOW, &out), 1);
    cr_assert_eq(out.nleaves, 1);
    cr_assert_str_eq(out.leaves[0].claim, EA "-gone-6");
}

Test(presence_state, after_the_warm_up_a_round_announces_joins_no_report_had)
{
    /* During the warm-up (a fresh start) a round adds joins quietly. */
    snapshot(0, EA, 2, 1, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
                 "A-1", "alice", T1) "}]}]");
    cr_assert_eq(out.nleaves, 0);
    presence_state_warmup_end(st, NOW, &out);
    clear_out();
    /* The join report of A-2 was lost; the next round has it. */
    snapshot(
        0, EA, 5, 2, 0, 1,
        "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r1\",\"meta\":" META(
            "A-1", "alice", T1) "},{\"room_id\":\"r2\",\"meta\":" META("A-2", "alice", T2) "}]}]");
    cr_assert_eq(out.nleaves, 1);
    cr_assert_str_eq(out.leaves[0].claim, EA "-add-5");
    cr_assert_str_eq(out.leaves[0].room_id, "r2");
    clear_out();
    /* A join announced by its report is not announced again. */
    join(EA, 6, "1", "u1", "r3", META("A-3", "alice", T2));
    snapshot(0, EA, 8, 3, 0, 1,
             "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r3\",\"meta\":" META(
                 "A-3", "alice", T2) "}]}]");
    cr_assert_eq(out.nleaves, 2, "only the leaves of A-1 and A-2");
    cr_assert_str_eq(out.leaves[0].claim, EA "-3");
    /* After a gap the warm-up is back: quiet again. */
    presence_state_warmup_restart(st);
    clear_out();
    snapshot(
        0, EA, 9, 4, 0, 1,
        "[{\"conn\":\"1\",\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"r3\",\"meta\":" META(
            "A-3", "alice", T2) "},{\"room_id\":\"r4\",\"meta\":" META("A-4", "alice", T2) "}]}]");
    cr_assert_eq(out.nleaves, 0);
}

Test(presence_state, joins_past_the_cap_of_one_connection_are_dropped_and_counted)
{
    connect(EA, 1, "1", "u1");
    for (int i = 0; i < PRESENCE_CONN_JOINS_MAX + 3; i++) {
        char room_id[32];
        snprintf(room_id, sizeof(room_id), "r%d", i);
        join(EA, (uint64_t)i + 2, "1", "u1", room_id, META("A-1", "alice", T1));
    }
    cr_assert_eq(presence_state_njoins(st), PRESENCE_CONN_JOINS_MAX);
    cr_assert_eq(out.dropped_joins, 3);
}

Test(presence_state, reports_of_edges_past_the_cap_are_refused)
{
    char edge[PRESENCE_EDGE_LEN + 1];
    for (int i = 0; i < PRESENCE_EDGES_MAX; i++) {
        snprintf(edge, sizeof(edge), "E%021d", i);
        cr_assert_eq(apply_at(0, "{\"edge\":\"%s\",\"seq\":1,\"type\":\"bye\"}", edge), NT_OK);
    }
    snprintf(edge, sizeof(edge), "E%021d", PRESENCE_EDGES_MAX);
    cr_assert_eq(apply_at(0, "{\"edge\":\"%s\",\"seq\":1,\"type\":\"bye\"}", edge), NT_ETOOBIG);
    cr_assert_eq(presence_state_touch(st, edge, 1, 0), NT_ETOOBIG);
    /* Known edges still report; forgotten ones make room. */
    snprintf(edge, sizeof(edge), "E%021d", 7);
    cr_assert_eq(apply_at(0, "{\"edge\":\"%s\",\"seq\":2,\"type\":\"bye\"}", edge), NT_OK);
    presence_state_sweep(st, PRESENCE_EDGE_FORGET_MS + 1, 30000, NOW, &out);
    snprintf(edge, sizeof(edge), "E%021d", PRESENCE_EDGES_MAX);
    cr_assert_eq(apply_at(0, "{\"edge\":\"%s\",\"seq\":1,\"type\":\"bye\"}", edge), NT_OK);
}

Test(presence_state, a_get_reply_past_its_cap_is_refused_not_truncated)
{
    connect(EA, 1, "1", "u1");
    join(EA, 2, "1", "u1", "r1", META("A-1", "alice", T1));
    char *json = NULL;
    size_t len = 0;
    cr_assert_eq(presence_state_get_json(st, "r1", 64, &json, &len), NT_ETOOBIG);
    cr_assert_null(json);
    cr_assert_eq(presence_state_get_json(st, "r1", 4096, &json, &len), NT_OK);
    free(json);
}

Test(presence_state, a_room_too_crowded_for_the_cap_is_refused_by_its_count)
{
    connect(EA, 1, "1", "u1");
    uint64_t seq = 2;
    for (int i = 0; i < 50; i++) {
        char meta[128];
        snprintf(meta, sizeof(meta),
                 "{\"phx_ref\":\"A-%d\",\"username\":\"a\",\"online_at\":\"%s\"}", i, T1);
        join(EA, seq++, "1", "u1", "r0", meta);
    }
    char *json = NULL;
    size_t len = 0;
    /* 50 joins count as 4500 bytes at least: 4499 is refused without
     * building, 4500 is built (these metas are short, so it fits). */
    cr_assert_eq(presence_state_get_json(st, "r0", 50 * PRESENCE_META_MIN - 1, &json, &len),
                 NT_ETOOBIG);
    cr_assert_null(json);
    cr_assert_eq(presence_state_get_json(st, "r0", 50 * PRESENCE_META_MIN, &json, &len), NT_OK);
    free(json);
}

Test(presence_state, users_without_connections_are_forgotten_after_ten_minutes)
{
    connect(EA, 1, "1", "u1");
    connect(EA, 2, "2", "u2");
    disconnect(EA, 3, "1", "u1");
    presence_state_sweep(st, 1000, 1000000, NOW, &out);
    cr_assert_eq(presence_state_nusers(st), 2);
    presence_state_sweep(st, 1000 + PRESENCE_USER_FORGET_MS, 1000000, NOW, &out);
    cr_assert_eq(presence_state_nusers(st), 2, "exactly ten minutes");
    presence_state_sweep(st, 1001 + PRESENCE_USER_FORGET_MS, 1000000, NOW, &out);
    cr_assert_eq(presence_state_nusers(st), 1, "u2 is still connected");
    char *ids[] = {"u1"};
    size_t len = 0;
    char *json = NULL;
    cr_assert_eq(presence_state_online_json(st, ids, 1, NOW, PRESENCE_GET_MAX, &json, &len), NT_OK);
    cr_assert_str_eq(json, "{\"users\":{\"u1\":{\"online\":false,\"last_seen\":null}}}");
    free(json);
}
