/*
 * n3load: an open-loop HTTP load generator for the tests, the benchmarks and the demo. It
 * starts requests at a steady rate on a fixed schedule (request i is due at i / rate seconds),
 * whether or not the earlier ones have been answered, over a bounded pool of keep-alive
 * connections, and writes down every request as it ends: when it was due, sent, left on a
 * connection and ended, its latency from when it was due, its status or its error, and the
 * version and slot that served it (X-N3-Version, X-N3-Slot). At the end (the duration, or
 * SIGINT/SIGTERM) it prints a summary: per version count, share, errors, p50/p95/p99; overall
 * what was scheduled, sent and answered, errors by kind, the rate achieved, and whether the
 * target rate was kept, with the reason when it was not (the client itself late, the pool of
 * connections all busy, the in-flight limit reached). SIGUSR1, or a line written to the
 * --mark-fifo, writes a mark with the time on the same clock, so that a test can measure
 * how long after its command the traffic moved.
 *
 * Why a libcurl-multi client of our own and not wrk with a Lua script: wrk is closed-loop
 * (each connection sends its next request only when the previous one was answered), so a
 * stalled server slows the request rate down and the stall disappears from the latencies
 * (coordinated omission); its Lua response() callback gets no time and no latency, and
 * cannot tell which request it answers; a refused connection or a timeout reaches no script
 * at all, only an aggregate counter without a time. The tests need each of those, per
 * request, on one clock. (wrk2 has a fixed rate but is not packaged by Debian.)
 *
 * Honest recording, in detail:
 * - Latency is measured from the time a request was due, not from when it was sent or got
 *   a connection: a client that falls behind, or a pool with no free connection, adds to it
 *   instead of hiding it. t_sent (taken up by the client) and t_wire (a connection was free
 *   for it) show where the time went. The requests waiting for a connection wait in
 *   n3load's own queue, first due first served.
 * - A request not answered within --timeout of its due time ends as "timeout" (libcurl's own
 *   timeouts start only once a transfer has a connection, so n3load keeps its own deadline).
 * - A request that cannot be sent is still written down ("limit", "behind"), with its time.
 * - The pool: at most --connections connections, reused while the server keeps them open;
 *   each request says whether it opened a new one.
 * - Memory is bounded: records are streamed out, quantiles come from fixed-size histograms
 *   (core/qhist.h: within 0.78 %), at most --max-inflight requests are in flight.
 *
 * One thread; libcurl's multi interface driven by curl_multi_poll, with a self-pipe for the
 * signals and the mark FIFO as extra descriptors. Exit status: 0 when the run happened
 * (whatever the server answered), 1 when it could not (the output could not be written),
 * 2 for bad arguments.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "tests/load/tally.h"

#define N3LOAD_FLUSH_US   100000 /* the record file is flushed at least this often */
#define N3LOAD_POLL_MAX   1000   /* ms: the longest wait in one poll */
#define N3LOAD_MARK_MAX   256    /* bytes of a mark line read from the FIFO */
#define N3LOAD_RATE_MAX   1e6
#define N3LOAD_CONN_MAX   10000
#define N3LOAD_INFL_MAX   100000
#define N3LOAD_INFL_DFLT  1000
#define N3LOAD_HEADER_MAX 64

struct req {
    struct req *prev, *next; /* in flight, in schedule order; or the free list (next) */
    CURL *easy;
    struct run *run;
    uint64_t seq, sched_us, sent_us, wire_us;
    bool in_curl; /* handed to libcurl (else waiting for a connection of the pool) */
    bool has_version, has_slot;
    char version[TALLY_LABEL_MAX + 1];
    char slot[TALLY_LABEL_MAX + 1];
    char errbuf[CURL_ERROR_SIZE];
};

enum run_state { RUN_SENDING, RUN_DRAINING, RUN_CANCELLING };

struct run {
    struct tally_config config;
    const char *out_path, *fifo_path;
    bool json, out_is_stdout, fifo_made;
    CURLM *multi;
    /* In flight: due and not ended, in schedule order. They go to libcurl in that order, so
     * the ones waiting for a connection are the tail of the list, from `waiting` on. */
    struct req *head, *tail, *waiting, *free;
    unsigned inflight, in_curl;
    struct timespec t0;
    uint64_t next_seq, duration_us, timeout_us;
    enum run_state state;
    const char *stopped_by;
    uint64_t stop_us;
    struct tally *tally;
    FILE *out;
    struct buf line;
    bool dirty, write_failed;
    int write_errno;
    uint64_t last_flush_us;
    int fifo_fd, fifo_wfd;
    char mark[N3LOAD_MARK_MAX];
    size_t mark_len;
};

