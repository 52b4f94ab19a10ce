/*
 * A slot's instance on a local target (deploy/service.h), with real processes: socat as the
 * instance that listens. Started in a session of its own with its pid and start time in the
 * pid file, its environment and log; refused when it runs already or the port is taken;
 * stopped (TERM, KILL after the grace period) with the port free; a crash at start and a crash
 * later seen as such, with the log's last lines; it outlives the loop and transport that
 * started it; the operator's own commands in systemd mode.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/service.h"
#include "deploy/transport.h"
#include "tests/unit/testutil.h"

#define WAIT_MS 30000

struct fx {
    struct loop *loop;
    struct transport *t;
    char *dir;
    struct inv_target target;
    struct inv_service svc;
    struct service_req req;
};

struct answer {
    bool done;
    int rc;
    struct service_status st;
    char msg[ERR_MSG_MAX];
};

static void answer_cb(void *arg, int rc, const struct service_status *st, const char *msg)
{
    struct answer *a = arg;

    a->done = true;
    a->rc = rc;
    a->st = *st;
    snprintf(a->msg, sizeof a->msg, "%s", msg != NULL ? msg : "");
}

static bool answered(void *arg)
{
    return ((struct answer *)arg)->done;
}

/* A port nothing listens on now (the kernel's pick, let go). */
static unsigned free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_listening(unsigned port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
    return rc == 0;
}

/* Poll until something listens on port, at most WAIT_MS. */
static bool wait_listening(unsigned port)
{
    int i;

    for (i = 0; i < WAIT_MS / 10; i++) {
        if (port_listening(port))
            return true;
        usleep(10000);
    }
    return false;
}

static void fx_init(struct fx *f, const char *start)
{
    char *rel, *releases;

    memset(f, 0, sizeof *f);
    f->loop = loop_new();
    f->t = transport_local_new(f->loop, "t1");
    f->dir = tu_mkdtemp();
    releases = xasprintf("%s/releases", f->dir);
    rel = xasprintf("%s/v1.0.0", releases);
    ck_assert_int_eq(mkdir(releases, 0755), 0);
    ck_assert_int_eq(mkdir(rel, 0755), 0);
    free(rel);
    free(releases);
    f->target.name = "t1";
    f->target.deploy_path = f->dir;
    f->svc.ports[HS_BLUE] = free_port();
    f->svc.ports[HS_GREEN] = free_port();
    f->svc.start = xstrdup(start);
    f->svc.stop_grace_ms = 2000;
    f->svc.ready_timeout_ms = 10000;
    f->req.loop = f->loop;
    f->req.t = f->t;
    f->req.target = &f->target;
    f->req.svc = &f->svc;
    f->req.slot = HS_BLUE;
    f->req.version = "v1.0.0";
}

static void fx_done(struct fx *f)
{
    transport_free(f->t);
    loop_free(f->loop);
    tu_rmdir_r(f->dir);
    free(f->dir);
    free(f->svc.start);
    free(f->svc.stop);
}

static void call(struct fx *f, void (*op)(const struct service_req *, service_fn, void *),
                 struct answer *a)
{
    memset(a, 0, sizeof *a);
    op(&f->req, answer_cb, a);
    ck_assert_msg(tu_run_until(f->loop, answered, a, WAIT_MS), "the service command did not end");
}

static bool pid_alive(long pid)
{
    char path[64], *stat, *paren;
    bool alive;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    stat = tu_read_file(path);
    if (stat == NULL)
        return false;
    paren = strrchr(stat, ')');
    alive = paren != NULL && paren[2] != 'Z';
    free(stat);
    return alive;
}

/* socat listening on {port}, saying who it is first. */
#define LISTENER                                                                                   \
    "echo \"env: $N3_SLOT $N3_PORT $N3_VERSION\"; exec socat "                                     \
    "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork EXEC:cat"

START_TEST(start_status_stop)
{
    struct fx f;
    struct answer a;
    char *log, *link, buf[256];
    long pid;
    ssize_t n;

    fx_init(&f, LISTENER);
    call(&f, service_start, &a);
    ck_assert_msg(a.rc == 0, "start: %s", a.msg);
    ck_assert_int_eq(a.st.state, SERVICE_RUNNING);
    pid = a.st.pid;
    ck_assert(pid_alive(pid));
    /* It leads a session of its own: nothing of the command that started it. */
    ck_assert_int_eq(getsid((pid_t)pid), (pid_t)pid);
    link = xasprintf("%s/slots/blue", f.dir);
    n = readlink(link, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "../releases/v1.0.0");
    free(link);
    /* Listening (socat binds right after it starts), as status says too. */
    ck_assert_msg(wait_listening(f.svc.ports[HS_BLUE]), "nothing listens on %u",
                  f.svc.ports[HS_BLUE]);
    call(&f, service_status, &a);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(a.st.state, SERVICE_RUNNING);
    ck_assert_int_eq(a.st.pid, pid);
    ck_assert(a.st.listening);
    log = xasprintf("%s/shared/log/blue.log", f.dir);
    {
        char *text = tu_read_file(log), want[64];

        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_nonnull(strstr(text, "n3ctl: starting v1.0.0 in slot blue on port"));
        snprintf(want, sizeof want, "env: blue %u v1.0.0", f.svc.ports[HS_BLUE]);
        ck_assert_msg(strstr(text, want) != NULL, "the log: %s", text);
        free(text);
    }
    free(log);
    /* A second start is refused, and changes nothing. */
    call(&f, service_start, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_ptr_nonnull(strstr(a.msg, "runs already"));
    ck_assert(pid_alive(pid));
    /* Stopped: gone, the port free, the pid file too. */
    call(&f, service_stop, &a);
    ck_assert_msg(a.rc == 0, "stop: %s", a.msg);
    ck_assert_str_eq(a.msg, "");
    ck_assert(!pid_alive(pid));
    ck_assert(!port_listening(f.svc.ports[HS_BLUE]));
    call(&f, service_status, &a);
    ck_assert_int_eq(a.st.state, SERVICE_STOPPED);
    ck_assert(!a.st.listening);
    call(&f, service_stop, &a);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_ptr_nonnull(strstr(a.msg, "was not running"));
    fx_done(&f);
}
END_TEST

START_TEST(refused_when_the_port_is_taken_or_no_release)
{
    struct fx f;
    struct answer a;
    int fd;
    struct sockaddr_in sa;

    fx_init(&f, LISTENER);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)f.svc.ports[HS_BLUE]);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    call(&f, service_start, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "is in use by something that is not this slot's") != NULL, "%s",
                  a.msg);
    close(fd);
    f.req.version = "v9.9.9";
    call(&f, service_start, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_ptr_nonnull(strstr(a.msg, "no release v9.9.9 there"));
    fx_done(&f);
}
END_TEST

