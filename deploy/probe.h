/*
 * Probes: how an instance (a target's slot) is checked, once, for deploy/health.h. The kinds
 * (http, tcp, command, ...) are plugins: each registers itself (plugins/builtin.c registers
 * the built-in ones) and deploy finds it by the name n3.json gives; deploy never names one.
 *
 * n3.json's "probes" (docs/config.md): a list of probes, each with a name, a type, the
 * health policy's keys (interval, timeout, thresholds, degraded latency, breaker) and the
 * kind's own keys, which the kind checks when n3.json loads.
 */
#ifndef N3_PROBE_H
#define N3_PROBE_H

#include <cjson/cJSON.h>

#include "core/err.h"
#include "deploy/health.h"

struct cfg;
struct loop;
struct transport;
struct inv_target;
struct httpc;

/* Where one instance is, for its checks. */
struct probe_endpoint {
    struct loop *loop;
    struct transport *t;             /* the target's: for checks run there */
    const struct inv_target *target; /* name, deploy_path */
    const char *host;                /* the instance's address from here */
    unsigned port;
    const char *slot;    /* "blue", "green" */
    const char *version; /* what runs there, or NULL */
    /* The instance listens only on the target's loopback: host is "127.0.0.1" as the target
     * sees it, reached through t (transport_bridge, transport_dial). */
    bool via_target;
    struct httpc *http; /* a client on the loop, shared by the checks (plugins/httpc.h) */
};

struct probe_kind;

/* One probe of n3.json. */
struct probe_spec {
    char *name;
    const struct probe_kind *kind;
    cJSON *config; /* the probe's object, as n3.json has it (the kind reads its keys) */
    struct health_policy policy;
};

struct probe_kind {
    const char *name;
    /* Its own keys in a probe's object, NULL-terminated. */
    const char *const *keys;
    /* Check them when n3.json loads: 0, or -1 with cfg_error at the key's position. */
    int (*check)(const struct cfg *c, const cJSON *probe, struct err *err);
    /* A context for checking one endpoint (freed with free_ctx), and the checks on it. */
    void *(*new_ctx)(const struct probe_spec *spec, const struct probe_endpoint *ep);
    void (*free_ctx)(void *ctx);
    const struct health_check_ops *ops;
};

void probe_kind_register(const struct probe_kind *k);
const struct probe_kind *probe_kind_find(const char *name);
/* The registered kinds' names, NULL-terminated (for messages). */
const char *const *probe_kind_names(void);

/* A probe of n3.json: its object (node) loaded into spec (the policy's keys and the kind's);
 * 0, or -1 with err at the position. */
int probe_spec_load(const struct cfg *c, const cJSON *node, struct probe_spec *spec,
                    struct err *err);
void probe_spec_done(struct probe_spec *spec);
void probe_spec_copy(struct probe_spec *to, const struct probe_spec *from);

#endif
