/*
 * The transport suite: the same tests against the local transport and against the ssh
 * transport on a real sshd (scripts/sshd-fleet, started once for the suite). Every test runs
 * twice: _i == 0 local, _i == 1 ssh.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/fence.h"
#include "deploy/inventory.h"
#include "deploy/ssh.h"
#include "deploy/transport.h"
#include "tests/unit/testutil.h"

#define WAIT_MS 30000

static char *suite_dir; /* the fleet lives in suite_dir/fleet */
static bool fleet_ok;

static const char *top_srcdir(void)
{
    const char *s = getenv("TOP_SRCDIR");

    return s != NULL ? s : "../..";
}

static void fleet_start(void)
{
    char *cmd;
    int rc;

    suite_dir = tu_mkdtemp();
    chmod(suite_dir, 0755);
    cmd = xasprintf("%s/scripts/sshd-fleet start %s/fleet 1 >%s/fleet.log 2>&1", top_srcdir(),
                    suite_dir, suite_dir);
    rc = system(cmd);
    free(cmd);
    fleet_ok = rc == 0;
    if (!fleet_ok)
        fprintf(stderr,
                "test_transport: no sshd fleet (not root?): the ssh half is skipped; see "
                "%s/fleet.log\n",
                suite_dir);
}

static void fleet_stop(void)
{
    char *cmd =
        xasprintf("%s/scripts/sshd-fleet stop %s/fleet >/dev/null 2>&1", top_srcdir(), suite_dir);

    if (system(cmd) != 0)
        fprintf(stderr, "test_transport: could not stop the fleet in %s\n", suite_dir);
    free(cmd);
    tu_rmdir_r(suite_dir);
    free(suite_dir);
}

struct fx {
    struct loop *loop;
    struct inventory *inv;
    struct ssh_pool *pool;
    struct transport *t;
    char *dir; /* a fresh directory the target may write in */
    bool ssh;
};

struct waiter {
    bool done;
    struct transport_result r;
    char *out, *err, *data;
    struct buf streamed;
};

static void waiter_done(void *arg, const struct transport_result *r)
{
    struct waiter *w = arg;

    w->done = true;
    w->r = *r;
    w->out = r->out != NULL ? tail_dup(r->out, NULL) : xstrdup("");
    w->err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");
    if (r->data != NULL) {
        w->data = xmalloc(r->len + 1);
        memcpy(w->data, r->data, r->len);
        w->data[r->len] = '\0';
    }
    w->r.out = w->r.err = NULL;
    w->r.data = NULL;
}

static void waiter_output(void *arg, enum proc_stream s, const char *data, size_t len)
{
    struct waiter *w = arg;

    if (w->streamed.len > 4096)
        return; /* the start is enough to check; big outputs must not grow the test */
    buf_addc(&w->streamed, s == PROC_STDOUT ? 'O' : 'E');
    buf_add(&w->streamed, data, len);
}

static bool waiter_is_done(void *arg)
{
    return ((struct waiter *)arg)->done;
}

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    buf_init(&w->streamed);
}

static void waiter_done_free(struct waiter *w)
{
    free(w->out);
    free(w->err);
    free(w->data);
    buf_done(&w->streamed);
}

static void wait_for(struct fx *f, struct waiter *w)
{
    ck_assert_msg(tu_run_until(f->loop, waiter_is_done, w, WAIT_MS), "the operation did not end");
}

