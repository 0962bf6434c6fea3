/* Route dispatch and the reply envelope: the one place that writes
 * {"data":...} and {"error":{"code","message"}}. */
#include "nt_route.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

nt_status nt_reply_fail(nt_reply *rep, nt_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->message, sizeof(rep->message), fmt, ap);
    va_end(ap);
    nt_utf8_sanitize(rep->message);
    return st;
}

void nt_reply_set(nt_reply *rep, cJSON *data)
{
    if (rep->data != NULL && rep->data != data)
        cJSON_Delete(rep->data);
    rep->data = data;
}

void nt_reply_clear(nt_reply *rep)
{
    cJSON_Delete(rep->data);
    rep->data = NULL;
    rep->message[0] = '\0';
    rep->retry_after_ms = 0;
}

const nt_route *nt_route_find(const nt_route *routes, size_t n, const char *subject)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].subject, subject) == 0)
            return &routes[i];
    }
    return NULL;
}

void nt_envelope_error(nt_buf *out, nt_status st, const char *message, long long retry_after_ms)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    NT_ASSERT(root != NULL && err != NULL);
    char text[NT_ERRMSG_LEN];
    snprintf(text, sizeof(text), "%s",
             (message != NULL && message[0]) ? message : nt_status_str(st));
    nt_utf8_sanitize(text);
    cJSON_AddStringToObject(err, "code", nt_status_code(st));
    cJSON_AddStringToObject(err, "message", text);
    if (retry_after_ms > 0)
        cJSON_AddNumberToObject(err, "retry_after_ms", (double)retry_after_ms);
    char *s = nt_json_print(root);
    cJSON_Delete(root);
    /* The envelope buffer is ours and uncapped in practice; a failure is a bug. */
    NT_ASSERT(nt_buf_append_str(out, s) == NT_OK);
    free(s);
}

nt_status nt_route_dispatch(const nt_route *route, void *ctx, const nt_request *req, nt_reply *rep,
                            nt_buf *out)
{
    nt_status st;
    if (req->len > route->max_body) {
        st = nt_reply_fail(rep, NT_ETOOBIG, "request body is %zu bytes; the limit is %zu", req->len,
                           route->max_body);
    } else if (route->needs_user && (req->user == NULL || req->user[0] == '\0')) {
        st = nt_reply_fail(rep, NT_EUNAUTH, "missing %s header", NT_HDR_USER);
    } else {
        st = route->handler(ctx, req, rep);
    }
    if (st == NT_OK) {
        char *data = rep->data != NULL ? nt_json_print(rep->data) : NULL;
        NT_ASSERT(nt_buf_append_str(out, "{\"data\":") == NT_OK);
        NT_ASSERT(nt_buf_append_str(out, data != NULL ? data : "{}") == NT_OK);
        NT_ASSERT(nt_buf_append_str(out, "}") == NT_OK);
        free(data);
    } else {
        if (rep->message[0] == '\0')
            snprintf(rep->message, sizeof(rep->message), "%s", nt_status_str(st));
        /* Handlers may cut a message mid-character; headers and bodies need UTF-8. */
        nt_utf8_sanitize(rep->message);
        nt_envelope_error(out, st, rep->message, rep->retry_after_ms);
    }
    return st;
}
