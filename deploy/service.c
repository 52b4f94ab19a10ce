/* A slot's instance on a target: one shell command on the target for each operation. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/hooks.h"
#include "deploy/inventory.h"
#include "deploy/service.h"
#include "deploy/transport.h"

/* The answer's lines start with this; anything else on stdout is not the service's. */
#define TAG "n3svc:"
/* How long the start command waits for the instance to write its pid file. */
#define PIDFILE_WAIT_TENTHS 100
/* After a stop, how long the port may take to be free. */
#define PORT_WAIT_TENTHS 50

enum op_kind { OP_START, OP_STOP, OP_STATUS };

struct op {
    enum op_kind kind;
    struct service_req req;
    service_fn done;
    void *arg;
};

const char *service_state_name(enum service_state s)
{
    static const char *const names[] = {
        [SERVICE_STOPPED] = "stopped",
        [SERVICE_RUNNING] = "running",
        [SERVICE_CRASHED] = "crashed",
        [SERVICE_UNKNOWN] = "unknown",
    };

    return names[s];
}

/*
 * What every detached command starts with: D, S, P, PF and LOG, and the functions
 * n3alive (the pid file's process is there, as the same process: its start time; sets pid),
 * n3group (a process of group $pid is there, not a zombie), n3port (something listens on P),
 * n3end (the end of the answer, then the log's last bytes when asked: "n3svc:log N" and N bytes).
 */
static void add_preamble(struct buf *cmd, const struct service_req *req)
{
    char port[16];

    snprintf(port, sizeof port, "%u", req->svc->ports[req->slot]);
    shell_cmdf(cmd, "D=%s; S=%s; P=%s; ", req->target->deploy_path, hs_slot_name(req->slot), port);
    buf_adds(cmd,
             "PF=\"$D/.n3/run/$S.pid\"; LOG=\"$D/shared/log/$S.log\"; "
             "n3alive() { pid=; t=; read -r pid t 2>/dev/null <\"$PF\"; case $pid in ''|*[!0-9]*) "
             "return 1;; esac; st=; read -r st 2>/dev/null </proc/$pid/stat || return 1; set -- "
             "${st##*) }; [ \"$1\" != Z ] && [ \"${20:-}\" = \"$t\" ]; }; "
             "n3group() { for s in /proc/[0-9]*/stat; do st=; read -r st 2>/dev/null <\"$s\" || "
             "continue; set -- ${st##*) }; [ \"${3:-}\" = \"$pid\" ] && [ \"$1\" != Z ] && return "
             "0; done; return 1; }; "
             "n3port() { h=$(printf '%04X' \"$P\"); for f in /proc/net/tcp /proc/net/tcp6; do [ "
             "-r \"$f\" ] || continue; awk -v p=\"$h\" 'NR > 1 { n = split($2, a, \":\"); if "
             "(a[n] == p && $4 == \"0A\") f = 1 } END { exit !f }' \"$f\" && return 0; done; "
             "return 1; }; "
             "n3end() { echo " TAG "end; if [ \"${1:-}\" = log ] && [ -r \"$LOG\" ]; then "
             "z=$(wc -c <\"$LOG\"); [ \"$z\" -le 2048 ] || z=2048; echo \"" TAG
             "log $z\"; tail -c \"$z\" -- \"$LOG\"; fi; exit 0; }; ");
}

