/*
 * The journal of a rollout: a crash-safe write-ahead log. Every action is appended and on disk
 * (fdatasync) before it is carried out (an intent), and its result after (an outcome), so a
 * controller killed at any moment finds, on start, exactly what it meant to do and what it knows
 * was done. A copy is kept beside the deploy lock on the lock target (the mirror), appended line
 * by line in the same order, so that another operator's machine can fetch, verify and resume it.
 *
 * Format, version 1 (docs/journal.md is the reference): JSON lines, compact, UTF-8, each line
 * ended by a newline. Line 1 is the header:
 *   {"n3journal":1,"rollout":"ID","environment":"production","created":"2026-11-27T06:50:01.123Z",
 *    "by":"alice@laptop","candidate":"1.4.2","stable":"1.4.1", ...the caller's extra fields}
 * ("stable" is null when the environment runs nothing yet). Then one record a line, keys in this
 * order:
 *   {"seq":1,"time":"2026-11-27T06:50:01.456Z","type":"intent","action":"set_weight",
 *    "data":{"weight":5},"prev":"<sha256 of line 1>"}
 *   {"seq":2,"time":"...","type":"outcome","action":"set_weight","intent":1,
 *    "data":{"ok":true},"prev":"<sha256 of line 2>"}
 * seq counts 1, 2, 3... without gaps (seq N is line N + 1); type is "intent", "outcome",
 * "event" or "state"; action a short name ("set_weight", "start_slot", "analysis", "promote",
 * "abort", ...: 1 to 64 of A-Z a-z 0-9 . _ -); "intent" only in an outcome: the seq of the
 * intent it answers (one outcome an intent); data an object; prev the lowercase hex SHA-256 of
 * the previous line's exact bytes without its newline (the header's, for seq 1): the chain, as
 * in the audit log (core/audit.h). A line is at most JOURNAL_LINE_MAX bytes with its newline, a
 * journal at most JOURNAL_SIZE_MAX bytes.
 *
 * Versions: readers ignore fields they do not know, in the header and in records, so fields can
 * be added within a version; a header whose "n3journal" is not 1 is refused with a message that
 * names both versions. A new type, or any change in what a known field means, is a new version.
 *
 * Files: DIR/ID.jsonl (0600, in DIR 0700); a torn last line cut off on open goes to
 * DIR/ID.jsonl.torn. A journal open for appending is held with flock(LOCK_EX) on its file: a
 * second process that opens it for appending is refused until the first closes it (or dies).
 */
#ifndef N3_JOURNAL_H
#define N3_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

struct journal;
struct journal_mirror;
struct loop;
struct transport;

#define JOURNAL_VERSION  1
#define JOURNAL_LINE_MAX (64 * 1024)        /* bytes of one line, its newline included */
#define JOURNAL_SIZE_MAX (64 * 1024 * 1024) /* bytes of a whole journal */
#define JOURNAL_ID_MAX   64
#define JOURNAL_SUFFIX   ".jsonl"

enum journal_type {
    JOURNAL_ANY = 0, /* journal_last: a record of any type */
    JOURNAL_INTENT,  /* about to do something: written before it is done */
    JOURNAL_OUTCOME, /* what came of an intent (its seq in "intent") */
    JOURNAL_EVENT,   /* something that happened (a verdict, a deadline passed, a torn line cut) */
    JOURNAL_STATE,   /* the rollout's state as a whole, for a quick resume */
};

/* "intent", "outcome", "event", "state" ("any" for JOURNAL_ANY). */
const char *journal_type_name(enum journal_type type);

/* Is id a rollout id: 1 to JOURNAL_ID_MAX of A-Z a-z 0-9 . _ -, not starting with '.' or '-'
 * (so never "." or "..", a hidden file or an option), it names a file and a remote path. */
bool journal_id_ok(const char *id);

