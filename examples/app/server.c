/* The sample app's HTTP/1.1 server: an epoll loop over non-blocking sockets (see server.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "applog.h"
#include "deadline.h"
#include "reqparse.h"
#include "rng.h"
#include "server.h"
#include "stats.h"
#include "strbuf.h"

/* A connection's input: a head and what was pipelined after it. */
#define IN_CAP (2 * REQ_HEAD_MAX)
/* A request body is read and dropped (no path takes one); past this, 413 and close. */
#define BODY_MAX (1024 * 1024)
/* After an answer that closes the connection: how long what the client still sends is read
 * and dropped, so that closing with unread bytes does not reset the connection under the
 * answer (RFC 9112 9.6). */
#define LINGER_MS    2000
#define LINGER_BYTES (64 * 1024)
/* After EMFILE: accepting again this much later. */
#define ACCEPT_PAUSE_MS 100

enum cstate {
    C_READ,   /* waiting for (the rest of) a request */
    C_DELAY,  /* a request of / held by the latency fault */
    C_WRITE,  /* an answer being written */
    C_LINGER, /* closing: reading what still comes, then close */
};

struct conn {
    int fd;
    enum cstate state;
    uint32_t events; /* the epoll interest now */
    char *in;        /* IN_CAP bytes while something is buffered, else NULL */
    size_t in_len;
    struct reqparse rp;
    bool head_started; /* bytes of a head have come: the header timeout runs */
    int64_t head_start;
    uint64_t discard; /* bytes of a body still to drop */
    bool peer_closed; /* read gave EOF */
    size_t lingered;
    /* The request being answered (in_request): counted in n3app_in_flight. */
    bool in_request;
    enum stats_path path;
    enum req_method method;
    bool keep_alive;
    bool http10;
    bool fail; /* the error fault chose this request of / */
    int code;
    int64_t req_start_ns;
    struct strbuf out;
    size_t out_off;
    int64_t last_activity;
    struct deadline_item dl;
    bool dead; /* closed during this turn of the loop: freed at its end */
    struct conn *prev, *next;
};

struct server {
    const struct server_config *cfg;
    struct faults faults;
    int ep, listen_fd, sigfd;
    bool accept_paused;
    int64_t accept_resume; /* 0, or when to accept again after EMFILE */
    struct conn *conns;
    unsigned nconns;
    /* Closed connections, freed once the events of this turn are handled: an event further
     * down the list may be for one (the stop closes idle connections). */
    struct conn *dead;
    struct deadline_heap heap;
    struct stats stats;
    uint64_t rng_errors, rng_jitter;
    int64_t now; /* monotonic ms, at the last wakeup */
    char started[32];
    char date[64];
    time_t date_at;
    bool draining, stop;
    int64_t drain_deadline;
    unsigned long long served, cut;
};

/* epoll's data.ptr for what is not a connection. */
static char listen_tag, signal_tag;

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *http_date(struct server *s)
{
    time_t t = time(NULL);
    struct tm tm;

    if (t != s->date_at) {
        gmtime_r(&t, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_at = t;
    }
    return s->date;
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "HTTP Version Not Supported";
    }
}

/* ---- connections ----
 * The functions that can end a connection return false when they did: c is freed then. */

static void want(struct server *s, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events == events)
        return;
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

/* The connection's one deadline, by its state. */
static void arm(struct server *s, struct conn *c)
{
    int64_t when;

    switch (c->state) {
    case C_READ:
        when = c->head_started ? c->head_start + s->cfg->header_timeout_ms
                               : c->last_activity + s->cfg->idle_timeout_ms;
        break;
    case C_WRITE:
        when = c->last_activity + s->cfg->idle_timeout_ms;
        break;
    default:
        return; /* C_DELAY and C_LINGER set theirs when they start */
    }
    deadline_set(&s->heap, &c->dl, when);
}

static void listener_want(struct server *s, bool on);

