/*
 * Analysis (deploy/analysis.h): each rule kind at its boundary, too few samples and unknown
 * metrics inconclusive with their reason (never a pass), the two-proportion z-test (a real
 * difference fails, tiny counts against zeros do not), latencies beyond the histogram, the
 * baselines; the gate on the fake clock with Argo Rollouts' counting (failure_limit,
 * inconclusive_limit, consecutive_error_limit and its reset, count, count 0 until stopped,
 * initial delay, a measurement that never answers, a bounded history, freed from its own
 * callback); n3.json's "analysis" with the position of every refusal and the defaults; and
 * the JSON of verdicts, measurements and gates.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/analysis.h"
#include "deploy/metricsrc.h"
#include "tests/unit/testutil.h"

#define S 1000000u /* a second, in the loop's microseconds */

/* Figures over a 60 s window: samples requests, a share of them errors, a p95 (p50 half of it,
 * p99 a fifth more). */
static struct metricsrc_figures figs(uint64_t samples, double error_rate, double p95_s)
{
    struct metricsrc_figures f;

    memset(&f, 0, sizeof f);
    f.rate_known = true;
    f.span_s = 60;
    f.points = 61;
    f.samples = samples;
    f.req_s = (double)samples / 60.0;
    if (samples > 0) {
        f.error_known = true;
        f.error_rate = error_rate;
        f.latency_known = true;
        f.p50_s = p95_s / 2;
        f.p95_s = p95_s;
        f.p99_s = p95_s * 1.2;
    } else {
        snprintf(f.why, sizeof f.why, "no request in the window: no error rate, no latency");
    }
    return f;
}

static struct analysis_instance inst(const char *target, enum hs_slot slot,
                                     struct metricsrc_figures f)
{
    struct analysis_instance i;

    i.target = target;
    i.slot = slot;
    i.f = f;
    return i;
}

/* A spec of one rule, from its JSON (loaded as n3.json would be). */
static void spec_from(struct analysis_spec *spec, const char *json)
{
    struct cfg *c;
    struct err err;

    ck_assert_msg(cfg_load_string("a.json", json, strlen(json), &c, &err) == 0, "%s", err.msg);
    ck_assert_msg(analysis_spec_load(c, cfg_root(c), spec, &err) == 0, "%s: %s", json, err.msg);
    cfg_free(c);
}

/* Judge one candidate instance (and stable ones) by spec: the measurement. */
static struct analysis_measurement *judge(const struct analysis_spec *spec,
                                          struct analysis_instance *cand, size_t nc,
                                          struct analysis_instance *stable, size_t ns)
{
    struct analysis_input in = {
        .candidate = cand, .ncandidate = nc, .stable = stable, .nstable = ns};

    return analysis_judge(spec, &in, 5 * S, 1700000000ull * S);
}

/* The result of a one-rule spec on one instance's figures. */
static enum analysis_result one(const char *rule_json, struct metricsrc_figures f)
{
    struct analysis_spec spec;
    struct analysis_instance c = inst("t1", HS_GREEN, f);
    struct analysis_measurement *m;
    enum analysis_result r;
    char *json = xasprintf("{\"rules\": [%s]}", rule_json);

    spec_from(&spec, json);
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_uint_eq(m->nverdicts, 1);
    r = m->verdicts[0].result;
    ck_assert_int_eq(m->result, r);
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
    free(json);
    return r;
}

/* ---- judging ---- */

/* Every kind of rule passes at its boundary and fails just past it. */
START_TEST(rules_at_the_boundary)
{
    /* error_rate, a percentage: 25 % passes a max of 25, 25.01 % fails it. */
    ck_assert_int_eq(
        one("{\"metric\": \"error_rate\", \"max_percent\": 25}", figs(1000, 0.25, 0.1)),
        ANALYSIS_PASS);
    ck_assert_int_eq(
        one("{\"metric\": \"error_rate\", \"max_percent\": 25}", figs(1000, 0.2501, 0.1)),
        ANALYSIS_FAIL);
    ck_assert_int_eq(one("{\"metric\": \"error_rate\", \"min_percent\": 50}", figs(1000, 0.5, 0.1)),
                     ANALYSIS_PASS);
    ck_assert_int_eq(
        one("{\"metric\": \"error_rate\", \"min_percent\": 50}", figs(1000, 0.4999, 0.1)),
        ANALYSIS_FAIL);
    /* Latencies in ms. */
    ck_assert_int_eq(one("{\"metric\": \"p95\", \"max_ms\": 2000}", figs(1000, 0, 2.0)),
                     ANALYSIS_PASS);
    ck_assert_int_eq(one("{\"metric\": \"p95\", \"max_ms\": 2000}", figs(1000, 0, 2.001)),
                     ANALYSIS_FAIL);
    ck_assert_int_eq(one("{\"metric\": \"p50\", \"min_ms\": 500}", figs(1000, 0, 1.0)),
                     ANALYSIS_PASS);
    ck_assert_int_eq(one("{\"metric\": \"p50\", \"min_ms\": 500}", figs(1000, 0, 0.998)),
                     ANALYSIS_FAIL);
    ck_assert_int_eq(one("{\"metric\": \"p99\", \"max_ms\": 600}", figs(1000, 0, 0.5)),
                     ANALYSIS_PASS);
    ck_assert_int_eq(one("{\"metric\": \"p99\", \"max_ms\": 599}", figs(1000, 0, 0.5)),
                     ANALYSIS_FAIL);
    /* The request rate: 6000 requests over 60 s are 100 a second. */
    ck_assert_int_eq(one("{\"metric\": \"req_s\", \"max_per_second\": 100}", figs(6000, 0, 0.1)),
                     ANALYSIS_PASS);
    ck_assert_int_eq(one("{\"metric\": \"req_s\", \"max_per_second\": 100}", figs(6030, 0, 0.1)),
                     ANALYSIS_FAIL);
    ck_assert_int_eq(one("{\"metric\": \"req_s\", \"min_per_second\": 100}", figs(6000, 0, 0.1)),
                     ANALYSIS_PASS);
    ck_assert_int_eq(one("{\"metric\": \"req_s\", \"min_per_second\": 100}", figs(5970, 0, 0.1)),
                     ANALYSIS_FAIL);
    /* No traffic at all is a request rate of 0, measured: it fails a min (and is judged on any
     * count, as the rate is what is measured). */
    ck_assert_int_eq(one("{\"metric\": \"req_s\", \"min_per_second\": 1}", figs(0, 0, 0)),
                     ANALYSIS_FAIL);
}
END_TEST

