/* The audit log: exact records, escaping, files and modes, tampering found, concurrent appends. */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define T0    1795762201 /* 2026-11-27T06:50:01Z */

static const char first_record[] =
    "{\"seq\":1,\"time\":\"2026-11-27T06:50:01Z\",\"actor\":\"alice@laptop\",\"pid\":4242,"
    "\"action\":\"release.push\",\"targets\":[\"web1\",\"web2\"],\"result\":\"ok\","
    "\"detail\":{\"version\":\"1.4.2\"},\"prev\":\"" ZEROS "\"}";

static const char *const web[] = {"web1", "web2", NULL};

/* A plain entry: record i of a test log. */
static struct audit_entry entry(int i)
{
    struct audit_entry e = {
        .time = T0 + i,
        .actor = "alice@laptop",
        .pid = 100 + i,
        .action = "deploy.step",
        .targets = web,
        .result = "ok",
    };

    return e;
}

/* A valid log of n records, built with audit_format alone. */
static char *make_log(int n)
{
    struct audit_entry e;
    struct err err;
    struct buf b;
    char *prev = NULL, *line;
    int i;

    buf_init(&b);
    for (i = 0; i < n; i++) {
        e = entry(i);
        line = audit_format(prev, &e, &err);
        ck_assert_msg(line != NULL, "%s", err.msg);
        buf_adds(&b, line);
        buf_addc(&b, '\n');
        free(prev);
        prev = line;
    }
    free(prev);
    line = buf_detach(&b, NULL);
    buf_done(&b);
    return line;
}

/* Where line k (1-based) of text starts, and its length without the newline. */
static const char *line_at(const char *text, int k, size_t *len)
{
    const char *s = text, *nl;

    while (--k > 0) {
        nl = strchr(s, '\n');
        ck_assert_ptr_nonnull(nl);
        s = nl + 1;
    }
    nl = strchr(s, '\n');
    *len = nl != NULL ? (size_t)(nl - s) : strlen(s);
    return s;
}

/* Verify text that must fail at line `at`, with why containing `needle`. */
static void expect_broken(const char *text, unsigned long at, const char *needle)
{
    struct audit_problem p;

    ck_assert_int_eq(audit_verify(text, strlen(text), &p), -1);
    ck_assert_msg(p.line == at, "expected line %lu, got %lu: %s", at, p.line, p.why);
    ck_assert_msg(strstr(p.why, needle) != NULL, "\"%s\" not in \"%s\"", needle, p.why);
}

/* Whether verify takes text's bad line for a torn last line (and where that line starts). */
static void expect_torn(const char *text, bool torn, size_t at)
{
    struct audit_problem p;

    ck_assert_int_eq(audit_verify(text, strlen(text), &p), -1);
    ck_assert_msg(p.torn == torn, "torn: expected %d: %s", torn, p.why);
    if (torn)
        ck_assert_uint_eq(p.torn_at, at);
}

static void expect_valid(const char *text, unsigned long records)
{
    struct audit_problem p;

    ck_assert_msg(audit_verify(text, strlen(text), &p) == 0, "%s", p.why);
    ck_assert_uint_eq(p.line, 0);
    ck_assert_uint_eq(p.records, records);
}

static int file_mode(const char *path)
{
    struct stat st;

    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    return (int)(st.st_mode & 07777);
}

