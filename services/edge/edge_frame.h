/* The Phoenix Channels V2 JSON frame (PHOENIX.md §2): decoding what a client
 * sends and encoding what the edge sends. Pure: no socket, no lws, no NATS,
 * so every rule is tested byte by byte. This and edge_codec are the only
 * modules of the edge that touch cJSON. */
#ifndef EDGE_FRAME_H
#define EDGE_FRAME_H

#include "nt_buf.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

#define EDGE_REF_MAX    64  /* bytes of a join_ref or ref, at most */
#define EDGE_TOPIC_MAX  160 /* bytes of a topic, at most */
#define EDGE_EVENT_MAX  64  /* bytes of an event name, at most */
#define EDGE_REASON_MAX 128

/* A decoded client frame [join_ref, ref, topic, event, payload, ...].
 * Strings are copied in (NUL-terminated); the payload is kept parsed and is
 * freed by edge_frame_clear. */
typedef struct {
    bool has_join_ref; /* false: join_ref was null */
    char join_ref[EDGE_REF_MAX + 1];
    bool has_ref; /* false: ref was null */
    char ref[EDGE_REF_MAX + 1];
    char topic[EDGE_TOPIC_MAX + 1];
    char event[EDGE_EVENT_MAX + 1];
    void *payload; /* the payload object (a cJSON *), owned; NULL when not an object */
} edge_frame;

/* What the decoder made of a text message. */
typedef enum {
    EDGE_FRAME_OK,          /* every field valid, payload an object */
    EDGE_FRAME_BAD_PAYLOAD, /* refs, topic and event valid, payload not an object:
                             * answer with an error reply (reason says why) */
    EDGE_FRAME_MALFORMED,   /* anything else: close the socket with 1007 */
} edge_frame_result;

/* Decodes data[0..len) (not NUL-terminated) into *f, which is zeroed first.
 * MALFORMED when: not valid UTF-8 or not JSON; not an array; fewer than five
 * elements (more are accepted and ignored, as Phoenix does); join_ref or ref
 * neither a string nor null (a number is malformed: refs are strings); a ref
 * empty or longer than EDGE_REF_MAX; topic or event not a non-empty string or
 * longer than its maximum, or holding a control character. BAD_PAYLOAD when only the
 * payload is wrong (not an object). reason (may be NULL) gets a short English
 * reason for logs and error replies in both failure cases, never frame data.
 * On any result other than OK the caller still calls edge_frame_clear. */
edge_frame_result edge_frame_decode(const char *data, size_t len, edge_frame *f, char *reason,
                                    size_t reasonlen);

/* Frees the payload; the frame may be reused. NULL is harmless. */
void edge_frame_clear(edge_frame *f);

/* The payload's string member key: a borrowed pointer valid until
 * edge_frame_clear, or NULL when absent, null or not a string. */
const char *edge_frame_payload_str(const edge_frame *f, const char *key);

/* The payload as compact JSON text with member "room_id": room_id added (an
 * existing "room_id" member is replaced), for forwarding a client event to a
 * service. Appended to out; NT_ETOOBIG past out's cap. */
nt_status edge_frame_payload_with_room(const edge_frame *f, const char *room_id, nt_buf *out);

/* ---- Encoding ------------------------------------------------------------
 * Every encoder appends one whole frame to out (nt_buf, capped) and returns
 * NT_OK or NT_ETOOBIG. A NULL join_ref or ref is written as JSON null; other
 * strings are JSON-escaped. JSON arguments (payload, response) are inserted
 * as given and must be a complete JSON object; the caller guarantees it. */

/* [join_ref, ref, topic, "phx_reply", {"status": status, "response": response}]
 * response NULL means {}. */
nt_status edge_frame_reply(nt_buf *out, const char *join_ref, const char *ref, const char *topic,
                           const char *status, const char *response);

/* An error reply whose response is {"reason": reason} plus, when extra is
 * non-NULL, the members of the JSON object extra (e.g. {"retry_after_ms":250}). */
nt_status edge_frame_reply_error(nt_buf *out, const char *join_ref, const char *ref,
                                 const char *topic, const char *reason, const char *extra);

/* [join_ref, ref, topic, event, payload]: pushes, broadcasts (both refs NULL),
 * phx_close and phx_error (ref = join_ref, payload "{}"). */
nt_status edge_frame_push(nt_buf *out, const char *join_ref, const char *ref, const char *topic,
                          const char *event, const char *payload, size_t payload_len);

#endif
