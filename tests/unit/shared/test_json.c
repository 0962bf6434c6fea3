/* Unit tests of nt_json: UTF-8, parsing with positions, field rules. */
#include "nt_json.h"

#include <criterion/criterion.h>
#include <string.h>

#define ERR char err[NT_ERRMSG_LEN] = ""

Test(nt_json, validates_utf8_strictly)
{
    cr_assert(nt_utf8_valid("", 0));
    cr_assert(nt_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    cr_assert_not(nt_utf8_valid("\xc3", 1), "truncated 2-byte");
    cr_assert_not(nt_utf8_valid("\xe2\x82", 2), "truncated 3-byte");
    cr_assert_not(nt_utf8_valid("\xc0\xaf", 2), "overlong slash");
    cr_assert_not(nt_utf8_valid("\xe0\x80\xaf", 3), "overlong 3-byte");
    cr_assert_not(nt_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    cr_assert_not(nt_utf8_valid("\xf4\x90\x80\x80", 4), "past U+10FFFF");
    cr_assert_not(nt_utf8_valid("\xff", 1));
    cr_assert_not(nt_utf8_valid("\x80", 1), "lone continuation");
    cr_assert_eq(nt_utf8_chars("h\xc3\xa9\xf0\x9f\x98\x80", 7), 3);
}

Test(nt_json, parses_objects_and_names_the_bad_byte)
{
    ERR;
    cJSON *v = NULL;
    cr_assert_eq(nt_json_parse_object("{\"a\":1}", 7, &v, err, sizeof(err)), NT_OK);
    cJSON_Delete(v);
    cr_assert_eq(nt_json_parse_object("  ", 2, &v, err, sizeof(err)), NT_OK, "empty is {}");
    cr_assert(cJSON_IsObject(v));
    cJSON_Delete(v);
    cr_assert_eq(nt_json_parse_object("{\"a\":}", 6, &v, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "invalid JSON at byte 5");
    cr_assert_eq(nt_json_parse_object("[1,2]", 5, &v, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "body must be a JSON object");
    cr_assert_eq(nt_json_parse_object("{} x", 4, &v, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "trailing") != NULL, "%s", err);
    cr_assert_eq(nt_json_parse_object("{\"a\":\"\xff\"}", 8, &v, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "body is not valid UTF-8");
}

Test(nt_json, never_reads_past_the_given_length)
{
    ERR;
    cJSON *v = NULL;
    const char *s = "{\"a\":1}GARBAGE";
    cr_assert_eq(nt_json_parse_object(s, 7, &v, err, sizeof(err)), NT_OK);
    cJSON_Delete(v);
    /* Every prefix of a valid document is handled without a crash. */
    const char *doc = "{\"name\":\"caf\xc3\xa9\",\"n\":[1,2,{\"x\":null}],\"t\":true}";
    for (size_t i = 0; i < strlen(doc); i++) {
        char *copy = malloc(i + 1);
        memcpy(copy, doc, i);
        copy[i] = '\0';
        nt_status st = nt_json_parse_object(copy, i, &v, err, sizeof(err));
        if (st == NT_OK)
            cJSON_Delete(v);
        free(copy);
    }
}

Test(nt_json, text_fields_are_trimmed_and_checked)
{
    ERR;
    cJSON *o = cJSON_Parse("{\"name\":\"  Alice  \",\"ctl\":\"a\\u0001b\",\"num\":3,"
                           "\"long\":\"abcdef\",\"nl\":\"a\\nb\",\"blank\":\"   \"}");
    nt_text_rule r = {.min_chars = 1, .max_chars = 5};
    char *out = NULL;
    cr_assert_eq(nt_json_get_text(o, "name", true, &r, &out, err, sizeof(err)), NT_OK);
    cr_assert_str_eq(out, "Alice");
    free(out);
    cr_assert_eq(nt_json_get_text(o, "ctl", true, &r, &out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'ctl' contains a control character");
    cr_assert_eq(nt_json_get_text(o, "num", true, &r, &out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'num' must be a string");
    cr_assert_eq(nt_json_get_text(o, "long", true, &r, &out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'long' must be 1 to 5 characters, got 6");
    cr_assert_eq(nt_json_get_text(o, "blank", true, &r, &out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'blank' must not be empty");
    cr_assert_eq(nt_json_get_text(o, "nl", true, &r, &out, err, sizeof(err)), NT_EINVAL);
    r.allow_newlines = true;
    cr_assert_eq(nt_json_get_text(o, "nl", true, &r, &out, err, sizeof(err)), NT_OK);
    free(out);
    cr_assert_eq(nt_json_get_text(o, "absent", false, &r, &out, err, sizeof(err)), NT_ENOTFOUND);
    cr_assert_eq(nt_json_get_text(o, "absent", true, &r, &out, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "'absent' is required");
    cJSON_Delete(o);
}

Test(nt_json, counts_characters_not_bytes)
{
    ERR;
    cJSON *o = cJSON_Parse("{\"e\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}");
    nt_text_rule r = {.min_chars = 1, .max_chars = 3};
    char *out = NULL;
    cr_assert_eq(nt_json_get_text(o, "e", true, &r, &out, err, sizeof(err)), NT_OK);
    free(out);
    cJSON_Delete(o);
}

Test(nt_json, unknown_keys_bools_and_ints)
{
    ERR;
    cJSON *o = cJSON_Parse("{\"a\":true,\"b\":7,\"c\":1.5,\"d\":\"x\",\"e\":1e300}");
    static const char *const allowed[] = {"a", "b", "c", "d", NULL};
    cr_assert_eq(nt_json_check_keys(o, allowed, err, sizeof(err)), NT_EINVAL);
    cr_assert_str_eq(err, "unknown field 'e'");
    bool b = false;
    cr_assert_eq(nt_json_get_bool(o, "a", true, &b, err, sizeof(err)), NT_OK);
    cr_assert(b);
    cr_assert_eq(nt_json_get_bool(o, "b", true, &b, err, sizeof(err)), NT_EINVAL);
    long long n = 0;
    cr_assert_eq(nt_json_get_int(o, "b", true, 1, 10, &n, err, sizeof(err)), NT_OK);
    cr_assert_eq(n, 7);
    cr_assert_eq(nt_json_get_int(o, "b", true, 1, 5, &n, err, sizeof(err)), NT_EINVAL);
    cr_assert_eq(nt_json_get_int(o, "c", true, 0, 10, &n, err, sizeof(err)), NT_EINVAL);
    cr_assert_eq(nt_json_get_int(o, "d", true, 0, 10, &n, err, sizeof(err)), NT_EINVAL);
    cr_assert_eq(nt_json_get_int(o, "e", true, 0, 10, &n, err, sizeof(err)), NT_EINVAL);
    cr_assert_eq(nt_json_get_int(o, "zz", false, 0, 10, &n, err, sizeof(err)), NT_ENOTFOUND);
    cJSON_Delete(o);
}

Test(nt_json, refuses_escaped_nul_but_not_an_escaped_backslash)
{
    ERR;
    cJSON *v = NULL;
    const char *bad = "{\"username\":\"a\\u0000b\"}";
    cr_assert_eq(nt_json_parse_object(bad, strlen(bad), &v, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "u0000") != NULL, "%s", err);
    const char *ok = "{\"path\":\"C:\\\\u0000\"}"; /* a backslash, then the text u0000 */
    cr_assert_eq(nt_json_parse_object(ok, strlen(ok), &v, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(cJSON_GetObjectItem(v, "path")->valuestring, "C:\\u0000");
    cJSON_Delete(v);
    const char *other = "{\"a\":\"\\u0041\\u00e9\"}";
    cr_assert_eq(nt_json_parse_object(other, strlen(other), &v, err, sizeof(err)), NT_OK);
    cr_assert_str_eq(cJSON_GetObjectItem(v, "a")->valuestring, "A\xc3\xa9");
    cJSON_Delete(v);
}

Test(nt_json, sanitizes_cut_and_invalid_utf8)
{
    char a[] = "caf\xc3\xa9";
    cr_assert_str_eq(nt_utf8_sanitize(a), "caf\xc3\xa9", "valid text is untouched");
    char b[] = "ab\xe2\x82";
    cr_assert_str_eq(nt_utf8_sanitize(b), "ab", "a cut sequence at the end is dropped");
    char c[] = "a\xff"
               "b\xc0\xaf"
               "c";
    cr_assert_str_eq(nt_utf8_sanitize(c), "a?b??c");
    char d[] = "\xf0\x9f\x98";
    cr_assert_str_eq(nt_utf8_sanitize(d), "");
    char e[] = "x\xed\xa0\x80y";
    nt_utf8_sanitize(e);
    cr_assert(nt_utf8_valid(e, strlen(e)), "surrogates are replaced: %s", e);
}

Test(nt_json, refuses_raw_nul_and_control_bytes_in_strings)
{
    ERR;
    cJSON *v = NULL;
    const char nul[] = "{\"username\":\"admin\0evil\"}";
    cr_assert_eq(nt_json_parse_object(nul, sizeof(nul) - 1, &v, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "control character") != NULL, "%s", err);
    const char *tab = "{\"a\":\"x\ty\"}";
    cr_assert_eq(nt_json_parse_object(tab, strlen(tab), &v, err, sizeof(err)), NT_EINVAL);
    const char *ws = "{\n\t\"a\" :\r\n \"x\\ty\\\"q\"\n}";
    cr_assert_eq(nt_json_parse_object(ws, strlen(ws), &v, err, sizeof(err)), NT_OK,
                 "white space between tokens and escapes are fine: %s", err);
    cr_assert_str_eq(cJSON_GetObjectItem(v, "a")->valuestring, "x\ty\"q");
    cJSON_Delete(v);
}

Test(nt_json, one_line_text_refuses_invisible_formatting_multi_line_keeps_it)
{
    static const nt_text_rule line = {.min_chars = 1, .max_chars = 100};
    static const nt_text_rule body = {.min_chars = 1, .max_chars = 100, .allow_newlines = true};
    char err[NT_ERRMSG_LEN];
    /* U+202E RIGHT-TO-LEFT OVERRIDE: "ab\u202Egnp.exe" shows as "abexe.png". */
    cr_assert_eq(nt_text_check("name", "ab\xE2\x80\xAEgnp.exe", &line, err, sizeof(err)),
                 NT_EINVAL);
    cr_assert(strstr(err, "'name'") != NULL, "%s", err);
    cr_assert_eq(nt_text_check("content", "ab\xE2\x80\xAEgnp", &body, err, sizeof(err)), NT_OK);
    /* U+2067 RIGHT-TO-LEFT ISOLATE, U+200B ZERO WIDTH SPACE, U+FEFF, U+2028. */
    const char *refused[] = {"a\xE2\x81\xA7"
                             "b",
                             "a\xE2\x80\x8B"
                             "b",
                             "\xEF\xBB\xBF"
                             "ab",
                             "a\xE2\x80\xA8"
                             "b"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        cr_assert_eq(nt_text_check("name", refused[i], &line, err, sizeof(err)), NT_EINVAL,
                     "case %zu", i);
    /* C1 controls (U+0085 NEXT LINE) are refused everywhere. */
    cr_assert_eq(nt_text_check("name",
                               "a\xC2\x85"
                               "b",
                               &line, err, sizeof(err)),
                 NT_EINVAL);
    cr_assert_eq(nt_text_check("content",
                               "a\xC2\x85"
                               "b",
                               &body, err, sizeof(err)),
                 NT_EINVAL);
    /* Neighbours stay allowed: U+00A0, U+00E9, U+200D (emoji joiner), U+2030, U+FF21. */
    const char *allowed[] = {"a\xC2\xA0"
                             "b",
                             "caf\xC3\xA9", "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",
                             "a\xE2\x80\xB0"
                             "b",
                             "\xEF\xBC\xA1"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        cr_assert_eq(nt_text_check("name", allowed[i], &line, err, sizeof(err)), NT_OK,
                     "case %zu: %s", i, err);
}

Test(nt_json, names_need_a_visible_character_and_refuse_fillers)
{
    static const nt_text_rule line = {.min_chars = 1, .max_chars = 100};
    char err[NT_ERRMSG_LEN];
    /* Only no-break spaces, an ideographic space, a Hangul filler, a braille blank. */
    const char *blank[] = {"\xC2\xA0\xC2\xA0", "\xE3\x80\x80", "\xE3\x85\xA4", "\xE2\xA0\x80"};
    for (size_t i = 0; i < sizeof(blank) / sizeof(blank[0]); i++)
        cr_assert_eq(nt_text_check("name", blank[i], &line, err, sizeof(err)), NT_EINVAL,
                     "case %zu", i);
    /* Left-to-right mark, soft hyphen, a tag character, a noncharacter. */
    const char *refused[] = {"a\xE2\x80\x8E"
                             "b",
                             "a\xC2\xAD"
                             "b",
                             "a\xF3\xA0\x80\x81", "a\xEF\xBF\xBF"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        cr_assert_eq(nt_text_check("name", refused[i], &line, err, sizeof(err)), NT_EINVAL,
                     "case %zu", i);
    /* A heart with its emoji variation selector, Persian with a ZWNJ. */
    cr_assert_eq(nt_text_check("name", "\xE2\x9D\xA4\xEF\xB8\x8F", &line, err, sizeof(err)), NT_OK,
                 "%s", err);
    cr_assert_eq(nt_text_check("name", "\xD9\x85\xDB\x8C\xE2\x80\x8C\xD8\xB4\xD9\x88\xD8\xAF",
                               &line, err, sizeof(err)),
                 NT_OK, "%s", err);
}
