/* The gateway's defences against one client crowding out the others: the key
 * a client's requests are rate-limited under (an IPv6 client by its /64),
 * rate-limit tokens taken on the monotonic clock, and the process's open-file
 * limit, which bounds how many connections can be open at all. */
#ifndef GW_LIMIT_H
#define GW_LIMIT_H

#include "nt_ratelimit.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stdint.h>

#define GW_LIMIT_KEY_MAX 64 /* an IPv6 text address, "/64" and the NUL */

/* Writes the rate-limit key of the client address ip: an IPv4 address is its
 * own key; an IPv4-mapped IPv6 address ("::ffff:192.0.2.1", what a dual-stack
 * socket reports for IPv4 clients) is keyed as that IPv4 address; any other
 * IPv6 address by its /64 prefix ("2001:db8:1:2::/64"), because one
 * subscriber usually holds a whole /64 and could otherwise change address
 * for every request. Text that is not an address ("-") is copied as it is,
 * truncated to fit. Pure. */
void gw_limit_ip_key(const char *ip, char out[GW_LIMIT_KEY_MAX]);

/* nt_ratelimit_take fed the monotonic clock, so that a step of the wall clock
 * neither refuses every client for the length of a backward step nor lets
 * bursts through on a forward one. Thread-safe. */
bool gw_limit_take(nt_ratelimit *rl, const char *key, int64_t *retry_after_ms);

/* Raises the soft RLIMIT_NOFILE to the hard limit (every connection is a
 * file descriptor) and writes the soft limit now in force to *out.
 * NT_EINTERNAL when the limit cannot be read; when it cannot be raised, the
 * old soft limit is written and NT_OK returned. Not thread-safe: call at
 * start-up. */
nt_status gw_limit_raise_nofile(uint64_t *out);

#endif
