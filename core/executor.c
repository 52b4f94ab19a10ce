/* The executor: parallel blocks with strategies, concurrency, timeouts, retries and a DAG. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/bus.h"
#include "core/cfg.h"
#include "core/executor.h"
#include "core/json.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/retry.h"
#include "core/trace.h"
#include "core/xalloc.h"

extern char **environ;

struct exec_attempt {
    struct exec_step *step;
    const struct exec_runner *runner;
    void *data; /* the runner's */
    pid_t pid;
    bool active; /* started, and exec_attempt_done not called yet */
};

struct exec_step {
    const struct plan_step *ps;
    struct exec_block *block;
    struct exec_block *child;
    size_t index;
    enum exec_status status;
    unsigned attempts;
    size_t deps_left;
    bool begun;   /* holds a concurrency slot of its block */
    bool waiting; /* in the executor's queue for a process slot */
    bool in_backoff;
    bool timed_out;      /* this attempt hit the step timeout */
    bool stop_requested; /* stopped from outside: ends as stop_status */
    bool interrupted;    /* it was running when executor_cancel stopped it */
    bool started;        /* it began at some point (start_us is valid) */
    enum exec_status stop_status;
    char *stop_reason;
    uint64_t start_us, end_us;
    struct exec_attempt attempt;
    struct loop_timer *timer; /* step timeout, or backoff before the next attempt */
    int exit_code;
    int term_signal;
    struct retry_failure failure; /* of the last attempt that failed */
    char *reason;
    char *out, *err;
    size_t out_len, err_len;
    uint64_t out_total, err_total;
    struct span *span;
    struct exec_step *wnext;
};

struct exec_block {
    const struct plan_block *pb;
    struct executor *ex;
    struct exec_step *parent; /* NULL for the root */
    char *path;
    struct exec_step *steps;
    size_t n;
    size_t *ready; /* FIFO of step indices whose dependencies are met */
    size_t rhead, rtail;
    unsigned active; /* steps holding a concurrency slot */
    unsigned finished;
    unsigned failures;
    struct exec_counts counts;
    enum exec_status status;
    bool deciding; /* the outcome is known; the rest is being stopped */
    unsigned hold; /* > 0 while a loop over the steps must not finish the block */
    bool pumping, repump;
    enum exec_status decided;
    char *reason;
    struct exec_step *winner;
    bool ran;       /* it started (not the block of a step that ended before it began) */
    cJSON *reduced; /* map_reduce */
    uint64_t start_us, end_us;
    struct loop_timer *timer;
    struct span *span;
};

/* Step output kept for reports and results, over the whole run; past it, finished steps keep
 * only the last EXEC_OUTPUT_SHRUNK bytes of each stream. */
#define EXEC_OUTPUT_BUDGET (256u * 1024u * 1024u)
#define EXEC_OUTPUT_SHRUNK 1024u

struct executor {
    struct loop *loop;
    const struct plan *plan;
    struct exec_opts opts;
    char run_id[33];
    struct exec_block root;
    unsigned procs;
    size_t output_kept; /* bytes of step output held, against EXEC_OUTPUT_BUDGET */
    struct exec_step *wait_head, *wait_tail;
    bool waking, rewake;
    bool started, finished, cancelled;
    executor_done_fn done;
    void *done_arg;
    struct exec_runner local; /* runs exec and shell steps */
    uint64_t start_us, end_us;
    struct metric_family *m_tasks, *m_duration, *m_active, *m_retries, *m_errors, *m_blocks;
};

static const char *const status_names[EXEC_NSTATUS] = {
    "pending", "running", "succeeded", "failed", "timed_out", "cancelled",
};

const char *exec_status_name(enum exec_status s)
{
    return status_names[s];
}

bool exec_status_final(enum exec_status s)
{
    return s >= EXEC_SUCCEEDED;
}

