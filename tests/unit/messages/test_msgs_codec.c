/* Unit tests of the messages codec: the JSON of a message and of a history
 * page, the event msgs_publish_message sends, the request parsers of the four
 * routes (every refusal with its message; bodies cut at every byte and
 * mangled byte by byte), and the two pieces of the authorize protocol. */
#include "../../../services/messages/msgs.h"

#include "nt_log.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOM  "0190f5e2-7b1c-7c3d-8e4f-123456789abc"
#define MID   "0190f5e2-7b1c-7c3d-8e4f-000000000001"
#define MID2  "0190f5e2-7b1c-7c3d-8e4f-000000000002"
#define MID3  "0190f5e2-7b1c-7c3d-8e4f-000000000003"
#define T1    "2026-01-01T00:00:00.000Z"
#define T2    "2026-01-01T00:00:01.500Z"
#define LIMIT "'limit' must be an integer from 1 to 100"
#define CREF  "'client_ref' must be 1 to 64 characters of letters, digits, '.', '_', ':' or '-'"

/* ---- helpers ---- */

/* printf into a malloc'd string. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    cr_assert(n >= 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* s repeated n times. */
static char *repeat(const char *s, size_t n)
{
    size_t l = strlen(s);
    char *r = malloc(l * n + 1);
    cr_assert_not_null(r);
    for (size_t i = 0; i < n; i++)
        memcpy(r + i * l, s, l);
    r[l * n] = '\0';
    return r;
}

static void fill(msgs_message *m, const char *id, const char *content)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->room_id, sizeof(m->room_id), "%s", ROOM);
    snprintf(m->user_id, sizeof(m->user_id), "%s", "u_ann");
    m->username = strdup("ann");
    m->content = strdup(content);
    snprintf(m->type, sizeof(m->type), "%s", "text");
    snprintf(m->created_at, sizeof(m->created_at), "%s", T1);
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsString(v), "'%s' is a string", key);
    return v->valuestring;
}

static void assert_null(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert_not_null(v, "'%s' is present", key);
    cr_assert(cJSON_IsNull(v), "'%s' is null", key);
}

static bool flag(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsBool(v), "'%s' is a boolean", key);
    return cJSON_IsTrue(v);
}

/* ---- messages ---- */

Test(msgs_codec, message_has_exactly_the_schema_fields)
{
    static const char *const keys[] = {"id",        "room_id",      "user_id",    "username",
                                       "content",   "message_type", "client_ref", "created_at",
                                       "edited",    "edited_at",    "deleted",    "deleted_at",
                                       "deleted_by"};
    msgs_message m;
    fill(&m, MID, "hello \xc3\xa9\n\xf0\x9f\x98\x80");
    cJSON *j = msgs_message_to_json(&m);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        cr_assert_lt(i, sizeof(keys) / sizeof(keys[0]), "extra key %s", it->string);
        cr_assert_str_eq(it->string, keys[i]);
        i++;
    }
    cr_assert_eq(i, sizeof(keys) / sizeof(keys[0]));
    cr_assert_str_eq(str(j, "id"), MID);
    cr_assert_str_eq(str(j, "room_id"), ROOM);
    cr_assert_str_eq(str(j, "user_id"), "u_ann");
    cr_assert_str_eq(str(j, "username"), "ann");
    cr_assert_str_eq(str(j, "content"), "hello \xc3\xa9\n\xf0\x9f\x98\x80");
    cr_assert_str_eq(str(j, "message_type"), "text");
    assert_null(j, "client_ref");
    cr_assert_str_eq(str(j, "created_at"), T1);
    cr_assert_not(flag(j, "edited"));
    assert_null(j, "edited_at");
    cr_assert_not(flag(j, "deleted"));
    assert_null(j, "deleted_at");
    assert_null(j, "deleted_by");
    cJSON_Delete(j);
    msgs_message_clear(&m);
}

Test(msgs_codec, message_shows_edits_refs_and_unknown_usernames)
{
    msgs_message m;
    fill(&m, MID, "new text");
    free(m.username);
    m.username = NULL;
    m.client_ref = strdup("phone-1:42");
    snprintf(m.type, sizeof(m.type), "%s", "image");
    snprintf(m.edited_at, sizeof(m.edited_at), "%s", T2);
    cJSON *j = msgs_message_to_json(&m);
    assert_null(j, "username");
    cr_assert_str_eq(str(j, "client_ref"), "phone-1:42");
    cr_assert_str_eq(str(j, "message_type"), "image");
    cr_assert(flag(j, "edited"));
    cr_assert_str_eq(str(j, "edited_at"), T2);
    cr_assert_not(flag(j, "deleted"));
    cJSON_Delete(j);
    msgs_message_clear(&m);
}

