/* Token configuration: which mode a service is in, and the verifier for it.
 * In local mode the keys come from auth over NATS (chat.auth.jwks), fetched
 * with a blocking request; that runs on the verifier's own fetch thread, never
 * on a server thread. */
#include "nt_tokens.h"

#include "nt_id.h"
#include "nt_log.h"

#include <stdio.h>
#include <string.h>

#define JWKS_REQUEST_TIMEOUT_MS 2000

static const char *const clerk_vars[] = {"CLERK_ISSUER_URL", "CLERK_JWT_KEY", "CLERK_JWKS_URL",
                                         "CLERK_SECRET_KEY"};

bool nt_tokens_clerk_mode(const nt_config *cfg)
{
    for (size_t i = 0; i < sizeof(clerk_vars) / sizeof(clerk_vars[0]); i++) {
        const char *v = nt_config_str(cfg, clerk_vars[i]);
        if (v != NULL && v[0] != '\0')
            return true;
    }
    return false;
}

static bool is_http_url(const char *s)
{
    size_t n = strlen(s);
    if (strncmp(s, "https://", 8) == 0)
        return n > 8;
    if (strncmp(s, "http://", 7) == 0)
        return n > 7;
    return false;
}

nt_status nt_tokens_check_config(const nt_config *cfg, char *err, size_t errlen)
{
    if (!nt_tokens_clerk_mode(cfg))
        return NT_OK;
    const char *issuer = nt_config_str(cfg, "CLERK_ISSUER_URL");
    if (issuer == NULL || issuer[0] == '\0') {
        snprintf(err, errlen,
                 "CLERK_ISSUER_URL: is required in Clerk mode (CLERK_JWT_KEY, CLERK_JWKS_URL or "
                 "CLERK_SECRET_KEY is set)");
        return NT_EINVAL;
    }
    if (!is_http_url(issuer)) {
        snprintf(err, errlen, "CLERK_ISSUER_URL: must be an http(s) URL, got '%.64s'", issuer);
        return NT_EINVAL;
    }
    const char *jwks = nt_config_str(cfg, "CLERK_JWKS_URL");
    if (jwks != NULL && jwks[0] != '\0' && !is_http_url(jwks)) {
        snprintf(err, errlen, "CLERK_JWKS_URL: must be an http(s) URL, got '%.64s'", jwks);
        return NT_EINVAL;
    }
    return NT_OK;
}

nt_status nt_tokens_unwrap_jwks(const char *envelope, size_t len, char **json, size_t *jlen)
{
    nt_status st = NT_EUNAVAIL;
    cJSON *root = NULL;
    char err[NT_ERRMSG_LEN];
    if (envelope == NULL || nt_json_parse(envelope, len, &root, err, sizeof(err)) != NT_OK)
        goto out;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsObject(data) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(data, "keys")))
        goto out;
    char *text = nt_json_print(data);
    *jlen = strlen(text);
    *json = text;
    st = NT_OK;
out:
    cJSON_Delete(root);
    return st;
}

/* The nt_jwks_fetch of local mode: ask auth over NATS. ctx is the nt_nats. */
static nt_status local_fetch(void *ctx, char **json, size_t *len)
{
    nt_nats *nc = ctx;
    nt_response resp = {0};
    char id[NT_ID_LEN];
    nt_status st;
    if (nc == NULL) {
        nt_log_warn("tokens", "JWKS request impossible: no NATS connection");
        return NT_EUNAVAIL;
    }
    nt_id_new(id);
    st = nt_nats_request(nc, NT_TOKENS_JWKS_SUBJECT, NULL, id, "{}", 2, JWKS_REQUEST_TIMEOUT_MS,
                         &resp);
    if (st != NT_OK) {
        nt_log_warn("tokens", "JWKS request failed subject=%s status=%s", NT_TOKENS_JWKS_SUBJECT,
                    nt_status_str(st));
        st = NT_EUNAVAIL;
        goto out;
    }
    if (resp.http != 200) {
        nt_log_warn("tokens", "JWKS request answered http=%d", resp.http);
        st = NT_EUNAVAIL;
        goto out;
    }
    st = nt_tokens_unwrap_jwks(resp.data, resp.len, json, len);
    if (st != NT_OK)
        nt_log_warn("tokens", "JWKS reply is not a JWKS envelope");
out:
    nt_response_free(&resp);
    return st;
}

