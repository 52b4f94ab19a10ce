/*
 * The haproxy router: HAProxy's runtime API, on its admin socket (a unix socket, or a TCP
 * address), over one connection kept open in prompt mode, so that a change costs a round
 * trip and not a process. Weights are set with `set weight`, a drain with `set server ...
 * state drain`, and everything is read back from `show servers state` and `show stat`. After a
 * change the server state is written to state_file (HAProxy's server-state-file), so that a
 * reload or a restart keeps the weights n3ctl set.
 *
 * HAProxy closes a connection idle for its `stats timeout` (10 s by default): a command that
 * finds its connection gone before any answer came goes again on a new one, once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"

#define PROMPT     "\n> "
#define ANSWER_MAX (4u * 1024u * 1024u) /* a show stat of a big HAProxy is some KiB */
#define CONNECT_MS 5000u
#define ANSWER_MS  10000u
/* srv_admin_state bits (HAProxy's SRV_ADMF_*): in maintenance, or draining. */
#define ADMIN_MAINT 0x67 /* FMAINT IMAINT CMAINT RMAINT HMAINT */
#define ADMIN_DRAIN 0x18 /* FDRAIN IDRAIN */

static const char *const keys[] = {"socket", "address", "backend", "server", "state_file", NULL};

struct cmd;

struct hap {
    struct loop *loop;
    char *socket, *host;
    unsigned port;
    char *backend;
    char *state_file;
    struct router_server *servers;
    size_t n;
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } h;
    uv_connect_t connect_req;
    bool open, connecting, closing, prompted;
    struct buf in;
    struct cmd *head, *tail; /* queued; the head is in flight once sent */
    struct loop_timer *timer;
    bool closed_for_good;
    /* On a load balancer reached over SSH (the router's "on"): the admin socket's TCP address
     * there, through a bridge (h->socket is the bridge's unix socket). */
    struct transport *lb;
    char *where;              /* for messages: "127.0.0.1:9999 on lb1, through SSH" */
    const char *bridge_error; /* why the bridge's last tunnel failed, "" when none */
    struct op *writing;       /* ops writing the state on the load balancer */
};

/* Where the admin socket is, for messages. */
static const char *where(const struct hap *h)
{
    return h->where != NULL ? h->where : h->socket != NULL ? h->socket : h->host;
}

typedef void (*answer_fn)(struct hap *h, void *arg, int rc, const char *text, size_t len,
                          const char *error);

struct cmd {
    char *text;
    unsigned parts; /* commands in text, separated by ';': each answer ends with a prompt */
    unsigned answered;
    struct buf answer; /* the parts' answers so far */
    answer_fn done;
    void *arg;
    bool sent, retried;
    struct cmd *next;
};

static void cmd_free(struct cmd *c)
{
    buf_done(&c->answer);
    free(c->text);
    free(c);
}

/* ---- n3.json ---- */

static int check_config(const struct cfg *c, const cJSON *r, struct err *err)
{
    const char *socket = NULL, *address = NULL, *backend = NULL, *server = NULL, *state = NULL;

    if (cfg_get_string(c, r, "socket", false, &socket, err) != 0 ||
        cfg_get_string(c, r, "address", false, &address, err) != 0 ||
        cfg_get_string(c, r, "backend", true, &backend, err) != 0 ||
        cfg_get_string(c, r, "server", false, &server, err) != 0 ||
        cfg_get_string(c, r, "state_file", false, &state, err) != 0)
        return -1;
    if ((socket == NULL) == (address == NULL))
        return cfg_error(c, err, r,
                         "give the admin socket: \"socket\" (a unix socket's path) or "
                         "\"address\" (HOST:PORT of a stats socket on TCP), one of them");
    if (socket != NULL && socket[0] != '/')
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "socket"),
                         "an absolute path (\"/run/haproxy/admin.sock\")");
    if (address != NULL && strrchr(address, ':') == NULL)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "address"),
                         "HOST:PORT (\"127.0.0.1:9999\")");
    if (strpbrk(backend, " \t\n/;") != NULL)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "backend"),
                         "a backend's name has no spaces, '/' or ';'");
    if (server != NULL && strpbrk(server, " \t\n/;") != NULL)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "server"),
                         "a server's name has no spaces, '/' or ';' ({target} and {slot} are "
                         "filled in)");
    if (state != NULL && state[0] != '/')
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "state_file"),
                         "an absolute path (HAProxy's server-state-file)");
    if (socket != NULL && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "on"))) {
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "on"), "transport");

        if (!cJSON_IsString(tr) || strcmp(tr->valuestring, "local") != 0)
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "socket"),
                             "HAProxy on another host is reached through its SSH connection, "
                             "which carries TCP, not a unix socket: give its admin socket a TCP "
                             "address on that host's loopback (\"address\": \"127.0.0.1:9999\", "
                             "and in haproxy.cfg: stats socket ipv4@127.0.0.1:9999 level admin)");
    }
    return 0;
}

