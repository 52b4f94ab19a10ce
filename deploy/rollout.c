/* A rollout's state machine: steps, gates, the operator's commands, on the loop's clock. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/rollout.h"

#define ROLLOUT_VERDICTS_MAX 200 /* gate ends kept for status */

/* What the action in flight does to the world. */
enum action {
    A_PREPARE,
    A_SET_WEIGHT,
    A_SET_HOSTS,
    A_STOP,
};

/* Where it is: its intent being written, the world being changed, its outcome being written. */
enum phase { PH_NONE, PH_INTENT, PH_ACTING, PH_OUTCOME };

/* Why the rollout is paused. */
enum pause_why {
    PW_NONE,
    PW_STEP,         /* a pause step waiting for a person */
    PW_OPERATOR,     /* rollout pause */
    PW_INCONCLUSIVE, /* a gate could not decide */
    PW_POLICY,       /* a gate failed with the pause policy */
    PW_JOURNAL,      /* the journal could not be written */
};

typedef void (*cont_fn)(struct rollout *r, int rc, const char *msg);

struct act {
    enum action kind;
    enum phase phase;
    unsigned token; /* the answer awaited now carries it; others are late */
    const char *name;
    cJSON *data; /* the intent's, and the outcome's base */
    void (*go)(struct rollout *r);
    cont_fn then;
    int rc;
    char msg[600];
    unsigned applied; /* set_weight: the share the router has */
    unsigned weight;  /* set_weight: asked */
    size_t hosts;     /* set_hosts: asked */
};

struct rollout {
    struct loop *loop;
    struct rollout_spec spec;
    char *id, *environment, *candidate, *stable;
    size_t ntargets;
    const struct rollout_ops *ops;
    void *arg;

    enum rollout_state state;
    size_t step;    /* the step in progress, or nsteps (the promotion) */
    bool step_done; /* its work is over: it advances when not paused */
    unsigned weight;
    size_t hosts;
    enum pause_why paused;
    uint64_t pause_left_ms; /* a timed pause held by the operator: what was left of it */
    uint64_t pause_end_ms;  /* a timed pause running: when it ends (loop time) */

    struct act a;

    /* An end asked for while an action was in flight: begun once it answers. */
    bool end_pending, ending;
    enum rollout_policy end_policy;
    bool end_final_is_failed;
    char end_reason[512];

    void *gate;    /* the analysis step's, in flight */
    void *bg_gate; /* background analysis */

    struct loop_timer *timer;    /* a timed pause; abort_delay; the rollback window */
    struct loop_timer *deadline; /* the action's progress deadline */
    struct loop_timer *person;   /* a pause for a person: its deadline */
    void (*timer_fn)(struct rollout *r);

    char waiting[512];
    char reason[512];
    cJSON *verdicts; /* the gates' ends, for status */
};

static const char *const state_names[RO_NSTATES] = {
    [RO_PENDING] = "Pending",        [RO_PROGRESSING] = "Progressing", [RO_PAUSED] = "Paused",
    [RO_PROMOTING] = "Promoting",    [RO_COMPLETED] = "Completed",     [RO_ABORTED] = "Aborted",
    [RO_ROLLED_BACK] = "RolledBack", [RO_FAILED] = "Failed",
};

const char *rollout_state_name(enum rollout_state s)
{
    return s < RO_NSTATES ? state_names[s] : "?";
}

bool rollout_state_final(enum rollout_state s)
{
    return s == RO_COMPLETED || s == RO_ABORTED || s == RO_ROLLED_BACK || s == RO_FAILED;
}

static const char *step_kind_name(enum rollout_step_kind k)
{
    switch (k) {
    case STEP_SET_WEIGHT:
        return "set_weight";
    case STEP_SET_HOSTS:
        return "set_hosts";
    case STEP_PAUSE:
        return "pause";
    case STEP_ANALYSIS:
        return "analysis";
    case STEP_PROMOTE:
        return "promote";
    }
    return "?";
}

static const char *policy_name(enum rollout_policy p)
{
    return p == POLICY_ABORT ? "abort" : p == POLICY_PAUSE ? "pause" : "rollback";
}

static bool by_hosts(const struct rollout *r)
{
    return r->spec.strategy == STRATEGY_CANARY_HOSTS || r->spec.strategy == STRATEGY_ROLLING;
}

/* ---- spec ---- */

