/* Unit tests of the CORS origin list. */
#include "../../../services/gateway/gw_cors.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

Test(gw_cors, matches_exact_origins_only)
{
    gw_cors *c = NULL;
    char err[256] = "";
    cr_assert_eq(
        gw_cors_create(" https://app.example , http://localhost:5173/,", &c, err, sizeof(err)),
        NT_OK, "%s", err);
    cr_assert_eq(gw_cors_count(c), 2);
    cr_assert(gw_cors_allowed(c, "https://app.example"));
    cr_assert(gw_cors_allowed(c, "http://localhost:5173"), "trailing slash dropped");
    cr_assert_not(gw_cors_allowed(c, "https://app.example.evil"));
    cr_assert_not(gw_cors_allowed(c, "https://evil.app.example"));
    cr_assert_not(gw_cors_allowed(c, "http://app.example"), "scheme matters");
    cr_assert_not(gw_cors_allowed(c, "http://localhost:5174"), "port matters");
    cr_assert_not(gw_cors_allowed(c, "https://app.example/"));
    cr_assert_not(gw_cors_allowed(c, "null"));
    cr_assert_not(gw_cors_allowed(c, ""));
    cr_assert_not(gw_cors_allowed(c, NULL));
    gw_cors_destroy(c);
}

Test(gw_cors, unset_means_no_origin_is_allowed)
{
    gw_cors *c = NULL;
    char err[256];
    cr_assert_eq(gw_cors_create(NULL, &c, err, sizeof(err)), NT_OK);
    cr_assert_eq(gw_cors_count(c), 0);
    cr_assert_not(gw_cors_allowed(c, "https://app.example"));
    gw_cors_destroy(c);
    cr_assert_eq(gw_cors_create("", &c, err, sizeof(err)), NT_OK);
    cr_assert_eq(gw_cors_count(c), 0);
    gw_cors_destroy(c);
    cr_assert_not(gw_cors_allowed(NULL, "https://app.example"));
}

Test(gw_cors, refuses_entries_that_are_not_origins)
{
    const char *bad[] = {
        "app.example", "https://",   "https://app.example/path", "https://user@app.example",
        "*",           "https://a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_cors *c = NULL;
        char err[256] = "";
        cr_assert_eq(gw_cors_create(bad[i], &c, err, sizeof(err)), NT_EINVAL, "%s", bad[i]);
        cr_assert_null(c);
        cr_assert(strncmp(err, "NATTER_CORS_ORIGINS:", 20) == 0, "got '%s'", err);
    }
}

Test(gw_cors, caps_the_number_of_origins)
{
    char list[4096] = "";
    size_t len = 0;
    for (int i = 0; i <= GW_CORS_MAX_ORIGINS; i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "https://a%d.example,", i);
    gw_cors *c = NULL;
    char err[256];
    cr_assert_eq(gw_cors_create(list, &c, err, sizeof(err)), NT_EINVAL);
    cr_assert_null(c);
}
