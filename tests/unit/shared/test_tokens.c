/* Unit tests of nt_tokens: Clerk or local mode, the configuration check and
 * the verifier options each configuration means. No network, no broker. */
#include "nt_tokens.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const nt_cfg_spec specs[] = {NT_TOKEN_CONFIG_SPECS};

/* The lookup passed to nt_config_load: ctx is a NULL-terminated list of
 * "NAME=value" strings. */
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

static nt_config *load(const char *const *env)
{
    nt_config *cfg = NULL;
    char err[256] = "";
    nt_status st = nt_config_load(specs, sizeof(specs) / sizeof(specs[0]), lookup, (void *)env,
                                  &cfg, err, sizeof(err));
    cr_assert_eq(st, NT_OK, "config load failed: %s", err);
    return cfg;
}

Test(nt_tokens, local_mode_when_no_clerk_variable_is_set)
{
    const char *env[] = {"CLERK_AUTHORIZED_PARTIES=http://localhost:5173",
                         "CLERK_ISSUER_URL=", NULL};
    nt_config *cfg = load(env);
    cr_assert_not(nt_tokens_clerk_mode(cfg), "parties alone and empty values are not Clerk mode");
    char err[256] = "";
    cr_assert_eq(nt_tokens_check_config(cfg, err, sizeof(err)), NT_OK);
    cr_assert_str_eq(nt_config_str(cfg, "NATTER_LOCAL_ISSUER"), "https://natter.local");
    nt_config_destroy(cfg);
}

Test(nt_tokens, each_clerk_key_variable_turns_clerk_mode_on)
{
    const char *vars[] = {
        "CLERK_ISSUER_URL=https://a.clerk.accounts.dev", "CLERK_JWT_KEY=-----BEGIN PUBLIC KEY-----",
        "CLERK_JWKS_URL=https://a.example/jwks.json", "CLERK_SECRET_KEY=sk_test_x"};
    for (size_t i = 0; i < 4; i++) {
        const char *env[] = {vars[i], NULL};
        nt_config *cfg = load(env);
        cr_assert(nt_tokens_clerk_mode(cfg), "%s should select Clerk mode", vars[i]);
        nt_config_destroy(cfg);
    }
}

Test(nt_tokens, clerk_mode_without_issuer_is_a_config_error_naming_it)
{
    const char *env[] = {"CLERK_SECRET_KEY=sk_test_x", NULL};
    nt_config *cfg = load(env);
    char err[256] = "";
    cr_assert_eq(nt_tokens_check_config(cfg, err, sizeof(err)), NT_EINVAL);
    cr_assert(strncmp(err, "CLERK_ISSUER_URL:", 17) == 0, "got '%s'", err);
    cr_assert_null(strstr(err, "sk_test_x"), "never echo the secret");
    nt_config_destroy(cfg);
}

