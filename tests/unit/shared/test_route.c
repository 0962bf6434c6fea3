/* Unit tests of route dispatch and the reply envelope, with no broker. */
#include "nt_route.h"

#include <criterion/criterion.h>
#include <string.h>

static nt_status echo_user(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)ctx;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "user", req->user);
    cJSON_AddStringToObject(d, "rid", req->request_id);
    nt_reply_set(rep, d);
    return NT_OK;
}

static nt_status refuse(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)ctx;
    (void)req;
    rep->retry_after_ms = 1500;
    return nt_reply_fail(rep, NT_ERATE, "slow down \"%s\"", "now");
}

static nt_status bare_error(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)ctx;
    (void)req;
    (void)rep;
    return NT_ENOTFOUND;
}

static nt_status empty_ok(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)ctx;
    (void)req;
    (void)rep;
    return NT_OK;
}

static const nt_route routes[] = {
    {"echo", "t.echo", echo_user, 16, true, 0},
    {"refuse", "t.refuse", refuse, 1024, false, 0},
    {"bare", "t.bare", bare_error, 1024, false, 0},
    {"empty", "t.empty", empty_ok, 1024, false, 0},
};

static nt_status run(const char *subject, const char *user, const char *body, char **out,
                     nt_reply *rep)
{
    const nt_route *r = nt_route_find(routes, 4, subject);
    cr_assert_not_null(r);
    nt_request req = {subject, user, "rid-1", body, strlen(body)};
    nt_buf b;
    nt_buf_init(&b, 1 << 20);
    memset(rep, 0, sizeof(*rep));
    nt_status st = nt_route_dispatch(r, NULL, &req, rep, &b);
    *out = nt_buf_steal(&b, NULL);
    return st;
}

Test(nt_route, wraps_success_in_data)
{
    char *out;
    nt_reply rep;
    cr_assert_eq(run("t.echo", "user_1", "{}", &out, &rep), NT_OK);
    cr_assert_str_eq(out, "{\"data\":{\"user\":\"user_1\",\"rid\":\"rid-1\"}}");
    free(out);
    nt_reply_clear(&rep);
    cr_assert_eq(run("t.empty", NULL, "", &out, &rep), NT_OK);
    cr_assert_str_eq(out, "{\"data\":{}}");
    free(out);
}

Test(nt_route, wraps_errors_with_code_message_and_retry)
{
    char *out;
    nt_reply rep;
    cr_assert_eq(run("t.refuse", NULL, "{}", &out, &rep), NT_ERATE);
    cr_assert_str_eq(out, "{\"error\":{\"code\":\"rate_limited\",\"message\":\"slow down "
                          "\\\"now\\\"\",\"retry_after_ms\":1500}}");
    cr_assert_eq(rep.retry_after_ms, 1500);
    free(out);
    nt_reply_clear(&rep);
    cr_assert_eq(run("t.bare", NULL, "{}", &out, &rep), NT_ENOTFOUND);
    cr_assert_str_eq(out, "{\"error\":{\"code\":\"not_found\",\"message\":\"not found\"}}");
    cr_assert_str_eq(rep.message, "not found");
    free(out);
}

Test(nt_route, enforces_body_cap_and_user_before_the_handler)
{
    char *out;
    nt_reply rep;
    cr_assert_eq(run("t.echo", "user_1", "{\"x\":\"0123456789\"}", &out, &rep), NT_ETOOBIG);
    cr_assert(strstr(out, "\"code\":\"too_large\"") != NULL, "%s", out);
    free(out);
    cr_assert_eq(run("t.echo", NULL, "{}", &out, &rep), NT_EUNAUTH);
    cr_assert(strstr(out, "Chat-User") != NULL, "%s", out);
    free(out);
    cr_assert_eq(run("t.echo", "", "{}", &out, &rep), NT_EUNAUTH);
    free(out);
    cr_assert_null(nt_route_find(routes, 4, "t.nope"));
}

static nt_status long_field(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)ctx;
    (void)req;
    /* 63 'a' then a two-byte character: %.64s cuts it in half. */
    return nt_reply_fail(rep, NT_EINVAL, "unknown field '%.64s'",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
}

Test(nt_route, error_messages_stay_valid_utf8)
{
    static const nt_route r = {"long", "t.long", long_field, 1024, false, 0};
    nt_request req = {"t.long", NULL, "rid", "{}", 2};
    nt_reply rep;
    memset(&rep, 0, sizeof(rep));
    nt_buf b;
    nt_buf_init(&b, 1 << 16);
    cr_assert_eq(nt_route_dispatch(&r, NULL, &req, &rep, &b), NT_EINVAL);
    cr_assert(nt_utf8_valid(b.data, b.len), "%s", b.data);
    cr_assert(nt_utf8_valid(rep.message, strlen(rep.message)));
    nt_buf_free(&b);
    nt_buf_init(&b, 1 << 16);
    nt_envelope_error(&b, NT_EINVAL, "bad \xff byte", 0);
    cr_assert(nt_utf8_valid(b.data, b.len), "%s", b.data);
    nt_buf_free(&b);
}