START_TEST(line_hash_is_sha256)
{
    char hex[65];

    audit_line_hash("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    audit_line_hash("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(format_first_and_second_records)
{
    cJSON *detail = cJSON_CreateObject();
    struct audit_entry e = {
        .time = T0,
        .actor = "alice@laptop",
        .pid = 4242,
        .action = "release.push",
        .targets = web,
        .result = "ok",
        .detail = detail,
    };
    struct audit_entry e2 = {
        .time = T0 + 60,
        .actor = "bob@ci",
        .pid = 77,
        .action = "lock.acquire",
        .result = "refused",
    };
    struct err err;
    char *one, *two;

    cJSON_AddStringToObject(detail, "version", "1.4.2");
    one = audit_format(NULL, &e, &err);
    ck_assert_msg(one != NULL, "%s", err.msg);
    ck_assert_str_eq(one, first_record);
    free(one);
    one = audit_format("", &e, &err);
    ck_assert_msg(one != NULL, "%s", err.msg);
    ck_assert_str_eq(one, first_record);

    /* The prev of the second is sha256sum of the first line's bytes. */
    two = audit_format(one, &e2, &err);
    ck_assert_msg(two != NULL, "%s", err.msg);
    ck_assert_str_eq(two, "{\"seq\":2,\"time\":\"2026-11-27T06:51:01Z\",\"actor\":\"bob@ci\","
                          "\"pid\":77,\"action\":\"lock.acquire\",\"targets\":[],"
                          "\"result\":\"refused\",\"detail\":{},\"prev\":"
                          "\"6600fde695602eff2c8629428e4e1e574a87f993b5b14b223dc0f5a009d30a51\"}");
    free(one);
    one = audit_format(two, &e2, &err);
    ck_assert_msg(one != NULL, "%s", err.msg);
    ck_assert_int_eq(strncmp(one, "{\"seq\":3,", 9), 0);
    free(one);
    free(two);
    cJSON_Delete(detail);
}
END_TEST

START_TEST(format_escapes_outside_strings)
{
    const char *const targets[] = {"t\tab", "bell\x07", "caf\xe9", NULL};
    cJSON *detail = cJSON_CreateObject(), *r;
    struct audit_entry e = {
        .time = T0,
        .actor = "eve\n{\"seq\":99}",
        .pid = 1,
        .action = "a\"b\\c",
        .targets = targets,
        .result = "ok\r",
        .detail = detail,
    };
    struct err err;
    struct buf log;
    char *line, *next;
    size_t i;

    cJSON_AddStringToObject(detail, "cmd", "rm -rf /\n");
    cJSON_AddStringToObject(detail, "k\ney", "x\x1b[2J");
    line = audit_format(NULL, &e, &err);
    ck_assert_msg(line != NULL, "%s", err.msg);
    ck_assert_str_eq(line, "{\"seq\":1,\"time\":\"2026-11-27T06:50:01Z\","
                           "\"actor\":\"eve\\n{\\\"seq\\\":99}\",\"pid\":1,"
                           "\"action\":\"a\\\"b\\\\c\","
                           "\"targets\":[\"t\\tab\",\"bell\\u0007\",\"caf\xef\xbf\xbd\"],"
                           "\"result\":\"ok\\r\","
                           "\"detail\":{\"cmd\":\"rm -rf /\\n\",\"k\\ney\":\"x\\u001b[2J\"},"
                           "\"prev\":\"" ZEROS "\"}");
    for (i = 0; line[i] != '\0'; i++)
        ck_assert_msg((unsigned char)line[i] >= 0x20, "raw byte 0x%02x at %zu", line[i], i);

    /* It reads back as the same strings, and a log holding it still verifies. */
    r = audit_parse(line, strlen(line));
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "actor")->valuestring, "eve\n{\"seq\":99}");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "action")->valuestring, "a\"b\\c");
    cJSON_Delete(r);
    next = audit_format(line, &e, &err);
    ck_assert_msg(next != NULL, "%s", err.msg);
    buf_init(&log);
    buf_addf(&log, "%s\n%s\n", line, next);
    expect_valid(log.data, 2);
    buf_done(&log);
    free(next);
    free(line);
    cJSON_Delete(detail);
}
END_TEST

START_TEST(format_refuses_a_broken_prev)
{
    struct audit_entry e = entry(0);
    struct err err;
    const char *bad[] = {
        "not json",
        "{\"seq\":1}",
        "{\"seq\":1,\"time\":\"x\"}",
        "[1,2,3]",
    };
    char *line, *zero;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&err);
        ck_assert_ptr_null(audit_format(bad[i], &e, &err));
        ck_assert_msg(strstr(err.msg, "n3ctl audit verify") != NULL, "%s", err.msg);
    }
    /* A record with seq 0 is no record either. */
    line = audit_format(NULL, &e, &err);
    ck_assert_ptr_nonnull(line);
    ck_assert_int_eq(strncmp(line, "{\"seq\":1,", 9), 0);
    zero = xasprintf("{\"seq\":0,%s", line + 9);
    ck_assert_ptr_null(audit_format(zero, &e, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "\"seq\""));
    free(zero);
    free(line);
}
END_TEST

