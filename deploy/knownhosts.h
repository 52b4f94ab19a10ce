/*
 * known_hosts, strictly, in OpenSSH's format: plain and hashed (|1|salt|hash) host names,
 * [host]:port for ports other than 22, comma-separated patterns with * and ?, negation
 * (!pattern), the @revoked marker (a revoked key is refused) and @cert-authority lines
 * (not supported: ignored). There is no way to turn checking off.
 */
#ifndef N3_KNOWNHOSTS_H
#define N3_KNOWNHOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

struct knownhosts;

enum kh_verdict {
    KH_MATCH,   /* the key is known for this host */
    KH_UNKNOWN, /* no key of this type is known for this host */
    KH_CHANGED, /* a different key of this type is known: possibly an attack (as in OpenSSH,
                 * ECDSA keys of any curve count as one type here) */
    KH_REVOKED, /* the key is marked @revoked */
};

/* Read a known_hosts file. A missing file is an empty list (every host unknown); a line that
 * cannot be parsed is skipped (OpenSSH does the same), not an error. A file over 64 MiB, a
 * directory or one that cannot be read is an error naming the file. */
int knownhosts_load(const char *path, struct knownhosts **out, struct err *err);
void knownhosts_free(struct knownhosts *kh);

/*
 * Check the key a host presented. key is the raw public key blob (as SSH sends it, the
 * base64-decoded form of a known_hosts key), type its name ("ssh-ed25519", ...).
 * The type written inside the blob is the one used (so "rsa-sha2-512" from a negotiation is
 * checked as the blob's "ssh-rsa"); type is only a fallback for a blob without a readable one.
 * host is a name or address as configured; port 22 is looked up as "host", others as
 * "[host]:port"; names compare case-insensitively. KH_REVOKED wins over everything. On
 * KH_CHANGED, *line (when not NULL) gets the 1-based line number of the first known key of
 * that type for the host (0 otherwise).
 */
enum kh_verdict knownhosts_check(const struct knownhosts *kh, const char *host, unsigned port,
                                 const char *type, const unsigned char *key, size_t keylen,
                                 unsigned *line);

/*
 * Key types known for host, most preferred first, comma-separated (for
 * libssh2_session_method_pref), written into out; "" when the host is unknown. Order:
 * ssh-ed25519, ecdsa-sha2-nistp256/384/521, then "rsa-sha2-512,rsa-sha2-256,ssh-rsa" for an
 * ssh-rsa key, ssh-dss; revoked keys and other types are left out. When out is too small the
 * list stops before the first name that does not fit (never half a name).
 */
void knownhosts_types(const struct knownhosts *kh, const char *host, unsigned port, char *out,
                      size_t outlen);

/* "SHA256:" and the unpadded base64 of the key blob's SHA-256, as ssh-keygen -l prints it.
 * out needs 51 bytes; a smaller one gets "" (a cut fingerprint could pass for another). */
void knownhosts_fingerprint(const unsigned char *key, size_t keylen, char *out, size_t outlen);

/* Can host be written into a known_hosts line, and matched there as itself alone? NULL when
 * it can: it is not empty and has only letters, digits and ".-_:%". Otherwise what is wrong
 * with the character at *at (when at is not NULL): a pattern (* ? !), a comma, a bracket, a
 * blank, a control character, one that is not ASCII. n3.json refuses such hosts. */
const char *knownhosts_host_problem(const char *host, size_t *at);

/* The known_hosts line for a key: "[host]:port type base64" (or "host type base64" for 22),
 * host lowercased, type taken from the blob as in knownhosts_check. A new string, or NULL
 * when knownhosts_host_problem finds something wrong with host, or the key has no usable
 * type. */
char *knownhosts_line(const char *host, unsigned port, const char *type, const unsigned char *key,
                      size_t keylen);

/* Append a line to the file (created 0600, and its directory 0700, when missing), with one
 * write under an exclusive lock, so two processes adding keys at once do not mix lines.
 * A newline goes first when the file does not end with one. A line that is not one
 * well-formed known_hosts entry (knownhosts_load would skip it), or NULL, is refused. */
int knownhosts_append(const char *path, const char *line, struct err *err);

#endif
