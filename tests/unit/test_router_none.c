/*
 * The none router (plugins/router_none.c) on two local targets with real deploy paths: a read
 * is where each current link points (100 for that slot, 0 for the other); a set of 0/100
 * points current to the other slot where it differs (and leaves the other target's link as it
 * was: the same link, not a new one); 90/10, 0/0 and 50/0 are refused before any link moves,
 * naming the target and why; a target with no current yet reads 0/0, keeps it, or gets one;
 * a current that is not a slot is an error that says so; a drain changes nothing.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/router.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"
#include "tests/unit/testutil.h"
#include "tests/unit/tu_router.h"

#define WAIT_MS 20000
#define NT      2

struct fx {
    struct loop *loop;
    char *dir, *dp[NT];
    struct transport *t[NT];
    struct router_server servers[NT * 2];
    cJSON *config;
    const struct router_kind *kind;
    struct router *r;
};

static void mkdirs(const char *dp)
{
    char *p;

    ck_assert_int_eq(mkdir(dp, 0755), 0);
    p = xasprintf("%s/releases", dp);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    free(p);
    p = xasprintf("%s/releases/v1", dp);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    free(p);
    p = xasprintf("%s/releases/v2", dp);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    free(p);
    p = xasprintf("%s/slots", dp);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    free(p);
    p = xasprintf("%s/slots/blue", dp);
    ck_assert_int_eq(symlink("../releases/v1", p), 0);
    free(p);
    p = xasprintf("%s/slots/green", dp);
    ck_assert_int_eq(symlink("../releases/v2", p), 0);
    free(p);
}

/* Point target k's current to dest (NULL: none). */
static void set_current(struct fx *f, int k, const char *dest)
{
    char *p = xasprintf("%s/current", f->dp[k]);

    unlink(p);
    if (dest != NULL)
        ck_assert_int_eq(symlink(dest, p), 0);
    free(p);
}

/* Where target k's current points ("" when there is none). */
static char *current(struct fx *f, int k)
{
    char *p = xasprintf("%s/current", f->dp[k]), buf[256];
    ssize_t n = readlink(p, buf, sizeof buf - 1);

    free(p);
    buf[n > 0 ? n : 0] = '\0';
    return xstrdup(buf);
}

static ino_t current_ino(struct fx *f, int k)
{
    char *p = xasprintf("%s/current", f->dp[k]);
    struct stat st;

    ck_assert_int_eq(lstat(p, &st), 0);
    free(p);
    return st.st_ino;
}

static void fx_init(struct fx *f)
{
    struct router_ctx ctx;
    struct err err;
    int k, s;

    memset(f, 0, sizeof *f);
    plugins_register_builtins();
    f->loop = loop_new();
    f->dir = tu_mkdtemp();
    for (k = 0; k < NT; k++) {
        char name[8];

        snprintf(name, sizeof name, "t%d", k + 1);
        f->dp[k] = xasprintf("%s/%s", f->dir, name);
        mkdirs(f->dp[k]);
        f->t[k] = transport_local_new(f->loop, name);
        for (s = 0; s < 2; s++) {
            struct router_server *rs = &f->servers[k * 2 + s];

            snprintf(rs->target, sizeof rs->target, "%s", name);
            rs->slot = (enum hs_slot)s;
            router_server_name(NULL, name, rs->slot, rs->name, sizeof rs->name);
            snprintf(rs->host, sizeof rs->host, "127.0.0.1");
            rs->port = 8001 + (unsigned)s;
            rs->t = f->t[k];
            rs->deploy_path = f->dp[k];
        }
    }
    set_current(f, 0, "slots/blue");
    set_current(f, 1, "slots/green");
    f->config = cJSON_CreateObject();
    cJSON_AddStringToObject(f->config, "type", "none");
    f->kind = router_kind_find("none");
    ck_assert_ptr_nonnull(f->kind);
    memset(&ctx, 0, sizeof ctx);
    ctx.loop = f->loop;
    ctx.config = f->config;
    ctx.servers = f->servers;
    ctx.nservers = NT * 2;
    f->r = f->kind->open(&ctx, &err);
    ck_assert_msg(f->r != NULL, "%s", err.msg);
}

static void fx_done(struct fx *f)
{
    int k;

    f->kind->close(f->r);
    for (k = 0; k < NT; k++) {
        transport_free(f->t[k]);
        free(f->dp[k]);
    }
    cJSON_Delete(f->config);
    tu_rmdir_r(f->dir);
    free(f->dir);
    loop_free(f->loop);
}

static void do_read(struct fx *f, struct tu_answer *a)
{
    memset(a, 0, sizeof *a);
    f->kind->read(f->r, tu_answer_cb, a);
    ck_assert(!a->done);
    ck_assert(tu_run_until(f->loop, tu_answered, a, WAIT_MS));
}

static void do_set(struct fx *f, const unsigned w[NT * 2], struct tu_answer *a)
{
    memset(a, 0, sizeof *a);
    f->kind->set_weights(f->r, w, tu_answer_cb, a);
    ck_assert(!a->done);
    ck_assert(tu_run_until(f->loop, tu_answered, a, WAIT_MS));
}

/* The view's weights, "100 0 0 100". */
static void expect_weights(const struct tu_answer *a, const char *want)
{
    char got[64] = "";
    size_t i, n = 0;

    ck_assert_msg(a->rc == 0, "%s", a->msg);
    for (i = 0; i < a->v->n; i++) {
        ck_assert(a->v->servers[i].found);
        ck_assert_str_eq(a->v->servers[i].state, "ready");
        n += (size_t)snprintf(got + n, sizeof got - n, "%s%u", i ? " " : "",
                              a->v->servers[i].weight);
    }
    ck_assert_str_eq(got, want);
}

