/*
 * SSH with libssh2 in non-blocking mode on the loop. Each connection is a state machine
 * (resolve, TCP connect, handshake, host key, authentication, ready) driven by a uv_poll on
 * its socket and by timers; each channel (a command, an SFTP upload, a connect request) is a
 * state machine advanced whenever its session may have progressed. Every wait has a deadline.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <uv.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/knownhosts.h"
#include "deploy/ssh.h"

#define SSH_OUTPUT_DEFAULT (64u * 1024u)
#define SSH_CHUNK          (32u * 1024u)
#define BACKOFF_BASE_MS    200u
#define BACKOFF_CAP_MS     30000u

enum conn_state {
    C_IDLE,      /* not connected; connects when an operation comes */
    C_WAIT_SLOT, /* waiting for a handshake slot */
    C_RESOLVE,
    C_CONNECT,
    C_HANDSHAKE,
    C_AUTH,
    C_READY,
    C_BACKOFF, /* the last attempt failed: wait before the next */
};

enum auth_stage { A_LIST, A_AGENT, A_FILES, A_DONE };

/* The socket and its poll handle: freed together once libuv has let go of the handle. */
struct sock {
    uv_poll_t poll; /* data: this struct */
    int fd;
    struct ssh_conn *c;
};

/* A name lookup in flight; orphaned (c = NULL) when its connection gives up on it. */
struct lookup {
    uv_getaddrinfo_t req;
    struct ssh_conn *c;
};

struct ssh_pool {
    struct loop *loop;
    char **identities;
    char *known_hosts;
    bool agent;
    uint64_t connect_timeout_ms, auth_timeout_ms, keepalive_ms;
    unsigned max_handshakes;
    unsigned handshaking;
    struct knownhosts *kh;
    struct ssh_conn *conns;
    struct ssh_conn *wait_head, *wait_tail; /* for a handshake slot */
};

enum chan_kind { K_EXEC, K_PUT, K_CONNECT, K_TUNNEL };

enum chan_state {
    S_QUEUED,
    S_OPEN,
    S_EXEC,
    S_IO, /* writing stdin, reading stdout and stderr */
    S_CLOSE,
    S_WAIT_CLOSED,
    S_FREE,
    S_SFTP_INIT,
    S_SFTP_OPEN,
    S_SFTP_WRITE,
    S_SFTP_CLOSE,
    S_SFTP_SHUTDOWN,
    S_DONE,
};

struct ssh_chan {
    struct ssh_conn *conn;
    enum chan_kind kind;
    enum chan_state state;
    LIBSSH2_CHANNEL *ch;
    LIBSSH2_SFTP *sftp;
    LIBSSH2_SFTP_HANDLE *fh;
    char *command;
    char *input;
    size_t input_len, input_off;
    bool eof_sent;
    bool input_open; /* a tunnel: more input may come (ssh_tunnel_write), EOF not yet */
    size_t input_cap;
    /* tunnel: where the target connects to, and who hears that it did */
    char *dest_host;
    unsigned dest_port;
    void (*on_open)(void *arg);
    struct tail out, err;
    ssh_output_fn on_output;
    ssh_done_fn done;
    void *arg;
    struct ssh_result result;
    bool started_remote; /* the command may have started on the target: never replay it */
    bool retried;        /* already moved to a fresh connection once */
    bool abandoned;      /* done was delivered by ssh_chan_abandon */
    uint64_t started_us; /* when it left the queue (its turn on the connection came); 0 */
    /* put */
    char *local, *path;
    unsigned mode;
    int local_fd;
    char *buf;
    size_t buf_len, buf_off;
    bool local_eof;
    uint64_t sent;
    ssh_progress_fn on_progress;
    struct ssh_chan *next;
};

struct ssh_conn {
    struct ssh_pool *pool;
    char *name, *host, *user;
    unsigned port;
    enum conn_state state;
    struct sock *sock;
    struct lookup *lookup;
    struct addrinfo *addrs, *addr;
    struct ssh_chan *opening; /* libssh2 opens one channel at a time per session */
    LIBSSH2_SESSION *session;
    LIBSSH2_AGENT *agent;
    struct libssh2_agent_publickey *agent_id;
    enum auth_stage auth;
    size_t id_index;
    unsigned agent_keys;
    struct buf tried; /* what authentication tried, for the message when all of it fails */
    struct loop_timer *deadline; /* connect or authentication */
    struct loop_timer *backoff;
    struct loop_timer *keepalive;
    uint64_t started_us, handshake_us;
    unsigned failures;
    bool counted; /* holds a handshake slot */
    bool was_ready;
    bool kick_pending;
    bool pumping, repump;
    unsigned char *hostkey;
    size_t hostkey_len;
    char hostkey_type[40];
    struct ssh_chan *chans; /* in order of arrival */
    struct ssh_conn *next, *wait_next;
};

static char read_buf[SSH_CHUNK];
static unsigned libssh2_users;

static void conn_pump(struct ssh_conn *c);
static void conn_fail(struct ssh_conn *c, enum ssh_status st, enum retry_kind kind, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static void conn_begin(struct ssh_conn *c);

/* ---- small things ---- */

static const struct {
    const char *name;
    int num;
} signals[] = {
    {"ABRT", 6},  {"ALRM", 14}, {"FPE", 8},  {"HUP", 1},   {"ILL", 4},   {"INT", 2},
    {"KILL", 9},  {"PIPE", 13}, {"QUIT", 3}, {"SEGV", 11}, {"TERM", 15}, {"USR1", 10},
    {"USR2", 12}, {"BUS", 7},   {"SYS", 31}, {"TRAP", 5},  {"XCPU", 24}, {"XFSZ", 25},
};

int ssh_signal_number(const char *name)
{
    size_t i;

    if (strncmp(name, "SIG", 3) == 0)
        name += 3;
    for (i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (strcmp(signals[i].name, name) == 0)
            return signals[i].num;
    }
    return 0;
}

static const char *session_error(LIBSSH2_SESSION *s)
{
    char *msg = NULL;

    if (s == NULL)
        return "no session";
    libssh2_session_last_error(s, &msg, NULL, 0);
    return msg != NULL && msg[0] != '\0' ? msg : "unknown error";
}

static int session_errno(const struct ssh_conn *c)
{
    return c->session != NULL ? libssh2_session_last_errno(c->session) : 0;
}

static bool socket_error(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_SOCKET_NONE || rc == LIBSSH2_ERROR_TIMEOUT;
}

/* ---- channels: delivery ---- */

static void chan_free(struct ssh_chan *ch)
{
    if (ch->local_fd >= 0)
        close(ch->local_fd);
    tail_done(&ch->out);
    tail_done(&ch->err);
    free(ch->command);
    free(ch->dest_host);
    free(ch->input);
    free(ch->local);
    free(ch->path);
    free(ch->buf);
    free(ch);
}

static void chan_unlink(struct ssh_chan *ch)
{
    struct ssh_chan **pp;

    for (pp = &ch->conn->chans; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    }
    ch->next = NULL;
}

/* The operation is over: tell its owner (unless it was abandoned) and free it. */
static void chan_deliver(struct ssh_chan *ch)
{
    chan_unlink(ch);
    ch->result.out = &ch->out;
    ch->result.err = &ch->err;
    if (!ch->abandoned)
        ch->done(ch->arg, &ch->result);
    chan_free(ch);
}

static void chan_set_fail(struct ssh_chan *ch, enum ssh_status st, enum retry_kind kind,
                          const char *msg)
{
    ch->result.status = st;
    ch->result.kind = kind;
    snprintf(ch->result.msg, sizeof ch->result.msg, "%s", msg);
}

static void deliver_deferred(void *arg)
{
    struct ssh_chan *ch = arg;

    ch->result.out = &ch->out;
    ch->result.err = &ch->err;
    ch->done(ch->arg, &ch->result);
    ch->done = NULL;
    /* The channel itself may still be closing on its connection; it is freed there. */
    if (ch->conn == NULL)
        chan_free(ch);
}

/* ---- connections: the socket ---- */

static void sock_close_cb(uv_handle_t *h)
{
    struct sock *s = h->data;

    close(s->fd);
    free(s);
}

static void sock_release(struct sock *s)
{
    s->c = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_close_cb);
}

