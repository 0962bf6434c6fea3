/* presence: who is online across every edge and who is in each room, merged
 * from the edges' reports. Lifecycle only: the state is in presence_state,
 * the entry points in presence_handlers, the threads in presence_worker. */
#include "presence.h"

#include "nt_clock.h"
#include "nt_config.h"
#include "nt_log.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "presence"

static const nt_cfg_spec specs[] = {
    NT_SERVICE_CONFIG_SPECS,
    {"NATTER_PRESENCE_EDGE_TIMEOUT_MS", NT_CFG_INT, "30000", 2000, 60000, false, false,
     "an edge not heard for this long is dead: its users go offline within this plus 1 s"},
    {"NATTER_PRESENCE_WARMUP_MS", NT_CFG_INT, "15000", 0, 300000, false, false,
     "after a start, users KV says online that no edge reports by then go offline"},
    {"NATTER_PRESENCE_REFRESH_MS", NT_CFG_INT, "60000", 1000, 240000, false, false,
     "how often presence:{user} of online users is rewritten (its TTL is 300 s)"},
};

static void on_report(void *ctx, uint64_t tag, const nt_msg *m)
{
    (void)tag;
    presence_on_report(ctx, m->data, m->len);
}

/* Seeds the state with what KV says of every user (the online flag and last
 * seen), for chat.presence.online and the warm-up check. Claims share the
 * bucket; their keys have a dot and are skipped. */
static void load_kv(nt_kv *kv, presence_ctx *ctx)
{
    char **keys = NULL;
    size_t n = 0, loaded = 0;
    if (nt_kv_keys(kv, NT_KV_PRESENCE, &keys, &n) != NT_OK) {
        nt_log_warn(MOD, "kv keys unavailable: starting without last_seen");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!presence_id_valid(keys[i]))
            continue;
        char key[PRESENCE_ID_MAX + 16], *val = NULL, seen[PRESENCE_TIME_LEN];
        size_t len = 0;
        bool online = false;
        snprintf(key, sizeof(key), "presence:%s", keys[i]);
        if (nt_kv_get(kv, key, &val, &len) == NT_OK &&
            presence_kv_value_parse(val, len, &online, seen) == NT_OK) {
            pthread_mutex_lock(&ctx->mu);
            presence_state_seed(ctx->state, keys[i], online, seen);
            pthread_mutex_unlock(&ctx->mu);
            loaded++;
        }
        free(val);
    }
    nt_kv_keys_free(keys, n);
    nt_log_info(MOD, "kv loaded users=%zu", loaded);
}

int main(void)
{
    int rc = 1;
    nt_nats *nc = NULL;
    nt_kv *kv = NULL;
    nt_service *svc = NULL;
    nt_sub *sub = NULL;
    presence_worker *worker = NULL;
    presence_sweeper *sweeper = NULL;
    presence_ctx ctx = {.state = presence_state_create()};
    pthread_mutex_init(&ctx.mu, NULL);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    nt_config *cfg = nt_config_load_service_or_exit(MOD, specs, sizeof(specs) / sizeof(specs[0]));
    nt_config_log(cfg, MOD);

    /* One delivery thread for reports and requests: a get is answered after
     * every report delivered before it. */
    if (nt_nats_connect_pooled(nt_config_str(cfg, "NATS_URL"), MOD, 10000, 1, &nc) != NT_OK)
        goto out;
    /* After a reconnect or a slow-consumer drop reports may be lost: the
     * sweeper resyncs (nothing runs before the sweeper starts: the start-up
     * resync covers that). */
    nt_nats_on_gap(nc, presence_on_gap, &ctx);
    if (nt_kv_open(nc, nt_config_str(cfg, "NATTER_KV_PREFIX"),
                   (int)nt_config_int(cfg, "NATTER_KV_REPLICAS"), &kv) != NT_OK)
        goto out;
    if (presence_worker_start(nc, kv, &ctx, nt_config_int(cfg, "NATTER_PRESENCE_REFRESH_MS"),
                              &worker) != NT_OK)
        goto out;
    ctx.handoff = presence_worker_push;
    ctx.handoff_arg = worker;
    if (nt_nats_subscribe(nc, "chat.presence.report", on_report, &ctx, 0, &sub) != NT_OK)
        goto out;
    load_kv(kv, &ctx);
    nt_service_def def = {
        .name = MOD,
        .version = "0.1.0",
        .description = "Natter presence: online users and room presence",
        .routes = presence_routes,
        .nroutes = presence_nroutes,
        .ctx = &ctx,
        .concurrency = 1,
    };
    if (nt_service_start(nc, &def, &svc) != NT_OK)
        goto out;
    /* Every edge answers with a snapshot at once; the warm-up starts now. */
    if (nt_nats_publish(nc, "chat.presence.resync", "{}", 2) != NT_OK)
        nt_log_warn(MOD, "resync publish failed: waiting for the edges' periodic snapshots");
    if (presence_sweeper_start(&ctx, worker, nc,
                               nt_config_int(cfg, "NATTER_PRESENCE_EDGE_TIMEOUT_MS"),
                               nt_config_int(cfg, "NATTER_PRESENCE_WARMUP_MS"), &sweeper) != NT_OK)
        goto out;
    nt_log_info(MOD, "ready id=%s", nt_service_id(svc));

    int sig = 0;
    sigwait(&sigs, &sig);
    nt_log_info(MOD,
                "stopping signal=%d reports=%llu bad_reports=%llu stale_reports=%llu "
                "bad_entries=%llu dropped_joins=%llu dropped_reports=%llu",
                sig, (unsigned long long)atomic_load(&ctx.reports),
                (unsigned long long)atomic_load(&ctx.bad_reports),
                (unsigned long long)atomic_load(&ctx.stale_reports),
                (unsigned long long)atomic_load(&ctx.bad_entries),
                (unsigned long long)atomic_load(&ctx.dropped_joins),
                (unsigned long long)atomic_load(&ctx.dropped_reports));
    rc = 0;
out:
    presence_sweeper_stop(sweeper);
    /* Handlers still running after the drain use everything below: leave it
     * all to the process's exit rather than free it under them. */
    if (!nt_service_stop(svc, 5000))
        return 1;
    nt_sub_destroy(sub);
    /* The drain waits for the last report callback, which may still hand
     * off to the worker; the worker's own calls then fail fast. */
    if (nc != NULL)
        nt_nats_drain(nc, 5000);
    presence_worker_stop(worker);
    nt_kv_close(kv);
    nt_nats_destroy(nc);
    presence_state_destroy(ctx.state);
    pthread_mutex_destroy(&ctx.mu);
    nt_config_destroy(cfg);
    return rc;
}
