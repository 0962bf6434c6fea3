/* Verifying Clerk session tokens (RS256 JWTs), DESIGN.md §4, and signing them
 * for the local issuer and for tests. The verifier reads the header itself
 * first: alg must be RS256 and kid must name a known key (unless a PEM key is
 * configured, which serves every kid); anything else is refused before any
 * signature code runs. Then signature, exp/nbf/iat with clock skew, iss, azp
 * (when authorized parties are set), cat (machine tokens refused) and sub. */
#ifndef NT_JWT_H
#define NT_JWT_H

#include "nt_json.h"
#include "nt_status.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NT_JWT_MAX_BYTES 8192 /* default cap on a token's length */

typedef struct {
    char sub[128];         /* the user id */
    char sid[128];         /* the session id, "" when absent */
    char azp[256];         /* "" when absent */
    int64_t exp, iat, nbf; /* seconds; 0 when absent (exp is required) */
} nt_claims;

/* Returns the JWKS document ({"keys":[...]}) as malloc'd text in *json. */
typedef nt_status (*nt_jwks_fetch)(void *ctx, char **json, size_t *len);

typedef struct {
    const char *jwt_key_pem; /* CLERK_JWT_KEY: a PEM public key used for every token */
    const char *jwks_url;    /* fetched with nt_http_get when no PEM and no fetch */
    const char *jwks_bearer; /* Authorization for jwks_url (Clerk BAPI /v1/jwks); may be NULL */
    nt_jwks_fetch fetch;     /* overrides jwks_url: local mode (NATS) and tests */
    void *fetch_ctx;
    const char *issuer;             /* required: iss must equal it */
    const char *authorized_parties; /* comma-separated origins; NULL or "" = no azp check */
    int skew_s;                     /* clock skew allowance; 0 means the default 5 */
    int refetch_cooldown_s;         /* unknown kid refetch at most this often; 0 means 60 */
    size_t max_token_bytes;         /* 0 means NT_JWT_MAX_BYTES */
    /* How long a verify call that needs keys (first token, unknown kid) may
     * wait for the fetch thread, in ms. 0 = never wait: the fetch is asked for
     * (when the cool-down allows) and the call returns NT_EUNAVAIL at once;
     * negative is NT_EINVAL. */
    int fetch_wait_ms;
    /* Fetch once right at creation instead of on the first token, and after a
     * failure retry after 250 ms, doubling up to min(cool-down, 5 s), until a
     * fetch succeeds. A JWKS with no usable RS256 key counts as a failure. */
    bool prefetch;
} nt_verifier_opts;

typedef struct nt_verifier nt_verifier;

/* Copies what it needs from opts. With a PEM it loads the key now (NT_EINVAL
 * when it does not parse as an RSA public key) and never fetches. With JWKS it
 * starts a fetch thread owned by the verifier: every JWKS fetch (HTTP or the
 * injected fetch) runs there and never on a caller's thread. Without prefetch
 * the first fetch waits for the first token, so start-up does not depend on
 * the network; with prefetch it starts at once. NT_EINVAL for missing or
 * negative options, NT_EINTERNAL when the thread cannot be started. */
nt_status nt_verifier_create(const nt_verifier_opts *opts, nt_verifier **out);

/* Verifies token[0..len). NT_OK fills *claims. NT_EUNAUTH otherwise, with a
 * short reason for logs and the 401 body ("token expired", "unknown key id",
 * "bad signature", ...) in reason; the reason never contains the token.
 * A token whose kid is cached needs only a short mutex, even while a fetch
 * runs. An unknown kid asks the fetch thread for one JWKS refetch unless one
 * happened within the cool-down (concurrent misses share one fetch), then
 * waits up to fetch_wait_ms for it: NT_EUNAVAIL "signing keys are being
 * fetched; retry" when it has not finished by then (at once when
 * fetch_wait_ms is 0), NT_EUNAUTH "unknown key id" when it finished without
 * the kid. NT_EUNAVAIL "keys unavailable" when the last fetch failed; after a
 * failed fetch the next try waits min(cool-down, 5 s). Never fetches on the
 * calling thread. Thread-safe. Uses nt_clock_now_ms() for the cool-down. */
nt_status nt_verifier_verify(nt_verifier *v, const char *token, size_t len, nt_claims *claims,
                             char *reason, size_t reasonlen);

/* True when tokens can be checked now: a PEM key, or at least one key from
 * the JWKS. For readiness probes. Thread-safe. */
bool nt_verifier_ready(nt_verifier *v);

/* How many JWKS fetches have completed, successfully or not (for tests and
 * metrics). Thread-safe. */
unsigned nt_verifier_fetch_count(nt_verifier *v);

/* Stops and joins the fetch thread, then frees v. A fetch in progress is not
 * interrupted: this returns once it does (bounded by the fetch's own timeout).
 * No verify call may be running or start. NULL is harmless. */
void nt_verifier_destroy(nt_verifier *v);

/* ---- Where a token comes from ------------------------------------------- */

/* The token in an "Authorization: Bearer <t>" value (scheme case-insensitive),
 * or NULL. Points into header. */
const char *nt_jwt_from_bearer(const char *header);

/* Copies the value of the __session cookie from a Cookie header into out.
 * NT_ENOTFOUND when absent, NT_ETOOBIG when it does not fit. */
nt_status nt_jwt_from_cookie(const char *cookie_header, char *out, size_t outlen);

/* ---- Keys and signing ------------------------------------------------------ */

/* Signs header.payload (both JSON text, encoded here) with RS256 and returns
 * the compact token (malloc'd). */
nt_status nt_jwt_sign_rs256(EVP_PKEY *key, const char *header_json, const char *payload_json,
                            char **token);

/* The public JWK {"kty":"RSA","use":"sig","alg":"RS256","kid","n","e"} of an RSA key. */
nt_status nt_jwk_from_key(EVP_PKEY *key, const char *kid, cJSON **jwk);

/* The RSA public key of a JWK (kty RSA, n, e). NT_EINVAL when malformed. */
nt_status nt_jwk_to_key(const cJSON *jwk, EVP_PKEY **key);

/* Loads an RSA private key from a PEM file, or creates a 2048-bit one there
 * (mode 0600, parent directory created) when the file does not exist. */
nt_status nt_rsa_load_or_create(const char *path, EVP_PKEY **key);

/* A stable key id for key: "ins_local_" + 16 hex of SHA-256 of its public DER. */
nt_status nt_key_id(EVP_PKEY *key, char *out, size_t outlen);

#endif
