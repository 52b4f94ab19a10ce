/* Quantiles in fixed memory: a log-linear histogram with a bounded relative error. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "core/qhist.h"

/* The bucket of v: v itself below QHIST_EXACT; above, QHIST_EXACT buckets per power of two,
 * indexed by the power and by the QHIST_SUB_BITS bits below the leading one. */
static unsigned qhist_index(uint64_t v)
{
    unsigned k, sub;

    if (v < QHIST_EXACT)
        return (unsigned)v;
    k = 63u - (unsigned)__builtin_clzll(v); /* v >= 64, so k >= QHIST_SUB_BITS */
    if (k >= QHIST_TOP_BITS)
        return QHIST_NBUCKETS - 1;
    sub = (unsigned)(v >> (k - QHIST_SUB_BITS)) - QHIST_EXACT;
    return QHIST_EXACT + (k - QHIST_SUB_BITS) * QHIST_EXACT + sub;
}

/* The smallest value of bucket i and its width. */
static void qhist_bucket(unsigned i, uint64_t *lo, uint64_t *width)
{
    unsigned k, sub;

    if (i < QHIST_EXACT) {
        *lo = i;
        *width = 1;
        return;
    }
    k = (i - QHIST_EXACT) / QHIST_EXACT + QHIST_SUB_BITS;
    sub = (i - QHIST_EXACT) % QHIST_EXACT;
    *width = (uint64_t)1 << (k - QHIST_SUB_BITS);
    *lo = ((uint64_t)(QHIST_EXACT + sub)) << (k - QHIST_SUB_BITS);
}

void qhist_init(struct qhist *h)
{
    memset(h, 0, sizeof *h);
}

void qhist_add(struct qhist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (h->count == 0 || v > h->max)
        h->max = v;
    h->count++;
    h->buckets[qhist_index(v)]++;
}

void qhist_merge(struct qhist *dst, const struct qhist *src)
{
    unsigned i;

    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    for (i = 0; i < QHIST_NBUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}

uint64_t qhist_quantile(const struct qhist *h, double q)
{
    uint64_t rank, seen = 0, lo, width, mid;
    unsigned i;

    if (h->count == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        return h->min;
    if (q >= 1)
        return h->max;
    rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    for (i = 0; i < QHIST_NBUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            break;
    }
    qhist_bucket(i, &lo, &width);
    /* The middle of the values the bucket can hold (lo .. lo + width - 1): at most half a
     * width, so at most lo / (2 * QHIST_EXACT), from any of them. */
    mid = lo + (width - 1) / 2;
    if (mid < h->min)
        mid = h->min;
    if (mid > h->max)
        mid = h->max;
    return mid;
}
