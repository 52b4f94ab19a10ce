/* Unit tests for the load generator's counting (tests/load/tally): the summary, per version
 * and overall, whether the rate was kept and why not, and the JSON lines it writes. */
#include "config.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "tests/load/tally.h"
#include "tests/unit/testutil.h"

static const struct tally_config config = {
    .url = "http://127.0.0.1:1/",
    .rate = 100,
    .duration_s = 1,
    .connections = 4,
    .timeout_ms = 2000,
    .max_inflight = 1000,
    .version_header = "X-N3-Version",
    .slot_header = "X-N3-Slot",
};

static const struct tally_end end_1s = {.stop_us = 1000000, .stopped_by = "duration"};

/* One request of a run at 100 req/s: due at seq * 10 ms, sent lag_us later, ended
 * latency_us after it was due. */
static void add(struct tally *t, uint64_t seq, uint64_t lag_us, uint64_t latency_us,
                enum tally_kind kind, long status, const char *version)
{
    struct tally_result r = {0};

    r.seq = seq;
    r.sched_us = seq * 10000;
    r.sent = true;
    r.sent_us = r.sched_us + lag_us;
    r.wire_known = true;
    r.wire_us = r.sent_us;
    r.done_us = r.sched_us + latency_us;
    r.kind = kind;
    r.status = status;
    r.version = version;
    r.new_conn = seq < 4;
    tally_scheduled(t);
    tally_sent(t, r.sched_us, r.sent_us);
    tally_add(t, &r);
}

static cJSON *parse_line(const struct buf *b)
{
    cJSON *j;

    ck_assert_msg(b->len > 0 && b->data[b->len - 1] == '\n', "not one line: %.300s", b->data);
    ck_assert_msg(memchr(b->data, '\n', b->len) == b->data + b->len - 1,
                  "more than one line: %.300s", b->data);
    j = cJSON_Parse(b->data);
    ck_assert_msg(j != NULL, "not JSON: %.300s", b->data);
    return j;
}

static cJSON *summary(const struct tally *t, const struct tally_end *e)
{
    struct buf b;
    cJSON *j;

    buf_init(&b);
    tally_summary_json(t, e, &b);
    j = parse_line(&b);
    buf_done(&b);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "summary");
    return j;
}

static double num(const cJSON *j, const char *path)
{
    char key[64];
    const char *dot = strchr(path, '.');
    const cJSON *item;

    if (dot != NULL) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        return num(cJSON_GetObjectItem(j, key), dot + 1);
    }
    item = cJSON_GetObjectItem(j, path);
    ck_assert_msg(cJSON_IsNumber(item), "%s is not a number", path);
    return item->valuedouble;
}

static const cJSON *version_row(const cJSON *j, unsigned i)
{
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "versions"), (int)i);

    ck_assert_msg(row != NULL, "no version row %u", i);
    return row;
}

static char *text_summary(const struct tally *t, const struct tally_end *e)
{
    struct buf b;
    char *s;

    buf_init(&b);
    tally_summary_text(t, e, &b);
    s = buf_detach(&b, NULL);
    buf_done(&b);
    return s;
}

START_TEST(test_shares_and_quantiles)
{
    struct tally *t = tally_new(&config);
    const cJSON *row;
    cJSON *j;
    uint64_t i;

    /* 100 requests in 1 s: 90 from v1 (1..90 ms), 10 from v2 (100..1000 ms). */
    for (i = 0; i < 100; i++) {
        if (i % 10 == 9)
            add(t, i, 50, 100000 * (i / 10 + 1), TALLY_HTTP, 200, "v2");
        else
            add(t, i, 50, 1000 * (i - i / 10 + 1), TALLY_HTTP, 200, "v1");
    }
    j = summary(t, &end_1s);
    ck_assert_double_eq(num(j, "scheduled"), 100);
    ck_assert_double_eq(num(j, "sent"), 100);
    ck_assert_double_eq(num(j, "answered"), 100);
    ck_assert_double_eq(num(j, "errors_total"), 0);
    ck_assert_double_eq(num(j, "new_connections"), 4);
    ck_assert_double_eq_tol(num(j, "achieved_rate"), 100, 1e-9);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "rate_kept")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "behind")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "versions")), 2);
    row = version_row(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(row, "version")->valuestring, "v1");
    ck_assert_double_eq(num(row, "count"), 90);
    ck_assert_double_eq_tol(num(row, "share"), 0.9, 1e-9);
    ck_assert_double_eq(num(row, "errors"), 0);
    /* v1's latencies are 1..90 ms: the nearest-rank p50 is 45 ms, p99 90 ms (within 1/128). */
    ck_assert_double_eq_tol(num(row, "p50_ms"), 45, 45.0 / 128);
    ck_assert_double_eq_tol(num(row, "p95_ms"), 86, 86.0 / 128);
    ck_assert_double_eq_tol(num(row, "p99_ms"), 90, 90.0 / 128);
    row = version_row(j, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(row, "version")->valuestring, "v2");
    ck_assert_double_eq_tol(num(row, "share"), 0.1, 1e-9);
    ck_assert_double_eq_tol(num(row, "p50_ms"), 500, 500.0 / 128);
    ck_assert_double_eq(num(row, "max_ms"), 1000);
    /* Overall: 100 values, 90 of them under 100 ms, the rest 100..1000 ms. */
    ck_assert_double_eq_tol(num(j, "latency_ms.p50"), 50, 50.0 / 128);
    ck_assert_double_eq_tol(num(j, "latency_ms.p95"), 500, 500.0 / 128);
    ck_assert_double_eq(num(j, "latency_ms.max"), 1000);
    ck_assert_double_eq(num(j, "lag_ms.max"), 0.05);
    ck_assert_double_eq_tol(num(j, "quantile_rel_error"), 1.0 / 128, 1e-7);
    cJSON_Delete(j);
    tally_free(t);
}
END_TEST