/* The default rules' verdict and its line for the operator. */
START_TEST(threshold_verdict_explained)
{
    struct analysis_spec spec;
    struct analysis_instance c[2] = {inst("t1", HS_BLUE, figs(4000, 0.002, 0.3)),
                                     inst("t2", HS_GREEN, figs(1203, 0.048, 0.3))};
    struct analysis_instance st = inst("t1", HS_GREEN, figs(50000, 0.002, 0.3));
    struct analysis_measurement *m;
    const struct analysis_verdict *v;

    analysis_spec_default(&spec);
    m = judge(&spec, c, 2, &st, 1);
    ck_assert_uint_eq(m->nverdicts, 6); /* 3 rules x 2 instances */
    ck_assert_int_eq(m->result, ANALYSIS_FAIL);
    v = &m->verdicts[3]; /* t2's error_rate */
    ck_assert_str_eq(v->rule, "error_rate");
    ck_assert_int_eq(v->metric, ANALYSIS_ERROR_RATE);
    ck_assert_int_eq(v->result, ANALYSIS_FAIL);
    ck_assert_str_eq(v->target, "t2");
    ck_assert_int_eq(v->slot, HS_GREEN);
    ck_assert_uint_eq(v->samples, 1203);
    ck_assert_double_eq_tol(v->value, 4.8, 1e-9);
    ck_assert_double_eq(v->threshold, 1);
    ck_assert_str_eq(v->test, "threshold 4.8 % > 1 %");
    ck_assert_ptr_null(v->reason);
    ck_assert_uint_eq(v->at_us, 5 * S);
    ck_assert_uint_eq(v->wall_us, 1700000000ull * S);
    /* t2 against the stable, significantly worse too: two failures, the first one named. */
    ck_assert_int_eq(m->verdicts[5].result, ANALYSIS_FAIL);
    ck_assert_str_eq(m->summary,
                     "t2 green: error_rate 4.8 % > 1 % over 1,203 requests (and 1 more failed)");
    /* t1 passes all three. */
    ck_assert_int_eq(m->verdicts[0].result, ANALYSIS_PASS);
    ck_assert_int_eq(m->verdicts[1].result, ANALYSIS_PASS);
    ck_assert_str_eq(m->verdicts[1].test, "threshold 300 ms <= 2,000 ms");
    ck_assert_int_eq(m->verdicts[2].result, ANALYSIS_PASS);
    analysis_measurement_free(m);

    /* All good: a pass, and how much it rests on. */
    c[1].f.error_rate = 0.001;
    m = judge(&spec, c, 2, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_PASS);
    ck_assert_str_eq(m->summary, "3 rules pass on 2 instances (the fewest requests: 1,203)");
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
}
END_TEST

/* Too few requests: inconclusive with the reason, never a pass, even when the figures look
 * fine or awful; enough: judged. */
START_TEST(too_few_samples)
{
    struct analysis_spec spec;
    struct analysis_instance c = inst("t2", HS_GREEN, figs(99, 0, 0.1));
    struct analysis_measurement *m;
    size_t i;

    spec_from(&spec, "{\"rules\": [{\"metric\": \"error_rate\", \"max_percent\": 1}, {\"metric\": "
                     "\"p95\", \"max_ms\": 2000}]}");
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    for (i = 0; i < m->nverdicts; i++) {
        ck_assert_int_eq(m->verdicts[i].result, ANALYSIS_INCONCLUSIVE);
        ck_assert_str_eq(m->verdicts[i].reason,
                         "99 requests in the window, fewer than the 100 a verdict needs");
        ck_assert_str_eq(m->verdicts[i].test, "min_samples 99 < 100");
        ck_assert(m->verdicts[i].value_known); /* what was seen is still shown */
    }
    ck_assert_str_eq(m->summary, "t2 green: error_rate inconclusive: 99 requests in the window, "
                                 "fewer than the 100 a verdict needs (and 1 more inconclusive)");
    analysis_measurement_free(m);
    /* Half of them errors: still not a verdict on 99. */
    c.f = figs(99, 0.5, 5.0);
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    analysis_measurement_free(m);
    /* No request at all: inconclusive, with the source's why and the count. */
    c.f = figs(0, 0, 0);
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_ptr_nonnull(strstr(m->verdicts[0].reason, "error_rate unknown: no request in the "
                                                        "window"));
    ck_assert_ptr_nonnull(strstr(m->verdicts[0].reason, "0 requests in the window, fewer than "
                                                        "the 100"));
    ck_assert(!m->verdicts[0].value_known);
    analysis_measurement_free(m);
    /* 100: judged. */
    c.f = figs(100, 0.5, 0.1);
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_int_eq(m->result, ANALYSIS_FAIL);
    ck_assert_int_eq(m->verdicts[1].result, ANALYSIS_PASS);
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
    /* min_samples is the spec's. */
    spec_from(&spec, "{\"min_samples\": 5000, \"rules\": [{\"metric\": \"p95\", \"max_ms\": 1}]}");
    c.f = figs(4999, 0, 9);
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->verdicts[0].reason,
                     "4,999 requests in the window, fewer than the 5,000 a verdict needs");
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
}
END_TEST

/* A source without quantiles (haproxy's counters): p95 is unknown, not 0, and the verdict is
 * inconclusive with the source's reason, in the summary too. Figures from a real window. */
START_TEST(unknown_p95)
{
    struct metricsrc_window *w = metricsrc_window_new(60000, 62);
    struct metricsrc_sample s;
    struct analysis_spec spec;
    struct analysis_instance c;
    struct analysis_measurement *m;
    int t;

    for (t = 0; t <= 10; t++) {
        memset(&s, 0, sizeof s);
        s.ok = true;
        s.at_us = (uint64_t)t * S;
        s.requests = 200.0 * t;
        metricsrc_window_add(w, &s);
    }
    c.target = "t1";
    c.slot = HS_GREEN;
    metricsrc_window_figures(w, 10 * S, false, &c.f);
    ck_assert_uint_eq(c.f.samples, 2000);
    ck_assert(!c.f.latency_known);
    analysis_spec_default(&spec);
    m = judge(&spec, &c, 1, NULL, 0);
    ck_assert_int_eq(m->verdicts[0].result, ANALYSIS_PASS); /* 0 % errors, measured */
    ck_assert_int_eq(m->verdicts[1].result, ANALYSIS_INCONCLUSIVE);
    ck_assert(!m->verdicts[1].value_known);
    ck_assert(isnan(m->verdicts[1].value));
    ck_assert_str_eq(m->verdicts[1].reason, "p95 unknown: the source gives no latencies");
    ck_assert_str_eq(m->verdicts[1].test, "unknown");
    /* No stable given: the comparison cannot be made. */
    ck_assert_int_eq(m->verdicts[2].result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->verdicts[2].reason, "no stable instance to compare with");
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->summary, "t1 green: p95 unknown: the source gives no latencies (and 1 more "
                                 "inconclusive)");
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
    metricsrc_window_free(w);
}
END_TEST

/* The comparison of error rates: a real difference fails with its z; tiny counts against
 * zeros (Kayenta's 0,1,2,1 pain) never do. */
