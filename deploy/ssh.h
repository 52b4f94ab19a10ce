/*
 * SSH with libssh2 in non-blocking mode on the loop: a pool with one session per target,
 * reused for many channels; handshakes capped; connect, authentication and command
 * timeouts; keepalive; reconnection with backoff after a failure. Host keys are checked
 * strictly against known_hosts (deploy/knownhosts.h); authentication is ssh-agent or key
 * files, and a key file that others can read is refused, as OpenSSH does.
 */
#ifndef N3_SSH_H
#define N3_SSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/proc.h"
#include "core/retry.h"

struct loop;
struct ssh_pool;
struct ssh_conn;
struct ssh_chan;

struct ssh_settings {
    const char *const *identities; /* private key files, NULL-terminated */
    const char *known_hosts;
    bool agent;
    uint64_t connect_timeout_ms;
    uint64_t auth_timeout_ms;
    uint64_t keepalive_ms; /* 0: none */
    unsigned max_handshakes;
};

enum ssh_status {
    SSH_DONE,        /* it ran to the end (a command may have exited non-zero) */
    SSH_UNREACHABLE, /* could not connect, or the connection was lost */
    SSH_REFUSED,     /* host key, or authentication */
    SSH_ABANDONED,   /* ssh_chan_abandon */
    SSH_FAILED,      /* the operation failed (an SFTP error, a channel refused) */
};

struct ssh_result {
    enum ssh_status status;
    enum retry_kind kind; /* for retry decisions when not SSH_DONE */
    int exit_code;        /* -1 when unknown or ended by a signal */
    int exit_signal;      /* 0 when none */
    const struct tail *out, *err;
    char msg[ERR_MSG_MAX];
};

typedef void (*ssh_done_fn)(void *arg, const struct ssh_result *r);
typedef void (*ssh_output_fn)(void *arg, enum proc_stream stream, const char *data, size_t len);

struct ssh_exec_spec {
    const char *command; /* given to the login shell of the user on the target */
    const void *input;   /* stdin (copied); NULL: none, EOF at once */
    size_t input_len;
    size_t output_limit; /* kept per stream; 0: 64 KiB */
    ssh_output_fn on_output;
    ssh_done_fn on_done;
    void *arg;
};

struct ssh_pool *ssh_pool_new(struct loop *loop, const struct ssh_settings *s, struct err *err);
/* Closes every session; operations still running end as SSH_ABANDONED. */
void ssh_pool_free(struct ssh_pool *p);

/* The connection to user@host:port (one per pool, made on first use). name is the target's,
 * for messages and `n3ctl hosts trust NAME`. */
struct ssh_conn *ssh_pool_conn(struct ssh_pool *p, const char *name, const char *host,
                               unsigned port, const char *user);

/* Operations: each done callback is called once, after the call has returned. */
struct ssh_chan *ssh_exec(struct ssh_conn *c, const struct ssh_exec_spec *spec);
/* Bytes of the file written so far. */
typedef void (*ssh_progress_fn)(void *arg, uint64_t sent);
/* Copy a local file to path on the target with SFTP (created with mode, truncated); progress
 * (NULL: none) is called with arg as data goes out, not after done. */
struct ssh_chan *ssh_put(struct ssh_conn *c, const char *local, const char *path, unsigned mode,
                         ssh_progress_fn progress, ssh_done_fn done, void *arg);
/* Connect, check the host key and authenticate, if that is not done yet. */
struct ssh_chan *ssh_connect(struct ssh_conn *c, ssh_done_fn done, void *arg);
/*
 * A tunnel: a TCP connection the target makes to host:port (a direct-tcpip channel on the
 * pooled session), for an app that listens only on the target's loopback; nothing is opened or
 * started on the target. on_open when the target has connected (on_data may follow: what the
 * far end sends, with PROC_STDOUT); done when it has ended: the far end closed it (SSH_DONE,
 * exit_code -1), it could not be opened (SSH_FAILED: nothing listens there, or the server
 * forbids forwarding), or the connection was lost.
 */
struct ssh_tunnel_spec {
    const char *host; /* as the target sees it: "127.0.0.1" */
    unsigned port;
    void (*on_open)(void *arg);
    ssh_output_fn on_data;
    ssh_done_fn on_done;
    void *arg;
};
struct ssh_chan *ssh_tunnel(struct ssh_conn *c, const struct ssh_tunnel_spec *spec);
/* Send bytes to the far end (copied, sent as the channel's window allows). */
void ssh_tunnel_write(struct ssh_chan *ch, const void *data, size_t len);
/* Bytes written and not sent yet (to hold back a fast writer). */
size_t ssh_tunnel_pending(const struct ssh_chan *ch);
/* Nothing more to send: EOF once what is pending is out (the far end's answer still comes). */
void ssh_tunnel_shut(struct ssh_chan *ch);

/* Stop waiting for an operation: done follows with SSH_ABANDONED and why; what runs on the
 * target is not stopped by this (see transport_ssh.c for that). */
void ssh_chan_abandon(struct ssh_chan *ch, const char *why);

/* Close the connection as broken because of ch (a transfer that stalled: what was half sent
 * cannot be taken back): ch and the operations that had started something on the target end as
 * SSH_UNREACHABLE with why; the others move to a fresh connection once (never ch). */
void ssh_conn_drop(struct ssh_conn *c, struct ssh_chan *ch, const char *why);

/* Still waiting for its turn on the connection (nothing sent for it yet)? */
bool ssh_chan_queued(const struct ssh_chan *ch);
/* When its turn on the connection came (loop time, us); 0 while it waits for it. */
uint64_t ssh_chan_started_us(const struct ssh_chan *ch);

bool ssh_conn_ready(const struct ssh_conn *c);
/* How long the last successful connection took, from TCP connect to authenticated. */
uint64_t ssh_conn_handshake_us(const struct ssh_conn *c);
const char *ssh_conn_name(const struct ssh_conn *c);
/* The longest that getting the connection ready may take (connect, then authentication). */
uint64_t ssh_conn_setup_budget_ms(const struct ssh_conn *c);

/* The host key the server presented on the last handshake (type name, raw blob), even when it
 * was refused: for `n3ctl hosts trust`. NULL when there was none. */
const unsigned char *ssh_conn_hostkey(const struct ssh_conn *c, const char **type, size_t *len);

/* Signal number for an SSH signal name ("TERM", "KILL"), 0 if unknown. */
int ssh_signal_number(const char *name);

#endif
