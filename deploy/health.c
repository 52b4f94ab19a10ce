/* The health of one endpoint: checks on a timer, thresholds, a circuit breaker. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/breaker.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "deploy/health.h"

struct health {
    struct loop *loop;
    char *name;
    struct health_policy p;
    const struct health_check_ops *ops;
    void *ctx;
    health_change_fn on_change;
    void *arg;
    struct breaker breaker;
    struct health_status st;
    struct loop_timer *next;    /* the next check */
    struct loop_timer *timeout; /* the check in flight's */
    void *check;                /* in flight, or NULL */
    uint64_t check_started_ms;
    bool running;
    /* health_observe */
    struct metrics *metrics;
    struct trace *trace;
    const struct span *parent;
    char *labels[3]; /* probe, target, slot */
    struct metric_family *m_checks, *m_duration, *m_state, *m_breaker, *m_held;
    struct span *span; /* the check in flight's */
    bool timing_out;
};

static const char *const obs_labels[] = {"probe", "target", "slot", NULL};
static const char *const obs_result_labels[] = {"probe", "target", "slot", "result", NULL};

/* The check in flight is over: count it, end its span. result: ok, fail, gone, timeout,
 * cancelled. */
static void observe_check(struct health *h, const char *result, const struct probe_outcome *o)
{
    if (h->metrics != NULL && strcmp(result, "cancelled") != 0) {
        const char *v[] = {h->labels[0], h->labels[1], h->labels[2], result};

        metric_inc(h->m_checks, v, 1);
        if (strcmp(result, "timeout") != 0 && o != NULL)
            metric_observe(h->m_duration, (const char *const *)h->labels,
                           (double)o->latency_us / 1e6);
    }
    if (h->span != NULL) {
        span_set_attr(h->span, "result", result);
        if (o != NULL) {
            span_set_attr(h->span, "detail", o->detail);
            span_set_attrf(h->span, "latency_ms", "%.3f", (double)o->latency_us / 1000.0);
        }
        trace_span_end(h->trace, h->span,
                       strcmp(result, "ok") == 0          ? "ok"
                       : strcmp(result, "cancelled") == 0 ? "cancelled"
                                                          : "error");
        h->span = NULL;
    }
}

static void observe_state(struct health *h)
{
    if (h->metrics == NULL)
        return;
    metric_set(h->m_state, (const char *const *)h->labels, (double)h->st.state);
    metric_set(h->m_breaker, (const char *const *)h->labels, h->st.breaker_open ? 1.0 : 0.0);
}

void health_observe(struct health *h, const struct health_obs *obs)
{
    size_t i;

    for (i = 0; i < 3; i++)
        free(h->labels[i]);
    h->labels[0] = xstrdup(obs->probe != NULL ? obs->probe : "");
    h->labels[1] = xstrdup(obs->target != NULL ? obs->target : "");
    h->labels[2] = xstrdup(obs->slot != NULL ? obs->slot : "");
    h->metrics = obs->metrics;
    h->trace = obs->trace;
    h->parent = obs->parent;
    if (h->metrics != NULL) {
        h->m_checks = metrics_counter(h->metrics, "n3ctl_probe_checks_total",
                                      "Health checks done, by result", obs_result_labels);
        h->m_duration =
            metrics_histogram(h->metrics, "n3ctl_probe_duration_seconds",
                              "How long the checks that answered took", obs_labels, NULL, 0);
        h->m_state =
            metrics_gauge(h->metrics, "n3ctl_probe_state",
                          "0 unknown, 1 healthy, 2 degraded, 3 unhealthy, 4 critical", obs_labels);
        h->m_breaker = metrics_gauge(h->metrics, "n3ctl_probe_breaker_open",
                                     "1 while the circuit breaker holds checks back", obs_labels);
        h->m_held = metrics_counter(h->metrics, "n3ctl_probe_held_back_total",
                                    "Checks the open circuit breaker did not send", obs_labels);
        observe_state(h);
    }
}