void rollout_spec_default_canary(struct rollout_spec *s, uint64_t pause_ms,
                                 const struct analysis_spec *analysis)
{
    static const unsigned weights[] = {5, 10, 25, 50, 75, 100};
    size_t i, n = 0, nw = sizeof weights / sizeof weights[0];

    memset(s, 0, sizeof *s);
    s->strategy = STRATEGY_CANARY;
    s->progress_deadline_ms = 600000;
    s->abort_delay_ms = 30000;
    s->rollback_window_ms = 600000;
    s->steps = xcalloc(nw * 3, sizeof *s->steps);
    for (i = 0; i < nw; i++) {
        if (weights[i] == 100) {
            s->steps[n++].kind = STEP_PROMOTE;
            break;
        }
        s->steps[n].kind = STEP_SET_WEIGHT;
        s->steps[n++].weight = weights[i];
        if (pause_ms > 0) {
            s->steps[n].kind = STEP_PAUSE;
            s->steps[n++].duration_ms = pause_ms;
        }
        if (analysis != NULL) {
            s->steps[n].kind = STEP_ANALYSIS;
            s->steps[n].analysis = analysis;
            s->steps[n++].policy = POLICY_ROLLBACK;
        }
    }
    s->nsteps = n;
}

void rollout_spec_done(struct rollout_spec *s)
{
    free(s->steps);
    memset(s, 0, sizeof *s);
}

/* ---- small things ---- */

static void say_event(struct rollout *r, const char *name, cJSON *data)
{
    if (r->ops->event != NULL)
        r->ops->event(r->arg, r, name, data);
    cJSON_Delete(data);
}

static void set_state(struct rollout *r, enum rollout_state s)
{
    cJSON *d;

    if (r->state == s)
        return;
    d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "from", rollout_state_name(r->state));
    cJSON_AddStringToObject(d, "to", rollout_state_name(s));
    if (r->reason[0] != '\0')
        cJSON_AddStringToObject(d, "reason", r->reason);
    r->state = s;
    say_event(r, "rollout.state", d);
}

static void waiting(struct rollout *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void waiting(struct rollout *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->waiting, sizeof r->waiting, fmt, ap);
    va_end(ap);
}

