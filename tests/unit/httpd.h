/*
 * A small HTTP/1.1 server for the unit tests, on a test's loop (libuv TCP on 127.0.0.1), that
 * answers by path: /silent never answers; /big sends 100000 bytes; /fail is a 503 ("starting",
 * X-N3-Version: v2); any other path is a 200 with the path and a newline as its body, and the
 * headers X-N3-Version: v1.2.3 and X-N3-Slot: blue. Every response closes its connection.
 */
#ifndef N3_TEST_HTTPD_H
#define N3_TEST_HTTPD_H

#include <uv.h>

struct loop;
struct httpd_conn;

struct httpd {
    uv_tcp_t tcp;
    unsigned port;
    unsigned requests;        /* answered or not */
    char last_body[256];      /* the last request's body */
    struct httpd_conn *conns; /* open ones: closed by httpd_stop */
};

/* Listen on 127.0.0.1, on a port of the kernel's choosing (s->port). */
void httpd_start(struct loop *loop, struct httpd *s);
/* Close it and the connections still open, and wait until they are. */
void httpd_stop(struct loop *loop, struct httpd *s);

#endif
