/* JSON parsing and field validation shared by every codec. */
#include "nt_json.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

bool nt_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

/* The length of the valid UTF-8 sequence at s (of at most len bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    size_t n = 1;
    while (n < 4 && n < len && (s[n] & 0xC0) == 0x80)
        n++;
    for (size_t k = n; k >= 1; k--) {
        if (nt_utf8_valid((const char *)s, k))
            return k;
    }
    return 0;
}

char *nt_utf8_sanitize(char *str)
{
    unsigned char *s = (unsigned char *)str;
    size_t len = strlen(str);
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (n > 0) {
            i += n;
            continue;
        }
        /* A lead byte whose continuation bytes run to the end was cut short. */
        size_t j = i + 1;
        while (j < len && (s[j] & 0xC0) == 0x80)
            j++;
        if (j == len && s[i] >= 0xC2 && s[i] <= 0xF4 && len - i < 4) {
            s[i] = '\0';
            break;
        }
        s[i++] = '?';
    }
    return str;
}

size_t nt_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    }
    return n;
}

nt_status nt_json_parse(const char *data, size_t len, cJSON **out, char *err, size_t errlen)
{
    if (!nt_utf8_valid(data, len)) {
        snprintf(err, errlen, "body is not valid UTF-8");
        return NT_EINVAL;
    }
    /* cJSON decodes \u0000 into a NUL that silently ends the C string, and
     * copies raw control bytes inside strings (which RFC 8259 forbids): refuse
     * both, and any raw NUL. Escapes are skipped whole, so "\\u0000" (an
     * escaped backslash, then text) stays allowed. */
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == 0 || (in_string && c < 0x20)) {
            snprintf(err, errlen, "invalid JSON at byte %zu: control character", i);
            return NT_EINVAL;
        }
        if (c == '"') {
            in_string = !in_string;
        } else if (c == '\\' && in_string && i + 1 < len) {
            if (data[i + 1] == 'u' && i + 5 < len && memcmp(data + i + 2, "0000", 4) == 0) {
                snprintf(err, errlen, "invalid JSON at byte %zu: \\u0000 is not allowed", i);
                return NT_EINVAL;
            }
            i++;
        }
    }
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(data, len, &end, false);
    if (v == NULL) {
        size_t at = (end != NULL && end >= data) ? (size_t)(end - data) : 0;
        snprintf(err, errlen, "invalid JSON at byte %zu", at);
        return NT_EINVAL;
    }
    /* Only white space may follow the value. */
    for (const char *p = end; p != NULL && p < data + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(v);
            snprintf(err, errlen, "invalid JSON at byte %zu: trailing data", (size_t)(p - data));
            return NT_EINVAL;
        }
    }
    *out = v;
    return NT_OK;
}

nt_status nt_json_parse_object(const char *data, size_t len, cJSON **out, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
        i++;
    if (i == len) {
        *out = cJSON_CreateObject();
        NT_ASSERT(*out != NULL);
        return NT_OK;
    }
    cJSON *v = NULL;
    nt_status st = nt_json_parse(data, len, &v, err, errlen);
    if (st != NT_OK)
        return st;
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        snprintf(err, errlen, "body must be a JSON object");
        return NT_EINVAL;
    }
    *out = v;
    return NT_OK;
}

nt_status nt_json_check_keys(const cJSON *obj, const char *const *allowed, char *err, size_t errlen)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            if (it->string != NULL && strcmp(it->string, allowed[i]) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            snprintf(err, errlen, "unknown field '%.64s'", it->string ? it->string : "");
            return NT_EINVAL;
        }
    }
    return NT_OK;
}

