/* Contract tests: real replies of the real processes, REST and NATS, checked
 * against the JSON Schemas in schemas/json/. Other programs rely on these
 * shapes (DESIGN.md §2), so a change to a payload must change its schema. */
#include "harness.h"
#include "schema_check.h"

#include "nt_clock.h"
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

Test(contract, the_checker_follows_refs_to_other_files)
{
    char err[512];
    const char *good =
        "{\"id\":\"0193a4b2-7c1e-7d3f-8a2b-1c2d3e4f5a6b\","
        "\"room_id\":\"0193a4b2-7c1e-7d3f-8a2b-1c2d3e4f5a6c\",\"user_id\":\"user_1\","
        "\"username\":\"ann\",\"content\":\"hi\",\"message_type\":\"text\",\"client_ref\":null,"
        "\"created_at\":\"2026-12-05T06:40:12.345Z\",\"edited\":false,\"edited_at\":null,"
        "\"deleted\":false,\"deleted_at\":null,\"deleted_by\":null}";
    const char *events[] = {"event-message-received.schema.json",
                            "event-message-updated.schema.json",
                            "event-message-deleted.schema.json", "message.schema.json"};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        cJSON *s = schema_load(events[i]);
        cJSON *v = cJSON_Parse(good);
        cr_assert(schema_check(s, s, v, err, sizeof(err)), "%s: %s", events[i], err);
        cJSON_ReplaceItemInObject(v, "message_type", cJSON_CreateString("video"));
        cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "%s: enum through $ref", events[i]);
        cJSON_ReplaceItemInObject(v, "message_type", cJSON_CreateString("file"));
        cJSON_AddStringToObject(v, "extra", "x");
        cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "%s: additional member", events[i]);
        cJSON_DeleteItemFromObject(v, "extra");
        cJSON_ReplaceItemInObject(v, "edited_at", cJSON_CreateString("yesterday"));
        cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "%s: time pattern", events[i]);
        cJSON_Delete(v);
        cJSON_Delete(s);
    }
    /* Through items: a page and a room's messages (which may be null). */
    char text[2048];
    cJSON *s = schema_load("message-page.schema.json");
    snprintf(text, sizeof(text), "{\"messages\":[%s],\"has_more\":false,\"next_cursor\":null}",
             good);
    cJSON *v = cJSON_Parse(text);
    cr_assert(schema_check(s, s, v, err, sizeof(err)), "%s", err);
    cJSON_DeleteItemFromObject(cJSON_GetArrayItem(cJSON_GetObjectItem(v, "messages"), 0), "id");
    cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "missing member through items and $ref");
    cr_assert(strstr(err, "messages[0]") != NULL, "%s", err);
    cJSON_Delete(v);
    cJSON_Delete(s);
    s = schema_load("room.schema.json");
    const char *room = "{\"id\":\"0193a4b2-7c1e-7d3f-8a2b-1c2d3e4f5a6c\",\"name\":\"L\","
                       "\"description\":null,\"is_private\":false,\"created_by\":\"user_1\","
                       "\"created_at\":\"2026-12-05T06:40:12.345Z\",\"member_count\":1,"
                       "\"role\":\"admin\",\"last_activity_at\":\"2026-12-05T06:40:12.345Z\"";
    snprintf(text, sizeof(text), "%s,\"messages\":[%s]}", room, good);
    v = cJSON_Parse(text);
    cr_assert(schema_check(s, s, v, err, sizeof(err)), "%s", err);
    cJSON_ReplaceItemInObject(v, "messages", cJSON_CreateNull());
    cr_assert(schema_check(s, s, v, err, sizeof(err)), "messages may be null: %s", err);
    cJSON_ReplaceItemInObject(v, "messages", cJSON_Parse("[{\"id\":\"x\"}]"));
    cr_assert_not(schema_check(s, s, v, err, sizeof(err)), "a message that is not one");
    cJSON_Delete(v);
    cJSON_Delete(s);
}

/* Presence's payloads (contract of issue 6) against their schemas, as
 * examples: each schema must take the shapes the contract names and refuse
 * near misses, down to the entries of its maps. */
#define P_EDGE "a1B2c3D4e5F6g7H8i9J0kL"
#define P_ROOM "0193a4b2-7c1e-7d3f-8a2b-1c2d3e4f5a6c"
#define P_TIME "2026-12-05T06:40:12.345Z"
#define P_META "{\"phx_ref\":\"" P_EDGE "-7\",\"username\":\"ann\",\"online_at\":\"" P_TIME "\"}"

