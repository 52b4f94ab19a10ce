/*
 * Releases: a version's tree packed reproducibly (deploy/archive.h), cached under
 * $XDG_CACHE_HOME/n3ctl/<app>/, pushed to targets: uploaded, its checksum checked there,
 * unpacked into a temporary directory and renamed to <deploy_path>/releases/<version> (a
 * half-unpacked release is never visible), with REVISION inside; then state.json and the
 * target's audit log. Pushing a release that is there already does nothing more; but a push or
 * prune that finds state.json apart from the disk (a push killed after its rename) first writes
 * the reconciled state and records that on the target (state.reconcile). A target whose audit
 * record could not be written fails: the change there stands, unaudited, and is said.
 *
 * Layout on a target (docs/config.md):
 *   <deploy_path>/releases/<version>/   the release, REVISION inside
 *   <deploy_path>/.n3/incoming/         uploads in flight
 *   <deploy_path>/.n3/state.json        deploy/hoststate.h
 *   <deploy_path>/.n3/audit.log         core/audit.h
 */
#ifndef N3_RELEASE_H
#define N3_RELEASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "deploy/transport.h"

struct loop;
struct inventory;
struct inv_target;
struct transport;
struct hoststate;

struct release_artifact {
    char *version;
    char *path; /* the .tar.gz in the cache */
    char sha256[65];
    uint64_t size;
    uint64_t files;
    char commit[41];
    int64_t time; /* the commit's */
    bool cached;  /* it was in the cache already */
};

/*
 * Build the release of a version (a tag of app.repository): from the cache when it holds the
 * same commit with the right checksum, else packed from the tag's tree, or, with a build hook,
 * from a checkout of it after the hook ran there. Blocking: run it on the thread pool.
 */
enum release_build_stage { RB_CHECKING, RB_CHECKOUT, RB_HOOK, RB_PACKING };

/* Between the build's thread and the one that waits for it. */
struct release_build_ctl {
    atomic_bool cancel; /* set by the waiter: stop */
    atomic_int stage;   /* set by the build: enum release_build_stage */
    atomic_int hook;    /* set by the build: the running build hook's process group, or 0 (a
                         * waiter that gives up kills it: nothing else would) */
};

/* "checking the tag and the cache", "checking out", "running the build hook", "packing" */
const char *release_build_stage_name(int stage);

/* ctl may be NULL. */
int release_build(const struct inventory *inv, const char *version, bool rebuild,
                  struct release_build_ctl *ctl, struct release_artifact *out, struct err *err);
/* release_build's result when the version or the repository named is wrong (the operator's to
 * fix), as opposed to -1, a build that failed. */
#define RELEASE_EUSAGE (-2)
/* release_build's result when ctl->cancel was set: the build hook stopped (TERM, then KILL after
 * RELEASE_HOOK_GRACE_MS, to its process group), nothing written to the cache. */
#define RELEASE_ECANCELED     (-3)
#define RELEASE_HOOK_GRACE_MS 2000
void release_artifact_done(struct release_artifact *a);
/* $XDG_CACHE_HOME/n3ctl/<app> (or ~/.cache/n3ctl/<app>). Caller frees. */
char *release_cache_dir(const struct inventory *inv);

/* What happened on one target. */
enum push_outcome { PUSH_DONE, PUSH_ALREADY, PUSH_FAILED };

struct target_result {
    const char *target;
    enum push_outcome outcome;
    char msg[512];
};

typedef void (*release_done_fn)(void *arg, const struct target_result *r);

struct release_op_ctx {
    struct loop *loop;
    const struct inventory *inv;
    const char *who; /* user@host, for state.json and the audit log */
    /* When not NULL: a push on a target moved to another stage ("reading state", "checking",
     * "uploading", "unpacking", "writing state", "auditing"); arg is the push's. */
    void (*on_stage)(void *arg, const char *stage);
    /* When not NULL: bytes of the release uploaded to the target so far, of total. */
    void (*on_progress)(void *arg, uint64_t sent, uint64_t total);
};

/* Push a built release to one target (its transport). done is called once. */
void release_push_target(const struct release_op_ctx *ctx, struct transport *t,
                         const struct inv_target *target, const struct release_artifact *a,
                         release_done_fn done, void *arg);

/*
 * Remove releases from one target, newest keep (by version) kept, and never one a slot points
 * to, current goes to, or the rollback target. Removed and kept names are in r->msg.
 */
void release_prune_target(const struct release_op_ctx *ctx, struct transport *t,
                          const struct inv_target *target, unsigned keep, bool dry_run,
                          release_done_fn done, void *arg);

/* The target's state: state.json, or rebuilt from disk when missing or unreadable (warning
 * set, caller frees). done gets NULL state with msg on failure. */
typedef void (*hoststate_fn)(void *arg, struct hoststate *s, const char *warning, const char *msg);
void release_read_state(struct transport *t, const struct inv_target *target, hoststate_fn done,
                        void *arg);

/* Write s to the target's state.json, "updated" now (atomically: a temporary file renamed over
 * it). */
void release_write_state(struct transport *t, const struct inv_target *target,
                         const struct hoststate *s, int64_t now, transport_done_fn done, void *arg);

#endif
