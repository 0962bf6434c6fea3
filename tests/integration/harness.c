/* Process, port and HTTP helpers for the integration tests. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 32

static char tmpdir[256];
static h_proc procs[MAX_PROCS];
static int nprocs;
static h_proc *nats_proc;
static char nats_url[64];
static char root[1024];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

const char *h_root(void)
{
    if (root[0] == '\0') {
        if (getcwd(root, sizeof(root)) == NULL)
            cr_assert_fail("getcwd failed");
    }
    return root;
}

const char *h_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/natter-it-XXXXXX");
        if (mkdtemp(tmpdir) == NULL)
            cr_assert_fail("mkdtemp failed: %s", strerror(errno));
    }
    return tmpdir;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

bool h_wait_port(int port, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
        close(fd);
        if (rc == 0)
            return true;
        sleep_ms(20);
    }
    return false;
}

static h_proc *spawn_argv(const char *name, char *const argv[], const char *const *env)
{
    cr_assert(nprocs < MAX_PROCS, "too many processes");
    h_proc *p = &procs[nprocs++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log_path, sizeof(p->log_path), "%s/%s-%d.log", h_tmpdir(), name, nprocs);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        /* The child dies with the test process, so nothing outlives a crash. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    return p;
}

const char *h_nats_start(void)
{
    int port = h_free_port();
    char store[512], portbuf[16];
    snprintf(store, sizeof(store), "%s/nats", h_tmpdir());
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    char *argv[] = {"nats-server", "-a", "127.0.0.1", "-p", portbuf, "-js", "-sd", store, NULL};
    nats_proc = spawn_argv("nats-server", argv, NULL);
    cr_assert(h_wait_port(port, 10000), "nats-server did not start on port %d", port);
    snprintf(nats_url, sizeof(nats_url), "nats://127.0.0.1:%d", port);
    return nats_url;
}

h_proc *h_nats_proc(void)
{
    return nats_proc;
}

h_proc *h_spawn(const char *name, const char *const *env)
{
    const char *build = getenv("BUILD");
    char path[2400];
    snprintf(path, sizeof(path), "%s/%s/bin/%s", h_root(), build ? build : "build", name);
    cr_assert(access(path, X_OK) == 0, "binary %s is missing: run make first", path);
    char *argv[] = {path, NULL};
    return spawn_argv(name, argv, env);
}

bool h_alive(h_proc *p)
{
    if (p == NULL || p->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        p->pid = -status - 1; /* remember that it is gone */
        return false;
    }
    return r == 0;
}

int h_kill(h_proc *p, int sig)
{
    if (p == NULL || p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    long end = now_ms() + 10000;
    int status = -1;
    while (now_ms() < end) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return status;
        }
        sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    return -1;
}

int h_kill_by_name(const char *name, int sig)
{
    int n = 0;
    for (int i = 0; i < nprocs; i++) {
        if (procs[i].pid > 0 && strcmp(procs[i].name, name) == 0) {
            h_kill(&procs[i], sig);
            n++;
        }
    }
    return n;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void h_dump_logs(void)
{
    for (int i = 0; i < nprocs; i++) {
        char cmd[1200];
        fprintf(stderr, "---- %s (%s) ----\n", procs[i].name, procs[i].log_path);
        snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", procs[i].log_path);
        int rc = system(cmd);
        (void)rc;
    }
}

void h_stop_all(void)
{
    for (int i = nprocs - 1; i >= 0; i--) {
        if (procs[i].pid > 0)
            h_kill(&procs[i], SIGTERM);
    }
    if (getenv("H_KEEP_LOGS") != NULL)
        fprintf(stderr, "harness: logs kept in %s\n", tmpdir);
    else if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    nprocs = 0;
    nats_proc = NULL;
    tmpdir[0] = '\0';
}

typedef struct {
    char *data;
    size_t len;
} sink;

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t add = size * n;
    char *p = realloc(s->data, s->len + add + 1);
    if (p == NULL)
        return 0;
    memcpy(p + s->len, ptr, add);
    s->data = p;
    s->len += add;
    s->data[s->len] = '\0';
    return add;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    h_http *r = ud;
    size_t add = size * n;
    size_t have = strlen(r->headers);
    if (have + add < sizeof(r->headers)) {
        memcpy(r->headers + have, ptr, add);
        r->headers[have + add] = '\0';
    }
    return add;
}

h_http h_request(const char *method, const char *url, const char *const *headers, const char *body,
                 size_t body_len)
{
    h_http r;
    memset(&r, 0, sizeof(r));
    sink s = {NULL, 0};
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r.seconds);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r.body = s.data ? s.data : strdup("");
    r.len = s.len;
    return r;
}

