/* n3ctl exec: one command on many targets, each output line prefixed with its target. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/fleet.h"
#include "cli/progress.h"
#include "cli/stop.h"
#include "cli/term.h"
#include "core/fmt.h"
#include "core/buf.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/plan.h"
#include "core/proc.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/remote.h"

#define EXEC_DEFAULT_FANOUT 32

/* Partial lines of one target, until their newline comes. */
struct pending {
    const struct exec_step *step;
    struct buf out, err;
};

struct exec_cli {
    struct loop *loop;
    struct executor *ex;
    struct stop *stop;
    bool json;
    /* On a terminal (and without --raw), output is shown with the sequences that would take
     * over the terminal escaped (term_add_output); into a pipe or a file it goes as it is. */
    bool escape[2]; /* PROC_STDOUT, PROC_STDERR */
    struct buf shown;
    struct pending *pend;
    size_t npend;
};

enum outcome { O_OK, O_FAILED, O_UNREACHABLE, O_REFUSED, O_TIMED_OUT, O_CANCELLED, O_COUNT };
static const char *const outcome_names[O_COUNT] = {"ok",      "failed",    "unreachable",
                                                   "refused", "timed_out", "cancelled"};

static struct pending *pending_for(struct exec_cli *x, const struct exec_step *s)
{
    size_t i;

    for (i = 0; i < x->npend; i++) {
        if (x->pend[i].step == s)
            return &x->pend[i];
    }
    x->pend = xreallocarray(x->pend, x->npend + 1, sizeof *x->pend);
    x->pend[x->npend].step = s;
    buf_init(&x->pend[x->npend].out);
    buf_init(&x->pend[x->npend].err);
    return &x->pend[x->npend++];
}

static void print_line(struct exec_cli *x, const struct exec_step *s, enum proc_stream stream,
                       const char *line, size_t len)
{
    FILE *f = stream == PROC_STDOUT ? stdout : stderr;

    /* pdsh's format, so dshbak and grep keep working: "target: line". */
    if (!x->escape[stream == PROC_STDOUT ? 0 : 1]) {
        fprintf(f, "%s: %.*s\n", exec_step_name(s), (int)len, line);
        return;
    }
    buf_reset(&x->shown);
    if (term_add_output(&x->shown, line, len))
        buf_adds(&x->shown, "\033[0m"); /* its colours end with it, not in the next line */
    fprintf(f, "%s: %s\n", exec_step_name(s), x->shown.data);
}

static void on_output(void *arg, const struct exec_step *s, enum proc_stream stream,
                      const char *data, size_t len)
{
    struct exec_cli *x = arg;
    struct pending *p;
    struct buf *b;
    char *nl;
    size_t start = 0;

    if (x->json)
        return;
    p = pending_for(x, s);
    b = stream == PROC_STDOUT ? &p->out : &p->err;
    buf_add(b, data, len);
    while ((nl = memchr(b->data + start, '\n', b->len - start)) != NULL) {
        print_line(x, s, stream, b->data + start, (size_t)(nl - b->data) - start);
        start = (size_t)(nl - b->data) + 1;
    }
    if (start > 0) {
        memmove(b->data, b->data + start, b->len - start);
        b->len -= start;
        b->data[b->len] = '\0';
    }
    /* A line longer than this is printed in pieces rather than held without bound. */
    if (b->len > 64 * 1024) {
        print_line(x, s, stream, b->data, b->len);
        buf_reset(b);
    }
}

static void flush_pending(struct exec_cli *x)
{
    size_t i;

    for (i = 0; i < x->npend; i++) {
        if (x->pend[i].out.len > 0)
            print_line(x, x->pend[i].step, PROC_STDOUT, x->pend[i].out.data, x->pend[i].out.len);
        if (x->pend[i].err.len > 0)
            print_line(x, x->pend[i].step, PROC_STDERR, x->pend[i].err.data, x->pend[i].err.len);
        buf_done(&x->pend[i].out);
        buf_done(&x->pend[i].err);
    }
    free(x->pend);
    x->pend = NULL;
    x->npend = 0;
    fflush(stdout);
}

static void round_done(struct executor *ex, void *arg)
{
    struct exec_cli *x = arg;

    stop_finished(x->stop);
    loop_stop(x->loop);
}

static enum outcome outcome_of(const struct exec_step *s)
{
    struct retry_failure f = exec_step_failure(s);

    switch (exec_step_status(s)) {
    case EXEC_SUCCEEDED:
        return O_OK;
    case EXEC_TIMED_OUT:
        return O_TIMED_OUT;
    case EXEC_CANCELLED:
        return O_CANCELLED;
    default:
        break;
    }
    switch (f.kind) {
    case RETRY_CONNECT:
        return O_UNREACHABLE;
    case RETRY_AUTH:
    case RETRY_HOSTKEY:
        return O_REFUSED;
    case RETRY_TIMEOUT:
        return O_TIMED_OUT;
    default:
        return O_FAILED;
    }
}

