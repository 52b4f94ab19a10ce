/* Moving traffic between the slots: look, set, read back, point current, record. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/fleet.h"
#include "deploy/inventory.h"
#include "deploy/release.h"
#include "deploy/remote.h"
#include "deploy/shift.h"
#include "deploy/slot.h"
#include "deploy/traffic.h"
#include "deploy/transport.h"

struct shiftop;

/* One selected target: its state as it was before the router was set, and what follows. */
struct tgt {
    struct shiftop *o;
    const struct inv_target *target;
    struct transport *t;
    struct hoststate *state; /* read before the router was set (NULL: it could not be) */
    char *state_msg;         /* why it could not be */
    int live;                /* the slot current is to point to, or -1: left as it is */
    bool switched;
};

struct look {
    struct shiftop *o;
    const char *target;
    enum hs_slot slot;
};

struct shiftop {
    struct shift_req req;
    char *who;
    shift_fn done;
    void *arg;
    struct shift_result res;
    struct buf refusals; /* the slots not healthy, a line each */
    size_t pending;
    unsigned *weights; /* per server of the router */
    struct tgt *tgts;
};

static void finish(struct shiftop *o)
{
    size_t i;

    o->done(o->arg, &o->res);
    router_view_free(o->res.before);
    router_view_free(o->res.after);
    for (i = 0; o->tgts != NULL && i < o->req.fleet->n; i++) {
        hoststate_free(o->tgts[i].state);
        free(o->tgts[i].state_msg);
    }
    free(o->tgts);
    free(o->weights);
    buf_done(&o->refusals);
    free(o->who);
    free(o);
}

static void fail(struct shiftop *o, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct shiftop *o, int rc, const char *fmt, ...)
{
    va_list ap;

    o->res.rc = rc;
    va_start(ap, fmt);
    vsnprintf(o->res.msg, sizeof o->res.msg, fmt, ap);
    va_end(ap);
    finish(o);
}

static void note(struct shiftop *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct shiftop *o, const char *fmt, ...)
{
    size_t n = strlen(o->res.msg);
    va_list ap;

    if (n + 1 >= sizeof o->res.msg)
        return;
    va_start(ap, fmt);
    vsnprintf(o->res.msg + n, sizeof o->res.msg - n, fmt, ap);
    va_end(ap);
}

static bool selected(const struct shiftop *o, const char *target)
{
    size_t i;

    for (i = 0; i < o->req.fleet->n; i++) {
        if (strcmp(o->req.fleet->names[i], target) == 0)
            return true;
    }
    return false;
}

/* ---- 4. on each target: current, state.json, the audit log ---- */

static void target_done(struct tgt *g)
{
    struct shiftop *o = g->o;

    if (g->switched)
        o->res.switched++;
    if (--o->pending > 0)
        return;
    finish(o);
}

static void audited(void *arg, int rc, const char *msg)
{
    struct tgt *g = arg;

    if (rc == AUDITLOG_FAILED) {
        g->o->res.unaudited++;
        note(g->o, "\n%s: the traffic moved, but its audit log could not be written: %s",
             g->target->name, msg);
    }
    target_done(g);
}

static void audit(struct tgt *g)
{
    struct shiftop *o = g->o;
    struct audit_entry e = {0};
    const char *targets[] = {g->target->name, NULL};
    cJSON *d = cJSON_CreateObject(), *w = cJSON_AddObjectToObject(d, "weights");
    int s;

    for (s = 0; s < HS_NSLOTS; s++)
        cJSON_AddNumberToObject(w, hs_slot_name((enum hs_slot)s), o->req.weights[s]);
    cJSON_AddStringToObject(d, "router", traffic_kind(o->req.traffic));
    cJSON_AddBoolToObject(d, "forced", o->req.force);
    if (g->switched)
        cJSON_AddStringToObject(d, "current", hs_slot_name((enum hs_slot)g->live));
    e.time = (int64_t)time(NULL);
    e.actor = o->who;
    e.pid = (long)getpid();
    e.action = "traffic.set";
    e.targets = targets;
    e.result = "ok";
    e.detail = d;
    auditlog_append(g->t, g->target->deploy_path, &e, audited, g);
    cJSON_Delete(d);
}

