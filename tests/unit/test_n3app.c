/* The sample app's pieces (examples/app/): request heads, the faults file, the histogram and
 * its Prometheus text, and the deadline heap. The server itself is tested through its port
 * (tests/cli/test_sample_app.sh). */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/app/deadline.h"
#include "examples/app/faults.h"
#include "examples/app/reqparse.h"
#include "examples/app/stats.h"
#include "examples/app/strbuf.h"
#include "tests/unit/testutil.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- request heads ---- */

static int feed(const char *text, struct request *req)
{
    struct reqparse p = {0};

    memset(req, 0, sizeof *req);
    return reqparse_feed(&p, text, strlen(text), req);
}

static void path_is(const struct request *req, const char *want)
{
    ck_assert_uint_eq(req->path_len, strlen(want));
    ck_assert_int_eq(memcmp(req->path, want, req->path_len), 0);
}

START_TEST(a_plain_get)
{
    static const char text[] = "GET /health?verbose=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n";
    struct request req;

    ck_assert_int_eq(feed(text, &req), REQ_DONE);
    ck_assert_int_eq(req.method, REQ_GET);
    path_is(&req, "/health");
    ck_assert_int_eq(req.minor, 1);
    ck_assert(req.keep_alive);
    ck_assert_uint_eq(req.content_length, 0);
    ck_assert_uint_eq(req.head_len, strlen(text));
}
END_TEST

START_TEST(keep_alive_by_version_and_connection)
{
    struct request req;

    ck_assert_int_eq(feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &req),
                     REQ_DONE);
    ck_assert(!req.keep_alive);
    ck_assert_int_eq(feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", &req),
                     REQ_DONE);
    ck_assert(!req.keep_alive);
    ck_assert_int_eq(feed("GET / HTTP/1.0\r\n\r\n", &req), REQ_DONE);
    ck_assert(!req.keep_alive);
    ck_assert_int_eq(req.minor, 0);
    ck_assert_int_eq(feed("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", &req), REQ_DONE);
    ck_assert(req.keep_alive);
    /* A later 1.x is answered as 1.1. */
    ck_assert_int_eq(feed("HEAD / HTTP/1.7\r\nHost: a\r\n\r\n", &req), REQ_DONE);
    ck_assert_int_eq(req.minor, 1);
    ck_assert_int_eq(req.method, REQ_HEAD);
}
END_TEST

START_TEST(one_byte_at_a_time_is_the_same_request)
{
    static const char text[] = "\r\nGET /version HTTP/1.1\nHost: a\r\nX-Long: abcdef\n\r\n"
                               "GET /next HTTP/1.1\r\n";
    size_t head = strlen(text) - strlen("GET /next HTTP/1.1\r\n"), n;
    struct reqparse p = {0};
    struct request req;
    int r = REQ_INCOMPLETE;

    for (n = 1; n <= strlen(text) && r == REQ_INCOMPLETE; n++) {
        memset(&req, 0, sizeof req);
        r = reqparse_feed(&p, text, n, &req);
        if (n < head)
            ck_assert_msg(r == REQ_INCOMPLETE, "complete after %zu of %zu bytes", n, head);
    }
    ck_assert_int_eq(r, REQ_DONE);
    ck_assert_uint_eq(n - 1, head); /* done with the head's last byte, not later */
    ck_assert_uint_eq(req.head_len, head);
    path_is(&req, "/version");
    ck_assert(req.keep_alive);
}
END_TEST

