/* Integration tests of the NATS adapter (nt_nats), the micro discovery
 * responder and the KV cache (nt_kv) against a real nats-server with
 * JetStream. Each test starts its own server; nats.c is used directly only to
 * look at what goes over the wire (headers, several discovery replies). */
#include "harness.h"
#include "nt_clock.h"
#include "nt_id.h"
#include "nt_kv.h"
#include "nt_nats.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SVC_NAME "t-svc"

static const char *url;
static pid_t extra_pids[4];
static int nextra;

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void setup(void)
{
    url = h_nats_start();
}

static void teardown(void)
{
    for (int i = 0; i < nextra; i++) {
        if (extra_pids[i] > 0) {
            kill(extra_pids[i], SIGKILL);
            waitpid(extra_pids[i], NULL, 0);
        }
    }
    nextra = 0;
    h_stop_all();
}

TestSuite(nt_nats, .init = setup, .fini = teardown, .timeout = 30);

/* Starts nats-server on a fixed port with the harness's store directory (for
 * restarts on the same address). Killed in teardown. */
static void start_server_on(int port)
{
    char store[512], portbuf[16], logp[600];
    snprintf(store, sizeof(store), "%s/nats", h_tmpdir());
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    snprintf(logp, sizeof(logp), "%s/nats-extra-%d.log", h_tmpdir(), nextra);
    cr_assert(nextra < 4);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", portbuf, "-js", "-sd", store,
               (char *)NULL);
        _exit(127);
    }
    extra_pids[nextra++] = pid;
    cr_assert(h_wait_port(port, 10000), "nats-server did not come up on %d", port);
}

static int url_port(const char *u)
{
    const char *colon = strrchr(u, ':');
    cr_assert_not_null(colon);
    return (int)strtol(colon + 1, NULL, 10);
}

/* ---- Handlers --------------------------------------------------------------- */

typedef struct {
    atomic_int handled;
    atomic_int slow_ms;
    atomic_int in_slow; /* set while the slow handler runs */
} inst;

static nt_status h_echo(void *ctx, const nt_request *req, nt_reply *rep)
{
    inst *in = ctx;
    atomic_fetch_add(&in->handled, 1);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "subject", req->subject);
    nt_json_add_str_or_null(d, "user", req->user);
    cJSON_AddStringToObject(d, "request_id", req->request_id);
    cJSON_AddStringToObject(d, "body", req->data);
    cJSON_AddNumberToObject(d, "len", (double)req->len);
    nt_reply_set(rep, d);
    return NT_OK;
}

static nt_status h_fail(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)req;
    inst *in = ctx;
    atomic_fetch_add(&in->handled, 1);
    return nt_reply_fail(rep, NT_EINVAL, "bad thing");
}

static nt_status h_rate(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)ctx;
    (void)req;
    rep->retry_after_ms = 1500;
    return nt_reply_fail(rep, NT_ERATE, "slow down\r\nInjected: yes");
}

static nt_status h_slow(void *ctx, const nt_request *req, nt_reply *rep)
{
    (void)req;
    inst *in = ctx;
    atomic_store(&in->in_slow, 1);
    msleep(atomic_load(&in->slow_ms));
    atomic_fetch_add(&in->handled, 1);
    atomic_store(&in->in_slow, 0);
    nt_reply_set(rep, cJSON_CreateString("slept"));
    return NT_OK;
}

static const nt_route routes[] = {
    {.name = "echo", .subject = "t.echo", .handler = h_echo, .max_body = 1024},
    {.name = "fail", .subject = "t.fail", .handler = h_fail, .max_body = 1024},
    {.name = "whoami",
     .subject = "t.whoami",
     .handler = h_echo,
     .max_body = 1024,
     .needs_user = true},
    {.name = "slow", .subject = "t.slow", .handler = h_slow, .max_body = 1024},
    {.name = "rate", .subject = "t.rate", .handler = h_rate, .max_body = 1024},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static nt_nats *connect_ok(const char *name)
{
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(url, name, 5000, &nc), NT_OK);
    cr_assert(nt_nats_is_connected(nc));
    return nc;
}

static nt_service *start_svc(nt_nats *nc, const char *name, inst *in)
{
    nt_service_def def = {
        .name = name,
        .version = "1.0.0",
        .description = "test service",
        .routes = routes,
        .nroutes = NROUTES,
        .ctx = in,
    };
    nt_service *svc = NULL;
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_OK);
    cr_assert_eq(strlen(nt_service_id(svc)), 22);
    return svc;
}

static cJSON *parse_body(const nt_response *r)
{
    cJSON *v = cJSON_ParseWithLength(r->data, r->len);
    cr_assert_not_null(v, "reply is not JSON: %.*s", (int)r->len, r->data);
    return v;
}

static const char *jstr(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2 != NULL)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    cr_assert(cJSON_IsString(v), "%s.%s is not a string", path1, path2 ? path2 : "");
    return v->valuestring;
}

/* ---- Requests through a service -------------------------------------------------- */

Test(nt_nats, service_answers_with_data_envelope_and_sees_headers)
{
    inst in = {0};
    nt_nats *nc = connect_ok("t1");
    nt_service *svc = start_svc(nc, SVC_NAME, &in);

    nt_response r;
    const char *body = "{\"x\":1}";
    cr_assert_eq(nt_nats_request(nc, "t.echo", "user_1", "req-42", body, strlen(body), 2000, &r),
                 NT_OK);
    cr_assert_eq(r.http, 200);
    cr_assert_eq(r.retry_after_ms, 0);
    cJSON *v = parse_body(&r);
    cr_assert_str_eq(jstr(v, "data", "subject"), "t.echo");
    cr_assert_str_eq(jstr(v, "data", "user"), "user_1");
    cr_assert_str_eq(jstr(v, "data", "request_id"), "req-42");
    cr_assert_str_eq(jstr(v, "data", "body"), body);
    cJSON_Delete(v);
    nt_response_free(&r);

    /* No user and no request id: the handler gets NULL and a generated UUID. */
    cr_assert_eq(nt_nats_request(nc, "t.echo", NULL, NULL, NULL, 0, 2000, &r), NT_OK);
    v = parse_body(&r);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "data"), "user")));
    cr_assert(nt_id_valid(jstr(v, "data", "request_id")));
    cr_assert_str_eq(jstr(v, "data", "body"), "");
    cJSON_Delete(v);
    nt_response_free(&r);

    /* A bare nats.c request without any header also gets a request id. */
    natsMsg *reply = NULL;
    cr_assert_eq(natsConnection_RequestString(&reply, nt_nats_raw(nc), "t.echo", "raw", 2000),
                 NATS_OK);
    cJSON *rv = cJSON_Parse(natsMsg_GetData(reply));
    cr_assert(nt_id_valid(jstr(rv, "data", "request_id")));
    cr_assert_str_eq(jstr(rv, "data", "body"), "raw");
    cJSON_Delete(rv);
    natsMsg_Destroy(reply);

    cr_assert_eq(atomic_load(&in.handled), 3);
    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
}