static void reason(struct rollout *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(struct rollout *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

static void step_label(const struct rollout *r, char *out, size_t len)
{
    if (r->step < r->spec.nsteps)
        snprintf(out, len, "step %zu of %zu (%s)", r->step + 1, r->spec.nsteps,
                 step_kind_name(r->spec.steps[r->step].kind));
    else
        snprintf(out, len, "the promotion");
}

static void timer_cb(void *arg)
{
    struct rollout *r = arg;
    void (*fn)(struct rollout * r) = r->timer_fn;

    r->timer_fn = NULL;
    if (fn != NULL)
        fn(r);
}

static void timer_at(struct rollout *r, uint64_t ms, void (*fn)(struct rollout *r))
{
    r->timer_fn = fn;
    loop_timer_start(r->timer, ms);
}

static void timer_off(struct rollout *r)
{
    loop_timer_stop(r->timer);
    r->timer_fn = NULL;
}

static void stop_gate(struct rollout *r, void **g)
{
    void *gate = *g;

    *g = NULL;
    if (gate != NULL && r->ops->stop_gate != NULL)
        r->ops->stop_gate(r->arg, r, gate);
}

static bool busy(const struct rollout *r)
{
    return r->a.phase != PH_NONE;
}

/* ---- actions: intent, the act, outcome ---- */

static void begin_end(struct rollout *r);

/* Halt where it is: the journal could not be written, so nothing more may be done. */
static void halt_journal(struct rollout *r, const char *msg)
{
    loop_timer_stop(r->deadline);
    cJSON_Delete(r->a.data);
    r->a.data = NULL;
    r->a.phase = PH_NONE;
    r->paused = PW_JOURNAL;
    reason(r, "the journal could not be written (%.400s): nothing more is done until it can be",
           msg != NULL ? msg : "?");
    waiting(r, "the journal");
    set_state(r, RO_PAUSED);
}

static void journal(struct rollout *r, const char *type, const cJSON *data);

static void act_answered(struct rollout *r, unsigned token, int rc, const char *msg)
{
    cJSON *out;

    if (token != r->a.token || r->a.phase != PH_ACTING)
        return; /* late: the deadline decided already */
    loop_timer_stop(r->deadline);
    r->a.rc = rc;
    snprintf(r->a.msg, sizeof r->a.msg, "%s", msg != NULL ? msg : "");
    out = cJSON_Duplicate(r->a.data, true);
    cJSON_AddBoolToObject(out, "ok", rc == 0);
    if (msg != NULL)
        cJSON_AddStringToObject(out, "message", msg);
    if (r->a.kind == A_SET_WEIGHT && rc == 0)
        cJSON_AddNumberToObject(out, "applied", r->a.applied);
    r->a.phase = PH_OUTCOME;
    journal(r, "outcome", out);
    cJSON_Delete(out);
}

static void deadline_cb(void *arg)
{
    struct rollout *r = arg;
    char msg[300];

    snprintf(msg, sizeof msg, "%s did not end within the progress deadline (%llu s)", r->a.name,
             (unsigned long long)(r->spec.progress_deadline_ms / 1000));
    act_answered(r, r->a.token, -1, msg);
}

static void journal_done(struct rollout *r, unsigned token, int rc, const char *msg)
{
    cont_fn then;

    if (token != r->a.token)
        return;
    if (r->a.phase == PH_INTENT) {
        if (rc != 0) {
            halt_journal(r, msg);
            return;
        }
        /* The intent is on disk: act. */
        r->a.phase = PH_ACTING;
        ++r->a.token;
        loop_timer_start(r->deadline, r->spec.progress_deadline_ms);
        r->a.go(r);
        return;
    }
    if (r->a.phase != PH_OUTCOME)
        return;
    if (rc != 0) {
        halt_journal(r, msg);
        return;
    }
    then = r->a.then;
    cJSON_Delete(r->a.data);
    r->a.data = NULL;
    r->a.phase = PH_NONE;
    r->a.then = NULL;
    if (r->end_pending && !r->ending) {
        /* An abort or a failure came while it acted: that goes first. */
        begin_end(r);
        return;
    }
    if (then != NULL)
        then(r, r->a.rc, r->a.msg[0] ? r->a.msg : NULL);
}

static void journal(struct rollout *r, const char *type, const cJSON *data)
{
    ++r->a.token;
    if (r->ops->journal != NULL)
        r->ops->journal(r->arg, r, type, r->a.name, data, r->a.token, journal_done);
    else
        journal_done(r, r->a.token, 0, NULL);
}

/* Journal the intent (data: owned; NULL: {}), then go(r), whose op answers act_answered with
 * r->a.token; the outcome journaled, then(r, rc, msg). */
static void act_n(struct rollout *r, enum action kind, const char *name, cJSON *data,
                  unsigned weight, size_t hosts, void (*go)(struct rollout *r), cont_fn then)
{
    unsigned token = r->a.token; /* it goes on counting */

    memset(&r->a, 0, sizeof r->a);
    r->a.token = token;
    r->a.kind = kind;
    r->a.name = name;
    r->a.data = data != NULL ? data : cJSON_CreateObject();
    r->a.weight = weight;
    r->a.hosts = hosts;
    r->a.go = go;
    r->a.then = then;
    r->a.phase = PH_INTENT;
    journal(r, "intent", r->a.data);
}

static void act(struct rollout *r, enum action kind, const char *name, cJSON *data,
                void (*go)(struct rollout *r), cont_fn then)
{
    act_n(r, kind, name, data, 0, 0, go, then);
}

static void op_done(struct rollout *r, unsigned token, int rc, const char *msg)
{
    act_answered(r, token, rc, msg);
}

static void go_prepare(struct rollout *r)
{
    r->ops->prepare(r->arg, r, r->a.token, op_done);
}

static void go_set_weight(struct rollout *r)
{
    r->a.applied = 0;
    r->ops->set_weight(r->arg, r, r->a.weight, &r->a.applied, r->a.token, op_done);
}

static void go_set_hosts(struct rollout *r)
{
    r->ops->set_hosts(r->arg, r, r->a.hosts, r->a.token, op_done);
}

static void go_stop(struct rollout *r)
{
    bool cand = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->a.data, "candidate"));

    r->ops->stop(r->arg, r, cand, r->a.token, op_done);
}

/* Move traffic: a weight through the router, or hosts without one (then weight is a share of
 * the hosts, 0 or 100 being none or all). */
