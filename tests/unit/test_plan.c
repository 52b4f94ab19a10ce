/* Plans: what loads, with which defaults, and the exact error for each mistake. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"
#include "tests/unit/testutil.h"

static struct plan *load_ok(const char *text)
{
    struct plan *p = NULL;
    struct err err;

    if (plan_load_string("p.json", text, strlen(text), &p, &err) != 0)
        ck_abort_msg("plan refused: %s", err.msg);
    return p;
}

/* The error message of a plan that must be refused. */
static const char *load_err(const char *text)
{
    static struct err err;
    struct plan *p = NULL;

    ck_assert_msg(plan_load_string("p.json", text, strlen(text), &p, &err) != 0,
                  "plan was accepted: %s", text);
    ck_assert_ptr_null(p);
    return err.msg;
}

START_TEST(defaults)
{
    struct plan *p = load_ok("{\"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]}]}");

    ck_assert_str_eq(p->root.name, "p"); /* from p.json */
    ck_assert_int_eq(p->root.strategy, PLAN_ALL);
    ck_assert_uint_eq(p->root.max_concurrency, 10);
    ck_assert_uint_eq(p->root.timeout_ms, 300000);
    ck_assert(!p->root.fail_fast);
    ck_assert_uint_eq(p->root.retry.max_attempts, 1);
    ck_assert_uint_eq(p->kill_grace_ms, 5000);
    ck_assert_uint_eq(p->output_limit, 65536);
    ck_assert_uint_eq(p->total_steps, 1);
    ck_assert_str_eq(p->root.steps[0].argv[0], "true");
    ck_assert_ptr_null(p->root.steps[0].argv[1]);
    ck_assert_uint_eq(p->root.steps[0].timeout_ms, 0);
    plan_free(p);
}
END_TEST

START_TEST(full_plan)
{
    struct plan *p = load_ok(
        "{\"version\": 1, \"name\": \"deploy\", \"strategy\": \"all\", \"max_concurrency\": 4,\n"
        " \"timeout_seconds\": 60, \"fail_fast\": true, \"kill_grace_seconds\": 2,\n"
        " \"retry\": {\"max_attempts\": 3, \"backoff\": {\"base_seconds\": 0.5, \"cap_seconds\": "
        "4},"
        " \"retry_on\": [\"timeout\", \"exit:75\"]},\n"
        " \"steps\": [\n"
        "  {\"name\": \"build\", \"shell\": \"make\", \"env\": {\"CC\": \"gcc\"}, \"cwd\": "
        "\"/tmp\","
        "   \"timeout_seconds\": 1.5},\n"
        "  {\"name\": \"test\", \"depends_on\": [\"build\"], \"retry\": {\"max_attempts\": 1},"
        "   \"parallel\": {\"strategy\": \"map_reduce\", \"reduce\": \"sum\", \"steps\": ["
        "     {\"name\": \"u\", \"exec\": [\"echo\", \"1\"]}]}}]}");
    const struct plan_step *build = &p->root.steps[0], *test = &p->root.steps[1];

    ck_assert_str_eq(p->root.name, "deploy");
    ck_assert_uint_eq(p->kill_grace_ms, 2000);
    ck_assert_str_eq(build->argv[0], "/bin/sh");
    ck_assert_str_eq(build->argv[1], "-c");
    ck_assert_str_eq(build->argv[2], "make");
    ck_assert_str_eq(build->env[0], "CC=gcc");
    ck_assert_str_eq(build->cwd, "/tmp");
    ck_assert_uint_eq(build->timeout_ms, 1500);
    /* Inherited from the block. */
    ck_assert_uint_eq(build->retry.max_attempts, 3);
    ck_assert_uint_eq(build->retry.base_ms, 500);
    ck_assert_uint_eq(build->retry.cap_ms, 4000);
    ck_assert_uint_eq(test->retry.max_attempts, 1);
    ck_assert_uint_eq(test->retry.base_ms, 500);
    ck_assert_uint_eq(test->ndeps, 1);
    ck_assert_uint_eq(test->deps[0], 0);
    ck_assert_uint_eq(build->ndependents, 1);
    ck_assert_int_eq(test->kind, PLAN_STEP_PARALLEL);
    ck_assert_str_eq(test->block->name, "test");
    ck_assert_int_eq(test->block->reduce, PLAN_REDUCE_SUM);
    /* A nested block inherits the retry policy of its step. */
    ck_assert_uint_eq(test->block->steps[0].retry.max_attempts, 1);
    ck_assert_uint_eq(p->total_steps, 3);
    plan_free(p);
}
END_TEST

