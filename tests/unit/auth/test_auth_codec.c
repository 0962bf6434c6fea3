/* Unit tests of the auth service's pure parts: validation, the profile codec,
 * Clerk's user object, local user ids. */
#include "../../../services/auth/auth.h"

#include <criterion/criterion.h>
#include <string.h>

Test(auth_codec, accepts_and_refuses_emails)
{
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(auth_check_email("a@b.c", err, sizeof(err)), NT_OK);
    cr_assert_eq(auth_check_email("caf\xc3\xa9@example.com", err, sizeof(err)), NT_OK);
    const char *bad[] = {"", "ab", "@b.com", "a@", "a b@c.d", "a@b@c", "a\x01@b.c", "no-at"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(auth_check_email(bad[i], err, sizeof(err)), NT_EINVAL, "%s", bad[i]);
        cr_assert(strstr(err, "'email'") != NULL);
    }
    char longmail[300];
    memset(longmail, 'a', sizeof(longmail));
    memcpy(longmail + 250, "@b.com", 7);
    cr_assert_eq(auth_check_email(longmail, err, sizeof(err)), NT_EINVAL);
}

Test(auth_codec, accepts_only_http_and_https_avatars)
{
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(auth_check_avatar("https://img.example.com/a.png", err, sizeof(err)), NT_OK);
    cr_assert_eq(auth_check_avatar("http://localhost:8080/a", err, sizeof(err)), NT_OK);
    const char *bad[] = {"javascript:alert(1)",        "ftp://x/y",   "https://", "https:///x",
                         "data:image/png;base64,AAAA", "https://a b", "//host/x", "HTTPS://x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(auth_check_avatar(bad[i], err, sizeof(err)), NT_EINVAL, "%s", bad[i]);
    char big[2100] = "https://x/";
    memset(big + 10, 'a', 2060);
    big[2070] = '\0';
    cr_assert_eq(auth_check_avatar(big, err, sizeof(err)), NT_EINVAL);
}

Test(auth_codec, user_ids_have_a_safe_form)
{
    cr_assert(auth_user_id_valid("user_2abcDEF09"));
    cr_assert(auth_user_id_valid("user_local-1"));
    cr_assert_not(auth_user_id_valid(NULL));
    cr_assert_not(auth_user_id_valid(""));
    cr_assert_not(auth_user_id_valid("user/../x"));
    cr_assert_not(auth_user_id_valid("user.x"));
    cr_assert_not(auth_user_id_valid("a b"));
}

Test(auth_codec, profile_round_trips_through_the_cache_form)
{
    auth_profile p;
    memset(&p, 0, sizeof(p));
    strcpy(p.id, "0190f5e2-7b1c-7c3d-8e4f-123456789abc");
    strcpy(p.user_id, "user_1");
    p.username = strdup("Zo\xc3\xab");
    p.email = strdup("z@example.com");
    p.avatar_url = NULL;
    strcpy(p.created_at, "2026-01-01T00:00:00Z");
    strcpy(p.updated_at, "2026-01-02T00:00:00Z");
    cJSON *j = auth_profile_to_json(&p);
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    cr_assert(strstr(s, "\"avatar_url\":null") != NULL, "%s", s);
    auth_profile q;
    cr_assert_eq(auth_profile_from_json(s, strlen(s), &q), NT_OK);
    cr_assert_str_eq(q.username, p.username);
    cr_assert_str_eq(q.user_id, "user_1");
    cr_assert_null(q.avatar_url);
    cr_assert_str_eq(q.updated_at, p.updated_at);
    auth_profile_clear(&q);
    cr_assert_eq(auth_profile_from_json("{\"id\":1}", 8, &q), NT_EINVAL);
    cr_assert_eq(auth_profile_from_json("nope", 4, &q), NT_EINVAL);
    free(s);
    auth_profile_clear(&p);
}

Test(auth_clerk, picks_primary_email_username_and_image)
{
    const char *u = "{\"id\":\"user_1\",\"username\":\"ada\",\"image_url\":\"https://img/x.png\","
                    "\"primary_email_address_id\":\"idn_2\",\"email_addresses\":["
                    "{\"id\":\"idn_1\",\"email_address\":\"old@example.com\"},"
                    "{\"id\":\"idn_2\",\"email_address\":\"ada@example.com\"}]}";
    char *name = NULL, *mail = NULL, *img = NULL;
    cr_assert_eq(auth_clerk_parse_user(u, strlen(u), "user_1", &name, &mail, &img), NT_OK);
    cr_assert_str_eq(name, "ada");
    cr_assert_str_eq(mail, "ada@example.com");
    cr_assert_str_eq(img, "https://img/x.png");
    free(name);
    free(mail);
    free(img);
}

Test(auth_clerk, falls_back_to_names_then_mailbox_then_id)
{
    char *name, *mail, *img;
    const char *a = "{\"username\":null,\"first_name\":\"Ada\",\"last_name\":\"Lovelace\"}";
    cr_assert_eq(auth_clerk_parse_user(a, strlen(a), "user_1", &name, &mail, &img), NT_OK);
    cr_assert_str_eq(name, "Ada Lovelace");
    cr_assert_str_eq(mail, "");
    cr_assert_null(img);
    free(name);
    free(mail);
    const char *b = "{\"email_addresses\":[{\"id\":\"e\",\"email_address\":\"bob@x.io\"}]}";
    cr_assert_eq(auth_clerk_parse_user(b, strlen(b), "user_1", &name, &mail, &img), NT_OK);
    cr_assert_str_eq(name, "bob");
    cr_assert_str_eq(mail, "bob@x.io");
    free(name);
    free(mail);
    cr_assert_eq(auth_clerk_parse_user("{}", 2, "user_9", &name, &mail, &img), NT_OK);
    cr_assert_str_eq(name, "user_9");
    free(name);
    free(mail);
    cr_assert_eq(auth_clerk_parse_user("[", 1, "user_9", &name, &mail, &img), NT_EUNAVAIL);
}

Test(auth_issuer, local_ids_are_stable_and_distinct)
{
    char a[AUTH_USER_ID_MAX], b[AUTH_USER_ID_MAX], c[AUTH_USER_ID_MAX];
    auth_local_user_id("alice", a);
    auth_local_user_id("alice", b);
    auth_local_user_id("bob", c);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert_eq(strlen(a), 29);
    cr_assert(strncmp(a, "user_", 5) == 0);
    cr_assert(auth_user_id_valid(a));
}

Test(auth_codec, parses_rfc3339_times)
{
    cr_assert_eq(auth_time_parse("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(auth_time_parse("2026-01-02T03:04:05Z"), 1767323045);
    cr_assert_eq(auth_time_parse("2026-01-02 03:04:05"), 0, "SQLite's form is not RFC 3339");
    cr_assert_eq(auth_time_parse("2026-01-02T03:04:05Zjunk"), 0);
    cr_assert_eq(auth_time_parse(""), 0);
    cr_assert_eq(auth_time_parse(NULL), 0);
}
