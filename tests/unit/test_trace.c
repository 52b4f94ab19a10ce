/* Unit tests for core/trace: ids, the fake clock, the ring, attributes, JSON lines. */
#include "config.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

#define T0_MS 1700000000000u /* the fake wall clock starts here */
#define T0_US (T0_MS * 1000u)

static bool is_id(const char *s, size_t len)
{
    bool nonzero = false;
    size_t i;

    if (strlen(s) != len)
        return false;
    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

static char *repeat(char c, size_t n, const char *tail)
{
    char *s = xmalloc(n + strlen(tail) + 1);

    memset(s, c, n);
    strcpy(s + n, tail);
    return s;
}

START_TEST(test_ids_and_inheritance)
{
    struct loop *loop = loop_new_fake(T0_MS, 7);
    struct trace *tr = trace_new(loop, 16);
    struct span *root = trace_span_start(tr, NULL, "deploy");
    struct span *child = trace_span_start(tr, root, "step");
    struct span *grandchild = trace_span_start(tr, child, "ssh");
    struct span *other = trace_span_start(tr, NULL, "other");

    ck_assert(is_id(span_trace_id(root), 32));
    ck_assert(is_id(span_id(root), 16));
    ck_assert_str_eq(span_parent_id(root), "");
    ck_assert_str_eq(span_name(root), "deploy");

    ck_assert_str_eq(span_trace_id(child), span_trace_id(root));
    ck_assert_str_eq(span_parent_id(child), span_id(root));
    ck_assert(is_id(span_id(child), 16));
    ck_assert_str_ne(span_id(child), span_id(root));

    ck_assert_str_eq(span_trace_id(grandchild), span_trace_id(root));
    ck_assert_str_eq(span_parent_id(grandchild), span_id(child));
    ck_assert_str_ne(span_id(grandchild), span_id(child));

    ck_assert(is_id(span_trace_id(other), 32));
    ck_assert_str_ne(span_trace_id(other), span_trace_id(root));
    ck_assert_str_eq(span_parent_id(other), "");

    /* Open spans: no status, no end. */
    ck_assert_str_eq(span_status(child), "");
    ck_assert_uint_eq(span_end_us(child), 0);

    trace_span_end(tr, grandchild, "succeeded");
    trace_span_end(tr, child, "succeeded");
    trace_span_end(tr, root, "ok");
    trace_span_end(tr, other, "ok");
    ck_assert_uint_eq(trace_count(tr), 4);
    ck_assert_str_eq(span_name(trace_get(tr, 0)), "ssh");
    ck_assert_str_eq(span_status(trace_get(tr, 0)), "succeeded");
    ck_assert_str_eq(span_trace_id(trace_get(tr, 0)), span_trace_id(trace_get(tr, 2)));
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_ids_distinct_and_valid)
{
    enum { N = 500 };
    static char ids[N][17], traces[N][33];
    struct loop *loop = loop_new_fake(T0_MS, 12345);
    struct trace *tr = trace_new(loop, N);
    int i, j;

    for (i = 0; i < N; i++) {
        struct span *s = trace_span_start(tr, NULL, "s");

        ck_assert(is_id(span_id(s), 16));
        ck_assert(is_id(span_trace_id(s), 32));
        strcpy(ids[i], span_id(s));
        strcpy(traces[i], span_trace_id(s));
        trace_span_end(tr, s, "ok");
    }
    /* Plain comparisons, one assertion: Check records every passing assertion, and 250,000
     * of them take seconds under the sanitizers. */
    for (i = 0; i < N; i++) {
        for (j = 0; j < i; j++) {
            if (strcmp(ids[i], ids[j]) == 0 || strcmp(traces[i], traces[j]) == 0)
                ck_abort_msg("spans %d and %d share an id (%s) or a trace id (%s)", j, i, ids[i],
                             traces[i]);
        }
    }
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_fake_clock_times)
{
    struct loop *loop = loop_new_fake(T0_MS, 1);
    struct trace *tr = trace_new(loop, 8);
    struct span *root = trace_span_start(tr, NULL, "rollout");
    struct span *child;
    struct buf b;

    ck_assert_uint_eq(span_start_us(root), T0_US);
    loop_fake_advance(loop, 250);
    child = trace_span_start(tr, root, "probe");
    ck_assert_uint_eq(span_start_us(child), T0_US + 250000u);
    loop_fake_advance(loop, 1000);
    trace_span_end(tr, child, "ok");
    ck_assert_uint_eq(span_end_us(child), T0_US + 1250000u);
    loop_fake_advance(loop, 5);
    trace_span_end(tr, root, "ok");
    ck_assert_uint_eq(span_end_us(root), T0_US + 1255000u);

    buf_init(&b);
    trace_write_jsonl(tr, &b);
    ck_assert_ptr_nonnull(strstr(b.data,
                                 "\"start_us\":1700000000250000,\"end_us\":1700000001250000,"
                                 "\"duration_us\":1000000,"));
    ck_assert_ptr_nonnull(strstr(b.data,
                                 "\"start_us\":1700000000000000,\"end_us\":1700000001255000,"
                                 "\"duration_us\":1255000,"));
    buf_done(&b);
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_ring_keeps_newest)
{
    struct loop *loop = loop_new_fake(T0_MS, 3);
    struct trace *tr = trace_new(loop, 3);
    struct buf b;
    char name[8];
    int i;

    for (i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "s%d", i);
        trace_span_end(tr, trace_span_start(tr, NULL, name), "ok");
        ck_assert_uint_eq(trace_count(tr), i < 3 ? i + 1 : 3);
        ck_assert_uint_eq(trace_dropped(tr), i < 3 ? 0 : i - 2);
    }
    ck_assert_str_eq(span_name(trace_get(tr, 0)), "s2");
    ck_assert_str_eq(span_name(trace_get(tr, 1)), "s3");
    ck_assert_str_eq(span_name(trace_get(tr, 2)), "s4");
    ck_assert_ptr_null(trace_get(tr, 3));

    buf_init(&b);
    trace_write_jsonl(tr, &b);
    {
        const char *p2 = strstr(b.data, "\"name\":\"s2\""), *p3 = strstr(b.data, "\"name\":\"s3\""),
                   *p4 = strstr(b.data, "\"name\":\"s4\"");

        ck_assert_ptr_null(strstr(b.data, "\"name\":\"s1\""));
        ck_assert_ptr_nonnull(p2);
        ck_assert_ptr_nonnull(p3);
        ck_assert_ptr_nonnull(p4);
        ck_assert(p2 < p3 && p3 < p4);
    }
    buf_done(&b);
    trace_free(tr);
    loop_free(loop);
}
END_TEST

