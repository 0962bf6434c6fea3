/* Unit tests for nt_jwt: the Clerk token verifier (header checks before any
 * key or signature code, JWKS caching and refetch cool-down, claims with clock
 * skew), token extraction, signing, JWKs and key files. Keys are generated here,
 * the clock is faked and the JWKS comes from a counting in-memory fetcher. */
#include "nt_jwt.h"

#include "nt_b64.h"
#include "nt_clock.h"
#include "nt_http.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ISS     "https://test.clerk.accounts.dev"
#define AZP     "http://localhost:5173"
#define T0_MS   INT64_C(1713158400000)
#define KID_A   "ins_a"
#define KID_B   "ins_b"
#define REASONS 128
/* Tests that predate the fetch thread wait this long for it, which keeps their
 * synchronous semantics (the fake fetch is instant). */
#define SYNC_WAIT_MS 10000
#define FETCHING     "signing keys are being fetched; retry"

/* ---- Fixtures ---------------------------------------------------------------- */

static int64_t fake_ms = T0_MS;
static int64_t fake_now(void)
{
    return fake_ms;
}

static int64_t now_s(void)
{
    return fake_ms / 1000;
}

static EVP_PKEY *key_a, *key_b;

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    cr_assert_not_null(k);
    return k;
}

static void setup(void)
{
    fake_ms = T0_MS;
    nt_clock_set_fake(fake_now);
    key_a = new_key();
}

static void teardown(void)
{
    nt_clock_set_fake(NULL);
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    key_a = key_b = NULL;
}

TestSuite(jwt, .init = setup, .fini = teardown);

/* A JWKS fetcher that counts its calls and serves whatever jwks holds. It
 * runs on the verifier's fetch thread: mu guards every field, and while hold
 * is set a call blocks (after counting itself) until fake_hold(f, false). */
typedef struct {
    int calls;
    char *jwks;
    nt_status fail; /* returned instead when not NT_OK */
    int delay_ms;
    bool hold;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} fake_jwks;

static nt_status fake_fetch(void *ctx, char **json, size_t *len)
{
    fake_jwks *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    while (f->hold)
        pthread_cond_wait(&f->cv, &f->mu);
    int delay_ms = f->delay_ms;
    nt_status fail = f->fail;
    char *copy = fail == NT_OK ? strdup(f->jwks) : NULL;
    pthread_mutex_unlock(&f->mu);
    if (delay_ms > 0) {
        struct timespec ts = {0, (long)delay_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (fail != NT_OK)
        return fail;
    cr_assert_not_null(copy);
    *json = copy;
    *len = strlen(copy);
    return NT_OK;
}

/* {"keys":[jwk(k1,kid1), jwk(k2,kid2)]}; k2 may be NULL. */
static char *jwks_of(EVP_PKEY *k1, const char *kid1, EVP_PKEY *k2, const char *kid2)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "keys");
    cJSON *jwk = NULL;
    cr_assert_eq(nt_jwk_from_key(k1, kid1, &jwk), NT_OK);
    cJSON_AddItemToArray(arr, jwk);
    if (k2 != NULL) {
        cr_assert_eq(nt_jwk_from_key(k2, kid2, &jwk), NT_OK);
        cJSON_AddItemToArray(arr, jwk);
    }
    char *s = nt_json_print(doc);
    cJSON_Delete(doc);
    return s;
}

static void fake_init(fake_jwks *f, char *jwks)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->jwks = jwks;
}

static void fake_set(fake_jwks *f, char *jwks)
{
    pthread_mutex_lock(&f->mu);
    free(f->jwks);
    f->jwks = jwks;
    pthread_mutex_unlock(&f->mu);
}

static void fake_fail(fake_jwks *f, nt_status st)
{
    pthread_mutex_lock(&f->mu);
    f->fail = st;
    pthread_mutex_unlock(&f->mu);
}

static void fake_hold(fake_jwks *f, bool hold)
{
    pthread_mutex_lock(&f->mu);
    f->hold = hold;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int fake_calls(fake_jwks *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void fake_fini(fake_jwks *f)
{
    free(f->jwks);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

static nt_verifier_opts jwks_opts(fake_jwks *f)
{
    nt_verifier_opts o = {
        .fetch = fake_fetch, .fetch_ctx = f, .issuer = ISS, .fetch_wait_ms = SYNC_WAIT_MS};
    return o;
}

/* Real (monotonic) milliseconds, for timing the verifier's thread. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until the verifier has completed at least n fetches; false after
 * timeout_ms of real time. */
static bool wait_fetches(nt_verifier *v, unsigned n, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (nt_verifier_fetch_count(v) < n) {
        if (mono_ms() >= end)
            return false;
        sleep_ms(5);
    }
    return true;
}

/* Polls until the fake fetcher has been entered n times. */
static bool wait_calls(fake_jwks *f, int n, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (fake_calls(f) < n) {
        if (mono_ms() >= end)
            return false;
        sleep_ms(5);
    }
    return true;
}

static nt_verifier *make_verifier(const nt_verifier_opts *o)
{
    nt_verifier *v = NULL;
    cr_assert_eq(nt_verifier_create(o, &v), NT_OK);
    cr_assert_not_null(v);
    return v;
}

/* A verifier whose JWKS holds key_a as KID_A. */
static nt_verifier *verifier_a(fake_jwks *f, const char *parties)
{
    fake_init(f, jwks_of(key_a, KID_A, NULL, NULL));
    nt_verifier_opts o = jwks_opts(f);
    o.authorized_parties = parties;
    return make_verifier(&o);
}

static char *public_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert_eq(PEM_write_bio_PUBKEY(bio, k), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = strndup(data, (size_t)n);
    BIO_free(bio);
    return pem;
}

/* ---- Tokens ----------------------------------------------------------------- */

static char *header_json(const char *kid)
{
    static char buf[256];
    if (kid == NULL)
        snprintf(buf, sizeof buf, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    else
        snprintf(buf, sizeof buf, "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
    return buf;
}

/* A Clerk v2 payload around the fake now, with extra members appended. */
static char *payload_json(const char *extra)
{
    static char buf[2048];
    int64_t t = now_s();
    snprintf(
        buf, sizeof buf,
        "{\"azp\":\"" AZP "\",\"exp\":%lld,\"iat\":%lld,\"iss\":\"" ISS
        "\",\"nbf\":%lld,\"sid\":\"sess_123\",\"sub\":\"user_123\",\"v\":2,\"fva\":[7,-1]%s%s}",
        (long long)(t + 60), (long long)t, (long long)(t - 10), extra ? "," : "",
        extra ? extra : "");
    return buf;
}

/* A payload with exactly these members (for claim tests). */
static char *claims_json(const char *fmt, long long a, long long b, long long c)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, fmt, a, b, c);
    return buf;
}

static char *sign(EVP_PKEY *k, const char *header, const char *payload)
{
    char *tok = NULL;
    cr_assert_eq(nt_jwt_sign_rs256(k, header, payload, &tok), NT_OK);
    cr_assert_not_null(tok);
    return tok;
}

static char *mint(EVP_PKEY *k, const char *kid, const char *payload)
{
    return sign(k, header_json(kid), payload);
}

/* header and payload JSON base64url-encoded here, signature part verbatim. */
static char *raw_token(const char *header, const char *payload, const char *sig)
{
    char *h = nt_b64url_encode(header, strlen(header));
    char *p = nt_b64url_encode(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + strlen(sig) + 3;
    char *t = malloc(n);
    snprintf(t, n, "%s.%s.%s", h, p, sig);
    free(h);
    free(p);
    return t;
}

static nt_status check(nt_verifier *v, const char *tok, nt_claims *c, char *reason)
{
    memset(c, 0x5a, sizeof *c);
    return nt_verifier_verify(v, tok, strlen(tok), c, reason, REASONS);
}

static void expect_ok(nt_verifier *v, const char *tok)
{
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_OK, "refused: %s", reason);
    cr_assert_str_eq(c.sub, "user_123");
}

/* Refused with exactly this reason, and the reason never echoes the token. */
static void expect_refused(nt_verifier *v, const char *tok, const char *want)
{
    nt_claims c, untouched;
    char reason[REASONS];
    nt_status st = check(v, tok, &c, reason);
    memset(&untouched, 0x5a, sizeof untouched);
    cr_assert_eq(st, NT_EUNAUTH, "status %d for '%s' (reason %s)", st, want, reason);
    cr_assert_str_eq(reason, want);
    cr_assert_eq(memcmp(&c, &untouched, sizeof c), 0, "claims written on failure");
    if (strlen(tok) >= 8) {
        char head[9];
        memcpy(head, tok, 8);
        head[8] = '\0';
        cr_assert_null(strstr(reason, head));
    }
}

/* ---- Happy path --------------------------------------------------------------- */

Test(jwt, accepts_a_valid_token_and_fills_the_claims)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, AZP);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_OK, "refused: %s", reason);
    cr_assert_str_eq(c.sub, "user_123");
    cr_assert_str_eq(c.sid, "sess_123");
    cr_assert_str_eq(c.azp, AZP);
    cr_assert_eq(c.exp, now_s() + 60);
    cr_assert_eq(c.iat, now_s());
    cr_assert_eq(c.nbf, now_s() - 10);
    cr_assert_str_eq(reason, "");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, leaves_absent_optional_claims_empty)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(
        key_a, KID_A,
        claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"user_9\"}", now_s() + 30, 0, 0));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_OK, "refused: %s", reason);
    cr_assert_str_eq(c.sub, "user_9");
    cr_assert_str_eq(c.sid, "");
    cr_assert_str_eq(c.azp, "");
    cr_assert_eq(c.iat, 0);
    cr_assert_eq(c.nbf, 0);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, fetches_lazily_and_caches_the_keys)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    cr_assert_eq(f.calls, 0, "created without a token, yet fetched");
    cr_assert_eq(nt_verifier_fetch_count(v), 0);
    for (int i = 0; i < 3; i++) {
        char *tok = mint(key_a, KID_A, payload_json(NULL));
        expect_ok(v, tok);
        free(tok);
        fake_ms += 90 * 1000; /* past the cool-down: a known kid still needs no fetch */
    }
    cr_assert_eq(f.calls, 1);
    cr_assert_eq(nt_verifier_fetch_count(v), 1);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* ---- Time claims -------------------------------------------------------------- */

