/* The messages service's shared types: a message, the store's statements, the
 * group committer, the codec and the service context. Handlers never see
 * nats.c (STYLE.md): rooms is asked through ctx->authorize and events leave
 * through the publish function the committer and the handlers are given. */
#ifndef MSGS_H
#define MSGS_H

#include "nt_id.h"
#include "nt_ratelimit.h"
#include "nt_route.h"
#include "nt_store.h"

#include <stdbool.h>
#include <stdint.h>

#define MSGS_USER_ID_MAX    128
#define MSGS_TIME_LEN       32   /* "2026-12-05T06:40:12.345Z" and the NUL */
#define MSGS_CONTENT_MAX    4000 /* characters (code points), after trimming */
#define MSGS_CLIENT_REF_MAX 64   /* bytes of [A-Za-z0-9._:-] */
#define MSGS_BODY_MAX       65536
#define MSGS_PAGE_DEFAULT   50
#define MSGS_PAGE_MAX       100
/* A page stops early (has_more set) once its messages would pass this many
 * bytes of JSON, counted at worst (every content byte escaped), so a page of
 * 100 long messages still fits one NATS message (1 MiB by default) and the
 * room that carries 50 of them too. */
#define MSGS_PAGE_MAX_BYTES (640 * 1024)
#define MSGS_BATCH_DEFAULT  128
#define MSGS_TYPE_LEN       8

/* ---- data ---- */

/* A message as stored and as every reply and event shows it. Strings that
 * are pointers are owned (msgs_message_clear frees them); empty arrays mean
 * "none" (edited_at, deleted_at, deleted_by). */
typedef struct {
    char id[NT_ID_LEN];
    char room_id[NT_ID_LEN];
    char user_id[MSGS_USER_ID_MAX];
    char *username;           /* the author's current username; NULL when unknown */
    char *content;            /* "" once deleted */
    char type[MSGS_TYPE_LEN]; /* "text", "image" or "file" */
    char *client_ref;         /* NULL when the send had none */
    char created_at[MSGS_TIME_LEN];
    char edited_at[MSGS_TIME_LEN];
    char deleted_at[MSGS_TIME_LEN];
    char deleted_by[MSGS_USER_ID_MAX];
} msgs_message;

void msgs_message_clear(msgs_message *m);

typedef struct {
    msgs_message *v;
    size_t n, cap;
} msgs_message_list;

msgs_message *msgs_message_list_push(msgs_message_list *l);
void msgs_message_list_clear(msgs_message_list *l);

/* A send as the handler has validated it; borrowed by the committer. */
typedef struct {
    const char *room_id;
    const char *user_id;
    const char *content; /* trimmed, checked */
    const char *type;
    const char *client_ref; /* NULL when none */
} msgs_new;

/* Which page of history. */
typedef enum {
    MSGS_PAGE_LATEST, /* the newest limit messages */
    MSGS_PAGE_BEFORE, /* the newest limit messages with id < cursor */
    MSGS_PAGE_AFTER,  /* the oldest limit messages with id > cursor */
} msgs_page_kind;

typedef struct {
    msgs_page_kind kind;
    char cursor[NT_ID_LEN]; /* "" for MSGS_PAGE_LATEST */
    int limit;              /* 1..MSGS_PAGE_MAX */
} msgs_page_req;

/* A page: messages always oldest first; has_more when another page exists in
 * the direction of travel (older for LATEST/BEFORE, newer for AFTER). */
typedef struct {
    msgs_message_list list;
    bool has_more;
} msgs_page;

/* ---- the store (msgs_store.c): SQL only, on a connection the caller holds ---- */

/* The message with this id (any room), with the author's username. NT_ENOTFOUND when absent. */
nt_status msgs_db_get(sqlite3 *db, const char *id, msgs_message *out);

/* A user's message with this client_ref. NT_ENOTFOUND when absent. */
nt_status msgs_db_by_client_ref(sqlite3 *db, const char *user_id, const char *client_ref,
                                msgs_message *out);

