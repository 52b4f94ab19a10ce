/*
 * n3probe: n3ctl's HTTP health probes at a given rate, for bench/switch's probe overhead. It
 * runs the http probe kind (plugins/probe_http.c, through plugins/httpc on the loop) with the
 * health machinery of deploy/health.h, exactly as `n3ctl slot start` and `slots` do, on
 * ENDPOINTS endpoints spread over the given ports, each checked every ENDPOINTS / RATE
 * seconds (the probes' shortest interval is 0.1 s: RATE 1000 takes at least 100 endpoints),
 * for SECONDS; then it prints, as one JSON object, the checks done, how many failed, and its
 * own CPU (user + system, getrusage) over that time.
 *
 *   n3probe --port P [--port P ...] [--endpoints N] [--rate R] [--seconds S] [--path /health]
 *
 * Exit status: 0 when it ran (whatever the checks said), 2 for bad arguments.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/cfg.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/health.h"
#include "deploy/inventory.h"
#include "deploy/probe.h"
#include "plugins/builtin.h"
#include "plugins/httpc.h"

#define PORTS_MAX 64

struct ep {
    struct probe_endpoint where;
    void *ctx;
    struct health *h;
};

struct run {
    struct loop *loop;
    struct ep *eps;
    size_t n;
};

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void end_run(void *arg)
{
    struct run *r = arg;

    for (size_t i = 0; i < r->n; i++)
        health_stop(r->eps[i].h);
    loop_stop(r->loop);
}

static void usage(FILE *f)
{
    fputs("usage: n3probe --port P [--port P ...] [--endpoints N] [--rate R] [--seconds S]\n"
          "               [--path /health]\n",
          f);
}

static long num(const char *s, const char *what, long min, long max)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "n3probe: %s: '%s' is not a number from %ld to %ld\n", what, s, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"endpoints", required_argument, NULL, 'n'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"path", required_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned ports[PORTS_MAX];
    size_t nports = 0;
    long endpoints = 100, rate = 1000, seconds = 5;
    const char *path = "/health";
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (nports == PORTS_MAX) {
                fprintf(stderr, "n3probe: at most %d ports\n", PORTS_MAX);
                return 2;
            }
            ports[nports++] = (unsigned)num(optarg, "--port", 1, 65535);
            break;
        case 'n':
            endpoints = num(optarg, "--endpoints", 1, 100000);
            break;
        case 'r':
            rate = num(optarg, "--rate", 1, 1000000);
            break;
        case 's':
            seconds = num(optarg, "--seconds", 1, 3600);
            break;
        case 'P':
            path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (nports == 0 || optind != argc) {
        usage(stderr);
        return 2;
    }
    double interval = (double)endpoints / (double)rate;
    if (interval < 0.1) {
        fprintf(stderr,
                "n3probe: %ld endpoints at %ld checks a second is one every %.3g s an endpoint; "
                "the shortest interval is 0.1 s: give --endpoints %ld or more\n",
                endpoints, rate, interval, (rate + 9) / 10);
        return 2;
    }
    plugins_register_builtins();

    /* The probe as n3.json would have it. */
    char json[512];
    snprintf(json, sizeof json,
             "{\"type\": \"http\", \"path\": \"%s\", \"interval_seconds\": %.6f, "
             "\"timeout_seconds\": %.6f}",
             path, interval, interval < 1 ? interval : 1.0);
    struct cfg *cfg = NULL;
    struct err err = {0};
    struct probe_spec spec = {0};
    if (cfg_load_string("probe", json, strlen(json), &cfg, &err) != 0 ||
        probe_spec_load(cfg, cfg_root(cfg), &spec, &err) != 0) {
        fprintf(stderr, "n3probe: %s\n", err.msg);
        cfg_free(cfg);
        return 2;
    }

    struct run r = {.loop = loop_new(), .n = (size_t)endpoints};
    struct httpc *http = httpc_new(r.loop);
    struct inv_target *target = xcalloc(1, sizeof *target);
    target->name = (char *)"bench";
    r.eps = xcalloc(r.n, sizeof *r.eps);
    for (size_t i = 0; i < r.n; i++) {
        struct ep *e = &r.eps[i];
        e->where = (struct probe_endpoint){.loop = r.loop,
                                           .target = target,
                                           .host = "127.0.0.1",
                                           .port = ports[i % nports],
                                           .slot = "blue",
                                           .http = http};
        e->ctx = spec.kind->new_ctx(&spec, &e->where);
        e->h = health_new(r.loop, "bench", &spec.policy, spec.kind->ops, e->ctx, NULL, NULL);
    }
    struct loop_timer *end = loop_timer_new(r.loop, end_run, &r);
    loop_timer_start(end, (uint64_t)seconds * 1000u);
    double cpu0 = cpu_s(), wall0 = wall_s();
    for (size_t i = 0; i < r.n; i++)
        health_start(r.eps[i].h);
    loop_run(r.loop);
    double cpu = cpu_s() - cpu0, wall = wall_s() - wall0;

    uint64_t checks = 0;
    size_t healthy = 0;
    for (size_t i = 0; i < r.n; i++) {
        const struct health_status *st = health_status(r.eps[i].h);
        checks += st->checks;
        healthy += st->state == HEALTH_HEALTHY || st->state == HEALTH_DEGRADED;
    }
    printf("{\"endpoints\": %zu, \"interval_s\": %.4f, \"seconds\": %.3f, \"checks\": %llu, "
           "\"rate\": %.1f, \"healthy_endpoints\": %zu, \"cpu_s\": %.3f, \"core_percent\": %.2f}\n",
           r.n, interval, wall, (unsigned long long)checks, (double)checks / wall, healthy, cpu,
           100.0 * cpu / wall);

    for (size_t i = 0; i < r.n; i++) {
        health_free(r.eps[i].h);
        spec.kind->free_ctx(r.eps[i].ctx);
    }
    loop_timer_free(end);
    httpc_free(http);
    loop_run(r.loop);
    loop_free(r.loop);
    free(r.eps);
    free(target);
    probe_spec_done(&spec);
    cfg_free(cfg);
    return 0;
}