Test(nt_nats, error_route_sends_envelope_and_micro_headers)
{
    inst in = {0};
    nt_nats *nc = connect_ok("t2");
    nt_service *svc = start_svc(nc, SVC_NAME, &in);

    nt_response r;
    cr_assert_eq(nt_nats_request(nc, "t.fail", "u", "r", "{}", 2, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 400);
    cJSON *v = parse_body(&r);
    cr_assert_str_eq(jstr(v, "error", "code"), "invalid_request");
    cr_assert_str_eq(jstr(v, "error", "message"), "bad thing");
    cr_assert_null(cJSON_GetObjectItem(v, "data"));
    cJSON_Delete(v);
    nt_response_free(&r);

    /* The headers themselves, as any micro client sees them. */
    natsMsg *reply = NULL;
    const char *val = NULL;
    cr_assert_eq(natsConnection_RequestString(&reply, nt_nats_raw(nc), "t.fail", "{}", 2000),
                 NATS_OK);
    cr_assert_eq(natsMsgHeader_Get(reply, "Nats-Service-Error", &val), NATS_OK);
    cr_assert_str_eq(val, "bad thing");
    cr_assert_eq(natsMsgHeader_Get(reply, "Nats-Service-Error-Code", &val), NATS_OK);
    cr_assert_str_eq(val, "400");
    natsMsg_Destroy(reply);

    /* A rate-limit reply carries the retry hint, and a message with a line
     * break cannot inject a header. */
    cr_assert_eq(nt_nats_request(nc, "t.rate", NULL, NULL, NULL, 0, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 429);
    cr_assert_eq(r.retry_after_ms, 1500);
    v = parse_body(&r);
    cr_assert_str_eq(jstr(v, "error", "code"), "rate_limited");
    cJSON_Delete(v);
    nt_response_free(&r);
    cr_assert_eq(natsConnection_RequestString(&reply, nt_nats_raw(nc), "t.rate", "", 2000),
                 NATS_OK);
    cr_assert_eq(natsMsgHeader_Get(reply, "Injected", &val), NATS_NOT_FOUND);
    cr_assert_eq(natsMsgHeader_Get(reply, "Nats-Service-Error", &val), NATS_OK);
    cr_assert_str_eq(val, "slow down  Injected: yes");
    cr_assert_eq(natsMsgHeader_Get(reply, "Chat-Retry-After-Ms", &val), NATS_OK);
    cr_assert_str_eq(val, "1500");
    natsMsg_Destroy(reply);

    /* A successful reply has no error headers. */
    cr_assert_eq(natsConnection_RequestString(&reply, nt_nats_raw(nc), "t.echo", "", 2000),
                 NATS_OK);
    cr_assert_eq(natsMsgHeader_Get(reply, "Nats-Service-Error-Code", &val), NATS_NOT_FOUND);
    natsMsg_Destroy(reply);

    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
}

Test(nt_nats, body_limit_and_user_requirement_are_enforced)
{
    inst in = {0};
    nt_nats *nc = connect_ok("t3");
    nt_service *svc = start_svc(nc, SVC_NAME, &in);

    char big[1025];
    memset(big, 'a', sizeof(big));
    nt_response r;
    cr_assert_eq(nt_nats_request(nc, "t.echo", "u", NULL, big, sizeof(big), 2000, &r), NT_OK);
    cr_assert_eq(r.http, 413);
    cJSON *v = parse_body(&r);
    cr_assert_str_eq(jstr(v, "error", "code"), "too_large");
    cJSON_Delete(v);
    nt_response_free(&r);
    cr_assert_eq(nt_nats_request(nc, "t.echo", "u", NULL, big, 1024, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 200, "exactly max_body is allowed");
    nt_response_free(&r);

    cr_assert_eq(nt_nats_request(nc, "t.whoami", NULL, NULL, NULL, 0, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 401);
    v = parse_body(&r);
    cr_assert_str_eq(jstr(v, "error", "code"), "unauthorized");
    cJSON_Delete(v);
    nt_response_free(&r);
    cr_assert_eq(nt_nats_request(nc, "t.whoami", "", NULL, NULL, 0, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 401, "an empty Chat-User is no user");
    nt_response_free(&r);
    cr_assert_eq(nt_nats_request(nc, "t.whoami", "alice", NULL, NULL, 0, 2000, &r), NT_OK);
    cr_assert_eq(r.http, 200);
    v = parse_body(&r);
    cr_assert_str_eq(jstr(v, "data", "user"), "alice");
    cJSON_Delete(v);
    nt_response_free(&r);

    cr_assert_eq(atomic_load(&in.handled), 2, "rejected requests never reach the handler");
    /* Header values that could break the header block are refused at the sender. */
    cr_assert_eq(nt_nats_request(nc, "t.echo", "a\r\nb", NULL, NULL, 0, 2000, &r), NT_EINVAL);
    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
}

Test(nt_nats, blocking_request_reports_no_responders_and_timeout)
{
    inst in = {.slow_ms = 1000};
    nt_nats *nc = connect_ok("t4");
    nt_service *svc = start_svc(nc, SVC_NAME, &in);
    nt_response r;

    int64_t t0 = nt_clock_mono_ms();
    cr_assert_eq(nt_nats_request(nc, "nobody.here", NULL, NULL, NULL, 0, 3000, &r), NT_EUNAVAIL);
    cr_assert_lt(nt_clock_mono_ms() - t0, 500, "no responders is immediate");

    t0 = nt_clock_mono_ms();
    cr_assert_eq(nt_nats_request(nc, "t.slow", NULL, NULL, NULL, 0, 300, &r), NT_ETIMEOUT);
    int64_t took = nt_clock_mono_ms() - t0;
    cr_assert(took >= 280 && took < 900, "took %lld ms", (long long)took);

    nt_service_stop(svc, 3000);
    nt_nats_destroy(nc);
}

Test(nt_nats, two_instances_split_a_queue_group)
{
    inst a = {0}, b = {0};
    nt_nats *nca = connect_ok("ta"), *ncb = connect_ok("tb"), *client = connect_ok("tc");
    nt_service *sa = start_svc(nca, SVC_NAME, &a);
    nt_service *sb = start_svc(ncb, SVC_NAME, &b);
    cr_assert_str_neq(nt_service_id(sa), nt_service_id(sb));

    enum { N = 60 };
    for (int i = 0; i < N; i++) {
        nt_response r;
        cr_assert_eq(nt_nats_request(client, "t.echo", "u", NULL, "x", 1, 2000, &r), NT_OK);
        cr_assert_eq(r.http, 200);
        nt_response_free(&r);
    }
    int ha = atomic_load(&a.handled), hb = atomic_load(&b.handled);
    cr_assert_eq(ha + hb, N, "each request handled exactly once (%d + %d)", ha, hb);
    cr_assert_gt(ha, 0);
    cr_assert_gt(hb, 0);

    nt_service_stop(sa, 2000);
    nt_service_stop(sb, 2000);
    nt_nats_destroy(client);
    nt_nats_destroy(nca);
    nt_nats_destroy(ncb);
}

/* ---- Discovery ---------------------------------------------------------------------- */

/* Publishes an empty request to subject and gathers every reply for window_ms. */
static int collect(natsConnection *c, const char *subject, cJSON **out, int max, int window_ms)
{
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    cr_assert_eq(natsInbox_Create(&inbox), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&sub, c, inbox), NATS_OK);
    cr_assert_eq(natsConnection_PublishRequest(c, subject, inbox, NULL, 0), NATS_OK);
    int n = 0;
    int64_t end = nt_clock_mono_ms() + window_ms;
    for (;;) {
        int64_t left = end - nt_clock_mono_ms();
        if (left <= 0)
            break;
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, left) != NATS_OK)
            break;
        cJSON *v = cJSON_Parse(natsMsg_GetData(m));
        cr_assert_not_null(v, "discovery reply is not JSON: %s", natsMsg_GetData(m));
        if (n < max)
            out[n] = v;
        else
            cJSON_Delete(v);
        n++;
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return n;
}

static void free_all(cJSON **v, int n)
{
    for (int i = 0; i < n && i < 8; i++)
        cJSON_Delete(v[i]);
}

Test(nt_nats, discovery_ping_answers_all_three_forms)
{
    inst a = {0}, b = {0}, o = {0};
    nt_nats *nc = connect_ok("td");
    nt_service *sa = start_svc(nc, SVC_NAME, &a);
    nt_service *sb = start_svc(nc, SVC_NAME, &b);
    nt_service *so = start_svc(nc, "other", &o);
    natsConnection *raw = nt_nats_raw(nc);
    cJSON *got[8];
    char subj[128];

    int n = collect(raw, "$SRV.PING", got, 8, 500);
    cr_assert_eq(n, 3, "every instance of every service answers $SRV.PING");
    free_all(got, n);

    n = collect(raw, "$SRV.PING." SVC_NAME, got, 8, 500);
    cr_assert_eq(n, 2);
    const char *id0 = jstr(got[0], "id", NULL), *id1 = jstr(got[1], "id", NULL);
    cr_assert_str_neq(id0, id1);
    for (int i = 0; i < 2; i++) {
        const char *id = jstr(got[i], "id", NULL);
        cr_assert(strcmp(id, nt_service_id(sa)) == 0 || strcmp(id, nt_service_id(sb)) == 0);
        cr_assert_str_eq(jstr(got[i], "type", NULL), "io.nats.micro.v1.ping_response");
        cr_assert_str_eq(jstr(got[i], "name", NULL), SVC_NAME);
        cr_assert_str_eq(jstr(got[i], "version", NULL), "1.0.0");
        cr_assert(cJSON_IsObject(cJSON_GetObjectItem(got[i], "metadata")));
    }
    free_all(got, n);

    snprintf(subj, sizeof(subj), "$SRV.PING.%s.%s", SVC_NAME, nt_service_id(sb));
    n = collect(raw, subj, got, 8, 500);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(jstr(got[0], "id", NULL), nt_service_id(sb));
    free_all(got, n);

    n = collect(raw, "$SRV.PING.nosuch", got, 8, 300);
    cr_assert_eq(n, 0);

    nt_service_stop(sa, 2000);
    nt_service_stop(sb, 2000);
    nt_service_stop(so, 2000);

    /* After stop, the instance no longer answers. */
    n = collect(raw, "$SRV.PING", got, 8, 300);
    cr_assert_eq(n, 0);
    nt_nats_destroy(nc);
}

Test(nt_nats, discovery_info_lists_endpoints)
{
    inst a = {0};
    nt_nats *nc = connect_ok("ti");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    char subj[128];
    cJSON *got[8];
    snprintf(subj, sizeof(subj), "$SRV.INFO.%s.%s", SVC_NAME, nt_service_id(svc));
    int n = collect(nt_nats_raw(nc), subj, got, 8, 500);
    cr_assert_eq(n, 1);
    cJSON *v = got[0];
    cr_assert_str_eq(jstr(v, "type", NULL), "io.nats.micro.v1.info_response");
    cr_assert_str_eq(jstr(v, "id", NULL), nt_service_id(svc));
    cr_assert_str_eq(jstr(v, "description", NULL), "test service");
    const cJSON *eps = cJSON_GetObjectItem(v, "endpoints");
    cr_assert_eq(cJSON_GetArraySize(eps), (int)NROUTES);
    for (size_t i = 0; i < NROUTES; i++) {
        const cJSON *e = cJSON_GetArrayItem(eps, (int)i);
        cr_assert_str_eq(jstr(e, "name", NULL), routes[i].name);
        cr_assert_str_eq(jstr(e, "subject", NULL), routes[i].subject);
        cr_assert_str_eq(jstr(e, "queue_group", NULL), SVC_NAME);
    }
    free_all(got, n);

    n = collect(nt_nats_raw(nc), "$SRV.INFO", got, 8, 300);
    cr_assert_eq(n, 1);
    free_all(got, n);
    n = collect(nt_nats_raw(nc), "$SRV.STATS." SVC_NAME, got, 8, 300);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(jstr(got[0], "type", NULL), "io.nats.micro.v1.stats_response");
    free_all(got, n);

    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
}

static const cJSON *endpoint_named(const cJSON *stats, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(stats, "endpoints"))
    {
        if (strcmp(jstr(e, "name", NULL), name) == 0)
            return e;
    }
    cr_assert_fail("no endpoint %s", name);
    return NULL;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

Test(nt_nats, discovery_stats_count_requests_errors_and_time)
{
    inst a = {.slow_ms = 20};
    nt_nats *nc = connect_ok("ts");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_response r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(nt_nats_request(nc, "t.echo", NULL, NULL, "{}", 2, 2000, &r), NT_OK);
        nt_response_free(&r);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(nt_nats_request(nc, "t.fail", NULL, NULL, "{}", 2, 2000, &r), NT_OK);
        nt_response_free(&r);
    }
    cr_assert_eq(nt_nats_request(nc, "t.slow", NULL, NULL, NULL, 0, 2000, &r), NT_OK);
    nt_response_free(&r);
    /* A message with no reply subject is still handled and counted. */
    cr_assert_eq(nt_nats_publish(nc, "t.echo", "{}", 2), NT_OK);
    msleep(200);

    cJSON *got[8];
    char subj[128];
    snprintf(subj, sizeof(subj), "$SRV.STATS.%s.%s", SVC_NAME, nt_service_id(svc));
    int n = collect(nt_nats_raw(nc), subj, got, 8, 500);
    cr_assert_eq(n, 1);
    cJSON *v = got[0];
    cr_assert_str_eq(jstr(v, "type", NULL), "io.nats.micro.v1.stats_response");
    cr_assert_eq(strlen(jstr(v, "started", NULL)), 24, "RFC 3339 with ms: %s",
                 jstr(v, "started", NULL));
    const cJSON *echo = endpoint_named(v, "echo");
    cr_assert_eq(jnum(echo, "num_requests"), 4);
    cr_assert_eq(jnum(echo, "num_errors"), 0);
    cr_assert_str_eq(jstr(echo, "last_error", NULL), "");
    cr_assert_gt(jnum(echo, "processing_time"), 0);
    cr_assert_str_eq(jstr(echo, "queue_group", NULL), SVC_NAME);

    const cJSON *fail = endpoint_named(v, "fail");
    cr_assert_eq(jnum(fail, "num_requests"), 2);
    cr_assert_eq(jnum(fail, "num_errors"), 2);
    cr_assert_str_eq(jstr(fail, "last_error", NULL), "400:bad thing");

    const cJSON *slow = endpoint_named(v, "slow");
    cr_assert_eq(jnum(slow, "num_requests"), 1);
    cr_assert_geq(jnum(slow, "processing_time"), 20e6, "the 20 ms sleep is counted in ns");
    cr_assert_eq(jnum(slow, "average_processing_time"), jnum(slow, "processing_time"));

    const cJSON *who = endpoint_named(v, "whoami");
    cr_assert_eq(jnum(who, "num_requests"), 0);
    cr_assert_eq(jnum(who, "average_processing_time"), 0);
    free_all(got, n);

    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
}

Test(nt_nats, slow_route_blocks_neither_other_routes_nor_discovery)
{
    inst a = {.slow_ms = 1500};
    nt_nats *nc = connect_ok("tsl");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    cr_assert_eq(nt_nats_publish(nc, "t.slow", NULL, 0), NT_OK);
    int64_t wait_end = nt_clock_mono_ms() + 2000;
    while (!atomic_load(&a.in_slow) && nt_clock_mono_ms() < wait_end)
        msleep(5);
    cr_assert(atomic_load(&a.in_slow));

    /* Every other subscription of the service answers meanwhile (a shared
     * delivery pool would put some of them behind the slow handler). */
    int64_t t0 = nt_clock_mono_ms();
    const char *fast[] = {"t.echo", "t.fail", "t.whoami", "t.rate"};
    for (size_t i = 0; i < sizeof(fast) / sizeof(fast[0]); i++) {
        nt_response r;
        cr_assert_eq(nt_nats_request(nc, fast[i], "u", NULL, NULL, 0, 300, &r), NT_OK, "%s",
                     fast[i]);
        nt_response_free(&r);
    }
    const char *verbs[] = {"PING", "INFO", "STATS"};
    for (int v = 0; v < 3; v++) {
        char subj[3][128];
        snprintf(subj[0], sizeof(subj[0]), "$SRV.%s", verbs[v]);
        snprintf(subj[1], sizeof(subj[1]), "$SRV.%s.%s", verbs[v], SVC_NAME);
        snprintf(subj[2], sizeof(subj[2]), "$SRV.%s.%s.%s", verbs[v], SVC_NAME, nt_service_id(svc));
        for (int f = 0; f < 3; f++) {
            natsMsg *m = NULL;
            cr_assert_eq(natsConnection_RequestString(&m, nt_nats_raw(nc), subj[f], "", 300),
                         NATS_OK, "%s", subj[f]);
            natsMsg_Destroy(m);
        }
    }
    cr_assert_lt(nt_clock_mono_ms() - t0, 1000);
    cr_assert(atomic_load(&a.in_slow), "the slow handler was still running");

    nt_service_stop(svc, 3000);
    nt_nats_destroy(nc);
}

/* ---- Requester -------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    nt_status st;
    int http;
    char body[512];
    bool nul_terminated;
    int64_t at_ms;
} waiter;

static void waiter_init(waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->st = NT__COUNT;
}

static void waiter_cb(void *ctx, nt_status st, const nt_response *r)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->st = st;
    w->at_ms = nt_clock_mono_ms();
    if (r != NULL) {
        w->http = r->http;
        snprintf(w->body, sizeof(w->body), "%.*s", (int)r->len, r->data);
        w->nul_terminated = r->data[r->len] == '\0';
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static bool waiter_wait(waiter *w, int calls, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (w->calls < calls) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool ok = w->calls >= calls;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

/* Sends n slow requests at once through a service with the given concurrency
 * and returns how long the last reply took. */
static int64_t slow_burst(unsigned concurrency, int n)
{
    inst a = {.slow_ms = 300};
    nt_nats *nc = connect_ok("tcc");
    nt_service_def def = {.name = SVC_NAME,
                          .version = "1.0.0",
                          .routes = routes,
                          .nroutes = NROUTES,
                          .ctx = &a,
                          .concurrency = concurrency};
    nt_service *svc = NULL;
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_OK);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    waiter w;
    waiter_init(&w);
    int64_t t0 = nt_clock_mono_ms();
    for (int i = 0; i < n; i++)
        cr_assert_eq(
            nt_requester_send(rq, "t.slow", NULL, NULL, NULL, 0, 5000, waiter_cb, &w, NULL), NT_OK);
    cr_assert(waiter_wait(&w, n, 6000), "only %d of %d replies", w.calls, n);
    int64_t took = nt_clock_mono_ms() - t0;
    cr_assert_eq(w.st, NT_OK);
    cr_assert_eq(atomic_load(&a.handled), n);
    nt_requester_destroy(rq);
    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
    return took;
}

Test(nt_nats, concurrency_runs_requests_of_one_route_at_once)
{
    /* One subscription: eight 300 ms requests take eight times as long. */
    int64_t serial = slow_burst(1, 8);
    cr_assert_geq(serial, 2300, "serial took %lld ms", (long long)serial);
    /* Sixteen subscriptions: the queue group spreads them, so far less. */
    int64_t parallel = slow_burst(16, 8);
    cr_assert_lt(parallel, 1500, "parallel took %lld ms", (long long)parallel);
}

Test(nt_nats, service_refuses_absurd_concurrency)
{
    inst a = {0};
    nt_nats *nc = connect_ok("tcc2");
    nt_service_def def = {.name = SVC_NAME,
                          .version = "1.0.0",
                          .routes = routes,
                          .nroutes = NROUTES,
                          .ctx = &a,
                          .concurrency = 1000};
    nt_service *svc = NULL;
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_EINVAL);
    nt_nats_destroy(nc);
}

