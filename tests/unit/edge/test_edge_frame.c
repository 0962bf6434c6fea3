/* Unit tests of the Phoenix V2 frame: the decoder on valid frames, on every
 * prefix of them, and on each rule broken one at a time; the payload
 * accessors; and the encoders, whose output is parsed back to check that it
 * is a five-element array with refs as strings or null. */
#include "../../../services/edge/edge_frame.h"

#include "nt_json.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Decodes data[0..len) from a heap copy of exactly len bytes, so that any
 * read past the end is caught by the sanitizer. */
static edge_frame_result dec_n(const char *data, size_t len, edge_frame *f, char *reason,
                               size_t reasonlen)
{
    char *copy = malloc(len > 0 ? len : 1);
    cr_assert_not_null(copy);
    if (len > 0)
        memcpy(copy, data, len);
    edge_frame_result r = edge_frame_decode(copy, len, f, reason, reasonlen);
    free(copy);
    return r;
}

static char reason[128];

static edge_frame_result dec(const char *s, edge_frame *f)
{
    return dec_n(s, strlen(s), f, reason, sizeof(reason));
}

/* Asserts that s decodes as MALFORMED and leaves no payload behind. */
static void malformed(const char *s)
{
    edge_frame f;
    edge_frame_result r = dec(s, &f);
    cr_assert_eq(r, EDGE_FRAME_MALFORMED, "%s decoded as %d", s, (int)r);
    cr_assert_null(f.payload, "%s", s);
    cr_assert_neq(reason[0], '\0', "%s has a reason", s);
    edge_frame_clear(&f);
}

/* s repeated n times. */
static char *repeat(char ch, size_t n)
{
    char *r = malloc(n + 1);
    cr_assert_not_null(r);
    memset(r, ch, n);
    r[n] = '\0';
    return r;
}

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

/* Parses an encoded frame back and checks its shape: valid UTF-8, a JSON
 * array of exactly five elements, refs as the given strings or null, topic
 * and event as given, an object payload. Returns the parsed array. */
static cJSON *parse_frame(const nt_buf *b, const char *jr, const char *ref, const char *topic,
                          const char *event)
{
    cr_assert_not_null(b->data);
    cr_assert_eq(strlen(b->data), b->len);
    cr_assert(nt_utf8_valid(b->data, b->len), "valid UTF-8: %s", b->data);
    cJSON *a = cJSON_ParseWithLength(b->data, b->len);
    cr_assert_not_null(a, "parses: %s", b->data);
    cr_assert(cJSON_IsArray(a));
    cr_assert_eq(cJSON_GetArraySize(a), 5, "%s", b->data);
    const char *want[4] = {jr, ref, topic, event};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (want[i] == NULL) {
            cr_assert(cJSON_IsNull(v), "element %d is null in %s", i, b->data);
        } else {
            cr_assert(cJSON_IsString(v), "element %d is a string in %s", i, b->data);
            cr_assert_str_eq(v->valuestring, want[i]);
        }
    }
    cr_assert(cJSON_IsObject(cJSON_GetArrayItem(a, 4)), "%s", b->data);
    return a;
}

static const cJSON *member(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert_not_null(v, "member %s", key);
    return v;
}

/* ---- decoding valid frames ---- */

Test(edge_frame, decodes_a_join)
{
    edge_frame f;
    cr_assert_eq(dec("[\"3\",\"3\",\"room:1\",\"phx_join\",{\"last_seen\":0}]", &f), EDGE_FRAME_OK);
    cr_assert(f.has_join_ref);
    cr_assert_str_eq(f.join_ref, "3");
    cr_assert(f.has_ref);
    cr_assert_str_eq(f.ref, "3");
    cr_assert_str_eq(f.topic, "room:1");
    cr_assert_str_eq(f.event, "phx_join");
    cr_assert_not_null(f.payload);
    cr_assert(cJSON_IsObject((cJSON *)f.payload));
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(f.payload, "last_seen")->valueint, 0);
    cr_assert_str_eq(reason, "");
    edge_frame_clear(&f);
    cr_assert_null(f.payload);
}

Test(edge_frame, decodes_a_push)
{
    edge_frame f;
    cr_assert_eq(dec(" [\"3\", \"7\", \"room:1\", \"new_msg\", {\"body\": \"hi \\u00e9\"}]\n", &f),
                 EDGE_FRAME_OK);
    cr_assert_str_eq(f.join_ref, "3");
    cr_assert_str_eq(f.ref, "7");
    cr_assert_str_eq(f.topic, "room:1");
    cr_assert_str_eq(f.event, "new_msg");
    cr_assert_str_eq(edge_frame_payload_str(&f, "body"), "hi \xc3\xa9");
    edge_frame_clear(&f);
}

