/* n3.json's "rollout": a strategy, its steps, the gates and the policies. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/xalloc.h"
#include "deploy/rolloutcfg.h"

#define STEPS_MAX 100

static const char *const strategies[] = {"blue-green", "canary", "canary-hosts", "rolling", NULL};
static const char *const keys[] = {"strategy",
                                   "steps",
                                   "analysis",
                                   "background_analysis",
                                   "progress_deadline_seconds",
                                   "abort_delay_seconds",
                                   "rollback_window_seconds",
                                   "failure_budget",
                                   "batch",
                                   NULL};
static const char *const step_keys[] = {"set_weight", "set_hosts", "pause",
                                        "analysis",   "promote",   NULL};
static const char *const pause_keys[] = {"seconds", "deadline_seconds", NULL};

const char *rollout_strategy_name(enum rollout_strategy s)
{
    switch (s) {
    case STRATEGY_BLUE_GREEN:
        return "blue-green";
    case STRATEGY_CANARY:
        return "canary";
    case STRATEGY_CANARY_HOSTS:
        return "canary-hosts";
    case STRATEGY_ROLLING:
        return "rolling";
    }
    return "?";
}

int rollout_strategy_parse(const char *name, enum rollout_strategy *out)
{
    static const enum rollout_strategy v[] = {STRATEGY_BLUE_GREEN, STRATEGY_CANARY,
                                              STRATEGY_CANARY_HOSTS, STRATEGY_ROLLING};
    size_t i;

    for (i = 0; strategies[i] != NULL; i++) {
        if (strcmp(strategies[i], name) == 0) {
            *out = v[i];
            return 0;
        }
    }
    return -1;
}

bool rollout_strategy_weighted(enum rollout_strategy s)
{
    return s == STRATEGY_BLUE_GREEN || s == STRATEGY_CANARY;
}

static enum rollout_policy policy_of(enum analysis_policy p)
{
    return p == ANALYSIS_ABORT   ? POLICY_ABORT
           : p == ANALYSIS_PAUSE ? POLICY_PAUSE
                                 : POLICY_ROLLBACK;
}

void rolloutcfg_done(struct rolloutcfg *rc)
{
    size_t i;

    for (i = 0; i < rc->nanalyses; i++)
        analysis_spec_done(&rc->analyses[i]);
    free(rc->analyses);
    if (rc->has_background)
        analysis_spec_done(&rc->background);
    rollout_spec_done(&rc->spec);
    memset(rc, 0, sizeof *rc);
}

static void base(struct rolloutcfg *rc, enum rollout_strategy strategy)
{
    memset(rc, 0, sizeof *rc);
    rc->spec.strategy = strategy;
    rc->spec.progress_deadline_ms = 600000;
    rc->spec.abort_delay_ms = 30000;
    rc->spec.rollback_window_ms = 600000;
}

/* Append a step (the array is sized for STEPS_MAX + a promotion). */
static struct rollout_step *add_step(struct rolloutcfg *rc, enum rollout_step_kind kind)
{
    struct rollout_step *s = &rc->spec.steps[rc->spec.nsteps++];

    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

static void add_default_analysis(struct rolloutcfg *rc)
{
    struct rollout_step *s = add_step(rc, STEP_ANALYSIS);
    struct analysis_spec *a = &rc->analyses[rc->nanalyses++];

    analysis_spec_default(a);
    a->count = 2; /* two measurements a step: an interval's traffic is judged twice */
    s->analysis = a;
    s->policy = policy_of(a->on_failure);
}

/* The strategy's steps, with batch (a percentage of the hosts) for rolling. */
static void default_steps(struct rolloutcfg *rc, unsigned batch)
{
    size_t i;

    rc->spec.steps = xcalloc(STEPS_MAX + 2, sizeof *rc->spec.steps);
    rc->analyses = xcalloc(STEPS_MAX + 1, sizeof *rc->analyses);
    switch (rc->spec.strategy) {
    case STRATEGY_CANARY: {
        static const unsigned w[] = {5, 10, 25, 50, 75};

        for (i = 0; i < sizeof w / sizeof w[0]; i++) {
            add_step(rc, STEP_SET_WEIGHT)->weight = w[i];
            add_step(rc, STEP_PAUSE)->duration_ms = 60000;
            add_default_analysis(rc);
        }
        break;
    }
    case STRATEGY_CANARY_HOSTS:
        add_step(rc, STEP_SET_HOSTS)->hosts = 1;
        add_step(rc, STEP_PAUSE)->duration_ms = 60000;
        add_default_analysis(rc);
        {
            struct rollout_step *s = add_step(rc, STEP_SET_HOSTS);

            s->hosts = 50;
            s->hosts_percent = true;
        }
        add_step(rc, STEP_PAUSE)->duration_ms = 60000;
        add_default_analysis(rc);
        break;
    case STRATEGY_ROLLING:
        for (i = batch; i < 100; i += batch) {
            struct rollout_step *s = add_step(rc, STEP_SET_HOSTS);

            s->hosts = (unsigned)i;
            s->hosts_percent = true;
            add_default_analysis(rc);
        }
        break;
    case STRATEGY_BLUE_GREEN:
        break;
    }
    add_step(rc, STEP_PROMOTE);
}

/* Blue-green's analysis after the switch: the defaults' rules on the candidate alone (the
 * stable has no traffic left to compare with). */
static void default_background(struct rolloutcfg *rc)
{
    struct analysis_spec *a = &rc->background;
    size_t i, n = 0;

    analysis_spec_default(a);
    for (i = 0; i < a->nrules; i++) {
        if (a->rules[i].kind == ANALYSIS_MAX_INCREASE || a->rules[i].kind == ANALYSIS_MAX_RATIO)
            free(a->rules[i].name);
        else
            a->rules[n++] = a->rules[i];
    }
    a->nrules = n;
    rc->has_background = true;
    rc->spec.background = a;
    rc->spec.background_policy = policy_of(a->on_failure);
}

void rolloutcfg_defaults(enum rollout_strategy strategy, struct rolloutcfg *out)
{
    base(out, strategy);
    default_steps(out, 25);
    if (strategy == STRATEGY_BLUE_GREEN)
        default_background(out);
}

static int get_seconds(const struct cfg *c, const cJSON *o, const char *key, double max,
                       uint64_t *out, struct err *err)
{
    double v = -1;

    if (cfg_get_number(c, o, key, false, 0, max, &v, err) != 0)
        return -1;
    if (v >= 0 && cfg_has(o, key))
        *out = (uint64_t)(v * 1000.0 + 0.5);
    return 0;
}

/* "25%" or 3: hosts, as a count or a percentage. */
static int get_hosts(const struct cfg *c, const cJSON *v, unsigned *n, bool *percent,
                     struct err *err)
{
    if (cJSON_IsNumber(v) && v->valuedouble == (double)(int)v->valuedouble && v->valuedouble >= 1 &&
        v->valuedouble <= 100000) {
        *n = (unsigned)v->valuedouble;
        *percent = false;
        return 0;
    }
    if (cJSON_IsString(v)) {
        char *end;
        long p = strtol(v->valuestring, &end, 10);

        if (end != v->valuestring && strcmp(end, "%") == 0 && p >= 1 && p <= 100) {
            *n = (unsigned)p;
            *percent = true;
            return 0;
        }
    }
    return cfg_error(c, err, v, "a number of hosts (1, 2, ...) or a share of them (\"25%%\")");
}

static int load_step(const struct cfg *c, const cJSON *item, struct rolloutcfg *rc, struct err *err)
{
    const cJSON *k;
    struct rollout_step *s;
    const char *hint;
    bool weighted = rollout_strategy_weighted(rc->spec.strategy);

    if (!cJSON_IsObject(item) || cJSON_GetArraySize(item) != 1)
        return cfg_error(c, err, item,
                         "a step is an object with one key: set_weight, set_hosts, pause, "
                         "analysis or promote ({\"set_weight\": 10})");
    k = item->child;
    if (strcmp(k->string, "set_weight") == 0) {
        if (!weighted)
            return cfg_key_error(c, err, k,
                                 "set_weight moves traffic through a router; the %s strategy "
                                 "moves whole hosts: use set_hosts",
                                 rollout_strategy_name(rc->spec.strategy));
        if (!cJSON_IsNumber(k) || k->valuedouble != (double)(int)k->valuedouble ||
            k->valuedouble < 0 || k->valuedouble > 100)
            return cfg_error(c, err, k, "a share of the traffic: an integer from 0 to 100");
        s = add_step(rc, k->valuedouble == 100 ? STEP_PROMOTE : STEP_SET_WEIGHT);
        s->weight = (unsigned)k->valuedouble;
        return 0;
    }
    if (strcmp(k->string, "set_hosts") == 0) {
        if (weighted)
            return cfg_key_error(c, err, k,
                                 "set_hosts moves whole hosts (the canary-hosts and rolling "
                                 "strategies); the %s strategy moves weights: use set_weight",
                                 rollout_strategy_name(rc->spec.strategy));
        s = add_step(rc, STEP_SET_HOSTS);
        return get_hosts(c, k, &s->hosts, &s->hosts_percent, err);
    }
    if (strcmp(k->string, "pause") == 0) {
        if (!cJSON_IsObject(k))
            return cfg_error(c, err, k,
                             "an object: {\"seconds\": 60}, or {} to wait for a person "
                             "(with \"deadline_seconds\" for an event when they do not come)");
        if (cfg_check_object(c, k, pause_keys, err) != 0)
            return -1;
        s = add_step(rc, STEP_PAUSE);
        if (get_seconds(c, k, "seconds", 86400 * 7, &s->duration_ms, err) != 0 ||
            get_seconds(c, k, "deadline_seconds", 86400 * 30, &s->deadline_ms, err) != 0)
            return -1;
        if (s->duration_ms > 0 && s->deadline_ms > 0)
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(k, "deadline_seconds"),
                             "a timed pause ends by itself: a deadline is for a pause that waits "
                             "for a person (leave \"seconds\" out)");
        return 0;
    }
    if (strcmp(k->string, "analysis") == 0) {
        struct analysis_spec *a = &rc->analyses[rc->nanalyses];

        if (!cJSON_IsObject(k))
            return cfg_error(c, err, k, "an analysis object ({} for the defaults)");
        if (analysis_spec_load(c, k, a, err) != 0)
            return -1;
        rc->nanalyses++;
        if (a->count == 0)
            return cfg_error(c, err, k,
                             "an analysis step needs a \"count\" (how many measurements before "
                             "it passes): without one it would never end; background analysis "
                             "goes in \"background_analysis\"");
        s = add_step(rc, STEP_ANALYSIS);
        s->analysis = a;
        s->policy = policy_of(a->on_failure);
        return 0;
    }
    if (strcmp(k->string, "promote") == 0) {
        if (!cJSON_IsTrue(k))
            return cfg_error(c, err, k, "\"promote\": true");
        add_step(rc, STEP_PROMOTE);
        return 0;
    }
    hint = cfg_suggest(k->string, step_keys);
    return cfg_key_error(c, err, k,
                         "unknown step \"%.40s\"%s%s%s; the steps are set_weight, "
                         "set_hosts, pause, analysis and promote",
                         k->string, hint ? "; did you mean \"" : "", hint ? hint : "",
                         hint ? "\"?" : "");
}

