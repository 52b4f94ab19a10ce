/*
 * The ssh transport: commands as channels on the pooled session of the target. A command
 * runs as `exec /bin/sh -c CMD` from the login shell that sshd started in a session of its
 * own. Before it, that shell prints a marker on each stream, "\036n3ctl:NONCE:" (a random
 * NONCE for each command): on stderr with its process ID and its process group (read from
 * /proc: under a ForceCommand wrapper that forks, the shell is not the group's leader), on
 * stdout alone. What a stream carries before its marker is the login shell's own output (a
 * noisy profile, a banner in a wrapper): dropped, wherever the marker starts in it, and said
 * once to the transport's notice function. A stream whose marker never comes means the
 * command never started. Stopping a command is `kill -TERM -PGID` from a second channel (a
 * negative number, not "--": dash's kill does not take "--"): TERM, then KILL when the grace
 * period is over.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/bridge.h"
#include "deploy/ssh.h"
#include "deploy/transport.h"

#define MARKER_HEAD     "\036n3ctl:"
#define NONCE_LEN       16
#define MARKER_LEN      (sizeof MARKER_HEAD - 1 + NONCE_LEN + 1) /* head, nonce, ':' */
#define PAYLOAD_MAX     48   /* "PID:PGID" after the marker, to its newline */
#define SAMPLE_MAX      80   /* of the login shell's output, for the notice */
#define GIVEUP_SLACK_MS 5000 /* after the grace period, how long the kill may take to show */
/* How long the sftp subsystem may take to answer and open the file: a server that runs no
 * SFTP (a ForceCommand that gives a shell instead, say) never answers at all. */
#define SFTP_START_MS 5000

/* One stream of a command: looking for its marker, reading what follows it, or passing the
 * command's own output on. */
enum frame_state { F_SEARCH, F_PAYLOAD, F_DONE };

struct frame {
    enum frame_state state;
    size_t matched; /* bytes of the marker seen so far */
    char payload[PAYLOAD_MAX];
    size_t plen;
    uint64_t noise; /* bytes before the marker */
    char sample[SAMPLE_MAX];
    size_t slen;
};

struct ssh_transport {
    struct transport t;
    struct ssh_conn *conn;
    struct bridge **bridges; /* one a host and port asked for, kept until the transport goes */
    size_t nbridges;
};

enum op_kind { OP_RUN, OP_PUT, OP_CONNECT };

struct ssh_op {
    struct transport_op op;
    enum op_kind kind;
    struct ssh_chan *chan;
    struct tail out, err;
    char marker[MARKER_LEN + 1];
    struct frame frames[2]; /* stdout, stderr */
    long pgid;
    transport_output_fn on_output;
    transport_progress_fn on_progress;
    transport_done_fn done;
    void *arg;
    struct loop_timer *timeout;
    struct loop_timer *giveup;
    uint64_t timeout_ms, grace_ms;
    bool timed_out, stopped, finished;
    bool put_open; /* put: the file is open on the target (SFTP answered) */
    unsigned refs; /* the main channel, and a kill in flight */
};

static struct ssh_conn *conn_of(struct transport *t)
{
    return ((struct ssh_transport *)t)->conn;
}

static void op_unref(struct ssh_op *o)
{
    if (--o->refs > 0)
        return;
    loop_timer_free(o->timeout);
    loop_timer_free(o->giveup);
    tail_done(&o->out);
    tail_done(&o->err);
    free(o);
}

static void deliver(struct ssh_op *o, enum proc_stream stream, const char *data, size_t len)
{
    tail_add(stream == PROC_STDOUT ? &o->out : &o->err, data, len);
    if (o->on_output != NULL)
        o->on_output(o->arg, stream, data, len);
}

static void frame_noise(struct frame *f, const char *data, size_t len)
{
    size_t room = sizeof f->sample - 1 - f->slen;

    f->noise += len;
    if (len > room)
        len = room;
    memcpy(f->sample + f->slen, data, len);
    f->slen += len;
    f->sample[f->slen] = '\0';
}

