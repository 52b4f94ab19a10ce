/* n3ctl: main() and the table of commands that --help is generated from. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/term.h"
#include "deploy/lock.h"
#include "plugins/builtin.h"
#include "core/cfg.h"
#include "core/xalloc.h"

static const struct cli_opt run_opts[] = {
    {'j', "json", NULL, "print one JSON document with the run's result on stdout"},
    {'p', "parallel", "N", "run at most N processes at once in the whole plan (1-10000)"},
    {'m', "metrics", "FILE", "write the run's metrics to FILE in Prometheus text format"},
    {'t', "traces", "FILE", "write the run's spans to FILE as JSON lines"},
    {'v', "verbose", NULL, "list every step in the final table, not only the ones that failed"},
    {'q', "quiet", NULL, "no live progress on the terminal"},
    {'c', "config", "FILE", "n3.json for remote steps (default: here or in a parent directory)"},
    {'e', "env", "ENV", "the environment remote steps run in (default: default_environment)"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt no_opts[] = {{0, NULL, NULL, NULL}};

static const struct cli_opt exec_opts[] = {
    {'c', "config", "FILE", "the configuration (default: n3.json here or in a parent directory)"},
    {'e', "env", "ENV", "the environment (default: default_environment of n3.json)"},
    {'H', "hosts", "SELECTOR", "targets: a name, label:NAME or all (default); repeat to add"},
    {'p', "parallel", "N", "commands at once (default 32)"},
    {'t', "timeout", "SECONDS", "stop the command on a target after this long"},
    {'j', "json", NULL, "one JSON document with every target's result, no streamed output"},
    {'r', "repeat", "N", "run the command N times over the same connections (timing)"},
    {CLI_OPT_RAW, "raw", NULL, "on a terminal too, pass the output as it is (escape sequences)"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt hosts_opts[] = {
    {'c', "config", "FILE", "the configuration (default: n3.json here or in a parent directory)"},
    {'e', "env", "ENV", "the environment (default: default_environment of n3.json)"},
    {'H', "hosts", "SELECTOR", "targets: a name, label:NAME or all (default); repeat to add"},
    {'k', "check", NULL, "exit 1 also when a target is past a threshold (cpu, memory, iowait)"},
    {'j', "json", NULL, "print the targets as JSON"},
    {'y', "yes", NULL, "trust: add the key without asking"},
    {0, NULL, NULL, NULL},
};

#define FLEET_OPTS                                                                                 \
    {'c', "config", "FILE", "the configuration (default: n3.json here or in a parent directory)"}, \
    {                                                                                              \
        'e', "env", "ENV", "the environment (default: default_environment of n3.json)"             \
    }

static const struct cli_opt versions_opts[] = {
    FLEET_OPTS,
    {'H', "hosts", "SELECTOR", "read where versions run from these targets only"},
    {'l', "local", NULL, "only the repository: do not ask the targets what runs there"},
    {'j', "json", NULL, "print JSON"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt changelog_opts[] = {
    {'c', "config", "FILE", "the configuration (default: n3.json here or in a parent directory)"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt release_opts[] = {
    FLEET_OPTS,
    {'H', "hosts", "SELECTOR", "targets: a name, label:NAME or all (default); repeat to add"},
    {'p', "parallel", "N", "push: targets at once (default 8)"},
    {'R', "rebuild", NULL, "build: pack it again even when the cache has it"},
    {'k', "keep", "N",
     "prune: how many of the newest releases to keep (default app.keep_releases)"},
    {'n', "dry-run", NULL, "prune: say what would go, remove nothing"},
    {'j', "json", NULL, "list: print JSON"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt lock_opts[] = {
    FLEET_OPTS,
    {'m', "message", "MESSAGE", "acquire: why, for whoever else wants to deploy"},
    {'f', "force", NULL, "acquire: take over a lock whose lease ran out; release: break any lock"},
    {'j', "json", NULL, "status: print JSON"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt slots_opts[] = {
    FLEET_OPTS,
    {'H', "hosts", "SELECTOR", "targets: a name, label:NAME or all (default); repeat to add"},
    {'j', "json", NULL, "print JSON (with --watch: one document a line each time)"},
    {'w', "watch", NULL, "look again every --interval seconds, until Ctrl-C"},
    {'i', "interval", "SECONDS", "--watch: seconds between looks (default 2)"},
    {'r', "rate-wait", "SECONDS",
     "seconds between the two reads a request rate is made from (default 1; 0: no rate)"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt slot_opts[] = {
    FLEET_OPTS,
    {'f', "force", NULL, "stop: also a slot that has traffic (drained first) or is live"},
    {'m', "metrics", "FILE", "start: write the probes' metrics to FILE in Prometheus text format"},
    {'t', "traces", "FILE", "start: write the probes' spans (one a check) to FILE as JSON lines"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt traffic_opts[] = {
    FLEET_OPTS,
    {'H', "hosts", "SELECTOR", "targets: a name, label:NAME or all (default); repeat to add"},
    {'f', "force", NULL, "set: send traffic to a slot that is not healthy all the same"},
    {'j', "json", NULL, "print JSON"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt audit_opts[] = {
    FLEET_OPTS,
    {'H', "hosts", "SELECTOR", "verify --targets: these targets only"},
    {'t', "target", "TARGET", "list (or verify) the log on this target instead of the local one"},
    {'T', "targets", NULL, "verify: the logs on the targets too"},
    {'n', "last", "N", "list the last N records (default 50; 0 for all)"},
    {'j', "json", NULL, "print the records as JSON"},
    {0, NULL, NULL, NULL},
};

static const struct cli_opt version_opts[] = {
    {'j', "json", NULL, "print the versions as JSON"},
    {0, NULL, NULL, NULL},
};

const struct cli_cmd cli_cmds[] = {
    {
        .name = "run",
        .args = "PLAN.json",
        .summary = "run a plan of parallel blocks on the embedded executor",
        .details = "Runs the plan's blocks with their strategies (all, any_success, race,\n"
                   "map_reduce, collect), concurrency limits, timeouts, retries and\n"
                   "dependencies; docs/plan.md describes the format. On a terminal it shows\n"
                   "live progress per running block, then a table of the steps.\n"
                   "Ctrl-C stops the running steps (TERM, then KILL after the plan's\n"
                   "kill_grace_seconds) and reports what it stopped; a second Ctrl-C kills\n"
                   "them at once.\n"
                   "\n"
                   "Exit status: 0 the plan succeeded, 1 it failed, 2 usage or plan error,\n"
                   "130 interrupted by SIGINT (143 SIGTERM, 129 SIGHUP, 131 SIGQUIT).",
        .opts = run_opts,
        .exec = cmd_run,
    },
    {
        .name = "exec",
        .args = "-- COMMAND...",
        .summary = "run a command on targets over SSH, output prefixed by target",
        .details = "Runs COMMAND on the selected targets of the environment, at most -p at once,\n"
                   "over one SSH connection per target (host keys checked against known_hosts).\n"
                   "Each output line comes as \"target: line\" (stderr on stderr), then a\n"
                   "summary: ok, failed, unreachable, refused. One COMMAND word is a shell\n"
                   "command as it is; several are quoted one by one.\n"
                   "\n"
                   "Output goes as it is into a pipe or a file. On a terminal, what would take\n"
                   "it over (cursor moves, clearing the screen, the title, the clipboard: every\n"
                   "escape sequence but colours, and control characters but tab) is shown\n"
                   "escaped, as ^[ and \\x9b; --raw passes it all.\n"
                   "\n"
                   "Exit status: 0 every target succeeded, 1 one failed or was unreachable,\n"
                   "2 usage or configuration error, 3 refused (host key, authentication).",
        .opts = exec_opts,
        .exec = cmd_exec,
    },
    {
        .name = "hosts",
        .args = "[trust TARGET]",
        .summary = "every target: reachability, handshake latency and facts; trust host keys",
        .details = "Connects to each selected target and gathers, in one command a host: OS,\n"
                   "CPUs, load, CPU and I/O wait (over 0.2 s), memory, and free disk under\n"
                   "deploy_path. FLAGS marks CPU > 80 %, memory > 85 %, I/O wait > 20 %.\n"
                   "\n"
                   "hosts trust TARGET shows the host key the target presents, with its SHA256\n"
                   "fingerprint, and adds it to known_hosts after you confirm (--yes: without\n"
                   "asking). It never replaces a key that changed.\n"
                   "\n"
                   "Exit status: 0 all reachable (and, with --check, within the thresholds),\n"
                   "1 otherwise, 2 usage or configuration error, 3 refused.",
        .opts = hosts_opts,
        .exec = cmd_hosts,
    },
    {
        .name = "versions",
        .args = NULL,
        .summary = "the app's versions (git tags) and where each runs now",
        .details = "Lists the tags of app.repository that match app.tag_pattern and are semantic\n"
                   "versions, newest first: commit, date, author, subject, on how many targets\n"
                   "the release is, and where it runs (target:slot, * live), read from each\n"
                   "target's state. Tags that are not versions are listed as ignored, with why.",
        .opts = versions_opts,
        .exec = cmd_versions,
    },
    {
        .name = "changelog",
        .args = "FROM TO",
        .summary = "the commits between two versions",
        .details = NULL,
        .opts = changelog_opts,
        .exec = cmd_changelog,
    },
    {
        .name = "release",
        .args = "build VERSION | push VERSION | list | prune",
        .summary = "build a version's release, push it to targets, list and prune releases",
        .details = "build packs the tag's tree into a reproducible tar.gz (the same bytes for the\n"
                   "same tag) in the cache, after the build hook if there is one. push uploads\n"
                   "it to every selected target at once, checks its sha256 there, unpacks it into\n"
                   "a temporary directory and renames it to releases/VERSION (a half-unpacked\n"
                   "release is never visible); a release that is there already is left alone.\n"
                   "prune removes old releases, never one a slot or the rollback needs.\n"
                   "push and prune take the deploy lock and write the audit log.",
        .opts = release_opts,
        .exec = cmd_release,
    },
    {
        .name = "lock",
        .args = "status | acquire -m MESSAGE | release",
        .summary = "the environment's deploy lock: who holds it; take and give it by hand",
        .details = "Every command that changes targets takes the lock and gives it back. A lock\n"
                   "taken by hand is held until released. Someone else's lock refuses with exit\n"
                   "3 and says who holds it since when; --force takes over a lock whose lease ran\n"
                   "out by the lock target's clock (its holder is gone), or, with release, breaks\n"
                   "any lock. Recorded, and the targets' fences raised: a holder that lost the\n"
                   "lock changes nothing more. The lock target needs flock(1).",
        .opts = lock_opts,
        .exec = cmd_lock,
    },
    {
        .name = "slots",
        .args = NULL,
        .summary = "every instance: version, state, health, weight, requests, which slot is live",
        .details = "For each selected target and slot (blue, green): the version state.json\n"
                   "says runs there, the state of its process (running, starting, stopped,\n"
                   "crashed), its pid and port, its health after one round of its probes with\n"
                   "the reason, and the weight the router gives it, read back from the router.\n"
                   "* marks the live slot: the one with traffic (with a router), or the one\n"
                   "current points to. --watch looks again every --interval seconds.\n"
                   "\n"
                   "With a metric source (n3.json's \"metrics\"), REQ/S, ERR% (the share of 5xx)\n"
                   "and P95 (latency; only from a source that has a histogram) for each\n"
                   "instance, \"-\" when unknown (null in JSON, with metrics_why). A rate needs\n"
                   "two reads: n3ctl slots reads the source, waits --rate-wait seconds, reads it\n"
                   "again, and shows the figures of that span (not averages since the start);\n"
                   "--watch reads it every metrics.interval_ms and shows its sliding window.\n"
                   "\n"
                   "Exit status: 0 everything could be read, 1 a target or the router could\n"
                   "not be, 2 usage or configuration error.",
        .opts = slots_opts,
        .exec = cmd_slots,
    },
    {
        .name = "slot",
        .args = "start TARGETS SLOT [VERSION] | stop TARGETS SLOT",
        .summary = "start a version in a slot and wait until it is ready; stop a slot",
        .details = "TARGETS is a target's name, label:NAME or all. start runs VERSION (by\n"
                   "default the one the slot ran last) in the slot as the environment's\n"
                   "service says, pushing its release first where it is missing, and waits\n"
                   "until its probes pass (service.ready_timeout_seconds); a version that\n"
                   "crashes or never gets healthy is stopped again and reported. stop stops\n"
                   "the slot's instance (TERM, then KILL after service.stop_grace_seconds);\n"
                   "a slot that has traffic is refused unless --force, which drains it in the\n"
                   "router first. Both take the deploy lock and write the audit logs.\n"
                   "--metrics and --traces keep what the probes did while start waited:\n"
                   "checks by result, their latency, the health state and the breaker\n"
                   "(n3ctl_probe_*), and a probe.check span a check.\n"
                   "\n"
                   "Exit status: 0 done everywhere, 1 failed somewhere, 2 usage or\n"
                   "configuration error, 3 refused (the lock, a slot with traffic).",
        .opts = slot_opts,
        .exec = cmd_slot,
    },
    {
        .name = "traffic",
        .args = "[set SLOT=WEIGHT [SLOT=WEIGHT]]",
        .summary = "the router's weights, read back; move traffic between the slots",
        .details = "traffic shows each selected target's servers in the router with the\n"
                   "weight, state and sessions the router reports, and each slot's share.\n"
                   "traffic set blue=90 green=10 (one slot alone: the other gets the rest of\n"
                   "100) takes the deploy lock, looks at every slot it gives traffic to and\n"
                   "refuses one that is not healthy (exit 3; --force sends it all the same),\n"
                   "sets the weights of the selected targets' servers (the others keep\n"
                   "theirs), reads them back (a weight not applied as asked is an error that\n"
                   "names both), points current at the slot with the most traffic, and\n"
                   "writes the audit logs.\n"
                   "\n"
                   "Exit status: 0 done, 1 failed, 2 usage or configuration error (no\n"
                   "router), 3 refused (the lock, a slot not healthy).",
        .opts = traffic_opts,
        .exec = cmd_traffic,
    },
    {
        .name = "audit",
        .args = "[verify]",
        .summary = "who changed what, when, where: the hash-chained audit log",
        .details = "Lists the local audit log, or a target's (--target). verify checks that no\n"
                   "record was changed or removed: each carries the sha256 of the one before.",
        .opts = audit_opts,
        .exec = cmd_audit,
    },
    {
        .name = "version",
        .args = NULL,
        .summary = "print n3ctl's version and the versions of its libraries",
        .details = NULL,
        .opts = version_opts,
        .exec = cmd_version,
    },
    {
        .name = "help",
        .args = "[COMMAND]",
        .summary = "show the commands, or the help of one command",
        .details = NULL,
        .opts = no_opts,
        .exec = cmd_help,
    },
    {.name = NULL},
};

static const struct cli_cmd *find_cmd(const char *name)
{
    const struct cli_cmd *c;

    for (c = cli_cmds; c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

/* The command closest to a mistyped one, or NULL. */
static const char *suggest_cmd(const char *word)
{
    const char *names[32];
    const struct cli_cmd *c;
    size_t n = 0;

    for (c = cli_cmds; c->name != NULL && n < 31; c++)
        names[n++] = c->name;
    names[n] = NULL;
    return cfg_suggest(word, names);
}

