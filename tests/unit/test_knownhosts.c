/* known_hosts: real keys from ssh-keygen, files written the way OpenSSH and its users write
 * them, and ssh-keygen itself as the judge of fingerprints, hashing and matching. */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "deploy/knownhosts.h"
#include "tests/unit/testutil.h"

struct key {
    const char *file;
    char *type, *b64;
    unsigned char *blob;
    size_t len;
};

static char *dir;
static struct key ed1 = {.file = "ed1"}, ed2 = {.file = "ed2"}, rsa = {.file = "rsa"},
                  ec256 = {.file = "ec256"}, ec384 = {.file = "ec384"};

static void run(const char *cmd)
{
    if (system(cmd) != 0)
        fatal("test setup failed: %s", cmd);
}

static void gen_key(struct key *k, const char *args)
{
    char *cmd = xasprintf("ssh-keygen -q -N '' -C test %s -f %s/%s </dev/null >/dev/null", args,
                          dir, k->file);
    char *path = xasprintf("%s/%s.pub", dir, k->file);
    char *text, *sp;
    int n;

    run(cmd);
    if ((text = tu_read_file(path)) == NULL)
        fatal("no %s", path);
    sp = strchr(text, ' ');
    k->type = xstrndup(text, (size_t)(sp - text));
    k->b64 = xstrndup(sp + 1, strcspn(sp + 1, " \n"));
    k->blob = xmalloc(strlen(k->b64));
    n = EVP_DecodeBlock(k->blob, (const unsigned char *)k->b64, (int)strlen(k->b64));
    if (n < 0)
        fatal("bad base64 in %s", path);
    /* EVP_DecodeBlock counts the bytes the padding stands for. */
    k->len = (size_t)n - (k->b64[strlen(k->b64) - 1] == '=') - (k->b64[strlen(k->b64) - 2] == '=');
    free(text);
    free(path);
    free(cmd);
}

static void key_free(struct key *k)
{
    free(k->type);
    free(k->b64);
    free(k->blob);
}

static void setup(void)
{
    dir = tu_mkdtemp();
    gen_key(&ed1, "-t ed25519");
    gen_key(&ed2, "-t ed25519");
    gen_key(&rsa, "-t rsa -b 2048");
    gen_key(&ec256, "-t ecdsa -b 256");
    gen_key(&ec384, "-t ecdsa -b 384");
}

static void teardown(void)
{
    tu_rmdir_r(dir);
    free(dir);
    key_free(&ed1);
    key_free(&ed2);
    key_free(&rsa);
    key_free(&ec256);
    key_free(&ec384);
}

/* "hosts type base64" for a key. */
static char *kline(const char *hosts, const struct key *k)
{
    return xasprintf("%s %s %s", hosts, k->type, k->b64);
}

/* A file under the temp dir with these lines (each gets '\n'); the caller frees the path. */
static char *write_kh(const char *name, const char *const *lines, size_t n)
{
    char *path = xasprintf("%s/%s", dir, name);
    struct buf b;
    size_t i;

    buf_init(&b);
    for (i = 0; i < n; i++) {
        buf_adds(&b, lines[i]);
        buf_addc(&b, '\n');
    }
    tu_write_file(path, b.data);
    buf_done(&b);
    return path;
}

static struct knownhosts *load_ok(const char *path)
{
    struct knownhosts *kh = NULL;
    struct err err = {""};

    ck_assert_msg(knownhosts_load(path, &kh, &err) == 0, "load %s: %s", path, err.msg);
    ck_assert_ptr_nonnull(kh);
    return kh;
}

static enum kh_verdict check(const struct knownhosts *kh, const char *host, unsigned port,
                             const struct key *k)
{
    return knownhosts_check(kh, host, port, k->type, k->blob, k->len, NULL);
}

#define NLINES(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(plain_host)
{
    char *l1 = kline("web.example.com", &ed1);
    const char *lines[] = {l1};
    char *path = write_kh("plain", lines, 1);
    struct knownhosts *kh = load_ok(path);
    unsigned line = 99;

    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, ed1.type, ed1.blob, ed1.len, &line), KH_MATCH);
    ck_assert_uint_eq(line, 0);
    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, ed2.type, ed2.blob, ed2.len, &line),
        KH_CHANGED);
    ck_assert_uint_eq(line, 1);
    ck_assert_int_eq(check(kh, "other.example.com", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "web.example.co", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "web.example.comx", 22, &ed1), KH_UNKNOWN);
    /* OpenSSH looks up other ports as "[host]:port": a plain entry is for port 22 only. */
    ck_assert_int_eq(check(kh, "web.example.com", 2222, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "web.example.com", 2222, &ed2), KH_UNKNOWN);
    knownhosts_free(kh);
    free(path);
    free(l1);
}
END_TEST

START_TEST(bracketed_port)
{
    char *l1 = kline("[web.example.com]:2222", &ed1), *l2 = kline("[db.example.com]:22", &ed1);
    const char *lines[] = {l1, l2};
    char *path = write_kh("port", lines, 2);
    struct knownhosts *kh = load_ok(path);

    ck_assert_int_eq(check(kh, "web.example.com", 2222, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "web.example.com", 2222, &ed2), KH_CHANGED);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "web.example.com", 2223, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "web.example.com", 222, &ed1), KH_UNKNOWN);
    /* Port 22 is looked up as the plain name, never as "[host]:22". */
    ck_assert_int_eq(check(kh, "db.example.com", 22, &ed1), KH_UNKNOWN);
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
}
END_TEST

