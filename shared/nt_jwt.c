/* The Clerk session token verifier (DESIGN.md §4, CLERK-CLOUDFLARE.md §A1-A2)
 * and the RS256 signing, JWK and key-file helpers the local issuer and the
 * tests share. Built directly on OpenSSL 3 EVP, cJSON and nt_b64: the header is
 * decoded and checked here before any signature code runs, and the claims are
 * read only after the signature has been verified. JWKS fetches run on a
 * thread the verifier owns, so a slow or dead key source never holds up the
 * threads that verify tokens (a server's request workers). */
#include "nt_jwt.h"

#include "nt_b64.h"
#include "nt_clock.h"
#include "nt_http.h"
#include "nt_id.h"
#include "nt_log.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JWT_MACHINE_CAT         "cl_B7d4PD333AAA" /* Clerk's category tag of M2M tokens */
#define JWKS_MAX_BYTES          (256 * 1024)
#define JWKS_TIMEOUT_MS         5000
#define JWKS_MAX_KEYS           64
#define JWT_KID_MAX             255
#define RSA_MIN_BITS            2048 /* Clerk keys are RSA-2048; smaller ones are refused */
#define RSA_MAX_BITS            8192 /* bounds the cost of one verification */
#define PREFETCH_FIRST_RETRY_MS 250
#define FAIL_BACKOFF_MS         5000 /* after a failed fetch, wait at most this long to retry */
#define KEY_FILE_MAX            (64 * 1024)
#define TIME_CLAIM_MAX          1e11 /* seconds; about the year 5138 */
#define DEFAULT_SKEW_S          5
#define DEFAULT_COOL_S          60

typedef struct {
    char *kid;
    EVP_PKEY *key;
} jwt_key;

struct nt_verifier {
    /* mu guards the key cache and the fetch bookkeeping below. It is held only
     * for short bookkeeping: never across a fetch, a JWKS parse or a signature
     * check. work_cv wakes the fetch thread; done_cv tells waiting verify calls
     * that a fetch completed (fetch_count advanced). Both use CLOCK_MONOTONIC. */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    pthread_t thread;
    bool has_thread;   /* JWKS mode: the fetch thread runs */
    EVP_PKEY *pem_key; /* set in PEM mode: serves every token */
    char *jwks_url;
    char *jwks_bearer;
    nt_jwks_fetch fetch;
    void *fetch_ctx;
    char *issuer;
    char *parties; /* NULL when no azp check */
    int64_t skew_ms;
    int64_t cooldown_ms;
    int64_t wait_ms; /* fetch_wait_ms */
    size_t max_token;
    jwt_key *keys;
    size_t nkeys;
    bool want;              /* a fetch is asked for and not yet started */
    bool busy;              /* the fetch thread is fetching */
    bool stop;              /* destroy: the fetch thread must exit */
    bool retrying;          /* prefetch: retry failures until a fetch succeeds */
    int64_t retry_at;       /* monotonic ms of the next prefetch retry; 0 = none */
    int64_t retry_delay_ms; /* the next prefetch retry's delay: doubles up to the back-off */
    bool fetched;           /* a fetch has completed */
    bool last_fetch_ok;     /* the last fetch gave a usable JWKS */
    int64_t last_fetch_ms;
    unsigned fetch_count; /* completed fetches: the generation waiters watch */
};

/* ---- Small helpers ---------------------------------------------------------- */

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    NT_ASSERT(d != NULL);
    return d;
}

static void set_reason(char *reason, size_t reasonlen, const char *text)
{
    if (reason != NULL && reasonlen > 0)
        snprintf(reason, reasonlen, "%s", text);
}

/* True when s is non-empty and only printable ASCII without spaces: what an id,
 * an origin or a session id looks like, and safe in a NATS header or a log. */
static bool printable_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* True when obj has two members with the same name: JSON parsers disagree on
 * which one wins, so a token that relies on it is refused. */
static bool has_duplicate_keys(const cJSON *obj)
{
    for (const cJSON *a = obj->child; a != NULL; a = a->next)
        for (const cJSON *b = a->next; b != NULL; b = b->next)
            if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0)
                return true;
    return false;
}

static bool is_rsa(const EVP_PKEY *key)
{
    return key != NULL && EVP_PKEY_is_a(key, "RSA");
}

/* The verifier's policy on public keys: RSA, 2048 to 8192 bits. */
static bool rsa_key_acceptable(const EVP_PKEY *key)
{
    if (!is_rsa(key))
        return false;
    int bits = EVP_PKEY_get_bits(key);
    return bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS;
}

static void free_keys(jwt_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i].kid);
        EVP_PKEY_free(keys[i].key);
    }
    free(keys);
}

/* ---- PEM public key (CLERK_JWT_KEY) --------------------------------------- */

/* Loads a PEM public key. Environment variables often carry the PEM on one
 * line or with literal "\n" sequences, so when OpenSSL's PEM reader refuses it
 * the base64 body between the markers is decoded by hand. */
