/* n3ctl release build | push | list | prune: releases of git-tagged versions on targets. */
#include "config.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "cli/progress.h"
#include "cli/term.h"
#include "core/fmt.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/hoststate.h"
#include "deploy/inventory.h"
#include "deploy/release.h"
#include "deploy/remote.h"
#include "deploy/semver.h"

#define PUSH_DEFAULT_PARALLEL 8

/* ---- building, on the thread pool ---- */

struct build_job {
    const struct inventory *inv;
    const char *version;
    bool rebuild;
    struct release_build_ctl ctl; /* cancel on a stop signal; the build's stage */
    struct release_artifact a;
    struct err err;
    int rc;
    bool done;
};

static void build_work(void *arg)
{
    struct build_job *j = arg;

    j->rc = release_build(j->inv, j->version, j->rebuild, &j->ctl, &j->a, &j->err);
}

struct build_line {
    struct build_job *j;
    struct loop *loop;
    struct loop_timer *tick;
    uint64_t t0;
};

/* On a terminal, while the build runs: "building v1.4.2: packing... 3.2s". */
static void build_tick(void *arg)
{
    struct build_line *b = arg;
    char dur[32];

    fmt_duration(dur, sizeof dur, loop_now_us(b->loop) - b->t0);
    fprintf(stderr, "\r\033[Kbuilding %s: %s... %s", b->j->version,
            release_build_stage_name(atomic_load(&b->j->ctl.stage)), dur);
    fflush(stderr);
    loop_timer_start(b->tick, 200);
}

/* Build (or find in the cache) on the thread pool, the loop going on meanwhile. */
static int build(struct change *c, const char *version, bool rebuild, struct release_artifact *out)
{
    struct loop *loop = c->s.loop;
    struct build_job j;
    struct build_line line = {0};
    uint64_t t0 = loop_now_us(loop);
    char dur[32], size[32];

    memset(&j, 0, sizeof j);
    j.inv = c->s.fleet.inv;
    j.version = version;
    j.rebuild = rebuild;
    atomic_init(&j.ctl.cancel, false);
    atomic_init(&j.ctl.stage, RB_CHECKING);
    atomic_init(&j.ctl.hook, 0);
    line.j = &j;
    line.loop = loop;
    line.t0 = t0;
    if (term_is_tty(stderr)) {
        line.tick = loop_timer_new(loop, build_tick, &line);
        build_tick(&line);
    }
    loop_work(loop, build_work, &j, &j.done);
    /* A stop signal stops the build (its hook, then the packing) and nothing is pushed. */
    while (!j.done && !c->s.abandon) {
        loop_run_once(loop, true);
        if (c->signals > 0)
            atomic_store(&j.ctl.cancel, true);
    }
    if (line.tick != NULL) {
        loop_timer_free(line.tick);
        fputs("\r\033[K", stderr);
    }
    if (!j.done) {
        /* Abandoned: the cache is written by rename, so nothing half-made stays; a build hook
         * still running (it may ignore TERM) is killed, or it would outlive us. */
        int group = atomic_load(&j.ctl.hook);

        if (group > 0)
            kill(-group, SIGKILL);
        fprintf(stderr, "n3ctl: the build of %s was abandoned%s\n", version,
                group > 0 ? " (its build hook was killed)" : "");
        fflush(stderr);
        _exit(change_exit_code(c, EXIT_FAILED));
    }
    if (j.rc == RELEASE_ECANCELED) {
        fprintf(stderr, "n3ctl: interrupted: the build of %s was stopped; nothing was changed\n",
                version);
        return change_exit_code(c, EXIT_FAILED);
    }
    if (j.rc == 0 && c->signals > 0) {
        release_artifact_done(&j.a);
        fprintf(stderr, "n3ctl: interrupted: %s was built but nothing was changed\n", version);
        return change_exit_code(c, EXIT_FAILED);
    }
    if (j.rc != 0) {
        term_printf(stderr, "n3ctl: %s\n", j.err.msg);
        return j.rc == RELEASE_EUSAGE ? EXIT_USAGE : EXIT_FAILED;
    }
    *out = j.a;
    fmt_duration(dur, sizeof dur, loop_now_us(loop) - t0);
    if (out->size >= 1000000)
        snprintf(size, sizeof size, "%.1f MB", (double)out->size / 1e6);
    else
        snprintf(size, sizeof size, "%.1f kB", (double)out->size / 1e3);
    if (out->cached)
        fprintf(stderr, "%s (commit %.7s) from the cache: %s, %llu entries, sha256 %.16s\n",
                out->version, out->commit, size, (unsigned long long)out->files, out->sha256);
    else
        fprintf(stderr, "built %s (commit %.7s) in %s: %s, %llu entries, sha256 %.16s\n",
                out->version, out->commit, dur, size, (unsigned long long)out->files, out->sha256);
    return 0;
}

