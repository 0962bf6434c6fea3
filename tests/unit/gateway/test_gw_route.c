/* Unit tests of the gateway's route table and matcher. */
#include "../../../services/gateway/gw_route.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static const gw_route table[] = {
    {"GET", "/api/rooms", "chat.rooms.list", GW_AUTH, "before,limit"},
    {"POST", "/api/rooms", "chat.rooms.create", GW_AUTH, NULL},
    {"GET", "/api/rooms/:room_id", "chat.rooms.get", GW_AUTH, NULL},
    {"DELETE", "/api/rooms/:room_id", "chat.rooms.delete", GW_AUTH, NULL},
    {"PUT", "/api/rooms/:room_id/members/:user_id", "chat.rooms.invite", GW_AUTH, NULL},
    {"POST", "/api/dev/token", "chat.auth.dev.token", GW_LOCAL_ONLY, NULL},
};
static const size_t ntable = sizeof(table) / sizeof(table[0]);

Test(gw_route, matches_a_literal_path)
{
    gw_match m;
    cr_assert_eq(gw_route_match(table, ntable, false, "POST", "/api/rooms", &m), GW_MATCH_OK);
    cr_assert_str_eq(m.route->subject, "chat.rooms.create");
    cr_assert_eq(m.nparams, 0);
}

Test(gw_route, collects_path_params_in_order)
{
    gw_match m;
    cr_assert_eq(gw_route_match(table, ntable, false, "PUT", "/api/rooms/r1/members/u-2", &m),
                 GW_MATCH_OK);
    cr_assert_str_eq(m.route->subject, "chat.rooms.invite");
    cr_assert_eq(m.nparams, 2);
    cr_assert_str_eq(m.params[0].key, "room_id");
    cr_assert_str_eq(m.params[0].value, "r1");
    cr_assert_str_eq(m.params[1].key, "user_id");
    cr_assert_str_eq(m.params[1].value, "u-2");
}

Test(gw_route, unknown_path_is_no_path)
{
    gw_match m;
    const char *paths[] = {"/api/nope",   "/api/rooms/r1/extra",   "/api/rooms/", "/api/rooms//",
                           "/api//rooms", "/api/roomsx",           "/api",        "",
                           "/API/rooms",  "/api/rooms/r1/members/"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        cr_assert_eq(gw_route_match(table, ntable, false, "GET", paths[i], &m), GW_MATCH_NO_PATH,
                     "path '%s'", paths[i]);
        cr_assert_null(m.route);
    }
}

Test(gw_route, known_path_with_wrong_method_lists_allowed_methods)
{
    gw_match m;
    cr_assert_eq(gw_route_match(table, ntable, false, "PATCH", "/api/rooms/r1", &m),
                 GW_MATCH_NO_METHOD);
    cr_assert_null(m.route);
    cr_assert_str_eq(m.allow, "GET, HEAD, DELETE");
    cr_assert_eq(gw_route_match(table, ntable, false, "DELETE", "/api/rooms", &m),
                 GW_MATCH_NO_METHOD);
    cr_assert_str_eq(m.allow, "GET, HEAD, POST");
}

Test(gw_route, head_matches_get_routes)
{
    gw_match m;
    cr_assert_eq(gw_route_match(table, ntable, false, "HEAD", "/api/rooms/r9", &m), GW_MATCH_OK);
    cr_assert_str_eq(m.route->subject, "chat.rooms.get");
    cr_assert_str_eq(m.params[0].value, "r9");
}

Test(gw_route, local_only_routes_vanish_in_clerk_mode)
{
    gw_match m;
    cr_assert_eq(gw_route_match(table, ntable, false, "POST", "/api/dev/token", &m), GW_MATCH_OK);
    cr_assert_eq(gw_route_match(table, ntable, true, "POST", "/api/dev/token", &m),
                 GW_MATCH_NO_PATH, "404, not 405, in Clerk mode");
    cr_assert_eq(gw_route_match(table, ntable, true, "GET", "/api/dev/token", &m),
                 GW_MATCH_NO_PATH);
}

Test(gw_route, refuses_params_that_are_too_long)
{
    char path[GW_PARAM_MAX + 32];
    memset(path, 'a', sizeof(path));
    memcpy(path, "/api/rooms/", 11);
    path[11 + GW_PARAM_MAX] = '\0'; /* a segment of exactly GW_PARAM_MAX bytes */
    gw_match m;
    cr_assert_eq(gw_route_match(table, ntable, false, "GET", path, &m), GW_MATCH_NO_PATH);
    path[11 + GW_PARAM_MAX - 1] = '\0';
    cr_assert_eq(gw_route_match(table, ntable, false, "GET", path, &m), GW_MATCH_OK);
    cr_assert_eq(strlen(m.params[0].value), GW_PARAM_MAX - 1);
}

