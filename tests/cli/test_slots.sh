#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Slots and traffic through the real pieces: the sample app released from its tags, started
# in a local target's slots by `n3ctl slot start` (its release pushed first), checked by its
# HTTP probe; HAProxy in front of both slots, its weights set by `n3ctl traffic set`, read
# back from HAProxy itself, and the shares measured by the load generator through it. A
# crashing and an unhealthy version are never counted ready; a slot that is not healthy gets
# no traffic; a switch and a drain under load lose no request; a HAProxy restart keeps the
# weights; and every change is in the audit logs.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
: "${N3LOAD:=$TOP_BUILDDIR/tests/load/n3load}"
[ -x "$N3LOAD" ] || fail "no n3load binary at '$N3LOAD'"
T_DEADLINE=30

REPO=$T/app
make_sample_app_repo "$REPO"
D=$T/t1
mkdir -p "$D"
stop_instances "$D"
free_ports 3
FE=${FREE_PORTS[0]} BLUE=${FREE_PORTS[1]} GREEN=${FREE_PORTS[2]}
sample_app_config "$T/n3.json" "$REPO" "$D"
CFG=$T/n3.json
jq --argjson b "$BLUE" --argjson g "$GREEN" --arg sock "$T/lb/admin.sock" --arg state "$T/lb/state" '
    .service = {"ports": {"blue": $b, "green": $g},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                "ready_timeout_seconds": 5, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2,
                "timeout_seconds": 0.2, "healthy_threshold": 2}]
  | .router = {"type": "haproxy", "socket": $sock, "backend": "app", "state_file": $state}' \
    "$CFG" >"$CFG.new" && mv "$CFG.new" "$CFG"
haproxy_start lb "$FE" "t1_blue 127.0.0.1:$BLUE 100" "t1_green 127.0.0.1:$GREEN 0"

# load NAME RATE SECONDS: n3load through HAProxy; its summary in $T/NAME.out (JSON).
load() {
    run_bin "$1" "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate "$2" --duration "$3" --json
    [ "$rc" -eq 0 ] || fail "n3load $1 failed ($rc):
$(show "$T/$1.err")"
}

expect_clean() { # FILE: no error, no 5xx, no connection error
    jq -e '.errors_total == 0 and .answered == .scheduled' "$1" >/dev/null ||
        fail "requests were lost or failed: $(jq -c '{scheduled, answered, errors_total, errors}' "$1")"
    ok
}

# ---- nothing started yet ----

run_n3 slots slots -c "$CFG" --json
expect_rc 0
jq_eq "$T/slots.out" '[.instances[] | .state] | join(" ")' "stopped stopped"
jq_eq "$T/slots.out" '.router.share.blue' 100
jq_eq "$T/slots.out" '[.instances[] | .weight] | join(" ")' "100 0"

run_n3 slots-text slots -c "$CFG"
expect_rc 0
expect_grep out '^TARGET +SLOT +VERSION +STATE +PID +PORT +HEALTH +WEIGHT +REASON$'
expect_grep out "^t1 +green +- +stopped +- +$GREEN +- +0$"

# ---- start: the release pushed first, ready when its probe passed twice ----

run_n3 start-blue slot start -c "$CFG" t1 blue v1.0.0
expect_rc 0
expect_grep err '^v1.0.0 is not on 1 target \(of 1\): pushing it first$'
expect_grep err '^  t1: v1.0.0 started \(pid [0-9]+\), ready in [0-9.]+s: http: 2 checks passed in a row'
expect_present "$D/releases/v1.0.0/n3app"
jq_eq "$D/.n3/state.json" '.slots.blue.version' v1.0.0
[ "$(readlink "$D/slots/blue")" = "../releases/v1.0.0" ] || fail "slots/blue -> $(readlink "$D/slots/blue")"
ok
curl -sS "http://127.0.0.1:$BLUE/" >"$T/blue.body" || fail "the blue slot does not answer on $BLUE"
expect_eq "blue answers" "v1.0.0 blue" "$(cat "$T/blue.body")"

# Starting it again: refused, it runs.
run_n3 start-again slot start -c "$CFG" t1 blue v1.0.0
expect_rc 3
expect_grep err 'REFUSED: .*runs'

# ---- bad versions are never counted ready, and are stopped again ----

run_n3 crash slot start -c "$CFG" t1 green v1.5.0-crash
expect_rc 1
expect_grep err 'FAILED: (v1.5.0-crash on slot green of t1 crashed|slot green on t1 exited as soon as it started)'
expect_grep err 'crash_at_start is set'
jq_eq "$D/.n3/state.json" '.slots.green.version // "none"' none "state.json after a crash"

run_n3 unhealthy slot start -c "$CFG" t1 green v1.4.0-unhealthy
expect_rc 1
expect_grep err 'FAILED: v1.4.0-unhealthy on slot green of t1 was not ready within 5s \(http: .*\); stopped it'
jq_eq "$D/.n3/state.json" '.slots.green.version // "none"' none "state.json after an unhealthy start"
run_n3 slots-bad slots -c "$CFG" --json
jq_eq "$T/slots-bad.out" '.instances[1].state' stopped
[ -z "$(ss -Htln "sport = :$GREEN")" ] || fail "something still listens on the green port $GREEN"
ok

# ---- no traffic to a slot that is not healthy ----

run_n3 refuse traffic set -c "$CFG" blue=90 green=10
expect_rc 3
expect_grep err '^t1 green: it is stopped'
expect_eq "green's weight after the refusal (HAProxy)" 0 "$(haproxy_weight lb t1_green)"

