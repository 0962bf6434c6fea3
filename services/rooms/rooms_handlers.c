/* The rooms service's routes. Each write runs in one transaction: read the
 * room and the caller's role, ask rooms_authz, write, put the room's new
 * access state in the cache, commit, publish the events; then unlock. */
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
    char cached_room[NT_ID_LEN]; /* the entry this write put or tried to put */
    bool cache_failed;
} wtx;

static nt_status wtx_begin(wtx *w, rooms_ctx *ctx)
{
    memset(w, 0, sizeof(*w));
    w->ctx = ctx;
    return rooms_txn_begin(ctx->store, &w->db);
}

static size_t cache_max(const rooms_ctx *ctx)
{
    return ctx->cache_max > 0 ? ctx->cache_max : ROOMS_CACHE_MAX;
}

/* The cache entry of a room as db sees it: its members, or a marker when it
 * has more than cache_max of them or the list would not fit one message (a
 * marker sends authorize to the database, and, being a value, keeps a slow
 * reader's create-if-absent from putting a stale list back). Counts before
 * reading any member. */
static nt_status access_entry(const rooms_ctx *ctx, sqlite3 *db, const char *room_id, char **out)
{
    rooms_access a;
    memset(&a, 0, sizeof(a));
    long long n = 0;
    nt_status st = rooms_db_count(db, room_id, ROOMS_OUTSIDER, &n);
    if (st == NT_OK && n > (long long)cache_max(ctx)) {
        snprintf(a.room_id, sizeof(a.room_id), "%s", room_id);
        a.exists = a.uncached = true;
    } else if (st == NT_OK) {
        st = rooms_db_access(db, room_id, &a);
    }
    if (st != NT_OK)
        return st;
    char *s = rooms_access_to_text(&a);
    if (strlen(s) > ROOMS_CACHE_MAX_BYTES) {
        free(s);
        a.uncached = true;
        s = rooms_access_to_text(&a);
    }
    rooms_access_clear(&a);
    *out = s;
    return NT_OK;
}

/* Puts the room's access state as this transaction leaves it, as the last
 * step before COMMIT, so cache writes land in database order across threads
 * and processes (the write lock of BEGIN IMMEDIATE is held). A failure
 * refuses the whole write: committing without it would leave authorize
 * answering from the old state for up to an hour. */
static nt_status wtx_cache(wtx *w, const char *room_id)
{
    const rooms_cache_ops *c = w->ctx->cache;
    if (c == NULL)
        return NT_OK;
    char key[NT_ID_LEN + 16], *s = NULL;
    cache_key(room_id, key, sizeof(key));
    nt_status st = access_entry(w->ctx, w->db, room_id, &s);
    if (st != NT_OK)
        return st;
    snprintf(w->cached_room, sizeof(w->cached_room), "%s", room_id);
    st = c->put(c->arg, key, s, strlen(s));
    free(s);
    if (st != NT_OK) {
        w->cache_failed = true;
        nt_log_error(MOD, "authorisation cache unreachable; write refused room=%s", room_id);
        return NT_EUNAVAIL;
    }
    return NT_OK;
}

/* A write that touched the cache will not commit (its put failed but may
 * have landed, or a later step or the commit failed): undo its changes back
 * to the savepoint taken at BEGIN, still holding the write lock, and put the
 * committed state again, so that no reader can take the uncommitted one for
 * long and no writer's entry is lost. A delete is the last resort: a reader
 * could then refill from an older snapshot. */
static void wtx_restore_cache(wtx *w)
{
    const rooms_cache_ops *c = w->ctx->cache;
    char key[NT_ID_LEN + 16], *s = NULL;
    cache_key(w->cached_room, key, sizeof(key));
    if (rooms_txn_undo(w->db) == NT_OK &&
        access_entry(w->ctx, w->db, w->cached_room, &s) == NT_OK &&
        c->put(c->arg, key, s, strlen(s)) == NT_OK) {
        free(s);
        return;
    }
    free(s);
    if (c->del(c->arg, key) == NT_OK)
        nt_log_warn(MOD, "cache entry removed after a failed write room=%s", w->cached_room);
    else
        nt_log_error(MOD, "cache may hold an uncommitted state room=%s", w->cached_room);
}

/* Ends the write: commits when st is NT_OK, else rolls back, restoring the
 * cache first when the write touched it. After a commit, the queued events
 * are published before the store's lock is released, so one instance
 * publishes a room's events in commit order. Returns the final status and
 * names the cache when it was the cause. */
static nt_status wtx_end(wtx *w, nt_status st, nt_reply *rep, rooms_events *ev)
{
    nt_status cst = st == NT_OK ? rooms_txn_commit(w->db) : st;
    if (cst != NT_OK) {
        if (w->cached_room[0] != '\0')
            wtx_restore_cache(w);
        rooms_txn_rollback(w->db);
    } else if (ev != NULL) {
        ev_flush(w->ctx, ev, true);
    }
    nt_store_unlock(w->ctx->store);
    if (w->cache_failed)
        return nt_reply_fail(rep, NT_EUNAVAIL,
                             "the authorisation cache is unavailable; nothing was changed");
    return cst;
}

