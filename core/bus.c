/* The event bus: synchronous, non-re-entrant delivery of named events to pattern subscribers. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/loop.h"
#include "core/xalloc.h"

#define BUS_FAILED_EVENT "bus.handler_failed"

struct bus_sub {
    char *pattern;
    bus_handler_fn fn;
    void *arg;
    uint64_t id;  /* order of subscription: an event goes only to subs older than it */
    bool removed; /* unsubscribed during delivery; freed once the event is done */
    struct bus_sub *next;
};

struct bus_item {
    struct bus_event ev;
    char *name, *source, *correlation;
    cJSON *payload;
    uint64_t last_sub_id; /* newest subscription when delivery of this event began */
    struct bus_item *next;
};

struct bus {
    struct loop *loop;
    struct bus_sub *subs, **subs_tail;
    uint64_t next_sub_id;
    bool dirty; /* some sub is marked removed and waits to be freed */
    struct bus_item *queue, **queue_tail;
    bool delivering;
    uint64_t seq;
    uint64_t failures;
    uint64_t delivered;
    char last_failure[ERR_MSG_MAX];
};

struct bus *bus_new(struct loop *loop)
{
    struct bus *bus = xcalloc(1, sizeof *bus);

    bus->loop = loop;
    bus->subs_tail = &bus->subs;
    bus->queue_tail = &bus->queue;
    bus->next_sub_id = 1;
    return bus;
}

static void bus_item_free(struct bus_item *item)
{
    free(item->name);
    free(item->source);
    free(item->correlation);
    cJSON_Delete(item->payload);
    free(item);
}

static void bus_sub_free(struct bus_sub *sub)
{
    free(sub->pattern);
    free(sub);
}

void bus_free(struct bus *bus)
{
    struct bus_sub *sub, *snext;
    struct bus_item *item, *inext;

    if (bus == NULL)
        return;
    if (bus->delivering)
        fatal("bus_free called from inside a bus handler");
    for (sub = bus->subs; sub != NULL; sub = snext) {
        snext = sub->next;
        bus_sub_free(sub);
    }
    for (item = bus->queue; item != NULL; item = inext) {
        inext = item->next;
        bus_item_free(item);
    }
    free(bus);
}

struct bus_sub *bus_subscribe(struct bus *bus, const char *pattern, bus_handler_fn fn, void *arg)
{
    struct bus_sub *sub;

    if (pattern == NULL || *pattern == '\0' || fn == NULL)
        fatal("bus_subscribe: empty pattern or handler");
    sub = xcalloc(1, sizeof *sub);
    sub->pattern = xstrdup(pattern);
    sub->fn = fn;
    sub->arg = arg;
    sub->id = bus->next_sub_id++;
    *bus->subs_tail = sub;
    bus->subs_tail = &sub->next;
    return sub;
}

static void bus_unlink(struct bus *bus, struct bus_sub *sub)
{
    struct bus_sub **pp;

    for (pp = &bus->subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            if (bus->subs_tail == &sub->next)
                bus->subs_tail = pp;
            bus_sub_free(sub);
            return;
        }
    }
    fatal("bus_unsubscribe: not a subscription of this bus");
}

void bus_unsubscribe(struct bus *bus, struct bus_sub *sub)
{
    if (sub == NULL)
        return;
    /* The delivery loop may hold this sub (or its successor) right now: only mark it. */
    if (bus->delivering) {
        sub->removed = true;
        bus->dirty = true;
        return;
    }
    bus_unlink(bus, sub);
}

static void bus_sweep(struct bus *bus)
{
    struct bus_sub **pp = &bus->subs, *sub;

    if (!bus->dirty)
        return;
    bus->dirty = false;
    while ((sub = *pp) != NULL) {
        if (sub->removed) {
            *pp = sub->next;
            bus_sub_free(sub);
        } else {
            pp = &sub->next;
        }
    }
    bus->subs_tail = pp;
}

