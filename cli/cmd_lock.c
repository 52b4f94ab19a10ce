/* n3ctl lock status | acquire -m MSG | release: the environment's deploy lock, by hand. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/progress.h"
#include "cli/term.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "core/fmt.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/fence.h"
#include "deploy/inventory.h"
#include "deploy/lock.h"
#include "deploy/remote.h"

/* What a lock or audit operation answered. On the heap: a second Ctrl-C stops the wait for
 * it, and the answer may still come, into memory that must still be there (the process ends
 * then without freeing it). */
struct wait {
    bool done;
    enum lock_result r;
    struct lock_info info;
    char msg[ERR_MSG_MAX];
    int audit_rc;
};

static struct wait *wait_new(void)
{
    return xcalloc(1, sizeof(struct wait));
}

/* Run the loop until w is answered: true. false: a second stop signal abandoned the wait; w
 * stays allocated for the answer. */
static bool wait_for(struct change *c, struct wait *w)
{
    change_wait(c, &w->done);
    return w->done;
}

static void lock_cb(void *arg, enum lock_result r, const struct lock_info *holder, const char *msg)
{
    struct wait *w = arg;

    w->done = true;
    w->r = r;
    if (holder != NULL)
        w->info = *holder;
    snprintf(w->msg, sizeof w->msg, "%s", msg != NULL ? msg : "");
}

static void audit_cb(void *arg, int rc, const char *msg)
{
    struct wait *w = arg;
    char shown[ERR_MSG_MAX];

    w->done = true;
    w->audit_rc = rc;
    if (rc > 0)
        fprintf(stderr, "n3ctl: warning: %s\n", term_shown(shown, sizeof shown, msg));
    else if (rc < 0)
        snprintf(w->msg, sizeof w->msg, "%s", msg != NULL ? msg : "it could not be written");
}

/* "12s" or "3m4s": a duration the lock target's clock measured. */
static void secs_text(char *out, size_t len, int64_t secs)
{
    if (secs < 60)
        snprintf(out, len, "%llds", (long long)(secs > 0 ? secs : 0));
    else
        fmt_duration(out, len, (unsigned long long)secs * 1000000);
}

/* The holder's who and message come from the target: shown with control characters as '?'.
 * Times are the lock target's (how long ago it was taken, renewed), shown against our clock. */
static void print_info(FILE *out, const struct lock_info *h, const char *env, const char *target)
{
    char holder[600], renewed[32], left[32];

    if (!h->present) {
        fprintf(out, "%s: not locked (lock target %s)\n", env, target);
        return;
    }
    if (h->partial) {
        fprintf(out, "%s: locked on %s, left half-made by an older n3ctl (no holder written)%s\n",
                env, target,
                h->stale ? "; `n3ctl lock acquire --force` takes it"
                         : "; `n3ctl lock release --force` breaks it");
        return;
    }
    change_describe_holder(h, holder, sizeof holder);
    if (h->unreadable) {
        fprintf(out,
                "%s: locked on %s, but its info cannot be read: %s\n  `n3ctl lock release "
                "--force` breaks it (recorded)\n",
                env, target, holder + strlen("someone whose lock cannot be read "));
        return;
    }
    fprintf(out, "%s: locked on %s by %s\n", env, target, holder);
    if (h->lease_s == 0) {
        fprintf(out, "  held until released (taken by hand)\n");
    } else if (h->lease_s < 0 || h->age_s < 0) {
        fprintf(out, "  its lease cannot be judged (an older n3ctl's lock): `n3ctl lock release "
                     "--force` breaks it if its holder is gone\n");
    } else {
        secs_text(renewed, sizeof renewed, h->age_s);
        if (h->stale) {
            secs_text(left, sizeof left, h->age_s - h->lease_s);
            fprintf(out,
                    "  lease of %llds ran out %s ago, by %s's clock (renewed %s ago): its "
                    "holder seems gone; `n3ctl lock acquire --force` takes it\n",
                    (long long)h->lease_s, left, target, renewed);
        } else {
            secs_text(left, sizeof left, h->lease_s - h->age_s);
            fprintf(out, "  lease of %llds, renewed %s ago, runs out in %s (by %s's clock)\n",
                    (long long)h->lease_s, renewed, left, target);
        }
    }
}