/* ---- one request ----
 *
 * Every handler works on an op: the parsed body, the room id, the room as
 * the caller sees it, the room after the change, one member, and the events
 * to publish (wtx_end publishes them after the commit, under the store's
 * lock). op_finish frees everything; it never publishes. */

typedef struct {
    rooms_ctx *ctx;
    const nt_request *req;
    nt_reply *rep;
    cJSON *body;
    char room_id[NT_ID_LEN];
    rooms_room room; /* before the change, with the caller's role */
    rooms_room view; /* after it */
    rooms_member m;
    rooms_events ev;
} op;

/* Checks the caller's id, parses the body, refuses fields not in allowed, and
 * (with_room) reads the room id every room route names. */
static nt_status op_start(op *o, void *ctx, const nt_request *req, nt_reply *rep,
                          const char *const *allowed, bool with_room)
{
    memset(o, 0, sizeof(*o));
    o->ctx = ctx;
    o->req = req;
    o->rep = rep;
    if (!rooms_user_id_valid(req->user))
        return nt_reply_fail(rep, NT_EUNAUTH, "the user id has an invalid form");
    nt_status st =
        nt_json_parse_object(req->data, req->len, &o->body, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = nt_json_check_keys(o->body, allowed, rep->message, sizeof(rep->message));
    if (st == NT_OK && with_room)
        st = rooms_get_room_id(o->body, o->room_id, rep->message, sizeof(rep->message));
    return st;
}

static nt_status op_finish(op *o, nt_status st)
{
    ev_flush(o->ctx, &o->ev, false);
    cJSON_Delete(o->body);
    rooms_room_clear(&o->room);
    rooms_room_clear(&o->view);
    rooms_member_clear(&o->m);
    return st;
}

/* Loads o->room as the caller sees it and checks that the caller may do action. */
static nt_status load_authorized(op *o, sqlite3 *db, rooms_action action)
{
    nt_status st = rooms_db_room(db, o->room_id, o->req->user, &o->room);
    if (st == NT_ENOTFOUND)
        return nt_reply_fail(o->rep, NT_ENOTFOUND, "room %s does not exist", o->room_id);
    if (st != NT_OK)
        return st;
    return rooms_authz(action, o->room.role, o->room.is_private, ROOMS_MEMBER, o->room_id,
                       o->rep->message, sizeof(o->rep->message));
}

/* The foreign keys need the caller's users row. NT_OK when it exists;
 * NT_ECONFLICT naming POST /api/users, with *missing set, when it does not. */
static nt_status caller_has_profile(op *o, sqlite3 *db, bool *missing)
{
    bool exists = false;
    nt_status st = rooms_db_user_exists(db, o->req->user, &exists);
    *missing = st == NT_OK && !exists;
    return st == NT_OK && !exists ? nt_reply_fail(o->rep, NT_ECONFLICT, NO_PROFILE) : st;
}

/* After a write refused for want of the caller's profile: asks auth for it
 * (with Clerk, auth creates it from Clerk's record). True when the write
 * should be tried again; otherwise *st and the reply say why not: 409 when
 * there is no profile, 503 when auth could not be asked. */
static bool ask_auth_for_profile(op *o, nt_status *st)
{
    if (o->ctx->ensure_user == NULL)
        return false;
    nt_status a = o->ctx->ensure_user(o->ctx->ensure_arg, o->req->user, o->req->request_id);
    if (a == NT_OK) {
        o->rep->message[0] = '\0';
        *st = NT_OK;
        return true;
    }
    if (a != NT_ENOTFOUND)
        *st = nt_reply_fail(o->rep, NT_EUNAVAIL,
                            "auth is unavailable: cannot check the caller's profile");
    return false;
}

/* The optional paging cursor of the list named by kind and context (the
 * room, or the filter): *a (without its prefix) and *b stay NULL when there
 * is none; a cursor of another list is refused. */
static nt_status get_cursor(op *o, char kind, const char *context, char **a, char **b)
{
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(o->body, "cursor");
    if (cur == NULL || cJSON_IsNull(cur))
        return NT_OK;
    size_t plen = 0;
    if (cJSON_IsString(cur) && rooms_cursor_decode(cur->valuestring, a, b) == NT_OK)
        plen = rooms_cursor_prefix_len(*a, kind, context);
    if (plen == 0) {
        free(*a);
        free(*b);
        *a = *b = NULL;
        return nt_reply_fail(o->rep, NT_EINVAL, "'cursor' is invalid");
    }
    memmove(*a, *a + plen, strlen(*a + plen) + 1);
    return NT_OK;
}

/* Reads an optional text field: NT_OK with *out set or left NULL. */
static nt_status get_text(op *o, const char *key, const nt_text_rule *rule, char **out)
{
    nt_status st =
        nt_json_get_text(o->body, key, false, rule, out, o->rep->message, sizeof(o->rep->message));
    return st == NT_ENOTFOUND ? NT_OK : st;
}

/* ---- chat.rooms.list ---- */

static nt_status rooms_list(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"scope", "q", "limit", "cursor", NULL};
    static const nt_text_rule q_rule = {.min_chars = 0, .max_chars = ROOMS_NAME_MAX};
    op o;
    char *q = NULL, *ca = NULL, *cb = NULL;
    rooms_room_list l = {0};
    long long limit = 0;
    bool pub = false;
    nt_status st = op_start(&o, ctx, req, rep, allowed, false);
    if (st != NT_OK)
        goto out;
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(o.body, "scope");
    if (scope != NULL && !cJSON_IsNull(scope)) {
        if (!cJSON_IsString(scope) || (strcmp(scope->valuestring, "mine") != 0 &&
                                       strcmp(scope->valuestring, "public") != 0)) {
            st = nt_reply_fail(rep, NT_EINVAL, "'scope' must be \"mine\" or \"public\"");
            goto out;
        }
        pub = strcmp(scope->valuestring, "public") == 0;
    }
    st = get_text(&o, "q", &q_rule, &q);
    if (st == NT_OK)
        st = rooms_get_limit(o.body, "limit", ROOMS_LIST_DEFAULT, ROOMS_LIST_MAX, &limit,
                             rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = get_cursor(&o, pub ? ROOMS_CURSOR_NAME : ROOMS_CURSOR_ACTIVITY, q != NULL ? q : "",
                        &ca, &cb);
    if (st != NT_OK)
        goto out;
    sqlite3 *db = NULL;
    st = rooms_read_begin(o.ctx->store, &db);
    if (st != NT_OK)
        goto out;
    const char *filter = q != NULL && q[0] != '\0' ? q : NULL;
    if (pub)
        st = rooms_db_list_public(db, req->user, filter, ca, cb, (int)limit + 1, &l);
    else
        st = rooms_db_list_mine(db, req->user, filter, ca, cb, (int)limit + 1, &l);
    rooms_read_end(o.ctx->store, db);
    if (st == NT_OK)
        nt_reply_set(rep, rooms_room_page_to_json(&l, (size_t)limit, pub, q != NULL ? q : ""));
out:
    free(q);
    free(ca);
    free(cb);
    rooms_room_list_clear(&l);
    return op_finish(&o, st);
}

/* ---- chat.rooms.create ---- */

static nt_status rooms_create(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"name", "description", "is_private", NULL};
    op o;
    rooms_room *r = &o.room;
    nt_status st = op_start(&o, ctx, req, rep, allowed, false);
    if (st == NT_OK)
        st = nt_json_get_text(o.body, "name", true, &rooms_name_rule, &r->name, rep->message,
                              sizeof(rep->message));
    if (st == NT_OK)
        st = get_text(&o, "description", &rooms_desc_rule, &r->description);
    if (st == NT_OK) {
        st = nt_json_get_bool(o.body, "is_private", false, &r->is_private, rep->message,
                              sizeof(rep->message));
        st = st == NT_ENOTFOUND ? NT_OK : st;
    }
    if (st != NT_OK)
        return op_finish(&o, st);
    if (r->description != NULL && r->description[0] == '\0') {
        free(r->description);
        r->description = NULL;
    }
    nt_id_new(r->id);
    snprintf(r->created_by, sizeof(r->created_by), "%s", req->user);
    rooms_now(r->created_at);
    for (int attempt = 0;; attempt++) {
        wtx w;
        bool missing = false;
        st = wtx_begin(&w, o.ctx);
        if (st != NT_OK)
            break;
        st = caller_has_profile(&o, w.db, &missing);
        if (st == NT_OK)
            st = rooms_db_insert_room(w.db, r);
        if (st == NT_OK)
            st = rooms_db_add_member(w.db, r->id, req->user, ROOMS_ADMIN, r->created_at);
        if (st == NT_OK)
            st = rooms_db_room(w.db, r->id, req->user, &o.view);
        if (st == NT_OK)
            st = wtx_cache(&w, r->id);
        st = wtx_end(&w, st, rep, NULL);
        if (!missing || attempt > 0 || !ask_auth_for_profile(&o, &st))
            break;
    }
    if (st == NT_OK) {
        nt_log_info(MOD, "room created room=%s user=%s private=%d", r->id, req->user,
                    r->is_private);
        nt_reply_set(rep, rooms_room_to_json(&o.view, true));
    }
    return op_finish(&o, st);
}

