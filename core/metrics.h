/*
 * Metrics: counters, gauges and histograms with labels, written in the
 * Prometheus text exposition format (version 0.0.4). A family is registered
 * once with its label names; each distinct tuple of label values is a series.
 * Label values come from outside (step names, hosts), so the number of series
 * per family is bounded: past METRICS_MAX_SERIES, updates go to one series
 * whose label values are all "__overflow__", and metrics_overflowed() says so.
 */
#ifndef N3_METRICS_H
#define N3_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct metrics;
struct metric_family;

#define METRICS_MAX_SERIES 10000
#define METRICS_MAX_LABELS 8

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * Register (or find, if the same name was registered with the same type and
 * labels) a family. `labels` is NULL-terminated, or NULL for none. A bad name
 * or a clash with an existing family is a programming error and aborts.
 */
struct metric_family *metrics_counter(struct metrics *m, const char *name, const char *help,
                                      const char *const *labels);
struct metric_family *metrics_gauge(struct metrics *m, const char *name, const char *help,
                                    const char *const *labels);
/* buckets: strictly increasing upper bounds; +Inf is implied. NULL: the default buckets
 * 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 (seconds). */
struct metric_family *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                        const char *const *labels, const double *buckets,
                                        size_t nbuckets);

/* `values` holds one value per label name, in order (NULL when the family has no labels). */
void metric_inc(struct metric_family *f, const char *const *values,
                double delta); /* counter, delta >= 0 */
void metric_set(struct metric_family *f, const char *const *values, double v);     /* gauge */
void metric_add(struct metric_family *f, const char *const *values, double delta); /* gauge */
void metric_observe(struct metric_family *f, const char *const *values, double v); /* histogram */

/* Current value of a counter or gauge series (0 if it does not exist); for a
 * histogram, the count of observations. */
double metric_value(const struct metric_family *f, const char *const *values);
/* For a histogram: sum of observations, and cumulative count in the bucket with upper bound le. */
double metric_hist_sum(const struct metric_family *f, const char *const *values);
double metric_hist_bucket(const struct metric_family *f, const char *const *values, double le);

struct metric_family *metrics_find(const struct metrics *m, const char *name);
bool metrics_overflowed(const struct metrics *m);

/* Families in registration order, series sorted by label values; HELP and TYPE lines;
 * label values escaped (backslash, double quote, newline). */
void metrics_write_prometheus(const struct metrics *m, struct buf *out);

#endif