START_TEST(hashed_by_ssh_keygen)
{
    char *l1 = kline("web.example.com,10.0.0.5", &ed1), *l2 = kline("[db.example.com]:2222", &rsa);
    const char *lines[] = {l1, l2};
    char *path = write_kh("hashed", lines, 2), *cmd, *text;
    struct knownhosts *kh;

    cmd = xasprintf("ssh-keygen -H -f %s >/dev/null 2>&1", path);
    run(cmd);
    text = tu_read_file(path);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(strstr(text, "example"));
    ck_assert_ptr_nonnull(strstr(text, "|1|"));
    kh = load_ok(path);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "WEB.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "10.0.0.5", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed2), KH_CHANGED);
    ck_assert_int_eq(check(kh, "web.example.org", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "db.example.com", 2222, &rsa), KH_MATCH);
    ck_assert_int_eq(check(kh, "db.example.com", 22, &rsa), KH_UNKNOWN);
    knownhosts_free(kh);
    free(text);
    free(cmd);
    free(path);
    free(l1);
    free(l2);
}
END_TEST

/* |1|salt|HMAC-SHA1(salt, name), computed here the way the man page describes it. */
static char *hashed_salted(const char *name, unsigned char salt0, size_t saltlen)
{
    unsigned char salt[32], md[20];
    char bs[64], bh[64];
    unsigned mdlen = 0;
    size_t i;

    for (i = 0; i < saltlen; i++)
        salt[i] = (unsigned char)(salt0 + i * 7);
    HMAC(EVP_sha1(), salt, (int)saltlen, (const unsigned char *)name, strlen(name), md, &mdlen);
    ck_assert_uint_eq(mdlen, 20);
    EVP_EncodeBlock((unsigned char *)bs, salt, (int)saltlen);
    EVP_EncodeBlock((unsigned char *)bh, md, sizeof md);
    return xasprintf("|1|%s|%s", bs, bh);
}

static char *hashed_name(const char *name, unsigned char salt0)
{
    return hashed_salted(name, salt0, 20);
}

START_TEST(hashed_computed)
{
    char *h1 = hashed_name("[h.example.com]:2200", 1), *h2 = hashed_name("g.example.com", 200);
    char *l1 = kline(h1, &ec256), *l2 = kline(h2, &ed1), *cmd;
    char *near = xstrdup(h2), *l3, *path;
    const char *lines[3];
    struct knownhosts *kh;

    /* The hash of g.example.com with its last bytes changed: a near miss must not match. */
    near[strlen(near) - 3] = near[strlen(near) - 3] == 'A' ? 'B' : 'A';
    l3 = xasprintf("%s %s %s", near, ec384.type, ec384.b64);
    lines[0] = l1;
    lines[1] = l2;
    lines[2] = l3;
    path = write_kh("hashed2", lines, 3);
    kh = load_ok(path);

    ck_assert_int_eq(check(kh, "h.example.com", 2200, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "H.EXAMPLE.COM", 2200, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "h.example.com", 22, &ec256), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "h.example.com", 2201, &ec256), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "g.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "g.example.com", 22, &ed2), KH_CHANGED);
    ck_assert_int_eq(check(kh, "g.example.com", 22, &ec384), KH_UNKNOWN);
    /* ssh-keygen agrees that this is the hash of that name. */
    cmd = xasprintf("ssh-keygen -F '[h.example.com]:2200' -f %s >/dev/null 2>&1", path);
    ck_assert_int_eq(system(cmd), 0);
    knownhosts_free(kh);
    free(cmd);
    free(path);
    free(l1);
    free(l2);
    free(l3);
    free(near);
    free(h1);
    free(h2);
}
END_TEST

START_TEST(wildcards)
{
    char *l1 = kline("*.example.com", &ed1), *l2 = kline("db?.example.org", &ed1),
         *l3 = kline("[*.internal]:2222", &ed1), *l4 = kline("*", &rsa);
    const char *lines[] = {l1, l2, l3, l4};
    char *path = write_kh("wild", lines, 4);
    struct knownhosts *kh = load_ok(path);

    ck_assert_int_eq(check(kh, "a.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "a.b.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "example.com", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "a.example.com.evil", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "db1.example.org", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "db12.example.org", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "db.example.org", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "x.internal", 2222, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "x.internal", 22, &ed1), KH_UNKNOWN);
    /* "*" matches every name, the bracketed forms too. */
    ck_assert_int_eq(check(kh, "anything", 22, &rsa), KH_MATCH);
    ck_assert_int_eq(check(kh, "anything", 2022, &rsa), KH_MATCH);
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
    free(l3);
    free(l4);
}
END_TEST

