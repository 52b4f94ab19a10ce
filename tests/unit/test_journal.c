/* The rollout journal: format and chain, refusals, torn and changed lines, bounds, the mirror on a
 * target through the local transport, fetching it back, and appends killed at random moments. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/journal.h"
#include "deploy/transport.h"
#include "tests/unit/testutil.h"

#define WAIT_MS 60000
#define T0_MS   1795762201123ull /* 2026-11-27T06:50:01.123Z */

static char *tmp;

static void setup(void)
{
    tmp = tu_mkdtemp();
}

static void teardown(void)
{
    tu_rmdir_r(tmp);
    free(tmp);
}

/* The usual header: environment, candidate, stable, and one extra field. */
static cJSON *header(void)
{
    cJSON *h = cJSON_CreateObject();

    cJSON_AddStringToObject(h, "environment", "production");
    cJSON_AddStringToObject(h, "candidate", "1.4.2");
    cJSON_AddStringToObject(h, "stable", "1.4.1");
    cJSON_AddStringToObject(h, "strategy", "canary");
    return h;
}

static struct journal *create(const char *dir, const char *id)
{
    cJSON *h = header();
    struct journal *j;
    struct err err;

    ck_assert_msg(journal_create(dir, id, h, &j, &err) == 0, "%s", err.msg);
    cJSON_Delete(h);
    return j;
}

/* Append a record with data {"n": n}; its seq. */
static uint64_t append_n(struct journal *j, enum journal_type type, const char *action,
                         uint64_t intent, int n)
{
    cJSON *d = cJSON_CreateObject();
    struct err err;
    uint64_t seq;

    cJSON_AddNumberToObject(d, "n", n);
    ck_assert_msg(journal_append(j, type, action, intent, d, &seq, &err) == 0, "%s", err.msg);
    cJSON_Delete(d);
    return seq;
}

static char *path_of(const char *dir, const char *id)
{
    return xasprintf("%s/%s.jsonl", dir, id);
}

static size_t file_size(const char *path)
{
    struct stat st;

    ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    return (size_t)st.st_size;
}

static int file_mode(const char *path)
{
    struct stat st;

    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    return (int)(st.st_mode & 07777);
}

static void append_bytes(const char *path, const char *bytes)
{
    FILE *f = fopen(path, "a");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(bytes, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* Line k (1-based) of text, without its newline; caller frees. */
static char *line_of(const char *text, int k)
{
    const char *s = text, *nl;

    while (--k > 0) {
        nl = strchr(s, '\n');
        ck_assert_ptr_nonnull(nl);
        s = nl + 1;
    }
    nl = strchr(s, '\n');
    return xstrndup(s, nl != NULL ? (size_t)(nl - s) : strlen(s));
}

/* The file holds exactly text. */
static void assert_file_is(const char *path, const char *text)
{
    char *got = tu_read_file(path);

    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, text);
    free(got);
}

static void assert_prefix(const char *s, const char *prefix)
{
    ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"", s,
                  prefix);
}

static void assert_has(const char *msg, const char *needle)
{
    ck_assert_msg(strstr(msg, needle) != NULL, "\"%s\" not in \"%s\"", needle, msg);
}

/* Every record's seq is its place, every prev the hash of the line before (checked here again,
 * from the bytes, not only by the journal's own reader). */
static void assert_chain(const char *text, uint64_t records)
{
    char hash[65], *line, *prev;
    cJSON *r;
    uint64_t s;

    prev = line_of(text, 1);
    for (s = 1; s <= records; s++) {
        line = line_of(text, (int)s + 1);
        r = cJSON_Parse(line);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "seq")->valuedouble, (double)s);
        audit_line_hash(prev, strlen(prev), hash);
        ck_assert_str_eq(cJSON_GetObjectItem(r, "prev")->valuestring, hash);
        cJSON_Delete(r);
        free(prev);
        prev = line;
    }
    free(prev);
}

