/* The audit log: hash-chained JSON lines, appended under a lock, verified line by line. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/fmt.h"
#include "core/audit.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/xalloc.h"

#define AUDIT_LINE_MAX  (1u << 20) /* n3ctl writes no longer record, and continues none */
#define AUDIT_DEPTH_MAX 32         /* nesting inside detail */
#define AUDIT_CHUNK     4096       /* reads backwards from the end, looking for the last line */
#define AUDIT_SEQ_MAX   9007199254740992.0    /* 2^53: JSON numbers stay exact below */
#define AUDIT_TIME_MAX  INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define AUDIT_HINT      "run `n3ctl audit verify` to find the damage"
#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* cJSON returns NULL when malloc fails: the broken invariant xmalloc aborts on too. */
static cJSON *must(cJSON *j)
{
    if (j == NULL)
        fatal("out of memory building an audit record");
    return j;
}

static void add(cJSON *obj, const char *key, cJSON *item)
{
    if (!cJSON_AddItemToObject(obj, key, must(item)))
        fatal("out of memory building an audit record");
}

/* Strings come from outside (user names, target names, command lines): the record stays
 * valid UTF-8 whatever bytes they hold. cJSON escapes quotes and control characters. */
static cJSON *clean_string(const char *s)
{
    char *c = utf8_sanitize(s, strlen(s));
    cJSON *j = must(cJSON_CreateString(c));

    free(c);
    return j;
}

/* A copy of detail, cleaned like the other strings. Raw JSON is refused: cJSON prints it as
 * it is, so it could hold a newline and split the record. */
static cJSON *clean_copy(const cJSON *v, const char *what, int depth, struct err *err)
{
    const cJSON *c;
    cJSON *out, *item;
    char *key;

    if (depth > AUDIT_DEPTH_MAX) {
        err_set(err, "%s is nested deeper than %d levels; flatten it", what, AUDIT_DEPTH_MAX);
        return NULL;
    }
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        out = must(cJSON_IsObject(v) ? cJSON_CreateObject() : cJSON_CreateArray());
        for (c = v->child; c != NULL; c = c->next) {
            if ((item = clean_copy(c, what, depth + 1, err)) == NULL) {
                cJSON_Delete(out);
                return NULL;
            }
            if (cJSON_IsArray(v)) {
                if (!cJSON_AddItemToArray(out, item))
                    fatal("out of memory building an audit record");
                continue;
            }
            key = utf8_sanitize(c->string != NULL ? c->string : "",
                                c->string != NULL ? strlen(c->string) : 0);
            add(out, key, item);
            free(key);
        }
        return out;
    }
    if (cJSON_IsString(v))
        return clean_string(v->valuestring != NULL ? v->valuestring : "");
    if (cJSON_IsNumber(v))
        return must(cJSON_CreateNumber(v->valuedouble));
    if (cJSON_IsBool(v))
        return must(cJSON_CreateBool(cJSON_IsTrue(v)));
    if (cJSON_IsNull(v))
        return must(cJSON_CreateNull());
    err_set(err, "%s holds raw or invalid JSON; build it from cJSON values", what);
    return NULL;
}

cJSON *audit_clean_json(const cJSON *v, const char *what, struct err *err)
{
    return clean_copy(v, what, 0, err);
}

static int format_time(int64_t t, char out[21], struct err *err)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t < 0 || t > AUDIT_TIME_MAX || (int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
        strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
        return err_set(err,
                       "the audit time %" PRId64 " is not a time between 1970 and 9999 "
                       "(Unix seconds are expected)",
                       t);
    return 0;
}

static bool is_seq(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= AUDIT_SEQ_MAX &&
           v->valuedouble == floor(v->valuedouble);
}

static bool is_time(const cJSON *v)
{
    return fmt_shape_ok(cJSON_IsString(v) ? v->valuestring : NULL, "dddd-dd-ddTdd:dd:ddZ");
}

static bool is_string(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring != NULL;
}

static bool is_number(const cJSON *v)
{
    return cJSON_IsNumber(v);
}

static bool is_strings(const cJSON *v)
{
    const cJSON *c;

    if (!cJSON_IsArray(v))
        return false;
    for (c = v->child; c != NULL; c = c->next)
        if (!is_string(c))
            return false;
    return true;
}

static bool is_object(const cJSON *v)
{
    return cJSON_IsObject(v);
}

