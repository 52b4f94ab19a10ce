/*
 * The executor: runs a plan's parallel blocks with their strategies
 * (all, any_success, race, map_reduce, collect), max_concurrency, block and
 * step timeouts, fail_fast, retry with backoff, depends_on, and a global cap
 * on processes. Everything happens on the loop: no threads, no waiting.
 * Stopping a step stops its process group (TERM, grace, KILL).
 *
 * Runtime objects (blocks, steps) are opaque and read through accessors;
 * they live as long as the executor.
 */
#ifndef N3_EXECUTOR_H
#define N3_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/plan.h"
#include "core/proc.h"
#include "core/retry.h"

struct loop;
struct bus;
struct metrics;
struct trace;
struct executor;
struct exec_block;
struct exec_step;

enum exec_status {
    EXEC_PENDING,
    EXEC_RUNNING,
    EXEC_SUCCEEDED,
    EXEC_FAILED,
    EXEC_TIMED_OUT,
    EXEC_CANCELLED,
};
#define EXEC_NSTATUS 6

/*
 * Runners run one attempt of a command step. The executor has one for local commands (exec
 * and shell steps, through proc); a higher layer provides one for remote steps.
 */
struct exec_attempt;

#define EXEC_RUNNER_BUSY (-2)

/* How an attempt ended, as its runner tells it. */
struct exec_outcome {
    int exit_code;                /* -1 when it did not exit by itself */
    int term_signal;              /* 0 when not ended by a signal */
    const struct tail *out, *err; /* captured output; read before exec_attempt_done returns */
    bool failed;                  /* it could not finish (connection lost, ...): failure says how */
    struct retry_failure failure;
    const char *reason; /* when failed: what happened, for the report */
};

struct exec_runner {
    const char *name;
    /* Start an attempt of step ps. 0: started, exec_attempt_done follows exactly once.
     * -1: it could not start; *f and err say why, nothing runs. EXEC_RUNNER_BUSY: no
     * resources for now (descriptors, processes): try again when another attempt ends. */
    int (*start)(void *arg, struct exec_attempt *a, const struct plan_step *ps,
                 struct retry_failure *f, struct err *err);
    /* Stop the attempt: TERM now, KILL after grace_ms (0: KILL now); done still follows. */
    void (*stop)(void *arg, struct exec_attempt *a, uint64_t grace_ms);
    /* Has the command itself exited (leftovers of it may still hold its output open)? */
    bool (*exited)(void *arg, struct exec_attempt *a);
    void *arg;
};

/* For runners: their state for an attempt, output as it arrives, and the end. */
void exec_attempt_set_data(struct exec_attempt *a, void *data, pid_t pid);
void *exec_attempt_data(const struct exec_attempt *a);
void exec_attempt_output(struct exec_attempt *a, enum proc_stream stream, const char *data,
                         size_t len);
void exec_attempt_done(struct exec_attempt *a, const struct exec_outcome *o);
const struct exec_step *exec_attempt_step(const struct exec_attempt *a);

/* Output of steps as it arrives (for `n3ctl exec`'s prefixed lines). */
typedef void (*exec_output_fn)(void *arg, const struct exec_step *s, enum proc_stream stream,
                               const char *data, size_t len);

struct exec_opts {
    unsigned max_procs;               /* commands running at once in the whole plan; 0: no cap */
    const struct exec_runner *remote; /* runs PLAN_STEP_REMOTE steps */
    exec_output_fn on_output;
    void *output_arg;
    struct bus *bus;         /* optional: executor.* events */
    struct metrics *metrics; /* optional: n3_tasks_total, n3_task_duration_seconds, ... */
    struct trace *trace;     /* optional: a span for every block and step */
    const char *run_id;      /* correlation id of the events; NULL: a random one */
};

struct exec_counts {
    unsigned total;
    unsigned by_status[EXEC_NSTATUS];
};

typedef void (*executor_done_fn)(struct executor *ex, void *arg);

/* The plan must outlive the executor. */
struct executor *executor_new(struct loop *loop, const struct plan *plan,
                              const struct exec_opts *opts);
void executor_start(struct executor *ex, executor_done_fn done, void *arg);
/* Stop everything: running steps get TERM (KILL after the plan's grace period),
 * pending ones never start; all end as cancelled with this reason. */
void executor_cancel(struct executor *ex, const char *reason);
/* KILL every running process now (a second Ctrl-C). */
void executor_kill(struct executor *ex);
bool executor_finished(const struct executor *ex);
void executor_free(struct executor *ex);

const char *executor_run_id(const struct executor *ex);
uint64_t executor_elapsed_us(const struct executor *ex);
const struct exec_block *executor_root(const struct executor *ex);
/* Processes running now. */
unsigned executor_procs(const struct executor *ex);
/* Blocks running now, outermost first, at most max of them; returns how many there are. */
size_t executor_running_blocks(const struct executor *ex, const struct exec_block **out,
                               size_t max);
/* Steps whose process was stopped by a cancel (not those that never started). */
size_t executor_interrupted(const struct executor *ex, const struct exec_step **out, size_t max);

/* The whole run as one JSON document (see docs/plan.md, "Output"). Caller frees. */
cJSON *executor_report(const struct executor *ex);

const char *exec_status_name(enum exec_status s);
bool exec_status_final(enum exec_status s);

const char *exec_block_name(const struct exec_block *b);
const char *exec_block_path(const struct exec_block *b); /* "deploy/tests/unit" */
enum plan_strategy exec_block_strategy(const struct exec_block *b);
enum exec_status exec_block_status(const struct exec_block *b);
const char *exec_block_reason(const struct exec_block *b); /* why it ended as it did, or "" */
void exec_block_counts(const struct exec_block *b, struct exec_counts *c);
uint64_t exec_block_elapsed_us(const struct exec_block *b);
size_t exec_block_nsteps(const struct exec_block *b);
const struct exec_step *exec_block_step(const struct exec_block *b, size_t i);
/* The block's result as the strategy defines it (NULL while running). Caller frees. */
cJSON *exec_block_result(const struct exec_block *b);

const char *exec_step_name(const struct exec_step *s);
const struct exec_block *exec_step_block(const struct exec_step *s); /* the block it is in */
const struct exec_block *exec_step_child(const struct exec_step *s); /* nested block, or NULL */
enum exec_status exec_step_status(const struct exec_step *s);
unsigned exec_step_attempts(const struct exec_step *s);
uint64_t exec_step_duration_us(const struct exec_step *s);
int exec_step_exit_code(const struct exec_step *s);      /* -1 when it did not exit by itself */
int exec_step_signal(const struct exec_step *s);         /* 0 when not ended by a signal */
const char *exec_step_reason(const struct exec_step *s); /* "" when it succeeded */
/* Captured output of the last attempt (the bounded tail), its total size, truncated or not. */
const char *exec_step_output(const struct exec_step *s, enum proc_stream stream, size_t *len,
                             uint64_t *total);
pid_t exec_step_pid(const struct exec_step *s);          /* of the running attempt, or 0 */
const char *exec_step_target(const struct exec_step *s); /* remote steps: the target, or NULL */
/* How the last failed attempt failed (kind RETRY_EXIT with the code, RETRY_CONNECT, ...). */
struct retry_failure exec_step_failure(const struct exec_step *s);

#endif