static void conn_io_cb(uv_poll_t *h, int status, int events);

static void conn_watch(struct ssh_conn *c, int events)
{
    if (c->sock == NULL)
        return;
    if (events == 0)
        uv_poll_stop(&c->sock->poll);
    else
        uv_poll_start(&c->sock->poll, events, conn_io_cb);
}

/* Shut the socket, so that libssh2 cannot wait on it while freeing, and close what SFTP still
 * has open: libssh2 frees its channels along with the session, but not an SFTP file handle
 * with the writes it holds, nor the replies and requests an SFTP session keeps (an upload
 * dropped when it stalled or its connection was lost). On the shut socket each close fails at
 * once, and frees what it closes. */
static void conn_shut(struct ssh_conn *c)
{
    struct ssh_chan *ch;

    if (c->sock == NULL)
        return;
    shutdown(c->sock->fd, SHUT_RDWR);
    if (c->session == NULL)
        return;
    libssh2_session_set_blocking(c->session, 1);
    for (ch = c->chans; ch != NULL; ch = ch->next) {
        if (ch->fh != NULL) {
            libssh2_sftp_close_handle(ch->fh);
            ch->fh = NULL;
        }
        if (ch->sftp != NULL) {
            libssh2_sftp_shutdown(ch->sftp);
            ch->sftp = NULL;
        }
    }
}

/* Tear the connection down: session, agent, socket, timers. State goes to C_IDLE. */
static void conn_teardown(struct ssh_conn *c)
{
    if (c->agent != NULL) {
        libssh2_agent_disconnect(c->agent);
        libssh2_agent_free(c->agent);
        c->agent = NULL;
        c->agent_id = NULL;
    }
    conn_shut(c);
    if (c->session != NULL) {
        libssh2_session_set_blocking(c->session, 1);
        libssh2_session_free(c->session);
        c->session = NULL;
    }
    if (c->sock != NULL) {
        sock_release(c->sock);
        c->sock = NULL;
    }
    if (c->lookup != NULL) {
        c->lookup->c = NULL; /* its callback frees it */
        c->lookup = NULL;
    }
    c->opening = NULL;
    if (c->addrs != NULL) {
        uv_freeaddrinfo(c->addrs);
        c->addrs = c->addr = NULL;
    }
    loop_timer_stop(c->deadline);
    loop_timer_stop(c->keepalive);
    if (c->counted) {
        c->counted = false;
        c->pool->handshaking--;
    }
    buf_reset(&c->tried);
    c->state = C_IDLE;
}

/* A handshake slot came free: start the next connection waiting for one. */
static void pool_next_slot(struct ssh_pool *p)
{
    while (p->wait_head != NULL && p->handshaking < p->max_handshakes) {
        struct ssh_conn *c = p->wait_head;

        p->wait_head = c->wait_next;
        if (p->wait_head == NULL)
            p->wait_tail = NULL;
        c->wait_next = NULL;
        conn_begin(c);
    }
}

static uint64_t backoff_ms(struct ssh_conn *c)
{
    uint64_t bound = BACKOFF_BASE_MS;
    unsigned i;

    for (i = 1; i < c->failures && bound < BACKOFF_CAP_MS; i++)
        bound *= 2;
    if (bound > BACKOFF_CAP_MS)
        bound = BACKOFF_CAP_MS;
    /* Half fixed, half jitter: never hammer a host that just failed. */
    return bound / 2 + loop_random_upto(c->pool->loop, bound / 2);
}

static void conn_fail(struct ssh_conn *c, enum ssh_status st, enum retry_kind kind, const char *fmt,
                      ...)
{
    struct ssh_chan *ch, *next, *done = NULL, **tail = &done;
    bool was_ready = c->state == C_READY, replay = false;
    char msg[ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    conn_teardown(c);
    c->failures++;
    /*
     * Operations that had not started anything on the target move to a fresh connection once
     * (a connection that died while idle is found out only when it is used). The others fail.
     */
    for (ch = c->chans, c->chans = NULL; ch != NULL; ch = next) {
        next = ch->next;
        ch->next = NULL;
        ch->ch = NULL;   /* freed with the session */
        ch->sftp = NULL; /* closed by conn_shut */
        ch->fh = NULL;   /* closed by conn_shut */
        if (was_ready && !ch->started_remote && !ch->retried && !ch->abandoned) {
            ch->retried = true;
            ch->state = S_QUEUED;
            ch->next = c->chans;
            c->chans = ch;
            replay = true;
            continue;
        }
        if (ch->result.msg[0] == '\0' || ch->result.status == SSH_DONE)
            chan_set_fail(ch, st, kind, msg);
        *tail = ch;
        tail = &ch->next;
    }
    if (replay) {
        conn_begin(c); /* at once: the failure was found on a connection that had worked */
    } else {
        c->state = C_BACKOFF;
        loop_timer_start(c->backoff, backoff_ms(c));
    }
    pool_next_slot(c->pool);
    for (ch = done; ch != NULL; ch = next) {
        next = ch->next;
        ch->next = NULL;
        ch->conn = c;
        ch->result.out = &ch->out;
        ch->result.err = &ch->err;
        if (!ch->abandoned)
            ch->done(ch->arg, &ch->result);
        chan_free(ch);
    }
}

static void deadline_cb(void *arg)
{
    struct ssh_conn *c = arg;
    double secs;

    if (c->state == C_AUTH) {
        secs = (double)c->pool->auth_timeout_ms / 1000.0;
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT,
                  "%s (%s:%u): no answer to authentication within %gs", c->name, c->host, c->port,
                  secs);
    } else {
        secs = (double)c->pool->connect_timeout_ms / 1000.0;
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): could not connect within %gs",
                  c->name, c->host, c->port, secs);
    }
}

