/* Analysis: rules on live figures, verdicts with their explanation, and the gate on the loop. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/fmt.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/analysis.h"

/* ---- names ---- */

static const char *const metric_names[] = {[ANALYSIS_ERROR_RATE] = "error_rate",
                                           [ANALYSIS_P50] = "p50",
                                           [ANALYSIS_P95] = "p95",
                                           [ANALYSIS_P99] = "p99",
                                           [ANALYSIS_REQ_S] = "req_s",
                                           NULL};
static const char *const kind_names[] = {[ANALYSIS_MAX] = "max",
                                         [ANALYSIS_MIN] = "min",
                                         [ANALYSIS_MAX_INCREASE] = "max_increase",
                                         [ANALYSIS_MAX_RATIO] = "max_ratio"};
static const char *const policy_names[] = {
    [ANALYSIS_ROLLBACK] = "rollback", [ANALYSIS_ABORT] = "abort", [ANALYSIS_PAUSE] = "pause", NULL};
static const char *const baseline_names[] = {
    [ANALYSIS_BASELINE_ALL] = "all", [ANALYSIS_BASELINE_SAME_TARGET] = "same_target", NULL};
static const char *const result_names[] = {[ANALYSIS_PASS] = "pass",
                                           [ANALYSIS_FAIL] = "fail",
                                           [ANALYSIS_INCONCLUSIVE] = "inconclusive",
                                           [ANALYSIS_ERROR] = "error"};
static const char *const state_names[] = {[ANALYSIS_GATE_RUNNING] = "running",
                                          [ANALYSIS_GATE_SUCCESSFUL] = "successful",
                                          [ANALYSIS_GATE_FAILED] = "failed",
                                          [ANALYSIS_GATE_INCONCLUSIVE] = "inconclusive",
                                          [ANALYSIS_GATE_STOPPED] = "stopped"};

const char *analysis_metric_name(enum analysis_metric m)
{
    return m < ANALYSIS_NMETRICS ? metric_names[m] : "?";
}

const char *analysis_kind_name(enum analysis_kind k)
{
    return k <= ANALYSIS_MAX_RATIO ? kind_names[k] : "?";
}

const char *analysis_policy_name(enum analysis_policy p)
{
    return p <= ANALYSIS_PAUSE ? policy_names[p] : "?";
}

const char *analysis_result_name(enum analysis_result r)
{
    return r <= ANALYSIS_ERROR ? result_names[r] : "?";
}

const char *analysis_gate_state_name(enum analysis_gate_state s)
{
    return s <= ANALYSIS_GATE_STOPPED ? state_names[s] : "?";
}

/* The unit of a metric's values, as verdicts and summaries give them. */
static const char *metric_unit(enum analysis_metric m)
{
    return m == ANALYSIS_ERROR_RATE ? "%" : m == ANALYSIS_REQ_S ? "req/s" : "ms";
}

/* A threshold's: max_increase in percentage points, max_ratio a ratio. */
static const char *threshold_unit(enum analysis_kind k, enum analysis_metric m)
{
    if (k == ANALYSIS_MAX_INCREASE)
        return "points";
    if (k == ANALYSIS_MAX_RATIO)
        return "ratio";
    return metric_unit(m);
}

/* ---- numbers for people ---- */

