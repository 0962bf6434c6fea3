/* Unit tests of the JSON the edge exchanges with the services: room events
 * turned into broadcast frames (exact bytes, payload untouched, every way a
 * subject or payload can be refused), service replies turned into phx_reply
 * frames (checked by parsing them back), the authorize and history request
 * bodies and their replies, profile usernames and typing payloads. Inputs are
 * heap copies of exactly their length, so the sanitizer catches any read past
 * the end. */
#include "../../../services/edge/edge_codec.h"

#include "../../../services/edge/edge_frame.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* A heap copy of s[0..len) with no NUL after it. */
static char *exact(const char *s, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);
    cr_assert_not_null(p);
    if (len > 0)
        memcpy(p, s, len);
    return p;
}

/* The frame bytes of m as a C string (edge_msg keeps a NUL after them). */
static const char *text_of(edge_msg *m)
{
    return (const char *)edge_msg_data(m);
}

/* edge_codec_event on an exact copy of payload[0..len). */
static nt_status event_n(const char *id, const char *event, const char *payload, size_t len,
                         edge_msg **out)
{
    char *copy = exact(payload, len);
    nt_status st = edge_codec_event("room", id, event, copy, len, 16, out);
    free(copy);
    return st;
}

static nt_status event(const char *id, const char *event, const char *payload, edge_msg **out)
{
    return event_n(id, event, payload, strlen(payload), out);
}

/* Checks that the event is refused and that *out is left alone; a message
 * made by mistake is dropped first, so that a failing check leaks nothing.
 * Uses cr_expect, so that one test reports every case that fails. */
static void event_refused_n(const char *id, const char *event, const char *payload, size_t len)
{
    edge_msg *sentinel = (edge_msg *)(uintptr_t)0x1;
    edge_msg *m = sentinel;
    nt_status st = event_n(id, event, payload, len, &m);
    if (st == NT_OK && m != sentinel && m != NULL) {
        cr_expect_eq(st, NT_EINVAL, "id '%s' event '%s' payload '%.*s' was accepted as: %s", id,
                     event, (int)len, payload, text_of(m));
        edge_msg_unref(m);
        return;
    }
    cr_expect_eq(st, NT_EINVAL, "id '%s' event '%s' payload '%.*s': got %d", id, event, (int)len,
                 payload, st);
    cr_expect_eq(m, sentinel, "id '%s' event '%s': out written on failure", id, event);
}

static void event_refused(const char *id, const char *event, const char *payload)
{
    event_refused_n(id, event, payload, strlen(payload));
}

/* A reply as the NATS adapter hands it over: data is an exact heap copy. */
static nt_response response(int http, const char *body, long long retry_after_ms)
{
    nt_response r;
    memset(&r, 0, sizeof(r));
    r.http = http;
    r.len = body != NULL ? strlen(body) : 0;
    r.data = body != NULL ? exact(body, r.len) : NULL;
    r.retry_after_ms = retry_after_ms;
    return r;
}

static void response_clear(nt_response *r)
{
    free(r->data);
    memset(r, 0, sizeof(*r));
}

/* Parses a whole frame and checks its head: [jr, ref, topic, event, payload]
 * with jr and ref strings equal to the given ones (or JSON null for NULL).
 * Returns the parsed array; the caller deletes it. */
static cJSON *parse_frame(const char *data, size_t len, const char *jr, const char *ref,
                          const char *topic, const char *ev)
{
    cJSON *a = cJSON_ParseWithLength(data, len);
    cr_assert_not_null(a, "not JSON: %.*s", (int)len, data);
    cr_assert(cJSON_IsArray(a), "not an array: %.*s", (int)len, data);
    cr_assert_eq(cJSON_GetArraySize(a), 5, "%.*s", (int)len, data);
    const char *want[2] = {jr, ref};
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (want[i] == NULL) {
            cr_assert(cJSON_IsNull(e), "element %d should be null: %.*s", i, (int)len, data);
        } else {
            cr_assert(cJSON_IsString(e), "element %d should be a string: %.*s", i, (int)len, data);
            cr_assert_str_eq(e->valuestring, want[i]);
        }
    }
    const cJSON *t = cJSON_GetArrayItem(a, 2);
    const cJSON *e = cJSON_GetArrayItem(a, 3);
    cr_assert(cJSON_IsString(t) && cJSON_IsString(e), "%.*s", (int)len, data);
    cr_assert_str_eq(t->valuestring, topic);
    cr_assert_str_eq(e->valuestring, ev);
    return a;
}

