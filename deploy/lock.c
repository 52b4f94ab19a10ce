/* The deploy lock: an atomic mkdir on the lock target, with who holds it and a lease. */
#include "config.h"

#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/lock.h"
#include "deploy/transport.h"

struct dlock {
    struct loop *loop;
    struct transport *t;
    char *dir;  /* <deploy_path>/.n3 */
    char *path; /* <deploy_path>/.n3/lock */
    uint64_t lease_ms;
    bool held, lost, renewing;
    bool free_pending; /* freed while a renewal was in flight: its answer frees it */
    bool has_takeover;
    struct lock_info mine, taken_over;
    struct loop_timer *renew;
    struct op *after_renew; /* a removal of ours, waiting for the renewal in flight */
};

/* One operation in flight: what to do with the command's answer. */
enum step { ST_STATUS, ST_ACQUIRE, ST_TAKEOVER, ST_RELEASE_STATUS, ST_RELEASE, ST_RENEW };

struct op {
    struct dlock *l;
    enum step step;
    bool force, lease;
    bool check_only;         /* ST_RELEASE_STATUS: answer which lock would go, remove nothing */
    struct lock_info expect; /* ST_RELEASE: the lock to remove */
    char *who;
    lock_fn done;
    void *arg;
};

static void op_free(struct op *o)
{
    free(o->who);
    free(o);
}

static bool operator_ok(const char *op)
{
    size_t i;

    if (op[0] == '\0' || strlen(op) > 64)
        return false;
    for (i = 0; op[i] != '\0'; i++) {
        if (!isalnum((unsigned char)op[i]) && strchr("._-", op[i]) == NULL)
            return false;
    }
    return true;
}

/* user@host into out; how long it is (it fits when that is less than len). */
static int whoami(char *out, size_t len)
{
    char host[256] = "localhost";
    const char *user = getenv("USER");
    struct passwd *pw = getpwuid(getuid());
    const char *op = getenv("N3CTL_OPERATOR");

    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (pw != NULL && pw->pw_name != NULL)
        user = pw->pw_name;
    /* On a shared deploy account: who is at the keyboard, when they say. */
    if (op != NULL && operator_ok(op))
        user = op;
    return snprintf(out, len, "%s@%s", user != NULL ? user : "unknown", host);
}

int dlock_check_operator(struct err *err)
{
    const char *op = getenv("N3CTL_OPERATOR");
    char who[LOCK_WHO_MAX];
    int n;

    if (op != NULL && !operator_ok(op))
        return err_set(err,
                       "N3CTL_OPERATOR must be a name of 1 to 64 letters, digits, '.', '_' or "
                       "'-' (it stands for the user in user@host in the lock and the audit log)");
    /* Cut short, it would not match the lock it wrote, nor say who wrote the audit record. */
    n = whoami(who, sizeof who);
    if (n < 0 || (size_t)n >= sizeof who)
        return err_set(err,
                       "user@host \"%.40s...\" is %d characters, more than the %d the deploy "
                       "lock and the audit log hold: set N3CTL_OPERATOR to a shorter name (it "
                       "stands for the user)",
                       who, n, LOCK_WHO_MAX - 1);
    return 0;
}