static void expect_current(struct fx *f, int k, const char *want)
{
    char *got = current(f, k);

    ck_assert_msg(strcmp(got, want) == 0, "t%d's current -> %s, not %s", k + 1, got, want);
    free(got);
}

START_TEST(read_is_current)
{
    struct fx f;
    struct tu_answer a;

    fx_init(&f);
    do_read(&f, &a);
    expect_weights(&a, "100 0 0 100");
    ck_assert(a.v->servers[0].up);
    ck_assert(!a.v->servers[1].up);
    router_view_free(a.v);
    /* Read from the disk each time: a link moved by someone else shows. */
    set_current(&f, 0, "slots/green/");
    do_read(&f, &a);
    expect_weights(&a, "0 100 0 100");
    router_view_free(a.v);
    fx_done(&f);
}
END_TEST

START_TEST(set_moves_current)
{
    struct fx f;
    struct tu_answer a;
    const unsigned all_green[] = {0, 100, 0, 100}, back[] = {100, 0, 0, 100};
    ino_t t2_before;

    fx_init(&f);
    t2_before = current_ino(&f, 1);
    do_set(&f, all_green, &a);
    expect_weights(&a, "0 100 0 100");
    router_view_free(a.v);
    expect_current(&f, 0, "slots/green");
    expect_current(&f, 1, "slots/green");
    /* t2 was where it was asked to be: its link was not touched. */
    ck_assert(current_ino(&f, 1) == t2_before);
    do_set(&f, back, &a);
    expect_weights(&a, "100 0 0 100");
    router_view_free(a.v);
    expect_current(&f, 0, "slots/blue");
    fx_done(&f);
}
END_TEST

START_TEST(weights_refused)
{
    struct fx f;
    struct tu_answer a;
    const unsigned split[] = {90, 10, 100, 0}, none[] = {0, 0, 0, 100}, half[] = {100, 0, 50, 0};

    fx_init(&f);
    /* t2's 100/0 would be a move; nothing moves when one target is refused. */
    do_set(&f, split, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "router none cannot split t1's traffic (asked blue 90, green 10): "
                                "each target serves from one slot; use haproxy or nginx for "
                                "weights; nothing was changed") != NULL,
                  "%s", a.msg);
    ck_assert_ptr_null(a.v);
    expect_current(&f, 0, "slots/blue");
    expect_current(&f, 1, "slots/green");
    do_set(&f, none, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "router none cannot take all of t1's traffic away (asked blue 0, "
                                "green 0)") != NULL,
                  "%s", a.msg);
    do_set(&f, half, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg, "router none gives t2's traffic to one slot, all of it (asked "
                                "blue 50, green 0)") != NULL,
                  "%s", a.msg);
    expect_current(&f, 1, "slots/green");
    fx_done(&f);
}
END_TEST

START_TEST(no_current_yet)
{
    struct fx f;
    struct tu_answer a;
    const unsigned as_is[] = {100, 0, 0, 0}, first[] = {100, 0, 100, 0};

    fx_init(&f);
    set_current(&f, 1, NULL);
    do_read(&f, &a);
    expect_weights(&a, "100 0 0 0");
    router_view_free(a.v);
    do_set(&f, as_is, &a);
    expect_weights(&a, "100 0 0 0");
    router_view_free(a.v);
    do_set(&f, first, &a);
    expect_weights(&a, "100 0 100 0");
    router_view_free(a.v);
    expect_current(&f, 1, "slots/blue");
    fx_done(&f);
}
END_TEST

START_TEST(current_not_a_slot)
{
    struct fx f;
    struct tu_answer a;

    fx_init(&f);
    set_current(&f, 1, "releases/v1");
    do_read(&f, &a);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_msg(strstr(a.msg,
                         "t2's current points to releases/v1, not to a slot (slots/blue "
                         "or slots/green): router none cannot tell which slot serves") != NULL,
                  "%s", a.msg);
    fx_done(&f);
}
END_TEST

START_TEST(drain_changes_nothing)
{
    struct fx f;
    struct tu_answer a;
    ino_t before;

    fx_init(&f);
    before = current_ino(&f, 0);
    memset(&a, 0, sizeof a);
    f.kind->drain(f.r, 0, tu_answer_cb, &a);
    ck_assert(tu_run_until(f.loop, tu_answered, &a, WAIT_MS));
    expect_weights(&a, "100 0 0 100");
    router_view_free(a.v);
    ck_assert(current_ino(&f, 0) == before);
    fx_done(&f);
}
END_TEST

START_TEST(needs_the_targets)
{
    struct fx f;
    struct router_ctx ctx;
    struct err err;

    fx_init(&f);
    f.servers[2].t = NULL;
    memset(&ctx, 0, sizeof ctx);
    ctx.loop = f.loop;
    ctx.config = f.config;
    ctx.servers = f.servers;
    ctx.nservers = NT * 2;
    ck_assert_ptr_null(f.kind->open(&ctx, &err));
    ck_assert_msg(strstr(err.msg, "router none works on the targets themselves") != NULL &&
                      strstr(err.msg, "without t2's connection") != NULL,
                  "%s", err.msg);
    fx_done(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router_none");
    TCase *t = tcase_create("local targets");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, read_is_current);
    tcase_add_test(t, set_moves_current);
    tcase_add_test(t, weights_refused);
    tcase_add_test(t, no_current_yet);
    tcase_add_test(t, current_not_a_slot);
    tcase_add_test(t, drain_changes_nothing);
    tcase_add_test(t, needs_the_targets);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
