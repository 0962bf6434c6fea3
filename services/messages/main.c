/* messages: send, history, edit and delete, with per-user send limits and a
 * group committer. Lifecycle only; the work is in the handlers and the
 * committer. */
#include "msgs.h"

#include "nt_config.h"
#include "nt_log.h"
#include "nt_nats.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD                  "messages"
#define AUTHORIZE_TIMEOUT_MS 2000
#define RATE_KEYS_MAX        100000

static const nt_cfg_spec specs[] = {
    NT_SERVICE_CONFIG_SPECS,
    {"NATTER_MESSAGES_CONCURRENCY", NT_CFG_INT, "4", 1, 64, false, false,
     "history, edit and delete requests handled at once per instance"},
    {"NATTER_MESSAGES_SEND_CONCURRENCY", NT_CFG_INT, "64", 1, 256, false, false,
     "sends in flight per instance (they wait for their group commit)"},
    {"NATTER_MESSAGES_BATCH_MAX", NT_CFG_INT, "128", 1, 1024, false, false,
     "most sends committed in one transaction; 1 turns group commit off"},
    {"NATTER_MESSAGES_RATE", NT_CFG_INT, "5", 1, 1000000, false, false,
     "sends per second per user, per instance"},
    {"NATTER_MESSAGES_BURST", NT_CFG_INT, "10", 1, 1000000, false, false,
     "sends a user may make at once"},
};

static nt_status publish(void *arg, const char *subject, const char *data, size_t len)
{
    return nt_nats_publish(arg, subject, data, len);
}

/* Asks rooms over chat.rooms.authorize, as the caller. */
static nt_status authorize(void *arg, const char *user, const char *request_id, const char *room_id,
                           const char *action, char *msg, size_t msglen)
{
    nt_response r = {0};
    char *body = msgs_authorize_body(room_id, action);
    nt_status sent = nt_nats_request(arg, "chat.rooms.authorize", user, request_id, body,
                                     strlen(body), AUTHORIZE_TIMEOUT_MS, &r);
    free(body);
    /* rooms' refusals keep their status and message; anything else means
     * rooms could not answer. */
    nt_status st = NT_EUNAVAIL;
    if (sent == NT_OK && r.http == 200)
        st = NT_OK;
    else if (sent == NT_OK && (r.http == 403 || r.http == 404 || r.http == 400))
        st = nt_status_from_http(r.http);
    if (st != NT_OK && st != NT_EUNAVAIL)
        msgs_reply_error_message(r.data, r.len, msg, msglen);
    else if (st == NT_EUNAVAIL)
        nt_log_warn(MOD, "rooms did not answer authorize room=%s err=\"%s\" http=%d", room_id,
                    nt_status_str(sent), r.http);
    nt_response_free(&r);
    return st;
}

int main(void)
{
    int rc = 1;
    nt_store *store = NULL;
    nt_nats *nc = NULL;
    msgs_committer *committer = NULL;
    nt_ratelimit *limit = NULL;
    nt_service *svc = NULL;
    char path[1024];

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    nt_config *cfg = nt_config_load_service_or_exit(MOD, specs, sizeof(specs) / sizeof(specs[0]));
    nt_config_log(cfg, MOD);

    nt_config_db_path(cfg, path, sizeof(path));
    if (nt_store_open(path, nt_config_str(cfg, "NATTER_MIGRATIONS_DIR"), &store) != NT_OK)
        goto out;
    if (nt_nats_connect(nt_config_str(cfg, "NATS_URL"), MOD, 10000, &nc) != NT_OK)
        goto out;
    if (msgs_committer_create(store, (size_t)nt_config_int(cfg, "NATTER_MESSAGES_BATCH_MAX"),
                              publish, nc, &committer) != NT_OK)
        goto out;
    if (nt_ratelimit_create((double)nt_config_int(cfg, "NATTER_MESSAGES_RATE"),
                            (double)nt_config_int(cfg, "NATTER_MESSAGES_BURST"), RATE_KEYS_MAX,
                            &limit) != NT_OK)
        goto out;

    msgs_ctx ctx = {
        .store = store,
        .committer = committer,
        .send_limit = limit,
        .authorize = authorize,
        .authorize_arg = nc,
        .publish = publish,
        .publish_arg = nc,
    };
    /* Sends wait for their group commit, so many may be in flight at once. */
    nt_route routes[MSGS_NROUTES];
    memcpy(routes, msgs_routes, sizeof(routes));
    for (size_t i = 0; i < MSGS_NROUTES; i++) {
        if (strcmp(routes[i].name, "send") == 0)
            routes[i].concurrency =
                (unsigned)nt_config_int(cfg, "NATTER_MESSAGES_SEND_CONCURRENCY");
    }
    nt_service_def def = {
        .name = MOD,
        .version = "0.1.0",
        .description = "Natter messages: send, history, edit and delete",
        .routes = routes,
        .nroutes = MSGS_NROUTES,
        .ctx = &ctx,
        .concurrency = (unsigned)nt_config_int(cfg, "NATTER_MESSAGES_CONCURRENCY"),
    };
    if (nt_service_start(nc, &def, &svc) != NT_OK)
        goto out;
    nt_log_info(MOD, "ready id=%s", nt_service_id(svc));

    int sig = 0;
    sigwait(&sigs, &sig);
    nt_log_info(MOD, "stopping signal=%d", sig);
    rc = 0;
out:
    /* In-flight sends finish (the service drains), then the committer
     * commits what is queued, then NATS flushes the last events. */
    if (!nt_service_stop(svc, 5000))
        return 1; /* handlers still run and use all below: leave it to the exit */
    if (committer != NULL) {
        uint64_t commits = 0, sends = 0;
        msgs_committer_stats(committer, &commits, &sends);
        nt_log_info(MOD, "committer stopped commits=%llu sends=%llu", (unsigned long long)commits,
                    (unsigned long long)sends);
    }
    msgs_committer_destroy(committer);
    nt_ratelimit_destroy(limit);
    if (nc != NULL)
        nt_nats_drain(nc, 5000);
    nt_nats_destroy(nc);
    nt_store_close(store);
    nt_config_destroy(cfg);
    return rc;
}
