/*
 * Quantiles of a stream of non-negative integers (latencies in microseconds) in fixed memory,
 * with a bounded relative error: a log-linear histogram, as HdrHistogram does it. Values
 * below QHIST_EXACT fall in buckets of width 1 (exact); above, each power of two is cut into
 * QHIST_EXACT equal buckets, so a bucket is at most 1/QHIST_EXACT of its smallest value wide.
 * A quantile is the middle of the bucket that holds the value of that rank, clamped to the
 * smallest and largest value seen (both kept exactly): it is within QHIST_REL_ERROR of the
 * true value (relative), or exact below QHIST_EXACT. Values from 2^QHIST_TOP_BITS up (about
 * 12.7 days in microseconds) share the top bucket; the maximum is still exact.
 *
 * Quantiles use the nearest rank: quantile q of n values is the ceil(q * n)-th smallest
 * (the smallest for q = 0), which is always one of the values added, never an interpolation
 * between two. Embedded object (qhist_init, no free); about 18 KiB.
 */
#ifndef N3_QHIST_H
#define N3_QHIST_H

#include <stdint.h>

#define QHIST_SUB_BITS  6
#define QHIST_EXACT     (1u << QHIST_SUB_BITS) /* 64 */
#define QHIST_TOP_BITS  40
#define QHIST_NBUCKETS  (QHIST_EXACT + (QHIST_TOP_BITS - QHIST_SUB_BITS) * QHIST_EXACT)
#define QHIST_REL_ERROR (1.0 / (2.0 * QHIST_EXACT)) /* 1/128, 0.78 % */

struct qhist {
    uint64_t count;
    uint64_t min, max; /* exact; 0 when empty */
    uint64_t buckets[QHIST_NBUCKETS];
};

void qhist_init(struct qhist *h);
void qhist_add(struct qhist *h, uint64_t v);
/* Add every value of src to dst. */
void qhist_merge(struct qhist *dst, const struct qhist *src);
/* The nearest-rank quantile q (0 <= q <= 1; clamped); 0 when the histogram is empty. */
uint64_t qhist_quantile(const struct qhist *h, double q);

#endif
