/* Host state and hooks: state.json round trips, release order, what parse refuses, the probe
 * run by a real /bin/sh on a real tree, and hook commands whose values stay data in a shell. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/hooks.h"
#include "deploy/hoststate.h"
#include "deploy/semver.h"
#include "tests/unit/testutil.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define COMMIT_A "0123456789abcdef0123456789abcdef01234567"
#define COMMIT_B "fedcba9876543210fedcba9876543210fedcba98"
#define SHA_A    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define SHA_B    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

/* 2026-11-27T07:01:02Z */
#define NOW INT64_C(1795762862)

/* ---- helpers ---- */

static struct hoststate *parse_ok(const char *text)
{
    struct hoststate *s = NULL;
    struct err err = {""};

    ck_assert_msg(hoststate_parse("web1", text, strlen(text), &s, &err) == 0, "%s\n%s", err.msg,
                  text);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* The formatted state as a cJSON tree, to look at what has no accessor (history, previous.slot). */
static cJSON *format_json(const struct hoststate *s, int64_t now)
{
    char *text = hoststate_format(s, now);
    cJSON *root = cJSON_Parse(text);

    ck_assert_msg(root != NULL, "format wrote something that is not JSON:\n%s", text);
    free(text);
    return root;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void assert_release(const struct hoststate *s, size_t i, const char *version,
                           const char *commit, const char *sha256, const char *pushed,
                           const char *by)
{
    const struct hs_release *r;

    ck_assert_uint_lt(i, hoststate_nreleases(s));
    r = hoststate_release(s, i);
    ck_assert_str_eq(r->version, version);
    ck_assert_str_eq(r->commit, commit);
    ck_assert_str_eq(r->sha256, sha256);
    ck_assert_str_eq(r->pushed, pushed);
    ck_assert_str_eq(r->by, by);
    ck_assert_ptr_eq(hoststate_find(s, version), r);
}

static void assert_order(const struct hoststate *s, const char *const *want, size_t n)
{
    size_t i;

    ck_assert_uint_eq(hoststate_nreleases(s), n);
    for (i = 0; i < n; i++)
        ck_assert_msg(strcmp(hoststate_release(s, i)->version, want[i]) == 0,
                      "release %zu is %s, expected %s", i, hoststate_release(s, i)->version,
                      want[i]);
}

static void add_version(struct hoststate *s, const char *version)
{
    struct hs_release r = {.version = version};

    hoststate_add_release(s, &r);
}

/* Run cmd with /bin/sh (popen); its standard output. Asserts that it exits 0. */
static char *run_sh(const char *cmd)
{
    char chunk[4096], *out;
    struct buf b;
    FILE *f;
    size_t n;
    int status;

    f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    status = pclose(f);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d: %s\noutput: %s",
                  status, cmd, b.data);
    out = buf_detach(&b, NULL);
    buf_done(&b); /* detach leaves an empty buffer behind */
    return out;
}

static void mkdir_ok(const char *path)
{
    ck_assert_msg(mkdir(path, 0755) == 0, "mkdir %s", path);
}

static char *path_join(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

/* ---- state.json ---- */

/* Everything a state file holds, as the header describes it. */
static const char full_state[] =
    "{\"version\": 1, \"target\": \"web1\", \"updated\": \"2026-11-27T07:01:02Z\",\n"
    " \"releases\": [\n"
    "  {\"version\": \"v1.2.2\", \"commit\": \"" COMMIT_B "\", \"sha256\": \"" SHA_B "\",\n"
    "   \"pushed\": \"2026-11-26T10:00:00Z\", \"by\": \"bob@ci\"},\n"
    "  {\"version\": \"v1.2.3\", \"commit\": \"" COMMIT_A "\", \"sha256\": \"" SHA_A "\",\n"
    "   \"pushed\": \"2026-11-27T06:00:00Z\", \"by\": \"alice@laptop\"}],\n"
    " \"slots\": {\"blue\": {\"version\": \"v1.2.3\", \"port\": 8001},\n"
    "           \"green\": {\"version\": \"v1.2.2\", \"port\": 8002}},\n"
    " \"live\": \"blue\", \"previous\": {\"slot\": \"green\", \"version\": \"v1.2.2\"},\n"
    " \"history\": [\n"
    "  {\"time\": \"2026-11-26T10:00:00Z\", \"action\": \"release.push\", \"version\": "
    "\"v1.2.2\",\n"
    "   \"by\": \"bob@ci\"},\n"
    "  {\"time\": \"2026-11-27T06:00:00Z\", \"action\": \"release.push\", \"version\": "
    "\"v1.2.3\",\n"
    "   \"by\": \"alice@laptop\"},\n"
    "  {\"time\": \"2026-11-27T06:05:00Z\", \"action\": \"release.switch\", \"version\": "
    "\"v1.2.3\",\n"
    "   \"by\": \"alice@laptop\"}]}\n";

static void assert_full_state(const struct hoststate *s)
{
    enum hs_slot live;

    ck_assert_uint_eq(hoststate_nreleases(s), 2);
    /* Newest first, whatever the order in the file. */
    assert_release(s, 0, "v1.2.3", COMMIT_A, SHA_A, "2026-11-27T06:00:00Z", "alice@laptop");
    assert_release(s, 1, "v1.2.2", COMMIT_B, SHA_B, "2026-11-26T10:00:00Z", "bob@ci");
    ck_assert_str_eq(hoststate_slot_version(s, HS_BLUE), "v1.2.3");
    ck_assert_int_eq(hoststate_slot_port(s, HS_BLUE), 8001);
    ck_assert_str_eq(hoststate_slot_version(s, HS_GREEN), "v1.2.2");
    ck_assert_int_eq(hoststate_slot_port(s, HS_GREEN), 8002);
    ck_assert(hoststate_live(s, &live));
    ck_assert_int_eq(live, HS_BLUE);
    ck_assert_str_eq(hoststate_previous_version(s), "v1.2.2");
}

static void assert_full_history(const cJSON *root)
{
    static const char *const want[][4] = {
        {"2026-11-26T10:00:00Z", "release.push", "v1.2.2", "bob@ci"},
        {"2026-11-27T06:00:00Z", "release.push", "v1.2.3", "alice@laptop"},
        {"2026-11-27T06:05:00Z", "release.switch", "v1.2.3", "alice@laptop"},
    };
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(root, "previous");
    size_t i;

    ck_assert(cJSON_IsArray(hist));
    ck_assert_int_eq(cJSON_GetArraySize(hist), (int)N_ELEMS(want));
    for (i = 0; i < N_ELEMS(want); i++) {
        const cJSON *h = cJSON_GetArrayItem(hist, (int)i);

        ck_assert_str_eq(json_str(h, "time"), want[i][0]);
        ck_assert_str_eq(json_str(h, "action"), want[i][1]);
        ck_assert_str_eq(json_str(h, "version"), want[i][2]);
        ck_assert_str_eq(json_str(h, "by"), want[i][3]);
    }
    ck_assert_str_eq(json_str(prev, "slot"), "green");
    ck_assert_str_eq(json_str(prev, "version"), "v1.2.2");
}

START_TEST(a_state_file_round_trips_every_field)
{
    struct hoststate *s = parse_ok(full_state), *again;
    char *text, *text2, iso[32];
    cJSON *root;

    assert_full_state(s);
    root = format_json(s, NOW);
    assert_full_history(root);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(root, "version")->valueint, 1);
    ck_assert_str_eq(json_str(root, "target"), "web1");
    hoststate_iso_time(NOW, iso);
    ck_assert_str_eq(iso, "2026-11-27T07:01:02Z");
    ck_assert_str_eq(json_str(root, "updated"), iso);
    ck_assert_str_eq(json_str(root, "live"), "blue");
    cJSON_Delete(root);

    /* Written, read back, written again: the same text (a stable key order). */
    text = hoststate_format(s, NOW);
    again = parse_ok(text);
    assert_full_state(again);
    text2 = hoststate_format(again, NOW);
    ck_assert_str_eq(text2, text);
    ck_assert_uint_eq(text[strlen(text) - 1], '\n');

    free(text);
    free(text2);
    hoststate_free(again);
    hoststate_free(s);
}
END_TEST

START_TEST(a_state_built_in_memory_round_trips)
{
    struct hoststate *s = hoststate_new("web1"), *back;
    struct hs_release r1 = {"1.0.0", COMMIT_A, SHA_A, "2026-11-20T08:00:00Z", "alice@laptop"};
    struct hs_release r2 = {"2.0.0", COMMIT_B, SHA_B, "2026-11-27T07:00:00Z", "bob@ci"};
    /* Rebuilt from a release without REVISION: only the name is known. */
    struct hs_release r3 = {.version = "1.5.0"};
    const cJSON *hist, *slots;
    char *text;
    cJSON *root;

    ck_assert_uint_eq(hoststate_nreleases(s), 0);
    ck_assert(!hoststate_live(s, NULL));
    ck_assert_ptr_null(hoststate_previous_version(s));
    ck_assert_ptr_null(hoststate_slot_version(s, HS_BLUE));
    ck_assert_int_eq(hoststate_slot_port(s, HS_BLUE), 0);

    hoststate_add_release(s, &r1);
    hoststate_add_release(s, &r2);
    hoststate_add_release(s, &r3);
    hoststate_set_slot(s, HS_GREEN, "2.0.0", 8002);
    hoststate_add_history(s, NOW - 60, "release.push", "1.0.0", "alice@laptop");
    hoststate_add_history(s, NOW, "release.push", "2.0.0", "bob@ci");
    hoststate_add_history(s, NOW + 1, "lock.break", NULL, NULL);

    text = hoststate_format(s, NOW);
    back = parse_ok(text);
    ck_assert_uint_eq(hoststate_nreleases(back), 3);
    assert_release(back, 0, "2.0.0", COMMIT_B, SHA_B, "2026-11-27T07:00:00Z", "bob@ci");
    assert_release(back, 1, "1.5.0", "", "", "", "");
    assert_release(back, 2, "1.0.0", COMMIT_A, SHA_A, "2026-11-20T08:00:00Z", "alice@laptop");
    ck_assert_ptr_null(hoststate_slot_version(back, HS_BLUE));
    ck_assert_str_eq(hoststate_slot_version(back, HS_GREEN), "2.0.0");
    ck_assert_int_eq(hoststate_slot_port(back, HS_GREEN), 8002);
    ck_assert(!hoststate_live(back, NULL));
    ck_assert_ptr_null(hoststate_previous_version(back));

    root = format_json(back, NOW);
    slots = cJSON_GetObjectItemCaseSensitive(root, "slots");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(slots, "blue")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "live")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "previous")));
    hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    ck_assert_int_eq(cJSON_GetArraySize(hist), 3);
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, 0), "time"), "2026-11-27T07:00:02Z");
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, 0), "version"), "1.0.0");
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, 1), "time"), "2026-11-27T07:01:02Z");
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, 1), "by"), "bob@ci");
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, 2), "action"), "lock.break");
    ck_assert_ptr_null(json_str(cJSON_GetArrayItem(hist, 2), "version"));
    cJSON_Delete(root);

    free(text);
    hoststate_free(back);
    hoststate_free(s);
}
END_TEST

