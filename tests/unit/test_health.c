/*
 * An endpoint's health (deploy/health.h) on the fake clock, with checks the test answers:
 * unknown until the threshold, healthy, degraded by latency, unhealthy after failures in a
 * row, critical when nothing is there, back to healthy; a check past its timeout cancelled
 * and failed; the interval counted from a check's start; the breaker holding checks back and
 * letting one trial through after its recovery time; stop and free with a check in flight;
 * every check counted by result, timed and traced, the state and the breaker as gauges.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "deploy/health.h"
#include "tests/unit/testutil.h"

struct fake {
    unsigned started, cancelled;
    bool pending;
    probe_done_fn done;
    void *arg;
    unsigned changes;
    struct health_status last;
};

static int handle; /* what start returns: any non-NULL pointer */

static void *fake_start(void *ctx, probe_done_fn done, void *arg)
{
    struct fake *f = ctx;

    ck_assert(!f->pending);
    f->started++;
    f->pending = true;
    f->done = done;
    f->arg = arg;
    return &handle;
}

static void fake_cancel(void *ctx, void *check)
{
    struct fake *f = ctx;

    ck_assert_ptr_eq(check, &handle);
    ck_assert(f->pending);
    f->pending = false;
    f->cancelled++;
}

static const struct health_check_ops fake_ops = {fake_start, fake_cancel};

static void on_change(void *arg, const struct health_status *st)
{
    struct fake *f = arg;

    f->changes++;
    f->last = *st;
}

/* The check in flight answers. */
static void answer(struct fake *f, enum probe_verdict v, uint64_t latency_ms, const char *detail)
{
    struct probe_outcome o;

    ck_assert_msg(f->pending, "no check in flight");
    memset(&o, 0, sizeof o);
    o.verdict = v;
    o.latency_us = latency_ms * 1000;
    strcpy(o.detail, detail);
    f->pending = false;
    f->done(f->arg, &o);
}

struct fx {
    struct loop *loop;
    struct fake f;
    struct health_policy p;
    struct health *h;
};

static void fx_init(struct fx *x)
{
    memset(x, 0, sizeof *x);
    x->loop = loop_new_fake(1700000000000u, 1);
    health_policy_default(&x->p);
    x->p.interval_ms = 1000;
    x->p.timeout_ms = 500;
    x->p.healthy_threshold = 2;
    x->p.unhealthy_threshold = 3;
    x->p.degraded_us = 300000;
    x->p.breaker_failures = 5;
    x->p.breaker_recovery_ms = 10000;
}

static void fx_start(struct fx *x)
{
    x->h = health_new(x->loop, "t1 blue", &x->p, &fake_ops, &x->f, on_change, &x->f);
    health_start(x->h);
    loop_fake_advance(x->loop, 0); /* the first check goes at once */
}

static void fx_done(struct fx *x)
{
    health_free(x->h);
    loop_free(x->loop);
}

static const struct health_status *st(struct fx *x)
{
    return health_status(x->h);
}

/* The next check, after the interval. */
static void next(struct fx *x, uint64_t ms)
{
    loop_fake_advance(x->loop, ms);
    ck_assert_msg(x->f.pending, "no check after %llu ms", (unsigned long long)ms);
}