/* ---- fan-out over targets with at most `parallel` at once ---- */

struct fanout;
typedef void (*start_fn)(struct fanout *f, size_t i);

struct fanout {
    struct change *c;
    size_t n, next, running, finished;
    unsigned parallel;
    start_fn start;
    struct target_result *res;
    unsigned char *state;    /* per target: 0 not started, 1 running, 2 finished */
    const char **stage;      /* per running target: what it is doing */
    uint64_t *sent, *total;  /* per target: bytes of the release uploaded, of all */
    uint64_t t0;             /* when the fan-out started (loop clock, us) */
    struct loop_timer *tick; /* redraws the status line, on a terminal */
    bool abandoned;          /* a second stop signal: what is in flight may still call back */
    bool drawn;              /* the status line is on the screen */
    const struct release_artifact *a;
    struct release_op_ctx ctx;
    unsigned keep;
    bool dry_run;
    bool done;
};

struct slot {
    struct fanout *f;
    size_t i;
    uint64_t t0;
};

/* ---- the status line under the results, on a terminal: what the running targets do ---- */

#define STATUS_INTERVAL_MS 200

static void status_clear(struct fanout *f)
{
    if (f->drawn)
        fputs("\r\033[K", stderr);
    f->drawn = false;
}

/* "  [3/10] uploading 5, unpacking 2  4.2s": the stages in the order first seen. */
static void status_draw(struct fanout *f)
{
    const char *seen[8];
    size_t count[8], nseen = 0, i, k;
    char line[256], dur[32];
    unsigned width = term_width(stderr);
    int n;

    for (i = 0; i < f->n; i++) {
        if (f->state[i] != 1)
            continue;
        for (k = 0; k < nseen && seen[k] != f->stage[i]; k++)
            ;
        if (k == nseen && nseen < 8) {
            seen[nseen] = f->stage[i];
            count[nseen++] = 0;
        }
        if (k < nseen)
            count[k]++;
    }
    n = snprintf(line, sizeof line, "  [%zu/%zu]", f->finished, f->n);
    for (k = 0; k < nseen && n < (int)sizeof line; k++) {
        uint64_t sent = 0, total = 0;

        n += snprintf(line + n, sizeof line - (size_t)n, "%s %s %zu", k ? "," : "", seen[k],
                      count[k]);
        for (i = 0; i < f->n; i++) {
            if (f->state[i] == 1 && f->stage[i] == seen[k] && f->total[i] > 0) {
                sent += f->sent[i];
                total += f->total[i];
            }
        }
        /* Uploads (over ssh) say how far they are. */
        if (sent > 0 && total > 0 && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, " (%u%%)",
                          (unsigned)(sent * 100 / total));
    }
    fmt_duration(dur, sizeof dur, loop_now_us(f->c->s.loop) - f->t0);
    if (n < (int)sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "  %s", dur);
    if (width > 1 && strlen(line) >= width)
        line[width - 1] = '\0';
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    f->drawn = true;
}

static void status_tick(void *arg)
{
    struct fanout *f = arg;

    status_draw(f);
    loop_timer_start(f->tick, STATUS_INTERVAL_MS);
}

static void on_stage(void *arg, const char *stage)
{
    struct slot *s = arg;

    s->f->stage[s->i] = stage;
}

static void on_progress(void *arg, uint64_t sent, uint64_t total)
{
    struct slot *s = arg;

    s->f->sent[s->i] = sent;
    s->f->total[s->i] = total;
}

static void fanout_pump(struct fanout *f)
{
    /* After a stop signal, or once the lock is lost, nothing new starts; what runs finishes
     * (and a lost lock's fence refuses its next change). */
    bool stop = f->c->signals > 0 || change_lock_lost(f->c);

    while (f->running < f->parallel && f->next < f->n && !stop) {
        f->running++;
        f->state[f->next] = 1;
        f->start(f, f->next++);
        stop = change_lock_lost(f->c);
    }
    if (f->finished == f->n || (stop && f->running == 0))
        f->done = true;
}

