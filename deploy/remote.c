/* Remote steps: the executor's runner for commands on targets, with a breaker per target. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/breaker.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/remote.h"
#include "deploy/ssh.h"
#include "deploy/transport.h"

struct remote_target {
    const struct inv_target *t;
    struct transport *tr;
    struct breaker breaker;
    bool offline;
};

struct remote {
    struct loop *loop;
    const struct inventory *inv;
    const struct inv_env *env;
    struct remote_opts opts;
    struct ssh_pool *pool; /* made when the first ssh target is used */
    struct remote_target *targets;
    size_t ntargets;
    struct exec_runner runner;
    struct transport *router_tr; /* to the router's host (its "on"), made on first use */
};

/* One attempt on a target. */
struct remote_attempt {
    struct remote *r;
    struct remote_target *rt;
    struct exec_attempt *a;
    struct transport_op *op;
};

static struct remote_target *find_target(struct remote *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->ntargets; i++) {
        if (strcmp(r->targets[i].t->name, name) == 0)
            return &r->targets[i];
    }
    return NULL;
}

void remote_ssh_settings(const struct inv_ssh *s, struct ssh_settings *out)
{
    memset(out, 0, sizeof *out);
    out->identities = (const char *const *)s->identities;
    out->known_hosts = s->known_hosts;
    out->agent = s->agent;
    out->connect_timeout_ms = s->connect_timeout_ms;
    out->auth_timeout_ms = s->auth_timeout_ms;
    out->keepalive_ms = s->keepalive_ms;
    out->max_handshakes = s->max_handshakes;
}

static int ensure_pool(struct remote *r, struct err *err)
{
    struct ssh_settings set;

    if (r->pool != NULL)
        return 0;
    remote_ssh_settings(inventory_ssh(r->inv), &set);
    r->pool = ssh_pool_new(r->loop, &set, err);
    return r->pool != NULL ? 0 : -1;
}

static struct transport *target_transport(struct remote *r, struct remote_target *rt,
                                          struct err *err)
{
    if (rt->tr != NULL)
        return rt->tr;
    if (rt->t->transport == INV_SSH && ensure_pool(r, err) != 0)
        return NULL;
    rt->tr = transport_new(r->loop, rt->t, r->pool, inventory_ssh(r->inv)->command_timeout_ms);
    rt->tr->notice = r->opts.notice;
    rt->tr->notice_arg = r->opts.notice_arg;
    return rt->tr;
}

struct transport *remote_transport(struct remote *r, const char *target)
{
    struct remote_target *rt = find_target(r, target);
    struct err err;

    return rt != NULL ? target_transport(r, rt, &err) : NULL;
}

struct transport *remote_router_transport(struct remote *r, struct err *err)
{
    const struct inv_router *ir = inv_env_router(r->env);

    if (ir == NULL || ir->on == NULL)
        return NULL;
    if (r->router_tr != NULL)
        return r->router_tr;
    if (ir->on->transport == INV_SSH && ensure_pool(r, err) != 0)
        return NULL;
    r->router_tr =
        transport_new(r->loop, ir->on, r->pool, inventory_ssh(r->inv)->command_timeout_ms);
    r->router_tr->notice = r->opts.notice;
    r->router_tr->notice_arg = r->opts.notice_arg;
    return r->router_tr;
}

bool remote_offline(const struct remote *r, const char *target)
{
    size_t i;

    for (i = 0; i < r->ntargets; i++) {
        if (strcmp(r->targets[i].t->name, target) == 0)
            return r->targets[i].offline;
    }
    return false;
}

static void on_output(void *arg, enum proc_stream stream, const char *data, size_t len)
{
    struct remote_attempt *ra = arg;

    exec_attempt_output(ra->a, stream, data, len);
}

