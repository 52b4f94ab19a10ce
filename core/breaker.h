/*
 * Circuit breaker: closed -> open after `failure_threshold` consecutive
 * failures -> half-open once `recovery_ms` has passed (a limited number of
 * trial calls allowed) -> closed after `success_threshold` trial successes,
 * or back to open on a trial failure. Time is passed in, so tests use a fake
 * clock. Embedded object: breaker_init, no free.
 */
#ifndef N3_BREAKER_H
#define N3_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker_policy {
    unsigned failure_threshold; /* default 5 */
    uint64_t recovery_ms;       /* default 30000 */
    unsigned half_open_max;     /* trial calls at once in half-open, default 1 */
    unsigned success_threshold; /* trial successes to close, default 1 */
};

struct breaker {
    struct breaker_policy policy;
    enum breaker_state state;
    unsigned failures;  /* consecutive failures while closed */
    unsigned successes; /* trial successes while half-open */
    unsigned inflight;  /* trial calls allowed and not yet reported while half-open */
    uint64_t opened_at_ms;
    uint64_t transitions;
};

void breaker_policy_default(struct breaker_policy *p);
void breaker_init(struct breaker *b, const struct breaker_policy *p); /* p NULL: defaults */

/* May a call go ahead now? Moves open -> half-open when the recovery time is over. */
bool breaker_allow(struct breaker *b, uint64_t now_ms);
void breaker_success(struct breaker *b, uint64_t now_ms);
void breaker_failure(struct breaker *b, uint64_t now_ms);

/* The state as of now (an open breaker past its recovery time reads half-open). */
enum breaker_state breaker_state(const struct breaker *b, uint64_t now_ms);
const char *breaker_state_name(enum breaker_state s); /* "closed", "open", "half_open" */
/* Milliseconds until an open breaker lets a trial call through (0 if not open). */
uint64_t breaker_retry_in_ms(const struct breaker *b, uint64_t now_ms);

#endif