Test(msgs_codec, tombstone_has_no_content)
{
    msgs_message m;
    /* Even if a row still held text, a deleted message shows none. */
    fill(&m, MID, "secret");
    snprintf(m.deleted_at, sizeof(m.deleted_at), "%s", T2);
    snprintf(m.deleted_by, sizeof(m.deleted_by), "%s", "u_bob");
    cJSON *j = msgs_message_to_json(&m);
    cr_assert_str_eq(str(j, "content"), "");
    cr_assert(flag(j, "deleted"));
    cr_assert_str_eq(str(j, "deleted_at"), T2);
    cr_assert_str_eq(str(j, "deleted_by"), "u_bob");
    cr_assert_not(flag(j, "edited"));
    char *s = nt_json_print(j);
    cr_assert_null(strstr(s, "secret"), "%s", s);
    free(s);
    cJSON_Delete(j);
    msgs_message_clear(&m);
}

/* ---- pages ---- */

static void three(msgs_page *p, bool more)
{
    memset(p, 0, sizeof(*p));
    const char *ids[] = {MID, MID2, MID3};
    for (size_t i = 0; i < 3; i++)
        fill(msgs_message_list_push(&p->list), ids[i], "x");
    p->has_more = more;
}

static const cJSON *page_ids_are(const cJSON *j, const char *a, const char *b, const char *c)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "messages");
    cr_assert(cJSON_IsArray(arr));
    cr_assert_eq(cJSON_GetArraySize(arr), 3);
    cr_assert_str_eq(str(cJSON_GetArrayItem(arr, 0), "id"), a);
    cr_assert_str_eq(str(cJSON_GetArrayItem(arr, 1), "id"), b);
    cr_assert_str_eq(str(cJSON_GetArrayItem(arr, 2), "id"), c);
    return arr;
}

Test(msgs_codec, page_going_back_points_at_its_oldest_message)
{
    msgs_page p;
    three(&p, true);
    for (int k = 0; k < 2; k++) {
        cJSON *j = msgs_page_to_json(&p, k == 0 ? MSGS_PAGE_LATEST : MSGS_PAGE_BEFORE);
        page_ids_are(j, MID, MID2, MID3);
        cr_assert(flag(j, "has_more"));
        cr_assert_str_eq(str(j, "next_cursor"), MID);
        cr_assert_eq(cJSON_GetArraySize(j), 3, "messages, has_more, next_cursor");
        cJSON_Delete(j);
    }
    msgs_message_list_clear(&p.list);
}

Test(msgs_codec, page_going_forward_points_at_its_newest_message)
{
    msgs_page p;
    three(&p, true);
    cJSON *j = msgs_page_to_json(&p, MSGS_PAGE_AFTER);
    page_ids_are(j, MID, MID2, MID3);
    cr_assert(flag(j, "has_more"));
    cr_assert_str_eq(str(j, "next_cursor"), MID3);
    cJSON_Delete(j);
    msgs_message_list_clear(&p.list);
}

Test(msgs_codec, last_page_has_no_cursor)
{
    msgs_page p;
    three(&p, false);
    for (int k = MSGS_PAGE_LATEST; k <= MSGS_PAGE_AFTER; k++) {
        cJSON *j = msgs_page_to_json(&p, (msgs_page_kind)k);
        page_ids_are(j, MID, MID2, MID3);
        cr_assert_not(flag(j, "has_more"));
        assert_null(j, "next_cursor");
        cJSON_Delete(j);
    }
    msgs_message_list_clear(&p.list);
    memset(&p, 0, sizeof(p));
    cJSON *j = msgs_page_to_json(&p, MSGS_PAGE_AFTER);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "messages")), 0);
    cr_assert_not(flag(j, "has_more"));
    assert_null(j, "next_cursor");
    cJSON_Delete(j);
}

/* ---- events ---- */

static struct {
    int calls;
    char subject[200];
    char *data;
    nt_status answer;
} pub;

