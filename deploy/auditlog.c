/* The audit log on targets: read the last record, append the next one. */
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

struct append {
    struct transport *t;
    char *file, *dir, *head_path;
    struct audit_head head; /* this machine's last record there; seq 0: none */
    struct audit_entry e;
    cJSON *detail;
    char **targets;
    char *line; /* the record written */
    char warning[ERR_MSG_MAX];
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
    free((char *)a->e.actor);
    free((char *)a->e.action);
    free((char *)a->e.result);
    free(a->file);
    free(a->dir);
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

/* The read gave line head.seq (when it is there) and the last line, one a line. Set *last to
 * the last line; when the remembered head is gone, say so in the record and as a warning. */
static void check_head(struct append *a, char *out, size_t len, const char **last)
{
    char *nl, *lines[2] = {NULL, NULL}, hash[65];
    struct audit_head end;
    size_t n = 0;
    cJSON *gap;
    const char *what;

    while (len > 0 && n < 2 && (nl = memchr(out, '\n', len)) != NULL) {
        *nl = '\0';
        lines[n++] = out;
        len -= (size_t)(nl + 1 - out);
        out = nl + 1;
    }
    *last = n == 0 ? "" : lines[n - 1];
    if (a->head.seq == 0)
        return;
    if (n == 2) {
        audit_line_hash(lines[0], strlen(lines[0]), hash);
        if (strcmp(hash, a->head.sha256) == 0)
            return;
        what = "rewritten";
    } else {
        what = "cut";
    }
    if (audit_head_of(*last, strlen(*last), &end) != 0)
        end.seq = 0;
    gap = cJSON_CreateObject();
    cJSON_AddNumberToObject(gap, "expected_seq", (double)a->head.seq);
    cJSON_AddStringToObject(gap, "expected_sha256", a->head.sha256);
    cJSON_AddNumberToObject(gap, "log_ends_at_seq", (double)end.seq);
    cJSON_AddStringToObject(gap, "what", what);
    if (a->detail == NULL)
        a->detail = cJSON_CreateObject();
    cJSON_AddItemToObject(a->detail, "audit_gap", gap);
    a->e.detail = a->detail;
    if (n == 2)
        warn(a,
             "the audit log on %.100s was rewritten: its record %llu is not the one this machine "
             "wrote there; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)a->head.seq);
    else
        warn(a,
             "the audit log on %.100s was cut: it ends at record %llu, but this machine wrote "
             "record %llu there; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)end.seq, (unsigned long long)a->head.seq);
}

static void finish(struct append *a)
{
    a->done(a->arg, a->warning[0] != '\0' ? 1 : 0, a->warning[0] != '\0' ? a->warning : NULL);
    append_free(a);
}

static void step_done(void *arg, const struct transport_result *r)
{
    struct append *a = arg;
    struct err err;
    struct buf cmd;
    const char *last;
    char *out, *line;
    size_t len;

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char msg[ERR_MSG_MAX];
        char *stderr_text = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        snprintf(msg, sizeof msg, "audit log on %.100s: %.600s %.200s", a->t->name,
                 r->status != TRANSPORT_OK ? r->msg : "the command failed:", stderr_text);
        free(stderr_text);
        a->done(a->arg, -1, msg);
        append_free(a);
        return;
    }
    if (a->writing) {
        struct audit_head h;

        if (a->head_path != NULL && audit_head_of(a->line, strlen(a->line), &h) == 0 &&
            audit_head_save(a->head_path, &h, &err) != 0)
            warn(a, "%s", err.msg);
        finish(a);
        return;
    }
    /* The last line of the log (maybe none), then the record that follows it. */
    out = tail_dup(r->out, &len);
    check_head(a, out, len, &last);
    line = audit_format(last, &a->e, &err);
    free(out);
    if (line == NULL) {
        char msg[ERR_MSG_MAX];

        snprintf(msg, sizeof msg, "audit log on %.100s: %.800s", a->t->name, err.msg);
        a->done(a->arg, -1, msg);
        append_free(a);
        return;
    }
    buf_init(&cmd);
    shell_cmdf(&cmd, "printf '%%s\\n' %s >> %s", line, a->file);
    a->line = line;
    a->writing = true;
    transport_sh(a->t, cmd.data, 30000, 0, step_done, a);
    buf_done(&cmd);
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

    a->t = t;
    a->file = xasprintf("%s/%s", deploy_path, AUDITLOG_FILE);
    a->dir = xasprintf("%s/.n3", deploy_path);
    a->e = *e;
    a->e.actor = xstrdup(e->actor);
    a->e.action = xstrdup(e->action);
    a->e.result = xstrdup(e->result);
    a->detail = e->detail != NULL ? cJSON_Duplicate(e->detail, true) : NULL;
    a->e.detail = a->detail;
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
    buf_init(&cmd);
    /* A record is at most a few KiB: two lines fit the output tail. */
    shell_cmdf(&cmd, "mkdir -p -- %s && touch -- %s && ", a->dir, a->file);
    if (a->head.seq > 0)
        buf_addf(&cmd, "sed -n '%llup;$p' -- ", (unsigned long long)a->head.seq);
    else
        buf_adds(&cmd, "tail -n 1 -- ");
    shell_cmdf(&cmd, "%s", a->file);
    transport_sh(t, cmd.data, 30000, 256 * 1024, step_done, a);
    buf_done(&cmd);
}
