/*
 * An environment's traffic: its router (deploy/router.h, the kind n3.json names), opened with
 * one server for each slot of each of its targets, in the targets' order, blue then green.
 * Weights go in and come back per server; a set is read back from the router, and a weight
 * the router did not apply as asked is an error that names both.
 */
#ifndef N3_TRAFFIC_H
#define N3_TRAFFIC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "deploy/hoststate.h"
#include "deploy/router.h"

struct loop;
struct transport;
struct inv_env;
struct remote;
struct traffic;

/* The environment's router: NULL with err when it has none, or it cannot be opened. lb is
 * where the router's own commands run (NULL: its "on" host through targets, else this
 * machine). targets (NULL: none) gives each
 * server its target's transport (router_server.t), for the kinds that work on the targets
 * themselves; it must outlive the traffic. */
struct traffic *traffic_open(struct loop *loop, const struct inv_env *env, struct transport *lb,
                             struct remote *targets, struct err *err);
void traffic_close(struct traffic *t);

const char *traffic_kind(const struct traffic *t); /* "haproxy", ... */
size_t traffic_nservers(const struct traffic *t);
const struct router_server *traffic_server(const struct traffic *t, size_t i);
/* The server of target's slot, or -1. */
int traffic_find(const struct traffic *t, const char *target, enum hs_slot slot);

void traffic_read(struct traffic *t, router_fn done, void *arg);
/* Apply weights (one a server, 0-100) and read back. */
void traffic_set(struct traffic *t, const unsigned *weights, router_fn done, void *arg);
/* Stop new requests to server i; those in flight finish. */
void traffic_drain(struct traffic *t, size_t i, router_fn done, void *arg);

/* A slot's share of the traffic in a view, in percent (the sum of its servers' weights over
 * the sum of all); -1 when every weight is 0. */
double traffic_share(const struct traffic *t, const struct router_view *v, enum hs_slot slot);

/* Weights asked against what a view has: 0, or -1 with what differs in msg ("web1_green:
 * asked 10, the router has 0"). */
int traffic_check_applied(const struct traffic *t, const unsigned *asked,
                          const struct router_view *v, char *msg, size_t len);

#endif
