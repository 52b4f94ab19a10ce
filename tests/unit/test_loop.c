/* The loop's fake clock: timers fire in order of due time, only when time is advanced. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "tests/unit/testutil.h"

struct log {
    char order[32];
    size_t n;
    struct loop *loop;
    uint64_t at[8];
    struct loop_timer *rearm;
};

struct tctx {
    struct log *log;
    char name;
};

static void fire(void *arg)
{
    struct tctx *c = arg;

    c->log->at[c->log->n] = loop_now_ms(c->log->loop);
    c->log->order[c->log->n++] = c->name;
}

START_TEST(fake_timers_fire_in_order)
{
    struct loop *loop = loop_new_fake(1000, 7);
    struct log log = {.loop = loop};
    struct tctx a = {&log, 'a'}, b = {&log, 'b'}, c = {&log, 'c'};
    struct loop_timer *ta = loop_timer_new(loop, fire, &a);
    struct loop_timer *tb = loop_timer_new(loop, fire, &b);
    struct loop_timer *tc = loop_timer_new(loop, fire, &c);

    loop_timer_start(ta, 300);
    loop_timer_start(tb, 100);
    loop_timer_start(tc, 200);
    ck_assert_uint_eq(loop_fake_pending(loop), 3);
    loop_fake_advance(loop, 99);
    ck_assert_uint_eq(log.n, 0);
    loop_fake_advance(loop, 150);
    ck_assert_str_eq(log.order, "bc");
    ck_assert_uint_eq(log.at[0], 100);
    ck_assert_uint_eq(log.at[1], 200);
    ck_assert_uint_eq(loop_now_ms(loop), 249);
    loop_timer_stop(ta);
    loop_fake_advance(loop, 1000);
    ck_assert_str_eq(log.order, "bc");
    ck_assert_uint_eq(loop_wall_us(loop), (1000u + 1249u) * 1000u);
    loop_timer_free(ta);
    loop_timer_free(tb);
    loop_timer_free(tc);
    loop_free(loop);
}
END_TEST

static void self_free(void *arg)
{
    struct log *log = arg;

    log->order[log->n++] = 'x';
    loop_timer_free(log->rearm);
}

START_TEST(timer_may_free_itself)
{
    struct loop *loop = loop_new_fake(0, 1);
    struct log log = {.loop = loop};

    log.rearm = loop_timer_new(loop, self_free, &log);
    loop_timer_start(log.rearm, 10);
    loop_fake_advance(loop, 20);
    ck_assert_str_eq(log.order, "x");
    ck_assert_uint_eq(loop_fake_pending(loop), 0);
    loop_free(loop);
}
END_TEST

START_TEST(random_is_deterministic_with_a_seed)
{
    struct loop *a = loop_new_fake(0, 99), *b = loop_new_fake(0, 99), *c = loop_new_fake(0, 100);
    int i, differ = 0;

    for (i = 0; i < 100; i++) {
        uint32_t x = loop_random(a);

        ck_assert_uint_eq(x, loop_random(b));
        differ += x != loop_random(c);
        ck_assert_uint_le(loop_random_upto(a, 10), 10);
        loop_random_upto(b, 10);
    }
    ck_assert_int_gt(differ, 90);
    loop_free(a);
    loop_free(b);
    loop_free(c);
}
END_TEST

static void real_fire(void *arg)
{
    *(int *)arg += 1;
}

START_TEST(real_timer_fires)
{
    struct loop *loop = loop_new();
    int fired = 0;
    struct loop_timer *t = loop_timer_new(loop, real_fire, &fired);

    loop_timer_start(t, 5);
    loop_run(loop);
    ck_assert_int_eq(fired, 1);
    ck_assert(!loop_timer_active(t));
    loop_timer_free(t);
    loop_free(loop);
}
END_TEST

/* A deferral that never ran, because the loop ended first (n3ctl finishing while a callback
 * started new work), is freed with the loop, not run: LeakSanitizer, in the ASan build, fails
 * this test if it is left behind. */
START_TEST(deferral_not_run_is_freed_with_the_loop)
{
    struct loop *loop = loop_new();
    int fired = 0;

    loop_defer(loop, real_fire, &fired);
    loop_defer(loop, real_fire, &fired);
    loop_free(loop);
    ck_assert_int_eq(fired, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loop");
    TCase *t = tcase_create("loop");

    tcase_add_test(t, fake_timers_fire_in_order);
    tcase_add_test(t, timer_may_free_itself);
    tcase_add_test(t, random_is_deterministic_with_a_seed);
    tcase_add_test(t, real_timer_fires);
    tcase_add_test(t, deferral_not_run_is_freed_with_the_loop);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