static nt_status fake_pub(void *arg, const char *subject, const char *data, size_t len)
{
    cr_assert_eq(arg, &pub);
    pub.calls++;
    snprintf(pub.subject, sizeof(pub.subject), "%s", subject);
    free(pub.data);
    pub.data = strndup(data, len);
    return pub.answer;
}

static void pub_reset(void)
{
    free(pub.data);
    memset(&pub, 0, sizeof(pub));
}

Test(msgs_codec, publish_sends_the_message_on_the_room_subject, .fini = pub_reset)
{
    msgs_message m;
    fill(&m, MID, "hi there");
    const char *events[] = {"message_received", "message_updated", "message_deleted"};
    for (size_t i = 0; i < 3; i++) {
        msgs_publish_message(fake_pub, &pub, events[i], &m);
        cr_assert_eq(pub.calls, (int)i + 1);
        char want[200];
        snprintf(want, sizeof(want), "chat.room.%s.%s", ROOM, events[i]);
        cr_assert_str_eq(pub.subject, want);
        cJSON *got = cJSON_Parse(pub.data);
        cJSON *exp = msgs_message_to_json(&m);
        cr_assert(cJSON_Compare(got, exp, true), "payload is the message: %s", pub.data);
        cJSON_Delete(got);
        cJSON_Delete(exp);
    }
    /* No publisher: nothing happens. */
    msgs_publish_message(NULL, NULL, "message_received", &m);
    cr_assert_eq(pub.calls, 3);
    msgs_message_clear(&m);
}

Test(msgs_codec, failed_publish_is_logged_without_the_content, .init = cr_redirect_stderr,
     .fini = pub_reset)
{
    nt_log_set_level(NT_LOG_INFO);
    msgs_message m;
    fill(&m, MID, "top-secret-words");
    pub.answer = NT_EUNAVAIL;
    msgs_publish_message(fake_pub, &pub, "message_updated", &m);
    cr_assert_eq(pub.calls, 1);
    fflush(stderr);
    char buf[2048];
    size_t n = fread(buf, 1, sizeof(buf) - 1, cr_get_redirected_stderr());
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, " warn messages "), "%s", buf);
    cr_assert_not_null(strstr(buf, "chat.room." ROOM ".message_updated"), "%s", buf);
    cr_assert_not_null(strstr(buf, MID), "names the message: %s", buf);
    cr_assert_null(strstr(buf, "top-secret-words"), "never the content: %s", buf);
    msgs_message_clear(&m);
}

/* ---- send ---- */

/* Parses body (an exact-length copy, so reading past it is caught by ASan)
 * as a send and checks the status and, on failure, the message; *out is
 * checked to be untouched on failure. */
static nt_status parse_send(const char *body, msgs_send_req *out, char *err, size_t errlen)
{
    size_t len = strlen(body);
    char *copy = malloc(len > 0 ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, body, len);
    memset(out, 0x5a, sizeof(*out));
    err[0] = '\0';
    nt_status st = msgs_parse_send(copy, len, out, err, errlen);
    free(copy);
    if (st != NT_OK) {
        const unsigned char *p = (const unsigned char *)out;
        for (size_t i = 0; i < sizeof(*out); i++)
            cr_assert_eq(p[i], 0x5a, "out untouched on failure");
    }
    return st;
}

static void send_refused(const char *body, const char *message)
{
    msgs_send_req r;
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(parse_send(body, &r, err, sizeof(err)), NT_EINVAL, "%s", body);
    cr_assert_str_eq(err, message, "%s", body);
}

static void send_refused_prefix(const char *body, const char *prefix)
{
    msgs_send_req r;
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(parse_send(body, &r, err, sizeof(err)), NT_EINVAL, "%s", body);
    cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0, "%s: %s", body, err);
}

static msgs_send_req send_ok(const char *body)
{
    msgs_send_req r;
    char err[NT_ERRMSG_LEN];
    nt_status st = parse_send(body, &r, err, sizeof(err));
    cr_assert_eq(st, NT_OK, "%s: %s", body, err);
    return r;
}

