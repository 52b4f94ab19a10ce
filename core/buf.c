/* Growable byte buffers and bounded tails. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"

void buf_init(struct buf *b)
{
    b->cap = 64;
    b->len = 0;
    b->data = xmalloc(b->cap);
    b->data[0] = '\0';
}

void buf_done(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->data[0] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

static void buf_grow(struct buf *b, size_t more)
{
    size_t need = b->len + more + 1;

    if (need <= b->cap)
        return;
    while (b->cap < need)
        b->cap = b->cap < 4096 ? b->cap * 2 : b->cap + b->cap / 2;
    b->data = xrealloc(b->data, b->cap);
}

void buf_add(struct buf *b, const void *data, size_t len)
{
    buf_grow(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
    buf_add(b, &c, 1);
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        fatal("buf_addf: bad format");
    if ((size_t)n >= b->cap - b->len) {
        buf_grow(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void buf_add_json_string(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    buf_addc(b, '"');
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        switch (c) {
        case '"':
            buf_add(b, "\\\"", 2);
            break;
        case '\\':
            buf_add(b, "\\\\", 2);
            break;
        case '\n':
            buf_add(b, "\\n", 2);
            break;
        case '\r':
            buf_add(b, "\\r", 2);
            break;
        case '\t':
            buf_add(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

                buf_add(b, esc, sizeof esc);
            } else {
                buf_addc(b, (char)c);
            }
        }
    }
    buf_addc(b, '"');
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->data;

    if (len != NULL)
        *len = b->len;
    buf_init(b);
    return p;
}

size_t utf8_decode(const char *str, size_t n, uint32_t *cp_out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len, i;
    uint32_t cp;

    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp_out = s[0];
        return s[0] != 0;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *cp_out = cp;
    return len;
}

char *utf8_sanitize(const char *s, size_t len)
{
    struct buf b;
    size_t i = 0, n;
    uint32_t cp;
    char *out;

    buf_init(&b);
    while (i < len) {
        n = utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            buf_add(&b, "\xef\xbf\xbd", 3);
            i++;
        } else {
            buf_add(&b, s + i, n);
            i += n;
        }
    }
    out = buf_detach(&b, NULL);
    buf_done(&b);
    return out;
}

void tail_init(struct tail *t, size_t cap)
{
    t->cap = cap ? cap : 1;
    t->ring = NULL; /* allocated on first write: most steps print nothing */
    t->start = t->len = 0;
    t->total = 0;
}

void tail_done(struct tail *t)
{
    free(t->ring);
    t->ring = NULL;
}

void tail_add(struct tail *t, const void *data, size_t len)
{
    const char *p = data;
    size_t end, first;

    t->total += len;
    if (len == 0)
        return;
    if (t->ring == NULL)
        t->ring = xmalloc(t->cap);
    if (len >= t->cap) {
        memcpy(t->ring, p + len - t->cap, t->cap);
        t->start = 0;
        t->len = t->cap;
        return;
    }
    end = (t->start + t->len) % t->cap;
    first = t->cap - end < len ? t->cap - end : len;
    memcpy(t->ring + end, p, first);
    memcpy(t->ring, p + first, len - first);
    if (t->len + len > t->cap) {
        t->start = (t->start + t->len + len - t->cap) % t->cap;
        t->len = t->cap;
    } else {
        t->len += len;
    }
}

bool tail_truncated(const struct tail *t)
{
    return t->total > t->len;
}

char *tail_dup(const struct tail *t, size_t *len)
{
    char *s = xmalloc(t->len + 1);
    size_t first = t->cap - t->start < t->len ? t->cap - t->start : t->len;

    if (t->len > 0) {
        memcpy(s, t->ring + t->start, first);
        memcpy(s + first, t->ring, t->len - first);
    }
    s[t->len] = '\0';
    if (len != NULL)
        *len = t->len;
    return s;
}
