/* The presence service's wire formats: edge reports on chat.presence.report,
 * the bodies of chat.presence.get and chat.presence.online, presence:{user}
 * values in KV and chat.rooms.list pages. The only file of the service that
 * touches cJSON; every parser takes any bytes and never crashes. */
#ifndef PRESENCE_CODEC_H
#define PRESENCE_CODEC_H

#include "nt_json.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRESENCE_EDGE_LEN       22   /* an edge's instance id, [A-Za-z0-9] */
#define PRESENCE_ID_MAX         128  /* room ids: [A-Za-z0-9_-]; buffers for user ids */
#define PRESENCE_USER_MAX       127  /* user ids: printable ASCII, see presence_user_valid */
#define PRESENCE_CONN_MAX       20   /* a connection id: decimal digits */
#define PRESENCE_TIME_LEN       32   /* "2026-12-05T06:40:12.345Z" and the NUL */
#define PRESENCE_META_MAX       1024 /* a meta object, printed compactly */
#define PRESENCE_REPORT_MAX     (1024 * 1024)
#define PRESENCE_CONNS_MAX      20000 /* connections in one snapshot part */
#define PRESENCE_CONN_JOINS_MAX 200   /* joins kept per connection; more are dropped */
#define PRESENCE_PARTS_MAX      10000
#define PRESENCE_ONLINE_MAX     500 /* user ids in one chat.presence.online */
#define PRESENCE_ROOMS_PAGES    100 /* chat.rooms.list pages read per user */

typedef enum {
    PRESENCE_CONNECT,
    PRESENCE_DISCONNECT,
    PRESENCE_JOIN,
    PRESENCE_LEAVE,
    PRESENCE_SNAPSHOT,
    PRESENCE_BYE,
} presence_report_type;

/* One joined room channel: the meta as the edge sent it, printed compactly
 * (owned), and the two fields that order metas. */
typedef struct {
    char room_id[PRESENCE_ID_MAX + 1];
    char *phx_ref;   /* owned */
    char *online_at; /* owned */
    char *meta;      /* owned JSON object text */
} presence_join_rec;

typedef struct {
    char conn[PRESENCE_CONN_MAX + 1];
    char user_id[PRESENCE_ID_MAX + 1];
    presence_join_rec *joins; /* owned */
    size_t njoins;
} presence_conn_rec;

/* A parsed report. Which fields are set depends on type: conn and user_id
 * for connect, disconnect, join and leave; join for join (join.room_id);
 * room_id and phx_ref for leave; round, part, parts and conns for snapshot.
 * A snapshot's malformed conn entries and joins are skipped (bad_entries)
 * and joins past PRESENCE_CONN_JOINS_MAX on one conn dropped (dropped_joins)
 * rather than the part refused. */
typedef struct {
    bool head_ok; /* edge and seq parsed: set even when the rest did not */
    presence_report_type type;
    char edge[PRESENCE_EDGE_LEN + 1];
    uint64_t seq;
    char conn[PRESENCE_CONN_MAX + 1];
    char user_id[PRESENCE_ID_MAX + 1];
    char room_id[PRESENCE_ID_MAX + 1];
    char *phx_ref;          /* leave; owned */
    presence_join_rec join; /* join */
    uint64_t round;
    uint32_t part, parts;
    presence_conn_rec *conns; /* snapshot; owned */
    size_t nconns;
    size_t bad_entries, dropped_joins;
} presence_report;

/* Parses a report. On failure returns NT_EINVAL (malformed, wrong types,
 * unknown type) or NT_ETOOBIG (over a cap) with a message naming the field
 * (never a value) in err, and *out holds only head_ok, edge and seq (when
 * they parsed: the edge was still heard). On success free *out with
 * presence_report_free. Pure and thread-safe. */
nt_status presence_report_parse(const char *data, size_t len, presence_report *out, char *err,
                                size_t errlen);

/* Frees what a report owns; the report is empty after. */
void presence_report_free(presence_report *r);

/* True when s is 1..PRESENCE_ID_MAX characters of [A-Za-z0-9_-]: what room
 * ids look like, safe in JSON and subjects without escaping (and user ids
 * that can be KV keys). */
bool presence_id_valid(const char *s);

/* True when s is 1..PRESENCE_USER_MAX printable ASCII characters other than
 * space, '.', '*' and '>': a user id as the edge takes it from a JWT sub
 * ("auth0|123"). Such ids are kept in memory and in room presence; JSON
 * built as text escapes them. */
bool presence_user_valid(const char *s);

/* Parses {"room_id":"r","max_bytes":n} into room (PRESENCE_ID_MAX + 1 bytes)
 * and *max_bytes (optional: 1024..PRESENCE_GET_MAX, default PRESENCE_GET_MAX;
 * the asking edge's cap on the state it can send). NT_EINVAL with a message
 * otherwise. */
nt_status presence_get_body_parse(const char *data, size_t len, char *room, size_t *max_bytes,
                                  char *err, size_t errlen);

/* Parses {"user_ids":["u1",...]} (1..PRESENCE_ONLINE_MAX presence_user_valid ids).
 * *ids is a malloc'd array of *n malloc'd strings with duplicates removed,
 * the caller's (presence_ids_free). NT_EINVAL with a message otherwise. */
nt_status presence_online_body_parse(const char *data, size_t len, char ***ids, size_t *n,
                                     char *err, size_t errlen);
void presence_ids_free(char **ids, size_t n);

/* Parses a presence:{user} value {"online":bool,"last_seen":"..."}; last_seen
 * (PRESENCE_TIME_LEN bytes) is "" when absent or not a string. NT_EINVAL when
 * the value is not such an object. */
nt_status presence_kv_value_parse(const char *data, size_t len, bool *online, char *last_seen);

/* {"online":X,"last_seen":"t"}, the presence:{user} value; malloc'd. */
char *presence_kv_value(bool online, const char *last_seen);

/* {"user_id":"u","online":X,"last_seen":"t"}, a presence_update; malloc'd. */
char *presence_update_json(const char *user_id, bool online, const char *last_seen);

/* The chat.rooms.list body for one page: {"scope":"mine","limit":100} plus
 * "cursor" when cursor is non-NULL; malloc'd. */
char *presence_rooms_list_body(const char *cursor);

/* Parses a chat.rooms.list reply envelope {"data":{"rooms":[{"id":..}],
 * "next_cursor":..}}: appends the valid room ids to *ids (grown with realloc,
 * *n updated) and sets *cursor to a malloc'd next cursor or NULL on the last
 * page. NT_EINVAL when the reply is not such a page. */
nt_status presence_rooms_page_parse(const char *data, size_t len, char ***ids, size_t *n,
                                    char **cursor);

/* A reply payload that is already JSON text (takes ownership of json). */
cJSON *presence_raw_json(char *json);

#endif
