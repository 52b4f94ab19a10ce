/* The audit log on targets: read the log's end, append the next record whole or not at all
 * if the log still ends as read (under flock on the target), else read again; a torn last line
 * is cut off (kept aside) and noted in the record that follows. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/transport.h"

/* The append's exit status when the log no longer ends as read: read again. */
#define CHANGED_RC 75
/* Appends that found the log changed before giving up: one a writer that got in first, so as
 * many as there are appends at once to one log (pushes at once under one operator's lock,
 * each with its record and perhaps a state.reconcile). */
#define ATTEMPTS_MAX 16
/* Seconds to wait for the lock on the target (held for a tail and an append at most). */
#define LOCK_WAIT_S 20
/* What the read may print: the record this machine wrote last, the size, the last two lines. */
#define READ_MAX (256 * 1024)

struct append {
    struct transport *t;
    char *file, *dir, *lock, *head_path;
    char *read_cmd;
    struct audit_head head; /* this machine's last record there; seq 0: none */
    struct audit_entry e;
    cJSON *detail;      /* e.detail for this attempt: the caller's, maybe with audit_gap */
    cJSON *orig_detail; /* the caller's */
    char **targets;
    char *line; /* the record written */
    char warning[ERR_MSG_MAX];
    size_t warning_base; /* what was said before the first read (the head file) */
    unsigned attempts;   /* appends that found the log changed */
    auditlog_fn done;
    void *arg;
    bool writing;
};

/* The end of the log as the read found it: what the append checks is still there, and what of
 * it is torn (cut off, and kept aside in `kept`). */
struct log_end {
    uint64_t size;     /* of the whole log */
    uint64_t tail_len; /* its last bytes read (the last two lines), whose hash is tail_sha */
    char tail_sha[65];
    uint64_t torn_len; /* 0: nothing torn */
    char torn_sha[65];
    char *kept; /* where the torn bytes go; NULL when nothing is torn */
};

static void append_free(struct append *a)
{
    size_t i;

    for (i = 0; a->targets != NULL && a->targets[i] != NULL; i++)
        free(a->targets[i]);
    free(a->targets);
    cJSON_Delete(a->detail);
    cJSON_Delete(a->orig_detail);
    free((char *)a->e.actor);
    free((char *)a->e.action);
    free((char *)a->e.result);
    free(a->file);
    free(a->dir);
    free(a->lock);
    free(a->read_cmd);
    free(a->head_path);
    free(a->line);
    free(a);
}

static void warn(struct append *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct append *a, const char *fmt, ...)
{
    size_t n = strlen(a->warning);
    va_list ap;

    if (n > 0 && n + 2 < sizeof a->warning) {
        memcpy(a->warning + n, "; ", 3);
        n += 2;
    }
    va_start(ap, fmt);
    vsnprintf(a->warning + n, sizeof a->warning - n, fmt, ap);
    va_end(ap);
}

static void fail(struct append *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct append *a, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    int n;

    n = snprintf(msg, sizeof msg, "audit log on %.100s: ", a->t->name);
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    a->done(a->arg, AUDITLOG_FAILED, msg);
    append_free(a);
}

/* The audit_gap object of this attempt's record, made when it has none yet. */
static cJSON *gap_note(struct append *a)
{
    cJSON *gap;

    if (a->detail == NULL)
        a->detail = cJSON_CreateObject();
    a->e.detail = a->detail;
    gap = cJSON_GetObjectItemCaseSensitive(a->detail, "audit_gap");
    if (gap == NULL)
        gap = cJSON_AddObjectToObject(a->detail, "audit_gap");
    return gap;
}

/* found is the log's record head.seq ("" when it has none), last its last record ("" when it
 * has none). When the remembered head is gone, say so in the record and as a warning. Records
 * are found by seq, not by line: the two differ in a log whose front was removed. */