/* The phx_reply that edge_codec_service_reply makes for (st, resp), with
 * join_ref "3", ref "7" and topic "room:R". Returns the parsed frame and
 * sets *status and *rsp to its payload's members (borrowed from it). */
static cJSON *service_reply(nt_status st, const nt_response *resp, const char **status,
                            const cJSON **rsp)
{
    nt_buf b;
    nt_buf_init(&b, 1 << 16);
    cr_assert_eq(edge_codec_service_reply("3", "7", "room:R", st, resp, &b), NT_OK);
    cJSON *a = parse_frame(b.data, b.len, "3", "7", "room:R", "phx_reply");
    nt_buf_free(&b);
    const cJSON *p = cJSON_GetArrayItem(a, 4);
    cr_assert(cJSON_IsObject(p));
    cr_assert_eq(cJSON_GetArraySize(p), 2, "payload is {status, response}");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "status");
    cr_assert(cJSON_IsString(s));
    *status = s->valuestring;
    *rsp = cJSON_GetObjectItemCaseSensitive(p, "response");
    cr_assert_not_null(*rsp);
    return a;
}

/* Asserts that the reply is an error whose response has the given reason. */
static void expect_error(const char *status, const cJSON *rsp, const char *reason)
{
    cr_assert_str_eq(status, "error");
    cr_assert(cJSON_IsObject(rsp));
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(rsp, "reason");
    cr_assert(cJSON_IsString(r), "no reason");
    cr_assert_str_eq(r->valuestring, reason);
}

/* Parses out as a JSON object; the caller deletes it. */
static cJSON *parse_object(const nt_buf *b)
{
    cJSON *o = cJSON_ParseWithLength(b->data, b->len);
    cr_assert_not_null(o, "not JSON: %.*s", (int)b->len, b->data);
    cr_assert(cJSON_IsObject(o), "not an object: %.*s", (int)b->len, b->data);
    return o;
}

static void expect_str(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "'%s' is not a string", key);
    cr_assert_str_eq(v->valuestring, want, "'%s'", key);
}

/* A history page run on an exact copy of body; msgs starts empty. */
static nt_status page(const char *body, edge_msg ***msgs, size_t *n, bool *more, char last[40])
{
    char *copy = exact(body, strlen(body));
    nt_status st =
        edge_codec_history_page(copy, strlen(body), "5", "room:R", 16, msgs, n, more, last);
    free(copy);
    return st;
}

/* Drops every message of a page, as the server does on success and failure. */
static void page_free(edge_msg **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        edge_msg_unref(msgs[i]);
    free(msgs);
}

static bool username(const char *body, char *out, size_t outlen)
{
    char *copy = exact(body, strlen(body));
    bool ok = edge_codec_username(copy, strlen(body), out, outlen);
    free(copy);
    return ok;
}

/* ---- edge_codec_event ---- */

Test(edge_codec, event_makes_the_exact_broadcast_frame)
{
    /* A payload already in compact form comes out byte for byte, non-ASCII
     * text and escapes included (the codec re-prints what it parsed). */
    const char *payload = "{\"id\":\"01HZX\",\"body\":\"h\xc3\xa9llo \\\"q\\\"\",\"n\":1.5,"
                          "\"room_id\":\"R1\"}";
    edge_msg *m = NULL;
    cr_assert_eq(event("R1", "message_received", payload, &m), NT_OK);
    char want[512];
    int n =
        snprintf(want, sizeof(want), "[null,null,\"room:R1\",\"message_received\",%s]", payload);
    cr_assert(n > 0 && (size_t)n < sizeof(want));
    cr_assert_eq(m->len, (size_t)n, "got %s", text_of(m));
    cr_assert(memcmp(edge_msg_data(m), want, m->len) == 0, "got %s", text_of(m));
    cr_assert_eq(m->pre, 16);
    cr_assert_eq(m->refs, 1);
    cr_assert_str_eq(m->msg_id, "01HZX");
    edge_msg_unref(m);
}

Test(edge_codec, event_payload_white_space_is_not_forwarded)
{
    edge_msg *m = NULL;
    cr_assert_eq(event("R", "message_received", "{ \"a\" : 1 ,\n \"b\":[ 1 , 2 ] }", &m), NT_OK);
    cr_assert_str_eq(text_of(m),
                     "[null,null,\"room:R\",\"message_received\",{\"a\":1,\"b\":[1,2]}]");
    edge_msg_unref(m);
}

