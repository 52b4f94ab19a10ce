/* n3ctl slots, slot start|stop, traffic [set]: the instances of an environment and its traffic. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/outfile.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "cli/term.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "deploy/health.h"
#include "deploy/hoststate.h"
#include "deploy/inventory.h"
#include "deploy/metricsrc.h"
#include "deploy/release.h"
#include "deploy/remote.h"
#include "deploy/service.h"
#include "deploy/shift.h"
#include "deploy/slot.h"
#include "deploy/survey.h"
#include "deploy/traffic.h"
#include "plugins/httpc.h"

/* What the commands share: the change, an HTTP client for the probes, the router, the metric
 * source. */
struct ctx {
    struct change c;
    struct httpc *http;
    struct traffic *traffic;
    struct metricsrc *metrics;
};

/* Open the change; with needs_router, an environment without a router is refused (exit 2). */
static int ctx_open(struct ctx *x, const struct fleet_args *fa, const char *action,
                    bool needs_router)
{
    struct err err;
    int rc;

    memset(x, 0, sizeof *x);
    rc = change_open(&x->c, fa, action);
    if (rc != 0)
        return rc;
    if (needs_router && inv_env_router(x->c.s.fleet.env) == NULL) {
        traffic_open(x->c.s.loop, x->c.s.fleet.env, NULL, NULL, &err); /* it says what is missing */
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return change_end(&x->c, EXIT_USAGE, NULL, NULL);
    }
    return 0;
}

/* Take the lock (when message is not NULL), then the HTTP client and the router (those live
 * on the change's loop, which a failed lock closes). 0, or an exit status (the change ended). */
static int ctx_lock(struct ctx *x, const char *message)
{
    int rc = message != NULL ? change_lock(&x->c, message) : 0;

    if (rc != 0)
        return rc;
    x->http = httpc_new(x->c.s.loop);
    return 0;
}

/* The router, when the environment has one: 0 (x->traffic NULL without one), or -1 (said). */
static int ctx_router(struct ctx *x, bool needed)
{
    struct err err;

    if (inv_env_router(x->c.s.fleet.env) == NULL && !needed)
        return 0;
    x->traffic = traffic_open(x->c.s.loop, x->c.s.fleet.env, NULL, x->c.s.remote, &err);
    if (x->traffic == NULL) {
        term_printf(stderr, "n3ctl: %s%s\n", needed ? "" : "warning: ", err.msg);
        return needed ? -1 : 0;
    }
    return 0;
}

/* The metric source, when the environment has one (a warning when it cannot be opened). */
static void ctx_metrics(struct ctx *x)
{
    struct err err;

    if (inv_env_metrics(x->c.s.fleet.env) == NULL)
        return;
    x->metrics =
        metricsrc_open_env(x->c.s.loop, &x->c.s.fleet, x->http, x->traffic, x->c.s.remote, &err);
    if (x->metrics == NULL)
        term_printf(stderr, "n3ctl: warning: no request figures: %s\n", err.msg);
}

static int ctx_end(struct ctx *x, int rc, const char *result, const cJSON *detail)
{
    /* The metric source, the router and the client first: they are on the change's loop (the
     * source reads through the router and the client). */
    metricsrc_close(x->metrics);
    x->metrics = NULL;
    traffic_close(x->traffic);
    x->traffic = NULL;
    httpc_free(x->http);
    x->http = NULL;
    return change_end(&x->c, rc, result, detail);
}

/* Parse the options every command here takes; -1 on a usage error (said), 1 for --help. */
struct opts {
    struct fleet_args fa;
    bool json, watch, force;
    unsigned interval_s;
    uint64_t rate_wait_ms;
    uint64_t metrics_interval_ms;           /* the source's, for the watch's line */
    const char *metrics_path, *traces_path; /* slot: --metrics, --traces */
    int first;
};

/* Seconds, 0 to max, with decimals, into ms; false (said) when it is not that. */
static bool parse_seconds(const struct cli_cmd *cmd, const char *opt, const char *s, double max,
                          uint64_t *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || !(v >= 0 && v <= max)) {
        cli_usage_error(cmd, "%s wants seconds from 0 to %g (0.5 is half a second), not \"%.40s\"",
                        opt, max, s);
        return false;
    }
    *out = (uint64_t)llround(v * 1000.0);
    return true;
}

static int parse(const struct cli_cmd *cmd, int argc, char **argv, struct opts *o)
{
    const char *arg;
    int opt;

    memset(o, 0, sizeof *o);
    o->interval_s = 2;
    o->rate_wait_ms = 1000;
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &o->first)) != -1) {
        int taken = fleet_args_take(&o->fa, cmd, opt, arg);

        if (taken < 0)
            return -1;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'j':
            o->json = true;
            break;
        case 'w':
            o->watch = true;
            break;
        case 'f':
            o->force = true;
            break;
        case 'i':
            if (!cli_parse_uint(cmd, "--interval", arg, 1, 3600, &o->interval_s))
                return -1;
            break;
        case 'r':
            if (!parse_seconds(cmd, "--rate-wait", arg, 60, &o->rate_wait_ms))
                return -1;
            break;
        case 'm':
            o->metrics_path = arg;
            break;
        case 't':
            o->traces_path = arg;
            break;
        case CLI_OPT_HELP:
            return 1;
        default:
            return -1;
        }
    }
    return 0;
}

static const char *state_word(const struct survey_instance *in)
{
    if (in->look.rc != 0)
        return "error";
    if (in->starting)
        return "starting";
    return service_state_name(in->look.service.state);
}

static const char *health_word(const struct survey_instance *in)
{
    if (in->look.rc != 0 || in->look.service.state == SERVICE_STOPPED)
        return "-";
    return health_state_name(in->look.health);
}