/* which: 0 local, 1 ssh. A fake clock, unless real_clock (to measure latency). */
static bool fx_init_clock(struct fx *f, int which, bool real_clock)
{
    struct err err;

    memset(f, 0, sizeof *f);
    f->ssh = which == 1;
    if (f->ssh && !fleet_ok)
        return false;
    f->loop = real_clock ? loop_new() : loop_new_fake(1700000000000u, 7);
    if (!f->ssh) {
        f->t = transport_local_new(f->loop, "local");
        f->dir = tu_mkdtemp();
        return true;
    }
    {
        char *path = xasprintf("%s/fleet/n3.json", suite_dir);
        const struct inv_env *env;
        const struct inv_ssh *s;
        struct ssh_settings set;

        if (inventory_load(path, &f->inv, &err) != 0)
            ck_abort_msg("fleet config: %s", err.msg);
        free(path);
        ck_assert_int_eq(inventory_env(f->inv, NULL, &env, &err), 0);
        s = inventory_ssh(f->inv);
        memset(&set, 0, sizeof set);
        set.identities = (const char *const *)s->identities;
        set.known_hosts = s->known_hosts;
        set.connect_timeout_ms = 5000;
        set.auth_timeout_ms = 5000;
        set.max_handshakes = 4;
        f->pool = ssh_pool_new(f->loop, &set, &err);
        ck_assert_msg(f->pool != NULL, "pool: %s", err.msg);
        f->t = transport_new(f->loop, inv_env_target(env, 0), f->pool, 30000);
        /* A directory of the login user's own, under its deploy_path. */
        f->dir = xasprintf("%s/test.%d.%u", inv_env_target(env, 0)->deploy_path, (int)getpid(),
                           loop_random(f->loop));
    }
    {
        struct waiter w;

        waiter_init(&w);
        transport_mkdir(f->t, f->dir, waiter_done, &w);
        wait_for(f, &w);
        ck_assert_msg(w.r.status == TRANSPORT_OK, "mkdir %s: %s", f->dir, w.r.msg);
        waiter_done_free(&w);
    }
    return true;
}

static bool fx_init(struct fx *f, int which)
{
    return fx_init_clock(f, which, false);
}

static void fx_done(struct fx *f)
{
    transport_free(f->t);
    ssh_pool_free(f->pool);
    inventory_free(f->inv);
    loop_free(f->loop);
    tu_rmdir_r(f->dir);
    free(f->dir);
}

/* Run a command and wait for it. */
static void run(struct fx *f, struct waiter *w, const char *cmd, const char *input,
                uint64_t timeout_ms, size_t limit)
{
    struct transport_run r;

    waiter_init(w);
    memset(&r, 0, sizeof r);
    r.command = cmd;
    r.input = input;
    r.input_len = input != NULL ? strlen(input) : 0;
    r.timeout_ms = timeout_ms;
    r.grace_ms = 2000;
    r.output_limit = limit;
    r.on_output = waiter_output;
    r.on_done = waiter_done;
    r.arg = w;
    transport_run(f->t, &r);
    wait_for(f, w);
}

static char *path_in(struct fx *f, const char *name)
{
    return xasprintf("%s/%s", f->dir, name);
}

static bool file_exists(void *arg)
{
    return access(arg, F_OK) == 0;
}

static bool pid_gone(void *arg)
{
    char path[64], *stat, *paren;
    bool gone;

    snprintf(path, sizeof path, "/proc/%d/stat", *(int *)arg);
    stat = tu_read_file(path);
    if (stat == NULL)
        return true;
    paren = strrchr(stat, ')');
    gone = paren != NULL && paren[2] == 'Z';
    free(stat);
    return gone;
}

START_TEST(run_output_and_status)
{
    struct fx f;
    struct waiter w;

    if (!fx_init(&f, _i))
        return;
    run(&f, &w, "echo out; echo err >&2; exit 4", NULL, 0, 0);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    ck_assert_int_eq(w.r.exit_code, 4);
    ck_assert_int_eq(w.r.exit_signal, 0);
    ck_assert_str_eq(w.out, "out\n");
    /* For ssh: the process-group marker is not part of the output. */
    ck_assert_str_eq(w.err, "err\n");
    ck_assert_ptr_nonnull(strstr(w.streamed.data, "Oout\n"));
    ck_assert_ptr_nonnull(strstr(w.streamed.data, "Eerr\n"));
    waiter_done_free(&w);
    fx_done(&f);
}
END_TEST