/* "1,203" */
static void fmt_count(char *out, size_t len, uint64_t n)
{
    char digits[32];
    size_t nd, i, o = 0;

    snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    nd = strlen(digits);
    for (i = 0; i < nd && o + 2 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* Three significant digits below 1000 ("4.8", "0.5", "12.5"), whole numbers with commas above
 * ("2,450"). */
static void fmt_num(char *out, size_t len, double v)
{
    if (!isfinite(v)) {
        snprintf(out, len, "%s", isnan(v) ? "unknown" : v > 0 ? "inf" : "-inf");
    } else if (fabs(v) >= 999.5) {
        char c[32];

        fmt_count(c, sizeof c, (uint64_t)llround(fabs(v)));
        snprintf(out, len, "%s%s", v < 0 ? "-" : "", c);
    } else {
        snprintf(out, len, "%.3g", v);
    }
}

/* A value with its unit: "4.8 %", "2,450 ms", "12 req/s". */
static void fmt_value(char *out, size_t len, enum analysis_metric m, double v)
{
    char n[40];

    fmt_num(n, sizeof n, v);
    snprintf(out, len, "%s %s", n, metric_unit(m));
}

/* ---- the spec: defaults, n3.json ---- */

static void rule_set(struct analysis_rule *r, const char *name, enum analysis_metric m,
                     enum analysis_kind k, double threshold)
{
    memset(r, 0, sizeof *r);
    r->name = xstrdup(name);
    r->metric = m;
    r->kind = k;
    r->threshold = threshold;
    r->baseline = ANALYSIS_BASELINE_ALL;
    r->confidence = 0.99;
}

static void spec_limits_default(struct analysis_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->interval_ms = 30000;
    spec->consecutive_error_limit = 4;
    spec->min_samples = 100;
    spec->on_failure = ANALYSIS_ROLLBACK;
}

/* NAMEL3SS.md's Deployment: error rate over 1 %, p95 over 2 s, or significantly worse than the
 * baseline. */
static void rules_default(struct analysis_spec *spec)
{
    spec->rules = xcalloc(3, sizeof *spec->rules);
    rule_set(&spec->rules[0], "error_rate", ANALYSIS_ERROR_RATE, ANALYSIS_MAX, 1);
    rule_set(&spec->rules[1], "p95", ANALYSIS_P95, ANALYSIS_MAX, 2000);
    rule_set(&spec->rules[2], "error_rate_vs_stable", ANALYSIS_ERROR_RATE, ANALYSIS_MAX_INCREASE,
             0);
    spec->nrules = 3;
}

void analysis_spec_default(struct analysis_spec *spec)
{
    spec_limits_default(spec);
    rules_default(spec);
}

void analysis_spec_done(struct analysis_spec *spec)
{
    size_t i;

    for (i = 0; i < spec->nrules; i++)
        free(spec->rules[i].name);
    free(spec->rules);
    memset(spec, 0, sizeof *spec);
}

void analysis_spec_copy(struct analysis_spec *to, const struct analysis_spec *from)
{
    size_t i;

    *to = *from;
    to->rules = xcalloc(from->nrules > 0 ? from->nrules : 1, sizeof *to->rules);
    for (i = 0; i < from->nrules; i++) {
        to->rules[i] = from->rules[i];
        to->rules[i].name = xstrdup(from->rules[i].name);
    }
}

static const char *const spec_keys[] = {"interval_seconds",
                                        "count",
                                        "initial_delay_seconds",
                                        "failure_limit",
                                        "inconclusive_limit",
                                        "consecutive_error_limit",
                                        "min_samples",
                                        "on_failure",
                                        "rules",
                                        NULL};
static const char *const rule_keys[] = {
    "metric",    "name",           "max_percent",    "min_percent", "max_ms",
    "min_ms",    "max_per_second", "min_per_second", "compare",     "max_increase",
    "max_ratio", "confidence",     "baseline",       NULL};
static const char *const compare_names[] = {"stable", NULL};

/* The threshold keys: which metrics take each, what they test, their range. */
enum metric_class { CLASS_ERROR, CLASS_LATENCY, CLASS_RATE };

static const struct test_key {
    const char *key;
    enum metric_class cls;
    enum analysis_kind kind;
    double min, max;
} test_keys[] = {
    {"max_percent", CLASS_ERROR, ANALYSIS_MAX, 0, 100},
    {"min_percent", CLASS_ERROR, ANALYSIS_MIN, 0, 100},
    {"max_ms", CLASS_LATENCY, ANALYSIS_MAX, 0, 3600000},
    {"min_ms", CLASS_LATENCY, ANALYSIS_MIN, 0, 3600000},
    {"max_per_second", CLASS_RATE, ANALYSIS_MAX, 0, 1e9},
    {"min_per_second", CLASS_RATE, ANALYSIS_MIN, 0, 1e9},
    {"max_increase", CLASS_ERROR, ANALYSIS_MAX_INCREASE, 0, 100},
    {"max_ratio", CLASS_LATENCY, ANALYSIS_MAX_RATIO, 1, 1000},
};
#define NTEST_KEYS (sizeof test_keys / sizeof test_keys[0])

static enum metric_class metric_class(enum analysis_metric m)
{
    return m == ANALYSIS_ERROR_RATE ? CLASS_ERROR
           : m == ANALYSIS_REQ_S    ? CLASS_RATE
                                    : CLASS_LATENCY;
}

/* What a metric's threshold keys are, for messages. */
static const char *class_keys(enum metric_class c)
{
    switch (c) {
    case CLASS_ERROR:
        return "\"max_percent\" or \"min_percent\" (a percentage: 1 for 1 %)";
    case CLASS_LATENCY:
        return "\"max_ms\" or \"min_ms\" (milliseconds)";
    case CLASS_RATE:
        return "\"max_per_second\" or \"min_per_second\" (requests a second)";
    }
    return "";
}

static const char *class_name(enum metric_class c)
{
    return c == CLASS_ERROR     ? "an error rate's"
           : c == CLASS_LATENCY ? "a latency's"
                                : "a request rate's";
}

static int get_enum(const struct cfg *c, const cJSON *o, const char *key, const char *const *names,
                    const char *what, int *out, struct err *err)
{
    const char *s = NULL, *hint;
    const cJSON *node;
    struct buf all;
    size_t i;
    int rc;

    if (cfg_get_string(c, o, key, false, &s, err) != 0)
        return -1;
    if (s == NULL)
        return 0;
    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    node = cJSON_GetObjectItemCaseSensitive(o, key);
    hint = cfg_suggest(s, names);
    if (hint != NULL)
        return cfg_error(c, err, node, "no %s \"%.40s\"; did you mean \"%s\"?", what, s, hint);
    buf_init(&all);
    for (i = 0; names[i] != NULL; i++)
        buf_addf(&all, "%s\"%s\"", i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ", names[i]);
    rc = cfg_error(c, err, node, "no %s \"%.40s\"; it is %s", what, s, all.data);
    buf_done(&all);
    return rc;
}

static int get_seconds(const struct cfg *c, const cJSON *o, const char *key, double min,
                       uint64_t *out_ms, struct err *err)
{
    double v = -1;

    if (cfg_get_number(c, o, key, false, min, 86400, &v, err) != 0)
        return -1;
    if (v >= 0)
        *out_ms = (uint64_t)llround(v * 1000.0);
    return 0;
}

static int get_uint(const struct cfg *c, const cJSON *o, const char *key, int64_t min, int64_t max,
                    unsigned *out, struct err *err)
{
    int64_t v = -1;

    if (cfg_get_int(c, o, key, false, min, max, &v, err) != 0)
        return -1;
    if (v >= 0)
        *out = (unsigned)v;
    return 0;
}

static int load_rule(const struct cfg *c, const cJSON *node, struct analysis_rule *r,
                     struct err *err)
{
    const char *name = NULL, *metric = NULL;
    const struct test_key *found = NULL;
    bool compare = false;
    int m = -1, v;
    enum metric_class cls;
    size_t i;

    memset(r, 0, sizeof *r);
    r->baseline = ANALYSIS_BASELINE_ALL;
    r->confidence = 0.99;
    if (!cJSON_IsObject(node))
        return cfg_error(c, err, node,
                         "expected an object (a rule: {\"metric\": \"error_rate\", "
                         "\"max_percent\": 1}), got %s",
                         cfg_type_name(node));
    if (cfg_get_string(c, node, "metric", true, &metric, err) != 0)
        return -1;
    for (i = 0; metric_names[i] != NULL; i++) {
        if (strcmp(metric_names[i], metric) == 0)
            m = (int)i;
    }
    if (m < 0) {
        const char *hint = cfg_suggest(metric, metric_names);

        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "metric"),
                         "no metric \"%.40s\"%s%s%s (the metrics: error_rate, p50, p95, p99, "
                         "req_s)",
                         metric, hint ? "; did you mean \"" : "", hint ? hint : "",
                         hint ? "\"?" : "");
    }
    r->metric = (enum analysis_metric)m;
    cls = metric_class(r->metric);
    /* A bare max or min would leave the unit to a guess (is 1 a fraction or 1 %?). */
    if (cfg_has(node, "max") || cfg_has(node, "min"))
        return cfg_key_error(
            c, err, cJSON_GetObjectItemCaseSensitive(node, cfg_has(node, "max") ? "max" : "min"),
            "a threshold says its unit in its key: %s takes %s", metric, class_keys(cls));
    if (cfg_check_object(c, node, rule_keys, err) != 0 ||
        cfg_get_string(c, node, "name", false, &name, err) != 0 ||
        get_enum(c, node, "compare", compare_names, "comparison with", &v, err) != 0)
        return -1;
    compare = cfg_has(node, "compare");
    for (i = 0; i < NTEST_KEYS; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(node, test_keys[i].key);
        bool cmp_key =
            test_keys[i].kind == ANALYSIS_MAX_INCREASE || test_keys[i].kind == ANALYSIS_MAX_RATIO;

        if (k == NULL)
            continue;
        if (test_keys[i].cls != cls)
            return cfg_key_error(c, err, k, "\"%s\" is %s threshold; %s takes %s%s",
                                 test_keys[i].key, class_name(test_keys[i].cls), metric,
                                 class_keys(cls),
                                 cls == CLASS_ERROR     ? ", or \"max_increase\" with \"compare\""
                                 : cls == CLASS_LATENCY ? ", or \"max_ratio\" with \"compare\""
                                                        : "");
        if (cmp_key && !compare)
            return cfg_key_error(c, err, k,
                                 "\"%s\" compares the candidate with the stable version: add "
                                 "\"compare\": \"stable\"",
                                 test_keys[i].key);
        if (!cmp_key && compare)
            return cfg_key_error(c, err, k,
                                 "a comparison with the stable version takes %s, not a "
                                 "threshold of its own (make a second rule for \"%s\")",
                                 cls == CLASS_ERROR ? "\"max_increase\" (percentage points)"
                                                    : "\"max_ratio\" (candidate / stable)",
                                 test_keys[i].key);
        if (found != NULL)
            return cfg_key_error(c, err, k,
                                 "a second test in one rule (\"%s\" and \"%s\"): a rule has "
                                 "one; write two rules",
                                 found->key, test_keys[i].key);
        found = &test_keys[i];
    }
    if (compare && cls == CLASS_RATE)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "compare"),
                         "request rates are not compared with the stable's (the router's weights "
                         "decide them); give req_s a \"min_per_second\" or \"max_per_second\"");
    if (compare && cls == CLASS_LATENCY && found == NULL)
        return cfg_error(c, err, node,
                         "a latency compared with the stable's needs \"max_ratio\" (candidate / "
                         "stable, e.g. 1.5)");
    if (!compare && found == NULL)
        return cfg_error(c, err, node, "a rule needs a test: %s, or \"compare\": \"stable\"%s",
                         class_keys(cls),
                         cls == CLASS_ERROR     ? " (with \"max_increase\")"
                         : cls == CLASS_LATENCY ? " with \"max_ratio\""
                                                : "");
    if (!compare && (cfg_has(node, "baseline") || cfg_has(node, "confidence")))
        return cfg_key_error(
            c, err,
            cJSON_GetObjectItemCaseSensitive(node,
                                             cfg_has(node, "baseline") ? "baseline" : "confidence"),
            "only a comparison with the stable version (\"compare\": \"stable\") takes this key");
    if (cfg_has(node, "confidence") && cls != CLASS_ERROR)
        return cfg_key_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "confidence"),
                             "only the error rate's comparison is a statistical test; a "
                             "latency's is a ratio (\"max_ratio\") and takes no confidence");
    if (found != NULL) {
        if (cfg_get_number(c, node, found->key, true, found->min, found->max, &r->threshold, err) !=
            0)
            return -1;
        r->kind = found->kind;
    } else {
        r->kind = ANALYSIS_MAX_INCREASE; /* error_rate compared, max_increase 0 */
        r->threshold = 0;
    }
    v = ANALYSIS_BASELINE_ALL;
    if (get_enum(c, node, "baseline", baseline_names, "baseline", &v, err) != 0 ||
        cfg_get_number(c, node, "confidence", false, 0.5, 0.9999, &r->confidence, err) != 0)
        return -1;
    r->baseline = (enum analysis_baseline)v;
    if (name != NULL) {
        size_t len = strlen(name);

        for (i = 0; i < len && (unsigned char)name[i] >= 0x20 && name[i] != 0x7f; i++)
            ;
        if (len == 0 || len > ANALYSIS_RULE_NAME_MAX || i < len)
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "name"),
                             "a rule's name is 1 to %d printable characters",
                             ANALYSIS_RULE_NAME_MAX);
        r->name = xstrdup(name);
    } else if (compare) {
        r->name = xasprintf("%s_vs_stable", metric_names[r->metric]);
    } else {
        r->name = xstrdup(metric_names[r->metric]);
    }
    return 0;
}

