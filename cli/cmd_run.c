/* n3ctl run: a plan on the embedded executor, with live progress, a report, metrics and traces. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/fleet.h"
#include "cli/outfile.h"
#include "cli/progress.h"
#include "cli/report.h"
#include "cli/stop.h"
#include "cli/term.h"
#include "core/fmt.h"
#include "core/buf.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/plan.h"
#include "core/proc.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/remote.h"

#define TRACE_RING 4096

struct run {
    const struct cli_cmd *cmd;
    struct loop *loop;
    struct executor *ex;
    struct progress *progress;
    struct stop *stop;
    struct outfile traces;
    bool trace_write_failed;
};

static void trace_sink(const struct span *s, void *arg)
{
    struct run *r = arg;
    struct buf line;

    if (r->traces.f == NULL)
        return;
    buf_init(&line);
    span_to_json(s, &line);
    buf_addc(&line, '\n');
    if (fwrite(line.data, 1, line.len, r->traces.f) != line.len)
        r->trace_write_failed = true;
    buf_done(&line);
}

static void show_note(void *arg, const char *text)
{
    struct run *r = arg;

    if (r->progress != NULL)
        progress_set_note(r->progress, text);
    else
        fprintf(stderr, "n3ctl: %s\n", text);
}

static void run_done(struct executor *ex, void *arg)
{
    struct run *r = arg;

    stop_finished(r->stop);
    progress_free(r->progress);
    r->progress = NULL;
    /* Report now; leftovers of the steps' groups are waited for afterwards. */
    loop_stop(r->loop);
}

static int exit_code(const struct run *r)
{
    if (stop_signals(r->stop) > 0)
        return stop_exit_code(r->stop);
    return exec_block_status(executor_root(r->ex)) == EXEC_SUCCEEDED ? EXIT_OK : EXIT_FAILED;
}

int cmd_run(const struct cli_cmd *cmd, int argc, char **argv)
{
    const char *arg, *metrics_path = NULL, *traces_path = NULL, *config = NULL, *envname = NULL;
    struct fleet fleet = {0};
    struct remote *remote = NULL;
    bool json = false, verbose = false, quiet = false;
    unsigned max_procs = 0;
    struct plan *plan = NULL;
    struct metrics *metrics = NULL;
    struct trace *trace = NULL;
    struct exec_opts opts;
    struct err err;
    struct run r;
    struct outfile mout = {0};
    int opt, first, rc;

    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        switch (opt) {
        case 'j':
            json = true;
            break;
        case 'p':
            if (!cli_parse_uint(cmd, "-p", arg, 1, 10000, &max_procs))
                return EXIT_USAGE;
            break;
        case 'm':
            metrics_path = arg;
            break;
        case 't':
            traces_path = arg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'c':
            config = arg;
            break;
        case 'e':
            envname = arg;
            break;
        default:
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (first >= argc) {
        cli_usage_error(cmd, "which plan? give the path of a plan file (docs/plan.md)");
        return EXIT_USAGE;
    }
    if (first + 1 < argc) {
        cli_usage_error(cmd, "one plan at a time; unexpected \"%.60s\"", argv[first + 1]);
        return EXIT_USAGE;
    }
    if (plan_load_file(argv[first], &plan, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    /* Remote steps run on targets of n3.json: resolve them before anything runs. */
    if (plan_has_remote(plan)) {
        static const char *const none[] = {NULL};

        if (fleet_open(&fleet, config, envname, none, &err) != 0 ||
            plan_expand_remote(plan, inv_env_select, (void *)fleet.env, &err) != 0) {
            term_printf(stderr, "n3ctl: %s\n", err.msg);
            fleet_close(&fleet);
            plan_free(plan);
            return EXIT_USAGE;
        }
    }

    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    if (metrics_path != NULL && outfile_open(cmd, &mout, metrics_path) != 0) {
        fleet_close(&fleet);
        plan_free(plan);
        return EXIT_USAGE;
    }
    if (traces_path != NULL && outfile_open(cmd, &r.traces, traces_path) != 0) {
        outfile_close(&mout, false);
        fleet_close(&fleet);
        plan_free(plan);
        return EXIT_USAGE;
    }

    r.loop = loop_new();
    memset(&opts, 0, sizeof opts);
    opts.max_procs = max_procs;
    if (metrics_path != NULL) {
        metrics = metrics_new();
        opts.metrics = metrics;
    }
    if (traces_path != NULL) {
        trace = trace_new(r.loop, TRACE_RING);
        trace_set_sink(trace, trace_sink, &r);
        opts.trace = trace;
    }
    if (fleet.inv != NULL) {
        struct remote_opts ropts = {plan->kill_grace_ms, plan->output_limit, fleet_notice, NULL};

        remote = remote_new(r.loop, fleet.inv, fleet.env, &ropts, &err);
        opts.remote = remote_runner(remote);
    }
    r.ex = executor_new(r.loop, plan, &opts);
    r.stop = stop_new(r.loop, r.ex, show_note, &r);
    if (!quiet && term_is_tty(stderr))
        r.progress = progress_new(r.loop, stderr, r.ex, term_color(stderr), 100);
    executor_start(r.ex, run_done, &r);
    loop_run(r.loop); /* until run_done */

    if (json) {
        cJSON *doc = executor_report(r.ex);

        term_put_json(stdout, doc);
        cJSON_Delete(doc);
    } else {
        report_table(stdout, r.ex, verbose, term_color(stdout),
                     term_is_tty(stdout) ? term_width(stdout) : 0);
    }
    fflush(stdout);
    stop_report(r.stop);
    rc = exit_code(&r);

    /* Processes the steps left in their groups got TERM when their step ended: give them the
     * grace period to go (a signal now kills them at once), then KILL what is left. */
    if (proc_lingering(r.loop) > 0) {
        char grace[32];

        fmt_duration(grace, sizeof grace, plan->kill_grace_ms * 1000u);
        fprintf(stderr,
                "n3ctl: waiting up to %s for processes the steps left behind to exit (they got "
                "SIGTERM; Ctrl-C kills them now)\n",
                grace);
        loop_run(r.loop);
    }
    proc_flush_all(r.loop);
    stop_free(r.stop);

    if (metrics != NULL) {
        struct buf text;

        buf_init(&text);
        metrics_write_prometheus(metrics, &text);
        fwrite(text.data, 1, text.len, mout.f);
        buf_done(&text);
        if (outfile_close(&mout, true) != 0 && rc == EXIT_OK)
            rc = EXIT_FAILED;
    }
    if (trace != NULL) {
        if (outfile_close(&r.traces, !r.trace_write_failed) != 0 && rc == EXIT_OK)
            rc = EXIT_FAILED;
    }
    executor_free(r.ex);
    remote_free(remote);
    trace_free(trace);
    metrics_free(metrics);
    loop_free(r.loop);
    plan_free(plan);
    fleet_close(&fleet);
    return rc;
}