/* ---- the connection ---- */

static uv_stream_t *stream(struct hap *h)
{
    return (uv_stream_t *)&h->h;
}

static void pump(struct hap *h);

static void fail_all(struct hap *h, const char *why)
{
    struct cmd *c;

    while ((c = h->head) != NULL) {
        h->head = c->next;
        if (h->head == NULL)
            h->tail = NULL;
        c->done(h, c->arg, -1, NULL, 0, why);
        cmd_free(c);
    }
}

static void closed_cb(uv_handle_t *handle)
{
    struct hap *h = handle->data;

    h->closing = false;
    if (h->closed_for_good) {
        buf_done(&h->in);
        free(h);
        return;
    }
    /* A command waiting goes on a new connection. */
    if (h->head != NULL)
        pump(h);
}

/* The connection ended (why). The command in flight goes again, once, if nothing of its answer
 * came and it has not gone again already; the others stay queued. */
static void drop(struct hap *h, const char *why)
{
    struct cmd *c = h->head;

    loop_timer_stop(h->timer);
    if (h->open || h->connecting) {
        h->open = h->connecting = false;
        h->closing = true;
        uv_close((uv_handle_t *)&h->h, closed_cb);
    }
    h->prompted = false;
    if (c != NULL && c->sent) {
        if (!c->retried && h->in.len == 0 && c->answered == 0) {
            c->sent = false;
            c->retried = true;
        } else {
            h->head = c->next;
            if (h->head == NULL)
                h->tail = NULL;
            c->done(h, c->arg, -1, NULL, 0, why);
            cmd_free(c);
        }
    }
    buf_reset(&h->in);
    /* A connection that failed right away: the rest fail too, rather than loop. */
    if (h->head != NULL && h->head->retried && !h->head->sent && why != NULL &&
        strstr(why, "cannot connect") != NULL)
        fail_all(h, why);
}

static void timer_cb(void *arg)
{
    struct hap *h = arg;
    char why[256];

    snprintf(why, sizeof why, "HAProxy's admin socket (%s) did not answer within %us", where(h),
             (h->open ? ANSWER_MS : CONNECT_MS) / 1000u);
    if (h->head != NULL)
        h->head->retried = true; /* no second try for what timed out */
    drop(h, why);
    fail_all(h, why);
}

static void written(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows as the connection's end */
    free(w->data);
    free(w);
}

static void send_text(struct hap *h, const char *text)
{
    uv_write_t *w = xcalloc(1, sizeof *w);
    size_t len = strlen(text);
    char *copy = xmalloc(len + 1);
    uv_buf_t b;

    memcpy(copy, text, len);
    copy[len] = '\n';
    w->data = copy;
    b = uv_buf_init(copy, (unsigned)len + 1);
    if (uv_write(w, stream(h), &b, 1, written) != 0) {
        free(copy);
        free(w);
    }
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *b)
{
    (void)handle;
    b->base = xmalloc(suggested);
    b->len = suggested;
}

