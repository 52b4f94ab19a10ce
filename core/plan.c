/* Plans: load a tree of parallel blocks from JSON and validate all of it before anything runs. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/plan.h"
#include "core/xalloc.h"

#define PLAN_FORMAT_VERSION 1

static const char *const strategy_names[] = {
    [PLAN_ALL] = "all",         [PLAN_ANY_SUCCESS] = "any_success",
    [PLAN_RACE] = "race",       [PLAN_MAP_REDUCE] = "map_reduce",
    [PLAN_COLLECT] = "collect", NULL,
};

static const char *const reduce_names[] = {
    [PLAN_REDUCE_NONE] = "none",     [PLAN_REDUCE_SUM] = "sum",     [PLAN_REDUCE_COUNT] = "count",
    [PLAN_REDUCE_CONCAT] = "concat", [PLAN_REDUCE_MERGE] = "merge", NULL,
};

static const char *const root_keys[] = {
    "version",
    "name",
    "description",
    "strategy",
    "reduce",
    "max_concurrency",
    "timeout_seconds",
    "fail_fast",
    "max_fail_percent",
    "retry",
    "steps",
    "kill_grace_seconds",
    "output_limit_bytes",
    NULL,
};

/* A nested block takes its name from its step. */
static const char *const nested_keys[] = {
    "description", "strategy",         "reduce", "max_concurrency", "timeout_seconds",
    "fail_fast",   "max_fail_percent", "retry",  "steps",           NULL,
};

static const char *const step_keys[] = {
    "name", "description",     "exec",  "shell",      "parallel", "remote", "env",
    "cwd",  "timeout_seconds", "retry", "depends_on", "result",   NULL,
};

static const char *const remote_keys[] = {"targets", "command", "max_concurrency",
                                          "max_fail_percent", NULL};

static const char *const retry_keys[] = {"max_attempts", "backoff", "retry_on", NULL};
static const char *const backoff_keys[] = {"base_seconds", "cap_seconds", NULL};

struct loader {
    const struct cfg *cfg;
    struct plan *plan;
    struct err *err;
};

const char *plan_strategy_name(enum plan_strategy s)
{
    return strategy_names[s];
}

const char *plan_reduce_name(enum plan_reduce r)
{
    return reduce_names[r];
}

/* Index of s in a NULL-terminated table, or -1. */
static int table_find(const char *const *table, const char *s)
{
    int i;

    for (i = 0; table[i] != NULL; i++) {
        if (strcmp(table[i], s) == 0)
            return i;
    }
    return -1;
}

static void join_names(const char *const *table, int skip, struct buf *out)
{
    int i;

    for (i = 0; table[i] != NULL; i++) {
        if (i == skip)
            continue;
        if (out->len > 0)
            buf_adds(out, ", ");
        buf_adds(out, table[i]);
    }
}

/* A string member that must be one of table's names; reports a suggestion. */
static int get_enum(struct loader *ld, const cJSON *obj, const char *key, const char *const *table,
                    int skip, int *out)
{
    const char *s = NULL;
    const char *hint;
    const cJSON *node;
    struct buf names;
    int i, rc;

    if (cfg_get_string(ld->cfg, obj, key, false, &s, ld->err) != 0)
        return -1;
    if (s == NULL)
        return 0;
    i = table_find(table, s);
    if (i >= 0 && i != skip) {
        *out = i;
        return 0;
    }
    node = cJSON_GetObjectItemCaseSensitive(obj, key);
    hint = cfg_suggest(s, table);
    buf_init(&names);
    join_names(table, skip, &names);
    if (hint != NULL && table_find(table, hint) != skip)
        rc = cfg_error(ld->cfg, ld->err, node, "unknown %s \"%.60s\"; did you mean \"%s\"?", key, s,
                       hint);
    else
        rc = cfg_error(ld->cfg, ld->err, node, "unknown %s \"%.60s\"; expected one of: %s", key, s,
                       names.data);
    buf_done(&names);
    return rc;
}

static int get_seconds(struct loader *ld, const cJSON *obj, const char *key, double min, double max,
                       uint64_t *out_ms)
{
    double v = -1;

    if (cfg_get_number(ld->cfg, obj, key, false, min, max, &v, ld->err) != 0)
        return -1;
    if (v >= 0)
        *out_ms = (uint64_t)(v * 1000.0 + 0.5);
    return 0;
}

static bool valid_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._:@+-", c) != NULL;
}

