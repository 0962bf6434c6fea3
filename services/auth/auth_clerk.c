/* Clerk's Backend API: the profile fields a session token does not carry.
 * Called once per user on profile creation (Clerk allows 100 requests per
 * 10 s on development instances), never per message. */
#include "auth.h"

#include "nt_http.h"
#include "nt_log.h"

#include <stdio.h>
#include <string.h>

static char *dup_or_null(const cJSON *v)
{
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return NULL;
    char *s = strdup(v->valuestring);
    NT_ASSERT(s != NULL);
    return s;
}

nt_status auth_clerk_parse_user(const char *json, size_t len, const char *user_id, char **username,
                                char **email, char **avatar)
{
    char err[NT_ERRMSG_LEN];
    cJSON *u = NULL;
    if (nt_json_parse_object(json, len, &u, err, sizeof(err)) != NT_OK)
        return NT_EUNAVAIL;

    /* The primary address is the entry whose id is primary_email_address_id. */
    char *mail = NULL;
    const cJSON *primary = cJSON_GetObjectItemCaseSensitive(u, "primary_email_address_id");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(u, "email_addresses");
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(e, "email_address");
        bool is_primary = cJSON_IsString(primary) && cJSON_IsString(id) &&
                          strcmp(primary->valuestring, id->valuestring) == 0;
        if (mail == NULL || is_primary) {
            char *m = dup_or_null(addr);
            if (m != NULL) {
                free(mail);
                mail = m;
            }
            if (is_primary)
                break;
        }
    }

    /* username may be null in Clerk; fall back to the name, then the mailbox. */
    char *name = dup_or_null(cJSON_GetObjectItemCaseSensitive(u, "username"));
    if (name == NULL) {
        const cJSON *first = cJSON_GetObjectItemCaseSensitive(u, "first_name");
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(u, "last_name");
        char buf[256];
        snprintf(buf, sizeof(buf), "%s%s%s", cJSON_IsString(first) ? first->valuestring : "",
                 (cJSON_IsString(first) && cJSON_IsString(last) && first->valuestring[0] &&
                  last->valuestring[0])
                     ? " "
                     : "",
                 cJSON_IsString(last) ? last->valuestring : "");
        nt_str_trim(buf);
        if (buf[0] == '\0' && mail != NULL)
            snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(mail, "@"), mail);
        if (buf[0] == '\0')
            snprintf(buf, sizeof(buf), "%s", user_id);
        name = strdup(buf);
        NT_ASSERT(name != NULL);
    }
    /* Clip to what a username may hold, on a character boundary. */
    if (nt_utf8_chars(name, strlen(name)) > auth_username_rule.max_chars) {
        size_t chars = 0, i = 0;
        for (; name[i]; i++) {
            if (((unsigned char)name[i] & 0xC0) != 0x80 && ++chars > auth_username_rule.max_chars)
                break;
        }
        name[i] = '\0';
    }

    *username = name;
    *email = mail != NULL ? mail : strdup("");
    *avatar = dup_or_null(cJSON_GetObjectItemCaseSensitive(u, "image_url"));
    cJSON_Delete(u);
    return NT_OK;
}

nt_status auth_clerk_fetch(const char *api_url, const char *secret, const char *user_id,
                           char **username, char **email, char **avatar, char *err, size_t errlen)
{
    if (!auth_user_id_valid(user_id)) {
        snprintf(err, errlen, "user id has an invalid form");
        return NT_EINVAL;
    }
    char url[1024];
    int n = snprintf(url, sizeof(url), "%s/v1/users/%s", api_url, user_id);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        snprintf(err, errlen, "Clerk API URL too long");
        return NT_EINTERNAL;
    }
    int http = 0;
    char *body = NULL;
    size_t len = 0;
    nt_status st = nt_http_get(url, secret, 5000, 256 * 1024, &http, &body, &len);
    if (st != NT_OK) {
        nt_log_warn("auth", "clerk unreachable status=%s", nt_status_code(st));
        snprintf(err, errlen, "Clerk could not be reached");
        return st == NT_ETIMEOUT ? NT_ETIMEOUT : NT_EUNAVAIL;
    }
    if (http == 200) {
        st = auth_clerk_parse_user(body, len, user_id, username, email, avatar);
        if (st != NT_OK)
            snprintf(err, errlen, "Clerk answered with an unreadable user");
    } else if (http == 404) {
        st = NT_ENOTFOUND;
        snprintf(err, errlen, "Clerk does not know this user");
    } else if (http == 429) {
        st = NT_ERATE;
        snprintf(err, errlen, "Clerk rate limit reached; try again shortly");
    } else {
        nt_log_warn("auth", "clerk answered http=%d", http);
        st = NT_EUNAVAIL;
        snprintf(err, errlen, "Clerk answered with HTTP %d", http);
    }
    free(body);
    return st;
}