START_TEST(z_test)
{
    struct analysis_spec spec;
    struct analysis_instance c = inst("t2", HS_GREEN, figs(2000, 0.05, 0.1));
    struct analysis_instance st = inst("t1", HS_BLUE, figs(2000, 0.005, 0.1));
    struct analysis_measurement *m;
    const struct analysis_verdict *v;

    ck_assert_double_eq_tol(analysis_z_critical(0.99), 2.326348, 1e-6);
    ck_assert_double_eq_tol(analysis_z_critical(0.95), 1.644854, 1e-6);
    ck_assert_double_eq_tol(analysis_z_critical(0.5), 0, 1e-9);

    spec_from(&spec, "{\"rules\": [{\"metric\": \"error_rate\", \"compare\": \"stable\"}]}");
    ck_assert_str_eq(spec.rules[0].name, "error_rate_vs_stable");
    /* 5 % against 0.5 % over 2,000 requests each. */
    m = judge(&spec, &c, 1, &st, 1);
    v = &m->verdicts[0];
    ck_assert_int_eq(v->result, ANALYSIS_FAIL);
    ck_assert_int_eq(v->kind, ANALYSIS_MAX_INCREASE);
    ck_assert(v->statistic > 8.5 && v->statistic < 8.7); /* pooled, continuity-corrected */
    ck_assert_str_eq(v->test, "two-proportion z-test z=8.6 > 2.33 (one-sided, 99 %)");
    ck_assert_double_eq_tol(v->value, 5, 1e-9);
    ck_assert_double_eq_tol(v->baseline, 0.5, 1e-9);
    ck_assert_uint_eq(v->baseline_samples, 2000);
    ck_assert_str_eq(m->summary,
                     "t2 green: error_rate 5 % against the stable's 0.5 % over 2,000 and 2,000 "
                     "requests: significantly higher (two-proportion z-test z=8.6 > 2.33 "
                     "(one-sided, 99 %))");
    analysis_measurement_free(m);

    /* The same rates: a pass. */
    c.f = figs(2000, 0.005, 0.1);
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_PASS);
    analysis_measurement_free(m);

    /* 0, 1, 2 and 1 errors in four intervals of 10 requests, against none in 4,000: too few
     * requests on the candidate's side, inconclusive (never a fail). */
    c.f = figs(40, 4.0 / 40, 0.1);
    st.f = figs(4000, 0, 0.1);
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->verdicts[0].reason,
                     "40 requests in the window, fewer than the 100 a verdict needs");
    analysis_measurement_free(m);
    /* The same four errors in 1,000 requests against none in 1,000: not significant. */
    c.f = figs(1000, 0.004, 0.1);
    st.f = figs(1000, 0, 0.1);
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_PASS);
    ck_assert(m->verdicts[0].statistic < 2);
    analysis_measurement_free(m);
    /* 6 of 100 against 0 of 100: an uncorrected z (2.49) would call it; the exact test does
     * not (p = 0.015), and neither does this one. */
    c.f = figs(100, 0.06, 0.1);
    st.f = figs(100, 0, 0.1);
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_PASS);
    analysis_measurement_free(m);
    /* The stable's side needs min_samples too. */
    c.f = figs(2000, 0.05, 0.1);
    st.f = figs(60, 0, 0.1);
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->verdicts[0].reason,
                     "the stable has 60 requests in the window, fewer than the 100 a verdict "
                     "needs");
    analysis_measurement_free(m);
    analysis_spec_done(&spec);

    /* max_increase: 5 % against 0.5 % is not significantly more than 5 points worse, and is
     * significantly more than 3. */
    st.f = figs(2000, 0.005, 0.1);
    spec_from(&spec, "{\"rules\": [{\"metric\": \"error_rate\", \"compare\": \"stable\", "
                     "\"max_increase\": 5}]}");
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_PASS);
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
    spec_from(&spec, "{\"rules\": [{\"metric\": \"error_rate\", \"compare\": \"stable\", "
                     "\"max_increase\": 3, \"confidence\": 0.95}]}");
    m = judge(&spec, &c, 1, &st, 1);
    ck_assert_int_eq(m->result, ANALYSIS_FAIL);
    ck_assert_ptr_nonnull(strstr(m->verdicts[0].test, "> 1.64 (one-sided, 95 %)"));
    ck_assert_ptr_nonnull(strstr(m->summary, "significantly more than 3 points"));
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
}
END_TEST

/* Latency against the stable: a ratio, at its boundary; the baselines "all" and
 * "same_target". */
START_TEST(latency_ratio_and_baselines)
{
    struct analysis_spec spec;
    struct analysis_instance c = inst("t2", HS_GREEN, figs(1000, 0, 1.5));
    struct analysis_instance st[2] = {inst("t1", HS_BLUE, figs(1000, 0, 1.0)),
                                      inst("t2", HS_BLUE, figs(1000, 0, 0.5))};
    struct analysis_measurement *m;
    const struct analysis_verdict *v;

    spec_from(&spec, "{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stable\", \"max_ratio\": "
                     "1.5, \"baseline\": \"same_target\"}]}");
    ck_assert_str_eq(spec.rules[0].name, "p95_vs_stable");
    ck_assert_int_eq(spec.rules[0].baseline, ANALYSIS_BASELINE_SAME_TARGET);
    /* t2's stable has p95 0.5 s: 1.5 s is 3 x. */
    m = judge(&spec, &c, 1, st, 2);
    v = &m->verdicts[0];
    ck_assert_int_eq(v->result, ANALYSIS_FAIL);
    ck_assert_double_eq_tol(v->statistic, 3, 1e-9);
    ck_assert_str_eq(v->test, "ratio 3 > 1.5");
    ck_assert_str_eq(
        m->summary, "t2 green: p95 1,500 ms is 3 x the stable's 500 ms (ratio 3 > 1.5, max 1.5 x)");
    analysis_measurement_free(m);
    /* At 1.5 x: a pass. */
    st[1].f = figs(1000, 0, 1.0);
    m = judge(&spec, &c, 1, st, 2);
    ck_assert_int_eq(m->result, ANALYSIS_PASS);
    ck_assert_str_eq(m->verdicts[0].test, "ratio 1.5 <= 1.5");
    analysis_measurement_free(m);
    /* No stable on the candidate's target. */
    c.target = "t3";
    m = judge(&spec, &c, 1, st, 2);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->verdicts[0].reason, "no stable instance on t3 to compare with");
    analysis_measurement_free(m);
    analysis_spec_done(&spec);

    /* "all": the stable's figures over its instances; quantiles of several are not known from
     * their figures alone (the caller gives the aggregate). */
    spec_from(&spec, "{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stable\", \"max_ratio\": "
                     "1.5}, {\"metric\": \"error_rate\", \"compare\": \"stable\"}]}");
    m = judge(&spec, &c, 1, st, 2);
    ck_assert_int_eq(m->verdicts[0].result, ANALYSIS_INCONCLUSIVE);
    ck_assert_ptr_nonnull(strstr(m->verdicts[0].reason, "the stable's p95 is unknown"));
    ck_assert_ptr_nonnull(strstr(m->verdicts[0].reason,
                                 "the quantiles of 2 instances together need their "
                                 "histograms"));
    /* The error rate adds up exactly: 2,000 stable requests. */
    ck_assert_int_eq(m->verdicts[1].result, ANALYSIS_PASS);
    ck_assert_uint_eq(m->verdicts[1].baseline_samples, 2000);
    analysis_measurement_free(m);
    {
        struct metricsrc_figures all = figs(2000, 0.001, 1.2);
        struct analysis_input in = {
            .candidate = &c, .ncandidate = 1, .stable = st, .nstable = 2, .stable_all = &all};

        m = analysis_judge(&spec, &in, 0, 0);
        ck_assert_int_eq(m->verdicts[0].result, ANALYSIS_PASS); /* 1.5 / 1.2 */
        ck_assert_double_eq_tol(m->verdicts[0].statistic, 1.25, 1e-9);
        analysis_measurement_free(m);
    }
    analysis_spec_done(&spec);
}
END_TEST

/* A quantile beyond the histogram's highest bound is a lower bound: it fails a max below it,
 * and cannot pass one above it. */
START_TEST(latency_beyond_the_histogram)
{
    struct metricsrc_figures f = figs(1000, 0, 0.1);

    /* p99 fell in +Inf: at least 10 s (the highest finite bound); p50 and p95 below it. */
    f.p50_s = 0.05;
    f.p95_s = 0.2;
    f.p99_s = 10;
    f.latency_capped = true;
    ck_assert_int_eq(one("{\"metric\": \"p99\", \"max_ms\": 2000}", f), ANALYSIS_FAIL);
    ck_assert_int_eq(one("{\"metric\": \"p99\", \"max_ms\": 20000}", f), ANALYSIS_INCONCLUSIVE);
    ck_assert_int_eq(one("{\"metric\": \"p99\", \"min_ms\": 5000}", f), ANALYSIS_PASS);
    /* p95 is below the capped p99: an exact value. */
    ck_assert_int_eq(one("{\"metric\": \"p95\", \"max_ms\": 2000}", f), ANALYSIS_PASS);
}
END_TEST

/* The source failed: every rule is an error with the reason; an instance whose read failed
 * with nothing older in the window is an error; one with older figures is judged. */
