/* The presence service's string-keyed hash table: FNV-1a, separate chaining,
 * doubled when the load passes one entry per bucket. */
#include "presence_map.h"

#include "nt_status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void *pmap_get(const pmap *m, const char *key)
{
    if (m->nb == 0)
        return NULL;
    for (pmap_ent *e = m->b[hash_str(key) % m->nb]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0)
            return e->val;
    }
    return NULL;
}

static void pmap_grow(pmap *m)
{
    size_t nb = m->nb == 0 ? 64 : m->nb * 2;
    pmap_ent **b = calloc(nb, sizeof(*b));
    NT_ASSERT(b != NULL);
    for (size_t i = 0; i < m->nb; i++) {
        pmap_ent *e = m->b[i];
        while (e != NULL) {
            pmap_ent *next = e->next;
            size_t k = hash_str(e->key) % nb;
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void pmap_put(pmap *m, const char *key, void *val)
{
    if (m->n + 1 > m->nb)
        pmap_grow(m);
    pmap_ent *e = malloc(sizeof(*e));
    NT_ASSERT(e != NULL);
    e->key = strdup(key);
    NT_ASSERT(e->key != NULL);
    e->val = val;
    size_t k = hash_str(key) % m->nb;
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
}

void pmap_del(pmap *m, const char *key)
{
    if (m->nb == 0)
        return;
    for (pmap_ent **p = &m->b[hash_str(key) % m->nb]; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            pmap_ent *e = *p;
            *p = e->next;
            free(e->key);
            free(e);
            m->n--;
            return;
        }
    }
}

size_t pmap_filter(pmap *m, bool (*drop)(void *val, void *arg), void *arg, void (*f)(void *))
{
    size_t gone = 0;
    for (size_t i = 0; i < m->nb; i++) {
        pmap_ent **p = &m->b[i];
        while (*p != NULL) {
            pmap_ent *e = *p;
            if (!drop(e->val, arg)) {
                p = &e->next;
                continue;
            }
            *p = e->next;
            if (f != NULL)
                f(e->val);
            free(e->key);
            free(e);
            m->n--;
            gone++;
        }
    }
    return gone;
}

void pmap_free(pmap *m, void (*f)(void *))
{
    for (size_t i = 0; i < m->nb; i++) {
        pmap_ent *e = m->b[i];
        while (e != NULL) {
            pmap_ent *next = e->next;
            if (f != NULL)
                f(e->val);
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->b);
    memset(m, 0, sizeof(*m));
}
