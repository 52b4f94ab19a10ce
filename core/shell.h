/*
 * The one quoting function for shell commands. Every string that goes into a command run
 * by a shell (on this machine or on a target) goes through shell_quote: nothing from a plan,
 * a config, a tag or a host ever reaches a shell unquoted.
 */
#ifndef N3_SHELL_H
#define N3_SHELL_H

#include <stddef.h>

struct buf;

/* Append s as one shell word: 'like this', with ' written as '\''. Any byte is safe. */
void shell_quote(struct buf *out, const char *s);
/* Append each argument quoted, separated by spaces: a command line that runs exactly argv. */
void shell_join(struct buf *out, const char *const *argv);
/* A format for commands: %s takes a string that is quoted, %d an int, %u an unsigned, %o an
 * unsigned in octal (file modes), %% a
 * percent sign; everything else is copied as it is. The literal parts are the programmer's. */
void shell_cmdf(struct buf *out, const char *fmt, ...);

#endif