/* What a signal handler hands to the loop through the self-pipe: the signal and its time. */
struct sigmsg {
    int sig;
    uint64_t mono_ns;
};

static int sig_wfd = -1;
/* Set by the handlers: the loop reads the pipe before it sends anything more, so that no
 * request due after a stop signal is sent. */
static volatile sig_atomic_t sig_pending;

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    int saved = errno;
    struct sigmsg m = {sig, mono_ns()}; /* clock_gettime is async-signal-safe */

    /* One write of a few bytes into a pipe is atomic; a full pipe drops the signal, which
     * only happens after thousands of signals the loop has not read yet. */
    if (write(sig_wfd, &m, sizeof m) < 0) {
        /* nothing to do in a handler */
    }
    sig_pending = 1;
    errno = saved;
}

static uint64_t run_us(const struct run *r, uint64_t ns)
{
    uint64_t t0 = (uint64_t)r->t0.tv_sec * 1000000000u + (uint64_t)r->t0.tv_nsec;

    return ns > t0 ? (ns - t0) / 1000 : 0;
}

static uint64_t run_now(const struct run *r)
{
    return run_us(r, mono_ns());
}

static uint64_t run_sched_us(const struct run *r, uint64_t seq)
{
    return (uint64_t)((double)seq * 1e6 / r->config.rate);
}

/* ---- the record file ---- */

static void run_emit(struct run *r)
{
    if (r->out != NULL && !r->write_failed && r->line.len > 0 &&
        fwrite(r->line.data, 1, r->line.len, r->out) != r->line.len) {
        r->write_failed = true;
        r->write_errno = errno;
    }
    buf_reset(&r->line);
    r->dirty = true;
}

static void run_flush(struct run *r, uint64_t now)
{
    if (r->out != NULL && r->dirty && !r->write_failed && fflush(r->out) != 0) {
        r->write_failed = true;
        r->write_errno = errno;
    }
    r->dirty = false;
    r->last_flush_us = now;
}

static void run_result(struct run *r, struct tally_result *res)
{
    tally_add(r->tally, res);
    if (r->out == NULL)
        return;
    tally_result_json(&r->line, res);
    run_emit(r);
}

/* The first request of the schedule due after t_us. */
static uint64_t run_seq_after(const struct run *r, uint64_t t_us)
{
    uint64_t seq = (uint64_t)((double)t_us * r->config.rate / 1e6);

    while (seq > 0 && run_sched_us(r, seq - 1) > t_us)
        seq--;
    while (run_sched_us(r, seq) <= t_us)
        seq++;
    return seq;
}

/* A mark, with the first request due after it: the requests before it in the schedule were
 * due at or before the mark, whether or not the client had taken them up yet. */
static void run_mark(struct run *r, uint64_t t_us, const char *label, size_t len,
                     const char *source)
{
    tally_mark_json(&r->line, t_us, run_seq_after(r, t_us), label, len, source);
    run_emit(r);
}

/* ---- requests ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return size * n; /* counted by nobody: the body is not what is measured */
}

