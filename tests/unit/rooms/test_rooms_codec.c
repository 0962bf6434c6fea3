/* Unit tests of the rooms codec: paging cursors, field checks (limit, room id,
 * user id), the JSON of rooms and members, and the cached access state, fed
 * whole, truncated at every byte and with wrong types. */
#include "../../../services/rooms/rooms.h"

#include "nt_b64.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RID "0190f5e2-7b1c-7c3d-8e4f-123456789abc"

/* ---- cursors ---- */

/* A cursor made of arbitrary raw bytes (which rooms_cursor_encode cannot make). */
static char *raw_cursor(const char *raw, size_t n)
{
    return nt_b64url_encode(raw, n);
}

static void assert_cursor_rejected(const char *cursor, const char *what)
{
    char *a = NULL, *b = NULL;
    cr_assert_eq(rooms_cursor_decode(cursor, &a, &b), NT_EINVAL, "%s", what);
    cr_assert_null(a, "%s: outputs untouched", what);
    cr_assert_null(b, "%s: outputs untouched", what);
}

Test(rooms_codec, cursor_round_trips)
{
    const char *pairs[][2] = {
        {"2026-01-02T03:04:05.678Z", RID},
        {"Caf\xc3\xa9 \xe2\x98\x95 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", RID},
        {"a", "b"},
        {"", "user_1"},
        {"name", ""},
        {"", ""},
        {"with spaces and = + / ? &", "x-y_z"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char *c = rooms_cursor_encode(pairs[i][0], pairs[i][1]);
        cr_assert_not_null(c);
        /* base64url: safe in a query string as it is. */
        cr_assert_eq(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="),
                     strlen(c), "%s", c);
        char *a = NULL, *b = NULL;
        cr_assert_eq(rooms_cursor_decode(c, &a, &b), NT_OK, "pair %zu", i);
        cr_assert_str_eq(a, pairs[i][0]);
        cr_assert_str_eq(b, pairs[i][1]);
        free(a);
        free(b);
        free(c);
    }
}

Test(rooms_codec, cursor_rejects_what_is_not_base64url)
{
    const char *bad[] = {"abc+def/",        "ab cd", "!!!!", "YWJj\n", "YW*j",
                         "YWJjZA=x",        "YQ===", "Y",    "%41",    "YWJj ZGVm",
                         "\xc3\xa9\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_cursor_rejected(bad[i], bad[i]);
}

Test(rooms_codec, cursor_rejects_empty_and_null)
{
    assert_cursor_rejected("", "empty");
    char *a = NULL, *b = NULL;
    cr_assert_eq(rooms_cursor_decode(NULL, &a, &b), NT_EINVAL);
    cr_assert_null(a);
}

Test(rooms_codec, cursor_needs_exactly_one_separator)
{
    struct {
        const char *raw;
        size_t n;
        const char *what;
    } bad[] = {
        {"abc", 3, "no separator"},
        {"a\x1f"
         "b\x1f"
         "c",
         5, "two separators"},
        {"\x1f\x1f", 2, "two separators, nothing else"},
        {"a\0b\x1f"
         "c",
         5, "NUL before the separator"},
        {"a\x1f"
         "b\0c",
         5, "NUL after the separator"},
        {"a\x1f\0", 3, "trailing NUL"},
        {"\xff\x1f"
         "b",
         3, "invalid UTF-8 before"},
        {"a\x1f\xc3", 3, "a cut UTF-8 sequence after"},
        {"\xc0\xaf\x1f"
         "b",
         4, "an overlong"},
        {"\xed\xa0\x80\x1f"
         "b",
         5, "a surrogate"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *c = raw_cursor(bad[i].raw, bad[i].n);
        assert_cursor_rejected(c, bad[i].what);
        free(c);
    }
}

Test(rooms_codec, cursor_length_is_capped_at_1024_characters)
{
    /* 768 raw bytes are exactly 1024 base64url characters; 769 are 1026. */
    char raw[769];
    memset(raw, 'a', sizeof(raw));
    raw[400] = '\x1f';
    char *c = raw_cursor(raw, 768);
    cr_assert_eq(strlen(c), 1024);
    char *a = NULL, *b = NULL;
    cr_assert_eq(rooms_cursor_decode(c, &a, &b), NT_OK);
    cr_assert_eq(strlen(a), 400);
    cr_assert_eq(strlen(b), 367);
    free(a);
    free(b);
    free(c);
    c = raw_cursor(raw, 769);
    cr_assert_gt(strlen(c), 1024);
    assert_cursor_rejected(c, "1026 characters");
    free(c);
    /* Padding does not get around the cap either. */
    char big[2100];
    memset(big, 'A', 2048);
    big[2048] = '\0';
    assert_cursor_rejected(big, "2048 characters");
}

/* Every prefix of a valid cursor is either refused or decodes to the same
 * first key and a prefix of the second (base64 decodes byte by byte); it never
 * crashes or invents bytes. */
Test(rooms_codec, every_truncation_of_a_cursor_is_refused_or_a_prefix)
{
    const char *ka = "Caf\xc3\xa9 \xf0\x9f\x98\x80 room", *kb = "0190f5e2-\xc3\xa9-\xe2\x98\x95";
    char *c = rooms_cursor_encode(ka, kb);
    size_t n = strlen(c);
    for (size_t k = 0; k < n; k++) {
        char *t = strndup(c, k);
        char *a = NULL, *b = NULL;
        nt_status st = rooms_cursor_decode(t, &a, &b);
        /* k characters carry k * 6 / 8 bytes; the separator is byte strlen(ka). */
        if (k * 6 / 8 <= strlen(ka))
            cr_assert_eq(st, NT_EINVAL, "prefix %zu has no separator", k);
        if (st == NT_OK) {
            cr_assert_str_eq(a, ka, "prefix %zu", k);
            cr_assert_lt(strlen(b), strlen(kb), "prefix %zu", k);
            cr_assert_eq(strncmp(b, kb, strlen(b)), 0, "prefix %zu", k);
            cr_assert(nt_utf8_valid(b, strlen(b)));
            free(a);
            free(b);
        } else {
            cr_assert_eq(st, NT_EINVAL, "prefix %zu", k);
            cr_assert_null(a);
            cr_assert_null(b);
        }
        free(t);
    }
    free(c);
}

/* Every one-character change of a valid cursor decodes to well-formed keys or
 * is refused. */
Test(rooms_codec, every_single_character_change_is_safe)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .";
    char *c = rooms_cursor_encode("2026-01-02T03:04:05.678Z", RID);
    size_t n = strlen(c);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sizeof(alphabet) - 1; j++) {
            char *t = strdup(c);
            t[i] = alphabet[j];
            char *a = NULL, *b = NULL;
            nt_status st = rooms_cursor_decode(t, &a, &b);
            if (st == NT_OK) {
                cr_assert(nt_utf8_valid(a, strlen(a)) && nt_utf8_valid(b, strlen(b)));
                cr_assert_null(strchr(a, '\x1f'));
                cr_assert_null(strchr(b, '\x1f'));
                free(a);
                free(b);
            } else {
                cr_assert_eq(st, NT_EINVAL);
            }
            free(t);
        }
    }
    free(c);
}

