/* The deploy lock: one command under flock on the lock target for each decision about it. */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/lock.h"
#include "deploy/transport.h"

/* Seconds a lock command waits for another one's flock (each holds it for a few commands). */
#define FLOCK_WAIT_S 20
/* The answer's lines start with this; anything else on stdout is not the lock's. */
#define TAG "n3lock:"

/* A command that waits for a confirmation of the lock (a fenced change). */
struct waiter {
    void (*ready)(void *arg);
    void *arg;
    struct waiter *next;
};

struct dlock {
    struct loop *loop;
    struct transport *t;
    char *dir;  /* <deploy_path>/.n3 */
    char *path; /* <deploy_path>/.n3/lock */
    uint64_t lease_ms;
    bool held, lost, renewing, adopted;
    bool free_pending; /* freed while a renewal was in flight: its answer frees it */
    bool has_takeover;
    struct lock_info mine, taken_over;
    char lost_why[ERR_MSG_MAX];
    uint64_t confirmed_ms; /* loop time a renewal (or the acquire) that answered was sent */
    uint64_t renew_sent_ms;
    uint64_t broken_fence;
    struct loop_timer *renew;
    struct op *after_renew; /* a removal of ours, waiting for the renewal in flight */
    struct waiter *waiters;
    const char *waking_failed; /* the waiters woken now: their renewal failed, so (why) */
    struct transport_fence fence;
};

/* One operation in flight: what to do with the command's answer. */
enum step { ST_STATUS, ST_ACQUIRE, ST_RELEASE_STATUS, ST_RELEASE, ST_RENEW };