static bool header_is(const char *line, size_t name_len, const char *name)
{
    return name != NULL && strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct req *q = arg;
    size_t len = size * n, name_len;
    const char *colon;

    /* A new status line starts a new header block (after a 100 Continue): forget the old. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        q->has_version = q->has_slot = false;
        return len;
    }
    colon = memchr(p, ':', len);
    if (colon == NULL)
        return len;
    name_len = (size_t)(colon - p);
    if (header_is(p, name_len, q->run->config.version_header)) {
        tally_label(q->version, colon + 1, len - name_len - 1);
        q->has_version = true;
    } else if (header_is(p, name_len, q->run->config.slot_header)) {
        tally_label(q->slot, colon + 1, len - name_len - 1);
        q->has_slot = true;
    }
    return len;
}

static struct req *req_get(struct run *r)
{
    struct req *q = r->free;

    if (q != NULL) {
        r->free = q->next;
        return q;
    }
    q = xcalloc(1, sizeof *q);
    q->run = r;
    q->easy = curl_easy_init();
    if (q->easy == NULL)
        fatal("n3load: curl_easy_init failed");
    curl_easy_setopt(q->easy, CURLOPT_URL, r->config.url);
    curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(q->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "n3load/" PACKAGE_VERSION);
    curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(q->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(q->easy, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_ERRORBUFFER, q->errbuf);
    return q;
}

static void req_put(struct run *r, struct req *q)
{
    q->next = r->free;
    r->free = q;
}

static void req_unlink(struct run *r, struct req *q)
{
    if (q->in_curl) {
        curl_multi_remove_handle(r->multi, q->easy);
        q->in_curl = false;
        r->in_curl--;
    }
    if (r->waiting == q)
        r->waiting = q->next;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    q->prev = q->next = NULL;
    r->inflight--;
}

static enum tally_kind kind_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return TALLY_HTTP;
    case CURLE_COULDNT_CONNECT:
        return TALLY_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return TALLY_TIMEOUT;
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return TALLY_RESET;
    case CURLE_SEND_ERROR:
        return TALLY_SEND;
    case CURLE_GOT_NOTHING:
        return TALLY_EMPTY;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return TALLY_PROTOCOL;
    case CURLE_COULDNT_RESOLVE_HOST:
        return TALLY_RESOLVE;
    default:
        return TALLY_OTHER;
    }
}

static void req_result(const struct req *q, struct tally_result *res, uint64_t now)
{
    memset(res, 0, sizeof *res);
    res->seq = q->seq;
    res->sched_us = q->sched_us;
    res->sent_us = q->sent_us;
    res->sent = true;
    res->wire_us = q->wire_us;
    res->wire_known = q->in_curl;
    res->done_us = now;
    res->version = q->has_version ? q->version : NULL;
    res->slot = q->has_slot ? q->slot : NULL;
}

/* A transfer libcurl finished, and what it got. */
static void req_done(struct run *r, struct req *q, CURLcode rc, uint64_t now)
{
    struct tally_result res;
    long status = 0, conns = 0;

    req_result(q, &res, now);
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(q->easy, CURLINFO_NUM_CONNECTS, &conns);
    res.status = status;
    res.new_conn = conns > 0;
    res.kind = kind_of(rc);
    if (res.kind != TALLY_HTTP)
        res.detail = q->errbuf[0] != '\0' ? q->errbuf : curl_easy_strerror(rc);
    req_unlink(r, q);
    run_result(r, &res);
    req_put(r, q);
}

/* A request ended by n3load itself: its deadline passed, or the run was cancelled. */
static void req_abandon(struct run *r, struct req *q, enum tally_kind kind, uint64_t now)
{
    struct tally_result res;
    char detail[128];

    req_result(q, &res, now);
    res.kind = kind;
    if (kind == TALLY_TIMEOUT)
        snprintf(detail, sizeof detail, "no complete answer within %u ms of its scheduled time%s",
                 r->config.timeout_ms, q->in_curl ? "" : " (still waiting for a connection)");
    else
        snprintf(detail, sizeof detail, "still in flight when the run was stopped");
    res.detail = detail;
    req_unlink(r, q);
    run_result(r, &res);
    req_put(r, q);
}

/* A request that is due and will not be sent. */
static void req_not_sent(struct run *r, uint64_t seq, uint64_t sched, enum tally_kind kind,
                         uint64_t now)
{
    struct tally_result res;
    char detail[160];

    memset(&res, 0, sizeof res);
    res.seq = seq;
    res.sched_us = sched;
    res.done_us = now;
    res.kind = kind;
    if (kind == TALLY_LIMIT)
        snprintf(detail, sizeof detail, "not sent: %u requests in flight already (--max-inflight)",
                 r->config.max_inflight);
    else
        snprintf(detail, sizeof detail,
                 "not sent: the client was %.1f ms behind its schedule, past the timeout",
                 (double)(now - sched) / 1000);
    res.detail = detail;
    run_result(r, &res);
}

/* Hand the waiting requests to libcurl, oldest first, while a connection of the pool is free.
 * n3load keeps the queue itself rather than letting libcurl hold transfers back: libcurl
 * serves its queue in no particular order and (7.88) reports no time for the wait. */
static void run_dispatch(struct run *r)
{
    while (r->waiting != NULL && r->in_curl < r->config.connections) {
        struct req *q = r->waiting;
        CURLMcode mc;

        q->wire_us = run_now(r);
        mc = curl_multi_add_handle(r->multi, q->easy);
        if (mc != CURLM_OK)
            fatal("n3load: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        q->in_curl = true;
        r->in_curl++;
        r->waiting = q->next;
    }
}

/* A request is due: into the queue for a connection. */
static void req_start(struct run *r, uint64_t seq, uint64_t sched, uint64_t now)
{
    struct req *q = req_get(r);

    q->seq = seq;
    q->sched_us = sched;
    q->sent_us = now;
    q->has_version = q->has_slot = false;
    q->errbuf[0] = '\0';
    q->prev = r->tail;
    q->next = NULL;
    if (r->tail != NULL)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    if (r->waiting == NULL)
        r->waiting = q;
    r->inflight++;
    tally_sent(r->tally, sched, now);
    run_dispatch(r);
}

/* Start every request that is due by now, in order. */
static void run_send_due(struct run *r, uint64_t now)
{
    /* now was read before sig_pending: what is due by then was due before any signal that
     * has not been read yet. */
    while (r->state == RUN_SENDING && !sig_pending) {
        uint64_t sched = run_sched_us(r, r->next_seq);

        if (r->duration_us > 0 && sched >= r->duration_us) {
            r->state = RUN_DRAINING;
            r->stopped_by = "duration";
            r->stop_us = r->duration_us;
            break;
        }
        if (sched > now)
            break;
        tally_scheduled(r->tally);
        if (now - sched >= r->timeout_us)
            req_not_sent(r, r->next_seq, sched, TALLY_BEHIND, now);
        else if (r->inflight >= r->config.max_inflight)
            req_not_sent(r, r->next_seq, sched, TALLY_LIMIT, now);
        else
            req_start(r, r->next_seq, sched, now);
        r->next_seq++;
    }
}

static void run_collect(struct run *r)
{
    CURLMsg *msg;
    int left;
    uint64_t now = run_now(r);

    while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
        struct req *q = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        req_done(r, q, msg->data.result, now);
    }
    run_dispatch(r);
    /* The list is in schedule order, so the overdue requests are at its head. */
    while (r->head != NULL && now >= r->head->sched_us + r->timeout_us)
        req_abandon(r, r->head, TALLY_TIMEOUT, now);
    if (r->state == RUN_CANCELLING)
        while (r->head != NULL)
            req_abandon(r, r->head, TALLY_CANCELLED, now);
    run_dispatch(r);
}

/* ---- signals and marks ---- */

static void run_stop(struct run *r, int sig, uint64_t t_us)
{
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";

    if (r->state == RUN_SENDING) {
        r->state = RUN_DRAINING;
        r->stopped_by = name;
        r->stop_us = t_us;
        run_mark(r, t_us, name, strlen(name), "signal");
    } else {
        r->state = RUN_CANCELLING;
    }
}

static void run_read_signals(struct run *r, int fd)
{
    struct sigmsg m;

    sig_pending = 0;
    while (read(fd, &m, sizeof m) == (ssize_t)sizeof m) {
        uint64_t t = run_us(r, m.mono_ns);

        if (m.sig == SIGUSR1)
            run_mark(r, t, "SIGUSR1", 7, "signal");
        else
            run_stop(r, m.sig, t);
    }
}

/* Lines from the FIFO, each a mark labelled with the line (its first TALLY_LABEL_MAX bytes
 * are kept; the buffer only needs to hold those). */
static void run_read_fifo(struct run *r)
{
    char chunk[512];
    ssize_t n;

    while ((n = read(r->fifo_fd, chunk, sizeof chunk)) > 0) {
        uint64_t now = run_now(r);
        ssize_t i;

        for (i = 0; i < n; i++) {
            if (chunk[i] == '\n') {
                run_mark(r, now, r->mark, r->mark_len, "fifo");
                r->mark_len = 0;
            } else if (r->mark_len < sizeof r->mark) {
                r->mark[r->mark_len++] = chunk[i];
            }
        }
    }
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
    fputs("usage: n3load --url URL --rate R [--duration S] [--connections N] [--timeout MS]\n"
          "              [--max-inflight N] [--header-version NAME] [--header-slot NAME]\n"
          "              [--out FILE.jsonl] [--mark-fifo PATH] [--json]\n"
          "Open-loop HTTP load: R requests a second on a fixed schedule, for S seconds (or\n"
          "until SIGINT/SIGTERM), over at most N keep-alive connections (default 16); each\n"
          "request has MS ms from its scheduled time (default 2000). --out writes one JSON\n"
          "line per request (and marks, and the summary; '-' for stdout); SIGUSR1 or a line\n"
          "written to the --mark-fifo writes a mark. The summary goes to stdout (text, or\n"
          "JSON with --json). See docs/PERFORMANCE.md, \"The load generator\".\n",
          f);
}

static _Noreturn void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void bad(const char *fmt, ...)
{
    va_list ap;

    fputs("n3load: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(n3load --help for the options)\n", stderr);
    exit(2);
}

static double arg_number(const char *opt, const char *s, double lo, double hi, const char *what)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
        bad("%s: '%s' is not a number (%s)", opt, s, what);
    if (v < lo || v > hi)
        bad("%s: %s is out of range: %s, from %g to %g", opt, s, what, lo, hi);
    return v;
}

