/*
 * The health of one endpoint (an instance: a target's slot), as NAMEL3SS.md has it: a check
 * runs every interval, and its outcomes become a state. Healthy after healthy_threshold
 * successes in a row (degraded instead while the last success was slower than degraded_us);
 * unhealthy after unhealthy_threshold failures in a row; critical when those failures say that
 * nothing is there at all (the instance is gone: its process, its port). Every state carries
 * its message and since when. A check that runs past its timeout is cancelled and is a failure.
 *
 * A circuit breaker (core/breaker.h) per endpoint: after breaker_failures failures in a row it
 * opens, and no check goes until recovery_ms has passed (a dead host is not hammered, nor does
 * each interval wait for its timeout); then one trial check. The state stays what the
 * failures made it; the message says the breaker is open and when the next try is.
 *
 * The checks themselves (HTTP, TCP, a command) are the caller's (plugins/): health_check_ops.
 * Time is the loop's, so tests run this on the fake clock.
 */
#ifndef N3_HEALTH_H
#define N3_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct health;

enum health_state {
    HEALTH_UNKNOWN, /* not enough checks yet */
    HEALTH_HEALTHY,
    HEALTH_DEGRADED,  /* answering, but slower than degraded_us */
    HEALTH_UNHEALTHY, /* failing */
    HEALTH_CRITICAL,  /* nothing there */
};

enum probe_verdict {
    PROBE_OK,
    PROBE_FAIL, /* it answered wrong, or too late, or the way there failed */
    PROBE_GONE, /* nothing is there to answer (connection refused; the process is gone) */
};

/* One check's outcome, from the check's implementation. */
struct probe_outcome {
    enum probe_verdict verdict;
    uint64_t latency_us;
    char detail[200]; /* "HTTP 503 Service Unavailable", "connection refused", ... */
};

typedef void (*probe_done_fn)(void *arg, const struct probe_outcome *o);

/* How to check the endpoint once: start returns a handle that cancel stops (done is not
 * called then); done is called once, after start returned. */
struct health_check_ops {
    void *(*start)(void *ctx, probe_done_fn done, void *arg);
    void (*cancel)(void *ctx, void *check);
};

struct health_policy {
    uint64_t interval_ms;         /* from the start of a check to the next; default 5000 */
    uint64_t timeout_ms;          /* a check's; default 2000 */
    unsigned healthy_threshold;   /* default 2 */
    unsigned unhealthy_threshold; /* default 3 */
    uint64_t degraded_us;         /* 0: never degraded */
    unsigned breaker_failures;    /* failures in a row that open the breaker; default 5 */
    uint64_t breaker_recovery_ms; /* default 30000 */
};

struct health_status {
    enum health_state state;
    uint64_t since_ms; /* loop time of the last change of state */
    char message[256];
    unsigned successes, failures; /* in a row, now */
    uint64_t checks;              /* done so far */
    uint64_t last_latency_us;     /* of the last check that answered */
    bool breaker_open;
    uint64_t next_check_ms; /* loop time the next check goes (0: one is in flight) */
};

/* Told on every change of state (and of its message's cause), with the status. */
typedef void (*health_change_fn)(void *arg, const struct health_status *st);

void health_policy_default(struct health_policy *p);

/* name is for messages ("t1 blue"). Nothing is checked before health_start. */
struct health *health_new(struct loop *loop, const char *name, const struct health_policy *p,
                          const struct health_check_ops *ops, void *ctx, health_change_fn on_change,
                          void *arg);
void health_free(struct health *h);

/* Check now, then every interval. */
void health_start(struct health *h);
/* Stop checking (the state stays as it is). */
void health_stop(struct health *h);

const struct health_status *health_status(const struct health *h);

struct metrics;
struct trace;
struct span;

/*
 * Where an endpoint's checks are counted and traced (any member NULL: not that). Metrics
 * (labels probe, target, slot): n3ctl_probe_checks_total{result="ok|fail|gone|timeout"},
 * n3ctl_probe_duration_seconds (a histogram of the checks that answered),
 * n3ctl_probe_state (0 unknown, 1 healthy, 2 degraded, 3 unhealthy, 4 critical),
 * n3ctl_probe_breaker_open (0/1) and n3ctl_probe_held_back_total (checks the open breaker did
 * not send). A span "probe.check" a check, under parent, with the labels, its result, detail
 * and latency; status ok, error or cancelled. The strings are copied.
 */
struct health_obs {
    struct metrics *metrics;
    struct trace *trace;
    const struct span *parent;
    const char *probe, *target, *slot;
};
void health_observe(struct health *h, const struct health_obs *obs);
const char *health_state_name(enum health_state s); /* "healthy", ... */

#endif
