/* The targets a command works on: n3.json, one of its environments, selectors. */
#ifndef N3_FLEET_H
#define N3_FLEET_H

#include <stddef.h>

#include "core/err.h"

struct inventory;
struct inv_env;

#define FLEET_MAX_SELECTORS 64

/* The options every command on targets takes: -c FILE, -e ENV, -H SELECTOR (repeated). */
struct fleet_args {
    const char *config;
    const char *env;
    const char *selectors[FLEET_MAX_SELECTORS + 1]; /* NULL-terminated */
    unsigned nsel;
};

struct cli_cmd;

/* Take opt if it is one of those: 1 taken, 0 not one of them, -1 a usage error (printed). */
int fleet_args_take(struct fleet_args *a, const struct cli_cmd *cmd, int opt, const char *arg);

struct fleet {
    struct inventory *inv;
    const struct inv_env *env;
    char **names; /* the selected targets, NULL-terminated */
    size_t n;
};

/* Load config (NULL: find n3.json), pick env (NULL: the default), select targets
 * (selectors NULL-terminated; NULL or empty: all). 0, or -1 with err. */
int fleet_open(struct fleet *f, const char *config, const char *env, const char *const *selectors,
               struct err *err);
void fleet_close(struct fleet *f);

/* A transport's notice about a target (remote_opts.notice): a warning on stderr. */
void fleet_notice(void *arg, const char *msg);

#endif
