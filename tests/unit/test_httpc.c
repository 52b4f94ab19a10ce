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
#include "tests/unit/testutil.h"

#define WAIT_MS 20000

/* ---- the server: answers by path; /silent never answers ---- */

struct conn;

struct server {
    uv_tcp_t tcp;
    unsigned port;
    unsigned requests;
    char last_body[256];
    struct conn *conns; /* open ones: closed at the end */
};

struct conn {
    uv_tcp_t tcp;
    struct server *s;
    struct buf in;
    struct conn *next;
};

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data, **pp;

    for (pp = &c->s->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    buf_done(&c->in);
    free(c);
}

static void written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void send_text(struct conn *c, const char *text, size_t len)
{
    uv_write_t *w = xcalloc(1, sizeof *w);
    char *copy = xmalloc(len);
    uv_buf_t b;

    memcpy(copy, text, len);
    w->data = copy;
    b = uv_buf_init(copy, (unsigned)len);
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, written);
}

/* One request whole in c->in: answer it. */
static void answer(struct conn *c, const char *req, const char *body)
{
    char path[128] = "", head[512];
    struct buf out;

    sscanf(req, "%*s %127s", path);
    c->s->requests++;
    snprintf(c->s->last_body, sizeof c->s->last_body, "%s", body);
    if (strcmp(path, "/silent") == 0)
        return; /* a server that hangs */
    buf_init(&out);
    if (strcmp(path, "/big") == 0) {
        size_t i;

        snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n");
        buf_adds(&out, head);
        for (i = 0; i < 100000; i++)
            buf_addc(&out, 'x');
    } else if (strcmp(path, "/fail") == 0) {
        buf_adds(&out, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\nX-N3-Version: "
                       "v2\r\nConnection: close\r\n\r\nstarting");
    } else {
        snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nX-N3-Version:  v1.2.3 \r\nx-n3-slot: blue\r\nContent-Length: "
                 "%zu\r\nConnection: close\r\n\r\n%s",
                 strlen(path) + 1, path);
        buf_adds(&out, head);
        buf_addc(&out, '\n');
    }
    send_text(c, out.data, out.len);
    buf_done(&out);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    b->base = xmalloc(suggested);
    b->len = suggested;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = st->data;
    const char *end;

    if (n > 0)
        buf_add(&c->in, b->base, (size_t)n);
    free(b->base);
    if (n < 0) {
        uv_close((uv_handle_t *)st, conn_closed);
        return;
    }
    buf_addc(&c->in, '\0');
    c->in.len--;
    end = strstr(c->in.data, "\r\n\r\n");
    if (end != NULL) {
        const char *cl = strstr(c->in.data, "Content-Length: ");
        size_t want = cl != NULL && cl < end ? (size_t)strtoul(cl + 16, NULL, 10) : 0;

        if (c->in.len - (size_t)(end + 4 - c->in.data) >= want) {
            char body[256];

            snprintf(body, sizeof body, "%.*s", (int)want, end + 4);
            answer(c, c->in.data, body);
            buf_reset(&c->in);
        }
    }
}

static void accept_cb(uv_stream_t *srv, int status)
{
    struct server *s = srv->data;
    struct conn *c;

    if (status < 0)
        return;
    c = xcalloc(1, sizeof *c);
    c->s = s;
    c->next = s->conns;
    s->conns = c;
    buf_init(&c->in);
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    else
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void server_start(struct loop *loop, struct server *s)
{
    struct sockaddr_in a;
    int len = sizeof a;

    memset(s, 0, sizeof *s);
    uv_tcp_init(loop_uv(loop), &s->tcp);
    s->tcp.data = s;
    uv_ip4_addr("127.0.0.1", 0, &a);
    ck_assert_int_eq(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&s->tcp, 64, accept_cb), 0);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
}

/* Close the server and the connections still open, and wait until they are. */
static void server_stop(struct loop *loop, struct server *s)
{
    struct conn *c;

    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, NULL);
    for (c = s->conns; c != NULL; c = c->next) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
    while (s->conns != NULL || !uv_is_closing((uv_handle_t *)&s->tcp))
        loop_run_once(loop, true);
}

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
    struct server s;
    struct httpc *c;
};

static void fx_init(struct fx *f)
{
    f->loop = loop_new();
    server_start(f->loop, &f->s);
    f->c = httpc_new(f->loop);
}

static void fx_done(struct fx *f)
{
    httpc_free(f->c);
    server_stop(f->loop, &f->s);
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