Test(nt_nats, requester_delivers_reply)
{
    inst a = {0};
    nt_nats *nc = connect_ok("tr1");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);

    waiter w;
    waiter_init(&w);
    uint64_t id = 0;
    cr_assert_eq(
        nt_requester_send(rq, "t.echo", "bob", "rid-1", "hello", 5, 2000, waiter_cb, &w, &id),
        NT_OK);
    cr_assert_neq(id, 0);
    cr_assert(waiter_wait(&w, 1, 2000));
    cr_assert_eq(w.st, NT_OK);
    cr_assert_eq(w.http, 200);
    cr_assert(w.nul_terminated);
    cJSON *v = cJSON_Parse(w.body);
    cr_assert_str_eq(jstr(v, "data", "user"), "bob");
    cr_assert_str_eq(jstr(v, "data", "request_id"), "rid-1");
    cr_assert_str_eq(jstr(v, "data", "body"), "hello");
    cJSON_Delete(v);

    waiter e;
    waiter_init(&e);
    cr_assert_eq(nt_requester_send(rq, "t.fail", NULL, NULL, NULL, 0, 2000, waiter_cb, &e, NULL),
                 NT_OK);
    cr_assert(waiter_wait(&e, 1, 2000));
    cr_assert_eq(e.st, NT_OK, "an error reply is still a reply");
    cr_assert_eq(e.http, 400);

    cr_assert_eq(nt_requester_cancel(rq, id), false, "already answered");
    msleep(100);
    cr_assert_eq(w.calls, 1);
    nt_requester_destroy(rq);
    cr_assert_eq(w.calls, 1, "destroy does not call finished requests again");
    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
}

