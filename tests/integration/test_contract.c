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
