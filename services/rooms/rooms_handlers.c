/* The rooms service's routes. Each write runs in one transaction: read the
 * room and the caller's role, ask rooms_authz, write, put the room's new
 * access state in the cache, commit; the events go out after the commit. */
#include "rooms.h"

#include "nt_log.h"

#include <stdio.h>
#include <string.h>

#define MOD        "rooms"
#define NO_PROFILE "no profile for this user yet; create it with POST /api/users"

/* ---- events ---- */

static void ev_add(rooms_events *e, cJSON *payload, const char *fmt, const char *id,
                   const char *event)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 4;
        e->v = realloc(e->v, e->cap * sizeof(*e->v));
        NT_ASSERT(e->v != NULL);
    }
    snprintf(e->v[e->n].subject, sizeof(e->v[e->n].subject), fmt, id, event);
    e->v[e->n].payload = payload;
    e->n++;
}

static void ev_room(rooms_events *e, const char *room_id, const char *event, cJSON *payload)
{
    ev_add(e, payload, "chat.room.%s.%s", room_id, event);
}

static void ev_user(rooms_events *e, const char *user_id, const char *event, cJSON *payload)
{
    ev_add(e, payload, "chat.user.%s.%s", user_id, event);
}

/* Publishes (when publish is true) and frees every event. */
static void ev_flush(rooms_ctx *ctx, rooms_events *e, bool publish)
{
    for (size_t i = 0; i < e->n; i++) {
        if (publish && ctx->publish != NULL) {
            char *s = nt_json_print(e->v[i].payload);
            if (ctx->publish(ctx->publish_arg, e->v[i].subject, s, strlen(s)) != NT_OK)
                nt_log_error(MOD, "event not published subject=%s", e->v[i].subject);
            free(s);
        }
        cJSON_Delete(e->v[i].payload);
    }
    free(e->v);
    memset(e, 0, sizeof(*e));
}

/* ---- the authorisation cache: room:{room}:members ---- */

static void cache_key(const char *room_id, char *key, size_t keylen)
{
    snprintf(key, keylen, "room:%s:members", room_id);
}

/* A write in progress. */
typedef struct {
    rooms_ctx *ctx;
    sqlite3 *db;
    char cached_room[NT_ID_LEN]; /* the cache entry this write replaced, if any */
    bool cache_failed;
} wtx;

static nt_status wtx_begin(wtx *w, rooms_ctx *ctx)
{
    memset(w, 0, sizeof(*w));
    w->ctx = ctx;
    return rooms_txn_begin(ctx->store, &w->db);
}

/* Puts the room's access state as this transaction leaves it, before COMMIT,
 * so cache writes land in database order across threads and processes (the
 * write lock of BEGIN IMMEDIATE is held). A failure refuses the whole write:
 * committing without it would leave authorize answering from the old state
 * for up to an hour. Rooms too large to cache have their entry deleted. */
static nt_status wtx_cache(wtx *w, const char *room_id)
{
    if (w->ctx->kv == NULL)
        return NT_OK;
    rooms_access a;
    nt_status st = rooms_db_access(w->db, room_id, &a);
    if (st != NT_OK)
        return st;
    char key[NT_ID_LEN + 16];
    cache_key(room_id, key, sizeof(key));
    if (a.n > ROOMS_CACHE_MAX) {
        st = nt_kv_delete(w->ctx->kv, key);
    } else {
        char *s = rooms_access_to_text(&a);
        st = nt_kv_put(w->ctx->kv, key, s, strlen(s));
        free(s);
    }
    rooms_access_clear(&a);
    if (st != NT_OK) {
        w->cache_failed = true;
        nt_log_error(MOD, "authorisation cache unreachable; write refused room=%s", room_id);
        return NT_EUNAVAIL;
    }
    snprintf(w->cached_room, sizeof(w->cached_room), "%s", room_id);
    return NT_OK;
}

/* Ends the write: commits when st is NT_OK, else rolls back. When the commit
 * fails after the cache was written, the entry is removed (still under the
 * lock) so readers refill it from the database. Returns the final status and
 * names the cache when it was the cause. */
static nt_status wtx_end(wtx *w, nt_status st, nt_reply *rep)
{
    nt_status cst = rooms_txn_end(w->ctx->store, w->db, st == NT_OK);
    if (st == NT_OK && cst != NT_OK && w->cached_room[0] != '\0') {
        char key[NT_ID_LEN + 16];
        cache_key(w->cached_room, key, sizeof(key));
        if (nt_kv_delete(w->ctx->kv, key) != NT_OK)
            nt_log_error(MOD, "cache may hold an uncommitted state room=%s", w->cached_room);
    }
    if (st == NT_OK)
        st = cst;
    if (w->cache_failed)
        return nt_reply_fail(rep, NT_EUNAVAIL,
                             "the authorisation cache is unavailable; nothing was changed");
    return st;
}

