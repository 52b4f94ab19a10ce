/* Recoverable errors with a bounded message. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

int err_vset(struct err *err, const char *fmt, va_list ap)
{
    if (err != NULL)
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int err_set(struct err *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(err, fmt, ap);
    va_end(ap);
    return -1;
}

int err_prefix(struct err *err, const char *fmt, ...)
{
    char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    {
        size_t n = strlen(head);

        if (n >= sizeof err->msg)
            n = sizeof err->msg - 1;
        memcpy(err->msg, head, n);
        /* The old message goes after the context, cut to what is left. */
        snprintf(err->msg + n, sizeof err->msg - n, "%.*s", (int)(sizeof err->msg - n - 1), old);
    }
    return -1;
}

void err_clear(struct err *err)
{
    if (err != NULL)
        err->msg[0] = '\0';
}
