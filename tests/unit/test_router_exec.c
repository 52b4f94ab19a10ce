/*
 * The exec router (plugins/router_exec.c) with real plugin programs: examples/routers/file.sh
 * (the hello, a set read back from it and found in its file, a drain), and small scripts that
 * each break the protocol one way: exit at once (with their stderr's last line in the error),
 * print garbage, answer an id nobody asked for, write a line over 1 MiB, never answer (the
 * timeout, and the plugin stopped), speak protocol 2, say their load balancer is not healthy,
 * refuse a set (and stay). Every failure names the plugin; none hangs. The other example,
 * examples/routers/haproxy-socat.sh, against a real HAProxy. And n3.json's checks.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "plugins/builtin.h"
#include "tests/unit/testutil.h"
#include "tests/unit/tu_router.h"

#define WAIT_MS 20000

struct fx {
    struct loop *loop;
    char *dir, *weights;
    struct router_server servers[2];
    cJSON *config;
    const struct router_kind *kind;
    struct router *r;
    struct err err;
};

static const char *top_srcdir(void)
{
    const char *s = getenv("TOP_SRCDIR");

    return s != NULL ? s : "../..";
}

static void fx_init(struct fx *f)
{
    int s;

    memset(f, 0, sizeof *f);
    /* As n3ctl's main: a plugin gone fails a write, it does not kill us. */
    signal(SIGPIPE, SIG_IGN);
    plugins_register_builtins();
    f->loop = loop_new();
    f->dir = tu_mkdtemp();
    f->weights = xasprintf("%s/weights.json", f->dir);
    for (s = 0; s < 2; s++) {
        struct router_server *rs = &f->servers[s];

        snprintf(rs->target, sizeof rs->target, "t1");
        rs->slot = (enum hs_slot)s;
        router_server_name(NULL, "t1", rs->slot, rs->name, sizeof rs->name);
        snprintf(rs->host, sizeof rs->host, "127.0.0.1");
        rs->port = 8001 + (unsigned)s;
    }
    f->kind = router_kind_find("exec");
    ck_assert_ptr_nonnull(f->kind);
}

/* Open the router on the command argv (NULL-terminated), with timeout_ms when not 0. */
static struct router *fx_open(struct fx *f, const char *const *argv, unsigned timeout_ms)
{
    struct router_ctx ctx;
    cJSON *cmd;

    cJSON_Delete(f->config);
    f->config = cJSON_CreateObject();
    cJSON_AddStringToObject(f->config, "type", "exec");
    cmd = cJSON_AddArrayToObject(f->config, "command");
    for (; *argv != NULL; argv++)
        cJSON_AddItemToArray(cmd, cJSON_CreateString(*argv));
    if (timeout_ms > 0)
        cJSON_AddNumberToObject(f->config, "timeout_ms", timeout_ms);
    memset(&ctx, 0, sizeof ctx);
    ctx.loop = f->loop;
    ctx.config = f->config;
    ctx.servers = f->servers;
    ctx.nservers = 2;
    f->r = f->kind->open(&ctx, &f->err);
    return f->r;
}

/* The router on examples/routers/file.sh, with its weights in f->weights. */
static void fx_open_file(struct fx *f)
{
    char *prog = xasprintf("%s/examples/routers/file.sh", top_srcdir());
    const char *argv[] = {prog, f->weights, NULL};

    ck_assert_msg(fx_open(f, argv, 0) != NULL, "%s", f->err.msg);
    free(prog);
}

/* A plugin script in the test's directory: its path (the caller frees). */
static char *script(struct fx *f, const char *name, const char *body)
{
    char *path = xasprintf("%s/%s", f->dir, name);
    char *text = xasprintf("#!/bin/bash\n%s\n", body);

    tu_write_file(path, text);
    chmod(path, 0755);
    free(text);
    return path;
}

