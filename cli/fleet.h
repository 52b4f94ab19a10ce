/* The targets a command works on: n3.json, one of its environments, selectors. */
#ifndef N3_CLI_FLEET_H
#define N3_CLI_FLEET_H

#include <stddef.h>

#include "core/err.h"
#include "deploy/fleet.h"

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

/* A transport's notice about a target (remote_opts.notice): a warning on stderr. */
void fleet_notice(void *arg, const char *msg);

#endif