void dlock_whoami(char *out, size_t len)
{
    whoami(out, len);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

struct dlock *dlock_new(struct loop *loop, struct transport *t, const char *deploy_path,
                        uint64_t lease_ms)
{
    struct dlock *l = xcalloc(1, sizeof *l);

    l->loop = loop;
    l->t = t;
    l->dir = xasprintf("%s/.n3", deploy_path);
    l->path = xasprintf("%s/.n3/lock", deploy_path);
    l->lease_ms = lease_ms;
    return l;
}

static void dlock_destroy(struct dlock *l)
{
    free(l->dir);
    free(l->path);
    free(l);
}

void dlock_free(struct dlock *l)
{
    if (l == NULL)
        return;
    loop_timer_free(l->renew);
    l->renew = NULL;
    if (l->renewing)
        l->free_pending = true;
    else
        dlock_destroy(l);
}

bool dlock_held(const struct dlock *l)
{
    return l->held && !l->lost;
}

bool dlock_lost(const struct dlock *l)
{
    return l->lost;
}

const struct lock_info *dlock_taken_over(const struct dlock *l)
{
    return l->has_takeover ? &l->taken_over : NULL;
}

const struct lock_info *dlock_mine(const struct dlock *l)
{
    return &l->mine;
}

static char *info_json(const struct lock_info *i)
{
    cJSON *o = cJSON_CreateObject();
    char *text, *out;

    cJSON_AddStringToObject(o, "who", i->who);
    cJSON_AddNumberToObject(o, "pid", (double)i->pid);
    cJSON_AddStringToObject(o, "message", i->message);
    cJSON_AddNumberToObject(o, "since", (double)i->since);
    cJSON_AddNumberToObject(o, "lease_until", (double)i->lease_until);
    cJSON_AddStringToObject(o, "token", i->token);
    text = cJSON_PrintUnformatted(o);
    out = xstrdup(text);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* The command's answer: a first word, maybe "mtime N", then info.json. */
static void parse_answer(const char *text, char *word, size_t wlen, struct lock_info *info)
{
    const char *nl = strchr(text, '\n'), *rest;
    cJSON *o;

    memset(info, 0, sizeof *info);
    snprintf(word, wlen, "%.*s", (int)(nl != NULL ? (size_t)(nl - text) : strlen(text)), text);
    rest = nl != NULL ? nl + 1 : "";
    if (strncmp(rest, "mtime ", 6) == 0) {
        info->dir_mtime = strtoll(rest + 6, NULL, 10);
        nl = strchr(rest, '\n');
        rest = nl != NULL ? nl + 1 : "";
    }
    if (strcmp(word, "held") != 0 && strcmp(word, "changed") != 0 && strcmp(word, "status") != 0)
        return;
    o = cJSON_Parse(rest);
    if (o == NULL) {
        /* The directory is there, its info is not (being written, or a crash in between). */
        info->present = strcmp(word, "status") != 0 || info->dir_mtime > 0;
        info->partial = info->present;
        return;
    }
    info->present = true;
    {
        const cJSON *v;

        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "who"))) {
            info->who_cut = strlen(v->valuestring) >= sizeof info->who;
            snprintf(info->who, sizeof info->who, "%s", v->valuestring);
        }
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "pid")))
            info->pid = (long)v->valuedouble;
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "message")))
            snprintf(info->message, sizeof info->message, "%s", v->valuestring);
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "since")))
            info->since = (int64_t)v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "lease_until")))
            info->lease_until = (int64_t)v->valuedouble;
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "token")))
            snprintf(info->token, sizeof info->token, "%s", v->valuestring);
    }
    cJSON_Delete(o);
}

/* Has the holder stopped renewing? A lock by hand (no lease) never goes stale. */
static bool stale(const struct dlock *l, const struct lock_info *i)
{
    int64_t now = now_s();

    if (i->partial)
        return i->dir_mtime > 0 && now - i->dir_mtime > (int64_t)(l->lease_ms / 1000) + 1;
    return i->lease_until != 0 && i->lease_until < now;
}

static void op_done(struct op *o, enum lock_result r, const struct lock_info *holder,
                    const char *msg)
{
    o->done(o->arg, r, holder, msg);
    op_free(o);
}

static void run_step(struct op *o, const char *command);

/* "held" + mtime + info.json: what a refused or curious command prints about the lock. */
static void add_show(struct buf *cmd, const struct dlock *l)
{
    shell_cmdf(cmd, "stat -c 'mtime %%Y' -- %s 2>/dev/null; cat -- %s/info.json 2>/dev/null; ",
               l->path, l->path);
}

static void renew_cb(void *arg);

static void start_renewal(struct dlock *l)
{
    if (l->renew == NULL)
        l->renew = loop_timer_new(l->loop, renew_cb, l);
    loop_timer_start(l->renew, l->lease_ms / 3);
}

static void become_holder(struct dlock *l, const struct lock_info *mine)
{
    l->held = true;
    l->lost = false;
    l->mine = *mine;
    if (mine->lease_until != 0)
        start_renewal(l);
}

/* Is i the lock this process holds? */
static bool is_mine(const struct dlock *l, const struct lock_info *i)
{
    return l->held && !i->partial && i->token[0] != '\0' && strcmp(i->token, l->mine.token) == 0;
}

static void run_remove(struct op *o);

/* A renewal answered (word; NULL: it failed): renew again, or run the removal that waited. */
static void renew_answered(struct dlock *l, struct op *o, const char *word)
{
    struct op *next = l->after_renew;

    l->renewing = false;
    l->after_renew = NULL;
    op_free(o);
    if (l->free_pending) {
        if (next != NULL)
            op_free(next);
        dlock_destroy(l);
        return;
    }
    if (word != NULL && strcmp(word, "renewed") != 0)
        l->lost = true;
    if (next != NULL)
        run_remove(next);
    else if (!l->lost)
        start_renewal(l); /* after a failure, a blip: the lease has room for two misses */
}

