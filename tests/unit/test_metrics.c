/* Unit tests for core/metrics: exposition text, escaping, histograms, the series bound. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "tests/unit/testutil.h"

static char *expose(const struct metrics *m)
{
    struct buf b;
    char *text;

    buf_init(&b);
    metrics_write_prometheus(m, &b);
    text = buf_detach(&b, NULL);
    buf_done(&b); /* detach leaves a fresh empty buffer behind */
    return text;
}

/* Whole expositions exceed Check's message limit: report the first line that differs. */
static bool text_differs(const char *got, const char *want, char *msg, size_t size)
{
    int line = 1;
    size_t i, start = 0;

    for (i = 0; got[i] == want[i]; i++) {
        if (got[i] == '\0')
            return false;
        if (got[i] == '\n') {
            line++;
            start = i + 1;
        }
    }
    snprintf(msg, size, "line %d differs:\n got: %.*s\nwant: %.*s", line,
             (int)strcspn(got + start, "\n"), got + start, (int)strcspn(want + start, "\n"),
             want + start);
    return true;
}

#define assert_text(got, want)                                                                     \
    do {                                                                                           \
        char msg_[600];                                                                            \
        ck_assert_msg(!text_differs((got), (want), msg_, sizeof msg_), "%s", msg_);                \
    } while (0)

static size_t count_prefix_lines(const char *text, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    const char *p = text;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');

        if (strncmp(p, prefix, plen) == 0)
            n++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return n;
}