static int load_rules(const struct cfg *c, const cJSON *node, struct analysis_spec *spec,
                      struct err *err)
{
    const cJSON *list = cfg_get(c, node, "rules", cJSON_Array, true, err), *item;
    size_t n, j;

    if (list == NULL)
        return -1;
    n = (size_t)cJSON_GetArraySize(list);
    if (n == 0)
        return cfg_error(c, err, list,
                         "no rule: an analysis that judges nothing passes nothing; leave "
                         "\"rules\" out for the defaults (error_rate max 1 %%, p95 max 2000 ms, "
                         "error rate not significantly worse than the stable's)");
    if (n > ANALYSIS_RULES_MAX)
        return cfg_error(c, err, list, "%zu rules, more than %d", n, ANALYSIS_RULES_MAX);
    spec->rules = xcalloc(n, sizeof *spec->rules);
    cJSON_ArrayForEach(item, list)
    {
        struct analysis_rule *r = &spec->rules[spec->nrules];

        if (load_rule(c, item, r, err) != 0) {
            free(r->name);
            return -1;
        }
        spec->nrules++;
        for (j = 0; j + 1 < spec->nrules; j++) {
            if (strcmp(spec->rules[j].name, r->name) == 0)
                return cfg_error(
                    c, err,
                    cfg_has(item, "name") ? cJSON_GetObjectItemCaseSensitive(item, "name") : item,
                    "a second rule named \"%s\" (give each a \"name\" of its own)", r->name);
        }
    }
    return 0;
}

int analysis_spec_load(const struct cfg *c, const cJSON *node, struct analysis_spec *spec,
                       struct err *err)
{
    int policy = ANALYSIS_ROLLBACK;
    int64_t min_samples = -1;

    spec_limits_default(spec);
    if (!cJSON_IsObject(node))
        return cfg_error(c, err, node, "expected an object (an analysis), got %s",
                         cfg_type_name(node));
    if (cfg_check_object(c, node, spec_keys, err) != 0 ||
        get_seconds(c, node, "interval_seconds", 1, &spec->interval_ms, err) != 0 ||
        get_seconds(c, node, "initial_delay_seconds", 0, &spec->initial_delay_ms, err) != 0 ||
        get_uint(c, node, "count", 0, 100000, &spec->count, err) != 0 ||
        get_uint(c, node, "failure_limit", 0, 100000, &spec->failure_limit, err) != 0 ||
        get_uint(c, node, "inconclusive_limit", 0, 100000, &spec->inconclusive_limit, err) != 0 ||
        get_uint(c, node, "consecutive_error_limit", 0, 100000, &spec->consecutive_error_limit,
                 err) != 0 ||
        cfg_get_int(c, node, "min_samples", false, 1, 1000000000, &min_samples, err) != 0 ||
        get_enum(c, node, "on_failure", policy_names, "failure policy", &policy, err) != 0)
        goto fail;
    if (min_samples > 0)
        spec->min_samples = (uint64_t)min_samples;
    spec->on_failure = (enum analysis_policy)policy;
    if (spec->count > 0 && spec->failure_limit >= spec->count)
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(node, "failure_limit"),
                         "a failure_limit of %u with a count of %u never fails the gate: at most "
                         "%u",
                         spec->failure_limit, spec->count, spec->count - 1);
    if (cfg_has(node, "rules")) {
        if (load_rules(c, node, spec, err) != 0)
            goto fail;
    } else {
        rules_default(spec);
    }
    return 0;
fail:
    analysis_spec_done(spec);
    return -1;
}

/* ---- judging ---- */

