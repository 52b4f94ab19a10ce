/* The end of a run: a table of the steps, a summary, and the output of what failed. */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"
#include "cli/report.h"
#include "cli/term.h"
#include "core/fmt.h"
#include "core/buf.h"
#include "core/executor.h"
#include "core/xalloc.h"

#define STEP_COL_MAX 48
#define FAILED_SHOWN 5 /* failed steps whose output is shown */
#define FAILED_LINES 8 /* last lines of their output */

struct row {
    const struct exec_step *s;
    char name[STEP_COL_MAX + 1];
};

struct rows {
    struct row *v;
    size_t n, cap;
    size_t total;
};

static void name_of(const struct exec_step *s, char *out, size_t len)
{
    const char *path = exec_block_path(exec_step_block(s));
    const char *rest = strchr(path, '/'); /* the root block's name is left out */
    char *full = xasprintf("%s%s%s", rest ? rest + 1 : "", rest ? "/" : "", exec_step_name(s));
    size_t n = strlen(full);

    if (n < len)
        memcpy(out, full, n + 1);
    else /* keep the end, where the step's own name is */
        snprintf(out, len, "...%s", full + n - (len - 4));
    free(full);
}

static void collect(const struct exec_block *b, struct rows *r, bool all)
{
    size_t i;

    for (i = 0; i < exec_block_nsteps(b); i++) {
        const struct exec_step *s = exec_block_step(b, i);

        r->total++;
        if (all || exec_step_status(s) != EXEC_SUCCEEDED || exec_step_child(s) != NULL) {
            if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
            }
            r->v[r->n].s = s;
            name_of(s, r->v[r->n].name, sizeof r->v[r->n].name);
            r->n++;
        }
        if (exec_step_child(s) != NULL)
            collect(exec_step_child(s), r, all);
    }
}

static const char *status_color(enum exec_status st)
{
    switch (st) {
    case EXEC_SUCCEEDED:
        return TERM_GREEN;
    case EXEC_FAILED:
    case EXEC_TIMED_OUT:
        return TERM_RED;
    default:
        return TERM_YELLOW;
    }
}