Test(nt_nats, requester_reports_no_responders_at_once)
{
    nt_nats *nc = connect_ok("tr2");
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    waiter w;
    waiter_init(&w);
    int64_t t0 = nt_clock_mono_ms();
    cr_assert_eq(
        nt_requester_send(rq, "nobody.home", NULL, NULL, NULL, 0, 5000, waiter_cb, &w, NULL),
        NT_OK);
    cr_assert(waiter_wait(&w, 1, 2000));
    cr_assert_eq(w.st, NT_EUNAVAIL);
    cr_assert_lt(w.at_ms - t0, 500);
    msleep(100);
    cr_assert_eq(w.calls, 1);
    nt_requester_destroy(rq);
    cr_assert_eq(w.calls, 1);
    nt_nats_destroy(nc);
}

Test(nt_nats, requester_times_out_at_the_deadline)
{
    inst a = {.slow_ms = 1200};
    nt_nats *nc = connect_ok("tr3");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    waiter w, w2;
    waiter_init(&w);
    waiter_init(&w2);
    int64_t t0 = nt_clock_mono_ms();
    cr_assert_eq(nt_requester_send(rq, "t.slow", NULL, NULL, NULL, 0, 300, waiter_cb, &w, NULL),
                 NT_OK);
    /* A later request with an earlier deadline fires first. */
    cr_assert_eq(nt_requester_send(rq, "t.slow", NULL, NULL, NULL, 0, 150, waiter_cb, &w2, NULL),
                 NT_OK);
    cr_assert(waiter_wait(&w, 1, 2000));
    cr_assert(waiter_wait(&w2, 1, 100));
    cr_assert_eq(w.st, NT_ETIMEOUT);
    cr_assert_eq(w2.st, NT_ETIMEOUT);
    int64_t took = w.at_ms - t0, took2 = w2.at_ms - t0;
    cr_assert(took >= 295 && took < 800, "first timed out after %lld ms", (long long)took);
    cr_assert(took2 >= 145 && took2 < 600, "second timed out after %lld ms", (long long)took2);
    /* The late reply finds nothing pending and is dropped. */
    msleep(1300);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w2.calls, 1);
    nt_requester_destroy(rq);
    nt_service_stop(svc, 3000);
    nt_nats_destroy(nc);
}

