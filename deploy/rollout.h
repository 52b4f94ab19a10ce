/*
 * A rollout: the state machine that moves an environment from its stable version to a
 * candidate, step by step, on the loop and its clock (so the tests run it on the fake clock).
 *
 *   Pending -> Progressing -> (Paused <-> Progressing) -> Promoting -> Completed
 *                  |                 |
 *                  +--> Aborted      +--> RolledBack, Failed
 *
 * Steps (n3.json's rollout "steps", docs/rollouts.md):
 *   set_weight W   the candidate gets W % of the traffic, through the router (read back: the
 *                  share the router applied is what the step records)
 *   set_hosts N    host by host, without a router: N targets ("1", "25%", "100%") serve the
 *                  candidate (current switched, the candidate started there)
 *   pause          for a duration, or until promoted (with a deadline that raises an event)
 *   analysis       a gate (deploy/analysis.h) on the live figures; its failure policy says
 *                  what a failure does: rollback, abort or pause
 *   promote        everything to the candidate (100 %, every host)
 * and background analysis that runs from the first step that sends traffic to the end.
 *
 * What the world does is the caller's (struct rollout_ops): the engine only decides, journals
 * and waits. Each action is told to the journal hook before it is carried out (intent) and
 * after (outcome), so that a controller killed at any moment can be resumed from the journal.
 * Every action has the progress deadline: nothing waits forever.
 */
#ifndef N3_ROLLOUT_H
#define N3_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

struct loop;
struct rollout;
struct analysis_spec;

enum rollout_state {
    RO_PENDING,
    RO_PROGRESSING,
    RO_PAUSED,
    RO_PROMOTING,
    RO_COMPLETED,
    RO_ABORTED,     /* traffic on stable, the candidate kept running (abort) */
    RO_ROLLED_BACK, /* traffic on stable, the candidate stopped after abort_delay */
    RO_FAILED,      /* it could not go on, and could not put traffic back on stable either */
    RO_NSTATES,
};

enum rollout_step_kind {
    STEP_SET_WEIGHT,
    STEP_SET_HOSTS,
    STEP_PAUSE,
    STEP_ANALYSIS,
    STEP_PROMOTE,
};

enum rollout_strategy {
    STRATEGY_BLUE_GREEN,
    STRATEGY_CANARY, /* weighted, through the router */
    STRATEGY_CANARY_HOSTS /* host by host, no router (router "none") */,
    STRATEGY_ROLLING, /* host by host in batches, a health gate a batch */
};

/* What a failed gate does (docs/rollouts.md, "Failure policies"). */
enum rollout_policy {
    POLICY_ROLLBACK, /* traffic to stable at once; the candidate stopped after abort_delay */
    POLICY_ABORT,    /* traffic to stable at once; the candidate kept running */
    POLICY_PAUSE,    /* traffic stays; the operator decides */
};

struct rollout_step {
    enum rollout_step_kind kind;
    unsigned weight;      /* set_weight: 0-100 */
    unsigned hosts;       /* set_hosts: a count, or a percentage with hosts_percent */
    bool hosts_percent;   /* "25%" */
    uint64_t duration_ms; /* pause: 0 = until promoted */
    uint64_t deadline_ms; /* pause until promoted: an event after this; 0: none */
    const struct analysis_spec *analysis; /* analysis: the gate (the caller's, it outlives) */
    enum rollout_policy policy;           /* analysis: what its failure does */
};

struct rollout_spec {
    enum rollout_strategy strategy;
    struct rollout_step *steps;
    size_t nsteps;
    const struct analysis_spec *background; /* NULL: none (the caller's, it outlives) */
    enum rollout_policy background_policy;
    uint64_t progress_deadline_ms; /* each step's; 600 s */
    uint64_t abort_delay_ms;       /* rollback: the candidate stopped this long after; 30 s */
    uint64_t rollback_window_ms;   /* blue-green: the old slot kept warm; 600 s */
    unsigned failure_budget;       /* rolling: hosts that may fail before the rollout does */
};

/* The canary defaults of NAMEL3SS.md: 5, 10, 25, 50, 75, 100, a pause of pause_ms and the
 * analysis (NULL: none) after each but the last (rollout_spec_done frees the steps). */
void rollout_spec_default_canary(struct rollout_spec *s, uint64_t pause_ms,
                                 const struct analysis_spec *analysis);
void rollout_spec_done(struct rollout_spec *s);

