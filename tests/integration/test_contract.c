/* Contract tests: real replies of the real processes, REST and NATS, checked
 * against the JSON Schemas in schemas/json/. Other programs rely on these
 * shapes (DESIGN.md §2), so a change to a payload must change its schema. */
#include "harness.h"
#include "schema_check.h"

#include "nt_nats.h"

#include <criterion/criterion.h>
#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

static h_stack stack;

static void fini(void)
{
    h_stop_all();
}

TestSuite(contract, .fini = fini, .timeout = 60);

/* Checks text against a schema file; for_data checks its "data" member
 * instead, after making sure that the envelope holds nothing else. */
static void expect_schema(const char *what, const char *text, const char *file, bool for_data)
{
    cJSON *schema = schema_load(file);
    cJSON *v = cJSON_Parse(text);
    cr_assert_not_null(v, "%s: not JSON: %s", what, text);
    const cJSON *target = v;
    if (for_data) {
        cr_assert_eq(cJSON_GetArraySize(v), 1, "%s: the envelope has extra members: %s", what,
                     text);
        target = cJSON_GetObjectItemCaseSensitive(v, "data");
        cr_assert_not_null(target, "%s: no data member: %s", what, text);
    }
    char err[512];
    cr_assert(schema_check(schema, schema, target, err, sizeof(err)), "%s vs %s: %s in %s", what,
              file, err, text);
    cJSON_Delete(v);
    cJSON_Delete(schema);
}

static h_http call(const char *method, const char *path, const char *token, const char *body)
{
    return h_api(&stack, method, path, token, body);
}

Test(contract, the_checker_refuses_what_it_should)
{
    cJSON *s = schema_load("profile.schema.json");
    char err[512];
    const char *good =
        "{\"id\":\"01a24497-dc77-70ed-aa85-f189627dd99d\",\"user_id\":\"user_1\","
        "\"username\":\"a\",\"email\":\"a@b.c\",\"avatar_url\":null,"
        "\"created_at\":\"2026-12-05T05:05:32Z\",\"updated_at\":\"2026-12-05T05:05:32Z\"}";
    cJSON *v = cJSON_Parse(good);
    cr_assert(schema_check(s, s, v, err, sizeof(err)), "%s", err);
    cJSON_ReplaceItemInObject(v, "avatar_url", cJSON_CreateString("ftp://x"));
    cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "pattern");
    cJSON_ReplaceItemInObject(v, "avatar_url", cJSON_CreateNull());
    cJSON_AddStringToObject(v, "extra", "x");
    cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "additional member");
    cr_assert(strstr(err, "extra") != NULL, "%s", err);
    cJSON_DeleteItemFromObject(v, "extra");
    cJSON_DeleteItemFromObject(v, "email");
    cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "missing member");
    cJSON_AddNumberToObject(v, "email", 3);
    cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "wrong type");
    cJSON_Delete(v);
    cJSON_Delete(s);

    cJSON *m = schema_load("micro.schema.json");
    cJSON *ping = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "$defs"), "ping");
    v = cJSON_Parse("{\"type\":\"io.nats.micro.v1.info_response\",\"name\":\"auth\","
                    "\"id\":\"abcdefghijABCDEFGHIJ12\",\"version\":\"0.1.0\",\"metadata\":{}}");
    cr_assert_not(schema_check(m, ping, v, err, sizeof(err)), "const through $ref siblings");
    cJSON_ReplaceItemInObject(v, "type", cJSON_CreateString("io.nats.micro.v1.ping_response"));
    cr_assert(schema_check(m, ping, v, err, sizeof(err)), "%s", err);
    cJSON_Delete(v);
    cJSON_Delete(m);
}

