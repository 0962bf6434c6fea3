/* The gateway's configuration table (environment variables; the README table
 * is generated from the help strings) and its reading into plain options. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "nt_config.h"
#include "nt_log.h"
#include "nt_status.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

extern const nt_cfg_spec gw_config_specs[];
extern const size_t gw_config_nspecs;

/* The effective gateway options. Strings are borrowed from the nt_config. */
typedef struct {
    const char *nats_url;
    struct sockaddr_storage addr; /* NATTER_HTTP_ADDR and NATTER_HTTP_PORT */
    socklen_t addrlen;
    bool ipv6;
    unsigned threads;
    unsigned max_conn;        /* NATTER_HTTP_MAX_CONN, over all workers */
    unsigned max_conn_per_ip; /* NATTER_HTTP_MAX_CONN_PER_IP; 0: no limit */
    unsigned idle_timeout_s;  /* NATTER_HTTP_IDLE_TIMEOUT_S */
    int request_timeout_ms;
    size_t max_body;
    double ip_rate, ip_burst;
    double user_rate, user_burst;
    bool trust_proxy;
    const char *cors_origins; /* NULL when unset */
    const char *web_dir;
    nt_log_level log_level;
} gw_opts;

/* Reads and cross-checks cfg (loaded from gw_config_specs) into *out,
 * including nt_tokens_check_config. NT_EINVAL with a message naming the
 * variable in err; main exits 2 then. */
nt_status gw_config_read(const nt_config *cfg, gw_opts *out, char *err, size_t errlen);

#endif
