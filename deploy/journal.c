/* The journal of a rollout: hash-chained JSON lines, on disk before they count, and mirrored in
 * order beside the deploy lock on the lock target. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/audit.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/journal.h"
#include "deploy/lock.h"
#include "deploy/transport.h"

#define TIME_LEN 24                 /* 2026-11-27T06:50:01.123Z */
#define SEQ_MAX  9007199254740992.0 /* 2^53: JSON numbers stay exact below */
/* A journal file can hold a torn line beyond the size appends stop at. */
#define FILE_MAX ((size_t)JOURNAL_SIZE_MAX + JOURNAL_LINE_MAX)

/* The mirror's commands. */
#define DIVERGED_RC       76 /* the remote file is not what the mirror left there */
#define LOCK_WAIT_S       20 /* for flock on the target: held for one append at most */
#define MIRROR_TIMEOUT_MS 60000
#define MIRROR_OUTPUT_MAX 4096

struct rec {
    cJSON *obj;
    enum journal_type type;
    uint64_t outcome; /* an intent's: the seq of its outcome; 0: none yet */
};

struct journal {
    char *path; /* the file; for a parsed text, the name it was given */
    char *id;
    int fd; /* -1: read-only */
    bool broken;
    struct buf text; /* the file's bytes, exactly */
    cJSON *header;
    struct rec *recs; /* recs[i] is seq i + 1 */
    size_t n, cap;
    char last_hash[65]; /* of the last line, without its newline */
    size_t torn;        /* bytes of a torn last line, cut off or left out */
    size_t torn_at;
    struct loop *clock;
    struct journal_mirror *mirror;
};

static const char *const type_names[] = {
    [JOURNAL_ANY] = "any",     [JOURNAL_INTENT] = "intent", [JOURNAL_OUTCOME] = "outcome",
    [JOURNAL_EVENT] = "event", [JOURNAL_STATE] = "state",
};

#define TYPES (sizeof type_names / sizeof type_names[0])

/* cJSON returns NULL when malloc fails: the broken invariant xmalloc aborts on too. */
static cJSON *must(cJSON *v)
{
    if (v == NULL)
        fatal("out of memory building a journal line");
    return v;
}

static void add(cJSON *obj, const char *key, cJSON *item)
{
    if (!cJSON_AddItemToObject(obj, key, must(item)))
        fatal("out of memory building a journal line");
}

const char *journal_type_name(enum journal_type type)
{
    return (unsigned)type < TYPES ? type_names[type] : "?";
}

static enum journal_type type_of(const char *s)
{
    size_t i;

    for (i = JOURNAL_INTENT; s != NULL && i < TYPES; i++)
        if (strcmp(s, type_names[i]) == 0)
            return (enum journal_type)i;
    return JOURNAL_ANY;
}

/* 1 to 64 of A-Z a-z 0-9 . _ - */
static bool name_ok(const char *s)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || strlen(s) > JOURNAL_ID_MAX)
        return false;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool journal_id_ok(const char *id)
{
    return name_ok(id) && id[0] != '.' && id[0] != '-';
}

/* A string from outside, for a message: JSON-quoted (no control character reaches the
 * terminal), at most 80 bytes of it. */
static char *quoted(const char *s)
{
    struct buf b;
    size_t n = s != NULL ? strlen(s) : 0;
    char *clean = utf8_sanitize(s != NULL ? s : "", n > 80 ? 80 : n), *out;

    buf_init(&b);
    buf_add_json_string(&b, clean, strlen(clean));
    if (n > 80)
        buf_adds(&b, "...");
    free(clean);
    out = buf_detach(&b, NULL);
    buf_done(&b);
    return out;
}

static bool time_ok(const cJSON *v)
{
    return fmt_shape_ok(cJSON_IsString(v) ? v->valuestring : NULL, "dddd-dd-ddTdd:dd:dd.dddZ");
}

static bool seq_ok(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= SEQ_MAX &&
           v->valuedouble == floor(v->valuedouble);
}

static bool nonempty(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring != NULL && v->valuestring[0] != '\0';
}

static uint64_t now_us(const struct journal *j)
{
    struct timespec ts;

    if (j != NULL && j->clock != NULL)
        return loop_wall_us(j->clock);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void format_time(uint64_t wall_us, char out[TIME_LEN + 1])
{
    time_t t = (time_t)(wall_us / 1000000u);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, TIME_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
        fatal("the clock says %" PRIu64 " us, which is no time gmtime takes", wall_us);
    snprintf(out + 19, TIME_LEN + 1 - 19, ".%03uZ", (unsigned)(wall_us / 1000u % 1000u));
}

static uint64_t seq_of(const cJSON *rec)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "seq");

    return seq_ok(v) ? (uint64_t)v->valuedouble : 0;
}

uint64_t journal_record_seq(const cJSON *rec)
{
    return rec != NULL ? seq_of(rec) : 0;
}

enum journal_type journal_record_type(const cJSON *rec)
{
    const cJSON *v = rec != NULL ? cJSON_GetObjectItemCaseSensitive(rec, "type") : NULL;

    return type_of(cJSON_IsString(v) ? v->valuestring : NULL);
}

static struct journal *journal_alloc(const char *path)
{
    struct journal *j = xcalloc(1, sizeof *j);

    j->path = xstrdup(path);
    j->fd = -1;
    buf_init(&j->text);
    return j;
}

static void journal_free(struct journal *j)
{
    size_t i;

    for (i = 0; i < j->n; i++)
        cJSON_Delete(j->recs[i].obj);
    free(j->recs);
    cJSON_Delete(j->header);
    buf_done(&j->text);
    if (j->fd >= 0)
        close(j->fd); /* and the lock with it */
    free(j->id);
    free(j->path);
    free(j);
}

/* ---- reading and verifying ---- */

/* The header in h, checked: its version first (a header of another version may hold anything
 * else), then its fields. */
