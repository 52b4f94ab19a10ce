/*
 * A survey of an environment's instances, for `n3ctl slots` and the console: for each selected
 * target and slot, what state.json says runs there, how its process is, one round of its
 * probes, and what the router gives it (when there is a router), all looked at at once.
 */
#ifndef N3_SURVEY_H
#define N3_SURVEY_H

#include <stdbool.h>
#include <stddef.h>

#include "deploy/router.h"
#include "deploy/slot.h"

struct loop;
struct remote;
struct fleet;
struct traffic;
struct httpc;

struct survey_instance {
    const char *target;
    enum hs_slot slot;
    struct slot_result look; /* rc -1: it could not be looked at (look.msg says why) */
    bool starting;           /* its process runs, but it is not (yet) in state.json */
    bool routed;             /* the router was read: route is what it says */
    struct router_server_view route;
    bool live; /* current points to it (traffic set points it at the slot with the most) */
};

struct survey {
    size_t n; /* the selected targets' slots, in their order, blue then green */
    struct survey_instance *inst;
    const char *router; /* the router's kind, or NULL without one */
    bool router_read;   /* it answered; else router_error says why */
    char router_error[512];
    double share[HS_NSLOTS]; /* each slot's share in percent, -1 when unknown */
};

typedef void (*survey_fn)(void *arg, struct survey *s);

/* Look at the fleet's selected targets (the traffic: NULL without a router). done gets the
 * survey (survey_free). */
void survey_take(struct loop *loop, struct remote *remote, const struct fleet *fleet,
                 struct traffic *traffic, struct httpc *http, survey_fn done, void *arg);
void survey_free(struct survey *s);

#endif
