/* Executor: strategies, concurrency, timeouts, retries, cancellation and the DAG, with real
 * processes. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bus.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/plan.h"
#include "core/proc.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

#define REAL_WAIT_MS 20000

struct fixture {
    struct loop *loop;
    struct plan *plan;
    struct executor *ex;
    struct bus *bus;
    struct metrics *metrics;
    struct trace *trace;
    char *dir;
    bool done;
    /* executor.step.finished events by status, executor.block.finished events */
    unsigned step_events[EXEC_NSTATUS], block_events;
};

static void on_done(struct executor *ex, void *arg)
{
    struct fixture *f = arg;

    f->done = true;
}

static bool is_done(void *arg)
{
    return ((struct fixture *)arg)->done;
}

/* A copy of text with every `from` replaced by `to`. */
static char *subst(const char *text, const char *from, const char *to)
{
    size_t n = 0, lf = strlen(from), lt = strlen(to);
    const char *p;
    char *out, *o;

    for (p = text; (p = strstr(p, from)) != NULL; p += lf)
        n++;
    out = o = xmalloc(strlen(text) + n * lt + 1);
    for (p = text; *p != '\0';) {
        if (strncmp(p, from, lf) == 0) {
            memcpy(o, to, lt);
            o += lt;
            p += lf;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static int on_finished_event(const struct bus_event *ev, void *arg, struct err *err)
{
    struct fixture *f = arg;
    const char *status = cJSON_GetObjectItem(ev->payload, "status")->valuestring;
    int st;

    if (strcmp(ev->name, "executor.block.finished") == 0) {
        f->block_events++;
        return 0;
    }
    for (st = 0; st < EXEC_NSTATUS; st++) {
        if (strcmp(exec_status_name(st), status) == 0)
            f->step_events[st]++;
    }
    return 0;
}

/* Load a plan whose text may use @D@ for a scratch directory; a remote runner is optional. */
static void fx_init_remote(struct fixture *f, unsigned max_procs, const char *plan_text,
                           plan_resolve_fn resolve, const struct exec_runner *remote)
{
    struct err err;
    struct exec_opts opts;
    char *text;

    memset(f, 0, sizeof *f);
    f->dir = tu_mkdtemp();
    f->loop = loop_new_fake(1700000000000u, 42);
    f->bus = bus_new(f->loop);
    f->metrics = metrics_new();
    f->trace = trace_new(f->loop, 10000);
    bus_subscribe(f->bus, "executor.step.finished", on_finished_event, f);
    bus_subscribe(f->bus, "executor.block.finished", on_finished_event, f);
    text = subst(plan_text, "@D@", f->dir);
    if (plan_load_string("test.json", text, strlen(text), &f->plan, &err) != 0)
        ck_abort_msg("plan did not load: %s", err.msg);
    free(text);
    if (resolve != NULL && plan_expand_remote(f->plan, resolve, NULL, &err) != 0)
        ck_abort_msg("remote steps did not expand: %s", err.msg);
    memset(&opts, 0, sizeof opts);
    opts.max_procs = max_procs;
    opts.bus = f->bus;
    opts.metrics = f->metrics;
    opts.trace = f->trace;
    opts.remote = remote;
    f->ex = executor_new(f->loop, f->plan, &opts);
}

static void fx_init(struct fixture *f, unsigned max_procs, const char *plan_text)
{
    fx_init_remote(f, max_procs, plan_text, NULL, NULL);
}

static void fx_start(struct fixture *f)
{
    executor_start(f->ex, on_done, f);
}

static void fx_run(struct fixture *f)
{
    fx_start(f);
    ck_assert_msg(tu_run_until(f->loop, is_done, f, REAL_WAIT_MS), "the run did not finish");
}

static void fx_done(struct fixture *f)
{
    executor_free(f->ex);
    proc_flush_all(f->loop);
    trace_free(f->trace);
    metrics_free(f->metrics);
    bus_free(f->bus);
    loop_free(f->loop);
    plan_free(f->plan);
    tu_rmdir_r(f->dir);
    free(f->dir);
}

static const struct exec_block *root(struct fixture *f)
{
    return executor_root(f->ex);
}

static const struct exec_step *step(struct fixture *f, const char *name)
{
    const struct exec_block *b = root(f);
    size_t i;

    for (i = 0; i < exec_block_nsteps(b); i++) {
        if (strcmp(exec_step_name(exec_block_step(b, i)), name) == 0)
            return exec_block_step(b, i);
    }
    ck_abort_msg("no step %s", name);
    return NULL;
}

static char *result_text(struct fixture *f)
{
    cJSON *r = exec_block_result(root(f));
    char *s = cJSON_PrintUnformatted(r);
    char *copy = xstrdup(s);

    cJSON_free(s);
    cJSON_Delete(r);
    return copy;
}

/* A process is gone when it is not in the process table, or is a zombie nobody waits for. */
static bool pid_dead(pid_t pid)
{
    char path[64], *stat;
    char *close_paren;
    bool dead;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    stat = tu_read_file(path);
    if (stat == NULL)
        return true;
    close_paren = strrchr(stat, ')');
    dead = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
    free(stat);
    return dead;
}

struct pids {
    pid_t v[16];
    size_t n;
};

static bool all_dead(void *arg)
{
    struct pids *p = arg;
    size_t i;

    for (i = 0; i < p->n; i++) {
        if (!pid_dead(p->v[i]))
            return false;
    }
    return true;
}

static void read_pids(const char *path, struct pids *p)
{
    char *text = tu_read_file(path), *s, *end;

    ck_assert_msg(text != NULL, "no pid file %s", path);
    for (s = text; p->n < 16; s = end) {
        long v = strtol(s, &end, 10);

        if (end == s)
            break;
        p->v[p->n++] = (pid_t)v;
    }
    free(text);
}

static bool file_exists_pred(void *arg)
{
    return access(arg, F_OK) == 0;
}

/* ---- strategies ---- */

START_TEST(all_succeeds_with_every_result)
{
    struct fixture f;
    char *r;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"a\", \"exec\": [\"echo\", \"one\"]},"
            " {\"name\": \"b\", \"shell\": \"printf two\"}]}");
    fx_run(&f);
    ck_assert_str_eq(exec_status_name(exec_block_status(root(&f))), "succeeded");
    r = result_text(&f);
    ck_assert_str_eq(r, "{\"a\":\"one\",\"b\":\"two\"}");
    free(r);
    ck_assert_int_eq(exec_step_exit_code(step(&f, "a")), 0);
    fx_done(&f);
}
END_TEST

START_TEST(all_with_one_failure_fails)
{
    struct fixture f;

    /* The runtime n3ctl replaces reported "completed" here. */
    fx_init(&f, 0,
            "{\"strategy\": \"all\", \"steps\": [{\"name\": \"ok\", \"exec\": [\"true\"]},"
            " {\"name\": \"bad\", \"shell\": \"echo oops >&2; exit 3\"},"
            " {\"name\": \"ok2\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_int_eq(exec_step_status(step(&f, "bad")), EXEC_FAILED);
    ck_assert_int_eq(exec_step_exit_code(step(&f, "bad")), 3);
    ck_assert_str_eq(exec_step_reason(step(&f, "bad")), "exit 3");
    ck_assert_str_eq(exec_step_output(step(&f, "bad"), PROC_STDERR, NULL, NULL), "oops\n");
    /* Without fail_fast the others run to the end. */
    ck_assert_int_eq(exec_step_status(step(&f, "ok")), EXEC_SUCCEEDED);
    ck_assert_int_eq(exec_step_status(step(&f, "ok2")), EXEC_SUCCEEDED);
    ck_assert_str_eq(exec_block_reason(root(&f)), "1 of 3 steps did not succeed");
    fx_done(&f);
}
END_TEST

START_TEST(all_fail_fast_stops_the_rest)
{
    struct fixture f;
    struct pids p = {{0}, 0};
    char *pidfile;

    fx_init(&f, 0,
            "{\"fail_fast\": true, \"steps\": ["
            " {\"name\": \"slow\", \"shell\": \"echo $$ > @D@/slow.pid; exec sleep 1000\"},"
            " {\"name\": \"bad\", \"shell\": \"while [ ! -s @D@/slow.pid ]; do sleep 0.01; done; "
            "exit 1\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_int_eq(exec_step_status(step(&f, "slow")), EXEC_CANCELLED);
    ck_assert_int_eq(exec_step_signal(step(&f, "slow")), SIGTERM);
    ck_assert_ptr_nonnull(strstr(exec_block_reason(root(&f)), "fail_fast"));
    pidfile = xasprintf("%s/slow.pid", f.dir);
    read_pids(pidfile, &p);
    ck_assert(all_dead(&p));
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(block_timeout_is_timed_out)
{
    struct fixture f;
    char *marker;

    fx_init(&f, 0,
            "{\"timeout_seconds\": 5, \"steps\": ["
            " {\"name\": \"quick\", \"exec\": [\"true\"]},"
            " {\"name\": \"stuck\", \"shell\": \"touch @D@/started; exec sleep 1000\"}]}");
    marker = xasprintf("%s/started", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, marker, REAL_WAIT_MS));
    ck_assert(!f.done);
    loop_fake_advance(f.loop, 4999);
    ck_assert(!f.done);
    loop_fake_advance(f.loop, 1);
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    ck_assert_str_eq(exec_status_name(exec_block_status(root(&f))), "timed_out");
    ck_assert_int_eq(exec_step_status(step(&f, "stuck")), EXEC_TIMED_OUT);
    ck_assert_int_eq(exec_step_status(step(&f, "quick")), EXEC_SUCCEEDED);
    ck_assert_ptr_nonnull(strstr(exec_block_reason(root(&f)), "timeout of 5s"));
    free(marker);
    fx_done(&f);
}
END_TEST

START_TEST(step_timeout_fails_an_all_block)
{
    struct fixture f;
    char *marker;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"stuck\", \"timeout_seconds\": 2,"
            " \"shell\": \"touch @D@/started; exec sleep 1000\"}]}");
    marker = xasprintf("%s/started", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, marker, REAL_WAIT_MS));
    loop_fake_advance(f.loop, 2000);
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    ck_assert_int_eq(exec_step_status(step(&f, "stuck")), EXEC_TIMED_OUT);
    ck_assert_str_eq(exec_step_reason(step(&f, "stuck")), "timed out after 2s");
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    free(marker);
    fx_done(&f);
}
END_TEST

START_TEST(any_success_cancels_the_rest)
{
    struct fixture f;
    char *r;

    fx_init(&f, 0,
            "{\"strategy\": \"any_success\", \"steps\": ["
            " {\"name\": \"fails\", \"exec\": [\"false\"]},"
            " {\"name\": \"slow\", \"exec\": [\"sleep\", \"1000\"]},"
            " {\"name\": \"wins\", \"shell\": \"while [ ! -e @D@/go ]; do sleep 0.01; done; echo "
            "won\"},"
            " {\"name\": \"gate\", \"shell\": \"sleep 0.05; touch @D@/go; exec sleep 1000\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    r = result_text(&f);
    ck_assert_str_eq(r, "\"won\"");
    free(r);
    ck_assert_int_eq(exec_step_status(step(&f, "fails")), EXEC_FAILED);
    ck_assert_int_eq(exec_step_status(step(&f, "slow")), EXEC_CANCELLED);
    ck_assert_int_eq(exec_step_status(step(&f, "gate")), EXEC_CANCELLED);
    ck_assert_str_eq(exec_block_reason(root(&f)), "step \"wins\" succeeded first");
    fx_done(&f);
}
END_TEST

START_TEST(any_success_fails_only_when_all_fail)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"strategy\": \"any_success\", \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"false\"]},"
            " {\"name\": \"b\", \"shell\": \"exit 7\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_str_eq(exec_block_reason(root(&f)), "all 2 steps failed");
    fx_done(&f);
}
END_TEST

START_TEST(race_takes_the_first_to_finish)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"strategy\": \"race\", \"steps\": ["
            " {\"name\": \"slow\", \"exec\": [\"sleep\", \"1000\"]},"
            " {\"name\": \"quick_fail\", \"shell\": \"exit 4\"}]}");
    fx_run(&f);
    /* The first to finish decides, even when it failed. */
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_int_eq(exec_step_status(step(&f, "slow")), EXEC_CANCELLED);
    ck_assert_str_eq(exec_block_reason(root(&f)), "step \"quick_fail\" finished first and exit 4");
    fx_done(&f);
}
END_TEST

