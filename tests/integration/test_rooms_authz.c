/* The authorisation matrix of the rooms service (rooms-spec.md, "Roles and the
 * authorisation table") over real HTTP through the real gateway, and over
 * NATS for chat.rooms.authorize: every action for an outsider, a member, a
 * moderator and an admin of a public and of a private room, with the exact
 * status the contract gives, and a check that an allowed action took effect
 * while a refused one changed nothing. */
#include "harness.h"

#include "nt_id.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static h_stack stack;

/* ---- the people ---- */

/* Every room of the matrix is created by ann (its admin); mo is promoted to
 * moderator; mem and vic are plain members; out never joins; tia is the one
 * invited; mo2 and ad2 are a second moderator and a second admin in the rooms
 * of the removal test. Tokens are minted once per Test (one stack each). */
enum { ANN, MO, MEM, VIC, OUT, TIA, MO2, AD2, NUSERS };
static const char *const user_names[NUSERS] = {"ann", "mo",  "mem", "vic",
                                               "out", "tia", "mo2", "ad2"};
static struct {
    char *tok;
    char id[128];
} users[NUSERS];

/* The caller's relation to the room, and who plays it. */
enum { R_OUT, R_MEM, R_MOD, R_ADM, NREL };
static const char *const rel_names[NREL] = {"outsider", "member", "moderator", "admin"};
static const int actor[NREL] = {OUT, MEM, MO, ANN};

/* ---- the contract's table, written out independently of the service ---- */

enum {
    YES,        /* 200 */
    NO,         /* 403 forbidden */
    HIDDEN,     /* an outsider's refusal: 403 in a public room, 404 in a private one */
    PUB_NO,     /* 200 in a public room, 403 in a private one */
    PUB_HIDDEN, /* 200 in a public room, 404 in a private one */
};

enum {
    A_READ,
    A_SEND,
    A_JOIN,
    A_LEAVE,
    A_INVITE,
    A_UPDATE,
    A_DELETE,
    A_SET_ROLE,
    A_REMOVE,
    A_MODERATE,
    NACT
};

/* clang-format off */
static const struct {
    const char *name;
    int rule[NREL]; /* outsider, member, moderator, admin */
} table[NACT] = {
    [A_READ]     = {"read",          {HIDDEN,     YES,    YES, YES}},
    [A_SEND]     = {"send",          {HIDDEN,     YES,    YES, YES}},
    [A_JOIN]     = {"join",          {PUB_HIDDEN, YES,    YES, YES}},
    [A_LEAVE]    = {"leave",         {HIDDEN,     YES,    YES, YES}},
    [A_INVITE]   = {"invite",        {HIDDEN,     PUB_NO, YES, YES}},
    [A_UPDATE]   = {"update",        {HIDDEN,     NO,     NO,  YES}},
    [A_DELETE]   = {"delete",        {HIDDEN,     NO,     NO,  YES}},
    [A_SET_ROLE] = {"set_role",      {HIDDEN,     NO,     NO,  YES}},
    /* A moderator may remove plain members: the matrix aims at one. */
    [A_REMOVE]   = {"remove_member", {HIDDEN,     NO,     YES, YES}},
    [A_MODERATE] = {"moderate",      {HIDDEN,     NO,     YES, YES}},
};
/* clang-format on */

static long hidden_status(bool priv)
{
    return priv ? 404 : 403;
}

static long want_status(int action, int rel, bool priv)
{
    switch (table[action].rule[rel]) {
    case YES:
        return 200;
    case NO:
        return 403;
    case HIDDEN:
        return hidden_status(priv);
    case PUB_NO:
        return priv ? 403 : 200;
    default:
        return priv ? 404 : 200;
    }
}

/* ---- the REST routes that name a room ---- */

enum {
    RT_GET,
    RT_MEMBERS,
    RT_UPDATE,
    RT_DELETE,
    RT_JOIN,
    RT_LEAVE,
    RT_INVITE,
    RT_SET_ROLE,
    RT_REMOVE,
    NROUTES
};