START_TEST(test_exposition_exact)
{
    static const char *const status[] = {"status", NULL};
    static const char *const step[] = {"step", NULL};
    static const double bounds[] = {0.25, 1, 5};
    static const char *const succeeded[] = {"succeeded"}, *const failed[] = {"failed"},
                             *const cancelled[] = {"cancelled"}, *const deploy[] = {"deploy"},
                             *const build[] = {"build"};
    struct metrics *m = metrics_new();
    struct metric_family *c, *g, *h;
    char *text;

    c = metrics_counter(m, "n3_tasks_total", "Tasks by final status.", status);
    /* Registered after the counter although it sorts first: families keep registration order. */
    g = metrics_gauge(m, "n3_active_tasks", "Tasks running now.", NULL);
    h = metrics_histogram(m, "n3_task_duration_seconds", "Step duration.", step, bounds, 3);

    /* Series created out of order: the output sorts them by label value. */
    metric_inc(c, succeeded, 1);
    metric_inc(c, failed, 1);
    metric_inc(c, succeeded, 1);
    metric_inc(c, cancelled, 0.5);
    metric_inc(c, succeeded, 1);
    metric_set(g, NULL, 4);
    metric_add(g, NULL, -1.5);
    metric_observe(h, deploy, 0.125);
    metric_observe(h, deploy, 0.25); /* on a bound: counts in that bucket */
    metric_observe(h, deploy, 0.5);
    metric_observe(h, deploy, 3);
    metric_observe(h, deploy, 12); /* past the last bound: only +Inf */
    metric_observe(h, build, 2);

    text = expose(m);
    assert_text(text, "# HELP n3_tasks_total Tasks by final status.\n"
                      "# TYPE n3_tasks_total counter\n"
                      "n3_tasks_total{status=\"cancelled\"} 0.5\n"
                      "n3_tasks_total{status=\"failed\"} 1\n"
                      "n3_tasks_total{status=\"succeeded\"} 3\n"
                      "# HELP n3_active_tasks Tasks running now.\n"
                      "# TYPE n3_active_tasks gauge\n"
                      "n3_active_tasks 2.5\n"
                      "# HELP n3_task_duration_seconds Step duration.\n"
                      "# TYPE n3_task_duration_seconds histogram\n"
                      "n3_task_duration_seconds_bucket{step=\"build\",le=\"0.25\"} 0\n"
                      "n3_task_duration_seconds_bucket{step=\"build\",le=\"1\"} 0\n"
                      "n3_task_duration_seconds_bucket{step=\"build\",le=\"5\"} 1\n"
                      "n3_task_duration_seconds_bucket{step=\"build\",le=\"+Inf\"} 1\n"
                      "n3_task_duration_seconds_sum{step=\"build\"} 2\n"
                      "n3_task_duration_seconds_count{step=\"build\"} 1\n"
                      "n3_task_duration_seconds_bucket{step=\"deploy\",le=\"0.25\"} 2\n"
                      "n3_task_duration_seconds_bucket{step=\"deploy\",le=\"1\"} 3\n"
                      "n3_task_duration_seconds_bucket{step=\"deploy\",le=\"5\"} 4\n"
                      "n3_task_duration_seconds_bucket{step=\"deploy\",le=\"+Inf\"} 5\n"
                      "n3_task_duration_seconds_sum{step=\"deploy\"} 15.875\n"
                      "n3_task_duration_seconds_count{step=\"deploy\"} 5\n");
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_histogram_queries)
{
    static const char *const labels[] = {"host", NULL};
    static const double bounds[] = {0.25, 1, 5};
    static const char *const a[] = {"a"}, *const b[] = {"b"};
    struct metrics *m = metrics_new();
    struct metric_family *h = metrics_histogram(m, "lat_seconds", "Latency.", labels, bounds, 3);

    metric_observe(h, a, 0.125);
    metric_observe(h, a, 0.25);
    metric_observe(h, a, 0.5);
    metric_observe(h, a, 3);
    metric_observe(h, a, 12);
    metric_observe(h, a, -1); /* below every bound: the first bucket */

    ck_assert_double_eq(metric_value(h, a), 6);
    ck_assert_double_eq(metric_hist_sum(h, a), 14.875);
    ck_assert_double_eq(metric_hist_bucket(h, a, 0.25), 3);
    ck_assert_double_eq(metric_hist_bucket(h, a, 1), 4);
    ck_assert_double_eq(metric_hist_bucket(h, a, 5), 5);
    ck_assert_double_eq(metric_hist_bucket(h, a, INFINITY), 6);
    /* Between bounds: the bucket below, i.e. what is known to be <= le. */
    ck_assert_double_eq(metric_hist_bucket(h, a, 2), 4);
    ck_assert_double_eq(metric_hist_bucket(h, a, 0.1), 0);

    /* A series never observed does not exist, and reading it does not create it. */
    ck_assert_double_eq(metric_value(h, b), 0);
    ck_assert_double_eq(metric_hist_sum(h, b), 0);
    ck_assert_double_eq(metric_hist_bucket(h, b, INFINITY), 0);
    {
        char *text = expose(m);

        ck_assert_ptr_null(strstr(text, "host=\"b\""));
        free(text);
    }
    metrics_free(m);
}
END_TEST

