/*
 * The none router: no load balancer. Each target serves from the slot its
 * <deploy_path>/current link points to (slots/blue or slots/green), so a target's traffic is
 * all in one slot: its server has weight 100, the other 0 (the host-by-host strategies move
 * whole targets this way). The links are read on the targets, through their own transports
 * (router_server.t), not the load balancer's.
 *
 * A set gives each target one slot at 100 and the other at 0, or leaves it as it is; anything
 * else (90/10; 0/0 where current points to a slot) is refused before any link moves, naming
 * the target and why. An accepted set points current to slots/<slot> on each target whose
 * link is elsewhere, with slot_point_current (deploy/slot.h: a new link renamed over the old
 * one, atomic; deploy/shift.c points current with it too), then reads the links back. A drain
 * changes nothing: current cannot point to no slot; it answers with what is read back.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "deploy/slot.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"

#define READ_MS    30000u
#define OUTPUT_MAX 8192u
#define MSG_MAX    2048u

static const char *const keys[] = {NULL};

/* A target: its two servers (indexes into the router's, -1 when it has no such one). */
struct tgt {
    const char *name;
    struct transport *t;
    const char *deploy_path;
    int server[HS_NSLOTS];
};

struct op;

struct none {
    struct loop *loop;
    struct router_server *servers;
    size_t n;
    struct tgt *tgts;
    size_t ntgts;
    struct op *ops; /* in flight: told when the router closes */
};

enum op_kind { OP_READ, OP_SET, OP_DRAIN };

/* Each target's link, as read. */
struct link {
    bool known; /* it was read */
    int live;   /* the slot current points to, or -1: there is no current */
};

struct op {
    struct none *x; /* NULL once the router closed: what is in flight only ends */
    enum op_kind kind;
    router_fn done;
    void *arg;
    unsigned *weights; /* a set's, one a server */
    struct link *links;
    size_t pending;
    bool read_back; /* the read after the links moved */
    char *failed;   /* what could not be moved, said before what the read back found */
    struct buf errors;
    struct router_view v;
    struct op *next, *prev;
};

/* ---- opening ---- */

static struct router *none_open(const struct router_ctx *ctx, struct err *err)
{
    struct none *x;
    size_t i, k;

    for (i = 0; i < ctx->nservers; i++) {
        if (ctx->servers[i].t == NULL || ctx->servers[i].deploy_path == NULL) {
            err_set(err,
                    "router none works on the targets themselves (their current links), and "
                    "was opened without %s's connection",
                    ctx->servers[i].target);
            return NULL;
        }
    }
    x = xcalloc(1, sizeof *x);
    x->loop = ctx->loop;
    x->n = ctx->nservers;
    x->servers = xcalloc(x->n + 1, sizeof *x->servers);
    memcpy(x->servers, ctx->servers, x->n * sizeof *x->servers);
    x->tgts = xcalloc(x->n + 1, sizeof *x->tgts);
    for (i = 0; i < x->n; i++) {
        const struct router_server *s = &x->servers[i];

        for (k = 0; k < x->ntgts && strcmp(x->tgts[k].name, s->target) != 0; k++)
            ;
        if (k == x->ntgts) {
            x->tgts[k].name = s->target;
            x->tgts[k].t = s->t;
            x->tgts[k].deploy_path = s->deploy_path;
            x->tgts[k].server[HS_BLUE] = x->tgts[k].server[HS_GREEN] = -1;
            x->ntgts++;
        }
        x->tgts[k].server[s->slot] = (int)i;
    }
    return (struct router *)x;
}

static void op_free(struct op *o)
{
    buf_done(&o->errors);
    free(o->failed);
    free(o->v.servers);
    free(o->weights);
    free(o->links);
    free(o);
}

static void op_unlink(struct op *o)
{
    if (o->x == NULL)
        return;
    if (o->prev != NULL)
        o->prev->next = o->next;
    else
        o->x->ops = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    o->next = o->prev = NULL;
}

static void none_close(struct router *r)
{
    struct none *x = (struct none *)r;
    struct op *o, *next;

    /* What is in flight is told now; its commands end on their own, and free it. */
    for (o = x->ops; o != NULL; o = next) {
        next = o->next;
        o->done(o->arg, -1, NULL, "the router was closed");
        o->x = NULL;
        o->next = o->prev = NULL;
    }
    free(x->tgts);
    free(x->servers);
    free(x);
}

/* ---- the operations ---- */

