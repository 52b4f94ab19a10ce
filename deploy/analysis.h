/*
 * Analysis: the gates of a rollout. Rules on the live figures of deploy/metricsrc.h (error
 * rate, p50/p95/p99 latency, request rate), judged for every candidate instance (a target's
 * slot), alone or against the stable version over the same window; and the gate that takes a
 * measurement every interval on the loop's clock and counts the results with Argo Rollouts'
 * meanings. Pure logic: the figures come from the caller.
 *
 * n3.json (an "analysis" object; it sits under a rollout's config):
 *
 *   "analysis": {
 *     "interval_seconds": 30,        between measurements (1 to 86400)
 *     "count": 0,                    measurements to take; 0 or absent: until the gate is stopped
 *     "initial_delay_seconds": 0,    before the first one
 *     "failure_limit": 0,            failed measurements tolerated
 *     "inconclusive_limit": 0,       inconclusive measurements tolerated
 *     "consecutive_error_limit": 4,  metric source failures in a row tolerated
 *     "min_samples": 100,            requests in the window before any verdict
 *     "on_failure": "rollback",      or "abort", or "pause" (what the rollout does; see below)
 *     "rules": [
 *       {"metric": "error_rate", "max_percent": 1},
 *       {"metric": "p95", "max_ms": 2000},
 *       {"metric": "req_s", "min_per_second": 5, "name": "gets traffic"},
 *       {"metric": "error_rate", "compare": "stable", "max_increase": 0, "confidence": 0.99},
 *       {"metric": "p99", "compare": "stable", "max_ratio": 1.5, "baseline": "same_target"}
 *     ]
 *   }
 *
 * Units are in the key, so that no number is read in the wrong one: an error rate's threshold
 * is a percentage ("max_percent": 1 is 1 %, never a fraction 0-1), a latency's in milliseconds
 * ("max_ms", "min_ms"), a request rate's in requests a second ("max_per_second",
 * "min_per_second"). A rule has exactly one test. "max" and "min" alone are refused with the
 * key the metric takes.
 *
 * Comparison rules ("compare": "stable") judge the candidate against the stable version over
 * the same window: "baseline" "all" (the default: the stable's figures over all its instances)
 * or "same_target" (the stable slot on the candidate's own target).
 * - error_rate, "max_increase" (absolute percentage points, default 0): fails when the
 *   candidate's error rate is significantly higher than the stable's plus max_increase. The
 *   test is a one-sided two-proportion z-test, H0: p_c - p_s <= d, with Yates' continuity
 *   correction (1/n_c + 1/n_s) / 2, the pooled variance when d is 0 and the unpooled one
 *   otherwise, at "confidence" (default 0.99: z > 2.33). Both sides need min_samples requests:
 *   a difference on fewer (0, 1, 2, 1 errors against none) is never called significant.
 * - p50/p95/p99, "max_ratio" (1 to 1000): fails when the candidate's quantile over the
 *   stable's is above it. Quantiles come from histograms, not from each request, so there is
 *   no rank test; min_samples on both sides keeps it from judging noise.
 * A comparison needs the stable's traffic in the same window: after a full switch (blue-green
 * after promotion) the stable has none and the rule is inconclusive; such gates take rules
 * without "compare".
 *
 * Without "rules": NAMEL3SS.md's defaults, error_rate max 1 %, p95 max 2000 ms, and the error
 * rate not significantly worse than the stable's (max_increase 0, confidence 0.99).
 *
 * A verdict (one rule, one candidate instance) is pass, fail, inconclusive or error:
 * - inconclusive: fewer than min_samples requests in the window (either side of a
 *   comparison), or the metric unknown (a source without latencies, no request), with the
 *   reason; never a pass. A request rate is the one figure judged on any count: its rate is
 *   what is measured, so no traffic fails a "min_per_second" rule. A quantile beyond the
 *   histogram's highest bound (metricsrc's latency_capped) is only a lower bound: it fails a
 *   max above it, and is inconclusive otherwise.
 * - error: the metric source failed (the whole read, or this instance's, with nothing older
 *   in the window), with its reason.
 * Boundaries pass: a value equal to a max or to a min passes.
 * A measurement's result: fail if any verdict fails, else error if any errored, else
 * inconclusive if any is, else pass; with a one-line summary for the operator.
 *
 * The gate (Argo Rollouts' AnalysisRun): after initial_delay, a measurement every interval
 * (from the start of one to the start of the next). A measurement not answered within the
 * interval is an error. After each one, in this order: more failed measurements than
 * failure_limit: Failed; more inconclusive than inconclusive_limit: Inconclusive; more errors
 * in a row than consecutive_error_limit: Failed ("the metric source failed N times in a row");
 * count measurements taken (errors are not counted, as in Argo): Successful, unless none of
 * them passed, then Inconclusive (Argo calls that Successful; a gate that never saw a pass
 * must not advance a rollout). count 0 runs until analysis_gate_stop and ends on its own only
 * by failing (or by more inconclusive measurements than its limit). Any non-error measurement
 * resets the error streak.
 *
 * on_failure is the rollout's (issue 10, point 4): "rollback" (traffic to stable at once, the
 * candidate stopped after abort_delay), "abort" (traffic to stable, the candidate kept for
 * inspection), "pause" (traffic stays; the operator decides). An Inconclusive gate pauses.
 */
