/* The event loop: libuv with an injectable clock and random source. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/loop.h"
#include "core/xalloc.h"

struct loop_timer {
    struct loop *loop;
    loop_timer_fn fn;
    void *arg;
    bool active;
    uv_timer_t *uv;                 /* real clock only */
    uint64_t due_us;                /* fake clock only */
    struct loop_timer *next, *prev; /* fake clock: every timer of the loop */
};

struct loop {
    uv_loop_t uv;
    bool fake;
    uint64_t mono0_ns; /* real: uv_hrtime() at creation */
    uint64_t wall0_us;
    uint64_t fake_us;
    uint64_t rng;
    struct loop_timer *timers; /* fake clock only */
};

static uint64_t wall_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct loop *loop_alloc(void)
{
    struct loop *loop = xcalloc(1, sizeof *loop);
    int rc = uv_loop_init(&loop->uv);

    if (rc != 0)
        fatal("uv_loop_init: %s", uv_strerror(rc));
    loop->uv.data = loop;
    return loop;
}

struct loop *loop_new(void)
{
    struct loop *loop = loop_alloc();

    loop->mono0_ns = uv_hrtime();
    loop->wall0_us = wall_now_us();
    if (getrandom(&loop->rng, sizeof loop->rng, 0) != sizeof loop->rng)
        loop->rng = loop->mono0_ns ^ loop->wall0_us;
    if (loop->rng == 0)
        loop->rng = 0x9e3779b97f4a7c15u;
    return loop;
}

struct loop *loop_new_fake(uint64_t wall_start_ms, uint64_t seed)
{
    struct loop *loop = loop_alloc();

    loop->fake = true;
    loop->wall0_us = wall_start_ms * 1000u;
    loop->rng = seed ? seed : 0x9e3779b97f4a7c15u;
    return loop;
}

static void deferral_close_cb(uv_handle_t *h);

/* An idle handle is a deferral (loop_defer is their one user) that has not run: it is freed,
 * not run, since the loop is ending. */
static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, uv_handle_get_type(h) == UV_IDLE ? deferral_close_cb : NULL);
}

void loop_free(struct loop *loop)
{
    struct loop_timer *t, *next;

    if (loop == NULL)
        return;
    for (t = loop->timers; t != NULL; t = next) {
        next = t->next;
        free(t);
    }
    /* Handles still open belong to objects already gone; close them so the loop can end. */
    uv_walk(&loop->uv, close_walk_cb, NULL);
    while (uv_run(&loop->uv, UV_RUN_DEFAULT) != 0)
        ;
    if (uv_loop_close(&loop->uv) != 0)
        fatal("loop_free: handles still open");
    free(loop);
}

uv_loop_t *loop_uv(struct loop *loop)
{
    return &loop->uv;
}

bool loop_is_fake(const struct loop *loop)
{
    return loop->fake;
}

uint64_t loop_now_us(const struct loop *loop)
{
    if (loop->fake)
        return loop->fake_us;
    return (uv_hrtime() - loop->mono0_ns) / 1000u;
}

uint64_t loop_now_ms(const struct loop *loop)
{
    return loop_now_us(loop) / 1000u;
}

uint64_t loop_wall_us(const struct loop *loop)
{
    return loop->wall0_us + loop_now_us(loop);
}

uint32_t loop_random(struct loop *loop)
{
    /* xorshift64*: fast, good enough for jitter and ids that need not be secret. */
    uint64_t x = loop->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    loop->rng = x;
    return (uint32_t)((x * 0x2545f4914f6cdd1du) >> 32);
}

uint64_t loop_random_upto(struct loop *loop, uint64_t bound)
{
    uint64_t r = ((uint64_t)loop_random(loop) << 32) | loop_random(loop);

    if (bound == UINT64_MAX)
        return r;
    return r % (bound + 1);
}

int loop_run(struct loop *loop)
{
    return uv_run(&loop->uv, UV_RUN_DEFAULT);
}

int loop_run_once(struct loop *loop, bool wait)
{
    return uv_run(&loop->uv, wait ? UV_RUN_ONCE : UV_RUN_NOWAIT);
}

