/* Reproducible release archives: a commit's tree or a directory as a byte-stable tar.gz. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <git2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/xalloc.h"
#include "deploy/archive.h"

#define PACK_GZIP_LEVEL "6"
#define PACK_CHUNK      (64u << 10) /* read size when streaming a file from disk */
#define PACK_LINK_MAX   4096        /* longest symlink target (Linux's PATH_MAX) */
#define PACK_TMP_TRIES  16

/* One entry of the archive. The name is what the archive holds: relative, no "./", and
 * directories end in '/' as tar writers put them; sorting on that name keeps a directory
 * next to its contents and makes the commit and the directory cases agree. */
struct item {
    char *name;
    unsigned type; /* AE_IFREG, AE_IFDIR or AE_IFLNK */
    unsigned perm; /* 0644, 0755 (executable file, directory) or 0777 (symlink) */
    uint64_t size; /* file size (directory case, from lstat) */
    char *target;  /* symlink target (directory case) */
    git_oid oid;   /* blob (commit case) */
};

struct items {
    struct item *v;
    size_t len, cap;
};

/* The archive being written: a temporary file next to out_path, hashed as it is written. */
struct pack {
    const char *out_path;
    char *tmp_path;
    int fd;
    struct archive *a;
    EVP_MD_CTX *md;
    uint64_t size, entries;
    int64_t mtime;
    locale_t utf8, saved_locale;
    const atomic_bool *cancel;
};

static struct item *items_add(struct items *l, char *name, unsigned type, unsigned perm)
{
    struct item *it;

    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
    }
    it = &l->v[l->len++];
    memset(it, 0, sizeof *it);
    it->name = name;
    it->type = type;
    it->perm = perm;
    return it;
}

