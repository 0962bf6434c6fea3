/* The messages service's JSON: messages and history pages as replies and
 * events show them, the request bodies of the four routes with their checks,
 * and the two pieces of chat.rooms.authorize's protocol. The only file of the
 * service that touches cJSON. */
#include "msgs.h"

#include "nt_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "messages"

static const nt_text_rule content_rule = {
    .min_chars = 1, .max_chars = MSGS_CONTENT_MAX, .allow_newlines = true};

/* ---- messages and pages ---- */

cJSON *msgs_message_to_json(const msgs_message *m)
{
    bool deleted = m->deleted_at[0] != '\0';
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "id", m->id);
    cJSON_AddStringToObject(j, "room_id", m->room_id);
    cJSON_AddStringToObject(j, "user_id", m->user_id);
    nt_json_add_str_or_null(j, "username", m->username);
    /* A tombstone shows no content, whatever the row still holds. */
    cJSON_AddStringToObject(j, "content", !deleted && m->content != NULL ? m->content : "");
    cJSON_AddStringToObject(j, "message_type", m->type[0] != '\0' ? m->type : "text");
    nt_json_add_str_or_null(j, "client_ref", m->client_ref);
    cJSON_AddStringToObject(j, "created_at", m->created_at);
    cJSON_AddBoolToObject(j, "edited", m->edited_at[0] != '\0');
    nt_json_add_str_or_null(j, "edited_at", m->edited_at[0] != '\0' ? m->edited_at : NULL);
    cJSON_AddBoolToObject(j, "deleted", deleted);
    nt_json_add_str_or_null(j, "deleted_at", deleted ? m->deleted_at : NULL);
    nt_json_add_str_or_null(j, "deleted_by", m->deleted_by[0] != '\0' ? m->deleted_by : NULL);
    return j;
}

cJSON *msgs_page_to_json(const msgs_page *p, msgs_page_kind kind)
{
    cJSON *d = cJSON_CreateObject();
    NT_ASSERT(d != NULL);
    cJSON *arr = cJSON_AddArrayToObject(d, "messages");
    NT_ASSERT(arr != NULL);
    for (size_t i = 0; i < p->list.n; i++)
        cJSON_AddItemToArray(arr, msgs_message_to_json(&p->list.v[i]));
    bool more = p->has_more && p->list.n > 0;
    cJSON_AddBoolToObject(d, "has_more", more);
    /* The next page starts past the end the client travels towards: the
     * oldest message going back, the newest going forward. */
    const msgs_message *edge = NULL;
    if (more)
        edge = kind == MSGS_PAGE_AFTER ? &p->list.v[p->list.n - 1] : &p->list.v[0];
    nt_json_add_str_or_null(d, "next_cursor", edge != NULL ? edge->id : NULL);
    return d;
}

/* ---- events ---- */

void msgs_publish_message(msgs_publish_fn pub, void *arg, const char *event, const msgs_message *m)
{
    if (pub == NULL)
        return;
    char subject[128];
    int n = snprintf(subject, sizeof(subject), "chat.room.%s.%s", m->room_id, event);
    NT_ASSERT(n > 0 && (size_t)n < sizeof(subject));
    cJSON *j = msgs_message_to_json(m);
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    nt_status st = pub(arg, subject, s, strlen(s));
    free(s);
    /* The change is committed whatever happens here; the log names the
     * message, never its content. */
    if (st != NT_OK)
        nt_log_warn(MOD, "event not published subject=%s message=%s err=\"%s\"", subject, m->id,
                    nt_status_str(st));
}

/* ---- requests ---- */

/* Reads obj[key] as an id: NT_ENOTFOUND when absent or null and !required;
 * NT_EINVAL naming the field when it is not a canonical lower-case UUID. */
static nt_status get_id(const cJSON *obj, const char *key, bool required, const char *what,
                        char out[NT_ID_LEN], char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!required)
            return NT_ENOTFOUND;
        snprintf(err, errlen, "'%s' is required", key);
        return NT_EINVAL;
    }
    if (!cJSON_IsString(v) || !nt_id_valid(v->valuestring)) {
        snprintf(err, errlen, "'%s' must be a %s id", key, what);
        return NT_EINVAL;
    }
    memcpy(out, v->valuestring, NT_ID_LEN);
    return NT_OK;
}