static void state_written(void *arg, const struct transport_result *r)
{
    struct tgt *g = arg;

    if (r->status != TRANSPORT_OK || r->exit_code != 0)
        note(g->o, "\n%s: current points to slots/%s, but %s could not be written: %s",
             g->target->name, hs_slot_name((enum hs_slot)g->live), HOSTSTATE_FILE,
             r->status != TRANSPORT_OK ? r->msg : "the command failed");
    audit(g);
}

static void linked(void *arg, const struct transport_result *r)
{
    struct tgt *g = arg;
    int64_t now = (int64_t)time(NULL);

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        note(g->o, "\n%s: the traffic moved, but current could not be pointed to slots/%s: %s",
             g->target->name, hs_slot_name((enum hs_slot)g->live),
             r->status != TRANSPORT_OK ? r->msg : "the command failed");
        audit(g);
        return;
    }
    g->switched = true;
    hoststate_set_live(g->state, (enum hs_slot)g->live);
    hoststate_add_history(g->state, now, "traffic.set",
                          hoststate_slot_version(g->state, (enum hs_slot)g->live), g->o->who);
    release_write_state(g->t, g->target, g->state, now, state_written, g);
}

/* The live slot is what the state said before the router was set: a router may point current
 * itself (one that works on the targets), and the link read now would say nothing moved. */
static void after_set(struct tgt *g)
{
    enum hs_slot live;

    if (g->state == NULL) {
        note(g->o, "\n%s: the traffic moved, but its state could not be read: %s", g->target->name,
             g->state_msg);
        audit(g);
        return;
    }
    if (g->live < 0 || (hoststate_live(g->state, &live) && (int)live == g->live)) {
        g->live = -1;
        audit(g);
        return;
    }
    slot_point_current(g->t, g->target->deploy_path, (enum hs_slot)g->live, linked, g);
}

static void on_targets(struct shiftop *o)
{
    const unsigned *w = o->req.weights;
    size_t i, n = o->req.fleet->n;

    o->pending = n + 1;
    for (i = 0; i < n; i++) {
        struct tgt *g = &o->tgts[i];

        g->live = w[HS_BLUE] > w[HS_GREEN] ? HS_BLUE : w[HS_GREEN] > w[HS_BLUE] ? HS_GREEN : -1;
        after_set(g);
    }
    if (--o->pending == 0)
        finish(o);
}

/* ---- 3. the router ---- */

static void applied(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct shiftop *o = arg;

    if (v != NULL)
        o->res.after = router_view_dup(v);
    if (rc != 0) {
        fail(o, -1, "%s", msg != NULL ? msg : "the router failed");
        return;
    }
    on_targets(o);
}

static void apply(struct shiftop *o)
{
    size_t i, n = traffic_nservers(o->req.traffic);

    o->weights = xcalloc(n + 1, sizeof *o->weights);
    for (i = 0; i < n; i++) {
        const struct router_server *rs = traffic_server(o->req.traffic, i);

        if (selected(o, rs->target))
            o->weights[i] = o->req.weights[rs->slot];
        else if (i < o->res.before->n && o->res.before->servers[i].found)
            o->weights[i] = o->res.before->servers[i].weight;
    }
    traffic_set(o->req.traffic, o->weights, applied, o);
}

/* ---- 2. the slots given traffic, looked at ---- */

/* Whether a look says the slot can take traffic; why not into why. */
static bool fit(const struct slot_result *r, char *why, size_t len)
{
    if (r->rc != 0) {
        snprintf(why, len, "%s", r->msg);
        return false;
    }
    if (r->service.state != SERVICE_RUNNING && r->service.state != SERVICE_UNKNOWN) {
        snprintf(why, len, "it is %s%s", service_state_name(r->service.state),
                 r->version[0] ? "" : " (no version started there)");
        return false;
    }
    if (r->health == HEALTH_HEALTHY || r->health == HEALTH_DEGRADED)
        return true;
    if (r->health == HEALTH_UNKNOWN && r->service.listening)
        return true; /* no probes: it runs and listens */
    snprintf(why, len, "%s",
             r->health == HEALTH_UNKNOWN ? "nothing listens on its port" : r->health_msg);
    return false;
}