/* ---- shared pieces ---- */

static nt_status parse(const nt_request *req, nt_reply *rep, const char *const *allowed,
                       cJSON **body)
{
    if (!rooms_user_id_valid(req->user))
        return nt_reply_fail(rep, NT_EUNAUTH, "the user id has an invalid form");
    nt_status st =
        nt_json_parse_object(req->data, req->len, body, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = nt_json_check_keys(*body, allowed, rep->message, sizeof(rep->message));
    return st;
}

static nt_status not_found(nt_reply *rep, const char *room_id)
{
    return nt_reply_fail(rep, NT_ENOTFOUND, "room %s does not exist", room_id);
}

/* Loads the room as the caller sees it and checks that the caller may do action. */
static nt_status load_authorized(sqlite3 *db, const char *room_id, const char *caller,
                                 rooms_action action, rooms_room *room, nt_reply *rep)
{
    nt_status st = rooms_db_room(db, room_id, caller, room);
    if (st == NT_ENOTFOUND)
        return not_found(rep, room_id);
    if (st != NT_OK)
        return st;
    return rooms_authz(action, room->role, room->is_private, ROOMS_MEMBER, room_id, rep->message,
                       sizeof(rep->message));
}

/* Makes sure the caller has a users row (the foreign keys need it): asks auth,
 * which creates it from Clerk when Clerk is configured. */
static nt_status ensure_profile(rooms_ctx *ctx, const nt_request *req, nt_reply *rep)
{
    sqlite3 *db = NULL;
    bool exists = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        nt_status st = rooms_read_begin(ctx->store, &db);
        if (st != NT_OK)
            return st;
        st = rooms_db_user_exists(db, req->user, &exists);
        rooms_read_end(ctx->store, db);
        if (st != NT_OK)
            return st;
        if (exists)
            return NT_OK;
        if (attempt > 0 || ctx->ensure_user == NULL ||
            ctx->ensure_user(ctx->ensure_arg, req->user, req->request_id) != NT_OK)
            break;
    }
    return nt_reply_fail(rep, NT_ECONFLICT, NO_PROFILE);
}

static cJSON *member_event(const rooms_member *m, const char *key, const char *by)
{
    cJSON *j = rooms_member_to_json(m);
    if (key != NULL)
        nt_json_add_str_or_null(j, key, by);
    return j;
}

static cJSON *left_event(const rooms_member *m, const char *reason, const char *by)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "room_id", m->room_id);
    cJSON_AddStringToObject(j, "user_id", m->user_id);
    cJSON_AddStringToObject(j, "username", m->username != NULL ? m->username : m->user_id);
    cJSON_AddStringToObject(j, "reason", reason);
    nt_json_add_str_or_null(j, "by", by);
    return j;
}

static cJSON *role_event(const rooms_member *m, rooms_role previous, const char *by)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "room_id", m->room_id);
    cJSON_AddStringToObject(j, "user_id", m->user_id);
    cJSON_AddStringToObject(j, "username", m->username != NULL ? m->username : m->user_id);
    cJSON_AddStringToObject(j, "role", rooms_role_name(m->role));
    cJSON_AddStringToObject(j, "previous_role", rooms_role_name(previous));
    nt_json_add_str_or_null(j, "by", by);
    return j;
}

static cJSON *removed_event(const char *room_id, const char *reason, const char *by)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "room_id", room_id);
    cJSON_AddStringToObject(j, "reason", reason);
    cJSON_AddStringToObject(j, "by", by);
    return j;
}

/* ---- chat.rooms.list ---- */

