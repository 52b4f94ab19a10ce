/* Versions: checking tag names and ordering them by semantic-version precedence. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "deploy/semver.h"

/* 2^63-1, so every number also fits an int64_t wherever it goes next. */
#define SEMVER_NUM_MAX        "9223372036854775807"
#define SEMVER_NUM_MAX_DIGITS (sizeof SEMVER_NUM_MAX - 1)

/* How much of a name a message repeats, and how long a number it quotes. */
#define SHOW_NAME_MAX 64
#define SHOW_NUM_MAX  32

/* Enough for SHOW_NAME_MAX bytes escaped as \xNN, "..." and the NUL. */
struct shown {
    char s[SHOW_NAME_MAX * 4 + 4];
};

/* A name as a message shows it: control bytes and non-ASCII escaped (a tag must not move
 * the operator's cursor), long names cut. */
static const char *show_name(struct shown *out, const char *name)
{
    size_t i, n = 0;

    for (i = 0; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];

        if (i == SHOW_NAME_MAX) {
            memcpy(out->s + n, "...", 3);
            n += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out->s[n++] = '\\';
            out->s[n++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out->s[n++] = (char)c;
        } else {
            n += (size_t)snprintf(out->s + n, sizeof out->s - n, "\\x%02x", c);
        }
    }
    out->s[n] = '\0';
    return out->s;
}