static void presence_case(const char *file, const char *text, bool good)
{
    cJSON *s = schema_load(file);
    cJSON *v = cJSON_Parse(text);
    cr_assert_not_null(v, "not JSON: %s", text);
    char err[512];
    bool ok = schema_check(s, s, v, err, sizeof(err));
    if (good)
        cr_assert(ok, "%s should take %s: %s", file, text, err);
    else
        cr_assert_not(ok, "%s should refuse %s", file, text);
    cJSON_Delete(v);
    cJSON_Delete(s);
}

Test(contract, presence_schemas_take_the_contract_shapes_and_refuse_near_misses)
{
    const char *diff = "event-presence-diff.schema.json";
    presence_case(diff, "{\"joins\":{\"u1\":{\"metas\":[" P_META "]}},\"leaves\":{}}", true);
    presence_case(diff, "{\"joins\":{},\"leaves\":{\"u1\":{\"metas\":[" P_META "," P_META "]}}}",
                  true);
    presence_case(diff, "{\"joins\":{}}", false);
    presence_case(diff, "{\"joins\":{},\"leaves\":{},\"x\":1}", false);
    presence_case(diff, "{\"joins\":{\"u1\":{\"metas\":[]}},\"leaves\":{}}", false);
    presence_case(diff, "{\"joins\":{\"u 1\":{\"metas\":[" P_META "]}},\"leaves\":{}}", false);
    presence_case(diff,
                  "{\"joins\":{\"u1\":{\"metas\":[{\"phx_ref\":\"7\",\"username\":\"a\","
                  "\"online_at\":\"" P_TIME "\"}]}},\"leaves\":{}}",
                  false);
    presence_case(diff, "{\"joins\":{\"u1\":{\"metas\":[" P_META "],\"x\":1}},\"leaves\":{}}",
                  false);

    const char *upd = "event-presence-update.schema.json";
    presence_case(upd, "{\"user_id\":\"u1\",\"online\":false,\"last_seen\":\"" P_TIME "\"}", true);
    presence_case(upd, "{\"user_id\":\"u1\",\"online\":\"no\",\"last_seen\":\"" P_TIME "\"}",
                  false);
    presence_case(upd, "{\"user_id\":\"u1\",\"online\":true}", false);

    const char *state = "presence-state.schema.json";
    presence_case(state,
                  "{\"room_id\":\"" P_ROOM "\",\"presence\":{\"u1\":{\"metas\":[" P_META "]}},"
                  "\"edges\":{\"" P_EDGE "\":42}}",
                  true);
    presence_case(state, "{\"room_id\":\"" P_ROOM "\",\"presence\":{},\"edges\":{}}", true);
    presence_case(state, "{\"room_id\":\"" P_ROOM "\",\"presence\":{},\"edges\":{\"e\":1}}", false);
    presence_case(state,
                  "{\"room_id\":\"" P_ROOM "\",\"presence\":{},\"edges\":{\"" P_EDGE "\":\"1\"}}",
                  false);
    presence_case(state, "{\"room_id\":\"" P_ROOM "\",\"presence\":{}}", false);

    const char *online = "presence-online.schema.json";
    presence_case(online,
                  "{\"users\":{\"u1\":{\"online\":true,\"last_seen\":\"" P_TIME "\"},"
                  "\"u2\":{\"online\":false,\"last_seen\":null}}}",
                  true);
    presence_case(online, "{\"users\":{\"u2\":{\"online\":false}}}", false);
    presence_case(online, "{\"users\":{\"u2\":{\"online\":null,\"last_seen\":null}}}", false);

    const char *report = "presence-report.schema.json";
    const char *head = "{\"edge\":\"" P_EDGE "\",\"seq\":3,";
    const char *good[] = {
        "\"type\":\"connect\",\"conn\":\"12\",\"user_id\":\"u1\"}",
        "\"type\":\"disconnect\",\"conn\":\"12\",\"user_id\":\"u1\"}",
        "\"type\":\"join\",\"conn\":\"12\",\"user_id\":\"u1\",\"room_id\":\"" P_ROOM
        "\",\"meta\":" P_META "}",
        "\"type\":\"leave\",\"conn\":\"12\",\"user_id\":\"u1\",\"room_id\":\"" P_ROOM
        "\",\"phx_ref\":\"" P_EDGE "-7\"}",
        "\"type\":\"snapshot\",\"round\":4,\"part\":0,\"parts\":1,\"conns\":[]}",
        "\"type\":\"snapshot\",\"round\":4,\"part\":1,\"parts\":2,\"conns\":[{\"conn\":\"12\","
        "\"user_id\":\"u1\",\"joins\":[{\"room_id\":\"" P_ROOM "\",\"meta\":" P_META "}]}]}",
        "\"type\":\"bye\"}",
    };
    const char *bad[] = {
        "\"type\":\"hello\"}",
        "\"type\":\"bye\",\"conn\":\"12\"}",
        "\"type\":\"connect\",\"conn\":12,\"user_id\":\"u1\"}",
        "\"type\":\"join\",\"conn\":\"12\",\"user_id\":\"u1\",\"room_id\":\"" P_ROOM "\"}",
        "\"type\":\"leave\",\"conn\":\"12\",\"user_id\":\"u1\",\"room_id\":\"r\",\"phx_ref\":"
        "\"" P_EDGE "-7\"}",
        "\"type\":\"snapshot\",\"round\":4,\"part\":0,\"parts\":0,\"conns\":[]}",
        "\"type\":\"snapshot\",\"round\":4,\"part\":0,\"parts\":1,\"conns\":[{\"conn\":\"12\","
        "\"user_id\":\"u1\"}]}",
    };
    char text[1024];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", head, good[i]);
        presence_case(report, text, true);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", head, bad[i]);
        presence_case(report, text, false);
    }
    presence_case(report, "{\"edge\":\"" P_EDGE "\",\"seq\":0,\"type\":\"bye\"}", false);
    presence_case(report, "{\"edge\":\"short\",\"seq\":1,\"type\":\"bye\"}", false);
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
    case 429:
        return "rate_limited";
    case 503:
        return "unavailable";
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