/* What a well-behaved plugin says first: the hello tu_answered, the health check passed. */
#define PRELUDE                                                                                    \
    "IFS= read -r hello || exit 0\n"                                                               \
    "echo '{\"ok\": true, \"protocol\": 1}'\n"                                                     \
    "IFS= read -r h || exit 0\n"                                                                   \
    "printf '{\"id\": %s, \"ok\": true}\\n' \"$(jq .id <<<\"$h\")\"\n"

static void fx_done(struct fx *f)
{
    if (f->r != NULL)
        f->kind->close(f->r);
    /* Nothing the router started outlives it. */
    while (proc_count(f->loop) > 0)
        loop_run_once(f->loop, true);
    cJSON_Delete(f->config);
    tu_rmdir_r(f->dir);
    free(f->dir);
    free(f->weights);
    loop_free(f->loop);
}

static void do_read(struct fx *f, struct tu_answer *a)
{
    memset(a, 0, sizeof *a);
    f->kind->read(f->r, tu_answer_cb, a);
    ck_assert(!a->done); /* never before the call has returned */
    ck_assert_msg(tu_run_until(f->loop, tu_answered, a, WAIT_MS), "no answer: a hang");
}

static void do_set(struct fx *f, unsigned w0, unsigned w1, struct tu_answer *a)
{
    const unsigned w[] = {w0, w1};

    memset(a, 0, sizeof *a);
    f->kind->set_weights(f->r, w, tu_answer_cb, a);
    ck_assert_msg(tu_run_until(f->loop, tu_answered, a, WAIT_MS), "no answer: a hang");
}

static void expect_failure(struct tu_answer *a, const char *want)
{
    ck_assert_int_eq(a->rc, -1);
    ck_assert_ptr_null(a->v);
    ck_assert_msg(strstr(a->msg, want) != NULL, "expected \"%s\" in \"%s\"", want, a->msg);
}

/* jq FILTER on the weights file prints WANT. */
static void expect_file(struct fx *f, const char *filter, const char *want)
{
    char *cmd = xasprintf("jq -c '%s' '%s'", filter, f->weights);
    char got[256] = "";
    FILE *p = popen(cmd, "r");

    ck_assert_ptr_nonnull(p);
    if (fgets(got, sizeof got, p) == NULL)
        got[0] = '\0';
    pclose(p);
    got[strcspn(got, "\n")] = '\0';
    ck_assert_msg(strcmp(got, want) == 0, "%s: expected %s, got %s", filter, want, got);
    free(cmd);
}

