/* Commands that change targets: a session, with its messages on stderr and the stop signals. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/change.h"
#include "cli/cli.h"
#include "cli/stop.h"
#include "cli/term.h"
#include "core/loop.h"

void change_audit_local(const char *action, const char *const *targets, const char *result,
                        const cJSON *detail)
{
    struct err err;

    if (session_audit_local(action, targets, result, detail, &err) != 0)
        term_printf(stderr, "n3ctl: warning: the local audit log: %s\n", err.msg);
}

void change_wait(struct change *c, const bool *flag)
{
    session_wait(&c->s, flag);
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
    if (!c->s.abandon)
        fprintf(stderr, "n3ctl: abandoning what is in flight\n");
    c->s.abandon = true;
}

int change_exit_code(const struct change *c, int rc)
{
    return c->signals > 0 ? stop_exit_code(c->stop) : rc;
}

/* The session's messages: on stderr, made safe for the terminal. */
static void change_say(void *arg, enum session_level level, const char *msg)
{
    (void)arg;
    term_printf(stderr, "n3ctl: %s%s\n", level == SESSION_WARNING ? "warning: " : "", msg);
}

static const struct session_hooks hooks = {change_say, fleet_notice, NULL};

int change_open(struct change *c, const struct fleet_args *fa, const char *action)
{
    struct err err;

    memset(c, 0, sizeof *c);
    if (session_open(&c->s, fa->config, fa->env, fa->selectors, action, &hooks, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    c->stop = stop_new_fn(c->s.loop, change_signal, c);
    return 0;
}

void change_describe_holder(const struct lock_info *h, char *out, size_t len)
{
    char raw[1200];

    session_describe_holder(h, raw, sizeof raw);
    term_shown(out, len, raw);
}

bool change_lock_lost(const struct change *c)
{
    return session_lock_lost(&c->s);
}

int change_begin(struct change *c, const struct fleet_args *fa, const char *action,
                 const char *message)
{
    int rc = change_open(c, fa, action);

    return rc != 0 ? rc : change_lock(c, message);
}

int change_lock(struct change *c, const char *message)
{
    cJSON *detail = NULL;
    int rc;

    switch (session_lock(&c->s, message, &detail)) {
    case SESSION_LOCK_OK:
        return 0;
    case SESSION_LOCK_REFUSED:
        rc = change_end(c, EXIT_REFUSED, "refused", detail);
        break;
    case SESSION_LOCK_ABANDONED:
        /* change_end leaves the process from here, with 128 + the signal. */
        rc = change_end(c, EXIT_FAILED, "interrupted", detail);
        break;
    case SESSION_LOCK_FAILED:
    default:
        rc = change_end(c, EXIT_FAILED, "failed", detail);
        break;
    }
    cJSON_Delete(detail);
    return change_exit_code(c, rc);
}

int change_end(struct change *c, int rc, const char *result, const cJSON *detail)
{
    rc = session_finish(&c->s, rc, result, detail);
    if (c->s.abandon) {
        /* Operations are still in flight on the targets' connections: leave them to the
         * process's end (each is atomic there, and the next push clears what they left). */
        fflush(stdout);
        fflush(stderr);
        _exit(change_exit_code(c, rc));
    }
    stop_free(c->stop);
    c->stop = NULL;
    session_close(&c->s);
    return rc;
}