static void add_start(struct buf *cmd, const struct service_req *req, const char *start)
{
    shell_cmdf(cmd, "V=%s; N3_START=%s; ", req->version, start);
    buf_adds(
        cmd,
        "[ -d \"$D/releases/$V\" ] || { echo " TAG "result norelease; n3end; }; "
        "command -v setsid >/dev/null 2>&1 || { echo " TAG "result nosetsid; n3end; }; "
        "mkdir -p -- \"$D/.n3/run\" \"$D/shared/log\" \"$D/slots\" || { echo " TAG
        "result error cannot make the run, log and slots directories; n3end; }; "
        "if n3alive; then echo \"" TAG "result running $pid\"; n3end; fi; "
        "if n3port; then echo " TAG "result portbusy; n3end; fi; "
        "ln -sfn -- \"../releases/$V\" \"$D/slots/.$S.n3tmp\" && mv -Tf -- \"$D/slots/.$S.n3tmp\" "
        "\"$D/slots/$S\" || { echo " TAG "result error cannot point slots/$S at releases/$V; "
        "n3end; }; rm -f -- \"$PF\"; cd -- \"$D/slots/$S\" || { echo " TAG
        "result error cannot enter slots/$S; n3end; }; "
        "printf '%s n3ctl: starting %s in slot %s on port %s\\n' \"$(date -u "
        "+%Y-%m-%dT%H:%M:%SZ)\" \"$V\" \"$S\" \"$P\" >>\"$LOG\"; "
        /* The instance: its own session (setsid), its pid and start time written before it
         * becomes the start command; nothing of this shell's kept open. */
        "N3_PIDFILE=$PF N3_SLOT=$S N3_PORT=$P N3_VERSION=$V N3_START=$N3_START setsid /bin/sh -c "
        "'st=; read -r st </proc/$$/stat; set -- ${st##*) }; printf \"%s %s\\n\" $$ \"${20}\" "
        ">\"$N3_PIDFILE.tmp\" && mv -f -- \"$N3_PIDFILE.tmp\" \"$N3_PIDFILE\"; c=$N3_START; unset "
        "N3_START N3_PIDFILE; exec /bin/sh -c \"$c\"' </dev/null >>\"$LOG\" 2>&1 & "
        "i=0; while [ ! -s \"$PF\" ] && [ $i -lt ");
    buf_addf(cmd, "%d", PIDFILE_WAIT_TENTHS * 2);
    buf_adds(cmd, " ]; do sleep 0.05; i=$((i + 1)); done; if n3alive; then echo \"" TAG
                  "result started $pid\"; n3end; fi; [ -s \"$PF\" ] || { echo " TAG
                  "result nopid; n3end log; }; echo " TAG "result exited; n3end log");
}

static void add_stop(struct buf *cmd, const struct service_req *req, const char *stop)
{
    /* The operator's stop command first (a drain, a last word to the app), then the group. */
    if (stop != NULL) {
        buf_adds(cmd, "if n3alive; then (cd -- \"$D/slots/$S\" 2>/dev/null; ");
        buf_adds(cmd, stop);
        buf_adds(cmd, "\n) </dev/null >>\"$LOG\" 2>&1; fi; ");
    }
    buf_adds(cmd, "if ! n3alive; then if [ -e \"$PF\" ]; then rm -f -- \"$PF\"; echo " TAG
                  "result wasdead; n3end log; fi; echo " TAG "result notrunning; n3end; fi; "
                  "kill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null; i=0; "
                  "while n3group && [ $i -lt ");
    buf_addf(cmd, "%u", (unsigned)(req->svc->stop_grace_ms / 100));
    buf_adds(cmd, " ]; do sleep 0.1; i=$((i + 1)); done; k=; if n3group; then kill -KILL "
                  "-\"$pid\" 2>/dev/null; k=1; fi; i=0; while n3port && [ $i -lt ");
    buf_addf(cmd, "%d", PORT_WAIT_TENTHS);
    buf_adds(cmd,
             " ]; do sleep 0.1; i=$((i + 1)); done; rm -f -- \"$PF\"; if n3port; then echo " TAG
             "result portbusy; n3end; fi; echo \"" TAG "result stopped${k:+ killed}\"; n3end");
}

static void add_status(struct buf *cmd)
{
    buf_adds(cmd, "if n3alive; then echo \"" TAG "state running $pid\"; elif [ -e \"$PF\" ]; "
                  "then echo " TAG "state crashed; else echo " TAG "state stopped; fi; ! n3port "
                  "|| echo " TAG "listening; if n3alive || [ ! -e \"$PF\" ]; then n3end; fi; "
                  "n3end log");
}

/* ---- the answer ---- */

struct answer {
    bool complete;
    char result[32];
    char extra[128];
    char state[16];
    long pid;
    bool listening;
    char log[SERVICE_LOG_TAIL];
};

