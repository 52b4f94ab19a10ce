/* Configuration documents: strict JSON trees (core/json), and where each key and value is. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/json.h"
#include "core/xalloc.h"

#define NO_OFF           JSON_NO_OFF
#define NO_NODE          JSON_NO_POS
#define LINE_BLOCK       1024 /* bytes between two line-number marks */
#define EXCERPT_MAX      20   /* bytes of text shown after "near" */
#define KEY_SHOWN_MAX    64   /* bytes of one key shown in a path */
#define NAME_SHOWN_MAX   200  /* bytes of the file name shown in a message */
#define PATH_SHOWN_MAX   300  /* bytes of the key path shown in a message */
#define LIST_SHOWN_MAX   400  /* bytes of "valid keys: ..." */
#define SUGGEST_MAX      256  /* longer words are never compared */
#define NUMBER_SHOWN_MAX 40   /* bytes of a number shown in a message */

/* Where lines stand at the first byte of each LINE_BLOCK, so a position costs one block scan. */
struct line_mark {
    uint32_t line;
    uint32_t line_start;
};

struct cfg {
    char *name;
    char *text; /* len bytes and a NUL */
    size_t len;
    bool bom;
    cJSON *root;
    struct line_mark *marks;
    struct json_index ix; /* every node, in document order; the root first */
    uint32_t *slots;      /* open addressing by node pointer: an index in ix.pos, or NO_NODE */
    size_t slot_mask;
};

/* Text helpers. */

