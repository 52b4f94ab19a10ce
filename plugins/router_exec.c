/*
 * The exec router: a program of the operator's ("command": its argv, no shell) that drives a
 * load balancer n3ctl does not know, spoken to in JSON lines on its stdin and stdout: the
 * router protocol, version 1 (docs/plugins.md).
 *
 * It runs on this machine, as n3ctl's child (core/proc: a process group of its own, stdin
 * kept open), not on the load balancer's transport: a transport runs a command with all of
 * its input given at the start, and cannot feed one that runs on. A plugin whose load
 * balancer is elsewhere reaches it itself (ssh, curl, socat).
 *
 * It starts when the router opens: n3ctl says hello (the protocol and the servers), the
 * plugin answers with the protocol it speaks, then a health request checks it can reach its
 * load balancer. Requests go one at a time, each with its id, and each must be answered
 * within timeout_ms. A plugin that exits, answers what is not the protocol (a line that is not
 * a JSON object, an id nobody asked for, a line over 1 MiB) or does not answer in time is
 * stopped, and what was asked fails naming the plugin, what happened and the last line of its
 * stderr (kept bounded, never shown otherwise: the console owns the terminal); the next
 * request starts it again. A plugin that refuses a request ("ok": false) stays.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/json.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "plugins/builtin.h"

#define PROTOCOL           1
#define LINE_MAX_BYTES     (1024u * 1024u) /* an answer's line, at most */
#define STDERR_KEEP        (16u * 1024u)   /* of the plugin's stderr, the last bytes */
#define STOP_GRACE_MS      1000u           /* TERM -> KILL when it is stopped */
#define TIMEOUT_DEFAULT_MS 5000
#define TIMEOUT_MAX_MS     600000
#define MSG_MAX            1024u

static const char *const keys[] = {"command", "timeout_ms", "server", NULL};

/* ---- n3.json ---- */

static int check_config(const struct cfg *c, const cJSON *r, struct err *err)
{
    const cJSON *cmd = cfg_get(c, r, "command", cJSON_Array, true, err), *item;
    const char *server = NULL;
    int64_t timeout;

    if (cfg_has(r, "on"))
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "on"),
                         "the exec router runs its plugin on this machine: have the plugin reach "
                         "the load balancer itself (docs/plugins.md)");
    if (cmd == NULL)
        return -1;
    if (cJSON_GetArraySize(cmd) == 0)
        return cfg_error(c, err, cmd,
                         "the plugin's program and its arguments, one string each: "
                         "[\"/usr/local/bin/lb-router\", \"--socket\", \"/run/lb.sock\"]");
    cJSON_ArrayForEach(item, cmd)
    {
        if (!cJSON_IsString(item))
            return cfg_error(c, err, item, "expected a string, got %s", cfg_type_name(item));
    }
    item = cJSON_GetArrayItem(cmd, 0);
    if (item->valuestring[0] == '\0')
        return cfg_error(c, err, item, "the program is empty");
    if (strchr(item->valuestring, '/') != NULL && item->valuestring[0] != '/')
        return cfg_error(c, err, item,
                         "an absolute path, or a program's name looked up on PATH (a relative "
                         "path would depend on where n3ctl runs)");
    if (cfg_get_int(c, r, "timeout_ms", false, 1, TIMEOUT_MAX_MS, &timeout, err) != 0 ||
        cfg_get_string(c, r, "server", false, &server, err) != 0)
        return -1;
    return 0;
}

/* ---- the router ---- */

enum req_kind { REQ_SET, REQ_READ, REQ_DRAIN };

static const char *const req_names[] = {"set", "read", "drain"};

/* A request of the router's caller. */
struct req {
    enum req_kind kind;
    unsigned long long id; /* given when it is sent */
    char *line;            /* what goes to the plugin, without the id and the newline */
    router_fn done;
    void *arg;
    struct req *next;
};

enum xstate {
    X_IDLE,     /* no plugin running: the next request starts one */
    X_HELLO,    /* started, the hello sent */
    X_HEALTH,   /* the hello answered, the health check sent */
    X_READY,    /* requests go */
    X_STOPPING, /* stopped by n3ctl (broken, timed out): waiting for it to exit */
};

