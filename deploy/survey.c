/* A survey of an environment's instances. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "deploy/fleet.h"
#include "deploy/inventory.h"
#include "deploy/remote.h"
#include "deploy/survey.h"
#include "deploy/traffic.h"

struct taking {
    struct survey *s;
    struct traffic *traffic;
    size_t pending;
    survey_fn done;
    void *arg;
};

struct one {
    struct taking *k;
    size_t i;
};

static void finished(struct taking *k)
{
    struct survey *s = k->s;
    size_t i;

    if (--k->pending > 0)
        return;
    for (i = 0; i < s->n; i++) {
        struct survey_instance *in = &s->inst[i];

        in->starting = in->look.rc == 0 && in->look.service.state == SERVICE_RUNNING &&
                       in->look.version[0] == '\0';
        in->live = in->look.live;
    }
    k->done(k->arg, s);
    free(k);
}

static void looked(void *arg, const struct slot_result *r)
{
    struct one *o = arg;

    o->k->s->inst[o->i].look = *r;
    finished(o->k);
    free(o);
}

static void routed(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct taking *k = arg;
    struct survey *s = k->s;
    size_t i;
    int j;

    if (rc != 0) {
        snprintf(s->router_error, sizeof s->router_error, "%s", msg != NULL ? msg : "failed");
    } else {
        s->router_read = true;
        for (j = 0; j < HS_NSLOTS; j++)
            s->share[j] = traffic_share(k->traffic, v, (enum hs_slot)j);
        for (i = 0; i < s->n; i++) {
            int at = traffic_find(k->traffic, s->inst[i].target, s->inst[i].slot);

            if (at >= 0 && (size_t)at < v->n) {
                s->inst[i].routed = true;
                s->inst[i].route = v->servers[at];
            }
        }
    }
    finished(k);
}

void survey_take(struct loop *loop, struct remote *remote, const struct fleet *fleet,
                 struct traffic *traffic, struct httpc *http, survey_fn done, void *arg)
{
    struct taking *k = xcalloc(1, sizeof *k);
    struct survey *s = xcalloc(1, sizeof *s);
    size_t i;
    int j;

    k->s = s;
    k->traffic = traffic;
    k->done = done;
    k->arg = arg;
    s->n = fleet->n * HS_NSLOTS;
    s->inst = xcalloc(s->n + 1, sizeof *s->inst);
    s->router = traffic != NULL ? traffic_kind(traffic) : NULL;
    for (j = 0; j < HS_NSLOTS; j++)
        s->share[j] = -1;
    /* One for each look, one for the router, one for this function: nothing finishes before
     * everything has started. */
    k->pending = s->n + 1 + (traffic != NULL);
    for (i = 0; i < s->n; i++) {
        s->inst[i].target = fleet->names[i / HS_NSLOTS];
        s->inst[i].slot = (enum hs_slot)(i % HS_NSLOTS);
    }
    if (traffic != NULL)
        traffic_read(traffic, routed, k);
    for (i = 0; i < s->n; i++) {
        struct one *o = xcalloc(1, sizeof *o);
        struct slot_req req;

        o->k = k;
        o->i = i;
        memset(&req, 0, sizeof req);
        req.loop = loop;
        req.t = remote_transport(remote, s->inst[i].target);
        req.target = inv_env_find(fleet->env, s->inst[i].target);
        req.env = fleet->env;
        req.http = http;
        req.slot = s->inst[i].slot;
        slot_look(&req, looked, o);
    }
    finished(k);
}

void survey_free(struct survey *s)
{
    if (s == NULL)
        return;
    free(s->inst);
    free(s);
}
