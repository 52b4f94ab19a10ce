/* Unit tests for core/cfg: refusals, syntax errors, positions, paths, checks and getters. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/err.h"
#include "core/xalloc.h"
#include "tests/unit/testutil.h"

#define BIG_BYTES (10u * 1024u * 1024u)

static const char *const step_keys[] = {"name", "max_concurrency", "timeout_seconds", NULL};

static struct cfg *load_ok(const char *text)
{
    struct cfg *c = NULL;
    struct err err;

    err_clear(&err);
    ck_assert_msg(cfg_load_string("t.json", text, strlen(text), &c, &err) == 0, "load failed: %s",
                  err.msg);
    ck_assert_ptr_nonnull(c);
    return c;
}

static void expect_load_error_len(const char *text, size_t len, const char *want)
{
    struct cfg *c = (struct cfg *)&c; /* must be reset to NULL */
    struct err err;

    err_clear(&err);
    ck_assert_int_eq(cfg_load_string("t.json", text, len, &c, &err), -1);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err.msg, want);
}

static void expect_load_error(const char *text, const char *want)
{
    expect_load_error_len(text, strlen(text), want);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Append n copies of ch. */
static void add_n(struct buf *b, char ch, size_t n)
{
    while (n-- > 0)
        buf_addc(b, ch);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Column (1-based) of the first occurrence of needle in a one-line text: an independent oracle. */
static unsigned col_of(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);

    ck_assert_ptr_nonnull(p);
    return (unsigned)(p - text) + 1;
}

/* Macros, so that a failure names the line of the test. */
#define expect_pos(c, node, line, col)     check_pos(__LINE__, false, c, node, line, col)
#define expect_key_pos(c, node, line, col) check_pos(__LINE__, true, c, node, line, col)
#define expect_path(c, node, want)         check_path(__LINE__, c, node, want)

static void check_pos(int at, bool key, const struct cfg *c, const cJSON *node, unsigned line,
                      unsigned col)
{
    unsigned l, k;

    if (key)
        cfg_key_pos(c, node, &l, &k);
    else
        cfg_pos(c, node, &l, &k);
    ck_assert_msg(l == line && k == col, "line %d: %s at %u:%u, want %u:%u", at,
                  key ? "key" : "value", l, k, line, col);
}

static void check_path(int at, const struct cfg *c, const cJSON *node, const char *want)
{
    struct buf b;

    buf_init(&b);
    cfg_path(c, node, &b);
    ck_assert_msg(strcmp(b.data, want) == 0, "line %d: path \"%.200s\", want \"%.200s\"", at,
                  b.data, want);
    buf_done(&b);
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);

    ck_assert_ptr_nonnull(m);
    return m;
}

static const cJSON *item(const cJSON *arr, int i)
{
    const cJSON *m = cJSON_GetArrayItem(arr, i);

    ck_assert_ptr_nonnull(m);
    return m;
}

/* Refusals before parsing. */

START_TEST(test_empty)
{
    expect_load_error("", "t.json:1:1: the file is empty; it should hold a JSON object");
    expect_load_error("\xEF\xBB\xBF",
                      "t.json:1:1: the file is empty; it should hold a JSON object");
}
END_TEST

START_TEST(test_whitespace_only)
{
    expect_load_error(
        " \n\t\r\n  ",
        "t.json:1:1: the file is empty (only whitespace); it should hold a JSON object");
    expect_load_error(
        "\xEF\xBB\xBF\n\n",
        "t.json:1:1: the file is empty (only whitespace); it should hold a JSON object");
}
END_TEST

START_TEST(test_nul_byte)
{
    static const char text[] = "{\"a\":\n 1\0}";

    expect_load_error_len(
        text, sizeof text - 1,
        "t.json:2:3: the file holds a NUL byte (at offset 8); is it a binary file?");
}
END_TEST

START_TEST(test_invalid_utf8)
{
    static const struct {
        const char *bad;
        unsigned byte;
    } cases[] = {
        {"caf\xe9\"}", 0xe9},          /* Latin-1 */
        {"\xc0\xaf\"}", 0xc0},         /* overlong '/' */
        {"\xe0\x80\xaf\"}", 0xe0},     /* overlong, 3 bytes */
        {"\xed\xa0\x80\"}", 0xed},     /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80\"}", 0xf4}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80\"}", 0xf5},
        {"\x80\"}", 0x80},     /* stray continuation byte */
        {"\xe2\x82", 0xe2},    /* cut at the end of the file */
        {"\xe2\x82x\"}", 0xe2} /* cut in the middle */
    };
    char text[64], want[200];
    size_t i;
    unsigned off;
    struct cfg *c;
    const char *s = NULL;
    struct err err;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "{\"a\": \"%s", cases[i].bad);
        off = (unsigned)strlen("{\"a\": \"") + (cases[i].bad[0] == 'c' ? 3 : 0);
        snprintf(want, sizeof want,
                 "t.json:1:%u: not valid UTF-8 (byte 0x%02X at offset %u); save the file as UTF-8",
                 off + 1, cases[i].byte, off);
        expect_load_error(text, want);
    }
    /* Two, three and four byte characters are fine. */
    c = load_ok("{\"a\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", \"b\": 1}");
    ck_assert_int_eq(cfg_get_string(c, cfg_root(c), "a", true, &s, &err), 0);
    ck_assert_str_eq(s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* Columns count bytes: the 9 bytes of the string are 3 characters. */
    expect_pos(c, member(cfg_root(c), "b"), 1, 25);
    cfg_free(c);
}
END_TEST

/* Syntax errors. */

START_TEST(test_not_json)
{
    expect_load_error("hello world\n",
                      "t.json:1:1: not valid JSON near \"hello world\"; expected a JSON object");
    expect_load_error("{\"a\": yes}", "t.json:1:7: not valid JSON near \"yes}\"; expected a value");
    expect_load_error("{\"a\" 1}",
                      "t.json:1:6: not valid JSON near \"1}\"; expected ':' after the key");
    expect_load_error(
        "{'a': 1}", "t.json:1:2: not valid JSON near \"'a': 1}\"; expected a key in double quotes");
    expect_load_error("{\"a\": 'x'}",
                      "t.json:1:7: not valid JSON near \"'x'}\"; strings need double quotes");
    expect_load_error(
        "{\n  // a note\n  \"a\": 1\n}",
        "t.json:2:3: not valid JSON near \"// a note\"; JSON does not allow comments");
    expect_load_error("{\"a\": 1 /* x */}",
                      "t.json:1:9: not valid JSON near \"/* x */}\"; JSON does not allow comments");
    expect_load_error("{\n  \"a\": 1\n  \"b\": 2\n}",
                      "t.json:3:3: not valid JSON near \"\\\"b\\\": 2\"; expected ',' or '}' after "
                      "the member (a missing comma?)");
    expect_load_error("{\"a\": [1 2]}", "t.json:1:10: not valid JSON near \"2]}\"; expected ',' or "
                                        "']' after the item (a missing comma?)");
    expect_load_error("{} x",
                      "t.json:1:4: not valid JSON near \"x\"; unexpected text after the end of the "
                      "document");
    expect_load_error(
        "{\"a\": \"x\\q\"}",
        "t.json:1:9: not valid JSON near \"\\\\q\\\"}\"; invalid escape sequence in a "
        "string (a backslash itself is written \\\\)");
    expect_load_error("{\"a\": -}", "t.json:1:7: not valid JSON near \"-}\"; not a valid number: "
                                    "'-' must be followed by a digit");
    /* The excerpt is bounded, and cut on a character boundary. */
    expect_load_error("{\"a\": x234567890123456789\xc3\xa9xyz}",
                      "t.json:1:7: not valid JSON near \"x234567890123456789...\"; expected a "
                      "value");
}
END_TEST

START_TEST(test_trailing_comma)
{
    expect_load_error("{\n  \"a\": 1,\n}\n",
                      "t.json:3:1: not valid JSON near \"}\"; remove the trailing comma at 2:9");
    expect_load_error("{\"a\": [1, 2, ]}",
                      "t.json:1:14: not valid JSON near \"]}\"; remove the trailing comma at 1:12");
}
END_TEST

