/* The Phoenix Channels V2 frame: the decoder checks every rule of PHOENIX.md
 * §2 on what a client sends, and the encoders write what the edge sends
 * straight into a capped buffer, escaping every string so that the output is
 * always valid JSON and valid UTF-8. */
#include "edge_frame.h"

#include "nt_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- decoding ---- */

/* Writes a fixed reason; reason may be NULL (the caller does not want it). */
static void set_reason(char *reason, size_t reasonlen, const char *text)
{
    if (reason != NULL && reasonlen > 0)
        snprintf(reason, reasonlen, "%s", text);
}

/* True when the valid UTF-8 string s holds a C0 control, DEL or a C1
 * control: a topic or event name is routing data and logged, so it never
 * carries bytes that could forge a log line or hide in a terminal. */
static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return true;
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F. */
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
            return true;
    }
    return false;
}

/* Reads a join_ref or ref: null, or a non-empty string of at most
 * EDGE_REF_MAX bytes. Refs are opaque strings the client compares with ===,
 * so a number is refused rather than converted. */
static bool read_ref(const cJSON *v, bool *has, char out[EDGE_REF_MAX + 1], const char *what,
                     char *reason, size_t reasonlen)
{
    char msg[64];
    if (cJSON_IsNull(v)) {
        *has = false;
        return true;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        snprintf(msg, sizeof(msg), "%s must be a string or null", what);
        set_reason(reason, reasonlen, msg);
        return false;
    }
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > EDGE_REF_MAX) {
        snprintf(msg, sizeof(msg), "%s must be 1 to %d bytes", what, EDGE_REF_MAX);
        set_reason(reason, reasonlen, msg);
        return false;
    }
    memcpy(out, v->valuestring, n + 1);
    *has = true;
    return true;
}

/* Reads the topic or the event: a non-empty string of at most max bytes
 * without control characters. */
static bool read_name(const cJSON *v, char *out, size_t max, const char *what, char *reason,
                      size_t reasonlen)
{
    char msg[64];
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        snprintf(msg, sizeof(msg), "%s must be a string", what);
        set_reason(reason, reasonlen, msg);
        return false;
    }
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > max) {
        snprintf(msg, sizeof(msg), "%s must be 1 to %zu bytes", what, max);
        set_reason(reason, reasonlen, msg);
        return false;
    }
    if (has_control(v->valuestring)) {
        snprintf(msg, sizeof(msg), "%s contains a control character", what);
        set_reason(reason, reasonlen, msg);
        return false;
    }
    memcpy(out, v->valuestring, n + 1);
    return true;
}

edge_frame_result edge_frame_decode(const char *data, size_t len, edge_frame *f, char *reason,
                                    size_t reasonlen)
{
    edge_frame_result res = EDGE_FRAME_MALFORMED;
    cJSON *root = NULL;
    char err[NT_ERRMSG_LEN];

    memset(f, 0, sizeof(*f));
    set_reason(reason, reasonlen, "");
    if (data == NULL && len > 0) {
        set_reason(reason, reasonlen, "frame is not valid JSON");
        goto out;
    }
    /* Checked here as well as in nt_json_parse so that the reason names the
     * frame rather than a "body". */
    if (!nt_utf8_valid(data, len)) {
        set_reason(reason, reasonlen, "frame is not valid UTF-8");
        goto out;
    }
    /* nt_json_parse also refuses raw control bytes in strings and \u0000,
     * which would silently cut a C string short. */
    if (nt_json_parse(data, len, &root, err, sizeof(err)) != NT_OK) {
        set_reason(reason, reasonlen, err);
        goto out;
    }
    if (!cJSON_IsArray(root)) {
        set_reason(reason, reasonlen, "frame must be a JSON array");
        goto out;
    }
    /* Walk the first five elements directly: later ones are ignored, as
     * Phoenix does, and never counted. */
    cJSON *el[5];
    cJSON *it = root->child;
    for (size_t i = 0; i < 5; i++) {
        if (it == NULL) {
            set_reason(reason, reasonlen, "frame must have 5 elements");
            goto out;
        }
        el[i] = it;
        it = it->next;
    }
    if (!read_ref(el[0], &f->has_join_ref, f->join_ref, "join_ref", reason, reasonlen) ||
        !read_ref(el[1], &f->has_ref, f->ref, "ref", reason, reasonlen) ||
        !read_name(el[2], f->topic, EDGE_TOPIC_MAX, "topic", reason, reasonlen) ||
        !read_name(el[3], f->event, EDGE_EVENT_MAX, "event", reason, reasonlen))
        goto out;
    if (!cJSON_IsObject(el[4])) {
        set_reason(reason, reasonlen, "payload must be a JSON object");
        res = EDGE_FRAME_BAD_PAYLOAD;
        goto out;
    }
    /* The payload is kept as parsed: detached, so only the array around it
     * is freed here. */
    f->payload = cJSON_DetachItemViaPointer(root, el[4]);
    res = EDGE_FRAME_OK;
out:
    cJSON_Delete(root);
    return res;
}