/* Everything up to the prompt is the answer of the command in flight. */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct hap *h = s->data;
    size_t plen = strlen(PROMPT);

    if (n > 0)
        buf_add(&h->in, b->base, (size_t)n);
    free(b->base);
    if (n < 0) {
        char why[600];

        if (n == UV_EOF && h->bridge_error != NULL && h->bridge_error[0] != '\0') {
            /* The tunnel could not be opened: no second try that would wait on the same. */
            snprintf(why, sizeof why, "cannot connect to HAProxy's admin socket %s: %s", where(h),
                     h->bridge_error);
            if (h->head != NULL)
                h->head->retried = true;
            drop(h, why);
            fail_all(h, why);
            return;
        }
        snprintf(why, sizeof why, "%s",
                 n == UV_EOF ? "HAProxy closed the admin connection" : uv_strerror((int)n));
        drop(h, why);
        if (h->head != NULL && !h->closing)
            pump(h);
        return;
    }
    if (h->in.len > ANSWER_MAX) {
        drop(h, "HAProxy's answer is too long");
        return;
    }
    while (h->in.len >= plen) {
        /* The prompt after an answer: "\n> " (none of the answers of the commands this file
         * sends has it inside). */
        char *end = memmem(h->in.data, h->in.len, PROMPT, plen);

        if (end == NULL)
            return;
        {
            size_t len = (size_t)(end - h->in.data);
            char *text = xmalloc(len + 1);

            memcpy(text, h->in.data, len);
            text[len] = '\0';
            memmove(h->in.data, end + plen, h->in.len - len - plen);
            h->in.len -= len + plen;
            loop_timer_stop(h->timer);
            if (!h->prompted) {
                h->prompted = true; /* the answer to "prompt" itself */
            } else if (h->head != NULL && h->head->sent) {
                struct cmd *c = h->head;

                /* Answers end with an empty line: it is not part of what was said. */
                while (len > 0 && text[len - 1] == '\n')
                    text[--len] = '\0';
                if (len > 0)
                    buf_addf(&c->answer, "%s%s", c->answer.len ? "\n" : "", text);
                if (++c->answered == c->parts) {
                    h->head = c->next;
                    if (h->head == NULL)
                        h->tail = NULL;
                    buf_addc(&c->answer, '\0');
                    c->answer.len--;
                    c->done(h, c->arg, 0, c->answer.data, c->answer.len, NULL);
                    cmd_free(c);
                }
            }
            free(text);
        }
    }
    pump(h);
}

static void connected(uv_connect_t *req, int status)
{
    struct hap *h = req->data;
    char why[300];

    h->connecting = false;
    if (status != 0) {
        snprintf(why, sizeof why, "cannot connect to HAProxy's admin socket %s: %s", where(h),
                 uv_strerror(status));
        loop_timer_stop(h->timer);
        h->closing = true;
        uv_close((uv_handle_t *)&h->h, closed_cb);
        fail_all(h, why);
        return;
    }
    h->open = true;
    uv_read_start(stream(h), alloc_cb, read_cb);
    /* Interactive mode: the connection stays open, each answer ends with the prompt. */
    send_text(h, "prompt");
    loop_timer_start(h->timer, ANSWER_MS);
}

static void start_connect(struct hap *h)
{
    int rc;

    h->connecting = true;
    h->prompted = false;
    buf_reset(&h->in);
    h->connect_req.data = h;
    if (h->socket != NULL) {
        uv_pipe_init(loop_uv(h->loop), &h->h.pipe, 0);
        h->h.pipe.data = h;
        uv_pipe_connect(&h->connect_req, &h->h.pipe, h->socket, connected);
        rc = 0;
    } else {
        struct sockaddr_storage a;

        uv_tcp_init(loop_uv(h->loop), &h->h.tcp);
        h->h.tcp.data = h;
        rc = strchr(h->host, ':') != NULL
                 ? uv_ip6_addr(h->host, (int)h->port, (struct sockaddr_in6 *)&a)
                 : uv_ip4_addr(h->host, (int)h->port, (struct sockaddr_in *)&a);
        if (rc == 0)
            rc = uv_tcp_connect(&h->connect_req, &h->h.tcp, (struct sockaddr *)&a, connected);
        if (rc != 0) {
            connected(&h->connect_req, rc);
            return;
        }
    }
    loop_timer_start(h->timer, CONNECT_MS);
}