START_TEST(test_errors_by_kind)
{
    struct tally *t = tally_new(&config);
    struct tally_result r = {0};
    cJSON *j;
    const cJSON *errors, *row;
    char *text;
    uint64_t i;

    for (i = 0; i < 80; i++)
        add(t, i, 0, 1000, TALLY_HTTP, 200, "v1");
    for (; i < 90; i++)
        add(t, i, 0, 1000, TALLY_HTTP, 500, "v1");
    add(t, i++, 0, 1000, TALLY_HTTP, 404, "v1");
    for (; i < 96; i++)
        add(t, i, 0, 500, TALLY_CONNECT, 0, NULL);
    add(t, i++, 0, 2000000, TALLY_TIMEOUT, 0, NULL);
    add(t, i++, 0, 1000, TALLY_HTTP, 200, NULL);  /* no version header */
    add(t, i++, 0, 1000, TALLY_RESET, 200, "v1"); /* a status, then the connection failed */
    /* Not sent: the in-flight limit. */
    r.seq = i++;
    r.sched_us = r.seq * 10000;
    r.done_us = r.sched_us;
    r.kind = TALLY_LIMIT;
    tally_scheduled(t);
    tally_add(t, &r);

    j = summary(t, &end_1s);
    errors = cJSON_GetObjectItem(j, "errors");
    ck_assert_double_eq(num(errors, "http_5xx"), 10);
    ck_assert_double_eq(num(errors, "http_4xx"), 1);
    ck_assert_double_eq(num(errors, "connect"), 5);
    ck_assert_double_eq(num(errors, "timeout"), 1);
    ck_assert_double_eq(num(errors, "reset"), 1);
    ck_assert_double_eq(num(errors, "limit"), 1);
    ck_assert_double_eq(num(errors, "behind"), 0);
    ck_assert_double_eq(num(j, "errors_total"), 10 + 1 + 5 + 1 + 1 + 1);
    ck_assert_double_eq(num(j, "scheduled"), 100);
    ck_assert_double_eq(num(j, "sent"), 99);
    ck_assert_double_eq(num(j, "not_sent"), 1);
    /* Answered: the HTTP responses only (80 + 10 + 1 with a version, 1 without). */
    ck_assert_double_eq(num(j, "answered"), 92);
    row = version_row(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(row, "version")->valuestring, "v1");
    ck_assert_double_eq(num(row, "count"), 91);
    ck_assert_double_eq(num(row, "errors"), 11);
    ck_assert_double_eq_tol(num(row, "share"), 91.0 / 92, 1e-6);
    row = version_row(j, 1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(row, "version")));
    ck_assert_double_eq(num(row, "count"), 1);
    /* One request not sent: the rate was not kept, and the reason says so. */
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "rate_kept")));
    ck_assert_ptr_nonnull(
        strstr(cJSON_GetObjectItem(j, "behind")->valuestring, "1 of 100 requests not sent"));
    ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(j, "behind")->valuestring, "--max-inflight"));
    cJSON_Delete(j);

    text = text_summary(t, &end_1s);
    ck_assert_msg(strstr(text, "100 scheduled, 99 sent, 92 answered, 19 errors") != NULL, "%s",
                  text);
    ck_assert_msg(strstr(text, "connect 5, timeout 1, reset 1, limit 1, http_4xx 1, http_5xx 10") !=
                      NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "target NOT kept: 1 of 100 requests not sent") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "(none)") != NULL, "%s", text);
    free(text);
    tally_free(t);
}
END_TEST

