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

/* The target's fence in f, 0 when it has none; dir is the .n3 directory ("$2" in the scripts
 * run as `sh -c SCRIPT n3fence NUMBER DIR [COMMAND]`, "$D" in the wrapper). */
#define READ_FENCE(dir)                                                                            \
    "f=$(head -c 24 -- \"" dir "/fence\" 2>/dev/null); case $f in ''|*[!0-9]*) f=0;; esac; "

/* Raise the fence to $1 unless it is there already (or higher). */
static const char raise_script[] =
    READ_FENCE("$2") "[ \"$f\" -ge \"$1\" ] || { printf '%s\\n' \"$1\" >\"$2/fence.tmp.$$\" && "
                     "mv -f -- \"$2/fence.tmp.$$\" \"$2/fence\"; }";

/* Run $3 unless the target has seen a higher fence than $1. */
static const char run_script[] =
    READ_FENCE("$2") "if [ \"$f\" -gt \"$1\" ]; then printf '\\036n3ctl-fenced %s\\n' \"$f\" >&2; "
                     "exit 76; fi; exec /bin/sh -c \"$3\"";

/* cmd gets: `SH -c SCRIPT n3fence NUMBER DIR` (and COMMAND), under flock when the target has
 * it: exclusive (mode -x) or shared with the lock's descriptor closed for the command (-o -s),
 * so that what the command leaves running does not hold it. */
static void under_flock(struct buf *cmd, const char *mode, const char *script, const char *num,
                        const char *command)
{
    buf_addf(cmd, "if command -v flock >/dev/null 2>&1; then flock %s -w %d -E 75 ", mode,
             FENCE_WAIT_S);
    buf_adds(cmd, "\"$D/fence.lock\" /bin/sh -c ");
    shell_quote(cmd, script);
    shell_cmdf(cmd, " n3fence %s \"$D\"", num);
    if (command != NULL)
        shell_cmdf(cmd, " %s", command);
    buf_adds(cmd, "; else /bin/sh -c ");
    shell_quote(cmd, script);
    shell_cmdf(cmd, " n3fence %s \"$D\"", num);
    if (command != NULL)
        shell_cmdf(cmd, " %s", command);
    buf_addf(cmd,
             "; fi; r=$?; [ $r -ne 75 ] || printf 'n3ctl: waited %ds for %%s/fence.lock: "
             "a command of another holder of the deploy lock is in flight there\\n' "
             "\"$D\" >&2; ",
             FENCE_WAIT_S);
}

void fence_wrap(struct buf *out, const char *deploy_path, uint64_t number, const char *command)
{
    char num[24];

    snprintf(num, sizeof num, "%" PRIu64, number);
    shell_cmdf(out, "D=%s/.n3; mkdir -p -- \"$D\" || exit 1; ", deploy_path);
    buf_adds(out, READ_FENCE("$D"));
    shell_cmdf(out, "if [ \"$f\" -lt %s ]; then ", num);
    under_flock(out, "-x", raise_script, num, NULL);
    buf_adds(out, "[ $r -eq 0 ] || exit $r; fi; ");
    under_flock(out, "-o -s", run_script, num, command);
    /* A command ended by a signal ends this shell the same way (flock says 128 + it). */
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
    shell_cmdf(&cmd, "D=%s/.n3; mkdir -p -- \"$D\" || exit 1; ", deploy_path);
    under_flock(&cmd, "-x", raise_script, num, NULL);
    buf_adds(&cmd, "exit $r");
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