void analysis_figures_sum(const struct analysis_instance *inst, size_t n,
                          struct metricsrc_figures *out)
{
    double errors = 0, with_error = 0;
    size_t i, busy = 0, last_busy = 0;
    bool errors_all = true;
    struct buf why;

    memset(out, 0, sizeof *out);
    buf_init(&why);
    out->rate_known = n > 0;
    for (i = 0; i < n; i++) {
        const struct metricsrc_figures *f = &inst[i].f;

        if (!f->rate_known) {
            out->rate_known = false;
            if (f->last_failed)
                out->last_failed = true;
        } else {
            out->req_s += f->req_s;
        }
        out->samples += f->samples;
        if (f->samples > 0) {
            busy++;
            last_busy = i;
            if (f->error_known) {
                errors += f->error_rate * (double)f->samples;
                with_error += (double)f->samples;
            } else {
                errors_all = false;
            }
        }
        if (f->span_s > out->span_s)
            out->span_s = f->span_s;
        out->points += f->points;
        out->resets += f->resets;
        if (f->why[0] != '\0')
            buf_addf(&why, "%s%s %s: %s", why.len ? "; " : "", inst[i].target,
                     hs_slot_name(inst[i].slot), f->why);
    }
    if (n == 0)
        buf_adds(&why, "no instance");
    if (with_error > 0 && errors_all) {
        out->error_known = true;
        out->error_rate = errors / with_error;
    }
    if (busy == 1 && inst[last_busy].f.latency_known) {
        const struct metricsrc_figures *f = &inst[last_busy].f;

        out->latency_known = true;
        out->p50_s = f->p50_s;
        out->p95_s = f->p95_s;
        out->p99_s = f->p99_s;
        out->latency_capped = f->latency_capped;
    } else if (busy > 1) {
        buf_addf(&why, "%sthe quantiles of %zu instances together need their histograms",
                 why.len ? "; " : "", busy);
    }
    snprintf(out->why, sizeof out->why, "%s", why.data);
    buf_done(&why);
}

/* A metric's value in its unit; capped: it is a lower bound (beyond the histogram). Capped
 * quantiles all sit at the highest finite bound, which is where p99 is whenever any quantile
 * is capped; a quantile below p99 is not capped. */
static bool metric_value(const struct metricsrc_figures *f, enum analysis_metric m, double *v,
                         bool *capped)
{
    *capped = false;
    switch (m) {
    case ANALYSIS_ERROR_RATE:
        *v = f->error_rate * 100.0;
        return f->error_known;
    case ANALYSIS_REQ_S:
        *v = f->req_s;
        return f->rate_known;
    case ANALYSIS_P50:
        *v = f->p50_s * 1000.0;
        break;
    case ANALYSIS_P95:
        *v = f->p95_s * 1000.0;
        break;
    case ANALYSIS_P99:
        *v = f->p99_s * 1000.0;
        break;
    default:
        return false;
    }
    *capped = f->latency_known && f->latency_capped && *v >= f->p99_s * 1000.0;
    return f->latency_known;
}

