/*
 * The prometheus metric source: each instance's /metrics scraped through the HTTP client on the
 * loop (a bounded body), read as Prometheus text (plugins/promtext.h), and mapped to requests,
 * 5xx errors and the latency histogram by names n3.json gives, the sample app's by default:
 *
 *   requests    n3app_requests_total             a counter; its series summed
 *   duration    n3app_request_duration_seconds   a histogram (its _bucket series, summed by le)
 *   start_time  n3app_start_time_seconds         a gauge: a change is a restart ("" for none)
 *   labels      {"path": "/"}                    the series counted: those with these labels,
 *                                                so that probes (/health) and scrapes (/metrics)
 *                                                are not traffic
 *   code_label  "code"                           errors: the series whose code is 5xx
 *
 * A scrape that fails, answers other than 2xx, is longer than body_max_bytes (a cut text would
 * miss series) or has no series nor TYPE of the requests counter is a failed read, with why.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/metricsrc.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"
#include "plugins/httpc.h"
#include "plugins/promtext.h"

#define LABELS_MAX       8
#define BODY_MAX_DEFAULT (1024u * 1024u)

static const char *const keys[] = {"path",   "requests",   "duration",       "start_time",
                                   "labels", "code_label", "body_max_bytes", NULL};

struct filter {
    char *name, *value;
};

struct psrc;

struct scrape {
    struct psrc *p;
    size_t i;
    struct httpc_op *op;
};

/* What to take from a scrape: n3.json's names and labels. */
struct pmap {
    char *requests, *bucket, *count, *sum, *duration, *start_time, *code_label;
    struct filter filters[LABELS_MAX];
    size_t nfilters;
};

struct psrc {
    struct loop *loop;
    struct httpc *http;
    size_t n;
    char **urls;
    char **sockets; /* an instance on its target's loopback: the bridge to it (or NULL) */
    const char **bridge_errors;
    struct pmap map;
    size_t body_max;
    uint64_t timeout_ms;
    /* The read in flight. */
    struct scrape *scrapes;
    size_t pending;
    struct metricsrc_sample *out;
    metricsrc_read_fn done;
    void *arg;
    struct loop_timer *later; /* done for a read that had nothing to wait for */
};

/* ---- n3.json ---- */

static int check_name(const struct cfg *c, const cJSON *m, const char *key, bool empty_ok,
                      struct err *err)
{
    const char *v = NULL;
    size_t i;

    if (cfg_get_string(c, m, key, false, &v, err) != 0)
        return -1;
    if (v == NULL || (empty_ok && v[0] == '\0'))
        return 0;
    for (i = 0; v[i] != '\0'; i++) {
        char ch = v[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
              (i > 0 && ch >= '0' && ch <= '9')))
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(m, key),
                             "not a metric name (letters, digits, '_' and ':', not starting with "
                             "a digit)%s",
                             empty_ok ? "; \"\" for none" : "");
    }
    if (i == 0)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(m, key), "an empty name");
    return 0;
}

static bool label_name_ok(const char *v)
{
    size_t i;

    for (i = 0; v[i] != '\0'; i++) {
        char ch = v[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
              (i > 0 && ch >= '0' && ch <= '9')))
            return false;
    }
    return i > 0;
}

static int check_config(const struct cfg *c, const cJSON *m, struct err *err)
{
    const char *path = NULL, *code = NULL;
    const cJSON *labels, *item;
    int64_t max = 0;
    size_t i;

    if (cfg_get_string(c, m, "path", false, &path, err) != 0 ||
        check_name(c, m, "requests", false, err) != 0 ||
        check_name(c, m, "duration", true, err) != 0 ||
        check_name(c, m, "start_time", true, err) != 0 ||
        cfg_get_string(c, m, "code_label", false, &code, err) != 0 ||
        cfg_get_int(c, m, "body_max_bytes", false, 1024, 64 * 1024 * 1024, &max, err) != 0)
        return -1;
    if (path != NULL) {
        if (path[0] != '/')
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(m, "path"),
                             "a path starts with \"/\" (\"/metrics\")");
        for (i = 0; path[i] != '\0'; i++) {
            if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
                return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(m, "path"),
                                 "character %zu of the path is a space or a control character: "
                                 "write it %%-encoded",
                                 i + 1);
        }
    }
    if (code != NULL && !label_name_ok(code))
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(m, "code_label"),
                         "not a label name (letters, digits and '_', not starting with a digit)");
    labels = cfg_get(c, m, "labels", cJSON_Object, false, err);
    if (labels == NULL)
        return cfg_has(m, "labels") ? -1 : 0;
    if (cfg_check_object(c, labels, NULL, err) != 0)
        return -1;
    if (cJSON_GetArraySize(labels) > LABELS_MAX)
        return cfg_error(c, err, labels, "at most %d labels", LABELS_MAX);
    cJSON_ArrayForEach(item, labels)
    {
        if (!label_name_ok(item->string))
            return cfg_key_error(c, err, item,
                                 "not a label name (letters, digits and '_', not starting with a "
                                 "digit)");
        if (strcmp(item->string, "le") == 0)
            return cfg_key_error(c, err, item,
                                 "le is the histogram's bucket label: it cannot choose series");
        if (!cJSON_IsString(item))
            return cfg_error(c, err, item, "expected a string (the label's value), got %s",
                             cfg_type_name(item));
    }
    return 0;
}