static void parse_answer(const char *text, size_t len, struct answer *a)
{
    const char *p = text, *end = text + len;

    memset(a, 0, sizeof *a);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl != NULL ? nl : end;
        size_t n = (size_t)(eol - p);
        char line[256];

        if (n < sizeof line && n >= strlen(TAG) && strncmp(p, TAG, strlen(TAG)) == 0) {
            char *key, *val;

            memcpy(line, p + strlen(TAG), n - strlen(TAG));
            line[n - strlen(TAG)] = '\0';
            key = line;
            val = strchr(line, ' ');
            if (val != NULL)
                *val++ = '\0';
            else
                val = line + strlen(line);
            if (strcmp(key, "end") == 0) {
                a->complete = true;
            } else if (strcmp(key, "result") == 0 || strcmp(key, "state") == 0) {
                char *sp = strchr(val, ' ');

                if (sp != NULL)
                    *sp++ = '\0';
                snprintf(strcmp(key, "result") == 0 ? a->result : a->state,
                         strcmp(key, "result") == 0 ? sizeof a->result : sizeof a->state, "%s",
                         val);
                if (sp != NULL) {
                    snprintf(a->extra, sizeof a->extra, "%s", sp);
                    a->pid = strtol(sp, NULL, 10);
                }
            } else if (strcmp(key, "listening") == 0) {
                a->listening = true;
            } else if (strcmp(key, "log") == 0 && a->complete) {
                /* The log's last bytes, exactly as many as said, follow this line. */
                size_t want = (size_t)strtoul(val, NULL, 10);
                const char *data = nl != NULL ? nl + 1 : end;

                if (want > (size_t)(end - data))
                    want = (size_t)(end - data);
                if (want >= sizeof a->log)
                    want = sizeof a->log - 1;
                memcpy(a->log, data, want);
                a->log[want] = '\0';
                return;
            }
        }
        p = nl != NULL ? nl + 1 : end;
    }
}

