/* The built-in plugins, registered with the interfaces deploy/ declares. */
#ifndef N3_BUILTIN_H
#define N3_BUILTIN_H

#include <stddef.h>

struct probe_kind;

extern const struct probe_kind probe_http;
extern const struct probe_kind probe_tcp;
extern const struct probe_kind probe_command;

struct router_kind;

extern const struct router_kind router_haproxy;
extern const struct router_kind router_nginx;
extern const struct router_kind router_exec;
extern const struct router_kind router_none;

struct metricsrc_kind;

extern const struct metricsrc_kind metrics_prometheus;
extern const struct metricsrc_kind metrics_haproxy;

struct cJSON;
struct metricsrc_sample;

/* A scrape's text (from url, for messages) as the prometheus source reads it with config (its
 * "metrics" object): into out, failed or not (for the tests). */
void metrics_prometheus_parse(const struct cJSON *config, const char *url, const char *text,
                              size_t len, struct metricsrc_sample *out);

/* Register every built-in plugin (before n3.json is loaded: it names them). */
void plugins_register_builtins(void);

#endif
