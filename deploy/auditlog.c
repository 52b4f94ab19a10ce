/* The audit log on targets: read the last record, append the next one. */
#include "config.h"

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
    char *file, *dir;
    struct audit_entry e;
    cJSON *detail;
    char **targets;
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
    free(a);
}

static void step_done(void *arg, const struct transport_result *r)
{
    struct append *a = arg;
    struct err err;
    struct buf cmd;
    char *last, *line;
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
        a->done(a->arg, 0, NULL);
        append_free(a);
        return;
    }
    /* The last line of the log (maybe none), then the record that follows it. */
    last = tail_dup(r->out, &len);
    while (len > 0 && last[len - 1] == '\n')
        last[--len] = '\0';
    line = audit_format(last, &a->e, &err);
    free(last);
    if (line == NULL) {
        char msg[ERR_MSG_MAX];

        snprintf(msg, sizeof msg, "audit log on %.100s: %.800s", a->t->name, err.msg);
        a->done(a->arg, -1, msg);
        append_free(a);
        return;
    }
    buf_init(&cmd);
    shell_cmdf(&cmd, "printf '%%s\\n' %s >> %s", line, a->file);
    free(line);
    a->writing = true;
    transport_sh(a->t, cmd.data, 30000, 0, step_done, a);
    buf_done(&cmd);
}

void auditlog_append(struct transport *t, const char *deploy_path, const struct audit_entry *e,
                     auditlog_fn done, void *arg)
{
    struct append *a = xcalloc(1, sizeof *a);
    struct buf cmd;
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
    buf_init(&cmd);
    /* A record is at most a few KiB: the last line fits the output tail. */
    shell_cmdf(&cmd, "mkdir -p -- %s && touch -- %s && tail -n 1 -- %s", a->dir, a->file, a->file);
    transport_sh(t, cmd.data, 30000, 256 * 1024, step_done, a);
    buf_done(&cmd);
}