/* clang-format off */
static const struct {
    const char *method, *suffix;
    int action;
} routes[NROUTES] = {
    [RT_GET]      = {"GET",    "",          A_READ},
    [RT_MEMBERS]  = {"GET",    "/members",  A_READ},
    [RT_UPDATE]   = {"PUT",    "",          A_UPDATE},
    [RT_DELETE]   = {"DELETE", "",          A_DELETE},
    [RT_JOIN]     = {"POST",   "/join",     A_JOIN},
    [RT_LEAVE]    = {"POST",   "/leave",    A_LEAVE},
    [RT_INVITE]   = {"POST",   "/invite",   A_INVITE},
    [RT_SET_ROLE] = {"PUT",    "/members/", A_SET_ROLE},
    [RT_REMOVE]   = {"DELETE", "/members/", A_REMOVE},
};
/* clang-format on */

/* Sends route on room as who. target is the user invited (invite), promoted
 * to moderator (set_role) or removed (remove_member). */
static h_http send_route(int route, const char *room, int who, int target)
{
    char path[300], body[200] = "";
    const char *suffix = routes[route].suffix;
    bool with_user = suffix[0] != '\0' && suffix[strlen(suffix) - 1] == '/';
    snprintf(path, sizeof(path), "/api/rooms/%s%s%s", room, suffix,
             with_user ? users[target].id : "");
    if (route == RT_UPDATE)
        snprintf(body, sizeof(body), "{\"name\":\"renamed\"}");
    else if (route == RT_INVITE)
        snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", users[target].id);
    else if (route == RT_SET_ROLE)
        snprintf(body, sizeof(body), "{\"role\":\"moderator\"}");
    return h_api(&stack, routes[route].method, path, users[who].tok, body[0] ? body : NULL);
}

static void route_label(int route, char *out, size_t outlen)
{
    const char *suffix = routes[route].suffix;
    snprintf(out, outlen, "%s /api/rooms/:id%s%s", routes[route].method, suffix,
             suffix[0] != '\0' && suffix[strlen(suffix) - 1] == '/' ? ":user_id" : "");
}

/* ---- replies ---- */

/* obj.key of a JSON reply as text: strings as they are, numbers in decimal,
 * "true"/"false"/"null"; "" when absent. */
static void field(const h_http *r, const char *obj, const char *key, char *out, size_t outlen)
{
    cJSON *j = cJSON_Parse(r->body != NULL ? r->body : "");
    cr_assert_not_null(j, "not JSON: %s", r->body);
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, obj), key);
    if (cJSON_IsString(v))
        snprintf(out, outlen, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(out, outlen, "%lld", (long long)v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(out, outlen, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        snprintf(out, outlen, "null");
    else
        snprintf(out, outlen, "%s", "");
    cJSON_Delete(j);
}

/* Asserts the status, and for a refusal the error code that goes with it;
 * a success must carry data and no error. */
static void expect(const h_http *r, long want, const char *what)
{
    cr_assert_eq(r->status, want, "%s: want %ld, got %ld %s", what, want, r->status,
                 r->body != NULL ? r->body : "");
    char code[64], msg[512];
    field(r, "error", "code", code, sizeof(code));
    if (want == 200) {
        cr_assert_str_eq(code, "", "%s: an error in a success: %s", what, r->body);
        cJSON *j = cJSON_Parse(r->body);
        cr_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "data")), "%s: no data: %s",
                  what, r->body);
        cJSON_Delete(j);
        return;
    }
    const char *want_code = want == 400   ? "invalid_request"
                            : want == 401 ? "unauthorized"
                            : want == 403 ? "forbidden"
                            : want == 404 ? "not_found"
                                          : "?";
    cr_assert_str_eq(code, want_code, "%s: %s", what, r->body);
    field(r, "error", "message", msg, sizeof(msg));
    cr_assert_neq(msg[0], '\0', "%s: no message: %s", what, r->body);
}

