#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# A router on a load-balancer host reached over SSH (n3.json's router "on"), against a real
# sshd (scripts/sshd-fleet) and a real HAProxy whose admin socket listens on that host's
# loopback TCP: n3ctl traffic reads and sets the weights through a tunnel on the host's SSH
# connection (read back from HAProxy, the shares measured by the load generator through it),
# writes HAProxy's server state there as the host's login user, and, when the host's sshd
# forbids forwarding, fails with the server's reason and moves nothing. A unix admin socket on
# a host over SSH, and "on" for the exec and none routers, are refused at their position.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
: "${N3LOAD:=$TOP_BUILDDIR/tests/load/n3load}"
[ -x "$N3LOAD" ] || fail "no n3load binary at '$N3LOAD'"
T_DEADLINE=30
fleet_start 1
P1=$(fleet_port 1)
LOGIN=$(jq -r '.environments.fleet.targets[0].user' "$FLEET/n3.json")

REPO=$T/app
make_sample_app_repo "$REPO"
D=$T/app1
mkdir -p "$D"
stop_instances "$D"
free_ports 4
FE=${FREE_PORTS[0]} BLUE=${FREE_PORTS[1]} GREEN=${FREE_PORTS[2]} STATS=${FREE_PORTS[3]}
# HAProxy's state file where the login user of the load balancer can write it.
STATE=$FLEET/deploy/lb.state
CFG=$(fleet_config lb '.app = {"name": "demo", "repository": "'"$REPO"'", "tag_pattern": "v*"}
  | .hooks.build = "make"
  | .environments = {"prod": {"targets": [{"name": "app1", "transport": "local", "deploy_path": "'"$D"'"}]}}
  | .default_environment = "prod"
  | .service = {"ports": {"blue": '"$BLUE"', "green": '"$GREEN"'},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                "ready_timeout_seconds": 10, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2, "timeout_seconds": 0.2,
                "healthy_threshold": 2}]
  | .router = {"type": "haproxy", "address": "127.0.0.1:'"$STATS"'", "backend": "app",
               "state_file": "'"$STATE"'", "on": {"name": "lb", "host": "127.0.0.1", "port": '"$P1"', "user": "'"$LOGIN"'"}}')
HAPROXY_STATS_TCP=$STATS HAPROXY_STATE=$STATE haproxy_start lb "$FE" \
    "app1_blue 127.0.0.1:$BLUE 100" "app1_green 127.0.0.1:$GREEN 0"

for s in "blue v1.0.0" "green v1.1.0"; do
    set -- $s
    run_n3 "start-$1" slot start -c "$CFG" app1 "$1" "$2"
    expect_rc 0
done

# ---- read and set through the tunnel ----
run_n3 read traffic -c "$CFG" --json
expect_rc 0
jq_eq read.out '[.servers[] | .weight] | join(" ")' "100 0" "the weights read from HAProxy over SSH"

run_n3 set traffic set -c "$CFG" blue=30 green=70
expect_rc 0
expect_eq "the weights in HAProxy" "30 70" "$(haproxy_weight lb app1_blue) $(haproxy_weight lb app1_green)"
expect_eq "HAProxy's state file, written by the load balancer's login user" "$LOGIN" "$(stat -c %U "$STATE")"
awk '$4 == "app1_green" { w = $8 } END { exit w != 70 }' "$STATE" ||
    fail "the state file does not have app1_green at 70: $(cat "$STATE")"
ok
run_bin load "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate 400 --duration 3 --json
[ "$rc" -eq 0 ] || fail "n3load failed: $(show "$T/load.err")"
expect_share "$T/load.out" v1.1.0 70

# ---- the load balancer's sshd forbids forwarding: said, nothing moved ----
fleet configure 1 "AllowTcpForwarding no"
run_n3 forbidden traffic -c "$CFG"
expect_rc 1
expect_grep err 'administratively prohibited' "the server's reason"
expect_grep err 'on lb, through its SSH connection' "where the admin socket is"
run_n3 forbidden-set traffic set -c "$CFG" blue=100
expect_rc 1
expect_eq "the weights after a refused tunnel" "30 70" "$(haproxy_weight lb app1_blue) $(haproxy_weight lb app1_green)"
fleet configure 1

# ---- refused in n3.json ----
jq '.router = {"type": "haproxy", "socket": "/run/h.sock", "backend": "app", "on": {"name": "lb", "host": "127.0.0.1", "port": '"$P1"'}}' "$CFG" >"$T/badsock.json"
run_n3 badsock traffic -c "$T/badsock.json"
expect_rc 2
expect_grep err 'router\.socket: HAProxy on another host is reached through its SSH connection'
jq '.router = {"type": "exec", "command": ["/bin/true"], "on": {"name": "lb", "host": "127.0.0.1"}}' "$CFG" >"$T/badexec.json"
run_n3 badexec traffic -c "$T/badexec.json"
expect_rc 2
expect_grep err 'router\.on: the exec router runs its plugin on this machine'
jq '.router = {"type": "none", "on": {"name": "lb", "host": "127.0.0.1"}}' "$CFG" >"$T/badnone.json"
run_n3 badnone traffic -c "$T/badnone.json"
expect_rc 2
expect_grep err 'router\.on: router none works on the targets themselves'
