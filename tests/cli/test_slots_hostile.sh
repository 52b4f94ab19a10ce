#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and $(...) meant literally, in single quotes
# Hostile values in n3.json reach no shell unquoted (and slot start's --metrics and --traces): a deploy path and a start command's
# variables made of quotes, spaces, $(...), backquotes and ';' start, probe and stop the sample
# app as any other, and nothing they spell is run. (Bad ports, slot names and router values are
# refused at their position: tests/cli/test_refusals.sh.)
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
T_DEADLINE=30

REPO=$T/app
make_sample_app_repo "$REPO"
# shellcheck disable=SC2016
D="$T/it's \$(touch pwned1) \`touch pwned2\`; touch pwned3 \"q\""
mkdir -p "$D"
stop_instances "$D"
free_ports 2
BLUE=${FREE_PORTS[0]} GREEN=${FREE_PORTS[1]}
sample_app_config "$T/n3.json" "$REPO" "/placeholder"
CFG=$T/n3.json
jq --arg d "$D" --argjson b "$BLUE" --argjson g "$GREEN" '
    .environments.prod.targets[0].deploy_path = $d
  | .service = {"ports": {"blue": $b, "green": $g},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5 # {release_dir} {target} {version}",
                "ready_timeout_seconds": 10, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2,
                "timeout_seconds": 0.2, "healthy_threshold": 2},
               {"name": "cmd", "type": "command", "interval_seconds": 0.5, "timeout_seconds": 0.5,
                "command": "test -n {slot} && test -n {target} # {version} {port}"}]' \
    "$CFG" >"$CFG.new" && mv "$CFG.new" "$CFG"

# --metrics to a directory: refused before anything is done.
mkdir -p "$T/adir"
run_n3 baddir slot start -c "$CFG" --metrics "$T/adir" t1 blue v1.0.0
expect_rc 2
expect_grep err 'it is a directory'
expect_absent "$D/.n3/run/blue.pid"
run_n3 stopobs slot stop -c "$CFG" --traces "$T/x.jsonl" t1 blue
expect_rc 2
expect_absent "$T/x.jsonl"

run_n3 start slot start -c "$CFG" --metrics "$T/probes.prom" --traces "$T/probes.jsonl" t1 blue v1.0.0
expect_rc 0
# What the probes did while start waited: counted by result, and a span a check.
awk '/^n3ctl_probe_checks_total\{probe="http",target="t1",slot="blue",result="ok"\}/ { n = $2 }
     END { exit !(n >= 2) }' "$T/probes.prom" ||
    fail "no 2 ok checks of t1 blue in --metrics: $(grep checks_total "$T/probes.prom")"
ok
grep -q '^n3ctl_probe_state{probe="http",target="t1",slot="blue"} 1$' "$T/probes.prom" ||
    fail "the probe's state is not healthy (1) in --metrics: $(grep probe_state "$T/probes.prom")"
ok
jq -e -s '[.[] | select(.name == "probe.check" and .attributes.target == "t1" and .attributes.result == "ok")] | length >= 2' \
    "$T/probes.jsonl" >/dev/null || fail "no 2 ok probe.check spans in --traces: $(head -3 "$T/probes.jsonl")"
ok
V=$(curl -fsS "http://127.0.0.1:$BLUE/version") || fail "nothing answers on $BLUE"
case $V in *v1.0.0*) ok ;; *) fail "the instance on $BLUE answers '$V'" ;; esac
expect_present "$D/.n3/run/blue.pid"
expect_present "$D/shared/log/blue.log"
run_n3 look slots -c "$CFG" --json
expect_rc 0
jq_eq look.out '.instances[] | select(.slot == "blue") | .health' healthy "blue is healthy: $(jq -c '.instances[0]' "$T/look.out")"
run_n3 stop slot stop -c "$CFG" t1 blue
expect_rc 0
[ -z "$(ss -Htln "sport = :$BLUE")" ] || fail "something still listens on $BLUE after the stop"
ok
for f in pwned1 pwned2 pwned3; do
    for where in "$T" "$D" "$D/releases/v1.0.0" "$REPO"; do
        expect_absent "$where/$f"
    done
done