static bool is_cont(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

/* The longest prefix of s (len bytes) of at most max bytes that ends on a character boundary. */
static size_t utf8_head(const char *s, size_t len, size_t max)
{
    size_t n;

    if (len <= max)
        return len;
    n = max;
    while (n > 0 && is_cont(s[n]))
        n--;
    return n;
}

/* Append s, cutting out its middle with "..." when it is longer than max bytes. */
static void add_cut_middle(struct buf *b, const char *s, size_t len, size_t max)
{
    size_t head, tail;

    if (len <= max) {
        buf_add(b, s, len);
        return;
    }
    head = utf8_head(s, len, max / 3);
    tail = len - (max - max / 3 - 3);
    while (tail < len && is_cont(s[tail]))
        tail++;
    buf_add(b, s, head);
    buf_adds(b, "...");
    buf_add(b, s + tail, len - tail);
}

/* Append s as a JSON string of at most max bytes of s, ending in ... inside the quotes when cut. */
static void add_quoted(struct buf *b, const char *s, size_t len, size_t max)
{
    size_t n = utf8_head(s, len, max);

    buf_add_json_string(b, s, n);
    if (n < len) {
        b->len--;
        buf_adds(b, "...\"");
    }
}

/* Copy a message into err, ending it in "..." when it does not fit. */
static int set_bounded(struct err *err, const char *s, size_t len)
{
    size_t n;

    if (len < ERR_MSG_MAX)
        return err_set(err, "%s", s);
    n = utf8_head(s, len, ERR_MSG_MAX - 4);
    return err_set(err, "%.*s...", (int)n, s);
}

/* Positions. */

static void build_marks(struct cfg *c)
{
    size_t nmarks = c->len / LINE_BLOCK + 1, k, p = 0, line_start = 0;
    uint32_t line = 1;
    const char *nl;

    c->marks = xreallocarray(NULL, nmarks, sizeof *c->marks);
    for (k = 0; k < nmarks; k++) {
        size_t start = k * LINE_BLOCK;

        while (p < start && (nl = memchr(c->text + p, '\n', start - p)) != NULL) {
            line++;
            p = line_start = (size_t)(nl - c->text) + 1;
        }
        p = start;
        c->marks[k].line = line;
        c->marks[k].line_start = (uint32_t)line_start;
    }
}

/* 1-based line and byte column of an offset (at most len); a UTF-8 BOM takes no columns. */
static void offset_pos(const struct cfg *c, size_t off, unsigned *line, unsigned *col)
{
    const struct line_mark *m = &c->marks[off / LINE_BLOCK];
    size_t p = off / LINE_BLOCK * LINE_BLOCK, line_start = m->line_start;
    unsigned ln = m->line;
    const char *nl;

    while (p < off && (nl = memchr(c->text + p, '\n', off - p)) != NULL) {
        ln++;
        p = line_start = (size_t)(nl - c->text) + 1;
    }
    *line = ln;
    *col = (unsigned)(off - line_start + 1);
    if (ln == 1 && c->bom && off >= 3)
        *col -= 3;
}

static size_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static const struct json_pos *find_node(const struct cfg *c, const cJSON *node)
{
    size_t i;

    if (c == NULL || node == NULL || c->slots == NULL)
        return NULL;
    for (i = hash_ptr(node) & c->slot_mask; c->slots[i] != NO_NODE; i = (i + 1) & c->slot_mask) {
        if (c->ix.pos[c->slots[i]].node == node)
            return &c->ix.pos[c->slots[i]];
    }
    return NULL;
}

static void build_slots(struct cfg *c)
{
    size_t cap = 16, i, j;

    while (cap < (size_t)c->ix.n * 2)
        cap *= 2;
    c->slots = xreallocarray(NULL, cap, sizeof *c->slots);
    memset(c->slots, 0xff, cap * sizeof *c->slots);
    c->slot_mask = cap - 1;
    for (i = 0; i < c->ix.n; i++) {
        for (j = hash_ptr(c->ix.pos[i].node) & c->slot_mask; c->slots[j] != NO_NODE;
             j = (j + 1) & c->slot_mask)
            ;
        c->slots[j] = (uint32_t)i;
    }
}

/* Messages. */

static const char *found_name(const cJSON *node)
{
    if (cJSON_IsTrue(node))
        return "true";
    if (cJSON_IsFalse(node))
        return "false";
    return cfg_type_name(node);
}

/* "NAME:LINE:COL: PATH: msg"; off is SIZE_MAX when there is no position, path may be NULL. */
static int report(const struct cfg *c, struct err *err, size_t off, const struct buf *path,
                  const char *msg)
{
    struct buf b;
    unsigned line, col;
    int rc;

    buf_init(&b);
    add_cut_middle(&b, c->name, strlen(c->name), NAME_SHOWN_MAX);
    if (off != SIZE_MAX) {
        offset_pos(c, off, &line, &col);
        buf_addf(&b, ":%u:%u", line, col);
    }
    buf_adds(&b, ": ");
    if (path != NULL && path->len > 0) {
        add_cut_middle(&b, path->data, path->len, PATH_SHOWN_MAX);
        buf_adds(&b, ": ");
    }
    buf_adds(&b, msg);
    rc = set_bounded(err, b.data, b.len);
    buf_done(&b);
    return rc;
}

static int report_node(const struct cfg *c, struct err *err, const cJSON *node, bool at_key,
                       const char *msg)
{
    const struct json_pos *np = find_node(c, node);
    struct buf path;
    size_t off = SIZE_MAX;
    int rc;

    buf_init(&path);
    if (np != NULL) {
        off = at_key && np->key_off != NO_OFF ? np->key_off : np->val_off;
        cfg_path(c, node, &path);
    }
    rc = report(c, err, off, &path, msg);
    buf_done(&path);
    return rc;
}

static int vreport_node(const struct cfg *c, struct err *err, const cJSON *node, bool at_key,
                        const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static int vreport_node(const struct cfg *c, struct err *err, const cJSON *node, bool at_key,
                        const char *fmt, va_list ap)
{
    char msg[ERR_MSG_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);

    if (n < 0) {
        snprintf(msg, sizeof msg, "(bad message format)");
    } else if ((size_t)n >= sizeof msg) {
        size_t keep = utf8_head(msg, sizeof msg - 1, sizeof msg - 4);

        memcpy(msg + keep, "...", 4);
    }
    return report_node(c, err, node, at_key, msg);
}

int cfg_error(const struct cfg *c, struct err *err, const cJSON *node, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vreport_node(c, err, node, false, fmt, ap);
    va_end(ap);
    return rc;
}

int cfg_key_error(const struct cfg *c, struct err *err, const cJSON *node, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vreport_node(c, err, node, true, fmt, ap);
    va_end(ap);
    return rc;
}

static void add_text_excerpt(struct buf *b, const struct cfg *c, size_t off)
{
    const char *t = c->text + off;
    size_t left = c->len - off, n = 0;

    while (n < left && n < EXCERPT_MAX && t[n] != '\n' && t[n] != '\r')
        n++;
    while (n > 0 && n < left && is_cont(t[n]))
        n--;
    buf_add_json_string(b, t, n);
    if (n < left && t[n] != '\n' && t[n] != '\r') {
        b->len--;
        buf_adds(b, "...\"");
    }
}

/* Why the text is not JSON, with the positions of what json_parse names. */
static int syntax_error(const struct cfg *c, const struct json_error *je, struct err *err)
{
    struct buf m;
    unsigned line, col;
    int rc;

    buf_init(&m);
    switch (je->why) {
    case JSON_NUL:
        buf_addf(&m, "the file holds a NUL byte (at offset %zu); is it a binary file?", je->off);
        break;
    case JSON_UTF8:
        buf_addf(&m, "not valid UTF-8 (byte 0x%02X at offset %zu); save the file as UTF-8",
                 je->value, je->off);
        break;
    case JSON_EMPTY:
        buf_adds(&m, "the file is empty; it should hold a JSON object");
        break;
    case JSON_EOF_STRING:
        offset_pos(c, je->other, &line, &col);
        buf_addf(&m, "not valid JSON: the file ends inside the string that starts at %u:%u", line,
                 col);
        break;
    case JSON_EOF_OBJECT:
    case JSON_EOF_ARRAY:
        offset_pos(c, je->other, &line, &col);
        buf_addf(&m,
                 "not valid JSON: the file ends inside the %s opened at %u:%u; is a %c missing?",
                 je->why == JSON_EOF_OBJECT ? "object" : "array", line, col,
                 je->why == JSON_EOF_OBJECT ? '}' : ']');
        break;
    case JSON_DEPTH:
        buf_addf(&m, "the document is nested more than %d levels deep", JSON_NESTING_MAX);
        break;
    case JSON_RAW_CONTROL:
        /* The excerpt would start with the character itself, perhaps the line's end. */
        buf_adds(&m, "not valid JSON: ");
        json_error_what(je, &m);
        break;
    default:
        buf_adds(&m, "not valid JSON near ");
        add_text_excerpt(&m, c, je->off);
        buf_adds(&m, "; ");
        if (je->why == JSON_TRAILING_COMMA) {
            offset_pos(c, je->other, &line, &col);
            buf_addf(&m, "remove the trailing comma at %u:%u", line, col);
        } else if (je->why == JSON_VALUE && je->depth == 0) {
            buf_adds(&m, "expected a JSON object");
        } else {
            json_error_what(je, &m);
        }
    }
    rc = report(c, err, je->off, NULL, m.data);
    buf_done(&m);
    return rc;
}

/* Loading. */

static bool only_whitespace(const char *t, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (t[i] != ' ' && t[i] != '\t' && t[i] != '\n' && t[i] != '\r')
            return false;
    }
    return true;
}

/* Takes text: len bytes with room for a NUL after them. */
static int load_owned(const char *name, char *text, size_t len, struct cfg **out, struct err *err)
{
    struct cfg *c = xcalloc(1, sizeof *c);
    struct json_error je;

    *out = NULL;
    c->name = xstrdup(name != NULL ? name : "(string)");
    c->text = text;
    c->len = len;
    text[len] = '\0';
    c->bom = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0;
    if (len >= NO_OFF) {
        struct buf m;

        buf_init(&m);
        add_cut_middle(&m, c->name, strlen(c->name), NAME_SHOWN_MAX);
        buf_addf(&m, ": the document is %zu bytes, more than the limit of %u bytes", len,
                 NO_OFF - 1);
        set_bounded(err, m.data, m.len);
        buf_done(&m);
        goto fail;
    }
    build_marks(c);
    if (len == 0 || (c->bom && len == 3)) {
        report(c, err, 0, NULL, "the file is empty; it should hold a JSON object");
        goto fail;
    }
    if (only_whitespace(text + (c->bom ? 3 : 0), len - (c->bom ? 3 : 0))) {
        report(c, err, 0, NULL,
               "the file is empty (only whitespace); it should hold a JSON object");
        goto fail;
    }
    /* One pass: the tree and the position of each of its nodes come from the same parser. */
    c->root = json_parse(text, len, &c->ix, &je);
    if (c->root == NULL) {
        syntax_error(c, &je, err);
        goto fail;
    }
    c->ix.pos = xreallocarray(c->ix.pos, c->ix.n, sizeof *c->ix.pos);
    build_slots(c);
    if (!cJSON_IsObject(c->root)) {
        cfg_error(c, err, c->root, "expected a JSON object at the top level, got %s",
                  found_name(c->root));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    cfg_free(c);
    return -1;
}

int cfg_load_string(const char *name, const char *text, size_t len, struct cfg **out,
                    struct err *err)
{
    char *copy = xmalloc(len + 1);

    memcpy(copy, text, len);
    return load_owned(name, copy, len, out, err);
}

static int file_error(struct err *err, const char *path, const char *what, int errnum)
{
    struct buf m;
    int rc;

    buf_init(&m);
    buf_addf(&m, "cannot %s ", what);
    add_cut_middle(&m, path, strlen(path), NAME_SHOWN_MAX);
    buf_addf(&m, ": %s", strerror(errnum));
    rc = set_bounded(err, m.data, m.len);
    buf_done(&m);
    return rc;
}

static int too_large(struct err *err, const char *path, long long size, size_t max_bytes)
{
    struct buf m;
    int rc;

    buf_init(&m);
    add_cut_middle(&m, path, strlen(path), NAME_SHOWN_MAX);
    if (size >= 0)
        buf_addf(&m, ": the file is %lld bytes, more than the limit of %zu bytes", size, max_bytes);
    else
        buf_addf(&m, ": the file is more than the limit of %zu bytes", max_bytes);
    rc = set_bounded(err, m.data, m.len);
    buf_done(&m);
    return rc;
}

int cfg_load_file(const char *path, size_t max_bytes, struct cfg **out, struct err *err)
{
    struct stat st;
    char *data;
    size_t len = 0, cap;
    ssize_t n;
    int fd, saved;

    *out = NULL;
    if (max_bytes == 0)
        max_bytes = CFG_MAX_BYTES_DEFAULT;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_error(err, path, "open", errno);
    if (fstat(fd, &st) != 0) {
        saved = errno;
        close(fd);
        return file_error(err, path, "read", saved);
    }
    /* open() takes a directory; say what read() would say. */
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return file_error(err, path, "read", EISDIR);
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max_bytes) {
        close(fd);
        return too_large(err, path, (long long)st.st_size, max_bytes);
    }
    /* Read at most one byte past the limit: the size can change, or be unknown (a pipe). */
    cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
    if (cap > max_bytes + 1)
        cap = max_bytes + 1;
    data = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap > max_bytes)
                break;
            cap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            data = xrealloc(data, cap + 1);
        }
        n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            saved = errno;
            free(data);
            close(fd);
            return file_error(err, path, "read", saved);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len > max_bytes) {
        free(data);
        return too_large(err, path, -1, max_bytes);
    }
    return load_owned(path, data, len, out, err);
}