/* ---- limit ---- */

static nt_status limit_of(const char *json, long long *out, char *err, size_t errlen)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "test JSON: %s", json);
    nt_status st = rooms_get_limit(j, "limit", 50, 100, out, err, errlen);
    cJSON_Delete(j);
    return st;
}

Test(rooms_codec, limit_accepts_numbers_and_numeric_strings)
{
    struct {
        const char *json;
        long long want;
    } ok[] = {
        {"{\"limit\":20}", 20},   {"{\"limit\":\"20\"}", 20},
        {"{\"limit\":1}", 1},     {"{\"limit\":\"1\"}", 1},
        {"{\"limit\":100}", 100}, {"{\"limit\":\"100\"}", 100},
        {"{\"limit\":20.0}", 20}, {"{}", 50},
        {"{\"limit\":null}", 50}, {"{\"other\":3}", 50},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char err[NT_ERRMSG_LEN] = "";
        long long n = -7;
        cr_assert_eq(limit_of(ok[i].json, &n, err, sizeof(err)), NT_OK, "%s: %s", ok[i].json, err);
        cr_assert_eq(n, ok[i].want, "%s", ok[i].json);
    }
}

Test(rooms_codec, limit_rejects_non_integers_and_out_of_range)
{
    const char *bad[] = {
        "{\"limit\":\"0\"}",
        "{\"limit\":0}",
        "{\"limit\":\"-1\"}",
        "{\"limit\":-1}",
        "{\"limit\":\"1e2\"}",
        "{\"limit\":\" 5\"}",
        "{\"limit\":\"5 \"}",
        "{\"limit\":1.5}",
        "{\"limit\":true}",
        "{\"limit\":false}",
        "{\"limit\":101}",
        "{\"limit\":\"101\"}",
        "{\"limit\":\"\"}",
        "{\"limit\":\"+5\"}",
        "{\"limit\":\"0x10\"}",
        "{\"limit\":\"5.0\"}",
        "{\"limit\":[5]}",
        "{\"limit\":{}}",
        "{\"limit\":1e300}",
        "{\"limit\":-1e300}",
        "{\"limit\":\"abc\"}",
        "{\"limit\":\"5a\"}",
        "{\"limit\":\"99999999999999999999\"}",
        "{\"limit\":\"\xef\xbc\x95\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[NT_ERRMSG_LEN] = "";
        long long n = -7;
        cr_assert_eq(limit_of(bad[i], &n, err, sizeof(err)), NT_EINVAL, "%s", bad[i]);
        cr_assert_eq(n, -7, "out untouched: %s", bad[i]);
        cr_assert_str_eq(err, "'limit' must be an integer from 1 to 100", "%s", bad[i]);
    }
}

