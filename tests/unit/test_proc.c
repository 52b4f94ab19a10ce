/* Processes: output capture, exit status, start errors, stopping whole process groups, and a
 * stdin kept open (input_pipe). */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

struct ctx {
    bool done;
    struct buf streamed;
};

static void on_done(struct proc *p, void *arg)
{
    ((struct ctx *)arg)->done = true;
}

static void on_output(struct proc *p, enum proc_stream s, const char *data, size_t len, void *arg)
{
    struct ctx *c = arg;

    buf_addc(&c->streamed, s == PROC_STDOUT ? 'O' : 'E');
    buf_add(&c->streamed, data, len);
}

static bool is_done(void *arg)
{
    return ((struct ctx *)arg)->done;
}

static struct proc *start(struct loop *loop, struct ctx *c, const char *script, uint64_t grace)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct proc_spec spec = {0};
    struct proc *p = NULL;
    struct err err;

    spec.argv = argv;
    spec.grace_ms = grace;
    spec.on_done = on_done;
    spec.on_output = on_output;
    spec.arg = c;
    if (proc_start(loop, &spec, &p, &err) != 0)
        ck_abort_msg("start failed: %s", err.msg);
    return p;
}

static char *tail_str(const struct proc *p, enum proc_stream s)
{
    return tail_dup(proc_output(p, s), NULL);
}

static bool gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

static bool pid_dead(void *arg)
{
    char path[64], *stat, *paren;
    bool dead;

    snprintf(path, sizeof path, "/proc/%d/stat", *(int *)arg);
    stat = tu_read_file(path);
    if (stat == NULL)
        return true;
    paren = strrchr(stat, ')');
    dead = paren != NULL && paren[2] == 'Z';
    free(stat);
    return dead;
}

static int read_pid(const char *path)
{
    char *text = tu_read_file(path);
    int pid;

    ck_assert_ptr_nonnull(text);
    pid = atoi(text);
    free(text);
    return pid;
}

static bool exists(void *arg)
{
    return access(arg, F_OK) == 0;
}

START_TEST(captures_output_and_status)
{
    struct loop *loop = loop_new_fake(0, 1);
    struct ctx c = {false};
    struct proc *p;
    char *out, *err;

    buf_init(&c.streamed);
    p = start(loop, &c, "echo out; echo err >&2; exit 7", 1000);
    ck_assert_int_gt(proc_pid(p), 0);
    ck_assert(tu_run_until(loop, is_done, &c, 10000));
    ck_assert(proc_exited(p));
    ck_assert_int_eq(proc_exit_code(p), 7);
    ck_assert_int_eq(proc_term_signal(p), 0);
    out = tail_str(p, PROC_STDOUT);
    err = tail_str(p, PROC_STDERR);
    ck_assert_str_eq(out, "out\n");
    ck_assert_str_eq(err, "err\n");
    ck_assert_ptr_nonnull(strstr(c.streamed.data, "Oout\n"));
    ck_assert_ptr_nonnull(strstr(c.streamed.data, "Eerr\n"));
    /* Reaped by us: not in the process table. */
    ck_assert(gone(proc_pid(p)));
    free(out);
    free(err);
    proc_free(p);
    loop_run_once(loop, false);
    ck_assert_uint_eq(proc_count(loop), 0);
    buf_done(&c.streamed);
    loop_free(loop);
}
END_TEST

START_TEST(start_errors)
{
    struct loop *loop = loop_new_fake(0, 1);
    const char *missing[] = {"n3ctl-test-no-such-program", NULL};
    const char *ok[] = {"true", NULL};
    struct proc_spec spec = {0};
    struct proc *p = NULL;
    struct err err;

    spec.argv = missing;
    spec.on_done = on_done;
    ck_assert_int_eq(proc_start(loop, &spec, &p, &err), -1);
    ck_assert_str_eq(err.msg, "cannot run \"n3ctl-test-no-such-program\": no such program (is it "
                              "installed and on PATH?)");
    spec.argv = ok;
    spec.cwd = "/nonexistent/n3ctl/dir";
    ck_assert_int_eq(proc_start(loop, &spec, &p, &err), -1);
    ck_assert_str_eq(err.msg, "cannot run \"true\": the working directory "
                              "\"/nonexistent/n3ctl/dir\" does not exist");
    ck_assert_uint_eq(proc_count(loop), 0);
    loop_free(loop);
}
END_TEST