Test(edge_codec, event_frame_is_valid_json)
{
    edge_msg *m = NULL;
    cr_assert_eq(event("a-B_9", "typing", "{\"user_id\":\"u\",\"typing\":true}", &m), NT_OK);
    cJSON *a = parse_frame(text_of(m), m->len, NULL, NULL, "room:a-B_9", "typing");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(a, 4), "typing")));
    cJSON_Delete(a);
    edge_msg_unref(m);
}

Test(edge_codec, event_msg_id_only_for_message_received)
{
    const char *payload = "{\"id\":\"01HZX\",\"body\":\"x\"}";
    const char *others[] = {"message_updated", "message_deleted", "typing", "message_received_x"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        edge_msg *m = NULL;
        cr_assert_eq(event("R", others[i], payload, &m), NT_OK, "%s", others[i]);
        cr_assert_str_eq(m->msg_id, "", "%s", others[i]);
        edge_msg_unref(m);
    }
    /* message_received without a usable id: still forwarded, no msg_id. */
    const char *no_id[] = {"{\"body\":\"x\"}", "{\"id\":42}", "{\"id\":null}",
                           "{\"data\":{\"id\":\"nested\"}}",
                           "{\"id\":\"0123456789012345678901234567890123456789\"}"};
    for (size_t i = 0; i < sizeof(no_id) / sizeof(no_id[0]); i++) {
        edge_msg *m = NULL;
        cr_assert_eq(event("R", "message_received", no_id[i], &m), NT_OK, "%s", no_id[i]);
        cr_assert_str_eq(m->msg_id, "", "%s", no_id[i]);
        edge_msg_unref(m);
    }
    /* The longest id that fits (39 bytes) is kept whole. */
    edge_msg *m = NULL;
    cr_assert_eq(
        event("R", "message_received", "{\"id\":\"012345678901234567890123456789012345678\"}", &m),
        NT_OK);
    cr_assert_str_eq(m->msg_id, "012345678901234567890123456789012345678");
    edge_msg_unref(m);
}