static int check_name(struct loader *ld, const cJSON *node, const char *name, const char *what)
{
    size_t i, n = strlen(name);

    if (n == 0)
        return cfg_error(ld->cfg, ld->err, node, "a %s name cannot be empty", what);
    if (n > PLAN_NAME_MAX)
        return cfg_error(ld->cfg, ld->err, node,
                         "a %s name is at most %d characters, this one has %zu", what,
                         PLAN_NAME_MAX, n);
    for (i = 0; i < n; i++) {
        if (!valid_name_char(name[i]))
            return cfg_error(ld->cfg, ld->err, node,
                             "character %zu of the %s name is not allowed; use letters, digits "
                             "and . _ : @ + -",
                             i + 1, what);
    }
    return 0;
}

static int load_retry(struct loader *ld, const cJSON *obj, struct retry_policy *p)
{
    const cJSON *r, *backoff, *on, *item;
    int64_t attempts = -1;
    uint64_t base = p->base_ms, cap = p->cap_ms;

    r = cfg_get(ld->cfg, obj, "retry", cJSON_Object, false, ld->err);
    if (r == NULL)
        return cfg_has(obj, "retry") ? -1 : 0;
    if (cfg_check_object(ld->cfg, r, retry_keys, ld->err) != 0)
        return -1;
    if (cfg_get_int(ld->cfg, r, "max_attempts", false, 1, 100, &attempts, ld->err) != 0)
        return -1;
    if (attempts > 0)
        p->max_attempts = (unsigned)attempts;
    backoff = cfg_get(ld->cfg, r, "backoff", cJSON_Object, false, ld->err);
    if (backoff == NULL && cfg_has(r, "backoff"))
        return -1;
    if (backoff != NULL) {
        if (cfg_check_object(ld->cfg, backoff, backoff_keys, ld->err) != 0 ||
            get_seconds(ld, backoff, "base_seconds", 0, 3600, &base) != 0 ||
            get_seconds(ld, backoff, "cap_seconds", 0, 86400, &cap) != 0)
            return -1;
        if (cap < base && cfg_has(backoff, "cap_seconds"))
            return cfg_error(ld->cfg, ld->err,
                             cJSON_GetObjectItemCaseSensitive(backoff, "cap_seconds"),
                             "cap_seconds must not be less than base_seconds");
        if (cap < base) /* only base_seconds given, above the default cap: the cap follows */
            cap = base;
        p->base_ms = base;
        p->cap_ms = cap;
    }
    on = cfg_get(ld->cfg, r, "retry_on", cJSON_Array, false, ld->err);
    if (on == NULL && cfg_has(r, "retry_on"))
        return -1;
    if (on != NULL) {
        retry_policy_clear_on(p);
        cJSON_ArrayForEach(item, on)
        {
            if (!cJSON_IsString(item))
                return cfg_error(ld->cfg, ld->err, item, "expected a string, got %s",
                                 cfg_type_name(item));
            if (retry_policy_add_on(p, item->valuestring, ld->err) != 0)
                return cfg_error(ld->cfg, ld->err, item, "%s", ld->err->msg);
        }
    }
    return 0;
}

static char **strv_add(char **v, size_t *n, char *s)
{
    v = xreallocarray(v, *n + 2, sizeof *v);
    v[(*n)++] = s;
    v[*n] = NULL;
    return v;
}