/* A copy of text with every occurrence of id replaced by "<id>". */
static char *without_id(const char *text, const char *id)
{
    size_t n = strlen(text), idlen = strlen(id);
    char *out = malloc(n * 4 + 1);
    cr_assert_not_null(out);
    char *o = out;
    for (const char *p = text; *p != '\0';) {
        if (strncmp(p, id, idlen) == 0) {
            memcpy(o, "<id>", 4);
            o += 4;
            p += idlen;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* ---- set-up and observation through the API ---- */

static void must(h_http r, long want, const char *what)
{
    expect(&r, want, what);
    h_http_free(&r);
}

static void fini(void)
{
    for (int i = 0; i < NUSERS; i++) {
        free(users[i].tok);
        users[i].tok = NULL;
    }
    h_stop_all();
}

/* One stack for the whole Test. The matrix sends a few hundred requests as a
 * handful of users, far beyond the default per-user and per-address rates. */
static void start(void)
{
    static const char *const extra[] = {
        "NATTER_RATE_IP_PER_S=100000", "NATTER_RATE_IP_BURST=1000000",
        "NATTER_RATE_USER_PER_S=100000", "NATTER_RATE_USER_BURST=1000000", NULL};
    h_stack_start(&stack, extra);
    for (int i = 0; i < NUSERS; i++)
        users[i].tok = h_dev_token(&stack, user_names[i], users[i].id, sizeof(users[i].id));
}

/* ann invites who and, when role is non-NULL, gives them that role. */
static void add_member(const char *room, int who, const char *role)
{
    char path[300], body[200];
    snprintf(path, sizeof(path), "/api/rooms/%s/invite", room);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", users[who].id);
    must(h_api(&stack, "POST", path, users[ANN].tok, body), 200, "set-up: invite");
    if (role == NULL)
        return;
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", room, users[who].id);
    snprintf(body, sizeof(body), "{\"role\":\"%s\"}", role);
    must(h_api(&stack, "PUT", path, users[ANN].tok, body), 200, "set-up: set role");
}

/* A fresh room "matrix" by ann, with mo (moderator), mem and vic (members),
 * joined in that order; with more, also mo2 (moderator) and ad2 (admin). */
static void room_new(bool priv, bool more, char id[NT_ID_LEN])
{
    char body[100];
    snprintf(body, sizeof(body), "{\"name\":\"matrix\",\"is_private\":%s}",
             priv ? "true" : "false");
    h_http r = h_api(&stack, "POST", "/api/rooms", users[ANN].tok, body);
    expect(&r, 200, "set-up: create");
    h_data_str(&r, "id", id, NT_ID_LEN);
    h_http_free(&r);
    add_member(id, MO, "moderator");
    add_member(id, MEM, NULL);
    add_member(id, VIC, NULL);
    if (more) {
        add_member(id, MO2, "moderator");
        add_member(id, AD2, "admin");
    }
}

/* The status of GET /api/rooms/:id as who. */
static long get_status(const char *room, int who)
{
    char path[300];
    snprintf(path, sizeof(path), "/api/rooms/%s", room);
    h_http r = h_api(&stack, "GET", path, users[who].tok, NULL);
    long st = r.status;
    h_http_free(&r);
    return st;
}

/* data.key of GET /api/rooms/:id as who (who must be able to read it). */
static void room_field(const char *room, int who, const char *key, char *out, size_t outlen)
{
    char path[300];
    snprintf(path, sizeof(path), "/api/rooms/%s", room);
    h_http r = h_api(&stack, "GET", path, users[who].tok, NULL);
    expect(&r, 200, "GET room to observe");
    field(&r, "data", key, out, outlen);
    h_http_free(&r);
}

/* The role of target in the member list as who reads it; "" when absent. */
static void member_role(const char *room, int who, int target, char *out, size_t outlen)
{
    char path[300];
    snprintf(path, sizeof(path), "/api/rooms/%s/members", room);
    h_http r = h_api(&stack, "GET", path, users[who].tok, NULL);
    expect(&r, 200, "GET members to observe");
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *m;
    snprintf(out, outlen, "%s", "");
    cJSON_ArrayForEach(
        m, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "members"))
    {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(m, "user_id");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(uid) && strcmp(uid->valuestring, users[target].id) == 0)
            snprintf(out, outlen, "%s", cJSON_IsString(role) ? role->valuestring : "?");
    }
    cJSON_Delete(j);
    h_http_free(&r);
}

static int member_count(const char *room, int who)
{
    char v[32];
    room_field(room, who, "member_count", v, sizeof(v));
    return (int)strtol(v, NULL, 10);
}

/* ---- chat.rooms.authorize over NATS, with nats.c itself ---- */

/* Sends body to chat.rooms.authorize with Chat-User: user (none when NULL)
 * and returns the reply as an h_http: the status from the micro error header
 * (200 without one) and the body. */
static h_http authorize_raw(natsConnection *nc, const char *user, const char *body)
{
    natsMsg *m = NULL, *rep = NULL;
    cr_assert_eq(natsMsg_Create(&m, "chat.rooms.authorize", NULL, body, (int)strlen(body)),
                 NATS_OK);
    if (user != NULL)
        cr_assert_eq(natsMsgHeader_Set(m, "Chat-User", user), NATS_OK);
    natsStatus s = natsConnection_RequestMsg(&rep, nc, m, 5000);
    natsMsg_Destroy(m);
    cr_assert_eq(s, NATS_OK, "authorize %s: %s", body, natsStatus_GetText(s));
    h_http r;
    memset(&r, 0, sizeof(r));
    r.status = 200;
    const char *code = NULL;
    if (natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &code) == NATS_OK && code != NULL)
        r.status = strtol(code, NULL, 10);
    r.len = (size_t)natsMsg_GetDataLength(rep);
    r.body = malloc(r.len + 1);
    cr_assert_not_null(r.body);
    memcpy(r.body, natsMsg_GetData(rep), r.len);
    r.body[r.len] = '\0';
    natsMsg_Destroy(rep);
    return r;
}

