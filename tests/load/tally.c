/* What the load generator counted: per-request records, marks and the summary. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/qhist.h"
#include "core/xalloc.h"
#include "tests/load/tally.h"

/* A row of the summary: one version, the responses without the header, or the rest. */
struct tally_row {
    char name[TALLY_LABEL_MAX + 1];
    bool none;  /* responses without the version header */
    bool other; /* versions past TALLY_VERSIONS_MAX */
    uint64_t count, errors;
    struct qhist latency;
};

/* HTTP statuses that are not a success, as error kinds of their own in the summary. */
enum tally_http_error { TALLY_HTTP_4XX, TALLY_HTTP_5XX, TALLY_HTTP_OTHER, TALLY_HTTP_NERRORS };

struct tally {
    struct tally_config config;
    uint64_t scheduled, sent, answered, late, queued, new_conns, last_sent_us;
    uint64_t kinds[TALLY_NKINDS];
    uint64_t http_errors[TALLY_HTTP_NERRORS];
    struct qhist latency; /* every sent request that ended, answered or not */
    struct qhist lag;     /* sent_us - sched_us: the client's own delay */
    struct qhist queue;   /* wire_us - sent_us: the wait for a free connection of the pool */
    struct tally_row rows[TALLY_VERSIONS_MAX + 2];
    unsigned nrows; /* rows in use; at most TALLY_VERSIONS_MAX named versions among them */
    unsigned nnamed;
};

static const char *const tally_kind_names[TALLY_NKINDS] = {
    [TALLY_HTTP] = "http",           [TALLY_CONNECT] = "connect", [TALLY_TIMEOUT] = "timeout",
    [TALLY_RESET] = "reset",         [TALLY_SEND] = "send",       [TALLY_EMPTY] = "empty",
    [TALLY_PROTOCOL] = "protocol",   [TALLY_RESOLVE] = "resolve", [TALLY_OTHER] = "other",
    [TALLY_CANCELLED] = "cancelled", [TALLY_LIMIT] = "limit",     [TALLY_BEHIND] = "behind",
};

static const char *const tally_http_names[TALLY_HTTP_NERRORS] = {[TALLY_HTTP_4XX] = "http_4xx",
                                                                 [TALLY_HTTP_5XX] = "http_5xx",
                                                                 [TALLY_HTTP_OTHER] = "http_other"};

const char *tally_kind_name(enum tally_kind k)
{
    return (unsigned)k < TALLY_NKINDS ? tally_kind_names[k] : "?";
}

struct tally *tally_new(const struct tally_config *c)
{
    struct tally *t = xcalloc(1, sizeof *t);

    t->config = *c;
    qhist_init(&t->latency);
    qhist_init(&t->lag);
    qhist_init(&t->queue);
    return t;
}

void tally_free(struct tally *t)
{
    free(t);
}

void tally_scheduled(struct tally *t)
{
    t->scheduled++;
}

void tally_sent(struct tally *t, uint64_t sched_us, uint64_t sent_us)
{
    uint64_t lag = sent_us > sched_us ? sent_us - sched_us : 0;

    t->sent++;
    qhist_add(&t->lag, lag);
    if (lag > TALLY_LATE_US)
        t->late++;
    if (sent_us > t->last_sent_us)
        t->last_sent_us = sent_us;
}