START_TEST(race_success_gives_the_winner_result)
{
    struct fixture f;
    char *r;

    fx_init(&f, 0,
            "{\"strategy\": \"race\", \"steps\": ["
            " {\"name\": \"slow\", \"exec\": [\"sleep\", \"1000\"]},"
            " {\"name\": \"quick\", \"exec\": [\"echo\", \"first\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    r = result_text(&f);
    ck_assert_str_eq(r, "\"first\"");
    free(r);
    fx_done(&f);
}
END_TEST

START_TEST(map_reduce_sum_and_errors)
{
    struct fixture f;
    char *r;

    fx_init(&f, 0,
            "{\"strategy\": \"map_reduce\", \"reduce\": \"sum\", \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"echo\", \"1\"]},"
            " {\"name\": \"b\", \"exec\": [\"echo\", \"2.5\"]},"
            " {\"name\": \"c\", \"shell\": \"echo 40\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    r = result_text(&f);
    ck_assert_str_eq(r, "43.5");
    free(r);
    fx_done(&f);

    fx_init(&f, 0,
            "{\"strategy\": \"map_reduce\", \"reduce\": \"sum\", \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"echo\", \"1\"]},"
            " {\"name\": \"b\", \"exec\": [\"echo\", \"many\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_str_eq(exec_block_reason(root(&f)), "reduce sum: step \"b\" did not print a number");
    fx_done(&f);
}
END_TEST

START_TEST(map_reduce_merge_concat_count)
{
    struct fixture f;
    char *r;

    fx_init(&f, 0,
            "{\"strategy\": \"map_reduce\", \"reduce\": \"merge\", \"steps\": ["
            " {\"name\": \"a\", \"shell\": \"echo '{\\\"x\\\": 1, \\\"y\\\": 1}'\"},"
            " {\"name\": \"b\", \"shell\": \"echo '{\\\"y\\\": 2}'\", \"result\": \"json\"}]}");
    fx_run(&f);
    r = result_text(&f);
    ck_assert_str_eq(r, "{\"x\":1,\"y\":2}");
    free(r);
    fx_done(&f);

    fx_init(&f, 0,
            "{\"strategy\": \"map_reduce\", \"reduce\": \"concat\", \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"echo\", \"[1, 2]\"]},"
            " {\"name\": \"b\", \"exec\": [\"echo\", \"[3]\"]}]}");
    fx_run(&f);
    r = result_text(&f);
    ck_assert_str_eq(r, "[1,2,3]");
    free(r);
    fx_done(&f);

    fx_init(&f, 0,
            "{\"strategy\": \"map_reduce\", \"reduce\": \"count\", \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"true\"]}, {\"name\": \"b\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    r = result_text(&f);
    ck_assert_str_eq(r, "2");
    free(r);
    fx_done(&f);
}
END_TEST

START_TEST(collect_always_completes)
{
    struct fixture f;
    cJSON *r, *bad;

    fx_init(&f, 0,
            "{\"strategy\": \"collect\", \"steps\": ["
            " {\"name\": \"good\", \"exec\": [\"echo\", \"fine\"]},"
            " {\"name\": \"bad\", \"shell\": \"exit 9\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    r = exec_block_result(root(&f));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "good"), "result")->valuestring,
                     "fine");
    bad = cJSON_GetObjectItem(r, "bad");
    ck_assert_str_eq(cJSON_GetObjectItem(bad, "status")->valuestring, "failed");
    ck_assert_str_eq(cJSON_GetObjectItem(bad, "error")->valuestring, "exit 9");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(bad, "duration_ms")));
    cJSON_Delete(r);
    fx_done(&f);
}
END_TEST

START_TEST(max_fail_percent_budget)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"max_fail_percent\": 25, \"steps\": [{\"name\": \"a\", \"exec\": [\"false\"]},"
            " {\"name\": \"b\", \"exec\": [\"true\"]}, {\"name\": \"c\", \"exec\": [\"true\"]},"
            " {\"name\": \"d\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    fx_done(&f);

    fx_init(&f, 0,
            "{\"max_fail_percent\": 25, \"steps\": [{\"name\": \"a\", \"exec\": [\"false\"]},"
            " {\"name\": \"b\", \"exec\": [\"false\"]}, {\"name\": \"c\", \"exec\": [\"true\"]},"
            " {\"name\": \"d\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    fx_done(&f);
}
END_TEST

START_TEST(nested_blocks)
{
    struct fixture f;
    const struct exec_block *inner;
    char *r;

    fx_init(&f, 0,
            "{\"name\": \"outer\", \"steps\": ["
            " {\"name\": \"first\", \"exec\": [\"echo\", \"1\"]},"
            " {\"name\": \"tests\", \"depends_on\": [\"first\"], \"parallel\": {"
            "   \"strategy\": \"collect\", \"steps\": ["
            "     {\"name\": \"unit\", \"exec\": [\"echo\", \"u\"]},"
            "     {\"name\": \"lint\", \"exec\": [\"false\"]}]}}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    inner = exec_step_child(step(&f, "tests"));
    ck_assert_ptr_nonnull(inner);
    ck_assert_str_eq(exec_block_path(inner), "outer/tests");
    r = result_text(&f);
    ck_assert_ptr_nonnull(
        strstr(r, "\"tests\":{\"unit\":{\"status\":\"succeeded\",\"result\":\"u\""));
    free(r);
    fx_done(&f);
}
END_TEST

START_TEST(nested_failure_fails_the_parent)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"inner\", \"parallel\": {\"steps\": ["
            "   {\"name\": \"x\", \"exec\": [\"false\"]}]}}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_step_status(step(&f, "inner")), EXEC_FAILED);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    fx_done(&f);
}
END_TEST

/* ---- concurrency ---- */

static unsigned max_seen(const char *path)
{
    char *text = tu_read_file(path), *s, *end;
    unsigned max = 0;

    ck_assert_msg(text != NULL, "no %s", path);
    for (s = text;; s = end) {
        unsigned long v = strtoul(s, &end, 10);

        if (end == s)
            break;
        if (v > max)
            max = (unsigned)v;
    }
    free(text);
    return max;
}

/* Each step registers itself, counts who else is running, waits a little, leaves. */
#define COUNTING_STEP(n)                                                                           \
    "{\"name\": \"s" #n "\", \"shell\": \"touch @D@/run." #n "; ls @D@ | grep -c '^run' >> "       \
    "@D@/seen; sleep 0.1; rm @D@/run." #n "\"}"

static const char counting_plan[] =
    "{\"max_concurrency\": @N@, \"steps\": [" COUNTING_STEP(1) "," COUNTING_STEP(2) "," COUNTING_STEP(3) "," COUNTING_STEP(
        4) "," COUNTING_STEP(5) "," COUNTING_STEP(6) "," COUNTING_STEP(7) "," COUNTING_STEP(8) "," COUNTING_STEP(9) "]}";

static void counting_run(unsigned max_procs, const char *block_limit, unsigned expect_max)
{
    struct fixture f;
    char *text = subst(counting_plan, "@N@", block_limit), *seen;
    unsigned m;

    fx_init(&f, max_procs, text);
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    seen = xasprintf("%s/seen", f.dir);
    m = max_seen(seen);
    ck_assert_msg(m <= expect_max, "%u steps ran at once, the limit is %u", m, expect_max);
    ck_assert_msg(m >= 2, "the steps never overlapped (max %u)", m);
    free(seen);
    free(text);
    fx_done(&f);
}

START_TEST(max_concurrency_is_never_exceeded)
{
    counting_run(0, "3", 3);
}
END_TEST

START_TEST(global_process_cap)
{
    counting_run(2, "10", 2);
}
END_TEST

/* ---- retries ---- */

struct retries {
    unsigned n;
    double delays[16];
};

static int on_retry(const struct bus_event *ev, void *arg, struct err *err)
{
    struct retries *r = arg;

    if (r->n < 16)
        r->delays[r->n] = cJSON_GetObjectItem(ev->payload, "delay_ms")->valuedouble;
    r->n++;
    return 0;
}

/* Drive a run whose retries wait on the fake clock: advance it whenever nothing runs. */
static void run_with_backoff(struct fixture *f, uint64_t step_ms)
{
    unsigned guard = 0;

    fx_start(f);
    while (!f->done && guard++ < 10000) {
        if (executor_procs(f->ex) == 0)
            loop_fake_advance(f->loop, step_ms);
        loop_run_once(f->loop, executor_procs(f->ex) > 0);
    }
    ck_assert(f->done);
}

START_TEST(retry_transient_until_success)
{
    struct fixture f;
    struct retries r = {0};
    unsigned i;

    fx_init(&f, 0,
            "{\"retry\": {\"max_attempts\": 5, \"backoff\": {\"base_seconds\": 0.1, "
            "\"cap_seconds\": 0.3},"
            " \"retry_on\": [\"exit:75\"]}, \"steps\": [{\"name\": \"flaky\", \"shell\":"
            " \"n=$(cat @D@/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > @D@/n; [ $n -ge 4 ] || "
            "exit 75\"}]}");
    bus_subscribe(f.bus, "executor.step.retrying", on_retry, &r);
    run_with_backoff(&f, 10);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "flaky")), 4);
    ck_assert_uint_eq(r.n, 3);
    /* Full jitter under an exponential bound with a cap: 100, 200, 300 (capped). */
    ck_assert(r.delays[0] >= 0 && r.delays[0] <= 100);
    ck_assert(r.delays[1] >= 0 && r.delays[1] <= 200);
    ck_assert(r.delays[2] >= 0 && r.delays[2] <= 300);
    for (i = 0; i < 3; i++)
        ck_assert(r.delays[i] == (double)(uint64_t)r.delays[i]);
    fx_done(&f);
}
END_TEST

