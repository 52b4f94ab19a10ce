/*
 * The event bus: named events with a JSON payload, a source, a time and a
 * correlation id. Handlers subscribe by exact name ("rollout.step.started"),
 * by prefix ("rollout.*") or to everything ("*"). Delivery is synchronous but
 * never re-entrant: an event emitted from inside a handler is queued and
 * delivered after the current one. A failing handler is reported (counted,
 * its message kept, and a "bus.handler_failed" event emitted), never dropped
 * silently, and never stops delivery to the other handlers.
 */
#ifndef N3_BUS_H
#define N3_BUS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

struct loop;
struct bus;
struct bus_sub;

struct bus_event {
    const char *name;
    const char *source;      /* who emitted it: "executor", "cli", ... */
    const char *correlation; /* ties events of one run / rollout together; may be "" */
    uint64_t time_us;        /* wall clock, from the loop */
    uint64_t seq;            /* 1, 2, 3 ... per bus */
    const cJSON *payload;    /* never NULL: an empty object when none was given */
};

/* Return 0, or -1 with a message in err. */
typedef int (*bus_handler_fn)(const struct bus_event *ev, void *arg, struct err *err);

struct bus *bus_new(struct loop *loop);
void bus_free(struct bus *bus);

/* pattern: "exact.name", "prefix.*" (matches "prefix.x" and "prefix.x.y", not "prefix"), or "*". */
struct bus_sub *bus_subscribe(struct bus *bus, const char *pattern, bus_handler_fn fn, void *arg);
/* Safe to call from inside a handler, including the handler being removed. */
void bus_unsubscribe(struct bus *bus, struct bus_sub *sub);

/* Emit an event; payload (may be NULL) is taken over by the bus. */
void bus_emit(struct bus *bus, const char *name, const char *source, const char *correlation,
              cJSON *payload);

/* Handler failures so far, and the message of the last one ("" if none). */
uint64_t bus_failures(const struct bus *bus);
const char *bus_last_failure(const struct bus *bus);
/* Events delivered so far. */
uint64_t bus_delivered(const struct bus *bus);

#endif