void cfg_free(struct cfg *c)
{
    if (c == NULL)
        return;
    cJSON_Delete(c->root);
    free(c->name);
    free(c->text);
    free(c->marks);
    free(c->ix.pos);
    free(c->slots);
    free(c);
}

const cJSON *cfg_root(const struct cfg *c)
{
    return c->root;
}

const char *cfg_name(const struct cfg *c)
{
    return c->name;
}

void cfg_pos(const struct cfg *c, const cJSON *node, unsigned *line, unsigned *col)
{
    const struct json_pos *np = find_node(c, node);

    if (np == NULL) {
        *line = *col = 0;
        return;
    }
    offset_pos(c, np->val_off, line, col);
}

void cfg_key_pos(const struct cfg *c, const cJSON *node, unsigned *line, unsigned *col)
{
    const struct json_pos *np = find_node(c, node);

    if (np == NULL) {
        *line = *col = 0;
        return;
    }
    offset_pos(c, np->key_off != NO_OFF ? np->key_off : np->val_off, line, col);
}

static bool is_identifier(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
              (i > 0 && ch >= '0' && ch <= '9')))
            return false;
    }
    return i > 0;
}

/* Recursion is bounded by JSON_NESTING_MAX. */
static void add_path(const struct cfg *c, uint32_t idx, struct buf *out)
{
    const struct json_pos *np = &c->ix.pos[idx];
    const char *key = np->node->string;

    if (np->parent == NO_NODE)
        return;
    add_path(c, np->parent, out);
    if (np->key_off == NO_OFF) {
        buf_addf(out, "[%u]", np->index);
    } else if (key != NULL && is_identifier(key)) {
        size_t len = strlen(key);

        if (c->ix.pos[np->parent].parent != NO_NODE)
            buf_addc(out, '.');
        buf_add(out, key, len > KEY_SHOWN_MAX ? KEY_SHOWN_MAX : len);
        if (len > KEY_SHOWN_MAX)
            buf_adds(out, "...");
    } else {
        buf_addc(out, '[');
        add_quoted(out, key != NULL ? key : "", key != NULL ? strlen(key) : 0, KEY_SHOWN_MAX);
        buf_addc(out, ']');
    }
}