START_TEST(format_refuses_bad_entries)
{
    struct audit_entry e = entry(0);
    cJSON *arr = cJSON_CreateArray(), *raw = cJSON_CreateObject(), *big = cJSON_CreateObject();
    struct err err;
    char *pad;

    e.time = -1;
    ck_assert_ptr_null(audit_format(NULL, &e, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "-1"));
    e = entry(0);
    e.action = NULL;
    ck_assert_ptr_null(audit_format(NULL, &e, &err));
    e = entry(0);
    e.detail = arr;
    ck_assert_ptr_null(audit_format(NULL, &e, &err));
    /* Raw JSON is printed as it is: it could carry a newline into the log. */
    cJSON_AddRawToObject(raw, "x", "\"a\nb\"");
    e.detail = raw;
    ck_assert_ptr_null(audit_format(NULL, &e, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "raw"));
    pad = xmalloc(2u << 20);
    memset(pad, 'x', (2u << 20) - 1);
    pad[(2u << 20) - 1] = '\0';
    cJSON_AddStringToObject(big, "pad", pad);
    e.detail = big;
    ck_assert_ptr_null(audit_format(NULL, &e, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "shorten"));
    free(pad);
    cJSON_Delete(arr);
    cJSON_Delete(raw);
    cJSON_Delete(big);
}
END_TEST

START_TEST(parse_takes_records_only)
{
    char *log = make_log(1), *s;
    size_t n = strlen(log) - 1;
    cJSON *r;

    r = audit_parse(log, n);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "seq")->valueint, 1);
    cJSON_Delete(r);
    ck_assert_ptr_null(audit_parse(log, n + 1)); /* with its newline */
    ck_assert_ptr_null(audit_parse(log, n - 1)); /* cut */
    s = xasprintf("%.*s ", (int)n, log);
    ck_assert_ptr_null(audit_parse(s, strlen(s)));
    free(s);
    /* Without prev: the record ends with ,"prev":"<64 hex>"}, 75 bytes. */
    ck_assert_int_eq(strncmp(log + n - 75, ",\"prev\":\"" ZEROS "\"}", 75), 0);
    s = xasprintf("%.*s}", (int)(n - 75), log);
    ck_assert_ptr_nonnull(r = cJSON_Parse(s));
    cJSON_Delete(r);
    ck_assert_ptr_null(audit_parse(s, strlen(s)));
    free(s);
    s = xstrdup(log);
    *strstr(s, ZEROS) = 'A'; /* uppercase hex */
    ck_assert_ptr_null(audit_parse(s, n));
    free(s);
    s = xasprintf("{\"seq\":0,%s", log + 9);
    ck_assert_ptr_null(audit_parse(s, strlen(s) - 1));
    free(s);
    s = xasprintf("{\"seq\":1.5,%s", log + 9);
    ck_assert_ptr_null(audit_parse(s, strlen(s) - 1));
    free(s);
    s = xasprintf("{\"seq\":2,%s", log + 9); /* the same, with another valid seq */
    ck_assert_ptr_nonnull(r = audit_parse(s, strlen(s) - 1));
    cJSON_Delete(r);
    free(s);
    ck_assert_ptr_null(audit_parse("{}", 2));
    ck_assert_ptr_null(audit_parse("", 0));
    free(log);
}
END_TEST

START_TEST(verify_accepts_valid_logs)
{
    char *log = make_log(5);

    expect_valid("", 0);
    expect_valid(log, 5);
    free(log);
}
END_TEST

START_TEST(verify_finds_a_changed_record)
{
    char *log = make_log(3), *s;
    size_t n;
    const char *two = line_at(log, 2, &n);

    /* One character of the middle record: it still parses, its successor no longer fits. */
    s = strstr(two, "alice");
    ck_assert_ptr_nonnull(s);
    ck_assert(s < two + n);
    s[4] = 'f';
    expect_broken(log, 3, "line 3: prev does not match line 2: line 2 was changed");
    free(log);
}
END_TEST

START_TEST(verify_finds_a_removed_record)
{
    char *log = make_log(3), *cut;
    size_t n1, n2;

    line_at(log, 1, &n1);
    line_at(log, 2, &n2);
    cut = xasprintf("%.*s%s", (int)(n1 + 1), log, log + n1 + 1 + n2 + 1);
    expect_broken(cut, 2, "seq jumps from 1 to 3: 1 record(s) were removed");
    free(cut);
    /* The first record removed. */
    expect_broken(log + n1 + 1, 1, "starts at seq 2");
    free(log);
}
END_TEST