START_TEST(crash_at_start_and_later)
{
    struct fx f;
    struct answer a;
    int i;

    fx_init(&f, "echo 'cannot open the database' >&2; exit 3");
    call(&f, service_start, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_int_eq(a.st.state, SERVICE_CRASHED);
    ck_assert_msg(strstr(a.msg, "exited as soon as it started") != NULL ||
                      strstr(a.msg, "did not start") != NULL,
                  "%s", a.msg);
    ck_assert_ptr_nonnull(strstr(a.st.log_tail, "cannot open the database"));
    fx_done(&f);

    /* Up for a moment, then gone: status says crashed, with the log. */
    fx_init(&f, "echo started; sleep 0.5; echo 'out of memory' >&2; exit 1");
    call(&f, service_start, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    for (i = 0; i < 300; i++) {
        call(&f, service_status, &a);
        if (a.st.state != SERVICE_RUNNING)
            break;
        usleep(20000);
    }
    ck_assert_int_eq(a.st.state, SERVICE_CRASHED);
    ck_assert_ptr_nonnull(strstr(a.st.log_tail, "out of memory"));
    call(&f, service_stop, &a);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_ptr_nonnull(strstr(a.msg, "had crashed"));
    call(&f, service_status, &a);
    ck_assert_int_eq(a.st.state, SERVICE_STOPPED);
    fx_done(&f);
}
END_TEST

START_TEST(killed_after_the_grace_period)
{
    struct fx f;
    struct answer a;
    long pid;

    fx_init(&f, "trap '' TERM; while :; do sleep 0.05; done");
    f.svc.stop_grace_ms = 300;
    call(&f, service_start, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    pid = a.st.pid;
    call(&f, service_stop, &a);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_msg(strstr(a.msg, "did not end within 0.3s of TERM and was killed") != NULL, "%s",
                  a.msg);
    ck_assert(!pid_alive(pid));
    fx_done(&f);
}
END_TEST

START_TEST(outlives_what_started_it)
{
    struct fx f, g;
    struct answer a;
    long pid;
    char *dir;

    fx_init(&f, LISTENER);
    call(&f, service_start, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    pid = a.st.pid;
    /* The loop and transport that started it go; it stays. */
    dir = xstrdup(f.dir);
    transport_free(f.t);
    loop_free(f.loop);
    ck_assert(pid_alive(pid));
    /* A new process finds it, by its pid file, and stops it. */
    g = f;
    g.loop = loop_new();
    g.t = transport_local_new(g.loop, "t1");
    g.req.loop = g.loop;
    g.req.t = g.t;
    call(&g, service_status, &a);
    ck_assert_int_eq(a.st.state, SERVICE_RUNNING);
    ck_assert_int_eq(a.st.pid, pid);
    call(&g, service_stop, &a);
    ck_assert_int_eq(a.rc, 0);
    ck_assert(!pid_alive(pid));
    free(dir);
    fx_done(&g);
}
END_TEST

START_TEST(systemd_mode_runs_the_operators_commands)
{
    struct fx f;
    struct answer a;
    char *marks, *text;

    fx_init(&f, "x");
    free(f.svc.start);
    marks = xasprintf("%s/marks", f.dir);
    f.svc.mode = INV_SERVICE_SYSTEMD;
    /* The variables are words of their own, quoted: not inside double quotes. */
    f.svc.start = xasprintf("echo start {slot} {port} {version} \"$PWD\" >> %s", marks);
    f.svc.stop = xasprintf("echo stop {slot} >> %s; exit 4", marks);
    call(&f, service_start, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_int_eq(a.st.state, SERVICE_UNKNOWN);
    call(&f, service_stop, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_ptr_nonnull(strstr(a.msg, "(exit 4)"));
    text = tu_read_file(marks);
    {
        char want[512];

        snprintf(want, sizeof want, "start blue %u v1.0.0 %s/releases/v1.0.0\nstop blue\n",
                 f.svc.ports[HS_BLUE], f.dir);
        ck_assert_str_eq(text, want);
    }
    free(text);
    free(marks);
    fx_done(&f);
}
END_TEST

static Suite *service_suite(void)
{
    Suite *s = suite_create("service");
    TCase *t = tcase_create("local");

    tcase_set_timeout(t, 120);
    tcase_add_test(t, start_status_stop);
    tcase_add_test(t, refused_when_the_port_is_taken_or_no_release);
    tcase_add_test(t, crash_at_start_and_later);
    tcase_add_test(t, killed_after_the_grace_period);
    tcase_add_test(t, outlives_what_started_it);
    tcase_add_test(t, systemd_mode_runs_the_operators_commands);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(service_suite());
}