#ifndef N3_ANALYSIS_H
#define N3_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "deploy/hoststate.h"
#include "deploy/metricsrc.h"

struct cfg;
struct loop;

#define ANALYSIS_HISTORY_MAX   100 /* measurements a gate keeps (the newest) */
#define ANALYSIS_RULES_MAX     32
#define ANALYSIS_RULE_NAME_MAX 64

enum analysis_metric {
    ANALYSIS_ERROR_RATE,
    ANALYSIS_P50,
    ANALYSIS_P95,
    ANALYSIS_P99,
    ANALYSIS_REQ_S,
    ANALYSIS_NMETRICS
};

/* What a rule tests. */
enum analysis_kind {
    ANALYSIS_MAX,          /* value <= threshold */
    ANALYSIS_MIN,          /* value >= threshold */
    ANALYSIS_MAX_INCREASE, /* error rate vs stable: not significantly more than threshold points */
    ANALYSIS_MAX_RATIO,    /* latency vs stable: candidate / stable <= threshold */
};

enum analysis_baseline { ANALYSIS_BASELINE_ALL, ANALYSIS_BASELINE_SAME_TARGET };

enum analysis_policy { ANALYSIS_ROLLBACK, ANALYSIS_ABORT, ANALYSIS_PAUSE };

struct analysis_rule {
    char *name; /* unique in its spec; default: the metric, "<metric>_vs_stable" for comparisons */
    enum analysis_metric metric;
    enum analysis_kind kind;
    /* In the metric's unit (error rate %, latency ms, req/s); max_increase in percentage
     * points; max_ratio a ratio. */
    double threshold;
    enum analysis_baseline baseline; /* comparisons */
    double confidence;               /* max_increase: 0.5 to 0.9999; 0.99 */
};

struct analysis_spec {
    uint64_t interval_ms;             /* 30 s */
    uint64_t initial_delay_ms;        /* 0 */
    unsigned count;                   /* 0: until stopped */
    unsigned failure_limit;           /* 0 */
    unsigned inconclusive_limit;      /* 0 */
    unsigned consecutive_error_limit; /* 4 */
    uint64_t min_samples;             /* 100 */
    enum analysis_policy on_failure;  /* rollback */
    struct analysis_rule *rules;
    size_t nrules;
};

/* The defaults, with NAMEL3SS.md's rules (free with analysis_spec_done). */
void analysis_spec_default(struct analysis_spec *spec);
/* An "analysis" object (node) loaded into spec, the defaults for what it leaves out: 0, or -1
 * with err at the position of what is wrong (file:line:column: path: what, what to do). */