static void backoff_cb(void *arg)
{
    struct ssh_conn *c = arg;

    c->state = C_IDLE;
    if (c->chans != NULL)
        conn_begin(c);
}

static void keepalive_cb(void *arg)
{
    struct ssh_conn *c = arg;
    int next = 0, rc;

    if (c->state != C_READY)
        return;
    rc = libssh2_keepalive_send(c->session, &next);
    if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN) {
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): connection lost: %s", c->name,
                  c->host, c->port, session_error(c->session));
        return;
    }
    loop_timer_start(c->keepalive, next > 0 ? (uint64_t)next * 1000u : c->pool->keepalive_ms);
    conn_pump(c);
}

/* ---- connections: connect ---- */

static void conn_try_addr(struct ssh_conn *c);

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lookup *l = req->data;
    struct ssh_conn *c = l->c;

    free(l);
    if (c == NULL) { /* the connection gave up meanwhile (deadline, n3ctl closing) */
        if (res != NULL)
            uv_freeaddrinfo(res);
        return;
    }
    c->lookup = NULL;
    if (status != 0) {
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: cannot resolve \"%s\": %s", c->name,
                  c->host, uv_strerror(status));
        return;
    }
    c->addrs = c->addr = res;
    conn_try_addr(c);
}

static void conn_try_addr(struct ssh_conn *c)
{
    struct sock *s;
    int fd;

    for (; c->addr != NULL; c->addr = c->addr->ai_next) {
        fd = socket(c->addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, c->addr->ai_addr, c->addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
            int e = errno;

            close(fd);
            if (c->addr->ai_next == NULL) {
                conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): %s", c->name, c->host,
                          c->port, strerror(e));
                return;
            }
            continue;
        }
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->c = c;
        s->poll.data = s;
        uv_poll_init(loop_uv(c->pool->loop), &s->poll, fd);
        c->sock = s;
        c->state = C_CONNECT;
        uv_poll_start(&s->poll, UV_WRITABLE, conn_io_cb);
        return;
    }
    conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): no address to connect to", c->name,
              c->host, c->port);
}

/* Connect now (a handshake slot is free), or wait for a slot. */
static void conn_begin(struct ssh_conn *c)
{
    struct ssh_pool *p = c->pool;
    struct addrinfo hints;
    char port[16];
    int rc;

    if (p->handshaking >= p->max_handshakes) {
        c->state = C_WAIT_SLOT;
        c->wait_next = NULL;
        if (p->wait_tail != NULL)
            p->wait_tail->wait_next = c;
        else
            p->wait_head = c;
        p->wait_tail = c;
        return;
    }
    p->handshaking++;
    c->counted = true;
    c->state = C_RESOLVE;
    c->started_us = loop_now_us(p->loop);
    loop_timer_start(c->deadline, p->connect_timeout_ms);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%u", c->port);
    c->lookup = xcalloc(1, sizeof *c->lookup);
    c->lookup->c = c;
    c->lookup->req.data = c->lookup;
    rc = uv_getaddrinfo(loop_uv(p->loop), &c->lookup->req, gai_cb, c->host, port, &hints);
    if (rc != 0) {
        free(c->lookup);
        c->lookup = NULL;
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: cannot resolve \"%s\": %s", c->name,
                  c->host, uv_strerror(rc));
    }
}

