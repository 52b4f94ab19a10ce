/* Counters, the duration histogram and the Prometheus text of the sample app (see stats.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "strbuf.h"

const double stats_bounds[STATS_BOUNDS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1,     2.5,  5,     10};
/* As written in le labels: the shortest form that reads back as the bound. */
static const char *const bound_text[STATS_BOUNDS] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                                     "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                                     "2.5",   "5",      "10"};

static const int codes[STATS_CODES] = {200, 400, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505};

static const char *const path_names[PATH_COUNT] = {
    [PATH_ROOT] = "/",           [PATH_HEALTH] = "/health", [PATH_VERSION] = "/version",
    [PATH_METRICS] = "/metrics", [PATH_OTHER] = "other",
};

void stats_hist_observe(struct stats_hist *h, double seconds)
{
    size_t i = 0;

    if (!(seconds >= 0.0)) /* a clock that went back, or NaN: count it as no time */
        seconds = 0.0;
    while (i < STATS_BOUNDS && seconds > stats_bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum += seconds;
}

uint64_t stats_hist_cumulative(const struct stats_hist *h, size_t i)
{
    uint64_t n = 0;
    size_t k;

    for (k = 0; k <= i && k <= STATS_BOUNDS; k++)
        n += h->buckets[k];
    return n;
}

enum stats_path stats_path_of(const char *path, size_t len)
{
    int p;

    for (p = PATH_ROOT; p < PATH_OTHER; p++)
        if (strlen(path_names[p]) == len && memcmp(path_names[p], path, len) == 0)
            return (enum stats_path)p;
    return PATH_OTHER;
}

const char *stats_path_name(enum stats_path p)
{
    return path_names[p];
}

int stats_code_index(int code)
{
    int i;

    for (i = 0; i < STATS_CODES; i++)
        if (codes[i] == code)
            return i;
    return -1;
}

void stats_record(struct stats *s, enum stats_path p, int code, double seconds)
{
    int c = stats_code_index(code);

    if (c < 0) {
        fprintf(stderr, "n3app: status %d is not one the app answers with\n", code);
        abort();
    }
    s->requests[p][c]++;
    stats_hist_observe(&s->duration[p], seconds);
}

/* A label value: backslash, double quote and newline escaped, as the format asks. */
static void add_label_value(struct strbuf *out, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            strbuf_addf(out, "\\%c", *v);
        else if (*v == '\n')
            strbuf_adds(out, "\\n");
        else
            strbuf_add(out, v, 1);
    }
}

static void family(struct strbuf *out, const char *name, const char *type, const char *help)
{
    strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void stats_write(const struct stats *s, struct strbuf *out)
{
    int p, c;
    size_t i;

    family(out, "n3app_requests_total", "counter",
           "Requests answered, by path (/, /health, /version, /metrics or other) and status code.");
    for (p = 0; p < PATH_COUNT; p++)
        for (c = 0; c < STATS_CODES; c++)
            if (s->requests[p][c] > 0)
                strbuf_addf(out, "n3app_requests_total{path=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                            path_names[p], codes[c], s->requests[p][c]);
    family(out, "n3app_request_duration_seconds", "histogram",
           "Time from a request's complete head to its whole answer written, by path.");
    for (p = 0; p < PATH_COUNT; p++) {
        const struct stats_hist *h = &s->duration[p];
        for (i = 0; i <= STATS_BOUNDS; i++)
            strbuf_addf(
                out, "n3app_request_duration_seconds_bucket{path=\"%s\",le=\"%s\"} %" PRIu64 "\n",
                path_names[p], i < STATS_BOUNDS ? bound_text[i] : "+Inf",
                stats_hist_cumulative(h, i));
        strbuf_addf(out, "n3app_request_duration_seconds_sum{path=\"%s\"} %.9g\n", path_names[p],
                    h->sum);
        strbuf_addf(out, "n3app_request_duration_seconds_count{path=\"%s\"} %" PRIu64 "\n",
                    path_names[p], h->count);
    }
    family(out, "n3app_in_flight", "gauge",
           "Requests being answered now (a scrape of /metrics counts itself).");
    strbuf_addf(out, "n3app_in_flight %ld\n", s->in_flight);
    family(out, "n3app_connections", "gauge", "Open client connections.");
    strbuf_addf(out, "n3app_connections %ld\n", s->connections);
    family(out, "n3app_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.");
    strbuf_addf(out, "n3app_start_time_seconds %.3f\n", s->start_time);
    family(out, "n3app_info", "gauge", "The version and slot this instance serves (always 1).");
    strbuf_adds(out, "n3app_info{version=\"");
    add_label_value(out, s->version);
    strbuf_adds(out, "\",slot=\"");
    add_label_value(out, s->slot);
    strbuf_adds(out, "\"} 1\n");
}