int analysis_spec_load(const struct cfg *c, const cJSON *node, struct analysis_spec *spec,
                       struct err *err);
void analysis_spec_done(struct analysis_spec *spec);
void analysis_spec_copy(struct analysis_spec *to, const struct analysis_spec *from);

/* "error_rate", "p50", "p95", "p99", "req_s" */
const char *analysis_metric_name(enum analysis_metric m);
/* "max", "min", "max_increase", "max_ratio" */
const char *analysis_kind_name(enum analysis_kind k);
/* "rollback", "abort", "pause" */
const char *analysis_policy_name(enum analysis_policy p);

/* ---- judging one measurement ---- */

enum analysis_result {
    ANALYSIS_PASS,
    ANALYSIS_FAIL,
    ANALYSIS_INCONCLUSIVE,
    ANALYSIS_ERROR,
};

/* "pass", "fail", "inconclusive", "error" */
const char *analysis_result_name(enum analysis_result r);

/* One instance's figures over the window. */
struct analysis_instance {
    const char *target;
    enum hs_slot slot;
    struct metricsrc_figures f;
};

/* What a measurement answers. */
struct analysis_input {
    const char *error; /* the metric source failed: why (nothing else is read); else NULL */
    const struct analysis_instance *candidate;
    size_t ncandidate;
    const struct analysis_instance *stable; /* the stable's instances, over the same window */
    size_t nstable;
    /* The stable's figures over all its instances; NULL: summed from stable[] (see
     * analysis_figures_sum: quantiles are only known from one instance). */
    const struct metricsrc_figures *stable_all;
};

/* Figures of n instances together: requests, rates and error rate exactly; latency only when
 * a single instance has requests (quantiles of several need their histograms, which figures
 * do not carry: a caller that has them gives stable_all). */
void analysis_figures_sum(const struct analysis_instance *inst, size_t n,
                          struct metricsrc_figures *out);

/* One rule on one candidate instance (or on the whole measurement, target NULL, when the
 * source failed or there was no candidate). */
struct analysis_verdict {
    char *rule;
    enum analysis_metric metric;
    enum analysis_kind kind;
    enum analysis_result result;
    bool value_known;
    double value;              /* the candidate's, in the metric's unit (%, ms, req/s) */
    double threshold;          /* the rule's */
    bool baseline_found;       /* comparisons: there were stable figures to compare with */
    bool baseline_known;       /* ... and they had the metric */
    double baseline;           /* comparisons: the stable's value, in the metric's unit */
    uint64_t baseline_samples; /* comparisons: the stable's requests */
    double statistic;          /* z (max_increase) or the ratio (max_ratio); NAN else */
    char *test;                /* what decided: "threshold 4.8 % > 1 %", "two-proportion ..." */
    char *reason;              /* inconclusive, error: why; NULL else */
    char *target;              /* NULL: the whole measurement */
    enum hs_slot slot;
    uint64_t samples; /* the candidate's requests in the window */
    uint64_t at_us;   /* loop time of the judgement */
    uint64_t wall_us; /* the same, Unix time */
};

struct analysis_measurement {
    unsigned seq; /* 1, 2, ... in its gate (0: judged alone) */
    enum analysis_result result;
    uint64_t at_us, wall_us;
    struct analysis_verdict *verdicts;
    size_t nverdicts;
    char *summary; /* one line: "t2 green: error_rate 4.8 % > 1 % over 1,203 requests" */
};

/* Judge in by every rule of spec, at the loop's time at_us (wall_us: the same in Unix time). */
struct analysis_measurement *analysis_judge(const struct analysis_spec *spec,
                                            const struct analysis_input *in, uint64_t at_us,
                                            uint64_t wall_us);
void analysis_measurement_free(struct analysis_measurement *m);

/* JSON forms for `rollout status --json` and the journal: every field of the verdict
 * ("rule", "metric", "kind", "result", "value", "unit", "threshold", "threshold_unit", "baseline",
 * "baseline_samples", "statistic", "test", "reason", "target", "slot", "samples", "time",
 * "at_ms"; null for what is unknown or does not apply), and a measurement's ("seq", "result",
 * "summary", "time", "at_ms", "verdicts"). */