START_TEST(negation_and_lists)
{
    char *l1 = kline("*.example.com,!bad.example.com", &ed1),
         *l2 = kline("!worse.example.com,*.example.com", &ed1),
         *l3 = kline("a.example.net,b.example.net,10.1.2.3,[10.1.2.4]:2200", &ec256),
         *l4 = kline("bad.example.com", &ed2);
    const char *lines[] = {l1, l2, l3, l4};
    char *path = write_kh("neg", lines, 4);
    struct knownhosts *kh = load_ok(path);

    ck_assert_int_eq(check(kh, "good.example.com", 22, &ed1), KH_MATCH);
    /* Line 1 excludes bad.example.com, but line 2 still names it. */
    ck_assert_int_eq(check(kh, "bad.example.com", 22, &ed1), KH_MATCH);
    /* Line 2 excludes worse.example.com, but line 1 still names it. */
    ck_assert_int_eq(check(kh, "worse.example.com", 22, &ed1), KH_MATCH);
    /* The negation drops the line for the host: only line 4 is for bad.example.com. */
    ck_assert_int_eq(check(kh, "bad.example.com", 22, &ed2), KH_MATCH);
    ck_assert_int_eq(check(kh, "good.example.com", 22, &ed2), KH_CHANGED);
    ck_assert_int_eq(check(kh, "a.example.net", 22, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "b.example.net", 22, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "10.1.2.3", 22, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "10.1.2.4", 2200, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "10.1.2.4", 22, &ec256), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "c.example.net", 22, &ec256), KH_UNKNOWN);
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
    free(l3);
    free(l4);
}
END_TEST

START_TEST(negation_excludes_its_line)
{
    char *l1 = kline("*.example.com,!bad.example.com", &ed1);
    const char *lines[] = {l1};
    char *path = write_kh("neg2", lines, 1);
    struct knownhosts *kh = load_ok(path);
    char types[128];

    ck_assert_int_eq(check(kh, "good.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "bad.example.com", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "BAD.example.com", 22, &ed2), KH_UNKNOWN);
    knownhosts_types(kh, "bad.example.com", 22, types, sizeof types);
    ck_assert_str_eq(types, "");
    knownhosts_free(kh);
    free(path);
    free(l1);
}
END_TEST

START_TEST(case_insensitive)
{
    char *l1 = kline("Web.Example.COM", &ed1), *l2 = kline("*.CORP.example.org", &rsa);
    const char *lines[] = {l1, l2};
    char *path = write_kh("case", lines, 2);
    struct knownhosts *kh = load_ok(path);

    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "wEB.eXAMPLE.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "Db.Corp.Example.Org", 22, &rsa), KH_MATCH);
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
}
END_TEST

START_TEST(revoked_wins)
{
    char *l1 = kline("web.example.com,db.example.com", &ed1), *l2 = kline("@revoked *", &ed1),
         *l3 = kline("web.example.com", &rsa), *l4 = kline("@revoked other.example.com", &rsa),
         *l5 = kline("[web.example.com]:2222", &ec256), *l6 = kline("@revoked\t*", &ec384);
    const char *lines[] = {l1, l2, l3, l4, l5, l6};
    char *path = write_kh("revoked", lines, 6);
    struct knownhosts *kh = load_ok(path);
    unsigned line = 99;
    char types[128];

    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, ed1.type, ed1.blob, ed1.len, &line),
        KH_REVOKED);
    ck_assert_uint_eq(line, 0);
    ck_assert_int_eq(check(kh, "db.example.com", 22, &ed1), KH_REVOKED);
    /* Revoked wherever "*" reaches, even where the key is not otherwise known. */
    ck_assert_int_eq(check(kh, "new.example.com", 22, &ed1), KH_REVOKED);
    ck_assert_int_eq(check(kh, "web.example.com", 2222, &ed1), KH_REVOKED);
    ck_assert_int_eq(check(kh, "web.example.com", 2222, &ec384), KH_REVOKED);
    /* A @revoked line applies to the hosts it names only. */
    ck_assert_int_eq(check(kh, "web.example.com", 22, &rsa), KH_MATCH);
    ck_assert_int_eq(check(kh, "other.example.com", 22, &rsa), KH_REVOKED);
    /* Another ed25519 key: not revoked, and not the one known: changed. */
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed2), KH_CHANGED);
    /* The revoked key is no reason to offer ed25519. */
    knownhosts_types(kh, "web.example.com", 22, types, sizeof types);
    ck_assert_str_eq(types, "rsa-sha2-512,rsa-sha2-256,ssh-rsa");
    knownhosts_types(kh, "db.example.com", 22, types, sizeof types);
    ck_assert_str_eq(types, "");
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
    free(l3);
    free(l4);
    free(l5);
    free(l6);
}
END_TEST

START_TEST(cert_authority_ignored)
{
    char *l1 = kline("@cert-authority *.example.com", &ed1);
    const char *lines[] = {l1};
    char *path = write_kh("ca", lines, 1);
    struct knownhosts *kh = load_ok(path);
    char types[128];

    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_UNKNOWN);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed2), KH_UNKNOWN);
    knownhosts_types(kh, "web.example.com", 22, types, sizeof types);
    ck_assert_str_eq(types, "");
    knownhosts_free(kh);
    free(path);
    free(l1);
}
END_TEST

