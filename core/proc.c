/*
 * Local child processes, each in a session and process group of its own, with
 * bounded output and clean stops. They start with posix_spawn (the child borrows
 * our memory until it execs, as vfork does), not libuv's fork-based uv_spawn: a
 * fork copies the page tables of the whole n3ctl, and that copy grows with the plan.
 * A pidfd on the loop says when a child has exited.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"

#define PROC_OUTPUT_DEFAULT     (64u * 1024u)
#define PROC_LINGER_POLL_MS     20  /* first check of a group being stopped or drained */
#define PROC_LINGER_POLL_MAX_MS 250 /* the checks slow down to this */

struct proc {
    struct loop *loop;
    uv_poll_t exit_watch; /* the pidfd becomes readable when the child exits */
    int pidfd;
    uv_pipe_t out, err;
    uv_pipe_t in; /* stdin, when the spec gave input or input_pipe */
    uv_write_t in_req;
    char *input;
    bool has_in;
    bool in_stream; /* input_pipe: stdin stays open for proc_write */
    struct tail tails[2];
    struct loop_timer *timer;
    uint64_t deadline_us; /* when the timer sends KILL */
    uint64_t grace_ms;
    uint64_t poll_ms;
    proc_output_fn on_output;
    proc_done_fn on_done;
    void *arg;
    pid_t pid;
    int exit_code;
    int term_signal;
    int closing; /* handles with a close pending */
    bool exited;
    bool out_open, err_open;
    bool done;         /* on_done was called */
    bool freed;        /* the owner let go */
    bool finalizing;   /* handles are closing */
    bool stopped;      /* proc_terminate was called */
    bool group_termed; /* TERM went to the group */
    bool group_empty;  /* the leader has exited and nobody is left in its group: never signal
                        * -pid again, the number may belong to someone else one day */
    bool kill_sent;
    struct proc *next, *prev; /* every proc not yet finalized */
};

static struct proc *all_procs;
static char read_buf[64 * 1024]; /* one loop thread: each read is consumed before the next */

static void list_remove(struct proc *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else if (all_procs == p)
        all_procs = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

extern char **environ;

static void close_cb(uv_handle_t *h)
{
    struct proc *p = h->data;

    if (h == (uv_handle_t *)&p->exit_watch && p->pidfd >= 0) {
        close(p->pidfd);
        p->pidfd = -1;
    }
    /* Handles may close early (stdin, once written); the memory goes with the last close of
     * finalize. */
    if (--p->closing == 0 && p->finalizing) {
        tail_done(&p->tails[0]);
        tail_done(&p->tails[1]);
        free(p->input);
        free(p);
    }
}

static void close_handle(struct proc *p, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        p->closing++;
        uv_close(h, close_cb);
    }
}

/* Close every handle; the memory goes in the last close callback. */
static void finalize(struct proc *p)
{
    if (p->finalizing)
        return;
    p->finalizing = true;
    list_remove(p);
    loop_timer_free(p->timer);
    p->timer = NULL;
    p->closing++; /* hold the object until every close below is queued */
    close_handle(p, (uv_handle_t *)&p->exit_watch);
    close_handle(p, (uv_handle_t *)&p->out);
    close_handle(p, (uv_handle_t *)&p->err);
    if (p->has_in)
        close_handle(p, (uv_handle_t *)&p->in);
    close_cb((uv_handle_t *)&p->out);
}

static void maybe_done(struct proc *p)
{
    if (p->done || !p->exited || p->out_open || p->err_open)
        return;
    p->done = true;
    if (p->freed) {
        if (p->timer == NULL || !loop_timer_active(p->timer))
            finalize(p);
        return;
    }
    p->on_done(p, p->arg);
}

static void stop_reading(struct proc *p, enum proc_stream s)
{
    uv_pipe_t *pipe = s == PROC_STDOUT ? &p->out : &p->err;
    bool *open = s == PROC_STDOUT ? &p->out_open : &p->err_open;
    uv_os_fd_t fd;
    ssize_t n;

    if (!*open)
        return;
    *open = false;
    uv_read_stop((uv_stream_t *)pipe);
    /* Keep what is already in the pipe (the last words of a killed step). */
    if (uv_fileno((uv_handle_t *)pipe, &fd) == 0) {
        while ((n = read(fd, read_buf, sizeof read_buf)) > 0)
            tail_add(&p->tails[s - 1], read_buf, (size_t)n);
    }
}