void health_policy_default(struct health_policy *p)
{
    memset(p, 0, sizeof *p);
    p->interval_ms = 5000;
    p->timeout_ms = 2000;
    p->healthy_threshold = 2;
    p->unhealthy_threshold = 3;
    p->breaker_failures = 5;
    p->breaker_recovery_ms = 30000;
}

const char *health_state_name(enum health_state s)
{
    static const char *const names[] = {
        [HEALTH_UNKNOWN] = "unknown",   [HEALTH_HEALTHY] = "healthy",
        [HEALTH_DEGRADED] = "degraded", [HEALTH_UNHEALTHY] = "unhealthy",
        [HEALTH_CRITICAL] = "critical",
    };

    return names[s];
}

static void set_state(struct health *h, enum health_state s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_state(struct health *h, enum health_state s, const char *fmt, ...)
{
    char msg[sizeof h->st.message];
    va_list ap;
    bool changed;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    changed = s != h->st.state || strcmp(msg, h->st.message) != 0;
    if (s != h->st.state)
        h->st.since_ms = loop_now_ms(h->loop);
    h->st.state = s;
    memcpy(h->st.message, msg, sizeof msg);
    observe_state(h);
    if (changed && h->on_change != NULL)
        h->on_change(h->arg, &h->st);
}

static void schedule(struct health *h, uint64_t delay_ms);

static void outcome(struct health *h, const struct probe_outcome *o)
{
    uint64_t now = loop_now_ms(h->loop);

    h->st.checks++;
    if (o->verdict == PROBE_OK) {
        h->st.successes++;
        h->st.failures = 0;
        h->st.last_latency_us = o->latency_us;
        breaker_success(&h->breaker, now);
        h->st.breaker_open = false;
        if (h->st.successes >= h->p.healthy_threshold || h->st.state == HEALTH_HEALTHY ||
            h->st.state == HEALTH_DEGRADED) {
            if (h->p.degraded_us > 0 && o->latency_us > h->p.degraded_us)
                set_state(h, HEALTH_DEGRADED, "answering in %.0f ms, slower than %.0f ms",
                          (double)o->latency_us / 1000.0, (double)h->p.degraded_us / 1000.0);
            else
                set_state(h, HEALTH_HEALTHY, "%u check%s passed in a row (%.0f ms)",
                          h->st.successes > h->p.healthy_threshold ? h->p.healthy_threshold
                                                                   : h->st.successes,
                          h->st.successes == 1 ? "" : "s", (double)o->latency_us / 1000.0);
        }
    } else {
        h->st.failures++;
        h->st.successes = 0;
        breaker_failure(&h->breaker, now);
        if (h->st.failures >= h->p.unhealthy_threshold || h->st.state == HEALTH_UNHEALTHY ||
            h->st.state == HEALTH_CRITICAL) {
            if (breaker_state(&h->breaker, now) == BREAKER_OPEN) {
                h->st.breaker_open = true;
                set_state(h, o->verdict == PROBE_GONE ? HEALTH_CRITICAL : HEALTH_UNHEALTHY,
                          "%s; %u failures in a row: not checked again for %.0f s (breaker "
                          "open)",
                          o->detail, h->st.failures,
                          (double)breaker_retry_in_ms(&h->breaker, now) / 1000.0);
            } else {
                set_state(h, o->verdict == PROBE_GONE ? HEALTH_CRITICAL : HEALTH_UNHEALTHY,
                          "%s (%u failure%s in a row)", o->detail, h->st.failures,
                          h->st.failures == 1 ? "" : "s");
            }
        }
    }
}

static void check_done(void *arg, const struct probe_outcome *o)
{
    struct health *h = arg;
    uint64_t elapsed;

    h->check = NULL;
    loop_timer_stop(h->timeout);
    if (h->span != NULL || h->metrics != NULL)
        observe_check(h,
                      h->timing_out              ? "timeout"
                      : o->verdict == PROBE_OK   ? "ok"
                      : o->verdict == PROBE_GONE ? "gone"
                                                 : "fail",
                      o);
    outcome(h, o);
    if (!h->running)
        return;
    /* The interval counts from the check's start. */
    elapsed = loop_now_ms(h->loop) - h->check_started_ms;
    schedule(h, elapsed < h->p.interval_ms ? h->p.interval_ms - elapsed : 0);
}

static void timeout_cb(void *arg)
{
    struct health *h = arg;
    struct probe_outcome o;

    if (h->check == NULL)
        return;
    h->ops->cancel(h->ctx, h->check);
    memset(&o, 0, sizeof o);
    o.verdict = PROBE_FAIL;
    o.latency_us = h->p.timeout_ms * 1000;
    snprintf(o.detail, sizeof o.detail, "no answer within %.3g s",
             (double)h->p.timeout_ms / 1000.0);
    h->timing_out = true;
    check_done(h, &o);
    h->timing_out = false;
}

static void next_cb(void *arg)
{
    struct health *h = arg;
    uint64_t now = loop_now_ms(h->loop);

    h->st.next_check_ms = 0;
    if (!breaker_allow(&h->breaker, now)) {
        if (h->metrics != NULL)
            metric_inc(h->m_held, (const char *const *)h->labels, 1);
        schedule(h, breaker_retry_in_ms(&h->breaker, now));
        return;
    }
    h->check_started_ms = now;
    if (h->trace != NULL) {
        h->span = trace_span_start(h->trace, h->parent, "probe.check");
        span_set_attr(h->span, "probe", h->labels[0]);
        span_set_attr(h->span, "target", h->labels[1]);
        span_set_attr(h->span, "slot", h->labels[2]);
    }
    loop_timer_start(h->timeout, h->p.timeout_ms);
    h->check = h->ops->start(h->ctx, check_done, h);
}

static void schedule(struct health *h, uint64_t delay_ms)
{
    h->st.next_check_ms = loop_now_ms(h->loop) + delay_ms;
    loop_timer_start(h->next, delay_ms);
}

struct health *health_new(struct loop *loop, const char *name, const struct health_policy *p,
                          const struct health_check_ops *ops, void *ctx, health_change_fn on_change,
                          void *arg)
{
    struct health *h = xcalloc(1, sizeof *h);
    struct breaker_policy bp;

    h->loop = loop;
    h->name = xstrdup(name);
    if (p != NULL)
        h->p = *p;
    else
        health_policy_default(&h->p);
    if (h->p.healthy_threshold == 0)
        h->p.healthy_threshold = 1;
    if (h->p.unhealthy_threshold == 0)
        h->p.unhealthy_threshold = 1;
    h->ops = ops;
    h->ctx = ctx;
    h->on_change = on_change;
    h->arg = arg;
    breaker_policy_default(&bp);
    bp.failure_threshold = h->p.breaker_failures ? h->p.breaker_failures : 5;
    bp.recovery_ms = h->p.breaker_recovery_ms ? h->p.breaker_recovery_ms : 30000;
    breaker_init(&h->breaker, &bp);
    h->next = loop_timer_new(loop, next_cb, h);
    h->timeout = loop_timer_new(loop, timeout_cb, h);
    h->st.state = HEALTH_UNKNOWN;
    h->st.since_ms = loop_now_ms(loop);
    snprintf(h->st.message, sizeof h->st.message, "not checked yet");
    return h;
}

void health_start(struct health *h)
{
    if (h->running)
        return;
    h->running = true;
    if (h->check == NULL)
        schedule(h, 0);
}

void health_stop(struct health *h)
{
    h->running = false;
    loop_timer_stop(h->next);
    h->st.next_check_ms = 0;
    if (h->check != NULL) {
        h->ops->cancel(h->ctx, h->check);
        h->check = NULL;
        loop_timer_stop(h->timeout);
        observe_check(h, "cancelled", NULL);
    }
}

void health_free(struct health *h)
{
    if (h == NULL)
        return;
    health_stop(h);
    loop_timer_free(h->next);
    loop_timer_free(h->timeout);
    for (size_t i = 0; i < 3; i++)
        free(h->labels[i]);
    free(h->name);
    free(h);
}

const struct health_status *health_status(const struct health *h)
{
    return &h->st;
}