static void print_overview(FILE *f)
{
    const struct cli_cmd *c;

    fprintf(f, "usage: n3ctl COMMAND [OPTIONS] [ARGS]\n\n"
               "n3ctl runs plans of parallel blocks on its embedded executor\n"
               "(see docs/plan.md).\n\ncommands:\n");
    for (c = cli_cmds; c->name != NULL; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'n3ctl COMMAND --help' shows a command's options; man n3ctl has them all.\n");
}

void cli_print_help(const struct cli_cmd *cmd)
{
    const struct cli_opt *o;

    printf("usage: n3ctl %s [OPTIONS]%s%s\n\n%s\n\noptions:\n", cmd->name, cmd->args ? " " : "",
           cmd->args ? cmd->args : "", cmd->summary);
    for (o = cmd->opts; o->key != 0; o++) {
        char left[64];

        if (o->key < 256)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->key, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        printf("  %-24s %s\n", left, o->help);
    }
    printf("  %-24s %s\n", "-h, --help", "show this help");
    if (cmd->details != NULL)
        printf("\n%s\n", cmd->details);
}

void cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    char *what;

    va_start(ap, fmt);
    what = xvasprintf(fmt, ap);
    va_end(ap);
    /* The message quotes the command line, which may hold anything. */
    term_printf(stderr, "n3ctl %s: %s\n", cmd->name, what);
    free(what);
    fprintf(stderr, "usage: n3ctl %s [OPTIONS]%s%s (see 'n3ctl %s --help')\n", cmd->name,
            cmd->args ? " " : "", cmd->args ? cmd->args : "", cmd->name);
}

