/* The local token issuer: an RSA key kept under the data directory, its JWKS,
 * and Clerk-shaped session tokens for local use (no Clerk configured). */
#include "auth.h"

#include "nt_jwt.h"
#include "nt_log.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

nt_status auth_issuer_create(const char *key_path, const char *issuer, const char *azp,
                             long long ttl_s, auth_issuer **out)
{
    nt_status st;
    cJSON *jwk = NULL, *jwks = NULL;
    auth_issuer *is = calloc(1, sizeof(*is));
    NT_ASSERT(is != NULL);
    st = nt_rsa_load_or_create(key_path, &is->key);
    if (st != NT_OK) {
        nt_log_error("auth", "cannot load or create the local signing key path=%s", key_path);
        goto out;
    }
    st = nt_key_id(is->key, is->kid, sizeof(is->kid));
    if (st != NT_OK)
        goto out;
    st = nt_jwk_from_key(is->key, is->kid, &jwk);
    if (st != NT_OK)
        goto out;
    jwks = cJSON_CreateObject();
    cJSON *keys = cJSON_AddArrayToObject(jwks, "keys");
    cJSON_AddItemToArray(keys, jwk);
    jwk = NULL;
    is->jwks_json = nt_json_print(jwks);
    snprintf(is->issuer, sizeof(is->issuer), "%s", issuer);
    snprintf(is->azp, sizeof(is->azp), "%s", azp != NULL ? azp : "");
    is->ttl_s = ttl_s;
    nt_log_info("auth", "local issuer ready kid=%s iss=%s", is->kid, is->issuer);
    *out = is;
    is = NULL;
out:
    cJSON_Delete(jwk);
    cJSON_Delete(jwks);
    auth_issuer_destroy(is);
    return st;
}

void auth_issuer_destroy(auth_issuer *is)
{
    if (is == NULL)
        return;
    EVP_PKEY_free(is->key);
    free(is->jwks_json);
    free(is);
}

void auth_local_user_id(const char *username, char out[AUTH_USER_ID_MAX])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char input[512];
    snprintf(input, sizeof(input), "natter-local:%s", username);
    SHA256((const unsigned char *)input, strlen(input), md);
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    p += snprintf(out, AUTH_USER_ID_MAX, "user_");
    for (int i = 0; i < 12; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    *p = '\0';
}

nt_status auth_issuer_mint(auth_issuer *is, const char *user_id, int64_t now_s, char **token,
                           int64_t *expires_at)
{
    unsigned char rnd[12];
    nt_random_bytes(rnd, sizeof(rnd));
    char sid[64] = "sess_", jti[64] = "";
    for (int i = 0; i < 12; i++) {
        snprintf(sid + 5 + 2 * i, 3, "%02x", rnd[i]);
    }
    char id[NT_ID_LEN];
    nt_id_new(id);
    snprintf(jti, sizeof(jti), "%s", id);

    /* Clerk's header: alg, typ, kid, and the session-token category. */
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "alg", "RS256");
    cJSON_AddStringToObject(h, "typ", "JWT");
    cJSON_AddStringToObject(h, "kid", is->kid);
    cJSON_AddStringToObject(h, "cat", "cl_B7d4PD111AAA");
    /* Clerk's v2 claims (CLERK-CLOUDFLARE.md §A1). */
    cJSON *c = cJSON_CreateObject();
    if (is->azp[0])
        cJSON_AddStringToObject(c, "azp", is->azp);
    cJSON_AddNumberToObject(c, "exp", (double)(now_s + is->ttl_s));
    cJSON_AddNumberToObject(c, "iat", (double)now_s);
    cJSON_AddStringToObject(c, "iss", is->issuer);
    cJSON_AddStringToObject(c, "jti", jti);
    cJSON_AddNumberToObject(c, "nbf", (double)(now_s - 5));
    cJSON_AddStringToObject(c, "sid", sid);
    cJSON_AddStringToObject(c, "sub", user_id);
    cJSON_AddNumberToObject(c, "v", 2);
    char *hs = nt_json_print(h);
    char *cs = nt_json_print(c);
    nt_status st = nt_jwt_sign_rs256(is->key, hs, cs, token);
    free(hs);
    free(cs);
    cJSON_Delete(h);
    cJSON_Delete(c);
    if (st == NT_OK)
        *expires_at = now_s + is->ttl_s;
    return st;
}