static void swap(size_t *a, size_t *b)
{
    size_t t = *a;

    *a = *b;
    *b = t;
}

START_TEST(releases_are_kept_newest_first_whatever_the_order_added)
{
    static const char *const want[] = {"2.0.0",  "2.0.0-rc.1", "1.10.0",
                                       "v1.2.0", "1.0.0",      "build-5"};
    enum { N = N_ELEMS(want) };
    size_t perm[N], c[N] = {0}, i, k, orders = 0;
    struct hoststate *s;

    for (i = 0; i < N; i++)
        perm[i] = N - 1 - i;
    /* Every order of adding them (Heap's algorithm): 720 orders, one result. */
    for (i = 1;;) {
        s = hoststate_new("web1");
        for (k = 0; k < N; k++)
            add_version(s, want[perm[k]]);
        assert_order(s, want, N);
        hoststate_free(s);
        orders++;
        while (i < N && c[i] >= i)
            c[i++] = 0;
        if (i == N)
            break;
        swap(&perm[i % 2 == 0 ? 0 : c[i]], &perm[i]);
        c[i]++;
        i = 1;
    }
    ck_assert_uint_eq(orders, 720);
}
END_TEST

START_TEST(names_that_are_not_versions_come_after_all_versions)
{
    static const char *const want[] = {"0.0.1", "build-10", "build-5", "nightly"};
    struct hoststate *s = hoststate_new("web1");

    add_version(s, "build-5");
    add_version(s, "nightly");
    add_version(s, "0.0.1");
    add_version(s, "build-10");
    /* Versions by precedence, then the other names by name. */
    assert_order(s, want, N_ELEMS(want));
    hoststate_free(s);
}
END_TEST

START_TEST(adding_a_version_again_replaces_it)
{
    static const char *const want[] = {"3.0.0", "2.0.0", "1.0.0"};
    struct hs_release old = {"2.0.0", COMMIT_A, SHA_A, "2026-11-20T08:00:00Z", "alice@laptop"};
    struct hs_release new = {"2.0.0", COMMIT_B, SHA_B, "2026-11-27T07:00:00Z", "bob@ci"};
    struct hoststate *s = hoststate_new("web1");

    add_version(s, "1.0.0");
    hoststate_add_release(s, &old);
    add_version(s, "3.0.0");
    hoststate_add_release(s, &new);
    assert_order(s, want, N_ELEMS(want));
    assert_release(s, 1, "2.0.0", COMMIT_B, SHA_B, "2026-11-27T07:00:00Z", "bob@ci");

    /* Replaced by one that knows less: it knows less, and is still there once. */
    add_version(s, "2.0.0");
    assert_order(s, want, N_ELEMS(want));
    assert_release(s, 1, "2.0.0", "", "", "", "");
    hoststate_free(s);
}
END_TEST

