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

/* The signals that stop a run: the first stops the steps gracefully, the next kills them. */
static const int run_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define RUN_NSIGNALS (sizeof run_signals / sizeof run_signals[0])

/*
 * An output file. A regular file (or a new one) is written next to its final name and
 * renamed into place, so it is never half-written; a symlink is followed to its target
 * first. Anything else (a pipe, /dev/stdout) is written directly.
 */
struct outfile {
    char *path; /* where the data ends up */
    char *tmp;  /* NULL when writing directly */
    FILE *f;
};

/* Where writing to path really goes: symlinks followed, also to a target not there yet. */
static char *follow_links(const char *path)
{
    char *cur = xstrdup(path), target[PATH_MAX];
    int hops;

    for (hops = 0; hops < 40; hops++) {
        struct stat st;
        ssize_t n;
        char *next;

        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            break;
        n = readlink(cur, target, sizeof target - 1);
        if (n < 0)
            break;
        target[n] = '\0';
        if (target[0] == '/' || strrchr(cur, '/') == NULL) {
            next = xstrdup(target);
        } else {
            int dirlen = (int)(strrchr(cur, '/') - cur);

            next = xasprintf("%.*s/%s", dirlen, cur, target);
        }
        free(cur);
        cur = next;
    }
    return cur;
}

static int outfile_open(const struct cli_cmd *cmd, struct outfile *o, const char *path)
{
    struct stat st;
    int fd = -1;

    memset(o, 0, sizeof *o);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "n3ctl %s: cannot write %s: it is a directory; give a file name\n",
                cmd->name, path);
        return -1;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        o->path = xstrdup(path);
        fd = open(path, O_WRONLY | O_CLOEXEC);
    } else {
        o->path = follow_links(path);
        o->tmp = xasprintf("%s.tmp.XXXXXX", o->path);
        fd = mkostemp(o->tmp, O_CLOEXEC);
        if (fd >= 0)
            fchmod(fd, 0644);
    }
    if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "n3ctl %s: cannot write %s: %s\n", cmd->name, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (o->tmp != NULL && fd >= 0)
            unlink(o->tmp);
        free(o->tmp);
        free(o->path);
        memset(o, 0, sizeof *o);
        return -1;
    }
    return 0;
}

/* Finish the file: rename into place if everything was written and keep is set; otherwise
 * remove the temporary file. */
static int outfile_close(struct outfile *o, bool keep)
{
    int rc = 0;

    if (o->f == NULL)
        return 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        rc = -1;
    if (o->tmp != NULL && rc == 0 && fsync(fileno(o->f)) != 0)
        rc = -1;
    if (fclose(o->f) != 0)
        rc = -1;
    o->f = NULL;
    if (o->tmp != NULL) {
        if (rc == 0 && keep && rename(o->tmp, o->path) != 0)
            rc = -1;
        if (rc != 0 || !keep)
            unlink(o->tmp);
    }
    if (rc != 0)
        fprintf(stderr, "n3ctl: could not write %s: %s\n", o->path, strerror(errno));
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
    return rc;
}