/* Every event kind the messages service publishes. */
static const char *const msg_event_kinds[] = {"message_received", "message_updated",
                                              "message_deleted"};
#define N_MSG_EVENT_KINDS (sizeof(msg_event_kinds) / sizeof(msg_event_kinds[0]))

/* Checks one event against the schema named after the last token of its
 * subject (user_joined: event-user-joined.schema.json) and marks its kind in
 * seen (kinds[0..nkinds)). */
static void check_event(natsMsg *m, const char *const *kinds, size_t nkinds, bool *seen)
{
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
    for (size_t k = 0; k < nkinds; k++)
        if (strcmp(kind, kinds[k]) == 0)
            seen[k] = true;
}

/* Checks every message waiting on sub (check_event). Call after a flush of
 * the subscriber's connection: rooms publishes an event before it replies,
 * on the same connection, so the server queued it for us before our PONG and
 * it is already pending here. */
static size_t check_events(natsSubscription *sub, bool seen[N_EVENT_KINDS])
{
    int pending = 0, bytes = 0;
    cr_assert_eq(natsSubscription_GetPending(sub, &pending, &bytes), NATS_OK);
    for (int i = 0; i < pending; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(natsSubscription_NextMsg(&m, sub, 1000), NATS_OK);
        check_event(m, event_kinds, N_EVENT_KINDS, seen);
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

/* ---- messages ------------------------------------------------------------- */

/* A request over NATS as user (NULL: without Chat-User); asserts the status
 * and checks the reply: its data against file on 200, else the error schema
 * and code. Returns the parsed body (the caller's) and, when retry_ms is
 * non-NULL, the Chat-Retry-After-Ms hint. */
static cJSON *nats_call(nt_nats *nc, const char *subject, const char *user, const char *body,
                        int status, const char *file, long long *retry_ms)
{
    char what[256];
    snprintf(what, sizeof(what), "%s as %s: %s", subject, user ? user : "nobody", body);
    nt_response r;
    cr_assert_eq(nt_nats_request(nc, subject, user, "c-msgs", body, strlen(body), 5000, &r), NT_OK,
                 "%s: no reply", what);
    cr_assert_eq(r.http, status, "%s: %d %s", what, r.http, r.data);
    if (status == 200)
        expect_schema(what, r.data, file, true);
    else
        expect_error(what, r.data, status);
    if (retry_ms != NULL)
        *retry_ms = r.retry_after_ms;
    cJSON *v = cJSON_Parse(r.data);
    nt_response_free(&r);
    return v;
}

static void nats_check(nt_nats *nc, const char *subject, const char *user, const char *body,
                       int status, const char *file)
{
    cJSON_Delete(nats_call(nc, subject, user, body, status, file, NULL));
}

static const cJSON *data_of(const cJSON *v)
{
    const cJSON *d = cJSON_GetObjectItem(v, "data");
    cr_assert_not_null(d, "not a success body");
    return d;
}

/* Takes every event on sub until each kind of kinds has been seen, checking
 * each (of any kind) against its schema; gives up after timeout_ms. Messages publishes
 * message_received from its committer after it has woken the sender, so the
 * event may follow the reply: this waits for it instead of relying on a flush. */
static size_t await_events(natsSubscription *sub, const char *const *kinds, size_t nkinds,
                           bool *seen, int timeout_ms)
{
    size_t n = 0;
    int64_t deadline = nt_clock_mono_ms() + timeout_ms;
    for (;;) {
        bool all = true;
        for (size_t k = 0; k < nkinds; k++)
            all = all && seen[k];
        int64_t left = deadline - nt_clock_mono_ms();
        if (all || left <= 0)
            break;
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, left);
        if (s == NATS_TIMEOUT)
            break;
        cr_assert_eq(s, NATS_OK);
        check_event(m, kinds, nkinds, seen);
        natsMsg_Destroy(m);
        n++;
    }
    return n;
}

Test(contract, messages_replies_and_events_match_their_schemas)
{
    h_stack_start(&stack, NULL);
    char ann[128], bob[128];
    char *tann = h_dev_token(&stack, "ann", ann, sizeof(ann));
    char *tbob = h_dev_token(&stack, "bob", bob, sizeof(bob));

    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(stack.nats_url, "contract", 5000, &nc), NT_OK);
    natsSubscription *sub = NULL;
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nt_nats_raw(nc), "chat.room.>"), NATS_OK);
    cr_assert_eq(natsConnection_FlushTimeout(nt_nats_raw(nc), 2000), NATS_OK);

    char room[64], path[256], body[512], m1[64], m2[64], m3[64], cursor[64];
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Lobby\"}", 200, "room.schema.json"),
             "id", room, sizeof(room));
    snprintf(path, sizeof(path), "/api/rooms/%s/join", room);
    rest_check(tbob, "POST", path, NULL, 200, "room.schema.json");

    /* send: REST (with a client_ref, then its retry), NATS (an image, no ref). */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", room);
    take_str(rest(tann, "POST", path, "{\"content\":\" hello\\nworld \",\"client_ref\":\"web:1\"}",
                  200, "message.schema.json"),
             "id", m1, sizeof(m1));
    cJSON *v = rest(tann, "POST", path, "{\"content\":\"hello again\",\"client_ref\":\"web:1\"}",
                    200, "message.schema.json");
    cr_assert_str_eq(cJSON_GetObjectItem(data_of(v), "id")->valuestring, m1,
                     "a retried client_ref answers the first message");
    cJSON_Delete(v);
    snprintf(body, sizeof(body),
             "{\"room_id\":\"%s\",\"content\":\"a picture\",\"message_type\":\"image\"}", room);
    v = nats_call(nc, "chat.messages.send", bob, body, 200, "message.schema.json", NULL);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(data_of(v), "client_ref")));
    snprintf(m2, sizeof(m2), "%s", cJSON_GetObjectItem(data_of(v), "id")->valuestring);
    cJSON_Delete(v);
    snprintf(body, sizeof(body),
             "{\"room_id\":\"%s\",\"content\":\"third\",\"client_ref\":\"n-3\"}", room);
    v = nats_call(nc, "chat.messages.send", bob, body, 200, "message.schema.json", NULL);
    snprintf(m3, sizeof(m3), "%s", cJSON_GetObjectItem(data_of(v), "id")->valuestring);
    cJSON_Delete(v);

    /* edit: REST by the author, then NATS by the author. */
    snprintf(path, sizeof(path), "/api/messages/%s", m1);
    v = rest(tann, "PUT", path, "{\"content\":\"hello, edited\"}", 200, "message.schema.json");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(data_of(v), "edited")));
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(data_of(v), "edited_at")));
    cJSON_Delete(v);
    snprintf(body, sizeof(body), "{\"message_id\":\"%s\",\"content\":\"the third, edited\"}", m3);
    nats_check(nc, "chat.messages.edit", bob, body, 200, "message.schema.json");

    /* delete: REST by the author; NATS by the room's admin (moderation). */
    v = rest(tann, "DELETE", path, NULL, 200, "message.schema.json");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(data_of(v), "deleted")));
    cr_assert_str_eq(cJSON_GetObjectItem(data_of(v), "content")->valuestring, "");
    cr_assert_str_eq(cJSON_GetObjectItem(data_of(v), "deleted_by")->valuestring, ann);
    cJSON_Delete(v);
    snprintf(body, sizeof(body), "{\"message_id\":\"%s\"}", m2);
    nats_check(nc, "chat.messages.delete", ann, body, 200, "message.schema.json");

    /* history: every kind of page over REST, and NATS. */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", room);
    v = rest(tbob, "GET", path, NULL, 200, "message-page.schema.json");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(data_of(v), "messages")), 3);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(data_of(v), "next_cursor")));
    cJSON_Delete(v);
    snprintf(path, sizeof(path), "/api/rooms/%s/messages?limit=1", room);
    take_str(rest(tbob, "GET", path, NULL, 200, "message-page.schema.json"), "next_cursor", cursor,
             sizeof(cursor));
    cr_assert_str_eq(cursor, m3, "the latest page of one is the newest message");
    snprintf(path, sizeof(path), "/api/rooms/%s/messages?before=%s&limit=1", room, cursor);
    rest_check(tbob, "GET", path, NULL, 200, "message-page.schema.json");
    snprintf(path, sizeof(path), "/api/rooms/%s/messages?after=%s", room, m1);
    v = rest(tbob, "GET", path, NULL, 200, "message-page.schema.json");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(data_of(v), "messages")), 2);
    cJSON_Delete(v);
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"limit\":2}", room);
    v = nats_call(nc, "chat.messages.history", ann, body, 200, "message-page.schema.json", NULL);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(data_of(v), "has_more")));
    cJSON_Delete(v);

    /* The room with its latest messages: a tombstone, an edit, a client_ref. */
    snprintf(path, sizeof(path), "/api/rooms/%s", room);
    v = rest(tbob, "GET", path, NULL, 200, "room.schema.json");
    const cJSON *ms = cJSON_GetObjectItem(data_of(v), "messages");
    cr_assert(cJSON_IsArray(ms), "messages answered: an array, not null");
    cr_assert_eq(cJSON_GetArraySize(ms), 3);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 0), "id")->valuestring, m1,
                     "oldest first");
    cJSON_Delete(v);
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\"}", room);
    nats_check(nc, "chat.rooms.get", ann, body, 200, "room.schema.json");

    bool seen[N_MSG_EVENT_KINDS] = {false};
    size_t n = await_events(sub, msg_event_kinds, N_MSG_EVENT_KINDS, seen, 5000);
    for (size_t k = 0; k < N_MSG_EVENT_KINDS; k++)
        cr_assert(seen[k], "no %s event among %zu", msg_event_kinds[k], n);

    natsSubscription_Destroy(sub);
    nt_nats_destroy(nc);
    free(tann);
    free(tbob);
}

