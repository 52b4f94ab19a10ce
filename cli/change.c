/* Commands that change targets: the deploy lock around them, and the local audit record. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/change.h"
#include "cli/term.h"
#include "cli/progress.h"
#include "cli/stop.h"
#include "cli/cli.h"
#include "core/audit.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/lock.h"
#include "deploy/remote.h"
#include "deploy/transport.h"

void change_audit_local(const char *action, const char *const *targets, const char *result,
                        const cJSON *detail)
{
    char *path = audit_local_path(), who[LOCK_WHO_MAX];
    struct audit_entry e = {0};
    struct err err;

    dlock_whoami(who, sizeof who);
    e.time = (int64_t)time(NULL);
    e.actor = who;
    e.pid = (long)getpid();
    e.action = action;
    e.targets = targets;
    e.result = result;
    e.detail = detail;
    if (audit_append_file(path, &e, NULL, &err) != 0)
        term_printf(stderr, "n3ctl: warning: the local audit log: %s\n", err.msg);
    free(path);
}

void change_wait(struct change *c, const bool *flag)
{
    while (!*flag && !c->abandon)
        loop_run_once(c->loop, true);
}

/* SIGINT (or TERM, HUP, QUIT) while a change runs: the first lets what is in flight finish
 * (each step on a target is atomic) and starts nothing more; the second abandons it. Either
 * way the lock is given back and the change recorded. */
static void change_signal(void *arg, int count, int signum)
{
    struct change *c = arg;

    c->signals = count;
    if (count == 1) {
        fprintf(stderr,
                "n3ctl: SIG%s: finishing what is in flight, starting nothing more; %s again "
                "abandons it (the deploy lock is given back either way)\n",
                sigabbrev_np(signum), signum == SIGINT ? "Ctrl-C" : "the signal");
        return;
    }
    if (!c->abandon)
        fprintf(stderr, "n3ctl: abandoning what is in flight\n");
    c->abandon = true;
}

int change_exit_code(const struct change *c, int rc)
{
    return c->signals > 0 ? stop_exit_code(c->stop) : rc;
}