int rolloutcfg_load(const struct cfg *c, const cJSON *node, enum rollout_strategy strategy,
                    struct rolloutcfg *out, struct err *err)
{
    const char *name = NULL;
    const cJSON *steps, *item, *bg;
    int64_t budget = 0;
    unsigned batch = 25;

    base(out, strategy);
    if (node == NULL) {
        rolloutcfg_defaults(strategy, out);
        return 0;
    }
    if (!cJSON_IsObject(node))
        return cfg_error(c, err, node, "expected an object (the rollout), got %s",
                         cfg_type_name(node));
    if (cfg_check_object(c, node, keys, err) != 0 ||
        cfg_get_string(c, node, "strategy", false, &name, err) != 0)
        return -1;
    if (name != NULL && rollout_strategy_parse(name, &out->spec.strategy) != 0) {
        const char *hint = cfg_suggest(name, strategies);

        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "strategy"),
                         "unknown strategy \"%.40s\"%s%s%s; the strategies are blue-green, "
                         "canary, canary-hosts and rolling",
                         name, hint ? "; did you mean \"" : "", hint ? hint : "",
                         hint ? "\"?" : "");
    }
    if (get_seconds(c, node, "progress_deadline_seconds", 86400, &out->spec.progress_deadline_ms,
                    err) != 0 ||
        get_seconds(c, node, "abort_delay_seconds", 86400, &out->spec.abort_delay_ms, err) != 0 ||
        get_seconds(c, node, "rollback_window_seconds", 86400 * 7, &out->spec.rollback_window_ms,
                    err) != 0 ||
        cfg_get_int(c, node, "failure_budget", false, 0, 100000, &budget, err) != 0)
        return -1;
    if (out->spec.progress_deadline_ms < 1000)
        return cfg_error(c, err,
                         cJSON_GetObjectItemCaseSensitive(node, "progress_deadline_seconds"),
                         "at least 1 s: every step has this long");
    out->spec.failure_budget = (unsigned)budget;
    if (cfg_has(node, "batch")) {
        bool pct = false;
        unsigned n = 0;

        if (out->spec.strategy != STRATEGY_ROLLING)
            return cfg_key_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "batch"),
                                 "batch is the rolling strategy's");
        if (get_hosts(c, cJSON_GetObjectItemCaseSensitive(node, "batch"), &n, &pct, err) != 0)
            return -1;
        if (!pct)
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "batch"),
                             "a share of the hosts a batch (\"25%%\")");
        batch = n;
    }
    steps = cfg_get(c, node, "steps", cJSON_Array, false, err);
    if (steps == NULL && cfg_has(node, "steps"))
        return -1;
    if (cfg_has(node, "analysis"))
        return cfg_key_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "analysis"),
                             "say where it runs: an {\"analysis\": {...}} step in \"steps\", or "
                             "\"background_analysis\" for one that runs through all of them");
    if (steps == NULL) {
        default_steps(out, batch);
    } else {
        if (cJSON_GetArraySize(steps) == 0 || cJSON_GetArraySize(steps) > STEPS_MAX)
            return cfg_error(c, err, steps, "give 1 to %d steps", STEPS_MAX);
        out->spec.steps = xcalloc(STEPS_MAX + 2, sizeof *out->spec.steps);
        out->analyses = xcalloc(STEPS_MAX + 1, sizeof *out->analyses);
        cJSON_ArrayForEach(item, steps)
        {
            if (load_step(c, item, out, err) != 0)
                return -1;
        }
        if (out->spec.steps[out->spec.nsteps - 1].kind != STEP_PROMOTE)
            add_step(out, STEP_PROMOTE); /* a rollout ends on the candidate */
    }
    bg = cfg_get(c, node, "background_analysis", cJSON_Object, false, err);
    if (bg == NULL && cfg_has(node, "background_analysis"))
        return -1;
    if (bg != NULL) {
        if (analysis_spec_load(c, bg, &out->background, err) != 0)
            return -1;
        out->has_background = true;
        out->spec.background = &out->background;
        out->spec.background_policy = policy_of(out->background.on_failure);
    } else if (out->spec.strategy == STRATEGY_BLUE_GREEN) {
        default_background(out);
    }
    return 0;
}
