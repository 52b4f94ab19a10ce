/* Unit tests for the event bus: matching, ordering, failure reports, unsubscribe in handlers. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

#define REC_MAX 32

/* A log shared by several recorders, so that order across handlers can be checked. */
struct shared_log {
    unsigned n;
    char *lines[REC_MAX * 4];
};

/* What one handler saw, in order. */
struct recorder {
    const char *tag;
    struct shared_log *log;
    unsigned n;
    char *names[REC_MAX];
    char *payloads[REC_MAX];
    uint64_t seqs[REC_MAX];
    uint64_t times[REC_MAX];
    char *sources[REC_MAX];
    char *correlations[REC_MAX];
};

static struct loop *loop;
static struct bus *bus;

static void setup(void)
{
    loop = loop_new_fake(1700000000000u, 1);
    bus = bus_new(loop);
}

static void teardown(void)
{
    bus_free(bus);
    loop_free(loop);
}

static void recorder_done(struct recorder *r)
{
    unsigned i;

    for (i = 0; i < r->n; i++) {
        free(r->names[i]);
        free(r->payloads[i]);
        free(r->sources[i]);
        free(r->correlations[i]);
    }
    r->n = 0;
}

static void log_done(struct shared_log *l)
{
    unsigned i;

    for (i = 0; i < l->n; i++)
        free(l->lines[i]);
    l->n = 0;
}

static void log_add(struct shared_log *l, const char *tag, const char *name)
{
    ck_assert_uint_lt(l->n, REC_MAX * 4);
    l->lines[l->n++] = xasprintf("%s:%s", tag, name);
}

static int record(const struct bus_event *ev, void *arg, struct err *err)
{
    struct recorder *r = arg;

    ck_assert_uint_lt(r->n, REC_MAX);
    ck_assert_ptr_nonnull(ev->payload);
    r->names[r->n] = xstrdup(ev->name);
    r->payloads[r->n] = cJSON_PrintUnformatted(ev->payload);
    r->sources[r->n] = xstrdup(ev->source);
    r->correlations[r->n] = xstrdup(ev->correlation);
    r->seqs[r->n] = ev->seq;
    r->times[r->n] = ev->time_us;
    r->n++;
    if (r->log != NULL)
        log_add(r->log, r->tag, ev->name);
    return 0;
}

static int fail_always(const struct bus_event *ev, void *arg, struct err *err)
{
    struct recorder *r = arg;

    if (r != NULL)
        record(ev, r, err);
    return err_set(err, "webhook %s: connection refused", ev->name);
}

static int fail_silently(const struct bus_event *ev, void *arg, struct err *err)
{
    return -1;
}

START_TEST(test_event_fields)
{
    struct recorder r = {0};
    cJSON *p = cJSON_CreateObject();

    cJSON_AddStringToObject(p, "host", "web1");
    bus_subscribe(bus, "rollout.step.started", record, &r);
    bus_emit(bus, "rollout.step.started", "executor", "run-42", p);
    loop_fake_advance(loop, 1500);
    bus_emit(bus, "rollout.step.started", NULL, NULL, NULL);

    ck_assert_uint_eq(r.n, 2);
    ck_assert_str_eq(r.names[0], "rollout.step.started");
    ck_assert_str_eq(r.sources[0], "executor");
    ck_assert_str_eq(r.correlations[0], "run-42");
    ck_assert_str_eq(r.payloads[0], "{\"host\":\"web1\"}");
    ck_assert_uint_eq(r.seqs[0], 1);
    ck_assert_uint_eq(r.times[0], 1700000000000000u);
    /* No payload given: an empty object, never NULL; missing source/correlation read "". */
    ck_assert_str_eq(r.payloads[1], "{}");
    ck_assert_str_eq(r.sources[1], "");
    ck_assert_str_eq(r.correlations[1], "");
    ck_assert_uint_eq(r.seqs[1], 2);
    ck_assert_uint_eq(r.times[1], 1700000001500000u);
    ck_assert_uint_eq(bus_delivered(bus), 2);
    recorder_done(&r);
}
END_TEST

