/* The status table: the only place that knows wire codes and HTTP statuses. */
#include "nt_status.h"

#include <string.h>

static const struct {
    const char *text;
    const char *code;
    int http;
} table[NT__COUNT] = {
    [NT_OK] = {"ok", "ok", 200},
    [NT_EINVAL] = {"invalid request", "invalid_request", 400},
    [NT_EUNAUTH] = {"unauthorized", "unauthorized", 401},
    [NT_EFORBIDDEN] = {"forbidden", "forbidden", 403},
    [NT_ENOTFOUND] = {"not found", "not_found", 404},
    [NT_EMETHOD] = {"method not allowed", "method_not_allowed", 405},
    [NT_ECONFLICT] = {"conflict", "conflict", 409},
    [NT_ETOOBIG] = {"too large", "too_large", 413},
    [NT_ERATE] = {"rate limited", "rate_limited", 429},
    [NT_EINTERNAL] = {"internal error", "internal", 500},
    [NT_EUNAVAIL] = {"unavailable", "unavailable", 503},
    [NT_ETIMEOUT] = {"timeout", "timeout", 504},
};

static nt_status clamp(nt_status st)
{
    return ((unsigned)st < NT__COUNT) ? st : NT_EINTERNAL;
}

const char *nt_status_str(nt_status st)
{
    return table[clamp(st)].text;
}

const char *nt_status_code(nt_status st)
{
    return table[clamp(st)].code;
}

int nt_status_http(nt_status st)
{
    return table[clamp(st)].http;
}

nt_status nt_status_from_code(const char *code)
{
    if (code != NULL) {
        for (int i = 0; i < NT__COUNT; i++) {
            if (strcmp(table[i].code, code) == 0)
                return (nt_status)i;
        }
    }
    return NT_EINTERNAL;
}

nt_status nt_status_from_http(int http)
{
    if (http >= 200 && http < 300)
        return NT_OK;
    for (int i = 1; i < NT__COUNT; i++) {
        if (table[i].http == http)
            return (nt_status)i;
    }
    return (http >= 400 && http < 500) ? NT_EINVAL : NT_EINTERNAL;
}