/* A positive decimal number, all of s. */
static long positive(const char *s, const char *end)
{
    long v = 0;

    if (s == end)
        return 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || v > 100000000)
            return 0;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* stderr's marker is followed by "PID:PGID": the group to signal (the PID when the group
 * cannot be read). */
static void marker_payload(struct ssh_op *o, const struct frame *f)
{
    const char *colon = memchr(f->payload, ':', f->plen);
    long pid, pgid;

    if (colon == NULL)
        return;
    pid = positive(f->payload, colon);
    pgid = positive(colon + 1, f->payload + f->plen);
    o->pgid = pgid > 1 ? pgid : pid;
    /* The command has started: its timeout counts from now. */
    if (o->timeout_ms > 0 && !o->timed_out && !o->stopped)
        loop_timer_start(o->timeout, o->timeout_ms);
}

/* Say once a transport that its login shell prints output of its own. */
static void noise_notice(struct ssh_op *o, const struct frame *f)
{
    struct transport *t = o->op.t;
    char msg[ERR_MSG_MAX];

    if (f->noise == 0 || t->noise_seen)
        return;
    t->noise_seen = true;
    if (t->notice == NULL)
        return;
    snprintf(msg, sizeof msg,
             "%s's login shell prints output before each command (%llu bytes, \"%s%s\"); fix "
             "its profile (or ForceCommand): n3ctl ignores it",
             t->name, (unsigned long long)f->noise, f->sample, f->noise > f->slen ? "..." : "");
    t->notice(t->notice_arg, msg);
}

/* Each stream starts with its marker, maybe after the login shell's own output: drop that,
 * read the marker's payload, pass the rest on. The marker's first byte (\036) is nowhere
 * else in it, so a mismatch can only start a new match at that byte. */
static void on_output(void *arg, enum proc_stream stream, const char *data, size_t len)
{
    struct ssh_op *o = arg;
    struct frame *f = &o->frames[stream == PROC_STDOUT ? 0 : 1];
    size_t i = 0;

    if (o->finished)
        return;
    while (i < len && f->state != F_DONE) {
        char c = data[i++];

        if (f->state == F_SEARCH) {
            if (c == o->marker[f->matched]) {
                if (++f->matched == MARKER_LEN)
                    f->state = F_PAYLOAD;
                continue;
            }
            frame_noise(f, o->marker, f->matched);
            f->matched = 0;
            if (c == o->marker[0])
                f->matched = 1;
            else
                frame_noise(f, &c, 1);
            continue;
        }
        if (c != '\n' && f->plen < sizeof f->payload) {
            f->payload[f->plen++] = c;
            continue;
        }
        f->state = F_DONE;
        if (stream == PROC_STDERR)
            marker_payload(o, f);
        noise_notice(o, f);
    }
    if (i < len)
        deliver(o, stream, data + i, len - i);
}

static void put_progress(void *arg, uint64_t sent)
{
    struct ssh_op *o = arg;

    if (o->stopped || o->timed_out)
        return;
    o->put_open = true;
    /* An upload's timeout is for a stall: it counts from the last data that went out, so a
     * big release on a slow link is not cut off while it moves. */
    if (o->timeout_ms > 0)
        loop_timer_start(o->timeout, o->timeout_ms);
    else
        loop_timer_stop(o->timeout); /* SFTP answered; no stall timer */
    if (o->on_progress != NULL)
        o->on_progress(o->arg, sent);
}

/* An upload's timer: for SFTP to answer until the file is open, then for a stall. */
static uint64_t put_wait_ms(const struct ssh_op *o)
{
    if (o->put_open || (o->timeout_ms > 0 && o->timeout_ms < SFTP_START_MS))
        return o->timeout_ms;
    return SFTP_START_MS;
}

