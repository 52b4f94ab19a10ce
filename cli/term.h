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

/* SGR sequences, or "" when colours are off. */
const char *term_sgr(bool on, const char *seq);
#define TERM_RED    "\033[31m"
#define TERM_GREEN  "\033[32m"
#define TERM_YELLOW "\033[33m"
#define TERM_BOLD   "\033[1m"
#define TERM_DIM    "\033[2m"
#define TERM_RESET  "\033[0m"

#endif