Test(edge_codec, event_refuses_ids_that_are_not_plain_tokens)
{
    const char *bad[] = {"",    "a.b", "a b", " a",       "a\n", "a:b",
                         "a/b", "a*",  ">",   "\xc3\xa9", "a\"b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        event_refused(bad[i], "message_received", "{}");
    char longid[201];
    memset(longid, 'a', 200);
    longid[200] = '\0';
    event_refused(longid, "message_received", "{}");
    /* A long but reasonable id is fine. */
    longid[100] = '\0';
    edge_msg *m = NULL;
    cr_assert_eq(event(longid, "message_received", "{}", &m), NT_OK);
    edge_msg_unref(m);
}

Test(edge_codec, event_refuses_events_that_are_not_plain_tokens)
{
    const char *bad[] = {"", "message.received", "message received", "ev\t", "a:b", "*", "ev\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        event_refused("R", bad[i], "{}");
    /* An event name is at most EDGE_EVENT_MAX bytes, as in client frames. */
    char ev[EDGE_EVENT_MAX + 2];
    memset(ev, 'e', EDGE_EVENT_MAX + 1);
    ev[EDGE_EVENT_MAX + 1] = '\0';
    event_refused("R", ev, "{}");
    ev[EDGE_EVENT_MAX] = '\0';
    edge_msg *m = NULL;
    cr_assert_eq(event("R", ev, "{}", &m), NT_OK);
    edge_msg_unref(m);
}

Test(edge_codec, event_refuses_payloads_that_are_not_objects)
{
    const char *bad[] = {"[]", "[{\"id\":\"x\"}]", "\"text\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        event_refused("R", "message_received", bad[i]);
}

Test(edge_codec, event_refuses_invalid_utf8)
{
    const char *bad[] = {
        "{\"body\":\"\xff\"}",             /* never valid */
        "{\"body\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"body\":\"\xe2\x82\"}",         /* cut sequence */
        "{\"body\":\"\xed\xa0\x80\"}",     /* surrogate */
        "{\"body\":\"\xf4\x90\x80\x80\"}", /* past U+10FFFF */
        "{\"b\xff\":1}",                   /* in a key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        event_refused("R", "message_received", bad[i]);
}

Test(edge_codec, event_refuses_invalid_json)
{
    const char *bad[] = {"{",          "{\"a\":}",         "{\"a\":1,}", "{a:1}",
                         "{\"a\":1}x", "{\"a\":1}{}",      "{'a':1}",    "{\"a\":\"\\x\"}",
                         "{\"a\":+1}", "{\"a\":\"\x01\"}", "{\"a\":nul}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        event_refused("R", "message_received", bad[i]);
    /* A raw NUL inside the length. */
    event_refused_n("R", "message_received", "{\"a\":1}\0", 8);
}

Test(edge_codec, event_refuses_every_truncation_of_a_valid_payload)
{
    const char *payload = "{\"id\":\"01HZX\",\"body\":\"h\xc3\xa9llo\",\"n\":[1,2,{\"k\":null}]}";
    size_t len = strlen(payload);
    for (size_t cut = 1; cut < len; cut++)
        event_refused_n("R", "message_received", payload, cut);
}

/* Numbers and white space that cJSON accepts but JSON (RFC 8259) does not:
 * inserted unchanged, they would make a frame that the browser's JSON.parse
 * rejects. */
/* What only a lenient parser accepts is refused or re-printed as strict
 * JSON: never forwarded as it came, which a browser would refuse. */
Test(edge_codec, event_never_forwards_what_only_lenient_parsers_accept)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"{\"a\":01}", "{\"a\":1}"},    /* leading zero */
        {"{\"a\":1.}", "{\"a\":1}"},    /* no digit after the point */
        {"{\"a\":-01}", "{\"a\":-1}"},  /* leading zero, negative */
        {"{\x01\"a\":1}", "{\"a\":1}"}, /* a control byte as white space */
        {"\x0b{\"a\":1}", "{\"a\":1}"}, /* vertical tab is not JSON white space */
        {"{\"a\":1\x0c}", "{\"a\":1}"}, /* nor is form feed */
        {" ", "{}"},                    /* white space alone */
        {" \t\r\n ", "{}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        edge_msg *m = NULL;
        nt_status st = event("R", "message_received", cases[i].in, &m);
        if (st != NT_OK) {
            cr_assert_eq(st, NT_EINVAL, "case %zu", i);
            cr_assert_null(m);
            continue;
        }
        char want[128];
        snprintf(want, sizeof(want), "[null,null,\"room:R\",\"message_received\",%s]",
                 cases[i].out);
        cr_assert_str_eq(text_of(m), want, "case %zu", i);
        edge_msg_unref(m);
    }
}

Test(edge_codec, event_never_makes_an_invalid_frame_from_an_empty_payload)
{
    /* len 0: refusing it or sending {} are both fine; a broken frame is not. */
    edge_msg *m = NULL;
    if (event_n("R", "ping", "", 0, &m) == NT_OK) {
        cJSON *a = parse_frame(text_of(m), m->len, NULL, NULL, "room:R", "ping");
        cr_assert(cJSON_IsObject(cJSON_GetArrayItem(a, 4)));
        cJSON_Delete(a);
        edge_msg_unref(m);
    }
}

/* ---- edge_codec_service_reply ---- */

Test(edge_codec, service_reply_ok_carries_the_data_as_response)
{
    nt_response r = response(200, "{\"data\":{\"id\":\"m1\",\"n\":2,\"tags\":[\"a\"]}}", 0);
    const char *status;
    const cJSON *rsp;
    cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
    cr_assert_str_eq(status, "ok");
    cr_assert(cJSON_IsObject(rsp));
    cr_assert_eq(cJSON_GetArraySize(rsp), 3);
    expect_str(rsp, "id", "m1");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(rsp, "n")->valueint, 2);
    cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rsp, "tags")));
    cJSON_Delete(a);
    response_clear(&r);
}

Test(edge_codec, service_reply_frame_bytes_for_ok)
{
    nt_response r = response(200, "{\"data\":{\"id\":\"m1\"}}", 0);
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_codec_service_reply("3", "7", "room:R", NT_OK, &r, &b), NT_OK);
    cr_assert_str_eq(b.data,
                     "[\"3\",\"7\",\"room:R\",\"phx_reply\",{\"status\":\"ok\",\"response\":{"
                     "\"id\":\"m1\"}}]");
    nt_buf_free(&b);
    response_clear(&r);
}