static void main_done(void *arg, const struct ssh_result *sr)
{
    struct ssh_op *o = arg;
    struct transport_result r;
    char secs[32];

    o->finished = true;
    o->chan = NULL;
    loop_timer_stop(o->timeout);
    loop_timer_stop(o->giveup);
    transport_result_init(&r, TRANSPORT_OK);
    r.out = &o->out;
    r.err = &o->err;
    r.exit_code = sr->exit_code;
    r.exit_signal = sr->exit_signal;
    if (o->kind != OP_RUN) {
        /* put and connect keep what ssh.c captured */
        r.out = sr->out;
        r.err = sr->err;
    }
    snprintf(secs, sizeof secs, "%.3g", (double)o->timeout_ms / 1000.0);
    if (o->timed_out && o->kind == OP_PUT && !o->put_open) {
        transport_result_fail(&r, TRANSPORT_FAILED, RETRY_VALIDATION,
                              "SFTP is not available on %s: its sftp subsystem did not answer "
                              "within %gs (a ForceCommand that does not run it?). n3ctl "
                              "uploads releases over SFTP: the target needs \"Subsystem sftp\" "
                              "in its sshd_config, run by any ForceCommand",
                              o->op.t->name, (double)put_wait_ms(o) / 1000.0);
        o->done(o->arg, &r);
        op_unref(o);
        return;
    }
    if (o->timed_out && o->kind == OP_PUT) {
        transport_result_fail(&r, TRANSPORT_TIMEOUT, RETRY_TIMEOUT,
                              "the upload to %s made no progress for %ss and was stopped (the "
                              "connection was closed)",
                              o->op.t->name, secs);
        o->done(o->arg, &r);
        op_unref(o);
        return;
    }
    switch (sr->status) {
    case SSH_DONE:
        if (o->kind == OP_RUN && o->frames[1].state != F_DONE && !o->timed_out && !o->stopped) {
            const struct frame *f = o->frames[1].noise > 0 ? &o->frames[1] : &o->frames[0];

            transport_result_fail(&r, TRANSPORT_FAILED, RETRY_VALIDATION,
                                  "the command did not start on %s: its login shell (or a "
                                  "ForceCommand) did not run it%s%s%s",
                                  o->op.t->name, f->noise > 0 ? "; it printed \"" : "",
                                  f->noise > 0 ? f->sample : "", f->noise > 0 ? "\"" : "");
        } else if (o->timed_out)
            transport_result_fail(&r, TRANSPORT_TIMEOUT, RETRY_TIMEOUT,
                                  "the command on %s ran past its timeout of %ss and was stopped",
                                  o->op.t->name, secs);
        else if (o->stopped)
            transport_result_fail(&r, TRANSPORT_STOPPED, RETRY_SIGNAL,
                                  "the command on %s was stopped", o->op.t->name);
        break;
    case SSH_UNREACHABLE:
        transport_result_fail(&r, TRANSPORT_UNREACHABLE, sr->kind, "%s", sr->msg);
        break;
    case SSH_REFUSED:
        transport_result_fail(&r, TRANSPORT_REFUSED, sr->kind, "%s", sr->msg);
        break;
    case SSH_ABANDONED:
        if (o->timed_out)
            transport_result_fail(&r, TRANSPORT_TIMEOUT, RETRY_TIMEOUT,
                                  "the command on %s ran past its timeout of %ss; %s",
                                  o->op.t->name, secs, sr->msg);
        else
            transport_result_fail(&r, TRANSPORT_STOPPED, RETRY_SIGNAL, "%s", sr->msg);
        break;
    case SSH_FAILED:
        transport_result_fail(&r, TRANSPORT_FAILED, sr->kind, "%s", sr->msg);
        break;
    }
    o->done(o->arg, &r);
    op_unref(o);
}

static void kill_done(void *arg, const struct ssh_result *r)
{
    op_unref(arg);
}

static void giveup_cb(void *arg)
{
    struct ssh_op *o = arg;

    if (o->chan != NULL)
        ssh_chan_abandon(o->chan, "it did not end after TERM and KILL were sent to it on the "
                                  "target; n3ctl stopped waiting");
}