/* ---- a scrape ---- */

struct acc {
    const struct pmap *p;
    bool saw_requests, saw_duration;
    double requests, errors, start_time;
    bool bad_value;
    char bad_what[160];
    size_t nb;
    bool too_many;
    double le[METRICSRC_BUCKETS_MAX], count[METRICSRC_BUCKETS_MAX];
};

static bool chosen(const struct pmap *p, const struct promtext_sample *s)
{
    size_t i;

    for (i = 0; i < p->nfilters; i++) {
        const char *v = promtext_label(s, p->filters[i].name);

        if (v == NULL || strcmp(v, p->filters[i].value) != 0)
            return false;
    }
    return true;
}

static bool counter_value(struct acc *a, const struct promtext_sample *s)
{
    if (isfinite(s->value) && s->value >= 0)
        return true;
    if (!a->bad_value) {
        a->bad_value = true;
        snprintf(a->bad_what, sizeof a->bad_what, "%.60s at line %u is %g, not a count", s->name,
                 s->line, s->value);
    }
    return false;
}

static void add_bucket(struct acc *a, const struct promtext_sample *s)
{
    const char *le_text = promtext_label(s, "le");
    double le;
    char *end;
    size_t i;

    if (le_text == NULL)
        return;
    if (strcmp(le_text, "+Inf") == 0 || strcmp(le_text, "Inf") == 0 ||
        strcmp(le_text, "+inf") == 0) {
        le = INFINITY;
    } else {
        le = strtod(le_text, &end);
        if (*end != '\0' || end == le_text || !isfinite(le))
            return;
    }
    if (!counter_value(a, s))
        return;
    for (i = 0; i < a->nb && a->le[i] < le; i++)
        ;
    if (i < a->nb && a->le[i] == le) {
        a->count[i] += s->value;
        return;
    }
    if (a->nb == METRICSRC_BUCKETS_MAX) {
        a->too_many = true;
        return;
    }
    memmove(a->le + i + 1, a->le + i, (a->nb - i) * sizeof *a->le);
    memmove(a->count + i + 1, a->count + i, (a->nb - i) * sizeof *a->count);
    a->le[i] = le;
    a->count[i] = s->value;
    a->nb++;
}

static void on_sample(void *arg, const struct promtext_sample *s)
{
    struct acc *a = arg;
    const struct pmap *p = a->p;

    if (strcmp(s->name, p->requests) == 0) {
        const char *code;

        a->saw_requests = true;
        if (!chosen(p, s) || !counter_value(a, s))
            return;
        a->requests += s->value;
        code = promtext_label(s, p->code_label);
        if (code != NULL && code[0] == '5' && strlen(code) == 3 && code[1] >= '0' &&
            code[1] <= '9' && code[2] >= '0' && code[2] <= '9')
            a->errors += s->value;
    } else if (p->bucket != NULL && strcmp(s->name, p->bucket) == 0) {
        a->saw_duration = true;
        if (chosen(p, s))
            add_bucket(a, s);
    } else if (p->bucket != NULL &&
               (strcmp(s->name, p->count) == 0 || strcmp(s->name, p->sum) == 0)) {
        a->saw_duration = true;
    } else if (p->start_time != NULL && strcmp(s->name, p->start_time) == 0) {
        if (isfinite(s->value) && s->value > 0)
            a->start_time = s->value;
    }
}

