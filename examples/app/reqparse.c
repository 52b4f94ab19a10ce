/* HTTP/1.1 request heads, strictly (see reqparse.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <string.h>
#include <strings.h>

#include "reqparse.h"

static int error(struct request *req, int status, const char *why)
{
    req->status = status;
    req->why = why;
    return REQ_ERROR;
}

/* tchar of RFC 9110 5.6.2: the characters of methods and header names. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A header value's characters: field-vchar, space, tab and obs-text. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* The Connection header's options, a comma-separated list: close and keep-alive. */
static void connection_options(const char *v, size_t n, bool *close, bool *keep)
{
    size_t i = 0;

    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (name_is(v + s, e - s, "close"))
            *close = true;
        else if (name_is(v + s, e - s, "keep-alive"))
            *keep = true;
    }
}

/* The request target: origin-form ("/a?b"), absolute-form ("http://host/a") or "*". */
static int parse_target(const char *t, size_t n, struct request *req)
{
    size_t i, end;

    for (i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return error(req, 400, "bad character in the request target");
    if (n == 1 && t[0] == '*') {
        req->path = t;
        req->path_len = 1;
        return 0;
    }
    if (t[0] != '/') {
        size_t skip;
        if (n > 7 && strncasecmp(t, "http://", 7) == 0)
            skip = 7;
        else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
            skip = 8;
        else
            return error(req, 400, "the request target is not a path");
        t += skip;
        n -= skip;
        for (i = 0; i < n && t[i] != '/' && t[i] != '?' && t[i] != '#'; i++)
            ;
        if (i == 0)
            return error(req, 400, "the request target has no host");
        t += i;
        n -= i;
        if (n == 0 || t[0] != '/') {
            /* "http://host" and "http://host?q" ask for the root */
            req->path = "/";
            req->path_len = 1;
            return 0;
        }
    }
    for (end = 0; end < n && t[end] != '?' && t[end] != '#'; end++)
        ;
    req->path = t;
    req->path_len = end;
    return 0;
}

static int parse_request_line(const char *s, size_t n, struct request *req)
{
    const char *sp1 = memchr(s, ' ', n), *sp2, *v;
    size_t mlen, vlen, i;

    if (sp1 == NULL || sp1 == s)
        return error(req, 400, "malformed request line");
    mlen = (size_t)(sp1 - s);
    for (i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)s[i]))
            return error(req, 400, "bad character in the method");
    sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
    if (sp2 == NULL || sp2 == sp1 + 1)
        return error(req, 400, "malformed request line");
    v = sp2 + 1;
    vlen = n - (size_t)(v - s);
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return error(req, 400, "malformed HTTP version");
    if (v[5] != '1')
        return error(req, 505, "only HTTP/1.0 and HTTP/1.1 are served here");
    req->minor = v[7] == '0' ? 0 : 1;
    if (mlen == 3 && memcmp(s, "GET", 3) == 0)
        req->method = REQ_GET;
    else if (mlen == 4 && memcmp(s, "HEAD", 4) == 0)
        req->method = REQ_HEAD;
    else
        req->method = REQ_OTHER;
    return parse_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), req);
}

/* Content-Length: digits only; the same value twice is allowed (RFC 9110 8.6), two values
 * are not: they would let two readers frame the body differently. */
static int content_length(const char *v, size_t n, bool *seen, uint64_t *out, struct request *req)
{
    uint64_t x = 0;
    size_t i;

    if (n == 0 || n > 18)
        return error(req, 400, "bad Content-Length");
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return error(req, 400, "bad Content-Length");
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (*seen && x != *out)
        return error(req, 400, "two different Content-Length headers");
    *seen = true;
    *out = x;
    return 0;
}

static int parse_head(const char *buf, size_t len, struct request *req)
{
    const char *p = buf, *end = buf + len;
    bool first = true, close = false, keep = false, have_length = false, chunked = false;
    unsigned hosts = 0, headers = 0;

    req->content_length = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *colon, *v, *ve;
        size_t n = (size_t)(nl - p);

        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (memchr(p, '\r', n) != NULL)
            return error(req, 400, "bare CR in the request head");
        if (n == 0)
            break; /* the empty line that ends the head */
        if (first) {
            if (parse_request_line(p, n, req) != 0)
                return REQ_ERROR;
            first = false;
            p = nl + 1;
            continue;
        }
        if (++headers > REQ_HEADERS_MAX)
            return error(req, 431, "too many header lines");
        if (p[0] == ' ' || p[0] == '\t')
            return error(req, 400, "folded header line");
        colon = memchr(p, ':', n);
        if (colon == NULL || colon == p)
            return error(req, 400, "malformed header line");
        for (v = p; v < colon; v++)
            if (!is_tchar((unsigned char)*v))
                return error(req, 400, "bad character in a header name");
        for (v = colon + 1, ve = p + n; v < ve; v++)
            if (!is_value_char((unsigned char)*v))
                return error(req, 400, "control character in a header value");
        v = colon + 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (name_is(p, (size_t)(colon - p), "connection")) {
            connection_options(v, (size_t)(ve - v), &close, &keep);
        } else if (name_is(p, (size_t)(colon - p), "content-length")) {
            if (content_length(v, (size_t)(ve - v), &have_length, &req->content_length, req) != 0)
                return REQ_ERROR;
        } else if (name_is(p, (size_t)(colon - p), "transfer-encoding")) {
            chunked = true;
        } else if (name_is(p, (size_t)(colon - p), "host")) {
            hosts++;
        }
        p = nl + 1;
    }
    if (chunked && have_length)
        return error(req, 400, "both Transfer-Encoding and Content-Length");
    if (chunked)
        return error(req, 501, "request bodies with Transfer-Encoding are not supported");
    if (hosts > 1)
        return error(req, 400, "more than one Host header");
    if (req->minor == 1 && hosts == 0)
        return error(req, 400, "an HTTP/1.1 request needs a Host header");
    req->keep_alive = !close && (req->minor == 1 || keep);
    return REQ_DONE;
}

int reqparse_feed(struct reqparse *p, const char *buf, size_t len, struct request *req)
{
    size_t start = 0, found = 0, i;

    /* Empty lines before a request line are skipped (RFC 9112 2.2): some clients send a CRLF
     * after a body. They count towards the bound. */
    while (start < len && (buf[start] == '\n' || buf[start] == '\r')) {
        if (buf[start] == '\r' && (start + 1 >= len || buf[start + 1] != '\n')) {
            if (start + 1 >= len)
                break;
            return error(req, 400, "bare CR in the request head");
        }
        start++;
    }
    /* The head ends with an empty line: "\n\n" or "\n\r\n". Resume 2 bytes back: the end may
     * straddle what came before and what comes now. */
    i = p->scanned >= start + 2 ? p->scanned - 2 : start;
    for (; i < len && found == 0; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            found = i + 2;
        else if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            found = i + 3;
    }
    if (found == 0) {
        p->scanned = len;
        if (len <= REQ_HEAD_MAX)
            return REQ_INCOMPLETE;
        if (start == len)
            return error(req, 400, "nothing but empty lines");
        if (memchr(buf + start, '\n', len - start) == NULL)
            return error(req, 414, "the request line is too long");
        return error(req, 431, "the request head is too large");
    }
    if (found > REQ_HEAD_MAX)
        return error(req, 431, "the request head is too large");
    req->head_len = found;
    return parse_head(buf + start, found - start, req);
}
