/*
 * Metric sources (deploy/metricsrc.h) and the prometheus source's reading (plugins/promtext.h,
 * plugins/metrics_prometheus.c): the window's figures on a fake clock (rates, error rates,
 * a window that slides, too few samples, an empty window, a failed read, counter resets never
 * negative, a bounded ring, samples out of order), quantiles interpolated in buckets as
 * Prometheus's histogram_quantile (the +Inf bucket, torn counts), a source on the fake loop
 * (reads every interval, never two at once, waiters told), n3.json's "metrics" with positions,
 * and the text reader on the real sample app's /metrics and on hostile text; then the
 * prometheus source against a real n3app: exact request and error counts between two reads,
 * probes and scrapes not counted, a restart counted from 0.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/metricsrc.h"
#include "plugins/builtin.h"
#include "plugins/httpc.h"
#include "plugins/promtext.h"
#include "tests/unit/testutil.h"

#define WAIT_MS 20000
#define S       1000000u /* a second, in the loop's microseconds */

/* The sample app's buckets (examples/app/stats.c), +Inf last. */
static const double app_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,  0.5,    1,     2.5,  5,     10,   INFINITY};
#define APP_NB (sizeof app_le / sizeof app_le[0])

/* A sample at t seconds: requests and errors so far, and every observation in bucket b. */
static struct metricsrc_sample sample_at(double t, double requests, double errors, size_t b)
{
    struct metricsrc_sample s;
    size_t i;

    memset(&s, 0, sizeof s);
    s.ok = true;
    s.at_us = (uint64_t)(t * S);
    s.requests = requests;
    s.errors = errors;
    s.nbuckets = APP_NB;
    memcpy(s.le, app_le, sizeof app_le);
    for (i = 0; i < APP_NB; i++)
        s.count[i] = i >= b ? requests : 0;
    return s;
}

static void add(struct metricsrc_window *w, struct metricsrc_sample s)
{
    metricsrc_window_add(w, &s);
}

/* ---- the window, on a fake clock ---- */

/* 100 requests a second, 5 % of them errors, read every second. */
START_TEST(window_rates)
{
    struct loop *loop = loop_new_fake(0, 1);
    struct metricsrc_window *w = metricsrc_window_new(60000, 62);
    struct metricsrc_figures f;
    int t;

    for (t = 1; t <= 10; t++) {
        loop_fake_advance(loop, 1000);
        add(w, sample_at((double)loop_now_us(loop) / S, 1000 + 100.0 * t, 50 + 5.0 * t, 4));
    }
    metricsrc_window_figures(w, loop_now_us(loop), true, &f);
    ck_assert(f.rate_known);
    ck_assert_double_eq_tol(f.req_s, 100, 1e-9);
    ck_assert(f.error_known);
    ck_assert_double_eq_tol(f.error_rate, 0.05, 1e-9);
    ck_assert_uint_eq(f.samples, 900); /* 9 seconds between the first sample and the last */
    ck_assert_uint_eq(f.points, 10);
    ck_assert_double_eq_tol(f.span_s, 9, 1e-9);
    ck_assert_uint_eq(f.resets, 0);
    /* Every request of the window in bucket 4 (0.01 to 0.025 s): interpolated inside it. */
    ck_assert(f.latency_known);
    ck_assert(!f.latency_capped);
    ck_assert_double_eq_tol(f.p50_s, 0.01 + 0.015 * 0.50, 1e-12);
    ck_assert_double_eq_tol(f.p95_s, 0.01 + 0.015 * 0.95, 1e-12);
    ck_assert_double_eq_tol(f.p99_s, 0.01 + 0.015 * 0.99, 1e-12);
    ck_assert_str_eq(f.why, "");
    /* The same figures without quantiles from the source: unknown, not 0. */
    metricsrc_window_figures(w, loop_now_us(loop), false, &f);
    ck_assert(f.rate_known);
    ck_assert(!f.latency_known);
    ck_assert_ptr_nonnull(strstr(f.why, "the source gives no latencies"));
    metricsrc_window_free(w);
    loop_free(loop);
}
END_TEST

/* The window slides: what happened before it is not in the figures. */
START_TEST(window_slides)
{
    struct metricsrc_window *w = metricsrc_window_new(5000, 7);
    struct metricsrc_figures f;
    double req = 0, err = 0;
    int t;

    for (t = 1; t <= 30; t++) {
        /* 100 req/s with no error and fast until 20 s; then 300 req/s, half of them errors,
         * all slow (bucket 8: 0.25 to 0.5 s). */
        double r = t <= 20 ? 100 : 300;
        struct metricsrc_sample s;
        size_t i;

        req += r;
        err += t <= 20 ? 0 : r / 2;
        s = sample_at(t, req, err, 0);
        for (i = 0; i < APP_NB; i++)
            s.count[i] = 2000.0 + (t > 20 && i >= 8 ? (t - 20) * 300.0 : 0);
        add(w, s);
        if (t == 20) {
            metricsrc_window_figures(w, (uint64_t)t * S, true, &f);
            ck_assert_double_eq_tol(f.req_s, 100, 1e-9);
            ck_assert_double_eq_tol(f.error_rate, 0, 1e-12);
        }
    }
    metricsrc_window_figures(w, 30u * S, true, &f);
    ck_assert_uint_eq(f.points, 5); /* 26 to 30: (25, 30] */
    ck_assert_double_eq_tol(f.req_s, 300, 1e-9);
    ck_assert_double_eq_tol(f.error_rate, 0.5, 1e-12);
    ck_assert(f.latency_known);
    ck_assert(f.p50_s > 0.25 && f.p50_s <= 0.5);
    /* Read at 30 s, looked at 33 s: only the samples after 28 s. */
    metricsrc_window_figures(w, 33u * S, true, &f);
    ck_assert_uint_eq(f.points, 2);
    ck_assert_double_eq_tol(f.req_s, 300, 1e-9);
    ck_assert_double_eq_tol(f.span_s, 1, 1e-9);
    metricsrc_window_free(w);
}
END_TEST