double analysis_z_critical(double confidence)
{
    double lo = -40, hi = 40;
    int i;

    /* Phi^-1 by bisection on Phi(x) = erfc(-x / sqrt 2) / 2: exact to double precision in
     * 100 steps, and no table to get wrong. */
    for (i = 0; i < 100; i++) {
        double mid = (lo + hi) / 2;

        if (0.5 * erfc(-mid / sqrt(2.0)) < confidence)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

struct judging {
    const struct analysis_spec *spec;
    const struct analysis_input *in;
    struct metricsrc_figures stable_sum; /* when in->stable_all is NULL */
    const struct metricsrc_figures *stable_all;
};

static void set_reason(struct analysis_verdict *v, enum analysis_result r, const char *test,
                       char *reason)
{
    v->result = r;
    free(v->test);
    v->test = xstrdup(test);
    free(v->reason);
    v->reason = reason;
}

static char *too_few(uint64_t n, uint64_t min, const char *whose)
{
    char a[32], b[32];

    fmt_count(a, sizeof a, n);
    fmt_count(b, sizeof b, min);
    return xasprintf("%s%s request%s in the window, fewer than the %s a verdict needs", whose, a,
                     n == 1 ? "" : "s", b);
}

/* The figures a comparison rule compares with, or NULL with why. */
static const struct metricsrc_figures *baseline_of(const struct judging *j,
                                                   const struct analysis_rule *r,
                                                   const struct analysis_instance *ci, char **why)
{
    size_t i;

    if (r->baseline == ANALYSIS_BASELINE_SAME_TARGET) {
        for (i = 0; i < j->in->nstable; i++) {
            if (strcmp(j->in->stable[i].target, ci->target) == 0)
                return &j->in->stable[i].f;
        }
        *why = xasprintf("no stable instance on %s to compare with", ci->target);
        return NULL;
    }
    if (j->stable_all == NULL) {
        *why = xstrdup("no stable instance to compare with");
        return NULL;
    }
    return j->stable_all;
}

static void judge_compare(const struct judging *j, const struct analysis_rule *r,
                          const struct analysis_instance *ci, double val, bool capped,
                          struct analysis_verdict *v)
{
    const struct metricsrc_figures *bf;
    char *why = NULL, a[64], b[64], t[256];
    const char *mname = metric_names[r->metric];
    double bval;
    bool bcapped;

    bf = baseline_of(j, r, ci, &why);
    if (bf == NULL) {
        set_reason(v, ANALYSIS_INCONCLUSIVE, "no baseline", why);
        return;
    }
    v->baseline_found = true;
    v->baseline_samples = bf->samples;
    v->baseline_known = metric_value(bf, r->metric, &bval, &bcapped);
    v->baseline = v->baseline_known ? bval : NAN;
    if (!v->baseline_known) {
        set_reason(
            v, bf->last_failed ? ANALYSIS_ERROR : ANALYSIS_INCONCLUSIVE,
            bf->last_failed ? "the source failed" : "unknown",
            xasprintf("the stable's %s is unknown%s%s", mname, bf->why[0] ? ": " : "", bf->why));
        return;
    }
    if (bf->samples < j->spec->min_samples) {
        snprintf(t, sizeof t, "min_samples (stable) %llu < %llu", (unsigned long long)bf->samples,
                 (unsigned long long)j->spec->min_samples);
        set_reason(v, ANALYSIS_INCONCLUSIVE, t,
                   too_few(bf->samples, j->spec->min_samples, "the stable has "));
        return;
    }
    if (r->kind == ANALYSIS_MAX_INCREASE) {
        double pc = ci->f.error_rate, ps = bf->error_rate, nc = (double)ci->f.samples,
               ns = (double)bf->samples, d = r->threshold / 100.0, se, z, zc, num;
        char test[256];

        /* One-sided two-proportion z-test of H0: pc - ps <= d, with Yates' continuity
         * correction so that a handful of errors on few requests is not called significant;
         * pooled variance for d = 0 (the classic test), unpooled otherwise. */
        if (d == 0) {
            double p = (pc * nc + ps * ns) / (nc + ns);

            se = sqrt(p * (1 - p) * (1 / nc + 1 / ns));
        } else {
            se = sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns);
        }
        num = pc - ps - d - 0.5 * (1 / nc + 1 / ns);
        z = se > 0 ? num / se : num > 0 ? INFINITY : 0;
        zc = analysis_z_critical(r->confidence);
        v->statistic = z;
        fmt_num(a, sizeof a, z);
        fmt_num(b, sizeof b, zc);
        snprintf(test, sizeof test, "two-proportion z-test z=%s %s %s (one-sided, %g %%)", a,
                 z > zc ? ">" : "<=", b, r->confidence * 100);
        set_reason(v, z > zc ? ANALYSIS_FAIL : ANALYSIS_PASS, test, NULL);
        return;
    }
    /* max_ratio */
    if (bval <= 0) {
        fmt_value(b, sizeof b, r->metric, bval);
        set_reason(v, ANALYSIS_INCONCLUSIVE, "no ratio",
                   xasprintf("the stable's %s is %s: no ratio to it", mname, b));
        return;
    }
    v->statistic = val / bval;
    fmt_num(a, sizeof a, v->statistic);
    fmt_num(b, sizeof b, r->threshold);
    if (v->statistic > r->threshold && !bcapped) {
        /* The candidate's capped value is a lower bound: the ratio is at least this. */
        snprintf(t, sizeof t, "ratio %s%s > %s", capped ? ">=" : "", a, b);
        set_reason(v, ANALYSIS_FAIL, t, NULL);
    } else if (v->statistic <= r->threshold && !capped) {
        /* The stable's capped value is a lower bound: the ratio is at most this. */
        snprintf(t, sizeof t, "ratio %s%s <= %s", bcapped ? "<=" : "", a, b);
        set_reason(v, ANALYSIS_PASS, t, NULL);
    } else {
        set_reason(v, ANALYSIS_INCONCLUSIVE, "ratio beyond the histogram",
                   xasprintf("the %s %s beyond the latency histogram's highest bound: the ratio "
                             "(about %s) cannot be told against %s; give the histogram a higher "
                             "bucket",
                             mname,
                             capped && bcapped ? "of both sides is"
                             : capped          ? "of the candidate is"
                                               : "of the stable is",
                             a, b));
    }
}

static void judge_one(const struct judging *j, const struct analysis_rule *r,
                      const struct analysis_instance *ci, struct analysis_verdict *v)
{
    const struct metricsrc_figures *f = &ci->f;
    const char *mname = metric_names[r->metric];
    bool capped, needs_samples = r->metric != ANALYSIS_REQ_S;
    double val;
    char a[64], b[64], t[256];

    v->target = xstrdup(ci->target);
    v->slot = ci->slot;
    v->samples = f->samples;
    v->value_known = metric_value(f, r->metric, &val, &capped);
    v->value = v->value_known ? val : NAN;
    if (!v->value_known) {
        char *few = needs_samples && f->samples < j->spec->min_samples
                        ? too_few(f->samples, j->spec->min_samples, "")
                        : NULL;

        set_reason(v, f->last_failed ? ANALYSIS_ERROR : ANALYSIS_INCONCLUSIVE,
                   f->last_failed ? "the source failed" : "unknown",
                   xasprintf("%s unknown%s%s%s%s", mname, f->why[0] ? ": " : "", f->why,
                             few ? "; " : "", few ? few : ""));
        free(few);
        return;
    }
    if (needs_samples && f->samples < j->spec->min_samples) {
        snprintf(t, sizeof t, "min_samples %llu < %llu", (unsigned long long)f->samples,
                 (unsigned long long)j->spec->min_samples);
        set_reason(v, ANALYSIS_INCONCLUSIVE, t, too_few(f->samples, j->spec->min_samples, ""));
        return;
    }
    if (r->kind == ANALYSIS_MAX_INCREASE || r->kind == ANALYSIS_MAX_RATIO) {
        judge_compare(j, r, ci, val, capped, v);
        return;
    }
    fmt_value(a, sizeof a, r->metric, val);
    fmt_value(b, sizeof b, r->metric, r->threshold);
    if (r->kind == ANALYSIS_MAX) {
        if (val > r->threshold) {
            snprintf(t, sizeof t, "threshold %s%s > %s", capped ? ">=" : "", a, b);
            set_reason(v, ANALYSIS_FAIL, t, NULL);
        } else if (!capped) {
            snprintf(t, sizeof t, "threshold %s <= %s", a, b);
            set_reason(v, ANALYSIS_PASS, t, NULL);
        } else {
            set_reason(v, ANALYSIS_INCONCLUSIVE, "beyond the histogram",
                       xasprintf("%s is beyond the latency histogram's highest bound (at least "
                                 "%s): cannot tell against a max of %s; give the histogram a "
                                 "bucket above it",
                                 mname, a, b));
        }
        return;
    }
    /* min: a capped value is a lower bound, which is all a min needs */
    snprintf(t, sizeof t, "threshold %s%s %s %s", capped ? ">=" : "", a,
             val < r->threshold ? "<" : ">=", b);
    set_reason(v, val < r->threshold ? ANALYSIS_FAIL : ANALYSIS_PASS, t, NULL);
}

static void verdict_init(struct analysis_verdict *v, const struct analysis_rule *r, uint64_t at_us,
                         uint64_t wall_us)
{
    memset(v, 0, sizeof *v);
    v->rule = xstrdup(r->name);
    v->metric = r->metric;
    v->kind = r->kind;
    v->threshold = r->threshold;
    v->value = NAN;
    v->baseline = NAN;
    v->statistic = NAN;
    v->slot = HS_NSLOTS;
    v->at_us = at_us;
    v->wall_us = wall_us;
}

/* A rule's name as n3.json gives it when it has no "name": not worth repeating. */
static bool default_name(const char *name, enum analysis_metric m)
{
    size_t n = strlen(metric_names[m]);

    return strncmp(name, metric_names[m], n) == 0 &&
           (name[n] == '\0' || strcmp(name + n, "_vs_stable") == 0);
}

/* One verdict in a line: "t2 green: error_rate 4.8 % > 1 % over 1,203 requests". */
static void verdict_line(const struct analysis_verdict *v, struct buf *out)
{
    const char *mname = metric_names[v->metric];
    char a[64], b[64], n1[64], n2[32];

    if (v->target != NULL)
        buf_addf(out, "%s %s: ", v->target, hs_slot_name(v->slot));
    if (!default_name(v->rule, v->metric))
        buf_addf(out, "%s: ", v->rule);
    fmt_count(n1, sizeof n1, v->samples);
    fmt_count(n2, sizeof n2, v->baseline_samples);
    if (v->result == ANALYSIS_INCONCLUSIVE || v->result == ANALYSIS_ERROR) {
        if (v->reason != NULL && strncmp(v->reason, mname, strlen(mname)) == 0)
            buf_adds(out, v->reason);
        else
            buf_addf(out, "%s %s: %s", mname,
                     v->result == ANALYSIS_ERROR ? "error" : "inconclusive",
                     v->reason ? v->reason : "");
        return;
    }
    fmt_value(a, sizeof a, v->metric, v->value);
    if (v->kind == ANALYSIS_MAX_INCREASE) {
        fmt_value(b, sizeof b, v->metric, v->baseline);
        buf_addf(out, "%s %s against the stable's %s over %s and %s requests", mname, a, b, n1, n2);
        if (v->threshold > 0) {
            fmt_num(b, sizeof b, v->threshold);
            buf_addf(out, ", %s more than %s points (%s)",
                     v->result == ANALYSIS_FAIL ? "significantly" : "not significantly", b,
                     v->test);
        } else {
            buf_addf(out, ": %s (%s)",
                     v->result == ANALYSIS_FAIL ? "significantly higher"
                                                : "not significantly higher",
                     v->test);
        }
        return;
    }
    if (v->kind == ANALYSIS_MAX_RATIO) {
        char r[64];

        fmt_value(b, sizeof b, v->metric, v->baseline);
        fmt_num(r, sizeof r, v->statistic);
        fmt_num(n1, sizeof n1, v->threshold);
        buf_addf(out, "%s %s is %s x the stable's %s (%s, max %s x)", mname, a, r, b, v->test, n1);
        return;
    }
    /* "threshold 4.8 % > 1 %" without its first word */
    buf_addf(out, "%s %s over %s request%s", mname, v->test + strlen("threshold "), n1,
             v->samples == 1 ? "" : "s");
}

static void summarize(struct analysis_measurement *m, size_t nrules, size_t ninst)
{
    struct buf s;
    size_t i, n = 0, first = 0;
    uint64_t fewest = UINT64_MAX;

    buf_init(&s);
    for (i = 0; i < m->nverdicts; i++) {
        if (m->verdicts[i].result == m->result && n++ == 0)
            first = i;
        if (m->verdicts[i].target != NULL && m->verdicts[i].samples < fewest)
            fewest = m->verdicts[i].samples;
    }
    if (m->result == ANALYSIS_PASS) {
        char c[32];

        fmt_count(c, sizeof c, fewest == UINT64_MAX ? 0 : fewest);
        buf_addf(&s, "%zu rule%s pass on %zu instance%s (the fewest requests: %s)", nrules,
                 nrules == 1 ? "" : "s", ninst, ninst == 1 ? "" : "s", c);
    } else if (m->verdicts[first].target == NULL && m->result == ANALYSIS_ERROR) {
        buf_adds(&s, m->verdicts[first].reason);
    } else {
        verdict_line(&m->verdicts[first], &s);
        if (n > 1)
            buf_addf(&s, " (and %zu more %s)", n - 1,
                     m->result == ANALYSIS_FAIL    ? "failed"
                     : m->result == ANALYSIS_ERROR ? "errors"
                                                   : "inconclusive");
    }
    m->summary = buf_detach(&s, NULL);
    buf_done(&s); /* detach leaves it ready for more */
}

struct analysis_measurement *analysis_judge(const struct analysis_spec *spec,
                                            const struct analysis_input *in, uint64_t at_us,
                                            uint64_t wall_us)
{
    struct analysis_measurement *m = xcalloc(1, sizeof *m);
    struct judging j = {.spec = spec, .in = in};
    size_t r, i, k = 0;
    bool any[ANALYSIS_ERROR + 1] = {false};

    m->at_us = at_us;
    m->wall_us = wall_us;
    if (in->error != NULL || in->ncandidate == 0) {
        m->verdicts = xcalloc(spec->nrules > 0 ? spec->nrules : 1, sizeof *m->verdicts);
        for (r = 0; r < spec->nrules; r++) {
            struct analysis_verdict *v = &m->verdicts[m->nverdicts++];

            verdict_init(v, &spec->rules[r], at_us, wall_us);
            if (in->error != NULL)
                set_reason(v, ANALYSIS_ERROR, "the source failed",
                           xasprintf("the metric source failed: %s", in->error));
            else
                set_reason(v, ANALYSIS_INCONCLUSIVE, "no candidate",
                           xstrdup("no candidate instance in the measurement"));
        }
        m->result = in->error != NULL ? ANALYSIS_ERROR : ANALYSIS_INCONCLUSIVE;
        if (m->nverdicts > 0)
            summarize(m, spec->nrules, 0);
        else
            m->summary = xstrdup(in->error != NULL ? in->error : "no candidate instance");
        return m;
    }
    if (in->stable_all != NULL) {
        j.stable_all = in->stable_all;
    } else if (in->nstable > 0) {
        analysis_figures_sum(in->stable, in->nstable, &j.stable_sum);
        j.stable_all = &j.stable_sum;
    }
    m->verdicts = xcalloc(spec->nrules * in->ncandidate + 1, sizeof *m->verdicts);
    for (i = 0; i < in->ncandidate; i++) {
        for (r = 0; r < spec->nrules; r++) {
            struct analysis_verdict *v = &m->verdicts[k++];

            verdict_init(v, &spec->rules[r], at_us, wall_us);
            judge_one(&j, &spec->rules[r], &in->candidate[i], v);
            any[v->result] = true;
        }
    }
    m->nverdicts = k;
    m->result = any[ANALYSIS_FAIL]           ? ANALYSIS_FAIL
                : any[ANALYSIS_ERROR]        ? ANALYSIS_ERROR
                : any[ANALYSIS_INCONCLUSIVE] ? ANALYSIS_INCONCLUSIVE
                                             : ANALYSIS_PASS;
    summarize(m, spec->nrules, in->ncandidate);
    return m;
}

void analysis_measurement_free(struct analysis_measurement *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->nverdicts; i++) {
        free(m->verdicts[i].rule);
        free(m->verdicts[i].test);
        free(m->verdicts[i].reason);
        free(m->verdicts[i].target);
    }
    free(m->verdicts);
    free(m->summary);
    free(m);
}

