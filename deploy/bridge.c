/* A local unix socket carried to a port on a target's loopback through SSH tunnels. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/bridge.h"
#include "deploy/ssh.h"

#define LINK_READ 16384u

struct link;

struct bridge {
    struct loop *loop;
    struct ssh_conn *conn;
    char *host;
    unsigned port;
    char dir[256], path[300];
    uv_pipe_t server; /* data: this bridge, or NULL once it is being freed */
    bool listening;
    struct link *links;
    unsigned nlinks;
    char last_error[ERR_MSG_MAX];
};

/* One connection to the socket, and its tunnel. Freed when both are over: the pipe closed
 * (libuv's close callback) and the tunnel's done delivered. */
struct link {
    uv_pipe_t pipe; /* data: this link */
    uv_shutdown_t shut;
    struct bridge *b; /* NULL once the bridge is gone */
    struct ssh_chan *ch;
    bool closing, pipe_closed, chan_done;
    char rbuf[LINK_READ];
    struct link *next;
};

struct wreq {
    uv_write_t req;
    char data[];
};

static void link_unlink(struct link *l)
{
    struct link **pp;

    if (l->b == NULL)
        return;
    for (pp = &l->b->links; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            l->b->nlinks--;
            break;
        }
    }
    l->b = NULL;
}

static void link_maybe_free(struct link *l)
{
    if (l->pipe_closed && l->chan_done) {
        link_unlink(l);
        free(l);
    }
}

static void pipe_closed_cb(uv_handle_t *h)
{
    struct link *l = h->data;

    l->pipe_closed = true;
    link_maybe_free(l);
}

static void shut_cb(uv_shutdown_t *req, int status)
{
    struct link *l = req->data;

    (void)status; /* UV_ECANCELED: the pipe is being closed already (bridge_free) */
    if (!uv_is_closing((uv_handle_t *)&l->pipe))
        uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
}

/* Close the pipe, after what is queued for it has been written. */
static void link_close(struct link *l)
{
    if (l->closing)
        return;
    l->closing = true;
    uv_read_stop((uv_stream_t *)&l->pipe);
    l->shut.data = l;
    if (uv_shutdown(&l->shut, (uv_stream_t *)&l->pipe, shut_cb) != 0)
        uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
}

/* The local side went away (or misbehaved): stop the tunnel too. */
static void link_abort(struct link *l, const char *why)
{
    if (!l->chan_done && l->ch != NULL)
        ssh_chan_abandon(l->ch, why);
    if (!l->closing) {
        l->closing = true;
        uv_read_stop((uv_stream_t *)&l->pipe);
        uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* From the far end: to the local side. */
static void tunnel_data(void *arg, enum proc_stream stream, const char *data, size_t len)
{
    struct link *l = arg;
    struct wreq *w;
    uv_buf_t b;

    (void)stream;
    if (l->closing || len == 0)
        return;
    w = xmalloc(sizeof *w + len);
    memcpy(w->data, data, len);
    b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&l->pipe, &b, 1, write_cb) != 0) {
        free(w);
        link_abort(l, "the local side of the bridge is gone");
    }
}

static void tunnel_done(void *arg, const struct ssh_result *r)
{
    struct link *l = arg;

    if (r->status != SSH_DONE && r->status != SSH_ABANDONED && l->b != NULL)
        snprintf(l->b->last_error, sizeof l->b->last_error, "%s", r->msg);
    else if (r->status == SSH_DONE && l->b != NULL)
        l->b->last_error[0] = '\0';
    l->chan_done = true;
    l->ch = NULL;
    link_close(l); /* the far end closed, or the tunnel failed: so does the local side */
    link_maybe_free(l);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct link *l = h->data;

    (void)suggested;
    *buf = uv_buf_init(l->rbuf, sizeof l->rbuf);
}

