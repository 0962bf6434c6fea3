/* The allowed-origin list and its exact matching. */
#include "gw_cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORIGIN_MAX 256

struct gw_cors {
    size_t n;
    char origins[GW_CORS_MAX_ORIGINS][ORIGIN_MAX];
};

/* scheme://host[:port] with no path, query, user info or spaces. */
static bool origin_valid(const char *o)
{
    const char *sep = strstr(o, "://");
    if (sep == NULL || sep == o)
        return false;
    for (const char *p = o; p < sep; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' ||
              *p == '.'))
            return false;
    }
    const char *host = sep + 3;
    if (*host == '\0')
        return false;
    for (const char *p = host; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == ',')
            return false;
    }
    return true;
}

nt_status gw_cors_create(const char *list, gw_cors **out, char *err, size_t errlen)
{
    nt_status st = NT_EINVAL;
    gw_cors *c = calloc(1, sizeof(*c));
    NT_ASSERT(c != NULL);
    const char *p = list != NULL ? list : "";
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        while (m > 0 && p[m - 1] == '/')
            m--;
        if (m == 0) {
            p += n;
            continue;
        }
        if (c->n >= GW_CORS_MAX_ORIGINS) {
            snprintf(err, errlen, "NATTER_CORS_ORIGINS: at most %d origins", GW_CORS_MAX_ORIGINS);
            goto out;
        }
        if (m >= ORIGIN_MAX) {
            snprintf(err, errlen, "NATTER_CORS_ORIGINS: origin '%.64s...' is too long", p);
            goto out;
        }
        memcpy(c->origins[c->n], p, m);
        c->origins[c->n][m] = '\0';
        if (!origin_valid(c->origins[c->n])) {
            snprintf(err, errlen,
                     "NATTER_CORS_ORIGINS: '%.128s' is not an origin like https://app.example",
                     c->origins[c->n]);
            goto out;
        }
        c->n++;
        p += n;
    }
    *out = c;
    c = NULL;
    st = NT_OK;
out:
    gw_cors_destroy(c);
    return st;
}

bool gw_cors_allowed(const gw_cors *c, const char *origin)
{
    if (c == NULL || origin == NULL)
        return false;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->origins[i], origin) == 0)
            return true;
    }
    return false;
}

size_t gw_cors_count(const gw_cors *c)
{
    return c != NULL ? c->n : 0;
}

void gw_cors_destroy(gw_cors *c)
{
    free(c);
}
