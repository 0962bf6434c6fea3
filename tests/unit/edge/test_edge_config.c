/* Unit tests of the edge's configuration table and its checks: the defaults,
 * values read through, bad values named by their variable, the typing timeout
 * that must outlast the debounce, and the token variables checked together. */
#include "../../../services/edge/edge.h"

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

/* Loads env and reads it; returns the first failing status (err filled).
 * The strings of *opts point into the config, which is gone on return, so
 * callers compare them through read_str instead. */
static nt_status read_env(const char *const *env, edge_opts *opts, char *err, size_t errlen)
{
    nt_config *cfg = NULL;
    nt_status st = nt_config_load(edge_config_specs, edge_config_nspecs, lookup, (void *)env, &cfg,
                                  err, errlen);
    if (st == NT_OK)
        st = edge_config_read(cfg, opts, err, errlen);
    nt_config_destroy(cfg);
    return st;
}

/* Asserts that env is refused with a message that starts with "<name>:". */
static void refused(const char *const *env, const char *name)
{
    edge_opts o;
    char err[256] = "";
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_EINVAL, "%s should be refused", env[0]);
    size_t n = strlen(name);
    cr_assert(strncmp(err, name, n) == 0 && err[n] == ':', "%s: message '%s' should name %s",
              env[0], err, name);
}

