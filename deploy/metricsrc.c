/* Metric sources: the registry of kinds, n3.json's "metrics", the windows and their figures. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/loop.h"
#include "core/registry.h"
#include "core/xalloc.h"
#include "deploy/fleet.h"
#include "deploy/inventory.h"
#include "deploy/metricsrc.h"
#include "deploy/remote.h"
#include "deploy/traffic.h"

#define KEYS_MAX 48
/* Two start times further apart than this are two starts (a restart): a start time written
 * with a few decimals reads back the same from every scrape, and a restart takes longer. */
#define START_TIME_SLACK 0.5

/* ---- the registry ---- */

static struct registry kinds = REGISTRY_INIT("metric source");

void metricsrc_kind_register(const struct metricsrc_kind *k)
{
    registry_add(&kinds, k, k->name);
}

const struct metricsrc_kind *metricsrc_kind_find(const char *name)
{
    return registry_find(&kinds, name);
}

const char *const *metricsrc_kind_names(void)
{
    return kinds.names;
}

/* ---- n3.json ---- */

static const char *const common_keys[] = {"source", "window_s", "interval_ms", "timeout_ms", NULL};

int metricsrc_spec_load(const struct cfg *c, const cJSON *node, struct metricsrc_spec *spec,
                        struct err *err)
{
    const char *source = NULL, *keys[KEYS_MAX];
    const struct metricsrc_kind *k;
    double window_s = 60;
    int64_t interval = 1000, timeout = -1;
    size_t n = 0, i;

    memset(spec, 0, sizeof *spec);
    if (!cJSON_IsObject(node))
        return cfg_error(c, err, node, "expected an object (the metric source), got %s",
                         cfg_type_name(node));
    if (cfg_get_string(c, node, "source", true, &source, err) != 0)
        return -1;
    k = metricsrc_kind_find(source);
    if (k == NULL) {
        const char *hint = cfg_suggest(source, kinds.names);
        char known[256];

        registry_list(&kinds, known, sizeof known);
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "source"),
                         "no metric source \"%.40s\"%s%s%s (the sources: %s)", source,
                         hint ? "; did you mean \"" : "", hint ? hint : "", hint ? "\"?" : "",
                         known);
    }
    for (i = 0; common_keys[i] != NULL; i++)
        keys[n++] = common_keys[i];
    for (i = 0; k->keys != NULL && k->keys[i] != NULL && n < KEYS_MAX - 1; i++)
        keys[n++] = k->keys[i];
    keys[n] = NULL;
    if (cfg_check_object(c, node, keys, err) != 0 ||
        cfg_get_number(c, node, "window_s", false, 1, 86400, &window_s, err) != 0 ||
        cfg_get_int(c, node, "interval_ms", false, 100, 3600000, &interval, err) != 0 ||
        cfg_get_int(c, node, "timeout_ms", false, 10, 600000, &timeout, err) != 0)
        return -1;
    if (timeout < 0)
        timeout = interval < 2000 ? interval : 2000;
    if (timeout > interval)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "timeout_ms"),
                         "a timeout of %lld ms is longer than the interval (%lld ms): reads "
                         "would overlap",
                         (long long)timeout, (long long)interval);
    if (window_s * 1000.0 < 2.0 * (double)interval)
        return cfg_error(c, err,
                         cJSON_GetObjectItemCaseSensitive(
                             node, cfg_has(node, "window_s") ? "window_s" : "interval_ms"),
                         "a window of %g s read every %lld ms never holds the two samples a "
                         "rate needs: make the window at least twice the interval",
                         window_s, (long long)interval);
    if (window_s * 1000.0 / (double)interval + 2 > METRICSRC_POINTS_MAX)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "window_s"),
                         "a window of %g s read every %lld ms holds %.0f samples, more than %d: "
                         "read less often (interval_ms) or take a shorter window",
                         window_s, (long long)interval, window_s * 1000.0 / (double)interval,
                         METRICSRC_POINTS_MAX - 2);
    if (k->check != NULL && k->check(c, node, err) != 0)
        return -1;
    spec->kind = k;
    spec->config = cJSON_Duplicate(node, true);
    spec->window_ms = (uint64_t)(window_s * 1000.0 + 0.5);
    spec->interval_ms = (uint64_t)interval;
    spec->timeout_ms = (uint64_t)timeout;
    return 0;
}

