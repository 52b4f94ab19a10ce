/* The http probe: a GET of the instance's path, through the HTTP client on the loop. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfg.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/probe.h"
#include "deploy/transport.h"
#include "plugins/builtin.h"
#include "plugins/httpc.h"

#define STATUSES_MAX 16

static const char *const keys[] = {"path", "expect_status", "body_contains", "body_max_bytes",
                                   NULL};

struct ctx {
    struct httpc *http;
    char *url;
    long statuses[STATUSES_MAX];
    size_t nstatuses;
    char *body_contains;
    size_t body_max;
    uint64_t timeout_ms;
    /* An instance on the target's loopback: the bridge to it, or why there is none. */
    char *unix_socket;
    const char *bridge_error; /* the bridge's last tunnel failure, "" when none */
    char *no_bridge;
    const char *target;
};

struct check {
    struct ctx *x;
    struct httpc_op *op;
    probe_done_fn done;
    void *arg;
};

static int check_config(const struct cfg *c, const cJSON *probe, struct err *err)
{
    const char *path = NULL, *body = NULL;
    const cJSON *st, *item;
    int64_t max = 0;
    size_t i;

    if (cfg_get_string(c, probe, "path", false, &path, err) != 0 ||
        cfg_get_string(c, probe, "body_contains", false, &body, err) != 0 ||
        cfg_get_int(c, probe, "body_max_bytes", false, 1, 16 * 1024 * 1024, &max, err) != 0)
        return -1;
    if (path != NULL) {
        if (path[0] != '/')
            return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(probe, "path"),
                             "a path starts with \"/\" (\"/health\")");
        for (i = 0; path[i] != '\0'; i++) {
            if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
                return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(probe, "path"),
                                 "character %zu of the path is a space or a control character: "
                                 "write it %%-encoded",
                                 i + 1);
        }
    }
    if (body != NULL && body[0] == '\0')
        return cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(probe, "body_contains"),
                         "an empty body_contains matches everything: leave it out");
    st = cfg_get(c, probe, "expect_status", cJSON_Array, false, err);
    if (st == NULL)
        return cfg_has(probe, "expect_status") ? -1 : 0;
    if (cJSON_GetArraySize(st) == 0 || cJSON_GetArraySize(st) > STATUSES_MAX)
        return cfg_error(c, err, st, "give 1 to %d status codes", STATUSES_MAX);
    cJSON_ArrayForEach(item, st)
    {
        if (!cJSON_IsNumber(item) || item->valuedouble != (double)(int)item->valuedouble ||
            item->valuedouble < 100 || item->valuedouble > 599)
            return cfg_error(c, err, item, "expected an HTTP status code (100 to 599)");
    }
    return 0;
}

static void *new_ctx(const struct probe_spec *spec, const struct probe_endpoint *ep)
{
    struct ctx *x = xcalloc(1, sizeof *x);
    const cJSON *v, *item;
    const char *path = "/health";

    x->http = ep->http;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(spec->config, "path")))
        path = v->valuestring;
    x->url = xasprintf(strchr(ep->host, ':') != NULL ? "http://[%s]:%u%s" : "http://%s:%u%s",
                       ep->host, ep->port, path);
    if (cJSON_IsArray(v = cJSON_GetObjectItemCaseSensitive(spec->config, "expect_status"))) {
        cJSON_ArrayForEach(item, v)
        {
            if (x->nstatuses < STATUSES_MAX)
                x->statuses[x->nstatuses++] = (long)item->valuedouble;
        }
    } else {
        x->statuses[x->nstatuses++] = 200;
    }
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(spec->config, "body_contains")))
        x->body_contains = xstrdup(v->valuestring);
    x->body_max = 64 * 1024;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(spec->config, "body_max_bytes")))
        x->body_max = (size_t)v->valuedouble;
    x->timeout_ms = spec->policy.timeout_ms;
    if (ep->via_target) {
        const char *bridge = NULL;
        struct err err;

        x->target = ep->target != NULL ? ep->target->name : "the target";
        switch (transport_bridge(ep->t, ep->host, ep->port, &bridge, &x->bridge_error, &err)) {
        case 1:
            x->unix_socket = xstrdup(bridge);
            break;
        case -1:
            x->no_bridge = xstrdup(err.msg);
            break;
        default:
            break; /* this machine: connect to it directly */
        }
    }
    return x;
}

static void free_ctx(void *arg)
{
    struct ctx *x = arg;

    free(x->url);
    free(x->body_contains);
    free(x->unix_socket);
    free(x->no_bridge);
    free(x);
}

static void answered(void *arg, const struct httpc_result *r)
{
    struct check *k = arg;
    struct ctx *x = k->x;
    struct probe_outcome o;
    size_t i;

    memset(&o, 0, sizeof o);
    o.latency_us = r->total_us;
    if (x->no_bridge != NULL) {
        o.verdict = PROBE_FAIL;
        snprintf(o.detail, sizeof o.detail, "no way through %.30s's SSH connection: %.120s",
                 x->target, x->no_bridge);
    } else if (!r->ok && x->unix_socket != NULL) {
        /* Through the target's SSH: a tunnel that could not be opened closes the bridge's end
         * at once, which curl calls an empty reply; the bridge knows why. */
        o.verdict = PROBE_FAIL;
        snprintf(o.detail, sizeof o.detail, "through SSH: %.180s",
                 x->bridge_error != NULL && x->bridge_error[0] != '\0' ? x->bridge_error
                                                                       : r->error);
    } else if (!r->ok) {
        o.verdict = r->refused ? PROBE_GONE : PROBE_FAIL;
        snprintf(o.detail, sizeof o.detail, "%.190s", r->refused ? "connection refused" : r->error);
    } else {
        for (i = 0; i < x->nstatuses && x->statuses[i] != r->status; i++)
            ;
        if (i == x->nstatuses) {
            o.verdict = PROBE_FAIL;
            snprintf(o.detail, sizeof o.detail, "HTTP %ld", r->status);
        } else if (x->body_contains != NULL && strstr(r->body, x->body_contains) == NULL) {
            o.verdict = PROBE_FAIL;
            snprintf(o.detail, sizeof o.detail, "HTTP %ld, but the body has no \"%.60s\"%s",
                     r->status, x->body_contains, r->body_cut ? " in its first bytes" : "");
        } else {
            o.verdict = PROBE_OK;
            snprintf(o.detail, sizeof o.detail, "HTTP %ld", r->status);
        }
    }
    k->done(k->arg, &o);
    free(k);
}

static void *start(void *arg, probe_done_fn done, void *done_arg)
{
    struct ctx *x = arg;
    struct check *k = xcalloc(1, sizeof *k);
    struct httpc_req req;

    k->x = x;
    k->done = done;
    k->arg = done_arg;
    memset(&req, 0, sizeof req);
    req.url = x->url;
    /* A little past the health check's own timeout: the check ends it, with its message. */
    req.timeout_ms = x->timeout_ms + 1000;
    req.body_max = x->body_max;
    req.unix_socket = x->unix_socket;
    if (x->no_bridge != NULL)
        req.unix_socket = "/nonexistent/n3ctl-no-bridge"; /* fails at once, said in answered */
    k->op = httpc_request(x->http, &req, answered, k);
    return k;
}

static void cancel(void *arg, void *check)
{
    struct check *k = check;

    (void)arg;
    httpc_cancel(k->op);
    free(k);
}

static const struct health_check_ops ops = {start, cancel};

const struct probe_kind probe_http = {
    .name = "http",
    .keys = keys,
    .check = check_config,
    .new_ctx = new_ctx,
    .free_ctx = free_ctx,
    .ops = &ops,
};
