/* The NATS micro discovery protocol (ADR-32) as pure functions: the JSON of
 * PING, INFO and STATS in the Go client's shapes, and per-endpoint counters.
 * nt_nats wires them to the nine $SRV subscriptions. */
#ifndef NT_MICRO_H
#define NT_MICRO_H

#include "nt_json.h"
#include "nt_status.h"

#include <stddef.h>
#include <stdint.h>

#define NT_MICRO_ID_LEN 23 /* 22 characters and the NUL */

typedef struct {
    const char *name; /* endpoint name */
    const char *subject;
    const char *queue_group;
    uint64_t num_requests;
    uint64_t num_errors;
    int64_t processing_ns;               /* cumulative */
    char last_error[NT_ERRMSG_LEN + 16]; /* "<code>:<description>" or "" */
} nt_micro_endpoint;

typedef struct {
    const char *name;
    const char *id;
    const char *version;
    const char *description;
    int64_t started_ms; /* wall clock */
    nt_micro_endpoint *endpoints;
    size_t nendpoints;
} nt_micro_info;

/* Writes a new random instance id of 22 base-62 characters. */
void nt_micro_new_id(char out[NT_MICRO_ID_LEN]);

/* Counts one handled request: num_requests and processing_ns always; on an
 * error status num_errors and last_error ("<http>:<message>"). Not locked:
 * the caller serialises. */
void nt_micro_record(nt_micro_endpoint *ep, int64_t elapsed_ns, nt_status st, const char *message);

/* The three responses, as malloc'd JSON text (caller frees). Types are
 * io.nats.micro.v1.{ping,info,stats}_response; metadata is always {}. */
char *nt_micro_ping_json(const nt_micro_info *info);
char *nt_micro_info_json(const nt_micro_info *info);
char *nt_micro_stats_json(const nt_micro_info *info);

#endif
