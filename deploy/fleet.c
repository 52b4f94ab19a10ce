/* The targets an operation works on. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "deploy/fleet.h"
#include "deploy/inventory.h"

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
