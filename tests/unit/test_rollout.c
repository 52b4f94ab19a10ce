/*
 * The rollout state machine (deploy/rollout.h) on the fake clock, with a world the test plays:
 * the canary's weights in order and the journal's intent before every action and outcome
 * after it; each failure policy; an inconclusive gate pausing with its reason; the operator's
 * pause, resume, promote (and --full) and abort, also with an action in flight; a pause for a
 * person and its deadline; the progress deadline; a journal that cannot be written stops it
 * before it acts; host by host; a candidate that does not start.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/loop.h"
#include "deploy/rollout.h"
#include "tests/unit/testutil.h"

/* The world: a router with the candidate's weight, hosts, gates, a journal. */
struct world {
    struct loop *loop;
    struct rollout *r;
    unsigned weight;
    size_t hosts;
    bool hold;     /* actions do not answer until release() */
    bool never;    /* actions never answer */
    int fail_next; /* the next op fails */
    bool prepare_fails;
    int journal_fails; /* the n-th journal write fails (1-based; 0: none) */
    unsigned journal_writes;
    struct buf log; /* "intent:set_weight=5 outcome:set_weight ..." */
    struct buf events;
    unsigned stops_candidate, stops_stable, prepares;
    unsigned gates_started;
    int gate_handles[8];
    void *gate, *bg_gate;
    /* a held action */
    unsigned token;
    rollout_done_fn done;
    unsigned *applied;
    unsigned held_weight;
};

static struct world W;

static void settle(void);

static void answer_later(void *arg);

static void answer(struct world *w, unsigned token, rollout_done_fn done)
{
    w->token = token;
    w->done = done;
    if (w->never || w->hold)
        return;
    loop_defer(w->loop, answer_later, w);
}

static void answer_later(void *arg)
{
    struct world *w = arg;
    int rc = w->fail_next ? -1 : 0;
    rollout_done_fn done = w->done;

    w->fail_next = 0;
    w->done = NULL;
    if (done != NULL)
        done(w->r, w->token, rc, rc ? "the router refused it" : NULL);
}

static void release(struct world *w)
{
    w->hold = false;
    loop_defer(w->loop, answer_later, w);
}

static void op_prepare(void *arg, struct rollout *r, unsigned token, rollout_done_fn done)
{
    struct world *w = arg;

    (void)r;
    w->prepares++;
    if (w->prepare_fails)
        w->fail_next = 1;
    answer(w, token, done);
}

static void op_set_weight(void *arg, struct rollout *r, unsigned weight, unsigned *applied,
                          unsigned token, rollout_done_fn done)
{
    struct world *w = arg;

    (void)r;
    if (!w->fail_next) {
        w->weight = weight;
        *applied = weight;
    }
    answer(w, token, done);
}

static void op_set_hosts(void *arg, struct rollout *r, size_t n, unsigned token,
                         rollout_done_fn done)
{
    struct world *w = arg;

    (void)r;
    w->hosts = n;
    answer(w, token, done);
}

static void *op_start_gate(void *arg, struct rollout *r, const struct analysis_spec *spec,
                           bool background)
{
    struct world *w = arg;
    void *h = &w->gate_handles[w->gates_started % 8];

    (void)r;
    (void)spec;
    w->gates_started++;
    if (background)
        w->bg_gate = h;
    else
        w->gate = h;
    return h;
}

static void op_stop_gate(void *arg, struct rollout *r, void *gate)
{
    struct world *w = arg;

    (void)r;
    if (w->gate == gate)
        w->gate = NULL;
    if (w->bg_gate == gate)
        w->bg_gate = NULL;
}

static void op_stop(void *arg, struct rollout *r, bool candidate, unsigned token,
                    rollout_done_fn done)
{
    struct world *w = arg;

    (void)r;
    if (candidate)
        w->stops_candidate++;
    else
        w->stops_stable++;
    answer(w, token, done);
}