Test(gw_route, query_allow_list_is_exact)
{
    const gw_route *r = &table[0];
    cr_assert(gw_route_query_allowed(r, "before"));
    cr_assert(gw_route_query_allowed(r, "limit"));
    cr_assert_not(gw_route_query_allowed(r, "limi"));
    cr_assert_not(gw_route_query_allowed(r, "limits"));
    cr_assert_not(gw_route_query_allowed(r, "before,limit"));
    cr_assert_not(gw_route_query_allowed(r, ""));
    cr_assert_not(gw_route_query_allowed(&table[1], "limit"), "NULL list allows nothing");
}

Test(gw_route, api_prefix_is_a_whole_segment)
{
    cr_assert(gw_route_is_api("/api"));
    cr_assert(gw_route_is_api("/api/"));
    cr_assert(gw_route_is_api("/api/users/me"));
    cr_assert_not(gw_route_is_api("/apis"));
    cr_assert_not(gw_route_is_api("/"));
    cr_assert_not(gw_route_is_api("/rooms/api"));
}

Test(gw_route, the_gateway_table_has_the_documented_routes)
{
    gw_match m;
    struct {
        const char *method, *path, *subject;
        unsigned flags;
    } want[] = {
        {"POST", "/api/users", "chat.auth.users.upsert", GW_AUTH},
        {"GET", "/api/users/me", "chat.auth.users.get", GW_AUTH},
        {"PUT", "/api/users/me", "chat.auth.users.update", GW_AUTH},
        {"POST", "/api/dev/token", "chat.auth.dev.token", GW_LOCAL_ONLY},
        {"GET", "/.well-known/jwks.json", "chat.auth.jwks", GW_LOCAL_ONLY | GW_UNWRAP},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, want[i].method, want[i].path, &m),
                     GW_MATCH_OK, "%s %s", want[i].method, want[i].path);
        cr_assert_str_eq(m.route->subject, want[i].subject);
        cr_assert_eq(m.route->flags, want[i].flags, "%s %s", want[i].method, want[i].path);
    }
    cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, "GET", "/healthz", &m), GW_MATCH_OK);
    cr_assert(m.route->flags & GW_HEALTH);
    cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, "GET", "/readyz", &m), GW_MATCH_OK);
    cr_assert(m.route->flags & GW_READY);
    cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, "DELETE", "/api/users/me", &m),
                 GW_MATCH_NO_METHOD);
    cr_assert_str_eq(m.allow, "GET, HEAD, PUT");
    cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, true, "GET", "/.well-known/jwks.json", &m),
                 GW_MATCH_NO_PATH);
    /* Every /api route but the dev token needs a token. */
    for (size_t i = 0; i < gw_nroutes; i++) {
        if (gw_route_is_api(gw_routes[i].pattern) &&
            strcmp(gw_routes[i].pattern, "/api/dev/token") != 0)
            cr_assert(gw_routes[i].flags & GW_AUTH, "%s", gw_routes[i].pattern);
    }
}