static const char *reason(const struct survey_instance *in)
{
    if (in->look.rc != 0)
        return in->look.msg;
    if (in->look.service.state == SERVICE_STOPPED)
        return "";
    return in->look.health_msg;
}

/* "90 %" of a share, or "-". */
static void share_text(double share, char *out, size_t len)
{
    if (share < 0)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.0f %%", share);
}

static void print_router_line(FILE *out, const struct survey *s)
{
    char b[16], g[16];

    if (s->router == NULL) {
        fprintf(out, "* live: current points to it. No router: each target's traffic goes "
                     "to its live slot\n");
        return;
    }
    if (!s->router_read) {
        term_printf(out, "router %s: cannot read it: %s\n", s->router, s->router_error);
        return;
    }
    share_text(s->share[HS_BLUE], b, sizeof b);
    share_text(s->share[HS_GREEN], g, sizeof g);
    fprintf(out, "* live: current points to it. Traffic (%s, read back): blue %s, green %s\n",
            s->router, b, g);
}

/* A latency for people: "0.4ms", "12ms", "1.25s"; ">10.00s" when it is past the histogram's
 * highest finite bound (at least that). */
static void latency_text(double s, bool capped, char *out, size_t len)
{
    double ms = s * 1000.0;
    const char *gt = capped ? ">" : "";

    if (ms < 10)
        snprintf(out, len, "%s%.1fms", gt, ms);
    else if (ms < 1000)
        snprintf(out, len, "%s%.0fms", gt, ms);
    else
        snprintf(out, len, "%s%.2fs", gt, s);
}

/* The REQ/S, ERR% and P95 cells of an instance ("-" when unknown). */
static void figure_cells(const struct survey_instance *in, char *req, char *err, char *p95,
                         size_t len)
{
    const struct metricsrc_figures *f = &in->figures;

    snprintf(req, len, "-");
    snprintf(err, len, "-");
    snprintf(p95, len, "-");
    if (!in->measured)
        return;
    if (f->rate_known)
        snprintf(req, len, "%.1f", f->req_s);
    if (f->error_known)
        snprintf(err, len, "%.1f%%", 100.0 * f->error_rate);
    if (f->latency_known)
        latency_text(f->p95_s, f->latency_capped, p95, len);
}

/* What the figures are over: the two reads of a one-shot, or the watch's window. */
static void print_metrics_line(FILE *out, const struct survey *s, const struct opts *o)
{
    if (s->metrics == NULL)
        return;
    if (o->watch)
        fprintf(out, "Requests (%s): over the last %g s, read every %llu ms\n", s->metrics,
                (double)s->metrics_window_ms / 1000.0, (unsigned long long)o->metrics_interval_ms);
    else if (o->rate_wait_ms > 0)
        fprintf(out, "Requests (%s): over %g s between two reads (--rate-wait)\n", s->metrics,
                (double)o->rate_wait_ms / 1000.0);
    else
        fprintf(out, "Requests (%s): one read, no rate (--rate-wait 0)\n", s->metrics);
}

static void print_survey(FILE *out, const struct survey *s, const struct opts *o, unsigned width)
{
    static const char *const head[] = {"TARGET", "SLOT",   "VERSION", "STATE", "PID", "PORT",
                                       "HEALTH", "WEIGHT", "REQ/S",   "ERR%",  "P95", "REASON"};
    static const char *const head_plain[] = {"TARGET", "SLOT",   "VERSION", "STATE", "PID",
                                             "PORT",   "HEALTH", "WEIGHT",  "REASON"};
    bool figures = s->metrics != NULL;
    size_t ncols = figures ? 12 : 9;
    struct table *t = table_new(ncols, figures ? head : head_plain);
    size_t i;

    for (i = 0; i < s->n; i++) {
        const struct survey_instance *in = &s->inst[i];
        char slot[16], pid[24], port[16], weight[48], req[32], err[32], p95[32];
        const char *cells[12];
        size_t c = 0;

        snprintf(slot, sizeof slot, "%s%s", hs_slot_name(in->slot), in->live ? " *" : "");
        if (in->look.service.pid > 0)
            snprintf(pid, sizeof pid, "%ld", in->look.service.pid);
        else
            snprintf(pid, sizeof pid, "-");
        snprintf(port, sizeof port, "%u", in->look.port);
        if (!in->routed)
            snprintf(weight, sizeof weight, "-");
        else if (!in->route.found)
            snprintf(weight, sizeof weight, "absent");
        else if (strcmp(in->route.state, "ready") != 0 && in->route.state[0] != '\0')
            snprintf(weight, sizeof weight, "%u (%s)", in->route.weight, in->route.state);
        else
            snprintf(weight, sizeof weight, "%u", in->route.weight);
        figure_cells(in, req, err, p95, sizeof req);
        cells[c++] = in->target;
        cells[c++] = slot;
        cells[c++] = in->look.version[0] ? in->look.version : NULL;
        cells[c++] = state_word(in);
        cells[c++] = pid;
        cells[c++] = in->look.port ? port : NULL;
        cells[c++] = health_word(in);
        cells[c++] = weight;
        if (figures) {
            cells[c++] = req;
            cells[c++] = err;
            cells[c++] = p95;
        }
        cells[c++] = reason(in);
        table_row(t, cells);
    }
    table_print(t, out, width);
    table_free(t);
    print_router_line(out, s);
    print_metrics_line(out, s, o);
}

