/* The auth service's routes: users upsert/get/update, the JWKS and (local
 * mode) the development token. Handlers decode, call the store, encode. */
#include "auth.h"

#include "nt_clock.h"
#include "nt_log.h"

#include <stdio.h>
#include <string.h>

#define BODY_MAX   16384
#define NO_PROFILE "no profile for this user yet; create it with POST /api/users"

/* ---- the session cache: session:{user} in KV, 24 h ----
 *
 * Writers put the new profile inside their database transaction (so cache
 * writes land in database order); readers fill a missing entry with a
 * create-if-absent, so a slow reader never overwrites a newer value. */

typedef struct {
    auth_ctx *ctx;
    bool put;    /* the hook wrote the cache: undo it if the write failed after */
    bool failed; /* the hook could not write the cache: the write was refused */
} cache_hook;

static void cache_key(const char *user_id, char *key, size_t keylen)
{
    snprintf(key, keylen, "session:%s", user_id);
}

/* Puts the new profile. When that fails the whole write is refused (and
 * rolled back): committing without the cache entry would let a reader that
 * read the old row just before fill the cache with it for a day. One KV call,
 * bounded by nt_kv's 1 s API timeout, under the store's lock. */
static nt_status cache_before_commit(void *arg, const auth_profile *p)
{
    cache_hook *h = arg;
    if (h->ctx->kv == NULL)
        return NT_OK;
    char key[AUTH_USER_ID_MAX + 16];
    cache_key(p->user_id, key, sizeof(key));
    cJSON *j = auth_profile_to_json(p);
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    nt_status st = nt_kv_put(h->ctx->kv, key, s, strlen(s));
    free(s);
    if (st == NT_OK) {
        h->put = true;
        return NT_OK;
    }
    h->failed = true;
    nt_log_error("auth", "session cache unreachable; write refused user=%s", p->user_id);
    return NT_EUNAVAIL;
}

/* After a rollback whose hook had already put the new value (the commit
 * failed): removes it, still under the store's lock. */
static void cache_after_rollback(void *arg, const char *user_id)
{
    cache_hook *h = arg;
    if (!h->put)
        return;
    char key[AUTH_USER_ID_MAX + 16];
    cache_key(user_id, key, sizeof(key));
    if (nt_kv_delete(h->ctx->kv, key) != NT_OK)
        nt_log_error("auth", "session cache may hold an uncommitted profile user=%s", user_id);
    h->put = false;
}

static void cache_fill(auth_ctx *ctx, const auth_profile *p)
{
    if (ctx->kv == NULL)
        return;
    char key[AUTH_USER_ID_MAX + 16];
    cache_key(p->user_id, key, sizeof(key));
    cJSON *j = auth_profile_to_json(p);
    char *s = nt_json_print(j);
    cJSON_Delete(j);
    nt_kv_create(ctx->kv, key, s, strlen(s)); /* a conflict means a writer was first */
    free(s);
}

static bool cache_get(auth_ctx *ctx, const char *user_id, auth_profile *out)
{
    char key[AUTH_USER_ID_MAX + 16];
    char *data = NULL;
    size_t len = 0;
    if (ctx->kv == NULL)
        return false;
    cache_key(user_id, key, sizeof(key));
    if (nt_kv_get(ctx->kv, key, &data, &len) != NT_OK)
        return false;
    nt_status st = auth_profile_from_json(data, len, out);
    free(data);
    if (st == NT_OK && strcmp(out->user_id, user_id) == 0)
        return true;
    if (st == NT_OK)
        auth_profile_clear(out);
    return false;
}

/* A failed write: names the cause when it was the cache. */
static nt_status write_failed(nt_reply *rep, cache_hook *h, nt_status st)
{
    if (h->failed)
        return nt_reply_fail(rep, st, "the session cache is unavailable; nothing was changed");
    return st;
}

static nt_status reply_profile(nt_reply *rep, const auth_profile *p)
{
    nt_reply_set(rep, auth_profile_to_json(p));
    return NT_OK;
}

static nt_status check_caller(const nt_request *req, nt_reply *rep)
{
    if (!auth_user_id_valid(req->user))
        return nt_reply_fail(rep, NT_EUNAUTH, "the user id has an invalid form");
    return NT_OK;
}

/* ---- chat.auth.users.upsert ---- */