/* ---- JSON ---- */

static void add_number(cJSON *o, const char *key, bool known, double v)
{
    if (known && isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_string(cJSON *o, const char *key, const char *s)
{
    if (s != NULL)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

/* "2024-05-01T12:00:03.250Z" */
static void add_time(cJSON *o, uint64_t wall_us, uint64_t at_us)
{
    time_t t = (time_t)(wall_us / 1000000u);
    struct tm tm;
    char s[40], iso[32];

    if (gmtime_r(&t, &tm) != NULL && strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
        snprintf(s, sizeof s, "%s.%03uZ", iso, (unsigned)(wall_us / 1000u % 1000u));
        cJSON_AddStringToObject(o, "time", s);
    } else {
        cJSON_AddNullToObject(o, "time");
    }
    cJSON_AddNumberToObject(o, "at_ms", (double)(at_us / 1000u));
}

cJSON *analysis_verdict_json(const struct analysis_verdict *v)
{
    cJSON *o = cJSON_CreateObject();
    bool cmp = v->kind == ANALYSIS_MAX_INCREASE || v->kind == ANALYSIS_MAX_RATIO;

    cJSON_AddStringToObject(o, "rule", v->rule);
    cJSON_AddStringToObject(o, "metric", metric_names[v->metric]);
    cJSON_AddStringToObject(o, "kind", kind_names[v->kind]);
    cJSON_AddStringToObject(o, "result", result_names[v->result]);
    add_number(o, "value", v->value_known, v->value);
    cJSON_AddStringToObject(o, "unit", metric_unit(v->metric));
    cJSON_AddNumberToObject(o, "threshold", v->threshold);
    cJSON_AddStringToObject(o, "threshold_unit", threshold_unit(v->kind, v->metric));
    add_number(o, "baseline", cmp && v->baseline_known, v->baseline);
    add_number(o, "baseline_samples", cmp && v->baseline_found, (double)v->baseline_samples);
    add_number(o, "statistic", true, v->statistic);
    add_string(o, "test", v->test);
    add_string(o, "reason", v->reason);
    add_string(o, "target", v->target);
    add_string(o, "slot", v->target != NULL ? hs_slot_name(v->slot) : NULL);
    add_number(o, "samples", v->target != NULL, (double)v->samples);
    add_time(o, v->wall_us, v->at_us);
    return o;
}

cJSON *analysis_measurement_json(const struct analysis_measurement *m)
{
    cJSON *o = cJSON_CreateObject(), *a;
    size_t i;

    cJSON_AddNumberToObject(o, "seq", m->seq);
    cJSON_AddStringToObject(o, "result", result_names[m->result]);
    cJSON_AddStringToObject(o, "summary", m->summary);
    add_time(o, m->wall_us, m->at_us);
    a = cJSON_AddArrayToObject(o, "verdicts");
    for (i = 0; i < m->nverdicts; i++)
        cJSON_AddItemToArray(a, analysis_verdict_json(&m->verdicts[i]));
    return o;
}

/* ---- the gate ---- */

struct analysis_gate {
    struct loop *loop;
    struct analysis_spec spec;
    analysis_measure_fn measure;
    void *measure_arg;
    analysis_verdict_fn on_verdict;
    analysis_end_fn on_end;
    void *arg;
    struct loop_timer *timer;
    enum analysis_gate_state state;
    char *reason;
    unsigned seq; /* the newest measurement asked for */
    bool pending; /* ... and not answered yet */
    struct analysis_gate_counts counts;
    unsigned counted; /* measurements that count towards count (not errors) */
    struct analysis_measurement *hist[ANALYSIS_HISTORY_MAX];
    size_t hstart, hlen;
    /* Callbacks may free the gate: inside one, the free waits until the outermost call of
     * ours returns. */
    unsigned depth;
    bool freed;
};

static void gate_destroy(struct analysis_gate *g)
{
    size_t i;

    loop_timer_free(g->timer);
    for (i = 0; i < g->hlen; i++)
        analysis_measurement_free(g->hist[(g->hstart + i) % ANALYSIS_HISTORY_MAX]);
    analysis_spec_done(&g->spec);
    free(g->reason);
    free(g);
}

static void enter(struct analysis_gate *g)
{
    g->depth++;
}

/* Leave one of our calls: false when the gate is gone. */
static bool leave(struct analysis_gate *g)
{
    if (--g->depth == 0 && g->freed) {
        gate_destroy(g);
        return false;
    }
    return !g->freed;
}

static void set_state(struct analysis_gate *g, enum analysis_gate_state st, char *reason)
{
    g->state = st;
    free(g->reason);
    g->reason = reason;
    g->pending = false;
    loop_timer_stop(g->timer);
}

static void keep(struct analysis_gate *g, struct analysis_measurement *m)
{
    if (g->hlen == ANALYSIS_HISTORY_MAX) {
        analysis_measurement_free(g->hist[g->hstart]);
        g->hist[g->hstart] = m;
        g->hstart = (g->hstart + 1) % ANALYSIS_HISTORY_MAX;
    } else {
        g->hist[(g->hstart + g->hlen++) % ANALYSIS_HISTORY_MAX] = m;
    }
}

/* Argo Rollouts' assessMetricStatus, in its order; and no success without a pass. */
static void assess(struct analysis_gate *g, const struct analysis_measurement *m)
{
    const struct analysis_spec *s = &g->spec;
    const struct analysis_gate_counts *c = &g->counts;

    if (c->failed > s->failure_limit) {
        if (s->failure_limit == 0)
            set_state(g, ANALYSIS_GATE_FAILED, xasprintf("a measurement failed: %s", m->summary));
        else
            set_state(g, ANALYSIS_GATE_FAILED,
                      xasprintf("%u measurements failed, more than the failure_limit of %u; "
                                "the last: %s",
                                c->failed, s->failure_limit, m->summary));
    } else if (c->inconclusive > s->inconclusive_limit) {
        if (s->inconclusive_limit == 0)
            set_state(g, ANALYSIS_GATE_INCONCLUSIVE,
                      xasprintf("a measurement was inconclusive: %s", m->summary));
        else
            set_state(g, ANALYSIS_GATE_INCONCLUSIVE,
                      xasprintf("%u measurements were inconclusive, more than the "
                                "inconclusive_limit of %u; the last: %s",
                                c->inconclusive, s->inconclusive_limit, m->summary));
    } else if (c->consecutive_errors > s->consecutive_error_limit) {
        set_state(g, ANALYSIS_GATE_FAILED,
                  xasprintf("the metric source failed %u times in a row, more than the "
                            "consecutive_error_limit of %u; the last: %s",
                            c->consecutive_errors, s->consecutive_error_limit, m->summary));
    } else if (s->count > 0 && g->counted >= s->count) {
        if (c->passed > 0)
            set_state(g, ANALYSIS_GATE_SUCCESSFUL,
                      xasprintf("%u of %u measurements taken: %u passed, %u failed, %u "
                                "inconclusive (and %u errors)",
                                g->counted, s->count, c->passed, c->failed, c->inconclusive,
                                c->errors));
        else
            set_state(g, ANALYSIS_GATE_INCONCLUSIVE,
                      xasprintf("%u measurements taken and none passed; the last: %s", g->counted,
                                m->summary));
    }
}

/* A judged measurement: kept, counted, told, assessed. */
static void record(struct analysis_gate *g, struct analysis_measurement *m)
{
    struct analysis_gate_counts *c = &g->counts;

    keep(g, m);
    c->taken++;
    switch (m->result) {
    case ANALYSIS_PASS:
        c->passed++;
        break;
    case ANALYSIS_FAIL:
        c->failed++;
        break;
    case ANALYSIS_INCONCLUSIVE:
        c->inconclusive++;
        break;
    case ANALYSIS_ERROR:
        c->errors++;
        break;
    }
    if (m->result == ANALYSIS_ERROR) {
        c->consecutive_errors++;
    } else {
        c->consecutive_errors = 0;
        g->counted++;
    }
    if (g->on_verdict != NULL)
        g->on_verdict(g, m, g->arg);
    /* The callback may have stopped or freed the gate. */
    if (g->freed || g->state != ANALYSIS_GATE_RUNNING)
        return;
    assess(g, m);
    if (g->state != ANALYSIS_GATE_RUNNING && g->on_end != NULL)
        g->on_end(g, g->state, g->reason, g->arg);
}

static void judge_and_record(struct analysis_gate *g, const struct analysis_input *in)
{
    struct analysis_measurement *m =
        analysis_judge(&g->spec, in, loop_now_us(g->loop), loop_wall_us(g->loop));

    m->seq = g->seq;
    record(g, m);
}

static void tick(void *arg)
{
    struct analysis_gate *g = arg;

    enter(g);
    if (g->pending) {
        char d[32], why[80];
        struct analysis_input in = {.error = why};

        fmt_duration(d, sizeof d, g->spec.interval_ms * 1000u);
        snprintf(why, sizeof why, "no answer within %s (the interval)", d);
        g->pending = false;
        judge_and_record(g, &in);
    }
    if (!g->freed && g->state == ANALYSIS_GATE_RUNNING) {
        g->seq++;
        g->pending = true;
        /* Armed before asking: an answer given at once may end the gate and stop it. */
        loop_timer_start(g->timer, g->spec.interval_ms);
        g->measure(g, g->seq, g->measure_arg);
    }
    leave(g);
}

struct analysis_gate *analysis_gate_new(struct loop *loop, const struct analysis_spec *spec,
                                        analysis_measure_fn measure, void *measure_arg,
                                        analysis_verdict_fn on_verdict, analysis_end_fn on_end,
                                        void *arg)
{
    struct analysis_gate *g = xcalloc(1, sizeof *g);

    if (spec->interval_ms == 0 || spec->nrules == 0 || measure == NULL)
        fatal("analysis_gate_new: a spec with an interval and rules, and a measure function");
    g->loop = loop;
    analysis_spec_copy(&g->spec, spec);
    g->measure = measure;
    g->measure_arg = measure_arg;
    g->on_verdict = on_verdict;
    g->on_end = on_end;
    g->arg = arg;
    g->state = ANALYSIS_GATE_RUNNING;
    g->reason = xstrdup("");
    g->timer = loop_timer_new(loop, tick, g);
    loop_timer_start(g->timer, spec->initial_delay_ms);
    return g;
}

int analysis_gate_measured(struct analysis_gate *g, unsigned seq, const struct analysis_input *in)
{
    if (g->freed || g->state != ANALYSIS_GATE_RUNNING || !g->pending || seq != g->seq)
        return -1;
    g->pending = false;
    enter(g);
    judge_and_record(g, in);
    leave(g);
    return 0;
}

int analysis_gate_measure_failed(struct analysis_gate *g, unsigned seq, const char *why)
{
    struct analysis_input in = {.error = why != NULL && why[0] != '\0' ? why : "unknown error"};

    return analysis_gate_measured(g, seq, &in);
}

void analysis_gate_stop(struct analysis_gate *g)
{
    const struct analysis_gate_counts *c = &g->counts;

    if (g->state != ANALYSIS_GATE_RUNNING)
        return;
    if (g->spec.count == 0 && c->passed > 0)
        set_state(g, ANALYSIS_GATE_SUCCESSFUL,
                  xasprintf("stopped after %u measurements: %u passed, %u failed, %u "
                            "inconclusive (and %u errors), within the limits",
                            g->counted, c->passed, c->failed, c->inconclusive, c->errors));
    else if (g->spec.count == 0)
        set_state(g, ANALYSIS_GATE_STOPPED,
                  xasprintf("stopped after %u measurements, none passed", c->taken));
    else
        set_state(g, ANALYSIS_GATE_STOPPED,
                  xasprintf("stopped after %u of %u measurements", g->counted, g->spec.count));
}

void analysis_gate_free(struct analysis_gate *g)
{
    if (g == NULL)
        return;
    if (g->depth > 0) {
        g->freed = true;
        g->pending = false;
        loop_timer_stop(g->timer);
        return;
    }
    gate_destroy(g);
}

enum analysis_gate_state analysis_gate_state(const struct analysis_gate *g)
{
    return g->state;
}

const char *analysis_gate_reason(const struct analysis_gate *g)
{
    return g->reason;
}

const struct analysis_spec *analysis_gate_spec(const struct analysis_gate *g)
{
    return &g->spec;
}

void analysis_gate_counts(const struct analysis_gate *g, struct analysis_gate_counts *out)
{
    *out = g->counts;
}

unsigned analysis_gate_pending(const struct analysis_gate *g)
{
    return g->pending ? g->seq : 0;
}

size_t analysis_gate_history_len(const struct analysis_gate *g)
{
    return g->hlen;
}

const struct analysis_measurement *analysis_gate_history(const struct analysis_gate *g, size_t i)
{
    if (i >= g->hlen)
        return NULL;
    return g->hist[(g->hstart + i) % ANALYSIS_HISTORY_MAX];
}

const struct analysis_measurement *analysis_gate_last(const struct analysis_gate *g)
{
    return g->hlen > 0 ? analysis_gate_history(g, g->hlen - 1) : NULL;
}

cJSON *analysis_gate_json(const struct analysis_gate *g)
{
    cJSON *o = cJSON_CreateObject();
    const struct analysis_spec *s = &g->spec;
    const struct analysis_measurement *last = analysis_gate_last(g);

    cJSON_AddStringToObject(o, "state", state_names[g->state]);
    cJSON_AddStringToObject(o, "reason", g->reason);
    cJSON_AddStringToObject(o, "on_failure", policy_names[s->on_failure]);
    cJSON_AddNumberToObject(o, "interval_seconds", (double)s->interval_ms / 1000.0);
    cJSON_AddNumberToObject(o, "count", s->count);
    cJSON_AddNumberToObject(o, "failure_limit", s->failure_limit);
    cJSON_AddNumberToObject(o, "inconclusive_limit", s->inconclusive_limit);
    cJSON_AddNumberToObject(o, "consecutive_error_limit", s->consecutive_error_limit);
    cJSON_AddNumberToObject(o, "min_samples", (double)s->min_samples);
    cJSON_AddNumberToObject(o, "taken", g->counts.taken);
    cJSON_AddNumberToObject(o, "passed", g->counts.passed);
    cJSON_AddNumberToObject(o, "failed", g->counts.failed);
    cJSON_AddNumberToObject(o, "inconclusive", g->counts.inconclusive);
    cJSON_AddNumberToObject(o, "errors", g->counts.errors);
    cJSON_AddNumberToObject(o, "consecutive_errors", g->counts.consecutive_errors);
    add_number(o, "pending", g->pending, g->seq);
    if (last != NULL)
        cJSON_AddItemToObject(o, "last", analysis_measurement_json(last));
    else
        cJSON_AddNullToObject(o, "last");
    return o;
}