struct op {
    struct dlock *l;
    enum step step;
    bool force;
    bool check_only;         /* ST_RELEASE_STATUS: answer which lock would go, remove nothing */
    bool break_fence;        /* ST_RELEASE: a lock broken, not given back */
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

static int confirm_cb(void *arg, void (*ready)(void *), void *ready_arg, char *why, size_t len);
static void forget_cb(void *arg, void (*ready)(void *), void *ready_arg);
static void refused_cb(void *arg, const char *target, uint64_t theirs);

struct dlock *dlock_new(struct loop *loop, struct transport *t, const char *deploy_path,
                        uint64_t lease_ms)
{
    struct dlock *l = xcalloc(1, sizeof *l);

    l->loop = loop;
    l->t = t;
    l->dir = xasprintf("%s/.n3", deploy_path);
    l->path = xasprintf("%s/.n3/lock", deploy_path);
    l->lease_ms = lease_ms;
    l->fence.confirm = confirm_cb;
    l->fence.forget = forget_cb;
    l->fence.refused = refused_cb;
    l->fence.arg = l;
    return l;
}

/* The waiting commands go on (to hear the answer: lost, or confirmed). */
static void wake_waiters(struct dlock *l)
{
    struct waiter *w = l->waiters, *next;

    l->waiters = NULL;
    for (; w != NULL; w = next) {
        next = w->next;
        w->ready(w->arg);
        free(w);
    }
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
    /* Whatever still waits to change a target must not: the lock is not watched any more. */
    if (!l->lost) {
        l->lost = true;
        snprintf(l->lost_why, sizeof l->lost_why, "the deploy lock is not held any more");
    }
    wake_waiters(l);
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
    return l->held && l->lost;
}

const char *dlock_lost_why(const struct dlock *l)
{
    return dlock_lost(l) ? l->lost_why : "";
}

const struct lock_info *dlock_taken_over(const struct dlock *l)
{
    return l->has_takeover ? &l->taken_over : NULL;
}

const struct lock_info *dlock_mine(const struct dlock *l)
{
    return &l->mine;
}

uint64_t dlock_broken_fence(const struct dlock *l)
{
    return l->broken_fence;
}

const struct transport_fence *dlock_fence(struct dlock *l)
{
    l->fence.number = l->mine.fence;
    return &l->fence;
}

static void set_lost(struct dlock *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_lost(struct dlock *l, const char *fmt, ...)
{
    va_list ap;

    if (l->lost)
        return;
    l->lost = true;
    va_start(ap, fmt);
    vsnprintf(l->lost_why, sizeof l->lost_why, fmt, ap);
    va_end(ap);
    loop_timer_stop(l->renew);
    wake_waiters(l);
}

/* info.json, without its fence: the lock command appends the number it gives ("...,"fence":
 * N}"), which only the lock target knows. */
static char *info_prefix(const struct lock_info *i)
{
    cJSON *o = cJSON_CreateObject();
    char *text, *out;
    size_t n;

    cJSON_AddNumberToObject(o, "version", 2);
    cJSON_AddStringToObject(o, "who", i->who);
    cJSON_AddNumberToObject(o, "pid", (double)i->pid);
    cJSON_AddStringToObject(o, "message", i->message);
    cJSON_AddNumberToObject(o, "since", (double)i->since);
    cJSON_AddNumberToObject(o, "lease_seconds", (double)i->lease_s);
    cJSON_AddStringToObject(o, "token", i->token);
    text = cJSON_PrintUnformatted(o);
    n = strlen(text);
    /* "{...}" -> "{...,"fence":" */
    out = xasprintf("%.*s,\"fence\":", (int)(n - 1), text);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* ---- the answer: "n3lock:KEY VALUE" lines, the last "n3lock:end" ---- */

struct answer {
    bool complete; /* it ended with n3lock:end */
    char result[32];
    char extra[200]; /* what follows the result word */
    uint64_t fence;  /* n3lock:fence, of a lock just made (or a broken one's successor) */
    int64_t now;
    struct lock_info info; /* the lock as it was when the command looked */
};

static int64_t num_or(const char *s, int64_t dflt)
{
    char *end;
    long long v;

    if (*s == '\0')
        return dflt;
    v = strtoll(s, &end, 10);
    return *end == '\0' ? (int64_t)v : dflt;
}

static bool hex_token(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    }
    return i == 32;
}

/* The holder's info.json (at most LOCK_INFO_MAX bytes, on one line). */
static void parse_info(struct lock_info *info, const char *json, int64_t size)
{
    cJSON *o;
    const cJSON *v;
    struct json_error je;

    if (size > LOCK_INFO_MAX) {
        info->unreadable = true;
        snprintf(info->why, sizeof info->why,
                 "info.json is %lld bytes, more than the %d a lock's info can be", (long long)size,
                 LOCK_INFO_MAX);
        return;
    }
    /* Exactly JSON: a who cut short at a \u0000 could pass for someone else's. */
    o = json != NULL ? json_parse(json, strlen(json), NULL, &je) : NULL;
    if (!cJSON_IsObject(o) || !cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "who")) ||
        v->valuestring[0] == '\0') {
        info->unreadable = true;
        snprintf(info->why, sizeof info->why, "%s",
                 json == NULL ? "info.json cannot be read"
                 : o == NULL  ? "info.json is not JSON"
                              : "info.json does not say who holds the lock");
        cJSON_Delete(o);
        return;
    }
    info->who_cut = strlen(v->valuestring) >= sizeof info->who;
    snprintf(info->who, sizeof info->who, "%s", v->valuestring);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "pid")))
        info->pid = (long)v->valuedouble;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "message")))
        snprintf(info->message, sizeof info->message, "%s", v->valuestring);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "since")))
        info->since = (int64_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "fence")) && v->valuedouble >= 1 &&
        v->valuedouble < 9e15)
        info->fence = (uint64_t)v->valuedouble;
    /* An older n3ctl's lock says when its lease ends by its own clock: not judged here. */
    if (info->lease_s < 0 &&
        cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "lease_until")) &&
        v->valuedouble == 0)
        info->lease_s = 0;
    cJSON_Delete(o);
}

