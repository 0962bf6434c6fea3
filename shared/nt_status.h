/* The one status enum of the project, and the one table that maps each status
 * to its wire code ("not_found") and its HTTP status. Library codes (nats.c,
 * MHD, lws, SQLite, curl) are converted at their adapter and never leak past it. */
#ifndef NT_STATUS_H
#define NT_STATUS_H

#include <stdio.h>
#include <stdlib.h>

typedef enum {
    NT_OK = 0,
    NT_EINVAL,     /* bad input: 400 invalid_request */
    NT_EUNAUTH,    /* missing or bad credentials: 401 unauthorized */
    NT_EFORBIDDEN, /* authenticated but not allowed: 403 forbidden */
    NT_ENOTFOUND,  /* 404 not_found */
    NT_EMETHOD,    /* the resource exists, not with this method: 405 method_not_allowed */
    NT_ECONFLICT,  /* 409 conflict */
    NT_ETOOBIG,    /* a configured limit was exceeded: 413 too_large */
    NT_ERATE,      /* rate limited: 429 rate_limited */
    NT_EINTERNAL,  /* a bug or an unexpected library failure: 500 internal */
    NT_EUNAVAIL,   /* a dependency is down or nobody answers: 503 unavailable */
    NT_ETIMEOUT,   /* a dependency did not answer in time: 504 timeout */
    NT__COUNT
} nt_status;

/* Human text for logs ("not found"). Never NULL. Thread-safe. */
const char *nt_status_str(nt_status st);

/* The wire code used in {"error":{"code":...}} ("not_found"). Never NULL. */
const char *nt_status_code(nt_status st);

/* The HTTP status for st (NT_OK is 200). */
int nt_status_http(nt_status st);

/* The status whose wire code is code; NT_EINTERNAL for an unknown code. */
nt_status nt_status_from_code(const char *code);

/* The status for an HTTP-style code, as carried by Nats-Service-Error-Code;
 * 2xx is NT_OK, unknown 4xx is NT_EINVAL, unknown 5xx is NT_EINTERNAL. */
nt_status nt_status_from_http(int http);

/* A broken contract: print file and line and abort. Never compiled out. */
#define NT_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
