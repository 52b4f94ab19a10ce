/* Output files written whole or not at all (cli/outfile.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/outfile.h"
#include "core/xalloc.h"

/* Where writing to path really goes: symlinks followed, also to a target not there yet. */
static char *follow_links(const char *path)
{
    char *cur = xstrdup(path), target[PATH_MAX];
    int hops;

    for (hops = 0; hops < 40; hops++) {
        struct stat st;
        ssize_t n;
        char *next;

        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            break;
        n = readlink(cur, target, sizeof target - 1);
        if (n < 0)
            break;
        target[n] = '\0';
        if (target[0] == '/' || strrchr(cur, '/') == NULL) {
            next = xstrdup(target);
        } else {
            int dirlen = (int)(strrchr(cur, '/') - cur);

            next = xasprintf("%.*s/%s", dirlen, cur, target);
        }
        free(cur);
        cur = next;
    }
    return cur;
}

int outfile_open(const struct cli_cmd *cmd, struct outfile *o, const char *path)
{
    struct stat st;
    int fd = -1;

    memset(o, 0, sizeof *o);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "n3ctl %s: cannot write %s: it is a directory; give a file name\n",
                cmd->name, path);
        return -1;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        o->path = xstrdup(path);
        fd = open(path, O_WRONLY | O_CLOEXEC);
    } else {
        o->path = follow_links(path);
        o->tmp = xasprintf("%s.tmp.XXXXXX", o->path);
        fd = mkostemp(o->tmp, O_CLOEXEC);
        if (fd >= 0)
            fchmod(fd, 0644);
    }
    if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "n3ctl %s: cannot write %s: %s\n", cmd->name, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (o->tmp != NULL && fd >= 0)
            unlink(o->tmp);
        free(o->tmp);
        free(o->path);
        memset(o, 0, sizeof *o);
        return -1;
    }
    return 0;
}

int outfile_close(struct outfile *o, bool keep)
{
    int rc = 0;

    if (o->f == NULL)
        return 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        rc = -1;
    if (o->tmp != NULL && rc == 0 && fsync(fileno(o->f)) != 0)
        rc = -1;
    if (fclose(o->f) != 0)
        rc = -1;
    o->f = NULL;
    if (o->tmp != NULL) {
        if (rc == 0 && keep && rename(o->tmp, o->path) != 0)
            rc = -1;
        if (rc != 0 || !keep)
            unlink(o->tmp);
    }
    if (rc != 0)
        fprintf(stderr, "n3ctl: could not write %s: %s\n", o->path, strerror(errno));
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
    return rc;
}
