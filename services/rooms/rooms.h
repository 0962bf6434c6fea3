/* The rooms service's shared types: rooms, members, roles, the authorisation
 * table, the store's statements, the codec, and the service context. Handlers
 * never see nats.c (STYLE.md): events leave through ctx->publish, and the
 * calls to auth, messages and presence go through ctx->ensure_user,
 * ctx->latest and ctx->online. */
#ifndef ROOMS_H
#define ROOMS_H

#include "nt_id.h"
#include "nt_kv.h"
#include "nt_route.h"
#include "nt_store.h"

#include <stdbool.h>
#include <stdint.h>

#define ROOMS_USER_ID_MAX     128
#define ROOMS_TIME_LEN        32 /* "2026-12-05T06:40:12.345Z" and the NUL */
#define ROOMS_NAME_MAX        100
#define ROOMS_DESC_MAX        1000
#define ROOMS_BODY_MAX        16384
#define ROOMS_CACHE_MAX       2000         /* default NATTER_ROOMS_CACHE_MAX_MEMBERS */
#define ROOMS_CACHE_MAX_BYTES (256 * 1024) /* larger entries become a marker */
#define ROOMS_LIST_DEFAULT    50
#define ROOMS_LIST_MAX        100
#define ROOMS_MEMBERS_DEFAULT 100
#define ROOMS_MEMBERS_MAX     500
/* authorize is asked on every message send and channel join: more of it at once. */
#define ROOMS_AUTHORIZE_CONCURRENCY 16
/* chat.rooms.get shows this many of the room's latest messages. */
#define ROOMS_GET_MESSAGES 50

/* ---- roles and actions (rooms_authz.c) ---- */

typedef enum {
    ROOMS_OUTSIDER = 0, /* not a member */
    ROOMS_MEMBER,
    ROOMS_MODERATOR,
    ROOMS_ADMIN,
} rooms_role;

typedef enum {
    ROOMS_ACT_READ, /* room details, members, history, the channel */
    ROOMS_ACT_SEND, /* messages and typing */
    ROOMS_ACT_JOIN, /* join a public room */
    ROOMS_ACT_LEAVE,
    ROOMS_ACT_INVITE,
    ROOMS_ACT_UPDATE,
    ROOMS_ACT_DELETE,
    ROOMS_ACT_SET_ROLE,
    ROOMS_ACT_REMOVE_MEMBER,
    ROOMS_ACT_MODERATE, /* delete other people's messages */
    ROOMS_ACT__COUNT,
} rooms_action;

/* "admin", "moderator", "member"; NULL for ROOMS_OUTSIDER. */
const char *rooms_role_name(rooms_role r);
/* Parses a stored or requested role name; false when it is none of the three. */
bool rooms_role_parse(const char *s, rooms_role *out);
const char *rooms_action_name(rooms_action a);
bool rooms_action_parse(const char *s, rooms_action *out);

/* The one authorisation decision: may a caller whose relation to the room is
 * role do action in a room that is private or not? NT_OK when allowed;
 * otherwise NT_EFORBIDDEN, or NT_ENOTFOUND for an outsider of a private room
 * (its existence must not leak), with a message in msg. For
 * ROOMS_ACT_REMOVE_MEMBER, target is the role of the member to remove
 * (ignored otherwise). Pure and thread-safe. */
nt_status rooms_authz(rooms_action action, rooms_role role, bool is_private, rooms_role target,
                      const char *room_id, char *msg, size_t msglen);

/* ---- data ---- */

/* A room as stored, plus what a caller sees of it. Strings are owned. */
typedef struct {
    char id[NT_ID_LEN];
    char *name;
    char *description; /* NULL when none */
    bool is_private;
    char created_by[ROOMS_USER_ID_MAX];
    char created_at[ROOMS_TIME_LEN];
    long long member_count;
    char last_activity_at[ROOMS_TIME_LEN];
    rooms_role role; /* the caller's */
} rooms_room;

void rooms_room_clear(rooms_room *r);

/* A member of a room. Strings are owned. */
typedef struct {
    char room_id[NT_ID_LEN];
    char user_id[ROOMS_USER_ID_MAX];
    char *username;
    char *avatar_url; /* NULL when none */
    rooms_role role;
    char joined_at[ROOMS_TIME_LEN];
    char joined_key[40]; /* joined_at as stored: the paging key */
} rooms_member;

void rooms_member_clear(rooms_member *m);

/* A growable array of rooms or members. */
typedef struct {
    rooms_room *v;
    size_t n, cap;
} rooms_room_list;
typedef struct {
    rooms_member *v;
    size_t n, cap;
} rooms_member_list;

