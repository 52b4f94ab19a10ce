/* What a router answered, for the router kinds' tests. */
#include "config.h"

#include <stdio.h>

#include "deploy/router.h"
#include "tests/unit/tu_router.h"

void tu_answer_cb(void *arg, int rc, const struct router_view *v, const char *msg)
{
    struct tu_answer *a = arg;

    a->done = true;
    a->rc = rc;
    a->v = v != NULL ? router_view_dup(v) : NULL;
    snprintf(a->msg, sizeof a->msg, "%s", msg != NULL ? msg : "");
}

bool tu_answered(void *arg)
{
    return ((struct tu_answer *)arg)->done;
}
