/* known_hosts in OpenSSH's format: load, check a host key, list known types, append. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "deploy/knownhosts.h"

#define KH_FILE_MAX   (64u << 20) /* bigger than any real known_hosts: refuse, do not swallow */
#define KH_TYPE_MAX   64          /* longest key type name accepted ("sk-ecdsa-...": 34) */
#define KH_SHA1_LEN   20
#define KH_HASH_MAGIC "|1|"

enum kh_marker {
    MARK_NONE,
    MARK_REVOKED,
};

struct kh_entry {
    unsigned line;
    enum kh_marker marker;
    bool hashed;
    char *patterns; /* comma-separated patterns (not hashed) */
    unsigned char salt[KH_SHA1_LEN], hash[KH_SHA1_LEN];
    char *type;
    unsigned char *blob;
    size_t bloblen;
};

struct knownhosts {
    struct kh_entry *entries;
    size_t n, cap;
};

/* Parse outcome of one line. */
enum kh_parse {
    PARSE_ENTRY,
    PARSE_SKIP, /* blank, comment, @cert-authority */
    PARSE_BAD,
};

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
    const char *p;

    if (c == '\0')
        return -1;
    p = strchr(b64_chars, c);
    return p != NULL ? (int)(p - b64_chars) : -1;
}

/*
 * Strict base64, as OpenSSH's b64_pton reads known_hosts: padded to a multiple of 4, '=' only
 * at the end, and the unused bits of the last character zero. Returns a new buffer, or NULL.
 */
static unsigned char *b64_decode(const char *s, size_t len, size_t *outlen)
{
    unsigned char *out;
    size_t i, o = 0, pad = 0;

    if (len == 0 || len % 4 != 0)
        return NULL;
    if (s[len - 1] == '=')
        pad = s[len - 2] == '=' ? 2 : 1;
    out = xmalloc(len / 4 * 3);
    for (i = 0; i < len; i += 4) {
        int v[4], k, nv = (i + 4 == len) ? 4 - (int)pad : 4;
        uint32_t w = 0;

        for (k = 0; k < 4; k++) {
            v[k] = k < nv ? b64_value(s[i + k]) : 0;
            if (v[k] < 0)
                goto bad;
            w = w << 6 | (uint32_t)v[k];
        }
        out[o++] = (unsigned char)(w >> 16);
        if (nv > 2)
            out[o++] = (unsigned char)(w >> 8);
        if (nv > 3)
            out[o++] = (unsigned char)w;
        /* Bits that fall past the last byte must be zero, or two spellings decode alike. */
        if ((nv == 2 && (w & 0xffff) != 0) || (nv == 3 && (w & 0xff) != 0))
            goto bad;
    }
    *outlen = o;
    return out;
bad:
    free(out);
    return NULL;
}

/* Base64 of len bytes into out (room for 4 * ceil(len / 3) + 1), with or without padding. */
static void b64_encode(const unsigned char *in, size_t len, char *out, bool pad)
{
    size_t i, o = 0;

    for (i = 0; i < len; i += 3) {
        size_t n = len - i < 3 ? len - i : 3;
        uint32_t w = (uint32_t)in[i] << 16;

        if (n > 1)
            w |= (uint32_t)in[i + 1] << 8;
        if (n > 2)
            w |= in[i + 2];
        out[o++] = b64_chars[w >> 18 & 63];
        out[o++] = b64_chars[w >> 12 & 63];
        if (n > 1)
            out[o++] = b64_chars[w >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (n > 2)
            out[o++] = b64_chars[w & 63];
        else if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
}

/* A key type name as it may appear in a file: letters, digits and "@._-", bounded. */
static bool type_name_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > KH_TYPE_MAX)
        return false;
    for (i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("@._-", s[i]) == NULL)
            return false;
    return true;
}

/* The key type inside a blob: its first length-prefixed string, copied into out. */
static bool blob_type(const unsigned char *blob, size_t len, char out[KH_TYPE_MAX + 1])
{
    uint32_t n;

    if (blob == NULL || len < 4)
        return false;
    n = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
    if (n > len - 4 || !type_name_ok((const char *)blob + 4, n))
        return false;
    memcpy(out, blob + 4, n);
    out[n] = '\0';
    return true;
}