static void op_stop(struct transport_op *op, uint64_t grace_ms)
{
    struct ssh_op *o = (struct ssh_op *)op;
    struct ssh_exec_spec spec;
    struct buf cmd;
    unsigned tenths = (unsigned)(grace_ms / 100);

    if (o->finished || o->chan == NULL)
        return;
    o->stopped = true;
    if (o->kind == OP_PUT)
        loop_timer_stop(o->timeout); /* a stopped upload has no stall to time */
    if (o->kind != OP_RUN || o->pgid <= 0) {
        /* Nothing to signal (yet): stop waiting; a command may go on on the target. */
        ssh_chan_abandon(o->chan, o->kind == OP_RUN
                                      ? "stopped before the target said which process it was; "
                                        "the command may still run there"
                                      : "stopped");
        return;
    }
    buf_init(&cmd);
    if (grace_ms == 0)
        buf_addf(&cmd, "kill -KILL -%ld 2>/dev/null || kill -KILL %ld 2>/dev/null; exit 0", o->pgid,
                 o->pgid);
    else
        buf_addf(&cmd,
                 "g=%ld; kill -TERM -$g 2>/dev/null || kill -TERM $g 2>/dev/null; i=0; "
                 "while [ $i -lt %u ] && { kill -0 -$g || kill -0 $g; } 2>/dev/null; do "
                 "sleep 0.1; i=$((i+1)); done; kill -KILL -$g 2>/dev/null || kill -KILL $g "
                 "2>/dev/null; exit 0",
                 o->pgid, tenths);
    memset(&spec, 0, sizeof spec);
    spec.command = cmd.data;
    spec.on_done = kill_done;
    spec.arg = o;
    o->refs++;
    ssh_exec(conn_of(o->op.t), &spec);
    buf_done(&cmd);
    loop_timer_start(o->giveup, grace_ms + GIVEUP_SLACK_MS);
}

static bool op_exited(const struct transport_op *op)
{
    return ((const struct ssh_op *)op)->finished;
}

static void timeout_cb(void *arg)
{
    struct ssh_op *o = arg;

    if (o->kind == OP_PUT && (o->finished || o->stopped))
        return;
    if (o->kind == OP_PUT) {
        /* Still connecting (that has deadlines of its own), or waiting for its turn on the
         * connection (what runs before it has its own timeout): not a stall. */
        if (!ssh_conn_ready(conn_of(o->op.t)) || (o->chan != NULL && ssh_chan_queued(o->chan))) {
            loop_timer_start(o->timeout, put_wait_ms(o));
            return;
        }
        /* SFTP's window counts from when its turn came, not from when it was queued. */
        if (!o->put_open && o->chan != NULL) {
            uint64_t waited = (loop_now_us(o->op.t->loop) - ssh_chan_started_us(o->chan)) / 1000;

            if (waited < put_wait_ms(o)) {
                loop_timer_start(o->timeout, put_wait_ms(o) - waited);
                return;
            }
        }
        /* A stalled transfer leaves the session in the middle of a packet: nothing else can
         * go on it. Drop the connection; the next operation makes a new one. */
        o->timed_out = true;
        ssh_conn_drop(conn_of(o->op.t), o->chan, "an upload on the connection made no progress");
        return;
    }
    o->timed_out = true;
    op_stop(&o->op, o->grace_ms);
}

static struct ssh_op *op_new(struct transport *t, enum op_kind kind, transport_done_fn done,
                             void *arg)
{
    struct ssh_op *o = xcalloc(1, sizeof *o);

    o->op.t = t;
    o->op.stop = op_stop;
    o->op.exited = op_exited;
    o->kind = kind;
    o->done = done;
    o->arg = arg;
    o->refs = 1;
    o->timeout = loop_timer_new(t->loop, timeout_cb, o);
    o->giveup = loop_timer_new(t->loop, giveup_cb, o);
    o->grace_ms = 5000;
    return o;
}

static struct transport_op *ssh_run(struct transport *t, const struct transport_run *r)
{
    struct ssh_op *o = op_new(t, OP_RUN, r->on_done, r->arg);
    struct ssh_exec_spec spec;
    struct buf cmd;
    size_t limit = r->output_limit ? r->output_limit : 64u * 1024u;
    char nonce[NONCE_LEN + 1];

