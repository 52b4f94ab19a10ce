/* n3ctl hosts: every target with reachability, handshake latency and facts; and trusting keys. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "cli/progress.h"
#include "cli/term.h"
#include "core/fmt.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/hoststate.h"
#include "deploy/inventory.h"
#include "deploy/knownhosts.h"
#include "deploy/remote.h"
#include "deploy/semver.h"
#include "deploy/ssh.h"
#include "deploy/transport.h"

/* The thresholds of NAMEL3SS.md's troubleshooting section. */
#define CPU_LIMIT    80.0
#define MEM_LIMIT    85.0
#define IOWAIT_LIMIT 20.0

/* In the facts command's output: the state file follows. */
#define STATE_MARK "n3ctl-state-json"

struct facts {
    char os[128];
    unsigned cpus;
    double load1;
    double cpu_pct, mem_pct, iowait_pct;
    unsigned long long mem_total_kb, disk_free_kb, disk_total_kb;
    char disk_mount[128];
    bool have_cpu, have_mem, have_disk;
    /* From <deploy_path>/.n3/state.json, when there is one: what runs there. */
    bool have_state;
    char live_version[VERSION_NAME_MAX + 1], live_slot[8];
    size_t nreleases;
};

struct hosts_cli;

struct host {
    struct hosts_cli *x;
    const struct inv_target *t;
    struct transport *tr;
    struct transport_op *op;
    enum transport_status status;
    char error[ERR_MSG_MAX];
    uint64_t latency_us;
    struct facts f;
    bool done;
};

struct hosts_cli {
    struct loop *loop;
    struct host *hosts;
    size_t n, left;
};

/* One command a host, so that a slow host costs one round trip: facts as "key values" lines. */
static void facts_command(struct buf *cmd, const char *deploy_path)
{
    shell_cmdf(cmd, "d=%s; p=$d; ", deploy_path);
    buf_adds(cmd, "while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname \"$p\"); done; "
                  "echo \"os $(uname -sr)\"; "
                  "echo \"cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)\"; "
                  "echo \"load $(cut -d' ' -f1 /proc/loadavg)\"; "
                  "awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print \"mem\", t, a}' "
                  "/proc/meminfo; "
                  "echo \"stat1 $(head -n1 /proc/stat)\"; sleep 0.2; "
                  "echo \"stat2 $(head -n1 /proc/stat)\"; "
                  "df -Pk -- \"$p\" | awk 'NR==2{print \"disk\", $2, $4, $6}'; "
                  /* Last: the host state, as it is (JSON over several lines), read no
                   * further than a state can be: a bigger one is not n3ctl's, and would push
                   * the facts out of the output's tail. */
                  "[ -f \"$d/.n3/state.json\" ] && echo " STATE_MARK " && ");
    buf_addf(cmd, "head -c %d -- \"$d/.n3/state.json\"; exit 0", HOSTSTATE_MAX_BYTES + 1);
}

/* The live version and the releases, from the state file after STATE_MARK. */
static void parse_state(const char *target, const char *json, struct facts *f)
{
    struct hoststate *s;
    enum hs_slot live;
    struct err err;

    if (hoststate_parse(target, json, strlen(json), &s, &err) != 0)
        return;
    f->have_state = true;
    f->nreleases = hoststate_nreleases(s);
    if (hoststate_live(s, &live) && hoststate_slot_version(s, live) != NULL) {
        snprintf(f->live_version, sizeof f->live_version, "%s", hoststate_slot_version(s, live));
        snprintf(f->live_slot, sizeof f->live_slot, "%s", hs_slot_name(live));
    }
    hoststate_free(s);
}