static const char *const TIME_FMT =
    "{\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,\"iss\":\"" ISS "\",\"sub\":\"user_123\"}";

Test(jwt, refuses_an_expired_token)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    fake_ms += 120 * 1000;
    expect_refused(v, tok, "token expired");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_nbf_in_the_future)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    long long t = now_s();
    char *tok = mint(key_a, KID_A, claims_json(TIME_FMT, t + 600, t + 60, t - 1));
    expect_refused(v, tok, "token not yet valid");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_iat_in_the_future)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    long long t = now_s();
    char *tok = mint(key_a, KID_A, claims_json(TIME_FMT, t + 600, t - 10, t + 60));
    expect_refused(v, tok, "token issued in the future");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, allows_five_seconds_of_clock_skew_and_no_more)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    long long t = now_s();
    char *tok;

    /* Inside the skew on every side at once. */
    tok = mint(key_a, KID_A, claims_json(TIME_FMT, t - 4, t + 5, t + 5));
    expect_ok(v, tok);
    free(tok);
    /* exp <= now - skew is expired. */
    tok = mint(key_a, KID_A, claims_json(TIME_FMT, t - 5, t - 10, t - 10));
    expect_refused(v, tok, "token expired");
    free(tok);
    tok = mint(key_a, KID_A, claims_json(TIME_FMT, t + 60, t + 6, t));
    expect_refused(v, tok, "token not yet valid");
    free(tok);
    tok = mint(key_a, KID_A, claims_json(TIME_FMT, t + 60, t, t + 6));
    expect_refused(v, tok, "token issued in the future");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, honours_a_configured_skew)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    nt_verifier_opts o = jwks_opts(&f);
    o.skew_s = 30;
    nt_verifier *v = make_verifier(&o);
    long long t = now_s();
    char *tok = mint(key_a, KID_A, claims_json(TIME_FMT, t - 20, t + 25, t + 25));
    expect_ok(v, tok);
    free(tok);
    tok = mint(key_a, KID_A, claims_json(TIME_FMT, t - 30, t, t));
    expect_refused(v, tok, "token expired");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, requires_a_numeric_exp)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, KID_A, "{\"iss\":\"" ISS "\",\"sub\":\"user_123\"}");
    expect_refused(v, tok, "missing exp");
    free(tok);
    tok = mint(key_a, KID_A, "{\"exp\":\"9999999999\",\"iss\":\"" ISS "\",\"sub\":\"user_123\"}");
    expect_refused(v, tok, "invalid exp");
    free(tok);
    tok = mint(key_a, KID_A, "{\"exp\":1e300,\"iss\":\"" ISS "\",\"sub\":\"user_123\"}");
    expect_refused(v, tok, "invalid exp");
    free(tok);
    tok =
        mint(key_a, KID_A,
             claims_json("{\"exp\":%lld,\"nbf\":\"soon\",\"iss\":\"" ISS "\",\"sub\":\"user_123\"}",
                         now_s() + 60, 0, 0));
    expect_refused(v, tok, "invalid nbf");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* ---- iss, azp, sub, sid ------------------------------------------------------ */

Test(jwt, refuses_the_wrong_issuer)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    long long t = now_s();
    char *tok = mint(key_a, KID_A,
                     claims_json("{\"exp\":%lld,\"iss\":\"https://evil.clerk.accounts.dev\","
                                 "\"sub\":\"user_123\"}",
                                 t + 60, 0, 0));
    expect_refused(v, tok, "wrong issuer");
    free(tok);
    /* A prefix of the issuer is not the issuer. */
    tok = mint(key_a, KID_A,
               claims_json("{\"exp\":%lld,\"iss\":\"https://test.clerk.accounts.dev/\","
                           "\"sub\":\"user_123\"}",
                           t + 60, 0, 0));
    expect_refused(v, tok, "wrong issuer");
    free(tok);
    tok = mint(key_a, KID_A, claims_json("{\"exp\":%lld,\"sub\":\"user_123\"}", t + 60, 0, 0));
    expect_refused(v, tok, "wrong issuer");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_wrong_azp_when_parties_are_configured)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, "https://chat.example.com," AZP);
    char *tok = mint(key_a, KID_A,
                     claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":"
                                 "\"user_123\",\"azp\":\"http://localhost:5174\"}",
                                 now_s() + 60, 0, 0));
    expect_refused(v, tok, "unauthorized party");
    free(tok);
    /* Exact match only: no prefix, no case folding. */
    tok = mint(key_a, KID_A,
               claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":"
                           "\"user_123\",\"azp\":\"https://chat.example.co\"}",
                           now_s() + 60, 0, 0));
    expect_refused(v, tok, "unauthorized party");
    free(tok);
    tok = mint(key_a, KID_A,
               claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":"
                           "\"user_123\",\"azp\":\"HTTP://LOCALHOST:5173\"}",
                           now_s() + 60, 0, 0));
    expect_refused(v, tok, "unauthorized party");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_missing_azp_when_parties_are_configured)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, AZP);
    char *tok = mint(
        key_a, KID_A,
        claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"user_123\"}", now_s() + 60, 0, 0));
    expect_refused(v, tok, "unauthorized party");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, accepts_any_listed_party)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, "https://chat.example.com, " AZP " ,https://x.example");
    char *tok = mint(key_a, KID_A, payload_json(NULL)); /* azp is AZP */
    expect_ok(v, tok);
    free(tok);
    tok = mint(key_a, KID_A,
               claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":"
                           "\"user_123\",\"azp\":\"https://chat.example.com\"}",
                           now_s() + 60, 0, 0));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, ignores_azp_when_no_parties_are_configured)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, "");
    char *tok = mint(key_a, KID_A,
                     claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":"
                                 "\"user_123\",\"azp\":\"https://anything.example\"}",
                                 now_s() + 60, 0, 0));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_OK, "refused: %s", reason);
    cr_assert_str_eq(c.azp, "https://anything.example");
    free(tok);
    tok = mint(
        key_a, KID_A,
        claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"user_123\"}", now_s() + 60, 0, 0));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_missing_or_bad_sub)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    static const char *const subs[][2] = {
        {"", "missing sub"},
        {",\"sub\":42", "missing sub"},
        {",\"sub\":null", "missing sub"},
        {",\"sub\":[\"user_1\"]", "missing sub"},
        {",\"sub\":\"\"", "missing sub"},
        {",\"sub\":\"user 1\"", "invalid sub"},
        {",\"sub\":\"user_1\\r\\nX-Evil: 1\"", "invalid sub"},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char payload[512];
        snprintf(payload, sizeof payload, "{\"exp\":%lld,\"iss\":\"" ISS "\"%s}",
                 (long long)now_s() + 60, subs[i][0]);
        char *tok = mint(key_a, KID_A, payload);
        expect_refused(v, tok, subs[i][1]);
        free(tok);
    }
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_sub_longer_than_the_claims_buffer)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char sub[200];
    memset(sub, 'u', sizeof sub - 1);
    sub[sizeof sub - 1] = '\0';
    char payload[512];
    snprintf(payload, sizeof payload, "{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"%s\"}",
             (long long)now_s() + 60, sub);
    char *tok = mint(key_a, KID_A, payload);
    expect_refused(v, tok, "sub too long");
    free(tok);
    /* 127 characters still fit with the NUL. */
    sub[127] = '\0';
    snprintf(payload, sizeof payload, "{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"%s\"}",
             (long long)now_s() + 60, sub);
    tok = mint(key_a, KID_A, payload);
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_OK, "refused: %s", reason);
    cr_assert_str_eq(c.sub, sub);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_sid_that_is_not_a_string)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, KID_A,
                     claims_json("{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"user_123\","
                                 "\"sid\":17}",
                                 now_s() + 60, 0, 0));
    expect_refused(v, tok, "invalid sid");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* ---- Header: alg, typ, cat, kid --------------------------------------------- */

