/*
 * The haproxy router (plugins/router_haproxy.c) against a real HAProxy that the test starts
 * on 127.0.0.1 with its own config (and stops, by its pid): the weights read from HAProxy;
 * set and read back; kept over a restart through the server-state file; a drain, and a
 * server taken out of it by a weight; HAProxy closing the idle admin connection (stats
 * timeout) and the next change going on a new one; a server HAProxy does not have; no
 * admin socket at all.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "plugins/builtin.h"
#include "tests/unit/testutil.h"
#include "tests/unit/tu_router.h"

#define WAIT_MS 20000

extern char **environ;

struct fx {
    struct loop *loop;
    char *dir, *cfg, *sock, *state;
    pid_t haproxy;
    struct router_server servers[4];
    cJSON *config;
    const struct router_kind *kind;
    struct router *r;
};

static bool sock_there(void *arg)
{
    struct stat st;

    return stat(arg, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Start HAProxy in the foreground (-db), its admin socket at f->sock, loading the server state
 * file when there is one. */
static void haproxy_start(struct fx *f)
{
    const char *argv[] = {"haproxy", "-db", "-f", f->cfg, NULL};

    unlink(f->sock);
    f->haproxy = tu_spawn(argv);
    ck_assert_msg(f->haproxy > 0,
                  "cannot start haproxy (scripts/check installs the Debian package)");
    ck_assert_msg(tu_run_until(f->loop, sock_there, f->sock, WAIT_MS),
                  "HAProxy's admin socket %s did not come", f->sock);
}

static void haproxy_stop(struct fx *f)
{
    if (f->haproxy <= 0)
        return;
    kill(f->haproxy, SIGTERM);
    waitpid(f->haproxy, NULL, 0);
    f->haproxy = 0;
}

static void fx_init(struct fx *f, const char *stats_timeout)
{
    char *text;

    memset(f, 0, sizeof *f);
    plugins_register_builtins();
    f->loop = loop_new();
    f->dir = tu_mkdtemp();
    f->cfg = xasprintf("%s/haproxy.cfg", f->dir);
    f->sock = xasprintf("%s/admin.sock", f->dir);
    f->state = xasprintf("%s/servers.state", f->dir);
    text = xasprintf("global\n"
                     "    stats socket %s mode 600 level admin\n"
                     "    stats timeout %s\n"
                     "    server-state-file %s\n"
                     "defaults\n"
                     "    mode http\n"
                     "    timeout connect 1s\n"
                     "    timeout client 5s\n"
                     "    timeout server 5s\n"
                     "    load-server-state-from-file global\n"
                     "backend app\n"
                     "    server t1_blue 127.0.0.1:1 weight 100\n"
                     "    server t1_green 127.0.0.1:2 weight 0\n"
                     "    server t2_blue 127.0.0.1:3 weight 100\n"
                     "    server t2_green 127.0.0.1:4 weight 0\n"
                     /* A static algorithm: HAProxy takes weights of 0 or 100 %% only. */
                     "backend fixed\n"
                     "    balance source\n"
                     "    server t1_blue 127.0.0.1:5 weight 100\n",
                     f->sock, stats_timeout, f->state);
    tu_write_file(f->cfg, text);
    free(text);
    haproxy_start(f);
    snprintf(f->servers[0].target, sizeof f->servers[0].target, "t1");
    f->servers[0].slot = HS_BLUE;
    snprintf(f->servers[1].target, sizeof f->servers[1].target, "t1");
    f->servers[1].slot = HS_GREEN;
    snprintf(f->servers[2].target, sizeof f->servers[2].target, "t2");
    f->servers[2].slot = HS_BLUE;
    snprintf(f->servers[3].target, sizeof f->servers[3].target, "t2");
    f->servers[3].slot = HS_GREEN;
    for (int i = 0; i < 4; i++)
        router_server_name(NULL, f->servers[i].target, f->servers[i].slot, f->servers[i].name,
                           sizeof f->servers[i].name);
    f->config = cJSON_CreateObject();
    cJSON_AddStringToObject(f->config, "type", "haproxy");
    cJSON_AddStringToObject(f->config, "socket", f->sock);
    cJSON_AddStringToObject(f->config, "backend", "app");
    cJSON_AddStringToObject(f->config, "state_file", f->state);
    f->kind = router_kind_find("haproxy");
    ck_assert_ptr_nonnull(f->kind);
}

static void fx_open(struct fx *f, size_t n)
{
    struct router_ctx ctx;
    struct err err;

    memset(&ctx, 0, sizeof ctx);
    ctx.loop = f->loop;
    ctx.config = f->config;
    ctx.servers = f->servers;
    ctx.nservers = n;
    f->r = f->kind->open(&ctx, &err);
    ck_assert_ptr_nonnull(f->r);
}

static void fx_done(struct fx *f)
{
    if (f->r != NULL)
        f->kind->close(f->r);
    haproxy_stop(f);
    cJSON_Delete(f->config);
    tu_rmdir_r(f->dir);
    free(f->dir);
    free(f->cfg);
    free(f->sock);
    free(f->state);
    loop_free(f->loop);
}

static void wait_answer(struct fx *f, struct tu_answer *a)
{
    ck_assert_msg(tu_run_until(f->loop, tu_answered, a, WAIT_MS), "the router did not answer");
}

static void do_read(struct fx *f, struct tu_answer *a)
{
    memset(a, 0, sizeof *a);
    f->kind->read(f->r, tu_answer_cb, a);
    wait_answer(f, a);
}