static void check_head(struct append *a, const char *found, const char *last)
{
    char hash[65];
    struct audit_head end;
    cJSON *gap;
    const char *what;

    if (a->head.seq == 0)
        return;
    if (audit_head_of(last, strlen(last), &end) != 0)
        end.seq = 0;
    if (found[0] != '\0') {
        audit_line_hash(found, strlen(found), hash);
        if (strcmp(hash, a->head.sha256) == 0)
            return;
        what = "rewritten";
        warn(a,
             "the audit log on %.100s was rewritten: its record %llu is not the one this machine "
             "wrote there; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)a->head.seq);
    } else if (end.seq >= a->head.seq) {
        what = "rewritten";
        warn(a,
             "the audit log on %.100s was rewritten: it has no record %llu, which this machine "
             "wrote there, but goes on to record %llu; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)a->head.seq, (unsigned long long)end.seq);
    } else {
        what = "cut";
        warn(a,
             "the audit log on %.100s was cut: it ends at record %llu, but this machine wrote "
             "record %llu there; the new record notes it (audit_gap)",
             a->t->name, (unsigned long long)end.seq, (unsigned long long)a->head.seq);
    }
    gap = gap_note(a);
    cJSON_AddNumberToObject(gap, "expected_seq", (double)a->head.seq);
    cJSON_AddStringToObject(gap, "expected_sha256", a->head.sha256);
    cJSON_AddNumberToObject(gap, "log_ends_at_seq", (double)end.seq);
    cJSON_AddStringToObject(gap, "what", what);
}

/* The torn last line is cut off by the append, and kept aside: the record says so (audit_gap,
 * "what": "torn", or the fields added to a gap check_head noted), and so does a warning. */
static void note_torn(struct append *a, const struct log_end *end, uint64_t ends_at)
{
    cJSON *gap = gap_note(a);

    if (!cJSON_HasObjectItem(gap, "what")) {
        cJSON_AddNumberToObject(gap, "log_ends_at_seq", (double)ends_at);
        cJSON_AddStringToObject(gap, "what", "torn");
    }
    cJSON_AddNumberToObject(gap, "cut_bytes", (double)end->torn_len);
    cJSON_AddStringToObject(gap, "cut_sha256", end->torn_sha);
    cJSON_AddStringToObject(gap, "kept_in", end->kept);
    warn(a,
         "the audit log on %.100s ended with a torn line (%" PRIu64 " byte%s after record %" PRIu64
         ", not a whole record: an append was interrupted, or something else wrote there); it "
         "was cut off and kept in %.300s, and the new record notes it (audit_gap)",
         a->t->name, end->torn_len, end->torn_len == 1 ? "" : "s", ends_at, end->kept);
}

static void finish(struct append *a)
{
    a->done(a->arg, a->warning[0] != '\0' ? AUDITLOG_WARNING : AUDITLOG_OK,
            a->warning[0] != '\0' ? a->warning : NULL);
    append_free(a);
}

/* Open the lock file beside the log on fd 9 and lock it: shared to read (no half-written line
 * is seen), exclusive to append. A target without flock goes on unlocked. */
static void add_lock(const struct append *a, struct buf *cmd, bool exclusive)
{
    char msg[512];

    snprintf(msg, sizeof msg,
             "n3ctl: could not lock %.300s within %d s: another n3ctl is appending to the audit "
             "log, or is stuck; try again",
             a->lock, LOCK_WAIT_S);
    shell_cmdf(cmd, "exec 9>>%s || exit 1; if command -v flock >/dev/null 2>&1; then flock ",
               a->lock);
    buf_adds(cmd, exclusive ? "-x" : "-s");
    shell_cmdf(cmd, " -w %d 9 || { printf '%%s\\n' %s >&2; exit 1; }; fi; ", LOCK_WAIT_S, msg);
}

/* "|| { printf 'n3ctl: MESSAGE' >&2; exit 1; }; ", the message formatted here (paths quoted). */
static void or_fail(struct buf *cmd, const char *undo, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void or_fail(struct buf *cmd, const char *undo, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_adds(cmd, "|| { ");
    buf_adds(cmd, undo != NULL ? undo : "");
    shell_cmdf(cmd, "printf 'n3ctl: %%s\\n' %s >&2; exit 1; }; ", msg);
}

/*
 * The append, under the exclusive lock, all or nothing: if the log still ends as read (its
 * size, and the hash of its last bytes: they may hold any byte), the record (on stdin) goes to
 * a temporary file beside the log and is checked whole; a torn end is copied aside and cut off;
 * then the record is appended, and a log that did not grow by exactly the record (a full disk)
 * is cut back to where it was, and the torn end put back. A log is cut with truncate (GNU
 * coreutils), or dd where there is none.
 */
static void append_command(const struct append *a, const struct log_end *end, size_t rec_len,
                           struct buf *cmd)
{
    char size[24], tail_len[24], keep[24], total[24], torn[24], rlen[24];
    const char *f = a->file;

    snprintf(size, sizeof size, "%" PRIu64, end->size);
    snprintf(tail_len, sizeof tail_len, "%" PRIu64, end->tail_len);
    snprintf(keep, sizeof keep, "%" PRIu64, end->size - end->torn_len);
    snprintf(total, sizeof total, "%" PRIu64, end->size - end->torn_len + rec_len);
    snprintf(torn, sizeof torn, "%" PRIu64, end->torn_len);
    snprintf(rlen, sizeof rlen, "%zu", rec_len);
    add_lock(a, cmd, true);
    shell_cmdf(cmd, "f=%s; size() { s=$(wc -c < \"$1\") && [ $s -eq \"$2\" ]; }; ", f);
    buf_adds(cmd, "command -v sha256sum >/dev/null 2>&1 ");
    or_fail(cmd, NULL,
            "sha256sum is not on this target (GNU coreutils): the end of %.300s cannot be checked "
            "before appending; nothing was appended",
            f);
    shell_cmdf(cmd, "size \"$f\" %s || exit %d; ", size, CHANGED_RC);
    if (end->tail_len > 0)
        shell_cmdf(cmd,
                   "h=$(tail -c %s -- \"$f\" | sha256sum) && [ \"${h%%%% *}\" = %s ] || exit %d; ",
                   tail_len, end->tail_sha, CHANGED_RC);
    shell_cmdf(cmd,
               "cut_to() { truncate -s \"$1\" -- \"$f\" 2>/dev/null || dd if=/dev/null of=\"$f\" "
               "bs=1 seek=\"$1\" 2>/dev/null; size \"$f\" \"$1\"; }; "
               "umask 077; r=%s.n3tmp.$$; trap 'rm -f -- \"$r\"' EXIT; "
               "cat > \"$r\" && size \"$r\" %s ",
               f, rlen);
    or_fail(cmd, NULL,
            "the record could not be written to a temporary file beside %.300s (a full disk?); "
            "nothing was appended",
            f);
    if (end->torn_len > 0) {
        shell_cmdf(cmd, "k=%s; (set -C; : > \"$k\") 2>/dev/null ", end->kept);
        or_fail(cmd, NULL,
                "cannot create %.300s, to keep the torn end of the log in (it exists already, or "
                "cannot be written); nothing was changed",
                end->kept);
        shell_cmdf(cmd, "tail -c %s -- \"$f\" >> \"$k\" && size \"$k\" %s ", torn, torn);
        or_fail(cmd, "rm -f -- \"$k\"; ",
                "the torn end of %.300s could not be kept aside in %.300s (a full disk?); "
                "nothing was changed",
                f, end->kept);
        shell_cmdf(cmd, "cut_to %s ", keep);
        or_fail(cmd, "rm -f -- \"$k\"; ",
                "the torn end of %.300s could not be cut off (neither truncate nor dd worked); "
                "nothing was changed",
                f);
    }
    shell_cmdf(cmd, "cat -- \"$r\" >> \"$f\"; size \"$f\" %s && exit 0; cut_to %s ", total, keep);
    or_fail(cmd, NULL,
            "the record could not be appended to %.300s whole (a full disk?), and the part "
            "written could not be cut off again (neither truncate nor dd worked): the log now "
            "ends with a torn line, which the next change there cuts off",
            f);
    if (end->torn_len > 0) {
        shell_cmdf(cmd, "cat -- \"$k\" >> \"$f\" && size \"$f\" %s && rm -f -- \"$k\" ", size);
        or_fail(cmd, NULL,
                "the record could not be appended to %.300s whole (a full disk?); the part "
                "written was cut off again, but the torn end cut off before could not be put "
                "back: it is in %.300s",
                f, end->kept);
    }
    /* Here the append was short, and has been undone. */
    shell_cmdf(cmd, "false ");
    or_fail(cmd, NULL,
            "the record could not be appended to %.300s whole (a full disk?); the part written "
            "was cut off again: nothing was appended",
            f);
}

static void step_done(void *arg, const struct transport_result *r);

static void start_read(struct append *a)
{
    a->writing = false;
    transport_sh(a->t, a->read_cmd, 30000, READ_MAX, step_done, a);
}

/* Where the line that ends at `end` (the offset of its newline, or len) starts in text. */
static size_t line_start(const char *text, size_t end)
{
    while (end > 0 && text[end - 1] != '\n')
        end--;
    return end;
}

/* A whole record (no NUL or other control byte in it), as a C string; NULL when it is not. */
static char *record_dup(const char *line, size_t len)
{
    struct audit_head h;

    if (audit_head_of(line, len, &h) != 0)
        return NULL;
    return xstrndup(line, len);
}

/*
 * The read printed the record head.seq (or an empty line), the log's size, and its last two
 * lines as tail prints them (nothing for an empty log; the last without its newline when it
 * has none). The last line is torn when it has no newline or is not a record: then the record
 * follows the line before it, and the append cuts the torn line off. Format the record and
 * append it, on condition that the log still ends as read.
 */
static void read_done(struct append *a, const struct transport_result *r)
{
    struct log_end end = {0};
    struct audit_head ph;
    struct err err;
    struct buf cmd;
    struct transport_run run;
    char *out, *nl, *p, *stop, *prev = NULL, *line, *input;
    const char *found, *tail;
    size_t len, tlen, torn_at = 0, last_at;
    unsigned long long size;
    char when[20];
    struct tm tm;
    time_t tt;

    out = tail_dup(r->out, &len);
    if (tail_truncated(r->out)) {
        free(out);
        fail(a,
             "its last two lines are longer than %d KiB (a record is a few KiB): not appending; "
             "run `n3ctl audit verify --targets` and mend the log by hand",
             READ_MAX / 1024);
        return;
    }
    /* found \n size \n tail */
    if ((nl = memchr(out, '\n', len)) == NULL ||
        (p = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - out))) == NULL)
        goto unexpected;
    *nl = *p = '\0';
    found = out;
    size = strtoull(nl + 1 + strspn(nl + 1, " "), &stop, 10);
    if (stop == nl + 1 || *stop != '\0')
        goto unexpected;
    tail = p + 1;
    tlen = len - (size_t)(tail - out);
    if (tlen > size || (tlen == 0 && size > 0))
        goto unexpected;
    end.size = size;
    end.tail_len = tlen;
    audit_line_hash(tail, tlen, end.tail_sha);
    if (tlen > 0) {
        /* tail -n 2 starts at a line's start: every line it printed is whole but the last. */
        bool newline = tail[tlen - 1] == '\n';

        last_at = line_start(tail, newline ? tlen - 1 : tlen);
        if (newline && (prev = record_dup(tail + last_at, tlen - 1 - last_at)) != NULL) {
            ; /* the last line is a record: the next one follows it */
        } else {
            torn_at = last_at;
            end.torn_len = tlen - torn_at;
            audit_line_hash(tail + torn_at, end.torn_len, end.torn_sha);
            /* The torn line alone in the log, or the record before it. */
            if (torn_at == 0 && tlen < size)
                goto unexpected;
            if (torn_at > 0 &&
                (prev = record_dup(tail + line_start(tail, torn_at - 1),
                                   torn_at - 1 - line_start(tail, torn_at - 1))) == NULL) {
                free(out);
                fail(a, "its last two lines are not records, so the chain cannot be continued: "
                        "not appending; run `n3ctl audit verify --targets` and mend the log by "
                        "hand");
                return;
            }
            /* A torn line that starts like the record this machine wrote last is not it. */
            if (strlen(found) == end.torn_len - newline &&
                memcmp(found, tail + torn_at, strlen(found)) == 0)
                found = "";
        }
    }
    if (prev == NULL)
        prev = xstrdup("");
    /* Each attempt starts from the caller's record: an earlier one may have noted a gap. */
    cJSON_Delete(a->detail);
    a->detail = a->orig_detail != NULL ? cJSON_Duplicate(a->orig_detail, true) : NULL;
    a->e.detail = a->detail;
    a->warning[a->warning_base] = '\0';
    check_head(a, found, prev);
    if (end.torn_len > 0) {
        if (audit_head_of(prev, strlen(prev), &ph) != 0)
            ph.seq = 0;
        tt = (time_t)a->e.time;
        if (gmtime_r(&tt, &tm) == NULL || strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm) == 0)
            snprintf(when, sizeof when, "%lld", (long long)a->e.time);
        end.kept = xasprintf("%s.torn.%s.%" PRIu64, a->file, when, ph.seq + 1);
        note_torn(a, &end, ph.seq);
    }
    line = audit_format(prev, &a->e, &err);
    free(prev);
    free(out);
    if (line == NULL) {
        free(end.kept);
        fail(a, "%.800s", err.msg);
        return;
    }
    buf_init(&cmd);
    append_command(a, &end, strlen(line) + 1, &cmd);
    free(end.kept);
    input = xasprintf("%s\n", line);
    free(a->line);
    a->line = line;
    a->writing = true;
    memset(&run, 0, sizeof run);
    run.command = cmd.data;
    run.input = input;
    run.input_len = strlen(input);
    run.timeout_ms = 30000;
    run.on_done = step_done;
    run.arg = a;
    transport_run(a->t, &run);
    free(input);
    buf_done(&cmd);
    return;
unexpected:
    free(prev);
    free(out);
    fail(a, "reading its end gave unexpected output (another writer without flock, or a shell "
            "that prints text?); not appending");
}