void cfg_path(const struct cfg *c, const cJSON *node, struct buf *out)
{
    const struct json_pos *np = find_node(c, node);

    if (np != NULL)
        add_path(c, (uint32_t)(np - c->ix.pos), out);
}

const char *cfg_type_name(const cJSON *node)
{
    switch (node != NULL ? node->type & 0xff : cJSON_Invalid) {
    case cJSON_Object:
        return "an object";
    case cJSON_Array:
        return "an array";
    case cJSON_String:
        return "a string";
    case cJSON_Number:
        return "a number";
    case cJSON_True:
    case cJSON_False:
        return "true or false";
    case cJSON_NULL:
        return "null";
    case cJSON_Raw:
        return "raw JSON";
    default:
        return "nothing";
    }
}

/* Checking objects. */

static int key_error_msg(const struct cfg *c, struct err *err, const cJSON *node,
                         const struct buf *m)
{
    return report_node(c, err, node, true, m->data);
}

static int unknown_key(const struct cfg *c, struct err *err, const cJSON *child,
                       const char *const *allowed)
{
    const char *hint = cfg_suggest(child->string, allowed);
    struct buf m;
    size_t i;
    int rc;

    buf_init(&m);
    buf_adds(&m, "unknown key; ");
    if (hint != NULL) {
        buf_adds(&m, "did you mean ");
        add_quoted(&m, hint, strlen(hint), KEY_SHOWN_MAX);
        buf_addc(&m, '?');
    } else if (allowed[0] == NULL) {
        buf_adds(&m, "no keys are allowed here");
    } else {
        buf_adds(&m, "valid keys: ");
        for (i = 0; allowed[i] != NULL; i++) {
            if (m.len + strlen(allowed[i]) > LIST_SHOWN_MAX) {
                buf_adds(&m, "...");
                break;
            }
            buf_adds(&m, allowed[i]);
            if (allowed[i + 1] != NULL)
                buf_adds(&m, ", ");
        }
    }
    rc = key_error_msg(c, err, child, &m);
    buf_done(&m);
    return rc;
}

