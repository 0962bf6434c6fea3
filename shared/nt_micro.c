/* The NATS micro discovery responses (ADR-32) as pure functions: PING, INFO
 * and STATS in the Go client's shapes, built with cJSON, and the per-endpoint
 * counters behind STATS. Integers are written as raw JSON so that large
 * nanosecond sums never turn into exponent notation that Go cannot read. */
#include "nt_micro.h"

#include "nt_clock.h"
#include "nt_id.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MICRO_TYPE_PING  "io.nats.micro.v1.ping_response"
#define MICRO_TYPE_INFO  "io.nats.micro.v1.info_response"
#define MICRO_TYPE_STATS "io.nats.micro.v1.stats_response"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void nt_micro_new_id(char out[NT_MICRO_ID_LEN])
{
    size_t n = 0;
    while (n < NT_MICRO_ID_LEN - 1) {
        unsigned char rnd[32];
        nt_random_bytes(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd) && n < NT_MICRO_ID_LEN - 1; i++) {
            /* 248 = 4 * 62: rejecting the rest keeps every character equally likely. */
            if (rnd[i] < 248)
                out[n++] = base62[rnd[i] % 62];
        }
    }
    out[NT_MICRO_ID_LEN - 1] = '\0';
}

void nt_micro_record(nt_micro_endpoint *ep, int64_t elapsed_ns, nt_status st, const char *message)
{
    NT_ASSERT(ep != NULL);
    ep->num_requests++;
    if (elapsed_ns > 0)
        ep->processing_ns += elapsed_ns;
    if (st != NT_OK) {
        ep->num_errors++;
        const char *text = (message != NULL && message[0] != '\0') ? message : nt_status_str(st);
        snprintf(ep->last_error, sizeof(ep->last_error), "%d:%s", nt_status_http(st), text);
    }
}

static void add_raw_u64(cJSON *obj, const char *key, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    NT_ASSERT(cJSON_AddRawToObject(obj, key, num) != NULL);
}

static void add_str(cJSON *obj, const char *key, const char *val)
{
    NT_ASSERT(cJSON_AddStringToObject(obj, key, val != NULL ? val : "") != NULL);
}

/* The fields every response carries. */
static cJSON *common(const nt_micro_info *info, const char *type)
{
    NT_ASSERT(info != NULL);
    cJSON *root = cJSON_CreateObject();
    NT_ASSERT(root != NULL);
    add_str(root, "type", type);
    add_str(root, "name", info->name);
    add_str(root, "id", info->id);
    add_str(root, "version", info->version);
    NT_ASSERT(cJSON_AddObjectToObject(root, "metadata") != NULL);
    return root;
}

static char *finish(cJSON *root)
{
    char *s = nt_json_print(root);
    cJSON_Delete(root);
    return s;
}

char *nt_micro_ping_json(const nt_micro_info *info)
{
    return finish(common(info, MICRO_TYPE_PING));
}

char *nt_micro_info_json(const nt_micro_info *info)
{
    cJSON *root = common(info, MICRO_TYPE_INFO);
    add_str(root, "description", info->description);
    cJSON *eps = cJSON_AddArrayToObject(root, "endpoints");
    NT_ASSERT(eps != NULL);
    for (size_t i = 0; i < info->nendpoints; i++) {
        const nt_micro_endpoint *ep = &info->endpoints[i];
        cJSON *e = cJSON_CreateObject();
        NT_ASSERT(e != NULL);
        add_str(e, "name", ep->name);
        add_str(e, "subject", ep->subject);
        add_str(e, "queue_group", ep->queue_group);
        NT_ASSERT(cJSON_AddObjectToObject(e, "metadata") != NULL);
        cJSON_AddItemToArray(eps, e);
    }
    return finish(root);
}

char *nt_micro_stats_json(const nt_micro_info *info)
{
    cJSON *root = common(info, MICRO_TYPE_STATS);
    char started[NT_ISO8601_LEN];
    nt_clock_iso8601(info->started_ms, started);
    add_str(root, "started", started);
    cJSON *eps = cJSON_AddArrayToObject(root, "endpoints");
    NT_ASSERT(eps != NULL);
    for (size_t i = 0; i < info->nendpoints; i++) {
        const nt_micro_endpoint *ep = &info->endpoints[i];
        cJSON *e = cJSON_CreateObject();
        NT_ASSERT(e != NULL);
        uint64_t total = ep->processing_ns > 0 ? (uint64_t)ep->processing_ns : 0;
        add_str(e, "name", ep->name);
        add_str(e, "subject", ep->subject);
        add_str(e, "queue_group", ep->queue_group);
        add_raw_u64(e, "num_requests", ep->num_requests);
        add_raw_u64(e, "num_errors", ep->num_errors);
        add_str(e, "last_error", ep->last_error);
        add_raw_u64(e, "processing_time", total);
        add_raw_u64(e, "average_processing_time",
                    ep->num_requests > 0 ? total / ep->num_requests : 0);
        cJSON_AddItemToArray(eps, e);
    }
    return finish(root);
}