struct seen {
    int n;
    char names[8][16];
    char statuses[8][16];
    uint64_t ends[8];
};

static void record_sink(const struct span *s, void *arg)
{
    struct seen *seen = arg;

    if (seen->n < 8) {
        snprintf(seen->names[seen->n], sizeof seen->names[0], "%s", span_name(s));
        snprintf(seen->statuses[seen->n], sizeof seen->statuses[0], "%s", span_status(s));
        seen->ends[seen->n] = span_end_us(s);
    }
    seen->n++;
}

START_TEST(test_sink_sees_every_span)
{
    static const char *const statuses[] = {"ok", "failed", "timed_out", "cancelled"};
    struct loop *loop = loop_new_fake(T0_MS, 5);
    struct trace *tr = trace_new(loop, 2);
    struct seen seen = {0};
    char name[8];
    int i;

    trace_set_sink(tr, record_sink, &seen);
    for (i = 0; i < 4; i++) {
        struct span *s;

        snprintf(name, sizeof name, "s%d", i);
        s = trace_span_start(tr, NULL, name);
        loop_fake_advance(loop, 10);
        trace_span_end(tr, s, statuses[i]);
    }
    ck_assert_int_eq(seen.n, 4);
    for (i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "s%d", i);
        ck_assert_str_eq(seen.names[i], name);
        ck_assert_str_eq(seen.statuses[i], statuses[i]);
        ck_assert_uint_eq(seen.ends[i], T0_US + (uint64_t)(i + 1) * 10000u);
    }
    ck_assert_uint_eq(trace_count(tr), 2);
    ck_assert_uint_eq(trace_dropped(tr), 2);

    /* Without a sink, ending still works. */
    trace_set_sink(tr, NULL, NULL);
    trace_span_end(tr, trace_span_start(tr, NULL, "quiet"), "ok");
    ck_assert_int_eq(seen.n, 4);
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_capacity_zero)
{
    struct loop *loop = loop_new_fake(T0_MS, 9);
    struct trace *tr = trace_new(loop, 0);
    struct seen seen = {0};
    struct buf b;
    int i;

    trace_set_sink(tr, record_sink, &seen);
    for (i = 0; i < 3; i++) {
        struct span *root = trace_span_start(tr, NULL, "root");
        struct span *child = trace_span_start(tr, root, "child");

        span_set_attr(child, "k", "v");
        trace_span_end(tr, child, "ok");
        trace_span_end(tr, root, "ok");
    }
    ck_assert_int_eq(seen.n, 6);
    ck_assert_str_eq(seen.names[0], "child");
    ck_assert_str_eq(seen.names[1], "root");
    ck_assert_uint_eq(trace_count(tr), 0);
    ck_assert_uint_eq(trace_dropped(tr), 6);
    ck_assert_ptr_null(trace_get(tr, 0));
    buf_init(&b);
    trace_write_jsonl(tr, &b);
    ck_assert_uint_eq(b.len, 0);
    buf_done(&b);
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_attributes_replace_and_limit)
{
    struct loop *loop = loop_new_fake(T0_MS, 11);
    struct trace *tr = trace_new(loop, 4);
    struct span *s = trace_span_start(tr, NULL, "step");
    char key[16];
    int i;

    ck_assert_ptr_null(span_attr(s, "host"));
    span_set_attr(s, "host", "web-1");
    span_set_attr(s, "host", "web-2");
    ck_assert_str_eq(span_attr(s, "host"), "web-2");
    span_set_attrf(s, "attempt", "%d/%s", 2, "3");
    ck_assert_str_eq(span_attr(s, "attempt"), "2/3");

    /* Two keys so far; fill up to the limit, then one more is ignored. */
    for (i = 2; i < TRACE_MAX_ATTRS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        span_set_attr(s, key, "x");
    }
    span_set_attr(s, "one_too_many", "x");
    ck_assert_ptr_null(span_attr(s, "one_too_many"));
    snprintf(key, sizeof key, "k%d", TRACE_MAX_ATTRS - 1);
    ck_assert_str_eq(span_attr(s, key), "x");
    /* Replacing an existing key still works when full. */
    span_set_attr(s, "host", "web-3");
    ck_assert_str_eq(span_attr(s, "host"), "web-3");

    trace_span_end(tr, s, "ok");
    ck_assert_str_eq(span_attr(trace_get(tr, 0), "host"), "web-3");
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_attributes_truncate)
{
    static const struct {
        size_t pad;
        const char *tail;
        size_t want;
    } cases[] = {
        {TRACE_MAX_VALUE, "", TRACE_MAX_VALUE},                     /* exactly the limit: kept */
        {TRACE_MAX_VALUE + 1, "", TRACE_MAX_VALUE},                 /* one over: cut */
        {2000, "", TRACE_MAX_VALUE},                                /* far over */
        {TRACE_MAX_VALUE - 1, "\xc3\xa9", TRACE_MAX_VALUE - 1},     /* é would straddle the cut */
        {TRACE_MAX_VALUE - 2, "\xc3\xa9", TRACE_MAX_VALUE},         /* é fits exactly */
        {TRACE_MAX_VALUE - 2, "\xe2\x82\xac", TRACE_MAX_VALUE - 2}, /* € would straddle */
        {TRACE_MAX_VALUE - 1, "\xe2\x82\xac", TRACE_MAX_VALUE - 1},
        {TRACE_MAX_VALUE - 3, "\xf0\x9f\x98\x80", TRACE_MAX_VALUE - 3}, /* 4-byte emoji */
        {TRACE_MAX_VALUE - 4, "\xf0\x9f\x98\x80", TRACE_MAX_VALUE},
    };
    struct loop *loop = loop_new_fake(T0_MS, 13);
    struct trace *tr = trace_new(loop, 1);
    struct span *s = trace_span_start(tr, NULL, "step");
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *value = repeat('a', cases[i].pad, cases[i].tail);
        const char *got;

        span_set_attr(s, "out", value);
        got = span_attr(s, "out");
        ck_assert_msg(strlen(got) == cases[i].want, "case %zu: length %zu, want %zu", i,
                      strlen(got), cases[i].want);
        ck_assert(strncmp(got, value, cases[i].want) == 0);

        /* The formatted variant truncates the same way. */
        span_set_attrf(s, "outf", "%s", value);
        ck_assert_str_eq(span_attr(s, "outf"), got);
        free(value);
    }
    trace_span_end(tr, s, "ok");
    trace_free(tr);
    loop_free(loop);
}
END_TEST

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

    ck_assert_msg(cJSON_IsString(item), "%s is not a string", key);
    return item->valuestring;
}

