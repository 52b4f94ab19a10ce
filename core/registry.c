/* A registry of named kinds. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/registry.h"
#include "core/xalloc.h"

void registry_add(struct registry *r, const void *item, const char *name)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        if (r->items[i] == item)
            return;
        if (strcmp(r->names[i], name) == 0)
            fatal("two %ss named \"%s\"", r->what, name);
    }
    if (r->n == REGISTRY_MAX)
        fatal("more than %d %ss", REGISTRY_MAX, r->what);
    r->items[r->n] = item;
    r->names[r->n++] = name;
    r->names[r->n] = NULL;
}

void registry_list(const struct registry *r, char *out, size_t len)
{
    size_t i, used = 0;

    if (len == 0)
        return;
    out[0] = '\0';
    for (i = 0; i < r->n && used < len; i++) {
        int k = snprintf(out + used, len - used, "%s%s", i == 0 ? "" : ", ", r->names[i]);

        if (k < 0)
            break;
        used += (size_t)k;
    }
}

const void *registry_find(const struct registry *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        if (strcmp(r->names[i], name) == 0)
            return r->items[i];
    }
    return NULL;
}
