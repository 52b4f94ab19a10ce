/* The Prometheus text exposition format, read line by line (see promtext.h). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "plugins/promtext.h"

/* One line being read: p moves over it; names and unescaped values go to the scratch. */
struct lexer {
    const char *p, *end;
    char *out; /* the scratch: at least twice the line's length */
    size_t used;
    char why[120];
};

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

static void skip_blanks(struct lexer *x)
{
    while (x->p < x->end && blank(*x->p))
        x->p++;
}

static bool name_start(char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool name_char(char c, bool colon)
{
    return name_start(c, colon) || (c >= '0' && c <= '9');
}

/* A name into the scratch; NULL (why said) when there is none. */
static const char *lex_name(struct lexer *x, bool colon, const char *what)
{
    const char *s = x->p;
    char *o;

    if (x->p >= x->end || !name_start(*x->p, colon)) {
        snprintf(x->why, sizeof x->why, "expected %s", what);
        return NULL;
    }
    while (x->p < x->end && name_char(*x->p, colon))
        x->p++;
    o = x->out + x->used;
    memcpy(o, s, (size_t)(x->p - s));
    o[x->p - s] = '\0';
    x->used += (size_t)(x->p - s) + 1;
    return o;
}

/* A quoted label value, unescaped, into the scratch. */
static const char *lex_value(struct lexer *x)
{
    char *o = x->out + x->used, *w = o;

    if (x->p >= x->end || *x->p != '"') {
        snprintf(x->why, sizeof x->why, "expected a label value in double quotes");
        return NULL;
    }
    x->p++;
    for (;;) {
        char c;

        if (x->p >= x->end) {
            snprintf(x->why, sizeof x->why, "a label value without its closing quote");
            return NULL;
        }
        c = *x->p++;
        if (c == '"')
            break;
        if (c == '\\') {
            if (x->p >= x->end) {
                snprintf(x->why, sizeof x->why, "a label value without its closing quote");
                return NULL;
            }
            c = *x->p++;
            if (c == 'n') {
                c = '\n';
            } else if (c != '\\' && c != '"') {
                snprintf(x->why, sizeof x->why, "\\%c in a label value (only \\\\, \\\" and \\n)",
                         c >= ' ' && c < 0x7f ? c : '?');
                return NULL;
            }
        }
        *w++ = c;
    }
    *w = '\0';
    x->used += (size_t)(w - o) + 1;
    return o;
}

/* A float as the format writes it: digits, sign, point, exponent; or NaN, +Inf, -Inf. */
static bool parse_float(const char *s, size_t n, double *out)
{
    char buf[64], *end;
    size_t i;

    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strcasecmp(buf, "nan") == 0) {
        *out = NAN;
        return true;
    }
    if (strcasecmp(buf, "+inf") == 0 || strcasecmp(buf, "inf") == 0) {
        *out = INFINITY;
        return true;
    }
    if (strcasecmp(buf, "-inf") == 0) {
        *out = -INFINITY;
        return true;
    }
    /* strtod takes hex, "infinity" and "nan(...)": the format has none of them. */
    for (i = 0; i < n; i++) {
        if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '.' || buf[i] == 'e' || buf[i] == 'E' ||
              buf[i] == '+' || buf[i] == '-'))
            return false;
    }
    errno = 0;
    *out = strtod(buf, &end);
    return *end == '\0' && end != buf && errno != ERANGE;
}

static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    char buf[32], *end;
    long long v;

    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-'))
        return false;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (*end != '\0' || errno != 0)
        return false;
    *out = v;
    return true;
}

/* A token up to the next blank or the end. */
static size_t token(struct lexer *x, const char **start)
{
    *start = x->p;
    while (x->p < x->end && !blank(*x->p))
        x->p++;
    return (size_t)(x->p - *start);
}