Test(jwt, refuses_alg_none_before_fetching_keys)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = raw_token("{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"" KID_A "\"}",
                          payload_json(NULL), "");
    expect_refused(v, tok, "unsupported alg");
    free(tok);
    tok = raw_token("{\"alg\":\"none\"}", payload_json(NULL), "");
    expect_refused(v, tok, "unsupported alg");
    free(tok);
    cr_assert_eq(f.calls, 0);
    cr_assert_eq(nt_verifier_fetch_count(v), 0);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* The classic key-confusion attack: HS256 keyed with the RSA public key PEM. */
static char *hs256_token(const char *header, const char *payload, const char *secret)
{
    char *unsigned_tok = raw_token(header, payload, "");
    size_t inlen = strlen(unsigned_tok) - 1; /* without the trailing '.' */
    unsigned char mac[64];
    size_t maclen = 0;
    cr_assert_not_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                                 (const unsigned char *)unsigned_tok, inlen, mac, sizeof mac,
                                 &maclen));
    cr_assert_eq(maclen, 32);
    char *sig = nt_b64url_encode(mac, maclen);
    size_t n = strlen(unsigned_tok) + strlen(sig) + 1;
    char *tok = malloc(n);
    snprintf(tok, n, "%s%s", unsigned_tok, sig);
    free(sig);
    free(unsigned_tok);
    return tok;
}

Test(jwt, refuses_hs256_keyed_with_the_public_key)
{
    char *pem = public_pem(key_a);
    nt_verifier_opts o = {.jwt_key_pem = pem, .issuer = ISS};
    nt_verifier *v = make_verifier(&o);
    char *tok = hs256_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload_json(NULL), pem);
    expect_refused(v, tok, "unsupported alg");
    free(tok);
    nt_verifier_destroy(v);

    fake_jwks f;
    v = verifier_a(&f, NULL);
    tok = hs256_token("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"" KID_A "\"}",
                      payload_json(NULL), pem);
    expect_refused(v, tok, "unsupported alg");
    free(tok);
    cr_assert_eq(f.calls, 0);
    nt_verifier_destroy(v);
    fake_fini(&f);
    free(pem);
}

Test(jwt, refuses_every_alg_but_rs256)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    static const char *const headers[] = {
        "{\"alg\":\"RS512\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RS384\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"PS256\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"rs256\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RS256 \",\"kid\":\"" KID_A "\"}",
        "{\"alg\":256,\"kid\":\"" KID_A "\"}",
        "{\"alg\":[\"RS256\"],\"kid\":\"" KID_A "\"}",
        "{\"kid\":\"" KID_A "\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        /* Really signed with key_a, so only the header decides. */
        char *tok = sign(key_a, headers[i], payload_json(NULL));
        expect_refused(v, tok, "unsupported alg");
        free(tok);
    }
    cr_assert_eq(f.calls, 0);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, checks_typ_only_when_present)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = sign(key_a, "{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"" KID_A "\"}",
                     payload_json(NULL));
    expect_refused(v, tok, "unsupported typ");
    free(tok);
    tok = sign(key_a, "{\"alg\":\"RS256\",\"typ\":\"jwt\",\"kid\":\"" KID_A "\"}",
               payload_json(NULL));
    expect_refused(v, tok, "unsupported typ");
    free(tok);
    tok = sign(key_a, "{\"alg\":\"RS256\",\"kid\":\"" KID_A "\"}", payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_machine_tokens_and_ignores_unknown_header_fields)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = sign(key_a,
                     "{\"alg\":\"RS256\",\"cat\":\"cl_B7d4PD333AAA\",\"kid\":\"" KID_A
                     "\",\"typ\":\"JWT\"}",
                     payload_json(NULL));
    expect_refused(v, tok, "machine token");
    free(tok);
    /* A session token's category, "category ignored", and unknown fields pass. */
    tok = sign(key_a,
               "{\"alg\":\"RS256\",\"cat\":\"cl_B7d4PD111AAA\",\"kid\":\"" KID_A
               "\",\"oiat\":1713158400,\"typ\":\"JWT\",\"x-new\":{\"a\":[1]}}",
               payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    tok = sign(key_a, "{\"alg\":\"RS256\",\"cat\":\"cl_I7d4PD111III\",\"kid\":\"" KID_A "\"}",
               payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_duplicate_header_members)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = sign(key_a, "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"" KID_A "\"}",
                     payload_json(NULL));
    expect_refused(v, tok, "malformed token");
    free(tok);
    tok = sign(key_a, "{\"alg\":\"RS256\",\"kid\":\"" KID_A "\",\"crit\":[\"b64\"]}",
               payload_json(NULL));
    expect_refused(v, tok, "unsupported header");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, requires_a_kid_with_jwks)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, NULL, payload_json(NULL));
    expect_refused(v, tok, "missing key id");
    free(tok);
    tok = sign(key_a, "{\"alg\":\"RS256\",\"kid\":7}", payload_json(NULL));
    expect_refused(v, tok, "malformed token");
    free(tok);
    cr_assert_eq(f.calls, 0);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* ---- Keys: unknown kid, cool-down, rotation, PEM ---------------------------- */