static nt_status rooms_list(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"scope", "q", "limit", "cursor", NULL};
    static const nt_text_rule q_rule = {.min_chars = 0, .max_chars = ROOMS_NAME_MAX};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char *q = NULL, *ca = NULL, *cb = NULL;
    rooms_room_list l = {0};
    long long limit = 0;
    bool pub = false;
    nt_status st = parse(req, rep, allowed, &body);
    if (st != NT_OK)
        goto out;
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(body, "scope");
    if (scope != NULL && !cJSON_IsNull(scope)) {
        if (!cJSON_IsString(scope) || (strcmp(scope->valuestring, "mine") != 0 &&
                                       strcmp(scope->valuestring, "public") != 0)) {
            st = nt_reply_fail(rep, NT_EINVAL, "'scope' must be \"mine\" or \"public\"");
            goto out;
        }
        pub = strcmp(scope->valuestring, "public") == 0;
    }
    st = nt_json_get_text(body, "q", false, &q_rule, &q, rep->message, sizeof(rep->message));
    if (st == NT_ENOTFOUND)
        st = NT_OK;
    if (st != NT_OK)
        goto out;
    if (q != NULL && !pub) {
        st = nt_reply_fail(rep, NT_EINVAL, "'q' filters public rooms only: add scope=public");
        goto out;
    }
    if (q != NULL && q[0] == '\0') {
        free(q);
        q = NULL;
    }
    st = rooms_get_limit(body, "limit", ROOMS_LIST_DEFAULT, ROOMS_LIST_MAX, &limit, rep->message,
                         sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(body, "cursor");
    if (cur != NULL && !cJSON_IsNull(cur) &&
        (!cJSON_IsString(cur) || rooms_cursor_decode(cur->valuestring, &ca, &cb) != NT_OK)) {
        st = nt_reply_fail(rep, NT_EINVAL, "'cursor' is invalid");
        goto out;
    }
    sqlite3 *db = NULL;
    st = rooms_read_begin(ctx->store, &db);
    if (st != NT_OK)
        goto out;
    if (pub)
        st = rooms_db_list_public(db, req->user, q, ca, cb, (int)limit + 1, &l);
    else
        st = rooms_db_list_mine(db, req->user, ca, cb, (int)limit + 1, &l);
    rooms_read_end(ctx->store, db);
    if (st != NT_OK)
        goto out;
    cJSON *d = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(d, "rooms");
    size_t n = l.n > (size_t)limit ? (size_t)limit : l.n;
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, rooms_room_to_json(&l.v[i], true));
    if (l.n > n) {
        const rooms_room *last = &l.v[n - 1];
        char *c = rooms_cursor_encode(pub ? last->name : last->last_activity_at, last->id);
        cJSON_AddStringToObject(d, "next_cursor", c);
        free(c);
    } else {
        cJSON_AddNullToObject(d, "next_cursor");
    }
    nt_reply_set(rep, d);
out:
    cJSON_Delete(body);
    free(q);
    free(ca);
    free(cb);
    rooms_room_list_clear(&l);
    return st;
}

/* ---- chat.rooms.create ---- */

static nt_status rooms_create(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"name", "description", "is_private", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    rooms_room r, view;
    memset(&r, 0, sizeof(r));
    memset(&view, 0, sizeof(view));
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = nt_json_get_text(body, "name", true, &rooms_name_rule, &r.name, rep->message,
                              sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    st = nt_json_get_text(body, "description", false, &rooms_desc_rule, &r.description,
                          rep->message, sizeof(rep->message));
    if (st == NT_ENOTFOUND)
        st = NT_OK;
    if (st != NT_OK)
        goto out;
    if (r.description != NULL && r.description[0] == '\0') {
        free(r.description);
        r.description = NULL;
    }
    st = nt_json_get_bool(body, "is_private", false, &r.is_private, rep->message,
                          sizeof(rep->message));
    if (st == NT_ENOTFOUND)
        st = NT_OK;
    if (st == NT_OK)
        st = ensure_profile(ctx, req, rep);
    if (st != NT_OK)
        goto out;
    nt_id_new(r.id);
    snprintf(r.created_by, sizeof(r.created_by), "%s", req->user);
    rooms_now(r.created_at);
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = rooms_db_insert_room(w.db, &r);
    if (st == NT_OK)
        st = rooms_db_add_member(w.db, r.id, req->user, ROOMS_ADMIN, r.created_at);
    if (st == NT_OK)
        st = wtx_cache(&w, r.id);
    if (st == NT_OK)
        st = rooms_db_room(w.db, r.id, req->user, &view);
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    nt_log_info(MOD, "room created room=%s user=%s private=%d", r.id, req->user, r.is_private);
    nt_reply_set(rep, rooms_room_to_json(&view, true));
out:
    cJSON_Delete(body);
    rooms_room_clear(&r);
    rooms_room_clear(&view);
    return st;
}

/* ---- chat.rooms.get ---- */

static nt_status rooms_get(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN];
    rooms_room r;
    memset(&r, 0, sizeof(r));
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    sqlite3 *db = NULL;
    st = rooms_read_begin(ctx->store, &db);
    if (st != NT_OK)
        goto out;
    st = load_authorized(db, room_id, req->user, ROOMS_ACT_READ, &r, rep);
    rooms_read_end(ctx->store, db);
    if (st != NT_OK)
        goto out;
    cJSON *d = rooms_room_to_json(&r, true);
    /* The latest messages come from the messages service once it exists. */
    cJSON_AddArrayToObject(d, "messages");
    nt_reply_set(rep, d);
out:
    cJSON_Delete(body);
    rooms_room_clear(&r);
    return st;
}