static void strv_free(char **v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static bool valid_env_name(const char *s)
{
    size_t i;

    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (i = 1; s[i] != '\0'; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static int load_block(struct loader *ld, const cJSON *obj, struct plan_block *b, const char *name,
                      const struct retry_policy *inherit, unsigned depth);

static int load_command(struct loader *ld, const cJSON *obj, struct plan_step *s)
{
    const cJSON *exec = cJSON_GetObjectItemCaseSensitive(obj, "exec");
    const cJSON *shell = cJSON_GetObjectItemCaseSensitive(obj, "shell");
    const cJSON *item, *env;
    size_t n = 0;

    if (exec != NULL) {
        if (!cJSON_IsArray(exec) || cJSON_GetArraySize(exec) == 0)
            return cfg_error(ld->cfg, ld->err, exec,
                             "expected a non-empty array of strings (the program and its "
                             "arguments), got %s",
                             cJSON_IsArray(exec) ? "an empty array" : cfg_type_name(exec));
        cJSON_ArrayForEach(item, exec)
        {
            if (!cJSON_IsString(item))
                return cfg_error(ld->cfg, ld->err, item, "expected a string, got %s",
                                 cfg_type_name(item));
            s->argv = strv_add(s->argv, &n, xstrdup(item->valuestring));
        }
        if (s->argv[0][0] == '\0')
            return cfg_error(ld->cfg, ld->err, cJSON_GetArrayItem(exec, 0),
                             "the program name cannot be empty");
    } else {
        if (!cJSON_IsString(shell))
            return cfg_error(ld->cfg, ld->err, shell,
                             "expected a string (a command for /bin/sh -c), got %s",
                             cfg_type_name(shell));
        if (shell->valuestring[0] == '\0')
            return cfg_error(ld->cfg, ld->err, shell, "the shell command cannot be empty");
        s->shell = xstrdup(shell->valuestring);
        s->argv = strv_add(s->argv, &n, xstrdup("/bin/sh"));
        s->argv = strv_add(s->argv, &n, xstrdup("-c"));
        s->argv = strv_add(s->argv, &n, xstrdup(shell->valuestring));
    }

    env = cfg_get(ld->cfg, obj, "env", cJSON_Object, false, ld->err);
    if (env == NULL && cfg_has(obj, "env"))
        return -1;
    if (env != NULL && cfg_check_object(ld->cfg, env, NULL, ld->err) != 0)
        return -1; /* any names, each once */
    n = 0;
    if (env != NULL) {
        cJSON_ArrayForEach(item, env)
        {
            if (!valid_env_name(item->string))
                return cfg_key_error(ld->cfg, ld->err, item,
                                     "not a valid environment variable name; use letters, digits "
                                     "and _, not starting with a digit");
            if (!cJSON_IsString(item))
                return cfg_error(ld->cfg, ld->err, item, "expected a string, got %s",
                                 cfg_type_name(item));
            s->env = strv_add(s->env, &n, xasprintf("%s=%s", item->string, item->valuestring));
        }
    }
    {
        const char *cwd = NULL;

        if (cfg_get_string(ld->cfg, obj, "cwd", false, &cwd, ld->err) != 0)
            return -1;
        if (cwd != NULL) {
            if (cwd[0] == '\0')
                return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(obj, "cwd"),
                                 "cwd cannot be empty; leave it out to use the current directory");
            s->cwd = xstrdup(cwd);
        }
    }
    return 0;
}

/* "remote": {"targets": ..., "command": ..., "max_concurrency": N, "max_fail_percent": P} */
static int load_remote(struct loader *ld, const cJSON *obj, struct plan_step *s)
{
    static const char *const local_only[] = {"env", "cwd", NULL};
    const cJSON *r, *targets, *item;
    const char *command = NULL;
    int64_t conc = 10;
    struct plan_fanout *f;
    struct buf where;
    unsigned line, col;
    size_t i, n = 0;

    for (i = 0; local_only[i] != NULL; i++) {
        if (cfg_has(obj, local_only[i]))
            return cfg_key_error(ld->cfg, ld->err,
                                 cJSON_GetObjectItemCaseSensitive(obj, local_only[i]),
                                 "\"%s\" applies to local steps; on targets, put it in the "
                                 "command",
                                 local_only[i]);
    }
    r = cfg_get(ld->cfg, obj, "remote", cJSON_Object, true, ld->err);
    if (r == NULL || cfg_check_object(ld->cfg, r, remote_keys, ld->err) != 0)
        return -1;
    targets = cfg_get(ld->cfg, r, "targets", cJSON_String | cJSON_Array, true, ld->err);
    if (targets == NULL)
        return -1;
    if (cfg_get_string(ld->cfg, r, "command", true, &command, ld->err) != 0)
        return -1;
    if (command[0] == '\0')
        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(r, "command"),
                         "the command cannot be empty");
    s->kind = PLAN_STEP_FANOUT;
    s->command = xstrdup(command);
    s->fanout = f = xcalloc(1, sizeof *f);
    if (cfg_get_int(ld->cfg, r, "max_concurrency", false, 1, 10000, &conc, ld->err) != 0 ||
        cfg_get_number(ld->cfg, r, "max_fail_percent", false, 0, 100, &f->max_fail_percent,
                       ld->err) != 0)
        return -1;
    f->max_concurrency = (unsigned)conc;
    if (cJSON_IsString(targets)) {
        f->selectors = strv_add(f->selectors, &n, xstrdup(targets->valuestring));
    } else {
        cJSON_ArrayForEach(item, targets)
        {
            if (!cJSON_IsString(item))
                return cfg_error(ld->cfg, ld->err, item,
                                 "expected a target name, \"label:NAME\" or \"all\", got %s",
                                 cfg_type_name(item));
            f->selectors = strv_add(f->selectors, &n, xstrdup(item->valuestring));
        }
    }
    if (n == 0)
        return cfg_error(ld->cfg, ld->err, targets,
                         "no targets; give target names, \"label:NAME\" or \"all\"");
    buf_init(&where);
    cfg_pos(ld->cfg, targets, &line, &col);
    buf_addf(&where, "%s:%u:%u: ", cfg_name(ld->cfg), line, col);
    cfg_path(ld->cfg, targets, &where);
    f->where = buf_detach(&where, NULL);
    buf_done(&where);
    return 0;
}

static int load_step(struct loader *ld, const cJSON *obj, struct plan_block *b, struct plan_step *s)
{
    const cJSON *name_node;
    int kinds, result = PLAN_RESULT_TEXT;
    const char *name = NULL;

    if (cfg_check_object(ld->cfg, obj, step_keys, ld->err) != 0)
        return -1;
    if (cfg_get_string(ld->cfg, obj, "name", true, &name, ld->err) != 0)
        return -1;
    name_node = cJSON_GetObjectItemCaseSensitive(obj, "name");
    if (check_name(ld, name_node, name, "step") != 0)
        return -1;
    s->name = xstrdup(name);
    s->retry = b->retry;

    kinds = cfg_has(obj, "exec") + cfg_has(obj, "shell") + cfg_has(obj, "parallel") +
            cfg_has(obj, "remote");
    if (kinds != 1)
        return cfg_error(ld->cfg, ld->err, obj,
                         kinds == 0 ? "step \"%s\" says nothing to run; give it one of \"exec\" "
                                      "(program and arguments), \"shell\" (a /bin/sh command), "
                                      "\"parallel\" (a nested block) or \"remote\" (a command "
                                      "on targets)"
                                    : "step \"%s\" has more than one of \"exec\", \"shell\", "
                                      "\"parallel\" and \"remote\"; keep one",
                         s->name);
    if (load_retry(ld, obj, &s->retry) != 0)
        return -1;
    if (get_seconds(ld, obj, "timeout_seconds", 0.001, 2592000, &s->timeout_ms) != 0)
        return -1;
    if (cfg_has(obj, "parallel")) {
        const cJSON *nested = cfg_get(ld->cfg, obj, "parallel", cJSON_Object, true, ld->err);
        static const char *const exec_only[] = {"env", "cwd", "result", NULL};
        size_t i;

        if (nested == NULL)
            return -1;
        for (i = 0; exec_only[i] != NULL; i++) {
            if (cfg_has(obj, exec_only[i]))
                return cfg_key_error(ld->cfg, ld->err,
                                     cJSON_GetObjectItemCaseSensitive(obj, exec_only[i]),
                                     "\"%s\" applies to exec and shell steps, not to a "
                                     "\"parallel\" step",
                                     exec_only[i]);
        }
        s->kind = PLAN_STEP_PARALLEL;
        s->block = xcalloc(1, sizeof *s->block);
        return load_block(ld, nested, s->block, s->name, &s->retry, b->depth + 1);
    }
    if (get_enum(ld, obj, "result", (const char *const[]){"text", "json", NULL}, -1, &result) != 0)
        return -1;
    s->result = (enum plan_result)result;
    if (cfg_has(obj, "remote"))
        return load_remote(ld, obj, s);
    s->kind = PLAN_STEP_EXEC;
    return load_command(ld, obj, s);
}

/* Step names of a block, hashed: plans can have 100,000 steps, so no linear lookups. */
struct name_index {
    size_t *slots; /* step index + 1; 0 is empty */
    size_t mask;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void index_init(struct name_index *ix, size_t n)
{
    size_t cap = 16;

    while (cap < 2 * n)
        cap <<= 1;
    ix->slots = xcalloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
}

static ssize_t index_find(const struct name_index *ix, const struct plan_block *b, const char *name)
{
    size_t h;

    for (h = name_hash(name) & ix->mask; ix->slots[h] != 0; h = (h + 1) & ix->mask) {
        if (strcmp(b->steps[ix->slots[h] - 1].name, name) == 0)
            return (ssize_t)(ix->slots[h] - 1);
    }
    return -1;
}

/* Add step i; returns the index of an earlier step with the same name, or -1. */
static ssize_t index_add(struct name_index *ix, const struct plan_block *b, size_t i)
{
    ssize_t dup = index_find(ix, b, b->steps[i].name);
    size_t h;

    if (dup >= 0)
        return dup;
    for (h = name_hash(b->steps[i].name) & ix->mask; ix->slots[h] != 0; h = (h + 1) & ix->mask)
        ;
    ix->slots[h] = i + 1;
    return -1;
}

static int unknown_dep(struct loader *ld, const cJSON *item, const struct plan_block *b,
                       const struct plan_step *self)
{
    const char **names = xcalloc(b->nsteps + 1, sizeof *names);
    const char *hint;
    size_t j, n = 0;
    int rc;

    /* A step may not depend on itself, so its own name is no suggestion. */
    for (j = 0; j < b->nsteps; j++) {
        if (&b->steps[j] != self)
            names[n++] = b->steps[j].name;
    }
    hint = cfg_suggest(item->valuestring, names);
    if (hint != NULL)
        rc = cfg_error(ld->cfg, ld->err, item,
                       "no step \"%.60s\" in this block; did you mean \"%s\"?", item->valuestring,
                       hint);
    else
        rc = cfg_error(ld->cfg, ld->err, item,
                       "no step \"%.60s\" in this block (depends_on names steps of the same block)",
                       item->valuestring);
    free(names);
    return rc;
}

static int load_deps(struct loader *ld, const cJSON *steps, struct plan_block *b,
                     const struct name_index *ix)
{
    size_t *seen = xcalloc(b->nsteps, sizeof *seen); /* seen[d] == i + 1: step i lists d */
    const cJSON *step, *deps, *item;
    size_t i = 0;
    int rc = 0;

    cJSON_ArrayForEach(step, steps)
    {
        struct plan_step *s = &b->steps[i++];

        deps = cfg_get(ld->cfg, step, "depends_on", cJSON_Array, false, ld->err);
        if (deps == NULL && cfg_has(step, "depends_on")) {
            rc = -1;
            break;
        }
        if (deps == NULL)
            continue;
        cJSON_ArrayForEach(item, deps)
        {
            ssize_t d;

            if (!cJSON_IsString(item)) {
                rc = cfg_error(ld->cfg, ld->err, item, "expected a step name, got %s",
                               cfg_type_name(item));
                goto out;
            }
            d = index_find(ix, b, item->valuestring);
            if (d < 0) {
                rc = unknown_dep(ld, item, b, s);
                goto out;
            }
            if ((size_t)d == (size_t)(s - b->steps)) {
                rc = cfg_error(ld->cfg, ld->err, item, "step \"%s\" cannot depend on itself",
                               s->name);
                goto out;
            }
            if (seen[d] == i) {
                rc = cfg_error(ld->cfg, ld->err, item, "\"%s\" is listed twice", item->valuestring);
                goto out;
            }
            seen[d] = i;
            s->deps = xreallocarray(s->deps, s->ndeps + 1, sizeof *s->deps);
            s->deps[s->ndeps++] = (size_t)d;
            b->steps[d].dependents =
                xreallocarray(b->steps[d].dependents, b->steps[d].ndependents + 1, sizeof(size_t));
            b->steps[d].dependents[b->steps[d].ndependents++] = (size_t)(s - b->steps);
        }
    }
out:
    free(seen);
    return rc;
}

#define CYCLE_SHOWN 8 /* steps of a long cycle named at each end of the message */

/* Describe the cycle stack[from..top] -> stack[from] as "a -> b -> a", long ones shortened. */
static void describe_cycle(const struct plan_block *b, const size_t *stack, size_t from, size_t top,
                           struct buf *out)
{
    size_t j, len = top - from + 1;

    for (j = from; j <= top; j++) {
        if (len > 2 * CYCLE_SHOWN && j == from + CYCLE_SHOWN) {
            buf_addf(out, "... (%zu more) -> ", len - 2 * CYCLE_SHOWN);
            j = top - CYCLE_SHOWN;
            continue;
        }
        buf_addf(out, "%s -> ", b->steps[stack[j]].name);
    }
    buf_adds(out, b->steps[stack[from]].name);
}

/*
 * Depth-first search for a cycle, with an explicit stack (a chain of 100,000 steps would
 * overflow the C stack). color: 0 unseen, 1 on the current path, 2 done.
 */
static bool find_cycle(const struct plan_block *b, size_t root, unsigned char *color, size_t *stack,
                       size_t *next, struct buf *out)
{
    size_t top = 0, j;

    stack[0] = root;
    next[0] = 0;
    color[root] = 1;
    for (;;) {
        const struct plan_step *s = &b->steps[stack[top]];

        if (next[top] < s->ndeps) {
            size_t d = s->deps[next[top]++];

            if (color[d] == 1) {
                for (j = 0; stack[j] != d; j++)
                    ;
                describe_cycle(b, stack, j, top, out);
                return true;
            }
            if (color[d] == 0) {
                color[d] = 1;
                stack[++top] = d;
                next[top] = 0;
            }
            continue;
        }
        color[stack[top]] = 2;
        if (top == 0)
            return false;
        top--;
    }
}

static int check_cycles(struct loader *ld, const cJSON *steps, const struct plan_block *b)
{
    unsigned char *color = xcalloc(b->nsteps, 1);
    size_t *stack = xcalloc(b->nsteps, sizeof *stack);
    size_t *next = xcalloc(b->nsteps, sizeof *next);
    struct buf cycle;
    size_t i;
    int rc = 0;

    buf_init(&cycle);
    for (i = 0; i < b->nsteps && rc == 0; i++) {
        if (color[i] == 0 && find_cycle(b, i, color, stack, next, &cycle))
            rc = cfg_error(ld->cfg, ld->err, steps,
                           "depends_on has a cycle: %s (each step would wait for itself)",
                           cycle.data);
    }
    buf_done(&cycle);
    free(next);
    free(stack);
    free(color);
    return rc;
}

static int load_block(struct loader *ld, const cJSON *obj, struct plan_block *b, const char *name,
                      const struct retry_policy *inherit, unsigned depth)
{
    const cJSON *steps, *step;
    int64_t conc = 10;
    int strategy = PLAN_ALL, reduce = PLAN_REDUCE_NONE, rc = 0;
    struct name_index ix;
    size_t i, n;

    b->name = xstrdup(name);
    b->depth = depth;
    b->max_concurrency = 10;
    b->timeout_ms = 300000;
    b->retry = *inherit;
    if (depth > PLAN_MAX_DEPTH)
        return cfg_error(ld->cfg, ld->err, obj, "blocks are nested more than %d deep",
                         PLAN_MAX_DEPTH);
    if (cfg_check_object(ld->cfg, obj, depth == 0 ? root_keys : nested_keys, ld->err) != 0)
        return -1;
    if (get_enum(ld, obj, "strategy", strategy_names, -1, &strategy) != 0)
        return -1;
    b->strategy = (enum plan_strategy)strategy;
    if (get_enum(ld, obj, "reduce", reduce_names, PLAN_REDUCE_NONE, &reduce) != 0)
        return -1;
    b->reduce = (enum plan_reduce)reduce;
    if (b->strategy == PLAN_MAP_REDUCE && b->reduce == PLAN_REDUCE_NONE)
        return cfg_error(ld->cfg, ld->err, obj,
                         "strategy map_reduce needs \"reduce\": one of sum, count, concat, merge");
    if (b->strategy != PLAN_MAP_REDUCE && cfg_has(obj, "reduce"))
        return cfg_key_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(obj, "reduce"),
                             "\"reduce\" applies to strategy map_reduce, not %s",
                             strategy_names[b->strategy]);
    if (cfg_get_int(ld->cfg, obj, "max_concurrency", false, 1, 10000, &conc, ld->err) != 0)
        return -1;
    b->max_concurrency = (unsigned)conc;
    if (get_seconds(ld, obj, "timeout_seconds", 0.001, 2592000, &b->timeout_ms) != 0)
        return -1;
    if (cfg_get_bool(ld->cfg, obj, "fail_fast", false, &b->fail_fast, ld->err) != 0)
        return -1;
    if (cfg_has(obj, "fail_fast") && b->strategy != PLAN_ALL && b->strategy != PLAN_MAP_REDUCE)
        return cfg_key_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(obj, "fail_fast"),
                             "\"fail_fast\" applies to strategies all and map_reduce, not %s",
                             strategy_names[b->strategy]);
    if (cfg_get_number(ld->cfg, obj, "max_fail_percent", false, 0, 100, &b->max_fail_percent,
                       ld->err) != 0)
        return -1;
    if (cfg_has(obj, "max_fail_percent") && b->strategy != PLAN_ALL)
        return cfg_key_error(
            ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(obj, "max_fail_percent"),
            "\"max_fail_percent\" applies to strategy all, not %s", strategy_names[b->strategy]);
    if (load_retry(ld, obj, &b->retry) != 0)
        return -1;

    steps = cfg_get(ld->cfg, obj, "steps", cJSON_Array, true, ld->err);
    if (steps == NULL)
        return -1;
    n = (size_t)cJSON_GetArraySize(steps);
    if (n == 0)
        return cfg_error(ld->cfg, ld->err, steps, "a block needs at least one step");
    if (ld->plan->total_steps + n > PLAN_MAX_STEPS)
        return cfg_error(ld->cfg, ld->err, steps, "a plan has at most %d steps, this one has more",
                         PLAN_MAX_STEPS);
    ld->plan->total_steps += n;
    b->steps = xcalloc(n, sizeof *b->steps);
    index_init(&ix, n);
    i = 0;
    cJSON_ArrayForEach(step, steps)
    {
        ssize_t dup;

        b->nsteps = i + 1; /* what plan_free frees, also when this step fails half-built */
        if (load_step(ld, step, b, &b->steps[i]) != 0) {
            rc = -1;
            goto out;
        }
        dup = index_add(&ix, b, i);
        if (dup >= 0) {
            rc = cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(step, "name"),
                           "duplicate step name \"%s\" (also steps[%zd]); names are unique in "
                           "a block",
                           b->steps[i].name, dup);
            goto out;
        }
        i++;
    }
    if (load_deps(ld, steps, b, &ix) != 0 || check_cycles(ld, steps, b) != 0)
        rc = -1;