Test(edge_frame, decodes_a_heartbeat_with_a_null_join_ref)
{
    edge_frame f;
    cr_assert_eq(dec("[null,\"12\",\"phoenix\",\"heartbeat\",{}]", &f), EDGE_FRAME_OK);
    cr_assert_not(f.has_join_ref);
    cr_assert_str_eq(f.join_ref, "");
    cr_assert(f.has_ref);
    cr_assert_str_eq(f.ref, "12");
    cr_assert_str_eq(f.topic, "phoenix");
    cr_assert_str_eq(f.event, "heartbeat");
    cr_assert_not_null(f.payload);
    cr_assert_null(((cJSON *)f.payload)->child, "empty payload");
    edge_frame_clear(&f);
}

Test(edge_frame, decodes_a_leave_and_a_null_ref)
{
    edge_frame f;
    cr_assert_eq(dec("[\"3\",\"9\",\"room:1\",\"phx_leave\",{}]", &f), EDGE_FRAME_OK);
    cr_assert_str_eq(f.event, "phx_leave");
    cr_assert_str_eq(f.ref, "9");
    edge_frame_clear(&f);
    cr_assert_eq(dec("[\"3\",null,\"room:1\",\"phx_leave\",{}]", &f), EDGE_FRAME_OK);
    cr_assert(f.has_join_ref);
    cr_assert_not(f.has_ref);
    cr_assert_str_eq(f.ref, "");
    edge_frame_clear(&f);
}

Test(edge_frame, accepts_and_ignores_extra_trailing_elements)
{
    edge_frame f;
    cr_assert_eq(dec("[\"1\",\"2\",\"room:1\",\"ev\",{\"a\":1},\"x\",[1,2],null,{}]", &f),
                 EDGE_FRAME_OK);
    cr_assert_str_eq(f.topic, "room:1");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(f.payload, "a")));
    edge_frame_clear(&f);
}

Test(edge_frame, keeps_non_ascii_topics_and_escaped_refs)
{
    edge_frame f;
    cr_assert_eq(dec("[\"a\\\"b\\\\c\",\"\\u00e9\",\"room:caf\xc3\xa9\",\"ev\",{}]", &f),
                 EDGE_FRAME_OK);
    cr_assert_str_eq(f.join_ref, "a\"b\\c");
    cr_assert_str_eq(f.ref, "\xc3\xa9");
    cr_assert_str_eq(f.topic, "room:caf\xc3\xa9");
    edge_frame_clear(&f);
}

Test(edge_frame, accepts_a_null_reason_buffer)
{
    edge_frame f;
    const char *bad = "[1,\"1\",\"t\",\"e\",{}]";
    cr_assert_eq(edge_frame_decode(bad, strlen(bad), &f, NULL, 0), EDGE_FRAME_MALFORMED);
    edge_frame_clear(&f);
    const char *ok = "[\"1\",\"1\",\"t\",\"e\",{}]";
    cr_assert_eq(edge_frame_decode(ok, strlen(ok), &f, NULL, 0), EDGE_FRAME_OK);
    edge_frame_clear(&f);
    edge_frame_clear(NULL);
}

Test(edge_frame, zeroes_a_reused_frame)
{
    edge_frame f;
    cr_assert_eq(dec("[\"1\",\"2\",\"room:1\",\"ev\",{}]", &f), EDGE_FRAME_OK);
    edge_frame_clear(&f);
    cr_assert_eq(dec("[null,null,\"t\",\"e\",\"x\"]", &f), EDGE_FRAME_BAD_PAYLOAD);
    cr_assert_not(f.has_join_ref);
    cr_assert_not(f.has_ref);
    cr_assert_str_eq(f.join_ref, "");
    cr_assert_str_eq(f.ref, "");
    edge_frame_clear(&f);
}

/* ---- truncated and malformed input ---- */