/* Sends as token until the gateway answers 429 (the default budget is a
 * burst of 10); returns that reply. */
static h_http flood_until_429(const char *token, const char *path)
{
    for (int i = 0; i < 100; i++) {
        h_http r = call("POST", path, token, "{\"content\":\"spam\"}");
        if (r.status == 429)
            return r;
        cr_assert_eq(r.status, 200, "send %d: %ld %s", i, r.status, r.body);
        h_http_free(&r);
    }
    cr_assert_fail("no 429 after 100 sends");
    return (h_http){0};
}

Test(contract, messages_errors_match_the_error_schema)
{
    h_stack_start(&stack, NULL);
    char ann[128], bob[128], cy[128], dee[128];
    char *tann = h_dev_token(&stack, "ann", ann, sizeof(ann));
    char *tbob = h_dev_token(&stack, "bob", bob, sizeof(bob));
    char *tcy = h_dev_token(&stack, "cy", cy, sizeof(cy));
    char *tdee = h_dev_token(&stack, "dee", dee, sizeof(dee));
    static const char *const missing = "0193a4b2-7c1e-7d3f-8a2b-1c2d3e4f5a6b";
    char pub[64], priv[64], path[256], body[512], mine[64], gone[64], secret[64];
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Lobby\"}", 200, "room.schema.json"),
             "id", pub, sizeof(pub));
    take_str(rest(tann, "POST", "/api/rooms", "{\"name\":\"Secret\",\"is_private\":true}", 200,
                  "room.schema.json"),
             "id", priv, sizeof(priv));
    snprintf(path, sizeof(path), "/api/rooms/%s/join", pub);
    rest_check(tbob, "POST", path, NULL, 200, "room.schema.json");
    rest_check(tdee, "POST", path, NULL, 200, "room.schema.json");
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", pub);
    take_str(rest(tann, "POST", path, "{\"content\":\"mine\",\"client_ref\":\"ref-1\"}", 200,
                  "message.schema.json"),
             "id", mine, sizeof(mine));
    take_str(rest(tann, "POST", path, "{\"content\":\"to delete\"}", 200, "message.schema.json"),
             "id", gone, sizeof(gone));
    snprintf(path, sizeof(path), "/api/messages/%s", gone);
    rest_check(tann, "DELETE", path, NULL, 200, "message.schema.json");
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", priv);
    take_str(rest(tann, "POST", path, "{\"content\":\"secret\"}", 200, "message.schema.json"), "id",
             secret, sizeof(secret));

    /* 400 */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", pub);
    rest_check(tann, "POST", path, "{\"content\":\"   \"}", 400, NULL);
    rest_check(tann, "POST", path, "{}", 400, NULL);
    rest_check(tann, "POST", path, "{\"content\":5}", 400, NULL);
    rest_check(tann, "POST", path, "{\"content\":\"x\",\"colour\":\"red\"}", 400, NULL);
    rest_check(tann, "POST", path, "{\"content\":\"x\",\"message_type\":\"video\"}", 400, NULL);
    rest_check(tann, "POST", path, "{\"content\":\"x\",\"client_ref\":\"a b\"}", 400, NULL);
    rest_check(tann, "POST", path, "{\"content\":\"a\\u0001b\"}", 400, NULL);
    rest_check(tann, "POST", "/api/rooms/NOT-A-ROOM/messages", "{\"content\":\"x\"}", 400, NULL);
    rest_check(tann, "GET", "/api/rooms/NOT-A-ROOM/messages", NULL, 400, NULL);
    const char *bad_queries[] = {"limit=0",     "limit=101",
                                 "limit=abc",   "limit=1.5",
                                 "before=nope", "after=0193A4B2-7C1E-7D3F-8A2B-1C2D3E4F5A6B"};
    for (size_t i = 0; i < sizeof(bad_queries) / sizeof(bad_queries[0]); i++) {
        snprintf(path, sizeof(path), "/api/rooms/%s/messages?%s", pub, bad_queries[i]);
        rest_check(tann, "GET", path, NULL, 400, NULL);
    }
    snprintf(path, sizeof(path), "/api/rooms/%s/messages?before=%s&after=%s", pub, mine, mine);
    rest_check(tann, "GET", path, NULL, 400, NULL);
    rest_check(tann, "PUT", "/api/messages/nope", "{\"content\":\"x\"}", 400, NULL);
    rest_check(tann, "DELETE", "/api/messages/nope", NULL, 400, NULL);
    snprintf(path, sizeof(path), "/api/messages/%s", mine);
    rest_check(tann, "PUT", path, "{}", 400, NULL);

    /* 403: an outsider of a public room; a member editing or deleting
     * another's message. */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", pub);
    rest_check(tcy, "POST", path, "{\"content\":\"let me in\"}", 403, NULL);
    rest_check(tcy, "GET", path, NULL, 403, NULL);
    snprintf(path, sizeof(path), "/api/messages/%s", mine);
    rest_check(tbob, "PUT", path, "{\"content\":\"not yours\"}", 403, NULL);
    rest_check(tbob, "DELETE", path, NULL, 403, NULL);

    /* 404: a private room or its message to an outsider; what does not exist. */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", priv);
    rest_check(tbob, "POST", path, "{\"content\":\"hi\"}", 404, NULL);
    rest_check(tbob, "GET", path, NULL, 404, NULL);
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", missing);
    rest_check(tann, "GET", path, NULL, 404, NULL);
    rest_check(tann, "POST", path, "{\"content\":\"hi\"}", 404, NULL);
    snprintf(path, sizeof(path), "/api/messages/%s", secret);
    rest_check(tbob, "PUT", path, "{\"content\":\"hi\"}", 404, NULL);
    rest_check(tbob, "DELETE", path, NULL, 404, NULL);
    snprintf(path, sizeof(path), "/api/messages/%s", missing);
    rest_check(tann, "PUT", path, "{\"content\":\"hi\"}", 404, NULL);
    rest_check(tann, "DELETE", path, NULL, 404, NULL);

    /* 409: a client_ref used in another room; editing a deleted message. */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", priv);
    rest_check(tann, "POST", path, "{\"content\":\"again\",\"client_ref\":\"ref-1\"}", 409, NULL);
    snprintf(path, sizeof(path), "/api/messages/%s", gone);
    rest_check(tann, "PUT", path, "{\"content\":\"back\"}", 409, NULL);

    /* The same over NATS: 401 without Chat-User, 400, 403, 404, 409. */
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(stack.nats_url, "contract", 5000, &nc), NT_OK);
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"content\":\"x\"}", pub);
    nats_check(nc, "chat.messages.send", NULL, body, 401, NULL);
    nats_check(nc, "chat.messages.send", cy, body, 403, NULL);
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"content\":\"x\",\"extra\":1}", pub);
    nats_check(nc, "chat.messages.send", ann, body, 400, NULL);
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"limit\":0}", pub);
    nats_check(nc, "chat.messages.history", ann, body, 400, NULL);
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\"}", priv);
    nats_check(nc, "chat.messages.history", bob, body, 404, NULL);
    snprintf(body, sizeof(body), "{\"message_id\":\"%s\",\"content\":\"x\"}", gone);
    nats_check(nc, "chat.messages.edit", ann, body, 409, NULL);
    snprintf(body, sizeof(body), "{\"message_id\":\"%s\"}", mine);
    nats_check(nc, "chat.messages.delete", bob, body, 403, NULL);
    snprintf(body, sizeof(body), "{\"message_id\":\"%s\"}", missing);
    nats_check(nc, "chat.messages.delete", ann, body, 404, NULL);

    /* 429: dee floods the room. REST: retry_after_ms in the body and
     * Retry-After (whole seconds, rounded up) from the gateway. */
    snprintf(path, sizeof(path), "/api/rooms/%s/messages", pub);
    h_http r = flood_until_429(tdee, path);
    expect_error("flooding POST", r.body, 429);
    cJSON *v = cJSON_Parse(r.body);
    const cJSON *ms = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "error"), "retry_after_ms");
    cr_assert(cJSON_IsNumber(ms) && ms->valuedouble >= 1, "retry_after_ms: %s", r.body);
    char ra[32];
    cr_assert(h_header(&r, "Retry-After", ra, sizeof(ra)), "no Retry-After: %s", r.headers);
    cr_assert_eq(strtoll(ra, NULL, 10), ((long long)ms->valuedouble + 999) / 1000, "%s vs %s", ra,
                 r.body);
    cJSON_Delete(v);
    h_http_free(&r);
    /* NATS: the same error, with Chat-Retry-After-Ms. The bucket is empty, so
     * the next sends are refused until it refills (5 a second by default). */
    snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"content\":\"more spam\"}", pub);
    long long retry = 0;
    nt_response nr;
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(nt_nats_request(nc, "chat.messages.send", dee, "c-flood", body, strlen(body),
                                     5000, &nr),
                     NT_OK);
        if (nr.http == 429)
            break;
        cr_assert_eq(nr.http, 200, "%s", nr.data);
        nt_response_free(&nr);
    }
    cr_assert_eq(nr.http, 429, "no 429 over NATS: %s", nr.data);
    expect_error("chat.messages.send flooding", nr.data, 429);
    retry = nr.retry_after_ms;
    cr_assert_gt(retry, 0, "Chat-Retry-After-Ms is set");
    v = cJSON_Parse(nr.data);
    ms = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "error"), "retry_after_ms");
    cr_assert(cJSON_IsNumber(ms) && (long long)ms->valuedouble == retry,
              "the header and the body agree: %lld %s", retry, nr.data);
    cJSON_Delete(v);
    nt_response_free(&nr);

    nt_nats_destroy(nc);
    free(tann);
    free(tbob);
    free(tcy);
    free(tdee);
}
