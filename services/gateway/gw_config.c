/* The gateway's configuration table and its checks. */
#include "gw_config.h"

#include "gw_cors.h"
#include "nt_tokens.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* clang-format off */
const nt_cfg_spec gw_config_specs[] = {
    {"NATS_URL", NT_CFG_STR, "nats://127.0.0.1:4222", 0, 0, false, false,
     "NATS servers, comma-separated"},
    {"NATTER_HTTP_ADDR", NT_CFG_STR, "0.0.0.0", 0, 0, false, false,
     "IPv4 or IPv6 address the HTTP server binds (0.0.0.0: every interface; 127.0.0.1: this host only)"},
    {"NATTER_HTTP_PORT", NT_CFG_INT, "8080", 1, 65535, false, false,
     "TCP port of the REST API and the web app"},
    {"NATTER_GATEWAY_THREADS", NT_CFG_INT, "2", 1, 64, false, false,
     "HTTP worker threads, each with its own epoll loop"},
    {"NATTER_REQUEST_TIMEOUT_MS", NT_CFG_INT, "5000", 100, 60000, false, false,
     "how long a request waits for its service before the gateway answers 504"},
    {"NATTER_HTTP_MAX_CONN", NT_CFG_INT, "4096", 1, 1048576, false, false,
     "most HTTP connections open at once (split evenly between the worker threads); more wait in the listen queue"},
    {"NATTER_HTTP_MAX_CONN_PER_IP", NT_CFG_INT, "64", 1, 1048576, false, false,
     "most HTTP connections open at once from one client address, more are closed at once; no limit with NATTER_TRUST_PROXY=true unless set (all connections then come from the proxy)"},
    {"NATTER_HTTP_IDLE_TIMEOUT_S", NT_CFG_INT, "15", 1, 3600, false, false,
     "seconds an HTTP connection may send nothing (mid-request or between requests) before it is closed"},
    {"NATTER_MAX_BODY_BYTES", NT_CFG_INT, "65536", 64, 16777216, false, false,
     "largest request body accepted; larger ones get 413"},
    {"NATTER_RATE_IP_PER_S", NT_CFG_INT, "50", 1, 100000, false, false,
     "requests per second allowed from one client IP (every request)"},
    {"NATTER_RATE_IP_BURST", NT_CFG_INT, "100", 1, 1000000, false, false,
     "burst of requests allowed from one client IP"},
    {"NATTER_RATE_USER_PER_S", NT_CFG_INT, "20", 1, 100000, false, false,
     "API requests per second allowed for one signed-in user"},
    {"NATTER_RATE_USER_BURST", NT_CFG_INT, "40", 1, 1000000, false, false,
     "burst of API requests allowed for one signed-in user"},
    {"NATTER_TRUST_PROXY", NT_CFG_BOOL, "false", 0, 0, false, false,
     "take the client IP from the last X-Forwarded-For entry, the one the proxy appended (only behind a proxy that sets it)"},
    {"NATTER_CORS_ORIGINS", NT_CFG_STR, NULL, 0, 0, false, false,
     "comma-separated exact origins allowed to call the API from a browser; unset = no CORS headers"},
    {"NATTER_WEB_DIR", NT_CFG_STR, "web/build", 0, 0, false, false,
     "built web app served for non-/api paths when the directory exists"},
    {"NATTER_LOG_LEVEL", NT_CFG_STR, "info", 0, 0, false, false,
     "debug, info, warn or error"},
    NT_TOKEN_CONFIG_SPECS,
};
/* clang-format on */
const size_t gw_config_nspecs = sizeof(gw_config_specs) / sizeof(gw_config_specs[0]);

static bool parse_addr(const char *text, int port, gw_opts *out)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr;
    memset(&out->addr, 0, sizeof(out->addr));
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->addrlen = sizeof(*v4);
        out->ipv6 = false;
        return true;
    }
    /* Brackets are accepted for IPv6, as in URLs: "[::1]". */
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, text + 1, n - 2);
        buf[n - 2] = '\0';
        text = buf;
    }
    memset(&out->addr, 0, sizeof(out->addr));
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->addrlen = sizeof(*v6);
        out->ipv6 = true;
        return true;
    }
    return false;
}

nt_status gw_config_read(const nt_config *cfg, gw_opts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->nats_url = nt_config_str(cfg, "NATS_URL");
    const char *addr = nt_config_str(cfg, "NATTER_HTTP_ADDR");
    if (addr == NULL || !parse_addr(addr, (int)nt_config_int(cfg, "NATTER_HTTP_PORT"), out)) {
        snprintf(err, errlen, "NATTER_HTTP_ADDR: must be an IPv4 or IPv6 address, got '%.64s'",
                 addr != NULL ? addr : "");
        return NT_EINVAL;
    }
    out->threads = (unsigned)nt_config_int(cfg, "NATTER_GATEWAY_THREADS");
    out->max_conn = (unsigned)nt_config_int(cfg, "NATTER_HTTP_MAX_CONN");
    out->max_conn_per_ip = (unsigned)nt_config_int(cfg, "NATTER_HTTP_MAX_CONN_PER_IP");
    out->idle_timeout_s = (unsigned)nt_config_int(cfg, "NATTER_HTTP_IDLE_TIMEOUT_S");
    out->trust_proxy = nt_config_bool(cfg, "NATTER_TRUST_PROXY");
    /* Behind a proxy every connection comes from the proxy's address. */
    if (out->trust_proxy && !nt_config_is_set(cfg, "NATTER_HTTP_MAX_CONN_PER_IP"))
        out->max_conn_per_ip = 0;
    if (out->max_conn < out->threads) {
        snprintf(err, errlen,
                 "NATTER_HTTP_MAX_CONN: must be at least NATTER_GATEWAY_THREADS (%u), got %u",
                 out->threads, out->max_conn);
        return NT_EINVAL;
    }
    out->request_timeout_ms = (int)nt_config_int(cfg, "NATTER_REQUEST_TIMEOUT_MS");
    out->max_body = (size_t)nt_config_int(cfg, "NATTER_MAX_BODY_BYTES");
    out->ip_rate = (double)nt_config_int(cfg, "NATTER_RATE_IP_PER_S");
    out->ip_burst = (double)nt_config_int(cfg, "NATTER_RATE_IP_BURST");
    out->user_rate = (double)nt_config_int(cfg, "NATTER_RATE_USER_PER_S");
    out->user_burst = (double)nt_config_int(cfg, "NATTER_RATE_USER_BURST");
    out->cors_origins = nt_config_str(cfg, "NATTER_CORS_ORIGINS");
    out->web_dir = nt_config_str(cfg, "NATTER_WEB_DIR");

    if (nt_log_level_parse(nt_config_str(cfg, "NATTER_LOG_LEVEL"), &out->log_level) != NT_OK) {
        snprintf(err, errlen, "NATTER_LOG_LEVEL: must be debug, info, warn or error, got '%.32s'",
                 nt_config_str(cfg, "NATTER_LOG_LEVEL"));
        return NT_EINVAL;
    }
    gw_cors *cors = NULL;
    if (gw_cors_create(out->cors_origins, &cors, err, errlen) != NT_OK)
        return NT_EINVAL;
    gw_cors_destroy(cors);
    return nt_tokens_check_config(cfg, err, errlen);
}