static void conn_start_session(struct ssh_conn *c)
{
    char prefs[256];
    int one = 1;

    setsockopt(c->sock->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->session = libssh2_session_init_ex(NULL, NULL, NULL, c);
    if (c->session == NULL)
        fatal("libssh2_session_init failed");
    libssh2_session_set_blocking(c->session, 0);
    /* Ask for the host key types known_hosts has for this host, as OpenSSH does: a host known
     * by its ed25519 key must not be asked for its ecdsa key and called unknown. */
    knownhosts_types(c->pool->kh, c->host, c->port, prefs, sizeof prefs);
    if (prefs[0] != '\0')
        libssh2_session_method_pref(c->session, LIBSSH2_METHOD_HOSTKEY, prefs);
    if (c->pool->keepalive_ms > 0)
        libssh2_keepalive_config(c->session, 0, (unsigned)((c->pool->keepalive_ms + 999) / 1000));
    c->state = C_HANDSHAKE;
}

/* The type name inside a key blob: its first length-prefixed string. */
static void blob_type(const unsigned char *key, size_t len, char *out, size_t outlen)
{
    size_t n;

    out[0] = '\0';
    if (len < 4)
        return;
    n = ((size_t)key[0] << 24) | ((size_t)key[1] << 16) | ((size_t)key[2] << 8) | key[3];
    if (n > len - 4 || n >= outlen)
        return;
    memcpy(out, key + 4, n);
    out[n] = '\0';
}

/* 0, or -1 after conn_fail. */
static int conn_check_hostkey(struct ssh_conn *c)
{
    const char *key;
    size_t len;
    int type;
    unsigned line = 0;
    char fp[128];

    key = libssh2_session_hostkey(c->session, &len, &type);
    if (key == NULL) {
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: the server sent no host key", c->name);
        return -1;
    }
    free(c->hostkey);
    c->hostkey = xmalloc(len);
    memcpy(c->hostkey, key, len);
    c->hostkey_len = len;
    blob_type(c->hostkey, len, c->hostkey_type, sizeof c->hostkey_type);
    knownhosts_fingerprint(c->hostkey, len, fp, sizeof fp);
    switch (
        knownhosts_check(c->pool->kh, c->host, c->port, c->hostkey_type, c->hostkey, len, &line)) {
    case KH_MATCH:
        return 0;
    case KH_UNKNOWN:
        conn_fail(c, SSH_REFUSED, RETRY_HOSTKEY,
                  "%s (%s:%u): unknown host key %s %s (not in %s). If it is the right key, "
                  "trust it with: n3ctl hosts trust %s",
                  c->name, c->host, c->port, c->hostkey_type, fp, c->pool->known_hosts, c->name);
        return -1;
    case KH_REVOKED:
        conn_fail(c, SSH_REFUSED, RETRY_HOSTKEY,
                  "%s (%s:%u): the host key %s %s is marked @revoked in %s; refusing to connect",
                  c->name, c->host, c->port, c->hostkey_type, fp, c->pool->known_hosts);
        return -1;
    case KH_CHANGED:
        conn_fail(c, SSH_REFUSED, RETRY_HOSTKEY,
                  "WARNING: THE HOST KEY OF %s (%s:%u) HAS CHANGED. It now presents %s %s, which "
                  "is not the key on line %u of %s. Someone may be intercepting the connection "
                  "(man in the middle), or the host was reinstalled. Refusing to connect. If you "
                  "know why it changed, remove line %u and run: n3ctl hosts trust %s",
                  c->name, c->host, c->port, c->hostkey_type, fp, line, c->pool->known_hosts, line,
                  c->name);
        return -1;
    }
    return 0;
}

/* ---- connections: authentication ---- */

/* LIBSSH2_ERROR_EAGAIN, 0 when authenticated, -1 after conn_fail. */
static int conn_auth(struct ssh_conn *c)
{
    struct ssh_pool *p = c->pool;
    int rc;

    for (;;) {
        switch (c->auth) {
        case A_LIST: {
            char *methods = libssh2_userauth_list(c->session, c->user, (unsigned)strlen(c->user));

            if (methods == NULL) {
                if (libssh2_userauth_authenticated(c->session))
                    return 0;
                if (session_errno(c) == LIBSSH2_ERROR_EAGAIN)
                    return LIBSSH2_ERROR_EAGAIN;
                conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: authentication failed: %s",
                          c->name, session_error(c->session));
                return -1;
            }
            if (strstr(methods, "publickey") == NULL) {
                conn_fail(c, SSH_REFUSED, RETRY_AUTH,
                          "%s: the server does not accept keys for %s (it offers: %s); n3ctl "
                          "authenticates with keys only",
                          c->name, c->user, methods);
                return -1;
            }
            {
                const char *sock = getenv("SSH_AUTH_SOCK");

                c->auth = p->agent && sock != NULL && sock[0] != '\0' ? A_AGENT : A_FILES;
            }
            c->id_index = 0;
            break;
        }
        case A_AGENT:
            if (c->agent == NULL) {
                c->agent = libssh2_agent_init(c->session);
                if (c->agent == NULL || libssh2_agent_connect(c->agent) != 0 ||
                    libssh2_agent_list_identities(c->agent) != 0) {
                    buf_addf(&c->tried, "%sssh-agent (not reachable)", c->tried.len ? ", " : "");
                    c->auth = A_FILES;
                    break;
                }
                c->agent_id = NULL;
                c->agent_keys = 0;
                if (libssh2_agent_get_identity(c->agent, &c->agent_id, NULL) != 0) {
                    buf_addf(&c->tried, "%sssh-agent (no keys)", c->tried.len ? ", " : "");
                    c->auth = A_FILES;
                    break;
                }
            }
            rc = libssh2_agent_userauth(c->agent, c->user, c->agent_id);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                return rc;
            if (rc == 0)
                return 0;
            if (socket_error(rc)) {
                conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: connection lost: %s", c->name,
                          session_error(c->session));
                return -1;
            }
            c->agent_keys++;
            if (libssh2_agent_get_identity(c->agent, &c->agent_id, c->agent_id) != 0) {
                buf_addf(&c->tried, "%sssh-agent (%u key%s refused)", c->tried.len ? ", " : "",
                         c->agent_keys, c->agent_keys == 1 ? "" : "s");
                c->auth = A_FILES;
            }
            break;
        case A_FILES: {
            const char *path = p->identities[c->id_index];
            struct stat st;

            if (path == NULL) {
                c->auth = A_DONE;
                break;
            }
            if (stat(path, &st) != 0) {
                c->id_index++;
                continue; /* a default key that is not there */
            }
            if ((st.st_mode & 077) != 0) {
                /* As OpenSSH: a private key others can read is not used. */
                buf_addf(&c->tried,
                         "%s%s (UNPROTECTED PRIVATE KEY FILE: mode %04o, others can read it; "
                         "ignored; fix with chmod 600 %s)",
                         c->tried.len ? ", " : "", path, (unsigned)(st.st_mode & 07777), path);
                c->id_index++;
                continue;
            }
            rc = libssh2_userauth_publickey_fromfile_ex(
                c->session, c->user, (unsigned)strlen(c->user), NULL, path, NULL);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                return rc;
            if (rc == 0)
                return 0;
            if (socket_error(rc)) {
                conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: connection lost: %s", c->name,
                          session_error(c->session));
                return -1;
            }
            buf_addf(&c->tried, "%s%s (%s)", c->tried.len ? ", " : "", path,
                     rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
                         ? "cannot be read: is it encrypted? use ssh-agent"
                         : "refused");
            c->id_index++;
            break;
        }
        case A_DONE:
            conn_fail(c, SSH_REFUSED, RETRY_AUTH,
                      "%s (%s:%u): authentication as %s refused; tried %s. Is the public key in "
                      "the user's authorized_keys?",
                      c->name, c->host, c->port, c->user,
                      c->tried.len ? c->tried.data
                                   : "no key (configure ssh.identity or ssh-agent)");
            return -1;
        }
    }
}

/* ---- channels: the state machines ---- */

static void chan_output(struct ssh_chan *ch, enum proc_stream stream, const char *data, size_t len)
{
    tail_add(stream == PROC_STDOUT ? &ch->out : &ch->err, data, len);
    if (ch->on_output != NULL && !ch->abandoned)
        ch->on_output(ch->arg, stream, data, len);
}

/* A channel error: 1 if it was only EAGAIN (wait), 0 if the channel failed (result set),
 * -1 if the whole connection failed (conn_fail called: the channel is gone). */
static int chan_error(struct ssh_chan *ch, int rc, const char *what)
{
    struct ssh_conn *c = ch->conn;
    char msg[ERR_MSG_MAX];

    if (rc == LIBSSH2_ERROR_EAGAIN)
        return 1;
    if (socket_error(rc) || rc == LIBSSH2_ERROR_CHANNEL_CLOSED) {
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): connection lost%s: %s", c->name,
                  c->host, c->port, ch->started_remote ? " during the command" : "",
                  session_error(c->session));
        return -1;
    }
    snprintf(msg, sizeof msg, "%s: %s: %s", c->name, what, session_error(c->session));
    chan_set_fail(ch, SSH_FAILED, RETRY_CONNECT, msg);
    return 0;
}

