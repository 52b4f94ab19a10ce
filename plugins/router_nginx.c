/*
 * The nginx router: an upstream file that n3ctl owns, written whole with each slot's server
 * and its weight (`down` for 0 %), then `nginx -t`, then a reload; when the test fails the
 * file is put back as it was and nothing is reloaded. What nginx would load is read back with
 * `nginx -T`. Its commands run where nginx is: the load balancer's transport.
 *
 *   # written by n3ctl (n3ctl traffic): every change rewrites it
 *   upstream app {
 *       server 10.0.0.1:8001 weight=90;
 *       server 10.0.0.1:8002 weight=10;
 *   }
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"

#define TAG        "n3nginx:"
#define OUTPUT_MAX (4u * 1024u * 1024u) /* nginx -T of a big config */

static const char *const keys[] = {"upstream_file",  "upstream",     "test_command",
                                   "reload_command", "dump_command", NULL};

struct ngx {
    struct transport *t;
    char *file, *upstream;
    char *test, *reload, *dump;
    struct router_server *servers;
    size_t n;
    struct op *ops; /* in flight: told when the router closes before they end */
};

static bool plain_name(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("._-", s[i]) != NULL))
            return false;
    }
    return i > 0;
}

static int check_config(const struct cfg *c, const cJSON *r, struct err *err)
{
    const char *file = NULL, *upstream = NULL, *cmd = NULL;
    const char *const cmds[] = {"test_command", "reload_command", "dump_command"};
    size_t i;

    if (cfg_get_string(c, r, "upstream_file", true, &file, err) != 0 ||
        cfg_get_string(c, r, "upstream", true, &upstream, err) != 0)
        return -1;
    if (file[0] != '/')
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "upstream_file"),
                         "an absolute path (a file nginx includes: "
                         "\"/etc/nginx/conf.d/app-upstream.conf\")");
    if (!plain_name(upstream))
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "upstream"),
                         "an upstream's name: letters, digits, '.', '_' and '-'");
    for (i = 0; i < 3; i++) {
        if (cfg_get_string(c, r, cmds[i], false, &cmd, err) != 0)
            return -1;
        if (cmd != NULL && cmd[0] == '\0')
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, cmds[i]),
                             "an empty command");
    }
    return 0;
}