START_TEST(verify_finds_a_renumbered_removal)
{
    char *log = make_log(3), *cut;
    size_t n1, n2, n3;
    const char *three;

    /* Line 2 removed and line 3 renumbered to 2: the seq holds, the chain does not. */
    line_at(log, 1, &n1);
    line_at(log, 2, &n2);
    three = line_at(log, 3, &n3);
    ck_assert_int_eq(strncmp(three, "{\"seq\":3,", 9), 0);
    cut = xasprintf("%.*s{\"seq\":2,%s", (int)(n1 + 1), log, three + 9);
    expect_broken(cut, 2,
                  "prev does not match line 1: line 1 was changed, or a record was removed");
    free(cut);
    free(log);
}
END_TEST

START_TEST(verify_finds_swapped_records)
{
    char *log = make_log(3), *swapped;
    size_t n1, n2, n3;
    const char *two, *three;

    line_at(log, 1, &n1);
    two = line_at(log, 2, &n2);
    three = line_at(log, 3, &n3);
    swapped =
        xasprintf("%.*s%.*s%.*s", (int)(n1 + 1), log, (int)(n3 + 1), three, (int)(n2 + 1), two);
    ck_assert_uint_eq(strlen(swapped), strlen(log));
    expect_broken(swapped, 2, "seq 2 is at line 3: records were reordered");
    free(swapped);
    free(log);
}
END_TEST

START_TEST(verify_finds_a_cut_last_record)
{
    char *log = make_log(3);
    size_t len = strlen(log);

    size_t n1, n2;

    line_at(log, 1, &n1);
    line_at(log, 2, &n2);
    log[len - 1] = '\0'; /* only the newline gone */
    expect_broken(log, 3, "the last record is cut short");
    expect_torn(log, true, n1 + 1 + n2 + 1);
    log[len - 20] = '\0';
    expect_broken(log, 3, "the last record is cut short");
    expect_torn(log, true, n1 + 1 + n2 + 1);
    free(log);
}
END_TEST

START_TEST(verify_finds_garbage_and_empty_lines)
{
    char *log = make_log(3), *s;
    size_t n1;

    /* A bad last line is torn (the next append on a target cuts it off); one before is not. */
    s = xasprintf("%shello world\n", log);
    expect_broken(s, 4, "line 4: not JSON");
    expect_torn(s, true, strlen(log));
    free(s);
    s = xasprintf("%s{\"seq\":4}\n", log);
    expect_broken(s, 4, "\"time\" is missing");
    expect_torn(s, true, strlen(log));
    free(s);
    s = xasprintf("%s\n", log);
    expect_broken(s, 4, "empty line");
    expect_torn(s, true, strlen(log));
    free(s);
    line_at(log, 1, &n1);
    s = xasprintf("%.*s\n%s", (int)(n1 + 1), log, log + n1 + 1);
    expect_broken(s, 2, "empty line");
    expect_torn(s, false, 0);
    free(s);
    s = xasprintf("%.*s\r\n%s", (int)n1, log, log + n1 + 1); /* CRLF: edited on Windows */
    expect_broken(s, 1, "control character");
    expect_torn(s, false, 0);
    free(s);
    /* A whole record with the wrong seq at the end is no torn line. */
    s = xasprintf("%.*s", (int)(n1 + 1), log);
    {
        char *twice = xasprintf("%s%s", s, s);

        expect_torn(twice, false, 0);
        free(twice);
    }
    free(s);
    free(log);
}
END_TEST

START_TEST(head_finds_a_cut_or_rewritten_end)
{
    char *log = make_log(5), *cut;
    struct audit_problem p;
    struct audit_head h, none = {0};
    size_t n;
    const char *four = line_at(log, 4, &n), *five;

    /* The head after record 4: a log that grew since still holds it. */
    ck_assert_int_eq(audit_head_of(four, n, &h), 0);
    ck_assert_uint_eq(h.seq, 4);
    ck_assert_int_eq(audit_check_head(log, strlen(log), &h, &p), 0);
    ck_assert_int_eq(audit_check_head(log, strlen(log), &none, &p), 0);
    /* Cut to 2 records: a valid chain, but the head is gone. */
    cut = xstrndup(log, (size_t)(line_at(log, 3, &n) - log));
    expect_valid(cut, 2);
    ck_assert_int_eq(audit_check_head(cut, strlen(cut), &h, &p), -1);
    ck_assert_uint_eq(p.line, 3);
    ck_assert_msg(strstr(p.why, "line 3: the log ends at seq 2, but seq 4 (sha256 ") != NULL &&
                      strstr(p.why, "2 record(s) were cut off its end") != NULL,
                  "%s", p.why);
    ck_assert_int_eq(audit_check_head("", 0, &h, &p), -1);
    ck_assert_ptr_nonnull(strstr(p.why, "the log ends at seq 0"));
    /* The last record changed: the chain holds (nothing follows it), the head does not. */
    five = line_at(log, 5, &n);
    ck_assert_int_eq(audit_head_of(five, n, &h), 0);
    ((char *)strstr(five, "alice"))[0] = 'A';
    expect_valid(log, 5);
    ck_assert_int_eq(audit_check_head(log, strlen(log), &h, &p), -1);
    ck_assert_uint_eq(p.line, 5);
    ck_assert_ptr_nonnull(strstr(p.why, "seq 5 is not the record written there"));
    /* Not a record: no head. */
    ck_assert_int_eq(audit_head_of("{}", 2, &h), -1);
    free(cut);
    free(log);
}
END_TEST