rooms_room *rooms_room_list_push(rooms_room_list *l);
void rooms_room_list_clear(rooms_room_list *l);
rooms_member *rooms_member_list_push(rooms_member_list *l);
void rooms_member_list_clear(rooms_member_list *l);

/* The access state of a room, as the authorisation cache keeps it. */
typedef struct {
    char user_id[ROOMS_USER_ID_MAX];
    rooms_role role;
} rooms_access_member;

typedef struct {
    char room_id[NT_ID_LEN];
    bool exists;
    bool uncached; /* a marker: too many members to cache, ask the database */
    bool is_private;
    rooms_access_member *members; /* owned */
    size_t n;
} rooms_access;

void rooms_access_clear(rooms_access *a);
/* The role of user_id in a, ROOMS_OUTSIDER when absent. */
rooms_role rooms_access_role(const rooms_access *a, const char *user_id);

/* ---- store (rooms_store.c): every SQL statement of the service ----
 *
 * A write runs between rooms_txn_begin and rooms_txn_commit or
 * rooms_txn_rollback, then nt_store_unlock: the store's lock plus BEGIN
 * IMMEDIATE, whose write lock orders writers across processes. A read runs
 * between rooms_read_begin and rooms_read_end, on the store's reader
 * connection (a deferred transaction: one consistent snapshot of the last
 * commit, never waiting for a writer). The rooms_db_* functions run inside
 * either. */

nt_status rooms_txn_begin(nt_store *st, sqlite3 **db);
/* A write ends with rooms_txn_commit, or rooms_txn_rollback (also after a
 * failed commit), then nt_store_unlock: between them the caller may still act
 * in the write order (undo a cache entry, publish events). */
nt_status rooms_txn_commit(sqlite3 *db);
void rooms_txn_rollback(sqlite3 *db);
/* Undoes everything the write did since rooms_txn_begin (a savepoint), still
 * inside the transaction and its write lock. NT_EUNAVAIL when the
 * transaction has already ended (SQLite rolled back a failed commit itself). */
nt_status rooms_txn_undo(sqlite3 *db);
nt_status rooms_read_begin(nt_store *st, sqlite3 **db);
void rooms_read_end(nt_store *st, sqlite3 *db);

/* The room (without caller fields unless caller is non-NULL: then role,
 * member_count and last_activity_at are filled). NT_ENOTFOUND when absent. */
nt_status rooms_db_room(sqlite3 *db, const char *room_id, const char *caller, rooms_room *out);
/* The role of user_id in room_id; ROOMS_OUTSIDER when not a member. */
nt_status rooms_db_role(sqlite3 *db, const char *room_id, const char *user_id, rooms_role *out);
nt_status rooms_db_member(sqlite3 *db, const char *room_id, const char *user_id, rooms_member *out);
/* True in *out when the users table has a row for user_id. */
nt_status rooms_db_user_exists(sqlite3 *db, const char *user_id, bool *out);
/* The user id of the one user called username: NT_ENOTFOUND for none,
 * NT_ECONFLICT for several. */
nt_status rooms_db_user_by_name(sqlite3 *db, const char *username, char out[ROOMS_USER_ID_MAX]);

nt_status rooms_db_insert_room(sqlite3 *db, const rooms_room *r);
/* Writes name, description and is_private of r. */
nt_status rooms_db_update_room(sqlite3 *db, const rooms_room *r);
/* Deletes the room's messages, memberships and the room. */
nt_status rooms_db_delete_room(sqlite3 *db, const char *room_id);

nt_status rooms_db_add_member(sqlite3 *db, const char *room_id, const char *user_id,
                              rooms_role role, const char *joined_at);
nt_status rooms_db_set_role(sqlite3 *db, const char *room_id, const char *user_id, rooms_role role);
nt_status rooms_db_remove_member(sqlite3 *db, const char *room_id, const char *user_id);
nt_status rooms_db_count(sqlite3 *db, const char *room_id, rooms_role role_or_outsider_for_all,
                         long long *out);
/* The member who joined first (ties: the smaller user id, the order of the
 * member list); NT_ENOTFOUND when none. */
nt_status rooms_db_oldest_member(sqlite3 *db, const char *room_id, char out[ROOMS_USER_ID_MAX]);

/* The caller's rooms whose name contains q (NULL: all), newest activity
 * first, after the cursor (NULLs: from the start); callers ask limit + 1 rows
 * to tell whether more exist. */