struct xr {
    struct loop *loop;
    char **argv;
    const char *name; /* argv[0], in messages */
    uint64_t timeout_ms;
    struct router_server *servers;
    size_t n;
    char *hello; /* the hello line */
    struct proc *p;
    enum xstate state;
    struct req *head, *tail; /* waiting; the head is in flight when sent */
    bool sent;
    unsigned long long next_id, health_id;
    struct buf line; /* stdout up to its next newline */
    struct loop_timer *timer, *kick;
    unsigned depth; /* callbacks of ours running: a caller's callback may close the router */
    bool closed;    /* closed inside one of them: freed when the outermost returns */
};

static void req_free(struct req *q)
{
    free(q->line);
    free(q);
}

/* Every request waiting (and the one in flight) fails with msg. */
static void fail_all(struct xr *x, const char *msg)
{
    struct req *q = x->head, *next;

    /* Detached first: a callback may ask again (those wait for the next plugin). */
    x->head = x->tail = NULL;
    x->sent = false;
    for (; q != NULL; q = next) {
        next = q->next;
        q->done(q->arg, -1, NULL, msg);
        req_free(q);
    }
}

/* The request in flight is over: its callback, then the next one goes. */
static void finish_head(struct xr *x, int rc, const struct router_view *v, const char *msg)
{
    struct req *q = x->head;

    loop_timer_stop(x->timer);
    x->head = q->next;
    if (x->head == NULL)
        x->tail = NULL;
    x->sent = false;
    loop_timer_start(x->kick, 0);
    q->done(q->arg, rc, v, msg);
    req_free(q);
}