/* A fake-clock loop, the callbacks' context and a scratch directory. */
struct fx {
    struct loop *loop;
    struct ctx c;
    char *dir;
    char *paths[4];
    size_t npaths;
};

static void fx_begin(struct fx *f)
{
    memset(f, 0, sizeof *f);
    f->loop = loop_new_fake(0, 1);
    buf_init(&f->c.streamed);
    f->dir = tu_mkdtemp();
}

/* A file in the scratch directory (freed by fx_end). */
static const char *fx_path(struct fx *f, const char *name)
{
    ck_assert_uint_lt(f->npaths, 4);
    f->paths[f->npaths] = xasprintf("%s/%s", f->dir, name);
    return f->paths[f->npaths++];
}

static void fx_end(struct fx *f, struct proc *p)
{
    size_t i;

    proc_free(p);
    proc_flush_all(f->loop);
    loop_free(f->loop);
    buf_done(&f->c.streamed);
    tu_rmdir_r(f->dir);
    free(f->dir);
    for (i = 0; i < f->npaths; i++)
        free(f->paths[i]);
}

START_TEST(terminate_stops_the_group)
{
    struct fx f;
    const char *pidfile, *ready;
    char *script;
    struct proc *p;
    int child;

    fx_begin(&f);
    pidfile = fx_path(&f, "pid");
    ready = fx_path(&f, "ready");
    script = xasprintf("sleep 1000 & echo $! > %s; touch %s; wait", pidfile, ready);
    p = start(f.loop, &f.c, script, 5000);
    free(script);
    ck_assert(tu_run_until(f.loop, exists, (void *)ready, 10000));
    child = read_pid(pidfile);
    proc_terminate(p, 5000);
    ck_assert(tu_run_until(f.loop, is_done, &f.c, 10000));
    ck_assert_int_eq(proc_term_signal(p), SIGTERM);
    ck_assert(proc_stopped(p));
    ck_assert(tu_run_until(f.loop, pid_dead, &child, 10000));
    fx_end(&f, p);
}
END_TEST

START_TEST(kill_after_grace)
{
    struct fx f;
    const char *ready;
    char *script;
    struct proc *p;

    fx_begin(&f);
    ready = fx_path(&f, "ready");
    script = xasprintf("trap '' TERM; touch %s; while :; do sleep 1; done", ready);
    p = start(f.loop, &f.c, script, 2000);
    free(script);
    ck_assert(tu_run_until(f.loop, exists, (void *)ready, 10000));
    proc_terminate(p, 2000);
    ck_assert(!tu_run_until(f.loop, is_done, &f.c, 200));
    loop_fake_advance(f.loop, 1999);
    ck_assert(!tu_run_until(f.loop, is_done, &f.c, 100));
    loop_fake_advance(f.loop, 1);
    ck_assert(tu_run_until(f.loop, is_done, &f.c, 10000));
    ck_assert_int_eq(proc_term_signal(p), SIGKILL);
    fx_end(&f, p);
}
END_TEST

START_TEST(escaped_pipe_holder_does_not_hang)
{
    struct fx f;
    const char *pidfile;
    char *script;
    struct proc *p;

    fx_begin(&f);
    pidfile = fx_path(&f, "pid");
    /* A grandchild in a session of its own keeps our stdout open after the leader exits. */
    script = xasprintf("setsid sh -c 'echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 1000' & "
                       "while [ ! -s %s ]; do sleep 0.01; done; echo bye",
                       pidfile, pidfile, pidfile, pidfile);
    p = start(f.loop, &f.c, script, 3000);
    free(script);
    ck_assert(tu_run_until(f.loop, exists, (void *)pidfile, 10000));
    ck_assert(!tu_run_until(f.loop, is_done, &f.c, 300));
    ck_assert(proc_exited(p));
    loop_fake_advance(f.loop, 3000);
    ck_assert(tu_run_until(f.loop, is_done, &f.c, 10000));
    ck_assert_int_eq(proc_exit_code(p), 0);
    ck_assert_ptr_nonnull(strstr(f.c.streamed.data, "bye"));
    kill(read_pid(pidfile), SIGKILL);
    fx_end(&f, p);
}
END_TEST