static h_http authorize(natsConnection *nc, int who, const char *room, const char *action)
{
    char body[200];
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"action\":\"%s\"}", room, action);
    return authorize_raw(nc, users[who].id, body);
}

static natsConnection *nats_connect(void)
{
    natsConnection *nc = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, stack.nats_url), NATS_OK);
    return nc;
}

/* ---- reads ---- */

TestSuite(rooms_authz, .fini = fini, .timeout = 120);

Test(rooms_authz, reads_follow_the_table)
{
    start();
    for (int priv = 0; priv < 2; priv++) {
        char room[NT_ID_LEN];
        room_new(priv, false, room);
        for (int rel = 0; rel < NREL; rel++) {
            for (int route = RT_GET; route <= RT_MEMBERS; route++) {
                char what[200], label[64], v[512];
                route_label(route, label, sizeof(label));
                snprintf(what, sizeof(what), "%s as %s of a %s room", label, rel_names[rel],
                         priv ? "private" : "public");
                h_http r = send_route(route, room, actor[rel], VIC);
                long want = want_status(routes[route].action, rel, priv);
                expect(&r, want, what);
                if (want == 200 && route == RT_GET) {
                    field(&r, "data", "role", v, sizeof(v));
                    cr_assert_str_eq(v, rel_names[rel], "%s: %s", what, r.body);
                    field(&r, "data", "is_private", v, sizeof(v));
                    cr_assert_str_eq(v, priv ? "true" : "false", "%s", what);
                } else if (want == 200) {
                    cJSON *j = cJSON_Parse(r.body);
                    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(j, "data"), "members"));
                    cJSON_Delete(j);
                    cr_assert_eq(n, 4, "%s: %s", what, r.body);
                } else if (want == 403) {
                    /* A public room's outsider is told to join; rooms-spec.md
                     * words it "you are not a member of this room". */
                    field(&r, "error", "message", v, sizeof(v));
                    cr_assert(strstr(v, "not a member") != NULL, "%s: %s", what, r.body);
                }
                h_http_free(&r);
            }
        }
    }
}

/* ---- writes: one fresh room per cell ---- */

/* Checks that an action took effect when allowed and changed nothing when
 * refused, by looking at the room through the API afterwards. vic is a member
 * of every room and not an actor, so the room is observed as vic, except
 * after a removal of vic. */
