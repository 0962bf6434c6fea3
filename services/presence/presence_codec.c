/* Parsing and printing of the presence service's JSON. Reports come from the
 * edges, but a parser here still takes any bytes: every field is checked for
 * type, shape and size, and errors name fields, never values. */
#include "presence_codec.h"
#include "presence_state.h"

#include "nt_log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAFE_INT 9007199254740992.0 /* 2^53: larger doubles are not exact */

static nt_status fail(char *err, size_t errlen, nt_status st, const char *fmt, const char *field)
{
    snprintf(err, errlen, fmt, field);
    return st;
}

bool presence_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > PRESENCE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool presence_user_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > PRESENCE_USER_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c <= ' ' || c > '~' || c == '.' || c == '*' || c == '>')
            return false;
    }
    return true;
}

static bool edge_valid(const char *s)
{
    if (strlen(s) != PRESENCE_EDGE_LEN)
        return false;
    for (size_t i = 0; i < PRESENCE_EDGE_LEN; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static bool conn_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PRESENCE_CONN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : NULL;
}

/* Copies the string o[key] into out (outlen bytes) after check. */
static nt_status copy_field(const cJSON *o, const char *key, bool (*check)(const char *), char *out,
                            size_t outlen, char *err, size_t errlen)
{
    const char *s = str_field(o, key);
    if (s == NULL || !check(s) || strlen(s) >= outlen)
        return fail(err, errlen, NT_EINVAL, "'%s' is missing or malformed", key);
    memcpy(out, s, strlen(s) + 1);
    return NT_OK;
}

/* Reads o[key] as an integer within [min, max] (doubles up to 2^53 are exact). */
static nt_status uint_field(const cJSON *o, const char *key, double min, double max, uint64_t *out,
                            char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
        v->valuedouble > max || floor(v->valuedouble) != v->valuedouble)
        return fail(err, errlen, NT_EINVAL, "'%s' must be an integer in range", key);
    *out = (uint64_t)v->valuedouble;
    return NT_OK;
}

static bool text_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 256;
}

static void join_free(presence_join_rec *j)
{
    free(j->phx_ref);
    free(j->online_at);
    free(j->meta);
    memset(j, 0, sizeof(*j));
}

/* A meta object {phx_ref, username, online_at}, kept as the edge printed it
 * (compactly) so leaves carry exactly the meta of the join. */
static nt_status meta_parse(const cJSON *meta, presence_join_rec *j, char *err, size_t errlen)
{
    if (!cJSON_IsObject(meta))
        return fail(err, errlen, NT_EINVAL, "'%s' must be an object", "meta");
    const char *ref = str_field(meta, "phx_ref");
    const char *user = str_field(meta, "username");
    const char *at = str_field(meta, "online_at");
    if (ref == NULL || !text_ok(ref) || strlen(ref) > 64)
        return fail(err, errlen, NT_EINVAL, "'%s' is missing or malformed", "meta.phx_ref");
    if (user == NULL || strlen(user) > 256)
        return fail(err, errlen, NT_EINVAL, "'%s' is missing or malformed", "meta.username");
    if (at == NULL || !text_ok(at) || strlen(at) >= PRESENCE_TIME_LEN)
        return fail(err, errlen, NT_EINVAL, "'%s' is missing or malformed", "meta.online_at");
    char *text = cJSON_PrintUnformatted(meta);
    NT_ASSERT(text != NULL);
    if (strlen(text) > PRESENCE_META_MAX) {
        free(text);
        return fail(err, errlen, NT_ETOOBIG, "'%s' is too large", "meta");
    }
    j->meta = text;
    j->phx_ref = strdup(ref);
    j->online_at = strdup(at);
    NT_ASSERT(j->phx_ref != NULL && j->online_at != NULL);
    return NT_OK;
}

/* Parses one conn entry of a snapshot into out. Returns false when the entry
 * itself is malformed (skip it); its malformed joins are skipped and joins
 * past PRESENCE_CONN_JOINS_MAX dropped, both counted in r. */