static void parse_answer(const char *text, size_t len, uint64_t fallback_s, struct answer *a)
{
    const char *p = text, *end = text + len, *info_json = NULL;
    char *copy = NULL;
    int64_t size = -1, dirage = -1;
    bool has_info = false, present = false;
    struct lock_info *i = &a->info;

    memset(a, 0, sizeof *a);
    i->held_s = i->lease_s = i->age_s = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl != NULL ? nl : end;
        size_t n = (size_t)(eol - p);
        char line[LOCK_INFO_MAX + 64], *key, *val;

        if (n < sizeof line && n > strlen(TAG) && strncmp(p, TAG, strlen(TAG)) == 0) {
            memcpy(line, p + strlen(TAG), n - strlen(TAG));
            line[n - strlen(TAG)] = '\0';
            key = line;
            val = strchr(line, ' ');
            if (val != NULL)
                *val++ = '\0';
            else
                val = line + strlen(line);
            if (strcmp(key, "end") == 0)
                a->complete = true;
            else if (strcmp(key, "now") == 0)
                a->now = num_or(val, 0);
            else if (strcmp(key, "lock") == 0)
                present = strcmp(val, "present") == 0;
            else if (strcmp(key, "token") == 0 && hex_token(val))
                snprintf(i->token, sizeof i->token, "%s", val);
            else if (strcmp(key, "lease") == 0)
                i->lease_s = num_or(val, -1);
            else if (strcmp(key, "age") == 0)
                i->age_s = num_or(val, -1);
            else if (strcmp(key, "held") == 0)
                i->held_s = num_or(val, -1);
            else if (strcmp(key, "dirage") == 0)
                dirage = num_or(val, -1);
            else if (strcmp(key, "id") == 0)
                snprintf(i->id, sizeof i->id, "%s", val);
            else if (strcmp(key, "size") == 0) {
                size = num_or(val, -1);
                has_info = true;
            } else if (strcmp(key, "info") == 0) {
                free(copy);
                copy = xstrdup(val);
                info_json = copy;
            } else if (strcmp(key, "fence") == 0)
                a->fence = (uint64_t)num_or(val, 0);
            else if (strcmp(key, "result") == 0) {
                char *sp = strchr(val, ' ');

                if (sp != NULL) {
                    *sp = '\0';
                    snprintf(a->extra, sizeof a->extra, "%s", sp + 1);
                }
                snprintf(a->result, sizeof a->result, "%s", val);
            }
        }
        p = nl != NULL ? nl + 1 : end;
    }
    i->present = present;
    if (present) {
        if (!has_info && i->token[0] == '\0' && i->lease_s < 0) {
            /* An older n3ctl's mkdir, never followed by its info: judged by the directory's
             * age against our lease. */
            i->partial = true;
            i->stale = dirage >= 0 && dirage > (int64_t)fallback_s + 1;
        } else if (!has_info) {
            i->unreadable = true;
            snprintf(i->why, sizeof i->why, "it has no info.json");
        } else {
            parse_info(i, info_json, size);
        }
        if (!i->partial)
            i->stale = i->lease_s > 0 && i->age_s >= 0 && i->age_s > i->lease_s + 1;
    }
    free(copy);
}

/* ---- the commands ---- */

/*
 * What every lock command starts with: D (the .n3 directory), L (the lock), the flock (mode -x
 * or -s) on D/lock.flock, the target's clock in now, and n3d, which prints the lock as it is
 * (and sets tok and id). "n3lock:result noflock" when the target has no flock(1).
 */
