/* Capped growable buffers: every buffer that grows from network input has a
 * maximum fixed at creation, and appends past it fail with NT_ETOOBIG. */
#ifndef NT_BUF_H
#define NT_BUF_H

#include "nt_status.h"

#include <stddef.h>

typedef struct {
    char *data; /* NUL-terminated when non-NULL; owned */
    size_t len; /* bytes used, not counting the NUL */
    size_t alloc;
    size_t max; /* the cap on len */
} nt_buf;

/* Initialises an empty buffer that may grow to max bytes. Allocates nothing. */
void nt_buf_init(nt_buf *b, size_t max);

/* Appends n bytes. NT_ETOOBIG (and the buffer unchanged) when len + n > max. */
nt_status nt_buf_append(nt_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
nt_status nt_buf_append_str(nt_buf *b, const char *s);

/* Appends formatted text. NT_ETOOBIG when it would pass the cap. */
nt_status nt_buf_appendf(nt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer, keeping its allocation. */
void nt_buf_reset(nt_buf *b);

/* Frees the data; the buffer is empty and reusable after. */
void nt_buf_free(nt_buf *b);

/* Returns the data (the caller frees it, never NULL) and empties the buffer. */
char *nt_buf_steal(nt_buf *b, size_t *len);

#endif