START_TEST(removing_a_release)
{
    static const char *const after_middle[] = {"3.0.0", "1.0.0"};
    static const char *const after_all[] = {"1.0.0"};
    struct hoststate *s = hoststate_new("web1");

    add_version(s, "1.0.0");
    add_version(s, "2.0.0");
    add_version(s, "3.0.0");
    hoststate_remove_release(s, "2.0.0");
    assert_order(s, after_middle, N_ELEMS(after_middle));
    ck_assert_ptr_null(hoststate_find(s, "2.0.0"));

    /* Not there: nothing happens. */
    hoststate_remove_release(s, "2.0.0");
    hoststate_remove_release(s, "9.9.9");
    assert_order(s, after_middle, N_ELEMS(after_middle));

    hoststate_remove_release(s, "3.0.0");
    assert_order(s, after_all, N_ELEMS(after_all));
    hoststate_remove_release(s, "1.0.0");
    ck_assert_uint_eq(hoststate_nreleases(s), 0);
    ck_assert_ptr_null(hoststate_find(s, "1.0.0"));
    add_version(s, "4.0.0");
    ck_assert_str_eq(hoststate_release(s, 0)->version, "4.0.0");
    hoststate_free(s);
}
END_TEST

START_TEST(history_keeps_the_newest_entries)
{
    enum { N = HOSTSTATE_HISTORY_MAX + 50 };
    struct hoststate *s = hoststate_new("web1"), *back;
    char version[32], iso[32], *text, *text2;
    const cJSON *hist;
    cJSON *root;
    int i;

    for (i = 0; i < N; i++) {
        snprintf(version, sizeof version, "1.0.%d", i);
        hoststate_add_history(s, NOW + i, "release.push", version, "ci");
    }
    root = format_json(s, NOW);
    hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    ck_assert_int_eq(cJSON_GetArraySize(hist), HOSTSTATE_HISTORY_MAX);
    /* The oldest were dropped, the order kept. */
    for (i = 0; i < HOSTSTATE_HISTORY_MAX; i++) {
        const cJSON *h = cJSON_GetArrayItem(hist, i);

        snprintf(version, sizeof version, "1.0.%d", i + N - HOSTSTATE_HISTORY_MAX);
        hoststate_iso_time(NOW + i + N - HOSTSTATE_HISTORY_MAX, iso);
        ck_assert_str_eq(json_str(h, "version"), version);
        ck_assert_str_eq(json_str(h, "time"), iso);
    }
    cJSON_Delete(root);

    /* A full history survives a round trip, and the next entry still drops the oldest. */
    text = hoststate_format(s, NOW);
    back = parse_ok(text);
    text2 = hoststate_format(back, NOW);
    ck_assert_str_eq(text2, text);
    hoststate_add_history(back, NOW + N, "release.prune", "1.0.50", "ci");
    root = format_json(back, NOW);
    hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    ck_assert_int_eq(cJSON_GetArraySize(hist), HOSTSTATE_HISTORY_MAX);
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, 0), "version"), "1.0.51");
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, HOSTSTATE_HISTORY_MAX - 1), "action"),
                     "release.prune");
    cJSON_Delete(root);

    free(text);
    free(text2);
    hoststate_free(back);
    hoststate_free(s);
}
END_TEST

/* Parse exactly len bytes from a buffer of that size, with no NUL after it: a parser that reads
 * past the end is caught by ASan. */
static int parse_exact(const char *text, size_t len, struct hoststate **out, struct err *err)
{
    char *copy = xmalloc(len > 0 ? len : 1);
    int rc;

    memcpy(copy, text, len);
    rc = hoststate_parse("web1", copy, len, out, err);
    free(copy);
    return rc;
}

START_TEST(parse_refuses_what_is_not_a_state_file)
{
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "not JSON"},
        {"state", "not JSON"},
        {"<html>502 Bad Gateway</html>", "not JSON"},
        {"{\"version\": 1,}", "not JSON"},
        {"[{\"version\": 1}]", "not JSON"},
        {"\"version\"", "not JSON"},
        {"1", "not JSON"},
        {"null", "not JSON"},
        /* Exactly JSON: cJSON's parser read these as "1.0.0" and 1. */
        {"{\"version\": 1, \"releases\": [{\"version\": \"1.0.0\\u0000x\"}]}", "not JSON"},
        {"{\"version\": 01}", "not JSON"},
        {"{}", "not a version 1 state file"},
        {"{\"version\": 2, \"releases\": []}", "not a version 1 state file"},
        {"{\"version\": 0}", "not a version 1 state file"},
        {"{\"version\": 1.5}", "not a version 1 state file"},
        {"{\"version\": 1.000001}", "not a version 1 state file"},
        {"{\"version\": -1}", "not a version 1 state file"},
        {"{\"version\": \"1\"}", "not a version 1 state file"},
        {"{\"version\": true}", "not a version 1 state file"},
        {"{\"version\": null}", "not a version 1 state file"},
        {"{\"version\": [1]}", "not a version 1 state file"},
        {"{\"Version\": 1}", "not a version 1 state file"},
        {"{\"releases\": [{\"version\": \"1.0.0\"}]}", "not a version 1 state file"},
    };
    struct hoststate *s;
    struct err err;
    size_t i;

    for (i = 0; i < N_ELEMS(bad); i++) {
        s = NULL;
        err_clear(&err);
        ck_assert_msg(parse_exact(bad[i].text, strlen(bad[i].text), &s, &err) == -1, "accepted: %s",
                      bad[i].text);
        ck_assert_ptr_null(s);
        ck_assert_msg(strcmp(err.msg, bad[i].msg) == 0, "%s: \"%s\", expected \"%s\"", bad[i].text,
                      err.msg, bad[i].msg);
    }
}
END_TEST

START_TEST(parse_refuses_a_truncated_state_file)
{
    struct hoststate *s;
    struct err err;
    size_t len, end;

    /* Cut anywhere before its last '}', a state file is not JSON any more. */
    end = (size_t)(strrchr(full_state, '}') - full_state);
    for (len = 0; len < end + 1; len++) {
        s = NULL;
        err_clear(&err);
        ck_assert_msg(parse_exact(full_state, len, &s, &err) == -1, "accepted %zu bytes", len);
        ck_assert_ptr_null(s);
        ck_assert_str_eq(err.msg, "not JSON");
    }
    ck_assert_int_eq(parse_exact(full_state, end + 1, &s, &err), 0);
    assert_full_state(s);
    hoststate_free(s);
}
END_TEST

