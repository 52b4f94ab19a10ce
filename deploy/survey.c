/* A survey of an environment's instances. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/fleet.h"
#include "deploy/inventory.h"
#include "deploy/metricsrc.h"
#include "deploy/remote.h"
#include "deploy/survey.h"
#include "deploy/traffic.h"

struct taking {
    struct survey *s;
    struct traffic *traffic;
    struct metricsrc *metrics;
    struct loop_timer *wait; /* between the source's two reads */
    uint64_t rate_wait_ms;
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
        if (k->metrics != NULL && i < metricsrc_count(k->metrics)) {
            metricsrc_figures(k->metrics, i, &in->figures);
            in->measured = true;
        }
    }
    loop_timer_free(k->wait);
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

static void second_read(void *arg)
{
    finished(arg);
}

static void waited(void *arg)
{
    struct taking *k = arg;

    metricsrc_read(k->metrics, second_read, k);
}

static void first_read(void *arg)
{
    struct taking *k = arg;

    if (k->wait == NULL) {
        finished(k);
        return;
    }
    loop_timer_start(k->wait, k->rate_wait_ms);
}

void survey_take(const struct survey_req *req, survey_fn done, void *arg)
{
    struct taking *k = xcalloc(1, sizeof *k);
    struct survey *s = xcalloc(1, sizeof *s);
    const struct fleet *fleet = req->fleet;
    struct traffic *traffic = req->traffic;
    struct loop *loop = req->loop;
    size_t i;
    int j;

    k->s = s;
    k->traffic = traffic;
    k->metrics = req->metrics;
    k->done = done;
    k->arg = arg;
    s->n = fleet->n * HS_NSLOTS;
    s->inst = xcalloc(s->n + 1, sizeof *s->inst);
    s->router = traffic != NULL ? traffic_kind(traffic) : NULL;
    for (j = 0; j < HS_NSLOTS; j++)
        s->share[j] = -1;
    if (k->metrics != NULL) {
        s->metrics = metricsrc_kind_name(k->metrics);
        s->metrics_window_ms = metricsrc_get_spec(k->metrics)->window_ms;
    }
    /* One for each look, one for the router, one for the metrics, one for this function:
     * nothing finishes before everything has started. */
    k->pending = s->n + 1 + (traffic != NULL) + (k->metrics != NULL);
    for (i = 0; i < s->n; i++) {
        s->inst[i].target = fleet->names[i / HS_NSLOTS];
        s->inst[i].slot = (enum hs_slot)(i % HS_NSLOTS);
    }
    if (traffic != NULL)
        traffic_read(traffic, routed, k);
    if (k->metrics != NULL) {
        if (metricsrc_reads(k->metrics) >= 2) {
            k->pending--; /* read every interval already: its window */
        } else {
            if (req->rate_wait_ms > 0)
                k->wait = loop_timer_new(loop, waited, k);
            k->rate_wait_ms = req->rate_wait_ms;
            metricsrc_read(k->metrics, first_read, k);
        }
    }
    for (i = 0; i < s->n; i++) {
        struct one *o = xcalloc(1, sizeof *o);
        struct slot_req sreq;

        o->k = k;
        o->i = i;
        memset(&sreq, 0, sizeof sreq);
        sreq.loop = loop;
        sreq.t = remote_transport(req->remote, s->inst[i].target);
        sreq.target = inv_env_find(fleet->env, s->inst[i].target);
        sreq.env = fleet->env;
        sreq.http = req->http;
        sreq.slot = s->inst[i].slot;
        slot_look(&sreq, looked, o);
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
