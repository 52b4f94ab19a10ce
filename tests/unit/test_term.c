/* The one way outside text is shown on a terminal (cli/term.h): what is caught, how it is cut,
 * what exec lets through, and JSON that is safe on a terminal. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/term.h"
#include "core/buf.h"
#include "tests/unit/testutil.h"

/* term_add_shown of s with at most max columns, as a new string. */
static char *shown(const char *s, size_t max, size_t *cols)
{
    struct buf b;
    size_t c;
    char *out;

    buf_init(&b);
    c = term_add_shown(&b, s, max);
    if (cols != NULL)
        *cols = c;
    out = buf_detach(&b, NULL);
    buf_done(&b); /* detach leaves it empty, as after buf_init */
    return out;
}

/* Is s valid UTF-8 all through? */
static bool valid_utf8(const char *s)
{
    size_t i = 0, n = strlen(s), k;
    uint32_t cp;

    while (i < n) {
        if ((k = utf8_decode(s + i, n - i, &cp)) == 0)
            return false;
        i += k;
    }
    return true;
}

START_TEST(controls_become_question_marks)
{
    /* An OSC 52 clipboard write, a screen clear, a bell, a backspace, DEL, a newline. */
    char *s = shown("a\033]52;c;aGk=\007b\033[2Jc\bd\x7f"
                    "e\nf\tg",
                    100, NULL);

    ck_assert_str_eq(s, "a?]52;c;aGk=?b?[2Jc?d?e?f?g");
    free(s);
}
END_TEST

START_TEST(c1_raw_and_as_utf8)
{
    /* 0x9b alone (not UTF-8 there: CSI to an 8-bit terminal), U+009B and U+0085 as UTF-8,
     * and C1 bytes inside what would be a character. */
    char *s = shown("x\x9b"
                    "31my|\xc2\x9b"
                    "2J|\xc2\x85|\xe2\x9b",
                    100, NULL);

    ck_assert_str_eq(s, "x?31my|?2J|?|??");
    ck_assert(valid_utf8(s));
    free(s);
}
END_TEST

START_TEST(invalid_utf8_and_valid_text)
{
    /* A lone continuation byte, 0xff, an overlong slash, a character cut short at the end;
     * then valid text in 2, 3 and 4 bytes, and U+00A0 (not a control) passes. */
    char *bad = shown("\x80\xff\xc0\xaf\xe2\x82", 100, NULL);
    char *good = shown("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc2\xa0", 100, NULL);

    ck_assert_str_eq(bad, "??????");
    ck_assert_str_eq(good, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc2\xa0");
    free(bad);
    free(good);
}
END_TEST

START_TEST(cut_by_columns_between_characters)
{
    size_t cols;
    char *s = shown("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3, &cols);        /* four é, 3 columns */
    char *wide = shown("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5, &cols); /* 日本語, 2 each */
    struct buf b;

    ck_assert_str_eq(s, "\xc3\xa9\xc3\xa9\xc3\xa9...");
    ck_assert_str_eq(wide, "\xe6\x97\xa5\xe6\x9c\xac...");
    ck_assert_uint_eq(cols, 7);
    free(s);
    free(wide);
    /* A cell: "..." inside the width, padded to it in columns, not bytes. */
    buf_init(&b);
    term_add_cell(&b, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5);
    buf_addc(&b, '|');
    term_add_cell(&b, "\xc3\xa9t\xc3\xa9", 5);
    buf_addc(&b, '|');
    term_add_cell(&b, "a\033[2Jb", 4);
    buf_addc(&b, '|');
    ck_assert_str_eq(b.data, "\xe6\x97\xa5...|\xc3\xa9t\xc3\xa9  |a...|");
    buf_done(&b);
}
END_TEST

START_TEST(shown_into_a_small_buffer)
{
    char out[6], big[64];

    /* "aé€x" is 7 bytes: cut, never inside é or €, with "..." in the room. */
    term_shown(out, sizeof out,
               "a\xc3\xa9\xe2\x82\xac"
               "x");
    ck_assert_str_eq(out, "a...");
    term_shown(out, sizeof out, "\033[2J");
    ck_assert_str_eq(out, "?[2J");
    term_shown(big, sizeof big, "mallory\033]0;pwned\007@evil\x9b");
    ck_assert_str_eq(big, "mallory?]0;pwned?@evil?");
    term_shown(big, sizeof big, NULL);
    ck_assert_str_eq(big, "");
}
END_TEST

START_TEST(text_keeps_lines)
{
    struct buf b;
    const char in[] = "line 1\n\tline 2\033[2J\0x\xc2\x9b\n";

    buf_init(&b);
    term_add_text(&b, in, sizeof in - 1);
    ck_assert_str_eq(b.data, "line 1\n\tline 2?[2J?x?\n");
    buf_done(&b);
}
END_TEST

START_TEST(output_for_exec)
{
    struct buf b;
    const char *in;
    bool sgr;

    buf_init(&b);
    /* Colours pass; the clear, the clipboard write, a bare ESC and CR in the middle do not. */
    in = "\033[1;31mred\033[0m \033[2J\033]52;c;aGk=\007 \033x a\rb";
    sgr = term_add_output(&b, in, strlen(in));
    ck_assert(sgr);
    ck_assert_str_eq(b.data, "\033[1;31mred\033[0m ^[[2J^[]52;c;aGk=^G ^[x a^Mb");
    buf_reset(&b);
    /* C1 raw and as UTF-8, text in Latin-1 (not UTF-8, not C1), a tab, the CR of a CRLF. */
    in = "\x9b"
         "2J|\xc2\x9b"
         "2J|caf\xe9|\t|\xc3\xa9\r";
    sgr = term_add_output(&b, in, strlen(in));
    ck_assert(!sgr);
    ck_assert_str_eq(b.data, "\\x9b2J|\\u009b2J|caf\xe9|\t|\xc3\xa9\r");
    buf_done(&b);
}
END_TEST

START_TEST(json_is_safe_on_a_terminal)
{
    cJSON *doc = cJSON_CreateObject();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    cJSON_AddStringToObject(doc, "os",
                            "a\xc2\x9b"
                            "b\x7f"
                            "c\xff"
                            "d\033");
    term_put_json(f, doc);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "\"a\\u009bb\\u007fc\xef\xbf\xbd"
                                       "d\\u001b\""));
    ck_assert(valid_utf8(text));
    cJSON_Delete(doc);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("term");
    TCase *t = tcase_create("term");

    tcase_add_test(t, controls_become_question_marks);
    tcase_add_test(t, c1_raw_and_as_utf8);
    tcase_add_test(t, invalid_utf8_and_valid_text);
    tcase_add_test(t, cut_by_columns_between_characters);
    tcase_add_test(t, shown_into_a_small_buffer);
    tcase_add_test(t, text_keeps_lines);
    tcase_add_test(t, output_for_exec);
    tcase_add_test(t, json_is_safe_on_a_terminal);
    suite_add_tcase(s, t);
    return tu_run_suite(s);
}
