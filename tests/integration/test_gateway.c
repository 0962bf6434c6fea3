/* Integration tests of the gateway: a real nats-server, the real gateway and
 * (where needed) the real auth service, spoken to over HTTP on loopback. */
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENV 24

static const char *nats_url;
static int gw_port;
static h_proc *gw;
static h_proc *auth;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The URL of path on the gateway (a static buffer per call site is enough:
 * callers use it at once). */
static const char *url(const char *path)
{
    static __thread char buf[4][512];
    static __thread int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "http://127.0.0.1:%d%s", gw_port, path);
    return buf[i];
}

static void fail_dump(void)
{
    h_dump_logs();
}

static void teardown(void)
{
    h_stop_all();
    gw = NULL;
    auth = NULL;
}

/* Starts nats-server once per test. */
static void start_nats(void)
{
    nats_url = h_nats_start();
}

static void start_auth(void)
{
    static char env_nats[128], env_data[700], env_mig[1200];
    snprintf(env_nats, sizeof(env_nats), "NATS_URL=%s", nats_url);
    snprintf(env_data, sizeof(env_data), "NATTER_DATA_DIR=%s/data", h_tmpdir());
    snprintf(env_mig, sizeof(env_mig), "NATTER_MIGRATIONS_DIR=%s/schemas/migrations", h_root());
    const char *env[] = {env_nats, env_data, env_mig, "NATTER_LOG_LEVEL=info", NULL};
    auth = h_spawn("auth", env);
}

/* Starts the gateway with the defaults below plus extra ("K=V", NULL-ended;
 * later entries win) and waits for /healthz. */
static void start_gateway(const char *const *extra)
{
    static char env_nats[128], env_port[64], env_web[700];
    gw_port = h_free_port();
    snprintf(env_nats, sizeof(env_nats), "NATS_URL=%s", nats_url);
    snprintf(env_port, sizeof(env_port), "NATTER_HTTP_PORT=%d", gw_port);
    snprintf(env_web, sizeof(env_web), "NATTER_WEB_DIR=%s/no-web-dir", h_tmpdir());
    const char *env[MAX_ENV] = {env_nats, env_port, env_web, "NATTER_HTTP_ADDR=127.0.0.1"};
    size_t n = 4;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n + 1 < MAX_ENV);
        env[n++] = extra[i];
    }
    env[n] = NULL;
    gw = h_spawn("gateway", env);
    if (!h_wait_http(url("/healthz"), 200, 10000)) {
        fail_dump();
        cr_assert_fail("the gateway did not answer /healthz");
    }
}

/* nats + auth + gateway, waiting until /readyz says ready. */
static void start_all(const char *const *extra)
{
    start_nats();
    start_auth();
    start_gateway(extra);
    if (!h_wait_http(url("/readyz"), 200, 15000)) {
        fail_dump();
        cr_assert_fail("the gateway never became ready");
    }
}

/* The "message" (or any string member) of an error body, for assertions. */
static bool body_has(const h_http *r, const char *text)
{
    return r->body != NULL && strstr(r->body, text) != NULL;
}

static void assert_error(const h_http *r, long status, const char *code)
{
    if (r->status != status)
        fail_dump();
    cr_assert_eq(r->status, status, "status %ld, want %ld, body %s", r->status, status, r->body);
    char ct[128] = "";
    cr_assert(h_header(r, "Content-Type", ct, sizeof(ct)), "no Content-Type");
    cr_assert_str_eq(ct, "application/json");
    cJSON *root = cJSON_Parse(r->body);
    cr_assert_not_null(root, "error body is not JSON: %s", r->body);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    cr_assert(cJSON_IsObject(err), "no error object: %s", r->body);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    cr_assert(cJSON_IsString(c) && cJSON_IsString(m), "bad error envelope: %s", r->body);
    cr_assert_str_eq(c->valuestring, code, "body %s", r->body);
    cJSON_Delete(root);
}

/* A dev token for username (needs auth). The caller frees it. */
static char *dev_token(const char *username)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"username\":\"%s\"}", username);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    h_http r = h_request("POST", url("/api/dev/token"), hdr, body, strlen(body));
    if (r.status != 200)
        fail_dump();
    cr_assert_eq(r.status, 200, "dev token: %ld %s", r.status, r.body);
    cJSON *root = cJSON_Parse(r.body);
    const cJSON *tok =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "data"), "token");
    cr_assert(cJSON_IsString(tok), "no token in %s", r.body);
    char *out = strdup(tok->valuestring);
    cJSON_Delete(root);
    h_http_free(&r);
    return out;
}

static h_http get_me(const char *token)
{
    char authz[8300];
    snprintf(authz, sizeof(authz), "Authorization: Bearer %s", token);
    const char *hdr[] = {authz, NULL};
    return h_request("GET", url("/api/users/me"), hdr, NULL, 0);
}

/* A TCP connection to the gateway from the loopback address src (every
 * 127.0.0.0/8 address is this host, so tests can play several clients). */
static int connect_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in s = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, src, &s.sin_addr), 1);
    cr_assert(bind(fd, (struct sockaddr *)&s, sizeof(s)) == 0, "bind %s: %s", src, strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)gw_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *text)
{
    size_t len = strlen(text);
    cr_assert_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len, "send: %s", strerror(errno));
}

