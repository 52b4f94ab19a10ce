/*
 * The nginx router (plugins/router_nginx.c) against a real nginx that the test starts with
 * its own prefix and config (and stops, by its pid): weights written to the upstream file,
 * tested, reloaded and read back from nginx -T; 0 % as `down`; an nginx -t that fails (a
 * broken file elsewhere in the config) leaves the upstream file as it was, byte for byte, and
 * nginx not reloaded; an upstream the config does not include; a drain.
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
#include "core/proc.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"
#include "tests/unit/testutil.h"
#include "tests/unit/tu_router.h"

#define WAIT_MS 30000

extern char **environ;

struct fx {
    struct loop *loop;
    struct transport *t;
    char *dir, *conf, *upstream, *extra, *pidfile;
    pid_t nginx;
    struct router_server servers[2];
    cJSON *config;
    const struct router_kind *kind;
    struct router *r;
};

static bool file_there(void *arg)
{
    struct stat st;

    return stat(arg, &st) == 0 && st.st_size > 0;
}

static void fx_init(struct fx *f)
{
    char *text, *nginx_cmd;
    const char *argv[8];

    memset(f, 0, sizeof *f);
    plugins_register_builtins();
    f->loop = loop_new();
    f->t = transport_local_new(f->loop, "lb");
    f->dir = tu_mkdtemp();
    chmod(f->dir, 0755);
    f->conf = xasprintf("%s/nginx.conf", f->dir);
    f->upstream = xasprintf("%s/upstream.conf", f->dir);
    f->extra = xasprintf("%s/extra.conf", f->dir);
    f->pidfile = xasprintf("%s/nginx.pid", f->dir);
    text = xasprintf("pid %s;\nerror_log %s/error.log;\nevents {}\nhttp {\n    access_log off;\n"
                     "    include %s;\n    include %s;\n    server {\n        listen 127.0.0.1:1 "
                     "bind;\n        location / { proxy_pass http://app; }\n    }\n}\n",
                     f->pidfile, f->dir, f->upstream, f->extra);
    /* Port 1 is never taken by a test; nginx as root may bind it. */
    tu_write_file(f->conf, text);
    free(text);
    tu_write_file(f->upstream, "upstream app {\n    server 127.0.0.1:8001;\n    server "
                               "127.0.0.1:8002 down;\n}\n");
    tu_write_file(f->extra, "# nothing\n");
    argv[0] = "nginx";
    argv[1] = "-p";
    argv[2] = f->dir;
    argv[3] = "-c";
    argv[4] = f->conf;
    argv[5] = "-g";
    argv[6] = "daemon off;";
    argv[7] = NULL;
    f->nginx = tu_spawn(argv);
    ck_assert_msg(f->nginx > 0, "cannot start nginx (scripts/check installs the Debian package)");
    ck_assert_msg(tu_run_until(f->loop, file_there, f->pidfile, WAIT_MS), "nginx did not start");
    snprintf(f->servers[0].target, sizeof f->servers[0].target, "t1");
    f->servers[0].slot = HS_BLUE;
    snprintf(f->servers[0].host, sizeof f->servers[0].host, "127.0.0.1");
    f->servers[0].port = 8001;
    snprintf(f->servers[1].target, sizeof f->servers[1].target, "t1");
    f->servers[1].slot = HS_GREEN;
    snprintf(f->servers[1].host, sizeof f->servers[1].host, "127.0.0.1");
    f->servers[1].port = 8002;
    nginx_cmd = xasprintf("PATH=$PATH:/usr/sbin nginx -p '%s' -c '%s'", f->dir, f->conf);
    f->config = cJSON_CreateObject();
    cJSON_AddStringToObject(f->config, "type", "nginx");
    cJSON_AddStringToObject(f->config, "upstream_file", f->upstream);
    cJSON_AddStringToObject(f->config, "upstream", "app");
    text = xasprintf("%s -t", nginx_cmd);
    cJSON_AddStringToObject(f->config, "test_command", text);
    free(text);
    text = xasprintf("%s -s reload", nginx_cmd);
    cJSON_AddStringToObject(f->config, "reload_command", text);
    free(text);
    text = xasprintf("%s -T", nginx_cmd);
    cJSON_AddStringToObject(f->config, "dump_command", text);
    free(text);
    free(nginx_cmd);
    f->kind = router_kind_find("nginx");
    ck_assert_ptr_nonnull(f->kind);
    {
        struct router_ctx ctx;
        struct err err;

        memset(&ctx, 0, sizeof ctx);
        ctx.loop = f->loop;
        ctx.config = f->config;
        ctx.servers = f->servers;
        ctx.nservers = 2;
        ctx.lb = f->t;
        f->r = f->kind->open(&ctx, &err);
    }
}

