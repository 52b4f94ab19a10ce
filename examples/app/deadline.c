/* A min-heap of deadlines (see deadline.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>

#include "deadline.h"

void deadline_heap_init(struct deadline_heap *h)
{
    h->items = NULL;
    h->len = h->cap = 0;
}

void deadline_heap_done(struct deadline_heap *h)
{
    size_t i;

    for (i = 0; i < h->len; i++)
        h->items[i]->index = DEADLINE_NONE;
    free(h->items);
    deadline_heap_init(h);
}

void deadline_item_init(struct deadline_item *it)
{
    it->when = 0;
    it->index = DEADLINE_NONE;
}

static void place(struct deadline_heap *h, size_t i, struct deadline_item *it)
{
    h->items[i] = it;
    it->index = i;
}

static void sift_up(struct deadline_heap *h, size_t i)
{
    struct deadline_item *it = h->items[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->when <= it->when)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, it);
}

static void sift_down(struct deadline_heap *h, size_t i)
{
    struct deadline_item *it = h->items[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->items[c + 1]->when < h->items[c]->when)
            c++;
        if (it->when <= h->items[c]->when)
            break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, it);
}

void deadline_set(struct deadline_heap *h, struct deadline_item *it, int64_t when)
{
    if (it->index == DEADLINE_NONE) {
        if (h->len == h->cap) {
            size_t cap = h->cap == 0 ? 64 : h->cap * 2;
            struct deadline_item **items = realloc(h->items, cap * sizeof *items);
            if (items == NULL) {
                fputs("n3app: out of memory\n", stderr);
                abort();
            }
            h->items = items;
            h->cap = cap;
        }
        it->when = when;
        place(h, h->len++, it);
        sift_up(h, it->index);
        return;
    }
    if (when < it->when) {
        it->when = when;
        sift_up(h, it->index);
    } else if (when > it->when) {
        it->when = when;
        sift_down(h, it->index);
    }
}

void deadline_clear(struct deadline_heap *h, struct deadline_item *it)
{
    size_t i = it->index;
    struct deadline_item *last;

    if (i == DEADLINE_NONE)
        return;
    it->index = DEADLINE_NONE;
    last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && h->items[(i - 1) / 2]->when > last->when)
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct deadline_item *deadline_first(const struct deadline_heap *h)
{
    return h->len > 0 ? h->items[0] : NULL;
}