static void block_start(struct exec_block *b);
static void block_end_unstarted(struct exec_step *parent);
static void block_span_open(struct exec_block *b);
static void block_decide(struct exec_block *b, enum exec_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void block_apply(struct exec_block *b, struct exec_step *s);
static void block_settle(struct exec_block *b);
static void step_stop(struct exec_step *s, enum exec_status status, const char *reason);
static void spawn_attempt(struct exec_step *s);
static void wake_waiting(struct executor *ex);

/* ---- events, metrics, traces ---- */

static void emit(struct executor *ex, const char *name, cJSON *payload)
{
    if (ex->opts.bus == NULL) {
        cJSON_Delete(payload);
        return;
    }
    bus_emit(ex->opts.bus, name, "executor", ex->run_id, payload);
}

static cJSON *step_payload(const struct exec_step *s)
{
    cJSON *p = cJSON_CreateObject();

    cJSON_AddStringToObject(p, "block", s->block->path);
    cJSON_AddStringToObject(p, "step", s->ps->name);
    cJSON_AddStringToObject(p, "status", status_names[s->status]);
    cJSON_AddNumberToObject(p, "attempt", s->attempts);
    return p;
}

static void set_status(struct exec_step *s, enum exec_status st)
{
    struct exec_block *b = s->block;

    b->counts.by_status[s->status]--;
    b->counts.by_status[st]++;
    s->status = st;
}

/* The number of processes running changed: n3_active_tasks follows it. */
static void procs_changed(struct executor *ex)
{
    if (ex->opts.metrics != NULL)
        metric_set(ex->m_active, NULL, ex->procs);
}

/* ---- the queue of steps waiting for a process slot ---- */

static void wait_push(struct executor *ex, struct exec_step *s)
{
    s->waiting = true;
    s->wnext = NULL;
    if (ex->wait_tail != NULL)
        ex->wait_tail->wnext = s;
    else
        ex->wait_head = s;
    ex->wait_tail = s;
}

static void wait_push_front(struct executor *ex, struct exec_step *s)
{
    s->waiting = true;
    s->wnext = ex->wait_head;
    ex->wait_head = s;
    if (ex->wait_tail == NULL)
        ex->wait_tail = s;
}

static void wait_remove(struct executor *ex, struct exec_step *s)
{
    struct exec_step **pp, *prev = NULL;

    for (pp = &ex->wait_head; *pp != NULL; prev = *pp, pp = &(*pp)->wnext) {
        if (*pp == s) {
            *pp = s->wnext;
            if (ex->wait_tail == s)
                ex->wait_tail = prev;
            break;
        }
    }
    s->waiting = false;
    s->wnext = NULL;
}

static bool proc_slot_free(const struct executor *ex)
{
    return ex->opts.max_procs == 0 || ex->procs < ex->opts.max_procs;
}

static void wake_waiting(struct executor *ex)
{
    struct exec_step *s;

    /* Re-entered from a spawn that failed at once: the outer call goes on. */
    if (ex->waking) {
        ex->rewake = true;
        return;
    }
    ex->waking = true;
    do {
        ex->rewake = false;
        while (ex->wait_head != NULL && proc_slot_free(ex)) {
            s = ex->wait_head;
            wait_remove(ex, s);
            spawn_attempt(s);
        }
    } while (ex->rewake);
    ex->waking = false;
}

/* ---- steps ---- */

static void step_free_output(struct exec_step *s)
{
    free(s->out);
    free(s->err);
    s->out = s->err = NULL;
    s->out_len = s->err_len = 0;
}

static void step_set_reason(struct exec_step *s, const char *reason)
{
    free(s->reason);
    s->reason = xstrdup(reason != NULL ? reason : "");
}

/* "5s", "1.5s", "1234.25s": seconds as the plan gave them. */
static void format_seconds(char *out, size_t len, uint64_t ms)
{
    size_t n;

    if (ms % 1000 == 0) {
        snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
        return;
    }
    snprintf(out, len, "%llu.%03u", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
    n = strlen(out);
    while (n > 0 && out[n - 1] == '0')
        out[--n] = '\0';
    snprintf(out + n, len - n, "s");
}

/* Start an attempt now, or queue it behind the steps already waiting for a process slot. */
static void run_or_queue(struct exec_step *s)
{
    struct executor *ex = s->block->ex;

    if (ex->wait_head == NULL && proc_slot_free(ex))
        spawn_attempt(s);
    else
        wait_push(ex, s);
}

static void step_end(struct exec_step *s, enum exec_status status, const char *reason);

/* Mark dependents of a step that did not succeed as cancelled, iteratively (chains can be long). */
static void cancel_dependents(struct exec_step *failed)
{
    struct exec_block *b = failed->block;
    struct exec_step **stack = xcalloc(b->n, sizeof *stack);
    size_t top = 0, i;

    stack[top++] = failed;
    b->hold++;
    while (top > 0) {
        struct exec_step *s = stack[--top];
        char *why = xasprintf("cancelled: depends on \"%s\", which %s", s->ps->name,
                              s->status == EXEC_CANCELLED   ? "was cancelled"
                              : s->status == EXEC_TIMED_OUT ? "timed out"
                                                            : "failed");

        for (i = 0; i < s->ps->ndependents; i++) {
            struct exec_step *d = &b->steps[s->ps->dependents[i]];

            if (d->status != EXEC_PENDING || d->begun)
                continue;
            step_end(d, EXEC_CANCELLED, why);
            block_apply(b, d);
            stack[top++] = d;
        }
        free(why);
    }
    b->hold--;
    free(stack);
}

/* Did the step run: a command that made an attempt, or a nested block that started? */
static bool step_ran(const struct exec_step *s)
{
    return s->child != NULL ? s->child->ran : s->attempts > 0;
}

static void step_span_open(struct exec_step *s)
{
    struct exec_block *b = s->block;

    s->span = trace_span_start(b->ex->opts.trace, b->span, s->ps->name);
    span_set_attr(s->span, "block", b->path);
    span_set_attr(s->span, "kind", s->ps->kind == PLAN_STEP_PARALLEL ? "parallel" : "exec");
    if (s->ps->target != NULL)
        span_set_attr(s->span, "target", s->ps->target);
}

/*
 * The one place a step ends, whether it ran or not (its command ended, it was stopped, or it
 * was cancelled before it began): its status, reason and times, its block's counts, and its
 * report everywhere. n3_tasks_total counts every command (exec, shell, remote); the duration
 * histogram only those that ran. A step that never began gets its span now, opened and ended as
 * it is cancelled, with its reason, and a duration of 0. executor.step.finished is published for
 * every step. The nested block of a step that never began ends here too, with each of its
 * steps. What the end means for the block (strategy, dependents) is the caller's.
 */
static void step_end(struct exec_step *s, enum exec_status status, const char *reason)
{
    struct exec_block *b = s->block;
    struct executor *ex = b->ex;

    if (exec_status_final(s->status))
        fatal("step %s finished twice", s->ps->name);
    loop_timer_free(s->timer);
    s->timer = NULL;
    s->in_backoff = false;
    if (s->begun) {
        s->begun = false;
        b->active--;
    }
    set_status(s, status);
    s->end_us = loop_now_us(ex->loop);
    if (!s->started)
        s->start_us = s->end_us;
    step_set_reason(s, status == EXEC_SUCCEEDED ? "" : reason);
    b->finished++;
    if (s->span == NULL && ex->opts.trace != NULL)
        step_span_open(s);
    if (s->ps->kind == PLAN_STEP_PARALLEL && s->child == NULL)
        block_end_unstarted(s);

    /* Nested blocks are counted in n3_blocks_total; n3_active_tasks follows the processes. */
    if (ex->opts.metrics != NULL && s->ps->kind != PLAN_STEP_PARALLEL) {
        const char *labels[] = {status_names[status]};

        metric_inc(ex->m_tasks, labels, 1);
        if (step_ran(s))
            metric_observe(ex->m_duration, NULL, (double)(s->end_us - s->start_us) / 1e6);
    }
    if (s->span != NULL) {
        span_set_attrf(s->span, "attempts", "%u", s->attempts);
        if (s->ps->kind != PLAN_STEP_PARALLEL && s->attempts > 0) {
            if (s->term_signal != 0)
                span_set_attrf(s->span, "signal", "%d", s->term_signal);
            else if (s->exit_code >= 0)
                span_set_attrf(s->span, "exit_code", "%d", s->exit_code);
        }
        if (s->reason[0] != '\0')
            span_set_attr(s->span, "reason", s->reason);
        trace_span_end(ex->opts.trace, s->span, status_names[status]);
        s->span = NULL;
    }
    if (ex->opts.bus != NULL) {
        cJSON *p = step_payload(s);

        cJSON_AddNumberToObject(p, "duration_ms", (double)(s->end_us - s->start_us) / 1000.0);
        if (s->reason[0] != '\0')
            cJSON_AddStringToObject(p, "reason", s->reason);
        emit(ex, "executor.step.finished", p);
    }
}

/* A step has ended: report it, then what it means for its block. */
static void step_finish(struct exec_step *s, enum exec_status status, const char *reason)
{
    struct exec_block *b = s->block;
    size_t i;

    step_end(s, status, reason);
    /* The strategy sees this step before its dependents are cancelled, so a fail_fast
     * reason names the step that failed, not a dependent of it. Once the block has decided,
     * its decision stops the dependents, with its own reason. */
    b->hold++;
    block_apply(b, s);
    if (status == EXEC_SUCCEEDED) {
        for (i = 0; i < s->ps->ndependents; i++) {
            struct exec_step *d = &b->steps[s->ps->dependents[i]];

            if (--d->deps_left == 0 && d->status == EXEC_PENDING)
                b->ready[b->rtail++] = d->index;
        }
    } else if (s->ps->ndependents > 0 && !b->deciding) {
        cancel_dependents(s);
    }
    b->hold--;
    block_settle(b);
}

static void step_timer_cb(void *arg)
{
    struct exec_step *s = arg;

    if (s->in_backoff) {
        s->in_backoff = false;
        run_or_queue(s);
        return;
    }
    /* The step ran past its timeout. */
    if (s->child != NULL) {
        char secs[32], *why;

        format_seconds(secs, sizeof secs, s->ps->timeout_ms);
        why = xasprintf("timed out after %s", secs);
        step_stop(s, EXEC_TIMED_OUT, why);
        free(why);
    } else if (s->attempt.active &&
               !s->attempt.runner->exited(s->attempt.runner->arg, &s->attempt)) {
        /* Not when the command itself has exited in time: what is left is leftovers of its
         * group, which get KILL when the grace period is over anyway. */
        s->timed_out = true;
        s->attempt.runner->stop(s->attempt.runner->arg, &s->attempt,
                                s->block->ex->plan->kill_grace_ms);
    }
}

static void attempt_failed(struct exec_step *s, struct retry_failure f, const char *reason)
{
    struct exec_block *b = s->block;
    struct executor *ex = b->ex;
    const struct retry_policy *policy = &s->ps->retry;

    s->failure = f;
    if (ex->opts.metrics != NULL) {
        const char *labels[] = {retry_kind_name(f.kind)};

        metric_inc(ex->m_errors, labels, 1);
    }
    if (!b->deciding && !ex->cancelled && retry_should(policy, s->attempts, &f)) {
        uint64_t delay = retry_backoff_ms(policy, s->attempts, loop_random(ex->loop));

        step_set_reason(s, reason);
        s->in_backoff = true;
        if (s->timer == NULL)
            s->timer = loop_timer_new(ex->loop, step_timer_cb, s);
        loop_timer_start(s->timer, delay);
        if (ex->opts.metrics != NULL)
            metric_inc(ex->m_retries, NULL, 1);
        if (ex->opts.bus != NULL) {
            cJSON *p = step_payload(s);

            cJSON_AddStringToObject(p, "reason", reason);
            cJSON_AddNumberToObject(p, "delay_ms", (double)delay);
            emit(ex, "executor.step.retrying", p);
        }
        return;
    }
    step_finish(s, f.kind == RETRY_TIMEOUT ? EXEC_TIMED_OUT : EXEC_FAILED, reason);
}

static bool trim_newline(const char *s, size_t *len)
{
    if (*len > 0 && s[*len - 1] == '\n') {
        (*len)--;
        if (*len > 0 && s[*len - 1] == '\r')
            (*len)--;
        return true;
    }
    return false;
}

/* JSON that is the whole of text, exactly (core/json): cJSON's parser would take "1 apple" as 1
 * and 010 as 10, and cut "a\u0000b" to "a". */
static cJSON *json_parse_exact(const char *text, size_t len)
{
    struct json_error je;

    return json_parse(text, len, NULL, &je);
}

/* Keep the last n bytes of *data (of *len). */
static void keep_last(char **data, size_t *len, size_t n)
{
    if (*len <= n)
        return;
    memmove(*data, *data + *len - n, n);
    (*data)[n] = '\0';
    *data = xrealloc(*data, n + 1);
    *len = n;
}

/* Take the output of the attempt that ended, within the run's budget for kept output. */
static void take_output(struct exec_step *s, const struct exec_outcome *o)
{
    struct executor *ex = s->block->ex;

    ex->output_kept -= s->out_len + s->err_len;
    step_free_output(s);
    if (o->out != NULL) {
        s->out = tail_dup(o->out, &s->out_len);
        s->out_total = o->out->total;
    }
    if (o->err != NULL) {
        s->err = tail_dup(o->err, &s->err_len);
        s->err_total = o->err->total;
    }
    if (ex->output_kept + s->out_len + s->err_len > EXEC_OUTPUT_BUDGET) {
        keep_last(&s->out, &s->out_len, EXEC_OUTPUT_SHRUNK);
        keep_last(&s->err, &s->err_len, EXEC_OUTPUT_SHRUNK);
    }
    ex->output_kept += s->out_len + s->err_len;
}

void exec_attempt_done(struct exec_attempt *a, const struct exec_outcome *o)
{
    struct exec_step *s = a->step;
    struct executor *ex = s->block->ex;
    bool out_cut = o->out != NULL && o->out->total > o->out->len;
    char why[256];

    if (!a->active)
        fatal("exec_attempt_done twice for step %s", s->ps->name);
    a->active = false;
    a->data = NULL;
    a->pid = 0;
    ex->procs--;
    procs_changed(ex);
    if (s->timer != NULL && !s->in_backoff)
        loop_timer_stop(s->timer);
    s->term_signal = o->term_signal;
    s->exit_code = o->term_signal != 0 ? -1 : o->exit_code;
    take_output(s, o);

    if (s->stop_requested) {
        step_finish(s, s->stop_status, s->stop_reason);
    } else if (o->failed) {
        attempt_failed(s, o->failure, o->reason != NULL ? o->reason : "failed");
    } else if (s->timed_out) {
        char secs[32];

        format_seconds(secs, sizeof secs, s->ps->timeout_ms);
        snprintf(why, sizeof why, "timed out after %s", secs);
        attempt_failed(s, (struct retry_failure){RETRY_TIMEOUT, 0}, why);
    } else if (s->term_signal != 0) {
        const char *abbrev = sigabbrev_np(s->term_signal);

        snprintf(why, sizeof why, "killed by signal %d (SIG%s)", s->term_signal,
                 abbrev != NULL ? abbrev : "?");
        attempt_failed(s, (struct retry_failure){RETRY_SIGNAL, s->term_signal}, why);
    } else if (s->exit_code != 0) {
        snprintf(why, sizeof why, "exit %d", s->exit_code);
        attempt_failed(s, (struct retry_failure){RETRY_EXIT, s->exit_code}, why);
    } else if (s->ps->result == PLAN_RESULT_JSON) {
        size_t len = s->out_len;
        cJSON *v;

        trim_newline(s->out, &len);
        v = out_cut ? NULL : json_parse_exact(s->out, len);
        if (v == NULL)
            step_finish(s, EXEC_FAILED,
                        out_cut
                            ? "its output is larger than output_limit_bytes, so it cannot be the "
                              "JSON result"
                            : "its output is not valid JSON (the step has \"result\": \"json\")");
        else
            step_finish(s, EXEC_SUCCEEDED, NULL);
        cJSON_Delete(v);
    } else {
        step_finish(s, EXEC_SUCCEEDED, NULL);
    }
    wake_waiting(ex);
}

/* Environment of a step: the inherited one with the step's own variables over it. */
static char **step_env(const struct plan_step *ps)
{
    size_t n = 0, k = 0, i, j;
    char **env;

    for (i = 0; environ[i] != NULL; i++)
        n++;
    for (j = 0; ps->env[j] != NULL; j++)
        n++;
    env = xcalloc(n + 1, sizeof *env);
    for (i = 0; environ[i] != NULL; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool overridden = false;

        for (j = 0; ps->env[j] != NULL && !overridden; j++)
            overridden = strncmp(ps->env[j], environ[i], klen) == 0 && ps->env[j][klen] == '=';
        if (!overridden)
            env[k++] = environ[i];
    }
    for (j = 0; ps->env[j] != NULL; j++)
        env[k++] = ps->env[j];
    env[k] = NULL;
    return env;
}

/* ---- the local runner: exec and shell steps as processes on this machine ---- */

static void local_output(struct proc *p, enum proc_stream stream, const char *data, size_t len,
                         void *arg)
{
    exec_attempt_output(arg, stream, data, len);
}

static void local_done(struct proc *p, void *arg)
{
    struct exec_outcome o;

    memset(&o, 0, sizeof o);
    o.term_signal = proc_term_signal(p);
    o.exit_code = o.term_signal != 0 ? -1 : proc_exit_code(p);
    o.out = proc_output(p, PROC_STDOUT);
    o.err = proc_output(p, PROC_STDERR);
    exec_attempt_done(arg, &o);
    proc_free(p);
}

static int local_start(void *arg, struct exec_attempt *a, const struct plan_step *ps,
                       struct retry_failure *f, struct err *err)
{
    struct executor *ex = arg;
    struct proc_spec spec;
    struct proc *p;
    char **env = ps->env != NULL ? step_env(ps) : NULL;
    int rc;

    memset(&spec, 0, sizeof spec);
    spec.argv = (const char *const *)ps->argv;
    spec.env = (const char *const *)env;
    spec.cwd = ps->cwd;
    spec.output_limit = ex->plan->output_limit;
    spec.grace_ms = ex->plan->kill_grace_ms;
    spec.on_done = local_done;
    spec.on_output = ex->opts.on_output != NULL ? local_output : NULL;
    spec.arg = a;
    rc = proc_start(ex->loop, &spec, &p, err);
    free(env);
    if (rc == PROC_BUSY)
        return EXEC_RUNNER_BUSY;
    if (rc != 0) {
        *f = (struct retry_failure){RETRY_SPAWN, 0};
        return -1;
    }
    exec_attempt_set_data(a, p, proc_pid(p));
    return 0;
}

static void local_stop(void *arg, struct exec_attempt *a, uint64_t grace_ms)
{
    proc_terminate(a->data, grace_ms);
}

static bool local_exited(void *arg, struct exec_attempt *a)
{
    return proc_exited(a->data);
}

void exec_attempt_set_data(struct exec_attempt *a, void *data, pid_t pid)
{
    a->data = data;
    a->pid = pid;
}

void *exec_attempt_data(const struct exec_attempt *a)
{
    return a->data;
}

const struct exec_step *exec_attempt_step(const struct exec_attempt *a)
{
    return a->step;
}

void exec_attempt_output(struct exec_attempt *a, enum proc_stream stream, const char *data,
                         size_t len)
{
    struct executor *ex = a->step->block->ex;

    if (ex->opts.on_output != NULL && a->active)
        ex->opts.on_output(ex->opts.output_arg, a->step, stream, data, len);
}

static void spawn_attempt(struct exec_step *s)
{
    struct executor *ex = s->block->ex;
    struct exec_attempt *a = &s->attempt;
    struct retry_failure f = {RETRY_SPAWN, 0};
    struct err err;
    int rc;

    a->step = s;
    /* A remote step that was not expanded to its targets has no runner either. */
    a->runner = s->ps->kind == PLAN_STEP_EXEC     ? &ex->local
                : s->ps->kind == PLAN_STEP_REMOTE ? ex->opts.remote
                                                  : NULL;
    a->data = NULL;
    a->pid = 0;
    s->attempts++;
    s->timed_out = false;
    s->exit_code = -1;
    s->term_signal = 0;
    if (a->runner == NULL) {
        f.kind = RETRY_VALIDATION;
        rc = err_set(&err, "remote steps run on targets from n3.json, and none are configured");
    } else {
        a->active = true; /* output may arrive while the runner starts */
        ex->procs++;
        rc = a->runner->start(a->runner->arg, a, s->ps, &f, &err);
        if (rc != 0) {
            a->active = false;
            ex->procs--;
        }
    }
    if (rc == EXEC_RUNNER_BUSY && ex->procs > 0) {
        /* Out of file descriptors or processes for now: first in line when one ends. */
        s->attempts--;
        wait_push_front(ex, s);
        return;
    }
    if (rc != 0) {
        ex->output_kept -= s->out_len + s->err_len;
        step_free_output(s);
        attempt_failed(s, f, err.msg);
        return;
    }
    procs_changed(ex);
    /* A remote step's timeout is its runner's: it counts from when the command starts on the
     * target, not from when the connection is still being made. */
    if (s->ps->timeout_ms > 0 && s->ps->kind == PLAN_STEP_EXEC) {
        if (s->timer == NULL)
            s->timer = loop_timer_new(ex->loop, step_timer_cb, s);
        loop_timer_start(s->timer, s->ps->timeout_ms);
    }
    if (ex->opts.bus != NULL) {
        cJSON *p = step_payload(s);

        if (a->pid != 0)
            cJSON_AddNumberToObject(p, "pid", a->pid);
        if (s->ps->target != NULL)
            cJSON_AddStringToObject(p, "target", s->ps->target);
        emit(ex, "executor.step.started", p);
    }
}

static void block_init(struct exec_block *b, struct executor *ex, const struct plan_block *pb,
                       struct exec_step *parent)
{
    size_t i;

    b->pb = pb;
    b->ex = ex;
    b->parent = parent;
    b->path =
        parent != NULL ? xasprintf("%s/%s", parent->block->path, pb->name) : xstrdup(pb->name);
    b->n = pb->nsteps;
    b->steps = xcalloc(b->n, sizeof *b->steps);
    b->ready = xcalloc(b->n, sizeof *b->ready);
    b->counts.total = (unsigned)b->n;
    b->counts.by_status[EXEC_PENDING] = (unsigned)b->n;
    for (i = 0; i < b->n; i++) {
        struct exec_step *s = &b->steps[i];

        s->ps = &pb->steps[i];
        s->block = b;
        s->index = i;
        s->deps_left = s->ps->ndeps;
        s->exit_code = -1;
        s->reason = xstrdup("");
    }
}

static void block_done(struct exec_block *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        struct exec_step *s = &b->steps[i];

        if (s->attempt.active)
            fatal("executor_free with step %s still running", s->ps->name);
        loop_timer_free(s->timer);
        if (s->span != NULL)
            trace_span_end(b->ex->opts.trace, s->span, "cancelled");
        if (s->child != NULL) {
            block_done(s->child);
            free(s->child);
        }
        free(s->reason);
        free(s->stop_reason);
        step_free_output(s);
    }
    loop_timer_free(b->timer);
    if (b->span != NULL)
        trace_span_end(b->ex->opts.trace, b->span, "cancelled");
    cJSON_Delete(b->reduced);
    free(b->steps);
    free(b->ready);
    free(b->path);
    free(b->reason);
}

static void step_begin(struct exec_step *s)
{
    struct exec_block *b = s->block;
    struct executor *ex = b->ex;

    s->begun = true;
    s->started = true;
    b->active++;
    s->start_us = loop_now_us(ex->loop);
    set_status(s, EXEC_RUNNING);
    if (ex->opts.trace != NULL)
        step_span_open(s);
    if (s->ps->kind == PLAN_STEP_PARALLEL) {
        /* The step's own timeout covers its whole nested block. */
        if (s->ps->timeout_ms > 0) {
            s->timer = loop_timer_new(ex->loop, step_timer_cb, s);
            loop_timer_start(s->timer, s->ps->timeout_ms);
        }
        s->child = xcalloc(1, sizeof *s->child);
        block_init(s->child, ex, s->ps->block, s);
        block_start(s->child);
        return;
    }
    run_or_queue(s);
}

/* Start ready steps while the block has free slots. */
static void block_pump(struct exec_block *b)
{
    if (b->pumping) {
        b->repump = true;
        return;
    }
    b->pumping = true;
    do {
        b->repump = false;
        while (!b->deciding && b->status == EXEC_RUNNING && b->active < b->pb->max_concurrency &&
               b->rhead < b->rtail) {
            struct exec_step *s = &b->steps[b->ready[b->rhead++]];

            if (s->status == EXEC_PENDING && !s->begun)
                step_begin(s);
        }
    } while (b->repump);
    b->pumping = false;
}

/* ---- results ---- */

static cJSON *step_result(const struct exec_step *s)
{
    size_t len;

    if (s->status != EXEC_SUCCEEDED)
        return cJSON_CreateNull();
    if (s->child != NULL)
        return exec_block_result(s->child);
    len = s->out_len;
    trim_newline(s->out, &len);
    if (s->ps->result == PLAN_RESULT_JSON) {
        cJSON *v = json_parse_exact(s->out, len);

        return v != NULL ? v : cJSON_CreateNull();
    }
    {
        char *text = utf8_sanitize(s->out, len);
        cJSON *v = cJSON_CreateString(text);

        free(text);
        return v;
    }
}

/* A value for a reduce: JSON results as they are, text results parsed as JSON when they can be.
 * NULL, with why, for a step whose output was cut (past output_limit_bytes, or the run's budget
 * for kept output): a reduce never works on part of a result. */
static cJSON *reduce_value(const struct exec_block *b, const struct exec_step *s, struct buf *why)
{
    cJSON *v;

    if (s->child == NULL && s->out_total > s->out_len) {
        buf_addf(why,
                 "reduce %s: step \"%s\" printed %llu bytes and only the last %zu are kept "
                 "(output_limit_bytes): its result would be cut short",
                 plan_reduce_name(b->pb->reduce), s->ps->name, (unsigned long long)s->out_total,
                 s->out_len);
        return NULL;
    }
    v = step_result(s);
    if (cJSON_IsString(v)) {
        cJSON *parsed = json_parse_exact(v->valuestring, strlen(v->valuestring));

        if (parsed != NULL) {
            cJSON_Delete(v);
            return parsed;
        }
    }
    return v;
}

/* x as a person would write it: whole numbers in full, others in the shortest form that reads
 * back as x. */
static void format_number(char *out, size_t len, double x)
{
    int prec;

    if (x == floor(x) && fabs(x) < 1e17) {
        snprintf(out, len, "%.0f", x);
        return;
    }
    for (prec = 15; prec < 17; prec++) {
        snprintf(out, len, "%.*g", prec, x);
        if (strtod(out, NULL) == x)
            return;
    }
    snprintf(out, len, "%.17g", x);
}

/* Whole numbers are exact only up to 2^53 - 1 (RFC 8259, section 6). Past it a sum would be
 * rounded, and past the range of a double it would be infinite (null in JSON): it fails. */
#define REDUCE_SUM_MAX 9007199254740991.0

static int reduce_sum(struct exec_block *b, struct buf *why)
{
    double sum = 0, x;
    char a[40], c[40];
    size_t i;

    for (i = 0; i < b->n; i++) {
        const char *name = b->steps[i].ps->name;
        cJSON *v = reduce_value(b, &b->steps[i], why);

        if (v == NULL)
            return -1;
        if (!cJSON_IsNumber(v)) {
            buf_addf(why, "reduce sum: step \"%s\" did not print a number", name);
            cJSON_Delete(v);
            return -1;
        }
        x = v->valuedouble;
        cJSON_Delete(v);
        if (!isfinite(x)) {
            buf_addf(why,
                     "reduce sum: step \"%s\" printed a number beyond the range of a double; a "
                     "sum works within -9007199254740991..9007199254740991 (2^53 - 1)",
                     name);
            return -1;
        }
        format_number(c, sizeof c, x);
        if (fabs(x) > REDUCE_SUM_MAX) {
            buf_addf(
                why,
                "reduce sum: step \"%s\" printed %s, past 9007199254740991 (2^53 - 1) in size, "
                "where whole numbers stop being exact",
                name, c);
            return -1;
        }
        format_number(a, sizeof a, sum);
        sum += x;
        if (fabs(sum) > REDUCE_SUM_MAX) {
            buf_addf(why,
                     "reduce sum: the total passes 9007199254740991 (2^53 - 1) in size at step "
                     "\"%s\" (%s + %s), where whole numbers stop being exact",
                     name, a, c);
            return -1;
        }
    }
    b->reduced = cJSON_CreateNumber(sum);
    return 0;
}

/* All JSON arrays: one array with their items. All text: the texts joined with newlines. */
static int reduce_concat(struct exec_block *b, struct buf *why)
{
    const struct exec_step *not_array = NULL, *not_text = NULL;
    const char *array_kind = NULL, *text_kind = NULL;
    cJSON *acc;
    size_t i;

    for (i = 0; i < b->n; i++) {
        const struct exec_step *s = &b->steps[i];
        cJSON *v = reduce_value(b, s, why), *raw;

        if (v == NULL)
            return -1;
        raw = step_result(s);
        if (not_array == NULL && !cJSON_IsArray(v)) {
            not_array = s;
            array_kind = cJSON_IsString(v) ? "text" : cfg_type_name(v);
        }
        if (not_text == NULL && !cJSON_IsString(raw)) {
            not_text = s;
            text_kind = cfg_type_name(raw);
        }
        cJSON_Delete(v);
        cJSON_Delete(raw);
    }
    if (not_array == NULL) {
        acc = cJSON_CreateArray();
        for (i = 0; i < b->n; i++) {
            cJSON *v = reduce_value(b, &b->steps[i], why), *item;

            while ((item = cJSON_DetachItemFromArray(v, 0)) != NULL)
                cJSON_AddItemToArray(acc, item);
            cJSON_Delete(v);
        }
    } else if (not_text == NULL) {
        struct buf all;

        buf_init(&all);
        for (i = 0; i < b->n; i++) {
            cJSON *v = step_result(&b->steps[i]);

            if (i > 0)
                buf_addc(&all, '\n');
            buf_adds(&all, v->valuestring);
            cJSON_Delete(v);
        }
        acc = cJSON_CreateString(all.data);
        buf_done(&all);
    } else if (not_array == not_text) {
        buf_addf(why,
                 "reduce concat: step \"%s\" gave %s, neither a JSON array nor text; concat "
                 "joins results that are all arrays or all text",
                 not_array->ps->name, array_kind);
        return -1;
    } else {
        buf_addf(why,
                 "reduce concat: step \"%s\" gave %s, not a JSON array, and step \"%s\" gave %s, "
                 "not text; concat joins results that are all arrays or all text",
                 not_array->ps->name, array_kind, not_text->ps->name, text_kind);
        return -1;
    }
    b->reduced = acc;
    return 0;
}

/* JSON objects into one; a later step wins on a key, if its value is of the same kind. */
static int reduce_merge(struct exec_block *b, struct buf *why)
{
    cJSON *acc = cJSON_CreateObject(), *from = cJSON_CreateObject();
    size_t i;

    for (i = 0; i < b->n; i++) {
        const char *name = b->steps[i].ps->name;
        cJSON *v = reduce_value(b, &b->steps[i], why), *item, *old;

        if (v != NULL && !cJSON_IsObject(v))
            buf_addf(why, "reduce merge: step \"%s\" did not print a JSON object", name);
        while (v != NULL && cJSON_IsObject(v) && (item = v->child) != NULL) {
            cJSON_DetachItemViaPointer(v, item);
            old = cJSON_GetObjectItemCaseSensitive(acc, item->string);
            if (old != NULL && strcmp(cfg_type_name(old), cfg_type_name(item)) != 0) {
                buf_addf(why,
                         "reduce merge: key \"%.60s\" is %s in step \"%s\" and %s in step \"%s\"; "
                         "merge replaces a value only by one of the same kind",
                         item->string, cfg_type_name(old),
                         cJSON_GetObjectItemCaseSensitive(from, item->string)->valuestring,
                         cfg_type_name(item), name);
                cJSON_Delete(item);
                break;
            }
            cJSON_DeleteItemFromObjectCaseSensitive(acc, item->string);
            cJSON_DeleteItemFromObjectCaseSensitive(from, item->string);
            cJSON_AddStringToObject(from, item->string, name);
            cJSON_AddItemToObject(acc, item->string, item);
        }
        cJSON_Delete(v);
        if (why->len > 0) {
            cJSON_Delete(acc);
            cJSON_Delete(from);
            return -1;
        }
    }
    cJSON_Delete(from);
    b->reduced = acc;
    return 0;
}

/* The reduce of a map_reduce block whose steps all succeeded; -1 with why when it cannot be
 * done, naming the step whose value stops it. */
static int block_reduce(struct exec_block *b, struct buf *why)
{
    switch (b->pb->reduce) {
    case PLAN_REDUCE_COUNT:
        b->reduced = cJSON_CreateNumber((double)b->counts.by_status[EXEC_SUCCEEDED]);
        return 0;
    case PLAN_REDUCE_SUM:
        return reduce_sum(b, why);
    case PLAN_REDUCE_CONCAT:
        return reduce_concat(b, why);
    case PLAN_REDUCE_MERGE:
        return reduce_merge(b, why);
    case PLAN_REDUCE_NONE:
        break;
    }
    return 0;
}

cJSON *exec_block_result(const struct exec_block *b)
{
    cJSON *r;
    size_t i;

    if (!exec_status_final(b->status))
        return NULL;
    switch (b->pb->strategy) {
    case PLAN_ANY_SUCCESS:
    case PLAN_RACE:
        return b->winner != NULL ? step_result(b->winner) : cJSON_CreateNull();
    case PLAN_MAP_REDUCE:
        return b->reduced != NULL ? cJSON_Duplicate(b->reduced, true) : cJSON_CreateNull();
    case PLAN_COLLECT:
        r = cJSON_CreateObject();
        for (i = 0; i < b->n; i++) {
            const struct exec_step *s = &b->steps[i];
            cJSON *e = cJSON_CreateObject();

            cJSON_AddStringToObject(e, "status", status_names[s->status]);
            if (s->status == EXEC_SUCCEEDED)
                cJSON_AddItemToObject(e, "result", step_result(s));
            else
                cJSON_AddStringToObject(e, "error", s->reason);
            cJSON_AddNumberToObject(e, "duration_ms", (double)(s->end_us - s->start_us) / 1000.0);
            cJSON_AddItemToObject(r, s->ps->name, e);
        }
        return r;
    case PLAN_ALL:
        break;
    }
    r = cJSON_CreateObject();
    for (i = 0; i < b->n; i++)
        cJSON_AddItemToObject(r, b->steps[i].ps->name, step_result(&b->steps[i]));
    return r;
}

/* ---- blocks ---- */

static void executor_finish(struct executor *ex);

/* A block ends, whether it ran or not: its status and times, n3_blocks_total, its span and
 * executor.block.finished. */
static void block_end(struct exec_block *b)
{
    struct executor *ex = b->ex;

    loop_timer_free(b->timer);
    b->timer = NULL;
    b->status = b->decided;
    b->end_us = loop_now_us(ex->loop);
    if (b->reason == NULL)
        b->reason = xstrdup("");
    if (ex->opts.metrics != NULL) {
        const char *labels[] = {plan_strategy_name(b->pb->strategy), status_names[b->status]};

        metric_inc(ex->m_blocks, labels, 1);
    }
    if (b->span != NULL) {
        if (b->reason[0] != '\0')
            span_set_attr(b->span, "reason", b->reason);
        trace_span_end(ex->opts.trace, b->span, status_names[b->status]);
        b->span = NULL;
    }
    if (ex->opts.bus != NULL) {
        cJSON *p = cJSON_CreateObject();

        cJSON_AddStringToObject(p, "block", b->path);
        cJSON_AddStringToObject(p, "status", status_names[b->status]);
        cJSON_AddStringToObject(p, "reason", b->reason);
        cJSON_AddNumberToObject(p, "duration_ms", (double)(b->end_us - b->start_us) / 1000.0);
        emit(ex, "executor.block.finished", p);
    }
}

/* The block of a step that ends before it began: it ends with it, each of its steps cancelled
 * for the same reason, so that the report, the metrics and the traces show every one. */
static void block_end_unstarted(struct exec_step *parent)
{
    struct executor *ex = parent->block->ex;
    struct exec_block *c = xcalloc(1, sizeof *c);
    size_t i;

    block_init(c, ex, parent->ps->block, parent);
    parent->child = c;
    c->start_us = loop_now_us(ex->loop);
    block_span_open(c);
    c->deciding = true;
    c->decided = parent->status;
    c->reason = xstrdup(parent->reason);
    for (i = 0; i < c->n; i++)
        step_end(&c->steps[i], EXEC_CANCELLED, parent->reason);
    block_end(c);
}

static void block_finish(struct exec_block *b)
{
    struct executor *ex = b->ex;
    struct exec_step *parent = b->parent;

    block_end(b);
    if (parent == NULL) {
        executor_finish(ex);
        return;
    }
    if (parent->stop_requested)
        step_finish(parent, parent->stop_status, parent->stop_reason);
    else
        step_finish(parent, b->status, b->reason);
}

static void block_maybe_finish(struct exec_block *b)
{
    if (b->hold == 0 && b->deciding && b->finished == b->n && !exec_status_final(b->status))
        block_finish(b);
}

static void block_vdecide(struct exec_block *b, enum exec_status status, const char *fmt,
                          va_list ap) __attribute__((format(printf, 3, 0)));

static void block_vdecide(struct exec_block *b, enum exec_status status, const char *fmt,
                          va_list ap)
{
    size_t i;
    char *why;

    if (b->deciding)
        return;
    b->deciding = true;
    b->decided = status;
    if (vasprintf(&b->reason, fmt, ap) < 0)
        fatal("out of memory");
    if (b->timer != NULL)
        loop_timer_stop(b->timer);
    if (status == EXEC_SUCCEEDED || status == EXEC_FAILED)
        why = xasprintf("cancelled: the block \"%s\" %s", b->path,
                        status == EXEC_SUCCEEDED ? "already has its result" : "has failed");
    else if (strncmp(b->reason, "cancelled: ", 11) == 0 ||
             strncmp(b->reason, "timed out: ", 11) == 0)
        why = xstrdup(b->reason); /* handed down from an outer block: it already says why */
    else
        why = xasprintf("%s: %s", status == EXEC_TIMED_OUT ? "timed out" : "cancelled", b->reason);
    b->hold++;
    for (i = 0; i < b->n; i++) {
        struct exec_step *s = &b->steps[i];

        if (exec_status_final(s->status))
            continue;
        step_stop(s, status == EXEC_TIMED_OUT && s->begun ? EXEC_TIMED_OUT : EXEC_CANCELLED, why);
    }
    b->hold--;
    free(why);
    block_maybe_finish(b);
}

static void block_decide(struct exec_block *b, enum exec_status status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    block_vdecide(b, status, fmt, ap);
    va_end(ap);
}

static bool is_failure(enum exec_status s)
{
    return s == EXEC_FAILED || s == EXEC_TIMED_OUT || s == EXEC_CANCELLED;
}

static bool over_budget(const struct exec_block *b)
{
    return (double)b->failures * 100.0 > b->pb->max_fail_percent * (double)b->n;
}

/* A step of b has finished: apply the strategy, then start more or finish. */
/* A step of b has finished: what it means for the block, by its strategy. */
static void block_apply(struct exec_block *b, struct exec_step *s)
{
    if (!b->deciding) {
        switch (b->pb->strategy) {
        case PLAN_ALL:
        case PLAN_MAP_REDUCE:
            if (is_failure(s->status)) {
                b->failures++;
                if (b->pb->fail_fast && over_budget(b))
                    block_decide(b, EXEC_FAILED, "step \"%s\" %s (fail_fast)", s->ps->name,
                                 s->reason);
            }
            break;
        case PLAN_ANY_SUCCESS:
            if (s->status == EXEC_SUCCEEDED) {
                b->winner = s;
                block_decide(b, EXEC_SUCCEEDED, "step \"%s\" succeeded first", s->ps->name);
            }
            break;
        case PLAN_RACE:
            /* A step cancelled for a failed dependency never ran: it does not win a race. */
            if (step_ran(s)) {
                b->winner = s;
                if (s->status == EXEC_SUCCEEDED)
                    block_decide(b, EXEC_SUCCEEDED, "step \"%s\" finished first", s->ps->name);
                else
                    block_decide(b, EXEC_FAILED, "step \"%s\" finished first and %s", s->ps->name,
                                 s->reason);
            }
            break;
        case PLAN_COLLECT:
            break;
        }
    }
}

/* After steps of b have finished: decide when all have, finish when the outcome is known and
 * nothing runs any more, otherwise start what may start. Nothing happens while b is held. */
static void block_settle(struct exec_block *b)
{
    if (b->hold > 0)
        return;
    if (!b->deciding && b->finished == b->n) {
        struct buf why;

        buf_init(&why);
        switch (b->pb->strategy) {
        case PLAN_ALL:
            if (b->failures == 0)
                block_decide(b, EXEC_SUCCEEDED, "%s", "");
            else if (!over_budget(b))
                block_decide(b, EXEC_SUCCEEDED,
                             "%u of %zu steps failed, within max_fail_percent %g", b->failures,
                             b->n, b->pb->max_fail_percent);
            else
                block_decide(b, EXEC_FAILED, "%u of %zu steps did not succeed", b->failures, b->n);
            break;
        case PLAN_MAP_REDUCE:
            if (b->failures > 0)
                block_decide(b, EXEC_FAILED, "%u of %zu steps did not succeed", b->failures, b->n);
            else if (block_reduce(b, &why) != 0)
                block_decide(b, EXEC_FAILED, "%s", why.data);
            else
                block_decide(b, EXEC_SUCCEEDED, "%s", "");
            break;
        case PLAN_ANY_SUCCESS:
            block_decide(b, EXEC_FAILED, "all %zu steps failed", b->n);
            break;
        case PLAN_RACE:
            block_decide(b, EXEC_FAILED, "no step finished (all were cancelled)");
            break;
        case PLAN_COLLECT:
            block_decide(b, EXEC_SUCCEEDED, "%s", "");
            break;
        }
        buf_done(&why);
        return;
    }
    if (b->deciding) {
        block_maybe_finish(b);
        return;
    }
    block_pump(b);
}

static void block_timer_cb(void *arg)
{
    struct exec_block *b = arg;
    char secs[32];

    format_seconds(secs, sizeof secs, b->pb->timeout_ms);
    block_decide(b, EXEC_TIMED_OUT, "the block ran past its timeout of %s", secs);
}

static void block_span_open(struct exec_block *b)
{
    struct executor *ex = b->ex;

    if (ex->opts.trace == NULL)
        return;
    b->span =
        trace_span_start(ex->opts.trace, b->parent != NULL ? b->parent->span : NULL, b->pb->name);
    span_set_attr(b->span, "block", b->path);
    span_set_attr(b->span, "strategy", plan_strategy_name(b->pb->strategy));
    span_set_attrf(b->span, "steps", "%zu", b->n);
    if (b->parent == NULL)
        span_set_attr(b->span, "run_id", ex->run_id);
}

static void block_start(struct exec_block *b)
{
    struct executor *ex = b->ex;
    size_t i;

    b->status = EXEC_RUNNING;
    b->ran = true;
    b->start_us = loop_now_us(ex->loop);
    block_span_open(b);
    if (ex->opts.bus != NULL) {
        cJSON *p = cJSON_CreateObject();

        cJSON_AddStringToObject(p, "block", b->path);
        cJSON_AddStringToObject(p, "strategy", plan_strategy_name(b->pb->strategy));
        cJSON_AddNumberToObject(p, "steps", (double)b->n);
        emit(ex, "executor.block.started", p);
    }
    b->timer = loop_timer_new(ex->loop, block_timer_cb, b);
    loop_timer_start(b->timer, b->pb->timeout_ms);
    for (i = 0; i < b->n; i++) {
        if (b->steps[i].deps_left == 0)
            b->ready[b->rtail++] = i;
    }
    block_pump(b);
}

/* Stop one step from outside (its block decided, or the run was cancelled). */
static void step_stop(struct exec_step *s, enum exec_status status, const char *reason)
{
    struct exec_block *b = s->block;
    struct executor *ex = b->ex;

    if (exec_status_final(s->status))
        return;
    if (!s->begun) {
        step_finish(s, EXEC_CANCELLED, reason); /* it never began */
        return;
    }
    if (s->stop_requested)
        return;
    /* A command that never got to run is cancelled, whatever stopped it. */
    if (s->child == NULL && s->attempts == 0)
        status = EXEC_CANCELLED;
    if (ex->cancelled &&
        (s->attempt.active || s->in_backoff || s->attempts > 0 || s->child != NULL))
        s->interrupted = s->child == NULL;
    s->stop_requested = true;
    s->stop_status = status;
    s->stop_reason = xstrdup(reason);
    if (s->child != NULL) {
        block_decide(s->child, status == EXEC_TIMED_OUT ? EXEC_TIMED_OUT : EXEC_CANCELLED, "%s",
                     reason);
    } else if (s->waiting) {
        wait_remove(ex, s);
        step_finish(s, status, reason);
    } else if (s->attempt.active) {
        s->attempt.runner->stop(s->attempt.runner->arg, &s->attempt, ex->plan->kill_grace_ms);
    } else {
        step_finish(s, status, reason); /* between attempts */
    }
}

/* ---- the executor ---- */

static void executor_finish(struct executor *ex)
{
    ex->finished = true;
    ex->end_us = loop_now_us(ex->loop);
    if (ex->opts.bus != NULL) {
        cJSON *p = cJSON_CreateObject();

        cJSON_AddStringToObject(p, "plan", ex->root.pb->name);
        cJSON_AddStringToObject(p, "status", status_names[ex->root.status]);
        cJSON_AddNumberToObject(p, "duration_ms", (double)(ex->end_us - ex->start_us) / 1000.0);
        emit(ex, "executor.run.finished", p);
    }
    if (ex->done != NULL)
        ex->done(ex, ex->done_arg);
}

struct executor *executor_new(struct loop *loop, const struct plan *plan,
                              const struct exec_opts *opts)
{
    struct executor *ex = xcalloc(1, sizeof *ex);

    ex->loop = loop;
    ex->plan = plan;
    if (opts != NULL)
        ex->opts = *opts;
    if (ex->opts.run_id != NULL)
        snprintf(ex->run_id, sizeof ex->run_id, "%s", ex->opts.run_id);
    else
        snprintf(ex->run_id, sizeof ex->run_id, "%08x%08x", loop_random(loop), loop_random(loop));
    ex->opts.run_id = NULL;
    if (ex->opts.metrics != NULL) {
        static const char *const status_label[] = {"status", NULL};
        static const char *const type_label[] = {"type", NULL};
        static const char *const block_labels[] = {"strategy", "status", NULL};
        struct metrics *m = ex->opts.metrics;

        ex->m_tasks = metrics_counter(
            m, "n3_tasks_total",
            "Commands ended, by final status; those that never started count as cancelled.",
            status_label);
        ex->m_duration = metrics_histogram(
            m, "n3_task_duration_seconds",
            "Time from a command's start to its end, retries included; only commands that ran.",
            NULL, NULL, 0);
        ex->m_active = metrics_gauge(m, "n3_active_tasks", "Processes running now.", NULL);
        ex->m_retries = metrics_counter(m, "n3_task_retries_total",
                                        "Attempts started again after a transient failure.", NULL);
        ex->m_errors = metrics_counter(m, "n3_errors_total", "Failed attempts, by kind of failure.",
                                       type_label);
        ex->m_blocks = metrics_counter(m, "n3_blocks_total",
                                       "Blocks finished, by strategy and status.", block_labels);
    }
    ex->local = (struct exec_runner){.name = "local",
                                     .start = local_start,
                                     .stop = local_stop,
                                     .exited = local_exited,
                                     .arg = ex};
    block_init(&ex->root, ex, &plan->root, NULL);
    return ex;
}

void executor_start(struct executor *ex, executor_done_fn done, void *arg)
{
    if (ex->started)
        fatal("executor_start called twice");
    ex->started = true;
    ex->done = done;
    ex->done_arg = arg;
    ex->start_us = loop_now_us(ex->loop);
    if (ex->opts.bus != NULL) {
        cJSON *p = cJSON_CreateObject();

        cJSON_AddStringToObject(p, "plan", ex->root.pb->name);
        cJSON_AddStringToObject(p, "source", ex->plan->source);
        cJSON_AddNumberToObject(p, "steps", (double)ex->plan->total_steps);
        emit(ex, "executor.run.started", p);
    }
    block_start(&ex->root);
}

void executor_cancel(struct executor *ex, const char *reason)
{
    if (!ex->started || ex->finished || ex->cancelled)
        return;
    ex->cancelled = true;
    block_decide(&ex->root, EXEC_CANCELLED, "%s", reason);
}

static void block_kill(struct exec_block *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        struct exec_attempt *a = &b->steps[i].attempt;

        if (a->active)
            a->runner->stop(a->runner->arg, a, 0);
        if (b->steps[i].child != NULL)
            block_kill(b->steps[i].child);
    }
}