START_TEST(test_default_buckets_no_labels)
{
    struct metrics *m = metrics_new();
    struct metric_family *h = metrics_histogram(m, "wait_seconds", "", NULL, NULL, 0);
    char *text;

    metric_observe(h, NULL, 0.00390625);
    metric_observe(h, NULL, 0.75);
    text = expose(m);
    /* Empty help: no HELP line. */
    assert_text(text, "# TYPE wait_seconds histogram\n"
                      "wait_seconds_bucket{le=\"0.005\"} 1\n"
                      "wait_seconds_bucket{le=\"0.01\"} 1\n"
                      "wait_seconds_bucket{le=\"0.025\"} 1\n"
                      "wait_seconds_bucket{le=\"0.05\"} 1\n"
                      "wait_seconds_bucket{le=\"0.1\"} 1\n"
                      "wait_seconds_bucket{le=\"0.25\"} 1\n"
                      "wait_seconds_bucket{le=\"0.5\"} 1\n"
                      "wait_seconds_bucket{le=\"1\"} 2\n"
                      "wait_seconds_bucket{le=\"2.5\"} 2\n"
                      "wait_seconds_bucket{le=\"5\"} 2\n"
                      "wait_seconds_bucket{le=\"10\"} 2\n"
                      "wait_seconds_bucket{le=\"+Inf\"} 2\n"
                      "wait_seconds_sum 0.75390625\n"
                      "wait_seconds_count 2\n");
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_unlabelled_series_exist_at_zero)
{
    static const char *const labels[] = {"type", NULL};
    struct metrics *m = metrics_new();
    char *text;

    metrics_counter(m, "n3_runs_total", "Runs.", NULL);
    metrics_counter(m, "n3_errors_total", "Errors by type.", labels);
    text = expose(m);
    /* A labelled family with no series yet still announces itself. */
    assert_text(text, "# HELP n3_runs_total Runs.\n"
                      "# TYPE n3_runs_total counter\n"
                      "n3_runs_total 0\n"
                      "# HELP n3_errors_total Errors by type.\n"
                      "# TYPE n3_errors_total counter\n");
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_escaping)
{
    static const char *const labels[] = {"v", NULL};
    static const char *const v1[] = {"two\nlines"}, *const v2[] = {"a\\b"},
                             *const v3[] = {"say \"hi\""};
    struct metrics *m = metrics_new();
    struct metric_family *c;
    char *text;

    c = metrics_counter(m, "esc_total", "Back\\slash and\nnewline \"quoted\"", labels);
    metric_inc(c, v1, 1);
    metric_inc(c, v2, 2);
    metric_inc(c, v3, 3);
    text = expose(m);
    /* HELP escapes backslash and newline only; label values also escape the double quote. */
    assert_text(text, "# HELP esc_total Back\\\\slash and\\nnewline \"quoted\"\n"
                      "# TYPE esc_total counter\n"
                      "esc_total{v=\"a\\\\b\"} 2\n"
                      "esc_total{v=\"say \\\"hi\\\"\"} 3\n"
                      "esc_total{v=\"two\\nlines\"} 1\n");
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_number_format)
{
    static const char *const labels[] = {"k", NULL};
    static const struct {
        const char *key;
        double v;
    } cases[] = {
        {"a", -0.0},
        {"b", 1e20},
        {"c", 0.1},
        {"d", 0.0},
        {"e", INFINITY},
        {"f", -INFINITY},
        {"g", NAN},
        {"h", -7},
        {"i", 1e-7},
        {"j", 123456789012.0},
        {"k", 2.5e-3},
        {"l", 1.0 / 3},
        {"m", 2251799813685248.5},
    };
    struct metrics *m = metrics_new();
    struct metric_family *g = metrics_gauge(m, "num", "", labels);
    char *text;
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *values[] = {cases[i].key};

        metric_set(g, values, cases[i].v);
    }
    {
        /* 0.1 + 0.2 needs all 17 digits to read back as the same double. */
        const char *values[] = {"d"};

        metric_add(g, values, 0.1);
        metric_add(g, values, 0.2);
    }
    text = expose(m);
    assert_text(text, "# TYPE num gauge\n"
                      "num{k=\"a\"} 0\n"
                      "num{k=\"b\"} 1e+20\n"
                      "num{k=\"c\"} 0.1\n"
                      "num{k=\"d\"} 0.30000000000000004\n"
                      "num{k=\"e\"} +Inf\n"
                      "num{k=\"f\"} -Inf\n"
                      "num{k=\"g\"} NaN\n"
                      "num{k=\"h\"} -7\n"
                      "num{k=\"i\"} 1e-07\n"
                      "num{k=\"j\"} 123456789012\n"
                      "num{k=\"k\"} 0.0025\n"
                      "num{k=\"l\"} 0.3333333333333333\n"
                      "num{k=\"m\"} 2251799813685248.5\n");
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_register_twice_and_find)
{
    static const char *const labels[] = {"a", "b", NULL};
    static const double bounds[] = {1, 2};
    struct metrics *m = metrics_new();
    struct metric_family *c = metrics_counter(m, "x_total", "X.", labels);
    struct metric_family *h = metrics_histogram(m, "y_seconds", "Y.", NULL, bounds, 2);
    static const double bounds_inf[] = {1, 2, INFINITY};

    ck_assert_ptr_eq(metrics_counter(m, "x_total", "X again.", labels), c);
    /* +Inf spelled out is the same as implied. */
    ck_assert_ptr_eq(metrics_histogram(m, "y_seconds", "Y.", NULL, bounds_inf, 3), h);
    ck_assert_ptr_eq(metrics_find(m, "x_total"), c);
    ck_assert_ptr_eq(metrics_find(m, "y_seconds"), h);
    ck_assert_ptr_null(metrics_find(m, "z"));
    metrics_free(m);
}
END_TEST

