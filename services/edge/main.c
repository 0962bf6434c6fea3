/* edge: the WebSocket endpoint. Lifecycle only: configuration, the file
 * limit, NATS (pooled delivery: one subscription per joined room), the token
 * verifier, discovery, and the server; the work is in edge_server. */
#include "edge.h"
#include "edge_server.h"
#include "nt_http.h"
#include "nt_log.h"
#include "nt_nats.h"
#include "nt_tokens.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#define NATS_CONNECT_WAIT_MS 10000
#define NATS_DRAIN_MS        5000
#define FD_SPARE             256

/* Each socket is a file: raise the soft limit toward max_sockets, as far as
 * the hard limit allows, and say so when it falls short. */
static void raise_file_limit(int max_sockets)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_sockets + FD_SPARE;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)max_sockets + FD_SPARE)
        nt_log_warn("edge", "file limit below EDGE_MAX_SOCKETS limit=%llu",
                    (unsigned long long)rl.rlim_cur);
}

int main(void)
{
    int rc = 1;
    nt_nats *nc = NULL;
    nt_verifier *verifier = NULL;
    nt_service *svc = NULL;
    edge_server *srv = NULL;
    edge_opts opts;
    char err[512];

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    nt_config *cfg = nt_config_load_or_exit("edge", edge_config_specs, edge_config_nspecs);
    nt_log_level level;
    if (nt_log_level_parse(nt_config_str(cfg, "NATTER_LOG_LEVEL"), &level) != NT_OK) {
        fprintf(stderr, "edge: configuration error: NATTER_LOG_LEVEL: must be debug, info, "
                        "warn or error\n");
        nt_config_destroy(cfg);
        return 2;
    }
    if (edge_config_read(cfg, &opts, err, sizeof(err)) != NT_OK) {
        fprintf(stderr, "edge: configuration error: %s\n", err);
        nt_config_destroy(cfg);
        return 2;
    }
    nt_log_set_level(level);
    nt_config_log(cfg, "edge");
    raise_file_limit(opts.max_sockets);
    nt_http_global_init();

    /* One delivery thread for every subscription and reply: the service
     * thread then sees a join's grant and the room's later events in the
     * order they came off the wire. */
    if (nt_nats_connect_pooled(opts.nats_url, "edge", NATS_CONNECT_WAIT_MS, 1, &nc) != NT_OK) {
        nt_log_error("edge", "cannot connect to NATS");
        goto out;
    }
    if (nt_tokens_verifier_create(cfg, nc, &verifier) != NT_OK)
        goto out;
    /* Discovery only ($SRV.PING|INFO|STATS.edge): the edge serves no routes. */
    nt_service_def def = {.name = "edge",
                          .version = "0.1.0",
                          .description = "WebSocket edge: Phoenix Channels v2",
                          .routes = NULL,
                          .nroutes = 0};
    if (nt_service_start(nc, &def, &svc) != NT_OK)
        goto out;
    opts.instance_id = nt_service_id(svc);
    if (edge_server_start(&opts, nc, verifier, &srv) != NT_OK)
        goto out;
    nt_log_info("edge", "ready");

    int sig = 0;
    sigwait(&sigs, &sig);
    nt_log_info("edge", "stopping signal=%d", sig);
    rc = 0;
out:
    edge_server_stop(srv);
    if (!nt_service_stop(svc, NATS_DRAIN_MS))
        rc = 1;
    nt_verifier_destroy(verifier);
    if (nc != NULL)
        nt_nats_drain(nc, NATS_DRAIN_MS);
    nt_nats_destroy(nc);
    edge_server_free(srv);
    nt_config_destroy(cfg);
    nt_log_info("edge", "stopped rc=%d", rc);
    return rc;
}