/* ---- chat.rooms.update ---- */

static nt_status rooms_update(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "name", "description", "is_private", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN];
    char *name = NULL, *desc = NULL;
    bool set_desc = false, priv = false, set_priv = false;
    rooms_room r, view;
    memset(&r, 0, sizeof(r));
    memset(&view, 0, sizeof(view));
    rooms_events ev = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    st = nt_json_get_text(body, "name", false, &rooms_name_rule, &name, rep->message,
                          sizeof(rep->message));
    if (st == NT_ENOTFOUND) {
        if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "name"))) {
            st = nt_reply_fail(rep, NT_EINVAL, "'name' cannot be null");
            goto out;
        }
        st = NT_OK;
    }
    if (st != NT_OK)
        goto out;
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(body, "description");
    if (dv != NULL) {
        set_desc = true; /* null clears it */
        if (!cJSON_IsNull(dv)) {
            st = nt_json_get_text(body, "description", true, &rooms_desc_rule, &desc, rep->message,
                                  sizeof(rep->message));
            if (st != NT_OK)
                goto out;
            if (desc[0] == '\0') {
                free(desc);
                desc = NULL;
            }
        }
    }
    st = nt_json_get_bool(body, "is_private", false, &priv, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        set_priv = true;
    else if (st == NT_ENOTFOUND)
        st = NT_OK;
    else
        goto out;
    if (name == NULL && !set_desc && !set_priv) {
        st = nt_reply_fail(rep, NT_EINVAL,
                           "nothing to update: give 'name', 'description' or 'is_private'");
        goto out;
    }
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_UPDATE, &r, rep);
    if (st == NT_OK) {
        bool privacy_changed = set_priv && priv != r.is_private;
        if (name != NULL) {
            free(r.name);
            r.name = name;
            name = NULL;
        }
        if (set_desc) {
            free(r.description);
            r.description = desc;
            desc = NULL;
        }
        if (set_priv)
            r.is_private = priv;
        st = rooms_db_update_room(w.db, &r);
        if (st == NT_OK && privacy_changed)
            st = wtx_cache(&w, room_id);
        if (st == NT_OK)
            st = rooms_db_room(w.db, room_id, req->user, &view);
    }
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    ev_room(&ev, room_id, "room_updated", rooms_room_to_json(&view, false));
    nt_reply_set(rep, rooms_room_to_json(&view, true));
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    free(name);
    free(desc);
    rooms_room_clear(&r);
    rooms_room_clear(&view);
    return st;
}

/* ---- chat.rooms.delete ---- */

/* Deletes room_id inside w and queues room_deleted plus room_removed for every
 * former member. */
static nt_status delete_room(wtx *w, const char *room_id, const char *by, rooms_events *ev)
{
    rooms_access a;
    nt_status st = rooms_db_access(w->db, room_id, &a);
    if (st != NT_OK)
        return st;
    st = rooms_db_delete_room(w->db, room_id);
    if (st == NT_OK)
        st = wtx_cache(w, room_id);
    if (st == NT_OK) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "room_id", room_id);
        cJSON_AddStringToObject(j, "deleted_by", by);
        ev_room(ev, room_id, "room_deleted", j);
        for (size_t i = 0; i < a.n; i++)
            ev_user(ev, a.members[i].user_id, "room_removed",
                    removed_event(room_id, "deleted", by));
    }
    rooms_access_clear(&a);
    return st;
}

static nt_status rooms_delete(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN];
    rooms_room r;
    memset(&r, 0, sizeof(r));
    rooms_events ev = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_DELETE, &r, rep);
    if (st == NT_OK)
        st = delete_room(&w, room_id, req->user, &ev);
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    nt_log_info(MOD, "room deleted room=%s user=%s", room_id, req->user);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "room_id", room_id);
    cJSON_AddBoolToObject(d, "deleted", true);
    nt_reply_set(rep, d);
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    rooms_room_clear(&r);
    return st;
}

/* ---- chat.rooms.join ---- */