static void add_preamble(struct buf *cmd, const struct dlock *l, const char *mode)
{
    shell_cmdf(cmd, "D=%s; L=%s; ", l->dir, l->path);
    buf_addf(cmd,
             "command -v flock >/dev/null 2>&1 || { echo " TAG "result noflock; echo " TAG
             "end; exit 0; }; exec 8>>\"$D/lock.flock\" || { echo " TAG "result error cannot "
             "open $D/lock.flock; echo " TAG "end; exit 0; }; flock %s -w %d 8 || { echo " TAG
             "result busy; echo " TAG "end; exit 0; }; now=$(date +%%s); echo \"" TAG
             "now $now\"; ",
             mode, FLOCK_WAIT_S);
    buf_adds(cmd,
             /* One stat for the directory, the lease and info.json (those there), and the
              * shell's own reads: a lock command costs few processes. */
             "n3d() { tok=none; id=; if [ ! -d \"$L\" ]; then echo " TAG "lock none; return; "
             "fi; echo " TAG "lock present; "
             "tok=; read -r tok 2>/dev/null <\"$L/token\"; case $tok in ''|*[!0-9a-f]*) "
             "tok=none;; esac; echo \"" TAG "token $tok\"; "
             "e=; read -r e 2>/dev/null <\"$L/lease\"; case $e in ''|*[!0-9]*) e=none;; esac; "
             "echo \"" TAG "lease $e\"; "
             "hl=; [ ! -e \"$L/lease\" ] || hl=1; hi=; [ ! -e \"$L/info.json\" ] || hi=1; "
             "set -- $(stat -c '%i %s %Y' -- \"$L\" ${hl:+\"$L/lease\"} ${hi:+\"$L/info.json\"} "
             "2>/dev/null) - - - - - - - - -; di=$1; dm=$3; shift 3; lm=; if [ -n \"$hl\" ]; then "
             "lm=$3; shift 3; fi; s=none; z=; im=; if [ -n \"$hi\" ]; then s=$1.$2.$3; z=$2; "
             "im=$3; fi; "
             "n3num() { case $1 in ''|*[!0-9]*) return 1;; esac; }; "
             "! n3num \"$lm\" || echo \"" TAG "age $((now - lm))\"; "
             "! n3num \"$dm\" || echo \"" TAG "dirage $((now - dm))\"; "
             "id=\"$di:$tok:$s\"; echo \"" TAG "id $id\"; "
             "if [ -n \"$hi\" ] && n3num \"$z\"; then ! n3num \"$im\" || echo \"" TAG
             "held $((now - im))\"; echo \"" TAG "size $z\"; if [ \"$z\" -le 4096 ]; then "
             "printf '" TAG "info '; tr '\\n\\r\\000' '   ' <\"$L/info.json\"; echo; fi; fi; }; ");
}

/* n3next: the next fence number (one more than the lock's and the lock target's own fence
 * have seen), written to D/lock.fence, in f. */
static void add_next_fence(struct buf *cmd)
{
    buf_adds(cmd, "n3next() { f=; read -r f 2>/dev/null <\"$D/lock.fence\"; case $f in "
                  "''|*[!0-9]*) f=0;; esac; g=; read -r g 2>/dev/null <\"$D/fence\"; case $g in "
                  "''|*[!0-9]*) g=0;; esac; [ \"$g\" -le \"$f\" ] || f=$g; f=$((f + 1)); "
                  "printf '%s\\n' \"$f\" >\"$D/lock.fence.tmp\" && mv -f -- \"$D/lock.fence.tmp\" "
                  "\"$D/lock.fence\"; }; ");
}

static void run_step(struct op *o, const char *command);

static void op_done(struct op *o, enum lock_result r, const struct lock_info *holder,
                    const char *msg)
{
    o->done(o->arg, r, holder, msg);
    op_free(o);
}

static void renew_cb(void *arg);

static void start_renewal(struct dlock *l)
{
    if (l->renew == NULL)
        l->renew = loop_timer_new(l->loop, renew_cb, l);
    loop_timer_start(l->renew, l->lease_ms / 3);
}

/* Is i the lock this process holds? */
static bool is_mine(const struct dlock *l, const struct lock_info *i)
{
    return l->held && i->token[0] != '\0' && strcmp(i->token, l->mine.token) == 0;
}

static void run_remove(struct op *o);