Test(gw_route, the_gateway_table_has_the_eleven_rooms_routes)
{
    static const char *const room = "0190f5e2-7b1c-7c3d-8e4f-123456789abc";
    gw_match m;
    struct {
        const char *method, *path, *subject, *query;
        bool has_room, has_user;
    } want[] = {
        {"GET", "/api/rooms", "chat.rooms.list", "scope,q,limit,cursor", false, false},
        {"POST", "/api/rooms", "chat.rooms.create", NULL, false, false},
        {"GET", "/api/rooms/R", "chat.rooms.get", NULL, true, false},
        {"PUT", "/api/rooms/R", "chat.rooms.update", NULL, true, false},
        {"DELETE", "/api/rooms/R", "chat.rooms.delete", NULL, true, false},
        {"POST", "/api/rooms/R/join", "chat.rooms.join", NULL, true, false},
        {"POST", "/api/rooms/R/leave", "chat.rooms.leave", NULL, true, false},
        {"POST", "/api/rooms/R/invite", "chat.rooms.invite", NULL, true, false},
        {"GET", "/api/rooms/R/members", "chat.rooms.members", "limit,cursor", true, false},
        {"PUT", "/api/rooms/R/members/user_2x-Y", "chat.rooms.set_role", NULL, true, true},
        {"DELETE", "/api/rooms/R/members/user_2x-Y", "chat.rooms.remove_member", NULL, true, true},
    };
    size_t rooms_routes = 0;
    for (size_t i = 0; i < gw_nroutes; i++) {
        if (gw_routes[i].subject != NULL && strncmp(gw_routes[i].subject, "chat.rooms.", 11) == 0)
            rooms_routes++;
    }
    cr_assert_eq(rooms_routes, sizeof(want) / sizeof(want[0]), "eleven rooms routes, no more");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char path[256];
        /* "R" stands for the room id. */
        const char *r = strstr(want[i].path, "/R");
        if (r != NULL)
            snprintf(path, sizeof(path), "%.*s/%s%s", (int)(r - want[i].path), want[i].path, room,
                     r + 2);
        else
            snprintf(path, sizeof(path), "%s", want[i].path);
        for (int clerk = 0; clerk < 2; clerk++) {
            cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, clerk, want[i].method, path, &m),
                         GW_MATCH_OK, "%s %s", want[i].method, path);
            cr_assert_str_eq(m.route->subject, want[i].subject, "%s %s", want[i].method, path);
            cr_assert_eq(m.route->flags, GW_AUTH, "%s", want[i].subject);
        }
        if (want[i].query == NULL)
            cr_assert_null(m.route->query, "%s", want[i].subject);
        else
            cr_assert_str_eq(m.route->query, want[i].query, "%s", want[i].subject);
        cr_assert_eq(m.nparams, (size_t)want[i].has_room + want[i].has_user, "%s", path);
        if (want[i].has_room) {
            cr_assert_str_eq(m.params[0].key, "room_id");
            cr_assert_str_eq(m.params[0].value, room);
        }
        if (want[i].has_user) {
            cr_assert_str_eq(m.params[1].key, "user_id");
            cr_assert_str_eq(m.params[1].value, "user_2x-Y");
        }
        /* HEAD works wherever GET does, and only there. */
        gw_match_result head = gw_route_match(gw_routes, gw_nroutes, false, "HEAD", path, &m);
        if (strcmp(want[i].method, "GET") == 0) {
            cr_assert_eq(head, GW_MATCH_OK, "HEAD %s", path);
            cr_assert_str_eq(m.route->subject, want[i].subject);
            cr_assert_eq(m.nparams, (size_t)want[i].has_room, "HEAD %s", path);
        } else if (strcmp(want[i].path, "/api/rooms") != 0 &&
                   strcmp(want[i].path, "/api/rooms/R") != 0) {
            cr_assert_eq(head, GW_MATCH_NO_METHOD, "HEAD %s", path);
        }
    }
}

Test(gw_route, rooms_paths_list_their_methods_in_table_order)
{
    gw_match m;
    struct {
        const char *method, *path, *allow;
    } want[] = {
        {"PATCH", "/api/rooms", "GET, HEAD, POST"},
        {"POST", "/api/rooms/r1", "GET, HEAD, PUT, DELETE"},
        {"PATCH", "/api/rooms/r1", "GET, HEAD, PUT, DELETE"},
        {"GET", "/api/rooms/r1/members/u1", "PUT, DELETE"},
        {"HEAD", "/api/rooms/r1/members/u1", "PUT, DELETE"},
        {"POST", "/api/rooms/r1/members/u1", "PUT, DELETE"},
        {"POST", "/api/rooms/r1/members", "GET, HEAD"},
        {"GET", "/api/rooms/r1/join", "POST"},
        {"DELETE", "/api/rooms/r1/leave", "POST"},
        {"PUT", "/api/rooms/r1/invite", "POST"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, want[i].method, want[i].path, &m),
                     GW_MATCH_NO_METHOD, "%s %s", want[i].method, want[i].path);
        cr_assert_null(m.route);
        cr_assert_str_eq(m.allow, want[i].allow, "%s %s", want[i].method, want[i].path);
    }
    const char *missing[] = {"/api/rooms/r1/members/u1/x", "/api/rooms/r1/kick", "/api/rooms/r1/",
                             "/api/rooms/r1/members/", "/api/rooms//join"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
        cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, "GET", missing[i], &m),
                     GW_MATCH_NO_PATH, "%s", missing[i]);
}

