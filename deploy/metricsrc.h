/*
 * Metric sources: live request figures of an environment's instances (a target's slot), for
 * `n3ctl slots`, the console and the rollout analysis. The kinds (prometheus, haproxy, ...) are
 * plugins: each registers itself (plugins/builtin.c) and deploy finds it by the name n3.json's
 * "metrics" gives ("source"); deploy never names one.
 *
 * A kind reads each instance's cumulative counters once, on the loop: requests, the 5xx among
 * them, and, when it can, a latency histogram (cumulative buckets, as Prometheus has them).
 * This file keeps a bounded ring of those samples per instance, read every interval, and makes
 * the figures over a sliding window (60 s by default) from the samples inside it:
 *
 * - increase: over each pair of consecutive samples, newer minus older; a counter that went
 *   down (or a start time that changed, or histogram bounds that changed) is a reset (the
 *   instance restarted) and the newer value counts from 0, so a restart never gives a negative
 *   rate (Prometheus's increase(), without its extrapolation to the window's edges). With no
 *   reset that is the newest minus the oldest.
 * - request rate: the requests' increase over the time from the oldest sample to the newest.
 * - error rate: the 5xx increase over the requests' increase (0 to 1); unknown with no request.
 * - p50, p95, p99: from the buckets' increase, as Prometheus's histogram_quantile does it (see
 *   metricsrc_bucket_quantile); unknown when the kind has no histogram (never 0), or when no
 *   request was observed.
 * - samples: the requests the figures rest on (the requests' increase).
 *
 * A rate needs two samples inside the window, apart in time: one sample, or none, is unknown,
 * with the reason. A read that failed is not kept; the figures say the last one failed.
 *
 * n3.json's "metrics" (docs/config.md): the source, window_s, interval_ms, timeout_ms and the
 * kind's own keys, which the kind checks when n3.json loads.
 */
#ifndef N3_METRICSRC_H
#define N3_METRICSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "deploy/hoststate.h"

struct cfg;
struct loop;
struct httpc;
struct traffic;
struct fleet;

#define METRICSRC_BUCKETS_MAX 32   /* histogram buckets a sample holds, +Inf included */
#define METRICSRC_POINTS_MAX  1024 /* samples a window holds: window_s / interval at most */

/* One read of one instance's counters, as a kind gives it. */
struct metricsrc_sample {
    bool ok; /* read; else error says why */
    char error[400];
    uint64_t at_us;    /* loop time of the read (loop_now_us when its answer came) */
    double requests;   /* so far (cumulative) */
    double errors;     /* of them, answered 5xx (cumulative) */
    double start_time; /* when the instance's counters started (any clock), 0: unknown */
    size_t nbuckets;   /* 0: no histogram */
    double le[METRICSRC_BUCKETS_MAX];    /* upper bounds (seconds), increasing, the last +Inf */
    double count[METRICSRC_BUCKETS_MAX]; /* observations <= le[i] so far (cumulative) */
    unsigned bad_lines;                  /* of what the source answered, skipped as unreadable */
};

/* The figures of one instance over the window. Whatever is not known says so (its flag), with
 * the reason in why; never a 0 in place of an unknown. */
struct metricsrc_figures {
    bool rate_known;    /* two samples in the window, apart in time */
    double req_s;       /* requests a second */
    bool error_known;   /* rate_known and samples > 0 */
    double error_rate;  /* 5xx over all, 0-1 */
    bool latency_known; /* a histogram with observations in the window */
    double p50_s, p95_s, p99_s;
    bool latency_capped; /* a quantile fell in the +Inf bucket: it is the highest finite bound,
                          * and the latency is at least that */
    uint64_t samples;    /* requests the figures rest on */
    double span_s;       /* from the oldest sample used to the newest */
    unsigned points;     /* samples used */
    unsigned resets;     /* counter resets in the window (restarts) */
    unsigned bad_lines;  /* of the newest read */
    bool last_failed;    /* the last read failed (why says why); figures from the ones before */
    char why[640];       /* what is unknown and why ("" when everything is known) */
};

/* ---- the window: samples and figures, no loop (the tests drive it with their own clock) ---- */

struct metricsrc_window;

/* A window of window_ms holding at most capacity samples (2 to METRICSRC_POINTS_MAX). */
struct metricsrc_window *metricsrc_window_new(uint64_t window_ms, size_t capacity);
void metricsrc_window_free(struct metricsrc_window *w);
/* Keep a sample (a failed one is only remembered as the last read's failure; one older than
 * the newest kept is dropped). The oldest goes when the ring is full. */
void metricsrc_window_add(struct metricsrc_window *w, const struct metricsrc_sample *s);
/* The figures at now_us over the samples in (now_us - window, now_us]; quantiles: whether the
 * source can give them at all (else latency is unknown because of the source). */
void metricsrc_window_figures(const struct metricsrc_window *w, uint64_t now_us, bool quantiles,
                              struct metricsrc_figures *f);