START_TEST(thresholds_and_states)
{
    struct fx x;

    fx_init(&x);
    fx_start(&x);
    ck_assert_int_eq(st(&x)->state, HEALTH_UNKNOWN);
    ck_assert_uint_eq(x.f.started, 1);
    answer(&x.f, PROBE_OK, 10, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_UNKNOWN); /* one success is not two */
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 12, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_HEALTHY);
    ck_assert_str_eq(st(&x)->message, "2 checks passed in a row (12 ms)");
    ck_assert_uint_eq(st(&x)->since_ms, loop_now_ms(x.loop));
    /* Slow: degraded at once, and healthy again when it is not. */
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 450, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_DEGRADED);
    ck_assert_str_eq(st(&x)->message, "answering in 450 ms, slower than 300 ms");
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 20, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_HEALTHY);
    /* Failures: the state holds until the third in a row. */
    next(&x, 1000);
    answer(&x.f, PROBE_FAIL, 5, "HTTP 503 Service Unavailable");
    next(&x, 1000);
    answer(&x.f, PROBE_FAIL, 5, "HTTP 503 Service Unavailable");
    ck_assert_int_eq(st(&x)->state, HEALTH_HEALTHY);
    next(&x, 1000);
    answer(&x.f, PROBE_FAIL, 5, "HTTP 503 Service Unavailable");
    ck_assert_int_eq(st(&x)->state, HEALTH_UNHEALTHY);
    ck_assert_str_eq(st(&x)->message, "HTTP 503 Service Unavailable (3 failures in a row)");
    /* Nothing there: critical. */
    next(&x, 1000);
    answer(&x.f, PROBE_GONE, 1, "connection refused");
    ck_assert_int_eq(st(&x)->state, HEALTH_CRITICAL);
    ck_assert_str_eq(st(&x)->message, "connection refused (4 failures in a row)");
    /* Back: two successes. */
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 9, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_CRITICAL);
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 9, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_HEALTHY);
    ck_assert_uint_eq(st(&x)->checks, 10);
    fx_done(&x);
}
END_TEST

START_TEST(timeout_and_interval)
{
    struct fx x;

    fx_init(&x);
    fx_start(&x);
    /* No answer within 500 ms: cancelled, a failure. */
    loop_fake_advance(x.loop, 499);
    ck_assert(x.f.pending);
    loop_fake_advance(x.loop, 1);
    ck_assert(!x.f.pending);
    ck_assert_uint_eq(x.f.cancelled, 1);
    ck_assert_uint_eq(st(&x)->failures, 1);
    /* The next check comes an interval after the last one's start: 500 ms from now. */
    loop_fake_advance(x.loop, 499);
    ck_assert(!x.f.pending);
    loop_fake_advance(x.loop, 1);
    ck_assert(x.f.pending);
    /* An answer after 300 ms: the next one 700 ms later. */
    loop_fake_advance(x.loop, 300);
    answer(&x.f, PROBE_OK, 300, "HTTP 200");
    loop_fake_advance(x.loop, 699);
    ck_assert(!x.f.pending);
    loop_fake_advance(x.loop, 1);
    ck_assert(x.f.pending);
    fx_done(&x);
}
END_TEST

START_TEST(breaker_holds_checks_back)
{
    struct fx x;
    unsigned i, started;

    fx_init(&x);
    fx_start(&x);
    for (i = 0; i < 5; i++) {
        if (i > 0)
            next(&x, 1000);
        answer(&x.f, PROBE_GONE, 1, "connection refused");
    }
    ck_assert_int_eq(st(&x)->state, HEALTH_CRITICAL);
    ck_assert(st(&x)->breaker_open);
    ck_assert_str_eq(st(&x)->message, "connection refused; 5 failures in a row: not checked again "
                                      "for 10 s (breaker open)");
    started = x.f.started;
    /* No check while it is open. */
    loop_fake_advance(x.loop, 9999);
    ck_assert_uint_eq(x.f.started, started);
    /* Then one trial. */
    loop_fake_advance(x.loop, 1);
    ck_assert_uint_eq(x.f.started, started + 1);
    answer(&x.f, PROBE_OK, 5, "HTTP 200");
    ck_assert(!st(&x)->breaker_open);
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 5, "HTTP 200");
    ck_assert_int_eq(st(&x)->state, HEALTH_HEALTHY);
    fx_done(&x);
}
END_TEST

START_TEST(stop_and_free_in_flight)
{
    struct fx x;
    unsigned changes;

    fx_init(&x);
    fx_start(&x);
    ck_assert(x.f.pending);
    health_stop(x.h);
    ck_assert_uint_eq(x.f.cancelled, 1);
    changes = x.f.changes;
    loop_fake_advance(x.loop, 10000);
    ck_assert_uint_eq(x.f.started, 1);
    ck_assert_uint_eq(x.f.changes, changes);
    health_start(x.h);
    loop_fake_advance(x.loop, 0);
    ck_assert(x.f.pending);
    health_free(x.h); /* with a check in flight: cancelled */
    ck_assert_uint_eq(x.f.cancelled, 2);
    loop_free(x.loop);
}
END_TEST

