/* Request body checks and the merge of body, query and path parameters. */
#include "gw_body.h"

#include "nt_json.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool gw_body_content_type_ok(const char *ct)
{
    if (ct == NULL)
        return true;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 0)
        return true; /* an empty header says nothing */
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    /* application/<anything>+json, e.g. application/merge-patch+json. */
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static void set_string(cJSON *obj, const gw_kv *kv)
{
    cJSON *v = cJSON_CreateString(kv->value != NULL ? kv->value : "");
    NT_ASSERT(v != NULL);
    if (cJSON_GetObjectItemCaseSensitive(obj, kv->key) != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(obj, kv->key, v);
    else
        cJSON_AddItemToObject(obj, kv->key, v);
}

nt_status gw_body_build(const char *body, size_t len, const gw_kv *query, size_t nquery,
                        const gw_kv *params, size_t nparams, char **out, size_t *outlen, char *err,
                        size_t errlen)
{
    /* Query and path values arrive percent-decoded: any bytes at all. */
    const gw_kv *lists[2] = {query, params};
    size_t counts[2] = {nquery, nparams};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            const char *v = lists[l][i].value;
            if (v != NULL && !nt_utf8_valid(v, strlen(v))) {
                snprintf(err, errlen, "parameter '%s' is not valid UTF-8", lists[l][i].key);
                return NT_EINVAL;
            }
        }
    }
    cJSON *obj = NULL;
    nt_status st =
        nt_json_parse_object(body != NULL ? body : "", body != NULL ? len : 0, &obj, err, errlen);
    if (st != NT_OK)
        return st;
    for (size_t i = 0; i < nquery; i++)
        set_string(obj, &query[i]);
    for (size_t i = 0; i < nparams; i++)
        set_string(obj, &params[i]);
    char *text = nt_json_print(obj);
    cJSON_Delete(obj);
    *outlen = strlen(text);
    *out = text;
    return NT_OK;
}