out:
    free(ix.slots);
    return rc;
}

static void block_done(struct plan_block *b)
{
    size_t i;

    for (i = 0; i < b->nsteps; i++) {
        struct plan_step *s = &b->steps[i];

        free(s->name);
        strv_free(s->argv);
        free(s->shell);
        strv_free(s->env);
        free(s->cwd);
        free(s->deps);
        free(s->dependents);
        free(s->command);
        free(s->target);
        if (s->fanout != NULL) {
            strv_free(s->fanout->selectors);
            free(s->fanout->where);
            free(s->fanout);
        }
        if (s->block != NULL) {
            block_done(s->block);
            free(s->block);
        }
    }
    free(b->steps);
    free(b->name);
}

void plan_free(struct plan *p)
{
    if (p == NULL)
        return;
    block_done(&p->root);
    free(p->source);
    free(p);
}

/* The file's name without directory and extension, if it makes a valid name; else "plan". */
static char *plan_default_name(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base), i;

    if (n == 0 || n > PLAN_NAME_MAX)
        return xstrdup("plan");
    for (i = 0; i < n; i++) {
        if (!valid_name_char(base[i]))
            return xstrdup("plan");
    }
    return xstrndup(base, n);
}

static int plan_from_cfg(const struct cfg *c, struct plan **out, struct err *err)
{
    struct plan *p = xcalloc(1, sizeof *p);
    struct loader ld = {c, p, err};
    const cJSON *root = cfg_root(c);
    struct retry_policy retry;
    const char *name = NULL;
    char *base = plan_default_name(cfg_name(c));
    int64_t version = PLAN_FORMAT_VERSION, limit = 65536;

    p->source = xstrdup(cfg_name(c));
    p->kill_grace_ms = 5000;
    retry_policy_default(&retry);
    if (!cJSON_IsObject(root)) {
        cfg_error(c, err, root,
                  "a plan is a JSON object (a block with \"steps\"), got %s; see docs/plan.md",
                  cfg_type_name(root));
        goto fail;
    }
    if (cfg_get_int(c, root, "version", false, PLAN_FORMAT_VERSION, PLAN_FORMAT_VERSION, &version,
                    err) != 0 ||
        cfg_get_string(c, root, "name", false, &name, err) != 0 ||
        get_seconds(&ld, root, "kill_grace_seconds", 0, 600, &p->kill_grace_ms) != 0 ||
        cfg_get_int(c, root, "output_limit_bytes", false, 1024, 64 * 1024 * 1024, &limit, err) != 0)
        goto fail;
    if (name == NULL)
        name = base;
    if (check_name(&ld, cJSON_GetObjectItemCaseSensitive(root, "name"), name, "plan") != 0)
        goto fail;
    p->output_limit = (size_t)limit;
    if (load_block(&ld, root, &p->root, name, &retry, 0) != 0)
        goto fail;
    free(base);
    *out = p;
    return 0;
fail:
    free(base);
    plan_free(p);
    return -1;
}

