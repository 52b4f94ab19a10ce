/*
 * What the load generator (n3load) counted, and how it writes it down: one JSON line per
 * request (its schedule, send, wire and completion times, status or error, version, slot),
 * a line per mark, and the summary (per version: count, share, errors, p50/p95/p99; overall:
 * scheduled, sent, answered, errors by kind, the rate achieved and whether it was kept, and
 * why not). Memory is fixed: counts and one histogram (core/qhist.h, relative error at most
 * QHIST_REL_ERROR) per version, for at most TALLY_VERSIONS_MAX versions; later ones are
 * counted together as one row whose version is "(other)".
 *
 * Times are microseconds since the run started, on the monotonic clock; the start record
 * gives the wall-clock time of that start. docs/PERFORMANCE.md ("The load generator")
 * describes every field.
 */
#ifndef N3_TALLY_H
#define N3_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct tally;

#define TALLY_LABEL_MAX    64    /* bytes kept of a version or slot header's value */
#define TALLY_VERSIONS_MAX 32    /* versions counted apart in the summary */
#define TALLY_LATE_US      10000 /* a request started later than this after its time is late */
#define TALLY_LATE_SHARE   0.01  /* the rate is kept while at most this share is late */

/* How a request ended. */
enum tally_kind {
    TALLY_HTTP,      /* an HTTP response, whatever its status */
    TALLY_CONNECT,   /* the connection was refused or could not be made */
    TALLY_TIMEOUT,   /* no complete answer within the timeout, counted from its scheduled time */
    TALLY_RESET,     /* the connection failed while receiving (reset, closed mid-answer) */
    TALLY_SEND,      /* the request could not be written */
    TALLY_EMPTY,     /* the server closed the connection without answering */
    TALLY_PROTOCOL,  /* an answer that is not HTTP */
    TALLY_RESOLVE,   /* the host name did not resolve */
    TALLY_OTHER,     /* any other transport failure (its detail says which) */
    TALLY_CANCELLED, /* still in flight when the run was stopped by a second signal */
    TALLY_LIMIT,     /* not sent: --max-inflight requests were waiting for an answer */
    TALLY_BEHIND,    /* not sent: the client itself was behind by more than the timeout */
    TALLY_NKINDS
};

/* "http", "connect", "timeout", ... as in the records and the summary. */
const char *tally_kind_name(enum tally_kind k);

/* One request, as it ended. */
struct tally_result {
    uint64_t seq;      /* its place in the schedule, from 0 */
    uint64_t sched_us; /* when it was due: seq / rate */
    uint64_t sent_us;  /* when the client took it up (sent_us - sched_us: the client's delay) */
    uint64_t wire_us;  /* when a connection of the pool was free for it and it went to libcurl
                        * (wire_us - sent_us: the wait for a connection) */
    uint64_t done_us;  /* when it ended */
    bool sent, wire_known;
    bool new_conn; /* it opened a new connection (rather than reusing one of the pool) */
    enum tally_kind kind;
    long status;         /* the HTTP status, 0 when none was received */
    const char *version; /* the version header's value (printable ASCII), or NULL */
    const char *slot;    /* the slot header's value, or NULL */
    const char *detail;  /* what failed, for an error; or NULL */
};

/* What the run was asked to do, for the start record and the summary. */
struct tally_config {
    const char *url;
    double rate;       /* requests a second */
    double duration_s; /* 0: until stopped */
    unsigned connections, timeout_ms, max_inflight;
    const char *version_header, *slot_header;
};

/* How the run ended, for the summary. */
struct tally_end {
    uint64_t stop_us;       /* when sending stopped: the duration, or the stopping signal */
    const char *stopped_by; /* "duration", "SIGINT", "SIGTERM" */
    double cpu_user_s, cpu_sys_s;
};

struct tally *tally_new(const struct tally_config *c);
void tally_free(struct tally *t);

/* A request came due (whether it is sent or not). */
void tally_scheduled(struct tally *t);
/* A request was handed to libcurl at sent_us, due at sched_us. */
void tally_sent(struct tally *t, uint64_t sched_us, uint64_t sent_us);
/* A request ended (or was not sent: kind TALLY_LIMIT or TALLY_BEHIND). */
void tally_add(struct tally *t, const struct tally_result *r);

/* The JSON lines of the per-request file, each ending in a newline. */
void tally_start_json(struct buf *out, const struct tally_config *c, uint64_t wall_us);
void tally_result_json(struct buf *out, const struct tally_result *r);
/* A mark: label (len bytes, from outside: shown as printable ASCII) at t_us, when next_seq
 * was the next request of the schedule. */
void tally_mark_json(struct buf *out, uint64_t t_us, uint64_t next_seq, const char *label,
                     size_t len, const char *source);
/* The summary as one JSON line (type "summary"), and as text for a person. */
void tally_summary_json(const struct tally *t, const struct tally_end *e, struct buf *out);
void tally_summary_text(const struct tally *t, const struct tally_end *e, struct buf *out);

/* Copy an outside header value into dst (TALLY_LABEL_MAX + 1 bytes): surrounding blanks
 * dropped, bytes other than printable ASCII replaced by '?', cut at TALLY_LABEL_MAX. */
void tally_label(char *dst, const char *src, size_t len);

#endif