static unsigned arg_count(const char *opt, const char *s, unsigned lo, unsigned hi,
                          const char *what)
{
    double v = arg_number(opt, s, lo, hi, what);

    if (v != floor(v))
        bad("%s: '%s' is not a whole number (%s)", opt, s, what);
    return (unsigned)v;
}

/* A header name: an HTTP token (RFC 9110 section 5.6.2). */
static const char *arg_header(const char *opt, const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > N3LOAD_HEADER_MAX)
        bad("%s: a header name of 1 to %d characters, not '%s'", opt, N3LOAD_HEADER_MAX, s);
    for (i = 0; i < n; i++)
        if (!strchr("!#$%&'*+-.^_`|~", s[i]) && !(s[i] >= '0' && s[i] <= '9') &&
            !(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z'))
            bad("%s: '%s' is not a header name (letters, digits and !#$%%&'*+-.^_`|~)", opt, s);
    return s;
}

static void arg_url(const char *s)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    CURLUcode uc;

    if (u == NULL)
        fatal("n3load: curl_url failed");
    uc = curl_url_set(u, CURLUPART_URL, s, 0);
    if (uc != CURLUE_OK)
        bad("--url: '%s' is not a URL: %s", s, curl_url_strerror(uc));
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        bad("--url: '%s' is not an http:// or https:// URL", s);
    curl_free(scheme);
    curl_url_cleanup(u);
}