/* ", its stderr's last line: \"...\"", or "" when it said nothing there. */
static void stderr_last_line(struct xr *x, char *out, size_t len)
{
    char *text, *end, *start, *clean;
    size_t n;

    out[0] = '\0';
    if (x->p == NULL)
        return;
    text = tail_dup(proc_output(x->p, PROC_STDERR), &n);
    for (end = text + n; end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ');)
        *--end = '\0';
    for (start = end; start > text && start[-1] != '\n';)
        start--;
    if (start < end) {
        size_t i;

        clean = utf8_sanitize(start, (size_t)(end - start));
        for (i = 0; clean[i] != '\0'; i++) {
            if ((unsigned char)clean[i] < 0x20)
                clean[i] = ' ';
        }
        snprintf(out, len, "; its stderr's last line: \"%.300s%s\"", clean,
                 strlen(clean) > 300 ? "..." : "");
        free(clean);
    }
    free(text);
}

/* What the plugin was doing, for messages: "the hello", "set (id 3)". */
static void doing(struct xr *x, char *out, size_t len)
{
    if (x->state == X_HELLO)
        snprintf(out, len, "the hello");
    else if (x->state == X_HEALTH)
        snprintf(out, len, "the health check (id %llu)", x->health_id);
    else if (x->head != NULL && x->sent)
        snprintf(out, len, "%s (id %llu)", req_names[x->head->kind], x->head->id);
    else
        snprintf(out, len, "nothing");
}

/* Something went wrong with the plugin (what happened in why): the request it was answering
 * fails; while it was starting, every request waiting fails, as none can go. With stop, it is
 * stopped, and the next request starts it again. */
static void broken(struct xr *x, bool stop, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void broken(struct xr *x, bool stop, const char *fmt, ...)
{
    char why[MSG_MAX], msg[MSG_MAX + 512], last[400];
    bool starting = x->state == X_HELLO || x->state == X_HEALTH;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    stderr_last_line(x, last, sizeof last);
    snprintf(msg, sizeof msg, "router plugin %.200s %s%s", x->name, why, last);
    loop_timer_stop(x->timer);
    if (stop && x->p != NULL) {
        x->state = X_STOPPING;
        proc_close_input(x->p);
        proc_terminate(x->p, STOP_GRACE_MS);
    }
    if (starting)
        fail_all(x, msg);
    else if (x->head != NULL && x->sent)
        finish_head(x, -1, NULL, msg);
}

static void xr_free(struct xr *x);

static void enter(struct xr *x)
{
    x->depth++;
}

/* false when the router was closed meanwhile (and is gone now). */
static bool leave(struct xr *x)
{
    if (--x->depth > 0 || !x->closed)
        return !x->closed;
    xr_free(x);
    return false;
}

/* ---- talking to it ---- */

static void send_line(struct xr *x, const char *text)
{
    size_t len = strlen(text);
    char *line = xmalloc(len + 2);

    memcpy(line, text, len);
    line[len] = '\n';
    /* A plugin gone makes this fail; its exit says why (done_cb). */
    proc_write(x->p, line, len + 1);
    free(line);
    loop_timer_start(x->timer, x->timeout_ms);
}

/* "{"id": N, ...}": the request's line with its id first. */
static char *with_id(unsigned long long id, const char *rest)
{
    return xasprintf("{\"id\":%llu%s%s", id, rest[1] == '}' ? "" : ",", rest + 1);
}

static void pump(struct xr *x);

static void output_cb(struct proc *p, enum proc_stream stream, const char *data, size_t len,
                      void *arg);
static void done_cb(struct proc *p, void *arg);

static int start_plugin(struct xr *x, struct err *err)
{
    struct proc_spec spec;

    memset(&spec, 0, sizeof spec);
    spec.argv = (const char *const *)x->argv;
    spec.input_pipe = true;
    spec.output_limit = STDERR_KEEP;
    spec.grace_ms = STOP_GRACE_MS;
    spec.on_output = output_cb;
    spec.on_done = done_cb;
    spec.arg = x;
    if (proc_start(x->loop, &spec, &x->p, err) != 0) {
        x->p = NULL;
        return -1;
    }
    buf_reset(&x->line);
    x->state = X_HELLO;
    send_line(x, x->hello);
    return 0;
}

static void kick_cb(void *arg)
{
    struct xr *x = arg;

    enter(x);
    pump(x);
    leave(x);
}

/* Start the plugin when a request waits and none runs; send the next request when it is
 * ready. */
static void pump(struct xr *x)
{
    struct err err;

    if (x->head == NULL)
        return;
    if (x->state == X_IDLE) {
        if (start_plugin(x, &err) != 0) {
            char msg[MSG_MAX];

            snprintf(msg, sizeof msg, "router plugin: %.900s", err.msg);
            fail_all(x, msg);
        }
        return;
    }
    if (x->state != X_READY || x->sent)
        return;
    {
        char *line;

        x->head->id = ++x->next_id;
        x->sent = true;
        line = with_id(x->head->id, x->head->line);
        send_line(x, line);
        free(line);
    }
}

static void timer_cb(void *arg)
{
    struct xr *x = arg;
    char what[160];
    char secs[32];

    enter(x);
    doing(x, what, sizeof what);
    snprintf(secs, sizeof secs, "%.3g", (double)x->timeout_ms / 1000.0);
    broken(x, true, "did not answer %s within %s s (timeout_ms); it was stopped", what, secs);
    leave(x);
}

/* A weight, or one of the counters: a whole number in [0, max]; -1 when it is not one. */
static int whole(const cJSON *v, double max, unsigned long long *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > max || floor(v->valuedouble) != v->valuedouble)
        return -1;
    *out = (unsigned long long)v->valuedouble;
    return 0;
}

/* The "servers" of an answer into v: each server the router has, by name; those the answer
 * does not have are not found. 0, or -1 with what is wrong in why. */
static int parse_servers(struct xr *x, const cJSON *root, struct router_view *v, char *why,
                         size_t len)
{
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(root, "servers");
    size_t i;

    if (!cJSON_IsObject(servers)) {
        snprintf(why, len,
                 "has no \"servers\" object (set, read and drain answer with what the load "
                 "balancer has now)");
        return -1;
    }
    for (i = 0; i < x->n; i++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(servers, x->servers[i].name), *f;
        struct router_server_view *sv = &v->servers[i];
        unsigned long long n;
        static const char *const counters[] = {"sessions", "requests", "errors"};
        int k;

        if (s == NULL)
            continue;
        if (!cJSON_IsObject(s)) {
            snprintf(why, len, "servers.%s is not an object", x->servers[i].name);
            return -1;
        }
        if (whole(cJSON_GetObjectItemCaseSensitive(s, "weight"), 100, &n) != 0) {
            snprintf(why, len, "servers.%s.weight is not a whole number from 0 to 100",
                     x->servers[i].name);
            return -1;
        }
        sv->found = true;
        sv->weight = (unsigned)n;
        f = cJSON_GetObjectItemCaseSensitive(s, "state");
        if (f != NULL && (!cJSON_IsString(f) || f->valuestring[0] == '\0' ||
                          strlen(f->valuestring) >= sizeof sv->state)) {
            snprintf(why, len, "servers.%s.state is not a word of at most %zu bytes",
                     x->servers[i].name, sizeof sv->state - 1);
            return -1;
        }
        snprintf(sv->state, sizeof sv->state, "%s", f != NULL ? f->valuestring : "ready");
        f = cJSON_GetObjectItemCaseSensitive(s, "up");
        if (f != NULL && !cJSON_IsBool(f)) {
            snprintf(why, len, "servers.%s.up is not true or false", x->servers[i].name);
            return -1;
        }
        sv->up = f == NULL || cJSON_IsTrue(f);
        for (k = 0; k < 3; k++) {
            f = cJSON_GetObjectItemCaseSensitive(s, counters[k]);
            if (f == NULL)
                continue;
            if (whole(f, 9007199254740992.0, &n) != 0) {
                snprintf(why, len, "servers.%s.%s is not a whole number, 0 or more",
                         x->servers[i].name, counters[k]);
                return -1;
            }
            if (k == 0)
                sv->sessions = n;
            else if (k == 1)
                sv->requests = n;
            else
                sv->errors = n;
        }
    }
    return 0;
}

/* "the error", of an answer that says ok: false. */
static const char *answer_error(const cJSON *root)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");

    return cJSON_IsString(e) && e->valuestring[0] != '\0' ? e->valuestring : "(it gave no error)";
}

