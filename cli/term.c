/* What the terminal can do. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/term.h"
#include "core/buf.h"

bool term_is_tty(FILE *f)
{
    return isatty(fileno(f)) == 1;
}

unsigned term_width(FILE *f)
{
    struct winsize ws;

    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

unsigned term_height(FILE *f)
{
    struct winsize ws;

    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
        return ws.ws_row;
    return 24;
}

bool term_color(FILE *f)
{
    const char *term = getenv("TERM");
    const char *no = getenv("NO_COLOR");

    if (no != NULL && no[0] != '\0')
        return false;
    if (term == NULL || strcmp(term, "dumb") == 0)
        return false;
    return term_is_tty(f);
}

const char *term_sgr(bool on, const char *seq)
{
    return on ? seq : "";
}

void term_add_shown(struct buf *b, const char *s, size_t max)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; s[i] != '\0' && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == 0xc2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f) {
            buf_addc(b, '?');
            i++;
        } else {
            buf_addc(b, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
        }
    }
    if (s[i] != '\0')
        buf_adds(b, "...");
}

const char *term_shown(char *out, size_t len, const char *s)
{
    struct buf b;

    if (len == 0)
        return out;
    buf_init(&b);
    term_add_shown(&b, s, len - 1);
    if (b.len >= len) /* the "..." of a cut: cut the same way as the text */
        buf_truncate(&b, len - 1);
    memcpy(out, b.data, b.len + 1);
    buf_done(&b);
    return out;
}
