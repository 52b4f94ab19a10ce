/* What the terminal can do, and the one way outside text is shown on it. */
#include "config.h"

#include <locale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include <cjson/cJSON.h>

#include "cli/term.h"
#include "core/buf.h"
#include "core/xalloc.h"

bool term_is_tty(FILE *f)
{
    return isatty(fileno(f)) == 1;
}

unsigned term_width(FILE *f)
{
    struct winsize ws;

    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

unsigned term_height(FILE *f)
{
    struct winsize ws;

    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
        return ws.ws_row;
    return 24;
}

bool term_color(FILE *f)
{
    const char *term = getenv("TERM");
    const char *no = getenv("NO_COLOR");

    if (no != NULL && no[0] != '\0')
        return false;
    if (term == NULL || strcmp(term, "dumb") == 0)
        return false;
    return term_is_tty(f);
}

const char *term_sgr(bool on, const char *seq)
{
    return on ? seq : "";
}

/* The columns a character takes on a terminal: wcwidth in a UTF-8 locale (made once, for this
 * thread only while asked, so the process's locale does not matter); 1 for ASCII, for what
 * wcwidth does not know, and when there is no C.UTF-8 locale. */
static size_t char_width(uint32_t cp)
{
    static locale_t utf8;
    static bool tried;
    locale_t saved;
    int w;

    if (cp < 0x80)
        return 1;
    if (!tried) {
        tried = true;
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    if (utf8 == (locale_t)0)
        return 1;
    saved = uselocale(utf8);
    w = wcwidth((wchar_t)cp);
    uselocale(saved);
    return w < 0 ? 1 : (size_t)w;
}

static bool is_c1(uint32_t cp)
{
    return cp >= 0x80 && cp <= 0x9f;
}

#define KEEP_LINES 1u /* newlines and tabs stay */

/*
 * The one place outside text is made safe: appends the shown form of s (n bytes) to b, whole
 * characters only, while it fits max_cols columns and max_bytes bytes. Returns the bytes of s
 * used (n when all of it fit); *cols gets the columns appended.
 */
static size_t add_safe(struct buf *b, const char *s, size_t n, unsigned flags, size_t max_cols,
                       size_t max_bytes, size_t *cols)
{
    size_t i = 0, used = 0, bytes = 0;

    while (i < n) {
        uint32_t cp = 0;
        size_t len = utf8_decode(s + i, n - i, &cp), w, outlen;
        const char *out = s + i;

        if ((flags & KEEP_LINES) && len == 1 && (cp == '\n' || cp == '\t')) {
            w = 0;
        } else if (len == 0 || cp < 0x20 || cp == 0x7f || is_c1(cp)) {
            out = "?";
            w = 1;
            len = len == 0 ? 1 : len; /* a byte that is not UTF-8: one '?' a byte */
        } else {
            w = char_width(cp);
        }
        outlen = out == s + i ? len : 1;
        if (used + w > max_cols || bytes + outlen > max_bytes)
            break;
        buf_add(b, out, outlen);
        used += w;
        bytes += outlen;
        i += len;
    }
    *cols = used;
    return i;
}

size_t term_add_shown(struct buf *b, const char *s, size_t max)
{
    size_t n, cols;

    if (s == NULL)
        return 0;
    n = strlen(s);
    if (add_safe(b, s, n, 0, max, SIZE_MAX, &cols) < n) {
        buf_adds(b, "...");
        cols += 3;
    }
    return cols;
}

size_t term_add_fit(struct buf *b, const char *s, size_t width)
{
    size_t n, cols, before = b->len;

    if (s == NULL)
        return 0;
    n = strlen(s);
    if (add_safe(b, s, n, 0, width, SIZE_MAX, &cols) < n && width > 3) {
        buf_truncate(b, before);
        add_safe(b, s, n, 0, width - 3, SIZE_MAX, &cols);
        buf_adds(b, "...");
        cols += 3;
    }
    return cols;
}

void term_add_cell(struct buf *b, const char *s, size_t width)
{
    size_t cols = term_add_fit(b, s, width);

    for (; cols < width; cols++)
        buf_addc(b, ' ');
}

void term_add_text(struct buf *b, const char *s, size_t len)
{
    size_t cols;

    add_safe(b, s, len, KEEP_LINES, SIZE_MAX, SIZE_MAX, &cols);
}

const char *term_shown(char *out, size_t len, const char *s)
{
    struct buf b;
    size_t n, cols;

    if (len == 0)
        return out;
    n = s != NULL ? strlen(s) : 0;
    buf_init(&b);
    if (add_safe(&b, s, n, 0, SIZE_MAX, len - 1, &cols) < n && len > 4) {
        buf_reset(&b);
        add_safe(&b, s, n, 0, SIZE_MAX, len - 4, &cols);
        buf_adds(&b, "...");
    }
    memcpy(out, b.data, b.len + 1);
    buf_done(&b);
    return out;
}

void term_printf(FILE *f, const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    char *text;

    va_start(ap, fmt);
    text = xvasprintf(fmt, ap);
    va_end(ap);
    buf_init(&b);
    term_add_text(&b, text, strlen(text));
    fwrite(b.data, 1, b.len, f);
    buf_done(&b);
    free(text);
}

/* The length of an SGR sequence at s (ESC [ then digits, ';' and ':', then 'm'), or 0. */
static size_t sgr_len(const char *s, size_t n)
{
    size_t i;

    if (n < 3 || s[0] != '\033' || s[1] != '[')
        return 0;
    for (i = 2; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == ';' || s[i] == ':'); i++)
        ;
    return i < n && s[i] == 'm' ? i + 1 : 0;
}

bool term_add_output(struct buf *b, const char *s, size_t len)
{
    bool sgr = false;
    size_t i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp = 0;
        size_t n;

        if (c == '\033' && (n = sgr_len(s + i, len - i)) > 0) {
            buf_add(b, s + i, n);
            sgr = true;
            i += n;
        } else if (c < 0x20 || c == 0x7f) {
            if (c == '\t' || (c == '\r' && i + 1 == len))
                buf_addc(b, (char)c);
            else
                buf_addf(b, "^%c", c ^ 0x40);
            i++;
        } else if (c < 0x80) {
            buf_addc(b, (char)c);
            i++;
        } else if ((n = utf8_decode(s + i, len - i, &cp)) == 0) {
            if (c <= 0x9f)
                buf_addf(b, "\\x%02x", c);
            else
                buf_addc(b, (char)c);
            i++;
        } else {
            if (is_c1(cp))
                buf_addf(b, "\\u%04x", (unsigned)cp);
            else
                buf_add(b, s + i, n);
            i += n;
        }
    }
    return sgr;
}

static void put_json(FILE *f, const struct cJSON *doc, bool compact)
{
    char *text = compact ? cJSON_PrintUnformatted(doc) : cJSON_Print(doc), *clean;
    struct buf b;
    size_t i, n, len;

    if (text == NULL)
        fatal("out of memory (cJSON_Print)");
    clean = utf8_sanitize(text, strlen(text));
    cJSON_free(text);
    len = strlen(clean);
    buf_init(&b);
    /* Outside JSON's strings there is only ASCII without DEL: every DEL and C1 is in one.
     * clean is valid UTF-8 without NUL: each character decodes. */
    for (i = 0; i < len; i += n) {
        uint32_t cp = 0;

        n = utf8_decode(clean + i, len - i, &cp);
        if (cp == 0x7f || is_c1(cp))
            buf_addf(&b, "\\u%04x", (unsigned)cp);
        else
            buf_add(&b, clean + i, n);
    }
    buf_addc(&b, '\n');
    fwrite(b.data, 1, b.len, f);
    buf_done(&b);
    free(clean);
}

void term_put_json(FILE *f, const struct cJSON *doc)
{
    put_json(f, doc, false);
}

void term_put_json_line(FILE *f, const struct cJSON *doc)
{
    put_json(f, doc, true);
}
