/*
 * Retry policy: how many attempts, which failures are transient, and the
 * backoff between attempts (exponential with a base and a cap, full jitter:
 * the delay before attempt n+1 is uniform in [0, min(cap, base * 2^(n-1))]).
 * Fatal failures (a command that cannot start, authentication, host key,
 * validation) are never retried, whatever retry_on says.
 */
#ifndef N3_RETRY_H
#define N3_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

enum retry_kind {
    RETRY_EXIT,       /* the command exited non-zero; code = exit code */
    RETRY_SIGNAL,     /* killed by a signal; code = signal number */
    RETRY_TIMEOUT,    /* the attempt ran past its timeout */
    RETRY_CONNECT,    /* connection refused, reset, or unreachable */
    RETRY_SPAWN,      /* fatal: the command could not be started */
    RETRY_AUTH,       /* fatal: authentication refused */
    RETRY_HOSTKEY,    /* fatal: host key unknown or changed */
    RETRY_VALIDATION, /* fatal: bad input */
};

struct retry_failure {
    enum retry_kind kind;
    int code;
};

#define RETRY_MAX_EXIT_CODES 16

/* Bits of retry_policy.on */
#define RETRY_ON_TIMEOUT  (1u << 0)
#define RETRY_ON_SIGNAL   (1u << 1)
#define RETRY_ON_EXIT_ANY (1u << 2)
#define RETRY_ON_CONNECT  (1u << 3)

struct retry_policy {
    unsigned max_attempts;                /* total attempts, >= 1; 1 means no retry */
    uint64_t base_ms;                     /* default 200 */
    uint64_t cap_ms;                      /* default 30000 */
    unsigned on;                          /* RETRY_ON_* bits */
    int exit_codes[RETRY_MAX_EXIT_CODES]; /* exit codes that are transient */
    unsigned nexit_codes;
};

/* max_attempts 1, base 200 ms, cap 30 s, retry_on = timeout, connect, exit:75 (EX_TEMPFAIL). */
void retry_policy_default(struct retry_policy *p);
/* Reset retry_on to nothing (before adding tokens). */
void retry_policy_clear_on(struct retry_policy *p);
/* Add one retry_on token: "timeout", "signal", "connect", "exit" (any non-zero exit)
 * or "exit:N" (0 < N < 256). Returns -1 with a message naming the valid tokens. */
int retry_policy_add_on(struct retry_policy *p, const char *token, struct err *err);

bool retry_is_fatal(const struct retry_failure *f);
bool retry_is_transient(const struct retry_policy *p, const struct retry_failure *f);
/* After `attempts` attempts (>= 1), the last one failing with f: try again? */
bool retry_should(const struct retry_policy *p, unsigned attempts, const struct retry_failure *f);
/* Upper bound of the delay after `attempts` failed attempts: min(cap, base * 2^(attempts-1)). */
uint64_t retry_backoff_max_ms(const struct retry_policy *p, unsigned attempts);
/* Full jitter: r is a uniform random 32-bit number; result in [0, retry_backoff_max_ms]. */
uint64_t retry_backoff_ms(const struct retry_policy *p, unsigned attempts, uint32_t r);
/* "exit", "signal", "timeout", "connect", "spawn", "auth", "hostkey", "validation" (for metric
 * labels). */
const char *retry_kind_name(enum retry_kind k);

#endif