Test(edge_frame, every_prefix_of_a_valid_frame_is_malformed)
{
    static const char *const frames[] = {
        "[\"3\",\"3\",\"room:1\",\"phx_join\",{\"last_seen\":0,\"a\":[1,2.5,true,null]}]",
        "[null,\"12\",\"phoenix\",\"heartbeat\",{}]",
        "[\"1\",\"2\",\"room:caf\xc3\xa9\",\"new_msg\",{\"body\":\"\xf0\x9f\x98\x80 \\u00e9\\n\"}]",
    };
    for (size_t k = 0; k < sizeof(frames) / sizeof(frames[0]); k++) {
        size_t len = strlen(frames[k]);
        edge_frame f;
        cr_assert_eq(dec_n(frames[k], len, &f, reason, sizeof(reason)), EDGE_FRAME_OK, "%s",
                     frames[k]);
        edge_frame_clear(&f);
        for (size_t n = 0; n < len; n++) {
            edge_frame_result r = dec_n(frames[k], n, &f, reason, sizeof(reason));
            cr_assert_eq(r, EDGE_FRAME_MALFORMED, "frame %zu cut at %zu gave %d", k, n, (int)r);
            cr_assert_null(f.payload);
            edge_frame_clear(&f);
        }
    }
}

Test(edge_frame, refuses_input_that_is_not_json)
{
    malformed("");
    malformed("   ");
    malformed("hello");
    malformed("[\"1\",\"1\",\"t\",\"e\",{}]x");
    malformed("[\"1\",\"1\",\"t\",\"e\",{}] []");
    malformed("[\"1\",\"1\",\"t\",\"e\",{},]");
    malformed("[\"1\",\"1\",\"t\",\"e\",{\"a\":}]");
    malformed("['1','1','t','e',{}]");
    edge_frame f;
    cr_assert_eq(edge_frame_decode(NULL, 0, &f, reason, sizeof(reason)), EDGE_FRAME_MALFORMED);
    edge_frame_clear(&f);
}

Test(edge_frame, refuses_wrong_arity_and_non_arrays)
{
    malformed("[]");
    malformed("[\"1\"]");
    malformed("[\"1\",\"1\"]");
    malformed("[\"1\",\"1\",\"room:1\"]");
    malformed("[\"1\",\"1\",\"room:1\",\"ev\"]");
    malformed("{\"join_ref\":\"1\",\"ref\":\"1\",\"topic\":\"t\",\"event\":\"e\",\"payload\":{}}");
    malformed("{}");
    malformed("\"[\\\"1\\\",\\\"1\\\",\\\"t\\\",\\\"e\\\",{}]\"");
    malformed("42");
    malformed("null");
    malformed("true");
    cr_assert_str_eq(reason, "frame must be a JSON array");
    malformed("[\"1\",\"1\",\"room:1\",\"ev\"]");
    cr_assert_str_eq(reason, "frame must have 5 elements");
}

Test(edge_frame, refuses_refs_that_are_not_strings_or_null)
{
    malformed("[1,\"1\",\"t\",\"e\",{}]");
    cr_assert_str_eq(reason, "join_ref must be a string or null");
    malformed("[\"1\",2,\"t\",\"e\",{}]");
    cr_assert_str_eq(reason, "ref must be a string or null");
    malformed("[\"1\",2.5,\"t\",\"e\",{}]");
    malformed("[true,\"1\",\"t\",\"e\",{}]");
    malformed("[\"1\",false,\"t\",\"e\",{}]");
    malformed("[{},\"1\",\"t\",\"e\",{}]");
    malformed("[\"1\",[\"1\"],\"t\",\"e\",{}]");
}

Test(edge_frame, refuses_empty_refs)
{
    malformed("[\"\",\"1\",\"t\",\"e\",{}]");
    malformed("[\"1\",\"\",\"t\",\"e\",{}]");
    malformed("[null,\"\",\"phoenix\",\"heartbeat\",{}]");
}

