/* Versions: the app repository's tags as semantic versions, read with libgit2. */
#include "config.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "deploy/versions.h"

static const char *git_msg(void)
{
    const git_error *e = git_error_last();

    return e != NULL && e->message != NULL ? e->message : "unknown error";
}

/* A tag name as it may be shown: anything not printable ASCII as \xNN. */
static char *printable(const char *s)
{
    struct buf b;
    const unsigned char *p;

    buf_init(&b);
    for (p = (const unsigned char *)s; *p != '\0' && b.len < 200; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            buf_addf(&b, "\\x%02x", *p);
        else
            buf_addc(&b, (char)*p);
    }
    {
        char *out = buf_detach(&b, NULL);

        buf_done(&b);
        return out;
    }
}

static void add_ignored(struct versions *vs, const char *name, const char *reason)
{
    size_t n = strlen(name);

    vs->ignored = xreallocarray(vs->ignored, vs->nignored + 1, sizeof *vs->ignored);
    vs->ignored[vs->nignored].name = printable(name);
    /* The reasons from semver name the tag first; it is printed next to them already. */

    if (strncmp(reason, name, n) == 0 && strncmp(reason + n, ": ", 2) == 0)
        reason += n + 2;
    else if (reason[0] == '"' && strncmp(reason + 1, name, n) == 0 &&
             strncmp(reason + 1 + n, "\": ", 3) == 0)
        reason += n + 4;
    vs->ignored[vs->nignored].reason = xstrdup(reason);
    vs->nignored++;
}

struct walk {
    git_repository *repo;
    const char *pattern;
    struct versions *vs;
};

static void add_tag(const char *refname, void *payload)
{
    struct walk *w = payload;
    const char *name = refname + strlen("refs/tags/");
    git_object *obj = NULL, *peeled = NULL;
    git_reference *ref = NULL;
    struct version_info vi;
    const git_signature *author;
    struct err err;

    if (fnmatch(w->pattern, name, 0) != 0)
        return;
    if (!version_name_ok(name, &err)) {
        add_ignored(w->vs, name, err.msg);
        return;
    }
    memset(&vi, 0, sizeof vi);
    if (semver_parse(name, &vi.sv, &err) != 0) {
        add_ignored(w->vs, name, err.msg);
        return;
    }
    if (git_reference_lookup(&ref, w->repo, refname) != 0 ||
        git_reference_peel(&obj, ref, GIT_OBJECT_ANY) != 0) {
        add_ignored(w->vs, name, git_msg());
        goto out;
    }
    /* An annotated tag points to a tag object; both kinds end at a commit. */
    {
        git_object *target = NULL;

        vi.annotated =
            git_reference_target(ref) != NULL &&
            git_object_lookup(&target, w->repo, git_reference_target(ref), GIT_OBJECT_TAG) == 0;
        git_object_free(target);
    }
    if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) != 0) {
        add_ignored(w->vs, name, "does not point to a commit");
        goto out;
    }
    git_oid_tostr(vi.commit, sizeof vi.commit, git_object_id(peeled));
    vi.time = (int64_t)git_commit_time((git_commit *)peeled);
    author = git_commit_author((git_commit *)peeled);
    vi.author = xasprintf("%s <%s>", author->name, author->email);
    vi.subject = xstrdup(git_commit_summary((git_commit *)peeled) != NULL
                             ? git_commit_summary((git_commit *)peeled)
                             : "");
    vi.name = xstrdup(name);
    w->vs->v = xreallocarray(w->vs->v, w->vs->n + 1, sizeof *w->vs->v);
    w->vs->v[w->vs->n++] = vi;
    memset(&vi, 0, sizeof vi);
out:
    semver_done(&vi.sv);
    git_object_free(peeled);
    git_object_free(obj);
    git_reference_free(ref);
}

static int newest_first(const void *a, const void *b)
{
    const struct version_info *x = a, *y = b;

    return semver_cmp_names(&y->sv, y->name, &x->sv, x->name);
}

