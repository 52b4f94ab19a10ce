/*
 * n3switch: a traffic switch on a router connection that is already open, for bench/switch.
 * It opens the environment's router (deploy/traffic.h, the kind n3.json names) once, then for
 * each line on stdin, "W" (blue's weight on every target, green gets 100 - W), it writes a
 * mark to n3load's --mark-fifo (when given), applies the weights, reads them back from the
 * router and compares them with those asked, and prints "ok MICROSECONDS" (from the call to
 * the read-back) or "error MESSAGE". What a rollout controller does between two steps, without
 * the lock, the probes and the audit record that `n3ctl traffic set` adds around it.
 *
 *   n3switch -c n3.json [-e ENV] [--mark-fifo PATH]
 *
 * Exit status: 0 at the end of stdin, 1 when the router cannot be opened, 2 for bad arguments.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/traffic.h"
#include "plugins/builtin.h"

#define LINE_MAX_ 64

struct sw {
    struct loop *loop;
    struct traffic *traffic;
    unsigned *weights;
    bool done;
    int rc;
    char msg[1024];
};

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void set_done(void *arg, int rc, const struct router_view *view, const char *msg)
{
    struct sw *s = arg;

    s->rc = rc;
    s->msg[0] = '\0';
    if (rc != 0)
        snprintf(s->msg, sizeof s->msg, "%s", msg != NULL ? msg : "failed");
    else if (traffic_check_applied(s->traffic, s->weights, view, s->msg, sizeof s->msg) != 0)
        s->rc = -1;
    s->done = true;
    loop_stop(s->loop);
}

static void usage(FILE *f)
{
    fputs("usage: n3switch -c n3.json [-e ENV] [--mark-fifo PATH]\n"
          "Each line on stdin: blue's weight (0-100) on every target; green gets the rest.\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"env", required_argument, NULL, 'e'},
                                         {"mark-fifo", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *env_name = NULL, *fifo = NULL;
    struct inventory *inv = NULL;
    const struct inv_env *env;
    struct err err = {0};
    struct sw s = {0};
    char line[LINE_MAX_];
    int c, mark_fd = -1;
    unsigned seq = 0;

    while ((c = getopt_long(argc, argv, "c:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'e':
            env_name = optarg;
            break;
        case 'm':
            fifo = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    plugins_register_builtins();
    if (inventory_load(config, &inv, &err) != 0 || inventory_env(inv, env_name, &env, &err) != 0) {
        fprintf(stderr, "n3switch: %s\n", err.msg);
        inventory_free(inv);
        return 1;
    }
    if (fifo != NULL && (mark_fd = open(fifo, O_WRONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "n3switch: %s: %s\n", fifo, strerror(errno));
        inventory_free(inv);
        return 1;
    }
    s.loop = loop_new();
    s.traffic = traffic_open(s.loop, env, NULL, NULL, &err);
    if (s.traffic == NULL) {
        fprintf(stderr, "n3switch: %s\n", err.msg);
        loop_free(s.loop);
        inventory_free(inv);
        return 1;
    }
    size_t n = traffic_nservers(s.traffic);
    s.weights = xcalloc(n, sizeof *s.weights);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *end;
        unsigned long w = strtoul(line, &end, 10);
        if (end == line || w > 100 || (*end != '\n' && *end != '\0')) {
            printf("error: '%.*s' is not a weight from 0 to 100\n", (int)strcspn(line, "\n"), line);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            s.weights[i] =
                traffic_server(s.traffic, i)->slot == HS_BLUE ? (unsigned)w : 100u - (unsigned)w;
        if (mark_fd >= 0) {
            char mark[32];
            int len = snprintf(mark, sizeof mark, "switch-%u\n", ++seq);
            if (write(mark_fd, mark, (size_t)len) != len) {
                fprintf(stderr, "n3switch: writing the mark: %s\n", strerror(errno));
                break;
            }
        }
        uint64_t t0 = now_us();
        s.done = false;
        traffic_set(s.traffic, s.weights, set_done, &s);
        while (!s.done)
            loop_run(s.loop);
        if (s.rc == 0)
            printf("ok %llu\n", (unsigned long long)(now_us() - t0));
        else
            printf("error: %s\n", s.msg);
    }
    traffic_close(s.traffic);
    loop_run(s.loop); /* let the router's handles close */
    loop_free(s.loop);
    free(s.weights);
    if (mark_fd >= 0)
        close(mark_fd);
    inventory_free(inv);
    return 0;
}