START_TEST(head_files_round_trip_and_follow_appends)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *head, *line = NULL;
    char *bad = xasprintf("%s/bad.head", dir), *deep = xasprintf("%s/a/b/x.head", dir);
    struct audit_entry e = entry(0);
    struct audit_head h, got;
    struct err err;
    FILE *f;

    head = audit_head_path(path);
    ck_assert_str_eq(head + strlen(dir), "/audit.log.head");
    ck_assert_int_eq(audit_head_load(head, &got, &err), 1); /* none yet */
    ck_assert_uint_eq(got.seq, 0);
    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), 0);
    e = entry(1);
    ck_assert_int_eq(audit_append_file(path, &e, &line, &err), 0);
    /* The append saved the head of its record. */
    ck_assert_int_eq(audit_head_load(head, &got, &err), 0);
    ck_assert_int_eq(audit_head_of(line, strlen(line), &h), 0);
    ck_assert_uint_eq(got.seq, 2);
    ck_assert_str_eq(got.sha256, h.sha256);
    ck_assert_int_eq(file_mode(head), 0600);
    /* Saving creates the directories; what is saved is what loads. */
    ck_assert_msg(audit_head_save(deep, &h, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(audit_head_load(deep, &got, &err), 0);
    ck_assert_uint_eq(got.seq, h.seq);
    ck_assert_str_eq(got.sha256, h.sha256);
    /* Anything else is refused, with the file named. */
    f = fopen(bad, "w");
    fputs("7 not-a-hash\n", f);
    fclose(f);
    ck_assert_int_eq(audit_head_load(bad, &got, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, bad));
    ck_assert_uint_eq(got.seq, 0);
    free(line);
    free(head);
    free(bad);
    free(deep);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

START_TEST(append_notes_a_cut_local_log)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *text, *line = NULL, *nl;
    struct audit_entry e;
    struct err err;
    cJSON *r;
    FILE *f;
    int i;

    for (i = 0; i < 3; i++) {
        e = entry(i);
        ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), 0);
    }
    /* Cut the last record off: a valid chain of two. */
    text = tu_read_file(path);
    nl = strchr(strchr(text, '\n') + 1, '\n');
    nl[1] = '\0';
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    /* The next append writes its record all the same, says so, and notes the gap in it. */
    e = entry(3);
    ck_assert_int_eq(audit_append_file(path, &e, &line, &err), 1);
    ck_assert_msg(strstr(err.msg, "was cut: it ends at record 2, but record 3 was the last") !=
                      NULL,
                  "%s", err.msg);
    r = audit_parse(line, strlen(line));
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(cJSON_GetObjectItem(r, "detail"), "audit_gap"), "what")
                         ->valuestring,
                     "cut");
    cJSON_Delete(r);
    free(line);
    text = tu_read_file(path);
    expect_valid(text, 3);
    free(text);
    /* From then on the gap is part of the chain. */
    e = entry(4);
    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), 0);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