START_TEST(test_truncated)
{
    expect_load_error("{\n  \"steps\": [\n    {\"name\": \"a\"",
                      "t.json:3:17: not valid JSON: the file ends inside the object opened at 3:5; "
                      "is a } missing?");
    expect_load_error("{\"a\": [1, 2\n\n",
                      "t.json:1:12: not valid JSON: the file ends inside the array opened at 1:7; "
                      "is a ] missing?");
    expect_load_error("{\"a\": \"abc",
                      "t.json:1:11: not valid JSON: the file ends inside the string that starts at "
                      "1:7");
    expect_load_error("{\"a\":", "t.json:1:6: not valid JSON: the file ends inside the object "
                                 "opened at 1:1; is a } missing?");
}
END_TEST

START_TEST(test_root_not_object)
{
    expect_load_error("[1, 2]",
                      "t.json:1:1: expected a JSON object at the top level, got an array");
    expect_load_error("\n\n   \"x\"",
                      "t.json:3:4: expected a JSON object at the top level, got a string");
    expect_load_error("true", "t.json:1:1: expected a JSON object at the top level, got true");
}
END_TEST

/* Exactly RFC 8259: what cJSON's parser takes and changes, refused where it stands. */

/* {"n": NUM}: refused at the number, saying what is wrong. */
START_TEST(test_strict_numbers)
{
    static const struct {
        const char *num, *what;
    } bad[] = {
        {"010", "leading zero in a number"},
        {"-01", "leading zero in a number"},
        {"00", "leading zero in a number"},
        {"5.", "not a valid number: '.' must be followed by a digit"},
        {"2.e3", "not a valid number: '.' must be followed by a digit"},
        {"-.123", "not a valid number: '-' must be followed by a digit"},
        {"-", "not a valid number: '-' must be followed by a digit"},
        {"-Infinity", "not a valid number: '-' must be followed by a digit"},
        {".5", "not a valid number: it must start with a digit or '-'"},
        {"+1", "not a valid number: it must start with a digit or '-'"},
        {"1e", "not a valid number: an exponent needs digits"},
        {"1e+", "not a valid number: an exponent needs digits"},
        {"1E-x", "not a valid number: an exponent needs digits"},
        {"0x1F", "not a valid number"},
        {"1.5.3", "not a valid number"},
        {"12abc", "not a valid number"},
        {"1-2", "not a valid number"},
        {"1e5e3", "not a valid number"},
        {"NaN", "expected a value"},
        {"Infinity", "expected a value"},
    };
    static const struct {
        const char *num;
        double value;
    } good[] = {
        {"0", 0},
        {"-0", 0},
        {"10", 10},
        {"0.5", 0.5},
        {"-0.5e-3", -0.0005},
        {"1E+2", 100},
        {"1e02", 100},
        {"2.50E1", 25},
        {"-123", -123},
        {"0e0", 0},
        {"1e400", HUGE_VAL},
        {"-1e400", -HUGE_VAL},
        {"1e-400", 0},
    };
    char text[64], want[200];
    struct cfg *c;
    double d;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"n\": %s}", bad[i].num);
        snprintf(want, sizeof want, "t.json:1:7: not valid JSON near \"%s}\"; %s", bad[i].num,
                 bad[i].what);
        expect_load_error(text, want);
    }
    /* Where it stands, in an array on a later line. */
    expect_load_error("{\n  \"a\": [1, 2,\n    010]}",
                      "t.json:3:5: not valid JSON near \"010]}\"; leading zero in a number");
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, "{\"n\": %s}", good[i].num);
        c = load_ok(text);
        ck_assert(cJSON_IsNumber(member(cfg_root(c), "n")));
        d = member(cfg_root(c), "n")->valuedouble;
        ck_assert_msg(d == good[i].value, "%s read as %.17g", good[i].num, d);
        cfg_free(c);
    }
    /* A valid number at the top level is JSON, just not a document of ours. */
    expect_load_error("-0.5", "t.json:1:1: expected a JSON object at the top level, got a number");
    expect_load_error("010", "t.json:1:1: not valid JSON near \"010\"; leading zero in a number");
}
END_TEST

/* Numbers of any length: cJSON read at most 63 bytes of one, which ended in "internal error:
 * the position index disagrees with cJSON". */
START_TEST(test_long_numbers)
{
    struct buf text, want;
    struct cfg *c;
    const cJSON *root;
    struct err err;
    double d = 0;
    int64_t v = 0;

    buf_init(&text);
    buf_init(&want);
    buf_adds(&text, "{\"a\": 0.");
    add_n(&text, '0', 100);
    buf_adds(&text, "1, \"b\": 1");
    add_n(&text, '0', 100);
    buf_adds(&text, ", \"c\": 1.");
    add_n(&text, '0', 5000);
    buf_adds(&text, ", \"d\": 3}");
    c = load_ok(text.data);
    root = cfg_root(c);
    ck_assert_int_eq(cfg_get_number(c, root, "a", true, 0, 1, &d, &err), 0);
    ck_assert(d == 1e-101);
    ck_assert_int_eq(cfg_get_number(c, root, "b", true, 0, HUGE_VAL, &d, &err), 0);
    ck_assert(d == 1e100);
    ck_assert_int_eq(cfg_get_int(c, root, "c", true, 0, 5, &v, &err), 0);
    ck_assert_int_eq(v, 1);
    expect_pos(c, member(root, "d"), 1, (unsigned)text.len - 1);
    expect_key_pos(c, member(root, "c"), 1, col_of(text.data, "\"c\""));
    /* The number in a message is cut in its middle. */
    ck_assert_int_eq(cfg_get_int(c, root, "b", true, 0, 10, &v, &err), -1);
    buf_adds(&want, "t.json:1:");
    buf_addf(&want, "%u: b: expected an integer from 0 to 10, got 1", col_of(text.data, "1000"));
    add_n(&want, '0', 12);
    buf_adds(&want, "...");
    add_n(&want, '0', 24);
    ck_assert_str_eq(err.msg, want.data);
    cfg_free(c);
    buf_done(&text);
    buf_done(&want);
}
END_TEST

