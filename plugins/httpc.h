/*
 * An HTTP client on the loop: libcurl's multi interface driven by the loop's socket polls and
 * one timer (curl's socket and timer callbacks), never a blocking call. For the probes, the
 * metric scrapes and the notifiers: a GET (or a POST) with a timeout, the status, a bounded
 * body, a few response headers, and the times (connect, first byte, total).
 *
 * A request can be sent somewhere else than its URL says (connect_to): to a local bridge to an
 * SSH channel, for an app that listens only on a target's loopback, the URL staying what the
 * app sees (its Host header). (libcurl 7.88, Debian 12's, cannot take a socket that is
 * connected already: CURL_SOCKOPT_ALREADY_CONNECTED is broken there, curl issue 10626.)
 */
#ifndef N3_HTTPC_H
#define N3_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct httpc;
struct httpc_op;

#define HTTPC_HEADERS_MAX 4 /* response headers a request can ask for */

struct httpc_req {
    const char *url;
    const char *method; /* NULL: GET */
    const char *body;   /* POST: the body (NULL: none) */
    size_t body_len;
    const char *const *headers; /* request headers, "Name: value", NULL-terminated; or NULL */
    uint64_t timeout_ms;        /* the whole request; 0: 10 s */
    size_t body_max;            /* response bytes kept; 0: 64 KiB (more is counted, and cut) */
    /* Response headers to keep (case-insensitive names), at most HTTPC_HEADERS_MAX. */
    const char *want_headers[HTTPC_HEADERS_MAX];
    /* When not NULL: connect to this unix socket instead (a bridge, deploy/bridge.h). */
    const char *unix_socket;
    /* When not NULL: connect to this address and port instead of the URL's. */
    const char *connect_to_host;
    unsigned connect_to_port;
};

struct httpc_result {
    bool ok;         /* an HTTP answer came (whatever its status) */
    long status;     /* its status code, or 0 */
    char error[256]; /* when not ok: what failed ("connection refused", "timed out", ...) */
    bool timed_out;
    bool refused;     /* nothing listened there (the connection was refused) */
    const char *body; /* the body kept (NUL-terminated), valid during the callback */
    size_t body_len;
    uint64_t body_total; /* bytes of body received */
    bool body_cut;
    const char *headers[HTTPC_HEADERS_MAX]; /* the asked headers' values, or NULL */
    uint64_t connect_us, first_byte_us, total_us;
};

typedef void (*httpc_fn)(void *arg, const struct httpc_result *r);

struct httpc *httpc_new(struct loop *loop);
/* No request may be in flight (httpc_cancel them first). */
void httpc_free(struct httpc *c);

/* Start a request; done is called once, on the loop, after this returns (also for a URL curl
 * refuses). The op is valid until then. */
struct httpc_op *httpc_request(struct httpc *c, const struct httpc_req *req, httpc_fn done,
                               void *arg);
/* Stop it: done is not called. */
void httpc_cancel(struct httpc_op *op);

/* Requests in flight. */
unsigned httpc_in_flight(const struct httpc *c);

#endif
