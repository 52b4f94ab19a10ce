/* n3ctl run: a plan on the embedded executor, with live progress, a report, metrics and traces. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/report.h"
#include "cli/term.h"
#include "core/buf.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/plan.h"
#include "core/proc.h"
#include "core/trace.h"
#include "core/xalloc.h"

#define TRACE_RING 4096

/* A file written next to its final name and renamed into place: never half-written. */
struct outfile {
    const char *path;
    char *tmp;
    FILE *f;
};

struct run {
    const struct cli_cmd *cmd;
    struct loop *loop;
    struct executor *ex;
    struct progress *progress;
    uv_signal_t sigs[3];
    int signals; /* how many stop signals arrived */
    int first_signal;
    struct outfile traces;
    bool trace_write_failed;
};

static int outfile_open(const struct cli_cmd *cmd, struct outfile *o, const char *path)
{
    int fd;

    o->path = path;
    o->tmp = xasprintf("%s.tmp.XXXXXX", path);
    fd = mkostemp(o->tmp, O_CLOEXEC);
    if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "n3ctl %s: cannot write %s: %s\n", cmd->name, path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(o->tmp);
        }
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    fchmod(fd, 0644);
    return 0;
}

/* Rename into place if everything was written; otherwise remove the temporary file. */
static int outfile_close(struct outfile *o, bool keep)
{
    int rc = 0;

    if (o->f == NULL)
        return 0;
    if (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0)
        rc = -1;
    if (fclose(o->f) != 0)
        rc = -1;
    o->f = NULL;
    if (rc == 0 && keep && rename(o->tmp, o->path) != 0)
        rc = -1;
    if (rc != 0 || !keep) {
        if (rc != 0)
            fprintf(stderr, "n3ctl: could not write %s: %s\n", o->path, strerror(errno));
        unlink(o->tmp);
    }
    free(o->tmp);
    o->tmp = NULL;
    return rc;
}

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

static void close_signals(struct run *r)
{
    size_t i;

    for (i = 0; i < 3; i++) {
        if (!uv_is_closing((uv_handle_t *)&r->sigs[i]))
            uv_close((uv_handle_t *)&r->sigs[i], NULL);
    }
}

static void run_done(struct executor *ex, void *arg)
{
    struct run *r = arg;

    close_signals(r);
    progress_free(r->progress);
    r->progress = NULL;
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    const struct exec_block *root = executor_root(r->ex);
    char note[256];
    struct exec_counts c;

    r->signals++;
    if (r->signals == 1) {
        r->first_signal = signum;
        exec_block_counts(root, &c);
        snprintf(note, sizeof note,
                 "SIG%s: stopping %u running processes (TERM, then KILL after the "
                 "grace period); %s again kills them now",
                 sigabbrev_np(signum), executor_procs(r->ex),
                 signum == SIGINT ? "Ctrl-C" : "the signal");
        if (r->progress != NULL)
            progress_set_note(r->progress, note);
        else
            fprintf(stderr, "n3ctl: %s\n", note);
        executor_cancel(r->ex, signum == SIGINT    ? "interrupted (Ctrl-C)"
                               : signum == SIGTERM ? "stopped by SIGTERM"
                                                   : "stopped by SIGHUP");
        return;
    }
    if (r->progress != NULL)
        progress_set_note(r->progress, "killing every running process now");
    else
        fprintf(stderr, "n3ctl: killing every running process now\n");
    executor_kill(r->ex);
}

static void report_interrupted(const struct run *r)
{
    const struct exec_step *steps[32];
    size_t n = executor_interrupted(r->ex, steps, 32), i;
    struct exec_counts c;

    if (r->signals == 0)
        return;
    fprintf(stderr, "n3ctl: interrupted by SIG%s: ", sigabbrev_np(r->first_signal));
    if (n == 0) {
        fprintf(stderr, "no process was running");
    } else {
        fprintf(stderr, "stopped %zu running step%s (", n, n == 1 ? "" : "s");
        for (i = 0; i < n && i < 32; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", exec_step_name(steps[i]));
        fprintf(stderr, "%s)", n > 32 ? ", ..." : "");
    }
    exec_block_counts(executor_root(r->ex), &c);
    fprintf(stderr, "; %u steps of the plan's top block never started\n",
            c.by_status[EXEC_CANCELLED] - (unsigned)(n < c.by_status[EXEC_CANCELLED] ? n : 0));
}

static int exit_code(const struct run *r)
{
    switch (r->signals ? r->first_signal : 0) {
    case SIGINT:
        return EXIT_INTERRUPTED;
    case SIGTERM:
        return 128 + SIGTERM;
    case SIGHUP:
        return 128 + SIGHUP;
    default:
        return exec_block_status(executor_root(r->ex)) == EXEC_SUCCEEDED ? EXIT_OK : EXIT_FAILED;
    }
}

int cmd_run(const struct cli_cmd *cmd, int argc, char **argv)
{
    const char *arg, *metrics_path = NULL, *traces_path = NULL;
    bool json = false, verbose = false, quiet = false;
    unsigned max_procs = 0;
    struct plan *plan = NULL;
    struct metrics *metrics = NULL;
    struct trace *trace = NULL;
    struct exec_opts opts;
    struct err err;
    struct run r;
    struct outfile mout = {0};
    static const int signums[3] = {SIGINT, SIGTERM, SIGHUP};
    int opt, first, rc;
    size_t i;

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
        fprintf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }

    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    if (metrics_path != NULL && outfile_open(cmd, &mout, metrics_path) != 0) {
        plan_free(plan);
        return EXIT_USAGE;
    }
    if (traces_path != NULL && outfile_open(cmd, &r.traces, traces_path) != 0) {
        outfile_close(&mout, false);
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
    r.ex = executor_new(r.loop, plan, &opts);
    for (i = 0; i < 3; i++) {
        uv_signal_init(loop_uv(r.loop), &r.sigs[i]);
        r.sigs[i].data = &r;
        uv_signal_start(&r.sigs[i], signal_cb, signums[i]);
    }
    if (!quiet && term_is_tty(stderr))
        r.progress = progress_new(r.loop, stderr, r.ex, term_color(stderr), 100);
    executor_start(r.ex, run_done, &r);
    loop_run(r.loop);
    /* Anything a step left behind that ignored TERM gets KILL before we go. */
    proc_flush_all(r.loop);

    if (json) {
        cJSON *doc = executor_report(r.ex);
        char *text = cJSON_Print(doc);

        puts(text);
        cJSON_free(text);
        cJSON_Delete(doc);
    } else {
        report_table(stdout, r.ex, verbose, term_color(stdout));
    }
    fflush(stdout);
    report_interrupted(&r);
    rc = exit_code(&r);

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
    trace_free(trace);
    metrics_free(metrics);
    loop_free(r.loop);
    plan_free(plan);
    return rc;
}