START_TEST(test_exact_match)
{
    struct recorder r = {0};

    bus_subscribe(bus, "host.unhealthy", record, &r);
    bus_emit(bus, "host.unhealthy", "probe", "", NULL);
    bus_emit(bus, "host.unhealthy.web1", "probe", "", NULL);
    bus_emit(bus, "host", "probe", "", NULL);
    bus_emit(bus, "host.unhealth", "probe", "", NULL);

    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.names[0], "host.unhealthy");
    recorder_done(&r);
}
END_TEST

START_TEST(test_prefix_match)
{
    struct recorder r = {0};
    static const char *const names[] = {"rollout.started", "rollout.step.started", "rollout",
                                        "rolloutx.y",      "xrollout.a",           "rollout."};

    bus_subscribe(bus, "rollout.*", record, &r);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        bus_emit(bus, names[i], "cli", "", NULL);

    /* "prefix.*" matches "prefix.x" and "prefix.x.y"; not "prefix", nor "prefixx.y". */
    ck_assert_uint_eq(r.n, 2);
    ck_assert_str_eq(r.names[0], "rollout.started");
    ck_assert_str_eq(r.names[1], "rollout.step.started");
    ck_assert_uint_eq(bus_delivered(bus), 6);
    recorder_done(&r);
}
END_TEST

START_TEST(test_star_matches_all)
{
    struct recorder all = {0}, one = {0};

    bus_subscribe(bus, "*", record, &all);
    bus_subscribe(bus, "b", record, &one);
    bus_emit(bus, "a", "cli", "", NULL);
    bus_emit(bus, "b", "cli", "", NULL);
    bus_emit(bus, "c.d.e", "cli", "", NULL);

    ck_assert_uint_eq(all.n, 3);
    ck_assert_str_eq(all.names[0], "a");
    ck_assert_str_eq(all.names[1], "b");
    ck_assert_str_eq(all.names[2], "c.d.e");
    ck_assert_uint_eq(one.n, 1);
    recorder_done(&all);
    recorder_done(&one);
}
END_TEST

START_TEST(test_handlers_in_subscription_order)
{
    struct shared_log log = {0};
    struct recorder a = {.tag = "a", .log = &log}, b = {.tag = "b", .log = &log},
                    c = {.tag = "c", .log = &log};

    bus_subscribe(bus, "x", record, &a);
    bus_subscribe(bus, "*", record, &b);
    bus_subscribe(bus, "x", record, &c);
    bus_emit(bus, "x", "cli", "", NULL);

    ck_assert_uint_eq(log.n, 3);
    ck_assert_str_eq(log.lines[0], "a:x");
    ck_assert_str_eq(log.lines[1], "b:x");
    ck_assert_str_eq(log.lines[2], "c:x");
    recorder_done(&a);
    recorder_done(&b);
    recorder_done(&c);
    log_done(&log);
}
END_TEST

/* Emits two events from inside a handler and notes how many events were delivered then. */
struct nested {
    struct shared_log *log;
    uint64_t delivered_inside;
    unsigned calls;
};

static int emit_two(const struct bus_event *ev, void *arg, struct err *err)
{
    struct nested *n = arg;

    n->calls++;
    log_add(n->log, "emitter", ev->name);
    bus_emit(bus, "inner.first", "test", ev->correlation, NULL);
    bus_emit(bus, "inner.second", "test", ev->correlation, NULL);
    /* Not delivered yet: delivery is never re-entrant. */
    n->delivered_inside = bus_delivered(bus);
    log_add(n->log, "emitter", "returns");
    return 0;
}