START_TEST(changed_line_number)
{
    char *l3 = kline("other.example.com", &ed2), *l6 = kline("web.example.com", &ed1),
         *l7 = kline("*.example.com", &ed1);
    const char *lines[] = {"# my hosts", "", l3, "  \t", "web.example.com ssh-ed25519", l6, l7};
    char *path = write_kh("changed", lines, NLINES(lines));
    struct knownhosts *kh = load_ok(path);
    unsigned line = 0;

    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, ed2.type, ed2.blob, ed2.len, &line),
        KH_CHANGED);
    ck_assert_uint_eq(line, 6);
    ck_assert_int_eq(knownhosts_check(kh, "x.example.com", 22, ed2.type, ed2.blob, ed2.len, &line),
                     KH_CHANGED);
    ck_assert_uint_eq(line, 7);
    /* A NULL line pointer is fine. */
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed2), KH_CHANGED);
    ck_assert_int_eq(check(kh, "other.example.com", 22, &ed2), KH_MATCH);
    knownhosts_free(kh);
    free(path);
    free(l3);
    free(l6);
    free(l7);
}
END_TEST

START_TEST(other_type_known)
{
    char *l1 = kline("web.example.com", &ed1), *l2 = kline("db.example.com", &ec256);
    const char *lines[] = {l1, l2};
    char *path = write_kh("othertype", lines, 2);
    struct knownhosts *kh = load_ok(path);
    unsigned line = 99;
    char types[128];

    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, rsa.type, rsa.blob, rsa.len, &line),
        KH_UNKNOWN);
    ck_assert_uint_eq(line, 0);
    knownhosts_types(kh, "web.example.com", 22, types, sizeof types);
    ck_assert_str_eq(types, "ssh-ed25519");
    /* As in OpenSSH, ECDSA on another curve counts as the same type: changed, not new. */
    ck_assert_int_eq(check(kh, "db.example.com", 22, &ec384), KH_CHANGED);
    ck_assert_int_eq(check(kh, "db.example.com", 22, &ed1), KH_UNKNOWN);
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
}
END_TEST

START_TEST(rsa_signature_names)
{
    char *l1 = kline("web.example.com", &rsa), *line;
    const char *lines[] = {l1};
    char *path = write_kh("rsa", lines, 1);
    struct knownhosts *kh = load_ok(path);

    /* libssh2 may report the negotiated algorithm; the blob still says ssh-rsa. */
    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, "rsa-sha2-512", rsa.blob, rsa.len, NULL),
        KH_MATCH);
    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, "rsa-sha2-256", rsa.blob, rsa.len, NULL),
        KH_MATCH);
    /* A mismatching name does not turn a known key into an unknown one. */
    ck_assert_int_eq(
        knownhosts_check(kh, "web.example.com", 22, "ssh-ed25519", rsa.blob, rsa.len, NULL),
        KH_MATCH);
    line = knownhosts_line("web.example.com", 22, "rsa-sha2-512", rsa.blob, rsa.len);
    ck_assert_str_eq(line, l1);
    knownhosts_free(kh);
    free(line);
    free(path);
    free(l1);
}
END_TEST

