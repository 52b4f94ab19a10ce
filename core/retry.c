/* Retry policy: transient versus fatal failures, and exponential backoff with full jitter. */
#include "config.h"

#include <string.h>

#include "core/retry.h"

#define RETRY_VALID_TOKENS                                                                         \
    "timeout, signal, connect, exit (any non-zero exit), exit:N (N from 1 to 255)"

void retry_policy_default(struct retry_policy *p)
{
    memset(p, 0, sizeof *p);
    p->max_attempts = 1;
    p->base_ms = 200;
    p->cap_ms = 30000;
    p->on = RETRY_ON_TIMEOUT | RETRY_ON_CONNECT;
    p->exit_codes[0] = 75; /* EX_TEMPFAIL */
    p->nexit_codes = 1;
}

void retry_policy_clear_on(struct retry_policy *p)
{
    p->on = 0;
    p->nexit_codes = 0;
}

/* "N" with 0 < N < 256, digits only: no sign, no spaces, nothing after. */
static int retry_parse_exit_code(const char *s)
{
    int n = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (*s - '0');
        if (n > 255)
            return -1;
    }
    return n == 0 ? -1 : n;
}

static bool retry_has_exit_code(const struct retry_policy *p, int code)
{
    unsigned i;

    for (i = 0; i < p->nexit_codes && i < RETRY_MAX_EXIT_CODES; i++) {
        if (p->exit_codes[i] == code)
            return true;
    }
    return false;
}

int retry_policy_add_on(struct retry_policy *p, const char *token, struct err *err)
{
    int code;

    if (token == NULL)
        token = "";
    if (strcmp(token, "timeout") == 0) {
        p->on |= RETRY_ON_TIMEOUT;
    } else if (strcmp(token, "signal") == 0) {
        p->on |= RETRY_ON_SIGNAL;
    } else if (strcmp(token, "connect") == 0) {
        p->on |= RETRY_ON_CONNECT;
    } else if (strcmp(token, "exit") == 0) {
        p->on |= RETRY_ON_EXIT_ANY;
    } else if (strncmp(token, "exit:", 5) == 0) {
        code = retry_parse_exit_code(token + 5);
        if (code < 0)
            return err_set(err,
                           "retry_on \"%s\": the exit code must be a number from 1 to 255; "
                           "valid tokens are " RETRY_VALID_TOKENS,
                           token);
        if (retry_has_exit_code(p, code))
            return 0;
        if (p->nexit_codes >= RETRY_MAX_EXIT_CODES)
            return err_set(err,
                           "retry_on \"%s\": at most %d exit codes; use \"exit\" to retry "
                           "any non-zero exit. Valid tokens are " RETRY_VALID_TOKENS,
                           token, RETRY_MAX_EXIT_CODES);
        p->exit_codes[p->nexit_codes++] = code;
    } else {
        return err_set(err, "retry_on: unknown token \"%s\"; valid tokens are " RETRY_VALID_TOKENS,
                       token);
    }
    return 0;
}

bool retry_is_fatal(const struct retry_failure *f)
{
    switch (f->kind) {
    case RETRY_EXIT:
    case RETRY_SIGNAL:
    case RETRY_TIMEOUT:
    case RETRY_CONNECT:
        return false;
    case RETRY_SPAWN:
    case RETRY_AUTH:
    case RETRY_HOSTKEY:
    case RETRY_VALIDATION:
        return true;
    }
    return true; /* a kind we do not know: do not retry blindly */
}

bool retry_is_transient(const struct retry_policy *p, const struct retry_failure *f)
{
    if (retry_is_fatal(f))
        return false;
    switch (f->kind) {
    case RETRY_TIMEOUT:
        return (p->on & RETRY_ON_TIMEOUT) != 0;
    case RETRY_SIGNAL:
        return (p->on & RETRY_ON_SIGNAL) != 0;
    case RETRY_CONNECT:
        return (p->on & RETRY_ON_CONNECT) != 0;
    case RETRY_EXIT:
        if (f->code == 0)
            return false; /* exit 0 is success, not a failure to retry */
        return (p->on & RETRY_ON_EXIT_ANY) != 0 || retry_has_exit_code(p, f->code);
    default:
        return false;
    }
}

bool retry_should(const struct retry_policy *p, unsigned attempts, const struct retry_failure *f)
{
    unsigned max = p->max_attempts > 0 ? p->max_attempts : 1;

    return attempts < max && retry_is_transient(p, f);
}

uint64_t retry_backoff_max_ms(const struct retry_policy *p, unsigned attempts)
{
    unsigned shift = attempts > 0 ? attempts - 1 : 0;

    if (p->base_ms == 0)
        return 0;
    /* base * 2^shift past the cap (or past 64 bits) is the cap: test before shifting. */
    if (shift >= 64 || p->base_ms > (p->cap_ms >> shift))
        return p->cap_ms;
    return p->base_ms << shift;
}

uint64_t retry_backoff_ms(const struct retry_policy *p, unsigned attempts, uint32_t r)
{
    uint64_t bound = retry_backoff_max_ms(p, attempts);
    uint64_t q = bound / UINT32_MAX, rem = bound % UINT32_MAX;

    /* bound * r / UINT32_MAX without a 128-bit product: r = 0 gives 0, r = UINT32_MAX the bound. */
    return q * r + rem * r / UINT32_MAX;
}

const char *retry_kind_name(enum retry_kind k)
{
    switch (k) {
    case RETRY_EXIT:
        return "exit";
    case RETRY_SIGNAL:
        return "signal";
    case RETRY_TIMEOUT:
        return "timeout";
    case RETRY_CONNECT:
        return "connect";
    case RETRY_SPAWN:
        return "spawn";
    case RETRY_AUTH:
        return "auth";
    case RETRY_HOSTKEY:
        return "hostkey";
    case RETRY_VALIDATION:
        return "validation";
    }
    return "unknown";
}
