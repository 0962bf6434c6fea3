/* The edge's configuration table and its checks. */
#include "edge.h"

#include "nt_tokens.h"

#include <stdio.h>
#include <string.h>

/* clang-format off */
const nt_cfg_spec edge_config_specs[] = {
    {"NATS_URL", NT_CFG_STR, "nats://127.0.0.1:4222", 0, 0, false, false,
     "NATS servers, comma-separated"},
    {"EDGE_ADDR", NT_CFG_STR, NULL, 0, 0, false, false,
     "address the WebSocket edge binds (unset: every interface, IPv4 and IPv6; 127.0.0.1: this host only)"},
    {"EDGE_PORT", NT_CFG_INT, "4000", 1, 65535, false, false,
     "TCP port of the WebSocket edge (ws://host:EDGE_PORT/socket/websocket, plus /healthz and /metrics)"},
    {"EDGE_MAX_SOCKETS", NT_CFG_INT, "100000", 1, 1000000, false, false,
     "WebSocket connections open at once; the edge raises its file limit to fit when it may"},
    {"EDGE_MAX_MESSAGE_BYTES", NT_CFG_INT, "65536", 1024, 1048576, false, false,
     "largest message a client may send; larger ones close the socket with 1009"},
    {"EDGE_MAX_QUEUE_BYTES", NT_CFG_INT, "1048576", 65536, 67108864, false, false,
     "outbound bytes waiting for one socket; a client that lets more pile up is closed with 1008"},
    {"EDGE_IDLE_TIMEOUT_S", NT_CFG_INT, "60", 5, 3600, false, false,
     "a socket that sends nothing (not even a heartbeat) for this long is closed"},
    {"EDGE_FRAME_RATE", NT_CFG_INT, "50", 1, 100000, false, false,
     "frames per second one socket may send, heartbeats excepted; more get the error reply rate_limited"},
    {"EDGE_FRAME_BURST", NT_CFG_INT, "200", 1, 1000000, false, false,
     "frames one socket may send at once (a reconnecting client rejoins all its topics, up to 100, at once)"},
    {"EDGE_CATCHUP_MAX", NT_CFG_INT, "500", 0, 10000, false, false,
     "messages a join with \"after\" receives at most; beyond it the client is told to page over REST"},
    {"EDGE_TYPING_DEBOUNCE_MS", NT_CFG_INT, "2000", 0, 60000, false, false,
     "at most one typing start per user and room in this time"},
    {"EDGE_TYPING_TIMEOUT_MS", NT_CFG_INT, "6000", 500, 600000, false, false,
     "typing ends by itself this long after the last typing_start"},
    {"EDGE_REQUEST_TIMEOUT_MS", NT_CFG_INT, "5000", 100, 60000, false, false,
     "how long a join, send or history request waits for its service"},
    {"EDGE_DRAIN_MS", NT_CFG_INT, "3000", 0, 60000, false, false,
     "on SIGTERM, how long the edge waits for sockets to take their 1012 close"},
    {"EDGE_PRESENCE_INTERVAL_MS", NT_CFG_INT, "10000", 500, 20000, false, false,
     "how often the edge sends presence its full list of sockets and joins (keep it well under "
     "NATTER_PRESENCE_EDGE_TIMEOUT_MS)"},
    {"EDGE_PRESENCE_STATE_MAX_BYTES", NT_CFG_INT, "262144", 4096, 921600, false, false,
     "largest presence_state pushed after a join (about 2000 present channels by default); a "
     "larger one is sent as {} and diffs follow; lowered to half of EDGE_MAX_QUEUE_BYTES"},
    {"NATTER_LOG_LEVEL", NT_CFG_STR, "info", 0, 0, false, false,
     "debug, info, warn or error"},
    NT_TOKEN_CONFIG_SPECS,
};
/* clang-format on */
const size_t edge_config_nspecs = sizeof(edge_config_specs) / sizeof(edge_config_specs[0]);

nt_status edge_config_read(const nt_config *cfg, edge_opts *out, char *err, size_t errlen)
{
    nt_status st = nt_tokens_check_config(cfg, err, errlen);
    if (st != NT_OK)
        return st;
    edge_opts o;
    memset(&o, 0, sizeof(o));
    o.nats_url = nt_config_str(cfg, "NATS_URL");
    o.addr = nt_config_str(cfg, "EDGE_ADDR");
    if (o.addr != NULL && o.addr[0] == '\0')
        o.addr = NULL;
    o.port = (int)nt_config_int(cfg, "EDGE_PORT");
    o.max_sockets = (int)nt_config_int(cfg, "EDGE_MAX_SOCKETS");
    o.max_message = (size_t)nt_config_int(cfg, "EDGE_MAX_MESSAGE_BYTES");
    o.max_queue_bytes = (size_t)nt_config_int(cfg, "EDGE_MAX_QUEUE_BYTES");
    o.idle_timeout_s = (int)nt_config_int(cfg, "EDGE_IDLE_TIMEOUT_S");
    o.frame_rate = (int)nt_config_int(cfg, "EDGE_FRAME_RATE");
    o.frame_burst = (int)nt_config_int(cfg, "EDGE_FRAME_BURST");
    o.catchup_max = (int)nt_config_int(cfg, "EDGE_CATCHUP_MAX");
    o.typing_debounce_ms = (int)nt_config_int(cfg, "EDGE_TYPING_DEBOUNCE_MS");
    o.typing_timeout_ms = (int)nt_config_int(cfg, "EDGE_TYPING_TIMEOUT_MS");
    o.request_timeout_ms = (int)nt_config_int(cfg, "EDGE_REQUEST_TIMEOUT_MS");
    o.drain_ms = (int)nt_config_int(cfg, "EDGE_DRAIN_MS");
    o.presence_interval_ms = (int)nt_config_int(cfg, "EDGE_PRESENCE_INTERVAL_MS");
    o.presence_state_max = (size_t)nt_config_int(cfg, "EDGE_PRESENCE_STATE_MAX_BYTES");
    if (o.typing_timeout_ms <= o.typing_debounce_ms) {
        snprintf(err, errlen,
                 "EDGE_TYPING_TIMEOUT_MS: must be greater than "
                 "EDGE_TYPING_DEBOUNCE_MS, or typing would end between two starts");
        return NT_EINVAL;
    }
    /* A state pushed onto a socket's queue must leave it room, or a join
     * could close its own socket: the cap follows a smaller queue. */
    if (o.presence_state_max > o.max_queue_bytes / 2)
        o.presence_state_max = o.max_queue_bytes / 2;
    *out = o;
    return NT_OK;
}