static void on_type(void *arg, const char *family, const char *type)
{
    struct acc *a = arg;

    (void)type;
    if (strcmp(family, a->p->requests) == 0)
        a->saw_requests = true;
    /* OpenMetrics names a counter's family without its _total. */
    else if (strlen(family) + 6 == strlen(a->p->requests) &&
             strncmp(family, a->p->requests, strlen(family)) == 0 &&
             strcmp(a->p->requests + strlen(family), "_total") == 0)
        a->saw_requests = true;
    else if (a->p->duration != NULL && strcmp(family, a->p->duration) == 0)
        a->saw_duration = true;
}

/* The text of a scrape into a sample. */
static void read_text(const struct pmap *p, const char *url, const char *text, size_t len,
                      struct metricsrc_sample *out)
{
    struct acc a;
    struct promtext_handler h = {on_sample, on_type, &a};
    struct promtext_stats st;

    memset(&a, 0, sizeof a);
    a.p = p;
    promtext_parse(text, len, &h, &st);
    out->bad_lines = st.bad;
    if (!a.saw_requests) {
        snprintf(out->error, sizeof out->error, "%.120s has no %.60s (metrics.requests)%s%.60s",
                 url, p->requests, st.bad ? "; first unreadable " : "", st.bad ? st.first_bad : "");
        return;
    }
    if (a.bad_value) {
        snprintf(out->error, sizeof out->error, "%.120s: %.200s", url, a.bad_what);
        return;
    }
    out->ok = true;
    out->requests = a.requests;
    out->errors = a.errors;
    out->start_time = a.start_time;
    /* A histogram needs a finite bucket and +Inf; else there is none (latency unknown). */
    if (a.saw_duration && !a.too_many && a.nb >= 2 && isinf(a.le[a.nb - 1])) {
        out->nbuckets = a.nb;
        memcpy(out->le, a.le, a.nb * sizeof *a.le);
        memcpy(out->count, a.count, a.nb * sizeof *a.count);
    }
}

/* ---- the source ---- */

static void finish(struct psrc *p)
{
    metricsrc_read_fn done = p->done;

    p->done = NULL;
    done(p->arg);
}

static void later_cb(void *arg)
{
    finish(arg);
}

static void scraped(void *arg, const struct httpc_result *r)
{
    struct scrape *k = arg;
    struct psrc *p = k->p;
    struct metricsrc_sample *out = &p->out[k->i];

    k->op = NULL;
    out->at_us = loop_now_us(p->loop);
    if (!r->ok && p->sockets[k->i] != NULL && p->bridge_errors[k->i] != NULL &&
        p->bridge_errors[k->i][0] != '\0')
        snprintf(out->error, sizeof out->error, "%.120s, through SSH: %.200s", p->urls[k->i],
                 p->bridge_errors[k->i]);
    else if (!r->ok)
        snprintf(out->error, sizeof out->error, "%.120s: %.200s", p->urls[k->i],
                 r->refused ? "connection refused" : r->error);
    else if (r->status < 200 || r->status > 299)
        snprintf(out->error, sizeof out->error, "%.120s answered HTTP %ld", p->urls[k->i],
                 r->status);
    else if (r->body_cut)
        snprintf(out->error, sizeof out->error,
                 "%.120s answered more than %zu bytes (metrics.body_max_bytes): not read, a part "
                 "would miss series",
                 p->urls[k->i], p->body_max);
    else
        read_text(&p->map, p->urls[k->i], r->body, r->body_len, out);
    if (--p->pending == 0)
        finish(p);
}

static void p_read(void *src, struct metricsrc_sample *out, metricsrc_read_fn done, void *arg)
{
    struct psrc *p = src;
    size_t i;

    p->out = out;
    p->done = done;
    p->arg = arg;
    p->pending = 0;
    for (i = 0; i < p->n; i++) {
        struct httpc_req req;

        if (p->urls[i] == NULL) {
            snprintf(out[i].error, sizeof out[i].error,
                     "no port for it: the environment has no service (n3.json's \"service\")");
            continue;
        }
        memset(&req, 0, sizeof req);
        req.url = p->urls[i];
        req.unix_socket = p->sockets[i];
        req.timeout_ms = p->timeout_ms;
        req.body_max = p->body_max;
        p->scrapes[i].p = p;
        p->scrapes[i].i = i;
        p->pending++;
        p->scrapes[i].op = httpc_request(p->http, &req, scraped, &p->scrapes[i]);
    }
    if (p->pending == 0)
        loop_timer_start(p->later, 0);
}

static const char *json_string(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static char *name_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? xstrdup(s) : NULL;
}