START_TEST(observed)
{
    struct fx x;
    struct metrics *m = metrics_new();
    struct trace *tr;
    struct health_obs obs = {0};
    const char *ok[] = {"web", "t1", "blue", "ok"}, *fail[] = {"web", "t1", "blue", "fail"},
               *gone[] = {"web", "t1", "blue", "gone"}, *late[] = {"web", "t1", "blue", "timeout"};
    const char *lv[] = {"web", "t1", "blue"};
    const struct span *sp;
    struct buf text;
    unsigned i;

    fx_init(&x);
    tr = trace_new(x.loop, 64);
    x.p.breaker_failures = 3;
    x.h = health_new(x.loop, "t1 blue", &x.p, &fake_ops, &x.f, on_change, &x.f);
    obs.metrics = m;
    obs.trace = tr;
    obs.probe = "web";
    obs.target = "t1";
    obs.slot = "blue";
    health_observe(x.h, &obs);
    health_start(x.h);
    loop_fake_advance(x.loop, 0);
    answer(&x.f, PROBE_OK, 10, "HTTP 200");
    next(&x, 1000);
    answer(&x.f, PROBE_OK, 20, "HTTP 200");
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_state"), lv), 1.0);
    next(&x, 1000);
    answer(&x.f, PROBE_FAIL, 5, "HTTP 503");
    next(&x, 1000);
    loop_fake_advance(x.loop, 500); /* no answer: a timeout */
    next(&x, 500);
    answer(&x.f, PROBE_GONE, 1, "connection refused");
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_checks_total"), ok), 2.0);
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_checks_total"), fail), 1.0);
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_checks_total"), late), 1.0);
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_checks_total"), gone), 1.0);
    /* the histogram has the checks that answered: 4, the timeout not */
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_duration_seconds"), lv), 4.0);
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_state"), lv), 4.0);
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_breaker_open"), lv), 1.0);
    /* the breaker holds the next one back, and that is counted */
    loop_fake_advance(x.loop, 1000);
    ck_assert(!x.f.pending);
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_held_back_total"), lv), 1.0);
    /* one span a check, in order, with the result and the detail */
    ck_assert_uint_eq(trace_count(tr), 5);
    for (i = 0; i < 5; i++) {
        static const char *const results[] = {"ok", "ok", "fail", "timeout", "gone"};

        sp = trace_get(tr, i);
        ck_assert_str_eq(span_name(sp), "probe.check");
        ck_assert_str_eq(span_attr(sp, "result"), results[i]);
        ck_assert_str_eq(span_attr(sp, "target"), "t1");
        ck_assert_str_eq(span_status(sp), i < 2 ? "ok" : "error");
    }
    ck_assert_str_eq(span_attr(trace_get(tr, 2), "detail"), "HTTP 503");
    ck_assert_str_eq(span_attr(trace_get(tr, 3), "detail"), "no answer within 0.5 s");
    ck_assert_str_eq(span_attr(trace_get(tr, 0), "latency_ms"), "10.000");
    buf_init(&text);
    metrics_write_prometheus(m, &text);
    ck_assert_ptr_nonnull(strstr(text.data, "n3ctl_probe_checks_total{probe=\"web\",target=\"t1\","
                                            "slot=\"blue\",result=\"ok\"} 2"));
    buf_done(&text);
    /* a check stopped in flight: its span is cancelled, not counted */
    for (i = 0; i < 600 && !x.f.pending; i++)
        loop_fake_advance(x.loop, 100); /* the breaker's trial */
    ck_assert(x.f.pending);
    health_stop(x.h);
    ck_assert_str_eq(span_status(trace_get(tr, trace_count(tr) - 1)), "cancelled");
    ck_assert_double_eq(metric_value(metrics_find(m, "n3ctl_probe_checks_total"), ok), 2.0);
    fx_done(&x);
    trace_free(tr);
    metrics_free(m);
}
END_TEST

static Suite *health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *t = tcase_create("fake clock");

    tcase_add_test(t, thresholds_and_states);
    tcase_add_test(t, timeout_and_interval);
    tcase_add_test(t, breaker_holds_checks_back);
    tcase_add_test(t, stop_and_free_in_flight);
    tcase_add_test(t, observed);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(health_suite());
}
