/* JSON between the edge and the services, and frames made from it. */
#include "edge_codec.h"

#include "edge_frame.h"
#include "nt_json.h"
#include "nt_log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool plain_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= max)
            return false;
    }
    return n > 0;
}

nt_status edge_codec_event(const char *kind, const char *id, const char *event, const char *payload,
                           size_t len, size_t pre, edge_msg **out)
{
    if (!plain_token(id, 128) || !plain_token(event, EDGE_EVENT_MAX))
        return NT_EINVAL;
    cJSON *obj = NULL;
    char err[64];
    if (nt_json_parse_object(payload, len, &obj, err, sizeof(err)) != NT_OK)
        return NT_EINVAL;
    /* The payload goes out as cJSON prints it, not as it came: what a
     * lenient parse let through (01, 1., stray control bytes) would make a
     * browser refuse the whole frame. Once per event, not per socket. */
    char *text = cJSON_PrintUnformatted(obj);
    NT_ASSERT(text != NULL);
    size_t tlen = strlen(text);
    char topic[EDGE_TOPIC_MAX + 1];
    int tn = snprintf(topic, sizeof(topic), "%s:%s", kind, id);
    nt_status st = NT_EINVAL;
    nt_buf b;
    nt_buf_init(&b, tlen + 512);
    if (tn > 0 && (size_t)tn < sizeof(topic))
        st = edge_frame_push(&b, NULL, NULL, topic, event, text, tlen);
    cJSON_free(text);
    if (st == NT_OK) {
        edge_msg *m = edge_msg_new(b.data, b.len, pre);
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(obj, "id");
        if (strcmp(event, "message_received") == 0 && cJSON_IsString(mid) &&
            strlen(mid->valuestring) < sizeof(m->msg_id))
            snprintf(m->msg_id, sizeof(m->msg_id), "%s", mid->valuestring);
        *out = m;
    }
    nt_buf_free(&b);
    cJSON_Delete(obj);
    return st;
}

nt_status edge_codec_service_reply(const char *join_ref, const char *ref, const char *topic,
                                   nt_status st, const nt_response *resp, nt_buf *out)
{
    if (st == NT_ETIMEOUT)
        return edge_frame_reply_error(out, join_ref, ref, topic, "timeout",
                                      "{\"message\":\"the service did not answer in time\"}");
    if (st != NT_OK || resp == NULL)
        return edge_frame_reply_error(out, join_ref, ref, topic, "unavailable",
                                      "{\"message\":\"the service is unavailable\"}");
    cJSON *root = NULL;
    char err[64];
    nt_status out_st;
    if (nt_json_parse_object(resp->data, resp->len, &root, err, sizeof(err)) != NT_OK) {
        nt_log_warn("edge", "unparsable service reply http=%d", resp->http);
        return edge_frame_reply_error(out, join_ref, ref, topic, "internal",
                                      "{\"message\":\"the service's reply was not understood\"}");
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (resp->http == 200 && data != NULL) {
        nt_buf r;
        nt_buf_init(&r, out->max);
        out_st = nt_json_append(&r, data);
        if (out_st == NT_OK)
            out_st = edge_frame_reply(out, join_ref, ref, topic, "ok", r.data);
        nt_buf_free(&r);
    } else {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");
        const cJSON *retry = cJSON_GetObjectItemCaseSensitive(error, "retry_after_ms");
        cJSON *extra = cJSON_CreateObject();
        NT_ASSERT(extra != NULL);
        if (cJSON_IsString(msg))
            cJSON_AddStringToObject(extra, "message", msg->valuestring);
        if (cJSON_IsNumber(retry))
            cJSON_AddNumberToObject(extra, "retry_after_ms", retry->valuedouble);
        else if (resp->retry_after_ms > 0)
            cJSON_AddNumberToObject(extra, "retry_after_ms", (double)resp->retry_after_ms);
        char *extra_text = cJSON_PrintUnformatted(extra);
        NT_ASSERT(extra_text != NULL);
        out_st = edge_frame_reply_error(out, join_ref, ref, topic,
                                        cJSON_IsString(code) ? code->valuestring : "internal",
                                        extra_text);
        cJSON_free(extra_text);
        cJSON_Delete(extra);
    }
    cJSON_Delete(root);
    return out_st;
}

nt_status edge_codec_authorize_body(const char *room_id, const char *action, nt_buf *out)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "room_id", room_id);
    cJSON_AddStringToObject(o, "action", action);
    nt_status st = nt_json_append(out, o);
    cJSON_Delete(o);
    return st;
}