/* The block with one step per target: the only step of the root is the fan-out. */
static const struct exec_block *targets_block(const struct executor *ex)
{
    const struct exec_block *root = executor_root(ex);
    const struct exec_step *s = exec_block_step(root, 0);

    return exec_step_child(s);
}

static void json_report(const struct executor *ex, const char *command, const char *env,
                        const double *rounds, unsigned nrounds, const unsigned *counts)
{
    const struct exec_block *b = targets_block(ex);
    cJSON *doc = cJSON_CreateObject(), *targets, *sum, *rs;
    size_t i;

    cJSON_AddStringToObject(doc, "command", command);
    cJSON_AddStringToObject(doc, "environment", env);
    targets = cJSON_AddArrayToObject(doc, "targets");
    for (i = 0; b != NULL && i < exec_block_nsteps(b); i++) {
        const struct exec_step *s = exec_block_step(b, i);
        cJSON *t = cJSON_CreateObject();
        enum proc_stream streams[2] = {PROC_STDOUT, PROC_STDERR};
        const char *names[2] = {"stdout", "stderr"};
        int k;

        cJSON_AddStringToObject(t, "name", exec_step_name(s));
        cJSON_AddStringToObject(t, "status", outcome_names[outcome_of(s)]);
        if (exec_step_exit_code(s) >= 0)
            cJSON_AddNumberToObject(t, "exit_code", exec_step_exit_code(s));
        else
            cJSON_AddNullToObject(t, "exit_code");
        if (exec_step_signal(s) != 0)
            cJSON_AddNumberToObject(t, "signal", exec_step_signal(s));
        cJSON_AddNumberToObject(t, "attempts", exec_step_attempts(s));
        cJSON_AddNumberToObject(t, "duration_ms", (double)exec_step_duration_us(s) / 1000.0);
        for (k = 0; k < 2; k++) {
            uint64_t total;
            size_t len;
            const char *data = exec_step_output(s, streams[k], &len, &total);
            char *clean = utf8_sanitize(data, len), key[32];

            /* The tail of what the command printed; the total says whether it was cut. */
            cJSON_AddStringToObject(t, names[k], clean);
            snprintf(key, sizeof key, "%s_bytes", names[k]);
            cJSON_AddNumberToObject(t, key, (double)total);
            snprintf(key, sizeof key, "%s_truncated", names[k]);
            cJSON_AddBoolToObject(t, key, total > len);
            free(clean);
        }
        if (exec_step_status(s) != EXEC_SUCCEEDED)
            cJSON_AddStringToObject(t, "error", exec_step_reason(s));
        cJSON_AddItemToArray(targets, t);
    }
    sum = cJSON_AddObjectToObject(doc, "summary");
    for (i = 0; i < O_COUNT; i++)
        cJSON_AddNumberToObject(sum, outcome_names[i], counts[i]);
    rs = cJSON_AddArrayToObject(doc, "rounds");
    for (i = 0; i < nrounds; i++) {
        cJSON *r = cJSON_CreateObject();

        cJSON_AddNumberToObject(r, "duration_ms", rounds[i]);
        cJSON_AddItemToArray(rs, r);
    }
    term_put_json(stdout, doc);
    cJSON_Delete(doc);
}

static void text_report(const struct executor *ex, const unsigned *counts, double ms)
{
    const struct exec_block *b = targets_block(ex);
    char dur[32];
    size_t i, total = b != NULL ? exec_block_nsteps(b) : 0;
    int k;
    bool first = true;

    fmt_duration(dur, sizeof dur, (unsigned long long)(ms * 1000.0));
    fprintf(stderr, "n3ctl exec: %zu target%s in %s:", total, total == 1 ? "" : "s", dur);
    for (k = 0; k < O_COUNT; k++) {
        if (counts[k] > 0) {
            fprintf(stderr, "%s %u %s", first ? "" : ",", counts[k], outcome_names[k]);
            first = false;
        }
    }
    fputc('\n', stderr);
    for (i = 0; i < total; i++) {
        const struct exec_step *s = exec_block_step(b, i);
        enum outcome o = outcome_of(s);
        const char *why = exec_step_reason(s);
        size_t olen = strlen(outcome_names[o]);

        if (o == O_OK)
            continue;
        /* "cancelled: interrupted", not "cancelled: cancelled: interrupted". The reason may
         * quote the target (an SSH server's message). */
        if (strncmp(why, outcome_names[o], olen) == 0 && why[olen] == ':')
            term_printf(stderr, "  %s: %s\n", exec_step_name(s), why);
        else
            term_printf(stderr, "  %s: %s: %s\n", exec_step_name(s), outcome_names[o], why);
    }
}

