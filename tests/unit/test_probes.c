/*
 * The built-in probes (plugins/probe_*.c) against real endpoints on 127.0.0.1: the http probe
 * against the test's HTTP server (status expected or not, a body that must contain a word,
 * refused: nothing there, a server that never answers), the tcp probe (listening, refused),
 * the command probe on a local target (exit 0, a failure with its message, the variables);
 * and an endpoint's health driven by a real http probe from unknown to healthy to critical.
 * n3.json's probes: loaded and checked by their kinds.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/health.h"
#include "deploy/inventory.h"
#include "deploy/probe.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"
#include "plugins/httpc.h"
#include "tests/unit/httpd.h"
#include "tests/unit/testutil.h"

#define WAIT_MS 20000

struct fx {
    struct loop *loop;
    struct httpd s;
    struct httpc *http;
    struct transport *t;
    struct inv_target target;
    struct probe_endpoint ep;
    struct probe_spec spec;
    void *ctx;
};

struct outcome {
    bool done;
    struct probe_outcome o;
};

static void outcome_cb(void *arg, const struct probe_outcome *o)
{
    struct outcome *x = arg;

    x->done = true;
    x->o = *o;
}

static bool outcome_done(void *arg)
{
    return ((struct outcome *)arg)->done;
}

/* A probe spec from JSON text, as n3.json would have it. */
static void spec_from(struct probe_spec *spec, const char *json)
{
    struct cfg *c;
    struct err err;

    ck_assert_msg(cfg_load_string("probe.json", json, strlen(json), &c, &err) == 0, "%s", err.msg);
    ck_assert_msg(probe_spec_load(c, cfg_root(c), spec, &err) == 0, "%s", err.msg);
    cfg_free(c);
}

static void fx_init(struct fx *f, const char *json, unsigned port)
{
    memset(f, 0, sizeof *f);
    plugins_register_builtins();
    f->loop = loop_new();
    httpd_start(f->loop, &f->s);
    f->http = httpc_new(f->loop);
    f->t = transport_local_new(f->loop, "t1");
    f->target.name = "t1";
    f->target.deploy_path = "/nonexistent";
    f->ep.loop = f->loop;
    f->ep.t = f->t;
    f->ep.target = &f->target;
    f->ep.host = "127.0.0.1";
    f->ep.port = port != 0 ? port : f->s.port;
    f->ep.slot = "blue";
    f->ep.version = "v1.0.0";
    f->ep.http = f->http;
    spec_from(&f->spec, json);
    f->ctx = f->spec.kind->new_ctx(&f->spec, &f->ep);
}

static void fx_done(struct fx *f)
{
    f->spec.kind->free_ctx(f->ctx);
    probe_spec_done(&f->spec);
    transport_free(f->t);
    httpc_free(f->http);
    httpd_stop(f->loop, &f->s);
    loop_free(f->loop);
}

static void check_once(struct fx *f, struct outcome *x)
{
    memset(x, 0, sizeof *x);
    f->spec.kind->ops->start(f->ctx, outcome_cb, x);
    ck_assert(!x->done);
    ck_assert_msg(tu_run_until(f->loop, outcome_done, x, WAIT_MS), "the check did not end");
}

START_TEST(http_probe)
{
    struct fx f;
    struct outcome x;

    fx_init(&f, "{\"type\": \"http\", \"path\": \"/health\", \"body_contains\": \"health\"}", 0);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_OK);
    ck_assert_str_eq(x.o.detail, "HTTP 200");
    ck_assert_uint_gt(x.o.latency_us, 0);
    fx_done(&f);

    fx_init(&f, "{\"type\": \"http\", \"path\": \"/fail\"}", 0);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_FAIL);
    ck_assert_str_eq(x.o.detail, "HTTP 503");
    fx_done(&f);

    /* The status is right, the body is not. */
    fx_init(&f, "{\"type\": \"http\", \"path\": \"/x\", \"body_contains\": \"ok\"}", 0);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_FAIL);
    ck_assert_str_eq(x.o.detail, "HTTP 200, but the body has no \"ok\"");
    fx_done(&f);

    /* Any of the statuses given. */
    fx_init(&f, "{\"type\": \"http\", \"path\": \"/fail\", \"expect_status\": [200, 503]}", 0);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_OK);
    fx_done(&f);

    /* Nothing listens: gone. */
    fx_init(&f, "{\"type\": \"http\"}", 1);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_GONE);
    ck_assert_str_eq(x.o.detail, "connection refused");
    fx_done(&f);
}
END_TEST

START_TEST(tcp_probe)
{
    struct fx f;
    struct outcome x;

    fx_init(&f, "{\"type\": \"tcp\"}", 0);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_OK);
    fx_done(&f);
    fx_init(&f, "{\"type\": \"tcp\"}", 1);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_GONE);
    ck_assert_str_eq(x.o.detail, "connection refused");
    fx_done(&f);
}
END_TEST