static void fx_done(struct fx *f)
{
    if (f->r != NULL)
        f->kind->close(f->r);
    kill(f->nginx, SIGTERM);
    waitpid(f->nginx, NULL, 0);
    cJSON_Delete(f->config);
    transport_free(f->t);
    tu_rmdir_r(f->dir);
    free(f->dir);
    free(f->conf);
    free(f->upstream);
    free(f->extra);
    free(f->pidfile);
    loop_free(f->loop);
}

static void do_set(struct fx *f, unsigned w0, unsigned w1, struct tu_answer *a)
{
    const unsigned w[] = {w0, w1};

    memset(a, 0, sizeof *a);
    f->kind->set_weights(f->r, w, tu_answer_cb, a);
    ck_assert(tu_run_until(f->loop, tu_answered, a, WAIT_MS));
}

static void do_read(struct fx *f, struct tu_answer *a)
{
    memset(a, 0, sizeof *a);
    f->kind->read(f->r, tu_answer_cb, a);
    ck_assert(tu_run_until(f->loop, tu_answered, a, WAIT_MS));
}

START_TEST(set_read_back_and_down)
{
    struct fx f;
    struct tu_answer a;
    char *text;

    fx_init(&f);
    do_read(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 1); /* nginx's own default */
    ck_assert_uint_eq(a.v->servers[1].weight, 0);
    ck_assert_str_eq(a.v->servers[1].state, "down");
    router_view_free(a.v);
    do_set(&f, 90, 10, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 90);
    ck_assert_uint_eq(a.v->servers[1].weight, 10);
    router_view_free(a.v);
    text = tu_read_file(f.upstream);
    ck_assert_ptr_nonnull(strstr(text, "    server 127.0.0.1:8001 weight=90;\n"
                                       "    server 127.0.0.1:8002 weight=10;\n"));
    free(text);
    do_set(&f, 0, 100, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 0);
    ck_assert_str_eq(a.v->servers[0].state, "down");
    ck_assert_uint_eq(a.v->servers[1].weight, 100);
    router_view_free(a.v);
    /* A drain: the server down, the other as it is. */
    do_set(&f, 50, 50, &a);
    router_view_free(a.v);
    memset(&a, 0, sizeof a);
    f.kind->drain(f.r, 1, tu_answer_cb, &a);
    ck_assert(tu_run_until(f.loop, tu_answered, &a, WAIT_MS));
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 50);
    ck_assert_uint_eq(a.v->servers[1].weight, 0);
    router_view_free(a.v);
    fx_done(&f);
}
END_TEST

START_TEST(failed_test_changes_nothing)
{
    struct fx f;
    struct tu_answer a;
    char *before, *after;

    fx_init(&f);
    do_set(&f, 80, 20, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    router_view_free(a.v);
    before = tu_read_file(f.upstream);
    /* Someone's broken edit elsewhere in the config: nginx -t fails. */
    tu_write_file(f.extra, "this is not nginx\n");
    do_set(&f, 10, 90, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "refused the new upstream file; it was put back as it was, and "
                                "nginx was not reloaded") != NULL,
                  "%s", a.msg);
    after = tu_read_file(f.upstream);
    ck_assert_str_eq(after, before);
    free(before);
    free(after);
    fx_done(&f);
}
END_TEST

START_TEST(upstream_not_included)
{
    struct fx f;
    struct tu_answer a;

    fx_init(&f);
    cJSON_ReplaceItemInObject(f.config, "upstream", cJSON_CreateString("other"));
    f.kind->close(f.r);
    {
        struct router_ctx ctx;
        struct err err;

        memset(&ctx, 0, sizeof ctx);
        ctx.loop = f.loop;
        ctx.config = f.config;
        ctx.servers = f.servers;
        ctx.nservers = 2;
        ctx.lb = f.t;
        f.r = f.kind->open(&ctx, &err);
    }
    do_read(&f, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "nginx has no upstream other") != NULL, "%s", a.msg);
    fx_done(&f);
}
END_TEST

static bool no_children(void *arg)
{
    return proc_count(arg) == 0;
}

/* Closed with a set in flight: its caller hears before close returns; the command's late
 * answer touches nothing that is gone (ASan's build checks that). */
START_TEST(close_in_flight)
{
    struct fx f;
    struct tu_answer a;
    const unsigned w[] = {70, 30};

    fx_init(&f);
    memset(&a, 0, sizeof a);
    f.kind->set_weights(f.r, w, tu_answer_cb, &a);
    ck_assert(!a.done);
    f.kind->close(f.r);
    f.r = NULL;
    ck_assert(a.done);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_str_eq(a.msg, "the router was closed before nginx answered");
    ck_assert(tu_run_until(f.loop, no_children, f.loop, WAIT_MS));
    fx_done(&f);
}
END_TEST

static Suite *nginx_suite(void)
{
    Suite *s = suite_create("router_nginx");
    TCase *t = tcase_create("real nginx");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, set_read_back_and_down);
    tcase_add_test(t, failed_test_changes_nothing);
    tcase_add_test(t, upstream_not_included);
    tcase_add_test(t, close_in_flight);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(nginx_suite());
}
