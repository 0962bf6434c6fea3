/* Users, asserted calls and JSON field checks for the REST flow tests. */
#include "flow.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h_user_make(const h_stack *s, h_user *u, const char *name)
{
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->tok = h_dev_token(s, name, u->id, sizeof(u->id));
}

void h_user_free(h_user *u)
{
    free(u->tok);
    u->tok = NULL;
}

void h_users_start(h_stack *s, const char *const *extra, ...)
{
    h_stack_start(s, extra);
    va_list ap;
    va_start(ap, extra);
    for (h_user *u; (u = va_arg(ap, h_user *)) != NULL;)
        h_user_make(s, u, va_arg(ap, const char *));
    va_end(ap);
}

void h_users_free(h_user *u, ...)
{
    va_list ap;
    va_start(ap, u);
    for (; u != NULL; u = va_arg(ap, h_user *))
        h_user_free(u);
    va_end(ap);
}

const char *h_fmt(char *out, size_t outlen, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, outlen, f, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < outlen, "buffer too small for %s", f);
    return out;
}

cJSON *h_call(const h_stack *s, const char *method, const char *path, const char *tok,
              const char *body, long want)
{
    h_http r = h_api(s, method, path, tok, body);
    cr_assert_eq(r.status, want, "%s %s %.300s: want %ld, got %ld %s", method, path,
                 body != NULL ? body : "", want, r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cr_assert_not_null(j, "%s %s: not JSON: %s", method, path, r.body);
    h_http_free(&r);
    return j;
}

cJSON *h_ok(const h_stack *s, const char *method, const char *path, const char *tok,
            const char *body)
{
    cJSON *root = h_call(s, method, path, tok, body, 200);
    cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(root, "data");
    cr_assert_not_null(d, "%s %s: no data", method, path);
    cJSON_Delete(root);
    return d;
}

char *h_refused_body(const h_stack *s, const char *method, const char *path, const char *tok,
                     const char *body, long want, const char *code, const char *needle)
{
    h_http r = h_api(s, method, path, tok, body);
    cr_assert_eq(r.status, want, "%s %s %.300s: want %ld, got %ld %s", method, path,
                 body != NULL ? body : "", want, r.status, r.body);
    h_error_code(&r, code);
    if (needle != NULL)
        cr_assert(strstr(r.body, needle) != NULL, "%s %s %.300s: no \"%s\" in %s", method, path,
                  body != NULL ? body : "", needle, r.body);
    return r.body;
}

void h_refused(const h_stack *s, const char *method, const char *path, const char *tok,
               const char *body, long want, const char *code, const char *needle)
{
    free(h_refused_body(s, method, path, tok, body, want, code, needle));
}

const cJSON *h_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL) {
        char *s = cJSON_PrintUnformatted(o);
        cr_assert_fail("no \"%s\" in %s", key, s);
    }
    return v;
}

void h_expect_str(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = h_field(o, key);
    if (want == NULL) {
        cr_assert(cJSON_IsNull(v), "\"%s\" should be null in %s", key, cJSON_PrintUnformatted(o));
        return;
    }
    cr_assert(cJSON_IsString(v), "\"%s\" is not a string in %s", key, cJSON_PrintUnformatted(o));
    cr_assert_str_eq(v->valuestring, want, "\"%s\" in %.500s", key, cJSON_PrintUnformatted(o));
}

const char *h_get_str(const cJSON *o, const char *key)
{
    const cJSON *v = h_field(o, key);
    cr_assert(cJSON_IsString(v), "\"%s\" is not a string in %s", key, cJSON_PrintUnformatted(o));
    return v->valuestring;
}

void h_expect_bool(const cJSON *o, const char *key, bool want)
{
    const cJSON *v = h_field(o, key);
    cr_assert(cJSON_IsBool(v) && cJSON_IsTrue(v) == want, "\"%s\" should be %s in %s", key,
              want ? "true" : "false", cJSON_PrintUnformatted(o));
}

void h_expect_time(const cJSON *o, const char *key)
{
    const char *s = h_get_str(o, key);
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    bool good = strlen(s) == sizeof(shape) - 1;
    for (size_t i = 0; good && i < sizeof(shape) - 1; i++)
        good = shape[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == shape[i];
    cr_assert(good, "\"%s\" is not an RFC 3339 ms time: %s", key, s);
}
