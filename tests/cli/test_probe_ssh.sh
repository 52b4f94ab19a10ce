#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Probes through SSH, against a real sshd on 127.0.0.1 (scripts/sshd-fleet): the sample app
# started in an SSH target's slot with "listen": "loopback" is probed through a tunnel on the
# target's SSH connection (deploy/bridge.c), for the http and the tcp probe. The proof that the
# probes go through sshd and not straight to the port: with the target's sshd forbidding
# forwarding (AllowTcpForwarding no) the same instance, still answering on its port, is
# unhealthy, with the server's reason. A target whose sshd dies while its slot is being
# probed: the command ends (no hang) with the connection named, and `slots` says why. Its
# /metrics is scraped through the same tunnel.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
T_DEADLINE=60
fleet_start 1

REPO=$T/app
make_sample_app_repo "$REPO"
D=$FLEET/deploy/t1
stop_instances "$D"
free_ports 2
BLUE=${FREE_PORTS[0]} GREEN=${FREE_PORTS[1]}
# The fleet's target t1 over SSH, the sample app built here and pushed there, its instances
# on the target's loopback only, probed through its SSH connection.
CFG=$(fleet_config app '.app = {"name": "demo", "repository": "'"$REPO"'", "tag_pattern": "v*"}
    | .hooks.build = "make"
    | .service = {"ports": {"blue": '"$BLUE"', "green": '"$GREEN"'}, "listen": "loopback",
                  "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                  "ready_timeout_seconds": 10, "stop_grace_seconds": 5}
    | .metrics = {"source": "prometheus", "interval_ms": 200, "window_s": 10}
    | .probes = [{"name": "web", "type": "http", "path": "/health", "interval_seconds": 0.5,
                  "timeout_seconds": 0.5, "healthy_threshold": 2}]')
TCP_CFG=$T/tcp.json
jq '.probes = [{"name": "port", "type": "tcp", "interval_seconds": 0.5, "timeout_seconds": 0.5,
                "healthy_threshold": 2}]' "$CFG" >"$TCP_CFG"

# ---- the http probe through the tunnel ----
run_n3 start slot start -c "$CFG" t1 blue v1.0.0
expect_rc 0
expect_grep err 'ready' "blue is ready, by its probe through SSH"
V=$(curl -fsS "http://127.0.0.1:$BLUE/version") || fail "the instance does not answer on $BLUE"
case $V in *v1.0.0*) ok ;; *) fail "the instance on $BLUE answers '$V', not v1.0.0" ;; esac

run_n3 look slots -c "$CFG" --json
expect_rc 0
jq_eq look.out '.instances[] | select(.slot == "blue") | .health' healthy "blue is healthy through the tunnel"
jq_eq look.out '.instances[] | select(.slot == "blue") | .state' running "blue runs"
# Its /metrics scraped through the tunnel too: two reads, a rate (0: nothing sent it traffic).
jq_eq look.out '.instances[] | select(.slot == "blue") | .req_s' 0 \
    "blue's request rate, scraped through SSH: $(jq -c '.instances[] | select(.slot == "blue") | {req_s, metrics_why}' "$T/look.out")"
# The bridge's socket is gone with the process that made it.
expect_eq "no bridge directory left behind" "" "$(find "${XDG_RUNTIME_DIR:-/tmp}" -maxdepth 1 -name 'n3ctl-bridge-*' -newer "$CFG" 2>/dev/null)"

# ---- the tcp probe through the tunnel ----
run_n3 look_tcp slots -c "$TCP_CFG" --json
expect_rc 0
jq_eq look_tcp.out '.instances[] | select(.slot == "blue") | .health' healthy "the tcp probe through SSH"

# ---- forwarding forbidden: the probes fail, though the port answers here ----
fleet configure 1 "AllowTcpForwarding no"
curl -fsS "http://127.0.0.1:$BLUE/health" >/dev/null || fail "the instance stopped answering on $BLUE"
ok
run_n3 forbidden slots -c "$CFG" --json
expect_rc 0
jq_eq forbidden.out '.instances[] | select(.slot == "blue") | .health == "healthy"' false \
    "blue is not healthy when sshd forbids the tunnel: $(jq -c '.instances[] | select(.slot == "blue")' "$T/forbidden.out")"
jq_eq forbidden.out '.instances[] | select(.slot == "blue") | .reason | test("through SSH.*prohibited")' true \
    "the reason is the server's: $(jq -r '.instances[] | select(.slot == "blue") | .reason' "$T/forbidden.out")"
jq_eq forbidden.out '.instances[] | select(.slot == "blue") | .req_s' null "no request rate without the tunnel"
jq_eq forbidden.out '.instances[] | select(.slot == "blue") | .metrics_why | test("through SSH.*prohibited")' true \
    "the scrape says why: $(jq -r '.instances[] | select(.slot == "blue") | .metrics_why' "$T/forbidden.out")"
run_n3 forbidden_tcp slots -c "$TCP_CFG" --json
expect_rc 0
jq_eq forbidden_tcp.out '.instances[] | select(.slot == "blue") | .reason | test("prohibited")' true \
    "the tcp probe too: $(jq -r '.instances[] | select(.slot == "blue") | .reason' "$T/forbidden_tcp.out")"
fleet configure 1

# ---- sshd dies while a slot is probed: no hang ----
bg_bin dying "$N3CTL" slot start -c "$CFG" t1 green v1.1.0
DYING=$BG_PID
# Its instance is started (its pid file written) and being probed: then the host goes.
wait_until "green's instance started" test -s "$D/.n3/run/green.pid"
fleet kill 1
wait_exit "$DYING" "slot start, its target's sshd killed"
[ "$rc" -ne 0 ] || fail "slot start succeeded with its target's sshd dead"
ok
LAST=dying
expect_grep err 't1' "the target is named"
run_n3 dead slots -c "$CFG" --json
[ "$rc" -ne 2 ] || fail "slots with a dead target exited 2 (usage): $(show "$T/dead.err")"
jq_eq dead.out '[.instances[] | select(.target == "t1") | .health == "healthy"] | any' false \
    "no instance of a dead target is healthy: $(jq -c '.instances' "$T/dead.out")"
fleet restart 1