START_TEST(retry_gives_up_after_max_attempts)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"retry\": {\"max_attempts\": 3, \"retry_on\": [\"exit\"]}, \"steps\": ["
            " {\"name\": \"always\", \"shell\": \"exit 1\"}]}");
    run_with_backoff(&f, 50);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "always")), 3);
    fx_done(&f);
}
END_TEST

START_TEST(retry_only_transient_failures)
{
    struct fixture f;

    /* exit 1 is not in the default retry_on (timeout, connect, exit:75). */
    fx_init(&f, 0,
            "{\"retry\": {\"max_attempts\": 5}, \"steps\": [{\"name\": \"fatal\", \"exec\": "
            "[\"false\"]}]}");
    run_with_backoff(&f, 50);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "fatal")), 1);
    fx_done(&f);

    /* A program that does not exist is never retried, whatever retry_on says. */
    fx_init(&f, 0,
            "{\"retry\": {\"max_attempts\": 5, \"retry_on\": [\"exit\", \"signal\", \"timeout\"]},"
            " \"steps\": [{\"name\": \"missing\", \"exec\": "
            "[\"/nonexistent/n3ctl-no-such-program\"]}]}");
    run_with_backoff(&f, 50);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "missing")), 1);
    ck_assert_int_eq(exec_step_status(step(&f, "missing")), EXEC_FAILED);
    ck_assert_ptr_nonnull(strstr(exec_step_reason(step(&f, "missing")), "no such program"));
    fx_done(&f);
}
END_TEST

START_TEST(retry_on_timeout)
{
    struct fixture f;
    char *marker;

    fx_init(
        &f, 0,
        "{\"retry\": {\"max_attempts\": 2, \"backoff\": {\"base_seconds\": 0, \"cap_seconds\": 0}},"
        " \"steps\": [{\"name\": \"hang\", \"timeout_seconds\": 1,"
        " \"shell\": \"if [ -e @D@/once ]; then echo second; else touch @D@/once; exec sleep 1000; "
        "fi\"}]}");
    marker = xasprintf("%s/once", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, marker, REAL_WAIT_MS));
    loop_fake_advance(f.loop, 1000);
    while (!f.done) {
        loop_run_once(f.loop, true);
        if (executor_procs(f.ex) == 0)
            loop_fake_advance(f.loop, 0);
    }
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "hang")), 2);
    free(marker);
    fx_done(&f);
}
END_TEST

/* ---- stopping ---- */

