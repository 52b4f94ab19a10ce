/* The audit log on targets: read the last record, append the next one if the log still ends
 * with it (under flock on the target), else read again. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/transport.h"

/* The append's exit status when the log no longer ends with the line read: read again. */
#define CHANGED_RC 75
/* Appends that found the log changed before giving up: one a writer that got in first. */
#define ATTEMPTS_MAX 8
/* Seconds to wait for the lock on the target (held for a tail and a printf at most). */
#define LOCK_WAIT_S 20

struct append {
    struct transport *t;
    char *file, *dir, *lock, *head_path;
    char *read_cmd;
    struct audit_head head; /* this machine's last record there; seq 0: none */
    struct audit_entry e;
    cJSON *detail;      /* e.detail for this attempt: the caller's, maybe with audit_gap */
    cJSON *orig_detail; /* the caller's */
    char **targets;
    char *line; /* the record written */
    char warning[ERR_MSG_MAX];
    size_t warning_base; /* what was said before the first read (the head file) */
    unsigned attempts;   /* appends that found the log changed */
    auditlog_fn done;
    void *arg;
    bool writing;
};

static void append_free(struct append *a)
{
    size_t i;

    for (i = 0; a->targets != NULL && a->targets[i] != NULL; i++)
        free(a->targets[i]);
    free(a->targets);
    cJSON_Delete(a->detail);
    cJSON_Delete(a->orig_detail);
    free((char *)a->e.actor);
    free((char *)a->e.action);
    free((char *)a->e.result);
    free(a->file);
    free(a->dir);
    free(a->lock);
    free(a->read_cmd);
    free(a->head_path);
    free(a->line);
    free(a);
}

static void warn(struct append *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct append *a, const char *fmt, ...)
{
    size_t n = strlen(a->warning);
    va_list ap;

    if (n > 0 && n + 2 < sizeof a->warning) {
        memcpy(a->warning + n, "; ", 3);
        n += 2;
    }
    va_start(ap, fmt);
    vsnprintf(a->warning + n, sizeof a->warning - n, fmt, ap);
    va_end(ap);
}

static void fail(struct append *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct append *a, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    int n;

    n = snprintf(msg, sizeof msg, "audit log on %.100s: ", a->t->name);
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    a->done(a->arg, -1, msg);
    append_free(a);
}

/* found is the log's record head.seq ("" when it has none), last its last line ("" when the log
 * is empty). When the remembered head is gone, say so in the record and as a warning. Records
 * are found by seq, not by line: the two differ in a log whose front was removed. */