START_TEST(test_tuples_do_not_collide)
{
    static const char *const labels[] = {"a", "b", NULL};
    static const char *const t1[] = {"ab", ""}, *const t2[] = {"a", "b"}, *const t3[] = {"", "ab"};
    struct metrics *m = metrics_new();
    struct metric_family *c = metrics_counter(m, "pair_total", "", labels);
    char *text;

    metric_inc(c, t1, 1);
    metric_inc(c, t2, 2);
    metric_inc(c, t3, 4);
    ck_assert_double_eq(metric_value(c, t1), 1);
    ck_assert_double_eq(metric_value(c, t2), 2);
    ck_assert_double_eq(metric_value(c, t3), 4);
    text = expose(m);
    /* Sorted by the first label value, then the second. */
    assert_text(text, "# TYPE pair_total counter\n"
                      "pair_total{a=\"\",b=\"ab\"} 4\n"
                      "pair_total{a=\"a\",b=\"b\"} 2\n"
                      "pair_total{a=\"ab\",b=\"\"} 1\n");
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_overflow)
{
    static const char *const labels[] = {"host", NULL};
    static const char *const fresh[] = {"fresh"}, *const fresh2[] = {"fresh2"},
                             *const kept[] = {"h00042"}, *const ovf[] = {"__overflow__"};
    struct metrics *m = metrics_new();
    struct metric_family *c = metrics_counter(m, "req_total", "", labels);
    struct metric_family *other = metrics_counter(m, "other_total", "", labels);
    char name[32], *text;
    int i;

    for (i = 0; i < METRICS_MAX_SERIES; i++) {
        const char *values[] = {name};

        snprintf(name, sizeof name, "h%05d", i);
        metric_inc(c, values, 1);
        metric_inc(c, values, 1); /* the second update finds the series, not a new one */
    }
    ck_assert(!metrics_overflowed(m));
    ck_assert_double_eq(metric_value(c, kept), 2);

    metric_inc(c, fresh, 5);
    ck_assert(metrics_overflowed(m));
    metric_inc(c, fresh2, 1);
    ck_assert_double_eq(metric_value(c, fresh), 0);
    ck_assert_double_eq(metric_value(c, ovf), 6);
    /* Existing series keep counting on their own. */
    metric_inc(c, kept, 1);
    ck_assert_double_eq(metric_value(c, kept), 3);
    /* The bound is per family. */
    metric_inc(other, fresh, 1);
    ck_assert_double_eq(metric_value(other, fresh), 1);

    text = expose(m);
    ck_assert_uint_eq(count_prefix_lines(text, "req_total{"), METRICS_MAX_SERIES + 1);
    ck_assert_ptr_nonnull(strstr(text, "\nreq_total{host=\"__overflow__\"} 6\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nreq_total{host=\"h00042\"} 3\n"));
    ck_assert_ptr_null(strstr(text, "fresh2"));
    ck_assert_ptr_nonnull(strstr(text, "\nother_total{host=\"fresh\"} 1\n"));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_overflow_all_labels)
{
    static const char *const labels[] = {"a", "b", NULL};
    static const char *const fresh[] = {"x", "y"}, *const ovf[] = {"__overflow__", "__overflow__"};
    struct metrics *m = metrics_new();
    struct metric_family *g = metrics_gauge(m, "g", "", labels);
    char name[32];
    int i;

    for (i = 0; i < METRICS_MAX_SERIES; i++) {
        const char *values[] = {name, "same"};

        snprintf(name, sizeof name, "%d", i);
        metric_set(g, values, i);
    }
    metric_add(g, fresh, 2);
    metric_add(g, fresh, 3);
    ck_assert(metrics_overflowed(m));
    ck_assert_double_eq(metric_value(g, ovf), 5);
    metrics_free(m);
}
END_TEST

