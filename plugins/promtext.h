/*
 * The Prometheus text exposition format (version 0.0.4), read: for the metric sources that
 * scrape an instance's /metrics. Line by line, bounded, never trusting what comes:
 *
 *   # HELP name text          (a comment, kept for nothing)
 *   # TYPE name counter       (the family's type: told to the handler)
 *   # anything else           (a comment)
 *   name{label="value",...} 1.5e3 [timestamp]
 *
 * Names are [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':'); label values are in double quotes
 * with \\, \" and \n escaped (any other escape is an error); a trailing comma in the braces
 * and blanks between the tokens are taken; values are floats, NaN, +Inf and -Inf; the
 * timestamp, in ms, is an integer. A line that is not that (a bad name, an unclosed quote, a
 * label twice, more than PROMTEXT_LABELS_MAX labels, a NUL byte, a line longer than
 * PROMTEXT_LINE_MAX, a value that is not a number) is skipped and counted, and the first one is
 * described; the lines after it are read as usual. A CR before the newline and a last line
 * without one are taken too.
 */
#ifndef N3_PROMTEXT_H
#define N3_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROMTEXT_LINE_MAX   (64u * 1024u)
#define PROMTEXT_LABELS_MAX 32

struct promtext_label {
    const char *name, *value; /* NUL-terminated, the value unescaped */
};

/* One sample line; valid during the handler's call. */
struct promtext_sample {
    const char *name;
    const struct promtext_label *labels;
    size_t nlabels;
    double value;
    bool has_timestamp;
    int64_t timestamp_ms;
    unsigned line; /* 1-based */
};

struct promtext_handler {
    void (*sample)(void *arg, const struct promtext_sample *s);
    /* "# TYPE family type" (type as written: counter, gauge, histogram, summary, untyped);
     * NULL: not told. */
    void (*type)(void *arg, const char *family, const char *type);
    void *arg;
};

struct promtext_stats {
    unsigned lines, samples, comments, bad;
    unsigned first_bad_line; /* 0: none */
    char first_bad[160];     /* what was wrong with it */
};

/* Read len bytes of text (not NUL-terminated, may hold NULs), telling h of each sample. */
void promtext_parse(const char *text, size_t len, const struct promtext_handler *h,
                    struct promtext_stats *st);

/* The value of label name in s, or NULL. */
const char *promtext_label(const struct promtext_sample *s, const char *name);

#endif
