/*
 * Local child processes through uv_spawn. Each child leads its own session
 * and process group, so stopping it stops everything it started: TERM to the
 * group, then KILL after a grace period. stdout and stderr are captured into
 * bounded tails. A step's processes do not outlive it: when the leader exits,
 * anything left in its group gets TERM, and KILL once the grace period is over.
 */
#ifndef N3_PROC_H
#define N3_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

struct loop;
struct proc;
struct tail;

enum proc_stream { PROC_STDOUT = 1, PROC_STDERR = 2 };

/* Raw output as it arrives (optional): for streaming line by line. */
typedef void (*proc_output_fn)(struct proc *p, enum proc_stream stream, const char *data,
                               size_t len, void *arg);
/* The leader has exited and both pipes are closed. */
typedef void (*proc_done_fn)(struct proc *p, void *arg);

struct proc_spec {
    const char *const *argv; /* argv[0] is looked up in PATH */
    const char *const *env;  /* full environment "K=V", NULL-terminated; NULL: inherit */
    const char *cwd;         /* NULL: inherit */
    const void *input;       /* bytes for stdin (copied); NULL: stdin is /dev/null */
    size_t input_len;
    bool input_pipe;     /* stdin is a pipe that stays open (input is not used): proc_write
                          * feeds it as the child goes, proc_close_input ends it */
    size_t output_limit; /* bytes kept of each stream; 0: 64 KiB */
    uint64_t grace_ms;   /* TERM -> KILL for leftovers of the group after the leader exits */
    proc_output_fn on_output;
    proc_done_fn on_done;
    void *arg;
};

/* Start a process. -1 with a message when it cannot start (no such program, not executable,
 * bad cwd), PROC_BUSY when the system is out of file descriptors or processes for now (try
 * again once a process has ended): nothing is left running and on_done is never called. */
#define PROC_BUSY (-2)
int proc_start(struct loop *loop, const struct proc_spec *spec, struct proc **out, struct err *err);

/* Stop the whole process group: TERM now, KILL after grace_ms if anything is still there.
 * Calling it again with a shorter grace shortens the wait; grace 0 is KILL now. */
void proc_terminate(struct proc *p, uint64_t grace_ms);

/* For a process started with input_pipe: write data (copied) to its stdin, in order; the
 * pipe takes it as the child reads. -1 when stdin is closed (proc_close_input, or a write
 * failed: the child closed it or exited), and the bytes are dropped. SIGPIPE must be ignored
 * (n3ctl's main does), so that a child that is gone fails the write instead of killing us. */
int proc_write(struct proc *p, const void *data, size_t len);
/* Close its stdin: the child reads end-of-file once it has read what was written. */
void proc_close_input(struct proc *p);

pid_t proc_pid(const struct proc *p);
bool proc_exited(const struct proc *p);
bool proc_stopped(const struct proc *p);    /* proc_terminate was called */
int proc_exit_code(const struct proc *p);   /* valid when proc_term_signal is 0 */
int proc_term_signal(const struct proc *p); /* the signal that ended the leader, or 0 */
const struct tail *proc_output(const struct proc *p, enum proc_stream stream);

/* Release the object (after on_done, or to abandon a running process: it is
 * KILLed). Leftovers of the group that got TERM still get KILL after the grace
 * period; proc_flush_all sends it at once. */
void proc_free(struct proc *p);
/* Send every pending KILL now (at exit, so nothing a step started outlives n3ctl). */
void proc_flush_all(struct loop *loop);

/* Open processes and pending leftover groups on this loop (for tests and the console). */
unsigned proc_count(const struct loop *loop);
/* Groups of finished steps that got TERM and may still have processes in them. */
unsigned proc_lingering(const struct loop *loop);

#endif