Test(rooms_codec, limit_max_is_the_callers)
{
    cJSON *j = cJSON_Parse("{\"limit\":\"500\"}");
    char err[NT_ERRMSG_LEN];
    long long n = 0;
    cr_assert_eq(rooms_get_limit(j, "limit", 100, 500, &n, err, sizeof(err)), NT_OK);
    cr_assert_eq(n, 500);
    cr_assert_eq(rooms_get_limit(j, "limit", 50, 499, &n, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "499") != NULL, "%s", err);
    cJSON_Delete(j);
}

/* ---- ids ---- */

static nt_status room_id_of(const char *json, char out[NT_ID_LEN], char *err, size_t errlen)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "test JSON: %s", json);
    nt_status st = rooms_get_room_id(j, out, err, errlen);
    cJSON_Delete(j);
    return st;
}

Test(rooms_codec, room_id_must_be_a_canonical_uuid)
{
    char out[NT_ID_LEN] = "", err[NT_ERRMSG_LEN];
    cr_assert_eq(room_id_of("{\"room_id\":\"" RID "\"}", out, err, sizeof(err)), NT_OK);
    cr_assert_str_eq(out, RID);
    const char *bad[] = {
        "{\"room_id\":\"0190F5E2-7B1C-7C3D-8E4F-123456789ABC\"}",
        "{\"room_id\":\"0190f5e2-7b1c-7c3d-8e4f-123456789aBc\"}",
        "{\"room_id\":\"0190f5e2-7b1c-7c3d-8e4f-123456789ab\"}",   /* 35 */
        "{\"room_id\":\"0190f5e2-7b1c-7c3d-8e4f-123456789abcd\"}", /* 37 */
        "{\"room_id\":\"0190f5e27b1c7c3d8e4f123456789abc\"}",
        "{\"room_id\":\"{0190f5e2-7b1c-7c3d-8e4f-123456789abc}\"}",
        "{\"room_id\":\"0190f5e2_7b1c-7c3d-8e4f-123456789abc\"}",
        "{\"room_id\":\"0190f5e2-7b1c-7c3d-8e4f-123456789abg\"}",
        "{\"room_id\":\" 0190f5e2-7b1c-7c3d-8e4f-123456789abc\"}",
        "{\"room_id\":\"\"}",
        "{\"room_id\":123}",
        "{\"room_id\":true}",
        "{\"room_id\":[\"" RID "\"]}",
        "{\"room_id\":{\"id\":\"" RID "\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(out, 'z', sizeof(out));
        cr_assert_eq(room_id_of(bad[i], out, err, sizeof(err)), NT_EINVAL, "%s", bad[i]);
        cr_assert_str_eq(err, "'room_id' is not a valid room id", "%s", bad[i]);
        cr_assert_eq(out[0], 'z', "out untouched: %s", bad[i]);
    }
    cr_assert_eq(room_id_of("{}", out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'room_id' is required");
    cr_assert_eq(room_id_of("{\"room_id\":null}", out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'room_id' is required");
}

Test(rooms_codec, user_ids_have_a_safe_form)
{
    char long_ok[ROOMS_USER_ID_MAX], too_long[ROOMS_USER_ID_MAX + 1];
    memset(long_ok, 'a', sizeof(long_ok) - 1);
    long_ok[sizeof(long_ok) - 1] = '\0'; /* 127 characters */
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0'; /* 128 */
    const char *good[] = {"user_1", "a", "A-z_0", "user_2abcDEF09", "-", "_", long_ok};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(rooms_user_id_valid(good[i]), "%s", good[i]);
    const char *bad[] = {"",      "a b",  "a/b",     "../x",  "a.b", "caf\xc3\xa9",
                         "a\n",   "a\tb", "user:1",  "a@b",   "a+b", "*",
                         "a\x1f", "\x7f", "user\\1", too_long};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(rooms_user_id_valid(bad[i]), "'%s'", bad[i]);
    cr_assert_not(rooms_user_id_valid(NULL));
}

Test(rooms_codec, get_user_id_names_the_field)
{
    char out[ROOMS_USER_ID_MAX] = "", err[NT_ERRMSG_LEN] = "";
    cJSON *j = cJSON_Parse("{\"user_id\":\"u_1\",\"bad\":\"a b\",\"num\":5,\"nul\":null}");
    cr_assert_eq(rooms_get_user_id(j, "user_id", true, out, err, sizeof(err)), NT_OK);
    cr_assert_str_eq(out, "u_1");
    cr_assert_eq(rooms_get_user_id(j, "bad", true, out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'bad' is not a valid user id");
    cr_assert_eq(rooms_get_user_id(j, "num", false, out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'num' is not a valid user id");
    cr_assert_eq(rooms_get_user_id(j, "missing", false, out, err, sizeof(err)), NT_ENOTFOUND);
    cr_assert_eq(rooms_get_user_id(j, "nul", false, out, err, sizeof(err)), NT_ENOTFOUND);
    cr_assert_eq(rooms_get_user_id(j, "missing", true, out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'missing' is required");
    cr_assert_str_eq(out, "u_1", "untouched by the failures");
    cJSON_Delete(j);
}

/* ---- rooms and members as JSON ---- */

/* True when obj has exactly the keys in names (NULL-terminated), in any order. */
static bool has_exactly(const cJSON *obj, const char *const *names)
{
    int n = 0;
    for (; names[n] != NULL; n++) {
        if (cJSON_GetObjectItemCaseSensitive(obj, names[n]) == NULL)
            return false;
    }
    return cJSON_GetArraySize(obj) == n;
}

Test(rooms_codec, room_json_is_the_room_view)
{
    rooms_room r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", RID);
    r.name = strdup("Lobby");
    r.description = NULL;
    r.is_private = true;
    snprintf(r.created_by, sizeof(r.created_by), "user_1");
    snprintf(r.created_at, sizeof(r.created_at), "2026-01-02T03:04:05.678Z");
    snprintf(r.last_activity_at, sizeof(r.last_activity_at), "2026-01-03T00:00:00.000Z");
    r.member_count = 3;
    r.role = ROOMS_OUTSIDER;
    static const char *const view[] = {
        "id",         "name",         "description", "is_private",       "created_by",
        "created_at", "member_count", "role",        "last_activity_at", NULL};
    static const char *const event[] = {
        "id",         "name",         "description",      "is_private", "created_by",
        "created_at", "member_count", "last_activity_at", NULL};
    cJSON *j = rooms_room_to_json(&r, true);
    cr_assert(has_exactly(j, view));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "role")), "an outsider's role is null");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "description")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "is_private")));
    cr_assert_eq(cJSON_GetObjectItem(j, "member_count")->valuedouble, 3);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "last_activity_at")->valuestring,
                     "2026-01-03T00:00:00.000Z");
    cJSON_Delete(j);
    r.role = ROOMS_MODERATOR;
    r.description = strdup("two\nlines");
    j = rooms_room_to_json(&r, true);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "role")->valuestring, "moderator");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "description")->valuestring, "two\nlines");
    cJSON_Delete(j);
    j = rooms_room_to_json(&r, false);
    cr_assert(has_exactly(j, event), "event payloads leave out the role");
    cJSON_Delete(j);
    rooms_room_clear(&r);
    cr_assert_null(r.name);
}

