/*
 * The command line: one table of commands, each with its options. Parsing,
 * `--help` and the man page's synopsis all come from these tables.
 */
#ifndef N3_CLI_H
#define N3_CLI_H

#include <stdbool.h>

/* Exit codes: a contract (docs/n3ctl.1). */
#define EXIT_OK          0
#define EXIT_FAILED      1   /* the work ran and did not succeed */
#define EXIT_USAGE       2   /* bad command line, bad config or plan */
#define EXIT_REFUSED     3   /* refused: host key, authentication, lock */
#define EXIT_INTERRUPTED 130 /* Ctrl-C */

#define CLI_OPT_HELP 'h'
#define CLI_OPT_RAW  256 /* exec --raw (long only) */

struct cli_opt {
    int key;          /* the short letter, or a value >= 256 for long-only options */
    const char *name; /* the long name, without dashes */
    const char *arg;  /* "N", "FILE"; NULL for a flag */
    const char *help;
};

struct cli_cmd {
    const char *name;
    const char *args;           /* positional arguments, for the usage line */
    const char *summary;        /* one line, for the list of commands */
    const char *details;        /* after the options in --help; may be NULL */
    const struct cli_opt *opts; /* terminated by an entry with key 0; -h is implied */
    int (*exec)(const struct cli_cmd *cmd, int argc, char **argv);
};

extern const struct cli_cmd cli_cmds[];

/*
 * Iterate over the options of argv for cmd (getopt_long underneath). Returns
 * the option's key, -1 at the end of the options (*optind_out = first operand),
 * or '?' after printing a usage error. -h/--help prints help and returns 'h'.
 */
int cli_next_opt(const struct cli_cmd *cmd, int argc, char **argv, const char **arg,
                 int *optind_out);
void cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_print_help(const struct cli_cmd *cmd);
/* Parse an unsigned integer option in [min, max]; prints a usage error on failure. */
bool cli_parse_uint(const struct cli_cmd *cmd, const char *opt, const char *s, unsigned min,
                    unsigned max, unsigned *out);

int cmd_run(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_version(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_exec(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_hosts(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_versions(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_changelog(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_release(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_lock(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_audit(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_slots(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_slot(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_traffic(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_help(const struct cli_cmd *cmd, int argc, char **argv);

#endif
