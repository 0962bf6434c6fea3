/* Rate-limit keys, monotonic token taking and the open-file limit. */
#include "gw_limit.h"

#include "nt_clock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

void gw_limit_ip_key(const char *ip, char out[GW_LIMIT_KEY_MAX])
{
    struct in6_addr a6;
    struct in_addr a4;
    if (ip != NULL && inet_pton(AF_INET6, ip, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
            NT_ASSERT(inet_ntop(AF_INET, &a4, out, GW_LIMIT_KEY_MAX) != NULL);
            return;
        }
        memset(&a6.s6_addr[8], 0, 8);
        char text[INET6_ADDRSTRLEN];
        NT_ASSERT(inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL);
        snprintf(out, GW_LIMIT_KEY_MAX, "%s/64", text);
        return;
    }
    if (ip != NULL && inet_pton(AF_INET, ip, &a4) == 1) {
        /* Canonical text, so that equal addresses share one bucket. */
        NT_ASSERT(inet_ntop(AF_INET, &a4, out, GW_LIMIT_KEY_MAX) != NULL);
        return;
    }
    snprintf(out, GW_LIMIT_KEY_MAX, "%s", ip != NULL ? ip : "-");
}

bool gw_limit_take(nt_ratelimit *rl, const char *key, int64_t *retry_after_ms)
{
    return nt_ratelimit_take(rl, key, nt_clock_mono_ms(), retry_after_ms);
}

nt_status gw_limit_raise_nofile(uint64_t *out)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return NT_EINTERNAL;
    if (rl.rlim_cur != rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    *out = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return NT_OK;
}