Test(gw_route, the_gateway_table_has_the_four_messages_routes)
{
    static const char *const room = "0190f5e2-7b1c-7c3d-8e4f-123456789abc";
    static const char *const msg = "0190f5e2-7b1c-7c3d-8e4f-cba987654321";
    gw_match m;
    struct {
        const char *method, *path, *subject, *query, *key, *value;
    } want[] = {
        {"GET", "/api/rooms/%s/messages", "chat.messages.history", "before,after,limit", "room_id",
         room},
        {"POST", "/api/rooms/%s/messages", "chat.messages.send", NULL, "room_id", room},
        {"PUT", "/api/messages/%s", "chat.messages.edit", NULL, "message_id", msg},
        {"DELETE", "/api/messages/%s", "chat.messages.delete", NULL, "message_id", msg},
    };
    size_t msgs_routes = 0;
    for (size_t i = 0; i < gw_nroutes; i++) {
        if (gw_routes[i].subject != NULL &&
            strncmp(gw_routes[i].subject, "chat.messages.", 14) == 0)
            msgs_routes++;
    }
    cr_assert_eq(msgs_routes, sizeof(want) / sizeof(want[0]), "four messages routes, no more");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), want[i].path, want[i].value);
        for (int clerk = 0; clerk < 2; clerk++) {
            cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, clerk, want[i].method, path, &m),
                         GW_MATCH_OK, "%s %s", want[i].method, path);
            cr_assert_str_eq(m.route->subject, want[i].subject, "%s %s", want[i].method, path);
            cr_assert_eq(m.route->flags, GW_AUTH, "%s", want[i].subject);
            cr_assert_eq(m.nparams, 1, "%s", path);
            cr_assert_str_eq(m.params[0].key, want[i].key);
            cr_assert_str_eq(m.params[0].value, want[i].value);
        }
        if (want[i].query == NULL)
            cr_assert_null(m.route->query, "%s", want[i].subject);
        else
            cr_assert_str_eq(m.route->query, want[i].query, "%s", want[i].subject);
    }
    /* HEAD reads history like GET does. */
    char path[256];
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", room);
    cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, "HEAD", path, &m), GW_MATCH_OK);
    cr_assert_str_eq(m.route->subject, "chat.messages.history");
    cr_assert_str_eq(m.params[0].value, room);
}

Test(gw_route, history_passes_exactly_its_three_query_keys)
{
    gw_match m;
    cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, "GET", "/api/rooms/r1/messages", &m),
                 GW_MATCH_OK);
    const char *yes[] = {"before", "after", "limit"};
    for (size_t i = 0; i < 3; i++)
        cr_assert(gw_route_query_allowed(m.route, yes[i]), "%s", yes[i]);
    const char *no[] = {"cursor", "room_id", "content", "aft", "afters", "before,after", "q"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_assert_not(gw_route_query_allowed(m.route, no[i]), "%s", no[i]);
    /* The writes take no query: nothing can reach the body that way. */
    const char *writes[][2] = {{"POST", "/api/rooms/r1/messages"},
                               {"PUT", "/api/messages/m1"},
                               {"DELETE", "/api/messages/m1"}};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, writes[i][0], writes[i][1], &m),
                     GW_MATCH_OK);
        cr_assert_not(gw_route_query_allowed(m.route, "limit"), "%s", writes[i][1]);
        cr_assert_not(gw_route_query_allowed(m.route, "content"), "%s", writes[i][1]);
    }
}

Test(gw_route, messages_paths_list_their_methods_and_nothing_else_matches)
{
    gw_match m;
    struct {
        const char *method, *path, *allow;
    } want[] = {
        {"PUT", "/api/rooms/r1/messages", "GET, HEAD, POST"},
        {"DELETE", "/api/rooms/r1/messages", "GET, HEAD, POST"},
        {"PATCH", "/api/rooms/r1/messages", "GET, HEAD, POST"},
        {"GET", "/api/messages/m1", "PUT, DELETE"},
        {"HEAD", "/api/messages/m1", "PUT, DELETE"},
        {"POST", "/api/messages/m1", "PUT, DELETE"},
        {"PATCH", "/api/messages/m1", "PUT, DELETE"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, want[i].method, want[i].path, &m),
                     GW_MATCH_NO_METHOD, "%s %s", want[i].method, want[i].path);
        cr_assert_null(m.route);
        cr_assert_str_eq(m.allow, want[i].allow, "%s %s", want[i].method, want[i].path);
    }
    const char *missing[] = {"/api/messages",           "/api/messages/",
                             "/api/messages/m1/x",      "/api/messages//",
                             "/api/rooms/r1/messages/", "/api/rooms/r1/messages/m1",
                             "/api/rooms//messages",    "/api/rooms/r1/message"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        for (int k = 0; k < 4; k++) {
            const char *methods[] = {"GET", "POST", "PUT", "DELETE"};
            cr_assert_eq(gw_route_match(gw_routes, gw_nroutes, false, methods[k], missing[i], &m),
                         GW_MATCH_NO_PATH, "%s %s", methods[k], missing[i]);
        }
    }
}