START_TEST(source_errors)
{
    struct analysis_spec spec;
    struct analysis_input in = {.error = "connection refused (127.0.0.1:9090)"};
    struct analysis_instance c[2] = {inst("t1", HS_GREEN, figs(1000, 0, 0.1)),
                                     inst("t2", HS_GREEN, figs(0, 0, 0))};
    struct analysis_measurement *m;
    size_t i;

    analysis_spec_default(&spec);
    m = analysis_judge(&spec, &in, 0, 0);
    ck_assert_int_eq(m->result, ANALYSIS_ERROR);
    ck_assert_uint_eq(m->nverdicts, 3);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(m->verdicts[i].result, ANALYSIS_ERROR);
        ck_assert_ptr_null(m->verdicts[i].target);
        ck_assert_str_eq(m->verdicts[i].reason,
                         "the metric source failed: connection refused (127.0.0.1:9090)");
    }
    ck_assert_str_eq(m->summary, "the metric source failed: connection refused (127.0.0.1:9090)");
    analysis_measurement_free(m);

    /* t2's read failed and the window has nothing older; t1 fails a rule: the fail wins. */
    c[1].f.rate_known = false;
    c[1].f.last_failed = true;
    snprintf(c[1].f.why, sizeof c[1].f.why, "the last read failed: timed out");
    c[0].f.error_rate = 0.5;
    in = (struct analysis_input){.candidate = c, .ncandidate = 2};
    m = analysis_judge(&spec, &in, 0, 0);
    ck_assert_int_eq(m->result, ANALYSIS_FAIL);
    ck_assert_int_eq(m->verdicts[3].result, ANALYSIS_ERROR);
    ck_assert_str_eq(m->verdicts[3].reason, "error_rate unknown: the last read failed: timed out; "
                                            "0 requests in the window, fewer than the 100 a "
                                            "verdict needs");
    analysis_measurement_free(m);
    /* Without t1's failure: an error. */
    c[0].f.error_rate = 0;
    m = analysis_judge(&spec, &in, 0, 0);
    ck_assert_int_eq(m->result, ANALYSIS_ERROR);
    ck_assert_ptr_nonnull(strstr(m->summary, "t2 green: error_rate unknown: the last read failed"));
    analysis_measurement_free(m);
    /* The read failed, but the window still has figures: they are judged. */
    c[1].f = figs(1000, 0, 0.1);
    c[1].f.last_failed = true;
    m = analysis_judge(&spec, &in, 0, 0);
    ck_assert_int_eq(m->verdicts[3].result, ANALYSIS_PASS);
    analysis_measurement_free(m);
    /* No candidate at all: nothing to judge is not a pass. */
    in.ncandidate = 0;
    m = analysis_judge(&spec, &in, 0, 0);
    ck_assert_int_eq(m->result, ANALYSIS_INCONCLUSIVE);
    ck_assert_str_eq(m->verdicts[0].reason, "no candidate instance in the measurement");
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
}
END_TEST

/* ---- the gate, on the fake clock ---- */

enum answer { A_PASS, A_FAIL, A_INCONCLUSIVE, A_ERROR, A_NONE };

struct harness {
    struct loop *loop;
    struct analysis_gate *g;
    enum answer script[256]; /* what measurement i (1-based) answers, at once */
    unsigned nscript;
    enum answer then; /* after the script */
    unsigned asked, last_seq, told, ends;
    uint64_t asked_at_ms[256];
    enum analysis_gate_state end_state;
    char end_reason[2048];
    bool free_on_end;
};

static void answer(struct harness *h, unsigned seq, enum answer a)
{
    struct analysis_instance c = inst("t2", HS_GREEN, figs(1203, 0.001, 0.2));
    struct analysis_instance st = inst("t2", HS_BLUE, figs(20000, 0.001, 0.2));
    struct analysis_input in = {.candidate = &c, .ncandidate = 1, .stable = &st, .nstable = 1};

    if (a == A_FAIL)
        c.f.error_rate = 0.048;
    if (a == A_INCONCLUSIVE)
        c.f = figs(12, 0, 0.2);
    if (a == A_ERROR) {
        ck_assert_int_eq(analysis_gate_measure_failed(h->g, seq, "connection refused"), 0);
        return;
    }
    ck_assert_int_eq(analysis_gate_measured(h->g, seq, &in), 0);
}

static void measure_cb(struct analysis_gate *g, unsigned seq, void *arg)
{
    struct harness *h = arg;
    enum answer a;

    ck_assert_ptr_eq(g, h->g);
    h->asked++;
    h->last_seq = seq;
    ck_assert_uint_eq(seq, h->asked);
    if (h->asked < 256)
        h->asked_at_ms[h->asked] = loop_now_ms(h->loop);
    a = h->asked <= h->nscript ? h->script[h->asked - 1] : h->then;
    if (a != A_NONE)
        answer(h, seq, a);
}

static void verdict_cb(struct analysis_gate *g, const struct analysis_measurement *m, void *arg)
{
    struct harness *h = arg;

    (void)g;
    h->told++;
    ck_assert_uint_eq(m->seq, h->told);
}

static void end_cb(struct analysis_gate *g, enum analysis_gate_state st, const char *reason,
                   void *arg)
{
    struct harness *h = arg;

    h->ends++;
    h->end_state = st;
    snprintf(h->end_reason, sizeof h->end_reason, "%s", reason);
    ck_assert_int_eq(analysis_gate_state(g), st);
    if (h->free_on_end) {
        analysis_gate_free(g);
        h->g = NULL;
    }
}

/* A gate with spec's JSON (interval 10 s unless it says), answering by the script. */
static void gate_start(struct harness *h, const char *json, const enum answer *script, unsigned n,
                       enum answer then)
{
    struct analysis_spec spec;

    memset(h, 0, sizeof *h);
    h->loop = loop_new_fake(1700000000000ull, 1);
    memcpy(h->script, script, n * sizeof *script);
    h->nscript = n;
    h->then = then;
    spec_from(&spec, json);
    h->g = analysis_gate_new(h->loop, &spec, measure_cb, h, verdict_cb, end_cb, h);
    analysis_spec_done(&spec);
    ck_assert_uint_eq(h->asked, 0); /* never inside _new */
}

static void gate_end(struct harness *h)
{
    analysis_gate_free(h->g);
    loop_free(h->loop);
}

/* Run n intervals of 10 s (the first measurement is at 0). */
static void run(struct harness *h, unsigned n)
{
    unsigned i;

    loop_fake_advance(h->loop, 0);
    for (i = 0; i < n; i++)
        loop_fake_advance(h->loop, 10000);
}

#define GATE(extra) "{\"interval_seconds\": 10" extra "}"

START_TEST(gate_failure_limit_0)
{
    struct harness h;
    const enum answer s[] = {A_PASS, A_PASS, A_FAIL};
    struct analysis_gate_counts c;

    gate_start(&h, GATE(""), s, 3, A_PASS);
    run(&h, 10);
    ck_assert_uint_eq(h.asked, 3); /* nothing after the end */
    ck_assert_uint_eq(h.ends, 1);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_FAILED);
    ck_assert_str_eq(h.end_reason, "a measurement failed: t2 green: error_rate 4.8 % > 1 % over "
                                   "1,203 requests (and 1 more failed)");
    ck_assert_str_eq(analysis_gate_reason(h.g), h.end_reason);
    analysis_gate_counts(h.g, &c);
    ck_assert_uint_eq(c.taken, 3);
    ck_assert_uint_eq(c.passed, 2);
    ck_assert_uint_eq(c.failed, 1);
    ck_assert_uint_eq(loop_fake_pending(h.loop), 0);
    gate_end(&h);
}
END_TEST