nt_status rooms_db_list_mine(sqlite3 *db, const char *user_id, const char *q, const char *cur_time,
                             const char *cur_id, int limit, rooms_room_list *out);
/* Public rooms whose name contains q (NULL: all), by name then id, after the cursor. */
nt_status rooms_db_list_public(sqlite3 *db, const char *caller, const char *q, const char *cur_name,
                               const char *cur_id, int limit, rooms_room_list *out);
/* Members by joined_at then user id, after the cursor. */
nt_status rooms_db_members(sqlite3 *db, const char *room_id, const char *cur_time,
                           const char *cur_id, int limit, rooms_member_list *out);
/* The room's access state (every member and role); exists false when the
 * room is gone. */
nt_status rooms_db_access(sqlite3 *db, const char *room_id, rooms_access *out);
/* The same for one user only (members holds that user when a member): for
 * rooms too large to cache. One indexed lookup. */
nt_status rooms_db_access_of(sqlite3 *db, const char *room_id, const char *user_id,
                             rooms_access *out);

/* Now as "YYYY-MM-DDTHH:MM:SS.mmmZ", from nt_clock. */
void rooms_now(char out[ROOMS_TIME_LEN]);

/* ---- codec (rooms_codec.c): the only file that touches cJSON ---- */

/* with_role false leaves out "role" (event payloads are the same for everyone). */
cJSON *rooms_room_to_json(const rooms_room *r, bool with_role);
cJSON *rooms_member_to_json(const rooms_member *m);
/* Pages: the first limit items of l (l holds one more when another page
 * follows) and "next_cursor", built from the last item's keys (its name or
 * last activity, and id; its joined_at and user id), or null. The cursor's
 * first key starts with the kind of list (below), checked when it returns. */
#define ROOMS_CURSOR_NAME     'n'
#define ROOMS_CURSOR_ACTIVITY 'a'
#define ROOMS_CURSOR_JOINED   'j'
cJSON *rooms_room_page_to_json(const rooms_room_list *l, size_t limit, bool by_name,
                               const char *context);
/* The members page also gives each member "online" and "last_seen" from
 * users, the "users" object of presence's answer (rooms_online_from_reply):
 * both null for a member whose entry is missing or malformed, and for every
 * member when users is NULL (presence did not answer). */
cJSON *rooms_member_page_to_json(const rooms_member_list *l, size_t limit, const char *context,
                                 const cJSON *users);
/* The length of the prefix a cursor's first key a carries when it belongs to
 * the list named by kind and context (the filter, or the room); 0 when not. */
size_t rooms_cursor_prefix_len(const char *a, char kind, const char *context);
/* The reply of chat.rooms.get: the room with the caller's role and
 * "messages", which takes ownership of messages (NULL: "messages" is null). */
cJSON *rooms_room_get_to_json(const rooms_room *r, cJSON *messages);
/* The "messages" array of a chat.messages.history reply
 * ({"data": {"messages": [{...}, ...], ...}}), detached: the caller's to
 * cJSON_Delete. NULL when the reply is not JSON, is an error reply, or has no
 * array of objects there; then why says which, never quoting the reply. */
cJSON *rooms_latest_from_reply(const char *text, size_t len, char *why, size_t whylen);
/* The body of chat.presence.online for the first n members of l:
 * {"user_ids": [...]}, malloc'd (the caller frees). */
char *rooms_online_request(const rooms_member_list *l, size_t n);
/* The "users" object of a chat.presence.online reply
 * ({"data": {"users": {"<user id>": {"online", "last_seen"}, ...}}}),
 * detached: the caller's to cJSON_Delete. Its entries are checked one by one
 * where they are used. NULL when the reply is not JSON, is an error reply, or
 * has no users object; then why says which, never quoting the reply. */
cJSON *rooms_online_from_reply(const char *text, size_t len, char *why, size_t whylen);
/* {"room_id", "user_id"? (when non-NULL), <what>: true} */
cJSON *rooms_done_to_json(const char *room_id, const char *user_id, const char *what);
/* {"room_id", "left": true, "room_deleted", "new_admin"} */
cJSON *rooms_left_to_json(const char *room_id, bool room_deleted, const char *new_admin);
/* The reply of chat.rooms.authorize when the action is allowed. */
cJSON *rooms_authorized_to_json(const char *room_id, const char *user_id, rooms_action action,
                                rooms_role role, bool is_private);

/* Event payloads (schemas/json/event-*.schema.json); by may be NULL where the
 * schema allows null. */
