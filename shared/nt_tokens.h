/* Token configuration shared by the two edges (gateway, WebSocket edge) and
 * auth: the CLERK_* and NATTER_LOCAL_ISSUER variables, the choice between
 * Clerk mode and local mode, and building the verifier for either mode
 * (DESIGN.md §4). The verifier path is the same in both modes; only where the
 * keys come from and the issuer differ. */
#ifndef NT_TOKENS_H
#define NT_TOKENS_H

#include "nt_config.h"
#include "nt_jwt.h"
#include "nt_nats.h"
#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

/* The subject auth answers with its JWKS in local mode. */
#define NT_TOKENS_JWKS_SUBJECT "chat.auth.jwks"
/* Clerk's Backend API; only JWKS URLs under it get the secret key as bearer. */
#define NT_TOKENS_CLERK_BAPI "https://api.clerk.com/"

/* The nt_cfg_spec initialisers of the token variables, for a service's table:
 *   static const nt_cfg_spec specs[] = { {...}, NT_TOKEN_CONFIG_SPECS };    */
/* clang-format off */
#define NT_TOKEN_CONFIG_SPECS                                                                      \
    {"CLERK_ISSUER_URL", NT_CFG_STR, NULL, 0, 0, false, false,                                     \
     "Clerk issuer (https://<instance>.clerk.accounts.dev), the required iss of every token; "     \
     "required in Clerk mode, which any CLERK_* key variable turns on"},                           \
    {"CLERK_JWT_KEY", NT_CFG_STR, NULL, 0, 0, false, true,                                         \
     "Clerk PEM public key: verifies every token with no network access (masked in logs only "     \
     "because it spans lines)"},                                                                   \
    {"CLERK_JWKS_URL", NT_CFG_STR, NULL, 0, 0, false, false,                                       \
     "JWKS URL used when CLERK_JWT_KEY is unset (default CLERK_ISSUER_URL/.well-known/jwks.json;"  \
     " under https://api.clerk.com/ it is sent CLERK_SECRET_KEY)"},                                \
    {"CLERK_SECRET_KEY", NT_CFG_STR, NULL, 0, 0, false, true,                                      \
     "Clerk secret key (sk_...): Backend API access for the JWKS and user profiles"},              \
    {"CLERK_AUTHORIZED_PARTIES", NT_CFG_STR, NULL, 0, 0, false, false,                             \
     "comma-separated origins a token's azp must be one of; unset = azp not checked"},             \
    {"NATTER_LOCAL_ISSUER", NT_CFG_STR, "https://natter.local", 0, 0, false, false,                \
     "iss of the tokens the built-in issuer mints (local mode: no CLERK_* variable set)"}
/* clang-format on */

/* True iff any of CLERK_ISSUER_URL, CLERK_JWT_KEY, CLERK_JWKS_URL or
 * CLERK_SECRET_KEY is set (non-empty). cfg must hold NT_TOKEN_CONFIG_SPECS. */
bool nt_tokens_clerk_mode(const nt_config *cfg);

/* Checks the token variables together. In Clerk mode CLERK_ISSUER_URL is
 * required and must be an http(s) URL, and CLERK_JWKS_URL, when set, too.
 * NT_EINVAL with a message naming the variable in err; main exits 2 then. */
nt_status nt_tokens_check_config(const nt_config *cfg, char *err, size_t errlen);

/* The verifier options a configuration means. opts points into this struct
 * and into cfg, so neither may move or be freed while opts is used (the
 * verifier copies what it keeps, so after nt_verifier_create both may go). */
typedef struct {
    nt_verifier_opts opts;
    bool clerk;          /* Clerk mode */
    char issuer[512];    /* the issuer without trailing slashes */
    char jwks_url[1024]; /* "" when the PEM key or the NATS fetch is used */
} nt_tokens_setup;

/* Fills *out from cfg (call nt_tokens_check_config first). Clerk mode: the PEM
 * from CLERK_JWT_KEY, else the JWKS at CLERK_JWKS_URL, else at
 * CLERK_ISSUER_URL/.well-known/jwks.json; the bearer CLERK_SECRET_KEY only for
 * a JWKS URL under https://api.clerk.com/; issuer CLERK_ISSUER_URL; parties
 * CLERK_AUTHORIZED_PARTIES. Local mode: issuer NATTER_LOCAL_ISSUER and a fetch
 * that asks auth for its JWKS over nc (borrowed; it must outlive the
 * verifier; NULL makes every fetch fail with NT_EUNAVAIL). Both JWKS modes set
 * prefetch and fetch_wait_ms = 0 (see nt_tokens_verifier_create). NT_EINVAL
 * (message in err) when a URL does not fit. Pure. */
nt_status nt_tokens_setup_make(const nt_config *cfg, nt_nats *nc, nt_tokens_setup *out, char *err,
                               size_t errlen);

/* nt_tokens_setup_make, then nt_verifier_create. *out is the caller's
 * (nt_verifier_destroy); in local mode nc must outlive it. NT_EINVAL when the
 * configuration does not make a verifier (e.g. the PEM does not parse).
 * With a JWKS (local mode, or Clerk mode without CLERK_JWT_KEY) the verifier
 * fetches the keys on its own thread right away, retrying every 5 s until it
 * succeeds, and never blocks the calling thread: a token that needs keys not
 * yet fetched (before the first fetch finished, or the first request after a
 * key rotation, for the duration of one fetch) gets NT_EUNAVAIL "signing keys
 * are being fetched; retry" at once, which the edges answer with 503. Logs the
 * mode and where the keys come from (a URL without its user information). */
nt_status nt_tokens_verifier_create(const nt_config *cfg, nt_nats *nc, nt_verifier **out);

/* Unwraps auth's {"data":{"keys":[...]}} reply into the bare JWKS text
 * {"keys":[...]} (*json malloc'd, the caller's). NT_EUNAVAIL for an error
 * envelope or anything that is not a JWKS envelope. Pure. */
nt_status nt_tokens_unwrap_jwks(const char *envelope, size_t len, char **json, size_t *jlen);

#endif