START_TEST(parse_never_accepts_a_version_name_that_is_not_safe_as_a_path)
{
    static const char *const unsafe[] = {
        "1.0.0;rm -rf /", "../x",  "..",   ".",   "a/b",     "/etc", "1.0.0/../../x", "-rf",
        ".hidden",        "$(id)", "`id`", "a b", "1.0.0\n", "",     "1.0.0'",
    };
    struct hoststate *s;
    struct buf text;
    char toolong[VERSION_NAME_MAX + 2];
    size_t i, k;

    memset(toolong, '1', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = '\0';
    for (i = 0; i <= N_ELEMS(unsafe); i++) {
        const char *name = i < N_ELEMS(unsafe) ? unsafe[i] : toolong;

        /* The name as a release, in both slots and as the rollback target, beside a good
         * release. */
        buf_init(&text);
        buf_adds(&text, "{\"version\": 1, \"releases\": [{\"version\": ");
        buf_add_json_string(&text, name, strlen(name));
        buf_adds(&text, ", \"commit\": \"" COMMIT_A "\"}, {\"version\": \"1.0.0\"}], "
                        "\"slots\": {\"blue\": {\"version\": ");
        buf_add_json_string(&text, name, strlen(name));
        buf_adds(&text, ", \"port\": 8001}, \"green\": {\"version\": ");
        buf_add_json_string(&text, name, strlen(name));
        buf_adds(&text, "}}, \"live\": \"blue\", \"previous\": {\"slot\": \"green\", "
                        "\"version\": ");
        buf_add_json_string(&text, name, strlen(name));
        buf_adds(&text, "}}");

        s = parse_ok(text.data);
        ck_assert_msg(hoststate_find(s, name) == NULL, "release \"%s\" accepted", name);
        ck_assert_uint_eq(hoststate_nreleases(s), 1);
        for (k = 0; k < hoststate_nreleases(s); k++)
            ck_assert_str_eq(hoststate_release(s, k)->version, "1.0.0");
        ck_assert_msg(hoststate_slot_version(s, HS_BLUE) == NULL, "slot \"%s\" accepted", name);
        ck_assert_msg(hoststate_slot_version(s, HS_GREEN) == NULL, "slot \"%s\" accepted", name);
        ck_assert_msg(hoststate_previous_version(s) == NULL, "previous \"%s\" accepted", name);
        ck_assert(!hoststate_in_use(s, name));
        hoststate_free(s);
        buf_done(&text);
    }
}
END_TEST

START_TEST(parse_ignores_members_of_the_wrong_type)
{
    static const char *const odd[] = {
        "{\"version\": 1, \"releases\": \"1.0.0\", \"slots\": [\"1.0.0\"], \"live\": 0,"
        " \"previous\": \"1.0.0\", \"history\": \"release.push\"}",
        "{\"version\": 1, \"releases\": null, \"slots\": null, \"live\": null,"
        " \"previous\": null, \"history\": null}",
        "{\"version\": 1, \"releases\": [1, \"1.0.0\", null, [\"1.0.0\"], {\"version\": 100},"
        " {\"commit\": \"" COMMIT_A
        "\"}], \"slots\": {\"blue\": \"1.0.0\", \"green\": {\"version\":"
        " 1}}, \"live\": \"purple\", \"previous\": {\"version\": [\"1.0.0\"]},"
        " \"history\": [1, null, {\"time\": 5}, {\"action\": 7}]}",
        "{\"version\": 1, \"live\": \"BLUE\", \"target\": 7, \"updated\": []}",
        "{\"version\": 1, \"live\": \"blue \"}",
    };
    struct hoststate *s;
    cJSON *root;
    size_t i;

    for (i = 0; i < N_ELEMS(odd); i++) {
        s = parse_ok(odd[i]);
        ck_assert_uint_eq(hoststate_nreleases(s), 0);
        ck_assert_ptr_null(hoststate_slot_version(s, HS_BLUE));
        ck_assert_ptr_null(hoststate_slot_version(s, HS_GREEN));
        ck_assert_msg(!hoststate_live(s, NULL), "live in %s", odd[i]);
        ck_assert_ptr_null(hoststate_previous_version(s));
        root = format_json(s, NOW);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "history")), 0);
        /* The target is the one asked for, not the file's. */
        ck_assert_str_eq(json_str(root, "target"), "web1");
        cJSON_Delete(root);
        hoststate_free(s);
    }

    /* Members of the wrong type inside a good release or slot are left out, the rest kept. */
    s = parse_ok("{\"version\": 1, \"releases\": [{\"version\": \"1.0.0\", \"commit\": 7,"
                 " \"sha256\": [], \"pushed\": null, \"by\": {}}],"
                 " \"slots\": {\"blue\": {\"version\": \"1.0.0\", \"port\": \"8001\"}}}");
    assert_release(s, 0, "1.0.0", "", "", "", "");
    ck_assert_str_eq(hoststate_slot_version(s, HS_BLUE), "1.0.0");
    ck_assert_int_eq(hoststate_slot_port(s, HS_BLUE), 0);
    hoststate_free(s);
}
END_TEST

START_TEST(parse_survives_oversized_input)
{
    enum { DEPTH = 100000, NREL = 5000 };
    struct hoststate *s = NULL;
    struct buf text;
    struct err err;
    size_t i;

    /* Nested far deeper than any state file: refused, not a stack overflow. */
    buf_init(&text);
    buf_adds(&text, "{\"version\": 1, \"releases\": ");
    for (i = 0; i < DEPTH; i++)
        buf_addc(&text, '[');
    for (i = 0; i < DEPTH; i++)
        buf_addc(&text, ']');
    buf_addc(&text, '}');
    ck_assert_int_eq(hoststate_parse("web1", text.data, text.len, &s, &err), -1);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(err.msg, "not JSON");
    buf_done(&text);

    /* Many releases, listed oldest first: up to the bound kept (the first listed), newest
     * first. */
    buf_init(&text);
    buf_adds(&text, "{\"version\": 1, \"releases\": [");
    for (i = 0; i < NREL; i++)
        buf_addf(&text, "%s{\"version\": \"1.%zu.0\"}", i > 0 ? "," : "", i);
    /* And a history three times the bound, oldest first, with entries that are not entries
     * among them. */
    buf_adds(&text, "], \"history\": [");
    for (i = 0; i < 3 * HOSTSTATE_HISTORY_MAX; i++)
        buf_addf(&text, "{\"action\": \"release.push\", \"version\": \"1.%zu.0\"}, 7, {}, ", i);
    buf_adds(&text, "null]}");
    ck_assert_uint_lt(text.len, HOSTSTATE_MAX_BYTES);
    s = parse_ok(text.data);
    ck_assert_uint_eq(hoststate_nreleases(s), HS_RELEASES_MAX);
    ck_assert_str_eq(hoststate_release(s, 0)->version, "1.999.0");
    ck_assert_str_eq(hoststate_release(s, HS_RELEASES_MAX - 1)->version, "1.0.0");
    {
        cJSON *root = format_json(s, NOW);

        const cJSON *hist = cJSON_GetObjectItemCaseSensitive(root, "history");
        char want[32];

        /* Cut to the bound, the newest kept. */
        ck_assert_int_eq(cJSON_GetArraySize(hist), HOSTSTATE_HISTORY_MAX);
        for (i = 0; i < HOSTSTATE_HISTORY_MAX; i++) {
            snprintf(want, sizeof want, "1.%zu.0", i + 2 * HOSTSTATE_HISTORY_MAX);
            ck_assert_str_eq(json_str(cJSON_GetArrayItem(hist, (int)i), "version"), want);
        }
        cJSON_Delete(root);
    }
    hoststate_free(s);
    buf_done(&text);

    /* A version name as long as allowed is kept. */
    {
        char name[VERSION_NAME_MAX + 1];
        char *json;

        memset(name, 'a', VERSION_NAME_MAX);
        name[VERSION_NAME_MAX] = '\0';
        json = xasprintf("{\"version\": 1, \"releases\": [{\"version\": \"%s\"}]}", name);
        s = parse_ok(json);
        ck_assert_ptr_nonnull(hoststate_find(s, name));
        hoststate_free(s);
        free(json);
    }
}
END_TEST

