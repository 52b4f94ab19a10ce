/* Release archives: real repositories made by git, archives judged by GNU tar, gzip,
 * sha256sum and git archive, and compared byte for byte for reproducibility. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "deploy/archive.h"
#include "tests/unit/testutil.h"

#define COMMIT_TIME  1680674828LL /* 2023-04-05 06:07:08 UTC */
#define COMMIT_DATE  "1680674828 +0000"
#define LIST_DATE    "2023-04-05"
#define LIST_CLOCK   "06:07:08"
#define BIG_SIZE     (3u << 20)
#define UNICODE_NAME "release notes – ünïcødé ✓.txt"
#define WANT_MAX     32

/* One entry as `tar -tv` should list it, in the order it should list it. */
struct want {
    char *name;
    const char *perm;
    const char *content; /* regular files other than the big one */
    const char *target;  /* symlinks */
};

static char *tmp, *repo, *commit, *tag, *tree_id, *subrepo, *sub_commit;
static char *long_file; /* long/<60 d>/<120 f>.txt: > 100 bytes, a base name > 100 bytes */
static unsigned char *big;
static struct want want[WANT_MAX];
static size_t nwant;

static char *vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    char *s;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        fatal("bad format %s", fmt);
    s = xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

/* Run a shell command; its exit status (0 when it succeeded). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    va_list ap;
    char *cmd;
    int rc;

    va_start(ap, fmt);
    cmd = vfmt(fmt, ap);
    va_end(ap);
    rc = system(cmd);
    free(cmd);
    return rc;
}

static void run(const char *cmd)
{
    if (system(cmd) != 0)
        fatal("test setup failed: %s", cmd);
}

/* Standard output of a shell command, or NULL if it failed. */
static char *capture(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *capture(size_t *len, const char *fmt, ...)
{
    char chunk[8192], *cmd, *out;
    struct buf b;
    va_list ap;
    size_t n;
    FILE *f;

    va_start(ap, fmt);
    cmd = vfmt(fmt, ap);
    va_end(ap);
    f = popen(cmd, "r");
    free(cmd);
    if (f == NULL)
        return NULL;
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    if (pclose(f) != 0) {
        buf_done(&b);
        return NULL;
    }
    out = buf_detach(&b, len);
    buf_done(&b); /* detach leaves an empty buffer behind */
    return out;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data;
    char chunk[8192];
    struct buf b;
    size_t n;

    if (f == NULL)
        fatal("cannot read %s", path);
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    data = (unsigned char *)buf_detach(&b, len);
    buf_done(&b);
    return data;
}

/* Write root/rel (making its directories) with the given bytes and mode. */
static void put_file(const char *root, const char *rel, const void *data, size_t len, mode_t mode)
{
    char *path = xasprintf("%s/%s", root, rel), *slash;
    FILE *f;

    for (slash = strchr(path + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            fatal("mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
        fatal("cannot write %s", path);
    if (chmod(path, mode) < 0)
        fatal("chmod %s", path);
    free(path);
}

static void put_link(const char *root, const char *rel, const char *target)
{
    char *path = xasprintf("%s/%s", root, rel);

    if (symlink(target, path) < 0)
        fatal("symlink %s: %s", path, strerror(errno));
    free(path);
}

static void add_want(const char *name, const char *perm, const char *content, const char *target)
{
    if (nwant == WANT_MAX)
        fatal("too many entries");
    want[nwant++] = (struct want){xstrdup(name), perm, content, target};
}

static char *git_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *git_line(const char *fmt, ...)
{
    va_list ap;
    char *cmd, *out;

    va_start(ap, fmt);
    cmd = vfmt(fmt, ap);
    va_end(ap);
    out = capture(NULL, "%s", cmd);
    if (out == NULL)
        fatal("test setup failed: %s", cmd);
    out[strcspn(out, "\n")] = '\0';
    free(cmd);
    return out;
}

static void setup(void)
{
    char d60[61], f120[121], *long_dir, *cmd;
    const char *readme = "# demo\n", *dash = "dash\n", *dot = "dot\n", *x = "x\n",
               *script = "#!/bin/sh\necho deploy\n", *notes = "notes\n", *lng = "long\n",
               *util = "int util(void) { return 1; }\n", *mainc = "int main(void) { return 0; }\n";
    uint32_t s = 2463534242u;
    size_t i;

    /* Fixed identities and dates, and no configuration from the machine running the test. */
    setenv("GIT_AUTHOR_NAME", "Release Bot", 1);
    setenv("GIT_AUTHOR_EMAIL", "release@example.com", 1);
    setenv("GIT_COMMITTER_NAME", "Release Bot", 1);
    setenv("GIT_COMMITTER_EMAIL", "release@example.com", 1);
    setenv("GIT_AUTHOR_DATE", COMMIT_DATE, 1);
    setenv("GIT_COMMITTER_DATE", COMMIT_DATE, 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);

    tmp = tu_mkdtemp();
    repo = xasprintf("%s/repo", tmp);
    memset(d60, 'd', 60);
    d60[60] = '\0';
    memset(f120, 'f', 120);
    f120[120] = '\0';
    long_dir = xasprintf("long/%s", d60);
    long_file = xasprintf("%s/%s.txt", long_dir, f120);
    /* Random bytes: deflate cannot shrink them, so the archive really is megabytes. */
    big = xmalloc(BIG_SIZE);
    for (i = 0; i < BIG_SIZE; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        big[i] = (unsigned char)(s >> 24);
    }

    put_file(repo, "README.md", readme, strlen(readme), 0644);
    put_file(repo, "a-b", dash, strlen(dash), 0644);
    put_file(repo, "a.txt", dot, strlen(dot), 0644);
    put_file(repo, "a/x", x, strlen(x), 0644);
    put_file(repo, "bin/deploy.sh", script, strlen(script), 0755);
    put_file(repo, "data/big.bin", big, BIG_SIZE, 0644);
    put_file(repo, "docs/" UNICODE_NAME, notes, strlen(notes), 0644);
    put_file(repo, "empty", "", 0, 0644);
    put_link(repo, "latest", "bin/deploy.sh");
    put_link(repo, "long-link", long_file);
    put_file(repo, long_file, lng, strlen(lng), 0644);
    put_file(repo, "src/lib/util.c", util, strlen(util), 0644);
    put_file(repo, "src/main.c", mainc, strlen(mainc), 0644);

    /* Written out by hand in bytewise order: '-' < '.' < '/' puts "a-b" and "a.txt" before
     * the directory "a/", and upper case before lower case. */
    add_want("README.md", "-rw-r--r--", readme, NULL);
    add_want("a-b", "-rw-r--r--", dash, NULL);
    add_want("a.txt", "-rw-r--r--", dot, NULL);
    add_want("a/", "drwxr-xr-x", NULL, NULL);
    add_want("a/x", "-rw-r--r--", x, NULL);
    add_want("bin/", "drwxr-xr-x", NULL, NULL);
    add_want("bin/deploy.sh", "-rwxr-xr-x", script, NULL);
    add_want("data/", "drwxr-xr-x", NULL, NULL);
    add_want("data/big.bin", "-rw-r--r--", NULL, NULL);
    add_want("docs/", "drwxr-xr-x", NULL, NULL);
    add_want("docs/" UNICODE_NAME, "-rw-r--r--", notes, NULL);
    add_want("empty", "-rw-r--r--", "", NULL);
    add_want("latest", "lrwxrwxrwx", NULL, "bin/deploy.sh");
    add_want("long-link", "lrwxrwxrwx", NULL, long_file);
    add_want("long/", "drwxr-xr-x", NULL, NULL);
    cmd = xasprintf("%s/", long_dir);
    add_want(cmd, "drwxr-xr-x", NULL, NULL);
    free(cmd);
    add_want(long_file, "-rw-r--r--", lng, NULL);
    add_want("src/", "drwxr-xr-x", NULL, NULL);
    add_want("src/lib/", "drwxr-xr-x", NULL, NULL);
    add_want("src/lib/util.c", "-rw-r--r--", util, NULL);
    add_want("src/main.c", "-rw-r--r--", mainc, NULL);

    cmd = xasprintf("cd '%s' && git -c init.defaultBranch=main init -q && git add -A && "
                    "git commit -q -m release && git tag -a v1.0 -m v1.0",
                    repo);
    run(cmd);
    free(cmd);
    commit = git_line("git -C '%s' rev-parse HEAD", repo);
    tag = git_line("git -C '%s' rev-parse v1.0", repo);
    tree_id = git_line("git -C '%s' rev-parse HEAD^{tree}", repo);

    /* A gitlink in a tree, as `git submodule add` leaves it, without fetching anything. */
    subrepo = xasprintf("%s/subrepo", tmp);
    put_file(subrepo, "README.md", readme, strlen(readme), 0644);
    cmd = xasprintf("cd '%s' && git -c init.defaultBranch=main init -q && git add -A && "
                    "git update-index --add --cacheinfo 160000,%s,vendor/lib && "
                    "git commit -q -m 'with submodule'",
                    subrepo, commit);
    run(cmd);
    free(cmd);
    sub_commit = git_line("git -C '%s' rev-parse HEAD", subrepo);
    free(long_dir);
}

static void teardown(void)
{
    size_t i;

    tu_rmdir_r(tmp);
    for (i = 0; i < nwant; i++)
        free(want[i].name);
    free(tmp);
    free(repo);
    free(commit);
    free(tag);
    free(tree_id);
    free(subrepo);
    free(sub_commit);
    free(long_file);
    free(big);
}

/* A fresh directory for one test's output. */
static char *out_dir(const char *name)
{
    char *d = xasprintf("%s/%s", tmp, name);

    if (mkdir(d, 0755) < 0)
        fatal("mkdir %s: %s", d, strerror(errno));
    return d;
}

/* Pack the commit into dir/name and return the path; the build must succeed. */
static char *build(const char *dir, const char *name, struct archive_result *res)
{
    char *path = xasprintf("%s/%s", dir, name);
    struct err err = {{0}};

    ck_assert_msg(archive_from_commit(repo, commit, path, res, NULL, &err) == 0, "%s", err.msg);
    return path;
}

static size_t tmp_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *da = slurp(a, &la), *db = slurp(b, &lb);

    ck_assert_uint_eq(la, lb);
    ck_assert_msg(memcmp(da, db, la) == 0, "%s and %s differ", a, b);
    free(da);
    free(db);
}

START_TEST(two_builds_same_bytes)
{
    char *d1 = out_dir("same1"), *d2 = out_dir("same2"), *a, *b, *c, *sum, *abbrev;
    struct archive_result r1, r2, r3;
    struct err err = {{0}};
    struct stat st;
    size_t i;

    a = build(d1, "release.tar.gz", &r1);
    b = build(d2, "other-name.tar.gz", &r2);
    assert_same_file(a, b);
    ck_assert_str_eq(r1.sha256, r2.sha256);
    ck_assert_uint_eq(r1.size, r2.size);
    ck_assert_uint_eq(r1.files, nwant);
    ck_assert_uint_eq(r2.files, nwant);
    /* The result describes the file on disk, as other tools see it. */
    ck_assert_int_eq(stat(a, &st), 0);
    ck_assert_uint_eq(r1.size, (uint64_t)st.st_size);
    ck_assert_uint_gt(r1.size, BIG_SIZE); /* random data does not compress */
    sum = capture(NULL, "sha256sum '%s'", a);
    ck_assert_ptr_nonnull(sum);
    ck_assert_int_eq(strlen(r1.sha256), 64);
    for (i = 0; i < 64; i++)
        ck_assert_msg(r1.sha256[i] == sum[i], "sha256 %s, sha256sum says %.64s", r1.sha256, sum);
    free(sum);

    /* Packing over an existing archive replaces it with the same bytes. */
    free(build(d1, "release.tar.gz", &r2));
    ck_assert_str_eq(r1.sha256, r2.sha256);
    ck_assert_uint_eq(tmp_files_in(d1), 0);

    /* The annotated tag and an abbreviated id name the same commit: same bytes. */
    c = xasprintf("%s/tag.tar.gz", d2);
    ck_assert_msg(archive_from_commit(repo, tag, c, &r3, NULL, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(r3.sha256, r1.sha256);
    abbrev = xstrndup(commit, 12);
    ck_assert_msg(archive_from_commit(repo, abbrev, c, &r3, NULL, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(r3.sha256, r1.sha256);
    assert_same_file(a, c);
    free(a);
    free(b);
    free(c);
    free(abbrev);
    free(d1);
    free(d2);
}
END_TEST

START_TEST(gzip_header_holds_no_time_or_name)
{
    /* magic, deflate, no flags (so no name), mtime 0, no extra flags, OS Unix */
    static const unsigned char want_head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    time_t t0 = time(NULL), t1;
    char *d = out_dir("gzip"), *a, pat[64];
    struct archive_result r;
    unsigned char *gz, *tar;
    size_t gzlen, tarlen;
    time_t ts[2];
    int i;

    a = build(d, "r.tar.gz", &r);
    t1 = time(NULL);
    gz = slurp(a, &gzlen);
    ck_assert_uint_ge(gzlen, 10);
    ck_assert_msg(memcmp(gz, want_head, sizeof want_head) == 0,
                  "gzip header %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x", gz[0], gz[1],
                  gz[2], gz[3], gz[4], gz[5], gz[6], gz[7], gz[8], gz[9]);
    /* Nor does the tar inside: the current time in octal (ustar) or decimal (pax), to the
     * minute, appears nowhere. */
    tar = (unsigned char *)capture(&tarlen, "gzip -dc '%s'", a);
    ck_assert_ptr_nonnull(tar);
    /* The file ends with the gzip trailer (ISIZE: the tar's length), no padding after it. */
    ck_assert_uint_eq((uint32_t)gz[gzlen - 4] | (uint32_t)gz[gzlen - 3] << 8 |
                          (uint32_t)gz[gzlen - 2] << 16 | (uint32_t)gz[gzlen - 1] << 24,
                      (uint32_t)tarlen);
    ts[0] = t0;
    ts[1] = t1;
    for (i = 0; i < 2; i++) {
        snprintf(pat, sizeof pat, "%llo", (unsigned long long)ts[i] >> 6);
        ck_assert_msg(memmem(tar, tarlen, pat, strlen(pat)) == NULL, "octal time %s in tar", pat);
        snprintf(pat, sizeof pat, "%lld", (long long)ts[i] / 100);
        ck_assert_msg(memmem(tar, tarlen, pat, strlen(pat)) == NULL, "decimal time %s in tar", pat);
    }
    free(gz);
    free(tar);
    free(a);
    free(d);
}
END_TEST

static uint64_t octal(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;

    while (i < n && p[i] == ' ')
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    return v;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Extended header records ("<len> <key>=<value>\n"): only names, never times or ids. */
static void check_pax_records(const unsigned char *p, size_t len)
{
    size_t off = 0, reclen, klen;
    const char *key, *eq;

    while (off < len) {
        reclen = (size_t)strtoul((const char *)p + off, NULL, 10);
        ck_assert_uint_gt(reclen, 0);
        ck_assert_uint_le(off + reclen, len);
        key = memchr(p + off, ' ', reclen);
        ck_assert_ptr_nonnull(key);
        key++;
        eq = memchr(key, '=', reclen - (size_t)(key - (const char *)(p + off)));
        ck_assert_ptr_nonnull(eq);
        klen = (size_t)(eq - key);
        ck_assert_msg((klen == 4 && memcmp(key, "path", 4) == 0) ||
                          (klen == 8 && memcmp(key, "linkpath", 8) == 0),
                      "pax key %.*s", (int)klen, key);
        off += reclen;
    }
}

START_TEST(tar_headers_are_fixed)
{
    char *d = out_dir("headers"), *a;
    struct archive_result r;
    unsigned char *tar;
    const unsigned char *h;
    size_t tarlen, off = 0, pax = 0, entries = 0;
    uint64_t size;
    char name[101];

    a = build(d, "r.tar.gz", &r);
    tar = (unsigned char *)capture(&tarlen, "gzip -dc '%s'", a);
    ck_assert_ptr_nonnull(tar);
    while (off + 512 <= tarlen && !all_zero(tar + off, 512)) {
        h = tar + off;
        memcpy(name, h, 100);
        name[100] = '\0';
        ck_assert_msg(memcmp(h + 257,
                             "ustar\0"
                             "00",
                             8) == 0,
                      "%s: not ustar", name);
        ck_assert_msg(octal(h + 108, 8) == 0 && octal(h + 116, 8) == 0, "%s: owner", name);
        ck_assert_msg(all_zero(h + 265, 64), "%s: user or group name", name);
        ck_assert_msg(octal(h + 136, 12) == (uint64_t)COMMIT_TIME, "%s: mtime", name);
        size = octal(h + 124, 12);
        ck_assert_uint_le(off + 512 + size, tarlen);
        if (h[156] == 'x') {
            /* The extended header's own name: fixed, no pid ("PaxHeader.1234"). */
            ck_assert_msg(strstr(name, "PaxHeader/") != NULL, "pax header named %s", name);
            check_pax_records(h + 512, (size_t)size);
            pax++;
        } else {
            ck_assert_msg(h[156] == '0' || h[156] == '5' || h[156] == '2', "%s: type %c", name,
                          h[156]);
            entries++;
        }
        off += 512 + (size_t)((size + 511) / 512 * 512);
    }
    ck_assert_uint_eq(entries, nwant);
    /* The unicode name, the long path and the long symlink target need one each; everything
     * else fits ustar. */
    ck_assert_uint_eq(pax, 3);
    free(tar);
    free(a);
    free(d);
}
END_TEST

struct lsline {
    char perm[16], owner[32], date[16], clock[16];
    unsigned long long size;
    char *name; /* with " -> target" for symlinks */
};

/* `tar -tv` of an archive, parsed; the number of lines. */
static size_t tar_list(const char *path, struct lsline *out, size_t max)
{
    char *text = capture(NULL,
                         "TZ=UTC0 LC_ALL=C tar --full-time --quoting-style=literal -tzvf '%s' "
                         "2>/dev/null",
                         path);
    char *line, *next;
    size_t n = 0;
    int used;

    ck_assert_ptr_nonnull(text);
    for (line = text; *line != '\0'; line = next) {
        next = strchr(line, '\n');
        ck_assert_ptr_nonnull(next);
        *next++ = '\0';
        ck_assert_uint_lt(n, max);
        used = 0;
        ck_assert_int_eq(sscanf(line, "%15s %31s %llu %15s %15s %n", out[n].perm, out[n].owner,
                                &out[n].size, out[n].date, out[n].clock, &used),
                         5);
        ck_assert_int_gt(used, 0);
        out[n].name = xstrdup(line + used);
        n++;
    }
    free(text);
    return n;
}

static void list_free(struct lsline *l, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(l[i].name);
}

START_TEST(tar_lists_sorted_owned_by_root)
{
    char *d = out_dir("list"), *a, *name;
    struct lsline l[WANT_MAX];
    struct archive_result r;
    size_t n, i;

    a = build(d, "r.tar.gz", &r);
    n = tar_list(a, l, WANT_MAX);
    ck_assert_uint_eq(n, nwant);
    for (i = 0; i < n; i++) {
        name = want[i].target ? xasprintf("%s -> %s", want[i].name, want[i].target)
                              : xstrdup(want[i].name);
        ck_assert_str_eq(l[i].name, name);
        ck_assert_msg(strcmp(l[i].perm, want[i].perm) == 0, "%s: %s", name, l[i].perm);
        ck_assert_msg(strcmp(l[i].owner, "0/0") == 0, "%s: owner %s", name, l[i].owner);
        ck_assert_msg(strcmp(l[i].date, LIST_DATE) == 0 && strcmp(l[i].clock, LIST_CLOCK) == 0,
                      "%s: %s %s", name, l[i].date, l[i].clock);
        if (want[i].content != NULL)
            ck_assert_uint_eq(l[i].size, strlen(want[i].content));
        free(name);
    }
    ck_assert_uint_eq(l[8].size, BIG_SIZE); /* data/big.bin */
    /* The order tar sees is plain byte order, checked by sort(1) as well. */
    ck_assert_int_eq(sh("tar -tzf '%s' | LC_ALL=C sort -c", a), 0);
    list_free(l, n);
    free(a);
    free(d);
}
END_TEST

START_TEST(tar_extracts_what_git_archive_does)
{
    char *d = out_dir("extract"), *a, *x1 = xasprintf("%s/ours", d), *x2, *path, target[256];
    struct archive_result r;
    unsigned char *data;
    struct stat st;
    size_t len, i;
    ssize_t n;

    a = build(d, "r.tar.gz", &r);
    x2 = xasprintf("%s/git", d);
    ck_assert_int_eq(sh("mkdir '%s' '%s'", x1, x2), 0);
    ck_assert_int_eq(sh("tar -p -xzf '%s' -C '%s'", a, x1), 0);
    ck_assert_int_eq(
        sh("git -C '%s' archive --format=tar %s | tar -xf - -C '%s'", repo, commit, x2), 0);
    ck_assert_int_eq(sh("diff -r --no-dereference '%s' '%s'", x1, x2), 0);

    /* And against what the test wrote, not only against git. */
    for (i = 0; i < nwant; i++) {
        path = xasprintf("%s/%s", x1, want[i].name);
        ck_assert_int_eq(lstat(path, &st), 0);
        if (want[i].target != NULL) {
            ck_assert(S_ISLNK(st.st_mode));
            n = readlink(path, target, sizeof target - 1);
            ck_assert_int_gt(n, 0);
            target[n] = '\0';
            ck_assert_str_eq(target, want[i].target);
        } else if (want[i].perm[0] == 'd') {
            ck_assert(S_ISDIR(st.st_mode));
            ck_assert_uint_eq(st.st_mode & 07777, 0755);
        } else {
            ck_assert(S_ISREG(st.st_mode));
            ck_assert_uint_eq(st.st_mode & 07777, want[i].perm[3] == 'x' ? 0755 : 0644);
            data = slurp(path, &len);
            if (want[i].content != NULL) {
                ck_assert_uint_eq(len, strlen(want[i].content));
                ck_assert(memcmp(data, want[i].content, len) == 0);
            } else {
                ck_assert_uint_eq(len, BIG_SIZE);
                ck_assert(memcmp(data, big, len) == 0);
            }
            free(data);
        }
        free(path);
    }
    free(a);
    free(x1);
    free(x2);
    free(d);
}
END_TEST

START_TEST(same_bytes_under_other_tz_umask_locale)
{
    char *d = out_dir("env"), *a, *b;
    struct archive_result r1, r2;
    char *old_tz = getenv("TZ") ? xstrdup(getenv("TZ")) : NULL;
    mode_t old_mask;

    a = build(d, "a.tar.gz", &r1);
    /* The process-wide settings a daemon may run with, all changed at once. */
    setenv("TZ", "NZST-12NZDT", 1);
    tzset();
    old_mask = umask(077);
    ck_assert_ptr_nonnull(setlocale(LC_ALL, "C.UTF-8"));
    b = build(d, "b.tar.gz", &r2);
    setlocale(LC_ALL, "C");
    umask(old_mask);
    if (old_tz != NULL)
        setenv("TZ", old_tz, 1);
    else
        unsetenv("TZ");
    tzset();
    assert_same_file(a, b);
    ck_assert_str_eq(r1.sha256, r2.sha256);
    free(old_tz);
    free(a);
    free(b);
    free(d);
}
END_TEST

START_TEST(dir_checkout_same_bytes_as_commit)
{
    char *d = out_dir("checkout"), *co = xasprintf("%s/co", d), *a, *b, *path;
    struct archive_result r1, r2;
    struct err err = {{0}};
    struct stat st;
    mode_t old_mask;
    int rc;

    a = build(d, "commit.tar.gz", &r1);
    /* A checkout as git makes it under a strict umask: 0600 files, 0700 scripts and
     * directories, mtimes of now. The archive must not see any of that. */
    ck_assert_int_eq(mkdir(co, 0700), 0);
    old_mask = umask(077);
    rc = sh("GIT_INDEX_FILE='%s/index' git --git-dir='%s/.git' --work-tree='%s' checkout -q -f %s "
            "-- .",
            d, repo, co, commit);
    umask(old_mask);
    ck_assert_int_eq(rc, 0);
    path = xasprintf("%s/README.md", co);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    free(path);
    path = xasprintf("%s/bin/deploy.sh", co);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    free(path);

    b = xasprintf("%s/dir.tar.gz", d);
    ck_assert_msg(archive_from_dir(co, COMMIT_TIME, b, &r2, NULL, &err) == 0, "%s", err.msg);
    assert_same_file(a, b);
    ck_assert_str_eq(r1.sha256, r2.sha256);
    ck_assert_uint_eq(r1.files, r2.files);
    ck_assert_uint_eq(r1.size, r2.size);
    free(co);
    free(a);
    free(b);
    free(d);
}
END_TEST

START_TEST(dir_normalizes_modes_and_takes_mtime)
{
    char *d = out_dir("norm"), *src = xasprintf("%s/src", d), *a, *b, *path;
    struct lsline l[8];
    struct archive_result r1, r2;
    struct err err = {{0}};
    size_t n, i;

    put_file(src, "run", "#!/bin/sh\n", 10, 0700);
    put_file(src, "secret", "s\n", 2, 0600);
    put_file(src, "group-x", "g\n", 2, 0650); /* only the owner's bit counts */
    put_file(src, "caf\xe9", "latin-1 name\n", 13, 0644);
    path = xasprintf("%s/empty-dir", src);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    free(path);
    a = xasprintf("%s/a.tar.gz", d);
    b = xasprintf("%s/b.tar.gz", d);
    ck_assert_msg(archive_from_dir(src, 1234567890, a, &r1, NULL, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(r1.files, 5);
    /* A name that is not UTF-8 goes in as raw bytes, the same way every time. */
    ck_assert_ptr_nonnull(setlocale(LC_ALL, "C.UTF-8"));
    ck_assert_msg(archive_from_dir(src, 1234567890, b, &r2, NULL, &err) == 0, "%s", err.msg);
    setlocale(LC_ALL, "C");
    assert_same_file(a, b);

    n = tar_list(a, l, 8);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(l[0].name, "caf\xe9");
    ck_assert_str_eq(l[0].perm, "-rw-r--r--");
    ck_assert_str_eq(l[1].name, "empty-dir/");
    ck_assert_str_eq(l[1].perm, "drwxr-xr-x");
    ck_assert_str_eq(l[2].name, "group-x");
    ck_assert_str_eq(l[2].perm, "-rw-r--r--");
    ck_assert_str_eq(l[3].name, "run");
    ck_assert_str_eq(l[3].perm, "-rwxr-xr-x");
    ck_assert_str_eq(l[4].name, "secret");
    ck_assert_str_eq(l[4].perm, "-rw-r--r--");
    for (i = 0; i < n; i++) {
        ck_assert_str_eq(l[i].owner, "0/0");
        ck_assert_str_eq(l[i].date, "2009-02-13");
        ck_assert_str_eq(l[i].clock, "23:31:30");
    }
    list_free(l, n);
    free(src);
    free(a);
    free(b);
    free(d);
}
END_TEST

/* The call failed, said something containing each of the words, and left no file behind. */
static void assert_failed(int rc, const struct err *err, const char *out_path, const char *dir,
                          const char *w1, const char *w2)
{
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err->msg, w1) != NULL, "\"%s\" not in: %s", w1, err->msg);
    ck_assert_msg(w2 == NULL || strstr(err->msg, w2) != NULL, "\"%s\" not in: %s", w2, err->msg);
    ck_assert_msg(!exists(out_path), "%s exists", out_path);
    if (dir != NULL)
        ck_assert_uint_eq(tmp_files_in(dir), 0);
}

START_TEST(error_unknown_commit)
{
    char *d = out_dir("e-commit"), *out = xasprintf("%s/r.tar.gz", d);
    const char *missing = "0123456789abcdef0123456789abcdef01234567";
    struct archive_result r;
    struct err err = {{0}};
    int rc;

    rc = archive_from_commit(repo, missing, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, missing, "not found");
    ck_assert_ptr_nonnull(strstr(err.msg, repo));
    rc = archive_from_commit(repo, "release-1.0", out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, "not a commit id", "hex digits");
    rc = archive_from_commit(repo, tree_id, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, tree_id, "is a tree, not a commit");
    free(out);
    free(d);
}
END_TEST

START_TEST(error_not_a_repository)
{
    char *d = out_dir("e-repo"), *out = xasprintf("%s/r.tar.gz", d);
    char *plain = xasprintf("%s/plain", d), *missing = xasprintf("%s/missing", d);
    struct archive_result r;
    struct err err = {{0}};
    int rc;

    ck_assert_int_eq(mkdir(plain, 0755), 0);
    rc = archive_from_commit(plain, commit, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, plain, "not a git repository");
    rc = archive_from_commit(missing, commit, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, missing, "not a git repository");
    free(plain);
    free(missing);
    free(out);
    free(d);
}
END_TEST

START_TEST(error_submodule)
{
    char *d = out_dir("e-sub"), *out = xasprintf("%s/r.tar.gz", d);
    struct archive_result r;
    struct err err = {{0}};
    int rc;

    rc = archive_from_commit(subrepo, sub_commit, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, "vendor/lib", "submodule");
    ck_assert_ptr_nonnull(strstr(err.msg, sub_commit));
    free(out);
    free(d);
}
END_TEST

START_TEST(error_fifo_in_dir)
{
    char *d = out_dir("e-fifo"), *src = xasprintf("%s/src", d), *out = xasprintf("%s/r.tar.gz", d);
    char *fifo = xasprintf("%s/run/ctl.fifo", src);
    struct archive_result r;
    struct err err = {{0}};
    int rc;

    put_file(src, "run/app.conf", "x\n", 2, 0644);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    rc = archive_from_dir(src, COMMIT_TIME, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, fifo, "FIFO");
    /* Not a directory at all. */
    rc = archive_from_dir(fifo, COMMIT_TIME, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, fifo, "not a directory");
    free(fifo);
    free(src);
    free(out);
    free(d);
}
END_TEST

START_TEST(error_unwritable_out)
{
    char *d = out_dir("e-out"), *out, *ro;
    struct archive_result r;
    struct err err = {{0}};
    int rc;

    /* A directory nobody can create files in, root included. */
    rc = archive_from_commit(repo, commit, "/proc/n3ctl-release.tar.gz", &r, NULL, &err);
    assert_failed(rc, &err, "/proc/n3ctl-release.tar.gz", NULL, "/proc/n3ctl-release.tar.gz",
                  "cannot create");
    out = xasprintf("%s/no/such/dir/r.tar.gz", d);
    rc = archive_from_commit(repo, commit, out, &r, NULL, &err);
    assert_failed(rc, &err, out, d, out, "directory exists");
    free(out);
    if (geteuid() != 0) { /* root writes into 0555 directories */
        ro = xasprintf("%s/ro", d);
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        out = xasprintf("%s/r.tar.gz", ro);
        rc = archive_from_commit(repo, commit, out, &r, NULL, &err);
        assert_failed(rc, &err, out, ro, out, "writable");
        free(out);
        free(ro);
    }
    /* Fails at the very end: a directory is in the way of the rename. */
    out = xasprintf("%s/in-the-way", d);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    rc = archive_from_commit(repo, commit, out, &r, NULL, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err.msg, "cannot rename") && strstr(err.msg, out), "%s", err.msg);
    ck_assert_uint_eq(tmp_files_in(d), 0);
    free(out);
    free(d);
}
END_TEST

START_TEST(error_canceled)
{
    char *d = out_dir("e-cancel"), *out = xasprintf("%s/r.tar.gz", d);
    struct archive_result r;
    struct err err = {{0}};
    atomic_bool cancel;
    int rc;

    /* Asked to stop (by another thread, normally): nothing is written, nothing is left. */
    atomic_init(&cancel, true);
    rc = archive_from_commit(repo, commit, out, &r, &cancel, &err);
    assert_failed(rc, &err, out, d, out, "interrupted");
    atomic_store(&cancel, false);
    rc = archive_from_commit(repo, commit, out, &r, &cancel, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert(exists(out));
    free(out);
    free(d);
}
END_TEST

START_TEST(error_write_fails_midway)
{
    char *d = out_dir("e-full"), *out = xasprintf("%s/r.tar.gz", d);
    struct archive_result r;
    struct err err = {{0}};
    struct rlimit old, lim;
    void (*old_handler)(int);
    int rc;

    /* A disk that fills up after 512 KiB: the big file cannot fit. */
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 512 << 10;
    old_handler = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = archive_from_commit(repo, commit, out, &r, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    assert_failed(rc, &err, out, d, out, strerror(EFBIG));
    free(out);
    free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("archive");
    TCase *t = tcase_create("archive");

    suite_add_tcase(s, t);
    tcase_add_unchecked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, two_builds_same_bytes);
    tcase_add_test(t, gzip_header_holds_no_time_or_name);
    tcase_add_test(t, tar_headers_are_fixed);
    tcase_add_test(t, tar_lists_sorted_owned_by_root);
    tcase_add_test(t, tar_extracts_what_git_archive_does);
    tcase_add_test(t, same_bytes_under_other_tz_umask_locale);
    tcase_add_test(t, dir_checkout_same_bytes_as_commit);
    tcase_add_test(t, dir_normalizes_modes_and_takes_mtime);
    tcase_add_test(t, error_unknown_commit);
    tcase_add_test(t, error_not_a_repository);
    tcase_add_test(t, error_submodule);
    tcase_add_test(t, error_fifo_in_dir);
    tcase_add_test(t, error_unwritable_out);
    tcase_add_test(t, error_write_fails_midway);
    tcase_add_test(t, error_canceled);
    return tu_run_suite(s);
}