edge_join_verdict edge_codec_authorize_verdict(nt_status st, const nt_response *resp)
{
    if (st != NT_OK || resp == NULL)
        return EDGE_JOIN_UNAVAILABLE;
    switch (resp->http) {
    case 200:
        return EDGE_JOIN_OK;
    case 403:
        return EDGE_JOIN_FORBIDDEN;
    case 404:
    case 400: /* not a room id: nothing by that name exists */
        return EDGE_JOIN_NOT_FOUND;
    default:
        return EDGE_JOIN_UNAVAILABLE;
    }
}

nt_status edge_codec_history_body(const char *room_id, const char *after, int limit, nt_buf *out)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "room_id", room_id);
    cJSON_AddStringToObject(o, "after", after);
    cJSON_AddNumberToObject(o, "limit", limit);
    nt_status st = nt_json_append(out, o);
    cJSON_Delete(o);
    return st;
}

nt_status edge_codec_history_page(const char *body, size_t len, const char *join_ref,
                                  const char *topic, size_t pre, edge_msg ***msgs, size_t *nmsgs,
                                  bool *has_more, char last_id[40])
{
    cJSON *root = NULL;
    char err[64];
    if (nt_json_parse_object(body, len, &root, err, sizeof(err)) != NT_OK)
        return NT_EINVAL;
    nt_status st = NT_EINVAL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(data, "messages");
    const cJSON *more = cJSON_GetObjectItemCaseSensitive(data, "has_more");
    if (!cJSON_IsArray(list) || !cJSON_IsBool(more))
        goto out;
    last_id[0] = '\0';
    const cJSON *m;
    cJSON_ArrayForEach(m, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (!cJSON_IsObject(m) || !cJSON_IsString(id) || strlen(id->valuestring) >= 40)
            goto out;
        char *text = cJSON_PrintUnformatted(m);
        NT_ASSERT(text != NULL);
        nt_buf b;
        nt_buf_init(&b, strlen(text) + 512);
        nt_status fst =
            edge_frame_push(&b, join_ref, NULL, topic, "message_received", text, strlen(text));
        cJSON_free(text);
        if (fst != NT_OK) {
            nt_buf_free(&b);
            goto out;
        }
        edge_msg *em = edge_msg_new(b.data, b.len, pre);
        nt_buf_free(&b);
        snprintf(em->msg_id, sizeof(em->msg_id), "%s", id->valuestring);
        edge_msg **v = realloc(*msgs, (*nmsgs + 1) * sizeof(*v));
        NT_ASSERT(v != NULL);
        v[(*nmsgs)++] = em;
        *msgs = v;
        snprintf(last_id, 40, "%s", id->valuestring);
    }
    *has_more = cJSON_IsTrue(more);
    st = NT_OK;
out:
    cJSON_Delete(root);
    return st;
}

bool edge_codec_username(const char *body, size_t len, char *out, size_t outlen)
{
    cJSON *root = NULL;
    char err[64];
    if (nt_json_parse_object(body, len, &root, err, sizeof(err)) != NT_OK)
        return false;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(data, "username");
    bool ok = cJSON_IsString(name) && strlen(name->valuestring) < outlen;
    if (ok)
        snprintf(out, outlen, "%s", name->valuestring);
    cJSON_Delete(root);
    return ok;
}

nt_status edge_codec_typing(const char *user_id, const char *username, bool typing, nt_buf *out)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "user_id", user_id);
    nt_json_add_str_or_null(o, "username", username);
    cJSON_AddBoolToObject(o, "typing", typing);
    nt_status st = nt_json_append(out, o);
    cJSON_Delete(o);
    return st;
}