static bool conn_close(struct server *s, struct conn *c)
{
    if (c->in_request) {
        s->stats.in_flight--;
        s->cut++;
    }
    deadline_clear(&s->heap, &c->dl);
    close(c->fd);
    c->fd = -1;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    s->stats.connections--;
    c->dead = true;
    c->next = s->dead;
    s->dead = c;
    if (s->accept_paused && s->accept_resume == 0)
        listener_want(s, true);
    return false;
}

/* Close after an answer: the write side now, the read side once the client has seen it. */
static bool conn_linger(struct server *s, struct conn *c)
{
    if (c->peer_closed || shutdown(c->fd, SHUT_WR) != 0)
        return conn_close(s, c);
    c->state = C_LINGER;
    c->lingered = 0;
    want(s, c, EPOLLIN);
    deadline_set(&s->heap, &c->dl, s->now + LINGER_MS);
    return true;
}

/* The whole answer is with the kernel: count it; then the next request, or the close. */
static bool conn_answered(struct server *s, struct conn *c)
{
    double secs = (double)(mono_ns() - c->req_start_ns) / 1e9;

    stats_record(&s->stats, c->path, c->code, secs);
    s->stats.in_flight--;
    s->served++;
    c->in_request = false;
    strbuf_reset(&c->out);
    c->out_off = 0;
    if (!c->keep_alive)
        return conn_linger(s, c);
    c->state = C_READ;
    c->last_activity = s->now;
    want(s, c, EPOLLIN);
    arm(s, c);
    return true;
}

static bool conn_flush(struct server *s, struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_activity = s->now;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want(s, c, EPOLLOUT);
            arm(s, c);
            return true;
        }
        return conn_close(s, c); /* the client went away: the request is cut */
    }
    return conn_answered(s, c);
}

/* Answer the current request: the head (Content-Length of the body, for HEAD too), the body. */
static bool respond(struct server *s, struct conn *c, int code, const char *type, const char *body,
                    size_t len, const char *extra)
{
    const char *connection = "";

    c->code = code;
    if (s->draining)
        c->keep_alive = false;
    if (!c->keep_alive)
        connection = "Connection: close\r\n";
    else if (c->http10)
        connection = "Connection: keep-alive\r\n";
    strbuf_reset(&c->out);
    c->out_off = 0;
    strbuf_addf(&c->out,
                "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: n3app\r\nContent-Type: %s\r\n"
                "Content-Length: %zu\r\nCache-Control: no-store\r\nX-N3-Version: %s\r\n"
                "X-N3-Slot: %s\r\n%s%s\r\n",
                code, reason_phrase(code), http_date(s), type, len, s->cfg->version, s->cfg->slot,
                extra != NULL ? extra : "", connection);
    if (c->method != REQ_HEAD)
        strbuf_add(&c->out, body, len);
    c->state = C_WRITE;
    deadline_clear(&s->heap, &c->dl);
    return conn_flush(s, c);
}