START_TEST(test_client_behind)
{
    struct tally *t = tally_new(&config);
    cJSON *j;
    const char *behind;
    char *text;
    uint64_t i;

    /* 1 of 100 late is within the 1 % allowed; 2 are not. */
    for (i = 0; i < 99; i++)
        add(t, i, 100, 1000, TALLY_HTTP, 200, "v1");
    add(t, i++, 50000, 60000, TALLY_HTTP, 200, "v1");
    j = summary(t, &end_1s);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "rate_kept")));
    ck_assert_double_eq(num(j, "late"), 1);
    cJSON_Delete(j);

    add(t, i++, 300000, 310000, TALLY_HTTP, 200, "v1");
    add(t, i++, 400000, 410000, TALLY_HTTP, 200, "v1");
    j = summary(t, &end_1s);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "rate_kept")));
    ck_assert_double_eq(num(j, "late"), 3);
    ck_assert_double_eq(num(j, "lag_ms.max"), 400);
    behind = cJSON_GetObjectItem(j, "behind")->valuestring;
    ck_assert_msg(
        strstr(behind, "the client fell behind: 3 requests started more than 10 ms late") != NULL,
        "%s", behind);
    /* The last send (1.01 s + 0.4 s) is after the planned end: the rate is counted over it. */
    ck_assert_double_eq_tol(num(j, "elapsed_s"), 1.41, 1e-6);
    ck_assert_double_eq_tol(num(j, "achieved_rate"), 102 / 1.41, 1e-3);
    cJSON_Delete(j);
    text = text_summary(t, &end_1s);
    ck_assert_msg(strstr(text, "target NOT kept: the client fell behind") != NULL, "%s", text);
    free(text);
    tally_free(t);
}
END_TEST

START_TEST(test_pool_queue)
{
    struct tally *t = tally_new(&config);
    struct tally_result r = {0};
    cJSON *j;
    uint64_t i;

    /* Sent on time, but half of them waited 50 ms for a connection of the pool. */
    for (i = 0; i < 10; i++) {
        r.seq = i;
        r.sched_us = r.sent_us = i * 10000;
        r.sent = r.wire_known = true;
        r.wire_us = r.sent_us + (i % 2 ? 50000 : 0);
        r.done_us = r.wire_us + 1000;
        r.kind = TALLY_HTTP;
        r.status = 200;
        tally_scheduled(t);
        tally_sent(t, r.sched_us, r.sent_us);
        tally_add(t, &r);
    }
    j = summary(t, &end_1s);
    ck_assert_double_eq(num(j, "late"), 0);
    ck_assert_double_eq(num(j, "queued"), 5);
    ck_assert_double_eq_tol(num(j, "queue_ms.max"), 50, 1e-9);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "rate_kept")));
    ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(j, "behind")->valuestring,
                                 "5 requests waited more than 10 ms for one of the 4 connections"));
    cJSON_Delete(j);
    tally_free(t);
}
END_TEST

START_TEST(test_versions_bounded)
{
    struct tally *t = tally_new(&config);
    const cJSON *versions, *row;
    cJSON *j;
    char name[16];
    uint64_t i;
    int n;

    /* More distinct versions than rows: the ones past the limit are counted together. */
    for (i = 0; i < TALLY_VERSIONS_MAX + 10; i++) {
        snprintf(name, sizeof name, "v%llu", (unsigned long long)i);
        add(t, i, 0, 1000, TALLY_HTTP, 200, name);
    }
    add(t, i++, 0, 1000, TALLY_HTTP, 200, "v0");
    add(t, i++, 0, 1000, TALLY_HTTP, 200, "v40");
    j = summary(t, &end_1s);
    versions = cJSON_GetObjectItem(j, "versions");
    n = cJSON_GetArraySize(versions);
    ck_assert_int_eq(n, TALLY_VERSIONS_MAX + 1);
    /* Sorted by count: "(other)" (11) first, then v0 (2), then the rest by name. */
    row = version_row(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(row, "version")->valuestring, "(other)");
    ck_assert_double_eq(num(row, "count"), 11);
    row = version_row(j, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(row, "version")->valuestring, "v0");
    ck_assert_double_eq(num(row, "count"), 2);
    cJSON_Delete(j);
    tally_free(t);
}
END_TEST