static double json_num(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

    ck_assert_msg(cJSON_IsNumber(item), "%s is not a number", key);
    return item->valuedouble;
}

static void check_json_span(const char *line, const struct span *s)
{
    cJSON *obj = cJSON_Parse(line);
    const cJSON *attrs;

    ck_assert_msg(obj != NULL, "not JSON: %s", line);
    ck_assert_int_eq(cJSON_GetArraySize(obj), 9);
    ck_assert_str_eq(json_str(obj, "trace_id"), span_trace_id(s));
    ck_assert_str_eq(json_str(obj, "span_id"), span_id(s));
    ck_assert_str_eq(json_str(obj, "parent_id"), span_parent_id(s));
    ck_assert_str_eq(json_str(obj, "name"), span_name(s));
    ck_assert_str_eq(json_str(obj, "status"), span_status(s));
    ck_assert(json_num(obj, "start_us") == (double)span_start_us(s));
    ck_assert(json_num(obj, "end_us") == (double)span_end_us(s));
    ck_assert(json_num(obj, "duration_us") == (double)(span_end_us(s) - span_start_us(s)));
    attrs = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
    ck_assert(cJSON_IsObject(attrs));
    {
        const cJSON *a;

        cJSON_ArrayForEach(a, attrs)
        {
            ck_assert(cJSON_IsString(a));
            ck_assert_ptr_nonnull(span_attr(s, a->string));
            ck_assert_str_eq(a->valuestring, span_attr(s, a->string));
        }
    }
    cJSON_Delete(obj);
}