static void op_event(void *arg, struct rollout *r, const char *name, const cJSON *data)
{
    struct world *w = arg;
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(data, "to");

    (void)r;
    buf_addf(&w->events, "%s%s%s ", name, cJSON_IsString(to) ? "=" : "",
             cJSON_IsString(to) ? to->valuestring : "");
}

static void journal_answer(void *arg);

static struct {
    unsigned token;
    rollout_done_fn done;
    int rc;
} J;

static void op_journal(void *arg, struct rollout *r, const char *type, const char *action,
                       const cJSON *data, unsigned token, rollout_done_fn done)
{
    struct world *w = arg;
    const cJSON *v;

    (void)r;
    w->journal_writes++;
    buf_addf(&w->log, "%s:%s", type, action);
    if (strcmp(type, "intent") == 0 &&
        cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(data, "weight")))
        buf_addf(&w->log, "=%d", (int)v->valuedouble);
    if (strcmp(type, "intent") == 0 &&
        cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(data, "hosts")))
        buf_addf(&w->log, "=%dh", (int)v->valuedouble);
    buf_adds(&w->log, " ");
    J.token = token;
    J.done = done;
    J.rc = w->journal_fails > 0 && w->journal_writes == (unsigned)w->journal_fails ? -1 : 0;
    loop_defer(w->loop, journal_answer, w);
}

static void journal_answer(void *arg)
{
    struct world *w = arg;

    J.done(w->r, J.token, J.rc, J.rc ? "disk full" : NULL);
}

static const struct rollout_ops ops = {
    .prepare = op_prepare,
    .set_weight = op_set_weight,
    .set_hosts = op_set_hosts,
    .start_gate = op_start_gate,
    .stop_gate = op_stop_gate,
    .stop = op_stop,
    .event = op_event,
    .journal = op_journal,
};

static int analysis_marker; /* the gates' spec: opaque to the engine */

/* The world's setup before the rollout starts. */
struct setup {
    int journal_fails;
    bool prepare_fails;
    const char *candidate;
};

static void world_start_with(struct rollout_spec *spec, size_t ntargets, const struct setup *su)
{
    struct rollout_params p;

    memset(&W, 0, sizeof W);
    W.loop = loop_new_fake(1700000000000u, 1);
    buf_init(&W.log);
    buf_init(&W.events);
    W.journal_fails = su->journal_fails;
    W.prepare_fails = su->prepare_fails;
    memset(&p, 0, sizeof p);
    p.loop = W.loop;
    p.spec = spec;
    p.id = "r1";
    p.environment = "prod";
    p.candidate = su->candidate != NULL ? su->candidate : "v1.1.0";
    p.stable = "v1.0.0";
    p.ntargets = ntargets;
    p.ops = &ops;
    p.arg = &W;
    W.r = rollout_new(&p);
    rollout_start(W.r);
    loop_fake_advance(W.loop, 0);
}

static void world_start(struct rollout_spec *spec, size_t ntargets)
{
    static const struct setup none;

    world_start_with(spec, ntargets, &none);
}

static void world_done(struct rollout_spec *spec)
{
    rollout_free(W.r);
    loop_free(W.loop);
    buf_done(&W.log);
    buf_done(&W.events);
    rollout_spec_done(spec);
}

static void settle(void)
{
    unsigned i;

    /* Deferred answers run on the loop's turns; due timers with the clock. */
    for (i = 0; i < 50; i++) {
        loop_run_once(W.loop, false);
        loop_fake_advance(W.loop, 0);
    }
}

static const char *state(void)
{
    return rollout_state_name(rollout_state(W.r));
}