START_TEST(unknown_key_suggests)
{
    ck_assert_str_eq(load_err("{\"max_concurency\": 3, \"steps\": []}"),
                     "p.json:1:2: max_concurency: unknown key; did you mean \"max_concurrency\"?");
    ck_assert_str_eq(
        load_err("{\"steps\": [\n  {\"name\": \"a\", \"exec\": [\"true\"], \"timeout\": 3}]}"),
        "p.json:2:35: steps[0].timeout: unknown key; did you mean \"timeout_seconds\"?");
}
END_TEST

START_TEST(wrong_types)
{
    ck_assert_str_eq(load_err("{\"max_concurrency\": \"4\", \"steps\": []}"),
                     "p.json:1:21: max_concurrency: expected an integer, got a string");
    ck_assert_str_eq(load_err("[1, 2]"),
                     "p.json:1:1: expected a JSON object at the top level, got an array");
    ck_assert_ptr_nonnull(
        strstr(load_err("{\"steps\": [{\"name\": \"a\", \"exec\": \"true\"}]}"),
               "p.json:1:34: steps[0].exec: expected a non-empty array of strings"));
    ck_assert_ptr_nonnull(strstr(load_err("{\"steps\": [{\"name\": \"a\", \"exec\": [\"x\", 3]}]}"),
                                 "steps[0].exec[1]: expected a string, got a number"));
}
END_TEST

