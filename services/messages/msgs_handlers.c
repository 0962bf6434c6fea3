/* The messages service's routes. A send is checked, counted against the
 * sender's rate limit, authorised by rooms and handed to the group committer,
 * which answers once its transaction has committed. History is read on the
 * store's reader connection. Edits and deletes write in their own
 * transaction and publish their event before the store's lock is released,
 * so one instance publishes a message's events in commit order. */
#include "msgs.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MOD "messages"

/* ---- one request ----
 *
 * Every handler works on an op: the context, the request, the reply and the
 * message it loads or writes. op_finish frees the message. */

typedef struct {
    msgs_ctx *ctx;
    const nt_request *req;
    nt_reply *rep;
    msgs_message m;
} op;

/* The same form rooms accepts: the user id is a key in both services. */
static bool user_id_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n >= MSGS_USER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

static nt_status op_start(op *o, void *ctx, const nt_request *req, nt_reply *rep)
{
    memset(o, 0, sizeof(*o));
    o->ctx = ctx;
    o->req = req;
    o->rep = rep;
    if (!user_id_valid(req->user))
        return nt_reply_fail(rep, NT_EUNAUTH, "the user id has an invalid form");
    return NT_OK;
}

static nt_status op_finish(op *o, nt_status st)
{
    msgs_message_clear(&o->m);
    return st;
}

/* Asks rooms whether the caller may do action in room_id. Refusals keep
 * rooms' message; a rooms that does not answer is a 503 naming what the
 * caller named: the room, or for edits and deletes (message_id non-NULL) the
 * message, so that an outsider never learns which room a message is in. */
static nt_status authorize(op *o, const char *room_id, const char *action, const char *message_id)
{
    char msg[NT_ERRMSG_LEN] = "";
    NT_ASSERT(o->ctx->authorize != NULL);
    nt_status st = o->ctx->authorize(o->ctx->authorize_arg, o->req->user, o->req->request_id,
                                     room_id, action, msg, sizeof(msg));
    switch (st) {
    case NT_OK:
        return NT_OK;
    case NT_EFORBIDDEN:
    case NT_ENOTFOUND:
    case NT_EINVAL:
        return msg[0] != '\0' ? nt_reply_fail(o->rep, st, "%s", msg) : st;
    default:
        if (message_id != NULL)
            return nt_reply_fail(o->rep, NT_EUNAVAIL,
                                 "rooms is unavailable: cannot check access to message %s",
                                 message_id);
        return nt_reply_fail(o->rep, NT_EUNAVAIL,
                             "rooms is unavailable: cannot check access to room %s", room_id);
    }
}

/* Loads the message named by id from the reader connection (one statement:
 * one snapshot of the last commit). */
static nt_status load(op *o, const char *id)
{
    sqlite3 *db = nt_store_lock_read(o->ctx->store);
    nt_status st = msgs_db_get(db, id, &o->m);
    nt_store_unlock_read(o->ctx->store);
    if (st == NT_ENOTFOUND)
        return nt_reply_fail(o->rep, st, "message %s does not exist", id);
    return st;
}

static bool is_deleted(const msgs_message *m)
{
    return m->deleted_at[0] != '\0';
}

/* A write the store refused: busy (another process held the write lock past
 * the busy timeout) or failed; either way nothing was changed. */
static nt_status store_failed(op *o, nt_status st)
{
    if (st == NT_EUNAVAIL)
        return nt_reply_fail(o->rep, st, "the store is busy: nothing was changed");
    return nt_reply_fail(o->rep, NT_EINTERNAL, "the store failed: nothing was changed");
}

/* Edits (content non-NULL) or deletes the message id in one transaction,
 * reloads it into o->m, commits, and publishes event while the store's lock
 * is still held, when the row changed. A delete that finds the message
 * already deleted (by a concurrent request) changes nothing and publishes
 * nothing. */