START_TEST(test_emit_inside_handler_is_queued)
{
    struct shared_log log = {0};
    struct nested n = {.log = &log};
    struct recorder after = {.tag = "after", .log = &log};

    bus_subscribe(bus, "outer", emit_two, &n);
    bus_subscribe(bus, "*", record, &after);
    bus_emit(bus, "outer", "cli", "run-7", NULL);

    ck_assert_uint_eq(n.calls, 1);
    ck_assert_uint_eq(n.delivered_inside, 0);
    /* The current event reaches every handler first; then the queued ones, in order. */
    ck_assert_uint_eq(log.n, 5);
    ck_assert_str_eq(log.lines[0], "emitter:outer");
    ck_assert_str_eq(log.lines[1], "emitter:returns");
    ck_assert_str_eq(log.lines[2], "after:outer");
    ck_assert_str_eq(log.lines[3], "after:inner.first");
    ck_assert_str_eq(log.lines[4], "after:inner.second");
    ck_assert_uint_lt(after.seqs[0], after.seqs[1]);
    ck_assert_uint_lt(after.seqs[1], after.seqs[2]);
    ck_assert_str_eq(after.correlations[2], "run-7");
    ck_assert_uint_eq(bus_delivered(bus), 3);
    recorder_done(&after);
    log_done(&log);
}
END_TEST

START_TEST(test_failing_handler_reported)
{
    struct recorder before = {0}, after = {0}, failed = {0};
    cJSON *p;

    ck_assert_uint_eq(bus_failures(bus), 0);
    ck_assert_str_eq(bus_last_failure(bus), "");
    bus_subscribe(bus, "deploy.done", record, &before);
    bus_subscribe(bus, "deploy.*", fail_always, NULL);
    bus_subscribe(bus, "deploy.done", record, &after);
    bus_subscribe(bus, "bus.handler_failed", record, &failed);
    bus_emit(bus, "deploy.done", "executor", "run-1", NULL);

    /* The failure does not stop the handlers after it. */
    ck_assert_uint_eq(before.n, 1);
    ck_assert_uint_eq(after.n, 1);
    ck_assert_uint_eq(bus_failures(bus), 1);
    ck_assert_str_eq(bus_last_failure(bus), "webhook deploy.done: connection refused");
    ck_assert_uint_eq(failed.n, 1);
    ck_assert_str_eq(failed.correlations[0], "run-1");
    p = cJSON_Parse(failed.payloads[0]);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(p, "event")), "deploy.done");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(p, "pattern")), "deploy.*");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(p, "error")),
                     "webhook deploy.done: connection refused");
    cJSON_Delete(p);
    ck_assert_uint_gt(failed.seqs[0], after.seqs[0]);
    recorder_done(&before);
    recorder_done(&after);
    recorder_done(&failed);
}
END_TEST

START_TEST(test_failure_without_message)
{
    bus_subscribe(bus, "x", fail_silently, NULL);
    bus_emit(bus, "x", "cli", "", NULL);

    ck_assert_uint_eq(bus_failures(bus), 1);
    ck_assert_str_ne(bus_last_failure(bus), "");
}
END_TEST

START_TEST(test_failure_report_does_not_loop)
{
    struct recorder seen = {0}, failed = {0};

    /* Fails on everything, the failure report included. */
    bus_subscribe(bus, "*", fail_always, &seen);
    bus_subscribe(bus, "bus.handler_failed", record, &failed);
    bus_emit(bus, "x", "cli", "", NULL);

    ck_assert_uint_eq(seen.n, 2);
    ck_assert_str_eq(seen.names[0], "x");
    ck_assert_str_eq(seen.names[1], "bus.handler_failed");
    /* Both failures counted, only the first reported as an event. */
    ck_assert_uint_eq(bus_failures(bus), 2);
    ck_assert_str_eq(bus_last_failure(bus), "webhook bus.handler_failed: connection refused");
    ck_assert_uint_eq(failed.n, 1);
    ck_assert_uint_eq(bus_delivered(bus), 2);

    bus_emit(bus, "y", "cli", "", NULL);
    ck_assert_uint_eq(bus_failures(bus), 4);
    ck_assert_uint_eq(failed.n, 2);
    recorder_done(&seen);
    recorder_done(&failed);
}
END_TEST

/* Unsubscribes `target` (itself when NULL) on its first call. */
struct unsub {
    struct bus_sub *self, *target;
    unsigned calls;
};

static int unsub_handler(const struct bus_event *ev, void *arg, struct err *err)
{
    struct unsub *u = arg;

    if (u->calls++ == 0)
        bus_unsubscribe(bus, u->target != NULL ? u->target : u->self);
    return 0;
}