Test(contract, rest_replies_match_their_schemas)
{
    h_stack_start(&stack, NULL);
    h_http r = call("POST", "/api/dev/token", NULL, "{\"username\":\"zoe\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    expect_schema("POST /api/dev/token", r.body, "dev-token.schema.json", true);
    cJSON *j = cJSON_Parse(r.body);
    char *tok = strdup(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "token")->valuestring);
    cJSON_Delete(j);
    h_http_free(&r);

    struct {
        const char *method, *path, *body;
        bool auth;
        long status;
        const char *schema;
    } cases[] = {
        {"GET", "/api/users/me", NULL, true, 200, "profile.schema.json"},
        {"PUT", "/api/users/me", "{\"avatar_url\":\"https://x.example/a.png\"}", true, 200,
         "profile.schema.json"},
        {"POST", "/api/users", "{\"username\":\"zoe\",\"email\":\"z@x.io\"}", true, 200,
         "profile.schema.json"},
        {"GET", "/api/users/me", NULL, false, 401, "error.schema.json"},
        {"PUT", "/api/users/me", "{\"nope\":1}", true, 400, "error.schema.json"},
        {"PUT", "/api/users/me", "{", true, 400, "error.schema.json"},
        {"GET", "/api/nothing", NULL, true, 404, "error.schema.json"},
        {"DELETE", "/api/users/me", NULL, true, 405, "error.schema.json"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = call(cases[i].method, cases[i].path, cases[i].auth ? tok : NULL, cases[i].body);
        char what[128];
        snprintf(what, sizeof(what), "%s %s", cases[i].method, cases[i].path);
        cr_assert_eq(r.status, cases[i].status, "%s: %ld %s", what, r.status, r.body);
        expect_schema(what, r.body, cases[i].schema, cases[i].status == 200);
        h_http_free(&r);
    }
    r = call("GET", "/.well-known/jwks.json", NULL, NULL);
    cr_assert_eq(r.status, 200);
    expect_schema("GET /.well-known/jwks.json", r.body, "jwks.schema.json", false);
    h_http_free(&r);
    free(tok);
}

Test(contract, nats_replies_match_their_schemas)
{
    h_stack_start(&stack, NULL);
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(stack.nats_url, "contract", 5000, &nc), NT_OK);
    nt_response r;
    cr_assert_eq(nt_nats_request(nc, "chat.auth.jwks", NULL, "c-1", "{}", 2, 2000, &r), NT_OK);
    expect_schema("chat.auth.jwks", r.data, "jwks.schema.json", true);
    nt_response_free(&r);
    cr_assert_eq(nt_nats_request(nc, "chat.auth.users.get", NULL, "c-2", "{}", 2, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 401);
    expect_schema("chat.auth.users.get without Chat-User", r.data, "error.schema.json", false);
    nt_response_free(&r);
    cr_assert_eq(nt_nats_request(nc, "chat.auth.dev.token", NULL, "c-3", "{\"username\":\"q\"}", 16,
                                 2000, &r),
                 NT_OK);
    expect_schema("chat.auth.dev.token", r.data, "dev-token.schema.json", true);
    nt_response_free(&r);
    cr_assert_eq(
        nt_nats_request(nc, "chat.auth.users.get", "user_nobody", "c-4", "{}", 2, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 404);
    expect_schema("chat.auth.users.get unknown", r.data, "error.schema.json", false);
    nt_response_free(&r);

    /* Discovery, checked against the three definitions. */
    cJSON *m = schema_load("micro.schema.json");
    const char *verbs[][2] = {
        {"$SRV.PING.auth", "ping"}, {"$SRV.INFO.auth", "info"}, {"$SRV.STATS.auth", "stats"}};
    for (size_t i = 0; i < 3; i++) {
        natsMsg *msg = NULL;
        cr_assert_eq(natsConnection_RequestString(&msg, nt_nats_raw(nc), verbs[i][0], "", 2000),
                     NATS_OK);
        cJSON *v = cJSON_Parse(natsMsg_GetData(msg));
        char err[512];
        const cJSON *def = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "$defs"), verbs[i][1]);
        cr_assert(schema_check(m, def, v, err, sizeof(err)), "%s: %s in %s", verbs[i][0], err,
                  natsMsg_GetData(msg));
        cJSON_Delete(v);
        natsMsg_Destroy(msg);
    }
    cJSON_Delete(m);
    nt_nats_destroy(nc);
}

/* ---- rooms ---------------------------------------------------------------- */

/* The error code that goes with an HTTP status (schemas/nats.md). */
static const char *code_for(long status)
{
    switch (status) {
    case 400:
        return "invalid_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 409:
        return "conflict";
    default:
        return "?";
    }
}

/* Asserts that an error body carries the code of status, besides its schema. */
static void expect_error(const char *what, const char *text, long status)
{
    expect_schema(what, text, "error.schema.json", false);
    cJSON *v = cJSON_Parse(text);
    const cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "error"), "code");
    cr_assert(cJSON_IsString(code) && strcmp(code->valuestring, code_for(status)) == 0,
              "%s: %ld should be %s: %s", what, status, code_for(status), text);
    cJSON_Delete(v);
}

/* Sends method path as token, asserts the status, and checks the reply: the
 * data of a success against file, an error against error.schema.json. Returns
 * the parsed body (the caller's, cJSON_Delete). */