START_TEST(free_while_running_kills)
{
    struct loop *loop = loop_new_fake(0, 1);
    struct ctx c = {false};
    struct proc *p;
    int pid;

    buf_init(&c.streamed);
    p = start(loop, &c, "exec sleep 1000", 1000);
    pid = proc_pid(p);
    proc_free(p);
    ck_assert(tu_run_until(loop, pid_dead, &pid, 10000));
    /* The object goes once its pipes close; on_done is not called for an abandoned process. */
    while (proc_count(loop) > 0)
        loop_run_once(loop, true);
    ck_assert(!c.done);
    loop_free(loop);
    buf_done(&c.streamed);
}
END_TEST

static bool streamed_has(void *arg)
{
    struct ctx *c = arg;

    return strstr(c->streamed.data, "b\n") != NULL;
}

/* stdin kept open: each write reaches the child as it reads, in order; closing it is EOF. */
START_TEST(input_pipe_streams)
{
    struct loop *loop = loop_new();
    const char *argv[] = {"/bin/sh", "-c", "while read -r l; do echo \"$l\"; done; echo eof", NULL};
    struct proc_spec spec = {0};
    struct ctx c = {false};
    struct proc *p = NULL;
    struct err err;
    char *out;

    signal(SIGPIPE, SIG_IGN);
    buf_init(&c.streamed);
    spec.argv = argv;
    spec.input_pipe = true;
    spec.on_done = on_done;
    spec.on_output = on_output;
    spec.arg = &c;
    ck_assert_msg(proc_start(loop, &spec, &p, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(proc_write(p, "a\nb", 3), 0);
    ck_assert_int_eq(proc_write(p, "\n", 1), 0);
    /* Both lines came back before stdin was closed: the child is still reading. */
    ck_assert(tu_run_until(loop, streamed_has, &c, 10000));
    ck_assert(!proc_exited(p));
    ck_assert_ptr_null(strstr(c.streamed.data, "eof"));
    proc_close_input(p);
    ck_assert_int_eq(proc_write(p, "c\n", 2), -1);
    ck_assert(tu_run_until(loop, is_done, &c, 10000));
    ck_assert_int_eq(proc_exit_code(p), 0);
    out = tail_str(p, PROC_STDOUT);
    ck_assert_str_eq(out, "a\nb\neof\n");
    free(out);
    proc_free(p);
    while (proc_count(loop) > 0)
        loop_run_once(loop, true);
    buf_done(&c.streamed);
    loop_free(loop);
}
END_TEST

static bool input_refused(void *arg)
{
    return proc_write(arg, "y", 1) != 0;
}

/* A child that exits without reading: the writes fail quietly, nothing is left behind. */
START_TEST(input_pipe_child_gone)
{
    struct loop *loop = loop_new();
    const char *argv[] = {"/bin/sh", "-c", "exec 0<&-; exit 3", NULL};
    struct proc_spec spec = {0};
    struct ctx c = {false};
    struct proc *p = NULL;
    struct err err;
    static char big[256 * 1024];

    signal(SIGPIPE, SIG_IGN);
    buf_init(&c.streamed);
    spec.argv = argv;
    spec.input_pipe = true;
    spec.on_done = on_done;
    spec.arg = &c;
    ck_assert_msg(proc_start(loop, &spec, &p, &err) == 0, "%s", err.msg);
    ck_assert(tu_run_until(loop, is_done, &c, 10000));
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(proc_write(p, big, sizeof big), 0); /* queued: it fails on the loop */
    ck_assert(tu_run_until(loop, input_refused, p, 10000));
    ck_assert_int_eq(proc_exit_code(p), 3);
    proc_free(p);
    while (proc_count(loop) > 0)
        loop_run_once(loop, true);
    buf_done(&c.streamed);
    loop_free(loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proc");
    TCase *t = tcase_create("proc");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, captures_output_and_status);
    tcase_add_test(t, start_errors);
    tcase_add_test(t, terminate_stops_the_group);
    tcase_add_test(t, kill_after_grace);
    tcase_add_test(t, escaped_pipe_holder_does_not_hang);
    tcase_add_test(t, free_while_running_kills);
    tcase_add_test(t, input_pipe_streams);
    tcase_add_test(t, input_pipe_child_gone);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
