/*
 * Traffic routers: what moves an environment's traffic between the slots of its targets. The
 * kinds (haproxy, nginx, none, exec, ...) are plugins: each registers itself (plugins/builtin.c)
 * and deploy finds it by the name n3.json's "router" gives; deploy never names one.
 *
 * A router knows one server a target's slot (named from n3.json's template, "{target}_{slot}"
 * by default). Weights are shares, 0 to 100, a server: a slot's share of the environment's
 * traffic is the sum of its servers' weights over the sum of all. Every change is read back
 * from the router itself: what a router reports is what it applied, never what was asked.
 */
#ifndef N3_ROUTER_H
#define N3_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "deploy/hoststate.h"

struct cfg;
struct loop;
struct transport;
struct router;

#define ROUTER_NAME_MAX 128

/* One server of the router: a target's slot. */
struct router_server {
    char target[101];
    enum hs_slot slot;
    char name[ROUTER_NAME_MAX]; /* the router's name for it */
    char host[256];             /* where the slot's instance is, as the router reaches it */
    unsigned port;
    /* The target itself, for a kind that works on the targets rather than on a load balancer
     * (their current links): its transport, NULL when whoever opened the router gave none
     * (traffic_open's targets), and its deploy path (the inventory's). */
    struct transport *t;
    const char *deploy_path;
};

/* What the router says of one server. */
struct router_server_view {
    bool found;        /* the router has it */
    unsigned weight;   /* the share it gives it now, 0-100 */
    char state[24];    /* "ready", "drain", "maint", "down", ... as the router says */
    bool up;           /* its own health checks (if any) say it is up */
    uint64_t sessions; /* current connections/requests */
    uint64_t requests; /* so far (a counter) */
    uint64_t errors;   /* 5xx responses so far (a counter) */
};

struct router_view {
    size_t n; /* as many as the router was opened with, in their order */
    struct router_server_view *servers;
};

/* rc 0: done, view is what the router says now (read back); -1: failed, msg says why (view
 * may be NULL). */
typedef void (*router_fn)(void *arg, int rc, const struct router_view *view, const char *msg);

/* What a router is opened with. */
struct router_ctx {
    struct loop *loop;
    const cJSON *config; /* n3.json's "router" object (checked by the kind) */
    const struct router_server *servers;
    size_t nservers;
    struct transport *lb; /* where the router's own commands run: a load-balancer target's
                           * transport, or this machine's */
};

struct router_kind {
    const char *name;
    const char *const *keys; /* its own keys in the router object, NULL-terminated */
    /* It cannot split traffic by weights (each target serves from one slot): the weighted
     * rollout strategies refuse it. */
    bool no_weights;
    /* Check them when n3.json loads: 0, or -1 with cfg_error at the key's position. */
    int (*check)(const struct cfg *c, const cJSON *router, struct err *err);
    struct router *(*open)(const struct router_ctx *ctx, struct err *err);
    /* Apply weights (one a server, 0-100), then read back. */
    void (*set_weights)(struct router *r, const unsigned *weights, router_fn done, void *arg);
    /* Read what the router has now. */
    void (*read)(struct router *r, router_fn done, void *arg);
    /* Stop sending new requests to server i, letting the ones in flight finish. */
    void (*drain)(struct router *r, size_t i, router_fn done, void *arg);
    void (*close)(struct router *r);
};

void router_kind_register(const struct router_kind *k);
const struct router_kind *router_kind_find(const char *name);
const char *const *router_kind_names(void);

/* A server's name from the template ({target}, {slot}; default "{target}_{slot}"). */
void router_server_name(const char *tmpl, const char *target, enum hs_slot slot, char *out,
                        size_t len);

/* a router view's copy for the caller to keep (router_view_free). */
struct router_view *router_view_dup(const struct router_view *v);
void router_view_free(struct router_view *v);

#endif
