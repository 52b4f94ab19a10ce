#!/usr/bin/env bash
# n3ctl run with remote steps on a real fleet of sshd: fan-out concurrency, the failure budget,
# a target lost mid-step, the circuit breaker, and errors in plans that name targets.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
fleet_start 4

WHO=$(fleet_who)

# The command as a JSON string (the plan embeds it).
json_str() {
    jq -Rn --arg s "$1" '$s'
}

# ---- fan-out: at most max_concurrency targets at once, measured by the targets ----

count_cmd="$WHO r=$FLEET/deploy/running; mkdir -p \$r; touch \$r/\$t; ls \$r | wc -l >> $FLEET/deploy/seen; sleep 0.3; rm -f \$r/\$t; echo done-\$t"
cat >fanout.json <<EOF2
{"name": "fanout", "steps": [
  {"name": "local", "shell": "echo local"},
  {"name": "wide", "depends_on": ["local"],
   "remote": {"targets": "all", "max_concurrency": 2, "command": $(json_str "$count_cmd")}}
]}
EOF2
run_n3 fanout run --json -c "$FLEET/n3.json" fanout.json
expect_rc 0
jq_eq fanout.out '.block.steps[1].block.steps | map(.name) | join(",")' "t1,t2,t3,t4"
jq_eq fanout.out '.block.steps[1].block.steps | map(.status) | unique | join(",")' "succeeded"
jq_eq fanout.out '.block.result.wide.t3' "done-t3"
max=$(sort -n "$FLEET/deploy/seen" | tail -n 1)
[ "$max" -le 2 ] || fail "targets ran $max at once; max_concurrency is 2: $(tr '\n' ' ' <"$FLEET/deploy/seen")"
ok
[ "$max" -ge 2 ] || fail "the targets never overlapped (max $max)"
ok

# ---- the failure budget: max_fail_percent ----

fail_cmd="$WHO case \$t in t1) exit 5;; t2) [ -e $FLEET/deploy/two ] && exit 6;; esac; true"
cat >budget.json <<EOF2
{"name": "budget", "steps": [
  {"name": "rollout", "remote": {"targets": "all", "max_fail_percent": 25, "command": $(json_str "$fail_cmd")}}
]}
EOF2
run_n3 budget1 run --json -c "$FLEET/n3.json" budget.json
expect_rc 0
jq_eq budget1.out '.block.steps[0].block.steps[0] | "\(.name) \(.status) \(.exit_code)"' "t1 failed 5"
touch "$FLEET/deploy/two"
run_n3 budget2 run --json -c "$FLEET/n3.json" budget.json
expect_rc 1
jq_eq budget2.out '.block.steps[0].status' failed
jq_eq budget2.out '.block.steps[0].block.reason' "2 of 4 steps did not succeed"

# ---- a target lost in the middle of its step: it fails, the others go on ----

rm -f "$FLEET"/deploy/t*/started
drop_cmd="$WHO touch \$d/started; sleep 2; echo finished"
cat >drop.json <<EOF2
{"name": "drop", "steps": [
  {"name": "work", "retry": {"max_attempts": 2, "backoff": {"base_seconds": 0.05, "cap_seconds": 0.1}},
   "remote": {"targets": "all", "max_fail_percent": 25, "command": $(json_str "$drop_cmd")}}
]}
EOF2
bg_n3 drop run --json -c "$FLEET/n3.json" drop.json
pid=$BG_PID
for k in 1 2 3 4; do
    wait_until "t$k to start its command" test -e "$FLEET/deploy/t$k/started"
done
fleet kill 2
wait_exit "$pid" "n3ctl run drop.json after t2 died"
expect_rc 0
jq_eq drop.out '.block.steps[0].block.steps[1] | "\(.name) \(.status) \(.attempts)"' "t2 failed 2"
jq_eq drop.out '.block.steps[0].block.steps[1].reason | test("connection lost|Connection refused")' true
jq_eq drop.out '[.block.steps[0].block.steps[] | select(.name != "t2") | .stdout.tail] | unique | join(",")' "finished"
jq_eq drop.out '.block.steps[0].status' succeeded

