/* The local transport: the target is this machine; commands are processes (core/proc). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/proc.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/transport.h"

struct local_op {
    struct transport_op op;
    struct proc *proc;
    struct loop_timer *timer; /* the command's timeout */
    transport_output_fn on_output;
    transport_done_fn done;
    void *arg;
    uint64_t timeout_ms, grace_ms;
    bool timed_out, stopped;
    struct transport_result early; /* a command that could not start, reported from the loop */
};

static void local_op_free(struct local_op *o)
{
    loop_timer_free(o->timer);
    free(o);
}

static void op_output(struct proc *p, enum proc_stream stream, const char *data, size_t len,
                      void *arg)
{
    struct local_op *o = arg;

    if (o->on_output != NULL)
        o->on_output(o->arg, stream, data, len);
}

static void op_done(struct proc *p, void *arg)
{
    struct local_op *o = arg;
    struct transport_result r;
    char secs[32];

    transport_result_init(&r, TRANSPORT_OK);
    r.exit_signal = proc_term_signal(p);
    r.exit_code = r.exit_signal != 0 ? -1 : proc_exit_code(p);
    r.out = proc_output(p, PROC_STDOUT);
    r.err = proc_output(p, PROC_STDERR);
    if (o->timed_out) {
        snprintf(secs, sizeof secs, "%.3g", (double)o->timeout_ms / 1000.0);
        transport_result_fail(&r, TRANSPORT_TIMEOUT, RETRY_TIMEOUT,
                              "the command on %s ran past its timeout of %ss and was stopped",
                              o->op.t->name, secs);
    } else if (o->stopped) {
        transport_result_fail(&r, TRANSPORT_STOPPED, RETRY_SIGNAL, "the command on %s was stopped",
                              o->op.t->name);
    }
    o->done(o->arg, &r);
    proc_free(p);
    local_op_free(o);
}

static void op_timeout(void *arg)
{
    struct local_op *o = arg;

    if (proc_exited(o->proc))
        return; /* only leftovers hold the output: they get KILL after the grace period */
    o->timed_out = true;
    proc_terminate(o->proc, o->grace_ms);
}

static void op_stop(struct transport_op *op, uint64_t grace_ms)
{
    struct local_op *o = (struct local_op *)op;

    if (o->proc == NULL)
        return;
    o->stopped = true;
    proc_terminate(o->proc, grace_ms);
}

static bool op_exited(const struct transport_op *op)
{
    const struct local_op *o = (const struct local_op *)op;

    return o->proc == NULL || proc_exited(o->proc);
}

static void deliver_early(void *arg)
{
    struct local_op *o = arg;

    o->done(o->arg, &o->early);
    local_op_free(o);
}

static struct transport_op *local_run(struct transport *t, const struct transport_run *r)
{
    struct local_op *o = xcalloc(1, sizeof *o);
    const char *argv[] = {"/bin/sh", "-c", r->command, NULL};
    struct proc_spec spec;
    struct err err;
    int rc;

    o->op.t = t;
    o->op.stop = op_stop;
    o->op.exited = op_exited;
    o->on_output = r->on_output;
    o->done = r->on_done;
    o->arg = r->arg;
    o->timeout_ms = r->timeout_ms;
    o->grace_ms = r->grace_ms ? r->grace_ms : 5000;
    memset(&spec, 0, sizeof spec);
    spec.argv = argv;
    spec.input = r->input != NULL ? r->input : NULL;
    spec.input_len = r->input_len;
    spec.output_limit = r->output_limit;
    spec.grace_ms = o->grace_ms;
    spec.on_output = r->on_output != NULL ? op_output : NULL;
    spec.on_done = op_done;
    spec.arg = o;
    rc = proc_start(t->loop, &spec, &o->proc, &err);
    if (rc != 0) {
        o->proc = NULL;
        transport_result_init(&o->early, TRANSPORT_FAILED);
        transport_result_fail(&o->early, TRANSPORT_FAILED, RETRY_SPAWN, "on %s: %s", t->name,
                              err.msg);
        loop_defer(t->loop, deliver_early, o);
        return &o->op;
    }
    if (r->timeout_ms > 0) {
        o->timer = loop_timer_new(t->loop, op_timeout, o);
        loop_timer_start(o->timer, r->timeout_ms);
    }
    return &o->op;
}

static struct transport_op *local_put(struct transport *t, const char *local, const char *path,
                                      unsigned mode, transport_progress_fn progress,
                                      transport_done_fn done, void *arg)
{
    struct transport_run r;
    struct transport_op *op;
    struct buf cmd;

    (void)progress; /* cp copies in one go */
    buf_init(&cmd);
    shell_cmdf(&cmd, "cp -- %s %s && chmod %o %s", local, path, mode, path);
    memset(&r, 0, sizeof r);
    r.command = cmd.data;
    r.timeout_ms = t->command_timeout_ms;
    r.on_done = done;
    r.arg = arg;
    op = local_run(t, &r);
    buf_done(&cmd);
    return op;
}

struct connect_op {
    struct transport_op op;
    transport_done_fn done;
    void *arg;
};

static void connect_stop(struct transport_op *op, uint64_t grace_ms)
{
}

static bool connect_exited(const struct transport_op *op)
{
    return true;
}

static void connect_deliver(void *arg)
{
    struct connect_op *c = arg;
    struct transport_result r;

    transport_result_init(&r, TRANSPORT_OK);
    r.exit_code = 0;
    c->done(c->arg, &r);
    free(c);
}

/* This machine is always there. */
static struct transport_op *local_connect(struct transport *t, transport_done_fn done, void *arg)
{
    struct connect_op *c = xcalloc(1, sizeof *c);

    c->op.t = t;
    c->op.stop = connect_stop;
    c->op.exited = connect_exited;
    c->done = done;
    c->arg = arg;
    loop_defer(t->loop, connect_deliver, c);
    return &c->op;
}

static uint64_t local_handshake_us(const struct transport *t)
{
    return 0;
}

static void local_free(struct transport *t)
{
    free(t->name);
    free(t);
}

static const struct transport_ops local_ops = {
    .name = "local",
    .run = local_run,
    .put = local_put,
    .connect = local_connect,
    .handshake_us = local_handshake_us,
    .free = local_free,
};

struct transport *transport_local_new(struct loop *loop, const char *name)
{
    struct transport *t = xcalloc(1, sizeof *t);

    t->ops = &local_ops;
    t->loop = loop;
    t->name = xstrdup(name);
    t->command_timeout_ms = 300000;
    return t;
}