int cmd_exec(const struct cli_cmd *cmd, int argc, char **argv)
{
    const char *arg;
    unsigned fanout = EXEC_DEFAULT_FANOUT, timeout_s = 0, repeat = 1, r, i;
    struct fleet_args fa;
    unsigned counts[O_COUNT];
    struct exec_cli x;
    struct fleet fleet;
    struct plan *plan;
    struct remote *remote;
    struct remote_opts ropts;
    struct exec_opts opts;
    struct err err;
    struct buf command;
    double *rounds;
    int opt, first, rc = EXIT_OK;
    bool raw = false;

    memset(&x, 0, sizeof x);
    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'p':
            if (!cli_parse_uint(cmd, "-p", arg, 1, 10000, &fanout))
                return EXIT_USAGE;
            break;
        case 't':
            if (!cli_parse_uint(cmd, "-t", arg, 1, 2592000, &timeout_s))
                return EXIT_USAGE;
            break;
        case 'j':
            x.json = true;
            break;
        case 'r':
            if (!cli_parse_uint(cmd, "--repeat", arg, 1, 1000, &repeat))
                return EXIT_USAGE;
            break;
        case CLI_OPT_RAW:
            raw = true;
            break;
        default:
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (first >= argc) {
        cli_usage_error(cmd, "what command? give it after --, e.g. n3ctl exec -- uptime");
        return EXIT_USAGE;
    }
    /* Lines go out as they come, also into a pipe (| tee, | grep): the operator is watching. */
    if (!x.json)
        setvbuf(stdout, NULL, _IOLBF, 0);
    x.escape[0] = !raw && term_is_tty(stdout);
    x.escape[1] = !raw && term_is_tty(stderr);
    buf_init(&command);
    /* One word is a shell command as it is (like ssh); several are quoted one by one. */
    if (first + 1 == argc)
        buf_adds(&command, argv[first]);
    else
        shell_join(&command, (const char *const *)argv + first);

    if (fleet_open(&fleet, fa.config, fa.env, fa.selectors, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        buf_done(&command);
        return EXIT_USAGE;
    }
    plan = plan_new_remote("exec", (const char *const *)fleet.names, command.data, fanout,
                           (uint64_t)timeout_s * 1000u);
    if (plan_expand_remote(plan, inv_env_select, (void *)fleet.env, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        plan_free(plan);
        fleet_close(&fleet);
        buf_done(&command);
        return EXIT_USAGE;
    }

    buf_init(&x.shown);
    x.loop = loop_new();
    ropts.grace_ms = plan->kill_grace_ms;
    ropts.output_limit = plan->output_limit;
    ropts.notice = fleet_notice;
    ropts.notice_arg = NULL;
    remote = remote_new(x.loop, fleet.inv, fleet.env, &ropts, &err);
    memset(&opts, 0, sizeof opts);
    opts.remote = remote_runner(remote);
    opts.on_output = on_output;
    opts.output_arg = &x;
    rounds = xcalloc(repeat, sizeof *rounds);
    /* Every round on the same connections: the first makes them, the next reuse them. */
    for (r = 0; r < repeat; r++) {
        uint64_t t0 = loop_now_us(x.loop);

        executor_free(x.ex);
        x.ex = executor_new(x.loop, plan, &opts);
        x.stop = stop_new(x.loop, x.ex, NULL, NULL);
        executor_start(x.ex, round_done, &x);
        loop_run(x.loop);
        rounds[r] = (double)(loop_now_us(x.loop) - t0) / 1000.0;
        flush_pending(&x);
        if (stop_signals(x.stop) > 0) {
            rc = stop_exit_code(x.stop);
            stop_report(x.stop);
            stop_free(x.stop);
            x.stop = NULL;
            r++;
            break;
        }
        stop_free(x.stop);
        x.stop = NULL;
    }

    memset(counts, 0, sizeof counts);
    {
        const struct exec_block *b = targets_block(x.ex);

        for (i = 0; b != NULL && i < exec_block_nsteps(b); i++)
            counts[outcome_of(exec_block_step(b, i))]++;
    }
    if (x.json)
        json_report(x.ex, command.data, inv_env_name(fleet.env), rounds, r, counts);
    else
        text_report(x.ex, counts, rounds[r - 1]);
    if (rc == EXIT_OK) {
        if (counts[O_REFUSED] > 0)
            rc = EXIT_REFUSED;
        else if (counts[O_OK] < exec_block_nsteps(targets_block(x.ex)))
            rc = EXIT_FAILED;
    }
    executor_free(x.ex);
    remote_free(remote);
    proc_flush_all(x.loop);
    loop_free(x.loop);
    free(rounds);
    plan_free(plan);
    fleet_close(&fleet);
    buf_done(&command);
    buf_done(&x.shown);
    return rc;
}
