/* Releases: build (reproducible, cached), push (atomic on each target), prune, and host state. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <git2.h>

#include "core/buf.h"
#include "core/fs.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/archive.h"
#include "deploy/auditlog.h"
#include "deploy/hooks.h"
#include "deploy/hoststate.h"
#include "deploy/inventory.h"
#include "deploy/release.h"
#include "deploy/semver.h"
#include "deploy/transport.h"
#include "deploy/versions.h"

extern char **environ;

#define HOOK_OUTPUT_MAX 8192

/* ---- the cache ---- */

char *release_cache_dir(const struct inventory *inv)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    struct passwd *pw;

    if (xdg != NULL && xdg[0] == '/')
        return xasprintf("%s/n3ctl/%s", xdg, inventory_app(inv)->name);
    /* Never a shared directory such as /tmp: what is found in the cache is pushed. */
    if ((home == NULL || home[0] != '/') && (pw = getpwuid(geteuid())) != NULL)
        home = pw->pw_dir;
    if (home == NULL || home[0] != '/')
        return NULL;
    return xasprintf("%s/.cache/n3ctl/%s", home, inventory_app(inv)->name);
}

/* The cache is trusted (its archives are pushed as they are): it must be ours alone. */
static int cache_private(const char *dir, struct err *err)
{
    struct stat st;

    if (lstat(dir, &st) != 0)
        return err_set(err, "cannot read %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "the release cache %s is not a directory", dir);
    if (st.st_uid != geteuid())
        return err_set(err,
                       "the release cache %s belongs to uid %ld, not to you: n3ctl pushes what "
                       "is there, so it will not use it (set XDG_CACHE_HOME to a directory of "
                       "your own)",
                       dir, (long)st.st_uid);
    if ((st.st_mode & 022) != 0)
        return err_set(err,
                       "the release cache %s can be written by others (mode %04o): n3ctl pushes "
                       "what is there; chmod go-w it",
                       dir, (unsigned)(st.st_mode & 07777));
    return 0;
}

/* The cache's note beside a release: {"commit", "sha256", "size", "files"}. */
#define META_MAX (64 * 1024)

static bool cache_valid(const char *meta_path, const char *tar_path, const char *commit,
                        const char *build_hook, struct release_artifact *a)
{
    FILE *f = fopen(meta_path, "re");
    char *text, hex[65];
    size_t n;
    cJSON *o;
    const cJSON *c, *s, *z, *fl, *h;
    struct err err;
    bool ok = false;

    if (f == NULL)
        return false;
    text = xmalloc(META_MAX + 1);
    n = fread(text, 1, META_MAX, f);
    fclose(f);
    text[n] = '\0';
    o = cJSON_Parse(text);
    free(text);
    c = cJSON_GetObjectItemCaseSensitive(o, "commit");
    s = cJSON_GetObjectItemCaseSensitive(o, "sha256");
    z = cJSON_GetObjectItemCaseSensitive(o, "size");
    fl = cJSON_GetObjectItemCaseSensitive(o, "files");
    h = cJSON_GetObjectItemCaseSensitive(o, "build_hook");
    /* The same commit, built the same way, and the file still has the checksum it was built
     * with. */
    if (cJSON_IsString(c) && strcmp(c->valuestring, commit) == 0 &&
        (build_hook == NULL ? h == NULL
                            : cJSON_IsString(h) && strcmp(h->valuestring, build_hook) == 0) &&
        cJSON_IsString(s) && strlen(s->valuestring) == 64 &&
        transport_sha256_local(tar_path, hex, &err) == 0 && strcmp(hex, s->valuestring) == 0) {
        memcpy(a->sha256, hex, sizeof a->sha256);
        a->size = cJSON_IsNumber(z) ? (uint64_t)z->valuedouble : 0;
        a->files = cJSON_IsNumber(fl) ? (uint64_t)fl->valuedouble : 0;
        ok = true;
    }
    cJSON_Delete(o);
    return ok;
}

static int write_meta(const char *meta_path, const struct release_artifact *a,
                      const char *build_hook, struct err *err)
{
    char *tmp = xasprintf("%s.tmp.%d", meta_path, (int)getpid());
    cJSON *o = cJSON_CreateObject();
    char *text;
    FILE *f;
    bool written = false;
    int rc = 0, fd;

    cJSON_AddStringToObject(o, "version", a->version);
    cJSON_AddStringToObject(o, "commit", a->commit);
    cJSON_AddStringToObject(o, "sha256", a->sha256);
    cJSON_AddNumberToObject(o, "size", (double)a->size);
    cJSON_AddNumberToObject(o, "files", (double)a->files);
    if (build_hook != NULL)
        cJSON_AddStringToObject(o, "build_hook", build_hook);
    text = cJSON_Print(o);
    unlink(tmp); /* a leftover of a process of the same pid */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL && fd >= 0)
        close(fd);
    if (f != NULL) {
        written = fputs(text, f) != EOF;
        written = fclose(f) == 0 && written && rename(tmp, meta_path) == 0;
    }
    if (!written) {
        rc = err_set(err, "cannot write %s: %s", meta_path, strerror(errno));
        unlink(tmp);
    }
    cJSON_free(text);
    cJSON_Delete(o);
    free(tmp);
    return rc;
}

/* ---- the build hook: run in a checkout of the tag, on this machine ---- */

static int checkout(const char *repo_path, const char *commit, const char *dir, struct err *err)
{
    git_repository *repo = NULL;
    git_object *obj = NULL;
    git_checkout_options opts;
    git_oid oid;
    int rc = 0;

    git_libgit2_init();
    git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
    /* Into dir only: the repository's own index (what the operator has staged) is not touched. */
    opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    opts.target_directory = dir;
    if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
        git_oid_fromstr(&oid, commit) != 0 ||
        git_object_lookup(&obj, repo, &oid, GIT_OBJECT_COMMIT) != 0 ||
        git_checkout_tree(repo, obj, &opts) != 0) {
        const git_error *e = git_error_last();

        rc = err_set(err, "cannot check out %.12s of %s into %s: %s", commit, repo_path, dir,
                     e != NULL ? e->message : "unknown error");
    }
    git_object_free(obj);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Stop the hook's process group: TERM, and KILL if it is still there after the grace time. */