void executor_kill(struct executor *ex)
{
    if (!ex->started || ex->finished)
        return;
    block_kill(&ex->root);
}

bool executor_finished(const struct executor *ex)
{
    return ex->finished;
}

void executor_free(struct executor *ex)
{
    if (ex == NULL)
        return;
    block_done(&ex->root);
    free(ex);
}

const char *executor_run_id(const struct executor *ex)
{
    return ex->run_id;
}

uint64_t executor_elapsed_us(const struct executor *ex)
{
    if (!ex->started)
        return 0;
    return (ex->finished ? ex->end_us : loop_now_us(ex->loop)) - ex->start_us;
}

const struct exec_block *executor_root(const struct executor *ex)
{
    return &ex->root;
}

unsigned executor_procs(const struct executor *ex)
{
    return ex->procs;
}

static void collect_running(const struct exec_block *b, const struct exec_block **out, size_t max,
                            size_t *n)
{
    size_t i;

    if (b->status != EXEC_RUNNING)
        return;
    if (*n < max)
        out[*n] = b;
    (*n)++;
    for (i = 0; i < b->n; i++) {
        if (b->steps[i].child != NULL)
            collect_running(b->steps[i].child, out, max, n);
    }
}

size_t executor_running_blocks(const struct executor *ex, const struct exec_block **out, size_t max)
{
    size_t n = 0;

    collect_running(&ex->root, out, max, &n);
    return n;
}

