/* Spans with trace and span ids, a bounded ring of finished spans, JSON-lines export. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/trace.h"
#include "core/xalloc.h"

struct span_attr {
    char *key;
    char *value;
};

struct span {
    struct trace *tr;
    char trace_id[33];
    char span_id[17];
    char parent_id[17];
    char *name;
    char *status; /* NULL while open */
    uint64_t start_us;
    uint64_t end_us;
    struct span_attr attrs[TRACE_MAX_ATTRS];
    size_t nattrs;
};

struct trace {
    struct loop *loop;
    struct span **ring;
    size_t cap;
    size_t start; /* index of the oldest span kept */
    size_t count;
    uint64_t dropped;
    trace_sink_fn sink;
    void *sink_arg;
};

struct trace *trace_new(struct loop *loop, size_t capacity)
{
    struct trace *tr = xcalloc(1, sizeof *tr);

    tr->loop = loop;
    tr->cap = capacity;
    tr->ring = xcalloc(capacity, sizeof *tr->ring);
    return tr;
}

static void span_free(struct span *s)
{
    size_t i;

    for (i = 0; i < s->nattrs; i++) {
        free(s->attrs[i].key);
        free(s->attrs[i].value);
    }
    free(s->name);
    free(s->status);
    free(s);
}

void trace_free(struct trace *tr)
{
    size_t i;

    if (tr == NULL)
        return;
    for (i = 0; i < tr->count; i++)
        span_free(tr->ring[(tr->start + i) % tr->cap]);
    free(tr->ring);
    free(tr);
}

/* nwords random 32-bit words as lowercase hex; never all zeros, which means "no id". */
static void random_hex(struct loop *loop, char *out, size_t nwords)
{
    uint32_t any;
    size_t i;

    do {
        any = 0;
        for (i = 0; i < nwords; i++) {
            uint32_t w = loop_random(loop);

            any |= w;
            snprintf(out + i * 8, 9, "%08" PRIx32, w);
        }
    } while (any == 0);
}

struct span *trace_span_start(struct trace *tr, const struct span *parent, const char *name)
{
    struct span *s;

    if (name == NULL)
        fatal("trace_span_start: no name");
    if (parent != NULL && (parent->tr != tr || parent->status != NULL))
        fatal("trace_span_start %s: parent %s is not an open span of this trace", name,
              parent->name);
    s = xcalloc(1, sizeof *s);
    s->tr = tr;
    if (parent != NULL) {
        memcpy(s->trace_id, parent->trace_id, sizeof s->trace_id);
        memcpy(s->parent_id, parent->span_id, sizeof s->parent_id);
    } else {
        random_hex(tr->loop, s->trace_id, 4);
    }
    random_hex(tr->loop, s->span_id, 2);
    s->name = xstrdup(name);
    s->start_us = loop_wall_us(tr->loop);
    return s;
}

/* At most TRACE_MAX_VALUE bytes, cut before a UTF-8 sequence rather than inside it. */
static char *truncated_dup(const char *value)
{
    size_t len = strnlen(value, TRACE_MAX_VALUE + 1), back = 0;

    if (len > TRACE_MAX_VALUE) {
        len = TRACE_MAX_VALUE;
        /* value[len] is the first byte dropped: if it continues a sequence, drop its start too. */
        while (back < 3 && len > 0 && ((unsigned char)value[len] & 0xc0) == 0x80) {
            len--;
            back++;
        }
    }
    return xstrndup(value, len);
}

void span_set_attr(struct span *s, const char *key, const char *value)
{
    size_t i;

    if (key == NULL)
        fatal("span_set_attr on %s: no key", s->name);
    if (s->status != NULL)
        fatal("span_set_attr on %s: span already ended", s->name);
    if (value == NULL)
        value = "";
    for (i = 0; i < s->nattrs; i++) {
        if (strcmp(s->attrs[i].key, key) == 0) {
            free(s->attrs[i].value);
            s->attrs[i].value = truncated_dup(value);
            return;
        }
    }
    if (s->nattrs == TRACE_MAX_ATTRS)
        return;
    s->attrs[s->nattrs].key = xstrdup(key);
    s->attrs[s->nattrs].value = truncated_dup(value);
    s->nattrs++;
}

