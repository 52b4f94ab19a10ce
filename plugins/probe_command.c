/* The command probe: a command run on the instance's target (through its transport); exit 0
 * is healthy. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/hooks.h"
#include "deploy/inventory.h"
#include "deploy/probe.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"

static const char *const keys[] = {"command", NULL};

struct ctx {
    struct loop *loop;
    struct transport *t;
    char *command; /* its variables filled in */
    char *error;   /* a variable with no value: said by every check */
    uint64_t timeout_ms;
};

/* One check; it lives until the transport has answered, also when cancelled. */
struct check {
    struct ctx *x;
    probe_done_fn done;
    void *arg;
    bool cancelled;
    struct transport_op *op;
    uint64_t t0_us;
};

static int check_config(const struct cfg *c, const cJSON *probe, struct err *err)
{
    const char *cmd = NULL;

    if (cfg_get_string(c, probe, "command", true, &cmd, err) != 0)
        return -1;
    if (cmd[0] == '\0')
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(probe, "command"),
                         "an empty command");
    return 0;
}

static void *new_ctx(const struct probe_spec *spec, const struct probe_endpoint *ep)
{
    struct ctx *x = xcalloc(1, sizeof *x);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec->config, "command");
    struct hook_vars hv = {0};
    char port[16];
    struct buf cmd;
    struct err err;

    x->loop = ep->loop;
    x->t = ep->t;
    x->timeout_ms = spec->policy.timeout_ms;
    snprintf(port, sizeof port, "%u", ep->port);
    hv.port = port;
    hv.slot = ep->slot;
    hv.version = ep->version;
    hv.target = ep->target->name;
    buf_init(&cmd);
    if (hook_expand("probe command", v->valuestring, &hv, &cmd, &err) != 0)
        x->error = xstrdup(err.msg);
    else
        x->command = buf_detach(&cmd, NULL);
    buf_done(&cmd);
    return x;
}

static void free_ctx(void *arg)
{
    struct ctx *x = arg;

    free(x->command);
    free(x->error);
    free(x);
}

static void ran(void *arg, const struct transport_result *r)
{
    struct check *k = arg;
    struct probe_outcome o;

    if (k->cancelled) {
        free(k);
        return;
    }
    memset(&o, 0, sizeof o);
    o.latency_us = loop_now_us(k->x->loop) - k->t0_us;
    if (r->status != TRANSPORT_OK) {
        o.verdict = PROBE_FAIL;
        snprintf(o.detail, sizeof o.detail, "%.190s", r->msg);
    } else if (r->exit_code == 0) {
        o.verdict = PROBE_OK;
        snprintf(o.detail, sizeof o.detail, "exit 0");
    } else {
        char *text = tail_dup(r->err->len > 0 ? r->err : r->out, NULL), *nl = strchr(text, '\n');

        if (nl != NULL)
            *nl = '\0';
        o.verdict = PROBE_FAIL;
        if (r->exit_signal != 0)
            snprintf(o.detail, sizeof o.detail, "signal %d%s%.150s", r->exit_signal,
                     text[0] ? ": " : "", text);
        else
            snprintf(o.detail, sizeof o.detail, "exit %d%s%.150s", r->exit_code,
                     text[0] ? ": " : "", text);
        free(text);
    }
    k->done(k->arg, &o);
    free(k);
}

static void say_error(void *arg)
{
    struct check *k = arg;
    struct probe_outcome o;

    if (!k->cancelled) {
        memset(&o, 0, sizeof o);
        o.verdict = PROBE_FAIL;
        snprintf(o.detail, sizeof o.detail, "%.190s", k->x->error);
        k->done(k->arg, &o);
    }
    free(k);
}

static void *start(void *arg, probe_done_fn done, void *done_arg)
{
    struct ctx *x = arg;
    struct check *k = xcalloc(1, sizeof *k);
    struct transport_run run;

    k->x = x;
    k->done = done;
    k->arg = done_arg;
    k->t0_us = loop_now_us(x->loop);
    if (x->error != NULL) {
        loop_defer(x->loop, say_error, k);
        return k;
    }
    memset(&run, 0, sizeof run);
    run.command = x->command;
    run.timeout_ms = x->timeout_ms + 1000; /* the health check ends it first, with its message */
    run.grace_ms = 1000;
    run.output_limit = 4096;
    run.unfenced = true; /* a probe only looks */
    run.on_done = ran;
    run.arg = k;
    k->op = transport_run(x->t, &run);
    return k;
}

static void cancel(void *arg, void *check)
{
    struct check *k = check;

    (void)arg;
    k->cancelled = true;
    if (k->op != NULL)
        transport_stop(k->op, 0);
}

static const struct health_check_ops ops = {start, cancel};

const struct probe_kind probe_command = {
    .name = "command",
    .keys = keys,
    .check = check_config,
    .new_ctx = new_ctx,
    .free_ctx = free_ctx,
    .ops = &ops,
};