Test(edge_frame, refuses_oversized_refs_topic_and_event)
{
    char *ref_max = repeat('7', EDGE_REF_MAX);
    char *ref_big = repeat('7', EDGE_REF_MAX + 1);
    char *topic_max = repeat('t', EDGE_TOPIC_MAX);
    char *topic_big = repeat('t', EDGE_TOPIC_MAX + 1);
    char *event_max = repeat('e', EDGE_EVENT_MAX);
    char *event_big = repeat('e', EDGE_EVENT_MAX + 1);
    edge_frame f;

    char *s = fmt("[\"%s\",\"%s\",\"%s\",\"%s\",{}]", ref_max, ref_max, topic_max, event_max);
    cr_assert_eq(dec(s, &f), EDGE_FRAME_OK, "every field at its maximum");
    cr_assert_str_eq(f.join_ref, ref_max);
    cr_assert_str_eq(f.ref, ref_max);
    cr_assert_str_eq(f.topic, topic_max);
    cr_assert_str_eq(f.event, event_max);
    edge_frame_clear(&f);
    free(s);

    const char *fields[4][2] = {
        {ref_big, ref_max}, {ref_max, ref_big}, {topic_big, event_max}, {topic_max, event_big}};
    s = fmt("[\"%s\",\"1\",\"t\",\"e\",{}]", fields[0][0]);
    malformed(s);
    free(s);
    s = fmt("[\"1\",\"%s\",\"t\",\"e\",{}]", fields[1][1]);
    malformed(s);
    free(s);
    s = fmt("[\"1\",\"1\",\"%s\",\"%s\",{}]", fields[2][0], fields[2][1]);
    malformed(s);
    free(s);
    s = fmt("[\"1\",\"1\",\"%s\",\"%s\",{}]", fields[3][0], fields[3][1]);
    malformed(s);
    free(s);
    /* Lengths are in bytes: 80 two-byte characters fit, 81 do not. */
    char topic_utf8[2 * 81 + 1] = "";
    for (int i = 0; i < 81; i++)
        memcpy(topic_utf8 + 2 * i, "\xc3\xa9", 3);
    s = fmt("[\"1\",\"1\",\"%s\",\"e\",{}]", topic_utf8);
    malformed(s);
    free(s);
    topic_utf8[2 * 80] = '\0';
    s = fmt("[\"1\",\"1\",\"%s\",\"e\",{}]", topic_utf8);
    cr_assert_eq(dec(s, &f), EDGE_FRAME_OK);
    edge_frame_clear(&f);
    free(s);

    free(ref_max);
    free(ref_big);
    free(topic_max);
    free(topic_big);
    free(event_max);
    free(event_big);
}

Test(edge_frame, refuses_topics_and_events_that_are_not_names)
{
    malformed("[\"1\",\"1\",\"\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"t\",\"\",{}]");
    malformed("[\"1\",\"1\",null,\"e\",{}]");
    malformed("[\"1\",\"1\",\"t\",null,{}]");
    malformed("[\"1\",\"1\",5,\"e\",{}]");
    malformed("[\"1\",\"1\",\"t\",{},{}]");
    malformed("[\"1\",\"1\",[\"t\"],\"e\",{}]");
}

Test(edge_frame, refuses_control_characters_in_topic_and_event)
{
    malformed("[\"1\",\"1\",\"room:\\u0001\",\"e\",{}]");
    cr_assert_str_eq(reason, "topic contains a control character");
    malformed("[\"1\",\"1\",\"room:\\n1\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:\\t1\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:\\u007f\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:\\u0085\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:\xc2\x9b\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:1\",\"new\\u001bmsg\",{}]");
    cr_assert_str_eq(reason, "event contains a control character");
    /* A raw control byte inside a string is not even JSON. */
    malformed("[\"1\",\"1\",\"room:\x01\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:1\",\"e\x1f\",{}]");
    /* U+00A0 is no control character. */
    edge_frame f;
    cr_assert_eq(dec("[\"1\",\"1\",\"room:\xc2\xa0\",\"e\",{}]", &f), EDGE_FRAME_OK);
    edge_frame_clear(&f);
}

Test(edge_frame, refuses_invalid_utf8)
{
    malformed("[\"1\",\"1\",\"room:\xff\",\"e\",{}]");
    cr_assert_str_eq(reason, "frame is not valid UTF-8");
    malformed("[\"1\",\"1\",\"room:\xc0\xaf\",\"e\",{}]");         /* overlong '/' */
    malformed("[\"1\",\"1\",\"room:\xe2\x82\",\"e\",{}]");         /* cut sequence */
    malformed("[\"1\",\"1\",\"room:\xed\xa0\x80\",\"e\",{}]");     /* surrogate */
    malformed("[\"1\",\"1\",\"room:\xf4\x90\x80\x80\",\"e\",{}]"); /* past U+10FFFF */
    malformed("[\"1\",\"1\",\"t\",\"e\",{\"body\":\"\x80\"}]");
    malformed("[\"1\",\"1\",\"t\",\"e\",{}]\xc3");
    /* Escapes that would decode to broken UTF-16 are refused too. */
    malformed("[\"1\",\"1\",\"room:\\ud800\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:\\udc00x\",\"e\",{}]");
}