static void move_traffic(struct rollout *r, const char *name, unsigned weight, size_t hosts,
                         cont_fn then)
{
    cJSON *d = cJSON_CreateObject();

    if (by_hosts(r)) {
        cJSON_AddNumberToObject(d, "hosts", (double)hosts);
        act_n(r, A_SET_HOSTS, name, d, 0, hosts, go_set_hosts, then);
    } else {
        cJSON_AddNumberToObject(d, "weight", weight);
        act_n(r, A_SET_WEIGHT, name, d, weight, 0, go_set_weight, then);
    }
}

/* ---- the end: traffic back on stable ---- */

static void stop_candidate_later(struct rollout *r);

static void ended_stopped(struct rollout *r, int rc, const char *msg)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddBoolToObject(d, "ok", rc == 0);
    if (msg != NULL)
        cJSON_AddStringToObject(d, "message", msg);
    say_event(r, "rollout.candidate.stopped", d);
}

static void stop_candidate_now(struct rollout *r)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddBoolToObject(d, "candidate", true);
    act(r, A_STOP, "stop_candidate", d, go_stop, ended_stopped);
}

static void stop_candidate_later(struct rollout *r)
{
    if (r->spec.abort_delay_ms == 0)
        stop_candidate_now(r);
    else
        timer_at(r, r->spec.abort_delay_ms, stop_candidate_now);
}

static void back_on_stable(struct rollout *r, int rc, const char *msg)
{
    r->ending = false;
    if (rc != 0) {
        reason(r, "%.250s; and traffic could not be put back on %s: %.200s", r->end_reason,
               r->stable, msg != NULL ? msg : "?");
        waiting(r, "the operator: traffic may still reach %s", r->candidate);
        set_state(r, RO_FAILED);
        return;
    }
    r->weight = 0;
    r->hosts = 0;
    snprintf(r->reason, sizeof r->reason, "%s", r->end_reason);
    r->waiting[0] = '\0';
    if (r->end_policy == POLICY_ABORT) {
        set_state(r, RO_ABORTED);
        return;
    }
    set_state(r, RO_ROLLED_BACK);
    stop_candidate_later(r);
}

/* Traffic to stable now (the pending end's policy and reason). */
static void begin_end(struct rollout *r)
{
    r->end_pending = false;
    r->ending = true;
    timer_off(r);
    loop_timer_stop(r->person);
    stop_gate(r, &r->gate);
    stop_gate(r, &r->bg_gate);
    r->paused = PW_NONE;
    waiting(r, "traffic back on %s", r->stable);
    move_traffic(r, r->end_policy == POLICY_ABORT ? "abort" : "rollback", 0, 0, back_on_stable);
}

/* End with traffic on stable (policy rollback or abort), or pause (policy pause). */
static void end_with(struct rollout *r, enum rollout_policy policy, const char *why)
{
    if (rollout_state_final(r->state) || r->ending)
        return;
    if (policy == POLICY_PAUSE) {
        r->paused = PW_POLICY;
        snprintf(r->reason, sizeof r->reason, "%.400s (failure policy: pause: traffic stays)", why);
        waiting(r, "the operator: promote, resume or abort");
        set_state(r, RO_PAUSED);
        return;
    }
    r->end_policy = policy;
    snprintf(r->end_reason, sizeof r->end_reason, "%.500s", why);
    r->end_pending = true;
    if (!busy(r))
        begin_end(r);
    /* else: when the action in flight has answered (journal_done). */
}

/* ---- steps ---- */

static void run_step(struct rollout *r);
static void promote(struct rollout *r);

static void next_step(struct rollout *r)
{
    r->step_done = true;
    if (r->paused != PW_NONE || rollout_state_final(r->state) || r->ending || busy(r))
        return;
    r->step_done = false;
    if (r->step < r->spec.nsteps)
        r->step++;
    run_step(r);
}

static void weight_set(struct rollout *r, int rc, const char *msg)
{
    char why[600];

    if (rc != 0) {
        snprintf(why, sizeof why, "%s", msg != NULL ? msg : "the weight could not be set");
        end_with(r, POLICY_ROLLBACK, why);
        return;
    }
    r->weight = r->a.applied;
    next_step(r);
}

static void hosts_set(struct rollout *r, int rc, const char *msg)
{
    if (rc != 0) {
        end_with(r, POLICY_ROLLBACK, msg != NULL ? msg : "the hosts could not be switched");
        return;
    }
    r->hosts = r->a.hosts;
    next_step(r);
}