static int take_header(struct journal *j, cJSON *h, struct err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "n3journal"), *stable;
    static const char *const strings[] = {"environment", "created", "by", "candidate"};
    size_t i;

    if (!cJSON_IsNumber(v))
        return err_set(err,
                       "%s is not a journal: its first line has no \"n3journal\" version (it is "
                       "some other JSON file)",
                       j->path);
    if (v->valuedouble != JOURNAL_VERSION)
        return err_set(err,
                       "%s is a journal of format version %g (\"n3journal\": %g), and this "
                       "n3ctl reads version %d only: read it with an n3ctl that knows version %g",
                       j->path, v->valuedouble, v->valuedouble, JOURNAL_VERSION, v->valuedouble);
    v = cJSON_GetObjectItemCaseSensitive(h, "rollout");
    if (!cJSON_IsString(v) || !journal_id_ok(v->valuestring))
        return err_set(err,
                       "%s, line 1 (the header): \"rollout\" is missing or not a rollout id; the "
                       "line was changed, or written by something else",
                       j->path);
    for (i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        v = cJSON_GetObjectItemCaseSensitive(h, strings[i]);
        if (strcmp(strings[i], "created") == 0 ? !time_ok(v) : !nonempty(v))
            return err_set(err,
                           "%s, line 1 (the header): \"%s\" is missing or not %s; the line was "
                           "changed, or written by something else",
                           j->path, strings[i],
                           strcmp(strings[i], "created") == 0
                               ? "a UTC time like 2026-11-27T06:50:01.123Z"
                               : "a non-empty string");
    }
    stable = cJSON_GetObjectItemCaseSensitive(h, "stable");
    if (!cJSON_IsNull(stable) && !nonempty(stable))
        return err_set(err,
                       "%s, line 1 (the header): \"stable\" is missing or neither a version nor "
                       "null; the line was changed, or written by something else",
                       j->path);
    j->id = xstrdup(cJSON_GetObjectItemCaseSensitive(h, "rollout")->valuestring);
    j->header = h;
    return 0;
}

/* Record r at line `line` (seq line - 1), checked against what comes before it: its seq, the
 * chain (prev_hash: of the line before), its fields, the intent an outcome answers. On success
 * the journal owns r. */
static int take_record(struct journal *j, cJSON *r, unsigned long line, const char *prev_hash,
                       struct err *err)
{
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "seq"),
                *prev = cJSON_GetObjectItemCaseSensitive(r, "prev"),
                *type = cJSON_GetObjectItemCaseSensitive(r, "type"),
                *action = cJSON_GetObjectItemCaseSensitive(r, "action"),
                *intent = cJSON_GetObjectItemCaseSensitive(r, "intent");
    uint64_t want = (uint64_t)j->n + 1, in = 0;
    enum journal_type t;
    const char *why = NULL;

    if (!seq_ok(seq))
        why = "\"seq\" is missing or not a positive integer";
    else if ((uint64_t)seq->valuedouble != want)
        return err_set(err,
                       "%s, line %lu: seq %" PRIu64 " where %" PRIu64
                       " was expected: records were removed, repeated or reordered; n3ctl "
                       "appends nothing to this journal",
                       j->path, line, (uint64_t)seq->valuedouble, want);
    else if (!cJSON_IsString(prev) || !audit_hash_ok(prev->valuestring))
        why = "\"prev\" is missing or not 64 lowercase hex digits";
    else if (strcmp(prev->valuestring, prev_hash) != 0)
        return err_set(err,
                       "%s, line %lu: prev does not match line %lu: line %lu was changed, or a "
                       "line was removed between them; n3ctl appends nothing to this journal "
                       "(compare it with its copy on the lock target)",
                       j->path, line, line - 1, line - 1);
    else if (!time_ok(cJSON_GetObjectItemCaseSensitive(r, "time")))
        why = "\"time\" is missing or not a UTC time like 2026-11-27T06:50:01.123Z";
    else if ((t = type_of(cJSON_IsString(type) ? type->valuestring : NULL)) == JOURNAL_ANY)
        why = "\"type\" is missing or none of intent, outcome, event, state";
    else if (!cJSON_IsString(action) || !name_ok(action->valuestring))
        why = "\"action\" is missing or not a name (1 to 64 of A-Z a-z 0-9 . _ -)";
    else if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "data")))
        why = "\"data\" is missing or not an object";
    else if (t == JOURNAL_OUTCOME &&
             (!seq_ok(intent) || (in = (uint64_t)intent->valuedouble) >= want))
        why = "\"intent\" is missing from an outcome, or not the seq of an earlier record";
    else if (t == JOURNAL_OUTCOME && j->recs[in - 1].type != JOURNAL_INTENT)
        return err_set(err,
                       "%s, line %lu: an outcome of seq %" PRIu64
                       ", which is no intent; the line was changed",
                       j->path, line, in);
    else if (t == JOURNAL_OUTCOME && j->recs[in - 1].outcome != 0)
        return err_set(err,
                       "%s, line %lu: a second outcome of intent %" PRIu64 " (seq %" PRIu64
                       " answered it); the line was changed",
                       j->path, line, in, j->recs[in - 1].outcome);
    if (why != NULL)
        return err_set(err,
                       "%s, line %lu: %s; the line was changed, or written by something else: "
                       "n3ctl appends nothing to this journal",
                       j->path, line, why);
    if (j->n == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 64;
        j->recs = xreallocarray(j->recs, j->cap, sizeof *j->recs);
    }
    j->recs[j->n].obj = r;
    j->recs[j->n].type = t;
    j->recs[j->n].outcome = 0;
    if (t == JOURNAL_OUTCOME)
        j->recs[in - 1].outcome = want;
    j->n++;
    return 0;
}

/* Verify j->text. 0; 1 when the last line is torn (j->torn bytes from j->torn_at: no newline at
 * its end, or no JSON object), the rest good; -1 with err naming the line otherwise. */
