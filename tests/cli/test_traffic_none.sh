#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Traffic without a load balancer: router none, where each target serves from the slot its
# current link points to. `n3ctl traffic` reads the links (no current yet: no slot has any);
# `traffic set blue=100` then `green=100` point current at the slot (atomically, and
# state.json and the audit logs say so), and the slot current resolves to is the one that
# answers with that version; 90/10 is refused (exit 1) with the reason, and nothing moves; a
# stop of the live slot is refused as one with traffic.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
T_DEADLINE=30

REPO=$T/app
make_sample_app_repo "$REPO"
D=$T/t1
mkdir -p "$D"
stop_instances "$D"
free_ports 2
BLUE=${FREE_PORTS[0]} GREEN=${FREE_PORTS[1]}
CFG=$T/n3.json
sample_app_config "$CFG" "$REPO" "$D"
jq --argjson b "$BLUE" --argjson g "$GREEN" '
    .service = {"ports": {"blue": $b, "green": $g},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                "ready_timeout_seconds": 5, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2,
                "timeout_seconds": 0.2, "healthy_threshold": 2}]
  | .router = {"type": "none"}' "$CFG" >"$CFG.new" && mv "$CFG.new" "$CFG"

# The router none has no keys of its own.
jq '.router.socket = "/run/lb.sock"' "$CFG" >"$T/bad.json"
run_n3 bad traffic -c "$T/bad.json"
expect_rc 2
expect_grep err 'router.socket: unknown key'

# ---- nothing deployed: no current, no slot has traffic ----

run_n3 empty traffic -c "$CFG" --json
expect_rc 0
jq_eq "$T/empty.out" '.router' none
jq_eq "$T/empty.out" '[.servers[] | .weight] | join(" ")' "0 0"
jq_eq "$T/empty.out" '.share.blue' null

run_n3 blue slot start -c "$CFG" t1 blue v1.0.0
expect_rc 0
run_n3 green slot start -c "$CFG" t1 green v2.0.0
expect_rc 0

# expect_live SLOT VERSION: current points to slots/SLOT, the router and state.json say so,
# and the release current resolves to is the one that slot runs and answers with.
expect_live() {
    local port
    [ "$(readlink "$D/current")" = "slots/$1" ] || fail "current -> $(readlink "$D/current"), not slots/$1"
    ok
    [ "$(readlink -f "$D/current")" = "$(readlink -f "$D/releases/$2")" ] ||
        fail "current resolves to $(readlink -f "$D/current"), not releases/$2"
    ok
    jq_eq "$D/.n3/state.json" '.live' "$1"
    run_n3 "read-$1" traffic -c "$CFG" --json
    expect_rc 0
    if [ "$1" = blue ]; then
        jq_eq "$T/read-$1.out" '[.servers[] | .weight] | join(" ")' "100 0"
        port=$BLUE
    else
        jq_eq "$T/read-$1.out" '[.servers[] | .weight] | join(" ")' "0 100"
        port=$GREEN
    fi
    jq_eq "$T/read-$1.out" ".share.$1" 100
    curl -sS "http://127.0.0.1:$port/" >"$T/$1.body" || fail "the $1 slot does not answer on $port"
    expect_eq "the live slot answers" "$2 $1" "$(cat "$T/$1.body")"
}

# ---- blue=100: current made; then green=100: current moved ----

run_n3 first traffic set -c "$CFG" blue=100
expect_rc 0
expect_grep out 'traffic \(none, read back\): blue 100 %, green 0 %'
expect_live blue v1.0.0

run_n3 switch traffic set -c "$CFG" green=100
expect_rc 0
expect_grep out '^t1 +green +t1_green +127.0.0.1:[0-9]+ +100 +ready'
expect_grep err 'current now points to the slot with the most traffic on 1 target'
expect_live green v2.0.0
run_n3 slots slots -c "$CFG" --json
jq_eq "$T/slots.out" '[.instances[] | "\(.slot)=\(.live)"] | join(" ")' "blue=false green=true"

# ---- 90/10: refused with the reason, nothing moved ----

cp -p "$D/.n3/state.json" "$T/state.before"
run_n3 split traffic set -c "$CFG" blue=90 green=10
expect_rc 1
expect_fgrep err "router none cannot split t1's traffic (asked blue 90, green 10): each target serves from one slot; use haproxy or nginx for weights; nothing was changed"
expect_live green v2.0.0
expect_same_file "$T/state.before" "$D/.n3/state.json" "state.json after the refused set"

# ---- the live slot has the traffic: its stop is refused ----

run_n3 stop-live slot stop -c "$CFG" t1 green
expect_rc 3
expect_grep err 'slot green on t1 has traffic \(weight 100 in none, read back\)'
pid_alive "$(cut -d' ' -f1 "$D/.n3/run/green.pid")" || fail "the refused stop stopped green"
ok

# ---- the audit logs ----

run_n3 audit audit -c "$CFG" --json
expect_rc 0
jq -e '[.[] | select(.action == "traffic.set") | .result] == ["ok", "ok", "failed"]' "$T/audit.out" >/dev/null ||
    fail "the local audit log has not the two sets and the refused one: $(jq -c '[.[] | {action, result}]' "$T/audit.out")"
ok
run_n3 audit-t1 audit -c "$CFG" --target t1 --json
expect_rc 0
jq -e '[.[] | select(.action == "traffic.set") | .detail | "\(.router) \(.current)"] == ["none blue", "none green"]' \
    "$T/audit-t1.out" >/dev/null ||
    fail "t1's audit log has not the two switches: $(jq -c '[.[] | select(.action == "traffic.set")]' "$T/audit-t1.out")"
ok