static void collect_interrupted(const struct exec_block *b, const struct exec_step **out,
                                size_t max, size_t *n)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        if (b->steps[i].interrupted) {
            if (*n < max)
                out[*n] = &b->steps[i];
            (*n)++;
        }
        if (b->steps[i].child != NULL)
            collect_interrupted(b->steps[i].child, out, max, n);
    }
}

size_t executor_interrupted(const struct executor *ex, const struct exec_step **out, size_t max)
{
    size_t n = 0;

    collect_interrupted(&ex->root, out, max, &n);
    return n;
}

/* ---- accessors ---- */

const char *exec_block_name(const struct exec_block *b)
{
    return b->pb->name;
}

const char *exec_block_path(const struct exec_block *b)
{
    return b->path;
}

enum plan_strategy exec_block_strategy(const struct exec_block *b)
{
    return b->pb->strategy;
}

enum exec_status exec_block_status(const struct exec_block *b)
{
    return b->status;
}

const char *exec_block_reason(const struct exec_block *b)
{
    return b->reason != NULL && exec_status_final(b->status) ? b->reason : "";
}

void exec_block_counts(const struct exec_block *b, struct exec_counts *c)
{
    *c = b->counts;
}

uint64_t exec_block_elapsed_us(const struct exec_block *b)
{
    if (b->start_us == 0 && b->status == EXEC_PENDING)
        return 0;
    return (exec_status_final(b->status) ? b->end_us : loop_now_us(b->ex->loop)) - b->start_us;
}

