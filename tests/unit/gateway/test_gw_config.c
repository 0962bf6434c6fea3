/* Unit tests of the gateway's configuration table and its checks. */
#include "../../../services/gateway/gw_config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

static const char *lookup(void *ctx, const char *name)
{
    const char *const *env = ctx;
    size_t n = strlen(name);
    for (size_t i = 0; env[i] != NULL; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    }
    return NULL;
}

/* Loads env and reads it; returns the gw_config_read status (err filled). */
static nt_status read_env(const char *const *env, gw_opts *opts, char *err, size_t errlen)
{
    nt_config *cfg = NULL;
    nt_status st =
        nt_config_load(gw_config_specs, gw_config_nspecs, lookup, (void *)env, &cfg, err, errlen);
    if (st == NT_OK)
        st = gw_config_read(cfg, opts, err, errlen);
    nt_config_destroy(cfg);
    return st;
}

Test(gw_config, defaults_are_documented_values)
{
    const char *env[] = {NULL};
    gw_opts o;
    char err[256] = "";
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_OK, "%s", err);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&o.addr;
    cr_assert_eq(a->sin_family, AF_INET);
    cr_assert_eq(ntohs(a->sin_port), 8080);
    cr_assert_eq(a->sin_addr.s_addr, htonl(INADDR_ANY), "0.0.0.0 by default");
    cr_assert_eq(o.threads, 2);
    cr_assert_eq(o.max_conn, 4096);
    cr_assert_eq(o.max_conn_per_ip, 64);
    cr_assert_eq(o.idle_timeout_s, 15);
    cr_assert_eq(o.request_timeout_ms, 5000);
    cr_assert_eq(o.max_body, 65536);
    cr_assert_eq(o.ip_rate, 50);
    cr_assert_eq(o.ip_burst, 100);
    cr_assert_eq(o.user_rate, 20);
    cr_assert_eq(o.user_burst, 40);
    cr_assert_not(o.trust_proxy);
    cr_assert_null(o.cors_origins);
    cr_assert_eq(o.log_level, NT_LOG_INFO);
    for (size_t i = 0; i < gw_config_nspecs; i++)
        cr_assert(gw_config_specs[i].help != NULL && gw_config_specs[i].help[0] != '\0',
                  "%s has no help", gw_config_specs[i].name);
}

Test(gw_config, binds_ipv6_addresses_with_or_without_brackets)
{
    gw_opts o;
    char err[256] = "";
    const char *env[] = {"NATTER_HTTP_ADDR=[::1]", "NATTER_HTTP_PORT=9000", NULL};
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert(o.ipv6);
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&o.addr;
    cr_assert_eq(a->sin6_family, AF_INET6);
    cr_assert_eq(ntohs(a->sin6_port), 9000);
    cr_assert_eq(o.addrlen, sizeof(struct sockaddr_in6));
    const char *env2[] = {"NATTER_HTTP_ADDR=::", NULL};
    cr_assert_eq(read_env(env2, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert(o.ipv6);
}

Test(gw_config, bad_values_name_their_variable)
{
    struct {
        const char *var;
        const char *name;
    } cases[] = {
        {"NATTER_HTTP_ADDR=localhost", "NATTER_HTTP_ADDR"},
        {"NATTER_HTTP_PORT=0", "NATTER_HTTP_PORT"},
        {"NATTER_GATEWAY_THREADS=abc", "NATTER_GATEWAY_THREADS"},
        {"NATTER_LOG_LEVEL=loud", "NATTER_LOG_LEVEL"},
        {"NATTER_CORS_ORIGINS=app.example", "NATTER_CORS_ORIGINS"},
        {"NATTER_TRUST_PROXY=maybe", "NATTER_TRUST_PROXY"},
        {"NATTER_HTTP_MAX_CONN=0", "NATTER_HTTP_MAX_CONN"},
        {"NATTER_HTTP_MAX_CONN_PER_IP=0", "NATTER_HTTP_MAX_CONN_PER_IP"},
        {"NATTER_HTTP_IDLE_TIMEOUT_S=0", "NATTER_HTTP_IDLE_TIMEOUT_S"},
        {"NATTER_HTTP_IDLE_TIMEOUT_S=3601", "NATTER_HTTP_IDLE_TIMEOUT_S"},
        {"CLERK_JWKS_URL=https://x/jwks", "CLERK_ISSUER_URL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {cases[i].var, NULL};
        gw_opts o;
        char err[256] = "";
        cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_EINVAL, "%s", cases[i].var);
        cr_assert(strncmp(err, cases[i].name, strlen(cases[i].name)) == 0, "%s: got '%s'",
                  cases[i].var, err);
    }
}

Test(gw_config, connection_limits_are_read)
{
    gw_opts o;
    char err[256] = "";
    const char *env[] = {"NATTER_HTTP_MAX_CONN=100", "NATTER_HTTP_MAX_CONN_PER_IP=20",
                         "NATTER_HTTP_IDLE_TIMEOUT_S=2", NULL};
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.max_conn, 100);
    cr_assert_eq(o.max_conn_per_ip, 20);
    cr_assert_eq(o.idle_timeout_s, 2);
}

Test(gw_config, max_conn_below_the_thread_count_is_refused)
{
    /* MHD splits the limit between the workers: one with none never accepts. */
    gw_opts o;
    char err[256] = "";
    const char *env[] = {"NATTER_HTTP_MAX_CONN=3", "NATTER_GATEWAY_THREADS=4", NULL};
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_EINVAL);
    cr_assert(strncmp(err, "NATTER_HTTP_MAX_CONN:", 21) == 0, "got '%s'", err);
    const char *ok[] = {"NATTER_HTTP_MAX_CONN=4", "NATTER_GATEWAY_THREADS=4", NULL};
    cr_assert_eq(read_env(ok, &o, err, sizeof(err)), NT_OK, "%s", err);
}

Test(gw_config, no_per_ip_connection_limit_behind_a_proxy_unless_set)
{
    gw_opts o;
    char err[256] = "";
    const char *env[] = {"NATTER_TRUST_PROXY=true", NULL};
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.max_conn_per_ip, 0, "every connection comes from the proxy");
    const char *set[] = {"NATTER_TRUST_PROXY=true", "NATTER_HTTP_MAX_CONN_PER_IP=500", NULL};
    cr_assert_eq(read_env(set, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.max_conn_per_ip, 500);
}