void span_set_attrf(struct span *s, const char *key, const char *fmt, ...)
{
    /* One byte past the limit, so truncated_dup can see whether the cut splits a character. */
    char value[TRACE_MAX_VALUE + 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    span_set_attr(s, key, value);
}

void trace_span_end(struct trace *tr, struct span *s, const char *status)
{
    if (status == NULL)
        fatal("trace_span_end %s: no status", s->name);
    if (s->tr != tr || s->status != NULL)
        fatal("trace_span_end %s: not an open span of this trace", s->name);
    s->end_us = loop_wall_us(tr->loop);
    s->status = xstrdup(status);
    if (tr->sink != NULL)
        tr->sink(s, tr->sink_arg);

    if (tr->cap == 0) {
        span_free(s);
        tr->dropped++;
        return;
    }
    if (tr->count == tr->cap) {
        span_free(tr->ring[tr->start]);
        tr->ring[tr->start] = s;
        tr->start = (tr->start + 1) % tr->cap;
        tr->dropped++;
        return;
    }
    tr->ring[(tr->start + tr->count) % tr->cap] = s;
    tr->count++;
}

const char *span_name(const struct span *s)
{
    return s->name;
}

const char *span_trace_id(const struct span *s)
{
    return s->trace_id;
}

const char *span_id(const struct span *s)
{
    return s->span_id;
}

const char *span_parent_id(const struct span *s)
{
    return s->parent_id;
}

const char *span_status(const struct span *s)
{
    return s->status != NULL ? s->status : "";
}

uint64_t span_start_us(const struct span *s)
{
    return s->start_us;
}

uint64_t span_end_us(const struct span *s)
{
    return s->end_us;
}

const char *span_attr(const struct span *s, const char *key)
{
    size_t i;

    for (i = 0; i < s->nattrs; i++) {
        if (strcmp(s->attrs[i].key, key) == 0)
            return s->attrs[i].value;
    }
    return NULL;
}

void trace_set_sink(struct trace *tr, trace_sink_fn fn, void *arg)
{
    tr->sink = fn;
    tr->sink_arg = arg;
}

size_t trace_count(const struct trace *tr)
{
    return tr->count;
}

uint64_t trace_dropped(const struct trace *tr)
{
    return tr->dropped;
}

const struct span *trace_get(const struct trace *tr, size_t i)
{
    if (i >= tr->count)
        return NULL;
    return tr->ring[(tr->start + i) % tr->cap];
}

static void add_json_field(struct buf *out, const char *key, const char *value)
{
    buf_add_json_string(out, key, strlen(key));
    buf_addc(out, ':');
    buf_add_json_string(out, value, strlen(value));
}

void span_to_json(const struct span *s, struct buf *out)
{
    uint64_t duration = s->end_us > s->start_us ? s->end_us - s->start_us : 0;
    size_t i;

    buf_addc(out, '{');
    add_json_field(out, "trace_id", s->trace_id);
    buf_addc(out, ',');
    add_json_field(out, "span_id", s->span_id);
    buf_addc(out, ',');
    add_json_field(out, "parent_id", s->parent_id);
    buf_addc(out, ',');
    add_json_field(out, "name", s->name);
    buf_addf(out, ",\"start_us\":%" PRIu64 ",\"end_us\":%" PRIu64 ",\"duration_us\":%" PRIu64 ",",
             s->start_us, s->end_us, duration);
    add_json_field(out, "status", span_status(s));
    buf_adds(out, ",\"attributes\":{");
    for (i = 0; i < s->nattrs; i++) {
        if (i > 0)
            buf_addc(out, ',');
        add_json_field(out, s->attrs[i].key, s->attrs[i].value);
    }
    buf_adds(out, "}}");
}

void trace_write_jsonl(const struct trace *tr, struct buf *out)
{
    size_t i;

    for (i = 0; i < tr->count; i++) {
        span_to_json(trace_get(tr, i), out);
        buf_addc(out, '\n');
    }
}