Test(edge_frame, refuses_nul_bytes_and_escaped_nuls)
{
    static const char inside[] = "[\"1\",\"1\",\"room:1\0x\",\"e\",{}]";
    static const char outside[] = "[\"1\",\"1\",\"room:1\",\"e\",{}]\0";
    static const char between[] = "[\"1\",\"1\",\"room:1\",\0\"e\",{}]";
    const char *const cases[] = {inside, outside, between};
    const size_t lens[] = {sizeof(inside) - 1, sizeof(outside) - 1, sizeof(between) - 1};
    for (size_t i = 0; i < 3; i++) {
        edge_frame f;
        cr_assert_eq(dec_n(cases[i], lens[i], &f, reason, sizeof(reason)), EDGE_FRAME_MALFORMED,
                     "case %zu", i);
        edge_frame_clear(&f);
    }
    malformed("[\"1\",\"1\",\"room:1\\u0000x\",\"e\",{}]");
    malformed("[\"1\\u0000\",\"1\",\"room:1\",\"e\",{}]");
    malformed("[\"1\",\"1\",\"room:1\",\"e\",{\"body\":\"a\\u0000b\"}]");
}

Test(edge_frame, non_object_payload_is_bad_payload_with_the_rest_filled)
{
    static const char *const payloads[] = {"\"hi\"", "[]", "[{}]", "null", "42", "true"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *s = fmt("[\"3\",\"8\",\"room:1\",\"new_msg\",%s]", payloads[i]);
        edge_frame f;
        cr_assert_eq(dec(s, &f), EDGE_FRAME_BAD_PAYLOAD, "%s", s);
        cr_assert(f.has_join_ref);
        cr_assert_str_eq(f.join_ref, "3");
        cr_assert(f.has_ref);
        cr_assert_str_eq(f.ref, "8");
        cr_assert_str_eq(f.topic, "room:1");
        cr_assert_str_eq(f.event, "new_msg");
        cr_assert_null(f.payload);
        cr_assert_str_eq(reason, "payload must be a JSON object");
        cr_assert_null(edge_frame_payload_str(&f, "body"));
        edge_frame_clear(&f);
        free(s);
    }
    /* A bad ref wins over a bad payload: the frame is malformed. */
    malformed("[3,\"8\",\"room:1\",\"new_msg\",\"hi\"]");
}

Test(edge_frame, reason_never_holds_frame_data)
{
    malformed("[\"1\",\"1\",\"secret-topic\\u0001\",\"e\",{}]");
    cr_assert_null(strstr(reason, "secret"), "%s", reason);
    malformed("[\"1\",\"1\",\"t\",\"e\",{\"secret\":]");
    cr_assert_null(strstr(reason, "secret"), "%s", reason);
}

/* ---- payload accessors ---- */

Test(edge_frame, payload_str_reads_string_members_only)
{
    edge_frame f;
    cr_assert_eq(dec("[\"1\",\"2\",\"room:1\",\"ev\",{\"body\":\"hi\",\"n\":3,\"z\":null,"
                     "\"o\":{\"body\":\"x\"},\"e\":\"\"}]",
                     &f),
                 EDGE_FRAME_OK);
    cr_assert_str_eq(edge_frame_payload_str(&f, "body"), "hi");
    cr_assert_str_eq(edge_frame_payload_str(&f, "e"), "");
    cr_assert_null(edge_frame_payload_str(&f, "absent"));
    cr_assert_null(edge_frame_payload_str(&f, "n"));
    cr_assert_null(edge_frame_payload_str(&f, "z"));
    cr_assert_null(edge_frame_payload_str(&f, "o"));
    cr_assert_null(edge_frame_payload_str(&f, "BODY"), "keys are case-sensitive");
    edge_frame_clear(&f);
    cr_assert_null(edge_frame_payload_str(&f, "body"));
}

/* Runs edge_frame_payload_with_room on the payload of frame s and returns
 * the parsed result. */
static cJSON *with_room(const char *s, const char *room, nt_buf *out, edge_frame *f)
{
    cr_assert_eq(dec(s, f), EDGE_FRAME_OK, "%s", s);
    cr_assert_eq(edge_frame_payload_with_room(f, room, out), NT_OK);
    cr_assert(nt_utf8_valid(out->data, out->len));
    cJSON *j = cJSON_ParseWithLength(out->data, out->len);
    cr_assert_not_null(j, "%s", out->data);
    cr_assert(cJSON_IsObject(j));
    return j;
}

static int count_key(const cJSON *o, const char *key)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (strcmp(it->string, key) == 0)
            n++;
    }
    return n;
}

Test(edge_frame, payload_with_room_adds_room_id_to_an_empty_payload)
{
    nt_buf out;
    nt_buf_init(&out, 1024);
    edge_frame f;
    cJSON *j = with_room("[\"1\",\"2\",\"room:r1\",\"ev\",{}]", "r1", &out, &f);
    cr_assert_str_eq(out.data, "{\"room_id\":\"r1\"}");
    cJSON_Delete(j);
    edge_frame_clear(&f);
    nt_buf_free(&out);
}

