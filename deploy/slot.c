/* Slot operations on one target: start and wait until ready, stop, look. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/inventory.h"
#include "deploy/probe.h"
#include "deploy/release.h"
#include "deploy/slot.h"
#include "deploy/transport.h"

/* How often a starting instance is looked at for a crash (and, without probes, its port). */
#define POLL_MS 250u

enum kind { K_START, K_STOP, K_LOOK };

struct probe_run {
    struct slotop *op;
    const struct probe_spec *spec;
    void *ctx;
    struct health *h;
    bool answered; /* a look: its one check came */
};

struct slotop {
    enum kind kind;
    struct slot_req req;
    char *version, *who;
    char *prev;  /* start: the version the slot pointed to before (NULL: none) */
    int fail_rc; /* start: the status a failure ends with, once the link is put back */
    slot_fn done;
    void *arg;
    struct hoststate *state;
    struct service_req sreq;
    struct probe_endpoint ep;
    char host[256];
    struct probe_run *probes;
    size_t nprobes;
    struct loop_timer *deadline, *poll, *eval;
    uint64_t t0_ms;
    bool polling, ready, finished;
    struct slot_result res;
};

int slot_parse(const char *name, enum hs_slot *out)
{
    int i;

    for (i = 0; i < HS_NSLOTS; i++) {
        if (strcmp(name, hs_slot_name((enum hs_slot)i)) == 0) {
            *out = (enum hs_slot)i;
            return 0;
        }
    }
    return -1;
}

struct transport_op *slot_point_current(struct transport *t, const char *deploy_path,
                                        enum hs_slot slot, transport_done_fn done, void *arg)
{
    char *link = xasprintf("%s/current", deploy_path);
    char *to = xasprintf("slots/%s", hs_slot_name(slot));
    struct transport_op *op = transport_symlink(t, to, link, done, arg);

    free(link);
    free(to);
    return op;
}

static void say(struct slotop *o, const char *stage)
{
    if (o->req.on_stage != NULL)
        o->req.on_stage(o->arg, stage);
}

static void probes_free(struct slotop *o)
{
    size_t i;

    for (i = 0; i < o->nprobes; i++) {
        health_free(o->probes[i].h);
        if (o->probes[i].ctx != NULL)
            o->probes[i].spec->kind->free_ctx(o->probes[i].ctx);
    }
    free(o->probes);
    o->probes = NULL;
    o->nprobes = 0;
}

static void op_free(struct slotop *o)
{
    probes_free(o);
    loop_timer_free(o->deadline);
    loop_timer_free(o->poll);
    loop_timer_free(o->eval);
    hoststate_free(o->state);
    free(o->version);
    free(o->prev);
    free(o->who);
    free(o);
}

static void finish(struct slotop *o, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct slotop *o, int rc, const char *fmt, ...)
{
    va_list ap;

    if (o->finished)
        return;
    o->finished = true;
    o->res.rc = rc;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(o->res.msg, sizeof o->res.msg, fmt, ap);
        va_end(ap);
    }
    loop_timer_stop(o->deadline);
    loop_timer_stop(o->poll);
    loop_timer_stop(o->eval);
    o->done(o->arg, &o->res);
    op_free(o);
}