/* A renewal answered (result; NULL: it failed): renew again, or run the removal that waited. */
static void renew_answered(struct dlock *l, struct op *o, const struct answer *a,
                           const char *failure)
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
    if (a != NULL && strcmp(a->result, "renewed") == 0) {
        l->confirmed_ms = l->renew_sent_ms;
    } else if (a != NULL && strcmp(a->result, "lost") == 0) {
        if (a->info.present && !a->info.unreadable && !a->info.partial)
            set_lost(l, "the deploy lock was taken over by %.160s", a->info.who);
        else if (a->info.present)
            set_lost(l, "the deploy lock was taken over (its holder cannot be read)");
        else
            set_lost(l, "the deploy lock was removed (broken with --force?)");
    }
    /* Commands waiting to be confirmed hear now: confirmed, lost, or not known (the renewal
     * failed: they do not go, rather than change a target under a lock not known to be ours). */
    l->waking_failed = failure;
    wake_waiters(l);
    l->waking_failed = NULL;
    if (next != NULL)
        run_remove(next);
    else if (!l->lost && !l->adopted && l->mine.lease_s > 0)
        start_renewal(l); /* after a failure, a blip: the lease has room for two misses */
}

/* The command did not give an answer (why): a renewal that failed, or an error. */
static void op_failed(struct op *o, const char *why)
{
    struct dlock *l = o->l;

    if (o->step == ST_RENEW) {
        renew_answered(l, o, NULL, why);
        return;
    }
    /* Ours is still held when it could not be removed: keep its lease running. */
    if (o->step == ST_RELEASE && is_mine(l, &o->expect) && l->mine.lease_s > 0 && !l->lost)
        start_renewal(l);
    op_done(o, LOCK_ERROR, NULL, why);
}

static void answer_cb(void *arg, const struct transport_result *r)
{
    struct op *o = arg;
    struct dlock *l = o->l;
    struct answer a;
    char why[ERR_MSG_MAX];
    char *text;
    size_t len;

    if (r->status != TRANSPORT_OK || r->exit_code != 0) {
        char *err = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup("");

        snprintf(why, sizeof why, "the lock on %.100s: %.600s%s%.200s", l->t->name,
                 r->status != TRANSPORT_OK ? r->msg : "the lock commands failed",
                 err[0] != '\0' ? ": " : "", err);
        free(err);
        op_failed(o, why);
        return;
    }
    text = tail_dup(r->out, &len);
    parse_answer(text, len, l->lease_ms / 1000, &a);
    free(text);
    why[0] = '\0';
    if (!a.complete || tail_truncated(r->out))
        snprintf(why, sizeof why, "the lock on %.100s: its answer was cut short", l->t->name);
    else if (strcmp(a.result, "noflock") == 0)
        snprintf(why, sizeof why,
                 "the lock target %.100s has no flock(1): n3ctl needs it there to take and give "
                 "back the deploy lock safely (Debian: util-linux; it is in busybox too)",
                 l->t->name);
    else if (strcmp(a.result, "busy") == 0)
        snprintf(why, sizeof why,
                 "the lock on %.100s: another n3ctl has been deciding about it for %ds (%s "
                 "held); try again",
                 l->t->name, FLOCK_WAIT_S, "the flock on .n3/lock.flock");
    else if (strcmp(a.result, "error") == 0)
        snprintf(why, sizeof why, "the lock on %.100s: %.300s", l->t->name,
                 a.extra[0] ? a.extra : "the lock commands failed");
    if (why[0] != '\0') {
        op_failed(o, why);
        return;
    }
    switch (o->step) {
    case ST_STATUS:
        op_done(o, LOCK_OK, &a.info, NULL);
        return;
    case ST_ACQUIRE:
        if (strcmp(a.result, "acquired") == 0 || strcmp(a.result, "tookover") == 0) {
            if (strcmp(a.result, "tookover") == 0) {
                l->has_takeover = true;
                l->taken_over = a.info;
            }
            l->held = true;
            l->lost = false;
            l->mine.fence = a.fence;
            l->mine.present = true;
            l->confirmed_ms = l->renew_sent_ms;
            if (l->mine.lease_s > 0)
                start_renewal(l);
            op_done(o, LOCK_OK, &l->mine, NULL);
            return;
        }
        op_done(o, LOCK_HELD, &a.info, NULL);
        return;
    case ST_RELEASE_STATUS:
        if (!a.info.present) {
            op_done(o, LOCK_OK, &a.info, "there is no lock");
            return;
        }
        /* A lock taken by hand is released by the same user@host; otherwise --force. */
        if (!o->force && (a.info.unreadable || a.info.partial || a.info.who_cut ||
                          strcmp(a.info.who, o->who) != 0)) {
            op_done(o, LOCK_HELD, &a.info, NULL);
            return;
        }
        if (o->check_only) {
            op_done(o, LOCK_OK, &a.info, NULL);
            return;
        }
        o->step = ST_RELEASE;
        o->expect = a.info;
        o->break_fence = o->force;
        run_remove(o);
        return;
    case ST_RELEASE: {
        bool mine = is_mine(l, &o->expect);

        /* Whatever the answer, ours is not held any more: removed, gone, or someone else's. */
        if (mine || l->adopted)
            l->held = false;
        if (strcmp(a.result, "released") == 0) {
            l->broken_fence = a.fence;
            op_done(o, LOCK_OK, &o->expect, NULL);
        } else if (!a.info.present) {
            op_done(o, LOCK_OK, &a.info, "there is no lock");
        } else {
            op_done(o, LOCK_HELD, &a.info, NULL);
        }
        return;
    }
    case ST_RENEW:
        renew_answered(l, o, &a, NULL);
        return;
    }
}