size_t exec_block_nsteps(const struct exec_block *b)
{
    return b->n;
}

const struct exec_step *exec_block_step(const struct exec_block *b, size_t i)
{
    return &b->steps[i];
}

const char *exec_step_name(const struct exec_step *s)
{
    return s->ps->name;
}

const struct exec_block *exec_step_block(const struct exec_step *s)
{
    return s->block;
}

const struct exec_block *exec_step_child(const struct exec_step *s)
{
    return s->child;
}

enum exec_status exec_step_status(const struct exec_step *s)
{
    return s->status;
}

unsigned exec_step_attempts(const struct exec_step *s)
{
    return s->attempts;
}

uint64_t exec_step_duration_us(const struct exec_step *s)
{
    if (s->status == EXEC_PENDING)
        return 0;
    return (exec_status_final(s->status) ? s->end_us : loop_now_us(s->block->ex->loop)) -
           s->start_us;
}

int exec_step_exit_code(const struct exec_step *s)
{
    return s->exit_code;
}

int exec_step_signal(const struct exec_step *s)
{
    return s->term_signal;
}

const char *exec_step_reason(const struct exec_step *s)
{
    return s->reason;
}

const char *exec_step_output(const struct exec_step *s, enum proc_stream stream, size_t *len,
                             uint64_t *total)
{
    const char *data = stream == PROC_STDOUT ? s->out : s->err;

    if (len != NULL)
        *len = stream == PROC_STDOUT ? s->out_len : s->err_len;
    if (total != NULL)
        *total = stream == PROC_STDOUT ? s->out_total : s->err_total;
    return data != NULL ? data : "";
}