static cJSON *rest(const char *token, const char *method, const char *path, const char *body,
                   long status, const char *file)
{
    h_http r = call(method, path, token, body);
    char what[256];
    snprintf(what, sizeof(what), "%s %s", method, path);
    cr_assert_eq(r.status, status, "%s: %ld %s", what, r.status, r.body);
    if (status == 200)
        expect_schema(what, r.body, file, true);
    else
        expect_error(what, r.body, status);
    cJSON *v = cJSON_Parse(r.body);
    h_http_free(&r);
    return v;
}

/* rest() for a reply that is not looked at further. */
static void rest_check(const char *token, const char *method, const char *path, const char *body,
                       long status, const char *file)
{
    cJSON_Delete(rest(token, method, path, body, status, file));
}

/* Copies data.<key> (a string) of a parsed success body into out and frees it. */
static void take_str(cJSON *v, const char *key, char *out, size_t outlen)
{
    const cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), key);
    cr_assert(cJSON_IsString(s), "data.%s is not a string", key);
    snprintf(out, outlen, "%s", s->valuestring);
    cJSON_Delete(v);
}

/* chat.rooms.authorize over NATS as user (NULL: without Chat-User); asserts
 * the status and checks the reply against authorize.schema.json or the error
 * schema. */
static void authorize(nt_nats *nc, const char *user, const char *room_id, const char *action,
                      int status)
{
    char body[256], what[256];
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"action\":\"%s\"}", room_id, action);
    snprintf(what, sizeof(what), "chat.rooms.authorize %s as %s", action, user ? user : "nobody");
    nt_response r;
    cr_assert_eq(
        nt_nats_request(nc, "chat.rooms.authorize", user, "c-authz", body, strlen(body), 2000, &r),
        NT_OK, "%s: no reply", what);
    cr_assert_eq(r.http, status, "%s: %d %s", what, r.http, r.data);
    if (status == 200)
        expect_schema(what, r.data, "authorize.schema.json", true);
    else
        expect_error(what, r.data, status);
    nt_response_free(&r);
}

/* Every event kind the rooms service publishes; each must be seen. */
static const char *const event_kinds[] = {"user_joined",  "user_left",    "member_updated",
                                          "room_updated", "room_deleted", "room_invited",
                                          "room_removed"};
#define N_EVENT_KINDS (sizeof(event_kinds) / sizeof(event_kinds[0]))

/* Checks every message waiting on sub against the schema named after the last
 * token of its subject (user_joined: event-user-joined.schema.json) and marks
 * its kind in seen. Call after a flush of the subscriber's connection: the
 * service publishes an event before it replies, on the same connection, so the
 * server queued it for us before our PONG and it is already pending here. */
static size_t check_events(natsSubscription *sub, bool seen[N_EVENT_KINDS])
{
    int pending = 0, bytes = 0;
    cr_assert_eq(natsSubscription_GetPending(sub, &pending, &bytes), NATS_OK);
    for (int i = 0; i < pending; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(natsSubscription_NextMsg(&m, sub, 1000), NATS_OK);
        const char *subject = natsMsg_GetSubject(m);
        const char *kind = strrchr(subject, '.') + 1;
        char file[128], path[2048];
        int n = snprintf(file, sizeof(file), "event-%s.schema.json", kind);
        cr_assert(n > 0 && (size_t)n < sizeof(file), "event name too long: %s", subject);
        for (char *c = file; *c; c++)
            if (*c == '_')
                *c = '-';
        snprintf(path, sizeof(path), "%s/schemas/json/%s", h_root(), file);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "event %s has no schema (%s)", subject, file);
        fclose(f);
        /* Event payloads are bare: no {"data": ...} envelope. */
        expect_schema(subject, natsMsg_GetData(m), file, false);
        for (size_t k = 0; k < N_EVENT_KINDS; k++)
            if (strcmp(kind, event_kinds[k]) == 0)
                seen[k] = true;
        natsMsg_Destroy(m);
    }
    return (size_t)pending;
}

