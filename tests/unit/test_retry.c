/* Unit tests for the retry policy: transient versus fatal, retry_on tokens, backoff and jitter. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/retry.h"
#include "tests/unit/testutil.h"

static const enum retry_kind fatal_kinds[] = {RETRY_SPAWN, RETRY_AUTH, RETRY_HOSTKEY,
                                              RETRY_VALIDATION};

/* A policy that retries everything it is allowed to, many times. */
static void policy_retry_all(struct retry_policy *p)
{
    struct err err;

    retry_policy_default(p);
    p->max_attempts = 10;
    ck_assert_int_eq(retry_policy_add_on(p, "timeout", &err), 0);
    ck_assert_int_eq(retry_policy_add_on(p, "signal", &err), 0);
    ck_assert_int_eq(retry_policy_add_on(p, "connect", &err), 0);
    ck_assert_int_eq(retry_policy_add_on(p, "exit", &err), 0);
    ck_assert_int_eq(retry_policy_add_on(p, "exit:1", &err), 0);
}

START_TEST(test_defaults)
{
    struct retry_policy p;
    struct retry_failure f;

    retry_policy_default(&p);
    ck_assert_uint_eq(p.max_attempts, 1);
    ck_assert_uint_eq(p.base_ms, 200);
    ck_assert_uint_eq(p.cap_ms, 30000);
    ck_assert_uint_eq(p.on, RETRY_ON_TIMEOUT | RETRY_ON_CONNECT);
    ck_assert_uint_eq(p.nexit_codes, 1);
    ck_assert_int_eq(p.exit_codes[0], 75);

    /* Transient by default: timeout, connect, exit 75; not exit 1, not a signal. */
    f = (struct retry_failure){RETRY_TIMEOUT, 0};
    ck_assert(retry_is_transient(&p, &f));
    f = (struct retry_failure){RETRY_CONNECT, 0};
    ck_assert(retry_is_transient(&p, &f));
    f = (struct retry_failure){RETRY_EXIT, 75};
    ck_assert(retry_is_transient(&p, &f));
    f = (struct retry_failure){RETRY_EXIT, 1};
    ck_assert(!retry_is_transient(&p, &f));
    f = (struct retry_failure){RETRY_SIGNAL, 9};
    ck_assert(!retry_is_transient(&p, &f));
    /* max_attempts 1: a transient failure still gets no second attempt. */
    f = (struct retry_failure){RETRY_TIMEOUT, 0};
    ck_assert(!retry_should(&p, 1, &f));
}
END_TEST

START_TEST(test_fatal_never_retried)
{
    struct retry_policy p;
    size_t i;
    int code;

    policy_retry_all(&p);
    for (i = 0; i < sizeof fatal_kinds / sizeof fatal_kinds[0]; i++) {
        for (code = 0; code < 3; code++) {
            struct retry_failure f = {fatal_kinds[i], code == 2 ? 75 : code};

            ck_assert_msg(retry_is_fatal(&f), "%s should be fatal", retry_kind_name(f.kind));
            ck_assert(!retry_is_transient(&p, &f));
            ck_assert(!retry_should(&p, 1, &f));
        }
    }
}
END_TEST

START_TEST(test_non_fatal_kinds)
{
    static const enum retry_kind kinds[] = {RETRY_EXIT, RETRY_SIGNAL, RETRY_TIMEOUT, RETRY_CONNECT};
    struct retry_policy p;
    size_t i;

    policy_retry_all(&p);
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        struct retry_failure f = {kinds[i], 3};

        ck_assert(!retry_is_fatal(&f));
        ck_assert(retry_should(&p, 1, &f));
    }
}
END_TEST

