/* Recoverable errors: a message the operator can act on (what, where, what to do). */
#ifndef N3_ERR_H
#define N3_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 1024

struct err {
    char msg[ERR_MSG_MAX];
};

/* Set the message; always returns -1 so callers can `return err_set(...)`. */
int err_set(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_vset(struct err *err, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Put context in front of an existing message ("loading x: <old message>"); returns -1. */
int err_prefix(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *err);

#endif
