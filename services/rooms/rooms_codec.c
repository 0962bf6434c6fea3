/* The rooms service's JSON: rooms, members, the cached access state, field
 * checks and paging cursors. The only file of the service that touches cJSON. */
#include "rooms.h"

#include "nt_b64.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const nt_text_rule rooms_name_rule = {.min_chars = 1, .max_chars = ROOMS_NAME_MAX};
const nt_text_rule rooms_desc_rule = {
    .min_chars = 0, .max_chars = ROOMS_DESC_MAX, .allow_newlines = true};

static const char *username_of(const rooms_member *m)
{
    return m->username != NULL ? m->username : m->user_id;
}

cJSON *rooms_room_to_json(const rooms_room *r, bool with_role)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "name", r->name != NULL ? r->name : "");
    nt_json_add_str_or_null(j, "description", r->description);
    cJSON_AddBoolToObject(j, "is_private", r->is_private);
    cJSON_AddStringToObject(j, "created_by", r->created_by);
    cJSON_AddStringToObject(j, "created_at", r->created_at);
    cJSON_AddNumberToObject(j, "member_count", (double)r->member_count);
    if (with_role)
        nt_json_add_str_or_null(j, "role", rooms_role_name(r->role));
    cJSON_AddStringToObject(j, "last_activity_at", r->last_activity_at);
    return j;
}

cJSON *rooms_member_to_json(const rooms_member *m)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "room_id", m->room_id);
    cJSON_AddStringToObject(j, "user_id", m->user_id);
    cJSON_AddStringToObject(j, "username", username_of(m));
    nt_json_add_str_or_null(j, "avatar_url", m->avatar_url);
    nt_json_add_str_or_null(j, "role", rooms_role_name(m->role));
    cJSON_AddStringToObject(j, "joined_at", m->joined_at);
    return j;
}

/* A page of rooms or members: the first limit items of l (which may hold one
 * more, meaning another page follows) and the cursor of the last one. */
size_t rooms_cursor_prefix_len(const char *a, char kind, const char *context)
{
    size_t n = strlen(context);
    if (a[0] != kind || strncmp(a + 1, context, n) != 0 || a[1 + n] != '\x1e')
        return 0;
    return n + 2;
}

static cJSON *page(cJSON *items, const char *key, bool more, char kind, const char *context,
                   const char *a, const char *b)
{
    cJSON *d = cJSON_CreateObject();
    NT_ASSERT(d != NULL);
    cJSON_AddItemToObject(d, key, items);
    if (more) {
        /* The first key starts with the list it belongs to, so a cursor of one
         * list is refused by another instead of paging it wrongly. */
        size_t nc = strlen(context), n = strlen(a);
        char *ka = malloc(nc + n + 3);
        NT_ASSERT(ka != NULL);
        ka[0] = kind;
        memcpy(ka + 1, context, nc);
        ka[1 + nc] = '\x1e';
        memcpy(ka + 2 + nc, a, n + 1);
        char *c = rooms_cursor_encode(ka, b);
        free(ka);
        cJSON_AddStringToObject(d, "next_cursor", c);
        free(c);
    } else {
        cJSON_AddNullToObject(d, "next_cursor");
    }
    return d;
}

cJSON *rooms_room_page_to_json(const rooms_room_list *l, size_t limit, bool by_name,
                               const char *context)
{
    size_t n = l->n > limit ? limit : l->n;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, rooms_room_to_json(&l->v[i], true));
    const rooms_room *last = n > 0 ? &l->v[n - 1] : NULL;
    return page(arr, "rooms", l->n > n, by_name ? ROOMS_CURSOR_NAME : ROOMS_CURSOR_ACTIVITY,
                context, last ? (by_name ? last->name : last->last_activity_at) : "",
                last ? last->id : "");
}

/* True for "YYYY-MM-DDTHH:MM:SS.mmmZ", the one time form of the contract. */
static bool time_valid(const char *s)
{
    static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(s) != sizeof(form) - 1)
        return false;
    for (size_t i = 0; form[i] != '\0'; i++) {
        if (form[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != form[i])
            return false;
    }
    return true;
}

/* Adds "online" and "last_seen" to member j from presence's entry for the
 * member (NULL: none): both null unless the entry is {"online": bool,
 * "last_seen": time|null}, so a bad answer never reaches the client. */