START_TEST(canary_in_order_with_the_journal)
{
    struct rollout_spec s;

    rollout_spec_default_canary(&s, 10000, NULL);
    s.rollback_window_ms = 60000;
    world_start(&s, 2);
    settle();
    ck_assert_str_eq(state(), "Progressing");
    ck_assert_uint_eq(W.weight, 5);
    ck_assert_uint_eq(rollout_weight(W.r), 5);
    ck_assert_str_eq(rollout_waiting_for(W.r), "step 2 of 11 (pause): 10 s");
    loop_fake_advance(W.loop, 9999);
    settle();
    ck_assert_uint_eq(W.weight, 5);
    loop_fake_advance(W.loop, 1);
    settle();
    ck_assert_uint_eq(W.weight, 10);
    for (int i = 0; i < 4; i++) {
        loop_fake_advance(W.loop, 10000);
        settle();
    }
    ck_assert_str_eq(state(), "Completed");
    ck_assert_uint_eq(W.weight, 100);
    ck_assert_str_eq(W.log.data,
                     "intent:prepare outcome:prepare intent:set_weight=5 outcome:set_weight "
                     "intent:set_weight=10 outcome:set_weight intent:set_weight=25 "
                     "outcome:set_weight intent:set_weight=50 outcome:set_weight "
                     "intent:set_weight=75 outcome:set_weight intent:promote=100 "
                     "outcome:promote ");
    /* The old slot stays warm for the window, then stops. */
    ck_assert_uint_eq(W.stops_stable, 0);
    ck_assert_ptr_nonnull(strstr(rollout_waiting_for(W.r), "the rollback window"));
    loop_fake_advance(W.loop, 60000);
    settle();
    ck_assert_uint_eq(W.stops_stable, 1);
    ck_assert_uint_eq(W.stops_candidate, 0);
    ck_assert_ptr_nonnull(strstr(W.events.data, "rollout.state=Progressing"));
    ck_assert_ptr_nonnull(strstr(W.events.data, "rollout.state=Promoting"));
    ck_assert_ptr_nonnull(strstr(W.events.data, "rollout.state=Completed"));
    world_done(&s);
}
END_TEST

/* A canary 10 % then an analysis of the given policy. */
static void two_steps(struct rollout_spec *s, enum rollout_policy policy)
{
    memset(s, 0, sizeof *s);
    s->strategy = STRATEGY_CANARY;
    s->abort_delay_ms = 30000;
    s->steps = calloc(3, sizeof *s->steps);
    s->steps[0].kind = STEP_SET_WEIGHT;
    s->steps[0].weight = 10;
    s->steps[1].kind = STEP_ANALYSIS;
    s->steps[1].analysis = (const struct analysis_spec *)&analysis_marker;
    s->steps[1].policy = policy;
    s->steps[2].kind = STEP_PROMOTE;
    s->nsteps = 3;
}

START_TEST(failure_policies)
{
    struct rollout_spec s;
    cJSON *j;
    char *text;

    /* rollback: stable at once, the candidate stopped after abort_delay */
    two_steps(&s, POLICY_ROLLBACK);
    world_start(&s, 1);
    settle();
    ck_assert_uint_eq(W.weight, 10);
    ck_assert_ptr_nonnull(W.gate);
    rollout_gate_ended(W.r, W.gate, VERDICT_FAIL, "t1 green: error_rate 4.8 % > 1 %");
    settle();
    ck_assert_str_eq(state(), "RolledBack");
    ck_assert_uint_eq(W.weight, 0);
    ck_assert_str_eq(rollout_reason(W.r), "the analysis of step 2 of 3 (analysis) failed: t1 "
                                          "green: error_rate 4.8 % > 1 %");
    ck_assert_uint_eq(W.stops_candidate, 0);
    loop_fake_advance(W.loop, 30000);
    settle();
    ck_assert_uint_eq(W.stops_candidate, 1);
    j = rollout_to_json(W.r);
    text = cJSON_PrintUnformatted(j);
    ck_assert_ptr_nonnull(strstr(text, "\"verdict\":\"fail\""));
    ck_assert_ptr_nonnull(strstr(text, "\"state\":\"RolledBack\""));
    free(text);
    cJSON_Delete(j);
    world_done(&s);

    /* abort: stable at once, the candidate kept */
    two_steps(&s, POLICY_ABORT);
    world_start(&s, 1);
    settle();
    rollout_gate_ended(W.r, W.gate, VERDICT_FAIL, "p95 2400 ms > 2000 ms");
    settle();
    ck_assert_str_eq(state(), "Aborted");
    ck_assert_uint_eq(W.weight, 0);
    loop_fake_advance(W.loop, 60000);
    settle();
    ck_assert_uint_eq(W.stops_candidate, 0);
    world_done(&s);

    /* pause: traffic stays, the operator decides */
    two_steps(&s, POLICY_PAUSE);
    world_start(&s, 1);
    settle();
    rollout_gate_ended(W.r, W.gate, VERDICT_FAIL, "error_rate 2 % > 1 %");
    settle();
    ck_assert_str_eq(state(), "Paused");
    ck_assert_uint_eq(W.weight, 10);
    ck_assert_ptr_nonnull(strstr(rollout_reason(W.r), "failure policy: pause"));
    {
        char msg[200];

        ck_assert_int_eq(rollout_abort(W.r, "not today", msg, sizeof msg), 0);
    }
    settle();
    ck_assert_str_eq(state(), "Aborted");
    ck_assert_uint_eq(W.weight, 0);
    ck_assert_str_eq(rollout_reason(W.r), "aborted by the operator: not today");
    world_done(&s);
}
END_TEST