static void op_finish(struct op *o, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_finish(struct op *o, int rc, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;

    msg[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    op_unlink(o);
    o->done(o->arg, rc, o->v.servers != NULL && (rc == 0 || o->read_back) ? &o->v : NULL,
            msg[0] ? msg : NULL);
    op_free(o);
}

static void add_error(struct op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_error(struct op *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (o->errors.len < MSG_MAX)
        buf_addf(&o->errors, "%s%s", o->errors.len ? "; " : "", line);
}

static void read_links(struct op *o);
static void links_read(struct op *o);

/* What `current` is, from the command of read_links: "link DEST", "none", or "other". */
static void parse_link(struct op *o, const struct tgt *g, struct link *l, const char *out)
{
    char dest[1024], shown[1024], *base, *slash;
    size_t n;

    l->live = -1;
    l->known = false;
    if (strncmp(out, "none", 4) == 0) {
        l->known = true; /* nothing deployed yet: no slot serves */
        return;
    }
    if (strncmp(out, "link ", 5) != 0) {
        add_error(o,
                  "%s's current (%s/current) is not a symlink: router none cannot tell which "
                  "slot serves",
                  g->name, g->deploy_path);
        return;
    }
    snprintf(dest, sizeof dest, "%s", out + 5);
    dest[strcspn(dest, "\n")] = '\0';
    snprintf(shown, sizeof shown, "%s", dest);
    /* "slots/blue", "./slots/blue/", "/srv/app/slots/blue" */
    for (n = strlen(dest); n > 1 && dest[n - 1] == '/'; n--)
        dest[n - 1] = '\0';
    slash = strrchr(dest, '/');
    base = slash != NULL ? slash + 1 : dest;
    if (slash != NULL) {
        *slash = '\0';
        slash = strrchr(dest, '/');
    }
    if (base != dest && strcmp(slash != NULL ? slash + 1 : dest, "slots") == 0) {
        if (strcmp(base, "blue") == 0)
            l->live = HS_BLUE;
        else if (strcmp(base, "green") == 0)
            l->live = HS_GREEN;
    }
    l->known = l->live >= 0;
    if (l->live < 0)
        add_error(o,
                  "%s's current points to %.300s, not to a slot (slots/blue or slots/green): "
                  "router none cannot tell which slot serves",
                  g->name, shown);
}

struct one {
    struct op *o;
    size_t k;
};

static void link_read(void *arg, const struct transport_result *r)
{
    struct one *w = arg;
    struct op *o = w->o;

    if (o->x == NULL) {
        /* the router closed meanwhile */
    } else if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        o->links[w->k].known = false;
        add_error(o, "cannot read %s's current link: %s", o->x->tgts[w->k].name,
                  r->status != TRANSPORT_OK ? r->msg : "the command failed");
    } else {
        char *out = tail_dup(r->out, NULL);

        parse_link(o, &o->x->tgts[w->k], &o->links[w->k], out);
        free(out);
    }
    free(w);
    if (--o->pending > 0)
        return;
    if (o->x == NULL)
        op_free(o);
    else
        links_read(o);
}

static void no_targets(void *arg)
{
    struct op *o = arg;

    if (o->x == NULL)
        op_free(o);
    else
        links_read(o);
}

static void read_links(struct op *o)
{
    struct none *x = o->x;
    size_t k;

    buf_reset(&o->errors);
    if (x->ntgts == 0) {
        loop_defer(x->loop, no_targets, o);
        return;
    }
    o->pending = x->ntgts;
    for (k = 0; k < x->ntgts; k++) {
        struct one *w = xcalloc(1, sizeof *w);
        struct buf cmd;

        w->o = o;
        w->k = k;
        buf_init(&cmd);
        shell_cmdf(&cmd,
                   "c=%s/current; if [ -L \"$c\" ]; then printf 'link %%s\\n' \"$(readlink -- "
                   "\"$c\")\"; elif [ -e \"$c\" ]; then echo other; else echo none; fi",
                   x->tgts[k].deploy_path);
        transport_sh_read(x->tgts[k].t, cmd.data, READ_MS, OUTPUT_MAX, link_read, w);
        buf_done(&cmd);
    }
}

/* The view from the links: 100 for the slot current points to, 0 for the other. */
static void fill_view(struct op *o)
{
    struct none *x = o->x;
    size_t k;
    int s;

    for (k = 0; k < x->ntgts; k++) {
        for (s = 0; s < HS_NSLOTS; s++) {
            int i = x->tgts[k].server[s];
            struct router_server_view *sv;

            if (i < 0 || !o->links[k].known)
                continue;
            sv = &o->v.servers[i];
            sv->found = true;
            sv->weight = o->links[k].live == s ? 100 : 0;
            sv->up = sv->weight > 0;
            snprintf(sv->state, sizeof sv->state, "ready");
        }
    }
}

/* A set's weights for target k: the slot to point current to (0 or 1), -2 when it stays as
 * it is, -1 when router none cannot do it (said in o->errors). */
static int wanted(struct op *o, size_t k)
{
    const struct tgt *g = &o->x->tgts[k];
    unsigned w[HS_NSLOTS], now[HS_NSLOTS];
    int s;

    for (s = 0; s < HS_NSLOTS; s++) {
        int i = g->server[s];

        w[s] = i < 0 ? 0 : o->weights[i] > 100 ? 100 : o->weights[i];
        now[s] = o->links[k].live == s ? 100 : 0;
    }
    if (w[HS_BLUE] == now[HS_BLUE] && w[HS_GREEN] == now[HS_GREEN])
        return -2;
    if (w[HS_BLUE] == 100 && w[HS_GREEN] == 0)
        return HS_BLUE;
    if (w[HS_BLUE] == 0 && w[HS_GREEN] == 100)
        return HS_GREEN;
    if (w[HS_BLUE] > 0 && w[HS_GREEN] > 0)
        add_error(o,
                  "router none cannot split %s's traffic (asked blue %u, green %u): each target "
                  "serves from one slot; use haproxy or nginx for weights",
                  g->name, w[HS_BLUE], w[HS_GREEN]);
    else if (w[HS_BLUE] == 0 && w[HS_GREEN] == 0)
        add_error(o,
                  "router none cannot take all of %s's traffic away (asked blue 0, green 0): its "
                  "current link always points to one slot",
                  g->name);
    else
        add_error(o,
                  "router none gives %s's traffic to one slot, all of it (asked blue %u, green "
                  "%u): each target serves from one slot at 100; use haproxy or nginx for weights",
                  g->name, w[HS_BLUE], w[HS_GREEN]);
    return -1;
}

static void links_moved(struct op *o)
{
    /* Read back; what failed to move is said first. */
    if (o->errors.len > 0)
        o->failed = buf_detach(&o->errors, NULL);
    o->read_back = true;
    read_links(o);
}

static void linked(void *arg, const struct transport_result *r)
{
    struct one *w = arg;
    struct op *o = w->o;

    if (o->x != NULL && (r->status != TRANSPORT_OK || r->exit_code != 0))
        add_error(o, "%s: current could not be pointed to slots/%s: %s", o->x->tgts[w->k].name,
                  hs_slot_name((enum hs_slot)o->links[w->k].live),
                  r->status != TRANSPORT_OK ? r->msg : "the command failed");
    free(w);
    if (--o->pending > 0)
        return;
    if (o->x == NULL)
        op_free(o);
    else
        links_moved(o);
}

static void move_links(struct op *o)
{
    struct none *x = o->x;
    int *to = xcalloc(x->ntgts + 1, sizeof *to);
    size_t k;

    for (k = 0; k < x->ntgts; k++)
        to[k] = wanted(o, k);
    if (o->errors.len > 0) {
        free(to);
        op_finish(o, -1, "%s; nothing was changed", o->errors.data);
        return;
    }
    o->pending = 1; /* until every move has started */
    for (k = 0; k < x->ntgts; k++) {
        struct one *w;

        if (to[k] < 0)
            continue;
        w = xcalloc(1, sizeof *w);
        w->o = o;
        w->k = k;
        o->links[k].live = to[k];
        o->pending++;
        slot_point_current(x->tgts[k].t, x->tgts[k].deploy_path, (enum hs_slot)to[k], linked, w);
    }
    free(to);
    if (--o->pending == 0)
        links_moved(o); /* nothing to move: every target is as asked */
}

static void links_read(struct op *o)
{
    if (o->read_back) {
        fill_view(o);
        if (o->failed != NULL || o->errors.len > 0)
            op_finish(o, -1, "%s%s%s", o->failed != NULL ? o->failed : "",
                      o->failed != NULL && o->errors.len > 0 ? "; " : "", o->errors.data);
        else
            op_finish(o, 0, NULL);
        return;
    }
    if (o->errors.len > 0) {
        op_finish(o, -1, "%s", o->errors.data);
        return;
    }
    fill_view(o);
    if (o->kind == OP_SET)
        move_links(o);
    else
        op_finish(o, 0, NULL);
}

static void start(struct none *x, enum op_kind kind, const unsigned *weights, router_fn done,
                  void *arg)
{
    struct op *o = xcalloc(1, sizeof *o);

    o->x = x;
    o->kind = kind;
    o->done = done;
    o->arg = arg;
    buf_init(&o->errors);
    o->v.n = x->n;
    o->v.servers = xcalloc(x->n + 1, sizeof *o->v.servers);
    o->links = xcalloc(x->ntgts + 1, sizeof *o->links);
    if (weights != NULL) {
        o->weights = xcalloc(x->n + 1, sizeof *o->weights);
        memcpy(o->weights, weights, x->n * sizeof *o->weights);
    }
    o->next = x->ops;
    if (x->ops != NULL)
        x->ops->prev = o;
    x->ops = o;
    read_links(o);
}

static void none_read(struct router *r, router_fn done, void *arg)
{
    start((struct none *)r, OP_READ, NULL, done, arg);
}

static void none_set_weights(struct router *r, const unsigned *weights, router_fn done, void *arg)
{
    start((struct none *)r, OP_SET, weights, done, arg);
}

static void none_drain(struct router *r, size_t i, router_fn done, void *arg)
{
    (void)i; /* current cannot point to no slot: nothing to do but say what is there */
    start((struct none *)r, OP_DRAIN, NULL, done, arg);
}

static int check_config(const struct cfg *c, const cJSON *r, struct err *err)
{
    if (cfg_has(r, "on"))
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(r, "on"),
                         "router none works on the targets themselves (their current link): "
                         "it runs on no host of its own");
    return 0;
}

const struct router_kind router_none = {
    .name = "none",
    .keys = keys,
    .no_weights = true,
    .check = check_config,
    .open = none_open,
    .set_weights = none_set_weights,
    .read = none_read,
    .drain = none_drain,
    .close = none_close,
};