static void add_presence(cJSON *j, const cJSON *entry)
{
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(entry, "online");
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(entry, "last_seen");
    bool ok = cJSON_IsObject(entry) && cJSON_IsBool(online) &&
              (cJSON_IsNull(seen) || (cJSON_IsString(seen) && time_valid(seen->valuestring)));
    if (ok) {
        cJSON_AddBoolToObject(j, "online", cJSON_IsTrue(online));
        nt_json_add_str_or_null(j, "last_seen", cJSON_IsString(seen) ? seen->valuestring : NULL);
    } else {
        cJSON_AddNullToObject(j, "online");
        cJSON_AddNullToObject(j, "last_seen");
    }
}

cJSON *rooms_member_page_to_json(const rooms_member_list *l, size_t limit, const char *context,
                                 const cJSON *users)
{
    size_t n = l->n > limit ? limit : l->n;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *j = rooms_member_to_json(&l->v[i]);
        add_presence(j, cJSON_GetObjectItemCaseSensitive(users, l->v[i].user_id));
        cJSON_AddItemToArray(arr, j);
    }
    const rooms_member *last = n > 0 ? &l->v[n - 1] : NULL;
    return page(arr, "members", l->n > n, ROOMS_CURSOR_JOINED, context,
                last ? last->joined_key : "", last ? last->user_id : "");
}

cJSON *rooms_room_get_to_json(const rooms_room *r, cJSON *messages)
{
    cJSON *j = rooms_room_to_json(r, true);
    if (messages != NULL)
        cJSON_AddItemToObject(j, "messages", messages);
    else
        cJSON_AddNullToObject(j, "messages");
    return j;
}

/* True for a wire error code ("forbidden"): safe to name in a log line. */
static bool code_like(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= 32 || !((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_'))
            return false;
    }
    return n > 0;
}

/* The member key of a service reply's data ({"data":{key:...}}), still in
 * *root (the caller deletes root). NULL, with why set, for an error reply or
 * anything else. */
static cJSON *reply_data_member(const char *text, size_t len, const char *key, cJSON **root,
                                char *why, size_t whylen)
{
    char err[NT_ERRMSG_LEN];
    *root = NULL;
    snprintf(why, whylen, "the reply is not a JSON object");
    if (text == NULL || nt_json_parse_object(text, len, root, err, sizeof(err)) != NT_OK)
        return NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(*root, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (e != NULL) {
        snprintf(why, whylen, "an error reply code=%s",
                 cJSON_IsString(code) && code_like(code->valuestring) ? code->valuestring : "?");
        return NULL;
    }
    cJSON *data = cJSON_GetObjectItemCaseSensitive(*root, "data");
    snprintf(why, whylen, "the reply has no data.%s", key);
    return cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, key) : NULL;
}

cJSON *rooms_latest_from_reply(const char *text, size_t len, char *why, size_t whylen)
{
    cJSON *root = NULL, *out = NULL;
    cJSON *arr = reply_data_member(text, len, "messages", &root, why, whylen);
    if (arr == NULL)
        goto out;
    snprintf(why, whylen, "the reply has no data.messages array of objects");
    if (!cJSON_IsArray(arr))
        goto out;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr)
    {
        if (!cJSON_IsObject(m))
            goto out;
    }
    out = cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(root, "data"), arr);
    why[0] = '\0';
out:
    cJSON_Delete(root);
    return out;
}

char *rooms_online_request(const rooms_member_list *l, size_t n)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON *ids = cJSON_AddArrayToObject(j, "user_ids");
    NT_ASSERT(ids != NULL);
    for (size_t i = 0; i < n && i < l->n; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateString(l->v[i].user_id));
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    return s;
}

cJSON *rooms_online_from_reply(const char *text, size_t len, char *why, size_t whylen)
{
    cJSON *root = NULL, *out = NULL;
    cJSON *users = reply_data_member(text, len, "users", &root, why, whylen);
    if (users == NULL)
        goto out;
    snprintf(why, whylen, "the reply has no data.users object");
    if (!cJSON_IsObject(users))
        goto out;
    out = cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(root, "data"), users);
    why[0] = '\0';
out:
    cJSON_Delete(root);
    return out;
}

cJSON *rooms_done_to_json(const char *room_id, const char *user_id, const char *what)
{
    cJSON *d = cJSON_CreateObject();
    NT_ASSERT(d != NULL);
    cJSON_AddStringToObject(d, "room_id", room_id);
    if (user_id != NULL)
        cJSON_AddStringToObject(d, "user_id", user_id);
    cJSON_AddBoolToObject(d, what, true);
    return d;
}