START_TEST(create_append_reopen_round_trip)
{
    char *dir = xasprintf("%s/state/rollouts", tmp), *path = path_of(dir, "r-1.a_b"), *text, *line;
    struct loop *loop = loop_new_fake(T0_MS, 1);
    struct journal *j;
    struct err err;
    const cJSON *h, *r;
    uint64_t s1, s2, s3, s4;
    cJSON *parsed;

    j = create(dir, "r-1.a_b");
    ck_assert_int_eq(file_mode(dir), 0700);
    ck_assert_int_eq(file_mode(path), 0600);
    ck_assert_str_eq(journal_id(j), "r-1.a_b");
    ck_assert_uint_eq(journal_count(j), 0);
    journal_set_clock(j, loop);
    s1 = append_n(j, JOURNAL_INTENT, "set_weight", 0, 5);
    loop_fake_advance(loop, 1500);
    s2 = append_n(j, JOURNAL_OUTCOME, "set_weight", s1, 5);
    s3 = append_n(j, JOURNAL_EVENT, "analysis", 0, 1);
    s4 = append_n(j, JOURNAL_INTENT, "promote", 0, 100);
    ck_assert_uint_eq(s1, 1);
    ck_assert_uint_eq(s2, 2);
    ck_assert_uint_eq(s3, 3);
    ck_assert_uint_eq(s4, 4);
    journal_close(j);

    /* The bytes: a header with the fields in their order, then records as documented. */
    text = tu_read_file(path);
    line = line_of(text, 1);
    parsed = cJSON_Parse(line);
    assert_prefix(line, "{\"n3journal\":1,\"rollout\":\"r-1.a_b\",\"environment\":\"production\","
                        "\"created\":\"");
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(parsed, "by"));
    assert_has(line, "\"candidate\":\"1.4.2\",\"stable\":\"1.4.1\",\"strategy\":\"canary\"}");
    cJSON_Delete(parsed);
    free(line);
    line = line_of(text, 2);
    assert_prefix(line, "{\"seq\":1,\"time\":\"2026-11-27T06:50:01.123Z\",\"type\":\"intent\","
                        "\"action\":\"set_weight\",\"data\":{\"n\":5},\"prev\":\"");
    free(line);
    line = line_of(text, 3);
    assert_prefix(line, "{\"seq\":2,\"time\":\"2026-11-27T06:50:02.623Z\",\"type\":\"outcome\","
                        "\"action\":\"set_weight\",\"intent\":1,\"data\":{\"n\":5},");
    free(line);
    assert_chain(text, 4);

    /* Reopened: the same records, and appending goes on from there. */
    ck_assert_msg(journal_open(path, &j, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(journal_count(j), 4);
    h = journal_header(j);
    ck_assert_str_eq(cJSON_GetObjectItem(h, "environment")->valuestring, "production");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "strategy")->valuestring, "canary");
    for (s1 = 1; s1 <= 4; s1++)
        ck_assert_uint_eq(journal_record_seq(journal_record(j, s1)), s1);
    ck_assert_ptr_null(journal_record(j, 0));
    ck_assert_ptr_null(journal_record(j, 5));
    r = journal_last(j, JOURNAL_INTENT, NULL);
    ck_assert_uint_eq(journal_record_seq(r), 4);
    r = journal_last(j, JOURNAL_ANY, "set_weight");
    ck_assert_uint_eq(journal_record_seq(r), 2);
    ck_assert_int_eq(journal_record_type(r), JOURNAL_OUTCOME);
    ck_assert_ptr_null(journal_last(j, JOURNAL_STATE, NULL));
    /* The intent a resumed controller must find out about: promote, with no outcome. */
    ck_assert_uint_eq(journal_record_seq(journal_pending_intent(j)), 4);
    ck_assert_uint_eq(append_n(j, JOURNAL_OUTCOME, "promote", 4, 100), 5);
    ck_assert_ptr_null(journal_pending_intent(j));
    ck_assert_uint_eq(append_n(j, JOURNAL_STATE, "completed", 0, 0), 6);
    journal_close(j);
    free(text);
    text = tu_read_file(path);
    assert_chain(text, 6);
    free(text);
    loop_free(loop);
    free(path);
    free(dir);
}
END_TEST

START_TEST(create_is_exclusive)
{
    char *path = path_of(tmp, "r1"), *before;
    cJSON *h = header();
    struct journal *j;
    struct err err;

    j = create(tmp, "r1");
    append_n(j, JOURNAL_EVENT, "started", 0, 1);
    journal_close(j);
    before = tu_read_file(path);
    ck_assert_int_eq(journal_create(tmp, "r1", h, &j, &err), -1);
    ck_assert_ptr_null(j);
    assert_has(err.msg, "exists already");
    assert_file_is(path, before);
    cJSON_Delete(h);
    free(before);
    free(path);
}
END_TEST

START_TEST(second_appender_is_refused)
{
    char *path = path_of(tmp, "r1");
    struct journal *j = create(tmp, "r1"), *k;
    struct err err;

    ck_assert_int_eq(journal_open(path, &k, &err), -1);
    assert_has(err.msg, "open for appending in another process");
    journal_close(j);
    ck_assert_msg(journal_open(path, &k, &err) == 0, "%s", err.msg);
    journal_close(k);
    free(path);
}
END_TEST

START_TEST(hostile_ids_are_refused)
{
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/etc/passwd",
        "x;rm -rf ~",
        "$(touch pwned)",
        "`id`",
        "a b",
        "a'b",
        "a\nb",
        "-rf",
        ".hidden",
        "caf\xc3\xa9",
        "1234567890123456789012345678901234567890123456789012345678901234x",
    };
    cJSON *h = header();
    struct journal *j;
    struct err err;
    size_t i;
    char *ls;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(!journal_id_ok(bad[i]), "id %zu taken", i);
        ck_assert_int_eq(journal_create(tmp, bad[i], h, &j, &err), -1);
        assert_has(err.msg, "cannot name a journal");
        ck_assert_ptr_null(strchr(err.msg, '\n'));
    }
    ck_assert(journal_id_ok("r-20261127T065001.3_canary"));
    ck_assert(journal_id_ok("1234567890123456789012345678901234567890123456789012345678901234"));
    /* Nothing was made: the directory is as empty as it was. */
    ls = xasprintf("test -z \"$(ls -A %s)\"", tmp);
    ck_assert_int_eq(system(ls), 0);
    free(ls);
    cJSON_Delete(h);
}
END_TEST

START_TEST(bad_headers_and_records_are_refused)
{
    cJSON *h = cJSON_CreateObject(), *d;
    struct journal *j;
    struct err err;
    uint64_t i1;

    cJSON_AddStringToObject(h, "environment", "production");
    ck_assert_int_eq(journal_create(tmp, "r1", h, &j, &err), -1); /* no candidate */
    assert_has(err.msg, "candidate");
    cJSON_AddStringToObject(h, "candidate", "1.4.2");
    cJSON_AddNumberToObject(h, "n3journal", 2);
    ck_assert_int_eq(journal_create(tmp, "r1", h, &j, &err), -1);
    assert_has(err.msg, "the journal's to write");
    cJSON_DeleteItemFromObject(h, "n3journal");
    /* No stable version: null. */
    ck_assert_msg(journal_create(tmp, "r1", h, &j, &err) == 0, "%s", err.msg);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(journal_header(j), "stable")));

    ck_assert_int_eq(journal_append(j, JOURNAL_OUTCOME, "set_weight", 1, NULL, NULL, &err), -1);
    assert_has(err.msg, "must answer an intent");
    i1 = append_n(j, JOURNAL_INTENT, "set_weight", 0, 5);
    ck_assert_int_eq(journal_append(j, JOURNAL_EVENT, "x", i1, NULL, NULL, &err), -1);
    assert_has(err.msg, "only an outcome answers an intent");
    ck_assert_int_eq(journal_append(j, JOURNAL_INTENT, "set weight", 0, NULL, NULL, &err), -1);
    assert_has(err.msg, "no name");
    ck_assert_int_eq(journal_append(j, JOURNAL_ANY, "x", 0, NULL, NULL, &err), -1);
    d = cJSON_CreateArray();
    ck_assert_int_eq(journal_append(j, JOURNAL_EVENT, "x", 0, d, NULL, &err), -1);
    assert_has(err.msg, "must be a JSON object");
    cJSON_Delete(d);
    append_n(j, JOURNAL_OUTCOME, "set_weight", i1, 5);
    ck_assert_int_eq(journal_append(j, JOURNAL_OUTCOME, "set_weight", i1, NULL, NULL, &err), -1);
    assert_has(err.msg, "has its outcome already");
    /* Strings from outside stay on one line, valid UTF-8. */
    d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "cmd", "rm -rf /\n{\"seq\":99}\x1b[2J caf\xe9");
    ck_assert_msg(journal_append(j, JOURNAL_EVENT, "hook", 0, d, NULL, &err) == 0, "%s", err.msg);
    cJSON_Delete(d);
    ck_assert_uint_eq(journal_count(j), 3);
    journal_close(j);
    cJSON_Delete(h);
}
END_TEST

