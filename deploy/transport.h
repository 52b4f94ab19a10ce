/*
 * Transports reach one target: `local` (this machine) or `ssh` (libssh2 on the loop). Both
 * offer the same operations, and everything above this interface is transport-agnostic:
 * run a command (output streamed as it arrives and kept in bounded tails, exit status, a
 * timeout that also stops the command's process group on the target), upload a file and
 * verify its sha256 there, read a small file, write a file atomically (temporary file and
 * rename), switch a symlink atomically, make directories.
 *
 * Operations are asynchronous: each takes a callback that is called exactly once, on the
 * loop, after the call has returned. An operation can be stopped until then.
 */
#ifndef N3_TRANSPORT_H
#define N3_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/proc.h"
#include "core/retry.h"

struct loop;
struct transport;
struct transport_op;
struct inv_target;
struct ssh_pool;

enum transport_status {
    TRANSPORT_OK,          /* it completed (a command may still have exited non-zero) */
    TRANSPORT_FAILED,      /* the operation failed on the target (see msg) */
    TRANSPORT_UNREACHABLE, /* could not connect, or the connection was lost */
    TRANSPORT_REFUSED,     /* host key unknown or changed, authentication refused */
    TRANSPORT_TIMEOUT,     /* ran past its timeout; a command was stopped */
    TRANSPORT_STOPPED,     /* transport_stop */
    TRANSPORT_FENCED,      /* not run: the deploy lock is not ours any more (see the fence) */
};

struct transport_result {
    enum transport_status status;
    int exit_code;                /* run: the command's exit status; -1 when it ended otherwise */
    int exit_signal;              /* run: the signal that ended it, or 0 */
    const struct tail *out, *err; /* run: captured output (valid during the callback) */
    const char *data;             /* read_file, sha256: the content (valid during the callback) */
    size_t len;
    struct retry_failure failure; /* for retry decisions, when status is not OK */
    char msg[ERR_MSG_MAX];        /* what went wrong, with the target's name */
};

typedef void (*transport_done_fn)(void *arg, const struct transport_result *r);
typedef void (*transport_output_fn)(void *arg, enum proc_stream stream, const char *data,
                                    size_t len);

struct transport_run {
    const char *command; /* a shell command line: build it with shell_quote / shell_cmdf */
    const void *input;   /* bytes for stdin; NULL: stdin is empty */
    size_t input_len;
    uint64_t timeout_ms; /* 0: none */
    uint64_t grace_ms;   /* TERM -> KILL when stopping it; 0: 5 s */
    size_t output_limit; /* bytes kept per stream; 0: 64 KiB */
    bool unfenced;       /* runs also on a fenced transport as it is (the lock's own commands) */
    transport_output_fn on_output;
    transport_done_fn on_done;
    void *arg;
};

/* Every operation starts with this. */
struct transport_op {
    struct transport *t;
    void (*stop)(struct transport_op *op, uint64_t grace_ms);
    bool (*exited)(const struct transport_op *op);
};

/* Bytes of a file sent so far, as they go out; arg is the operation's. */
typedef void (*transport_progress_fn)(void *arg, uint64_t sent);

/* The implementations' table. */
struct transport_ops {
    const char *name;
    struct transport_op *(*run)(struct transport *t, const struct transport_run *r);
    /* Copy a local file to path on the target (no checksum: transport_upload adds it);
     * progress (NULL: none; an implementation may never call it) as it goes. */
    struct transport_op *(*put)(struct transport *t, const char *local, const char *path,
                                unsigned mode, transport_progress_fn progress,
                                transport_done_fn done, void *arg);
    /* Connect now (ssh: handshake, host key, authentication); done reports it. */
    struct transport_op *(*connect)(struct transport *t, transport_done_fn done, void *arg);
    /* Microseconds the last connection took to be ready (0: not connected yet). */
    uint64_t (*handshake_us)(const struct transport *t);
    /* NULL when this machine reaches the target's addresses itself (local): */
    int (*bridge)(struct transport *t, const char *host, unsigned port, const char **path,
                  const char **last_error, struct err *err);
    struct transport_op *(*dial)(struct transport *t, const char *host, unsigned port,
                                 uint64_t timeout_ms, transport_done_fn done, void *arg);
    void (*free)(struct transport *t);
};

/*
 * A fence (deploy/lock.h, deploy/fence.h): what a holder of the deploy lock sets on the
 * transports it changes targets through. Each command then waits until confirm says the lock is
 * still the holder's (0; -1: it is not, why says so; 1: not known yet, ready(ready_arg) is
 * called when to ask again, unless forget is called first), and runs wrapped by fence_wrap:
 * the target refuses it when it has seen a higher number, and refused is told.
 */
struct transport_fence {
    uint64_t number;
    int (*confirm)(void *arg, void (*ready)(void *ready_arg), void *ready_arg, char *why,
                   size_t len);
    void (*forget)(void *arg, void (*ready)(void *ready_arg), void *ready_arg);
    void (*refused)(void *arg, const char *target, uint64_t theirs);
    void *arg;
};

/* What the operator should hear about a target, once, while commands go on (its login shell
 * prints output of its own, ...): the command line shows it. msg names the target. */
typedef void (*transport_notice_fn)(void *arg, const char *msg);