Test(edge_codec, service_reply_error_has_code_and_message)
{
    nt_response r = response(
        403, "{\"error\":{\"code\":\"forbidden\",\"message\":\"not a \\\"member\\\"\"}}", 0);
    const char *status;
    const cJSON *rsp;
    cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
    expect_error(status, rsp, "forbidden");
    expect_str(rsp, "message", "not a \"member\"");
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(rsp, "retry_after_ms"),
                   "no retry hint anywhere");
    cJSON_Delete(a);
    response_clear(&r);
}

Test(edge_codec, service_reply_error_keeps_the_body_retry_hint)
{
    nt_response r = response(429,
                             "{\"error\":{\"code\":\"rate_limited\",\"message\":\"slow down\","
                             "\"retry_after_ms\":250}}",
                             0);
    const char *status;
    const cJSON *rsp;
    cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
    expect_error(status, rsp, "rate_limited");
    expect_str(rsp, "message", "slow down");
    const cJSON *retry = cJSON_GetObjectItemCaseSensitive(rsp, "retry_after_ms");
    cr_assert(cJSON_IsNumber(retry));
    cr_assert_eq(retry->valueint, 250);
    cJSON_Delete(a);
    response_clear(&r);
}

Test(edge_codec, service_reply_error_takes_the_retry_hint_from_the_header)
{
    nt_response r =
        response(429, "{\"error\":{\"code\":\"rate_limited\",\"message\":\"slow\"}}", 1500);
    const char *status;
    const cJSON *rsp;
    cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
    expect_error(status, rsp, "rate_limited");
    const cJSON *retry = cJSON_GetObjectItemCaseSensitive(rsp, "retry_after_ms");
    cr_assert(cJSON_IsNumber(retry), "retry_after_ms from resp->retry_after_ms");
    cr_assert_eq(retry->valueint, 1500);
    cJSON_Delete(a);
    response_clear(&r);
}

Test(edge_codec, service_reply_error_without_code_is_internal)
{
    const char *bodies[] = {"{\"error\":{\"message\":\"boom\"}}", "{\"error\":{\"code\":5}}",
                            "{\"error\":\"text\"}", "{}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        nt_response r = response(500, bodies[i], 0);
        const char *status;
        const cJSON *rsp;
        cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
        expect_error(status, rsp, "internal");
        cJSON_Delete(a);
        response_clear(&r);
    }
}

Test(edge_codec, service_reply_200_without_data_is_not_ok)
{
    nt_response r = response(200, "{\"result\":1}", 0);
    const char *status;
    const cJSON *rsp;
    cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
    expect_error(status, rsp, "internal");
    cJSON_Delete(a);
    response_clear(&r);
}

Test(edge_codec, service_reply_timeout_and_unavailable)
{
    const char *status;
    const cJSON *rsp;
    cJSON *a = service_reply(NT_ETIMEOUT, NULL, &status, &rsp);
    expect_error(status, rsp, "timeout");
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rsp, "message")));
    cJSON_Delete(a);
    a = service_reply(NT_EUNAVAIL, NULL, &status, &rsp);
    expect_error(status, rsp, "unavailable");
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rsp, "message")));
    cJSON_Delete(a);
}

Test(edge_codec, service_reply_unparsable_body_is_internal)
{
    const char *bodies[] = {"not json", "{\"data\":", "[{\"data\":1}]", "{\"data\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        nt_response r = response(200, bodies[i], 0);
        const char *status;
        const cJSON *rsp;
        cJSON *a = service_reply(NT_OK, &r, &status, &rsp);
        expect_error(status, rsp, "internal");
        cJSON_Delete(a);
        response_clear(&r);
    }
}

Test(edge_codec, service_reply_echoes_refs_as_strings)
{
    /* Numeric-looking refs stay strings; quotes in them are escaped. */
    nt_response r = response(200, "{\"data\":{}}", 0);
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_codec_service_reply("12", "a\"b", "room:R", NT_OK, &r, &b), NT_OK);
    cJSON *a = parse_frame(b.data, b.len, "12", "a\"b", "room:R", "phx_reply");
    cJSON_Delete(a);
    /* A NULL join_ref (a push outside any join) is null. */
    nt_buf_reset(&b);
    cr_assert_eq(edge_codec_service_reply(NULL, "8", "room:R", NT_ETIMEOUT, NULL, &b), NT_OK);
    a = parse_frame(b.data, b.len, NULL, "8", "room:R", "phx_reply");
    cJSON_Delete(a);
    nt_buf_free(&b);
    response_clear(&r);
}