static void step_done(void *arg, const struct transport_result *r)
{
    struct append *a = arg;
    struct err err;
    struct audit_head h;

    /* Another writer got in between the read and the append: read again. */
    if (a->writing && r->status == TRANSPORT_OK && r->exit_code == CHANGED_RC) {
        if (++a->attempts < ATTEMPTS_MAX) {
            start_read(a);
            return;
        }
        fail(a,
             "it changed between reading its last record and appending %u times in a row (other "
             "n3ctl processes appending to it); the record was not written",
             a->attempts);
        return;
    }
    if (r->status != TRANSPORT_OK) {
        fail(a, "%.800s", r->msg);
        return;
    }
    if (r->exit_code != 0) {
        char *why = transport_stderr_line(r, "exit ");

        fail(a, "%.800s", why);
        free(why);
        return;
    }
    if (!a->writing) {
        read_done(a, r);
        return;
    }
    if (a->head_path != NULL && audit_head_of(a->line, strlen(a->line), &h) == 0 &&
        audit_head_save(a->head_path, &h, &err) != 0)
        warn(a, "%s", err.msg);
    finish(a);
}

char *auditlog_head_path(const struct transport *t, const char *deploy_path)
{
    char *log = audit_local_path(), *slash, *key, *path, hash[65];

    if (log == NULL)
        return NULL;
    slash = strrchr(log, '/');
    *slash = '\0';
    /* One file a log: where the target leads and the deploy path, hashed into a name. */
    key = xasprintf("%s\n%s", t->where != NULL ? t->where : t->name, deploy_path);
    audit_line_hash(key, strlen(key), hash);
    path = xasprintf("%s/audit-heads/%.32s.head", log, hash);
    free(key);
    free(log);
    return path;
}

