/* Strict JSON (RFC 8259) into cJSON trees: one pass checks, builds and records positions. */
#include "config.h"

#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/xalloc.h"

#define NUMBER_INLINE 64 /* numbers up to this long are converted from a copy on the stack */

struct parser {
    const char *t;
    size_t len;
    size_t p;
    unsigned depth;
    cJSON *root;
    struct json_index *ix; /* NULL: no positions wanted */
    struct json_error *e;
    struct buf str;    /* the string being decoded */
    locale_t c_locale; /* for strtod_l: a number's '.' is not the locale's decimal point */
};

/* Offset of the first NUL or invalid UTF-8 sequence, or len. */
static size_t utf8_check(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, n, k;
    uint32_t cp, min;

    while (i < len) {
        if (s[i] != 0 && s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] >= 0xC2 && s[i] <= 0xDF) {
            n = 1;
            cp = s[i] & 0x1Fu;
            min = 0x80;
        } else if (s[i] >= 0xE0 && s[i] <= 0xEF) {
            n = 2;
            cp = s[i] & 0x0Fu;
            min = 0x800;
        } else if (s[i] >= 0xF0 && s[i] <= 0xF4) {
            n = 3;
            cp = s[i] & 0x07u;
            min = 0x10000;
        } else {
            return i; /* NUL, a stray continuation byte, or a byte never in UTF-8 */
        }
        if (n >= len - i)
            return i;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alnum(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool fail(struct parser *ps, enum json_why why, size_t off, size_t other, unsigned value)
{
    ps->e->why = why;
    ps->e->off = off;
    ps->e->other = other;
    ps->e->value = value;
    ps->e->depth = ps->depth;
    return false;
}

/* The text ends inside what opened at other: the error is just after the last token, where an
 * editor shows that the text stops. */
static bool fail_eof(struct parser *ps, enum json_why why, size_t other)
{
    size_t off = ps->len;

    while (off > other + 1 && is_ws(ps->t[off - 1]))
        off--;
    return fail(ps, why, off, other, 0);
}

/* Something other than what the grammar wants stands at off (before the end): say what it most
 * likely is. A comment is the likely cause wherever it stands. */
static bool unexpected(struct parser *ps, enum json_why why, size_t off)
{
    const unsigned char *u = (const unsigned char *)ps->t + off;
    size_t left = ps->len - off;

    if (left >= 2 && u[0] == '/' && (u[1] == '/' || u[1] == '*'))
        return fail(ps, JSON_COMMENT, off, 0, 0);
    if (u[0] < 0x20)
        return fail(ps, JSON_CONTROL, off, 0, u[0]);
    if (why == JSON_VALUE && u[0] == '\'')
        return fail(ps, JSON_SINGLE_QUOTE, off, 0, 0);
    /* U+201C and U+201D, as word processors and some chat tools write "quotes". */
    if ((why == JSON_VALUE || why == JSON_KEY) && left >= 3 && u[0] == 0xE2 && u[1] == 0x80 &&
        (u[2] == 0x9C || u[2] == 0x9D))
        return fail(ps, JSON_TYPO_QUOTE, off, 0, 0);
    return fail(ps, why, off, 0, 0);
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->len && is_ws(ps->t[ps->p]))
        ps->p++;
}

static bool at_end(const struct parser *ps)
{
    return ps->p >= ps->len;
}

/* Numbers. */

/* The length of the number at t, or 0 with *why saying what is wrong (at t). */
static size_t number_scan(const char *t, size_t left, enum json_why *why)
{
    size_t i = 0;

    if (i < left && t[i] == '-')
        i++;
    if (i >= left || !is_digit(t[i])) {
        *why = i > 0 ? JSON_NUM_MINUS : JSON_NUM_START;
        return 0;
    }
    if (t[i] == '0') {
        i++;
        if (i < left && is_digit(t[i])) {
            *why = JSON_NUM_ZERO;
            return 0;
        }
    } else {
        while (i < left && is_digit(t[i]))
            i++;
    }
    if (i < left && t[i] == '.') {
        i++;
        if (i >= left || !is_digit(t[i])) {
            *why = JSON_NUM_FRACTION;
            return 0;
        }
        while (i < left && is_digit(t[i]))
            i++;
    }
    if (i < left && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < left && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= left || !is_digit(t[i])) {
            *why = JSON_NUM_EXPONENT;
            return 0;
        }
        while (i < left && is_digit(t[i]))
            i++;
    }
    /* "0x1F", "1.5.3", "12abc", "1-2": not a number and something else, but a wrong number. */
    if (i < left && (is_alnum(t[i]) || t[i] == '.' || t[i] == '+' || t[i] == '-')) {
        *why = JSON_NUM_JUNK;
        return 0;
    }
    return i;
}