/* ---- chat.rooms.get ---- */

/* The room's latest messages from the messages service, or NULL (then the
 * room is shown with "messages": null): the room matters more than its
 * history. Called with no store lock held, since messages asks
 * chat.rooms.authorize back before it answers. */
static cJSON *latest_messages(op *o)
{
    rooms_ctx *ctx = o->ctx;
    if (ctx->latest == NULL)
        return NULL;
    char *text = NULL, why[NT_ERRMSG_LEN];
    size_t len = 0;
    cJSON *arr = NULL;
    nt_status st =
        ctx->latest(ctx->latest_arg, o->req->user, o->req->request_id, o->room_id, &text, &len);
    if (st == NT_OK)
        arr = rooms_latest_from_reply(text, len, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "messages did not answer: %s", nt_status_str(st));
    free(text);
    if (arr == NULL)
        nt_log_warn(MOD, "room shown without its messages room=%s why=\"%s\"", o->room_id, why);
    return arr;
}

static nt_status rooms_get(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    op o;
    sqlite3 *db = NULL;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = rooms_read_begin(o.ctx->store, &db);
    if (st != NT_OK)
        return op_finish(&o, st);
    st = load_authorized(&o, db, ROOMS_ACT_READ);
    rooms_read_end(o.ctx->store, db);
    if (st == NT_OK)
        nt_reply_set(rep, rooms_room_get_to_json(&o.room, latest_messages(&o)));
    return op_finish(&o, st);
}

