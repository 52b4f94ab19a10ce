/*
 * The faults file of the sample app: what makes a "bad" version bad. Plain text, one
 * "key value" a line, '#' starts a comment, blank lines ignored; every key is optional and
 * off by default:
 *
 *   error_rate 0.05      fraction of requests to / answered 500 (0 to 1)
 *   latency_ms 200       added to every answer of / (0 to 600000)
 *   jitter_ms 100        and a uniform random 0..jitter_ms more (0 to 600000)
 *   health_fail true     /health answers 503 (true or false)
 *   crash_at_start true  exit with status 70 right after start, before listening
 *   slow_start_ms 3000   listen only this long after start (0 to 3600000)
 *
 * A file with an unknown key, a key twice or a bad value is refused whole, with
 * "FILE:LINE: what is wrong": a half-read faults file would make a bad version look good.
 */
#ifndef N3APP_FAULTS_H
#define N3APP_FAULTS_H

#include <stdbool.h>
#include <stddef.h>

#define FAULTS_FILE_MAX   (64 * 1024)
#define FAULTS_EXIT_CRASH 70 /* EX_SOFTWARE: the status of crash_at_start */

struct faults {
    double error_rate;
    unsigned latency_ms;
    unsigned jitter_ms;
    bool health_fail;
    bool crash_at_start;
    unsigned slow_start_ms;
};

/* Parse text (len bytes, may hold NULs, which are refused) read from the file called name.
 * 0 with *out set; or -1 with "name:LINE: ..." in err and *out untouched. */
int faults_parse(const char *text, size_t len, const char *name, struct faults *out, char *err,
                 size_t errlen);

/* Read and parse path (at most FAULTS_FILE_MAX bytes). A missing file is no faults when
 * !must_exist, an error otherwise. */
int faults_load(const char *path, bool must_exist, struct faults *out, char *err, size_t errlen);

/* "error_rate=0.05 latency_ms=0 ..." for the log, or "none" when nothing is on. */
void faults_describe(const struct faults *f, char *out, size_t n);

#endif