Test(edge_frame, payload_with_room_keeps_every_other_member)
{
    nt_buf out;
    nt_buf_init(&out, 1024);
    nt_buf_append_str(&out, "prefix:");
    edge_frame f;
    cr_assert_eq(dec("[\"1\",\"2\",\"room:r1\",\"ev\",{\"body\":\"hi\\\"you\\\"\",\"n\":[1,{}],"
                     "\"t\":true}]",
                     &f),
                 EDGE_FRAME_OK);
    cr_assert_eq(edge_frame_payload_with_room(&f, "r1", &out), NT_OK);
    cr_assert_eq(strncmp(out.data, "prefix:", 7), 0, "appends: %s", out.data);
    cJSON *j = cJSON_Parse(out.data + 7);
    cr_assert_not_null(j, "%s", out.data);
    cr_assert_eq(cJSON_GetArraySize(j), 4);
    cr_assert_str_eq(member(j, "room_id")->valuestring, "r1");
    cr_assert_str_eq(member(j, "body")->valuestring, "hi\"you\"");
    cr_assert_eq(cJSON_GetArraySize(member(j, "n")), 2);
    cr_assert(cJSON_IsTrue(member(j, "t")));
    cr_assert_null(strchr(out.data, ' '), "compact: %s", out.data);
    cJSON_Delete(j);
    edge_frame_clear(&f);
    nt_buf_free(&out);
}

Test(edge_frame, payload_with_room_replaces_every_room_id)
{
    nt_buf out;
    nt_buf_init(&out, 1024);
    edge_frame f;
    cJSON *j = with_room(
        "[\"1\",\"2\",\"room:r1\",\"ev\",{\"room_id\":\"evil\",\"a\":1,\"room_id\":\"evil2\"}]",
        "r1", &out, &f);
    cr_assert_eq(count_key(j, "room_id"), 1, "%s", out.data);
    cr_assert_str_eq(member(j, "room_id")->valuestring, "r1");
    cr_assert_eq(member(j, "a")->valueint, 1);
    cr_assert_eq(cJSON_GetArraySize(j), 2);
    cr_assert_null(strstr(out.data, "evil"), "%s", out.data);
    /* The frame's own payload is untouched. */
    cr_assert_str_eq(edge_frame_payload_str(&f, "room_id"), "evil");
    cJSON_Delete(j);
    edge_frame_clear(&f);

    /* A non-string room_id is replaced as well; the only member left. */
    nt_buf_reset(&out);
    j = with_room("[\"1\",\"2\",\"room:r1\",\"ev\",{\"room_id\":{\"x\":1}}]", "r\"1", &out, &f);
    cr_assert_str_eq(out.data, "{\"room_id\":\"r\\\"1\"}");
    cJSON_Delete(j);
    edge_frame_clear(&f);
    nt_buf_free(&out);
}

Test(edge_frame, payload_with_room_respects_the_cap)
{
    edge_frame f;
    cr_assert_eq(dec("[\"1\",\"2\",\"room:r1\",\"ev\",{\"body\":\"hello\",\"room_id\":\"x\"}]", &f),
                 EDGE_FRAME_OK);
    static const char want[] = "{\"room_id\":\"r1\",\"body\":\"hello\"}";
    size_t need = sizeof(want) - 1;
    for (size_t cap = 0; cap <= need; cap++) {
        nt_buf out;
        nt_buf_init(&out, cap + 3);
        nt_buf_append_str(&out, "abc");
        nt_status st = edge_frame_payload_with_room(&f, "r1", &out);
        if (cap < need) {
            cr_assert_eq(st, NT_ETOOBIG, "cap %zu", cap);
            cr_assert_eq(out.len, 3, "nothing of a failed append stays");
            cr_assert_str_eq(out.data, "abc");
        } else {
            cr_assert_eq(st, NT_OK);
            cr_assert_str_eq(out.data + 3, want);
        }
        nt_buf_free(&out);
    }
    edge_frame_clear(&f);
}

/* ---- encoders ---- */

Test(edge_frame, reply_ok_defaults_to_an_empty_response)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_reply(&out, "3", "7", "room:1", "ok", NULL), NT_OK);
    cr_assert_str_eq(out.data, "[\"3\",\"7\",\"room:1\",\"phx_reply\","
                               "{\"status\":\"ok\",\"response\":{}}]");
    cJSON *a = parse_frame(&out, "3", "7", "room:1", "phx_reply");
    cJSON_Delete(a);
    nt_buf_reset(&out);
    /* The heartbeat reply: null join_ref. */
    cr_assert_eq(edge_frame_reply(&out, NULL, "12", "phoenix", "ok", NULL), NT_OK);
    cr_assert_str_eq(out.data, "[null,\"12\",\"phoenix\",\"phx_reply\","
                               "{\"status\":\"ok\",\"response\":{}}]");
    a = parse_frame(&out, NULL, "12", "phoenix", "phx_reply");
    cJSON_Delete(a);
    nt_buf_free(&out);
}