START_TEST(targets_in_absolute_form)
{
    struct request req;

    ck_assert_int_eq(
        feed("GET http://app.example:8001/metrics?x HTTP/1.1\r\nHost: a\r\n\r\n", &req), REQ_DONE);
    path_is(&req, "/metrics");
    ck_assert_int_eq(feed("GET HTTPS://app HTTP/1.1\r\nHost: a\r\n\r\n", &req), REQ_DONE);
    path_is(&req, "/");
    ck_assert_int_eq(feed("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req), REQ_DONE);
    ck_assert_int_eq(req.method, REQ_OTHER);
    path_is(&req, "*");
}
END_TEST

START_TEST(content_length_is_framed_strictly)
{
    struct request req;

    ck_assert_int_eq(feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &req),
                     REQ_DONE);
    ck_assert_uint_eq(req.content_length, 12);
    ck_assert_int_eq(
        feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &req),
        REQ_DONE);
    ck_assert_uint_eq(req.content_length, 7);
    ck_assert_int_eq(
        feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", &req),
        REQ_ERROR);
    ck_assert_int_eq(req.status, 400);
    ck_assert_int_eq(feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", &req),
                     REQ_ERROR);
    ck_assert_int_eq(req.status, 400);
    ck_assert_int_eq(feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", &req),
                     REQ_ERROR);
    ck_assert_int_eq(
        feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", &req),
        REQ_ERROR);
    ck_assert_int_eq(feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &req),
                     REQ_ERROR);
    ck_assert_int_eq(req.status, 501);
    ck_assert_int_eq(feed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                          "Content-Length: 3\r\n\r\n",
                          &req),
                     REQ_ERROR);
    ck_assert_int_eq(req.status, 400);
    ck_assert_ptr_nonnull(strstr(req.why, "both"));
}
END_TEST

START_TEST(malformed_heads_are_refused_with_their_status)
{
    static const struct {
        const char *text;
        int status;
        const char *why;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", 400, "Host"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host"},
        {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method"},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request line"},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "version"},
        {"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target"},
        {"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not a path"},
        {"GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n", 400, "no host"},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/1.0"},
        {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "HTTP/1.0"},
        {"GET / http/1.1\r\nHost: a\r\n\r\n", 400, "version"},
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, "folded"},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "header name"},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "malformed header"},
        {"GET / HTTP/1.1\r\n: a\r\n\r\n", 400, "malformed header"},
        {"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 400, "control"},
        {"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR"},
        {"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR"},
    };
    struct request req;
    size_t i;

    for (i = 0; i < N_ELEMS(cases); i++) {
        ck_assert_msg(feed(cases[i].text, &req) == REQ_ERROR, "case %zu was taken", i);
        ck_assert_msg(req.status == cases[i].status, "case %zu: %d, not %d", i, req.status,
                      cases[i].status);
        ck_assert_msg(strstr(req.why, cases[i].why) != NULL, "case %zu: \"%s\"", i, req.why);
    }
}
END_TEST