/* Programming errors abort (fatal): run in a forked child, expect SIGABRT. */
static void quiet(void)
{
    if (freopen("/dev/null", "w", stderr) == NULL)
        abort();
}

START_TEST(test_bad_metric_name)
{
    quiet();
    metrics_counter(metrics_new(), "1st_total", "", NULL);
}
END_TEST

START_TEST(test_bad_metric_name_char)
{
    quiet();
    metrics_counter(metrics_new(), "n3-tasks", "", NULL);
}
END_TEST

START_TEST(test_reserved_label_name)
{
    static const char *const labels[] = {"__name", NULL};

    quiet();
    metrics_gauge(metrics_new(), "ok", "", labels);
}
END_TEST

START_TEST(test_bad_label_name)
{
    static const char *const labels[] = {"a:b", NULL};

    quiet();
    metrics_gauge(metrics_new(), "ok", "", labels);
}
END_TEST

START_TEST(test_type_clash)
{
    struct metrics *m = metrics_new();

    quiet();
    metrics_counter(m, "x", "", NULL);
    metrics_gauge(m, "x", "", NULL);
}
END_TEST

START_TEST(test_label_clash)
{
    static const char *const a[] = {"a", NULL}, *const b[] = {"b", NULL};
    struct metrics *m = metrics_new();

    quiet();
    metrics_counter(m, "x", "", a);
    metrics_counter(m, "x", "", b);
}
END_TEST

START_TEST(test_unsorted_buckets)
{
    static const double bounds[] = {1, 1};

    quiet();
    metrics_histogram(metrics_new(), "h", "", NULL, bounds, 2);
}
END_TEST

START_TEST(test_counter_decrement)
{
    struct metric_family *c = metrics_counter(metrics_new(), "c", "", NULL);

    quiet();
    metric_inc(c, NULL, -1);
}
END_TEST

START_TEST(test_wrong_type_update)
{
    struct metric_family *c = metrics_counter(metrics_new(), "c", "", NULL);

    quiet();
    metric_set(c, NULL, 1);
}
END_TEST

START_TEST(test_valid_names_accepted)
{
    static const char *const labels[] = {"_x", "A9", NULL};
    struct metrics *m = metrics_new();

    /* The exact grammar: colons in metric names, digits after the first character. */
    ck_assert_ptr_nonnull(metrics_counter(m, ":a_b:c9", "", NULL));
    ck_assert_ptr_nonnull(metrics_gauge(m, "_Z", "", labels));
    metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    TCase *tc_abort = tcase_create("abort");

    tcase_add_test(tc, test_exposition_exact);
    tcase_add_test(tc, test_histogram_queries);
    tcase_add_test(tc, test_default_buckets_no_labels);
    tcase_add_test(tc, test_unlabelled_series_exist_at_zero);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_number_format);
    tcase_add_test(tc, test_register_twice_and_find);
    tcase_add_test(tc, test_tuples_do_not_collide);
    tcase_add_test(tc, test_overflow);
    tcase_add_test(tc, test_overflow_all_labels);
    tcase_add_test(tc, test_valid_names_accepted);
    suite_add_tcase(s, tc);

    tcase_add_test_raise_signal(tc_abort, test_bad_metric_name, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_bad_metric_name_char, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_reserved_label_name, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_bad_label_name, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_type_clash, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_label_clash, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_unsorted_buckets, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_counter_decrement, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_wrong_type_update, SIGABRT);
    suite_add_tcase(s, tc_abort);
    return s;
}

int main(void)
{
    return tu_run_suite(metrics_suite());
}