bool audit_hash_ok(const char *s)
{
    size_t i;

    if (s == NULL || strlen(s) != 64)
        return false;
    for (i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool is_hash(const cJSON *v)
{
    return audit_hash_ok(is_string(v) ? v->valuestring : NULL);
}

/* What a record holds; other keys are allowed, for records of later versions. */
static const struct record_key {
    const char *name;
    bool (*ok)(const cJSON *v);
    const char *want;
} record_keys[] = {
    {.name = "seq", .ok = is_seq, .want = "a positive integer"},
    {.name = "time", .ok = is_time, .want = "a UTC time like 2026-11-27T06:50:01Z"},
    {.name = "actor", .ok = is_string, .want = "a string"},
    {.name = "pid", .ok = is_number, .want = "a number"},
    {.name = "action", .ok = is_string, .want = "a string"},
    {.name = "targets", .ok = is_strings, .want = "an array of strings"},
    {.name = "result", .ok = is_string, .want = "a string"},
    {.name = "detail", .ok = is_object, .want = "an object"},
    {.name = "prev", .ok = is_hash, .want = "64 lowercase hex digits"},
};

cJSON *audit_parse_line(const char *line, size_t len, size_t max, char *why, size_t whylen)
{
    const char *end = NULL;
    cJSON *r;
    size_t i;

    if (len > max) {
        snprintf(why, whylen, "longer than %zu bytes, and n3ctl writes no record that long", max);
        return NULL;
    }
    /* cJSON takes raw control characters inside strings; a record never holds one (they are
     * escaped), and a newline would make it two lines. */
    for (i = 0; i < len; i++) {
        if ((unsigned char)line[i] < 0x20) {
            snprintf(why, whylen,
                     "not a record: a raw control character (byte 0x%02x) at column %zu",
                     (unsigned char)line[i], i + 1);
            return NULL;
        }
    }
    if (len == 0 || line[0] != '{' || (r = cJSON_ParseWithLengthOpts(line, len, &end, 0)) == NULL) {
        snprintf(why, whylen, "not JSON");
        return NULL;
    }
    if (end != line + len || !cJSON_IsObject(r)) {
        snprintf(why, whylen, "not a JSON object alone (something follows it)");
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

/* The record in line, or NULL with why saying what is wrong with it. */
static cJSON *parse_record(const char *line, size_t len, char *why, size_t whylen)
{
    cJSON *r;
    size_t i;

    if ((r = audit_parse_line(line, len, AUDIT_LINE_MAX, why, whylen)) == NULL)
        return NULL;
    for (i = 0; i < sizeof record_keys / sizeof record_keys[0]; i++) {
        const struct record_key *k = &record_keys[i];

        if (!k->ok(cJSON_GetObjectItemCaseSensitive(r, k->name))) {
            snprintf(why, whylen, "not a record: \"%s\" is missing or not %s", k->name, k->want);
            cJSON_Delete(r);
            return NULL;
        }
    }
    return r;
}

static uint64_t record_seq(const cJSON *r)
{
    return (uint64_t)cJSON_GetObjectItemCaseSensitive(r, "seq")->valuedouble;
}

cJSON *audit_parse(const char *line, size_t len)
{
    char why[128];

    return parse_record(line, len, why, sizeof why);
}

void audit_line_hash(const char *line, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (EVP_Digest(line, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        fatal("SHA-256 failed in libcrypto");
    for (i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

char *audit_format(const char *prev_line, const struct audit_entry *e, struct err *err)
{
    char when[21], hash[65], why[128], *printed, *line;
    cJSON *rec, *prev, *targets, *detail;
    uint64_t seq = 1;
    size_t i, n;

    if (e->actor == NULL || e->action == NULL || e->result == NULL) {
        err_set(err, "an audit record needs an actor, an action and a result");
        return NULL;
    }
    if (format_time(e->time, when, err) != 0)
        return NULL;
    memcpy(hash, AUDIT_ZERO_HASH, sizeof hash);
    if (prev_line != NULL && prev_line[0] != '\0') {
        n = strlen(prev_line);
        if ((prev = parse_record(prev_line, n, why, sizeof why)) == NULL) {
            err_set(err,
                    "the last line of the audit log is %s, so the chain cannot be continued; "
                    "nothing was written: " AUDIT_HINT,
                    why);
            return NULL;
        }
        seq = record_seq(prev) + 1;
        cJSON_Delete(prev);
        if ((double)seq > AUDIT_SEQ_MAX) {
            err_set(err, "the audit log is full (seq %" PRIu64 "); start a new one", seq - 1);
            return NULL;
        }
        audit_line_hash(prev_line, n, hash);
    }
    if (e->detail != NULL && !cJSON_IsObject(e->detail)) {
        err_set(err, "the audit detail must be a JSON object");
        return NULL;
    }
    detail = e->detail != NULL ? clean_copy(e->detail, "the audit detail", 0, err)
                               : must(cJSON_CreateObject());
    if (detail == NULL)
        return NULL;

    /* cJSON prints keys in the order they were added: this is the record's order. */
    rec = must(cJSON_CreateObject());
    add(rec, "seq", cJSON_CreateNumber((double)seq));
    add(rec, "time", cJSON_CreateString(when));
    add(rec, "actor", clean_string(e->actor));
    add(rec, "pid", cJSON_CreateNumber((double)e->pid));
    add(rec, "action", clean_string(e->action));
    targets = must(cJSON_CreateArray());
    for (i = 0; e->targets != NULL && e->targets[i] != NULL; i++)
        if (!cJSON_AddItemToArray(targets, clean_string(e->targets[i])))
            fatal("out of memory building an audit record");
    add(rec, "targets", targets);
    add(rec, "result", clean_string(e->result));
    add(rec, "detail", detail);
    add(rec, "prev", cJSON_CreateString(hash));
    printed = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (printed == NULL)
        fatal("out of memory printing an audit record");
    line = xstrdup(printed);
    cJSON_free(printed);
    if (strlen(line) > AUDIT_LINE_MAX) {
        err_set(err, "the audit record would be %zu bytes, more than %u; shorten its detail",
                strlen(line), AUDIT_LINE_MAX);
        free(line);
        return NULL;
    }
    return line;
}

/* Read exactly n bytes at off; -1 with errno set (0 if the file shrank meanwhile). */
static int pread_all(int fd, char *p, size_t n, off_t off)
{
    ssize_t r;

    while (n > 0) {
        r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int read_error(const char *path, struct err *err)
{
    return err_set(err, "cannot read the audit log %s: %s", path,
                   errno != 0 ? strerror(errno) : "it shrank while it was read");
}

/* The last line of a non-empty file, without its newline. Found by reading backwards from the
 * end, so a log of many MB costs a read or two, not the whole file. */
static int read_last_line(int fd, const char *path, off_t size, char **out, struct err *err)
{
    char chunk[AUDIT_CHUNK], *nl = NULL, *line;
    off_t end = size - 1, start = end, from;
    size_t n, len;

    if (pread_all(fd, chunk, 1, end) != 0)
        return read_error(path, err);
    if (chunk[0] != '\n')
        return err_set(
            err,
            "the audit log %s does not end with a newline: its last record was cut "
            "short (an interrupted write?), and nothing was appended after it; " AUDIT_HINT
            ", then repair the log or move it aside",
            path);
    while (start > 0 && nl == NULL) {
        n = start < AUDIT_CHUNK ? (size_t)start : AUDIT_CHUNK;
        from = start - (off_t)n;
        if (pread_all(fd, chunk, n, from) != 0)
            return read_error(path, err);
        nl = memrchr(chunk, '\n', n);
        start = nl != NULL ? from + (nl - chunk) + 1 : from;
        if (end - start > (off_t)AUDIT_LINE_MAX)
            return err_set(err,
                           "the last line of the audit log %s is longer than %u bytes, so it is "
                           "no record n3ctl wrote; nothing was appended: " AUDIT_HINT,
                           path, AUDIT_LINE_MAX);
    }
    len = (size_t)(end - start);
    if (len == 0)
        return err_set(err,
                       "the audit log %s ends with an empty line, so it was edited; nothing was "
                       "appended: " AUDIT_HINT,
                       path);
    line = xmalloc(len + 1);
    if (pread_all(fd, line, len, start) != 0) {
        free(line);
        return read_error(path, err);
    }
    line[len] = '\0';
    /* The record is hashed as a C string: a NUL inside would hide the bytes after it. */
    if (memchr(line, '\0', len) != NULL) {
        free(line);
        return err_set(err,
                       "the last line of the audit log %s holds a NUL byte; nothing was "
                       "appended: " AUDIT_HINT,
                       path);
    }
    *out = line;
    return 0;
}

/* The record is put in place whole (a short write, on a full disk, is finished, or else cut off
 * again), so that the log never keeps half a record. */
static int write_record(int fd, const char *path, off_t size, const struct buf *b, struct err *err)
{
    int write_errno, cut_errno;
    int rc = fs_write_whole(fd, size, b->data, b->len, &write_errno, &cut_errno);

    if (rc == -2)
        return err_set(err,
                       "cannot write the audit log %s: %s; and its torn last record "
                       "could not be removed (%s): " AUDIT_HINT,
                       path, strerror(write_errno), strerror(cut_errno));
    if (rc != 0)
        return err_set(err, "cannot write the audit log %s: %s; nothing was appended", path,
                       strerror(write_errno));
    return 0;
}

/* Does the log still end with the head saved beside it (every append saves it, under the
 * log's lock)? When not, a copy of e's detail with "audit_gap" saying what is missing, and
 * what in *what ("cut" or "rewritten"); NULL when all is well or there is no head. */
static cJSON *head_gap(const char *path, const char *last, const struct audit_entry *e,
                       struct audit_head *head, struct audit_head *end)
{
    char *head_path = audit_head_path(path);
    struct err ignored;
    cJSON *detail, *gap;
    int loaded = audit_head_load(head_path, head, &ignored);

    free(head_path);
    memset(end, 0, sizeof *end);
    if (last != NULL && audit_head_of(last, strlen(last), end) != 0)
        memset(end, 0, sizeof *end);
    if (loaded != 0 || (end->seq == head->seq && strcmp(end->sha256, head->sha256) == 0))
        return NULL;
    detail = e->detail != NULL ? cJSON_Duplicate(e->detail, true) : cJSON_CreateObject();
    gap = must(cJSON_AddObjectToObject(detail, "audit_gap"));
    must(cJSON_AddNumberToObject(gap, "expected_seq", (double)head->seq));
    must(cJSON_AddStringToObject(gap, "expected_sha256", head->sha256));
    must(cJSON_AddNumberToObject(gap, "log_ends_at_seq", (double)end->seq));
    must(cJSON_AddStringToObject(gap, "what", end->seq < head->seq ? "cut" : "rewritten"));
    return detail;
}

static int append_locked(int fd, const char *path, const struct audit_entry *e, char **line,
                         struct err *err)
{
    struct stat st;
    struct buf b;
    struct audit_entry copy = *e;
    struct audit_head head, end;
    char *last = NULL, *rec;
    cJSON *gap_detail;
    bool gap;
    int rc;

    if (fstat(fd, &st) != 0)
        return read_error(path, err);
    if (!S_ISREG(st.st_mode))
        return err_set(err, "the audit log %s is not a regular file", path);
    if (st.st_size > 0 && read_last_line(fd, path, st.st_size, &last, err) != 0)
        return -1;
    gap_detail = head_gap(path, last, e, &head, &end);
    gap = gap_detail != NULL;
    if (gap)
        copy.detail = gap_detail;
    rec = audit_format(last, &copy, err);
    free(last);
    cJSON_Delete(gap_detail);
    if (rec == NULL)
        return err_prefix(err, "cannot append to the audit log %s: ", path);
    buf_init(&b);
    buf_adds(&b, rec);
    buf_addc(&b, '\n');
    rc = write_record(fd, path, st.st_size, &b, err);
    buf_done(&b);
    if (rc == 0 && fsync(fd) != 0)
        rc = err_set(err, "cannot sync the audit log %s: %s (the record may be lost in a crash)",
                     path, strerror(errno));
    if (rc != 0) {
        free(rec);
        return rc;
    }
    *line = rec;
    if (!gap)
        return 0;
    err_set(err,
            "the audit log %s was %s: it ends at record %" PRIu64 ", but record %" PRIu64
            " was the last written to it (its head file says so); the new record notes it "
            "(audit_gap)",
            path, end.seq < head.seq ? "cut" : "rewritten", end.seq, head.seq);
    return 1;
}

static int problem(struct audit_problem *p, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int audit_head_of(const char *line, size_t len, struct audit_head *h)
{
    char why[128];
    cJSON *r = parse_record(line, len, why, sizeof why);

    memset(h, 0, sizeof *h);
    if (r == NULL)
        return -1;
    h->seq = record_seq(r);
    cJSON_Delete(r);
    audit_line_hash(line, len, h->sha256);
    return 0;
}

int audit_check_head(const char *text, size_t len, const struct audit_head *h,
                     struct audit_problem *p)
{
    unsigned long line = 0;
    const char *nl;
    size_t pos, n;
    char hash[65];

    if (h->seq == 0)
        return 0;
    /* In a log whose chain holds, record N is line N. */
    for (pos = 0; pos < len; pos += n + 1) {
        nl = memchr(text + pos, '\n', len - pos);
        n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        if (++line == h->seq)
            break;
    }
    if (line < h->seq)
        return problem(p, line + 1,
                       "the log ends at seq %lu, but seq %" PRIu64
                       " (sha256 %.12s...) was written to it: %" PRIu64
                       " record(s) were cut off its end",
                       line, h->seq, h->sha256, h->seq - line);
    audit_line_hash(text + pos, n, hash);
    if (strcmp(hash, h->sha256) != 0)
        return problem(p, line,
                       "seq %" PRIu64 " is not the record written there (its sha256 was "
                       "%.12s...): the log was rewritten from there on, or before",
                       h->seq, h->sha256);
    return 0;
}

char *audit_head_path(const char *log_path)
{
    return xasprintf("%s.head", log_path);
}

int audit_head_load(const char *path, struct audit_head *h, struct err *err)
{
    char text[128], *end;
    unsigned long long seq;
    size_t i;
    ssize_t n;
    int fd;

    memset(h, 0, sizeof *h);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0)
        return err_set(err, "cannot read %s: %s", path, strerror(errno));
    n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0)
        return err_set(err, "cannot read %s: %s", path, strerror(errno));
    text[n] = '\0';
    errno = 0;
    seq = strtoull(text, &end, 10);
    if (errno != 0 || end == text || seq == 0 || *end != ' ' || strlen(end + 1) != 65 ||
        end[65] != '\n')
        return err_set(err, "%s is not an audit head (\"SEQ SHA256\"): remove it", path);
    for (i = 0; i < 64; i++) {
        char c = end[1 + i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return err_set(err, "%s is not an audit head (\"SEQ SHA256\"): remove it", path);
    }
    h->seq = seq;
    memcpy(h->sha256, end + 1, 64);
    h->sha256[64] = '\0';
    return 0;
}

int audit_head_save(const char *path, const struct audit_head *h, struct err *err)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid()), text[96];
    int fd, n, rc = 0;

    if (fs_mkdirs_for(path, err) != 0) {
        free(tmp);
        return -1;
    }
    n = snprintf(text, sizeof text, "%" PRIu64 " %s\n", h->seq, h->sha256);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) != 0)
        rc = err_set(err, "cannot write %s: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = err_set(err, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = err_set(err, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int audit_append_file(const char *path, const struct audit_entry *e, char **line_out,
                      struct err *err)
{
    char *line = NULL;
    int fd, rc = 0;

    if (line_out != NULL)
        *line_out = NULL;
    if (fs_mkdirs_for(path, err) != 0)
        return -1;
    fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, "cannot open the audit log %s: %s", path, strerror(errno));
    /* Other n3ctl processes append too: the last line, the next seq and the write must be one
     * step, or two records would get the same seq. */
    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        rc = err_set(err, "cannot lock the audit log %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    rc = append_locked(fd, path, e, &line, err);
    if (rc >= 0) {
        /* Under the log's lock, so heads are saved in the order records were written. */
        char *head_path = audit_head_path(path);
        struct audit_head h;
        struct err ignored;

        if (audit_head_of(line, strlen(line), &h) == 0)
            audit_head_save(head_path, &h, &ignored);
        free(head_path);
    }
    flock(fd, LOCK_UN);
    if (close(fd) != 0 && rc == 0)
        rc = err_set(err, "cannot write the audit log %s: %s", path, strerror(errno));
    if (rc >= 0 && line_out != NULL)
        *line_out = line;
    else
        free(line);
    return rc;
}

static int problem(struct audit_problem *p, unsigned long line, const char *fmt, ...)
{
    va_list ap;
    int n;

    p->line = line;
    n = snprintf(p->why, sizeof p->why, "line %lu: ", line);
    va_start(ap, fmt);
    vsnprintf(p->why + n, sizeof p->why - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The line, from `line` on, that starts the record with this seq (a reordered log still holds
 * it), or 0. Records start with "{\"seq\":N," as audit_format writes them. */
static unsigned long find_seq(const char *text, size_t len, size_t pos, unsigned long line,
                              uint64_t seq)
{
    char head[48];
    size_t hn = (size_t)snprintf(head, sizeof head, "{\"seq\":%" PRIu64 ",", seq), n;
    const char *nl;

    for (; pos < len; pos += n + 1, line++) {
        nl = memchr(text + pos, '\n', len - pos);
        n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        if (n >= hn && memcmp(text + pos, head, hn) == 0)
            return line;
    }
    return 0;
}

/* The seq a line holds that is not the one expected: say what happened to the log. */
static int seq_problem(struct audit_problem *p, const char *text, size_t len, size_t next,
                       unsigned long line, uint64_t want, uint64_t got)
{
    unsigned long at;

    if (got < want)
        return problem(p, line,
                       "seq %" PRIu64 " after seq %" PRIu64 ": records were reordered or repeated",
                       got, want - 1);
    if ((at = find_seq(text, len, next, line + 1, want)) != 0)
        return problem(p, line,
                       "seq %" PRIu64 " where %" PRIu64 " was expected, and seq %" PRIu64
                       " is at line %lu: records were reordered",
                       got, want, want, at);
    if (want == 1)
        return problem(p, line,
                       "the log starts at seq %" PRIu64 ", not 1: the first %" PRIu64
                       " record(s) were removed",
                       got, got - 1);
    return problem(p, line,
                   "seq jumps from %" PRIu64 " to %" PRIu64 ": %" PRIu64
                   " record(s) were removed before this line",
                   want - 1, got, got - want);
}

int audit_verify(const char *text, size_t len, struct audit_problem *p)
{
    struct audit_problem none;
    char hash[65], why[128];
    const char *s, *nl, *prev;
    unsigned long line = 0;
    uint64_t seq;
    size_t pos, n;
    cJSON *r;

    if (p == NULL)
        p = &none;
    p->line = 0;
    p->why[0] = '\0';
    p->records = 0;
    p->torn = false;
    p->torn_at = 0;
    memcpy(hash, AUDIT_ZERO_HASH, sizeof hash);
    for (pos = 0; pos < len; pos += n + 1) {
        line++;
        s = text + pos;
        /* A bad last line that is no record at all: torn (what follows says how). */
        p->torn_at = pos;
        if ((nl = memchr(s, '\n', len - pos)) == NULL) {
            p->torn = true;
            return problem(p, line,
                           "the last record is cut short (no newline at its end): a write was "
                           "interrupted, or the file was truncated");
        }
        n = (size_t)(nl - s);
        p->torn = pos + n + 1 == len;
        if (n == 0)
            return problem(p, line, "empty line: n3ctl writes none, so the log was edited");
        if ((r = parse_record(s, n, why, sizeof why)) == NULL)
            return problem(p, line, "%s: the line was changed, or written by something else", why);
        p->torn = false;
        seq = record_seq(r);
        prev = cJSON_GetObjectItemCaseSensitive(r, "prev")->valuestring;
        if (seq != (uint64_t)p->records + 1) {
            cJSON_Delete(r);
            return seq_problem(p, text, len, pos + n + 1, line, (uint64_t)p->records + 1, seq);
        }
        if (strcmp(prev, hash) != 0) {
            cJSON_Delete(r);
            if (line == 1)
                return problem(p, line,
                               "prev is not 64 zeros, as the first record's must be: the record "
                               "was changed");
            return problem(p, line,
                           "prev does not match line %lu: line %lu was changed, or a record was "
                           "removed between them",
                           line - 1, line - 1);
        }
        cJSON_Delete(r);
        audit_line_hash(s, n, hash);
        p->records++;
    }
    return 0;
}

char *audit_local_path(void)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    struct passwd *pw;
    size_t n;

    /* The XDG base directory spec: a relative path is invalid and is ignored. */
    if (state != NULL && state[0] == '/') {
        for (n = strlen(state); n > 0 && state[n - 1] == '/'; n--)
            ;
        return xasprintf("%.*s/n3ctl/audit.log", (int)n, state);
    }
    if ((home == NULL || home[0] != '/') && (pw = getpwuid(getuid())) != NULL)
        home = pw->pw_dir;
    if (home == NULL || home[0] != '/')
        return NULL;
    for (n = strlen(home); n > 0 && home[n - 1] == '/'; n--)
        ;
    return xasprintf("%.*s/.local/state/n3ctl/audit.log", (int)n, home);
}
