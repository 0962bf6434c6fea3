/* The integration-test harness: real processes on loopback. It starts a real
 * nats-server with JetStream on a free port in a temporary directory, starts
 * the real service binaries with a chosen environment, and speaks HTTP to
 * them with libcurl. Every process it starts is killed at h_stop_all(). */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A process started by the harness. */
typedef struct {
    pid_t pid;
    char name[64];
    char log_path[512]; /* its stdout and stderr */
} h_proc;

/* A fresh temporary directory (removed by h_stop_all). */
const char *h_tmpdir(void);

/* A TCP port that was free a moment ago on 127.0.0.1. */
int h_free_port(void);

/* Waits until something accepts TCP on 127.0.0.1:port; false after timeout_ms. */
bool h_wait_port(int port, int timeout_ms);

/* Starts nats-server with JetStream under h_tmpdir()/nats on a free port and
 * waits until it accepts connections. Returns the URL "nats://127.0.0.1:N". */
const char *h_nats_start(void);
/* The nats-server process (for killing it). */
h_proc *h_nats_proc(void);

/* Starts build/bin/<name> (BUILD env var overrides "build") with the current
 * environment plus env (NULL-terminated "K=V" strings). Its output goes to a
 * log file in the temp dir. Does not wait for readiness. */
h_proc *h_spawn(const char *name, const char *const *env);

/* Sends sig and waits for the process to exit (up to 10 s, then SIGKILL).
 * Returns the exit status as from waitpid, or -1. */
int h_kill(h_proc *p, int sig);

/* Sends sig to every running process named name and waits for each; returns
 * how many there were. */
int h_kill_by_name(const char *name, int sig);

/* True while the process runs. */
bool h_alive(h_proc *p);

/* Kills everything still running and removes the temp dir. Call in .fini. */
void h_stop_all(void);

/* Prints the tail of every process log to stderr (call when a test fails). */
void h_dump_logs(void);

/* One HTTP exchange. */
typedef struct {
    long status; /* 0 when the request failed at transport level */
    char *body;  /* NUL-terminated, owned */
    size_t len;
    char headers[4096]; /* the raw response headers */
    double seconds;     /* total time */
} h_http;

/* Sends method url with optional headers (NULL-terminated "K: V") and body.
 * Times out after 15 s. Free with h_http_free. */
h_http h_request(const char *method, const char *url, const char *const *headers, const char *body,
                 size_t body_len);
void h_http_free(h_http *r);

/* The value of a response header (case-insensitive name), copied into out;
 * false when absent. */
bool h_header(const h_http *r, const char *name, char *out, size_t outlen);

/* Polls GET url until it answers want_status; false after timeout_ms. */
bool h_wait_http(const char *url, long want_status, int timeout_ms);

/* A whole local stack: nats-server, then auth and gateway with the usual
 * environment (data and migrations under the temp dir and the repo). */
typedef struct {
    char base[128]; /* "http://127.0.0.1:<gateway port>" */
    char nats_url[128];
    const char *env[16]; /* NULL-terminated "K=V" list for h_spawn */
    char vars[4][1200];  /* storage behind env */
} h_stack;

/* Starts nats-server and fills s (extra "K=V" entries, NULL-terminated,
 * are appended to the environment; they must outlive s). Starts no service. */
void h_stack_env(h_stack *s, const char *const *extra);

/* h_stack_env, then auth, rooms, messages, presence and gateway, and waits
 * until /readyz answers 200 and rooms, messages and presence answer $SRV.PING. */
void h_stack_start(h_stack *s, const char *const *extra);

/* Polls $SRV.PING.<name> on the NATS server at url until an instance
 * answers; false after timeout_ms. */
bool h_wait_service(const char *url, const char *name, int timeout_ms);

/* method path (relative to s->base) with a JSON content type, an optional
 * bearer token and an optional body. */
h_http h_api(const h_stack *s, const char *method, const char *path, const char *token,
             const char *body);

/* POST /api/dev/token for username; returns the token (malloc'd) and, when
 * user_id_out is non-NULL, the user id. Asserts on failure. */
char *h_dev_token(const h_stack *s, const char *username, char *user_id_out, size_t outlen);

/* Copies data.<key> of a success body (a string, or "null") into out; asserts. */
void h_data_str(const h_http *r, const char *key, char *out, size_t outlen);

/* Asserts that r's body is an error envelope with error.code == want. */
void h_error_code(const h_http *r, const char *want);

/* The repository root (where tests run from), for paths like schemas/migrations. */
const char *h_root(void);

#endif