/* From the local side: to the far end. */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct link *l = s->data;

    if (n > 0) {
        if (l->ch == NULL)
            return;
        if (ssh_tunnel_pending(l->ch) + (size_t)n > BRIDGE_PENDING_MAX) {
            link_abort(l, "more was sent to the bridge than the tunnel took");
            return;
        }
        ssh_tunnel_write(l->ch, buf->base, (size_t)n);
        return;
    }
    if (n == UV_EOF) {
        uv_read_stop(s);
        if (l->ch != NULL)
            ssh_tunnel_shut(l->ch); /* its answer still comes back */
        return;
    }
    if (n < 0)
        link_abort(l, "the local side of the bridge failed");
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct bridge *b = server->data;
    struct ssh_tunnel_spec spec;
    struct link *l;

    if (status < 0 || b == NULL)
        return;
    l = xcalloc(1, sizeof *l);
    uv_pipe_init(loop_uv(b->loop), &l->pipe, 0);
    l->pipe.data = l;
    if (uv_accept(server, (uv_stream_t *)&l->pipe) != 0) {
        l->chan_done = true;
        l->closing = true;
        uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
        return;
    }
    l->b = b;
    l->next = b->links;
    b->links = l;
    b->nlinks++;
    memset(&spec, 0, sizeof spec);
    spec.host = b->host;
    spec.port = b->port;
    spec.on_data = tunnel_data;
    spec.on_done = tunnel_done;
    spec.arg = l;
    l->ch = ssh_tunnel(b->conn, &spec);
    uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, read_cb);
}

static void server_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

struct bridge *bridge_new(struct loop *loop, struct ssh_conn *c, const char *host, unsigned port,
                          struct err *err)
{
    struct bridge *b = xcalloc(1, sizeof *b);
    const char *base = getenv("XDG_RUNTIME_DIR");
    int rc;

    if (base == NULL || base[0] != '/' || strlen(base) > 150)
        base = getenv("TMPDIR");
    if (base == NULL || base[0] != '/' || strlen(base) > 150)
        base = "/tmp";
    b->loop = loop;
    b->conn = c;
    b->host = xstrdup(host);
    b->port = port;
    snprintf(b->dir, sizeof b->dir, "%s/n3ctl-bridge-XXXXXX", base);
    if (mkdtemp(b->dir) == NULL) { /* mkdtemp makes it 0700 */
        err_set(err, "cannot make a directory for the SSH bridge in %s: %s", base, strerror(errno));
        free(b->host);
        free(b);
        return NULL;
    }
    snprintf(b->path, sizeof b->path, "%s/s", b->dir);
    uv_pipe_init(loop_uv(loop), &b->server, 0);
    b->server.data = b;
    rc = uv_pipe_bind(&b->server, b->path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&b->server, 64, connection_cb);
    if (rc != 0) {
        err_set(err, "cannot listen on %s for the SSH bridge: %s", b->path, uv_strerror(rc));
        bridge_free(b);
        return NULL;
    }
    b->listening = true;
    return b;
}

const char *bridge_path(const struct bridge *b)
{
    return b->path;
}

const char *bridge_host(const struct bridge *b)
{
    return b->host;
}

unsigned bridge_port(const struct bridge *b)
{
    return b->port;
}

const char *bridge_last_error(const struct bridge *b)
{
    return b->last_error;
}

unsigned bridge_links(const struct bridge *b)
{
    return b->nlinks;
}

void bridge_free(struct bridge *b)
{
    struct link *l, *next;

    if (b == NULL)
        return;
    for (l = b->links; l != NULL; l = next) {
        next = l->next;
        l->b = NULL;
        l->next = NULL;
        /* The tunnel ends as the far end answers our EOF (or with the pool): not abandoned,
         * so that nothing waits on a deferred callback that a closing loop would not run. */
        if (l->ch != NULL && !l->chan_done)
            ssh_tunnel_shut(l->ch);
        /* At once, also when a shutdown waits for writes: no one reads them any more, and a
         * closing loop would cancel the shutdown without closing the pipe. */
        l->closing = true;
        if (!uv_is_closing((uv_handle_t *)&l->pipe)) {
            uv_read_stop((uv_stream_t *)&l->pipe);
            uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
        }
    }
    b->links = NULL;
    unlink(b->path);
    rmdir(b->dir);
    free(b->host);
    /* The bridge is freed with its server handle, once libuv has let go of it. */
    uv_close((uv_handle_t *)&b->server, server_closed_cb);
}
