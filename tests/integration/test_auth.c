/* Integration tests of the auth service through the real gateway: a real
 * nats-server, real SQLite files, real HTTP. Clerk's Backend API and JWKS are
 * played by a small HTTP server in this process (Clerk cannot be reached
 * offline); everything else is the product's own code. */
#include "harness.h"

#include "nt_jwt.h"

#include <criterion/criterion.h>
#include <microhttpd.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static h_stack stack;

static void fini(void)
{
    h_stop_all();
}

static h_proc *start_auth(void)
{
    return h_spawn("auth", stack.env);
}

static void start_stack(const char *const *extra)
{
    h_stack_start(&stack, extra);
}

static h_http call(const char *method, const char *path, const char *token, const char *body)
{
    return h_api(&stack, method, path, token, body);
}

static char *dev_token(const char *username, char *user_id_out)
{
    return h_dev_token(&stack, username, user_id_out, user_id_out ? 128 : 0);
}

static void data_str(const h_http *r, const char *key, char *out, size_t outlen)
{
    h_data_str(r, key, out, outlen);
}

static void error_code(const h_http *r, const char *want)
{
    h_error_code(r, want);
}

/* How many instances of service answer $SRV.PING.<service> within 300 ms. */
static int count_instances(const char *service)
{
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    char inbox[64], subj[64];
    cr_assert_eq(natsConnection_ConnectTo(&nc, stack.nats_url), NATS_OK);
    snprintf(inbox, sizeof(inbox), "_INBOX.count.%ld", (long)time(NULL));
    snprintf(subj, sizeof(subj), "$SRV.PING.%s", service);
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, inbox), NATS_OK);
    cr_assert_eq(natsConnection_PublishRequestString(nc, subj, inbox, ""), NATS_OK);
    int n = 0;
    natsMsg *m = NULL;
    while (natsSubscription_NextMsg(&m, sub, 300) == NATS_OK) {
        n++;
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    return n;
}

/* Waits until want instances of service answer discovery. */
static void wait_instances(const char *service, int want)
{
    for (int i = 0; i < 50; i++) {
        if (count_instances(service) == want)
            return;
    }
    h_dump_logs();
    cr_assert_fail("%d instances of %s never answered $SRV.PING", want, service);
}

/* True when needle occurs in any process log of this test. */
static bool logs_contain(const char *needle)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "grep -rqF -- '%s' '%s' 2>/dev/null", needle, h_tmpdir());
    return system(cmd) == 0;
}

TestSuite(auth, .fini = fini, .timeout = 90);