static void start_push(struct fanout *f, size_t i);

/* A message of several lines (a hook's output, a target's stderr), shown, its lines after the
 * first indented. */
static void print_indented(FILE *out, const char *msg, const char *indent)
{
    struct buf shown;
    const char *p;

    buf_init(&shown);
    term_add_text(&shown, msg, strlen(msg));
    for (p = shown.data; *p != '\0'; p++) {
        fputc(*p, out);
        if (*p == '\n' && p[1] != '\0')
            fputs(indent, out);
    }
    buf_done(&shown);
}

static void one_done(void *arg, const struct target_result *r)
{
    struct slot *s = arg;
    struct fanout *f = s->f;
    static const char *const words[] = {"done", "already there", "FAILED"};
    static const char *const prune_words[] = {"done", "unchanged", "FAILED"};
    char dur[32];

    if (f->abandoned) { /* said and summed up already */
        free(s);
        return;
    }
    f->res[s->i] = *r;
    f->res[s->i].target = f->c->s.fleet.names[s->i];
    f->state[s->i] = 2;
    fmt_duration(dur, sizeof dur, loop_now_us(f->c->s.loop) - s->t0);
    status_clear(f);
    fprintf(stderr, "  %s: %s (%s)%s", f->c->s.fleet.names[s->i],
            (f->start == start_push ? words : prune_words)[r->outcome], dur, r->msg[0] ? ": " : "");
    print_indented(stderr, r->msg, "      ");
    fputc('\n', stderr);
    f->running--;
    f->finished++;
    if (f->tick != NULL && f->finished < f->n)
        status_draw(f);
    free(s);
    fanout_pump(f);
}

static const struct inv_target *target_of(struct fanout *f, size_t i)
{
    return inv_env_find(f->c->s.fleet.env, f->c->s.fleet.names[i]);
}

static void start_push(struct fanout *f, size_t i)
{
    struct slot *s = xcalloc(1, sizeof *s);
    const struct inv_target *t = target_of(f, i);

    s->f = f;
    s->i = i;
    s->t0 = loop_now_us(f->c->s.loop);
    f->stage[i] = "starting";
    release_push_target(&f->ctx, remote_transport(f->c->s.remote, t->name), t, f->a, one_done, s);
}

static void start_prune(struct fanout *f, size_t i)
{
    struct slot *s = xcalloc(1, sizeof *s);
    const struct inv_target *t = target_of(f, i);

    s->f = f;
    s->i = i;
    s->t0 = loop_now_us(f->c->s.loop);
    f->stage[i] = "pruning";
    release_prune_target(&f->ctx, remote_transport(f->c->s.remote, t->name), t, f->keep, f->dry_run,
                         one_done, s);
}

static void run_fanout(struct fanout *f)
{
    size_t i;

    f->res = xcalloc(f->n, sizeof *f->res);
    f->state = xcalloc(f->n, sizeof *f->state);
    f->stage = xcalloc(f->n, sizeof *f->stage);
    f->sent = xcalloc(f->n, sizeof *f->sent);
    f->total = xcalloc(f->n, sizeof *f->total);
    f->ctx.loop = f->c->s.loop;
    f->ctx.inv = f->c->s.fleet.inv;
    f->ctx.who = f->c->s.who;
    f->ctx.on_stage = on_stage;
    f->ctx.on_progress = on_progress;
    f->t0 = loop_now_us(f->c->s.loop);
    if (term_is_tty(stderr)) {
        f->tick = loop_timer_new(f->c->s.loop, status_tick, f);
        loop_timer_start(f->tick, STATUS_INTERVAL_MS);
    }
    fanout_pump(f);
    change_wait(f->c, &f->done);
    loop_timer_free(f->tick);
    f->tick = NULL;
    status_clear(f);
    for (i = 0; i < f->n; i++) {
        if (f->state[i] == 2)
            continue;
        f->res[i].outcome = PUSH_FAILED;
        snprintf(f->res[i].msg, sizeof f->res[i].msg, "%s",
                 f->state[i] != 0         ? "abandoned while in flight: interrupted"
                 : change_lock_lost(f->c) ? "not started: the deploy lock was lost"
                                          : "not started: interrupted");
        fprintf(stderr, "  %s: FAILED: %s\n", f->c->s.fleet.names[i], f->res[i].msg);
    }
    if (!f->done) {
        /* Abandoned: the pushes in flight still call back (while the lock is given back,
         * before the process ends), into these arrays: they stay. */
        f->abandoned = true;
        return;
    }
    free(f->state);
    free(f->stage);
    free(f->sent);
    free(f->total);
}

