/* n3ctl versions and n3ctl changelog: the app's git tags, and where each runs now. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/term.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/hoststate.h"
#include "deploy/inventory.h"
#include "deploy/release.h"
#include "deploy/remote.h"
#include "deploy/versions.h"

struct states {
    struct hoststate **s;
    char **err;
    size_t left;
    bool done;
};

struct state_slot {
    struct states *st;
    size_t i;
};

/* versions_list on the thread pool. */
struct list_job {
    const struct inv_app *app;
    struct versions vs;
    struct err err;
    int rc;
    bool done;
};

static void list_work(void *arg)
{
    struct list_job *j = arg;

    j->rc = versions_list(j->app->repository, j->app->tag_pattern, &j->vs, &j->err);
}

static void got_state(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct state_slot *ss = arg;

    ss->st->s[ss->i] = s;
    if (s == NULL)
        ss->st->err[ss->i] = xstrdup(msg != NULL ? msg : "unknown error");
    if (--ss->st->left == 0)
        ss->st->done = true;
    free(ss);
}

/* Where a version runs: "web1:blue* web2:green" (* live), and on how many targets it is. */
static void running(const struct change *c, const struct states *st, const char *version, char *out,
                    size_t len, unsigned *released)
{
    size_t i;
    int k;
    enum hs_slot live;

    out[0] = '\0';
    *released = 0;
    for (i = 0; i < c->s.fleet.n; i++) {
        const struct hoststate *s = st->s[i];

        if (s == NULL)
            continue;
        *released += hoststate_find(s, version) != NULL;
        for (k = 0; k < HS_NSLOTS; k++) {
            const char *v = hoststate_slot_version(s, (enum hs_slot)k);

            if (v != NULL && strcmp(v, version) == 0)
                snprintf(out + strlen(out), len - strlen(out), "%s%s:%s%s", out[0] ? " " : "",
                         c->s.fleet.names[i], hs_slot_name((enum hs_slot)k),
                         hoststate_live(s, &live) && live == (enum hs_slot)k ? "*" : "");
        }
    }
}

static void date_of(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%d", &tm);
}

