/*
 * Deadlines of the sample app's connections (header and idle timeouts, the latency fault, the
 * lingering close): a binary min-heap of items embedded in what they time, so the loop finds
 * the next one in O(1) and moves one in O(log n), whatever the number of connections.
 */
#ifndef N3APP_DEADLINE_H
#define N3APP_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

#define DEADLINE_NONE SIZE_MAX

struct deadline_item {
    int64_t when; /* monotonic milliseconds */
    size_t index; /* in the heap, or DEADLINE_NONE */
};

struct deadline_heap {
    struct deadline_item **items;
    size_t len, cap;
};

void deadline_heap_init(struct deadline_heap *h);
void deadline_heap_done(struct deadline_heap *h); /* the items are the caller's */
void deadline_item_init(struct deadline_item *it);
/* Set (or move) it to when. */
void deadline_set(struct deadline_heap *h, struct deadline_item *it, int64_t when);
/* Take it out; nothing when it is not in. */
void deadline_clear(struct deadline_heap *h, struct deadline_item *it);
/* The earliest, or NULL. */
struct deadline_item *deadline_first(const struct deadline_heap *h);

#endif