START_TEST(types_order_and_bounds)
{
    static const char full[] = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                               "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
    char *l1 = kline("web.example.com", &rsa), *l2 = kline("web.example.com", &ec384),
         *l3 = kline("*.example.com", &ec256), *l4 = kline("web.example.com", &ed1),
         *l5 = kline("web.example.com", &ed2), *l6 = kline("db.example.com", &ed1);
    const char *lines[] = {l1, l2, l3, l4, l5, l6};
    char *path = write_kh("types", lines, NLINES(lines));
    struct knownhosts *kh = load_ok(path);
    char out[sizeof full + 16];
    size_t outlen, i;

    knownhosts_types(kh, "web.example.com", 22, out, sizeof out);
    ck_assert_str_eq(out, full);
    knownhosts_types(kh, "db.example.com", 22, out, sizeof out);
    ck_assert_str_eq(out, "ssh-ed25519,ecdsa-sha2-nistp256");
    knownhosts_types(kh, "nowhere.example.org", 22, out, sizeof out);
    ck_assert_str_eq(out, "");
    knownhosts_types(kh, "web.example.com", 2222, out, sizeof out);
    ck_assert_str_eq(out, "");
    /* Every size: a prefix of the full list that ends where a name ends, and nothing written
     * past outlen. */
    for (outlen = 0; outlen <= sizeof full; outlen++) {
        size_t len;

        memset(out, 'X', sizeof out);
        knownhosts_types(kh, "web.example.com", 22, out, outlen);
        for (i = outlen; i < sizeof out; i++)
            ck_assert_msg(out[i] == 'X', "outlen %zu: byte %zu written", outlen, i);
        if (outlen == 0)
            continue;
        len = strlen(out);
        ck_assert_uint_lt(len, outlen);
        ck_assert_int_eq(strncmp(out, full, len), 0);
        ck_assert_msg(len == 0 || full[len] == ',' || full[len] == '\0',
                      "outlen %zu: cut inside a name: %s", outlen, out);
        /* It stops only when the next name (and its comma) would not fit. */
        if (full[len] != '\0') {
            size_t next = len == 0 ? strcspn(full, ",") : 1 + strcspn(full + len + 1, ",");

            ck_assert_uint_ge(len + next, outlen);
        }
    }
    knownhosts_types(kh, "web.example.com", 22, out, strlen("ssh-ed25519") + 1);
    ck_assert_str_eq(out, "ssh-ed25519");
    knownhosts_types(kh, "web.example.com", 22, out, strlen("ssh-ed25519"));
    ck_assert_str_eq(out, "");
    knownhosts_types(kh, "web.example.com", 22, out, sizeof full - 1);
    ck_assert_str_eq(out, "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                          "rsa-sha2-512,rsa-sha2-256");
    knownhosts_free(kh);
    free(path);
    free(l1);
    free(l2);
    free(l3);
    free(l4);
    free(l5);
    free(l6);
}
END_TEST

START_TEST(malformed_skipped)
{
    char *bad_pad = xstrdup(ec256.b64), *eq = strchr(bad_pad, '='), *cut = xstrdup(ed1.b64);
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *l[16], *path, *h16 = hashed_salted("bad8.example.com", 3, 16);
    struct knownhosts *kh;
    unsigned line = 0;
    FILE *f;
    size_t i, n = 0;

    /* Same bytes under a lax decoder, but the unused bits of the last character are set. */
    ck_assert_ptr_nonnull(eq);
    eq[-1] = alphabet[(strchr(alphabet, eq[-1]) - alphabet) | 1];
    cut[strlen(cut) - 1] = '\0';
    l[n++] = xstrdup("bad1.example.com");
    l[n++] = xstrdup("bad1.example.com ssh-ed25519");
    l[n++] = xasprintf("bad2.example.com ssh-ed25519 !!!!%s", ed1.b64 + 4);
    l[n++] = xasprintf("bad3.example.com ssh-rsa %s", ed1.b64);
    l[n++] = xasprintf("@bogus bad4.example.com %s %s", ed1.type, ed1.b64);
    l[n++] = xasprintf("@revokedbad5.example.com %s %s", ed1.type, ed1.b64);
    l[n++] = xasprintf("bad6.example.com %s %s", ec256.type, bad_pad);
    l[n++] = xasprintf("bad7.example.com %s %s", ed1.type, cut);
    /* A right HMAC, but with a 16-byte salt: OpenSSH wants exactly 20. */
    l[n++] = xasprintf("%s %s %s", h16, ed1.type, ed1.b64);
    l[n++] = xasprintf("|2|%s %s %s", strchr(h16 + 3, '|') + 1, ed1.type, ed1.b64);
    l[n++] = xasprintf("bad9.example.com %s %s=", ed1.type, ed1.b64);
    l[n++] = kline("good.example.com", &ed1);
    path = write_kh("malformed", (const char *const *)l, n);
    /* And a line with a NUL byte in it, then the last good one. */
    f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "bad10.example.com %s %s%cjunk\n", ed1.type, ed1.b64, '\0');
    fprintf(f, "good2.example.com %s %s\n", ed1.type, ed1.b64);
    fclose(f);
    kh = load_ok(path);
    for (i = 1; i <= 10; i++) {
        char host[32];

        snprintf(host, sizeof host, "bad%zu.example.com", i);
        ck_assert_msg(check(kh, host, 22, &ed1) == KH_UNKNOWN, "%s is known", host);
        ck_assert_msg(check(kh, host, 22, &ec256) == KH_UNKNOWN, "%s is known", host);
    }
    ck_assert_int_eq(check(kh, "good.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "good2.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(
        knownhosts_check(kh, "good2.example.com", 22, ed2.type, ed2.blob, ed2.len, &line),
        KH_CHANGED);
    ck_assert_uint_eq(line, n + 2);
    /* OpenSSH refuses them too (bad10 aside: its reader stops at the NUL; we skip the line). */
    for (i = 1; i <= 9; i++) {
        char *cmd = xasprintf("ssh-keygen -l -F bad%zu.example.com -f %s >/dev/null 2>&1", i, path);

        ck_assert_msg(system(cmd) != 0, "ssh-keygen finds bad%zu.example.com", i);
        free(cmd);
    }
    {
        char *cmd = xasprintf("ssh-keygen -l -F good.example.com -f %s >/dev/null 2>&1", path);

        ck_assert_int_eq(system(cmd), 0); /* and it does read the file */
        free(cmd);
    }
    knownhosts_free(kh);
    for (i = 0; i < n; i++)
        free(l[i]);
    free(path);
    free(bad_pad);
    free(cut);
    free(h16);
}
END_TEST

START_TEST(crlf_and_long_lines)
{
    char *path = xasprintf("%s/crlf", dir), *comment = xmalloc(200001), *text;
    struct knownhosts *kh;

    memset(comment, 'c', 200000);
    comment[200000] = '\0';
    text = xasprintf("# windows\r\n"
                     "web.example.com %s %s a comment\r\n"
                     "[db.example.com]:2222 %s %s\r\n"
                     "   long.example.com %s %s %s\n"
                     "after.example.com %s %s\r\n",
                     ed1.type, ed1.b64, rsa.type, rsa.b64, ec256.type, ec256.b64, comment, ed2.type,
                     ed2.b64);
    tu_write_file(path, text);
    kh = load_ok(path);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "db.example.com", 2222, &rsa), KH_MATCH);
    ck_assert_int_eq(check(kh, "long.example.com", 22, &ec256), KH_MATCH);
    ck_assert_int_eq(check(kh, "after.example.com", 22, &ed2), KH_MATCH);
    knownhosts_free(kh);
    free(text);
    free(comment);
    free(path);
}
END_TEST