static cJSON *info_json(const struct lock_info *h)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddBoolToObject(o, "locked", h->present);
    if (!h->present)
        return o;
    cJSON_AddBoolToObject(o, "readable", !h->partial && !h->unreadable);
    if (h->partial)
        cJSON_AddBoolToObject(o, "half_made", true);
    if (h->unreadable)
        cJSON_AddStringToObject(o, "unreadable", h->why);
    if (!h->partial && !h->unreadable) {
        cJSON_AddStringToObject(o, "who", h->who);
        cJSON_AddNumberToObject(o, "pid", (double)h->pid);
        cJSON_AddStringToObject(o, "message", h->message);
        cJSON_AddNumberToObject(o, "since", (double)h->since);
        if (h->fence > 0)
            cJSON_AddNumberToObject(o, "fence", (double)h->fence);
    }
    if (h->held_s >= 0)
        cJSON_AddNumberToObject(o, "held_seconds", (double)h->held_s);
    if (h->lease_s >= 0)
        cJSON_AddNumberToObject(o, "lease_seconds", (double)h->lease_s);
    if (h->age_s >= 0 && h->lease_s > 0)
        cJSON_AddNumberToObject(o, "renewed_seconds_ago", (double)h->age_s);
    cJSON_AddBoolToObject(o, "stale", h->stale);
    return o;
}

/* After a takeover or a broken lock: every target's fence goes up to number, so that the
 * holder whose lock went is refused everywhere at once. A target that cannot be reached is
 * said: there, that holder is only stopped by its own check of the lock. */
struct raise_wait {
    size_t left;
    bool done;
    struct change *c;
};

struct raise_slot {
    struct raise_wait *w;
    const char *target;
};

static void raise_done(void *arg, const struct transport_result *r)
{
    struct raise_slot *s = arg;
    char shown[ERR_MSG_MAX];

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char *err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        fprintf(stderr,
                "n3ctl: warning: %s: could not raise its fence (%s%s%s): a holder that lost the "
                "lock stops there only when it checks the lock (within half a lease)\n",
                s->target,
                term_shown(shown, sizeof shown,
                           r->status != TRANSPORT_OK ? r->msg : "the command failed"),
                err[0] ? ": " : "", err);
        free(err);
    }
    if (--s->w->left == 0)
        s->w->done = true;
    free(s);
}

static void raise_fences(struct change *c, uint64_t number)
{
    struct raise_wait *w = xcalloc(1, sizeof *w);
    size_t i;

    w->c = c;
    w->left = c->s.fleet.n;
    for (i = 0; i < c->s.fleet.n; i++) {
        const struct inv_target *t = inv_env_find(c->s.fleet.env, c->s.fleet.names[i]);
        struct raise_slot *s = xcalloc(1, sizeof *s);

        s->w = w;
        s->target = t->name;
        fence_raise(remote_transport(c->s.remote, t->name), t->deploy_path, number, raise_done, s);
    }
    if (w->left == 0)
        w->done = true;
    change_wait(c, &w->done);
    if (w->done)
        free(w); /* else abandoned: the answers still come into it */
}

/* The lock actions are recorded on the lock target too, while the lock is in place: until it
 * goes, no one else appends there. false: abandoned (a second stop signal; w stays allocated
 * for the answer). w->audit_rc says how it went (-1: not written, w->msg says why). */
static bool audit_target(struct change *c, struct transport *t, const char *target,
                         const char *deploy_path, const char *action, const char *result,
                         const cJSON *detail, struct wait *w)
{
    const char *targets[] = {target, NULL};
    struct audit_entry e = {0};

    e.time = (int64_t)time(NULL);
    e.actor = c->s.who;
    e.pid = (long)getpid();
    e.action = action;
    e.targets = targets;
    e.result = result;
    e.detail = detail;
    auditlog_append(t, deploy_path, &e, audit_cb, w);
    return wait_for(c, w);
}