START_TEST(cancel_leaves_no_process)
{
    struct fixture f;
    struct pids p = {{0}, 0};
    char *marker, *pidfile;
    pid_t leader;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"tree\", \"shell\":"
            " \"sleep 1000 & echo $! > @D@/pids; sleep 1000 & echo $! >> @D@/pids;"
            " touch @D@/ready; wait\"}, {\"name\": \"later\", \"depends_on\": [\"tree\"], "
            "\"exec\": [\"true\"]}]}");
    marker = xasprintf("%s/ready", f.dir);
    pidfile = xasprintf("%s/pids", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, marker, REAL_WAIT_MS));
    leader = exec_step_pid(step(&f, "tree"));
    ck_assert_int_gt(leader, 0);
    read_pids(pidfile, &p);
    ck_assert_uint_eq(p.n, 2);
    executor_cancel(f.ex, "test cancel");
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_CANCELLED);
    ck_assert_int_eq(exec_step_status(step(&f, "tree")), EXEC_CANCELLED);
    ck_assert_int_eq(exec_step_status(step(&f, "later")), EXEC_CANCELLED);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "later")), 0);
    /* We reaped our child: no zombie of ours. */
    ck_assert_msg(kill(leader, 0) == -1 && errno == ESRCH, "the step's process is still there");
    /* Its children got the group's TERM. */
    p.v[p.n++] = leader;
    ck_assert_msg(tu_run_until(f.loop, all_dead, &p, REAL_WAIT_MS),
                  "a process of the step is alive");
    {
        const struct exec_step *stopped[4];

        ck_assert_uint_eq(executor_interrupted(f.ex, stopped, 4), 1);
        ck_assert_str_eq(exec_step_name(stopped[0]), "tree");
    }
    free(marker);
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(cancel_kills_what_ignores_term)
{
    struct fixture f;
    struct pids p = {{0}, 0};
    char *marker, *pidfile;

    fx_init(&f, 0,
            "{\"kill_grace_seconds\": 3, \"steps\": [{\"name\": \"stubborn\", \"shell\":"
            " \"trap '' TERM; sleep 1000 & echo $! > @D@/pids; echo $$ >> @D@/pids; touch "
            "@D@/ready; wait\"}]}");
    marker = xasprintf("%s/ready", f.dir);
    pidfile = xasprintf("%s/pids", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, marker, REAL_WAIT_MS));
    read_pids(pidfile, &p);
    executor_cancel(f.ex, "test cancel");
    /* TERM is ignored: nothing ends before the grace period is over. */
    ck_assert(!tu_run_until(f.loop, is_done, &f, 300));
    ck_assert(!all_dead(&p));
    loop_fake_advance(f.loop, 3000);
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    ck_assert_int_eq(exec_step_signal(step(&f, "stubborn")), SIGKILL);
    ck_assert(tu_run_until(f.loop, all_dead, &p, REAL_WAIT_MS));
    free(marker);
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(leftovers_of_a_finished_step_are_stopped)
{
    struct fixture f;
    struct pids p = {{0}, 0};
    char *pidfile;

    /* The background sleep holds no pipe: the step ends at once, its leftover gets TERM. */
    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"bg\", \"shell\":"
            " \"sleep 1000 >/dev/null 2>&1 & echo $! > @D@/pids\"}]}");
    pidfile = xasprintf("%s/pids", f.dir);
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    read_pids(pidfile, &p);
    ck_assert(tu_run_until(f.loop, all_dead, &p, REAL_WAIT_MS));
    free(pidfile);
    fx_done(&f);
}
END_TEST

/* ---- the DAG ---- */

START_TEST(depends_on_orders_steps)
{
    struct fixture f;
    char *log, *text;

    fx_init(
        &f, 0,
        "{\"max_concurrency\": 10, \"steps\": ["
        " {\"name\": \"c\", \"depends_on\": [\"b\"], \"shell\": \"echo c >> @D@/log\"},"
        " {\"name\": \"b\", \"depends_on\": [\"a\"], \"shell\": \"echo b >> @D@/log\"},"
        " {\"name\": \"a\", \"shell\": \"sleep 0.05; echo a >> @D@/log\"},"
        " {\"name\": \"d\", \"depends_on\": [\"a\", \"c\"], \"shell\": \"echo d >> @D@/log\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
    log = xasprintf("%s/log", f.dir);
    text = tu_read_file(log);
    ck_assert_str_eq(text, "a\nb\nc\nd\n");
    free(text);
    free(log);
    fx_done(&f);
}
END_TEST

START_TEST(failed_dependency_cancels_dependents)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"a\", \"exec\": [\"false\"]},"
            " {\"name\": \"b\", \"depends_on\": [\"a\"], \"exec\": [\"true\"]},"
            " {\"name\": \"c\", \"depends_on\": [\"b\"], \"exec\": [\"true\"]},"
            " {\"name\": \"free\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_int_eq(exec_step_status(step(&f, "b")), EXEC_CANCELLED);
    ck_assert_int_eq(exec_step_status(step(&f, "c")), EXEC_CANCELLED);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "c")), 0);
    ck_assert_str_eq(exec_step_reason(step(&f, "b")), "cancelled: depends on \"a\", which failed");
    ck_assert_str_eq(exec_step_reason(step(&f, "c")),
                     "cancelled: depends on \"b\", which was cancelled");
    ck_assert_int_eq(exec_step_status(step(&f, "free")), EXEC_SUCCEEDED);
    fx_done(&f);
}
END_TEST

/* ---- output, environment, json ---- */

START_TEST(output_is_bounded)
{
    struct fixture f;
    size_t len;
    uint64_t total;
    const char *out;

    fx_init(&f, 0,
            "{\"output_limit_bytes\": 4096, \"steps\": [{\"name\": \"loud\", \"shell\":"
            " \"head -c 3000000 /dev/zero | tr '\\\\0' x; echo END\"}]}");
    fx_run(&f);
    out = exec_step_output(step(&f, "loud"), PROC_STDOUT, &len, &total);
    ck_assert_uint_eq(len, 4096);
    ck_assert_uint_eq(total, 3000004);
    ck_assert_int_eq(memcmp(out + len - 4, "END\n", 4), 0);
    fx_done(&f);
}
END_TEST

START_TEST(env_and_cwd)
{
    struct fixture f;
    char *r, *want;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"e\", \"env\": {\"N3_TEST_VAR\": \"a b;c\", \"HOME\": "
            "\"/nowhere\"},"
            " \"cwd\": \"@D@\", \"shell\": \"printf '%s|%s|%s' \\\"$N3_TEST_VAR\\\" \\\"$HOME\\\" "
            "\\\"$(pwd)\\\"\"}]}");
    fx_run(&f);
    r = result_text(&f);
    want = xasprintf("{\"e\":\"a b;c|/nowhere|%s\"}", f.dir);
    ck_assert_str_eq(r, want);
    free(want);
    free(r);
    fx_done(&f);
}
END_TEST

START_TEST(json_result_must_parse)
{
    struct fixture f;

    fx_init(
        &f, 0,
        "{\"steps\": [{\"name\": \"j\", \"result\": \"json\", \"exec\": [\"echo\", \"{nope\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_step_status(step(&f, "j")), EXEC_FAILED);
    ck_assert_ptr_nonnull(strstr(exec_step_reason(step(&f, "j")), "not valid JSON"));
    fx_done(&f);
}
END_TEST

/* Exactly JSON: cJSON's parser read 010 as 10 and "a\u0000b" as "a", and the step succeeded. */
START_TEST(json_result_is_exactly_json)
{
    static const char *const bad[] = {"zero", "nul", "tab", "escape"};
    struct fixture f;
    size_t i;

    fx_init(&f, 0,
            "{\"steps\": ["
            "{\"name\": \"zero\", \"result\": \"json\", \"exec\": [\"printf\", \"%s\", "
            "\"{\\\"n\\\": 010}\"]},"
            "{\"name\": \"nul\", \"result\": \"json\", \"exec\": [\"printf\", \"%s\", "
            "\"{\\\"s\\\": \\\"a\\\\u0000b\\\"}\"]},"
            "{\"name\": \"tab\", \"result\": \"json\", \"exec\": [\"printf\", \"%s\", "
            "\"{\\\"s\\\": \\\"a\\tb\\\"}\"]},"
            "{\"name\": \"escape\", \"result\": \"json\", \"exec\": [\"printf\", \"%s\", "
            "\"[\\\"\\\\uZZZZ\\\"]\"]},"
            "{\"name\": \"ok\", \"result\": \"json\", \"exec\": [\"printf\", \"%s\", "
            "\"{\\\"s\\\": \\\"\\\\u00e9\\\", \\\"n\\\": [1, -0.5e3]}\"]}"
            "]}");
    fx_run(&f);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(exec_step_status(step(&f, bad[i])) == EXEC_FAILED, "step %s did not fail",
                      bad[i]);
        ck_assert_ptr_nonnull(strstr(exec_step_reason(step(&f, bad[i])), "not valid JSON"));
    }
    ck_assert_int_eq(exec_step_status(step(&f, "ok")), EXEC_SUCCEEDED);
    fx_done(&f);
}
END_TEST