START_TEST(test_label)
{
    char out[TALLY_LABEL_MAX + 1], big[200];

    tally_label(out, " \tv1.2.3 \r\n", 11);
    ck_assert_str_eq(out, "v1.2.3");
    tally_label(out, "v\xff\x01\x1b[2Jx", 8);
    ck_assert_str_eq(out, "v???[2Jx");
    memset(big, 'a', sizeof big);
    tally_label(out, big, sizeof big);
    ck_assert_uint_eq(strlen(out), TALLY_LABEL_MAX);
    tally_label(out, "", 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_records)
{
    struct tally_result r = {0};
    struct buf b;
    cJSON *j;

    buf_init(&b);
    r.seq = 7;
    r.sched_us = 1070000;
    r.sent = true;
    r.sent_us = 1070012;
    r.wire_known = true;
    r.wire_us = 1070100;
    r.done_us = 1071500;
    r.kind = TALLY_HTTP;
    r.status = 200;
    r.version = "v\"1";
    r.slot = "blue";
    r.new_conn = true;
    tally_result_json(&b, &r);
    j = parse_line(&b);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "request");
    ck_assert_double_eq(num(j, "seq"), 7);
    ck_assert_double_eq(num(j, "t_sched"), 1.07);
    ck_assert_double_eq(num(j, "t_sent"), 1.070012);
    ck_assert_double_eq(num(j, "t_wire"), 1.0701);
    ck_assert_double_eq(num(j, "t_done"), 1.0715);
    ck_assert_double_eq(num(j, "latency_ms"), 1.5);
    ck_assert_double_eq(num(j, "status"), 200);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "detail")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "version")->valuestring, "v\"1");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "slot")->valuestring, "blue");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "new_conn")));
    cJSON_Delete(j);

    /* Not sent: no send or wire time, no status; the error and why. */
    buf_reset(&b);
    memset(&r, 0, sizeof r);
    r.seq = 8;
    r.sched_us = 1080000;
    r.done_us = 1080000;
    r.kind = TALLY_LIMIT;
    r.detail = "not sent: 1000 requests in flight already";
    tally_result_json(&b, &r);
    j = parse_line(&b);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "t_sent")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "t_wire")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "status")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "version")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "limit");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "detail")->valuestring,
                     "not sent: 1000 requests in flight already");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "new_conn")));
    cJSON_Delete(j);

    /* A mark: its label from outside, cleaned. */
    buf_reset(&b);
    tally_mark_json(&b, 2500001, 250, "switch \x1b\"now\"\n", 14, "fifo");
    j = parse_line(&b);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "mark");
    ck_assert_double_eq(num(j, "t"), 2.500001);
    ck_assert_double_eq(num(j, "next_seq"), 250);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "label")->valuestring, "switch ?\"now\"");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "source")->valuestring, "fifo");
    cJSON_Delete(j);

    buf_reset(&b);
    tally_start_json(&b, &config, 1700000000123456u);
    j = parse_line(&b);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "start");
    ck_assert_double_eq_tol(num(j, "wall"), 1700000000.123456, 1e-6);
    ck_assert_double_eq(num(j, "rate"), 100);
    ck_assert_double_eq(num(j, "connections"), 4);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "version_header")->valuestring, "X-N3-Version");
    cJSON_Delete(j);
    buf_done(&b);
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(tally_kind_name(TALLY_HTTP), "http");
    ck_assert_str_eq(tally_kind_name(TALLY_CONNECT), "connect");
    ck_assert_str_eq(tally_kind_name(TALLY_BEHIND), "behind");
    ck_assert_str_eq(tally_kind_name(TALLY_NKINDS), "?");
    for (int k = 0; k < TALLY_NKINDS; k++)
        ck_assert_ptr_nonnull(tally_kind_name((enum tally_kind)k));
}
END_TEST

START_TEST(test_empty_run)
{
    struct tally *t = tally_new(&config);
    struct tally_end e = {.stop_us = 0, .stopped_by = "SIGINT"};
    cJSON *j;
    char *text;

    /* Stopped before anything was due: zeros, no division by zero. */
    j = summary(t, &e);
    ck_assert_double_eq(num(j, "sent"), 0);
    ck_assert_double_eq(num(j, "achieved_rate"), 0);
    ck_assert_double_eq(num(j, "cpu_ms_per_1000"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "stopped_by")->valuestring, "SIGINT");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "versions")), 0);
    cJSON_Delete(j);
    text = text_summary(t, &e);
    ck_assert_msg(strstr(text, "stopped by SIGINT") != NULL, "%s", text);
    free(text);
    tally_free(t);
}
END_TEST

static Suite *tally_suite(void)
{
    Suite *s = suite_create("tally");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, test_shares_and_quantiles);
    tcase_add_test(tc, test_errors_by_kind);
    tcase_add_test(tc, test_client_behind);
    tcase_add_test(tc, test_pool_queue);
    tcase_add_test(tc, test_versions_bounded);
    tcase_add_test(tc, test_label);
    tcase_add_test(tc, test_records);
    tcase_add_test(tc, test_kind_names);
    tcase_add_test(tc, test_empty_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(tally_suite());
}