/*
 * Quantile q (0 to 1) of n cumulative buckets (upper bounds le[], increasing, the last +Inf;
 * count[i]: observations <= le[i]), as Prometheus's histogram_quantile: the rank q * total is
 * found in the first bucket whose count reaches it, and the value is interpolated linearly
 * inside that bucket, between its lower bound (the bound before it; 0 for the first bucket when
 * its bound is positive) and its upper bound, as if its observations were spread evenly.
 * A rank in the +Inf bucket gives the highest finite bound (*capped is set: the truth is at
 * least that). Counts that go down from one bucket to the next (a torn read) are taken as the
 * highest before them. NAN when unknown: fewer than two buckets, no +Inf bucket, no
 * observation.
 */
double metricsrc_bucket_quantile(double q, const double *le, const double *count, size_t n,
                                 bool *capped);

/* ---- kinds ---- */

/* Where one instance is. */
struct remote;
struct transport;

struct metricsrc_instance {
    const char *target;
    enum hs_slot slot;
    const char *host; /* its address from here ("127.0.0.1" on the target, via_target) */
    unsigned port;
    int server; /* its server in the router's views (deploy/traffic.h), or -1 */
    /* It listens only on its target's loopback (service "listen": "loopback"): reached through
     * t (transport_bridge); t may be NULL when no transport was given. */
    bool via_target;
    struct transport *t;
};

/* What a kind is opened with. */
struct metricsrc_ctx {
    struct loop *loop;
    const cJSON *config; /* n3.json's "metrics" object (checked by the kind) */
    const struct metricsrc_instance *inst;
    size_t n;
    struct httpc *http;      /* a client on the loop, for the kinds that scrape */
    struct traffic *traffic; /* the environment's router, or NULL: for the kinds that read it */
    uint64_t timeout_ms;     /* a read's */
};

typedef void (*metricsrc_read_fn)(void *arg);

struct metricsrc_kind {
    const char *name;
    const char *const *keys; /* its own keys in the metrics object, NULL-terminated */
    /* The router kind whose counters it reads (n3.json's environment must have that router),
     * or NULL. */
    const char *router;
    bool quantiles; /* it can give latency quantiles */
    /* Check its keys when n3.json loads: 0, or -1 with cfg_error at the key's position. */
    int (*check)(const struct cfg *c, const cJSON *metrics, struct err *err);
    void *(*open)(const struct metricsrc_ctx *ctx, struct err *err);
    /* Read every instance once: out[i] for instance i (zeroed by the caller), then done(arg),
     * once, after read has returned. One read at a time. */
    void (*read)(void *src, struct metricsrc_sample *out, metricsrc_read_fn done, void *arg);
    /* Also with a read in flight: its done is not called then. */
    void (*close)(void *src);
};

void metricsrc_kind_register(const struct metricsrc_kind *k);
const struct metricsrc_kind *metricsrc_kind_find(const char *name);
/* The registered kinds' names, NULL-terminated (for messages). */
const char *const *metricsrc_kind_names(void);

/* ---- n3.json's "metrics" ---- */

struct metricsrc_spec {
    const struct metricsrc_kind *kind;
    cJSON *config;        /* the object as n3.json has it (the kind reads its keys) */
    uint64_t window_ms;   /* window_s; 60 s */
    uint64_t interval_ms; /* between reads; 1000 */
    uint64_t timeout_ms;  /* a read's; 2000, at most the interval */
};

/* The object node loaded into spec (the common keys and the kind's): 0, or -1 with err at the
 * position. */
int metricsrc_spec_load(const struct cfg *c, const cJSON *node, struct metricsrc_spec *spec,
                        struct err *err);
void metricsrc_spec_done(struct metricsrc_spec *spec);
void metricsrc_spec_copy(struct metricsrc_spec *to, const struct metricsrc_spec *from);

/* ---- a source, open for an environment's instances, read on the loop ---- */

struct metricsrc;

typedef void (*metricsrc_fn)(void *arg);

/* The environment's metrics (n3.json) for the fleet's selected targets: one instance a slot of
 * each, in the fleet's order, blue then green (as deploy/survey.h has them). NULL with err when
 * the environment has no metrics, or the kind cannot be opened (a router it needs is NULL). */
struct metricsrc *metricsrc_open_env(struct loop *loop, const struct fleet *fleet,
                                     struct httpc *http, struct traffic *traffic,
                                     struct remote *targets, struct err *err);
/* With a spec and the instances given (the tests). */
struct metricsrc *metricsrc_open(struct loop *loop, const struct metricsrc_spec *spec,
                                 const struct metricsrc_instance *inst, size_t n,
                                 struct httpc *http, struct traffic *traffic, struct err *err);
/* Also with a read in flight (its waiters are not told). */
void metricsrc_close(struct metricsrc *m);

const char *metricsrc_kind_name(const struct metricsrc *m);
const struct metricsrc_spec *metricsrc_get_spec(const struct metricsrc *m);
size_t metricsrc_count(const struct metricsrc *m);

/* Read now, then every interval, until metricsrc_stop. */
void metricsrc_start(struct metricsrc *m);
void metricsrc_stop(struct metricsrc *m);
/* One read now (or the one in flight); done(arg) once it is in the windows, after this
 * returned. */
void metricsrc_read(struct metricsrc *m, metricsrc_fn done, void *arg);
/* Reads done so far. */
unsigned metricsrc_reads(const struct metricsrc *m);
/* Instance i's figures now. */
void metricsrc_figures(const struct metricsrc *m, size_t i, struct metricsrc_figures *f);

#endif