static int duplicate_key(const struct cfg *c, struct err *err, const cJSON *second,
                         const cJSON *first)
{
    unsigned line, col;

    cfg_key_pos(c, first, &line, &col);
    return cfg_key_error(c, err, second, "duplicate key (first at %u:%u)", line, col);
}

static int member_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

    return strcmp(x->string, y->string);
}

/* Any keys, each once: sorting finds the duplicates in O(n log n) for objects of any size. */
static int check_unique(const struct cfg *c, const cJSON *node, struct err *err)
{
    const cJSON **m, *child, *first = NULL, *second = NULL;
    const struct json_pos *a, *b, *best = NULL;
    size_t n = 0, i, j;
    int rc = 0;

    for (child = node->child; child != NULL; child = child->next)
        n++;
    if (n < 2)
        return 0;
    m = xreallocarray(NULL, n, sizeof *m);
    for (i = 0, child = node->child; child != NULL; child = child->next)
        m[i++] = child;
    qsort(m, n, sizeof *m, member_cmp);
    for (i = 0; i < n; i = j) {
        const struct json_pos *lo = NULL, *lo2 = NULL;

        for (j = i; j < n && strcmp(m[i]->string, m[j]->string) == 0; j++) {
            a = find_node(c, m[j]);
            if (a == NULL)
                continue;
            if (lo == NULL || a->index < lo->index) {
                lo2 = lo;
                lo = a;
            } else if (lo2 == NULL || a->index < lo2->index) {
                lo2 = a;
            }
        }
        b = lo2;
        if (b != NULL && (best == NULL || b->index < best->index)) {
            best = b;
            first = lo->node;
            second = b->node;
        }
    }
    if (best != NULL)
        rc = duplicate_key(c, err, second, first);
    free(m);
    return rc;
}