START_TEST(test_strict_strings)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"a\": \"x\ty\"}", "t.json:1:9: not valid JSON: raw tab inside a string: write \\t"},
        {"{\"a\": \"x\ny\", \"b\": \"z\"}",
         "t.json:1:9: not valid JSON: raw newline inside a string: write \\n, or close the string "
         "before the end of its line"},
        {"{\"a\": \"x\ry\"}",
         "t.json:1:9: not valid JSON: raw carriage return inside a string: write \\r"},
        {"{\"a\": \"x\x01y\"}",
         "t.json:1:9: not valid JSON: raw control character 0x01 inside a string: write \\u0001"},
        {"{\"a\": \"\x1f\"}",
         "t.json:1:8: not valid JSON: raw control character 0x1F inside a string: write \\u001f"},
        {"{\"a\tb\": 1}", "t.json:1:4: not valid JSON: raw tab inside a string: write \\t"},
        /* cJSON read both as "abc". */
        {"{\"a\": \"abc\\u0000def\"}",
         "t.json:1:11: not valid JSON near \"\\\\u0000def\\\"}\"; \\u0000 cannot be carried in "
         "this value (it would end the string there)"},
        {"{\"a\": \"abc\\uZZZZdef\"}",
         "t.json:1:11: not valid JSON near \"\\\\uZZZZdef\\\"}\"; invalid \\u escape: \\u takes "
         "four hex digits"},
        {"{\"a\\u0000b\": 1}",
         "t.json:1:4: not valid JSON near \"\\\\u0000b\\\": 1}\"; \\u0000 cannot be carried in "
         "this value (it would end the string there)"},
        {"{\"a\": \"\\u12\"}", "t.json:1:8: not valid JSON near \"\\\\u12\\\"}\"; invalid \\u "
                               "escape: \\u takes four hex digits"},
        {"{\"a\": \"\\u00e\"}", "t.json:1:8: not valid JSON near \"\\\\u00e\\\"}\"; invalid \\u "
                                "escape: \\u takes four hex digits"},
        {"{\"a\": \"\\u", "t.json:1:8: not valid JSON near \"\\\\u\"; invalid \\u escape: \\u "
                          "takes four hex digits"},
        {"{\"a\": \"x\\", "t.json:1:10: not valid JSON: the file ends inside the string that "
                          "starts at 1:7"},
        /* Lone surrogates: in the grammar, but no UTF-8 can carry them. */
        {"{\"a\": \"\\ud800\"}",
         "t.json:1:8: not valid JSON near \"\\\\ud800\\\"}\"; lone surrogate \\ud800: a high "
         "surrogate must be followed by a low one (\\udc00 to \\udfff)"},
        {"{\"a\": \"\\uDBFFx\"}",
         "t.json:1:8: not valid JSON near \"\\\\uDBFFx\\\"}\"; lone surrogate \\udbff: a high "
         "surrogate must be followed by a low one (\\udc00 to \\udfff)"},
        {"{\"a\": \"\\ud800\\u0041\"}",
         "t.json:1:8: not valid JSON near \"\\\\ud800\\\\u0041\\\"}\"; lone surrogate \\ud800: a "
         "high surrogate must be followed by a low one (\\udc00 to \\udfff)"},
        {"{\"a\": \"\\ud800\\uZZZZ\"}",
         "t.json:1:14: not valid JSON near \"\\\\uZZZZ\\\"}\"; invalid \\u escape: \\u takes four "
         "hex digits"},
        {"{\"a\": \"\\udc00\"}",
         "t.json:1:8: not valid JSON near \"\\\\udc00\\\"}\"; lone surrogate \\udc00: a low "
         "surrogate must follow a high one (\\ud800 to \\udbff)"},
        {"{\"a\": \"\\udc00\\ud800\"}",
         "t.json:1:8: not valid JSON near \"\\\\udc00\\\\ud800\\\"}\"; lone surrogate \\udc00: a "
         "low surrogate must follow a high one (\\ud800 to \\udbff)"},
        {"{\"a\": \"\\x41\"}", "t.json:1:8: not valid JSON near \"\\\\x41\\\"}\"; invalid escape "
                               "sequence in a string (a backslash itself is written \\\\)"},
    };
    /* What the escapes stand for, surrogate pairs as one 4-byte character; DEL may be raw. */
    static const char good[] =
        "{\"s\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\u0001\\u001F\", "
        "\"p\": \"\\ud83d\\ude00|\\uD834\\uDD1E\", \"del\": \"x\x7fy\", \"k\\u00e9\": 1}";
    struct cfg *c;
    const cJSON *root;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_load_error(bad[i].text, bad[i].want);
    c = load_ok(good);
    root = cfg_root(c);
    ck_assert_str_eq(member(root, "s")->valuestring,
                     "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\x01\x1f");
    ck_assert_str_eq(member(root, "p")->valuestring, "\xf0\x9f\x98\x80|\xf0\x9d\x84\x9e");
    ck_assert_str_eq(member(root, "del")->valuestring, "x\x7fy");
    expect_key_pos(c, member(root, "k\xc3\xa9"), 1, col_of(good, "\"k\\u00e9"));
    cfg_free(c);
}
END_TEST

START_TEST(test_strict_tokens)
{
    /* Whitespace is space, tab, newline and carriage return; cJSON took any byte up to 32. */
    expect_load_error("{\"a\":\v1}",
                      "t.json:1:6: not valid JSON near \"\\u000b1}\"; control character 0x0B "
                      "between tokens; JSON's whitespace is only space, tab, newline and carriage "
                      "return");
    expect_load_error(
        "{\f\"a\": 1}",
        "t.json:1:2: not valid JSON near \"\\u000c\\\"a\\\": 1}\"; control character 0x0C "
        "between tokens; JSON's whitespace is only space, tab, newline and carriage "
        "return");
    expect_load_error("\x1f{\"a\": 1}",
                      "t.json:1:1: not valid JSON near \"\\u001f{\\\"a\\\": 1}\"; control "
                      "character 0x1F between tokens; JSON's whitespace is only space, tab, "
                      "newline and carriage return");
    expect_load_error("{\"a\": 1}\x01",
                      "t.json:1:9: not valid JSON near \"\\u0001\"; control character 0x01 between "
                      "tokens; JSON's whitespace is only space, tab, newline and carriage return");
    /* Literals are whole words, in lower case. */
    expect_load_error("{\"a\": trueish}",
                      "t.json:1:7: not valid JSON near \"trueish}\"; expected a value");
    expect_load_error("{\"a\": True}",
                      "t.json:1:7: not valid JSON near \"True}\"; expected a value");
    expect_load_error("{\"a\": nul}", "t.json:1:7: not valid JSON near \"nul}\"; expected a value");
    /* One value, and nothing after it. */
    expect_load_error(
        "{\"a\": 1} {\"b\": 2}",
        "t.json:1:10: not valid JSON near \"{\\\"b\\\": 2}\"; unexpected text after the "
        "end of the document");
    expect_load_error("{\"a\": 1}}", "t.json:1:9: not valid JSON near \"}\"; unexpected text after "
                                     "the end of the document");
    /* Quotes as a word processor writes them (U+201C, U+201D). */
    expect_load_error("{\xe2\x80\x9c"
                      "a\xe2\x80\x9d: 1}",
                      "t.json:1:2: not valid JSON near \"\xe2\x80\x9c"
                      "a\xe2\x80\x9d: 1}\"; strings need straight double quotes (\"), not "
                      "typographic ones");
    expect_load_error("{\"a\": \xe2\x80\x9cx\xe2\x80\x9d}",
                      "t.json:1:7: not valid JSON near \"\xe2\x80\x9cx\xe2\x80\x9d}\"; strings "
                      "need straight double quotes (\"), not typographic ones");
}
END_TEST

/* A random document: every node's position is where its text starts, and the tree holds what
 * the text says (checked against cJSON's parser, which agrees on strict JSON of short numbers). */

static void gen_ws(struct buf *b, uint64_t *rng)
{
    static const char *const ws[] = {"", "", " ", "\n", "\t", "\r\n", "  \n    "};

    buf_adds(b, ws[rng_next(rng) % (sizeof ws / sizeof ws[0])]);
}

static void gen_string(struct buf *b, uint64_t *rng)
{
    static const char *const parts[] = {
        "a",        "key",          "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\ud83d\\ude00",
        "\xc3\xa9", "\xe2\x82\xac", "[",   "}",    ",",    ":",   " ",       "\\t",
        "\\u0001"};
    unsigned n = (unsigned)(rng_next(rng) % 5), i;

    buf_addc(b, '"');
    for (i = 0; i < n; i++)
        buf_adds(b, parts[rng_next(rng) % (sizeof parts / sizeof parts[0])]);
    buf_addc(b, '"');
}

static void gen_value(struct buf *b, uint64_t *rng, int depth)
{
    static const char *const scalars[] = {"0",      "-0",   "12",    "-3.25", "1e3",
                                          "2.5E-2", "true", "false", "null",  "0.125"};
    unsigned kind = (unsigned)(rng_next(rng) % 10), n, i;

    if (depth < 6 && kind < 4) {
        bool obj = kind < 2;

        buf_addc(b, obj ? '{' : '[');
        n = (unsigned)(rng_next(rng) % 5);
        for (i = 0; i < n; i++) {
            gen_ws(b, rng);
            if (obj) {
                gen_string(b, rng);
                gen_ws(b, rng);
                buf_addc(b, ':');
                gen_ws(b, rng);
            }
            gen_value(b, rng, depth + 1);
            gen_ws(b, rng);
            if (i + 1 < n)
                buf_addc(b, ',');
        }
        buf_addc(b, obj ? '}' : ']');
    } else if (kind < 7) {
        gen_string(b, rng);
    } else {
        buf_adds(b, scalars[rng_next(rng) % (sizeof scalars / sizeof scalars[0])]);
    }
}

static size_t text_offset(const char *text, unsigned line, unsigned col)
{
    size_t off = 0;

    while (line > 1) {
        const char *nl = strchr(text + off, '\n');

        ck_assert_ptr_nonnull(nl);
        off = (size_t)(nl - text) + 1;
        line--;
    }
    return off + col - 1;
}