static void looks_done(struct shiftop *o);

static void looked(void *arg, const struct slot_result *r)
{
    struct look *l = arg;
    struct shiftop *o = l->o;
    char why[SLOT_MSG_MAX];

    if (!fit(r, why, sizeof why)) {
        char line[SLOT_MSG_MAX + 200];

        snprintf(line, sizeof line, "%s%s %s: %s", o->refusals.len ? "\n" : "", l->target,
                 hs_slot_name(l->slot), why);
        buf_adds(&o->refusals, line);
    }
    free(l);
    if (--o->pending == 0)
        looks_done(o);
}

/* ---- 2b. each target's state, before anything moves ---- */

static void state_before(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct tgt *g = arg;

    (void)warning;
    g->state = s;
    if (s == NULL)
        g->state_msg = xstrdup(msg != NULL ? msg : "failed");
    if (--g->o->pending == 0)
        apply(g->o);
}

static void read_states(struct shiftop *o)
{
    size_t i, n = o->req.fleet->n;

    o->tgts = xcalloc(n + 1, sizeof *o->tgts);
    o->pending = n + 1;
    for (i = 0; i < n; i++) {
        struct tgt *g = &o->tgts[i];

        g->o = o;
        g->target = inv_env_find(o->req.fleet->env, o->req.fleet->names[i]);
        g->t = remote_transport(o->req.remote, g->target->name);
        release_read_state(g->t, g->target, state_before, g);
    }
    if (--o->pending == 0)
        apply(o);
}

static void looks_done(struct shiftop *o)
{
    if (o->refusals.len > 0 && !o->req.force) {
        fail(o, 3,
             "not sending traffic to a slot that is not healthy (--force sends it all the "
             "same):\n%.*s",
             (int)o->refusals.len, o->refusals.data);
        return;
    }
    if (o->refusals.len > 0)
        note(o, "forced, though not healthy:\n%.*s", (int)o->refusals.len, o->refusals.data);
    read_states(o);
}

static void look_all(struct shiftop *o)
{
    size_t i;
    int s;

    o->pending = 1;
    for (i = 0; i < o->req.fleet->n; i++) {
        for (s = 0; s < HS_NSLOTS; s++) {
            struct look *l;
            struct slot_req sr;

            if (o->req.weights[s] == 0)
                continue;
            l = xcalloc(1, sizeof *l);
            l->o = o;
            l->target = o->req.fleet->names[i];
            l->slot = (enum hs_slot)s;
            memset(&sr, 0, sizeof sr);
            sr.loop = o->req.loop;
            sr.t = remote_transport(o->req.remote, l->target);
            sr.target = inv_env_find(o->req.fleet->env, l->target);
            sr.env = o->req.fleet->env;
            sr.http = o->req.http;
            sr.slot = l->slot;
            o->pending++;
            slot_look(&sr, looked, l);
        }
    }
    if (--o->pending == 0)
        looks_done(o);
}

/* ---- 1. what the router has ---- */

static void read_before(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct shiftop *o = arg;

    if (rc != 0) {
        fail(o, -1, "cannot read the router (%s): %s; nothing was changed",
             traffic_kind(o->req.traffic), msg != NULL ? msg : "failed");
        return;
    }
    o->res.before = router_view_dup(v);
    look_all(o);
}

void shift_run(const struct shift_req *req, shift_fn done, void *arg)
{
    struct shiftop *o = xcalloc(1, sizeof *o);

    o->req = *req;
    o->who = xstrdup(req->who != NULL ? req->who : "");
    o->req.who = o->who;
    o->done = done;
    o->arg = arg;
    buf_init(&o->refusals);
    traffic_read(req->traffic, read_before, o);
}