enum step { STEP_WAIT, STEP_PROGRESS, STEP_FINISHED, STEP_CONN_GONE };

/* libssh2 opens one channel at a time per session: may ch start (or go on) opening one? */
static bool open_turn(struct ssh_chan *ch)
{
    if (ch->conn->opening != NULL && ch->conn->opening != ch)
        return false;
    ch->conn->opening = ch;
    return true;
}

/* After an open call (a channel, SFTP): done, or wait, or failed, or the connection is gone. */
static enum step open_result(struct ssh_chan *ch, bool opened, const char *what)
{
    struct ssh_conn *c = ch->conn;
    int rc;

    if (opened) {
        c->opening = NULL;
        return STEP_PROGRESS;
    }
    rc = chan_error(ch, session_errno(c), what);
    if (rc == 0)
        c->opening = NULL;
    return rc == 1 ? STEP_WAIT : rc == 0 ? STEP_FINISHED : STEP_CONN_GONE;
}

static enum step chan_close_steps(struct ssh_chan *ch)
{
    int rc;

    switch (ch->state) {
    case S_CLOSE:
        rc = libssh2_channel_close(ch->ch);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return STEP_WAIT;
        ch->state = S_WAIT_CLOSED;
        return STEP_PROGRESS;
    case S_WAIT_CLOSED:
        /* Drain what is still coming, so that the close can complete. */
        while (libssh2_channel_read(ch->ch, read_buf, sizeof read_buf) > 0)
            ;
        while (libssh2_channel_read_stderr(ch->ch, read_buf, sizeof read_buf) > 0)
            ;
        rc = libssh2_channel_wait_closed(ch->ch);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return STEP_WAIT;
        if (ch->result.status == SSH_DONE) {
            char *sig = NULL;

            ch->result.exit_code = libssh2_channel_get_exit_status(ch->ch);
            if (libssh2_channel_get_exit_signal(ch->ch, &sig, NULL, NULL, NULL, NULL, NULL) == 0 &&
                sig != NULL) {
                ch->result.exit_signal = ssh_signal_number(sig);
                if (ch->result.exit_signal == 0)
                    ch->result.exit_signal = 255;
                ch->result.exit_code = -1;
                libssh2_free(ch->conn->session, sig);
            }
        }
        ch->state = S_FREE;
        return STEP_PROGRESS;
    case S_FREE:
        rc = libssh2_channel_free(ch->ch);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return STEP_WAIT;
        ch->ch = NULL;
        ch->state = S_DONE;
        return STEP_FINISHED;
    default:
        return STEP_WAIT;
    }
}

static enum step chan_exec_step(struct ssh_chan *ch)
{
    struct ssh_conn *c = ch->conn;
    bool progress = false;
    ssize_t n;
    int rc;

    switch (ch->state) {
    case S_QUEUED:
    case S_OPEN: {
        enum step st;

        if (!open_turn(ch))
            return STEP_WAIT;
        if (ch->state == S_QUEUED)
            ch->started_us = loop_now_us(c->pool->loop);
        ch->state = S_OPEN;
        if (ch->kind == K_TUNNEL) {
            char what[400];

            /* libssh2 adds the server's reason: "administratively prohibited" (sshd's
             * AllowTcpForwarding), "connect failed" (nothing listens there). */
            snprintf(what, sizeof what, "no tunnel to %.255s:%u", ch->dest_host, ch->dest_port);
            ch->ch = libssh2_channel_direct_tcpip_ex(c->session, ch->dest_host, (int)ch->dest_port,
                                                     "127.0.0.1", 0);
            st = open_result(ch, ch->ch != NULL, what);
            if (ch->ch != NULL) {
                ch->started_remote = true; /* bytes may go out: never replayed elsewhere */
                ch->state = ch->abandoned ? S_CLOSE : S_IO;
                if (!ch->abandoned && ch->on_open != NULL)
                    ch->on_open(ch->arg);
            }
            return st;
        }
        ch->ch = libssh2_channel_open_session(c->session);
        st = open_result(ch, ch->ch != NULL, "cannot open a channel");
        if (ch->ch != NULL)
            ch->state = ch->abandoned ? S_CLOSE : S_EXEC;
        return st;
    }
    case S_EXEC:
        rc = libssh2_channel_process_startup(ch->ch, "exec", 4, ch->command,
                                             (unsigned)strlen(ch->command));
        if (rc != 0) {
            rc = chan_error(ch, rc, "the server refused to run the command");
            if (rc == 0) {
                ch->state = S_CLOSE;
                return STEP_PROGRESS;
            }
            return rc == 1 ? STEP_WAIT : STEP_CONN_GONE;
        }
        ch->started_remote = true;
        ch->state = S_IO;
        return STEP_PROGRESS;
    case S_IO:
        while (!ch->eof_sent) {
            if (ch->input_off < ch->input_len) {
                size_t want = ch->input_len - ch->input_off;

                n = libssh2_channel_write(ch->ch, ch->input + ch->input_off,
                                          want < SSH_CHUNK ? want : SSH_CHUNK);
                if (n == LIBSSH2_ERROR_EAGAIN)
                    break;
                if (n < 0) {
                    /* The command stopped reading its input: that is its business. */
                    ch->input_off = ch->input_len;
                    continue;
                }
                ch->input_off += (size_t)n;
                if (ch->input_off == ch->input_len && ch->input_open)
                    ch->input_off = ch->input_len = 0; /* all out: the buffer starts over */
                progress = true;
                continue;
            }
            if (ch->input_open)
                break; /* a tunnel waits for more, or for its end */
            rc = libssh2_channel_send_eof(ch->ch);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                break;
            ch->eof_sent = true;
            progress = true;
        }
        for (;;) {
            n = libssh2_channel_read(ch->ch, read_buf, sizeof read_buf);
            if (n > 0) {
                chan_output(ch, PROC_STDOUT, read_buf, (size_t)n);
                progress = true;
                continue;
            }
            if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
                rc = chan_error(ch, (int)n, "reading the command's output");
                return rc == 0 ? STEP_FINISHED : STEP_CONN_GONE;
            }
            break;
        }
        for (;;) {
            n = libssh2_channel_read_stderr(ch->ch, read_buf, sizeof read_buf);
            if (n > 0) {
                chan_output(ch, PROC_STDERR, read_buf, (size_t)n);
                progress = true;
                continue;
            }
            if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
                rc = chan_error(ch, (int)n, "reading the command's output");
                return rc == 0 ? STEP_FINISHED : STEP_CONN_GONE;
            }
            break;
        }
        if (libssh2_channel_eof(ch->ch)) {
            ch->state = S_CLOSE;
            return STEP_PROGRESS;
        }
        return progress ? STEP_PROGRESS : STEP_WAIT;
    default:
        return chan_close_steps(ch);
    }
}