START_TEST(in_use_means_in_a_slot_or_the_rollback_target)
{
    struct hoststate *s = parse_ok(
        "{\"version\": 1, \"releases\": [{\"version\": \"3.0.0\"}, {\"version\": \"2.0.0\"},"
        " {\"version\": \"1.0.0\"}, {\"version\": \"0.9.0\"}, {\"version\": \"0.8.0\"}],"
        " \"slots\": {\"blue\": {\"version\": \"2.0.0\", \"port\": 8001},"
        " \"green\": {\"version\": \"1.0.0\", \"port\": 8002}},"
        " \"live\": \"blue\", \"previous\": {\"slot\": \"green\", \"version\": \"0.9.0\"}}");

    ck_assert(hoststate_in_use(s, "2.0.0"));  /* the live slot */
    ck_assert(hoststate_in_use(s, "1.0.0"));  /* the other slot */
    ck_assert(hoststate_in_use(s, "0.9.0"));  /* the rollback target */
    ck_assert(!hoststate_in_use(s, "3.0.0")); /* the newest, but in no slot */
    ck_assert(!hoststate_in_use(s, "0.8.0"));
    ck_assert(!hoststate_in_use(s, "7.7.7"));
    ck_assert(!hoststate_in_use(s, "2.0"));
    ck_assert(!hoststate_in_use(s, "v2.0.0"));

    /* A slot that is emptied or changes version frees its old one. */
    hoststate_set_slot(s, HS_GREEN, NULL, 0);
    ck_assert(!hoststate_in_use(s, "1.0.0"));
    ck_assert_ptr_null(hoststate_slot_version(s, HS_GREEN));
    hoststate_set_slot(s, HS_BLUE, "3.0.0", 8001);
    ck_assert(hoststate_in_use(s, "3.0.0"));
    ck_assert(!hoststate_in_use(s, "2.0.0"));
    ck_assert(hoststate_in_use(s, "0.9.0"));
    hoststate_free(s);

    s = hoststate_new("web1");
    add_version(s, "1.0.0");
    ck_assert(!hoststate_in_use(s, "1.0.0"));
    hoststate_free(s);
}
END_TEST

/* ---- rebuilding from the probe ---- */

START_TEST(from_probe_reads_releases_slots_and_the_live_slot)
{
    static const char probe[] = "release 1.0.0 commit=" COMMIT_A " sha256=" SHA_A "\n"
                                "release 2.0.0\n"
                                "release ../x\n"
                                "release 1.0.0;rm\n"
                                "release v1.1.0 commit=NOT-HEX sha256=" SHA_B "\n"
                                "release 1.2.0 commit= sha256=" SHA_B " extra=1\n"
                                "release -rf\n"
                                "\n"
                                "slot blue ../releases/1.0.0\n"
                                "slot green releases/2.0.0\n"
                                "slot purple ../releases/1.0.0\n"
                                "current slots/green\n"
                                "something else\n";
    static const char *const want[] = {"2.0.0", "1.2.0", "v1.1.0", "1.0.0"};
    static char untouched[] = "untouched";
    struct hoststate *s;
    char *warnings = NULL;
    enum hs_slot live;

    s = hoststate_from_probe("web1", probe, &warnings);
    assert_order(s, want, N_ELEMS(want));
    assert_release(s, 3, "1.0.0", COMMIT_A, SHA_A, "", "");
    assert_release(s, 0, "2.0.0", "", "", "", "");
    /* A value that is not lowercase hex is left out. */
    assert_release(s, 2, "v1.1.0", "", SHA_B, "", "");
    assert_release(s, 1, "1.2.0", "", SHA_B, "", "");
    ck_assert_str_eq(hoststate_slot_version(s, HS_BLUE), "1.0.0");
    ck_assert_str_eq(hoststate_slot_version(s, HS_GREEN), "2.0.0");
    ck_assert_int_eq(hoststate_slot_port(s, HS_BLUE), 0);
    ck_assert(hoststate_live(s, &live));
    ck_assert_int_eq(live, HS_GREEN);
    ck_assert_ptr_null(hoststate_previous_version(s));

    ck_assert_ptr_nonnull(warnings);
    ck_assert_ptr_nonnull(strstr(warnings, "releases/../x is not a valid version name: skipped"));
    ck_assert_ptr_nonnull(
        strstr(warnings, "releases/1.0.0;rm is not a valid version name: skipped"));
    ck_assert_ptr_nonnull(strstr(warnings, "releases/-rf is not a valid version name: skipped"));
    ck_assert_ptr_null(hoststate_find(s, "../x"));
    ck_assert_ptr_null(hoststate_find(s, "1.0.0;rm"));
    free(warnings);
    hoststate_free(s);

    /* Nothing wrong: no warnings. NULL for warnings is allowed. */
    warnings = untouched;
    s = hoststate_from_probe("web1", "release 1.0.0\nslot blue ../releases/1.0.0\n", &warnings);
    ck_assert_ptr_null(warnings);
    ck_assert_uint_eq(hoststate_nreleases(s), 1);
    ck_assert(!hoststate_live(s, NULL));
    hoststate_free(s);
    s = hoststate_from_probe("web1", "release ../x\n", NULL);
    ck_assert_uint_eq(hoststate_nreleases(s), 0);
    hoststate_free(s);

    /* An empty deploy path: an empty state. */
    s = hoststate_from_probe("web1", "", &warnings);
    ck_assert_ptr_null(warnings);
    ck_assert_uint_eq(hoststate_nreleases(s), 0);
    ck_assert(!hoststate_live(s, NULL));
    hoststate_free(s);
}
END_TEST

START_TEST(from_probe_never_takes_an_unsafe_slot_target)
{
    struct hoststate *s = hoststate_from_probe("web1",
                                               "slot blue ../releases/..\n"
                                               "slot green ../releases/$(id)\n"
                                               "current ../../etc\n",
                                               NULL);

    ck_assert_ptr_null(hoststate_slot_version(s, HS_BLUE));
    ck_assert_ptr_null(hoststate_slot_version(s, HS_GREEN));
    ck_assert(!hoststate_live(s, NULL));
    hoststate_free(s);
}
END_TEST