Test(msgs_codec, send_reads_the_fields_and_defaults)
{
    msgs_send_req r = send_ok("{\"room_id\":\"" ROOM "\",\"content\":\"  hi\\n there\\t \"}");
    cr_assert_str_eq(r.room_id, ROOM);
    cr_assert_str_eq(r.content, "hi\n there", "trimmed of ASCII white space at both ends");
    cr_assert_str_eq(r.type, "text");
    cr_assert_str_eq(r.client_ref, "");
    msgs_send_req_clear(&r);

    r = send_ok("{\"room_id\":\"" ROOM "\",\"content\":\"x\",\"message_type\":\"image\","
                "\"client_ref\":\"Az09._:-\"}");
    cr_assert_str_eq(r.type, "image");
    cr_assert_str_eq(r.client_ref, "Az09._:-");
    msgs_send_req_clear(&r);

    r = send_ok("{\"room_id\":\"" ROOM "\",\"content\":\"x\",\"message_type\":\"file\","
                "\"client_ref\":null}");
    cr_assert_str_eq(r.type, "file");
    cr_assert_str_eq(r.client_ref, "");
    msgs_send_req_clear(&r);

    r = send_ok("{\"room_id\":\"" ROOM "\",\"content\":\"x\",\"message_type\":null}");
    cr_assert_str_eq(r.type, "text", "null is the default");
    msgs_send_req_clear(&r);
}

Test(msgs_codec, send_refuses_bad_bodies)
{
    send_refused("", "'room_id' is required");
    send_refused("   ", "'room_id' is required");
    send_refused("[]", "body must be a JSON object");
    send_refused("\"x\"", "body must be a JSON object");
    send_refused("12", "body must be a JSON object");
    send_refused_prefix("{", "invalid JSON");
    send_refused_prefix("{\"room_id\":\"" ROOM "\"} x", "invalid JSON");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\"\xff\"}", "body is not valid UTF-8");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\"\xc3\"}", "body is not valid UTF-8");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\"\xed\xa0\x80\"}",
                 "body is not valid UTF-8");
}

Test(msgs_codec, send_checks_the_room_id_first)
{
    send_refused("{\"content\":\"hi\"}", "'room_id' is required");
    send_refused("{\"room_id\":null,\"content\":\"hi\"}", "'room_id' is required");
    const char *bad[] = {"5",
                         "true",
                         "\"\"",
                         "\"abc\"",
                         "\"0190F5E2-7B1C-7C3D-8E4F-123456789ABC\"",
                         "\"0190f5e27b1c7c3d8e4f123456789abc\"",
                         "\" 0190f5e2-7b1c-7c3d-8e4f-123456789abc\"",
                         "[]",
                         "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = fmt("{\"room_id\":%s,\"content\":\"hi\"}", bad[i]);
        send_refused(b, "'room_id' must be a room id");
        free(b);
    }
    /* The id before anything else: an unknown field or a missing content
     * does not hide a malformed id. */
    send_refused("{\"room_id\":\"abc\",\"colour\":1}", "'room_id' must be a room id");
}

Test(msgs_codec, send_refuses_unknown_fields)
{
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\"hi\",\"colour\":\"red\"}",
                 "unknown field 'colour'");
    /* A misspelt field is named rather than reported as a missing one. */
    send_refused("{\"room_id\":\"" ROOM "\",\"conent\":\"hi\"}", "unknown field 'conent'");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\"hi\",\"user_id\":\"u_bob\"}",
                 "unknown field 'user_id'");
}

Test(msgs_codec, send_checks_the_content)
{
    send_refused("{\"room_id\":\"" ROOM "\"}", "'content' is required");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":null}", "'content' is required");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":5}", "'content' must be a string");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":[\"x\"]}", "'content' must be a string");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\"\"}", "'content' must not be empty");
    send_refused("{\"room_id\":\"" ROOM "\",\"content\":\" \\n\\t\\r \"}",
                 "'content' must not be empty");
    /* C0 and C1 controls and DEL; \n and \t are fine inside. */
    const char *ctl[] = {"\\u0001", "\\u001b", "\\u007f", "\\u0085", "\\u009f", "a\\rb"};
    for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
        char *b = fmt("{\"room_id\":\"" ROOM "\",\"content\":\"a%sb\"}", ctl[i]);
        send_refused(b, "'content' contains a control character");
        free(b);
    }
    send_refused_prefix("{\"room_id\":\"" ROOM "\",\"content\":\"a\\u0000b\"}", "invalid JSON");
    send_refused_prefix("{\"room_id\":\"" ROOM "\",\"content\":\"a\tb\"}", "invalid JSON");
    msgs_send_req r = send_ok("{\"room_id\":\"" ROOM "\",\"content\":\"a\\n\\tb\"}");
    cr_assert_str_eq(r.content, "a\n\tb");
    msgs_send_req_clear(&r);
}