static EVP_PKEY *load_public_pem(const char *pem)
{
    static const char begin[] = "-----BEGIN PUBLIC KEY-----";
    static const char end[] = "-----END PUBLIC KEY-----";
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    char *body = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;

    bio = BIO_new_mem_buf(pem, -1);
    NT_ASSERT(bio != NULL);
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (key != NULL)
        goto out;
    ERR_clear_error();

    const char *from = strstr(pem, begin);
    from = from != NULL ? from + sizeof begin - 1 : pem;
    const char *to = strstr(from, end);
    if (to == NULL)
        to = from + strlen(from);
    body = malloc((size_t)(to - from) + 1);
    NT_ASSERT(body != NULL);
    size_t n = 0;
    for (const char *p = from; p < to; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            continue;
        if (*p == '\\' && p + 1 < to && (p[1] == 'n' || p[1] == 'r')) {
            p++;
            continue;
        }
        /* Standard alphabet to url alphabet, so nt_b64 can decode it. */
        body[n++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    body[n] = '\0';
    if (nt_b64url_decode(body, n, &der, &derlen) != NT_OK)
        goto out;
    const unsigned char *p = der;
    key = d2i_PUBKEY(NULL, &p, (long)derlen);
    if (key != NULL && p != der + derlen) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    ERR_clear_error();

out:
    BIO_free(bio);
    free(body);
    free(der);
    return key;
}

/* ---- JWKS ------------------------------------------------------------------- */

/* Keeps the usable keys of a JWKS document: kty RSA, alg RS256 or absent, use
 * sig or absent, a kid, 2048-8192 bits; the first of duplicate kids wins. */
static nt_status parse_jwks(const char *json, size_t len, jwt_key **out, size_t *nout)
{
    nt_status st = NT_EINVAL;
    cJSON *doc = NULL;
    jwt_key *keys = NULL;
    size_t n = 0;
    char err[NT_ERRMSG_LEN];

    if (nt_json_parse(json, len, &doc, err, sizeof err) != NT_OK || !cJSON_IsObject(doc))
        goto out;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    if (!cJSON_IsArray(arr))
        goto out;
    keys = calloc(JWKS_MAX_KEYS, sizeof *keys);
    NT_ASSERT(keys != NULL);
    const cJSON *jwk;
    cJSON_ArrayForEach(jwk, arr)
    {
        if (n == JWKS_MAX_KEYS)
            break;
        if (!cJSON_IsObject(jwk))
            continue;
        const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
        const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
        const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
        if (!cJSON_IsString(kty) || strcmp(kty->valuestring, "RSA") != 0)
            continue;
        if (alg != NULL && (!cJSON_IsString(alg) || strcmp(alg->valuestring, "RS256") != 0))
            continue;
        if (use != NULL && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig") != 0))
            continue;
        if (!cJSON_IsString(kid) || kid->valuestring[0] == '\0' ||
            strlen(kid->valuestring) > JWT_KID_MAX)
            continue;
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(keys[i].kid, kid->valuestring) == 0;
        if (dup)
            continue;
        EVP_PKEY *key = NULL;
        if (nt_jwk_to_key(jwk, &key) != NT_OK)
            continue;
        if (!rsa_key_acceptable(key)) {
            EVP_PKEY_free(key);
            continue;
        }
        keys[n].kid = dup_str(kid->valuestring);
        keys[n].key = key;
        n++;
    }
    *out = keys;
    *nout = n;
    keys = NULL;
    st = NT_OK;

out:
    free(keys);
    cJSON_Delete(doc);
    return st;
}

/* Gets the JWKS text from the injected fetcher or over HTTP. */
static nt_status fetch_jwks(nt_verifier *v, char **json, size_t *len)
{
    char *body = NULL;
    size_t blen = 0;
    nt_status st;
    if (v->fetch != NULL) {
        st = v->fetch(v->fetch_ctx, &body, &blen);
        if (st == NT_OK && body == NULL)
            st = NT_EINTERNAL;
        if (st == NT_OK && blen > JWKS_MAX_BYTES)
            st = NT_ETOOBIG;
    } else {
        int http = 0;
        st = nt_http_get(v->jwks_url, v->jwks_bearer, JWKS_TIMEOUT_MS, JWKS_MAX_BYTES, &http, &body,
                         &blen);
        if (st == NT_OK && http != 200) {
            nt_log_warn("jwt", "JWKS fetch answered http=%d", http);
            st = NT_EUNAVAIL;
        }
    }
    if (st != NT_OK) {
        free(body);
        return st;
    }
    *json = body;
    *len = blen;
    return NT_OK;
}

/* The cached key for kid with a reference the caller frees, or NULL. Call with mu held. */
static EVP_PKEY *find_key_locked(nt_verifier *v, const char *kid)
{
    for (size_t i = 0; i < v->nkeys; i++) {
        if (strcmp(v->keys[i].kid, kid) == 0) {
            EVP_PKEY_up_ref(v->keys[i].key);
            return v->keys[i].key;
        }
    }
    return NULL;
}

/* The back-off after the last fetch: the cool-down after a success,
 * min(cool-down, 5 s) after a failure. Call with mu held. */
static int64_t backoff_ms_locked(const nt_verifier *v)
{
    if (v->last_fetch_ok || v->cooldown_ms < FAIL_BACKOFF_MS)
        return v->cooldown_ms;
    return FAIL_BACKOFF_MS;
}

/* Sets *ts to ms milliseconds from now on the monotonic clock. */
static void mono_deadline(int64_t ms, struct timespec *ts)
{
    if (ms < 0)
        ms = 0;
    NT_ASSERT(clock_gettime(CLOCK_MONOTONIC, ts) == 0);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Finds the key for a token: the PEM key, a cached JWK, or a JWK from a fresh
 * fetch by the fetch thread (lazily on the first token, and at most once per
 * cool-down after that for an unknown kid). *out is a reference the caller
 * frees. Waits at most wait_ms for a fetch, and only on done_cv. */
static nt_status get_key(nt_verifier *v, const cJSON *kid_item, EVP_PKEY **out, char *reason,
                         size_t reasonlen)
{
    if (v->pem_key != NULL) {
        EVP_PKEY_up_ref(v->pem_key);
        *out = v->pem_key;
        return NT_OK;
    }
    if (kid_item == NULL) {
        set_reason(reason, reasonlen, "missing key id");
        return NT_EUNAUTH;
    }
    const char *kid = kid_item->valuestring;
    if (kid[0] == '\0' || strlen(kid) > JWT_KID_MAX) {
        set_reason(reason, reasonlen, "unknown key id");
        return NT_EUNAUTH;
    }

    nt_status st = NT_OK;
    const char *why = NULL;
    pthread_mutex_lock(&v->mu);
    EVP_PKEY *key = find_key_locked(v, kid);
    if (key != NULL)
        goto out;

    /* Unknown kid. A fetch already asked for or running covers it: tokens
     * arriving together share one fetch and then find the key it brought. */
    unsigned target = v->fetch_count + 1;
    if (!v->want && !v->busy) {
        int64_t since = nt_clock_now_ms() - v->last_fetch_ms;
        bool may_fetch = !v->fetched || since < 0 || since >= backoff_ms_locked(v);
        if (!may_fetch) {
            st = v->last_fetch_ok ? NT_EUNAUTH : NT_EUNAVAIL;
            why = v->last_fetch_ok ? "unknown key id" : "keys unavailable";
            goto out;
        }
        v->want = true;
        pthread_cond_signal(&v->work_cv);
    }

    if (v->wait_ms > 0) {
        struct timespec deadline;
        mono_deadline(v->wait_ms, &deadline);
        while (v->fetch_count < target && !v->stop) {
            if (pthread_cond_timedwait(&v->done_cv, &v->mu, &deadline) == ETIMEDOUT)
                break;
        }
    }
    if (v->fetch_count < target) {
        st = NT_EUNAVAIL;
        why = "signing keys are being fetched; retry";
        goto out;
    }
    key = find_key_locked(v, kid);
    if (key == NULL) {
        st = v->last_fetch_ok ? NT_EUNAUTH : NT_EUNAVAIL;
        why = v->last_fetch_ok ? "unknown key id" : "keys unavailable";
    }

out:
    pthread_mutex_unlock(&v->mu);
    if (st != NT_OK) {
        set_reason(reason, reasonlen, why);
        return st;
    }
    *out = key;
    return NT_OK;
}

/* ---- The fetch thread ---------------------------------------------------------- */

/* Runs one fetch without mu and records it: swaps in the new keys on success,
 * advances fetch_count and wakes the waiters. Called by the fetch thread
 * with mu held; returns with mu held. */
static void fetch_once_locked(nt_verifier *v)
{
    v->want = false;
    v->busy = true;
    v->retry_at = 0;
    pthread_mutex_unlock(&v->mu);

    char *json = NULL;
    size_t len = 0;
    jwt_key *keys = NULL;
    size_t nkeys = 0;
    nt_status st = fetch_jwks(v, &json, &len);
    if (st == NT_OK)
        st = parse_jwks(json, len, &keys, &nkeys);
    free(json);
    if (st == NT_OK && nkeys == 0) {
        /* A JWKS with no usable RS256 key verifies nothing: a failure, so
         * the prefetch keeps trying and /readyz does not wait forever. */
        nt_log_warn("jwt", "JWKS has no usable RS256 signing key");
        st = NT_EUNAVAIL;
    } else if (st != NT_OK) {
        nt_log_warn("jwt", "JWKS fetch failed status=%s", nt_status_str(st));
    }

    pthread_mutex_lock(&v->mu);
    v->busy = false;
    v->fetch_count++;
    v->fetched = true;
    v->last_fetch_ms = nt_clock_now_ms();
    v->last_fetch_ok = st == NT_OK;
    if (st == NT_OK) {
        /* Swap: keys dropped from the JWKS stop working; threads holding a
         * reference to an old key finish with it safely. */
        jwt_key *old = v->keys;
        size_t nold = v->nkeys;
        v->keys = keys;
        v->nkeys = nkeys;
        keys = old;
        nkeys = nold;
        v->retrying = false;
    } else if (v->retrying) {
        /* A key source that is starting with us (auth beside the gateway)
         * is usually there within a second: retry soon, then back off. */
        int64_t cap = backoff_ms_locked(v);
        int64_t delay = v->retry_delay_ms < cap ? v->retry_delay_ms : cap;
        v->retry_at = nt_clock_mono_ms() + delay;
        v->retry_delay_ms = delay * 2;
    }
    pthread_cond_broadcast(&v->done_cv);
    pthread_mutex_unlock(&v->mu);
    free_keys(keys, nkeys); /* the old cache, freed without mu */
    pthread_mutex_lock(&v->mu);
}

/* The fetch thread: sleeps until a verify call asks for a fetch (want), a
 * prefetch retry is due (retry_at) or destroy says stop. */
static void *fetch_main(void *arg)
{
    nt_verifier *v = arg;
    pthread_mutex_lock(&v->mu);
    while (!v->stop) {
        if (v->want || (v->retry_at > 0 && nt_clock_mono_ms() >= v->retry_at)) {
            fetch_once_locked(v);
            continue;
        }
        if (v->retry_at > 0) {
            struct timespec deadline;
            mono_deadline(v->retry_at - nt_clock_mono_ms(), &deadline);
            pthread_cond_timedwait(&v->work_cv, &v->mu, &deadline);
        } else {
            pthread_cond_wait(&v->work_cv, &v->mu);
        }
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

/* Starts the fetch thread with every signal blocked, so that signals keep
 * going to the thread main waits on them with. */
static bool start_fetch_thread(nt_verifier *v)
{
    sigset_t all, old;
    sigfillset(&all);
    NT_ASSERT(pthread_sigmask(SIG_SETMASK, &all, &old) == 0);
    int rc = pthread_create(&v->thread, NULL, fetch_main, v);
    NT_ASSERT(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
    if (rc != 0)
        return false;
    pthread_setname_np(v->thread, "nt-jwks");
    return true;
}

/* ---- Verification ---------------------------------------------------------- */

static bool rs256_verify(EVP_PKEY *key, const char *data, size_t n, const unsigned char *sig,
                         size_t siglen)
{
    if (siglen == 0 || siglen != (size_t)EVP_PKEY_get_size(key))
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    NT_ASSERT(md != NULL);
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, key) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
              EVP_DigestVerify(md, sig, siglen, (const unsigned char *)data, n) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* Decodes one base64url part and parses it as a JSON object without
 * duplicate member names. NULL when any of that fails. */
static cJSON *decode_json_part(const unsigned char *raw, size_t rawlen)
{
    cJSON *obj = NULL;
    char err[NT_ERRMSG_LEN];
    if (nt_json_parse((const char *)raw, rawlen, &obj, err, sizeof err) != NT_OK)
        return NULL;
    if (!cJSON_IsObject(obj) || has_duplicate_keys(obj)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

/* Reads a NumericDate claim. NT_ENOTFOUND when absent, NT_EINVAL when it is
 * not a finite number in [0, TIME_CLAIM_MAX). */
static nt_status time_claim(const cJSON *payload, const char *name, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(payload, name);
    if (it == NULL)
        return NT_ENOTFOUND;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0 ||
        it->valuedouble >= TIME_CLAIM_MAX)
        return NT_EINVAL;
    *out = it->valuedouble;
    return NT_OK;
}

/* True when azp equals one of the comma-separated entries (white space around
 * an entry is ignored). */
static bool party_allowed(const char *list, const char *azp)
{
    size_t azplen = strlen(azp);
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == azplen && azplen > 0 && memcmp(a, azp, azplen) == 0)
            return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

/* Copies an optional string claim into dst. NULL when fine, or the reason. */
static const char *copy_opt_claim(const cJSON *payload, const char *name, char *dst, size_t dstlen,
                                  const char *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(payload, name);
    if (it == NULL)
        return NULL;
    if (!cJSON_IsString(it) || strlen(it->valuestring) >= dstlen ||
        !printable_token(it->valuestring))
        return bad;
    memcpy(dst, it->valuestring, strlen(it->valuestring) + 1);
    return NULL;
}

/* Checks the claims of a payload whose signature has been verified. NULL when
 * they are acceptable (c filled), or the reason. */
static const char *check_claims(const nt_verifier *v, const cJSON *payload, nt_claims *c)
{
    int64_t now = nt_clock_now_ms();
    double exp = 0, nbf = 0, iat = 0;

    nt_status st = time_claim(payload, "exp", &exp);
    if (st == NT_ENOTFOUND)
        return "missing exp";
    if (st != NT_OK)
        return "invalid exp";
    if (exp * 1000.0 <= (double)(now - v->skew_ms))
        return "token expired";
    c->exp = (int64_t)exp;

    st = time_claim(payload, "nbf", &nbf);
    if (st == NT_EINVAL)
        return "invalid nbf";
    if (st == NT_OK) {
        if (nbf * 1000.0 > (double)(now + v->skew_ms))
            return "token not yet valid";
        c->nbf = (int64_t)nbf;
    }

    st = time_claim(payload, "iat", &iat);
    if (st == NT_EINVAL)
        return "invalid iat";
    if (st == NT_OK) {
        if (iat * 1000.0 > (double)(now + v->skew_ms))
            return "token issued in the future";
        c->iat = (int64_t)iat;
    }

    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(payload, "iss");
    if (!cJSON_IsString(iss) || strcmp(iss->valuestring, v->issuer) != 0)
        return "wrong issuer";

    const char *bad = copy_opt_claim(payload, "azp", c->azp, sizeof c->azp, "invalid azp");
    if (bad != NULL)
        return bad;
    if (v->parties != NULL && (c->azp[0] == '\0' || !party_allowed(v->parties, c->azp)))
        return "unauthorized party";

    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
    if (!cJSON_IsString(sub) || sub->valuestring[0] == '\0')
        return "missing sub";
    if (strlen(sub->valuestring) >= sizeof c->sub)
        return "sub too long";
    if (!printable_token(sub->valuestring))
        return "invalid sub";
    memcpy(c->sub, sub->valuestring, strlen(sub->valuestring) + 1);

    return copy_opt_claim(payload, "sid", c->sid, sizeof c->sid, "invalid sid");
}

nt_status nt_verifier_verify(nt_verifier *v, const char *token, size_t len, nt_claims *claims,
                             char *reason, size_t reasonlen)
{
    NT_ASSERT(v != NULL && claims != NULL);
    nt_status st = NT_EUNAUTH;
    const char *why = "malformed token";
    unsigned char *hraw = NULL, *praw = NULL, *sig = NULL;
    size_t hlen = 0, plen = 0, siglen = 0;
    cJSON *header = NULL, *payload = NULL;
    EVP_PKEY *key = NULL;
    nt_claims c;
    memset(&c, 0, sizeof c);
    set_reason(reason, reasonlen, "");

    if (token == NULL || len == 0)
        goto out;
    if (len > v->max_token) {
        why = "token too large";
        goto out;
    }

    /* Exactly three parts; header and payload non-empty. */
    const char *end = token + len;
    const char *d1 = memchr(token, '.', len);
    if (d1 == NULL)
        goto out;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        goto out;
    if (d1 == token || d2 == d1 + 1)
        goto out;
    if (nt_b64url_decode(token, (size_t)(d1 - token), &hraw, &hlen) != NT_OK ||
        nt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &praw, &plen) != NT_OK ||
        nt_b64url_decode(d2 + 1, (size_t)(end - d2 - 1), &sig, &siglen) != NT_OK)
        goto out;

    /* The header, before any key or signature code. */
    header = decode_json_part(hraw, hlen);
    if (header == NULL)
        goto out;
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(header, "typ");
    if (typ != NULL && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT") != 0)) {
        why = "unsupported typ";
        goto out;
    }
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "RS256") != 0) {
        why = "unsupported alg";
        goto out;
    }
    /* RFC 7515 §4.1.11: extensions listed in crit must be understood; we know none. */
    if (cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL) {
        why = "unsupported header";
        goto out;
    }
    const cJSON *cat = cJSON_GetObjectItemCaseSensitive(header, "cat");
    if (cJSON_IsString(cat) && strcmp(cat->valuestring, JWT_MACHINE_CAT) == 0) {
        why = "machine token";
        goto out;
    }
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
    if (kid != NULL && !cJSON_IsString(kid))
        goto out;

    st = get_key(v, kid, &key, reason, reasonlen);
    if (st != NT_OK) {
        why = NULL; /* get_key wrote the reason */
        goto out;
    }
    st = NT_EUNAUTH;

    if (!rs256_verify(key, token, (size_t)(d2 - token), sig, siglen)) {
        why = "bad signature";
        goto out;
    }

    /* Only now that the signature holds are the claims read. */
    payload = decode_json_part(praw, plen);
    if (payload == NULL)
        goto out;
    why = check_claims(v, payload, &c);
    if (why != NULL)
        goto out;

    *claims = c;
    st = NT_OK;

out:
    if (st != NT_OK && why != NULL)
        set_reason(reason, reasonlen, why);
    EVP_PKEY_free(key);
    cJSON_Delete(header);
    cJSON_Delete(payload);
    free(hraw);
    free(praw);
    free(sig);
    return st;
}

/* ---- Lifecycle --------------------------------------------------------------- */

nt_status nt_verifier_create(const nt_verifier_opts *opts, nt_verifier **out)
{
    NT_ASSERT(opts != NULL && out != NULL);
    bool has_pem = opts->jwt_key_pem != NULL && opts->jwt_key_pem[0] != '\0';
    bool has_jwks = opts->fetch != NULL || (opts->jwks_url != NULL && opts->jwks_url[0] != '\0');
    if (opts->issuer == NULL || opts->issuer[0] == '\0' || (!has_pem && !has_jwks) ||
        opts->skew_s < 0 || opts->refetch_cooldown_s < 0 || opts->fetch_wait_ms < 0)
        return NT_EINVAL;

    EVP_PKEY *pem_key = NULL;
    if (has_pem) {
        pem_key = load_public_pem(opts->jwt_key_pem);
        if (!rsa_key_acceptable(pem_key)) {
            EVP_PKEY_free(pem_key);
            return NT_EINVAL;
        }
    }

    nt_verifier *v = calloc(1, sizeof *v);
    NT_ASSERT(v != NULL);
    NT_ASSERT(pthread_mutex_init(&v->mu, NULL) == 0);
    pthread_condattr_t ca;
    NT_ASSERT(pthread_condattr_init(&ca) == 0);
    NT_ASSERT(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0);
    NT_ASSERT(pthread_cond_init(&v->work_cv, &ca) == 0);
    NT_ASSERT(pthread_cond_init(&v->done_cv, &ca) == 0);
    pthread_condattr_destroy(&ca);
    v->pem_key = pem_key;
    if (opts->jwks_url != NULL && opts->jwks_url[0] != '\0')
        v->jwks_url = dup_str(opts->jwks_url);
    if (opts->jwks_bearer != NULL && opts->jwks_bearer[0] != '\0')
        v->jwks_bearer = dup_str(opts->jwks_bearer);
    v->fetch = opts->fetch;
    v->fetch_ctx = opts->fetch_ctx;
    v->issuer = dup_str(opts->issuer);
    if (opts->authorized_parties != NULL && opts->authorized_parties[0] != '\0')
        v->parties = dup_str(opts->authorized_parties);
    v->skew_ms = (int64_t)(opts->skew_s > 0 ? opts->skew_s : DEFAULT_SKEW_S) * 1000;
    v->cooldown_ms =
        (int64_t)(opts->refetch_cooldown_s > 0 ? opts->refetch_cooldown_s : DEFAULT_COOL_S) * 1000;
    v->max_token = opts->max_token_bytes > 0 ? opts->max_token_bytes : NT_JWT_MAX_BYTES;
    v->wait_ms = opts->fetch_wait_ms;
    if (pem_key == NULL) {
        /* Set before the thread starts, so its first look finds them. */
        v->want = opts->prefetch;
        v->retrying = opts->prefetch;
        v->retry_delay_ms = PREFETCH_FIRST_RETRY_MS;
        if (!start_fetch_thread(v)) {
            nt_log_error("jwt", "cannot start the JWKS fetch thread");
            nt_verifier_destroy(v);
            return NT_EINTERNAL;
        }
        v->has_thread = true;
    }
    *out = v;
    return NT_OK;
}

bool nt_verifier_ready(nt_verifier *v)
{
    NT_ASSERT(v != NULL);
    if (v->pem_key != NULL)
        return true;
    pthread_mutex_lock(&v->mu);
    bool ready = v->nkeys > 0;
    pthread_mutex_unlock(&v->mu);
    return ready;
}

unsigned nt_verifier_fetch_count(nt_verifier *v)
{
    NT_ASSERT(v != NULL);
    pthread_mutex_lock(&v->mu);
    unsigned n = v->fetch_count;
    pthread_mutex_unlock(&v->mu);
    return n;
}

void nt_verifier_destroy(nt_verifier *v)
{
    if (v == NULL)
        return;
    if (v->has_thread) {
        pthread_mutex_lock(&v->mu);
        v->stop = true;
        pthread_cond_broadcast(&v->work_cv);
        pthread_cond_broadcast(&v->done_cv);
        pthread_mutex_unlock(&v->mu);
        NT_ASSERT(pthread_join(v->thread, NULL) == 0);
    }
    free_keys(v->keys, v->nkeys);
    EVP_PKEY_free(v->pem_key);
    free(v->jwks_url);
    if (v->jwks_bearer != NULL) {
        explicit_bzero(v->jwks_bearer, strlen(v->jwks_bearer));
        free(v->jwks_bearer);
    }
    free(v->issuer);
    free(v->parties);
    pthread_cond_destroy(&v->done_cv);
    pthread_cond_destroy(&v->work_cv);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

/* ---- Where a token comes from --------------------------------------------- */

const char *nt_jwt_from_bearer(const char *header)
{
    if (header == NULL)
        return NULL;
    const char *p = header;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "bearer", 6) != 0)
        return NULL;
    p += 6;
    if (*p != ' ' && *p != '\t')
        return NULL;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return NULL;
    /* A token has no white space or control characters; refuse rather than
     * hand back something that runs into them. */
    for (const char *q = p; *q != '\0'; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f)
            return NULL;
    return p;
}

nt_status nt_jwt_from_cookie(const char *cookie_header, char *out, size_t outlen)
{
    static const char name[] = "__session";
    const size_t namelen = sizeof name - 1;
    if (cookie_header == NULL)
        return NT_ENOTFOUND;
    const char *p = cookie_header;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = p + strcspn(p, ";");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq != NULL) {
            const char *ne = eq;
            while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            if ((size_t)(ne - p) == namelen && memcmp(p, name, namelen) == 0) {
                const char *a = eq + 1, *b = end;
                while (a < b && (*a == ' ' || *a == '\t'))
                    a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                    b--;
                if (b - a >= 2 && *a == '"' && b[-1] == '"') {
                    a++;
                    b--;
                }
                /* An empty __session (signed out) counts as absent; a later
                 * duplicate may still carry a token. */
                if (b > a) {
                    size_t n = (size_t)(b - a);
                    if (n >= outlen)
                        return NT_ETOOBIG;
                    memcpy(out, a, n);
                    out[n] = '\0';
                    return NT_OK;
                }
            }
        }
        p = end;
    }
    return NT_ENOTFOUND;
}

/* ---- Keys and signing ---------------------------------------------------------- */

nt_status nt_jwt_sign_rs256(EVP_PKEY *key, const char *header_json, const char *payload_json,
                            char **token)
{
    NT_ASSERT(header_json != NULL && payload_json != NULL && token != NULL);
    if (!is_rsa(key))
        return NT_EINVAL;
    nt_status st = NT_EINVAL;
    char *h = nt_b64url_encode(header_json, strlen(header_json));
    char *p = nt_b64url_encode(payload_json, strlen(payload_json));
    char *input = NULL, *s = NULL, *result = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    NT_ASSERT(md != NULL);

    size_t inlen = strlen(h) + 1 + strlen(p);
    input = malloc(inlen + 1);
    NT_ASSERT(input != NULL);
    int w = snprintf(input, inlen + 1, "%s.%s", h, p);
    NT_ASSERT(w >= 0 && (size_t)w == inlen);

    EVP_PKEY_CTX *pctx = NULL;
    /* A failure here almost always means a public key was passed: NT_EINVAL. */
    if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input, inlen) != 1)
        goto out;
    sig = malloc(siglen);
    NT_ASSERT(sig != NULL);
    if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, inlen) != 1)
        goto out;
    s = nt_b64url_encode(sig, siglen);
    size_t tlen = inlen + 1 + strlen(s);
    result = malloc(tlen + 1);
    NT_ASSERT(result != NULL);
    w = snprintf(result, tlen + 1, "%s.%s", input, s);
    NT_ASSERT(w >= 0 && (size_t)w == tlen);
    *token = result;
    st = NT_OK;

