/*
 * The haproxy metric source: each instance's requests and 5xx from the counters HAProxy keeps
 * for its server (show stat's stot and hrsp_5xx), read through the environment's router
 * (deploy/traffic.h), so over the connection the router keeps open: no socket of its own.
 * HAProxy keeps no latency histogram a server: the quantiles are unknown. Its counters start
 * again when HAProxy restarts (a reset, as an instance's restart is).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/metricsrc.h"
#include "deploy/traffic.h"
#include "plugins/builtin.h"

struct hsrc;

/* A read in flight: the router's answer may come after the source is closed (orphan). */
struct hread {
    struct hsrc *h;
    bool orphan;
};

struct hsrc {
    struct loop *loop;
    struct traffic *traffic;
    size_t n;
    const struct metricsrc_instance *inst; /* the caller's (they outlive the source) */
    struct hread *inflight;
    struct metricsrc_sample *out;
    metricsrc_read_fn done;
    void *arg;
    struct loop_timer *later; /* done, on the next turn: the router may answer at once */
};

static void later_cb(void *arg)
{
    struct hsrc *h = arg;
    metricsrc_read_fn done = h->done;

    h->done = NULL;
    done(h->arg);
}

static void routed(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct hread *r = arg;
    struct hsrc *h = r->h;
    uint64_t now;
    size_t i;

    if (r->orphan) {
        free(r);
        return;
    }
    h->inflight = NULL;
    free(r);
    now = loop_now_us(h->loop);
    for (i = 0; i < h->n; i++) {
        struct metricsrc_sample *s = &h->out[i];
        int at = h->inst[i].server;

        s->at_us = now;
        if (rc != 0) {
            snprintf(s->error, sizeof s->error, "cannot read the router (%s): %.200s",
                     traffic_kind(h->traffic), msg != NULL ? msg : "failed");
        } else if (at < 0 || (size_t)at >= v->n || !v->servers[at].found) {
            snprintf(s->error, sizeof s->error, "the router has no server for %.100s's %s slot",
                     h->inst[i].target, hs_slot_name(h->inst[i].slot));
        } else {
            s->ok = true;
            s->requests = (double)v->servers[at].requests;
            s->errors = (double)v->servers[at].errors;
        }
    }
    loop_timer_start(h->later, 0);
}

static void h_read(void *src, struct metricsrc_sample *out, metricsrc_read_fn done, void *arg)
{
    struct hsrc *h = src;
    struct hread *r = xcalloc(1, sizeof *r);

    h->out = out;
    h->done = done;
    h->arg = arg;
    r->h = h;
    h->inflight = r;
    traffic_read(h->traffic, routed, r);
}

static void *h_open(const struct metricsrc_ctx *ctx, struct err *err)
{
    struct hsrc *h;

    if (ctx->traffic == NULL) {
        err_set(err, "the haproxy metric source reads the router's counters: the environment's "
                     "router is not open");
        return NULL;
    }
    h = xcalloc(1, sizeof *h);
    h->loop = ctx->loop;
    h->traffic = ctx->traffic;
    h->n = ctx->n;
    h->inst = ctx->inst;
    h->later = loop_timer_new(h->loop, later_cb, h);
    return h;
}

static void h_close(void *src)
{
    struct hsrc *h = src;

    if (h->inflight != NULL)
        h->inflight->orphan = true;
    loop_timer_free(h->later);
    free(h);
}

const struct metricsrc_kind metrics_haproxy = {
    .name = "haproxy",
    .keys = NULL,
    .router = "haproxy",
    .quantiles = false,
    .check = NULL,
    .open = h_open,
    .read = h_read,
    .close = h_close,
};
