/* Unit tests of the presence service's entry points pushed through the route
 * table and the report callback, with a recording hand-off and no broker. */
#include "../../../services/presence/presence.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define EA "AAAAAAAAAAAAAAAAAAAAAA"

static presence_ctx ctx;
static size_t handed_trans, handed_leaves;

static void record(void *arg, presence_out *out)
{
    (void)arg;
    handed_trans += out->ntrans;
    handed_leaves += out->nleaves;
    presence_out_free(out);
}

static void setup(void)
{
    memset(&ctx, 0, sizeof(ctx));
    pthread_mutex_init(&ctx.mu, NULL);
    ctx.state = presence_state_create();
    ctx.handoff = record;
    handed_trans = handed_leaves = 0;
}

static void teardown(void)
{
    presence_state_destroy(ctx.state);
    pthread_mutex_destroy(&ctx.mu);
}

TestSuite(presence_handlers, .init = setup, .fini = teardown);

static long call(const char *subject, const char *user, const char *body, char **out)
{
    const nt_route *r = nt_route_find(presence_routes, presence_nroutes, subject);
    cr_assert_not_null(r, "%s", subject);
    nt_request req = {
        .subject = subject, .user = user, .request_id = "rq", .data = body, .len = strlen(body)};
    nt_reply rep = {0};
    nt_buf b;
    nt_buf_init(&b, 1 << 20);
    nt_status st = nt_route_dispatch(r, &ctx, &req, &rep, &b);
    nt_reply_clear(&rep);
    size_t len = 0;
    *out = nt_buf_steal(&b, &len);
    return nt_status_http(st);
}

static void report(const char *json)
{
    presence_on_report(&ctx, json, strlen(json));
}

Test(presence_handlers, get_answers_the_room_state_in_an_envelope)
{
    report("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"join\",\"conn\":\"1\",\"user_id\":\"u1\","
           "\"room_id\":\"r1\",\"meta\":{\"phx_ref\":\"A-1\",\"username\":\"al\",\"online_at\":"
           "\"t\"}}");
    cr_assert_eq(handed_trans, 1);
    char *body = NULL;
    cr_assert_eq(call("chat.presence.get", "u2", "{\"room_id\":\"r1\"}", &body), 200);
    cr_assert_str_eq(body, "{\"data\":{\"room_id\":\"r1\",\"presence\":{\"u1\":{\"metas\":[{"
                           "\"phx_ref\":\"A-1\",\"username\":\"al\",\"online_at\":\"t\"}]}},"
                           "\"edges\":{\"" EA "\":1}}}");
    free(body);
}

Test(presence_handlers, get_and_online_refuse_bad_bodies_and_missing_users)
{
    char *body = NULL;
    cr_assert_eq(call("chat.presence.get", "u", "{\"room_id\":5}", &body), 400);
    free(body);
    cr_assert_eq(call("chat.presence.get", NULL, "{\"room_id\":\"r\"}", &body), 401);
    free(body);
    cr_assert_eq(call("chat.presence.online", "u", "{\"user_ids\":[]}", &body), 400);
    free(body);
}

Test(presence_handlers, online_answers_from_memory)
{
    report("{\"edge\":\"" EA
           "\",\"seq\":1,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":\"u1\"}");
    char *body = NULL;
    cr_assert_eq(call("chat.presence.online", "u", "{\"user_ids\":[\"u1\",\"u9\"]}", &body), 200);
    cr_assert(strstr(body, "\"u1\":{\"online\":true,\"last_seen\":\"") != NULL, "%s", body);
    cr_assert(strstr(body, "\"u9\":{\"online\":false,\"last_seen\":null}") != NULL, "%s", body);
    free(body);
}

Test(presence_handlers, malformed_reports_are_counted_and_change_nothing)
{
    report("");
    report("{");
    report("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"zap\"}");
    report("{\"edge\":\"" EA "\",\"seq\":1,\"type\":\"connect\"}");
    cr_assert_eq(atomic_load(&ctx.bad_reports), 4);
    cr_assert_eq(atomic_load(&ctx.reports), 0);
    cr_assert_eq(handed_trans + handed_leaves, 0);
    report("{\"edge\":\"" EA "\",\"seq\":2,\"type\":\"bye\"}");
    report("{\"edge\":\"" EA "\",\"seq\":2,\"type\":\"bye\"}");
    cr_assert_eq(atomic_load(&ctx.reports), 1);
    cr_assert_eq(atomic_load(&ctx.stale_reports), 1);
}

Test(presence_handlers, a_room_too_large_for_one_reply_is_413)
{
    /* Usernames of 256 characters make each meta about 340 bytes: 3000 joins
     * pass the 900 KB cap. */
    char name[257];
    memset(name, 'n', 256);
    name[256] = '\0';
    char json[1024];
    uint64_t seq = 1;
    for (int c = 0; c < 15; c++) {
        for (int j = 0; j < PRESENCE_CONN_JOINS_MAX; j++) {
            snprintf(json, sizeof(json),
                     "{\"edge\":\"" EA "\",\"seq\":%llu,\"type\":\"join\",\"conn\":\"%d\","
                     "\"user_id\":\"u%d\",\"room_id\":\"big\",\"meta\":{\"phx_ref\":\"" EA
                     "-%d-%d\",\"username\":\"%s\",\"online_at\":\"2026-01-01T00:00:01.000Z\"}}",
                     (unsigned long long)seq++, c, c, c, j, name);
            report(json);
        }
    }
    cr_assert_eq(presence_state_njoins(ctx.state), 3000);
    char *body = NULL;
    cr_assert_eq(call("chat.presence.get", "u", "{\"room_id\":\"big\"}", &body), 413);
    cr_assert(strstr(body, "room presence too large") != NULL, "%s", body);
    free(body);
    cr_assert_eq(call("chat.presence.get", "u", "{\"room_id\":\"small\"}", &body), 200);
    free(body);
}

Test(presence_handlers, a_report_with_an_unusable_user_id_still_keeps_the_edge_heard)
{
    report("{\"edge\":\"" EA
           "\",\"seq\":3,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":\"a b\"}");
    cr_assert_eq(atomic_load(&ctx.bad_reports), 1);
    cr_assert_eq(presence_state_nedges(ctx.state), 1, "the edge was heard");
    report("{\"edge\":\"" EA "\",\"seq\":4,\"type\":\"connect\",\"conn\":\"1\",\"user_id\":"
           "\"auth0|123\"}");
    cr_assert_eq(atomic_load(&ctx.reports), 1);
    cr_assert_eq(presence_state_conns(ctx.state, "auth0|123"), 1);
    char *body = NULL;
    cr_assert_eq(call("chat.presence.online", "u", "{\"user_ids\":[\"auth0|123\"]}", &body), 200);
    cr_assert(strstr(body, "\"auth0|123\":{\"online\":true") != NULL, "%s", body);
    free(body);
}