Test(nt_nats, requester_cancel_prevents_the_callback)
{
    inst a = {.slow_ms = 200};
    nt_nats *nc = connect_ok("tr4");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    waiter w, t;
    waiter_init(&w);
    waiter_init(&t);
    uint64_t id = 0, id2 = 0;
    cr_assert_eq(nt_requester_send(rq, "t.slow", NULL, NULL, NULL, 0, 1000, waiter_cb, &w, &id),
                 NT_OK);
    cr_assert_eq(nt_requester_send(rq, "t.slow", NULL, NULL, NULL, 0, 100, waiter_cb, &t, &id2),
                 NT_OK);
    cr_assert_neq(id, id2);
    cr_assert_eq(nt_requester_cancel(rq, id), true);
    cr_assert_eq(nt_requester_cancel(rq, id), false, "a second cancel finds nothing");
    cr_assert_eq(nt_requester_cancel(rq, 987654321), false);
    msleep(1300);
    cr_assert_eq(w.calls, 0, "a cancelled request never calls back");
    cr_assert_eq(t.calls, 1, "the other request still timed out");
    cr_assert_eq(t.st, NT_ETIMEOUT);
    nt_requester_destroy(rq);
    cr_assert_eq(w.calls, 0);
    nt_service_stop(svc, 3000);
    nt_nats_destroy(nc);
}

Test(nt_nats, requester_destroy_fails_pending_requests)
{
    nt_nats *nc = connect_ok("tr5");
    /* A subscriber that never answers: requests stay pending. */
    natsSubscription *sink = NULL;
    cr_assert_eq(natsConnection_SubscribeSync(&sink, nt_nats_raw(nc), "t.blackhole"), NATS_OK);
    cr_assert_eq(natsConnection_Flush(nt_nats_raw(nc)), NATS_OK);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    enum { N = 5 };
    waiter w[N];
    for (int i = 0; i < N; i++) {
        waiter_init(&w[i]);
        cr_assert_eq(
            nt_requester_send(rq, "t.blackhole", NULL, NULL, "x", 1, 10000, waiter_cb, &w[i], NULL),
            NT_OK);
    }
    msleep(200);
    for (int i = 0; i < N; i++)
        cr_assert_eq(w[i].calls, 0);
    int64_t t0 = nt_clock_mono_ms();
    nt_requester_destroy(rq);
    cr_assert_lt(nt_clock_mono_ms() - t0, 1000);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].calls, 1, "request %d", i);
        cr_assert_eq(w[i].st, NT_EUNAVAIL);
    }
    natsSubscription_Destroy(sink);
    nt_nats_destroy(nc);
}

typedef struct {
    atomic_int calls;
    atomic_int ok;
    int index;
} slot;

static atomic_int total_calls;

static void slot_cb(void *ctx, nt_status st, const nt_response *r)
{
    slot *s = ctx;
    atomic_fetch_add(&s->calls, 1);
    char want[64];
    snprintf(want, sizeof(want), "\"body\":\"n%d\"", s->index);
    if (st == NT_OK && r != NULL && r->http == 200 && strstr(r->data, want) != NULL)
        atomic_fetch_add(&s->ok, 1);
    atomic_fetch_add(&total_calls, 1);
}

Test(nt_nats, requester_answers_1000_concurrent_requests_exactly_once)
{
    inst a = {0}, b = {0};
    nt_nats *nc = connect_ok("tr6"), *ns = connect_ok("tr6s");
    nt_service *sa = start_svc(ns, SVC_NAME, &a);
    nt_service *sb = start_svc(ns, SVC_NAME, &b);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    enum { N = 1000 };
    static slot slots[N];
    atomic_store(&total_calls, 0);
    for (int i = 0; i < N; i++) {
        slots[i].index = i;
        char body[16];
        int n = snprintf(body, sizeof(body), "n%d", i);
        cr_assert_eq(nt_requester_send(rq, "t.echo", "u", NULL, body, (size_t)n, 8000, slot_cb,
                                       &slots[i], NULL),
                     NT_OK);
    }
    int64_t end = nt_clock_mono_ms() + 8000;
    while (atomic_load(&total_calls) < N && nt_clock_mono_ms() < end)
        msleep(10);
    msleep(100);
    cr_assert_eq(atomic_load(&total_calls), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(atomic_load(&slots[i].calls), 1, "request %d called %d times", i,
                     atomic_load(&slots[i].calls));
        cr_assert_eq(atomic_load(&slots[i].ok), 1, "request %d got a wrong reply", i);
    }
    cr_assert_eq(atomic_load(&a.handled) + atomic_load(&b.handled), N);
    nt_requester_destroy(rq);
    nt_service_stop(sa, 2000);
    nt_service_stop(sb, 2000);
    nt_nats_destroy(ns);
    nt_nats_destroy(nc);
}

/* ---- Stop and drain ------------------------------------------------------------------- */