void edge_frame_clear(edge_frame *f)
{
    if (f == NULL)
        return;
    cJSON_Delete(f->payload);
    f->payload = NULL;
}

const char *edge_frame_payload_str(const edge_frame *f, const char *key)
{
    if (f == NULL || f->payload == NULL)
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)f->payload, key);
    if (!cJSON_IsString(v))
        return NULL;
    return v->valuestring;
}

/* ---- encoding helpers ---- */

/* Puts out back to len bytes, so that a failed encoder leaves no half
 * frame behind. */
static void rollback(nt_buf *out, size_t len)
{
    out->len = len;
    if (out->data != NULL)
        out->data[len] = '\0';
}

/* The length of the valid UTF-8 sequence that starts at s[0] (of at most
 * len bytes), or 0 when the bytes there are not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
    size_t n = 0;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    if (n == 0 || n > len || !nt_utf8_valid((const char *)s, n))
        return 0;
    return n;
}

/* Appends s as a JSON string, or null when s is NULL. '"', '\\' and C0
 * controls are escaped; callers pass valid UTF-8, but a stray invalid byte
 * becomes U+FFFD rather than an invalid text frame. Runs of plain bytes are
 * appended in one go. */
static nt_status put_str(nt_buf *out, const char *s)
{
    if (s == NULL)
        return nt_buf_append(out, "null", 4);
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    nt_status st = nt_buf_append(out, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    size_t i = 0;
    while (st == NT_OK && i < len) {
        unsigned char c = p[i];
        size_t n = 1;
        const char *esc = NULL;
        char ubuf[8];
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20) {
            snprintf(ubuf, sizeof(ubuf), "\\u%04x", (unsigned)c);
            esc = ubuf;
        } else if (c >= 0x80) {
            n = utf8_seq_len(p + i, len - i);
            if (n == 0) {
                esc = "\\ufffd";
                n = 1;
            }
        }
        if (esc != NULL) {
            st = nt_buf_append(out, p + run, i - run);
            if (st == NT_OK)
                st = nt_buf_append_str(out, esc);
            run = i + n;
        }
        i += n;
    }
    if (st == NT_OK)
        st = nt_buf_append(out, p + run, len - run);
    if (st == NT_OK)
        st = nt_buf_append(out, "\"", 1);
    return st;
}