/* No sample, one, or only old ones: no rate, and the figures say why; never 0 in its place. */
START_TEST(window_too_few)
{
    struct metricsrc_window *w = metricsrc_window_new(10000, 12);
    struct metricsrc_figures f;
    struct metricsrc_sample bad;

    metricsrc_window_figures(w, 5u * S, true, &f);
    ck_assert(!f.rate_known && !f.error_known && !f.latency_known);
    ck_assert_uint_eq(f.points, 0);
    ck_assert_uint_eq(f.samples, 0);
    ck_assert_ptr_nonnull(strstr(f.why, "no sample in the last 10 s"));
    add(w, sample_at(5, 100, 1, 0));
    metricsrc_window_figures(w, 5u * S, true, &f);
    ck_assert(!f.rate_known && !f.error_known && !f.latency_known);
    ck_assert_uint_eq(f.points, 1);
    ck_assert_ptr_nonnull(strstr(f.why, "a rate needs two"));
    add(w, sample_at(6, 200, 2, 0));
    metricsrc_window_figures(w, 6u * S, true, &f);
    ck_assert(f.rate_known);
    ck_assert_double_eq_tol(f.req_s, 100, 1e-9);
    /* Both older than the window when looked at much later. */
    metricsrc_window_figures(w, 100u * S, true, &f);
    ck_assert(!f.rate_known);
    ck_assert_uint_eq(f.points, 0);
    /* A failed read: the figures come from the samples before it, and say it failed. */
    memset(&bad, 0, sizeof bad);
    snprintf(bad.error, sizeof bad.error, "connection refused");
    metricsrc_window_add(w, &bad);
    metricsrc_window_figures(w, 6u * S, true, &f);
    ck_assert(f.rate_known);
    ck_assert(f.last_failed);
    ck_assert_ptr_nonnull(strstr(f.why, "the last read failed: connection refused"));
    add(w, sample_at(7, 300, 3, 0));
    metricsrc_window_figures(w, 7u * S, true, &f);
    ck_assert(!f.last_failed);
    ck_assert_str_eq(f.why, "");
    /* Not numbers: refused as a failed read, not kept. */
    bad = sample_at(8, NAN, 0, 0);
    metricsrc_window_add(w, &bad);
    metricsrc_window_figures(w, 8u * S, true, &f);
    ck_assert(f.last_failed);
    ck_assert_uint_eq(f.points, 3);
    metricsrc_window_free(w);
}
END_TEST

/* No request in the window: a rate of 0 (known), but no error rate and no latency. */
START_TEST(window_idle)
{
    struct metricsrc_window *w = metricsrc_window_new(10000, 12);
    struct metricsrc_figures f;

    add(w, sample_at(1, 500, 20, 3));
    add(w, sample_at(2, 500, 20, 3));
    add(w, sample_at(3, 500, 20, 3));
    metricsrc_window_figures(w, 3u * S, true, &f);
    ck_assert(f.rate_known);
    ck_assert_double_eq(f.req_s, 0);
    ck_assert_uint_eq(f.samples, 0);
    ck_assert(!f.error_known);
    ck_assert(!f.latency_known);
    ck_assert_ptr_nonnull(strstr(f.why, "no request in the window"));
    metricsrc_window_free(w);
}
END_TEST

/* The instance restarted: its counters start again from 0, and the rate is never negative. */
START_TEST(window_reset)
{
    struct metricsrc_window *w = metricsrc_window_new(60000, 62);
    struct metricsrc_figures f;
    struct metricsrc_sample s;

    add(w, sample_at(1, 1000, 100, 2));
    add(w, sample_at(2, 1100, 110, 2)); /* +100, +10 */
    add(w, sample_at(3, 30, 3, 2));     /* restarted: 30 and 3 since */
    add(w, sample_at(4, 130, 13, 2));   /* +100, +10 */
    metricsrc_window_figures(w, 4u * S, true, &f);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert_uint_eq(f.samples, 230);
    ck_assert_double_eq_tol(f.req_s, 230.0 / 3.0, 1e-9);
    ck_assert_double_eq_tol(f.error_rate, 23.0 / 230.0, 1e-12);
    ck_assert(f.latency_known);
    ck_assert(f.p99_s > 0.0025 && f.p99_s <= 0.005); /* bucket 2 */
    /* The newest minus the oldest would be 130 - 1000: never that. */
    ck_assert(f.req_s >= 0);
    metricsrc_window_free(w);

    /* A restart whose new counters are already above the old ones: the start time says so. */
    w = metricsrc_window_new(60000, 62);
    s = sample_at(1, 100, 0, 0);
    s.start_time = 1000.25;
    add(w, s);
    s = sample_at(2, 150, 0, 0);
    s.start_time = 1000.25;
    add(w, s);
    s = sample_at(3, 400, 0, 0);
    s.start_time = 1002.5;
    add(w, s);
    metricsrc_window_figures(w, 3u * S, true, &f);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert_uint_eq(f.samples, 50 + 400);
    metricsrc_window_free(w);

    /* Only the errors went down (a counter series that went away and came back): a reset too,
     * not a negative error count. */
    w = metricsrc_window_new(60000, 62);
    add(w, sample_at(1, 100, 10, 0));
    add(w, sample_at(2, 200, 4, 0));
    metricsrc_window_figures(w, 2u * S, true, &f);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert(f.error_rate >= 0 && f.error_rate <= 1);
    ck_assert_uint_eq(f.samples, 200);
    ck_assert_double_eq_tol(f.error_rate, 4.0 / 200.0, 1e-12);
    metricsrc_window_free(w);

    /* A bucket that went down alone (a torn histogram after a restart): the histogram counts
     * from 0 for that pair. */
    w = metricsrc_window_new(60000, 62);
    add(w, sample_at(1, 100, 0, 5));
    s = sample_at(2, 120, 0, 5);
    s.count[5] = 10; /* below the 100 before */
    add(w, s);
    metricsrc_window_figures(w, 2u * S, true, &f);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert_uint_eq(f.samples, 120);
    metricsrc_window_free(w);
}
END_TEST

