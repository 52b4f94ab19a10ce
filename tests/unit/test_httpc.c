/*
 * The HTTP client on the loop (plugins/httpc.h), against a small HTTP server of the test's own
 * on the same loop (libuv TCP on 127.0.0.1): status and body, headers asked for, a body cut at
 * its bound, many requests at once, a server that never answers (timed out), a refused
 * connection, a request sent elsewhere than its URL (connect_to), a POST, a cancel.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "plugins/httpc.h"
#include "tests/unit/httpd.h"
#include "tests/unit/testutil.h"

#define WAIT_MS 20000

/* ---- the client side ---- */

struct got {
    bool done;
    struct httpc_result r;
    char *body;
    char *headers[HTTPC_HEADERS_MAX];
};

static void got_cb(void *arg, const struct httpc_result *r)
{
    struct got *g = arg;
    size_t i;

    g->done = true;
    g->r = *r;
    g->body = xstrdup(r->body);
    for (i = 0; i < HTTPC_HEADERS_MAX; i++)
        g->headers[i] = r->headers[i] != NULL ? xstrdup(r->headers[i]) : NULL;
}

static void got_free(struct got *g)
{
    size_t i;

    free(g->body);
    for (i = 0; i < HTTPC_HEADERS_MAX; i++)
        free(g->headers[i]);
}

static bool got_done(void *arg)
{
    return ((struct got *)arg)->done;
}

struct fx {
    struct loop *loop;
    struct httpd s;
    struct httpc *c;
};

static void fx_init(struct fx *f)
{
    f->loop = loop_new();
    httpd_start(f->loop, &f->s);
    f->c = httpc_new(f->loop);
}

static void fx_done(struct fx *f)
{
    httpc_free(f->c);
    httpd_stop(f->loop, &f->s);
    loop_free(f->loop);
}

static void get(struct fx *f, const char *path, struct httpc_req *req, struct got *g)
{
    char url[128];

    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", f->s.port, path);
    req->url = url;
    memset(g, 0, sizeof *g);
    httpc_request(f->c, req, got_cb, g);
    ck_assert(!g->done); /* never from within the call */
    ck_assert_msg(tu_run_until(f->loop, got_done, g, WAIT_MS), "no answer for %s", path);
}

START_TEST(status_body_and_headers)
{
    struct fx f;
    struct httpc_req req;
    struct got g;

    fx_init(&f);
    memset(&req, 0, sizeof req);
    req.want_headers[0] = "x-n3-version";
    req.want_headers[1] = "X-N3-Slot";
    req.want_headers[2] = "X-Absent";
    get(&f, "/health", &req, &g);
    ck_assert(g.r.ok);
    ck_assert_int_eq(g.r.status, 200);
    ck_assert_str_eq(g.body, "/health\n");
    ck_assert_str_eq(g.headers[0], "v1.2.3");
    ck_assert_str_eq(g.headers[1], "blue");
    ck_assert_ptr_null(g.headers[2]);
    ck_assert_uint_ge(g.r.total_us, g.r.first_byte_us);
    ck_assert_uint_gt(g.r.total_us, 0);
    got_free(&g);
    get(&f, "/fail", &req, &g);
    ck_assert(g.r.ok);
    ck_assert_int_eq(g.r.status, 503);
    ck_assert_str_eq(g.body, "starting");
    ck_assert_str_eq(g.headers[0], "v2");
    got_free(&g);
    fx_done(&f);
}
END_TEST

START_TEST(body_bounded)
{
    struct fx f;
    struct httpc_req req;
    struct got g;

    fx_init(&f);
    memset(&req, 0, sizeof req);
    req.body_max = 1000;
    get(&f, "/big", &req, &g);
    ck_assert(g.r.ok);
    ck_assert_uint_eq(g.r.body_len, 1000);
    ck_assert_uint_eq(g.r.body_total, 100000);
    ck_assert(g.r.body_cut);
    got_free(&g);
    fx_done(&f);
}
END_TEST

