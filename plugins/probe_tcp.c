/* The tcp probe: a TCP connection to the instance's port, on the loop; for an instance that
 * listens only on its target's loopback, one the target opens (transport_dial: an SSH tunnel
 * opened and closed). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/probe.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"

struct ctx {
    struct loop *loop;
    char *host;
    char port[8];
    unsigned portnum;
    struct transport *via; /* the target's transport, when it opens the connection */
    uint64_t timeout_ms;
};

/* One check; it lives until libuv has let go of its requests and handle, also when cancelled
 * (done is not called then). */
struct check {
    struct ctx *x;
    probe_done_fn done;
    void *arg;
    bool cancelled, resolving, connecting;
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    uv_tcp_t tcp;
    struct transport_op *dial; /* through the target */
    uint64_t t0_us;
    struct probe_outcome o;
};

static void *new_ctx(const struct probe_spec *spec, const struct probe_endpoint *ep)
{
    struct ctx *x = xcalloc(1, sizeof *x);

    x->loop = ep->loop;
    x->host = xstrdup(ep->host);
    snprintf(x->port, sizeof x->port, "%u", ep->port);
    x->portnum = ep->port;
    x->via = ep->via_target ? ep->t : NULL;
    x->timeout_ms = spec->policy.timeout_ms + 1000; /* the health check ends it first */
    return x;
}

static void free_ctx(void *arg)
{
    struct ctx *x = arg;

    free(x->host);
    free(x);
}

static void closed(uv_handle_t *h)
{
    struct check *k = h->data;

    if (!k->cancelled)
        k->done(k->arg, &k->o);
    free(k);
}

static void connected(uv_connect_t *req, int status)
{
    struct check *k = req->data;

    k->connecting = false;
    k->o.latency_us = loop_now_us(k->x->loop) - k->t0_us;
    if (status == 0) {
        k->o.verdict = PROBE_OK;
        snprintf(k->o.detail, sizeof k->o.detail, "connected");
    } else {
        k->o.verdict = status == UV_ECONNREFUSED ? PROBE_GONE : PROBE_FAIL;
        snprintf(k->o.detail, sizeof k->o.detail, "%s",
                 status == UV_ECONNREFUSED ? "connection refused" : uv_strerror(status));
    }
    if (!uv_is_closing((uv_handle_t *)&k->tcp))
        uv_close((uv_handle_t *)&k->tcp, closed);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct check *k = req->data;
    int rc;

    k->resolving = false;
    if (k->cancelled || status != 0) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        if (!k->cancelled) {
            k->o.verdict = PROBE_FAIL;
            snprintf(k->o.detail, sizeof k->o.detail, "cannot resolve \"%.80s\": %s", k->x->host,
                     uv_strerror(status));
            k->done(k->arg, &k->o);
        }
        free(k);
        return;
    }
    uv_tcp_init(loop_uv(k->x->loop), &k->tcp);
    k->tcp.data = k;
    k->conn.data = k;
    rc = uv_tcp_connect(&k->conn, &k->tcp, res->ai_addr, connected);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        k->o.verdict = PROBE_FAIL;
        snprintf(k->o.detail, sizeof k->o.detail, "%s", uv_strerror(rc));
        uv_close((uv_handle_t *)&k->tcp, closed);
        return;
    }
    k->connecting = true;
}

/* The target's answer (a dial through its transport). */
static void dialed(void *arg, const struct transport_result *r)
{
    struct check *k = arg;

    if (!k->cancelled) {
        k->o.latency_us = loop_now_us(k->x->loop) - k->t0_us;
        if (r->status == TRANSPORT_OK) {
            k->o.verdict = PROBE_OK;
            snprintf(k->o.detail, sizeof k->o.detail, "connected (through the target's SSH)");
        } else {
            k->o.verdict = PROBE_FAIL;
            snprintf(k->o.detail, sizeof k->o.detail, "%.190s", r->msg);
        }
        k->done(k->arg, &k->o);
    }
    free(k);
}

static void *start(void *arg, probe_done_fn done, void *done_arg)
{
    struct ctx *x = arg;
    struct check *k = xcalloc(1, sizeof *k);
    struct addrinfo hints;

    k->x = x;
    k->done = done;
    k->arg = done_arg;
    k->t0_us = loop_now_us(x->loop);
    if (x->via != NULL) {
        k->dial = transport_dial(x->via, x->host, x->portnum, x->timeout_ms, dialed, k);
        if (k->dial != NULL)
            return k;
        /* This machine is the target: connect from here. */
    }
    k->gai.data = k;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    k->resolving = true;
    if (uv_getaddrinfo(loop_uv(x->loop), &k->gai, resolved, x->host, x->port, &hints) != 0) {
        /* Reported from the loop, as every answer is. */
        k->resolving = false;
        uv_tcp_init(loop_uv(x->loop), &k->tcp);
        k->tcp.data = k;
        k->o.verdict = PROBE_FAIL;
        snprintf(k->o.detail, sizeof k->o.detail, "cannot resolve \"%.80s\"", x->host);
        uv_close((uv_handle_t *)&k->tcp, closed);
    }
    return k;
}

static void cancel(void *arg, void *check)
{
    struct check *k = check;

    (void)arg;
    k->cancelled = true;
    if (k->dial != NULL)
        transport_stop(k->dial, 0); /* dialed() frees it */
    else if (k->resolving)
        uv_cancel((uv_req_t *)&k->gai); /* resolved() frees it, whether this worked or not */
    else if (!uv_is_closing((uv_handle_t *)&k->tcp))
        uv_close((uv_handle_t *)&k->tcp, closed);
}

static const struct health_check_ops ops = {start, cancel};

const struct probe_kind probe_tcp = {
    .name = "tcp",
    .keys = NULL,
    .check = NULL,
    .new_ctx = new_ctx,
    .free_ctx = free_ctx,
    .ops = &ops,
};