static bool respond_text(struct server *s, struct conn *c, int code, const char *text)
{
    return respond(s, c, code, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

/* The answer to a request that leaves the connection out of step (or a timed-out one): the
 * connection is closed after it. */
static bool respond_error(struct server *s, struct conn *c, int code, const char *why)
{
    char body[160];

    snprintf(body, sizeof body, "%s\n", why);
    c->keep_alive = false;
    return respond_text(s, c, code, body);
}

static bool answer_root(struct server *s, struct conn *c)
{
    char body[300];

    if (c->fail) {
        snprintf(body, sizeof body, "injected error (error_rate %g)\n", s->faults.error_rate);
        return respond_text(s, c, 500, body);
    }
    snprintf(body, sizeof body, "%s %s\n", s->cfg->version, s->cfg->slot);
    return respond_text(s, c, 200, body);
}

static bool answer_health(struct server *s, struct conn *c)
{
    char body[600];

    if (s->draining)
        return respond_text(s, c, 503, "stopping\n");
    if (s->faults.health_fail) {
        snprintf(body, sizeof body, "unhealthy: health_fail is set in %s\n",
                 s->cfg->faults_path != NULL ? s->cfg->faults_path : "the faults file");
        return respond_text(s, c, 503, body);
    }
    return respond_text(s, c, 200, "ok\n");
}

static bool answer_version(struct server *s, struct conn *c)
{
    char body[400];

    /* The version and slot are names of [A-Za-z0-9._+-] (main.c checks): nothing to escape. */
    snprintf(body, sizeof body,
             "{\"version\":\"%s\",\"slot\":\"%s\",\"pid\":%d,\"started\":\"%s\"}\n",
             s->cfg->version, s->cfg->slot, (int)getpid(), s->started);
    return respond(s, c, 200, "application/json", body, strlen(body), NULL);
}

static bool answer_metrics(struct server *s, struct conn *c)
{
    struct strbuf text;
    bool alive;

    strbuf_init(&text);
    stats_write(&s->stats, &text);
    alive =
        respond(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", text.data, text.len, NULL);
    strbuf_done(&text);
    return alive;
}

/* Take from a parsed head what answering needs (its path points into the buffer, which is
 * reused once the head is consumed). */
static void take_request(struct conn *c, const struct request *req)
{
    c->path = stats_path_of(req->path, req->path_len);
    c->method = req->method;
    c->keep_alive = req->keep_alive;
    c->http10 = req->minor == 0;
    c->discard = req->content_length;
}

static bool dispatch(struct server *s, struct conn *c)
{
    unsigned delay;

    if (c->discard > BODY_MAX) {
        c->discard = 0;
        c->in_len = 0;
        return respond_error(s, c, 413, "request bodies are not taken here");
    }
    if (c->method == REQ_OTHER)
        return respond(s, c, 405, "text/plain; charset=utf-8", "only GET and HEAD\n",
                       strlen("only GET and HEAD\n"), "Allow: GET, HEAD\r\n");
    switch (c->path) {
    case PATH_ROOT:
        /* One draw of each stream a request, whatever the other decides: with --seed, the
         * n-th request of / fails or not the same way in every run. */
        c->fail = rng_unit(&s->rng_errors) < s->faults.error_rate;
        delay = s->faults.latency_ms;
        if (s->faults.jitter_ms > 0)
            delay += (unsigned)(rng_next(&s->rng_jitter) % (s->faults.jitter_ms + 1ULL));
        if (delay == 0)
            return answer_root(s, c);
        c->state = C_DELAY;
        want(s, c, 0);
        /* From now, rounded up (s->now is the wakeup's, rounded down): the answer is never
         * less late than the fault says. */
        deadline_set(&s->heap, &c->dl, (mono_ns() + 999999) / 1000000 + delay);
        return true;
    case PATH_HEALTH:
        return answer_health(s, c);
    case PATH_VERSION:
        return answer_version(s, c);
    case PATH_METRICS:
        return answer_metrics(s, c);
    default:
        return respond_text(s, c, 404, "not found\n");
    }
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static void begin_request(struct server *s, struct conn *c)
{
    c->in_request = true;
    c->fail = false;
    c->path = PATH_OTHER;
    c->method = REQ_GET;
    c->http10 = false;
    c->req_start_ns = mono_ns();
    s->stats.in_flight++;
    memset(&c->rp, 0, sizeof c->rp);
    c->head_started = false;
}

/* Answer what the buffer holds, one request at a time (pipelined ones wait their turn). */
static bool conn_process(struct server *s, struct conn *c)
{
    struct request req;
    int r;

    while (c->state == C_READ) {
        if (c->discard > 0 && c->in_len > 0) {
            size_t n = c->discard < c->in_len ? (size_t)c->discard : c->in_len;
            consume(c, n);
            c->discard -= n;
        }
        if (c->discard > 0 || c->in_len == 0)
            break;
        if (!c->head_started) {
            c->head_started = true;
            c->head_start = s->now;
        }
        r = reqparse_feed(&c->rp, c->in, c->in_len, &req);
        if (r == REQ_INCOMPLETE) {
            if (c->peer_closed)
                return conn_close(s, c); /* the client gave up in the middle of a head */
            arm(s, c);
            return true;
        }
        begin_request(s, c);
        if (r == REQ_ERROR) {
            c->in_len = 0; /* nothing after a bad head can be framed */
            return respond_error(s, c, req.status, req.why);
        }
        take_request(c, &req);
        consume(c, req.head_len);
        if (!dispatch(s, c))
            return false;
    }
    if (c->state != C_READ)
        return true;
    if (c->peer_closed && c->discard == 0)
        return conn_close(s, c);
    if (c->in_len == 0) {
        free(c->in); /* an idle connection holds no buffer */
        c->in = NULL;
    }
    if (s->draining && c->in_len == 0 && c->discard == 0 && !c->head_started)
        return conn_close(s, c); /* idle while stopping */
    arm(s, c);
    return true;
}

/* Read what has come (C_READ), and answer it. */
static bool conn_read(struct server *s, struct conn *c)
{
    for (;;) {
        ssize_t n;

        if (c->in == NULL) {
            c->in = malloc(IN_CAP);
            if (c->in == NULL) {
                fputs("n3app: out of memory\n", stderr);
                abort();
            }
        }
        if (c->in_len == IN_CAP)
            break; /* a whole head or more is there: answer it first */
        n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            c->last_activity = s->now;
            continue;
        }
        if (n == 0) {
            c->peer_closed = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        return conn_close(s, c);
    }
    return conn_process(s, c);
}

/* Closing: drop what still comes until EOF, the bound, or the deadline. */
static bool conn_drop(struct server *s, struct conn *c)
{
    char sink[4096];

    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0) {
            c->lingered += (size_t)n;
            if (c->lingered > LINGER_BYTES)
                return conn_close(s, c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        return conn_close(s, c);
    }
}

static void conn_free_dead(struct server *s)
{
    while (s->dead != NULL) {
        struct conn *c = s->dead;
        s->dead = c->next;
        strbuf_done(&c->out);
        free(c->in);
        free(c);
    }
}

static void conn_event(struct server *s, struct conn *c, uint32_t events)
{
    if (c->dead)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        if (c->state != C_READ || !(events & EPOLLIN)) {
            conn_close(s, c);
            return;
        }
    }
    switch (c->state) {
    case C_READ:
        if (events & EPOLLIN)
            conn_read(s, c);
        break;
    case C_WRITE:
        if ((events & EPOLLOUT) && conn_flush(s, c) && c->state == C_READ)
            conn_process(s, c);
        break;
    case C_LINGER:
        conn_drop(s, c);
        break;
    case C_DELAY:
        break;
    }
}

static void conn_timeout(struct server *s, struct conn *c)
{
    deadline_clear(&s->heap, &c->dl);
    switch (c->state) {
    case C_DELAY:
        if (answer_root(s, c) && c->state == C_READ)
            conn_process(s, c);
        return;
    case C_READ:
        if (c->head_started && c->in_len > 0) {
            begin_request(s, c);
            c->in_len = 0;
            respond_error(s, c, 408, "the request head did not come in time");
            return;
        }
        conn_close(s, c); /* idle, or a body that stopped coming */
        return;
    default:
        conn_close(s, c); /* an answer the client does not read, or the end of a linger */
        return;
    }
}

/* ---- the listener ---- */

static void listener_want(struct server *s, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &listen_tag};

    if (s->listen_fd < 0)
        return;
    epoll_ctl(s->ep, EPOLL_CTL_MOD, s->listen_fd, &ev);
    s->accept_paused = !on;
    s->accept_resume = 0;
}

static void accept_all(struct server *s)
{
    while (s->listen_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN};
        struct conn *c;
        int one = 1, fd;

        if (s->nconns >= s->cfg->max_connections) {
            listener_want(s, false); /* again when one closes */
            return;
        }
        fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                listener_want(s, false);
                s->accept_resume = s->now + ACCEPT_PAUSE_MS;
            }
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        if (c == NULL) {
            fputs("n3app: out of memory\n", stderr);
            abort();
        }
        c->fd = fd;
        c->state = C_READ;
        c->events = EPOLLIN;
        c->last_activity = s->now;
        strbuf_init(&c->out);
        deadline_item_init(&c->dl);
        ev.data.ptr = c;
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            strbuf_done(&c->out);
            free(c);
            close(fd);
            continue;
        }
        c->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        s->stats.connections++;
        arm(s, c);
    }
}