static bool snapshot_conn_parse(const cJSON *c, presence_conn_rec *out, presence_report *r)
{
    char err[NT_ERRMSG_LEN];
    if (!cJSON_IsObject(c) ||
        copy_field(c, "conn", conn_valid, out->conn, sizeof(out->conn), err, sizeof(err)) !=
            NT_OK ||
        copy_field(c, "user_id", presence_user_valid, out->user_id, sizeof(out->user_id), err,
                   sizeof(err)) != NT_OK)
        return false;
    const cJSON *joins = cJSON_GetObjectItemCaseSensitive(c, "joins");
    if (joins == NULL || cJSON_IsNull(joins))
        return true;
    if (!cJSON_IsArray(joins))
        return false;
    int n = cJSON_GetArraySize(joins);
    if (n == 0)
        return true;
    size_t cap = n < PRESENCE_CONN_JOINS_MAX ? (size_t)n : PRESENCE_CONN_JOINS_MAX;
    out->joins = calloc(cap, sizeof(*out->joins));
    NT_ASSERT(out->joins != NULL);
    const cJSON *j;
    cJSON_ArrayForEach(j, joins)
    {
        if (out->njoins == cap) {
            r->dropped_joins++;
            continue;
        }
        presence_join_rec *rec = &out->joins[out->njoins];
        nt_status st = NT_EINVAL;
        if (cJSON_IsObject(j))
            st = copy_field(j, "room_id", presence_id_valid, rec->room_id, sizeof(rec->room_id),
                            err, sizeof(err));
        if (st == NT_OK)
            st = meta_parse(cJSON_GetObjectItemCaseSensitive(j, "meta"), rec, err, sizeof(err));
        if (st != NT_OK) {
            join_free(rec);
            r->bad_entries++;
            continue;
        }
        out->njoins++;
    }
    return true;
}

static nt_status snapshot_parse(const cJSON *o, presence_report *r, char *err, size_t errlen)
{
    uint64_t part = 0, parts = 0;
    nt_status st = uint_field(o, "round", 0, MAX_SAFE_INT, &r->round, err, errlen);
    if (st == NT_OK)
        st = uint_field(o, "parts", 1, PRESENCE_PARTS_MAX, &parts, err, errlen);
    if (st == NT_OK)
        st = uint_field(o, "part", 0, (double)parts - 1, &part, err, errlen);
    if (st != NT_OK)
        return st;
    r->part = (uint32_t)part;
    r->parts = (uint32_t)parts;
    const cJSON *conns = cJSON_GetObjectItemCaseSensitive(o, "conns");
    if (!cJSON_IsArray(conns))
        return fail(err, errlen, NT_EINVAL, "'%s' must be an array", "conns");
    int n = cJSON_GetArraySize(conns);
    if (n > PRESENCE_CONNS_MAX)
        return fail(err, errlen, NT_ETOOBIG, "'%s' has too many items", "conns");
    if (n == 0)
        return NT_OK;
    r->conns = calloc((size_t)n, sizeof(*r->conns));
    NT_ASSERT(r->conns != NULL);
    const cJSON *c;
    cJSON_ArrayForEach(c, conns)
    {
        /* One bad entry (a user id the edge took and this service cannot
         * use, say) must not cost the part: the others still count. */
        presence_conn_rec *rec = &r->conns[r->nconns];
        if (snapshot_conn_parse(c, rec, r)) {
            r->nconns++;
            continue;
        }
        for (size_t j = 0; j < rec->njoins; j++)
            join_free(&rec->joins[j]);
        free(rec->joins);
        memset(rec, 0, sizeof(*rec));
        r->bad_entries++;
    }
    return NT_OK;
}

static nt_status report_body(const cJSON *o, presence_report *r, char *err, size_t errlen)
{
    nt_status st = copy_field(o, "edge", edge_valid, r->edge, sizeof(r->edge), err, errlen);
    if (st == NT_OK)
        st = uint_field(o, "seq", 1, MAX_SAFE_INT, &r->seq, err, errlen);
    if (st != NT_OK)
        return st;
    r->head_ok = true;
    const char *type = str_field(o, "type");
    if (type == NULL)
        return fail(err, errlen, NT_EINVAL, "'%s' is missing or malformed", "type");
    static const struct {
        const char *name;
        presence_report_type type;
    } types[] = {
        {"connect", PRESENCE_CONNECT}, {"disconnect", PRESENCE_DISCONNECT}, {"join", PRESENCE_JOIN},
        {"leave", PRESENCE_LEAVE},     {"snapshot", PRESENCE_SNAPSHOT},     {"bye", PRESENCE_BYE},
    };
    size_t i = 0;
    while (i < sizeof(types) / sizeof(types[0]) && strcmp(types[i].name, type) != 0)
        i++;
    if (i == sizeof(types) / sizeof(types[0]))
        return fail(err, errlen, NT_EINVAL, "unknown report %s", "type");
    r->type = types[i].type;
    switch (r->type) {
    case PRESENCE_SNAPSHOT:
        return snapshot_parse(o, r, err, errlen);
    case PRESENCE_BYE:
        return NT_OK;
    default:
        break;
    }
    st = copy_field(o, "conn", conn_valid, r->conn, sizeof(r->conn), err, errlen);
    if (st == NT_OK)
        st = copy_field(o, "user_id", presence_user_valid, r->user_id, sizeof(r->user_id), err,
                        errlen);
    if (st != NT_OK || r->type == PRESENCE_CONNECT || r->type == PRESENCE_DISCONNECT)
        return st;
    st = copy_field(o, "room_id", presence_id_valid, r->room_id, sizeof(r->room_id), err, errlen);
    if (st != NT_OK)
        return st;
    if (r->type == PRESENCE_JOIN) {
        memcpy(r->join.room_id, r->room_id, sizeof(r->join.room_id));
        return meta_parse(cJSON_GetObjectItemCaseSensitive(o, "meta"), &r->join, err, errlen);
    }
    const char *ref = str_field(o, "phx_ref");
    if (ref == NULL || !text_ok(ref) || strlen(ref) > 64)
        return fail(err, errlen, NT_EINVAL, "'%s' is missing or malformed", "phx_ref");
    r->phx_ref = strdup(ref);
    NT_ASSERT(r->phx_ref != NULL);
    return NT_OK;
}

