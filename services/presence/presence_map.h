/* A small string-keyed hash table for the presence service's indexes (edges,
 * connections, users, rooms, and the worker's per-user queue), so every look-up
 * costs in proportion to the key, not to the number of entries. Not
 * thread-safe: each owner guards its own. */
#ifndef PRESENCE_MAP_H
#define PRESENCE_MAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pmap_ent {
    struct pmap_ent *next;
    char *key; /* owned copy */
    void *val; /* the owner's */
} pmap_ent;

/* Zero-initialised is an empty map. Iterate with b[0..nb) and next. */
typedef struct {
    pmap_ent **b;
    size_t nb, n;
} pmap;

void *pmap_get(const pmap *m, const char *key);

/* Adds key (copied) → val; key must be absent. */
void pmap_put(pmap *m, const char *key, void *val);

/* Removes key when present (its value is the caller's). */
void pmap_del(pmap *m, const char *key);

/* Removes every entry for which drop(val, arg) is true, calling f on its
 * value (f may be NULL). Returns how many went. */
size_t pmap_filter(pmap *m, bool (*drop)(void *val, void *arg), void *arg, void (*f)(void *));

/* Frees the table, calling f on each value (f may be NULL); m is empty after. */
void pmap_free(pmap *m, void (*f)(void *));

#endif
