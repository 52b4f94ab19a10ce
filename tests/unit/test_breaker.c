/* Unit tests for the circuit breaker, driven by a fake clock. */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "core/breaker.h"
#include "core/loop.h"
#include "tests/unit/testutil.h"

static struct loop *loop;

static void setup(void)
{
    loop = loop_new_fake(1700000000000u, 1);
}

static void teardown(void)
{
    loop_free(loop);
}

static uint64_t now(void)
{
    return loop_now_ms(loop);
}

static void fail_n(struct breaker *b, unsigned n)
{
    while (n-- > 0) {
        ck_assert(breaker_allow(b, now()));
        breaker_failure(b, now());
    }
}

/* threshold 3, recovery 1 s, one trial at a time, one success to close. */
static void init_small(struct breaker *b, unsigned half_open_max, unsigned success_threshold)
{
    struct breaker_policy p = {
        .failure_threshold = 3,
        .recovery_ms = 1000,
        .half_open_max = half_open_max,
        .success_threshold = success_threshold,
    };

    breaker_init(b, &p);
}

START_TEST(test_defaults)
{
    struct breaker_policy p;
    struct breaker b;

    breaker_policy_default(&p);
    ck_assert_uint_eq(p.failure_threshold, 5);
    ck_assert_uint_eq(p.recovery_ms, 30000);
    ck_assert_uint_eq(p.half_open_max, 1);
    ck_assert_uint_eq(p.success_threshold, 1);
    breaker_init(&b, NULL);
    ck_assert_uint_eq(b.policy.failure_threshold, 5);
    ck_assert_uint_eq(b.policy.recovery_ms, 30000);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
    ck_assert_uint_eq(b.transitions, 0);
    /* Default policy: the fifth consecutive failure opens it. */
    fail_n(&b, 4);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
    fail_n(&b, 1);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_OPEN);
}
END_TEST

START_TEST(test_state_names)
{
    ck_assert_str_eq(breaker_state_name(BREAKER_CLOSED), "closed");
    ck_assert_str_eq(breaker_state_name(BREAKER_OPEN), "open");
    ck_assert_str_eq(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
}
END_TEST

START_TEST(test_success_resets_consecutive_failures)
{
    struct breaker b;

    init_small(&b, 1, 1);
    fail_n(&b, 2);
    ck_assert(breaker_allow(&b, now()));
    breaker_success(&b, now());
    fail_n(&b, 2);
    /* 4 failures, but never 3 in a row. */
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
    ck_assert(breaker_allow(&b, now()));
    ck_assert_uint_eq(b.transitions, 0);
}
END_TEST

START_TEST(test_full_cycle)
{
    struct breaker b;

    init_small(&b, 1, 1);
    loop_fake_advance(loop, 5000);
    fail_n(&b, 3);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_OPEN);
    ck_assert_uint_eq(b.transitions, 1);
    ck_assert(!breaker_allow(&b, now()));
    ck_assert_uint_eq(breaker_retry_in_ms(&b, now()), 1000);

    loop_fake_advance(loop, 999);
    ck_assert(!breaker_allow(&b, now()));
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_OPEN);
    ck_assert_uint_eq(breaker_retry_in_ms(&b, now()), 1);

    loop_fake_advance(loop, 1);
    /* Recovery time over: reads half-open even before anyone asks to call. */
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_HALF_OPEN);
    ck_assert_uint_eq(breaker_retry_in_ms(&b, now()), 0);
    ck_assert(breaker_allow(&b, now()));
    ck_assert_int_eq(b.state, BREAKER_HALF_OPEN);
    ck_assert_uint_eq(b.transitions, 2);

    breaker_success(&b, now());
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
    ck_assert_uint_eq(b.transitions, 3);
    /* Closed again with a clean count: it takes 3 new failures to open. */
    fail_n(&b, 2);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
    fail_n(&b, 1);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_OPEN);
}
END_TEST

START_TEST(test_trial_failure_reopens)
{
    struct breaker b;

    init_small(&b, 1, 1);
    fail_n(&b, 3);
    loop_fake_advance(loop, 1000);
    ck_assert(breaker_allow(&b, now()));
    loop_fake_advance(loop, 250);
    breaker_failure(&b, now());

    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_OPEN);
    ck_assert_uint_eq(b.transitions, 3);
    /* The recovery time starts again from the failed trial. */
    ck_assert_uint_eq(breaker_retry_in_ms(&b, now()), 1000);
    ck_assert(!breaker_allow(&b, now()));
    loop_fake_advance(loop, 999);
    ck_assert(!breaker_allow(&b, now()));
    loop_fake_advance(loop, 1);
    ck_assert(breaker_allow(&b, now()));
}
END_TEST