static void answer_cb(void *arg, const struct transport_result *r)
{
    struct op *o = arg;
    struct dlock *l = o->l;
    struct lock_info info;
    char word[32], *text;

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char why[ERR_MSG_MAX];
        char *err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        snprintf(why, sizeof why, "the lock on %.100s: %.600s%s%.200s", l->t->name,
                 r->status != TRANSPORT_OK ? r->msg : "the lock commands failed",
                 err[0] != '\0' ? ": " : "", err);
        free(err);
        if (o->step == ST_RENEW) {
            renew_answered(l, o, NULL);
            return;
        }
        /* Ours is still held when it could not be removed: keep its lease running. */
        if (o->step == ST_RELEASE && is_mine(l, &o->expect) && l->mine.lease_until != 0 && !l->lost)
            start_renewal(l);
        op_done(o, LOCK_ERROR, NULL, why);
        return;
    }
    text = tail_dup(r->out, NULL);
    parse_answer(text, word, sizeof word, &info);
    free(text);
    switch (o->step) {
    case ST_STATUS:
        op_done(o, LOCK_OK, &info, NULL);
        return;
    case ST_ACQUIRE:
    case ST_TAKEOVER:
        if (strcmp(word, "acquired") == 0) {
            if (o->step == ST_TAKEOVER)
                l->has_takeover = true;
            become_holder(l, &l->mine);
            op_done(o, LOCK_OK, &l->mine, NULL);
            return;
        }
        /* Held: take it over when asked to and its holder is gone. */
        if (o->step == ST_ACQUIRE && o->force && info.present && stale(l, &info)) {
            struct buf cmd;
            char *json = info_json(&l->mine), *stale_name;

            l->taken_over = info;
            buf_init(&cmd);
            stale_name = xasprintf("%s.stale.%08x", l->path, loop_random(l->loop));
            /* Only the lock we judged stale (same token, or still without info) is moved away. */
            if (info.partial)
                shell_cmdf(&cmd, "[ -e %s/info.json ] && { echo changed; ", l->path);
            else
                shell_cmdf(&cmd, "grep -qF -- %s %s/info.json 2>/dev/null || { echo changed; ",
                           info.token, l->path);
            add_show(&cmd, l);
            shell_cmdf(&cmd,
                       "exit 0; }; mv -T -- %s %s 2>/dev/null || { echo changed; exit 0; }; "
                       "if mkdir -- %s 2>/dev/null; then printf '%%s' %s > %s/info.json.tmp && "
                       "mv -f -- %s/info.json.tmp %s/info.json && echo acquired; rm -rf -- %s; "
                       "exit 0; fi; rm -rf -- %s; echo held; ",
                       l->path, stale_name, l->path, json, l->path, l->path, l->path, stale_name,
                       stale_name);
            add_show(&cmd, l);
            buf_adds(&cmd, "exit 0");
            o->step = ST_TAKEOVER;
            run_step(o, cmd.data);
            buf_done(&cmd);
            free(json);
            free(stale_name);
            return;
        }
        op_done(o, LOCK_HELD, &info, NULL);
        return;
    case ST_RELEASE_STATUS:
        if (!info.present) {
            op_done(o, LOCK_OK, &info, "there is no lock");
            return;
        }
        /* A lock taken by hand is released by the same user@host; otherwise --force. */
        if (!o->force && (info.who_cut || strcmp(info.who, o->who) != 0)) {
            op_done(o, LOCK_HELD, &info, NULL);
            return;
        }
        if (o->check_only) {
            op_done(o, LOCK_OK, &info, NULL);
            return;
        }
        o->step = ST_RELEASE;
        o->expect = info;
        run_remove(o);
        return;
    case ST_RELEASE: {
        bool mine = is_mine(l, &o->expect);

        /* Whatever the answer, ours is not held any more: removed, gone, or someone else's. */
        if (mine)
            l->held = false;
        if (strcmp(word, "released") == 0)
            op_done(o, LOCK_OK, &o->expect, NULL);
        else if (!info.present)
            op_done(o, LOCK_OK, &info, "there is no lock");
        else
            op_done(o, LOCK_HELD, &info, NULL);
        return;
    }
    case ST_RENEW:
        renew_answered(l, o, word);
        return;
    }
}

static void run_step(struct op *o, const char *command)
{
    transport_sh(o->l->t, command, 30000, 0, answer_cb, o);
}

static struct op *op_new(struct dlock *l, enum step step, lock_fn done, void *arg)
{
    struct op *o = xcalloc(1, sizeof *o);

    o->l = l;
    o->step = step;
    o->done = done;
    o->arg = arg;
    return o;
}

/* Read who holds the lock, for an op at a status step. */
static void run_status(struct op *o)
{
    struct buf cmd;

    buf_init(&cmd);
    shell_cmdf(&cmd, "echo status; [ -d %s ] || exit 0; ", o->l->path);
    add_show(&cmd, o->l);
    buf_adds(&cmd, "exit 0");
    run_step(o, cmd.data);
    buf_done(&cmd);
}

void dlock_status(struct dlock *l, lock_fn done, void *arg)
{
    run_status(op_new(l, ST_STATUS, done, arg));
}