cJSON *rooms_left_to_json(const char *room_id, bool room_deleted, const char *new_admin)
{
    cJSON *d = rooms_done_to_json(room_id, NULL, "left");
    cJSON_AddBoolToObject(d, "room_deleted", room_deleted);
    nt_json_add_str_or_null(d, "new_admin", new_admin);
    return d;
}

cJSON *rooms_authorized_to_json(const char *room_id, const char *user_id, rooms_action action,
                                rooms_role role, bool is_private)
{
    cJSON *d = cJSON_CreateObject();
    NT_ASSERT(d != NULL);
    cJSON_AddStringToObject(d, "room_id", room_id);
    cJSON_AddStringToObject(d, "user_id", user_id);
    cJSON_AddStringToObject(d, "action", rooms_action_name(action));
    nt_json_add_str_or_null(d, "role", rooms_role_name(role));
    cJSON_AddBoolToObject(d, "is_private", is_private);
    return d;
}

/* ---- events ---- */

cJSON *rooms_joined_event(const rooms_member *m, const char *invited_by)
{
    cJSON *j = rooms_member_to_json(m);
    nt_json_add_str_or_null(j, "invited_by", invited_by);
    return j;
}

/* The member part every membership event starts with. */
static cJSON *who(const rooms_member *m)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "room_id", m->room_id);
    cJSON_AddStringToObject(j, "user_id", m->user_id);
    cJSON_AddStringToObject(j, "username", username_of(m));
    return j;
}

cJSON *rooms_left_event(const rooms_member *m, const char *reason, const char *by)
{
    cJSON *j = who(m);
    cJSON_AddStringToObject(j, "reason", reason);
    nt_json_add_str_or_null(j, "by", by);
    return j;
}

cJSON *rooms_role_event(const rooms_member *m, rooms_role previous, const char *by)
{
    cJSON *j = who(m);
    cJSON_AddStringToObject(j, "role", rooms_role_name(m->role));
    cJSON_AddStringToObject(j, "previous_role", rooms_role_name(previous));
    nt_json_add_str_or_null(j, "by", by);
    return j;
}

cJSON *rooms_removed_event(const char *room_id, const char *reason, const char *by)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "room_id", room_id);
    cJSON_AddStringToObject(j, "reason", reason);
    cJSON_AddStringToObject(j, "by", by);
    return j;
}

cJSON *rooms_deleted_event(const char *room_id, const char *by)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "room_id", room_id);
    cJSON_AddStringToObject(j, "deleted_by", by);
    return j;
}

cJSON *rooms_invited_event(const rooms_room *room, const rooms_member *m, const char *by)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddItemToObject(j, "room", rooms_room_to_json(room, false));
    cJSON_AddStringToObject(j, "role", rooms_role_name(m->role));
    cJSON_AddStringToObject(j, "invited_by", by);
    return j;
}

char *rooms_access_to_text(const rooms_access *a)
{
    cJSON *j = cJSON_CreateObject();
    NT_ASSERT(j != NULL);
    cJSON_AddStringToObject(j, "room_id", a->room_id);
    cJSON_AddBoolToObject(j, "exists", a->exists);
    if (a->exists && a->uncached) {
        cJSON_AddBoolToObject(j, "uncached", true);
    } else if (a->exists) {
        cJSON_AddBoolToObject(j, "is_private", a->is_private);
        cJSON *arr = cJSON_AddArrayToObject(j, "members");
        for (size_t i = 0; i < a->n; i++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "user_id", a->members[i].user_id);
            cJSON_AddStringToObject(m, "role", rooms_role_name(a->members[i].role));
            cJSON_AddItemToArray(arr, m);
        }
    }
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    return s;
}

