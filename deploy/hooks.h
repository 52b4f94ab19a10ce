/*
 * Hooks: the commands of n3.json's "hooks", with their variables filled in. Every value is
 * quoted by the one quoting function, so a version or a path never reaches a shell as code.
 */
#ifndef N3_HOOKS_H
#define N3_HOOKS_H

#include "core/err.h"

struct buf;

struct hook_vars {
    const char *version;
    const char *release_dir;
    /* Instead of release_dir's quoted value: a shell expression written by n3ctl itself (a
     * variable of the command the hook runs in, like "\"$PWD\""), inserted as it is. */
    const char *release_dir_expr;
    const char *slot;
    const char *port;
    const char *target;
};

/* Append tmpl with each {var} replaced by its quoted value and {{ }} by braces. A variable
 * with no value at this point is an error that names the hook and the variable. */
int hook_expand(const char *hook, const char *tmpl, const struct hook_vars *v, struct buf *out,
                struct err *err);

#endif