Test(edge_frame, reply_carries_the_response_object)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_reply(&out, "3", "7", "room:1", "ok", "{\"id\":\"m1\",\"n\":[1]}"),
                 NT_OK);
    cJSON *a = parse_frame(&out, "3", "7", "room:1", "phx_reply");
    const cJSON *p = cJSON_GetArrayItem(a, 4);
    cr_assert_eq(cJSON_GetArraySize(p), 2);
    cr_assert_str_eq(member(p, "status")->valuestring, "ok");
    const cJSON *r = member(p, "response");
    cr_assert_str_eq(member(r, "id")->valuestring, "m1");
    cr_assert_eq(cJSON_GetArraySize(member(r, "n")), 1);
    cJSON_Delete(a);
    nt_buf_free(&out);
}

Test(edge_frame, reply_error_without_extra)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_reply_error(&out, NULL, "7", "room:1", "unmatched topic", NULL), NT_OK);
    cr_assert_str_eq(out.data, "[null,\"7\",\"room:1\",\"phx_reply\",{\"status\":\"error\","
                               "\"response\":{\"reason\":\"unmatched topic\"}}]");
    cJSON *a = parse_frame(&out, NULL, "7", "room:1", "phx_reply");
    cJSON_Delete(a);
    nt_buf_reset(&out);
    /* An empty extra object adds nothing, not even a comma. */
    cr_assert_eq(edge_frame_reply_error(&out, "1", "2", "t", "no", " { \n} "), NT_OK);
    cr_assert_str_eq(out.data, "[\"1\",\"2\",\"t\",\"phx_reply\",{\"status\":\"error\","
                               "\"response\":{\"reason\":\"no\"}}]");
    nt_buf_free(&out);
}

Test(edge_frame, reply_error_with_extra_members)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_reply_error(&out, "3", "9", "room:1", "rate limited",
                                        "{\"retry_after_ms\":250,\"scope\":\"room\"}"),
                 NT_OK);
    cr_assert_str_eq(out.data, "[\"3\",\"9\",\"room:1\",\"phx_reply\",{\"status\":\"error\","
                               "\"response\":{\"reason\":\"rate limited\",\"retry_after_ms\":250,"
                               "\"scope\":\"room\"}}]");
    cJSON *a = parse_frame(&out, "3", "9", "room:1", "phx_reply");
    const cJSON *r = member(cJSON_GetArrayItem(a, 4), "response");
    cr_assert_eq(cJSON_GetArraySize(r), 3);
    cr_assert_eq(member(r, "retry_after_ms")->valueint, 250);
    cJSON_Delete(a);
    nt_buf_free(&out);
}

Test(edge_frame, push_writes_null_refs_for_broadcasts)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    const char *p = "{\"id\":\"m1\",\"body\":\"hi\"}";
    cr_assert_eq(edge_frame_push(&out, NULL, NULL, "room:1", "new_msg", p, strlen(p)), NT_OK);
    cr_assert_str_eq(out.data,
                     "[null,null,\"room:1\",\"new_msg\",{\"id\":\"m1\",\"body\":\"hi\"}]");
    cJSON *a = parse_frame(&out, NULL, NULL, "room:1", "new_msg");
    cJSON_Delete(a);
    nt_buf_reset(&out);
    /* A per-join push: join_ref, null ref; payload_len limits the payload. */
    cr_assert_eq(edge_frame_push(&out, "3", NULL, "room:1", "presence_state", "{}garbage", 2),
                 NT_OK);
    cr_assert_str_eq(out.data, "[\"3\",null,\"room:1\",\"presence_state\",{}]");
    a = parse_frame(&out, "3", NULL, "room:1", "presence_state");
    cJSON_Delete(a);
    nt_buf_free(&out);
}