struct run {
    const struct cli_cmd *cmd;
    struct loop *loop;
    struct executor *ex;
    struct progress *progress;
    uv_signal_t sigs[RUN_NSIGNALS];
    bool watching[RUN_NSIGNALS];
    bool finished; /* the plan has ended; only leftovers of its steps may still run */
    int signals;   /* how many stop signals arrived */
    int first_signal;
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

static void signal_cb(uv_signal_t *h, int signum);

/* Watch the stop signals, without keeping the loop alive for them. A SIGHUP that was ignored
 * when n3ctl started (nohup) stays ignored. */
static void watch_signals(struct run *r)
{
    struct sigaction old;
    size_t i;

    for (i = 0; i < RUN_NSIGNALS; i++) {
        if (run_signals[i] == SIGHUP && sigaction(SIGHUP, NULL, &old) == 0 &&
            old.sa_handler == SIG_IGN)
            continue;
        uv_signal_init(loop_uv(r->loop), &r->sigs[i]);
        r->sigs[i].data = r;
        uv_signal_start(&r->sigs[i], signal_cb, run_signals[i]);
        uv_unref((uv_handle_t *)&r->sigs[i]);
        r->watching[i] = true;
    }
}

static void close_signals(struct run *r)
{
    size_t i;

    for (i = 0; i < RUN_NSIGNALS; i++) {
        if (r->watching[i])
            uv_close((uv_handle_t *)&r->sigs[i], NULL);
        r->watching[i] = false;
    }
}

static void run_done(struct executor *ex, void *arg)
{
    struct run *r = arg;

    r->finished = true;
    progress_free(r->progress);
    r->progress = NULL;
    /* Report now; leftovers of the steps' groups are waited for afterwards. */
    loop_stop(r->loop);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    char note[256];

    if (r->finished) {
        /* The plan is over: whatever its steps left behind is killed now. */
        proc_flush_all(r->loop);
        return;
    }
    r->signals++;
    if (r->signals == 1) {
        r->first_signal = signum;
        snprintf(note, sizeof note,
                 "SIG%s: stopping %u running process%s (TERM, then KILL after the "
                 "grace period); %s again kills %s now",
                 sigabbrev_np(signum), executor_procs(r->ex),
                 executor_procs(r->ex) == 1 ? "" : "es", signum == SIGINT ? "Ctrl-C" : "the signal",
                 executor_procs(r->ex) == 1 ? "it" : "them");
        if (r->progress != NULL)
            progress_set_note(r->progress, note);
        else
            fprintf(stderr, "n3ctl: %s\n", note);
        snprintf(note, sizeof note, "%s",
                 signum == SIGINT ? "interrupted (Ctrl-C)" : "stopped by ");
        if (signum != SIGINT)
            snprintf(note + strlen(note), sizeof note - strlen(note), "SIG%s",
                     sigabbrev_np(signum));
        executor_cancel(r->ex, note);
        return;
    }
    if (r->progress != NULL)
        progress_set_note(r->progress, "killing every running process now");
    else
        fprintf(stderr, "n3ctl: killing every running process now\n");
    executor_kill(r->ex);
    proc_flush_all(r->loop);
}

/* Commands that never ran because the run was stopped first. */
static unsigned count_never_started(const struct exec_block *b)
{
    unsigned n = 0;
    size_t i;

    for (i = 0; i < exec_block_nsteps(b); i++) {
        const struct exec_step *s = exec_block_step(b, i);

        if (exec_step_child(s) != NULL)
            n += count_never_started(exec_step_child(s));
        else if (exec_step_status(s) == EXEC_CANCELLED && exec_step_attempts(s) == 0)
            n++;
    }
    return n;
}

static void report_interrupted(const struct run *r)
{
    const struct exec_step *steps[32];
    size_t n = executor_interrupted(r->ex, steps, 32), i;
    unsigned never = count_never_started(executor_root(r->ex));

    if (r->signals == 0)
        return;
    fprintf(stderr, "n3ctl: interrupted by SIG%s: ", sigabbrev_np(r->first_signal));
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

static int exit_code(const struct run *r)
{
    if (r->signals == 0)
        return exec_block_status(executor_root(r->ex)) == EXEC_SUCCEEDED ? EXIT_OK : EXIT_FAILED;
    return r->first_signal == SIGINT ? EXIT_INTERRUPTED : 128 + r->first_signal;
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
    watch_signals(&r);
    if (!quiet && term_is_tty(stderr))
        r.progress = progress_new(r.loop, stderr, r.ex, term_color(stderr), 100);
    executor_start(r.ex, run_done, &r);
    loop_run(r.loop); /* until run_done */

    if (json) {
        cJSON *doc = executor_report(r.ex);
        char *text = cJSON_Print(doc);

        puts(text);
        cJSON_free(text);
        cJSON_Delete(doc);
    } else {
        report_table(stdout, r.ex, verbose, term_color(stdout),
                     term_is_tty(stdout) ? term_width(stdout) : 0);
    }
    fflush(stdout);
    report_interrupted(&r);
    rc = exit_code(&r);

    /* Processes the steps left in their groups got TERM when their step ended: give them the
     * grace period to go (a signal now kills them at once), then KILL what is left. */
    if (proc_count(r.loop) > 0) {
        char grace[32];

        progress_format_duration(grace, sizeof grace, plan->kill_grace_ms * 1000u);
        fprintf(stderr,
                "n3ctl: waiting up to %s for processes the steps left behind to exit (they got "
                "SIGTERM; Ctrl-C kills them now)\n",
                grace);
        loop_run(r.loop);
    }
    proc_flush_all(r.loop);
    close_signals(&r);

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