static void parse_args(struct run *r, int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"connections", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"max-inflight", required_argument, NULL, 'm'},
        {"header-version", required_argument, NULL, 'V'},
        {"header-slot", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'o'},
        {"mark-fifo", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_rate = false, have_inflight = false;
    int c;

    r->config.connections = 16;
    r->config.timeout_ms = 2000;
    r->config.version_header = "X-N3-Version";
    r->config.slot_header = "X-N3-Slot";
    opterr = 0;
    /* The leading ':' makes a missing value ':' rather than '?'. */
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            arg_url(optarg);
            r->config.url = optarg;
            break;
        case 'r':
            r->config.rate =
                arg_number("--rate", optarg, 1e-3, N3LOAD_RATE_MAX, "requests a second");
            have_rate = true;
            break;
        case 'd':
            r->config.duration_s = arg_number("--duration", optarg, 1e-3, 7 * 86400.0, "seconds");
            break;
        case 'c':
            r->config.connections =
                arg_count("--connections", optarg, 1, N3LOAD_CONN_MAX, "connections at most");
            break;
        case 't':
            r->config.timeout_ms = arg_count("--timeout", optarg, 1, 3600000,
                                             "milliseconds from a request's scheduled time");
            break;
        case 'm':
            r->config.max_inflight = arg_count("--max-inflight", optarg, 1, N3LOAD_INFL_MAX,
                                               "requests in flight at most");
            have_inflight = true;
            break;
        case 'V':
            r->config.version_header = arg_header("--header-version", optarg);
            break;
        case 'S':
            r->config.slot_header = arg_header("--header-slot", optarg);
            break;
        case 'o':
            if (*optarg == '\0')
                bad("--out: an empty file name");
            r->out_path = optarg;
            break;
        case 'f':
            if (*optarg == '\0')
                bad("--mark-fifo: an empty path");
            r->fifo_path = optarg;
            break;
        case 'j':
            r->json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            bad("%s needs a value", argv[optind - 1]);
        default:
            bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bad("unexpected argument '%s'", argv[optind]);
    if (r->config.url == NULL)
        bad("--url is required (e.g. --url http://127.0.0.1:8080/)");
    if (!have_rate)
        bad("--rate is required (requests a second, e.g. --rate 200)");
    if (!have_inflight)
        r->config.max_inflight =
            r->config.connections > N3LOAD_INFL_DFLT ? r->config.connections : N3LOAD_INFL_DFLT;
    if (r->config.max_inflight < r->config.connections)
        bad("--max-inflight %u is below --connections %u: a connection could never be used",
            r->config.max_inflight, r->config.connections);
    r->duration_us = (uint64_t)llround(r->config.duration_s * 1e6);
    r->timeout_us = (uint64_t)r->config.timeout_ms * 1000;
}

