/* Unit tests of the request body merge and the Content-Type check. */
#include "../../../services/gateway/gw_body.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *build(const char *body, const gw_kv *q, size_t nq, const gw_kv *p, size_t np,
                   nt_status want, char *err)
{
    char *out = NULL;
    size_t len = 0;
    err[0] = '\0';
    nt_status st = gw_body_build(body, body ? strlen(body) : 0, q, nq, p, np, &out, &len, err, 256);
    cr_assert_eq(st, want, "status %d, err '%s'", st, err);
    if (st == NT_OK)
        cr_assert_eq(len, strlen(out));
    return out;
}

Test(gw_body, empty_body_is_an_empty_object)
{
    char err[256];
    char *out = build(NULL, NULL, 0, NULL, 0, NT_OK, err);
    cr_assert_str_eq(out, "{}");
    free(out);
    out = build("  \n", NULL, 0, NULL, 0, NT_OK, err);
    cr_assert_str_eq(out, "{}");
    free(out);
}

Test(gw_body, path_params_win_over_query_and_body)
{
    char err[256];
    gw_kv q[] = {{"room_id", "from-query"}, {"limit", "20"}};
    gw_kv p[] = {{"room_id", "from-path"}};
    char *out =
        build("{\"room_id\":\"from-body\",\"text\":\"hi\",\"limit\":5}", q, 2, p, 1, NT_OK, err);
    cr_assert_str_eq(out, "{\"room_id\":\"from-path\",\"text\":\"hi\",\"limit\":\"20\"}");
    free(out);
}

Test(gw_body, params_are_strings_and_null_values_are_empty)
{
    char err[256];
    gw_kv q[] = {{"flag", NULL}};
    gw_kv p[] = {{"n", "42"}};
    char *out = build("", q, 1, p, 1, NT_OK, err);
    cr_assert_str_eq(out, "{\"flag\":\"\",\"n\":\"42\"}");
    free(out);
}

Test(gw_body, invalid_json_names_the_byte)
{
    char err[256];
    cr_assert_null(build("{\"a\": }", NULL, 0, NULL, 0, NT_EINVAL, err));
    cr_assert_str_eq(err, "invalid JSON at byte 6");
    cr_assert_null(build("{\"a\":1} x", NULL, 0, NULL, 0, NT_EINVAL, err));
    cr_assert(strstr(err, "invalid JSON at byte 8") != NULL, "got '%s'", err);
}

Test(gw_body, non_objects_are_refused)
{
    const char *bad[] = {"[1,2]", "\"text\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256];
        cr_assert_null(build(bad[i], NULL, 0, NULL, 0, NT_EINVAL, err));
        cr_assert_str_eq(err, "body must be a JSON object", "body %s", bad[i]);
    }
}

Test(gw_body, invalid_utf8_in_a_parameter_is_refused)
{
    char err[256];
    gw_kv q[] = {{"q", "\xff\xfe"}};
    cr_assert_null(build("{}", q, 1, NULL, 0, NT_EINVAL, err));
    cr_assert_str_eq(err, "parameter 'q' is not valid UTF-8");
    cr_assert_null(build("{\"a\":\"\xc3\"}", NULL, 0, NULL, 0, NT_EINVAL, err));
}

Test(gw_body, content_types)
{
    cr_assert(gw_body_content_type_ok(NULL));
    cr_assert(gw_body_content_type_ok(""));
    cr_assert(gw_body_content_type_ok("application/json"));
    cr_assert(gw_body_content_type_ok("Application/JSON; charset=utf-8"));
    cr_assert(gw_body_content_type_ok("application/merge-patch+json"));
    cr_assert_not(gw_body_content_type_ok("text/plain"));
    cr_assert_not(gw_body_content_type_ok("application/x-www-form-urlencoded"));
    cr_assert_not(gw_body_content_type_ok("application/jsonx"));
    cr_assert_not(gw_body_content_type_ok("text/json+html"));
    cr_assert_not(gw_body_content_type_ok("application/+json"));
    cr_assert_not(gw_body_content_type_ok("multipart/form-data; boundary=x"));
}