START_TEST(metrics_and_traces)
{
    struct fixture f;
    struct metrics *m = metrics_new();
    struct trace *tr;
    struct exec_opts opts;
    struct err err;
    const char *labels_ok[] = {"succeeded"}, *labels_bad[] = {"failed"};
    const char *text = "{\"name\": \"p\", \"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]},"
                       " {\"name\": \"b\", \"exec\": [\"false\"]}]}";
    size_t i;
    bool saw_step = false;

    memset(&f, 0, sizeof f);
    f.loop = loop_new_fake(1700000000000u, 1);
    f.dir = tu_mkdtemp();
    tr = trace_new(f.loop, 100);
    ck_assert_int_eq(plan_load_string("t.json", text, strlen(text), &f.plan, &err), 0);
    memset(&opts, 0, sizeof opts);
    opts.metrics = m;
    opts.trace = tr;
    f.ex = executor_new(f.loop, f.plan, &opts);
    fx_run(&f);
    ck_assert(metric_value(metrics_find(m, "n3_tasks_total"), labels_ok) == 1);
    ck_assert(metric_value(metrics_find(m, "n3_tasks_total"), labels_bad) == 1);
    ck_assert(metric_value(metrics_find(m, "n3_task_duration_seconds"), NULL) == 2);
    ck_assert_uint_eq(trace_count(tr), 3);
    for (i = 0; i < trace_count(tr); i++) {
        const struct span *s = trace_get(tr, i);

        if (strcmp(span_name(s), "b") == 0) {
            saw_step = true;
            ck_assert_str_eq(span_status(s), "failed");
            ck_assert_str_eq(span_attr(s, "exit_code"), "1");
            ck_assert_str_ne(span_parent_id(s), "");
        }
    }
    ck_assert(saw_step);
    ck_assert_str_eq(span_name(trace_get(tr, 2)), "p");
    executor_free(f.ex);
    f.ex = NULL;
    trace_free(tr);
    metrics_free(m);
    f.bus = NULL;
    fx_done(&f);
}
END_TEST

/* ---- regressions found in review ---- */

START_TEST(json_results_are_whole_documents)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"j\", \"result\": \"json\", \"shell\": \"echo '{\\\"a\\\": "
            "1} and more'\"}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_step_status(step(&f, "j")), EXEC_FAILED);
    fx_done(&f);

    fx_init(&f, 0,
            "{\"strategy\": \"map_reduce\", \"reduce\": \"sum\", \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"echo\", \"12 apples\"]},"
            " {\"name\": \"b\", \"exec\": [\"echo\", \"1\"]}]}");
    fx_run(&f);
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    ck_assert_str_eq(exec_block_reason(root(&f)), "reduce sum: step \"a\" did not print a number");
    fx_done(&f);
}
END_TEST

START_TEST(parallel_step_timeout)
{
    struct fixture f;
    char *marker;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"nest\", \"timeout_seconds\": 2, \"parallel\": {\"steps\": ["
            " {\"name\": \"x\", \"shell\": \"touch @D@/x; exec sleep 1000\"}]}}]}");
    marker = xasprintf("%s/x", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, marker, REAL_WAIT_MS));
    loop_fake_advance(f.loop, 2000);
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    ck_assert_int_eq(exec_step_status(step(&f, "nest")), EXEC_TIMED_OUT);
    ck_assert_str_eq(exec_step_reason(step(&f, "nest")), "timed out after 2s");
    ck_assert_int_eq(exec_block_status(root(&f)), EXEC_FAILED);
    free(marker);
    fx_done(&f);
}
END_TEST

START_TEST(fail_fast_names_the_failed_step)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"fail_fast\": true, \"steps\": [{\"name\": \"a\", \"shell\": \"exit 3\"},"
            " {\"name\": \"b\", \"depends_on\": [\"a\"], \"exec\": [\"true\"]}]}");
    fx_run(&f);
    ck_assert_str_eq(exec_block_reason(root(&f)), "step \"a\" exit 3 (fail_fast)");
    fx_done(&f);
}
END_TEST