/* More of the message. */
static void append(struct slotop *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(struct slotop *o, const char *fmt, ...)
{
    size_t n = strlen(o->res.msg);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(o->res.msg + n, sizeof o->res.msg - n, fmt, ap);
    va_end(ap);
}

/* ---- probes ---- */

/* How bad a state is, for the worst of several: not known yet ranks between answering and
 * failing. */
static int rank(enum health_state s)
{
    switch (s) {
    case HEALTH_HEALTHY:
        return 0;
    case HEALTH_DEGRADED:
        return 1;
    case HEALTH_UNKNOWN:
        return 2;
    case HEALTH_UNHEALTHY:
        return 3;
    case HEALTH_CRITICAL:
        return 4;
    }
    return 2;
}

/* The worst of the probes' states, with its message, into the result. */
static enum health_state worst(struct slotop *o)
{
    size_t i, w = 0;

    if (o->nprobes == 0)
        return HEALTH_UNKNOWN;
    for (i = 1; i < o->nprobes; i++) {
        if (rank(health_status(o->probes[i].h)->state) > rank(health_status(o->probes[w].h)->state))
            w = i;
    }
    o->res.health = health_status(o->probes[w].h)->state;
    snprintf(o->res.health_msg, sizeof o->res.health_msg, "%.100s: %s", o->probes[w].spec->name,
             health_status(o->probes[w].h)->message);
    return o->res.health;
}

static void after_ready(struct slotop *o);
static void look_checked(struct slotop *o);

/* A probe's state changed: looked at from the loop, not from inside the probe's callback (the
 * probes may be freed then). */
static void probe_changed(void *arg, const struct health_status *st)
{
    struct probe_run *p = arg;

    (void)st;
    p->answered = true;
    if (p->op->kind == K_LOOK)
        health_stop(p->h);
    loop_timer_start(p->op->eval, 0);
}

static void eval_cb(void *arg)
{
    struct slotop *o = arg;
    enum health_state w;

    if (o->finished || o->nprobes == 0)
        return;
    if (o->kind == K_LOOK) {
        look_checked(o);
        return;
    }
    w = worst(o);
    if (!o->ready && (w == HEALTH_HEALTHY || w == HEALTH_DEGRADED)) {
        o->ready = true;
        after_ready(o);
    }
}

static void probes_start(struct slotop *o, bool once)
{
    size_t n, i;
    const struct probe_spec *specs = inv_env_probes(o->req.env, &n);

    o->probes = xcalloc(n + 1, sizeof *o->probes);
    o->nprobes = n;
    for (i = 0; i < n; i++) {
        struct probe_run *p = &o->probes[i];
        struct health_policy pol = specs[i].policy;

        p->op = o;
        p->spec = &specs[i];
        p->ctx = specs[i].kind->new_ctx(&specs[i], &o->ep);
        if (once) {
            /* One check says it: no threshold, no breaker. */
            pol.healthy_threshold = pol.unhealthy_threshold = 1;
            pol.breaker_failures = 100;
        }
        p->h = health_new(o->req.loop, specs[i].name, &pol, specs[i].kind->ops, p->ctx,
                          probe_changed, p);
        if (o->req.metrics != NULL || o->req.trace != NULL) {
            struct health_obs obs = {0};

            obs.metrics = o->req.metrics;
            obs.trace = o->req.trace;
            obs.probe = specs[i].name;
            obs.target = o->req.target->name;
            obs.slot = hs_slot_name(o->req.slot);
            health_observe(p->h, &obs);
        }
    }
    for (i = 0; i < n; i++)
        health_start(o->probes[i].h);
}

/* ---- start ---- */

static void start_audited(void *arg, int rc, const char *msg)
{
    struct slotop *o = arg;

    if (rc == AUDITLOG_FAILED) {
        finish(o, -1, "slot %s on %s runs %s, but unaudited there (no audit record): %s",
               hs_slot_name(o->req.slot), o->req.target->name, o->version, msg);
        return;
    }
    if (rc != AUDITLOG_OK)
        append(o, " (warning: %s)", msg);
    finish(o, 0, NULL);
}

static void audit(struct slotop *o, const char *action, const char *result, cJSON *detail,
                  auditlog_fn done)
{
    struct audit_entry e = {0};
    const char *targets[] = {o->req.target->name, NULL};

    e.time = (int64_t)time(NULL);
    e.actor = o->who;
    e.pid = (long)getpid();
    e.action = action;
    e.targets = targets;
    e.result = result;
    e.detail = detail;
    auditlog_append(o->req.t, o->req.target->deploy_path, &e, done, o);
    cJSON_Delete(detail);
}

static void start_written(void *arg, const struct transport_result *r)
{
    struct slotop *o = arg;
    cJSON *detail = cJSON_CreateObject();

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        cJSON_Delete(detail);
        finish(o, -1, "slot %s on %s runs %s, but %s could not be written: %s",
               hs_slot_name(o->req.slot), o->req.target->name, o->version, HOSTSTATE_FILE,
               r->status != TRANSPORT_OK ? r->msg : "the command failed");
        return;
    }
    cJSON_AddStringToObject(detail, "slot", hs_slot_name(o->req.slot));
    cJSON_AddStringToObject(detail, "version", o->version);
    cJSON_AddNumberToObject(detail, "port", o->res.port);
    cJSON_AddNumberToObject(detail, "pid", (double)o->res.service.pid);
    cJSON_AddNumberToObject(detail, "ready_ms", (double)o->res.ready_ms);
    say(o, "auditing");
    audit(o, "slot.start", "ok", detail, start_audited);
}