void auditlog_append(struct transport *t, const char *deploy_path, const struct audit_entry *e,
                     auditlog_fn done, void *arg)
{
    struct append *a = xcalloc(1, sizeof *a);
    struct buf cmd;
    struct err err;
    size_t n = 0, i;
    char pattern[64];

    a->t = t;
    a->file = xasprintf("%s/%s", deploy_path, AUDITLOG_FILE);
    a->dir = xasprintf("%s/.n3", deploy_path);
    a->lock = xasprintf("%s/%s", deploy_path, AUDITLOG_LOCK_FILE);
    a->e = *e;
    a->e.actor = xstrdup(e->actor);
    a->e.action = xstrdup(e->action);
    a->e.result = xstrdup(e->result);
    a->orig_detail = e->detail != NULL ? cJSON_Duplicate(e->detail, true) : NULL;
    a->e.detail = NULL;
    for (i = 0; e->targets != NULL && e->targets[i] != NULL; i++)
        n++;
    a->targets = xcalloc(n + 1, sizeof *a->targets);
    for (i = 0; i < n; i++)
        a->targets[i] = xstrdup(e->targets[i]);
    a->e.targets = (const char *const *)a->targets;
    a->done = done;
    a->arg = arg;
    a->head_path = auditlog_head_path(t, deploy_path);
    if (a->head_path != NULL && audit_head_load(a->head_path, &a->head, &err) < 0)
        warn(a, "%s", err.msg);
    a->warning_base = strlen(a->warning);
    /* The record this machine wrote last (found by its seq: records start with {"seq":N, as
     * audit_format writes them), or an empty line; the log's size; then its last two lines, as
     * tail prints them. grep -a: a torn line may hold any byte, NUL too. A record is at most a
     * few KiB: all of it fits the output kept. */
    buf_init(&cmd);
    shell_cmdf(&cmd, "mkdir -p -- %s && touch -- %s || exit 1; ", a->dir, a->file);
    add_lock(a, &cmd, false);
    if (a->head.seq > 0) {
        snprintf(pattern, sizeof pattern, "^\\{\"seq\":%llu,", (unsigned long long)a->head.seq);
        shell_cmdf(&cmd,
                   "h=$(LC_ALL=C grep -a -m 1 -E -e %s -- %s); [ $? -le 1 ] || exit 1; "
                   "printf '%%s\\n' \"$h\" && ",
                   pattern, a->file);
    } else {
        shell_cmdf(&cmd, "printf '\\n' && ");
    }
    shell_cmdf(&cmd, "wc -c < %s && tail -n 2 -- %s", a->file, a->file);
    a->read_cmd = buf_detach(&cmd, NULL);
    buf_done(&cmd);
    start_read(a);
}
