/* The log writer: formats into a stack buffer and writes it in one call. */
#include "nt_log.h"

#include "nt_clock.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static nt_log_level min_level = NT_LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

void nt_log_set_level(nt_log_level level)
{
    min_level = level;
}

nt_status nt_log_level_parse(const char *text, nt_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (text != NULL && strcasecmp(text, names[i]) == 0) {
            *out = (nt_log_level)i;
            return NT_OK;
        }
    }
    return NT_EINVAL;
}

void nt_log(nt_log_level level, const char *module, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[4096];
    char ts[NT_ISO8601_LEN];
    nt_clock_iso8601(nt_clock_now_ms(), ts);
    int n = snprintf(line, sizeof(line), "%s %s %s ", ts, names[level], module);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    if (m > 0)
        len += ((size_t)m < sizeof(line) - len) ? (size_t)m : sizeof(line) - len - 1;
    /* Log lines are single lines: fold any newline a value smuggled in. */
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void nt_log_redact_url(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return;
    while (*in != '\0') {
        size_t item = strcspn(in, ",");
        const char *scheme = NULL;
        for (size_t i = 0; i + 2 < item; i++) {
            if (in[i] == ':' && in[i + 1] == '/' && in[i + 2] == '/') {
                scheme = in + i + 3;
                break;
            }
        }
        const char *host = scheme != NULL ? scheme : in;
        /* The last @ of the item ends the user information, as nats.c reads
         * it: a password may hold '/', so do not stop at the path. */
        const char *at = NULL;
        for (const char *q = host; q < in + item; q++) {
            if (*q == '@')
                at = q;
        }
        /* Copy the scheme, then everything after the user information. */
        size_t head = (size_t)(host - in);
        const char *tail = at != NULL ? at + 1 : host;
        size_t tail_len = (size_t)(in + item - tail);
        for (size_t i = 0; i < head && o + 1 < outlen; i++)
            out[o++] = in[i];
        for (size_t i = 0; i < tail_len && o + 1 < outlen; i++)
            out[o++] = tail[i];
        in += item;
        if (*in == ',') {
            if (o + 1 < outlen)
                out[o++] = ',';
            in++;
        }
    }
    out[o] = '\0';
}