static int listen_on(struct server *s, char *where, size_t wlen)
{
    const struct server_config *cfg = s->cfg;
    struct addrinfo hints = {0}, *ai = NULL;
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    char port[16], host[NI_MAXHOST], serv[NI_MAXSERV];
    int fd, one = 1, rc, err;

    snprintf(port, sizeof port, "%u", cfg->port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    rc = getaddrinfo(cfg->bind_addr, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "n3app: --bind %s: not a numeric address: %s\n", cfg->bind_addr,
                gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "n3app: cannot make a socket: %s\n", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    /* SO_REUSEADDR lets a restart bind past the old connections' TIME_WAIT; it does not let
     * two processes listen on one port (that would be SO_REUSEPORT, never set here). */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        err = errno;
        if (err == EADDRINUSE)
            fprintf(stderr,
                    "n3app: cannot listen on %s port %u: the port is in use (another process "
                    "listens there); give another --port or stop that process\n",
                    cfg->bind_addr, cfg->port);
        else if (err == EACCES)
            fprintf(stderr,
                    "n3app: cannot listen on %s port %u: permission denied (ports below 1024 "
                    "need privileges)\n",
                    cfg->bind_addr, cfg->port);
        else
            fprintf(stderr, "n3app: cannot listen on %s port %u: %s\n", cfg->bind_addr, cfg->port,
                    strerror(err));
        close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    if (getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
        getnameinfo((struct sockaddr *)&sa, salen, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(where, wlen, "%s:%u", cfg->bind_addr, cfg->port);
    else if (sa.ss_family == AF_INET6)
        snprintf(where, wlen, "[%s]:%s", host, serv);
    else
        snprintf(where, wlen, "%s:%s", host, serv);
    s->listen_fd = fd;
    return 0;
}

/* ---- signals and the stop ---- */

static void reload_faults(struct server *s)
{
    struct faults f;
    char err[600], desc[256];

    if (s->cfg->faults_path == NULL) {
        applog_line("HUP: no faults file to read (none was given and the release has none)");
        return;
    }
    if (faults_load(s->cfg->faults_path, s->cfg->faults_explicit, &f, err, sizeof err) != 0) {
        faults_describe(&s->faults, desc, sizeof desc);
        applog_line("HUP: faults not reloaded: %s; still in force: %s", err, desc);
        return;
    }
    s->faults = f;
    faults_describe(&f, desc, sizeof desc);
    applog_line("HUP: faults reloaded from %s: %s", s->cfg->faults_path, desc);
}

static void begin_stop(struct server *s, const char *sig)
{
    struct conn *c, *next;
    long inflight;

    if (s->draining) {
        s->stop = true; /* a second signal: no more waiting */
        applog_line("%s again: stopping now", sig);
        return;
    }
    /* What the kernel has accepted already is taken first: those clients were let in. */
    accept_all(s);
    close(s->listen_fd);
    s->listen_fd = -1;
    s->draining = true;
    s->drain_deadline = s->now + s->cfg->grace_ms;
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == C_READ)
            conn_read(s, c); /* a request that has arrived is in flight; idle ones close */
    }
    inflight = s->stats.in_flight;
    applog_line("stopping on %s: not listening any more; %ld request%s in flight, %u "
                "connection%s open; waiting up to %.3gs",
                sig, inflight, inflight == 1 ? "" : "s", s->nconns, s->nconns == 1 ? "" : "s",
                (double)s->cfg->grace_ms / 1000.0);
}

static void on_signal(struct server *s)
{
    struct signalfd_siginfo si;

    while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP)
            reload_faults(s);
        else
            begin_stop(s, si.ssi_signo == SIGTERM ? "TERM" : "INT");
    }
}

