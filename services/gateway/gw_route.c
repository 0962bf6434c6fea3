/* The route table and the pattern matcher. */
#include "gw_route.h"

#include <stdio.h>
#include <string.h>

/* clang-format off */
const gw_route gw_routes[] = {
    /* method  pattern                   subject                 flags               query */
    {"GET",  "/healthz",                NULL,                    GW_HEALTH,                 NULL},
    {"GET",  "/readyz",                 NULL,                    GW_READY,                  NULL},
    {"GET",  "/.well-known/jwks.json",  "chat.auth.jwks",        GW_LOCAL_ONLY | GW_UNWRAP, NULL},
    {"POST", "/api/dev/token",          "chat.auth.dev.token",   GW_LOCAL_ONLY,             NULL},
    {"POST", "/api/users",              "chat.auth.users.upsert", GW_AUTH,                  NULL},
    {"GET",  "/api/users/me",           "chat.auth.users.get",   GW_AUTH,                   NULL},
    {"PUT",  "/api/users/me",           "chat.auth.users.update", GW_AUTH,                  NULL},
    {"GET",    "/api/rooms",                           "chat.rooms.list",          GW_AUTH, "scope,q,limit,cursor"},
    {"POST",   "/api/rooms",                           "chat.rooms.create",        GW_AUTH, NULL},
    {"GET",    "/api/rooms/:room_id",                  "chat.rooms.get",           GW_AUTH, NULL},
    {"PUT",    "/api/rooms/:room_id",                  "chat.rooms.update",        GW_AUTH, NULL},
    {"DELETE", "/api/rooms/:room_id",                  "chat.rooms.delete",        GW_AUTH, NULL},
    {"POST",   "/api/rooms/:room_id/join",             "chat.rooms.join",          GW_AUTH, NULL},
    {"POST",   "/api/rooms/:room_id/leave",            "chat.rooms.leave",         GW_AUTH, NULL},
    {"POST",   "/api/rooms/:room_id/invite",           "chat.rooms.invite",        GW_AUTH, NULL},
    {"GET",    "/api/rooms/:room_id/members",          "chat.rooms.members",       GW_AUTH, "limit,cursor"},
    {"PUT",    "/api/rooms/:room_id/members/:user_id", "chat.rooms.set_role",      GW_AUTH, NULL},
    {"DELETE", "/api/rooms/:room_id/members/:user_id", "chat.rooms.remove_member", GW_AUTH, NULL},
    {"GET",    "/api/rooms/:room_id/messages",         "chat.messages.history",    GW_AUTH, "before,after,limit"},
    {"POST",   "/api/rooms/:room_id/messages",         "chat.messages.send",       GW_AUTH, NULL},
    {"PUT",    "/api/messages/:message_id",            "chat.messages.edit",       GW_AUTH, NULL},
    {"DELETE", "/api/messages/:message_id",            "chat.messages.delete",     GW_AUTH, NULL},
};
/* clang-format on */
const size_t gw_nroutes = sizeof(gw_routes) / sizeof(gw_routes[0]);

bool gw_route_is_api(const char *path)
{
    return strncmp(path, "/api", 4) == 0 && (path[4] == '\0' || path[4] == '/');
}

/* Matches path against pattern segment by segment, collecting :params into m
 * (when m is non-NULL). */
static bool match_pattern(const char *pattern, const char *path, gw_match *m)
{
    const char *p = pattern, *s = path;
    size_t np = 0;
    while (*p != '\0' && *s != '\0') {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        size_t plen = strcspn(p, "/");
        size_t slen = strcspn(s, "/");
        if (*p == ':') {
            /* A parameter matches one non-empty segment that fits. */
            if (slen == 0 || slen >= GW_PARAM_MAX || plen - 1 >= GW_PARAM_KEY_MAX ||
                np >= GW_MAX_PARAMS)
                return false;
            if (m != NULL) {
                memcpy(m->params[np].key, p + 1, plen - 1);
                m->params[np].key[plen - 1] = '\0';
                memcpy(m->params[np].value, s, slen);
                m->params[np].value[slen] = '\0';
            }
            np++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
    }
    if (*p != '\0' || *s != '\0')
        return false;
    if (m != NULL)
        m->nparams = np;
    return true;
}

static bool method_matches(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static void allow_add(char *allow, const char *method)
{
    /* Each method once, in table order. */
    size_t n = strlen(method);
    for (const char *a = allow; (a = strstr(a, method)) != NULL; a += n) {
        if ((a == allow || a[-1] == ' ') && (a[n] == ',' || a[n] == '\0'))
            return;
    }
    size_t len = strlen(allow);
    snprintf(allow + len, GW_ALLOW_MAX - len, "%s%s", len ? ", " : "", method);
}

gw_match_result gw_route_match(const gw_route *routes, size_t n, bool clerk_mode,
                               const char *method, const char *path, gw_match *m)
{
    memset(m, 0, sizeof(*m));
    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        const gw_route *r = &routes[i];
        if (clerk_mode && (r->flags & GW_LOCAL_ONLY))
            continue;
        if (!match_pattern(r->pattern, path, NULL))
            continue;
        path_known = true;
        allow_add(m->allow, r->method);
        if (strcmp(r->method, "GET") == 0)
            allow_add(m->allow, "HEAD");
        if (method_matches(r->method, method) && m->route == NULL) {
            m->route = r;
            match_pattern(r->pattern, path, m);
        }
    }
    if (m->route != NULL)
        return GW_MATCH_OK;
    return path_known ? GW_MATCH_NO_METHOD : GW_MATCH_NO_PATH;
}

bool gw_route_query_allowed(const gw_route *route, const char *key)
{
    const char *list = route->query;
    size_t klen = strlen(key);
    if (list == NULL || klen == 0)
        return false;
    while (*list != '\0') {
        while (*list == ',' || *list == ' ')
            list++;
        size_t n = strcspn(list, ", ");
        if (n == klen && memcmp(list, key, n) == 0)
            return true;
        list += n;
    }
    return false;
}
