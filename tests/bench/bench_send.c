/* The send benchmark: acknowledged sends per second and p50/p99 latency of
 * chat.messages.send at 1, 16 and 256 concurrent senders, with group commit on
 * (the default batch) and off (NATTER_MESSAGES_BATCH_MAX=1). It starts its own
 * nats-server, auth, rooms and messages in a temporary directory (no gateway:
 * it measures the service over NATS) and prints one table per configuration.
 *
 * It does not link the integration harness: harness.c reports failures with
 * Criterion's asserts, which only work inside a Criterion test, so the few
 * process helpers it needs are written out here.
 *
 * Environment: BUILD (where bin/ is, default "build"), BENCH_SECONDS (measured
 * seconds per level, default 5), BENCH_WARMUP_MS (default 1000), BENCH_SENDERS
 * (levels, default "1,16,256"), BENCH_BATCH_MAX (run only this
 * NATTER_MESSAGES_BATCH_MAX; default: the service's default, then 1). */
#include <cjson/cJSON.h>
#include <nats/nats.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_USERS       256
#define MAX_LEVELS      8
#define POOL_MAX        8 /* NATS connections shared by the senders */
#define REQ_TIMEOUT_MS  10000
#define SETUP_TIMEOUT   5000
#define STOP_TIMEOUT_MS 15000

/* ---- failure, time ---- */

static char tmpdir[256];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_send: ");
    vfprintf(stderr, fmt, ap);
    if (tmpdir[0] != '\0')
        fprintf(stderr, " (logs in %s)", tmpdir);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return def;
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        die("%s must be an integer from %ld to %ld, got '%s'", name, min, max, v);
    return n;
}

/* ---- processes ---- */

typedef struct {
    pid_t pid;
    char log[512];
} proc;

static proc spawn(const char *name, char *const argv[], char *const *env)
{
    proc p = {0};
    snprintf(p.log, sizeof(p.log), "%s/%s.log", tmpdir, name);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(p.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv(env[i]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p.pid = pid;
    return p;
}

static void stop(proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    int status;
    for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += 10) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("bind: %s", strerror(errno));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- NATS requests ---- */

typedef struct {
    int status; /* 200, or Nats-Service-Error-Code; 0 on a transport failure */
    cJSON *body;
} reply;

/* subject with body as user (NULL: none); the caller deletes r.body. */
static reply request(natsConnection *nc, const char *subject, const char *user, const char *body,
                     int timeout_ms)
{
    reply r = {0, NULL};
    natsMsg *m = NULL, *rep = NULL;
    if (natsMsg_Create(&m, subject, NULL, body, (int)strlen(body)) != NATS_OK)
        die("natsMsg_Create");
    if (user != NULL && natsMsgHeader_Set(m, "Chat-User", user) != NATS_OK)
        die("natsMsgHeader_Set");
    if (natsConnection_RequestMsg(&rep, nc, m, timeout_ms) == NATS_OK) {
        const char *code = NULL;
        r.status = 200;
        if (natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &code) == NATS_OK && code != NULL)
            r.status = (int)strtol(code, NULL, 10);
        r.body = cJSON_ParseWithLength(natsMsg_GetData(rep), (size_t)natsMsg_GetDataLength(rep));
        natsMsg_Destroy(rep);
    }
    natsMsg_Destroy(m);
    return r;
}

/* A set-up request that must succeed; returns data.key as a string into out. */
static void must(natsConnection *nc, const char *subject, const char *user, const char *body,
                 const char *key, char *out, size_t outlen)
{
    reply r = request(nc, subject, user, body, SETUP_TIMEOUT);
    if (r.status != 200) {
        char *s = r.body ? cJSON_PrintUnformatted(r.body) : NULL;
        die("%s %s: status %d %s", subject, body, r.status, s ? s : "");
    }
    if (key != NULL) {
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.body, "data"), key);
        if (!cJSON_IsString(v))
            die("%s: no data.%s", subject, key);
        snprintf(out, outlen, "%s", v->valuestring);
    }
    cJSON_Delete(r.body);
}