static void run_step(struct op *o, const char *command)
{
    struct transport_run run;

    memset(&run, 0, sizeof run);
    run.command = command;
    run.timeout_ms = (FLOCK_WAIT_S + 30) * 1000u;
    run.output_limit = 2 * LOCK_INFO_MAX + 4096;
    run.unfenced = true; /* the lock's own commands: they are what fences are made of */
    run.on_done = answer_cb;
    run.arg = o;
    transport_run(o->l->t, &run);
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
    /* Nothing to read (and nothing made) on a target without a lock directory. */
    shell_cmdf(&cmd, "[ -d %s ] || { echo " TAG "lock none; echo " TAG "end; exit 0; }; ",
               o->l->path);
    add_preamble(&cmd, o->l, "-s");
    buf_adds(&cmd, "n3d; echo " TAG "end");
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
    char *prefix, lease_text[24], fallback[24];
    unsigned i;

    o->force = force;
    memset(&l->mine, 0, sizeof l->mine);
    l->mine.present = true;
    snprintf(l->mine.who, sizeof l->mine.who, "%s", who);
    l->mine.pid = pid;
    snprintf(l->mine.message, sizeof l->mine.message, "%s", message != NULL ? message : "");
    l->mine.since = (int64_t)time(NULL);
    l->mine.lease_s = lease ? (int64_t)(l->lease_ms / 1000) : 0;
    l->mine.held_s = l->mine.age_s = 0;
    for (i = 0; i < 4; i++)
        snprintf(l->mine.token + 8 * i, 9, "%08x", loop_random(l->loop));
    prefix = info_prefix(&l->mine);
    snprintf(lease_text, sizeof lease_text, "%" PRId64, l->mine.lease_s);
    snprintf(fallback, sizeof fallback, "%" PRIu64, l->lease_ms / 1000);
    buf_init(&cmd);
    shell_cmdf(&cmd, "mkdir -p -- %s || exit 2; ", l->dir);
    add_preamble(&cmd, l, "-x");
    add_next_fence(&cmd);
    /* Made whole beside the lock, then renamed into place: never seen half-made. A lock that
     * goes (taken over) is renamed away first, and put back if the new one cannot go in. */
    shell_cmdf(
        &cmd,
        "n3take() { for x in \"$D\"/lock.new.* \"$D\"/lock.gone.*; do [ ! -e \"$x\" ] || rm -rf -- "
        "\"$x\"; done; n3next || return 1; "
        "n=\"$D/lock.new.$$\"; mkdir -- \"$n\" && printf '%%s' %s >\"$n/token\" && "
        "printf '%%s' %s >\"$n/lease\" && printf '%%s%%s}' %s \"$f\" >\"$n/info.json\" "
        "|| { rm -rf -- \"$n\"; return 1; }; if [ -d \"$L\" ]; then mv -T -- \"$L\" "
        "\"$D/lock.gone.$$\" || { rm -rf -- \"$n\"; return 1; }; fi; if ! mv -T -- "
        "\"$n\" \"$L\"; then rm -rf -- \"$n\"; [ ! -d \"$D/lock.gone.$$\" ] || mv -T -- "
        "\"$D/lock.gone.$$\" \"$L\"; return 1; fi; rm -rf -- \"$D/lock.gone.$$\"; echo "
        "\"" TAG "fence $f\"; }; ",
        l->mine.token, lease_text, prefix);
    /* Stale, from what n3d saw: its lease (by this clock) ran out; or an older n3ctl's lock
     * left without info, token and lease longer than our lease ago. */
    shell_cmdf(&cmd,
               "n3stale() { if [ \"$e\" != none ]; then [ \"$e\" -gt 0 ] && n3num \"$lm\" && "
               "[ $((now - lm)) -gt $((e + 1)) ]; return; fi; [ -z \"$hi\" ] && [ ! -e "
               "\"$L/token\" ] && n3num \"$dm\" && [ $((now - dm)) -gt %s ]; }; ",
               fallback);
    buf_adds(&cmd, "n3d; if [ ! -d \"$L\" ]; then if n3take; then echo " TAG
                   "result acquired; else echo " TAG "result error cannot make $L; fi; ");
    if (force)
        buf_adds(&cmd, "elif n3stale; then if n3take; then echo " TAG "result tookover; else "
                       "echo " TAG "result error cannot replace $L; fi; ");
    buf_adds(&cmd, "else echo " TAG "result held; fi; echo " TAG "end");
    l->renew_sent_ms = loop_now_ms(l->loop);
    run_step(o, cmd.data);
    buf_done(&cmd);
    free(prefix);
}

