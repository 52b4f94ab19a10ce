/*
 * Traces: spans with a trace id (128-bit, hex), a span id (64-bit, hex), a
 * parent, a name, start and end (wall clock, microseconds), a status and
 * attributes. An open span belongs to whoever started it; trace_span_end
 * moves it into a bounded ring of finished spans (the oldest is dropped when
 * the ring is full, and counted). A sink, if set, sees every span as it ends,
 * so an exporter can keep all of them while the ring keeps the recent ones.
 */
#ifndef N3_TRACE_H
#define N3_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct buf;
struct loop;
struct trace;
struct span;

#define TRACE_MAX_ATTRS 32
#define TRACE_MAX_VALUE 1024 /* attribute values are truncated to this many bytes */

typedef void (*trace_sink_fn)(const struct span *span, void *arg);

struct trace *trace_new(struct loop *loop, size_t capacity);
/* Frees the ring; open spans must have been ended (or are leaked by their owner). */
void trace_free(struct trace *tr);

/* parent NULL: the root of a new trace. The parent must still be open. */
struct span *trace_span_start(struct trace *tr, const struct span *parent, const char *name);
/* Later values for the same key replace earlier ones; past TRACE_MAX_ATTRS keys are ignored. */
void span_set_attr(struct span *s, const char *key, const char *value);
void span_set_attrf(struct span *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* status: "ok", "error", or one of the step statuses ("succeeded", "failed", "timed_out",
 * "cancelled"). The span belongs to the trace afterwards. */
void trace_span_end(struct trace *tr, struct span *s, const char *status);

const char *span_name(const struct span *s);
const char *span_trace_id(const struct span *s);  /* 32 hex digits */
const char *span_id(const struct span *s);        /* 16 hex digits */
const char *span_parent_id(const struct span *s); /* "" for a root */
const char *span_status(const struct span *s);    /* "" while open */
uint64_t span_start_us(const struct span *s);
uint64_t span_end_us(const struct span *s);                   /* 0 while open */
const char *span_attr(const struct span *s, const char *key); /* NULL if unset */

void trace_set_sink(struct trace *tr, trace_sink_fn fn, void *arg);
size_t trace_count(const struct trace *tr);     /* finished spans in the ring */
uint64_t trace_dropped(const struct trace *tr); /* finished spans dropped from the ring */
/* i = 0 is the oldest finished span kept. */
const struct span *trace_get(const struct trace *tr, size_t i);

/* One JSON object, no newline: {"trace_id","span_id","parent_id","name","start_us","end_us",
 * "duration_us","status","attributes":{...}}. */
void span_to_json(const struct span *s, struct buf *out);
/* Every finished span in the ring, oldest first, one JSON object per line. */
void trace_write_jsonl(const struct trace *tr, struct buf *out);

#endif
