/* A session of changes: the fleet, its connections, the deploy lock, the local audit record. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/fmt.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/lock.h"
#include "deploy/remote.h"
#include "deploy/session.h"
#include "deploy/transport.h"

static void say(const struct session *s, enum session_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const struct session *s, enum session_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (s->hooks == NULL || s->hooks->say == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->hooks->say(s->hooks->arg, level, msg);
}

int session_audit_local(const char *action, const char *const *targets, const char *result,
                        const cJSON *detail, struct err *err)
{
    char *path = audit_local_path(), who[LOCK_WHO_MAX];
    struct audit_entry e = {0};
    int rc;

    dlock_whoami(who, sizeof who);
    e.time = (int64_t)time(NULL);
    e.actor = who;
    e.pid = (long)getpid();
    e.action = action;
    e.targets = targets;
    e.result = result;
    e.detail = detail;
    rc = audit_append_file(path, &e, NULL, err) != 0 ? -1 : 0;
    free(path);
    return rc;
}

void session_wait(struct session *s, const bool *flag)
{
    while (!*flag && !s->abandon)
        loop_run_once(s->loop, true);
}

static void notice(void *arg, const char *msg)
{
    const struct session *s = arg;

    if (s->hooks != NULL && s->hooks->notice != NULL)
        s->hooks->notice(s->hooks->arg, msg);
}

int session_open(struct session *s, const char *config, const char *env,
                 const char *const *selectors, const char *action,
                 const struct session_hooks *hooks, struct err *err)
{
    struct remote_opts ropts = {5000, 64 * 1024, notice, NULL};

    memset(s, 0, sizeof *s);
    s->action = action;
    s->hooks = hooks;
    ropts.notice_arg = s;
    dlock_whoami(s->who, sizeof s->who);
    if (fleet_open(&s->fleet, config, env, selectors, err) != 0)
        return -1;
    s->loop = loop_new();
    s->remote = remote_new(s->loop, s->fleet.inv, s->fleet.env, &ropts, err);
    if (s->remote == NULL) {
        loop_free(s->loop);
        s->loop = NULL;
        fleet_close(&s->fleet);
        return -1;
    }
    return 0;
}

/* On the heap when the wait can be abandoned: the answer may come after it (see
 * session_lock). */
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

void session_describe_holder(const struct lock_info *h, char *out, size_t len)
{
    char since[32], ago[32];
    time_t t;
    struct tm tm;
    long long secs;

    if (h->partial) {
        snprintf(out, len, "someone (an older n3ctl's lock, left half-made: no holder written)");
        return;
    }
    if (h->unreadable) {
        snprintf(out, len, "someone whose lock cannot be read (%s)", h->why);
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
        fmt_duration(ago, sizeof ago, (unsigned long long)secs * 1000000);
    snprintf(out, len, "%s (pid %ld) since %s, %s ago%s%s", h->who, h->pid, since, ago,
             h->message[0] ? ": " : "", h->message);
}

/* Every selected target's commands go under the lock's fence from now on. */
static void set_fences(struct session *s, const struct transport_fence *fence)
{
    size_t i;

    for (i = 0; i < s->fleet.n; i++) {
        const struct inv_target *t = inv_env_find(s->fleet.env, s->fleet.names[i]);
        struct transport *tr = remote_transport(s->remote, s->fleet.names[i]);

        if (t != NULL && tr != NULL)
            transport_set_fence(tr, fence, t->deploy_path);
    }
}

bool session_lock_lost(const struct session *s)
{
    return s->lock != NULL && dlock_lost(s->lock);
}

static cJSON *lock_detail(const char *message, const char *key, const char *value)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "command", message);
    cJSON_AddStringToObject(d, key, value);
    return d;
}

enum session_lock_result session_lock(struct session *s, const char *message, cJSON **detail)
{
    const struct inv_target *lt = inv_env_lock_target(s->fleet.env);
    const char *env = inv_env_name(s->fleet.env);
    struct lock_wait *w;
    char holder[1200], lease[32];
    enum session_lock_result res;