/* Send the next command when the connection is ready for it. */
static void pump(struct hap *h)
{
    if (h->head == NULL || h->closing || h->closed_for_good)
        return;
    if (!h->open && !h->connecting) {
        start_connect(h);
        return;
    }
    if (!h->open || !h->prompted || h->head->sent)
        return;
    h->head->sent = true;
    send_text(h, h->head->text);
    loop_timer_start(h->timer, ANSWER_MS);
}

static void command(struct hap *h, const char *text, answer_fn done, void *arg)
{
    struct cmd *c = xcalloc(1, sizeof *c);

    c->text = xstrdup(text);
    buf_init(&c->answer);
    c->parts = 1;
    for (; *text != '\0'; text++)
        c->parts += *text == ';';
    c->done = done;
    c->arg = arg;
    if (h->tail != NULL)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
    pump(h);
}

/* ---- reading: show servers state, show stat ---- */

/* The value of column `name` in a header line of names separated by sep ("# a b c"). */
static int column(const char *header, char sep, const char *name)
{
    const char *p = header;
    int i = 0;
    size_t n = strlen(name);

    while (*p == '#' || *p == ' ')
        p++;
    for (;;) {
        const char *end = strchr(p, sep);
        size_t len = end != NULL ? (size_t)(end - p) : strcspn(p, "\n");

        if (len == n && strncmp(p, name, n) == 0)
            return i;
        if (end == NULL)
            return -1;
        p = end + 1;
        i++;
    }
}

/* Field i of a line of fields separated by sep, into out. */
static bool field(const char *line, char sep, int i, char *out, size_t len)
{
    const char *p = line;
    size_t n;

    for (; i > 0; i--) {
        p = strchr(p, sep);
        if (p == NULL)
            return false;
        p++;
    }
    n = strcspn(p, sep == ' ' ? " \n" : ",\n");
    snprintf(out, len, "%.*s", (int)n, p);
    return true;
}

static struct router_server_view *find_server(struct hap *h, struct router_view *v,
                                              const char *name)
{
    size_t i;

    for (i = 0; i < h->n; i++) {
        if (strcmp(h->servers[i].name, name) == 0)
            return &v->servers[i];
    }
    return NULL;
}

/* `show servers state BACKEND`: "1", "# be_id be_name srv_id srv_name srv_addr srv_op_state
 * srv_admin_state srv_uweight ...", then a line a server. -1 when it is not that. */
static int parse_state(struct hap *h, const char *text, struct router_view *v, char *why,
                       size_t len)
{
    const char *line = text, *header = NULL;
    int c_name = -1, c_op = -1, c_admin = -1, c_weight = -1;

    for (; *line != '\0'; line = strchr(line, '\n') != NULL ? strchr(line, '\n') + 1 : "") {
        char name[ROUTER_NAME_MAX], op[16], admin[16], weight[16];
        struct router_server_view *s;

        if (line[0] == '#') {
            header = line;
            c_name = column(header, ' ', "srv_name");
            c_op = column(header, ' ', "srv_op_state");
            c_admin = column(header, ' ', "srv_admin_state");
            c_weight = column(header, ' ', "srv_uweight");
            continue;
        }
        if (header == NULL || line[0] == '\n' || (line[0] == '1' && line[1] == '\n'))
            continue;
        if (c_name < 0 || c_op < 0 || c_admin < 0 || c_weight < 0) {
            snprintf(why, len,
                     "HAProxy's show servers state has no srv_name, srv_op_state, "
                     "srv_admin_state or srv_uweight column");
            return -1;
        }
        if (!field(line, ' ', c_name, name, sizeof name) ||
            !field(line, ' ', c_op, op, sizeof op) ||
            !field(line, ' ', c_admin, admin, sizeof admin) ||
            !field(line, ' ', c_weight, weight, sizeof weight))
            continue;
        s = find_server(h, v, name);
        if (s == NULL)
            continue;
        {
            unsigned a = (unsigned)strtoul(admin, NULL, 10);

            s->found = true;
            s->weight = (unsigned)strtoul(weight, NULL, 10);
            snprintf(s->state, sizeof s->state, "%s",
                     (a & ADMIN_MAINT)   ? "maint"
                     : (a & ADMIN_DRAIN) ? "drain"
                                         : "ready");
            s->up = strcmp(op, "2") == 0;
        }
    }
    if (header == NULL) {
        snprintf(why, len, "HAProxy said \"%.160s\" to show servers state %.60s", text, h->backend);
        return -1;
    }
    return 0;
}