START_TEST(gate_failure_limit_2)
{
    struct harness h;
    const enum answer s[] = {A_FAIL, A_PASS, A_FAIL, A_PASS, A_PASS, A_FAIL};

    gate_start(&h, GATE(", \"failure_limit\": 2"), s, 6, A_PASS);
    run(&h, 4);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_RUNNING); /* 2 failed, tolerated */
    run(&h, 5);
    ck_assert_uint_eq(h.asked, 6);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_FAILED);
    ck_assert_str_eq(h.end_reason,
                     "3 measurements failed, more than the failure_limit of 2; the "
                     "last: t2 green: error_rate 4.8 % > 1 % over 1,203 requests (and 1 "
                     "more failed)");
    gate_end(&h);
}
END_TEST

START_TEST(gate_inconclusive_limit)
{
    struct harness h;
    const enum answer s[] = {A_INCONCLUSIVE, A_PASS, A_INCONCLUSIVE};

    /* 0: the first inconclusive one ends it (the rollout pauses with the reason). */
    gate_start(&h, GATE(""), s, 3, A_PASS);
    run(&h, 3);
    ck_assert_uint_eq(h.asked, 1);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_INCONCLUSIVE);
    ck_assert_str_eq(h.end_reason, "a measurement was inconclusive: t2 green: error_rate "
                                   "inconclusive: 12 requests in the window, fewer than the 100 a "
                                   "verdict needs (and 2 more inconclusive)");
    gate_end(&h);
    /* 1: the second. */
    gate_start(&h, GATE(", \"inconclusive_limit\": 1"), s, 3, A_PASS);
    run(&h, 3);
    ck_assert_uint_eq(h.asked, 3);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_INCONCLUSIVE);
    ck_assert_ptr_nonnull(strstr(h.end_reason, "2 measurements were inconclusive, more than the "
                                               "inconclusive_limit of 1"));
    gate_end(&h);
}
END_TEST

START_TEST(gate_consecutive_errors)
{
    struct harness h;
    const enum answer fails5[] = {A_ERROR, A_ERROR, A_ERROR, A_ERROR, A_ERROR};
    const enum answer recovers[] = {A_ERROR, A_ERROR, A_ERROR, A_ERROR, A_PASS,
                                    A_ERROR, A_ERROR, A_ERROR, A_ERROR};
    struct analysis_gate_counts c;

    /* A source that fails 5 times in a row: more than 4, Failed, and why. */
    gate_start(&h, GATE(""), fails5, 5, A_ERROR);
    run(&h, 3);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_RUNNING);
    run(&h, 3);
    ck_assert_uint_eq(h.asked, 5);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_FAILED);
    ck_assert_str_eq(h.end_reason, "the metric source failed 5 times in a row, more than the "
                                   "consecutive_error_limit of 4; the last: the metric source "
                                   "failed: connection refused");
    gate_end(&h);
    /* One that recovers after 4 resets the streak: 8 errors in all, never 5 in a row. */
    gate_start(&h, GATE(""), recovers, 9, A_PASS);
    run(&h, 12);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_RUNNING);
    analysis_gate_counts(h.g, &c);
    ck_assert_uint_eq(c.errors, 8);
    ck_assert_uint_eq(c.consecutive_errors, 0);
    ck_assert_uint_eq(h.ends, 0);
    gate_end(&h);
    /* consecutive_error_limit 0: the first error ends it. */
    gate_start(&h, GATE(", \"consecutive_error_limit\": 0"), fails5, 5, A_PASS);
    run(&h, 1);
    ck_assert_uint_eq(h.asked, 1);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_FAILED);
    gate_end(&h);
}
END_TEST

START_TEST(gate_count)
{
    struct harness h;
    const enum answer s[] = {A_PASS, A_ERROR, A_PASS, A_FAIL, A_PASS};
    const enum answer none_passed[] = {A_INCONCLUSIVE, A_INCONCLUSIVE};

    /* count 4 with failure_limit 1: errors do not count towards it (Argo's meaning). */
    gate_start(&h, GATE(", \"count\": 4, \"failure_limit\": 1"), s, 5, A_PASS);
    run(&h, 3);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_RUNNING);
    run(&h, 10);
    ck_assert_uint_eq(h.asked, 5);
    ck_assert_uint_eq(h.told, 5);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_SUCCESSFUL);
    ck_assert_str_eq(
        h.end_reason,
        "4 of 4 measurements taken: 3 passed, 1 failed, 0 inconclusive (and 1 errors)");
    ck_assert_uint_eq(loop_fake_pending(h.loop), 0);
    gate_end(&h);
    /* The count reached with no pass at all is not a success. */
    gate_start(&h, GATE(", \"count\": 2, \"inconclusive_limit\": 5"), none_passed, 2, A_PASS);
    run(&h, 3);
    ck_assert_int_eq(h.end_state, ANALYSIS_GATE_INCONCLUSIVE);
    ck_assert_ptr_nonnull(strstr(h.end_reason, "2 measurements taken and none passed"));
    gate_end(&h);
}
END_TEST

/* Background analysis: count 0 measures until stopped, then nothing more. */
START_TEST(gate_until_stopped)
{
    struct harness h;
    const enum answer s[] = {A_PASS};

    gate_start(&h, GATE(""), s, 1, A_PASS);
    run(&h, 50);
    ck_assert_uint_eq(h.asked, 51);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_RUNNING);
    ck_assert_str_eq(analysis_gate_reason(h.g), "");
    analysis_gate_stop(h.g);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_SUCCESSFUL);
    ck_assert_ptr_nonnull(strstr(analysis_gate_reason(h.g), "stopped after 51 measurements"));
    ck_assert_uint_eq(h.ends, 0); /* the caller stopped it: not told */
    run(&h, 5);
    ck_assert_uint_eq(h.asked, 51);
    gate_end(&h);

    /* Stopped with a measurement in flight: its late answer is refused. Stopped before any
     * pass: Stopped, not Successful. */
    gate_start(&h, GATE(""), s, 0, A_NONE);
    run(&h, 0);
    ck_assert_uint_eq(h.asked, 1);
    ck_assert_uint_eq(analysis_gate_pending(h.g), 1);
    analysis_gate_stop(h.g);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_STOPPED);
    ck_assert_uint_eq(analysis_gate_pending(h.g), 0);
    {
        struct analysis_instance c = inst("t2", HS_GREEN, figs(1203, 0.001, 0.2));
        struct analysis_input in = {.candidate = &c, .ncandidate = 1};

        ck_assert_int_eq(analysis_gate_measured(h.g, 1, &in), -1);
    }
    ck_assert_uint_eq(h.told, 0);
    gate_end(&h);

    /* A gate with a count stopped early: Stopped. */
    gate_start(&h, GATE(", \"count\": 5"), s, 1, A_PASS);
    run(&h, 1);
    analysis_gate_stop(h.g);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_STOPPED);
    ck_assert_str_eq(analysis_gate_reason(h.g), "stopped after 2 of 5 measurements");
    gate_end(&h);
}
END_TEST

START_TEST(gate_initial_delay)
{
    struct harness h;
    const enum answer s[] = {A_PASS};

    gate_start(&h, GATE(", \"initial_delay_seconds\": 45"), s, 0, A_PASS);
    loop_fake_advance(h.loop, 44999);
    ck_assert_uint_eq(h.asked, 0);
    loop_fake_advance(h.loop, 1);
    ck_assert_uint_eq(h.asked, 1);
    ck_assert_uint_eq(h.asked_at_ms[1], 45000);
    loop_fake_advance(h.loop, 9999);
    ck_assert_uint_eq(h.asked, 1);
    loop_fake_advance(h.loop, 1);
    ck_assert_uint_eq(h.asked, 2);
    ck_assert_uint_eq(h.asked_at_ms[2], 55000);
    gate_end(&h);
    (void)s;
}
END_TEST

