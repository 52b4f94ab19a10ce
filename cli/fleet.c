/* The targets a command works on: n3.json, one of its environments, selectors. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/fleet.h"
#include "cli/term.h"
#include "core/err.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"

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

int fleet_open(struct fleet *f, const char *config, const char *env, const char *const *selectors,
               struct err *err)
{
    static const char *const all[] = {"all", NULL};
    size_t i, j, k;

    memset(f, 0, sizeof *f);
    if (inventory_load(config, &f->inv, err) != 0)
        return -1;
    if (inventory_env(f->inv, env, &f->env, err) != 0)
        goto fail;
    if (selectors == NULL || selectors[0] == NULL)
        selectors = all;
    for (i = 0; selectors[i] != NULL; i++) {
        if (inv_env_select((void *)f->env, selectors[i], &f->names, &f->n, err) != 0)
            goto fail;
    }
    /* Each target once, in the order selected. */
    for (i = k = 0; i < f->n; i++) {
        for (j = 0; j < k && strcmp(f->names[j], f->names[i]) != 0; j++)
            ;
        if (j < k)
            free(f->names[i]);
        else
            f->names[k++] = f->names[i];
    }
    f->n = k;
    f->names[k] = NULL;
    return 0;
fail:
    fleet_close(f);
    return -1;
}

void fleet_close(struct fleet *f)
{
    size_t i;

    for (i = 0; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    inventory_free(f->inv);
    memset(f, 0, sizeof *f);
}

void fleet_notice(void *arg, const char *msg)
{
    char shown[ERR_MSG_MAX];

    (void)arg;
    /* Over a status line, when one is drawn: it is drawn again on its next tick. */
    fprintf(stderr, "%sn3ctl: warning: %s\n", term_is_tty(stderr) ? "\r\033[K" : "",
            term_shown(shown, sizeof shown, msg));
}