static void put_fail(struct ssh_chan *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put_fail(struct ssh_chan *ch, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    chan_set_fail(ch, SSH_FAILED, RETRY_VALIDATION, msg);
}

static enum step chan_put_step(struct ssh_chan *ch)
{
    struct ssh_conn *c = ch->conn;
    ssize_t n;
    int rc;

    switch (ch->state) {
    case S_QUEUED:
    case S_SFTP_INIT: {
        enum step st;

        if (!open_turn(ch))
            return STEP_WAIT;
        if (ch->state == S_QUEUED)
            ch->started_us = loop_now_us(c->pool->loop);
        ch->state = S_SFTP_INIT;
        ch->sftp = libssh2_sftp_init(c->session);
        st = open_result(ch, ch->sftp != NULL,
                         "SFTP is not available (n3ctl uploads releases over SFTP: the target "
                         "needs \"Subsystem sftp\" in its sshd_config, run by any ForceCommand)");
        if (ch->sftp != NULL)
            ch->state = ch->abandoned ? S_SFTP_SHUTDOWN : S_SFTP_OPEN;
        return st;
    }
    case S_SFTP_OPEN:
        ch->fh = libssh2_sftp_open_ex(ch->sftp, ch->path, (unsigned)strlen(ch->path),
                                      LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
                                      (long)ch->mode, LIBSSH2_SFTP_OPENFILE);
        if (ch->fh == NULL) {
            rc = session_errno(c);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                return STEP_WAIT;
            if (socket_error(rc)) {
                chan_error(ch, rc, "");
                return STEP_CONN_GONE;
            }
            put_fail(ch, "%s: cannot create %s (SFTP refused it: does the directory exist?)",
                     c->name, ch->path);
            ch->state = S_SFTP_SHUTDOWN;
            return STEP_PROGRESS;
        }
        ch->started_remote = true;
        /* The file is open on the target: the transfer has started (its stall timer counts
         * from here, not from when it was queued). */
        if (ch->on_progress != NULL && !ch->abandoned)
            ch->on_progress(ch->arg, 0);
        ch->state = S_SFTP_WRITE;
        return STEP_PROGRESS;
    case S_SFTP_WRITE:
        for (;;) {
            if (ch->buf_off == ch->buf_len) {
                if (ch->local_eof) {
                    ch->state = S_SFTP_CLOSE;
                    return STEP_PROGRESS;
                }
                n = read(ch->local_fd, ch->buf, SSH_CHUNK);
                if (n < 0) {
                    put_fail(ch, "%s: cannot read the local file %s", c->name, ch->local);
                    ch->state = S_SFTP_CLOSE;
                    return STEP_PROGRESS;
                }
                ch->buf_len = (size_t)n;
                ch->buf_off = 0;
                ch->local_eof = n == 0;
                continue;
            }
            n = libssh2_sftp_write(ch->fh, ch->buf + ch->buf_off, ch->buf_len - ch->buf_off);
            if (n == LIBSSH2_ERROR_EAGAIN)
                return STEP_WAIT;
            if (n < 0) {
                if (socket_error((int)n)) {
                    chan_error(ch, (int)n, "");
                    return STEP_CONN_GONE;
                }
                put_fail(ch, "%s: writing %s failed (disk full?)", c->name, ch->path);
                ch->state = S_SFTP_CLOSE;
                return STEP_PROGRESS;
            }
            ch->buf_off += (size_t)n;
            ch->sent += (uint64_t)n;
            if (ch->on_progress != NULL && !ch->abandoned)
                ch->on_progress(ch->arg, ch->sent);
        }
    case S_SFTP_CLOSE:
        rc = libssh2_sftp_close_handle(ch->fh);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return STEP_WAIT;
        ch->fh = NULL;
        if (rc != 0 && ch->result.status == SSH_DONE)
            put_fail(ch, "%s: closing %s failed (disk full?)", c->name, ch->path);
        ch->state = S_SFTP_SHUTDOWN;
        return STEP_PROGRESS;
    case S_SFTP_SHUTDOWN:
        rc = libssh2_sftp_shutdown(ch->sftp);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return STEP_WAIT;
        ch->sftp = NULL;
        ch->state = S_DONE;
        if (ch->result.status == SSH_DONE)
            ch->result.exit_code = 0;
        return STEP_FINISHED;
    default:
        return STEP_FINISHED;
    }
}

/* Advance every channel while any of them moves. */
static void conn_run_chans(struct ssh_conn *c)
{
    bool progress = true;

    while (progress && c->state == C_READY) {
        struct ssh_chan *ch, *next;

        progress = false;
        for (ch = c->chans; ch != NULL; ch = next) {
            enum step st;

            next = ch->next;
            switch (ch->kind) {
            case K_CONNECT:
                ch->result.exit_code = 0;
                st = STEP_FINISHED;
                break;
            case K_PUT:
                st = chan_put_step(ch);
                break;
            default:
                st = chan_exec_step(ch);
                break;
            }
            if (st == STEP_CONN_GONE)
                return; /* conn_fail has delivered every channel */
            if (st == STEP_FINISHED) {
                if ((ch->kind == K_EXEC || ch->kind == K_TUNNEL) && ch->ch != NULL &&
                    ch->state != S_DONE) {
                    ch->state = S_CLOSE; /* a failed channel still closes properly */
                    progress = true;
                    continue;
                }
                chan_deliver(ch);
                /* The callback may have queued or abandoned channels: start over. */
                progress = true;
                break;
            }
            if (st == STEP_PROGRESS)
                progress = true;
        }
    }
}

static void conn_ready(struct ssh_conn *c)
{
    c->state = C_READY;
    c->was_ready = true;
    c->failures = 0;
    c->handshake_us = loop_now_us(c->pool->loop) - c->started_us;
    loop_timer_stop(c->deadline);
    if (c->counted) {
        c->counted = false;
        c->pool->handshaking--;
    }
    if (c->pool->keepalive_ms > 0)
        loop_timer_start(c->keepalive, c->pool->keepalive_ms);
    pool_next_slot(c->pool);
}

static void conn_pump(struct ssh_conn *c)
{
    int rc, dirs, events;

    if (c->pumping) {
        c->repump = true;
        return;
    }
    c->pumping = true;
    do {
        c->repump = false;
        switch (c->state) {
        case C_HANDSHAKE:
            rc = libssh2_session_handshake(c->session, c->sock->fd);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                break;
            if (rc != 0) {
                conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): SSH handshake failed: %s",
                          c->name, c->host, c->port, session_error(c->session));
                break;
            }
            if (conn_check_hostkey(c) != 0)
                break;
            c->state = C_AUTH;
            c->auth = A_LIST;
            loop_timer_start(c->deadline, c->pool->auth_timeout_ms);
            c->repump = true;
            break;
        case C_AUTH:
            rc = conn_auth(c);
            if (rc == 0) {
                conn_ready(c);
                c->repump = true;
            }
            break;
        case C_READY:
            conn_run_chans(c);
            break;
        default:
            break;
        }
    } while (c->repump);
    c->pumping = false;

    /* Watch the socket for what libssh2 waits for; an idle connection is not watched. */
    if (c->session == NULL || c->sock == NULL)
        return;
    if (c->state == C_READY && c->chans == NULL) {
        conn_watch(c, 0);
        return;
    }
    dirs = libssh2_session_block_directions(c->session);
    events = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        events |= UV_READABLE;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        events |= UV_WRITABLE;
    conn_watch(c, events != 0 ? events : UV_READABLE);
}