/* The ring keeps the newest capacity samples; a sample older than the newest is dropped. */
START_TEST(window_ring)
{
    struct metricsrc_window *w = metricsrc_window_new(3600000, 4);
    struct metricsrc_figures f;
    int t;

    for (t = 1; t <= 100; t++)
        add(w, sample_at(t, t <= 96 ? 10.0 * t : 960 + 50.0 * (t - 96), 0, 0));
    metricsrc_window_figures(w, 100u * S, true, &f);
    ck_assert_uint_eq(f.points, 4); /* 97 to 100 */
    ck_assert_double_eq_tol(f.req_s, 50, 1e-9);
    add(w, sample_at(99.5, 5000, 0, 0)); /* out of order */
    add(w, sample_at(100, 5000, 0, 0));  /* as old as the newest */
    metricsrc_window_figures(w, 100u * S, true, &f);
    ck_assert_uint_eq(f.points, 4);
    ck_assert_double_eq_tol(f.req_s, 50, 1e-9);
    metricsrc_window_free(w);
}
END_TEST

/* Buckets whose bounds change (a new version with other buckets): the quantiles come from the
 * pairs with the newest bounds only. */
START_TEST(window_new_bounds)
{
    struct metricsrc_window *w = metricsrc_window_new(60000, 62);
    struct metricsrc_figures f;
    struct metricsrc_sample s;

    add(w, sample_at(1, 100, 0, 0));
    add(w, sample_at(2, 200, 0, 0));
    memset(&s, 0, sizeof s);
    s.ok = true;
    s.at_us = 3 * S;
    s.requests = 300;
    s.nbuckets = 3;
    s.le[0] = 1;
    s.le[1] = 2;
    s.le[2] = INFINITY;
    s.count[0] = 0;
    s.count[1] = 300;
    s.count[2] = 300;
    add(w, s);
    s.at_us = 4 * S;
    s.requests = 400;
    s.count[1] = s.count[2] = 400;
    add(w, s);
    metricsrc_window_figures(w, 4u * S, true, &f);
    ck_assert_uint_eq(f.samples, 300);
    ck_assert(f.latency_known);
    /* The 100 of the last pair, all between 1 and 2 s. */
    ck_assert_double_eq_tol(f.p50_s, 1.5, 1e-12);
    metricsrc_window_free(w);
}
END_TEST

/* ---- quantiles, as histogram_quantile ---- */

START_TEST(bucket_quantiles)
{
    const double le[] = {0.1, 0.5, 1, INFINITY};
    const double count[] = {10, 60, 90, 100};
    const double torn[] = {10, 5, 90, 100};
    const double empty[] = {0, 0, 0, 0};
    const double neg_le[] = {-1, INFINITY};
    const double neg_count[] = {5, 10};
    const double no_inf[] = {0.1, 0.5, 1, 2};
    bool capped;

    /* Rank 50 of 100: bucket (0.1, 0.5] holds ranks 11 to 60, 40 of its 50 in: 0.1 + 0.4 * 0.8. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.5, le, count, 4, &capped), 0.42, 1e-12);
    ck_assert(!capped);
    /* Rank 5 in the first bucket: from 0. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.05, le, count, 4, &capped), 0.05, 1e-12);
    /* Rank 90 is the top of (0.5, 1]. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.9, le, count, 4, &capped), 1, 1e-12);
    ck_assert(!capped);
    /* Rank 95 in +Inf: the highest finite bound, capped. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.95, le, count, 4, &capped), 1, 1e-12);
    ck_assert(capped);
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.99, le, count, 4, &capped), 1, 1e-12);
    ck_assert(capped);
    /* q = 0 and q = 1. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0, le, count, 4, &capped), 0, 1e-12);
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(1, le, count, 4, &capped), 1, 1e-12);
    ck_assert(capped);
    /* A count below the one before it is taken as that one: (0.1, 0.5] then holds nothing, and
     * rank 50 falls in (0.5, 1]: 0.5 + 0.5 * 40 / 80. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.5, le, torn, 4, &capped), 0.75, 1e-12);
    /* Unknown: no observation, no +Inf, a single bucket, q out of range. */
    ck_assert(isnan(metricsrc_bucket_quantile(0.5, le, empty, 4, &capped)));
    ck_assert(isnan(metricsrc_bucket_quantile(0.5, no_inf, count, 4, &capped)));
    ck_assert(isnan(metricsrc_bucket_quantile(0.5, le + 3, count + 3, 1, &capped)));
    ck_assert(isnan(metricsrc_bucket_quantile(1.5, le, count, 4, &capped)));
    ck_assert(isnan(metricsrc_bucket_quantile(NAN, le, count, 4, &capped)));
    /* A first bound at or below 0: that bound. */
    ck_assert_double_eq_tol(metricsrc_bucket_quantile(0.2, neg_le, neg_count, 2, &capped), -1,
                            1e-12);
}
END_TEST

/* Everything slower than the highest finite bound: the figures say at least that. */
START_TEST(window_inf_bucket)
{
    struct metricsrc_window *w = metricsrc_window_new(60000, 62);
    struct metricsrc_figures f;

    add(w, sample_at(1, 10, 0, APP_NB - 1));
    add(w, sample_at(2, 20, 0, APP_NB - 1));
    metricsrc_window_figures(w, 2u * S, true, &f);
    ck_assert(f.latency_known);
    ck_assert(f.latency_capped);
    ck_assert_double_eq(f.p50_s, 10);
    ck_assert_double_eq(f.p99_s, 10);
    metricsrc_window_free(w);
}
END_TEST

/* ---- a source on the fake loop, with a kind of the test's ---- */

struct fake {
    struct loop *loop;
    size_t n;
    struct metricsrc_sample *out;
    metricsrc_read_fn done;
    void *arg;
    struct loop_timer *t;
};

static double fake_requests;
static unsigned fake_reads, fake_delay_ms, fake_in_flight, fake_most_in_flight;

static void fake_answer(void *arg)
{
    struct fake *k = arg;
    size_t i;

    fake_in_flight--;
    for (i = 0; i < k->n; i++) {
        k->out[i].ok = true;
        k->out[i].requests = fake_requests * (double)(i + 1);
    }
    k->done(k->arg);
}

