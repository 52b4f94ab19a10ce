/* Helpers shared by the unit tests. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <check.h>
#include <uv.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

struct deadline {
    bool expired;
};

static void deadline_cb(uv_timer_t *t)
{
    struct deadline *d = t->data;

    d->expired = true;
}

static void tick_cb(uv_timer_t *t)
{
}

bool tu_run_until(struct loop *loop, bool (*pred)(void *), void *arg, unsigned real_timeout_ms)
{
    /* Real libuv timers, even on a fake-clock loop: one bounds the wait in real time; the
     * other wakes the loop every few milliseconds for conditions outside it (a file that a
     * step creates, a process that dies). */
    uv_timer_t timer, tick;
    struct deadline d = {false};
    bool ok;

    uv_timer_init(loop_uv(loop), &timer);
    timer.data = &d;
    uv_timer_start(&timer, deadline_cb, real_timeout_ms, 0);
    uv_timer_init(loop_uv(loop), &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    while (!(ok = pred(arg)) && !d.expired)
        loop_run_once(loop, true);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    loop_run_once(loop, false);
    return ok;
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *path = xasprintf("%s/n3test.XXXXXX", base != NULL ? base : "/tmp");

    if (mkdtemp(path) == NULL)
        fatal("mkdtemp %s failed", path);
    return path;
}

void tu_rmdir_r(const char *path)
{
    char *cmd = xasprintf("rm -rf -- '%s'", path); /* test paths come from mkdtemp: no quotes */

    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
    free(cmd);
}

void tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
        fatal("cannot write %s", path);
}

char *tu_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            data = xrealloc(data, cap);
        }
        n = fread(data + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    data[len] = '\0';
    return data;
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

pid_t tu_spawn(const char *const *argv)
{
    pid_t parent = getpid(), pid;
    int pipefd[2], e = 0;

    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        char path[512];

        close(pipefd[0]);
        /* Ended with the test; and if the test is gone already, at once. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        snprintf(path, sizeof path, "/usr/sbin/%s", argv[0]);
        execv(path, (char *const *)argv);
        e = errno;
        if (write(pipefd[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    close(pipefd[1]);
    /* The exec went through when the pipe closes with nothing in it. */
    if (read(pipefd[0], &e, sizeof e) == (ssize_t)sizeof e) {
        close(pipefd[0]);
        waitpid(pid, NULL, 0);
        errno = e;
        return -1;
    }
    close(pipefd[0]);
    return pid;
}