void dlock_acquire(struct dlock *l, const char *who, long pid, const char *message, bool lease,
                   bool force, lock_fn done, void *arg)
{
    struct op *o = op_new(l, ST_ACQUIRE, done, arg);
    struct buf cmd;
    char *json;
    unsigned i;

    o->force = force;
    o->lease = lease;
    memset(&l->mine, 0, sizeof l->mine);
    l->mine.present = true;
    snprintf(l->mine.who, sizeof l->mine.who, "%s", who);
    l->mine.pid = pid;
    snprintf(l->mine.message, sizeof l->mine.message, "%s", message != NULL ? message : "");
    l->mine.since = now_s();
    l->mine.lease_until = lease ? l->mine.since + (int64_t)(l->lease_ms / 1000) : 0;
    for (i = 0; i < 4; i++)
        snprintf(l->mine.token + 8 * i, 9, "%08x", loop_random(l->loop));
    json = info_json(&l->mine);
    buf_init(&cmd);
    shell_cmdf(&cmd,
               "mkdir -p -- %s || exit 2; if mkdir -- %s 2>/dev/null; then printf '%%s' %s > "
               "%s/info.json.tmp && mv -f -- %s/info.json.tmp %s/info.json || { rm -rf -- %s; "
               "exit 2; }; echo acquired; exit 0; fi; echo held; ",
               l->dir, l->path, json, l->path, l->path, l->path, l->path);
    add_show(&cmd, l);
    buf_adds(&cmd, "exit 0");
    run_step(o, cmd.data);
    buf_done(&cmd);
    free(json);
}

/* Remove the lock o->expect, if it is still that one (its token; a half-made lock, while it is
 * still without info). */
static void run_remove(struct op *o)
{
    struct dlock *l = o->l;
    struct buf cmd;

    if (is_mine(l, &o->expect)) {
        loop_timer_free(l->renew);
        l->renew = NULL;
        /* A renewal writes info.json.tmp in the directory: an rm -rf beside it can find the
         * directory not empty at its end. After the renewal, then. */
        if (l->renewing) {
            l->after_renew = o;
            return;
        }
    }
    buf_init(&cmd);
    if (o->expect.partial)
        shell_cmdf(&cmd, "if [ -d %s ] && [ ! -e %s/info.json ]; then ", l->path, l->path);
    else
        shell_cmdf(&cmd, "if grep -qF -- %s %s/info.json 2>/dev/null; then ", o->expect.token,
                   l->path);
    /* Once more when the first finds the directory not empty: someone else's renewal wrote in
     * it meanwhile (a lock broken with --force). */
    shell_cmdf(&cmd,
               "rm -rf -- %s 2>/dev/null || rm -rf -- %s || exit 2; echo released; exit 0; fi; "
               "echo changed; ",
               l->path, l->path);
    add_show(&cmd, l);
    buf_adds(&cmd, "exit 0");
    run_step(o, cmd.data);
    buf_done(&cmd);
}

void dlock_release(struct dlock *l, const char *who, bool force, lock_fn done, void *arg)
{
    struct op *o;

    /* Ours: by token, in one command. */
    if (l->held && !force) {
        dlock_remove(l, &l->mine, done, arg);
        return;
    }
    /* Someone's (by hand, or --force): look first. */
    o = op_new(l, ST_RELEASE_STATUS, done, arg);
    o->force = force;
    o->who = xstrdup(who);
    run_status(o);
}

void dlock_release_check(struct dlock *l, const char *who, bool force, lock_fn done, void *arg)
{
    struct op *o = op_new(l, ST_RELEASE_STATUS, done, arg);

    o->force = force;
    o->check_only = true;
    o->who = xstrdup(who);
    run_status(o);
}

void dlock_remove(struct dlock *l, const struct lock_info *holder, lock_fn done, void *arg)
{
    struct op *o = op_new(l, ST_RELEASE, done, arg);

    o->expect = *holder;
    run_remove(o);
}

static void renew_cb(void *arg)
{
    struct dlock *l = arg;
    struct op *o;
    struct buf cmd;
    char *json;

    if (!l->held || l->lost || l->renewing)
        return;
    l->renewing = true;
    l->mine.lease_until = now_s() + (int64_t)(l->lease_ms / 1000);
    json = info_json(&l->mine);
    o = op_new(l, ST_RENEW, NULL, NULL);
    buf_init(&cmd);
    shell_cmdf(&cmd,
               "grep -qF -- %s %s/info.json 2>/dev/null && printf '%%s' %s > %s/info.json.tmp && "
               "mv -f -- %s/info.json.tmp %s/info.json && echo renewed || echo lost",
               l->mine.token, l->path, json, l->path, l->path, l->path);
    run_step(o, cmd.data);
    buf_done(&cmd);
    free(json);
}
