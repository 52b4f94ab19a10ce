/*
 * Remote steps: the executor's runner for commands on targets. One transport per target
 * (over one shared SSH pool), a circuit breaker per target: a target that keeps failing to
 * answer is taken offline for a while, and its steps fail at once instead of waiting.
 */
#ifndef N3_REMOTE_H
#define N3_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct loop;
struct inventory;
struct inv_env;
struct exec_runner;
struct remote;
struct transport;

struct remote_opts {
    uint64_t grace_ms;   /* TERM -> KILL when a command is stopped */
    size_t output_limit; /* kept per stream */
    /* What to tell the operator about a target, once (transport.h's notice); NULL: nothing. */
    void (*notice)(void *arg, const char *msg);
    void *notice_arg;
};

struct remote *remote_new(struct loop *loop, const struct inventory *inv, const struct inv_env *env,
                          const struct remote_opts *opts, struct err *err);
/* Closes the SSH connections; no command may be running. */
void remote_free(struct remote *r);
const struct exec_runner *remote_runner(struct remote *r);
/* The transport of a target of the environment (made on first use), or NULL. */
struct transport *remote_transport(struct remote *r, const char *target);
/* The transport to the host the environment's router runs on (n3.json's router "on"), made on
 * first use; NULL when the router runs on this machine, or (with err) when it cannot be. */
struct transport *remote_router_transport(struct remote *r, struct err *err);

struct ssh_settings;
struct inv_ssh;

/* The SSH settings of n3.json, as the pool takes them (pointers into s). */
void remote_ssh_settings(const struct inv_ssh *s, struct ssh_settings *out);

/* Was the target's connection lost, or could it not be reached, on its last try? */
bool remote_offline(const struct remote *r, const char *target);

#endif