/* ---- chat.rooms.update ---- */

static nt_status rooms_update(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "name", "description", "is_private", NULL};
    op o;
    char *name = NULL, *desc = NULL;
    bool priv = false, set_priv = false;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = get_text(&o, "name", &rooms_name_rule, &name);
    if (st == NT_OK && name == NULL && cJSON_GetObjectItemCaseSensitive(o.body, "name") != NULL)
        st = nt_reply_fail(rep, NT_EINVAL, "'name' cannot be null");
    /* description: absent leaves it, null or "" clears it. */
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(o.body, "description");
    if (st == NT_OK && dv != NULL && !cJSON_IsNull(dv))
        st = get_text(&o, "description", &rooms_desc_rule, &desc);
    if (st == NT_OK) {
        st = nt_json_get_bool(o.body, "is_private", false, &priv, rep->message,
                              sizeof(rep->message));
        set_priv = st == NT_OK;
        st = st == NT_ENOTFOUND ? NT_OK : st;
    }
    if (st == NT_OK && name == NULL && dv == NULL && !set_priv)
        st = nt_reply_fail(rep, NT_EINVAL,
                           "nothing to update: give 'name', 'description' or 'is_private'");
    wtx w;
    if (st == NT_OK)
        st = wtx_begin(&w, o.ctx);
    if (st != NT_OK)
        goto out;
    st = load_authorized(&o, w.db, ROOMS_ACT_UPDATE);
    if (st == NT_OK) {
        rooms_room *r = &o.room;
        bool privacy_changed = set_priv && priv != r->is_private;
        if (name != NULL) {
            free(r->name);
            r->name = name;
            name = NULL;
        }
        if (dv != NULL) {
            free(r->description);
            r->description = desc != NULL && desc[0] != '\0' ? desc : NULL;
            if (r->description == desc)
                desc = NULL;
        }
        r->is_private = set_priv ? priv : r->is_private;
        st = rooms_db_update_room(w.db, r);
        if (st == NT_OK)
            st = rooms_db_room(w.db, o.room_id, req->user, &o.view);
        if (st == NT_OK && privacy_changed)
            st = wtx_cache(&w, o.room_id);
        if (st == NT_OK)
            ev_room(&o.ev, o.room_id, "room_updated", rooms_room_to_json(&o.view, false));
    }
    st = wtx_end(&w, st, rep, &o.ev);
    if (st == NT_OK)
        nt_reply_set(rep, rooms_room_to_json(&o.view, true));
out:
    free(name);
    free(desc);
    return op_finish(&o, st);
}

/* ---- chat.rooms.delete ---- */

/* Deletes the room inside w and queues room_deleted plus room_removed for
 * every former member. */
static nt_status delete_room(op *o, wtx *w)
{
    rooms_access a;
    const char *by = o->req->user;
    nt_status st = rooms_db_access(w->db, o->room_id, &a);
    if (st != NT_OK)
        return st;
    st = rooms_db_delete_room(w->db, o->room_id);
    if (st == NT_OK)
        st = wtx_cache(w, o->room_id);
    if (st == NT_OK) {
        ev_room(&o->ev, o->room_id, "room_deleted", rooms_deleted_event(o->room_id, by));
        for (size_t i = 0; i < a.n; i++)
            ev_user(&o->ev, a.members[i].user_id, "room_removed",
                    rooms_removed_event(o->room_id, "deleted", by));
    }
    rooms_access_clear(&a);
    return st;
}