void metricsrc_spec_done(struct metricsrc_spec *spec)
{
    cJSON_Delete(spec->config);
    memset(spec, 0, sizeof *spec);
}

void metricsrc_spec_copy(struct metricsrc_spec *to, const struct metricsrc_spec *from)
{
    *to = *from;
    to->config = cJSON_Duplicate(from->config, true);
}

/* ---- quantiles from cumulative buckets ---- */

double metricsrc_bucket_quantile(double q, const double *le, const double *count, size_t n,
                                 bool *capped)
{
    double c[METRICSRC_BUCKETS_MAX], rank, start = 0, in;
    size_t i, b;

    if (capped != NULL)
        *capped = false;
    if (n < 2 || n > METRICSRC_BUCKETS_MAX || !(q >= 0 && q <= 1) || !isinf(le[n - 1]) ||
        le[n - 1] < 0)
        return NAN;
    /* Monotonic, as Prometheus's ensureMonotonic: a bucket never holds fewer than the one
     * before it. */
    for (i = 0; i < n; i++) {
        c[i] = isfinite(count[i]) && count[i] > 0 ? count[i] : 0;
        if (i > 0 && c[i] < c[i - 1])
            c[i] = c[i - 1];
    }
    if (c[n - 1] <= 0)
        return NAN;
    rank = q * c[n - 1];
    for (b = 0; b < n - 1 && c[b] < rank; b++)
        ;
    if (b == n - 1) {
        if (capped != NULL)
            *capped = true;
        return le[n - 2];
    }
    if (b == 0 && le[0] <= 0)
        return le[0];
    in = c[b];
    if (b > 0) {
        start = le[b - 1];
        in -= c[b - 1];
        rank -= c[b - 1];
    }
    if (in <= 0) /* q = 0 on an empty first bucket */
        return start;
    return start + (le[b] - start) * (rank / in);
}

/* ---- the window ---- */

struct point {
    uint64_t at_us;
    double requests, errors, start_time;
    uint32_t bounds; /* which bounds its histogram has (the window's id for them) */
    uint16_t nb;     /* 0: no histogram */
    double count[METRICSRC_BUCKETS_MAX];
};

struct metricsrc_window {
    uint64_t window_us;
    size_t cap, first, len; /* a ring: first is the oldest */
    struct point *pts;
    /* The newest bounds, and their id (a sample with other bounds gets a new one). */
    double le[METRICSRC_BUCKETS_MAX];
    size_t nle;
    uint32_t bounds;
    bool last_failed;
    char last_error[400];
    unsigned bad_lines;
};

struct metricsrc_window *metricsrc_window_new(uint64_t window_ms, size_t capacity)
{
    struct metricsrc_window *w = xcalloc(1, sizeof *w);

    if (capacity < 2)
        capacity = 2;
    if (capacity > METRICSRC_POINTS_MAX)
        capacity = METRICSRC_POINTS_MAX;
    w->window_us = window_ms * 1000u;
    w->cap = capacity;
    w->pts = xcalloc(capacity, sizeof *w->pts);
    return w;
}

void metricsrc_window_free(struct metricsrc_window *w)
{
    if (w == NULL)
        return;
    free(w->pts);
    free(w);
}

static const struct point *at(const struct metricsrc_window *w, size_t i)
{
    return &w->pts[(w->first + i) % w->cap];
}

void metricsrc_window_add(struct metricsrc_window *w, const struct metricsrc_sample *s)
{
    struct point *p;
    size_t i, nb = s->nbuckets;

    if (!s->ok) {
        w->last_failed = true;
        snprintf(w->last_error, sizeof w->last_error, "%s", s->error[0] ? s->error : "failed");
        return;
    }
    w->last_failed = false;
    w->bad_lines = s->bad_lines;
    if (w->len > 0 && s->at_us <= at(w, w->len - 1)->at_us)
        return; /* out of order: the newest stays the newest */
    if (!isfinite(s->requests) || !isfinite(s->errors) || s->requests < 0 || s->errors < 0) {
        w->last_failed = true;
        snprintf(w->last_error, sizeof w->last_error,
                 "the counters read are not numbers of requests (%g, %g)", s->requests, s->errors);
        return;
    }
    if (nb > METRICSRC_BUCKETS_MAX || nb == 1)
        nb = 0;
    if (nb > 0 && (nb != w->nle || memcmp(s->le, w->le, nb * sizeof *s->le) != 0)) {
        memcpy(w->le, s->le, nb * sizeof *s->le);
        w->nle = nb;
        w->bounds++;
    }
    if (w->len == w->cap) {
        w->first = (w->first + 1) % w->cap;
        w->len--;
    }
    p = &w->pts[(w->first + w->len++) % w->cap];
    memset(p, 0, sizeof *p);
    p->at_us = s->at_us;
    p->requests = s->requests;
    p->errors = s->errors > s->requests ? s->requests : s->errors;
    p->start_time = isfinite(s->start_time) ? s->start_time : 0;
    p->bounds = w->bounds;
    p->nb = (uint16_t)nb;
    for (i = 0; i < nb; i++)
        p->count[i] = isfinite(s->count[i]) && s->count[i] > 0 ? s->count[i] : 0;
}