static nt_status write_change(op *o, const char *id, const char *content, const char *event)
{
    char now[NT_ISO8601_LEN];
    nt_clock_iso8601(nt_clock_now_ms(), now);
    bool changed = false;
    sqlite3 *db = nt_store_lock(o->ctx->store);
    nt_status st = msgs_db_begin(db);
    if (st != NT_OK) {
        nt_store_unlock(o->ctx->store);
        return store_failed(o, st);
    }
    if (content != NULL) {
        st = msgs_db_edit(db, id, content, now);
        changed = st == NT_OK;
    } else {
        st = msgs_db_delete(db, id, o->req->user, now, &changed);
    }
    if (st == NT_OK) {
        msgs_message_clear(&o->m);
        st = msgs_db_get(db, id, &o->m);
    }
    if (st == NT_OK)
        st = msgs_db_commit(db);
    if (st != NT_OK)
        msgs_db_rollback(db);
    else if (changed)
        msgs_publish_message(o->ctx->publish, o->ctx->publish_arg, event, &o->m);
    nt_store_unlock(o->ctx->store);
    /* A concurrent delete or a room deletion may come between the load and
     * this write. */
    if (st == NT_ECONFLICT)
        return nt_reply_fail(o->rep, st, "message %s was deleted", id);
    if (st == NT_ENOTFOUND)
        return nt_reply_fail(o->rep, st, "message %s does not exist", id);
    return st == NT_OK ? NT_OK : store_failed(o, st);
}

/* ---- chat.messages.send ---- */

