/* Integration tests of the edge at the HTTP level: the upgrade refusals
 * (token, version, path), /healthz and /metrics, discovery, the gateway's
 * readiness report of the edge, and the drain on SIGTERM. The protocol
 * itself is tested with the official phoenix client (tests/client). */
#include "harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static void fini(void)
{
    h_stop_all();
}

TestSuite(edge, .fini = fini, .timeout = 60);

static h_stack stack;
static int edge_port;
static char edge_env[64];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The stack plus an edge on a free port. */
static h_proc *start(void)
{
    edge_port = h_free_port();
    snprintf(edge_env, sizeof(edge_env), "EDGE_PORT=%d", edge_port);
    const char *extra[] = {edge_env, NULL};
    h_stack_start(&stack, extra);
    h_proc *p = h_spawn("edge", stack.env);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", edge_port);
    if (!h_wait_http(url, 200, 15000)) {
        h_dump_logs();
        cr_assert_fail("the edge did not become healthy");
    }
    return p;
}

/* A WebSocket upgrade request to path (with its query) on the edge. */
static h_http upgrade(const char *path_and_query)
{
    char url[8600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", edge_port, path_and_query);
    const char *headers[] = {"Connection: Upgrade", "Upgrade: websocket",
                             "Sec-WebSocket-Version: 13",
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    return h_request("GET", url, headers, NULL, 0);
}

Test(edge, refuses_upgrades_without_a_good_token_version_or_path)
{
    start();
    char *tok = h_dev_token(&stack, "ursula", NULL, 0);
    struct {
        const char *what;
        char path[8400];
        long want;
    } cases[] = {
        {"no token", "/socket/websocket?vsn=2.0.0", 403},
        {"garbage token", "/socket/websocket?token=abc.def.ghi&vsn=2.0.0", 403},
        {"empty token", "/socket/websocket?token=&vsn=2.0.0", 403},
        {"no vsn (1.0.0)", "", 403},
        {"vsn 1.0.0", "", 403},
        {"unknown path", "", 404},
    };
    snprintf(cases[3].path, sizeof(cases[3].path), "/socket/websocket?token=%s", tok);
    snprintf(cases[4].path, sizeof(cases[4].path), "/socket/websocket?token=%s&vsn=1.0.0", tok);
    snprintf(cases[5].path, sizeof(cases[5].path), "/other/websocket?token=%s&vsn=2.0.0", tok);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_http r = upgrade(cases[i].path);
        cr_expect_eq(r.status, cases[i].want, "%s: got %ld", cases[i].what, r.status);
        cr_expect_null(strstr(r.headers, "Sec-WebSocket-Accept"), "%s: upgraded", cases[i].what);
        h_http_free(&r);
    }
    /* The good token upgrades: 101 and the accept header. */
    char good[8400];
    snprintf(good, sizeof(good), "/socket/websocket?token=%s&vsn=2.0.0", tok);
    h_http r = upgrade(good);
    cr_expect(strstr(r.headers, "101") != NULL, "no 101: %s", r.headers);
    cr_expect(strstr(r.headers, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL, "accept: %s", r.headers);
    h_http_free(&r);
    /* The refusals never log the token. */
    h_stop_all();
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "grep -rqF '%.*s' %s", 60, tok + strlen(tok) - 60, h_tmpdir());
    cr_expect_neq(system(cmd), 0, "a token appears in a log");
    free(tok);
}

Test(edge, reports_health_metrics_and_discovery)
{
    start();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", edge_port);
    h_http r = h_request("GET", url, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    cr_assert_not_null(j, "%s", r.body);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    cr_expect_eq(cJSON_GetObjectItem(j, "sockets")->valuedouble, 0);
    cr_expect_eq(cJSON_GetObjectItem(j, "subscriptions")->valuedouble, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "nats")->valuestring, "connected");
    cJSON_Delete(j);
    h_http_free(&r);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", edge_port);
    r = h_request("GET", url, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_expect(strstr(r.body, "natter_edge_sockets 0\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "natter_edge_subscriptions 0\n") != NULL, "%s", r.body);
    h_http_free(&r);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/nothing", edge_port);
    r = h_request("GET", url, NULL, NULL, 0);
    cr_expect_eq(r.status, 404);
    h_http_free(&r);

    cr_expect(h_wait_service(stack.nats_url, "edge", 5000), "no $SRV.PING.edge answer");
}

Test(edge, the_gateway_reports_the_edge_without_needing_it)
{
    h_proc *edge = start();
    char url[256];
    snprintf(url, sizeof(url), "%s/readyz", stack.base);
    bool seen_ok = false;
    for (int i = 0; i < 60 && !seen_ok; i++) {
        h_http r = h_request("GET", url, NULL, NULL, 0);
        seen_ok = r.status == 200 && strstr(r.body, "\"edge\":\"ok\"") != NULL;
        h_http_free(&r);
        if (!seen_ok)
            sleep_ms(100);
    }
    cr_assert(seen_ok, "readyz never reported the edge");

    /* SIGTERM: the edge drains and exits 0; the gateway stays ready and says
     * the edge is gone. */
    int status = h_kill(edge, SIGTERM);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "edge exit status %d", status);
    bool seen_down = false;
    for (int i = 0; i < 60 && !seen_down; i++) {
        h_http r = h_request("GET", url, NULL, NULL, 0);
        seen_down = r.status == 200 && strstr(r.body, "\"edge\":\"unavailable\"") != NULL;
        h_http_free(&r);
        if (!seen_down)
            sleep_ms(100);
    }
    cr_assert(seen_down, "readyz never reported the edge gone");
}

Test(edge, refuses_a_bad_configuration_naming_the_variable)
{
    h_stack_env(&stack, NULL);
    const char *env[] = {stack.env[0], "EDGE_PORT=70000", NULL};
    h_proc *p = h_spawn("edge", env);
    for (int i = 0; i < 50 && h_alive(p); i++)
        sleep_ms(100);
    cr_assert(!h_alive(p), "the edge runs with EDGE_PORT=70000");
    int status = -p->pid - 1; /* h_alive keeps the exit status there */
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "exit status %d", status);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -q EDGE_PORT %s", p->log_path);
    cr_expect_eq(system(cmd), 0, "the message does not name EDGE_PORT");
}