static void check_effect(int route, int rel, bool priv, const char *room, const h_http *r,
                         const char *what)
{
    bool allowed = r->status == 200;
    int who = actor[rel];
    char v[256];
    switch (route) {
    case RT_UPDATE:
        room_field(room, VIC, "name", v, sizeof(v));
        cr_assert_str_eq(v, allowed ? "renamed" : "matrix", "%s: name after", what);
        break;
    case RT_DELETE:
        cr_assert_eq(get_status(room, VIC), allowed ? 404 : 200, "%s: the room after", what);
        if (allowed) {
            field(r, "data", "deleted", v, sizeof(v));
            cr_assert_str_eq(v, "true", "%s: %s", what, r->body);
        }
        break;
    case RT_JOIN:
        if (allowed) {
            /* Joining again changes nothing: a member keeps their role. */
            field(r, "data", "role", v, sizeof(v));
            cr_assert_str_eq(v, rel == R_OUT ? "member" : rel_names[rel], "%s: %s", what, r->body);
        }
        cr_assert_eq(member_count(room, VIC), 4 + (allowed && rel == R_OUT), "%s: count", what);
        cr_assert_eq(get_status(room, who), allowed ? 200 : hidden_status(priv),
                     "%s: reading afterwards", what);
        break;
    case RT_LEAVE:
        cr_assert_eq(member_count(room, VIC), 4 - allowed, "%s: count", what);
        /* Whatever happened, the caller is an outsider now. */
        cr_assert_eq(get_status(room, who), hidden_status(priv), "%s: reading afterwards", what);
        if (allowed) {
            field(r, "data", "room_deleted", v, sizeof(v));
            cr_assert_str_eq(v, "false", "%s: %s", what, r->body);
            /* The last admin's seat goes to the longest-standing member, mo. */
            field(r, "data", "new_admin", v, sizeof(v));
            cr_assert_str_eq(v, rel == R_ADM ? users[MO].id : "null", "%s: %s", what, r->body);
            if (rel == R_ADM) {
                member_role(room, VIC, MO, v, sizeof(v));
                cr_assert_str_eq(v, "admin", "%s: mo after", what);
            }
        }
        break;
    case RT_INVITE:
        cr_assert_eq(get_status(room, TIA), allowed ? 200 : hidden_status(priv),
                     "%s: tia reading afterwards", what);
        cr_assert_eq(member_count(room, VIC), 4 + allowed, "%s: count", what);
        if (allowed) {
            field(r, "data", "user_id", v, sizeof(v));
            cr_assert_str_eq(v, users[TIA].id, "%s: %s", what, r->body);
            field(r, "data", "role", v, sizeof(v));
            cr_assert_str_eq(v, "member", "%s: %s", what, r->body);
        }
        break;
    case RT_SET_ROLE:
        member_role(room, VIC, VIC, v, sizeof(v));
        cr_assert_str_eq(v, allowed ? "moderator" : "member", "%s: vic's role after", what);
        break;
    case RT_REMOVE:
        cr_assert_eq(get_status(room, VIC), allowed ? hidden_status(priv) : 200,
                     "%s: vic reading afterwards", what);
        cr_assert_eq(member_count(room, ANN), 4 - allowed, "%s: count", what);
        break;
    default:
        cr_assert_fail("no effect check for route %d", route);
    }
}

static void write_matrix(const int *rts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int route = rts[i];
        char label[64];
        route_label(route, label, sizeof(label));
        for (int priv = 0; priv < 2; priv++) {
            for (int rel = 0; rel < NREL; rel++) {
                char room[NT_ID_LEN], what[200];
                snprintf(what, sizeof(what), "%s as %s of a %s room", label, rel_names[rel],
                         priv ? "private" : "public");
                room_new(priv, false, room);
                h_http r = send_route(route, room, actor[rel], route == RT_INVITE ? TIA : VIC);
                expect(&r, want_status(routes[route].action, rel, priv), what);
                check_effect(route, rel, priv, room, &r, what);
                h_http_free(&r);
            }
        }
    }
}

Test(rooms_authz, writes_that_keep_everyone_follow_the_table)
{
    start();
    static const int rts[] = {RT_UPDATE, RT_JOIN, RT_INVITE, RT_SET_ROLE};
    write_matrix(rts, sizeof(rts) / sizeof(rts[0]));
}

Test(rooms_authz, writes_that_remove_someone_follow_the_table)
{
    start();
    static const int rts[] = {RT_DELETE, RT_LEAVE, RT_REMOVE};
    write_matrix(rts, sizeof(rts) / sizeof(rts[0]));
}