/* A short, printable copy of a line, for a message. */
static void excerpt(const char *line, size_t len, char *out, size_t outlen)
{
    char *clean = utf8_sanitize(line, len > 120 ? 120 : len);
    size_t i;

    for (i = 0; clean[i] != '\0'; i++) {
        if ((unsigned char)clean[i] < 0x20)
            clean[i] = ' ';
    }
    snprintf(out, outlen, "\"%s%s\"", clean, len > 120 ? "..." : "");
    free(clean);
}

static void hello_answered(struct xr *x, const cJSON *root)
{
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok"),
                *proto = cJSON_GetObjectItemCaseSensitive(root, "protocol");
    char *line;

    if (!cJSON_IsTrue(ok)) {
        broken(x, true, "refused the hello: %.400s", answer_error(root));
        return;
    }
    if (!cJSON_IsNumber(proto) || proto->valuedouble != PROTOCOL) {
        char said[64];

        if (cJSON_IsNumber(proto))
            snprintf(said, sizeof said, "router protocol %g", proto->valuedouble);
        else
            snprintf(said, sizeof said, "no \"protocol\" in its hello");
        broken(x, true,
               "speaks %s; this n3ctl speaks router protocol %d (docs/plugins.md): a plugin "
               "answers the hello with {\"ok\": true, \"protocol\": %d}",
               said, PROTOCOL, PROTOCOL);
        return;
    }
    x->state = X_HEALTH;
    x->health_id = ++x->next_id;
    line = xasprintf("{\"id\":%llu,\"op\":\"health\"}", x->health_id);
    send_line(x, line);
    free(line);
}

static void health_answered(struct xr *x, const cJSON *root)
{
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ok"))) {
        broken(x, true, "says its load balancer is not healthy: %.400s", answer_error(root));
        return;
    }
    loop_timer_stop(x->timer);
    x->state = X_READY;
    pump(x);
}

static void answered(struct xr *x, const cJSON *root)
{
    struct req *q = x->head;
    struct router_view v;
    char why[300], msg[MSG_MAX];

    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ok"))) {
        snprintf(msg, sizeof msg, "router plugin %.200s refused %s: %.600s", x->name,
                 req_names[q->kind], answer_error(root));
        finish_head(x, -1, NULL, msg);
        return;
    }
    v.n = x->n;
    v.servers = xcalloc(x->n + 1, sizeof *v.servers);
    if (parse_servers(x, root, &v, why, sizeof why) != 0) {
        snprintf(msg, sizeof msg, "router plugin %.200s answered %s (id %llu), but its answer %s",
                 x->name, req_names[q->kind], q->id, why);
        finish_head(x, -1, NULL, msg);
    } else {
        finish_head(x, 0, &v, NULL);
    }
    free(v.servers);
}