/* True when the server has closed fd (end of file or reset) within wait_ms
 * and sent nothing before; false when it is still open (or answered). */
static bool closed_by_server(int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* As raw_http, from the loopback address src. */
static long raw_http_from(const char *src, const char *req, size_t len, char *resp, size_t cap)
{
    int fd = connect_from(src);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before it has read everything */
        off += (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, resp + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    resp[got] = '\0';
    close(fd);
    long status = 0;
    if (sscanf(resp, "HTTP/1.%*d %ld", &status) != 1)
        return 0;
    return status;
}

/* Sends raw bytes to the gateway and reads the whole answer (the request
 * should say Connection: close). Returns the HTTP status, 0 on failure. */
static long raw_http(const char *req, size_t len, char *resp, size_t cap)
{
    return raw_http_from("127.0.0.1", req, len, resp, cap);
}

/* True when the gateway's log contains text (polls up to 2 s: lines are
 * written when a request completes). */
static bool gw_log_has(const char *text)
{
    for (int tries = 0; tries < 40; tries++) {
        FILE *f = fopen(gw->log_path, "r");
        cr_assert_not_null(f);
        char line[4096];
        bool found = false;
        while (!found && fgets(line, sizeof(line), f) != NULL)
            found = strstr(line, text) != NULL;
        fclose(f);
        if (found)
            return true;
        sleep_ms(50);
    }
    return false;
}

/* ---- Liveness and readiness -------------------------------------------------- */

Test(gateway, healthz_answers_ok_without_anything_else, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    h_http r = h_request("GET", url("/healthz"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    char ct[64];
    cr_assert(h_header(&r, "Content-Type", ct, sizeof(ct)));
    cr_assert_str_eq(ct, "application/json");
    h_http_free(&r);
}

Test(gateway, readyz_is_503_without_auth_and_200_with_it, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    h_http r = h_request("GET", url("/readyz"), NULL, NULL, 0);
    cr_assert_eq(r.status, 503, "got %ld %s", r.status, r.body);
    cr_assert(body_has(&r, "\"nats\":\"ok\""), "%s", r.body);
    cr_assert(body_has(&r, "\"auth\":\"unavailable\""), "%s", r.body);
    cr_assert_lt(r.seconds, 1.5, "no responders is answered at once");
    h_http_free(&r);

    start_auth();
    if (!h_wait_http(url("/readyz"), 200, 15000)) {
        fail_dump();
        cr_assert_fail("not ready with auth running");
    }
    r = h_request("GET", url("/readyz"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    /* No edge runs here: it is reported, and readiness does not need it. */
    cr_assert_str_eq(r.body, "{\"status\":\"ready\",\"checks\":{\"nats\":\"ok\",\"auth\":\"ok\","
                             "\"keys\":\"ok\",\"edge\":\"unavailable\"}}");
    h_http_free(&r);
}

/* ---- Tokens ---------------------------------------------------------------------- */

Test(gateway, missing_token_is_401_json, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    h_http r = h_request("GET", url("/api/users/me"), NULL, NULL, 0);
    assert_error(&r, 401, "unauthorized");
    char www[128];
    cr_assert(h_header(&r, "WWW-Authenticate", www, sizeof(www)), "no WWW-Authenticate");
    cr_assert(strncmp(www, "Bearer", 6) == 0, "got '%s'", www);
    h_http_free(&r);

    /* Authorization with another scheme is no token either. */
    const char *basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
    r = h_request("PUT", url("/api/users/me"), basic, NULL, 0);
    assert_error(&r, 401, "unauthorized");
    h_http_free(&r);
}

Test(gateway, garbage_token_is_401_and_never_echoed, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    h_http r = get_me("garbage.tok3n.value");
    assert_error(&r, 401, "unauthorized");
    cr_assert_not(body_has(&r, "tok3n"), "the token must not be echoed: %s", r.body);
    char www[128];
    cr_assert(h_header(&r, "WWW-Authenticate", www, sizeof(www)));
    cr_assert(strncmp(www, "Bearer", 6) == 0);
    h_http_free(&r);

    const char *cookie[] = {"Cookie: theme=dark; __session=not-a-jwt", NULL};
    r = h_request("GET", url("/api/users/me"), cookie, NULL, 0);
    assert_error(&r, 401, "unauthorized");
    cr_assert_not(body_has(&r, "not-a-jwt"));
    h_http_free(&r);
}

Test(gateway, dev_token_signs_in_by_bearer_and_cookie, .fini = teardown)
{
    start_all(NULL);
    char *token = dev_token("alice");
    h_http r = get_me(token);
    if (r.status != 200)
        fail_dump();
    cr_assert_eq(r.status, 200, "got %ld %s", r.status, r.body);
    cJSON *root = cJSON_Parse(r.body);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(data, "username");
    cr_assert(cJSON_IsString(name), "%s", r.body);
    cr_assert_str_eq(name->valuestring, "alice");
    cJSON_Delete(root);
    h_http_free(&r);

    char cookie[8300];
    snprintf(cookie, sizeof(cookie), "Cookie: a=b; __session=%s", token);
    const char *hdr[] = {cookie, NULL};
    r = h_request("GET", url("/api/users/me"), hdr, NULL, 0);
    cr_assert_eq(r.status, 200, "cookie: %ld %s", r.status, r.body);
    cr_assert(body_has(&r, "\"username\":\"alice\""));
    h_http_free(&r);

    /* The JWKS is served bare, not in the envelope. */
    r = h_request("GET", url("/.well-known/jwks.json"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(r.body, "{\"keys\":[", 9) == 0, "got %s", r.body);
    h_http_free(&r);
    free(token);
}

Test(gateway, clerk_mode_has_no_dev_token_or_local_jwks, .init = start_nats, .fini = teardown)
{
    /* The JWKS is fetched lazily, so an unreachable issuer does not stop start-up. */
    const char *extra[] = {"CLERK_ISSUER_URL=https://natter-test.invalid", NULL};
    start_gateway(extra);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    h_http r = h_request("POST", url("/api/dev/token"), hdr, "{\"username\":\"x\"}", 16);
    assert_error(&r, 404, "not_found");
    h_http_free(&r);
    r = h_request("GET", url("/.well-known/jwks.json"), NULL, NULL, 0);
    assert_error(&r, 404, "not_found");
    h_http_free(&r);
    r = h_request("GET", url("/api/users/me"), NULL, NULL, 0);
    assert_error(&r, 401, "unauthorized");
    h_http_free(&r);
}

/* ---- Bodies ---------------------------------------------------------------------- */

Test(gateway, bad_json_is_400_naming_the_byte, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"username\": }";
    h_http r = h_request("POST", url("/api/dev/token"), hdr, body, strlen(body));
    assert_error(&r, 400, "invalid_request");
    cr_assert(body_has(&r, "invalid JSON at byte 13"), "got %s", r.body);
    h_http_free(&r);
}

Test(gateway, non_object_body_is_400, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    const char *bodies[] = {"[1,2]", "\"alice\"", "7"};
    for (size_t i = 0; i < 3; i++) {
        h_http r = h_request("POST", url("/api/dev/token"), hdr, bodies[i], strlen(bodies[i]));
        assert_error(&r, 400, "invalid_request");
        cr_assert(body_has(&r, "body must be a JSON object"), "got %s", r.body);
        h_http_free(&r);
    }
}

Test(gateway, non_json_content_type_is_400_naming_it, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    const char *hdr[] = {"Content-Type: text/plain", NULL};
    h_http r = h_request("POST", url("/api/dev/token"), hdr, "{}", 2);
    assert_error(&r, 400, "invalid_request");
    cr_assert(body_has(&r, "text/plain"), "got %s", r.body);
    h_http_free(&r);
}

Test(gateway, body_over_the_cap_is_413, .init = start_nats, .fini = teardown)
{
    const char *extra[] = {"NATTER_MAX_BODY_BYTES=1024", NULL};
    start_gateway(extra);
    size_t n = 5000;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    const char *hdr[] = {"Content-Type: application/json", NULL};
    h_http r = h_request("POST", url("/api/dev/token"), hdr, big, n);
    assert_error(&r, 413, "too_large");
    cr_assert(body_has(&r, "1024"), "the message names the limit: %s", r.body);
    h_http_free(&r);
    free(big);
}

Test(gateway, chunked_body_over_the_cap_is_413, .init = start_nats, .fini = teardown)
{
    const char *extra[] = {"NATTER_MAX_BODY_BYTES=1024", NULL};
    start_gateway(extra);
    char req[8192], resp[8192];
    size_t len = (size_t)snprintf(req, sizeof(req),
                                  "POST /api/dev/token HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        len += (size_t)snprintf(req + len, sizeof(req) - len, "3e8\r\n");
        memset(req + len, i == 0 ? '[' : ' ', 1000);
        len += 1000;
        len += (size_t)snprintf(req + len, sizeof(req) - len, "\r\n");
    }
    len += (size_t)snprintf(req + len, sizeof(req) - len, "0\r\n\r\n");
    long st = raw_http(req, len, resp, sizeof(resp));
    cr_assert_eq(st, 413, "got: %.300s", resp);
    cr_assert(strstr(resp, "\"too_large\"") != NULL, "got: %.600s", resp);

    /* Under the cap, a chunked body is read and checked like any other. */
    len = (size_t)snprintf(req, sizeof(req),
                           "POST /api/dev/token HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\n"
                           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           "2\r\n[1\r\n1\r\n]\r\n0\r\n\r\n");
    st = raw_http(req, len, resp, sizeof(resp));
    cr_assert_eq(st, 400, "got: %.300s", resp);
    cr_assert(strstr(resp, "body must be a JSON object") != NULL, "got: %.600s", resp);
}

/* A client that sends its whole body before reading (curl does) still reads
 * the 413, not a connection reset. */
Test(gateway, oversized_chunked_body_413_reaches_a_client_that_reads_last, .init = start_nats,
     .fini = teardown)
{
    start_gateway(NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)gw_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
    send_all(fd, "POST /api/dev/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    static char chunk[65536 + 16];
    size_t clen = (size_t)snprintf(chunk, sizeof(chunk), "%x\r\n", 65536);
    memset(chunk + clen, ' ', 65536);
    clen += 65536;
    memcpy(chunk + clen, "\r\n", 2);
    clen += 2;
    chunk[clen] = '\0';
    for (int i = 0; i < 48; i++) /* 3 MiB, all of it before reading */
        send_all(fd, chunk);
    send_all(fd, "0\r\n\r\n");
    static char resp[16384];
    size_t got = 0;
    double deadline = now_s() + 8;
    while (now_s() < deadline && got < sizeof(resp) - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    resp[got] = '\0';
    long status = 0;
    cr_assert(sscanf(resp, "HTTP/1.%*d %ld", &status) == 1 && status == 413, "got: %.400s", resp);
    cr_assert(strstr(resp, "\"too_large\"") != NULL, "got: %.600s", resp);
}

Test(gateway, oversized_chunked_body_is_refused_before_it_is_all_sent, .init = start_nats,
     .fini = teardown)
{
    const char *extra[] = {"NATTER_CORS_ORIGINS=https://app.example", NULL};
    start_gateway(extra); /* the default cap: 64 KiB */
    enum { CHUNK = 16384, TOTAL = 5 * 1024 * 1024 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int sndbuf = 64 * 1024; /* bounds what sits in our own send buffer */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)gw_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
    send_all(fd, "POST /api/dev/token HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                 "X-Request-Id: big-chunked-1\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    static char chunk[CHUNK + 16];
    size_t clen = (size_t)snprintf(chunk, sizeof(chunk), "%x\r\n", CHUNK);
    memset(chunk + clen, ' ', CHUNK);
    clen += CHUNK;
    memcpy(chunk + clen, "\r\n", 2);
    clen += 2;

    static char resp[16384];
    size_t got = 0, sent = 0, off = 0, sent_at_answer = 0;
    bool closed = false, sending = true;
    double deadline = now_s() + 8;
    while (!closed && now_s() < deadline) {
        struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (sending ? POLLOUT : 0))};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, MSG_DONTWAIT);
            if (n > 0 && got == 0)
                sent_at_answer = sent;
            if (n > 0)
                got += (size_t)n;
            else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                closed = true;
        }
        if (sending && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, chunk + off, clen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                sent += (size_t)w;
                off = (off + (size_t)w) % clen;
                if (sent >= (size_t)TOTAL / CHUNK * clen) {
                    send_all(fd, "0\r\n\r\n");
                    sending = false;
                }
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sending = false; /* reset: the answer is still readable */
            }
        }
    }
    close(fd);
    resp[got] = '\0';
    cr_assert(closed, "the gateway kept the connection open (%zu bytes sent)", sent);
    long status = 0;
    cr_assert(sscanf(resp, "HTTP/1.%*d %ld", &status) == 1 && status == 413, "got: %.400s", resp);
    cr_assert_lt(sent_at_answer, (size_t)2 * 1024 * 1024, "%zu bytes were taken before the 413",
                 sent_at_answer);
    cr_assert(strstr(resp, "\"too_large\"") != NULL, "got: %.600s", resp);
    cr_assert(strstr(resp, "65536") != NULL, "the message names the limit: %.600s", resp);
    cr_assert(strstr(resp, "\r\nContent-Type: application/json\r\n") != NULL, "%.600s", resp);
    cr_assert(strstr(resp, "\r\nX-Request-Id: big-chunked-1\r\n") != NULL, "%.600s", resp);
    cr_assert(strstr(resp, "\r\nConnection: close\r\n") != NULL, "%.600s", resp);
    cr_assert(strstr(resp, "\r\nAccess-Control-Allow-Origin: https://app.example\r\n") != NULL,
              "CORS as on every response: %.600s", resp);
    /* The body is exactly what Content-Length says. */
    const char *cl = strstr(resp, "Content-Length: ");
    const char *body = strstr(resp, "\r\n\r\n");
    cr_assert(cl != NULL && body != NULL);
    cr_assert_eq(strtoul(cl + 16, NULL, 10), strlen(body + 4), "%.600s", resp);
    cr_assert(gw_log_has("status=413"), "no access line for the 413");
    cr_assert(gw_log_has("request_id=big-chunked-1"), "no access line for the 413");
    cr_assert(h_alive(gw));
}

/* ---- Routing --------------------------------------------------------------------- */

Test(gateway, unknown_route_is_404_json, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    h_http r = h_request("GET", url("/api/nope"), NULL, NULL, 0);
    assert_error(&r, 404, "not_found");
    h_http_free(&r);
    r = h_request("GET", url("/somewhere"), NULL, NULL, 0);
    assert_error(&r, 404, "not_found");
    h_http_free(&r);
}

Test(gateway, wrong_method_is_405_with_allow, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    h_http r = h_request("DELETE", url("/api/users/me"), NULL, NULL, 0);
    assert_error(&r, 405, "method_not_allowed");
    char allow[128];
    cr_assert(h_header(&r, "Allow", allow, sizeof(allow)), "no Allow header");
    cr_assert(strstr(allow, "GET") != NULL && strstr(allow, "PUT") != NULL, "Allow: %s", allow);
    h_http_free(&r);
}

/* ---- Rate limits ------------------------------------------------------------------ */

Test(gateway, ip_rate_limit_refuses_then_recovers, .init = start_nats, .fini = teardown)
{
    const char *extra[] = {"NATTER_RATE_IP_PER_S=1", "NATTER_RATE_IP_BURST=3", NULL};
    start_gateway(extra);
    /* start_gateway's readiness poll may have used a token or two: let the
     * bucket refill completely first. */
    sleep_ms(3100);
    for (int i = 0; i < 3; i++) {
        h_http r = h_request("GET", url("/healthz"), NULL, NULL, 0);
        cr_assert_eq(r.status, 200, "request %d: %ld", i + 1, r.status);
        h_http_free(&r);
    }
    h_http r = h_request("GET", url("/healthz"), NULL, NULL, 0);
    assert_error(&r, 429, "rate_limited");
    char ra[32];
    cr_assert(h_header(&r, "Retry-After", ra, sizeof(ra)), "no Retry-After");
    cr_assert_str_eq(ra, "1");
    cr_assert(body_has(&r, "\"retry_after_ms\":"), "%s", r.body);
    h_http_free(&r);

    sleep_ms(1100);
    r = h_request("GET", url("/healthz"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "recovered: %ld", r.status);
    h_http_free(&r);
}

Test(gateway, trusted_proxy_client_ip_is_the_last_forwarded_entry, .init = start_nats,
     .fini = teardown)
{
    const char *extra[] = {"NATTER_TRUST_PROXY=true", "NATTER_RATE_IP_PER_S=1",
                           "NATTER_RATE_IP_BURST=1", NULL};
    start_gateway(extra);
    /* The proxy appended 198.51.100.9; the entries before are the client's. */
    const char *a[] = {"X-Forwarded-For: 1.1.1.1, 198.51.100.9", NULL};
    h_http r = h_request("GET", url("/healthz"), a, NULL, 0);
    cr_assert_eq(r.status, 200);
    h_http_free(&r);
    const char *b[] = {"X-Forwarded-For: 2.2.2.2, 198.51.100.9", NULL};
    r = h_request("GET", url("/healthz"), b, NULL, 0);
    assert_error(&r, 429, "rate_limited"); /* a forged first entry changes nothing */
    h_http_free(&r);
    /* A proxy that adds its own header line instead of appending. */
    const char *c[] = {"X-Forwarded-For: 3.3.3.3", "X-Forwarded-For: 198.51.100.9", NULL};
    r = h_request("GET", url("/healthz"), c, NULL, 0);
    assert_error(&r, 429, "rate_limited");
    h_http_free(&r);
    const char *d[] = {"X-Forwarded-For: 198.51.100.9, 198.51.100.10", NULL};
    r = h_request("GET", url("/healthz"), d, NULL, 0);
    cr_assert_eq(r.status, 200, "another client: %ld", r.status);
    h_http_free(&r);

    /* IPv6 clients share a bucket per /64. */
    const char *e[] = {"X-Forwarded-For: 2001:db8:1:2::1", NULL};
    r = h_request("GET", url("/healthz"), e, NULL, 0);
    cr_assert_eq(r.status, 200);
    h_http_free(&r);
    const char *f[] = {"X-Forwarded-For: 2001:db8:1:2:ffff:ffff:ffff:fffe", NULL};
    r = h_request("GET", url("/healthz"), f, NULL, 0);
    assert_error(&r, 429, "rate_limited");
    h_http_free(&r);
    const char *g[] = {"X-Forwarded-For: 2001:db8:1:3::1", NULL};
    r = h_request("GET", url("/healthz"), g, NULL, 0);
    cr_assert_eq(r.status, 200, "the next /64: %ld", r.status);
    h_http_free(&r);
}

/* ---- Connections ------------------------------------------------------------------ */

#define HALF_HEADER "GET /healthz HTTP/1.1\r\nHost: x\r\n"
#define HEALTHZ     "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

Test(gateway, half_headers_from_one_address_cannot_lock_out_others, .init = start_nats,
     .fini = teardown)
{
    const char *extra[] = {"NATTER_HTTP_MAX_CONN_PER_IP=20", NULL};
    start_gateway(extra);
    sleep_ms(200); /* the readiness poll's connection is gone */
    enum { N = 100 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from("127.0.0.1");
        send_all(fds[i], HALF_HEADER);
    }
    sleep_ms(300);
    int open = 0;
    for (int i = 0; i < N; i++)
        open += !closed_by_server(fds[i], 0);
    cr_assert_eq(open, 20, "%d of %d connections from one address stayed open", open, N);

    /* Another client is served at once. */
    char resp[4096];
    double t0 = now_s();
    long st = raw_http_from("127.0.0.2", HEALTHZ, strlen(HEALTHZ), resp, sizeof(resp));
    cr_assert_eq(st, 200, "got: %.300s", resp);
    cr_assert_lt(now_s() - t0, 1.0, "took %.2f s", now_s() - t0);

    /* One more from the first address is closed unanswered. */
    int more = connect_from("127.0.0.1");
    send_all(more, HEALTHZ);
    cr_assert(closed_by_server(more, 2000), "the 21st connection was not refused");
    close(more);

    /* Once the first ones go, that address is served again. */
    for (int i = 0; i < N; i++)
        close(fds[i]);
    sleep_ms(200);
    st = raw_http(HEALTHZ, strlen(HEALTHZ), resp, sizeof(resp));
    cr_assert_eq(st, 200, "got: %.300s", resp);
    cr_assert(h_alive(gw));
}

Test(gateway, idle_connection_is_closed_after_the_idle_timeout, .init = start_nats,
     .fini = teardown)
{
    const char *extra[] = {"NATTER_HTTP_IDLE_TIMEOUT_S=1", NULL};
    start_gateway(extra);
    int fd = connect_from("127.0.0.1");
    send_all(fd, HALF_HEADER);
    double t0 = now_s();
    bool closed = closed_by_server(fd, 5000);
    double took = now_s() - t0;
    close(fd);
    cr_assert(closed, "still open after %.1f s", took);
    cr_assert(took > 0.8 && took < 3.5, "closed after %.2f s", took);
}

Test(gateway, connections_over_the_limit_wait_for_a_free_slot, .init = start_nats, .fini = teardown)
{
    const char *extra[] = {"NATTER_GATEWAY_THREADS=1", "NATTER_HTTP_MAX_CONN=10", NULL};
    start_gateway(extra);
    sleep_ms(200);
    int fds[10];
    for (int i = 0; i < 10; i++) {
        fds[i] = connect_from("127.0.0.1");
        send_all(fds[i], HALF_HEADER);
    }
    sleep_ms(200);
    /* The eleventh waits in the listen queue, unanswered... */
    int fd = connect_from("127.0.0.2");
    send_all(fd, HEALTHZ);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 700), 0, "answered beyond NATTER_HTTP_MAX_CONN");
    /* ...until a slot frees. */
    close(fds[0]);
    cr_assert_eq(poll(&p, 1, 3000), 1, "not answered after a slot freed");
    char resp[1024];
    ssize_t n = recv(fd, resp, sizeof(resp) - 1, 0);
    cr_assert_gt(n, 0);
    resp[n] = '\0';
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "got: %.200s", resp);
    close(fd);
    for (int i = 1; i < 10; i++)
        close(fds[i]);
}

Test(gateway, large_cookie_jar_is_accepted, .fini = teardown)
{
    start_all(NULL);
    char *token = dev_token("erin");
    /* A browser's jar for a busy domain: 16 KB of cookies, ours among them. */
    size_t cap = 24 * 1024;
    char *hdr = malloc(cap);
    size_t len = (size_t)snprintf(hdr, cap, "Cookie: ");
    for (int i = 0; len < 8 * 1024; i++)
        len +=
            (size_t)snprintf(hdr + len, cap - len, "_ga%d=GA1.2.%010d.1700000000%040d; ", i, i, i);
    len += (size_t)snprintf(hdr + len, cap - len, "__session=%s; ", token);
    for (int i = 0; len < 16 * 1024; i++)
        len += (size_t)snprintf(hdr + len, cap - len, "pref%d=%060d; ", i, i);
    len += (size_t)snprintf(hdr + len, cap - len, "theme=dark");
    cr_assert_lt(len, cap);
    const char *h[] = {hdr, NULL};
    h_http r = h_request("GET", url("/api/users/me"), h, NULL, 0);
    if (r.status != 200)
        fail_dump();
    cr_assert_eq(r.status, 200, "got %ld %s", r.status, r.body);
    cr_assert(body_has(&r, "\"username\":\"erin\""), "%s", r.body);
    h_http_free(&r);

    /* Past the connection's memory, MHD answers by itself: logged, by status. */
    size_t big = 200 * 1024;
    char *huge = malloc(big + 16);
    len = (size_t)snprintf(huge, big + 16, "Cookie: a=");
    memset(huge + len, 'x', big - len);
    huge[big] = '\0';
    const char *hh[] = {huge, NULL};
    r = h_request("GET", url("/api/users/me"), hh, NULL, 0);
    cr_assert_eq(r.status, 431, "got %ld", r.status);
    h_http_free(&r);
    cr_assert(gw_log_has("refused a request itself status=431"), "no log line for the 431");
    cr_assert(h_alive(gw));
    free(huge);
    free(hdr);
    free(token);
}

/* ---- Services down ------------------------------------------------------------------ */

Test(gateway, auth_stopped_is_503_at_once, .fini = teardown)
{
    start_all(NULL);
    char *token = dev_token("bob");
    h_http r = get_me(token); /* also caches the signing keys */
    cr_assert_eq(r.status, 200);
    h_http_free(&r);

    int st = h_kill(auth, SIGTERM);
    cr_assert(WIFEXITED(st), "auth did not exit cleanly");
    r = get_me(token);
    assert_error(&r, 503, "unavailable");
    cr_assert(body_has(&r, "service auth is unavailable"), "got %s", r.body);
    cr_assert_lt(r.seconds, 2.0, "took %.2f s", r.seconds);
    h_http_free(&r);
    cr_assert(h_alive(gw), "the gateway must survive");
    free(token);
}

Test(gateway, auth_frozen_is_504_at_the_deadline, .fini = teardown)
{
    const char *extra[] = {"NATTER_REQUEST_TIMEOUT_MS=1000", NULL};
    start_all(extra);
    char *token = dev_token("carol");
    h_http r = get_me(token);
    cr_assert_eq(r.status, 200);
    h_http_free(&r);

    kill(auth->pid, SIGSTOP);
    r = get_me(token);
    kill(auth->pid, SIGCONT);
    assert_error(&r, 504, "timeout");
    cr_assert(r.seconds > 0.9 && r.seconds < 2.0, "took %.2f s", r.seconds);
    h_http_free(&r);

    /* The late reply must not hurt: the gateway keeps serving. */
    sleep_ms(300);
    r = get_me(token);
    cr_assert_eq(r.status, 200, "after SIGCONT: %ld %s", r.status, r.body);
    h_http_free(&r);
    free(token);
}

/* ---- Headers ------------------------------------------------------------------------- */

Test(gateway, cors_only_for_allowed_origins, .init = start_nats, .fini = teardown)
{
    const char *extra[] = {"NATTER_CORS_ORIGINS=https://app.example, http://localhost:5173", NULL};
    start_gateway(extra);
    char v[256];

    const char *pre[] = {"Origin: https://app.example", "Access-Control-Request-Method: PUT",
                         "Access-Control-Request-Headers: authorization, content-type", NULL};
    h_http r = h_request("OPTIONS", url("/api/users/me"), pre, NULL, 0);
    cr_assert_eq(r.status, 204);
    cr_assert(h_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
    cr_assert_str_eq(v, "https://app.example");
    cr_assert(h_header(&r, "Access-Control-Allow-Methods", v, sizeof(v)));
    cr_assert(strstr(v, "PUT") != NULL, "%s", v);
    cr_assert(h_header(&r, "Access-Control-Allow-Headers", v, sizeof(v)));
    cr_assert(strstr(v, "Authorization") && strstr(v, "Content-Type") && strstr(v, "X-Request-Id"),
              "%s", v);
    cr_assert(h_header(&r, "Access-Control-Max-Age", v, sizeof(v)));
    cr_assert(h_header(&r, "Access-Control-Allow-Credentials", v, sizeof(v)));
    cr_assert_str_eq(v, "true");
    h_http_free(&r);

    const char *ok[] = {"Origin: http://localhost:5173", NULL};
    r = h_request("GET", url("/api/users/me"), ok, NULL, 0);
    cr_assert_eq(r.status, 401);
    cr_assert(h_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "errors carry CORS too");
    cr_assert_str_eq(v, "http://localhost:5173");
    cr_assert(h_header(&r, "Vary", v, sizeof(v)));
    cr_assert(strstr(v, "Origin") != NULL);
    cr_assert(h_header(&r, "Access-Control-Expose-Headers", v, sizeof(v)));
    cr_assert(strstr(v, "Retry-After") && strstr(v, "X-Request-Id"), "%s", v);
    h_http_free(&r);

    const char *evil_pre[] = {"Origin: https://evil.example", "Access-Control-Request-Method: PUT",
                              NULL};
    r = h_request("OPTIONS", url("/api/users/me"), evil_pre, NULL, 0);
    cr_assert_not(h_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
    cr_assert_not(h_header(&r, "Access-Control-Allow-Methods", v, sizeof(v)));
    cr_assert_not(h_header(&r, "Access-Control-Allow-Credentials", v, sizeof(v)));
    h_http_free(&r);
    const char *evil[] = {"Origin: https://app.example.evil.example", NULL};
    r = h_request("GET", url("/healthz"), evil, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not(h_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
    h_http_free(&r);
}

Test(gateway, echoes_a_valid_x_request_id_or_makes_one, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    char v[128];
    const char *mine[] = {"X-Request-Id: trace-42.a_b", NULL};
    h_http r = h_request("GET", url("/api/users/me"), mine, NULL, 0);
    cr_assert(h_header(&r, "X-Request-Id", v, sizeof(v)));
    cr_assert_str_eq(v, "trace-42.a_b");
    h_http_free(&r);

    const char *bad[] = {"X-Request-Id: no spaces; please", NULL};
    r = h_request("GET", url("/healthz"), bad, NULL, 0);
    cr_assert(h_header(&r, "X-Request-Id", v, sizeof(v)));
    cr_assert_eq(strlen(v), 36, "a fresh UUID, got '%s'", v);
    h_http_free(&r);

    r = h_request("GET", url("/api/nope"), NULL, NULL, 0);
    cr_assert(h_header(&r, "X-Request-Id", v, sizeof(v)), "on errors too");
    cr_assert_eq(strlen(v), 36);
    h_http_free(&r);
}

/* ---- The web app ----------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

Test(gateway, serves_the_web_app_safely, .init = start_nats, .fini = teardown)
{
    char web[600], p[700], env_web[700];
    snprintf(web, sizeof(web), "%s/web", h_tmpdir());
    mkdir(web, 0755);
    snprintf(p, sizeof(p), "%s/_app", web);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/_app/immutable", web);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/index.html", web);
    write_file(p, "<!doctype html><title>natter</title>");
    snprintf(p, sizeof(p), "%s/_app/immutable/app.js", web);
    write_file(p, "console.log(1)");
    snprintf(p, sizeof(p), "%s/.env", web);
    write_file(p, "DOTFILE-SECRET");
    snprintf(p, sizeof(p), "%s/secret.txt", h_tmpdir());
    write_file(p, "OUTSIDE-SECRET");
    snprintf(env_web, sizeof(env_web), "NATTER_WEB_DIR=%s", web);
    const char *extra[] = {env_web, NULL};
    start_gateway(extra);
    char v[128];

    h_http r = h_request("GET", url("/"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "<!doctype html><title>natter</title>");
    cr_assert(h_header(&r, "Content-Type", v, sizeof(v)));
    cr_assert_str_eq(v, "text/html; charset=utf-8");
    h_http_free(&r);

    r = h_request("GET", url("/_app/immutable/app.js"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "console.log(1)");
    cr_assert(h_header(&r, "Content-Type", v, sizeof(v)));
    cr_assert_str_eq(v, "text/javascript; charset=utf-8");
    cr_assert(h_header(&r, "Cache-Control", v, sizeof(v)));
    cr_assert(strstr(v, "immutable") != NULL, "%s", v);
    h_http_free(&r);

    r = h_request("GET", url("/rooms/42"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "SPA fallback");
    cr_assert_str_eq(r.body, "<!doctype html><title>natter</title>");
    h_http_free(&r);

    /* Decoded once, by MHD: "%25" is a '%' in an app route, not a bad escape. */
    const char *percent[] = {"/100%25", "/rooms/50%25off", "/%252e%252e/secret.txt"};
    for (size_t i = 0; i < sizeof(percent) / sizeof(percent[0]); i++) {
        r = h_request("GET", url(percent[i]), NULL, NULL, 0);
        cr_assert_eq(r.status, 200, "%s: %ld", percent[i], r.status);
        cr_assert_str_eq(r.body, "<!doctype html><title>natter</title>", "%s", percent[i]);
        h_http_free(&r);
    }

    r = h_request("GET", url("/api/nope"), NULL, NULL, 0);
    assert_error(&r, 404, "not_found"); /* /api never falls back to the app */
    h_http_free(&r);

    const char *attempts[] = {"/%2e%2e/secret.txt", "/.env", "/%2eenv",
                              "/x/%2e%2e/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt"};
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        r = h_request("GET", url(attempts[i]), NULL, NULL, 0);
        cr_assert(r.status == 400 || r.status == 404, "%s: %ld", attempts[i], r.status);
        cr_assert_not(body_has(&r, "SECRET"), "%s leaked: %s", attempts[i], r.body);
        h_http_free(&r);
    }
    /* curl normalises "../" itself, so send those raw. */
    const char *raws[] = {"/../secret.txt", "/_app/../../secret.txt", "/./.env", "//.env"};
    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
        char req[256], resp[4096];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 raws[i]);
        long st = raw_http(req, strlen(req), resp, sizeof(resp));
        cr_assert(st == 400 || st == 404, "raw %s: %ld", raws[i], st);
        cr_assert_null(strstr(resp, "SECRET"), "raw %s leaked: %s", raws[i], resp);
    }
}

/* ---- Shutdown ---------------------------------------------------------------------- */

typedef struct {
    h_http r;
} pending_req;

static void *send_pending(void *arg)
{
    pending_req *p = arg;
    const char *hdr[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"username\":\"dave\"}";
    p->r = h_request("POST", url("/api/dev/token"), hdr, body, strlen(body));
    return NULL;
}

Test(gateway, sigterm_answers_pending_requests_and_exits_zero, .fini = teardown)
{
    const char *extra[] = {"NATTER_REQUEST_TIMEOUT_MS=20000", NULL};
    start_all(extra);
    kill(auth->pid, SIGSTOP); /* the request below stays pending */
    pending_req p;
    memset(&p, 0, sizeof(p));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, send_pending, &p), 0);
    sleep_ms(500);

    double t0 = now_s();
    int st = h_kill(gw, SIGTERM);
    double took = now_s() - t0;
    pthread_join(t, NULL);
    kill(auth->pid, SIGCONT);

    cr_assert(WIFEXITED(st), "the gateway did not exit by itself (status %d)", st);
    cr_assert_eq(WEXITSTATUS(st), 0);
    cr_assert_lt(took, 5.0, "stopping took %.2f s", took);
    cr_assert_eq(p.r.status, 503, "the pending request gets 503, got %ld %s", p.r.status, p.r.body);
    h_http_free(&p.r);
}

Test(gateway, sigterm_when_idle_exits_zero_quickly, .init = start_nats, .fini = teardown)
{
    start_gateway(NULL);
    double t0 = now_s();
    int st = h_kill(gw, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert_lt(now_s() - t0, 3.0);
}

Test(gateway, bad_configuration_exits_2, .init = start_nats, .fini = teardown)
{
    const char *env[] = {"NATTER_HTTP_PORT=notaport", NULL};
    h_proc *p = h_spawn("gateway", env);
    int st = h_kill(p, 0); /* signal 0: just wait for the exit */
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);

    const char *clerk[] = {"CLERK_SECRET_KEY=sk_test_x", NULL};
    p = h_spawn("gateway", clerk);
    st = h_kill(p, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "Clerk without issuer: status %d", st);
}