Test(rooms_codec, member_json_has_the_member_fields)
{
    rooms_member m;
    memset(&m, 0, sizeof(m));
    snprintf(m.room_id, sizeof(m.room_id), "%s", RID);
    snprintf(m.user_id, sizeof(m.user_id), "user_1");
    m.username = strdup("Zo\xc3\xab");
    m.role = ROOMS_ADMIN;
    snprintf(m.joined_at, sizeof(m.joined_at), "2026-01-02T03:04:05.678Z");
    static const char *const keys[] = {"room_id", "user_id",   "username", "avatar_url",
                                       "role",    "joined_at", NULL};
    cJSON *j = rooms_member_to_json(&m);
    cr_assert(has_exactly(j, keys));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "username")->valuestring, "Zo\xc3\xab");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "avatar_url")));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "role")->valuestring, "admin");
    cJSON_Delete(j);
    rooms_member_clear(&m);
}

static void push_member(rooms_member_list *l, const char *user_id)
{
    rooms_member *m = rooms_member_list_push(l);
    snprintf(m->room_id, sizeof(m->room_id), "%s", RID);
    snprintf(m->user_id, sizeof(m->user_id), "%s", user_id);
    m->username = strdup(user_id);
    m->role = ROOMS_MEMBER;
    snprintf(m->joined_at, sizeof(m->joined_at), "2026-01-02T03:04:05.678Z");
    snprintf(m->joined_key, sizeof(m->joined_key), "2026-01-02T03:04:05.678Z");
}