size_t json_number_len(const char *t, size_t left)
{
    enum json_why why;

    return number_scan(t, left, &why);
}

/* The value of the n bytes at t, which number_scan took: strtod reads any such text whole. */
static double number_value(struct parser *ps, const char *t, size_t n)
{
    char small[NUMBER_INLINE + 1], *copy = n <= NUMBER_INLINE ? small : xmalloc(n + 1), *end;
    double d;

    memcpy(copy, t, n);
    copy[n] = '\0';
    if (ps->c_locale == (locale_t)0) {
        ps->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (ps->c_locale == (locale_t)0)
            fatal("out of memory (newlocale)");
    }
    d = strtod_l(copy, &end, ps->c_locale);
    if (end != copy + n)
        fatal("json: strtod read %zu of the %zu bytes of a valid number", (size_t)(end - copy), n);
    if (copy != small)
        free(copy);
    return d;
}

/* Strings. */

static bool hex4(const char *h, size_t left, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (left < 4)
        return false;
    for (i = 0; i < 4; i++) {
        char ch = h[i];

        if (ch >= '0' && ch <= '9')
            v = v * 16 + (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v = v * 16 + (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v = v * 16 + (unsigned)(ch - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

static void add_utf8(struct buf *b, uint32_t cp)
{
    char u[4];

    if (cp < 0x80) {
        buf_addc(b, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 4);
    }
}

/* The escape at *pp (a backslash) in the string opened at open, decoded; *pp moves past it. */
static bool escape(struct parser *ps, size_t open, size_t *pp)
{
    const char *t = ps->t;
    size_t p = *pp, left = ps->len - p, n = 6;
    unsigned hi, lo;
    uint32_t cp;
    char ch;

    if (left < 2)
        return fail_eof(ps, JSON_EOF_STRING, open);
    switch (t[p + 1]) {
    case '"':
    case '\\':
    case '/':
        ch = t[p + 1];
        break;
    case 'b':
        ch = '\b';
        break;
    case 'f':
        ch = '\f';
        break;
    case 'n':
        ch = '\n';
        break;
    case 'r':
        ch = '\r';
        break;
    case 't':
        ch = '\t';
        break;
    case 'u':
        ch = 0;
        break;
    default:
        return fail(ps, JSON_ESCAPE, p, 0, 0);
    }
    if (t[p + 1] != 'u') {
        buf_addc(&ps->str, ch);
        *pp = p + 2;
        return true;
    }
    if (!hex4(t + p + 2, left - 2, &hi))
        return fail(ps, JSON_U_ESCAPE, p, 0, 0);
    /* Strings are C strings: a NUL would end the value there, silently. */
    if (hi == 0)
        return fail(ps, JSON_U_NUL, p, 0, 0);
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(ps, JSON_SURROGATE, p, 0, hi);
    cp = hi;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (left < 8 || t[p + 6] != '\\' || t[p + 7] != 'u')
            return fail(ps, JSON_SURROGATE, p, 0, hi);
        if (!hex4(t + p + 8, left - 8, &lo))
            return fail(ps, JSON_U_ESCAPE, p + 6, 0, 0);
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(ps, JSON_SURROGATE, p, 0, hi);
        cp = 0x10000 + ((uint32_t)(hi - 0xD800) << 10) + (lo - 0xDC00);
        n = 12;
    }
    add_utf8(&ps->str, cp);
    *pp = p + n;
    return true;
}

/* The string whose quote is at ps->p, decoded into ps->str (UTF-8 was checked before). */
static bool parse_string(struct parser *ps)
{
    const char *t = ps->t;
    size_t len = ps->len, open = ps->p, p = open + 1, run;

    buf_reset(&ps->str);
    for (;;) {
        for (run = p; p < len && (unsigned char)t[p] >= 0x20 && t[p] != '"' && t[p] != '\\'; p++)
            ;
        buf_add(&ps->str, t + run, p - run);
        if (p >= len)
            return fail_eof(ps, JSON_EOF_STRING, open);
        if (t[p] == '"')
            break;
        if (t[p] == '\\') {
            if (!escape(ps, open, &p))
                return false;
            continue;
        }
        /* A raw control character. At a line's end with no quote anywhere after it, the string
         * is not closed at all: say that, it is what happened to a truncated file. */
        if ((t[p] == '\n' || t[p] == '\r') && memchr(t + p, '"', len - p) == NULL)
            return fail_eof(ps, JSON_EOF_STRING, open);
        return fail(ps, JSON_RAW_CONTROL, p, 0, (unsigned char)t[p]);
    }
    ps->p = p + 1;
    return true;
}

/* Building the tree. */

static void attach(struct parser *ps, cJSON *parent, const char *key, cJSON *node)
{
    cJSON_bool ok;

    if (node == NULL)
        fatal("out of memory (cJSON)");
    if (parent == NULL) {
        ps->root = node;
        return;
    }
    ok =
        key != NULL ? cJSON_AddItemToObject(parent, key, node) : cJSON_AddItemToArray(parent, node);
    if (!ok)
        fatal("out of memory (cJSON)");
}

static uint32_t record(struct parser *ps, const cJSON *node, size_t val_off, size_t key_off,
                       uint32_t parent, uint32_t index)
{
    struct json_index *ix = ps->ix;
    struct json_pos *jp;

    if (ix == NULL)
        return JSON_NO_POS;
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 64;
        ix->pos = xreallocarray(ix->pos, ix->cap, sizeof *ix->pos);
    }
    jp = &ix->pos[ix->n];
    jp->node = node;
    jp->val_off = (uint32_t)val_off;
    jp->key_off = (uint32_t)key_off;
    jp->parent = parent;
    jp->index = index;
    return ix->n++;
}

static bool parse_value(struct parser *ps, cJSON *parent, const char *key, uint32_t parent_pos,
                        size_t key_off, uint32_t index);

/* A member's key at ps->p, decoded into ps->str, and its ':'; then ps->p is at the value. */
static bool parse_key(struct parser *ps, size_t open)
{
    if (ps->t[ps->p] != '"')
        return unexpected(ps, JSON_KEY, ps->p);
    if (!parse_string(ps))
        return false;
    skip_ws(ps);
    if (at_end(ps))
        return fail_eof(ps, JSON_EOF_OBJECT, open);
    if (ps->t[ps->p] != ':')
        return unexpected(ps, JSON_COLON, ps->p);
    ps->p++;
    skip_ws(ps);
    if (at_end(ps))
        return fail_eof(ps, JSON_EOF_OBJECT, open);
    return true;
}

/* The members of the object (obj) or the items of the array whose brace or bracket is at ps->p. */
static bool parse_members(struct parser *ps, cJSON *node, uint32_t me, bool obj)
{
    enum json_why eof = obj ? JSON_EOF_OBJECT : JSON_EOF_ARRAY;
    size_t open = ps->p, comma = 0, key_off = JSON_NO_OFF;
    char close = obj ? '}' : ']', *key = NULL;
    uint32_t index = 0;
    bool ok;

    ps->p++;
    for (;;) {
        skip_ws(ps);
        if (at_end(ps))
            return fail_eof(ps, eof, open);
        if (ps->t[ps->p] == close) {
            if (index > 0)
                return fail(ps, JSON_TRAILING_COMMA, ps->p, comma, 0);
            break;
        }
        if (obj) {
            key_off = ps->p;
            if (!parse_key(ps, open))
                return false;
            key = xstrndup(ps->str.data, ps->str.len); /* the value reuses ps->str */
        }
        ok = parse_value(ps, node, key, me, key_off, index++);
        free(key);
        key = NULL;
        if (!ok)
            return false;
        skip_ws(ps);
        if (at_end(ps))
            return fail_eof(ps, eof, open);
        if (ps->t[ps->p] == close)
            break;
        if (ps->t[ps->p] != ',')
            return unexpected(ps, obj ? JSON_OBJECT_COMMA : JSON_ARRAY_COMMA, ps->p);
        comma = ps->p++;
    }
    ps->p++;
    return true;
}

/* true, false or null at t, not run into a word ("trueish"). */
static bool literal(const char *t, size_t left, const char *word)
{
    size_t n = strlen(word);

    return left >= n && memcmp(t, word, n) == 0 && !(left > n && is_alnum(t[n]));
}

/* The value at ps->p (not at the end), made, attached to parent (NULL: the root) under key
 * (NULL: an array item) and recorded, then its members. */
static bool parse_value(struct parser *ps, cJSON *parent, const char *key, uint32_t parent_pos,
                        size_t key_off, uint32_t index)
{
    size_t start = ps->p, left = ps->len - start, n;
    const char *t = ps->t + start;
    enum json_why why = JSON_OK;
    cJSON *node;
    uint32_t me;
    bool ok;

    switch (*t) {
    case '{':
    case '[':
        if (ps->depth >= JSON_NESTING_MAX)
            return fail(ps, JSON_DEPTH, start, 0, 0);
        node = *t == '{' ? cJSON_CreateObject() : cJSON_CreateArray();
        attach(ps, parent, key, node);
        me = record(ps, node, start, key_off, parent_pos, index);
        ps->depth++;
        ok = parse_members(ps, node, me, *t == '{');
        ps->depth--;
        return ok;
    case '"':
        if (!parse_string(ps))
            return false;
        node = cJSON_CreateString(ps->str.data);
        break;
    default:
        if (literal(t, left, "true")) {
            node = cJSON_CreateTrue();
            ps->p += 4;
        } else if (literal(t, left, "false")) {
            node = cJSON_CreateFalse();
            ps->p += 5;
        } else if (literal(t, left, "null")) {
            node = cJSON_CreateNull();
            ps->p += 4;
        } else if (*t == '-' || is_digit(*t) ||
                   ((*t == '+' || *t == '.') && left > 1 && is_digit(t[1]))) {
            n = number_scan(t, left, &why);
            if (n == 0)
                return fail(ps, why, start, 0, 0);
            node = cJSON_CreateNumber(number_value(ps, t, n));
            ps->p += n;
        } else {
            return unexpected(ps, JSON_VALUE, start);
        }
    }
    attach(ps, parent, key, node);
    record(ps, node, start, key_off, parent_pos, index);
    return true;
}

cJSON *json_parse(const char *text, size_t len, struct json_index *index, struct json_error *e)
{
    struct parser ps = {.t = text, .len = len, .ix = index, .e = e};
    size_t bad;

    memset(e, 0, sizeof *e);
    if (index != NULL && len >= UINT32_MAX) {
        fail(&ps, JSON_TOO_LONG, 0, 0, 0);
        return NULL;
    }
    /* RFC 8259 8.1: the text is UTF-8. Checked first, so that a binary file is called that. */
    bad = utf8_check(text, len);
    if (bad < len) {
        fail(&ps, text[bad] == '\0' ? JSON_NUL : JSON_UTF8, bad, 0, (unsigned char)text[bad]);
        return NULL;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        ps.p = 3;
    buf_init(&ps.str);
    skip_ws(&ps);
    if (at_end(&ps)) {
        fail(&ps, JSON_EMPTY, 0, 0, 0);
    } else if (parse_value(&ps, NULL, NULL, JSON_NO_POS, JSON_NO_OFF, 0)) {
        skip_ws(&ps);
        if (!at_end(&ps))
            unexpected(&ps, JSON_AFTER, ps.p);
    }
    buf_done(&ps.str);
    if (ps.c_locale != (locale_t)0)
        freelocale(ps.c_locale);
    if (e->why != JSON_OK) {
        cJSON_Delete(ps.root);
        if (index != NULL)
            index->n = 0;
        return NULL;
    }
    return ps.root;
}

void json_error_what(const struct json_error *e, struct buf *out)
{
    switch (e->why) {
    case JSON_OK:
        buf_adds(out, "no error");
        break;
    case JSON_EMPTY:
        buf_adds(out, "no JSON value (the text is empty)");
        break;
    case JSON_NUL:
        buf_adds(out, "a NUL byte (is it binary?)");
        break;
    case JSON_UTF8:
        buf_addf(out, "not valid UTF-8 (byte 0x%02X)", e->value);
        break;
    case JSON_TOO_LONG:
        buf_adds(out, "longer than 4 GiB");
        break;
    case JSON_EOF_STRING:
        buf_adds(out, "the text ends inside a string");
        break;
    case JSON_EOF_OBJECT:
        buf_adds(out, "the text ends inside an object; is a } missing?");
        break;
    case JSON_EOF_ARRAY:
        buf_adds(out, "the text ends inside an array; is a ] missing?");
        break;
    case JSON_DEPTH:
        buf_addf(out, "nested more than %d levels deep", JSON_NESTING_MAX);
        break;
    case JSON_TRAILING_COMMA:
        buf_adds(out, "a trailing comma");
        break;
    case JSON_OBJECT_COMMA:
        buf_adds(out, "expected ',' or '}' after the member (a missing comma?)");
        break;
    case JSON_ARRAY_COMMA:
        buf_adds(out, "expected ',' or ']' after the item (a missing comma?)");
        break;
    case JSON_KEY:
        buf_adds(out, "expected a key in double quotes");
        break;
    case JSON_COLON:
        buf_adds(out, "expected ':' after the key");
        break;
    case JSON_VALUE:
        buf_adds(out, "expected a value");
        break;
    case JSON_COMMENT:
        buf_adds(out, "JSON does not allow comments");
        break;
    case JSON_SINGLE_QUOTE:
        buf_adds(out, "strings need double quotes");
        break;
    case JSON_TYPO_QUOTE:
        buf_adds(out, "strings need straight double quotes (\"), not typographic ones");
        break;
    case JSON_CONTROL:
        buf_addf(out,
                 "control character 0x%02X between tokens; JSON's whitespace is only space, tab, "
                 "newline and carriage return",
                 e->value);
        break;
    case JSON_AFTER:
        buf_adds(out, "unexpected text after the end of the document");
        break;
    case JSON_RAW_CONTROL:
        if (e->value == '\t')
            buf_adds(out, "raw tab inside a string: write \\t");
        else if (e->value == '\n')
            buf_adds(out, "raw newline inside a string: write \\n, or close the string before "
                          "the end of its line");
        else if (e->value == '\r')
            buf_adds(out, "raw carriage return inside a string: write \\r");
        else
            buf_addf(out, "raw control character 0x%02X inside a string: write \\u%04x", e->value,
                     e->value);
        break;
    case JSON_ESCAPE:
        buf_adds(out, "invalid escape sequence in a string (a backslash itself is written \\\\)");
        break;
    case JSON_U_ESCAPE:
        buf_adds(out, "invalid \\u escape: \\u takes four hex digits");
        break;
    case JSON_U_NUL:
        buf_adds(out, "\\u0000 cannot be carried in this value (it would end the string there)");
        break;
    case JSON_SURROGATE:
        if (e->value >= 0xDC00)
            buf_addf(out,
                     "lone surrogate \\u%04x: a low surrogate must follow a high one "
                     "(\\ud800 to \\udbff)",
                     e->value);
        else
            buf_addf(out,
                     "lone surrogate \\u%04x: a high surrogate must be followed by a low one "
                     "(\\udc00 to \\udfff)",
                     e->value);
        break;
    case JSON_NUM_MINUS:
        buf_adds(out, "not a valid number: '-' must be followed by a digit");
        break;
    case JSON_NUM_START:
        buf_adds(out, "not a valid number: it must start with a digit or '-'");
        break;
    case JSON_NUM_ZERO:
        buf_adds(out, "leading zero in a number");
        break;
    case JSON_NUM_FRACTION:
        buf_adds(out, "not a valid number: '.' must be followed by a digit");
        break;
    case JSON_NUM_EXPONENT:
        buf_adds(out, "not a valid number: an exponent needs digits");
        break;
    case JSON_NUM_JUNK:
        buf_adds(out, "not a valid number");
        break;
    }
}