/* Content of n copies of unit (one code point) inside pad. */
static char *content_body(const char *unit, size_t n, const char *pad)
{
    char *c = repeat(unit, n);
    char *b = fmt("{\"room_id\":\"" ROOM "\",\"content\":\"%s%s%s\"}", pad, c, pad);
    free(c);
    return b;
}

Test(msgs_codec, content_length_counts_code_points)
{
    /* 1, 2, 3 and 4 bytes per character, with or without white space around. */
    const char *units[] = {"a", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80"};
    for (size_t u = 0; u < 4; u++) {
        char *b = content_body(units[u], MSGS_CONTENT_MAX, "  \\n ");
        msgs_send_req r = send_ok(b);
        cr_assert_eq(strlen(r.content), MSGS_CONTENT_MAX * (u + 1));
        msgs_send_req_clear(&r);
        free(b);
        b = content_body(units[u], MSGS_CONTENT_MAX + 1, "");
        send_refused(b, "'content' must be 1 to 4000 characters, got 4001");
        free(b);
    }
    /* An escaped character counts once too. */
    char *b = content_body("\\u00e9", MSGS_CONTENT_MAX, "");
    msgs_send_req r = send_ok(b);
    cr_assert_eq(strlen(r.content), 2 * MSGS_CONTENT_MAX);
    msgs_send_req_clear(&r);
    free(b);
}

Test(msgs_codec, send_checks_the_message_type)
{
    const char *bad[] = {"\"video\"", "\"TEXT\"", "\"\"", "\"text \"", "1", "true", "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = fmt("{\"room_id\":\"" ROOM "\",\"content\":\"x\",\"message_type\":%s}", bad[i]);
        send_refused(b, "'message_type' must be text, image or file");
        free(b);
    }
}

Test(msgs_codec, send_checks_the_client_ref)
{
    char *max = repeat("r", MSGS_CLIENT_REF_MAX);
    char *over = repeat("r", MSGS_CLIENT_REF_MAX + 1);
    char *b = fmt("{\"room_id\":\"" ROOM "\",\"content\":\"x\",\"client_ref\":\"%s\"}", max);
    msgs_send_req r = send_ok(b);
    cr_assert_str_eq(r.client_ref, max);
    msgs_send_req_clear(&r);
    free(b);
    char *q = fmt("\"%s\"", over);
    const char *bad[] = {q,           "\"\"",      "\"a b\"", "\"a/b\"",    "\"\xc3\xa9\"",
                         "\"a\\nb\"", "\"a+b\"",   "7",       "true",       "[\"a\"]",
                         "\"a,b\"",   "\"a@b.c\"", "\"#1\"",  "\"\\u00e9\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = fmt("{\"room_id\":\"" ROOM "\",\"content\":\"x\",\"client_ref\":%s}", bad[i]);
        send_refused(b, CREF);
        free(b);
    }
    free(q);
    free(max);
    free(over);
}

/* ---- history ---- */

static nt_status parse_history(const char *body, msgs_history_req *out, char *err, size_t errlen)
{
    size_t len = strlen(body);
    char *copy = malloc(len > 0 ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, body, len);
    memset(out, 0x5a, sizeof(*out));
    err[0] = '\0';
    nt_status st = msgs_parse_history(copy, len, out, err, errlen);
    free(copy);
    if (st != NT_OK) {
        const unsigned char *p = (const unsigned char *)out;
        for (size_t i = 0; i < sizeof(*out); i++)
            cr_assert_eq(p[i], 0x5a, "out untouched on failure");
    }
    return st;
}

static msgs_history_req history_ok(const char *body)
{
    msgs_history_req r;
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(parse_history(body, &r, err, sizeof(err)), NT_OK, "%s: %s", body, err);
    return r;
}

static void history_refused(const char *body, const char *message)
{
    msgs_history_req r;
    char err[NT_ERRMSG_LEN];
    cr_assert_eq(parse_history(body, &r, err, sizeof(err)), NT_EINVAL, "%s", body);
    cr_assert_str_eq(err, message, "%s", body);
}

Test(msgs_codec, history_reads_the_page_wanted)
{
    msgs_history_req r = history_ok("{\"room_id\":\"" ROOM "\"}");
    cr_assert_str_eq(r.room_id, ROOM);
    cr_assert_eq(r.page.kind, MSGS_PAGE_LATEST);
    cr_assert_str_eq(r.page.cursor, "");
    cr_assert_eq(r.page.limit, MSGS_PAGE_DEFAULT);

    r = history_ok("{\"room_id\":\"" ROOM "\",\"before\":\"" MID "\",\"limit\":\"7\"}");
    cr_assert_eq(r.page.kind, MSGS_PAGE_BEFORE);
    cr_assert_str_eq(r.page.cursor, MID);
    cr_assert_eq(r.page.limit, 7);

    r = history_ok("{\"room_id\":\"" ROOM "\",\"after\":\"" MID2 "\",\"limit\":7}");
    cr_assert_eq(r.page.kind, MSGS_PAGE_AFTER);
    cr_assert_str_eq(r.page.cursor, MID2);
    cr_assert_eq(r.page.limit, 7);

    r = history_ok("{\"room_id\":\"" ROOM "\",\"before\":null,\"after\":null,\"limit\":null}");
    cr_assert_eq(r.page.kind, MSGS_PAGE_LATEST);
    cr_assert_eq(r.page.limit, MSGS_PAGE_DEFAULT);

    const char *good[] = {"1", "\"1\"", "100", "\"100\"", "\"007\"", "100.0"};
    const int want[] = {1, 1, 100, 100, 7, 100};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *b = fmt("{\"room_id\":\"" ROOM "\",\"limit\":%s}", good[i]);
        r = history_ok(b);
        cr_assert_eq(r.page.limit, want[i], "%s", good[i]);
        free(b);
    }
}