pid_t exec_step_pid(const struct exec_step *s)
{
    return s->attempt.active ? s->attempt.pid : 0;
}

const char *exec_step_target(const struct exec_step *s)
{
    return s->ps->target;
}

struct retry_failure exec_step_failure(const struct exec_step *s)
{
    return s->failure;
}

/* ---- the report ---- */

static cJSON *output_json(const char *data, size_t len, uint64_t total)
{
    cJSON *o = cJSON_CreateObject();
    char *text = utf8_sanitize(data, len);

    cJSON_AddStringToObject(o, "tail", text);
    cJSON_AddNumberToObject(o, "bytes", (double)total);
    cJSON_AddBoolToObject(o, "truncated", total > len);
    free(text);
    return o;
}

static cJSON *block_report(const struct exec_block *b);

static cJSON *step_report(const struct exec_step *s)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "name", s->ps->name);
    cJSON_AddStringToObject(o, "kind", s->ps->kind == PLAN_STEP_PARALLEL ? "parallel" : "exec");
    cJSON_AddStringToObject(o, "status", status_names[s->status]);
    cJSON_AddNumberToObject(o, "attempts", s->attempts);
    cJSON_AddNumberToObject(o, "duration_ms", (double)exec_step_duration_us(s) / 1000.0);
    if (s->reason[0] != '\0')
        cJSON_AddStringToObject(o, "reason", s->reason);
    if (s->ps->kind == PLAN_STEP_PARALLEL) {
        if (s->child != NULL)
            cJSON_AddItemToObject(o, "block", block_report(s->child));
        return o;
    }
    if (s->attempts > 0) {
        if (s->exit_code >= 0)
            cJSON_AddNumberToObject(o, "exit_code", s->exit_code);
        else
            cJSON_AddNullToObject(o, "exit_code");
        if (s->term_signal != 0)
            cJSON_AddNumberToObject(o, "signal", s->term_signal);
        if (s->out != NULL) {
            cJSON_AddItemToObject(o, "stdout", output_json(s->out, s->out_len, s->out_total));
            cJSON_AddItemToObject(o, "stderr", output_json(s->err, s->err_len, s->err_total));
        }
    }
    return o;
}

