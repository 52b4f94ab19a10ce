/*
 * The audit log on targets: <deploy_path>/.n3/audit.log, its own hash chain (core/audit.h),
 * one record per change that touched the target. Appending reads the last line, formats the
 * record that follows it and appends it; the deploy lock keeps two writers apart.
 */
#ifndef N3_AUDITLOG_H
#define N3_AUDITLOG_H

#include "core/audit.h"

struct transport;

#define AUDITLOG_FILE ".n3/audit.log"

typedef void (*auditlog_fn)(void *arg, int rc, const char *msg);

void auditlog_append(struct transport *t, const char *deploy_path, const struct audit_entry *e,
                     auditlog_fn done, void *arg);

#endif