/* How many hosts a set_hosts step means: a count, or a share of the targets (rounded up). */
static size_t hosts_for(const struct rollout *r, const struct rollout_step *s)
{
    size_t n;

    if (s->hosts_percent)
        n = (r->ntargets * s->hosts + 99) / 100;
    else
        n = s->hosts;
    if (n > r->ntargets)
        n = r->ntargets;
    if (n == 0 && s->hosts > 0)
        n = 1;
    return n;
}

static void pause_over(struct rollout *r)
{
    r->pause_end_ms = 0;
    next_step(r);
}

static void person_cb(void *arg)
{
    struct rollout *r = arg;
    cJSON *d = cJSON_CreateObject();
    char label[80];

    step_label(r, label, sizeof label);
    cJSON_AddNumberToObject(d, "step", (double)r->step + 1);
    cJSON_AddNumberToObject(d, "deadline_s", (double)r->spec.steps[r->step].deadline_ms / 1000);
    say_event(r, "rollout.pause.deadline", d);
    waiting(r, "%s: a person to promote (n3ctl rollout promote), past its deadline of %llu s",
            label, (unsigned long long)(r->spec.steps[r->step].deadline_ms / 1000));
}

static void run_step(struct rollout *r)
{
    const struct rollout_step *s;
    char label[80];
    cJSON *d;

    if (r->step >= r->spec.nsteps) {
        promote(r);
        return;
    }
    s = &r->spec.steps[r->step];
    step_label(r, label, sizeof label);
    d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "step", (double)r->step + 1);
    cJSON_AddStringToObject(d, "kind", step_kind_name(s->kind));
    say_event(r, "rollout.step.started", d);
    switch (s->kind) {
    case STEP_SET_WEIGHT:
        waiting(r, "%s: the router to give %s %u %%", label, r->candidate, s->weight);
        move_traffic(r, "set_weight", s->weight, (r->ntargets * s->weight + 99) / 100, weight_set);
        break;
    case STEP_SET_HOSTS: {
        size_t n = hosts_for(r, s);

        waiting(r, "%s: %zu of %zu hosts to serve %s", label, n, r->ntargets, r->candidate);
        move_traffic(r, "set_hosts", n == r->ntargets ? 100 : 0, n, hosts_set);
        break;
    }
    case STEP_PAUSE:
        if (s->duration_ms > 0) {
            r->pause_end_ms = loop_now_ms(r->loop) + s->duration_ms;
            waiting(r, "%s: %llu s", label, (unsigned long long)(s->duration_ms / 1000));
            timer_at(r, s->duration_ms, pause_over);
        } else {
            r->paused = PW_STEP;
            reason(r, "a pause for a person (%s)", label);
            waiting(r, "%s: a person to promote (n3ctl rollout promote)", label);
            set_state(r, RO_PAUSED);
            if (s->deadline_ms > 0)
                loop_timer_start(r->person, s->deadline_ms);
        }
        break;
    case STEP_ANALYSIS:
        waiting(r, "%s: its analysis to decide", label);
        r->gate = r->ops->start_gate(r->arg, r, s->analysis, false);
        break;
    case STEP_PROMOTE:
        promote(r);
        break;
    }
}

/* ---- the promotion, and the old slot kept warm ---- */

static void old_stopped(struct rollout *r, int rc, const char *msg)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddBoolToObject(d, "ok", rc == 0);
    if (msg != NULL)
        cJSON_AddStringToObject(d, "message", msg);
    say_event(r, "rollout.stable.stopped", d);
}

static void stop_old(struct rollout *r)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddBoolToObject(d, "candidate", false);
    act(r, A_STOP, "stop_stable", d, go_stop, old_stopped);
}

static void promoted(struct rollout *r, int rc, const char *msg)
{
    if (rc != 0) {
        end_with(r, POLICY_ROLLBACK, msg != NULL ? msg : "the promotion failed");
        return;
    }
    r->weight = 100;
    r->hosts = r->ntargets;
    stop_gate(r, &r->bg_gate);
    reason(r, "%s serves all the traffic", r->candidate);
    if (r->spec.rollback_window_ms > 0) {
        waiting(r, "the rollback window: %s kept warm for %llu s", r->stable,
                (unsigned long long)(r->spec.rollback_window_ms / 1000));
        timer_at(r, r->spec.rollback_window_ms, stop_old);
    } else {
        r->waiting[0] = '\0';
    }
    set_state(r, RO_COMPLETED);
}