static nt_status rooms_join(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN];
    rooms_room r, view;
    rooms_member m;
    memset(&r, 0, sizeof(r));
    memset(&view, 0, sizeof(view));
    memset(&m, 0, sizeof(m));
    rooms_events ev = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = ensure_profile(ctx, req, rep);
    if (st != NT_OK)
        goto out;
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_JOIN, &r, rep);
    bool joined = false;
    if (st == NT_OK && r.role == ROOMS_OUTSIDER) {
        char now[ROOMS_TIME_LEN];
        rooms_now(now);
        st = rooms_db_add_member(w.db, room_id, req->user, ROOMS_MEMBER, now);
        if (st == NT_OK)
            st = wtx_cache(&w, room_id);
        if (st == NT_OK)
            st = rooms_db_member(w.db, room_id, req->user, &m);
        joined = st == NT_OK;
    }
    if (st == NT_OK)
        st = rooms_db_room(w.db, room_id, req->user, &view);
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    if (joined)
        ev_room(&ev, room_id, "user_joined", member_event(&m, "invited_by", NULL));
    nt_reply_set(rep, rooms_room_to_json(&view, true));
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    rooms_room_clear(&r);
    rooms_room_clear(&view);
    rooms_member_clear(&m);
    return st;
}

/* ---- chat.rooms.leave ---- */

static nt_status rooms_leave(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN], heir[ROOMS_USER_ID_MAX] = "";
    rooms_room r;
    rooms_member me, promoted;
    memset(&r, 0, sizeof(r));
    memset(&me, 0, sizeof(me));
    memset(&promoted, 0, sizeof(promoted));
    rooms_events ev = {0};
    bool deleted = false;
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_LEAVE, &r, rep);
    if (st == NT_OK)
        st = rooms_db_member(w.db, room_id, req->user, &me);
    if (st == NT_OK && r.member_count <= 1) {
        /* The last member leaves: nobody could administer the room any more,
         * so it goes, with its messages. */
        deleted = true;
        st = delete_room(&w, room_id, req->user, &ev);
    } else if (st == NT_OK) {
        long long admins = 0;
        st = rooms_db_remove_member(w.db, room_id, req->user);
        if (st == NT_OK)
            st = rooms_db_count(w.db, room_id, ROOMS_ADMIN, &admins);
        if (st == NT_OK && admins == 0) {
            /* The last admin left: the longest-standing member takes over. */
            st = rooms_db_oldest_member(w.db, room_id, heir);
            if (st == NT_OK)
                st = rooms_db_member(w.db, room_id, heir, &promoted);
            if (st == NT_OK)
                st = rooms_db_set_role(w.db, room_id, heir, ROOMS_ADMIN);
        }
        if (st == NT_OK)
            st = wtx_cache(&w, room_id);
    }
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    if (!deleted) {
        /* Before room_deleted would be pointless; after, the room is gone. */
        ev_room(&ev, room_id, "user_left", left_event(&me, "left", NULL));
        if (heir[0] != '\0') {
            rooms_role previous = promoted.role;
            promoted.role = ROOMS_ADMIN;
            ev_room(&ev, room_id, "member_updated", role_event(&promoted, previous, NULL));
        }
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "room_id", room_id);
    cJSON_AddBoolToObject(d, "left", true);
    cJSON_AddBoolToObject(d, "room_deleted", deleted);
    nt_json_add_str_or_null(d, "new_admin", heir[0] ? heir : NULL);
    nt_reply_set(rep, d);
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    rooms_room_clear(&r);
    rooms_member_clear(&me);
    rooms_member_clear(&promoted);
    return st;
}

/* ---- chat.rooms.invite ---- */