START_TEST(test_half_open_max_one)
{
    struct breaker b;

    init_small(&b, 1, 1);
    fail_n(&b, 3);
    loop_fake_advance(loop, 1000);
    ck_assert(breaker_allow(&b, now()));
    /* One trial in flight: everyone else waits for its verdict. */
    ck_assert(!breaker_allow(&b, now()));
    ck_assert(!breaker_allow(&b, now()));
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_HALF_OPEN);
    ck_assert_uint_eq(b.inflight, 1);
}
END_TEST

START_TEST(test_half_open_max_two_and_success_threshold)
{
    struct breaker b;

    init_small(&b, 2, 2);
    fail_n(&b, 3);
    loop_fake_advance(loop, 1000);
    ck_assert(breaker_allow(&b, now()));
    ck_assert(breaker_allow(&b, now()));
    ck_assert(!breaker_allow(&b, now()));

    breaker_success(&b, now());
    /* One success of two needed: still half-open, and a trial slot is free again. */
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_HALF_OPEN);
    ck_assert(breaker_allow(&b, now()));
    ck_assert(!breaker_allow(&b, now()));

    breaker_success(&b, now());
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
    ck_assert(breaker_allow(&b, now()));
    ck_assert(breaker_allow(&b, now()));
    ck_assert(breaker_allow(&b, now()));
}
END_TEST

START_TEST(test_successes_reset_on_reopen)
{
    struct breaker b;

    init_small(&b, 1, 2);
    fail_n(&b, 3);
    loop_fake_advance(loop, 1000);
    ck_assert(breaker_allow(&b, now()));
    breaker_success(&b, now());
    ck_assert(breaker_allow(&b, now()));
    breaker_failure(&b, now());
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_OPEN);

    loop_fake_advance(loop, 1000);
    ck_assert(breaker_allow(&b, now()));
    breaker_success(&b, now());
    /* The success before the reopening does not count towards closing. */
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_HALF_OPEN);
    ck_assert(breaker_allow(&b, now()));
    breaker_success(&b, now());
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
}
END_TEST

START_TEST(test_zero_policy_values_are_usable)
{
    struct breaker_policy p = {0};
    struct breaker b;

    breaker_init(&b, &p);
    fail_n(&b, 1);
    /* failure_threshold 0 acts as 1; recovery 0: open, but it reads half-open at once. */
    ck_assert_int_eq(b.state, BREAKER_OPEN);
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_HALF_OPEN);
    /* half_open_max 0 acts as 1: one trial goes through, not two. */
    ck_assert(breaker_allow(&b, now()));
    ck_assert(!breaker_allow(&b, now()));
    breaker_success(&b, now());
    ck_assert_int_eq(breaker_state(&b, now()), BREAKER_CLOSED);
}
END_TEST

START_TEST(test_huge_recovery_and_clock_going_back)
{
    struct breaker_policy p;
    struct breaker b;

    breaker_policy_default(&p);
    p.failure_threshold = 1;
    p.recovery_ms = UINT64_MAX;
    breaker_init(&b, &p);
    loop_fake_advance(loop, 10000);
    fail_n(&b, 1);
    /* opened_at + recovery would overflow: it must still read open. */
    ck_assert(!breaker_allow(&b, now() + 1000000));
    ck_assert_int_eq(breaker_state(&b, UINT64_MAX - 1), BREAKER_OPEN);
    ck_assert_uint_eq(breaker_retry_in_ms(&b, now()), UINT64_MAX);
    /* A time before the opening reads as no time passed. */
    ck_assert(!breaker_allow(&b, now() - 5000));
    ck_assert_uint_eq(breaker_retry_in_ms(&b, now() - 5000), UINT64_MAX);
}
END_TEST

static Suite *breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_success_resets_consecutive_failures);
    tcase_add_test(tc, test_full_cycle);
    tcase_add_test(tc, test_trial_failure_reopens);
    tcase_add_test(tc, test_half_open_max_one);
    tcase_add_test(tc, test_half_open_max_two_and_success_threshold);
    tcase_add_test(tc, test_successes_reset_on_reopen);
    tcase_add_test(tc, test_zero_policy_values_are_usable);
    tcase_add_test(tc, test_huge_recovery_and_clock_going_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(breaker_suite());
}