static void pmap_init(struct pmap *m, const cJSON *config)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(config, "labels"), *item;

    memset(m, 0, sizeof *m);
    m->requests = xstrdup(json_string(config, "requests", "n3app_requests_total"));
    m->duration = name_or_null(json_string(config, "duration", "n3app_request_duration_seconds"));
    if (m->duration != NULL) {
        m->bucket = xasprintf("%s_bucket", m->duration);
        m->count = xasprintf("%s_count", m->duration);
        m->sum = xasprintf("%s_sum", m->duration);
    }
    m->start_time = name_or_null(json_string(config, "start_time", "n3app_start_time_seconds"));
    m->code_label = xstrdup(json_string(config, "code_label", "code"));
    if (cJSON_IsObject(labels)) {
        cJSON_ArrayForEach(item, labels)
        {
            if (m->nfilters < LABELS_MAX && cJSON_IsString(item)) {
                m->filters[m->nfilters].name = xstrdup(item->string);
                m->filters[m->nfilters++].value = xstrdup(item->valuestring);
            }
        }
    } else {
        m->filters[0].name = xstrdup("path");
        m->filters[0].value = xstrdup("/");
        m->nfilters = 1;
    }
}

static void pmap_done(struct pmap *m)
{
    size_t i;

    for (i = 0; i < m->nfilters; i++) {
        free(m->filters[i].name);
        free(m->filters[i].value);
    }
    free(m->requests);
    free(m->duration);
    free(m->bucket);
    free(m->count);
    free(m->sum);
    free(m->start_time);
    free(m->code_label);
}

void metrics_prometheus_parse(const cJSON *config, const char *url, const char *text, size_t len,
                              struct metricsrc_sample *out)
{
    struct pmap m;

    pmap_init(&m, config);
    memset(out, 0, sizeof *out);
    read_text(&m, url, text, len, out);
    pmap_done(&m);
}

static void p_close(void *src);

static void *p_open(const struct metricsrc_ctx *ctx, struct err *err)
{
    struct psrc *p;
    const char *path = json_string(ctx->config, "path", "/metrics");
    const cJSON *v;
    size_t i;

    if (ctx->http == NULL) {
        err_set(err, "the prometheus metric source needs an HTTP client");
        return NULL;
    }
    p = xcalloc(1, sizeof *p);
    p->loop = ctx->loop;
    p->http = ctx->http;
    p->n = ctx->n;
    p->urls = xcalloc(p->n + 1, sizeof *p->urls);
    p->sockets = xcalloc(p->n + 1, sizeof *p->sockets);
    p->bridge_errors = xcalloc(p->n + 1, sizeof *p->bridge_errors);
    p->scrapes = xcalloc(p->n + 1, sizeof *p->scrapes);
    pmap_init(&p->map, ctx->config);
    p->later = loop_timer_new(p->loop, later_cb, p);
    for (i = 0; i < p->n; i++) {
        const struct metricsrc_instance *in = &ctx->inst[i];

        if (in->port == 0)
            continue;
        p->urls[i] =
            xasprintf(strchr(in->host, ':') != NULL ? "http://[%s]:%u%s" : "http://%s:%u%s",
                      in->host, in->port, path);
        /* On its target's loopback only: through the target's SSH connection. */
        if (in->via_target && in->t != NULL) {
            const char *bridge = NULL;

            if (transport_bridge(in->t, in->host, in->port, &bridge, &p->bridge_errors[i], err) <
                0) {
                p_close(p);
                return NULL;
            }
            p->sockets[i] = bridge != NULL ? xstrdup(bridge) : NULL;
        }
    }
    p->body_max = BODY_MAX_DEFAULT;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(ctx->config, "body_max_bytes")))
        p->body_max = (size_t)v->valuedouble;
    p->timeout_ms = ctx->timeout_ms;
    return p;
}

static void p_close(void *src)
{
    struct psrc *p = src;
    size_t i;

    for (i = 0; i < p->n; i++) {
        if (p->scrapes[i].op != NULL)
            httpc_cancel(p->scrapes[i].op);
        free(p->urls[i]);
        free(p->sockets[i]);
    }
    free(p->sockets);
    free(p->bridge_errors);
    loop_timer_free(p->later);
    pmap_done(&p->map);
    free(p->urls);
    free(p->scrapes);
    free(p);
}

const struct metricsrc_kind metrics_prometheus = {
    .name = "prometheus",
    .keys = keys,
    .router = NULL,
    .quantiles = true,
    .check = check_config,
    .open = p_open,
    .read = p_read,
    .close = p_close,
};