bool cli_parse_uint(const struct cli_cmd *cmd, const char *opt, const char *s, unsigned min,
                    unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
        cli_usage_error(cmd, "%s wants a whole number from %u to %u, not \"%.40s\"", opt, min, max,
                        s);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

int cli_next_opt(const struct cli_cmd *cmd, int argc, char **argv, const char **arg,
                 int *optind_out)
{
    struct option longs[32];
    char shorts[80];
    size_t nl = 0, ns = 0;
    const struct cli_opt *o;
    int c;

    shorts[ns++] = ':'; /* report a missing argument as ':' */
    for (o = cmd->opts; o->key != 0 && nl < 30; o++) {
        longs[nl++] =
            (struct option){o->name, o->arg ? required_argument : no_argument, NULL, o->key};
        if (o->key < 256) {
            shorts[ns++] = (char)o->key;
            if (o->arg)
                shorts[ns++] = ':';
        }
    }
    longs[nl++] = (struct option){"help", no_argument, NULL, CLI_OPT_HELP};
    longs[nl] = (struct option){NULL, 0, NULL, 0};
    shorts[ns++] = 'h';
    shorts[ns] = '\0';

    opterr = 0;
    c = getopt_long(argc, argv, shorts, longs, NULL);
    *optind_out = optind;
    *arg = optarg;
    if (c == CLI_OPT_HELP) {
        cli_print_help(cmd);
        return CLI_OPT_HELP;
    }
    if (c == '?') {
        if (optopt != 0 && optopt < 256)
            cli_usage_error(cmd, "unknown option -%c", optopt);
        else
            cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        cli_usage_error(cmd, "option %s needs an argument", argv[optind - 1]);
        return '?';
    }
    return c;
}

int cmd_help(const struct cli_cmd *cmd, int argc, char **argv)
{
    const struct cli_cmd *c;
    const char *arg;
    int opt, first;

    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1)
        return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
    if (first >= argc) {
        print_overview(stdout);
        return EXIT_OK;
    }
    c = find_cmd(argv[first]);
    if (c == NULL) {
        const char *hint = suggest_cmd(argv[first]);

        if (hint != NULL)
            cli_usage_error(cmd, "no command \"%.40s\"; did you mean \"%s\"?", argv[first], hint);
        else
            cli_usage_error(cmd, "no command \"%.40s\"", argv[first]);
        return EXIT_USAGE;
    }
    cli_print_help(c);
    return EXIT_OK;
}