out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    free(h);
    free(p);
    free(input);
    free(sig);
    free(s);
    return st;
}

/* base64url of a big number as unsigned big-endian bytes. */
static char *bn_b64url(const BIGNUM *bn)
{
    int n = BN_num_bytes(bn);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    NT_ASSERT(buf != NULL);
    BN_bn2bin(bn, buf);
    char *s = nt_b64url_encode(buf, (size_t)n);
    free(buf);
    return s;
}

nt_status nt_jwk_from_key(EVP_PKEY *key, const char *kid, cJSON **jwk)
{
    NT_ASSERT(jwk != NULL);
    if (!is_rsa(key))
        return NT_EINVAL;
    nt_status st = NT_EINTERNAL;
    BIGNUM *n = NULL, *e = NULL;
    char *ns = NULL, *es = NULL;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
        goto out;
    ns = bn_b64url(n);
    es = bn_b64url(e);
    cJSON *obj = cJSON_CreateObject();
    NT_ASSERT(obj != NULL);
    NT_ASSERT(cJSON_AddStringToObject(obj, "kty", "RSA") != NULL);
    NT_ASSERT(cJSON_AddStringToObject(obj, "use", "sig") != NULL);
    NT_ASSERT(cJSON_AddStringToObject(obj, "alg", "RS256") != NULL);
    if (kid != NULL)
        NT_ASSERT(cJSON_AddStringToObject(obj, "kid", kid) != NULL);
    NT_ASSERT(cJSON_AddStringToObject(obj, "n", ns) != NULL);
    NT_ASSERT(cJSON_AddStringToObject(obj, "e", es) != NULL);
    *jwk = obj;
    st = NT_OK;

out:
    ERR_clear_error();
    BN_free(n);
    BN_free(e);
    free(ns);
    free(es);
    return st;
}