static bool service_up(natsConnection *nc, const char *name)
{
    char subj[64];
    natsMsg *rep = NULL;
    snprintf(subj, sizeof(subj), "$SRV.PING.%s", name);
    for (int waited = 0; waited < 15000; waited += 100) {
        if (natsConnection_RequestString(&rep, nc, subj, "", 200) == NATS_OK) {
            natsMsg_Destroy(rep);
            return true;
        }
        sleep_ms(100);
    }
    return false;
}

/* ---- the measured run ---- */

typedef struct {
    natsConnection *nc;
    const char *user;
    const char *room;
    int level, idx;
    int64_t win_start, win_end; /* the measured window, monotonic ns */
    atomic_bool *stop;
    double *lat; /* ms of each send acknowledged inside the window */
    size_t n, cap;
    uint64_t errors; /* failed sends that ended inside the window */
} sender;

static void *sender_run(void *arg)
{
    sender *s = arg;
    char body[256], ref[48];
    for (uint64_t seq = 0; !atomic_load(s->stop); seq++) {
        snprintf(ref, sizeof(ref), "L%d-%d-%" PRIu64, s->level, s->idx, seq);
        snprintf(body, sizeof(body),
                 "{\"room_id\":\"%s\",\"content\":\"benchmark message %" PRIu64
                 " of sender %d\",\"client_ref\":\"%s\"}",
                 s->room, seq, s->idx, ref);
        int64_t t0 = now_ns();
        reply r = request(s->nc, "chat.messages.send", s->user, body, REQ_TIMEOUT_MS);
        int64_t t1 = now_ns();
        cJSON_Delete(r.body);
        if (t1 < s->win_start || t1 >= s->win_end)
            continue;
        if (r.status != 200) {
            s->errors++;
            continue;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->lat = realloc(s->lat, s->cap * sizeof(*s->lat));
            if (s->lat == NULL)
                abort();
        }
        s->lat[s->n++] = (double)(t1 - t0) / 1e6;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int senders;
    double per_s, p50, p99;
    uint64_t acked, errors;
    uint64_t commits, sends; /* from the service's stop line; 0 when absent */
} result;

static double percentile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Reads "commits=N sends=M" from the last line of the log that has them. */
static void read_commit_stats(const char *log, uint64_t *commits, uint64_t *sends)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    *commits = *sends = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        const char *c = strstr(line, "commits="), *s = strstr(line, " sends=");
        if (c != NULL && s != NULL) {
            *commits = strtoull(c + 8, NULL, 10);
            *sends = strtoull(s + 7, NULL, 10);
        }
    }
    if (f != NULL)
        fclose(f);
}

typedef struct {
    char nats_url[64];
    char room[64];
    char users[MAX_USERS][128];
    char *env[12];
    char vars[8][1200];
    natsConnection *pool[POOL_MAX];
} bench;

/* One level: a fresh messages process, senders threads for warmup + seconds,
 * then the process is stopped to read its committer's counters. */