/*
 * A process state that does not depend on who started us: SIGPIPE ignored (a closed stdout is
 * an error to report, not a reason to die and orphan the steps), SIGCHLD at its default (an
 * inherited SIG_IGN would make the kernel reap our children before we read their status), and
 * as many file descriptors as the hard limit allows (each running step holds three).
 */
static void process_setup(void)
{
    struct rlimit rl;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const struct cli_cmd *c;

    process_setup();
    /* Before any n3.json is read: it names them. */
    plugins_register_builtins();

    if (argc < 2) {
        print_overview(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_overview(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cmd_version(find_cmd("version"), 1, argv);
    c = find_cmd(argv[1]);
    if (c == NULL) {
        const char *hint = suggest_cmd(argv[1]);

        if (hint != NULL)
            term_printf(stderr, "n3ctl: no command \"%.40s\"; did you mean \"%s\"?\n", argv[1],
                        hint);
        else
            term_printf(stderr, "n3ctl: no command \"%.40s\"; 'n3ctl --help' lists them\n",
                        argv[1]);
        return EXIT_USAGE;
    }
    {
        struct err err;

        if (dlock_check_operator(&err) != 0) {
            term_printf(stderr, "n3ctl: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    /* getopt sees "n3ctl-run [options...]" */
    optind = 1;
    return c->exec(c, argc - 1, argv + 1);
}
