/*
 * Slot operations on one target, for the commands and the console: start a version in a slot
 * and wait until it is ready, stop it, look at it. Under the deploy lock (the caller's: the
 * transport is fenced then); each change is written to the target's state.json and audit log.
 *
 * Start: the release must be on the target (release push first); the instance is started
 * (deploy/service.h), then checked with the environment's probes until every one is healthy
 * (each as its healthy_threshold says), within the service's ready_timeout. An instance that
 * crashes meanwhile (its process gone) fails at once, with its log's last lines. Without probes,
 * ready means its process runs and something listens on its port. Then slots/<slot> and
 * state.json say it runs there.
 *
 * Stop: refused for the live slot (current points to it) unless forced; the instance is
 * stopped, and state.json forgets the slot.
 *
 * Look: its state (running, stopped, crashed), pid, and one round of its probes.
 */
#ifndef N3_SLOT_H
#define N3_SLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "deploy/health.h"
#include "deploy/hoststate.h"
#include "deploy/service.h"
#include "deploy/transport.h"

struct loop;
struct transport;
struct inv_target;
struct inv_env;
struct httpc;
struct metrics;
struct trace;

struct slot_req {
    struct loop *loop;
    struct transport *t;
    const struct inv_target *target;
    const struct inv_env *env; /* its service and probes */
    struct httpc *http;        /* for http probes */
    enum hs_slot slot;
    const char *version; /* start: what to run (NULL: the version the slot had) */
    const char *who;     /* user@host, for state.json and the audit log */
    bool force;          /* stop: also the live slot */
    /* When not NULL: the probes' checks are counted and traced there (deploy/health.h). */
    struct metrics *metrics;
    struct trace *trace;
    /* When not NULL: the operation moved on ("starting", "waiting for ready", ...). */
    void (*on_stage)(void *arg, const char *stage);
};

#define SLOT_MSG_MAX 4096

struct slot_result {
    int rc;                 /* 0 done; -1 failed; 3 refused (live slot, no release, ...) */
    char msg[SLOT_MSG_MAX]; /* what happened, for the operator */
    char version[128];
    struct service_status service;
    enum health_state health; /* the worst of the probes' (HEALTH_UNKNOWN without probes) */
    char health_msg[384];     /* the worst probe's message */
    uint64_t ready_ms;        /* start: how long until ready */
    unsigned port;
    bool live; /* current points to this slot */
};

typedef void (*slot_fn)(void *arg, const struct slot_result *r);

void slot_start(const struct slot_req *req, slot_fn done, void *arg);
void slot_stop(const struct slot_req *req, slot_fn done, void *arg);
void slot_look(const struct slot_req *req, slot_fn done, void *arg);

/* "blue"/"green" to a slot; -1 when it is neither. */
int slot_parse(const char *name, enum hs_slot *out);

/* Point <deploy_path>/current to slots/<slot> on the target, atomically (a new link renamed
 * over the old one): what makes a slot the live one. Only the link; state.json is the
 * caller's. */
struct transport_op *slot_point_current(struct transport *t, const char *deploy_path,
                                        enum hs_slot slot, transport_done_fn done, void *arg);

#endif