Test(rooms_authz, removal_depends_on_the_target)
{
    start();
    /* In a room of ann and ad2 (admins), mo and mo2 (moderators), mem and vic
     * (members): moderators remove plain members only, admins anyone but
     * themselves, members nobody; a target who is no member is not found. */
    static const struct {
        int who, target;
        long want;
    } cases[] = {
        {MO, VIC, 200},  {MO, MO2, 403},  {MO, ANN, 403},  {MO, AD2, 403},  {ANN, VIC, 200},
        {ANN, MO, 200},  {ANN, AD2, 200}, {ANN, ANN, 400}, {MEM, VIC, 403}, {MEM, MO, 403},
        {MEM, ANN, 403}, {ANN, OUT, 404}, {MO, OUT, 404},  {AD2, ANN, 200},
    };
    for (int priv = 0; priv < 2; priv++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char room[NT_ID_LEN], what[200], v[512];
            int who = cases[i].who, target = cases[i].target;
            snprintf(what, sizeof(what), "%s removing %s from a %s room", user_names[who],
                     user_names[target], priv ? "private" : "public");
            room_new(priv, true, room);
            h_http r = send_route(RT_REMOVE, room, who, target);
            expect(&r, cases[i].want, what);
            field(&r, "error", "message", v, sizeof(v));
            if (cases[i].want == 400)
                cr_assert(strstr(v, "leave") != NULL, "%s: %s", what, r.body);
            if (cases[i].want == 404)
                cr_assert(strstr(v, users[target].id) != NULL, "%s: %s", what, r.body);
            if (cases[i].want == 200) {
                field(&r, "data", "removed", v, sizeof(v));
                cr_assert_str_eq(v, "true", "%s: %s", what, r.body);
                field(&r, "data", "user_id", v, sizeof(v));
                cr_assert_str_eq(v, users[target].id, "%s: %s", what, r.body);
            }
            h_http_free(&r);
            bool was_member = target != OUT;
            long after = get_status(room, target);
            cr_assert_eq(after, was_member && cases[i].want != 200 ? 200 : hidden_status(priv),
                         "%s: the target reading afterwards", what);
            /* mem is never a target, so mem can always look. */
            cr_assert_eq(member_count(room, MEM), 6 - (cases[i].want == 200), "%s: count", what);
        }
    }
}

/* ---- chat.rooms.authorize ---- */

Test(rooms_authz, authorize_over_nats_follows_the_table)
{
    start();
    natsConnection *nc = nats_connect();
    for (int priv = 0; priv < 2; priv++) {
        char room[NT_ID_LEN];
        room_new(priv, false, room);
        for (int a = 0; a < NACT; a++) {
            for (int rel = 0; rel < NREL; rel++) {
                char what[200], v[512];
                snprintf(what, sizeof(what), "authorize %s as %s of a %s room", table[a].name,
                         rel_names[rel], priv ? "private" : "public");
                h_http r = authorize(nc, actor[rel], room, table[a].name);
                long want = want_status(a, rel, priv);
                expect(&r, want, what);
                if (want == 200) {
                    field(&r, "data", "room_id", v, sizeof(v));
                    cr_assert_str_eq(v, room, "%s: %s", what, r.body);
                    field(&r, "data", "user_id", v, sizeof(v));
                    cr_assert_str_eq(v, users[actor[rel]].id, "%s: %s", what, r.body);
                    field(&r, "data", "action", v, sizeof(v));
                    cr_assert_str_eq(v, table[a].name, "%s: %s", what, r.body);
                    field(&r, "data", "role", v, sizeof(v));
                    cr_assert_str_eq(v, rel == R_OUT ? "null" : rel_names[rel], "%s: %s", what,
                                     r.body);
                    field(&r, "data", "is_private", v, sizeof(v));
                    cr_assert_str_eq(v, priv ? "true" : "false", "%s: %s", what, r.body);
                } else if (want == 404) {
                    char expected[120];
                    snprintf(expected, sizeof(expected), "room %s does not exist", room);
                    field(&r, "error", "message", v, sizeof(v));
                    cr_assert_str_eq(v, expected, "%s: %s", what, r.body);
                }
                h_http_free(&r);
            }
        }
        /* Asking answers, it never acts: nobody joined or left. */
        cr_assert_eq(member_count(room, ANN), 4, "authorize changed the room");

        /* Anything but the ten action names is a bad request. */
        static const char *const bad[] = {
            "{\"room_id\":\"%s\",\"action\":\"fly\"}",
            "{\"room_id\":\"%s\",\"action\":\"READ\"}",
            "{\"room_id\":\"%s\",\"action\":\"\"}",
            "{\"room_id\":\"%s\",\"action\":42}",
            "{\"room_id\":\"%s\",\"action\":null}",
            "{\"room_id\":\"%s\"}",
            "{\"room_id\":\"%s\",\"action\":\"read\",\"x\":1}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            char body[200];
            snprintf(body, sizeof(body), bad[i], room);
            h_http r = authorize_raw(nc, users[ANN].id, body);
            expect(&r, 400, body);
            h_http_free(&r);
        }
        /* Without Chat-User nobody is asking. */
        char body[200];
        snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"action\":\"read\"}", room);
        h_http r = authorize_raw(nc, NULL, body);
        expect(&r, 401, "authorize without Chat-User");
        h_http_free(&r);
    }
    natsConnection_Destroy(nc);
}