static void conn_io_cb(uv_poll_t *h, int status, int events)
{
    struct ssh_conn *c = ((struct sock *)h->data)->c;

    if (c == NULL)
        return;
    if (c->state == C_CONNECT) {
        int err = 0;
        socklen_t len = sizeof err;

        /* libuv reports a failed connect as a poll error (EBADF): ask the socket why. */
        if (getsockopt(c->sock->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0 || status < 0) {
            const char *why = err != 0 ? strerror(err) : uv_strerror(status);

            /* Next address, if there is one. */
            if (c->addr != NULL && c->addr->ai_next != NULL) {
                sock_release(c->sock);
                c->sock = NULL;
                c->addr = c->addr->ai_next;
                conn_try_addr(c);
                return;
            }
            conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s (%s:%u): %s", c->name, c->host,
                      c->port, why);
            return;
        }
        conn_start_session(c);
    }
    conn_pump(c);
}

static void kick_cb(void *arg)
{
    struct ssh_conn *c = arg;

    c->kick_pending = false;
    if (c->state == C_READY)
        conn_pump(c);
}

/* A new channel: connect if needed, or run it on the next turn of the loop. */
static void conn_want(struct ssh_conn *c)
{
    switch (c->state) {
    case C_IDLE:
        conn_begin(c);
        break;
    case C_READY:
        if (!c->kick_pending) {
            c->kick_pending = true;
            loop_defer(c->pool->loop, kick_cb, c);
        }
        break;
    default:
        break; /* connecting, or waiting: the channel runs when the connection is ready */
    }
}

/* ---- the interface ---- */

struct ssh_pool *ssh_pool_new(struct loop *loop, const struct ssh_settings *s, struct err *err)
{
    struct ssh_pool *p = xcalloc(1, sizeof *p);
    size_t n = 0, i;

    if (libssh2_users++ == 0 && libssh2_init(0) != 0)
        fatal("libssh2_init failed");
    p->loop = loop;
    for (i = 0; s->identities != NULL && s->identities[i] != NULL; i++)
        n++;
    p->identities = xcalloc(n + 1, sizeof *p->identities);
    for (i = 0; i < n; i++)
        p->identities[i] = xstrdup(s->identities[i]);
    p->known_hosts = xstrdup(s->known_hosts);
    p->agent = s->agent;
    p->connect_timeout_ms = s->connect_timeout_ms ? s->connect_timeout_ms : 10000;
    p->auth_timeout_ms = s->auth_timeout_ms ? s->auth_timeout_ms : 10000;
    p->keepalive_ms = s->keepalive_ms;
    p->max_handshakes = s->max_handshakes ? s->max_handshakes : 16;
    if (knownhosts_load(p->known_hosts, &p->kh, err) != 0) {
        ssh_pool_free(p);
        return NULL;
    }
    return p;
}

static void abandon_all(struct ssh_conn *c)
{
    struct ssh_chan *ch, *next;

    for (ch = c->chans, c->chans = NULL; ch != NULL; ch = next) {
        next = ch->next;
        ch->next = NULL;
        if (!ch->abandoned) {
            chan_set_fail(ch, SSH_ABANDONED, RETRY_CONNECT, "n3ctl is closing its connections");
            ch->result.out = &ch->out;
            ch->result.err = &ch->err;
            ch->done(ch->arg, &ch->result);
        }
        chan_free(ch);
    }
}

void ssh_pool_free(struct ssh_pool *p)
{
    struct ssh_conn *c, *next;
    size_t i;

    if (p == NULL)
        return;
    for (c = p->conns; c != NULL; c = next) {
        next = c->next;
        if (c->session != NULL && c->state == C_READY)
            libssh2_session_disconnect(c->session, "n3ctl is done"); /* best effort */
        conn_shut(c); /* before the channels go: they hold the SFTP handles to close */
        abandon_all(c);
        conn_teardown(c); /* orphans a lookup in flight: its callback only frees it */
        loop_timer_free(c->deadline);
        loop_timer_free(c->backoff);
        loop_timer_free(c->keepalive);
        buf_done(&c->tried);
        free(c->hostkey);
        free(c->name);
        free(c->host);
        free(c->user);
        free(c);
    }
    for (i = 0; p->identities != NULL && p->identities[i] != NULL; i++)
        free(p->identities[i]);
    free(p->identities);
    free(p->known_hosts);
    knownhosts_free(p->kh);
    free(p);
    if (--libssh2_users == 0)
        libssh2_exit();
}

struct ssh_conn *ssh_pool_conn(struct ssh_pool *p, const char *name, const char *host,
                               unsigned port, const char *user)
{
    struct ssh_conn *c;

    for (c = p->conns; c != NULL; c = c->next) {
        if (c->port == port && strcmp(c->host, host) == 0 && strcmp(c->user, user) == 0)
            return c;
    }
    c = xcalloc(1, sizeof *c);
    c->pool = p;
    c->name = xstrdup(name);
    c->host = xstrdup(host);
    c->user = xstrdup(user);
    c->port = port;
    c->state = C_IDLE;
    buf_init(&c->tried);
    c->deadline = loop_timer_new(p->loop, deadline_cb, c);
    c->backoff = loop_timer_new(p->loop, backoff_cb, c);
    c->keepalive = loop_timer_new(p->loop, keepalive_cb, c);
    c->next = p->conns;
    p->conns = c;
    return c;
}

