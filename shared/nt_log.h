/* Logging: one line per event on stderr, "ts level module msg key=value".
 * Never log a token, a secret or a message body. */
#ifndef NT_LOG_H
#define NT_LOG_H

#include "nt_status.h"

#include <stddef.h>

typedef enum { NT_LOG_DEBUG, NT_LOG_INFO, NT_LOG_WARN, NT_LOG_ERROR } nt_log_level;

/* Sets the lowest level that is written (default info). Call before threads start. */
void nt_log_set_level(nt_log_level level);

/* Parses "debug", "info", "warn" or "error"; NT_EINVAL otherwise. */
nt_status nt_log_level_parse(const char *text, nt_log_level *out);

/* Writes one line, "2026-01-02T03:04:05.678Z info module <fmt...>". The line is
 * built in memory and written with one write(2), so lines from several threads
 * never interleave. Lines over 4 KiB are truncated. Thread-safe. */
void nt_log(nt_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies a URL, or a comma-separated list of URLs, into out with any
 * user:password@ part removed ("nats://bob:pw@h:4222" → "nats://h:4222"), so
 * it can be logged. Everything up to the last '@' of each URL goes, since a
 * password may contain '/' (an '@' later in a path is taken for one too: we
 * would rather hide a path than show a password). Truncates to outlen. */
void nt_log_redact_url(const char *in, char *out, size_t outlen);

#define nt_log_debug(mod, ...) nt_log(NT_LOG_DEBUG, mod, __VA_ARGS__)
#define nt_log_info(mod, ...)  nt_log(NT_LOG_INFO, mod, __VA_ARGS__)
#define nt_log_warn(mod, ...)  nt_log(NT_LOG_WARN, mod, __VA_ARGS__)
#define nt_log_error(mod, ...) nt_log(NT_LOG_ERROR, mod, __VA_ARGS__)

#endif
