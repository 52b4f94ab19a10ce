/* Traffic routers: the registry of kinds, and what every kind shares. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/registry.h"
#include "core/xalloc.h"
#include "deploy/router.h"

static struct registry kinds = REGISTRY_INIT("router kind");

void router_kind_register(const struct router_kind *k)
{
    registry_add(&kinds, k, k->name);
}

const struct router_kind *router_kind_find(const char *name)
{
    return registry_find(&kinds, name);
}

const char *const *router_kind_names(void)
{
    return kinds.names;
}

void router_server_name(const char *tmpl, const char *target, enum hs_slot slot, char *out,
                        size_t len)
{
    const char *p;
    size_t n = 0;

    if (tmpl == NULL)
        tmpl = "{target}_{slot}";
    for (p = tmpl; *p != '\0' && n + 1 < len; p++) {
        const char *value = NULL;
        size_t skip = 0, vlen;

        if (strncmp(p, "{target}", 8) == 0) {
            value = target;
            skip = 8;
        } else if (strncmp(p, "{slot}", 6) == 0) {
            value = hs_slot_name(slot);
            skip = 6;
        }
        if (value == NULL) {
            out[n++] = *p;
            continue;
        }
        vlen = strlen(value);
        if (vlen > len - 1 - n)
            vlen = len - 1 - n;
        memcpy(out + n, value, vlen);
        n += vlen;
        p += skip - 1;
    }
    out[n] = '\0';
}

struct router_view *router_view_dup(const struct router_view *v)
{
    struct router_view *c = xcalloc(1, sizeof *c);

    c->n = v->n;
    c->servers = xcalloc(v->n + 1, sizeof *c->servers);
    memcpy(c->servers, v->servers, v->n * sizeof *c->servers);
    return c;
}

void router_view_free(struct router_view *v)
{
    if (v == NULL)
        return;
    free(v->servers);
    free(v);
}
