/*
 * The audit log on targets: <deploy_path>/.n3/audit.log, its own hash chain (core/audit.h),
 * one record per change that touched the target. Appending reads the log's end, formats the
 * record that follows its last record and appends it, in one command on the target that appends
 * only if the log still ends as read (under flock on .n3/audit.log.lock, when the target has
 * flock); if another writer got in first, it reads again (at most 16 times). So two n3ctl
 * appending at once, even under one operator's deploy lock, do not fork the chain (without
 * flock, the check still leaves a short window between itself and the append).
 *
 * A record is appended whole or not at all: written to a temporary file beside the log first,
 * then appended, and a log that did not grow by exactly the record (a full disk) is cut back.
 * A log whose last line is torn all the same (no newline at its end, or not a record: a target
 * that crashed, or another writer) is repaired by the next append: the torn line is cut off,
 * kept in a file beside the log (audit.log.torn.<time>.<seq>), and the new record notes it in
 * its detail ("audit_gap", "what": "torn"), with a warning.
 *
 * This machine remembers the head of every target log it appended to (core/audit.h: a chain
 * cannot show records cut off its end): in the local state directory, audit-heads/, one file
 * a target log. An append that finds the log no longer holding that head (the record with its
 * seq, found by seq: not by line, which differs in a log whose front was removed) still appends
 * (the change happened), with "audit_gap" in the record's detail saying what was missing, and
 * reports it as a warning.
 *
 * A target needs, besides the shell: wc, tail, cat, sha256sum, and truncate or dd (GNU
 * coreutils has them all).
 */
#ifndef N3_AUDITLOG_H
#define N3_AUDITLOG_H

#include "core/audit.h"

struct transport;

#define AUDITLOG_FILE      ".n3/audit.log"
#define AUDITLOG_LOCK_FILE ".n3/audit.log.lock"

/* What done gets in rc. A change whose record could not be written is not a success: the
 * change happened, but is unaudited on that target; say so, and fail the target. */
#define AUDITLOG_OK      0  /* appended */
#define AUDITLOG_WARNING 1  /* appended, with a warning in msg (a gap noted, a torn line cut) */
#define AUDITLOG_FAILED  -1 /* not appended; msg says why */
typedef void (*auditlog_fn)(void *arg, int rc, const char *msg);

void auditlog_append(struct transport *t, const char *deploy_path, const struct audit_entry *e,
                     auditlog_fn done, void *arg);

/* The file this machine keeps a target log's head in (see above); NULL when there is no
 * local state directory. Caller frees. */
char *auditlog_head_path(const struct transport *t, const char *deploy_path);

#endif