Test(auth, dev_token_then_profile_then_update)
{
    start_stack(NULL);
    char uid[128];
    char *tok = dev_token("alice", uid);
    h_http r = call("GET", "/api/users/me", tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char v[256];
    data_str(&r, "username", v, sizeof(v));
    cr_assert_str_eq(v, "alice");
    data_str(&r, "user_id", v, sizeof(v));
    cr_assert_str_eq(v, uid);
    data_str(&r, "email", v, sizeof(v));
    cr_assert(strstr(v, "@") != NULL);
    h_http_free(&r);

    r = call("PUT", "/api/users/me", tok,
             "{\"username\":\"Alice Liddell\",\"avatar_url\":\"https://img.example/a.png\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    data_str(&r, "username", v, sizeof(v));
    cr_assert_str_eq(v, "Alice Liddell");
    h_http_free(&r);

    r = call("GET", "/api/users/me", tok, NULL);
    data_str(&r, "avatar_url", v, sizeof(v));
    cr_assert_str_eq(v, "https://img.example/a.png");
    h_http_free(&r);

    /* null clears the avatar */
    r = call("PUT", "/api/users/me", tok, "{\"avatar_url\":null}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    data_str(&r, "avatar_url", v, sizeof(v));
    cr_assert_str_eq(v, "null");
    h_http_free(&r);

    /* POST /api/users replaces the profile from the body in local mode */
    r = call("POST", "/api/users", tok,
             "{\"username\":\"alice2\",\"email\":\"alice@example.com\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    data_str(&r, "email", v, sizeof(v));
    cr_assert_str_eq(v, "alice@example.com");
    h_http_free(&r);

    cr_assert_not(logs_contain(tok), "a token appeared in a log");
    free(tok);
}

Test(auth, refuses_bad_profile_input_with_named_fields)
{
    start_stack(NULL);
    char *tok = dev_token("bob", NULL);
    struct {
        const char *method, *path, *body, *needle;
    } cases[] = {
        {"PUT", "/api/users/me", "{\"username\":\"\"}", "'username'"},
        {"PUT", "/api/users/me", "{\"username\":\"a\\u0007b\"}", "control"},
        {"PUT", "/api/users/me", "{\"avatar_url\":\"javascript:alert(1)\"}", "'avatar_url'"},
        {"PUT", "/api/users/me", "{\"avatar_url\":\"ftp://x/y\"}", "'avatar_url'"},
        {"PUT", "/api/users/me", "{\"colour\":\"red\"}", "unknown field 'colour'"},
        {"PUT", "/api/users/me", "{}", "nothing to update"},
        {"PUT", "/api/users/me", "{\"username\":null}", "'username'"},
        {"PUT", "/api/users/me", "{\"username\":42}", "must be a string"},
        {"POST", "/api/users", "{\"username\":\"x\"}", "'email' is required"},
        {"POST", "/api/users", "{\"username\":\"x\",\"email\":\"nope\"}", "'email'"},
        {"POST", "/api/dev/token", "{\"username\":\"\"}", "'username'"},
        {"POST", "/api/dev/token", "{}", "'username' is required"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_http r = call(cases[i].method, cases[i].path,
                        strcmp(cases[i].path, "/api/dev/token") ? tok : NULL, cases[i].body);
        cr_assert_eq(r.status, 400, "%s %s: %ld %s", cases[i].method, cases[i].body, r.status,
                     r.body);
        error_code(&r, "invalid_request");
        cr_assert(strstr(r.body, cases[i].needle) != NULL, "%s: %s", cases[i].body, r.body);
        h_http_free(&r);
    }
    /* 65 characters is one too many; 64 multi-byte characters fit */
    char body[512] = "{\"username\":\"";
    for (int i = 0; i < 64; i++)
        strcat(body, "\xc3\xa9");
    strcat(body, "\"}");
    h_http r = call("PUT", "/api/users/me", tok, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_http_free(&r);
    body[13] = 'x';
    memmove(body + 14, body + 13, strlen(body + 13) + 1);
    body[13] = 'x';
    r = call("PUT", "/api/users/me", tok, body);
    cr_assert_eq(r.status, 400, "%s", r.body);
    h_http_free(&r);
    free(tok);
}

Test(auth, profile_and_signing_key_survive_a_restart_of_auth)
{
    start_stack(NULL);
    h_proc *auth = h_spawn("auth", stack.env); /* a second instance shares the queue group */
    wait_instances("auth", 2);
    char *tok = dev_token("carol", NULL);
    h_http r = call("PUT", "/api/users/me", tok, "{\"username\":\"Carol K\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_http_free(&r);

    /* Stop every auth instance; the gateway answers 503 meanwhile, quickly. */
    cr_assert_eq(h_kill(auth, SIGTERM), 0, "auth must exit 0 on SIGTERM");
    cr_assert_eq(h_kill_by_name("auth", SIGTERM), 1, "the first auth instance was running");
    r = call("GET", "/api/users/me", tok, NULL);
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    error_code(&r, "unavailable");
    cr_assert_lt(r.seconds, 2.0, "503 must come at once, took %.2fs", r.seconds);
    h_http_free(&r);

    start_auth();
    char url[256];
    snprintf(url, sizeof(url), "%s/readyz", stack.base);
    cr_assert(h_wait_http(url, 200, 15000));
    /* The token minted before the restart still verifies: the key was reused. */
    r = call("GET", "/api/users/me", tok, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    char v[128];
    data_str(&r, "username", v, sizeof(v));
    cr_assert_str_eq(v, "Carol K");
    h_http_free(&r);
    free(tok);
}

Test(auth, answers_nats_micro_discovery_and_keeps_the_session_cache)
{
    start_stack(NULL);
    char uid[128];
    char *tok = dev_token("dave", uid);
    h_http r = call("GET", "/api/users/me", tok, NULL);
    cr_assert_eq(r.status, 200);
    h_http_free(&r);

    natsConnection *nc = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, stack.nats_url), NATS_OK);
    const char *subjects[] = {"$SRV.PING", "$SRV.PING.auth", "$SRV.INFO.auth", "$SRV.STATS.auth"};
    for (size_t i = 0; i < 4; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(natsConnection_RequestString(&m, nc, subjects[i], "", 2000), NATS_OK,
                     "%s unanswered", subjects[i]);
        cJSON *j = cJSON_Parse(natsMsg_GetData(m));
        /* The bare $SRV.PING is answered by every service of the stack: the
         * first answer may come from any of them. */
        const char *name = cJSON_GetObjectItem(j, "name")->valuestring;
        if (i == 0) {
            static const char *const services[] = {"auth",     "rooms", "messages",
                                                   "presence", "edge",  "gateway"};
            bool known = false;
            for (size_t k = 0; k < sizeof(services) / sizeof(services[0]); k++)
                known = known || strcmp(name, services[k]) == 0;
            cr_assert(known, "$SRV.PING answered by an unknown service: %s", name);
        } else
            cr_assert_str_eq(name, "auth");
        const char *type = cJSON_GetObjectItem(j, "type")->valuestring;
        cr_assert(strncmp(type, "io.nats.micro.v1.", 17) == 0, "%s", type);
        if (i == 3) {
            cJSON *eps = cJSON_GetObjectItem(j, "endpoints");
            cJSON *ep;
            long long total = 0;
            cJSON_ArrayForEach(ep, eps) total +=
                (long long)cJSON_GetObjectItem(ep, "num_requests")->valuedouble;
            cr_assert_geq(total, 2, "stats count requests: %s", natsMsg_GetData(m));
        }
        cJSON_Delete(j);
        natsMsg_Destroy(m);
    }
    /* The profile is cached under session:{user} in the sessions bucket. */
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    cr_assert_eq(js_KeyValue(&kv, js, "natter_sessions"), NATS_OK);
    cr_assert_eq(kvStore_Get(&e, kv, uid), NATS_OK, "no session entry for %s", uid);
    cr_assert(strstr(kvEntry_ValueString(e), "\"username\":\"dave\"") != NULL);
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(tok);
}

Test(auth, refuses_writes_it_cannot_cache_and_loses_nothing)
{
    start_stack(NULL);
    char uid[128];
    char *tok = dev_token("erin", uid);
    h_http r = call("GET", "/api/users/me", tok, NULL);
    cr_assert_eq(r.status, 200);
    h_http_free(&r);

    /* Take the session cache away under auth's feet. */
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, stack.nats_url), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    cr_assert_eq(js_DeleteKeyValue(js, "natter_sessions"), NATS_OK);

    /* A write that could leave a stale cache entry for a day is refused... */
    r = call("PUT", "/api/users/me", tok, "{\"username\":\"Erin 2\"}");
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    error_code(&r, "unavailable");
    cr_assert(strstr(r.body, "session cache") != NULL, "%s", r.body);
    h_http_free(&r);
    /* ...and changed nothing; reads fall back to the database. */
    r = call("GET", "/api/users/me", tok, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    char v[128];
    data_str(&r, "username", v, sizeof(v));
    cr_assert_str_eq(v, "erin");
    h_http_free(&r);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(tok);
}

/* ---- Clerk mode, with Clerk played by a local HTTP server ---- */

static int clerk_user_hits;

static enum MHD_Result fake_clerk(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)version;
    (void)data;
    (void)size;
    (void)con_cls;
    const char *jwks = cls;
    const char *body = "{\"errors\":[{\"code\":\"resource_not_found\"}]}";
    unsigned status = 404;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (strcmp(method, "GET") == 0 && strcmp(url, "/.well-known/jwks.json") == 0) {
        body = jwks;
        status = 200;
    } else if (strcmp(url, "/v1/users/user_clerk1") == 0) {
        __atomic_add_fetch(&clerk_user_hits, 1, __ATOMIC_SEQ_CST);
        if (auth == NULL || strcmp(auth, "Bearer sk_test_supersecret") != 0) {
            body = "{\"errors\":[{\"code\":\"authentication_invalid\"}]}";
            status = 401;
        } else {
            body = "{\"id\":\"user_clerk1\",\"username\":\"grace\",\"image_url\":"
                   "\"https://img.clerk.com/g.png\",\"primary_email_address_id\":\"idn_1\","
                   "\"email_addresses\":[{\"id\":\"idn_1\",\"email_address\":\"grace@navy.mil\"}]}";
            status = 200;
        }
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *mint(EVP_PKEY *key, const char *kid, const char *iss, const char *sub, long exp_in)
{
    char h[256], p[512], *tok = NULL;
    long now = (long)time(NULL);
    snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    snprintf(p, sizeof(p),
             "{\"sub\":\"%s\",\"iss\":\"%s\",\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,"
             "\"sid\":\"sess_1\",\"azp\":\"http://localhost:5173\"}",
             sub, iss, now, now - 5, now + exp_in);
    cr_assert_eq(nt_jwt_sign_rs256(key, h, p, &tok), NT_OK);
    return tok;
}

Test(auth, clerk_mode_takes_profiles_from_clerk_and_keeps_secrets_out_of_logs)
{
    char keypath[600];
    snprintf(keypath, sizeof(keypath), "%s/clerk-key.pem", h_tmpdir());
    EVP_PKEY *key = NULL;
    cr_assert_eq(nt_rsa_load_or_create(keypath, &key), NT_OK);
    cJSON *jwk = NULL;
    cr_assert_eq(nt_jwk_from_key(key, "ins_test", &jwk), NT_OK);
    cJSON *jwks = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(jwks, "keys"), jwk);
    char *jwks_text = cJSON_PrintUnformatted(jwks);
    cJSON_Delete(jwks);

    int cport = h_free_port();
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)cport, NULL,
                                            NULL, fake_clerk, jwks_text, MHD_OPTION_END);
    cr_assert_not_null(d);
    char iss[128], api[160], jwks_url[200];
    snprintf(iss, sizeof(iss), "http://127.0.0.1:%d", cport);
    snprintf(api, sizeof(api), "CLERK_API_URL=%s", iss);
    snprintf(jwks_url, sizeof(jwks_url), "CLERK_JWKS_URL=%s/.well-known/jwks.json", iss);
    char iss_env[200];
    snprintf(iss_env, sizeof(iss_env), "CLERK_ISSUER_URL=%s", iss);
    const char *extra[] = {iss_env,
                           jwks_url,
                           api,
                           "CLERK_SECRET_KEY=sk_test_supersecret",
                           "CLERK_AUTHORIZED_PARTIES=http://localhost:5173",
                           NULL};
    start_stack(extra);

    /* No development tokens with Clerk. */
    h_http r = call("POST", "/api/dev/token", NULL, "{\"username\":\"x\"}");
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_http_free(&r);

    char *tok = mint(key, "ins_test", iss, "user_clerk1", 60);
    r = call("POST", "/api/users", tok, "{\"username\":\"ignored\",\"email\":\"no@x.y\"}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    char v[256];
    data_str(&r, "username", v, sizeof(v));
    cr_assert_str_eq(v, "grace");
    data_str(&r, "email", v, sizeof(v));
    cr_assert_str_eq(v, "grace@navy.mil");
    data_str(&r, "avatar_url", v, sizeof(v));
    cr_assert_str_eq(v, "https://img.clerk.com/g.png");
    h_http_free(&r);
    int hits = clerk_user_hits;

    /* A second sync within the minute is answered from our store. */
    r = call("POST", "/api/users", tok, "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    data_str(&r, "username", v, sizeof(v));
    cr_assert_str_eq(v, "grace");
    h_http_free(&r);
    cr_assert_eq(clerk_user_hits, hits, "POST /api/users asked Clerk twice within a minute");

    /* Reads come from our own store and cache, not from Clerk. */
    for (int i = 0; i < 3; i++) {
        r = call("GET", "/api/users/me", tok, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        h_http_free(&r);
    }
    cr_assert_eq(clerk_user_hits, hits, "profile reads must not call Clerk");

    /* A token from another key, an expired one and a wrong issuer are refused. */
    char *expired = mint(key, "ins_test", iss, "user_clerk1", -60);
    r = call("GET", "/api/users/me", expired, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    error_code(&r, "unauthorized");
    h_http_free(&r);
    char *wrong_iss = mint(key, "ins_test", "https://evil.example", "user_clerk1", 60);
    r = call("GET", "/api/users/me", wrong_iss, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    h_http_free(&r);

    cr_assert_not(logs_contain("sk_test_supersecret"), "the Clerk secret appeared in a log");
    cr_assert_not(logs_contain(tok), "a token appeared in a log");
    free(tok);
    free(expired);
    free(wrong_iss);
    h_stop_all();
    MHD_stop_daemon(d);
    free(jwks_text);
    EVP_PKEY_free(key);
}