Test(rooms_codec, online_request_names_the_page_members)
{
    rooms_member_list l = {0};
    push_member(&l, "u1");
    push_member(&l, "u-2");
    push_member(&l, "u_3");
    char *s = rooms_online_request(&l, 2);
    cr_assert_str_eq(s, "{\"user_ids\":[\"u1\",\"u-2\"]}");
    free(s);
    s = rooms_online_request(&l, 10);
    cr_assert_str_eq(s, "{\"user_ids\":[\"u1\",\"u-2\",\"u_3\"]}", "never past the list");
    free(s);
    rooms_member_list_clear(&l);
}

Test(rooms_codec, online_reply_gives_the_users_object_or_says_why_not)
{
    char why[NT_ERRMSG_LEN];
    const char *good = "{\"data\":{\"users\":{\"u1\":{\"online\":true,\"last_seen\":null}}}}";
    cJSON *u = rooms_online_from_reply(good, strlen(good), why, sizeof(why));
    cr_assert(cJSON_IsObject(u));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(u, "u1"), "online")));
    cr_assert_str_eq(why, "");
    cJSON_Delete(u);
    for (size_t n = 0; n < strlen(good); n++) {
        cr_assert_null(rooms_online_from_reply(good, n, why, sizeof(why)), "%zu bytes", n);
        cr_assert_str_neq(why, "", "%zu bytes", n);
    }
    const char *err = "{\"error\":{\"code\":\"unavailable\",\"message\":\"secret text\"}}";
    cr_assert_null(rooms_online_from_reply(err, strlen(err), why, sizeof(why)));
    cr_assert_str_eq(why, "an error reply code=unavailable");
    const char *bad_code = "{\"error\":{\"code\":\"Secret Text\",\"message\":\"\"}}";
    cr_assert_null(rooms_online_from_reply(bad_code, strlen(bad_code), why, sizeof(why)));
    cr_assert(strstr(why, "Secret") == NULL, "the reply is never quoted: %s", why);
    cr_assert_null(rooms_online_from_reply(NULL, 0, why, sizeof(why)));
    const char *no_users = "{\"data\":{\"users\":[]}}";
    cr_assert_null(rooms_online_from_reply(no_users, strlen(no_users), why, sizeof(why)));
    cr_assert_str_eq(why, "the reply has no data.users object");
}

