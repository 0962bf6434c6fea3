/* The edge: the WebSocket endpoint that speaks Phoenix Channels v2
 * (PHOENIX.md) to browsers and fans room subjects out from NATS. This header
 * holds the options every module of the edge shares and the configuration
 * table main loads them from. */
#ifndef EDGE_H
#define EDGE_H

#include "nt_config.h"
#include "nt_log.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *nats_url;
    const char *addr; /* bind address; NULL or "0.0.0.0" = every IPv4 and IPv6 interface */
    int port;
    int max_sockets;        /* WebSocket connections open at once */
    size_t max_message;     /* largest inbound message (1009 past it) */
    size_t max_queue_bytes; /* outbound bytes queued per socket before it is closed */
    int idle_timeout_s;     /* no inbound data for this long closes the socket */
    int frame_rate;         /* inbound frames per second per socket (heartbeats excluded) */
    int frame_burst;
    int catchup_max;           /* messages sent after a join with "after", at most */
    int typing_debounce_ms;    /* at most one typing start per user and room this often */
    int typing_timeout_ms;     /* a start without refresh ends after this long */
    int request_timeout_ms;    /* how long a NATS request of the edge may take */
    int drain_ms;              /* how long SIGTERM waits for sockets to close */
    int presence_interval_ms;  /* how often the full presence snapshot goes to presence */
    size_t presence_state_max; /* a larger presence_state is sent as {} */
    const char *instance_id;   /* the edge's $SRV id: names it in presence reports */
} edge_opts;

extern const nt_cfg_spec edge_config_specs[];
extern const size_t edge_config_nspecs;

/* Reads cfg (loaded from edge_config_specs) into *out, with the token
 * variables checked (nt_tokens_check_config). NT_EINVAL with a message naming
 * the variable in err; main exits 2 then. out borrows strings from cfg. */
nt_status edge_config_read(const nt_config *cfg, edge_opts *out, char *err, size_t errlen);

#endif