static void finish(struct op *o, int rc, const struct service_status *st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(struct op *o, int rc, const struct service_status *st, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;

    msg[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    o->done(o->arg, rc, st, msg[0] != '\0' ? msg : NULL);
    free(o);
}

static void answered(void *arg, const struct transport_result *r)
{
    struct op *o = arg;
    const struct service_req *q = &o->req;
    const char *target = q->target->name, *slot = hs_slot_name(q->slot);
    struct service_status st;
    struct answer a;
    char *text;
    size_t len;

    memset(&st, 0, sizeof st);
    st.state = q->svc->mode == INV_SERVICE_SYSTEMD ? SERVICE_UNKNOWN : SERVICE_STOPPED;
    if (r->status != TRANSPORT_OK) {
        finish(o, -1, &st, "%s", r->msg);
        return;
    }
    text = tail_dup(r->out, &len);
    parse_answer(text, len, &a);
    free(text);
    snprintf(st.log_tail, sizeof st.log_tail, "%s", a.log);
    st.listening = a.listening;
    if (q->svc->mode == INV_SERVICE_SYSTEMD) {
        char *err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        /* The operator's own command: its exit status says it. */
        if (r->exit_code != 0)
            finish(o, -1, &st, "%s %s of slot %s failed on %s (exit %d)%s%.300s",
                   inventory_service_mode_name(q->svc->mode),
                   o->kind == OP_START ? "start" : "stop", slot, target, r->exit_code,
                   err[0] ? ": " : "", err);
        else
            finish(o, 0, &st, NULL);
        free(err);
        return;
    }
    if (!a.complete || r->exit_code != 0) {
        char *err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        finish(o, -1, &st, "slot %s on %s: the service command %s%s%.300s", slot, target,
               a.complete ? "failed" : "gave no whole answer", err[0] ? ": " : "", err);
        free(err);
        return;
    }
    if (o->kind == OP_STATUS) {
        st.state = strcmp(a.state, "running") == 0   ? SERVICE_RUNNING
                   : strcmp(a.state, "crashed") == 0 ? SERVICE_CRASHED
                                                     : SERVICE_STOPPED;
        st.pid = st.state == SERVICE_RUNNING ? a.pid : 0;
        finish(o, 0, &st, NULL);
        return;
    }
    if (strcmp(a.result, "started") == 0 || strcmp(a.result, "running") == 0) {
        st.state = SERVICE_RUNNING;
        st.pid = a.pid;
        if (strcmp(a.result, "running") == 0)
            finish(o, -1, &st, "slot %s on %s runs already (pid %ld): stop it first", slot, target,
                   a.pid);
        else
            finish(o, 0, &st, NULL);
        return;
    }
    if (strcmp(a.result, "stopped") == 0) {
        finish(o, 0, &st,
               strcmp(a.extra, "killed") == 0
                   ? "slot %s on %s did not end within %gs of TERM and was killed"
                   : NULL,
               slot, target, (double)q->svc->stop_grace_ms / 1000.0);
        return;
    }
    if (strcmp(a.result, "notrunning") == 0) {
        finish(o, 0, &st, "slot %s on %s was not running", slot, target);
        return;
    }
    if (strcmp(a.result, "wasdead") == 0) {
        st.state = SERVICE_CRASHED;
        finish(o, 0, &st, "slot %s on %s had crashed (its process was gone)", slot, target);
        return;
    }
    if (strcmp(a.result, "exited") == 0 || strcmp(a.result, "nopid") == 0) {
        st.state = SERVICE_CRASHED;
        finish(o, -1, &st, "slot %s on %s %s", slot, target,
               strcmp(a.result, "exited") == 0
                   ? "exited as soon as it started"
                   : "did not start (its pid file never came: setsid or /proc missing?)");
        return;
    }
    if (strcmp(a.result, "portbusy") == 0) {
        st.listening = true;
        finish(o, -1, &st,
               o->kind == OP_START
                   ? "slot %s on %s: port %u is in use by something that is not this slot's "
                     "instance; free it, or give the slot another port (service.ports)"
                   : "slot %s on %s stopped, but port %u is still in use (by something else?)",
               slot, target, q->svc->ports[q->slot]);
        return;
    }
    if (strcmp(a.result, "norelease") == 0) {
        finish(o, -1, &st, "slot %s on %s: no release %s there (push it first)", slot, target,
               q->version);
        return;
    }
    if (strcmp(a.result, "nosetsid") == 0) {
        finish(o, -1, &st,
               "%s has no setsid(1): the detached mode needs it to start an instance that "
               "outlives n3ctl (Debian: util-linux; it is in busybox too)",
               target);
        return;
    }
    finish(o, -1, &st, "slot %s on %s: %.60s %.200s", slot, target, a.result, a.extra);
}

static void run(enum op_kind kind, const struct service_req *req, service_fn done, void *arg)
{
    struct op *o = xcalloc(1, sizeof *o);
    struct buf cmd, expanded;
    struct transport_run r;
    struct err err;
    uint64_t timeout_ms;

    o->kind = kind;
    o->req = *req;
    o->done = done;
    o->arg = arg;
    buf_init(&cmd);
    buf_init(&expanded);
    if (kind == OP_START || (kind == OP_STOP && req->svc->stop != NULL)) {
        /* The operator's command, its variables quoted; systemd mode runs it as it is. */
        char port[16], *release_dir = xasprintf("%s/releases/%s", req->target->deploy_path,
                                                req->version != NULL ? req->version : "");
        struct hook_vars hv = {0};
        const char *tmpl = kind == OP_START ? req->svc->start : req->svc->stop;

        snprintf(port, sizeof port, "%u", req->svc->ports[req->slot]);
        hv.version = req->version;
        hv.release_dir = req->version != NULL ? release_dir : NULL;
        hv.slot = hs_slot_name(req->slot);
        hv.port = port;
        hv.target = req->target->name;
        if (tmpl != NULL && hook_expand(kind == OP_START ? "service.start" : "service.stop", tmpl,
                                        &hv, &expanded, &err) != 0) {
            struct service_status st = {0};

            free(release_dir);
            buf_done(&cmd);
            buf_done(&expanded);
            finish(o, -1, &st, "%s", err.msg);
            return;
        }
        if (req->svc->mode == INV_SERVICE_SYSTEMD && kind != OP_STATUS) {
            if (kind == OP_START)
                shell_cmdf(&cmd, "cd %s || exit 1; ", release_dir);
            buf_adds(&cmd, expanded.data != NULL ? expanded.data : "true");
        }
        free(release_dir);
    }
    if (cmd.len == 0) {
        add_preamble(&cmd, req);
        if (kind == OP_START)
            add_start(&cmd, req, expanded.data);
        else if (kind == OP_STOP)
            add_stop(&cmd, req, expanded.data);
        else
            add_status(&cmd);
    }
    memset(&r, 0, sizeof r);
    r.command = cmd.data;
    timeout_ms = 60000;
    if (kind == OP_STOP)
        timeout_ms += req->svc->stop_grace_ms;
    r.timeout_ms = timeout_ms;
    r.output_limit = 16 * 1024;
    /* Looking changes nothing: no fence for it. */
    r.unfenced = kind == OP_STATUS;
    r.on_done = answered;
    r.arg = o;
    transport_run(req->t, &r);
    buf_done(&cmd);
    buf_done(&expanded);
}

void service_start(const struct service_req *req, service_fn done, void *arg)
{
    run(OP_START, req, done, arg);
}

void service_stop(const struct service_req *req, service_fn done, void *arg)
{
    run(OP_STOP, req, done, arg);
}

void service_status(const struct service_req *req, service_fn done, void *arg)
{
    run(OP_STATUS, req, done, arg);
}