/* Parses the body and reads the route's first id (required). */
static nt_status start(const char *data, size_t len, cJSON **body, const char *key,
                       const char *what, char id[NT_ID_LEN], char *err, size_t errlen)
{
    nt_status st = nt_json_parse_object(data, len, body, err, errlen);
    if (st == NT_OK)
        st = get_id(*body, key, true, what, id, err, errlen);
    return st;
}

/* A page size given as a JSON integer or as a string of decimal digits (a
 * query value); absent or null: the default. */
static nt_status get_limit(const cJSON *obj, int *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "limit");
    long n = -1;
    if (v == NULL || cJSON_IsNull(v)) {
        n = MSGS_PAGE_DEFAULT;
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        size_t digits = strspn(s, "0123456789");
        if (digits > 0 && digits <= 9 && s[digits] == '\0') {
            char *end = NULL;
            errno = 0;
            n = strtol(s, &end, 10);
            if (errno != 0 || *end != '\0')
                n = -1;
        }
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d >= 1 && d <= MSGS_PAGE_MAX && d == (double)(long)d)
            n = (long)d;
    }
    if (n < 1 || n > MSGS_PAGE_MAX) {
        snprintf(err, errlen, "'limit' must be an integer from 1 to %d", MSGS_PAGE_MAX);
        return NT_EINVAL;
    }
    *out = (int)n;
    return NT_OK;
}

static nt_status get_type(const cJSON *obj, char out[MSGS_TYPE_LEN], char *err, size_t errlen)
{
    static const char *const types[] = {"text", "image", "file"};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "message_type");
    if (v == NULL || cJSON_IsNull(v)) {
        snprintf(out, MSGS_TYPE_LEN, "%s", "text");
        return NT_OK;
    }
    for (size_t i = 0; cJSON_IsString(v) && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(v->valuestring, types[i]) == 0) {
            snprintf(out, MSGS_TYPE_LEN, "%s", types[i]);
            return NT_OK;
        }
    }
    snprintf(err, errlen, "'message_type' must be text, image or file");
    return NT_EINVAL;
}

static nt_status get_client_ref(const cJSON *obj, char out[MSGS_CLIENT_REF_MAX + 1], char *err,
                                size_t errlen)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "client_ref");
    if (v == NULL || cJSON_IsNull(v)) {
        out[0] = '\0';
        return NT_OK;
    }
    size_t n = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
    if (n == 0 || n > MSGS_CLIENT_REF_MAX || strspn(v->valuestring, ok) != n) {
        snprintf(err, errlen,
                 "'client_ref' must be 1 to %d characters of letters, digits, '.', '_', ':' or "
                 "'-'",
                 MSGS_CLIENT_REF_MAX);
        return NT_EINVAL;
    }
    memcpy(out, v->valuestring, n + 1);
    return NT_OK;
}

nt_status msgs_parse_send(const char *data, size_t len, msgs_send_req *out, char *err,
                          size_t errlen)
{
    static const char *const allowed[] = {"room_id", "content", "message_type", "client_ref", NULL};
    cJSON *body = NULL;
    msgs_send_req r;
    memset(&r, 0, sizeof(r));
    nt_status st = start(data, len, &body, "room_id", "room", r.room_id, err, errlen);
    if (st == NT_OK)
        st = nt_json_check_keys(body, allowed, err, errlen);
    if (st == NT_OK)
        st = nt_json_get_text(body, "content", true, &content_rule, &r.content, err, errlen);
    if (st == NT_OK)
        st = get_type(body, r.type, err, errlen);
    if (st == NT_OK)
        st = get_client_ref(body, r.client_ref, err, errlen);
    cJSON_Delete(body);
    if (st == NT_OK)
        *out = r;
    else
        msgs_send_req_clear(&r);
    return st;
}

void msgs_send_req_clear(msgs_send_req *r)
{
    free(r->content);
    memset(r, 0, sizeof(*r));
}