/* The audit detail and the outcome of a fan-out; frees f->res. */
static const char *summarize(struct fanout *f, cJSON *detail, int *rc)
{
    cJSON *arr = cJSON_AddArrayToObject(detail, "targets");
    size_t i, failed = 0, done = 0, already = 0;
    static const char *const words[] = {"done", "already", "failed"};
    char dur[32];

    for (i = 0; i < f->n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "target", f->c->s.fleet.names[i]);
        cJSON_AddStringToObject(o, "result", words[f->res[i].outcome]);
        if (f->res[i].msg[0])
            cJSON_AddStringToObject(o, "message", f->res[i].msg);
        cJSON_AddItemToArray(arr, o);
        failed += f->res[i].outcome == PUSH_FAILED;
        done += f->res[i].outcome == PUSH_DONE;
        already += f->res[i].outcome == PUSH_ALREADY;
    }
    fmt_duration(dur, sizeof dur, loop_now_us(f->c->s.loop) - f->t0);
    fprintf(stderr, "%zu target%s: %zu done, %zu %s, %zu failed (%s)\n", f->n, f->n == 1 ? "" : "s",
            done, already, f->start == start_push ? "already there" : "unchanged", failed, dur);
    if (!f->abandoned)
        free(f->res);
    *rc = change_exit_code(f->c, failed > 0 ? EXIT_FAILED : EXIT_OK);
    if (f->c->signals > 0)
        return "interrupted";
    return failed == 0 ? "ok" : failed == f->n ? "failed" : "partial";
}

/* Push a to the change's targets, its lock held: the audit detail (the caller deletes it),
 * with the result and the exit status. */
static cJSON *push_built(struct change *c, const struct release_artifact *a, unsigned parallel,
                         const char **result, int *rc)
{
    struct fanout f;
    cJSON *detail;

    fprintf(stderr, "pushing %s to %zu target%s (%u at once)\n", a->version, c->s.fleet.n,
            c->s.fleet.n == 1 ? "" : "s", parallel);
    memset(&f, 0, sizeof f);
    f.c = c;
    f.n = c->s.fleet.n;
    f.parallel = parallel;
    f.start = start_push;
    f.a = a;
    run_fanout(&f);
    detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "version", a->version);
    cJSON_AddStringToObject(detail, "commit", a->commit);
    cJSON_AddStringToObject(detail, "sha256", a->sha256);
    *result = summarize(&f, detail, rc);
    return detail;
}

static int do_push(const struct fleet_args *fa, const char *version, unsigned parallel,
                   bool rebuild)
{
    struct change c;
    struct release_artifact a;
    cJSON *detail;
    char message[200];
    const char *result;
    int rc;

    rc = change_open(&c, fa, "release.push");
    if (rc != 0)
        return rc;
    /* Built before the lock is taken: the others are not kept waiting meanwhile. */
    rc = build(&c, version, rebuild, &a);
    if (rc != 0)
        return change_end(&c, rc, NULL, NULL);
    snprintf(message, sizeof message, "release push %s", a.version);
    rc = change_lock(&c, message);
    if (rc != 0) {
        release_artifact_done(&a);
        return rc;
    }
    detail = push_built(&c, &a, parallel, &result, &rc);
    rc = change_end(&c, rc, result, detail);
    cJSON_Delete(detail);
    release_artifact_done(&a);
    return rc;
}

int change_push_release(struct change *c, const char *version, unsigned parallel)
{
    struct release_artifact a;
    cJSON *detail;
    const char *result;
    int rc = build(c, version, false, &a);

    if (rc != 0)
        return rc;
    detail = push_built(c, &a, parallel, &result, &rc);
    change_audit_local("release.push", (const char *const *)c->s.fleet.names, result, detail);
    cJSON_Delete(detail);
    release_artifact_done(&a);
    return rc;
}

