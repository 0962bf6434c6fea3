/* gateway: the REST API. Lifecycle only: configuration, NATS, the token
 * verifier and the HTTP server; the work is in gw_server and its modules. */
#include "gw_config.h"
#include "gw_server.h"
#include "nt_http.h"
#include "nt_log.h"
#include "nt_nats.h"
#include "nt_tokens.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#define NATS_CONNECT_WAIT_MS 10000
#define HTTP_DRAIN_MS        5000
#define NATS_DRAIN_MS        5000

int main(void)
{
    int rc = 1;
    nt_nats *nc = NULL;
    nt_verifier *verifier = NULL;
    gw_server *srv = NULL;
    gw_opts opts;
    char err[512];

    /* Signals are taken by sigwait below, never by a handler on a random
     * thread; block them first, so every thread inherits the mask and a
     * SIGTERM during start-up is handled once we are up. A client closing
     * early must not kill us either. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    nt_config *cfg = nt_config_load_or_exit("gateway", gw_config_specs, gw_config_nspecs);
    if (gw_config_read(cfg, &opts, err, sizeof(err)) != NT_OK) {
        fprintf(stderr, "gateway: configuration error: %s\n", err);
        nt_config_destroy(cfg);
        return 2;
    }
    nt_log_set_level(opts.log_level);
    nt_config_log(cfg, "gateway");

    nt_http_global_init();

    if (nt_nats_connect(opts.nats_url, "gateway", NATS_CONNECT_WAIT_MS, &nc) != NT_OK) {
        nt_log_error("gateway", "cannot connect to NATS");
        goto out;
    }
    if (nt_tokens_verifier_create(cfg, nc, &verifier) != NT_OK)
        goto out;
    if (gw_server_start(&opts, nc, verifier, nt_tokens_clerk_mode(cfg), &srv) != NT_OK)
        goto out;
    nt_log_info("gateway", "ready");

    int sig = 0;
    sigwait(&sigs, &sig);
    nt_log_info("gateway", "stopping signal=%d", sig);
    rc = 0;
out:
    gw_server_stop(srv, HTTP_DRAIN_MS);
    nt_verifier_destroy(verifier);
    if (nc != NULL)
        nt_nats_drain(nc, NATS_DRAIN_MS);
    nt_nats_destroy(nc);
    nt_config_destroy(cfg);
    nt_log_info("gateway", "stopped rc=%d", rc);
    return rc;
}