void tally_label(char *dst, const char *src, size_t len)
{
    size_t i, n = 0;

    while (len > 0 && (*src == ' ' || *src == '\t')) {
        src++;
        len--;
    }
    while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\t' || src[len - 1] == '\r' ||
                       src[len - 1] == '\n'))
        len--;
    for (i = 0; i < len && n < TALLY_LABEL_MAX; i++) {
        unsigned char c = (unsigned char)src[i];

        dst[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[n] = '\0';
}

/* The row of a response's version: found, or made while there is room, else "(other)". */
static struct tally_row *tally_row_of(struct tally *t, const char *version)
{
    struct tally_row *row;
    unsigned i;

    for (i = 0; i < t->nrows; i++) {
        row = &t->rows[i];
        if (version == NULL ? row->none : !row->none && !row->other && !strcmp(row->name, version))
            return row;
    }
    if (version != NULL && t->nnamed >= TALLY_VERSIONS_MAX) {
        for (i = 0; i < t->nrows; i++)
            if (t->rows[i].other)
                return &t->rows[i];
    }
    row = &t->rows[t->nrows++];
    memset(row, 0, sizeof *row);
    qhist_init(&row->latency);
    if (version == NULL) {
        row->none = true;
    } else if (t->nnamed >= TALLY_VERSIONS_MAX) {
        row->other = true;
        strcpy(row->name, "(other)");
    } else {
        t->nnamed++;
        tally_label(row->name, version, strlen(version));
    }
    return row;
}

static bool tally_http_ok(long status)
{
    return status >= 200 && status <= 399;
}

void tally_add(struct tally *t, const struct tally_result *r)
{
    struct tally_row *row;
    uint64_t latency = r->done_us > r->sched_us ? r->done_us - r->sched_us : 0;

    t->kinds[r->kind < TALLY_NKINDS ? r->kind : TALLY_OTHER]++;
    if (r->new_conn)
        t->new_conns++;
    if (r->sent)
        qhist_add(&t->latency, latency);
    if (r->sent && r->wire_known) {
        uint64_t wait = r->wire_us > r->sent_us ? r->wire_us - r->sent_us : 0;

        qhist_add(&t->queue, wait);
        if (wait > TALLY_LATE_US)
            t->queued++;
    }
    if (r->kind != TALLY_HTTP)
        return;
    t->answered++;
    row = tally_row_of(t, r->version);
    row->count++;
    qhist_add(&row->latency, latency);
    if (tally_http_ok(r->status))
        return;
    row->errors++;
    if (r->status >= 400 && r->status <= 499)
        t->http_errors[TALLY_HTTP_4XX]++;
    else if (r->status >= 500 && r->status <= 599)
        t->http_errors[TALLY_HTTP_5XX]++;
    else
        t->http_errors[TALLY_HTTP_OTHER]++;
}

/* ---- the records ---- */

/* A member's key, after a comma unless it is the first of its object. */
static void tally_add_key(struct buf *out, const char *key)
{
    if (out->len > 0 && out->data[out->len - 1] != '{')
        buf_addc(out, ',');
    buf_addf(out, "\"%s\":", key);
}

static void tally_add_seconds(struct buf *out, const char *key, uint64_t us)
{
    tally_add_key(out, key);
    buf_addf(out, "%llu.%06llu", (unsigned long long)(us / 1000000),
             (unsigned long long)(us % 1000000));
}

static void tally_add_ms(struct buf *out, const char *key, uint64_t us)
{
    tally_add_key(out, key);
    buf_addf(out, "%llu.%03llu", (unsigned long long)(us / 1000), (unsigned long long)(us % 1000));
}

/* A string field, or null. The value is printable ASCII already (tally_label) or ours. */
static void tally_add_string(struct buf *out, const char *key, const char *s)
{
    tally_add_key(out, key);
    if (s == NULL)
        buf_adds(out, "null");
    else
        buf_add_json_string(out, s, strlen(s));
}

void tally_start_json(struct buf *out, const struct tally_config *c, uint64_t wall_us)
{
    buf_adds(out, "{\"type\":\"start\"");
    tally_add_seconds(out, "wall", wall_us);
    tally_add_string(out, "url", c->url);
    buf_addf(out, ",\"rate\":%.6g,\"duration_s\":%.6g", c->rate, c->duration_s);
    buf_addf(out, ",\"connections\":%u,\"timeout_ms\":%u,\"max_inflight\":%u", c->connections,
             c->timeout_ms, c->max_inflight);
    tally_add_string(out, "version_header", c->version_header);
    tally_add_string(out, "slot_header", c->slot_header);
    buf_adds(out, "}\n");
}

void tally_result_json(struct buf *out, const struct tally_result *r)
{
    uint64_t latency = r->done_us > r->sched_us ? r->done_us - r->sched_us : 0;

    buf_addf(out, "{\"type\":\"request\",\"seq\":%llu", (unsigned long long)r->seq);
    tally_add_seconds(out, "t_sched", r->sched_us);
    if (r->sent)
        tally_add_seconds(out, "t_sent", r->sent_us);
    else
        buf_adds(out, ",\"t_sent\":null");
    if (r->sent && r->wire_known)
        tally_add_seconds(out, "t_wire", r->wire_us);
    else
        buf_adds(out, ",\"t_wire\":null");
    tally_add_seconds(out, "t_done", r->done_us);
    tally_add_ms(out, "latency_ms", latency);
    if (r->status > 0)
        buf_addf(out, ",\"status\":%ld", r->status);
    else
        buf_adds(out, ",\"status\":null");
    tally_add_string(out, "error", r->kind == TALLY_HTTP ? NULL : tally_kind_name(r->kind));
    tally_add_string(out, "detail", r->detail);
    tally_add_string(out, "version", r->version);
    tally_add_string(out, "slot", r->slot);
    buf_addf(out, ",\"new_conn\":%s}\n", r->new_conn ? "true" : "false");
}

void tally_mark_json(struct buf *out, uint64_t t_us, uint64_t next_seq, const char *label,
                     size_t len, const char *source)
{
    char clean[TALLY_LABEL_MAX + 1];

    tally_label(clean, label, len);
    buf_adds(out, "{\"type\":\"mark\"");
    tally_add_seconds(out, "t", t_us);
    buf_addf(out, ",\"next_seq\":%llu", (unsigned long long)next_seq);
    tally_add_string(out, "label", clean);
    tally_add_string(out, "source", source);
    buf_adds(out, "}\n");
}

/* ---- the summary ---- */

/* The time sending took: the planned end (or the stop), or the last send when that was
 * later (the client behind at the end). */
static uint64_t tally_window_us(const struct tally *t, const struct tally_end *e)
{
    return t->last_sent_us > e->stop_us ? t->last_sent_us : e->stop_us;
}

static double tally_achieved(const struct tally *t, const struct tally_end *e)
{
    uint64_t w = tally_window_us(t, e);

    return w > 0 ? (double)t->sent * 1e6 / (double)w : 0;
}

static uint64_t tally_not_sent(const struct tally *t)
{
    return t->kinds[TALLY_LIMIT] + t->kinds[TALLY_BEHIND];
}

static uint64_t tally_errors(const struct tally *t)
{
    uint64_t n = 0;
    unsigned k;

    for (k = 0; k < TALLY_NKINDS; k++)
        if (k != TALLY_HTTP)
            n += t->kinds[k];
    for (k = 0; k < TALLY_HTTP_NERRORS; k++)
        n += t->http_errors[k];
    return n;
}

/* Why the target rate was not kept, in words; empty when it was. Requests started late by
 * the client, requests that waited for a connection of the pool, and requests never sent
 * all mean that the server did not see the rate asked for. */
static void tally_behind(const struct tally *t, struct buf *out)
{
    double allowed = TALLY_LATE_SHARE * (double)t->scheduled;
    const char *sep = "";

    if (tally_not_sent(t) > 0) {
        buf_addf(out, "%llu of %llu requests not sent (", (unsigned long long)tally_not_sent(t),
                 (unsigned long long)t->scheduled);
        if (t->kinds[TALLY_LIMIT] > 0)
            buf_addf(out, "%llu with %u in flight already, the --max-inflight limit",
                     (unsigned long long)t->kinds[TALLY_LIMIT], t->config.max_inflight);
        if (t->kinds[TALLY_LIMIT] > 0 && t->kinds[TALLY_BEHIND] > 0)
            buf_adds(out, "; ");
        if (t->kinds[TALLY_BEHIND] > 0)
            buf_addf(out, "%llu because the client was behind by more than the %u ms timeout",
                     (unsigned long long)t->kinds[TALLY_BEHIND], t->config.timeout_ms);
        buf_adds(out, ")");
        sep = "; ";
    }
    if ((double)t->late > allowed) {
        buf_addf(out,
                 "%sthe client fell behind: %llu requests started more than %u ms late "
                 "(lag p99 %.1f ms, max %.1f ms)",
                 sep, (unsigned long long)t->late, TALLY_LATE_US / 1000,
                 (double)qhist_quantile(&t->lag, 0.99) / 1000, (double)t->lag.max / 1000);
        sep = "; ";
    }
    if ((double)t->queued > allowed)
        buf_addf(out,
                 "%s%llu requests waited more than %u ms for one of the %u connections "
                 "(all busy: raise --connections)",
                 sep, (unsigned long long)t->queued, TALLY_LATE_US / 1000, t->config.connections);
}

static void tally_add_quantiles(struct buf *out, const struct qhist *h, bool p95)
{
    tally_add_ms(out, "p50", qhist_quantile(h, 0.50));
    if (p95)
        tally_add_ms(out, "p95", qhist_quantile(h, 0.95));
    tally_add_ms(out, "p99", qhist_quantile(h, 0.99));
    tally_add_ms(out, "max", h->max);
}

/* The rows by count, largest first; then by name, so that the order is stable. */
static int tally_row_cmp(const void *a, const void *b)
{
    const struct tally_row *x = *(const struct tally_row *const *)a;
    const struct tally_row *y = *(const struct tally_row *const *)b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if (x->none != y->none || x->other != y->other)
        return (x->none || x->other) ? 1 : -1;
    return strcmp(x->name, y->name);
}

static unsigned tally_sorted_rows(const struct tally *t, const struct tally_row **rows)
{
    unsigned i;

    for (i = 0; i < t->nrows; i++)
        rows[i] = &t->rows[i];
    qsort(rows, t->nrows, sizeof *rows, tally_row_cmp);
    return t->nrows;
}

static double tally_share(const struct tally *t, const struct tally_row *row)
{
    return t->answered > 0 ? (double)row->count / (double)t->answered : 0;
}

void tally_summary_json(const struct tally *t, const struct tally_end *e, struct buf *out)
{
    const struct tally_row *rows[TALLY_VERSIONS_MAX + 2];
    struct buf behind;
    unsigned i, n;
    double cpu = e->cpu_user_s + e->cpu_sys_s;

    buf_init(&behind);
    tally_behind(t, &behind);
    buf_adds(out, "{\"type\":\"summary\"");
    tally_add_string(out, "url", t->config.url);
    buf_addf(out, ",\"target_rate\":%.6g,\"duration_s\":%.6g", t->config.rate,
             t->config.duration_s);
    buf_addf(out, ",\"connections\":%u,\"timeout_ms\":%u,\"max_inflight\":%u",
             t->config.connections, t->config.timeout_ms, t->config.max_inflight);
    tally_add_string(out, "stopped_by", e->stopped_by);
    tally_add_seconds(out, "elapsed_s", tally_window_us(t, e));
    buf_addf(out, ",\"scheduled\":%llu,\"sent\":%llu,\"not_sent\":%llu,\"answered\":%llu",
             (unsigned long long)t->scheduled, (unsigned long long)t->sent,
             (unsigned long long)tally_not_sent(t), (unsigned long long)t->answered);
    buf_addf(out, ",\"errors_total\":%llu,\"errors\":{", (unsigned long long)tally_errors(t));
    for (i = 0, n = 0; i < TALLY_NKINDS; i++) {
        if (i == TALLY_HTTP)
            continue;
        buf_addf(out, "%s\"%s\":%llu", n++ ? "," : "", tally_kind_names[i],
                 (unsigned long long)t->kinds[i]);
    }
    for (i = 0; i < TALLY_HTTP_NERRORS; i++)
        buf_addf(out, ",\"%s\":%llu", tally_http_names[i], (unsigned long long)t->http_errors[i]);
    buf_addf(out, "},\"new_connections\":%llu", (unsigned long long)t->new_conns);
    buf_addf(out, ",\"achieved_rate\":%.3f,\"rate_kept\":%s", tally_achieved(t, e),
             behind.len == 0 ? "true" : "false");
    tally_add_string(out, "behind", behind.len ? behind.data : NULL);
    buf_addf(out, ",\"late\":%llu,\"queued\":%llu", (unsigned long long)t->late,
             (unsigned long long)t->queued);
    buf_adds(out, ",\"lag_ms\":{");
    tally_add_quantiles(out, &t->lag, false);
    buf_adds(out, "},\"queue_ms\":{");
    tally_add_quantiles(out, &t->queue, false);
    buf_adds(out, "},\"latency_ms\":{");
    tally_add_quantiles(out, &t->latency, true);
    buf_adds(out, "},\"versions\":[");
    n = tally_sorted_rows(t, rows);
    for (i = 0; i < n; i++) {
        buf_adds(out, i ? ",{" : "{");
        buf_adds(out, "\"version\":");
        if (rows[i]->none)
            buf_adds(out, "null");
        else
            buf_add_json_string(out, rows[i]->name, strlen(rows[i]->name));
        buf_addf(out, ",\"count\":%llu,\"share\":%.6f,\"errors\":%llu",
                 (unsigned long long)rows[i]->count, tally_share(t, rows[i]),
                 (unsigned long long)rows[i]->errors);
        tally_add_ms(out, "p50_ms", qhist_quantile(&rows[i]->latency, 0.50));
        tally_add_ms(out, "p95_ms", qhist_quantile(&rows[i]->latency, 0.95));
        tally_add_ms(out, "p99_ms", qhist_quantile(&rows[i]->latency, 0.99));
        tally_add_ms(out, "max_ms", rows[i]->latency.max);
        buf_adds(out, "}");
    }
    buf_addf(out, "],\"quantile_rel_error\":%.7f", QHIST_REL_ERROR);
    buf_addf(out, ",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_ms_per_1000\":%.3f}\n",
             e->cpu_user_s, e->cpu_sys_s, t->sent > 0 ? cpu * 1e6 / (double)t->sent : 0.0);
    buf_done(&behind);
}

static double tally_ms(uint64_t us)
{
    return (double)us / 1000;
}

void tally_summary_text(const struct tally *t, const struct tally_end *e, struct buf *out)
{
    const struct tally_row *rows[TALLY_VERSIONS_MAX + 2];
    struct buf behind;
    unsigned i, n;
    const char *sep = "";
    double cpu = e->cpu_user_s + e->cpu_sys_s;

    buf_init(&behind);
    tally_behind(t, &behind);
    buf_addf(out, "n3load: %s at %.6g req/s", t->config.url, t->config.rate);
    if (t->config.duration_s > 0)
        buf_addf(out, " for %.6g s", t->config.duration_s);
    buf_addf(out, " (%u connections, timeout %u ms), stopped by %s after %.2f s\n",
             t->config.connections, t->config.timeout_ms, e->stopped_by,
             (double)tally_window_us(t, e) / 1e6);
    buf_addf(out, "  requests: %llu scheduled, %llu sent, %llu answered, %llu errors",
             (unsigned long long)t->scheduled, (unsigned long long)t->sent,
             (unsigned long long)t->answered, (unsigned long long)tally_errors(t));
    if (tally_errors(t) > 0) {
        buf_adds(out, " (");
        for (i = 0; i < TALLY_NKINDS; i++) {
            if (i == TALLY_HTTP || t->kinds[i] == 0)
                continue;
            buf_addf(out, "%s%s %llu", sep, tally_kind_names[i], (unsigned long long)t->kinds[i]);
            sep = ", ";
        }
        for (i = 0; i < TALLY_HTTP_NERRORS; i++) {
            if (t->http_errors[i] == 0)
                continue;
            buf_addf(out, "%s%s %llu", sep, tally_http_names[i],
                     (unsigned long long)t->http_errors[i]);
            sep = ", ";
        }
        buf_adds(out, ")");
    }
    buf_addf(out, "; %llu new connections\n", (unsigned long long)t->new_conns);
    buf_addf(out, "  rate: %.1f req/s achieved: ", tally_achieved(t, e));
    if (behind.len == 0)
        buf_addf(out, "target kept (lag p99 %.1f ms, max %.1f ms)\n",
                 tally_ms(qhist_quantile(&t->lag, 0.99)), tally_ms(t->lag.max));
    else
        buf_addf(out, "target NOT kept: %s\n", behind.data);
    buf_addf(out, "  latency: p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms\n",
             tally_ms(qhist_quantile(&t->latency, 0.50)),
             tally_ms(qhist_quantile(&t->latency, 0.95)),
             tally_ms(qhist_quantile(&t->latency, 0.99)), tally_ms(t->latency.max));
    n = tally_sorted_rows(t, rows);
    if (n > 0)
        buf_addf(out, "  %-20s %9s %7s %7s %10s %10s %10s\n", "version", "count", "share", "errors",
                 "p50 ms", "p95 ms", "p99 ms");
    for (i = 0; i < n; i++)
        buf_addf(out, "  %-20s %9llu %6.1f%% %7llu %10.2f %10.2f %10.2f\n",
                 rows[i]->none ? "(none)" : rows[i]->name, (unsigned long long)rows[i]->count,
                 100 * tally_share(t, rows[i]), (unsigned long long)rows[i]->errors,
                 tally_ms(qhist_quantile(&rows[i]->latency, 0.50)),
                 tally_ms(qhist_quantile(&rows[i]->latency, 0.95)),
                 tally_ms(qhist_quantile(&rows[i]->latency, 0.99)));
    buf_addf(out, "  quantiles within %.2f %%; client CPU %.3f s (%.2f ms per 1,000 requests)\n",
             100 * QHIST_REL_ERROR, cpu, t->sent > 0 ? cpu * 1e6 / (double)t->sent : 0.0);
    buf_done(&behind);
}