/* Decodes a base64url JWK member into a big number of 1..maxbytes bytes. */
static BIGNUM *jwk_bn(const cJSON *jwk, const char *name, size_t maxbytes)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(jwk, name);
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (!cJSON_IsString(it) ||
        nt_b64url_decode(it->valuestring, strlen(it->valuestring), &raw, &rawlen) != NT_OK)
        return NULL;
    BIGNUM *bn = NULL;
    if (rawlen > 0 && rawlen <= maxbytes) {
        bn = BN_bin2bn(raw, (int)rawlen, NULL);
        NT_ASSERT(bn != NULL);
    }
    free(raw);
    return bn;
}

nt_status nt_jwk_to_key(const cJSON *jwk, EVP_PKEY **key)
{
    NT_ASSERT(key != NULL);
    nt_status st = NT_EINVAL;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!cJSON_IsObject(jwk))
        goto out;
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
    if (!cJSON_IsString(kty) || strcmp(kty->valuestring, "RSA") != 0)
        goto out;
    n = jwk_bn(jwk, "n", RSA_MAX_BITS / 8);
    e = jwk_bn(jwk, "e", 8);
    /* A modulus is odd; an exponent is odd and at least 3. */
    if (n == NULL || e == NULL || !BN_is_odd(n) || !BN_is_odd(e) || BN_is_one(e))
        goto out;

    st = NT_EINTERNAL;
    bld = OSSL_PARAM_BLD_new();
    NT_ASSERT(bld != NULL);
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        st = NT_EINVAL;
        goto out;
    }
    *key = pkey;
    pkey = NULL;
    st = NT_OK;