START_TEST(test_jsonl_roundtrip)
{
    struct loop *loop = loop_new_fake(T0_MS, 17);
    struct trace *tr = trace_new(loop, 8);
    struct span *root = trace_span_start(tr, NULL, "deploy \"prod\"\nnow");
    struct span *child = trace_span_start(tr, root, "run \\ step");
    struct buf b, one;
    char *line, *save = NULL;
    cJSON *obj;
    int n = 0;

    span_set_attr(root, "env", "prod");
    span_set_attr(child, "cmd", "echo \"hi\"\n\tdone \\ \x01");
    span_set_attr(child, "host", "web-1");
    loop_fake_advance(loop, 5);
    trace_span_end(tr, child, "succeeded");
    loop_fake_advance(loop, 2);
    trace_span_end(tr, root, "error");

    buf_init(&b);
    trace_write_jsonl(tr, &b);
    ck_assert_uint_gt(b.len, 0);
    ck_assert_int_eq(b.data[b.len - 1], '\n');
    /* Numbers are plain integers, not floats. */
    ck_assert_ptr_nonnull(strstr(b.data, "\"duration_us\":5000,"));
    ck_assert_ptr_nonnull(strstr(b.data, "\"duration_us\":7000,"));
    ck_assert_ptr_nonnull(strstr(b.data, "\"parent_id\":\"\","));

    /* Each line is one span, oldest first, with every field. */
    for (line = strtok_r(b.data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_int_lt(n, 2);
        check_json_span(line, trace_get(tr, (size_t)n));
        n++;
    }
    ck_assert_int_eq(n, 2);
    buf_done(&b);

    /* Spot-check concrete values and attribute order for the child. */
    buf_init(&one);
    span_to_json(trace_get(tr, 0), &one);
    ck_assert_ptr_null(strchr(one.data, '\n'));
    obj = cJSON_Parse(one.data);
    ck_assert_ptr_nonnull(obj);
    ck_assert_str_eq(json_str(obj, "name"), "run \\ step");
    ck_assert_str_eq(json_str(obj, "status"), "succeeded");
    ck_assert_str_eq(json_str(obj, "parent_id"), span_id(trace_get(tr, 1)));
    ck_assert(json_num(obj, "start_us") == 1700000000000000.0);
    ck_assert(json_num(obj, "end_us") == 1700000000005000.0);
    {
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "attributes");

        ck_assert_int_eq(cJSON_GetArraySize(attrs), 2);
        ck_assert_str_eq(cJSON_GetArrayItem(attrs, 0)->string, "cmd");
        ck_assert_str_eq(cJSON_GetArrayItem(attrs, 0)->valuestring, "echo \"hi\"\n\tdone \\ \x01");
        ck_assert_str_eq(cJSON_GetArrayItem(attrs, 1)->string, "host");
        ck_assert_str_eq(cJSON_GetArrayItem(attrs, 1)->valuestring, "web-1");
    }
    cJSON_Delete(obj);
    buf_done(&one);
    trace_free(tr);
    loop_free(loop);
}
END_TEST