int change_open(struct change *c, const struct fleet_args *fa, const char *action)
{
    struct remote_opts ropts = {5000, 64 * 1024, fleet_notice, NULL};
    struct err err;

    memset(c, 0, sizeof *c);
    c->action = action;
    dlock_whoami(c->who, sizeof c->who);
    if (fleet_open(&c->fleet, fa->config, fa->env, fa->selectors, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    c->loop = loop_new();
    c->remote = remote_new(c->loop, c->fleet.inv, c->fleet.env, &ropts, &err);
    if (c->remote == NULL) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        loop_free(c->loop);
        c->loop = NULL;
        fleet_close(&c->fleet);
        return EXIT_USAGE;
    }
    c->stop = stop_new_fn(c->loop, change_signal, c);
    return 0;
}

/* On the heap when the wait can be abandoned: the answer may come after it (see change_lock). */
struct lock_wait {
    bool done;
    enum lock_result r;
    struct lock_info holder;
    char msg[ERR_MSG_MAX];
};

static void lock_cb(void *arg, enum lock_result r, const struct lock_info *holder, const char *msg)
{
    struct lock_wait *w = arg;

    w->done = true;
    w->r = r;
    if (holder != NULL)
        w->holder = *holder;
    snprintf(w->msg, sizeof w->msg, "%s", msg != NULL ? msg : "");
}

void change_describe_holder(const struct lock_info *h, char *out, size_t len)
{
    char since[32], ago[32], who[LOCK_WHO_MAX], message[sizeof h->message], why[sizeof h->why];
    time_t t;
    struct tm tm;
    long long secs;

    if (h->partial) {
        snprintf(out, len, "someone (an older n3ctl's lock, left half-made: no holder written)");
        return;
    }
    if (h->unreadable) {
        snprintf(out, len, "someone whose lock cannot be read (%s)",
                 term_shown(why, sizeof why, h->why));
        return;
    }
    /* How long it has been held is the lock target's to say; when it began, by our clock. */
    secs = h->held_s >= 0 ? (long long)h->held_s : (long long)(time(NULL) - h->since);
    t = h->held_s >= 0 ? time(NULL) - (time_t)h->held_s : (time_t)h->since;
    gmtime_r(&t, &tm);
    strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (secs < 60)
        snprintf(ago, sizeof ago, "%llds", secs > 0 ? secs : 0);
    else
        progress_format_duration(ago, sizeof ago, (unsigned long long)secs * 1000000);
    snprintf(out, len, "%s (pid %ld) since %s, %s ago%s%s", term_shown(who, sizeof who, h->who),
             h->pid, since, ago, h->message[0] ? ": " : "",
             term_shown(message, sizeof message, h->message));
}

/* Every selected target's commands go under the lock's fence from now on. */
static void set_fences(struct change *c, const struct transport_fence *fence)
{
    size_t i;

    for (i = 0; i < c->fleet.n; i++) {
        const struct inv_target *t = inv_env_find(c->fleet.env, c->fleet.names[i]);
        struct transport *tr = remote_transport(c->remote, c->fleet.names[i]);

        if (t != NULL && tr != NULL)
            transport_set_fence(tr, fence, t->deploy_path);
    }
}

bool change_lock_lost(const struct change *c)
{
    return c->lock != NULL && dlock_lost(c->lock);
}

int change_begin(struct change *c, const struct fleet_args *fa, const char *action,
                 const char *message)
{
    int rc = change_open(c, fa, action);

    return rc != 0 ? rc : change_lock(c, message);
}

/* A second stop signal while the lock was being taken: the command goes no further. The
 * acquire may still go through on the target after this process is gone, so say what becomes
 * of such a lock. */
static int lock_abandoned(struct change *c, const struct inv_target *lt, const char *message)
{
    uint64_t lease_ms = inventory_lock(c->fleet.inv)->lease_ms;
    char lease[32];
    cJSON *detail;

    progress_format_duration(lease, sizeof lease, lease_ms * 1000);
    fprintf(stderr,
            "n3ctl: taking the deploy lock of %s (on %s) was abandoned before its answer came; "
            "nothing was changed. If it was taken all the same, no one holds it: its lease "
            "(lock.lease_seconds, %s) runs out that long after, by %s's clock, and `n3ctl lock "
            "acquire --force` takes it then (`n3ctl lock status` shows it)\n",
            inv_env_name(c->fleet.env), lt->name, lease, lt->name);
    detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "command", message);
    cJSON_AddStringToObject(detail, "abandoned", "taking the deploy lock");
    /* Abandoned: change_end leaves the process from here, with 128 + the signal. */
    change_end(c, EXIT_FAILED, "interrupted", detail);
    cJSON_Delete(detail);
    return change_exit_code(c, EXIT_FAILED);
}

