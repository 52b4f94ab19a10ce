/*
 * n3.json's "rollout" (top level, or an environment's own): the strategy, its steps, the
 * analysis gates and the policies, loaded into a rollout_spec (deploy/rollout.h) with positions
 * and suggestions for what is wrong. Without "steps", the strategy's defaults
 * (docs/rollouts.md):
 *   canary         5, 10, 25, 50, 75 % with a 60 s pause and an analysis after each, then 100 %
 *   blue-green     everything at once to the candidate (promote), background analysis after
 *   canary-hosts   1 host, a pause and an analysis, half of the hosts, again, then all
 *   rolling        batches of "batch" (25 % by default), an analysis after each
 */
#ifndef N3_ROLLOUTCFG_H
#define N3_ROLLOUTCFG_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "deploy/analysis.h"
#include "deploy/rollout.h"

struct cfg;

struct rolloutcfg {
    struct rollout_spec spec;       /* its steps' analyses point into analyses */
    struct analysis_spec *analyses; /* the analysis steps' gates */
    size_t nanalyses;
    struct analysis_spec background; /* with has_background */
    bool has_background;
};

/* node: the "rollout" object, or NULL for the defaults of strategy. 0, or -1 with err. */
int rolloutcfg_load(const struct cfg *c, const cJSON *node, enum rollout_strategy strategy,
                    struct rolloutcfg *out, struct err *err);
/* The defaults of a strategy (what `rollout start --strategy` takes when n3.json says none). */
void rolloutcfg_defaults(enum rollout_strategy strategy, struct rolloutcfg *out);
void rolloutcfg_done(struct rolloutcfg *rc);

const char *rollout_strategy_name(enum rollout_strategy s); /* "blue-green", ... */
/* 0, or -1 when name is none of them. */
int rollout_strategy_parse(const char *name, enum rollout_strategy *out);
/* Does the strategy move traffic by weights (it needs a router that sets them)? */
bool rollout_strategy_weighted(enum rollout_strategy s);

#endif