static void promote(struct rollout *r)
{
    r->step = r->spec.nsteps;
    r->paused = PW_NONE;
    set_state(r, RO_PROMOTING);
    waiting(r, "the promotion: all the traffic to %s", r->candidate);
    move_traffic(r, "promote", 100, r->ntargets, promoted);
}

/* ---- gates ---- */

static void keep_verdict(struct rollout *r, const char *gate, enum rollout_verdict v,
                         const char *why)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "gate", gate);
    cJSON_AddStringToObject(o, "verdict",
                            v == VERDICT_PASS   ? "pass"
                            : v == VERDICT_FAIL ? "fail"
                                                : "inconclusive");
    cJSON_AddStringToObject(o, "reason", why != NULL ? why : "");
    cJSON_AddNumberToObject(o, "time_ms", (double)loop_now_ms(r->loop));
    cJSON_AddItemToArray(r->verdicts, o);
    while (cJSON_GetArraySize(r->verdicts) > ROLLOUT_VERDICTS_MAX)
        cJSON_DeleteItemFromArray(r->verdicts, 0);
    say_event(r,
              v == VERDICT_PASS   ? "analysis.passed"
              : v == VERDICT_FAIL ? "analysis.failed"
                                  : "analysis.inconclusive",
              cJSON_Duplicate(o, true));
}

static void inconclusive(struct rollout *r, const char *what, const char *why)
{
    r->paused = PW_INCONCLUSIVE;
    reason(r, "%s was inconclusive: %.400s", what, why != NULL ? why : "?");
    waiting(r, "the operator: resume (analyse again), promote (go on) or abort");
    set_state(r, RO_PAUSED);
}

void rollout_gate_ended(struct rollout *r, void *gate, enum rollout_verdict v, const char *why)
{
    char what[600];

    if (gate == NULL || rollout_state_final(r->state) || r->ending)
        return;
    if (gate == r->gate) {
        char label[80];

        r->gate = NULL;
        step_label(r, label, sizeof label);
        snprintf(what, sizeof what, "the analysis of %s", label);
        keep_verdict(r, label, v, why);
        if (v == VERDICT_PASS)
            next_step(r);
        else if (v == VERDICT_FAIL)
            end_with(r, r->spec.steps[r->step].policy,
                     (snprintf(what, sizeof what, "the analysis of %s failed: %.400s", label,
                               why != NULL ? why : "?"),
                      what));
        else
            inconclusive(r, what, why);
        return;
    }
    if (gate == r->bg_gate) {
        r->bg_gate = NULL;
        keep_verdict(r, "background", v, why);
        if (v == VERDICT_FAIL) {
            snprintf(what, sizeof what, "the background analysis failed: %.400s",
                     why != NULL ? why : "?");
            end_with(r, r->spec.background_policy, what);
        } else if (v == VERDICT_INCONCLUSIVE) {
            inconclusive(r, "the background analysis", why);
        }
    }
}

/* ---- start ---- */

static void prepared(struct rollout *r, int rc, const char *msg)
{
    char why[700];

    if (rc != 0) {
        snprintf(why, sizeof why, "%s could not be started: %.500s", r->candidate,
                 msg != NULL ? msg : "?");
        end_with(r, POLICY_ROLLBACK, why);
        return;
    }
    if (r->spec.background != NULL)
        r->bg_gate = r->ops->start_gate(r->arg, r, r->spec.background, true);
    r->step = 0;
    run_step(r);
}

void rollout_start(struct rollout *r)
{
    if (r->state != RO_PENDING)
        return;
    set_state(r, RO_PROGRESSING);
    waiting(r, "%s to start where it will run, and be ready", r->candidate);
    act(r, A_PREPARE, "prepare", NULL, go_prepare, prepared);
}

/* ---- the operator's commands ---- */