    o->on_output = r->on_output;
    o->timeout_ms = r->timeout_ms;
    o->grace_ms = r->grace_ms ? r->grace_ms : 5000;
    tail_init(&o->out, limit);
    tail_init(&o->err, limit);
    snprintf(nonce, sizeof nonce, "%08x%08x", loop_random(t->loop), loop_random(t->loop));
    snprintf(o->marker, sizeof o->marker, "%s%s:", MARKER_HEAD, nonce);
    buf_init(&cmd);
    /* sshd made the login shell a session leader; under a wrapper that forks, this shell is
     * not it: the group (field 5 of /proc/PID/stat) is what to stop. */
    buf_addf(&cmd,
             "g=$$; [ -r /proc/$$/stat ] && read -r _ _ _ _ g _ </proc/$$/stat; "
             "printf '\\036n3ctl:%s:%%s:%%s\\n' \"$$\" \"$g\" >&2; printf '\\036n3ctl:%s:\\n'; "
             "exec /bin/sh -c ",
             nonce, nonce);
    shell_quote(&cmd, r->command);
    memset(&spec, 0, sizeof spec);
    spec.command = cmd.data;
    spec.input = r->input;
    spec.input_len = r->input_len;
    spec.output_limit = 1; /* ssh.c's own tails are not used: this file keeps them */
    spec.on_output = on_output;
    spec.on_done = main_done;
    spec.arg = o;
    o->chan = ssh_exec(conn_of(t), &spec);
    buf_done(&cmd);
    /* Until the command starts (the marker arrives), the connection may take its own time
     * too; then the timeout starts over from the command's start. */
    if (r->timeout_ms > 0)
        loop_timer_start(o->timeout, r->timeout_ms + ssh_conn_setup_budget_ms(conn_of(t)));
    return &o->op;
}

static struct transport_op *ssh_put_op(struct transport *t, const char *local, const char *path,
                                       unsigned mode, transport_progress_fn progress,
                                       transport_done_fn done, void *arg)
{
    struct ssh_op *o = op_new(t, OP_PUT, done, arg);

    o->timeout_ms = t->command_timeout_ms;
    o->on_progress = progress;
    tail_init(&o->out, 1);
    tail_init(&o->err, 1);
    o->chan = ssh_put(conn_of(t), local, path, mode, put_progress, main_done, o);
    loop_timer_start(o->timeout, put_wait_ms(o)); /* SFTP must answer, timeout or not */
    return &o->op;
}

static struct transport_op *ssh_connect_op(struct transport *t, transport_done_fn done, void *arg)
{
    struct ssh_op *o = op_new(t, OP_CONNECT, done, arg);

    tail_init(&o->out, 1);
    tail_init(&o->err, 1);
    o->chan = ssh_connect(conn_of(t), main_done, o);
    return &o->op;
}

static uint64_t ssh_handshake_us(const struct transport *t)
{
    return ssh_conn_handshake_us(((const struct ssh_transport *)t)->conn);
}

static int ssh_bridge(struct transport *t, const char *host, unsigned port, const char **path,
                      const char **last_error, struct err *err)
{
    struct ssh_transport *s = (struct ssh_transport *)t;
    struct bridge *b;
    size_t i;

    for (i = 0; i < s->nbridges; i++) {
        if (bridge_port(s->bridges[i]) == port && strcmp(bridge_host(s->bridges[i]), host) == 0) {
            *path = bridge_path(s->bridges[i]);
            *last_error = bridge_last_error(s->bridges[i]);
            return 0;
        }
    }
    b = bridge_new(t->loop, s->conn, host, port, err);
    if (b == NULL)
        return -1;
    s->bridges = xreallocarray(s->bridges, s->nbridges + 1, sizeof *s->bridges);
    s->bridges[s->nbridges++] = b;
    *path = bridge_path(b);
    *last_error = bridge_last_error(b);
    return 0;
}

/* ---- dial: a tunnel opened and closed, to know whether the target can connect ---- */

struct dial_op {
    struct transport_op op;
    struct ssh_chan *ch;
    struct loop_timer *timeout;
    transport_done_fn done;
    void *arg;
    char where[300];
    bool reported, chan_over;
};

static void dial_free_if_over(struct dial_op *d)
{
    if (d->reported && d->chan_over) {
        loop_timer_free(d->timeout);
        free(d);
    }
}

static void dial_report(struct dial_op *d, const struct transport_result *r)
{
    if (d->reported)
        return;
    d->reported = true;
    loop_timer_stop(d->timeout);
    d->done(d->arg, r);
}