START_TEST(test_json_open_span)
{
    struct loop *loop = loop_new_fake(T0_MS, 19);
    struct trace *tr = trace_new(loop, 1);
    struct span *s = trace_span_start(tr, NULL, "open");
    struct buf b;
    cJSON *obj;

    loop_fake_advance(loop, 3);
    buf_init(&b);
    span_to_json(s, &b);
    obj = cJSON_Parse(b.data);
    ck_assert_ptr_nonnull(obj);
    ck_assert_str_eq(json_str(obj, "status"), "");
    ck_assert(json_num(obj, "end_us") == 0);
    ck_assert(json_num(obj, "duration_us") == 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(obj, "attributes")), 0);
    cJSON_Delete(obj);
    buf_done(&b);
    trace_span_end(tr, s, "cancelled");
    trace_free(tr);
    loop_free(loop);
}
END_TEST

/* Programming errors abort (fatal): run in a forked child, expect SIGABRT. */
static void quiet(void)
{
    if (freopen("/dev/null", "w", stderr) == NULL)
        abort();
}

START_TEST(test_end_twice)
{
    struct loop *loop = loop_new_fake(T0_MS, 1);
    struct trace *tr = trace_new(loop, 4);
    struct span *s = trace_span_start(tr, NULL, "s");

    quiet();
    trace_span_end(tr, s, "ok");
    trace_span_end(tr, s, "ok");
}
END_TEST

START_TEST(test_child_of_ended_parent)
{
    struct loop *loop = loop_new_fake(T0_MS, 1);
    struct trace *tr = trace_new(loop, 4);
    struct span *s = trace_span_start(tr, NULL, "s");

    quiet();
    trace_span_end(tr, s, "ok");
    trace_span_start(tr, s, "late");
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("core");
    TCase *tc_abort = tcase_create("abort");

    tcase_add_test(tc, test_ids_and_inheritance);
    tcase_add_test(tc, test_ids_distinct_and_valid);
    tcase_add_test(tc, test_fake_clock_times);
    tcase_add_test(tc, test_ring_keeps_newest);
    tcase_add_test(tc, test_sink_sees_every_span);
    tcase_add_test(tc, test_capacity_zero);
    tcase_add_test(tc, test_attributes_replace_and_limit);
    tcase_add_test(tc, test_attributes_truncate);
    tcase_add_test(tc, test_jsonl_roundtrip);
    tcase_add_test(tc, test_json_open_span);
    suite_add_tcase(s, tc);

    tcase_add_test_raise_signal(tc_abort, test_end_twice, SIGABRT);
    tcase_add_test_raise_signal(tc_abort, test_child_of_ended_parent, SIGABRT);
    suite_add_tcase(s, tc_abort);
    return s;
}

int main(void)
{
    return tu_run_suite(trace_suite());
}
