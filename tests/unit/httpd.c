/* A small HTTP/1.1 server for the unit tests (tests/unit/httpd.h). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "tests/unit/httpd.h"

struct httpd_conn {
    uv_tcp_t tcp;
    struct httpd *s;
    struct buf in;
    struct httpd_conn *next;
};

static void conn_closed(uv_handle_t *h)
{
    struct httpd_conn *c = h->data, **pp;

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

static void send_text(struct httpd_conn *c, const char *text, size_t len)
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
static void answer(struct httpd_conn *c, const char *req, const char *body)
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
    struct httpd_conn *c = st->data;
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
    struct httpd *s = srv->data;
    struct httpd_conn *c;

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

void httpd_start(struct loop *loop, struct httpd *s)
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
void httpd_stop(struct loop *loop, struct httpd *s)
{
    struct httpd_conn *c;

    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, NULL);
    for (c = s->conns; c != NULL; c = c->next) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
    while (s->conns != NULL || !uv_is_closing((uv_handle_t *)&s->tcp))
        loop_run_once(loop, true);
}