/* "cpu user nice system idle iowait irq softirq steal": total and idle+iowait, and iowait. */
static bool parse_stat(const char *s, unsigned long long *total, unsigned long long *idle,
                       unsigned long long *iowait)
{
    unsigned long long v[8] = {0};
    int n = sscanf(s, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    int i;

    if (n < 5)
        return false;
    *total = 0;
    for (i = 0; i < n; i++)
        *total += v[i];
    *idle = v[3] + v[4];
    *iowait = v[4];
    return true;
}

static void parse_facts(const char *text, struct facts *f)
{
    unsigned long long t1 = 0, i1 = 0, w1 = 0, t2 = 0, i2 = 0, w2 = 0;
    bool s1 = false, s2 = false;
    const char *line = text;

    memset(f, 0, sizeof *f);
    while (line != NULL && *line != '\0') {
        const char *nl = strchr(line, '\n');
        char one[512];
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);

        snprintf(one, sizeof one, "%.*s", (int)(len < sizeof one ? len : sizeof one - 1), line);
        if (strncmp(one, "os ", 3) == 0) {
            snprintf(f->os, sizeof f->os, "%.127s", one + 3);
        } else if (strncmp(one, "cpus ", 5) == 0) {
            f->cpus = (unsigned)strtoul(one + 5, NULL, 10);
        } else if (strncmp(one, "load ", 5) == 0) {
            f->load1 = strtod(one + 5, NULL);
        } else if (strncmp(one, "mem ", 4) == 0) {
            unsigned long long total = 0, avail = 0;

            if (sscanf(one + 4, "%llu %llu", &total, &avail) == 2 && total > 0) {
                f->mem_total_kb = total;
                f->mem_pct = 100.0 * (double)(total - avail) / (double)total;
                f->have_mem = true;
            }
        } else if (strncmp(one, "stat1 ", 6) == 0) {
            s1 = parse_stat(one + 6, &t1, &i1, &w1);
        } else if (strncmp(one, "stat2 ", 6) == 0) {
            s2 = parse_stat(one + 6, &t2, &i2, &w2);
        } else if (strncmp(one, "disk ", 5) == 0) {
            if (sscanf(one + 5, "%llu %llu %127s", &f->disk_total_kb, &f->disk_free_kb,
                       f->disk_mount) == 3)
                f->have_disk = true;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (s1 && s2 && t2 > t1) {
        double dt = (double)(t2 - t1);

        f->cpu_pct = 100.0 * (dt - (double)(i2 - i1)) / dt;
        f->iowait_pct = 100.0 * (double)(w2 - w1) / dt;
        f->have_cpu = true;
    }
}

static void flags_of(const struct facts *f, char *out, size_t len)
{
    out[0] = '\0';
    if (f->have_cpu && f->cpu_pct > CPU_LIMIT)
        snprintf(out + strlen(out), len - strlen(out), "%scpu>%.0f%%", out[0] ? " " : "",
                 CPU_LIMIT);
    if (f->have_mem && f->mem_pct > MEM_LIMIT)
        snprintf(out + strlen(out), len - strlen(out), "%smem>%.0f%%", out[0] ? " " : "",
                 MEM_LIMIT);
    if (f->have_cpu && f->iowait_pct > IOWAIT_LIMIT)
        snprintf(out + strlen(out), len - strlen(out), "%siowait>%.0f%%", out[0] ? " " : "",
                 IOWAIT_LIMIT);
}

static void facts_done(void *arg, const struct transport_result *r)
{
    struct host *h = arg;
    char *text;

    h->op = NULL;
    h->done = true;
    /* Idle connections keep their keepalive timers: the loop ends when every host is done. */
    if (--h->x->left == 0)
        loop_stop(h->x->loop);
    h->status = r->status;
    h->latency_us = transport_handshake_us(h->tr);
    if (r->status == TRANSPORT_OK && r->exit_code == 0) {
        char *state;

        text = tail_dup(r->out, NULL);
        state = strstr(text, "\n" STATE_MARK "\n");
        if (state != NULL)
            *state = '\0';
        parse_facts(text, &h->f);
        if (state != NULL)
            parse_state(h->t->name, state + strlen("\n" STATE_MARK "\n"), &h->f);
        free(text);
    } else if (r->status == TRANSPORT_OK) {
        char *err = tail_dup(r->err, NULL);

        h->status = TRANSPORT_FAILED;
        snprintf(h->error, sizeof h->error, "the facts command exited %d: %.200s", r->exit_code,
                 err);
        free(err);
    } else {
        snprintf(h->error, sizeof h->error, "%s", r->msg);
    }
}

static const char *state_name(const struct host *h)
{
    switch (h->status) {
    case TRANSPORT_OK:
        return "ok";
    case TRANSPORT_REFUSED:
        return "refused";
    case TRANSPORT_TIMEOUT:
        return "timed_out";
    case TRANSPORT_FAILED:
        return "error";
    default:
        return "unreachable";
    }
}

static void address_of(const struct inv_target *t, char *out, size_t len)
{
    if (t->transport == INV_LOCAL)
        snprintf(out, len, "local");
    else
        snprintf(out, len, "%s@%s:%u", t->user, t->host, t->port);
}

/* "v1.2.3 (blue)": the live slot's version; "-" when nothing is live. */
static void running_of(const struct facts *f, char *out, size_t len)
{
    if (f->live_version[0] != '\0')
        snprintf(out, len, "%s (%s)", f->live_version, f->live_slot);
    else
        snprintf(out, len, "-");
}

static void print_table(const struct hosts_cli *x, bool color)
{
    size_t i, wname = 6, waddr = 7, wrun = 7;
    char addr[300], lat[32], flags[64], run[VERSION_NAME_MAX + 16];
    struct buf line;

    /* Names, users and hosts are checked when n3.json loads (ASCII without controls):
     * strlen is their width. What the targets said goes through term_add_*. */
    for (i = 0; i < x->n; i++) {
        address_of(x->hosts[i].t, addr, sizeof addr);
        if (strlen(x->hosts[i].t->name) > wname)
            wname = strlen(x->hosts[i].t->name);
        if (strlen(addr) > waddr)
            waddr = strlen(addr);
    }
    for (i = 0; i < x->n; i++) {
        running_of(&x->hosts[i].f, run, sizeof run);
        if (strlen(run) > wrun)
            wrun = strlen(run);
    }
    printf("%s%-*s  %-*s  %-11s  %7s  %-*s  %-24s  %4s  %5s  %5s  %5s  %6s  %9s  %s%s\n",
           term_sgr(color, TERM_BOLD), (int)wname, "TARGET", (int)waddr, "ADDRESS", "STATE",
           "LATENCY", (int)wrun, "RUNNING", "OS", "CPUS", "LOAD", "CPU%", "MEM%", "IOWAIT",
           "DISK FREE", "FLAGS", term_sgr(color, TERM_RESET));
    buf_init(&line);
    for (i = 0; i < x->n; i++) {
        const struct host *h = &x->hosts[i];
        const struct facts *f = &h->f;
        bool ok = h->status == TRANSPORT_OK;

        buf_reset(&line);
        address_of(h->t, addr, sizeof addr);
        if (h->t->transport == INV_LOCAL)
            snprintf(lat, sizeof lat, "-");
        else
            fmt_duration(lat, sizeof lat, h->latency_us);
        flags_of(f, flags, sizeof flags);
        buf_addf(&line, "%-*s  %-*s  %s%-11s%s  %7s  ", (int)wname, h->t->name, (int)waddr, addr,
                 term_sgr(color, ok ? TERM_GREEN : TERM_RED), state_name(h),
                 term_sgr(color, TERM_RESET), ok ? lat : "-");
        if (!ok) {
            term_add_shown(&line, h->error, sizeof h->error);
            printf("%s\n", line.data);
            continue;
        }
        running_of(f, run, sizeof run);
        buf_addf(&line, "%-*s  ", (int)wrun, run);
        term_add_cell(&line, f->os, 24);
        buf_addf(&line, "  %4u  %5.2f  ", f->cpus, f->load1);
        if (f->have_cpu)
            buf_addf(&line, "%5.1f  ", f->cpu_pct);
        else
            buf_addf(&line, "%5s  ", "-");
        if (f->have_mem)
            buf_addf(&line, "%5.1f  ", f->mem_pct);
        else
            buf_addf(&line, "%5s  ", "-");
        if (f->have_cpu)
            buf_addf(&line, "%6.1f  ", f->iowait_pct);
        else
            buf_addf(&line, "%6s  ", "-");
        if (f->have_disk)
            buf_addf(&line, "%8.1fG  ", (double)f->disk_free_kb / (1024.0 * 1024.0));
        else
            buf_addf(&line, "%9s  ", "-");
        buf_addf(&line, "%s%s%s", term_sgr(color && flags[0], TERM_YELLOW), flags,
                 term_sgr(color && flags[0], TERM_RESET));
        printf("%s\n", line.data);
    }
    buf_done(&line);
}

static void print_json(const struct hosts_cli *x)
{
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "targets");
    char flags[64];
    size_t i;

    for (i = 0; i < x->n; i++) {
        const struct host *h = &x->hosts[i];
        cJSON *o = cJSON_CreateObject(), *fl;

        cJSON_AddStringToObject(o, "name", h->t->name);
        cJSON_AddStringToObject(o, "transport", h->t->transport == INV_LOCAL ? "local" : "ssh");
        if (h->t->host != NULL)
            cJSON_AddStringToObject(o, "host", h->t->host);
        if (h->t->transport == INV_SSH) {
            cJSON_AddNumberToObject(o, "port", h->t->port);
            cJSON_AddStringToObject(o, "user", h->t->user);
        }
        cJSON_AddStringToObject(o, "deploy_path", h->t->deploy_path);
        cJSON_AddStringToObject(o, "state", state_name(h));
        if (h->status != TRANSPORT_OK) {
            cJSON_AddStringToObject(o, "error", h->error);
        } else {
            if (h->t->transport == INV_SSH)
                cJSON_AddNumberToObject(o, "handshake_ms", (double)h->latency_us / 1000.0);
            cJSON_AddStringToObject(o, "os", h->f.os);
            cJSON_AddNumberToObject(o, "cpus", h->f.cpus);
            cJSON_AddNumberToObject(o, "load1", h->f.load1);
            if (h->f.have_state) {
                cJSON *st = cJSON_AddObjectToObject(o, "deploy");

                cJSON_AddNumberToObject(st, "releases", (double)h->f.nreleases);
                if (h->f.live_version[0] != '\0') {
                    cJSON_AddStringToObject(st, "live_version", h->f.live_version);
                    cJSON_AddStringToObject(st, "live_slot", h->f.live_slot);
                } else {
                    cJSON_AddNullToObject(st, "live_version");
                    cJSON_AddNullToObject(st, "live_slot");
                }
            }
            if (h->f.have_cpu) {
                cJSON_AddNumberToObject(o, "cpu_percent", h->f.cpu_pct);
                cJSON_AddNumberToObject(o, "iowait_percent", h->f.iowait_pct);
            }
            if (h->f.have_mem)
                cJSON_AddNumberToObject(o, "memory_percent", h->f.mem_pct);
            if (h->f.have_disk) {
                cJSON_AddNumberToObject(o, "disk_free_kb", (double)h->f.disk_free_kb);
                cJSON_AddStringToObject(o, "disk_mount", h->f.disk_mount);
            }
            flags_of(&h->f, flags, sizeof flags);
            fl = cJSON_AddArrayToObject(o, "flags");
            {
                char *tok, *save = NULL;

                for (tok = strtok_r(flags, " ", &save); tok != NULL;
                     tok = strtok_r(NULL, " ", &save))
                    cJSON_AddItemToArray(fl, cJSON_CreateString(tok));
            }
        }
        cJSON_AddItemToArray(arr, o);
    }
    term_put_json(stdout, doc);
    cJSON_Delete(doc);
}

static int check_hosts(struct fleet *fleet, bool json, bool check)
{
    struct hosts_cli x;
    struct remote *remote;
    struct remote_opts ropts = {5000, 64 * 1024, fleet_notice, NULL};
    struct err err;
    size_t i;
    bool refused = false, bad = false;

    memset(&x, 0, sizeof x);
    x.loop = loop_new();
    remote = remote_new(x.loop, fleet->inv, fleet->env, &ropts, &err);
    x.n = fleet->n;
    x.hosts = xcalloc(x.n, sizeof *x.hosts);
    for (i = 0; i < x.n; i++) {
        struct host *h = &x.hosts[i];
        struct buf cmd;

        h->x = &x;
        h->t = inv_env_find(fleet->env, fleet->names[i]);
        h->tr = remote_transport(remote, h->t->name);
        if (h->tr == NULL) {
            h->status = TRANSPORT_FAILED;
            snprintf(h->error, sizeof h->error, "cannot use this target");
            continue;
        }
        buf_init(&cmd);
        facts_command(&cmd, h->t->deploy_path);
        x.left++;
        h->op =
            transport_sh(h->tr, cmd.data, 30000, HOSTSTATE_MAX_BYTES + 64 * 1024, facts_done, h);
        buf_done(&cmd);
    }
    if (x.left > 0)
        loop_run(x.loop);
    if (json)
        print_json(&x);
    else
        print_table(&x, term_color(stdout));
    for (i = 0; i < x.n; i++) {
        char flags[64];

        refused = refused || x.hosts[i].status == TRANSPORT_REFUSED;
        bad = bad || x.hosts[i].status != TRANSPORT_OK;
        flags_of(&x.hosts[i].f, flags, sizeof flags);
        bad = bad || (check && flags[0] != '\0');
    }
    remote_free(remote);
    loop_free(x.loop);
    free(x.hosts);
    return refused ? EXIT_REFUSED : bad ? EXIT_FAILED : EXIT_OK;
}

/* ---- trust ---- */

struct trust {
    struct ssh_result r;
    bool done;
};

static void trust_done(void *arg, const struct ssh_result *r)
{
    struct trust *t = arg;

    t->r = *r;
    t->done = true;
}

/* Is there a terminal to ask on? /dev/tty exists everywhere; opening it tells. */
static bool have_terminal(void)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Ask on the terminal; false unless the answer starts with y. */
static bool confirm(const char *question)
{
    char answer[16] = "";
    FILE *tty = fopen("/dev/tty", "r+");

    if (tty == NULL)
        return false;
    fprintf(tty, "%s [y/N] ", question);
    fflush(tty);
    if (fgets(answer, sizeof answer, tty) == NULL)
        answer[0] = '\0';
    fclose(tty);
    return answer[0] == 'y' || answer[0] == 'Y';
}

static int trust_host(struct fleet *fleet, const char *name, bool yes)
{
    const struct inv_target *t = inv_env_find(fleet->env, name);
    const struct inv_ssh *s = inventory_ssh(fleet->inv);
    struct ssh_settings set;
    struct ssh_pool *pool;
    struct ssh_conn *conn;
    struct knownhosts *kh;
    struct trust tr = {0};
    struct loop *loop;
    struct err err;
    const unsigned char *key;
    const char *type;
    size_t keylen;
    unsigned line = 0;
    char fp[128];
    int rc = EXIT_OK;

    if (t == NULL) {
        fprintf(stderr, "n3ctl: no target \"%s\" in environment \"%s\"\n", name,
                inv_env_name(fleet->env));
        return EXIT_USAGE;
    }
    if (t->transport != INV_SSH) {
        fprintf(stderr, "n3ctl: %s is a local target: there is no host key to trust\n", name);
        return EXIT_USAGE;
    }
    loop = loop_new();
    remote_ssh_settings(s, &set);
    set.keepalive_ms = 0;
    pool = ssh_pool_new(loop, &set, &err);
    if (pool == NULL) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        loop_free(loop);
        return EXIT_USAGE;
    }
    conn = ssh_pool_conn(pool, t->name, t->host, t->port, t->user);
    ssh_connect(conn, trust_done, &tr);
    while (!tr.done)
        loop_run_once(loop, true);
    key = ssh_conn_hostkey(conn, &type, &keylen);
    if (key == NULL) {
        /* The message may quote the server (its banner, its reason for disconnecting). */
        term_printf(stderr, "n3ctl: %s\n", tr.r.msg);
        rc = EXIT_FAILED;
        goto out;
    }
    knownhosts_fingerprint(key, keylen, fp, sizeof fp);
    if (knownhosts_load(s->known_hosts, &kh, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        rc = EXIT_USAGE;
        goto out;
    }
    switch (knownhosts_check(kh, t->host, t->port, type, key, keylen, &line)) {
    case KH_MATCH:
        printf("%s (%s:%u) is trusted already: %s %s\n", name, t->host, t->port, type, fp);
        break;
    case KH_CHANGED:
        fprintf(stderr,
                "n3ctl: WARNING: THE HOST KEY OF %s (%s:%u) HAS CHANGED: it presents %s %s, "
                "line %u of %s has another key. Someone may be intercepting the connection. "
                "`hosts trust` does not replace a known key: if you know why it changed, remove "
                "line %u yourself, then run this again.\n",
                name, t->host, t->port, type, fp, line, s->known_hosts, line);
        rc = EXIT_REFUSED;
        break;
    case KH_REVOKED:
        fprintf(stderr, "n3ctl: the key %s %s of %s is marked @revoked in %s; not trusting it\n",
                type, fp, name, s->known_hosts);
        rc = EXIT_REFUSED;
        break;
    case KH_UNKNOWN: {
        char question[512], *entry;

        printf("%s (%s:%u) presents the host key\n  %s %s\n", name, t->host, t->port, type, fp);
        fflush(stdout);
        snprintf(question, sizeof question, "Trust it and add it to %s?", s->known_hosts);
        if (!yes && !have_terminal()) {
            fprintf(stderr, "n3ctl: not asking without a terminal; check the fingerprint and "
                            "add --yes to trust it\n");
            rc = EXIT_REFUSED;
            break;
        }
        if (!yes && !confirm(question)) {
            fprintf(stderr, "n3ctl: not trusted; nothing was written\n");
            rc = EXIT_REFUSED;
            break;
        }
        entry = knownhosts_line(t->host, t->port, type, key, keylen);
        if (entry == NULL) {
            /* n3.json refuses hosts a line cannot name; what is left is a key without a
             * usable type. */
            fprintf(stderr,
                    "n3ctl: cannot write a known_hosts line for %s (%s:%u) with its %s key; "
                    "nothing was written\n",
                    name, t->host, t->port, type);
            rc = EXIT_FAILED;
        } else if (knownhosts_append(s->known_hosts, entry, &err) != 0) {
            term_printf(stderr, "n3ctl: %s\n", err.msg);
            rc = EXIT_FAILED;
        } else {
            const char *targets[] = {name, NULL};
            cJSON *detail = cJSON_CreateObject();

            cJSON_AddStringToObject(detail, "known_hosts", s->known_hosts);
            cJSON_AddStringToObject(detail, "key_type", type);
            cJSON_AddStringToObject(detail, "fingerprint", fp);
            change_audit_local("hosts.trust", targets, "ok", detail);
            cJSON_Delete(detail);
            printf("added to %s: %s\n", s->known_hosts, entry);
        }
        free(entry);
        break;
    }
    }
    knownhosts_free(kh);
out:
    ssh_pool_free(pool);
    loop_free(loop);
    return rc;
}

int cmd_hosts(const struct cli_cmd *cmd, int argc, char **argv)
{
    const char *arg;
    struct fleet_args fa;
    bool json = false, check = false, yes = false;
    struct fleet fleet;
    struct err err;
    int opt, first, rc;

    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'j':
            json = true;
            break;
        case 'k':
            check = true;
            break;
        case 'y':
            yes = true;
            break;
        default:
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (first < argc && strcmp(argv[first], "trust") != 0) {
        cli_usage_error(cmd, "unknown argument \"%.40s\" (the one subcommand is trust)",
                        argv[first]);
        return EXIT_USAGE;
    }
    if (first < argc && first + 2 != argc) {
        cli_usage_error(cmd, "trust takes one target: n3ctl hosts trust TARGET");
        return EXIT_USAGE;
    }
    if (fleet_open(&fleet, fa.config, fa.env, first < argc ? NULL : fa.selectors, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (first < argc)
        rc = trust_host(&fleet, argv[first + 1], yes);
    else
        rc = check_hosts(&fleet, json, check);
    fleet_close(&fleet);
    return rc;
}
