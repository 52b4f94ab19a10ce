/*
 * Strict JSON: exactly RFC 8259, read into a cJSON tree by our own parser, in one pass that
 * checks the grammar, builds the tree and (when asked) records where every value and key
 * starts. No second parser reads the text, so the positions cannot disagree with the tree.
 *
 * What cJSON's own parser takes and this one refuses, each with its position and why:
 * leading zeros (010), "5.", "-.123", "2.e3", raw control characters inside strings
 * (a tab, a newline), control bytes other than space, tab, newline and carriage return
 * as whitespace, invalid \u escapes (\uZZZZ), and text after the value.
 *
 * Beyond the grammar, what the values must carry: the text is UTF-8 without NUL bytes
 * (RFC 8259 section 8.1), strings and keys are C strings, so \u0000 is refused where it
 * stands instead of cutting the value short, and a lone surrogate (\uD800 without its low
 * half, or \uDC00 alone) is refused, as it has no UTF-8 form (section 8.2). A leading UTF-8
 * byte order mark is skipped (section 8.1 allows that). Containers nest at most
 * JSON_NESTING_MAX deep.
 */
#ifndef N3_JSON_H
#define N3_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct buf;

#define JSON_NESTING_MAX 1000
#define JSON_NO_OFF      UINT32_MAX /* json_pos.key_off of an array item or the root */
#define JSON_NO_POS      UINT32_MAX /* json_pos.parent of the root */

enum json_why {
    JSON_OK,
    JSON_EMPTY,          /* no value at all */
    JSON_NUL,            /* a NUL byte in the text */
    JSON_UTF8,           /* not UTF-8 */
    JSON_TOO_LONG,       /* too long for 32-bit positions */
    JSON_EOF_STRING,     /* the text ends inside a string (other: its quote) */
    JSON_EOF_OBJECT,     /* ... inside an object (other: its brace) */
    JSON_EOF_ARRAY,      /* ... inside an array (other: its bracket) */
    JSON_DEPTH,          /* nested deeper than JSON_NESTING_MAX */
    JSON_TRAILING_COMMA, /* other: the comma */
    JSON_OBJECT_COMMA,   /* neither ',' nor '}' after a member */
    JSON_ARRAY_COMMA,    /* neither ',' nor ']' after an item */
    JSON_KEY,            /* no key where one must be */
    JSON_COLON,          /* no ':' after a key */
    JSON_VALUE,          /* no value where one must be */
    JSON_COMMENT,        /* a comment, wherever it stands */
    JSON_SINGLE_QUOTE,   /* 'a string' */
    JSON_TYPO_QUOTE,     /* a string in typographic quotes */
    JSON_CONTROL,        /* a control byte between tokens (value: the byte) */
    JSON_AFTER,          /* text after the value */
    JSON_RAW_CONTROL,    /* a raw control character in a string (value: the byte) */
    JSON_ESCAPE,         /* a backslash before anything but "\/bfnrtu */
    JSON_U_ESCAPE,       /* \u without four hex digits */
    JSON_U_NUL,          /* \u0000 */
    JSON_SURROGATE,      /* a lone surrogate (value: the code unit) */
    JSON_NUM_MINUS,      /* '-' without a digit after it */
    JSON_NUM_START,      /* a number that starts with '+' or '.' */
    JSON_NUM_ZERO,       /* a leading zero */
    JSON_NUM_FRACTION,   /* '.' without a digit after it */
    JSON_NUM_EXPONENT,   /* an exponent without digits */
    JSON_NUM_JUNK,       /* letters, a second '.' or a sign right after a number */
};

struct json_error {
    enum json_why why;
    size_t off;     /* where the text stops being JSON; for JSON_EOF_*, just after its last token */
    size_t other;   /* what was left open, or the trailing comma */
    unsigned value; /* the byte, or the surrogate's code unit, the message names */
    unsigned depth; /* containers open at off */
};

/* Where a value of the tree stands in the text. */
struct json_pos {
    const cJSON *node;
    uint32_t val_off; /* its first byte */
    uint32_t key_off; /* its key's opening quote; JSON_NO_OFF unless an object member */
    uint32_t parent;  /* its container's index in the same array; JSON_NO_POS for the root */
    uint32_t index;   /* its place among the container's members */
};

/* Every value in document order, a container before its members; pos is the caller's to free. */
struct json_index {
    struct json_pos *pos;
    uint32_t n, cap;
};

/*
 * Parse text (len bytes, need not be NUL-terminated) as exactly one JSON value. index may be
 * NULL; when given (zeroed), it is filled, and texts of 4 GiB or more are refused. NULL with
 * *e set when the text is not JSON; e->why is JSON_OK otherwise.
 */
cJSON *json_parse(const char *text, size_t len, struct json_index *index, struct json_error *e);

/* What is wrong, for a message: "leading zero in a number", "invalid \u escape: ...". */
void json_error_what(const struct json_error *e, struct buf *out);

/* Length of the JSON number at the start of t (left bytes), or 0 when there is none. */
size_t json_number_len(const char *t, size_t left);

#endif
