/* The contract tests' JSON Schema subset (see schema_check.h). */
#include "schema_check.h"

#include "harness.h"

#include <criterion/criterion.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

cJSON *schema_load(const char *name)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/schemas/json/%s", h_root(), name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "schema %s is missing", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *s = cJSON_Parse(buf);
    cr_assert_not_null(s, "schema %s is not JSON", path);
    return s;
}

static bool fail(char *err, size_t errlen, const char *path, const char *fmt, const char *what)
{
    char reason[256];
    snprintf(reason, sizeof(reason), fmt, what);
    snprintf(err, errlen, "%s: %s", path[0] ? path : "$", reason);
    return false;
}

static bool is_type(const cJSON *v, const char *t)
{
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    return false;
}

static bool json_equal(const cJSON *a, const cJSON *b)
{
    return cJSON_Compare(a, b, true) != 0;
}

static bool check_at(const cJSON *root, const cJSON *schema, const cJSON *v, const char *path,
                     char *err, size_t errlen);

static bool check_keyword(const cJSON *root, const cJSON *schema, const cJSON *kw, const cJSON *v,
                          const char *path, char *err, size_t errlen)
{
    const char *k = kw->string;
    char sub[512];
    if (strcmp(k, "$schema") == 0 || strcmp(k, "$id") == 0 || strcmp(k, "title") == 0 ||
        strcmp(k, "description") == 0 || strcmp(k, "$defs") == 0)
        return true;
    if (strcmp(k, "$ref") == 0) {
        const char *ref = kw->valuestring;
        size_t rlen = ref != NULL ? strlen(ref) : 0;
        if (rlen > 12 && strcmp(ref + rlen - 12, ".schema.json") == 0 &&
            strpbrk(ref, "/#") == NULL) {
            /* Another file of schemas/json, as a whole: its own root. */
            cJSON *doc = schema_load(ref);
            bool ok = check_at(doc, doc, v, path, err, errlen);
            cJSON_Delete(doc);
            return ok;
        }
        if (ref == NULL || strncmp(ref, "#/$defs/", 8) != 0)
            return fail(err, errlen, path, "unsupported $ref %s", ref ? ref : "?");
        const cJSON *target = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "$defs"), ref + 8);
        if (target == NULL)
            return fail(err, errlen, path, "no definition %s", ref);
        return check_at(root, target, v, path, err, errlen);
    }
    if (strcmp(k, "type") == 0) {
        if (cJSON_IsString(kw))
            return is_type(v, kw->valuestring)
                       ? true
                       : fail(err, errlen, path, "not of type %s", kw->valuestring);
        const cJSON *t;
        cJSON_ArrayForEach(t, kw)
        {
            if (is_type(v, t->valuestring))
                return true;
        }
        return fail(err, errlen, path, "not of any listed type%s", "");
    }
    if (strcmp(k, "enum") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, kw)
        {
            if (json_equal(e, v))
                return true;
        }
        return fail(err, errlen, path, "not one of the enum values%s", "");
    }
    if (strcmp(k, "const") == 0)
        return json_equal(kw, v) ? true : fail(err, errlen, path, "not the constant%s", "");
    if (strcmp(k, "required") == 0) {
        if (!cJSON_IsObject(v))
            return true;
        const cJSON *r;
        cJSON_ArrayForEach(r, kw)
        {
            if (cJSON_GetObjectItemCaseSensitive(v, r->valuestring) == NULL)
                return fail(err, errlen, path, "missing member '%s'", r->valuestring);
        }
        return true;
    }
    if (strcmp(k, "properties") == 0) {
        if (!cJSON_IsObject(v))
            return true;
        const cJSON *p;
        cJSON_ArrayForEach(p, kw)
        {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, p->string);
            snprintf(sub, sizeof(sub), "%s.%s", path, p->string);
            if (m != NULL && !check_at(root, p, m, sub, err, errlen))
                return false;
        }
        return true;
    }
    if (strcmp(k, "additionalProperties") == 0) {
        /* false refuses members not in "properties"; a schema checks them
         * (a map such as presence's, keyed by user id). */
        if (!cJSON_IsFalse(kw) && !cJSON_IsObject(kw))
            return fail(err, errlen, path, "unsupported additionalProperties%s", "");
        if (!cJSON_IsObject(v))
            return true;
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
        const cJSON *m;
        cJSON_ArrayForEach(m, v)
        {
            if (cJSON_GetObjectItemCaseSensitive(props, m->string) != NULL)
                continue;
            if (cJSON_IsFalse(kw))
                return fail(err, errlen, path, "unexpected member '%s'", m->string);
            snprintf(sub, sizeof(sub), "%s.%s", path, m->string);
            if (!check_at(root, kw, m, sub, err, errlen))
                return false;
        }
        return true;
    }
    if (strcmp(k, "propertyNames") == 0) {
        if (!cJSON_IsObject(v))
            return true;
        const cJSON *m;
        cJSON_ArrayForEach(m, v)
        {
            cJSON *name = cJSON_CreateString(m->string);
            snprintf(sub, sizeof(sub), "%s (the name '%s')", path, m->string);
            bool ok = check_at(root, kw, name, sub, err, errlen);
            cJSON_Delete(name);
            if (!ok)
                return false;
        }
        return true;
    }
    if (strcmp(k, "oneOf") == 0) {
        /* Exactly one branch must hold; the error names the failure of the
         * branch whose "type" const matches, when there is one, as the
         * clearest of the reasons. */
        int matched = 0;
        char first[512] = "";
        const cJSON *b;
        cJSON_ArrayForEach(b, kw)
        {
            char berr[512];
            if (check_at(root, b, v, path, berr, sizeof(berr)))
                matched++;
            else if (first[0] == '\0')
                snprintf(first, sizeof(first), "%s", berr);
        }
        if (matched == 1)
            return true;
        if (matched > 1)
            return fail(err, errlen, path, "matches more than one oneOf branch%s", "");
        snprintf(err, errlen, "%s: matches no oneOf branch (first: %s)", path[0] ? path : "$",
                 first);
        return false;
    }
    if (strcmp(k, "items") == 0) {
        if (!cJSON_IsArray(v))
            return true;
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            snprintf(sub, sizeof(sub), "%s[%d]", path, i++);
            if (!check_at(root, kw, it, sub, err, errlen))
                return false;
        }
        return true;
    }
    if (strcmp(k, "minItems") == 0)
        return !cJSON_IsArray(v) || cJSON_GetArraySize(v) >= kw->valueint
                   ? true
                   : fail(err, errlen, path, "too few items%s", "");
    if (strcmp(k, "maxItems") == 0)
        return !cJSON_IsArray(v) || cJSON_GetArraySize(v) <= kw->valueint
                   ? true
                   : fail(err, errlen, path, "too many items%s", "");
    if (strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0) {
        if (!cJSON_IsString(v))
            return true;
        size_t chars = 0;
        for (const char *c = v->valuestring; *c; c++)
            chars += ((unsigned char)*c & 0xC0) != 0x80;
        bool ok = k[1] == 'i' ? chars >= (size_t)kw->valueint : chars <= (size_t)kw->valueint;
        return ok ? true : fail(err, errlen, path, "length out of bounds (%s)", k);
    }
    if (strcmp(k, "minimum") == 0)
        return !cJSON_IsNumber(v) || v->valuedouble >= kw->valuedouble
                   ? true
                   : fail(err, errlen, path, "below the minimum%s", "");
    if (strcmp(k, "maximum") == 0)
        return !cJSON_IsNumber(v) || v->valuedouble <= kw->valuedouble
                   ? true
                   : fail(err, errlen, path, "above the maximum%s", "");
    if (strcmp(k, "pattern") == 0) {
        if (!cJSON_IsString(v))
            return true;
        regex_t re;
        if (regcomp(&re, kw->valuestring, REG_EXTENDED | REG_NOSUB) != 0)
            return fail(err, errlen, path, "bad pattern %s", kw->valuestring);
        bool ok = regexec(&re, v->valuestring, 0, NULL, 0) == 0;
        regfree(&re);
        return ok ? true : fail(err, errlen, path, "does not match %s", kw->valuestring);
    }
    return fail(err, errlen, path, "unsupported keyword %s", k);
}

static bool check_at(const cJSON *root, const cJSON *schema, const cJSON *v, const char *path,
                     char *err, size_t errlen)
{
    const cJSON *kw;
    cJSON_ArrayForEach(kw, schema)
    {
        if (!check_keyword(root, schema, kw, v, path, err, errlen))
            return false;
    }
    return true;
}

bool schema_check(const cJSON *root, const cJSON *schema, const cJSON *value, char *err,
                  size_t errlen)
{
    err[0] = '\0';
    return check_at(root, schema, value, "", err, errlen);
}