Test(rooms_codec, member_page_merges_presence_and_nulls_what_it_lacks)
{
    rooms_member_list l = {0};
    push_member(&l, "u1");
    push_member(&l, "u2");
    push_member(&l, "u3");
    cJSON *users =
        cJSON_Parse("{\"u1\":{\"online\":true,\"last_seen\":\"2026-01-02T03:04:05.678Z\"},"
                    "\"u2\":{\"online\":false,\"last_seen\":\"2026-13-02T03:04:05\"}}");
    cr_assert_not_null(users);
    cJSON *page = rooms_member_page_to_json(&l, 2, RID, users);
    const cJSON *ms = cJSON_GetObjectItem(page, "members");
    cr_assert_eq(cJSON_GetArraySize(ms), 2, "limit members; the third tells a next page exists");
    const cJSON *m1 = cJSON_GetArrayItem(ms, 0), *m2 = cJSON_GetArrayItem(ms, 1);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(m1, "online")));
    cr_assert_str_eq(cJSON_GetObjectItem(m1, "last_seen")->valuestring, "2026-01-02T03:04:05.678Z");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(m2, "online")), "a malformed time: both null");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(m2, "last_seen")));
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(page, "next_cursor")));
    cJSON_Delete(page);
    /* Without an answer every member is null. */
    page = rooms_member_page_to_json(&l, 5, RID, NULL);
    ms = cJSON_GetObjectItem(page, "members");
    cr_assert_eq(cJSON_GetArraySize(ms), 3);
    const cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        cr_assert(cJSON_IsNull(cJSON_GetObjectItem(m, "online")));
        cr_assert(cJSON_IsNull(cJSON_GetObjectItem(m, "last_seen")));
    }
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(page, "next_cursor")));
    cJSON_Delete(page);
    cJSON_Delete(users);
    rooms_member_list_clear(&l);
}

/* ---- the cached access state ---- */

static rooms_access sample_access(void)
{
    rooms_access a;
    memset(&a, 0, sizeof(a));
    snprintf(a.room_id, sizeof(a.room_id), "%s", RID);
    a.exists = true;
    a.is_private = true;
    a.n = 3;
    a.members = calloc(a.n, sizeof(*a.members));
    cr_assert_not_null(a.members);
    snprintf(a.members[0].user_id, sizeof(a.members[0].user_id), "user_admin");
    a.members[0].role = ROOMS_ADMIN;
    snprintf(a.members[1].user_id, sizeof(a.members[1].user_id), "user-mod");
    a.members[1].role = ROOMS_MODERATOR;
    snprintf(a.members[2].user_id, sizeof(a.members[2].user_id), "u3");
    a.members[2].role = ROOMS_MEMBER;
    return a;
}