Test(msgs_codec, history_refuses_bad_limits)
{
    const char *bad[] = {"\"0\"",
                         "\"101\"",
                         "\"abc\"",
                         "\"1.5\"",
                         "\"-3\"",
                         "\"\"",
                         "\" 7\"",
                         "\"7 \"",
                         "\"+7\"",
                         "\"1e2\"",
                         "\"0x10\"",
                         "0",
                         "101",
                         "1.5",
                         "-3",
                         "true",
                         "[7]",
                         "{}",
                         "\"99999999999999999999\"",
                         "1e300"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = fmt("{\"room_id\":\"" ROOM "\",\"limit\":%s}", bad[i]);
        history_refused(b, LIMIT);
        free(b);
    }
}

Test(msgs_codec, history_refuses_bad_cursors_and_fields)
{
    history_refused("{}", "'room_id' is required");
    history_refused("{\"room_id\":\"" ROOM "x\"}", "'room_id' must be a room id");
    history_refused("{\"room_id\":\"" ROOM "\",\"before\":\"abc\"}",
                    "'before' must be a message id");
    history_refused("{\"room_id\":\"" ROOM "\",\"after\":7}", "'after' must be a message id");
    history_refused("{\"room_id\":\"" ROOM "\",\"after\":\"\"}", "'after' must be a message id");
    history_refused("{\"room_id\":\"" ROOM "\",\"before\":\"" MID "\",\"after\":\"" MID2 "\"}",
                    "use 'before' or 'after', not both");
    history_refused("{\"room_id\":\"" ROOM "\",\"cursor\":\"x\"}", "unknown field 'cursor'");
    /* Ids first: a bad cursor is named before an unknown field or a bad limit. */
    history_refused("{\"room_id\":\"" ROOM "\",\"limit\":0,\"x\":1,\"before\":\"no\"}",
                    "'before' must be a message id");
    history_refused("{\"room_id\":\"" ROOM "\",\"limit\":0,\"x\":1}", "unknown field 'x'");
}

/* ---- edit and delete ---- */