out:
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return st;
}

/* Reads an RSA private key PEM file. NT_ENOTFOUND when the file does not
 * exist, NT_EINVAL when it is not an RSA private key, NT_EUNAVAIL when it
 * cannot be read. */
static nt_status load_private(const char *path, EVP_PKEY **key)
{
    nt_status st = NT_EUNAVAIL;
    char *buf = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    EVP_PKEY *k = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = errno == ENOENT ? NT_ENOTFOUND : NT_EUNAVAIL;
        goto out;
    }
    buf = malloc(KEY_FILE_MAX + 1);
    NT_ASSERT(buf != NULL);
    for (;;) {
        ssize_t r = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > KEY_FILE_MAX) {
            st = NT_EINVAL;
            goto out;
        }
    }
    st = NT_EINVAL;
    bio = BIO_new_mem_buf(buf, (int)len);
    NT_ASSERT(bio != NULL);
    k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!is_rsa(k))
        goto out;
    *key = k;
    k = NULL;
    st = NT_OK;

out:
    ERR_clear_error();
    if (fd >= 0)
        close(fd);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
        free(buf);
    }
    BIO_free(bio);
    EVP_PKEY_free(k);
    return st;
}

/* mkdir -p of the directory part of path, each new directory mode 0700. */
static nt_status make_parent_dirs(const char *path)
{
    char *dir = dup_str(path);
    nt_status st = NT_OK;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        goto out;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            st = NT_EUNAVAIL;
            goto out;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        st = NT_EUNAVAIL;
out:
    free(dir);
    return st;
}