START_TEST(file_set_read_drain)
{
    struct fx f;
    struct tu_answer a;

    fx_init(&f);
    tu_write_file(f.weights, "{\"servers\": {\"t1_blue\": {\"weight\": 100, \"state\": "
                             "\"ready\"}, \"t1_green\": {\"weight\": 0, \"state\": \"ready\"}}}\n");
    fx_open_file(&f);
    do_read(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert(a.v->servers[0].found && a.v->servers[1].found);
    ck_assert_uint_eq(a.v->servers[0].weight, 100);
    ck_assert_uint_eq(a.v->servers[1].weight, 0);
    ck_assert_str_eq(a.v->servers[0].state, "ready");
    router_view_free(a.v);

    do_set(&f, 90, 10, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 90);
    ck_assert_uint_eq(a.v->servers[1].weight, 10);
    router_view_free(a.v);
    expect_file(&f, "[.servers.t1_blue.weight, .servers.t1_green.weight]", "[90,10]");
    /* Read back from the plugin, not remembered by n3ctl: change the file behind its back. */
    tu_write_file(f.weights, "{\"servers\": {\"t1_blue\": {\"weight\": 30}, \"t1_green\": "
                             "{\"weight\": 70, \"state\": \"maint\"}}}\n");
    do_read(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 30);
    ck_assert_str_eq(a.v->servers[0].state, "ready"); /* the default */
    ck_assert_uint_eq(a.v->servers[1].weight, 70);
    ck_assert_str_eq(a.v->servers[1].state, "maint");
    router_view_free(a.v);

    memset(&a, 0, sizeof a);
    f.kind->drain(f.r, 1, tu_answer_cb, &a);
    ck_assert(tu_run_until(f.loop, tu_answered, &a, WAIT_MS));
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_str_eq(a.v->servers[1].state, "drain");
    ck_assert_uint_eq(a.v->servers[1].weight, 70);
    ck_assert_str_eq(a.v->servers[0].state, "ready");
    router_view_free(a.v);
    expect_file(&f, ".servers.t1_green.state", "\"drain\"");
    /* A weight above 0 takes it out of the drain. */
    do_set(&f, 50, 50, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_str_eq(a.v->servers[1].state, "ready");
    router_view_free(a.v);
    fx_done(&f);
}
END_TEST

/* The hello carries the protocol and every server; a new file gets them at weight 0. */
START_TEST(hello_names_the_servers)
{
    struct fx f;
    struct tu_answer a;
    char *hello, *prog;

    fx_init(&f);
    hello = xasprintf("%s/hello.json", f.dir);
    {
        char *body = xasprintf("IFS= read -r l; printf '%%s\\n' \"$l\" >'%s'\n"
                               "{ printf '%%s\\n' \"$l\"; cat; } | "
                               "exec '%s/examples/routers/file.sh' '%s'",
                               hello, top_srcdir(), f.weights);

        prog = script(&f, "hello.sh", body);
        free(body);
    }
    {
        const char *argv[] = {prog, NULL};

        ck_assert_msg(fx_open(&f, argv, 0) != NULL, "%s", f.err.msg);
    }
    do_read(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 0);
    ck_assert_uint_eq(a.v->servers[1].weight, 0);
    router_view_free(a.v);
    {
        char *text = tu_read_file(hello);
        cJSON *h = cJSON_Parse(text), *s1;

        ck_assert_ptr_nonnull(h);
        ck_assert_int_eq(cJSON_GetObjectItem(h, "n3router")->valueint, 1);
        ck_assert_str_eq(cJSON_GetObjectItem(h, "op")->valuestring, "hello");
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(h, "servers")), 2);
        s1 = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "servers"), 1);
        ck_assert_str_eq(cJSON_GetObjectItem(s1, "name")->valuestring, "t1_green");
        ck_assert_str_eq(cJSON_GetObjectItem(s1, "target")->valuestring, "t1");
        ck_assert_str_eq(cJSON_GetObjectItem(s1, "slot")->valuestring, "green");
        ck_assert_str_eq(cJSON_GetObjectItem(s1, "host")->valuestring, "127.0.0.1");
        ck_assert_int_eq(cJSON_GetObjectItem(s1, "port")->valueint, 8002);
        cJSON_Delete(h);
        free(text);
    }
    free(hello);
    free(prog);
    fx_done(&f);
}
END_TEST

START_TEST(exits_at_once)
{
    struct fx f;
    struct tu_answer a;
    const char *argv[] = {"/bin/sh", "-c", "echo 'lb-router: no config' >&2; exit 3", NULL};

    fx_init(&f);
    ck_assert_msg(fx_open(&f, argv, 0) != NULL, "%s", f.err.msg);
    do_read(&f, &a);
    expect_failure(&a, "router plugin /bin/sh exited with status 3 before it answered the hello");
    expect_failure(&a, "its stderr's last line: \"lb-router: no config\"");
    /* The next request starts it again, and fails the same way: no hang, no crash. */
    do_read(&f, &a);
    expect_failure(&a, "exited with status 3");
    fx_done(&f);
}
END_TEST

START_TEST(not_a_program)
{
    struct fx f;
    const char *argv[] = {"/nonexistent/lb-router", NULL};

    fx_init(&f);
    ck_assert_ptr_null(fx_open(&f, argv, 0));
    ck_assert_msg(strstr(f.err.msg, "router plugin: cannot run \"/nonexistent/lb-router\"") != NULL,
                  "%s", f.err.msg);
    fx_done(&f);
}
END_TEST

