/*
 * Growable byte buffers for the sample app (n3app): a response being built, the metrics text.
 * Always NUL-terminated; running out of memory ends the process (a server that cannot allocate
 * a few kilobytes has nothing better to do).
 */
#ifndef N3APP_STRBUF_H
#define N3APP_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *data;
    size_t len, cap;
};

void strbuf_init(struct strbuf *b);
void strbuf_done(struct strbuf *b);
void strbuf_reset(struct strbuf *b);
void strbuf_add(struct strbuf *b, const void *data, size_t len);
void strbuf_adds(struct strbuf *b, const char *s);
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