Test(edge_codec, service_reply_appends_to_out)
{
    nt_response r = response(200, "{\"data\":{\"x\":1}}", 0);
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(nt_buf_append_str(&b, "PREFIX"), NT_OK);
    cr_assert_eq(edge_codec_service_reply("3", "7", "room:R", NT_OK, &r, &b), NT_OK);
    cr_assert(strncmp(b.data, "PREFIX[", 7) == 0, "got %s", b.data);
    cJSON *a = parse_frame(b.data + 6, b.len - 6, "3", "7", "room:R", "phx_reply");
    cJSON_Delete(a);
    nt_buf_free(&b);
    response_clear(&r);
}

Test(edge_codec, service_reply_too_big_for_out_fails_cleanly)
{
    char body[2048];
    char big[1024];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"data\":{\"text\":\"%s\"}}", big);
    nt_response r = response(200, body, 0);
    nt_buf b;
    nt_buf_init(&b, 256);
    cr_assert_neq(edge_codec_service_reply("3", "7", "room:R", NT_OK, &r, &b), NT_OK);
    cr_assert_eq(b.len, 0, "a failed encoding leaves nothing behind");
    nt_buf_free(&b);
    response_clear(&r);
}

/* ---- authorize ---- */

Test(edge_codec, authorize_body_has_room_and_action)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_codec_authorize_body("R\"1\\", "join", &b), NT_OK);
    cJSON *o = parse_object(&b);
    cr_assert_eq(cJSON_GetArraySize(o), 2);
    expect_str(o, "room_id", "R\"1\\");
    expect_str(o, "action", "join");
    cJSON_Delete(o);
    nt_buf_free(&b);
}

Test(edge_codec, authorize_verdict_by_status)
{
    struct {
        int http;
        edge_join_verdict want;
    } cases[] = {
        {200, EDGE_JOIN_OK},          {403, EDGE_JOIN_FORBIDDEN},   {404, EDGE_JOIN_NOT_FOUND},
        {400, EDGE_JOIN_NOT_FOUND},   {500, EDGE_JOIN_UNAVAILABLE}, {503, EDGE_JOIN_UNAVAILABLE},
        {401, EDGE_JOIN_UNAVAILABLE}, {429, EDGE_JOIN_UNAVAILABLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nt_response r = response(cases[i].http, "{}", 0);
        cr_assert_eq(edge_codec_authorize_verdict(NT_OK, &r), cases[i].want, "http %d",
                     cases[i].http);
        response_clear(&r);
    }
}

Test(edge_codec, authorize_verdict_without_an_answer_is_unavailable)
{
    nt_response r = response(200, "{\"data\":{}}", 0);
    cr_assert_eq(edge_codec_authorize_verdict(NT_ETIMEOUT, NULL), EDGE_JOIN_UNAVAILABLE);
    cr_assert_eq(edge_codec_authorize_verdict(NT_EUNAVAIL, NULL), EDGE_JOIN_UNAVAILABLE);
    cr_assert_eq(edge_codec_authorize_verdict(NT_EINTERNAL, &r), EDGE_JOIN_UNAVAILABLE,
                 "st != NT_OK wins over a 200 resp");
    cr_assert_eq(edge_codec_authorize_verdict(NT_OK, NULL), EDGE_JOIN_UNAVAILABLE);
    response_clear(&r);
}

/* ---- history ---- */

Test(edge_codec, history_body_has_room_after_and_limit)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_codec_history_body("R1", "01HZX", 100, &b), NT_OK);
    cJSON *o = parse_object(&b);
    cr_assert_eq(cJSON_GetArraySize(o), 3);
    expect_str(o, "room_id", "R1");
    expect_str(o, "after", "01HZX");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(o, "limit");
    cr_assert(cJSON_IsNumber(limit));
    cr_assert_eq(limit->valueint, 100);
    cJSON_Delete(o);
    nt_buf_free(&b);
}