/* A measurement that never answers is an error at the end of its interval, and the next one is
 * asked for then; an answer that comes later is refused. An answer within the interval does
 * not move the schedule. */
START_TEST(gate_no_answer)
{
    struct harness h;
    const enum answer s[] = {A_NONE};
    const struct analysis_measurement *m;
    struct analysis_gate_counts c;

    gate_start(&h, GATE(""), s, 1, A_NONE);
    loop_fake_advance(h.loop, 0);
    ck_assert_uint_eq(h.asked, 1);
    loop_fake_advance(h.loop, 9999);
    ck_assert_uint_eq(h.told, 0); /* still waiting */
    loop_fake_advance(h.loop, 1);
    ck_assert_uint_eq(h.told, 1);
    ck_assert_uint_eq(h.asked, 2);
    m = analysis_gate_last(h.g);
    ck_assert_int_eq(m->result, ANALYSIS_ERROR);
    ck_assert_uint_eq(m->seq, 1);
    ck_assert_str_eq(m->summary,
                     "the metric source failed: no answer within 10.00s (the interval)");
    {
        struct analysis_instance ci = inst("t2", HS_GREEN, figs(1203, 0.001, 0.2));
        struct analysis_instance st = inst("t2", HS_BLUE, figs(20000, 0.001, 0.2));
        struct analysis_input in = {.candidate = &ci, .ncandidate = 1, .stable = &st, .nstable = 1};

        ck_assert_int_eq(analysis_gate_measured(h.g, 1, &in), -1); /* too late */
        /* Measurement 2 answered 3 s into its interval: the third is still at 20 s. */
        loop_fake_advance(h.loop, 3000);
        ck_assert_int_eq(analysis_gate_measured(h.g, 2, &in), 0);
        ck_assert_int_eq(analysis_gate_measured(h.g, 2, &in), -1); /* once */
    }
    ck_assert_uint_eq(h.told, 2);
    ck_assert_int_eq(analysis_gate_last(h.g)->result, ANALYSIS_PASS);
    loop_fake_advance(h.loop, 6999);
    ck_assert_uint_eq(h.asked, 2);
    loop_fake_advance(h.loop, 1);
    ck_assert_uint_eq(h.asked, 3);
    /* Never again: five in a row fail the gate. */
    loop_fake_advance(h.loop, 50000);
    ck_assert_int_eq(analysis_gate_state(h.g), ANALYSIS_GATE_FAILED);
    analysis_gate_counts(h.g, &c);
    ck_assert_uint_eq(c.errors, 6);
    ck_assert_ptr_nonnull(strstr(analysis_gate_reason(h.g), "failed 5 times in a row"));
    gate_end(&h);
}
END_TEST

/* The history keeps the newest ANALYSIS_HISTORY_MAX; the gate can be freed from on_end. */
START_TEST(gate_history_and_free_in_callback)
{
    struct harness h;
    const enum answer s[] = {A_PASS};
    size_t i;

    gate_start(&h, GATE(""), s, 0, A_PASS);
    run(&h, 149);
    ck_assert_uint_eq(h.asked, 150);
    ck_assert_uint_eq(analysis_gate_history_len(h.g), ANALYSIS_HISTORY_MAX);
    ck_assert_uint_eq(analysis_gate_history(h.g, 0)->seq, 51);
    for (i = 1; i < ANALYSIS_HISTORY_MAX; i++)
        ck_assert_uint_eq(analysis_gate_history(h.g, i)->seq,
                          analysis_gate_history(h.g, i - 1)->seq + 1);
    ck_assert_uint_eq(analysis_gate_last(h.g)->seq, 150);
    ck_assert_ptr_null(analysis_gate_history(h.g, ANALYSIS_HISTORY_MAX));
    gate_end(&h);

    /* Freed in on_end, inside the answer given inside the measure callback. */
    {
        const enum answer f[] = {A_PASS, A_FAIL};

        gate_start(&h, GATE(""), f, 2, A_PASS);
        h.free_on_end = true;
        run(&h, 3);
        ck_assert_uint_eq(h.ends, 1);
        ck_assert_ptr_null(h.g);
        ck_assert_uint_eq(h.asked, 2);
        ck_assert_uint_eq(loop_fake_pending(h.loop), 0);
        loop_free(h.loop);
    }
}
END_TEST

/* ---- n3.json ---- */

/* Loading {"analysis": TEXT} fails with want, at the position where `at` starts in the
 * document. */
static void expect_refused(const char *text, const char *at, const char *want)
{
    char *doc = xasprintf("{\"analysis\": %s}", text), *pos, *full;
    const char *where = strstr(doc, at);
    struct cfg *c;
    struct err err;
    struct analysis_spec spec;

    ck_assert_msg(where != NULL, "%s not in %s", at, doc);
    ck_assert_msg(cfg_load_string("n3.json", doc, strlen(doc), &c, &err) == 0, "%s", err.msg);
    ck_assert_msg(analysis_spec_load(c, cJSON_GetObjectItemCaseSensitive(cfg_root(c), "analysis"),
                                     &spec, &err) == -1,
                  "loaded: %s", text);
    pos = xasprintf("n3.json:1:%d: ", (int)(where - doc) + 1);
    full = xasprintf("%s%s", pos, want);
    ck_assert_msg(strcmp(err.msg, full) == 0, "expected\n  %s\ngot\n  %s", full, err.msg);
    free(full);
    free(pos);
    cfg_free(c);
    free(doc);
}

START_TEST(n3_json_defaults)
{
    struct analysis_spec spec, copy;

    spec_from(&spec, "{}");
    ck_assert_uint_eq(spec.interval_ms, 30000);
    ck_assert_uint_eq(spec.count, 0);
    ck_assert_uint_eq(spec.initial_delay_ms, 0);
    ck_assert_uint_eq(spec.failure_limit, 0);
    ck_assert_uint_eq(spec.inconclusive_limit, 0);
    ck_assert_uint_eq(spec.consecutive_error_limit, 4);
    ck_assert_uint_eq(spec.min_samples, 100);
    ck_assert_int_eq(spec.on_failure, ANALYSIS_ROLLBACK);
    /* NAMEL3SS.md's rules. */
    ck_assert_uint_eq(spec.nrules, 3);
    ck_assert_str_eq(spec.rules[0].name, "error_rate");
    ck_assert_int_eq(spec.rules[0].kind, ANALYSIS_MAX);
    ck_assert_double_eq(spec.rules[0].threshold, 1);
    ck_assert_str_eq(spec.rules[1].name, "p95");
    ck_assert_int_eq(spec.rules[1].metric, ANALYSIS_P95);
    ck_assert_double_eq(spec.rules[1].threshold, 2000);
    ck_assert_str_eq(spec.rules[2].name, "error_rate_vs_stable");
    ck_assert_int_eq(spec.rules[2].kind, ANALYSIS_MAX_INCREASE);
    ck_assert_double_eq(spec.rules[2].threshold, 0);
    ck_assert_double_eq(spec.rules[2].confidence, 0.99);
    ck_assert_int_eq(spec.rules[2].baseline, ANALYSIS_BASELINE_ALL);
    analysis_spec_done(&spec);

    spec_from(&spec, "{\"interval_seconds\": 2.5, \"count\": 6, \"initial_delay_seconds\": 60, "
                     "\"failure_limit\": 2, \"inconclusive_limit\": 3, "
                     "\"consecutive_error_limit\": 0, \"min_samples\": 500, \"on_failure\": "
                     "\"pause\", \"rules\": [{\"metric\": \"p99\", \"max_ms\": 800, \"name\": "
                     "\"tail\"}, {\"metric\": \"req_s\", \"min_per_second\": 2.5}]}");
    ck_assert_uint_eq(spec.interval_ms, 2500);
    ck_assert_uint_eq(spec.count, 6);
    ck_assert_uint_eq(spec.initial_delay_ms, 60000);
    ck_assert_uint_eq(spec.failure_limit, 2);
    ck_assert_uint_eq(spec.inconclusive_limit, 3);
    ck_assert_uint_eq(spec.consecutive_error_limit, 0);
    ck_assert_uint_eq(spec.min_samples, 500);
    ck_assert_int_eq(spec.on_failure, ANALYSIS_PAUSE);
    ck_assert_uint_eq(spec.nrules, 2);
    ck_assert_str_eq(spec.rules[0].name, "tail");
    ck_assert_str_eq(spec.rules[1].name, "req_s");
    ck_assert_int_eq(spec.rules[1].kind, ANALYSIS_MIN);
    ck_assert_double_eq(spec.rules[1].threshold, 2.5);
    /* A copy outlives its original. */
    analysis_spec_copy(&copy, &spec);
    analysis_spec_done(&spec);
    ck_assert_str_eq(copy.rules[0].name, "tail");
    ck_assert_str_eq(analysis_policy_name(copy.on_failure), "pause");
    analysis_spec_done(&copy);
}
END_TEST