START_TEST(inconclusive_pauses_with_its_reason)
{
    struct rollout_spec s;
    char msg[200];

    two_steps(&s, POLICY_ROLLBACK);
    world_start(&s, 1);
    settle();
    rollout_gate_ended(W.r, W.gate, VERDICT_INCONCLUSIVE, "t1 green: 40 requests, fewer than 100");
    settle();
    ck_assert_str_eq(state(), "Paused");
    ck_assert_uint_eq(W.weight, 10);
    ck_assert_ptr_nonnull(strstr(rollout_reason(W.r), "inconclusive: t1 green: 40 requests"));
    /* resume: the analysis again */
    ck_assert_uint_eq(W.gates_started, 1);
    ck_assert_int_eq(rollout_resume(W.r, msg, sizeof msg), 0);
    settle();
    ck_assert_str_eq(state(), "Progressing");
    ck_assert_uint_eq(W.gates_started, 2);
    rollout_gate_ended(W.r, W.gate, VERDICT_INCONCLUSIVE, "still too few");
    settle();
    /* promote: on without it */
    ck_assert_int_eq(rollout_promote(W.r, false, msg, sizeof msg), 0);
    settle();
    ck_assert_str_eq(state(), "Completed");
    ck_assert_uint_eq(W.weight, 100);
    world_done(&s);
}
END_TEST

START_TEST(pause_for_a_person)
{
    struct rollout_spec s;
    char msg[200];

    memset(&s, 0, sizeof s);
    s.steps = calloc(3, sizeof *s.steps);
    s.steps[0].kind = STEP_SET_WEIGHT;
    s.steps[0].weight = 20;
    s.steps[1].kind = STEP_PAUSE;
    s.steps[1].deadline_ms = 3600000;
    s.steps[2].kind = STEP_PROMOTE;
    s.nsteps = 3;
    world_start(&s, 1);
    settle();
    ck_assert_str_eq(state(), "Paused");
    ck_assert_str_eq(rollout_waiting_for(W.r),
                     "step 2 of 3 (pause): a person to promote (n3ctl rollout promote)");
    /* resume does not pass it; the deadline raises an event */
    ck_assert_int_eq(rollout_resume(W.r, msg, sizeof msg), -1);
    ck_assert_ptr_nonnull(strstr(msg, "rollout promote passes it"));
    ck_assert_ptr_null(strstr(W.events.data, "rollout.pause.deadline"));
    loop_fake_advance(W.loop, 3600000);
    ck_assert_ptr_nonnull(strstr(W.events.data, "rollout.pause.deadline"));
    ck_assert_ptr_nonnull(strstr(rollout_waiting_for(W.r), "past its deadline of 3600 s"));
    ck_assert_uint_eq(W.weight, 20);
    ck_assert_int_eq(rollout_promote(W.r, false, msg, sizeof msg), 0);
    settle();
    ck_assert_str_eq(state(), "Completed");
    world_done(&s);
}
END_TEST