nt_status rooms_access_from_text(const char *text, size_t len, rooms_access *out)
{
    char err[NT_ERRMSG_LEN];
    cJSON *j = NULL;
    rooms_access a;
    memset(&a, 0, sizeof(a));
    nt_status st = nt_json_parse_object(text, len, &j, err, sizeof(err));
    if (st != NT_OK)
        return NT_EINVAL;
    st = NT_EINVAL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "room_id");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "exists");
    if (!cJSON_IsString(id) || !nt_id_valid(id->valuestring) || !cJSON_IsBool(ex))
        goto out;
    snprintf(a.room_id, sizeof(a.room_id), "%s", id->valuestring);
    a.exists = cJSON_IsTrue(ex);
    const cJSON *unc = cJSON_GetObjectItemCaseSensitive(j, "uncached");
    if (unc != NULL && !cJSON_IsBool(unc))
        goto out;
    a.uncached = a.exists && cJSON_IsTrue(unc);
    if (a.exists && !a.uncached) {
        const cJSON *priv = cJSON_GetObjectItemCaseSensitive(j, "is_private");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "members");
        if (!cJSON_IsBool(priv) || !cJSON_IsArray(arr))
            goto out;
        a.is_private = cJSON_IsTrue(priv);
        int n = cJSON_GetArraySize(arr);
        if (n > 0) {
            a.members = calloc((size_t)n, sizeof(*a.members));
            NT_ASSERT(a.members != NULL);
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, arr)
        {
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "user_id");
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
            if (!cJSON_IsString(u) || !rooms_user_id_valid(u->valuestring) || !cJSON_IsString(r) ||
                !rooms_role_parse(r->valuestring, &a.members[a.n].role))
                goto out;
            snprintf(a.members[a.n].user_id, sizeof(a.members[a.n].user_id), "%s", u->valuestring);
            a.n++;
        }
    }
    st = NT_OK;
out:
    cJSON_Delete(j);
    if (st == NT_OK)
        *out = a;
    else
        rooms_access_clear(&a);
    return st;
}

bool rooms_user_id_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n >= ROOMS_USER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

nt_status rooms_get_room_id(const cJSON *body, char out[NT_ID_LEN], char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "room_id");
    if (v == NULL || cJSON_IsNull(v)) {
        snprintf(err, errlen, "'room_id' is required");
        return NT_EINVAL;
    }
    if (!cJSON_IsString(v) || !nt_id_valid(v->valuestring)) {
        snprintf(err, errlen, "'room_id' is not a valid room id");
        return NT_EINVAL;
    }
    memcpy(out, v->valuestring, NT_ID_LEN);
    return NT_OK;
}

nt_status rooms_get_user_id(const cJSON *body, const char *key, bool required,
                            char out[ROOMS_USER_ID_MAX], char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!required)
            return NT_ENOTFOUND;
        snprintf(err, errlen, "'%s' is required", key);
        return NT_EINVAL;
    }
    if (!cJSON_IsString(v) || !rooms_user_id_valid(v->valuestring)) {
        snprintf(err, errlen, "'%s' is not a valid user id", key);
        return NT_EINVAL;
    }
    snprintf(out, ROOMS_USER_ID_MAX, "%s", v->valuestring);
    return NT_OK;
}

nt_status rooms_get_limit(const cJSON *body, const char *key, long long def, long long max,
                          long long *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    long long n = def;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        char *end = NULL;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (s[0] == '\0' || !isdigit((unsigned char)s[0]) || *end != '\0' || errno != 0)
            n = -1;
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        n = d >= 1 && d <= (double)max && d == (double)(long long)d ? (long long)d : -1;
    } else if (v != NULL && !cJSON_IsNull(v)) {
        n = -1;
    }
    if (n < 1 || n > max) {
        snprintf(err, errlen, "'%s' must be an integer from 1 to %lld", key, max);
        return NT_EINVAL;
    }
    *out = n;
    return NT_OK;
}

char *rooms_cursor_encode(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *raw = malloc(la + lb + 2);
    NT_ASSERT(raw != NULL);
    memcpy(raw, a, la);
    raw[la] = '\x1f';
    memcpy(raw + la + 1, b, lb + 1);
    char *out = nt_b64url_encode(raw, la + lb + 1);
    free(raw);
    return out;
}

nt_status rooms_cursor_decode(const char *cursor, char **a, char **b)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    if (cursor == NULL || strlen(cursor) > 1024 ||
        nt_b64url_decode(cursor, strlen(cursor), &raw, &len) != NT_OK)
        return NT_EINVAL;
    const char *sep = memchr(raw, '\x1f', len);
    /* Exactly one separator, no NUL, valid UTF-8 on both sides. */
    if (sep == NULL || memchr(sep + 1, '\x1f', len - (size_t)(sep - (char *)raw) - 1) != NULL ||
        memchr(raw, '\0', len) != NULL || !nt_utf8_valid((char *)raw, len)) {
        free(raw);
        return NT_EINVAL;
    }
    size_t la = (size_t)(sep - (char *)raw);
    *a = strndup((char *)raw, la);
    *b = strdup(sep + 1);
    NT_ASSERT(*a != NULL && *b != NULL);
    free(raw);
    return NT_OK;
}