static int refuse(char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

static int refuse_ended(struct rollout *r, char *msg, size_t len)
{
    if (rollout_state_final(r->state))
        return refuse(msg, len, "the rollout has ended (%s)", rollout_state_name(r->state));
    if (r->ending || r->end_pending)
        return refuse(msg, len, "the rollout is putting traffic back on %s", r->stable);
    return 0;
}

int rollout_pause(struct rollout *r, const char *why, char *msg, size_t len)
{
    if (refuse_ended(r, msg, len) != 0)
        return -1;
    if (r->paused != PW_NONE)
        return refuse(msg, len, "it is paused already: %s", r->reason);
    r->paused = PW_OPERATOR;
    if (r->pause_end_ms > 0) {
        uint64_t now = loop_now_ms(r->loop);

        r->pause_left_ms = r->pause_end_ms > now ? r->pause_end_ms - now : 0;
        r->pause_end_ms = 0;
        timer_off(r);
    }
    reason(r, "paused by the operator%s%.300s", why != NULL && why[0] ? ": " : "",
           why != NULL ? why : "");
    waiting(r, "the operator: rollout resume, promote or abort");
    set_state(r, RO_PAUSED);
    return 0;
}

int rollout_resume(struct rollout *r, char *msg, size_t len)
{
    enum pause_why was = r->paused;

    if (refuse_ended(r, msg, len) != 0)
        return -1;
    if (was == PW_NONE)
        return refuse(msg, len, "it is not paused (%s)", rollout_state_name(r->state));
    if (was == PW_STEP)
        return refuse(msg, len,
                      "it waits at a pause for a person: rollout promote passes it (resume "
                      "only lifts the operator's own pause)");
    if (busy(r))
        return refuse(msg, len, "wait: %s is in flight", r->a.name);
    r->paused = PW_NONE;
    r->reason[0] = '\0';
    set_state(r, r->step >= r->spec.nsteps ? RO_PROMOTING : RO_PROGRESSING);
    switch (was) {
    case PW_OPERATOR:
        if (r->pause_left_ms > 0) {
            char label[80];
            uint64_t left = r->pause_left_ms;

            r->pause_left_ms = 0;
            r->pause_end_ms = loop_now_ms(r->loop) + left;
            step_label(r, label, sizeof label);
            waiting(r, "%s: %llu s left", label, (unsigned long long)(left / 1000));
            timer_at(r, left, pause_over);
        } else if (r->step_done) {
            next_step(r);
        }
        break;
    case PW_INCONCLUSIVE:
    case PW_POLICY:
    case PW_JOURNAL:
        /* Again: the step's analysis (or the action that could not be journaled). */
        if (r->bg_gate == NULL && r->spec.background != NULL && was != PW_JOURNAL &&
            r->gate == NULL && r->step < r->spec.nsteps &&
            r->spec.steps[r->step].kind != STEP_ANALYSIS)
            r->bg_gate = r->ops->start_gate(r->arg, r, r->spec.background, true);
        r->step_done = false;
        run_step(r);
        break;
    default:
        break;
    }
    return 0;
}

int rollout_promote(struct rollout *r, bool full, char *msg, size_t len)
{
    if (refuse_ended(r, msg, len) != 0)
        return -1;
    if (r->state == RO_PENDING)
        return refuse(msg, len, "it has not started");
    if (busy(r))
        return refuse(msg, len, "wait: %s is in flight", r->a.name);
    if (r->step >= r->spec.nsteps)
        return refuse(msg, len, "it is being promoted already");
    stop_gate(r, &r->gate);
    timer_off(r);
    loop_timer_stop(r->person);
    r->pause_end_ms = 0;
    r->pause_left_ms = 0;
    r->paused = PW_NONE;
    r->reason[0] = '\0';
    r->step_done = false;
    set_state(r, RO_PROGRESSING);
    {
        cJSON *d = cJSON_CreateObject();

        cJSON_AddBoolToObject(d, "full", full);
        cJSON_AddNumberToObject(d, "step", (double)r->step + 1);
        say_event(r, "rollout.promoted", d);
    }
    if (full) {
        promote(r);
        return 0;
    }
    r->step++;
    run_step(r);
    return 0;
}

int rollout_abort(struct rollout *r, const char *why, char *msg, size_t len)
{
    char text[600];

    if (refuse_ended(r, msg, len) != 0)
        return -1;
    snprintf(text, sizeof text, "aborted by the operator%s%.400s",
             why != NULL && why[0] ? ": " : "", why != NULL ? why : "");
    end_with(r, POLICY_ABORT, text);
    return 0;
}

/* ---- life ---- */

struct rollout *rollout_new(const struct rollout_params *p)
{
    struct rollout *r = xcalloc(1, sizeof *r);

    r->loop = p->loop;
    r->spec = *p->spec;
    r->spec.steps = xcalloc(p->spec->nsteps + 1, sizeof *r->spec.steps);
    memcpy(r->spec.steps, p->spec->steps, p->spec->nsteps * sizeof *r->spec.steps);
    if (r->spec.progress_deadline_ms == 0)
        r->spec.progress_deadline_ms = 600000;
    r->id = xstrdup(p->id != NULL ? p->id : "");
    r->environment = xstrdup(p->environment != NULL ? p->environment : "");
    r->candidate = xstrdup(p->candidate != NULL ? p->candidate : "");
    r->stable = xstrdup(p->stable != NULL ? p->stable : "");
    r->ntargets = p->ntargets;
    r->ops = p->ops;
    r->arg = p->arg;
    r->state = RO_PENDING;
    r->timer = loop_timer_new(r->loop, timer_cb, r);
    r->deadline = loop_timer_new(r->loop, deadline_cb, r);
    r->person = loop_timer_new(r->loop, person_cb, r);
    r->verdicts = cJSON_CreateArray();
    return r;
}

void rollout_free(struct rollout *r)
{
    if (r == NULL)
        return;
    stop_gate(r, &r->gate);
    stop_gate(r, &r->bg_gate);
    loop_timer_free(r->timer);
    loop_timer_free(r->deadline);
    loop_timer_free(r->person);
    cJSON_Delete(r->a.data);
    cJSON_Delete(r->verdicts);
    free(r->spec.steps);
    free(r->id);
    free(r->environment);
    free(r->candidate);
    free(r->stable);
    free(r);
}

enum rollout_state rollout_state(const struct rollout *r)
{
    return r->state;
}

size_t rollout_step_index(const struct rollout *r)
{
    return r->step;
}

unsigned rollout_weight(const struct rollout *r)
{
    return r->weight;
}

const char *rollout_waiting_for(const struct rollout *r)
{
    return r->waiting;
}

const char *rollout_reason(const struct rollout *r)
{
    return r->reason;
}

const char *rollout_id(const struct rollout *r)
{
    return r->id;
}

const char *rollout_candidate(const struct rollout *r)
{
    return r->candidate;
}

const char *rollout_stable(const struct rollout *r)
{
    return r->stable;
}

cJSON *rollout_to_json(const struct rollout *r)
{
    cJSON *o = cJSON_CreateObject(), *steps;
    size_t i;

    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "environment", r->environment);
    cJSON_AddStringToObject(o, "candidate", r->candidate);
    cJSON_AddStringToObject(o, "stable", r->stable);
    cJSON_AddStringToObject(o, "state", rollout_state_name(r->state));
    if (r->step < r->spec.nsteps)
        cJSON_AddNumberToObject(o, "step", (double)r->step + 1);
    else
        cJSON_AddNullToObject(o, "step");
    cJSON_AddNumberToObject(o, "steps_total", (double)r->spec.nsteps);
    if (by_hosts(r))
        cJSON_AddNumberToObject(o, "hosts", (double)r->hosts);
    else
        cJSON_AddNumberToObject(o, "weight", r->weight);
    cJSON_AddStringToObject(o, "waiting_for", r->waiting);
    cJSON_AddStringToObject(o, "reason", r->reason);
    if (busy(r))
        cJSON_AddStringToObject(o, "in_flight", r->a.name);
    steps = cJSON_AddArrayToObject(o, "plan");
    for (i = 0; i < r->spec.nsteps; i++) {
        const struct rollout_step *s = &r->spec.steps[i];
        cJSON *st = cJSON_CreateObject();

        cJSON_AddStringToObject(st, "kind", step_kind_name(s->kind));
        if (s->kind == STEP_SET_WEIGHT)
            cJSON_AddNumberToObject(st, "weight", s->weight);
        if (s->kind == STEP_SET_HOSTS) {
            char h[24];

            snprintf(h, sizeof h, "%u%s", s->hosts, s->hosts_percent ? "%" : "");
            cJSON_AddStringToObject(st, "hosts", h);
        }
        if (s->kind == STEP_PAUSE)
            cJSON_AddNumberToObject(st, "seconds", (double)s->duration_ms / 1000);
        if (s->kind == STEP_ANALYSIS)
            cJSON_AddStringToObject(st, "on_failure", policy_name(s->policy));
        cJSON_AddItemToArray(steps, st);
    }
    cJSON_AddItemToObject(o, "verdicts", cJSON_Duplicate(r->verdicts, true));
    return o;
}