START_TEST(heads_are_bounded)
{
    struct strbuf b;
    struct request req;
    int i;

    /* A request line that never ends: 414 once past the bound. */
    strbuf_init(&b);
    strbuf_adds(&b, "GET /");
    while (b.len <= REQ_HEAD_MAX)
        strbuf_adds(&b, "aaaaaaaa");
    ck_assert_int_eq(feed(b.data, &req), REQ_ERROR);
    ck_assert_int_eq(req.status, 414);
    /* Just under the bound, it is only incomplete. */
    b.data[REQ_HEAD_MAX - 1] = '\0';
    ck_assert_int_eq(feed(b.data, &req), REQ_INCOMPLETE);

    /* Headers past the bound, complete or not: 431. */
    strbuf_reset(&b);
    strbuf_adds(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
    while (b.len <= REQ_HEAD_MAX)
        strbuf_adds(&b, "X-Filler: 0123456789abcdef\r\n");
    ck_assert_int_eq(feed(b.data, &req), REQ_ERROR);
    ck_assert_int_eq(req.status, 431);
    strbuf_adds(&b, "\r\n");
    ck_assert_int_eq(feed(b.data, &req), REQ_ERROR);
    ck_assert_int_eq(req.status, 431);

    /* Too many header lines, small as they are. */
    strbuf_reset(&b);
    strbuf_adds(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (i = 0; i < REQ_HEADERS_MAX; i++)
        strbuf_adds(&b, "X: y\r\n");
    strbuf_adds(&b, "\r\n");
    ck_assert_int_eq(feed(b.data, &req), REQ_ERROR);
    ck_assert_int_eq(req.status, 431);
    ck_assert_ptr_nonnull(strstr(req.why, "too many"));
    strbuf_done(&b);
}
END_TEST

/* A random pick from a list of strings. */
static const char *pick(uint64_t *rng, const char *const *list, size_t n)
{
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return list[(*rng >> 33) % n];
}

/* Random heads, mostly well made, some with a bad piece or a byte changed: fed a byte at a
 * time, each gives what it gives whole (the resumed search for the end misses nothing and
 * finds nothing early), and an error is always one of the statuses the app answers with. */
START_TEST(random_heads_fed_in_pieces_parse_as_whole)
{
    static const char *const methods[] = {"GET", "GET", "GET", "HEAD", "POST", "G(T", ""};
    static const char *const targets[] = {"/",        "/", "/health?q=1", "http://h/x",
                                          "http://h", "*", "a",           "/\x01"};
    static const char *const versions[] = {"HTTP/1.1", "HTTP/1.1",  "HTTP/1.0",
                                           "HTTP/2.0", "HTTP/1.1 ", "http/1.1"};
    static const char *const ends[] = {"\r\n", "\r\n", "\r\n", "\r\n", "\r\n",
                                       "\r\n", "\r\n", "\n",   "\n",   "\r"};
    static const char *const headers[] = {
        "Host: a",
        "Host: a",
        "Connection: close",
        "Content-Length: 5",
        "Content-Length: 7",
        "connection: keep-alive",
        "X-A:  b\t",
        " folded",
        "Bad Name: x",
        "X: \x01",
        "Transfer-Encoding: chunked",
        "X-Utf8: \xc3\xa9",
        ": empty name",
    };
    static const char *const seps[] = {" ", " ", " ", " ", " ", "  "};
    static const int statuses[] = {400, 414, 431, 501, 505};
    int seen[3] = {0}, round;
    struct strbuf b;
    uint64_t rng = 99;

    strbuf_init(&b);
    for (round = 0; round < 20000; round++) {
        struct request whole, part;
        struct reqparse p = {0};
        int rw, rp = REQ_INCOMPLETE, k, n;
        size_t len, i;

        strbuf_reset(&b);
        if (round % 7 == 0)
            strbuf_adds(&b, "\r\n"); /* an empty line before the request line */
        strbuf_adds(&b, pick(&rng, methods, N_ELEMS(methods)));
        strbuf_adds(&b, pick(&rng, seps, N_ELEMS(seps)));
        strbuf_adds(&b, pick(&rng, targets, N_ELEMS(targets)));
        strbuf_adds(&b, " ");
        strbuf_adds(&b, pick(&rng, versions, N_ELEMS(versions)));
        strbuf_adds(&b, pick(&rng, ends, N_ELEMS(ends)));
        n = (int)((rng >> 40) % 4);
        for (k = 0; k < n; k++) {
            strbuf_adds(&b, pick(&rng, headers, N_ELEMS(headers)));
            strbuf_adds(&b, pick(&rng, ends, N_ELEMS(ends)));
        }
        if (round % 5 != 0)
            strbuf_adds(&b, round % 3 == 0 ? pick(&rng, ends, N_ELEMS(ends)) : "\r\n");
        if (round % 11 == 0 && b.len > 0)
            b.data[(rng >> 20) % b.len] = (char)(rng >> 50); /* one byte changed */
        len = strlen(b.data);                                /* a NUL put in ends the text there */
        memset(&whole, 0, sizeof whole);
        rw = reqparse_feed(&(struct reqparse){0}, b.data, len, &whole);
        for (i = 1; i <= len && rp == REQ_INCOMPLETE; i++) {
            memset(&part, 0, sizeof part);
            rp = reqparse_feed(&p, b.data, i, &part);
        }
        ck_assert_msg(rw == rp, "round %d: whole %d, in pieces %d", round, rw, rp);
        seen[rw + 1]++;
        if (rw == REQ_DONE) {
            ck_assert_uint_eq(whole.head_len, part.head_len);
            ck_assert_uint_eq(whole.path_len, part.path_len);
            ck_assert(whole.keep_alive == part.keep_alive);
            ck_assert_uint_eq(whole.content_length, part.content_length);
        } else if (rw == REQ_ERROR) {
            bool known = false;
            ck_assert_int_eq(whole.status, part.status);
            for (k = 0; k < (int)N_ELEMS(statuses); k++)
                known = known || whole.status == statuses[k];
            ck_assert_msg(known, "round %d: status %d", round, whole.status);
        }
    }
    /* The generator makes all three, or the test tests less than it says. */
    ck_assert_msg(seen[0] > 500 && seen[1] > 500 && seen[2] > 500,
                  "errors %d, incomplete %d, done %d", seen[0], seen[1], seen[2]);
    strbuf_done(&b);
}
END_TEST

/* ---- the faults file ---- */

static int parse_faults(const char *text, struct faults *f, char *err, size_t n)
{
    return faults_parse(text, strlen(text), "n3app.faults", f, err, n);
}

START_TEST(faults_are_read_whole)
{
    static const char text[] = "# a bad version\n"
                               "\n"
                               "error_rate 0.05   # one in twenty\n"
                               "  latency_ms\t250\r\n"
                               "jitter_ms 100\n"
                               "health_fail true\n"
                               "crash_at_start false\n"
                               "slow_start_ms 3000"; /* no newline at the end */
    struct faults f;
    char err[256] = "", desc[256];

    ck_assert_msg(parse_faults(text, &f, err, sizeof err) == 0, "%s", err);
    ck_assert(f.error_rate == 0.05);
    ck_assert_uint_eq(f.latency_ms, 250);
    ck_assert_uint_eq(f.jitter_ms, 100);
    ck_assert(f.health_fail);
    ck_assert(!f.crash_at_start);
    ck_assert_uint_eq(f.slow_start_ms, 3000);
    faults_describe(&f, desc, sizeof desc);
    ck_assert_str_eq(desc, "error_rate=0.05 latency_ms=250 jitter_ms=100 health_fail=true "
                           "crash_at_start=false slow_start_ms=3000");

    ck_assert_int_eq(parse_faults("# nothing on\n\n", &f, err, sizeof err), 0);
    faults_describe(&f, desc, sizeof desc);
    ck_assert_str_eq(desc, "none");
    ck_assert_int_eq(parse_faults("error_rate 1\nerror_rate_x 0", &f, err, sizeof err), -1);
}
END_TEST

START_TEST(bad_faults_are_refused_with_where)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"error_rate 0.05\nlatncy_ms 5\n",
         "n3app.faults:2: unknown key \"latncy_ms\"; did you mean \"latency_ms\"?"},
        {"speed 9\n", "n3app.faults:1: unknown key \"speed\"; the keys are error_rate"},
        {"latency_ms 5\n\nlatency_ms 6\n",
         "n3app.faults:3: latency_ms is given twice (first on line 1)"},
        {"health_fail\n", "n3app.faults:1: health_fail has no value"},
        {"health_fail yes\n", "n3app.faults:1: health_fail \"yes\": give true or false"},
        {"error_rate 5%\n", "n3app.faults:1: error_rate \"5%\": give a fraction from 0 to 1"},
        {"error_rate 1.5\n", "error_rate \"1.5\": give a fraction"},
        {"error_rate inf\n", "error_rate \"inf\": give a fraction"},
        {"error_rate .5\n", "error_rate \".5\": give a fraction"},
        {"error_rate 0.5 0.6\n", "error_rate \"0.5 0.6\": give a fraction"},
        {"latency_ms -5\n", "latency_ms \"-5\": give whole milliseconds from 0 to 600000"},
        {"latency_ms 600001\n", "latency_ms \"600001\": give whole milliseconds"},
        {"slow_start_ms 99999999999\n", "slow_start_ms \"99999999999\": give whole"},
        {"jitter_ms 1.5\n", "jitter_ms \"1.5\": give whole milliseconds"},
        {"\x1b[2Jkey 1\n", "unknown key \"?[2Jkey\""},
    };
    struct faults f = {.latency_ms = 42};
    char err[256];
    size_t i;

    for (i = 0; i < N_ELEMS(cases); i++) {
        ck_assert_msg(parse_faults(cases[i].text, &f, err, sizeof err) == -1, "case %zu taken", i);
        ck_assert_msg(strstr(err, cases[i].msg) != NULL, "case %zu: \"%s\"", i, err);
        ck_assert_uint_eq(f.latency_ms, 42); /* untouched */
    }
    ck_assert_int_eq(faults_parse("latency_ms 5\n\0x", 15, "f", &f, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
}
END_TEST

START_TEST(faults_files_on_disk)
{
    char *dir = tu_mkdtemp(), path[4096], err[512];
    struct faults f = {.latency_ms = 42};

    snprintf(path, sizeof path, "%s/n3app.faults", dir);
    ck_assert_int_eq(faults_load(path, false, &f, err, sizeof err), 0);
    ck_assert_uint_eq(f.latency_ms, 0); /* no file: no faults */
    ck_assert_int_eq(faults_load(path, true, &f, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot read it"));
    tu_write_file(path, "latency_ms 7\n");
    ck_assert_int_eq(faults_load(path, true, &f, err, sizeof err), 0);
    ck_assert_uint_eq(f.latency_ms, 7);
    tu_rmdir_r(dir);
    free(dir);
}
END_TEST

/* ---- the histogram and the text ---- */

START_TEST(buckets_are_upper_bounds_inclusive_and_cumulative)
{
    struct stats_hist h = {0};
    size_t i;

    stats_hist_observe(&h, 0.001);  /* le="0.001" */
    stats_hist_observe(&h, 0.0011); /* le="0.0025" */
    stats_hist_observe(&h, 10);     /* le="10" */
    stats_hist_observe(&h, 10.5);   /* +Inf only */
    stats_hist_observe(&h, -1);     /* a clock that went back: no time */
    ck_assert_uint_eq(h.count, 5);
    ck_assert_uint_eq(stats_hist_cumulative(&h, 0), 2);
    ck_assert_uint_eq(stats_hist_cumulative(&h, 1), 3);
    ck_assert_uint_eq(stats_hist_cumulative(&h, STATS_BOUNDS - 2), 3);
    ck_assert_uint_eq(stats_hist_cumulative(&h, STATS_BOUNDS - 1), 4);
    ck_assert_uint_eq(stats_hist_cumulative(&h, STATS_BOUNDS), 5);
    for (i = 1; i <= STATS_BOUNDS; i++)
        ck_assert(stats_hist_cumulative(&h, i) >= stats_hist_cumulative(&h, i - 1));
    ck_assert(h.sum > 20.5 - 1e-9 && h.sum < 20.5021 + 1e-9);
    ck_assert(stats_bounds[0] == 0.001 && stats_bounds[STATS_BOUNDS - 1] == 10.0);
}
END_TEST

START_TEST(the_text_has_every_family)
{
    static const char *const want[] = {
        "# TYPE n3app_requests_total counter\n",
        "\nn3app_requests_total{path=\"/\",code=\"200\"} 2\n",
        "\nn3app_requests_total{path=\"/\",code=\"500\"} 1\n",
        "\nn3app_requests_total{path=\"other\",code=\"404\"} 1\n",
        "# TYPE n3app_request_duration_seconds histogram\n",
        "\nn3app_request_duration_seconds_bucket{path=\"/\",le=\"0.001\"} 1\n",
        "\nn3app_request_duration_seconds_bucket{path=\"/\",le=\"0.0025\"} 2\n",
        "\nn3app_request_duration_seconds_bucket{path=\"/\",le=\"0.25\"} 2\n",
        "\nn3app_request_duration_seconds_bucket{path=\"/\",le=\"0.5\"} 3\n",
        "\nn3app_request_duration_seconds_bucket{path=\"/\",le=\"+Inf\"} 3\n",
        "\nn3app_request_duration_seconds_count{path=\"/\"} 3\n",
        "\nn3app_request_duration_seconds_sum{path=\"/\"} 0.3021\n",
        /* every path's histogram is there from the start, observed or not */
        "\nn3app_request_duration_seconds_count{path=\"/health\"} 0\n",
        "\nn3app_in_flight 1\n",
        "\nn3app_connections 2\n",
        "\nn3app_start_time_seconds 1767261600.500\n",
        "\nn3app_info{version=\"v1.2.0-errors\",slot=\"green\"} 1\n",
    };
    struct stats s = {0};
    struct strbuf out;
    size_t i;

    s.version = "v1.2.0-errors";
    s.slot = "green";
    s.start_time = 1767261600.5;
    s.in_flight = 1;
    s.connections = 2;
    stats_record(&s, PATH_ROOT, 200, 0.002);
    stats_record(&s, PATH_ROOT, 200, 0.3);
    stats_record(&s, PATH_ROOT, 500, 0.0001);
    stats_record(&s, stats_path_of("/nope", 5), 404, 0.0001);
    strbuf_init(&out);
    stats_write(&s, &out);

    for (i = 0; i < N_ELEMS(want); i++)
        ck_assert_msg(strstr(out.data, want[i]) != NULL, "no \"%s\" in:\n%s", want[i], out.data);
    ck_assert_ptr_null(strstr(out.data, "path=\"/health\",code="));
    ck_assert_int_eq(out.data[out.len - 1], '\n');
    strbuf_done(&out);
}
END_TEST

START_TEST(paths_are_a_closed_set)
{
    ck_assert_int_eq(stats_path_of("/", 1), PATH_ROOT);
    ck_assert_int_eq(stats_path_of("/health", 7), PATH_HEALTH);
    ck_assert_int_eq(stats_path_of("/healthz", 8), PATH_OTHER);
    ck_assert_int_eq(stats_path_of("/health", 6), PATH_OTHER);
    ck_assert_int_eq(stats_path_of("", 0), PATH_OTHER);
    ck_assert_str_eq(stats_path_name(PATH_METRICS), "/metrics");
    ck_assert_int_eq(stats_code_index(500) >= 0, 1);
    ck_assert_int_eq(stats_code_index(302), -1);
}
END_TEST

/* ---- the deadline heap, against a plain array ---- */

struct timed {
    struct deadline_item dl;
    bool in;
};

START_TEST(the_heap_always_gives_the_earliest)
{
    struct deadline_heap h;
    struct timed items[200];
    uint64_t rng = 12345;
    int round, i;

    deadline_heap_init(&h);
    for (i = 0; i < 200; i++) {
        deadline_item_init(&items[i].dl);
        items[i].in = false;
    }
    for (round = 0; round < 20000; round++) {
        struct deadline_item *first;
        int64_t best = INT64_MAX;
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        i = (int)((rng >> 33) % 200);
        if ((rng >> 20) % 4 == 0) {
            deadline_clear(&h, &items[i].dl);
            items[i].in = false;
        } else {
            deadline_set(&h, &items[i].dl, (int64_t)((rng >> 40) % 1000));
            items[i].in = true;
        }
        for (i = 0; i < 200; i++)
            if (items[i].in && items[i].dl.when < best)
                best = items[i].dl.when;
        first = deadline_first(&h);
        if (best == INT64_MAX) {
            ck_assert_ptr_null(first);
        } else {
            ck_assert_ptr_nonnull(first);
            ck_assert_int_eq(first->when, best);
        }
    }
    /* Taking them out in order gives them in order. */
    {
        int64_t last = -1;
        struct deadline_item *first;
        while ((first = deadline_first(&h)) != NULL) {
            ck_assert_int_ge(first->when, last);
            last = first->when;
            deadline_clear(&h, first);
            ck_assert_uint_eq(first->index, DEADLINE_NONE);
        }
    }
    deadline_heap_done(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("n3app");
    TCase *t = tcase_create("n3app");

    tcase_add_test(t, a_plain_get);
    tcase_add_test(t, keep_alive_by_version_and_connection);
    tcase_add_test(t, one_byte_at_a_time_is_the_same_request);
    tcase_add_test(t, targets_in_absolute_form);
    tcase_add_test(t, content_length_is_framed_strictly);
    tcase_add_test(t, malformed_heads_are_refused_with_their_status);
    tcase_add_test(t, heads_are_bounded);
    tcase_add_test(t, random_heads_fed_in_pieces_parse_as_whole);
    tcase_add_test(t, faults_are_read_whole);
    tcase_add_test(t, bad_faults_are_refused_with_where);
    tcase_add_test(t, faults_files_on_disk);
    tcase_add_test(t, buckets_are_upper_bounds_inclusive_and_cumulative);
    tcase_add_test(t, the_text_has_every_family);
    tcase_add_test(t, paths_are_a_closed_set);
    tcase_add_test(t, the_heap_always_gives_the_earliest);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