Test(nt_tokens, issuer_and_jwks_url_must_be_http_urls)
{
    char err[256] = "";
    const char *bad_iss[] = {"CLERK_ISSUER_URL=a.clerk.accounts.dev", NULL};
    nt_config *cfg = load(bad_iss);
    cr_assert_eq(nt_tokens_check_config(cfg, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "CLERK_ISSUER_URL") != NULL, "got '%s'", err);
    nt_config_destroy(cfg);

    const char *bad_jwks[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev",
                              "CLERK_JWKS_URL=ftp://x/jwks", NULL};
    cfg = load(bad_jwks);
    cr_assert_eq(nt_tokens_check_config(cfg, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "CLERK_JWKS_URL") != NULL, "got '%s'", err);
    nt_config_destroy(cfg);

    const char *good[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev", NULL};
    cfg = load(good);
    cr_assert_eq(nt_tokens_check_config(cfg, err, sizeof(err)), NT_OK);
    nt_config_destroy(cfg);
}

Test(nt_tokens, clerk_pem_key_wins_over_any_jwks)
{
    const char *env[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev", "CLERK_JWT_KEY=PEMTEXT",
                         "CLERK_JWKS_URL=https://x/jwks",
                         "CLERK_AUTHORIZED_PARTIES=https://app.example", NULL};
    nt_config *cfg = load(env);
    nt_tokens_setup s;
    char err[256] = "";
    cr_assert_eq(nt_tokens_setup_make(cfg, NULL, &s, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert(s.clerk);
    cr_assert_str_eq(s.opts.jwt_key_pem, "PEMTEXT");
    cr_assert_null(s.opts.jwks_url);
    cr_assert_null(s.opts.fetch);
    cr_assert_str_eq(s.opts.issuer, "https://a.clerk.accounts.dev");
    cr_assert_str_eq(s.opts.authorized_parties, "https://app.example");
    nt_config_destroy(cfg);
}

Test(nt_tokens, clerk_default_jwks_is_under_the_issuer_without_bearer)
{
    const char *env[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev/",
                         "CLERK_SECRET_KEY=sk_test_x", NULL};
    nt_config *cfg = load(env);
    nt_tokens_setup s;
    char err[256] = "";
    cr_assert_eq(nt_tokens_setup_make(cfg, NULL, &s, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(s.opts.issuer, "https://a.clerk.accounts.dev", "trailing slash trimmed");
    cr_assert_str_eq(s.opts.jwks_url, "https://a.clerk.accounts.dev/.well-known/jwks.json");
    cr_assert_null(s.opts.jwks_bearer, "the secret key goes to api.clerk.com only");
    cr_assert_null(s.opts.authorized_parties);
    nt_config_destroy(cfg);
}

Test(nt_tokens, clerk_backend_api_jwks_gets_the_secret_key_as_bearer)
{
    const char *env[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev",
                         "CLERK_JWKS_URL=https://api.clerk.com/v1/jwks",
                         "CLERK_SECRET_KEY=sk_test_x", NULL};
    nt_config *cfg = load(env);
    nt_tokens_setup s;
    char err[256] = "";
    cr_assert_eq(nt_tokens_setup_make(cfg, NULL, &s, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_str_eq(s.opts.jwks_url, "https://api.clerk.com/v1/jwks");
    cr_assert_str_eq(s.opts.jwks_bearer, "sk_test_x");
    nt_config_destroy(cfg);

    /* A look-alike host must not receive the key. */
    const char *env2[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev",
                          "CLERK_JWKS_URL=https://api.clerk.com.evil.example/v1/jwks",
                          "CLERK_SECRET_KEY=sk_test_x", NULL};
    cfg = load(env2);
    cr_assert_eq(nt_tokens_setup_make(cfg, NULL, &s, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_null(s.opts.jwks_bearer);
    nt_config_destroy(cfg);
}

Test(nt_tokens, local_mode_fetches_over_nats_with_the_local_issuer)
{
    const char *env[] = {"NATTER_LOCAL_ISSUER=https://chat.example", NULL};
    nt_config *cfg = load(env);
    nt_tokens_setup s;
    char err[256] = "";
    nt_nats *fake = (nt_nats *)(void *)&s; /* only stored, never used here */
    cr_assert_eq(nt_tokens_setup_make(cfg, fake, &s, err, sizeof(err)), NT_OK, "%s", err);
    cr_assert_not(s.clerk);
    cr_assert_str_eq(s.opts.issuer, "https://chat.example");
    cr_assert_not_null(s.opts.fetch);
    cr_assert_eq(s.opts.fetch_ctx, (void *)fake);
    cr_assert_null(s.opts.jwt_key_pem);
    cr_assert_null(s.opts.jwks_url);
    nt_config_destroy(cfg);
}

Test(nt_tokens, unwraps_the_jwks_from_the_data_envelope)
{
    const char *env = "{\"data\":{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\"}]}}";
    char *json = NULL;
    size_t len = 0;
    cr_assert_eq(nt_tokens_unwrap_jwks(env, strlen(env), &json, &len), NT_OK);
    cr_assert_str_eq(json, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\"}]}");
    cr_assert_eq(len, strlen(json));
    free(json);
}

Test(nt_tokens, refuses_error_envelopes_and_non_jwks)
{
    const char *bad[] = {
        "{\"error\":{\"code\":\"internal\",\"message\":\"x\"}}",
        "{\"data\":{}}",
        "{\"data\":{\"keys\":{}}}",
        "{\"data\":[1]}",
        "{\"data\":",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *json = (char *)"untouched";
        size_t len = 7;
        cr_assert_eq(nt_tokens_unwrap_jwks(bad[i], strlen(bad[i]), &json, &len), NT_EUNAVAIL,
                     "case %zu", i);
        cr_assert_str_eq(json, "untouched", "outputs written only on success");
    }
    char *json = NULL;
    size_t len = 0;
    cr_assert_eq(nt_tokens_unwrap_jwks(NULL, 0, &json, &len), NT_EUNAVAIL);
}

Test(nt_tokens, jwks_modes_prefetch_and_never_make_a_caller_wait)
{
    const char *local[] = {NULL};
    const char *clerk[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev", NULL};
    const char *const *envs[] = {local, clerk};
    for (size_t i = 0; i < 2; i++) {
        nt_config *cfg = load(envs[i]);
        nt_tokens_setup s;
        char err[256] = "";
        cr_assert_eq(nt_tokens_setup_make(cfg, NULL, &s, err, sizeof(err)), NT_OK, "%s", err);
        cr_assert(s.opts.prefetch, "case %zu", i);
        cr_assert_eq(s.opts.fetch_wait_ms, 0, "case %zu", i);
        nt_config_destroy(cfg);
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* nc = NULL: every local fetch fails at once (there is no broker in unit
 * tests), which still shows the verifier fetching without a token and
 * answering a token that needs keys without blocking. */
Test(nt_tokens, local_mode_verifier_prefetches_and_never_blocks_the_caller)
{
    const char *env[] = {NULL};
    nt_config *cfg = load(env);
    nt_verifier *v = NULL;
    cr_assert_eq(nt_tokens_verifier_create(cfg, NULL, &v), NT_OK);
    cr_assert_not_null(v);

    EVP_PKEY *key = EVP_RSA_gen(2048);
    cr_assert_not_null(key);
    char *tok = NULL;
    cr_assert_eq(nt_jwt_sign_rs256(key, "{\"alg\":\"RS256\",\"kid\":\"ins_x\"}",
                                   "{\"iss\":\"https://natter.local\",\"sub\":\"user_1\","
                                   "\"exp\":4102444800}",
                                   &tok),
                 NT_OK);
    for (int i = 0; i < 3; i++) {
        nt_claims c;
        char reason[128] = "";
        int64_t t0 = mono_ms();
        nt_status st = nt_verifier_verify(v, tok, strlen(tok), &c, reason, sizeof(reason));
        int64_t took = mono_ms() - t0;
        cr_assert_eq(st, NT_EUNAVAIL, "got %d (%s)", st, reason);
        cr_assert_lt(took, 100, "verify blocked for %lld ms", (long long)took);
    }
    int64_t end = mono_ms() + 2000;
    while (nt_verifier_fetch_count(v) < 1 && mono_ms() < end) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_geq(nt_verifier_fetch_count(v), 1, "the prefetch never ran");
    int64_t t0 = mono_ms();
    nt_verifier_destroy(v);
    cr_assert_lt(mono_ms() - t0, 500, "destroy waited for the retry back-off");
    free(tok);
    EVP_PKEY_free(key);
    nt_config_destroy(cfg);
}

Test(nt_tokens, logs_the_jwks_url_without_its_credentials)
{
    const char *env[] = {"CLERK_ISSUER_URL=https://a.clerk.accounts.dev",
                         "CLERK_JWKS_URL=http://bob:hunter2@127.0.0.1:1/jwks.json", NULL};
    nt_config *cfg = load(env);
    char path[] = "/tmp/nt_tokens_log_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    int saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
    nt_verifier *v = NULL;
    nt_status st = nt_tokens_verifier_create(cfg, NULL, &v);
    nt_verifier_destroy(v);
    dup2(saved, STDERR_FILENO);
    close(saved);
    cr_assert_eq(st, NT_OK);

    char log[8192];
    ssize_t n = pread(fd, log, sizeof(log) - 1, 0);
    close(fd);
    unlink(path);
    cr_assert_gt(n, 0);
    log[n] = '\0';
    cr_assert_not_null(strstr(log, "keys=http://127.0.0.1:1/jwks.json "), "log: %s", log);
    cr_assert_null(strstr(log, "hunter2"), "log: %s", log);
    cr_assert_null(strstr(log, "bob"), "log: %s", log);
    nt_config_destroy(cfg);
}
