/*
 * A survey of an environment's instances, for `n3ctl slots` and the console: for each selected
 * target and slot, what state.json says runs there, how its process is, one round of its
 * probes, what the router gives it (when there is a router), and its request figures (when
 * the environment has a metric source, deploy/metricsrc.h), all looked at at once.
 *
 * Figures need two reads of the source: a source read fewer than twice so far (a one-shot
 * `n3ctl slots`) is read, then again rate_wait_ms later, and the figures are over that span;
 * one that is read every interval already (a watch) gives its sliding window's.
 */
#ifndef N3_SURVEY_H
#define N3_SURVEY_H

#include <stdbool.h>
#include <stddef.h>

#include "deploy/metricsrc.h"
#include "deploy/router.h"
#include "deploy/slot.h"

struct loop;
struct remote;
struct fleet;
struct traffic;
struct httpc;
struct metricsrc;

struct survey_instance {
    const char *target;
    enum hs_slot slot;
    struct slot_result look; /* rc -1: it could not be looked at (look.msg says why) */
    bool starting;           /* its process runs, but it is not (yet) in state.json */
    bool routed;             /* the router was read: route is what it says */
    struct router_server_view route;
    bool live;     /* current points to it (traffic set points it at the slot with the most) */
    bool measured; /* the metric source was read: figures is what it says */
    struct metricsrc_figures figures;
};

struct survey {
    size_t n; /* the selected targets' slots, in their order, blue then green */
    struct survey_instance *inst;
    const char *router; /* the router's kind, or NULL without one */
    bool router_read;   /* it answered; else router_error says why */
    char router_error[512];
    double share[HS_NSLOTS];    /* each slot's share in percent, -1 when unknown */
    const char *metrics;        /* the metric source's kind, or NULL without one */
    uint64_t metrics_window_ms; /* its window */
};

struct survey_req {
    struct loop *loop;
    struct remote *remote;
    const struct fleet *fleet;
    struct traffic *traffic;   /* NULL without a router */
    struct httpc *http;        /* for the probes */
    struct metricsrc *metrics; /* opened for the fleet (metricsrc_open_env), or NULL */
    uint64_t rate_wait_ms;     /* between the two reads of a source read fewer than twice (0:
                                * one read, no rate) */
};

typedef void (*survey_fn)(void *arg, struct survey *s);

/* Look at the fleet's selected targets. done gets the survey (survey_free). */
void survey_take(const struct survey_req *req, survey_fn done, void *arg);
void survey_free(struct survey *s);

#endif
