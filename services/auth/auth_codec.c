/* Profile JSON and field validation: the only file of auth that builds or
 * reads profile JSON. */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const nt_text_rule auth_username_rule = {.min_chars = 1, .max_chars = 64, .allow_newlines = false};

bool auth_user_id_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n >= AUTH_USER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

int64_t auth_time_parse(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = s != NULL ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (end == NULL || *end != '\0')
        return 0;
    return (int64_t)timegm(&tm);
}

cJSON *auth_profile_to_json(const auth_profile *p)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "id", p->id);
    cJSON_AddStringToObject(o, "user_id", p->user_id);
    nt_json_add_str_or_null(o, "username", p->username);
    nt_json_add_str_or_null(o, "email", p->email);
    nt_json_add_str_or_null(o, "avatar_url", p->avatar_url);
    cJSON_AddStringToObject(o, "created_at", p->created_at);
    cJSON_AddStringToObject(o, "updated_at", p->updated_at);
    return o;
}

static char *dup_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        return NULL;
    char *s = strdup(v->valuestring);
    NT_ASSERT(s != NULL);
    return s;
}

static bool copy_str(const cJSON *o, const char *key, char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= outlen)
        return false;
    snprintf(out, outlen, "%s", v->valuestring);
    return true;
}

nt_status auth_profile_from_json(const char *text, size_t len, auth_profile *out)
{
    char err[NT_ERRMSG_LEN];
    cJSON *o = NULL;
    if (nt_json_parse_object(text, len, &o, err, sizeof(err)) != NT_OK)
        return NT_EINVAL;
    auth_profile p;
    memset(&p, 0, sizeof(p));
    bool ok = copy_str(o, "id", p.id, sizeof(p.id)) &&
              copy_str(o, "user_id", p.user_id, sizeof(p.user_id)) &&
              copy_str(o, "created_at", p.created_at, sizeof(p.created_at)) &&
              copy_str(o, "updated_at", p.updated_at, sizeof(p.updated_at));
    p.username = dup_str(o, "username");
    p.email = dup_str(o, "email");
    p.avatar_url = dup_str(o, "avatar_url");
    cJSON_Delete(o);
    if (!ok || p.username == NULL || p.email == NULL) {
        auth_profile_clear(&p);
        return NT_EINVAL;
    }
    *out = p;
    return NT_OK;
}

static bool has_space_or_control(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7F)
            return true;
    }
    return false;
}

nt_status auth_check_email(const char *email, char *err, size_t errlen)
{
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    if (n < 3 || n > 254 || at == NULL || at == email || at[1] == '\0' ||
        strchr(at + 1, '@') != NULL || has_space_or_control(email) || !nt_utf8_valid(email, n)) {
        snprintf(err, errlen, "'email' must be an address like name@example.com");
        return NT_EINVAL;
    }
    return NT_OK;
}

nt_status auth_check_avatar(const char *url, char *err, size_t errlen)
{
    size_t n = strlen(url);
    size_t skip = 0;
    if (strncmp(url, "https://", 8) == 0)
        skip = 8;
    else if (strncmp(url, "http://", 7) == 0)
        skip = 7;
    if (skip == 0) {
        snprintf(err, errlen, "'avatar_url' must be an http or https URL");
        return NT_EINVAL;
    }
    if (n > 2048 || n == skip || url[skip] == '/' || has_space_or_control(url) ||
        !nt_utf8_valid(url, n)) {
        snprintf(err, errlen,
                 "'avatar_url' must be an http or https URL of at most 2048 "
                 "characters with a host and no spaces");
        return NT_EINVAL;
    }
    return NT_OK;
}