int cfg_check_object(const struct cfg *c, const cJSON *node, const char *const *allowed,
                     struct err *err)
{
    const cJSON *child, **seen;
    size_t n = 0, i;
    int rc = 0;

    if (!cJSON_IsObject(node))
        return cfg_error(c, err, node, "expected an object, got %s", found_name(node));
    if (allowed == NULL)
        return check_unique(c, node, err);
    while (allowed[n] != NULL)
        n++;
    seen = xcalloc(n + 1, sizeof *seen);
    for (child = node->child; child != NULL; child = child->next) {
        for (i = 0; i < n && strcmp(allowed[i], child->string) != 0; i++)
            ;
        if (i == n) {
            rc = unknown_key(c, err, child, allowed);
            break;
        }
        if (seen[i] != NULL) {
            rc = duplicate_key(c, err, child, seen[i]);
            break;
        }
        seen[i] = child;
    }
    free(seen);
    return rc;
}

/* Getters. */

static int missing_key(const struct cfg *c, struct err *err, const cJSON *obj, const char *key)
{
    struct buf m;
    int rc;

    buf_init(&m);
    buf_adds(&m, "missing required key ");
    add_quoted(&m, key, strlen(key), KEY_SHOWN_MAX);
    rc = report_node(c, err, obj, false, m.data);
    buf_done(&m);
    return rc;
}

/* *item is the member or NULL; -1 when obj is not an object or a required member is missing. */
static int get_member(const struct cfg *c, const cJSON *obj, const char *key, bool required,
                      const cJSON **item, struct err *err)
{
    *item = NULL;
    if (!cJSON_IsObject(obj))
        return cfg_error(c, err, obj, "expected an object, got %s", found_name(obj));
    *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*item == NULL && required)
        return missing_key(c, err, obj, key);
    return 0;
}

int cfg_get_string(const struct cfg *c, const cJSON *obj, const char *key, bool required,
                   const char **out, struct err *err)
{
    const cJSON *item;

    if (get_member(c, obj, key, required, &item, err) < 0)
        return -1;
    if (item == NULL)
        return 0;
    if (!cJSON_IsString(item))
        return cfg_error(c, err, item, "expected a string, got %s", found_name(item));
    *out = item->valuestring;
    return 0;
}

int cfg_get_bool(const struct cfg *c, const cJSON *obj, const char *key, bool required, bool *out,
                 struct err *err)
{
    const cJSON *item;