nt_status presence_report_parse(const char *data, size_t len, presence_report *out, char *err,
                                size_t errlen)
{
    NT_ASSERT(out != NULL && err != NULL);
    memset(out, 0, sizeof(*out));
    if (data == NULL || len == 0)
        return fail(err, errlen, NT_EINVAL, "%s", "empty report");
    if (len > PRESENCE_REPORT_MAX)
        return fail(err, errlen, NT_ETOOBIG, "%s", "report too large");
    cJSON *o = NULL;
    nt_status st = nt_json_parse_object(data, len, &o, err, errlen);
    if (st == NT_OK)
        st = report_body(o, out, err, errlen);
    cJSON_Delete(o);
    if (st != NT_OK) {
        bool head_ok = out->head_ok;
        char edge[PRESENCE_EDGE_LEN + 1];
        uint64_t seq = out->seq;
        memcpy(edge, out->edge, sizeof(edge));
        presence_report_free(out);
        if (head_ok) {
            out->head_ok = true;
            out->seq = seq;
            memcpy(out->edge, edge, sizeof(edge));
        }
    }
    return st;
}

void presence_report_free(presence_report *r)
{
    if (r == NULL)
        return;
    free(r->phx_ref);
    join_free(&r->join);
    for (size_t i = 0; i < r->nconns; i++) {
        for (size_t j = 0; j < r->conns[i].njoins; j++)
            join_free(&r->conns[i].joins[j]);
        free(r->conns[i].joins);
    }
    free(r->conns);
    memset(r, 0, sizeof(*r));
}

nt_status presence_get_body_parse(const char *data, size_t len, char *room, size_t *max_bytes,
                                  char *err, size_t errlen)
{
    static const char *const allowed[] = {"room_id", "max_bytes", NULL};
    cJSON *o = NULL;
    long long max = PRESENCE_GET_MAX;
    nt_status st = nt_json_parse_object(data, len, &o, err, errlen);
    if (st == NT_OK)
        st = nt_json_check_keys(o, allowed, err, errlen);
    if (st == NT_OK)
        st = copy_field(o, "room_id", presence_id_valid, room, PRESENCE_ID_MAX + 1, err, errlen);
    if (st == NT_OK) {
        st = nt_json_get_int(o, "max_bytes", false, 1024, PRESENCE_GET_MAX, &max, err, errlen);
        if (st == NT_ENOTFOUND)
            st = NT_OK;
    }
    if (st == NT_OK)
        *max_bytes = (size_t)max;
    cJSON_Delete(o);
    return st;
}