Test(nt_nats, service_stop_finishes_requests_in_flight)
{
    inst a = {.slow_ms = 600};
    nt_nats *nc = connect_ok("tst");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    waiter w;
    waiter_init(&w);
    cr_assert_eq(nt_requester_send(rq, "t.slow", NULL, NULL, NULL, 0, 5000, waiter_cb, &w, NULL),
                 NT_OK);
    int64_t end = nt_clock_mono_ms() + 2000;
    while (!atomic_load(&a.in_slow) && nt_clock_mono_ms() < end)
        msleep(5);
    cr_assert(atomic_load(&a.in_slow));
    int64_t t0 = nt_clock_mono_ms();
    nt_service_stop(svc, 3000);
    int64_t took = nt_clock_mono_ms() - t0;
    cr_assert(took >= 300 && took < 2500, "stop waited for the handler (%lld ms)", (long long)took);
    cr_assert(waiter_wait(&w, 1, 2000));
    cr_assert_eq(w.st, NT_OK);
    cr_assert_eq(w.http, 200);
    cr_assert_str_eq(w.body, "{\"data\":\"slept\"}");

    nt_response r;
    cr_assert_eq(nt_nats_request(nc, "t.slow", NULL, NULL, NULL, 0, 1000, &r), NT_EUNAVAIL,
                 "nobody serves the route after stop");
    nt_requester_destroy(rq);
    nt_nats_destroy(nc);
}

Test(nt_nats, drain_closes_the_connection)
{
    inst a = {0};
    nt_nats *nc = connect_ok("tdr");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_requester *rq = NULL;
    cr_assert_eq(nt_requester_create(nc, &rq), NT_OK);
    nt_nats_drain(nc, 2000);
    cr_assert_not(nt_nats_is_connected(nc));
    cr_assert_eq(nt_nats_publish(nc, "x.y", "a", 1), NT_EUNAVAIL);
    waiter w;
    waiter_init(&w);
    cr_assert_eq(nt_requester_send(rq, "t.echo", NULL, NULL, NULL, 0, 1000, waiter_cb, &w, NULL),
                 NT_EUNAVAIL, "a closed connection cannot send");
    /* Stopping and destroying after the drain is safe and prompt. */
    int64_t t0 = nt_clock_mono_ms();
    nt_requester_destroy(rq);
    nt_service_stop(svc, 2000);
    nt_nats_destroy(nc);
    cr_assert_lt(nt_clock_mono_ms() - t0, 1500);
    cr_assert_eq(w.calls, 0);
}

/* ---- Connecting ------------------------------------------------------------------------ */

/* Sends fd 2 to a file until capture_end, which returns what was written. */
static int capture_begin(char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/stderr-capture.txt", h_tmpdir());
    fflush(stderr);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static char *capture_end(int saved, const char *path)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

Test(nt_nats, connect_to_a_dead_port_fails_after_the_wait)
{
    int port = h_free_port();
    char u[128], path[512];
    snprintf(u, sizeof(u), "nats://user:secret@127.0.0.1:%d", port);
    nt_nats *nc = NULL;
    int saved = capture_begin(path, sizeof(path));
    int64_t t0 = nt_clock_mono_ms();
    nt_status st = nt_nats_connect(u, "dead", 700, &nc);
    int64_t took = nt_clock_mono_ms() - t0;
    char *log = capture_end(saved, path);
    cr_assert_eq(st, NT_EUNAVAIL);
    cr_assert(took >= 650 && took < 2500, "gave up after %lld ms", (long long)took);
    cr_assert_null(nc);
    char want[64];
    snprintf(want, sizeof(want), "nats://127.0.0.1:%d", port);
    cr_assert_not_null(strstr(log, want), "the URL is logged: %s", log);
    cr_assert_null(strstr(log, "secret"), "credentials never reach the log: %s", log);
    cr_assert_null(strstr(log, "user:"), "credentials never reach the log: %s", log);

    cr_assert_eq(nt_nats_connect("", "x", 100, &nc), NT_EINVAL);
    cr_assert_eq(nt_nats_connect(" , ,", "x", 100, &nc), NT_EINVAL);
    cr_assert_null(nc);
}

Test(nt_nats, connect_takes_a_list_and_waits_for_a_late_server)
{
    int dead = h_free_port(), late = h_free_port();
    char u[256];
    snprintf(u, sizeof(u), " nats://127.0.0.1:%d , nats://127.0.0.1:%d ", dead, late);
    h_kill(h_nats_proc(), SIGTERM); /* this test brings its own server */

    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        /* Helper: after a delay, exec the server on the late port. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        msleep(800);
        char store[512], portbuf[16];
        snprintf(store, sizeof(store), "%s/nats", h_tmpdir());
        snprintf(portbuf, sizeof(portbuf), "%d", late);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", portbuf, "-js", "-sd", store,
               (char *)NULL);
        _exit(127);
    }
    extra_pids[nextra++] = child;
    nt_nats *nc = NULL;
    int64_t t0 = nt_clock_mono_ms();
    cr_assert_eq(nt_nats_connect(u, "late", 8000, &nc), NT_OK);
    int64_t took = nt_clock_mono_ms() - t0;
    cr_assert(took >= 700, "connected after %lld ms", (long long)took);
    cr_assert(nt_nats_is_connected(nc));
    cr_assert_eq(nt_nats_publish(nc, "a.b", "x", 1), NT_OK);
    nt_nats_destroy(nc);
}

Test(nt_nats, service_answers_again_after_server_restart)
{
    int port = url_port(url);
    inst a = {0};
    nt_nats *nc = connect_ok("trs");
    nt_nats *client = connect_ok("trc");
    nt_service *svc = start_svc(nc, SVC_NAME, &a);
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "session:keep", "v1", 2), NT_OK);
    nt_response r;
    cr_assert_eq(nt_nats_request(client, "t.echo", NULL, NULL, NULL, 0, 2000, &r), NT_OK);
    nt_response_free(&r);

    h_kill(h_nats_proc(), SIGKILL);
    int64_t end = nt_clock_mono_ms() + 3000;
    while (nt_nats_is_connected(nc) && nt_clock_mono_ms() < end)
        msleep(10);
    cr_assert_not(nt_nats_is_connected(nc), "the client noticed the dead server");
    cr_assert_eq(nt_nats_request(client, "t.echo", NULL, NULL, NULL, 0, 300, &r) == NT_OK, false);

    start_server_on(port);
    end = nt_clock_mono_ms() + 8000;
    nt_status st = NT_EUNAVAIL;
    while (nt_clock_mono_ms() < end) {
        st = nt_nats_request(client, "t.echo", "u", NULL, NULL, 0, 500, &r);
        if (st == NT_OK)
            break;
        msleep(100);
    }
    cr_assert_eq(st, NT_OK, "the service answers after the reconnect");
    cr_assert_eq(r.http, 200);
    nt_response_free(&r);
    cr_assert(nt_nats_is_connected(nc));

    /* The file-backed KV survived the restart. */
    char *val = NULL;
    size_t len = 0;
    end = nt_clock_mono_ms() + 5000;
    while ((st = nt_kv_get(kv, "session:keep", &val, &len)) != NT_OK && nt_clock_mono_ms() < end)
        msleep(200);
    cr_assert_eq(st, NT_OK);
    cr_assert_str_eq(val, "v1");
    free(val);

    nt_kv_close(kv);
    nt_service_stop(svc, 2000);
    nt_nats_destroy(client);
    nt_nats_destroy(nc);
}

Test(nt_nats, service_start_refuses_bad_definitions)
{
    nt_nats *nc = connect_ok("tbad");
    nt_service *svc = NULL;
    nt_service_def def = {.name = "a.b", .version = "1.0.0", .routes = routes, .nroutes = 1};
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_EINVAL, "a dot would add a subject token");
    def.name = "";
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_EINVAL);
    def.name = "ok";
    def.version = "1.0";
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_EINVAL, "not SemVer");
    def.version = "01.0.0";
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_EINVAL, "no leading zeros");
    def.version = "1.0.0-rc.1+build.5";
    def.routes = NULL;
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_EINVAL, "routes missing");
    cr_assert_null(svc);

    /* No routes at all: discovery still answers, with "endpoints": []. */
    def.nroutes = 0;
    cr_assert_eq(nt_service_start(nc, &def, &svc), NT_OK);
    cJSON *got[8];
    int n = collect(nt_nats_raw(nc), "$SRV.INFO.ok", got, 8, 300);
    cr_assert_eq(n, 1);
    const cJSON *eps = cJSON_GetObjectItem(got[0], "endpoints");
    cr_assert(cJSON_IsArray(eps));
    cr_assert_eq(cJSON_GetArraySize(eps), 0);
    cr_assert_str_eq(jstr(got[0], "version", NULL), "1.0.0-rc.1+build.5");
    cr_assert_str_eq(jstr(got[0], "description", NULL), "");
    free_all(got, n);
    nt_service_stop(svc, 1000);
    nt_service_stop(NULL, 1000);
    nt_nats_destroy(nc);
    nt_nats_destroy(NULL);
}