/* ---- setting up ---- */

/* The FIFO's path: a FIFO, or nothing yet (n3load makes it). Checked before anything is
 * written, so that a bad path leaves no record file behind. */
static void check_fifo(const struct run *r)
{
    struct stat st;

    if (r->fifo_path == NULL)
        return;
    if (lstat(r->fifo_path, &st) == 0 && !S_ISFIFO(st.st_mode))
        bad("--mark-fifo: %s exists and is not a FIFO (give a new path, n3load makes it)",
            r->fifo_path);
}

static void open_out(struct run *r)
{
    if (r->out_path == NULL)
        return;
    if (strcmp(r->out_path, "-") == 0) {
        r->out = stdout;
        r->out_is_stdout = true;
        return;
    }
    r->out = fopen(r->out_path, "w");
    if (r->out == NULL)
        bad("--out: cannot write %s: %s", r->out_path, strerror(errno));
    setvbuf(r->out, NULL, _IOFBF, 1 << 16);
}

/* The FIFO cannot be made or opened: nothing is left behind (the record file is empty yet). */
static _Noreturn void fifo_bad(struct run *r, const char *what)
{
    int saved = errno;

    if (r->out != NULL && !r->out_is_stdout) {
        fclose(r->out);
        unlink(r->out_path);
    }
    if (r->fifo_made)
        unlink(r->fifo_path);
    bad("--mark-fifo: %s %s: %s", what, r->fifo_path, strerror(saved));
}

/* The FIFO is made when missing (and removed at the end), and opened for writing too, so
 * that it never reads as ended when the writers of the marks come and go. */