/* ---- the loop ---- */

static int next_timeout(struct server *s)
{
    struct deadline_item *first = deadline_first(&s->heap);
    int64_t when = INT64_MAX;

    if (first != NULL)
        when = first->when;
    if (s->draining && s->drain_deadline < when)
        when = s->drain_deadline;
    if (s->accept_resume != 0 && s->accept_resume < when)
        when = s->accept_resume;
    if (when == INT64_MAX)
        return -1;
    if (when <= s->now)
        return 0;
    return when - s->now > 60000 ? 60000 : (int)(when - s->now);
}

#define conn_of(it) ((struct conn *)((char *)(it)-offsetof(struct conn, dl)))

static void run_deadlines(struct server *s)
{
    struct deadline_item *it;

    while ((it = deadline_first(&s->heap)) != NULL && it->when <= s->now)
        conn_timeout(s, conn_of(it));
    if (s->accept_resume != 0 && s->accept_resume <= s->now)
        listener_want(s, true);
}

static void serve(struct server *s)
{
    struct epoll_event evs[256];

    while (!s->stop && !(s->draining && s->nconns == 0)) {
        int n = epoll_wait(s->ep, evs, 256, next_timeout(s)), i;

        s->now = mono_ns() / 1000000;
        if (n < 0 && errno != EINTR) {
            applog_line("epoll_wait: %s; stopping", strerror(errno));
            break;
        }
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listen_tag)
                accept_all(s);
            else if (evs[i].data.ptr == &signal_tag)
                on_signal(s);
            else
                conn_event(s, evs[i].data.ptr, evs[i].events);
            if (s->stop)
                break;
        }
        run_deadlines(s);
        conn_free_dead(s);
        if (s->draining && s->now >= s->drain_deadline)
            s->stop = true;
    }
}