/* ---- KV ------------------------------------------------------------------------------------ */

static void check_bucket(nt_nats *nc, const char *stream, long long ttl_s)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nt_nats_raw(nc), NULL), NATS_OK);
    cr_assert_eq(js_GetStreamInfo(&si, js, stream, NULL, NULL), NATS_OK, "%s", stream);
    cr_assert_eq(si->Config->MaxAge, ttl_s * 1000000000LL, "%s MaxAge", stream);
    cr_assert_eq(si->Config->MaxMsgsPerSubject, 1, "%s history", stream);
    cr_assert_eq(si->Config->Replicas, 1);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
}

Test(nt_nats, kv_open_creates_the_three_buckets_with_their_ttls)
{
    nt_nats *nc = connect_ok("tk1");
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    check_bucket(nc, "KV_natter_sessions", 86400);
    check_bucket(nc, "KV_natter_presence", 300);
    check_bucket(nc, "KV_natter_room_members", 3600);
    nt_kv_close(kv);

    cr_assert_eq(nt_kv_open(nc, "bad.prefix", 1, &kv), NT_EINVAL);
    cr_assert_eq(nt_kv_open(nc, "", 1, &kv), NT_EINVAL);
    cr_assert_eq(nt_kv_open(nc, "natter", 0, &kv), NT_EINVAL);
    nt_nats_destroy(nc);
}

Test(nt_nats, kv_put_get_delete_round_trip)
{
    nt_nats *nc = connect_ok("tk2");
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    char *val = NULL;
    size_t len = 99;

    cr_assert_eq(nt_kv_get(kv, "session:nobody", &val, &len), NT_ENOTFOUND);
    cr_assert_null(val);
    cr_assert_eq(len, 99, "out-parameters untouched on failure");

    const char bin[] = {'a', '\0', 'b'};
    cr_assert_eq(nt_kv_put(kv, "session:u1", "{\"a\":1}", 7), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "presence:u1", bin, sizeof(bin)), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "room:r1:members", "[\"u1\"]", 6), NT_OK);

    cr_assert_eq(nt_kv_get(kv, "session:u1", &val, &len), NT_OK);
    cr_assert_eq(len, 7);
    cr_assert_str_eq(val, "{\"a\":1}");
    free(val);
    cr_assert_eq(nt_kv_get(kv, "presence:u1", &val, &len), NT_OK);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(val, bin, 3), 0);
    cr_assert_eq(val[3], '\0');
    free(val);
    cr_assert_eq(nt_kv_get(kv, "room:r1:members", &val, &len), NT_OK);
    cr_assert_str_eq(val, "[\"u1\"]");
    free(val);
    /* The same id in another class is another key. */
    cr_assert_eq(nt_kv_get(kv, "presence:r1", &val, &len), NT_ENOTFOUND);

    cr_assert_eq(nt_kv_put(kv, "session:u1", "v2", 2), NT_OK);
    cr_assert_eq(nt_kv_get(kv, "session:u1", &val, &len), NT_OK);
    cr_assert_str_eq(val, "v2");
    free(val);

    cr_assert_eq(nt_kv_delete(kv, "session:u1"), NT_OK);
    val = NULL;
    cr_assert_eq(nt_kv_get(kv, "session:u1", &val, &len), NT_ENOTFOUND);
    cr_assert_null(val);
    cr_assert_eq(nt_kv_delete(kv, "session:u1"), NT_OK, "deleting twice is fine");
    cr_assert_eq(nt_kv_delete(kv, "session:never"), NT_OK, "deleting a missing key is fine");
    cr_assert_eq(nt_kv_put(kv, "session:u1", "v3", 2), NT_OK, "a deleted key can come back");
    cr_assert_eq(nt_kv_get(kv, "session:u1", &val, &len), NT_OK);
    cr_assert_str_eq(val, "v3");
    free(val);

    cr_assert_eq(nt_kv_put(kv, "session:a.b", "x", 1), NT_EINVAL);
    cr_assert_eq(nt_kv_get(kv, "nope:a", &val, &len), NT_EINVAL);
    cr_assert_eq(nt_kv_delete(kv, "room:x"), NT_EINVAL);
    cr_assert_eq(nt_kv_put(kv, "session:empty", "", 0), NT_OK);
    cr_assert_eq(nt_kv_get(kv, "session:empty", &val, &len), NT_OK);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(val, "");
    free(val);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}

Test(nt_nats, kv_create_only_fills_an_absent_key)
{
    nt_nats *nc = connect_ok("tk2c");
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    char *val = NULL;
    size_t len = 0;
    cr_assert_eq(nt_kv_create(kv, "session:c1", "first", 5), NT_OK);
    cr_assert_eq(nt_kv_create(kv, "session:c1", "second", 6), NT_ECONFLICT);
    cr_assert_eq(nt_kv_get(kv, "session:c1", &val, &len), NT_OK);
    cr_assert_str_eq(val, "first", "a refused create leaves the value");
    free(val);
    cr_assert_eq(nt_kv_put(kv, "session:c1", "writer", 6), NT_OK);
    cr_assert_eq(nt_kv_create(kv, "session:c1", "stale", 5), NT_ECONFLICT);
    cr_assert_eq(nt_kv_delete(kv, "session:c1"), NT_OK);
    cr_assert_eq(nt_kv_create(kv, "session:c1", "again", 5), NT_OK, "after a delete it fills");
    cr_assert_eq(nt_kv_get(kv, "session:c1", &val, &len), NT_OK);
    cr_assert_str_eq(val, "again");
    free(val);
    cr_assert_eq(nt_kv_create(kv, "session:a.b", "x", 1), NT_EINVAL);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
}