/* A page of a room's history (deleted messages included as tombstones),
 * fetching limit + 1 rows to set has_more. Uses the (room_id, id) index.
 * Fewer than limit come back (with has_more) when more would pass
 * MSGS_PAGE_MAX_BYTES; never fewer than one. */
nt_status msgs_db_page(sqlite3 *db, const char *room_id, const msgs_page_req *req, msgs_page *out);

/* Inside a write transaction: inserts n as a new message with an id strictly
 * greater than every id already stored for the room (nt_id_next_after the
 * room's max), created_at now. Fills *out as stored (username included).
 * NT_ENOTFOUND when the room (or the author's users row) is gone (a foreign
 * key), NT_ECONFLICT when client_ref is taken, NT_EINVAL when another rule
 * of the schema refuses the row (a CHECK, a trigger), NT_EINTERNAL
 * otherwise. A refused row leaves the transaction usable (SQLite undoes the
 * statement); check sqlite3_get_autocommit for failures that end it. */
nt_status msgs_db_insert(sqlite3 *db, const msgs_new *n, msgs_message *out);

/* Inside a write transaction: sets content and edited_at (now) of a message
 * that is not deleted. NT_ENOTFOUND when absent, NT_ECONFLICT when deleted. */
nt_status msgs_db_edit(sqlite3 *db, const char *id, const char *content, const char *now);

/* Inside a write transaction: clears content and sets deleted_at and deleted_by.
 * NT_ENOTFOUND when absent; NT_OK also when it was already deleted (*changed false). */
nt_status msgs_db_delete(sqlite3 *db, const char *id, const char *by, const char *now,
                         bool *changed);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on the writer connection. */
nt_status msgs_db_begin(sqlite3 *db);
nt_status msgs_db_commit(sqlite3 *db);
void msgs_db_rollback(sqlite3 *db);

/* ---- events ---- */

/* Publishes one event; the same shape as nt_nats_publish. */
typedef nt_status (*msgs_publish_fn)(void *arg, const char *subject, const char *data, size_t len);

/* Publishes chat.room.<room>.<event> with the message as its payload
 * (message_received, message_updated, message_deleted). A failure is logged,
 * never returned: the change is already committed. */
void msgs_publish_message(msgs_publish_fn pub, void *arg, const char *event, const msgs_message *m);

/* ---- the group committer (msgs_commit.c) ---- */

typedef struct msgs_committer msgs_committer;

/* Starts one committer thread over store's writer connection. Sends that
 * arrive while a commit is in progress are committed together in the next
 * transaction (at most max_batch per transaction, 1 disables grouping); each
 * waits until its own transaction has committed. After each commit the
 * thread publishes message_received for every new message, in commit order,
 * before it takes the next batch. pub may be NULL (no events). */
nt_status msgs_committer_create(nt_store *store, size_t max_batch, msgs_publish_fn pub,
                                void *pub_arg, msgs_committer **out);

/* Queues n and blocks until its transaction has committed or failed.
 * NT_OK: *out is the stored message and *duplicate is false, or, when n has
 * a client_ref the user already used in the same room, *out is that earlier
 * message and *duplicate is true (nothing stored, no event). Errors, with a
 * message in err: NT_ECONFLICT (client_ref used in another room),
 * NT_ENOTFOUND (the room is gone), NT_EUNAVAIL (the store was busy or failed:
 * nothing of this send was stored), NT_EUNAVAIL also once the committer is
 * stopping. Thread-safe; any number of threads may wait at once. */
nt_status msgs_committer_send(msgs_committer *c, const msgs_new *n, msgs_message *out,
                              bool *duplicate, char *err, size_t errlen);

/* Statistics for benchmarks and logs: transactions committed and the new
 * messages they stored (duplicates and refused sends not counted). */
void msgs_committer_stats(msgs_committer *c, uint64_t *commits, uint64_t *sends);