    if (get_member(c, obj, key, required, &item, err) < 0)
        return -1;
    if (item == NULL)
        return 0;
    if (!cJSON_IsBool(item))
        return cfg_error(c, err, item, "expected true or false, got %s", found_name(item));
    *out = cJSON_IsTrue(item);
    return 0;
}

/* The number as written in the file (bounded), for messages. */
static void add_number_text(struct buf *b, const struct cfg *c, const cJSON *item)
{
    const struct json_pos *np = find_node(c, item);

    if (np == NULL) {
        buf_addf(b, "%.17g", item->valuedouble);
        return;
    }
    add_cut_middle(b, c->text + np->val_off,
                   json_number_len(c->text + np->val_off, c->len - np->val_off), NUMBER_SHOWN_MAX);
}

static bool plain_integer(const char *t, size_t left)
{
    size_t n = json_number_len(t, left), i;

    for (i = 0; i < n; i++) {
        if (t[i] == '.' || t[i] == 'e' || t[i] == 'E')
            return false;
    }
    return n > 0;
}

int cfg_get_int(const struct cfg *c, const cJSON *obj, const char *key, bool required, int64_t min,
                int64_t max, int64_t *out, struct err *err)
{
    const struct json_pos *np;
    const cJSON *item;
    bool ok = false;
    int64_t v = 0;
    struct buf m;
    int rc;

    if (get_member(c, obj, key, required, &item, err) < 0)
        return -1;
    if (item == NULL)
        return 0;
    if (!cJSON_IsNumber(item))
        return cfg_error(c, err, item, "expected an integer, got %s", found_name(item));
    np = find_node(c, item);
    if (np != NULL && plain_integer(c->text + np->val_off, c->len - np->val_off)) {
        /* Read the digits themselves: a double holds integers exactly only up to 2^53. */
        errno = 0;
        v = strtoll(c->text + np->val_off, NULL, 10);
        ok = errno == 0;
    } else {
        double d = item->valuedouble;

        if (isfinite(d) && d == floor(d) && d >= -0x1p63 && d < 0x1p63) {
            v = (int64_t)d;
            ok = true;
        }
    }
    if (ok && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    buf_init(&m);
    buf_adds(&m, "expected an integer");
    if (min != INT64_MIN && max != INT64_MAX)
        buf_addf(&m, " from %lld to %lld", (long long)min, (long long)max);
    else if (min != INT64_MIN)
        buf_addf(&m, " of at least %lld", (long long)min);
    else if (max != INT64_MAX)
        buf_addf(&m, " of at most %lld", (long long)max);
    else if (!ok && isfinite(item->valuedouble) && item->valuedouble == floor(item->valuedouble))
        buf_addf(&m, " from %lld to %lld", (long long)min, (long long)max);
    buf_adds(&m, ", got ");
    add_number_text(&m, c, item);
    rc = report_node(c, err, item, false, m.data);
    buf_done(&m);
    return rc;
}

int cfg_get_number(const struct cfg *c, const cJSON *obj, const char *key, bool required,
                   double min, double max, double *out, struct err *err)
{
    const cJSON *item;
    bool has_min = min > -HUGE_VAL && min != -DBL_MAX, has_max = max < HUGE_VAL && max != DBL_MAX;
    struct buf m;
    double d;
    int rc;

    if (get_member(c, obj, key, required, &item, err) < 0)
        return -1;
    if (item == NULL)
        return 0;
    if (!cJSON_IsNumber(item))
        return cfg_error(c, err, item, "expected a number, got %s", found_name(item));
    d = item->valuedouble;
    if (isfinite(d) && d >= min && d <= max) {
        *out = d;
        return 0;
    }
    buf_init(&m);
    if (has_min && has_max)
        buf_addf(&m, "expected a number from %.15g to %.15g", min, max);
    else if (has_min)
        buf_addf(&m, "expected a number of at least %.15g", min);
    else if (has_max)
        buf_addf(&m, "expected a number of at most %.15g", max);
    else
        buf_adds(&m, "expected a finite number");
    buf_adds(&m, ", got ");
    add_number_text(&m, c, item);
    rc = report_node(c, err, item, false, m.data);
    buf_done(&m);
    return rc;
}

const cJSON *cfg_get(const struct cfg *c, const cJSON *obj, const char *key, int type_mask,
                     bool required, struct err *err)
{
    static const struct {
        int mask;
        const char *name;
    } kinds[] = {
        {cJSON_Object, "an object"},
        {cJSON_Array, "an array"},
        {cJSON_String, "a string"},
        {cJSON_Number, "a number"},
        {cJSON_True | cJSON_False, "true or false"},
        {cJSON_NULL, "null"},
    };
    const cJSON *item;
    struct buf m;
    size_t i, n = 0, shown = 0;

    if (get_member(c, obj, key, required, &item, err) < 0 || item == NULL)
        return NULL;
    /* A mask naming either boolean takes both: "true or false" is one type to a reader. */
    if (type_mask & (cJSON_True | cJSON_False))
        type_mask |= cJSON_True | cJSON_False;
    if ((item->type & 0xff & type_mask) != 0)
        return item;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        n += (type_mask & kinds[i].mask) != 0;
    buf_init(&m);
    buf_adds(&m, "expected ");
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if ((type_mask & kinds[i].mask) == 0)
            continue;
        if (shown > 0)
            buf_adds(&m, shown + 1 == n ? " or " : ", ");
        buf_adds(&m, kinds[i].name);
        shown++;
    }
    if (shown == 0)
        buf_adds(&m, "nothing");
    buf_addf(&m, ", got %s", found_name(item));
    report_node(c, err, item, false, m.data);
    buf_done(&m);
    return NULL;
}