/* Signal the process group, unless it is known to be gone for good. */
static void signal_group(struct proc *p, int sig)
{
    if (p->group_empty)
        return;
    if (kill(-p->pid, sig) == -1 && errno == ESRCH && p->exited)
        p->group_empty = true;
}

static void arm_timer(struct proc *p, uint64_t delay_ms)
{
    uint64_t due = loop_now_us(p->loop) + delay_ms * 1000u;

    if (loop_timer_active(p->timer) && p->deadline_us <= due)
        return;
    p->deadline_us = due;
    p->poll_ms = PROC_LINGER_POLL_MS;
    loop_timer_start(p->timer, delay_ms < p->poll_ms ? delay_ms : p->poll_ms);
}

/*
 * Is a process of the group still alive? kill(-pgid, 0) also counts zombies that
 * nobody has reaped yet (an init that reaps orphans slowly, or never), so when it
 * says yes, look in /proc for a member that is not a zombie.
 */
static bool group_alive(pid_t pgid)
{
    struct dirent *e;
    bool alive = false;
    DIR *d;

    if (kill(-pgid, 0) == -1 && errno == ESRCH)
        return false;
    d = opendir("/proc");
    if (d == NULL)
        return true;
    while (!alive && (e = readdir(d)) != NULL) {
        char path[300], stat[512], *paren, state;
        int ppid, pgrp, fd;
        ssize_t n;

        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        n = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (n <= 0)
            continue;
        stat[n] = '\0';
        /* "pid (comm) state ppid pgrp ...": comm may hold anything, so look after its last ')'. */
        paren = strrchr(stat, ')');
        if (paren != NULL && sscanf(paren + 1, " %c %d %d", &state, &ppid, &pgrp) == 3)
            alive = pgrp == pgid && state != 'Z' && state != 'X';
    }
    closedir(d);
    return alive;
}

static void send_kill(struct proc *p)
{
    p->kill_sent = true;
    signal_group(p, SIGKILL);
    if (p->exited) {
        /* Whoever still holds our pipes left the group (setsid): stop waiting for them. */
        stop_reading(p, PROC_STDOUT);
        stop_reading(p, PROC_STDERR);
    }
}

/* Ticks every PROC_LINGER_POLL_MS while a group is being stopped or drained. */
static void timer_cb(void *arg)
{
    struct proc *p = arg;
    uint64_t now = loop_now_us(p->loop);
    bool group_gone = p->exited && (p->group_empty || !group_alive(p->pid));

    if (group_gone && kill(-p->pid, 0) == -1 && errno == ESRCH)
        p->group_empty = true; /* only zombies may be left otherwise: they cannot be signalled */
    if (group_gone && !p->out_open && !p->err_open) {
        if (p->freed)
            finalize(p);
        return;
    }
    if (now >= p->deadline_us) {
        send_kill(p);
        maybe_done(p);
        if (p->freed && p->done)
            finalize(p);
        return;
    }
    {
        uint64_t left_ms = (p->deadline_us - now + 999) / 1000;

        if (p->poll_ms < PROC_LINGER_POLL_MAX_MS)
            p->poll_ms *= 2;
        loop_timer_start(p->timer, left_ms < p->poll_ms ? left_ms : p->poll_ms);
    }
}