/* One line of the plugin's stdout. */
static void handle_line(struct xr *x, const char *line, size_t len)
{
    struct json_error e;
    cJSON *root;
    const cJSON *id;
    char what[160], shown[160];
    size_t i;

    for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
        ;
    if (i == len)
        return; /* a blank line says nothing */
    doing(x, what, sizeof what);
    if (x->state != X_HELLO && x->state != X_HEALTH && !(x->state == X_READY && x->sent)) {
        excerpt(line, len, shown, sizeof shown);
        broken(x, true, "wrote %s when nothing was asked; it was stopped", shown);
        return;
    }
    root = json_parse(line, len, NULL, &e);
    if (!cJSON_IsObject(root)) {
        excerpt(line, len, shown, sizeof shown);
        cJSON_Delete(root);
        broken(x, true, "answered %s with %s, which is not a JSON object; it was stopped", what,
               shown);
        return;
    }
    if (x->state == X_HELLO) {
        hello_answered(x, root);
        cJSON_Delete(root);
        return;
    }
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    {
        unsigned long long want = x->state == X_HEALTH ? x->health_id : x->head->id, got = 0;

        if (whole(id, 9007199254740992.0, &got) != 0 || got != want) {
            if (id == NULL)
                snprintf(shown, sizeof shown, "without an id");
            else if (cJSON_IsNumber(id))
                snprintf(shown, sizeof shown, "for id %g", id->valuedouble);
            else
                snprintf(shown, sizeof shown, "for an id that is not a number");
            cJSON_Delete(root);
            broken(x, true, "answered %s while %s waited for its answer; it was stopped", shown,
                   what);
            return;
        }
    }
    if (x->state == X_HEALTH)
        health_answered(x, root);
    else
        answered(x, root);
    cJSON_Delete(root);
}

static void output_cb(struct proc *p, enum proc_stream stream, const char *data, size_t len,
                      void *arg)
{
    struct xr *x = arg;
    const char *nl;

    (void)p;
    if (stream != PROC_STDOUT)
        return; /* stderr: kept in the proc's bounded tail */
    enter(x);
    while (len > 0 && !x->closed && x->state != X_STOPPING && x->state != X_IDLE) {
        size_t piece;

        nl = memchr(data, '\n', len);
        piece = nl != NULL ? (size_t)(nl - data) : len; /* the line's part in this chunk */
        if (x->line.len + piece > LINE_MAX_BYTES) {
            char what[160];

            doing(x, what, sizeof what);
            buf_reset(&x->line);
            broken(x, true,
                   "wrote a line longer than %u MiB (the router protocol's limit) for %s; it "
                   "was stopped",
                   LINE_MAX_BYTES / (1024u * 1024u), what);
            break;
        }
        buf_add(&x->line, data, piece);
        if (nl == NULL)
            break;
        len -= piece + 1;
        data = nl + 1;
        {
            size_t n;
            char *line = buf_detach(&x->line, &n);

            handle_line(x, line, n);
            free(line);
        }
    }
    leave(x);
}

/* The plugin exited (and its pipes closed). */
static void done_cb(struct proc *p, void *arg)
{
    struct xr *x = arg;

    enter(x);
    if (x->state != X_STOPPING && x->state != X_IDLE) {
        char what[160], how[64];
        bool waiting = x->state != X_READY || x->sent;

        doing(x, what, sizeof what);
        if (proc_term_signal(p) != 0)
            snprintf(how, sizeof how, "was killed by signal %d", proc_term_signal(p));
        else
            snprintf(how, sizeof how, "exited with status %d", proc_exit_code(p));
        if (waiting)
            broken(x, false, "%s before it answered %s", how, what);
    }
    if (x->closed) {
        leave(x); /* xr_close freed the process already */
        return;
    }
    proc_free(p);
    x->p = NULL;
    x->state = X_IDLE;
    loop_timer_stop(x->timer);
    /* What waits starts it again. */
    loop_timer_start(x->kick, 0);
    leave(x);
}

/* ---- the interface ---- */

static void submit(struct xr *x, enum req_kind kind, char *line, router_fn done, void *arg)
{
    struct req *q = xcalloc(1, sizeof *q);

    q->kind = kind;
    q->line = line;
    q->done = done;
    q->arg = arg;
    if (x->tail != NULL)
        x->tail->next = q;
    else
        x->head = q;
    x->tail = q;
    /* From the loop: the callback never comes before this call has returned. */
    loop_timer_start(x->kick, 0);
}

static char *print(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    char *copy = xstrdup(text);

    cJSON_free(text);
    cJSON_Delete(o);
    return copy;
}

static void xr_read(struct router *r, router_fn done, void *arg)
{
    submit((struct xr *)r, REQ_READ, xstrdup("{\"op\":\"read\"}"), done, arg);
}

