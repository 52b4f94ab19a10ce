/*
 * The inventory: environments, their targets and the SSH settings, from n3.json
 * (docs/config.md). Everything is validated when it loads, with positions in errors.
 */
#ifndef N3_INVENTORY_H
#define N3_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct inventory;
struct inv_env;

enum inv_transport { INV_SSH, INV_LOCAL };

struct inv_target {
    char *name; /* unique in its environment; [A-Za-z0-9._:@+-] */
    enum inv_transport transport;
    char *host; /* ssh: a host name or address */
    unsigned port;
    char *user;
    char **labels; /* NULL-terminated */
    char *deploy_path;
};

struct inv_lock_cfg {
    uint64_t lease_ms; /* a holder that stops renewing loses the lock after this; 60 s */
};

struct inv_ssh {
    char *user; /* default user of ssh targets */
    unsigned port;
    char **identities; /* private key files, NULL-terminated; tried in order */
    char *known_hosts;
    bool agent;                  /* try ssh-agent (SSH_AUTH_SOCK) first */
    uint64_t connect_timeout_ms; /* TCP connect and SSH handshake */
    uint64_t auth_timeout_ms;
    uint64_t command_timeout_ms; /* default timeout of a remote command */
    uint64_t keepalive_ms;
    unsigned max_handshakes; /* handshakes in progress at once */
};

/* The application: its repository and which tags are its versions. */
struct inv_app {
    char *name;             /* default: the repository directory's name */
    char *repository;       /* absolute; default: the directory of n3.json */
    char *tag_pattern;      /* a glob over tag names; default "*" */
    unsigned keep_releases; /* what `release prune` keeps by default; 5 */
};

/* Hooks: commands run at fixed points, with {version}, {release_dir}, {slot}, {port} and
 * {target} replaced by quoted values ({{ and }} for braces). */
enum inv_hook { HOOK_BUILD, HOOK_AFTER_UNPACK, HOOK_BEFORE_START, HOOK_AFTER_SWITCH, HOOK_COUNT };

struct inv_hooks {
    char *cmd[HOOK_COUNT]; /* NULL when not set */
    uint64_t timeout_ms;   /* each hook run; default 600 s */
};

/* How a slot's instance is started and stopped on a target (an environment's "service"). */
enum inv_service_mode {
    INV_SERVICE_DETACHED, /* n3ctl starts start detached and stops its process group */
    INV_SERVICE_SYSTEMD,  /* the operator's own start and stop commands (systemctl ...) */
};

#define INV_SLOTS 2 /* blue, green: indices as deploy/hoststate.h's enum hs_slot */

struct inv_service {
    unsigned ports[INV_SLOTS]; /* each slot's port on the target, distinct */
    char *start;               /* {port} {slot} {release_dir} {version} {target}, quoted */
    char *stop;                /* NULL: detached mode stops the process group */
    uint64_t stop_grace_ms;    /* TERM, then KILL after this; 10 s */
    uint64_t ready_timeout_ms; /* a started slot must be ready within this; 60 s */
    enum inv_service_mode mode;
    bool loopback; /* "listen": "loopback": the instances listen only on the target's 127.0.0.1;
                    * probes reach them through the target's transport (an SSH tunnel) */
};

#define INVENTORY_FILE "n3.json"

/* Load path, or when path is NULL: $N3CTL_CONFIG, else n3.json in the current directory or
 * the nearest parent that has one. */
int inventory_load(const char *path, struct inventory **out, struct err *err);
void inventory_free(struct inventory *inv);

const char *inventory_path(const struct inventory *inv);
const struct inv_ssh *inventory_ssh(const struct inventory *inv);
const struct inv_app *inventory_app(const struct inventory *inv);
const struct inv_hooks *inventory_hooks(const struct inventory *inv);
const struct inv_lock_cfg *inventory_lock(const struct inventory *inv);
/* The hook's name in n3.json ("build", "after_unpack", ...). */
const char *inventory_hook_name(enum inv_hook h);

/* An environment by name; NULL name: default_environment, or the only one there is. */
int inventory_env(const struct inventory *inv, const char *name, const struct inv_env **out,
                  struct err *err);
const char *inv_env_name(const struct inv_env *env);
size_t inv_env_ntargets(const struct inv_env *env);
const struct inv_target *inv_env_target(const struct inv_env *env, size_t i);
const struct inv_target *inv_env_find(const struct inv_env *env, const char *name);
struct probe_spec;
struct router_kind;

/* An environment's router: its kind, and its object in n3.json (checked by the kind). */
struct inv_router {
    const struct router_kind *kind;
    struct cJSON *config;
    /* "on": the host the router runs on, reached as a target is (ssh: its commands, and a
     * TCP admin socket through a tunnel); NULL: this machine. */
    struct inv_target *on;
};

/* The environment's router (its own "router", or the top level's), or NULL when neither has
 * one. */
const struct inv_router *inv_env_router(const struct inv_env *env);
struct rolloutcfg;
/* The environment's "rollout" (its own, or the top level's), or NULL when n3.json has none
 * (rollout start takes a strategy's defaults then). */
const struct rolloutcfg *inv_env_rollout(const struct inv_env *env);

struct metricsrc_spec;

/* The environment's metric source (its own "metrics", or the top level's), or NULL when neither
 * has one. */
const struct metricsrc_spec *inv_env_metrics(const struct inv_env *env);

/* The environment's probes (its own "probes", or the top level's): *n of them. */
const struct probe_spec *inv_env_probes(const struct inv_env *env, size_t *n);

/* The environment's service (its own, or the top level's), or NULL when neither says how. */
const struct inv_service *inv_env_service(const struct inv_env *env);
/* "detached", "systemd" */
const char *inventory_service_mode_name(enum inv_service_mode m);

/* Where the environment's deploy lock lives: its lock_target, or its first target. */
const struct inv_target *inv_env_lock_target(const struct inv_env *env);

/*
 * Targets of a selector, appended to *names (NULL-terminated, *n of them): a target name,
 * "label:NAME", or "all". A plan_resolve_fn, with arg the environment.
 */
int inv_env_select(void *env, const char *selector, char ***names, size_t *n, struct err *err);

#endif
