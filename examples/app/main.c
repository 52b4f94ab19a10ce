/*
 * n3app, the sample app that n3ctl's tests, benchmarks and demo deploy: a small HTTP/1.1
 * service with /, /health, /version and /metrics, and faults read from its release tree, so
 * that a bad version is really bad (README.md beside this file).
 *
 *   n3app --port P [--bind ADDR] [--slot NAME] [--version V] [--faults FILE]
 *         [--release-dir DIR] [--seed N] [--header-timeout S] [--idle-timeout S]
 *         [--grace S] [--max-connections N]
 *
 * Exit status: 0 after a stop (TERM, INT), 1 when it cannot listen, 2 for a bad command
 * line, release tree or faults file, 70 for crash_at_start.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "applog.h"
#include "faults.h"
#include "server.h"

#define NAME_MAX_LEN 128
#define FAULTS_NAME  "n3app.faults"

static const char usage[] =
    "usage: n3app --port P [options]\n"
    "  --port P             the TCP port to listen on (0: one the kernel picks)\n"
    "  --bind ADDR          the numeric address to listen on (default 127.0.0.1)\n"
    "  --slot NAME          the slot served (default $N3_SLOT, else \"none\")\n"
    "  --version V          the version served (default: the release's REVISION, else its\n"
    "                       VERSION file, else \"unknown\")\n"
    "  --release-dir DIR    the release tree (default: the directory of the program)\n"
    "  --faults FILE        the faults file (default: DIR/" FAULTS_NAME ", if it is there)\n"
    "  --seed N             seed of the error and jitter faults (default: from the clock)\n"
    "  --header-timeout S   seconds a request head may take to arrive (default 10)\n"
    "  --idle-timeout S     seconds an idle keep-alive connection is kept (default 30)\n"
    "  --grace S            seconds the requests in flight get at TERM (default 10)\n"
    "  --max-connections N  connections at once (default 10000, or what the fd limit allows)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("n3app: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; see n3app --help\n", stderr);
    return 2;
}

/* Version and slot are words of the answers, of header values and of metric labels: the
 * characters of n3ctl's version names only. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > NAME_MAX_LEN || s[0] == '-' || s[0] == '.' || strstr(s, "..") != NULL)
        return false;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("._+-", s[i]) != NULL))
            return false;
    return true;
}

/* name_ok, or said on stderr: which value, from where, and what a name is. */
static bool name_checked(const char *what, const char *value, const char *from)
{
    if (name_ok(value))
        return true;
    fprintf(stderr,
            "n3app: the %s \"%.40s\" (from %s) is not a name: 1 to %d of A-Z a-z 0-9 . _ + -, "
            "not starting with - or .\n",
            what, value, from, NAME_MAX_LEN);
    return false;
}

static int parse_seconds(const char *opt, const char *v, double max, int64_t *ms)
{
    char *end;
    double x;

    errno = 0;
    x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x > 0.0) || x > max) {
        fprintf(stderr,
                "n3app: %s %s: give seconds, more than 0 and at most %g; see n3app --help\n", opt,
                v, max);
        return -1;
    }
    *ms = (int64_t)(x * 1000.0 + 0.5);
    if (*ms == 0)
        *ms = 1;
    return 0;
}

static int parse_unsigned(const char *opt, const char *v, unsigned long long max,
                          unsigned long long *out)
{
    char *end;

    errno = 0;
    if (v[0] < '0' || v[0] > '9') {
        fprintf(stderr, "n3app: %s %s: not a number; see n3app --help\n", opt, v);
        return -1;
    }
    *out = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || *out > max) {
        fprintf(stderr, "n3app: %s %s: give a whole number from 0 to %llu; see n3app --help\n", opt,
                v, max);
        return -1;
    }
    return 0;
}

/* The directory of the running program: its release tree, when n3ctl started it there. */
static char *program_dir(const char *argv0)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    char *slash;

    if (n <= 0) {
        if (strchr(argv0, '/') == NULL || strlen(argv0) >= sizeof buf)
            return strdup(".");
        n = (ssize_t)strlen(argv0);
        memcpy(buf, argv0, (size_t)n);
    }
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == buf)
        slash++;
    *slash = '\0';
    return strdup(buf);
}

