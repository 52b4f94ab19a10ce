/*
 * Stopping a run from outside: SIGINT, SIGTERM, SIGHUP (unless ignored, as under nohup) and
 * SIGQUIT. The first stops the running steps gracefully (TERM, then KILL after the grace
 * period), the next kills them at once; once the run is over, a signal kills what the steps
 * left behind. The watchers do not keep the loop alive.
 */
#ifndef N3_STOP_H
#define N3_STOP_H

#include <stdbool.h>

struct loop;
struct executor;
struct stop;

/* note(arg, text) shows what is happening (the live progress, or stderr when NULL). */
struct stop *stop_new(struct loop *loop, struct executor *ex,
                      void (*note)(void *arg, const char *text), void *arg);
/* Without an executor: fn(arg, count, signum) for every signal until stop_finished; count is
 * 1 for the first. */
typedef void (*stop_fn)(void *arg, int count, int signum);
struct stop *stop_new_fn(struct loop *loop, stop_fn fn, void *arg);
/* The run has ended: signals now only kill leftovers. */
void stop_finished(struct stop *s);
void stop_free(struct stop *s);

int stop_signals(const struct stop *s); /* how many arrived while the run went on */
int stop_first_signal(const struct stop *s);
/* The exit status for an interrupted run: 130 for SIGINT, 128 + the signal otherwise. */
int stop_exit_code(const struct stop *s);
/* On stderr: which steps were stopped, how many never started. Nothing if no signal came. */
void stop_report(const struct stop *s);

#endif