static void exit_cb(uv_poll_t *h, int status, int events)
{
    struct proc *p = h->data;
    int wstatus = 0;
    pid_t r;

    r = waitpid(p->pid, &wstatus, WNOHANG);
    if (r == 0)
        return; /* not yet: the pidfd said readable too early */
    uv_poll_stop(h);
    p->exited = true;
    if (r < 0) {
        /* Reaped by someone else (SIGCHLD set to SIG_IGN): the status is lost. */
        p->exit_code = -1;
        p->term_signal = 0;
    } else if (WIFSIGNALED(wstatus)) {
        p->exit_code = -1;
        p->term_signal = WTERMSIG(wstatus);
    } else {
        p->exit_code = WEXITSTATUS(wstatus);
        p->term_signal = 0;
    }
    /* Leftovers of the group: TERM now, KILL when the grace period is over. */
    if (!p->kill_sent) {
        signal_group(p, SIGTERM);
        p->group_termed = !p->group_empty;
    }
    if (p->kill_sent) {
        stop_reading(p, PROC_STDOUT);
        stop_reading(p, PROC_STDERR);
    } else if (p->group_termed || p->out_open || p->err_open) {
        arm_timer(p, p->grace_ms);
    }
    maybe_done(p);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof read_buf;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct proc *p = s->data;
    enum proc_stream which = s == (uv_stream_t *)&p->out ? PROC_STDOUT : PROC_STDERR;

    if (n > 0) {
        tail_add(&p->tails[which - 1], buf->base, (size_t)n);
        if (p->on_output != NULL && !p->freed)
            p->on_output(p, which, buf->base, (size_t)n, p->arg);
        return;
    }
    if (n < 0) { /* UV_EOF or a read error: either way this stream is over */
        stop_reading(p, which);
        maybe_done(p);
    }
}

static void close_input(struct proc *p)
{
    if (!p->finalizing && !uv_is_closing((uv_handle_t *)&p->in))
        close_handle(p, (uv_handle_t *)&p->in);
}

static void input_written(uv_write_t *req, int status)
{
    close_input(req->data);
}

/* A proc_write in flight, with its copy of the bytes. */
struct stream_write {
    uv_write_t req;
    char data[];
};

static void stream_written(uv_write_t *req, int status)
{
    struct proc *p = req->data;

    /* A child that closed its stdin or exited (EPIPE), or the pipe closing (ECANCELED): the
     * rest cannot go either. */
    if (status != 0)
        close_input(p);
    free(req);
}

/* A pipe whose ends are both above stderr (so dup2 onto 1 or 2 is never a no-op), close-on-exec. */
static int make_pipe(int fds[2])
{
    int i;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    for (i = 0; i < 2; i++) {
        if (fds[i] <= 2) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

            close(fds[i]);
            fds[i] = moved;
        }
    }
    if (fds[0] < 0 || fds[1] < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        return -1;
    }
    return 0;
}

/* Start the child: stdin from in_fd or /dev/null, stdout and stderr into our pipes, a new
 * session. */