static void open_fifo(struct run *r)
{
    struct stat st;

    r->fifo_fd = r->fifo_wfd = -1;
    if (r->fifo_path == NULL)
        return;
    if (lstat(r->fifo_path, &st) != 0) {
        if (errno != ENOENT || mkfifo(r->fifo_path, 0600) != 0)
            fifo_bad(r, "cannot make the FIFO");
        r->fifo_made = true;
    }
    r->fifo_fd = open(r->fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (r->fifo_fd >= 0)
        r->fifo_wfd = open(r->fifo_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (r->fifo_fd < 0 || r->fifo_wfd < 0)
        fifo_bad(r, "cannot open");
}

static void set_signals(int pipefd[2])
{
    struct sigaction sa;
    int i;

    if (pipe(pipefd) != 0)
        fatal("n3load: pipe: %s", strerror(errno));
    for (i = 0; i < 2; i++) {
        fcntl(pipefd[i], F_SETFL, fcntl(pipefd[i], F_GETFL) | O_NONBLOCK);
        fcntl(pipefd[i], F_SETFD, FD_CLOEXEC);
    }
    sig_wfd = pipefd[1];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* How long to wait: until the next request is due, the oldest in flight is overdue, or the
 * records are to be flushed; libcurl's own timers shorten it further inside the poll. */
static int run_wait_ms(const struct run *r, uint64_t now)
{
    uint64_t until = now + (uint64_t)N3LOAD_POLL_MAX * 1000;

    if (r->state == RUN_SENDING && run_sched_us(r, r->next_seq) < until)
        until = run_sched_us(r, r->next_seq);
    if (r->head != NULL && r->head->sched_us + r->timeout_us < until)
        until = r->head->sched_us + r->timeout_us;
    if (r->dirty && r->last_flush_us + N3LOAD_FLUSH_US < until)
        until = r->last_flush_us + N3LOAD_FLUSH_US;
    if (until <= now)
        return 0;
    return (int)((until - now + 999) / 1000);
}

static void run_loop(struct run *r, int sigfd)
{
    struct curl_waitfd extra[2];
    unsigned nextra = 0;
    int running;

    extra[nextra++] = (struct curl_waitfd){.fd = sigfd, .events = CURL_WAIT_POLLIN};
    if (r->fifo_fd >= 0)
        extra[nextra++] = (struct curl_waitfd){.fd = r->fifo_fd, .events = CURL_WAIT_POLLIN};
    for (;;) {
        uint64_t now = run_now(r);
        CURLMcode mc;

        if (sig_pending)
            run_read_signals(r, sigfd);
        run_send_due(r, now);
        mc = curl_multi_perform(r->multi, &running);
        if (mc != CURLM_OK)
            fatal("n3load: curl_multi_perform: %s", curl_multi_strerror(mc));
        run_collect(r);
        now = run_now(r);
        if (r->dirty && now >= r->last_flush_us + N3LOAD_FLUSH_US)
            run_flush(r, now);
        if (r->state != RUN_SENDING && r->inflight == 0)
            break;
        extra[0].revents = 0;
        extra[nextra - 1].revents = 0;
        mc = curl_multi_poll(r->multi, extra, nextra, run_wait_ms(r, now), NULL);
        if (mc != CURLM_OK)
            fatal("n3load: curl_multi_poll: %s", curl_multi_strerror(mc));
        if (sig_pending)
            run_read_signals(r, sigfd);
        if (r->fifo_fd >= 0 && extra[1].revents != 0)
            run_read_fifo(r);
    }
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void run_free(struct run *r)
{
    struct req *q;

    while ((q = r->free) != NULL) {
        r->free = q->next;
        curl_easy_cleanup(q->easy);
        free(q);
    }
    curl_multi_cleanup(r->multi);
    tally_free(r->tally);
    buf_done(&r->line);
}

int main(int argc, char **argv)
{
    struct run r;
    struct tally_end end;
    struct rusage ru;
    struct timespec wall;
    struct buf summary;
    int sigpipe[2], rc = 0;

    memset(&r, 0, sizeof r);
    buf_init(&r.line);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        fatal("n3load: curl_global_init failed");
    parse_args(&r, argc, argv);
    check_fifo(&r);
    open_out(&r);
    open_fifo(&r);
    set_signals(sigpipe);

    r.multi = curl_multi_init();
    if (r.multi == NULL)
        fatal("n3load: curl_multi_init failed");
    curl_multi_setopt(r.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)r.config.connections);
    curl_multi_setopt(r.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)r.config.connections);
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, (long)r.config.connections);
    curl_multi_setopt(r.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    r.tally = tally_new(&r.config);

    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_MONOTONIC, &r.t0);
    tally_start_json(&r.line, &r.config,
                     (uint64_t)wall.tv_sec * 1000000u + (uint64_t)wall.tv_nsec / 1000);
    run_emit(&r);
    run_flush(&r, 0);
    r.state = RUN_SENDING;
    run_loop(&r, sigpipe[0]);

    getrusage(RUSAGE_SELF, &ru);
    end = (struct tally_end){.stop_us = r.stop_us,
                             .stopped_by = r.stopped_by,
                             .cpu_user_s = tv_s(ru.ru_utime),
                             .cpu_sys_s = tv_s(ru.ru_stime)};
    tally_summary_json(r.tally, &end, &r.line);
    run_emit(&r);
    run_flush(&r, run_now(&r));
    if (r.out != NULL && !r.out_is_stdout && fclose(r.out) != 0 && !r.write_failed) {
        r.write_failed = true;
        r.write_errno = errno;
    }
    /* With the records on stdout, the summary is their last line already; the one for a
     * person goes to stderr. */
    buf_init(&summary);
    if (r.json && !r.out_is_stdout)
        tally_summary_json(r.tally, &end, &summary);
    else if (!r.json)
        tally_summary_text(r.tally, &end, &summary);
    fputs(summary.data, r.out_is_stdout ? stderr : stdout);
    buf_done(&summary);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "n3load: cannot write the summary: %s\n", strerror(errno));
        rc = 1;
    }
    if (r.write_failed) {
        fprintf(stderr, "n3load: cannot write %s: %s; the records there are incomplete\n",
                r.out_is_stdout ? "the records to stdout" : r.out_path, strerror(r.write_errno));
        rc = 1;
    }
    if (r.fifo_fd >= 0) {
        close(r.fifo_fd);
        close(r.fifo_wfd);
    }
    if (r.fifo_made)
        unlink(r.fifo_path);
    run_free(&r);
    curl_global_cleanup();
    return rc;
}