START_TEST(n3_json_refused)
{
    expect_refused("[1]", "[1]", "analysis: expected an object (an analysis), got an array");
    expect_refused("{\"intervall_seconds\": 5}", "\"intervall",
                   "analysis.intervall_seconds: unknown key; did you mean \"interval_seconds\"?");
    expect_refused("{\"interval_seconds\": 0}", "0}",
                   "analysis.interval_seconds: expected a number from 1 to 86400, got 0");
    expect_refused("{\"count\": 1.5}", "1.5",
                   "analysis.count: expected an integer from 0 to 100000, got 1.5");
    expect_refused("{\"min_samples\": 0}", "0}",
                   "analysis.min_samples: expected an integer from 1 to 1000000000, got 0");
    expect_refused("{\"on_failure\": \"rollbak\"}", "\"rollbak",
                   "analysis.on_failure: no failure policy \"rollbak\"; did you mean "
                   "\"rollback\"?");
    expect_refused("{\"on_failure\": \"explode\"}", "\"explode",
                   "analysis.on_failure: no failure policy \"explode\"; it is \"rollback\", "
                   "\"abort\" or \"pause\"");
    expect_refused("{\"count\": 3, \"failure_limit\": 3}", "3}",
                   "analysis.failure_limit: a failure_limit of 3 with a count of 3 never fails "
                   "the gate: at most 2");
    expect_refused("{\"rules\": {}}", "{}", "analysis.rules: expected an array, got an object");
    expect_refused("{\"rules\": []}", "[]",
                   "analysis.rules: no rule: an analysis that judges nothing passes nothing; "
                   "leave \"rules\" out for the defaults (error_rate max 1 %, p95 max 2000 ms, "
                   "error rate not significantly worse than the stable's)");
    expect_refused("{\"rules\": [\"p95\"]}", "\"p95",
                   "analysis.rules[0]: expected an object (a rule: {\"metric\": \"error_rate\", "
                   "\"max_percent\": 1}), got a string");
    /* A misspelt metric: the suggestion; an unknown one: the list. */
    expect_refused("{\"rules\": [{\"metric\": \"eror_rate\", \"max_percent\": 1}]}", "\"eror",
                   "analysis.rules[0].metric: no metric \"eror_rate\"; did you mean "
                   "\"error_rate\"? (the metrics: error_rate, p50, p95, p99, req_s)");
    expect_refused("{\"rules\": [{\"metric\": \"latency\", \"max_ms\": 1}]}", "\"latency",
                   "analysis.rules[0].metric: no metric \"latency\" (the metrics: error_rate, "
                   "p50, p95, p99, req_s)");
    expect_refused("{\"rules\": [{\"max_ms\": 1}]}", "{\"max_ms",
                   "analysis.rules[0]: missing required key \"metric\"");
    /* Units in the key. */
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"max\": 0.01}]}", "\"max\"",
                   "analysis.rules[0].max: a threshold says its unit in its key: error_rate "
                   "takes \"max_percent\" or \"min_percent\" (a percentage: 1 for 1 %)");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"min\": 2}]}", "\"min\"",
                   "analysis.rules[0].min: a threshold says its unit in its key: p95 takes "
                   "\"max_ms\" or \"min_ms\" (milliseconds)");
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"max_ms\": 1}]}", "\"max_ms",
                   "analysis.rules[0].max_ms: \"max_ms\" is a latency's threshold; error_rate "
                   "takes \"max_percent\" or \"min_percent\" (a percentage: 1 for 1 %), or "
                   "\"max_increase\" with \"compare\"");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"max_percnt\": 1}]}", "\"max_percnt",
                   "analysis.rules[0].max_percnt: unknown key; did you mean \"max_percent\"?");
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"max_percent\": 150}]}", "150",
                   "analysis.rules[0].max_percent: expected a number from 0 to 100, got 150");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"max_ms\": 1, \"min_ms\": 0}]}", "\"min_ms",
                   "analysis.rules[0].min_ms: a second test in one rule (\"max_ms\" and "
                   "\"min_ms\"): a rule has one; write two rules");
    expect_refused("{\"rules\": [{\"metric\": \"p95\"}]}", "{\"metric",
                   "analysis.rules[0]: a rule needs a test: \"max_ms\" or \"min_ms\" "
                   "(milliseconds), or \"compare\": \"stable\" with \"max_ratio\"");
    /* Comparisons. */
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"max_ratio\": 2}]}", "\"max_ratio",
                   "analysis.rules[0].max_ratio: \"max_ratio\" compares the candidate with the "
                   "stable version: add \"compare\": \"stable\"");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stabel\", \"max_ratio\": "
                   "2}]}",
                   "\"stabel",
                   "analysis.rules[0].compare: no comparison with \"stabel\"; did you mean "
                   "\"stable\"?");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stable\"}]}", "{\"metric",
                   "analysis.rules[0]: a latency compared with the stable's needs \"max_ratio\" "
                   "(candidate / stable, e.g. 1.5)");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stable\", \"max_ms\": 1}]}",
                   "\"max_ms",
                   "analysis.rules[0].max_ms: a comparison with the stable version takes "
                   "\"max_ratio\" (candidate / stable), not a threshold of its own (make a second "
                   "rule for \"max_ms\")");
    expect_refused("{\"rules\": [{\"metric\": \"req_s\", \"compare\": \"stable\"}]}", "\"stable\"",
                   "analysis.rules[0].compare: request rates are not compared with the stable's "
                   "(the router's weights decide them); give req_s a \"min_per_second\" or "
                   "\"max_per_second\"");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stable\", \"max_ratio\": "
                   "0.5}]}",
                   "0.5", "analysis.rules[0].max_ratio: expected a number from 1 to 1000, got 0.5");
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"compare\": \"stable\", "
                   "\"confidence\": 1}]}",
                   "1}",
                   "analysis.rules[0].confidence: expected a number from 0.5 to 0.9999, got 1");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"compare\": \"stable\", \"max_ratio\": 2, "
                   "\"confidence\": 0.9}]}",
                   "\"confidence",
                   "analysis.rules[0].confidence: only the error rate's comparison is a "
                   "statistical test; a latency's is a ratio (\"max_ratio\") and takes no "
                   "confidence");
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"max_percent\": 1, \"baseline\": "
                   "\"all\"}]}",
                   "\"baseline",
                   "analysis.rules[0].baseline: only a comparison with the stable version "
                   "(\"compare\": \"stable\") takes this key");
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"compare\": \"stable\", "
                   "\"baseline\": \"same_targt\"}]}",
                   "\"same_targt",
                   "analysis.rules[0].baseline: no baseline \"same_targt\"; did you mean "
                   "\"same_target\"?");
    expect_refused("{\"rules\": [{\"metric\": \"error_rate\", \"compare\": \"stable\", "
                   "\"baseline\": \"same_host\"}]}",
                   "\"same_host",
                   "analysis.rules[0].baseline: no baseline \"same_host\"; it is \"all\" or "
                   "\"same_target\"");
    /* Names. */
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"max_ms\": 1}, {\"metric\": \"p95\", "
                   "\"max_ms\": 2}]}",
                   "{\"metric\": \"p95\", \"max_ms\": 2",
                   "analysis.rules[1]: a second rule named \"p95\" (give each a \"name\" of its "
                   "own)");
    expect_refused("{\"rules\": [{\"metric\": \"p95\", \"max_ms\": 1, \"name\": \"\"}]}", "\"\"",
                   "analysis.rules[0].name: a rule's name is 1 to 64 printable characters");
}
END_TEST