/* The nodes under node, each where its text starts; returns how many. */
static unsigned check_tree_pos(const struct cfg *c, const char *text, const cJSON *node)
{
    /* What each cJSON type (1 << k) starts with. */
    static const char *const first[] = {"f", "t", "n", "-0123456789", "\"", "[", "{"};
    unsigned line, col, count = 1;
    int type = node->type & 0xff, k = 0;
    const cJSON *child;
    char at;

    while (k < 7 && type != 1 << k)
        k++;
    ck_assert_int_lt(k, 7);
    cfg_pos(c, node, &line, &col);
    ck_assert_uint_gt(line, 0);
    at = text[text_offset(text, line, col)];
    ck_assert_msg(at != '\0' && strchr(first[k], at) != NULL,
                  "a node of type %d at %u:%u starts with '%c'", type, line, col, at);
    if (node->string != NULL) {
        cfg_key_pos(c, node, &line, &col);
        ck_assert_int_eq(text[text_offset(text, line, col)], '"');
    }
    for (child = node->child; child != NULL; child = child->next)
        count += check_tree_pos(c, text, child);
    return count;
}

START_TEST(test_random_documents)
{
    uint64_t rng = 20240917;
    struct buf text;
    struct cfg *c;
    cJSON *theirs;
    char *mine, *printed;
    unsigned round;

    buf_init(&text);
    for (round = 0; round < 300; round++) {
        buf_reset(&text);
        gen_ws(&text, &rng);
        buf_addc(&text, '{');
        gen_ws(&text, &rng);
        buf_adds(&text, "\"root\":");
        gen_value(&text, &rng, 0);
        buf_addc(&text, '}');
        gen_ws(&text, &rng);
        c = load_ok(text.data);
        check_tree_pos(c, text.data, cfg_root(c));
        theirs = cJSON_Parse(text.data);
        ck_assert_ptr_nonnull(theirs);
        /* Printed, not cJSON_Compare: that finds only the first of two equal keys. */
        mine = cJSON_PrintUnformatted(cfg_root(c));
        printed = cJSON_PrintUnformatted(theirs);
        ck_assert_msg(strcmp(mine, printed) == 0, "trees differ for %s", text.data);
        cJSON_free(mine);
        cJSON_free(printed);
        cJSON_Delete(theirs);
        cfg_free(c);
    }
    buf_done(&text);
}
END_TEST

/* Big and deep inputs. */

START_TEST(test_garbage_bytes)
{
    char *text = xmalloc(BIG_BYTES);
    uint64_t seed = 42;
    struct cfg *c = NULL;
    struct err err;
    size_t i;

    for (i = 0; i < BIG_BYTES; i++)
        text[i] = (char)(rng_next(&seed) >> 24);
    ck_assert_int_eq(cfg_load_string("g.json", text, BIG_BYTES, &c, &err), -1);
    ck_assert_ptr_null(c);
    ck_assert_msg(strncmp(err.msg, "g.json:1:", 9) == 0, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "not valid UTF-8 (byte 0x") != NULL ||
                      strstr(err.msg, "NUL byte") != NULL,
                  "%s", err.msg);
    free(text);
}
END_TEST

START_TEST(test_garbage_text)
{
    char *text = xmalloc(BIG_BYTES + 1), want[200];
    uint64_t seed = 7;
    struct cfg *c = NULL;
    struct err err;
    size_t i;

    for (i = 0; i < BIG_BYTES; i++)
        text[i] = i % 100 == 99 ? '\n' : "abcdefghijklmnopqrstuvwxyz  "[rng_next(&seed) % 28];
    text[0] = 'q';
    text[BIG_BYTES] = '\0';
    snprintf(want, sizeof want,
             "g.json:1:1: not valid JSON near \"%.20s...\"; expected a JSON object", text);
    ck_assert_int_eq(cfg_load_string("g.json", text, BIG_BYTES, &c, &err), -1);
    ck_assert_str_eq(err.msg, want);
    /* A string that runs over lines: refused at the first line's end. */
    memcpy(text, "{\"a\": \"", 7);
    text[BIG_BYTES - 2] = '"';
    text[BIG_BYTES - 1] = 'x';
    ck_assert_int_eq(cfg_load_string("g.json", text, BIG_BYTES, &c, &err), -1);
    ck_assert_str_eq(err.msg, "g.json:1:100: not valid JSON: raw newline inside a string: write "
                              "\\n, or close the string before the end of its line");
    /* Garbage after a valid start: the error is found far into the file, still quickly. */
    for (i = 0; i < BIG_BYTES; i++) {
        if (text[i] == '\n')
            text[i] = ' ';
    }
    ck_assert_int_eq(cfg_load_string("g.json", text, BIG_BYTES, &c, &err), -1);
    snprintf(want, sizeof want,
             "g.json:1:%u: not valid JSON near \"x\"; expected ',' or '}' after the member (a "
             "missing comma?)",
             BIG_BYTES);
    ck_assert_str_eq(err.msg, want);
    free(text);
}
END_TEST

START_TEST(test_big_valid)
{
    enum { N = 280000 };
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/big.json", dir), want[300];
    const cJSON *steps, *last, *n;
    struct cfg *c = NULL;
    struct buf text;
    struct err err;
    int64_t v = 0;
    unsigned i;

    buf_init(&text);
    buf_adds(&text, "{\"steps\": [\n");
    for (i = 0; i < N; i++)
        buf_addf(&text, "  {\"name\": \"step-%07u\", \"n\": %u}%s\n", i, i, i + 1 < N ? "," : "");
    buf_adds(&text, "]}\n");
    ck_assert_uint_gt(text.len, BIG_BYTES);
    write_bytes(path, text.data, text.len);

    ck_assert_msg(cfg_load_file(path, 16u << 20, &c, &err) == 0, "%s", err.msg);
    steps = member(cfg_root(c), "steps");
    last = item(steps, N - 1);
    n = member(last, "n");
    expect_pos(c, last, N + 1, 3);
    expect_pos(c, member(last, "name"), N + 1, 12);
    expect_pos(c, n, N + 1, 33);
    expect_key_pos(c, n, N + 1, 28);
    expect_path(c, n, "steps[279999].n");
    ck_assert_int_eq(cfg_get_int(c, last, "n", true, 0, INT64_MAX, &v, &err), 0);
    ck_assert_int_eq(v, N - 1);
    ck_assert_int_eq(cfg_get_int(c, last, "n", true, 0, 10, &v, &err), -1);
    snprintf(want, sizeof want,
             "%s:%u:33: steps[279999].n: expected an integer from 0 to 10, got 279999", path,
             N + 1);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(cfg_check_object(c, last, (const char *const[]){"name", NULL}, &err), -1);
    snprintf(want, sizeof want, "%s:%u:28: steps[279999].n: unknown key; valid keys: name", path,
             N + 1);
    ck_assert_str_eq(err.msg, want);
    /* Every node has its position, to the last one. */
    for (n = steps->child, i = 0; n != NULL; n = n->next, i++) {
        unsigned l, k;

        cfg_pos(c, n, &l, &k);
        ck_assert_uint_eq(l, i + 2);
    }
    ck_assert_uint_eq(i, N);
    cfg_free(c);
    buf_done(&text);
    tu_rmdir_r(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_deep_nesting)
{
    struct buf text, want;
    struct cfg *c;
    const cJSON *node;
    struct err err;
    int i;

    /* 1000 levels, the limit: an object and 999 arrays. */
    buf_init(&text);
    buf_init(&want);
    buf_adds(&text, "{\"d\":");
    for (i = 0; i < 999; i++)
        buf_addc(&text, '[');
    buf_addc(&text, '1');
    for (i = 0; i < 999; i++)
        buf_addc(&text, ']');
    buf_addc(&text, '}');
    c = load_ok(text.data);
    buf_adds(&want, "d");
    for (node = member(cfg_root(c), "d"), i = 0; cJSON_IsArray(node); node = node->child, i++)
        buf_adds(&want, "[0]");
    ck_assert_int_eq(i, 999);
    ck_assert(cJSON_IsNumber(node));
    expect_pos(c, node, 1, 1005);
    expect_path(c, node, want.data);
    /* The path in a message is cut in the middle, and the message keeps its end. */
    ck_assert_int_eq(cfg_error(c, &err, node, "boom"), -1);
    ck_assert_uint_lt(strlen(err.msg), ERR_MSG_MAX);
    ck_assert_msg(strncmp(err.msg, "t.json:1:1005: d[0][0]", 22) == 0, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "...") != NULL, "%s", err.msg);
    ck_assert_str_eq(err.msg + strlen(err.msg) - 12, "[0][0]: boom");
    cfg_free(c);

    /* One more is refused at the bracket that goes too deep. */
    buf_reset(&text);
    buf_adds(&text, "{\"d\":");
    for (i = 0; i < 1000; i++)
        buf_addc(&text, '[');
    for (i = 0; i < 1000; i++)
        buf_addc(&text, ']');
    buf_addc(&text, '}');
    expect_load_error(text.data,
                      "t.json:1:1005: the document is nested more than 1000 levels deep");

    /* Deep objects: every key has its position. */
    buf_reset(&text);
    for (i = 0; i < 1000; i++)
        buf_adds(&text, "{\n\"a\":");
    buf_adds(&text, "true");
    for (i = 0; i < 1000; i++)
        buf_addc(&text, '}');
    c = load_ok(text.data);
    for (node = cfg_root(c), i = 0; cJSON_IsObject(node); node = node->child, i++)
        ;
    ck_assert_int_eq(i, 1000);
    expect_pos(c, node, 1001, 5);
    expect_key_pos(c, node, 1001, 1);
    buf_reset(&want);
    for (i = 0; i < 999; i++)
        buf_adds(&want, "a.");
    buf_adds(&want, "a");
    expect_path(c, node, want.data);
    cfg_free(c);
    buf_done(&text);
    buf_done(&want);
}
END_TEST