static nt_status users_upsert(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"username", "email", "avatar_url", NULL};
    auth_ctx *ctx = vctx;
    cJSON *body = NULL;
    char *username = NULL, *email = NULL, *avatar = NULL;
    auth_profile p;
    memset(&p, 0, sizeof(p));
    nt_status st = check_caller(req, rep);
    if (st != NT_OK)
        return st;
    st = nt_json_parse_object(req->data, req->len, &body, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;

    if (ctx->clerk_secret != NULL) {
        /* With Clerk, the profile comes from Clerk, whatever the body says;
         * at most once a minute per user, to spare Clerk's rate limit. */
        if (auth_store_get(ctx->store, req->user, &p) == NT_OK &&
            auth_time_parse(p.updated_at) > nt_clock_now_ms() / 1000 - AUTH_CLERK_MIN_INTERVAL_S) {
            st = reply_profile(rep, &p);
            goto out;
        }
        auth_profile_clear(&p);
        st = auth_clerk_fetch(ctx->clerk_api_url, ctx->clerk_secret, req->user, &username, &email,
                              &avatar, rep->message, sizeof(rep->message));
        if (st != NT_OK)
            goto out;
    } else {
        st = nt_json_check_keys(body, allowed, rep->message, sizeof(rep->message));
        if (st != NT_OK)
            goto out;
        st = nt_json_get_text(body, "username", true, &auth_username_rule, &username, rep->message,
                              sizeof(rep->message));
        if (st != NT_OK)
            goto out;
        static const nt_text_rule any = {.min_chars = 0, .max_chars = 4096};
        st =
            nt_json_get_text(body, "email", true, &any, &email, rep->message, sizeof(rep->message));
        if (st == NT_OK)
            st = auth_check_email(email, rep->message, sizeof(rep->message));
        if (st != NT_OK)
            goto out;
        st = nt_json_get_text(body, "avatar_url", false, &any, &avatar, rep->message,
                              sizeof(rep->message));
        if (st == NT_OK)
            st = auth_check_avatar(avatar, rep->message, sizeof(rep->message));
        else if (st == NT_ENOTFOUND)
            st = NT_OK;
        if (st != NT_OK)
            goto out;
    }
    cache_hook hook = {ctx, false, false};
    st = auth_store_upsert(ctx->store, req->user, username, email, avatar, cache_before_commit,
                           cache_after_rollback, &hook, &p);
    if (st != NT_OK) {
        st = write_failed(rep, &hook, st);
        goto out;
    }
    st = reply_profile(rep, &p);
out:
    cJSON_Delete(body);
    free(username);
    free(email);
    free(avatar);
    auth_profile_clear(&p);
    return st;
}

/* ---- chat.auth.users.get ---- */

static nt_status users_get(void *vctx, const nt_request *req, nt_reply *rep)
{
    auth_ctx *ctx = vctx;
    auth_profile p;
    memset(&p, 0, sizeof(p));
    nt_status st = check_caller(req, rep);
    if (st != NT_OK)
        return st;
    if (cache_get(ctx, req->user, &p)) {
        st = reply_profile(rep, &p);
        auth_profile_clear(&p);
        return st;
    }
    st = auth_store_get(ctx->store, req->user, &p);
    if (st == NT_ENOTFOUND && ctx->clerk_secret != NULL) {
        /* First visit with Clerk: create the profile from Clerk's record. */
        char *username = NULL, *email = NULL, *avatar = NULL;
        st = auth_clerk_fetch(ctx->clerk_api_url, ctx->clerk_secret, req->user, &username, &email,
                              &avatar, rep->message, sizeof(rep->message));
        cache_hook hook = {ctx, false, false};
        if (st == NT_OK) {
            st = auth_store_upsert(ctx->store, req->user, username, email, avatar,
                                   cache_before_commit, cache_after_rollback, &hook, &p);
            if (st != NT_OK)
                st = write_failed(rep, &hook, st);
        }
        free(username);
        free(email);
        free(avatar);
    } else if (st == NT_ENOTFOUND) {
        return nt_reply_fail(rep, NT_ENOTFOUND, NO_PROFILE);
    } else if (st == NT_OK) {
        cache_fill(ctx, &p);
    }
    if (st == NT_OK)
        st = reply_profile(rep, &p);
    auth_profile_clear(&p);
    return st;
}

/* ---- chat.auth.users.update ---- */