START_TEST(append_creates_nested_dirs_and_modes)
{
    char *dir = tu_mkdtemp(), *a, *b, *c, *path, *line = NULL, *text;
    struct audit_entry e = entry(0);
    struct err err;

    umask(022);
    a = xasprintf("%s/state", dir);
    b = xasprintf("%s/state/deep", dir);
    c = xasprintf("%s/state/deep/n3ctl", dir);
    path = xasprintf("%s/audit.log", c);
    ck_assert_msg(audit_append_file(path, &e, &line, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(file_mode(a), 0700);
    ck_assert_int_eq(file_mode(b), 0700);
    ck_assert_int_eq(file_mode(c), 0700);
    ck_assert_int_eq(file_mode(path), 0600);
    ck_assert_ptr_nonnull(line);
    ck_assert_int_eq(strncmp(line, "{\"seq\":1,", 9), 0);
    text = tu_read_file(path);
    ck_assert_uint_eq(strlen(text), strlen(line) + 1);
    ck_assert_int_eq(strncmp(text, line, strlen(line)), 0);
    ck_assert_int_eq(text[strlen(line)], '\n');
    free(text);
    free(line);
    free(a);
    free(b);
    free(c);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

START_TEST(append_three_then_verify)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *text, *lines[3];
    struct audit_entry e;
    struct err err;
    char hex[65];
    int i;

    for (i = 0; i < 3; i++) {
        e = entry(i);
        ck_assert_msg(audit_append_file(path, &e, &lines[i], &err) == 0, "%s", err.msg);
    }
    ck_assert_int_eq(strncmp(lines[2], "{\"seq\":3,", 9), 0);
    audit_line_hash(lines[1], strlen(lines[1]), hex);
    ck_assert_ptr_nonnull(strstr(lines[2], hex));
    text = tu_read_file(path);
    expect_valid(text, 3);
    ck_assert_int_eq(strncmp(text, lines[0], strlen(lines[0])), 0);
    free(text);
    /* NULL line_out is fine. */
    e = entry(3);
    ck_assert_msg(audit_append_file(path, &e, NULL, &err) == 0, "%s", err.msg);
    text = tu_read_file(path);
    expect_valid(text, 4);
    free(text);
    for (i = 0; i < 3; i++)
        free(lines[i]);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

START_TEST(append_finds_last_lines_across_chunks)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *text, *pad;
    struct audit_entry e = entry(0);
    struct err err;
    unsigned long records = 0;
    size_t size;
    cJSON *d;

    /* Records around and over the size of one backward read: the last line must be found
     * exactly, or the next prev would not match. */
    pad = xmalloc(20000);
    for (size = 3900; size < 4400; size += 23) {
        memset(pad, 'p', size);
        pad[size] = '\0';
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "pad", pad);
        e.detail = d;
        ck_assert_msg(audit_append_file(path, &e, NULL, &err) == 0, "%s", err.msg);
        cJSON_Delete(d);
        records++;
    }
    memset(pad, 'q', 19999);
    pad[19999] = '\0';
    d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "pad", pad);
    e.detail = d;
    ck_assert_msg(audit_append_file(path, &e, NULL, &err) == 0, "%s", err.msg);
    e.detail = NULL;
    ck_assert_msg(audit_append_file(path, &e, NULL, &err) == 0, "%s", err.msg);
    records += 2;
    cJSON_Delete(d);
    text = tu_read_file(path);
    expect_valid(text, records);
    free(text);
    free(pad);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

/* Append junk to path as it is, like a write cut short. */
static void append_raw(const char *path, const char *junk)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, junk, strlen(junk)), (ssize_t)strlen(junk));
    close(fd);
}

START_TEST(append_refuses_a_torn_log)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *before, *after;
    struct audit_entry e = entry(0);
    struct err err;

    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), 0);
    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), 0);
    append_raw(path, "{\"seq\":3,\"time\":\"2026-");
    before = tu_read_file(path);
    err_clear(&err);
    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, path) != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "cut short") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "n3ctl audit verify") != NULL, "%s", err.msg);
    after = tu_read_file(path);
    ck_assert_str_eq(after, before);
    free(before);
    free(after);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

START_TEST(append_refuses_a_broken_last_line)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *log = make_log(2), *s;
    struct audit_entry e = entry(0);
    struct err err;

    s = xasprintf("%sgarbage\n", log);
    tu_write_file(path, s);
    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "not JSON") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "n3ctl audit verify") != NULL, "%s", err.msg);
    free(s);
    /* An empty last line must not start a new chain at seq 1. */
    s = xasprintf("%s\n", log);
    tu_write_file(path, s);
    ck_assert_int_eq(audit_append_file(path, &e, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "empty line") != NULL, "%s", err.msg);
    free(s);
    s = tu_read_file(path);
    ck_assert_uint_eq(strlen(s), strlen(log) + 1);
    free(s);
    /* The good log continues. */
    tu_write_file(path, log);
    ck_assert_msg(audit_append_file(path, &e, NULL, &err) == 0, "%s", err.msg);
    s = tu_read_file(path);
    expect_valid(s, 3);
    free(s);
    free(log);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

