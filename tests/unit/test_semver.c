/* Versions: the semver.org 2.0.0 grammar and precedence, the messages for bad tags, and the
 * version-name rule that keeps tags safe as paths and words in commands. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/semver.h"
#include "tests/unit/testutil.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void parse_ok(const char *name, struct semver *v)
{
    struct err err = {""};

    ck_assert_msg(semver_parse(name, v, &err) == 0, "%s: %s", name, err.msg);
}

/* <0, 0, >0 for two tag names, asserting both parse. */
static int cmp_tags(const char *a, const char *b)
{
    struct semver va, vb;
    int c;

    parse_ok(a, &va);
    parse_ok(b, &vb);
    c = semver_cmp(&va, &vb);
    semver_done(&va);
    semver_done(&vb);
    return c;
}

START_TEST(parse_splits_the_parts)
{
    struct semver v;

    parse_ok("v1.4.2", &v);
    ck_assert_uint_eq(v.major, 1);
    ck_assert_uint_eq(v.minor, 4);
    ck_assert_uint_eq(v.patch, 2);
    ck_assert_ptr_null(v.pre);
    ck_assert_ptr_null(v.build);
    semver_done(&v);

    parse_ok("10.20.30-rc.1+build.7", &v);
    ck_assert_uint_eq(v.major, 10);
    ck_assert_uint_eq(v.minor, 20);
    ck_assert_uint_eq(v.patch, 30);
    ck_assert_str_eq(v.pre, "rc.1");
    ck_assert_str_eq(v.build, "build.7");
    semver_done(&v);
    ck_assert_ptr_null(v.pre);
    ck_assert_ptr_null(v.build);

    parse_ok("1.0.0+21AF26D3----117B344092BD", &v);
    ck_assert_ptr_null(v.pre);
    ck_assert_str_eq(v.build, "21AF26D3----117B344092BD");
    semver_done(&v);

    /* A '-' inside the build metadata does not start a pre-release. */
    parse_ok("1.0.0+exp.sha-5114f85", &v);
    ck_assert_ptr_null(v.pre);
    ck_assert_str_eq(v.build, "exp.sha-5114f85");
    semver_done(&v);

    parse_ok("1.0.0-x-y-z.--", &v);
    ck_assert_str_eq(v.pre, "x-y-z.--");
    ck_assert_ptr_null(v.build);
    semver_done(&v);

    parse_ok("v9223372036854775807.0.0", &v);
    ck_assert_uint_eq(v.major, UINT64_C(9223372036854775807));
    semver_done(&v);
}
END_TEST

START_TEST(parse_accepts_the_spec_examples)
{
    static const char *const good[] = {
        "0.0.0",
        "0.0.4",
        "1.2.3",
        "10.20.30",
        "1.1.2-prerelease+meta",
        "1.1.2+meta",
        "1.1.2+meta-valid",
        "1.0.0-alpha",
        "1.0.0-beta",
        "1.0.0-alpha.beta",
        "1.0.0-alpha.beta.1",
        "1.0.0-alpha.1",
        "1.0.0-alpha0.valid",
        "1.0.0-alpha.0valid",
        "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
        "1.0.0-rc.1+build.1",
        "2.0.0-rc.1+build.123",
        "1.2.3-beta",
        "10.2.3-DEV-SNAPSHOT",
        "1.2.3-SNAPSHOT-123",
        "2.0.0+build.1848",
        "2.0.1-alpha.1227",
        "1.0.0-alpha+beta",
        "1.2.3----RC-SNAPSHOT.12.9.1--.12+788",
        "1.2.3----R-S.12.9.1--.12+meta",
        "1.2.3----RC-SNAPSHOT.12.9.1--.12",
        "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
        "1.0.0-0A.is.legal",
        "1.0.0-0",
        "1.0.0-00a",
        "1.0.0+001",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0-alpha.99999999999999999999999999999999999999",
        "v1.0.0-alpha+001",
    };
    struct semver v;
    size_t i;

    for (i = 0; i < N_ELEMS(good); i++) {
        parse_ok(good[i], &v);
        semver_done(&v);
    }
}
END_TEST