/* `show stat BACKEND 4 -1`: CSV with a "# pxname,svname,..." header; the servers' scur, stot
 * and hrsp_5xx. */
static void parse_stat(struct hap *h, const char *text, struct router_view *v)
{
    const char *line = text, *header = NULL;
    int c_sv = -1, c_scur = -1, c_stot = -1, c_5xx = -1;

    for (; *line != '\0'; line = strchr(line, '\n') != NULL ? strchr(line, '\n') + 1 : "") {
        char name[ROUTER_NAME_MAX], val[32];
        struct router_server_view *s;

        if (line[0] == '#') {
            header = line;
            c_sv = column(header, ',', "svname");
            c_scur = column(header, ',', "scur");
            c_stot = column(header, ',', "stot");
            c_5xx = column(header, ',', "hrsp_5xx");
            continue;
        }
        if (header == NULL || c_sv < 0 || !field(line, ',', c_sv, name, sizeof name))
            continue;
        s = find_server(h, v, name);
        if (s == NULL)
            continue;
        if (c_scur >= 0 && field(line, ',', c_scur, val, sizeof val))
            s->sessions = strtoull(val, NULL, 10);
        if (c_stot >= 0 && field(line, ',', c_stot, val, sizeof val))
            s->requests = strtoull(val, NULL, 10);
        if (c_5xx >= 0 && field(line, ',', c_5xx, val, sizeof val))
            s->errors = strtoull(val, NULL, 10);
    }
}

/* ---- operations: each a little state machine of commands ---- */

enum op_kind { OP_READ, OP_SET, OP_DRAIN };

struct op {
    struct hap *h;
    enum op_kind kind;
    unsigned *weights;
    size_t drain;
    router_fn done;
    void *arg;
    struct router_view v;
    int step;
    char error[512];
    struct op *wnext; /* writing the state on the load balancer */
};