static void stop_hook(pid_t pid)
{
    unsigned waited;

    kill(-pid, SIGTERM);
    for (waited = 0; waited < RELEASE_HOOK_GRACE_MS; waited += 50) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        poll(NULL, 0, 50);
    }
    kill(-pid, SIGKILL); /* the group, also when its leader is gone and reaped */
    if (waited >= RELEASE_HOOK_GRACE_MS)
        waitpid(pid, NULL, 0);
}

/* Run a hook command in dir, blocking, with a timeout; its output's tail goes into err. When
 * *cancel is set, the hook is stopped and RELEASE_ECANCELED returned. */
static int run_hook_here(const char *name, const char *dir, const char *command,
                         uint64_t timeout_ms, const atomic_bool *cancel, atomic_int *group,
                         struct err *err)
{
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    char out[HOOK_OUTPUT_MAX], buf[4096];
    size_t outlen = 0;
    int pipefd[2], status = 0, rc;
    uint64_t deadline = mono_ms() + timeout_ms;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return err_set(err, "hook %s: pipe: %s", name, strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    rc = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return err_set(err, "hook %s: cannot start /bin/sh: %s", name, strerror(rc));
    }
    if (group != NULL)
        atomic_store(group, (int)pid); /* its own session: the group has its pid */
    for (;;) {
        struct pollfd p = {pipefd[0], POLLIN, 0};
        ssize_t n;

        if (cancel != NULL && atomic_load(cancel)) {
            stop_hook(pid);
            close(pipefd[0]);
            err_set(err, "hook %s was interrupted", name);
            return RELEASE_ECANCELED;
        }
        /* The deadline counts whether or not the hook prints; a signal (EINTR) just loops. */
        rc = poll(&p, 1, 100);
        if (mono_ms() >= deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(pipefd[0]);
            return err_set(err, "hook %s ran past its timeout of %llus and was killed", name,
                           (unsigned long long)(timeout_ms / 1000));
        }
        if (rc <= 0)
            continue;
        n = read(pipefd[0], buf, sizeof buf);
        if (n <= 0)
            break;
        /* Keep the tail (a read is smaller than what is kept). */
        if (outlen + (size_t)n >= sizeof out) {
            size_t drop = outlen + (size_t)n - (sizeof out - 1);

            memmove(out, out + drop, outlen - drop);
            outlen -= drop;
        }
        memcpy(out + outlen, buf, (size_t)n);
        outlen += (size_t)n;
    }
    close(pipefd[0]);
    /* The output is closed, but the hook may still run (it can send its output elsewhere):
     * wait for it under the same deadline and cancel, then stop what it left in its group. */
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);

        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (cancel != NULL && atomic_load(cancel)) {
            stop_hook(pid);
            err_set(err, "hook %s was interrupted", name);
            return RELEASE_ECANCELED;
        }
        if (mono_ms() >= deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return err_set(err, "hook %s ran past its timeout of %llus and was killed", name,
                           (unsigned long long)(timeout_ms / 1000));
        }
        poll(NULL, 0, 50);
    }
    kill(-pid, SIGTERM); /* what the hook left running in its session */
    out[outlen] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return err_set(err, "hook %s failed (%s %d); its output ends with:\n%s", name,
                   WIFEXITED(status) ? "exit" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out);
}

static int rm_rf(const char *path)
{
    struct buf cmd;
    int rc;

    buf_init(&cmd);
    shell_cmdf(&cmd, "rm -rf -- %s", path);
    rc = system(cmd.data);
    buf_done(&cmd);
    return rc;
}

const char *release_build_stage_name(int stage)
{
    static const char *const names[] = {
        [RB_CHECKING] = "checking the tag and the cache",
        [RB_CHECKOUT] = "checking out",
        [RB_HOOK] = "running the build hook",
        [RB_PACKING] = "packing",
    };

    return stage >= 0 && stage <= RB_PACKING ? names[stage] : "building";
}

static void build_stage(struct release_build_ctl *ctl, enum release_build_stage stage)
{
    if (ctl != NULL)
        atomic_store(&ctl->stage, (int)stage);
}

/* Build directories (".build-VERSION-PID") whose process is gone: an abandoned build's. */
static void sweep_build_dirs(const char *cache)
{
    DIR *d = opendir(cache);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        const char *dash = strrchr(de->d_name, '-');
        char *end, *path;
        long pid;

        if (strncmp(de->d_name, ".build-", 7) != 0 || dash == NULL)
            continue;
        pid = strtol(dash + 1, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid() ||
            !(kill((pid_t)pid, 0) != 0 && errno == ESRCH))
            continue;
        path = xasprintf("%s/%s", cache, de->d_name);
        rm_rf(path);
        free(path);
    }
    closedir(d);
}

/* With a build hook: check the tag out in dir, run the hook there, pack what it left. */
static int build_in(struct release_build_ctl *ctl, const char *dir, const struct inv_app *app,
                    const struct inv_hooks *hooks, const struct hook_vars *hv,
                    const struct release_artifact *out, struct archive_result *ar, struct err *err)
{
    const atomic_bool *cancel = ctl != NULL ? &ctl->cancel : NULL;
    struct buf cmd;
    int rc = -1;

    if (mkdir(dir, 0700) != 0)
        return err_set(err, "cannot create %s: %s", dir, strerror(errno));
    buf_init(&cmd);
    build_stage(ctl, RB_CHECKOUT);
    if (checkout(app->repository, out->commit, dir, err) != 0 ||
        hook_expand("build", hooks->cmd[HOOK_BUILD], hv, &cmd, err) != 0)
        goto out;
    build_stage(ctl, RB_HOOK);
    rc = run_hook_here("build", dir, cmd.data, hooks->timeout_ms, cancel,
                       ctl != NULL ? &ctl->hook : NULL, err);
    if (ctl != NULL)
        atomic_store(&ctl->hook, 0);
    if (rc != 0)
        goto out;
    build_stage(ctl, RB_PACKING);
    rc = archive_from_dir(dir, out->time, out->path, ar, cancel, err);
out:
    buf_done(&cmd);
    return rc;
}

