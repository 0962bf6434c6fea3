/* rooms: chat_rooms and room_members, roles, invitations and the one
 * authorisation table. Lifecycle only; the work is in the handlers. */
#include "rooms.h"

#include "nt_config.h"
#include "nt_log.h"
#include "nt_nats.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#define AUTH_TIMEOUT_MS     5000
#define MESSAGES_TIMEOUT_MS 2000
/* A members page waits this long for presence, then shows "online": null. */
#define PRESENCE_TIMEOUT_MS 1000

static const nt_cfg_spec specs[] = {
    NT_SERVICE_CONFIG_SPECS,
    {"NATTER_ROOMS_CONCURRENCY", NT_CFG_INT, "4", 1, 64, false, false,
     "requests of one rooms route handled at once per instance"},
    {"NATTER_ROOMS_CACHE_MAX_MEMBERS", NT_CFG_INT, "2000", 1, 5000, false, false,
     "rooms with more members are not kept in the authorisation cache"},
};

static nt_status publish(void *arg, const char *subject, const char *data, size_t len)
{
    return nt_nats_publish(arg, subject, data, len);
}

/* The authorisation cache over JetStream KV. */
static nt_status kv_put(void *kv, const char *key, const char *val, size_t len)
{
    return nt_kv_put(kv, key, val, len);
}

static nt_status kv_create(void *kv, const char *key, const char *val, size_t len)
{
    return nt_kv_create(kv, key, val, len);
}

static nt_status kv_get(void *kv, const char *key, char **val, size_t *len)
{
    return nt_kv_get(kv, key, val, len);
}

static nt_status kv_del(void *kv, const char *key)
{
    return nt_kv_delete(kv, key);
}

/* Asks auth for the caller's profile: auth creates it from Clerk when it can. */
static nt_status ensure_user(void *arg, const char *user_id, const char *request_id)
{
    nt_response r = {0};
    nt_status st = nt_nats_request(arg, "chat.auth.users.get", user_id, request_id, "{}", 2,
                                   AUTH_TIMEOUT_MS, &r);
    if (st == NT_OK && r.http != 200)
        st = r.http == 404 ? NT_ENOTFOUND : NT_EUNAVAIL;
    nt_response_free(&r);
    return st;
}

/* Asks messages for a room's latest messages, as the caller. */
static nt_status latest(void *arg, const char *user, const char *request_id, const char *room_id,
                        char **json_out, size_t *len)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"room_id\":\"%s\",\"limit\":%d}", room_id,
                     ROOMS_GET_MESSAGES);
    if (n < 0 || (size_t)n >= sizeof(body))
        return NT_EINVAL;
    nt_response r = {0};
    nt_status st = nt_nats_request(arg, "chat.messages.history", user, request_id, body, (size_t)n,
                                   MESSAGES_TIMEOUT_MS, &r);
    if (st == NT_OK) {
        *json_out = r.data;
        *len = r.len;
        r.data = NULL;
    }
    nt_response_free(&r);
    return st;
}

/* Asks presence which of a page's members are online, as the caller. */
static nt_status online(void *arg, const char *user, const char *request_id, const char *body,
                        size_t body_len, char **json_out, size_t *len)
{
    nt_response r = {0};
    nt_status st = nt_nats_request(arg, "chat.presence.online", user, request_id, body, body_len,
                                   PRESENCE_TIMEOUT_MS, &r);
    if (st == NT_OK) {
        *json_out = r.data;
        *len = r.len;
        r.data = NULL;
    }
    nt_response_free(&r);
    return st;
}

int main(void)
{
    int rc = 1;
    nt_store *store = NULL;
    nt_nats *nc = NULL;
    nt_kv *kv = NULL;
    nt_service *svc = NULL;
    char path[1024];

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    nt_config *cfg =
        nt_config_load_service_or_exit("rooms", specs, sizeof(specs) / sizeof(specs[0]));
    nt_config_log(cfg, "rooms");

    nt_config_db_path(cfg, path, sizeof(path));
    if (nt_store_open(path, nt_config_str(cfg, "NATTER_MIGRATIONS_DIR"), &store) != NT_OK)
        goto out;
    if (nt_nats_connect(nt_config_str(cfg, "NATS_URL"), "rooms", 10000, &nc) != NT_OK)
        goto out;
    if (nt_kv_open(nc, nt_config_str(cfg, "NATTER_KV_PREFIX"),
                   (int)nt_config_int(cfg, "NATTER_KV_REPLICAS"), &kv) != NT_OK)
        goto out;

    rooms_cache_ops cache = {kv_put, kv_create, kv_get, kv_del, kv};
    rooms_ctx ctx = {
        .store = store,
        .cache = &cache,
        .publish = publish,
        .publish_arg = nc,
        .ensure_user = ensure_user,
        .ensure_arg = nc,
        .cache_max = (size_t)nt_config_int(cfg, "NATTER_ROOMS_CACHE_MAX_MEMBERS"),
        .latest = latest,
        .latest_arg = nc,
        .online = online,
        .online_arg = nc,
    };
    nt_service_def def = {
        .name = "rooms",
        .version = "0.1.0",
        .description = "Natter rooms, members, roles and authorisation",
        .routes = rooms_routes,
        .nroutes = rooms_nroutes,
        .ctx = &ctx,
        .concurrency = (unsigned)nt_config_int(cfg, "NATTER_ROOMS_CONCURRENCY"),
    };
    if (nt_service_start(nc, &def, &svc) != NT_OK)
        goto out;
    nt_log_info("rooms", "ready id=%s", nt_service_id(svc));

    int sig = 0;
    sigwait(&sigs, &sig);
    nt_log_info("rooms", "stopping signal=%d", sig);
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
    nt_store_close(store);
    nt_config_destroy(cfg);
    return rc;
}