Test(contract, rooms_replies_and_events_match_their_schemas)
{
    h_stack_start(&stack, NULL);
    char ann[128], bob[128], cy[128], dee[128];
    char *tann = h_dev_token(&stack, "ann", ann, sizeof(ann));
    char *tbob = h_dev_token(&stack, "bob", bob, sizeof(bob));
    char *tcy = h_dev_token(&stack, "cy", cy, sizeof(cy));
    char *tdee = h_dev_token(&stack, "dee", dee, sizeof(dee));

    /* Subscribed and flushed before acting, so no event can be missed. */
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(stack.nats_url, "contract", 5000, &nc), NT_OK);
    natsSubscription *room_sub = NULL, *user_sub = NULL;
    cr_assert_eq(natsConnection_SubscribeSync(&room_sub, nt_nats_raw(nc), "chat.room.>"), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&user_sub, nt_nats_raw(nc), "chat.user.>"), NATS_OK);
    cr_assert_eq(natsConnection_FlushTimeout(nt_nats_raw(nc), 2000), NATS_OK);

    char pub[64], priv[64], path[256], body[512], new_admin[128];
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Lobby\",\"description\":\"hello\"}", 200,
                  "room.schema.json"),
             "id", pub, sizeof(pub));
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Secret\",\"is_private\":true}", 200,
                  "room.schema.json"),
             "id", priv, sizeof(priv));

    /* Lists: the caller's rooms, and the public ones as an outsider (role null). */
    cJSON *v = rest(tann, "GET", "/api/rooms", NULL, 200, "room-list.schema.json");
    const cJSON *rooms = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "rooms");
    cr_assert_eq(cJSON_GetArraySize(rooms), 2, "ann's rooms");
    cJSON_Delete(v);
    v = rest(tbob, "GET", "/api/rooms?scope=public", NULL, 200, "room-list.schema.json");
    rooms = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "rooms");
    cr_assert_eq(cJSON_GetArraySize(rooms), 1, "public rooms");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(rooms, 0), "role")));
    cJSON_Delete(v);

    /* authorize: an outsider may join the public room (role null); the admin
     * may update the private one. */
    authorize(nc, bob, pub, "join", 200);
    authorize(nc, ann, priv, "update", 200);

    snprintf(path, sizeof(path), "/api/rooms/%s", pub);
    rest_check(tann, "GET", path, NULL, 200, "room.schema.json");
    rest_check(tann, "PUT", path, "{\"name\":\"Lobby 2\",\"description\":null}", 200,
               "room.schema.json");

    snprintf(path, sizeof(path), "/api/rooms/%s/join", pub);
    rest_check(tbob, "POST", path, NULL, 200, "room.schema.json");
    rest_check(tbob, "POST", path, NULL, 200, "room.schema.json");

    /* Invitations by username (admin, private room) and by user id (a
     * member of a public room). */
    snprintf(path, sizeof(path), "/api/rooms/%s/invite", priv);
    rest_check(tann, "POST", path, "{\"username\":\"cy\"}", 200, "member.schema.json");
    /* dee has an avatar, so member and user_joined carry a URL, not null. */
    h_http r = call("PUT", "/api/users/me", tdee, "{\"avatar_url\":\"https://x.example/d.png\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_http_free(&r);
    snprintf(path, sizeof(path), "/api/rooms/%s/invite", pub);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", dee);
    v = rest(tbob, "POST", path, body, 200, "member.schema.json");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "avatar_url")));
    cJSON_Delete(v);

    snprintf(path, sizeof(path), "/api/rooms/%s/members", pub);
    v = rest(tann, "GET", path, NULL, 200, "member-list.schema.json");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "members")),
                 3);
    cJSON_Delete(v);
    snprintf(path, sizeof(path), "/api/rooms/%s/members?limit=1", pub);
    v = rest(tdee, "GET", path, NULL, 200, "member-list.schema.json");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "next_cursor")),
              "a first page of one has a next cursor");
    cJSON_Delete(v);

    /* A moderator removes a member; then the last admin leaves and the
     * longest-standing member (bob) succeeds. */
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", pub, bob);
    rest_check(tann, "PUT", path, "{\"role\":\"moderator\"}", 200, "member.schema.json");
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", pub, dee);
    rest_check(tbob, "DELETE", path, NULL, 200, "member-remove.schema.json");
    snprintf(path, sizeof(path), "/api/rooms/%s/leave", pub);
    take_str(rest(tann, "POST", path, NULL, 200, "room-leave.schema.json"), "new_admin", new_admin,
             sizeof(new_admin));
    cr_assert_str_eq(new_admin, bob);
    snprintf(path, sizeof(path), "/api/rooms/%s", pub);
    rest_check(tbob, "DELETE", path, NULL, 200, "room-delete.schema.json");

    /* The private room: a member leaves, then the last one, which deletes it. */
    snprintf(path, sizeof(path), "/api/rooms/%s/leave", priv);
    rest_check(tcy, "POST", path, NULL, 200, "room-leave.schema.json");
    v = rest(tann, "POST", path, NULL, 200, "room-leave.schema.json");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "room_deleted")));
    cJSON_Delete(v);

    cr_assert_eq(natsConnection_FlushTimeout(nt_nats_raw(nc), 2000), NATS_OK);
    bool seen[N_EVENT_KINDS] = {false};
    size_t n = check_events(room_sub, seen) + check_events(user_sub, seen);
    for (size_t k = 0; k < N_EVENT_KINDS; k++)
        cr_assert(seen[k], "no %s event among %zu", event_kinds[k], n);

    natsSubscription_Destroy(room_sub);
    natsSubscription_Destroy(user_sub);
    nt_nats_destroy(nc);
    free(tann);
    free(tbob);
    free(tcy);
    free(tdee);
}

