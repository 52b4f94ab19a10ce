/*
 * The event loop: a libuv loop with an injectable clock and random source.
 * Engine state machines take time from here, so tests drive them with a fake
 * clock (loop_new_fake + loop_fake_advance) instead of sleeping.
 */
#ifndef N3_LOOP_H
#define N3_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct loop;
struct loop_timer;

typedef void (*loop_timer_fn)(void *arg);

/* A loop on the real monotonic clock, random seeded from the OS. */
struct loop *loop_new(void);
/* A loop whose clock moves only by loop_fake_advance; deterministic random. */
struct loop *loop_new_fake(uint64_t wall_start_ms, uint64_t seed);
/* Closes every handle still open on the loop, runs it dry, frees it. */
void loop_free(struct loop *loop);

uv_loop_t *loop_uv(struct loop *loop);
bool loop_is_fake(const struct loop *loop);

/* Monotonic time in microseconds since the loop was made. */
uint64_t loop_now_us(const struct loop *loop);
uint64_t loop_now_ms(const struct loop *loop);
/* Wall-clock time (Unix epoch) in microseconds, consistent with loop_now_us. */
uint64_t loop_wall_us(const struct loop *loop);

/* A uniformly distributed 32-bit random number (not for secrets). */
uint32_t loop_random(struct loop *loop);
/* Uniform in [0, bound] inclusive. */
uint64_t loop_random_upto(struct loop *loop, uint64_t bound);

/* Run the loop until nothing is left to do, or until loop_stop. */
int loop_run(struct loop *loop);
/* Run one iteration; blocks for I/O when `wait` is true. Returns non-zero while work remains. */
int loop_run_once(struct loop *loop, bool wait);
void loop_stop(struct loop *loop);

/* Fake clock: move time forward, firing due timers in order of their due time. */
void loop_fake_advance(struct loop *loop, uint64_t ms);
/* Fake clock: number of armed timers (lets tests wait until a timer is set). */
unsigned loop_fake_pending(const struct loop *loop);

/* Call fn(arg) on the next turn of the loop (not now): for callbacks that must come after
 * the call that arranged them has returned. Works on a fake clock too. One that has not run
 * when the loop is freed never runs (what arg points to is the caller's). */
void loop_defer(struct loop *loop, loop_timer_fn fn, void *arg);

/* Run fn(arg) on libuv's thread pool (blocking library work: never on the loop), and set *done
 * on the loop once it has returned. */
void loop_work(struct loop *loop, loop_timer_fn fn, void *arg, bool *done);

/* One-shot timers on whichever clock the loop has. */
struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_fn fn, void *arg);
void loop_timer_start(struct loop_timer *t, uint64_t delay_ms);
void loop_timer_stop(struct loop_timer *t);
bool loop_timer_active(const struct loop_timer *t);
/* Stops and frees; safe to call from the timer's own callback. NULL is fine. */
void loop_timer_free(struct loop_timer *t);

#endif