static nt_status rooms_invite(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "user_id", "username", NULL};
    static const nt_text_rule name_rule = {.min_chars = 1, .max_chars = 64};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN], target[ROOMS_USER_ID_MAX] = "";
    char *username = NULL;
    rooms_room r, view;
    rooms_member m;
    memset(&r, 0, sizeof(r));
    memset(&view, 0, sizeof(view));
    memset(&m, 0, sizeof(m));
    rooms_events ev = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    st = rooms_get_user_id(body, "user_id", false, target, rep->message, sizeof(rep->message));
    if (st != NT_OK && st != NT_ENOTFOUND)
        goto out;
    nt_status su = nt_json_get_text(body, "username", false, &name_rule, &username, rep->message,
                                    sizeof(rep->message));
    if (su != NT_OK && su != NT_ENOTFOUND) {
        st = su;
        goto out;
    }
    if ((st == NT_OK) == (su == NT_OK)) {
        st = nt_reply_fail(rep, NT_EINVAL, "give exactly one of 'user_id' and 'username'");
        goto out;
    }
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_INVITE, &r, rep);
    if (st == NT_OK && username != NULL) {
        st = rooms_db_user_by_name(w.db, username, target);
        if (st == NT_ENOTFOUND)
            st = nt_reply_fail(rep, NT_ENOTFOUND, "no user is called '%.64s'", username);
        else if (st == NT_ECONFLICT)
            st = nt_reply_fail(rep, NT_ECONFLICT,
                               "several users are called '%.64s'; invite by 'user_id'", username);
    } else if (st == NT_OK) {
        bool exists = false;
        st = rooms_db_user_exists(w.db, target, &exists);
        if (st == NT_OK && !exists)
            st = nt_reply_fail(rep, NT_ENOTFOUND, "user %s does not exist", target);
    }
    rooms_role trole = ROOMS_OUTSIDER;
    if (st == NT_OK)
        st = rooms_db_role(w.db, room_id, target, &trole);
    if (st == NT_OK && trole != ROOMS_OUTSIDER)
        st = nt_reply_fail(rep, NT_ECONFLICT, "user %s is already a member of room %s", target,
                           room_id);
    if (st == NT_OK) {
        char now[ROOMS_TIME_LEN];
        rooms_now(now);
        st = rooms_db_add_member(w.db, room_id, target, ROOMS_MEMBER, now);
    }
    if (st == NT_OK)
        st = wtx_cache(&w, room_id);
    if (st == NT_OK)
        st = rooms_db_member(w.db, room_id, target, &m);
    if (st == NT_OK)
        st = rooms_db_room(w.db, room_id, target, &view);
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    nt_log_info(MOD, "invited room=%s user=%s by=%s", room_id, target, req->user);
    ev_room(&ev, room_id, "user_joined", member_event(&m, "invited_by", req->user));
    cJSON *inv = cJSON_CreateObject();
    cJSON_AddItemToObject(inv, "room", rooms_room_to_json(&view, false));
    cJSON_AddStringToObject(inv, "role", rooms_role_name(m.role));
    cJSON_AddStringToObject(inv, "invited_by", req->user);
    ev_user(&ev, target, "room_invited", inv);
    nt_reply_set(rep, rooms_member_to_json(&m));
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    free(username);
    rooms_room_clear(&r);
    rooms_room_clear(&view);
    rooms_member_clear(&m);
    return st;
}

/* ---- chat.rooms.members ---- */

static nt_status rooms_members(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "limit", "cursor", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN];
    char *ca = NULL, *cb = NULL;
    long long limit = 0;
    rooms_room r;
    memset(&r, 0, sizeof(r));
    rooms_member_list l = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = rooms_get_limit(body, "limit", ROOMS_MEMBERS_DEFAULT, ROOMS_MEMBERS_MAX, &limit,
                             rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(body, "cursor");
    if (cur != NULL && !cJSON_IsNull(cur) &&
        (!cJSON_IsString(cur) || rooms_cursor_decode(cur->valuestring, &ca, &cb) != NT_OK)) {
        st = nt_reply_fail(rep, NT_EINVAL, "'cursor' is invalid");
        goto out;
    }
    sqlite3 *db = NULL;
    st = rooms_read_begin(ctx->store, &db);
    if (st != NT_OK)
        goto out;
    st = load_authorized(db, room_id, req->user, ROOMS_ACT_READ, &r, rep);
    if (st == NT_OK)
        st = rooms_db_members(db, room_id, ca, cb, (int)limit + 1, &l);
    rooms_read_end(ctx->store, db);
    if (st != NT_OK)
        goto out;
    cJSON *d = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(d, "members");
    size_t n = l.n > (size_t)limit ? (size_t)limit : l.n;
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, rooms_member_to_json(&l.v[i]));
    if (l.n > n) {
        char *c = rooms_cursor_encode(l.v[n - 1].joined_at, l.v[n - 1].user_id);
        cJSON_AddStringToObject(d, "next_cursor", c);
        free(c);
    } else {
        cJSON_AddNullToObject(d, "next_cursor");
    }
    nt_reply_set(rep, d);
out:
    cJSON_Delete(body);
    free(ca);
    free(cb);
    rooms_room_clear(&r);
    rooms_member_list_clear(&l);
    return st;
}

/* ---- chat.rooms.set_role ---- */