Test(jwt, refetches_once_for_an_unknown_kid_then_honours_the_cooldown)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    key_b = new_key();

    char *tok = mint(key_a, KID_A, payload_json(NULL));
    expect_ok(v, tok); /* the lazy first fetch */
    free(tok);
    cr_assert_eq(f.calls, 1);

    /* An unknown kid right after a fetch: refused without fetching. */
    tok = mint(key_b, KID_B, payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    cr_assert_eq(f.calls, 1);

    /* Past the cool-down an unknown kid causes exactly one refetch. */
    fake_ms += 61 * 1000;
    tok = mint(key_b, KID_B, payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    cr_assert_eq(f.calls, 2);
    cr_assert_eq(nt_verifier_fetch_count(v), 2);

    /* A second unknown kid inside the new cool-down: no fetch. */
    fake_ms += 30 * 1000;
    tok = mint(key_b, "ins_c", payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    cr_assert_eq(f.calls, 2);
    cr_assert_eq(nt_verifier_fetch_count(v), 2);

    /* Known keys keep working meanwhile. */
    tok = mint(key_a, KID_A, payload_json(NULL));
    expect_ok(v, tok);
    free(tok);

    /* After the cool-down, one more fetch. */
    fake_ms += 31 * 1000;
    tok = mint(key_b, KID_B, payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    cr_assert_eq(f.calls, 3);
    cr_assert_eq(nt_verifier_fetch_count(v), 3);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, an_unknown_kid_on_the_first_token_fetches_once)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, "ins_other", payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    expect_refused(v, tok, "unknown key id");
    free(tok);
    cr_assert_eq(f.calls, 1);
    cr_assert_eq(nt_verifier_fetch_count(v), 1);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, honours_a_configured_cooldown)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    nt_verifier_opts o = jwks_opts(&f);
    o.refetch_cooldown_s = 5;
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, "ins_zzz", payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    fake_ms += 4 * 1000;
    expect_refused(v, tok, "unknown key id");
    cr_assert_eq(f.calls, 1);
    fake_ms += 1000;
    expect_refused(v, tok, "unknown key id");
    cr_assert_eq(f.calls, 2);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, accepts_a_rotated_key_after_one_refetch)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    key_b = new_key();
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    expect_ok(v, tok);
    free(tok);

    /* Clerk rotates: the JWKS now holds only the new key. */
    fake_set(&f, jwks_of(key_b, KID_B, NULL, NULL));
    fake_ms += 61 * 1000;
    tok = mint(key_b, KID_B, payload_json(NULL));
    expect_ok(v, tok);
    expect_ok(v, tok);
    free(tok);
    cr_assert_eq(f.calls, 2);
    cr_assert_eq(nt_verifier_fetch_count(v), 2);

    /* The retired key left the cache with the refetch. */
    tok = mint(key_a, KID_A, payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    cr_assert_eq(f.calls, 2);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, uses_only_rs256_signing_jwks)
{
    key_b = new_key();
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "keys");
    cJSON *jwk = NULL;
    /* key_a announced for encryption, key_b as RS512: neither may verify. */
    cr_assert_eq(nt_jwk_from_key(key_a, KID_A, &jwk), NT_OK);
    cJSON_ReplaceItemInObject(jwk, "use", cJSON_CreateString("enc"));
    cJSON_AddItemToArray(arr, jwk);
    cr_assert_eq(nt_jwk_from_key(key_b, KID_B, &jwk), NT_OK);
    cJSON_ReplaceItemInObject(jwk, "alg", cJSON_CreateString("RS512"));
    cJSON_AddItemToArray(arr, jwk);
    cJSON_AddItemToArray(arr, cJSON_CreateString("not a key"));
    cJSON_AddItemToArray(arr, cJSON_Parse("{\"kty\":\"EC\",\"kid\":\"ins_ec\",\"crv\":\"P-256\"}"));

    /* Only unusable keys: the fetch counts as failed, nothing verifies. */
    fake_jwks f0;
    fake_init(&f0, nt_json_print(doc));
    nt_verifier_opts o0 = jwks_opts(&f0);
    nt_verifier *v0 = make_verifier(&o0);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v0, tok, &c, reason), NT_EUNAVAIL, "%s", reason);
    cr_assert_not(nt_verifier_ready(v0));
    free(tok);
    nt_verifier_destroy(v0);
    fake_fini(&f0);

    /* Beside one good key, the unusable ones are skipped. */
    cr_assert_eq(nt_jwk_from_key(key_b, "ins_good", &jwk), NT_OK);
    cJSON_AddItemToArray(arr, jwk);
    fake_jwks f;
    fake_init(&f, nt_json_print(doc));
    cJSON_Delete(doc);
    nt_verifier_opts o = jwks_opts(&f);
    nt_verifier *v = make_verifier(&o);
    tok = mint(key_a, KID_A, payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    tok = mint(key_b, KID_B, payload_json(NULL));
    expect_refused(v, tok, "unknown key id");
    free(tok);
    tok = mint(key_b, "ins_good", payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, ready_means_keys_are_there)
{
    char *pem = public_pem(key_a);
    nt_verifier_opts p = {.jwt_key_pem = pem, .issuer = ISS};
    nt_verifier *v = make_verifier(&p);
    cr_assert(nt_verifier_ready(v), "a PEM key is ready at once");
    nt_verifier_destroy(v);
    free(pem);

    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    fake_fail(&f, NT_EUNAVAIL);
    nt_verifier_opts o = jwks_opts(&f);
    o.prefetch = true;
    o.fetch_wait_ms = 0;
    v = make_verifier(&o);
    cr_assert(wait_fetches(v, 1, 2000));
    cr_assert_not(nt_verifier_ready(v), "no keys yet: not ready");
    fake_fail(&f, NT_OK);
    int64_t end = mono_ms() + 3000;
    while (!nt_verifier_ready(v) && mono_ms() < end)
        sleep_ms(20);
    cr_assert(nt_verifier_ready(v), "the prefetch retry brought the keys");
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, pem_mode_ignores_kid_and_never_fetches)
{
    char *pem = public_pem(key_a);
    nt_verifier_opts o = {.jwt_key_pem = pem, .issuer = ISS};
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, "ins_whatever", payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    tok = mint(key_a, NULL, payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    cr_assert_eq(nt_verifier_fetch_count(v), 0);
    key_b = new_key();
    tok = mint(key_b, "ins_whatever", payload_json(NULL));
    expect_refused(v, tok, "bad signature");
    free(tok);
    nt_verifier_destroy(v);
    free(pem);
}

Test(jwt, pem_mode_accepts_a_one_line_pem_with_escaped_newlines)
{
    char *pem = public_pem(key_a);
    /* "-----BEGIN PUBLIC KEY-----\nMIIB...\n-----END..." as .env files write it. */
    size_t n = strlen(pem);
    char *flat = malloc(2 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (pem[i] == '\n') {
            flat[o++] = '\\';
            flat[o++] = 'n';
        } else {
            flat[o++] = pem[i];
        }
    }
    flat[o] = '\0';
    nt_verifier_opts opts = {.jwt_key_pem = flat, .issuer = ISS};
    nt_verifier *v = make_verifier(&opts);
    char *tok = mint(key_a, NULL, payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    free(flat);
    free(pem);
}

Test(jwt, fetch_failure_gives_unavailable)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    fake_fail(&f, NT_ETIMEOUT);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_EUNAVAIL);
    cr_assert_str_eq(reason, "keys unavailable");
    cr_assert_eq(f.calls, 1);
    /* Within the short failure back-off: still unavailable, no new fetch. */
    fake_ms += 1000;
    cr_assert_eq(check(v, tok, &c, reason), NT_EUNAVAIL);
    cr_assert_eq(f.calls, 1);
    /* The JWKS comes back: the next attempt after the back-off works. */
    fake_fail(&f, NT_OK);
    fake_ms += 5000;
    free(tok);
    tok = mint(key_a, KID_A, payload_json(NULL));
    expect_ok(v, tok);
    cr_assert_eq(f.calls, 2);
    cr_assert_eq(nt_verifier_fetch_count(v), 2);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, an_unparsable_jwks_gives_unavailable)
{
    fake_jwks f;
    fake_init(&f, strdup("<html>502 Bad Gateway</html>"));
    nt_verifier_opts o = jwks_opts(&f);
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_EUNAVAIL);
    free(tok);
    cr_assert_eq(nt_verifier_fetch_count(v), 1);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, jwks_url_that_refuses_connections_gives_unavailable)
{
    nt_verifier_opts o = {.jwks_url = "http://127.0.0.1:1/.well-known/jwks.json",
                          .jwks_bearer = "sk_test_secret",
                          .issuer = ISS,
                          .fetch_wait_ms = SYNC_WAIT_MS};
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, tok, &c, reason), NT_EUNAVAIL);
    cr_assert_eq(nt_verifier_fetch_count(v), 1);
    free(tok);
    nt_verifier_destroy(v);
}

