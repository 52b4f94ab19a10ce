/* The faults file: "key value" lines, read whole or refused (see faults.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

enum key { K_ERROR_RATE, K_LATENCY, K_JITTER, K_HEALTH_FAIL, K_CRASH, K_SLOW_START, K_COUNT };

static const char *const key_names[K_COUNT] = {
    [K_ERROR_RATE] = "error_rate",   [K_LATENCY] = "latency_ms",   [K_JITTER] = "jitter_ms",
    [K_HEALTH_FAIL] = "health_fail", [K_CRASH] = "crash_at_start", [K_SLOW_START] = "slow_start_ms",
};

/* Upper bounds of the integer keys, in milliseconds. */
static const unsigned key_max[K_COUNT] = {
    [K_LATENCY] = 600000,
    [K_JITTER] = 600000,
    [K_SLOW_START] = 3600000,
};

static int fail(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(err, errlen, "%s:%u: ", name, line);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A word of the file as it may be shown in a message: at most 40 bytes, anything but
 * printable ASCII as '?' (the file is outside text, the message goes to a log). */
static void shown(const char *s, size_t len, char *out, size_t n)
{
    size_t i, k = 0;

    for (i = 0; i < len && k + 4 < n && i < 40; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (i < len && k + 4 < n) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

/* Edit distance, for "did you mean"; the words are short. */
static size_t distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b), row[32], i, j;

    if (la >= 31 || lb >= 31)
        return 99;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int parse_bool(const char *v, size_t n, bool *out)
{
    if (n == 4 && memcmp(v, "true", 4) == 0)
        *out = true;
    else if (n == 5 && memcmp(v, "false", 5) == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_uint(const char *v, size_t n, unsigned max, unsigned *out)
{
    unsigned long long x = 0;
    size_t i;

    if (n == 0 || n > 10)
        return -1;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (x > max)
        return -1;
    *out = (unsigned)x;
    return 0;
}

/* A fraction 0 to 1 as plain decimals ("0.05", "1", ".5" is not one): strtod alone would take
 * "inf", "0x1p-3" and the locale's decimal point. */
static int parse_fraction(const char *v, size_t n, double *out)
{
    char tmp[32];
    size_t i, dots = 0;
    double x;

    if (n == 0 || n >= sizeof tmp || v[0] == '.' || v[n - 1] == '.')
        return -1;
    for (i = 0; i < n; i++) {
        if (v[i] == '.')
            dots++;
        else if (v[i] < '0' || v[i] > '9')
            return -1;
    }
    if (dots > 1)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    x = strtod(tmp, NULL);
    if (!(x >= 0.0 && x <= 1.0))
        return -1;
    *out = x;
    return 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int faults_parse(const char *text, size_t len, const char *name, struct faults *out, char *err,
                 size_t errlen)
{
    struct faults f = {0};
    unsigned seen[K_COUNT] = {0}, line = 0;
    size_t pos = 0;

    if (memchr(text, '\0', len) != NULL)
        return fail(err, errlen, name, 1, "the file holds a NUL byte: it is not a text file");
    while (pos < len) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *hash;
        size_t n = nl != NULL ? (size_t)(nl - s) : len - pos, kn, vs, vn, i;
        char what[64], val[64];
        int k = -1, bad = 0;

        pos += n + (nl != NULL);
        line++;
        hash = memchr(s, '#', n);
        if (hash != NULL)
            n = (size_t)(hash - s);
        while (n > 0 && is_blank(s[n - 1]))
            n--;
        while (n > 0 && is_blank(*s)) {
            s++;
            n--;
        }
        if (n == 0)
            continue;
        for (kn = 0; kn < n && !is_blank(s[kn]); kn++)
            ;
        for (vs = kn; vs < n && is_blank(s[vs]); vs++)
            ;
        vn = n - vs;
        for (i = 0; i < K_COUNT; i++)
            if (strlen(key_names[i]) == kn && memcmp(s, key_names[i], kn) == 0)
                k = (int)i;
        shown(s, kn, what, sizeof what);
        if (k < 0) {
            size_t best = 3;
            int near = -1;
            for (i = 0; i < K_COUNT; i++) {
                size_t d = distance(s, kn, key_names[i]);
                if (d < best) {
                    best = d;
                    near = (int)i;
                }
            }
            if (near >= 0)
                return fail(err, errlen, name, line, "unknown key \"%s\"; did you mean \"%s\"?",
                            what, key_names[near]);
            return fail(err, errlen, name, line,
                        "unknown key \"%s\"; the keys are error_rate, latency_ms, jitter_ms, "
                        "health_fail, crash_at_start and slow_start_ms",
                        what);
        }
        if (seen[k] != 0)
            return fail(err, errlen, name, line, "%s is given twice (first on line %u)", what,
                        seen[k]);
        seen[k] = line;
        if (vn == 0)
            return fail(err, errlen, name, line, "%s has no value", what);
        switch (k) {
        case K_ERROR_RATE:
            bad = parse_fraction(s + vs, vn, &f.error_rate);
            break;
        case K_HEALTH_FAIL:
            bad = parse_bool(s + vs, vn, &f.health_fail);
            break;
        case K_CRASH:
            bad = parse_bool(s + vs, vn, &f.crash_at_start);
            break;
        case K_LATENCY:
            bad = parse_uint(s + vs, vn, key_max[k], &f.latency_ms);
            break;
        case K_JITTER:
            bad = parse_uint(s + vs, vn, key_max[k], &f.jitter_ms);
            break;
        default:
            bad = parse_uint(s + vs, vn, key_max[k], &f.slow_start_ms);
            break;
        }
        if (bad != 0) {
            shown(s + vs, vn, val, sizeof val);
            if (k == K_ERROR_RATE)
                return fail(err, errlen, name, line,
                            "error_rate \"%s\": give a fraction from 0 to 1, such as 0.05", val);
            if (k == K_HEALTH_FAIL || k == K_CRASH)
                return fail(err, errlen, name, line, "%s \"%s\": give true or false", what, val);
            return fail(err, errlen, name, line, "%s \"%s\": give whole milliseconds from 0 to %u",
                        what, val, key_max[k]);
        }
    }
    *out = f;
    return 0;
}

int faults_load(const char *path, bool must_exist, struct faults *out, char *err, size_t errlen)
{
    static const struct faults none;
    char *text;
    size_t len;
    FILE *fp = fopen(path, "rb");
    int rc;

    if (fp == NULL) {
        if (errno == ENOENT && !must_exist) {
            *out = none;
            return 0;
        }
        snprintf(err, errlen, "%s: cannot read it: %s", path, strerror(errno));
        return -1;
    }
    text = malloc(FAULTS_FILE_MAX + 1);
    if (text == NULL) {
        fclose(fp);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    len = fread(text, 1, FAULTS_FILE_MAX + 1, fp);
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: cannot read it: %s", path, strerror(errno));
        rc = -1;
    } else if (len > FAULTS_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes: not a faults file", path, FAULTS_FILE_MAX);
        rc = -1;
    } else {
        rc = faults_parse(text, len, path, out, err, errlen);
    }
    free(text);
    fclose(fp);
    return rc;
}

void faults_describe(const struct faults *f, char *out, size_t n)
{
    if (f->error_rate == 0.0 && f->latency_ms == 0 && f->jitter_ms == 0 && !f->health_fail &&
        !f->crash_at_start && f->slow_start_ms == 0) {
        snprintf(out, n, "none");
        return;
    }
    snprintf(out, n,
             "error_rate=%g latency_ms=%u jitter_ms=%u health_fail=%s crash_at_start=%s "
             "slow_start_ms=%u",
             f->error_rate, f->latency_ms, f->jitter_ms, f->health_fail ? "true" : "false",
             f->crash_at_start ? "true" : "false", f->slow_start_ms);
}