START_TEST(reconcile_makes_the_releases_what_is_on_disk)
{
    static const char *const want[] = {"3.0.0", "1.0.0"};
    struct hs_release kept = {"1.0.0", COMMIT_A, SHA_A, "2026-11-20T08:00:00Z", "alice@laptop"};
    struct hoststate *s = hoststate_new("web1"), *disk;
    struct buf warn;

    hoststate_add_release(s, &kept);
    add_version(s, "2.0.0");
    disk = hoststate_from_probe("web1",
                                "release 1.0.0\n"
                                "release 3.0.0 commit=" COMMIT_B " sha256=" SHA_B "\n",
                                NULL);
    buf_init(&warn);
    hoststate_reconcile(s, disk, &warn);
    assert_order(s, want, N_ELEMS(want));
    /* What state.json knew about a release still there is kept. */
    assert_release(s, 1, "1.0.0", COMMIT_A, SHA_A, "2026-11-20T08:00:00Z", "alice@laptop");
    assert_release(s, 0, "3.0.0", COMMIT_B, SHA_B, "", "");
    ck_assert_ptr_nonnull(
        strstr(warn.data, "releases/2.0.0 is in state.json but not on disk: dropped it"));
    ck_assert_ptr_nonnull(
        strstr(warn.data, "releases/3.0.0 is on disk but not in state.json: added it"));
    ck_assert_ptr_null(strstr(warn.data, "1.0.0"));
    /* ... and remembered, for the record a change writes of it. */
    {
        cJSON *detail = cJSON_CreateObject();
        char *text;

        ck_assert_uint_eq(hoststate_drift(s, NULL), 2);
        ck_assert_uint_eq(hoststate_drift(s, detail), 2);
        text = cJSON_PrintUnformatted(detail);
        ck_assert_str_eq(text, "{\"added\":[\"3.0.0\"],\"removed\":[\"2.0.0\"]}");
        cJSON_free(text);
        cJSON_Delete(detail);
    }

    /* Once they agree, nothing more to say. */
    buf_reset(&warn);
    hoststate_reconcile(s, disk, &warn);
    ck_assert_uint_eq(warn.len, 0);
    ck_assert_uint_eq(hoststate_drift(s, NULL), 2);
    assert_order(s, want, N_ELEMS(want));
    buf_done(&warn);
    hoststate_free(disk);

    /* Nothing on disk: everything dropped, each one named. */
    disk = hoststate_from_probe("web1", "", NULL);
    buf_init(&warn);
    hoststate_reconcile(s, disk, &warn);
    ck_assert_uint_eq(hoststate_nreleases(s), 0);
    ck_assert_ptr_nonnull(strstr(warn.data, "releases/3.0.0 is in state.json but not on disk"));
    ck_assert_ptr_nonnull(strstr(warn.data, "releases/1.0.0 is in state.json but not on disk"));
    buf_done(&warn);
    hoststate_free(disk);
    hoststate_free(s);
}
END_TEST

START_TEST(reconcile_takes_the_links_and_remembers_them)
{
    struct hoststate *s = hoststate_new("web1"), *disk;
    cJSON *detail = cJSON_CreateObject();
    struct buf warn;
    char *text;

    add_version(s, "1.0.0");
    add_version(s, "2.0.0");
    hoststate_set_slot(s, HS_BLUE, "1.0.0", 8001);
    disk = hoststate_from_probe("web1",
                                "release 1.0.0\nrelease 2.0.0\n"
                                "slot blue ../releases/2.0.0\ncurrent slots/blue\n",
                                NULL);
    buf_init(&warn);
    hoststate_reconcile(s, disk, &warn);
    ck_assert_str_eq(hoststate_slot_version(s, HS_BLUE), "2.0.0");
    ck_assert_uint_eq(hoststate_drift(s, detail), 2);
    text = cJSON_PrintUnformatted(detail);
    ck_assert_str_eq(text, "{\"added\":[],\"removed\":[],\"links\":[\"slots/blue -> "
                           "releases/2.0.0\",\"current -> slots/blue\"]}");
    cJSON_free(text);
    cJSON_Delete(detail);
    buf_done(&warn);
    hoststate_free(disk);
    hoststate_free(s);

    /* A state that matches the disk has nothing to record. */
    s = hoststate_new("web1");
    add_version(s, "1.0.0");
    disk = hoststate_from_probe("web1", "release 1.0.0\n", NULL);
    buf_init(&warn);
    hoststate_reconcile(s, disk, &warn);
    ck_assert_uint_eq(hoststate_drift(s, NULL), 0);
    buf_done(&warn);
    hoststate_free(disk);
    hoststate_free(s);
}
END_TEST

/* A deploy path as a push leaves it: two releases (one without REVISION), a half-unpacked
 * one, a file and a directory whose name is not a version, blue holding 1.0.0 and live. */
static void make_deploy_tree(const char *dp)
{
    char *p;

    mkdir_ok(dp);
    p = path_join(dp, "releases");
    mkdir_ok(p);
    free(p);
    p = path_join(dp, "releases/1.0.0");
    mkdir_ok(p);
    free(p);
    p = path_join(dp, "releases/1.0.0/REVISION");
    tu_write_file(p, "version 1.0.0\ncommit " COMMIT_A "\nsha256 " SHA_A "\n");
    free(p);
    p = path_join(dp, "releases/2.0.0");
    mkdir_ok(p);
    free(p);
    p = path_join(dp, "releases/.n3tmp-abc");
    mkdir_ok(p);
    free(p);
    p = path_join(dp, "releases/.n3tmp-abc/REVISION");
    tu_write_file(p, "version 9.9.9\ncommit " COMMIT_B "\nsha256 " SHA_B "\n");
    free(p);
    p = path_join(dp, "releases/bad;name");
    mkdir_ok(p);
    free(p);
    p = path_join(dp, "releases/3.0.0.tar.gz");
    tu_write_file(p, "not a directory\n");
    free(p);
    p = path_join(dp, "slots");
    mkdir_ok(p);
    free(p);
    p = path_join(dp, "slots/blue");
    ck_assert_int_eq(symlink("../releases/1.0.0", p), 0);
    free(p);
    p = path_join(dp, "current");
    ck_assert_int_eq(symlink("slots/blue", p), 0);
    free(p);
}

static void probe_deploy_tree(const char *dp)
{
    static const char *const want[] = {"2.0.0", "1.0.0"};
    struct hoststate *s;
    char *out, *warnings = NULL;
    enum hs_slot live;
    struct buf cmd;

    buf_init(&cmd);
    hoststate_probe_command(dp, &cmd);
    out = run_sh(cmd.data);
    s = hoststate_from_probe("web1", out, &warnings);
    ck_assert_msg(hoststate_nreleases(s) == N_ELEMS(want), "%s: probe said:\n%s", dp, out);
    assert_order(s, want, N_ELEMS(want));
    assert_release(s, 1, "1.0.0", COMMIT_A, SHA_A, "", "");
    assert_release(s, 0, "2.0.0", "", "", "", "");
    ck_assert_ptr_null(hoststate_find(s, "9.9.9"));
    ck_assert_ptr_null(hoststate_find(s, ".n3tmp-abc"));
    ck_assert_ptr_null(strstr(out, "n3tmp"));
    ck_assert_ptr_null(strstr(out, "tar.gz"));
    ck_assert_str_eq(hoststate_slot_version(s, HS_BLUE), "1.0.0");
    ck_assert_ptr_null(hoststate_slot_version(s, HS_GREEN));
    ck_assert(hoststate_live(s, &live));
    ck_assert_int_eq(live, HS_BLUE);
    ck_assert(hoststate_in_use(s, "1.0.0"));
    ck_assert(!hoststate_in_use(s, "2.0.0"));
    ck_assert_msg(
        warnings != NULL &&
            strstr(warnings, "releases/bad?name is not a valid version name (? stands for"),
        "warnings: %s", warnings != NULL ? warnings : "(none)");
    free(warnings);
    free(out);
    hoststate_free(s);
    buf_done(&cmd);
}

START_TEST(the_probe_lists_a_real_deploy_path)
{
    char *tmp = tu_mkdtemp(), *dp = path_join(tmp, "app");

    make_deploy_tree(dp);
    probe_deploy_tree(dp);
    free(dp);
    tu_rmdir_r(tmp);
    free(tmp);
}
END_TEST

