/* Growable byte buffers (see strbuf.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void *grow_or_die(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        fputs("n3app: out of memory\n", stderr);
        abort();
    }
    return p;
}

void strbuf_init(struct strbuf *b)
{
    b->cap = 256;
    b->len = 0;
    b->data = grow_or_die(NULL, b->cap);
    b->data[0] = '\0';
}

void strbuf_done(struct strbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void strbuf_reset(struct strbuf *b)
{
    b->len = 0;
    b->data[0] = '\0';
}

static void reserve(struct strbuf *b, size_t more)
{
    size_t need = b->len + more + 1;

    if (need <= b->cap)
        return;
    while (b->cap < need)
        b->cap *= 2;
    b->data = grow_or_die(b->data, b->cap);
}

void strbuf_add(struct strbuf *b, const void *data, size_t len)
{
    reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void strbuf_adds(struct strbuf *b, const char *s)
{
    strbuf_add(b, s, strlen(s));
}

void strbuf_addf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fputs("n3app: bad format\n", stderr);
        abort();
    }
    if ((size_t)n >= b->cap - b->len) {
        reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}