Test(nt_nats, kv_reopen_binds_the_existing_buckets)
{
    nt_nats *nc = connect_ok("tk3");
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_OK);
    cr_assert_eq(nt_kv_put(kv, "room:r9:members", "kept", 4), NT_OK);
    nt_kv_close(kv);

    nt_nats *nc2 = connect_ok("tk3b");
    kv = NULL;
    cr_assert_eq(nt_kv_open(nc2, "natter", 1, &kv), NT_OK);
    char *val = NULL;
    size_t len = 0;
    cr_assert_eq(nt_kv_get(kv, "room:r9:members", &val, &len), NT_OK);
    cr_assert_str_eq(val, "kept");
    free(val);
    check_bucket(nc2, "KV_natter_room_members", 3600);
    nt_kv_close(kv);
    nt_kv_close(NULL);
    nt_nats_destroy(nc2);
    nt_nats_destroy(nc);
}

static void *open_kv_thread(void *arg)
{
    nt_kv *kv = NULL;
    nt_status st = nt_kv_open(arg, "race", 1, &kv);
    nt_kv_close(kv);
    return (void *)(intptr_t)st;
}

Test(nt_nats, kv_open_races_with_another_opener)
{
    nt_nats *nc1 = connect_ok("tk4a"), *nc2 = connect_ok("tk4b");
    pthread_t t1, t2;
    pthread_create(&t1, NULL, open_kv_thread, nc1);
    pthread_create(&t2, NULL, open_kv_thread, nc2);
    void *r1, *r2;
    pthread_join(t1, &r1);
    pthread_join(t2, &r2);
    cr_assert_eq((intptr_t)r1, NT_OK);
    cr_assert_eq((intptr_t)r2, NT_OK);
    check_bucket(nc1, "KV_race_sessions", 86400);
    nt_nats_destroy(nc1);
    nt_nats_destroy(nc2);
}

Test(nt_nats, kv_open_without_jetstream_is_unavailable)
{
    h_kill(h_nats_proc(), SIGTERM);
    int port = h_free_port();
    /* A plain server with no JetStream. */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char portbuf[16];
        snprintf(portbuf, sizeof(portbuf), "%d", port);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", portbuf, (char *)NULL);
        _exit(127);
    }
    extra_pids[nextra++] = pid;
    cr_assert(h_wait_port(port, 10000));
    char u[64];
    snprintf(u, sizeof(u), "nats://127.0.0.1:%d", port);
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect(u, "nojs", 3000, &nc), NT_OK);
    nt_kv *kv = NULL;
    cr_assert_eq(nt_kv_open(nc, "natter", 1, &kv), NT_EUNAVAIL);
    cr_assert_null(kv);
    nt_nats_destroy(nc);
}

/* ---- Event subscriptions and gaps ---------------------------------------------- */

typedef struct {
    atomic_int count;
    atomic_int gaps;
    atomic_ullong last_tag;
    char last_subject[128];
    char last_data[64];
    char last_hdr[64]; /* Chat-Presence-Seq, "-" when absent */
} seen;

static void on_msg(void *ctx, uint64_t tag, const nt_msg *m)
{
    seen *s = ctx;
    const char *h = nt_msg_header(m, "Chat-Presence-Seq");
    snprintf(s->last_subject, sizeof(s->last_subject), "%s", m->subject);
    snprintf(s->last_data, sizeof(s->last_data), "%.*s", (int)m->len, m->data);
    snprintf(s->last_hdr, sizeof(s->last_hdr), "%s", h != NULL ? h : "-");
    atomic_store(&s->last_tag, tag);
    atomic_fetch_add(&s->count, 1);
}

static void on_gap_seen(void *ctx, const char *why)
{
    seen *s = ctx;
    if (strcmp(why, "reconnected") == 0)
        atomic_fetch_add(&s->gaps, 1);
}

static bool wait_count(atomic_int *n, int want, int ms)
{
    int64_t end = nt_clock_mono_ms() + ms;
    while (atomic_load(n) < want && nt_clock_mono_ms() < end)
        msleep(10);
    return atomic_load(n) >= want;
}

Test(nt_nats, a_pooled_subscription_delivers_with_its_tag_until_destroyed)
{
    nt_nats *nc = NULL;
    cr_assert_eq(nt_nats_connect_pooled(url, "tsub", 5000, 1, &nc), NT_OK);
    nt_nats *pub = connect_ok("tpub");
    seen s = {0};
    nt_sub *sub = NULL;
    cr_assert_eq(nt_nats_subscribe(nc, "chat.room.r1.>", on_msg, &s, 42, &sub), NT_OK);
    nt_response r;
    /* A round trip on the subscriber's connection makes sure the SUB is in. */
    nt_nats_request(nc, "t.nobody", NULL, NULL, NULL, 0, 200, &r);
    cr_assert_eq(nt_nats_publish(pub, "chat.room.r1.message_received", "{\"a\":1}", 7), NT_OK);
    cr_assert_eq(nt_nats_publish(pub, "chat.room.r2.message_received", "{\"b\":2}", 7), NT_OK);
    cr_assert(wait_count(&s.count, 1, 3000), "nothing delivered");
    msleep(200);
    cr_assert_eq(atomic_load(&s.count), 1, "another room's event was delivered");
    cr_assert_str_eq(s.last_subject, "chat.room.r1.message_received");
    cr_assert_str_eq(s.last_data, "{\"a\":1}");
    cr_assert_eq(atomic_load(&s.last_tag), 42);
    cr_assert_str_eq(s.last_hdr, "-");

    /* Headers published are read back by key; the payload is untouched. */
    const nt_header h[] = {{"Chat-Presence-Edge", "e1"}, {"Chat-Presence-Seq", "17"}};
    cr_assert_eq(nt_nats_publish_hdrs(pub, "chat.room.r1.presence_diff", "{}", 2, h, 2), NT_OK);
    cr_assert(wait_count(&s.count, 2, 3000), "the message with headers was not delivered");
    cr_assert_str_eq(s.last_hdr, "17");
    cr_assert_str_eq(s.last_data, "{}");
    cr_assert_eq(nt_nats_publish_hdrs(pub, "", "{}", 2, h, 2), NT_EINVAL);

    nt_sub_destroy(sub);
    nt_nats_request(nc, "t.nobody", NULL, NULL, NULL, 0, 200, &r);
    cr_assert_eq(nt_nats_publish(pub, "chat.room.r1.message_received", "{\"a\":2}", 7), NT_OK);
    msleep(300);
    cr_assert_eq(atomic_load(&s.count), 2, "delivered after destroy");
    cr_assert_eq(nt_nats_subscribe(nc, "", on_msg, &s, 1, &sub), NT_EINVAL);
    nt_nats_drain(nc, 2000);
    nt_nats_destroy(nc);
    nt_nats_drain(pub, 2000);
    nt_nats_destroy(pub);
}

Test(nt_nats, a_reconnect_is_reported_as_a_gap)
{
    int port = url_port(url);
    nt_nats *nc = connect_ok("tgap");
    seen s = {0};
    nt_nats_on_gap(nc, on_gap_seen, &s);
    h_kill(h_nats_proc(), SIGKILL);
    msleep(300);
    cr_assert_eq(atomic_load(&s.gaps), 0, "a gap before the reconnect");
    start_server_on(port);
    cr_assert(wait_count(&s.gaps, 1, 10000), "no gap reported after the reconnect");
    nt_nats_on_gap(nc, NULL, NULL);
    nt_nats_drain(nc, 2000);
    nt_nats_destroy(nc);
}