cJSON *rooms_joined_event(const rooms_member *m, const char *invited_by);
cJSON *rooms_left_event(const rooms_member *m, const char *reason, const char *by);
cJSON *rooms_role_event(const rooms_member *m, rooms_role previous, const char *by);
cJSON *rooms_removed_event(const char *room_id, const char *reason, const char *by);
cJSON *rooms_deleted_event(const char *room_id, const char *by);
cJSON *rooms_invited_event(const rooms_room *room, const rooms_member *m, const char *by);

char *rooms_access_to_text(const rooms_access *a);
nt_status rooms_access_from_text(const char *text, size_t len, rooms_access *out);

/* Field checks; messages name the field. */
bool rooms_user_id_valid(const char *s);
nt_status rooms_get_room_id(const cJSON *body, char out[NT_ID_LEN], char *err, size_t errlen);
nt_status rooms_get_user_id(const cJSON *body, const char *key, bool required,
                            char out[ROOMS_USER_ID_MAX], char *err, size_t errlen);
/* An integer given as a JSON number or a decimal string (query parameters
 * arrive as strings); absent: def. */
nt_status rooms_get_limit(const cJSON *body, const char *key, long long def, long long max,
                          long long *out, char *err, size_t errlen);
extern const nt_text_rule rooms_name_rule;
extern const nt_text_rule rooms_desc_rule;

/* Cursors are base64url of "a\x1fb": two keys that never contain control
 * characters. decode: NT_EINVAL when malformed; outputs malloc'd. */
char *rooms_cursor_encode(const char *a, const char *b);
nt_status rooms_cursor_decode(const char *cursor, char **a, char **b);

/* ---- the service ---- */

/* An event to publish after commit: subject and payload (owned). */
typedef struct {
    char subject[200];
    cJSON *payload;
} rooms_event;

typedef struct {
    rooms_event *v;
    size_t n, cap;
} rooms_events;

/* The authorisation cache, as the handlers use it: nt_kv in the service, a
 * fake in unit tests. Keys are logical ("room:<id>:members"). put replaces;
 * create writes only when the key has no value (NT_ECONFLICT otherwise); get
 * returns a malloc'd value or NT_ENOTFOUND; del removes. */
typedef struct {
    nt_status (*put)(void *arg, const char *key, const char *val, size_t len);
    nt_status (*create)(void *arg, const char *key, const char *val, size_t len);
    nt_status (*get)(void *arg, const char *key, char **val, size_t *len);
    nt_status (*del)(void *arg, const char *key);
    void *arg;
} rooms_cache_ops;

typedef struct {
    nt_store *store;
    const rooms_cache_ops *cache; /* NULL disables the cache */
    /* Publishes one event (after commit). */
    nt_status (*publish)(void *arg, const char *subject, const char *data, size_t len);
    void *publish_arg;
    /* Asks auth to make sure user_id has a profile (with Clerk, auth creates
     * it from Clerk's record). NT_OK when it exists now, NT_ENOTFOUND when
     * auth says there is none, another status when auth could not answer.
     * May be NULL. */
    nt_status (*ensure_user)(void *arg, const char *user_id, const char *request_id);
    void *ensure_arg;
    size_t cache_max; /* rooms with more members are not cached; 0: ROOMS_CACHE_MAX */
    /* Asks the messages service for a room's latest messages as user
     * (chat.messages.history {"room_id", "limit": ROOMS_GET_MESSAGES}). NT_OK
     * when a reply arrived: *json_out (malloc'd, the caller frees; *len
     * bytes, NUL-terminated) is its raw body, success or error envelope. Any
     * other status when messages did not answer. Called with no store lock
     * held: messages asks chat.rooms.authorize back. May be NULL: then the
     * room's "messages" is null. */
    nt_status (*latest)(void *arg, const char *user, const char *request_id, const char *room_id,
                        char **json_out, size_t *len);
    void *latest_arg;
    /* Asks presence whether users are online (chat.presence.online with
     * body, {"user_ids": [...]}, as user). NT_OK when a reply arrived:
     * *json_out (malloc'd, the caller frees; *len bytes, NUL-terminated) is
     * its raw body, success or error envelope. Any other status when presence
     * did not answer. Called with no store lock held. May be NULL: then
     * every member's "online" and "last_seen" are null. */
    nt_status (*online)(void *arg, const char *user, const char *request_id, const char *body,
                        size_t body_len, char **json_out, size_t *len);
    void *online_arg;
} rooms_ctx;

extern const nt_route rooms_routes[];
extern const size_t rooms_nroutes;

#endif
