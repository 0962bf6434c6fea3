/* Unit tests of the NATS micro discovery JSON and counters: every field of
 * PING, INFO and STATS is parsed back and checked, with no broker. */
#include "nt_clock.h"
#include "nt_micro.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse(char *json)
{
    cr_assert_not_null(json);
    cJSON *v = cJSON_Parse(json);
    cr_assert_not_null(v, "not JSON: %s", json);
    cr_assert(cJSON_IsObject(v));
    free(json);
    return v;
}

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "'%s' is not a string", key);
    return v->valuestring;
}

static double num_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "'%s' is not a number", key);
    return v->valuedouble;
}

static void check_empty_object(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsObject(v), "'%s' is not an object", key);
    cr_assert_null(v->child, "'%s' is not empty", key);
}

static void check_common(const cJSON *o, const char *type)
{
    cr_assert_str_eq(str_field(o, "type"), type);
    cr_assert_str_eq(str_field(o, "name"), "chat-rooms");
    cr_assert_str_eq(str_field(o, "id"), "ABCDEFGHIJKLMNOPQRSTUV");
    cr_assert_str_eq(str_field(o, "version"), "1.2.3");
    check_empty_object(o, "metadata");
}

static nt_micro_endpoint eps[2] = {
    {.name = "rooms_get", .subject = "chat.rooms.get", .queue_group = "rooms"},
    {.name = "rooms_create", .subject = "chat.rooms.create", .queue_group = "rooms"},
};

static nt_micro_info make_info(size_t n)
{
    nt_micro_info info = {
        .name = "chat-rooms",
        .id = "ABCDEFGHIJKLMNOPQRSTUV",
        .version = "1.2.3",
        .description = "rooms and members",
        .started_ms = 1714557600123LL, /* 2024-05-01T10:00:00.123Z */
        .endpoints = n ? eps : NULL,
        .nendpoints = n,
    };
    return info;
}

Test(nt_micro, ping_has_exactly_the_common_fields)
{
    nt_micro_info info = make_info(2);
    cJSON *o = parse(nt_micro_ping_json(&info));
    check_common(o, "io.nats.micro.v1.ping_response");
    cr_assert_eq(cJSON_GetArraySize(o), 5, "ping has only type, name, id, version, metadata");
    cJSON_Delete(o);
}

Test(nt_micro, info_lists_endpoints_with_subject_and_queue_group)
{
    nt_micro_info info = make_info(2);
    cJSON *o = parse(nt_micro_info_json(&info));
    check_common(o, "io.nats.micro.v1.info_response");
    cr_assert_str_eq(str_field(o, "description"), "rooms and members");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "endpoints");
    cr_assert(cJSON_IsArray(arr));
    cr_assert_eq(cJSON_GetArraySize(arr), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        cr_assert_str_eq(str_field(e, "name"), eps[i].name);
        cr_assert_str_eq(str_field(e, "subject"), eps[i].subject);
        cr_assert_str_eq(str_field(e, "queue_group"), "rooms");
        check_empty_object(e, "metadata");
        cr_assert_eq(cJSON_GetArraySize(e), 4);
    }
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "started"), "started is for STATS only");
    cJSON_Delete(o);
}

Test(nt_micro, info_has_empty_endpoint_array_and_description_when_none)
{
    nt_micro_info info = make_info(0);
    info.description = NULL;
    cJSON *o = parse(nt_micro_info_json(&info));
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "endpoints");
    cr_assert(cJSON_IsArray(arr), "endpoints must be [] and never null");
    cr_assert_eq(cJSON_GetArraySize(arr), 0);
    cr_assert_str_eq(str_field(o, "description"), "");
    cJSON_Delete(o);

    o = parse(nt_micro_stats_json(&info));
    arr = cJSON_GetObjectItemCaseSensitive(o, "endpoints");
    cr_assert(cJSON_IsArray(arr));
    cr_assert_eq(cJSON_GetArraySize(arr), 0);
    cJSON_Delete(o);
}

Test(nt_micro, stats_of_fresh_endpoints_are_zero)
{
    nt_micro_endpoint fresh[1] = {{.name = "a", .subject = "s.a", .queue_group = "q"}};
    nt_micro_info info = make_info(0);
    info.endpoints = fresh;
    info.nendpoints = 1;
    cJSON *o = parse(nt_micro_stats_json(&info));
    check_common(o, "io.nats.micro.v1.stats_response");
    cr_assert_str_eq(str_field(o, "started"), "2024-05-01T10:00:00.123Z");
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "endpoints"), 0);
    cr_assert_not_null(e);
    cr_assert_str_eq(str_field(e, "name"), "a");
    cr_assert_str_eq(str_field(e, "subject"), "s.a");
    cr_assert_str_eq(str_field(e, "queue_group"), "q");
    cr_assert_eq(num_field(e, "num_requests"), 0);
    cr_assert_eq(num_field(e, "num_errors"), 0);
    cr_assert_str_eq(str_field(e, "last_error"), "");
    cr_assert_eq(num_field(e, "processing_time"), 0);
    cr_assert_eq(num_field(e, "average_processing_time"), 0, "no division by zero");
    cr_assert_eq(cJSON_GetArraySize(e), 8);
    cJSON_Delete(o);
}

