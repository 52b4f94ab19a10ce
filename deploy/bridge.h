/*
 * A bridge: a local door to a port on a target's loopback, for the probes and scrapes of an app
 * that listens only there. It is a unix socket in a directory of its own (mode 0700: no other
 * user of this machine can use it to reach the target); each connection made to it is carried
 * to host:port on the target through a tunnel on the target's pooled SSH session
 * (deploy/ssh.h: a direct-tcpip channel), so nothing is opened or started on the target.
 *
 * A connection whose tunnel cannot be opened (nothing listens there, the target's sshd forbids
 * forwarding, the connection is lost) is closed at once: an HTTP client sees it as an empty
 * reply. What a connection sends and has not gone out yet is bounded (BRIDGE_PENDING_MAX); a
 * writer past it is cut off.
 */
#ifndef N3_BRIDGE_H
#define N3_BRIDGE_H

#include "core/err.h"

struct loop;
struct ssh_conn;
struct bridge;

#define BRIDGE_PENDING_MAX (4u * 1024u * 1024u)

/* A bridge to host:port as the target sees it ("127.0.0.1", 8001); NULL with err when the
 * socket cannot be made. */
struct bridge *bridge_new(struct loop *loop, struct ssh_conn *c, const char *host, unsigned port,
                          struct err *err);
/* The unix socket to connect to. */
const char *bridge_path(const struct bridge *b);
const char *bridge_host(const struct bridge *b);
unsigned bridge_port(const struct bridge *b);
/* Why the last tunnel that failed did (its message), "" when none has; a buffer of the bridge,
 * valid as long as it is. */
const char *bridge_last_error(const struct bridge *b);
/* Connections in flight. */
unsigned bridge_links(const struct bridge *b);
/* Closes the socket and its connections (their tunnels end as the far end answers, or with the
 * pool), and removes the directory. */
void bridge_free(struct bridge *b);

#endif