/* Copies s into out without trailing slashes; false when it does not fit. */
static bool copy_trimmed(char *out, size_t outlen, const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    if (n >= outlen)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

nt_status nt_tokens_setup_make(const nt_config *cfg, nt_nats *nc, nt_tokens_setup *out, char *err,
                               size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->clerk = nt_tokens_clerk_mode(cfg);
    if (!out->clerk) {
        const char *iss = nt_config_str(cfg, "NATTER_LOCAL_ISSUER");
        if (iss == NULL || !copy_trimmed(out->issuer, sizeof(out->issuer), iss)) {
            snprintf(err, errlen, "NATTER_LOCAL_ISSUER: is missing or too long");
            return NT_EINVAL;
        }
        out->opts.issuer = out->issuer;
        out->opts.fetch = local_fetch;
        out->opts.fetch_ctx = nc;
        out->opts.prefetch = true;
        out->opts.fetch_wait_ms = 0;
        return NT_OK;
    }

    const char *iss = nt_config_str(cfg, "CLERK_ISSUER_URL");
    if (iss == NULL || !copy_trimmed(out->issuer, sizeof(out->issuer), iss) ||
        out->issuer[0] == '\0') {
        snprintf(err, errlen, "CLERK_ISSUER_URL: is missing or too long");
        return NT_EINVAL;
    }
    out->opts.issuer = out->issuer;
    out->opts.authorized_parties = nt_config_str(cfg, "CLERK_AUTHORIZED_PARTIES");

    const char *pem = nt_config_str(cfg, "CLERK_JWT_KEY");
    if (pem != NULL && pem[0] != '\0') {
        out->opts.jwt_key_pem = pem;
        return NT_OK;
    }
    const char *url = nt_config_str(cfg, "CLERK_JWKS_URL");
    int n;
    if (url != NULL && url[0] != '\0')
        n = snprintf(out->jwks_url, sizeof(out->jwks_url), "%s", url);
    else
        n = snprintf(out->jwks_url, sizeof(out->jwks_url), "%s/.well-known/jwks.json", out->issuer);
    if (n < 0 || (size_t)n >= sizeof(out->jwks_url)) {
        snprintf(err, errlen, "CLERK_JWKS_URL: the JWKS URL is too long");
        return NT_EINVAL;
    }
    out->opts.jwks_url = out->jwks_url;
    out->opts.prefetch = true;
    out->opts.fetch_wait_ms = 0;
    /* The secret key goes only to Clerk's own API, never to another host. */
    if (strncmp(out->jwks_url, NT_TOKENS_CLERK_BAPI, strlen(NT_TOKENS_CLERK_BAPI)) == 0)
        out->opts.jwks_bearer = nt_config_str(cfg, "CLERK_SECRET_KEY");
    return NT_OK;
}

nt_status nt_tokens_verifier_create(const nt_config *cfg, nt_nats *nc, nt_verifier **out)
{
    char err[NT_ERRMSG_LEN];
    nt_tokens_setup *setup = calloc(1, sizeof(*setup));
    NT_ASSERT(setup != NULL);
    nt_status st = nt_tokens_setup_make(cfg, nc, setup, err, sizeof(err));
    if (st != NT_OK) {
        nt_log_error("tokens", "%s", err);
        goto out;
    }
    st = nt_verifier_create(&setup->opts, out);
    if (st != NT_OK) {
        nt_log_error("tokens", "cannot create the token verifier: %s",
                     setup->opts.jwt_key_pem != NULL ? "CLERK_JWT_KEY is not an RSA public key"
                                                     : nt_status_str(st));
        goto out;
    }
    if (!setup->clerk)
        nt_log_info("tokens", "mode=local issuer=%s keys=nats:%s", setup->issuer,
                    NT_TOKENS_JWKS_SUBJECT);
    else if (setup->opts.jwt_key_pem != NULL)
        nt_log_info("tokens", "mode=clerk issuer=%s keys=pem", setup->issuer);
    else {
        /* A URL may carry user:password@: never log it as given. */
        char url[sizeof setup->jwks_url];
        nt_log_redact_url(setup->jwks_url, url, sizeof url);
        nt_log_info("tokens", "mode=clerk issuer=%s keys=%s bearer=%s", setup->issuer, url,
                    setup->opts.jwks_bearer != NULL ? "yes" : "no");
    }
out:
    free(setup);
    return st;
}