static nt_status rooms_delete(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    op o;
    wtx w;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = wtx_begin(&w, o.ctx);
    if (st != NT_OK)
        return op_finish(&o, st);
    st = load_authorized(&o, w.db, ROOMS_ACT_DELETE);
    if (st == NT_OK)
        st = delete_room(&o, &w);
    st = wtx_end(&w, st, rep, &o.ev);
    if (st == NT_OK) {
        nt_log_info(MOD, "room deleted room=%s user=%s", o.room_id, req->user);
        nt_reply_set(rep, rooms_done_to_json(o.room_id, NULL, "deleted"));
    }
    return op_finish(&o, st);
}

/* ---- chat.rooms.join ---- */

static nt_status rooms_join(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    op o;
    bool joined = false;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    for (int attempt = 0; st == NT_OK; attempt++) {
        wtx w;
        bool missing = false;
        st = wtx_begin(&w, o.ctx);
        if (st != NT_OK)
            break;
        rooms_room_clear(&o.room);
        st = load_authorized(&o, w.db, ROOMS_ACT_JOIN);
        if (st == NT_OK && o.room.role == ROOMS_OUTSIDER) {
            char now[ROOMS_TIME_LEN];
            rooms_now(now);
            st = caller_has_profile(&o, w.db, &missing);
            if (st == NT_OK)
                st = rooms_db_add_member(w.db, o.room_id, req->user, ROOMS_MEMBER, now);
            if (st == NT_OK)
                st = rooms_db_member(w.db, o.room_id, req->user, &o.m);
            joined = true;
        }
        if (st == NT_OK)
            st = rooms_db_room(w.db, o.room_id, req->user, &o.view);
        if (st == NT_OK && joined)
            st = wtx_cache(&w, o.room_id);
        if (st == NT_OK && joined)
            ev_room(&o.ev, o.room_id, "user_joined", rooms_joined_event(&o.m, NULL));
        st = wtx_end(&w, st, rep, &o.ev);
        if (!missing || attempt > 0 || !ask_auth_for_profile(&o, &st))
            break;
        joined = false;
        rooms_member_clear(&o.m);
    }
    if (st == NT_OK)
        nt_reply_set(rep, rooms_room_to_json(&o.view, true));
    return op_finish(&o, st);
}

/* ---- chat.rooms.leave ---- */

static nt_status rooms_leave(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", NULL};
    op o;
    wtx w;
    char heir[ROOMS_USER_ID_MAX] = "";
    rooms_member promoted;
    memset(&promoted, 0, sizeof(promoted));
    bool deleted = false;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = wtx_begin(&w, o.ctx);
    if (st != NT_OK)
        return op_finish(&o, st);
    st = load_authorized(&o, w.db, ROOMS_ACT_LEAVE);
    if (st == NT_OK)
        st = rooms_db_member(w.db, o.room_id, req->user, &o.m);
    if (st == NT_OK && o.room.member_count <= 1) {
        /* The last member leaves: nobody could administer the room any more,
         * so it goes, with its messages. */
        deleted = true;
        st = delete_room(&o, &w);
    } else if (st == NT_OK) {
        long long admins = 0;
        st = rooms_db_remove_member(w.db, o.room_id, req->user);
        if (st == NT_OK)
            st = rooms_db_count(w.db, o.room_id, ROOMS_ADMIN, &admins);
        if (st == NT_OK && admins == 0) {
            /* The last admin left: the longest-standing member takes over. */
            st = rooms_db_oldest_member(w.db, o.room_id, heir);
            if (st == NT_OK)
                st = rooms_db_member(w.db, o.room_id, heir, &promoted);
            if (st == NT_OK)
                st = rooms_db_set_role(w.db, o.room_id, heir, ROOMS_ADMIN);
        }
        if (st == NT_OK)
            st = wtx_cache(&w, o.room_id);
        if (st == NT_OK) {
            ev_room(&o.ev, o.room_id, "user_left", rooms_left_event(&o.m, "left", NULL));
            if (heir[0] != '\0') {
                rooms_role previous = promoted.role;
                promoted.role = ROOMS_ADMIN;
                ev_room(&o.ev, o.room_id, "member_updated",
                        rooms_role_event(&promoted, previous, NULL));
            }
        }
    }
    st = wtx_end(&w, st, rep, &o.ev);
    if (st == NT_OK)
        nt_reply_set(rep, rooms_left_to_json(o.room_id, deleted, heir[0] ? heir : NULL));
    rooms_member_clear(&promoted);
    return op_finish(&o, st);
}

/* ---- chat.rooms.invite ---- */

/* Finds the invitee named by user_id or username inside the transaction. */
static nt_status find_invitee(op *o, sqlite3 *db, const char *username, char *target)
{
    if (username != NULL) {
        nt_status st = rooms_db_user_by_name(db, username, target);
        if (st == NT_ENOTFOUND)
            return nt_reply_fail(o->rep, st, "no user is called '%s'", username);
        if (st == NT_ECONFLICT)
            return nt_reply_fail(o->rep, st, "several users are called '%s'; invite by 'user_id'",
                                 username);
        return st;
    }
    bool exists = false;
    nt_status st = rooms_db_user_exists(db, target, &exists);
    if (st == NT_OK && !exists)
        return nt_reply_fail(o->rep, NT_ENOTFOUND, "no user has the id %s", target);
    return st;
}