/* A partial line by hand (what a crash mid-write leaves): cut off on open, kept in .torn, and
 * said; a line that is no JSON at the end likewise. */
START_TEST(torn_last_line_is_cut_and_kept)
{
    char *path = path_of(tmp, "r1"), *torn = xasprintf("%s.torn", path), *before, *kept;
    struct journal *j = create(tmp, "r1");
    struct err err;

    append_n(j, JOURNAL_INTENT, "start_slot", 0, 1);
    append_n(j, JOURNAL_OUTCOME, "start_slot", 1, 1);
    append_n(j, JOURNAL_INTENT, "set_weight", 0, 5);
    journal_close(j);
    before = tu_read_file(path);
    append_bytes(path, "{\"seq\":4,\"time\":\"2026-11-27T06:5");

    ck_assert_int_eq(journal_open(path, &j, &err), 1);
    assert_has(err.msg, "torn line (32 bytes after seq 3");
    assert_has(err.msg, torn);
    ck_assert_uint_eq(journal_torn(j), 32);
    ck_assert_uint_eq(journal_count(j), 3);
    assert_file_is(path, before);
    assert_file_is(torn, "{\"seq\":4,\"time\":\"2026-11-27T06:5\n");
    ck_assert_int_eq(file_mode(torn), 0600);
    ck_assert_uint_eq(append_n(j, JOURNAL_OUTCOME, "set_weight", 3, 5), 4);
    journal_close(j);
    free(before);
    before = tu_read_file(path);
    ck_assert_int_eq(journal_open(path, &j, &err), 0);
    journal_close(j);

    /* A whole last line that is no JSON (zeros a lost write left, garbage): torn too, and
     * appended to what .torn holds. */
    append_bytes(path, "not json at all\n");
    ck_assert_int_eq(journal_open(path, &j, &err), 1);
    assert_has(err.msg, "after seq 4");
    ck_assert_uint_eq(journal_count(j), 4);
    journal_close(j);
    assert_file_is(path, before);
    kept = tu_read_file(torn);
    ck_assert_str_eq(kept, "{\"seq\":4,\"time\":\"2026-11-27T06:5\nnot json at all\n");
    free(kept);
    free(before);
    free(torn);
    free(path);
}
END_TEST

/* Write text as the journal file at path, replacing it. */
static void rewrite(const char *path, const char *text)
{
    tu_write_file(path, text);
}

/* text with line k (1-based) replaced by repl (NULL: removed). */
static char *replace_line(const char *text, int k, const char *repl)
{
    struct buf b;
    char *line;
    int i;

    buf_init(&b);
    for (i = 1; strchr(text, '\n') != NULL; i++) {
        line = line_of(text, 1);
        if (i != k)
            buf_addf(&b, "%s\n", line);
        else if (repl != NULL)
            buf_addf(&b, "%s\n", repl);
        text = strchr(text, '\n') + 1;
        free(line);
    }
    line = buf_detach(&b, NULL);
    buf_done(&b);
    return line;
}

START_TEST(changed_or_removed_middle_lines_are_errors)
{
    char *path = path_of(tmp, "r1"), *good, *bad, *line, *p;
    struct journal *j = create(tmp, "r1");
    struct err err;
    int i;

    for (i = 0; i < 5; i++)
        append_n(j, JOURNAL_EVENT, "tick", 0, i);
    journal_close(j);
    good = tu_read_file(path);

    /* Line 3 (seq 2) changed: the chain breaks at line 4, which names line 3. */
    line = line_of(good, 3);
    p = strstr(line, "\"n\":1");
    ck_assert_ptr_nonnull(p);
    p[4] = '7';
    bad = replace_line(good, 3, line);
    rewrite(path, bad);
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    ck_assert_ptr_null(j);
    assert_has(err.msg, "line 4: prev does not match line 3: line 3 was changed");
    assert_file_is(path, bad); /* nothing cut, nothing appended */
    free(bad);
    free(line);

    /* Line 4 removed: seq 4 where 3 was expected, at line 4. */
    bad = replace_line(good, 4, NULL);
    rewrite(path, bad);
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "line 4: seq 4 where 3 was expected");
    free(bad);

    /* A middle line that is not JSON: an error with its line, not a torn end. */
    bad = replace_line(good, 2, "garbage");
    rewrite(path, bad);
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "line 2: not JSON");
    free(bad);

    /* The last line valid JSON but changed: the chain holds up to it, and it is no torn line
     * (it has its newline, and is JSON): an error. */
    line = line_of(good, 6);
    p = strstr(line, "\"type\":\"event\"");
    memcpy(p, "\"type\":\"eVent\"", 14);
    bad = replace_line(good, 6, line);
    rewrite(path, bad);
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "line 6: \"type\"");
    free(bad);
    free(line);
    line = xasprintf("%s.torn", path);
    ck_assert_int_eq(access(line, F_OK), -1);
    free(line);

    rewrite(path, good);
    ck_assert_int_eq(journal_open(path, &j, &err), 0);
    journal_close(j);
    free(good);
    free(path);
}
END_TEST