Test(rooms_authz, authorize_follows_every_change_of_membership)
{
    start();
    natsConnection *nc = nats_connect();
    char room[NT_ID_LEN], path[300];
    room_new(false, false, room);
    /* Fill the cache first, so what follows must replace it. */
    h_http r = authorize(nc, VIC, room, "moderate");
    expect(&r, 403, "vic moderating as a member");
    h_http_free(&r);

    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", room, users[VIC].id);
    must(h_api(&stack, "PUT", path, users[ANN].tok, "{\"role\":\"moderator\"}"), 200,
         "promote vic");
    r = authorize(nc, VIC, room, "moderate");
    expect(&r, 200, "vic moderating as a moderator");
    h_http_free(&r);

    r = authorize(nc, OUT, room, "read");
    expect(&r, 403, "out reading a public room");
    h_http_free(&r);
    snprintf(path, sizeof(path), "/api/rooms/%s/join", room);
    must(h_api(&stack, "POST", path, users[OUT].tok, NULL), 200, "out joins");
    r = authorize(nc, OUT, room, "send");
    expect(&r, 200, "out sending after joining");
    h_http_free(&r);

    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", room, users[VIC].id);
    must(h_api(&stack, "DELETE", path, users[ANN].tok, NULL), 200, "remove vic");
    r = authorize(nc, VIC, room, "read");
    expect(&r, 403, "vic reading after removal");
    h_http_free(&r);

    /* Public to private: the former member is now kept from seeing it at all. */
    snprintf(path, sizeof(path), "/api/rooms/%s", room);
    must(h_api(&stack, "PUT", path, users[ANN].tok, "{\"is_private\":true}"), 200,
         "make it private");
    r = authorize(nc, VIC, room, "read");
    expect(&r, 404, "vic reading a private room");
    h_http_free(&r);
    r = authorize(nc, VIC, room, "join");
    expect(&r, 404, "vic joining a private room");
    h_http_free(&r);
    r = authorize(nc, MEM, room, "invite");
    expect(&r, 403, "mem inviting to a private room");
    h_http_free(&r);

    snprintf(path, sizeof(path), "/api/rooms/%s/leave", room);
    must(h_api(&stack, "POST", path, users[MEM].tok, NULL), 200, "mem leaves");
    r = authorize(nc, MEM, room, "read");
    expect(&r, 404, "mem reading after leaving a private room");
    h_http_free(&r);

    snprintf(path, sizeof(path), "/api/rooms/%s", room);
    must(h_api(&stack, "DELETE", path, users[ANN].tok, NULL), 200, "delete");
    r = authorize(nc, ANN, room, "read");
    expect(&r, 404, "ann reading a deleted room");
    h_http_free(&r);
    natsConnection_Destroy(nc);
}

/* ---- what refusals reveal, and ids ---- */