/* A sample line: 0, or -1 with x->why. */
static int sample_line(struct lexer *x, struct promtext_sample *s, struct promtext_label *labels)
{
    const char *tok;
    size_t n, i;

    memset(s, 0, sizeof *s);
    s->labels = labels;
    s->name = lex_name(x, true, "a metric name");
    if (s->name == NULL)
        return -1;
    skip_blanks(x);
    if (x->p < x->end && *x->p == '{') {
        x->p++;
        for (;;) {
            const char *name, *value;

            skip_blanks(x);
            if (x->p < x->end && *x->p == '}') {
                x->p++;
                break;
            }
            if (s->nlabels == PROMTEXT_LABELS_MAX) {
                snprintf(x->why, sizeof x->why, "more than %d labels", PROMTEXT_LABELS_MAX);
                return -1;
            }
            name = lex_name(x, false, "a label name or '}'");
            if (name == NULL)
                return -1;
            skip_blanks(x);
            if (x->p >= x->end || *x->p != '=') {
                snprintf(x->why, sizeof x->why, "expected '=' after the label name %.40s", name);
                return -1;
            }
            x->p++;
            skip_blanks(x);
            value = lex_value(x);
            if (value == NULL)
                return -1;
            for (i = 0; i < s->nlabels; i++) {
                if (strcmp(labels[i].name, name) == 0) {
                    snprintf(x->why, sizeof x->why, "the label %.40s twice", name);
                    return -1;
                }
            }
            labels[s->nlabels].name = name;
            labels[s->nlabels++].value = value;
            skip_blanks(x);
            if (x->p < x->end && *x->p == ',') {
                x->p++;
                continue;
            }
            if (x->p < x->end && *x->p == '}') {
                x->p++;
                break;
            }
            snprintf(x->why, sizeof x->why, "expected ',' or '}' after a label");
            return -1;
        }
        skip_blanks(x);
    }
    if (x->p == x->end || !blank(x->p[-1])) {
        snprintf(x->why, sizeof x->why, "expected a blank, then the value");
        return -1;
    }
    n = token(x, &tok);
    if (!parse_float(tok, n, &s->value)) {
        snprintf(x->why, sizeof x->why, "the value \"%.*s\" is not a number",
                 (int)(n > 40 ? 40 : n), tok);
        return -1;
    }
    skip_blanks(x);
    if (x->p < x->end) {
        n = token(x, &tok);
        if (!parse_int64(tok, n, &s->timestamp_ms)) {
            snprintf(x->why, sizeof x->why, "the timestamp \"%.*s\" is not an integer",
                     (int)(n > 40 ? 40 : n), tok);
            return -1;
        }
        s->has_timestamp = true;
        skip_blanks(x);
        if (x->p < x->end) {
            snprintf(x->why, sizeof x->why, "something after the timestamp");
            return -1;
        }
    }
    return 0;
}

/* "# TYPE name type", "# HELP name ...", or another comment. */
static void comment_line(struct lexer *x, const struct promtext_handler *h)
{
    const char *kw, *family, *type;
    size_t n;

    x->p++; /* '#' */
    skip_blanks(x);
    n = token(x, &kw);
    if (n != 4 || memcmp(kw, "TYPE", 4) != 0 || h->type == NULL)
        return;
    skip_blanks(x);
    family = lex_name(x, true, "a metric name");
    if (family == NULL)
        return;
    skip_blanks(x);
    n = token(x, &type);
    if (n == 0)
        return;
    {
        char *o = x->out + x->used;

        memcpy(o, type, n);
        o[n] = '\0';
        x->used += n + 1;
        h->type(h->arg, family, o);
    }
}

static void bad(struct promtext_stats *st, unsigned line, const char *why)
{
    st->bad++;
    if (st->first_bad_line == 0) {
        st->first_bad_line = line;
        snprintf(st->first_bad, sizeof st->first_bad, "line %u: %s", line, why);
    }
}

void promtext_parse(const char *text, size_t len, const struct promtext_handler *h,
                    struct promtext_stats *st)
{
    struct promtext_label labels[PROMTEXT_LABELS_MAX];
    char *scratch = xmalloc(2 * PROMTEXT_LINE_MAX + 16);
    const char *p = text, *end = text + len;
    unsigned line = 0;

    memset(st, 0, sizeof *st);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        struct lexer x;

        line++;
        st->lines++;
        x.p = p;
        x.end = le;
        p = nl != NULL ? nl + 1 : end;
        if (x.end > x.p && x.end[-1] == '\r')
            x.end--;
        if ((size_t)(x.end - x.p) > PROMTEXT_LINE_MAX) {
            bad(st, line, "a line longer than 64 KiB");
            continue;
        }
        if (memchr(x.p, '\0', (size_t)(x.end - x.p)) != NULL) {
            bad(st, line, "a NUL byte");
            continue;
        }
        x.out = scratch;
        x.used = 0;
        x.why[0] = '\0';
        skip_blanks(&x);
        if (x.p == x.end)
            continue;
        if (*x.p == '#') {
            st->comments++;
            comment_line(&x, h);
            continue;
        }
        {
            struct promtext_sample s;

            if (sample_line(&x, &s, labels) != 0) {
                bad(st, line, x.why);
                continue;
            }
            s.line = line;
            st->samples++;
            if (h->sample != NULL)
                h->sample(h->arg, &s);
        }
    }
    free(scratch);
}

const char *promtext_label(const struct promtext_sample *s, const char *name)
{
    size_t i;

    for (i = 0; i < s->nlabels; i++) {
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    }
    return NULL;
}