START_TEST(strategy_rules)
{
    ck_assert_str_eq(
        load_err(
            "{\"strategy\": \"fastest\", \"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
        "p.json:1:14: strategy: unknown strategy \"fastest\"; expected one of: all, "
        "any_success, race, map_reduce, collect");
    ck_assert_str_eq(
        load_err(
            "{\"strategy\": \"colect\", \"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
        "p.json:1:14: strategy: unknown strategy \"colect\"; did you mean \"collect\"?");
    ck_assert_ptr_nonnull(strstr(
        load_err(
            "{\"strategy\": \"map_reduce\", \"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
        "map_reduce needs \"reduce\""));
    ck_assert_ptr_nonnull(
        strstr(load_err("{\"strategy\": \"race\", \"fail_fast\": true, \"steps\": [{\"name\": "
                        "\"a\", \"exec\": [\"true\"]}]}"),
               "\"fail_fast\" applies to strategies all and map_reduce, not race"));
    ck_assert_ptr_nonnull(strstr(
        load_err("{\"reduce\": \"sum\", \"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
        "\"reduce\" applies to strategy map_reduce, not all"));
}
END_TEST

START_TEST(step_rules)
{
    ck_assert_ptr_nonnull(
        strstr(load_err("{\"steps\": [{\"name\": \"a\"}]}"), "step \"a\" says nothing to run"));
    ck_assert_ptr_nonnull(strstr(
        load_err("{\"steps\": [{\"name\": \"a\", \"exec\": [\"true\"], \"shell\": \"true\"}]}"),
        "more than one of"));
    ck_assert_ptr_nonnull(strstr(load_err("{\"steps\": [{\"exec\": [\"true\"]}]}"), "name"));
    ck_assert_ptr_nonnull(
        strstr(load_err("{\"steps\": []}"), "p.json:1:11: steps: a block needs at least one step"));
    ck_assert_ptr_nonnull(
        strstr(load_err("{\"steps\": [{\"name\": \"a b\", \"exec\": [\"true\"]}]}"),
               "character 2 of the step name is not allowed"));
    ck_assert_str_eq(
        load_err("{\"steps\": [{\"name\": \"a\", \"exec\": [\"true\"]},\n"
                 " {\"name\": \"a\", \"exec\": [\"true\"]}]}"),
        "p.json:2:11: steps[1].name: duplicate step name \"a\" (also steps[0]); names are "
        "unique in a block");
    ck_assert_ptr_nonnull(strstr(
        load_err(
            "{\"steps\": [{\"name\": \"a\", \"exec\": [\"true\"], \"env\": {\"1X\": \"v\"}}]}"),
        "not a valid environment variable name"));
    ck_assert_ptr_nonnull(strstr(
        load_err("{\"steps\": [{\"name\": \"a\", \"timeout_seconds\": 0, \"exec\": [\"true\"]}]}"),
        "timeout_seconds"));
    ck_assert_ptr_nonnull(
        strstr(load_err("{\"steps\": [{\"name\": \"a\", \"cwd\": \"/\", \"parallel\": {\"steps\": "
                        "[{\"name\": \"b\", \"exec\": [\"true\"]}]}}]}"),
               "\"cwd\" applies to exec and shell steps"));
}
END_TEST

START_TEST(dependencies)
{
    ck_assert_str_eq(
        load_err("{\"steps\": [{\"name\": \"build\", \"exec\": [\"true\"]},\n"
                 " {\"name\": \"test\", \"depends_on\": [\"biuld\"], \"exec\": [\"true\"]}]}"),
        "p.json:2:34: steps[1].depends_on[0]: no step \"biuld\" in this block; did you mean "
        "\"build\"?");
    ck_assert_ptr_nonnull(strstr(
        load_err("{\"steps\": [{\"name\": \"a\", \"depends_on\": [\"a\"], \"exec\": [\"true\"]}]}"),
        "step \"a\" cannot depend on itself"));
    ck_assert_str_eq(
        load_err("{\"steps\": [\n"
                 " {\"name\": \"a\", \"depends_on\": [\"c\"], \"exec\": [\"true\"]},\n"
                 " {\"name\": \"b\", \"depends_on\": [\"a\"], \"exec\": [\"true\"]},\n"
                 " {\"name\": \"c\", \"depends_on\": [\"b\"], \"exec\": [\"true\"]},\n"
                 " {\"name\": \"d\", \"exec\": [\"true\"]}]}"),
        "p.json:1:11: steps: depends_on has a cycle: a -> c -> b -> a (each step would wait for "
        "itself)");
}
END_TEST

START_TEST(retry_rules)
{
    ck_assert_ptr_nonnull(strstr(load_err("{\"retry\": {\"max_attempts\": 0}, \"steps\": "
                                          "[{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
                                 "retry.max_attempts"));
    ck_assert_ptr_nonnull(strstr(load_err("{\"retry\": {\"retry_on\": [\"tiemout\"]}, \"steps\": "
                                          "[{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
                                 "retry.retry_on[0]"));
    ck_assert_ptr_nonnull(strstr(
        load_err("{\"retry\": {\"backoff\": {\"base_seconds\": 5, \"cap_seconds\": 1}}, \"steps\": "
                 "[{\"name\": \"a\", \"exec\": [\"true\"]}]}"),
        "cap_seconds must not be less than base_seconds"));
    {
        /* base_seconds alone above the default cap (30 s): the cap follows it. */
        struct plan *p = load_ok("{\"retry\": {\"backoff\": {\"base_seconds\": 60}}, \"steps\": "
                                 "[{\"name\": \"a\", \"exec\": [\"true\"]}]}");

        ck_assert_uint_eq(p->root.retry.base_ms, 60000);
        ck_assert_uint_eq(p->root.retry.cap_ms, 60000);
        plan_free(p);
    }
}
END_TEST

START_TEST(not_json)
{
    ck_assert_str_eq(load_err(""), "p.json:1:1: the file is empty; it should hold a JSON object");
    ck_assert_ptr_nonnull(strstr(load_err("{\"steps\": [1,]}"), "p.json:1:"));
    ck_assert_ptr_nonnull(strstr(load_err("steps: []"), "p.json:1:1:"));
}
END_TEST

START_TEST(limits)
{
    /* Nesting deeper than PLAN_MAX_DEPTH. */
    char *text = malloc(64 * 100), *p = text;
    int i;

    for (i = 0; i < 40; i++)
        p += sprintf(p, "{\"steps\": [{\"name\": \"n%d\", \"parallel\": ", i);
    p += sprintf(p, "{\"steps\": [{\"name\": \"leaf\", \"exec\": [\"true\"]}]}");
    for (i = 0; i < 40; i++)
        p += sprintf(p, "}]}");
    ck_assert_ptr_nonnull(strstr(load_err(text), "nested more than 32 deep"));
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *t = tcase_create("plan");

    tcase_add_test(t, defaults);
    tcase_add_test(t, full_plan);
    tcase_add_test(t, unknown_key_suggests);
    tcase_add_test(t, wrong_types);
    tcase_add_test(t, strategy_rules);
    tcase_add_test(t, step_rules);
    tcase_add_test(t, dependencies);
    tcase_add_test(t, retry_rules);
    tcase_add_test(t, not_json);
    tcase_add_test(t, limits);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
