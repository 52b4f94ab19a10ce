/* Unit tests for core/qhist: nearest-rank quantiles, exact below 64, within 1/128 above. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/qhist.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The exact nearest-rank quantile of sorted values. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank;

    if (q <= 0)
        return sorted[0];
    rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* A deterministic generator (xorshift64), so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Every quantile of the histogram of values[] is within the promised error of the exact one. */
static void check_against_exact(uint64_t *values, size_t n)
{
    struct qhist *h = xmalloc(sizeof *h);
    size_t i, j;

    qhist_init(h);
    for (i = 0; i < n; i++)
        qhist_add(h, values[i]);
    qsort(values, n, sizeof *values, cmp_u64);
    ck_assert_uint_eq(h->count, n);
    ck_assert_uint_eq(h->min, values[0]);
    ck_assert_uint_eq(h->max, values[n - 1]);
    for (j = 0; j < sizeof qs / sizeof qs[0]; j++) {
        uint64_t want = exact_quantile(values, n, qs[j]);
        uint64_t got = qhist_quantile(h, qs[j]);
        double err = fabs((double)got - (double)want);

        if (want < QHIST_EXACT)
            ck_assert_msg(got == want, "q %g: got %llu, want exactly %llu", qs[j],
                          (unsigned long long)got, (unsigned long long)want);
        else
            ck_assert_msg(err <= (double)want * QHIST_REL_ERROR,
                          "q %g: got %llu, want %llu within %g", qs[j], (unsigned long long)got,
                          (unsigned long long)want, (double)want * QHIST_REL_ERROR);
    }
    free(h);
}

START_TEST(test_empty)
{
    struct qhist h;

    qhist_init(&h);
    ck_assert_uint_eq(h.count, 0);
    ck_assert_uint_eq(qhist_quantile(&h, 0.5), 0);
    ck_assert_uint_eq(qhist_quantile(&h, 0), 0);
    ck_assert_uint_eq(qhist_quantile(&h, 1), 0);
}
END_TEST

START_TEST(test_exact_below_64)
{
    uint64_t v[64];
    unsigned i;

    for (i = 0; i < 64; i++)
        v[i] = 63 - i;
    check_against_exact(v, 64);
}
END_TEST

START_TEST(test_one_value)
{
    struct qhist h;
    unsigned j;

    qhist_init(&h);
    qhist_add(&h, 123457);
    /* One value: every quantile is that value, exactly (clamped to min and max). */
    for (j = 0; j < sizeof qs / sizeof qs[0]; j++)
        ck_assert_uint_eq(qhist_quantile(&h, qs[j]), 123457);
}
END_TEST

START_TEST(test_relative_error_random)
{
    enum { N = 20000 };
    uint64_t *v = xmalloc(N * sizeof *v), s = 0x9e3779b97f4a7c15u;
    size_t i;

    /* Log-uniform over 1 us .. 2^36 us (19 hours), where each octave has its 64 buckets. */
    for (i = 0; i < N; i++)
        v[i] = (next_random(&s) >> (28 + next_random(&s) % 36)) + 1;
    check_against_exact(v, N);
    free(v);
}
END_TEST

START_TEST(test_relative_error_every_bucket_edge)
{
    /* The values that are hardest: both ends of each bucket, over the whole range. */
    enum { N = 2 * 34 * 64 };
    uint64_t *v = xmalloc(N * sizeof *v);
    size_t n = 0;
    unsigned k, sub;

    for (k = QHIST_SUB_BITS; k < QHIST_TOP_BITS; k++)
        for (sub = 0; sub < QHIST_EXACT; sub++) {
            uint64_t lo = ((uint64_t)(QHIST_EXACT + sub)) << (k - QHIST_SUB_BITS);
            uint64_t width = (uint64_t)1 << (k - QHIST_SUB_BITS);

            v[n++] = lo;
            v[n++] = lo + width - 1;
        }
    ck_assert_uint_eq(n, N);
    check_against_exact(v, n);
    free(v);
}
END_TEST

