/*
 * HTTP/1.1 request heads (RFC 9112), parsed strictly: what the sample app must understand to
 * answer and to keep a connection's requests apart, and nothing it could misread. Bounded:
 * a head (request line and headers) of at most REQ_HEAD_MAX bytes and REQ_HEADERS_MAX header
 * lines. Incremental: the end of the head is searched only in the bytes not searched before,
 * so a client that sends one byte at a time costs no more than one that sends it whole.
 */
#ifndef N3APP_REQPARSE_H
#define N3APP_REQPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQ_HEAD_MAX    8192
#define REQ_HEADERS_MAX 100

enum req_method { REQ_GET, REQ_HEAD, REQ_OTHER };

struct request {
    enum req_method method;
    const char *path; /* into the buffer: the target's path, without query or the
                       * scheme://authority of an absolute-form target */
    size_t path_len;
    int minor;       /* HTTP/1.0 or HTTP/1.1 (a later 1.x is answered as 1.1) */
    bool keep_alive; /* by the version and the Connection header */
    uint64_t content_length;
    size_t head_len; /* bytes of the buffer the head took, empty lines before it included */
    int status;      /* REQ_ERROR: the answer (400, 414, 431, 501, 505) */
    const char *why; /* REQ_ERROR: a short reason, for the body */
};

enum reqparse_result { REQ_INCOMPLETE = 0, REQ_DONE = 1, REQ_ERROR = -1 };

/* Where the search for the end of the head stands; zero it for each new request. */
struct reqparse {
    size_t scanned;
};

/*
 * Look at the len bytes of buf that have arrived (the request starts at buf[0]). REQ_DONE fills
 * *req; REQ_ERROR gives req->status and why (the connection cannot be trusted any more: answer
 * and close it); REQ_INCOMPLETE asks for more bytes.
 */
int reqparse_feed(struct reqparse *p, const char *buf, size_t len, struct request *req);

#endif