static nt_status rooms_set_role(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "user_id", "role", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN], target[ROOMS_USER_ID_MAX];
    rooms_role role = ROOMS_MEMBER, previous = ROOMS_OUTSIDER;
    rooms_room r;
    rooms_member m;
    memset(&r, 0, sizeof(r));
    memset(&m, 0, sizeof(m));
    rooms_events ev = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = rooms_get_user_id(body, "user_id", true, target, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(body, "role");
    if (rv == NULL || cJSON_IsNull(rv)) {
        st = nt_reply_fail(rep, NT_EINVAL, "'role' is required");
        goto out;
    }
    if (!cJSON_IsString(rv) || !rooms_role_parse(rv->valuestring, &role)) {
        st = nt_reply_fail(rep, NT_EINVAL, "'role' must be \"admin\", \"moderator\" or \"member\"");
        goto out;
    }
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_SET_ROLE, &r, rep);
    if (st == NT_OK) {
        st = rooms_db_member(w.db, room_id, target, &m);
        if (st == NT_ENOTFOUND)
            st = nt_reply_fail(rep, NT_ENOTFOUND, "user %s is not a member of room %s", target,
                               room_id);
    }
    bool changed = false;
    if (st == NT_OK && m.role != role) {
        previous = m.role;
        long long admins = 0;
        if (previous == ROOMS_ADMIN)
            st = rooms_db_count(w.db, room_id, ROOMS_ADMIN, &admins);
        if (st == NT_OK && previous == ROOMS_ADMIN && admins <= 1)
            st = nt_reply_fail(rep, NT_ECONFLICT,
                               "a room needs at least one admin: promote someone else first");
        if (st == NT_OK)
            st = rooms_db_set_role(w.db, room_id, target, role);
        if (st == NT_OK)
            st = wtx_cache(&w, room_id);
        m.role = role;
        changed = true;
    }
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    if (changed) {
        nt_log_info(MOD, "role set room=%s user=%s role=%s by=%s", room_id, target,
                    rooms_role_name(role), req->user);
        ev_room(&ev, room_id, "member_updated", role_event(&m, previous, req->user));
    }
    nt_reply_set(rep, rooms_member_to_json(&m));
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    rooms_room_clear(&r);
    rooms_member_clear(&m);
    return st;
}

/* ---- chat.rooms.remove_member ---- */

static nt_status rooms_remove_member(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "user_id", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN], target[ROOMS_USER_ID_MAX];
    rooms_room r;
    rooms_member m;
    memset(&r, 0, sizeof(r));
    memset(&m, 0, sizeof(m));
    rooms_events ev = {0};
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = rooms_get_user_id(body, "user_id", true, target, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    wtx w;
    st = wtx_begin(&w, ctx);
    if (st != NT_OK)
        goto out;
    /* First whether the caller may remove anyone at all, so outsiders and
     * plain members learn nothing about who is a member. */
    st = load_authorized(w.db, room_id, req->user, ROOMS_ACT_REMOVE_MEMBER, &r, rep);
    if (st == NT_OK) {
        st = rooms_db_member(w.db, room_id, target, &m);
        if (st == NT_ENOTFOUND)
            st = nt_reply_fail(rep, NT_ENOTFOUND, "user %s is not a member of room %s", target,
                               room_id);
    }
    if (st == NT_OK && strcmp(target, req->user) == 0)
        st = nt_reply_fail(rep, NT_EINVAL,
                           "you cannot remove yourself: use POST /api/rooms/%s/leave", room_id);
    if (st == NT_OK)
        st = rooms_authz(ROOMS_ACT_REMOVE_MEMBER, r.role, r.is_private, m.role, room_id,
                         rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = rooms_db_remove_member(w.db, room_id, target);
    if (st == NT_OK)
        st = wtx_cache(&w, room_id);
    st = wtx_end(&w, st, rep);
    if (st != NT_OK)
        goto out;
    nt_log_info(MOD, "member removed room=%s user=%s by=%s", room_id, target, req->user);
    ev_room(&ev, room_id, "user_left", left_event(&m, "removed", req->user));
    ev_user(&ev, target, "room_removed", removed_event(room_id, "removed", req->user));
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "room_id", room_id);
    cJSON_AddStringToObject(d, "user_id", target);
    cJSON_AddBoolToObject(d, "removed", true);
    nt_reply_set(rep, d);
out:
    ev_flush(ctx, &ev, st == NT_OK);
    cJSON_Delete(body);
    rooms_room_clear(&r);
    rooms_member_clear(&m);
    return st;
}

/* ---- chat.rooms.authorize ---- */