static void exit_text(const struct exec_step *s, char *out, size_t len)
{
    int sig = exec_step_signal(s);

    if (exec_step_child(s) != NULL || exec_step_attempts(s) == 0)
        snprintf(out, len, "-");
    else if (sig != 0)
        snprintf(out, len, "SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    else if (exec_step_exit_code(s) >= 0)
        snprintf(out, len, "%d", exec_step_exit_code(s));
    else
        snprintf(out, len, "-");
}

/* The last `lines` lines of text. */
static const char *last_lines(const char *text, size_t len, unsigned lines)
{
    size_t i = len;

    while (i > 0 && (text[i - 1] == '\n'))
        i--;
    while (i > 0) {
        if (text[i - 1] == '\n' && --lines == 0)
            break;
        i--;
    }
    return text + i;
}

static void show_output(FILE *out, const struct row *r, bool color)
{
    size_t len;
    uint64_t total;
    const char *err = exec_step_output(r->s, PROC_STDERR, &len, &total);
    const char *which = "stderr";

    if (len == 0) {
        err = exec_step_output(r->s, PROC_STDOUT, &len, &total);
        which = "stdout";
    }
    if (len == 0)
        return;
    fprintf(out, "\n%s--- %s: last lines of %s%s ---%s\n", term_sgr(color, TERM_BOLD), r->name,
            which, total > len ? " (output was cut to its tail)" : "", term_sgr(color, TERM_RESET));
    {
        const char *tail = last_lines(err, len, FAILED_LINES);
        size_t n = len - (size_t)(tail - err);
        struct buf shown;

        /* What the step printed (on a target, maybe): its lines, never its escapes. */
        buf_init(&shown);
        term_add_text(&shown, tail, n);
        fwrite(shown.data, 1, shown.len, out);
        if (n > 0 && tail[n - 1] != '\n')
            fputc('\n', out);
        buf_done(&shown);
    }
}

/* Steps that run commands, in the whole tree (a nested block that never started counts as one). */
static void count_leaves(const struct exec_block *b, struct exec_counts *c)
{
    size_t i;

    for (i = 0; i < exec_block_nsteps(b); i++) {
        const struct exec_step *s = exec_block_step(b, i);

        if (exec_step_child(s) != NULL) {
            count_leaves(exec_step_child(s), c);
        } else {
            c->total++;
            c->by_status[exec_step_status(s)]++;
        }
    }
}

void report_table(FILE *out, const struct executor *ex, bool verbose, bool color, unsigned width)
{
    const struct exec_block *root = executor_root(ex);
    struct rows r = {0};
    struct exec_counts c;
    size_t i, wname = 4, hidden, shown_failed = 0;
    char dur[32], code[32], elapsed[32], attempts[16];
    enum exec_status st = exec_block_status(root);
    struct buf line;

    buf_init(&line);
    collect(root, &r, true);
    if (!verbose && r.total > REPORT_ALL_ROWS_UP_TO) {
        free(r.v);
        memset(&r, 0, sizeof r);
        collect(root, &r, false);
    }
    hidden = r.total - r.n;
    for (i = 0; i < r.n; i++) {
        size_t n = strlen(r.v[i].name);

        if (n > wname)
            wname = n;
    }
    if (r.n > 0) {
        fprintf(out, "%s%-*s  %-9s  %8s  %9s  %7s  %s%s\n", term_sgr(color, TERM_BOLD), (int)wname,
                "STEP", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "REASON",
                term_sgr(color, TERM_RESET));
    }
    for (i = 0; i < r.n; i++) {
        const struct exec_step *s = r.v[i].s;
        enum exec_status sst = exec_step_status(s);

        fmt_duration(dur, sizeof dur, exec_step_duration_us(s));
        exit_text(s, code, sizeof code);
        if (exec_step_child(s) != NULL)
            snprintf(attempts, sizeof attempts, "-");
        else
            snprintf(attempts, sizeof attempts, "%u", exec_step_attempts(s));
        fprintf(out, "%-*s  %s%-9s%s  %8s  %9s  %7s", (int)wname, r.v[i].name,
                term_sgr(color, status_color(sst)), exec_status_name(sst),
                term_sgr(color, TERM_RESET), attempts, sst == EXEC_PENDING ? "-" : dur, code);
        if (exec_step_reason(s)[0] != '\0') {
            /* STEP, STATUS, ATTEMPTS, DURATION, EXIT and the spaces between them */
            size_t used = wname + 2 + 9 + 2 + 8 + 2 + 9 + 2 + 7 + 2, room;

            /* A reason may quote a target (an SSH server's message): shown, cut to the
             * terminal's width (not into a pipe). */
            room = width > used + 4 ? width - used - 1 : 0;
            buf_reset(&line);
            buf_adds(&line, "  ");
            term_add_fit(&line, exec_step_reason(s), width == 0 ? SIZE_MAX : room);
            fputs(line.data, out);
        }
        fputc('\n', out);
    }
    if (hidden > 0)
        fprintf(out, "%s(%zu steps that succeeded are not listed; -v lists every step)%s\n",
                term_sgr(color, TERM_DIM), hidden, term_sgr(color, TERM_RESET));

    for (i = 0; i < r.n && shown_failed < FAILED_SHOWN; i++) {
        enum exec_status sst = exec_step_status(r.v[i].s);

        if ((sst == EXEC_FAILED || sst == EXEC_TIMED_OUT) && exec_step_child(r.v[i].s) == NULL) {
            show_output(out, &r.v[i], color);
            shown_failed++;
        }
    }

    memset(&c, 0, sizeof c);
    count_leaves(root, &c);
    fmt_duration(elapsed, sizeof elapsed, executor_elapsed_us(ex));
    fprintf(out, "\n%splan %s %s%s in %s: %u step%s", term_sgr(color, status_color(st)),
            exec_block_name(root), exec_status_name(st), term_sgr(color, TERM_RESET), elapsed,
            c.total, c.total == 1 ? "" : "s");
    {
        int k;

        for (k = EXEC_SUCCEEDED; k < EXEC_NSTATUS; k++) {
            if (c.by_status[k] > 0)
                fprintf(out, ", %u %s", c.by_status[k], exec_status_name((enum exec_status)k));
        }
    }
    if (exec_block_reason(root)[0] != '\0') {
        buf_reset(&line);
        term_add_shown(&line, exec_block_reason(root), SIZE_MAX);
        fprintf(out, " (%s)", line.data);
    }
    fputc('\n', out);
    buf_done(&line);
    free(r.v);
}
