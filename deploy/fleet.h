/* The targets an operation works on: n3.json, one of its environments, the selected targets. */
#ifndef N3_FLEET_H
#define N3_FLEET_H

#include <stddef.h>

#include "core/err.h"

struct inventory;
struct inv_env;

struct fleet {
    struct inventory *inv;
    const struct inv_env *env;
    char **names; /* the selected targets, each once, in the order selected; NULL-terminated */
    size_t n;
};

/* Load config (NULL: find n3.json), pick env (NULL: the default), select targets
 * (selectors NULL-terminated; NULL or empty: all). 0, or -1 with err. */
int fleet_open(struct fleet *f, const char *config, const char *env, const char *const *selectors,
               struct err *err);
void fleet_close(struct fleet *f);

#endif