static void items_done(struct items *l)
{
    size_t i;

    for (i = 0; i < l->len; i++) {
        free(l->v[i].name);
        free(l->v[i].target);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int item_cmp(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: bytewise, independent of the locale. */
    return strcmp(((const struct item *)a)->name, ((const struct item *)b)->name);
}

static void items_sort(struct items *l)
{
    if (l->len > 1)
        qsort(l->v, l->len, sizeof *l->v, item_cmp);
}

/* After items_sort: a path given twice, as two entries or as a file (or symlink) and a
 * directory ("l" and "l/"), which git fsck refuses and tar would resolve by overwriting: the
 * name in *dup (caller frees), or NULL. */
static char *items_duplicate(const struct items *l)
{
    struct item key = {0};
    size_t i, n;

    for (i = 0; i < l->len; i++) {
        if (i + 1 < l->len && strcmp(l->v[i].name, l->v[i + 1].name) == 0)
            return xstrdup(l->v[i].name);
        n = strlen(l->v[i].name);
        if (n == 0 || l->v[i].name[n - 1] == '/')
            continue;
        key.name = xasprintf("%s/", l->v[i].name);
        if (bsearch(&key, l->v, l->len, sizeof *l->v, item_cmp) != NULL)
            return key.name;
        free(key.name);
    }
    return NULL;
}

static la_ssize_t pack_write_cb(struct archive *a, void *data, const void *buf, size_t len)
{
    struct pack *p = data;
    const char *s = buf;
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = write(p->fd, s + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            archive_set_error(a, errno, "cannot write %s: %s", p->tmp_path, strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    EVP_DigestUpdate(p->md, buf, len);
    p->size += len;
    return (la_ssize_t)len;
}

/* Create out_path.tmp.<random> with the umask's permissions, never reusing a file. */
static int pack_create_tmp(struct pack *p, struct err *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[8];
    char suffix[2 * sizeof rnd + 1];
    size_t i;
    int tries;

    for (tries = 0; tries < PACK_TMP_TRIES; tries++) {
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            return err_set(err, "cannot write %s: no random bytes for a temporary name",
                           p->out_path);
        for (i = 0; i < sizeof rnd; i++) {
            suffix[2 * i] = hex[rnd[i] >> 4];
            suffix[2 * i + 1] = hex[rnd[i] & 15];
        }
        suffix[2 * sizeof rnd] = '\0';
        free(p->tmp_path);
        p->tmp_path = xasprintf("%s.tmp.%s", p->out_path, suffix);
        p->fd = open(p->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (p->fd >= 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    err_set(err, "cannot create %s: %s: check that its directory exists and is writable",
            p->tmp_path, strerror(errno));
    free(p->tmp_path);
    p->tmp_path = NULL;
    return -1;
}

/* Undo whatever pack_open did; the temporary file goes away. */
static void pack_abort(struct pack *p)
{
    if (p->a != NULL) {
        /* Closing flushes into a file about to be removed: harmless, and frees everything. */
        archive_write_free(p->a);
        p->a = NULL;
    }
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    if (p->tmp_path != NULL) {
        unlink(p->tmp_path);
        free(p->tmp_path);
        p->tmp_path = NULL;
    }
    if (p->md != NULL) {
        EVP_MD_CTX_free(p->md);
        p->md = NULL;
    }
    if (p->utf8 != (locale_t)0) {
        uselocale(p->saved_locale);
        freelocale(p->utf8);
        p->utf8 = (locale_t)0;
    }
}

static int pack_open(struct pack *p, const char *out_path, int64_t mtime, const atomic_bool *cancel,
                     struct err *err)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->out_path = out_path;
    p->mtime = mtime;
    p->cancel = cancel;
    /* libarchive converts names from the thread's locale to UTF-8 for pax headers: in the C
     * locale a non-ASCII name comes out as "hdrcharset=BINARY", in a UTF-8 locale it does
     * not. Pin this thread to UTF-8 while writing so the bytes do not depend on the caller's
     * locale (uselocale is per thread, unlike setlocale). */
    p->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (p->utf8 == (locale_t)0)
        return err_set(err,
                       "cannot write %s: no C.UTF-8 locale, needed to write file names the same "
                       "way everywhere: install it (glibc 2.35+ has it built in)",
                       out_path);
    p->saved_locale = uselocale(p->utf8);
    if (pack_create_tmp(p, err) < 0)
        goto fail;
    if ((p->md = EVP_MD_CTX_new()) == NULL)
        fatal("out of memory (EVP_MD_CTX_new)");
    if (EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) != 1) {
        err_set(err, "cannot write %s: SHA-256 is not available in libcrypto", out_path);
        goto fail;
    }
    if ((p->a = archive_write_new()) == NULL)
        fatal("out of memory (archive_write_new)");
    /* pax restricted: plain ustar unless a name, a link target or a size does not fit, then
     * an extended header named "<dir>/PaxHeader/<name>" (libarchive leaves the pid out) with
     * only those keys: no atime, no ctime, nothing that changes from one run to the next. */
    if (archive_write_set_format_pax_restricted(p->a) != ARCHIVE_OK)
        goto fail_archive;
    /* Anything but OK means libarchive would pipe through an external gzip program, whose
     * header we do not control. */
    if (archive_write_add_filter_gzip(p->a) != ARCHIVE_OK) {
        err_set(err,
                "cannot write %s: libarchive was built without zlib, so the gzip output "
                "would not be reproducible: use a libarchive linked with zlib",
                out_path);
        goto fail;
    }
    /* No time in the gzip header (the filter writes no name unless asked to), fixed level. */
    if (archive_write_set_filter_option(p->a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
        archive_write_set_filter_option(p->a, "gzip", "compression-level", PACK_GZIP_LEVEL) !=
            ARCHIVE_OK)
        goto fail_archive;
    /* The default pads the compressed stream with zeros to a 10 KiB block, as for a tape:
     * the file ends where the gzip stream ends instead. */
    if (archive_write_set_bytes_in_last_block(p->a, 1) != ARCHIVE_OK ||
        archive_write_open(p->a, p, NULL, pack_write_cb, NULL) != ARCHIVE_OK)
        goto fail_archive;
    return 0;

fail_archive:
    err_set(err, "cannot write %s: %s", out_path, archive_error_string(p->a));
fail:
    pack_abort(p);
    return -1;
}

/* The header of one entry. Only what is set here reaches the archive: no uid/gid but 0, no
 * user or group name, no atime/ctime, no device or inode numbers. */
/* Whether the caller asked to stop (then err says so). */
static int pack_canceled(const struct pack *p, struct err *err)
{
    if (p->cancel == NULL || !atomic_load(p->cancel))
        return 0;
    return err_set(err, "the packing of %s was interrupted", p->out_path);
}

static int pack_header(struct pack *p, const struct item *it, struct err *err)
{
    struct archive_entry *e;
    int r;

    if (pack_canceled(p, err) < 0)
        return -1;
    e = archive_entry_new2(p->a);
    if (e == NULL)
        fatal("out of memory (archive_entry_new2)");
    archive_entry_set_pathname(e, it->name);
    archive_entry_set_filetype(e, it->type);
    archive_entry_set_perm(e, it->perm);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, (time_t)p->mtime, 0);
    archive_entry_set_size(e, it->type == AE_IFREG ? (la_int64_t)it->size : 0);
    if (it->type == AE_IFLNK)
        archive_entry_set_symlink(e, it->target);
    r = archive_write_header(p->a, e);
    archive_entry_free(e);
    /* WARN: a name that is not valid UTF-8 went out as raw bytes under "hdrcharset=BINARY";
     * complete and still the same bytes every time. */
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return err_set(err, "cannot write %s into %s: %s", it->name, p->out_path,
                       archive_error_string(p->a));
    p->entries++;
    return 0;
}

static int pack_data(struct pack *p, const struct item *it, const void *data, size_t len,
                     struct err *err)
{
    const char *s = data;
    la_ssize_t n;

    while (len > 0) {
        if (pack_canceled(p, err) < 0)
            return -1;
        n = archive_write_data(p->a, s, len < 65536 ? len : 65536);
        if (n <= 0)
            return err_set(err, "cannot write %s into %s: %s", it->name, p->out_path,
                           n < 0 ? archive_error_string(p->a) : "no progress");
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sync the directory so that the rename survives a crash. Best effort: the archive is already
 * complete and in place, and some file systems refuse fsync on a directory. */
static void sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd;

    if (slash == NULL)
        dir = xstrdup(".");
    else if (slash == path)
        dir = xstrdup("/");
    else
        dir = xstrndup(path, (size_t)(slash - path));
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

static int pack_finish(struct pack *p, struct archive_result *res, struct err *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0, i;
    int r;

    r = archive_write_close(p->a);
    if (r != ARCHIVE_OK) {
        err_set(err, "cannot write %s: %s", p->out_path, archive_error_string(p->a));
        goto fail;
    }
    archive_write_free(p->a);
    p->a = NULL;
    if (fsync(p->fd) < 0) {
        err_set(err, "cannot write %s: fsync %s: %s", p->out_path, p->tmp_path, strerror(errno));
        goto fail;
    }
    r = close(p->fd);
    p->fd = -1;
    if (r < 0) {
        err_set(err, "cannot write %s: close %s: %s", p->out_path, p->tmp_path, strerror(errno));
        goto fail;
    }
    if (rename(p->tmp_path, p->out_path) < 0) {
        err_set(err, "cannot rename %s to %s: %s: remove what is in the way", p->tmp_path,
                p->out_path, strerror(errno));
        goto fail;
    }
    free(p->tmp_path);
    p->tmp_path = NULL; /* renamed: nothing left to remove */
    sync_parent(p->out_path);
    if (EVP_DigestFinal_ex(p->md, md, &mdlen) != 1 || mdlen != 32)
        fatal("SHA-256 of %s failed", p->out_path);
    for (i = 0; i < mdlen; i++) {
        res->sha256[2 * i] = hex[md[i] >> 4];
        res->sha256[2 * i + 1] = hex[md[i] & 15];
    }
    res->sha256[64] = '\0';
    res->size = p->size;
    res->files = p->entries;
    pack_abort(p); /* frees the rest */
    return 0;

fail:
    pack_abort(p);
    return -1;
}

/* ---- from a commit ---- */

struct walk {
    struct items *items;
    char *bad; /* the first entry the walk refused, with the reason */
};

/* Bounds on what a tree may hold: a tree bomb (a few shared trees, millions of paths) or a path
 * too long for the target's tar is refused before anything is written. */
#define PACK_ENTRIES_MAX 1000000
#define PACK_PATH_MAX    4000
#define PACK_BLOB_MAX    ((size_t)1 << 30)

static const char *git_msg(void)
{
    const git_error *e = git_error_last();

    return e != NULL && e->message != NULL ? e->message : "unknown libgit2 error";
}

/* A tree entry name that could escape the archive root or fake a directory. Git refuses to
 * write such trees, but a repository may come from anywhere. */
/* What git itself refuses to check out: no name, ".", "..", a slash, and ".git" in any case
 * (a .git in a release would be a repository configuration that git runs code from). */
static bool bad_name(const char *name)
{
    return name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
           strchr(name, '/') != NULL || strcasecmp(name, ".git") == 0;
}

static int walk_cb(const char *root, const git_tree_entry *entry, void *payload)
{
    struct walk *w = payload;
    const char *name = git_tree_entry_name(entry);
    git_filemode_t mode = git_tree_entry_filemode(entry);
    struct item *it;

    if (bad_name(name)) {
        w->bad = xasprintf("tree entry \"%s%s\" is not a valid path", root, name);
        return -1;
    }
    if (w->items->len >= PACK_ENTRIES_MAX) {
        w->bad = xasprintf("the tree has more than %d entries", PACK_ENTRIES_MAX);
        return -1;
    }
    if (strlen(root) + strlen(name) + 1 > PACK_PATH_MAX) {
        w->bad = xasprintf("the path %.60s... is longer than %d bytes", root, PACK_PATH_MAX);
        return -1;
    }
    switch (mode) {
    case GIT_FILEMODE_TREE:
        items_add(w->items, xasprintf("%s%s/", root, name), AE_IFDIR, 0755);
        return 0;
    case GIT_FILEMODE_BLOB:
    case GIT_FILEMODE_BLOB_EXECUTABLE:
        it = items_add(w->items, xasprintf("%s%s", root, name), AE_IFREG,
                       mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
        break;
    case GIT_FILEMODE_LINK:
        it = items_add(w->items, xasprintf("%s%s", root, name), AE_IFLNK, 0777);
        break;
    case GIT_FILEMODE_COMMIT:
        w->bad = xasprintf("%s%s is a submodule (gitlink); a release archive cannot hold "
                           "one: vendor its files or pack a directory built with them",
                           root, name);
        return -1;
    default:
        w->bad = xasprintf("%s%s has an unknown mode %06o", root, name, (unsigned)mode);
        return -1;
    }
    git_oid_cpy(&it->oid, git_tree_entry_id(entry));
    return 0;
}

static bool hex_id_ok(const char *s)
{
    size_t n = strlen(s);

    return n >= GIT_OID_MINPREFIXLEN && n <= GIT_OID_HEXSZ &&
           strspn(s, "0123456789abcdefABCDEF") == n;
}

/* The commit a hex id names, following an annotated tag if it names one. */
static int lookup_commit(git_repository *repo, const char *repo_path, const char *hex,
                         git_commit **out, struct err *err)
{
    git_object *obj = NULL, *peeled = NULL;
    git_oid oid;
    int r;

    if (!hex_id_ok(hex))
        return err_set(err,
                       "\"%s\" is not a commit id: give 4 to 40 hex digits (git rev-parse "
                       "TAG^{commit} prints one)",
                       hex);
    if (git_oid_fromstrn(&oid, hex, strlen(hex)) < 0)
        return err_set(err, "\"%s\" is not a commit id: %s", hex, git_msg());
    r = git_object_lookup_prefix(&obj, repo, &oid, strlen(hex), GIT_OBJECT_ANY);
    if (r == GIT_ENOTFOUND)
        return err_set(err, "commit %s not found in %s: fetch it, or check the id", hex, repo_path);
    if (r == GIT_EAMBIGUOUS)
        return err_set(err, "commit id %s is ambiguous in %s: give more hex digits", hex,
                       repo_path);
    if (r < 0)
        return err_set(err, "cannot look up %s in %s: %s", hex, repo_path, git_msg());
    r = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
    if (r < 0) {
        err_set(err, "%s in %s is a %s, not a commit: give a commit or a tag", hex, repo_path,
                git_object_type2string(git_object_type(obj)));
        git_object_free(obj);
        return -1;
    }
    git_object_free(obj);
    *out = (git_commit *)peeled;
    return 0;
}

static int pack_blob_item(struct pack *p, git_repository *repo, struct item *it,
                          const char *commit_hex, struct err *err)
{
    char hex[GIT_OID_HEXSZ + 1];
    git_blob *blob = NULL;
    git_odb *odb = NULL;
    git_object_t type;
    const void *data;
    size_t len;
    int rc = -1;

    /* libgit2 reads a blob whole into memory: its size is checked first. */
    if (git_repository_odb(&odb, repo) == 0 &&
        git_odb_read_header(&len, &type, odb, &it->oid) == 0 && len > PACK_BLOB_MAX) {
        git_odb_free(odb);
        return err_set(err,
                       "%s in commit %s is %zu MiB, over the %u MiB a file packed from git may "
                       "have (it is read whole into memory): keep it out of the repository, or "
                       "bring it in with a build hook (what a hook leaves is packed as it streams)",
                       it->name, commit_hex, len >> 20, (unsigned)(PACK_BLOB_MAX >> 20));
    }
    git_odb_free(odb);
    if (git_blob_lookup(&blob, repo, &it->oid) < 0) {
        git_oid_tostr(hex, sizeof hex, &it->oid);
        return err_set(err, "cannot read %s (blob %s) of commit %s: %s", it->name, hex, commit_hex,
                       git_msg());
    }
    data = git_blob_rawcontent(blob);
    len = (size_t)git_blob_rawsize(blob);
    if (it->type == AE_IFLNK) {
        if (len == 0 || len >= PACK_LINK_MAX || memchr(data, '\0', len) != NULL) {
            err_set(err, "symlink %s in commit %s has an invalid target (%zu bytes): fix it",
                    it->name, commit_hex, len);
            goto out;
        }
        it->target = xstrndup(data, len);
    } else {
        it->size = len;
    }
    if (pack_header(p, it, err) < 0)
        goto out;
    if (it->type == AE_IFREG && pack_data(p, it, data, len, err) < 0)
        goto out;
    rc = 0;
out:
    git_blob_free(blob);
    return rc;
}

int archive_from_commit(const char *repo_path, const char *commit_hex, const char *out_path,
                        struct archive_result *res, const atomic_bool *cancel, struct err *err)
{
    git_repository *repo = NULL;
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    struct items items = {0};
    struct walk w = {.items = &items};
    struct pack p;
    size_t i;
    char *dup;
    int rc = -1, r;

    memset(res, 0, sizeof *res);
    /* Reference-counted: balanced by the shutdown below, whatever the caller does. */
    if (git_libgit2_init() < 0)
        return err_set(err, "cannot start libgit2: %s", git_msg());
    /* NO_SEARCH: a path that is not a repository must not silently find a parent one. */
    if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
        err_set(err, "%s is not a git repository (%s): give the path of a clone", repo_path,
                git_msg());
        goto out;
    }
    if (lookup_commit(repo, repo_path, commit_hex, &commit, err) < 0)
        goto out;
    if (git_commit_tree(&tree, commit) < 0) {
        err_set(err, "cannot read the tree of commit %s in %s: %s", commit_hex, repo_path,
                git_msg());
        goto out;
    }
    r = git_tree_walk(tree, GIT_TREEWALK_PRE, walk_cb, &w);
    if (w.bad != NULL) {
        err_set(err, "cannot pack commit %s of %s: %s", commit_hex, repo_path, w.bad);
        goto out;
    }
    if (r < 0) {
        err_set(err, "cannot read the tree of commit %s in %s: %s", commit_hex, repo_path,
                git_msg());
        goto out;
    }
    items_sort(&items);
    if ((dup = items_duplicate(&items)) != NULL) {
        err_set(err, "cannot pack commit %s of %s: the tree has %s twice (git fsck refuses it)",
                commit_hex, repo_path, dup);
        free(dup);
        goto out;
    }
    /* The committer time: when the release was made, the same on every machine. */
    if (pack_open(&p, out_path, (int64_t)git_commit_time(commit), cancel, err) < 0)
        goto out;
    for (i = 0; i < items.len; i++) {
        struct item *it = &items.v[i];

        r = it->type == AE_IFDIR ? pack_header(&p, it, err)
                                 : pack_blob_item(&p, repo, it, commit_hex, err);
        if (r < 0) {
            pack_abort(&p);
            goto out;
        }
    }
    rc = pack_finish(&p, res, err);
out:
    free(w.bad);
    items_done(&items);
    git_tree_free(tree);
    git_commit_free(commit);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

/* ---- from a directory ---- */

static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a regular file, directory or symlink";
}

static int read_link(const char *path, char **out, struct err *err)
{
    char *buf = xmalloc(PACK_LINK_MAX);
    ssize_t n = readlink(path, buf, PACK_LINK_MAX);

    if (n < 0 || n >= PACK_LINK_MAX || n == 0) {
        err_set(err, "cannot read symlink %s: %s", path,
                n < 0 ? strerror(errno) : "target empty or too long");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* Add the entries of directory rel ("" for the top, else ending in '/') below root. */
static int scan_dir(const char *root, const char *rel, struct items *items, struct err *err)
{
    char *path = xasprintf("%s/%s", root, rel), *child;
    struct dirent *de;
    struct stat st;
    struct item *it;
    DIR *d;
    int rc = -1;

    if ((d = opendir(path)) == NULL) {
        err_set(err, "cannot open directory %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    for (;;) {
        errno = 0;
        if ((de = readdir(d)) == NULL) {
            if (errno != 0) {
                err_set(err, "cannot read directory %s: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        child = xasprintf("%s%s", path, de->d_name);
        if (lstat(child, &st) < 0) {
            err_set(err, "cannot stat %s: %s", child, strerror(errno));
            free(child);
            goto out;
        }
        if (S_ISREG(st.st_mode)) {
            it = items_add(items, xasprintf("%s%s", rel, de->d_name), AE_IFREG,
                           st.st_mode & S_IXUSR ? 0755 : 0644);
            it->size = (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode)) {
            items_add(items, xasprintf("%s%s/", rel, de->d_name), AE_IFDIR, 0755);
        } else if (S_ISLNK(st.st_mode)) {
            it = items_add(items, xasprintf("%s%s", rel, de->d_name), AE_IFLNK, 0777);
            if (read_link(child, &it->target, err) < 0) {
                free(child);
                goto out;
            }
        } else {
            err_set(err,
                    "%s is %s, which a release archive cannot hold: remove it before "
                    "packing %s",
                    child, file_kind(st.st_mode), root);
            free(child);
            goto out;
        }
        free(child);
    }
    rc = 0;
out:
    closedir(d);
    free(path);
    return rc;
}

/* Stream a file in chunks; its size went into the header already, so a file that changed
 * since it was listed is an error rather than a short or long entry. */
static int pack_file(struct pack *p, const char *root, const struct item *it, struct err *err)
{
    char *path = xasprintf("%s/%s", root, it->name);
    char *buf = NULL;
    uint64_t left = it->size;
    struct stat st;
    ssize_t n;
    int fd, rc = -1;

    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        err_set(err, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != it->size) {
        err_set(err, "%s changed while packing %s: let the build finish, then pack again", path,
                p->out_path);
        goto out;
    }
    buf = xmalloc(PACK_CHUNK);
    while (left > 0) {
        n = read(fd, buf, left < PACK_CHUNK ? (size_t)left : PACK_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err_set(err, "cannot read %s: %s", path,
                    n < 0 ? strerror(errno) : "file shrank while packing: pack again");
            goto out;
        }
        if (pack_data(p, it, buf, (size_t)n, err) < 0)
            goto out;
        left -= (uint64_t)n;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    free(path);
    return rc;
}

int archive_from_dir(const char *dir, int64_t mtime, const char *out_path,
                     struct archive_result *res, const atomic_bool *cancel, struct err *err)
{
    struct items items = {0};
    struct stat st;
    struct pack p;
    size_t i;
    int rc = -1, r;

    memset(res, 0, sizeof *res);
    if (stat(dir, &st) < 0)
        return err_set(err, "cannot pack %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "cannot pack %s: not a directory", dir);
    /* Breadth first without recursion: every directory found is appended, then scanned when
     * the loop reaches it. */
    if (scan_dir(dir, "", &items, err) < 0)
        goto out;
    for (i = 0; i < items.len; i++) {
        if (items.v[i].type == AE_IFDIR && scan_dir(dir, items.v[i].name, &items, err) < 0)
            goto out;
    }
    items_sort(&items);
    if (pack_open(&p, out_path, mtime, cancel, err) < 0)
        goto out;
    for (i = 0; i < items.len; i++) {
        r = pack_header(&p, &items.v[i], err);
        if (r == 0 && items.v[i].type == AE_IFREG)
            r = pack_file(&p, dir, &items.v[i], err);
        if (r < 0) {
            pack_abort(&p);
            goto out;
        }
    }
    rc = pack_finish(&p, res, err);
out:
    items_done(&items);
    return rc;
}
