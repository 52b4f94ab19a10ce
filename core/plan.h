/*
 * Plans: a tree of parallel blocks whose steps are local commands or nested
 * blocks (NAMEL3SS.md), loaded from a JSON file and validated completely
 * before anything runs. docs/plan.md documents the format.
 */
#ifndef N3_PLAN_H
#define N3_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/retry.h"

enum plan_strategy { PLAN_ALL, PLAN_ANY_SUCCESS, PLAN_RACE, PLAN_MAP_REDUCE, PLAN_COLLECT };
enum plan_reduce {
    PLAN_REDUCE_NONE,
    PLAN_REDUCE_SUM,
    PLAN_REDUCE_COUNT,
    PLAN_REDUCE_CONCAT,
    PLAN_REDUCE_MERGE
};
/* PLAN_STEP_FANOUT is a "remote" step as written; plan_expand_remote turns each into a
 * PLAN_STEP_PARALLEL block of PLAN_STEP_REMOTE steps, one per target. */
enum plan_kind { PLAN_STEP_EXEC, PLAN_STEP_PARALLEL, PLAN_STEP_FANOUT, PLAN_STEP_REMOTE };
enum plan_result { PLAN_RESULT_TEXT, PLAN_RESULT_JSON };

#define PLAN_NAME_MAX       100
#define PLAN_MAX_STEPS      100000 /* in the whole plan */
#define PLAN_MAX_DEPTH      32     /* nested blocks */
#define PLAN_FILE_MAX_BYTES (16u * 1024u * 1024u)

struct plan_block;

/* A "remote" step as written: which targets, what to run, how widely. */
struct plan_fanout {
    char **selectors; /* NULL-terminated: target names, "label:NAME", or "all" */
    unsigned max_concurrency;
    double max_fail_percent;
    char *where; /* "FILE:LINE:COL: steps[2].remote.targets", for errors found later */
};

struct plan_step {
    char *name;
    enum plan_kind kind;
    char **argv;         /* exec: NULL-terminated; for "shell", {"/bin/sh", "-c", cmd} */
    char *shell;         /* the "shell" string, or NULL for an argv step */
    char **env;          /* "K=V" to add to the inherited environment; NULL-terminated */
    char *cwd;           /* NULL: the current directory */
    uint64_t timeout_ms; /* per attempt; 0: only the block's timeout */
    struct retry_policy retry;
    enum plan_result result;
    size_t *deps; /* indices of the steps this one waits for */
    size_t ndeps;
    size_t *dependents; /* indices of the steps that wait for this one */
    size_t ndependents;
    struct plan_block *block;   /* PLAN_STEP_PARALLEL */
    char *command;              /* PLAN_STEP_FANOUT, PLAN_STEP_REMOTE: a shell command */
    char *target;               /* PLAN_STEP_REMOTE: the target's name */
    struct plan_fanout *fanout; /* PLAN_STEP_FANOUT */
};

struct plan_block {
    char *name;
    enum plan_strategy strategy;
    enum plan_reduce reduce;
    unsigned max_concurrency;
    uint64_t timeout_ms;
    bool fail_fast;
    double max_fail_percent;
    struct retry_policy retry;
    struct plan_step *steps;
    size_t nsteps;
    unsigned depth; /* 0 for the root */
};

struct plan {
    char *source; /* the file it came from */
    struct plan_block root;
    uint64_t kill_grace_ms; /* TERM -> KILL when a step is stopped; default 5 s */
    size_t output_limit;    /* bytes of stdout and of stderr kept per step; default 64 KiB */
    size_t total_steps;     /* every step of every block */
};

int plan_load_file(const char *path, struct plan **out, struct err *err);
int plan_load_string(const char *name, const char *text, size_t len, struct plan **out,
                     struct err *err);
void plan_free(struct plan *p);

/*
 * Resolve one selector of a remote step to target names (appended to *names, a
 * NULL-terminated array, with *n counting them; duplicates are dropped by the caller).
 * Returns -1 with a message (an unknown target or label) that plan_expand_remote puts
 * after the step's position.
 */
typedef int (*plan_resolve_fn)(void *arg, const char *selector, char ***names, size_t *n,
                               struct err *err);

/* Turn every remote step into a parallel block with one step per target. A plan with
 * remote steps runs only after this. */
int plan_expand_remote(struct plan *p, plan_resolve_fn resolve, void *arg, struct err *err);
/* Does the plan have remote steps (expanded or not)? */
bool plan_has_remote(const struct plan *p);

/* A plan of one remote step, for `n3ctl exec`: run command on the selected targets. */
struct plan *plan_new_remote(const char *name, const char *const *selectors, const char *command,
                             unsigned max_concurrency, uint64_t timeout_ms);

const char *plan_strategy_name(enum plan_strategy s);
const char *plan_reduce_name(enum plan_reduce r);

#endif