int dlock_adopt(struct dlock *l, const struct lock_info *holder)
{
    if (!holder->present || holder->partial || holder->unreadable || holder->token[0] == '\0' ||
        holder->fence == 0)
        return -1;
    l->mine = *holder;
    l->held = true;
    l->adopted = true;
    l->lost = false;
    l->confirmed_ms = loop_now_ms(l->loop);
    return 0;
}

/* Remove the lock o->expect, if it is still that one (its token when it is ours; else its id). */
static void run_remove(struct op *o)
{
    struct dlock *l = o->l;
    struct buf cmd;
    bool mine = is_mine(l, &o->expect);

    if (mine) {
        loop_timer_free(l->renew);
        l->renew = NULL;
        /* A renewal touches the lease in the directory: after it, then. */
        if (l->renewing) {
            l->after_renew = o;
            return;
        }
    }
    buf_init(&cmd);
    add_preamble(&cmd, l, "-x");
    add_next_fence(&cmd);
    buf_adds(&cmd, "n3d; ");
    if (mine)
        shell_cmdf(&cmd, "if [ -d \"$L\" ] && [ \"$tok\" = %s ]; then ", l->mine.token);
    else
        shell_cmdf(&cmd, "if [ -d \"$L\" ] && [ \"$id\" = %s ]; then ", o->expect.id);
    buf_adds(&cmd, "mv -T -- \"$L\" \"$D/lock.gone.$$\" || { echo " TAG "result error cannot "
                   "move $L away; echo " TAG "end; exit 0; }; rm -rf -- \"$D/lock.gone.$$\"; ");
    /* Broken, not given back: the holder may still work; the fence moves on past it. */
    if (o->break_fence)
        buf_adds(&cmd, "n3next && echo \"" TAG "fence $f\"; ");
    buf_adds(&cmd,
             "echo " TAG "result released; else echo " TAG "result changed; fi; echo " TAG "end");
    run_step(o, cmd.data);
    buf_done(&cmd);
}

