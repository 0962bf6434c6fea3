/* The WebSocket server: libwebsockets on one service thread, the Phoenix
 * protocol per socket, topics fanned out from NATS, and the hand-over from
 * nats.c threads to the service thread (LIBRARIES.md §3: a locked inbox and
 * lws_cancel_service; NATS callbacks never touch lws objects). */
#ifndef EDGE_SERVER_H
#define EDGE_SERVER_H

#include "edge.h"
#include "nt_jwt.h"
#include "nt_nats.h"
#include "nt_status.h"

typedef struct edge_server edge_server;

/* Creates the lws context listening on o->addr:o->port and starts the service
 * thread. nc and verifier are borrowed and must outlive the server.
 * NT_EUNAVAIL when the port cannot be bound. */
nt_status edge_server_start(const edge_opts *o, nt_nats *nc, nt_verifier *verifier,
                            edge_server **out);

/* Drains: refuses new sockets, closes every socket with 1012 (Service
 * Restart, so clients reconnect), waits up to o->drain_ms, then stops the
 * thread and unsubscribes. NULL is harmless. Call from one thread. */
void edge_server_stop(edge_server *s);

/* Frees what stop left: the inbox a NATS callback still running may touch.
 * Call after the NATS connection is destroyed (no callback can run any
 * more). NULL is harmless. */
void edge_server_free(edge_server *s);

#endif