/* Commits what is queued, stops the thread and frees. NULL is harmless. */
void msgs_committer_destroy(msgs_committer *c);

/* ---- the codec (msgs_codec.c): the only file that touches cJSON ---- */

/* The message as JSON (the shape of schemas/json/message.schema.json). */
cJSON *msgs_message_to_json(const msgs_message *m);

/* {"messages": [...], "has_more": b, "next_cursor": id or null}. next_cursor
 * is the oldest id of the page (LATEST/BEFORE) or the newest (AFTER) when
 * has_more, else null. */
cJSON *msgs_page_to_json(const msgs_page *p, msgs_page_kind kind);

/* ---- codec: requests (msgs_codec.c) ----
 *
 * Each parser reads one route's body (a JSON object; the gateway merges path
 * and query values into it as strings) and checks it in one order: the JSON
 * itself, then the form of the ids (so nothing touches the store or rooms
 * with a malformed id), then unknown fields, then the other fields. On
 * failure NT_EINVAL with a message naming the field in err, and *out is
 * untouched; on NT_OK *out is filled and owns its strings (the matching
 * _clear frees them). Pure and thread-safe. */

typedef struct {
    char room_id[NT_ID_LEN];
    char *content;                            /* trimmed and checked; owned */
    char type[MSGS_TYPE_LEN];                 /* "text" when the body has none */
    char client_ref[MSGS_CLIENT_REF_MAX + 1]; /* "" when none */
} msgs_send_req;

typedef struct {
    char room_id[NT_ID_LEN];
    msgs_page_req page; /* LATEST when neither 'before' nor 'after' is given */
} msgs_history_req;

/* An edit (content set) or a delete (content NULL). */
typedef struct {
    char message_id[NT_ID_LEN];
    char *content; /* trimmed and checked; owned */
} msgs_change_req;

nt_status msgs_parse_send(const char *data, size_t len, msgs_send_req *out, char *err,
                          size_t errlen);
void msgs_send_req_clear(msgs_send_req *r);
nt_status msgs_parse_history(const char *data, size_t len, msgs_history_req *out, char *err,
                             size_t errlen);
nt_status msgs_parse_edit(const char *data, size_t len, msgs_change_req *out, char *err,
                          size_t errlen);
nt_status msgs_parse_delete(const char *data, size_t len, msgs_change_req *out, char *err,
                            size_t errlen);
void msgs_change_req_clear(msgs_change_req *r);

/* The body of chat.rooms.authorize: {"room_id": room_id, "action": action}.
 * The caller frees it. */
char *msgs_authorize_body(const char *room_id, const char *action);

/* Copies error.message of a reply envelope ({"error":{"message":...}}) to
 * out, cut to whole characters; "" when data holds none. */
void msgs_reply_error_message(const char *data, size_t len, char *out, size_t outlen);

/* ---- the service ---- */

/* Asks rooms (chat.rooms.authorize) whether user may do action ("read",
 * "send", "moderate") in room_id. NT_OK when allowed; NT_EFORBIDDEN or
 * NT_ENOTFOUND with rooms' message copied to msg; NT_EINVAL for a malformed
 * question; NT_EUNAVAIL when rooms did not answer. */
typedef nt_status (*msgs_authorize_fn)(void *arg, const char *user, const char *request_id,
                                       const char *room_id, const char *action, char *msg,
                                       size_t msglen);

typedef struct {
    nt_store *store;
    msgs_committer *committer;
    nt_ratelimit *send_limit; /* per user; NULL: unlimited */
    msgs_authorize_fn authorize;
    void *authorize_arg;
    msgs_publish_fn publish; /* for message_updated and message_deleted */
    void *publish_arg;
} msgs_ctx;

/* The routes: send, history, edit, delete. main copies the table to set the
 * send route's concurrency from configuration. */
#define MSGS_NROUTES 4
extern const nt_route msgs_routes[MSGS_NROUTES];

#endif