void presence_ids_free(char **ids, size_t n)
{
    if (ids == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

nt_status presence_online_body_parse(const char *data, size_t len, char ***ids, size_t *n,
                                     char *err, size_t errlen)
{
    static const char *const allowed[] = {"user_ids", NULL};
    cJSON *o = NULL;
    char **out = NULL;
    size_t count = 0;
    nt_status st = nt_json_parse_object(data, len, &o, err, errlen);
    if (st == NT_OK)
        st = nt_json_check_keys(o, allowed, err, errlen);
    if (st != NT_OK)
        goto out;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "user_ids");
    int size = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (!cJSON_IsArray(arr) || size < 1 || size > PRESENCE_ONLINE_MAX) {
        st = fail(err, errlen, NT_EINVAL, "'%s' must be an array of 1 to 500 user ids", "user_ids");
        goto out;
    }
    out = calloc((size_t)size, sizeof(*out));
    NT_ASSERT(out != NULL);
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsString(v) || !presence_user_valid(v->valuestring)) {
            st = fail(err, errlen, NT_EINVAL, "'%s' must hold valid user ids", "user_ids");
            goto out;
        }
        bool dup = false;
        for (size_t i = 0; i < count && !dup; i++)
            dup = strcmp(out[i], v->valuestring) == 0;
        if (!dup) {
            out[count] = strdup(v->valuestring);
            NT_ASSERT(out[count] != NULL);
            count++;
        }
    }
out:
    cJSON_Delete(o);
    if (st != NT_OK) {
        presence_ids_free(out, count);
        return st;
    }
    *ids = out;
    *n = count;
    return NT_OK;
}

nt_status presence_kv_value_parse(const char *data, size_t len, bool *online, char *last_seen)
{
    char err[NT_ERRMSG_LEN];
    cJSON *o = NULL;
    nt_status st = nt_json_parse_object(data, len, &o, err, sizeof(err));
    if (st != NT_OK)
        return st;
    const cJSON *on = cJSON_GetObjectItemCaseSensitive(o, "online");
    if (!cJSON_IsBool(on)) {
        cJSON_Delete(o);
        return NT_EINVAL;
    }
    *online = cJSON_IsTrue(on);
    /* last_seen goes into replies as it is: only the characters of an
     * RFC 3339 time. */
    const char *ls = str_field(o, "last_seen");
    if (ls != NULL && strlen(ls) < PRESENCE_TIME_LEN &&
        strspn(ls, "0123456789TZ:.+-") == strlen(ls))
        memcpy(last_seen, ls, strlen(ls) + 1);
    else
        last_seen[0] = '\0';
    cJSON_Delete(o);
    return NT_OK;
}

static char *print_and_delete(cJSON *o)
{
    char *s = nt_json_print(o);
    cJSON_Delete(o);
    return s;
}

char *presence_kv_value(bool online, const char *last_seen)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddBoolToObject(o, "online", online);
    cJSON_AddStringToObject(o, "last_seen", last_seen);
    return print_and_delete(o);
}

char *presence_update_json(const char *user_id, bool online, const char *last_seen)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "user_id", user_id);
    cJSON_AddBoolToObject(o, "online", online);
    nt_json_add_str_or_null(o, "last_seen", last_seen[0] != '\0' ? last_seen : NULL);
    return print_and_delete(o);
}

char *presence_rooms_list_body(const char *cursor)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "scope", "mine");
    cJSON_AddNumberToObject(o, "limit", 100);
    if (cursor != NULL)
        cJSON_AddStringToObject(o, "cursor", cursor);
    return print_and_delete(o);
}

nt_status presence_rooms_page_parse(const char *data, size_t len, char ***ids, size_t *n,
                                    char **cursor)
{
    char err[NT_ERRMSG_LEN];
    cJSON *o = NULL;
    nt_status st = nt_json_parse_object(data, len, &o, err, sizeof(err));
    if (st != NT_OK)
        return st;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(d, "rooms");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(d, "next_cursor");
    if (!cJSON_IsArray(rooms) || (next != NULL && !cJSON_IsNull(next) && !cJSON_IsString(next))) {
        cJSON_Delete(o);
        return NT_EINVAL;
    }
    size_t add = (size_t)cJSON_GetArraySize(rooms);
    char **grown = realloc(*ids, (*n + add + 1) * sizeof(*grown));
    NT_ASSERT(grown != NULL);
    *ids = grown;
    const cJSON *r;
    cJSON_ArrayForEach(r, rooms)
    {
        const char *id = str_field(r, "id");
        if (id != NULL && presence_id_valid(id)) {
            grown[*n] = strdup(id);
            NT_ASSERT(grown[*n] != NULL);
            (*n)++;
        }
    }
    *cursor = NULL;
    if (cJSON_IsString(next) && next->valuestring[0] != '\0') {
        *cursor = strdup(next->valuestring);
        NT_ASSERT(*cursor != NULL);
    }
    cJSON_Delete(o);
    return NT_OK;
}

cJSON *presence_raw_json(char *json)
{
    cJSON *raw = cJSON_CreateRaw(json);
    NT_ASSERT(raw != NULL);
    free(json);
    return raw;
}