/* The end of acquire and release: the record, with the result rc says ("interrupted" when a
 * second stop signal abandoned it: change_end then leaves the process, with 128 + the
 * signal). */
static int finish(struct change *c, struct dlock *lock, int rc, cJSON *detail)
{
    const char *result = c->s.abandon         ? "interrupted"
                         : rc == EXIT_OK      ? "ok"
                         : rc == EXIT_REFUSED ? "refused"
                                              : "failed";

    /* Abandoned, an operation on the lock may still be in flight: it keeps the lock's memory. */
    if (!c->s.abandon)
        dlock_free(lock);
    rc = change_end(c, rc, result, detail);
    cJSON_Delete(detail);
    return rc;
}

int cmd_lock(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct fleet_args fa;
    struct change c;
    struct dlock *lock;
    const struct inv_target *lt;
    struct transport *t;
    struct wait *w;
    const char *arg, *message = NULL, *sub, *env;
    char shown[ERR_MSG_MAX];
    bool force = false, json = false;
    int opt, first, rc;

    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken > 0 && opt != 'H')
            continue;
        switch (opt) {
        case 'm':
            message = arg;
            break;
        case 'f':
            force = true;
            break;
        case 'j':
            json = true;
            break;
        case 'H':
            cli_usage_error(cmd, "the lock is the environment's: no -H");
            return EXIT_USAGE;
        default:
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (first + 1 != argc) {
        cli_usage_error(cmd, "which? status, acquire or release");
        return EXIT_USAGE;
    }
    sub = argv[first];
    if (strcmp(sub, "status") != 0 && strcmp(sub, "acquire") != 0 && strcmp(sub, "release") != 0) {
        cli_usage_error(cmd, "no subcommand \"%.40s\"; use status, acquire or release", sub);
        return EXIT_USAGE;
    }
    if (strcmp(sub, "acquire") == 0 && (message == NULL || message[0] == '\0')) {
        cli_usage_error(cmd, "say why, for the others: n3ctl lock acquire -m MESSAGE");
        return EXIT_USAGE;
    }
    rc = change_open(&c, &fa, strcmp(sub, "acquire") == 0 ? "lock.acquire" : "lock.release");
    if (rc != 0)
        return rc;
    lt = inv_env_lock_target(c.s.fleet.env);
    c.s.audit_target = lt->name; /* the lock is there, not on the other targets */
    t = remote_transport(c.s.remote, lt->name);
    lock = dlock_new(c.s.loop, t, lt->deploy_path, inventory_lock(c.s.fleet.inv)->lease_ms);
    env = inv_env_name(c.s.fleet.env);
    if (strcmp(sub, "status") == 0) {
        w = wait_new();
        dlock_status(lock, lock_cb, w);
        if (!wait_for(&c, w)) {
            fprintf(stderr, "n3ctl: abandoned reading the deploy lock of %s (on %s)\n", env,
                    lt->name);
            return change_end(&c, EXIT_FAILED, NULL, NULL);
        }
        dlock_free(lock);
        if (w->r != LOCK_OK) {
            fprintf(stderr, "n3ctl: %s\n", term_shown(shown, sizeof shown, w->msg));
            free(w);
            return change_end(&c, EXIT_FAILED, NULL, NULL);
        }
        if (json) {
            cJSON *o = info_json(&w->info);
            char *text;

            cJSON_AddStringToObject(o, "environment", env);
            cJSON_AddStringToObject(o, "lock_target", lt->name);
            text = cJSON_Print(o);
            puts(text);
            cJSON_free(text);
            cJSON_Delete(o);
        } else {
            print_info(stdout, &w->info, env, lt->name);
        }
        free(w);
        return change_end(&c, EXIT_OK, NULL, NULL);
    }
    if (strcmp(sub, "acquire") == 0) {
        cJSON *detail = cJSON_CreateObject();
        const struct lock_info *prev;

        cJSON_AddStringToObject(detail, "message", message);
        /* By hand: no lease, held until `lock release`. */
        w = wait_new();
        dlock_acquire(lock, c.s.who, (long)getpid(), message, false, force, lock_cb, w);
        if (!wait_for(&c, w)) {
            fprintf(stderr,
                    "n3ctl: taking the deploy lock of %s (on %s) was abandoned before its answer "
                    "came. If it was taken all the same, it is yours, by hand (no lease): held "
                    "until `n3ctl lock release` (`n3ctl lock status` shows it)\n",
                    env, lt->name);
            cJSON_AddStringToObject(detail, "abandoned", "taking the deploy lock");
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        if (w->r == LOCK_HELD) {
            fprintf(stderr, "n3ctl: refused: ");
            print_info(stderr, &w->info, env, lt->name);
            free(w);
            return finish(&c, lock, EXIT_REFUSED, detail);
        }
        if (w->r != LOCK_OK) {
            fprintf(stderr, "n3ctl: %s\n", term_shown(shown, sizeof shown, w->msg));
            free(w);
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        free(w);
        cJSON_AddNumberToObject(detail, "fence", (double)dlock_mine(lock)->fence);
        prev = dlock_taken_over(lock);
        if (prev != NULL) {
            char holder[600];

            cJSON_AddItemToObject(detail, "taken_over", info_json(prev));
            change_describe_holder(prev, holder, sizeof holder);
            fprintf(stderr, "n3ctl: took the lock over from %s: its lease had run out\n", holder);
        }
        printf("%s: locked on %s by %s: %s\n", env, lt->name, c.s.who,
               term_shown(shown, sizeof shown, message));
        fflush(stdout);
        /* The holder it replaced may still be at work: from now on the targets refuse it. */
        if (prev != NULL)
            raise_fences(&c, dlock_mine(lock)->fence);
        w = wait_new();
        if (!audit_target(&c, t, lt->name, lt->deploy_path, "lock.acquire", "ok", detail, w)) {
            fprintf(stderr,
                    "n3ctl: abandoned writing the record of it on %s; the lock is taken: "
                    "held until `n3ctl lock release`\n",
                    lt->name);
            cJSON_AddStringToObject(detail, "abandoned", "recording it on the lock target");
            return finish(&c, lock, EXIT_OK, detail);
        }
        if (w->audit_rc < 0) {
            /* Unrecorded, it is not taken: give it back. */
            struct wait *g = wait_new();

            fprintf(stderr, "n3ctl: %s\n", term_shown(shown, sizeof shown, w->msg));
            cJSON_AddStringToObject(detail, "not_recorded", w->msg);
            dlock_release(lock, c.s.who, false, lock_cb, g);
            if (!wait_for(&c, g)) {
                fprintf(stderr,
                        "n3ctl: the lock could not be recorded on %s, and giving it back was "
                        "abandoned: `n3ctl lock status` shows it\n",
                        lt->name);
                free(w);
                return finish(&c, lock, EXIT_FAILED, detail); /* g stays for the answer */
            }
            if (g->r == LOCK_OK)
                fprintf(stderr,
                        "n3ctl: the lock could not be recorded on %s, so it was given back: "
                        "nothing is locked (make room for the audit log there and try again)\n",
                        lt->name);
            else
                fprintf(stderr,
                        "n3ctl: the lock could not be recorded on %s, and giving it back failed "
                        "too: `n3ctl lock status` shows it\n",
                        lt->name);
            free(g);
            free(w);
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        free(w);
        return finish(&c, lock, EXIT_OK, detail);
    }
    /* release: see whose it is, record its release there while it still keeps the others
     * out, then remove it */
    {
        cJSON *detail = cJSON_CreateObject();
        struct lock_info holder;

        cJSON_AddBoolToObject(detail, "force", force);
        w = wait_new();
        dlock_release_check(lock, c.s.who, force, lock_cb, w);
        if (!wait_for(&c, w)) {
            fprintf(stderr,
                    "n3ctl: abandoned before the deploy lock of %s was given back: it is "
                    "as it was\n",
                    env);
            cJSON_AddStringToObject(detail, "abandoned", "reading the deploy lock");
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        if (w->r == LOCK_HELD) {
            fprintf(stderr, "n3ctl: refused, the lock is not yours: ");
            print_info(stderr, &w->info, env, lt->name);
            fprintf(stderr, "n3ctl: `n3ctl lock release --force` breaks it (recorded)\n");
            free(w);
            return finish(&c, lock, EXIT_REFUSED, detail);
        }
        if (w->r != LOCK_OK) {
            fprintf(stderr, "n3ctl: %s\n", term_shown(shown, sizeof shown, w->msg));
            free(w);
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        if (!w->info.present) {
            term_printf(stdout, "%s: %s\n", env, w->msg);
            free(w);
            return finish(&c, lock, EXIT_OK, detail);
        }
        /* Whose lock goes (with --force: whose was broken), in both records. */
        holder = w->info;
        cJSON_AddItemToObject(detail, "holder", info_json(&holder));
        free(w);
        w = wait_new();
        if (!audit_target(&c, t, lt->name, lt->deploy_path, "lock.release", "ok", detail, w)) {
            fprintf(stderr,
                    "n3ctl: abandoned recording the release on %s: the deploy lock was not given "
                    "back (`n3ctl lock release` again)\n",
                    lt->name);
            cJSON_AddStringToObject(detail, "abandoned", "recording it on the lock target");
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        if (w->audit_rc < 0) {
            fprintf(stderr,
                    "n3ctl: %s\nn3ctl: the release could not be recorded on %s, so the lock "
                    "was not given back (make room for the audit log there and try again)\n",
                    term_shown(shown, sizeof shown, w->msg), lt->name);
            cJSON_AddStringToObject(detail, "not_recorded", w->msg);
            free(w);
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        free(w);
        w = wait_new();
        dlock_remove(lock, &holder, force, lock_cb, w);
        if (!wait_for(&c, w)) {
            fprintf(stderr,
                    "n3ctl: abandoned giving the deploy lock of %s back, after its release was "
                    "recorded on %s: `n3ctl lock status` shows whether it is still there\n",
                    env, lt->name);
            cJSON_AddStringToObject(detail, "abandoned", "removing the deploy lock");
            return finish(&c, lock, EXIT_FAILED, detail);
        }
        if (w->r == LOCK_OK && w->msg[0] != '\0') {
            /* Gone meanwhile: given back all the same. */
            term_printf(stdout, "%s: %s\n", env, w->msg);
            rc = EXIT_OK;
        } else if (w->r == LOCK_OK) {
            printf("%s: %s the lock on %s\n", env,
                   force &&
                           (holder.unreadable || holder.partial || strcmp(holder.who, c.s.who) != 0)
                       ? "broke"
                       : "released",
                   lt->name);
            rc = EXIT_OK;
            /* Broken: its holder may be at work still; the targets refuse it from now on. */
            if (dlock_broken_fence(lock) > 0) {
                fflush(stdout);
                cJSON_AddNumberToObject(detail, "fence", (double)dlock_broken_fence(lock));
                raise_fences(&c, dlock_broken_fence(lock));
            }
        } else if (w->r == LOCK_HELD) {
            fprintf(stderr,
                    "n3ctl: the lock changed before it could be removed; not given back "
                    "(its release, recorded on %s, did not happen): ",
                    lt->name);
            print_info(stderr, &w->info, env, lt->name);
            rc = EXIT_FAILED;
        } else {
            fprintf(stderr,
                    "n3ctl: the release was recorded on %s, but the lock could not be removed: "
                    "%s\n",
                    lt->name, term_shown(shown, sizeof shown, w->msg));
            rc = EXIT_FAILED;
        }
        free(w);
        return finish(&c, lock, rc, detail);
    }
}