Test(edge_codec, history_page_makes_one_push_per_message)
{
    const char *body = "{\"data\":{\"messages\":[{\"id\":\"01A\",\"body\":\"one\"},"
                       "{\"id\":\"01B\",\"body\":\"t\\\"wo\",\"n\":1}],\"has_more\":true}}";
    edge_msg **msgs = NULL;
    size_t n = 0;
    bool more = false;
    char last[40] = "junk";
    cr_assert_eq(page(body, &msgs, &n, &more, last), NT_OK);
    cr_assert_eq(n, 2);
    cr_assert(more);
    cr_assert_str_eq(last, "01B", "the page's newest id (the last, oldest first)");
    const char *ids[] = {"01A", "01B"};
    const char *bodies[] = {"one", "t\"wo"};
    for (size_t i = 0; i < 2; i++) {
        edge_msg *m = msgs[i];
        cr_assert_eq(m->refs, 1);
        cr_assert_eq(m->pre, 16);
        cr_assert_str_eq(m->msg_id, ids[i]);
        cJSON *a = parse_frame(text_of(m), m->len, "5", NULL, "room:R", "message_received");
        const cJSON *p = cJSON_GetArrayItem(a, 4);
        cr_assert(cJSON_IsObject(p));
        expect_str(p, "id", ids[i]);
        expect_str(p, "body", bodies[i]);
        cr_assert_eq(cJSON_GetArraySize(p), i == 0 ? 2 : 3, "the message is copied whole");
        cJSON_Delete(a);
    }
    page_free(msgs, n);
}

