/* What the REST flow tests of the services share: users of a stack with
 * their tokens, calls that assert their status, and checks on JSON fields.
 * Every check fails the current Criterion test with a message naming what
 * was wrong. */
#ifndef FLOW_H
#define FLOW_H

#include "harness.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* A user of a stack: its username, id and a token (owned). */
typedef struct {
    char name[64];
    char id[128];
    char *tok;
} h_user;

/* Mints a token for username name on s (POST /api/dev/token). */
void h_user_make(const h_stack *s, h_user *u, const char *name);
void h_user_free(h_user *u);

/* h_stack_start(s, extra), then h_user_make for each (h_user *, name) pair
 * that follows, ending with NULL. */
void h_users_start(h_stack *s, const char *const *extra, ...);

/* h_user_free for each user given, ending with NULL. */
void h_users_free(h_user *u, ...);

/* snprintf into out, asserting that it fits; returns out. */
const char *h_fmt(char *out, size_t outlen, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

/* method path on s as tok's user (NULL: no token); asserts the status and
 * returns the whole parsed body (the caller deletes it). */
cJSON *h_call(const h_stack *s, const char *method, const char *path, const char *tok,
              const char *body, long want);

/* A 200 exchange; returns its "data" (the caller deletes it). */
cJSON *h_ok(const h_stack *s, const char *method, const char *path, const char *tok,
            const char *body);

/* A refused exchange: status, error code and (when needle is non-NULL) a
 * piece of the message. h_refused_body returns the raw body (the caller
 * frees). */
char *h_refused_body(const h_stack *s, const char *method, const char *path, const char *tok,
                     const char *body, long want, const char *code, const char *needle);
void h_refused(const h_stack *s, const char *method, const char *path, const char *tok,
               const char *body, long want, const char *code, const char *needle);

/* o[key], asserting it is there. */
const cJSON *h_field(const cJSON *o, const char *key);
/* o[key] is the string want (NULL: JSON null). */
void h_expect_str(const cJSON *o, const char *key, const char *want);
/* o[key] as a string, asserting it is one. */
const char *h_get_str(const cJSON *o, const char *key);
void h_expect_bool(const cJSON *o, const char *key, bool want);
/* o[key] is an RFC 3339 time with milliseconds, in UTC. */
void h_expect_time(const cJSON *o, const char *key);

#endif
