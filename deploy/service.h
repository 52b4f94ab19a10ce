/*
 * A slot's instance on a target: started, stopped and looked at as the environment's service
 * says (inventory.h, docs/config.md "service"). Each operation is one shell command on the
 * target, through its transport (fenced, under the deploy lock, when the caller holds it).
 *
 * Detached mode needs nothing on the target but a shell, setsid(1) and /proc: the start
 * command runs in a session of its own (so it outlives n3ctl and the SSH connection), in
 * slots/<slot> (pointed at releases/<version> first), with N3_SLOT, N3_PORT and N3_VERSION in
 * its environment, its output appended to shared/log/<slot>.log. Its pid and start time (from
 * /proc, so that a reused pid is not taken for it) are in .n3/run/<slot>.pid. A stop sends TERM
 * to its process group, KILL after the grace period, and waits for the port to be free. An
 * instance whose pid is gone while its pid file is there has crashed; its log's last lines say
 * why. Systemd mode runs the operator's own start and stop commands instead, and knows no pid.
 */
#ifndef N3_SERVICE_H
#define N3_SERVICE_H

#include <stdbool.h>

#include "core/err.h"
#include "deploy/hoststate.h"

struct loop;
struct transport;
struct inv_target;
struct inv_service;

enum service_state {
    SERVICE_STOPPED, /* no instance (no pid file) */
    SERVICE_RUNNING, /* its process is there */
    SERVICE_CRASHED, /* its pid file is there, its process is not */
    SERVICE_UNKNOWN, /* systemd mode: the operator's service manager knows */
};

#define SERVICE_LOG_TAIL 2048 /* bytes of a crashed instance's log kept for the message */

struct service_status {
    enum service_state state;
    long pid;
    bool listening;                  /* something listens on the slot's port */
    char log_tail[SERVICE_LOG_TAIL]; /* a crashed (or failed) instance's last log lines */
};

/* What an operation is about: a target's slot (and, to start, a version released there). */
struct service_req {
    struct loop *loop;
    struct transport *t;
    const struct inv_target *target;
    const struct inv_service *svc;
    enum hs_slot slot;
    const char *version; /* start: the release to run */
};

/* rc 0: done (st says how things are now); -1: it failed, msg says why (st as far as known).
 * msg is also set on 0 for what the operator should hear (KILL was needed, ...). */
typedef void (*service_fn)(void *arg, int rc, const struct service_status *st, const char *msg);

/* Start the slot's instance of version: refused (-1) when one runs there already, the port is
 * taken, or the release is not on the target. Done once it is started (its pid known), or said
 * to have exited at once (crashed, with its log's last lines); readiness is the probes'. */
void service_start(const struct service_req *req, service_fn done, void *arg);
/* Stop it: TERM to its group, KILL after the grace period, the port free again. */
void service_stop(const struct service_req *req, service_fn done, void *arg);
/* How it is. */
void service_status(const struct service_req *req, service_fn done, void *arg);

const char *service_state_name(enum service_state s); /* "stopped", "running", ... */

#endif