void h_http_free(h_http *r)
{
    free(r->body);
    r->body = NULL;
}

bool h_header(const h_http *r, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = r->headers;
    while (p != NULL && *p) {
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= outlen)
                n = outlen - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return false;
}

bool h_wait_http(const char *url, long want_status, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        h_http r = h_request("GET", url, NULL, NULL, 0);
        long st = r.status;
        h_http_free(&r);
        if (st == want_status)
            return true;
        sleep_ms(50);
    }
    return false;
}

void h_stack_env(h_stack *s, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->nats_url, sizeof(s->nats_url), "%s", h_nats_start());
    int port = h_free_port();
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", port);
    snprintf(s->vars[0], sizeof(s->vars[0]), "NATS_URL=%s", s->nats_url);
    snprintf(s->vars[1], sizeof(s->vars[1]), "NATTER_HTTP_PORT=%d", port);
    snprintf(s->vars[2], sizeof(s->vars[2]), "NATTER_DATA_DIR=%s/data", h_tmpdir());
    snprintf(s->vars[3], sizeof(s->vars[3]), "NATTER_MIGRATIONS_DIR=%s/schemas/migrations",
             h_root());
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        s->env[n++] = s->vars[i];
    s->env[n++] = "NATTER_WEB_DIR=/nonexistent";
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n < sizeof(s->env) / sizeof(s->env[0]) - 1, "too many extra variables");
        s->env[n++] = extra[i];
    }
    s->env[n] = NULL;
}

void h_stack_start(h_stack *s, const char *const *extra)
{
    h_stack_env(s, extra);
    h_spawn("auth", s->env);
    h_spawn("rooms", s->env);
    h_spawn("messages", s->env);
    h_spawn("presence", s->env);
    h_spawn("gateway", s->env);
    char url[256];
    snprintf(url, sizeof(url), "%s/readyz", s->base);
    if (!h_wait_http(url, 200, 15000) || !h_wait_service(s->nats_url, "rooms", 15000) ||
        !h_wait_service(s->nats_url, "messages", 15000) ||
        !h_wait_service(s->nats_url, "presence", 15000)) {
        h_dump_logs();
        cr_assert_fail("the stack did not become ready");
    }
}

bool h_wait_service(const char *url, const char *name, int timeout_ms)
{
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    char subject[128];
    bool ok = false;
    snprintf(subject, sizeof(subject), "$SRV.PING.%s", name);
    for (int waited = 0; waited < timeout_ms && !ok; waited += 100) {
        if (nc == NULL && natsConnection_ConnectTo(&nc, url) != NATS_OK)
            nc = NULL;
        if (nc != NULL && natsConnection_RequestString(&reply, nc, subject, "", 200) == NATS_OK) {
            ok = true;
            natsMsg_Destroy(reply);
            break;
        }
        usleep(100 * 1000);
    }
    natsConnection_Destroy(nc);
    return ok;
}

h_http h_api(const h_stack *s, const char *method, const char *path, const char *token,
             const char *body)
{
    char url[512], auth[9000];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers[1] = auth;
    }
    return h_request(method, url, headers, body, body ? strlen(body) : 0);
}

char *h_dev_token(const h_stack *s, const char *username, char *user_id_out, size_t outlen)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"username\":\"%s\"}", username);
    h_http r = h_api(s, "POST", "/api/dev/token", NULL, body);
    cr_assert_eq(r.status, 200, "dev token: %ld %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *d = cJSON_GetObjectItem(j, "data");
    char *tok = strdup(cJSON_GetObjectItem(d, "token")->valuestring);
    if (user_id_out != NULL)
        snprintf(user_id_out, outlen, "%s", cJSON_GetObjectItem(d, "user_id")->valuestring);
    cJSON_Delete(j);
    h_http_free(&r);
    return tok;
}

void h_data_str(const h_http *r, const char *key, char *out, size_t outlen)
{
    cJSON *j = cJSON_Parse(r->body);
    cr_assert_not_null(j, "not JSON: %s", r->body);
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), key);
    cr_assert(cJSON_IsString(v) || cJSON_IsNull(v), "data.%s missing in %s", key, r->body);
    snprintf(out, outlen, "%s", cJSON_IsString(v) ? v->valuestring : "null");
    cJSON_Delete(j);
}

void h_error_code(const h_http *r, const char *want)
{
    cJSON *j = cJSON_Parse(r->body);
    cr_assert_not_null(j, "error body is not JSON: %s", r->body);
    cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");
    cr_assert(cJSON_IsString(code), "no error.code in %s", r->body);
    cr_assert_str_eq(code->valuestring, want, "body %s", r->body);
    cJSON_Delete(j);
}