static void assert_same_access(const rooms_access *x, const rooms_access *y)
{
    cr_assert_str_eq(x->room_id, y->room_id);
    cr_assert_eq(x->exists, y->exists);
    cr_assert_eq(x->is_private, y->is_private);
    cr_assert_eq(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        cr_assert_str_eq(x->members[i].user_id, y->members[i].user_id);
        cr_assert_eq(x->members[i].role, y->members[i].role);
    }
}

Test(rooms_codec, access_state_round_trips)
{
    rooms_access a = sample_access();
    char *s = rooms_access_to_text(&a);
    cr_assert_str_eq(s, "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":true,"
                        "\"members\":[{\"user_id\":\"user_admin\",\"role\":\"admin\"},"
                        "{\"user_id\":\"user-mod\",\"role\":\"moderator\"},"
                        "{\"user_id\":\"u3\",\"role\":\"member\"}]}");
    rooms_access b;
    cr_assert_eq(rooms_access_from_text(s, strlen(s), &b), NT_OK);
    assert_same_access(&a, &b);
    cr_assert_eq(rooms_access_role(&b, "user-mod"), ROOMS_MODERATOR);
    cr_assert_eq(rooms_access_role(&b, "u3"), ROOMS_MEMBER);
    cr_assert_eq(rooms_access_role(&b, "u"), ROOMS_OUTSIDER, "no prefix matches");
    cr_assert_eq(rooms_access_role(&b, "u33"), ROOMS_OUTSIDER);
    rooms_access_clear(&b);
    cr_assert_null(b.members);
    free(s);
    rooms_access_clear(&a);
}

Test(rooms_codec, access_state_of_an_empty_public_room_and_a_tombstone)
{
    rooms_access a;
    memset(&a, 0, sizeof(a));
    snprintf(a.room_id, sizeof(a.room_id), "%s", RID);
    a.exists = true;
    char *s = rooms_access_to_text(&a);
    rooms_access b;
    cr_assert_eq(rooms_access_from_text(s, strlen(s), &b), NT_OK, "%s", s);
    assert_same_access(&a, &b);
    rooms_access_clear(&b);
    free(s);

    a.exists = false;
    s = rooms_access_to_text(&a);
    cr_assert_str_eq(s, "{\"room_id\":\"" RID "\",\"exists\":false}");
    cr_assert_eq(rooms_access_from_text(s, strlen(s), &b), NT_OK);
    cr_assert_not(b.exists);
    cr_assert_eq(b.n, 0);
    cr_assert_eq(rooms_access_role(&b, "anyone"), ROOMS_OUTSIDER);
    rooms_access_clear(&b);
    free(s);
}

/* Every prefix of a valid text is refused (no prefix of a JSON object is one)
 * or, if the parser ever accepted one, reads back the same state. */
Test(rooms_codec, every_truncation_of_the_access_state_is_refused)
{
    rooms_access a = sample_access();
    char *s = rooms_access_to_text(&a);
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        rooms_access b;
        memset(&b, 0x5a, sizeof(b));
        /* A separate copy so that ASan sees any read past the prefix. */
        char *t = malloc(k + 1);
        memcpy(t, s, k);
        t[k] = '\0';
        nt_status st = rooms_access_from_text(t, k, &b);
        if (st == NT_OK) {
            assert_same_access(&a, &b);
            rooms_access_clear(&b);
        } else {
            cr_assert_eq(st, NT_EINVAL, "prefix %zu", k);
            cr_assert_eq(b.n, (size_t)0x5a5a5a5a5a5a5a5aULL, "out untouched (prefix %zu)", k);
        }
        free(t);
    }
    free(s);
    rooms_access_clear(&a);
}

