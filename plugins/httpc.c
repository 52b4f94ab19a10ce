/* An HTTP client on the loop: libcurl's multi interface, driven by uv_poll and one timer. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <uv.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "plugins/httpc.h"

#define BODY_DEFAULT    (64u * 1024u)
#define TIMEOUT_DEFAULT 10000u
#define HEADER_MAX      256 /* bytes of a kept header's value */

struct httpc {
    struct loop *loop;
    CURLM *multi;
    struct loop_timer *timer;
    unsigned in_flight;
};

/* A socket curl watches: its poll handle, freed once libuv has let go of it. */
struct sock {
    uv_poll_t poll; /* data: this struct */
    curl_socket_t fd;
    struct httpc *c;
};

struct httpc_op {
    struct httpc *c;
    CURL *easy;
    httpc_fn done;
    void *arg;
    struct buf body;
    size_t body_max;
    uint64_t body_total;
    bool body_cut;
    char *want[HTTPC_HEADERS_MAX];
    char *got[HTTPC_HEADERS_MAX];
    struct curl_slist *headers;
    struct curl_slist *connect_to;
    char *url, *post;
    char errbuf[CURL_ERROR_SIZE];
};

static unsigned curl_users;

static void sock_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void check_done(struct httpc *c);

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct sock *s = h->data;
    struct httpc *c = s->c; /* s may be gone after the action: keep what is needed */
    curl_socket_t fd = s->fd;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, fd, flags, &running);
    check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct httpc *c = userp;
    struct sock *s = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, sock_close_cb);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->c = c;
        s->poll.data = s;
        if (uv_poll_init_socket(loop_uv(c->loop), &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        curl_multi_assign(c->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

static void timer_fire(void *arg)
{
    struct httpc *c = arg;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

/* curl wants to be woken in timeout_ms (-1: never); never called back from in here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct httpc *c = userp;

    (void)multi;
    if (timeout_ms < 0)
        loop_timer_stop(c->timer);
    else
        loop_timer_start(c->timer, (uint64_t)timeout_ms);
    return 0;
}

struct httpc *httpc_new(struct loop *loop)
{
    struct httpc *c = xcalloc(1, sizeof *c);

    if (curl_users++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        fatal("curl_global_init failed");
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        fatal("curl_multi_init failed");
    c->timer = loop_timer_new(loop, timer_fire, c);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

void httpc_free(struct httpc *c)
{
    if (c == NULL)
        return;
    if (c->in_flight > 0)
        fatal("httpc_free with %u requests in flight", c->in_flight);
    curl_multi_cleanup(c->multi);
    loop_timer_free(c->timer);
    free(c);
    if (--curl_users == 0)
        curl_global_cleanup();
}

unsigned httpc_in_flight(const struct httpc *c)
{
    return c->in_flight;
}

static void op_free(struct httpc_op *o)
{
    size_t i;

    curl_multi_remove_handle(o->c->multi, o->easy);
    curl_easy_cleanup(o->easy);
    curl_slist_free_all(o->headers);
    curl_slist_free_all(o->connect_to);
    for (i = 0; i < HTTPC_HEADERS_MAX; i++) {
        free(o->want[i]);
        free(o->got[i]);
    }
    buf_done(&o->body);
    free(o->url);
    free(o->post);
    o->c->in_flight--;
    free(o);
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct httpc_op *o = arg;
    size_t len = size * n, room = o->body.len < o->body_max ? o->body_max - o->body.len : 0;

    o->body_total += len;
    if (len > room)
        o->body_cut = true;
    buf_add(&o->body, data, len < room ? len : room);
    return len;
}

/* "Name: value\r\n": keep the value of a header asked for. A new status line (after a 100
 * Continue) starts over. */
static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct httpc_op *o = arg;
    size_t len = size * n, i, name_len;
    const char *colon = memchr(data, ':', len), *v, *end = data + len;

    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        for (i = 0; i < HTTPC_HEADERS_MAX; i++) {
            free(o->got[i]);
            o->got[i] = NULL;
        }
        return len;
    }
    if (colon == NULL)
        return len;
    name_len = (size_t)(colon - data);
    for (i = 0; i < HTTPC_HEADERS_MAX && o->want[i] != NULL; i++) {
        if (strlen(o->want[i]) != name_len || strncasecmp(o->want[i], data, name_len) != 0)
            continue;
        for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
            ;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        free(o->got[i]);
        o->got[i] = xasprintf(
            "%.*s", (int)((size_t)(end - v) < HEADER_MAX ? (size_t)(end - v) : HEADER_MAX), v);
    }
    return len;
}

static void deliver(struct httpc_op *o, CURLcode code)
{
    struct httpc_result r;
    curl_off_t t;
    size_t i;

    memset(&r, 0, sizeof r);
    buf_addc(&o->body, '\0');
    o->body.len--;
    r.body = o->body.data != NULL ? o->body.data : "";
    r.body_len = o->body.len;
    r.body_total = o->body_total;
    r.body_cut = o->body_cut;
    for (i = 0; i < HTTPC_HEADERS_MAX; i++)
        r.headers[i] = o->got[i];
    if (curl_easy_getinfo(o->easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK)
        r.connect_us = (uint64_t)t;
    if (curl_easy_getinfo(o->easy, CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK)
        r.first_byte_us = (uint64_t)t;
    if (curl_easy_getinfo(o->easy, CURLINFO_TOTAL_TIME_T, &t) == CURLE_OK)
        r.total_us = (uint64_t)t;
    if (code == CURLE_OK) {
        r.ok = true;
        curl_easy_getinfo(o->easy, CURLINFO_RESPONSE_CODE, &r.status);
    } else {
        r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        r.refused = code == CURLE_COULDNT_CONNECT && !r.timed_out;
        snprintf(r.error, sizeof r.error, "%s",
                 o->errbuf[0] ? o->errbuf : curl_easy_strerror(code));
    }
    o->done(o->arg, &r);
    op_free(o);
}

static void check_done(struct httpc *c)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct httpc_op *o = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&o);
        if (o != NULL)
            deliver(o, m->data.result);
    }
}

struct httpc_op *httpc_request(struct httpc *c, const struct httpc_req *req, httpc_fn done,
                               void *arg)
{
    struct httpc_op *o = xcalloc(1, sizeof *o);
    uint64_t timeout = req->timeout_ms ? req->timeout_ms : TIMEOUT_DEFAULT;
    size_t i;

    o->c = c;
    o->done = done;
    o->arg = arg;
    o->body_max = req->body_max ? req->body_max : BODY_DEFAULT;
    buf_init(&o->body);
    o->url = xstrdup(req->url);
    for (i = 0; i < HTTPC_HEADERS_MAX && req->want_headers[i] != NULL; i++)
        o->want[i] = xstrdup(req->want_headers[i]);
    for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
        o->headers = curl_slist_append(o->headers, req->headers[i]);
    o->easy = curl_easy_init();
    if (o->easy == NULL)
        fatal("curl_easy_init failed");
    c->in_flight++;
    curl_easy_setopt(o->easy, CURLOPT_URL, o->url);
    curl_easy_setopt(o->easy, CURLOPT_PRIVATE, o);
    curl_easy_setopt(o->easy, CURLOPT_ERRORBUFFER, o->errbuf);
    curl_easy_setopt(o->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(o->easy, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(o->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
    curl_easy_setopt(o->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Probes and scrapes go where they are told: not through a proxy of the environment. */
    curl_easy_setopt(o->easy, CURLOPT_PROXY, "");
    curl_easy_setopt(o->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(o->easy, CURLOPT_USERAGENT, "n3ctl/" PACKAGE_VERSION);
    curl_easy_setopt(o->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(o->easy, CURLOPT_WRITEDATA, o);
    curl_easy_setopt(o->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(o->easy, CURLOPT_HEADERDATA, o);
    if (o->headers != NULL)
        curl_easy_setopt(o->easy, CURLOPT_HTTPHEADER, o->headers);
    if (req->method != NULL)
        curl_easy_setopt(o->easy, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body != NULL) {
        o->post = xmalloc(req->body_len + 1);
        memcpy(o->post, req->body, req->body_len);
        o->post[req->body_len] = '\0';
        curl_easy_setopt(o->easy, CURLOPT_POSTFIELDS, o->post);
        curl_easy_setopt(o->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (req->connect_to_host != NULL) {
        char *rule = xasprintf("::%s:%u", req->connect_to_host, req->connect_to_port);

        o->connect_to = curl_slist_append(NULL, rule);
        free(rule);
        curl_easy_setopt(o->easy, CURLOPT_CONNECT_TO, o->connect_to);
        /* A bridge serves one connection: none kept in curl's cache for another request. */
        curl_easy_setopt(o->easy, CURLOPT_FORBID_REUSE, 1L);
    }
    if (req->unix_socket != NULL) {
        curl_easy_setopt(o->easy, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
        curl_easy_setopt(o->easy, CURLOPT_FORBID_REUSE, 1L); /* a tunnel a request */
    }
    /* The work starts from the timer curl asks for now: done comes after this returns. */
    curl_multi_add_handle(c->multi, o->easy);
    return o;
}

void httpc_cancel(struct httpc_op *op)
{
    op_free(op);
}