START_TEST(command_probe)
{
    struct fx f;
    struct outcome x;

    fx_init(&f,
            "{\"type\": \"command\", \"command\": \"test {port} = 8123 && test {slot} = blue\"}",
            8123);
    check_once(&f, &x);
    ck_assert_msg(x.o.verdict == PROBE_OK, "%s", x.o.detail);
    fx_done(&f);
    fx_init(&f, "{\"type\": \"command\", \"command\": \"echo 'queue is 12000 deep' >&2; exit 3\"}",
            0);
    check_once(&f, &x);
    ck_assert_int_eq(x.o.verdict, PROBE_FAIL);
    ck_assert_str_eq(x.o.detail, "exit 3: queue is 12000 deep");
    fx_done(&f);
}
END_TEST

struct changes {
    unsigned n;
    enum health_state states[16];
};

static void changed(void *arg, const struct health_status *st)
{
    struct changes *c = arg;

    if (c->n < 16)
        c->states[c->n++] = st->state;
}

static bool is_state(void *arg)
{
    void **a = arg;

    return health_status(a[0])->state == *(enum health_state *)a[1];
}

START_TEST(health_from_a_real_probe)
{
    struct fx f;
    struct health *h;
    struct changes ch = {0};
    enum health_state want;
    void *args[2];

    fx_init(&f,
            "{\"type\": \"http\", \"path\": \"/health\", \"interval_seconds\": 0.1, "
            "\"timeout_seconds\": 0.1, \"healthy_threshold\": 2, \"unhealthy_threshold\": 2}",
            0);
    h = health_new(f.loop, "t1 blue", &f.spec.policy, f.spec.kind->ops, f.ctx, changed, &ch);
    health_start(h);
    args[0] = h;
    args[1] = &want;
    want = HEALTH_HEALTHY;
    ck_assert(tu_run_until(f.loop, is_state, args, WAIT_MS));
    ck_assert_uint_ge(health_status(h)->checks, 2);
    /* The server goes: critical (nothing there). */
    httpd_stop(f.loop, &f.s);
    want = HEALTH_CRITICAL;
    ck_assert(tu_run_until(f.loop, is_state, args, WAIT_MS));
    ck_assert_ptr_nonnull(strstr(health_status(h)->message, "connection refused"));
    ck_assert_int_eq(ch.states[0], HEALTH_HEALTHY);
    ck_assert_int_eq(ch.states[ch.n - 1], HEALTH_CRITICAL);
    health_free(h);
    httpd_start(f.loop, &f.s); /* fx_done stops it */
    fx_done(&f);
}
END_TEST

/* The probes of n3.json: loaded with their policy, each checked by its kind. */
START_TEST(probes_in_n3_json)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/n3.json", dir);
    struct inventory *inv;
    const struct inv_env *env;
    const struct probe_spec *p;
    struct err err;
    size_t n;

    plugins_register_builtins();
    tu_write_file(path,
                  "{\"version\": 1, \"probes\": [{\"type\": \"http\", \"path\": \"/health\", "
                  "\"interval_seconds\": 2, \"degraded_ms\": 300}, {\"name\": \"port\", "
                  "\"type\": \"tcp\"}], \"environments\": {\"prod\": {\"targets\": [{\"name\": "
                  "\"t1\", \"transport\": \"local\", \"deploy_path\": \"/srv\"}]}, \"stage\": "
                  "{\"probes\": [], \"targets\": [{\"name\": \"t1\", \"transport\": \"local\", "
                  "\"deploy_path\": \"/srv\"}]}}}");
    ck_assert_msg(inventory_load(path, &inv, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(inventory_env(inv, "prod", &env, &err), 0);
    p = inv_env_probes(env, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(p[0].name, "http");
    ck_assert_str_eq(p[0].kind->name, "http");
    ck_assert_uint_eq(p[0].policy.interval_ms, 2000);
    ck_assert_uint_eq(p[0].policy.degraded_us, 300000);
    ck_assert_str_eq(p[1].name, "port");
    ck_assert_int_eq(inventory_env(inv, "stage", &env, &err), 0);
    inv_env_probes(env, &n);
    ck_assert_uint_eq(n, 0);
    inventory_free(inv);
    /* Two of one name. */
    tu_write_file(path, "{\"version\": 1, \"probes\": [{\"type\": \"tcp\"}, {\"type\": \"tcp\"}], "
                        "\"environments\": {\"prod\": {\"targets\": [{\"name\": \"t1\", "
                        "\"transport\": \"local\", \"deploy_path\": \"/srv\"}]}}}");
    ck_assert_int_eq(inventory_load(path, &inv, &err), -1);
    ck_assert_msg(strstr(err.msg, "1:44: probes[1]: a second probe named \"tcp\"") != NULL, "%s",
                  err.msg);
    tu_rmdir_r(dir);
    free(dir);
    free(path);
}
END_TEST

static Suite *probes_suite(void)
{
    Suite *s = suite_create("probes");
    TCase *t = tcase_create("real endpoints");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, http_probe);
    tcase_add_test(t, tcp_probe);
    tcase_add_test(t, command_probe);
    tcase_add_test(t, health_from_a_real_probe);
    tcase_add_test(t, probes_in_n3_json);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(probes_suite());
}