START_TEST(run_with_input_and_quoting)
{
    struct fx f;
    struct waiter w;
    struct buf cmd;

    if (!fx_init(&f, _i))
        return;
    run(&f, &w, "tr a-z A-Z", "hello, input\n", 0, 0);
    ck_assert_int_eq(w.r.exit_code, 0);
    ck_assert_str_eq(w.out, "HELLO, INPUT\n");
    waiter_done_free(&w);
    /* A string from outside, quoted, arrives as one argument, byte for byte. */
    buf_init(&cmd);
    buf_adds(&cmd, "printf '%s|' ");
    shell_quote(&cmd, "it's $(touch /tmp/n3ctl-pwned) `x` \"q\" ;|&");
    run(&f, &w, cmd.data, NULL, 0, 0);
    ck_assert_str_eq(w.out, "it's $(touch /tmp/n3ctl-pwned) `x` \"q\" ;|&|");
    ck_assert_int_ne(access("/tmp/n3ctl-pwned", F_OK), 0);
    buf_done(&cmd);
    waiter_done_free(&w);
    fx_done(&f);
}
END_TEST

START_TEST(timeout_stops_the_process)
{
    struct fx f;
    struct waiter w;
    struct transport_run r;
    char *pidfile, *cmd, *text;
    int pid;

    if (!fx_init(&f, _i))
        return;
    pidfile = path_in(&f, "pid");
    cmd =
        xasprintf("sleep 100 & echo $! > %s.tmp && mv %s.tmp %s; wait", pidfile, pidfile, pidfile);
    waiter_init(&w);
    memset(&r, 0, sizeof r);
    r.command = cmd;
    r.timeout_ms = 1000;
    r.grace_ms = 2000;
    r.on_done = waiter_done;
    r.arg = &w;
    transport_run(f.t, &r);
    ck_assert(tu_run_until(f.loop, file_exists, pidfile, WAIT_MS));
    text = tu_read_file(pidfile);
    pid = atoi(text);
    free(text);
    ck_assert(!w.done);
    loop_fake_advance(f.loop, 1000);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_TIMEOUT);
    ck_assert_int_eq(w.r.failure.kind, RETRY_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(w.r.msg, "timeout"));
    /* The whole process group on the target was stopped, the background sleep too. */
    ck_assert_msg(tu_run_until(f.loop, pid_gone, &pid, WAIT_MS), "process %d still runs", pid);
    waiter_done_free(&w);
    free(cmd);
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(stop_stops_the_process)
{
    struct fx f;
    struct waiter w;
    struct transport_run r;
    struct transport_op *op;
    char *pidfile, *cmd, *text;
    int pid;

    if (!fx_init(&f, _i))
        return;
    pidfile = path_in(&f, "pid");
    cmd = xasprintf("echo $$ > %s.tmp && mv %s.tmp %s; exec sleep 100", pidfile, pidfile, pidfile);
    waiter_init(&w);
    memset(&r, 0, sizeof r);
    r.command = cmd;
    r.on_done = waiter_done;
    r.arg = &w;
    op = transport_run(f.t, &r);
    ck_assert(tu_run_until(f.loop, file_exists, pidfile, WAIT_MS));
    text = tu_read_file(pidfile);
    pid = atoi(text);
    free(text);
    transport_stop(op, 2000);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_STOPPED);
    ck_assert(tu_run_until(f.loop, pid_gone, &pid, WAIT_MS));
    waiter_done_free(&w);
    free(cmd);
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(write_and_read_files)
{
    struct fx f;
    struct waiter w;
    char *path, *text;
    struct stat st;
    const char data[] = "state: 1\n\0binary too\n";

    if (!fx_init(&f, _i))
        return;
    /* A name with a space and a quote: paths are quoted on the way. */
    path = path_in(&f, "state 'one'.json");
    waiter_init(&w);
    transport_write_file(f.t, path, data, sizeof data - 1, 0640, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_msg(w.r.status == TRANSPORT_OK, "%s", w.r.msg);
    waiter_done_free(&w);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0640);
    ck_assert_uint_eq((size_t)st.st_size, sizeof data - 1);
    waiter_init(&w);
    transport_read_file(f.t, path, 1024, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    ck_assert_uint_eq(w.r.len, sizeof data - 1);
    ck_assert_int_eq(memcmp(w.data, data, sizeof data - 1), 0);
    waiter_done_free(&w);
    /* Larger than allowed: an error that says so. */
    waiter_init(&w);
    transport_read_file(f.t, path, 5, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_FAILED);
    ck_assert_ptr_nonnull(strstr(w.r.msg, "larger than 5 bytes"));
    waiter_done_free(&w);
    /* A file that is not there. */
    free(path);
    path = path_in(&f, "missing");
    waiter_init(&w);
    transport_read_file(f.t, path, 5, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_FAILED);
    ck_assert_ptr_nonnull(strstr(w.r.msg, "No such file"));
    waiter_done_free(&w);
    /* Nothing but the file is left: no temporary files. */
    text = xasprintf("ls -A %s | wc -l", f.dir);
    run(&f, &w, text, NULL, 0, 0);
    ck_assert_str_eq(w.out, "1\n");
    waiter_done_free(&w);
    free(text);
    free(path);
    fx_done(&f);
}
END_TEST

START_TEST(symlink_switch_and_mkdir)
{
    struct fx f;
    struct waiter w;
    char *a, *b, *link, target[4096];
    ssize_t n;

    if (!fx_init(&f, _i))
        return;
    a = path_in(&f, "releases/v1.0.0");
    b = path_in(&f, "releases/v1.1.0");
    link = path_in(&f, "current");
    waiter_init(&w);
    transport_mkdir(f.t, a, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    waiter_done_free(&w);
    ck_assert_int_eq(access(a, F_OK), 0);
    waiter_init(&w);
    transport_symlink(f.t, "releases/v1.0.0", link, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_msg(w.r.status == TRANSPORT_OK, "%s", w.r.msg);
    waiter_done_free(&w);
    n = readlink(link, target, sizeof target - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, "releases/v1.0.0");
    /* Switching replaces the link itself (not a link inside the directory it points to). */
    waiter_init(&w);
    transport_symlink(f.t, "releases/v1.1.0", link, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    waiter_done_free(&w);
    n = readlink(link, target, sizeof target - 1);
    target[n] = '\0';
    ck_assert_str_eq(target, "releases/v1.1.0");
    ck_assert_int_ne(access(b, F_OK), 0); /* v1.1.0 was never made: a dangling link is fine */
    free(a);
    free(b);
    free(link);
    fx_done(&f);
}
END_TEST

static char *make_local_file(size_t size, char sha[65])
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/payload", dir);
    unsigned char *data = xmalloc(size);
    struct err err;
    size_t i;
    FILE *fp;

    for (i = 0; i < size; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, size, fp), size);
    fclose(fp);
    free(data);
    chmod(dir, 0755);
    chmod(path, 0644);
    ck_assert_int_eq(transport_sha256_local(path, sha, &err), 0);
    free(dir);
    return path;
}

START_TEST(upload_verified)
{
    struct fx f;
    struct waiter w;
    char sha[65], *local, *remote, *cmd;

    if (!fx_init(&f, _i))
        return;
    local = make_local_file(3 * 1024 * 1024 + 17, sha);
    remote = path_in(&f, "release.tar.gz");
    waiter_init(&w);
    transport_upload(f.t, local, remote, 0644, sha, NULL, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_msg(w.r.status == TRANSPORT_OK, "%s", w.r.msg);
    waiter_done_free(&w);
    waiter_init(&w);
    transport_sha256(f.t, remote, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    ck_assert_str_eq(w.data, sha);
    waiter_done_free(&w);
    /* Only the final file: the temporary name was renamed away. */
    cmd = xasprintf("ls -A %s", f.dir);
    run(&f, &w, cmd, NULL, 0, 0);
    ck_assert_str_eq(w.out, "release.tar.gz\n");
    waiter_done_free(&w);
    free(cmd);
    unlink(local);
    free(local);
    free(remote);
    fx_done(&f);
}
END_TEST

START_TEST(upload_checksum_mismatch)
{
    struct fx f;
    struct waiter w;
    char sha[65], *local, *remote, *cmd;

    if (!fx_init(&f, _i))
        return;
    local = make_local_file(100000, sha);
    remote = path_in(&f, "release.tar.gz");
    /* What the target receives is not what was announced: a corrupted copy. */
    sha[0] = sha[0] == '0' ? '1' : '0';
    waiter_init(&w);
    transport_upload(f.t, local, remote, 0644, sha, NULL, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_FAILED);
    ck_assert_ptr_nonnull(strstr(w.r.msg, "sha256"));
    ck_assert_ptr_nonnull(strstr(w.r.msg, sha));
    waiter_done_free(&w);
    /* Nothing is left: neither the file nor the temporary copy. */
    cmd = xasprintf("ls -A %s | wc -l", f.dir);
    run(&f, &w, cmd, NULL, 0, 0);
    ck_assert_str_eq(w.out, "0\n");
    waiter_done_free(&w);
    free(cmd);
    unlink(local);
    free(local);
    free(remote);
    fx_done(&f);
}
END_TEST

static long max_rss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

START_TEST(big_output_is_bounded)
{
    struct fx f;
    struct waiter w;
    long before;

    if (!fx_init(&f, _i))
        return;
    before = max_rss_kb();
    run(&f, &w, "head -c 10000000 /dev/zero | tr '\\0' x; echo; echo END", NULL, 0, 65536);
    ck_assert_int_eq(w.r.exit_code, 0);
    ck_assert_uint_eq(strlen(w.out), 65536);
    ck_assert_str_eq(w.out + strlen(w.out) - 5, "\nEND\n");
    /* 10 MB went through; memory grew by far less (the tail, buffers). Not under
     * AddressSanitizer: its quarantine keeps freed memory (libssh2's packets) resident. */
#ifndef __SANITIZE_ADDRESS__
    ck_assert_msg(max_rss_kb() - before < 8 * 1024, "max RSS grew by %ld KiB",
                  max_rss_kb() - before);
#else
    (void)before;
#endif
    waiter_done_free(&w);
    fx_done(&f);
}
END_TEST

START_TEST(connect_and_latency)
{
    struct fx f;
    struct waiter w;

    if (!fx_init_clock(&f, _i, true))
        return;
    waiter_init(&w);
    transport_connect(f.t, waiter_done, &w);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    if (f.ssh)
        ck_assert_uint_gt(transport_handshake_us(f.t), 0);
    waiter_done_free(&w);
    fx_done(&f);
}
END_TEST

/* ---- fences (deploy/fence.h): what a holder of the deploy lock runs its commands under ---- */

/* A fence whose confirmation the test answers: 0 yes, -1 no, 1 later (ready is kept). */
struct test_fence {
    struct transport_fence f;
    int answer;
    unsigned asked, forgotten;
    void (*ready)(void *);
    void *ready_arg;
    uint64_t refused_with;
};

static int tf_confirm(void *arg, void (*ready)(void *), void *ready_arg, char *why, size_t len)
{
    struct test_fence *tf = arg;

    tf->asked++;
    if (tf->answer > 0) {
        tf->ready = ready;
        tf->ready_arg = ready_arg;
    }
    if (tf->answer < 0)
        snprintf(why, len, "the test says the lock is lost");
    return tf->answer;
}

static void tf_forget(void *arg, void (*ready)(void *), void *ready_arg)
{
    struct test_fence *tf = arg;

    ck_assert_ptr_eq(tf->ready_arg, ready_arg);
    tf->forgotten++;
    tf->ready = NULL;
}

static void tf_refused(void *arg, const char *target, uint64_t theirs)
{
    ((struct test_fence *)arg)->refused_with = theirs;
}

static void tf_init(struct test_fence *tf, uint64_t number)
{
    memset(tf, 0, sizeof *tf);
    tf->f.number = number;
    tf->f.confirm = tf_confirm;
    tf->f.forget = tf_forget;
    tf->f.refused = tf_refused;
    tf->f.arg = tf;
}

/* Start a command; its waiter is w (not waited for). */
static struct transport_op *start(struct fx *f, struct waiter *w, const char *cmd)
{
    struct transport_run r;

    waiter_init(w);
    memset(&r, 0, sizeof r);
    r.command = cmd;
    r.grace_ms = 2000;
    r.on_done = waiter_done;
    r.arg = w;
    return transport_run(f->t, &r);
}

static char *fence_file(struct fx *f)
{
    char *path = path_in(f, ".n3/fence"), *text = tu_read_file(path);

    free(path);
    return text;
}

START_TEST(fenced_commands_refused_after_a_higher_fence)
{
    struct fx f;
    struct waiter w, rw;
    struct test_fence tf;
    char *cmd, *mark, *text;

    if (!fx_init(&f, _i))
        return;
    tf_init(&tf, 5);
    transport_set_fence(f.t, &tf.f, f.dir);
    /* Under fence 5: it runs, with its output and status as they are, and the target has
     * seen fence 5. */
    run(&f, &w, "echo out; echo err >&2; exit 3", NULL, 0, 0);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    ck_assert_int_eq(w.r.exit_code, 3);
    ck_assert_str_eq(w.out, "out\n");
    ck_assert_str_eq(w.err, "err\n");
    waiter_done_free(&w);
    text = fence_file(&f);
    ck_assert_str_eq(text, "5\n");
    free(text);
    ck_assert_uint_eq(tf.asked, 1);
    /* A newer holder raises the fence to 7 (unfenced: the raise is the lock's own). */
    waiter_init(&rw);
    fence_raise(f.t, f.dir, 7, waiter_done, &rw);
    wait_for(&f, &rw);
    ck_assert_msg(rw.r.status == TRANSPORT_OK && rw.r.exit_code == 0, "raise: %s %s", rw.r.msg,
                  rw.err);
    waiter_done_free(&rw);
    /* Fence 5's commands are refused there now, and do not run. */
    mark = path_in(&f, "ran");
    cmd = xasprintf("touch %s", mark);
    run(&f, &w, cmd, NULL, 0, 0);
    ck_assert_int_eq(w.r.status, TRANSPORT_FENCED);
    ck_assert_ptr_nonnull(strstr(w.r.msg, "has seen fence 7, ours is 5"));
    ck_assert_uint_eq(tf.refused_with, 7);
    ck_assert_int_ne(access(mark, F_OK), 0);
    waiter_done_free(&w);
    /* A raise never lowers it. */
    waiter_init(&rw);
    fence_raise(f.t, f.dir, 6, waiter_done, &rw);
    wait_for(&f, &rw);
    waiter_done_free(&rw);
    text = fence_file(&f);
    ck_assert_str_eq(text, "7\n");
    free(text);
    /* Fence 7 runs. */
    tf.f.number = 7;
    run(&f, &w, cmd, NULL, 0, 0);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    ck_assert_int_eq(access(mark, F_OK), 0);
    waiter_done_free(&w);
    transport_set_fence(f.t, NULL, NULL);
    free(cmd);
    free(mark);
    fx_done(&f);
}
END_TEST

START_TEST(fenced_commands_wait_for_the_confirmation)
{
    struct fx f;
    struct waiter w;
    struct test_fence tf;
    struct transport_op *op;
    char *cmd, *mark, *input;

    if (!fx_init(&f, _i))
        return;
    tf_init(&tf, 1);
    transport_set_fence(f.t, &tf.f, f.dir);
    mark = path_in(&f, "ran");
    cmd = xasprintf("cat > %s", mark);
    /* Not confirmed yet: nothing runs until the fence says so; the input is the command's
     * even if the caller's buffer is gone meanwhile. */
    tf.answer = 1;
    input = xstrdup("the input\n");
    waiter_init(&w);
    {
        struct transport_run r;

        memset(&r, 0, sizeof r);
        r.command = cmd;
        r.input = input;
        r.input_len = strlen(input);
        r.on_done = waiter_done;
        r.arg = &w;
        transport_run(f.t, &r);
    }
    memset(input, 'X', strlen(input));
    free(input);
    ck_assert_ptr_nonnull(tf.ready);
    ck_assert(!w.done);
    ck_assert_int_ne(access(mark, F_OK), 0);
    tf.answer = 0;
    tf.ready(tf.ready_arg);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    input = tu_read_file(mark);
    ck_assert_str_eq(input, "the input\n");
    free(input);
    waiter_done_free(&w);
    unlink(mark);
    /* Lost while waiting: not run, and said. */
    tf.answer = 1;
    start(&f, &w, cmd);
    tf.answer = -1;
    tf.ready(tf.ready_arg);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_FENCED);
    ck_assert_ptr_nonnull(strstr(w.r.msg, "the test says the lock is lost"));
    ck_assert_int_ne(access(mark, F_OK), 0);
    waiter_done_free(&w);
    /* Stopped while waiting: it forgets the wait, and is stopped. */
    tf.answer = 1;
    op = start(&f, &w, cmd);
    transport_stop(op, 0);
    ck_assert_uint_eq(tf.forgotten, 1);
    wait_for(&f, &w);
    ck_assert_int_eq(w.r.status, TRANSPORT_STOPPED);
    ck_assert_int_ne(access(mark, F_OK), 0);
    waiter_done_free(&w);
    /* The lock's own commands go as they are. */
    tf.answer = -1;
    {
        struct transport_run r;

        waiter_init(&w);
        memset(&r, 0, sizeof r);
        r.command = "echo unfenced";
        r.unfenced = true;
        r.on_done = waiter_done;
        r.arg = &w;
        transport_run(f.t, &r);
        wait_for(&f, &w);
        ck_assert_int_eq(w.r.status, TRANSPORT_OK);
        ck_assert_str_eq(w.out, "unfenced\n");
        waiter_done_free(&w);
    }
    transport_set_fence(f.t, NULL, NULL);
    free(cmd);
    free(mark);
    fx_done(&f);
}
END_TEST

START_TEST(fence_raise_waits_for_commands_in_flight)
{
    struct fx f;
    struct waiter w, rw;
    struct test_fence tf;
    char *cmd, *started, *go;

    if (!fx_init(&f, _i))
        return;
    tf_init(&tf, 2);
    transport_set_fence(f.t, &tf.f, f.dir);
    started = path_in(&f, "started");
    go = path_in(&f, "go");
    /* Its output also is what the command prints after it was let go. */
    cmd = xasprintf("touch %s; while [ ! -e %s ]; do sleep 0.02; done; echo finished", started, go);
    start(&f, &w, cmd);
    ck_assert(tu_run_until(f.loop, file_exists, started, WAIT_MS));
    /* A new holder's raise, while the old holder's command runs: it waits for the command. */
    waiter_init(&rw);
    fence_raise(f.t, f.dir, 3, waiter_done, &rw);
    tu_write_file(go, "");
    ck_assert(tu_run_until(f.loop, waiter_is_done, &rw, WAIT_MS));
    ck_assert_msg(w.done, "the fence went up while a command of the old fence still ran");
    ck_assert_int_eq(w.r.status, TRANSPORT_OK);
    ck_assert_str_eq(w.out, "finished\n");
    ck_assert_int_eq(rw.r.exit_code, 0);
    waiter_done_free(&w);
    waiter_done_free(&rw);
    transport_set_fence(f.t, NULL, NULL);
    free(cmd);
    free(started);
    free(go);
    fx_done(&f);
}
END_TEST

static Suite *transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *t = tcase_create("both");

    tcase_add_unchecked_fixture(t, fleet_start, fleet_stop);
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, run_output_and_status, 0, 2);
    tcase_add_loop_test(t, run_with_input_and_quoting, 0, 2);
    tcase_add_loop_test(t, timeout_stops_the_process, 0, 2);
    tcase_add_loop_test(t, stop_stops_the_process, 0, 2);
    tcase_add_loop_test(t, write_and_read_files, 0, 2);
    tcase_add_loop_test(t, symlink_switch_and_mkdir, 0, 2);
    tcase_add_loop_test(t, upload_verified, 0, 2);
    tcase_add_loop_test(t, upload_checksum_mismatch, 0, 2);
    tcase_add_loop_test(t, big_output_is_bounded, 0, 2);
    tcase_add_loop_test(t, connect_and_latency, 0, 2);
    tcase_add_loop_test(t, fenced_commands_refused_after_a_higher_fence, 0, 2);
    tcase_add_loop_test(t, fenced_commands_wait_for_the_confirmation, 0, 2);
    tcase_add_loop_test(t, fence_raise_waits_for_commands_in_flight, 0, 2);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(transport_suite());
}
