/* n3ctl lock status | acquire -m MSG | release: the environment's deploy lock, by hand. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/inventory.h"
#include "deploy/lock.h"
#include "deploy/remote.h"

struct wait {
    bool done;
    enum lock_result r;
    struct lock_info info;
    char msg[ERR_MSG_MAX];
    int audit_rc;
};

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

    w->done = true;
    w->audit_rc = rc;
    if (rc != 0)
        fprintf(stderr, "n3ctl: warning: %s\n", msg);
}

static void print_info(FILE *out, const struct lock_info *h, const char *env, const char *target)
{
    char since[32], until[32];
    time_t t = (time_t)h->since, u = (time_t)h->lease_until;
    struct tm tm;

    if (!h->present) {
        fprintf(out, "%s: not locked (lock target %s)\n", env, target);
        return;
    }
    if (h->partial) {
        fprintf(out,
                "%s: locked on %s, being taken right now or left half-made (no holder written)\n",
                env, target);
        return;
    }
    gmtime_r(&t, &tm);
    strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(out, "%s: locked on %s by %s (pid %ld) since %s", env, target, h->who, h->pid, since);
    if (h->message[0])
        fprintf(out, ": %s", h->message);
    if (h->lease_until == 0) {
        fprintf(out, "\n  held until released (taken by hand)\n");
    } else {
        gmtime_r(&u, &tm);
        strftime(until, sizeof until, "%H:%M:%S UTC", &tm);
        fprintf(out, "\n  lease until %s%s\n", until,
                h->lease_until < (int64_t)time(NULL) ? " (ran out: its holder seems gone; "
                                                       "`n3ctl lock acquire --force` takes it)"
                                                     : "");
    }
}

static cJSON *info_json(const struct lock_info *h)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddBoolToObject(o, "locked", h->present);
    if (h->present && !h->partial) {
        cJSON_AddStringToObject(o, "who", h->who);
        cJSON_AddNumberToObject(o, "pid", (double)h->pid);
        cJSON_AddStringToObject(o, "message", h->message);
        cJSON_AddNumberToObject(o, "since", (double)h->since);
        cJSON_AddNumberToObject(o, "lease_until", (double)h->lease_until);
    }
    return o;
}

/* The lock actions are recorded on the lock target too. */
static void audit_target(struct change *c, struct transport *t, const char *target,
                         const char *deploy_path, const char *action, const char *result,
                         const cJSON *detail)
{
    const char *targets[] = {target, NULL};
    struct audit_entry e = {0};
    struct wait w = {0};

    e.time = (int64_t)time(NULL);
    e.actor = c->who;
    e.pid = (long)getpid();
    e.action = action;
    e.targets = targets;
    e.result = result;
    e.detail = detail;
    auditlog_append(t, deploy_path, &e, audit_cb, &w);
    change_wait(c, &w.done);
}

/* The end of acquire and release: the record, with the result rc says. */
static int finish(struct change *c, struct dlock *lock, int rc, cJSON *detail)
{
    dlock_free(lock);
    rc = change_end(c, rc,
                    rc == EXIT_OK        ? "ok"
                    : rc == EXIT_REFUSED ? "refused"
                                         : "failed",
                    detail);
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
    struct wait w = {0};
    const char *arg, *message = NULL, *sub;
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
    lt = inv_env_lock_target(c.fleet.env);
    c.audit_target = lt->name; /* the lock is there, not on the other targets */
    t = remote_transport(c.remote, lt->name);
    lock = dlock_new(c.loop, t, lt->deploy_path, inventory_lock(c.fleet.inv)->lease_ms);
    if (strcmp(sub, "status") == 0) {
        dlock_status(lock, lock_cb, &w);
        change_wait(&c, &w.done);
        dlock_free(lock);
        if (w.r != LOCK_OK) {
            fprintf(stderr, "n3ctl: %s\n", w.msg);
            return change_end(&c, EXIT_FAILED, NULL, NULL);
        }
        if (json) {
            cJSON *o = info_json(&w.info);
            char *text;

            cJSON_AddStringToObject(o, "environment", inv_env_name(c.fleet.env));
            cJSON_AddStringToObject(o, "lock_target", lt->name);
            text = cJSON_Print(o);
            puts(text);
            cJSON_free(text);
            cJSON_Delete(o);
        } else {
            print_info(stdout, &w.info, inv_env_name(c.fleet.env), lt->name);
        }
        return change_end(&c, EXIT_OK, NULL, NULL);
    }
    if (strcmp(sub, "acquire") == 0) {
        cJSON *detail = cJSON_CreateObject();
        const struct lock_info *prev;

        /* By hand: no lease, held until `lock release`. */
        dlock_acquire(lock, c.who, (long)getpid(), message, false, force, lock_cb, &w);
        change_wait(&c, &w.done);
        cJSON_AddStringToObject(detail, "message", message);
        prev = dlock_taken_over(lock);
        if (w.r == LOCK_OK && prev != NULL) {
            cJSON_AddItemToObject(detail, "taken_over", info_json(prev));
            fprintf(stderr, "n3ctl: took the lock over from %s (its lease had run out)\n",
                    prev->who[0] ? prev->who : "a holder that never wrote its name");
        }
        if (w.r == LOCK_OK) {
            printf("%s: locked on %s by %s: %s\n", inv_env_name(c.fleet.env), lt->name, c.who,
                   message);
            audit_target(&c, t, lt->name, lt->deploy_path, "lock.acquire", "ok", detail);
            rc = EXIT_OK;
        } else if (w.r == LOCK_HELD) {
            fprintf(stderr, "n3ctl: refused: ");
            print_info(stderr, &w.info, inv_env_name(c.fleet.env), lt->name);
            rc = EXIT_REFUSED;
        } else {
            fprintf(stderr, "n3ctl: %s\n", w.msg);
            rc = EXIT_FAILED;
        }
        return finish(&c, lock, rc, detail);
    }
    /* release */
    {
        cJSON *detail = cJSON_CreateObject();

        dlock_release(lock, c.who, force, lock_cb, &w);
        change_wait(&c, &w.done);
        cJSON_AddBoolToObject(detail, "force", force);
        if (w.r == LOCK_OK && w.msg[0] != '\0') {
            printf("%s: %s\n", inv_env_name(c.fleet.env), w.msg);
            rc = EXIT_OK;
        } else if (w.r == LOCK_OK) {
            if (w.info.present)
                cJSON_AddItemToObject(detail, "holder", info_json(&w.info));
            printf("%s: released the lock on %s\n", inv_env_name(c.fleet.env), lt->name);
            audit_target(&c, t, lt->name, lt->deploy_path, "lock.release", "ok", detail);
            rc = EXIT_OK;
        } else if (w.r == LOCK_HELD) {
            fprintf(stderr, "n3ctl: refused, the lock is not yours: ");
            print_info(stderr, &w.info, inv_env_name(c.fleet.env), lt->name);
            fprintf(stderr, "n3ctl: `n3ctl lock release --force` breaks it (recorded)\n");
            rc = EXIT_REFUSED;
        } else {
            fprintf(stderr, "n3ctl: %s\n", w.msg);
            rc = EXIT_FAILED;
        }
        return finish(&c, lock, rc, detail);
    }
}