START_TEST(operator_pause_keeps_the_time_left)
{
    struct rollout_spec s;
    char msg[200];

    rollout_spec_default_canary(&s, 60000, NULL);
    s.rollback_window_ms = 0;
    world_start(&s, 1);
    settle();
    loop_fake_advance(W.loop, 20000);
    ck_assert_int_eq(rollout_pause(W.r, "lunch", msg, sizeof msg), 0);
    ck_assert_str_eq(state(), "Paused");
    ck_assert_int_eq(rollout_pause(W.r, NULL, msg, sizeof msg), -1);
    ck_assert_ptr_nonnull(strstr(msg, "paused already"));
    loop_fake_advance(W.loop, 3600000);
    settle();
    ck_assert_uint_eq(W.weight, 5); /* held */
    ck_assert_int_eq(rollout_resume(W.r, msg, sizeof msg), 0);
    ck_assert_str_eq(rollout_waiting_for(W.r), "step 2 of 11 (pause): 40 s left");
    loop_fake_advance(W.loop, 39999);
    settle();
    ck_assert_uint_eq(W.weight, 5);
    loop_fake_advance(W.loop, 1);
    settle();
    ck_assert_uint_eq(W.weight, 10);
    /* --full: to 100 % from here */
    ck_assert_int_eq(rollout_promote(W.r, true, msg, sizeof msg), 0);
    settle();
    ck_assert_str_eq(state(), "Completed");
    ck_assert_uint_eq(W.weight, 100);
    ck_assert_int_eq(rollout_abort(W.r, NULL, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "the rollout has ended (Completed)");
    world_done(&s);
}
END_TEST

START_TEST(abort_with_an_action_in_flight)
{
    struct rollout_spec s;
    char msg[200];

    rollout_spec_default_canary(&s, 10000, NULL);
    world_start(&s, 1);
    settle();
    ck_assert_uint_eq(W.weight, 5);
    loop_fake_advance(W.loop, 10000);
    W.hold = true;
    settle(); /* set_weight 10 in flight */
    ck_assert_int_eq(rollout_promote(W.r, false, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "wait: set_weight is in flight");
    ck_assert_int_eq(rollout_abort(W.r, "bad", msg, sizeof msg), 0);
    settle();
    ck_assert_str_ne(state(), "Aborted"); /* the action answers first */
    release(&W);
    settle();
    ck_assert_str_eq(state(), "Aborted");
    ck_assert_uint_eq(W.weight, 0);
    ck_assert_ptr_nonnull(strstr(W.log.data, "intent:abort=0 outcome:abort "));
    world_done(&s);
}
END_TEST

START_TEST(progress_deadline)
{
    struct rollout_spec s;

    two_steps(&s, POLICY_ROLLBACK);
    s.progress_deadline_ms = 5000;
    world_start(&s, 1);
    W.never = true; /* prepare never answers */
    settle();
    loop_fake_advance(W.loop, 4999);
    ck_assert_str_eq(state(), "Progressing");
    W.never = false;
    W.done = NULL; /* its late answer never comes */
    loop_fake_advance(W.loop, 1);
    settle();
    ck_assert_str_eq(state(), "RolledBack");
    ck_assert_str_eq(rollout_reason(W.r), "v1.1.0 could not be started: prepare did not end "
                                          "within the progress deadline (5 s)");
    ck_assert_uint_eq(W.weight, 0);
    ck_assert_ptr_nonnull(strstr(W.log.data, "outcome:prepare intent:rollback=0 outcome:rollback"));
    world_done(&s);
}
END_TEST

START_TEST(journal_first)
{
    struct rollout_spec s;

    two_steps(&s, POLICY_ROLLBACK);
    /* The intent of set_weight (the 3rd write) cannot be written: nothing is set. */
    {
        const struct setup su = {.journal_fails = 3};

        world_start_with(&s, 1, &su);
    }
    settle();
    ck_assert_str_eq(state(), "Paused");
    ck_assert_uint_eq(W.weight, 0);
    ck_assert_str_eq(W.log.data, "intent:prepare outcome:prepare intent:set_weight=10 ");
    ck_assert_ptr_nonnull(
        strstr(rollout_reason(W.r), "the journal could not be written (disk full)"));
    world_done(&s);
}
END_TEST

START_TEST(host_by_host)
{
    struct rollout_spec s;
    char msg[200];

    memset(&s, 0, sizeof s);
    s.strategy = STRATEGY_CANARY_HOSTS;
    s.steps = calloc(4, sizeof *s.steps);
    s.steps[0].kind = STEP_SET_HOSTS;
    s.steps[0].hosts = 1;
    s.steps[1].kind = STEP_SET_HOSTS;
    s.steps[1].hosts = 50;
    s.steps[1].hosts_percent = true;
    s.steps[2].kind = STEP_PAUSE;
    s.steps[3].kind = STEP_PROMOTE;
    s.nsteps = 4;
    world_start(&s, 5);
    settle();
    ck_assert_uint_eq(W.hosts, 3); /* 50 % of 5, rounded up */
    ck_assert_str_eq(state(), "Paused");
    ck_assert_int_eq(rollout_abort(W.r, NULL, msg, sizeof msg), 0);
    settle();
    ck_assert_str_eq(state(), "Aborted");
    ck_assert_uint_eq(W.hosts, 0);
    ck_assert_ptr_nonnull(strstr(W.log.data, "intent:set_hosts=1h"));
    ck_assert_ptr_nonnull(strstr(W.log.data, "intent:set_hosts=3h"));
    ck_assert_ptr_nonnull(strstr(W.log.data, "intent:abort=0h"));
    world_done(&s);
}
END_TEST

START_TEST(candidate_does_not_start)
{
    struct rollout_spec s;

    two_steps(&s, POLICY_ROLLBACK);
    {
        const struct setup su = {.prepare_fails = true, .candidate = "v1.3.0"};

        world_start_with(&s, 1, &su);
    }
    settle();
    ck_assert_str_eq(state(), "RolledBack");
    ck_assert_uint_eq(W.weight, 0);
    ck_assert_str_eq(rollout_reason(W.r), "v1.3.0 could not be started: the router refused it");
    world_done(&s);
}
END_TEST

START_TEST(background_analysis)
{
    struct rollout_spec s;

    rollout_spec_default_canary(&s, 60000, NULL);
    s.background = (const struct analysis_spec *)&analysis_marker;
    s.background_policy = POLICY_ROLLBACK;
    world_start(&s, 1);
    settle();
    ck_assert_ptr_nonnull(W.bg_gate);
    loop_fake_advance(W.loop, 60000);
    settle();
    ck_assert_uint_eq(W.weight, 10);
    rollout_gate_ended(W.r, W.bg_gate, VERDICT_FAIL, "error_rate 3 % > 1 %");
    settle();
    ck_assert_str_eq(state(), "RolledBack");
    ck_assert_str_eq(rollout_reason(W.r), "the background analysis failed: error_rate 3 % > 1 %");
    ck_assert_uint_eq(W.weight, 0);
    world_done(&s);
}
END_TEST

static Suite *rollout_suite(void)
{
    Suite *s = suite_create("rollout");
    TCase *t = tcase_create("fake clock");

    tcase_add_test(t, canary_in_order_with_the_journal);
    tcase_add_test(t, failure_policies);
    tcase_add_test(t, inconclusive_pauses_with_its_reason);
    tcase_add_test(t, pause_for_a_person);
    tcase_add_test(t, operator_pause_keeps_the_time_left);
    tcase_add_test(t, abort_with_an_action_in_flight);
    tcase_add_test(t, progress_deadline);
    tcase_add_test(t, journal_first);
    tcase_add_test(t, host_by_host);
    tcase_add_test(t, candidate_does_not_start);
    tcase_add_test(t, background_analysis);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(rollout_suite());
}