static void why(struct metricsrc_figures *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why(struct metricsrc_figures *f, const char *fmt, ...)
{
    size_t n = strlen(f->why);
    va_list ap;

    if (n + 3 >= sizeof f->why)
        return;
    if (n > 0) {
        memcpy(f->why + n, "; ", 3);
        n += 2;
    }
    va_start(ap, fmt);
    vsnprintf(f->why + n, sizeof f->why - n, fmt, ap);
    va_end(ap);
}

/* Did the instance's counters start again between p and q (q the newer)? */
static bool is_reset(const struct point *p, const struct point *q)
{
    size_t i;

    if (q->requests < p->requests || q->errors < p->errors)
        return true;
    if (p->start_time > 0 && q->start_time > 0 &&
        fabs(q->start_time - p->start_time) > START_TIME_SLACK)
        return true;
    if (p->nb > 0 && q->nb > 0 && p->bounds == q->bounds) {
        for (i = 0; i < q->nb; i++) {
            if (q->count[i] < p->count[i])
                return true;
        }
    }
    return false;
}

void metricsrc_window_figures(const struct metricsrc_window *w, uint64_t now_us, bool quantiles,
                              struct metricsrc_figures *f)
{
    double req = 0, errs = 0, hist[METRICSRC_BUCKETS_MAX];
    const struct point *newest;
    size_t i, from, k;
    bool hist_used = false;

    memset(f, 0, sizeof *f);
    memset(hist, 0, sizeof hist);
    f->last_failed = w->last_failed;
    f->bad_lines = w->bad_lines;
    if (w->last_failed)
        why(f, "the last read failed: %s", w->last_error);
    /* The samples inside the window: (now - window, now]. */
    for (from = 0; from < w->len; from++) {
        const struct point *p = at(w, from);

        if (p->at_us + w->window_us > now_us)
            break;
    }
    k = w->len;
    while (k > from && at(w, k - 1)->at_us > now_us)
        k--; /* from the future of this now (a test's clock): not yet */
    f->points = (unsigned)(k - from);
    if (f->points == 0) {
        why(f, "no sample in the last %g s", (double)w->window_us / 1e6);
        return;
    }
    if (f->points == 1) {
        why(f, "one sample in the window: a rate needs two");
        return;
    }
    newest = at(w, k - 1);
    for (i = from + 1; i < k; i++) {
        const struct point *p = at(w, i - 1), *q = at(w, i);
        bool reset = is_reset(p, q);
        size_t b;

        if (reset) {
            f->resets++;
            req += q->requests;
            errs += q->errors;
        } else {
            req += q->requests - p->requests;
            errs += q->errors - p->errors;
        }
        /* Buckets add up only with the newest sample's bounds. */
        if (q->nb == 0 || q->bounds != newest->bounds)
            continue;
        if (reset) {
            for (b = 0; b < q->nb; b++)
                hist[b] += q->count[b];
            hist_used = true;
        } else if (p->nb == q->nb && p->bounds == q->bounds) {
            for (b = 0; b < q->nb; b++)
                hist[b] += q->count[b] - p->count[b];
            hist_used = true;
        }
    }
    f->span_s = (double)(newest->at_us - at(w, from)->at_us) / 1e6;
    f->rate_known = true;
    f->req_s = req / f->span_s;
    f->samples = (uint64_t)llround(req);
    if (req > 0) {
        f->error_known = true;
        f->error_rate = errs / req;
        if (f->error_rate > 1)
            f->error_rate = 1;
        if (f->error_rate < 0)
            f->error_rate = 0;
    } else {
        why(f, "no request in the window: no error rate, no latency");
    }
    if (!quantiles) {
        why(f, "the source gives no latencies");
    } else if (newest->nb == 0) {
        why(f, "no latency histogram in what the source read");
    } else if (!hist_used || hist[newest->nb - 1] <= 0) {
        if (req > 0)
            why(f, "no request observed in the latency histogram");
    } else {
        bool c50, c95, c99;

        f->p50_s = metricsrc_bucket_quantile(0.50, w->le, hist, newest->nb, &c50);
        f->p95_s = metricsrc_bucket_quantile(0.95, w->le, hist, newest->nb, &c95);
        f->p99_s = metricsrc_bucket_quantile(0.99, w->le, hist, newest->nb, &c99);
        if (isnan(f->p50_s) || isnan(f->p95_s) || isnan(f->p99_s)) {
            why(f, "the latency histogram has no +Inf bucket, or too few");
        } else {
            f->latency_known = true;
            f->latency_capped = c50 || c95 || c99;
        }
    }
}

/* ---- a source on the loop ---- */

struct waiter {
    metricsrc_fn fn;
    void *arg;
};

struct metricsrc {
    struct loop *loop;
    struct metricsrc_spec spec;
    void *src;
    struct metricsrc_instance *inst;
    size_t n;
    struct metricsrc_window **win;
    struct metricsrc_sample *out; /* the read in flight's */
    bool reading;
    unsigned reads;
    struct loop_timer *timer;
    bool running;
    struct waiter *waiters;
    size_t nwaiters, capwaiters;
};

static void start_read(struct metricsrc *m);

static void read_done(void *arg)
{
    struct metricsrc *m = arg;
    struct waiter *ws = m->waiters;
    size_t nws = m->nwaiters, i;
    uint64_t now = loop_now_us(m->loop);

    for (i = 0; i < m->n; i++) {
        if (m->out[i].at_us == 0)
            m->out[i].at_us = now;
        metricsrc_window_add(m->win[i], &m->out[i]);
    }
    m->reads++;
    m->reading = false;
    /* The waiters of this read: new ones (a waiter that reads again) wait for the next. A
     * waiter may close the source: nothing of m is touched after the first call. */
    m->waiters = NULL;
    m->nwaiters = m->capwaiters = 0;
    for (i = 0; i < nws; i++)
        ws[i].fn(ws[i].arg);
    free(ws);
}

static void start_read(struct metricsrc *m)
{
    if (m->reading)
        return;
    m->reading = true;
    memset(m->out, 0, m->n * sizeof *m->out);
    m->spec.kind->read(m->src, m->out, read_done, m);
}

static void tick(void *arg)
{
    struct metricsrc *m = arg;

    loop_timer_start(m->timer, m->spec.interval_ms);
    start_read(m); /* one still in flight (a slow source) is not doubled */
}

struct metricsrc *metricsrc_open(struct loop *loop, const struct metricsrc_spec *spec,
                                 const struct metricsrc_instance *inst, size_t n,
                                 struct httpc *http, struct traffic *traffic, struct err *err)
{
    struct metricsrc *m;
    struct metricsrc_ctx ctx;
    size_t i, cap;

    if (spec->kind->router != NULL &&
        (traffic == NULL || strcmp(traffic_kind(traffic), spec->kind->router) != 0)) {
        err_set(err,
                "the %s metric source reads the counters of a %s router, and the environment's "
                "router is %s",
                spec->kind->name, spec->kind->router,
                traffic != NULL ? traffic_kind(traffic) : "not open");
        return NULL;
    }
    m = xcalloc(1, sizeof *m);
    m->loop = loop;
    metricsrc_spec_copy(&m->spec, spec);
    m->n = n;
    m->inst = xcalloc(n + 1, sizeof *m->inst);
    m->win = xcalloc(n + 1, sizeof *m->win);
    m->out = xcalloc(n + 1, sizeof *m->out);
    cap = (size_t)(spec->window_ms / (spec->interval_ms ? spec->interval_ms : 1)) + 2;
    for (i = 0; i < n; i++) {
        m->inst[i] = inst[i];
        m->inst[i].target = xstrdup(inst[i].target);
        m->inst[i].host = xstrdup(inst[i].host);
        m->win[i] = metricsrc_window_new(spec->window_ms, cap);
    }
    memset(&ctx, 0, sizeof ctx);
    ctx.loop = loop;
    ctx.config = m->spec.config;
    ctx.inst = m->inst;
    ctx.n = n;
    ctx.http = http;
    ctx.traffic = traffic;
    ctx.timeout_ms = spec->timeout_ms;
    m->src = spec->kind->open(&ctx, err);
    if (m->src == NULL) {
        metricsrc_close(m);
        return NULL;
    }
    m->timer = loop_timer_new(loop, tick, m);
    return m;
}

struct metricsrc *metricsrc_open_env(struct loop *loop, const struct fleet *fleet,
                                     struct httpc *http, struct traffic *traffic,
                                     struct remote *targets, struct err *err)
{
    const struct metricsrc_spec *spec = inv_env_metrics(fleet->env);
    const struct inv_service *svc = inv_env_service(fleet->env);
    struct metricsrc_instance *inst;
    struct metricsrc *m;
    size_t i, n = fleet->n * HS_NSLOTS;

    if (spec == NULL) {
        err_set(err,
                "environment %s has no metrics in n3.json: say where its request figures come "
                "from (\"metrics\": {\"source\": \"prometheus\"}, docs/config.md)",
                inv_env_name(fleet->env));
        return NULL;
    }
    inst = xcalloc(n + 1, sizeof *inst);
    for (i = 0; i < n; i++) {
        const struct inv_target *t = inv_env_find(fleet->env, fleet->names[i / HS_NSLOTS]);

        inst[i].target = t->name;
        inst[i].slot = (enum hs_slot)(i % HS_NSLOTS);
        inst[i].via_target = svc != NULL && svc->loopback;
        inst[i].host = t->transport == INV_LOCAL || inst[i].via_target ? "127.0.0.1" : t->host;
        inst[i].t = targets != NULL ? remote_transport(targets, t->name) : NULL;
        inst[i].port = svc != NULL ? svc->ports[inst[i].slot] : 0;
        inst[i].server = traffic != NULL ? traffic_find(traffic, t->name, inst[i].slot) : -1;
    }
    m = metricsrc_open(loop, spec, inst, n, http, traffic, err);
    free(inst);
    return m;
}

void metricsrc_close(struct metricsrc *m)
{
    size_t i;

    if (m == NULL)
        return;
    if (m->src != NULL)
        m->spec.kind->close(m->src);
    loop_timer_free(m->timer);
    for (i = 0; i < m->n; i++) {
        free((char *)m->inst[i].target);
        free((char *)m->inst[i].host);
        metricsrc_window_free(m->win[i]);
    }
    free(m->inst);
    free(m->win);
    free(m->out);
    free(m->waiters);
    metricsrc_spec_done(&m->spec);
    free(m);
}

const char *metricsrc_kind_name(const struct metricsrc *m)
{
    return m->spec.kind->name;
}

const struct metricsrc_spec *metricsrc_get_spec(const struct metricsrc *m)
{
    return &m->spec;
}

size_t metricsrc_count(const struct metricsrc *m)
{
    return m->n;
}

void metricsrc_start(struct metricsrc *m)
{
    if (m->running)
        return;
    m->running = true;
    tick(m);
}

void metricsrc_stop(struct metricsrc *m)
{
    m->running = false;
    loop_timer_stop(m->timer);
}

void metricsrc_read(struct metricsrc *m, metricsrc_fn done, void *arg)
{
    if (m->nwaiters == m->capwaiters) {
        m->capwaiters = m->capwaiters ? 2 * m->capwaiters : 4;
        m->waiters = xreallocarray(m->waiters, m->capwaiters, sizeof *m->waiters);
    }
    m->waiters[m->nwaiters++] = (struct waiter){done, arg};
    start_read(m);
}

unsigned metricsrc_reads(const struct metricsrc *m)
{
    return m->reads;
}

void metricsrc_figures(const struct metricsrc *m, size_t i, struct metricsrc_figures *f)
{
    if (i >= m->n) {
        memset(f, 0, sizeof *f);
        snprintf(f->why, sizeof f->why, "no such instance");
        return;
    }
    metricsrc_window_figures(m->win[i], loop_now_us(m->loop), m->spec.kind->quantiles, f);
}
