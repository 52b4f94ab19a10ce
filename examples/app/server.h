/*
 * The sample app's HTTP/1.1 server: one thread, one epoll loop, non-blocking sockets, so that
 * thousands of keep-alive connections cost a few hundred bytes each and no thread.
 *
 *   /          "VERSION SLOT\n"; the faults' error rate and latency apply here
 *   /health    200 "ok\n", or 503 with the reason (health_fail, or stopping)
 *   /version   {"version": ..., "slot": ..., "pid": ..., "started": "RFC 3339 UTC"}
 *   /metrics   Prometheus text (stats.h)
 *
 * Every answer carries X-N3-Version and X-N3-Slot, errors included, so whoever sent a request
 * knows which instance answered it. GET and HEAD only (405 otherwise), 404 for other paths,
 * 400 (414, 431, 501, 505) for what reqparse.h refuses, and then the connection is closed.
 *
 * TERM or INT: the listener is closed at once (new connections are refused, the port is free),
 * idle connections are closed, requests in flight are finished (their answer says
 * Connection: close) within the grace period; then server_run returns 0. A second signal ends
 * the wait. HUP reads the faults file again.
 */
#ifndef N3APP_SERVER_H
#define N3APP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "faults.h"

struct server_config {
    const char *bind_addr; /* numeric IPv4 or IPv6 */
    unsigned port;         /* 0: one the kernel picks (the log line says which) */
    const char *version, *slot;
    const char *faults_path; /* NULL: none */
    bool faults_explicit;    /* given with --faults: its absence is an error */
    struct faults faults;
    uint64_t seed;
    int64_t header_timeout_ms; /* from a head's first byte to its end */
    int64_t idle_timeout_ms;   /* a connection with no request, or that makes no progress */
    int64_t grace_ms;          /* for the requests in flight at TERM */
    unsigned max_connections;
    double start_time; /* seconds since the epoch */
};

/* Listen and serve until TERM or INT; sigfd is a signalfd for TERM, INT and HUP. The exit
 * status: 0 after a stop, 1 when it could not listen (said on stderr). */
int server_run(const struct server_config *cfg, int sigfd);

#endif