int plan_load_file(const char *path, struct plan **out, struct err *err)
{
    struct cfg *c;
    int rc;

    if (cfg_load_file(path, PLAN_FILE_MAX_BYTES, &c, err) != 0)
        return -1;
    rc = plan_from_cfg(c, out, err);
    cfg_free(c);
    return rc;
}

int plan_load_string(const char *name, const char *text, size_t len, struct plan **out,
                     struct err *err)
{
    struct cfg *c;
    int rc;

    if (cfg_load_string(name, text, len, &c, err) != 0)
        return -1;
    rc = plan_from_cfg(c, out, err);
    cfg_free(c);
    return rc;
}

/* ---- remote steps ---- */

static int expand_block(struct plan *p, struct plan_block *b, plan_resolve_fn resolve, void *arg,
                        struct err *err);

static int expand_step(struct plan *p, struct plan_block *parent, struct plan_step *s,
                       plan_resolve_fn resolve, void *arg, struct err *err)
{
    struct plan_fanout *f = s->fanout;
    struct plan_block *b;
    char **names = NULL;
    size_t n = 0, i, j, k;

    for (i = 0; f->selectors[i] != NULL; i++) {
        if (resolve(arg, f->selectors[i], &names, &n, err) != 0) {
            err_prefix(err, "%s: ", f->where);
            strv_free(names);
            return -1;
        }
    }
    /* A target selected twice (by name and by label) runs once, where it came first. */
    for (i = k = 0; i < n; i++) {
        for (j = 0; j < k && strcmp(names[j], names[i]) != 0; j++)
            ;
        if (j < k)
            free(names[i]);
        else
            names[k++] = names[i];
    }
    n = k;
    if (names != NULL)
        names[n] = NULL;
    if (n == 0) {
        strv_free(names);
        return err_set(err, "%s: no target matches; check the names and labels in n3.json",
                       f->where);
    }
    if (p->total_steps + n > PLAN_MAX_STEPS) {
        strv_free(names);
        return err_set(err, "%s: a plan has at most %d steps, this one has more", f->where,
                       PLAN_MAX_STEPS);
    }
    p->total_steps += n;
    b = xcalloc(1, sizeof *b);
    b->name = xstrdup(s->name);
    b->strategy = PLAN_ALL;
    b->max_concurrency = f->max_concurrency;
    b->max_fail_percent = f->max_fail_percent;
    b->timeout_ms = parent->timeout_ms;
    b->retry = s->retry;
    b->depth = parent->depth + 1;
    b->nsteps = n;
    b->steps = xcalloc(n, sizeof *b->steps);
    for (i = 0; i < n; i++) {
        struct plan_step *t = &b->steps[i];

        t->name = names[i]; /* taken */
        t->kind = PLAN_STEP_REMOTE;
        t->target = xstrdup(names[i]);
        t->command = xstrdup(s->command);
        t->timeout_ms = s->timeout_ms; /* per attempt on each target */
        t->retry = s->retry;
        t->result = s->result;
    }
    free(names);
    s->kind = PLAN_STEP_PARALLEL;
    s->block = b;
    s->timeout_ms = 0;
    strv_free(f->selectors);
    free(f->where);
    free(f);
    s->fanout = NULL;
    return 0;
}