START_TEST(parse_refuses_bad_tags_with_a_reason)
{
    static const struct {
        const char *tag, *msg;
    } bad[] = {
        {"v1.2", "v1.2: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"1", "1: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"v1.2.3.4", "v1.2.3.4: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"v1.2-rc.1", "v1.2-rc.1: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"v", "v: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"release_2024.01", "release_2024.01: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"", "empty tag name: a version has three numbers: MAJOR.MINOR.PATCH"},
        {"v1.02.3", "v1.02.3: 02 has a leading zero"},
        {"01.2.3", "01.2.3: 01 has a leading zero"},
        {"1.2.00", "1.2.00: 00 has a leading zero"},
        {"v1..3", "v1..3: the minor number is empty"},
        {"1.2.", "1.2.: the patch number is empty"},
        {"v1.x.3", "v1.x.3: character 4 ('x') is not allowed in the minor number"},
        {"v1.2.3rc1", "v1.2.3rc1: character 7 ('r') is not allowed in the patch number; a "
                      "pre-release goes after '-', build metadata after '+'"},
        {"v1.2.3_4", "v1.2.3_4: character 7 ('_') is not allowed in the patch number; a "
                     "pre-release goes after '-', build metadata after '+'"},
        {" 1.2.3", " 1.2.3: character 1 (' ') is not allowed in the major number"},
        {"V1.2.3", "V1.2.3: a version starts with a number or a lowercase 'v', not 'V'"},
        {"vv1.2.3", "vv1.2.3: only one 'v' may come before the version"},
        {"vV1.2.3", "vV1.2.3: only one 'v' may come before the version"},
        {"v9223372036854775808.0.0",
         "v9223372036854775808.0.0: the major number is larger than 9223372036854775807"},
        {"1.18446744073709551616.0",
         "1.18446744073709551616.0: the minor number is larger than 9223372036854775807"},
        {"1.0.99999999999999999999999",
         "1.0.99999999999999999999999: the patch number is larger than 9223372036854775807"},
        {"v1.2.3-", "v1.2.3-: empty pre-release identifier"},
        {"v1.2.3-rc..1", "v1.2.3-rc..1: empty pre-release identifier"},
        {"v1.2.3-rc.", "v1.2.3-rc.: empty pre-release identifier"},
        {"v1.2.3-.rc", "v1.2.3-.rc: empty pre-release identifier"},
        {"v1.2.3-+b", "v1.2.3-+b: empty pre-release identifier"},
        {"v1.2.3-rc.01", "v1.2.3-rc.01: 01 has a leading zero"},
        {"1.0.0-00", "1.0.0-00: 00 has a leading zero"},
        {"v1.2.3-rc_1", "v1.2.3-rc_1: character 10 ('_') is not allowed in a pre-release "
                        "identifier; use letters, digits and -"},
        {"v1.2.3+", "v1.2.3+: empty build metadata identifier"},
        {"v1.2.3+a..b", "v1.2.3+a..b: empty build metadata identifier"},
        {"v1.2.3-rc.1+", "v1.2.3-rc.1+: empty build metadata identifier"},
        {"v1.2.3+a+b", "v1.2.3+a+b: character 9 ('+') is not allowed in build metadata; use "
                       "letters, digits and -"},
        {"v1.2.3-rc\n", "v1.2.3-rc\\x0a: character 10 ('\\x0a') is not allowed in a pre-release "
                        "identifier; use letters, digits and -"},
    };
    struct semver v;
    struct err err;
    size_t i;

    for (i = 0; i < N_ELEMS(bad); i++) {
        err_clear(&err);
        v.pre = v.build = (char *)"garbage";
        ck_assert_msg(semver_parse(bad[i].tag, &v, &err) == -1, "%s parsed", bad[i].tag);
        ck_assert_str_eq(err.msg, bad[i].msg);
        /* A failed parse leaves nothing to free, so callers can always semver_done(). */
        ck_assert_ptr_null(v.pre);
        ck_assert_ptr_null(v.build);
        semver_done(&v);
    }
}
END_TEST

START_TEST(long_tags_are_cut_in_messages)
{
    char tag[300];
    struct semver v;
    struct err err;

    memset(tag, '1', sizeof tag - 1);
    tag[sizeof tag - 1] = '\0';
    ck_assert_int_eq(semver_parse(tag, &v, &err), -1);
    ck_assert_uint_lt(strlen(err.msg), 200);
    ck_assert_int_eq(strncmp(err.msg, tag, 64), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "...: a version has three numbers"));
}
END_TEST

/* Every pair in increasing order compares as such, both ways round, and each equals itself. */
static void assert_increasing(const char *const *tags, size_t n)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        ck_assert_msg(cmp_tags(tags[i], tags[i]) == 0, "%s != itself", tags[i]);
        for (j = i + 1; j < n; j++) {
            ck_assert_msg(cmp_tags(tags[i], tags[j]) < 0, "not %s < %s", tags[i], tags[j]);
            ck_assert_msg(cmp_tags(tags[j], tags[i]) > 0, "not %s > %s", tags[j], tags[i]);
        }
    }
}