Test(contract, rooms_errors_match_the_error_schema)
{
    h_stack_start(&stack, NULL);
    char ann[128], bob[128], cy[128];
    char *tann = h_dev_token(&stack, "ann", ann, sizeof(ann));
    char *tbob = h_dev_token(&stack, "bob", bob, sizeof(bob));
    char *tcy = h_dev_token(&stack, "cy", cy, sizeof(cy));
    char pub[64], priv[64], path[256], body[512];
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Lobby\"}", 200, "room.schema.json"),
             "id", pub, sizeof(pub));
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Secret\",\"is_private\":true}", 200,
                  "room.schema.json"),
             "id", priv, sizeof(priv));
    snprintf(path, sizeof(path), "/api/rooms/%s/join", pub);
    rest_check(tbob, "POST", path, NULL, 200, "room.schema.json");

    /* 400 */
    rest_check(tann, "GET", "/api/rooms/NOT-A-ROOM", NULL, 400, NULL);
    rest_check(tann, "POST", "/api/rooms", "{\"name\":\"   \"}", 400, NULL);
    rest_check(tann, "POST", "/api/rooms", "{\"name\":\"x\",\"colour\":\"red\"}", 400, NULL);
    rest_check(tann, "POST", "/api/rooms", "{\"name\":\"x\",\"is_private\":\"yes\"}", 400, NULL);
    rest_check(tann, "GET", "/api/rooms?scope=everyone", NULL, 400, NULL);
    rest_check(tann, "GET", "/api/rooms?cursor=garbage", NULL, 400, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/members?limit=0", pub);
    rest_check(tann, "GET", path, NULL, 400, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s", pub);
    rest_check(tann, "PUT", path, "{}", 400, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", pub, bob);
    rest_check(tann, "PUT", path, "{\"role\":\"owner\"}", 400, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", pub, ann);
    rest_check(tann, "DELETE", path, NULL, 400, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/invite", pub);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"username\":\"cy\"}", cy);
    rest_check(tann, "POST", path, body, 400, NULL);

    /* 403: an outsider of a public room; a member asking for an admin's rights. */
    snprintf(path, sizeof(path), "/api/rooms/%s", pub);
    rest_check(tcy, "GET", path, NULL, 403, NULL);
    rest_check(tbob, "PUT", path, "{\"name\":\"Mine\"}", 403, NULL);
    rest_check(tbob, "DELETE", path, NULL, 403, NULL);

    /* 404: a private room to an outsider, a room that does not exist, an
     * unknown invitee, a target who is not a member. */
    snprintf(path, sizeof(path), "/api/rooms/%s", priv);
    rest_check(tbob, "GET", path, NULL, 404, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/join", priv);
    rest_check(tbob, "POST", path, NULL, 404, NULL);
    rest_check(tann, "GET", "/api/rooms/0193a4b2-7c1e-7d3f-8a2b-1c2d3e4f5a6b", NULL, 404, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/invite", pub);
    rest_check(tann, "POST", path, "{\"username\":\"nobody\"}", 404, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", pub, cy);
    rest_check(tann, "PUT", path, "{\"role\":\"member\"}", 404, NULL);

    /* 409: already a member; demoting the last admin. */
    snprintf(path, sizeof(path), "/api/rooms/%s/invite", pub);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", bob);
    rest_check(tann, "POST", path, body, 409, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/members/%s", pub, ann);
    rest_check(tann, "PUT", path, "{\"role\":\"member\"}", 409, NULL);

    /* authorize refusals over NATS. */
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(stack.nats_url, "contract", 5000, &nc), NT_OK);
    authorize(nc, bob, priv, "read", 404);
    authorize(nc, cy, pub, "read", 403);
    authorize(nc, bob, pub, "update", 403);
    authorize(nc, bob, pub, "fly", 400);
    authorize(nc, NULL, pub, "read", 401);
    nt_nats_destroy(nc);
    free(tann);
    free(tbob);
    free(tcy);
}
