/*
 * What the sample app counts, and its /metrics text (Prometheus text exposition format
 * 0.0.4): requests by path and status code, a request-duration histogram by path, requests
 * in flight, open connections, the start time and an info series with version and slot.
 *
 * Paths are a closed set (/, /health, /version, /metrics, and "other" for everything else,
 * malformed requests included), so no client can grow the series without bound.
 */
#ifndef N3APP_STATS_H
#define N3APP_STATS_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;

enum stats_path { PATH_ROOT, PATH_HEALTH, PATH_VERSION, PATH_METRICS, PATH_OTHER, PATH_COUNT };

/* The status codes the app answers with; stats_code_index gives -1 for any other. */
#define STATS_CODES 12

/* Upper bounds of the histogram's buckets, in seconds: 1 ms to 10 s, then +Inf. */
#define STATS_BOUNDS 13
extern const double stats_bounds[STATS_BOUNDS];

struct stats_hist {
    uint64_t buckets[STATS_BOUNDS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    double sum;
};

void stats_hist_observe(struct stats_hist *h, double seconds);
/* Observations <= stats_bounds[i] (i == STATS_BOUNDS: all of them), as the le bucket says. */
uint64_t stats_hist_cumulative(const struct stats_hist *h, size_t i);

struct stats {
    uint64_t requests[PATH_COUNT][STATS_CODES];
    struct stats_hist duration[PATH_COUNT];
    long in_flight;
    long connections;
    double start_time; /* seconds since the epoch */
    const char *version, *slot;
};

enum stats_path stats_path_of(const char *path, size_t len);
const char *stats_path_name(enum stats_path p);
int stats_code_index(int code);

/* One answered request: its path, status code and duration. */
void stats_record(struct stats *s, enum stats_path p, int code, double seconds);
/* The exposition text, appended to out. */
void stats_write(const struct stats *s, struct strbuf *out);

#endif