# ---- 100/0 -> 90/10 -> 0/100, measured through HAProxy ----

run_n3 start-green slot start -c "$CFG" t1 green v1.1.0
expect_rc 0
load l100 400 3
expect_share "$T/l100.out" v1.0.0 100

run_n3 canary traffic set -c "$CFG" blue=90 green=10
expect_rc 0
expect_grep out '^t1 +green +t1_green +127.0.0.1:[0-9]+ +10 +ready'
expect_grep out 'blue 90 %, green 10 %'
expect_eq "blue's weight in HAProxy" 90 "$(haproxy_weight lb t1_blue)"
expect_eq "green's weight in HAProxy" 10 "$(haproxy_weight lb t1_green)"
load l90 400 3
expect_share "$T/l90.out" v1.1.0 10
expect_clean "$T/l90.out"

# The switch to 0/100 under load: no request lost.
bg_bin switch "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate 400 --duration 4 --json \
    --out "$T/switch.jsonl"
SW=$BG_PID
wait_until "the load to start" file_has "$T/switch.jsonl" '"type":"request"'
run_n3 all-green traffic set -c "$CFG" green=100
expect_rc 0
expect_grep err 'current now points to the slot with the most traffic on 1 target'
[ "$(readlink "$D/current")" = "slots/green" ] || fail "current -> $(readlink "$D/current")"
ok
jq_eq "$D/.n3/state.json" '.live' green
wait_exit "$SW" "the load during the switch"
expect_eq "n3load during the switch" 0 "$rc"
expect_clean "$T/switch.out"
# Blue served before the switch, green only after it: the last 400 answers are all green's.
jq -se '[.[] | select(.type == "request")] | (.[0].version == "v1.0.0") and
    (.[-400:] | all(.version == "v1.1.0"))' "$T/switch.jsonl" >/dev/null ||
    fail "the switch under load: not blue, then green only: $(jq -c .versions "$T/switch.out")"
ok
load l0 400 3
expect_share "$T/l0.out" v1.1.0 100

# ---- stop: a slot with traffic is refused; --force drains it first, losing nothing ----

run_n3 stop-live slot stop -c "$CFG" t1 green
expect_rc 3
expect_grep err 'slot green on t1 has traffic \(weight 100 in haproxy, read back\)'
pid_alive "$(cut -d' ' -f1 "$D/.n3/run/green.pid")" || fail "the refused stop stopped green"
ok

run_n3 back traffic set -c "$CFG" blue=50 green=50
expect_rc 0
bg_bin drain "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate 400 --duration 4 --json \
    --out "$T/drain.jsonl"
DR=$BG_PID
wait_until "the load to start" file_has "$T/drain.jsonl" '"type":"request"'
run_n3 stop-forced slot stop -c "$CFG" --force t1 green
expect_rc 0
expect_grep err '^  t1: stopped'
wait_exit "$DR" "the load during the drain"
expect_clean "$T/drain.out"
[ ! -e "$D/.n3/run/green.pid" ] || fail "green's pid file is still there"
ok

# ---- HAProxy restarted: the weights n3ctl set are still there ----

run_n3 start-green2 slot start -c "$CFG" t1 green
expect_rc 0
expect_grep err 'v1.1.0 started'
run_n3 seventy traffic set -c "$CFG" blue=70 green=30
expect_rc 0
haproxy_stop lb
haproxy_run lb
run_n3 after-restart traffic -c "$CFG" --json
expect_rc 0
jq_eq "$T/after-restart.out" '[.servers[] | .weight] | join(" ")' "70 30" "the weights after HAProxy's restart"
load lr 400 3
expect_share "$T/lr.out" v1.1.0 30

# ---- bad input: refused, nothing moved ----

for args in "set blue=90 green=20" "set blue=abc" "set purple=10" "set blue=10 blue=90" \
    "set blue=101" "set blue=-1 green=101" "set"; do
    # shellcheck disable=SC2086 # the words are the arguments
    run_n3 bad traffic -c "$CFG" $args
    expect_rc 2
done
run_n3 bad-slot slot start -c "$CFG" t1 'blue;touch pwned' v1.0.0
expect_rc 2
expect_grep err 'is not a slot: blue or green'
expect_absent "$T/pwned"
expect_eq "the weights after bad input" "70 30" "$(haproxy_weight lb t1_blue) $(haproxy_weight lb t1_green)"

# ---- the audit logs ----

run_n3 audit audit -c "$CFG" --json
expect_rc 0
for a in slot.start slot.stop traffic.set release.push; do
    jq -e --arg a "$a" '[.[] | select(.action == $a)] | length > 0' "$T/audit.out" >/dev/null ||
        fail "no $a record in the local audit log: $(jq -c '[.[] | .action]' "$T/audit.out")"
    ok
done
jq -e '[.[] | select(.action == "traffic.set" and .result == "refused")] | length == 1' \
    "$T/audit.out" >/dev/null || fail "the refused traffic set is not recorded as refused"
ok
run_n3 audit-t1 audit -c "$CFG" --target t1 --json
expect_rc 0
jq -e '[.[] | select(.action == "traffic.set")] | length == 4' "$T/audit-t1.out" >/dev/null ||
    fail "t1's audit log has not the 4 traffic changes: $(jq -c '[.[] | .action]' "$T/audit-t1.out")"
ok