static int parse_text(struct journal *j, struct err *err)
{
    const char *text = j->text.data, *s, *nl;
    size_t len = j->text.len, pos, n;
    unsigned long line = 0;
    char why[160], hash[65] = "";
    cJSON *r;

    /* A NUL or other control byte is no JSON (audit_parse_line): that line is bad or torn. */
    for (pos = 0; pos < len; pos += n + 1) {
        line++;
        s = text + pos;
        nl = memchr(s, '\n', len - pos);
        n = nl != NULL ? (size_t)(nl - s) : len - pos;
        if (nl == NULL) {
            r = NULL;
            snprintf(why, sizeof why, "cut short (no newline at its end)");
        } else {
            r = audit_parse_line(s, n, JOURNAL_LINE_MAX - 1, why, sizeof why);
        }
        if (r == NULL) {
            if (line == 1)
                return err_set(
                    err, "%s is not a journal: its first line (the header) is %s%s", j->path, why,
                    nl == NULL ? "; its creation was cut short before it held anything" : "");
            if (nl != NULL && pos + n + 1 < len)
                return err_set(err,
                               "%s, line %lu: %s; the line was changed, or written by something "
                               "else: n3ctl appends nothing to this journal (compare it with its "
                               "copy on the lock target)",
                               j->path, line, why);
            j->torn_at = pos;
            j->torn = len - pos;
            memcpy(j->last_hash, hash, sizeof hash);
            return 1;
        }
        if ((line == 1 ? take_header(j, r, err) : take_record(j, r, line, hash, err)) != 0) {
            cJSON_Delete(r);
            return -1;
        }
        audit_line_hash(s, n, hash);
    }
    if (line == 0)
        return err_set(err,
                       "%s is empty, so no journal: its creation was cut short before the header "
                       "was written",
                       j->path);
    memcpy(j->last_hash, hash, sizeof hash);
    return 0;
}

static char *torn_warning(const struct journal *j, const char *what)
{
    return xasprintf("the journal %s ended with a torn line (%zu byte%s after seq %zu, not a whole "
                     "record: a write cut short by a crash); %s",
                     j->path, j->torn, j->torn == 1 ? "" : "s", j->n, what);
}

int journal_parse(const char *name, const char *text, size_t len, struct journal **out,
                  struct err *err)
{
    struct journal *j;
    char *w;
    int rc;

    *out = NULL;
    if (len > FILE_MAX)
        return err_set(err, "%s is %zu bytes, more than a journal can be (%zu)", name, len,
                       FILE_MAX);
    j = journal_alloc(name);
    buf_add(&j->text, text, len);
    if ((rc = parse_text(j, err)) < 0) {
        journal_free(j);
        return -1;
    }
    if (rc == 1) {
        buf_truncate(&j->text, j->torn_at);
        w = torn_warning(j, "it was left out");
        err_set(err, "%s", w);
        free(w);
    }
    *out = j;
    return rc;
}

bool journal_readonly(const struct journal *j)
{
    return j->fd < 0;
}

/* ---- files ---- */

