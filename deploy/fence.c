/* Fences on targets: the wrapper every command of a lock holder runs in there. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/shell.h"
#include "deploy/fence.h"

#define REFUSED_MARK "\036n3ctl-fenced "

/*
 * The wrapper is one shell that holds the fence's flock on descriptor 7 (when the target has
 * flock(1)) and runs the command as its child with that descriptor closed: what the command
 * leaves running does not hold the lock, and the lock goes when the command ends. Reads are
 * the shell's own (read), so a command costs two processes more: flock and the child shell.
 *
 * Raises take turns on another flock (descriptor 6, .n3/fence.raise.lock, never held while a
 * command runs), and look at the fence again once it is theirs: two commands of one holder
 * that both found the fence lower never wait for each other, and a raise waits only for the
 * commands in flight under a lower fence (no command of a fence runs before it is raised).
 */

/* D the .n3 directory, L set when the target has flock, descriptor 7 on D/fence.lock. */
static void add_open(struct buf *cmd, const char *deploy_path)
{
    shell_cmdf(cmd,
               "D=%s/.n3; [ -d \"$D\" ] || mkdir -p -- \"$D\" || exit 1; L=; if command -v "
               "flock >/dev/null 2>&1; then exec 7>>\"$D/fence.lock\" || exit 1; L=1; fi; ",
               deploy_path);
}

/* The target's fence in f, 0 when it has none (or it is not a number). */
#define READ_FENCE "f=; read -r f 2>/dev/null <\"$D/fence\"; case $f in ''|*[!0-9]*) f=0;; esac; "

/* Take the flock on fd in mode (-x, -s), or exit 75 saying that a command holds it. */
static void add_flock(struct buf *cmd, const char *mode, int fd)
{
    buf_addf(
        cmd,
        "[ -z \"$L\" ] || flock %s -w %d %d || { printf 'n3ctl: waited %ds for %%s/fence.lock: "
        "a command of another holder of the deploy lock is in flight there\\n' \"$D\" >&2; "
        "exit 75; }; ",
        mode, FENCE_WAIT_S, fd, FENCE_WAIT_S);
}

/* Raise the fence to num unless it is there already (or higher). With no command in flight (a
 * flock -x that needs no wait), at once; else taking turns with the other raises. Written
 * beside and renamed: a full disk leaves the old fence, never an empty one. */
static void add_raise(struct buf *cmd, const char *num)
{
    buf_adds(cmd, READ_FENCE);
    shell_cmdf(cmd, "if [ \"$f\" -lt %s ]; then if [ -n \"$L\" ] && flock -x -n 7; then :; else ",
               num);
    buf_adds(cmd, "[ -z \"$L\" ] || exec 6>>\"$D/fence.raise.lock\" || exit 1; ");
    add_flock(cmd, "-x", 6);
    buf_adds(cmd, READ_FENCE);
    shell_cmdf(cmd, "if [ \"$f\" -lt %s ]; then ", num);
    add_flock(cmd, "-x", 7);
    buf_adds(cmd, "fi; fi; ");
    buf_adds(cmd, READ_FENCE);
    shell_cmdf(cmd,
               "if [ \"$f\" -lt %s ]; then printf '%%s\\n' %s >\"$D/fence.tmp.$$\" && mv -f -- "
               "\"$D/fence.tmp.$$\" \"$D/fence\" || { rm -f -- \"$D/fence.tmp.$$\"; exit 1; }; fi; "
               "[ -z \"$L\" ] || exec 6>&-; fi; ",
               num, num);
}

void fence_wrap(struct buf *out, const char *deploy_path, uint64_t number, const char *command)
{
    char num[24];

    snprintf(num, sizeof num, "%" PRIu64, number);
    add_open(out, deploy_path);
    add_raise(out, num);
    /* Shared while the command runs; the fence read again under it: another holder may have
     * raised it in between. */
    add_flock(out, "-s", 7);
    buf_adds(out, READ_FENCE);
    shell_cmdf(out,
               "if [ \"$f\" -gt %s ]; then printf '\\036n3ctl-fenced %%s\\n' \"$f\" >&2; exit 76; "
               "fi; /bin/sh -c %s 7>&-; r=$?; ",
               num, command);
    /* A command ended by a signal ends this shell the same way. */
    buf_adds(out, "[ $r -le 128 ] || [ $r -gt 192 ] || kill -$((r - 128)) $$; exit $r");
}

bool fence_refused(const struct transport_result *r, uint64_t *theirs)
{
    char *text;
    bool refused;

    if (r->status != TRANSPORT_OK || r->exit_code != FENCE_REFUSED_EXIT || r->err == NULL ||
        tail_truncated(r->err))
        return false;
    text = tail_dup(r->err, NULL);
    refused = strncmp(text, REFUSED_MARK, strlen(REFUSED_MARK)) == 0;
    if (refused)
        *theirs = strtoull(text + strlen(REFUSED_MARK), NULL, 10);
    free(text);
    return refused;
}

struct transport_op *fence_raise(struct transport *t, const char *deploy_path, uint64_t number,
                                 transport_done_fn done, void *arg)
{
    struct transport_run run;
    struct transport_op *op;
    struct buf cmd;
    char num[24];

    snprintf(num, sizeof num, "%" PRIu64, number);
    buf_init(&cmd);
    add_open(&cmd, deploy_path);
    add_raise(&cmd, num);
    buf_adds(&cmd, "exit 0");
    memset(&run, 0, sizeof run);
    run.command = cmd.data;
    run.timeout_ms = (FENCE_WAIT_S + 30) * 1000u;
    run.unfenced = true;
    run.on_done = done;
    run.arg = arg;
    op = transport_run(t, &run);
    buf_done(&cmd);
    return op;
}