static void dial_opened(void *arg)
{
    struct dial_op *d = arg;
    struct transport_result r;

    transport_result_init(&r, TRANSPORT_OK);
    r.exit_code = 0;
    ssh_tunnel_shut(d->ch); /* nothing to say: it closes */
    dial_report(d, &r);
}

static void dial_done(void *arg, const struct ssh_result *sr)
{
    struct dial_op *d = arg;
    struct transport_result r;

    d->chan_over = true;
    d->ch = NULL;
    if (!d->reported) {
        if (sr->status == SSH_UNREACHABLE)
            transport_result_fail(&r, TRANSPORT_UNREACHABLE, sr->kind, "%s", sr->msg);
        else if (sr->status == SSH_REFUSED)
            transport_result_fail(&r, TRANSPORT_REFUSED, sr->kind, "%s", sr->msg);
        else if (sr->status == SSH_ABANDONED)
            transport_result_fail(&r, TRANSPORT_STOPPED, RETRY_SIGNAL, "%s", sr->msg);
        else
            transport_result_fail(&r, TRANSPORT_FAILED, RETRY_CONNECT, "%s", sr->msg);
        dial_report(d, &r);
    }
    dial_free_if_over(d);
}

static void dial_timeout(void *arg)
{
    struct dial_op *d = arg;
    struct transport_result r;

    transport_result_fail(&r, TRANSPORT_TIMEOUT, RETRY_TIMEOUT,
                          "%s: no connection to %s within the timeout", d->op.t->name, d->where);
    if (d->ch != NULL)
        ssh_chan_abandon(d->ch, "timed out");
    dial_report(d, &r);
}

static void dial_stop(struct transport_op *op, uint64_t grace_ms)
{
    struct dial_op *d = (struct dial_op *)op;

    (void)grace_ms;
    if (d->ch != NULL && !d->reported)
        ssh_chan_abandon(d->ch, "stopped"); /* dial_done reports TRANSPORT_STOPPED */
}

static bool dial_exited(const struct transport_op *op)
{
    return ((const struct dial_op *)op)->reported;
}

static struct transport_op *ssh_dial(struct transport *t, const char *host, unsigned port,
                                     uint64_t timeout_ms, transport_done_fn done, void *arg)
{
    struct dial_op *d = xcalloc(1, sizeof *d);
    struct ssh_tunnel_spec spec;

    d->op.t = t;
    d->op.stop = dial_stop;
    d->op.exited = dial_exited;
    d->done = done;
    d->arg = arg;
    snprintf(d->where, sizeof d->where, "%.255s:%u", host, port);
    d->timeout = loop_timer_new(t->loop, dial_timeout, d);
    if (timeout_ms > 0)
        loop_timer_start(d->timeout, timeout_ms);
    memset(&spec, 0, sizeof spec);
    spec.host = host;
    spec.port = port;
    spec.on_open = dial_opened;
    spec.on_done = dial_done;
    spec.arg = d;
    d->ch = ssh_tunnel(conn_of(t), &spec);
    return &d->op;
}

static void ssh_free(struct transport *t)
{
    struct ssh_transport *s = (struct ssh_transport *)t;
    size_t i;

    for (i = 0; i < s->nbridges; i++)
        bridge_free(s->bridges[i]);
    free(s->bridges);
    free(t->name);
    free(t);
}

static const struct transport_ops ssh_ops = {
    .name = "ssh",
    .run = ssh_run,
    .put = ssh_put_op,
    .connect = ssh_connect_op,
    .handshake_us = ssh_handshake_us,
    .bridge = ssh_bridge,
    .dial = ssh_dial,
    .free = ssh_free,
};

struct transport *transport_ssh_new(struct loop *loop, const struct inv_target *t,
                                    struct ssh_pool *pool)
{
    struct ssh_transport *s = xcalloc(1, sizeof *s);

    s->t.ops = &ssh_ops;
    s->t.loop = loop;
    s->t.name = xstrdup(t->name);
    s->t.command_timeout_ms = 300000;
    s->conn = ssh_pool_conn(pool, t->name, t->host, t->port, t->user);
    return &s->t;
}
