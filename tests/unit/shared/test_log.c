/* Unit tests of the log line format and level filtering. */
#include "nt_log.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <string.h>

static void read_stderr(char *buf, size_t len)
{
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
}

Test(nt_log, writes_one_line_with_time_level_and_module, .init = cr_redirect_stderr)
{
    nt_log_set_level(NT_LOG_INFO);
    nt_log_info("gateway", "request method=%s status=%d", "GET", 200);
    nt_log_debug("gateway", "hidden");
    nt_log_warn("auth", "two\nlines");
    char buf[1024];
    read_stderr(buf, sizeof(buf));
    char *second = strchr(buf, '\n');
    cr_assert_not_null(second);
    cr_assert_eq(buf[4], '-');
    cr_assert_eq(buf[23], 'Z', "%s", buf);
    cr_assert(strstr(buf, " info gateway request method=GET status=200\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "hidden") == NULL, "debug is below the level");
    cr_assert(strstr(second + 1, " warn auth two lines\n") != NULL, "newlines are folded: %s",
              second + 1);
}

Test(nt_log, parses_levels)
{
    nt_log_level l;
    cr_assert_eq(nt_log_level_parse("debug", &l), NT_OK);
    cr_assert_eq(l, NT_LOG_DEBUG);
    cr_assert_eq(nt_log_level_parse("ERROR", &l), NT_OK);
    cr_assert_eq(l, NT_LOG_ERROR);
    cr_assert_eq(nt_log_level_parse("loud", &l), NT_EINVAL);
    cr_assert_eq(nt_log_level_parse(NULL, &l), NT_EINVAL);
}

Test(nt_log, truncates_huge_lines_safely, .init = cr_redirect_stderr)
{
    static char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    nt_log_error("m", "v=%s", big);
    char buf[8192];
    read_stderr(buf, sizeof(buf));
    size_t n = strlen(buf);
    cr_assert_leq(n, 4096);
    cr_assert_eq(buf[n - 1], '\n');
}

Test(nt_log, redacts_user_information_from_urls)
{
    char out[256];
    nt_log_redact_url("nats://bob:s3cr3t@h1:4222", out, sizeof(out));
    cr_assert_str_eq(out, "nats://h1:4222");
    nt_log_redact_url("nats://a:b@h1:4222,nats://h2:4222, tls://t@k@h3", out, sizeof(out));
    cr_assert_str_eq(out, "nats://h1:4222,nats://h2:4222, tls://h3");
    nt_log_redact_url("nats://bob:s3/cr3t@127.0.0.1:4222", out, sizeof(out));
    cr_assert_str_eq(out, "nats://127.0.0.1:4222", "a '/' in the password hides nothing");
    nt_log_redact_url("nats://bob:p@ss/w0rd@h", out, sizeof(out));
    cr_assert_str_eq(out, "nats://h");
    nt_log_redact_url("https://x.example/path", out, sizeof(out));
    cr_assert_str_eq(out, "https://x.example/path");
    nt_log_redact_url("plain-value", out, sizeof(out));
    cr_assert_str_eq(out, "plain-value");
    nt_log_redact_url("user:pw@host", out, sizeof(out));
    cr_assert_str_eq(out, "host", "no scheme: still redacted");
    nt_log_redact_url("nats://u:p@host:4222", out, 8);
    cr_assert_str_eq(out, "nats://");
    nt_log_redact_url("", out, sizeof(out));
    cr_assert_str_eq(out, "");
}