START_TEST(missing_file_and_errors)
{
    char *missing = xasprintf("%s/nope/known_hosts", dir), *big = xasprintf("%s/big", dir);
    struct knownhosts *kh = NULL;
    struct err err = {""};
    char types[64] = "junk";
    int fd;

    kh = load_ok(missing);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_UNKNOWN);
    knownhosts_types(kh, "web.example.com", 22, types, sizeof types);
    ck_assert_str_eq(types, "");
    knownhosts_free(kh);
    kh = NULL;

    ck_assert_int_eq(knownhosts_load(dir, &kh, &err), -1);
    ck_assert_ptr_null(kh);
    ck_assert_ptr_nonnull(strstr(err.msg, dir));

    /* A sparse file just over the bound: refused up front, without reading 64 MiB. */
    fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)(64 << 20) + 1), 0);
    close(fd);
    err.msg[0] = '\0';
    ck_assert_int_eq(knownhosts_load(big, &kh, &err), -1);
    ck_assert_ptr_null(kh);
    ck_assert_ptr_nonnull(strstr(err.msg, big));
    ck_assert_ptr_nonnull(strstr(err.msg, "64 MiB"));
    unlink(big);

    /* /dev/null, a common "known_hosts nowhere", is simply empty. */
    kh = load_ok("/dev/null");
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_UNKNOWN);
    knownhosts_free(kh);
    free(missing);
    free(big);
}
END_TEST

/* The second field of `ssh-keygen -lf file`. */
static char *keygen_fingerprint(const char *file)
{
    char *cmd = xasprintf("ssh-keygen -lf %s/%s.pub", dir, file), line[512], *fp;
    FILE *p = popen(cmd, "r");

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, p));
    ck_assert_int_eq(pclose(p), 0);
    fp = strchr(line, ' ');
    ck_assert_ptr_nonnull(fp);
    fp = xstrndup(fp + 1, strcspn(fp + 1, " \n"));
    free(cmd);
    return fp;
}

START_TEST(fingerprint_as_ssh_keygen)
{
    const struct key *keys[] = {&ed1, &ed2, &rsa, &ec256, &ec384};
    char out[64], *want;
    size_t i;

    for (i = 0; i < NLINES(keys); i++) {
        want = keygen_fingerprint(keys[i]->file);
        ck_assert_int_eq(strncmp(want, "SHA256:", 7), 0);
        knownhosts_fingerprint(keys[i]->blob, keys[i]->len, out, sizeof out);
        ck_assert_str_eq(out, want);
        /* Exactly enough room, then one byte less: all or nothing. */
        knownhosts_fingerprint(keys[i]->blob, keys[i]->len, out, strlen(want) + 1);
        ck_assert_str_eq(out, want);
        knownhosts_fingerprint(keys[i]->blob, keys[i]->len, out, strlen(want));
        ck_assert_str_eq(out, "");
        free(want);
    }
    knownhosts_fingerprint(ed1.blob, ed1.len, out, 0);
}
END_TEST

START_TEST(line_format)
{
    char *l, *want;

    l = knownhosts_line("Web.Example.com", 22, ed1.type, ed1.blob, ed1.len);
    want = xasprintf("web.example.com ssh-ed25519 %s", ed1.b64);
    ck_assert_str_eq(l, want);
    free(l);
    free(want);
    l = knownhosts_line("web.example.com", 2222, ec256.type, ec256.blob, ec256.len);
    want = xasprintf("[web.example.com]:2222 %s %s", ec256.type, ec256.b64);
    ck_assert_str_eq(l, want);
    free(l);
    free(want);
    l = knownhosts_line("fe80::1%eth0", 2222, rsa.type, rsa.blob, rsa.len);
    want = xasprintf("[fe80::1%%eth0]:2222 ssh-rsa %s", rsa.b64);
    ck_assert_str_eq(l, want);
    free(l);
    free(want);
    /* Nothing that would mean something else in the file. */
    ck_assert_ptr_null(knownhosts_line("", 22, ed1.type, ed1.blob, ed1.len));
    ck_assert_ptr_null(knownhosts_line("a b", 22, ed1.type, ed1.blob, ed1.len));
    ck_assert_ptr_null(knownhosts_line("a\n* ssh-ed25519 x", 22, ed1.type, ed1.blob, ed1.len));
    ck_assert_ptr_null(knownhosts_line("*.example.com", 22, ed1.type, ed1.blob, ed1.len));
    ck_assert_ptr_null(knownhosts_line("a,b", 22, ed1.type, ed1.blob, ed1.len));
    ck_assert_ptr_null(knownhosts_line("!a", 22, ed1.type, ed1.blob, ed1.len));
    ck_assert_ptr_null(knownhosts_line("a", 22, ed1.type, ed1.blob, 0));
}
END_TEST