# ---- the circuit breaker: after 3 connection failures in a row, the target is offline ----

closed=$(closed_port)
cfg=$(fleet_config closed ".environments.fleet.targets[0].port = $closed")
cat >breaker.json <<'EOF2'
{"name": "breaker", "steps": [
  {"name": "poke", "retry": {"max_attempts": 5, "backoff": {"base_seconds": 0.01, "cap_seconds": 0.02}},
   "remote": {"targets": "t1", "command": "true"}}
]}
EOF2
run_n3 breaker run --json -c "$cfg" breaker.json
expect_rc 1
jq_eq breaker.out '.block.steps[0].block.steps[0].attempts' 5
jq_eq breaker.out '.block.steps[0].block.steps[0].reason | test("offline.*circuit breaker")' true

# ---- plans that name targets wrongly, or have no n3.json ----

cat >badtarget.json <<'EOF2'
{"name": "bad", "steps": [
  {"name": "x", "remote": {"targets": ["t1", "t9"], "command": "true"}}
]}
EOF2
run_n3 badtarget run -c "$FLEET/n3.json" badtarget.json
expect_rc 2
expect_grep err '^n3ctl: badtarget\.json:2:39: steps\[0\]\.remote\.targets: no target "t9" in environment "fleet"'

mkdir -p nocfg
cp badtarget.json nocfg/
(cd nocfg && N3CTL_CONFIG= "$N3CTL" run badtarget.json >../nocfg.out 2>../nocfg.err) && rc=0 || rc=$?
LAST=nocfg LAST_CMD="n3ctl run badtarget.json (no n3.json anywhere above)"
expect_rc 2
expect_grep err 'no n3\.json here or in a parent directory'

# ---- remote steps that never ran are reported like any other step ----

# deploy never starts (gate failed); on serial, t1 runs past the block's second while t2..t4
# wait for their turn. check runs everywhere: remote commands count in n3_tasks_total.
fleet restart 2 # killed above
cat >never.json <<EOF2
{"name": "never", "steps": [
  {"name": "gate", "shell": "exit 1"},
  {"name": "deploy", "depends_on": ["gate"],
   "remote": {"targets": "all", "command": $(json_str "$WHO touch \$d/deploy-ran")}},
  {"name": "check", "remote": {"targets": "all", "command": "true"}},
  {"name": "serial", "parallel": {"timeout_seconds": 1, "steps": [
    {"name": "slow", "remote": {"targets": "all", "max_concurrency": 1, "command": "exec sleep 1000"}}]}}
]}
EOF2
run_n3 never run --json --metrics never.prom --traces never.jsonl -c "$FLEET/n3.json" never.json
expect_rc 1
for k in 1 2 3 4; do
    expect_absent "$FLEET/deploy/t$k/deploy-ran" "deploy ran on t$k although gate failed"
done
jq_eq never.out '.block.steps[1].block.steps | map("\(.name)=\(.status)/\(.attempts)") | join(" ")' \
    "t1=cancelled/0 t2=cancelled/0 t3=cancelled/0 t4=cancelled/0"
jq_eq never.out '.block.steps[3].block.steps[0].block.steps | map("\(.name)=\(.status)/\(.attempts)") | join(" ")' \
    "t1=timed_out/1 t2=cancelled/0 t3=cancelled/0 t4=cancelled/0"
for want in 'n3_tasks_total{status="succeeded"} 4' 'n3_tasks_total{status="cancelled"} 7' \
    'n3_tasks_total{status="timed_out"} 1' 'n3_tasks_total{status="failed"} 1'; do
    grep -qxF "$want" never.prom || fail "never.prom: expected the line '$want', got:
$(show never.prom)"
    ok
done
expect_reported_everywhere never.out never.prom never.jsonl
jq_eq never.jsonl.all '[.[] | select(.attributes.block == "never/deploy" and .attributes.kind)
    | "\(.attributes.target) \(.status) \(.attributes.reason)"] | join(",")' \
    "$(printf 't%s cancelled cancelled: depends on "gate", which failed,' 1 2 3 | sed 's/,$//'),t4 cancelled cancelled: depends on \"gate\", which failed"
