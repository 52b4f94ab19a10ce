/*
 * A session of changes on an environment's targets, for the commands and the console alike:
 * the fleet and its connections, the environment's deploy lock (with its lease renewed while
 * the session works, and its fence on every selected target's commands), and the record of
 * what was done in the local audit log (the operations write the targets' logs themselves).
 *
 * What the operator should hear (the lock is held by someone, it could not be given back,
 * ...) goes to hooks->say, whole sentences; the front end shows them (made safe for a
 * terminal there: they carry strings from the targets).
 *
 * The session's fields are for reading; only the functions below change them.
 */
#ifndef N3_SESSION_H
#define N3_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "deploy/fleet.h"
#include "deploy/lock.h"

struct loop;
struct remote;

enum session_level { SESSION_INFO, SESSION_WARNING, SESSION_ERROR };

struct session_hooks {
    void (*say)(void *arg, enum session_level level, const char *msg);
    /* A transport's notice about a target (login-shell noise, ...). */
    void (*notice)(void *arg, const char *msg);
    void *arg;
};

struct session {
    struct loop *loop;
    struct fleet fleet;
    struct remote *remote;
    struct dlock *lock;
    char who[LOCK_WHO_MAX];   /* user@host */
    const char *action;       /* for the audit record: "release.push", "traffic.set", ... */
    const char *audit_target; /* the one target a change is about, when not the whole fleet */
    const struct session_hooks *hooks;
    bool abandon; /* set by the front end: stop waiting for what is in flight */
    bool locked;  /* the lock is ours: given back at the end */
    bool adopted; /* working under the operator's own lock, taken by hand */
};

/* Open the fleet (selectors NULL-terminated; NULL: all) and its connections, without the
 * lock (enough for reading). 0, or -1 with err (the session is closed then). */
int session_open(struct session *s, const char *config, const char *env,
                 const char *const *selectors, const char *action,
                 const struct session_hooks *hooks, struct err *err);

enum session_lock_result {
    SESSION_LOCK_OK,        /* taken, or the operator's own (adopted) */
    SESSION_LOCK_REFUSED,   /* someone else holds it, or it cannot be worked under */
    SESSION_LOCK_FAILED,    /* it could not be taken (the lock target unreachable, ...) */
    SESSION_LOCK_ABANDONED, /* the front end abandoned the wait before the answer came */
};

/* Take the environment's lock for message (what the change is), running the loop until the
 * answer. What went wrong has been said; *detail (when not NULL) gets what the audit record
 * should keep of it (the caller deletes it). */
enum session_lock_result session_lock(struct session *s, const char *message, cJSON **detail);

/* Run the loop until *flag, or the session is abandoned. */
void session_wait(struct session *s, const bool *flag);

/* The lock was taken from this session while it worked (its commands are refused since). */
bool session_lock_lost(const struct session *s);

/* Give the lock back (unless it is the operator's own), write the local audit record with
 * result ("ok", "failed", "partial", "refused", "interrupted"; NULL: none) and detail, and
 * close everything, except when abandoned: operations are still in flight then, and the
 * process is expected to leave. Returns rc, or 1 when the lock was lost meanwhile. */
int session_end(struct session *s, int rc, const char *result, const cJSON *detail);
/* session_end in two: the lock and the record, then the rest (for a front end that has its own
 * things on the loop to close in between). */
int session_finish(struct session *s, int rc, const char *result, const cJSON *detail);
void session_close(struct session *s);

/* "alice@laptop (pid 4242) since 2026-11-27 06:50:01 UTC, 12 min ago: upgrading the
 * database" (raw: strings from the lock target as they are). */
void session_describe_holder(const struct lock_info *h, char *out, size_t len);

/* Write one record to the local audit log; 0, or -1 with err. */
int session_audit_local(const char *action, const char *const *targets, const char *result,
                        const cJSON *detail, struct err *err);

#endif