/*
 * The first line of DIR/FILE that starts with prefix, without it and the line's end, into
 * out. REVISION (written by n3ctl into every release) has "version V"; VERSION is the version
 * alone. 1 found, 0 not there, -1 unreadable (said on stderr).
 */
static int read_tree_line(const char *dir, const char *file, const char *prefix, char *out,
                          size_t n)
{
    char path[PATH_MAX], text[4097], *line, *save = NULL;
    size_t len;
    FILE *fp;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return 0;
    fp = fopen(path, "rb");
    if (fp == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        fprintf(stderr, "n3app: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    len = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[len] = '\0';
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (l > 0 && line[l - 1] == '\r')
            line[--l] = '\0';
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            snprintf(out, n, "%s", line + strlen(prefix));
            return 1;
        }
    }
    return 0;
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * slow_start_ms: the process runs, but does not listen yet, as an app that loads its data
 * before it opens its port. TERM and INT end it (status 0); HUP reads the faults again.
 * 1 to go on and listen, 0 stopped.
 */
static int slow_start(struct server_config *cfg, int sigfd)
{
    int64_t end = mono_ns() + (int64_t)cfg->faults.slow_start_ms * 1000000;

    applog_line("slow_start_ms is %u: listening in %u ms", cfg->faults.slow_start_ms,
                cfg->faults.slow_start_ms);
    for (;;) {
        struct pollfd pfd = {.fd = sigfd, .events = POLLIN};
        struct signalfd_siginfo si;
        int64_t left = end - mono_ns();

        if (left <= 0)
            return 1;
        /* Rounded up: never listening before the time is over. */
        if (poll(&pfd, 1, (int)((left + 999999) / 1000000)) <= 0)
            continue;
        while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            char err[600];
            struct faults f;
            if (si.ssi_signo != SIGHUP) {
                applog_line("stopped on %s during the slow start, before listening",
                            si.ssi_signo == SIGTERM ? "TERM" : "INT");
                return 0;
            }
            if (cfg->faults_path != NULL &&
                faults_load(cfg->faults_path, cfg->faults_explicit, &f, err, sizeof err) == 0) {
                f.slow_start_ms = cfg->faults.slow_start_ms; /* the start is under way */
                cfg->faults = f;
                applog_line("HUP: faults reloaded from %s", cfg->faults_path);
            } else if (cfg->faults_path != NULL) {
                applog_line("HUP: faults not reloaded: %s", err);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"slot", required_argument, NULL, 's'},
        {"version", required_argument, NULL, 'v'},
        {"faults", required_argument, NULL, 'f'},
        {"release-dir", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 'S'},
        {"header-timeout", required_argument, NULL, 'H'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"grace", required_argument, NULL, 'g'},
        {"max-connections", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct server_config cfg = {
        .bind_addr = "127.0.0.1",
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 30000,
        .grace_ms = 10000,
    };
    const char *version_from = "--version", *slot_from = "--slot", *opt_version = NULL;
    const char *opt_slot = NULL, *opt_faults = NULL, *opt_dir = NULL;
    char version[NAME_MAX_LEN + 2] = "", err[700], desc[256], *dir, *faults_path = NULL;
    unsigned long long num, max_conns = 10000;
    bool have_port = false, have_seed = false;
    struct rlimit rl;
    struct timeval tv;
    sigset_t mask;
    int c, sigfd, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_unsigned("--port", optarg, 65535, &num) != 0)
                return 2;
            cfg.port = (unsigned)num;
            have_port = true;
            break;
        case 'b':
            cfg.bind_addr = optarg;
            break;
        case 's':
            opt_slot = optarg;
            break;
        case 'v':
            opt_version = optarg;
            break;
        case 'f':
            opt_faults = optarg;
            break;
        case 'r':
            opt_dir = optarg;
            break;
        case 'S':
            if (parse_unsigned("--seed", optarg, ULLONG_MAX, &num) != 0)
                return 2;
            cfg.seed = num;
            have_seed = true;
            break;
        case 'H':
            if (parse_seconds("--header-timeout", optarg, 3600, &cfg.header_timeout_ms) != 0)
                return 2;
            break;
        case 'I':
            if (parse_seconds("--idle-timeout", optarg, 86400, &cfg.idle_timeout_ms) != 0)
                return 2;
            break;
        case 'g':
            if (parse_seconds("--grace", optarg, 3600, &cfg.grace_ms) != 0)
                return 2;
            break;
        case 'm':
            if (parse_unsigned("--max-connections", optarg, 1000000, &max_conns) != 0)
                return 2;
            if (max_conns == 0)
                return usage_error("--max-connections %s: give at least 1", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return usage_error("bad option (getopt said which)");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!have_port)
        return usage_error("--port is required");
    {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM}, *ai;
        if (getaddrinfo(cfg.bind_addr, NULL, &hints, &ai) != 0)
            return usage_error("--bind %s: give a numeric IPv4 or IPv6 address", cfg.bind_addr);
        freeaddrinfo(ai);
    }

    /* Where it runs from: the release tree n3ctl unpacked (REVISION, n3app.faults). */
    dir = opt_dir != NULL ? strdup(opt_dir) : program_dir(argv[0]);
    if (dir == NULL)
        return 1;
    if (opt_version != NULL) {
        snprintf(version, sizeof version, "%s", opt_version);
    } else if ((rc = read_tree_line(dir, "REVISION", "version ", version, sizeof version)) > 0) {
        version_from = "REVISION";
    } else if (rc == 0 && (rc = read_tree_line(dir, "VERSION", "", version, sizeof version)) > 0) {
        version_from = "VERSION";
    } else if (rc < 0) {
        free(dir);
        return 2;
    } else {
        snprintf(version, sizeof version, "unknown");
        version_from = "nowhere: no --version, REVISION or VERSION";
    }
    if (!name_checked("version", version, version_from)) {
        free(dir);
        return 2;
    }
    cfg.version = version;
    if (opt_slot == NULL) {
        const char *env = getenv("N3_SLOT");
        if (env != NULL && env[0] != '\0') {
            opt_slot = env;
            slot_from = "N3_SLOT";
        } else {
            opt_slot = "none";
            slot_from = "nowhere: no --slot or N3_SLOT";
        }
    }
    if (!name_checked("slot", opt_slot, slot_from)) {
        free(dir);
        return 2;
    }
    cfg.slot = opt_slot;

    if (opt_faults != NULL) {
        cfg.faults_path = opt_faults;
        cfg.faults_explicit = true;
    } else {
        if (asprintf(&faults_path, "%s/%s", dir, FAULTS_NAME) < 0) {
            free(dir);
            return 1;
        }
        cfg.faults_path = faults_path;
    }
    if (faults_load(cfg.faults_path, cfg.faults_explicit, &cfg.faults, err, sizeof err) != 0) {
        fprintf(stderr, "n3app: %s\n", err);
        free(faults_path);
        free(dir);
        return 2;
    }

    /* Signals come through a descriptor of the loop: no handler runs between two calls. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0) {
        fprintf(stderr, "n3app: signalfd: %s\n", strerror(errno));
        free(faults_path);
        free(dir);
        return 1;
    }
    /* As many connections as the hard limit allows, a few descriptors kept back. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max_conns + 32)
            max_conns = rl.rlim_cur > 64 ? rl.rlim_cur - 32 : 32;
    }
    cfg.max_connections = (unsigned)max_conns;
    gettimeofday(&tv, NULL);
    cfg.start_time = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    if (!have_seed)
        cfg.seed = ((uint64_t)tv.tv_sec << 20) ^ (uint64_t)tv.tv_usec ^ ((uint64_t)getpid() << 40);

    faults_describe(&cfg.faults, desc, sizeof desc);
    applog_line("starting: version %s (from %s), slot %s (from %s), release %s, faults %s "
                "(%s), seed %llu",
                cfg.version, version_from, cfg.slot, slot_from, dir, cfg.faults_path,
                access(cfg.faults_path, F_OK) == 0 ? desc : "not there: none",
                (unsigned long long)cfg.seed);
    rc = 0;
    if (cfg.faults.crash_at_start) {
        applog_line("crash_at_start is set in %s: exiting with status %d before listening",
                    cfg.faults_path, FAULTS_EXIT_CRASH);
        rc = FAULTS_EXIT_CRASH;
    } else if (cfg.faults.slow_start_ms == 0 || slow_start(&cfg, sigfd) == 1) {
        rc = server_run(&cfg, sigfd);
    }
    close(sigfd);
    free(faults_path);
    free(dir);
    return rc;
}