static nt_status rooms_invite(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "user_id", "username", NULL};
    static const nt_text_rule name_rule = {.min_chars = 1, .max_chars = 64};
    op o;
    wtx w;
    char target[ROOMS_USER_ID_MAX] = "";
    char *username = NULL;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    nt_status has_id = NT_ENOTFOUND;
    if (st == NT_OK) {
        has_id =
            rooms_get_user_id(o.body, "user_id", false, target, rep->message, sizeof(rep->message));
        st = has_id == NT_ENOTFOUND ? NT_OK : has_id;
    }
    if (st == NT_OK)
        st = get_text(&o, "username", &name_rule, &username);
    if (st == NT_OK && (has_id == NT_OK) == (username != NULL))
        st = nt_reply_fail(rep, NT_EINVAL, "give exactly one of 'user_id' and 'username'");
    if (st == NT_OK)
        st = wtx_begin(&w, o.ctx);
    if (st != NT_OK)
        goto out;
    rooms_role trole = ROOMS_OUTSIDER;
    st = load_authorized(&o, w.db, ROOMS_ACT_INVITE);
    if (st == NT_OK)
        st = find_invitee(&o, w.db, username, target);
    if (st == NT_OK)
        st = rooms_db_role(w.db, o.room_id, target, &trole);
    if (st == NT_OK && trole != ROOMS_OUTSIDER)
        st = nt_reply_fail(rep, NT_ECONFLICT, "user %s is already a member of room %s", target,
                           o.room_id);
    if (st == NT_OK) {
        char now[ROOMS_TIME_LEN];
        rooms_now(now);
        st = rooms_db_add_member(w.db, o.room_id, target, ROOMS_MEMBER, now);
    }
    if (st == NT_OK)
        st = rooms_db_member(w.db, o.room_id, target, &o.m);
    if (st == NT_OK)
        st = rooms_db_room(w.db, o.room_id, target, &o.view);
    if (st == NT_OK)
        st = wtx_cache(&w, o.room_id);
    if (st == NT_OK) {
        ev_room(&o.ev, o.room_id, "user_joined", rooms_joined_event(&o.m, req->user));
        ev_user(&o.ev, target, "room_invited", rooms_invited_event(&o.view, &o.m, req->user));
    }
    st = wtx_end(&w, st, rep, &o.ev);
    if (st == NT_OK) {
        nt_log_info(MOD, "invited room=%s user=%s by=%s", o.room_id, target, req->user);
        nt_reply_set(rep, rooms_member_to_json(&o.m));
    }
out:
    free(username);
    return op_finish(&o, st);
}

/* ---- chat.rooms.members ---- */

/* Presence's "users" object for the first n members of l, or NULL (then every
 * member shows "online": null): the member list matters more than who is
 * online, so presence being down never fails it. Called with no store lock
 * held. */
static cJSON *members_online(op *o, const rooms_member_list *l, size_t n)
{
    rooms_ctx *ctx = o->ctx;
    if (ctx->online == NULL || n == 0)
        return NULL;
    char *body = rooms_online_request(l, n);
    char *text = NULL, why[NT_ERRMSG_LEN];
    size_t len = 0;
    cJSON *users = NULL;
    nt_status st = ctx->online(ctx->online_arg, o->req->user, o->req->request_id, body,
                               strlen(body), &text, &len);
    if (st == NT_OK)
        users = rooms_online_from_reply(text, len, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "presence did not answer: %s", nt_status_str(st));
    free(text);
    free(body);
    if (users == NULL)
        nt_log_warn(MOD, "members shown without presence room=%s why=\"%s\"", o->room_id, why);
    return users;
}

static nt_status rooms_members(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "limit", "cursor", NULL};
    op o;
    char *ca = NULL, *cb = NULL;
    long long limit = 0;
    rooms_member_list l = {0};
    sqlite3 *db = NULL;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = rooms_get_limit(o.body, "limit", ROOMS_MEMBERS_DEFAULT, ROOMS_MEMBERS_MAX, &limit,
                             rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = get_cursor(&o, ROOMS_CURSOR_JOINED, o.room_id, &ca, &cb);
    if (st == NT_OK)
        st = rooms_read_begin(o.ctx->store, &db);
    if (st == NT_OK) {
        st = load_authorized(&o, db, ROOMS_ACT_READ);
        if (st == NT_OK)
            st = rooms_db_members(db, o.room_id, ca, cb, (int)limit + 1, &l);
        rooms_read_end(o.ctx->store, db);
    }
    if (st == NT_OK) {
        size_t n = l.n > (size_t)limit ? (size_t)limit : l.n;
        cJSON *users = members_online(&o, &l, n);
        nt_reply_set(rep, rooms_member_page_to_json(&l, (size_t)limit, o.room_id, users));
        cJSON_Delete(users);
    }
    free(ca);
    free(cb);
    rooms_member_list_clear(&l);
    return op_finish(&o, st);
}

