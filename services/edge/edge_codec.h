/* The JSON the edge exchanges with the services over NATS, and the frames it
 * makes from their replies and events. With edge_frame, the only modules of
 * the edge that touch cJSON. Pure and thread-safe: event encoding runs on
 * nats.c delivery threads, so that the service thread only queues. */
#ifndef EDGE_CODEC_H
#define EDGE_CODEC_H

#include "edge_out.h"
#include "nt_buf.h"
#include "nt_nats.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

#define EDGE_USERNAME_MAX 128

/* The broadcast frame [null,null,"<kind>:<id>",event,payload] for an event
 * (the payload re-printed compactly from its parse)
 * received on chat.<kind>.<id>.<event>, in a new message with pre bytes of
 * headroom. For message_received, msg_id gets the payload's "id" (catch-up
 * drops the ones it has already sent). NT_EINVAL, with nothing made, when id or event are not
 * plain tokens (letters, digits, '_', '-'), or payload is not a JSON object
 * in valid UTF-8. */
nt_status edge_codec_event(const char *kind, const char *id, const char *event, const char *payload,
                           size_t len, size_t pre, edge_msg **out);

/* The phx_reply for a client push forwarded to a service: status "ok" with
 * the reply's data as response, or "error" with {"reason": code, "message",
 * "retry_after_ms"?} from the reply's error; st NT_ETIMEOUT gives reason
 * "timeout", NT_EUNAVAIL "unavailable". Appended to out. */
nt_status edge_codec_service_reply(const char *join_ref, const char *ref, const char *topic,
                                   nt_status st, const nt_response *resp, nt_buf *out);

/* {"room_id": room_id, "action": action} */
nt_status edge_codec_authorize_body(const char *room_id, const char *action, nt_buf *out);

typedef enum {
    EDGE_JOIN_OK,
    EDGE_JOIN_FORBIDDEN,
    EDGE_JOIN_NOT_FOUND,
    EDGE_JOIN_UNAVAILABLE, /* rooms did not answer, or answered something else */
} edge_join_verdict;

/* What an authorize reply (or its absence, st != NT_OK) means for a join. */
edge_join_verdict edge_codec_authorize_verdict(nt_status st, const nt_response *resp);

/* {"room_id", "after", "limit"} for chat.messages.history. */
nt_status edge_codec_history_body(const char *room_id, const char *after, int limit, nt_buf *out);

/* A history page: for each message, in the page's order (oldest first), a
 * push [join_ref,null,topic,"message_received",message] in a new message
 * (msg_id set) appended to msgs (grown with realloc; *nmsgs counts). has_more
 * and the page's newest id (last_id, "" when empty) are set. NT_EINVAL when
 * the body is not a page; the messages made before the fault stay in msgs
 * and *nmsgs then, for the caller to release as on success. */
nt_status edge_codec_history_page(const char *body, size_t len, const char *join_ref,
                                  const char *topic, size_t pre, edge_msg ***msgs, size_t *nmsgs,
                                  bool *has_more, char last_id[40]);

/* The username of a profile reply ({"data":{"username":...}}): true and
 * copied to out, or false. */
bool edge_codec_username(const char *body, size_t len, char *out, size_t outlen);

/* {"user_id", "username" (null when unknown), "typing"} */
nt_status edge_codec_typing(const char *user_id, const char *username, bool typing, nt_buf *out);

#endif
