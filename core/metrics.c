/* Counters, gauges and histograms with labels, written in the Prometheus text format. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "core/xalloc.h"

#define OVERFLOW_VALUE "__overflow__"

struct series {
    char **values; /* one per label name, then NULL */
    uint64_t hash;
    double value;     /* counter or gauge */
    double sum;       /* histogram */
    uint64_t count;   /* histogram */
    uint64_t *counts; /* histogram: per bucket, not cumulative; the last is +Inf */
};

struct metric_family {
    struct metrics *m;
    char *name;
    char *help;
    enum metric_type type;
    char **labels;
    size_t nlabels;
    double *buckets; /* upper bounds, +Inf not included */
    size_t nbuckets;

    struct series **series; /* in creation order */
    size_t nseries, capseries;
    struct series **slots; /* open addressing, linear probing; size a power of two */
    size_t nslots;
    struct series *overflow;
};

struct metrics {
    struct metric_family **families; /* in registration order */
    size_t nfamilies, capfamilies;
    bool overflowed;
};

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const char *const type_names[] = {
    [METRIC_COUNTER] = "counter",
    [METRIC_GAUGE] = "gauge",
    [METRIC_HISTOGRAM] = "histogram",
};

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof *m);

    return m;
}

static void series_free(struct metric_family *f, struct series *s)
{
    size_t i;

    for (i = 0; i < f->nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
}

static void family_free(struct metric_family *f)
{
    size_t i;

    for (i = 0; i < f->nseries; i++)
        series_free(f, f->series[i]);
    free(f->series);
    free(f->slots);
    for (i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->buckets);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_free(struct metrics *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->nfamilies; i++)
        family_free(m->families[i]);
    free(m->families);
    free(m);
}

static bool valid_name(const char *s, bool colon)
{
    const char *p;

    if (s == NULL || *s == '\0')
        return false;
    for (p = s; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (p != s && c >= '0' && c <= '9');

        if (!ok)
            return false;
    }
    return true;
}

static size_t count_labels(const char *name, const char *const *labels)
{
    size_t n = 0, i;

    if (labels == NULL)
        return 0;
    for (n = 0; labels[n] != NULL; n++) {
        if (n == METRICS_MAX_LABELS)
            fatal("metric %s: more than %d labels", name, METRICS_MAX_LABELS);
        if (!valid_name(labels[n], false) || strncmp(labels[n], "__", 2) == 0)
            fatal("metric %s: bad label name \"%s\"", name, labels[n]);
        for (i = 0; i < n; i++) {
            if (strcmp(labels[i], labels[n]) == 0)
                fatal("metric %s: label \"%s\" given twice", name, labels[n]);
        }
    }
    return n;
}

static bool same_labels(const struct metric_family *f, const char *const *labels, size_t n)
{
    size_t i;

    if (f->nlabels != n)
        return false;
    for (i = 0; i < n; i++) {
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    }
    return true;
}

static bool same_buckets(const struct metric_family *f, const double *buckets, size_t n)
{
    return f->nbuckets == n && (n == 0 || memcmp(f->buckets, buckets, n * sizeof *buckets) == 0);
}

static uint64_t hash_values(const struct metric_family *f, const char *const *values)
{
    /* FNV-1a over every value and its terminating NUL, so ("ab","") != ("a","b"). */
    uint64_t h = 0xcbf29ce484222325u;
    size_t i;

    for (i = 0; i < f->nlabels; i++) {
        const unsigned char *p = (const unsigned char *)values[i];

        do {
            h ^= *p;
            h *= 0x100000001b3u;
        } while (*p++ != '\0');
    }
    return h;
}

static bool series_matches(const struct metric_family *f, const struct series *s, uint64_t hash,
                           const char *const *values)
{
    size_t i;

    if (s->hash != hash)
        return false;
    for (i = 0; i < f->nlabels; i++) {
        if (strcmp(s->values[i], values[i]) != 0)
            return false;
    }
    return true;
}

static void check_values(const struct metric_family *f, const char *const *values)
{
    size_t i;

    if (f->nlabels == 0)
        return;
    if (values == NULL)
        fatal("metric %s: %zu label values needed, got none", f->name, f->nlabels);
    for (i = 0; i < f->nlabels; i++) {
        if (values[i] == NULL)
            fatal("metric %s: label value for \"%s\" is NULL", f->name, f->labels[i]);
    }
}

static struct series *series_lookup(const struct metric_family *f, const char *const *values,
                                    uint64_t hash)
{
    size_t mask = f->nslots - 1, i;

    for (i = (size_t)hash & mask; f->slots[i] != NULL; i = (i + 1) & mask) {
        if (series_matches(f, f->slots[i], hash, values))
            return f->slots[i];
    }
    return NULL;
}

static void slots_insert(struct series **slots, size_t nslots, struct series *s)
{
    size_t mask = nslots - 1, i;

    for (i = (size_t)s->hash & mask; slots[i] != NULL; i = (i + 1) & mask)
        ;
    slots[i] = s;
}

static struct series *series_create(struct metric_family *f, const char *const *values,
                                    uint64_t hash)
{
    struct series *s = xcalloc(1, sizeof *s);
    size_t i;

    s->hash = hash;
    s->values = xcalloc(f->nlabels + 1, sizeof *s->values);
    for (i = 0; i < f->nlabels; i++)
        s->values[i] = xstrdup(values[i]);
    if (f->type == METRIC_HISTOGRAM)
        s->counts = xcalloc(f->nbuckets + 1, sizeof *s->counts);

    /* Keep the table at most half full so probes stay short. */
    if ((f->nseries + 1) * 2 > f->nslots) {
        size_t nslots = f->nslots * 2;
        struct series **slots = xcalloc(nslots, sizeof *slots);

        for (i = 0; i < f->nseries; i++)
            slots_insert(slots, nslots, f->series[i]);
        free(f->slots);
        f->slots = slots;
        f->nslots = nslots;
    }
    slots_insert(f->slots, f->nslots, s);
    if (f->nseries == f->capseries) {
        f->capseries = f->capseries ? f->capseries * 2 : 8;
        f->series = xreallocarray(f->series, f->capseries, sizeof *f->series);
    }
    f->series[f->nseries++] = s;
    return s;
}

static bool is_overflow_tuple(const struct metric_family *f, const char *const *values)
{
    size_t i;

    for (i = 0; i < f->nlabels; i++) {
        if (strcmp(values[i], OVERFLOW_VALUE) != 0)
            return false;
    }
    return f->nlabels > 0;
}

static struct series *series_get(struct metric_family *f, const char *const *values)
{
    const char *ovalues[METRICS_MAX_LABELS];
    struct series *s;
    uint64_t hash;
    size_t i;

    check_values(f, values);
    hash = hash_values(f, values);
    if ((s = series_lookup(f, values, hash)) != NULL)
        return s;
    if (is_overflow_tuple(f, values)) {
        f->overflow = series_create(f, values, hash);
        return f->overflow;
    }
    if (f->nseries - (f->overflow != NULL) < METRICS_MAX_SERIES)
        return series_create(f, values, hash);

    f->m->overflowed = true;
    if (f->overflow == NULL) {
        for (i = 0; i < f->nlabels; i++)
            ovalues[i] = OVERFLOW_VALUE;
        f->overflow = series_create(f, ovalues, hash_values(f, ovalues));
    }
    return f->overflow;
}

static const struct series *series_find(const struct metric_family *f, const char *const *values)
{
    check_values(f, values);
    return series_lookup(f, values, hash_values(f, values));
}

static struct metric_family *family_register(struct metrics *m, enum metric_type type,
                                             const char *name, const char *help,
                                             const char *const *labels, const double *buckets,
                                             size_t nbuckets)
{
    struct metric_family *f;
    size_t nlabels, i;

    if (!valid_name(name, true))
        fatal("bad metric name \"%s\"", name != NULL ? name : "(null)");
    nlabels = count_labels(name, labels);
    if (type == METRIC_HISTOGRAM) {
        for (i = 0; i < nlabels; i++) {
            if (strcmp(labels[i], "le") == 0)
                fatal("histogram %s: label \"le\" is reserved", name);
        }
        for (i = 0; i < nbuckets; i++) {
            if (isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                fatal("histogram %s: buckets must be strictly increasing", name);
        }
        /* +Inf is implied; accept it spelled out as the last bound. */
        if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0)
            nbuckets--;
    }

    if ((f = metrics_find(m, name)) != NULL) {
        if (f->type != type || !same_labels(f, labels, nlabels) ||
            (type == METRIC_HISTOGRAM && !same_buckets(f, buckets, nbuckets)))
            fatal("metric %s registered twice with different type, labels or buckets", name);
        return f;
    }

    f = xcalloc(1, sizeof *f);
    f->m = m;
    f->name = xstrdup(name);
    f->help = xstrdup(help != NULL ? help : "");
    f->type = type;
    f->nlabels = nlabels;
    f->labels = xcalloc(nlabels, sizeof *f->labels);
    for (i = 0; i < nlabels; i++)
        f->labels[i] = xstrdup(labels[i]);
    if (type == METRIC_HISTOGRAM) {
        f->nbuckets = nbuckets;
        f->buckets = xcalloc(nbuckets, sizeof *f->buckets);
        if (nbuckets > 0)
            memcpy(f->buckets, buckets, nbuckets * sizeof *buckets);
    }
    f->nslots = 16;
    f->slots = xcalloc(f->nslots, sizeof *f->slots);
    /* A family without labels has exactly one series; it exists (at 0) from the start. */
    if (nlabels == 0)
        series_get(f, NULL);

    if (m->nfamilies == m->capfamilies) {
        m->capfamilies = m->capfamilies ? m->capfamilies * 2 : 16;
        m->families = xreallocarray(m->families, m->capfamilies, sizeof *m->families);
    }
    m->families[m->nfamilies++] = f;
    return f;
}

struct metric_family *metrics_counter(struct metrics *m, const char *name, const char *help,
                                      const char *const *labels)
{
    return family_register(m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct metric_family *metrics_gauge(struct metrics *m, const char *name, const char *help,
                                    const char *const *labels)
{
    return family_register(m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct metric_family *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                        const char *const *labels, const double *buckets,
                                        size_t nbuckets)
{
    if (buckets == NULL) {
        buckets = default_buckets;
        nbuckets = sizeof default_buckets / sizeof default_buckets[0];
    }
    return family_register(m, METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static void check_type(const struct metric_family *f, enum metric_type type, const char *what)
{
    if (f->type != type)
        fatal("%s on %s %s", what, type_names[f->type], f->name);
}

void metric_inc(struct metric_family *f, const char *const *values, double delta)
{
    check_type(f, METRIC_COUNTER, "metric_inc");
    if (!(delta >= 0))
        fatal("metric_inc %s: delta %g is not >= 0", f->name, delta);
    series_get(f, values)->value += delta;
}

void metric_set(struct metric_family *f, const char *const *values, double v)
{
    check_type(f, METRIC_GAUGE, "metric_set");
    series_get(f, values)->value = v;
}

void metric_add(struct metric_family *f, const char *const *values, double delta)
{
    check_type(f, METRIC_GAUGE, "metric_add");
    series_get(f, values)->value += delta;
}

void metric_observe(struct metric_family *f, const char *const *values, double v)
{
    struct series *s;
    size_t lo = 0, hi;

    check_type(f, METRIC_HISTOGRAM, "metric_observe");
    s = series_get(f, values);
    /* First bucket with v <= bound; NaN and values past the last bound land in +Inf. */
    hi = f->nbuckets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (v <= f->buckets[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(v))
        lo = f->nbuckets;
    s->counts[lo]++;
    s->count++;
    s->sum += v;
}

double metric_value(const struct metric_family *f, const char *const *values)
{
    const struct series *s = series_find(f, values);

    if (s == NULL)
        return 0;
    return f->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
}

double metric_hist_sum(const struct metric_family *f, const char *const *values)
{
    const struct series *s;

    check_type(f, METRIC_HISTOGRAM, "metric_hist_sum");
    s = series_find(f, values);
    return s != NULL ? s->sum : 0;
}

double metric_hist_bucket(const struct metric_family *f, const char *const *values, double le)
{
    const struct series *s;
    uint64_t n = 0;
    size_t i;

    check_type(f, METRIC_HISTOGRAM, "metric_hist_bucket");
    if ((s = series_find(f, values)) == NULL)
        return 0;
    if (isinf(le) && le > 0)
        return (double)s->count;
    /* An le between bounds gets the bucket below it: observations known to be <= le. */
    for (i = 0; i < f->nbuckets && f->buckets[i] <= le; i++)
        n += s->counts[i];
    return (double)n;
}

struct metric_family *metrics_find(const struct metrics *m, const char *name)
{
    size_t i;

    for (i = 0; i < m->nfamilies; i++) {
        if (strcmp(m->families[i]->name, name) == 0)
            return m->families[i];
    }
    return NULL;
}

bool metrics_overflowed(const struct metrics *m)
{
    return m->overflowed;
}

static void add_number(struct buf *out, double v)
{
    char tmp[40];
    int prec;

    if (isnan(v)) {
        buf_adds(out, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_adds(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Integers (exact in a double) without exponent or decimals; -0 as 0. */
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
        buf_addf(out, "%.0f", v == 0 ? 0.0 : v);
        return;
    }
    /* Otherwise the shortest form that reads back as the same double. */
    for (prec = 15; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    if (prec == 17)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    buf_adds(out, tmp);
}

static void add_escaped(struct buf *out, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            buf_add(out, "\\\\", 2);
        else if (*s == '\n')
            buf_add(out, "\\n", 2);
        else if (quote && *s == '"')
            buf_add(out, "\\\"", 2);
        else
            buf_addc(out, *s);
    }
}

/* name{l1="v1",...[,le="bound"]} with the suffix, or just the name when there are no labels. */
static void add_series_name(struct buf *out, const struct metric_family *f, const struct series *s,
                            const char *suffix, const double *le)
{
    size_t i;

    buf_adds(out, f->name);
    buf_adds(out, suffix);
    if (f->nlabels == 0 && le == NULL)
        return;
    buf_addc(out, '{');
    for (i = 0; i < f->nlabels; i++) {
        if (i > 0)
            buf_addc(out, ',');
        buf_addf(out, "%s=\"", f->labels[i]);
        add_escaped(out, s->values[i], true);
        buf_addc(out, '"');
    }
    if (le != NULL) {
        buf_adds(out, f->nlabels > 0 ? ",le=\"" : "le=\"");
        add_number(out, *le);
        buf_addc(out, '"');
    }
    buf_addc(out, '}');
}

static int series_cmp(const void *a, const void *b)
{
    const struct series *sa = *(const struct series *const *)a;
    const struct series *sb = *(const struct series *const *)b;
    size_t i;
    int c;

    for (i = 0; sa->values[i] != NULL; i++) {
        if ((c = strcmp(sa->values[i], sb->values[i])) != 0)
            return c;
    }
    return 0;
}

static void write_family(const struct metric_family *f, struct buf *out)
{
    static const double inf = INFINITY;
    struct series **sorted;
    size_t i, j;

    if (f->help[0] != '\0') {
        buf_addf(out, "# HELP %s ", f->name);
        add_escaped(out, f->help, false);
        buf_addc(out, '\n');
    }
    buf_addf(out, "# TYPE %s %s\n", f->name, type_names[f->type]);
    if (f->nseries == 0)
        return;

    sorted = xreallocarray(NULL, f->nseries, sizeof *sorted);
    memcpy(sorted, f->series, f->nseries * sizeof *sorted);
    qsort(sorted, f->nseries, sizeof *sorted, series_cmp);

    for (i = 0; i < f->nseries; i++) {
        const struct series *s = sorted[i];
        uint64_t cumulative = 0;

        if (f->type != METRIC_HISTOGRAM) {
            add_series_name(out, f, s, "", NULL);
            buf_addc(out, ' ');
            add_number(out, s->value);
            buf_addc(out, '\n');
            continue;
        }
        for (j = 0; j < f->nbuckets; j++) {
            cumulative += s->counts[j];
            add_series_name(out, f, s, "_bucket", &f->buckets[j]);
            buf_addf(out, " %" PRIu64 "\n", cumulative);
        }
        add_series_name(out, f, s, "_bucket", &inf);
        buf_addf(out, " %" PRIu64 "\n", s->count);
        add_series_name(out, f, s, "_sum", NULL);
        buf_addc(out, ' ');
        add_number(out, s->sum);
        buf_addc(out, '\n');
        add_series_name(out, f, s, "_count", NULL);
        buf_addf(out, " %" PRIu64 "\n", s->count);
    }
    free(sorted);
}

void metrics_write_prometheus(const struct metrics *m, struct buf *out)
{
    size_t i;

    for (i = 0; i < m->nfamilies; i++)
        write_family(m->families[i], out);
}