START_TEST(precedence_follows_the_spec_examples)
{
    static const char *const core[] = {"1.0.0", "2.0.0", "2.1.0", "2.1.1"};
    static const char *const pre[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                      "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                      "1.0.0-rc.1",  "1.0.0"};

    assert_increasing(core, N_ELEMS(core));
    assert_increasing(pre, N_ELEMS(pre));
}
END_TEST

START_TEST(precedence_edge_cases)
{
    static const char *const nums[] = {
        "1.0.0-2",
        "1.0.0-10",
        "1.0.0-9999",
        "1.0.0-10000000000000000000000000000000",
        "1.0.0-99999999999999999999999999999999",
        "1.0.0-100000000000000000000000000000000",
        /* Numeric identifiers are lower than alphanumeric ones, whatever their length. */
        "1.0.0--",
        "1.0.0-0a",
        "1.0.0-A",
        "1.0.0-a",
        "1.0.0-ab",
        "1.0.0-rc10",
        "1.0.0-rc9",
        "1.0.0",
        "1.0.1-0",
        "1.0.1",
        "1.9.0",
        "1.10.0",
        "9223372036854775806.0.0",
        "9223372036854775807.0.0",
    };
    static const char *const long_pre[] = {
        "1.0.0-alpha.99999999999999999999999999998",
        "1.0.0-alpha.99999999999999999999999999999",
        "1.0.0-alpha.99999999999999999999999999999.0",
        "1.0.0-alpha.123456789012345678901234567890123",
        "1.0.0-alpha.beta",
    };

    assert_increasing(nums, N_ELEMS(nums));
    assert_increasing(long_pre, N_ELEMS(long_pre));
    ck_assert_int_eq(cmp_tags("v1.2.3", "1.2.3"), 0);
}
END_TEST

START_TEST(build_metadata_is_ignored_for_precedence)
{
    struct semver a, b, c;

    parse_ok("v1.0.0+a", &a);
    parse_ok("1.0.0+b", &b);
    parse_ok("1.0.0", &c);
    ck_assert_int_eq(semver_cmp(&a, &b), 0);
    ck_assert_int_eq(semver_cmp(&b, &a), 0);
    ck_assert_int_eq(semver_cmp(&a, &c), 0);
    ck_assert_int_eq(cmp_tags("1.0.0-rc.1+zzz", "1.0.0-rc.1+aaa"), 0);
    ck_assert_int_lt(cmp_tags("1.0.0-rc.1+zzz", "1.0.0-rc.2+aaa"), 0);
    ck_assert_int_lt(cmp_tags("1.0.0-rc.1+zzz", "1.0.0+aaa"), 0);

    /* The names break the tie, the same way both round, and the result is the sign only. */
    ck_assert_int_eq(semver_cmp_names(&b, "1.0.0+b", &a, "v1.0.0+a"), -1);
    ck_assert_int_eq(semver_cmp_names(&a, "v1.0.0+a", &b, "1.0.0+b"), 1);
    ck_assert_int_eq(semver_cmp_names(&c, "1.0.0", &b, "1.0.0+b"), -1);
    ck_assert_int_eq(semver_cmp_names(&b, "1.0.0+b", &c, "1.0.0"), 1);
    ck_assert_int_eq(semver_cmp_names(&a, "v1.0.0+a", &a, "v1.0.0+a"), 0);
    semver_done(&a);
    semver_done(&b);
    semver_done(&c);

    /* Precedence comes before the name: "v..." sorts after "1..." only on a tie. */
    parse_ok("v1.0.0-rc.1", &a);
    parse_ok("1.0.0", &b);
    ck_assert_int_lt(semver_cmp_names(&a, "v1.0.0-rc.1", &b, "1.0.0"), 0);
    ck_assert_int_gt(semver_cmp_names(&b, "1.0.0", &a, "v1.0.0-rc.1"), 0);
    semver_done(&a);
    semver_done(&b);
}
END_TEST

struct tagged {
    const char *name;
    struct semver v;
};

static int cmp_tagged(const void *pa, const void *pb)
{
    const struct tagged *a = pa, *b = pb;

    return semver_cmp_names(&a->v, a->name, &b->v, b->name);
}

static void swap(struct tagged *a, struct tagged *b)
{
    struct tagged t = *a;

    *a = *b;
    *b = t;
}

START_TEST(sorting_tags_gives_release_order)
{
    static const char *const sorted[] = {
        "0.9.9",
        "1.0.0-alpha",
        "v1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1+build.1",
        "1.0.0-rc.1+build.2",
        "1.0.0",
        "1.0.0+20130313144700",
        "1.0.0+exp.sha.5114f85",
        "v1.0.0",
        "v1.0.0+a",
        "1.0.1",
        "v1.2.0",
        "1.10.0",
        "2.0.0-rc.2",
        "v2.0.0",
        "10.0.0",
    };
    enum { N = N_ELEMS(sorted) };
    struct tagged tags[N];
    unsigned round, r;
    size_t i, j;

    for (i = 0; i < N; i++) {
        tags[i].name = sorted[i];
        parse_ok(sorted[i], &tags[i].v);
    }
    /* Rounds 0-9 shuffle with a fixed LCG (so a failure reproduces), round 10 reverses, round
     * 11 sorts the list qsort left behind. */
    for (round = 0; round < 12; round++) {
        r = round + 1;
        for (i = 0; round < 10 && i + 1 < N; i++) {
            r = r * 1103515245u + 12345u;
            j = i + (r >> 16) % (N - i);
            swap(&tags[i], &tags[j]);
        }
        for (i = 0; round == 10 && i < N / 2; i++)
            swap(&tags[i], &tags[N - 1 - i]);
        qsort(tags, N, sizeof tags[0], cmp_tagged);
        for (i = 0; i < N; i++)
            ck_assert_msg(strcmp(tags[i].name, sorted[i]) == 0,
                          "round %u: position %zu is %s, expected %s", round, i, tags[i].name,
                          sorted[i]);
    }
    for (i = 0; i < N; i++)
        semver_done(&tags[i].v);
}
END_TEST

START_TEST(version_names_that_are_safe)
{
    static const char *const good[] = {
        "v1.2.3", "1.0.0-rc.1+build.7", "release_2024.01", "a", "V2", "1.2.3-x.y_z+b.9",
    };
    char longest[VERSION_NAME_MAX + 1];
    struct err err;
    size_t i;

    for (i = 0; i < N_ELEMS(good); i++) {
        err_clear(&err);
        ck_assert_msg(version_name_ok(good[i], &err), "%s: %s", good[i], err.msg);
    }
    memset(longest, 'a', VERSION_NAME_MAX);
    longest[VERSION_NAME_MAX] = '\0';
    ck_assert(version_name_ok(longest, &err));
}
END_TEST

START_TEST(version_names_that_are_refused)
{
#define USE " is not allowed in a version; use letters, digits and . _ + -"
    static const struct {
        const char *name, *msg;
    } bad[] = {
        {"v1.2.3;rm -rf /", "\"v1.2.3;rm -rf /\": character 7 (';')" USE},
        {"v1.2.3 x", "\"v1.2.3 x\": character 7 (' ')" USE},
        {"$(x)", "\"$(x)\": character 1 ('$')" USE},
        {"a/b", "\"a/b\": character 2 ('/')" USE},
        {"v1`id`", "\"v1`id`\": character 3 ('`')" USE},
        {"v1\n", "\"v1\\x0a\": character 3 ('\\x0a')" USE},
        {"v1\x1b[2J", "\"v1\\x1b[2J\": character 3 ('\\x1b')" USE},
        {"v\xc3\xa9", "\"v\\xc3\\xa9\": character 2 ('\\xc3')" USE},
        {"a\"b", "\"a\\\"b\": character 2 ('\"')" USE},
        {"..", "\"..\": character 1 ('.') cannot start a version; start with a letter or a digit"},
        {"-v1", "\"-v1\": character 1 ('-') cannot start a version; start with a letter or a "
                "digit"},
        {".hidden", "\".hidden\": character 1 ('.') cannot start a version; start with a letter "
                    "or a digit"},
        {"v1..2", "\"v1..2\": character 4 ('.') makes \"..\", which is not allowed in a version "
                  "(it climbs out of the release directory)"},
        {"", "\"\": a version cannot be empty"},
    };
#undef USE
    char toolong[201];
    struct err err;
    size_t i;

    for (i = 0; i < N_ELEMS(bad); i++) {
        err_clear(&err);
        ck_assert_msg(!version_name_ok(bad[i].name, &err), "%s accepted", bad[i].name);
        ck_assert_str_eq(err.msg, bad[i].msg);
    }

    memset(toolong, 'a', 200);
    toolong[200] = '\0';
    ck_assert(!version_name_ok(toolong, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "...\": 200 characters is too long for a version (at "
                                          "most 128)"));
    toolong[VERSION_NAME_MAX + 1] = '\0';
    ck_assert(!version_name_ok(toolong, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "129 characters is too long"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("semver");
    TCase *t = tcase_create("semver");

    tcase_add_test(t, parse_splits_the_parts);
    tcase_add_test(t, parse_accepts_the_spec_examples);
    tcase_add_test(t, parse_refuses_bad_tags_with_a_reason);
    tcase_add_test(t, long_tags_are_cut_in_messages);
    tcase_add_test(t, precedence_follows_the_spec_examples);
    tcase_add_test(t, precedence_edge_cases);
    tcase_add_test(t, build_metadata_is_ignored_for_precedence);
    tcase_add_test(t, sorting_tags_gives_release_order);
    tcase_add_test(t, version_names_that_are_safe);
    tcase_add_test(t, version_names_that_are_refused);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
