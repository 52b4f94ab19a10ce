/* Circuit breaker: closed -> open -> half-open -> closed, on a clock passed in by the caller. */
#include "config.h"

#include <stddef.h>

#include "core/breaker.h"

void breaker_policy_default(struct breaker_policy *p)
{
    p->failure_threshold = 5;
    p->recovery_ms = 30000;
    p->half_open_max = 1;
    p->success_threshold = 1;
}

void breaker_init(struct breaker *b, const struct breaker_policy *p)
{
    if (p != NULL)
        b->policy = *p;
    else
        breaker_policy_default(&b->policy);
    /* A zero threshold would open at once, or never let a trial through: use 1. */
    if (b->policy.failure_threshold == 0)
        b->policy.failure_threshold = 1;
    if (b->policy.half_open_max == 0)
        b->policy.half_open_max = 1;
    if (b->policy.success_threshold == 0)
        b->policy.success_threshold = 1;
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->successes = 0;
    b->inflight = 0;
    b->opened_at_ms = 0;
    b->transitions = 0;
}

/* Written as a difference so that a huge recovery_ms cannot overflow, and a clock that
 * went backwards reads as "not yet". */
static bool breaker_recovered(const struct breaker *b, uint64_t now_ms)
{
    return now_ms >= b->opened_at_ms && now_ms - b->opened_at_ms >= b->policy.recovery_ms;
}

static void breaker_set(struct breaker *b, enum breaker_state s, uint64_t now_ms)
{
    b->state = s;
    b->transitions++;
    b->successes = 0;
    b->inflight = 0;
    if (s == BREAKER_OPEN)
        b->opened_at_ms = now_ms;
    if (s == BREAKER_CLOSED)
        b->failures = 0;
}

bool breaker_allow(struct breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        if (!breaker_recovered(b, now_ms))
            return false;
        breaker_set(b, BREAKER_HALF_OPEN, now_ms);
        break;
    case BREAKER_HALF_OPEN:
        break;
    }
    if (b->inflight >= b->policy.half_open_max)
        return false;
    b->inflight++;
    return true;
}

void breaker_success(struct breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        b->failures = 0;
        break;
    case BREAKER_OPEN:
        /* A call let through before the breaker opened: it proves nothing about now. */
        break;
    case BREAKER_HALF_OPEN:
        if (b->inflight > 0)
            b->inflight--;
        if (++b->successes >= b->policy.success_threshold)
            breaker_set(b, BREAKER_CLOSED, now_ms);
        break;
    }
}

void breaker_failure(struct breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        if (++b->failures >= b->policy.failure_threshold)
            breaker_set(b, BREAKER_OPEN, now_ms);
        break;
    case BREAKER_OPEN:
        /* Late report of a call from before the breaker opened: keep the recovery time. */
        break;
    case BREAKER_HALF_OPEN:
        breaker_set(b, BREAKER_OPEN, now_ms);
        break;
    }
}

enum breaker_state breaker_state(const struct breaker *b, uint64_t now_ms)
{
    if (b->state == BREAKER_OPEN && breaker_recovered(b, now_ms))
        return BREAKER_HALF_OPEN;
    return b->state;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

uint64_t breaker_retry_in_ms(const struct breaker *b, uint64_t now_ms)
{
    uint64_t elapsed;

    if (b->state != BREAKER_OPEN)
        return 0;
    elapsed = now_ms >= b->opened_at_ms ? now_ms - b->opened_at_ms : 0;
    return elapsed >= b->policy.recovery_ms ? 0 : b->policy.recovery_ms - elapsed;
}