/*
 * Create DIR/ID.jsonl, exclusively (an existing journal is refused: resume it with journal_open),
 * making DIR 0700 (and missing levels) when needed; write the header and fsync it and DIR.
 * header holds "environment" and "candidate" (non-empty strings), "stable" (a string, or null or
 * missing: none), optionally "by" (a string; default user@host, as the deploy lock says it) and
 * "created" (a time as written above; default now), and any extra fields (written after those,
 * in their order, cleaned as data is); "n3journal" and "rollout" are the journal's and refused.
 * 0 with *out (open for appending), or -1 with err and nothing left on disk.
 */
int journal_create(const char *dir, const char *id, const cJSON *header, struct journal **out,
                   struct err *err);

/*
 * Open an existing journal for appending (to resume): lock it, read it all and verify it: the
 * header and its version, every record's fields, seq 1, 2, 3... and the chain. A last line that
 * is torn (no newline at its end, or not JSON: a write cut short by a crash) is cut off, after
 * its bytes were appended to PATH.torn (followed by a newline when they had none) and synced:
 * then 1, with a warning in err saying how many bytes after which seq, and journal_torn says
 * how many. 0 when all was well. -1 with err naming the line when anything else is wrong (a line
 * changed or removed, a bad field, a different version, the header torn): nothing is appended to
 * such a journal, and nothing in it was changed.
 */
int journal_open(const char *path, struct journal **out, struct err *err);

/*
 * Append a record and return once it is on disk (write(2) whole, then fdatasync): 0 with *seq
 * (may be NULL). intent: for JOURNAL_OUTCOME the seq of an intent of this journal that has no
 * outcome yet, else 0. data: an object (NULL: {}), copied as one line of valid UTF-8 (invalid
 * bytes become U+FFFD; raw JSON and nesting deeper than 32 refused). Refused, with nothing
 * written: a line over JOURNAL_LINE_MAX, a journal that would grow over JOURNAL_SIZE_MAX, a
 * read-only journal, bad arguments. A write or sync that fails is undone (the file cut back to
 * its old size) and err says so; if even that fails, the journal refuses further appends until
 * it is opened again (which cuts the torn line off).
 */
int journal_append(struct journal *j, enum journal_type type, const char *action, uint64_t intent,
                   const cJSON *data, uint64_t *seq, struct err *err);

/* Take record times from loop's wall clock (a fake clock in tests); default: the real one. */
void journal_set_clock(struct journal *j, struct loop *loop);

/* Close (unlock) and free; records and the header are gone with it. A mirror still bound to it
 * fails the appends it has not sent yet (their done is called, from the loop). NULL is fine. */
void journal_close(struct journal *j);

/* Read-only journals: parse and verify text as journal_open does, but cut nothing: a torn last
 * line is left out (1, with a warning in err; journal_torn says how many bytes). name is for
 * messages ("web1:/srv/app/.n3/rollouts/ID.jsonl"). */
int journal_parse(const char *name, const char *text, size_t len, struct journal **out,
                  struct err *err);
bool journal_readonly(const struct journal *j);

/* Make a fetched (read-only) journal this machine's, to resume it: its bytes (without a torn
 * line) written to DIR/ID.jsonl exclusively and synced, then opened as journal_open does. */
int journal_adopt(const struct journal *fetched, const char *dir, struct journal **out,
                  struct err *err);