nt_status msgs_parse_history(const char *data, size_t len, msgs_history_req *out, char *err,
                             size_t errlen)
{
    static const char *const allowed[] = {"room_id", "before", "after", "limit", NULL};
    cJSON *body = NULL;
    msgs_history_req r;
    memset(&r, 0, sizeof(r));
    char before[NT_ID_LEN] = "", after[NT_ID_LEN] = "";
    nt_status st = start(data, len, &body, "room_id", "room", r.room_id, err, errlen);
    nt_status has_before = NT_ENOTFOUND, has_after = NT_ENOTFOUND;
    if (st == NT_OK) {
        has_before = get_id(body, "before", false, "message", before, err, errlen);
        st = has_before == NT_ENOTFOUND ? NT_OK : has_before;
    }
    if (st == NT_OK) {
        has_after = get_id(body, "after", false, "message", after, err, errlen);
        st = has_after == NT_ENOTFOUND ? NT_OK : has_after;
    }
    if (st == NT_OK)
        st = nt_json_check_keys(body, allowed, err, errlen);
    if (st == NT_OK && has_before == NT_OK && has_after == NT_OK) {
        snprintf(err, errlen, "use 'before' or 'after', not both");
        st = NT_EINVAL;
    }
    if (st == NT_OK)
        st = get_limit(body, &r.page.limit, err, errlen);
    cJSON_Delete(body);
    if (st != NT_OK)
        return st;
    if (has_before == NT_OK) {
        r.page.kind = MSGS_PAGE_BEFORE;
        memcpy(r.page.cursor, before, NT_ID_LEN);
    } else if (has_after == NT_OK) {
        r.page.kind = MSGS_PAGE_AFTER;
        memcpy(r.page.cursor, after, NT_ID_LEN);
    } else {
        r.page.kind = MSGS_PAGE_LATEST;
    }
    *out = r;
    return NT_OK;
}

/* edit and delete: the message id, then (for an edit) the new content. */
static nt_status parse_change(const char *data, size_t len, bool edit, msgs_change_req *out,
                              char *err, size_t errlen)
{
    static const char *const edit_keys[] = {"message_id", "content", NULL};
    static const char *const delete_keys[] = {"message_id", NULL};
    cJSON *body = NULL;
    msgs_change_req r;
    memset(&r, 0, sizeof(r));
    nt_status st = start(data, len, &body, "message_id", "message", r.message_id, err, errlen);
    if (st == NT_OK)
        st = nt_json_check_keys(body, edit ? edit_keys : delete_keys, err, errlen);
    if (st == NT_OK && edit)
        st = nt_json_get_text(body, "content", true, &content_rule, &r.content, err, errlen);
    cJSON_Delete(body);
    if (st == NT_OK)
        *out = r;
    else
        msgs_change_req_clear(&r);
    return st;
}

nt_status msgs_parse_edit(const char *data, size_t len, msgs_change_req *out, char *err,
                          size_t errlen)
{
    return parse_change(data, len, true, out, err, errlen);
}

nt_status msgs_parse_delete(const char *data, size_t len, msgs_change_req *out, char *err,
                            size_t errlen)
{
    return parse_change(data, len, false, out, err, errlen);
}

void msgs_change_req_clear(msgs_change_req *r)
{
    free(r->content);
    memset(r, 0, sizeof(*r));
}

/* ---- chat.rooms.authorize ---- */

char *msgs_authorize_body(const char *room_id, const char *action)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "room_id", room_id);
    cJSON_AddStringToObject(j, "action", action);
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    return s;
}

void msgs_reply_error_message(const char *data, size_t len, char *out, size_t outlen)
{
    char err[NT_ERRMSG_LEN];
    cJSON *j = NULL;
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (data == NULL || nt_json_parse_object(data, len, &j, err, sizeof(err)) != NT_OK)
        return;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(m)) {
        snprintf(out, outlen, "%s", m->valuestring);
        /* Cut at outlen, perhaps inside a character: drop the partial one. */
        nt_utf8_sanitize(out);
    }
    cJSON_Delete(j);
}