/* Every transport starts with this. */
struct transport {
    const struct transport_ops *ops;
    struct loop *loop;
    char *name;  /* the target's name, in messages */
    char *where; /* "local" or "ssh:HOST:PORT" (transport_new), else NULL: where it leads */
    uint64_t command_timeout_ms;
    transport_notice_fn notice; /* NULL: nothing is said */
    void *notice_arg;
    bool noise_seen;                     /* its login shell's output was seen (and said) */
    const struct transport_fence *fence; /* transport_set_fence; NULL: none */
    char *fence_path;                    /* the deploy path its fence is kept in */
};

/* A transport for a target: local, or ssh through the pool (which must outlive it). */
struct transport *transport_new(struct loop *loop, const struct inv_target *t,
                                struct ssh_pool *pool, uint64_t command_timeout_ms);
struct transport *transport_local_new(struct loop *loop, const char *name);
struct transport *transport_ssh_new(struct loop *loop, const struct inv_target *t,
                                    struct ssh_pool *pool);
void transport_free(struct transport *t);
/* From now on, every command (not uploads: they go to temporary names) runs under the fence f
 * (which must outlive t), kept in deploy_path on the target. NULL: no fence any more. */
void transport_set_fence(struct transport *t, const struct transport_fence *f,
                         const char *deploy_path);
const char *transport_name(const struct transport *t);

struct transport_op *transport_run(struct transport *t, const struct transport_run *r);
/* Stop an operation: a command gets TERM, and KILL after grace_ms (0: KILL now); its callback
 * still follows (TRANSPORT_STOPPED unless it had already ended). */
void transport_stop(struct transport_op *op, uint64_t grace_ms);
/* Has the command itself exited (its leftovers may still hold its output)? */
bool transport_exited(const struct transport_op *op);
struct transport_op *transport_connect(struct transport *t, transport_done_fn done, void *arg);
uint64_t transport_handshake_us(const struct transport *t);

/* A local unix socket through which a connection reaches host:port as the target sees it
 * ("127.0.0.1": an app that listens only on the target's loopback), kept until t is freed
 * (ssh: deploy/bridge.h, tunnels on the pooled session). 1 with *path, and *last_error (why
 * the bridge's last tunnel failed, "" when none has; both valid as long as t); 0 when the
 * target is this machine (connect to host:port itself); -1 with err. */
int transport_bridge(struct transport *t, const char *host, unsigned port, const char **path,
                     const char **last_error, struct err *err);
/* Can the target open a TCP connection to host:port (closed at once)? TRANSPORT_OK, or
 * FAILED (refused there, or forwarding forbidden), UNREACHABLE, TIMEOUT. NULL when the target
 * is this machine: connect yourself. */
struct transport_op *transport_dial(struct transport *t, const char *host, unsigned port,
                                    uint64_t timeout_ms, transport_done_fn done, void *arg);

/* run with only a command, a timeout and a limit on the output kept (0: 64 KiB). */
struct transport_op *transport_sh(struct transport *t, const char *command, uint64_t timeout_ms,
                                  size_t output_limit, transport_done_fn done, void *arg);
/* transport_sh for a command that only reads: it changes nothing, so it needs no fence. */
struct transport_op *transport_sh_read(struct transport *t, const char *command,
                                       uint64_t timeout_ms, size_t output_limit,
                                       transport_done_fn done, void *arg);

/* Built on run and put, the same for every transport: */
struct transport_op *transport_mkdir(struct transport *t, const char *path, transport_done_fn done,
                                     void *arg);
/* At most max bytes; a larger file is an error that says so. Reads need no fence: they and
 * transport_sha256 run as they are on a fenced transport. */
struct transport_op *transport_read_file(struct transport *t, const char *path, size_t max,
                                         transport_done_fn done, void *arg);
/* Write data to path.tmp.RANDOM, then rename it over path: readers see the old or the new. */
struct transport_op *transport_write_file(struct transport *t, const char *path, const void *data,
                                          size_t len, unsigned mode, transport_done_fn done,
                                          void *arg);
/* Make link point to target, atomically (a new symlink renamed over the old one). */
struct transport_op *transport_symlink(struct transport *t, const char *target, const char *link,
                                       transport_done_fn done, void *arg);
/* The lowercase hex sha256 of a file on the target, in r->data. */
struct transport_op *transport_sha256(struct transport *t, const char *path, transport_done_fn done,
                                      void *arg);
/* Upload local to path: to a temporary name next to it, check its sha256 on the target against
 * sha256_hex (the local file's), then rename into place. A mismatch removes the temporary file
 * and fails, naming both sums. progress (NULL: none) gets the bytes sent so far, with arg,
 * where the transport can tell (ssh can; local copies in one go). */
struct transport_op *transport_upload(struct transport *t, const char *local, const char *path,
                                      unsigned mode, const char *sha256_hex,
                                      transport_progress_fn progress, transport_done_fn done,
                                      void *arg);

/* A failed command's stderr as one line (its lines joined with "; ", n3ctl's "n3ctl: " prefix
 * dropped), or, when it said nothing, fallback followed by the exit status (malloc'd). */
char *transport_stderr_line(const struct transport_result *r, const char *fallback);

/* For implementations: fill a result. */
void transport_result_init(struct transport_result *r, enum transport_status status);
void transport_result_fail(struct transport_result *r, enum transport_status status,
                           enum retry_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The sha256 of a local file, lowercase hex (65 bytes with the NUL). */
int transport_sha256_local(const char *path, char hex[65], struct err *err);

#endif