/* Appends "[join_ref,ref,topic,event," . */
static nt_status put_head(nt_buf *out, const char *join_ref, const char *ref, const char *topic,
                          const char *event)
{
    NT_ASSERT(topic != NULL && event != NULL);
    nt_status st = nt_buf_append(out, "[", 1);
    if (st == NT_OK)
        st = put_str(out, join_ref);
    if (st == NT_OK)
        st = nt_buf_append(out, ",", 1);
    if (st == NT_OK)
        st = put_str(out, ref);
    if (st == NT_OK)
        st = nt_buf_append(out, ",", 1);
    if (st == NT_OK)
        st = put_str(out, topic);
    if (st == NT_OK)
        st = nt_buf_append(out, ",", 1);
    if (st == NT_OK)
        st = put_str(out, event);
    if (st == NT_OK)
        st = nt_buf_append(out, ",", 1);
    return st;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Appends the members of the JSON object obj (without its braces), preceded
 * by a comma when there are any; nothing for an empty object. */
static nt_status put_members(nt_buf *out, const char *obj)
{
    size_t a = 0, b = strlen(obj);
    while (a < b && is_space(obj[a]))
        a++;
    while (b > a && is_space(obj[b - 1]))
        b--;
    /* A broken contract (the caller guarantees an object), not bad input. */
    NT_ASSERT(b - a >= 2 && obj[a] == '{' && obj[b - 1] == '}');
    a++;
    b--;
    size_t k = a;
    while (k < b && is_space(obj[k]))
        k++;
    if (k == b)
        return NT_OK;
    nt_status st = nt_buf_append(out, ",", 1);
    if (st == NT_OK)
        st = nt_buf_append(out, obj + a, b - a);
    return st;
}

/* ---- encoders ---- */

nt_status edge_frame_payload_with_room(const edge_frame *f, const char *room_id, nt_buf *out)
{
    NT_ASSERT(room_id != NULL);
    size_t start = out->len;
    const cJSON *payload = f->payload;
    cJSON *copy = NULL;
    char *text = NULL;

    /* The usual payload has no room_id: print it as it is. Otherwise every
     * room_id member goes from a copy (cJSON keeps duplicate keys, and a
     * second one left in could win at the service), and the frame's payload
     * stays intact for later accessors. */
    if (payload != NULL && cJSON_GetObjectItemCaseSensitive(payload, "room_id") != NULL) {
        copy = cJSON_Duplicate(payload, true);
        NT_ASSERT(copy != NULL);
        while (cJSON_GetObjectItemCaseSensitive(copy, "room_id") != NULL)
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "room_id");
        payload = copy;
    }
    if (payload != NULL)
        text = nt_json_print(payload);
    /* room_id goes first, then the payload's members: text is "{}" or
     * "{...}", so text + 1 is the members and the closing brace. */
    nt_status st = nt_buf_append(out, "{\"room_id\":", 11);
    if (st == NT_OK)
        st = put_str(out, room_id);
    if (st == NT_OK && text != NULL && text[0] == '{' && text[1] != '}' && text[1] != '\0') {
        st = nt_buf_append(out, ",", 1);
        if (st == NT_OK)
            st = nt_buf_append_str(out, text + 1);
    } else if (st == NT_OK) {
        st = nt_buf_append(out, "}", 1);
    }
    if (st != NT_OK)
        rollback(out, start);
    free(text);
    cJSON_Delete(copy);
    return st;
}

nt_status edge_frame_reply(nt_buf *out, const char *join_ref, const char *ref, const char *topic,
                           const char *status, const char *response)
{
    NT_ASSERT(status != NULL);
    size_t start = out->len;
    if (response == NULL || response[0] == '\0')
        response = "{}";
    nt_status st = put_head(out, join_ref, ref, topic, "phx_reply");
    if (st == NT_OK)
        st = nt_buf_append(out, "{\"status\":", 10);
    if (st == NT_OK)
        st = put_str(out, status);
    if (st == NT_OK)
        st = nt_buf_append(out, ",\"response\":", 12);
    if (st == NT_OK)
        st = nt_buf_append_str(out, response);
    if (st == NT_OK)
        st = nt_buf_append(out, "}]", 2);
    if (st != NT_OK)
        rollback(out, start);
    return st;
}

nt_status edge_frame_reply_error(nt_buf *out, const char *join_ref, const char *ref,
                                 const char *topic, const char *reason, const char *extra)
{
    NT_ASSERT(reason != NULL);
    size_t start = out->len;
    nt_status st = put_head(out, join_ref, ref, topic, "phx_reply");
    if (st == NT_OK)
        st = nt_buf_append_str(out, "{\"status\":\"error\",\"response\":{\"reason\":");
    if (st == NT_OK)
        st = put_str(out, reason);
    if (st == NT_OK && extra != NULL)
        st = put_members(out, extra);
    if (st == NT_OK)
        st = nt_buf_append(out, "}}]", 3);
    if (st != NT_OK)
        rollback(out, start);
    return st;
}

nt_status edge_frame_push(nt_buf *out, const char *join_ref, const char *ref, const char *topic,
                          const char *event, const char *payload, size_t payload_len)
{
    size_t start = out->len;
    /* No payload is an empty object: a frame's payload is never absent. */
    if (payload == NULL || payload_len == 0) {
        payload = "{}";
        payload_len = 2;
    }
    nt_status st = put_head(out, join_ref, ref, topic, event);
    if (st == NT_OK)
        st = nt_buf_append(out, payload, payload_len);
    if (st == NT_OK)
        st = nt_buf_append(out, "]", 1);
    if (st != NT_OK)
        rollback(out, start);
    return st;
}