static nt_status users_update(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"username", "avatar_url", NULL};
    static const nt_text_rule any = {.min_chars = 0, .max_chars = 4096};
    auth_ctx *ctx = vctx;
    cJSON *body = NULL;
    char *username = NULL, *avatar = NULL;
    bool set_avatar = false;
    auth_profile p;
    memset(&p, 0, sizeof(p));
    nt_status st = check_caller(req, rep);
    if (st != NT_OK)
        return st;
    st = nt_json_parse_object(req->data, req->len, &body, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = nt_json_check_keys(body, allowed, rep->message, sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    if (cJSON_GetArraySize(body) == 0) {
        st = nt_reply_fail(rep, NT_EINVAL, "nothing to update: give 'username' or 'avatar_url'");
        goto out;
    }
    st = nt_json_get_text(body, "username", false, &auth_username_rule, &username, rep->message,
                          sizeof(rep->message));
    if (st == NT_ENOTFOUND) {
        if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "username"))) {
            st = nt_reply_fail(rep, NT_EINVAL, "'username' cannot be null");
            goto out;
        }
        st = NT_OK;
    }
    if (st != NT_OK)
        goto out;
    const cJSON *av = cJSON_GetObjectItemCaseSensitive(body, "avatar_url");
    if (av != NULL) {
        set_avatar = true; /* null clears the avatar */
        if (!cJSON_IsNull(av)) {
            st = nt_json_get_text(body, "avatar_url", true, &any, &avatar, rep->message,
                                  sizeof(rep->message));
            if (st == NT_OK)
                st = auth_check_avatar(avatar, rep->message, sizeof(rep->message));
            if (st != NT_OK)
                goto out;
        }
    }
    cache_hook hook = {ctx, false, false};
    st = auth_store_update(ctx->store, req->user, username, set_avatar, avatar, cache_before_commit,
                           cache_after_rollback, &hook, &p);
    if (st == NT_ENOTFOUND) {
        st = nt_reply_fail(rep, NT_ENOTFOUND, NO_PROFILE);
        goto out;
    }
    if (st != NT_OK) {
        st = write_failed(rep, &hook, st);
        goto out;
    }
    st = reply_profile(rep, &p);
out:
    cJSON_Delete(body);
    free(username);
    free(avatar);
    auth_profile_clear(&p);
    return st;
}

/* ---- chat.auth.jwks ---- */

static nt_status jwks(void *vctx, const nt_request *req, nt_reply *rep)
{
    auth_ctx *ctx = vctx;
    (void)req;
    if (ctx->issuer == NULL)
        return nt_reply_fail(rep, NT_ENOTFOUND, "no local issuer: Clerk is configured");
    cJSON *j = cJSON_Parse(ctx->issuer->jwks_json);
    NT_ASSERT(j != NULL);
    nt_reply_set(rep, j);
    return NT_OK;
}

/* ---- chat.auth.dev.token (local mode only) ---- */

static nt_status dev_token(void *vctx, const nt_request *req, nt_reply *rep)
{
    static const char *const allowed[] = {"username", NULL};
    auth_ctx *ctx = vctx;
    cJSON *body = NULL;
    char *username = NULL, *token = NULL;
    auth_profile p;
    memset(&p, 0, sizeof(p));
    nt_status st;
    if (ctx->issuer == NULL)
        return nt_reply_fail(rep, NT_ENOTFOUND, "development tokens are off: Clerk is configured");
    st = nt_json_parse_object(req->data, req->len, &body, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = nt_json_check_keys(body, allowed, rep->message, sizeof(rep->message));
    if (st == NT_OK)
        st = nt_json_get_text(body, "username", true, &auth_username_rule, &username, rep->message,
                              sizeof(rep->message));
    if (st != NT_OK)
        goto out;
    char user_id[AUTH_USER_ID_MAX], email[AUTH_USER_ID_MAX + 32];
    auth_local_user_id(username, user_id);
    snprintf(email, sizeof(email), "%s@natter.local", user_id);
    /* The profile exists from the first token on, so /api/users/me answers at once. */
    cache_hook hook = {ctx, false, false};
    st = auth_store_insert_if_absent(ctx->store, user_id, username, email, cache_before_commit,
                                     cache_after_rollback, &hook, &p);
    if (st != NT_OK) {
        st = write_failed(rep, &hook, st);
        goto out;
    }
    int64_t expires_at = 0;
    st = auth_issuer_mint(ctx->issuer, user_id, nt_clock_now_ms() / 1000, &token, &expires_at);
    if (st != NT_OK)
        goto out;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "token", token);
    cJSON_AddStringToObject(d, "user_id", user_id);
    cJSON_AddStringToObject(d, "username", p.username);
    cJSON_AddNumberToObject(d, "expires_at", (double)expires_at);
    nt_reply_set(rep, d);
    nt_log_info("auth", "dev token minted user=%s", user_id);
out:
    cJSON_Delete(body);
    free(username);
    free(token);
    auth_profile_clear(&p);
    return st;
}

const nt_route auth_routes[] = {
    {"users_upsert", "chat.auth.users.upsert", users_upsert, BODY_MAX, true, 0},
    {"users_get", "chat.auth.users.get", users_get, BODY_MAX, true, 0},
    {"users_update", "chat.auth.users.update", users_update, BODY_MAX, true, 0},
    {"jwks", "chat.auth.jwks", jwks, BODY_MAX, false, 0},
    {"dev_token", "chat.auth.dev.token", dev_token, BODY_MAX, false, 0},
};
const size_t auth_nroutes = sizeof(auth_routes) / sizeof(auth_routes[0]);
