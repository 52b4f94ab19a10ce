/*
 * The audit log on targets: <deploy_path>/.n3/audit.log, its own hash chain (core/audit.h),
 * one record per change that touched the target. Appending reads the last line, formats the
 * record that follows it and appends it, in one command on the target that appends only if the
 * log still ends with the line read (under flock on .n3/audit.log.lock, when the target has
 * flock); if another writer got in first, it reads again (at most 8 times). So two n3ctl
 * appending at once, even under one operator's deploy lock, do not fork the chain (without
 * flock, the check still leaves a short window between itself and the append).
 *
 * This machine remembers the head of every target log it appended to (core/audit.h: a chain
 * cannot show records cut off its end): in the local state directory, audit-heads/, one file
 * a target log. An append that finds the log no longer holding that head (the record with its
 * seq, found by seq: not by line, which differs in a log whose front was removed) still appends
 * (the change happened), with "audit_gap" in the record's detail saying what was missing, and
 * reports it as a warning (done's rc 1).
 */
#ifndef N3_AUDITLOG_H
#define N3_AUDITLOG_H

#include "core/audit.h"

struct transport;

#define AUDITLOG_FILE      ".n3/audit.log"
#define AUDITLOG_LOCK_FILE ".n3/audit.log.lock"

/* rc 0: appended; 1: appended, with a warning in msg; -1: not appended, msg says why (also a
 * log whose last line is cut short, empty or not a record: it is not continued). */
typedef void (*auditlog_fn)(void *arg, int rc, const char *msg);

void auditlog_append(struct transport *t, const char *deploy_path, const struct audit_entry *e,
                     auditlog_fn done, void *arg);

/* The file this machine keeps a target log's head in (see above); NULL when there is no
 * local state directory. Caller frees. */
char *auditlog_head_path(const struct transport *t, const char *deploy_path);

#endif