START_TEST(oversized_record_leaves_the_file_as_it_was)
{
    char *path = path_of(tmp, "r1"), *before, *big = xmalloc(70000);
    struct journal *j = create(tmp, "r1");
    cJSON *d = cJSON_CreateObject();
    struct err err;
    uint64_t seq = 99;

    append_n(j, JOURNAL_EVENT, "tick", 0, 1);
    before = tu_read_file(path);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    cJSON_AddStringToObject(d, "blob", big);
    ck_assert_int_eq(journal_append(j, JOURNAL_STATE, "snapshot", 0, d, &seq, &err), -1);
    assert_has(err.msg, "more than the 65536 a journal line may have; nothing was written");
    ck_assert_uint_eq(seq, 0);
    assert_file_is(path, before);
    ck_assert_uint_eq(journal_count(j), 1);
    /* Just under the limit is taken. */
    big[65536 - 200] = '\0';
    cJSON_DeleteItemFromObject(d, "blob");
    cJSON_AddStringToObject(d, "blob", big);
    ck_assert_msg(journal_append(j, JOURNAL_STATE, "snapshot", 0, d, &seq, &err) == 0, "%s",
                  err.msg);
    ck_assert_uint_eq(seq, 2);
    journal_close(j);
    ck_assert_msg(journal_open(path, &j, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(journal_count(j), 2);
    journal_close(j);
    cJSON_Delete(d);
    free(big);
    free(before);
    free(path);
}
END_TEST

/* Appends stop short of 64 MiB, saying why, and leave the file as it was. */
START_TEST(full_journal_refuses_appends)
{
    char *path = path_of(tmp, "r1"), *big = xmalloc(65000);
    struct journal *j = create(tmp, "r1");
    cJSON *d = cJSON_CreateObject();
    struct err err;
    size_t size, i;
    int rc = 0;

    memset(big, 'y', 64999);
    big[64999] = '\0';
    cJSON_AddStringToObject(d, "blob", big);
    for (i = 0; i < 2000 && (rc = journal_append(j, JOURNAL_STATE, "s", 0, d, NULL, &err)) == 0;
         i++)
        ;
    ck_assert_int_eq(rc, -1);
    assert_has(err.msg, "is full");
    assert_has(err.msg, "64 MiB");
    size = file_size(path);
    ck_assert_uint_le(size, JOURNAL_SIZE_MAX);
    ck_assert_uint_gt(size + 65200, JOURNAL_SIZE_MAX);
    ck_assert_uint_eq(journal_count(j), i);
    /* A small record still fits. */
    ck_assert_uint_eq(append_n(j, JOURNAL_EVENT, "e", 0, 1), i + 1);
    journal_close(j);
    cJSON_Delete(d);
    free(big);
    free(path);
}
END_TEST

/* A write cut short (the file size limit here; a full disk elsewhere) is cut back: nothing of
 * the record stays. */
START_TEST(short_write_is_undone)
{
    char *path = path_of(tmp, "r1"), *before;
    struct journal *j = create(tmp, "r1");
    struct rlimit old, lim;
    cJSON *d = cJSON_CreateObject();
    char pad[2000];
    struct err err;

    append_n(j, JOURNAL_EVENT, "tick", 0, 1);
    before = tu_read_file(path);
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    cJSON_AddStringToObject(d, "pad", pad);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = file_size(path) + 100;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ck_assert_int_eq(journal_append(j, JOURNAL_EVENT, "big", 0, d, NULL, &err), -1);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_has(err.msg, "nothing was appended");
    assert_file_is(path, before);
    ck_assert_uint_eq(journal_count(j), 1);
    ck_assert_msg(journal_append(j, JOURNAL_EVENT, "big", 0, d, NULL, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(journal_count(j), 2);
    journal_close(j);
    ck_assert_msg(journal_open(path, &j, &err) == 0, "%s", err.msg);
    journal_close(j);
    cJSON_Delete(d);
    free(before);
    free(path);
}
END_TEST

/* A journal written by hand, line by line, chained as the format says. */
static char *chain_text(const char *const *lines)
{
    struct buf b;
    char hash[65], *line;
    size_t i;

    buf_init(&b);
    for (i = 0; lines[i] != NULL; i++) {
        if (i == 0) {
            buf_addf(&b, "%s\n", lines[0]);
        } else {
            line = line_of(b.data, (int)i);
            audit_line_hash(line, strlen(line), hash);
            free(line);
            buf_addf(&b, "%s,\"prev\":\"%s\"}\n", lines[i], hash);
        }
    }
    line = buf_detach(&b, NULL);
    buf_done(&b);
    return line;
}

START_TEST(versions_other_fields_ignored_other_numbers_refused)
{
    static const char *const v1[] = {
        "{\"n3journal\":1,\"rollout\":\"r1\",\"environment\":\"prod\",\"created\":"
        "\"2026-11-27T06:50:01.123Z\",\"by\":\"a@b\",\"candidate\":\"2\",\"stable\":null,"
        "\"future_header_field\":{\"x\":[1,2]}}",
        "{\"seq\":1,\"time\":\"2026-11-27T06:50:01.200Z\",\"type\":\"intent\",\"action\":"
        "\"set_weight\",\"data\":{},\"future_record_field\":true",
        "{\"future\":1,\"seq\":2,\"time\":\"2026-11-27T06:50:01.300Z\",\"type\":\"outcome\","
        "\"action\":\"set_weight\",\"intent\":1,\"data\":{\"ok\":true}",
        NULL,
    };
    static const char *const v2[] = {
        "{\"n3journal\":2,\"rollout\":\"r1\",\"layout\":\"something new\"}",
        NULL,
    };
    char *path = path_of(tmp, "r1"), *text = chain_text(v1);
    struct journal *j;
    struct err err;

    rewrite(path, text);
    ck_assert_msg(journal_open(path, &j, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(journal_count(j), 2);
    ck_assert_ptr_null(journal_pending_intent(j));
    ck_assert_uint_eq(append_n(j, JOURNAL_EVENT, "e", 0, 1), 3);
    journal_close(j);
    free(text);

    text = chain_text(v2);
    rewrite(path, text);
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "format version 2");
    assert_has(err.msg, "reads version 1 only");
    ck_assert_int_eq(journal_parse("there", text, strlen(text), &j, &err), -1);
    assert_has(err.msg, "there is a journal of format version 2");
    assert_file_is(path, text);
    free(text);

    rewrite(path, "{\"some\":\"other file\"}\n");
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "is not a journal");
    rewrite(path, "{\"n3journal\":1,\"rollout\":\"r1\"");
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "cut short");
    rewrite(path, "");
    ck_assert_int_eq(journal_open(path, &j, &err), -1);
    assert_has(err.msg, "is empty");
    free(path);
}
END_TEST

/* ---- the mirror, through the local transport ---- */

struct fx {
    struct loop *loop;
    struct transport *t;
    char *remote_dir; /* with a space, a quote and a command substitution in its name */
    char *remote;
};

static void fx_init(struct fx *f)
{
    f->loop = loop_new();
    f->t = transport_local_new(f->loop, "lock-target");
    f->remote_dir = xasprintf("%s/deploy dir 'q' $(touch PWNED)/.n3/rollouts", tmp);
    f->remote = xasprintf("%s/r1.jsonl", f->remote_dir);
}

static void fx_done(struct fx *f)
{
    transport_free(f->t);
    loop_free(f->loop);
    free(f->remote_dir);
    free(f->remote);
}

struct dones {
    unsigned n;
    int rcs[512];
    uint64_t order[512]; /* the seq each done answered, in the order they came */
    char msg[1024];
};

struct done_arg {
    struct dones *d;
    uint64_t seq;
};

static void on_done(void *arg, int rc, const char *msg)
{
    struct done_arg *a = arg;
    struct dones *d = a->d;

    ck_assert_uint_lt(d->n, 512);
    d->rcs[d->n] = rc;
    d->order[d->n] = a->seq;
    d->n++;
    if (msg != NULL)
        snprintf(d->msg, sizeof d->msg, "%s", msg);
    free(a);
}

struct until_n {
    struct dones *d;
    unsigned n;
};

static bool reached(void *arg)
{
    struct until_n *u = arg;

    return u->d->n >= u->n;
}

static uint64_t mirrored(struct journal *j, struct journal_mirror *m, struct dones *d, int n)
{
    struct done_arg *a = xcalloc(1, sizeof *a);
    cJSON *data = cJSON_CreateObject();
    struct err err;
    uint64_t seq;

    cJSON_AddNumberToObject(data, "n", n);
    cJSON_AddStringToObject(data, "note", "it's a \"quoted\" $(value) `x`");
    a->d = d;
    ck_assert_msg(
        journal_append_mirrored(j, m, JOURNAL_EVENT, "tick", 0, data, &seq, on_done, a, &err) == 0,
        "%s", err.msg);
    a->seq = seq;
    cJSON_Delete(data);
    return seq;
}

static void wait_dones(struct fx *f, struct dones *d, unsigned n)
{
    struct until_n u = {d, n};

    ck_assert_msg(tu_run_until(f->loop, reached, &u, WAIT_MS), "only %u of %u mirror appends done",
                  d->n, n);
}

START_TEST(mirror_200_appends_byte_identical_in_order)
{
    struct fx f;
    struct journal *j = create(tmp, "r1");
    struct journal_mirror *m;
    struct dones d = {0};
    size_t len;
    const char *local;
    char *remote, *pwned = xasprintf("%s/PWNED", tmp);
    unsigned i;

    fx_init(&f);
    m = journal_mirror_new(f.loop, f.t, f.remote);
    for (i = 0; i < 200; i++)
        ck_assert_uint_eq(mirrored(j, m, &d, (int)i), i + 1);
    /* Queued, none done yet: done comes from the loop, never inside the call. */
    ck_assert_uint_eq(d.n, 0);
    ck_assert(!journal_mirror_idle(m));
    wait_dones(&f, &d, 200);
    for (i = 0; i < 200; i++) {
        ck_assert_msg(d.rcs[i] == 0, "append %u: %s", i, d.msg);
        ck_assert_uint_eq(d.order[i], i + 1);
    }
    ck_assert(journal_mirror_idle(m));
    ck_assert_ptr_null(journal_mirror_diverged(m));
    local = journal_text(j, &len);
    remote = tu_read_file(f.remote);
    ck_assert_ptr_nonnull(remote);
    ck_assert_uint_eq(strlen(remote), len);
    ck_assert_str_eq(remote, local);
    ck_assert_int_eq(file_mode(f.remote_dir), 0700);
    ck_assert_int_eq(file_mode(f.remote), 0600);
    /* The names went to the shell quoted: nothing ran. */
    ck_assert_int_eq(access(pwned, F_OK), -1);
    free(remote);
    journal_mirror_free(m);
    journal_close(j);
    fx_done(&f);
    free(pwned);
}
END_TEST

/* Records journaled before the mirror existed, and a remote that holds only a part: the first
 * mirrored append sends what the remote lacks. */
START_TEST(mirror_catches_up)
{
    struct fx f;
    struct journal *j = create(tmp, "r1");
    struct journal_mirror *m;
    struct dones d = {0};
    char *remote;
    const char *local;
    size_t len;

    fx_init(&f);
    append_n(j, JOURNAL_INTENT, "start_slot", 0, 1);
    append_n(j, JOURNAL_OUTCOME, "start_slot", 1, 1);
    m = journal_mirror_new(f.loop, f.t, f.remote);
    mirrored(j, m, &d, 3);
    wait_dones(&f, &d, 1);
    ck_assert_msg(d.rcs[0] == 0, "%s", d.msg);
    local = journal_text(j, &len);
    remote = tu_read_file(f.remote);
    ck_assert_str_eq(remote, local);
    free(remote);
    journal_mirror_free(m);
    journal_close(j);
    fx_done(&f);
}
END_TEST

/* journal_mirror_sync with a done that counts. */
static void sync_mirror(struct journal *j, struct journal_mirror *m, struct dones *d)
{
    struct done_arg *a = xcalloc(1, sizeof *a);
    struct err err;

    a->d = d;
    a->seq = journal_count(j);
    ck_assert_msg(journal_mirror_sync(j, m, on_done, a, &err) == 0, "%s", err.msg);
}

START_TEST(mirror_sync_brings_a_partial_copy_up_to_date)
{
    struct fx f;
    struct journal *j = create(tmp, "r1");
    struct journal_mirror *m;
    struct dones d = {0};
    char *remote, *half;
    const char *local;
    size_t len;
    int i;

    fx_init(&f);
    for (i = 0; i < 5; i++)
        append_n(j, JOURNAL_EVENT, "tick", 0, i);
    local = journal_text(j, &len);
    m = journal_mirror_new(f.loop, f.t, f.remote);
    sync_mirror(j, m, &d); /* the directory made, and all of it sent */
    wait_dones(&f, &d, 1);
    ck_assert_msg(d.rcs[0] == 0, "%s", d.msg);
    remote = tu_read_file(f.remote);
    ck_assert_str_eq(remote, local);
    free(remote);
    journal_mirror_free(m);

    /* Cut the copy back to three records: a new mirror finds it a prefix and sends the rest. */
    half = xstrndup(local, (size_t)(strstr(local, "{\"seq\":4,") - local));
    tu_write_file(f.remote, half);
    free(half);
    m = journal_mirror_new(f.loop, f.t, f.remote);
    mirrored(j, m, &d, 6);
    wait_dones(&f, &d, 2);
    ck_assert_msg(d.rcs[1] == 0, "%s", d.msg);
    local = journal_text(j, &len);
    remote = tu_read_file(f.remote);
    ck_assert_str_eq(remote, local);
    free(remote);
    journal_mirror_free(m);
    journal_close(j);
    fx_done(&f);
}
END_TEST

START_TEST(mirror_divergence_is_reported_not_appended_to)
{
    struct fx f;
    struct journal *j = create(tmp, "r1");
    struct journal_mirror *m;
    struct dones d = {0};
    char *before, *after, *other;
    int i;

    fx_init(&f);
    m = journal_mirror_new(f.loop, f.t, f.remote);
    for (i = 0; i < 5; i++)
        mirrored(j, m, &d, i);
    wait_dones(&f, &d, 5);
    for (i = 0; i < 5; i++)
        ck_assert_msg(d.rcs[i] == 0, "%s", d.msg);

    /* Someone appends behind the mirror's back. */
    append_bytes(f.remote, "{\"seq\":6,\"written\":\"by someone else\"}\n");
    before = tu_read_file(f.remote);
    mirrored(j, m, &d, 6);
    wait_dones(&f, &d, 6);
    ck_assert_int_eq(d.rcs[5], -1);
    assert_has(d.msg, "has diverged");
    assert_has(d.msg, "bytes where this mirror left");
    assert_has(d.msg, "appended or removed there behind n3ctl's back");
    assert_has(d.msg, "the local journal");
    assert_has(d.msg, "has it all the same");
    ck_assert_ptr_nonnull(journal_mirror_diverged(m));
    ck_assert_uint_eq(journal_count(j), 6); /* the local append stands */
    after = tu_read_file(f.remote);
    ck_assert_str_eq(after, before);
    free(after);
    /* And nothing later goes there either. */
    mirrored(j, m, &d, 7);
    wait_dones(&f, &d, 7);
    ck_assert_int_eq(d.rcs[6], -1);
    assert_has(d.msg, "has diverged");
    after = tu_read_file(f.remote);
    ck_assert_str_eq(after, before);
    free(after);
    journal_mirror_free(m);

    /* A changed last line of the same size is caught too (by its hash): a fresh mirror to a
     * fresh copy, one append through it, then that line changed there. */
    tu_write_file(f.remote, journal_text(j, NULL));
    m = journal_mirror_new(f.loop, f.t, f.remote);
    mirrored(j, m, &d, 8);
    wait_dones(&f, &d, 8);
    ck_assert_msg(d.rcs[7] == 0, "%s", d.msg);
    other = tu_read_file(f.remote);
    ck_assert_str_eq(other, journal_text(j, NULL));
    after = strstr(other, "\"n\":8");
    ck_assert_ptr_nonnull(after);
    after[4] = '9';
    tu_write_file(f.remote, other);
    free(other);
    mirrored(j, m, &d, 9);
    wait_dones(&f, &d, 9);
    ck_assert_int_eq(d.rcs[8], -1);
    assert_has(d.msg, "its last line is not the one this mirror wrote");
    journal_mirror_free(m);
    journal_close(j);
    free(before);
    fx_done(&f);
}
END_TEST

/* A mirror that cannot write (its directory's parent is a file): the append fails there, the
 * local record stands, and the next append sends everything the copy lacks. */
START_TEST(mirror_failure_keeps_the_local_record_and_catches_up)
{
    struct fx f;
    struct journal *j = create(tmp, "r1");
    struct journal_mirror *m;
    struct dones d = {0};
    char *blocker = xasprintf("%s/blocker", tmp), *remote = xasprintf("%s/sub/r1.jsonl", blocker),
         *copy;

    fx_init(&f);
    tu_write_file(blocker, "a file where a directory should be\n");
    m = journal_mirror_new(f.loop, f.t, remote);
    mirrored(j, m, &d, 1);
    wait_dones(&f, &d, 1);
    ck_assert_int_eq(d.rcs[0], -1);
    assert_has(d.msg, "was not mirrored to lock-target");
    assert_has(d.msg, "cannot create the directory");
    assert_has(d.msg, "has it all the same");
    ck_assert_ptr_null(journal_mirror_diverged(m));
    ck_assert_uint_eq(journal_count(j), 1);

    ck_assert_int_eq(unlink(blocker), 0);
    mirrored(j, m, &d, 2);
    wait_dones(&f, &d, 2);
    ck_assert_msg(d.rcs[1] == 0, "%s", d.msg);
    copy = tu_read_file(remote);
    ck_assert_str_eq(copy, journal_text(j, NULL));
    free(copy);
    journal_mirror_free(m);
    journal_close(j);
    fx_done(&f);
    free(remote);
    free(blocker);
}
END_TEST

struct freer {
    struct journal_mirror *m;
    struct dones *d;
};

static void free_on_first(void *arg, int rc, const char *msg)
{
    struct freer *fr = arg;

    fr->d->rcs[fr->d->n++] = rc;
    snprintf(fr->d->msg, sizeof fr->d->msg, "%s", msg != NULL ? msg : "");
    if (fr->d->n == 1)
        journal_mirror_free(fr->m);
}

/* Freed from its own done, with appends still queued: they are told, from the loop, and the
 * mirror goes away after (ASan runs check that nothing is touched after). */
START_TEST(mirror_freed_from_its_done)
{
    struct fx f;
    struct journal *j = create(tmp, "r1");
    struct dones d = {0};
    struct freer fr = {NULL, &d};
    struct err err;
    int i;

    fx_init(&f);
    fr.m = journal_mirror_new(f.loop, f.t, f.remote);
    for (i = 0; i < 3; i++)
        ck_assert_msg(journal_append_mirrored(j, fr.m, JOURNAL_EVENT, "tick", 0, NULL, NULL,
                                              free_on_first, &fr, &err) == 0,
                      "%s", err.msg);
    wait_dones(&f, &d, 3);
    ck_assert_int_eq(d.rcs[0], 0);
    ck_assert_int_eq(d.rcs[1], -1);
    ck_assert_int_eq(d.rcs[2], -1);
    assert_has(d.msg, "the mirror was stopped before it was sent");
    /* The journal goes on without it. */
    ck_assert_uint_eq(append_n(j, JOURNAL_EVENT, "tick", 0, 4), 4);
    journal_close(j);
    fx_done(&f);
}
END_TEST

struct fetched {
    bool done;
    int rc;
    struct journal *j;
    char msg[1024];
};

static void on_fetch(void *arg, int rc, struct journal *j, const char *msg)
{
    struct fetched *f = arg;

    f->done = true;
    f->rc = rc;
    f->j = j;
    snprintf(f->msg, sizeof f->msg, "%s", msg != NULL ? msg : "");
}

static bool fetch_is_done(void *arg)
{
    return ((struct fetched *)arg)->done;
}

static void fetch(struct fx *f, const char *path, size_t max, struct fetched *out)
{
    memset(out, 0, sizeof *out);
    journal_fetch(f->loop, f->t, path, max, on_fetch, out);
    ck_assert(!out->done);
    ck_assert(tu_run_until(f->loop, fetch_is_done, out, WAIT_MS));
}

START_TEST(fetch_reads_back_verifies_and_adopts)
{
    struct fx f;
    struct journal *j = create(tmp, "r1"), *mine;
    struct journal_mirror *m;
    struct dones d = {0};
    struct fetched got;
    struct err err;
    char *text, *bad, *other = xasprintf("%s/other-machine", tmp), *p;
    const char *local;
    size_t len;
    int i;

    fx_init(&f);
    m = journal_mirror_new(f.loop, f.t, f.remote);
    for (i = 0; i < 20; i++)
        mirrored(j, m, &d, i);
    wait_dones(&f, &d, 20);
    journal_mirror_free(m);

    fetch(&f, f.remote, 0, &got);
    ck_assert_msg(got.rc == 0, "%s", got.msg);
    ck_assert(journal_readonly(got.j));
    ck_assert_uint_eq(journal_count(got.j), 20);
    ck_assert_str_eq(journal_id(got.j), "r1");
    local = journal_text(j, &len);
    ck_assert_str_eq(journal_text(got.j, NULL), local);
    ck_assert_str_eq(cJSON_GetObjectItem(journal_header(got.j), "candidate")->valuestring, "1.4.2");
    ck_assert_int_eq(journal_append(got.j, JOURNAL_EVENT, "x", 0, NULL, NULL, &err), -1);
    assert_has(err.msg, "read-only");

    /* Another operator's machine resumes from it. */
    ck_assert_msg(journal_adopt(got.j, other, &mine, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(journal_count(mine), 20);
    ck_assert_uint_eq(append_n(mine, JOURNAL_EVENT, "resumed", 0, 21), 21);
    journal_close(mine);
    journal_close(got.j);

    /* Bounded. */
    fetch(&f, f.remote, 100, &got);
    ck_assert_int_eq(got.rc, -1);
    ck_assert_ptr_null(got.j);
    assert_has(got.msg, "larger than 100 bytes");

    /* A changed record there is found, with its line. */
    text = tu_read_file(f.remote);
    bad = xstrdup(text);
    p = strstr(bad, "\"n\":4");
    p[4] = '5';
    tu_write_file(f.remote, bad);
    fetch(&f, f.remote, 0, &got);
    ck_assert_int_eq(got.rc, -1);
    assert_has(got.msg, "lock-target:");
    assert_has(got.msg, "line 7: prev does not match line 6");
    free(bad);

    /* A torn end is left out, and said. */
    bad = xasprintf("%s{\"seq\":21,", text);
    tu_write_file(f.remote, bad);
    fetch(&f, f.remote, 0, &got);
    ck_assert_int_eq(got.rc, 1);
    assert_has(got.msg, "torn line");
    ck_assert_uint_eq(journal_count(got.j), 20);
    ck_assert_uint_eq(journal_torn(got.j), 10);
    journal_close(got.j);
    free(bad);

    p = xasprintf("%s/none.jsonl", f.remote_dir);
    fetch(&f, p, 0, &got);
    ck_assert_int_eq(got.rc, -1);
    free(p);
    free(text);
    free(other);
    journal_close(j);
    fx_done(&f);
}
END_TEST

/* ---- crashes ---- */

static _Noreturn void appender(const char *path, int notify)
{
    struct journal *j;
    struct err err;
    cJSON *d;
    char pad[600];
    unsigned i;

    if (journal_open(path, &j, &err) < 0)
        _exit(2);
    memset(pad, 'z', sizeof pad);
    for (i = 0;; i++) {
        d = cJSON_CreateObject();
        pad[i % (sizeof pad - 1)] = '\0';
        cJSON_AddNumberToObject(d, "i", i);
        cJSON_AddStringToObject(d, "pad", pad);
        pad[i % (sizeof pad - 1)] = 'z';
        if (journal_append(j, i % 2 == 0 ? JOURNAL_INTENT : JOURNAL_OUTCOME, "set_weight",
                           i % 2 == 0 ? 0 : journal_count(j), d, NULL, &err) != 0)
            _exit(3);
        cJSON_Delete(d);
        if (write(notify, "x", 1) != 1)
            _exit(4);
    }
}

START_TEST(sigkill_at_random_moments_leaves_a_resumable_journal)
{
    char *path = path_of(tmp, "r1"), buf[64];
    struct journal *j = create(tmp, "r1");
    uint64_t count = 0, s;
    struct err err;
    int round, fds[2], status, rc, torn_rounds = 0;
    unsigned want, got;
    volatile unsigned spin;
    unsigned seed = (unsigned)getpid();
    ssize_t n;
    pid_t pid;
    size_t size;

    journal_close(j);
    for (round = 0; round < 10; round++) {
        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            appender(path, fds[1]);
        }
        close(fds[1]);
        /* Let it make some appends, then kill it at a random moment of the next. */
        want = 1 + (unsigned)rand_r(&seed) % 60;
        for (got = 0; got < want; got += (unsigned)n) {
            n = read(fds[0], buf, sizeof buf < want - got ? sizeof buf : want - got);
            ck_assert_msg(n > 0, "the appender died early (round %d)", round);
        }
        for (spin = (unsigned)rand_r(&seed) % 300000; spin > 0; spin--)
            ;
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "the appender exited with %d", WEXITSTATUS(status));
        close(fds[0]);

        /* Every other round, what a power loss can leave besides: its last line cut at a
         * random byte. */
        if (round % 2 == 1) {
            size = file_size(path);
            ck_assert_int_eq(truncate(path, (off_t)(size - 1 - (size_t)rand_r(&seed) % 20)), 0);
        }
        rc = journal_open(path, &j, &err);
        ck_assert_msg(rc == 0 || rc == 1, "round %d: %s", round, err.msg);
        if (rc == 1) {
            assert_has(err.msg, "torn line");
            torn_rounds++;
        }
        ck_assert_uint_ge(journal_count(j) + (rc == 1 ? 1 : 0), count + want);
        count = journal_count(j);
        for (s = 1; s <= count; s++)
            ck_assert_uint_eq(journal_record_seq(journal_record(j, s)), s);
        /* An intent the killed appender left without its outcome is what a resume finds. */
        if (journal_last(j, JOURNAL_ANY, NULL) != NULL &&
            journal_record_type(journal_last(j, JOURNAL_ANY, NULL)) == JOURNAL_INTENT)
            ck_assert_ptr_nonnull(journal_pending_intent(j));
        journal_close(j);
    }
    ck_assert_int_eq(torn_rounds, 5);
    ck_assert_int_eq(journal_open(path, &j, &err), 0);
    journal_close(j);
    free(path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("journal");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, create_append_reopen_round_trip);
    tcase_add_test(tc, create_is_exclusive);
    tcase_add_test(tc, second_appender_is_refused);
    tcase_add_test(tc, hostile_ids_are_refused);
    tcase_add_test(tc, bad_headers_and_records_are_refused);
    tcase_add_test(tc, torn_last_line_is_cut_and_kept);
    tcase_add_test(tc, changed_or_removed_middle_lines_are_errors);
    tcase_add_test(tc, oversized_record_leaves_the_file_as_it_was);
    tcase_add_test(tc, full_journal_refuses_appends);
    tcase_add_test(tc, short_write_is_undone);
    tcase_add_test(tc, versions_other_fields_ignored_other_numbers_refused);
    tcase_add_test(tc, mirror_200_appends_byte_identical_in_order);
    tcase_add_test(tc, mirror_catches_up);
    tcase_add_test(tc, mirror_sync_brings_a_partial_copy_up_to_date);
    tcase_add_test(tc, mirror_divergence_is_reported_not_appended_to);
    tcase_add_test(tc, mirror_failure_keeps_the_local_record_and_catches_up);
    tcase_add_test(tc, mirror_freed_from_its_done);
    tcase_add_test(tc, fetch_reads_back_verifies_and_adopts);
    tcase_add_test(tc, sigkill_at_random_moments_leaves_a_resumable_journal);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