int release_build(const struct inventory *inv, const char *version, bool rebuild,
                  struct release_build_ctl *ctl, struct release_artifact *out, struct err *err)
{
    const atomic_bool *cancel = ctl != NULL ? &ctl->cancel : NULL;
    const struct inv_app *app = inventory_app(inv);
    const struct inv_hooks *hooks = inventory_hooks(inv);
    const struct version_info *vi;
    struct archive_result ar;
    struct versions vs;
    char *cache = NULL, *meta = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    build_stage(ctl, RB_CHECKING);
    if (!version_name_ok(version, err))
        return RELEASE_EUSAGE;
    if (versions_list(app->repository, app->tag_pattern, &vs, err) != 0)
        return RELEASE_EUSAGE;
    vi = versions_find(&vs, version);
    if (vi == NULL) {
        size_t i;

        for (i = 0; i < vs.nignored && strcmp(vs.ignored[i].name, version) != 0; i++)
            ;
        if (i < vs.nignored)
            err_set(err, "tag %s is not a version: %s", version, vs.ignored[i].reason);
        else
            err_set(err, "no version %s in %s (tags matching \"%s\"; `n3ctl versions` lists them)",
                    version, app->repository, app->tag_pattern);
        rc = RELEASE_EUSAGE;
        goto out;
    }
    /* From here the tag's own name: "1.4.2" asked for the tag v1.4.2. */
    version = out->version = xstrdup(vi->name);
    memcpy(out->commit, vi->commit, sizeof out->commit);
    out->time = vi->time;
    cache = release_cache_dir(inv);
    if (cache == NULL) {
        err_set(err, "no home directory for the release cache: set HOME or XDG_CACHE_HOME");
        goto out;
    }
    if (fs_mkdirs(cache, err) != 0 || cache_private(cache, err) != 0)
        goto out;
    out->path = xasprintf("%s/%s.tar.gz", cache, version);
    meta = xasprintf("%s/%s.json", cache, version);
    if (!rebuild && cache_valid(meta, out->path, out->commit, hooks->cmd[HOOK_BUILD], out)) {
        out->cached = true;
        rc = 0;
        goto out;
    }
    if (hooks->cmd[HOOK_BUILD] == NULL) {
        build_stage(ctl, RB_PACKING);
        if (archive_from_commit(app->repository, out->commit, out->path, &ar, cancel, err) != 0)
            goto out;
    } else {
        char *dir = xasprintf("%s/.build-%s-%d", cache, version, (int)getpid());
        struct hook_vars hv = {0};

        hv.version = version;
        hv.release_dir = dir;
        sweep_build_dirs(cache);
        rm_rf(dir);
        rc = build_in(ctl, dir, app, hooks, &hv, out, &ar, err);
        rm_rf(dir);
        free(dir);
        if (rc != 0)
            goto out;
        rc = -1;
    }
    memcpy(out->sha256, ar.sha256, sizeof out->sha256);
    out->size = ar.size;
    out->files = ar.files;
    rc = write_meta(meta, out, hooks->cmd[HOOK_BUILD], err);
out:
    free(cache);
    free(meta);
    versions_done(&vs);
    if (rc != 0) {
        release_artifact_done(out);
        if (cancel != NULL && atomic_load(cancel) && rc != RELEASE_EUSAGE)
            rc = RELEASE_ECANCELED;
    }
    return rc;
}

void release_artifact_done(struct release_artifact *a)
{
    free(a->version);
    free(a->path);
    memset(a, 0, sizeof *a);
}