/* Writes all of data[0..n) to fd. */
static bool write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        data += w;
        n -= (size_t)w;
    }
    return true;
}

nt_status nt_rsa_load_or_create(const char *path, EVP_PKEY **key)
{
    NT_ASSERT(path != NULL && key != NULL);
    if (path[0] == '\0')
        return NT_EINVAL;
    nt_status st = load_private(path, key);
    if (st != NT_ENOTFOUND)
        return st;

    EVP_PKEY *k = NULL;
    BIO *bio = NULL;
    char *tmp = NULL;
    int fd = -1;
    bool tmp_exists = false;

    st = make_parent_dirs(path);
    if (st != NT_OK)
        goto out;
    st = NT_EINTERNAL;
    k = EVP_RSA_gen(2048);
    if (k == NULL)
        goto out;
    /* A secure-memory BIO is wiped when freed: the private key PEM does not
     * linger on the heap. No cipher means unencrypted PKCS#8. */
    bio = BIO_new(BIO_s_secmem());
    NT_ASSERT(bio != NULL);
    if (PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    char *pem = NULL;
    long pemlen = BIO_get_mem_data(bio, &pem);
    if (pemlen <= 0 || pem == NULL)
        goto out;

    unsigned char rnd[8];
    nt_random_bytes(rnd, sizeof rnd);
    size_t tmplen = strlen(path) + 6 + 2 * sizeof rnd + 1;
    tmp = malloc(tmplen);
    NT_ASSERT(tmp != NULL);
    int w = snprintf(tmp, tmplen, "%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1],
                     rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    NT_ASSERT(w >= 0 && (size_t)w < tmplen);

    st = NT_EUNAVAIL;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    tmp_exists = true;
    if (!write_all(fd, pem, (size_t)pemlen) || fsync(fd) != 0)
        goto out;
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto out;

    /* link() refuses to replace a file, so two processes creating the key at
     * once agree on one; a filesystem without hard links falls back to rename. */
    if (link(tmp, path) == 0) {
        nt_log_info("jwt", "created RSA signing key path=%s", path);
    } else if (errno == EEXIST) {
        EVP_PKEY_free(k);
        k = NULL;
        st = load_private(path, &k);
        if (st != NT_OK)
            goto out;
    } else if (rename(tmp, path) == 0) {
        tmp_exists = false;
        nt_log_info("jwt", "created RSA signing key path=%s", path);
    } else {
        goto out;
    }
    *key = k;
    k = NULL;
    st = NT_OK;

out:
    ERR_clear_error();
    if (fd >= 0)
        close(fd);
    if (tmp_exists)
        unlink(tmp);
    free(tmp);
    BIO_free(bio);
    EVP_PKEY_free(k);
    return st;
}

nt_status nt_key_id(EVP_PKEY *key, char *out, size_t outlen)
{
    static const char prefix[] = "ins_local_";
    NT_ASSERT(out != NULL);
    if (key == NULL)
        return NT_EINVAL;
    if (outlen < sizeof prefix + 16)
        return NT_ETOOBIG;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0) {
        ERR_clear_error();
        return NT_EINVAL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (ok != 1 || mdlen < 8) {
        ERR_clear_error();
        return NT_EINTERNAL;
    }
    int w = snprintf(out, outlen, "%s%02x%02x%02x%02x%02x%02x%02x%02x", prefix, md[0], md[1], md[2],
                     md[3], md[4], md[5], md[6], md[7]);
    NT_ASSERT(w >= 0 && (size_t)w < outlen);
    return NT_OK;
}