static void on_done(void *arg, const struct transport_result *tr)
{
    struct remote_attempt *ra = arg;
    struct remote_target *rt = ra->rt;
    uint64_t now = loop_now_ms(ra->r->loop);
    struct exec_outcome o;

    memset(&o, 0, sizeof o);
    o.exit_code = tr->exit_code;
    o.term_signal = tr->exit_signal;
    o.out = tr->out;
    o.err = tr->err;
    switch (tr->status) {
    case TRANSPORT_OK:
    case TRANSPORT_STOPPED: /* the executor stopped it and knows why */
        breaker_success(&rt->breaker, now);
        rt->offline = false;
        if (tr->status == TRANSPORT_STOPPED && o.term_signal == 0 && o.exit_code < 0)
            o.term_signal = 15;
        break;
    case TRANSPORT_UNREACHABLE:
        breaker_failure(&rt->breaker, now);
        rt->offline = true;
        o.failed = true;
        break;
    default: /* refused, timed out, failed */
        o.failed = true;
        break;
    }
    if (o.failed) {
        o.failure = tr->failure;
        o.reason = tr->msg;
    }
    exec_attempt_done(ra->a, &o);
    free(ra);
}

static int runner_start(void *arg, struct exec_attempt *a, const struct plan_step *ps,
                        struct retry_failure *f, struct err *err)
{
    struct remote *r = arg;
    struct remote_target *rt = find_target(r, ps->target);
    uint64_t now = loop_now_ms(r->loop);
    struct transport_run run;
    struct remote_attempt *ra;
    struct transport *tr;

    if (rt == NULL) {
        *f = (struct retry_failure){RETRY_VALIDATION, 0};
        return err_set(err, "no target \"%s\" in environment \"%s\"", ps->target,
                       inv_env_name(r->env));
    }
    if (!breaker_allow(&rt->breaker, now)) {
        *f = (struct retry_failure){RETRY_CONNECT, 0};
        return err_set(err,
                       "%s is offline: it failed %u times in a row; the next try is in %.1fs "
                       "(circuit breaker)",
                       ps->target, rt->breaker.policy.failure_threshold,
                       (double)breaker_retry_in_ms(&rt->breaker, now) / 1000.0);
    }
    tr = target_transport(r, rt, err);
    if (tr == NULL) {
        *f = (struct retry_failure){RETRY_VALIDATION, 0};
        return -1;
    }
    ra = xcalloc(1, sizeof *ra);
    ra->r = r;
    ra->rt = rt;
    ra->a = a;
    memset(&run, 0, sizeof run);
    run.command = ps->command;
    /* The step's timeout, else n3.json's; the transport counts it from the command's start. */
    run.timeout_ms =
        ps->timeout_ms > 0 ? ps->timeout_ms : inventory_ssh(r->inv)->command_timeout_ms;
    run.grace_ms = r->opts.grace_ms;
    run.output_limit = r->opts.output_limit;
    run.on_output = on_output;
    run.on_done = on_done;
    run.arg = ra;
    ra->op = transport_run(tr, &run);
    exec_attempt_set_data(a, ra, 0);
    return 0;
}

static void runner_stop(void *arg, struct exec_attempt *a, uint64_t grace_ms)
{
    struct remote_attempt *ra = exec_attempt_data(a);

    transport_stop(ra->op, grace_ms);
}

static bool runner_exited(void *arg, struct exec_attempt *a)
{
    struct remote_attempt *ra = exec_attempt_data(a);

    return transport_exited(ra->op);
}

struct remote *remote_new(struct loop *loop, const struct inventory *inv, const struct inv_env *env,
                          const struct remote_opts *opts, struct err *err)
{
    struct remote *r = xcalloc(1, sizeof *r);
    struct breaker_policy bp;
    size_t i;

    r->loop = loop;
    r->inv = inv;
    r->env = env;
    r->opts = *opts;
    r->ntargets = inv_env_ntargets(env);
    r->targets = xcalloc(r->ntargets, sizeof *r->targets);
    breaker_policy_default(&bp);
    bp.failure_threshold = 3;
    for (i = 0; i < r->ntargets; i++) {
        r->targets[i].t = inv_env_target(env, i);
        breaker_init(&r->targets[i].breaker, &bp);
    }
    r->runner = (struct exec_runner){.name = "remote",
                                     .start = runner_start,
                                     .stop = runner_stop,
                                     .exited = runner_exited,
                                     .arg = r};
    (void)err;
    return r;
}

void remote_free(struct remote *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->ntargets; i++)
        transport_free(r->targets[i].tr);
    transport_free(r->router_tr);
    ssh_pool_free(r->pool);
    free(r->targets);
    free(r);
}

const struct exec_runner *remote_runner(struct remote *r)
{
    return &r->runner;
}