int versions_list(const char *repo_path, const char *pattern, struct versions *out, struct err *err)
{
    git_repository *repo = NULL;
    struct walk w;
    int rc = 0, r;

    memset(out, 0, sizeof *out);
    git_libgit2_init();
    if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
        rc = err_set(err, "%s is not a git repository (%s); set app.repository in n3.json",
                     repo_path, git_msg());
        goto out;
    }
    w.repo = repo;
    w.pattern = pattern;
    w.vs = out;
    {
        git_reference_iterator *it = NULL;
        const char *refname;

        if (git_reference_iterator_glob_new(&it, repo, "refs/tags/*") != 0) {
            rc = err_set(err, "cannot list the tags of %s: %s", repo_path, git_msg());
            goto out;
        }
        while ((r = git_reference_next_name(&refname, it)) == 0)
            add_tag(refname, &w);
        git_reference_iterator_free(it);
        if (r != GIT_ITEROVER) {
            rc = err_set(err, "cannot list the tags of %s: %s", repo_path, git_msg());
            goto out;
        }
    }
    qsort(out->v, out->n, sizeof *out->v, newest_first);
out:
    git_repository_free(repo);
    git_libgit2_shutdown();
    if (rc != 0)
        versions_done(out);
    return rc;
}

void versions_done(struct versions *vs)
{
    size_t i;

    for (i = 0; i < vs->n; i++) {
        free(vs->v[i].name);
        free(vs->v[i].author);
        free(vs->v[i].subject);
        semver_done(&vs->v[i].sv);
    }
    for (i = 0; i < vs->nignored; i++) {
        free(vs->ignored[i].name);
        free(vs->ignored[i].reason);
    }
    free(vs->v);
    free(vs->ignored);
    memset(vs, 0, sizeof *vs);
}

const struct version_info *versions_find(const struct versions *vs, const char *name)
{
    size_t i;

    for (i = 0; i < vs->n; i++) {
        if (strcmp(vs->v[i].name, name) == 0)
            return &vs->v[i];
    }
    /* "1.4.2" finds the tag v1.4.2, and "v1.4.2" the tag 1.4.2. */
    for (i = 0; i < vs->n; i++) {
        const char *t = vs->v[i].name;

        if ((t[0] == 'v' && strcmp(t + 1, name) == 0) ||
            (name[0] == 'v' && strcmp(t, name + 1) == 0))
            return &vs->v[i];
    }
    return NULL;
}

int versions_changelog(const char *repo_path, const char *from_commit, const char *to_commit,
                       char ***lines, size_t *n, struct err *err)
{
    git_repository *repo = NULL;
    git_revwalk *walk = NULL;
    git_oid from, to, oid;
    int rc = 0, r = GIT_ITEROVER;

    *lines = NULL;
    *n = 0;
    git_libgit2_init();
    if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
        rc = err_set(err, "%s is not a git repository (%s)", repo_path, git_msg());
        goto out;
    }
    if (git_oid_fromstr(&from, from_commit) != 0 || git_oid_fromstr(&to, to_commit) != 0 ||
        git_revwalk_new(&walk, repo) != 0 || git_revwalk_push(walk, &to) != 0 ||
        git_revwalk_hide(walk, &from) != 0) {
        rc = err_set(err, "cannot walk the history of %s: %s", repo_path, git_msg());
        goto out;
    }
    git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
    /* A history that cannot be walked to its end (a shallow clone) is an error, not an empty
     * or a short changelog. */
    while ((r = git_revwalk_next(&oid, walk)) == 0) {
        git_commit *c = NULL;
        char hex[8];

        if (git_commit_lookup(&c, repo, &oid) != 0) {
            r = -1;
            break;
        }
        git_oid_tostr(hex, sizeof hex, &oid);
        *lines = xreallocarray(*lines, *n + 1, sizeof **lines);
        (*lines)[(*n)++] =
            xasprintf("%s %s", hex, git_commit_summary(c) != NULL ? git_commit_summary(c) : "");
        git_commit_free(c);
    }
    if (r != GIT_ITEROVER)
        rc = err_set(err,
                     "the history of %s between the two versions cannot be read (%s): a shallow "
                     "clone? `git fetch --unshallow` there",
                     repo_path, git_msg());
out:
    git_revwalk_free(walk);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}