struct race {
    nt_verifier *v;
    const char *tok;
    nt_status st;
};

static void *race_verify(void *arg)
{
    struct race *r = arg;
    nt_claims c;
    char reason[REASONS];
    r->st = nt_verifier_verify(r->v, r->tok, strlen(r->tok), &c, reason, sizeof reason);
    return NULL;
}

Test(jwt, concurrent_first_tokens_fetch_once)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    f.delay_ms = 50;
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    struct race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){.v = v, .tok = tok, .st = NT_EINTERNAL};
        cr_assert_eq(pthread_create(&th[i], NULL, race_verify, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(r[i].st, NT_OK);
    }
    cr_assert_eq(f.calls, 1);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* ---- The fetch thread: verify calls never wait on a fetch ------------------------ */

/* Verifies tok, checks status and reason, and returns how long it took (ms). */
static int64_t timed_check(nt_verifier *v, const char *tok, nt_status want, const char *why)
{
    nt_claims c;
    char reason[REASONS];
    int64_t t0 = mono_ms();
    nt_status st = check(v, tok, &c, reason);
    int64_t took = mono_ms() - t0;
    cr_assert_eq(st, want, "status %d (%s), wanted %d", st, reason, want);
    if (why != NULL)
        cr_assert_str_eq(reason, why);
    return took;
}

Test(jwt, a_slow_fetch_blocks_no_verify_call_when_fetch_wait_is_zero)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    nt_verifier_opts o = jwks_opts(&f);
    o.fetch_wait_ms = 0;
    nt_verifier *v = make_verifier(&o);
    char *tok_a = mint(key_a, KID_A, payload_json(NULL));

    /* The first token asks for the fetch and does not wait for it. */
    cr_assert_lt(timed_check(v, tok_a, NT_EUNAVAIL, FETCHING), 100);
    cr_assert(wait_fetches(v, 1, 2000), "the fetch thread never fetched");
    cr_assert_lt(timed_check(v, tok_a, NT_OK, NULL), 100);

    /* Rotation: the JWKS gains key_b, and the key source turns slow. */
    key_b = new_key();
    fake_set(&f, jwks_of(key_a, KID_A, key_b, KID_B));
    fake_hold(&f, true);
    fake_ms += 61 * 1000;
    char *tok_b = mint(key_b, KID_B, payload_json(NULL));
    cr_assert_lt(timed_check(v, tok_b, NT_EUNAVAIL, FETCHING), 100);
    cr_assert(wait_calls(&f, 2, 2000), "the refetch never started");

    /* While that fetch hangs: a cached kid verifies at once, and other misses
     * return at once and join the running fetch instead of starting one. */
    for (int i = 0; i < 3; i++)
        cr_assert_lt(timed_check(v, tok_a, NT_OK, NULL), 100);
    char *tok_c = mint(key_b, "ins_c", payload_json(NULL));
    cr_assert_lt(timed_check(v, tok_c, NT_EUNAVAIL, FETCHING), 100);
    cr_assert_lt(timed_check(v, tok_b, NT_EUNAVAIL, FETCHING), 100);
    cr_assert_eq(nt_verifier_fetch_count(v), 1, "the slow fetch cannot have completed");

    fake_hold(&f, false);
    cr_assert(wait_fetches(v, 2, 2000));
    cr_assert_lt(timed_check(v, tok_b, NT_OK, NULL), 100);
    /* ins_c was not in the fetched JWKS and the cool-down holds. */
    cr_assert_lt(timed_check(v, tok_c, NT_EUNAUTH, "unknown key id"), 100);
    cr_assert_eq(fake_calls(&f), 2);
    cr_assert_eq(nt_verifier_fetch_count(v), 2);
    free(tok_a);
    free(tok_b);
    free(tok_c);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, fetch_wait_bounds_how_long_a_verify_call_waits)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    fake_hold(&f, true);
    nt_verifier_opts o = jwks_opts(&f);
    o.fetch_wait_ms = 200;
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    int64_t took = timed_check(v, tok, NT_EUNAVAIL, FETCHING);
    cr_assert_geq(took, 150, "gave up after %lld ms", (long long)took);
    cr_assert_lt(took, 1000, "waited %lld ms", (long long)took);
    cr_assert_eq(fake_calls(&f), 1);
    /* A second caller joins the fetch still running; when it lands within
     * the wait, that caller gets the key. */
    struct race r = {.v = v, .tok = tok, .st = NT_EINTERNAL};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, race_verify, &r), 0);
    sleep_ms(50);
    fake_hold(&f, false);
    pthread_join(th, NULL);
    cr_assert_eq(r.st, NT_OK);
    cr_assert_eq(fake_calls(&f), 1);
    cr_assert_eq(nt_verifier_fetch_count(v), 1);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, prefetch_fetches_at_creation_so_the_first_token_finds_keys)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    nt_verifier_opts o = jwks_opts(&f);
    o.fetch_wait_ms = 0;
    o.prefetch = true;
    nt_verifier *v = make_verifier(&o);
    cr_assert(wait_fetches(v, 1, 2000), "no fetch without a token");
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    cr_assert_lt(timed_check(v, tok, NT_OK, NULL), 100);
    free(tok);
    /* A successful prefetch is not repeated. */
    sleep_ms(200);
    cr_assert_eq(fake_calls(&f), 1);
    cr_assert_eq(nt_verifier_fetch_count(v), 1);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, prefetch_retries_a_failing_fetch_with_the_backoff_until_it_succeeds)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    fake_fail(&f, NT_ETIMEOUT);
    nt_verifier_opts o = jwks_opts(&f);
    o.fetch_wait_ms = 0;
    o.prefetch = true;
    o.refetch_cooldown_s = 1; /* failure back-off min(1 s, 5 s) */
    int64_t t0 = mono_ms();
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, KID_A, payload_json(NULL));

    cr_assert(wait_fetches(v, 1, 2000));
    /* Keys are needed but the only fetch failed: unavailable, never a 401. */
    cr_assert_lt(timed_check(v, tok, NT_EUNAVAIL, NULL), 100);
    cr_assert(wait_fetches(v, 3, 4000), "no retries: %u fetches", nt_verifier_fetch_count(v));
    int64_t took = mono_ms() - t0;
    /* Attempts at 0, 0.25 and 0.75 s (the delay doubles), then every 1 s at
     * most: the back-off is honoured, not a busy loop. */
    cr_assert_geq(took, 700, "three fetches within %lld ms", (long long)took);
    sleep_ms(500);
    cr_assert_eq(nt_verifier_fetch_count(v), 3, "the delay stopped doubling below the cap");

    /* The key source recovers: the next retry succeeds and retrying stops. */
    fake_fail(&f, NT_OK);
    int64_t end = mono_ms() + 2500;
    nt_status st = NT_EUNAVAIL;
    while (st != NT_OK && mono_ms() < end) {
        nt_claims c;
        char reason[REASONS];
        st = check(v, tok, &c, reason);
        if (st != NT_OK)
            sleep_ms(20);
    }
    cr_assert_eq(st, NT_OK, "no successful retry");
    unsigned n = nt_verifier_fetch_count(v);
    sleep_ms(1500);
    cr_assert_eq(nt_verifier_fetch_count(v), n, "kept fetching after a success");
    cr_assert_eq((unsigned)fake_calls(&f), n);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, prefetch_retries_soon_then_backs_off_and_destroy_cuts_the_wait)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    fake_fail(&f, NT_EUNAVAIL);
    nt_verifier_opts o = jwks_opts(&f);
    o.prefetch = true;
    nt_verifier *v = make_verifier(&o);
    /* 0, 0.25, 0.75, 1.75, 3.75 s, ...: soon at first, then doubling to 5 s. */
    cr_assert(wait_fetches(v, 3, 1500), "only %u fetches", nt_verifier_fetch_count(v));
    sleep_ms(1500);
    cr_assert_leq(nt_verifier_fetch_count(v), 4, "the delay does not double");
    int64_t t0 = mono_ms();
    nt_verifier_destroy(v);
    int64_t took = mono_ms() - t0;
    cr_assert_lt(took, 500, "destroy waited %lld ms for the back-off", (long long)took);
    cr_assert_leq(fake_calls(&f), 4);
    fake_fini(&f);
}