/* The stderr of a failed command, for the message. */
static char *failure_text(const struct transport_result *r)
{
    char *text;
    size_t n = 0;

    if (r->status != TRANSPORT_OK)
        return xstrdup(r->msg);
    text = r->err != NULL ? tail_dup(r->err, &n) : xstrdup("");
    while (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    if (text[0] == '\0') {
        free(text);
        return xasprintf("exit %d", r->exit_code);
    }
    return text;
}

/* Does the failed command's stderr say this? */
static bool stderr_has(const struct transport_result *r, const char *needle)
{
    char *text;
    bool has;

    if (r->err == NULL)
        return false;
    text = tail_dup(r->err, NULL);
    has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

/* ---- host state on a target ---- */

struct state_read {
    struct transport *t;
    const struct inv_target *target;
    hoststate_fn done;
    void *arg;
    char *warning;
    struct hoststate *parsed; /* state.json, when it could be read */
    bool missing;             /* no state file, as opposed to one that cannot be read */
};

static void probe_done(void *arg, const struct transport_result *r)
{
    struct state_read *sr = arg;
    struct hoststate *s;
    char *text, *skipped = NULL, *warning;

    /* A listing cut short (its front dropped) would make releases look gone. */
    if (r->status != TRANSPORT_OK || r->exit_code != 0 || tail_truncated(r->out)) {
        sr->done(sr->arg, NULL, NULL,
                 r->status != TRANSPORT_OK ? r->msg
                 : r->exit_code != 0       ? "cannot list what is in deploy_path"
                                           : "the listing of deploy_path is over 1 MiB: too many "
                                             "releases there to read");
        hoststate_free(sr->parsed);
        free(sr->warning);
        free(sr);
        return;
    }
    text = tail_dup(r->out, NULL);
    s = hoststate_from_probe(sr->target->name, text, &skipped);
    free(text);
    if (sr->missing) {
        /* No state file at all (a first push killed before it wrote one): everything on disk
         * is new to the state, reconciled from an empty one, so that a change writes it and
         * records it. The warning already says the state was rebuilt. */
        struct hoststate *empty = hoststate_new(sr->target->name);
        struct buf ignored;

        buf_init(&ignored);
        hoststate_reconcile(empty, s, &ignored);
        buf_done(&ignored);
        hoststate_free(s);
        s = empty;
    }
    if (sr->parsed != NULL) {
        struct buf warn;

        buf_init(&warn);
        /* What the listing itself found (a REVISION cut, a name that is not a version) is
         * said whether or not state.json could be read. */
        if (skipped != NULL)
            buf_adds(&warn, skipped);
        hoststate_reconcile(sr->parsed, s, &warn);
        hoststate_free(s);
        sr->done(sr->arg, sr->parsed, warn.len ? warn.data : NULL, NULL);
        buf_done(&warn);
        free(skipped);
        free(sr);
        return;
    }
    /* A new target has no state file and nothing on disk: nothing to warn about. */
    if (sr->missing && hoststate_nreleases(s) == 0 && skipped == NULL)
        warning = NULL;
    else if (skipped != NULL)
        warning = xasprintf("%s; %s", sr->warning, skipped);
    else
        warning = xstrdup(sr->warning);
    sr->done(sr->arg, s, warning, NULL);
    free(warning);
    free(skipped);
    free(sr->warning);
    free(sr);
}

static void state_file_done(void *arg, const struct transport_result *r)
{
    struct state_read *sr = arg;
    struct hoststate *s = NULL;
    struct buf cmd;
    struct err err;

    if (r->status == TRANSPORT_OK && r->exit_code == 0 && r->len > 0) {
        /* Checked against what is on disk, next: someone may have removed a release. */
        if (hoststate_parse(sr->target->name, r->data, r->len, &s, &err) == 0)
            sr->parsed = s;
        else
            sr->warning = xasprintf("%s/%s cannot be read (%s); rebuilt it from what is on disk",
                                    sr->target->deploy_path, HOSTSTATE_FILE, err.msg);
    } else if (r->status == TRANSPORT_UNREACHABLE || r->status == TRANSPORT_REFUSED ||
               r->status == TRANSPORT_TIMEOUT || r->status == TRANSPORT_STOPPED) {
        /* Not an answer about the file: rebuilding from the disk would lose what only the
         * state knows (slot ports, history) when it is written back. */
        sr->done(sr->arg, NULL, NULL, r->msg);
        free(sr);
        return;
    } else if (r->status == TRANSPORT_OK && r->exit_code == 0) {
        sr->warning = xasprintf("%s/%s is empty; rebuilt it from what is on disk",
                                sr->target->deploy_path, HOSTSTATE_FILE);
    } else if (strstr(r->msg, "No such file") != NULL || stderr_has(r, "No such file")) {
        sr->missing = true;
        sr->warning = xasprintf("no %s/%s; rebuilt it from what is on disk",
                                sr->target->deploy_path, HOSTSTATE_FILE);
    } else {
        char *why = failure_text(r);

        sr->warning = xasprintf("%s/%s cannot be read (%s); rebuilt it from what is on disk",
                                sr->target->deploy_path, HOSTSTATE_FILE, why);
        free(why);
    }
    buf_init(&cmd);
    hoststate_probe_command(sr->target->deploy_path, &cmd);
    transport_sh_read(sr->t, cmd.data, 60000, 1024 * 1024, probe_done, sr);
    buf_done(&cmd);
}

void release_read_state(struct transport *t, const struct inv_target *target, hoststate_fn done,
                        void *arg)
{
    struct state_read *sr = xcalloc(1, sizeof *sr);
    char *path = xasprintf("%s/%s", target->deploy_path, HOSTSTATE_FILE);

    sr->t = t;
    sr->target = target;
    sr->done = done;
    sr->arg = arg;
    transport_read_file(t, path, HOSTSTATE_MAX_BYTES, state_file_done, sr);
    free(path);
}

/* The end of a change on a target, with what its audit record there came to: a warning is
 * added to the message; a record that could not be written fails the target (the change
 * stands: it is said, not undone). */
static void audit_outcome(struct target_result *res, const char *change, int rc, const char *msg)
{
    size_t n = strlen(res->msg);

    if (rc == AUDITLOG_FAILED) {
        res->outcome = PUSH_FAILED;
        snprintf(res->msg + n, sizeof res->msg - n,
                 "%s%s, but unaudited on %s (no audit record there): %s", n > 0 ? "; " : "", change,
                 res->target, msg);
    } else if (rc != AUDITLOG_OK) {
        snprintf(res->msg + n, sizeof res->msg - n, "%s(warning: %s)", n > 0 ? " " : "", msg);
    }
}

void release_write_state(struct transport *t, const struct inv_target *target,
                         const struct hoststate *s, int64_t now, transport_done_fn done, void *arg)
{
    char *json = hoststate_format(s, now);
    char *path = xasprintf("%s/%s", target->deploy_path, HOSTSTATE_FILE);

    transport_write_file(t, path, json, strlen(json), 0644, done, arg);
    free(json);
    free(path);
}

/* ---- writing back what reading the state reconciled ---- */

#define RECONCILE_ACTION "state.reconcile"

typedef void (*reconcile_fn)(void *arg, bool ok);

struct reconcile {
    const struct release_op_ctx *ctx;
    struct transport *t;
    const struct inv_target *target;
    struct target_result *res; /* the change's: a failure is said there */
    cJSON *detail;
    reconcile_fn next;
    void *arg;
};

static void reconcile_end(struct reconcile *r, bool ok)
{
    reconcile_fn next = r->next;
    void *arg = r->arg;

    cJSON_Delete(r->detail);
    free(r);
    next(arg, ok);
}

static void reconcile_audited(void *arg, int rc, const char *msg)
{
    struct reconcile *r = arg;

    size_t n = strlen(r->res->msg);

    if (rc != AUDITLOG_FAILED)
        snprintf(r->res->msg + n, sizeof r->res->msg - n, "%s%s written (recorded: %s)",
                 n > 0 ? "; " : "", HOSTSTATE_FILE, RECONCILE_ACTION);
    audit_outcome(r->res, "state.json was reconciled with what is on disk", rc, msg);
    reconcile_end(r, rc != AUDITLOG_FAILED);
}

static void reconcile_written(void *arg, const struct transport_result *tr)
{
    struct reconcile *r = arg;
    const char *targets[] = {r->target->name, NULL};
    struct audit_entry e = {0};
    size_t n = strlen(r->res->msg);

    if (tr->status != TRANSPORT_OK || tr->exit_code != 0) {
        char *why = failure_text(tr);

        r->res->outcome = PUSH_FAILED;
        snprintf(r->res->msg + n, sizeof r->res->msg - n,
                 "%s%s could not be written with what is on disk: %s", n > 0 ? "; " : "",
                 HOSTSTATE_FILE, why);
        free(why);
        reconcile_end(r, false);
        return;
    }
    e.time = (int64_t)time(NULL);
    e.actor = r->ctx->who;
    e.pid = (long)getpid();
    e.action = RECONCILE_ACTION;
    e.targets = targets;
    e.result = "ok";
    e.detail = r->detail;
    auditlog_append(r->t, r->target->deploy_path, &e, reconcile_audited, r);
}

/* A change that holds the lock, and read a state that differs from the disk (a push killed
 * between its rename into releases/ and writing the state; a release removed by hand), first
 * writes the reconciled state and records that on the target ("state.reconcile", with what was
 * added and removed), whether or not it has anything else to do. next(arg, false): that
 * failed, and res says why (the target fails). */
static void reconcile_write(const struct release_op_ctx *ctx, struct transport *t,
                            const struct inv_target *target, struct hoststate *s,
                            struct target_result *res, reconcile_fn next, void *arg)
{
    struct reconcile *r;
    int64_t now = (int64_t)time(NULL);

    if (hoststate_drift(s, NULL) == 0) {
        next(arg, true);
        return;
    }
    r = xcalloc(1, sizeof *r);
    r->ctx = ctx;
    r->t = t;
    r->target = target;
    r->res = res;
    r->next = next;
    r->arg = arg;
    r->detail = cJSON_CreateObject();
    hoststate_drift(s, r->detail);
    hoststate_add_history(s, now, RECONCILE_ACTION, NULL, ctx->who);
    release_write_state(t, target, s, now, reconcile_written, r);
}

/* ---- push ---- */

/* How the unpack command says that the after_unpack hook failed (and not tar, or mv). */
#define HOOK_FAILED_MARK "n3ctl: the hook failed: "
#define HOOK_FAILED_EXIT 97

enum push_stage { P_STATE, P_RECONCILE, P_PREPARE, P_UPLOAD, P_UNPACK, P_WRITE_STATE, P_AUDIT };
static const char *const push_stage_names[] = {
    [P_STATE] = "reading state", [P_RECONCILE] = "reconciling state",
    [P_PREPARE] = "checking",    [P_UPLOAD] = "uploading",
    [P_UNPACK] = "unpacking",    [P_WRITE_STATE] = "writing state",
    [P_AUDIT] = "auditing",
};

struct push {
    const struct release_op_ctx *ctx;
    struct transport *t;
    const struct inv_target *target;
    const struct release_artifact *a;
    release_done_fn done;
    void *arg;
    enum push_stage stage;
    struct hoststate *state;
    char *incoming;
    struct target_result res;
};

static void push_stage(struct push *p, enum push_stage stage)
{
    p->stage = stage;
    if (p->ctx->on_stage != NULL)
        p->ctx->on_stage(p->arg, push_stage_names[stage]);
}

static void push_progress(void *arg, uint64_t sent)
{
    struct push *p = arg;

    if (p->ctx->on_progress != NULL)
        p->ctx->on_progress(p->arg, sent, p->a->size);
}

static void push_finish(struct push *p)
{
    p->done(p->arg, &p->res);
    hoststate_free(p->state);
    free(p->incoming);
    free(p);
}

static void push_fail(struct push *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void push_fail(struct push *p, const char *fmt, ...)
{
    va_list ap;

    p->res.outcome = PUSH_FAILED;
    va_start(ap, fmt);
    vsnprintf(p->res.msg, sizeof p->res.msg, fmt, ap);
    va_end(ap);
    push_finish(p);
}

static void push_step(void *arg, const struct transport_result *r);

static void push_run(struct push *p, const char *command, uint64_t timeout_ms)
{
    transport_sh(p->t, command, timeout_ms, 0, push_step, p);
}

static void push_audit_done(void *arg, int rc, const char *msg)
{
    struct push *p = arg;
    char change[200];

    snprintf(change, sizeof change, "releases/%s is in place", p->a->version);
    audit_outcome(&p->res, change, rc, msg);
    push_finish(p);
}

/* Pushes to one target take turns where they touch releases/ (the same operator may run two at
 * once under his own hand-held deploy lock): flock on .n3/push.lock, held until the command's
 * shell exits; a target without flock(1) goes on without it. */
static void push_lock_cmd(struct buf *cmd, const char *dp)
{
    shell_cmdf(cmd,
               "exec 9>>%s/.n3/push.lock && { ! command -v flock >/dev/null 2>&1 || flock 9; } "
               "&& ",
               dp);
}

static void push_reconciled(void *arg, bool ok);

static void push_state_read(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct push *p = arg;

    if (s == NULL) {
        push_fail(p, "%s", msg);
        return;
    }
    p->state = s;
    if (warning != NULL)
        snprintf(p->res.msg, sizeof p->res.msg, "%s", warning);
    push_stage(p, P_RECONCILE);
    reconcile_write(p->ctx, p->t, p->target, s, &p->res, push_reconciled, p);
}

static void push_reconciled(void *arg, bool ok)
{
    struct push *p = arg;
    struct buf cmd;
    const char *dp = p->target->deploy_path;
    char *rel;

    if (!ok) {
        push_finish(p);
        return;
    }
    /* Is it there already, whole? REVISION is written before the release becomes visible. */
    push_stage(p, P_PREPARE);
    rel = xasprintf("%s/releases/%s", dp, p->a->version);
    buf_init(&cmd);
    /* What failed pushes left is removed: temporary releases under the push lock (an unpack
     * holds it, so none is in use); uploads of this version (this push makes its own), and
     * others once nothing has written to them for an hour (another push may be sending one). */
    shell_cmdf(&cmd, "mkdir -p -- %s/releases %s/.n3/incoming %s/shared && ", dp, dp, dp);
    push_lock_cmd(&cmd, dp);
    shell_cmdf(&cmd,
               "rm -rf -- %s/releases/.n3tmp-* %s/.n3/incoming/%s.tar.gz %s/.n3/incoming/%s"
               ".tar.gz.n3tmp.* && find %s/.n3/incoming -mindepth 1 -maxdepth 1 -mmin +60 -exec "
               "rm -rf -- {} + && if [ -d %s ]; then ",
               dp, dp, p->a->version, dp, p->a->version, dp, rel);
    /* A bounded prefix of REVISION (hoststate.h): one of 100 MB is not read whole (the
     * state's probe, just before, said that it is cut). Without NUL bytes, or grep says
     * "binary file matches" instead of the line. */
    shell_cmdf(&cmd,
               "head -c %d -- %s/REVISION 2>/dev/null | tr -d '\\000' | grep -F 'sha256 ' || "
               "echo 'sha256 none'; else echo absent; fi",
               HOSTSTATE_REVISION_MAX, rel);
    push_run(p, cmd.data, 60000);
    buf_done(&cmd);
    free(rel);
}

/* The target's audit record of the push. The release is in place by now: when state.json
 * could not be written (state_error), that is recorded too, as a partial result. */
static void push_audit(struct push *p, const char *state_error)
{
    struct audit_entry e = {0};
    const char *targets[] = {p->target->name, NULL};
    cJSON *detail = cJSON_CreateObject();

    cJSON_AddStringToObject(detail, "version", p->a->version);
    cJSON_AddStringToObject(detail, "commit", p->a->commit);
    cJSON_AddStringToObject(detail, "sha256", p->a->sha256);
    if (state_error != NULL)
        cJSON_AddStringToObject(detail, "state_not_written", state_error);
    e.time = (int64_t)time(NULL);
    e.actor = p->ctx->who;
    e.pid = (long)getpid();
    e.action = "release.push";
    e.targets = targets;
    e.result = state_error == NULL ? "ok" : "partial";
    e.detail = detail;
    p->res.outcome = state_error == NULL ? PUSH_DONE : PUSH_FAILED;
    if (state_error != NULL)
        snprintf(p->res.msg, sizeof p->res.msg,
                 "releases/%s is in place, but %s could not be written: %s", p->a->version,
                 HOSTSTATE_FILE, state_error);
    push_stage(p, P_AUDIT);
    auditlog_append(p->t, p->target->deploy_path, &e, push_audit_done, p);
    cJSON_Delete(detail);
}

static void push_step(void *arg, const struct transport_result *r)
{
    struct push *p = arg;
    const char *dp = p->target->deploy_path;
    const struct inv_hooks *hooks = inventory_hooks(p->ctx->inv);
    char *why, *text;
    struct buf cmd;

    if (p->stage == P_UNPACK && r->status == TRANSPORT_OK && r->exit_code == HOOK_FAILED_EXIT &&
        r->err != NULL) {
        /* The after_unpack hook failed: its output (stdout and stderr) is in r->out. */
        char *out = r->out != NULL ? tail_dup(r->out, NULL) : xstrdup("");
        size_t n = strlen(out);

        text = tail_dup(r->err, NULL);
        while (n > 0 && out[n - 1] == '\n')
            out[--n] = '\0';
        if (strstr(text, HOOK_FAILED_MARK) != NULL) {
            char *how = strstr(text, HOOK_FAILED_MARK) + strlen(HOOK_FAILED_MARK);

            how[strcspn(how, "\n")] = '\0';
            push_fail(p, "hook after_unpack failed (%s); %s%s", how,
                      n ? "its output ends with:\n" : "it printed nothing", out);
            free(out);
            free(text);
            return;
        }
        free(out);
        free(text);
    }
    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        why = failure_text(r);
        if (p->stage == P_WRITE_STATE) {
            push_audit(p, why);
            free(why);
            return;
        }
        push_fail(p, "%s: %s",
                  p->stage == P_UPLOAD    ? "upload"
                  : p->stage == P_UNPACK  ? "unpacking"
                  : p->stage == P_PREPARE ? "preparing deploy_path"
                                          : "writing state.json",
                  why);
        free(why);
        return;
    }
    switch (p->stage) {
    case P_STATE:
    case P_RECONCILE:
        return;
    case P_PREPARE:
        text = tail_dup(r->out, NULL);
        if (strncmp(text, "sha256 ", 7) == 0 && strncmp(text + 7, p->a->sha256, 64) == 0) {
            free(text);
            p->res.outcome = PUSH_ALREADY;
            push_finish(p);
            return;
        }
        if (strncmp(text, "absent", 6) != 0) {
            push_fail(p,
                      "%s/releases/%s is there but is not this build (sha256 differs); remove "
                      "it or prune it first",
                      dp, p->a->version);
            free(text);
            return;
        }
        free(text);
        push_stage(p, P_UPLOAD);
        p->incoming = xasprintf("%s/.n3/incoming/%s.tar.gz", dp, p->a->version);
        transport_upload(p->t, p->a->path, p->incoming, 0600, p->a->sha256, push_progress,
                         push_step, p);
        return;
    case P_UPLOAD: {
        struct hook_vars hv = {0};
        struct err err;

        push_stage(p, P_UNPACK);
        buf_init(&cmd);
        /* Unpack beside the releases, then rename: a half-unpacked release is never seen. */
        shell_cmdf(&cmd, "set -e; cd %s; ", dp);
        push_lock_cmd(&cmd, dp);
        /* REVISION is ours: one that came in the tree (a file, or a symlink pointing out of
         * the release) is replaced, never written through. */
        shell_cmdf(&cmd,
                   "i=%s; t=$(mktemp -d releases/.n3tmp-XXXXXX); "
                   "trap 'rm -rf -- \"$t\" \"$i\"' EXIT; tar -xzf \"$i\" -C \"$t\"; "
                   "rm -rf -- \"$t/REVISION\"; "
                   "printf 'version %%s\\ncommit %%s\\nsha256 %%s\\n' %s %s %s > \"$t/REVISION\"; ",
                   p->incoming, p->a->version, p->a->commit, p->a->sha256);
        if (hooks->cmd[HOOK_AFTER_UNPACK] != NULL) {
            /* The hook runs where the files are now, the temporary directory: {release_dir} is
             * that directory, as the shell knows it. */
            hv.version = p->a->version;
            hv.release_dir_expr = "\"$PWD\"";
            hv.target = p->target->name;
            /* On lines of its own: a comment at the end of the hook ends with its line. Without
             * the push lock's descriptor (9): what the hook leaves running must not hold it. */
            buf_adds(&cmd, "rc=0; (cd \"$t\" && {\n");
            if (hook_expand("after_unpack", hooks->cmd[HOOK_AFTER_UNPACK], &hv, &cmd, &err) != 0) {
                buf_done(&cmd);
                push_fail(p, "%s", err.msg);
                return;
            }
            shell_cmdf(&cmd,
                       "\n}) 9>&- 2>&1 </dev/null || rc=$?; if [ $rc -ne 0 ]; then echo %sexit $rc "
                       ">&2; "
                       "exit %d; fi; ",
                       HOOK_FAILED_MARK, HOOK_FAILED_EXIT);
        }
        shell_cmdf(&cmd, "chmod 755 \"$t\"; mv -T -- \"$t\" releases/%s", p->a->version);
        push_run(p, cmd.data, hooks->timeout_ms + 60000);
        buf_done(&cmd);
        return;
    }
    case P_UNPACK: {
        struct hs_release rel;
        char iso[32];
        int64_t now = (int64_t)time(NULL);

        hoststate_iso_time(now, iso);
        rel.version = p->a->version;
        rel.commit = p->a->commit;
        rel.sha256 = p->a->sha256;
        rel.pushed = iso;
        rel.by = p->ctx->who;
        hoststate_add_release(p->state, &rel);
        hoststate_add_history(p->state, now, "release.push", p->a->version, p->ctx->who);
        push_stage(p, P_WRITE_STATE);
        release_write_state(p->t, p->target, p->state, now, push_step, p);
        return;
    }
    case P_WRITE_STATE:
        push_audit(p, NULL);
        return;
    case P_AUDIT:
        return;
    }
}

void release_push_target(const struct release_op_ctx *ctx, struct transport *t,
                         const struct inv_target *target, const struct release_artifact *a,
                         release_done_fn done, void *arg)
{
    struct push *p = xcalloc(1, sizeof *p);

    p->ctx = ctx;
    p->t = t;
    p->target = target;
    p->a = a;
    p->done = done;
    p->arg = arg;
    p->res.target = target->name;
    push_stage(p, P_STATE);
    release_read_state(t, target, push_state_read, p);
}

/* ---- prune ---- */

struct prune {
    const struct release_op_ctx *ctx;
    struct transport *t;
    const struct inv_target *target;
    unsigned keep;
    bool dry_run;
    release_done_fn done;
    void *arg;
    struct hoststate *state;
    char **remove;
    size_t nremove;
    int stage; /* 0 listing, 1 removing, 2 writing state, 3 audit */
    struct target_result res;
};

static void prune_finish(struct prune *p)
{
    size_t i;

    p->done(p->arg, &p->res);
    for (i = 0; i < p->nremove; i++)
        free(p->remove[i]);
    free(p->remove);
    hoststate_free(p->state);
    free(p);
}

struct named {
    struct semver sv;
    const char *name;
    bool valid;
};

static int named_newest_first(const void *a, const void *b)
{
    const struct named *x = a, *y = b;

    if (x->valid != y->valid)
        return x->valid ? -1 : 1; /* versions first; other names last (removed first) */
    if (!x->valid)
        return strcmp(y->name, x->name);
    return semver_cmp_names(&y->sv, y->name, &x->sv, x->name);
}

static void prune_step(void *arg, const struct transport_result *r);

static void prune_audit_done(void *arg, int rc, const char *msg)
{
    struct prune *p = arg;

    audit_outcome(&p->res,
                  p->res.outcome == PUSH_FAILED ? "what was done stands"
                                                : "the releases were removed",
                  rc, msg);
    prune_finish(p);
}

static void prune_plan(struct prune *p);

static void prune_reconciled(void *arg, bool ok)
{
    struct prune *p = arg;

    if (!ok) {
        prune_finish(p);
        return;
    }
    prune_plan(p);
}

static void prune_state_read(void *arg, struct hoststate *s, const char *warning, const char *msg)
{
    struct prune *p = arg;

    if (s == NULL) {
        p->res.outcome = PUSH_FAILED;
        snprintf(p->res.msg, sizeof p->res.msg, "%s", msg);
        prune_finish(p);
        return;
    }
    p->state = s;
    if (hoststate_links_unreadable(s)) {
        /* What runs is not known for sure: removing nothing is the only safe prune. */
        p->res.outcome = PUSH_FAILED;
        snprintf(p->res.msg, sizeof p->res.msg,
                 "%s; not pruning while a slot or current link is not a release: fix the link",
                 warning != NULL ? warning : "a link is unreadable");
        prune_finish(p);
        return;
    }
    if (warning != NULL)
        snprintf(p->res.msg, sizeof p->res.msg, "%s", warning);
    /* A dry run holds no lock, and changes nothing. */
    if (p->dry_run)
        prune_plan(p);
    else
        reconcile_write(p->ctx, p->t, p->target, s, &p->res, prune_reconciled, p);
}

/* Which releases go, and which stay; then remove them. */
static void prune_plan(struct prune *p)
{
    const struct hoststate *s = p->state;
    size_t n, i, kept = 0, len = strlen(p->res.msg);
    struct named *all;
    struct buf removed, keptnames, cmd;
    enum hs_slot live;

    n = hoststate_nreleases(s);
    all = xcalloc(n + 1, sizeof *all);
    for (i = 0; i < n; i++) {
        struct err err;

        all[i].name = hoststate_release(s, i)->version;
        all[i].valid = semver_parse(all[i].name, &all[i].sv, &err) == 0;
    }
    qsort(all, n, sizeof *all, named_newest_first);
    buf_init(&removed);
    buf_init(&keptnames);
    for (i = 0; i < n; i++) {
        bool live_one = hoststate_live(s, &live) && hoststate_slot_version(s, live) != NULL &&
                        strcmp(hoststate_slot_version(s, live), all[i].name) == 0;

        /* Kept: the newest ones, and whatever a slot, current or a rollback needs. */
        if (kept < p->keep || hoststate_in_use(s, all[i].name) || live_one) {
            if (kept < p->keep)
                kept++;
            buf_addf(&keptnames, "%s%s%s", keptnames.len ? " " : "", all[i].name,
                     kept <= p->keep && !hoststate_in_use(s, all[i].name) ? "" : "(in use)");
            continue;
        }
        p->remove = xreallocarray(p->remove, p->nremove + 1, sizeof *p->remove);
        p->remove[p->nremove++] = xstrdup(all[i].name);
        buf_addf(&removed, "%s%s", removed.len ? " " : "", all[i].name);
    }
    for (i = 0; i < n; i++) {
        if (all[i].valid)
            semver_done(&all[i].sv);
    }
    free(all);
    snprintf(p->res.msg + len, sizeof p->res.msg - len, "%skept: %s; %s: %s", len ? "; " : "",
             keptnames.len ? keptnames.data : "nothing", p->dry_run ? "would remove" : "removed",
             removed.len ? removed.data : "nothing");
    buf_done(&removed);
    buf_done(&keptnames);
    if (p->nremove == 0 || p->dry_run) {
        p->res.outcome = PUSH_ALREADY;
        prune_finish(p);
        return;
    }
    buf_init(&cmd);
    shell_cmdf(&cmd, "cd %s/releases", p->target->deploy_path);
    for (i = 0; i < p->nremove; i++)
        shell_cmdf(&cmd, " && rm -rf -- %s", p->remove[i]);
    p->stage = 1;
    {
        transport_sh(p->t, cmd.data, 600000, 0, prune_step, p);
    }
    buf_done(&cmd);
}

/* The target's audit record of the prune; result "ok", or "failed"/"partial" with the error
 * under key in the detail (the outcome is then a failure, and res.msg says why). */
static void prune_audit(struct prune *p, const char *result, const char *key, const char *error)
{
    struct audit_entry e = {0};
    const char *targets[] = {p->target->name, NULL};
    cJSON *detail = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(detail, "removed");
    size_t i;

    for (i = 0; i < p->nremove; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(p->remove[i]));
    cJSON_AddNumberToObject(detail, "keep", p->keep);
    if (key != NULL)
        cJSON_AddStringToObject(detail, key, error);
    e.time = (int64_t)time(NULL);
    e.actor = p->ctx->who;
    e.pid = (long)getpid();
    e.action = "release.prune";
    e.targets = targets;
    e.result = result;
    e.detail = detail;
    p->res.outcome = key == NULL ? PUSH_DONE : PUSH_FAILED;
    p->stage = 3;
    auditlog_append(p->t, p->target->deploy_path, &e, prune_audit_done, p);
    cJSON_Delete(detail);
}

static void prune_step(void *arg, const struct transport_result *r)
{
    struct prune *p = arg;
    size_t i;

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char *why = failure_text(r);

        /* Something may be gone already: recorded either way (the next read of the state
         * reconciles it with the disk). */
        if (p->stage == 1)
            snprintf(p->res.msg, sizeof p->res.msg, "removing releases: %s", why);
        else
            snprintf(p->res.msg, sizeof p->res.msg,
                     "the releases were removed, but %s could not be written: %s", HOSTSTATE_FILE,
                     why);
        prune_audit(p, p->stage == 1 ? "failed" : "partial",
                    p->stage == 1 ? "error" : "state_not_written", why);
        free(why);
        return;
    }
    if (p->stage == 1) {
        int64_t now = (int64_t)time(NULL);

        for (i = 0; i < p->nremove; i++) {
            hoststate_remove_release(p->state, p->remove[i]);
            hoststate_add_history(p->state, now, "release.prune", p->remove[i], p->ctx->who);
        }
        p->stage = 2;
        release_write_state(p->t, p->target, p->state, now, prune_step, p);
        return;
    }
    prune_audit(p, "ok", NULL, NULL);
}

void release_prune_target(const struct release_op_ctx *ctx, struct transport *t,
                          const struct inv_target *target, unsigned keep, bool dry_run,
                          release_done_fn done, void *arg)
{
    struct prune *p = xcalloc(1, sizeof *p);

    p->ctx = ctx;
    p->t = t;
    p->target = target;
    p->keep = keep;
    p->dry_run = dry_run;
    p->done = done;
    p->arg = arg;
    p->res.target = target->name;
    release_read_state(t, target, prune_state_read, p);
}