/*
 * The type a presented key is checked as: the blob's own, which is what a known_hosts line
 * stores ("ssh-rsa" also for rsa-sha2-256/512 signatures); the caller's only when the blob has
 * none readable, with rsa-sha2-* read as ssh-rsa.
 */
static void effective_type(const char *type, const unsigned char *key, size_t keylen,
                           char out[KH_TYPE_MAX + 1])
{
    if (blob_type(key, keylen, out))
        return;
    if (type == NULL || !type_name_ok(type, strlen(type)))
        out[0] = '\0';
    else if (strncmp(type, "rsa-sha2-", 9) == 0)
        strcpy(out, "ssh-rsa");
    else
        strcpy(out, type);
}

/* OpenSSH counts ECDSA keys of any curve as one type when it decides a key has changed. */
static bool same_key_type(const char *a, const char *b)
{
    static const char ecdsa[] = "ecdsa-sha2-";

    if (strcmp(a, b) == 0)
        return a[0] != '\0';
    return strncmp(a, ecdsa, sizeof ecdsa - 1) == 0 && strncmp(b, ecdsa, sizeof ecdsa - 1) == 0;
}

/* A glob with * and ?, case-insensitive, against the pattern p..pe. */
static bool glob_match(const char *s, const char *p, const char *pe)
{
    const char *star = NULL, *retry = NULL;

    while (*s != '\0') {
        if (p < pe && *p == '*') {
            star = ++p;
            retry = s;
        } else if (p < pe && (*p == '?' || tolower((unsigned char)*p) == *s)) {
            p++;
            s++;
        } else if (star != NULL) {
            p = star;
            s = ++retry;
        } else {
            return false;
        }
    }
    while (p < pe && *p == '*')
        p++;
    return p == pe;
}

/* OpenSSH's match_hostname on a lowercased host: 1 matched, 0 not, -1 a !pattern matched. */
static int match_patterns(const char *host, const char *list)
{
    int got = 0;

    for (;;) {
        const char *end = strchr(list, ',');
        bool neg = *list == '!';

        if (end == NULL)
            end = list + strlen(list);
        if (glob_match(host, list + neg, end)) {
            if (neg)
                return -1;
            got = 1;
        }
        if (*end == '\0')
            return got;
        list = end + 1;
    }
}

static bool entry_matches(const struct kh_entry *e, const char *host)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    if (!e->hashed)
        return match_patterns(host, e->patterns) == 1;
    if (HMAC(EVP_sha1(), e->salt, sizeof e->salt, (const unsigned char *)host, strlen(host), md,
             &mdlen) == NULL ||
        mdlen != KH_SHA1_LEN)
        fatal("knownhosts: HMAC-SHA1 is not available from libcrypto");
    return memcmp(md, e->hash, KH_SHA1_LEN) == 0;
}

