/* Small file-system helpers shared by the modules that keep files on this machine. */
#ifndef N3_FS_H
#define N3_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* mkdir -p: every missing level of path is created 0700 (~/.local/state or ~/.cache may not
 * exist yet, and what n3ctl keeps there is the operator's alone); levels that exist are left as
 * they are. 0, or -1 with err naming the directory that could not be made. */
int fs_mkdirs(const char *path, struct err *err);
/* fs_mkdirs of the directory file goes in (nothing to do for a name without one). */
int fs_mkdirs_for(const char *file, struct err *err);

/* Write len bytes at the end of a file of `size` bytes (fd opened O_APPEND), looping on short
 * writes; all of them or none: a write that fails half way (a full disk) is cut back to size.
 * 0; -1 with *write_errno when nothing is left written (ENOSPC for a write that wrote nothing);
 * -2 when part was written and could not be cut off again (*cut_errno: ftruncate's error). */
int fs_write_whole(int fd, off_t size, const void *data, size_t len, int *write_errno,
                   int *cut_errno);

#endif
