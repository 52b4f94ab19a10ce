/*
 * n3.json's "rollout" (deploy/rolloutcfg.h): each strategy's default steps; steps, pauses,
 * analysis gates and policies as written; and every mistake refused at its position with what
 * to do (a suggestion for a misspelt strategy or step).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "deploy/rolloutcfg.h"
#include "tests/unit/testutil.h"

/* The plan as a string: "w5 p60 a w10 ... P" (weight, pause seconds / "p?" for a person,
 * analysis with its policy letter, hosts, Promote). */
static void plan(const struct rolloutcfg *rc, char *out, size_t len)
{
    size_t i, n = 0;

    out[0] = '\0';
    for (i = 0; i < rc->spec.nsteps && n < len; i++) {
        const struct rollout_step *s = &rc->spec.steps[i];
        int k = 0;

        switch (s->kind) {
        case STEP_SET_WEIGHT:
            k = snprintf(out + n, len - n, "w%u ", s->weight);
            break;
        case STEP_SET_HOSTS:
            k = snprintf(out + n, len - n, "h%u%s ", s->hosts, s->hosts_percent ? "%" : "");
            break;
        case STEP_PAUSE:
            if (s->duration_ms > 0)
                k = snprintf(out + n, len - n, "p%llu ",
                             (unsigned long long)(s->duration_ms / 1000));
            else
                k = snprintf(out + n, len - n, "p?%llu ",
                             (unsigned long long)(s->deadline_ms / 1000));
            break;
        case STEP_ANALYSIS:
            k = snprintf(out + n, len - n, "a%c ",
                         s->policy == POLICY_ROLLBACK ? 'r'
                         : s->policy == POLICY_ABORT  ? 'a'
                                                      : 'p');
            ck_assert_ptr_nonnull(s->analysis);
            break;
        case STEP_PROMOTE:
            k = snprintf(out + n, len - n, "P");
            break;
        }
        n += (size_t)k;
    }
}

static int load(const char *json, struct rolloutcfg *rc, struct err *err)
{
    struct cfg *c;
    int rc2;

    ck_assert_msg(cfg_load_string("n3.json", json, strlen(json), &c, err) == 0, "%s", err->msg);
    rc2 = rolloutcfg_load(c, cJSON_GetObjectItemCaseSensitive(cfg_root(c), "rollout"),
                          STRATEGY_CANARY, rc, err);
    cfg_free(c);
    return rc2;
}

START_TEST(defaults)
{
    struct rolloutcfg rc;
    char p[512];

    rolloutcfg_defaults(STRATEGY_CANARY, &rc);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "w5 p60 ar w10 p60 ar w25 p60 ar w50 p60 ar w75 p60 ar P");
    ck_assert_uint_eq(rc.spec.progress_deadline_ms, 600000);
    ck_assert_uint_eq(rc.spec.abort_delay_ms, 30000);
    ck_assert_ptr_null(rc.spec.background);
    rolloutcfg_done(&rc);
    rolloutcfg_defaults(STRATEGY_BLUE_GREEN, &rc);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "P");
    ck_assert_ptr_nonnull(rc.spec.background);
    /* no rule against stable: after the switch it has no traffic */
    for (size_t i = 0; i < rc.background.nrules; i++)
        ck_assert(rc.background.rules[i].kind == ANALYSIS_MAX ||
                  rc.background.rules[i].kind == ANALYSIS_MIN);
    ck_assert_uint_gt(rc.background.nrules, 0);
    rolloutcfg_done(&rc);
    rolloutcfg_defaults(STRATEGY_CANARY_HOSTS, &rc);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "h1 p60 ar h50% p60 ar P");
    rolloutcfg_done(&rc);
    rolloutcfg_defaults(STRATEGY_ROLLING, &rc);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "h25% ar h50% ar h75% ar P");
    rolloutcfg_done(&rc);
}
END_TEST

