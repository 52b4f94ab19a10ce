#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Traffic through an exec router: examples/routers/file.sh, a plugin of the router protocol
# (docs/plugins.md) that keeps the weights in a JSON file. `n3ctl traffic` reads them from the
# plugin, `traffic set` gives it the new ones and shows what it read back (and the file has
# them); a plugin that refuses the set fails it (exit 1) with its words, and nothing changes:
# not the weights, not current, not state.json; the audit logs have both.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
T_DEADLINE=30

export FILE_SH=$TOP_SRCDIR/examples/routers/file.sh W=$T/weights.json
REPO=$T/app
make_sample_app_repo "$REPO"
D=$T/t1
mkdir -p "$D"
stop_instances "$D"
free_ports 2
BLUE=${FREE_PORTS[0]} GREEN=${FREE_PORTS[1]}
printf '{"servers": {"t1_blue": {"weight": 100, "state": "ready"}, "t1_green": {"weight": 0, "state": "ready"}}}\n' >"$W"

CFG=$T/n3.json
sample_app_config "$CFG" "$REPO" "$D"
jq --argjson b "$BLUE" --argjson g "$GREEN" --arg p "$FILE_SH" --arg w "$W" '
    .service = {"ports": {"blue": $b, "green": $g},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                "ready_timeout_seconds": 5, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2,
                "timeout_seconds": 0.2, "healthy_threshold": 2}]
  | .router = {"type": "exec", "command": [$p, $w], "timeout_ms": 10000}' \
    "$CFG" >"$CFG.new" && mv "$CFG.new" "$CFG"

# ---- n3.json's checks ----

jq '.router.command = "file.sh weights.json"' "$CFG" >"$T/bad.json"
run_n3 bad traffic -c "$T/bad.json"
expect_rc 2
expect_grep err 'bad.json:[0-9]+:[0-9]+: router.command: expected an array, got a string'

# ---- read: what the plugin has ----

run_n3 read traffic -c "$CFG" --json
expect_rc 0
jq_eq "$T/read.out" '.router' exec
jq_eq "$T/read.out" '[.servers[] | "\(.server)=\(.weight)"] | join(" ")' "t1_blue=100 t1_green=0"
jq_eq "$T/read.out" '.share.blue' 100

run_n3 read-text traffic -c "$CFG"
expect_rc 0
expect_grep out "^t1 +green +t1_green +127.0.0.1:$GREEN +0 +ready"
expect_grep out 'traffic \(exec, read back\): blue 100 %, green 0 %'

# ---- set: the slots are started (traffic goes only to healthy ones), then 90/10 ----

run_n3 blue slot start -c "$CFG" t1 blue v1.0.0
expect_rc 0
run_n3 green slot start -c "$CFG" t1 green v2.0.0
expect_rc 0
run_n3 canary traffic set -c "$CFG" blue=90 green=10
expect_rc 0
expect_grep out '^t1 +green +t1_green +127.0.0.1:[0-9]+ +10 +ready'
expect_grep out 'traffic \(exec, read back\): blue 90 %, green 10 %'
jq_eq "$W" '[.servers.t1_blue.weight, .servers.t1_green.weight] | join(" ")' "90 10" \
    "the plugin's file after the set"
run_n3 canary-read traffic -c "$CFG" --json
expect_rc 0
jq_eq "$T/canary-read.out" '[.servers[] | .weight] | join(" ")' "90 10"
jq_eq "$T/canary-read.out" '.share.green' 10
[ "$(readlink "$D/current")" = "slots/blue" ] || fail "current -> $(readlink "$D/current"), not slots/blue"
ok

# The weights are the plugin's, read back each time: changed behind n3ctl's back, n3ctl says so.
jq '.servers.t1_green.weight = 20' "$W" >"$W.new" && mv "$W.new" "$W"
run_n3 behind traffic -c "$CFG" --json
jq_eq "$T/behind.out" '[.servers[] | .weight] | join(" ")' "90 20"
jq '.servers.t1_green.weight = 10' "$W" >"$W.new" && mv "$W.new" "$W"

# ---- a plugin that refuses the set: exit 1, its words, nothing changed ----

# It answers hello, health, read and drain as file.sh does (one file.sh a request, on the same
# file), and refuses every set.
cat >"$T/locked.sh" <<'PLUGIN'
#!/usr/bin/env bash
set -u
IFS= read -r hello || exit 0
echo '{"ok": true, "protocol": 1}'
while IFS= read -r req; do
    if [ "$(jq -r .op <<<"$req")" = set ]; then
        jq -c '{id, ok: false, error: "the weights are locked by the change freeze"}' <<<"$req"
    else
        printf '%s\n%s\n' "$hello" "$req" | "$FILE_SH" "$W" | tail -n 1
    fi
done
PLUGIN
chmod +x "$T/locked.sh"
jq --arg p "$T/locked.sh" '.router.command = [$p]' "$CFG" >"$T/locked.json"
cp -p "$W" "$T/weights.before"
cp -p "$D/.n3/state.json" "$T/state.before"
run_n3 locked traffic set -c "$T/locked.json" blue=0 green=100
expect_rc 1
expect_grep err "router plugin $T/locked.sh refused set: the weights are locked by the change freeze"
expect_same_file "$T/weights.before" "$W" "the plugin's file after the refused set"
[ "$(readlink "$D/current")" = "slots/blue" ] || fail "the refused set moved current to $(readlink "$D/current")"
ok
expect_same_file "$T/state.before" "$D/.n3/state.json" "state.json after the refused set"
run_n3 locked-read traffic -c "$T/locked.json" --json
expect_rc 0
jq_eq "$T/locked-read.out" '[.servers[] | .weight] | join(" ")' "90 10"

# ---- a plugin that dies: exit 1, the plugin and its last words named, no hang ----

printf '#!/bin/sh\necho "lb-ctl: cannot open /run/lb.sock: permission denied" >&2\nexit 4\n' >"$T/dead.sh"
chmod +x "$T/dead.sh"
jq --arg p "$T/dead.sh" '.router.command = [$p]' "$CFG" >"$T/dead.json"
run_n3 dead traffic -c "$T/dead.json"
expect_rc 1
expect_fgrep err "router plugin $T/dead.sh exited with status 4 before it answered the hello; its stderr's last line: \"lb-ctl: cannot open /run/lb.sock: permission denied\""

# ---- the audit logs ----

run_n3 audit audit -c "$CFG" --json
expect_rc 0
jq -e '[.[] | select(.action == "traffic.set") | .result] == ["ok", "failed"]' "$T/audit.out" >/dev/null ||
    fail "the local audit log has not the set and the refused one: $(jq -c '[.[] | {action, result}]' "$T/audit.out")"
ok
jq -e '[.[] | select(.action == "traffic.set" and .result == "failed")][0].detail.error
    | test("refused set: the weights are locked")' "$T/audit.out" >/dev/null ||
    fail "the failed traffic set's record has not the plugin's words: $(jq -c '[.[] | select(.action == "traffic.set")]' "$T/audit.out")"
ok
run_n3 audit-t1 audit -c "$CFG" --target t1 --json
expect_rc 0
jq -e '[.[] | select(.action == "traffic.set")] | length == 1 and .[0].detail.router == "exec"
    and .[0].detail.weights == {"blue": 90, "green": 10}' "$T/audit-t1.out" >/dev/null ||
    fail "t1's audit log has not the one change: $(jq -c '[.[] | select(.action == "traffic.set")]' "$T/audit-t1.out")"
ok