static const char *json_string(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static struct router *ngx_open(const struct router_ctx *ctx, struct err *err)
{
    struct ngx *x = xcalloc(1, sizeof *x);

    (void)err;
    x->t = ctx->lb;
    x->file = xstrdup(json_string(ctx->config, "upstream_file", ""));
    x->upstream = xstrdup(json_string(ctx->config, "upstream", ""));
    x->test = xstrdup(json_string(ctx->config, "test_command", "nginx -t"));
    x->reload = xstrdup(json_string(ctx->config, "reload_command", "nginx -s reload"));
    x->dump = xstrdup(json_string(ctx->config, "dump_command", "nginx -T"));
    x->n = ctx->nservers;
    x->servers = xcalloc(x->n + 1, sizeof *x->servers);
    memcpy(x->servers, ctx->servers, x->n * sizeof *x->servers);
    return (struct router *)x;
}

static void ops_orphan(struct ngx *x);

static void ngx_close(struct router *r)
{
    struct ngx *x = (struct ngx *)r;

    ops_orphan(x);
    free(x->file);
    free(x->upstream);
    free(x->test);
    free(x->reload);
    free(x->dump);
    free(x->servers);
    free(x);
}

/* ---- reading nginx -T ---- */

/* "host:port" of a server, as the file has it. */
static void addr_of(const struct router_server *s, char *out, size_t len)
{
    snprintf(out, len, strchr(s->host, ':') != NULL ? "[%s]:%u" : "%s:%u", s->host, s->port);
}

/* In nginx -T's output, the upstream block named x->upstream: each server's weight (1 when
 * none is said), 0 when down. -1 when the block is not there. */
static int parse_upstream(struct ngx *x, const char *text, struct router_view *v)
{
    const char *p = text, *block = NULL;
    size_t i;

    /* "upstream NAME {", words apart by blanks */
    while ((p = strstr(p, "upstream")) != NULL) {
        const char *q = p + 8;
        size_t nl = strlen(x->upstream);

        if ((p == text || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' || p[-1] == '}') &&
            (*q == ' ' || *q == '\t')) {
            while (*q == ' ' || *q == '\t')
                q++;
            if (strncmp(q, x->upstream, nl) == 0 && strchr(" \t{", q[nl]) != NULL) {
                block = strchr(q, '{');
                break;
            }
        }
        p = q;
    }
    if (block == NULL)
        return -1;
    for (p = block + 1; *p != '\0' && *p != '}';) {
        const char *end = strchr(p, ';');
        char stmt[512], word[300];
        int off = 0;

        if (end == NULL)
            break;
        snprintf(stmt, sizeof stmt, "%.*s", (int)(end - p), p);
        p = end + 1;
        if (sscanf(stmt, " server %299s%n", word, &off) != 1)
            continue;
        for (i = 0; i < x->n; i++) {
            char addr[300];

            addr_of(&x->servers[i], addr, sizeof addr);
            if (strcmp(addr, word) != 0)
                continue;
            v->servers[i].found = true;
            v->servers[i].up = strstr(stmt + off, " down") == NULL;
            v->servers[i].weight = 1;
            {
                const char *w = strstr(stmt + off, "weight=");

                if (w != NULL)
                    v->servers[i].weight = (unsigned)strtoul(w + 7, NULL, 10);
            }
            if (!v->servers[i].up)
                v->servers[i].weight = 0;
            snprintf(v->servers[i].state, sizeof v->servers[i].state, "%s",
                     v->servers[i].up ? "ready" : "down");
        }
    }
    return 0;
}

/* ---- operations ---- */

struct op {
    struct ngx *x; /* NULL once the router closed: its caller has heard */
    bool setting;  /* a set, before its read-back */
    router_fn done;
    void *arg;
    struct router_view v;
    struct op *next;
};

static void op_unlink(struct op *o)
{
    struct op **pp;

    for (pp = &o->x->ops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }
}

static void op_free(struct op *o)
{
    free(o->v.servers);
    free(o);
}

/* What is in flight ends now for its callers; the commands' answers find it orphaned. */
static void ops_orphan(struct ngx *x)
{
    while (x->ops != NULL) {
        struct op *o = x->ops;

        x->ops = o->next;
        o->x = NULL;
        o->done(o->arg, -1, NULL, "the router was closed before nginx answered");
    }
}

/* A command's answer for an op whose router has closed: nothing more to do. */
static bool orphaned(struct op *o)
{
    if (o->x != NULL)
        return false;
    op_free(o);
    return true;
}

static void op_finish(struct op *o, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_finish(struct op *o, int rc, const char *fmt, ...)
{
    char msg[800];
    va_list ap;

    msg[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    op_unlink(o);
    o->done(o->arg, rc, rc == 0 ? &o->v : NULL, msg[0] ? msg : NULL);
    op_free(o);
}

static void dumped(void *arg, const struct transport_result *r)
{
    struct op *o = arg;
    struct ngx *x = o->x;
    char *text;
    size_t i;

    if (orphaned(o))
        return;
    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char *err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        op_finish(o, -1, "%s failed: %.300s%s%.300s", x->dump,
                  r->status != TRANSPORT_OK ? r->msg : "exit status not 0", err[0] ? ": " : "",
                  err);
        free(err);
        return;
    }
    text = tail_dup(r->out, NULL);
    if (parse_upstream(x, text, &o->v) != 0) {
        free(text);
        op_finish(o, -1, "nginx has no upstream %s (%s shows none): is %s included in its config?",
                  x->upstream, x->dump, x->file);
        return;
    }
    free(text);
    for (i = 0; i < x->n; i++) {
        if (!o->v.servers[i].found) {
            char addr[300];

            addr_of(&x->servers[i], addr, sizeof addr);
            op_finish(o, -1, "nginx's upstream %s has no server %s (%s's %s slot)", x->upstream,
                      addr, x->servers[i].target, hs_slot_name(x->servers[i].slot));
            return;
        }
    }
    op_finish(o, 0, NULL);
}

static void run(struct op *o, const char *cmd, const char *input, size_t input_len,
                transport_done_fn done)
{
    struct transport_run r;

    memset(&r, 0, sizeof r);
    r.command = cmd;
    r.input = input;
    r.input_len = input_len;
    r.timeout_ms = 60000;
    r.output_limit = OUTPUT_MAX;
    r.on_done = done;
    r.arg = o;
    transport_run(o->x->t, &r);
}

static struct op *op_new(struct ngx *x, router_fn done, void *arg)
{
    struct op *o = xcalloc(1, sizeof *o);

    o->x = x;
    o->done = done;
    o->arg = arg;
    o->next = x->ops;
    x->ops = o;
    o->v.n = x->n;
    o->v.servers = xcalloc(x->n + 1, sizeof *o->v.servers);
    return o;
}

static void read_back(struct op *o)
{
    run(o, o->x->dump, NULL, 0, dumped);
}

static void ngx_read(struct router *r, router_fn done, void *arg)
{
    read_back(op_new((struct ngx *)r, done, arg));
}

static void applied(void *arg, const struct transport_result *r)
{
    struct op *o = arg;
    char *out, *err;

    if (orphaned(o))
        return;
    out = r->out != NULL ? tail_dup(r->out, NULL) : xstrdup("");
    err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");
    if (r->status != TRANSPORT_OK) {
        op_finish(o, -1, "%s", r->msg);
    } else if (strstr(out, TAG "testfailed") != NULL) {
        op_finish(o, -1,
                  "%s refused the new upstream file; it was put back as it was, and nginx was "
                  "not reloaded: %.500s",
                  o->x->test, err);
    } else if (strstr(out, TAG "reloaded") == NULL || r->exit_code != 0) {
        op_finish(o, -1, "writing %s or %s failed (exit %d): %.500s", o->x->file, o->x->reload,
                  r->exit_code, err);
    } else {
        free(out);
        free(err);
        read_back(o);
        return;
    }
    free(out);
    free(err);
}

static void ngx_set_weights(struct router *r, const unsigned *weights, router_fn done, void *arg)
{
    struct ngx *x = (struct ngx *)r;
    struct op *o = op_new(x, done, arg);
    struct buf file, cmd;
    size_t i;

    buf_init(&file);
    buf_addf(&file, "# written by n3ctl (n3ctl traffic): every change rewrites it\nupstream %s {\n",
             x->upstream);
    for (i = 0; i < x->n; i++) {
        char addr[300];
        unsigned w = weights[i] > 100 ? 100 : weights[i];

        addr_of(&x->servers[i], addr, sizeof addr);
        if (w == 0)
            buf_addf(&file, "    server %s down;\n", addr);
        else
            buf_addf(&file, "    server %s weight=%u;\n", addr, w);
    }
    buf_adds(&file, "}\n");
    /* The new file from stdin, beside the old one; the old one kept until the test passes. */
    buf_init(&cmd);
    shell_cmdf(&cmd,
               "f=%s; had=; [ ! -e \"$f\" ] || { cp -p -- \"$f\" \"$f.n3old\" && had=1; } || "
               "exit 1; cat >\"$f.n3tmp\" && mv -f -- \"$f.n3tmp\" \"$f\" || exit 1; ",
               x->file);
    buf_adds(&cmd, "if { ");
    buf_adds(&cmd, x->test);
    buf_adds(&cmd, "\n} >&2; then rm -f -- \"$f.n3old\"; { ");
    buf_adds(&cmd, x->reload);
    buf_adds(&cmd, "\n} >&2 && echo " TAG "reloaded; else if [ -n \"$had\" ]; then mv -f -- "
                   "\"$f.n3old\" \"$f\"; else rm -f -- \"$f\"; fi; echo " TAG "testfailed; fi");
    run(o, cmd.data, file.data, file.len, applied);
    buf_done(&cmd);
    buf_done(&file);
}

/* A drain: the server down (nginx's workers finish what they have over the reload), the
 * others as nginx has them now. */
struct drain {
    struct ngx *x;
    size_t i;
    router_fn done;
    void *arg;
};

static void drain_read(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct drain *d = arg;
    unsigned *w;
    size_t i;

    if (rc != 0) {
        d->done(d->arg, rc, v, msg);
        free(d);
        return;
    }
    w = xcalloc(d->x->n + 1, sizeof *w);
    for (i = 0; i < d->x->n; i++)
        w[i] = i == d->i ? 0 : v->servers[i].weight;
    ngx_set_weights((struct router *)d->x, w, d->done, d->arg);
    free(w);
    free(d);
}

static void ngx_drain(struct router *r, size_t i, router_fn done, void *arg)
{
    struct drain *d = xcalloc(1, sizeof *d);

    d->x = (struct ngx *)r;
    d->i = i;
    d->done = done;
    d->arg = arg;
    ngx_read(r, drain_read, d);
}

const struct router_kind router_nginx = {
    .name = "nginx",
    .keys = keys,
    .check = check_config,
    .open = ngx_open,
    .set_weights = ngx_set_weights,
    .read = ngx_read,
    .drain = ngx_drain,
    .close = ngx_close,
};
