/* Small pure helpers for one HTTP request: the request id, the client's IP
 * address, the Retry-After value, the service a subject belongs to, and a
 * log-safe copy of the path. */
#ifndef GW_REQ_H
#define GW_REQ_H

#include <stdbool.h>
#include <stddef.h>

#define GW_REQUEST_ID_MAX 65 /* 64 characters and the NUL */
#define GW_IP_MAX         46 /* INET6_ADDRSTRLEN */

/* True when s is 1 to 64 characters of [A-Za-z0-9._-], the only client
 * X-Request-Id the gateway passes on. */
bool gw_req_id_valid(const char *s);

/* Writes the request id to use: the client's when valid, else a new UUIDv7. */
void gw_req_id_choose(const char *client_id, char out[GW_REQUEST_ID_MAX]);

/* Writes the client address: with trust_proxy, the last X-Forwarded-For
 * entry (the one the trusted proxy appended; earlier entries are the
 * client's to forge) when it is a valid IPv4 or IPv6 address; otherwise peer
 * (the socket's address, may be NULL, then "-"). xff is the value of the
 * last X-Forwarded-For header line when there are several. */
void gw_req_client_ip(bool trust_proxy, const char *xff, const char *peer, char out[GW_IP_MAX]);

/* Seconds for Retry-After: ms / 1000 rounded up, at least 1 when ms > 0;
 * 0 when ms <= 0. */
long long gw_req_retry_after_s(long long ms);

/* The service name of a subject, its second token ("chat.auth.users.get" →
 * "auth"), copied into out; the whole subject when it has fewer tokens. */
void gw_req_service_name(const char *subject, char *out, size_t outlen);

/* Copies path for a log line: at most outlen - 1 bytes, with spaces, control
 * characters, quotes and non-ASCII bytes replaced by '?'. */
void gw_req_log_path(const char *path, char *out, size_t outlen);

#endif