void loop_stop(struct loop *loop)
{
    uv_stop(&loop->uv);
}

static struct loop_timer *fake_next_due(struct loop *loop, uint64_t until_us)
{
    struct loop_timer *t, *best = NULL;

    for (t = loop->timers; t != NULL; t = t->next) {
        if (t->active && t->due_us <= until_us && (best == NULL || t->due_us < best->due_us))
            best = t;
    }
    return best;
}

void loop_fake_advance(struct loop *loop, uint64_t ms)
{
    uint64_t until = loop->fake_us + ms * 1000u;
    struct loop_timer *t;

    if (!loop->fake)
        fatal("loop_fake_advance on a real clock");
    while ((t = fake_next_due(loop, until)) != NULL) {
        if (t->due_us > loop->fake_us)
            loop->fake_us = t->due_us;
        t->active = false;
        t->fn(t->arg);
    }
    loop->fake_us = until;
}

unsigned loop_fake_pending(const struct loop *loop)
{
    const struct loop_timer *t;
    unsigned n = 0;

    for (t = loop->timers; t != NULL; t = t->next)
        n += t->active;
    return n;
}

static void real_timer_cb(uv_timer_t *h)
{
    struct loop_timer *t = h->data;

    t->active = false;
    t->fn(t->arg);
}

struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_fn fn, void *arg)
{
    struct loop_timer *t = xcalloc(1, sizeof *t);

    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    if (loop->fake) {
        t->next = loop->timers;
        if (t->next != NULL)
            t->next->prev = t;
        loop->timers = t;
    } else {
        t->uv = xmalloc(sizeof *t->uv);
        uv_timer_init(&loop->uv, t->uv);
        t->uv->data = t;
    }
    return t;
}

void loop_timer_start(struct loop_timer *t, uint64_t delay_ms)
{
    t->active = true;
    if (t->loop->fake)
        t->due_us = t->loop->fake_us + delay_ms * 1000u;
    else
        uv_timer_start(t->uv, real_timer_cb, delay_ms, 0);
}

void loop_timer_stop(struct loop_timer *t)
{
    t->active = false;
    if (!t->loop->fake)
        uv_timer_stop(t->uv);
}

bool loop_timer_active(const struct loop_timer *t)
{
    return t->active;
}

static void free_uv_cb(uv_handle_t *h)
{
    free(h);
}

void loop_timer_free(struct loop_timer *t)
{
    if (t == NULL)
        return;
    if (t->loop->fake) {
        if (t->prev != NULL)
            t->prev->next = t->next;
        else
            t->loop->timers = t->next;
        if (t->next != NULL)
            t->next->prev = t->prev;
    } else {
        uv_timer_stop(t->uv);
        uv_close((uv_handle_t *)t->uv, free_uv_cb);
    }
    free(t);
}

struct deferral {
    uv_idle_t idle;
    loop_timer_fn fn;
    void *arg;
};

static void deferral_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void deferral_cb(uv_idle_t *h)
{
    struct deferral *d = h->data;

    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, deferral_close_cb);
    d->fn(d->arg);
}

struct work {
    uv_work_t req;
    loop_timer_fn fn;
    void *arg;
    bool *done;
};

static void work_cb(uv_work_t *req)
{
    struct work *w = req->data;

    w->fn(w->arg);
}

static void work_after_cb(uv_work_t *req, int status)
{
    struct work *w = req->data;

    (void)status; /* not cancelled: nobody calls uv_cancel on these */
    *w->done = true;
    free(w);
}

void loop_work(struct loop *loop, loop_timer_fn fn, void *arg, bool *done)
{
    struct work *w = xcalloc(1, sizeof *w);

    w->req.data = w;
    w->fn = fn;
    w->arg = arg;
    w->done = done;
    *done = false;
    uv_queue_work(&loop->uv, &w->req, work_cb, work_after_cb);
}

void loop_defer(struct loop *loop, loop_timer_fn fn, void *arg)
{
    struct deferral *d = xcalloc(1, sizeof *d);

    d->fn = fn;
    d->arg = arg;
    d->idle.data = d;
    uv_idle_init(&loop->uv, &d->idle);
    uv_idle_start(&d->idle, deferral_cb);
}