START_TEST(the_probe_quotes_the_deploy_path)
{
    char *tmp = tu_mkdtemp(), *dp = path_join(tmp, "my app's $(touch pwned) `id`; dir");
    char *pwned = path_join(tmp, "pwned");

    make_deploy_tree(dp);
    probe_deploy_tree(dp);
    ck_assert_int_eq(access(pwned, F_OK), -1);
    free(pwned);
    free(dp);
    tu_rmdir_r(tmp);
    free(tmp);
}
END_TEST

START_TEST(the_probe_of_a_missing_or_empty_deploy_path_is_empty)
{
    char *tmp = tu_mkdtemp(), *missing = path_join(tmp, "nothing here");
    char *out, *releases = path_join(tmp, "releases");
    struct hoststate *s;
    struct buf cmd;

    /* Not there (a first push): no output, exit 0. */
    buf_init(&cmd);
    hoststate_probe_command(missing, &cmd);
    out = run_sh(cmd.data);
    ck_assert_str_eq(out, "");
    free(out);
    buf_done(&cmd);

    /* There, with an empty releases/ and no links: no release, no slot, nothing live. */
    mkdir_ok(releases);
    buf_init(&cmd);
    hoststate_probe_command(tmp, &cmd);
    out = run_sh(cmd.data);
    ck_assert_str_eq(out, "");
    s = hoststate_from_probe("web1", out, NULL);
    ck_assert_uint_eq(hoststate_nreleases(s), 0);
    ck_assert(!hoststate_live(s, NULL));
    hoststate_free(s);
    free(out);
    buf_done(&cmd);

    free(releases);
    free(missing);
    tu_rmdir_r(tmp);
    free(tmp);
}
END_TEST

/* A REVISION that is not n3ctl's three lines (here 200 KB more, as one line; and a symlink to
 * such a file): a prefix of it is read, what it says is taken, and that it was cut is said. */
/* dir/rel made: a directory, or a file holding text. */
static void put(const char *dir, const char *rel, const char *text)
{
    char *p = path_join(dir, rel);

    if (text == NULL)
        mkdir_ok(p);
    else
        tu_write_file(p, text);
    free(p);
}

START_TEST(the_probe_reads_a_bounded_prefix_of_revision)
{
    char *tmp = tu_mkdtemp(), *out, *warnings = NULL, *p, *big;
    struct hoststate *s;
    struct buf cmd, text;
    size_t i;

    buf_init(&text);
    buf_adds(&text, "version 1.0.0\ncommit " COMMIT_A "\nsha256 " SHA_A "\n");
    for (i = 0; i < 200 * 1024; i++)
        buf_addc(&text, 'x');
    put(tmp, "releases", NULL);
    put(tmp, "releases/1.0.0", NULL);
    put(tmp, "releases/1.0.0/REVISION", text.data);
    put(tmp, "releases/2.0.0", NULL);
    put(tmp, "big", text.data);
    big = path_join(tmp, "big");
    p = path_join(tmp, "releases/2.0.0/REVISION");
    ck_assert_int_eq(symlink(big, p), 0);
    free(p);
    put(tmp, "releases/3.0.0", NULL);
    /* n3ctl's own: not cut */
    put(tmp, "releases/3.0.0/REVISION", "version 3.0.0\ncommit " COMMIT_B "\nsha256 " SHA_B "\n");

    buf_init(&cmd);
    hoststate_probe_command(tmp, &cmd);
    out = run_sh(cmd.data);
    ck_assert_msg(strlen(out) < 4096, "the probe printed %zu bytes", strlen(out));
    s = hoststate_from_probe("web1", out, &warnings);
    ck_assert_uint_eq(hoststate_nreleases(s), 3);
    assert_release(s, 2, "1.0.0", COMMIT_A, SHA_A, "", "");
    assert_release(s, 1, "2.0.0", COMMIT_A, SHA_A, "", "");
    assert_release(s, 0, "3.0.0", COMMIT_B, SHA_B, "", "");
    ck_assert_msg(warnings != NULL &&
                      strstr(warnings, "releases/1.0.0/REVISION is larger than 4096 bytes") &&
                      strstr(warnings, "releases/2.0.0/REVISION is larger than 4096 bytes") &&
                      !strstr(warnings, "releases/3.0.0"),
                  "warnings: %s", warnings != NULL ? warnings : "(none)");
    free(warnings);
    hoststate_free(s);
    free(out);
    buf_done(&cmd);
    buf_done(&text);
    free(big);
    tu_rmdir_r(tmp);
    free(tmp);
}
END_TEST

/* ---- hooks ---- */

static char *expand_ok(const char *hook, const char *tmpl, const struct hook_vars *v)
{
    struct buf out;
    struct err err = {""};
    char *s;

    buf_init(&out);
    ck_assert_msg(hook_expand(hook, tmpl, v, &out, &err) == 0, "%s: %s", tmpl, err.msg);
    s = buf_detach(&out, NULL);
    buf_done(&out);
    return s;
}

static void expand_fails(const char *hook, const char *tmpl, const struct hook_vars *v,
                         const char *msg)
{
    struct buf out;
    struct err err = {""};

    buf_init(&out);
    ck_assert_msg(hook_expand(hook, tmpl, v, &out, &err) == -1, "%s accepted", tmpl);
    ck_assert_str_eq(err.msg, msg);
    buf_done(&out);
}

START_TEST(hook_variables_are_quoted)
{
    struct hook_vars v = {.version = "v1.2.3",
                          .release_dir = "/srv/app/releases/v1.2.3",
                          .slot = "blue",
                          .port = "8001",
                          .target = "web1"};
    char *s;

    s = expand_ok("before_start",
                  "./bin/migrate --version {version} --dir {release_dir} {slot}:{port} "
                  "--host={target}",
                  &v);
    ck_assert_str_eq(s, "./bin/migrate --version 'v1.2.3' --dir '/srv/app/releases/v1.2.3' "
                        "'blue':'8001' --host='web1'");
    free(s);

    s = expand_ok("build", "make", &v);
    ck_assert_str_eq(s, "make");
    free(s);
    s = expand_ok("build", "", &v);
    ck_assert_str_eq(s, "");
    free(s);
    s = expand_ok("build", "{version}{version}", &v);
    ck_assert_str_eq(s, "'v1.2.3''v1.2.3'");
    free(s);

    /* A value is inserted once: braces in it are not expanded again. */
    v.version = "{target}";
    s = expand_ok("build", "echo {version}", &v);
    ck_assert_str_eq(s, "echo '{target}'");
    free(s);
}
END_TEST

START_TEST(hook_double_braces_are_literal_braces)
{
    struct hook_vars v = {.version = "1.0.0"};
    char *s;

    s = expand_ok("build", "awk '{{print $1}}' {version}", &v);
    ck_assert_str_eq(s, "awk '{print $1}' '1.0.0'");
    free(s);
    s = expand_ok("build", "{{version}}", &v);
    ck_assert_str_eq(s, "{version}");
    free(s);
    s = expand_ok("build", "{{{version}}}", &v);
    ck_assert_str_eq(s, "{'1.0.0'}");
    free(s);
    s = expand_ok("build", "f() {{ echo {version}; }}; f", &v);
    ck_assert_str_eq(s, "f() { echo '1.0.0'; }; f");
    free(s);
    /* A lone closing brace needs no doubling. */
    s = expand_ok("build", "echo }", &v);
    ck_assert_str_eq(s, "echo }");
    free(s);
}
END_TEST