/* Positions and paths. */

START_TEST(test_paths)
{
    struct cfg *c = load_ok(
        "{\"a\": {\"b\": [10, {\"c\": [[1, 2], {\"d\": true}]}]},\n"
        " \"env\": {\"HOME\": \"/root\", \"MY-VAR\": \"x\", \"a.b\": \"y\", \"q\\\"t\": \"z\",\n"
        "   \"_ok9\": 1, \"9x\": 2, \"\": 3, \"caf\xc3\xa9\": 4},\n"
        " \"my key\": {\"x\": [{\"y\": null}]}}");
    const cJSON *root = cfg_root(c), *b = member(member(root, "a"), "b"), *cc, *env;
    struct buf out;

    cc = member(item(b, 1), "c");
    expect_path(c, root, "");
    expect_path(c, b, "a.b");
    expect_path(c, item(b, 0), "a.b[0]");
    expect_path(c, member(item(cc, 1), "d"), "a.b[1].c[1].d");
    expect_path(c, item(item(cc, 0), 1), "a.b[1].c[0][1]");
    expect_pos(c, item(item(cc, 0), 1), 1, 29);
    expect_pos(c, member(item(cc, 1), "d"), 1, 39);
    expect_key_pos(c, member(item(cc, 1), "d"), 1, 34);
    env = member(root, "env");
    expect_path(c, member(env, "HOME"), "env.HOME");
    expect_path(c, member(env, "MY-VAR"), "env[\"MY-VAR\"]");
    expect_path(c, member(env, "a.b"), "env[\"a.b\"]");
    expect_path(c, member(env, "q\"t"), "env[\"q\\\"t\"]");
    expect_path(c, member(env, "_ok9"), "env._ok9");
    expect_path(c, member(env, "9x"), "env[\"9x\"]");
    expect_path(c, member(env, ""), "env[\"\"]");
    expect_path(c, member(env, "caf\xc3\xa9"), "env[\"caf\xc3\xa9\"]");
    expect_key_pos(c, member(env, "q\"t"), 2, 54);
    expect_pos(c, member(env, "q\"t"), 2, 62);
    expect_pos(c, member(env, "9x"), 3, 21);
    expect_path(c, member(item(member(member(root, "my key"), "x"), 0), "y"),
                "[\"my key\"].x[0].y");
    /* cfg_path appends. */
    buf_init(&out);
    buf_adds(&out, "at ");
    cfg_path(c, b, &out);
    ck_assert_str_eq(out.data, "at a.b");
    buf_done(&out);
    cfg_free(c);
}
END_TEST

START_TEST(test_positions_after_escapes)
{
    static const char text[] = "{\"k\\\"ey\": \"va\\\\\\\"l]}\", \"x\\u0041\": [1, \"]\", {\"}\": "
                               "\"{\"}, -1.5e+3], \"z\": 2}";
    struct cfg *c = load_ok(text);
    const cJSON *root = cfg_root(c), *xa = member(root, "xA");

    expect_key_pos(c, member(root, "k\"ey"), 1, 2);
    expect_pos(c, member(root, "k\"ey"), 1, col_of(text, "\"va"));
    expect_key_pos(c, xa, 1, col_of(text, "\"x\\u"));
    expect_pos(c, item(xa, 2), 1, col_of(text, "{\"}"));
    expect_pos(c, item(xa, 3), 1, col_of(text, "-1.5"));
    expect_pos(c, member(root, "z"), 1, col_of(text, "2}"));
    expect_key_pos(c, member(root, "z"), 1, col_of(text, "\"z\""));
    expect_path(c, item(xa, 3), "xA[3]");
    cfg_free(c);
}
END_TEST

