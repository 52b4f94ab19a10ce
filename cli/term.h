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
struct cJSON;

/*
 * Text from outside (a target's output and facts, a repository's tags and commits, an audit
 * record, a lock's holder, a hook's output, an error that quotes any of them) goes to a terminal
 * through these functions, and only through them. What a terminal would act on is shown as '?':
 * C0 controls (ESC among them), DEL, C1 controls both as raw bytes (0x9b is CSI to a terminal
 * that is not in UTF-8 mode) and written as UTF-8 (U+0080 to U+009F), and every byte that is
 * not valid UTF-8. So no escape sequence, and no half of a character, gets through.
 *
 * Lengths are in display columns (a CJK character takes two), and a cut is made after the text
 * is made safe, between whole characters: never inside an escape or a UTF-8 sequence.
 */

/* One line: a newline or a tab is '?' too. At most max columns of s, then "..." when it was
 * longer. Returns the columns appended. */
size_t term_add_shown(struct buf *b, const char *s, size_t max);
/* One line in at most width columns, "..." included when cut. Returns the columns appended. */
size_t term_add_fit(struct buf *b, const char *s, size_t width);
/* A table cell: term_add_fit, then spaces up to width columns. */
void term_add_cell(struct buf *b, const char *s, size_t width);
/* Several lines (len bytes, NUL bytes included): newlines and tabs are kept. */
void term_add_text(struct buf *b, const char *s, size_t len);
/* One line into out (len bytes, NUL included), cut between characters, "..." when cut. */
const char *term_shown(char *out, size_t len, const char *s);
/* fprintf whose whole result is shown as term_add_text: for messages that quote outside text
 * (an error with a target's stderr). Never for text with our own colours. */
void term_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A target's output for `n3ctl exec` on a terminal (without --raw): passed as it is, but for
 * what would move the cursor, clear the screen, set the title or write the clipboard. Escape
 * sequences other than SGR (colours and text attributes: ESC [ digits ; : m), and every C0
 * control but a tab (and a CR that ends the line), DEL and the C1 controls, raw or as UTF-8,
 * are shown escaped: "^[" for ESC, "^M" for CR (caret notation), "\x9b" for a raw C1 byte,
 * "\u009b" for one written as UTF-8. Other bytes that are not UTF-8 pass (text in another
 * encoding). Returns true when an SGR sequence passed: the line should end with a reset, so
 * its colours do not run into the next target's lines.
 */
bool term_add_output(struct buf *b, const char *s, size_t len);

/* A JSON document on f, one line at the end: invalid UTF-8 from outside made U+FFFD, and DEL
 * and the C1 controls written as \u escapes (cJSON writes them raw), so that the document is
 * valid JSON and safe on a terminal. */
void term_put_json(FILE *f, const struct cJSON *doc);
/* The same on one line, with nothing between the tokens (JSON lines: a document a line). */
void term_put_json_line(FILE *f, const struct cJSON *doc);

/* SGR sequences, or "" when colours are off. */
const char *term_sgr(bool on, const char *seq);
#define TERM_RED    "\033[31m"
#define TERM_GREEN  "\033[32m"
#define TERM_YELLOW "\033[33m"
#define TERM_BOLD   "\033[1m"
#define TERM_DIM    "\033[2m"
#define TERM_RESET  "\033[0m"

#endif
