/* Presence JSON of the edge (edge_presence.h). Built with cJSON so that user
 * ids and usernames are escaped; the snapshot's parts are assembled from
 * pre-printed entries so that a large edge is printed once per round. */
#include "edge_presence.h"

#include "nt_json.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void edge_pseqs_set(edge_pseqs *s, const char *edge, uint64_t seq)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].edge, edge) == 0) {
            if (seq > s->v[i].seq)
                s->v[i].seq = seq;
            return;
        }
    }
    edge_pseq *v = realloc(s->v, (s->n + 1) * sizeof(*v));
    NT_ASSERT(v != NULL);
    s->v = v;
    snprintf(s->v[s->n].edge, sizeof(s->v[s->n].edge), "%s", edge);
    s->v[s->n].seq = seq;
    s->n++;
}

bool edge_pseqs_covers(const edge_pseqs *s, const char *edge, uint64_t seq)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].edge, edge) == 0)
            return seq <= s->v[i].seq;
    return false;
}

void edge_pseqs_free(edge_pseqs *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

bool edge_presence_ref_of(const char *phx_ref, const char *edge)
{
    size_t n = strlen(edge);
    return n > 0 && strncmp(phx_ref, edge, n) == 0 && phx_ref[n] == '-';
}

static cJSON *report_new(const char *edge, uint64_t seq, const char *type)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "edge", edge);
    cJSON_AddNumberToObject(o, "seq", (double)seq);
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void add_conn(cJSON *o, uint64_t conn)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, conn);
    cJSON_AddStringToObject(o, "conn", id);
}

static cJSON *meta_json(const edge_pmeta *m)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON_AddStringToObject(o, "phx_ref", m->phx_ref);
    cJSON_AddStringToObject(o, "username", m->username);
    cJSON_AddStringToObject(o, "online_at", m->online_at);
    return o;
}

static nt_status finish(nt_buf *out, cJSON *o)
{
    nt_status st = nt_json_append(out, o);
    cJSON_Delete(o);
    return st;
}

nt_status edge_presence_report_conn(nt_buf *out, const char *edge, uint64_t seq, const char *type,
                                    uint64_t conn, const char *user_id)
{
    cJSON *o = report_new(edge, seq, type);
    add_conn(o, conn);
    cJSON_AddStringToObject(o, "user_id", user_id);
    return finish(out, o);
}

nt_status edge_presence_report_join(nt_buf *out, const char *edge, uint64_t seq, uint64_t conn,
                                    const char *user_id, const char *room_id,
                                    const edge_pmeta *meta)
{
    cJSON *o = report_new(edge, seq, "join");
    add_conn(o, conn);
    cJSON_AddStringToObject(o, "user_id", user_id);
    cJSON_AddStringToObject(o, "room_id", room_id);
    cJSON_AddItemToObject(o, "meta", meta_json(meta));
    return finish(out, o);
}

nt_status edge_presence_report_leave(nt_buf *out, const char *edge, uint64_t seq, uint64_t conn,
                                     const char *user_id, const char *room_id, const char *phx_ref)
{
    cJSON *o = report_new(edge, seq, "leave");
    add_conn(o, conn);
    cJSON_AddStringToObject(o, "user_id", user_id);
    cJSON_AddStringToObject(o, "room_id", room_id);
    cJSON_AddStringToObject(o, "phx_ref", phx_ref);
    return finish(out, o);
}

nt_status edge_presence_report_bye(nt_buf *out, const char *edge, uint64_t seq)
{
    return finish(out, report_new(edge, seq, "bye"));
}

nt_status edge_presence_snapshot_conn(nt_buf *out, uint64_t conn, const char *user_id,
                                      const char *const *room_ids, const edge_pmeta *const *metas,
                                      size_t n)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    add_conn(o, conn);
    cJSON_AddStringToObject(o, "user_id", user_id);
    cJSON *joins = cJSON_AddArrayToObject(o, "joins");
    NT_ASSERT(joins != NULL);
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_CreateObject();
        NT_ASSERT(j != NULL);
        cJSON_AddStringToObject(j, "room_id", room_ids[i]);
        cJSON_AddItemToObject(j, "meta", meta_json(metas[i]));
        cJSON_AddItemToArray(joins, j);
    }
    return finish(out, o);
}

