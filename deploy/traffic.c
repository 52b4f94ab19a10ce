/* An environment's traffic, through its router. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/remote.h"
#include "deploy/router.h"
#include "deploy/traffic.h"
#include "deploy/transport.h"

struct traffic {
    const struct router_kind *kind;
    struct router *r;
    struct router_server *servers;
    size_t n;
    struct transport *own_lb; /* this machine's, when the caller gave none */
};

/* A set in flight: the weights asked, to compare with what comes back. */
struct setop {
    struct traffic *t;
    unsigned *asked;
    router_fn done;
    void *arg;
};

struct traffic *traffic_open(struct loop *loop, const struct inv_env *env, struct transport *lb,
                             struct remote *targets, struct err *err)
{
    const struct inv_router *ir = inv_env_router(env);
    struct traffic *t;
    struct router_ctx ctx;
    const cJSON *tmpl;
    size_t i, nt = inv_env_ntargets(env);
    int s;

    if (ir == NULL) {
        err_set(err,
                "environment %s has no router in n3.json: say what moves its traffic "
                "(\"router\": {\"type\": \"haproxy\", ...}, docs/config.md)",
                inv_env_name(env));
        return NULL;
    }
    t = xcalloc(1, sizeof *t);
    t->kind = ir->kind;
    t->servers = xcalloc(nt * HS_NSLOTS + 1, sizeof *t->servers);
    tmpl = cJSON_GetObjectItemCaseSensitive(ir->config, "server");
    for (i = 0; i < nt; i++) {
        const struct inv_target *target = inv_env_target(env, i);
        const struct inv_service *svc = inv_env_service(env);

        for (s = 0; s < HS_NSLOTS; s++) {
            struct router_server *rs = &t->servers[t->n++];

            snprintf(rs->target, sizeof rs->target, "%s", target->name);
            rs->slot = (enum hs_slot)s;
            router_server_name(cJSON_IsString(tmpl) ? tmpl->valuestring : NULL, target->name,
                               rs->slot, rs->name, sizeof rs->name);
            snprintf(rs->host, sizeof rs->host, "%s",
                     target->transport == INV_LOCAL ? "127.0.0.1" : target->host);
            rs->port = svc != NULL ? svc->ports[s] : 0;
            rs->t = targets != NULL ? remote_transport(targets, target->name) : NULL;
            rs->deploy_path = target->deploy_path;
        }
    }
    /* Where the router runs: the caller's, its "on" host (through the targets' connections),
     * or this machine. */
    if (lb == NULL && ir->on != NULL) {
        if (targets == NULL) {
            err_set(err, "the router of %s runs on %s (its \"on\"), and nothing here reaches it",
                    inv_env_name(env), ir->on->name);
            traffic_close(t);
            return NULL;
        }
        lb = remote_router_transport(targets, err);
        if (lb == NULL) {
            traffic_close(t);
            return NULL;
        }
    }
    if (lb == NULL)
        lb = t->own_lb = transport_local_new(loop, "local");
    memset(&ctx, 0, sizeof ctx);
    ctx.loop = loop;
    ctx.config = ir->config;
    ctx.servers = t->servers;
    ctx.nservers = t->n;
    ctx.lb = lb;
    t->r = t->kind->open(&ctx, err);
    if (t->r == NULL) {
        traffic_close(t);
        return NULL;
    }
    return t;
}

void traffic_close(struct traffic *t)
{
    if (t == NULL)
        return;
    if (t->r != NULL)
        t->kind->close(t->r);
    transport_free(t->own_lb);
    free(t->servers);
    free(t);
}

const char *traffic_kind(const struct traffic *t)
{
    return t->kind->name;
}

size_t traffic_nservers(const struct traffic *t)
{
    return t->n;
}

const struct router_server *traffic_server(const struct traffic *t, size_t i)
{
    return i < t->n ? &t->servers[i] : NULL;
}

int traffic_find(const struct traffic *t, const char *target, enum hs_slot slot)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        if (t->servers[i].slot == slot && strcmp(t->servers[i].target, target) == 0)
            return (int)i;
    }
    return -1;
}

void traffic_read(struct traffic *t, router_fn done, void *arg)
{
    t->kind->read(t->r, done, arg);
}

int traffic_check_applied(const struct traffic *t, const unsigned *asked,
                          const struct router_view *v, char *msg, size_t len)
{
    size_t i, n = 0;
    int rc = 0;

    if (len > 0)
        msg[0] = '\0';
    for (i = 0; i < t->n && i < v->n; i++) {
        const struct router_server_view *sv = &v->servers[i];
        unsigned want = asked[i] > 100 ? 100 : asked[i];

        if (sv->found && sv->weight == want)
            continue;
        rc = -1;
        if (n < len) {
            int k;

            if (!sv->found)
                k = snprintf(msg + n, len - n, "%s%s: asked %u, the router does not have it",
                             n ? "; " : "", t->servers[i].name, want);
            else
                k = snprintf(msg + n, len - n, "%s%s: asked %u, the router has %u", n ? "; " : "",
                             t->servers[i].name, want, sv->weight);
            n += k > 0 ? (size_t)k : 0;
        }
    }
    return rc;
}

static void set_done(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct setop *o = arg;
    char why[1024];

    if (rc == 0 && traffic_check_applied(o->t, o->asked, v, why, sizeof why) != 0)
        o->done(o->arg, -1, v, why);
    else
        o->done(o->arg, rc, v, msg);
    free(o->asked);
    free(o);
}

void traffic_set(struct traffic *t, const unsigned *weights, router_fn done, void *arg)
{
    struct setop *o = xcalloc(1, sizeof *o);

    o->t = t;
    o->asked = xcalloc(t->n + 1, sizeof *o->asked);
    memcpy(o->asked, weights, t->n * sizeof *o->asked);
    o->done = done;
    o->arg = arg;
    t->kind->set_weights(t->r, weights, set_done, o);
}

void traffic_drain(struct traffic *t, size_t i, router_fn done, void *arg)
{
    t->kind->drain(t->r, i, done, arg);
}

double traffic_share(const struct traffic *t, const struct router_view *v, enum hs_slot slot)
{
    unsigned long all = 0, mine = 0;
    size_t i;

    for (i = 0; i < t->n && i < v->n; i++) {
        /* A drained server (or one in maintenance) gets no new requests, whatever its weight. */
        if (!v->servers[i].found || strcmp(v->servers[i].state, "drain") == 0 ||
            strcmp(v->servers[i].state, "maint") == 0)
            continue;
        all += v->servers[i].weight;
        if (t->servers[i].slot == slot)
            mine += v->servers[i].weight;
    }
    return all == 0 ? -1.0 : 100.0 * (double)mine / (double)all;
}