int server_run(const struct server_config *cfg, int sigfd)
{
    struct server s = {0};
    struct epoll_event ev = {.events = EPOLLIN};
    char where[NI_MAXHOST + NI_MAXSERV + 4], desc[256];
    time_t st = (time_t)cfg->start_time;
    struct tm tm;

    s.cfg = cfg;
    s.faults = cfg->faults;
    s.sigfd = sigfd;
    s.listen_fd = -1;
    s.rng_errors = cfg->seed;
    s.rng_jitter = cfg->seed ^ 0x6a09e667f3bcc908ULL; /* another stream from the same seed */
    s.stats.start_time = cfg->start_time;
    s.stats.version = cfg->version;
    s.stats.slot = cfg->slot;
    gmtime_r(&st, &tm);
    strftime(s.started, sizeof s.started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    deadline_heap_init(&s.heap);
    if (listen_on(&s, where, sizeof where) != 0)
        return 1;
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (s.ep < 0) {
        fprintf(stderr, "n3app: epoll_create1: %s\n", strerror(errno));
        close(s.listen_fd);
        return 1;
    }
    ev.data.ptr = &listen_tag;
    epoll_ctl(s.ep, EPOLL_CTL_ADD, s.listen_fd, &ev);
    ev.data.ptr = &signal_tag;
    epoll_ctl(s.ep, EPOLL_CTL_ADD, sigfd, &ev);
    s.now = mono_ns() / 1000000;
    faults_describe(&s.faults, desc, sizeof desc);
    applog_line("listening on %s: version %s, slot %s, faults %s", where, cfg->version, cfg->slot,
                desc);

    serve(&s);

    while (s.conns != NULL)
        conn_close(&s, s.conns);
    conn_free_dead(&s);
    if (s.listen_fd >= 0)
        close(s.listen_fd);
    close(s.ep);
    deadline_heap_done(&s.heap);
    applog_line("stopped: %llu request%s answered since the start, %llu not finished (the "
                "client went away, or the stop's wait ended)",
                s.served, s.served == 1 ? "" : "s", s.cut);
    return 0;
}
