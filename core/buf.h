/* Growable byte buffers, and bounded tails for output that comes from outside. */
#ifndef N3_BUF_H
#define N3_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable buffer, always NUL-terminated after buf_init. Embedded: init/done. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_done(struct buf *b);
void buf_reset(struct buf *b);
/* Cut to len bytes (when it is longer). */
void buf_truncate(struct buf *b, size_t len);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void buf_add_json_string(struct buf *b, const char *s, size_t len);
/* Hand the data over to the caller (who frees it) and reset the buffer. */
char *buf_detach(struct buf *b, size_t *len);

/* A copy of len bytes of s as valid UTF-8: every invalid sequence (a tail cut in the middle
 * of a character, binary output) becomes U+FFFD, and NUL bytes too. */
char *utf8_sanitize(const char *s, size_t len);
/* The character at s (at most n bytes): its length, with its code point in *cp; 0 when it is
 * not valid UTF-8 (a stray byte, an overlong form, a surrogate, cut short) or a NUL byte. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);

/*
 * A bounded tail: keeps the last `cap` bytes written and counts everything,
 * so a step that prints 10 GB costs `cap` bytes of memory.
 */
struct tail {
    char *ring;
    size_t cap;
    size_t start; /* index of the oldest byte kept */
    size_t len;   /* bytes kept */
    uint64_t total;
};

void tail_init(struct tail *t, size_t cap);
void tail_done(struct tail *t);
void tail_add(struct tail *t, const void *data, size_t len);
/* True when bytes were dropped from the front. */
bool tail_truncated(const struct tail *t);
/* Copy the kept bytes, NUL-terminated, into a new string; *len gets the length. */
char *tail_dup(const struct tail *t, size_t *len);

#endif