static void do_set(struct fx *f, const unsigned *w, struct tu_answer *a)
{
    memset(a, 0, sizeof *a);
    f->kind->set_weights(f->r, w, tu_answer_cb, a);
    wait_answer(f, a);
}

static void weights_are(const struct tu_answer *a, unsigned w0, unsigned w1, unsigned w2,
                        unsigned w3)
{
    ck_assert_msg(a->rc == 0, "%s", a->msg);
    ck_assert_uint_eq(a->v->n, 4);
    ck_assert_uint_eq(a->v->servers[0].weight, w0);
    ck_assert_uint_eq(a->v->servers[1].weight, w1);
    ck_assert_uint_eq(a->v->servers[2].weight, w2);
    ck_assert_uint_eq(a->v->servers[3].weight, w3);
}

START_TEST(read_set_and_keep_over_a_restart)
{
    struct fx f;
    struct tu_answer a;
    const unsigned w[] = {90, 10, 90, 10};

    fx_init(&f, "10s");
    fx_open(&f, 4);
    do_read(&f, &a);
    weights_are(&a, 100, 0, 100, 0);
    ck_assert_str_eq(a.v->servers[0].state, "ready");
    router_view_free(a.v);
    do_set(&f, w, &a);
    weights_are(&a, 90, 10, 90, 10); /* what HAProxy says, read back */
    router_view_free(a.v);
    /* The state file holds them: a restarted HAProxy starts with them. */
    ck_assert_int_eq(access(f.state, R_OK), 0);
    f.kind->close(f.r);
    f.r = NULL;
    haproxy_stop(&f);
    haproxy_start(&f);
    fx_open(&f, 4);
    do_read(&f, &a);
    weights_are(&a, 90, 10, 90, 10);
    router_view_free(a.v);
    fx_done(&f);
}
END_TEST

START_TEST(drain_and_back)
{
    struct fx f;
    struct tu_answer a;
    const unsigned w[] = {50, 50, 50, 50};

    fx_init(&f, "10s");
    fx_open(&f, 4);
    memset(&a, 0, sizeof a);
    f.kind->drain(f.r, 0, tu_answer_cb, &a);
    wait_answer(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_str_eq(a.v->servers[0].state, "drain");
    ck_assert_str_eq(a.v->servers[2].state, "ready");
    router_view_free(a.v);
    /* A weight for a drained server takes it out of the drain. */
    do_set(&f, w, &a);
    weights_are(&a, 50, 50, 50, 50);
    ck_assert_str_eq(a.v->servers[0].state, "ready");
    router_view_free(a.v);
    fx_done(&f);
}
END_TEST

static bool elapsed(void *arg)
{
    struct loop **l = arg;
    static uint64_t t0;

    if (t0 == 0)
        t0 = loop_now_ms(*l);
    return loop_now_ms(*l) - t0 >= 1500;
}

START_TEST(idle_connection_closed_by_haproxy)
{
    struct fx f;
    struct tu_answer a;
    const unsigned w[] = {70, 30, 70, 30};

    fx_init(&f, "1s"); /* HAProxy closes an idle admin connection after a second */
    fx_open(&f, 4);
    do_read(&f, &a);
    router_view_free(a.v);
    /* Idle past HAProxy's stats timeout: it closes the connection; the next change goes on a
     * new one. */
    tu_run_until(f.loop, elapsed, &f.loop, 3000);
    do_set(&f, w, &a);
    weights_are(&a, 70, 30, 70, 30);
    router_view_free(a.v);
    fx_done(&f);
}
END_TEST

START_TEST(errors)
{
    struct fx f;
    struct tu_answer a;
    unsigned w[] = {1, 1, 1, 1, 1};

    fx_init(&f, "10s");
    /* A server HAProxy does not have. */
    snprintf(f.servers[3].name, sizeof f.servers[3].name, "t9_green");
    fx_open(&f, 4);
    do_read(&f, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(
        strstr(a.msg, "HAProxy's backend app has no server t9_green (for t2's green slot)") != NULL,
        "%s", a.msg);
    /* A change with it is refused before anything is applied. */
    do_set(&f, w, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "has no server t9_green") != NULL, "%s", a.msg);
    f.kind->close(f.r);
    snprintf(f.servers[3].name, sizeof f.servers[3].name, "t2_green");
    fx_open(&f, 4);
    do_read(&f, &a);
    weights_are(&a, 100, 0, 100, 0);
    router_view_free(a.v);
    f.kind->close(f.r);
    f.r = NULL;
    /* HAProxy refuses a weight: said, with HAProxy's words. */
    cJSON_ReplaceItemInObject(f.config, "backend", cJSON_CreateString("fixed"));
    fx_open(&f, 1);
    do_set(&f, w, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "HAProxy refused it: ") != NULL && strstr(a.msg, "static") != NULL,
                  "%s", a.msg);
    f.kind->close(f.r);
    f.r = NULL;
    /* No admin socket there at all. */
    haproxy_stop(&f);
    fx_open(&f, 4);
    do_read(&f, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "cannot connect to HAProxy's admin socket") != NULL, "%s", a.msg);
    fx_done(&f);
}
END_TEST

static Suite *haproxy_suite(void)
{
    Suite *s = suite_create("router_haproxy");
    TCase *t = tcase_create("real haproxy");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, read_set_and_keep_over_a_restart);
    tcase_add_test(t, drain_and_back);
    tcase_add_test(t, idle_connection_closed_by_haproxy);
    tcase_add_test(t, errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(haproxy_suite());
}
