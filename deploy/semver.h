/*
 * Versions: git tag names as semantic versions (semver.org 2.0.0), with an optional "v" in
 * front ("v1.4.2"). Precedence as the spec says: numeric major.minor.patch, a pre-release is
 * lower than its release, pre-release identifiers compared one by one (numeric ones as
 * numbers, lower than alphanumeric ones), build metadata ignored for precedence.
 */
#ifndef N3_SEMVER_H
#define N3_SEMVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define VERSION_NAME_MAX 128

struct semver {
    uint64_t major, minor, patch;
    char *pre;   /* "rc.1", or NULL */
    char *build; /* "build.5", or NULL */
};

/*
 * Is name usable as a version anywhere (a path on targets, a word in commands)? 1 to
 * VERSION_NAME_MAX characters from [A-Za-z0-9._+-], not starting with '-' or '.', and not
 * ".." anywhere. When it is not, err says which character at which position, and why.
 */
bool version_name_ok(const char *name, struct err *err);

/* Parse a tag name (one lowercase "v" optional) by the semver.org 2.0.0 grammar; numbers
 * are at most 2^63-1, numeric pre-release identifiers any length. -1 with a reason in err
 * that names the tag and where it goes wrong ("v1.2: a version has three numbers:
 * MAJOR.MINOR.PATCH", "v1.02.3: 02 has a leading zero", "v1.2.3-: empty pre-release
 * identifier"). *out is emptied first, so semver_done is safe whatever the result. */
int semver_parse(const char *name, struct semver *out, struct err *err);
void semver_done(struct semver *v);

/* <0, 0, >0 by precedence (build metadata ignored), for versions from semver_parse. */
int semver_cmp(const struct semver *a, const struct semver *b);
/* A total order for sorting: precedence, then the tag names bytewise (so "v1.0.0+a" and
 * "1.0.0+b" have a stable order). */
int semver_cmp_names(const struct semver *a, const char *name_a, const struct semver *b,
                     const char *name_b);

#endif