Test(edge_codec, history_page_appends_to_msgs)
{
    edge_msg **msgs = NULL;
    size_t n = 0;
    bool more = true;
    char last[40];
    cr_assert_eq(page("{\"data\":{\"messages\":[{\"id\":\"01A\"}],\"has_more\":true}}", &msgs, &n,
                      &more, last),
                 NT_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(page("{\"data\":{\"messages\":[{\"id\":\"01B\"},{\"id\":\"01C\"}],"
                      "\"has_more\":false}}",
                      &msgs, &n, &more, last),
                 NT_OK);
    cr_assert_eq(n, 3);
    cr_assert_not(more);
    cr_assert_str_eq(msgs[0]->msg_id, "01A");
    cr_assert_str_eq(msgs[1]->msg_id, "01B");
    cr_assert_str_eq(msgs[2]->msg_id, "01C");
    cr_assert_str_eq(last, "01C");
    page_free(msgs, n);
}

Test(edge_codec, history_empty_page)
{
    edge_msg **msgs = NULL;
    size_t n = 0;
    bool more = true;
    char last[40] = "stale";
    cr_assert_eq(page("{\"data\":{\"messages\":[],\"has_more\":false}}", &msgs, &n, &more, last),
                 NT_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(msgs);
    cr_assert_not(more);
    cr_assert_str_eq(last, "");
}

Test(edge_codec, history_page_that_is_not_a_page_is_refused)
{
    const char *bad[] = {
        "{\"data\":{\"messages\":[]}}",                     /* no has_more */
        "{\"data\":{\"messages\":[],\"has_more\":\"no\"}}", /* has_more not a bool */
        "{\"data\":{\"messages\":[],\"has_more\":1}}",
        "{\"data\":{\"has_more\":false}}",                 /* no messages */
        "{\"data\":{\"messages\":{},\"has_more\":false}}", /* messages not a list */
        "{\"messages\":[],\"has_more\":false}",            /* no data envelope */
        "{\"error\":{\"code\":\"forbidden\"}}",
        "not json",
        "[]",                                             /* not an object */
        "{\"data\":{\"messages\":[],\"has_more\":false}", /* cut */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        edge_msg **msgs = NULL;
        size_t n = 0;
        bool more = false;
        char last[40] = "";
        cr_assert_eq(page(bad[i], &msgs, &n, &more, last), NT_EINVAL, "%s", bad[i]);
        cr_assert_eq(n, 0, "%s", bad[i]);
        page_free(msgs, n);
    }
}

Test(edge_codec, history_message_without_id_is_refused_without_leaking)
{
    /* The first message is good and the second is not: whatever was made
     * before the failure is left in msgs for the caller to drop (as the
     * server does), and nothing else may leak (the sanitizer build checks). */
    const char *bad[] = {
        "{\"data\":{\"messages\":[{\"id\":\"01A\"},{\"body\":\"no id\"}],\"has_more\":false}}",
        "{\"data\":{\"messages\":[{\"id\":\"01A\"},{\"id\":7}],\"has_more\":false}}",
        "{\"data\":{\"messages\":[{\"id\":\"01A\"},\"text\"],\"has_more\":false}}",
        "{\"data\":{\"messages\":[{\"id\":\"01A\"},[{\"id\":\"x\"}]],\"has_more\":false}}",
        "{\"data\":{\"messages\":[{\"id\":\"0123456789012345678901234567890123456789\"}],"
        "\"has_more\":false}}",
        "{\"data\":{\"messages\":[{\"body\":\"no id\"}],\"has_more\":false}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        edge_msg **msgs = NULL;
        size_t n = 0;
        bool more = false;
        char last[40] = "";
        cr_assert_eq(page(bad[i], &msgs, &n, &more, last), NT_EINVAL, "%s", bad[i]);
        cr_assert_leq(n, 1, "%s", bad[i]);
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(msgs[k]->refs, 1);
        page_free(msgs, n);
    }
}

/* ---- username and typing ---- */

Test(edge_codec, username_from_a_profile_reply)
{
    char out[EDGE_USERNAME_MAX + 1] = "";
    cr_assert(
        username("{\"data\":{\"id\":\"u1\",\"username\":\"al\\u00efce\"}}", out, sizeof(out)));
    cr_assert_str_eq(out, "al\xc3\xaf"
                          "ce");
}

Test(edge_codec, username_absent_or_not_a_string_is_false)
{
    const char *bad[] = {
        "{\"data\":{\"id\":\"u1\"}}",           "{\"data\":{\"username\":null}}",
        "{\"data\":{\"username\":42}}",         "{\"data\":{\"username\":[\"a\"]}}",
        "{\"username\":\"top-level\"}",         "{\"data\":\"alice\"}",
        "{\"error\":{\"code\":\"not_found\"}}", "not json",
        "{\"data\":{\"username\":\"al",         "{\"data\":{\"username\":\"\xff\"}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[EDGE_USERNAME_MAX + 1] = "";
        cr_assert_not(username(bad[i], out, sizeof(out)), "%s", bad[i]);
    }
}

Test(edge_codec, username_too_long_for_out_is_false)
{
    char out[6];
    cr_assert(username("{\"data\":{\"username\":\"alice\"}}", out, sizeof(out)), "5 + NUL fits");
    cr_assert_str_eq(out, "alice");
    cr_assert_not(username("{\"data\":{\"username\":\"alice!\"}}", out, sizeof(out)),
                  "6 + NUL does not fit, and is not truncated");
    /* EDGE_USERNAME_MAX bytes fit a buffer of EDGE_USERNAME_MAX + 1. */
    char name[EDGE_USERNAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[EDGE_USERNAME_MAX] = '\0';
    char body[512];
    char big[EDGE_USERNAME_MAX + 1];
    snprintf(body, sizeof(body), "{\"data\":{\"username\":\"%s\"}}", name);
    cr_assert(username(body, big, sizeof(big)));
    cr_assert_eq(strlen(big), EDGE_USERNAME_MAX);
    name[EDGE_USERNAME_MAX] = 'n';
    name[EDGE_USERNAME_MAX + 1] = '\0';
    snprintf(body, sizeof(body), "{\"data\":{\"username\":\"%s\"}}", name);
    cr_assert_not(username(body, big, sizeof(big)));
}

Test(edge_codec, typing_payload_with_username)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_codec_typing("u1", "al\"ice", true, &b), NT_OK);
    cJSON *o = parse_object(&b);
    cr_assert_eq(cJSON_GetArraySize(o), 3);
    expect_str(o, "user_id", "u1");
    expect_str(o, "username", "al\"ice");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "typing")));
    cJSON_Delete(o);
    nt_buf_free(&b);
}

Test(edge_codec, typing_payload_without_username_is_null)
{
    nt_buf b;
    nt_buf_init(&b, 4096);
    cr_assert_eq(edge_codec_typing("u1", NULL, false, &b), NT_OK);
    cJSON *o = parse_object(&b);
    cr_assert_eq(cJSON_GetArraySize(o), 3);
    expect_str(o, "user_id", "u1");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "username");
    cr_assert_not_null(name, "username is present");
    cr_assert(cJSON_IsNull(name));
    const cJSON *typing = cJSON_GetObjectItemCaseSensitive(o, "typing");
    cr_assert(cJSON_IsBool(typing) && !cJSON_IsTrue(typing));
    cJSON_Delete(o);
    nt_buf_free(&b);
}