/* ---- JSON ---- */

START_TEST(verdict_json)
{
    static const char *const keys[] = {
        "rule",      "metric",    "kind",           "result",   "value",
        "unit",      "threshold", "threshold_unit", "baseline", "baseline_samples",
        "statistic", "test",      "reason",         "target",   "slot",
        "samples",   "time",      "at_ms",          NULL};
    struct analysis_spec spec;
    struct analysis_instance c = inst("t2", HS_GREEN, figs(2000, 0.05, 0.1));
    struct analysis_instance st = inst("t1", HS_BLUE, figs(2000, 0.005, 0.1));
    struct analysis_measurement *m;
    cJSON *j, *v;
    char *text;
    size_t i;

    analysis_spec_default(&spec);
    m = analysis_judge(
        &spec,
        &(struct analysis_input){.candidate = &c, .ncandidate = 1, .stable = &st, .nstable = 1},
        2500 * 1000u, 1700000000250000ull);
    m->seq = 7;
    /* The comparison's verdict: every field there, with its value. */
    j = analysis_verdict_json(&m->verdicts[2]);
    for (i = 0; keys[i] != NULL; i++)
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(j, keys[i]) != NULL, "no %s", keys[i]);
    ck_assert_int_eq(cJSON_GetArraySize(j), 18);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "rule")->valuestring,
                     "error_rate_vs_stable");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "metric")->valuestring, "error_rate");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "kind")->valuestring, "max_increase");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "result")->valuestring, "fail");
    ck_assert_double_eq_tol(cJSON_GetObjectItemCaseSensitive(j, "value")->valuedouble, 5, 1e-9);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "unit")->valuestring, "%");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "threshold")->valuedouble, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "threshold_unit")->valuestring, "points");
    ck_assert_double_eq_tol(cJSON_GetObjectItemCaseSensitive(j, "baseline")->valuedouble, 0.5,
                            1e-9);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "baseline_samples")->valuedouble, 2000);
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "statistic")->valuedouble > 8);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "test")->valuestring,
                     "two-proportion z-test z=8.6 > 2.33 (one-sided, 99 %)");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "reason")));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "target")->valuestring, "t2");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "slot")->valuestring, "green");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "samples")->valuedouble, 2000);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "time")->valuestring,
                     "2023-11-14T22:13:20.250Z");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "at_ms")->valuedouble, 2500);
    cJSON_Delete(j);
    /* A threshold verdict: null where a comparison's fields do not apply. */
    j = analysis_verdict_json(&m->verdicts[0]);
    ck_assert_int_eq(cJSON_GetArraySize(j), 18);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "baseline")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "baseline_samples")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "statistic")));
    cJSON_Delete(j);
    /* The measurement, printed and read back. */
    j = analysis_measurement_json(m);
    text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "seq")->valuedouble, 7);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "result")->valuestring, "fail");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "summary")->valuestring, m->summary);
    v = cJSON_GetObjectItemCaseSensitive(j, "verdicts");
    ck_assert_int_eq(cJSON_GetArraySize(v), 3);
    ck_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 1), "test")->valuestring,
        "threshold 100 ms <= 2,000 ms");
    cJSON_Delete(j);
    free(text);
    analysis_measurement_free(m);

    /* An unknown value and a source failure: null value, the reason, no target. */
    c.f = figs(2000, 0, 0.1);
    c.f.latency_known = false;
    m = analysis_judge(&spec, &(struct analysis_input){.candidate = &c, .ncandidate = 1}, 0, 0);
    j = analysis_verdict_json(&m->verdicts[1]);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "value")));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "result")->valuestring, "inconclusive");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "reason")->valuestring, "p95 unknown");
    cJSON_Delete(j);
    analysis_measurement_free(m);
    m = analysis_judge(&spec, &(struct analysis_input){.error = "timed out"}, 0, 0);
    j = analysis_verdict_json(&m->verdicts[0]);
    ck_assert_int_eq(cJSON_GetArraySize(j), 18);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "target")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "slot")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "samples")));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "result")->valuestring, "error");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "reason")->valuestring,
                     "the metric source failed: timed out");
    cJSON_Delete(j);
    analysis_measurement_free(m);
    analysis_spec_done(&spec);
}
END_TEST

START_TEST(gate_json)
{
    struct harness h;
    const enum answer s[] = {A_PASS, A_FAIL};
    cJSON *j;

    gate_start(&h, GATE(", \"on_failure\": \"abort\""), s, 2, A_PASS);
    j = analysis_gate_json(h.g);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "state")->valuestring, "running");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "last")));
    cJSON_Delete(j);
    run(&h, 2);
    j = analysis_gate_json(h.g);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "state")->valuestring, "failed");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "reason")->valuestring, h.end_reason);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "on_failure")->valuestring, "abort");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "interval_seconds")->valuedouble, 10);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "taken")->valuedouble, 2);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "passed")->valuedouble, 1);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "failed")->valuedouble, 1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "pending")));
    ck_assert_double_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "last"), "seq")
            ->valuedouble,
        2);
    cJSON_Delete(j);
    gate_end(&h);
}
END_TEST

static Suite *analysis_suite(void)
{
    Suite *s = suite_create("analysis");
    TCase *j = tcase_create("judge");
    TCase *g = tcase_create("gate");
    TCase *c = tcase_create("config");

    tcase_add_test(j, rules_at_the_boundary);
    tcase_add_test(j, threshold_verdict_explained);
    tcase_add_test(j, too_few_samples);
    tcase_add_test(j, unknown_p95);
    tcase_add_test(j, z_test);
    tcase_add_test(j, latency_ratio_and_baselines);
    tcase_add_test(j, latency_beyond_the_histogram);
    tcase_add_test(j, source_errors);
    tcase_add_test(j, verdict_json);
    suite_add_tcase(s, j);
    tcase_add_test(g, gate_failure_limit_0);
    tcase_add_test(g, gate_failure_limit_2);
    tcase_add_test(g, gate_inconclusive_limit);
    tcase_add_test(g, gate_consecutive_errors);
    tcase_add_test(g, gate_count);
    tcase_add_test(g, gate_until_stopped);
    tcase_add_test(g, gate_initial_delay);
    tcase_add_test(g, gate_no_answer);
    tcase_add_test(g, gate_history_and_free_in_callback);
    tcase_add_test(g, gate_json);
    suite_add_tcase(s, g);
    tcase_add_test(c, n3_json_defaults);
    tcase_add_test(c, n3_json_refused);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return tu_run_suite(analysis_suite());
}
