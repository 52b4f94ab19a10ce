/* Buffers: growth, formatting, JSON escaping, and the bounded tail that keeps command output. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "tests/unit/testutil.h"

START_TEST(buf_grows_and_formats)
{
    struct buf b;
    size_t i, len;
    char *p;

    buf_init(&b);
    for (i = 0; i < 1000; i++)
        buf_addf(&b, "%zu,", i);
    ck_assert_uint_eq(b.len, strlen(b.data));
    ck_assert_int_eq(strncmp(b.data, "0,1,2,", 6), 0);
    ck_assert_ptr_nonnull(strstr(b.data, ",999,"));
    p = buf_detach(&b, &len);
    ck_assert_uint_eq(len, strlen(p));
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    free(p);
    buf_done(&b);
}
END_TEST

START_TEST(buf_json_escapes)
{
    struct buf b;
    const char in[] = "a\"b\\c\nd\te\x01"
                      "f\x7f";

    buf_init(&b);
    buf_add_json_string(&b, in, sizeof in - 1);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\"");
    buf_done(&b);
}
END_TEST

START_TEST(tail_keeps_the_last_bytes)
{
    struct tail t;
    char *s;
    size_t len;

    tail_init(&t, 8);
    s = tail_dup(&t, &len);
    ck_assert_uint_eq(len, 0);
    free(s);
    tail_add(&t, "abc", 3);
    ck_assert(!tail_truncated(&t));
    tail_add(&t, "defgh", 5);
    ck_assert(!tail_truncated(&t));
    tail_add(&t, "ij", 2);
    ck_assert(tail_truncated(&t));
    s = tail_dup(&t, &len);
    ck_assert_str_eq(s, "cdefghij");
    free(s);
    tail_add(&t, "0123456789XYZ", 13);
    s = tail_dup(&t, &len);
    ck_assert_str_eq(s, "56789XYZ");
    ck_assert_uint_eq(t.total, 23);
    free(s);
    tail_done(&t);
}
END_TEST

START_TEST(tail_many_small_writes)
{
    struct tail t;
    char *s, expect[101];
    size_t i, len;

    tail_init(&t, 100);
    for (i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);

        tail_add(&t, &c, 1);
    }
    for (i = 0; i < 100; i++)
        expect[i] = (char)('a' + (100000 - 100 + i) % 26);
    expect[100] = '\0';
    s = tail_dup(&t, &len);
    ck_assert_uint_eq(len, 100);
    ck_assert_str_eq(s, expect);
    free(s);
    tail_done(&t);
}
END_TEST

START_TEST(utf8_is_made_valid)
{
    /* Valid: ASCII, 2-, 3- and 4-byte characters. Invalid: a lone continuation byte, an
     * overlong slash, a surrogate, 0xff, a NUL, a character cut short at the end. */
    const char in[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xff|"
                      "\0|\xe2\x82";
    char *out = utf8_sanitize(in, sizeof in - 1);

    ck_assert_str_eq(out, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xef\xbf\xbd|"
                          "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                          "\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd");
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *t = tcase_create("buf");

    tcase_add_test(t, buf_grows_and_formats);
    tcase_add_test(t, buf_json_escapes);
    tcase_add_test(t, tail_keeps_the_last_bytes);
    tcase_add_test(t, tail_many_small_writes);
    tcase_add_test(t, utf8_is_made_valid);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