static struct ssh_chan *chan_new(struct ssh_conn *c, enum chan_kind kind, ssh_done_fn done,
                                 void *arg, size_t output_limit)
{
    struct ssh_chan *ch = xcalloc(1, sizeof *ch), **pp;

    ch->conn = c;
    ch->kind = kind;
    ch->state = S_QUEUED;
    ch->done = done;
    ch->arg = arg;
    ch->local_fd = -1;
    ch->result.status = SSH_DONE;
    ch->result.exit_code = -1;
    tail_init(&ch->out, output_limit ? output_limit : SSH_OUTPUT_DEFAULT);
    tail_init(&ch->err, output_limit ? output_limit : SSH_OUTPUT_DEFAULT);
    for (pp = &c->chans; *pp != NULL; pp = &(*pp)->next)
        ;
    *pp = ch;
    return ch;
}

struct ssh_chan *ssh_exec(struct ssh_conn *c, const struct ssh_exec_spec *spec)
{
    struct ssh_chan *ch = chan_new(c, K_EXEC, spec->on_done, spec->arg, spec->output_limit);

    ch->command = xstrdup(spec->command);
    if (spec->input != NULL && spec->input_len > 0) {
        ch->input = xmalloc(spec->input_len);
        memcpy(ch->input, spec->input, spec->input_len);
        ch->input_len = spec->input_len;
    }
    ch->on_output = spec->on_output;
    conn_want(c);
    return ch;
}

struct ssh_chan *ssh_put(struct ssh_conn *c, const char *local, const char *path, unsigned mode,
                         ssh_progress_fn progress, ssh_done_fn done, void *arg)
{
    struct ssh_chan *ch = chan_new(c, K_PUT, done, arg, 0);

    ch->on_progress = progress;
    ch->local = xstrdup(local);
    ch->path = xstrdup(path);
    ch->mode = mode;
    ch->buf = xmalloc(SSH_CHUNK);
    ch->local_fd = open(local, O_RDONLY | O_CLOEXEC);
    if (ch->local_fd < 0) {
        char msg[ERR_MSG_MAX];

        snprintf(msg, sizeof msg, "cannot read %s: %s", local, strerror(errno));
        chan_unlink(ch);
        chan_set_fail(ch, SSH_FAILED, RETRY_VALIDATION, msg);
        ch->conn = NULL;
        loop_defer(c->pool->loop, deliver_deferred, ch);
        return ch;
    }
    conn_want(c);
    return ch;
}

struct ssh_chan *ssh_connect(struct ssh_conn *c, ssh_done_fn done, void *arg)
{
    struct ssh_chan *ch = chan_new(c, K_CONNECT, done, arg, 0);

    conn_want(c);
    return ch;
}

struct ssh_chan *ssh_tunnel(struct ssh_conn *c, const struct ssh_tunnel_spec *spec)
{
    struct ssh_chan *ch = chan_new(c, K_TUNNEL, spec->on_done, spec->arg, 1);

    ch->dest_host = xstrdup(spec->host);
    ch->dest_port = spec->port;
    ch->on_open = spec->on_open;
    ch->on_output = spec->on_data;
    ch->input_open = true;
    conn_want(c);
    return ch;
}

void ssh_tunnel_write(struct ssh_chan *ch, const void *data, size_t len)
{
    if (ch->abandoned || !ch->input_open || len == 0)
        return;
    if (ch->input_off > 0 && ch->input_off == ch->input_len)
        ch->input_off = ch->input_len = 0;
    if (ch->input_len + len > ch->input_cap) {
        size_t cap = ch->input_cap ? ch->input_cap : SSH_CHUNK;

        while (cap < ch->input_len + len)
            cap *= 2;
        ch->input = xrealloc(ch->input, cap);
        ch->input_cap = cap;
    }
    memcpy(ch->input + ch->input_len, data, len);
    ch->input_len += len;
    conn_want(ch->conn);
}

size_t ssh_tunnel_pending(const struct ssh_chan *ch)
{
    return ch->input_len - ch->input_off;
}

void ssh_tunnel_shut(struct ssh_chan *ch)
{
    if (ch->abandoned || !ch->input_open)
        return;
    ch->input_open = false;
    conn_want(ch->conn);
}

void ssh_chan_abandon(struct ssh_chan *ch, const char *why)
{
    struct ssh_conn *c = ch->conn;
    struct ssh_chan *copy;

    if (ch->abandoned || c == NULL)
        return;
    ch->abandoned = true;
    chan_set_fail(ch, SSH_ABANDONED, RETRY_TIMEOUT, why);
    /* The owner hears on the next turn of the loop, with the output so far; the channel itself
     * closes on its connection and is freed there. */
    copy = xcalloc(1, sizeof *copy);
    copy->result = ch->result;
    copy->done = ch->done;
    copy->arg = ch->arg;
    copy->local_fd = -1;
    copy->out = ch->out;
    copy->err = ch->err;
    tail_init(&ch->out, 1);
    tail_init(&ch->err, 1);
    loop_defer(c->pool->loop, deliver_deferred, copy);
    if (ch->state == S_QUEUED) { /* nothing started: nothing to close */
        chan_unlink(ch);
        chan_free(ch);
        return;
    }
    /* An open in progress completes first (libssh2 holds it for the session), then closes. */
    if ((ch->kind == K_EXEC || ch->kind == K_TUNNEL) && ch->state > S_OPEN && ch->state < S_CLOSE)
        ch->state = S_CLOSE;
    else if (ch->kind == K_PUT && ch->state == S_SFTP_WRITE)
        ch->state = S_SFTP_CLOSE;
    conn_want(c);
}

void ssh_conn_drop(struct ssh_conn *c, struct ssh_chan *ch, const char *why)
{
    if (ch != NULL)
        ch->retried = true; /* it stalled: it fails, it is not tried again */
    if (c->state == C_READY)
        conn_fail(c, SSH_UNREACHABLE, RETRY_CONNECT, "%s: %s", c->name, why);
}

bool ssh_chan_queued(const struct ssh_chan *ch)
{
    return ch->state == S_QUEUED;
}

uint64_t ssh_chan_started_us(const struct ssh_chan *ch)
{
    return ch->state == S_QUEUED ? 0 : ch->started_us;
}

bool ssh_conn_ready(const struct ssh_conn *c)
{
    return c->state == C_READY;
}

uint64_t ssh_conn_handshake_us(const struct ssh_conn *c)
{
    return c->handshake_us;
}

const char *ssh_conn_name(const struct ssh_conn *c)
{
    return c->name;
}

uint64_t ssh_conn_setup_budget_ms(const struct ssh_conn *c)
{
    return c->pool->connect_timeout_ms + c->pool->auth_timeout_ms;
}

const unsigned char *ssh_conn_hostkey(const struct ssh_conn *c, const char **type, size_t *len)
{
    if (c->hostkey == NULL)
        return NULL;
    *type = c->hostkey_type;
    *len = c->hostkey_len;
    return c->hostkey;
}
