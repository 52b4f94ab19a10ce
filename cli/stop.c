/* Stopping a run from outside: the stop signals and what they do. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/stop.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"

static const int stop_signums[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NSIGNALS (sizeof stop_signums / sizeof stop_signums[0])

struct stop {
    struct loop *loop;
    struct executor *ex;
    stop_fn on_signal; /* instead of the executor's */
    void (*note)(void *arg, const char *text);
    void *arg;
    uv_signal_t sigs[NSIGNALS];
    bool watching[NSIGNALS];
    bool finished;
    int count;
    int first;
    unsigned closing; /* handles whose close is pending */
};

static void say(struct stop *s, const char *text)
{
    if (s->note != NULL)
        s->note(s->arg, text);
    else
        fprintf(stderr, "n3ctl: %s\n", text);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct stop *s = h->data;
    unsigned procs;
    char text[256];

    if (s->on_signal != NULL) {
        if (++s->count == 1)
            s->first = signum;
        if (!s->finished)
            s->on_signal(s->arg, s->count, signum);
        return;
    }
    procs = executor_procs(s->ex);
    if (s->finished) {
        /* The run is over: whatever its steps left behind is killed now. */
        proc_flush_all(s->loop);
        return;
    }
    if (++s->count == 1) {
        s->first = signum;
        snprintf(text, sizeof text,
                 "SIG%s: stopping %u running command%s (TERM, then KILL after the grace "
                 "period); %s again kills %s now",
                 sigabbrev_np(signum), procs, procs == 1 ? "" : "s",
                 signum == SIGINT ? "Ctrl-C" : "the signal", procs == 1 ? "it" : "them");
        say(s, text);
        if (signum == SIGINT)
            snprintf(text, sizeof text, "interrupted (Ctrl-C)");
        else
            snprintf(text, sizeof text, "stopped by SIG%s", sigabbrev_np(signum));
        executor_cancel(s->ex, text);
        return;
    }
    say(s, "killing every running command now");
    executor_kill(s->ex);
    proc_flush_all(s->loop);
}

struct stop *stop_new(struct loop *loop, struct executor *ex,
                      void (*note)(void *arg, const char *text), void *arg)
{
    struct stop *s = xcalloc(1, sizeof *s);
    struct sigaction old;
    size_t i;

    s->loop = loop;
    s->ex = ex;
    s->note = note;
    s->arg = arg;
    for (i = 0; i < NSIGNALS; i++) {
        if (stop_signums[i] == SIGHUP && sigaction(SIGHUP, NULL, &old) == 0 &&
            old.sa_handler == SIG_IGN)
            continue;
        uv_signal_init(loop_uv(loop), &s->sigs[i]);
        s->sigs[i].data = s;
        uv_signal_start(&s->sigs[i], signal_cb, stop_signums[i]);
        uv_unref((uv_handle_t *)&s->sigs[i]);
        s->watching[i] = true;
    }
    return s;
}

struct stop *stop_new_fn(struct loop *loop, stop_fn fn, void *arg)
{
    struct stop *s = stop_new(loop, NULL, NULL, arg);

    s->on_signal = fn;
    return s;
}

void stop_finished(struct stop *s)
{
    s->finished = true;
    s->note = NULL; /* the progress display is gone */
}

static void free_cb(uv_handle_t *h)
{
    struct stop *s = h->data;

    if (--s->closing == 0)
        free(s);
}

void stop_free(struct stop *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < NSIGNALS; i++)
        s->closing += s->watching[i];
    if (s->closing == 0) {
        free(s);
        return;
    }
    for (i = 0; i < NSIGNALS; i++) {
        if (s->watching[i]) {
            s->watching[i] = false;
            uv_close((uv_handle_t *)&s->sigs[i], free_cb);
        }
    }
}

int stop_signals(const struct stop *s)
{
    return s->count;
}

int stop_first_signal(const struct stop *s)
{
    return s->first;
}

int stop_exit_code(const struct stop *s)
{
    return s->first == SIGINT ? EXIT_INTERRUPTED : 128 + s->first;
}

/* Commands that never ran because the run was stopped first. */
static unsigned count_never_started(const struct exec_block *b)
{
    unsigned n = 0;
    size_t i;

    for (i = 0; i < exec_block_nsteps(b); i++) {
        const struct exec_step *st = exec_block_step(b, i);

        if (exec_step_child(st) != NULL)
            n += count_never_started(exec_step_child(st));
        else if (exec_step_status(st) == EXEC_CANCELLED && exec_step_attempts(st) == 0)
            n++;
    }
    return n;
}

void stop_report(const struct stop *s)
{
    const struct exec_step *steps[32];
    size_t n = executor_interrupted(s->ex, steps, 32), i;
    unsigned never = count_never_started(executor_root(s->ex));

    if (s->count == 0)
        return;
    fprintf(stderr, "n3ctl: interrupted by SIG%s: ", sigabbrev_np(s->first));
    if (n == 0) {
        fprintf(stderr, "no step was running");
    } else {
        fprintf(stderr, "stopped %zu running step%s (", n, n == 1 ? "" : "s");
        for (i = 0; i < n && i < 32; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", exec_step_name(steps[i]));
        fprintf(stderr, "%s)", n > 32 ? ", ..." : "");
    }
    fprintf(stderr, "; %u step%s never started\n", never, never == 1 ? "" : "s");
}