static int do_prune(const struct fleet_args *fa, unsigned keep, bool keep_given, bool dry_run)
{
    struct change c;
    struct fanout f;
    cJSON *detail;
    const char *result;
    int rc;

    rc = dry_run ? change_open(&c, fa, "release.prune")
                 : change_begin(&c, fa, "release.prune", "release prune");
    if (rc != 0)
        return rc;
    if (!keep_given)
        keep = inventory_app(c.s.fleet.inv)->keep_releases;
    memset(&f, 0, sizeof f);
    f.c = &c;
    f.n = c.s.fleet.n;
    f.parallel = PUSH_DEFAULT_PARALLEL;
    f.start = start_prune;
    f.keep = keep;
    f.dry_run = dry_run;
    run_fanout(&f);
    detail = cJSON_CreateObject();
    cJSON_AddNumberToObject(detail, "keep", keep);
    result = summarize(&f, detail, &rc);
    rc = change_end(&c, rc, dry_run ? NULL : result, detail);
    cJSON_Delete(detail);
    return rc;
}

/* ---- list ---- */

struct listing {
    struct change *c;
    struct hoststate **states;
    char **errors;
    size_t left;
    bool done;
};

struct list_slot {
    struct listing *l;
    size_t i;
};

static void list_state(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct list_slot *ls = arg;
    struct listing *l = ls->l;

    l->states[ls->i] = s;
    if (s == NULL)
        l->errors[ls->i] = xstrdup(msg != NULL ? msg : "unknown error");
    else if (warning != NULL)
        term_printf(stderr, "n3ctl: %s: %s\n", l->c->s.fleet.names[ls->i], warning);
    if (--l->left == 0)
        l->done = true;
    free(ls);
}

/* Read every selected target's state, in parallel. */
static void read_states(struct change *c, struct listing *l)
{
    size_t i;

    l->c = c;
    l->states = xcalloc(c->s.fleet.n + 1, sizeof *l->states);
    l->errors = xcalloc(c->s.fleet.n + 1, sizeof *l->errors);
    l->left = c->s.fleet.n;
    for (i = 0; i < c->s.fleet.n; i++) {
        struct list_slot *ls = xcalloc(1, sizeof *ls);
        const struct inv_target *t = inv_env_find(c->s.fleet.env, c->s.fleet.names[i]);

        ls->l = l;
        ls->i = i;
        release_read_state(remote_transport(c->s.remote, t->name), t, list_state, ls);
    }
    if (l->left == 0)
        l->done = true;
    change_wait(c, &l->done);
}

static void free_states(struct listing *l, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        hoststate_free(l->states[i]);
        free(l->errors[i]);
    }
    free(l->states);
    free(l->errors);
}

/* "blue*" (live) / "green" / "" : the slots a version is in on a target. */
static void slots_of(const struct hoststate *s, const char *version, char *out, size_t len)
{
    enum hs_slot live;
    int k;

    out[0] = '\0';
    for (k = 0; k < HS_NSLOTS; k++) {
        const char *v = hoststate_slot_version(s, (enum hs_slot)k);

        if (v == NULL || strcmp(v, version) != 0)
            continue;
        snprintf(out + strlen(out), len - strlen(out), "%s%s%s", out[0] ? "," : "",
                 hs_slot_name((enum hs_slot)k),
                 hoststate_live(s, &live) && live == (enum hs_slot)k ? "*" : "");
    }
}