static void check_head(struct append *a, const char *found, const char *last)
{
    char hash[65];
    struct audit_head end;
    cJSON *gap;
    const char *what;

    if (a->head.seq == 0)
        return;
    if (audit_head_of(last, strlen(last), &end) != 0)
        end.seq = 0;
    if (found[0] != '\0') {
        audit_line_hash(found, strlen(found), hash);
        if (strcmp(hash, a->head.sha256) == 0)
            return;
        what = "rewritten";
        warn(a,
             "the audit log on %.100s was rewritten: its record %llu is not the one this machine "
             "wrote there; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)a->head.seq);
    } else if (end.seq >= a->head.seq) {
        what = "rewritten";
        warn(a,
             "the audit log on %.100s was rewritten: it has no record %llu, which this machine "
             "wrote there, but goes on to record %llu; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)a->head.seq, (unsigned long long)end.seq);
    } else {
        what = "cut";
        warn(a,
             "the audit log on %.100s was cut: it ends at record %llu, but this machine wrote "
             "record %llu there; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)end.seq, (unsigned long long)a->head.seq);
    }
    gap = cJSON_CreateObject();
    cJSON_AddNumberToObject(gap, "expected_seq", (double)a->head.seq);
    cJSON_AddStringToObject(gap, "expected_sha256", a->head.sha256);
    cJSON_AddNumberToObject(gap, "log_ends_at_seq", (double)end.seq);
    cJSON_AddStringToObject(gap, "what", what);
    if (a->detail == NULL)
        a->detail = cJSON_CreateObject();
    cJSON_AddItemToObject(a->detail, "audit_gap", gap);
    a->e.detail = a->detail;
}

static void finish(struct append *a)
{
    a->done(a->arg, a->warning[0] != '\0' ? 1 : 0, a->warning[0] != '\0' ? a->warning : NULL);
    append_free(a);
}

/* Open the lock file beside the log on fd 9 and lock it: shared to read (no half-written line
 * is seen), exclusive to append. A target without flock goes on unlocked. */
static void add_lock(const struct append *a, struct buf *cmd, bool exclusive)
{
    char msg[512];

    snprintf(msg, sizeof msg,
             "n3ctl: could not lock %.300s within %d s: another n3ctl is appending to the audit "
             "log, or is stuck; try again",
             a->lock, LOCK_WAIT_S);
    shell_cmdf(cmd, "exec 9>>%s || exit 1; if command -v flock >/dev/null 2>&1; then flock ",
               a->lock);
    buf_adds(cmd, exclusive ? "-x" : "-s");
    shell_cmdf(cmd, " -w %d 9 || { printf '%%s\\n' %s >&2; exit 1; }; fi; ", LOCK_WAIT_S, msg);
}

static void step_done(void *arg, const struct transport_result *r);

static void start_read(struct append *a)
{
    a->writing = false;
    transport_sh(a->t, a->read_cmd, 30000, 256 * 1024, step_done, a);
}

/* The read printed the record head.seq (or an empty line), then the log's last line as tail
 * prints it (nothing for an empty log). Format the record that follows and append it, on
 * condition that the log still ends with that line. */
static void read_done(struct append *a, const struct transport_result *r)
{
    struct err err;
    struct buf cmd;
    char *out, *nl, *last, *line;
    size_t len, rest;

    out = tail_dup(r->out, &len);
    if (tail_truncated(r->out) || (nl = memchr(out, '\n', len)) == NULL) {
        free(out);
        fail(a, "reading its last record gave %s; not appending",
             tail_truncated(r->out) ? "more than 256 KiB: a record is too long"
                                    : "unexpected output");
        return;
    }
    *nl = '\0';
    last = nl + 1;
    rest = len - (size_t)(last - out);
    if (rest > 0 && last[rest - 1] != '\n') {
        free(out);
        fail(a, "its last line is cut short (no newline at its end): a write was interrupted, or "
                "the file was truncated; not appending: run `n3ctl audit verify --targets` and "
                "mend the log by hand");
        return;
    }
    if (rest > 0)
        last[rest - 1] = '\0';
    if (rest == 1) {
        free(out);
        fail(a, "its last line is empty: n3ctl writes none, so the log was edited; not "
                "appending: run `n3ctl audit verify --targets` and mend the log by hand");
        return;
    }
    /* Each attempt starts from the caller's record: an earlier one may have noted a gap. */
    cJSON_Delete(a->detail);
    a->detail = a->orig_detail != NULL ? cJSON_Duplicate(a->orig_detail, true) : NULL;
    a->e.detail = a->detail;
    a->warning[a->warning_base] = '\0';
    check_head(a, out, last);
    line = audit_format(last, &a->e, &err);
    if (line == NULL) {
        free(out);
        fail(a, "%.800s", err.msg);
        return;
    }
    buf_init(&cmd);
    add_lock(a, &cmd, true);
    if (last[0] == '\0')
        shell_cmdf(&cmd, "[ ! -s %s ] || exit %d; ", a->file, CHANGED_RC);
    else
        shell_cmdf(&cmd,
                   "[ -z \"$(tail -c 1 -- %s)\" ] && [ \"$(tail -n 1 -- %s)\" = %s ] || exit %d; ",
                   a->file, a->file, last, CHANGED_RC);
    shell_cmdf(&cmd, "printf '%%s\\n' %s >> %s", line, a->file);
    free(out);
    free(a->line);
    a->line = line;
    a->writing = true;
    transport_sh(a->t, cmd.data, 30000, 0, step_done, a);
    buf_done(&cmd);
}

static void step_done(void *arg, const struct transport_result *r)
{
    struct append *a = arg;
    struct err err;
    struct audit_head h;

    /* Another writer got in between the read and the append: read again. */
    if (a->writing && r->status == TRANSPORT_OK && r->exit_code == CHANGED_RC) {
        if (++a->attempts < ATTEMPTS_MAX) {
            start_read(a);
            return;
        }
        fail(a,
             "it changed between reading its last record and appending %u times in a row (other "
             "n3ctl processes appending to it); the record was not written",
             a->attempts);
        return;
    }
    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char *stderr_text = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        fail(a, "%.600s %.200s",
             r->status != TRANSPORT_OK ? r->msg : "the command failed:", stderr_text);
        free(stderr_text);
        return;
    }
    if (!a->writing) {
        read_done(a, r);
        return;
    }
    if (a->head_path != NULL && audit_head_of(a->line, strlen(a->line), &h) == 0 &&
        audit_head_save(a->head_path, &h, &err) != 0)
        warn(a, "%s", err.msg);
    finish(a);
}

char *auditlog_head_path(const struct transport *t, const char *deploy_path)
{
    char *log = audit_local_path(), *slash, *key, *path, hash[65];

    if (log == NULL)
        return NULL;
    slash = strrchr(log, '/');
    *slash = '\0';
    /* One file a log: where the target leads and the deploy path, hashed into a name. */
    key = xasprintf("%s\n%s", t->where != NULL ? t->where : t->name, deploy_path);
    audit_line_hash(key, strlen(key), hash);
    path = xasprintf("%s/audit-heads/%.32s.head", log, hash);
    free(key);
    free(log);
    return path;
}

void auditlog_append(struct transport *t, const char *deploy_path, const struct audit_entry *e,
                     auditlog_fn done, void *arg)
{
    struct append *a = xcalloc(1, sizeof *a);
    struct buf cmd;
    struct err err;
    size_t n = 0, i;
    char pattern[64];

    a->t = t;
    a->file = xasprintf("%s/%s", deploy_path, AUDITLOG_FILE);
    a->dir = xasprintf("%s/.n3", deploy_path);
    a->lock = xasprintf("%s/%s", deploy_path, AUDITLOG_LOCK_FILE);
    a->e = *e;
    a->e.actor = xstrdup(e->actor);
    a->e.action = xstrdup(e->action);
    a->e.result = xstrdup(e->result);
    a->orig_detail = e->detail != NULL ? cJSON_Duplicate(e->detail, true) : NULL;
    a->e.detail = NULL;
    for (i = 0; e->targets != NULL && e->targets[i] != NULL; i++)
        n++;
    a->targets = xcalloc(n + 1, sizeof *a->targets);
    for (i = 0; i < n; i++)
        a->targets[i] = xstrdup(e->targets[i]);
    a->e.targets = (const char *const *)a->targets;
    a->done = done;
    a->arg = arg;
    a->head_path = auditlog_head_path(t, deploy_path);
    if (a->head_path != NULL && audit_head_load(a->head_path, &a->head, &err) < 0)
        warn(a, "%s", err.msg);
    a->warning_base = strlen(a->warning);
    /* Two lines: the record this machine wrote last (found by its seq: records start with
     * {"seq":N, as audit_format writes them), or an empty line; then the last line, as tail
     * prints it. A record is at most a few KiB: both fit the output tail. */
    buf_init(&cmd);
    shell_cmdf(&cmd, "mkdir -p -- %s && touch -- %s || exit 1; ", a->dir, a->file);
    add_lock(a, &cmd, false);
    if (a->head.seq > 0) {
        snprintf(pattern, sizeof pattern, "^\\{\"seq\":%llu,", (unsigned long long)a->head.seq);
        shell_cmdf(&cmd,
                   "h=$(grep -m 1 -E -e %s -- %s); [ $? -le 1 ] || exit 1; "
                   "printf '%%s\\n' \"$h\" && ",
                   pattern, a->file);
    } else {
        shell_cmdf(&cmd, "printf '\\n' && ");
    }
    shell_cmdf(&cmd, "tail -n 1 -- %s", a->file);
    a->read_cmd = buf_detach(&cmd, NULL);
    buf_done(&cmd);
    start_read(a);
}