static result run_level(bench *b, int senders, long batch_max, long seconds, long warmup_ms)
{
    static int runs;
    char name[32], batch[64], *argv[2];
    char path[1400];
    const char *build = getenv("BUILD");
    snprintf(path, sizeof(path), "%s/bin/messages", build ? build : "build");
    snprintf(name, sizeof(name), "messages-%d", ++runs);
    snprintf(batch, sizeof(batch), "NATTER_MESSAGES_BATCH_MAX=%ld", batch_max);
    char *env[16];
    size_t k = 0;
    for (; b->env[k] != NULL; k++)
        env[k] = b->env[k];
    env[k++] = batch;
    env[k] = NULL;
    argv[0] = path;
    argv[1] = NULL;
    proc msgs = spawn(name, argv, env);
    if (!service_up(b->pool[0], "messages"))
        die("messages did not start");

    atomic_bool halt = false;
    sender *s = calloc((size_t)senders, sizeof(*s));
    pthread_t *th = calloc((size_t)senders, sizeof(*th));
    if (s == NULL || th == NULL)
        abort();
    int64_t start = now_ns() + 50 * 1000000LL;
    for (int i = 0; i < senders; i++) {
        s[i].nc = b->pool[i % POOL_MAX];
        s[i].user = b->users[i];
        s[i].room = b->room;
        s[i].level = senders;
        s[i].idx = i;
        s[i].win_start = start + warmup_ms * 1000000LL;
        s[i].win_end = s[i].win_start + seconds * 1000000000LL;
        s[i].stop = &halt;
        if (pthread_create(&th[i], NULL, sender_run, &s[i]) != 0)
            die("pthread_create");
    }
    while (now_ns() < s[0].win_end)
        sleep_ms(20);
    atomic_store(&halt, true);
    for (int i = 0; i < senders; i++)
        pthread_join(th[i], NULL);
    stop(&msgs);

    result r = {.senders = senders};
    size_t n = 0;
    for (int i = 0; i < senders; i++) {
        n += s[i].n;
        r.errors += s[i].errors;
    }
    double *all = malloc((n + 1) * sizeof(*all));
    if (all == NULL)
        abort();
    size_t at = 0;
    for (int i = 0; i < senders; i++) {
        memcpy(all + at, s[i].lat, s[i].n * sizeof(*all));
        at += s[i].n;
        free(s[i].lat);
    }
    qsort(all, n, sizeof(*all), cmp_double);
    r.acked = n;
    r.per_s = (double)n / (double)seconds;
    r.p50 = percentile(all, n, 0.50);
    r.p99 = percentile(all, n, 0.99);
    read_commit_stats(msgs.log, &r.commits, &r.sends);
    free(all);
    free(s);
    free(th);
    return r;
}

static void set_var(bench *b, size_t i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_var(bench *b, size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->vars[i], sizeof(b->vars[i]), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(b->vars[i]))
        die("variable too long");
    b->env[i] = b->vars[i];
}

/* nats-server, auth and rooms in a fresh directory; users 0..nusers-1 all
 * members of one public room. */
static void setup(bench *b, proc *nats, proc *auth, proc *rooms, int nusers)
{
    char cwd[1024], portbuf[16], store[512];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/natter-bench-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        die("getcwd");
    int port = free_port();
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    snprintf(store, sizeof(store), "%s/nats", tmpdir);
    char *nargv[] = {"nats-server", "-a", "127.0.0.1", "-p", portbuf, "-js", "-sd", store, NULL};
    *nats = spawn("nats-server", nargv, NULL);
    snprintf(b->nats_url, sizeof(b->nats_url), "nats://127.0.0.1:%d", port);

    memset(b->env, 0, sizeof(b->env));
    set_var(b, 0, "NATS_URL=%s", b->nats_url);
    set_var(b, 1, "NATTER_DATA_DIR=%s/data", tmpdir);
    set_var(b, 2, "NATTER_MIGRATIONS_DIR=%s/schemas/migrations", cwd);
    /* The per-user limit is not what is measured. */
    set_var(b, 3, "NATTER_MESSAGES_RATE=1000000");
    set_var(b, 4, "NATTER_MESSAGES_BURST=1000000");
    /* Every sender may be in flight at once (the default is 64). */
    set_var(b, 5, "NATTER_MESSAGES_SEND_CONCURRENCY=%d", MAX_USERS);
    set_var(b, 6, "NATTER_LOG_LEVEL=info");

    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, b->nats_url);
    natsOptions_SetMaxPendingMsgs(o, 1 << 20);
    bool up = false;
    for (int waited = 0; waited < 10000 && !up; waited += 50) {
        up = natsConnection_Connect(&b->pool[0], o) == NATS_OK;
        if (!up)
            sleep_ms(50);
    }
    if (!up)
        die("nats-server did not start");
    for (int i = 1; i < POOL_MAX; i++)
        if (natsConnection_Connect(&b->pool[i], o) != NATS_OK)
            die("connect");
    natsOptions_Destroy(o);

    const char *build = getenv("BUILD");
    char apath[1200], rpath[1200];
    snprintf(apath, sizeof(apath), "%s/bin/auth", build ? build : "build");
    snprintf(rpath, sizeof(rpath), "%s/bin/rooms", build ? build : "build");
    char *aargv[] = {apath, NULL}, *rargv[] = {rpath, NULL};
    *auth = spawn("auth", aargv, b->env);
    *rooms = spawn("rooms", rargv, b->env);
    if (!service_up(b->pool[0], "auth") || !service_up(b->pool[0], "rooms"))
        die("auth or rooms did not start");

    for (int i = 0; i < nusers; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"username\":\"bench%03d\"}", i);
        must(b->pool[0], "chat.auth.dev.token", NULL, body, "user_id", b->users[i],
             sizeof(b->users[i]));
    }
    must(b->pool[0], "chat.rooms.create", b->users[0], "{\"name\":\"bench\"}", "id", b->room,
         sizeof(b->room));
    for (int i = 1; i < nusers; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"room_id\":\"%s\"}", b->room);
        must(b->pool[0], "chat.rooms.join", b->users[i], body, NULL, NULL, 0);
    }
}