static void xr_set_weights(struct router *r, const unsigned *weights, router_fn done, void *arg)
{
    struct xr *x = (struct xr *)r;
    cJSON *o = cJSON_CreateObject(), *w;
    size_t i;

    cJSON_AddStringToObject(o, "op", "set");
    w = cJSON_AddObjectToObject(o, "weights");
    for (i = 0; i < x->n; i++)
        cJSON_AddNumberToObject(w, x->servers[i].name, weights[i] > 100 ? 100 : weights[i]);
    submit(x, REQ_SET, print(o), done, arg);
}

static void xr_drain(struct router *r, size_t i, router_fn done, void *arg)
{
    struct xr *x = (struct xr *)r;
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "op", "drain");
    cJSON_AddStringToObject(o, "server", i < x->n ? x->servers[i].name : "");
    submit(x, REQ_DRAIN, print(o), done, arg);
}

static char *hello_line(const struct xr *x)
{
    cJSON *o = cJSON_CreateObject(), *arr;
    size_t i;

    cJSON_AddNumberToObject(o, "n3router", PROTOCOL);
    cJSON_AddStringToObject(o, "op", "hello");
    arr = cJSON_AddArrayToObject(o, "servers");
    for (i = 0; i < x->n; i++) {
        cJSON *s = cJSON_CreateObject();

        cJSON_AddStringToObject(s, "name", x->servers[i].name);
        cJSON_AddStringToObject(s, "target", x->servers[i].target);
        cJSON_AddStringToObject(s, "slot", hs_slot_name(x->servers[i].slot));
        cJSON_AddStringToObject(s, "host", x->servers[i].host);
        cJSON_AddNumberToObject(s, "port", x->servers[i].port);
        cJSON_AddItemToArray(arr, s);
    }
    return print(o);
}

static void xr_free(struct xr *x)
{
    size_t i;

    loop_timer_free(x->timer);
    loop_timer_free(x->kick);
    buf_done(&x->line);
    for (i = 0; x->argv[i] != NULL; i++)
        free(x->argv[i]);
    free(x->argv);
    free(x->hello);
    free(x->servers);
    free(x);
}

static struct router *xr_open(const struct router_ctx *ctx, struct err *err)
{
    struct xr *x = xcalloc(1, sizeof *x);
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(ctx->config, "command"), *item,
                *timeout = cJSON_GetObjectItemCaseSensitive(ctx->config, "timeout_ms");
    size_t n = 0;

    x->loop = ctx->loop;
    x->argv = xcalloc((size_t)cJSON_GetArraySize(cmd) + 1, sizeof *x->argv);
    cJSON_ArrayForEach(item, cmd)
    {
        x->argv[n++] = xstrdup(item->valuestring);
    }
    x->name = x->argv[0];
    x->timeout_ms = cJSON_IsNumber(timeout) ? (uint64_t)timeout->valuedouble : TIMEOUT_DEFAULT_MS;
    x->n = ctx->nservers;
    x->servers = xcalloc(x->n + 1, sizeof *x->servers);
    memcpy(x->servers, ctx->servers, x->n * sizeof *x->servers);
    x->hello = hello_line(x);
    buf_init(&x->line);
    x->timer = loop_timer_new(x->loop, timer_cb, x);
    x->kick = loop_timer_new(x->loop, kick_cb, x);
    if (start_plugin(x, err) != 0) {
        char msg[ERR_MSG_MAX];

        snprintf(msg, sizeof msg, "router plugin: %.900s", err->msg);
        err_set(err, "%s", msg);
        xr_free(x);
        return NULL;
    }
    return (struct router *)x;
}

static void xr_close(struct router *r)
{
    struct xr *x = (struct xr *)r;

    fail_all(x, "the router was closed");
    /* EOF, then the end of its process group: every answer it gave was final. */
    if (x->p != NULL) {
        proc_close_input(x->p);
        proc_free(x->p);
        x->p = NULL;
    }
    if (x->depth > 0)
        x->closed = true; /* inside a callback of ours: the outermost frees it */
    else
        xr_free(x);
}

const struct router_kind router_exec = {
    .name = "exec",
    .keys = keys,
    .check = check_config,
    .open = xr_open,
    .set_weights = xr_set_weights,
    .read = xr_read,
    .drain = xr_drain,
    .close = xr_close,
};
