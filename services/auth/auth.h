/* The auth service's shared types: a user profile, the service context, and
 * the route table. Handlers never see nats.c (STYLE.md). */
#ifndef AUTH_H
#define AUTH_H

#include "nt_id.h"
#include "nt_kv.h"
#include "nt_route.h"
#include "nt_store.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>

#define AUTH_USER_ID_MAX 128

/* A user profile as stored in the users table. Strings are owned. */
typedef struct {
    char id[NT_ID_LEN];
    char user_id[AUTH_USER_ID_MAX]; /* clerk_user_id: the token's sub */
    char *username;
    char *email;
    char *avatar_url;    /* NULL when none */
    char created_at[32]; /* RFC 3339 UTC */
    char updated_at[32];
} auth_profile;

void auth_profile_clear(auth_profile *p);

/* The local token issuer (local mode only). */
typedef struct {
    EVP_PKEY *key;
    char kid[64];
    char *jwks_json; /* {"keys":[...]} */
    char issuer[256];
    char azp[256];
    long long ttl_s;
} auth_issuer;

/* Everything a handler may use. */
typedef struct {
    nt_store *store;
    nt_kv *kv;                 /* the session cache; NULL disables it */
    auth_issuer *issuer;       /* NULL in Clerk mode */
    const char *clerk_secret;  /* CLERK_SECRET_KEY, NULL when unset */
    const char *clerk_api_url; /* https://api.clerk.com */
} auth_ctx;

extern const nt_route auth_routes[];
extern const size_t auth_nroutes;

/* ---- store (auth_store.c) ---- */

/* Called by the writes below inside their transaction, after the row is
 * written and read back, before COMMIT: an error status rolls the write back.
 * The session cache is updated here, so cache writes happen in the same order
 * as database writes, across threads and processes. */
typedef nt_status (*auth_before_commit)(void *arg, const auth_profile *p);
/* Called with the lock still held when the transaction was rolled back after
 * the hook had run (the commit failed), so the hook's effect can be undone
 * before anyone else can read. */
typedef void (*auth_after_rollback)(void *arg, const char *user_id);

nt_status auth_store_get(nt_store *st, const char *user_id, auth_profile *out);
/* Creates or replaces the profile of user_id; avatar may be NULL. */
nt_status auth_store_upsert(nt_store *st, const char *user_id, const char *username,
                            const char *email, const char *avatar, auth_before_commit hook,
                            auth_after_rollback undo, void *arg, auth_profile *out);
/* Creates the profile only when absent; returns the stored one either way. */
nt_status auth_store_insert_if_absent(nt_store *st, const char *user_id, const char *username,
                                      const char *email, auth_before_commit hook,
                                      auth_after_rollback undo, void *arg, auth_profile *out);
/* Updates the given fields (NULL username: unchanged; set_avatar: avatar, possibly NULL).
 * NT_ENOTFOUND when the user has no profile. */
nt_status auth_store_update(nt_store *st, const char *user_id, const char *username,
                            bool set_avatar, const char *avatar, auth_before_commit hook,
                            auth_after_rollback undo, void *arg, auth_profile *out);

/* ---- codec (auth_codec.c): the only place that touches cJSON for profiles ---- */
cJSON *auth_profile_to_json(const auth_profile *p);
/* Parses a cached profile back (the session cache). NT_EINVAL when malformed. */
nt_status auth_profile_from_json(const char *text, size_t len, auth_profile *out);
/* Validation of profile fields; messages name the field. */
nt_status auth_check_email(const char *email, char *err, size_t errlen);
nt_status auth_check_avatar(const char *url, char *err, size_t errlen);
extern const nt_text_rule auth_username_rule;
/* Seconds since the epoch of an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SSZ"; 0 when malformed. */
int64_t auth_time_parse(const char *rfc3339);
/* POST /api/users asks Clerk at most this often per user. */
#define AUTH_CLERK_MIN_INTERVAL_S 60

/* True when s is a plausible user id (1–127 chars of [A-Za-z0-9_-]). */
bool auth_user_id_valid(const char *s);

/* ---- Clerk Backend API (auth_clerk.c) ---- */
/* Fetches username, email and avatar of user_id from GET {api}/v1/users/{id}.
 * NT_ENOTFOUND when Clerk does not know the user, NT_ERATE when Clerk limits us,
 * NT_EUNAVAIL when Clerk cannot be reached. Outputs are malloc'd. */
nt_status auth_clerk_fetch(const char *api_url, const char *secret, const char *user_id,
                           char **username, char **email, char **avatar, char *err, size_t errlen);
/* The pure part: picks the fields out of a Clerk User object. */
nt_status auth_clerk_parse_user(const char *json, size_t len, const char *user_id, char **username,
                                char **email, char **avatar);

/* ---- local issuer (auth_issuer.c) ---- */
nt_status auth_issuer_create(const char *key_path, const char *issuer, const char *azp,
                             long long ttl_s, auth_issuer **out);
void auth_issuer_destroy(auth_issuer *is);
/* The stable local user id of a username: "user_" + 24 hex of SHA-256. */
void auth_local_user_id(const char *username, char out[AUTH_USER_ID_MAX]);
/* Mints a Clerk-shaped session token for user_id at now (seconds). */
nt_status auth_issuer_mint(auth_issuer *is, const char *user_id, int64_t now_s, char **token,
                           int64_t *expires_at);

#endif
