/* What the terminal can do: is it one, how wide, colours or not. */
#ifndef N3_TERM_H
#define N3_TERM_H

#include <stdbool.h>
#include <stdio.h>

bool term_is_tty(FILE *f);
/* Columns of the terminal behind f, or 80. */
unsigned term_width(FILE *f);
unsigned term_height(FILE *f);
/* Colours on f: a terminal, NO_COLOR unset, TERM not "dumb". */
bool term_color(FILE *f);

struct buf;

/* Text from outside (a target, a repository, a log) for a terminal: control characters, C0,
 * DEL and C1 written as UTF-8 (U+0080 to U+009F, CSI among them: terminals act on them), become
 * '?'. term_add_shown appends at most max bytes of s to b, then "..." if it was longer;
 * term_shown writes s into out (len bytes, cut to fit) and returns out. */
void term_add_shown(struct buf *b, const char *s, size_t max);
const char *term_shown(char *out, size_t len, const char *s);

/* SGR sequences, or "" when colours are off. */
const char *term_sgr(bool on, const char *seq);
#define TERM_RED    "\033[31m"
#define TERM_GREEN  "\033[32m"
#define TERM_YELLOW "\033[33m"
#define TERM_BOLD   "\033[1m"
#define TERM_DIM    "\033[2m"
#define TERM_RESET  "\033[0m"

#endif
