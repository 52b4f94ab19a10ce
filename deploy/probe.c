/* Probes: the registry of kinds, and a probe of n3.json loaded. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/registry.h"
#include "core/xalloc.h"
#include "deploy/probe.h"

#define KEYS_MAX 48

static struct registry kinds = REGISTRY_INIT("probe kind");

/* The keys every probe has, whatever its kind. */
static const char *const common_keys[] = {"name",
                                          "type",
                                          "interval_seconds",
                                          "timeout_seconds",
                                          "healthy_threshold",
                                          "unhealthy_threshold",
                                          "degraded_ms",
                                          "breaker_failures",
                                          "breaker_recovery_seconds",
                                          NULL};

void probe_kind_register(const struct probe_kind *k)
{
    registry_add(&kinds, k, k->name);
}

const struct probe_kind *probe_kind_find(const char *name)
{
    return registry_find(&kinds, name);
}

const char *const *probe_kind_names(void)
{
    return kinds.names;
}

static int get_ms(const struct cfg *c, const cJSON *o, const char *key, double scale, double min,
                  double max, uint64_t *out, struct err *err)
{
    double v = -1;

    if (cfg_get_number(c, o, key, false, min, max, &v, err) != 0)
        return -1;
    if (v >= 0)
        *out = (uint64_t)(v * scale + 0.5);
    return 0;
}

static int get_count(const struct cfg *c, const cJSON *o, const char *key, unsigned *out,
                     struct err *err)
{
    int64_t v = -1;

    if (cfg_get_int(c, o, key, false, 1, 100, &v, err) != 0)
        return -1;
    if (v > 0)
        *out = (unsigned)v;
    return 0;
}

int probe_spec_load(const struct cfg *c, const cJSON *node, struct probe_spec *spec,
                    struct err *err)
{
    const char *type = NULL, *name = NULL, *keys[KEYS_MAX];
    const struct probe_kind *k;
    struct health_policy *p = &spec->policy;
    size_t n = 0, i;
    uint64_t degraded_ms = 0;

    memset(spec, 0, sizeof *spec);
    health_policy_default(p);
    if (!cJSON_IsObject(node))
        return cfg_error(c, err, node, "expected an object (a probe), got %s", cfg_type_name(node));
    if (cfg_get_string(c, node, "type", true, &type, err) != 0)
        return -1;
    k = probe_kind_find(type);
    if (k == NULL) {
        const char *hint = cfg_suggest(type, kinds.names);
        char known[256];

        registry_list(&kinds, known, sizeof known);
        if (hint != NULL)
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "type"),
                             "no probe type \"%.40s\"; did you mean \"%s\"?", type, hint);
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "type"),
                         "no probe type \"%.40s\"; the types are %s", type, known);
    }
    for (i = 0; common_keys[i] != NULL; i++)
        keys[n++] = common_keys[i];
    for (i = 0; k->keys != NULL && k->keys[i] != NULL && n < KEYS_MAX - 1; i++)
        keys[n++] = k->keys[i];
    keys[n] = NULL;
    if (cfg_check_object(c, node, keys, err) != 0 ||
        cfg_get_string(c, node, "name", false, &name, err) != 0 ||
        get_ms(c, node, "interval_seconds", 1000, 0.1, 86400, &p->interval_ms, err) != 0 ||
        get_ms(c, node, "timeout_seconds", 1000, 0.01, 3600, &p->timeout_ms, err) != 0 ||
        get_ms(c, node, "degraded_ms", 1, 1, 3600000, &degraded_ms, err) != 0 ||
        get_ms(c, node, "breaker_recovery_seconds", 1000, 0.1, 86400, &p->breaker_recovery_ms,
               err) != 0 ||
        get_count(c, node, "healthy_threshold", &p->healthy_threshold, err) != 0 ||
        get_count(c, node, "unhealthy_threshold", &p->unhealthy_threshold, err) != 0 ||
        get_count(c, node, "breaker_failures", &p->breaker_failures, err) != 0)
        return -1;
    p->degraded_us = degraded_ms * 1000;
    if (p->timeout_ms > p->interval_ms)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "timeout_seconds"),
                         "a timeout of %.3g s is longer than the interval (%.3g s): checks would "
                         "overlap",
                         (double)p->timeout_ms / 1000.0, (double)p->interval_ms / 1000.0);
    if (k->check != NULL && k->check(c, node, err) != 0)
        return -1;
    spec->kind = k;
    spec->name = xstrdup(name != NULL ? name : type);
    spec->config = cJSON_Duplicate(node, true);
    return 0;
}

void probe_spec_done(struct probe_spec *spec)
{
    free(spec->name);
    cJSON_Delete(spec->config);
    memset(spec, 0, sizeof *spec);
}

void probe_spec_copy(struct probe_spec *to, const struct probe_spec *from)
{
    *to = *from;
    to->name = xstrdup(from->name);
    to->config = cJSON_Duplicate(from->config, true);
}