/* The room's access state: from the cache, else from the database (then the
 * cache is filled with create-if-absent, so a slow reader never overwrites
 * what a writer put meanwhile). */
static nt_status load_access(rooms_ctx *ctx, const char *room_id, rooms_access *out)
{
    char key[NT_ID_LEN + 16];
    cache_key(room_id, key, sizeof(key));
    if (ctx->kv != NULL) {
        char *data = NULL;
        size_t len = 0;
        if (nt_kv_get(ctx->kv, key, &data, &len) == NT_OK) {
            nt_status st = rooms_access_from_text(data, len, out);
            free(data);
            if (st == NT_OK && strcmp(out->room_id, room_id) == 0)
                return NT_OK;
            if (st == NT_OK)
                rooms_access_clear(out);
            nt_log_warn(MOD, "ignoring a malformed cache entry room=%s", room_id);
        }
    }
    sqlite3 *db = NULL;
    nt_status st = rooms_read_begin(ctx->store, &db);
    if (st != NT_OK)
        return st;
    st = rooms_db_access(db, room_id, out);
    rooms_read_end(ctx->store, db);
    if (st == NT_OK && ctx->kv != NULL && out->exists && out->n <= ROOMS_CACHE_MAX) {
        char *s = rooms_access_to_text(out);
        nt_kv_create(ctx->kv, key, s, strlen(s)); /* a conflict means a writer was first */
        free(s);
    }
    return st;
}

static nt_status rooms_authorize(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "action", NULL};
    rooms_ctx *ctx = vctx;
    cJSON *body = NULL;
    char room_id[NT_ID_LEN];
    rooms_action action = ROOMS_ACT_READ;
    rooms_access a;
    memset(&a, 0, sizeof(a));
    nt_status st = parse(req, rep, allowed, &body);
    if (st == NT_OK)
        st = rooms_get_room_id(body, room_id, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    const cJSON *av = cJSON_GetObjectItemCaseSensitive(body, "action");
    if (!cJSON_IsString(av) || !rooms_action_parse(av->valuestring, &action)) {
        st = nt_reply_fail(rep, NT_EINVAL,
                           "'action' must be one of read, send, join, leave, invite, update, "
                           "delete, set_role, remove_member, moderate");
        goto out;
    }
    st = load_access(ctx, room_id, &a);
    if (st != NT_OK)
        goto out;
    if (!a.exists) {
        st = not_found(rep, room_id);
        goto out;
    }
    rooms_role role = rooms_access_role(&a, req->user);
    st = rooms_authz(action, role, a.is_private, ROOMS_MEMBER, room_id, rep->message,
                     sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "room_id", room_id);
    cJSON_AddStringToObject(d, "user_id", req->user);
    cJSON_AddStringToObject(d, "action", rooms_action_name(action));
    nt_json_add_str_or_null(d, "role", rooms_role_name(role));
    cJSON_AddBoolToObject(d, "is_private", a.is_private);
    nt_reply_set(rep, d);
out:
    cJSON_Delete(body);
    rooms_access_clear(&a);
    return st;
}

/* clang-format off */
const nt_route rooms_routes[] = {
    {"list",          "chat.rooms.list",          rooms_list,          ROOMS_BODY_MAX, true},
    {"create",        "chat.rooms.create",        rooms_create,        ROOMS_BODY_MAX, true},
    {"get",           "chat.rooms.get",           rooms_get,           ROOMS_BODY_MAX, true},
    {"update",        "chat.rooms.update",        rooms_update,        ROOMS_BODY_MAX, true},
    {"delete",        "chat.rooms.delete",        rooms_delete,        ROOMS_BODY_MAX, true},
    {"join",          "chat.rooms.join",          rooms_join,          ROOMS_BODY_MAX, true},
    {"leave",         "chat.rooms.leave",         rooms_leave,         ROOMS_BODY_MAX, true},
    {"invite",        "chat.rooms.invite",        rooms_invite,        ROOMS_BODY_MAX, true},
    {"members",       "chat.rooms.members",       rooms_members,       ROOMS_BODY_MAX, true},
    {"set_role",      "chat.rooms.set_role",      rooms_set_role,      ROOMS_BODY_MAX, true},
    {"remove_member", "chat.rooms.remove_member", rooms_remove_member, ROOMS_BODY_MAX, true},
    {"authorize",     "chat.rooms.authorize",     rooms_authorize,     ROOMS_BODY_MAX, true},
};
/* clang-format on */
const size_t rooms_nroutes = sizeof(rooms_routes) / sizeof(rooms_routes[0]);