/* One character as a message shows it: printable as is, anything else as \xNN. */
static const char *show_char(char out[8], char ch)
{
    unsigned char c = (unsigned char)ch;

    if (c >= 0x20 && c < 0x7f)
        snprintf(out, 8, "%c", c);
    else
        snprintf(out, 8, "\\x%02x", c);
    return out;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool all_digits(const char *s, size_t len)
{
    size_t i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

bool version_name_ok(const char *name, struct err *err)
{
    struct shown shown;
    char ch[8];
    size_t i, len;

    if (name == NULL || name[0] == '\0') {
        err_set(err, "\"\": a version cannot be empty");
        return false;
    }
    len = strlen(name);
    if (len > VERSION_NAME_MAX) {
        err_set(err, "\"%s\": %zu characters is too long for a version (at most %d)",
                show_name(&shown, name), len, VERSION_NAME_MAX);
        return false;
    }
    for (i = 0; i < len; i++) {
        char c = name[i];

        if (!is_alnum(c) && c != '.' && c != '_' && c != '+' && c != '-') {
            err_set(err,
                    "\"%s\": character %zu ('%s') is not allowed in a version; use letters, "
                    "digits and . _ + -",
                    show_name(&shown, name), i + 1, show_char(ch, c));
            return false;
        }
        /* A leading '-' reads as an option to commands, a leading '.' hides the directory. */
        if (i == 0 && (c == '-' || c == '.')) {
            err_set(err,
                    "\"%s\": character 1 ('%c') cannot start a version; start with a letter or "
                    "a digit",
                    show_name(&shown, name), c);
            return false;
        }
        if (i > 0 && c == '.' && name[i - 1] == '.') {
            err_set(err,
                    "\"%s\": character %zu ('.') makes \"..\", which is not allowed in a "
                    "version (it climbs out of the release directory)",
                    show_name(&shown, name), i + 1);
            return false;
        }
    }
    return true;
}

/* One of MAJOR, MINOR, PATCH: digits, no leading zero, at most 2^63-1. */
static int parse_number(const char *tag, const char *shown, const char *p, size_t len, int which,
                        uint64_t *out, struct err *err)
{
    static const char *const names[3] = {"major", "minor", "patch"};
    const char *what = names[which];
    char ch[8];
    size_t i;

    if (len == 0)
        return err_set(err, "%s: the %s number is empty", shown, what);
    for (i = 0; i < len; i++)
        if (!is_digit(p[i]))
            return err_set(err, "%s: character %zu ('%s') is not allowed in the %s number%s", shown,
                           (size_t)(p - tag) + i + 1, show_char(ch, p[i]), what,
                           which == 2 ? "; a pre-release goes after '-', build "
                                        "metadata after '+'"
                                      : "");
    if (len > 1 && p[0] == '0')
        return err_set(err, "%s: %.*s%s has a leading zero", shown,
                       (int)(len < SHOW_NUM_MAX ? len : SHOW_NUM_MAX), p,
                       len > SHOW_NUM_MAX ? "..." : "");
    if (len > SEMVER_NUM_MAX_DIGITS ||
        (len == SEMVER_NUM_MAX_DIGITS && memcmp(p, SEMVER_NUM_MAX, len) > 0))
        return err_set(err, "%s: the %s number is larger than " SEMVER_NUM_MAX, shown, what);
    *out = 0;
    for (i = 0; i < len; i++)
        *out = *out * 10 + (uint64_t)(p[i] - '0');
    return 0;
}

/* Dot-separated identifiers of [0-9A-Za-z-] between p and end; pre-release ones that are
 * numeric have no leading zero. */
static int check_idents(const char *tag, const char *shown, const char *p, const char *end,
                        bool pre, struct err *err)
{
    char ch[8];
    const char *q;

    for (;;) {
        for (q = p; q < end && *q != '.'; q++)
            if (!is_alnum(*q) && *q != '-')
                return err_set(err,
                               "%s: character %zu ('%s') is not allowed in %s; use letters, "
                               "digits and -",
                               shown, (size_t)(q - tag) + 1, show_char(ch, *q),
                               pre ? "a pre-release identifier" : "build metadata");
        if (q == p)
            return err_set(err, "%s: empty %s identifier", shown,
                           pre ? "pre-release" : "build metadata");
        if (pre && q - p > 1 && p[0] == '0' && all_digits(p, (size_t)(q - p)))
            return err_set(err, "%s: %.*s%s has a leading zero", shown,
                           (int)(q - p < SHOW_NUM_MAX ? q - p : SHOW_NUM_MAX), p,
                           q - p > SHOW_NUM_MAX ? "..." : "");
        if (q == end)
            return 0;
        p = q + 1;
    }
}

int semver_parse(const char *name, struct semver *out, struct err *err)
{
    struct shown shown_buf;
    const char *shown, *s, *core_end, *pre_end, *end, *part, *dot;
    uint64_t num[3];
    int i;

    memset(out, 0, sizeof *out);
    if (name == NULL || name[0] == '\0')
        return err_set(err, "empty tag name: a version has three numbers: MAJOR.MINOR.PATCH");
    shown = show_name(&shown_buf, name);
    s = name;
    if (s[0] == 'V')
        return err_set(err, "%s: a version starts with a number or a lowercase 'v', not 'V'",
                       shown);
    if (s[0] == 'v')
        s++;
    if (s[0] == 'v' || s[0] == 'V')
        return err_set(err, "%s: only one 'v' may come before the version", shown);

    /* The shape first ("release_2024.01" lacks a number, whatever its characters), then
     * each number. */
    core_end = s + strcspn(s, "-+");
    for (part = s, i = 0; (dot = memchr(part, '.', (size_t)(core_end - part))) != NULL; i++)
        part = dot + 1;
    if (i != 2)
        return err_set(err, "%s: a version has three numbers: MAJOR.MINOR.PATCH", shown);
    for (part = s, i = 0; i < 3; i++, part = dot + 1) {
        dot = i < 2 ? memchr(part, '.', (size_t)(core_end - part)) : core_end;
        if (parse_number(name, shown, part, (size_t)(dot - part), i, &num[i], err) < 0)
            return -1;
    }

    end = core_end + strlen(core_end);
    pre_end = core_end;
    if (*core_end == '-') {
        pre_end = core_end + 1 + strcspn(core_end + 1, "+");
        if (check_idents(name, shown, core_end + 1, pre_end, true, err) < 0)
            return -1;
    }
    if (*pre_end == '+' && check_idents(name, shown, pre_end + 1, end, false, err) < 0)
        return -1;

    out->major = num[0];
    out->minor = num[1];
    out->patch = num[2];
    if (*core_end == '-')
        out->pre = xstrndup(core_end + 1, (size_t)(pre_end - core_end - 1));
    if (*pre_end == '+')
        out->build = xstrdup(pre_end + 1);
    return 0;
}

void semver_done(struct semver *v)
{
    free(v->pre);
    free(v->build);
    v->pre = v->build = NULL;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/* Numeric identifiers compare as numbers of any length: semver_parse refuses leading zeros,
 * so the longer digit string is the larger number, and equal lengths compare bytewise. */
static int cmp_ident(const char *a, size_t la, const char *b, size_t lb)
{
    bool na = all_digits(a, la), nb = all_digits(b, lb);
    int c;

    if (na != nb)
        return na ? -1 : 1;
    if (na) {
        if (la != lb)
            return la < lb ? -1 : 1;
        c = memcmp(a, b, la);
        return (c > 0) - (c < 0);
    }
    c = memcmp(a, b, la < lb ? la : lb);
    if (c != 0)
        return (c > 0) - (c < 0);
    return (la > lb) - (la < lb);
}

static int cmp_pre(const char *a, const char *b)
{
    size_t la, lb;
    int c;

    for (;;) {
        la = strcspn(a, ".");
        lb = strcspn(b, ".");
        c = cmp_ident(a, la, b, lb);
        if (c != 0)
            return c;
        a += la;
        b += lb;
        /* All equal so far: the one with more identifiers is higher. */
        if (*a == '\0' || *b == '\0')
            return (*a != '\0') - (*b != '\0');
        a++;
        b++;
    }
}

int semver_cmp(const struct semver *a, const struct semver *b)
{
    int c;

    if ((c = cmp_u64(a->major, b->major)) != 0 || (c = cmp_u64(a->minor, b->minor)) != 0 ||
        (c = cmp_u64(a->patch, b->patch)) != 0)
        return c;
    if (a->pre == NULL || b->pre == NULL)
        return (a->pre == NULL) - (b->pre == NULL);
    return cmp_pre(a->pre, b->pre);
}

int semver_cmp_names(const struct semver *a, const char *name_a, const struct semver *b,
                     const char *name_b)
{
    int c = semver_cmp(a, b);

    if (c != 0)
        return c;
    c = strcmp(name_a, name_b);
    return (c > 0) - (c < 0);
}