static void *fake_open(const struct metricsrc_ctx *ctx, struct err *err)
{
    struct fake *k = xcalloc(1, sizeof *k);

    (void)err;
    k->loop = ctx->loop;
    k->n = ctx->n;
    k->t = loop_timer_new(ctx->loop, fake_answer, k);
    return k;
}

static void fake_read(void *src, struct metricsrc_sample *out, metricsrc_read_fn done, void *arg)
{
    struct fake *k = src;

    fake_reads++;
    if (++fake_in_flight > fake_most_in_flight)
        fake_most_in_flight = fake_in_flight;
    k->out = out;
    k->done = done;
    k->arg = arg;
    loop_timer_start(k->t, fake_delay_ms);
}

static void fake_close(void *src)
{
    struct fake *k = src;

    loop_timer_free(k->t);
    free(k);
}

static const char *const fake_keys[] = {"rate", NULL};

static const struct metricsrc_kind fake_kind = {
    .name = "fake",
    .keys = fake_keys,
    .quantiles = false,
    .open = fake_open,
    .read = fake_read,
    .close = fake_close,
};

static void spec_from(struct metricsrc_spec *spec, const char *json)
{
    struct cfg *c;
    struct err err;

    ck_assert_msg(cfg_load_string("metrics.json", json, strlen(json), &c, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(metricsrc_spec_load(c, cfg_root(c), spec, &err) == 0, "%s", err.msg);
    cfg_free(c);
}

static void count_cb(void *arg)
{
    (*(unsigned *)arg)++;
}

START_TEST(source_on_the_fake_loop)
{
    struct loop *loop = loop_new_fake(0, 1);
    struct metricsrc_instance inst[2] = {
        {.target = "t1", .slot = HS_BLUE, .host = "127.0.0.1", .port = 8001, .server = -1},
        {.target = "t1", .slot = HS_GREEN, .host = "127.0.0.1", .port = 8002, .server = -1}};
    struct metricsrc_spec spec;
    struct metricsrc *m;
    struct metricsrc_figures f;
    struct err err;
    unsigned told = 0;
    int i;

    plugins_register_builtins();
    metricsrc_kind_register(&fake_kind);
    spec_from(&spec, "{\"source\": \"fake\", \"window_s\": 10, \"interval_ms\": 1000}");
    ck_assert_uint_eq(spec.window_ms, 10000);
    ck_assert_uint_eq(spec.interval_ms, 1000);
    ck_assert_uint_eq(spec.timeout_ms, 1000); /* the interval, under 2 s */
    m = metricsrc_open(loop, &spec, inst, 2, NULL, NULL, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    ck_assert_str_eq(metricsrc_kind_name(m), "fake");
    ck_assert_uint_eq(metricsrc_count(m), 2);
    fake_requests = 0;
    fake_reads = fake_in_flight = fake_most_in_flight = 0;
    fake_delay_ms = 0;
    /* An explicit read: its waiter is told once, after the call. */
    metricsrc_read(m, count_cb, &told);
    ck_assert_uint_eq(told, 0);
    loop_fake_advance(loop, 0);
    ck_assert_uint_eq(told, 1);
    ck_assert_uint_eq(metricsrc_reads(m), 1);
    /* Every second from now on, 50 requests more a second. */
    metricsrc_start(m);
    for (i = 1; i <= 20; i++) {
        fake_requests += 50;
        loop_fake_advance(loop, 1000);
    }
    ck_assert_uint_eq(metricsrc_reads(m), 22);
    metricsrc_figures(m, 0, &f);
    ck_assert(f.rate_known);
    ck_assert_double_eq_tol(f.req_s, 50, 1e-9);
    ck_assert(!f.latency_known); /* the kind gives none */
    metricsrc_figures(m, 1, &f);
    ck_assert_double_eq_tol(f.req_s, 100, 1e-9);
    ck_assert_uint_eq(f.points, 10);
    /* A slow kind (2.5 s a read, every second): never two reads at once. */
    fake_delay_ms = 2500;
    fake_reads = 0;
    for (i = 0; i < 10; i++)
        loop_fake_advance(loop, 1000);
    ck_assert_uint_eq(fake_most_in_flight, 1);
    ck_assert_uint_le(fake_reads, 4);
    ck_assert_uint_ge(fake_reads, 3);
    /* Stopped: no more reads. */
    metricsrc_stop(m);
    loop_fake_advance(loop, 3000); /* the one in flight ends */
    fake_reads = 0;
    loop_fake_advance(loop, 10000);
    ck_assert_uint_eq(fake_reads, 0);
    /* Closed with a read in flight: its waiter is never told. */
    told = 0;
    metricsrc_read(m, count_cb, &told);
    metricsrc_close(m);
    loop_fake_advance(loop, 5000);
    ck_assert_uint_eq(told, 0);
    metricsrc_spec_done(&spec);
    loop_free(loop);
}
END_TEST

/* ---- n3.json ---- */

static char *write_config(const char *dir, const char *top, const char *env)
{
    char *path = xasprintf("%s/n3.json", dir);
    char *text = xasprintf("{\"version\": 1,%s \"environments\": {\"prod\": {%s\"targets\": "
                           "[{\"name\": \"t1\", \"transport\": \"local\", \"deploy_path\": "
                           "\"/srv\"}]}}}",
                           top, env);

    tu_write_file(path, text);
    free(text);
    return path;
}

/* Loading fails with a message that holds want. */
static void expect_refused(const char *dir, const char *top, const char *env, const char *want)
{
    char *path = write_config(dir, top, env);
    struct inventory *inv = NULL;
    struct err err;

    ck_assert_msg(inventory_load(path, &inv, &err) == -1, "loaded: %s %s", top, env);
    ck_assert_msg(strstr(err.msg, want) != NULL, "expected \"%s\" in: %s", want, err.msg);
    free(path);
}

START_TEST(metrics_in_n3_json)
{
    char *dir = tu_mkdtemp(), *path;
    struct inventory *inv;
    const struct inv_env *env;
    const struct metricsrc_spec *m;
    struct err err;

    plugins_register_builtins();
    /* The top level's, for an environment without its own. */
    path = write_config(dir,
                        " \"metrics\": {\"source\": \"prometheus\", \"window_s\": 30, "
                        "\"interval_ms\": 500, \"labels\": {\"path\": \"/api\"}},",
                        "");
    ck_assert_msg(inventory_load(path, &inv, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(inventory_env(inv, "prod", &env, &err), 0);
    m = inv_env_metrics(env);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->kind->name, "prometheus");
    ck_assert_uint_eq(m->window_ms, 30000);
    ck_assert_uint_eq(m->interval_ms, 500);
    ck_assert_uint_eq(m->timeout_ms, 500);
    inventory_free(inv);
    free(path);
    /* The environment's own, over the top level's; haproxy with a haproxy router. */
    path = write_config(dir, " \"metrics\": {\"source\": \"prometheus\"},",
                        "\"metrics\": {\"source\": \"haproxy\", \"timeout_ms\": 300}, \"router\": "
                        "{\"type\": \"haproxy\", \"socket\": \"/run/h.sock\", \"backend\": "
                        "\"app\"}, ");
    ck_assert_msg(inventory_load(path, &inv, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(inventory_env(inv, "prod", &env, &err), 0);
    m = inv_env_metrics(env);
    ck_assert_str_eq(m->kind->name, "haproxy");
    ck_assert_uint_eq(m->window_ms, 60000);
    ck_assert_uint_eq(m->interval_ms, 1000);
    ck_assert_uint_eq(m->timeout_ms, 300);
    inventory_free(inv);
    free(path);
    /* None: no metrics. */
    path = write_config(dir, "", "");
    ck_assert_msg(inventory_load(path, &inv, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(inventory_env(inv, "prod", &env, &err), 0);
    ck_assert_ptr_null(inv_env_metrics(env));
    inventory_free(inv);
    free(path);

    /* Refused, at the position, with what to do. */
    expect_refused(dir, " \"metrics\": {\"source\": \"prometeus\"},", "",
                   "n3.json:1:38: metrics.source: no metric source \"prometeus\"; did you mean "
                   "\"prometheus\"? (the sources: prometheus, haproxy)");
    expect_refused(dir, " \"metrics\": {\"source\": \"statsd\"},", "",
                   "no metric source \"statsd\" (the sources: prometheus, haproxy)");
    expect_refused(dir, " \"metrics\": {\"source\": \"prometheus\", \"windows_s\": 5},", "",
                   "metrics.windows_s: unknown key; did you mean \"window_s\"?");
    expect_refused(dir, " \"metrics\": {\"window_s\": 5},", "", "metrics: ");
    expect_refused(dir, " \"metrics\": [\"prometheus\"],", "", "metrics: expected an object");
    expect_refused(dir, " \"metrics\": {\"source\": \"prometheus\", \"interval_ms\": 50},", "",
                   "metrics.interval_ms: ");
    expect_refused(dir,
                   " \"metrics\": {\"source\": \"prometheus\", \"interval_ms\": 1000, "
                   "\"timeout_ms\": 5000},",
                   "", "metrics.timeout_ms: a timeout of 5000 ms is longer than the interval");
    expect_refused(dir, " \"metrics\": {\"source\": \"prometheus\", \"window_s\": 1},", "",
                   "metrics.window_s: a window of 1 s read every 1000 ms never holds the two "
                   "samples a rate needs");
    expect_refused(dir,
                   " \"metrics\": {\"source\": \"prometheus\", \"window_s\": 3600, "
                   "\"interval_ms\": 100},",
                   "", "holds 36000 samples, more than 1022");
    expect_refused(dir, " \"metrics\": {\"source\": \"prometheus\", \"path\": \"metrics\"},", "",
                   "metrics.path: a path starts with \"/\"");
    expect_refused(dir,
                   " \"metrics\": {\"source\": \"prometheus\", \"requests\": \"http-requests\"},",
                   "", "metrics.requests: not a metric name");
    expect_refused(dir, " \"metrics\": {\"source\": \"prometheus\", \"labels\": {\"le\": \"1\"}},",
                   "", "metrics.labels.le: le is the histogram's bucket label");
    expect_refused(dir, " \"metrics\": {\"source\": \"prometheus\", \"labels\": {\"path\": 1}},",
                   "", "metrics.labels.path: expected a string");
    expect_refused(dir, "", "\"metrics\": {\"source\": \"haproxy\"}, ",
                   "environments.prod.metrics.source: the haproxy metric source reads the "
                   "router's counters, and environment \"prod\" has no router");
    expect_refused(dir,
                   " \"metrics\": {\"source\": \"haproxy\"}, \"router\": {\"type\": \"nginx\", "
                   "\"upstream_file\": \"/etc/nginx/up.conf\", \"upstream\": \"app\"},",
                   "",
                   "n3.json:1:38: metrics.source: the haproxy metric source reads the counters "
                   "of a haproxy router, and environment \"prod\" has a nginx router");
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

/* ---- the text ---- */

struct seen {
    unsigned n;
    char names[32][64];
    double values[32];
    char labels[32][160];
    unsigned types;
};

static void seen_sample(void *arg, const struct promtext_sample *s)
{
    struct seen *x = arg;
    size_t i, k = 0;

    if (x->n == 32)
        return;
    snprintf(x->names[x->n], sizeof x->names[x->n], "%s", s->name);
    x->values[x->n] = s->value;
    x->labels[x->n][0] = '\0';
    for (i = 0; i < s->nlabels; i++)
        k += (size_t)snprintf(x->labels[x->n] + k, sizeof x->labels[x->n] - k, "%s%s=%s",
                              i ? "," : "", s->labels[i].name, s->labels[i].value);
    x->n++;
}

static void seen_type(void *arg, const char *family, const char *type)
{
    (void)family;
    (void)type;
    ((struct seen *)arg)->types++;
}

START_TEST(text_hostile)
{
    struct buf text;
    struct seen x;
    struct promtext_handler h = {seen_sample, seen_type, &x};
    struct promtext_stats st;
    char *big;

    buf_init(&text);
    buf_adds(&text, "# HELP a_total Lots of \"text\" and \\ here\n"
                    "# TYPE a_total counter\n"
                    "#a comment without a blank\n"
                    "   # an indented comment\n"
                    "\n"
                    "a_total 1\n"                                                /* 1 */
                    "a_total{x=\"q\\\"uo\\\\te\\n\",y=\"\"} 2.5 1700000000000\n" /* 2 */
                    "  a_total { x = \"1\" , } \t 3e2  \r\n" /* 3: blanks, trailing ',' */
                    "a_total{x=\"}{,=\"} +Inf\n"             /* 4 */
                    "a_total{x=\"n\"} NaN\n"                 /* 5 */
                    "b:c_total -Inf\n"                       /* 6 */
                    "1bad 1\n"                               /* bad name */
                    "a_total{x=\"unclosed} 1\n"              /* unclosed quote */
                    "a_total{x=\"a\",x=\"b\"} 1\n"           /* a label twice */
                    "a_total{x=\"\\t\"} 1\n"                 /* a bad escape */
                    "a_total{x:y=\"1\"} 1\n"                 /* ':' in a label */
                    "a_total{x=1} 1\n"                       /* value not quoted */
                    "a_total\n"                              /* no value */
                    "a_total abc\n"                          /* not a number */
                    "a_total 0x10\n"                         /* hex */
                    "a_total 1 2 3\n"                        /* after the timestamp */
                    "a_total 1 1.5\n"                        /* a float timestamp */
                    "a_total{x=\"1\"}2\n"                    /* no blank */
                    "a_total{x=\"1\" 2\n"                    /* no '}' */
                    "a_total 1e999\n");                      /* out of range */
    buf_add(&text, "a_total 1\0\n", 11);                     /* a NUL byte */
    buf_adds(&text, "a_total{");
    for (int i = 0; i < PROMTEXT_LABELS_MAX + 1; i++)
        buf_addf(&text, "l%d=\"v\",", i);
    buf_adds(&text, "} 1\n"); /* too many labels */
    big = xmalloc(PROMTEXT_LINE_MAX + 10);
    memset(big, 'a', PROMTEXT_LINE_MAX + 9);
    big[PROMTEXT_LINE_MAX + 9] = '\0';
    buf_addf(&text, "%s 1\n", big); /* a line too long */
    free(big);
    buf_adds(&text, "last_total 7"); /* 7: no newline at the end */
    memset(&x, 0, sizeof x);
    promtext_parse(text.data, text.len, &h, &st);
    ck_assert_uint_eq(st.samples, 7);
    ck_assert_uint_eq(x.n, 7);
    ck_assert_uint_eq(st.bad, 17);
    ck_assert_uint_eq(st.comments, 4);
    ck_assert_uint_eq(x.types, 1);
    ck_assert_uint_eq(st.first_bad_line, 12);
    ck_assert_msg(strstr(st.first_bad, "line 12: expected a metric name") != NULL, "%s",
                  st.first_bad);
    ck_assert_str_eq(x.names[0], "a_total");
    ck_assert_double_eq(x.values[0], 1);
    ck_assert_str_eq(x.labels[1], "x=q\"uo\\te\n,y=");
    ck_assert_double_eq(x.values[1], 2.5);
    ck_assert_str_eq(x.labels[2], "x=1");
    ck_assert_double_eq(x.values[2], 300);
    ck_assert_str_eq(x.labels[3], "x=}{,=");
    ck_assert(isinf(x.values[3]) && x.values[3] > 0);
    ck_assert(isnan(x.values[4]));
    ck_assert_str_eq(x.names[5], "b:c_total");
    ck_assert(isinf(x.values[5]) && x.values[5] < 0);
    ck_assert_str_eq(x.names[6], "last_total");
    ck_assert_double_eq(x.values[6], 7);
    buf_done(&text);
}
END_TEST

static const char *const app_text =
    "# HELP n3app_requests_total Requests answered, by path (/, /health, /version, /metrics or "
    "other) and status code.\n"
    "# TYPE n3app_requests_total counter\n"
    "n3app_requests_total{path=\"/\",code=\"200\"} 950\n"
    "n3app_requests_total{path=\"/\",code=\"500\"} 40\n"
    "n3app_requests_total{path=\"/\",code=\"503\"} 10\n"
    "n3app_requests_total{path=\"/health\",code=\"503\"} 70\n"
    "n3app_requests_total{path=\"/metrics\",code=\"200\"} 12\n"
    "# TYPE n3app_request_duration_seconds histogram\n"
    "n3app_request_duration_seconds_bucket{path=\"/\",le=\"0.001\"} 900\n"
    "n3app_request_duration_seconds_bucket{path=\"/\",le=\"0.01\"} 990\n"
    "n3app_request_duration_seconds_bucket{path=\"/\",le=\"+Inf\"} 1000\n"
    "n3app_request_duration_seconds_sum{path=\"/\"} 0.123\n"
    "n3app_request_duration_seconds_count{path=\"/\"} 1000\n"
    "n3app_request_duration_seconds_bucket{path=\"/health\",le=\"0.001\"} 70\n"
    "n3app_request_duration_seconds_bucket{path=\"/health\",le=\"0.01\"} 70\n"
    "n3app_request_duration_seconds_bucket{path=\"/health\",le=\"+Inf\"} 70\n"
    "n3app_start_time_seconds 1767261600.120\n"
    "n3app_info{version=\"v1.2.0-errors\",slot=\"blue\"} 1\n";

/* What the prometheus source takes from a text: the path "/" only, 5xx as errors. */
START_TEST(prometheus_mapping)
{
    struct metricsrc_sample s;
    cJSON *config = cJSON_Parse("{\"source\": \"prometheus\"}");
    cJSON *all = cJSON_Parse("{\"source\": \"prometheus\", \"labels\": {}}");
    cJSON *other = cJSON_Parse("{\"source\": \"prometheus\", \"requests\": \"http_total\"}");
    cJSON *nohist = cJSON_Parse("{\"source\": \"prometheus\", \"duration\": \"\"}");
    char *text;

    metrics_prometheus_parse(config, "u", app_text, strlen(app_text), &s);
    ck_assert_msg(s.ok, "%s", s.error);
    ck_assert_double_eq(s.requests, 1000);
    ck_assert_double_eq(s.errors, 50);
    ck_assert_double_eq_tol(s.start_time, 1767261600.120, 1e-6);
    ck_assert_uint_eq(s.nbuckets, 3);
    ck_assert_double_eq(s.le[0], 0.001);
    ck_assert_double_eq(s.count[1], 990);
    ck_assert(isinf(s.le[2]));
    ck_assert_uint_eq(s.bad_lines, 0);
    /* Every path: the series summed, the buckets by le. */
    metrics_prometheus_parse(all, "u", app_text, strlen(app_text), &s);
    ck_assert_double_eq(s.requests, 1082);
    ck_assert_double_eq(s.errors, 120);
    ck_assert_double_eq(s.count[0], 970);
    ck_assert_double_eq(s.count[2], 1070);
    /* A name the text does not have: a failed read that says which. */
    metrics_prometheus_parse(other, "http://x/metrics", app_text, strlen(app_text), &s);
    ck_assert(!s.ok);
    ck_assert_ptr_nonnull(strstr(s.error, "http://x/metrics has no http_total"));
    /* No histogram asked for: none. */
    metrics_prometheus_parse(nohist, "u", app_text, strlen(app_text), &s);
    ck_assert(s.ok);
    ck_assert_uint_eq(s.nbuckets, 0);
    /* A family with a TYPE line and no series yet (an app with no request yet): 0, known. */
    text = "# TYPE n3app_requests_total counter\ngarbage here\n";
    metrics_prometheus_parse(config, "u", text, strlen(text), &s);
    ck_assert(s.ok);
    ck_assert_double_eq(s.requests, 0);
    ck_assert_uint_eq(s.bad_lines, 1);
    /* A negative or NaN counter: not counts. */
    text = "n3app_requests_total{path=\"/\",code=\"200\"} -5\n";
    metrics_prometheus_parse(config, "u", text, strlen(text), &s);
    ck_assert(!s.ok);
    ck_assert_ptr_nonnull(strstr(s.error, "not a count"));
    text = "n3app_requests_total{path=\"/\",code=\"200\"} NaN\n";
    metrics_prometheus_parse(config, "u", text, strlen(text), &s);
    ck_assert(!s.ok);
    /* Buckets without +Inf: no histogram; codes that only look like 5xx are not errors. */
    text = "n3app_requests_total{path=\"/\",code=\"5xx\"} 3\n"
           "n3app_requests_total{path=\"/\",code=\"5000\"} 3\n"
           "n3app_requests_total{path=\"/\",code=\"599\"} 1\n"
           "n3app_request_duration_seconds_bucket{path=\"/\",le=\"0.1\"} 7\n"
           "n3app_request_duration_seconds_bucket{path=\"/\",le=\"bad\"} 7\n";
    metrics_prometheus_parse(config, "u", text, strlen(text), &s);
    ck_assert(s.ok);
    ck_assert_double_eq(s.requests, 7);
    ck_assert_double_eq(s.errors, 1);
    ck_assert_uint_eq(s.nbuckets, 0);
    /* Empty text: no counter. */
    metrics_prometheus_parse(config, "u", "", 0, &s);
    ck_assert(!s.ok);
    cJSON_Delete(config);
    cJSON_Delete(all);
    cJSON_Delete(other);
    cJSON_Delete(nohist);
}
END_TEST

/* ---- against the real sample app ---- */

struct got {
    bool done;
    long status;
    bool ok;
    char *body;
    size_t len;
};

static void got_cb(void *arg, const struct httpc_result *r)
{
    struct got *g = arg;

    g->done = true;
    g->ok = r->ok;
    g->status = r->status;
    g->body = r->ok ? xstrdup(r->body) : NULL;
    g->len = r->body_len;
}

static bool got_done(void *arg)
{
    return ((struct got *)arg)->done;
}

/* A GET, waited for; its status (0 when nothing answered), its body in *body (or NULL). */
static long get(struct loop *loop, struct httpc *http, unsigned port, const char *path, char **body)
{
    struct got g = {0};
    struct httpc_req req;
    char *url = xasprintf("http://127.0.0.1:%u%s", port, path);

    memset(&req, 0, sizeof req);
    req.url = url;
    req.timeout_ms = 5000;
    req.body_max = 1024 * 1024;
    httpc_request(http, &req, got_cb, &g);
    ck_assert(tu_run_until(loop, got_done, &g, WAIT_MS));
    free(url);
    if (body != NULL)
        *body = g.body;
    else
        free(g.body);
    return g.ok ? g.status : 0;
}

static unsigned free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

struct app {
    pid_t pid;
    unsigned port;
    char *faults;
};

static bool timer_fired(void *arg)
{
    return *(bool *)arg;
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

/* Start n3app on port with faults, and wait until it answers /health. */
static void app_start(struct app *a, struct loop *loop, struct httpc *http)
{
    const char *bin = getenv("N3APP");
    char port[16];
    const char *argv[] = {
        bin,      "--port", port,       "--slot",  "blue", "--version", "v1.2.0-errors",
        "--seed", "7",      "--faults", a->faults, NULL};
    int i;

    ck_assert_msg(bin != NULL, "N3APP is not set (make check sets it)");
    snprintf(port, sizeof port, "%u", a->port);
    a->pid = tu_spawn(argv);
    ck_assert_msg(a->pid > 0, "cannot start %s", bin);
    for (i = 0; i < 400; i++) {
        bool fired = false;
        struct loop_timer *t;

        if (get(loop, http, a->port, "/health", NULL) == 200)
            return;
        t = loop_timer_new(loop, set_flag, &fired);
        loop_timer_start(t, 25);
        tu_run_until(loop, timer_fired, &fired, WAIT_MS);
        loop_timer_free(t);
    }
    ck_abort_msg("n3app did not answer /health on port %u", a->port);
}

static void app_stop(struct app *a)
{
    kill(a->pid, SIGTERM);
    waitpid(a->pid, NULL, 0);
}

static bool flag_set(void *arg)
{
    return *(unsigned *)arg > 0;
}

static void read_now(struct loop *loop, struct metricsrc *m)
{
    unsigned told = 0;

    metricsrc_read(m, count_cb, &told);
    ck_assert(tu_run_until(loop, flag_set, &told, WAIT_MS));
}

START_TEST(prometheus_on_the_sample_app)
{
    struct loop *loop = loop_new();
    struct httpc *http = httpc_new(loop);
    char *dir = tu_mkdtemp(), *body = NULL;
    struct app a;
    struct metricsrc_spec spec;
    struct metricsrc *m;
    struct metricsrc_instance inst;
    struct metricsrc_figures f;
    struct promtext_stats st;
    struct promtext_handler h = {NULL, NULL, NULL};
    struct metricsrc_sample s;
    struct err err;
    unsigned i, errors = 0, status;
    cJSON *config;

    plugins_register_builtins();
    memset(&a, 0, sizeof a);
    a.faults = xasprintf("%s/n3app.faults", dir);
    tu_write_file(a.faults, "error_rate 0.25\n");
    a.port = free_port();
    app_start(&a, loop, http);
    /* Its own text, as it is: every line readable, and what the source takes from it. */
    get(loop, http, a.port, "/", NULL);
    ck_assert_int_eq(get(loop, http, a.port, "/metrics", &body), 200);
    promtext_parse(body, strlen(body), &h, &st);
    ck_assert_uint_eq(st.bad, 0);
    ck_assert_uint_gt(st.samples, 20);
    config = cJSON_Parse("{\"source\": \"prometheus\"}");
    metrics_prometheus_parse(config, "n3app", body, strlen(body), &s);
    cJSON_Delete(config);
    free(body);
    ck_assert_msg(s.ok, "%s", s.error);
    ck_assert_double_eq(s.requests, 1);
    ck_assert_uint_eq(s.nbuckets, APP_NB);
    for (i = 0; i < APP_NB; i++)
        ck_assert_double_eq(s.le[i], app_le[i]);
    ck_assert(s.start_time > 1e9);

    spec_from(&spec, "{\"source\": \"prometheus\", \"window_s\": 600, \"interval_ms\": 1000}");
    memset(&inst, 0, sizeof inst);
    inst.target = "t1";
    inst.slot = HS_BLUE;
    inst.host = "127.0.0.1";
    inst.port = a.port;
    inst.server = -1;
    m = metricsrc_open(loop, &spec, &inst, 1, http, NULL, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    read_now(loop, m);
    /* 40 requests to /, and probes and strays that are not traffic. */
    for (i = 0; i < 40; i++) {
        status = (unsigned)get(loop, http, a.port, "/", NULL);
        ck_assert(status == 200 || status == 500);
        errors += status == 500;
    }
    for (i = 0; i < 5; i++) {
        get(loop, http, a.port, "/health", NULL);
        get(loop, http, a.port, "/nope", NULL);
    }
    read_now(loop, m);
    metricsrc_figures(m, 0, &f);
    ck_assert_msg(f.rate_known, "%s", f.why);
    ck_assert_uint_eq(f.samples, 40);
    ck_assert(f.error_known);
    ck_assert_uint_gt(errors, 0); /* 25 % of 40, with this seed */
    ck_assert_double_eq_tol(f.error_rate, errors / 40.0, 1e-12);
    ck_assert_msg(f.latency_known, "%s", f.why);
    ck_assert(f.p50_s > 0 && f.p50_s <= f.p95_s && f.p95_s <= f.p99_s && f.p99_s <= 10);
    ck_assert_uint_eq(f.resets, 0);
    ck_assert(f.req_s > 0);

    /* Restarted on the same port: its counters start again; the figures count it from 0. */
    app_stop(&a);
    read_now(loop, m); /* nothing there: a failed read */
    metricsrc_figures(m, 0, &f);
    ck_assert(f.last_failed);
    ck_assert_ptr_nonnull(strstr(f.why, "connection refused"));
    ck_assert_uint_eq(f.samples, 40); /* from the samples before */
    app_start(&a, loop, http);
    for (i = 0; i < 10; i++)
        get(loop, http, a.port, "/", NULL);
    read_now(loop, m);
    metricsrc_figures(m, 0, &f);
    ck_assert(!f.last_failed);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert_uint_eq(f.samples, 50);
    ck_assert(f.req_s > 0);

    /* Closed with a scrape in flight: no callback after. */
    metricsrc_read(m, count_cb, &i);
    metricsrc_close(m);
    app_stop(&a);
    metricsrc_spec_done(&spec);
    httpc_free(http);
    loop_free(loop);
    tu_rmdir_r(dir);
    free(dir);
    free(a.faults);
}
END_TEST

static Suite *metricsrc_suite(void)
{
    Suite *s = suite_create("metricsrc");
    TCase *w = tcase_create("window");
    TCase *t = tcase_create("text");
    TCase *r = tcase_create("real app");

    tcase_add_test(w, window_rates);
    tcase_add_test(w, window_slides);
    tcase_add_test(w, window_too_few);
    tcase_add_test(w, window_idle);
    tcase_add_test(w, window_reset);
    tcase_add_test(w, window_ring);
    tcase_add_test(w, window_new_bounds);
    tcase_add_test(w, bucket_quantiles);
    tcase_add_test(w, window_inf_bucket);
    tcase_add_test(w, metrics_in_n3_json);
    tcase_add_test(w, source_on_the_fake_loop);
    suite_add_tcase(s, w);
    tcase_add_test(t, text_hostile);
    tcase_add_test(t, prometheus_mapping);
    suite_add_tcase(s, t);
    tcase_set_timeout(r, 60);
    tcase_add_test(r, prometheus_on_the_sample_app);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    return tu_run_suite(metricsrc_suite());
}
