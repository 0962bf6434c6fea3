/* Unit tests of the per-request helpers: request id, client IP, Retry-After. */
#include "../../../services/gateway/gw_req.h"

#include "nt_id.h"

#include <criterion/criterion.h>
#include <string.h>

Test(gw_req, request_id_validation)
{
    cr_assert(gw_req_id_valid("a"));
    cr_assert(gw_req_id_valid("req-1.2_3"));
    char max[65];
    memset(max, 'x', 64);
    max[64] = '\0';
    cr_assert(gw_req_id_valid(max), "64 characters are fine");
    char over[66];
    memset(over, 'x', 65);
    over[65] = '\0';
    cr_assert_not(gw_req_id_valid(over), "65 are not");
    cr_assert_not(gw_req_id_valid(""));
    cr_assert_not(gw_req_id_valid(NULL));
    cr_assert_not(gw_req_id_valid("has space"));
    cr_assert_not(gw_req_id_valid("new\nline"));
    cr_assert_not(gw_req_id_valid("semi;colon"));
    cr_assert_not(gw_req_id_valid("caf\xc3\xa9"));
}

Test(gw_req, request_id_is_the_clients_or_a_new_uuid)
{
    char out[GW_REQUEST_ID_MAX];
    gw_req_id_choose("abc-123", out);
    cr_assert_str_eq(out, "abc-123");
    gw_req_id_choose("bad id", out);
    cr_assert(nt_id_valid(out), "got '%s'", out);
    char other[GW_REQUEST_ID_MAX];
    gw_req_id_choose(NULL, other);
    cr_assert(nt_id_valid(other));
    cr_assert_str_neq(out, other);
}

Test(gw_req, client_ip_from_forwarded_for_only_when_trusted)
{
    char out[GW_IP_MAX];
    gw_req_client_ip(false, "203.0.113.7", "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1");
    gw_req_client_ip(true, "203.0.113.7", "10.0.0.1", out);
    cr_assert_str_eq(out, "203.0.113.7", "a single entry is the proxy's");
    gw_req_client_ip(true, " 2001:db8::1 ", "10.0.0.1", out);
    cr_assert_str_eq(out, "2001:db8::1");
    gw_req_client_ip(true, "", "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1");
    gw_req_client_ip(true, NULL, NULL, out);
    cr_assert_str_eq(out, "-");
}

Test(gw_req, client_ip_is_the_last_forwarded_for_entry_the_proxy_appended)
{
    char out[GW_IP_MAX];
    /* The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the
     * address it saw. Taking the first entry would let anyone pick their
     * rate-limit bucket. */
    gw_req_client_ip(true, "1.2.3.4, 203.0.113.7", "10.0.0.1", out);
    cr_assert_str_eq(out, "203.0.113.7");
    gw_req_client_ip(true, "1.2.3.4,5.6.7.8,\t2001:db8::7\t", "10.0.0.1", out);
    cr_assert_str_eq(out, "2001:db8::7");
    /* A bad last entry falls back to the socket, never to an earlier one. */
    gw_req_client_ip(true, "1.2.3.4, not-an-ip", "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1");
    gw_req_client_ip(true, "1.2.3.4, ", "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1");
    gw_req_client_ip(true, "1.2.3.4,", "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1");
    gw_req_client_ip(true, "1.2.3.4, 203.0.113.7:443", "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1", "a port is not an address");
    char longest[200];
    memset(longest, '1', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    gw_req_client_ip(true, longest, "10.0.0.1", out);
    cr_assert_str_eq(out, "10.0.0.1");
}

Test(gw_req, retry_after_rounds_up_to_whole_seconds)
{
    cr_assert_eq(gw_req_retry_after_s(0), 0);
    cr_assert_eq(gw_req_retry_after_s(-5), 0);
    cr_assert_eq(gw_req_retry_after_s(1), 1);
    cr_assert_eq(gw_req_retry_after_s(999), 1);
    cr_assert_eq(gw_req_retry_after_s(1000), 1);
    cr_assert_eq(gw_req_retry_after_s(1001), 2);
    cr_assert_eq(gw_req_retry_after_s(59999), 60);
    cr_assert_eq(gw_req_retry_after_s(9223372036854775807LL), 9223372036854776LL);
}

Test(gw_req, service_name_is_the_second_subject_token)
{
    char out[32];
    gw_req_service_name("chat.auth.users.get", out, sizeof(out));
    cr_assert_str_eq(out, "auth");
    gw_req_service_name("chat.rooms", out, sizeof(out));
    cr_assert_str_eq(out, "rooms");
    gw_req_service_name("single", out, sizeof(out));
    cr_assert_str_eq(out, "single");
}

Test(gw_req, log_path_replaces_unsafe_bytes_and_truncates)
{
    char out[16];
    gw_req_log_path("/a b\n\"c\x01\xc3\xa9", out, sizeof(out));
    cr_assert_str_eq(out, "/a?b??c???");
    gw_req_log_path("/0123456789abcdefghij", out, sizeof(out));
    cr_assert_str_eq(out, "/0123456789abcd");
}