static void *release_later(void *arg)
{
    sleep_ms(300);
    fake_hold(arg, false);
    return NULL;
}

Test(jwt, destroy_waits_for_a_blocked_fetch_and_no_longer)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    fake_hold(&f, true);
    nt_verifier_opts o = jwks_opts(&f);
    o.fetch_wait_ms = 0;
    o.prefetch = true;
    nt_verifier *v = make_verifier(&o);
    cr_assert(wait_calls(&f, 1, 2000), "the prefetch never started");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, release_later, &f), 0);
    int64_t t0 = mono_ms();
    nt_verifier_destroy(v); /* the keys the late fetch brings are freed too */
    int64_t took = mono_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_geq(took, 200, "destroy did not wait for the fetch (%lld ms)", (long long)took);
    cr_assert_lt(took, 1500, "destroy took %lld ms", (long long)took);
    cr_assert_eq(fake_calls(&f), 1);
    fake_fini(&f);
}

Test(jwt, destroy_of_an_idle_verifier_is_prompt)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    int64_t t0 = mono_ms();
    nt_verifier_destroy(v);
    cr_assert_lt(mono_ms() - t0, 200);
    cr_assert_eq(fake_calls(&f), 0);
    fake_fini(&f);
}

/* ---- Signatures and shape ----------------------------------------------------- */