static void add_or_null(cJSON *o, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0')
        cJSON_AddStringToObject(o, key, value);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_number_or_null(cJSON *o, const char *key, bool known, double v)
{
    if (known && isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* An instance's figures: null where unknown (or without a metric source), never 0 for it. */
static void figures_json(cJSON *o, const struct survey_instance *in)
{
    const struct metricsrc_figures *f = &in->figures;
    bool m = in->measured;

    add_number_or_null(o, "req_s", m && f->rate_known, f->req_s);
    add_number_or_null(o, "error_rate", m && f->error_known, f->error_rate);
    add_number_or_null(o, "p50_ms", m && f->latency_known, f->p50_s * 1000.0);
    add_number_or_null(o, "p95_ms", m && f->latency_known, f->p95_s * 1000.0);
    add_number_or_null(o, "p99_ms", m && f->latency_known, f->p99_s * 1000.0);
    if (m && f->latency_known)
        cJSON_AddBoolToObject(o, "latency_capped", f->latency_capped);
    add_number_or_null(o, "samples", m && f->rate_known, (double)f->samples);
    add_number_or_null(o, "metrics_span_s", m && f->rate_known, f->span_s);
    add_number_or_null(o, "metrics_resets", m, f->resets);
    add_number_or_null(o, "metrics_bad_lines", m, f->bad_lines); /* of the newest read */
    add_or_null(o, "metrics_why", m ? f->why : NULL);
}

static cJSON *survey_json(const struct survey *s, const char *env)
{
    cJSON *doc = cJSON_CreateObject(), *arr, *router;
    size_t i;
    int k;

    cJSON_AddStringToObject(doc, "environment", env);
    if (s->router != NULL) {
        router = cJSON_AddObjectToObject(doc, "router");
        cJSON_AddStringToObject(router, "type", s->router);
        cJSON_AddBoolToObject(router, "read", s->router_read);
        if (!s->router_read) {
            cJSON_AddStringToObject(router, "error", s->router_error);
        } else {
            cJSON *share = cJSON_AddObjectToObject(router, "share");

            for (k = 0; k < HS_NSLOTS; k++) {
                if (s->share[k] < 0)
                    cJSON_AddNullToObject(share, hs_slot_name((enum hs_slot)k));
                else
                    cJSON_AddNumberToObject(share, hs_slot_name((enum hs_slot)k), s->share[k]);
            }
        }
    } else {
        cJSON_AddNullToObject(doc, "router");
    }
    if (s->metrics != NULL) {
        cJSON *m = cJSON_AddObjectToObject(doc, "metrics");

        cJSON_AddStringToObject(m, "source", s->metrics);
        cJSON_AddNumberToObject(m, "window_s", (double)s->metrics_window_ms / 1000.0);
    } else {
        cJSON_AddNullToObject(doc, "metrics");
    }
    arr = cJSON_AddArrayToObject(doc, "instances");
    for (i = 0; i < s->n; i++) {
        const struct survey_instance *in = &s->inst[i];
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "target", in->target);
        cJSON_AddStringToObject(o, "slot", hs_slot_name(in->slot));
        add_or_null(o, "version", in->look.version);
        cJSON_AddStringToObject(o, "state", state_word(in));
        if (in->look.service.pid > 0)
            cJSON_AddNumberToObject(o, "pid", (double)in->look.service.pid);
        else
            cJSON_AddNullToObject(o, "pid");
        cJSON_AddNumberToObject(o, "port", in->look.port);
        cJSON_AddBoolToObject(o, "listening", in->look.service.listening);
        add_or_null(o, "health", strcmp(health_word(in), "-") != 0 ? health_word(in) : NULL);
        add_or_null(o, "reason", reason(in));
        if (in->routed && in->route.found) {
            cJSON_AddNumberToObject(o, "weight", in->route.weight);
            cJSON_AddStringToObject(o, "router_state", in->route.state);
            cJSON_AddNumberToObject(o, "sessions", (double)in->route.sessions);
        } else {
            cJSON_AddNullToObject(o, "weight");
        }
        cJSON_AddBoolToObject(o, "live", in->live);
        figures_json(o, in);
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

/* ---- n3ctl slots ---- */

struct survey_wait {
    bool done;
    struct survey *s;
};

static void surveyed(void *arg, struct survey *s)
{
    struct survey_wait *w = arg;

    w->s = s;
    w->done = true;
}

static void tick(void *arg)
{
    *(bool *)arg = true;
}

/* 0 when everything could be read, 1 otherwise. */
static int survey_rc(const struct survey *s)
{
    size_t i;

    if (s->router != NULL && !s->router_read)
        return EXIT_FAILED;
    for (i = 0; i < s->n; i++) {
        if (s->inst[i].look.rc != 0)
            return EXIT_FAILED;
    }
    return EXIT_OK;
}

int cmd_slots(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct opts o;
    struct ctx x;
    struct loop_timer *timer;
    bool tty = term_is_tty(stdout), next = false;
    int rc = EXIT_OK, p;

    p = parse(cmd, argc, argv, &o);
    if (p != 0)
        return p > 0 ? EXIT_OK : EXIT_USAGE;
    if (o.first < argc) {
        cli_usage_error(cmd, "takes no arguments (targets are chosen with -H)");
        return EXIT_USAGE;
    }
    rc = ctx_open(&x, &o.fa, "slots", false);
    if (rc == 0)
        rc = ctx_lock(&x, NULL);
    if (rc != 0)
        return rc;
    ctx_router(&x, false);
    ctx_metrics(&x);
    if (x.metrics != NULL) {
        o.metrics_interval_ms = metricsrc_get_spec(x.metrics)->interval_ms;
        /* A watch shows the sliding window: the source is read every interval meanwhile. */
        if (o.watch)
            metricsrc_start(x.metrics);
    }
    timer = loop_timer_new(x.c.s.loop, tick, &next);
    for (;;) {
        struct survey_wait w = {0};
        struct survey_req req;

        memset(&req, 0, sizeof req);
        req.loop = x.c.s.loop;
        req.remote = x.c.s.remote;
        req.fleet = &x.c.s.fleet;
        req.traffic = x.traffic;
        req.http = x.http;
        req.metrics = x.metrics;
        req.rate_wait_ms = o.rate_wait_ms;
        survey_take(&req, surveyed, &w);
        change_wait(&x.c, &w.done);
        if (!w.done || x.c.signals > 0)
            break;
        rc = survey_rc(w.s);
        if (o.json) {
            /* One document, or with --watch one a line each time (JSON lines). */
            cJSON *doc = survey_json(w.s, inv_env_name(x.c.s.fleet.env));

            if (o.watch)
                term_put_json_line(stdout, doc);
            else
                term_put_json(stdout, doc);
            cJSON_Delete(doc);
        } else {
            if (o.watch) {
                char when[32];
                time_t now = time(NULL);
                struct tm tm;

                localtime_r(&now, &tm);
                strftime(when, sizeof when, "%H:%M:%S", &tm);
                /* On a terminal, the table is drawn over the last one, as watch(1) does. */
                if (tty)
                    fputs("\033[H\033[2J", stdout);
                printf("n3ctl slots, %s: every %us (Ctrl-C ends)   %s\n\n",
                       inv_env_name(x.c.s.fleet.env), o.interval_s, when);
            }
            print_survey(stdout, w.s, &o, tty ? term_width(stdout) : 0);
        }
        fflush(stdout);
        survey_free(w.s);
        if (!o.watch)
            break;
        if (!tty && !o.json)
            putchar('\n');
        next = false;
        loop_timer_start(timer, o.interval_s * 1000u);
        while (!next && x.c.signals == 0 && !x.c.s.abandon)
            loop_run_once(x.c.s.loop, true);
        if (x.c.signals > 0)
            break;
    }
    loop_timer_free(timer);
    if (o.watch && x.c.signals > 0)
        rc = EXIT_OK; /* Ctrl-C is how a watch ends */
    else
        rc = change_exit_code(&x.c, rc);
    return ctx_end(&x, rc, NULL, NULL);
}

/* ---- n3ctl slot start|stop ---- */

struct slot_fan {
    struct ctx *x;
    size_t left;
    size_t failed, refused;
    bool done;
    cJSON *targets;
};

struct slot_one {
    struct slot_fan *f;
    const char *target;
};

static void slot_done(void *arg, const struct slot_result *r)
{
    struct slot_one *s = arg;
    struct slot_fan *f = s->f;
    cJSON *o = cJSON_CreateObject();
    struct buf shown;
    const char *p;

    buf_init(&shown);
    term_add_text(&shown, r->msg, strlen(r->msg));
    fprintf(stderr, "  %s: %s", s->target, r->rc == 0 ? "" : r->rc == 3 ? "REFUSED: " : "FAILED: ");
    /* A message of several lines (a log's tail): its lines after the first indented. */
    for (p = shown.data; *p != '\0'; p++) {
        fputc(*p, stderr);
        if (*p == '\n' && p[1] != '\0')
            fputs("      ", stderr);
    }
    fputc('\n', stderr);
    buf_done(&shown);
    cJSON_AddStringToObject(o, "target", s->target);
    cJSON_AddStringToObject(o, "result", r->rc == 0 ? "ok" : r->rc == 3 ? "refused" : "failed");
    if (r->version[0])
        cJSON_AddStringToObject(o, "version", r->version);
    cJSON_AddStringToObject(o, "message", r->msg);
    cJSON_AddItemToArray(f->targets, o);
    f->failed += r->rc != 0 && r->rc != 3;
    f->refused += r->rc == 3;
    f->done = --f->left == 0;
    free(s);
}

/* The releases missing on the targets: whether version is on each (read from state.json). */
struct have_wait {
    size_t left, missing, unreadable;
    bool done;
    const char *version;
};

static void have_read(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct have_wait *w = arg;

    (void)warning;
    (void)msg;
    if (s == NULL)
        w->unreadable++;
    else if (hoststate_find(s, w->version) == NULL)
        w->missing++;
    hoststate_free(s);
    w->done = --w->left == 0;
}

/* Does the router give target's slot traffic? 1 yes (its weight in *weight), 0 no, -1 the
 * router could not be read (said). */
struct route_wait {
    bool done;
    int rc;
    struct router_view *v;
    char msg[1024];
};

static void route_read(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct route_wait *w = arg;

    w->rc = rc;
    if (v != NULL)
        w->v = router_view_dup(v);
    snprintf(w->msg, sizeof w->msg, "%s", msg != NULL ? msg : "");
    w->done = true;
}

/* Slots with traffic refuse a stop unless forced; the others are drained first. */
static int stop_check_traffic(struct ctx *x, enum hs_slot slot, bool force)
{
    struct route_wait w = {0};
    size_t i;
    int refused = 0;

    if (x->traffic == NULL)
        return 0;
    traffic_read(x->traffic, route_read, &w);
    change_wait(&x->c, &w.done);
    if (!w.done)
        return -1;
    if (w.rc != 0) {
        term_printf(stderr, "n3ctl: cannot read the router (%s): %s; stopping nothing\n",
                    traffic_kind(x->traffic), w.msg);
        router_view_free(w.v);
        return -1;
    }
    for (i = 0; i < x->c.s.fleet.n; i++) {
        int at = traffic_find(x->traffic, x->c.s.fleet.names[i], slot);
        const struct router_server_view *sv;

        if (at < 0 || (size_t)at >= w.v->n)
            continue;
        sv = &w.v->servers[at];
        if (!sv->found || sv->weight == 0 || strcmp(sv->state, "drain") == 0 ||
            strcmp(sv->state, "maint") == 0)
            continue;
        if (!force) {
            term_printf(stderr,
                        "n3ctl: slot %s on %s has traffic (weight %u in %s, read back): move it "
                        "first (n3ctl traffic set %s=0), or --force drains and stops it\n",
                        hs_slot_name(slot), x->c.s.fleet.names[i], sv->weight,
                        traffic_kind(x->traffic), hs_slot_name(slot));
            refused++;
        }
    }
    router_view_free(w.v);
    return refused > 0 ? 3 : 0;
}

/* Drain the slot's servers on the selected targets, and wait (up to the grace period) until
 * the router says they have no requests in flight. */
static void drain_servers(struct ctx *x, enum hs_slot slot)
{
    const struct inv_service *svc = inv_env_service(x->c.s.fleet.env);
    uint64_t deadline = loop_now_ms(x->c.s.loop) + (svc != NULL ? svc->stop_grace_ms : 10000);
    size_t i;

    for (i = 0; i < x->c.s.fleet.n; i++) {
        int at = traffic_find(x->traffic, x->c.s.fleet.names[i], slot);
        struct route_wait w = {0};

        if (at < 0)
            continue;
        traffic_drain(x->traffic, (size_t)at, route_read, &w);
        change_wait(&x->c, &w.done);
        if (w.done && w.rc != 0)
            term_printf(stderr, "n3ctl: warning: draining %s %s: %s\n", x->c.s.fleet.names[i],
                        hs_slot_name(slot), w.msg);
        router_view_free(w.v);
    }
    for (;;) {
        struct route_wait w = {0};
        uint64_t busy = 0;
        bool next = false;
        struct loop_timer *t;

        traffic_read(x->traffic, route_read, &w);
        change_wait(&x->c, &w.done);
        if (!w.done || w.rc != 0) {
            router_view_free(w.v);
            return;
        }
        for (i = 0; i < x->c.s.fleet.n; i++) {
            int at = traffic_find(x->traffic, x->c.s.fleet.names[i], slot);

            if (at >= 0 && (size_t)at < w.v->n)
                busy += w.v->servers[at].sessions;
        }
        router_view_free(w.v);
        if (busy == 0 || loop_now_ms(x->c.s.loop) >= deadline)
            return;
        t = loop_timer_new(x->c.s.loop, tick, &next);
        loop_timer_start(t, 100);
        change_wait(&x->c, &next);
        loop_timer_free(t);
    }
}

#define SLOT_TRACE_RING 65536 /* spans kept: a check a probe an interval, for minutes */

/* The --metrics and --traces files of a command that did nothing: not written. */
static void discard_files(struct outfile *a, struct outfile *b)
{
    outfile_close(a, false);
    outfile_close(b, false);
}

/* --metrics and --traces: what the probes did, each file whole or not at all. 0, or -1. */
static int write_observed(struct outfile *mout, struct metrics *m, struct outfile *tout,
                          struct trace *tr)
{
    struct buf text;
    int rc = 0;

    buf_init(&text);
    if (m != NULL) {
        metrics_write_prometheus(m, &text);
        if (fwrite(text.data, 1, text.len, mout->f) != text.len)
            rc = -1;
        if (outfile_close(mout, rc == 0) != 0)
            rc = -1;
        buf_reset(&text);
    }
    if (tr != NULL) {
        int wrc = 0;

        if (trace_dropped(tr) > 0)
            fprintf(stderr,
                    "n3ctl: warning: %llu probe spans did not fit in the trace (the first "
                    "ones): the file has the last %zu\n",
                    (unsigned long long)trace_dropped(tr), trace_count(tr));
        trace_write_jsonl(tr, &text);
        if (text.len > 0 && fwrite(text.data, 1, text.len, tout->f) != text.len)
            wrc = -1;
        if (outfile_close(tout, wrc == 0) != 0 || wrc != 0)
            rc = -1;
    }
    buf_done(&text);
    metrics_free(m);
    trace_free(tr);
    return rc;
}

int cmd_slot(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct opts o;
    struct ctx x;
    struct slot_fan f = {0};
    enum hs_slot slot;
    const char *what, *version = NULL;
    char message[300], action[32];
    cJSON *detail;
    size_t i;
    bool start;
    int rc, p;
    struct outfile mout = {0}, tout = {0};
    struct metrics *metrics = NULL;
    struct trace *trace = NULL;

    p = parse(cmd, argc, argv, &o);
    if (p != 0)
        return p > 0 ? EXIT_OK : EXIT_USAGE;
    if (argc - o.first < 3) {
        cli_usage_error(cmd, "say what, where and which slot: slot start TARGETS SLOT [VERSION] "
                             "or slot stop TARGETS SLOT");
        return EXIT_USAGE;
    }
    what = argv[o.first];
    start = strcmp(what, "start") == 0;
    if (!start && strcmp(what, "stop") != 0) {
        cli_usage_error(cmd, "unknown subcommand \"%s\": start or stop", what);
        return EXIT_USAGE;
    }
    if (slot_parse(argv[o.first + 2], &slot) != 0) {
        cli_usage_error(cmd, "\"%s\" is not a slot: blue or green", argv[o.first + 2]);
        return EXIT_USAGE;
    }
    if (argc - o.first > (start ? 4 : 3)) {
        cli_usage_error(cmd, "too many arguments");
        return EXIT_USAGE;
    }
    if (start && argc - o.first == 4)
        version = argv[o.first + 3];
    if (o.fa.nsel > 0) {
        cli_usage_error(cmd, "the targets are the second argument, not -H");
        return EXIT_USAGE;
    }
    o.fa.selectors[0] = argv[o.first + 1];
    o.fa.selectors[1] = NULL;
    o.fa.nsel = 1;
    if (!start && (o.metrics_path != NULL || o.traces_path != NULL)) {
        cli_usage_error(cmd, "--metrics and --traces are for slot start (its probes)");
        return EXIT_USAGE;
    }
    /* The files first: a name that cannot be written changes nothing. */
    if (o.metrics_path != NULL && outfile_open(cmd, &mout, o.metrics_path) != 0)
        return EXIT_USAGE;
    if (o.traces_path != NULL && outfile_open(cmd, &tout, o.traces_path) != 0) {
        outfile_close(&mout, false);
        return EXIT_USAGE;
    }
    snprintf(action, sizeof action, "slot.%s", what);
    rc = ctx_open(&x, &o.fa, action, false);
    if (rc != 0) {
        discard_files(&mout, &tout);
        return rc;
    }
    if (inv_env_service(x.c.s.fleet.env) == NULL) {
        fprintf(stderr,
                "n3ctl: environment %s has no service in n3.json: say how its slots start "
                "(\"service\": {\"ports\", \"start\"}, docs/config.md)\n",
                inv_env_name(x.c.s.fleet.env));
        discard_files(&mout, &tout);
        return ctx_end(&x, EXIT_USAGE, NULL, NULL);
    }
    snprintf(message, sizeof message, "slot %s %s %s%s%s", what, argv[o.first + 1],
             hs_slot_name(slot), version ? " " : "", version ? version : "");
    rc = ctx_lock(&x, message);
    if (rc != 0) {
        discard_files(&mout, &tout);
        return rc;
    }
    if (ctx_router(&x, false) != 0) {
        discard_files(&mout, &tout);
        return ctx_end(&x, EXIT_FAILED, "failed", NULL);
    }
    if (start && version != NULL) {
        /* The release first, where it is missing. */
        struct have_wait h = {0};

        h.version = version;
        h.left = x.c.s.fleet.n;
        for (i = 0; i < x.c.s.fleet.n; i++) {
            const struct inv_target *t = inv_env_find(x.c.s.fleet.env, x.c.s.fleet.names[i]);

            release_read_state(remote_transport(x.c.s.remote, t->name), t, have_read, &h);
        }
        change_wait(&x.c, &h.done);
        if (h.done && h.missing + h.unreadable > 0) {
            fprintf(stderr, "%s is not on %zu target%s (of %zu): pushing it first\n", version,
                    h.missing + h.unreadable, h.missing + h.unreadable == 1 ? "" : "s",
                    x.c.s.fleet.n);
            rc = change_push_release(&x.c, version, 8);
            if (rc != 0) {
                discard_files(&mout, &tout);
                return ctx_end(&x, rc, "failed", NULL);
            }
        }
    }
    if (!start) {
        rc = stop_check_traffic(&x, slot, o.force);
        if (rc != 0)
            return ctx_end(&x, rc < 0 ? EXIT_FAILED : EXIT_REFUSED, rc < 0 ? "failed" : "refused",
                           NULL);
        if (x.traffic != NULL)
            drain_servers(&x, slot);
    }
    fprintf(stderr, "%s %s on %zu target%s\n", start ? "starting" : "stopping", hs_slot_name(slot),
            x.c.s.fleet.n, x.c.s.fleet.n == 1 ? "" : "s");
    if (o.metrics_path != NULL)
        metrics = metrics_new();
    if (o.traces_path != NULL)
        trace = trace_new(x.c.s.loop, SLOT_TRACE_RING);
    f.x = &x;
    f.left = x.c.s.fleet.n;
    f.targets = cJSON_CreateArray();
    for (i = 0; i < x.c.s.fleet.n; i++) {
        struct slot_one *s = xcalloc(1, sizeof *s);
        struct slot_req req;

        s->f = &f;
        s->target = x.c.s.fleet.names[i];
        memset(&req, 0, sizeof req);
        req.loop = x.c.s.loop;
        req.t = remote_transport(x.c.s.remote, s->target);
        req.target = inv_env_find(x.c.s.fleet.env, s->target);
        req.env = x.c.s.fleet.env;
        req.http = x.http;
        req.slot = slot;
        req.version = version;
        req.who = x.c.s.who;
        /* With a router its weight says whether the slot is live, and was checked above. */
        req.force = o.force || x.traffic != NULL;
        req.metrics = metrics;
        req.trace = trace;
        if (start)
            slot_start(&req, slot_done, s);
        else
            slot_stop(&req, slot_done, s);
    }
    change_wait(&x.c, &f.done);
    detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "slot", hs_slot_name(slot));
    if (version != NULL)
        cJSON_AddStringToObject(detail, "version", version);
    cJSON_AddBoolToObject(detail, "forced", o.force);
    cJSON_AddItemToObject(detail, "targets", f.targets);
    if (write_observed(&mout, metrics, &tout, trace) != 0)
        f.failed++; /* said; what was done on the targets stands */
    fprintf(stderr, "%zu target%s: %zu done, %zu refused, %zu failed\n", x.c.s.fleet.n,
            x.c.s.fleet.n == 1 ? "" : "s", x.c.s.fleet.n - f.failed - f.refused - f.left, f.refused,
            f.failed + f.left);
    rc = f.failed + f.left > 0 ? EXIT_FAILED : f.refused > 0 ? EXIT_REFUSED : EXIT_OK;
    rc = ctx_end(&x, change_exit_code(&x.c, rc),
                 rc == EXIT_OK                        ? "ok"
                 : rc == EXIT_REFUSED                 ? "refused"
                 : f.failed + f.left == x.c.s.fleet.n ? "failed"
                                                      : "partial",
                 detail);
    cJSON_Delete(detail);
    return rc;
}

/* ---- n3ctl traffic [set] ---- */

static void print_view(FILE *out, struct traffic *tr, const struct router_view *v,
                       const struct fleet *fleet, unsigned width)
{
    static const char *const head[] = {"TARGET", "SLOT",  "SERVER",  "ADDRESS",
                                       "WEIGHT", "STATE", "SESSIONS"};
    struct table *t = table_new(7, head);
    size_t i, k;
    char b[16], g[16];

    for (i = 0; i < traffic_nservers(tr) && i < v->n; i++) {
        const struct router_server *rs = traffic_server(tr, i);
        const struct router_server_view *sv = &v->servers[i];
        char addr[300], weight[16], sessions[24];
        const char *cells[7];

        for (k = 0; k < fleet->n && strcmp(fleet->names[k], rs->target) != 0; k++)
            ;
        if (k == fleet->n)
            continue;
        snprintf(addr, sizeof addr, "%s:%u", rs->host, rs->port);
        snprintf(weight, sizeof weight, "%u", sv->weight);
        snprintf(sessions, sizeof sessions, "%llu", (unsigned long long)sv->sessions);
        cells[0] = rs->target;
        cells[1] = hs_slot_name(rs->slot);
        cells[2] = rs->name;
        cells[3] = addr;
        cells[4] = sv->found ? weight : "absent";
        cells[5] = sv->found ? sv->state : NULL;
        cells[6] = sv->found ? sessions : NULL;
        table_row(t, cells);
    }
    table_print(t, out, width);
    table_free(t);
    share_text(traffic_share(tr, v, HS_BLUE), b, sizeof b);
    share_text(traffic_share(tr, v, HS_GREEN), g, sizeof g);
    fprintf(out, "traffic (%s, read back): blue %s, green %s\n", traffic_kind(tr), b, g);
}

static cJSON *view_json(struct traffic *tr, const struct router_view *v, const struct fleet *fleet)
{
    cJSON *doc = cJSON_CreateObject(), *arr, *share;
    size_t i, k;
    int s;

    cJSON_AddStringToObject(doc, "environment", inv_env_name(fleet->env));
    cJSON_AddStringToObject(doc, "router", traffic_kind(tr));
    share = cJSON_AddObjectToObject(doc, "share");
    for (s = 0; s < HS_NSLOTS; s++) {
        double sh = traffic_share(tr, v, (enum hs_slot)s);

        if (sh < 0)
            cJSON_AddNullToObject(share, hs_slot_name((enum hs_slot)s));
        else
            cJSON_AddNumberToObject(share, hs_slot_name((enum hs_slot)s), sh);
    }
    arr = cJSON_AddArrayToObject(doc, "servers");
    for (i = 0; i < traffic_nservers(tr) && i < v->n; i++) {
        const struct router_server *rs = traffic_server(tr, i);
        const struct router_server_view *sv = &v->servers[i];
        cJSON *o;

        for (k = 0; k < fleet->n && strcmp(fleet->names[k], rs->target) != 0; k++)
            ;
        if (k == fleet->n)
            continue;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "target", rs->target);
        cJSON_AddStringToObject(o, "slot", hs_slot_name(rs->slot));
        cJSON_AddStringToObject(o, "server", rs->name);
        cJSON_AddStringToObject(o, "host", rs->host);
        cJSON_AddNumberToObject(o, "port", rs->port);
        cJSON_AddBoolToObject(o, "found", sv->found);
        if (sv->found) {
            cJSON_AddNumberToObject(o, "weight", sv->weight);
            cJSON_AddStringToObject(o, "state", sv->state);
            cJSON_AddBoolToObject(o, "up", sv->up);
            cJSON_AddNumberToObject(o, "sessions", (double)sv->sessions);
            cJSON_AddNumberToObject(o, "requests", (double)sv->requests);
            cJSON_AddNumberToObject(o, "errors_5xx", (double)sv->errors);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

/* "blue=90 green=10", or one of them (the other gets the rest of 100). 0, or -1 (said). */
static int parse_weights(const struct cli_cmd *cmd, int argc, char **argv, unsigned w[HS_NSLOTS])
{
    bool given[HS_NSLOTS] = {false, false};
    int i, s;

    if (argc < 1 || argc > HS_NSLOTS) {
        cli_usage_error(cmd, "traffic set takes one or two SLOT=WEIGHT: blue=90 green=10");
        return -1;
    }
    for (i = 0; i < argc; i++) {
        char name[16], *eq = strchr(argv[i], '='), *end;
        enum hs_slot slot;
        unsigned long v;

        if (eq == NULL || (size_t)(eq - argv[i]) >= sizeof name) {
            cli_usage_error(cmd, "\"%s\": say SLOT=WEIGHT, as blue=90", argv[i]);
            return -1;
        }
        memcpy(name, argv[i], (size_t)(eq - argv[i]));
        name[eq - argv[i]] = '\0';
        if (slot_parse(name, &slot) != 0) {
            cli_usage_error(cmd, "\"%s\" is not a slot: blue or green", name);
            return -1;
        }
        if (given[slot]) {
            cli_usage_error(cmd, "%s is given twice", name);
            return -1;
        }
        v = strtoul(eq + 1, &end, 10);
        if (eq[1] == '\0' || *end != '\0' || eq[1] == '-' || eq[1] == '+' || v > 100) {
            cli_usage_error(cmd, "\"%s\": a weight is a share of the traffic, 0 to 100", argv[i]);
            return -1;
        }
        given[slot] = true;
        w[slot] = (unsigned)v;
    }
    for (s = 0; s < HS_NSLOTS; s++) {
        if (!given[s])
            w[s] = 100 - w[1 - s];
    }
    if (w[HS_BLUE] + w[HS_GREEN] != 100) {
        cli_usage_error(cmd, "the weights are shares of 100: blue=%u green=%u make %u", w[HS_BLUE],
                        w[HS_GREEN], w[HS_BLUE] + w[HS_GREEN]);
        return -1;
    }
    return 0;
}

struct shift_wait {
    bool done;
    int rc;
    char msg[SHIFT_MSG_MAX];
    struct router_view *before, *after;
    size_t switched, unaudited;
};

static void shifted(void *arg, const struct shift_result *r)
{
    struct shift_wait *w = arg;

    w->rc = r->rc;
    snprintf(w->msg, sizeof w->msg, "%s", r->msg);
    w->before = r->before != NULL ? router_view_dup(r->before) : NULL;
    w->after = r->after != NULL ? router_view_dup(r->after) : NULL;
    w->switched = r->switched;
    w->unaudited = r->unaudited;
    w->done = true;
}

static cJSON *weights_json(const unsigned w[HS_NSLOTS])
{
    cJSON *o = cJSON_CreateObject();
    int s;

    for (s = 0; s < HS_NSLOTS; s++)
        cJSON_AddNumberToObject(o, hs_slot_name((enum hs_slot)s), w[s]);
    return o;
}

static int traffic_set_cmd(const struct cli_cmd *cmd, struct opts *o, int argc, char **argv)
{
    struct ctx x;
    struct shift_req req;
    struct shift_wait w = {0};
    unsigned weights[HS_NSLOTS] = {0, 0};
    char message[200];
    cJSON *detail;
    const char *result;
    int rc;

    if (parse_weights(cmd, argc, argv, weights) != 0)
        return EXIT_USAGE;
    rc = ctx_open(&x, &o->fa, "traffic.set", true);
    if (rc != 0)
        return rc;
    snprintf(message, sizeof message, "traffic set blue=%u green=%u", weights[HS_BLUE],
             weights[HS_GREEN]);
    rc = ctx_lock(&x, message);
    if (rc != 0)
        return rc;
    if (ctx_router(&x, true) != 0)
        return ctx_end(&x, EXIT_FAILED, "failed", NULL);
    memset(&req, 0, sizeof req);
    req.loop = x.c.s.loop;
    req.remote = x.c.s.remote;
    req.fleet = &x.c.s.fleet;
    req.traffic = x.traffic;
    req.http = x.http;
    req.who = x.c.s.who;
    memcpy(req.weights, weights, sizeof weights);
    req.force = o->force;
    shift_run(&req, shifted, &w);
    change_wait(&x.c, &w.done);
    detail = cJSON_CreateObject();
    cJSON_AddItemToObject(detail, "asked", weights_json(weights));
    cJSON_AddStringToObject(detail, "router", traffic_kind(x.traffic));
    cJSON_AddBoolToObject(detail, "forced", o->force);
    if (!w.done) {
        result = "interrupted";
        rc = EXIT_FAILED;
    } else if (w.rc == 0) {
        if (w.msg[0])
            term_printf(stderr, "n3ctl: %s\n", w.msg);
        if (o->json) {
            cJSON *doc = view_json(x.traffic, w.after, &x.c.s.fleet);

            term_put_json(stdout, doc);
            cJSON_Delete(doc);
        } else {
            print_view(stdout, x.traffic, w.after, &x.c.s.fleet,
                       term_is_tty(stdout) ? term_width(stdout) : 0);
        }
        if (w.switched > 0)
            fprintf(stderr,
                    "current now points to the slot with the most traffic on %zu "
                    "target%s\n",
                    w.switched, w.switched == 1 ? "" : "s");
        result = "ok";
        rc = w.unaudited > 0 ? EXIT_FAILED : EXIT_OK;
    } else {
        term_printf(stderr, "n3ctl: %s\n", w.msg);
        if (w.after != NULL) {
            fprintf(stderr, "what the router has now (read back):\n");
            print_view(stderr, x.traffic, w.after, &x.c.s.fleet, 0);
        }
        cJSON_AddStringToObject(detail, "error", w.msg);
        result = w.rc == 3 ? "refused" : "failed";
        rc = w.rc == 3 ? EXIT_REFUSED : EXIT_FAILED;
    }
    router_view_free(w.before);
    router_view_free(w.after);
    rc = ctx_end(&x, change_exit_code(&x.c, rc), result, detail);
    cJSON_Delete(detail);
    return rc;
}

int cmd_traffic(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct opts o;
    struct ctx x;
    struct route_wait w = {0};
    int rc, p;

    p = parse(cmd, argc, argv, &o);
    if (p != 0)
        return p > 0 ? EXIT_OK : EXIT_USAGE;
    if (o.first < argc && strcmp(argv[o.first], "set") == 0)
        return traffic_set_cmd(cmd, &o, argc - o.first - 1, argv + o.first + 1);
    if (o.first < argc) {
        cli_usage_error(cmd, "unknown subcommand \"%s\": traffic, or traffic set blue=90 green=10",
                        argv[o.first]);
        return EXIT_USAGE;
    }
    if (o.force) {
        cli_usage_error(cmd, "--force is for traffic set");
        return EXIT_USAGE;
    }
    rc = ctx_open(&x, &o.fa, "traffic", true);
    if (rc == 0)
        rc = ctx_lock(&x, NULL);
    if (rc != 0)
        return rc;
    if (ctx_router(&x, true) != 0)
        return ctx_end(&x, EXIT_USAGE, NULL, NULL);
    traffic_read(x.traffic, route_read, &w);
    change_wait(&x.c, &w.done);
    if (!w.done) {
        rc = EXIT_FAILED;
    } else if (w.rc != 0) {
        term_printf(stderr, "n3ctl: cannot read the router (%s): %s\n", traffic_kind(x.traffic),
                    w.msg);
        rc = EXIT_FAILED;
    } else if (o.json) {
        cJSON *doc = view_json(x.traffic, w.v, &x.c.s.fleet);

        term_put_json(stdout, doc);
        cJSON_Delete(doc);
        rc = EXIT_OK;
    } else {
        print_view(stdout, x.traffic, w.v, &x.c.s.fleet,
                   term_is_tty(stdout) ? term_width(stdout) : 0);
        rc = EXIT_OK;
    }
    router_view_free(w.v);
    return ctx_end(&x, change_exit_code(&x.c, rc), NULL, NULL);
}
