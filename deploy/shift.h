/*
 * Moving traffic between the slots (`n3ctl traffic set`, the console, the rollouts): under the
 * caller's deploy lock, each slot given traffic is looked at first (its process and one round
 * of its probes) and a slot that is not healthy is refused unless forced; then the router is
 * set, for the selected targets only (the others keep what they have), and read back: what it
 * reports is what it applied, and a difference from what was asked fails, naming both. Then,
 * on each selected target, current is pointed at the slot with the most traffic (when one has
 * more than the other), state.json says so, and the target's audit log has the change. Each
 * target's state is read before the router is set: a router that points current itself (one
 * that works on the targets) has moved it, and the state from before says it was elsewhere.
 */
#ifndef N3_SHIFT_H
#define N3_SHIFT_H

#include <stdbool.h>
#include <stddef.h>

#include "deploy/hoststate.h"
#include "deploy/router.h"

struct loop;
struct remote;
struct fleet;
struct traffic;
struct httpc;

struct shift_req {
    struct loop *loop;
    struct remote *remote;
    const struct fleet *fleet; /* its selected targets are the ones changed */
    struct traffic *traffic;
    struct httpc *http; /* for the probes */
    const char *who;
    unsigned weights[HS_NSLOTS]; /* each slot's weight, 0-100, on every selected target */
    bool force;                  /* send traffic to slots that are not healthy all the same */
};

#define SHIFT_MSG_MAX 4096

struct shift_result {
    int rc;                  /* 0 done; -1 failed; 3 refused (a slot not healthy, no router) */
    char msg[SHIFT_MSG_MAX]; /* what happened, or why not: one line a target when several */
    struct router_view *before, *after; /* what the router had and has (NULL when unknown) */
    size_t switched;                    /* targets whose current was pointed elsewhere */
    size_t unaudited;                   /* targets whose audit log could not be written */
};

typedef void (*shift_fn)(void *arg, const struct shift_result *r);

void shift_run(const struct shift_req *req, shift_fn done, void *arg);

#endif
