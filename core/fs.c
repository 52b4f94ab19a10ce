/* Small file-system helpers. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/xalloc.h"

static int mkdirs_in(char *dir, struct err *err)
{
    char *slash;
    int rc;

    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT || (slash = strrchr(dir, '/')) == NULL || slash == dir)
        return err_set(err, "cannot create directory %s: %s", dir, strerror(errno));
    *slash = '\0';
    rc = mkdirs_in(dir, err);
    *slash = '/';
    if (rc != 0)
        return -1;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return err_set(err, "cannot create directory %s: %s", dir, strerror(errno));
    return 0;
}

int fs_mkdirs(const char *path, struct err *err)
{
    char *dir = xstrdup(path);
    size_t n = strlen(dir);
    int rc;

    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    rc = mkdirs_in(dir, err);
    free(dir);
    return rc;
}

int fs_mkdirs_for(const char *file, struct err *err)
{
    char *dir = xstrdup(file), *slash = strrchr(dir, '/');
    int rc = 0;

    if (slash != NULL && slash != dir) {
        *slash = '\0';
        rc = mkdirs_in(dir, err);
    }
    free(dir);
    return rc;
}

int fs_write_whole(int fd, off_t size, const void *data, size_t len, int *write_errno,
                   int *cut_errno)
{
    const char *p = data;
    size_t off = 0;
    ssize_t n;

    while (off < len) {
        n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *write_errno = n < 0 ? errno : ENOSPC;
            if (off > 0 && ftruncate(fd, size) != 0) {
                *cut_errno = errno;
                return -2;
            }
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}