char *nt_str_trim(char *s)
{
    size_t len = strlen(s);
    size_t a = 0;
    while (a < len && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r'))
        a++;
    size_t b = len;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r'))
        b--;
    memmove(s, s + a, b - a);
    s[b - a] = '\0';
    return s;
}

/* The next code point of valid UTF-8 at s[*i], advancing *i. */
static uint32_t utf8_next(const unsigned char *s, size_t *i)
{
    uint32_t c = s[(*i)++];
    int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (more > 0)
        c &= 0x3Fu >> more;
    while (more-- > 0)
        c = (c << 6) | (s[(*i)++] & 0x3Fu);
    return c;
}

/* Blank: spaces of every kind, which alone make no name. */
static bool cp_blank(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Invisible formatting and fillers: in one-line fields (names) they let one
 * name pose as another ("ab\u202Egnp.exe" shows as "abexe.png") or look
 * empty. The joiners U+200C/U+200D stay (Persian and emoji need them), as do
 * variation selectors; multi-line text (messages, descriptions) keeps the
 * directional marks that right-to-left writing needs as well. */
static bool cp_invisible(uint32_t c)
{
    return c == 0xAD || c == 0x34F || c == 0x61C || c == 0x115F || c == 0x1160 || c == 0x180E ||
           c == 0x200B || c == 0x200E || c == 0x200F || (c >= 0x2028 && c <= 0x202E) ||
           (c >= 0x2060 && c <= 0x206F) || c == 0x2800 || c == 0x3164 || c == 0xFEFF ||
           c == 0xFFA0 || (c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xE0000 && c <= 0xE007F);
}

/* Never text: C0 controls (but \n and \t in multi-line text), DEL, C1
 * controls, noncharacters. */
static bool cp_control(uint32_t c, bool multiline)
{
    if (c < 0x20)
        return !(multiline && (c == '\n' || c == '\t'));
    return c == 0x7F || (c >= 0x80 && c <= 0x9F) || (c >= 0xFDD0 && c <= 0xFDEF) ||
           (c & 0xFFFE) == 0xFFFE;
}

nt_status nt_text_check(const char *field, const char *s, const nt_text_rule *rule, char *err,
                        size_t errlen)
{
    size_t len = strlen(s);
    if (!nt_utf8_valid(s, len)) {
        snprintf(err, errlen, "'%s' is not valid UTF-8", field);
        return NT_EINVAL;
    }
    size_t visible = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = utf8_next((const unsigned char *)s, &i);
        if (cp_control(c, rule->allow_newlines)) {
            snprintf(err, errlen, "'%s' contains a control character", field);
            return NT_EINVAL;
        }
        bool invisible = cp_invisible(c);
        if (invisible && !rule->allow_newlines) {
            snprintf(err, errlen, "'%s' contains an invisible formatting character", field);
            return NT_EINVAL;
        }
        if (!invisible && !cp_blank(c))
            visible++;
    }
    size_t chars = nt_utf8_chars(s, len);
    if (rule->min_chars > 0 && visible == 0) {
        snprintf(err, errlen, "'%s' must not be empty", field);
        return NT_EINVAL;
    }
    if (chars < rule->min_chars || chars > rule->max_chars) {
        snprintf(err, errlen, "'%s' must be %zu to %zu characters, got %zu", field, rule->min_chars,
                 rule->max_chars, chars);
        return NT_EINVAL;
    }
    return NT_OK;
}

nt_status nt_json_get_text(const cJSON *obj, const char *key, bool required,
                           const nt_text_rule *rule, char **out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!required)
            return NT_ENOTFOUND;
        snprintf(err, errlen, "'%s' is required", key);
        return NT_EINVAL;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        snprintf(err, errlen, "'%s' must be a string", key);
        return NT_EINVAL;
    }
    char *copy = strdup(v->valuestring);
    NT_ASSERT(copy != NULL);
    nt_str_trim(copy);
    nt_status st = nt_text_check(key, copy, rule, err, errlen);
    if (st != NT_OK) {
        free(copy);
        return st;
    }
    *out = copy;
    return NT_OK;
}

nt_status nt_json_get_bool(const cJSON *obj, const char *key, bool required, bool *out, char *err,
                           size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!required)
            return NT_ENOTFOUND;
        snprintf(err, errlen, "'%s' is required", key);
        return NT_EINVAL;
    }
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "'%s' must be true or false", key);
        return NT_EINVAL;
    }
    *out = cJSON_IsTrue(v);
    return NT_OK;
}

nt_status nt_json_get_int(const cJSON *obj, const char *key, bool required, long long min,
                          long long max, long long *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!required)
            return NT_ENOTFOUND;
        snprintf(err, errlen, "'%s' is required", key);
        return NT_EINVAL;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    if (!cJSON_IsNumber(v) || !(d >= (double)min && d <= (double)max) || d != floor(d)) {
        snprintf(err, errlen, "'%s' must be an integer from %lld to %lld", key, min, max);
        return NT_EINVAL;
    }
    *out = (long long)d;
    return NT_OK;
}

nt_status nt_json_append(nt_buf *out, const cJSON *v)
{
    char *text = nt_json_print(v);
    nt_status st = nt_buf_append_str(out, text);
    cJSON_free(text);
    return st;
}

char *nt_json_print(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    NT_ASSERT(s != NULL);
    return s;
}

void nt_json_add_str_or_null(cJSON *obj, const char *key, const char *val)
{
    if (val != NULL)
        cJSON_AddStringToObject(obj, key, val);
    else
        cJSON_AddNullToObject(obj, key);
}
