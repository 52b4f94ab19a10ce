/*
 * Commands that change targets: a session (deploy/session.h: the fleet, the deploy lock, the
 * audit record) with the command line's side of it: its messages on stderr, the stop signals,
 * the exit codes.
 */
#ifndef N3_CHANGE_H
#define N3_CHANGE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "cli/fleet.h"
#include "deploy/session.h"

struct stop;

struct change {
    struct session s;
    struct stop *stop; /* the stop signals */
    int signals;       /* how many arrived */
};

/* Open the fleet and a loop (no lock): for commands that read. 0, or an exit status. */
int change_open(struct change *c, const struct fleet_args *fa, const char *action);
/* change_open, then take the lock for message. 0, or an exit status (2 config, 3 held). */
int change_begin(struct change *c, const struct fleet_args *fa, const char *action,
                 const char *message);
/* Take the lock for a change opened with change_open. 0, or an exit status (the change is
 * ended then). */
int change_lock(struct change *c, const char *message);
/* Give the lock back, write the local audit record (result "ok", "failed", "partial",
 * "refused"), close everything. Returns rc, or 1 when the lock was lost meanwhile. When the
 * change was abandoned (a second stop signal) the process leaves from here. */
int change_end(struct change *c, int rc, const char *result, const cJSON *detail);

/* Run the loop until *flag is true, or the change is abandoned (a second stop signal). */
void change_wait(struct change *c, const bool *flag);
/* rc, or 130 (128 + the signal) when a stop signal came. */
int change_exit_code(const struct change *c, int rc);

/* The lock was taken from this change while it worked (its commands are refused since). */
bool change_lock_lost(const struct change *c);
/* The holder, as session_describe_holder says it, made safe for a terminal. */
void change_describe_holder(const struct lock_info *h, char *out, size_t len);

/* Write one record to the local audit log; a failure is printed, not fatal. */
void change_audit_local(const char *action, const char *const *targets, const char *result,
                        const cJSON *detail);

/* Build version (or take it from the cache) and push it to the change's targets, its lock
 * held (cmd_release.c): what was done is printed and recorded in the local audit log as
 * release.push. 0, or an exit status. */
int change_push_release(struct change *c, const char *version, unsigned parallel);

#endif