START_TEST(test_retry_on_bits)
{
    struct retry_policy p;
    struct retry_failure timeout = {RETRY_TIMEOUT, 0}, sig = {RETRY_SIGNAL, 15},
                         conn = {RETRY_CONNECT, 0}, exit1 = {RETRY_EXIT, 1},
                         exit3 = {RETRY_EXIT, 3}, exit0 = {RETRY_EXIT, 0};
    struct err err;

    retry_policy_default(&p);
    retry_policy_clear_on(&p);
    ck_assert(!retry_is_transient(&p, &timeout));
    ck_assert(!retry_is_transient(&p, &conn));
    ck_assert(!retry_is_transient(&p, &(struct retry_failure){RETRY_EXIT, 75}));

    ck_assert_int_eq(retry_policy_add_on(&p, "signal", &err), 0);
    ck_assert(retry_is_transient(&p, &sig));
    ck_assert(!retry_is_transient(&p, &timeout));

    ck_assert_int_eq(retry_policy_add_on(&p, "exit:3", &err), 0);
    ck_assert(retry_is_transient(&p, &exit3));
    ck_assert(!retry_is_transient(&p, &exit1));

    ck_assert_int_eq(retry_policy_add_on(&p, "exit", &err), 0);
    ck_assert(retry_is_transient(&p, &exit1));
    /* Exit 0 is success: nothing to retry, even with "exit". */
    ck_assert(!retry_is_transient(&p, &exit0));
    ck_assert(!retry_is_transient(&p, &conn));
}
END_TEST

START_TEST(test_should_respects_max_attempts)
{
    struct retry_policy p;
    struct retry_failure f = {RETRY_CONNECT, 0};

    retry_policy_default(&p);
    p.max_attempts = 3;
    ck_assert(retry_should(&p, 1, &f));
    ck_assert(retry_should(&p, 2, &f));
    ck_assert(!retry_should(&p, 3, &f));
    ck_assert(!retry_should(&p, 4, &f));
}
END_TEST

START_TEST(test_add_on_rejects_bad_tokens)
{
    static const char *const bad[] = {
        "exit:0",  "exit:256",           "exit:x", "exit:",   "exit:-1", "exit:+3", "exit:3x",
        "exit: 3", "exit:1000000000000", "retry",  "Timeout", "",        "exit3"};
    struct retry_policy p, before;
    size_t i;

    retry_policy_default(&p);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct err err = {{0}};

        before = p;
        ck_assert_msg(retry_policy_add_on(&p, bad[i], &err) == -1, "\"%s\" accepted", bad[i]);
        ck_assert_msg(p.on == before.on && p.nexit_codes == before.nexit_codes &&
                          memcmp(p.exit_codes, before.exit_codes, sizeof p.exit_codes) == 0,
                      "\"%s\" changed the policy", bad[i]);
        /* The message names the token and every valid one, so the operator can fix it. */
        ck_assert_msg(strstr(err.msg, bad[i]) != NULL, "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "timeout") != NULL, "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "signal") != NULL, "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "connect") != NULL, "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "exit:N") != NULL, "%s", err.msg);
    }
}
END_TEST

START_TEST(test_add_on_exit_codes)
{
    struct retry_policy p;
    struct err err;
    int code;

    retry_policy_default(&p);
    retry_policy_clear_on(&p);
    ck_assert_int_eq(retry_policy_add_on(&p, "exit:1", &err), 0);
    ck_assert_int_eq(retry_policy_add_on(&p, "exit:255", &err), 0);
    /* A code already there is not added twice. */
    ck_assert_int_eq(retry_policy_add_on(&p, "exit:1", &err), 0);
    ck_assert_uint_eq(p.nexit_codes, 2);
    ck_assert_int_eq(p.exit_codes[0], 1);
    ck_assert_int_eq(p.exit_codes[1], 255);
    ck_assert(retry_is_transient(&p, &(struct retry_failure){RETRY_EXIT, 255}));

    for (code = 2; code < 2 + RETRY_MAX_EXIT_CODES - 2; code++) {
        char tok[16];

        snprintf(tok, sizeof tok, "exit:%d", code);
        ck_assert_int_eq(retry_policy_add_on(&p, tok, &err), 0);
    }
    ck_assert_uint_eq(p.nexit_codes, RETRY_MAX_EXIT_CODES);
    /* Full: a new code is refused with a message, not dropped silently. */
    ck_assert_int_eq(retry_policy_add_on(&p, "exit:200", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "exit:200"));
    ck_assert_uint_eq(p.nexit_codes, RETRY_MAX_EXIT_CODES);
    ck_assert(!retry_is_transient(&p, &(struct retry_failure){RETRY_EXIT, 200}));
}
END_TEST