Test(edge_config, defaults)
{
    const char *env[] = {NULL};
    edge_opts o;
    memset(&o, 0xEE, sizeof(o));
    char err[256] = "";
    nt_config *cfg = NULL;
    cr_assert_eq(nt_config_load(edge_config_specs, edge_config_nspecs, lookup, (void *)env, &cfg,
                                err, sizeof(err)),
                 NT_OK, "%s", err);
    cr_assert_eq(edge_config_read(cfg, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(o.nats_url, "nats://127.0.0.1:4222");
    cr_assert_null(o.addr, "every interface by default");
    cr_assert_eq(o.port, 4000);
    cr_assert_eq(o.max_sockets, 100000);
    cr_assert_eq(o.max_message, 65536);
    cr_assert_eq(o.max_queue_bytes, 1048576);
    cr_assert_eq(o.idle_timeout_s, 60);
    cr_assert_eq(o.frame_rate, 50);
    cr_assert_eq(o.frame_burst, 200);
    cr_assert_eq(o.catchup_max, 500);
    cr_assert_eq(o.typing_debounce_ms, 2000);
    cr_assert_eq(o.typing_timeout_ms, 6000);
    cr_assert_eq(o.request_timeout_ms, 5000);
    cr_assert_eq(o.drain_ms, 3000);
    cr_assert_eq(o.presence_interval_ms, 10000);
    cr_assert_eq(o.presence_state_max, 262144);
    cr_assert_str_eq(nt_config_str(cfg, "NATTER_LOG_LEVEL"), "info");
    nt_config_destroy(cfg);
    for (size_t i = 0; i < edge_config_nspecs; i++)
        cr_assert(edge_config_specs[i].help != NULL && edge_config_specs[i].help[0] != '\0',
                  "%s has no help", edge_config_specs[i].name);
}

Test(edge_config, values_are_read)
{
    const char *env[] = {"NATS_URL=nats://a:1,nats://b:2",
                         "EDGE_ADDR=127.0.0.1",
                         "EDGE_PORT=4100",
                         "EDGE_MAX_SOCKETS=10",
                         "EDGE_MAX_MESSAGE_BYTES=2048",
                         "EDGE_MAX_QUEUE_BYTES=131072",
                         "EDGE_IDLE_TIMEOUT_S=30",
                         "EDGE_FRAME_RATE=5",
                         "EDGE_FRAME_BURST=7",
                         "EDGE_CATCHUP_MAX=0",
                         "EDGE_TYPING_DEBOUNCE_MS=0",
                         "EDGE_TYPING_TIMEOUT_MS=500",
                         "EDGE_REQUEST_TIMEOUT_MS=100",
                         "EDGE_DRAIN_MS=0",
                         "EDGE_PRESENCE_INTERVAL_MS=500",
                         "EDGE_PRESENCE_STATE_MAX_BYTES=65536",
                         NULL};
    edge_opts o;
    char err[256] = "";
    nt_config *cfg = NULL;
    cr_assert_eq(nt_config_load(edge_config_specs, edge_config_nspecs, lookup, (void *)env, &cfg,
                                err, sizeof(err)),
                 NT_OK, "%s", err);
    cr_assert_eq(edge_config_read(cfg, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(o.nats_url, "nats://a:1,nats://b:2");
    cr_assert_str_eq(o.addr, "127.0.0.1");
    cr_assert_eq(o.port, 4100);
    cr_assert_eq(o.max_sockets, 10);
    cr_assert_eq(o.max_message, 2048);
    cr_assert_eq(o.max_queue_bytes, 131072);
    cr_assert_eq(o.idle_timeout_s, 30);
    cr_assert_eq(o.frame_rate, 5);
    cr_assert_eq(o.frame_burst, 7);
    cr_assert_eq(o.catchup_max, 0);
    cr_assert_eq(o.typing_debounce_ms, 0);
    cr_assert_eq(o.typing_timeout_ms, 500);
    cr_assert_eq(o.request_timeout_ms, 100);
    cr_assert_eq(o.drain_ms, 0);
    cr_assert_eq(o.presence_interval_ms, 500);
    cr_assert_eq(o.presence_state_max, 65536);
    nt_config_destroy(cfg);
}

Test(edge_config, empty_addr_means_every_interface)
{
    const char *env[] = {"EDGE_ADDR=", NULL};
    edge_opts o;
    char err[256] = "";
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_null(o.addr);
}

Test(edge_config, bad_values_name_their_variable)
{
    struct {
        const char *var;
        const char *name;
    } cases[] = {
        {"EDGE_PORT=0", "EDGE_PORT"},
        {"EDGE_PORT=65536", "EDGE_PORT"},
        {"EDGE_PORT=abc", "EDGE_PORT"},
        {"EDGE_PORT=40 00", "EDGE_PORT"},
        {"EDGE_MAX_SOCKETS=0", "EDGE_MAX_SOCKETS"},
        {"EDGE_MAX_MESSAGE_BYTES=1023", "EDGE_MAX_MESSAGE_BYTES"},
        {"EDGE_MAX_MESSAGE_BYTES=1048577", "EDGE_MAX_MESSAGE_BYTES"},
        {"EDGE_MAX_QUEUE_BYTES=65535", "EDGE_MAX_QUEUE_BYTES"},
        {"EDGE_IDLE_TIMEOUT_S=4", "EDGE_IDLE_TIMEOUT_S"},
        {"EDGE_IDLE_TIMEOUT_S=3601", "EDGE_IDLE_TIMEOUT_S"},
        {"EDGE_FRAME_RATE=0", "EDGE_FRAME_RATE"},
        {"EDGE_FRAME_BURST=-1", "EDGE_FRAME_BURST"},
        {"EDGE_CATCHUP_MAX=10001", "EDGE_CATCHUP_MAX"},
        {"EDGE_TYPING_DEBOUNCE_MS=x", "EDGE_TYPING_DEBOUNCE_MS"},
        {"EDGE_TYPING_TIMEOUT_MS=499", "EDGE_TYPING_TIMEOUT_MS"},
        {"EDGE_REQUEST_TIMEOUT_MS=99", "EDGE_REQUEST_TIMEOUT_MS"},
        {"EDGE_DRAIN_MS=60001", "EDGE_DRAIN_MS"},
        {"EDGE_PRESENCE_INTERVAL_MS=499", "EDGE_PRESENCE_INTERVAL_MS"},
        {"EDGE_PRESENCE_INTERVAL_MS=20001", "EDGE_PRESENCE_INTERVAL_MS"},
        {"EDGE_PRESENCE_STATE_MAX_BYTES=4095", "EDGE_PRESENCE_STATE_MAX_BYTES"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {cases[i].var, NULL};
        refused(env, cases[i].name);
    }
}

Test(edge_config, typing_timeout_must_outlast_the_debounce)
{
    /* Equal: typing would end just as the next start is let through. */
    const char *equal[] = {"EDGE_TYPING_TIMEOUT_MS=2000", NULL};
    refused(equal, "EDGE_TYPING_TIMEOUT_MS");
    const char *shorter[] = {"EDGE_TYPING_DEBOUNCE_MS=6001", NULL}; /* timeout stays 6000 */
    refused(shorter, "EDGE_TYPING_TIMEOUT_MS");
    const char *both[] = {"EDGE_TYPING_DEBOUNCE_MS=1000", "EDGE_TYPING_TIMEOUT_MS=999", NULL};
    refused(both, "EDGE_TYPING_TIMEOUT_MS");
    const char *ok[] = {"EDGE_TYPING_DEBOUNCE_MS=1999", "EDGE_TYPING_TIMEOUT_MS=2000", NULL};
    edge_opts o;
    char err[256] = "";
    cr_assert_eq(read_env(ok, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.typing_debounce_ms, 1999);
    cr_assert_eq(o.typing_timeout_ms, 2000);
}

Test(edge_config, the_presence_state_cap_fits_half_a_socket_queue)
{
    edge_opts o;
    char err[256] = "";
    const char *over[] = {"EDGE_MAX_QUEUE_BYTES=131072", NULL}; /* default cap 262144 */
    cr_assert_eq(read_env(over, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.presence_state_max, 65536);
    const char *below[] = {"EDGE_MAX_QUEUE_BYTES=131072", "EDGE_PRESENCE_STATE_MAX_BYTES=8192",
                           NULL};
    cr_assert_eq(read_env(below, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.presence_state_max, 8192);
}

Test(edge_config, clerk_mode_without_issuer_is_refused)
{
    const char *keys[] = {"CLERK_JWT_KEY=-----BEGIN PUBLIC KEY-----",
                          "CLERK_JWKS_URL=https://x.example/jwks", "CLERK_SECRET_KEY=sk_test_x"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *env[] = {keys[i], NULL};
        refused(env, "CLERK_ISSUER_URL");
    }
    const char *not_url[] = {"CLERK_ISSUER_URL=clerk.example", NULL};
    refused(not_url, "CLERK_ISSUER_URL");
    const char *bad_jwks[] = {"CLERK_ISSUER_URL=https://x.clerk.accounts.dev",
                              "CLERK_JWKS_URL=x.example/jwks", NULL};
    refused(bad_jwks, "CLERK_JWKS_URL");
}

Test(edge_config, clerk_mode_with_issuer_is_accepted)
{
    const char *env[] = {"CLERK_ISSUER_URL=https://x.clerk.accounts.dev",
                         "CLERK_SECRET_KEY=sk_test_x", NULL};
    edge_opts o;
    char err[256] = "";
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_eq(o.port, 4000);
}

Test(edge_config, failure_leaves_opts_untouched)
{
    /* Out-parameters are written only on success. */
    const char *env[] = {"EDGE_TYPING_TIMEOUT_MS=2000", NULL};
    edge_opts o, before;
    memset(&o, 0x5A, sizeof(o));
    memcpy(&before, &o, sizeof(o));
    char err[256] = "";
    cr_assert_eq(read_env(env, &o, err, sizeof(err)), NT_EINVAL);
    cr_assert(memcmp(&o, &before, sizeof(o)) == 0);
}