/* ---- chat.rooms.set_role ---- */

/* The target of a member route, inside the transaction: 404 when not a member. */
static nt_status load_target(op *o, sqlite3 *db, const char *target)
{
    nt_status st = rooms_db_member(db, o->room_id, target, &o->m);
    if (st == NT_ENOTFOUND)
        return nt_reply_fail(o->rep, st, "user %s is not a member of room %s", target, o->room_id);
    return st;
}

static nt_status rooms_set_role(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "user_id", "role", NULL};
    op o;
    wtx w;
    char target[ROOMS_USER_ID_MAX];
    rooms_role role = ROOMS_MEMBER, previous = ROOMS_OUTSIDER;
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = rooms_get_user_id(o.body, "user_id", true, target, rep->message, sizeof(rep->message));
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(o.body, "role");
    if (st == NT_OK && (rv == NULL || cJSON_IsNull(rv)))
        st = nt_reply_fail(rep, NT_EINVAL, "'role' is required");
    else if (st == NT_OK && (!cJSON_IsString(rv) || !rooms_role_parse(rv->valuestring, &role)))
        st = nt_reply_fail(rep, NT_EINVAL, "'role' must be \"admin\", \"moderator\" or \"member\"");
    if (st == NT_OK)
        st = wtx_begin(&w, o.ctx);
    if (st != NT_OK)
        return op_finish(&o, st);
    st = load_authorized(&o, w.db, ROOMS_ACT_SET_ROLE);
    if (st == NT_OK)
        st = load_target(&o, w.db, target);
    previous = o.m.role;
    if (st == NT_OK && previous != role) {
        long long admins = 0;
        if (previous == ROOMS_ADMIN)
            st = rooms_db_count(w.db, o.room_id, ROOMS_ADMIN, &admins);
        if (st == NT_OK && previous == ROOMS_ADMIN && admins <= 1)
            st = nt_reply_fail(rep, NT_ECONFLICT,
                               "a room needs at least one admin: promote someone else first");
        if (st == NT_OK)
            st = rooms_db_set_role(w.db, o.room_id, target, role);
        if (st == NT_OK)
            st = wtx_cache(&w, o.room_id);
        o.m.role = role;
        if (st == NT_OK)
            ev_room(&o.ev, o.room_id, "member_updated",
                    rooms_role_event(&o.m, previous, req->user));
    }
    st = wtx_end(&w, st, rep, &o.ev);
    if (st == NT_OK && previous != role)
        nt_log_info(MOD, "role set room=%s user=%s role=%s by=%s", o.room_id, target,
                    rooms_role_name(role), req->user);
    if (st == NT_OK)
        nt_reply_set(rep, rooms_member_to_json(&o.m));
    return op_finish(&o, st);
}

/* ---- chat.rooms.remove_member ---- */

static nt_status rooms_remove_member(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "user_id", NULL};
    op o;
    wtx w;
    char target[ROOMS_USER_ID_MAX];
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    if (st == NT_OK)
        st = rooms_get_user_id(o.body, "user_id", true, target, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = wtx_begin(&w, o.ctx);
    if (st != NT_OK)
        return op_finish(&o, st);
    /* First whether the caller may remove anyone at all, so outsiders and
     * plain members learn nothing about who is a member. */
    st = load_authorized(&o, w.db, ROOMS_ACT_REMOVE_MEMBER);
    if (st == NT_OK)
        st = load_target(&o, w.db, target);
    if (st == NT_OK)
        st = rooms_authz(ROOMS_ACT_REMOVE_MEMBER, o.room.role, o.room.is_private, o.m.role,
                         o.room_id, rep->message, sizeof(rep->message));
    if (st == NT_OK && strcmp(target, req->user) == 0)
        st = nt_reply_fail(rep, NT_EINVAL,
                           "you cannot remove yourself: use POST /api/rooms/%s/leave", o.room_id);
    if (st == NT_OK)
        st = rooms_db_remove_member(w.db, o.room_id, target);
    if (st == NT_OK)
        st = wtx_cache(&w, o.room_id);
    if (st == NT_OK) {
        ev_room(&o.ev, o.room_id, "user_left", rooms_left_event(&o.m, "removed", req->user));
        ev_user(&o.ev, target, "room_removed",
                rooms_removed_event(o.room_id, "removed", req->user));
    }
    st = wtx_end(&w, st, rep, &o.ev);
    if (st == NT_OK) {
        nt_log_info(MOD, "member removed room=%s user=%s by=%s", o.room_id, target, req->user);
        nt_reply_set(rep, rooms_done_to_json(o.room_id, target, "removed"));
    }
    return op_finish(&o, st);
}

/* ---- chat.rooms.authorize ---- */

/* The room's access state: from the cache, else from the database (then the
 * cache is filled with create-if-absent, so a slow reader never overwrites
 * what a writer put meanwhile). */