static int do_list(const struct fleet_args *fa, bool json)
{
    struct change c;
    struct listing l = {0};
    size_t i, j;
    int rc = change_open(&c, fa, "release.list");

    if (rc != 0)
        return rc;
    read_states(&c, &l);
    if (json) {
        cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "targets");

        for (i = 0; i < c.s.fleet.n; i++) {
            cJSON *t = cJSON_CreateObject(), *rels;

            cJSON_AddStringToObject(t, "name", c.s.fleet.names[i]);
            if (l.states[i] == NULL) {
                cJSON_AddStringToObject(t, "error", l.errors[i]);
                cJSON_AddItemToArray(arr, t);
                rc = EXIT_FAILED;
                continue;
            }
            rels = cJSON_AddArrayToObject(t, "releases");
            for (j = 0; j < hoststate_nreleases(l.states[i]); j++) {
                const struct hs_release *r = hoststate_release(l.states[i], j);
                cJSON *o = cJSON_CreateObject();
                char slots[32];

                slots_of(l.states[i], r->version, slots, sizeof slots);
                cJSON_AddStringToObject(o, "version", r->version);
                cJSON_AddStringToObject(o, "commit", r->commit);
                cJSON_AddStringToObject(o, "sha256", r->sha256);
                cJSON_AddStringToObject(o, "pushed", r->pushed);
                cJSON_AddStringToObject(o, "slots", slots);
                cJSON_AddItemToArray(rels, o);
            }
            cJSON_AddItemToArray(arr, t);
        }
        term_put_json(stdout, doc);
        cJSON_Delete(doc);
    } else {
        printf("%-16s  %-24s  %-9s  %-20s  %s\n", "TARGET", "VERSION", "COMMIT", "PUSHED", "SLOTS");
        for (i = 0; i < c.s.fleet.n; i++) {
            if (l.states[i] == NULL) {
                term_printf(stdout, "%-16s  (cannot read: %s)\n", c.s.fleet.names[i], l.errors[i]);
                rc = EXIT_FAILED;
                continue;
            }
            if (hoststate_nreleases(l.states[i]) == 0)
                printf("%-16s  (no releases)\n", c.s.fleet.names[i]);
            for (j = 0; j < hoststate_nreleases(l.states[i]); j++) {
                const struct hs_release *r = hoststate_release(l.states[i], j);
                char slots[32];

                slots_of(l.states[i], r->version, slots, sizeof slots);
                printf("%-16s  %-24s  %-9.9s  %-20s  %s\n", c.s.fleet.names[i], r->version,
                       r->commit[0] ? r->commit : "-", r->pushed[0] ? r->pushed : "-", slots);
            }
        }
    }
    free_states(&l, c.s.fleet.n);
    return change_end(&c, rc, NULL, NULL);
}

int cmd_release(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct fleet_args fa;
    const char *arg, *sub;
    unsigned parallel = PUSH_DEFAULT_PARALLEL, keep = 0;
    bool json = false, rebuild = false, dry_run = false, keep_given = false;
    int opt, first;

    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'p':
            if (!cli_parse_uint(cmd, "-p", arg, 1, 1000, &parallel))
                return EXIT_USAGE;
            break;
        case 'k':
            if (!cli_parse_uint(cmd, "--keep", arg, 1, 1000, &keep))
                return EXIT_USAGE;
            keep_given = true;
            break;
        case 'j':
            json = true;
            break;
        case 'R':
            rebuild = true;
            break;
        case 'n':
            dry_run = true;
            break;
        default:
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (first >= argc) {
        cli_usage_error(cmd, "which? build, push, list or prune");
        return EXIT_USAGE;
    }
    sub = argv[first];
    if (strcmp(sub, "build") == 0 || strcmp(sub, "push") == 0) {
        struct err err;

        if (first + 2 != argc) {
            cli_usage_error(cmd, "%s takes one version: n3ctl release %s VERSION", sub, sub);
            return EXIT_USAGE;
        }
        if (!version_name_ok(argv[first + 1], &err)) {
            term_printf(stderr, "n3ctl: %s\n", err.msg);
            return EXIT_USAGE;
        }
        if (strcmp(sub, "push") == 0)
            return do_push(&fa, argv[first + 1], parallel, rebuild);
        {
            struct change c;
            struct release_artifact a;
            int rc = change_open(&c, &fa, "release.build");

            if (rc != 0)
                return rc;
            rc = build(&c, argv[first + 1], rebuild, &a);
            if (rc == EXIT_OK) {
                printf("%s\n", a.path);
                release_artifact_done(&a);
            }
            return change_end(&c, rc, NULL, NULL);
        }
    }
    if (first + 1 != argc) {
        cli_usage_error(cmd, "%s takes no other argument", sub);
        return EXIT_USAGE;
    }
    if (strcmp(sub, "list") == 0)
        return do_list(&fa, json);
    if (strcmp(sub, "prune") == 0)
        return do_prune(&fa, keep, keep_given, dry_run);
    cli_usage_error(cmd, "no subcommand \"%.40s\"; use build, push, list or prune", sub);
    return EXIT_USAGE;
}