Test(rooms_authz, a_private_room_looks_like_no_room_to_outsiders)
{
    start();
    natsConnection *nc = nats_connect();
    char room[NT_ID_LEN], ghost[NT_ID_LEN];
    room_new(true, false, room);
    nt_id_new(ghost);
    for (int route = 0; route < NROUTES + NACT; route++) {
        char what[200];
        h_http a, b;
        if (route < NROUTES) {
            route_label(route, what, sizeof(what));
            int target = route == RT_INVITE ? TIA : VIC;
            a = send_route(route, room, OUT, target);
            b = send_route(route, ghost, OUT, target);
        } else {
            snprintf(what, sizeof(what), "authorize %s", table[route - NROUTES].name);
            a = authorize(nc, OUT, room, table[route - NROUTES].name);
            b = authorize(nc, OUT, ghost, table[route - NROUTES].name);
        }
        expect(&a, 404, what);
        expect(&b, 404, what);
        char *ma = without_id(a.body, room), *mb = without_id(b.body, ghost);
        cr_assert_str_eq(ma, mb, "%s: a private room answers %s, no room %s", what, a.body, b.body);
        char msg[200];
        field(&a, "error", "message", msg, sizeof(msg));
        char *m = without_id(msg, room);
        cr_assert_str_eq(m, "room <id> does not exist", "%s: %s", what, a.body);
        free(m);
        free(ma);
        free(mb);
        h_http_free(&a);
        h_http_free(&b);
    }
    /* And none of it let the outsider in. */
    cr_assert_eq(member_count(room, ANN), 4, "the outsider's requests changed the room");
    natsConnection_Destroy(nc);
}

Test(rooms_authz, bad_room_ids_come_first_and_unknown_ones_are_not_found)
{
    start();
    natsConnection *nc = nats_connect();
    char room[NT_ID_LEN], upper[NT_ID_LEN], ghost[NT_ID_LEN];
    room_new(false, false, room);
    for (size_t i = 0; i < sizeof(upper); i++)
        upper[i] = (char)toupper((unsigned char)room[i]);
    cr_assert_str_neq(upper, room, "a room id without letters");
    nt_id_new(ghost);
    /* ann is the admin of the real room, whose id in capitals is no id at all:
     * even she gets 400 for every route, and nothing happens. */
    const char *const bad_ids[] = {"abc", upper};
    for (size_t k = 0; k < 2; k++) {
        for (int route = 0; route < NROUTES + NACT; route++) {
            char what[200];
            h_http r;
            if (route < NROUTES) {
                route_label(route, what, sizeof(what));
                r = send_route(route, bad_ids[k], ANN, route == RT_INVITE ? TIA : VIC);
            } else {
                snprintf(what, sizeof(what), "authorize %s", table[route - NROUTES].name);
                r = authorize(nc, ANN, bad_ids[k], table[route - NROUTES].name);
            }
            size_t len = strlen(what);
            snprintf(what + len, sizeof(what) - len, " with id %s", bad_ids[k]);
            expect(&r, 400, what);
            char msg[200];
            field(&r, "error", "message", msg, sizeof(msg));
            cr_assert_str_eq(msg, "'room_id' is not a valid room id", "%s: %s", what, r.body);
            h_http_free(&r);
        }
    }
    char v[64];
    room_field(room, VIC, "name", v, sizeof(v));
    cr_assert_str_eq(v, "matrix", "a request with a bad id renamed the room");
    cr_assert_eq(member_count(room, VIC), 4, "a request with a bad id changed the members");
    cr_assert_eq(get_status(room, TIA), 403, "a request with a bad id invited tia");
    member_role(room, VIC, VIC, v, sizeof(v));
    cr_assert_str_eq(v, "member", "a request with a bad id changed vic's role");

    /* A well-formed id of no room: 404 everywhere, even for an admin of others. */
    char expected[120];
    snprintf(expected, sizeof(expected), "room %s does not exist", ghost);
    for (int route = 0; route < NROUTES + NACT; route++) {
        char what[200], msg[200];
        h_http r;
        if (route < NROUTES) {
            route_label(route, what, sizeof(what));
            r = send_route(route, ghost, ANN, route == RT_INVITE ? TIA : VIC);
        } else {
            snprintf(what, sizeof(what), "authorize %s", table[route - NROUTES].name);
            r = authorize(nc, ANN, ghost, table[route - NROUTES].name);
        }
        expect(&r, 404, what);
        field(&r, "error", "message", msg, sizeof(msg));
        cr_assert_str_eq(msg, expected, "%s: %s", what, r.body);
        h_http_free(&r);
    }
    natsConnection_Destroy(nc);
}