START_TEST(test_unsubscribe_self_inside_handler)
{
    struct unsub u = {0};
    struct recorder r = {0};

    u.self = bus_subscribe(bus, "x", unsub_handler, &u);
    bus_subscribe(bus, "x", record, &r);
    bus_emit(bus, "x", "cli", "", NULL);
    bus_emit(bus, "x", "cli", "", NULL);

    ck_assert_uint_eq(u.calls, 1);
    /* The others still get every event. */
    ck_assert_uint_eq(r.n, 2);
    recorder_done(&r);
}
END_TEST

START_TEST(test_unsubscribe_other_inside_handler)
{
    struct unsub u = {0};
    struct recorder r = {0}, last = {0};

    bus_subscribe(bus, "x", unsub_handler, &u);
    u.target = bus_subscribe(bus, "x", record, &r);
    bus_subscribe(bus, "x", record, &last);
    bus_emit(bus, "x", "cli", "", NULL);
    bus_emit(bus, "x", "cli", "", NULL);

    /* Removed before its turn: it gets nothing, not even the current event. */
    ck_assert_uint_eq(r.n, 0);
    ck_assert_uint_eq(last.n, 2);
    ck_assert_uint_eq(u.calls, 2);
    recorder_done(&last);
}
END_TEST

START_TEST(test_unsubscribe_last_then_subscribe)
{
    struct unsub u = {0};
    struct recorder r = {0};

    /* The last subscription removes itself; a new one must still be reachable after it. */
    u.self = bus_subscribe(bus, "x", unsub_handler, &u);
    bus_emit(bus, "x", "cli", "", NULL);
    bus_subscribe(bus, "x", record, &r);
    bus_emit(bus, "x", "cli", "", NULL);

    ck_assert_uint_eq(u.calls, 1);
    ck_assert_uint_eq(r.n, 1);
    recorder_done(&r);
}
END_TEST

START_TEST(test_unsubscribe_outside_handler)
{
    struct recorder r = {0};
    struct bus_sub *s = bus_subscribe(bus, "x", record, &r);

    bus_emit(bus, "x", "cli", "", NULL);
    bus_unsubscribe(bus, s);
    bus_emit(bus, "x", "cli", "", NULL);
    ck_assert_uint_eq(r.n, 1);
    recorder_done(&r);
}
END_TEST

struct late {
    struct recorder *r;
    bool done;
};

static int subscribe_late(const struct bus_event *ev, void *arg, struct err *err)
{
    struct late *l = arg;

    if (!l->done) {
        l->done = true;
        bus_subscribe(bus, "*", record, l->r);
        bus_emit(bus, "later", "test", "", NULL);
    }
    return 0;
}

START_TEST(test_subscribe_inside_handler)
{
    struct recorder r = {0};
    struct late l = {.r = &r};

    bus_subscribe(bus, "now", subscribe_late, &l);
    bus_emit(bus, "now", "cli", "", NULL);

    /* A subscription made during delivery starts with the next event. */
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.names[0], "later");
    recorder_done(&r);
}
END_TEST

static Suite *bus_suite(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_event_fields);
    tcase_add_test(tc, test_exact_match);
    tcase_add_test(tc, test_prefix_match);
    tcase_add_test(tc, test_star_matches_all);
    tcase_add_test(tc, test_handlers_in_subscription_order);
    tcase_add_test(tc, test_emit_inside_handler_is_queued);
    tcase_add_test(tc, test_failing_handler_reported);
    tcase_add_test(tc, test_failure_without_message);
    tcase_add_test(tc, test_failure_report_does_not_loop);
    tcase_add_test(tc, test_unsubscribe_self_inside_handler);
    tcase_add_test(tc, test_unsubscribe_other_inside_handler);
    tcase_add_test(tc, test_unsubscribe_last_then_subscribe);
    tcase_add_test(tc, test_unsubscribe_outside_handler);
    tcase_add_test(tc, test_subscribe_inside_handler);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(bus_suite());
}