Test(rooms_codec, access_state_rejects_wrong_shapes)
{
    const char *bad[] = {
        "",
        "[]",
        "null",
        "\"x\"",
        "{}",
        "{\"room_id\":\"" RID "\"}",
        "{\"exists\":false}",
        "{\"room_id\":5,\"exists\":false}",
        "{\"room_id\":\"" RID "\",\"exists\":\"false\"}",
        "{\"room_id\":\"" RID "\",\"exists\":0}",
        "{\"room_id\":\"0190F5E2-7B1C-7C3D-8E4F-123456789ABC\",\"exists\":false}",
        "{\"room_id\":\"0190f5e2-7b1c-7c3d-8e4f-123456789ab\",\"exists\":false}",
        "{\"room_id\":\"room-1\",\"exists\":false}",
        "{\"room_id\":\"" RID "\",\"exists\":true}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"members\":[]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":\"no\",\"members\":[]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":{}}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":\"u\"}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":[1]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":[null]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":[[]]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"u1\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"role\":\"admin\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"u1\",\"role\":\"owner\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"u1\",\"role\":\"Admin\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"u1\",\"role\":null}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":7,\"role\":\"admin\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"a b\",\"role\":\"admin\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"\",\"role\":\"admin\"}]}",
        /* One good member, then a bad one: nothing half-built comes back. */
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,"
        "\"members\":[{\"user_id\":\"u1\",\"role\":\"admin\"},{\"user_id\":\"u2\"}]}",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":[]",
        "{\"room_id\":\"" RID "\",\"exists\":true,\"is_private\":false,\"members\":[]}x",
        "{\"room_id\":\"" RID "\",\"exists\":tru}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rooms_access b;
        memset(&b, 0, sizeof(b));
        b.n = 42;
        cr_assert_eq(rooms_access_from_text(bad[i], strlen(bad[i]), &b), NT_EINVAL, "%s", bad[i]);
        cr_assert_eq(b.n, 42, "out untouched: %s", bad[i]);
    }
}

Test(rooms_codec, access_state_reads_only_len_bytes)
{
    const char *s = "{\"room_id\":\"" RID "\",\"exists\":false}GARBAGE";
    size_t len = strlen(s) - strlen("GARBAGE");
    rooms_access b;
    cr_assert_eq(rooms_access_from_text(s, len, &b), NT_OK);
    cr_assert_not(b.exists);
    rooms_access_clear(&b);
    cr_assert_eq(rooms_access_from_text(s, strlen(s), &b), NT_EINVAL);
}

Test(rooms_codec, name_and_description_rules)
{
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(nt_text_check("name", "Lobby", &rooms_name_rule, err, sizeof(err)), NT_OK);
    cr_assert_eq(nt_text_check("name", "", &rooms_name_rule, err, sizeof(err)), NT_EINVAL);
    cr_assert_eq(nt_text_check("name", "a\nb", &rooms_name_rule, err, sizeof(err)), NT_EINVAL,
                 "no controls at all in a name");
    cr_assert_eq(nt_text_check("name", "a\tb", &rooms_name_rule, err, sizeof(err)), NT_EINVAL);
    cr_assert_eq(nt_text_check("description", "a\nb\tc", &rooms_desc_rule, err, sizeof(err)),
                 NT_OK);
    cr_assert_eq(nt_text_check("description", "a\x07", &rooms_desc_rule, err, sizeof(err)),
                 NT_EINVAL);
    cr_assert_eq(nt_text_check("description", "", &rooms_desc_rule, err, sizeof(err)), NT_OK);
    /* Lengths count code points: 100 two-byte characters fit, 101 do not. */
    char name[2 * 101 + 1];
    for (int i = 0; i < 101; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[2 * 100] = '\0';
    cr_assert_eq(nt_text_check("name", name, &rooms_name_rule, err, sizeof(err)), NT_OK);
    name[2 * 100] = '\xc3';
    name[2 * 101] = '\0';
    cr_assert_eq(nt_text_check("name", name, &rooms_name_rule, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "'name'") != NULL, "%s", err);
}