static nt_status load_access(rooms_ctx *ctx, const char *room_id, const char *user,
                             rooms_access *out)
{
    const rooms_cache_ops *c = ctx->cache;
    char key[NT_ID_LEN + 16], *data = NULL;
    size_t len = 0;
    cache_key(room_id, key, sizeof(key));
    nt_status st = NT_ENOTFOUND;
    if (c != NULL && c->get(c->arg, key, &data, &len) == NT_OK) {
        st = rooms_access_from_text(data, len, out);
        free(data);
        data = NULL;
        if (st == NT_OK && strcmp(out->room_id, room_id) != 0) {
            rooms_access_clear(out);
            st = NT_EINVAL;
        }
        if (st != NT_OK)
            nt_log_warn(MOD, "ignoring a malformed cache entry room=%s", room_id);
    }
    sqlite3 *db = NULL;
    if (st == NT_OK && !out->uncached)
        return NT_OK;
    bool marker = st == NT_OK;
    if (marker)
        rooms_access_clear(out);
    st = rooms_read_begin(ctx->store, &db);
    if (st != NT_OK)
        return st;
    if (!marker) {
        /* A miss: the entry from this snapshot, filled only if no writer has
         * put one meanwhile (a conflict means a writer was first). */
        st = access_entry(ctx, db, room_id, &data);
        if (st == NT_OK)
            st = rooms_access_from_text(data, strlen(data), out);
        if (st == NT_OK && c != NULL && out->exists)
            c->create(c->arg, key, data, strlen(data));
        free(data);
        marker = st == NT_OK && out->uncached;
        if (marker)
            rooms_access_clear(out);
    }
    /* A room too large to cache: only the caller's row is read. */
    if (st == NT_OK && marker)
        st = rooms_db_access_of(db, room_id, user, out);
    rooms_read_end(ctx->store, db);
    return st;
}

static nt_status rooms_authorize(void *ctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"room_id", "action", NULL};
    op o;
    rooms_action action = ROOMS_ACT_READ;
    rooms_access a;
    memset(&a, 0, sizeof(a));
    nt_status st = op_start(&o, ctx, req, rep, allowed, true);
    const cJSON *av = cJSON_GetObjectItemCaseSensitive(o.body, "action");
    if (st == NT_OK && (!cJSON_IsString(av) || !rooms_action_parse(av->valuestring, &action)))
        st = nt_reply_fail(rep, NT_EINVAL,
                           "'action' must be one of read, send, join, leave, invite, update, "
                           "delete, set_role, remove_member, moderate");
    if (st == NT_OK)
        st = load_access(o.ctx, o.room_id, req->user, &a);
    if (st == NT_OK && !a.exists)
        st = nt_reply_fail(rep, NT_ENOTFOUND, "room %s does not exist", o.room_id);
    rooms_role role = rooms_access_role(&a, req->user);
    if (st == NT_OK)
        st = rooms_authz(action, role, a.is_private, ROOMS_MEMBER, o.room_id, rep->message,
                         sizeof(rep->message));
    if (st == NT_OK)
        nt_reply_set(rep,
                     rooms_authorized_to_json(o.room_id, req->user, action, role, a.is_private));
    rooms_access_clear(&a);
    return op_finish(&o, st);
}

/* clang-format off */
const nt_route rooms_routes[] = {
    {"list",          "chat.rooms.list",          rooms_list,          ROOMS_BODY_MAX, true, 0},
    {"create",        "chat.rooms.create",        rooms_create,        ROOMS_BODY_MAX, true, 0},
    {"get",           "chat.rooms.get",           rooms_get,           ROOMS_BODY_MAX, true, 0},
    {"update",        "chat.rooms.update",        rooms_update,        ROOMS_BODY_MAX, true, 0},
    {"delete",        "chat.rooms.delete",        rooms_delete,        ROOMS_BODY_MAX, true, 0},
    {"join",          "chat.rooms.join",          rooms_join,          ROOMS_BODY_MAX, true, 0},
    {"leave",         "chat.rooms.leave",         rooms_leave,         ROOMS_BODY_MAX, true, 0},
    {"invite",        "chat.rooms.invite",        rooms_invite,        ROOMS_BODY_MAX, true, 0},
    {"members",       "chat.rooms.members",       rooms_members,       ROOMS_BODY_MAX, true, 0},
    {"set_role",      "chat.rooms.set_role",      rooms_set_role,      ROOMS_BODY_MAX, true, 0},
    {"remove_member", "chat.rooms.remove_member", rooms_remove_member, ROOMS_BODY_MAX, true, 0},
    {"authorize",     "chat.rooms.authorize",     rooms_authorize,     ROOMS_BODY_MAX, true, ROOMS_AUTHORIZE_CONCURRENCY},
};
/* clang-format on */
const size_t rooms_nroutes = sizeof(rooms_routes) / sizeof(rooms_routes[0]);
