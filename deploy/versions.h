/*
 * Versions: the app repository's tags that match the configured pattern, annotated and
 * lightweight, in semver order (newest first). Tags that are not versions are listed as
 * ignored with the reason; a tag name outside [A-Za-z0-9._+-] is never used, anywhere.
 * These calls read the repository with libgit2 and block: call them before the loop runs, or
 * on the thread pool.
 */
#ifndef N3_VERSIONS_H
#define N3_VERSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "deploy/semver.h"

struct version_info {
    char *name; /* the tag */
    struct semver sv;
    char commit[41];
    int64_t time; /* the commit's committer time */
    char *author; /* "Name <email>" */
    char *subject;
    bool annotated;
};

struct ignored_tag {
    char *name; /* printable: control characters escaped */
    char *reason;
};

struct versions {
    struct version_info *v; /* newest first */
    size_t n;
    struct ignored_tag *ignored;
    size_t nignored;
};

int versions_list(const char *repo, const char *pattern, struct versions *out, struct err *err);
void versions_done(struct versions *vs);
const struct version_info *versions_find(const struct versions *vs, const char *name);

/* "abc1234 subject" lines of the commits in to that are not in from, newest first. */
int versions_changelog(const char *repo, const char *from_commit, const char *to_commit,
                       char ***lines, size_t *n, struct err *err);

#endif