#define WRITERS    4
#define PER_WRITER 50

START_TEST(concurrent_appends_are_serialised)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/audit.log", dir), *text, c;
    pid_t kids[WRITERS];
    int gate[2], status, counts[WRITERS] = {0}, i, j;
    const char *s, *nl;
    struct audit_entry e;
    struct err err;
    cJSON *r;
    long pid;

    ck_assert_int_eq(pipe(gate), 0);
    for (i = 0; i < WRITERS; i++) {
        kids[i] = fork();
        ck_assert_int_ne(kids[i], -1);
        if (kids[i] != 0)
            continue;
        /* The gate opens when the parent closes its end: all writers start at once. */
        close(gate[1]);
        if (read(gate[0], &c, 1) != 0)
            _exit(3);
        for (j = 0; j < PER_WRITER; j++) {
            e = entry(j);
            e.pid = (long)getpid();
            if (audit_append_file(path, &e, NULL, &err) != 0) {
                fprintf(stderr, "writer %d: %s\n", i, err.msg);
                _exit(1);
            }
        }
        _exit(0);
    }
    close(gate[0]);
    close(gate[1]);
    for (i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", i);
    }
    text = tu_read_file(path);
    expect_valid(text, WRITERS * PER_WRITER);
    for (s = text; (nl = strchr(s, '\n')) != NULL; s = nl + 1) {
        r = audit_parse(s, (size_t)(nl - s));
        ck_assert_ptr_nonnull(r);
        pid = (long)cJSON_GetObjectItem(r, "pid")->valuedouble;
        for (i = 0; i < WRITERS; i++)
            if (pid == (long)kids[i])
                counts[i]++;
        cJSON_Delete(r);
    }
    for (i = 0; i < WRITERS; i++)
        ck_assert_int_eq(counts[i], PER_WRITER);
    free(text);
    free(path);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

START_TEST(local_path_follows_xdg)
{
    char *p;

    setenv("HOME", "/home/alice", 1);
    setenv("XDG_STATE_HOME", "/var/state/", 1);
    p = audit_local_path();
    ck_assert_str_eq(p, "/var/state/n3ctl/audit.log");
    free(p);
    setenv("XDG_STATE_HOME", "relative/state", 1); /* invalid per the spec: ignored */
    p = audit_local_path();
    ck_assert_str_eq(p, "/home/alice/.local/state/n3ctl/audit.log");
    free(p);
    unsetenv("XDG_STATE_HOME");
    p = audit_local_path();
    ck_assert_str_eq(p, "/home/alice/.local/state/n3ctl/audit.log");
    free(p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("audit");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, line_hash_is_sha256);
    tcase_add_test(tc, format_first_and_second_records);
    tcase_add_test(tc, format_escapes_outside_strings);
    tcase_add_test(tc, format_refuses_a_broken_prev);
    tcase_add_test(tc, format_refuses_bad_entries);
    tcase_add_test(tc, parse_takes_records_only);
    tcase_add_test(tc, verify_accepts_valid_logs);
    tcase_add_test(tc, verify_finds_a_changed_record);
    tcase_add_test(tc, verify_finds_a_removed_record);
    tcase_add_test(tc, verify_finds_a_renumbered_removal);
    tcase_add_test(tc, verify_finds_swapped_records);
    tcase_add_test(tc, verify_finds_a_cut_last_record);
    tcase_add_test(tc, verify_finds_garbage_and_empty_lines);
    tcase_add_test(tc, append_creates_nested_dirs_and_modes);
    tcase_add_test(tc, append_three_then_verify);
    tcase_add_test(tc, append_finds_last_lines_across_chunks);
    tcase_add_test(tc, append_refuses_a_torn_log);
    tcase_add_test(tc, append_refuses_a_broken_last_line);
    tcase_add_test(tc, concurrent_appends_are_serialised);
    tcase_add_test(tc, local_path_follows_xdg);
    tcase_add_test(tc, head_finds_a_cut_or_rewritten_end);
    tcase_add_test(tc, head_files_round_trip_and_follow_appends);
    tcase_add_test(tc, append_notes_a_cut_local_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