static int expand_block(struct plan *p, struct plan_block *b, plan_resolve_fn resolve, void *arg,
                        struct err *err)
{
    size_t i;

    for (i = 0; i < b->nsteps; i++) {
        struct plan_step *s = &b->steps[i];

        if (s->kind == PLAN_STEP_FANOUT && expand_step(p, b, s, resolve, arg, err) != 0)
            return -1;
        else if (s->kind == PLAN_STEP_PARALLEL && s->block->depth > b->depth &&
                 expand_block(p, s->block, resolve, arg, err) != 0)
            return -1;
    }
    return 0;
}

int plan_expand_remote(struct plan *p, plan_resolve_fn resolve, void *arg, struct err *err)
{
    return expand_block(p, &p->root, resolve, arg, err);
}

static bool block_has_remote(const struct plan_block *b)
{
    size_t i;

    for (i = 0; i < b->nsteps; i++) {
        const struct plan_step *s = &b->steps[i];

        if (s->kind == PLAN_STEP_FANOUT || s->kind == PLAN_STEP_REMOTE ||
            (s->kind == PLAN_STEP_PARALLEL && block_has_remote(s->block)))
            return true;
    }
    return false;
}

bool plan_has_remote(const struct plan *p)
{
    return block_has_remote(&p->root);
}

struct plan *plan_new_remote(const char *name, const char *const *selectors, const char *command,
                             unsigned max_concurrency, uint64_t timeout_ms)
{
    struct plan *p = xcalloc(1, sizeof *p);
    struct plan_step *s;
    size_t i, n = 0;

    p->source = xstrdup("(command line)");
    p->kill_grace_ms = 5000;
    p->output_limit = 65536;
    p->total_steps = 1;
    p->root.name = xstrdup(name);
    p->root.strategy = PLAN_ALL;
    p->root.max_concurrency = 1;
    p->root.timeout_ms = 2592000000u; /* the per-target timeout is what bounds a command */
    retry_policy_default(&p->root.retry);
    p->root.nsteps = 1;
    p->root.steps = s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->kind = PLAN_STEP_FANOUT;
    s->command = xstrdup(command);
    s->timeout_ms = timeout_ms;
    s->retry = p->root.retry;
    s->fanout = xcalloc(1, sizeof *s->fanout);
    s->fanout->max_concurrency = max_concurrency;
    s->fanout->where = xstrdup("-H");
    for (i = 0; selectors[i] != NULL; i++)
        s->fanout->selectors = strv_add(s->fanout->selectors, &n, xstrdup(selectors[i]));
    return p;
}