static void op_finish(struct op *o, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_finish(struct op *o, int rc, const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    msg[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    o->done(o->arg, rc, rc == 0 ? &o->v : NULL, msg[0] ? msg : NULL);
    free(o->v.servers);
    free(o->weights);
    free(o);
}

static void op_step(struct hap *h, void *arg, int rc, const char *text, size_t len,
                    const char *error);

static void op_next(struct op *o)
{
    struct hap *h = o->h;
    struct buf cmd;
    size_t i;
    int pass;

    buf_init(&cmd);
    switch (o->step) {
    case 0: /* set: the weights, and a drained server that gets some taken out of the drain */
        /* Those that gain first, then those that lose: HAProxy runs the commands of a line one
         * after the other while its other threads serve requests, and between a "blue 0" and a
         * "green 100" every weight would be 0 (a 503 for whoever comes then). */
        for (pass = 0; pass < 2; pass++) {
            for (i = 0; i < h->n; i++) {
                bool gains = !o->v.servers[i].found || o->weights[i] > o->v.servers[i].weight ||
                             (o->weights[i] > 0 && strcmp(o->v.servers[i].state, "drain") == 0);

                if (gains != (pass == 0))
                    continue;
                if (o->weights[i] > 0 && strcmp(o->v.servers[i].state, "drain") == 0)
                    buf_addf(&cmd, "%sset server %s/%s state ready", cmd.len ? "; " : "",
                             h->backend, h->servers[i].name);
                buf_addf(&cmd, "%sset weight %s/%s %u", cmd.len ? "; " : "", h->backend,
                         h->servers[i].name, o->weights[i]);
            }
        }
        break;
    case 1: /* drain */
        buf_addf(&cmd, "set server %s/%s state drain", h->backend, h->servers[o->drain].name);
        break;
    case 2: /* read back */
        buf_addf(&cmd, "show servers state %s", h->backend);
        break;
    case 3:
        buf_addf(&cmd, "show stat %s 4 -1", h->backend);
        break;
    case 4: /* keep it over a reload */
        buf_adds(&cmd, "show servers state");
        break;
    }
    command(h, cmd.data, op_step, o);
    buf_done(&cmd);
}

/* The state written on the load balancer (through its transport, atomically). */
static void state_written(void *arg, const struct transport_result *r)
{
    struct op *o = arg;
    struct op **pp;

    if (o->h == NULL) { /* the router was closed meanwhile: its caller has heard */
        free(o->v.servers);
        free(o->weights);
        free(o);
        return;
    }
    for (pp = &o->h->writing; *pp != NULL; pp = &(*pp)->wnext) {
        if (*pp == o) {
            *pp = o->wnext;
            break;
        }
    }
    if (r->status != TRANSPORT_OK || r->exit_code != 0)
        op_finish(o, -1,
                  "the weights are set, but HAProxy's server state could not be written to %s "
                  "on %s (%s): a reload would lose them",
                  o->h->state_file, transport_name(o->h->lb),
                  r->status != TRANSPORT_OK ? r->msg : "the command failed");
    else
        op_finish(o, 0, NULL);
}

static void write_state_file(struct op *o, const char *text, size_t len)
{
    struct hap *h = o->h;
    char *tmp = xasprintf("%s.n3tmp.%d", h->state_file, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;

    if (ok) {
        ok = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
        ok = close(fd) == 0 && ok;
    }
    if (ok)
        ok = rename(tmp, h->state_file) == 0;
    if (!ok) {
        snprintf(o->error, sizeof o->error,
                 "the weights are set, but HAProxy's server state could not be written to %s "
                 "(%s): a reload would lose them",
                 h->state_file, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
}

static void op_step(struct hap *h, void *arg, int rc, const char *text, size_t len,
                    const char *error)
{
    struct op *o = arg;

    (void)h;
    if (rc != 0) {
        op_finish(o, -1, "%s", error);
        return;
    }
    switch (o->step) {
    case 0:
    case 1:
        /* Setting says nothing when it worked ("No such server.", ... when not). */
        if (len > 0) {
            op_finish(o, -1, "HAProxy refused it: %.400s", text);
            return;
        }
        o->step = 2;
        op_next(o);
        return;
    case 2: {
        size_t i;

        if (parse_state(o->h, text, &o->v, o->error, sizeof o->error) != 0) {
            op_finish(o, -1, "%s", o->error);
            return;
        }
        for (i = 0; i < o->h->n; i++) {
            if (!o->v.servers[i].found) {
                op_finish(o, -1, "HAProxy's backend %s has no server %s (for %s's %s slot)",
                          o->h->backend, o->h->servers[i].name, o->h->servers[i].target,
                          hs_slot_name(o->h->servers[i].slot));
                return;
            }
        }
        o->step = 3;
        op_next(o);
        return;
    }
    case 3:
        parse_stat(o->h, text, &o->v);
        if (o->kind != OP_READ && o->h->state_file != NULL) {
            o->step = 4;
            op_next(o);
            return;
        }
        op_finish(o, 0, NULL);
        return;
    case 4:
        if (o->h->lb != NULL) {
            struct buf data;

            buf_init(&data);
            buf_add(&data, text, len);
            buf_adds(&data, "\n");
            o->wnext = o->h->writing;
            o->h->writing = o;
            transport_write_file(o->h->lb, o->h->state_file, data.data, data.len, 0644,
                                 state_written, o);
            buf_done(&data);
            return;
        }
        write_state_file(o, text, len);
        if (o->error[0] != '\0')
            op_finish(o, -1, "%s", o->error);
        else
            op_finish(o, 0, NULL);
        return;
    }
}

static struct op *op_new(struct hap *h, enum op_kind kind, router_fn done, void *arg)
{
    struct op *o = xcalloc(1, sizeof *o);

    o->h = h;
    o->kind = kind;
    o->done = done;
    o->arg = arg;
    o->v.n = h->n;
    o->v.servers = xcalloc(h->n + 1, sizeof *o->v.servers);
    return o;
}

/* A set first reads what is there (which servers are drained), then sets, then reads back. */
static void set_after_read(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct op *o = arg;

    if (rc != 0) {
        op_finish(o, -1, "%s", msg);
        return;
    }
    memcpy(o->v.servers, v->servers, o->h->n * sizeof *o->v.servers);
    o->step = 0;
    op_next(o);
}

static void hap_read(struct router *r, router_fn done, void *arg)
{
    struct hap *h = (struct hap *)r;
    struct op *o = op_new(h, OP_READ, done, arg);

    o->step = 2;
    op_next(o);
}

static void hap_set_weights(struct router *r, const unsigned *weights, router_fn done, void *arg)
{
    struct hap *h = (struct hap *)r;
    struct op *o = op_new(h, OP_SET, done, arg);
    size_t i;

    o->weights = xcalloc(h->n + 1, sizeof *o->weights);
    for (i = 0; i < h->n; i++)
        o->weights[i] = weights[i] > 100 ? 100 : weights[i];
    hap_read(r, set_after_read, o);
}

static void hap_drain(struct router *r, size_t i, router_fn done, void *arg)
{
    struct hap *h = (struct hap *)r;
    struct op *o = op_new(h, OP_DRAIN, done, arg);

    o->drain = i;
    o->step = 1;
    op_next(o);
}

static const char *json_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static struct router *hap_open(const struct router_ctx *ctx, struct err *err)
{
    struct hap *h = xcalloc(1, sizeof *h);
    const char *socket = json_string(ctx->config, "socket"),
               *address = json_string(ctx->config, "address"),
               *state = json_string(ctx->config, "state_file");

    h->loop = ctx->loop;
    if (socket != NULL) {
        h->socket = xstrdup(socket);
    } else {
        const char *colon = strrchr(address, ':');
        size_t hl = (size_t)(colon - address);

        /* "[::1]:9999" or "127.0.0.1:9999" */
        if (address[0] == '[' && hl >= 2 && address[hl - 1] == ']')
            h->host = xasprintf("%.*s", (int)(hl - 2), address + 1);
        else
            h->host = xasprintf("%.*s", (int)hl, address);
        h->port = (unsigned)strtoul(colon + 1, NULL, 10);
        /* On a load balancer reached over SSH: through a bridge to that address there. */
        if (ctx->lb != NULL) {
            const char *path = NULL;

            switch (transport_bridge(ctx->lb, h->host, h->port, &path, &h->bridge_error, err)) {
            case 1:
                h->socket = xstrdup(path);
                h->lb = ctx->lb;
                h->where = xasprintf("%s on %s, through its SSH connection", address,
                                     transport_name(ctx->lb));
                break;
            case -1:
                free(h->host);
                free(h);
                return NULL;
            default:
                break;
            }
        }
    }
    h->backend = xstrdup(json_string(ctx->config, "backend"));
    h->state_file = state != NULL ? xstrdup(state) : NULL;
    h->n = ctx->nservers;
    h->servers = xcalloc(h->n + 1, sizeof *h->servers);
    memcpy(h->servers, ctx->servers, h->n * sizeof *h->servers);
    buf_init(&h->in);
    h->timer = loop_timer_new(h->loop, timer_cb, h);
    return (struct router *)h;
}

static void hap_close(struct router *r)
{
    struct hap *h = (struct hap *)r;

    fail_all(h, "the router was closed");
    while (h->writing != NULL) { /* their writes end on their own; the callers hear now */
        struct op *o = h->writing;

        h->writing = o->wnext;
        o->h = NULL;
        o->done(o->arg, -1, NULL, "the router was closed before HAProxy's state was written");
    }
    loop_timer_free(h->timer);
    free(h->where);
    free(h->socket);
    free(h->host);
    free(h->backend);
    free(h->state_file);
    free(h->servers);
    h->closed_for_good = true;
    if (h->open || h->connecting) {
        h->open = h->connecting = false;
        uv_close((uv_handle_t *)&h->h, closed_cb);
    } else if (!h->closing) {
        buf_done(&h->in);
        free(h);
    }
}

const struct router_kind router_haproxy = {
    .name = "haproxy",
    .keys = keys,
    .check = check_config,
    .open = hap_open,
    .set_weights = hap_set_weights,
    .read = hap_read,
    .drain = hap_drain,
    .close = hap_close,
};