START_TEST(garbage)
{
    struct fx f;
    struct tu_answer a;
    char *hello_garbage, *read_garbage;

    fx_init(&f);
    hello_garbage = script(&f, "g1.sh", "read -r l; echo 'Welcome to LB-CTL v3!'; sleep 100");
    {
        const char *argv[] = {hello_garbage, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "answered the hello with \"Welcome to LB-CTL v3!\", which is not a JSON "
                       "object; it was stopped");
    ck_assert_ptr_nonnull(strstr(a.msg, hello_garbage));
    f.kind->close(f.r);
    read_garbage =
        script(&f, "g2.sh", PRELUDE "read -r r; echo '{\"id\": 2, \"ok\": tru'; sleep 100");
    {
        const char *argv[] = {read_garbage, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(
        &a, "answered read (id 2) with \"{\"id\": 2, \"ok\": tru\", which is not a JSON object");
    free(hello_garbage);
    free(read_garbage);
    fx_done(&f);
}
END_TEST

START_TEST(unknown_id)
{
    struct fx f;
    struct tu_answer a;
    char *prog;

    fx_init(&f);
    prog =
        script(&f, "id.sh",
               PRELUDE "read -r r; echo '{\"id\": 999, \"ok\": true, \"servers\": {}}'; sleep 100");
    {
        const char *argv[] = {prog, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "answered for id 999 while read (id 2) waited for its answer");
    free(prog);
    fx_done(&f);
}
END_TEST

START_TEST(line_too_long)
{
    struct fx f;
    struct tu_answer a;
    char *prog;

    fx_init(&f);
    prog = script(&f, "long.sh",
                  PRELUDE "read -r r; head -c 3000000 /dev/zero | tr '\\0' x; echo; sleep 100");
    {
        const char *argv[] = {prog, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "wrote a line longer than 1 MiB (the router protocol's limit) for read");
    free(prog);
    fx_done(&f);
}
END_TEST

static bool pid_gone(void *arg)
{
    char *text = tu_read_file(arg);
    bool gone;

    if (text == NULL)
        return false;
    gone = kill(atoi(text), 0) == -1 && errno == ESRCH;
    free(text);
    return gone;
}

START_TEST(never_answers)
{
    struct fx f;
    struct tu_answer a;
    char *prog, *pidfile, *body;

    fx_init(&f);
    pidfile = xasprintf("%s/pid", f.dir);
    body = xasprintf("%secho $$ >'%s'; read -r r; exec sleep 100", PRELUDE, pidfile);
    prog = script(&f, "mute.sh", body);
    free(body);
    {
        const char *argv[] = {prog, NULL};

        ck_assert(fx_open(&f, argv, 300) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "did not answer read (id 2) within 0.3 s (timeout_ms); it was stopped");
    /* Stopped: its process is gone (TERM; KILL after the grace period). */
    ck_assert(tu_run_until(f.loop, pid_gone, pidfile, WAIT_MS));
    /* The hello too has a deadline. */
    f.kind->close(f.r);
    {
        const char *argv[] = {"/bin/sleep", "100", NULL};

        ck_assert(fx_open(&f, argv, 300) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "router plugin /bin/sleep did not answer the hello within 0.3 s");
    free(prog);
    free(pidfile);
    fx_done(&f);
}
END_TEST

START_TEST(protocol_2)
{
    struct fx f;
    struct tu_answer a;
    char *prog;

    fx_init(&f);
    prog = script(&f, "v2.sh", "read -r l; echo '{\"ok\": true, \"protocol\": 2}'; sleep 100");
    {
        const char *argv[] = {prog, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_set(&f, 50, 50, &a);
    expect_failure(&a, "speaks router protocol 2; this n3ctl speaks router protocol 1");
    free(prog);
    fx_done(&f);
}
END_TEST

START_TEST(unhealthy_and_refusing)
{
    struct fx f;
    struct tu_answer a;
    char *sick, *no;

    fx_init(&f);
    sick = script(&f, "sick.sh",
                  "read -r l; echo '{\"ok\": true, \"protocol\": 1}'; read -r h\n"
                  "jq -c '{id, ok: false, error: \"cannot reach 10.0.0.9:9999\"}' <<<\"$h\"\n"
                  "sleep 100");
    {
        const char *argv[] = {sick, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "says its load balancer is not healthy: cannot reach 10.0.0.9:9999");
    f.kind->close(f.r);
    /* Refusing is part of the protocol: the plugin stays, and answers what comes next. */
    no = script(&f, "no.sh",
                PRELUDE "while read -r r; do case $(jq -r .op <<<\"$r\") in\n"
                        "set) jq -c '{id, ok: false, error: \"weights are locked\"}' <<<\"$r\" ;;\n"
                        "*) jq -c '{id, ok: true, servers: {t1_blue: {weight: 100}, t1_green: "
                        "{weight: 0, up: false, sessions: 3, requests: 40, errors: 2}}}' <<<\"$r\" "
                        ";;\n"
                        "esac; done");
    {
        const char *argv[] = {no, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_set(&f, 0, 100, &a);
    expect_failure(&a, "refused set: weights are locked");
    ck_assert_ptr_nonnull(strstr(a.msg, no));
    do_read(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 100);
    ck_assert(a.v->servers[0].up);
    ck_assert(!a.v->servers[1].up);
    ck_assert_uint_eq(a.v->servers[1].sessions, 3);
    ck_assert_uint_eq(a.v->servers[1].requests, 40);
    ck_assert_uint_eq(a.v->servers[1].errors, 2);
    router_view_free(a.v);
    free(sick);
    free(no);
    fx_done(&f);
}
END_TEST

/* A bad answer to a good request: the request fails, saying what is wrong. */
START_TEST(bad_servers)
{
    struct fx f;
    struct tu_answer a;
    char *prog;

    fx_init(&f);
    prog = script(&f, "bad.sh",
                  PRELUDE "while read -r r; do jq -c '{id, ok: true, servers: {t1_blue: {weight: "
                          "150}}}' <<<\"$r\"; done");
    {
        const char *argv[] = {prog, NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "servers.t1_blue.weight is not a whole number from 0 to 100");
    free(prog);
    fx_done(&f);
}
END_TEST

static bool sock_there(void *arg)
{
    struct stat st;

    return stat(arg, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* examples/routers/haproxy-socat.sh against a real HAProxy (started in the foreground, with
 * its admin socket in the test's directory, and stopped by its pid). */
START_TEST(haproxy_socat_example)
{
    struct fx f;
    struct tu_answer a;
    char *cfg, *sock, *text, *prog;
    pid_t haproxy;

    fx_init(&f);
    cfg = xasprintf("%s/haproxy.cfg", f.dir);
    sock = xasprintf("%s/admin.sock", f.dir);
    text = xasprintf("global\n    stats socket %s mode 600 level admin\n"
                     "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
                     "    timeout server 5s\n"
                     "backend app\n    server t1_blue 127.0.0.1:1 weight 100\n"
                     "    server t1_green 127.0.0.1:2 weight 0\n",
                     sock);
    tu_write_file(cfg, text);
    free(text);
    {
        const char *argv[] = {"haproxy", "-db", "-f", cfg, NULL};

        haproxy = tu_spawn(argv);
    }
    ck_assert_msg(haproxy > 0, "cannot start haproxy (scripts/check installs the Debian package)");
    ck_assert(tu_run_until(f.loop, sock_there, sock, WAIT_MS));
    prog = xasprintf("%s/examples/routers/haproxy-socat.sh", top_srcdir());
    {
        const char *argv[] = {prog, sock, "app", NULL};

        ck_assert_msg(fx_open(&f, argv, 0) != NULL, "%s", f.err.msg);
    }
    do_read(&f, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 100);
    ck_assert_uint_eq(a.v->servers[1].weight, 0);
    router_view_free(a.v);
    do_set(&f, 90, 10, &a);
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_uint_eq(a.v->servers[0].weight, 90);
    ck_assert_uint_eq(a.v->servers[1].weight, 10);
    router_view_free(a.v);
    memset(&a, 0, sizeof a);
    f.kind->drain(f.r, 1, tu_answer_cb, &a);
    ck_assert(tu_run_until(f.loop, tu_answered, &a, WAIT_MS));
    ck_assert_msg(a.rc == 0, "%s", a.msg);
    ck_assert_str_eq(a.v->servers[1].state, "drain");
    router_view_free(a.v);
    f.kind->close(f.r);
    f.r = NULL;
    kill(haproxy, SIGTERM);
    waitpid(haproxy, NULL, 0);
    /* HAProxy gone: the health check says so. */
    {
        const char *argv[] = {prog, sock, "app", NULL};

        ck_assert(fx_open(&f, argv, 0) != NULL);
    }
    do_read(&f, &a);
    expect_failure(&a, "says its load balancer is not healthy: HAProxy's admin socket");
    free(prog);
    free(cfg);
    free(sock);
    fx_done(&f);
}
END_TEST

/* n3.json: the router object's checks, at the key's position. */
static void expect_check(const char *json, const char *want)
{
    const struct router_kind *k;
    struct cfg *c;
    struct err err;
    int rc;

    plugins_register_builtins();
    k = router_kind_find("exec");
    ck_assert_msg(cfg_load_string("r.json", json, strlen(json), &c, &err) == 0, "%s", err.msg);
    rc = k->check(c, cfg_root(c), &err);
    if (want == NULL) {
        ck_assert_msg(rc == 0, "%s: %s", json, err.msg);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err.msg, want) != NULL, "expected \"%s\" in \"%s\"", want, err.msg);
    }
    cfg_free(c);
}

START_TEST(config_checks)
{
    expect_check("{\"type\": \"exec\", \"command\": [\"/usr/bin/lb\", \"-v\"], \"timeout_ms\": "
                 "2000}",
                 NULL);
    expect_check("{\"type\": \"exec\", \"command\": [\"lb-router\"]}", NULL);
    expect_check("{\"type\": \"exec\"}", "command");
    expect_check("{\"type\": \"exec\", \"command\": \"/usr/bin/lb -v\"}",
                 "r.json:1:29: command: expected an array");
    expect_check("{\"type\": \"exec\", \"command\": []}", "the plugin's program and its arguments");
    expect_check("{\"type\": \"exec\", \"command\": [\"/usr/bin/lb\", 3]}",
                 "r.json:1:45: command[1]: expected a string, got a number");
    expect_check("{\"type\": \"exec\", \"command\": [\"bin/lb\"]}", "an absolute path");
    expect_check("{\"type\": \"exec\", \"command\": [\"/lb\"], \"timeout_ms\": 0}", "timeout_ms");
}
END_TEST

static Suite *exec_suite(void)
{
    Suite *s = suite_create("router_exec");
    TCase *t = tcase_create("plugins");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, file_set_read_drain);
    tcase_add_test(t, hello_names_the_servers);
    tcase_add_test(t, exits_at_once);
    tcase_add_test(t, not_a_program);
    tcase_add_test(t, garbage);
    tcase_add_test(t, unknown_id);
    tcase_add_test(t, line_too_long);
    tcase_add_test(t, never_answers);
    tcase_add_test(t, protocol_2);
    tcase_add_test(t, unhealthy_and_refusing);
    tcase_add_test(t, bad_servers);
    tcase_add_test(t, haproxy_socat_example);
    tcase_add_test(t, config_checks);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(exec_suite());
}