nt_status edge_presence_report_snapshot(nt_buf *out, const char *edge, uint64_t seq, uint64_t round,
                                        size_t part, size_t parts, const char *entries, size_t len)
{
    cJSON *o = report_new(edge, seq, "snapshot");
    cJSON_AddNumberToObject(o, "round", (double)round);
    cJSON_AddNumberToObject(o, "part", (double)part);
    cJSON_AddNumberToObject(o, "parts", (double)parts);
    char *head = cJSON_PrintUnformatted(o);
    NT_ASSERT(head != NULL);
    cJSON_Delete(o);
    /* head ends in '}': the entries go in before it. */
    size_t hl = strlen(head);
    nt_status st = nt_buf_append(out, head, hl - 1);
    if (st == NT_OK)
        st = nt_buf_append_str(out, ",\"conns\":[");
    if (st == NT_OK && len > 0)
        st = nt_buf_append(out, entries, len);
    if (st == NT_OK)
        st = nt_buf_append_str(out, "]}");
    cJSON_free(head);
    return st;
}

nt_status edge_presence_diff(nt_buf *out, const edge_pchange *changes, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    NT_ASSERT(o != NULL);
    cJSON *joins = cJSON_AddObjectToObject(o, "joins");
    cJSON *leaves = cJSON_AddObjectToObject(o, "leaves");
    NT_ASSERT(joins != NULL && leaves != NULL);
    for (size_t i = 0; i < n; i++) {
        cJSON *side = changes[i].join ? joins : leaves;
        cJSON *p = cJSON_GetObjectItemCaseSensitive(side, changes[i].user_id);
        if (p == NULL) {
            p = cJSON_AddObjectToObject(side, changes[i].user_id);
            NT_ASSERT(p != NULL && cJSON_AddArrayToObject(p, "metas") != NULL);
        }
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(p, "metas"),
                             meta_json(&changes[i].meta));
    }
    return finish(out, o);
}

/* Keeps of one presence {"metas":[...]} the metas that are objects with a
 * string phx_ref not made by own_edge. */
static void keep_foreign(cJSON *presence, const char *own_edge)
{
    cJSON *metas = cJSON_GetObjectItemCaseSensitive(presence, "metas");
    if (!cJSON_IsArray(metas))
        return;
    cJSON *m = metas->child;
    while (m != NULL) {
        cJSON *next = m->next;
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(m, "phx_ref");
        if (!cJSON_IsObject(m) || !cJSON_IsString(ref) ||
            edge_presence_ref_of(ref->valuestring, own_edge))
            cJSON_Delete(cJSON_DetachItemViaPointer(metas, m));
        m = next;
    }
}

nt_status edge_presence_state(const char *body, size_t len, const char *own_edge,
                              const char *const *users, const edge_pmeta *const *metas, size_t n,
                              nt_buf *out, edge_pseqs *seqs)
{
    cJSON *reply = NULL, *state = NULL;
    char err[64];
    if (body != NULL && nt_json_parse_object(body, len, &reply, err, sizeof(err)) == NT_OK) {
        /* The service's envelope: {"data":{"room_id","presence","edges"}}. */
        cJSON *data = cJSON_GetObjectItemCaseSensitive(reply, "data");
        cJSON *p = cJSON_GetObjectItemCaseSensitive(data, "presence");
        if (cJSON_IsObject(p))
            state = cJSON_DetachItemViaPointer(data, p);
        const cJSON *edges = cJSON_GetObjectItemCaseSensitive(data, "edges");
        const cJSON *e;
        cJSON_ArrayForEach(e, edges)
        {
            if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->string != NULL &&
                strlen(e->string) < NT_MICRO_ID_LEN)
                edge_pseqs_set(seqs, e->string, (uint64_t)e->valuedouble);
        }
    }
    if (state == NULL)
        state = cJSON_CreateObject();
    NT_ASSERT(state != NULL);
    /* The service's view of this edge may lag behind it: the edge's own
     * entries come from its local state instead. */
    cJSON *p = state->child;
    while (p != NULL) {
        cJSON *next = p->next;
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(p, "metas");
        if (cJSON_IsObject(p) && cJSON_IsArray(ms))
            keep_foreign(p, own_edge);
        ms = cJSON_GetObjectItemCaseSensitive(p, "metas");
        if (!cJSON_IsObject(p) || !cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(state, p));
        p = next;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *pres = cJSON_GetObjectItemCaseSensitive(state, users[i]);
        if (pres == NULL) {
            pres = cJSON_AddObjectToObject(state, users[i]);
            NT_ASSERT(pres != NULL);
            NT_ASSERT(cJSON_AddArrayToObject(pres, "metas") != NULL);
        }
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(pres, "metas"), meta_json(metas[i]));
    }
    nt_status st = nt_json_append(out, state);
    cJSON_Delete(state);
    cJSON_Delete(reply);
    return st;
}
