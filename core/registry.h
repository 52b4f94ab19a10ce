/*
 * A registry of named kinds (the probe, router and metric-source plugins): filled once at
 * start, bounded, looked up by name. Two kinds of one name are a programming error (fatal);
 * registering the same kind again does nothing.
 */
#ifndef N3_REGISTRY_H
#define N3_REGISTRY_H

#include <stddef.h>

#define REGISTRY_MAX 16

struct registry {
    const char *what; /* "probe kind", for the fatal messages */
    const void *items[REGISTRY_MAX];
    const char *names[REGISTRY_MAX + 1]; /* NULL-terminated, in the order registered */
    size_t n;
};

#define REGISTRY_INIT(what_)                                                                       \
    {                                                                                              \
        .what = (what_)                                                                            \
    }

void registry_add(struct registry *r, const void *item, const char *name);
/* The names, ", "-separated, into out (cut to len). */
void registry_list(const struct registry *r, char *out, size_t len);
/* The kind of that name, or NULL. */
const void *registry_find(const struct registry *r, const char *name);

#endif
