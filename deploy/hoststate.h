/*
 * Host state: what a target runs, in <deploy_path>/.n3/state.json (written atomically). It
 * lists the releases there, the slots (blue, green) and their versions, the live slot, the
 * rollback target, and a bounded history. The truth is on disk: when the file is missing or
 * cannot be read, it is rebuilt from the releases, the slot links and the current link
 * (hoststate_probe_command lists them).
 *
 * {"version": 1, "target": "web1", "updated": "2026-11-27T07:01:02Z",
 *  "releases": [{"version": "v1.2.3", "commit": "...", "sha256": "...",
 *                "pushed": "2026-...Z", "by": "alice@laptop"}],
 *  "slots": {"blue": {"version": "v1.2.3", "port": 8001}, "green": null},
 *  "live": "blue", "previous": {"slot": "green", "version": "v1.2.2"},
 *  "history": [{"time": "...", "action": "release.push", "version": "v1.2.3", "by": "..."}]}
 */
#ifndef N3_HOSTSTATE_H
#define N3_HOSTSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct buf;
struct cJSON;
struct hoststate;

#define HOSTSTATE_FILE        ".n3/state.json"
#define HOSTSTATE_MAX_BYTES   (1024 * 1024)
#define HOSTSTATE_HISTORY_MAX 100

enum hs_slot { HS_BLUE, HS_GREEN, HS_NSLOTS };

/* Releases a state holds at most (state.json or the disk): more is not a deploy path n3ctl
 * made, and the rest is not read (keeps a hostile file from costing minutes). */
#define HS_RELEASES_MAX 1000

struct hs_release {
    const char *version;
    const char *commit; /* "" when unknown (rebuilt from a release without REVISION) */
    const char *sha256; /* "" when unknown */
    const char *pushed; /* ISO time, "" when unknown */
    const char *by;
};

struct hoststate *hoststate_new(const char *target);
void hoststate_free(struct hoststate *s);

/* Parse state.json. -1 with a reason when it is not a state file (the caller rebuilds). */
int hoststate_parse(const char *target, const char *text, size_t len, struct hoststate **out,
                    struct err *err);
/* The JSON text of the state (pretty, stable key order), with "updated" set to now. */
char *hoststate_format(const struct hoststate *s, int64_t now);

/* What is read of a release's REVISION on a target, at most (its first bytes); a longer one is
 * not n3ctl's, and is said to be cut. */
#define HOSTSTATE_REVISION_MAX 4096

/* A command that lists what is in deploy_path, for hoststate_from_probe: each release with the
 * commit and sha256 of its REVISION (a bounded prefix of it). */
void hoststate_probe_command(const char *deploy_path, struct buf *out);
/* Rebuild the state from the probe's output. Names that are not valid versions are skipped
 * (warned about in *warnings when not NULL, caller frees). */
struct hoststate *hoststate_from_probe(const char *target, const char *text, char **warnings);
/* Make s's releases and links what is on disk (from the probe), saying what changed in warn;
 * s remembers it, for hoststate_drift. */
void hoststate_reconcile(struct hoststate *s, const struct hoststate *disk, struct buf *warn);
/* How many changes reconciling made to s (0: it matched the disk); with detail not NULL, they
 * are added to it: "added" and "removed" (release names), and "links" when one was taken from
 * the disk ("slots/blue -> releases/v1.2.3", "current -> slots/green"). */
size_t hoststate_drift(const struct hoststate *s, struct cJSON *detail);

size_t hoststate_nreleases(const struct hoststate *s);
const struct hs_release *hoststate_release(const struct hoststate *s, size_t i);
const struct hs_release *hoststate_find(const struct hoststate *s, const char *version);
/* Add or replace a release. */
void hoststate_add_release(struct hoststate *s, const struct hs_release *r);
void hoststate_remove_release(struct hoststate *s, const char *version);

const char *hoststate_slot_version(const struct hoststate *s, enum hs_slot slot); /* or NULL */
int hoststate_slot_port(const struct hoststate *s, enum hs_slot slot);            /* or 0 */
void hoststate_set_slot(struct hoststate *s, enum hs_slot slot, const char *version, int port);
bool hoststate_live(const struct hoststate *s, enum hs_slot *slot);
/* current points to slots/<slot> now. */
void hoststate_set_live(struct hoststate *s, enum hs_slot slot);
const char *hoststate_previous_version(const struct hoststate *s); /* the rollback target */
const char *hs_slot_name(enum hs_slot slot);

void hoststate_add_history(struct hoststate *s, int64_t time, const char *action,
                           const char *version, const char *by);

/* Versions a prune must not remove: those in a slot, the one `current` points to, and the
 * rollback target. */
bool hoststate_in_use(const struct hoststate *s, const char *version);
/* A slot or current link on disk that is not a release (a prune must not guess). */
bool hoststate_links_unreadable(const struct hoststate *s);

/* "2026-11-27T07:01:02Z" */
void hoststate_iso_time(int64_t t, char out[32]);

#endif