START_TEST(as_written)
{
    struct rolloutcfg rc;
    struct err err;
    char p[512];

    ck_assert_msg(load("{\"rollout\": {\"strategy\": \"canary\", \"abort_delay_seconds\": 5,"
                       " \"progress_deadline_seconds\": 120, \"rollback_window_seconds\": 0,"
                       " \"steps\": [{\"set_weight\": 20}, {\"pause\": {\"seconds\": 30}},"
                       " {\"analysis\": {\"count\": 3, \"on_failure\": \"abort\"}},"
                       " {\"pause\": {\"deadline_seconds\": 3600}}, {\"set_weight\": 50},"
                       " {\"analysis\": {\"count\": 2, \"on_failure\": \"pause\"}}],"
                       " \"background_analysis\": {\"interval_seconds\": 10}}}",
                       &rc, &err) == 0,
                  "%s", err.msg);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "w20 p30 aa p?3600 w50 ap P");
    ck_assert_uint_eq(rc.spec.abort_delay_ms, 5000);
    ck_assert_uint_eq(rc.spec.progress_deadline_ms, 120000);
    ck_assert_uint_eq(rc.spec.rollback_window_ms, 0);
    ck_assert_ptr_nonnull(rc.spec.background);
    ck_assert_uint_eq(rc.background.interval_ms, 10000);
    ck_assert_uint_eq(rc.analyses[0].count, 3);
    rolloutcfg_done(&rc);
    /* rolling with a batch, a failure budget; set_weight 100 is the promotion */
    ck_assert_msg(load("{\"rollout\": {\"strategy\": \"rolling\", \"batch\": \"50%\","
                       " \"failure_budget\": 1}}",
                       &rc, &err) == 0,
                  "%s", err.msg);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "h50% ar P");
    ck_assert_uint_eq(rc.spec.failure_budget, 1);
    rolloutcfg_done(&rc);
    ck_assert_msg(load("{\"rollout\": {\"steps\": [{\"set_weight\": 10}, {\"set_weight\": 100}]}}",
                       &rc, &err) == 0,
                  "%s", err.msg);
    plan(&rc, p, sizeof p);
    ck_assert_str_eq(p, "w10 P");
    rolloutcfg_done(&rc);
}
END_TEST

static void refused(const char *json, const char *want)
{
    struct rolloutcfg rc;
    struct err err;

    ck_assert_msg(load(json, &rc, &err) != 0, "accepted: %s", json);
    ck_assert_msg(strstr(err.msg, want) != NULL, "for %s\n  got  %s\n  want %s", json, err.msg,
                  want);
    rolloutcfg_done(&rc);
}

START_TEST(mistakes)
{
    refused("{\"rollout\": {\"strategy\": \"canry\"}}",
            "n3.json:1:26: rollout.strategy: unknown strategy \"canry\"; did you mean \"canary\"?");
    refused("{\"rollout\": {\"stratgy\": \"canary\"}}", "rollout.stratgy");
    refused("{\"rollout\": {\"steps\": [{\"set_hosts\": 1}]}}",
            "set_hosts moves whole hosts (the canary-hosts and rolling strategies); the canary "
            "strategy moves weights: use set_weight");
    refused("{\"rollout\": {\"strategy\": \"rolling\", \"steps\": [{\"set_weight\": 10}]}}",
            "set_weight moves traffic through a router; the rolling strategy moves whole hosts");
    refused("{\"rollout\": {\"steps\": [{\"set_weight\": 101}]}}",
            "rollout.steps[0].set_weight: a share of the traffic: an integer from 0 to 100");
    refused("{\"rollout\": {\"steps\": [{\"set_weight\": 10, \"pause\": {}}]}}",
            "rollout.steps[0]: a step is an object with one key");
    refused("{\"rollout\": {\"steps\": [{\"paus\": {}}]}}",
            "unknown step \"paus\"; did you mean \"pause\"?");
    refused("{\"rollout\": {\"steps\": [{\"pause\": {\"seconds\": 5, \"deadline_seconds\": 9}}]}}",
            "a deadline is for a pause that waits for a person");
    refused("{\"rollout\": {\"steps\": [{\"pause\": 5}]}}", "an object: {\"seconds\": 60}");
    refused("{\"rollout\": {\"steps\": [{\"analysis\": {}}]}}",
            "an analysis step needs a \"count\"");
    refused(
        "{\"rollout\": {\"steps\": [{\"analysis\": {\"count\": 2, \"on_failure\": \"rolback\"}}]}}",
        "rollout.steps[0].analysis.on_failure");
    refused("{\"rollout\": {\"analysis\": {}}}", "say where it runs");
    refused("{\"rollout\": {\"batch\": \"25%\"}}", "batch is the rolling strategy's");
    refused("{\"rollout\": {\"strategy\": \"rolling\", \"batch\": 3}}",
            "a share of the hosts a batch");
    refused("{\"rollout\": {\"strategy\": \"canary-hosts\", \"steps\": [{\"set_hosts\": \"0%\"}]}}",
            "a number of hosts (1, 2, ...) or a share of them");
    refused("{\"rollout\": {\"steps\": []}}", "give 1 to 100 steps");
    refused("{\"rollout\": {\"progress_deadline_seconds\": 0.5}}", "at least 1 s");
    refused("{\"rollout\": []}", "expected an object (the rollout)");
}
END_TEST

static Suite *rolloutcfg_suite(void)
{
    Suite *s = suite_create("rolloutcfg");
    TCase *t = tcase_create("n3.json");

    tcase_add_test(t, defaults);
    tcase_add_test(t, as_written);
    tcase_add_test(t, mistakes);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(rolloutcfg_suite());
}