static int spawn(const struct proc_spec *spec, int in_fd, int out_fd, int err_fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    int rc;

    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    if (spec->cwd != NULL)
        posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    /* A step gets default signals, whatever n3ctl (or whoever started it) ignores or blocks. */
    sigfillset(&dfl);
    sigdelset(&dfl, SIGKILL);
    sigdelset(&dfl, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawnp(pid, spec->argv[0], &fa, &attr, (char *const *)spec->argv,
                      spec->env != NULL ? (char *const *)spec->env : environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Is the program there and executable (found on PATH when it has no slash)? */
static bool program_exists(const char *prog)
{
    const char *path = getenv("PATH"), *p, *end;
    char full[4096];

    if (strchr(prog, '/') != NULL)
        return access(prog, X_OK) == 0;
    for (p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0'; p = *end ? end + 1 : end) {
        end = strchr(p, ':');
        if (end == NULL)
            end = p + strlen(p);
        snprintf(full, sizeof full, "%.*s/%s", (int)(end - p), p, prog);
        if (access(full, X_OK) == 0)
            return true;
    }
    return false;
}

static void spawn_error(const struct proc_spec *spec, int rc, struct err *err)
{
    const char *prog = spec->argv[0], *cwd = spec->cwd;
    int cwd_errno = 0;

    if (cwd != NULL && access(cwd, X_OK) != 0)
        cwd_errno = errno;
    if ((rc == ENOENT || rc == ENOTDIR || rc == EACCES) && cwd_errno != 0)
        err_set(err, "cannot run \"%.200s\": the working directory \"%.200s\" %s", prog, cwd,
                cwd_errno == ENOTDIR  ? "is not a directory"
                : cwd_errno == EACCES ? "cannot be entered (permission denied)"
                                      : "does not exist");
    else if (rc == ENOENT && program_exists(prog))
        err_set(err,
                "cannot run \"%.200s\": the interpreter on its #! line, or a library it "
                "needs, is missing",
                prog);
    else if (rc == ENOENT)
        err_set(err, "cannot run \"%.200s\": no such program (is it installed and on PATH?)", prog);
    else if (rc == EACCES)
        err_set(err, "cannot run \"%.200s\": permission denied (is it executable?)", prog);
    else
        err_set(err, "cannot run \"%.200s\": %s", prog, strerror(rc));
}

/* Out of descriptors, processes or memory: may work once another process has ended. */
static bool busy_error(int e)
{
    return e == EMFILE || e == ENFILE || e == EAGAIN || e == ENOMEM;
}

int proc_start(struct loop *loop, const struct proc_spec *spec, struct proc **out, struct err *err)
{
    struct proc *p;
    size_t limit = spec->output_limit ? spec->output_limit : PROC_OUTPUT_DEFAULT;
    int outp[2], errp[2], inp[2] = {-1, -1}, rc, pidfd;
    pid_t pid;

    if (make_pipe(outp) != 0) {
        rc = errno;
        err_set(err, "cannot run \"%.200s\": pipe: %s", spec->argv[0], strerror(rc));
        return busy_error(rc) ? PROC_BUSY : -1;
    }
    if (make_pipe(errp) != 0) {
        rc = errno;
        close(outp[0]);
        close(outp[1]);
        err_set(err, "cannot run \"%.200s\": pipe: %s", spec->argv[0], strerror(rc));
        return busy_error(rc) ? PROC_BUSY : -1;
    }
    if ((spec->input != NULL || spec->input_pipe) && make_pipe(inp) != 0) {
        rc = errno;
        close(outp[0]);
        close(outp[1]);
        close(errp[0]);
        close(errp[1]);
        err_set(err, "cannot run \"%.200s\": pipe: %s", spec->argv[0], strerror(rc));
        return busy_error(rc) ? PROC_BUSY : -1;
    }
    rc = spawn(spec, inp[0], outp[1], errp[1], &pid);
    close(outp[1]);
    close(errp[1]);
    if (inp[0] >= 0)
        close(inp[0]);
    if (rc != 0) {
        close(outp[0]);
        close(errp[0]);
        if (inp[1] >= 0)
            close(inp[1]);
        spawn_error(spec, rc, err);
        return busy_error(rc) ? PROC_BUSY : -1;
    }
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        rc = errno;
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(outp[0]);
        close(errp[0]);
        if (inp[1] >= 0)
            close(inp[1]);
        if (busy_error(rc))
            return err_set(err, "cannot watch process %d: %s", (int)pid, strerror(rc)), PROC_BUSY;
        return err_set(err,
                       "cannot watch process %d: pidfd_open: %s (n3ctl needs Linux 5.3 or "
                       "later)",
                       (int)pid, strerror(rc));
    }

    p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->pid = pid;
    p->pidfd = pidfd;
    p->grace_ms = spec->grace_ms;
    p->on_output = spec->on_output;
    p->on_done = spec->on_done;
    p->arg = spec->arg;
    tail_init(&p->tails[0], limit);
    tail_init(&p->tails[1], limit);
    p->exit_watch.data = p->out.data = p->err.data = p;
    uv_pipe_init(loop_uv(loop), &p->out, 0);
    uv_pipe_init(loop_uv(loop), &p->err, 0);
    uv_pipe_open(&p->out, outp[0]);
    uv_pipe_open(&p->err, errp[0]);
    uv_poll_init(loop_uv(loop), &p->exit_watch, pidfd);
    uv_poll_start(&p->exit_watch, UV_READABLE, exit_cb);
    p->out_open = p->err_open = true;
    if (inp[1] >= 0 && spec->input_pipe) {
        p->has_in = true;
        p->in_stream = true;
        p->in.data = p;
        uv_pipe_init(loop_uv(loop), &p->in, 0);
        uv_pipe_open(&p->in, inp[1]);
    } else if (inp[1] >= 0) {
        uv_buf_t b;

        /* The input goes in as the pipe takes it; the pipe closes when all of it is written
         * (or when the child stops reading: the write fails, the pipe closes the same). */
        p->has_in = true;
        p->in.data = p;
        p->input = xmalloc(spec->input_len + 1);
        memcpy(p->input, spec->input, spec->input_len);
        uv_pipe_init(loop_uv(loop), &p->in, 0);
        uv_pipe_open(&p->in, inp[1]);
        b = uv_buf_init(p->input, (unsigned)spec->input_len);
        p->in_req.data = p;
        if (uv_write(&p->in_req, (uv_stream_t *)&p->in, &b, 1, input_written) != 0)
            close_input(p);
    }
    p->timer = loop_timer_new(loop, timer_cb, p);
    uv_read_start((uv_stream_t *)&p->out, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&p->err, alloc_cb, read_cb);
    p->next = all_procs;
    if (all_procs != NULL)
        all_procs->prev = p;
    all_procs = p;
    *out = p;
    return 0;
}

void proc_terminate(struct proc *p, uint64_t grace_ms)
{
    p->stopped = true;
    if (grace_ms == 0) {
        send_kill(p);
        maybe_done(p);
        return;
    }
    if (!p->group_termed || !p->exited) {
        signal_group(p, SIGTERM);
        p->group_termed = !p->group_empty;
    }
    arm_timer(p, grace_ms);
}

int proc_write(struct proc *p, const void *data, size_t len)
{
    struct stream_write *w;
    uv_buf_t b;

    if (!p->in_stream || p->finalizing || uv_is_closing((uv_handle_t *)&p->in))
        return -1;
    w = xmalloc(sizeof *w + len + 1);
    memcpy(w->data, data, len);
    w->req.data = p;
    b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, stream_written) != 0) {
        free(w);
        close_input(p);
        return -1;
    }
    return 0;
}

