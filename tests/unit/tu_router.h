/* What a router (deploy/router.h) answered, for the router kinds' tests. */
#ifndef N3_TU_ROUTER_H
#define N3_TU_ROUTER_H

#include <stdbool.h>

struct router_view;

struct tu_answer {
    bool done;
    int rc;
    struct router_view *v; /* a copy (router_view_free), or NULL */
    char msg[2048];
};

/* A router_fn: keeps the answer in arg (a struct tu_answer). */
void tu_answer_cb(void *arg, int rc, const struct router_view *v, const char *msg);
/* For tu_wait: the answer came. */
bool tu_answered(void *arg);

#endif
