/* JSON helpers over cJSON, and the input checks every codec shares: UTF-8,
 * lengths in characters, control characters, unknown fields. Each failing
 * check writes a message that names the field, for the JSON error body. */
#ifndef NT_JSON_H
#define NT_JSON_H

#include "nt_buf.h"
#include "nt_status.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Error messages from these helpers fit in this many bytes. */
#define NT_ERRMSG_LEN 256

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, no
 * code points past U+10FFFF). */
bool nt_utf8_valid(const char *s, size_t len);

/* Makes the NUL-terminated s valid UTF-8 in place: an incomplete sequence at
 * the end (a message cut by snprintf) is dropped, any other invalid byte
 * becomes '?'. Returns s. */
char *nt_utf8_sanitize(char *s);

/* The number of code points in the valid UTF-8 string s. */
size_t nt_utf8_chars(const char *s, size_t len);

/* Parses data[0..len) as JSON. The bytes must be valid UTF-8, and strings may
 * not contain \u0000 (C strings would silently end there). On failure
 * returns NT_EINVAL and writes e.g. "invalid JSON at byte 12" to err.
 * On success *out is the caller's (cJSON_Delete). */
nt_status nt_json_parse(const char *data, size_t len, cJSON **out, char *err, size_t errlen);

/* As nt_json_parse, and the value must be an object ("body must be a JSON object").
 * An empty body (len 0) parses as an empty object. */
nt_status nt_json_parse_object(const char *data, size_t len, cJSON **out, char *err, size_t errlen);

/* NT_EINVAL naming the first key of obj that is not in allowed (NULL-terminated),
 * e.g. "unknown field 'colour'". */
nt_status nt_json_check_keys(const cJSON *obj, const char *const *allowed, char *err,
                             size_t errlen);

/* Options for nt_json_get_text. */
typedef struct {
    size_t min_chars;    /* after trimming, in code points */
    size_t max_chars;    /* after trimming, in code points */
    bool allow_newlines; /* multi-line text (message bodies): \n, \t and bidi/zero-width
                          * formatting allowed; one-line text refuses those; C0/C1
                          * controls never */
} nt_text_rule;

/* Reads obj[key] as text: must be a JSON string, is trimmed of leading and
 * trailing white space, then checked against rule (length, no control
 * characters, no NUL). Absent or null: NT_ENOTFOUND when !required (*out
 * untouched), NT_EINVAL "'key' is required" otherwise. On success *out is a
 * malloc'd copy of the trimmed text. */
nt_status nt_json_get_text(const cJSON *obj, const char *key, bool required,
                           const nt_text_rule *rule, char **out, char *err, size_t errlen);

/* Checks s (already a C string) against rule, naming field in the message. */
nt_status nt_text_check(const char *field, const char *s, const nt_text_rule *rule, char *err,
                        size_t errlen);

/* Reads obj[key] as a boolean. Absent: NT_ENOTFOUND when !required. */
nt_status nt_json_get_bool(const cJSON *obj, const char *key, bool required, bool *out, char *err,
                           size_t errlen);

/* Reads obj[key] as an integer within [min, max]. Absent: NT_ENOTFOUND when !required. */
nt_status nt_json_get_int(const cJSON *obj, const char *key, bool required, long long min,
                          long long max, long long *out, char *err, size_t errlen);

/* Appends v printed compactly to out (NT_ETOOBIG past out's cap). Aborts on
 * OOM. */
nt_status nt_json_append(nt_buf *out, const cJSON *v);

/* Prints v compactly. The caller frees the result with free(). Aborts on OOM. */
char *nt_json_print(const cJSON *v);

/* Adds key: val, or key: null when val is NULL. */
void nt_json_add_str_or_null(cJSON *obj, const char *key, const char *val);

/* Trims ASCII white space in place; returns s. */
char *nt_str_trim(char *s);

#endif
