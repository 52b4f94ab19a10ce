/*
 * The audit log: one JSON object per line, each carrying the SHA-256 of the line before it, so
 * that a record changed or removed anywhere breaks the chain from there on. Records say who,
 * when, what, on which targets, with what result. The same format serves the local log and
 * the copies on targets (<deploy_path>/.n3/audit.log), each its own chain.
 *
 * A record (keys in this order, compact JSON, no spaces):
 *   {"seq":N,"time":"2026-11-27T06:50:01Z","actor":"alice@laptop","pid":4242,
 *    "action":"release.push","targets":["web1","web2"],"result":"ok","detail":{...},
 *    "prev":"<64 hex: sha256 of the previous line's text, or 64 zeros for the first>"}
 * seq starts at 1 and grows by one. The hash of a line is the SHA-256 of its exact bytes,
 * without the newline.
 */
#ifndef N3_AUDIT_H
#define N3_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

struct audit_entry {
    int64_t time;      /* Unix seconds (UTC) */
    const char *actor; /* "user@host" */
    long pid;
    const char *action;         /* "release.push", "lock.acquire", "hosts.trust", ... */
    const char *const *targets; /* NULL-terminated, may be NULL */
    const char *result;         /* "ok", "failed", "refused", "partial" */
    const cJSON *detail;        /* an object, or NULL */
};

/* The record that follows prev_line (NULL or "" for the first record), without newline.
 * Caller frees. Fails if prev_line is not a record (then it cannot be continued), and on an
 * entry that cannot be written: no actor, action or result; a time outside 1970..9999; a
 * detail that is not an object, holds raw JSON or nests deeper than 32; a record over 1 MiB.
 * targets NULL is written [], detail NULL {}; strings are written as valid UTF-8 (invalid
 * bytes become U+FFFD), with control characters escaped, so a record is always one line. */
char *audit_format(const char *prev_line, const struct audit_entry *e, struct err *err);

/* The SHA-256 of a line, lowercase hex. */
void audit_line_hash(const char *line, size_t len, char hex[65]);

/*
 * Append a record to a local log file (created 0600, its directory 0700, when missing):
 * under an exclusive lock, read the last line, format the next record, write it with one
 * write, and save the new head in audit_head_path(path) (best effort: the record counts). The new
 * line is returned in *line_out when that is not NULL (caller frees). Every missing level of the
 * directory is created 0700 (~/.local/state may not exist yet). A log whose last line is cut short
 * (no newline), empty or not a record is refused, and nothing is written; so is a write that fails
 * half way (the half record is removed again).
 */
int audit_append_file(const char *path, const struct audit_entry *e, char **line_out,
                      struct err *err);
/* (audit_append_file returns 1, with a warning in err, when the log no longer ended with its
 * head: records were cut off or rewritten. The record is written all the same, with
 * "audit_gap" in its detail, as on targets.) */

struct audit_problem {
    unsigned long line; /* 1-based line of the first bad record, 0 when all is well */
    /* "line 7: prev does not match line 6: line 6 was changed, or a record was removed
     * between them" */
    char why[256];
    unsigned long records; /* records read (when the chain breaks: the good ones before) */
    /* The bad line is the last one, and is no record (cut short, empty, not JSON): a torn
     * append, after `records` records whose chain holds; the line starts at byte torn_at. */
    bool torn;
    size_t torn_at;
};

/* Check a whole log's text: every line a record, seq 1, 2, 3..., every prev the hash of the
 * line before. 0 when the chain holds; -1 with p filled in otherwise (p->torn when only the
 * last line is bad, and is no record). An empty text is a valid empty log. */
int audit_verify(const char *text, size_t len, struct audit_problem *p);

/*
 * Heads. A chain shows a record changed or removed anywhere but at the end: a log cut short
 * is still a valid chain. So whoever appends remembers where the log ended (the head: the
 * last record's seq and the SHA-256 of its line), elsewhere than in the log: the local log's
 * head beside it (audit.log.head), a target's on this machine. A log that no longer holds its
 * head as line head.seq was cut, or rewritten from there on.
 */
struct audit_head {
    uint64_t seq;    /* 0: none known */
    char sha256[65]; /* of the line, lowercase hex */
};

/* The head a log has when line is its last record; -1 if line is not a record. */
int audit_head_of(const char *line, size_t len, struct audit_head *h);
/* Does a log whose chain holds (audit_verify said so) still hold head h? 0 when it does (or h
 * is none); -1 with p->why saying what was lost otherwise. */
int audit_check_head(const char *text, size_t len, const struct audit_head *h,
                     struct audit_problem *p);
/* A head file: one line "SEQ SHA256". Load: 0, or 1 with h zeroed when there is no file, -1
 * when it cannot be read or is not a head. Save: written to a temporary file and renamed. */
int audit_head_load(const char *path, struct audit_head *h, struct err *err);
int audit_head_save(const char *path, const struct audit_head *h, struct err *err);
/* The local log's head file: log_path + ".head". Caller frees. */
char *audit_head_path(const char *log_path);

/* Parse one line into a cJSON object (caller frees), or NULL if it is not a record: one JSON
 * object alone, no newline or raw control character, with every key above of its type (seq a
 * positive integer, targets strings, detail an object, prev 64 lowercase hex). */
cJSON *audit_parse(const char *line, size_t len);

/*
 * The pieces of the chain that other hash-chained logs (deploy/journal.h) share with this one.
 *
 * One line as one JSON object (caller frees): at most max bytes, no raw control character (a
 * record escapes them, and a raw newline would make it two lines), nothing after the object.
 * NULL with why saying what is wrong otherwise ("not JSON", "longer than ...").
 */
cJSON *audit_parse_line(const char *line, size_t len, size_t max, char *why, size_t whylen);
/* Is s 64 lowercase hex digits (a SHA-256 as audit_line_hash writes it)? */
bool audit_hash_ok(const char *s);
/* A copy of v that prints as one line of valid UTF-8 (caller frees): invalid bytes in strings
 * and keys become U+FFFD; raw JSON and nesting deeper than 32 are refused, with err saying so
 * about `what` ("the audit detail", "the journal data"). */
cJSON *audit_clean_json(const cJSON *v, const char *what, struct err *err);

/* The local log: $XDG_STATE_HOME/n3ctl/audit.log (when absolute), or
 * ~/.local/state/n3ctl/audit.log ($HOME, else the password database). Caller frees; NULL when
 * there is no absolute home directory. */
char *audit_local_path(void);

#endif
