/* UUIDv7 ids: text, 36 characters, ordered by creation time, so ordering by id
 * is ordering by time. Within one process ids are strictly increasing even
 * inside one millisecond (a 42-bit counter, RFC 9562 method 1). */
#ifndef NT_ID_H
#define NT_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NT_ID_LEN 37 /* 36 characters and the NUL */

/* Writes a new UUIDv7 in lower-case text form. Thread-safe. */
void nt_id_new(char out[NT_ID_LEN]);

/* Writes a new id that is strictly greater than floor (any valid UUID, or
 * NULL or "" for none): nt_id_new when that is greater, otherwise floor plus
 * one in its non-version, non-variant bits (floor's version and variant kept,
 * so above a legacy v4 id the result is v4-shaped). Only above the very last
 * UUID is the result a fresh, smaller id. Used
 * under a store's write lock so ids rise in commit order even across
 * processes whose clocks or counters disagree. Thread-safe. */
void nt_id_next_after(const char *floor, char out[NT_ID_LEN]);

/* True when s is a UUID in canonical lower-case text form (any version). */
bool nt_id_valid(const char *s);

/* The millisecond timestamp of a valid UUIDv7; -1 when s is not one. */
int64_t nt_id_time_ms(const char *s);

/* Fills buf with n cryptographically random bytes. Aborts if the kernel cannot. */
void nt_random_bytes(void *buf, size_t n);

#endif