START_TEST(test_two_modes)
{
    struct qhist h;

    /* 90 fast answers and 10 slow ones: the median is fast, p95 and p99 slow. */
    qhist_init(&h);
    for (int i = 0; i < 90; i++)
        qhist_add(&h, 1000);
    for (int i = 0; i < 10; i++)
        qhist_add(&h, 1000000);
    ck_assert_uint_le(llabs((long long)qhist_quantile(&h, 0.5) - 1000), 1000 / 128);
    ck_assert_uint_le(llabs((long long)qhist_quantile(&h, 0.9) - 1000), 1000 / 128);
    ck_assert_uint_le(llabs((long long)qhist_quantile(&h, 0.91) - 1000000), 1000000 / 128);
    ck_assert_uint_le(llabs((long long)qhist_quantile(&h, 0.99) - 1000000), 1000000 / 128);
    ck_assert_uint_eq(qhist_quantile(&h, 1), 1000000);
}
END_TEST

START_TEST(test_huge_values)
{
    struct qhist h;
    uint64_t big = (uint64_t)1 << 50;

    /* Past the top of the range: they share the top bucket, and the maximum stays exact. */
    qhist_init(&h);
    qhist_add(&h, big);
    qhist_add(&h, UINT64_MAX);
    ck_assert_uint_eq(h.max, UINT64_MAX);
    ck_assert_uint_eq(qhist_quantile(&h, 1), UINT64_MAX);
    ck_assert_uint_eq(qhist_quantile(&h, 0), big);
    ck_assert_uint_ge(qhist_quantile(&h, 0.5), big);
}
END_TEST

START_TEST(test_q_out_of_range)
{
    struct qhist h;

    qhist_init(&h);
    qhist_add(&h, 5);
    qhist_add(&h, 500);
    ck_assert_uint_eq(qhist_quantile(&h, -1), 5);
    ck_assert_uint_eq(qhist_quantile(&h, NAN), 5);
    ck_assert_uint_eq(qhist_quantile(&h, 2), 500);
}
END_TEST

START_TEST(test_merge)
{
    struct qhist *a = xmalloc(sizeof *a), *b = xmalloc(sizeof *b), *all = xmalloc(sizeof *all);
    uint64_t s = 42;
    unsigned i, j;

    qhist_init(a);
    qhist_init(b);
    qhist_init(all);
    for (i = 0; i < 5000; i++) {
        uint64_t v = next_random(&s) % 5000000;

        qhist_add(i % 3 ? a : b, v);
        qhist_add(all, v);
    }
    qhist_merge(a, b);
    ck_assert_uint_eq(a->count, all->count);
    ck_assert_uint_eq(a->min, all->min);
    ck_assert_uint_eq(a->max, all->max);
    for (j = 0; j < sizeof qs / sizeof qs[0]; j++)
        ck_assert_uint_eq(qhist_quantile(a, qs[j]), qhist_quantile(all, qs[j]));
    /* Merging an empty one changes nothing; merging into an empty one copies. */
    qhist_init(b);
    qhist_merge(a, b);
    ck_assert_uint_eq(a->count, all->count);
    qhist_merge(b, all);
    ck_assert_uint_eq(b->min, all->min);
    ck_assert_uint_eq(qhist_quantile(b, 0.5), qhist_quantile(all, 0.5));
    free(a);
    free(b);
    free(all);
}
END_TEST

static Suite *qhist_suite(void)
{
    Suite *s = suite_create("qhist");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_exact_below_64);
    tcase_add_test(tc, test_one_value);
    tcase_add_test(tc, test_relative_error_random);
    tcase_add_test(tc, test_relative_error_every_bucket_edge);
    tcase_add_test(tc, test_two_modes);
    tcase_add_test(tc, test_huge_values);
    tcase_add_test(tc, test_q_out_of_range);
    tcase_add_test(tc, test_merge);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(qhist_suite());
}