static void after_ready(struct slotop *o)
{
    int64_t now = (int64_t)time(NULL);

    loop_timer_stop(o->deadline);
    loop_timer_stop(o->poll);
    o->res.ready_ms = loop_now_ms(o->req.loop) - o->t0_ms;
    snprintf(o->res.msg, sizeof o->res.msg, "%s started (pid %ld), ready in %.1fs%s%s", o->version,
             o->res.service.pid, (double)o->res.ready_ms / 1000.0,
             o->nprobes > 0 ? ": " : " (it listens on its port; no probes)",
             o->nprobes > 0 ? o->res.health_msg : "");
    probes_free(o);
    hoststate_set_slot(o->state, o->req.slot, o->version, (int)o->res.port);
    hoststate_add_history(o->state, now, "slot.start", o->version, o->who);
    say(o, "writing state");
    release_write_state(o->req.t, o->req.target, o->state, now, start_written, o);
}

/* A start that failed: slots/<slot> points where it pointed before (or nowhere, as before),
 * so that the slot is left as it was; then it ends with the message said so far. */
static void restored(void *arg, const struct transport_result *r)
{
    struct slotop *o = arg;

    if (r->status != TRANSPORT_OK || r->exit_code != 0)
        append(o, "; and slots/%s could not be put back as it was: %s", hs_slot_name(o->req.slot),
               r->status != TRANSPORT_OK ? r->msg : "the command failed");
    finish(o, o->fail_rc, NULL);
}

static void fail_start(struct slotop *o, int rc)
{
    char link[1024], to[300];

    o->fail_rc = rc;
    snprintf(link, sizeof link, "%s/slots/%s", o->req.target->deploy_path,
             hs_slot_name(o->req.slot));
    if (o->prev != NULL) {
        snprintf(to, sizeof to, "../releases/%s", o->prev);
        transport_symlink(o->req.t, to, link, restored, o);
    } else {
        struct buf cmd;
        struct transport_run run = {0};

        buf_init(&cmd);
        shell_cmdf(&cmd, "rm -f -- %s", link);
        run.command = cmd.data;
        run.on_done = restored;
        run.arg = o;
        transport_run(o->req.t, &run);
        buf_done(&cmd);
    }
}

/* Not ready in time (or crashed): stopped, said with why. */
struct failed_start {
    struct slotop *o;
    char why[SLOT_MSG_MAX];
};

static void failed_stopped(void *arg, int rc, const struct service_status *st, const char *msg)
{
    struct slotop *o = arg;

    (void)st;
    if (rc != 0)
        append(o, "; stopping it failed too: %s", msg != NULL ? msg : "");
    else
        append(o, "; stopped it");
    fail_start(o, -1);
}

static void not_ready(struct slotop *o)
{
    double secs = (double)o->sreq.svc->ready_timeout_ms / 1000.0;

    worst(o);
    snprintf(o->res.msg, sizeof o->res.msg, "%s on slot %s of %s was not ready within %gs (%s)",
             o->version, hs_slot_name(o->req.slot), o->req.target->name, secs,
             o->nprobes > 0 ? o->res.health_msg : "nothing listens on its port");
    probes_free(o);
    loop_timer_stop(o->poll);
    service_stop(&o->sreq, failed_stopped, o);
}

static void deadline_cb(void *arg)
{
    struct slotop *o = arg;

    if (!o->ready && !o->finished)
        not_ready(o);
}

static void polled(void *arg, int rc, const struct service_status *st, const char *msg)
{
    struct slotop *o = arg;

    o->polling = false;
    if (o->finished || o->ready)
        return;
    if (rc == 0 && st->state == SERVICE_CRASHED) {
        o->res.service = *st;
        probes_free(o);
        snprintf(o->res.msg, sizeof o->res.msg,
                 "%s on slot %s of %s crashed while it started; its log ends with:\n%s", o->version,
                 hs_slot_name(o->req.slot), o->req.target->name,
                 st->log_tail[0] ? st->log_tail : "(nothing)");
        fail_start(o, -1);
        return;
    }
    (void)msg;
    /* Without probes: ready once it runs and listens. */
    if (rc == 0 && o->nprobes == 0 && st->state == SERVICE_RUNNING && st->listening) {
        o->ready = true;
        after_ready(o);
        return;
    }
    loop_timer_start(o->poll, POLL_MS);
}

static void poll_cb(void *arg)
{
    struct slotop *o = arg;

    if (o->polling || o->finished || o->ready)
        return;
    o->polling = true;
    service_status(&o->sreq, polled, o);
}