Test(nt_micro, record_counts_requests_errors_and_time)
{
    nt_micro_endpoint ep = {.name = "a", .subject = "s.a", .queue_group = "q"};
    nt_micro_record(&ep, 1000, NT_OK, NULL);
    nt_micro_record(&ep, 3000, NT_EINVAL, "bad thing");
    nt_micro_record(&ep, 2000, NT_OK, "ignored on success");
    cr_assert_eq(ep.num_requests, 3);
    cr_assert_eq(ep.num_errors, 1);
    cr_assert_eq(ep.processing_ns, 6000);
    cr_assert_str_eq(ep.last_error, "400:bad thing");

    nt_micro_record(&ep, 0, NT_ENOTFOUND, "");
    cr_assert_eq(ep.num_errors, 2);
    cr_assert_str_eq(ep.last_error, "404:not found", "an empty message uses the status text");
    nt_micro_record(&ep, -5, NT_OK, NULL);
    cr_assert_eq(ep.processing_ns, 6000, "a negative duration adds nothing");

    nt_micro_info info = make_info(0);
    info.endpoints = &ep;
    info.nendpoints = 1;
    cJSON *o = parse(nt_micro_stats_json(&info));
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "endpoints"), 0);
    cr_assert_eq(num_field(e, "num_requests"), 5);
    cr_assert_eq(num_field(e, "num_errors"), 2);
    cr_assert_str_eq(str_field(e, "last_error"), "404:not found");
    cr_assert_eq(num_field(e, "processing_time"), 6000);
    cr_assert_eq(num_field(e, "average_processing_time"), 1200);
    cJSON_Delete(o);
}

Test(nt_micro, last_error_is_capped_not_overflowed)
{
    nt_micro_endpoint ep = {.name = "a", .subject = "s.a", .queue_group = "q"};
    char big[NT_ERRMSG_LEN * 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    nt_micro_record(&ep, 1, NT_EINTERNAL, big);
    cr_assert_eq(strlen(ep.last_error), sizeof(ep.last_error) - 1);
    cr_assert_eq(strncmp(ep.last_error, "500:xxx", 7), 0);
}

Test(nt_micro, large_counters_are_plain_integers)
{
    nt_micro_endpoint ep = {.name = "a", .subject = "s.a", .queue_group = "q"};
    ep.num_requests = 3;
    ep.processing_ns = 9000000000000000000LL; /* past 2^53 and past %g precision */
    nt_micro_info info = make_info(0);
    info.endpoints = &ep;
    info.nendpoints = 1;
    char *json = nt_micro_stats_json(&info);
    cr_assert_not_null(strstr(json, "\"processing_time\":9000000000000000000"), "%s", json);
    cr_assert_not_null(strstr(json, "\"average_processing_time\":3000000000000000000"), "%s", json);
    cr_assert_null(strstr(json, "e+"), "no exponent notation: %s", json);
    free(json);
}

Test(nt_micro, strings_are_escaped)
{
    nt_micro_endpoint ep = {.name = "a\"b", .subject = "s.a", .queue_group = "q"};
    nt_micro_record(&ep, 1, NT_EINVAL, "quote \" and \n newline");
    nt_micro_info info = make_info(0);
    info.description = "with \"quotes\"";
    info.endpoints = &ep;
    info.nendpoints = 1;
    cJSON *o = parse(nt_micro_stats_json(&info));
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "endpoints"), 0);
    cr_assert_str_eq(str_field(e, "name"), "a\"b");
    cr_assert_str_eq(str_field(e, "last_error"), "400:quote \" and \n newline");
    cJSON_Delete(o);
    o = parse(nt_micro_info_json(&info));
    cr_assert_str_eq(str_field(o, "description"), "with \"quotes\"");
    cJSON_Delete(o);
}

static bool is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

Test(nt_micro, ids_are_22_base62_characters_and_distinct)
{
    enum { N = 200 };
    static char ids[N][NT_MICRO_ID_LEN];
    int seen[128] = {0};
    for (int i = 0; i < N; i++) {
        memset(ids[i], '#', NT_MICRO_ID_LEN);
        nt_micro_new_id(ids[i]);
        cr_assert_eq(strlen(ids[i]), 22, "id %s", ids[i]);
        for (int k = 0; k < 22; k++) {
            cr_assert(is_base62(ids[i][k]), "bad char in %s", ids[i]);
            seen[(int)ids[i][k]] = 1;
        }
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(ids[i], ids[j]);
    }
    int distinct = 0;
    for (int c = 0; c < 128; c++)
        distinct += seen[c];
    cr_assert_gt(distinct, 55, "4400 random characters should cover nearly all 62 (got %d)",
                 distinct);
}
