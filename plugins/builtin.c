/* The built-in plugins, registered with the interfaces deploy/ declares. */
#include "config.h"

#include "deploy/metricsrc.h"
#include "deploy/probe.h"
#include "deploy/router.h"
#include "plugins/builtin.h"

void plugins_register_builtins(void)
{
    probe_kind_register(&probe_http);
    probe_kind_register(&probe_tcp);
    probe_kind_register(&probe_command);
    router_kind_register(&router_haproxy);
    router_kind_register(&router_nginx);
    metricsrc_kind_register(&metrics_prometheus);
    metricsrc_kind_register(&metrics_haproxy);
    router_kind_register(&router_exec);
    router_kind_register(&router_none);
}