static void teardown(bench *b, proc *nats, proc *auth, proc *rooms)
{
    for (int i = 0; i < POOL_MAX; i++) {
        natsConnection_Destroy(b->pool[i]);
        b->pool[i] = NULL;
    }
    stop(rooms);
    stop(auth);
    stop(nats);
    if (getenv("BENCH_KEEP") == NULL)
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "bench_send: logs kept in %s\n", tmpdir);
}

/* The 1-minute load average, so a table says how busy the machine was. */
static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* BENCH_SENDERS: comma-separated counts, "1,16,256" by default. */
static int parse_levels(int *levels)
{
    const char *v = getenv("BENCH_SENDERS");
    const char *p = v != NULL && v[0] != '\0' ? v : "1,16,256";
    int n = 0;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno != 0 || end == p || (*end != ',' && *end != '\0') || x < 1 || x > MAX_USERS ||
            n == MAX_LEVELS)
            die("BENCH_SENDERS: a list of up to %d counts from 1 to %d, got '%s'", MAX_LEVELS,
                MAX_USERS, p);
        levels[n++] = (int)x;
        if (*end == '\0')
            return n;
        p = end + 1;
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    long seconds = env_long("BENCH_SECONDS", 5, 1, 3600);
    long warmup = env_long("BENCH_WARMUP_MS", 1000, 0, 600000);
    int levels[MAX_LEVELS];
    int nlevels = parse_levels(levels);
    long batches[2] = {128, 1}; /* MSGS_BATCH_DEFAULT, then group commit off */
    int nbatches = 2;
    if (getenv("BENCH_BATCH_MAX") != NULL) {
        batches[0] = env_long("BENCH_BATCH_MAX", 128, 1, 1024);
        nbatches = 1;
    }
    int nusers = 1;
    for (int i = 0; i < nlevels; i++)
        nusers = levels[i] > nusers ? levels[i] : nusers;

    static bench b;
    for (int bi = 0; bi < nbatches; bi++) {
        proc nats, auth, rooms;
        setup(&b, &nats, &auth, &rooms, nusers);
        printf("\nchat.messages.send over NATS, NATTER_MESSAGES_BATCH_MAX=%ld (%s), %ld s per "
               "level after %ld ms warm-up, %d users in one room\n",
               batches[bi], batches[bi] == 1 ? "group commit off" : "group commit on", seconds,
               warmup, nusers);
        printf("(%ld CPUs, load average %.2f before the first level)\n",
               sysconf(_SC_NPROCESSORS_ONLN), load1());
        printf("%8s %12s %9s %9s %8s %13s\n", "senders", "acked/s", "p50 ms", "p99 ms", "errors",
               "sends/commit");
        fflush(stdout);
        for (int li = 0; li < nlevels; li++) {
            result r = run_level(&b, levels[li], batches[bi], seconds, warmup);
            char avg[32];
            if (r.commits > 0)
                snprintf(avg, sizeof(avg), "%.2f", (double)r.sends / (double)r.commits);
            else
                snprintf(avg, sizeof(avg), "n/a");
            printf("%8d %12.1f %9.2f %9.2f %8" PRIu64 " %13s\n", r.senders, r.per_s, r.p50, r.p99,
                   r.errors, avg);
            fflush(stdout);
        }
        teardown(&b, &nats, &auth, &rooms);
    }
    nats_Close();
    return 0;
}