static cJSON *block_report(const struct exec_block *b)
{
    cJSON *o = cJSON_CreateObject(), *steps, *counts, *result;
    size_t i;
    int st;

    cJSON_AddStringToObject(o, "name", b->pb->name);
    cJSON_AddStringToObject(o, "path", b->path);
    cJSON_AddStringToObject(o, "strategy", plan_strategy_name(b->pb->strategy));
    cJSON_AddStringToObject(o, "status", status_names[b->status]);
    cJSON_AddStringToObject(o, "reason", exec_block_reason(b));
    cJSON_AddNumberToObject(o, "duration_ms", (double)exec_block_elapsed_us(b) / 1000.0);
    counts = cJSON_AddObjectToObject(o, "counts");
    cJSON_AddNumberToObject(counts, "total", b->counts.total);
    for (st = 0; st < EXEC_NSTATUS; st++)
        cJSON_AddNumberToObject(counts, status_names[st], b->counts.by_status[st]);
    result = exec_block_result(b);
    cJSON_AddItemToObject(o, "result", result != NULL ? result : cJSON_CreateNull());
    steps = cJSON_AddArrayToObject(o, "steps");
    for (i = 0; i < b->n; i++)
        cJSON_AddItemToArray(steps, step_report(&b->steps[i]));
    return o;
}

cJSON *executor_report(const struct executor *ex)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "run_id", ex->run_id);
    cJSON_AddStringToObject(o, "plan", ex->plan->source);
    cJSON_AddStringToObject(o, "status", status_names[ex->root.status]);
    cJSON_AddNumberToObject(o, "duration_ms", (double)executor_elapsed_us(ex) / 1000.0);
    cJSON_AddItemToObject(o, "block", block_report(&ex->root));
    return o;
}
