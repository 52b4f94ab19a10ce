/* Small file-system helpers shared by the modules that keep files on this machine. */
#ifndef N3_FS_H
#define N3_FS_H

#include "core/err.h"

/* mkdir -p: every missing level of path is created 0700 (~/.local/state or ~/.cache may not
 * exist yet, and what n3ctl keeps there is the operator's alone); levels that exist are left as
 * they are. 0, or -1 with err naming the directory that could not be made. */
int fs_mkdirs(const char *path, struct err *err);
/* fs_mkdirs of the directory file goes in (nothing to do for a name without one). */
int fs_mkdirs_for(const char *file, struct err *err);

#endif