static int sync_dir(const char *dir, struct err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0 || fsync(fd) != 0)
        rc = err_set(err, "cannot sync the directory %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* Another process appending to the journal would fork its chain. */
static int lock_file(int fd, const char *path, struct err *err)
{
    int rc;

    while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (rc == 0)
        return 0;
    if (errno == EWOULDBLOCK)
        return err_set(err,
                       "the journal %s is open for appending in another process (a controller "
                       "still running?): stop that one first, or read the journal without "
                       "resuming it",
                       path);
    return err_set(err, "cannot lock the journal %s: %s", path, strerror(errno));
}

/* An id that cannot name a journal: true, with err saying why. */
static bool id_refused(const char *id, struct err *err)
{
    char *q;

    if (journal_id_ok(id))
        return false;
    q = quoted(id);
    err_set(err,
            "the rollout id %s cannot name a journal: an id is 1 to %d of A-Z a-z 0-9 . _ - and "
            "does not start with '.' or '-'",
            q, JOURNAL_ID_MAX);
    free(q);
    return true;
}

/* DIR/ID.jsonl, new (O_EXCL), locked, holding data synced, and DIR synced: its fd and path.
 * On failure nothing is left. */
static int write_new(const char *dir, const char *id, const char *data, size_t len, int *fd_out,
                     char **path_out, struct err *err)
{
    char *path;
    int fd, write_errno = 0, cut_errno = 0, rc;

    if (id_refused(id, err))
        return -1;
    if (dir == NULL || dir[0] == '\0')
        return err_set(err, "no directory to keep the journal of rollout %s in", id);
    if (fs_mkdirs(dir, err) != 0)
        return err_prefix(err, "cannot create the journal of rollout %s: ", id);
    path = xasprintf("%s/%s%s", dir, id, JOURNAL_SUFFIX);
    fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            rc = err_set(err,
                         "the journal %s exists already: rollout %s was journaled before; "
                         "resume it (open it), or start the rollout under another id",
                         path, id);
        else
            rc = err_set(err, "cannot create the journal %s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    if (lock_file(fd, path, err) != 0)
        goto undo;
    if ((rc = fs_write_whole(fd, 0, data, len, &write_errno, &cut_errno)) != 0 || fsync(fd) != 0) {
        err_set(err, "cannot write the journal %s: %s; it was removed again", path,
                strerror(rc != 0 ? write_errno : errno));
        goto undo;
    }
    if (sync_dir(dir, err) != 0) {
        err_prefix(err, "the journal %s was removed again: ", path);
        goto undo;
    }
    *fd_out = fd;
    *path_out = path;
    return 0;
undo:
    unlink(path);
    close(fd);
    free(path);
    return -1;
}

/* The header line for journal_create: the fixed fields in their order, then the caller's. */
static char *header_line(const char *id, const cJSON *h, struct err *err)
{
    static const char *const fixed[] = {"environment", "created", "by", "candidate", "stable"};
    const cJSON *env, *cand, *stable, *by, *created, *c;
    char when[TIME_LEN + 1], who[LOCK_WHO_MAX], *printed, *line, *key;
    cJSON *out, *v;
    size_t i;
    bool known;

    if (!cJSON_IsObject(h)) {
        err_set(err, "the header of journal %s must be a JSON object", id);
        return NULL;
    }
    env = cJSON_GetObjectItemCaseSensitive(h, "environment");
    cand = cJSON_GetObjectItemCaseSensitive(h, "candidate");
    stable = cJSON_GetObjectItemCaseSensitive(h, "stable");
    by = cJSON_GetObjectItemCaseSensitive(h, "by");
    created = cJSON_GetObjectItemCaseSensitive(h, "created");
    if (!nonempty(env) || !nonempty(cand)) {
        err_set(err, "the header of journal %s needs \"environment\" and \"candidate\" (strings)",
                id);
        return NULL;
    }
    if (stable != NULL && !cJSON_IsNull(stable) && !nonempty(stable)) {
        err_set(err, "the header of journal %s: \"stable\" must be a version or null", id);
        return NULL;
    }
    if ((by != NULL && !nonempty(by)) || (created != NULL && !time_ok(created))) {
        err_set(err,
                "the header of journal %s: \"by\" must be a string, \"created\" a UTC time like "
                "2026-11-27T06:50:01.123Z",
                id);
        return NULL;
    }
    if (cJSON_HasObjectItem(h, "n3journal") || cJSON_HasObjectItem(h, "rollout")) {
        err_set(err,
                "the header of journal %s holds \"n3journal\" or \"rollout\": those are the "
                "journal's to write",
                id);
        return NULL;
    }
    if (created == NULL)
        format_time(now_us(NULL), when);
    if (by == NULL)
        dlock_whoami(who, sizeof who);
    out = must(cJSON_CreateObject());
    add(out, "n3journal", cJSON_CreateNumber(JOURNAL_VERSION));
    add(out, "rollout", cJSON_CreateString(id));
    add(out, "environment", audit_clean_json(env, "the journal header", err));
    add(out, "created",
        created != NULL ? cJSON_Duplicate(created, false) : cJSON_CreateString(when));
    if (by != NULL) {
        add(out, "by", audit_clean_json(by, "the journal header", err));
    } else {
        key = utf8_sanitize(who, strlen(who));
        add(out, "by", cJSON_CreateString(key));
        free(key);
    }
    add(out, "candidate", audit_clean_json(cand, "the journal header", err));
    add(out, "stable",
        nonempty(stable) ? audit_clean_json(stable, "the journal header", err)
                         : cJSON_CreateNull());
    for (c = h->child; c != NULL; c = c->next) {
        known = false;
        for (i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            known = known || (c->string != NULL && strcmp(c->string, fixed[i]) == 0);
        if (known)
            continue;
        key = utf8_sanitize(c->string != NULL ? c->string : "",
                            c->string != NULL ? strlen(c->string) : 0);
        if (cJSON_HasObjectItem(out, key) ||
            (v = audit_clean_json(c, "the journal header", err)) == NULL) {
            if (cJSON_HasObjectItem(out, key))
                err_set(err, "the header of journal %s holds \"%.80s\" twice", id, key);
            free(key);
            cJSON_Delete(out);
            return NULL;
        }
        add(out, key, v);
        free(key);
    }
    printed = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (printed == NULL)
        fatal("out of memory printing a journal header");
    line = xasprintf("%s\n", printed);
    cJSON_free(printed);
    if (strlen(line) > JOURNAL_LINE_MAX) {
        err_set(err, "the header of journal %s would be %zu bytes, more than a line may have (%d)",
                id, strlen(line), JOURNAL_LINE_MAX);
        free(line);
        return NULL;
    }
    return line;
}

int journal_create(const char *dir, const char *id, const cJSON *header, struct journal **out,
                   struct err *err)
{
    struct journal *j;
    char *line, *path;
    int fd;

    *out = NULL;
    if (id_refused(id, err))
        return -1;
    if ((line = header_line(id, header, err)) == NULL)
        return -1;
    if (write_new(dir, id, line, strlen(line), &fd, &path, err) != 0) {
        free(line);
        return -1;
    }
    j = journal_alloc(path);
    free(path);
    j->fd = fd;
    buf_adds(&j->text, line);
    free(line);
    if (parse_text(j, err) != 0)
        fatal("journal_create wrote a header it cannot read: %s", err->msg);
    *out = j;
    return 0;
}

/* Read all of fd into b: 0, or -1 with errno. */
static int read_all(int fd, size_t size, struct buf *b)
{
    char chunk[65536];
    ssize_t n;
    off_t off = 0;

    while ((size_t)off < size) {
        n = pread(fd, chunk, sizeof chunk, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        buf_add(b, chunk, (size_t)n);
        off += n;
    }
    return 0;
}

/* The torn bytes appended to PATH.torn (a newline after them when they have none), synced. */
static int keep_torn(const struct journal *j, char **where, struct err *err)
{
    char *path = xasprintf("%s.torn", j->path), *dir = dir_of(j->path);
    const char *bytes = j->text.data + j->torn_at;
    struct buf b;
    struct stat st;
    int fd, write_errno = 0, cut_errno = 0, rc = 0;

    buf_init(&b);
    buf_add(&b, bytes, j->torn);
    if (bytes[j->torn - 1] != '\n')
        buf_addc(&b, '\n');
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fstat(fd, &st) != 0)
        rc = err_set(err, "cannot open %s: %s", path, strerror(errno));
    else if (fs_write_whole(fd, st.st_size, b.data, b.len, &write_errno, &cut_errno) != 0)
        rc = err_set(err, "cannot write %s: %s", path, strerror(write_errno));
    else if (fsync(fd) != 0)
        rc = err_set(err, "cannot sync %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        rc = sync_dir(dir, err);
    buf_done(&b);
    free(dir);
    if (rc == 0)
        *where = path;
    else
        free(path);
    return rc;
}

/* j->text read from j->fd (locked), verified; a torn last line kept aside and cut off. */
static int load(struct journal *j, struct err *err)
{
    struct stat st;
    char *kept, *w;
    int rc;

    if (fstat(j->fd, &st) != 0)
        return err_set(err, "cannot read the journal %s: %s", j->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(err, "the journal %s is not a regular file", j->path);
    if ((uint64_t)st.st_size > FILE_MAX)
        return err_set(err,
                       "the journal %s is %lld bytes, more than n3ctl writes (%d MiB and a line): "
                       "it is no journal n3ctl can resume",
                       j->path, (long long)st.st_size, JOURNAL_SIZE_MAX >> 20);
    if (read_all(j->fd, (size_t)st.st_size, &j->text) != 0)
        return err_set(err, "cannot read the journal %s: %s", j->path, strerror(errno));
    if ((rc = parse_text(j, err)) <= 0)
        return rc;
    if (keep_torn(j, &kept, err) != 0)
        return err_prefix(err,
                          "the journal %s ends with a torn line (%zu bytes after seq %zu), which "
                          "could not be kept aside, so it was not cut off and nothing was "
                          "changed: ",
                          j->path, j->torn, j->n);
    if (ftruncate(j->fd, (off_t)j->torn_at) != 0 || fsync(j->fd) != 0) {
        rc = err_set(err,
                     "the journal %s ends with a torn line (%zu bytes after seq %zu, kept in %s), "
                     "which could not be cut off: %s",
                     j->path, j->torn, j->n, kept, strerror(errno));
        free(kept);
        return rc;
    }
    buf_truncate(&j->text, j->torn_at);
    w = xasprintf("it was cut off and kept in %s", kept);
    free(kept);
    kept = torn_warning(j, w);
    err_set(err, "%s", kept);
    free(kept);
    free(w);
    return 1;
}

int journal_open(const char *path, struct journal **out, struct err *err)
{
    struct journal *j;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return err_set(err, "cannot open the journal %s: %s", path, strerror(errno));
    j = journal_alloc(path);
    j->fd = fd;
    if (lock_file(fd, path, err) != 0 || (rc = load(j, err)) < 0) {
        journal_free(j);
        return -1;
    }
    *out = j;
    return rc;
}

int journal_adopt(const struct journal *fetched, const char *dir, struct journal **out,
                  struct err *err)
{
    struct journal *j;
    char *path;
    int fd;

    *out = NULL;
    if (write_new(dir, fetched->id, fetched->text.data, fetched->text.len, &fd, &path, err) != 0)
        return -1;
    j = journal_alloc(path);
    free(path);
    j->fd = fd;
    if (load(j, err) != 0) {
        /* It verified as it was fetched: the disk gave back something else. */
        err_prefix(err, "the adopted journal does not read back as it was written: ");
        unlink(j->path);
        journal_free(j);
        return -1;
    }
    *out = j;
    return 0;
}

/* ---- appending ---- */

/* The record's line, newline included, checked; NULL with err. */
static char *record_line(struct journal *j, enum journal_type type, const char *action,
                         uint64_t intent, const cJSON *data, struct err *err)
{
    char when[TIME_LEN + 1], *printed, *line, *q;
    uint64_t seq = (uint64_t)j->n + 1;
    cJSON *rec, *clean;
    size_t len;

    if (type != JOURNAL_INTENT && type != JOURNAL_OUTCOME && type != JOURNAL_EVENT &&
        type != JOURNAL_STATE) {
        err_set(err, "a journal record's type is intent, outcome, event or state (got %d)",
                (int)type);
        return NULL;
    }
    if (!name_ok(action)) {
        q = quoted(action);
        err_set(err, "the action %s is no name for a journal record (1 to 64 of A-Z a-z 0-9 . _ -)",
                q);
        free(q);
        return NULL;
    }
    if (type == JOURNAL_OUTCOME) {
        if (intent == 0 || intent > j->n || j->recs[intent - 1].type != JOURNAL_INTENT) {
            err_set(err,
                    "the outcome of %s must answer an intent of the journal %s, and seq %" PRIu64
                    " is none",
                    action, j->path, intent);
            return NULL;
        }
        if (j->recs[intent - 1].outcome != 0) {
            err_set(err,
                    "intent %" PRIu64 " of the journal %s has its outcome already (seq %" PRIu64
                    "); journal a new intent for another attempt",
                    intent, j->path, j->recs[intent - 1].outcome);
            return NULL;
        }
    } else if (intent != 0) {
        err_set(err, "only an outcome answers an intent: %s %s was given intent %" PRIu64,
                journal_type_name(type), action, intent);
        return NULL;
    }
    if (data != NULL && !cJSON_IsObject(data)) {
        err_set(err, "the data of journal record %s must be a JSON object", action);
        return NULL;
    }
    if (data == NULL)
        clean = must(cJSON_CreateObject());
    else if ((clean = audit_clean_json(data, "the journal data", err)) == NULL)
        return NULL;
    format_time(now_us(j), when);
    /* cJSON prints keys in the order they were added: this is the record's order. */
    rec = must(cJSON_CreateObject());
    add(rec, "seq", cJSON_CreateNumber((double)seq));
    add(rec, "time", cJSON_CreateString(when));
    add(rec, "type", cJSON_CreateString(journal_type_name(type)));
    add(rec, "action", cJSON_CreateString(action));
    if (type == JOURNAL_OUTCOME)
        add(rec, "intent", cJSON_CreateNumber((double)intent));
    add(rec, "data", clean);
    add(rec, "prev", cJSON_CreateString(j->last_hash));
    printed = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (printed == NULL)
        fatal("out of memory printing a journal record");
    line = xasprintf("%s\n", printed);
    cJSON_free(printed);
    len = strlen(line);
    if (len > JOURNAL_LINE_MAX) {
        err_set(err,
                "the %s record %s would be a line of %zu bytes, more than the %d a journal line "
                "may have; nothing was written (journal a reference to big data, not the data)",
                journal_type_name(type), action, len, JOURNAL_LINE_MAX);
        free(line);
        return NULL;
    }
    if (j->text.len + len > JOURNAL_SIZE_MAX) {
        err_set(err,
                "the journal %s is full: it holds %zu bytes, and the %s record %s (%zu bytes) "
                "would take it over %d MiB; nothing was written (a rollout journals far less: "
                "something journals in a loop)",
                j->path, j->text.len, journal_type_name(type), action, len, JOURNAL_SIZE_MAX >> 20);
        free(line);
        return NULL;
    }
    return line;
}

int journal_append(struct journal *j, enum journal_type type, const char *action, uint64_t intent,
                   const cJSON *data, uint64_t *seq, struct err *err)
{
    size_t old = j->text.len, len;
    int write_errno = 0, cut_errno = 0, rc, saved;
    char *line, why[160];
    cJSON *r;

    if (seq != NULL)
        *seq = 0;
    if (j->fd < 0)
        return err_set(err,
                       "the journal %s is read-only (fetched from a target): adopt it to append "
                       "to it",
                       j->path);
    if (j->broken)
        return err_set(err,
                       "the journal %s ends with a line a failed write left there: open it again "
                       "(which cuts it off) before appending",
                       j->path);
    if ((line = record_line(j, type, action, intent, data, err)) == NULL)
        return -1;
    len = strlen(line);
    rc = fs_write_whole(j->fd, (off_t)old, line, len, &write_errno, &cut_errno);
    if (rc == -2) {
        j->broken = true;
        free(line);
        return err_set(err,
                       "cannot write the journal %s: %s; and the part written could not be cut "
                       "off again (%s): it now ends with a torn line, which opening it again "
                       "cuts off",
                       j->path, strerror(write_errno), strerror(cut_errno));
    }
    if (rc != 0) {
        free(line);
        return err_set(err, "cannot write the journal %s: %s; nothing was appended", j->path,
                       strerror(write_errno));
    }
    if (fdatasync(j->fd) != 0) {
        saved = errno;
        free(line);
        if (ftruncate(j->fd, (off_t)old) != 0) {
            j->broken = true;
            return err_set(err,
                           "cannot sync the journal %s: %s; and the record could not be cut off "
                           "again (%s): opening it again verifies what is there",
                           j->path, strerror(saved), strerror(errno));
        }
        (void)fdatasync(j->fd);
        return err_set(err,
                       "cannot sync the journal %s: %s; the record was cut off again: nothing was "
                       "appended",
                       j->path, strerror(saved));
    }
    /* The record as the file now holds it, as a reader will see it. */
    if ((r = audit_parse_line(line, len - 1, JOURNAL_LINE_MAX, why, sizeof why)) == NULL)
        fatal("journal_append wrote a line it cannot read (%s)", why);
    buf_add(&j->text, line, len);
    if (take_record(j, r, (unsigned long)j->n + 2, j->last_hash, err) != 0)
        fatal("journal_append wrote a record it cannot read: %s", err->msg);
    audit_line_hash(line, len - 1, j->last_hash);
    free(line);
    if (seq != NULL)
        *seq = (uint64_t)j->n;
    return 0;
}

void journal_set_clock(struct journal *j, struct loop *loop)
{
    j->clock = loop;
}

/* ---- accessors ---- */

const char *journal_path(const struct journal *j)
{
    return j->path;
}

const char *journal_id(const struct journal *j)
{
    return j->id;
}

const cJSON *journal_header(const struct journal *j)
{
    return j->header;
}

uint64_t journal_count(const struct journal *j)
{
    return (uint64_t)j->n;
}

const cJSON *journal_record(const struct journal *j, uint64_t seq)
{
    return seq >= 1 && seq <= j->n ? j->recs[seq - 1].obj : NULL;
}

const cJSON *journal_last(const struct journal *j, enum journal_type type, const char *action)
{
    const cJSON *a;
    size_t i;

    for (i = j->n; i > 0; i--) {
        if (type != JOURNAL_ANY && j->recs[i - 1].type != type)
            continue;
        a = cJSON_GetObjectItemCaseSensitive(j->recs[i - 1].obj, "action");
        if (action == NULL || strcmp(a->valuestring, action) == 0)
            return j->recs[i - 1].obj;
    }
    return NULL;
}

const cJSON *journal_pending_intent(const struct journal *j)
{
    size_t i;

    for (i = j->n; i > 0; i--)
        if (j->recs[i - 1].type == JOURNAL_INTENT && j->recs[i - 1].outcome == 0)
            return j->recs[i - 1].obj;
    return NULL;
}

const char *journal_text(const struct journal *j, size_t *len)
{
    if (len != NULL)
        *len = j->text.len;
    return j->text.data;
}

size_t journal_torn(const struct journal *j)
{
    return j->torn;
}

/* ---- the mirror ---- */

struct mjob {
    struct mjob *next;
    uint64_t seq; /* the last record it brings (for messages) */
    size_t end;   /* when it is done, the remote holds the local bytes [0, end) */
    journal_done_fn done;
    void *arg;
};

struct journal_mirror {
    struct loop *loop;
    struct transport *t;
    char *path, *dir, *lock;
    struct journal *j;
    struct mjob *head, *tail;
    struct mjob *sending; /* the job of the command in flight (or NULL: a probe, or nothing) */
    bool busy;            /* a command in flight */
    bool scheduled;       /* a pump deferred */
    bool known;           /* remote: the remote file is the local bytes [0, remote) */
    size_t remote;
    char *diverged;
    bool dead;    /* journal_mirror_free was called */
    bool calling; /* inside a job's done */
};

static void pump(struct journal_mirror *m);

static void pump_cb(void *arg)
{
    struct journal_mirror *m = arg;

    m->scheduled = false;
    pump(m);
}

static void schedule(struct journal_mirror *m)
{
    if (m->scheduled || m->busy)
        return;
    m->scheduled = true;
    loop_defer(m->loop, pump_cb, m);
}

struct journal_mirror *journal_mirror_new(struct loop *loop, struct transport *t,
                                          const char *remote_path)
{
    struct journal_mirror *m = xcalloc(1, sizeof *m);

    if (remote_path == NULL || remote_path[0] == '\0')
        fatal("journal_mirror_new: no remote path");
    m->loop = loop;
    m->t = t;
    m->path = xstrdup(remote_path);
    m->dir = dir_of(remote_path);
    m->lock = xasprintf("%s.lock", remote_path);
    return m;
}

static void mirror_destroy(struct journal_mirror *m)
{
    if (m->j != NULL)
        m->j->mirror = NULL;
    free(m->path);
    free(m->dir);
    free(m->lock);
    free(m->diverged);
    free(m);
}

void journal_mirror_free(struct journal_mirror *m)
{
    if (m == NULL)
        return;
    m->dead = true;
    /* From a done callback: the pump that called it frees the mirror when it is idle. */
    if (m->calling)
        return;
    if (!m->busy && !m->scheduled && m->head == NULL) {
        mirror_destroy(m);
        return;
    }
    schedule(m);
}

bool journal_mirror_idle(const struct journal_mirror *m)
{
    return !m->busy && m->head == NULL;
}

const char *journal_mirror_diverged(const struct journal_mirror *m)
{
    return m->diverged;
}

/* done may free the mirror (it is only marked then: see journal_mirror_free), close the journal
 * or queue more. */
static void finish(struct journal_mirror *m, struct mjob *job, int rc, const char *msg)
{
    m->calling = true;
    job->done(job->arg, rc, msg);
    m->calling = false;
    free(job);
}

static struct mjob *pop(struct journal_mirror *m)
{
    struct mjob *job = m->head;

    m->head = job->next;
    if (m->head == NULL)
        m->tail = NULL;
    return job;
}

/* A job that did not make it: why, and that the local journal has it all the same. */
static void job_failed(struct journal_mirror *m, struct mjob *job, const char *why)
{
    char *msg;

    if (m->j != NULL)
        msg = xasprintf("the journal up to seq %" PRIu64 " was not mirrored to %s (%s): %s; the "
                        "local journal %s has it all the same",
                        job->seq, transport_name(m->t), m->path, why, m->j->path);
    else
        msg = xasprintf("the journal up to seq %" PRIu64 " was not mirrored to %s (%s): %s; the "
                        "local journal has it all the same",
                        job->seq, transport_name(m->t), m->path, why);
    finish(m, job, -1, msg);
    free(msg);
}

static void diverge(struct journal_mirror *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void diverge(struct journal_mirror *m, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    free(m->diverged);
    m->diverged = xasprintf("the journal's copy on %s (%s) has diverged: %s; nothing was appended "
                            "there, and nothing will be by this mirror (find out who wrote there)",
                            transport_name(m->t), m->path, what);
}

/* "|| { printf 'n3ctl: MESSAGE' >&2; exit 1; }; " */
static void or_fail(struct buf *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void or_fail(struct buf *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    shell_cmdf(cmd, "|| { printf 'n3ctl: %%s\\n' %s >&2; exit 1; }; ", msg);
}

static void add_lock(const struct journal_mirror *m, struct buf *cmd, bool exclusive)
{
    shell_cmdf(cmd, "exec 9>>%s ", m->lock);
    or_fail(cmd, "cannot open the lock file %.300s", m->lock);
    buf_adds(cmd, "command -v flock >/dev/null 2>&1 ");
    or_fail(cmd, "flock (util-linux) is not on this target: the journal's copy cannot be "
                 "appended to without two writers interleaving");
    shell_cmdf(cmd, exclusive ? "flock -x -w %d 9 " : "flock -s -w %d 9 ", LOCK_WAIT_S);
    or_fail(cmd,
            "could not lock %.300s within %d s: another n3ctl is appending to this journal, or "
            "is stuck",
            m->lock, LOCK_WAIT_S);
}

/* What the remote holds: its size and SHA-256, or "absent". */
static void probe_command(const struct journal_mirror *m, struct buf *cmd)
{
    shell_cmdf(cmd, "f=%s; [ -e \"$f\" ] || { echo absent; exit 0; }; ", m->path);
    add_lock(m, cmd, false);
    buf_adds(cmd, "command -v sha256sum >/dev/null 2>&1 ");
    or_fail(cmd, "sha256sum (GNU coreutils) is not on this target: the journal's copy cannot be "
                 "checked");
    buf_adds(cmd, "wc -c < \"$f\" && sha256sum < \"$f\"");
}

/*
 * Append local bytes [m->remote, end) if the remote still holds m->remote bytes and its last
 * line is the local line before m->remote (exit DIVERGED_RC otherwise, saying "size N" or
 * "last"); a short append is cut back; the file and its directory synced.
 */
static void append_command(const struct journal_mirror *m, size_t end, struct buf *cmd)
{
    const char *text = m->j->text.data;
    size_t r = m->remote, start;
    char hash[65];

    buf_adds(cmd, "umask 077; ");
    shell_cmdf(cmd, "f=%s; d=%s; mkdir -p -m 700 -- \"$d\" ", m->path, m->dir);
    or_fail(cmd, "cannot create the directory %.300s", m->dir);
    add_lock(m, cmd, true);
    buf_adds(cmd, "if [ -e \"$f\" ]; then s=$(wc -c < \"$f\") || exit 1; else s=0; fi; ");
    shell_cmdf(cmd, "[ \"$s\" -eq %u ] || { printf 'size %%s\\n' \"$s\"; exit %d; }; ", (unsigned)r,
               DIVERGED_RC);
    if (r > 0) {
        /* The last line the remote should end with, newline included. */
        start = r - 1;
        while (start > 0 && text[start - 1] != '\n')
            start--;
        audit_line_hash(text + start, r - start, hash);
        buf_adds(cmd, "command -v sha256sum >/dev/null 2>&1 ");
        or_fail(cmd, "sha256sum (GNU coreutils) is not on this target: the journal's copy cannot "
                     "be checked before appending");
        shell_cmdf(cmd,
                   "{ h=$(tail -c %u -- \"$f\" | sha256sum) && [ \"${h%%%% *}\" = %s ]; } || "
                   "{ echo last; exit %d; }; ",
                   (unsigned)(r - start), hash, DIVERGED_RC);
    }
    shell_cmdf(cmd,
               "cat >> \"$f\" && s=$(wc -c < \"$f\") && [ \"$s\" -eq %u ] || { truncate -s %u -- "
               "\"$f\" 2>/dev/null || dd if=/dev/null of=\"$f\" bs=1 seek=%u 2>/dev/null; ",
               (unsigned)end, (unsigned)r, (unsigned)r);
    shell_cmdf(cmd, "printf 'n3ctl: %%s\\n' %s >&2; exit 1; }; ",
               "the line could not be appended whole (a full disk?); what was written of it was "
               "cut off again");
    buf_adds(cmd, "{ sync -- \"$f\" \"$d\" 2>/dev/null || sync; } ");
    or_fail(cmd, "the line was appended, but could not be synced to disk");
}

static void command_done(void *arg, const struct transport_result *r);

static void run(struct journal_mirror *m, const struct buf *cmd, const char *input, size_t len)
{
    struct transport_run run;

    memset(&run, 0, sizeof run);
    run.command = cmd->data;
    run.input = input;
    run.input_len = len;
    run.timeout_ms = MIRROR_TIMEOUT_MS;
    run.output_limit = MIRROR_OUTPUT_MAX;
    run.on_done = command_done;
    run.arg = m;
    m->busy = true;
    transport_run(m->t, &run);
}

/* The probe said what the remote holds: is it the start of the local journal? */
static void probe_done(struct journal_mirror *m, const char *out)
{
    const char *text = m->j->text.data;
    size_t have = m->j->text.len;
    unsigned long long size;
    char hash[65], *end;

    if (strcmp(out, "absent\n") == 0) {
        m->known = true;
        m->remote = 0;
        return;
    }
    errno = 0;
    size = strtoull(out + strspn(out, " \t"), &end, 10);
    if (errno != 0 || end == out || *end != '\n' || strlen(end + 1) < 64 ||
        (end[65] != ' ' && end[65] != '\n')) {
        m->known = false;
        return; /* the caller fails the job with the output */
    }
    end[65] = '\0';
    if (size > have) {
        diverge(m, "it holds %llu bytes, more than the local journal's %zu", size, have);
        return;
    }
    audit_line_hash(text, (size_t)size, hash);
    if ((size > 0 && text[size - 1] != '\n') || strcmp(hash, end + 1) != 0) {
        diverge(m, "its %llu bytes are not the first %llu of the local journal", size, size);
        return;
    }
    m->known = true;
    m->remote = (size_t)size;
}

static void command_done(void *arg, const struct transport_result *r)
{
    struct journal_mirror *m = arg;
    struct mjob *job = m->sending;
    char *out = r->out != NULL ? tail_dup(r->out, NULL) : xstrdup(""), *why;
    unsigned long long size;

    m->busy = false;
    m->sending = NULL;
    if (r->status != TRANSPORT_OK) {
        m->known = false;
        job = job != NULL ? job : pop(m);
        job_failed(m, job, r->msg);
    } else if (r->exit_code == DIVERGED_RC && job != NULL) {
        if (strncmp(out, "size ", 5) == 0) {
            size = strtoull(out + 5 + strspn(out + 5, " \t"), NULL, 10);
            diverge(m,
                    "it holds %llu bytes where this mirror left %zu (a line was appended or "
                    "removed there behind n3ctl's back, or another controller journals to it)",
                    size, m->remote);
        } else {
            diverge(m, "its last line is not the one this mirror wrote there (it was changed "
                       "behind n3ctl's back)");
        }
        job_failed(m, job, m->diverged);
    } else if (r->exit_code != 0) {
        m->known = false;
        why = transport_stderr_line(r, "the command exited with ");
        job_failed(m, job != NULL ? job : pop(m), why);
        free(why);
    } else if (job != NULL) {
        m->remote = job->end;
        finish(m, job, 0, NULL);
    } else if (m->j != NULL) {
        probe_done(m, out);
        if (!m->known && m->diverged == NULL) {
            why = xasprintf("reading the copy's size and sha256 gave unexpected output (%.200s)",
                            out);
            job_failed(m, pop(m), why);
            free(why);
        }
    }
    free(out);
    pump(m);
}

/* Start the next job, or fail those that cannot be; free a dead mirror once it is idle. Jobs'
 * done is called from here only: from the loop, never inside the call that queued them. */
static void pump(struct journal_mirror *m)
{
    struct mjob *job;
    struct buf cmd;

    while (!m->busy && m->head != NULL) {
        job = m->head;
        if (m->dead) {
            job_failed(m, pop(m), "the mirror was stopped before it was sent");
        } else if (m->j == NULL) {
            job_failed(m, pop(m), "the journal was closed before it was sent");
        } else if (m->diverged != NULL) {
            job_failed(m, pop(m), m->diverged);
        } else if (!m->known) {
            buf_init(&cmd);
            probe_command(m, &cmd);
            run(m, &cmd, NULL, 0);
            buf_done(&cmd);
        } else if (m->remote >= job->end) {
            finish(m, pop(m), 0, NULL); /* a catch-up before brought it there */
        } else {
            buf_init(&cmd);
            append_command(m, job->end, &cmd);
            m->sending = pop(m);
            run(m, &cmd, m->j->text.data + m->remote, job->end - m->remote);
            buf_done(&cmd);
        }
    }
    if (m->dead && !m->busy && !m->scheduled && m->head == NULL)
        mirror_destroy(m);
}

static int mirror_bind(struct journal *j, struct journal_mirror *m, struct err *err)
{
    if (m->dead)
        return err_set(err, "the journal mirror to %s was stopped", m->path);
    if (j->fd < 0)
        return err_set(err, "the journal %s is read-only: it has no mirror to append to", j->path);
    if ((m->j != NULL && m->j != j) || (j->mirror != NULL && j->mirror != m))
        return err_set(err, "a journal has one mirror, and a mirror serves one journal (%s)",
                       m->path);
    m->j = j;
    j->mirror = m;
    return 0;
}

static void enqueue(struct journal_mirror *m, uint64_t seq, size_t end, journal_done_fn done,
                    void *arg)
{
    struct mjob *job = xcalloc(1, sizeof *job);

    job->seq = seq;
    job->end = end;
    job->done = done;
    job->arg = arg;
    if (m->tail != NULL)
        m->tail->next = job;
    else
        m->head = job;
    m->tail = job;
    schedule(m);
}

int journal_append_mirrored(struct journal *j, struct journal_mirror *m, enum journal_type type,
                            const char *action, uint64_t intent, const cJSON *data, uint64_t *seq,
                            journal_done_fn done, void *arg, struct err *err)
{
    uint64_t s;

    if (mirror_bind(j, m, err) != 0 || journal_append(j, type, action, intent, data, &s, err) != 0)
        return -1;
    if (seq != NULL)
        *seq = s;
    enqueue(m, s, j->text.len, done, arg);
    return 0;
}

int journal_mirror_sync(struct journal *j, struct journal_mirror *m, journal_done_fn done,
                        void *arg, struct err *err)
{
    if (mirror_bind(j, m, err) != 0)
        return -1;
    enqueue(m, (uint64_t)j->n, j->text.len, done, arg);
    return 0;
}

void journal_close(struct journal *j)
{
    if (j == NULL)
        return;
    if (j->mirror != NULL) {
        j->mirror->j = NULL;
        schedule(j->mirror);
        j->mirror = NULL;
    }
    journal_free(j);
}

/* ---- fetching ---- */

struct fetch {
    char *name;
    journal_fetch_fn cb;
    void *arg;
};

static void fetch_done(void *arg, const struct transport_result *r)
{
    struct fetch *f = arg;
    struct journal *j = NULL;
    struct err err;
    int rc;

    if (r->status != TRANSPORT_OK) {
        f->cb(f->arg, -1, NULL, r->msg);
    } else {
        rc = journal_parse(f->name, r->data != NULL ? r->data : "", r->len, &j, &err);
        f->cb(f->arg, rc, j, rc != 0 ? err.msg : NULL);
    }
    free(f->name);
    free(f);
}

void journal_fetch(struct loop *loop, struct transport *t, const char *remote_path,
                   size_t max_bytes, journal_fetch_fn cb, void *arg)
{
    struct fetch *f = xcalloc(1, sizeof *f);

    (void)loop; /* the transport calls back on its loop, after this returned */
    f->name = xasprintf("%s:%s", transport_name(t), remote_path);
    f->cb = cb;
    f->arg = arg;
    transport_read_file(t, remote_path, max_bytes > 0 ? max_bytes : FILE_MAX, fetch_done, f);
}