/* "host" for port 22, "[host]:port" otherwise, lowercased as OpenSSH does before matching. */
static char *lookup_name(const char *host, unsigned port)
{
    char *s = port == 22 ? xstrdup(host) : xasprintf("[%s]:%u", host, port);
    char *p;

    for (p = s; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

/* |1|base64(salt)|base64(HMAC-SHA1(salt, host)): both exactly 20 bytes, as OpenSSH requires. */
static bool parse_hashed(const char *field, struct kh_entry *e)
{
    const char *salt = field + strlen(KH_HASH_MAGIC), *sep;
    unsigned char *s = NULL, *h = NULL;
    size_t slen = 0, hlen = 0;
    bool ok;

    if (strncmp(field, KH_HASH_MAGIC, strlen(KH_HASH_MAGIC)) != 0)
        return false;
    if ((sep = strchr(salt, '|')) == NULL)
        return false;
    s = b64_decode(salt, (size_t)(sep - salt), &slen);
    h = b64_decode(sep + 1, strlen(sep + 1), &hlen);
    ok = s != NULL && h != NULL && slen == KH_SHA1_LEN && hlen == KH_SHA1_LEN;
    if (ok) {
        memcpy(e->salt, s, KH_SHA1_LEN);
        memcpy(e->hash, h, KH_SHA1_LEN);
        e->hashed = true;
    }
    free(s);
    free(h);
    return ok;
}

/* The next field separated by spaces or tabs; NUL-terminates it in place. */
static char *next_field(char **cp)
{
    char *s = *cp, *start;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return NULL;
    start = s;
    while (*s != '\0' && *s != ' ' && *s != '\t')
        s++;
    if (*s != '\0')
        *s++ = '\0';
    *cp = s;
    return start;
}

static void entry_done(struct kh_entry *e)
{
    free(e->patterns);
    free(e->type);
    free(e->blob);
}

/* One line, without its newline, modified in place. On PARSE_ENTRY, *e owns new memory. */
static enum kh_parse parse_line(char *line, size_t len, unsigned lineno, struct kh_entry *e)
{
    char typebuf[KH_TYPE_MAX + 1];
    char *cp = line, *hosts, *type, *key;

    memset(e, 0, sizeof *e);
    e->line = lineno;
    if (strlen(line) != len) /* a NUL byte inside the line */
        return PARSE_BAD;
    /* Windows line endings and trailing blanks: OpenSSH's base64 reader skips them too. */
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    while (*cp == ' ' || *cp == '\t')
        cp++;
    if (*cp == '\0' || *cp == '#')
        return PARSE_SKIP;
    if (*cp == '@') {
        char *marker = next_field(&cp);

        if (strcmp(marker, "@cert-authority") == 0)
            return PARSE_SKIP; /* certificates are not supported: such a line vouches for nothing */
        if (strcmp(marker, "@revoked") != 0)
            return PARSE_BAD;
        e->marker = MARK_REVOKED;
    }
    hosts = next_field(&cp);
    type = next_field(&cp);
    key = next_field(&cp);
    if (hosts == NULL || type == NULL || key == NULL || !type_name_ok(type, strlen(type)))
        return PARSE_BAD;
    if (*hosts == '|') {
        if (!parse_hashed(hosts, e))
            return PARSE_BAD;
    }
    e->blob = b64_decode(key, strlen(key), &e->bloblen);
    /* The name in front must be the one inside the key, as sshkey_read insists. */
    if (e->blob == NULL || !blob_type(e->blob, e->bloblen, typebuf) || strcmp(typebuf, type) != 0) {
        free(e->blob);
        e->blob = NULL;
        return PARSE_BAD;
    }
    if (!e->hashed)
        e->patterns = xstrdup(hosts);
    e->type = xstrdup(type);
    return PARSE_ENTRY;
}

static void kh_add(struct knownhosts *kh, const struct kh_entry *e)
{
    if (kh->n == kh->cap) {
        kh->cap = kh->cap != 0 ? kh->cap * 2 : 16;
        kh->entries = xreallocarray(kh->entries, kh->cap, sizeof *kh->entries);
    }
    kh->entries[kh->n++] = *e;
}

int knownhosts_load(const char *path, struct knownhosts **out, struct err *err)
{
    struct knownhosts *kh = xcalloc(1, sizeof *kh);
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0, total = 0;
    unsigned lineno = 0;
    struct stat st;
    ssize_t n;

    *out = NULL;
    if (f == NULL) {
        if (errno == ENOENT) {
            *out = kh;
            return 0;
        }
        err_set(err, "cannot open known_hosts file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(f), &st) != 0) {
        err_set(err, "cannot read known_hosts file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        err_set(err, "known_hosts file %s is a directory; give a file", path);
        goto fail;
    }
    /* Checked up front for files, and counted while reading for a FIFO or /dev/stdin. */
    if (S_ISREG(st.st_mode) && st.st_size > (off_t)KH_FILE_MAX)
        total = (size_t)KH_FILE_MAX + 1;
    while (total <= KH_FILE_MAX) {
        struct kh_entry e;

        errno = 0;
        if ((n = getline(&line, &cap, f)) < 0)
            break;
        total += (size_t)n;
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (parse_line(line, (size_t)n, lineno, &e) == PARSE_ENTRY)
            kh_add(kh, &e);
    }
    if (total > KH_FILE_MAX) {
        err_set(err,
                "known_hosts file %s is larger than %u MiB; remove stale entries "
                "(ssh-keygen -R HOST -f %s)",
                path, KH_FILE_MAX >> 20, path);
        goto fail;
    }
    if (ferror(f)) {
        err_set(err, "cannot read known_hosts file %s: %s", path, strerror(errno));
        goto fail;
    }
    free(line);
    fclose(f);
    *out = kh;
    return 0;
fail:
    free(line);
    if (f != NULL)
        fclose(f);
    knownhosts_free(kh);
    return -1;
}

void knownhosts_free(struct knownhosts *kh)
{
    size_t i;

    if (kh == NULL)
        return;
    for (i = 0; i < kh->n; i++)
        entry_done(&kh->entries[i]);
    free(kh->entries);
    free(kh);
}

static bool same_blob(const struct kh_entry *e, const unsigned char *key, size_t keylen)
{
    return e->bloblen == keylen && memcmp(e->blob, key, keylen) == 0;
}

/* Is key named by a @revoked line that applies to host (already a lookup name)? */
static bool is_revoked(const struct knownhosts *kh, const char *name, const unsigned char *key,
                       size_t keylen)
{
    size_t i;

    for (i = 0; i < kh->n; i++) {
        const struct kh_entry *e = &kh->entries[i];

        if (e->marker == MARK_REVOKED && same_blob(e, key, keylen) && entry_matches(e, name))
            return true;
    }
    return false;
}

enum kh_verdict knownhosts_check(const struct knownhosts *kh, const char *host, unsigned port,
                                 const char *type, const unsigned char *key, size_t keylen,
                                 unsigned *line)
{
    char t[KH_TYPE_MAX + 1], *name = lookup_name(host, port);
    enum kh_verdict v = KH_UNKNOWN;
    unsigned changed = 0;
    size_t i;

    effective_type(type, key, keylen, t);
    if (line != NULL)
        *line = 0;
    if (is_revoked(kh, name, key, keylen)) {
        free(name);
        return KH_REVOKED;
    }
    for (i = 0; i < kh->n && v != KH_MATCH; i++) {
        const struct kh_entry *e = &kh->entries[i];

        if (e->marker != MARK_NONE || !entry_matches(e, name))
            continue;
        if (same_blob(e, key, keylen))
            v = KH_MATCH;
        else if (changed == 0 && same_key_type(e->type, t))
            changed = e->line; /* the first: the line an operator looks at */
    }
    free(name);
    if (v == KH_MATCH)
        return v;
    if (changed != 0) {
        if (line != NULL)
            *line = changed;
        return KH_CHANGED;
    }
    return KH_UNKNOWN;
}

/* Host key types in libssh2's names, most preferred first; an RSA key serves three. */
static const struct {
    const char *type;
    const char *methods[3];
} type_prefs[] = {
    {"ssh-ed25519", {"ssh-ed25519"}},
    {"ecdsa-sha2-nistp256", {"ecdsa-sha2-nistp256"}},
    {"ecdsa-sha2-nistp384", {"ecdsa-sha2-nistp384"}},
    {"ecdsa-sha2-nistp521", {"ecdsa-sha2-nistp521"}},
    {"ssh-rsa", {"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"}},
    {"ssh-dss", {"ssh-dss"}},
};

void knownhosts_types(const struct knownhosts *kh, const char *host, unsigned port, char *out,
                      size_t outlen)
{
    bool known[sizeof type_prefs / sizeof type_prefs[0]] = {false};
    char *name = lookup_name(host, port);
    size_t i, k, len = 0;

    for (i = 0; i < kh->n; i++) {
        const struct kh_entry *e = &kh->entries[i];

        if (e->marker != MARK_NONE || !entry_matches(e, name) ||
            is_revoked(kh, name, e->blob, e->bloblen))
            continue;
        for (k = 0; k < sizeof type_prefs / sizeof type_prefs[0]; k++)
            if (strcmp(e->type, type_prefs[k].type) == 0)
                known[k] = true;
    }
    free(name);
    if (outlen == 0)
        return;
    out[0] = '\0';
    /* Only whole names go in: a list cut in the middle of one would name a method that
     * does not exist. */
    for (k = 0; k < sizeof type_prefs / sizeof type_prefs[0]; k++) {
        const char *const *m;

        if (!known[k])
            continue;
        for (m = type_prefs[k].methods; m < type_prefs[k].methods + 3 && *m != NULL; m++) {
            size_t need = strlen(*m) + (len != 0);

            if (len + need >= outlen)
                return;
            snprintf(out + len, outlen - len, "%s%s", len != 0 ? "," : "", *m);
            len += need;
        }
    }
}

void knownhosts_fingerprint(const unsigned char *key, size_t keylen, char *out, size_t outlen)
{
    static const char prefix[] = "SHA256:";
    unsigned char md[EVP_MAX_MD_SIZE];
    char b64[EVP_MAX_MD_SIZE * 2];
    unsigned mdlen = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (EVP_Digest(key, keylen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        fatal("knownhosts: SHA-256 is not available from libcrypto");
    b64_encode(md, mdlen, b64, false);
    /* A fingerprint cut short would look like another key's: all or nothing. */
    if (sizeof prefix - 1 + strlen(b64) < outlen)
        snprintf(out, outlen, "%s%s", prefix, b64);
}

const char *knownhosts_host_problem(const char *host, size_t *at)
{
    const char *p;

    if (at != NULL)
        *at = 0;
    if (host == NULL || *host == '\0')
        return "is empty";
    /* Letters, digits and ".-_:%" (IPv6 addresses and their zones): nothing that means
     * something in a known_hosts file or to OpenSSH's matching. */
    for (p = host; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (isalnum(c) || strchr(".-_:%", c) != NULL)
            continue;
        if (at != NULL)
            *at = (size_t)(p - host);
        if (c == '*' || c == '?' || c == '!')
            return "is a pattern character in known_hosts (a target is one host)";
        if (c == ',')
            return "separates host names in known_hosts (a target is one host)";
        if (c == '[' || c == ']')
            return "is only for the [host]:port form";
        if (c == ' ' || c == '\t')
            return "is a blank";
        if (c < 0x20 || c == 0x7f)
            return "is a control character";
        if (c >= 0x80)
            return "is not ASCII (give the name in its xn-- form, or the address)";
        return "cannot be in a host name or address";
    }
    return NULL;
}

char *knownhosts_line(const char *host, unsigned port, const char *type, const unsigned char *key,
                      size_t keylen)
{
    char t[KH_TYPE_MAX + 1], *name, *b64, *line;

    if (knownhosts_host_problem(host, NULL) != NULL || key == NULL || keylen == 0)
        return NULL;
    effective_type(type, key, keylen, t);
    if (t[0] == '\0')
        return NULL;
    name = lookup_name(host, port);
    b64 = xmalloc((keylen + 2) / 3 * 4 + 1);
    b64_encode(key, keylen, b64, true);
    line = xasprintf("%s %s %s", name, t, b64);
    free(b64);
    free(name);
    return line;
}

/* mkdir the directory the file goes in (the last component only, like ssh does for ~/.ssh). */
static int make_parent(const char *path, struct err *err)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int rc = 0;

    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            rc = err_set(err, "cannot create directory %s for known_hosts: %s", dir,
                         strerror(errno));
    }
    free(dir);
    return rc;
}

int knownhosts_append(const char *path, const char *line, struct err *err)
{
    struct kh_entry e;
    struct buf b;
    struct stat st;
    char *copy, last = '\n';
    size_t off;
    int fd, rc = 0;
    enum kh_parse p;

    if (line == NULL)
        return err_set(err, "refusing to add nothing to %s (no known_hosts line was made)", path);
    /* What goes into the file is checked like what comes out of it: one line, well formed. */
    copy = xstrdup(line);
    p = strpbrk(line, "\r\n") != NULL ? PARSE_BAD : parse_line(copy, strlen(copy), 1, &e);
    free(copy);
    if (p == PARSE_ENTRY)
        entry_done(&e);
    else
        return err_set(err, "refusing to add a malformed line to %s: \"%.80s\"", path, line);
    if (make_parent(path, err) != 0)
        return -1;
    /* Read and write: the last byte says whether the file ends with a newline. */
    fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, "cannot open %s: %s", path, strerror(errno));
    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        rc = err_set(err, "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (fstat(fd, &st) != 0 || (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)) {
        rc = err_set(err, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    buf_init(&b);
    if (last != '\n')
        buf_addc(&b, '\n');
    buf_adds(&b, line);
    buf_addc(&b, '\n');
    for (off = 0; off < b.len;) {
        ssize_t n = write(fd, b.data + off, b.len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = err_set(err, "cannot write %s: %s", path, n < 0 ? strerror(errno) : "no progress");
            break;
        }
        off += (size_t)n;
    }
    buf_done(&b);
    if (close(fd) != 0 && rc == 0)
        rc = err_set(err, "cannot write %s: %s", path, strerror(errno));
    return rc;
}