    if (detail != NULL)
        *detail = NULL;
    s->lock = dlock_new(s->loop, remote_transport(s->remote, lt->name), lt->deploy_path,
                        inventory_lock(s->fleet.inv)->lease_ms);
    w = xcalloc(1, sizeof *w);
    dlock_acquire(s->lock, s->who, (long)getpid(), message, true, false, lock_cb, w);
    session_wait(s, &w->done);
    if (!w->done) {
        /* Not freed: its answer may still come, and write into it. The acquire may go through
         * on the target after this process is gone: say what becomes of such a lock. */
        fmt_duration(lease, sizeof lease, inventory_lock(s->fleet.inv)->lease_ms * 1000);
        say(s, SESSION_ERROR,
            "taking the deploy lock of %s (on %s) was abandoned before its answer came; nothing "
            "was changed. If it was taken all the same, no one holds it: its lease "
            "(lock.lease_seconds, %s) runs out that long after, by %s's clock, and `n3ctl lock "
            "acquire --force` takes it then (`n3ctl lock status` shows it)",
            env, lt->name, lease, lt->name);
        if (detail != NULL)
            *detail = lock_detail(message, "abandoned", "taking the deploy lock");
        return SESSION_LOCK_ABANDONED;
    }
    if (w->r == LOCK_OK) {
        s->locked = true;
        set_fences(s, dlock_fence(s->lock));
        free(w);
        return SESSION_LOCK_OK;
    }
    if (w->r == LOCK_HELD && !w->holder.partial && !w->holder.unreadable &&
        w->holder.lease_s == 0 && !w->holder.who_cut && strcmp(w->holder.who, s->who) == 0) {
        /* Your own lock, taken by hand to keep the others out while you work: go on under it
         * (under its fence), and leave it held. */
        if (dlock_adopt(s->lock, &w->holder) != 0) {
            say(s, SESSION_ERROR,
                "your deploy lock of %s (on %s) was taken by an older n3ctl and has no fence to "
                "work under: give it back (`n3ctl lock release`) and take it again",
                env, lt->name);
            free(w);
            return SESSION_LOCK_REFUSED;
        }
        say(s, SESSION_INFO, "working under your deploy lock of %s (on %s)%s%s", env, lt->name,
            w->holder.message[0] ? ": " : "", w->holder.message);
        s->adopted = true;
        set_fences(s, dlock_fence(s->lock));
        free(w);
        return SESSION_LOCK_OK;
    }
    if (w->r == LOCK_HELD) {
        session_describe_holder(&w->holder, holder, sizeof holder);
        say(s, SESSION_ERROR,
            "the deploy lock of %s (on %s) is held by %s; not changing anything. `n3ctl lock "
            "status` shows it; a lock whose holder is gone can be taken with `n3ctl lock "
            "acquire --force`",
            env, lt->name, holder);
        if (detail != NULL)
            *detail = lock_detail(message, "lock_held_by",
                                  w->holder.partial || w->holder.unreadable ? "?" : w->holder.who);
        res = SESSION_LOCK_REFUSED;
    } else {
        say(s, SESSION_ERROR, "cannot take the deploy lock: %s", w->msg);
        res = SESSION_LOCK_FAILED;
    }
    free(w);
    return res;
}

int session_finish(struct session *s, int rc, const char *result, const cJSON *detail)
{
    cJSON *lost_detail = NULL;
    struct err err;

    if (s->locked || s->adopted) {
        struct lock_wait w = {0};

        if (dlock_lost(s->lock)) {
            say(s, SESSION_ERROR,
                "the deploy lock was lost while working: %s. Nothing was changed after that was "
                "known; what was done, and what was not, is above",
                dlock_lost_why(s->lock));
            if (rc == 0)
                rc = 1;
            lost_detail = detail != NULL ? cJSON_Duplicate(detail, true) : cJSON_CreateObject();
            cJSON_AddStringToObject(lost_detail, "lock_lost", dlock_lost_why(s->lock));
            detail = lost_detail;
        } else if (s->adopted) {
            /* Your own lock, taken by hand: it stays held. */
        } else {
            dlock_release(s->lock, s->who, false, lock_cb, &w);
            while (!w.done)
                loop_run_once(s->loop, true);
            if (w.r != LOCK_OK)
                say(s, SESSION_WARNING, "could not give the deploy lock back: %s",
                    w.msg[0] ? w.msg : "someone else holds it now");
        }
        s->locked = false;
        s->adopted = false;
        set_fences(s, NULL);
    }
    if (result != NULL) {
        const char *one[] = {s->audit_target, NULL};

        if (session_audit_local(s->action,
                                s->audit_target != NULL ? one : (const char *const *)s->fleet.names,
                                result, detail, &err) != 0)
            say(s, SESSION_WARNING, "the local audit log: %s", err.msg);
    }
    cJSON_Delete(lost_detail);
    return rc;
}

void session_close(struct session *s)
{
    dlock_free(s->lock);
    s->lock = NULL;
    remote_free(s->remote);
    s->remote = NULL;
    if (s->loop != NULL) {
        proc_flush_all(s->loop);
        loop_free(s->loop);
        s->loop = NULL;
    }
    fleet_close(&s->fleet);
}

int session_end(struct session *s, int rc, const char *result, const cJSON *detail)
{
    rc = session_finish(s, rc, result, detail);
    if (!s->abandon)
        session_close(s);
    return rc;
}