int change_lock(struct change *c, const char *message)
{
    const struct inv_target *lt;
    struct lock_wait *w;
    char holder[600], shown[ERR_MSG_MAX];
    cJSON *detail;
    int rc;

    lt = inv_env_lock_target(c->fleet.env);
    c->lock = dlock_new(c->loop, remote_transport(c->remote, lt->name), lt->deploy_path,
                        inventory_lock(c->fleet.inv)->lease_ms);
    w = xcalloc(1, sizeof *w);
    dlock_acquire(c->lock, c->who, (long)getpid(), message, true, false, lock_cb, w);
    change_wait(c, &w->done);
    /* Not freed: its answer may still come, and write into it. */
    if (!w->done)
        return lock_abandoned(c, lt, message);
    if (w->r == LOCK_OK) {
        c->locked = true;
        set_fences(c, dlock_fence(c->lock));
        free(w);
        return 0;
    }
    if (w->r == LOCK_HELD && !w->holder.partial && !w->holder.unreadable &&
        w->holder.lease_s == 0 && !w->holder.who_cut && strcmp(w->holder.who, c->who) == 0) {
        /* Your own lock, taken by hand to keep the others out while you work: go on under it
         * (under its fence), and leave it held. */
        if (dlock_adopt(c->lock, &w->holder) != 0) {
            fprintf(stderr,
                    "n3ctl: your deploy lock of %s (on %s) was taken by an older n3ctl and has "
                    "no fence to work under: give it back (`n3ctl lock release`) and take it "
                    "again\n",
                    inv_env_name(c->fleet.env), lt->name);
            free(w);
            return change_end(c, EXIT_REFUSED, "refused", NULL);
        }
        fprintf(stderr, "n3ctl: working under your deploy lock of %s (on %s)%s%s\n",
                inv_env_name(c->fleet.env), lt->name, w->holder.message[0] ? ": " : "",
                term_shown(shown, sizeof shown, w->holder.message));
        c->adopted = true;
        set_fences(c, dlock_fence(c->lock));
        free(w);
        return 0;
    }
    if (w->r == LOCK_HELD) {
        change_describe_holder(&w->holder, holder, sizeof holder);
        fprintf(stderr,
                "n3ctl: the deploy lock of %s (on %s) is held by %s; not changing anything. "
                "`n3ctl lock status` shows it; a lock whose holder is gone can be taken with "
                "`n3ctl lock acquire --force`\n",
                inv_env_name(c->fleet.env), lt->name, holder);
        detail = cJSON_CreateObject();
        cJSON_AddStringToObject(detail, "command", message);
        cJSON_AddStringToObject(detail, "lock_held_by",
                                w->holder.partial || w->holder.unreadable ? "?" : w->holder.who);
        free(w);
        rc = change_end(c, EXIT_REFUSED, "refused", detail);
        cJSON_Delete(detail);
        return rc;
    }
    fprintf(stderr, "n3ctl: cannot take the deploy lock: %s\n",
            term_shown(shown, sizeof shown, w->msg));
    free(w);
    return change_end(c, EXIT_FAILED, "failed", NULL);
}

int change_end(struct change *c, int rc, const char *result, const cJSON *detail)
{
    cJSON *lost_detail = NULL;

    if (c->locked || c->adopted) {
        struct lock_wait w = {0};
        char shown[ERR_MSG_MAX];

        if (dlock_lost(c->lock)) {
            fprintf(stderr,
                    "n3ctl: the deploy lock was lost while working: %s. Nothing was changed "
                    "after that was known; what was done, and what was not, is above\n",
                    term_shown(shown, sizeof shown, dlock_lost_why(c->lock)));
            if (rc == 0)
                rc = EXIT_FAILED;
            lost_detail = detail != NULL ? cJSON_Duplicate(detail, true) : cJSON_CreateObject();
            cJSON_AddStringToObject(lost_detail, "lock_lost", dlock_lost_why(c->lock));
            detail = lost_detail;
        } else if (c->adopted) {
            /* Your own lock, taken by hand: it stays held. */
        } else {
            dlock_release(c->lock, c->who, false, lock_cb, &w);
            while (!w.done)
                loop_run_once(c->loop, true);
            if (w.r != LOCK_OK) {
                fprintf(stderr, "n3ctl: warning: could not give the deploy lock back: %s\n",
                        w.msg[0] ? term_shown(shown, sizeof shown, w.msg)
                                 : "someone else holds it now");
            }
        }
        c->locked = false;
        c->adopted = false;
        set_fences(c, NULL);
    }
    if (result != NULL) {
        const char *one[] = {c->audit_target, NULL};

        change_audit_local(c->action,
                           c->audit_target != NULL ? one : (const char *const *)c->fleet.names,
                           result, detail);
    }
    cJSON_Delete(lost_detail);
    if (c->abandon) {
        /* Operations are still in flight on the targets' connections: leave them to the
         * process's end (each is atomic there, and the next push clears what they left). */
        fflush(stdout);
        fflush(stderr);
        _exit(change_exit_code(c, rc));
    }
    stop_free(c->stop);
    c->stop = NULL;
    dlock_free(c->lock);
    c->lock = NULL;
    remote_free(c->remote);
    c->remote = NULL;
    if (c->loop != NULL) {
        proc_flush_all(c->loop);
        loop_free(c->loop);
        c->loop = NULL;
    }
    fleet_close(&c->fleet);
    return rc;
}