static bool bus_match(const char *pattern, const char *name)
{
    size_t plen = strlen(pattern);

    if (strcmp(pattern, "*") == 0)
        return true;
    /* "prefix.*" needs something after "prefix.": not "prefix" alone, not "prefixx.y". */
    if (plen >= 2 && pattern[plen - 1] == '*' && pattern[plen - 2] == '.')
        return strncmp(pattern, name, plen - 1) == 0 && name[plen - 1] != '\0';
    return strcmp(pattern, name) == 0;
}

static void bus_enqueue(struct bus *bus, const char *name, const char *source,
                        const char *correlation, cJSON *payload)
{
    struct bus_item *item = xcalloc(1, sizeof *item);

    item->name = xstrdup(name);
    item->source = xstrdup(source != NULL ? source : "");
    item->correlation = xstrdup(correlation != NULL ? correlation : "");
    item->payload = payload != NULL ? payload : cJSON_CreateObject();
    if (item->payload == NULL)
        fatal("bus_emit: out of memory");
    item->ev.name = item->name;
    item->ev.source = item->source;
    item->ev.correlation = item->correlation;
    item->ev.time_us = loop_wall_us(bus->loop);
    item->ev.seq = ++bus->seq;
    item->ev.payload = item->payload;
    *bus->queue_tail = item;
    bus->queue_tail = &item->next;
}

static void bus_report_failure(struct bus *bus, const struct bus_event *ev,
                               const struct bus_sub *sub, const char *msg)
{
    cJSON *payload;

    bus->failures++;
    snprintf(bus->last_failure, sizeof bus->last_failure, "%s", msg);
    /* A handler failing on the failure report itself is counted but not reported again:
     * a handler on "*" that always fails would otherwise loop forever. */
    if (strcmp(ev->name, BUS_FAILED_EVENT) == 0)
        return;
    payload = cJSON_CreateObject();
    if (payload == NULL || cJSON_AddStringToObject(payload, "event", ev->name) == NULL ||
        cJSON_AddStringToObject(payload, "pattern", sub->pattern) == NULL ||
        cJSON_AddStringToObject(payload, "error", msg) == NULL)
        fatal("bus: out of memory");
    bus_enqueue(bus, BUS_FAILED_EVENT, "bus", ev->correlation, payload);
}

static void bus_deliver(struct bus *bus, struct bus_item *item)
{
    struct bus_sub *sub;

    for (sub = bus->subs; sub != NULL; sub = sub->next) {
        struct err err;

        if (sub->id > item->last_sub_id)
            break; /* subscribed while this event was being delivered */
        if (sub->removed || !bus_match(sub->pattern, item->ev.name))
            continue;
        err_clear(&err);
        if (sub->fn(&item->ev, sub->arg, &err) != 0) {
            bus_report_failure(bus, &item->ev, sub,
                               err.msg[0] != '\0' ? err.msg : "handler failed without a message");
        }
    }
    bus->delivered++;
}

void bus_emit(struct bus *bus, const char *name, const char *source, const char *correlation,
              cJSON *payload)
{
    struct bus_item *item;

    if (name == NULL || *name == '\0')
        fatal("bus_emit: event without a name");
    bus_enqueue(bus, name, source, correlation, payload);
    /* Emitted from inside a handler: the outer bus_emit delivers it after the current event. */
    if (bus->delivering)
        return;
    bus->delivering = true;
    while ((item = bus->queue) != NULL) {
        bus->queue = item->next;
        if (bus->queue == NULL)
            bus->queue_tail = &bus->queue;
        item->last_sub_id = bus->next_sub_id - 1;
        bus_deliver(bus, item);
        bus_item_free(item);
    }
    bus->delivering = false;
    bus_sweep(bus);
}

uint64_t bus_failures(const struct bus *bus)
{
    return bus->failures;
}

const char *bus_last_failure(const struct bus *bus)
{
    return bus->last_failure;
}

uint64_t bus_delivered(const struct bus *bus)
{
    return bus->delivered;
}