START_TEST(hook_errors_name_the_hook_and_the_variable)
{
    struct hook_vars v = {.version = "1.0.0", .target = "web1"};

    expand_fails("after_unpack", "systemctl restart app@{slot}", &v,
                 "hook after_unpack: {slot} has no value when this hook runs");
    expand_fails("before_start", "./run --port {port}", &v,
                 "hook before_start: {port} has no value when this hook runs");
    expand_fails("after_switch", "cd {release_dir}", &v,
                 "hook after_switch: {release_dir} has no value when this hook runs");
    expand_fails("build", "echo {}", &v, "hook build: {} has no value when this hook runs");
    expand_fails("build", "echo {versoin}", &v,
                 "hook build: {versoin} has no value when this hook runs");
    expand_fails("build", "echo {version", &v,
                 "hook build: \"{\" is not closed (write {{ for a brace)");
    expand_fails("build", "awk '{print $1'", &v,
                 "hook build: \"{\" is not closed (write {{ for a brace)");
    expand_fails("build", "{", &v, "hook build: \"{\" is not closed (write {{ for a brace)");
}
END_TEST

START_TEST(hook_release_dir_expr_is_inserted_as_it_is)
{
    struct hook_vars v = {.version = "1.0.0", .release_dir_expr = "\"$PWD\"", .target = "web1"};
    char *tmp = tu_mkdtemp(), *dir = path_join(tmp, "it's a dir"), *s, *out, *want;
    struct err err;
    struct buf cmd;

    s = expand_ok("after_unpack", "cd {release_dir} && ls {release_dir}/bin", &v);
    ck_assert_str_eq(s, "cd \"$PWD\" && ls \"$PWD\"/bin");
    free(s);

    /* It wins over release_dir's value. */
    v.release_dir = "/srv/app/releases/1.0.0";
    s = expand_ok("after_unpack", "echo {release_dir}", &v);
    ck_assert_str_eq(s, "echo \"$PWD\"");
    free(s);
    v.release_dir_expr = NULL;
    s = expand_ok("after_unpack", "echo {release_dir}", &v);
    ck_assert_str_eq(s, "echo '/srv/app/releases/1.0.0'");
    free(s);

    /* The shell evaluates it: the directory the hook runs in, whatever its name. */
    v.release_dir_expr = "\"$PWD\"";
    mkdir_ok(dir);
    buf_init(&cmd);
    shell_cmdf(&cmd, "cd %s && ", dir);
    ck_assert_int_eq(
        hook_expand("after_unpack", "printf '%s|%s\\n' {release_dir} {version}", &v, &cmd, &err),
        0);
    out = run_sh(cmd.data);
    want = xasprintf("%s|1.0.0\n", dir);
    ck_assert_str_eq(out, want);
    free(want);
    free(out);
    buf_done(&cmd);

    free(dir);
    tu_rmdir_r(tmp);
    free(tmp);
}
END_TEST

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

START_TEST(hostile_values_reach_the_shell_as_data)
{
    static const char *const hostile[] = {
        "a b",
        "$(touch X)",
        "'",
        "`id`",
        "; rm",
        "`touch Y`",
        "'; touch Z; '",
        "\"; touch W; \"",
        "$(touch V)",
        "a\nb; touch N",
        "*",
        "~",
        "\\",
        "\\'",
        "''",
        "",
        "--",
        "$((6*7))",
        "${PATH}",
        "!!",
        "|| touch O",
        "> F",
        "& touch B &",
        "{version}",
        "\xc3\xa9t\xc3\xa9",
    };
    char *tmp = tu_mkdtemp(), *marker = path_join(tmp, "marker");
    size_t i;

    /* One file, so an unquoted * would print its name. */
    tu_write_file(marker, "");
    for (i = 0; i < N_ELEMS(hostile); i++) {
        struct hook_vars v = {.version = hostile[i],
                              .release_dir = hostile[i],
                              .slot = hostile[i],
                              .port = hostile[i],
                              .target = hostile[i]};
        struct err err;
        struct buf cmd;
        char *out, *want;

        buf_init(&cmd);
        shell_cmdf(&cmd, "cd %s && ", tmp);
        ck_assert_int_eq(hook_expand("before_start",
                                     "printf '[%s]\\n' {version} {release_dir} {slot} {port} "
                                     "{target}",
                                     &v, &cmd, &err),
                         0);
        out = run_sh(cmd.data);
        want = xasprintf("[%s]\n[%s]\n[%s]\n[%s]\n[%s]\n", hostile[i], hostile[i], hostile[i],
                         hostile[i], hostile[i]);
        ck_assert_msg(strcmp(out, want) == 0, "value \"%s\" came back as \"%s\"", hostile[i], out);
        free(want);
        free(out);
        buf_done(&cmd);
    }
    /* Nothing ran: the marker is still the only file. */
    ck_assert_uint_eq(count_entries(tmp), 1);
    free(marker);
    tu_rmdir_r(tmp);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hoststate");
    TCase *t = tcase_create("hoststate");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, a_state_file_round_trips_every_field);
    tcase_add_test(t, a_state_built_in_memory_round_trips);
    tcase_add_test(t, releases_are_kept_newest_first_whatever_the_order_added);
    tcase_add_test(t, names_that_are_not_versions_come_after_all_versions);
    tcase_add_test(t, adding_a_version_again_replaces_it);
    tcase_add_test(t, removing_a_release);
    tcase_add_test(t, history_keeps_the_newest_entries);
    tcase_add_test(t, parse_refuses_what_is_not_a_state_file);
    tcase_add_test(t, parse_refuses_a_truncated_state_file);
    tcase_add_test(t, parse_never_accepts_a_version_name_that_is_not_safe_as_a_path);
    tcase_add_test(t, parse_ignores_members_of_the_wrong_type);
    tcase_add_test(t, parse_survives_oversized_input);
    tcase_add_test(t, in_use_means_in_a_slot_or_the_rollback_target);
    tcase_add_test(t, from_probe_reads_releases_slots_and_the_live_slot);
    tcase_add_test(t, from_probe_never_takes_an_unsafe_slot_target);
    tcase_add_test(t, reconcile_makes_the_releases_what_is_on_disk);
    tcase_add_test(t, reconcile_takes_the_links_and_remembers_them);
    tcase_add_test(t, the_probe_lists_a_real_deploy_path);
    tcase_add_test(t, the_probe_quotes_the_deploy_path);
    tcase_add_test(t, the_probe_of_a_missing_or_empty_deploy_path_is_empty);
    tcase_add_test(t, the_probe_reads_a_bounded_prefix_of_revision);
    tcase_add_test(t, hook_variables_are_quoted);
    tcase_add_test(t, hook_double_braces_are_literal_braces);
    tcase_add_test(t, hook_errors_name_the_hook_and_the_variable);
    tcase_add_test(t, hook_release_dir_expr_is_inserted_as_it_is);
    tcase_add_test(t, hostile_values_reach_the_shell_as_data);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
