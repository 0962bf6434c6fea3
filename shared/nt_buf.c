/* nt_buf: a byte buffer that refuses to grow past its cap. */
#include "nt_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void nt_buf_init(nt_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

static void grow(nt_buf *b, size_t need)
{
    if (need + 1 <= b->alloc)
        return;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need + 1)
        n *= 2;
    char *p = realloc(b->data, n);
    NT_ASSERT(p != NULL);
    b->data = p;
    b->alloc = n;
}

nt_status nt_buf_append(nt_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return NT_ETOOBIG;
    grow(b, b->len + n);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return NT_OK;
}

nt_status nt_buf_append_str(nt_buf *b, const char *s)
{
    return nt_buf_append(b, s, strlen(s));
}

nt_status nt_buf_appendf(nt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NT_EINVAL;
    if ((size_t)n > b->max || b->len > b->max - (size_t)n)
        return NT_ETOOBIG;
    grow(b, b->len + (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return NT_OK;
}

void nt_buf_reset(nt_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void nt_buf_free(nt_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

char *nt_buf_steal(nt_buf *b, size_t *len)
{
    if (b->data == NULL)
        grow(b, 0), b->data[0] = '\0';
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