START_TEST(test_crlf_and_tabs)
{
    struct cfg *c = load_ok("{\r\n\t\"a\": {\r\n\t\t\"b\":\t1\r\n\t}\r\n}\r\n");
    const cJSON *a = member(cfg_root(c), "a");
    const char *s = NULL;
    struct err err;

    expect_key_pos(c, a, 2, 2);
    expect_pos(c, a, 2, 7);
    expect_key_pos(c, member(a, "b"), 3, 3);
    expect_pos(c, member(a, "b"), 3, 8);
    ck_assert_int_eq(cfg_get_string(c, a, "b", true, &s, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:8: a.b: expected a string, got a number");
    cfg_free(c);
    expect_load_error("{\r\n  \"a\": 1,\r\n}\r\n",
                      "t.json:3:1: not valid JSON near \"}\"; remove the trailing comma at 2:9");
}
END_TEST

START_TEST(test_bom)
{
    struct cfg *c = load_ok("\xEF\xBB\xBF{\"a\": true}");

    expect_pos(c, cfg_root(c), 1, 1);
    expect_key_pos(c, member(cfg_root(c), "a"), 1, 2);
    expect_pos(c, member(cfg_root(c), "a"), 1, 7);
    cfg_free(c);
    /* Only the first line has it. */
    c = load_ok("\xEF\xBB\xBF{\n\"a\": 1}");
    expect_key_pos(c, member(cfg_root(c), "a"), 2, 1);
    expect_pos(c, member(cfg_root(c), "a"), 2, 6);
    cfg_free(c);
    expect_load_error("\xEF\xBB\xBF{\"a\": tru}",
                      "t.json:1:7: not valid JSON near \"tru}\"; expected a value");
}
END_TEST

START_TEST(test_foreign_node)
{
    struct cfg *c = load_ok("{\"a\": [1]}");
    cJSON *other = cJSON_CreateObject();
    struct err err;
    unsigned l = 9, k = 9;

    cfg_pos(c, other, &l, &k);
    ck_assert_uint_eq(l, 0);
    ck_assert_uint_eq(k, 0);
    cfg_key_pos(c, NULL, &l, &k);
    ck_assert_uint_eq(l, 0);
    expect_path(c, other, "");
    ck_assert_int_eq(cfg_error(c, &err, other, "boom %d", 7), -1);
    ck_assert_str_eq(err.msg, "t.json: boom 7");
    /* At the root: no path. A key error on an array item is at the item. */
    ck_assert_int_eq(cfg_error(c, &err, cfg_root(c), "root"), -1);
    ck_assert_str_eq(err.msg, "t.json:1:1: root");
    ck_assert_int_eq(cfg_key_error(c, &err, item(member(cfg_root(c), "a"), 0), "x"), -1);
    ck_assert_str_eq(err.msg, "t.json:1:8: a[0]: x");
    ck_assert_int_eq(cfg_key_error(c, &err, member(cfg_root(c), "a"), "y"), -1);
    ck_assert_str_eq(err.msg, "t.json:1:2: a: y");
    ck_assert_int_eq(cfg_error(c, &err, member(cfg_root(c), "a"), "z"), -1);
    ck_assert_str_eq(err.msg, "t.json:1:7: a: z");
    cJSON_Delete(other);
    cfg_free(c);
}
END_TEST

/* Checks. */

START_TEST(test_unknown_key)
{
    struct cfg *c = load_ok("{\n"
                            "  \"steps\": [\n"
                            "    {\"name\": \"a\", \"color\": \"red\", \"Name\": 1},\n"
                            "    {\"name\": \"b\", \"max_concurency\": 3}\n"
                            "  ]\n"
                            "}\n");
    const cJSON *steps = member(cfg_root(c), "steps");
    const char *const none[] = {NULL};
    const char *const only_name[] = {"name", NULL};
    const char *const two[] = {"name", "Name", NULL};
    struct err err;

    ck_assert_int_eq(cfg_check_object(c, item(steps, 1), step_keys, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:4:19: steps[1].max_concurency: unknown key; did you mean "
                              "\"max_concurrency\"?");
    ck_assert_int_eq(cfg_check_object(c, item(steps, 0), step_keys, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:19: steps[0].color: unknown key; valid keys: name, "
                              "max_concurrency, timeout_seconds");
    ck_assert_int_eq(cfg_check_object(c, item(steps, 0), none, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:6: steps[0].name: unknown key; no keys are allowed here");
    ck_assert_int_eq(cfg_check_object(c, cfg_root(c), (const char *const[]){"step", NULL}, &err),
                     -1);
    ck_assert_str_eq(err.msg, "t.json:2:3: steps: unknown key; did you mean \"step\"?");
    /* Keys are case-sensitive; a case slip gets a suggestion. */
    ck_assert_int_eq(
        cfg_check_object(c, item(steps, 0), (const char *const[]){"name", "color", NULL}, &err),
        -1);
    ck_assert_str_eq(err.msg, "t.json:3:35: steps[0].Name: unknown key; did you mean \"name\"?");
    ck_assert_int_eq(cfg_check_object(c, item(steps, 0),
                                      (const char *const[]){"Name", "name", "color", NULL}, &err),
                     0);
    ck_assert_int_eq(cfg_check_object(c, item(steps, 1), only_name, &err), -1);
    ck_assert_int_eq(cfg_check_object(c, item(steps, 0), two, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:19: steps[0].color: unknown key; valid keys: name, Name");
    ck_assert_int_eq(cfg_check_object(c, steps, step_keys, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:2:12: steps: expected an object, got an array");
    ck_assert_int_eq(cfg_check_object(c, member(item(steps, 0), "name"), step_keys, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:14: steps[0].name: expected an object, got a string");
    cfg_free(c);
}
END_TEST

START_TEST(test_duplicate_key)
{
    struct cfg *c =
        load_ok("{\"name\": \"a\",\n"
                " \"timeout_seconds\": 1,\n"
                " \"name\": \"b\",\n"
                " \"env\": {\"B\": \"1\", \"A\": \"1\", \"C\": 0, \"A\": \"2\", \"B\": \"3\"}}");
    const char *const keys[] = {"name", "timeout_seconds", "env", NULL};
    const cJSON *env = member(cfg_root(c), "env");
    const char *s = NULL;
    struct err err;

    ck_assert_int_eq(cfg_check_object(c, cfg_root(c), keys, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:2: name: duplicate key (first at 1:2)");
    /* The getters see the first one. */
    ck_assert_int_eq(cfg_get_string(c, cfg_root(c), "name", true, &s, &err), 0);
    ck_assert_str_eq(s, "a");
    /* Any keys (NULL): still each once; the first repeat in document order is reported. */
    ck_assert_int_eq(cfg_check_object(c, env, NULL, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:4:38: env.A: duplicate key (first at 4:20)");
    cfg_free(c);
    c = load_ok("{\"env\": {\"B\": \"1\", \"A\": \"1\", \"C\": 0}}");
    ck_assert_int_eq(cfg_check_object(c, member(cfg_root(c), "env"), NULL, &err), 0);
    cfg_free(c);
}
END_TEST

START_TEST(test_huge_key)
{
    enum { KEY = 100000 };
    struct buf text, want;
    struct cfg *c;
    struct err err;
    size_t i;

    buf_init(&text);
    buf_init(&want);
    buf_adds(&text, "{\"");
    for (i = 0; i < KEY; i++)
        buf_addc(&text, 'k');
    buf_adds(&text, "\": 1, \"x");
    for (i = 0; i < KEY / 2; i++)
        buf_adds(&text, "\xc3\xa9");
    buf_adds(&text, "\": 2}");
    c = load_ok(text.data);
    ck_assert_int_eq(cfg_check_object(c, cfg_root(c), step_keys, &err), -1);
    buf_adds(&want, "t.json:1:2: ");
    for (i = 0; i < 64; i++)
        buf_addc(&want, 'k');
    buf_adds(&want, "...: unknown key; valid keys: name, max_concurrency, timeout_seconds");
    ck_assert_str_eq(err.msg, want.data);
    /* Not an identifier: quoted, cut before 64 bytes on a character boundary. */
    ck_assert_int_eq(cfg_check_object(c, cfg_root(c), (const char *const[]){"k", NULL}, &err), -1);
    ck_assert_int_eq(cfg_check_object(c, cfg_root(c), NULL, &err), 0);
    buf_reset(&want);
    buf_adds(&want, "[\"x");
    for (i = 0; i < 31; i++)
        buf_adds(&want, "\xc3\xa9");
    buf_adds(&want, "...\"]");
    expect_path(c, cfg_root(c)->child->next, want.data);
    /* A caller's message with a huge argument is cut, and says so. */
    ck_assert_int_eq(cfg_error(c, &err, cfg_root(c)->child, "bad: %s", cfg_root(c)->child->string),
                     -1);
    ck_assert_uint_eq(strlen(err.msg), ERR_MSG_MAX - 1);
    ck_assert_str_eq(err.msg + ERR_MSG_MAX - 4, "...");
    cfg_free(c);
    /* A huge file name is cut in the middle. */
    buf_reset(&want);
    for (i = 0; i < 5000; i++)
        buf_addc(&want, i < 10 ? 'a' : 'n');
    buf_adds(&want, "/end.json");
    ck_assert_int_eq(cfg_load_string(want.data, "[]", 2, &c, &err), -1);
    ck_assert_uint_lt(strlen(err.msg), 300);
    ck_assert_msg(strncmp(err.msg, "aaaaaaaaaannn", 13) == 0, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "...nnn") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "/end.json:1:1: expected a JSON object at the top level, got "
                                  "an array") != NULL,
                  "%s", err.msg);
    buf_done(&text);
    buf_done(&want);
}
END_TEST

/* Getters. */

START_TEST(test_wrong_types)
{
    static const char text[] = "{\"s\": 1, \"b\": \"yes\", \"i\": \"3\", \"n\": true, \"o\": [], "
                               "\"a\": {}, \"z\": null, \"f\": false}";
    struct cfg *c = load_ok(text);
    const cJSON *root = cfg_root(c);
    const char *s = "unset";
    bool b = false;
    int64_t i = 42;
    double d = 4.2;
    struct err err;

    ck_assert_int_eq(cfg_get_string(c, root, "s", true, &s, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:7: s: expected a string, got a number");
    ck_assert_str_eq(s, "unset");
    ck_assert_int_eq(cfg_get_bool(c, root, "b", true, &b, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:15: b: expected true or false, got a string");
    ck_assert_int_eq(cfg_get_int(c, root, "i", true, 0, 10, &i, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:27: i: expected an integer, got a string");
    ck_assert_int_eq(i, 42);
    ck_assert_int_eq(cfg_get_number(c, root, "n", true, 0, 10, &d, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:37: n: expected a number, got true");
    ck_assert_int_eq(cfg_get_string(c, root, "f", true, &s, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:77: f: expected a string, got false");
    ck_assert_ptr_null(cfg_get(c, root, "o", cJSON_Object, true, &err));
    ck_assert_str_eq(err.msg, "t.json:1:48: o: expected an object, got an array");
    ck_assert_ptr_null(cfg_get(c, root, "a", cJSON_Array | cJSON_String, true, &err));
    ck_assert_str_eq(err.msg, "t.json:1:57: a: expected an array or a string, got an object");
    ck_assert_ptr_null(
        cfg_get(c, root, "z", cJSON_Object | cJSON_Array | cJSON_String, true, &err));
    ck_assert_str_eq(err.msg, "t.json:1:66: z: expected an object, an array or a string, got null");
    ck_assert_ptr_null(cfg_get(c, root, "s", cJSON_False, true, &err));
    ck_assert_str_eq(err.msg, "t.json:1:7: s: expected true or false, got a number");
    /* Either boolean in the mask takes both. */
    ck_assert_ptr_eq(cfg_get(c, root, "n", cJSON_False, true, &err), member(root, "n"));
    ck_assert_ptr_eq(cfg_get(c, root, "z", cJSON_NULL | cJSON_String, true, &err),
                     member(root, "z"));
    /* Not an object to get from. */
    ck_assert_int_eq(cfg_get_string(c, member(root, "o"), "x", false, &s, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:48: o: expected an object, got an array");
    ck_assert_int_eq(cfg_get_bool(c, root, "f", true, &b, &err), 0);
    ck_assert(!b);
    ck_assert_int_eq(cfg_get_bool(c, root, "n", true, &b, &err), 0);
    ck_assert(b);
    ck_assert_str_eq(cfg_type_name(member(root, "s")), "a number");
    ck_assert_str_eq(cfg_type_name(member(root, "b")), "a string");
    ck_assert_str_eq(cfg_type_name(member(root, "n")), "true or false");
    ck_assert_str_eq(cfg_type_name(member(root, "f")), "true or false");
    ck_assert_str_eq(cfg_type_name(member(root, "o")), "an array");
    ck_assert_str_eq(cfg_type_name(member(root, "a")), "an object");
    ck_assert_str_eq(cfg_type_name(member(root, "z")), "null");
    cfg_free(c);
}
END_TEST

START_TEST(test_absent_and_case)
{
    struct cfg *c = load_ok("{\"NAME\": \"x\", \"n\": 3}");
    const cJSON *root = cfg_root(c);
    const char *s = "unset";
    bool b = true;
    int64_t i = 42;
    double d = 4.2;
    struct err err;

    strcpy(err.msg, "untouched");
    /* cJSON_GetObjectItem would find "NAME" for "name"; the getters must not. */
    ck_assert(!cfg_has(root, "name"));
    ck_assert(cfg_has(root, "NAME"));
    ck_assert(!cfg_has(member(root, "n"), "x"));
    ck_assert_int_eq(cfg_get_string(c, root, "name", false, &s, &err), 0);
    ck_assert_str_eq(s, "unset");
    ck_assert_int_eq(cfg_get_bool(c, root, "b", false, &b, &err), 0);
    ck_assert(b);
    ck_assert_int_eq(cfg_get_int(c, root, "i", false, 0, 1, &i, &err), 0);
    ck_assert_int_eq(i, 42);
    ck_assert_int_eq(cfg_get_number(c, root, "d", false, 0, 1, &d, &err), 0);
    ck_assert(d == 4.2);
    ck_assert_ptr_null(cfg_get(c, root, "x", cJSON_Object, false, &err));
    ck_assert_str_eq(err.msg, "untouched");
    ck_assert_int_eq(cfg_get_string(c, root, "NAME", true, &s, &err), 0);
    ck_assert_str_eq(s, "x");
    cfg_free(c);
}
END_TEST

START_TEST(test_missing_required)
{
    struct cfg *c = load_ok("{\n  \"steps\": [\n    {\"timeout\": 3}\n  ]\n}\n");
    const cJSON *step = item(member(cfg_root(c), "steps"), 0);
    const char *s = NULL;
    int64_t i;
    struct err err;

    ck_assert_int_eq(cfg_get_string(c, step, "name", true, &s, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:3:5: steps[0]: missing required key \"name\"");
    ck_assert_int_eq(cfg_get_int(c, cfg_root(c), "retries", true, 0, 5, &i, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:1: missing required key \"retries\"");
    ck_assert_ptr_null(cfg_get(c, step, "env", cJSON_Object, true, &err));
    ck_assert_str_eq(err.msg, "t.json:3:5: steps[0]: missing required key \"env\"");
    cfg_free(c);
}
END_TEST

START_TEST(test_ints)
{
    static const char text[] =
        "{\"a\": 5, \"b\": 1.5, \"c\": 250, \"d\": -3, \"e\": 1e400, \"f\": 9223372036854775807, "
        "\"g\": 9223372036854775808, \"h\": 2e3, \"i\": -9223372036854775808, "
        "\"j\": 9007199254740993, \"k\": -1.0E1, \"l\": 1e19}";
    struct cfg *c = load_ok(text);
    const cJSON *root = cfg_root(c);
    char want[200];
    int64_t v = 0;
    struct err err;

    ck_assert_int_eq(cfg_get_int(c, root, "a", true, 1, 10, &v, &err), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(cfg_get_int(c, root, "b", true, 1, 100, &v, &err), -1);
    snprintf(want, sizeof want, "t.json:1:%u: b: expected an integer from 1 to 100, got 1.5",
             col_of(text, "1.5"));
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(cfg_get_int(c, root, "b", true, INT64_MIN, INT64_MAX, &v, &err), -1);
    snprintf(want, sizeof want, "t.json:1:%u: b: expected an integer, got 1.5",
             col_of(text, "1.5"));
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(cfg_get_int(c, root, "c", true, 1, 100, &v, &err), -1);
    snprintf(want, sizeof want, "t.json:1:%u: c: expected an integer from 1 to 100, got 250",
             col_of(text, "250"));
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(cfg_get_int(c, root, "d", true, 0, INT64_MAX, &v, &err), -1);
    ck_assert_msg(strstr(err.msg, "d: expected an integer of at least 0, got -3") != NULL, "%s",
                  err.msg);
    ck_assert_int_eq(cfg_get_int(c, root, "a", true, INT64_MIN, -5, &v, &err), -1);
    ck_assert_msg(strstr(err.msg, "a: expected an integer of at most -5, got 5") != NULL, "%s",
                  err.msg);
    ck_assert_int_eq(cfg_get_int(c, root, "e", true, INT64_MIN, INT64_MAX, &v, &err), -1);
    snprintf(want, sizeof want, "t.json:1:%u: e: expected an integer, got 1e400",
             col_of(text, "1e400"));
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(cfg_get_int(c, root, "f", true, INT64_MIN, INT64_MAX, &v, &err), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(cfg_get_int(c, root, "g", true, INT64_MIN, INT64_MAX, &v, &err), -1);
    ck_assert_msg(strstr(err.msg, "g: expected an integer from -9223372036854775808 to "
                                  "9223372036854775807, got 9223372036854775808") != NULL,
                  "%s", err.msg);
    ck_assert_int_eq(cfg_get_int(c, root, "h", true, 0, 5000, &v, &err), 0);
    ck_assert_int_eq(v, 2000);
    ck_assert_int_eq(cfg_get_int(c, root, "i", true, INT64_MIN, INT64_MAX, &v, &err), 0);
    ck_assert_int_eq(v, INT64_MIN);
    /* Past 2^53 a double would say ...992. */
    ck_assert_int_eq(cfg_get_int(c, root, "j", true, INT64_MIN, INT64_MAX, &v, &err), 0);
    ck_assert_int_eq(v, 9007199254740993LL);
    ck_assert_int_eq(cfg_get_int(c, root, "k", true, -10, 10, &v, &err), 0);
    ck_assert_int_eq(v, -10);
    ck_assert_int_eq(cfg_get_int(c, root, "l", true, INT64_MIN, INT64_MAX, &v, &err), -1);
    ck_assert_msg(strstr(err.msg, "l: expected an integer from -9223372036854775808 to "
                                  "9223372036854775807, got 1e19") != NULL,
                  "%s", err.msg);
    cfg_free(c);
}
END_TEST

START_TEST(test_numbers)
{
    static const char text[] = "{\"t\": 2.5, \"u\": 100, \"v\": -1, \"w\": 1e400, \"x\": -0.25e1}";
    struct cfg *c = load_ok(text);
    const cJSON *root = cfg_root(c);
    double d = 0;
    struct err err;

    ck_assert_int_eq(cfg_get_number(c, root, "t", true, 0, 60, &d, &err), 0);
    ck_assert(d == 2.5);
    ck_assert_int_eq(cfg_get_number(c, root, "x", true, -10, 10, &d, &err), 0);
    ck_assert(d == -2.5);
    ck_assert_int_eq(cfg_get_number(c, root, "u", true, 0.5, 60, &d, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:17: u: expected a number from 0.5 to 60, got 100");
    ck_assert_int_eq(cfg_get_number(c, root, "v", true, 0, HUGE_VAL, &d, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:27: v: expected a number of at least 0, got -1");
    ck_assert_int_eq(cfg_get_number(c, root, "u", true, -DBL_MAX, 1e9 - 1, &d, &err), 0);
    ck_assert_int_eq(cfg_get_number(c, root, "u", true, -HUGE_VAL, 99.5, &d, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:17: u: expected a number of at most 99.5, got 100");
    ck_assert_int_eq(cfg_get_number(c, root, "w", true, -HUGE_VAL, HUGE_VAL, &d, &err), -1);
    ck_assert_str_eq(err.msg, "t.json:1:36: w: expected a finite number, got 1e400");
    ck_assert(d == 100);
    cfg_free(c);
}
END_TEST

/* Suggestions. */

START_TEST(test_suggest)
{
    const char *const keys[] = {"name", "max_concurrency", "timeout_seconds", "steps", NULL};
    char *huge = xmalloc(100001);

    ck_assert_str_eq(cfg_suggest("max_concurency", keys), "max_concurrency");
    ck_assert_str_eq(cfg_suggest("tiemout_seconds", keys), "timeout_seconds");
    ck_assert_str_eq(cfg_suggest("NAME", keys), "name");
    ck_assert_str_eq(cfg_suggest("nmae", keys), "name");
    ck_assert_str_eq(cfg_suggest("step", keys), "steps");
    ck_assert_ptr_null(cfg_suggest("colour", keys));
    ck_assert_ptr_null(cfg_suggest("tmeot", (const char *const[]){"timeout", NULL}));
    ck_assert_str_eq(cfg_suggest("timout", (const char *const[]){"timeout", NULL}), "timeout");
    /* Two equally close: no guess. */
    ck_assert_ptr_null(cfg_suggest("ab", (const char *const[]){"ac", "ad", NULL}));
    ck_assert_str_eq(cfg_suggest("ab", (const char *const[]){"ac", "abcdef", NULL}), "ac");
    ck_assert_ptr_null(cfg_suggest("x", (const char *const[]){NULL}));
    /* Very long words are not compared (no huge matrix). */
    memset(huge, 'n', 100000);
    huge[100000] = '\0';
    ck_assert_ptr_null(cfg_suggest(huge, keys));
    ck_assert_ptr_null(cfg_suggest(huge, (const char *const[]){huge, NULL}));
    ck_assert_ptr_null(cfg_suggest("name", (const char *const[]){huge, NULL}));
    free(huge);
}
END_TEST

/* Files. */

START_TEST(test_files)
{
    char *dir = tu_mkdtemp(), *path = xasprintf("%s/n3.json", dir), want[600];
    static const char nul_text[] = "{\"a\": \"\0\"}";
    struct cfg *c = NULL;
    struct err err;
    struct buf big;
    size_t i;

    tu_write_file(path, "{\"name\": \"prod\"}\n");
    ck_assert_msg(cfg_load_file(path, 0, &c, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(cfg_name(c), path);
    expect_pos(c, member(cfg_root(c), "name"), 1, 10);
    cfg_free(c);

    /* Exactly at the limit is fine, one byte over is not. */
    ck_assert_int_eq(cfg_load_file(path, 17, &c, &err), 0);
    cfg_free(c);
    ck_assert_int_eq(cfg_load_file(path, 16, &c, &err), -1);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof want, "%s: the file is 17 bytes, more than the limit of 16 bytes", path);
    ck_assert_str_eq(err.msg, want);

    /* The default limit. */
    buf_init(&big);
    buf_adds(&big, "{\"a\": \"");
    for (i = big.len; i < CFG_MAX_BYTES_DEFAULT - 1; i++)
        buf_addc(&big, 'x');
    buf_adds(&big, "\"}");
    write_bytes(path, big.data, big.len);
    ck_assert_int_eq(cfg_load_file(path, 0, &c, &err), -1);
    snprintf(want, sizeof want, "%s: the file is %u bytes, more than the limit of %u bytes", path,
             CFG_MAX_BYTES_DEFAULT + 1, CFG_MAX_BYTES_DEFAULT);
    ck_assert_str_eq(err.msg, want);
    buf_done(&big);

    /* A device that never ends is cut at the limit. */
    ck_assert_int_eq(cfg_load_file("/dev/zero", 1000, &c, &err), -1);
    ck_assert_str_eq(err.msg, "/dev/zero: the file is more than the limit of 1000 bytes");

    tu_write_file(path, "");
    ck_assert_int_eq(cfg_load_file(path, 0, &c, &err), -1);
    snprintf(want, sizeof want, "%s:1:1: the file is empty; it should hold a JSON object", path);
    ck_assert_str_eq(err.msg, want);

    write_bytes(path, nul_text, sizeof nul_text - 1);
    ck_assert_int_eq(cfg_load_file(path, 0, &c, &err), -1);
    snprintf(want, sizeof want,
             "%s:1:8: the file holds a NUL byte (at offset 7); is it a binary file?", path);
    ck_assert_str_eq(err.msg, want);

    ck_assert_int_eq(cfg_load_file(dir, 0, &c, &err), -1);
    snprintf(want, sizeof want, "cannot read %s: %s", dir, strerror(EISDIR));
    ck_assert_str_eq(err.msg, want);

    free(path);
    path = xasprintf("%s/missing.json", dir);
    ck_assert_int_eq(cfg_load_file(path, 0, &c, &err), -1);
    snprintf(want, sizeof want, "cannot open %s: %s", path, strerror(ENOENT));
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(c);

    tu_rmdir_r(dir);
    free(path);
    free(dir);
}
END_TEST

static Suite *cfg_suite(void)
{
    Suite *s = suite_create("cfg");
    TCase *tc = tcase_create("core");
    TCase *big = tcase_create("big");

    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_whitespace_only);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_not_json);
    tcase_add_test(tc, test_trailing_comma);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_root_not_object);
    tcase_add_test(tc, test_strict_numbers);
    tcase_add_test(tc, test_long_numbers);
    tcase_add_test(tc, test_strict_strings);
    tcase_add_test(tc, test_strict_tokens);
    tcase_add_test(tc, test_random_documents);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_positions_after_escapes);
    tcase_add_test(tc, test_crlf_and_tabs);
    tcase_add_test(tc, test_bom);
    tcase_add_test(tc, test_foreign_node);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_huge_key);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_absent_and_case);
    tcase_add_test(tc, test_missing_required);
    tcase_add_test(tc, test_ints);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_suggest);
    tcase_add_test(tc, test_files);
    suite_add_tcase(s, tc);
    /* Ten megabytes under a sanitizer take seconds. */
    tcase_set_timeout(big, 120);
    tcase_add_test(big, test_garbage_bytes);
    tcase_add_test(big, test_garbage_text);
    tcase_add_test(big, test_big_valid);
    suite_add_tcase(s, big);
    return s;
}

int main(void)
{
    return tu_run_suite(cfg_suite());
}
