/* The one quoting function for shell commands. */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "core/buf.h"
#include "core/shell.h"
#include "core/xalloc.h"

void shell_quote(struct buf *out, const char *s)
{
    const char *p;

    buf_addc(out, '\'');
    for (p = s; *p != '\0'; p++) {
        if (*p == '\'')
            buf_adds(out, "'\\''");
        else
            buf_addc(out, *p);
    }
    buf_addc(out, '\'');
}

void shell_join(struct buf *out, const char *const *argv)
{
    size_t i;

    for (i = 0; argv[i] != NULL; i++) {
        if (i > 0)
            buf_addc(out, ' ');
        shell_quote(out, argv[i]);
    }
}

void shell_cmdf(struct buf *out, const char *fmt, ...)
{
    va_list ap;
    const char *p;

    va_start(ap, fmt);
    for (p = fmt; *p != '\0'; p++) {
        if (*p != '%') {
            buf_addc(out, *p);
            continue;
        }
        switch (*++p) {
        case 's':
            shell_quote(out, va_arg(ap, const char *));
            break;
        case 'd':
            buf_addf(out, "%d", va_arg(ap, int));
            break;
        case 'u':
            buf_addf(out, "%u", va_arg(ap, unsigned));
            break;
        case 'o':
            buf_addf(out, "%o", va_arg(ap, unsigned));
            break;
        case '%':
            buf_addc(out, '%');
            break;
        default:
            fatal("shell_cmdf: unknown conversion %%%c in \"%s\"", *p, fmt);
        }
    }
    va_end(ap);
}