int cmd_versions(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct fleet_args fa;
    struct change c;
    struct versions vs;
    struct states st = {0};
    struct list_job job;
    const struct inv_app *app;
    const char *arg;
    bool json = false, local = false;
    size_t i;
    int opt, first, rc;

    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken > 0)
            continue;
        if (opt == 'j')
            json = true;
        else if (opt == 'l')
            local = true;
        else
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
    }
    if (first < argc) {
        cli_usage_error(cmd, "takes no arguments");
        return EXIT_USAGE;
    }
    rc = change_open(&c, &fa, "versions");
    if (rc != 0)
        return rc;
    app = inventory_app(c.s.fleet.inv);
    /* The repository is read on the thread pool while the targets are asked. */
    memset(&job, 0, sizeof job);
    job.app = app;
    loop_work(c.s.loop, list_work, &job, &job.done);
    /* Where each version runs, read from the targets at once. */
    st.s = xcalloc(c.s.fleet.n + 1, sizeof *st.s);
    st.err = xcalloc(c.s.fleet.n + 1, sizeof *st.err);
    st.left = local ? 0 : c.s.fleet.n;
    for (i = 0; !local && i < c.s.fleet.n; i++) {
        struct state_slot *ss = xcalloc(1, sizeof *ss);
        const struct inv_target *t = inv_env_find(c.s.fleet.env, c.s.fleet.names[i]);

        ss->st = &st;
        ss->i = i;
        release_read_state(remote_transport(c.s.remote, t->name), t, got_state, ss);
    }
    st.done = st.left == 0;
    change_wait(&c, &st.done);
    change_wait(&c, &job.done);
    if (c.s.abandon) /* a second Ctrl-C: change_end leaves at once */
        return change_end(&c, EXIT_FAILED, NULL, NULL);
    vs = job.vs;
    if (job.rc != 0) {
        term_printf(stderr, "n3ctl: %s\n", job.err.msg);
        for (i = 0; i < c.s.fleet.n; i++) {
            hoststate_free(st.s[i]);
            free(st.err[i]);
        }
        free(st.s);
        free(st.err);
        return change_end(&c, EXIT_USAGE, NULL, NULL);
    }

    if (json) {
        cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "versions");
        cJSON *ign = cJSON_AddArrayToObject(doc, "ignored"), *unk;

        for (i = 0; i < vs.n; i++) {
            const struct version_info *v = &vs.v[i];
            cJSON *o = cJSON_CreateObject(), *where;
            char iso[32];
            size_t k;
            int s;
            enum hs_slot live;

            hoststate_iso_time(v->time, iso);
            cJSON_AddStringToObject(o, "version", v->name);
            cJSON_AddStringToObject(o, "commit", v->commit);
            cJSON_AddStringToObject(o, "date", iso);
            cJSON_AddStringToObject(o, "author", v->author);
            cJSON_AddStringToObject(o, "subject", v->subject);
            cJSON_AddBoolToObject(o, "annotated", v->annotated);
            cJSON_AddBoolToObject(o, "prerelease", v->sv.pre != NULL);
            where = cJSON_AddArrayToObject(o, "running");
            for (k = 0; k < c.s.fleet.n; k++) {
                for (s = 0; st.s[k] != NULL && s < HS_NSLOTS; s++) {
                    const char *sv = hoststate_slot_version(st.s[k], (enum hs_slot)s);
                    cJSON *w;

                    if (sv == NULL || strcmp(sv, v->name) != 0)
                        continue;
                    w = cJSON_CreateObject();
                    cJSON_AddStringToObject(w, "target", c.s.fleet.names[k]);
                    cJSON_AddStringToObject(w, "slot", hs_slot_name((enum hs_slot)s));
                    cJSON_AddBoolToObject(
                        w, "live", hoststate_live(st.s[k], &live) && live == (enum hs_slot)s);
                    cJSON_AddItemToArray(where, w);
                }
            }
            {
                cJSON *rel = cJSON_AddArrayToObject(o, "released_on");

                for (k = 0; k < c.s.fleet.n; k++) {
                    if (st.s[k] != NULL && hoststate_find(st.s[k], v->name) != NULL)
                        cJSON_AddItemToArray(rel, cJSON_CreateString(c.s.fleet.names[k]));
                }
            }
            cJSON_AddItemToArray(arr, o);
        }
        for (i = 0; i < vs.nignored; i++) {
            cJSON *o = cJSON_CreateObject();

            cJSON_AddStringToObject(o, "tag", vs.ignored[i].name);
            cJSON_AddStringToObject(o, "reason", vs.ignored[i].reason);
            cJSON_AddItemToArray(ign, o);
        }
        unk = cJSON_AddArrayToObject(doc, "unreadable_targets");
        for (i = 0; i < c.s.fleet.n; i++) {
            if (st.err[i] != NULL) {
                cJSON *o = cJSON_CreateObject();

                cJSON_AddStringToObject(o, "target", c.s.fleet.names[i]);
                cJSON_AddStringToObject(o, "error", st.err[i]);
                cJSON_AddItemToArray(unk, o);
            }
        }
        term_put_json(stdout, doc);
        cJSON_Delete(doc);
    } else {
        struct buf line;

        printf("%-20s  %-8s  %-10s  %-20s  %-32s  %-9s  %s\n", "VERSION", "COMMIT", "DATE",
               "AUTHOR", "SUBJECT", "RELEASED", "RUNNING");
        buf_init(&line);
        for (i = 0; i < vs.n; i++) {
            const struct version_info *v = &vs.v[i];
            char date[16], where[512], rel[16], *author, *lt;
            unsigned released;

            date_of(v->time, date, sizeof date);
            running(&c, &st, v->name, where, sizeof where, &released);
            if (local)
                snprintf(rel, sizeof rel, "-");
            else
                snprintf(rel, sizeof rel, "%u/%zu", released, c.s.fleet.n);
            /* The name, without the address. */
            author = xstrdup(v->author);
            lt = strchr(author, '<');
            if (lt != NULL && lt > author)
                lt[lt[-1] == ' ' ? -1 : 0] = '\0';
            /* Version names are checked (ASCII); author and subject are from the repository:
             * shown, in cells of their width in columns. */
            buf_reset(&line);
            buf_addf(&line, "%-20s  %-8.7s  %-10s  ", v->name, v->commit, date);
            term_add_cell(&line, author, 20);
            buf_adds(&line, "  ");
            term_add_cell(&line, v->subject, 32);
            buf_addf(&line, "  %-9s  %s", rel, where);
            puts(line.data);
            free(author);
        }
        buf_done(&line);
        if (vs.n == 0)
            printf("(no tags of %s match \"%s\" and are versions)\n", app->repository,
                   app->tag_pattern);
        /* Ignored tags are those that are not version names: anything git allows. */
        for (i = 0; i < vs.nignored; i++)
            term_printf(stdout, "ignored tag %s: %s\n", vs.ignored[i].name, vs.ignored[i].reason);
    }
    for (i = 0; i < c.s.fleet.n; i++) {
        if (st.err[i] != NULL) {
            term_printf(stderr, "n3ctl: %s: what runs there is unknown: %s\n", c.s.fleet.names[i],
                        st.err[i]);
            rc = EXIT_FAILED;
        }
        hoststate_free(st.s[i]);
        free(st.err[i]);
    }
    free(st.s);
    free(st.err);
    versions_done(&vs);
    return change_end(&c, rc, NULL, NULL);
}

int cmd_changelog(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct fleet_args fa;
    struct fleet fleet;
    struct versions vs;
    const struct version_info *from, *to;
    const struct inv_app *app;
    struct err err;
    const char *arg;
    char **lines;
    size_t n, i;
    int opt, first, rc = EXIT_OK;

    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken == 0)
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
    }
    if (first + 2 != argc) {
        cli_usage_error(cmd, "give two versions: n3ctl changelog FROM TO");
        return EXIT_USAGE;
    }
    if (!version_name_ok(argv[first], &err) || !version_name_ok(argv[first + 1], &err)) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (fleet_open(&fleet, fa.config, fa.env, NULL, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    app = inventory_app(fleet.inv);
    if (versions_list(app->repository, app->tag_pattern, &vs, &err) != 0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        fleet_close(&fleet);
        return EXIT_USAGE;
    }
    from = versions_find(&vs, argv[first]);
    to = versions_find(&vs, argv[first + 1]);
    if (from == NULL || to == NULL) {
        fprintf(stderr, "n3ctl: no version %s in %s (`n3ctl versions` lists them)\n",
                from == NULL ? argv[first] : argv[first + 1], app->repository);
        rc = EXIT_USAGE;
    } else if (versions_changelog(app->repository, from->commit, to->commit, &lines, &n, &err) !=
               0) {
        term_printf(stderr, "n3ctl: %s\n", err.msg);
        rc = EXIT_FAILED;
    } else {
        struct buf line;

        buf_init(&line);
        for (i = 0; i < n; i++) {
            buf_reset(&line);
            term_add_shown(&line, lines[i], 1024);
            puts(line.data);
            free(lines[i]);
        }
        buf_done(&line);
        free(lines);
        if (n == 0)
            fprintf(stderr, "n3ctl: no commits in %s that are not in %s\n", to->name, from->name);
    }
    versions_done(&vs);
    fleet_close(&fleet);
    return rc;
}