START_TEST(timeout_and_refused)
{
    struct fx f;
    struct httpc_req req;
    struct got g;
    unsigned port;

    fx_init(&f);
    memset(&req, 0, sizeof req);
    req.timeout_ms = 300;
    get(&f, "/silent", &req, &g);
    ck_assert(!g.r.ok);
    ck_assert(g.r.timed_out);
    ck_assert_uint_eq(httpc_in_flight(f.c), 0);
    got_free(&g);
    /* Nothing listens there: refused, at once. */
    port = f.s.port;
    {
        char url[64];

        /* Port 1 on the loopback: nothing listens there (tcpmux is long gone). */
        snprintf(url, sizeof url, "http://127.0.0.1:%u/", port == 1 ? 2 : 1);
        req.url = url;
        memset(&g, 0, sizeof g);
        httpc_request(f.c, &req, got_cb, &g);
        ck_assert(tu_run_until(f.loop, got_done, &g, WAIT_MS));
    }
    ck_assert(!g.r.ok);
    ck_assert(!g.r.timed_out);
    ck_assert_msg(strstr(g.r.error, "onnect") != NULL, "%s", g.r.error);
    got_free(&g);
    fx_done(&f);
}
END_TEST

struct many {
    unsigned done;
    unsigned ok;
};

static void many_cb(void *arg, const struct httpc_result *r)
{
    struct many *m = arg;

    m->done++;
    m->ok += r->ok && r->status == 200;
}

static bool many_done(void *arg)
{
    return ((struct many *)arg)->done == 200;
}

START_TEST(many_at_once)
{
    struct fx f;
    struct httpc_req req;
    struct many m = {0, 0};
    char url[64];
    int i;

    fx_init(&f);
    memset(&req, 0, sizeof req);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", f.s.port);
    req.url = url;
    for (i = 0; i < 200; i++)
        httpc_request(f.c, &req, many_cb, &m);
    ck_assert_uint_eq(httpc_in_flight(f.c), 200);
    ck_assert(tu_run_until(f.loop, many_done, &m, WAIT_MS));
    ck_assert_uint_eq(m.ok, 200);
    ck_assert_uint_eq(f.s.requests, 200);
    fx_done(&f);
}
END_TEST

START_TEST(connect_to_and_post)
{
    struct fx f;
    struct httpc_req req;
    struct got g;

    fx_init(&f);
    memset(&req, 0, sizeof req);
    /* The URL's port has nothing listening (9, discard): where it is sent instead is where it
     * goes. */
    req.connect_to_host = "127.0.0.1";
    req.connect_to_port = f.s.port;
    req.url = "http://127.0.0.1:9/over-a-bridge";
    memset(&g, 0, sizeof g);
    httpc_request(f.c, &req, got_cb, &g);
    ck_assert(tu_run_until(f.loop, got_done, &g, WAIT_MS));
    ck_assert_msg(g.r.ok, "%s", g.r.error);
    ck_assert_str_eq(g.body, "/over-a-bridge\n");
    got_free(&g);
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.body = "{\"weights\": 1}";
    req.body_len = strlen(req.body);
    get(&f, "/post", &req, &g);
    ck_assert(g.r.ok);
    ck_assert_str_eq(f.s.last_body, "{\"weights\": 1}");
    got_free(&g);
    fx_done(&f);
}
END_TEST

START_TEST(cancelled)
{
    struct fx f;
    struct httpc_req req;
    struct got g;
    struct httpc_op *op;
    char url[64];

    fx_init(&f);
    memset(&req, 0, sizeof req);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/silent", f.s.port);
    req.url = url;
    memset(&g, 0, sizeof g);
    op = httpc_request(f.c, &req, got_cb, &g);
    while (f.s.requests == 0)
        loop_run_once(f.loop, true);
    httpc_cancel(op);
    ck_assert_uint_eq(httpc_in_flight(f.c), 0);
    ck_assert(!g.done);
    fx_done(&f);
}
END_TEST

static Suite *httpc_suite(void)
{
    Suite *s = suite_create("httpc");
    TCase *t = tcase_create("loop");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, status_body_and_headers);
    tcase_add_test(t, body_bounded);
    tcase_add_test(t, timeout_and_refused);
    tcase_add_test(t, many_at_once);
    tcase_add_test(t, connect_to_and_post);
    tcase_add_test(t, cancelled);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(httpc_suite());
}