START_TEST(exit_in_time_is_not_a_timeout)
{
    struct fixture f;
    struct pids p = {{0}, 0};
    char *pidfile;

    /* The command exits at once; a leftover that ignores TERM keeps its stdout open. */
    fx_init(&f, 0,
            "{\"kill_grace_seconds\": 5, \"steps\": [{\"name\": \"s\", \"timeout_seconds\": 1,"
            " \"shell\": \"trap '' TERM; sleep 1000 & echo $! > @D@/pid; exit 0\"}]}");
    pidfile = xasprintf("%s/pid", f.dir);
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, file_exists_pred, pidfile, REAL_WAIT_MS));
    read_pids(pidfile, &p);
    ck_assert(!tu_run_until(f.loop, is_done, &f, 200));
    loop_fake_advance(f.loop, 1000); /* the step's timeout: the command is gone already */
    loop_fake_advance(f.loop, 4000); /* the grace period for its leftover */
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    ck_assert_int_eq(exec_step_status(step(&f, "s")), EXEC_SUCCEEDED);
    ck_assert_int_eq(exec_step_exit_code(step(&f, "s")), 0);
    ck_assert(tu_run_until(f.loop, all_dead, &p, REAL_WAIT_MS));
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(process_slots_are_first_come_first_served)
{
    struct fixture f;
    char *log, *text;

    /* With one process slot, steps start in plan order, whatever finishes first. */
    fx_init(&f, 1,
            "{\"max_concurrency\": 10, \"steps\": ["
            " {\"name\": \"s1\", \"shell\": \"echo 1 >> @D@/log\"},"
            " {\"name\": \"s2\", \"shell\": \"echo 2 >> @D@/log\"},"
            " {\"name\": \"s3\", \"shell\": \"echo 3 >> @D@/log\"},"
            " {\"name\": \"s4\", \"shell\": \"echo 4 >> @D@/log\"},"
            " {\"name\": \"s5\", \"shell\": \"echo 5 >> @D@/log\"},"
            " {\"name\": \"s6\", \"shell\": \"echo 6 >> @D@/log\"},"
            " {\"name\": \"s7\", \"shell\": \"echo 7 >> @D@/log\"},"
            " {\"name\": \"s8\", \"shell\": \"echo 8 >> @D@/log\"},"
            " {\"name\": \"s9\", \"shell\": \"echo 9 >> @D@/log\"},"
            " {\"name\": \"s10\", \"shell\": \"echo 10 >> @D@/log\"},"
            " {\"name\": \"s11\", \"shell\": \"echo 11 >> @D@/log\"},"
            " {\"name\": \"s12\", \"shell\": \"echo 12 >> @D@/log\"}]}");
    fx_run(&f);
    log = xasprintf("%s/log", f.dir);
    text = tu_read_file(log);
    ck_assert_str_eq(text, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n");
    free(text);
    free(log);
    fx_done(&f);
}
END_TEST

START_TEST(output_is_valid_utf8_in_json)
{
    struct fixture f;
    cJSON *doc;
    char *text;

    /* A tail cut in the middle of a character, and bytes that are not UTF-8 at all. */
    fx_init(&f, 0,
            "{\"output_limit_bytes\": 1024, \"steps\": [{\"name\": \"bin\", \"shell\":"
            " \"printf '\\\\303\\\\251'; printf 'x%.0s' $(seq 1 1021); printf '\\\\377\\\\n'\"}]}");
    fx_run(&f);
    doc = executor_report(f.ex);
    text = cJSON_PrintUnformatted(doc);
    /* U+FFFD for the half character at the start of the tail and for the 0xff byte. */
    ck_assert_ptr_nonnull(strstr(text, "\"tail\":\"\xef\xbf\xbdxx"));
    ck_assert_ptr_nonnull(strstr(text, "\xef\xbf\xbd\\n\""));
    cJSON_free(text);
    cJSON_Delete(doc);
    fx_done(&f);
}
END_TEST

/* ---- steps that never ran: the report, the metrics, the spans and the events agree ---- */

/* What the report says, tallied for the metrics and the events. */
struct tally {
    unsigned tasks[EXEC_NSTATUS]; /* commands (exec, shell, remote), by status */
    unsigned steps[EXEC_NSTATUS]; /* every step, nested blocks included, by status */
    unsigned ran;                 /* commands that made at least one attempt */
    unsigned blocks;
    unsigned spans;
};

static const struct span *find_span(struct fixture *f, const char *key, const char *path,
                                    const char *name)
{
    const struct span *found = NULL;
    size_t i;

    for (i = 0; i < trace_count(f->trace); i++) {
        const struct span *s = trace_get(f->trace, i);
        const char *block = span_attr(s, "block");

        if (span_attr(s, key) == NULL || block == NULL || strcmp(block, path) != 0 ||
            strcmp(span_name(s), name) != 0)
            continue;
        ck_assert_msg(found == NULL, "two spans for %s in %s", name, path);
        found = s;
    }
    ck_assert_msg(found != NULL, "no span for %s in %s", name, path);
    return found;
}

static int status_index(const char *name)
{
    int st;

    for (st = 0; st < EXEC_NSTATUS; st++) {
        if (strcmp(exec_status_name(st), name) == 0)
            return st;
    }
    ck_abort_msg("no status %s", name);
    return -1;
}

/* Every step and block of the report has its span, with the same status and reason, under the
 * span of its block; tally what the metrics and events must say. */
static void agree_block(struct fixture *f, const cJSON *block, const char *parent_span,
                        struct tally *t)
{
    const char *path = cJSON_GetObjectItem(block, "path")->valuestring;
    const char *status = cJSON_GetObjectItem(block, "status")->valuestring;
    const char *reason = cJSON_GetObjectItem(block, "reason")->valuestring;
    const struct span *bs =
        find_span(f, "strategy", path, cJSON_GetObjectItem(block, "name")->valuestring);
    const cJSON *st;

    ck_assert_str_eq(span_status(bs), status);
    ck_assert_str_eq(span_parent_id(bs), parent_span);
    if (reason[0] != '\0')
        ck_assert_str_eq(span_attr(bs, "reason"), reason);
    t->blocks++;
    t->spans++;
    cJSON_ArrayForEach(st, cJSON_GetObjectItem(block, "steps"))
    {
        const char *name = cJSON_GetObjectItem(st, "name")->valuestring;
        const char *sstatus = cJSON_GetObjectItem(st, "status")->valuestring;
        const cJSON *sreason = cJSON_GetObjectItem(st, "reason");
        const cJSON *child = cJSON_GetObjectItem(st, "block");
        const struct span *ss = find_span(f, "kind", path, name);
        int k = status_index(sstatus);

        ck_assert_msg(strcmp(span_status(ss), sstatus) == 0,
                      "%s/%s: the span says %s, the report %s", path, name, span_status(ss),
                      sstatus);
        ck_assert_str_eq(span_parent_id(ss), span_id(bs));
        if (sreason != NULL)
            ck_assert_str_eq(span_attr(ss, "reason"), sreason->valuestring);
        else
            ck_assert_ptr_null(span_attr(ss, "reason"));
        t->spans++;
        t->steps[k]++;
        if (strcmp(cJSON_GetObjectItem(st, "kind")->valuestring, "parallel") == 0) {
            ck_assert_msg(child != NULL, "%s/%s: a nested block that is not in the report", path,
                          name);
            agree_block(f, child, span_id(ss), t);
            continue;
        }
        t->tasks[k]++;
        if (cJSON_GetObjectItem(st, "attempts")->valueint > 0)
            t->ran++;
    }
}

/* The report, the metrics, the spans and the events say the same about every step. */
static void assert_reported_everywhere(struct fixture *f)
{
    struct metric_family *tasks = metrics_find(f->metrics, "n3_tasks_total");
    struct tally t;
    cJSON *doc = executor_report(f->ex);
    int st;

    memset(&t, 0, sizeof t);
    agree_block(f, cJSON_GetObjectItem(doc, "block"), "", &t);
    cJSON_Delete(doc);
    ck_assert_uint_eq(trace_count(f->trace), t.spans);
    for (st = EXEC_SUCCEEDED; st < EXEC_NSTATUS; st++) {
        const char *labels[] = {exec_status_name(st)};

        ck_assert_msg(metric_value(tasks, labels) == t.tasks[st],
                      "n3_tasks_total{status=\"%s\"} is %g, the report has %u", labels[0],
                      metric_value(tasks, labels), t.tasks[st]);
        ck_assert_msg(f->step_events[st] == t.steps[st],
                      "%u executor.step.finished events with status %s, the report has %u",
                      f->step_events[st], labels[0], t.steps[st]);
    }
    ck_assert_msg(metric_value(metrics_find(f->metrics, "n3_task_duration_seconds"), NULL) == t.ran,
                  "n3_task_duration_seconds has %g observations, %u commands ran",
                  metric_value(metrics_find(f->metrics, "n3_task_duration_seconds"), NULL), t.ran);
    ck_assert(metric_value(metrics_find(f->metrics, "n3_active_tasks"), NULL) == 0);
    ck_assert_uint_eq(f->block_events, t.blocks);
}

static double tasks_total(struct fixture *f, const char *status)
{
    const char *labels[] = {status};

    return metric_value(metrics_find(f->metrics, "n3_tasks_total"), labels);
}

static const struct span *step_span(struct fixture *f, const char *path, const char *name)
{
    return find_span(f, "kind", path, name);
}

/* a runs until it is stopped; b and c wait for a slot: of their block (max_concurrency 1) when
 * procs is 0, of the process cap (-p 1) when it is 1. block_keys: more keys of the block. */
static void queued_start(struct fixture *f, unsigned procs, const char *block_keys)
{
    char *text = xasprintf("{%s\"max_concurrency\": %u, \"steps\": ["
                           " {\"name\": \"a\", \"shell\": \"touch @D@/a; exec sleep 1000\"},"
                           " {\"name\": \"b\", \"exec\": [\"true\"]},"
                           " {\"name\": \"c\", \"exec\": [\"true\"]}]}",
                           block_keys, procs == 0 ? 1 : 10);
    char *marker;

    fx_init(f, procs, text);
    free(text);
    marker = xasprintf("%s/a", f->dir);
    fx_start(f);
    ck_assert(tu_run_until(f->loop, file_exists_pred, marker, REAL_WAIT_MS));
    free(marker);
}

START_TEST(queued_steps_are_cancelled_not_timed_out)
{
    struct fixture f;
    unsigned procs;

    /* The block's time is up while b and c wait for a slot. */
    for (procs = 0; procs < 2; procs++) {
        queued_start(&f, procs, "\"timeout_seconds\": 1, ");
        loop_fake_advance(f.loop, 1000);
        ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
        ck_assert_int_eq(exec_block_status(root(&f)), EXEC_TIMED_OUT);
        ck_assert_int_eq(exec_step_status(step(&f, "a")), EXEC_TIMED_OUT);
        ck_assert_int_eq(exec_step_status(step(&f, "b")), EXEC_CANCELLED);
        ck_assert_int_eq(exec_step_status(step(&f, "c")), EXEC_CANCELLED);
        ck_assert_uint_eq(exec_step_attempts(step(&f, "b")), 0);
        /* Steps that never ran are in the metrics and the traces too. */
        assert_reported_everywhere(&f);
        ck_assert(tasks_total(&f, "timed_out") == 1);
        ck_assert(tasks_total(&f, "cancelled") == 2);
        ck_assert_str_eq(span_attr(step_span(&f, "test", "b"), "reason"),
                         "timed out: the block ran past its timeout of 1s");
        fx_done(&f);
    }
}
END_TEST

START_TEST(never_ran_dependency_failed)
{
    struct fixture f;
    const struct span *sp;

    fx_init(&f, 0,
            "{\"steps\": [{\"name\": \"a\", \"exec\": [\"false\"]},"
            " {\"name\": \"b\", \"depends_on\": [\"a\"], \"exec\": [\"true\"]},"
            " {\"name\": \"nest\", \"depends_on\": [\"b\"], \"parallel\": {\"strategy\": "
            "\"collect\", \"steps\": [{\"name\": \"x\", \"exec\": [\"true\"]},"
            "   {\"name\": \"y\", \"exec\": [\"true\"]}]}},"
            " {\"name\": \"free\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    assert_reported_everywhere(&f);
    /* b, and x and y of the block that never started. */
    ck_assert(tasks_total(&f, "cancelled") == 3);
    ck_assert(tasks_total(&f, "failed") == 1);
    ck_assert(tasks_total(&f, "succeeded") == 1);
    sp = step_span(&f, "test", "b");
    ck_assert_str_eq(span_status(sp), "cancelled");
    ck_assert_str_eq(span_attr(sp, "reason"), "cancelled: depends on \"a\", which failed");
    ck_assert_str_eq(span_attr(sp, "attempts"), "0");
    ck_assert_uint_eq(span_end_us(sp), span_start_us(sp));
    ck_assert_uint_eq(exec_step_duration_us(step(&f, "b")), 0);
    sp = step_span(&f, "test/nest", "x");
    ck_assert_str_eq(span_status(sp), "cancelled");
    ck_assert_str_eq(span_attr(sp, "reason"), "cancelled: depends on \"b\", which was cancelled");
    ck_assert_int_eq(exec_block_status(exec_step_child(step(&f, "nest"))), EXEC_CANCELLED);
    {
        const char *labels[] = {"collect", "cancelled"};

        ck_assert(metric_value(metrics_find(f.metrics, "n3_blocks_total"), labels) == 1);
    }
    fx_done(&f);
}
END_TEST

START_TEST(never_ran_fail_fast)
{
    struct fixture f;

    fx_init(&f, 0,
            "{\"fail_fast\": true, \"max_concurrency\": 1, \"steps\": ["
            " {\"name\": \"a\", \"exec\": [\"false\"]}, {\"name\": \"b\", \"exec\": [\"true\"]},"
            " {\"name\": \"c\", \"exec\": [\"true\"]}]}");
    fx_run(&f);
    assert_reported_everywhere(&f);
    ck_assert(tasks_total(&f, "cancelled") == 2);
    ck_assert_uint_eq(exec_step_attempts(step(&f, "c")), 0);
    ck_assert_str_eq(span_attr(step_span(&f, "test", "c"), "reason"),
                     "cancelled: the block \"test\" has failed");
    fx_done(&f);
}
END_TEST

START_TEST(never_ran_any_success_and_race)
{
    static const char *const strategies[] = {"any_success", "race"};
    struct fixture f;
    size_t i;

    for (i = 0; i < 2; i++) {
        char *text = xasprintf("{\"strategy\": \"%s\", \"max_concurrency\": 1, \"steps\": ["
                               " {\"name\": \"a\", \"exec\": [\"echo\", \"won\"]},"
                               " {\"name\": \"b\", \"exec\": [\"true\"]},"
                               " {\"name\": \"c\", \"parallel\": {\"steps\": ["
                               "   {\"name\": \"x\", \"exec\": [\"true\"]}]}}]}",
                               strategies[i]);

        fx_init(&f, 0, text);
        fx_run(&f);
        assert_reported_everywhere(&f);
        ck_assert_int_eq(exec_block_status(root(&f)), EXEC_SUCCEEDED);
        ck_assert(tasks_total(&f, "succeeded") == 1);
        ck_assert(tasks_total(&f, "cancelled") == 2); /* b, and x in c */
        ck_assert_str_eq(span_attr(step_span(&f, "test/c", "x"), "reason"),
                         "cancelled: the block \"test\" already has its result");
        fx_done(&f);
        free(text);
    }
}
END_TEST

START_TEST(never_ran_queued_when_cancelled)
{
    struct fixture f;
    unsigned procs;

    /* The run is interrupted while b and c wait for a slot. */
    for (procs = 0; procs < 2; procs++) {
        queued_start(&f, procs, "");
        executor_cancel(f.ex, "interrupted");
        ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
        assert_reported_everywhere(&f);
        ck_assert(tasks_total(&f, "cancelled") == 3);
        ck_assert_uint_eq(exec_step_attempts(step(&f, "b")), 0);
        ck_assert_str_eq(span_attr(step_span(&f, "test", "c"), "reason"), "cancelled: interrupted");
        /* Only a ran: the time the others waited is not a run time. */
        ck_assert(metric_value(metrics_find(f.metrics, "n3_task_duration_seconds"), NULL) == 1);
        fx_done(&f);
    }
}
END_TEST

/* A remote runner on the loop: "true" succeeds at once, anything else runs until stopped. */
struct fake_attempt {
    struct loop *loop;
    struct exec_attempt *a;
    bool ok, ending;
};

static void fake_end(void *arg)
{
    struct fake_attempt *fa = arg;
    struct exec_outcome o;

    memset(&o, 0, sizeof o);
    o.exit_code = fa->ok ? 0 : -1;
    o.term_signal = fa->ok ? 0 : SIGTERM;
    exec_attempt_done(fa->a, &o);
    free(fa);
}

static int fake_start(void *arg, struct exec_attempt *a, const struct plan_step *ps,
                      struct retry_failure *f, struct err *err)
{
    struct fake_attempt *fa = xcalloc(1, sizeof *fa);

    fa->loop = arg;
    fa->a = a;
    fa->ok = strcmp(ps->command, "true") == 0;
    exec_attempt_set_data(a, fa, 0);
    if (fa->ok) {
        fa->ending = true;
        loop_defer(fa->loop, fake_end, fa);
    }
    return 0;
}

static void fake_stop(void *arg, struct exec_attempt *a, uint64_t grace_ms)
{
    struct fake_attempt *fa = exec_attempt_data(a);

    if (!fa->ending) {
        fa->ending = true;
        loop_defer(fa->loop, fake_end, fa);
    }
}

static bool fake_exited(void *arg, struct exec_attempt *a)
{
    return ((struct fake_attempt *)exec_attempt_data(a))->ending;
}

/* Every selector names the targets t1, t2, t3. */
static int three_targets(void *arg, const char *selector, char ***names, size_t *n, struct err *err)
{
    size_t i;

    for (i = 1; i <= 3; i++) {
        *names = xrealloc(*names, (*n + 2) * sizeof **names);
        (*names)[(*n)++] = xasprintf("t%zu", i);
        (*names)[*n] = NULL;
    }
    return 0;
}

static bool step_final(void *arg)
{
    return exec_status_final(exec_step_status(arg));
}

START_TEST(never_ran_remote)
{
    struct fixture f;
    struct exec_runner runner = {
        .name = "fake", .start = fake_start, .stop = fake_stop, .exited = fake_exited};

    /* web never starts (a failed); on db, t1 hangs while t2 and t3 wait for their turn. */
    runner.arg = NULL;
    memset(&f, 0, sizeof f);
    fx_init_remote(&f, 0,
                   "{\"steps\": [{\"name\": \"a\", \"exec\": [\"false\"]},"
                   " {\"name\": \"web\", \"depends_on\": [\"a\"],"
                   "  \"remote\": {\"targets\": \"all\", \"command\": \"true\"}},"
                   " {\"name\": \"ok\", \"remote\": {\"targets\": \"all\", \"command\": \"true\"}},"
                   " {\"name\": \"db\", \"remote\": {\"targets\": \"all\", \"max_concurrency\": 1,"
                   "  \"command\": \"hang\"}}]}",
                   three_targets, &runner);
    runner.arg = f.loop;
    fx_start(&f);
    ck_assert(tu_run_until(f.loop, step_final, (void *)step(&f, "a"), REAL_WAIT_MS));
    ck_assert(tu_run_until(f.loop, step_final, (void *)step(&f, "ok"), REAL_WAIT_MS));
    executor_cancel(f.ex, "interrupted");
    ck_assert(tu_run_until(f.loop, is_done, &f, REAL_WAIT_MS));
    assert_reported_everywhere(&f);
    /* ok's three targets ran; web's three never started, nor did db's t2 and t3. */
    ck_assert(tasks_total(&f, "succeeded") == 3);
    ck_assert(tasks_total(&f, "cancelled") == 6);
    ck_assert_str_eq(span_attr(step_span(&f, "test/web", "t2"), "reason"),
                     "cancelled: depends on \"a\", which failed");
    ck_assert_str_eq(span_attr(step_span(&f, "test/db", "t3"), "reason"), "cancelled: interrupted");
    fx_done(&f);
}
END_TEST

/* ---- reduces that cannot give a true result fail, and say which step and why ---- */

/* Run a map_reduce block of the given reduce over steps; return its status, *reason its reason. */
static enum exec_status reduce_run(const char *reduce, const char *steps, char **reason,
                                   char **result)
{
    struct fixture f;
    enum exec_status st;
    char *text = xasprintf("{\"output_limit_bytes\": 1024, \"strategy\": \"map_reduce\", "
                           "\"reduce\": \"%s\", \"steps\": [%s]}",
                           reduce, steps);

    fx_init(&f, 0, text);
    fx_run(&f);
    st = exec_block_status(root(&f));
    *reason = xstrdup(exec_block_reason(root(&f)));
    if (result != NULL)
        *result = result_text(&f);
    fx_done(&f);
    free(text);
    return st;
}

static void assert_reduce_fails(const char *reduce, const char *steps, const char *want)
{
    char *reason;

    ck_assert_int_eq(reduce_run(reduce, steps, &reason, NULL), EXEC_FAILED);
    ck_assert_str_eq(reason, want);
    free(reason);
}

START_TEST(reduce_sum_out_of_range_fails)
{
    char *reason, *result;

    /* Each is finite, the total is not: it was "result": null and succeeded. Values that large
     * are past the range where whole numbers are exact, so the first one stops the sum. */
    assert_reduce_fails("sum",
                        "{\"name\": \"a\", \"exec\": [\"echo\", \"1e308\"]},"
                        " {\"name\": \"b\", \"exec\": [\"echo\", \"1e308\"]}",
                        "reduce sum: step \"a\" printed 1e+308, past 9007199254740991 (2^53 - 1) "
                        "in size, where whole numbers stop being exact");
    assert_reduce_fails("sum",
                        "{\"name\": \"a\", \"exec\": [\"echo\", \"5\"]},"
                        " {\"name\": \"big\", \"exec\": [\"echo\", \"-1e999\"]}",
                        "reduce sum: step \"big\" printed a number beyond the range of a double; "
                        "a sum works within -9007199254740991..9007199254740991 (2^53 - 1)");
    /* Past 2^53 a whole number is rounded: 9007199254740993 would be added as ...992. */
    assert_reduce_fails("sum", "{\"name\": \"a\", \"exec\": [\"echo\", \"9007199254740993\"]}",
                        "reduce sum: step \"a\" printed 9007199254740992, past 9007199254740991 "
                        "(2^53 - 1) in size, where whole numbers stop being exact");
    assert_reduce_fails("sum",
                        "{\"name\": \"a\", \"exec\": [\"echo\", \"9007199254740000\"]},"
                        " {\"name\": \"b\", \"exec\": [\"echo\", \"1000\"]}",
                        "reduce sum: the total passes 9007199254740991 (2^53 - 1) in size at step "
                        "\"b\" (9007199254740000 + 1000), where whole numbers stop being exact");
    /* Up to the bound the total is exact. */
    ck_assert_int_eq(reduce_run("sum",
                                "{\"name\": \"a\", \"exec\": [\"echo\", \"-4503599627370000\"]},"
                                " {\"name\": \"b\", \"exec\": [\"echo\", \"-495\"]}",
                                &reason, &result),
                     EXEC_SUCCEEDED);
    ck_assert_str_eq(result, "-4503599627370495");
    free(reason);
    free(result);
}
END_TEST

START_TEST(reduce_of_a_cut_result_fails)
{
    /* 1500 x's: the kept tail (1024 bytes) is text too, and was joined as if it were all. */
    assert_reduce_fails("concat",
                        "{\"name\": \"a\", \"exec\": [\"echo\", \"first\"]},"
                        " {\"name\": \"b\", \"shell\": \"head -c 1500 /dev/zero | tr '\\\\0' x\"}",
                        "reduce concat: step \"b\" printed 1500 bytes and only the last 1024 are "
                        "kept (output_limit_bytes): its result would be cut short");
    /* Spaces, then a number: the tail still reads as 42. */
    assert_reduce_fails("sum", "{\"name\": \"n\", \"shell\": \"printf '%1500s42' ''\"}",
                        "reduce sum: step \"n\" printed 1502 bytes and only the last 1024 are kept "
                        "(output_limit_bytes): its result would be cut short");
}
END_TEST

START_TEST(reduce_merge_of_conflicting_kinds_fails)
{
    char *reason, *result;

    assert_reduce_fails(
        "merge",
        "{\"name\": \"a\", \"shell\": \"echo '{\\\"port\\\": 8080, \\\"x\\\": 1}'\"},"
        " {\"name\": \"b\", \"shell\": \"echo '{\\\"port\\\": \\\"eighty\\\"}'\"}",
        "reduce merge: key \"port\" is a number in step \"a\" and a string in step "
        "\"b\"; merge replaces a value only by one of the same kind");
    /* The same kind: the later step wins, true and false are both booleans. */
    ck_assert_int_eq(
        reduce_run("merge",
                   "{\"name\": \"a\", \"shell\": \"echo '{\\\"on\\\": true, \\\"n\\\": 1}'\"},"
                   " {\"name\": \"b\", \"shell\": \"echo '{\\\"on\\\": false, \\\"n\\\": 2}'\"}",
                   &reason, &result),
        EXEC_SUCCEEDED);
    ck_assert_str_eq(result, "{\"on\":false,\"n\":2}");
    free(reason);
    free(result);
}
END_TEST

START_TEST(reduce_concat_names_the_step_that_does_not_fit)
{
    assert_reduce_fails("concat",
                        "{\"name\": \"a\", \"exec\": [\"echo\", \"[1]\"]},"
                        " {\"name\": \"b\", \"result\": \"json\", \"exec\": [\"echo\", \"5\"]}",
                        "reduce concat: step \"b\" gave a number, neither a JSON array nor text; "
                        "concat joins results that are all arrays or all text");
    assert_reduce_fails(
        "concat",
        "{\"name\": \"a\", \"exec\": [\"echo\", \"hello\"]},"
        " {\"name\": \"b\", \"result\": \"json\", \"exec\": [\"echo\", \"[2]\"]}",
        "reduce concat: step \"a\" gave text, not a JSON array, and step \"b\" gave "
        "an array, not text; concat joins results that are all arrays or all text");
}
END_TEST

static Suite *executor_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *t;

    t = tcase_create("strategies");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, all_succeeds_with_every_result);
    tcase_add_test(t, all_with_one_failure_fails);
    tcase_add_test(t, all_fail_fast_stops_the_rest);
    tcase_add_test(t, block_timeout_is_timed_out);
    tcase_add_test(t, step_timeout_fails_an_all_block);
    tcase_add_test(t, any_success_cancels_the_rest);
    tcase_add_test(t, any_success_fails_only_when_all_fail);
    tcase_add_test(t, race_takes_the_first_to_finish);
    tcase_add_test(t, race_success_gives_the_winner_result);
    tcase_add_test(t, map_reduce_sum_and_errors);
    tcase_add_test(t, map_reduce_merge_concat_count);
    tcase_add_test(t, collect_always_completes);
    tcase_add_test(t, max_fail_percent_budget);
    tcase_add_test(t, nested_blocks);
    tcase_add_test(t, nested_failure_fails_the_parent);
    suite_add_tcase(s, t);

    t = tcase_create("concurrency");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, max_concurrency_is_never_exceeded);
    tcase_add_test(t, global_process_cap);
    suite_add_tcase(s, t);

    t = tcase_create("retry");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, retry_transient_until_success);
    tcase_add_test(t, retry_gives_up_after_max_attempts);
    tcase_add_test(t, retry_only_transient_failures);
    tcase_add_test(t, retry_on_timeout);
    suite_add_tcase(s, t);

    t = tcase_create("stopping");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, cancel_leaves_no_process);
    tcase_add_test(t, cancel_kills_what_ignores_term);
    tcase_add_test(t, leftovers_of_a_finished_step_are_stopped);
    suite_add_tcase(s, t);

    t = tcase_create("dag");
    tcase_add_test(t, depends_on_orders_steps);
    tcase_add_test(t, failed_dependency_cancels_dependents);
    suite_add_tcase(s, t);

    t = tcase_create("io");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, output_is_bounded);
    tcase_add_test(t, env_and_cwd);
    tcase_add_test(t, json_result_must_parse);
    tcase_add_test(t, json_result_is_exactly_json);
    tcase_add_test(t, metrics_and_traces);
    suite_add_tcase(s, t);

    t = tcase_create("regressions");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, json_results_are_whole_documents);
    tcase_add_test(t, queued_steps_are_cancelled_not_timed_out);
    tcase_add_test(t, parallel_step_timeout);
    tcase_add_test(t, fail_fast_names_the_failed_step);
    tcase_add_test(t, exit_in_time_is_not_a_timeout);
    tcase_add_test(t, process_slots_are_first_come_first_served);
    tcase_add_test(t, output_is_valid_utf8_in_json);
    suite_add_tcase(s, t);

    t = tcase_create("never_ran");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, never_ran_dependency_failed);
    tcase_add_test(t, never_ran_fail_fast);
    tcase_add_test(t, never_ran_any_success_and_race);
    tcase_add_test(t, never_ran_queued_when_cancelled);
    tcase_add_test(t, never_ran_remote);
    suite_add_tcase(s, t);

    t = tcase_create("reduce");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, reduce_sum_out_of_range_fails);
    tcase_add_test(t, reduce_of_a_cut_result_fails);
    tcase_add_test(t, reduce_merge_of_conflicting_kinds_fails);
    tcase_add_test(t, reduce_concat_names_the_step_that_does_not_fit);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(executor_suite());
}