static void started(void *arg, int rc, const struct service_status *st, const char *msg)
{
    struct slotop *o = arg;

    o->res.service = *st;
    if (rc != 0) {
        snprintf(o->res.msg, sizeof o->res.msg, "%s%s%s", msg,
                 st->log_tail[0] ? "; its log ends with:\n" : "", st->log_tail);
        if (st->state == SERVICE_RUNNING)
            finish(o, 3, NULL); /* refused: the one that runs keeps its link */
        else
            fail_start(o, -1);
        return;
    }
    say(o, "waiting until ready");
    loop_timer_start(o->deadline, o->sreq.svc->ready_timeout_ms);
    loop_timer_start(o->poll, POLL_MS);
    probes_start(o, false);
}

/* ---- the state read, for each kind ---- */

static void do_start(struct slotop *o)
{
    const char *v = o->version != NULL ? o->version : hoststate_slot_version(o->state, o->req.slot);

    if (v == NULL) {
        finish(o, 3, "slot %s on %s has run no version: say which (n3ctl slot start %s %s VERSION)",
               hs_slot_name(o->req.slot), o->req.target->name, o->req.target->name,
               hs_slot_name(o->req.slot));
        return;
    }
    if (o->version == NULL)
        o->version = xstrdup(v);
    v = o->version;
    snprintf(o->res.version, sizeof o->res.version, "%s", v);
    o->ep.version = v;
    if (hoststate_find(o->state, v) == NULL) {
        finish(o, 3, "there is no release %s on %s: push it first (n3ctl release push %s)", v,
               o->req.target->name, v);
        return;
    }
    if (hoststate_slot_version(o->state, o->req.slot) != NULL)
        o->prev = xstrdup(hoststate_slot_version(o->state, o->req.slot));
    o->sreq.version = o->version;
    say(o, "starting");
    o->t0_ms = loop_now_ms(o->req.loop);
    service_start(&o->sreq, started, o);
}

static void stop_audited(void *arg, int rc, const char *msg)
{
    struct slotop *o = arg;

    if (rc == AUDITLOG_FAILED) {
        finish(o, -1, "slot %s on %s is stopped, but unaudited there (no audit record): %s",
               hs_slot_name(o->req.slot), o->req.target->name, msg);
        return;
    }
    finish(o, 0, NULL);
}

static void stop_written(void *arg, const struct transport_result *r)
{
    struct slotop *o = arg;
    cJSON *detail = cJSON_CreateObject();

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        cJSON_Delete(detail);
        finish(o, -1, "slot %s on %s is stopped, but %s could not be written: %s",
               hs_slot_name(o->req.slot), o->req.target->name, HOSTSTATE_FILE,
               r->status != TRANSPORT_OK ? r->msg : "the command failed");
        return;
    }
    cJSON_AddStringToObject(detail, "slot", hs_slot_name(o->req.slot));
    if (o->version != NULL)
        cJSON_AddStringToObject(detail, "version", o->version);
    cJSON_AddBoolToObject(detail, "forced", o->req.force);
    say(o, "auditing");
    audit(o, "slot.stop", "ok", detail, stop_audited);
}

static void stopped(void *arg, int rc, const struct service_status *st, const char *msg)
{
    struct slotop *o = arg;
    int64_t now = (int64_t)time(NULL);

    o->res.service = *st;
    if (rc != 0) {
        finish(o, -1, "%s", msg);
        return;
    }
    snprintf(o->res.msg, sizeof o->res.msg, "%s", msg != NULL ? msg : "stopped");
    hoststate_set_slot(o->state, o->req.slot, NULL, 0);
    hoststate_add_history(o->state, now, "slot.stop", o->version, o->who);
    say(o, "writing state");
    release_write_state(o->req.t, o->req.target, o->state, now, stop_written, o);
}

static void do_stop(struct slotop *o)
{
    const char *v = hoststate_slot_version(o->state, o->req.slot);

    if (v != NULL) {
        if (o->version == NULL)
            o->version = xstrdup(v);
        snprintf(o->res.version, sizeof o->res.version, "%s", v);
    }
    if (o->res.live && !o->req.force) {
        finish(o, 3,
               "slot %s is the live one on %s (current points to it): stopping it takes its "
               "traffic down; --force stops it anyway",
               hs_slot_name(o->req.slot), o->req.target->name);
        return;
    }
    say(o, "stopping");
    service_stop(&o->sreq, stopped, o);
}

