/* Unit tests of the gateway's client limits: rate-limit keys (IPv6 by /64),
 * the clock tokens are taken on, and the open-file limit. */
#include "../../../services/gateway/gw_limit.h"

#include "nt_clock.h"

#include <criterion/criterion.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char *key(const char *ip)
{
    static char out[GW_LIMIT_KEY_MAX];
    memset(out, 'x', sizeof(out));
    gw_limit_ip_key(ip, out);
    return out;
}

Test(gw_limit, ipv4_is_keyed_by_the_whole_address)
{
    cr_assert_str_eq(key("203.0.113.7"), "203.0.113.7");
    cr_assert_str_eq(key("203.0.113.8"), "203.0.113.8");
    cr_assert_str_eq(key("127.0.0.1"), "127.0.0.1");
}

Test(gw_limit, ipv6_is_keyed_by_its_slash_64)
{
    cr_assert_str_eq(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    cr_assert_str_eq(key("2001:db8:1:2::ffff"), "2001:db8:1:2::/64",
                     "another address of the same /64 shares the bucket");
    cr_assert_str_eq(key("2001:DB8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64",
                     "any spelling of it too");
    cr_assert_str_eq(key("2001:db8:1:3::1"), "2001:db8:1:3::/64", "the next /64 is another client");
    cr_assert_str_eq(key("::1"), "::/64");
    cr_assert_str_eq(key("fe80::1:2:3:4"), "fe80::/64");
    cr_assert_str_eq(key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "ffff:ffff:ffff:ffff::/64");
}

Test(gw_limit, ipv4_mapped_ipv6_is_keyed_as_ipv4)
{
    /* A dual-stack socket reports IPv4 clients so; by /64 they would all
     * share one bucket. */
    cr_assert_str_eq(key("::ffff:192.0.2.1"), "192.0.2.1");
    cr_assert_str_eq(key("::ffff:192.0.2.2"), "192.0.2.2");
}

Test(gw_limit, non_addresses_are_copied_as_they_are)
{
    cr_assert_str_eq(key("-"), "-");
    cr_assert_str_eq(key(""), "");
    cr_assert_str_eq(key(NULL), "-");
    char longest[200];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    cr_assert_eq(strlen(key(longest)), GW_LIMIT_KEY_MAX - 1, "truncated to fit");
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

Test(gw_limit, tokens_ignore_wall_clock_steps)
{
    nt_ratelimit *rl = NULL;
    cr_assert_eq(nt_ratelimit_create(100, 1, 16, &rl), NT_OK);
    fake_now = 1800000000000LL;
    nt_clock_set_fake(fake_clock);
    int64_t retry = 0;
    cr_assert(gw_limit_take(rl, "a", &retry));
    /* The wall clock steps back an hour (NTP, an operator); 30 ms later the
     * bucket (one token per 10 ms) has refilled in real time. */
    fake_now -= 3600 * 1000;
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    bool ok = gw_limit_take(rl, "a", &retry);
    cr_assert(ok, "refused for %lld ms after a clock step", (long long)retry);
    /* And a forward step gives no free burst. */
    fake_now += 24 * 3600 * 1000;
    cr_assert_not(gw_limit_take(rl, "a", &retry));
    cr_assert_leq(retry, 10);
    nt_clock_set_fake(NULL);
    nt_ratelimit_destroy(rl);
}

Test(gw_limit, nofile_is_raised_to_the_hard_limit)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max > 64) {
        struct rlimit low = {64, rl.rlim_max};
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    }
    uint64_t got = 0;
    cr_assert_eq(gw_limit_raise_nofile(&got), NT_OK);
    struct rlimit now;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
    cr_assert_eq(now.rlim_cur, rl.rlim_max);
    cr_assert_eq(got, now.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)now.rlim_cur);
}
