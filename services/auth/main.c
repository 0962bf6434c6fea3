/* auth: the users table, the session cache, Clerk profiles, and in local mode
 * the built-in token issuer and its JWKS. Lifecycle only; the work is in the
 * handlers. */
#include "auth.h"

#include "nt_config.h"
#include "nt_http.h"
#include "nt_log.h"
#include "nt_nats.h"
#include "nt_tokens.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

static const nt_cfg_spec specs[] = {
    NT_SERVICE_CONFIG_SPECS,
    {"NATTER_TOKEN_TTL_S", NT_CFG_INT, "3600", 60, 86400, false, false,
     "lifetime of local development tokens"},
    {"NATTER_LOCAL_AZP", NT_CFG_STR, "http://localhost:8080", 0, 0, false, false,
     "azp claim of local development tokens"},
    {"CLERK_API_URL", NT_CFG_STR, "https://api.clerk.com", 0, 0, false, false,
     "Clerk Backend API base URL"},
    NT_TOKEN_CONFIG_SPECS,
};

int main(void)
{
    int rc = 1;
    nt_store *store = NULL;
    nt_nats *nc = NULL;
    nt_kv *kv = NULL;
    auth_issuer *issuer = NULL;
    nt_service *svc = NULL;
    char path[1024], err[256];

    /* Signals are taken by sigwait below, never by a handler on a random
     * thread; blocked first, so a SIGTERM during start-up waits for it. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    nt_config *cfg =
        nt_config_load_service_or_exit("auth", specs, sizeof(specs) / sizeof(specs[0]));
    if (nt_tokens_check_config(cfg, err, sizeof(err)) != NT_OK) {
        fprintf(stderr, "auth: configuration error: %s\n", err);
        nt_config_destroy(cfg);
        return 2;
    }
    nt_config_log(cfg, "auth");

    nt_http_global_init();

    const char *data_dir = nt_config_str(cfg, "NATTER_DATA_DIR");
    nt_config_db_path(cfg, path, sizeof(path));
    if (nt_store_open(path, nt_config_str(cfg, "NATTER_MIGRATIONS_DIR"), &store) != NT_OK)
        goto out;
    if (nt_nats_connect(nt_config_str(cfg, "NATS_URL"), "auth", 10000, &nc) != NT_OK)
        goto out;
    if (nt_kv_open(nc, nt_config_str(cfg, "NATTER_KV_PREFIX"),
                   (int)nt_config_int(cfg, "NATTER_KV_REPLICAS"), &kv) != NT_OK)
        goto out;

    bool clerk = nt_tokens_clerk_mode(cfg);
    nt_log_info("auth", "mode=%s profiles=%s", clerk ? "clerk" : "local",
                nt_config_is_set(cfg, "CLERK_SECRET_KEY") ? "clerk-api" : "request-body");
    if (!clerk) {
        char key[1024];
        snprintf(key, sizeof(key), "%s/auth/local-jwt-key.pem", data_dir);
        if (auth_issuer_create(key, nt_config_str(cfg, "NATTER_LOCAL_ISSUER"),
                               nt_config_str(cfg, "NATTER_LOCAL_AZP"),
                               nt_config_int(cfg, "NATTER_TOKEN_TTL_S"), &issuer) != NT_OK)
            goto out;
    }

    auth_ctx ctx = {
        .store = store,
        .kv = kv,
        .issuer = issuer,
        .clerk_secret = nt_config_str(cfg, "CLERK_SECRET_KEY"),
        .clerk_api_url = nt_config_str(cfg, "CLERK_API_URL"),
    };
    /* Clerk calls can take seconds: several requests of a route run at once. */
    nt_service_def def = {
        .name = "auth",
        .version = "0.1.0",
        .description = "Natter users, sessions and tokens",
        .routes = auth_routes,
        .nroutes = auth_nroutes,
        .ctx = &ctx,
        .concurrency = 8,
    };
    if (nt_service_start(nc, &def, &svc) != NT_OK)
        goto out;
    nt_log_info("auth", "ready id=%s", nt_service_id(svc));

    int sig = 0;
    sigwait(&sigs, &sig);
    nt_log_info("auth", "stopping signal=%d", sig);
    rc = 0;
out:
    /* Handlers still running after the drain use everything below: leave it
     * all to the process's exit rather than free it under them. */
    if (!nt_service_stop(svc, 5000))
        return 1;
    nt_kv_close(kv);
    if (nc != NULL)
        nt_nats_drain(nc, 5000);
    nt_nats_destroy(nc);
    auth_issuer_destroy(issuer);
    nt_store_close(store);
    nt_config_destroy(cfg);
    return rc;
}