Test(edge_frame, push_writes_phx_close_and_phx_error)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_push(&out, "3", "3", "room:1", "phx_close", "{}", 2), NT_OK);
    cr_assert_str_eq(out.data, "[\"3\",\"3\",\"room:1\",\"phx_close\",{}]");
    cJSON *a = parse_frame(&out, "3", "3", "room:1", "phx_close");
    cJSON_Delete(a);
    nt_buf_reset(&out);
    /* No payload at all still writes an object. */
    cr_assert_eq(edge_frame_push(&out, "3", "3", "room:1", "phx_error", NULL, 0), NT_OK);
    cr_assert_str_eq(out.data, "[\"3\",\"3\",\"room:1\",\"phx_error\",{}]");
    nt_buf_free(&out);
}

Test(edge_frame, escapes_quotes_backslashes_and_controls)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_reply(&out, "a\"b\\c", "\x01\n\x1f/", "room:\xc3\xa9", "o\"k", NULL),
                 NT_OK);
    cr_assert_str_eq(out.data, "[\"a\\\"b\\\\c\",\"\\u0001\\u000a\\u001f/\",\"room:\xc3\xa9\","
                               "\"phx_reply\",{\"status\":\"o\\\"k\",\"response\":{}}]");
    cJSON *a = parse_frame(&out, "a\"b\\c", "\x01\n\x1f/", "room:\xc3\xa9", "phx_reply");
    cr_assert_str_eq(member(cJSON_GetArrayItem(a, 4), "status")->valuestring, "o\"k");
    cJSON_Delete(a);
    nt_buf_free(&out);
}

Test(edge_frame, never_writes_invalid_utf8)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    /* Broken bytes become U+FFFD; valid multi-byte characters stay. */
    cr_assert_eq(
        edge_frame_push(&out, "\xff", NULL, "room:\xe2\x82", "e\xf0\x9f\x98\x80\xc3", "{}", 2),
        NT_OK);
    cr_assert_str_eq(out.data, "[\"\\ufffd\",null,\"room:\\ufffd\\ufffd\","
                               "\"e\xf0\x9f\x98\x80\\ufffd\",{}]");
    cJSON *a = parse_frame(&out, "\xef\xbf\xbd", NULL, "room:\xef\xbf\xbd\xef\xbf\xbd",
                           "e\xf0\x9f\x98\x80\xef\xbf\xbd");
    cJSON_Delete(a);
    nt_buf_free(&out);
}

Test(edge_frame, encoded_frames_decode_back)
{
    nt_buf out;
    nt_buf_init(&out, 4096);
    cr_assert_eq(edge_frame_push(&out, "a\"1", "b\\2", "room:\xc3\xa9", "ev", "{\"x\":\"y\"}", 9),
                 NT_OK);
    edge_frame f;
    cr_assert_eq(dec(out.data, &f), EDGE_FRAME_OK);
    cr_assert_str_eq(f.join_ref, "a\"1");
    cr_assert_str_eq(f.ref, "b\\2");
    cr_assert_str_eq(f.topic, "room:\xc3\xa9");
    cr_assert_str_eq(f.event, "ev");
    cr_assert_str_eq(edge_frame_payload_str(&f, "x"), "y");
    edge_frame_clear(&f);
    nt_buf_free(&out);
}

/* The encoders, each writing one frame into out, for the cap test. */
static nt_status enc(int which, nt_buf *out)
{
    switch (which) {
    case 0:
        return edge_frame_reply(out, "3", "7", "room:1", "ok", "{\"id\":\"m1\"}");
    case 1:
        return edge_frame_reply_error(out, NULL, "a\"b", "room:1", "rate limited",
                                      "{\"retry_after_ms\":250}");
    case 2:
        return edge_frame_push(out, NULL, NULL, "room:1", "new_msg", "{\"body\":\"hi\"}", 13);
    default:
        return edge_frame_push(out, "3", "3", "room:\xff", "phx_close", NULL, 0);
    }
}

Test(edge_frame, encoders_refuse_past_the_cap_and_leave_no_half_frame)
{
    for (int which = 0; which < 4; which++) {
        nt_buf full;
        nt_buf_init(&full, 4096);
        cr_assert_eq(enc(which, &full), NT_OK);
        size_t need = full.len;
        for (size_t cap = 0; cap <= need; cap++) {
            nt_buf out;
            nt_buf_init(&out, cap + 2);
            nt_buf_append_str(&out, "[]");
            nt_status st = enc(which, &out);
            if (cap < need) {
                cr_assert_eq(st, NT_ETOOBIG, "encoder %d cap %zu", which, cap);
                cr_assert_eq(out.len, 2);
                cr_assert_str_eq(out.data, "[]");
            } else {
                cr_assert_eq(st, NT_OK, "encoder %d", which);
                cr_assert_str_eq(out.data + 2, full.data);
            }
            nt_buf_free(&out);
        }
        nt_buf_free(&full);
    }
}
