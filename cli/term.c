/* What the terminal can do. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/term.h"

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
