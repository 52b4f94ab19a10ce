/* The targets a command works on: n3.json, one of its environments, selectors. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/fleet.h"
#include "cli/term.h"
#include "core/err.h"

int fleet_args_take(struct fleet_args *a, const struct cli_cmd *cmd, int opt, const char *arg)
{
    switch (opt) {
    case 'c':
        a->config = arg;
        return 1;
    case 'e':
        a->env = arg;
        return 1;
    case 'H':
        if (a->nsel == FLEET_MAX_SELECTORS) {
            cli_usage_error(cmd, "at most %d -H options", FLEET_MAX_SELECTORS);
            return -1;
        }
        a->selectors[a->nsel++] = arg;
        a->selectors[a->nsel] = NULL;
        return 1;
    default:
        return 0;
    }
}

void fleet_notice(void *arg, const char *msg)
{
    char shown[ERR_MSG_MAX];

    (void)arg;
    /* Over a status line, when one is drawn: it is drawn again on its next tick. */
    fprintf(stderr, "%sn3ctl: warning: %s\n", term_is_tty(stderr) ? "\r\033[K" : "",
            term_shown(shown, sizeof shown, msg));
}