void proc_close_input(struct proc *p)
{
    if (p->in_stream)
        close_input(p);
}

pid_t proc_pid(const struct proc *p)
{
    return p->pid;
}

bool proc_exited(const struct proc *p)
{
    return p->exited;
}

bool proc_stopped(const struct proc *p)
{
    return p->stopped;
}

int proc_exit_code(const struct proc *p)
{
    return p->exit_code;
}

int proc_term_signal(const struct proc *p)
{
    return p->term_signal;
}

const struct tail *proc_output(const struct proc *p, enum proc_stream stream)
{
    return &p->tails[stream == PROC_STDOUT ? 0 : 1];
}

void proc_free(struct proc *p)
{
    if (p == NULL)
        return;
    p->freed = true;
    if (!p->exited) {
        send_kill(p); /* abandoned while running: nothing may outlive its owner */
        return;       /* finalized once it has exited and its pipes are closed */
    }
    if (!p->done)
        return;
    if (p->timer != NULL && loop_timer_active(p->timer) && p->group_termed)
        return; /* leftovers of the group: KILL when the grace period is over */
    finalize(p);
}

void proc_flush_all(struct loop *loop)
{
    struct proc *p, *next;

    for (p = all_procs; p != NULL; p = next) {
        next = p->next;
        if (p->loop != loop)
            continue;
        if (!p->kill_sent)
            send_kill(p);
        if (p->exited && p->freed) {
            p->done = true;
            finalize(p);
        }
    }
}

unsigned proc_count(const struct loop *loop)
{
    const struct proc *p;
    unsigned n = 0;

    for (p = all_procs; p != NULL; p = p->next)
        n += p->loop == loop;
    return n;
}

unsigned proc_lingering(const struct loop *loop)
{
    const struct proc *p;
    unsigned n = 0;

    for (p = all_procs; p != NULL; p = p->next)
        n += p->loop == loop && p->freed && p->group_termed && !p->kill_sent && !p->group_empty;
    return n;
}