static void look_checked(struct slotop *o)
{
    size_t i;

    for (i = 0; i < o->nprobes; i++) {
        if (!o->probes[i].answered)
            return;
    }
    worst(o);
    finish(o, 0, NULL);
}

static void looked(void *arg, int rc, const struct service_status *st, const char *msg)
{
    struct slotop *o = arg;

    o->res.service = *st;
    if (rc != 0) {
        finish(o, -1, "%s", msg);
        return;
    }
    /* Its probes, once, when it runs. */
    if (st->state != SERVICE_RUNNING && st->state != SERVICE_UNKNOWN) {
        o->res.health = st->state == SERVICE_CRASHED ? HEALTH_CRITICAL : HEALTH_UNKNOWN;
        snprintf(o->res.health_msg, sizeof o->res.health_msg, "%s",
                 st->state == SERVICE_CRASHED ? "its process is gone" : "not running");
        finish(o, 0, NULL);
        return;
    }
    {
        size_t n;

        inv_env_probes(o->req.env, &n);
        if (n == 0) {
            o->res.health = HEALTH_UNKNOWN;
            snprintf(o->res.health_msg, sizeof o->res.health_msg, "%s",
                     st->listening ? "listening (no probes)" : "not listening (no probes)");
            finish(o, 0, NULL);
            return;
        }
    }
    probes_start(o, true);
}

static void state_read(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct slotop *o = arg;
    enum hs_slot live;

    (void)warning;
    if (s == NULL) {
        finish(o, -1, "%s", msg);
        return;
    }
    o->state = s;
    o->res.live = hoststate_live(s, &live) && live == o->req.slot;
    if (o->kind == K_START)
        do_start(o);
    else if (o->kind == K_STOP)
        do_stop(o);
    else {
        const char *v = hoststate_slot_version(s, o->req.slot);

        if (v != NULL) {
            snprintf(o->res.version, sizeof o->res.version, "%s", v);
            o->ep.version = o->res.version; /* its probes' {version} */
        }
        service_status(&o->sreq, looked, o);
    }
}

static void deliver_early(void *arg)
{
    struct slotop *o = arg;

    finish(o, 3,
           "%s has no service in n3.json: say how its slots start (\"service\": {\"ports\", "
           "\"start\"}, docs/config.md)",
           inv_env_name(o->req.env));
}

static void run(enum kind kind, const struct slot_req *req, slot_fn done, void *arg)
{
    struct slotop *o = xcalloc(1, sizeof *o);
    const struct inv_service *svc = inv_env_service(req->env);

    o->kind = kind;
    o->req = *req;
    /* The caller's strings are copied: they need not outlive the call. */
    o->who = xstrdup(req->who != NULL ? req->who : "");
    o->req.who = o->who;
    o->version = req->version != NULL ? xstrdup(req->version) : NULL;
    o->req.version = o->version;
    o->done = done;
    o->arg = arg;
    o->deadline = loop_timer_new(req->loop, deadline_cb, o);
    o->poll = loop_timer_new(req->loop, poll_cb, o);
    o->eval = loop_timer_new(req->loop, eval_cb, o);
    if (svc == NULL) {
        loop_defer(req->loop, deliver_early, o);
        return;
    }
    o->res.port = svc->ports[req->slot];
    o->sreq.loop = req->loop;
    o->sreq.t = req->t;
    o->sreq.target = req->target;
    o->sreq.svc = svc;
    o->sreq.slot = req->slot;
    /* An instance on the target's loopback only is reached through its transport. */
    snprintf(o->host, sizeof o->host, "%s",
             req->target->transport == INV_LOCAL || svc->loopback ? "127.0.0.1"
                                                                  : req->target->host);
    o->ep.via_target = svc->loopback;
    o->ep.loop = req->loop;
    o->ep.t = req->t;
    o->ep.target = req->target;
    o->ep.host = o->host;
    o->ep.port = svc->ports[req->slot];
    o->ep.slot = hs_slot_name(req->slot);
    o->ep.http = req->http;
    o->ep.version = o->version;
    release_read_state(req->t, req->target, state_read, o);
}

void slot_start(const struct slot_req *req, slot_fn done, void *arg)
{
    run(K_START, req, done, arg);
}

void slot_stop(const struct slot_req *req, slot_fn done, void *arg)
{
    run(K_STOP, req, done, arg);
}

void slot_look(const struct slot_req *req, slot_fn done, void *arg)
{
    run(K_LOOK, req, done, arg);
}