static nt_status handle_send(void *ctx, const nt_request *req, nt_reply *rep)
{
    op o;
    msgs_send_req r;
    memset(&r, 0, sizeof(r));
    char err[NT_ERRMSG_LEN] = "";
    bool duplicate = false;
    nt_status st = op_start(&o, ctx, req, rep);
    if (st == NT_OK)
        st = msgs_parse_send(req->data, req->len, &r, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    /* Every attempt counts, retries included: the limit is on requests. */
    int64_t retry = 0;
    if (o.ctx->send_limit != NULL &&
        !nt_ratelimit_take(o.ctx->send_limit, req->user, nt_clock_mono_ms(), &retry)) {
        rep->retry_after_ms = retry;
        st = nt_reply_fail(rep, NT_ERATE, "too many messages: try again in %lld ms",
                           (long long)retry);
        goto out;
    }
    st = authorize(&o, r.room_id, "send", NULL);
    if (st != NT_OK)
        goto out;
    msgs_new n = {
        .room_id = r.room_id,
        .user_id = req->user,
        .content = r.content,
        .type = r.type,
        .client_ref = r.client_ref[0] != '\0' ? r.client_ref : NULL,
    };
    st = msgs_committer_send(o.ctx->committer, &n, &o.m, &duplicate, err, sizeof(err));
    switch (st) {
    case NT_OK:
        break;
    case NT_ECONFLICT:
        st =
            nt_reply_fail(rep, st, "client_ref '%s' was already used for a message in another room",
                          r.client_ref);
        break;
    case NT_ENOTFOUND:
        st = nt_reply_fail(rep, st, "room %s does not exist", r.room_id);
        break;
    case NT_EUNAVAIL:
        st = nt_reply_fail(rep, st, "the message was not stored: %s; send it again%s",
                           err[0] != '\0' ? err : "the store is unavailable",
                           n.client_ref != NULL ? " with the same client_ref" : "");
        break;
    default:
        st = err[0] != '\0' ? nt_reply_fail(rep, st, "%s", err) : st;
        break;
    }
    if (st == NT_OK) {
        nt_log_debug(MOD, "message sent message=%s room=%s user=%s duplicate=%d", o.m.id, r.room_id,
                     req->user, duplicate);
        nt_reply_set(rep, msgs_message_to_json(&o.m));
    }
out:
    msgs_send_req_clear(&r);
    return op_finish(&o, st);
}

/* ---- chat.messages.history ---- */

static nt_status handle_history(void *ctx, const nt_request *req, nt_reply *rep)
{
    op o;
    msgs_history_req r;
    msgs_page page;
    memset(&r, 0, sizeof(r));
    memset(&page, 0, sizeof(page));
    nt_status st = op_start(&o, ctx, req, rep);
    if (st == NT_OK)
        st = msgs_parse_history(req->data, req->len, &r, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = authorize(&o, r.room_id, "read", NULL);
    if (st == NT_OK) {
        sqlite3 *db = nt_store_lock_read(o.ctx->store);
        st = msgs_db_page(db, r.room_id, &r.page, &page);
        nt_store_unlock_read(o.ctx->store);
    }
    if (st == NT_OK)
        nt_reply_set(rep, msgs_page_to_json(&page, r.page.kind));
    msgs_message_list_clear(&page.list);
    return op_finish(&o, st);
}

/* ---- chat.messages.edit ---- */

static nt_status handle_edit(void *ctx, const nt_request *req, nt_reply *rep)
{
    op o;
    msgs_change_req r;
    memset(&r, 0, sizeof(r));
    nt_status st = op_start(&o, ctx, req, rep);
    if (st == NT_OK)
        st = msgs_parse_edit(req->data, req->len, &r, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = load(&o, r.message_id);
    if (st != NT_OK)
        goto out;
    /* An outsider of a private room learns nothing: its messages do not
     * exist for them, exactly as a missing one. */
    st = authorize(&o, o.m.room_id, "send", r.message_id);
    if (st == NT_ENOTFOUND)
        st = nt_reply_fail(rep, st, "message %s does not exist", r.message_id);
    else if (st == NT_OK && strcmp(o.m.user_id, req->user) != 0)
        st = nt_reply_fail(rep, NT_EFORBIDDEN, "only the author may edit a message");
    else if (st == NT_OK && is_deleted(&o.m))
        st = nt_reply_fail(rep, NT_ECONFLICT, "message %s was deleted", r.message_id);
    if (st != NT_OK)
        goto out;
    /* The same text again changes nothing: no write, no edited mark, no event. */
    if (o.m.content == NULL || strcmp(o.m.content, r.content) != 0) {
        st = write_change(&o, r.message_id, r.content, "message_updated");
        if (st == NT_OK)
            nt_log_info(MOD, "message edited message=%s room=%s user=%s", o.m.id, o.m.room_id,
                        req->user);
    }
    if (st == NT_OK)
        nt_reply_set(rep, msgs_message_to_json(&o.m));
out:
    msgs_change_req_clear(&r);
    return op_finish(&o, st);
}

/* ---- chat.messages.delete ---- */

static nt_status handle_delete(void *ctx, const nt_request *req, nt_reply *rep)
{
    op o;
    msgs_change_req r;
    memset(&r, 0, sizeof(r));
    nt_status st = op_start(&o, ctx, req, rep);
    if (st == NT_OK)
        st = msgs_parse_delete(req->data, req->len, &r, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = load(&o, r.message_id);
    if (st != NT_OK)
        goto out;
    /* The author needs to be able to send in the room still; anyone else
     * needs to moderate it. */
    bool author = strcmp(o.m.user_id, req->user) == 0;
    st = authorize(&o, o.m.room_id, author ? "send" : "moderate", r.message_id);
    if (st == NT_ENOTFOUND)
        st = nt_reply_fail(rep, st, "message %s does not exist", r.message_id);
    else if (st == NT_EFORBIDDEN && !author)
        st = nt_reply_fail(rep, st,
                           "only the author, or an admin or moderator of the room, may delete "
                           "this message");
    if (st != NT_OK)
        goto out;
    /* Deleting twice is the same as once: the tombstone, no second event. */
    if (!is_deleted(&o.m)) {
        st = write_change(&o, r.message_id, NULL, "message_deleted");
        if (st == NT_OK)
            nt_log_info(MOD, "message deleted message=%s room=%s user=%s author=%d", o.m.id,
                        o.m.room_id, req->user, author);
    }
    if (st == NT_OK)
        nt_reply_set(rep, msgs_message_to_json(&o.m));
out:
    msgs_change_req_clear(&r);
    return op_finish(&o, st);
}

/* clang-format off */
const nt_route msgs_routes[MSGS_NROUTES] = {
    {"send",    "chat.messages.send",    handle_send,    MSGS_BODY_MAX, true, 0},
    {"history", "chat.messages.history", handle_history, MSGS_BODY_MAX, true, 0},
    {"edit",    "chat.messages.edit",    handle_edit,    MSGS_BODY_MAX, true, 0},
    {"delete",  "chat.messages.delete",  handle_delete,  MSGS_BODY_MAX, true, 0},
};
/* clang-format on */