/* What n3.json refuses in a host: the same rule as the line's, saying where and why. */
START_TEST(host_problems)
{
    static const struct {
        const char *host;
        size_t at;
        const char *why;
    } bad[] = {
        {"*", 0, "pattern"},         {"web?", 3, "pattern"},    {"!web", 0, "pattern"},
        {"a,b", 1, "separates"},     {"[::1]:22", 0, "[host]"}, {"a b", 1, "blank"},
        {"a\tb", 1, "blank"},        {"a\nb", 1, "control"},    {"a\033b", 1, "control"},
        {"caf\xc3\xa9", 3, "ASCII"}, {"a/b", 1, "cannot"},      {"a|b", 1, "cannot"},
        {"a#b", 1, "cannot"},        {"a@b", 1, "cannot"},
    };
    size_t i, at = 99;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = knownhosts_host_problem(bad[i].host, &at);

        ck_assert_msg(why != NULL && strstr(why, bad[i].why) != NULL && at == bad[i].at,
                      "%s: got %s at %zu", bad[i].host, why != NULL ? why : "(ok)", at);
    }
    ck_assert_ptr_nonnull(strstr(knownhosts_host_problem("", &at), "empty"));
    ck_assert_ptr_null(knownhosts_host_problem("web-1.example.com", &at));
    ck_assert_ptr_null(knownhosts_host_problem("fe80::1%eth0", NULL));
    ck_assert_ptr_null(knownhosts_host_problem("10.0.0.1", NULL));
}
END_TEST

START_TEST(append_creates_and_appends)
{
    char *sub = xasprintf("%s/sub", dir), *path = xasprintf("%s/known_hosts", sub), *text, *want,
         *cmd;
    char *l1 = knownhosts_line("web.example.com", 22, ed1.type, ed1.blob, ed1.len);
    char *l2 = knownhosts_line("db.example.com", 2222, rsa.type, rsa.blob, rsa.len);
    struct err err = {""};
    struct knownhosts *kh;
    struct stat st;
    mode_t old = umask(022);

    ck_assert_msg(knownhosts_append(path, l1, &err) == 0, "%s", err.msg);
    ck_assert_msg(knownhosts_append(path, l2, &err) == 0, "%s", err.msg);
    umask(old);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    text = tu_read_file(path);
    want = xasprintf("%s\n%s\n", l1, l2);
    ck_assert_str_eq(text, want);
    kh = load_ok(path);
    ck_assert_int_eq(check(kh, "web.example.com", 22, &ed1), KH_MATCH);
    ck_assert_int_eq(check(kh, "db.example.com", 2222, &rsa), KH_MATCH);
    knownhosts_free(kh);
    /* OpenSSH reads what was written. */
    cmd = xasprintf("ssh-keygen -F '[db.example.com]:2222' -f %s >/dev/null 2>&1", path);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    free(want);
    free(text);
    free(l1);
    free(l2);
    free(path);
    free(sub);
}
END_TEST

START_TEST(append_without_trailing_newline)
{
    char *path = xasprintf("%s/nonl", dir), *empty = xasprintf("%s/empty", dir), *text, *want;
    char *l0 = kline("old.example.com", &ed2), *l1 = kline("new.example.com", &ed1);
    struct err err = {""};
    struct knownhosts *kh;

    tu_write_file(path, l0);
    ck_assert_msg(knownhosts_append(path, l1, &err) == 0, "%s", err.msg);
    text = tu_read_file(path);
    want = xasprintf("%s\n%s\n", l0, l1);
    ck_assert_str_eq(text, want);
    kh = load_ok(path);
    ck_assert_int_eq(check(kh, "old.example.com", 22, &ed2), KH_MATCH);
    ck_assert_int_eq(check(kh, "new.example.com", 22, &ed1), KH_MATCH);
    knownhosts_free(kh);
    free(text);
    free(want);
    /* An empty file gets no blank line in front. */
    tu_write_file(empty, "");
    ck_assert_msg(knownhosts_append(empty, l1, &err) == 0, "%s", err.msg);
    text = tu_read_file(empty);
    want = xasprintf("%s\n", l1);
    ck_assert_str_eq(text, want);
    free(text);
    free(want);
    free(l0);
    free(l1);
    free(path);
    free(empty);
}
END_TEST