bool cfg_has(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) && cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

/* Suggestions. */

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Optimal string alignment distance, ignoring ASCII case; both lengths at most SUGGEST_MAX. */
static unsigned osa_distance(const char *a, size_t n, const char *b, size_t m)
{
    unsigned rows[3][SUGGEST_MAX + 1];
    unsigned *prev2 = rows[0], *prev = rows[1], *cur = rows[2], *tmp;
    size_t i, j;

    /* prev2 is read only from the second row on, when it holds row i - 2. */
    for (j = 0; j <= m; j++)
        prev[j] = (unsigned)j;
    for (i = 1; i <= n; i++) {
        cur[0] = (unsigned)i;
        for (j = 1; j <= m; j++) {
            unsigned cost = lower(a[i - 1]) != lower(b[j - 1]);
            unsigned v = prev[j - 1] + cost;

            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) && prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
        }
        tmp = prev2;
        prev2 = prev;
        prev = cur;
        cur = tmp;
    }
    return prev[m];
}

const char *cfg_suggest(const char *word, const char *const *candidates)
{
    size_t wlen = strnlen(word, SUGGEST_MAX + 1), clen, i;
    unsigned limit = wlen / 3 > 1 ? (unsigned)(wlen / 3) : 1, best = UINT_MAX, d;
    const char *found = NULL;
    bool tie = false;

    if (wlen > SUGGEST_MAX || candidates == NULL)
        return NULL;
    for (i = 0; candidates[i] != NULL; i++) {
        clen = strnlen(candidates[i], SUGGEST_MAX + 1);
        if (clen > SUGGEST_MAX || (clen > wlen ? clen - wlen : wlen - clen) > limit)
            continue;
        d = osa_distance(word, wlen, candidates[i], clen);
        if (d > limit || d > best)
            continue;
        if (d == best && found != NULL && strcmp(found, candidates[i]) != 0) {
            tie = true;
        } else if (d < best) {
            best = d;
            found = candidates[i];
            tie = false;
        }
    }
    if (found != NULL && !tie)
        return found;
    /* "timeout" for "timeout_seconds": a unique candidate that the word begins. */
    found = NULL;
    if (wlen < 3)
        return NULL;
    for (i = 0; candidates[i] != NULL; i++) {
        if (strncasecmp(candidates[i], word, wlen) == 0) {
            if (found != NULL)
                return NULL;
            found = candidates[i];
        }
    }
    return found;
}