START_TEST(test_backoff_doubles_and_caps)
{
    static const uint64_t want[] = {200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    struct retry_policy p;
    unsigned n;

    retry_policy_default(&p);
    for (n = 1; n <= sizeof want / sizeof want[0]; n++)
        ck_assert_uint_eq(retry_backoff_max_ms(&p, n), want[n - 1]);
    /* Far past where base * 2^(n-1) overflows 64 bits: still the cap. */
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 63), 30000);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 64), 30000);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 65), 30000);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 1000), 30000);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, UINT32_MAX), 30000);
}
END_TEST

START_TEST(test_backoff_overflow_with_huge_cap)
{
    struct retry_policy p;

    retry_policy_default(&p);
    p.base_ms = 3;
    p.cap_ms = UINT64_MAX;
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 1), 3);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 63), 3ull << 62);
    /* 3 * 2^63 does not fit in 64 bits: the bound is the cap, not a wrapped number. */
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 64), UINT64_MAX);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 65), UINT64_MAX);
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 200), UINT64_MAX);
    ck_assert_uint_eq(retry_backoff_ms(&p, 200, UINT32_MAX), UINT64_MAX);
    ck_assert_uint_eq(retry_backoff_ms(&p, 200, 0), 0);

    /* A cap below the base: the cap wins from the first retry. */
    p.base_ms = 500;
    p.cap_ms = 100;
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 1), 100);
    p.base_ms = 0;
    ck_assert_uint_eq(retry_backoff_max_ms(&p, 10), 0);
}
END_TEST

START_TEST(test_jitter_range)
{
    struct retry_policy p;
    struct loop *loop = loop_new_fake(0, 7);
    unsigned n, i;

    retry_policy_default(&p);
    for (n = 1; n <= 12; n++) {
        uint64_t bound = retry_backoff_max_ms(&p, n), prev = 0;

        ck_assert_uint_eq(retry_backoff_ms(&p, n, 0), 0);
        ck_assert_uint_eq(retry_backoff_ms(&p, n, UINT32_MAX), bound);
        /* Half-way r gives about half the bound. */
        ck_assert_uint_eq(retry_backoff_ms(&p, n, UINT32_MAX / 2 + 1), bound / 2);
        for (i = 0; i < 200; i++) {
            uint32_t r = loop_random(loop);
            uint64_t d = retry_backoff_ms(&p, n, r);

            ck_assert_uint_le(d, bound);
        }
        /* Larger r never gives a shorter delay. */
        for (i = 0; i <= 16; i++) {
            uint64_t d = retry_backoff_ms(&p, n, (uint32_t)((UINT32_MAX / 16ull) * i));

            ck_assert_uint_ge(d, prev);
            prev = d;
        }
    }
    loop_free(loop);
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(retry_kind_name(RETRY_EXIT), "exit");
    ck_assert_str_eq(retry_kind_name(RETRY_SIGNAL), "signal");
    ck_assert_str_eq(retry_kind_name(RETRY_TIMEOUT), "timeout");
    ck_assert_str_eq(retry_kind_name(RETRY_CONNECT), "connect");
    ck_assert_str_eq(retry_kind_name(RETRY_SPAWN), "spawn");
    ck_assert_str_eq(retry_kind_name(RETRY_AUTH), "auth");
    ck_assert_str_eq(retry_kind_name(RETRY_HOSTKEY), "hostkey");
    ck_assert_str_eq(retry_kind_name(RETRY_VALIDATION), "validation");
}
END_TEST

static Suite *retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_fatal_never_retried);
    tcase_add_test(tc, test_non_fatal_kinds);
    tcase_add_test(tc, test_retry_on_bits);
    tcase_add_test(tc, test_should_respects_max_attempts);
    tcase_add_test(tc, test_add_on_rejects_bad_tokens);
    tcase_add_test(tc, test_add_on_exit_codes);
    tcase_add_test(tc, test_backoff_doubles_and_caps);
    tcase_add_test(tc, test_backoff_overflow_with_huge_cap);
    tcase_add_test(tc, test_jitter_range);
    tcase_add_test(tc, test_kind_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(retry_suite());
}