void dlock_release(struct dlock *l, const char *who, bool force, lock_fn done, void *arg)
{
    struct op *o;

    /* Ours: by token, in one command. */
    if (l->held && !l->adopted && !force) {
        dlock_remove(l, &l->mine, false, done, arg);
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

void dlock_remove(struct dlock *l, const struct lock_info *holder, bool break_fence, lock_fn done,
                  void *arg)
{
    struct op *o = op_new(l, ST_RELEASE, done, arg);

    o->expect = *holder;
    o->break_fence = break_fence;
    run_remove(o);
}

/* Renew (or, for a lock taken by hand that we work under, confirm) now. */
static void renew_now(struct dlock *l)
{
    struct op *o;
    struct buf cmd;

    if (!l->held || l->lost || l->renewing)
        return;
    l->renewing = true;
    o = op_new(l, ST_RENEW, NULL, NULL);
    buf_init(&cmd);
    add_preamble(&cmd, l, "-x");
    shell_cmdf(
        &cmd,
        "n3d; if [ -d \"$L\" ] && [ \"$tok\" = %s ]; then touch -c -- \"$L/lease\"; echo " TAG
        "result renewed; else echo " TAG "result lost; fi; echo " TAG "end",
        l->mine.token);
    l->renew_sent_ms = loop_now_ms(l->loop);
    run_step(o, cmd.data);
    buf_done(&cmd);
}

static void renew_cb(void *arg)
{
    renew_now(arg);
}

/* ---- the fence's confirmation (transport.h) ---- */

/* How long a confirmation holds: half a lease. The lease runs, on the lock target, from a
 * moment after the renewal was sent: half of it leaves the other half for a command to go. */
static uint64_t confirm_window_ms(const struct dlock *l)
{
    return l->lease_ms / 2;
}

static int confirm_cb(void *arg, void (*ready)(void *), void *ready_arg, char *why, size_t len)
{
    struct dlock *l = arg;
    struct waiter *w;

    if (l->lost) {
        snprintf(why, len, "%s", l->lost_why);
        return -1;
    }
    if (!l->held) {
        snprintf(why, len, "the deploy lock is not held");
        return -1;
    }
    if (l->waking_failed != NULL) {
        snprintf(why, len, "the deploy lock could not be confirmed before this change (%s)",
                 l->waking_failed);
        return -1;
    }
    if (loop_now_ms(l->loop) < l->confirmed_ms + confirm_window_ms(l))
        return 0;
    /* Too long since the lock was last known to be ours (this process was stopped, or the
     * renewals failed): ask the lock target first. */
    w = xcalloc(1, sizeof *w);
    w->ready = ready;
    w->arg = ready_arg;
    w->next = l->waiters;
    l->waiters = w;
    if (!l->renewing)
        renew_now(l);
    return 1;
}

static void forget_cb(void *arg, void (*ready)(void *), void *ready_arg)
{
    struct dlock *l = arg;
    struct waiter **pp, *w;

    for (pp = &l->waiters; (w = *pp) != NULL; pp = &w->next) {
        if (w->ready == ready && w->arg == ready_arg) {
            *pp = w->next;
            free(w);
            return;
        }
    }
}

static void refused_cb(void *arg, const char *target, uint64_t theirs)
{
    struct dlock *l = arg;

    set_lost(l,
             "%.100s refused a change: it has seen fence %llu, and ours is %llu (someone took "
             "the deploy lock over, or broke it)",
             target, (unsigned long long)theirs, (unsigned long long)l->mine.fence);
}