START_TEST(append_refuses_bad_lines)
{
    char *path = xasprintf("%s/refused/known_hosts", dir), *good = kline("a.example.com", &ed1);
    char *two = xasprintf("%s\n%s", good, good);
    struct err err = {""};
    struct stat st;

    ck_assert_int_eq(knownhosts_append(path, "garbage", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_eq(knownhosts_append(path, two, &err), -1);
    ck_assert_int_eq(knownhosts_append(path, "# a comment", &err), -1);
    ck_assert_int_eq(knownhosts_append(path, "", &err), -1);
    /* No line at all (knownhosts_line refused the host): an error, not a crash. */
    ck_assert_int_eq(knownhosts_append(path, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_ne(stat(path, &st), 0);
    free(two);
    free(good);
    free(path);
}
END_TEST

START_TEST(append_error_names_path)
{
    char *file = xasprintf("%s/plainfile", dir), *path = xasprintf("%s/x/known_hosts", file);
    char *good = kline("a.example.com", &ed1);
    struct err err = {""};

    tu_write_file(file, "not a directory\n");
    ck_assert_int_eq(knownhosts_append(path, good, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, file));
    ck_assert_ptr_nonnull(strstr(err.msg, "ot a directory"));
    free(good);
    free(path);
    free(file);
}
END_TEST

/* Several processes adding keys at once: every line comes out whole. */
START_TEST(append_concurrent)
{
    enum { WRITERS = 4, EACH = 50 };
    char *path = xasprintf("%s/concurrent", dir), *text, *p;
    struct knownhosts *kh;
    pid_t pids[WRITERS];
    int i, j, status, lines = 0;

    for (i = 0; i < WRITERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            int rc = 0;

            for (j = 0; j < EACH; j++) {
                char host[64], *l;
                struct err err;

                snprintf(host, sizeof host, "w%d-%d.example.com", i, j);
                l = knownhosts_line(host, 22, rsa.type, rsa.blob, rsa.len);
                rc |= knownhosts_append(path, l, &err);
                free(l);
            }
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    text = tu_read_file(path);
    for (p = text; *p != '\0'; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, WRITERS * EACH);
    kh = load_ok(path);
    for (i = 0; i < WRITERS; i++)
        for (j = 0; j < EACH; j++) {
            char host[64];

            snprintf(host, sizeof host, "w%d-%d.example.com", i, j);
            ck_assert_msg(check(kh, host, 22, &rsa) == KH_MATCH, "%s lost", host);
        }
    knownhosts_free(kh);
    free(text);
    free(path);
}
END_TEST

/* Our idea of which lines name a host against ssh-keygen -F, which uses OpenSSH's matcher.
 * (No "[host]:22" queries: ssh looks port 22 up as the plain name.) */
START_TEST(matching_agrees_with_ssh_keygen)
{
    char *h = hashed_name("hashed.example.com", 9);
    char *l[] = {
        kline("*.example.com,!*.private.example.com,!x?.example.com", &ed1),
        kline("[*.example.net]:2222,db[12].example.net", &ed1),
        kline("10.0.0.*,!10.0.0.13", &ed1),
        kline("Mixed.Case.ORG", &ed1),
        kline("[a?c.example.org]:*", &ed1),
        kline(h, &ed1),
    };
    const char *queries[] = {
        "web.example.com",
        "a.private.example.com",
        "xy.example.com",
        "xyz.example.com",
        "example.com",
        "[web.example.com]:2222",
        "[db.example.net]:2222",
        "db.example.net",
        "db[12].example.net",
        "db1.example.net",
        "10.0.0.1",
        "10.0.0.13",
        "10.0.0.130",
        "mixed.case.org",
        "[abc.example.org]:2022",
        "abc.example.org",
        "hashed.example.com",
        "[hashed.example.com]:2222",
    };
    char *path = write_kh("agree", (const char *const *)l, NLINES(l));
    struct knownhosts *kh = load_ok(path);
    size_t i;

    for (i = 0; i < NLINES(queries); i++) {
        char *cmd = xasprintf("ssh-keygen -F '%s' -f %s >/dev/null 2>&1", queries[i], path);
        bool theirs = system(cmd) == 0, ours;
        char types[128], host[128];
        unsigned port = 22;

        /* Turn "[host]:port" back into host and port. */
        if (queries[i][0] == '[' && strstr(queries[i], "]:") != NULL) {
            const char *end = strstr(queries[i], "]:");

            snprintf(host, sizeof host, "%.*s", (int)(end - queries[i] - 1), queries[i] + 1);
            port = (unsigned)atoi(end + 2);
        } else {
            snprintf(host, sizeof host, "%s", queries[i]);
        }
        knownhosts_types(kh, host, port, types, sizeof types);
        ours = types[0] != '\0';
        ck_assert_msg(ours == theirs, "%s: ssh-keygen says %s, we say %s", queries[i],
                      theirs ? "known" : "unknown", ours ? "known" : "unknown");
        free(cmd);
    }
    knownhosts_free(kh);
    for (i = 0; i < NLINES(l); i++)
        free(l[i]);
    free(path);
    free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("knownhosts");
    TCase *t = tcase_create("knownhosts");

    tcase_add_unchecked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, plain_host);
    tcase_add_test(t, bracketed_port);
    tcase_add_test(t, hashed_by_ssh_keygen);
    tcase_add_test(t, hashed_computed);
    tcase_add_test(t, wildcards);
    tcase_add_test(t, negation_and_lists);
    tcase_add_test(t, negation_excludes_its_line);
    tcase_add_test(t, case_insensitive);
    tcase_add_test(t, revoked_wins);
    tcase_add_test(t, cert_authority_ignored);
    tcase_add_test(t, changed_line_number);
    tcase_add_test(t, other_type_known);
    tcase_add_test(t, rsa_signature_names);
    tcase_add_test(t, types_order_and_bounds);
    tcase_add_test(t, malformed_skipped);
    tcase_add_test(t, crlf_and_long_lines);
    tcase_add_test(t, missing_file_and_errors);
    tcase_add_test(t, fingerprint_as_ssh_keygen);
    tcase_add_test(t, line_format);
    tcase_add_test(t, host_problems);
    tcase_add_test(t, append_creates_and_appends);
    tcase_add_test(t, append_without_trailing_newline);
    tcase_add_test(t, append_refuses_bad_lines);
    tcase_add_test(t, append_error_names_path);
    tcase_add_test(t, append_concurrent);
    tcase_add_test(t, matching_agrees_with_ssh_keygen);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