/* A gate's end, as the caller's gate says it. */
enum rollout_verdict {
    VERDICT_PASS,
    VERDICT_FAIL,
    VERDICT_INCONCLUSIVE,
};

/* ---- what the world does: the caller's ---- */

/* Every action answers once, on the loop, after the call returned, with the token it was given:
 * rc 0, or -1 with msg. An answer after the action's progress deadline is ignored. */
typedef void (*rollout_done_fn)(struct rollout *r, unsigned token, int rc, const char *msg);

struct rollout_ops {
    /* Start the candidate where it will run (the idle slots; pushed first where missing) and
     * wait until ready. */
    void (*prepare)(void *arg, struct rollout *r, unsigned token, rollout_done_fn done);
    /* The candidate's share of the traffic, 0-100, set and read back: *applied is what the
     * router has. */
    void (*set_weight)(void *arg, struct rollout *r, unsigned weight, unsigned *applied,
                       unsigned token, rollout_done_fn done);
    /* Host by host: the first n targets (in order) serve the candidate. */
    void (*set_hosts)(void *arg, struct rollout *r, size_t n, unsigned token, rollout_done_fn done);
    /* Run a gate (deploy/analysis.h) on the candidate's live figures: the caller answers
     * rollout_gate_ended once (a background gate only when it fails), unless stop_gate came
     * first. Returns a handle for stop_gate. */
    void *(*start_gate)(void *arg, struct rollout *r, const struct analysis_spec *spec,
                        bool background);
    void (*stop_gate)(void *arg, struct rollout *r, void *gate);
    /* Stop the slots that lost: the candidate's (after a rollback), or the old stable's (after
     * the rollback window of a completed rollout). */
    void (*stop)(void *arg, struct rollout *r, bool candidate, unsigned token,
                 rollout_done_fn done);
    /* Told of every state change, step and verdict (the bus, the journal's "state" lines). */
    void (*event)(void *arg, struct rollout *r, const char *name, const cJSON *data);
    /* Write-ahead: before an action (type "intent") and after it ("outcome", with its result).
     * The engine waits for done before it acts: rc -1 (the journal could not be written)
     * stops the rollout where it is (state Paused, with the reason). */
    void (*journal)(void *arg, struct rollout *r, const char *type, const char *action,
                    const cJSON *data, unsigned token, rollout_done_fn done);
};

struct rollout_params {
    struct loop *loop;
    const struct rollout_spec *spec; /* copied */
    const char *id, *environment, *candidate, *stable;
    size_t ntargets; /* for set_hosts percentages and the rolling batches */
    const struct rollout_ops *ops;
    void *arg;
};

struct rollout *rollout_new(const struct rollout_params *p);
void rollout_free(struct rollout *r);

/* Go (Pending -> Progressing). */
void rollout_start(struct rollout *r);

/* A gate started by ops->start_gate ended (reason: the verdict that decided, in words). */
void rollout_gate_ended(struct rollout *r, void *gate, enum rollout_verdict v, const char *reason);

/* The operator's commands. 0, or -1 with why it is refused now (msg). */
int rollout_promote(struct rollout *r, bool full, char *msg, size_t len);
int rollout_pause(struct rollout *r, const char *why, char *msg, size_t len);
int rollout_resume(struct rollout *r, char *msg, size_t len);
int rollout_abort(struct rollout *r, const char *why, char *msg, size_t len);

enum rollout_state rollout_state(const struct rollout *r);
const char *rollout_state_name(enum rollout_state s); /* "Progressing", ... */
bool rollout_state_final(enum rollout_state s);
size_t rollout_step_index(const struct rollout *r); /* the step in progress (nsteps: none) */
unsigned rollout_weight(const struct rollout *r);   /* the candidate's share, read back */
/* What it waits for, in words ("pause until promoted (step 3 of 9)", "analysis: t2 green
 * error_rate 4.8 % > 1 %"), or "". */
const char *rollout_waiting_for(const struct rollout *r);
/* Why it ended or paused, or "". */
const char *rollout_reason(const struct rollout *r);
/* Its state as JSON (state, step, weight, waiting_for, reason, verdicts) for status. */
cJSON *rollout_to_json(const struct rollout *r);

const char *rollout_id(const struct rollout *r);
const char *rollout_candidate(const struct rollout *r);
const char *rollout_stable(const struct rollout *r);

#endif