cJSON *analysis_verdict_json(const struct analysis_verdict *v);
cJSON *analysis_measurement_json(const struct analysis_measurement *m);

/* The one-sided critical z at a confidence (0.99: 2.326...). */
double analysis_z_critical(double confidence);

/* ---- the gate ---- */

struct analysis_gate;

enum analysis_gate_state {
    ANALYSIS_GATE_RUNNING,
    ANALYSIS_GATE_SUCCESSFUL,
    ANALYSIS_GATE_FAILED,
    ANALYSIS_GATE_INCONCLUSIVE,
    ANALYSIS_GATE_STOPPED, /* by analysis_gate_stop before it decided */
};

/* "running", "successful", "failed", "inconclusive", "stopped" */
const char *analysis_gate_state_name(enum analysis_gate_state s);

/* Take measurement seq: answer later (or at once) with analysis_gate_measured(g, seq, ...). */
typedef void (*analysis_measure_fn)(struct analysis_gate *g, unsigned seq, void *arg);
/* Every measurement, judged (also one that timed out or whose source failed). */
typedef void (*analysis_verdict_fn)(struct analysis_gate *g, const struct analysis_measurement *m,
                                    void *arg);
/* The gate ended on its own: Successful, Failed or Inconclusive, and why. Not called by
 * analysis_gate_stop. */
typedef void (*analysis_end_fn)(struct analysis_gate *g, enum analysis_gate_state state,
                                const char *reason, void *arg);

/* A gate on loop with a copy of spec, running from now: the first measurement after
 * initial_delay (on a later turn of the loop when that is 0; never inside this call). The
 * callbacks may free the gate. */
struct analysis_gate *analysis_gate_new(struct loop *loop, const struct analysis_spec *spec,
                                        analysis_measure_fn measure, void *measure_arg,
                                        analysis_verdict_fn on_verdict, analysis_end_fn on_end,
                                        void *arg);
/* The answer to measurement seq: 0, or -1 when it is not the one awaited (it timed out, the
 * gate ended or was stopped): then nothing is judged. */
int analysis_gate_measured(struct analysis_gate *g, unsigned seq, const struct analysis_input *in);
/* The same for a source that failed: why. */
int analysis_gate_measure_failed(struct analysis_gate *g, unsigned seq, const char *why);
/* Stop measuring (a later answer is refused). A running gate with count 0 that has seen a pass
 * and no failure beyond its limits becomes Successful (the background analysis ended with its
 * rollout); otherwise a running gate becomes Stopped. on_end is not called. */
void analysis_gate_stop(struct analysis_gate *g);
/* Also from its own callbacks. NULL is fine. */
void analysis_gate_free(struct analysis_gate *g);

enum analysis_gate_state analysis_gate_state(const struct analysis_gate *g);
/* Why it ended ("" while running). */
const char *analysis_gate_reason(const struct analysis_gate *g);
const struct analysis_spec *analysis_gate_spec(const struct analysis_gate *g);

struct analysis_gate_counts {
    unsigned taken; /* measurements judged, errors included */
    unsigned passed, failed, inconclusive, errors;
    unsigned consecutive_errors;
};
void analysis_gate_counts(const struct analysis_gate *g, struct analysis_gate_counts *out);
/* The measurement awaited (0: none). */
unsigned analysis_gate_pending(const struct analysis_gate *g);

/* The kept measurements, oldest first: i from 0 to analysis_gate_history_len - 1. */
size_t analysis_gate_history_len(const struct analysis_gate *g);
const struct analysis_measurement *analysis_gate_history(const struct analysis_gate *g, size_t i);
/* The newest, or NULL. */
const struct analysis_measurement *analysis_gate_last(const struct analysis_gate *g);

/* State, reason, counts, the spec's limits and on_failure, and the newest measurement. */
cJSON *analysis_gate_json(const struct analysis_gate *g);

#endif