/* Accessors. Records are cJSON objects owned by the journal, valid until it is closed. */
const char *journal_path(const struct journal *j); /* the file, or the name a parse was given */
const char *journal_id(const struct journal *j);   /* the header's "rollout" */
const cJSON *journal_header(const struct journal *j);
uint64_t journal_count(const struct journal *j); /* records (the last seq) */
/* The record with this seq (1 .. journal_count), or NULL: for (s = 1; s <= count; s++). */
const cJSON *journal_record(const struct journal *j, uint64_t seq);
/* The last record of a type (JOURNAL_ANY: any) and action (NULL: any), or NULL. */
const cJSON *journal_last(const struct journal *j, enum journal_type type, const char *action);
/* The last intent with no outcome (what a resumed controller must find out about), or NULL. */
const cJSON *journal_pending_intent(const struct journal *j);
/* The journal's bytes as they are on disk (without a torn line left out). */
const char *journal_text(const struct journal *j, size_t *len);
/* Bytes of a torn last line cut off (journal_open) or left out (journal_parse); 0: none. */
size_t journal_torn(const struct journal *j);
/* For a record: its seq and type (0 / JOURNAL_ANY for NULL). */
uint64_t journal_record_seq(const cJSON *rec);
enum journal_type journal_record_type(const cJSON *rec);

/*
 * The mirror: the journal's copy on the lock target, at remote_path (normally
 * <deploy_path>/.n3/rollouts/ID.jsonl), reached through t (which must outlive it). One mirror
 * serves one journal (bound on the first append).
 *
 * journal_append_mirrored appends locally first, exactly as journal_append (-1 with err and no
 * done when that fails), then queues the same bytes for the remote file: one command at a time,
 * strictly in order. The command makes the directory (mode 700), takes flock -x on
 * remote_path.lock (so two writers never interleave), checks that the remote file is still what
 * this mirror left there (its size, and the SHA-256 of its last line), appends the line, checks
 * the size again (a short append is cut back), and syncs the file. The first command of a mirror
 * reads the remote file's size and SHA-256 first, and sends whatever the remote lacks (the
 * header and records journaled before the mirror existed); a failed command is followed by the
 * same check, so the mirror catches up on the next append.
 *
 * done(arg, 0, NULL) once the line is on the remote disk; done(arg, -1, msg) otherwise, msg
 * saying why and that the local journal has the record all the same. A remote file that is not
 * what this mirror left there (a line appended or removed behind its back, another journal) is a
 * divergence: nothing is appended to it, now or later, and every append's done says so
 * (journal_mirror_diverged gives the message). done is always called from the loop, never from
 * within the call that queued it.
 */
typedef void (*journal_done_fn)(void *arg, int rc, const char *msg);

struct journal_mirror *journal_mirror_new(struct loop *loop, struct transport *t,
                                          const char *remote_path);
int journal_append_mirrored(struct journal *j, struct journal_mirror *m, enum journal_type type,
                            const char *action, uint64_t intent, const cJSON *data, uint64_t *seq,
                            journal_done_fn done, void *arg, struct err *err);
/* Bring the remote copy up to everything j holds (after a failed append, or on resume): queued
 * like an append, done as for one. -1 with err (and no done) for a read-only journal, a stopped
 * mirror, or a mirror of another journal. */
int journal_mirror_sync(struct journal *j, struct journal_mirror *m, journal_done_fn done,
                        void *arg, struct err *err);
/* Nothing queued or in flight. */
bool journal_mirror_idle(const struct journal_mirror *m);
/* The divergence message, or NULL while there is none. */
const char *journal_mirror_diverged(const struct journal_mirror *m);
/* Stop: appends not sent yet get done(-1, "stopped ..."), one in flight is finished first
 * (its done says how it ended); then the mirror frees itself, on the loop. NULL is fine. */
void journal_mirror_free(struct journal_mirror *m);

/*
 * Read a journal on a target (transport_read_file, at most max_bytes: 0 for JOURNAL_SIZE_MAX plus
 * a line) and verify it as journal_parse does. cb(arg, rc, j, msg): rc 0 with j, 1 with j and
 * a warning (a torn last line left out), -1 with j NULL and msg saying why. j is read-only and
 * the callback's to close. Called from the loop, after journal_fetch returned.
 */
typedef void (*journal_fetch_fn)(void *arg, int rc, struct journal *j, const char *msg);

void journal_fetch(struct loop *loop, struct transport *t, const char *remote_path,
                   size_t max_bytes, journal_fetch_fn cb, void *arg);

#endif
