/* The built-in plugins, registered with the interfaces deploy/ declares. */
#ifndef N3_BUILTIN_H
#define N3_BUILTIN_H

struct probe_kind;

extern const struct probe_kind probe_http;
extern const struct probe_kind probe_tcp;
extern const struct probe_kind probe_command;

struct router_kind;

extern const struct router_kind router_haproxy;
extern const struct router_kind router_nginx;
extern const struct router_kind router_exec;
extern const struct router_kind router_none;

/* Register every built-in plugin (before n3.json is loaded: it names them). */
void plugins_register_builtins(void);

#endif