Test(msgs_codec, edit_and_delete_read_the_message_id_and_content)
{
    msgs_change_req r;
    char err[NT_ERRMSG_LEN] = "";
    const char *b = "{\"message_id\":\"" MID "\",\"content\":\" new \"}";
    cr_assert_eq(msgs_parse_edit(b, strlen(b), &r, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(r.message_id, MID);
    cr_assert_str_eq(r.content, "new");
    msgs_change_req_clear(&r);
    b = "{\"message_id\":\"" MID "\"}";
    cr_assert_eq(msgs_parse_delete(b, strlen(b), &r, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(r.message_id, MID);
    cr_assert_null(r.content);
    msgs_change_req_clear(&r);
}

static void change_refused(bool edit, const char *body, const char *message)
{
    msgs_change_req r;
    memset(&r, 0x5a, sizeof(r));
    char err[NT_ERRMSG_LEN] = "";
    nt_status st = edit ? msgs_parse_edit(body, strlen(body), &r, err, sizeof(err))
                        : msgs_parse_delete(body, strlen(body), &r, err, sizeof(err));
    cr_assert_eq(st, NT_EINVAL, "%s", body);
    cr_assert_str_eq(err, message, "%s", body);
    cr_assert_eq(((unsigned char *)&r)[0], 0x5a, "out untouched");
}

Test(msgs_codec, edit_and_delete_refuse_bad_bodies)
{
    for (int e = 0; e < 2; e++) {
        change_refused(e, "{}", "'message_id' is required");
        change_refused(e, "{\"message_id\":\"nope\",\"content\":\"x\"}",
                       "'message_id' must be a message id");
        change_refused(e, "{\"message_id\":\"" MID "\",\"room_id\":\"" ROOM "\",\"content\":\"x\"}",
                       "unknown field 'room_id'");
        change_refused(e, "[1]", "body must be a JSON object");
    }
    change_refused(false, "{\"message_id\":\"" MID "\",\"content\":\"x\"}",
                   "unknown field 'content'");
    change_refused(true, "{\"message_id\":\"" MID "\"}", "'content' is required");
    change_refused(true, "{\"message_id\":\"" MID "\",\"content\":\"\\t\"}",
                   "'content' must not be empty");
    change_refused(true, "{\"message_id\":\"" MID "\",\"content\":\"\\u0007\"}",
                   "'content' contains a control character");
    char *over = content_body("\xc3\xa9", MSGS_CONTENT_MAX + 1, "");
    /* content_body names room_id; rewrite it as an edit. */
    char *b = fmt("{\"message_id\":\"" MID "\",%s", strstr(over, "\"content\""));
    change_refused(true, b, "'content' must be 1 to 4000 characters, got 4001");
    free(b);
    free(over);
}

/* ---- bytes cut short or mangled ---- */

typedef nt_status (*parse_fn)(const char *data, size_t len, char *err, size_t errlen);

static nt_status p_send(const char *d, size_t n, char *err, size_t errlen)
{
    msgs_send_req r;
    nt_status st = msgs_parse_send(d, n, &r, err, errlen);
    if (st == NT_OK) {
        cr_assert(nt_utf8_valid(r.content, strlen(r.content)));
        msgs_send_req_clear(&r);
    }
    return st;
}

static nt_status p_history(const char *d, size_t n, char *err, size_t errlen)
{
    msgs_history_req r;
    nt_status st = msgs_parse_history(d, n, &r, err, errlen);
    if (st == NT_OK)
        cr_assert(r.page.limit >= 1 && r.page.limit <= MSGS_PAGE_MAX);
    return st;
}

static nt_status p_edit(const char *d, size_t n, char *err, size_t errlen)
{
    msgs_change_req r;
    nt_status st = msgs_parse_edit(d, n, &r, err, errlen);
    if (st == NT_OK)
        msgs_change_req_clear(&r);
    return st;
}

static nt_status p_delete(const char *d, size_t n, char *err, size_t errlen)
{
    msgs_change_req r;
    nt_status st = msgs_parse_delete(d, n, &r, err, errlen);
    if (st == NT_OK)
        msgs_change_req_clear(&r);
    return st;
}

static const struct {
    parse_fn fn;
    const char *body;
} whole[] = {
    {p_send, "{\"room_id\":\"" ROOM "\",\"content\":\"h\xc3\xa9llo \\u00e9 \xf0\x9f\x98\x80\\n\","
             "\"message_type\":\"file\",\"client_ref\":\"c-1\"}"},
    {p_history, "{\"room_id\":\"" ROOM "\",\"before\":\"" MID "\",\"limit\":\"25\"}"},
    {p_edit, "{\"message_id\":\"" MID "\",\"content\":\"\\\"quoted\\\" \xe6\x97\xa5\"}"},
    {p_delete, "{\"message_id\":\"" MID "\"}"},
};

/* Every prefix of a valid body is refused with a message, never accepted
 * and never read past (each prefix is an exact-length allocation). */
Test(msgs_codec, truncated_bodies_are_refused)
{
    for (size_t k = 0; k < sizeof(whole) / sizeof(whole[0]); k++) {
        size_t len = strlen(whole[k].body);
        char err[NT_ERRMSG_LEN];
        cr_assert_eq(whole[k].fn(whole[k].body, len, err, sizeof(err)), NT_OK, "%s: %s",
                     whole[k].body, err);
        for (size_t n = 0; n < len; n++) {
            char *p = malloc(n > 0 ? n : 1);
            cr_assert_not_null(p);
            memcpy(p, whole[k].body, n);
            err[0] = '\0';
            nt_status st = whole[k].fn(p, n, err, sizeof(err));
            free(p);
            cr_assert_eq(st, NT_EINVAL, "body %zu cut at %zu", k, n);
            cr_assert_neq(err[0], '\0', "body %zu cut at %zu has a message", k, n);
            cr_assert(nt_utf8_valid(err, strlen(err)));
        }
    }
}

/* Each byte replaced by each of a few troublesome bytes: the parsers answer
 * OK or a 400 with a message, and never crash or leak. */
Test(msgs_codec, mangled_bodies_never_crash)
{
    static const unsigned char subst[] = {0x00, 0x01, 0x7f, 0x80, 0xc3, 0xff, '"', '\\',
                                          '{',  '}',  '[',  ',',  ':',  ' ',  '0', 'u'};
    for (size_t k = 0; k < sizeof(whole) / sizeof(whole[0]); k++) {
        size_t len = strlen(whole[k].body);
        char *p = malloc(len);
        cr_assert_not_null(p);
        for (size_t i = 0; i < len; i++) {
            for (size_t s = 0; s < sizeof(subst); s++) {
                memcpy(p, whole[k].body, len);
                p[i] = (char)subst[s];
                char err[NT_ERRMSG_LEN] = "";
                nt_status st = whole[k].fn(p, len, err, sizeof(err));
                cr_assert(st == NT_OK || st == NT_EINVAL, "body %zu byte %zu", k, i);
                if (st == NT_EINVAL)
                    cr_assert_neq(err[0], '\0');
            }
        }
        free(p);
    }
}

/* ---- authorize ---- */

Test(msgs_codec, authorize_body_names_room_and_action)
{
    char *s = msgs_authorize_body(ROOM, "moderate");
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "%s", s);
    cr_assert_str_eq(str(j, "room_id"), ROOM);
    cr_assert_str_eq(str(j, "action"), "moderate");
    cr_assert_eq(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    free(s);
}

Test(msgs_codec, reply_error_message_is_read_from_the_envelope)
{
    char out[NT_ERRMSG_LEN];
    const char *env = "{\"error\":{\"code\":\"forbidden\",\"message\":\"you are not a member of "
                      "room " ROOM "\"}}";
    msgs_reply_error_message(env, strlen(env), out, sizeof(out));
    cr_assert_str_eq(out, "you are not a member of room " ROOM);

    const char *none[] = {"",
                          "not json",
                          "{\"data\":{}}",
                          "{\"error\":\"x\"}",
                          "{\"error\":{\"message\":5}}",
                          "{\"error\":{\"code\":\"x\"}}",
                          "[{\"error\":{\"message\":\"x\"}}]",
                          "{\"error\":{\"message\":\"\xff\"}}"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        snprintf(out, sizeof(out), "%s", "stale");
        msgs_reply_error_message(none[i], strlen(none[i]), out, sizeof(out));
        cr_assert_str_eq(out, "", "%s", none[i]);
    }
    snprintf(out, sizeof(out), "%s", "stale");
    msgs_reply_error_message(NULL, 0, out, sizeof(out));
    cr_assert_str_eq(out, "");
}

Test(msgs_codec, reply_error_message_is_cut_at_a_whole_character)
{
    /* "é" is two bytes; an 8-byte buffer holds 7: "aaaaa" and one whole é. */
    const char *env = "{\"error\":{\"message\":\"aaaaa\xc3\xa9\xc3\xa9\"}}";
    char out[8];
    msgs_reply_error_message(env, strlen(env), out, sizeof(out));
    cr_assert_str_eq(out, "aaaaa\xc3\xa9");
    char small[7];
    msgs_reply_error_message(env, strlen(env), small, sizeof(small));
    cr_assert_str_eq(small, "aaaaa", "the half character is dropped");
}
