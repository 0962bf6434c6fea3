/* Base64 and base64url (RFC 4648), as JWTs and JWKs use them. Pure. */
#ifndef NT_B64_H
#define NT_B64_H

#include "nt_status.h"

#include <stddef.h>

/* Encodes n bytes as base64url without padding. *out is malloc'd and NUL-terminated. */
char *nt_b64url_encode(const void *data, size_t n);

/* Decodes base64url text (padding optional, no other characters allowed).
 * NT_EINVAL on any bad character or impossible length. *out is malloc'd (and
 * NUL-terminated for convenience); *outlen its size. */
nt_status nt_b64url_decode(const char *text, size_t len, unsigned char **out, size_t *outlen);

#endif