Test(jwt, refuses_a_tampered_payload)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    char *evil = mint(key_a, KID_A, payload_json(NULL));
    /* Replace the payload with one naming another user, keep the signature. */
    char *p =
        nt_b64url_encode("{\"exp\":9999999999,\"iss\":\"" ISS "\",\"sub\":\"user_admin\"}",
                         strlen("{\"exp\":9999999999,\"iss\":\"" ISS "\",\"sub\":\"user_admin\"}"));
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    size_t n = (size_t)(d1 - tok) + 1 + strlen(p) + strlen(d2) + 1;
    free(evil);
    evil = malloc(n);
    snprintf(evil, n, "%.*s.%s%s", (int)(d1 - tok), tok, p, d2);
    expect_refused(v, evil, "bad signature");
    free(evil);
    free(p);

    /* Flip one character of the payload. */
    evil = strdup(tok);
    size_t mid = (size_t)(d1 - tok) + 5;
    evil[mid] = evil[mid] == 'A' ? 'B' : 'A';
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(check(v, evil, &c, reason), NT_EUNAUTH);
    free(evil);

    /* Flip a bit of the signature. */
    evil = strdup(tok);
    size_t last = strlen(evil) - 10;
    evil[last] = evil[last] == 'A' ? 'B' : 'A';
    expect_refused(v, evil, "bad signature");
    free(evil);

    /* Drop the signature. */
    evil = strndup(tok, (size_t)(d2 - tok) + 1);
    expect_refused(v, evil, "bad signature");
    free(evil);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_signature_from_another_key)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    key_b = new_key();
    char *tok = mint(key_b, KID_A, payload_json(NULL));
    expect_refused(v, tok, "bad signature");
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_malformed_base64_in_each_part)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    size_t at[3] = {1, (size_t)(d1 - tok) + 2, (size_t)(d2 - tok) + 2};
    const char bad[] = {'+', '/', '=', '*', ' ', '\x80'};
    for (size_t part = 0; part < 3; part++) {
        for (size_t b = 0; b < sizeof bad; b++) {
            char *evil = strdup(tok);
            evil[at[part]] = bad[b];
            expect_refused(v, evil, "malformed token");
            free(evil);
        }
    }
    /* A part whose length cannot be base64 (len % 4 == 1). */
    char *evil =
        raw_token("{\"alg\":\"RS256\",\"kid\":\"" KID_A "\"}", payload_json(NULL), "AAAAA");
    expect_refused(v, evil, "malformed token");
    free(evil);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_parts_that_are_not_json_objects)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    static const char *const headers[] = {
        "not json",
        "[\"alg\",\"RS256\"]",
        "[{\"alg\":\"RS256\",\"kid\":\"" KID_A "\"}]",
        "\"RS256\"",
        "{\"alg\":\"RS256\",\"kid\":\"" KID_A "\"",
        "{\"alg\":\"RS256\",\"kid\":\"" KID_A "\"} trailing",
        "\xff\xfe{}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *tok = sign(key_a, headers[i], payload_json(NULL));
        expect_refused(v, tok, "malformed token");
        free(tok);
    }
    cr_assert_eq(f.calls, 0);
    /* Properly signed payloads that are not objects. */
    static const char *const payloads[] = {"not json", "[1,2]", "42", "{\"sub\":"};
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *tok = mint(key_a, KID_A, payloads[i]);
        expect_refused(v, tok, "malformed token");
        free(tok);
    }
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_the_wrong_number_of_parts)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    char *evil;

    evil = strndup(tok, (size_t)(d1 - tok)); /* header only */
    expect_refused(v, evil, "malformed token");
    free(evil);
    evil = strndup(tok, (size_t)(d2 - tok)); /* header.payload */
    expect_refused(v, evil, "malformed token");
    free(evil);
    size_t n = strlen(tok) + 8;
    evil = malloc(n);
    snprintf(evil, n, "%s.AAAA", tok); /* four parts */
    expect_refused(v, evil, "malformed token");
    free(evil);
    evil = malloc(n);
    snprintf(evil, n, "%.*s.%s", (int)(d1 - tok), tok, d1); /* header..payload.sig */
    expect_refused(v, evil, "malformed token");
    free(evil);
    expect_refused(v, "..", "malformed token");
    expect_refused(v, ".", "malformed token");
    expect_refused(v, "abc", "malformed token");
    free(tok);
    cr_assert_eq(f.calls, 0);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_an_empty_token)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    nt_claims c;
    char reason[REASONS];
    cr_assert_eq(nt_verifier_verify(v, "", 0, &c, reason, sizeof reason), NT_EUNAUTH);
    cr_assert_str_eq(reason, "malformed token");
    cr_assert_eq(nt_verifier_verify(v, NULL, 0, &c, reason, sizeof reason), NT_EUNAUTH);
    /* len is what counts, not the NUL. */
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    cr_assert_eq(nt_verifier_verify(v, tok, 0, &c, reason, sizeof reason), NT_EUNAUTH);
    cr_assert_eq(nt_verifier_verify(v, tok, strlen(tok) - 1, &c, reason, sizeof reason),
                 NT_EUNAUTH);
    cr_assert_eq(f.calls, 0);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, refuses_a_token_over_the_size_cap_before_decoding)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    char big_extra[9000];
    memset(big_extra, 'x', sizeof big_extra);
    memcpy(big_extra, "\"pad\":\"", 7);
    big_extra[sizeof big_extra - 2] = '"';
    big_extra[sizeof big_extra - 1] = '\0';
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    /* payload_json's buffer is too small for this: build it here. */
    size_t pn = strlen(big_extra) + 256;
    char *payload = malloc(pn);
    snprintf(payload, pn, "{\"exp\":%lld,\"iss\":\"" ISS "\",\"sub\":\"user_123\",%s}",
             (long long)now_s() + 60, big_extra);
    tok = mint(key_a, KID_A, payload);
    cr_assert_gt(strlen(tok), NT_JWT_MAX_BYTES);
    expect_refused(v, tok, "token too large");
    free(tok);
    free(payload);
    /* Garbage that is merely long is refused for its size, before anything else. */
    char *junk = malloc(NT_JWT_MAX_BYTES + 2);
    memset(junk, '.', NT_JWT_MAX_BYTES + 1);
    junk[NT_JWT_MAX_BYTES + 1] = '\0';
    expect_refused(v, junk, "token too large");
    junk[NT_JWT_MAX_BYTES] = '\0';
    expect_refused(v, junk, "malformed token");
    free(junk);
    cr_assert_eq(f.calls, 1);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, honours_a_configured_size_cap)
{
    fake_jwks f;
    fake_init(&f, jwks_of(key_a, KID_A, NULL, NULL));
    nt_verifier_opts o = jwks_opts(&f);
    o.max_token_bytes = 100;
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(key_a, KID_A, payload_json(NULL));
    expect_refused(v, tok, "token too large");
    cr_assert_eq(f.calls, 0);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

Test(jwt, writes_no_reason_past_its_buffer)
{
    fake_jwks f;
    nt_verifier *v = verifier_a(&f, NULL);
    nt_claims c;
    char reason[6] = "zzzzz";
    cr_assert_eq(nt_verifier_verify(v, "abc", 3, &c, reason, 4), NT_EUNAUTH);
    cr_assert_str_eq(reason, "mal");
    cr_assert_eq(reason[4], 'z');
    cr_assert_eq(nt_verifier_verify(v, "abc", 3, &c, NULL, 0), NT_EUNAUTH);
    nt_verifier_destroy(v);
    fake_fini(&f);
}

/* ---- Creation --------------------------------------------------------------------- */

Test(jwt, create_refuses_incomplete_options)
{
    nt_verifier *v = NULL;
    fake_jwks f;
    fake_init(&f, strdup("{\"keys\":[]}"));
    nt_verifier_opts o = jwks_opts(&f);
    o.issuer = NULL;
    cr_assert_eq(nt_verifier_create(&o, &v), NT_EINVAL);
    o.issuer = "";
    cr_assert_eq(nt_verifier_create(&o, &v), NT_EINVAL);
    nt_verifier_opts none = {.issuer = ISS};
    cr_assert_eq(nt_verifier_create(&none, &v), NT_EINVAL);
    nt_verifier_opts badpem = {.issuer = ISS, .jwt_key_pem = "-----BEGIN PUBLIC KEY-----\nnope\n"};
    cr_assert_eq(nt_verifier_create(&badpem, &v), NT_EINVAL);
    o = jwks_opts(&f);
    o.skew_s = -1;
    cr_assert_eq(nt_verifier_create(&o, &v), NT_EINVAL);
    o = jwks_opts(&f);
    o.fetch_wait_ms = -1;
    cr_assert_eq(nt_verifier_create(&o, &v), NT_EINVAL);
    cr_assert_null(v);
    cr_assert_eq(f.calls, 0);
    fake_fini(&f);
}

Test(jwt, create_refuses_a_small_or_non_rsa_pem)
{
    nt_verifier *v = NULL;
    EVP_PKEY *small = EVP_RSA_gen(1024);
    char *pem = public_pem(small);
    nt_verifier_opts o = {.issuer = ISS, .jwt_key_pem = pem};
    cr_assert_eq(nt_verifier_create(&o, &v), NT_EINVAL);
    free(pem);
    EVP_PKEY_free(small);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    pem = public_pem(ec);
    o.jwt_key_pem = pem;
    cr_assert_eq(nt_verifier_create(&o, &v), NT_EINVAL);
    free(pem);
    EVP_PKEY_free(ec);
    cr_assert_null(v);
    nt_verifier_destroy(NULL);
}

/* ---- Extraction ------------------------------------------------------------------- */

Test(jwt, takes_the_token_from_a_bearer_header)
{
    cr_assert_str_eq(nt_jwt_from_bearer("Bearer abc.def.ghi"), "abc.def.ghi");
    cr_assert_str_eq(nt_jwt_from_bearer("bearer abc.def.ghi"), "abc.def.ghi");
    cr_assert_str_eq(nt_jwt_from_bearer("BEARER   abc"), "abc");
    cr_assert_str_eq(nt_jwt_from_bearer("  Bearer\tabc"), "abc");
    const char *h = "Bearer xyz";
    cr_assert_eq(nt_jwt_from_bearer(h), h + 7, "must point into the header");
    cr_assert_null(nt_jwt_from_bearer(NULL));
    cr_assert_null(nt_jwt_from_bearer(""));
    cr_assert_null(nt_jwt_from_bearer("Bearer"));
    cr_assert_null(nt_jwt_from_bearer("Bearer "));
    cr_assert_null(nt_jwt_from_bearer("Bearerabc"));
    cr_assert_null(nt_jwt_from_bearer("Basic dXNlcjpwYXNz"));
    cr_assert_null(nt_jwt_from_bearer("Token abc"));
    cr_assert_null(nt_jwt_from_bearer("Bearer abc def"));
    cr_assert_null(nt_jwt_from_bearer("Bearer abc\r\nX: y"));
}

Test(jwt, takes_the_token_from_the_session_cookie)
{
    char out[64];
    cr_assert_eq(nt_jwt_from_cookie("a=b; __session=TOKEN; c=d", out, sizeof out), NT_OK);
    cr_assert_str_eq(out, "TOKEN");
    cr_assert_eq(nt_jwt_from_cookie("__session=abc.def.ghi", out, sizeof out), NT_OK);
    cr_assert_str_eq(out, "abc.def.ghi");
    cr_assert_eq(nt_jwt_from_cookie("x=1;__session=T2", out, sizeof out), NT_OK);
    cr_assert_str_eq(out, "T2");
    cr_assert_eq(nt_jwt_from_cookie("__session=\"quoted\"; z=1", out, sizeof out), NT_OK);
    cr_assert_str_eq(out, "quoted");
    /* Exact name: suffixed and prefixed names are other cookies. */
    cr_assert_eq(nt_jwt_from_cookie("__session_x=NOPE; __session=YES", out, sizeof out), NT_OK);
    cr_assert_str_eq(out, "YES");
    cr_assert_eq(nt_jwt_from_cookie("__session_x=NOPE", out, sizeof out), NT_ENOTFOUND);
    cr_assert_eq(nt_jwt_from_cookie("x__session=NOPE", out, sizeof out), NT_ENOTFOUND);
    cr_assert_eq(nt_jwt_from_cookie("a=__session=NOPE", out, sizeof out), NT_ENOTFOUND);
    cr_assert_eq(nt_jwt_from_cookie("__session=", out, sizeof out), NT_ENOTFOUND);
    cr_assert_eq(nt_jwt_from_cookie("", out, sizeof out), NT_ENOTFOUND);
    cr_assert_eq(nt_jwt_from_cookie(NULL, out, sizeof out), NT_ENOTFOUND);
    cr_assert_eq(nt_jwt_from_cookie("a=b; c=d", out, sizeof out), NT_ENOTFOUND);
    /* Too long for out: NT_ETOOBIG, never truncated. */
    char small[5];
    cr_assert_eq(nt_jwt_from_cookie("__session=12345", small, sizeof small), NT_ETOOBIG);
    cr_assert_eq(nt_jwt_from_cookie("__session=1234", small, sizeof small), NT_OK);
    cr_assert_str_eq(small, "1234");
}

/* ---- Signing, JWKs, key files ----------------------------------------------------- */

Test(jwt, signs_a_compact_rs256_token)
{
    char *tok = mint(key_a, KID_A, "{\"sub\":\"x\"}");
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    cr_assert_neq(d1, d2);
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    cr_assert_eq(nt_b64url_decode(tok, (size_t)(d1 - tok), &raw, &rawlen), NT_OK);
    cr_assert_str_eq((char *)raw, header_json(KID_A));
    free(raw);
    cr_assert_eq(nt_b64url_decode(d2 + 1, strlen(d2 + 1), &raw, &rawlen), NT_OK);
    cr_assert_eq(rawlen, 256);
    free(raw);
    free(tok);
}

Test(jwt, sign_refuses_a_public_or_non_rsa_key)
{
    char *pem = public_pem(key_a);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    cr_assert_not_null(pub);
    char *tok = NULL;
    cr_assert_eq(nt_jwt_sign_rs256(pub, "{}", "{}", &tok), NT_EINVAL);
    cr_assert_null(tok);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    cr_assert_eq(nt_jwt_sign_rs256(ec, "{}", "{}", &tok), NT_EINVAL);
    cr_assert_eq(nt_jwt_sign_rs256(NULL, "{}", "{}", &tok), NT_EINVAL);
    cr_assert_null(tok);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(pub);
    free(pem);
}

Test(jwt, jwk_round_trip_verifies_a_signature_of_the_private_key)
{
    cJSON *jwk = NULL;
    cr_assert_eq(nt_jwk_from_key(key_a, "ins_rt", &jwk), NT_OK);
    cr_assert_str_eq(cJSON_GetObjectItem(jwk, "kty")->valuestring, "RSA");
    cr_assert_str_eq(cJSON_GetObjectItem(jwk, "use")->valuestring, "sig");
    cr_assert_str_eq(cJSON_GetObjectItem(jwk, "alg")->valuestring, "RS256");
    cr_assert_str_eq(cJSON_GetObjectItem(jwk, "kid")->valuestring, "ins_rt");
    cr_assert_str_eq(cJSON_GetObjectItem(jwk, "e")->valuestring, "AQAB");
    cr_assert_eq(strlen(cJSON_GetObjectItem(jwk, "n")->valuestring), 342); /* 256 bytes */

    EVP_PKEY *pub = NULL;
    cr_assert_eq(nt_jwk_to_key(jwk, &pub), NT_OK);
    cr_assert_eq(EVP_PKEY_get_bits(pub), 2048);
    cr_assert_eq(EVP_PKEY_eq(pub, key_a), 1);

    const char msg[] = "header.payload";
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key_a), 1);
    cr_assert_eq(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    md = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    cr_assert_eq(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    /* And the other way: the JWK of a public-only key is the same JWK. */
    cJSON *again = NULL;
    cr_assert_eq(nt_jwk_from_key(pub, "ins_rt", &again), NT_OK);
    cr_assert(cJSON_Compare(jwk, again, true));
    cJSON_Delete(again);
    EVP_PKEY_free(pub);
    cJSON_Delete(jwk);
}

Test(jwt, jwk_to_key_refuses_malformed_jwks)
{
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"kty\":\"EC\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"n\":\"q+/=\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"n\":12,\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"n\":\"xAE\",\"e\":\"AQ\"}",           /* e = 1 */
        "{\"kty\":\"RSA\",\"n\":\"xAA\",\"e\":\"AQAB\"}",         /* even modulus */
        "{\"kty\":\"RSA\",\"n\":\"xAE\",\"e\":\"AQAAAAAAAAAB\"}", /* e of 9 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *jwk = cJSON_Parse(bad[i]);
        cr_assert_not_null(jwk);
        EVP_PKEY *k = (EVP_PKEY *)"untouched";
        cr_assert_eq(nt_jwk_to_key(jwk, &k), NT_EINVAL, "accepted %s", bad[i]);
        cr_assert_str_eq((const char *)k, "untouched");
        cJSON_Delete(jwk);
    }
    EVP_PKEY *k = NULL;
    cr_assert_eq(nt_jwk_to_key(NULL, &k), NT_EINVAL);
    cJSON *jwk = NULL;
    cr_assert_eq(nt_jwk_from_key(NULL, "x", &jwk), NT_EINVAL);
}

static char *temp_dir(void)
{
    char tmpl[] = "/tmp/nt-jwt-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return strdup(d);
}

Test(jwt, rsa_load_or_create_makes_a_private_key_file_once)
{
    char *dir = temp_dir();
    char path[600], sub[512];
    snprintf(sub, sizeof sub, "%s/keys/deeper", dir);
    snprintf(path, sizeof path, "%s/signing.pem", sub);

    EVP_PKEY *k1 = NULL, *k2 = NULL;
    cr_assert_eq(nt_rsa_load_or_create(path, &k1), NT_OK);
    cr_assert_not_null(k1);
    cr_assert_eq(EVP_PKEY_get_bits(k1), 2048);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    cr_assert_eq(stat(sub, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    cr_assert_eq(sb.st_mode & 0777, 0700);

    FILE *fp = fopen(path, "r");
    char line[64] = "";
    cr_assert_not_null(fgets(line, sizeof line, fp));
    fclose(fp);
    cr_assert_str_eq(line, "-----BEGIN PRIVATE KEY-----\n");

    /* Second call loads the same key instead of making a new one. */
    cr_assert_eq(nt_rsa_load_or_create(path, &k2), NT_OK);
    cr_assert_eq(EVP_PKEY_eq(k1, k2), 1);
    char id1[64], id2[64];
    cr_assert_eq(nt_key_id(k1, id1, sizeof id1), NT_OK);
    cr_assert_eq(nt_key_id(k2, id2, sizeof id2), NT_OK);
    cr_assert_str_eq(id1, id2);

    /* The key signs tokens the verifier accepts through its JWKS. */
    fake_jwks f;
    fake_init(&f, jwks_of(k2, id2, NULL, NULL));
    nt_verifier_opts o = jwks_opts(&f);
    nt_verifier *v = make_verifier(&o);
    char *tok = mint(k1, id1, payload_json(NULL));
    expect_ok(v, tok);
    free(tok);
    nt_verifier_destroy(v);
    fake_fini(&f);

    /* No temporary files left behind. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", sub);
    cr_assert_eq(system(cmd), 0);

    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

Test(jwt, rsa_load_or_create_refuses_a_file_that_is_not_an_rsa_key)
{
    char *dir = temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/garbage.pem", dir);
    FILE *fp = fopen(path, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n", fp);
    fclose(fp);
    EVP_PKEY *k = NULL;
    cr_assert_eq(nt_rsa_load_or_create(path, &k), NT_EINVAL);
    cr_assert_null(k);
    /* A public key is not a private key either. */
    char *pem = public_pem(key_a);
    fp = fopen(path, "w");
    fputs(pem, fp);
    fclose(fp);
    cr_assert_eq(nt_rsa_load_or_create(path, &k), NT_EINVAL);
    cr_assert_null(k);
    free(pem);
    cr_assert_eq(nt_rsa_load_or_create("", &k), NT_EINVAL);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

Test(jwt, key_id_is_stable_and_shaped)
{
    char id[64], again[64];
    cr_assert_eq(nt_key_id(key_a, id, sizeof id), NT_OK);
    cr_assert_eq(strlen(id), 26);
    cr_assert_eq(strncmp(id, "ins_local_", 10), 0);
    cr_assert_eq(strspn(id + 10, "0123456789abcdef"), 16);
    cr_assert_eq(nt_key_id(key_a, again, sizeof again), NT_OK);
    cr_assert_str_eq(id, again);
    /* The public half gives the same id. */
    char *pem = public_pem(key_a);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    cr_assert_eq(nt_key_id(pub, again, sizeof again), NT_OK);
    cr_assert_str_eq(id, again);
    EVP_PKEY_free(pub);
    free(pem);
    key_b = new_key();
    cr_assert_eq(nt_key_id(key_b, again, sizeof again), NT_OK);
    cr_assert_str_neq(id, again);
    char small[26];
    cr_assert_eq(nt_key_id(key_a, small, sizeof small), NT_ETOOBIG);
}

/* ---- nt_http without a server ------------------------------------------------------- */

Test(jwt, http_get_to_a_closed_port_is_unavailable_quickly)
{
    int status = -1;
    char *body = NULL;
    size_t len = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(nt_http_get("http://127.0.0.1:1/x", "secret", 2000, 1024, &status, &body, &len),
                 NT_EUNAVAIL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_lt((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 1500);
    cr_assert_null(body);
    cr_assert_eq(status, -1);
}

Test(jwt, http_get_allows_only_http_and_https)
{
    int status = -1;
    char *body = NULL;
    size_t len = 0;
    cr_assert_eq(nt_http_get("file:///etc/hostname", NULL, 1000, 1024, &status, &body, &len),
                 NT_EINVAL);
    cr_assert_eq(nt_http_get("gopher://127.0.0.1:1/", NULL, 1000, 1024, &status, &body, &len),
                 NT_EINVAL);
    cr_assert_eq(
        nt_http_get("http://127.0.0.1:1/", "a\r\nX-Evil: 1", 1000, 1024, &status, &body, &len),
        NT_EINVAL);
    cr_assert_null(body);
}
