/*
 * Release archives: a git tree (or a directory built from it) packed as a reproducible tar.gz:
 * the same tag gives the same bytes, on any machine, at any time. Entries are sorted by path
 * (bytewise), owner and group are 0 with empty names, every mtime is the commit's time, file
 * modes are 0644 or 0755 (the executable bit as git records it), directories 0755, symlinks
 * kept as symlinks; the gzip header has no name and no time. Writing goes to a temporary file
 * renamed into place. These calls block: run them on the thread pool.
 *
 * Format: pax restricted (ustar, plus a "<dir>/PaxHeader/<name>" extended header holding only
 * path/linkpath when a name or target is too long or not ASCII). Paths are relative with no
 * "./"; directories are entries of their own, named with a trailing '/' (as tar writes them),
 * and sorting uses those names, so "a-b" < "a.txt" < "a/" < "a/x". Names are written as UTF-8
 * whatever the caller's locale (the calling thread uses C.UTF-8 while writing; that locale
 * must exist); a name that is not valid UTF-8 goes in as raw bytes ("hdrcharset=BINARY").
 * gzip: level 6, no name, mtime 0, no padding after the stream. "Same bytes" assumes the same
 * deflate implementation (zlib): another zlib may compress differently; the tar inside is the
 * same regardless. On failure out_path is untouched, no temporary file is left and res is
 * zeroed.
 */
#ifndef N3_ARCHIVE_H
#define N3_ARCHIVE_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/err.h"

struct archive_result {
    char sha256[65]; /* of the .tar.gz, lowercase hex */
    uint64_t size;   /* bytes of the .tar.gz */
    uint64_t files;  /* entries written (files, directories, symlinks) */
};

/* Both packers take cancel: when another thread sets *cancel (NULL: never), they stop at the
 * next entry or the next 64 KiB, remove what they wrote and fail with "interrupted". */

/* Pack the tree of commit (hex id) of the repository at repo_path. Submodules (gitlinks) are
 * an error that names them. commit_hex may be abbreviated (4+ digits) or name an annotated tag
 * of the commit; the mtime is the committer time. Blobs are packed as stored: .gitattributes
 * are not applied (no export-ignore, eol conversion or LFS smudge). Initializes and shuts down
 * libgit2 itself (reference-counted), so the caller need not. */
int archive_from_commit(const char *repo_path, const char *commit_hex, const char *out_path,
                        struct archive_result *res, const atomic_bool *cancel, struct err *err);

/* Pack the directory dir (after a build hook ran in it), as archive_from_commit would: sorted,
 * owner 0, mtime given, modes normalized by the owner's executable bit. Only regular files,
 * directories and symlinks; anything else (a socket, a device) is an error naming it.
 * Symlinks are not followed (dir itself may be one). Everything under dir is packed, a .git
 * included, and a file must not change while it is packed (that is an error). A checkout of a
 * commit (without gitattributes filters) packed with the commit's time gives the bytes
 * archive_from_commit gives. */
int archive_from_dir(const char *dir, int64_t mtime, const char *out_path,
                     struct archive_result *res, const atomic_bool *cancel, struct err *err);

#endif
