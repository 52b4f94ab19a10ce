#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# n3ctl hosts against a fleet of real sshd on 127.0.0.1 (scripts/sshd-fleet): the table
# and --json with each target's facts, an unreachable target, --check and its flags,
# hosts trust (no terminal, --yes, trusted already, a changed key), and bad configs.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
fleet_start 3

CFG=$FLEET/n3.json
NPROC=$(nproc)
OS=$(uname -sr)
MOUNT=$(df -Pk -- "$FLEET/deploy" | awk 'NR == 2 { print $6 }')

# table_rows FILE: the rows of the table in FILE whose state is ok, one a line:
# "NAME|LATENCY|OS|CPUS|LOAD|CPU|MEM|IOWAIT|DISK|FLAGS". Columns are cut where the
# header's are (numbers are right-aligned under their heading, the OS is 24 wide).
table_rows() {
    awk '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function end(name) { return index(hdr, name) + length(name) - 1 }
    NR == 1 { hdr = $0; next }
    $3 != "ok" { next }
    {
        st = index(hdr, "STATE"); os = index(hdr, "OS"); ose = os + 23
        printf "%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", $1,
            trim(substr($0, st + 11, end("LATENCY") - st - 10)),
            trim(substr($0, os, 24)),
            trim(substr($0, ose + 1, end("CPUS") - ose)),
            trim(substr($0, end("CPUS") + 1, end("LOAD") - end("CPUS"))),
            trim(substr($0, end("LOAD") + 1, end("CPU%") - end("LOAD"))),
            trim(substr($0, end("CPU%") + 1, end("MEM%") - end("CPU%"))),
            trim(substr($0, end("MEM%") + 1, end("IOWAIT") - end("MEM%"))),
            trim(substr($0, end("IOWAIT") + 1, end("DISK FREE") - end("IOWAIT"))),
            trim(substr($0, end("DISK FREE") + 1))
    }' "$1"
}

# flags_ok CPU MEM IOWAIT FLAGS: the FLAGS printed are those of the values past their
# threshold (CPU > 80, memory > 85, I/O wait > 20); a value shown rounded to exactly its
# threshold may go either way.
flags_ok() {
    awk -v cpu="$1" -v mem="$2" -v iow="$3" -v flags="$4" '
    function want(v, lim, flag) {
        has = index(" " flags " ", " " flag " ") > 0
        if (v + 0 > lim) return has
        if (v + 0 < lim) return !has
        return 1
    }
    BEGIN {
        n = split(flags, f, " ")
        for (i = 1; i <= n; i++)
            if (f[i] != "cpu>80%" && f[i] != "mem>85%" && f[i] != "iowait>20%") exit 1
        exit !(want(cpu, 80, "cpu>80%") && want(mem, 85, "mem>85%") && want(iow, 20, "iowait>20%"))
    }'
}

# ---- the table ----

run_n3 table hosts -c "$CFG"
expect_rc 0
expect_grep out '^TARGET +ADDRESS +STATE +LATENCY +RUNNING +OS +CPUS +LOAD +CPU% +MEM% +IOWAIT +DISK FREE +FLAGS$' "the table's header"
expect_lines out 4
expect_no_grep out $'\x1b' "no color escapes when stdout is not a terminal"
for k in 1 2 3; do
    expect_grep out "^t$k +n3ssh@127\\.0\\.0\\.1:$(fleet_port "$k") +ok +[0-9.]+m?s +" "a row for t$k: its address, state ok, a latency"
done
table_rows table.out >table.rows
expect_eq "$LAST_CMD: targets with state ok in the table" "t1 t2 t3" "$(cut -d'|' -f1 table.rows | paste -sd' ' -)"
while IFS='|' read -r name lat os cpus load cpu mem iow disk flags; do
    [[ $lat =~ ^[0-9]+ms$|^[0-9]+\.[0-9]+s$ ]] ||
        fail "$LAST_CMD: expected a latency like 12ms for $name, got '$lat':
$(show table.out)"
    ok
    expect_eq "$LAST_CMD: the OS of $name (uname -sr, cut to 24)" "${OS:0:24}" "$os"
    expect_eq "$LAST_CMD: the CPUS of $name (nproc)" "$NPROC" "$cpus"
    for v in "$load" "$cpu" "$mem" "$iow"; do
        [[ $v =~ ^[0-9]+\.[0-9]+$ ]] || fail "$LAST_CMD: expected numbers in LOAD, CPU%, MEM%, IOWAIT for $name, got '$load' '$cpu' '$mem' '$iow':
$(show table.out)"
        ok
    done
    [[ $disk =~ ^[0-9]+\.[0-9]G$ ]] || fail "$LAST_CMD: expected DISK FREE like 12.3G for $name, got '$disk'"
    ok
    flags_ok "$cpu" "$mem" "$iow" "$flags" ||
        fail "$LAST_CMD: FLAGS of $name '$flags' do not match CPU% $cpu, MEM% $mem, IOWAIT $iow (thresholds 80, 85, 20)"
    ok
done <table.rows

# ---- --json ----

run_n3 json hosts -c "$CFG" --json
expect_rc 0
expect_eq "$LAST_CMD: JSON documents on stdout" 1 "$(jq -s length json.out 2>&1)"
jq_eq json.out '[.targets[] | "\(.name)=\(.state)"] | join(" ")' "t1=ok t2=ok t3=ok"
jq_eq json.out '[.targets[] | "\(.port)"] | join(" ")' "$(paste -sd' ' "$FLEET/ports")"
jq_eq json.out '[.targets[] | .user] | unique | join(" ")' n3ssh
jq_eq json.out '[.targets[] | .transport] | unique | join(" ")' ssh
jq_eq json.out '[.targets[] | .deploy_path] | join(" ")' "$FLEET/deploy/t1 $FLEET/deploy/t2 $FLEET/deploy/t3"
jq_eq json.out '[.targets[] | .handshake_ms | type == "number" and . > 0] | all' true \
    "$LAST_CMD: handshake_ms > 0 for every target (got $(jq -c '[.targets[].handshake_ms]' json.out))"
jq_eq json.out '[.targets[] | .cpus] | unique | join(" ")' "$NPROC"
jq_eq json.out '[.targets[] | .os] | unique | join(" ")' "$OS"
jq_eq json.out '[.targets[] | .memory_percent | type == "number" and . > 0 and . <= 100] | all' true \
    "$LAST_CMD: memory_percent in (0, 100] (got $(jq -c '[.targets[].memory_percent]' json.out))"
jq_eq json.out '[.targets[] | .cpu_percent, .iowait_percent | type == "number" and . >= 0 and . <= 100] | all' true \
    "$LAST_CMD: cpu_percent and iowait_percent in [0, 100]"
jq_eq json.out '[.targets[] | .load1 | type == "number" and . >= 0] | all' true
jq_eq json.out '[.targets[] | .disk_free_kb | type == "number" and . > 0] | all' true \
    "$LAST_CMD: disk_free_kb > 0 (got $(jq -c '[.targets[].disk_free_kb]' json.out))"
jq_eq json.out '[.targets[] | .disk_mount] | unique | join(" ")' "$MOUNT" \
    "$LAST_CMD: disk_mount, the filesystem of deploy_path (df: $MOUNT)"
jq_eq json.out '[.targets[] | .flags | type] | unique | join(" ")' array

# ---- --check: exit 1 exactly when a flag is up, and the flags match the numbers ----

run_n3 check hosts -c "$CFG" --check --json
jq_eq check.out '[.targets[] | .state] | unique | join(" ")' ok
jq_eq check.out '[.targets[] | .flags == ([if .cpu_percent > 80 then "cpu>80%" else empty end,
    if .memory_percent > 85 then "mem>85%" else empty end,
    if .iowait_percent > 20 then "iowait>20%" else empty end])] | all' true \
    "$LAST_CMD: flags of each target, those of its numbers past the thresholds (got $(jq -c '[.targets[] | [.cpu_percent, .memory_percent, .iowait_percent, .flags]]' check.out))"
if [ "$(jq '[.targets[].flags[]] | length' check.out)" -eq 0 ]; then
    expect_rc 0
else
    say "note: this machine is past a threshold: $(jq -c '[.targets[] | {name, flags}]' check.out)"
    expect_rc 1
fi

run_n3 checkt hosts -c "$CFG" --check
table_rows checkt.out >checkt.rows
expect_eq "$LAST_CMD: targets with state ok in the table" "t1 t2 t3" "$(cut -d'|' -f1 checkt.rows | paste -sd' ' -)"
flagged=0
while IFS='|' read -r name lat os cpus load cpu mem iow disk flags; do
    flags_ok "$cpu" "$mem" "$iow" "$flags" ||
        fail "$LAST_CMD: FLAGS of $name '$flags' do not match CPU% $cpu, MEM% $mem, IOWAIT $iow (thresholds 80, 85, 20)"
    ok
    [ -z "$flags" ] || flagged=1
done <checkt.rows
expect_rc "$flagged"

# ---- an unreachable target ----

fleet kill 2
bg_n3 down hosts -c "$CFG"
wait_exit "$BG_PID" "$LAST_CMD (t2's sshd killed)"
expect_rc 1
expect_grep out "^t2 +n3ssh@127\\.0\\.0\\.1:$(fleet_port 2) +unreachable +- +.*Connection refused" "t2 unreachable, Connection refused"
expect_grep out '^t1 +[^ ]+ +ok ' "t1 still ok"
expect_grep out '^t3 +[^ ]+ +ok ' "t3 still ok"

bg_n3 downj hosts -c "$CFG" --json
wait_exit "$BG_PID" "$LAST_CMD (t2's sshd killed)"
expect_rc 1
jq_eq downj.out '[.targets[] | "\(.name)=\(.state)"] | join(" ")' "t1=ok t2=unreachable t3=ok"
jq_eq downj.out '.targets[1].error | test("Connection refused")' true
jq_eq downj.out '.targets[1] | has("handshake_ms") or has("cpus")' false
fleet restart 2

# ---- hosts trust ----

P2=$(fleet_port 2)
FP2=$(fleet_fingerprint 2)
grep -v "^\[127\.0\.0\.1\]:$P2 " "$FLEET/known_hosts" >kh.tmp
cp kh.tmp "$FLEET/known_hosts"
cp "$FLEET/known_hosts" kh.before

run_n3 untrusted exec -c "$CFG" -H t2 -- true
expect_rc 3
expect_fgrep err "n3ctl hosts trust t2" "the way out: n3ctl hosts trust t2"

# No terminal to ask on, no --yes: refused, nothing written, and the way out said.
run_n3_detached noterm hosts -c "$CFG" trust t2
expect_rc 3
expect_fgrep out "$FP2" "t2's fingerprint (ssh-keygen -lf: $FP2)"
expect_fgrep err "--yes" "a message saying to check the fingerprint and add --yes"
expect_same_file kh.before "$FLEET/known_hosts" "$LAST_CMD"

run_n3_detached yes hosts -c "$CFG" trust t2 --yes
expect_rc 0
expect_fgrep out "$FP2" "t2's fingerprint (ssh-keygen -lf: $FP2)"
expect_grep out '^added to ' "a line saying the key was added"
expect_eq "$LAST_CMD: lines in known_hosts" "$(($(wc -l <kh.before) + 1))" "$(wc -l <"$FLEET/known_hosts")"
head -n "$(wc -l <kh.before)" "$FLEET/known_hosts" >kh.head
expect_same_file kh.before kh.head "$LAST_CMD: the lines known_hosts had"
added=$(tail -n 1 "$FLEET/known_hosts")
[[ $added == "[127.0.0.1]:$P2 ssh-ed25519 "* ]] ||
    fail "$LAST_CMD: expected the line '[127.0.0.1]:$P2 ssh-ed25519 ...' appended to known_hosts, got '$added'"
ok
expect_eq "$LAST_CMD: the key added" "$(cat "$FLEET/sshd-2/known_hosts_line")" "$added"
# Trusting a key is a change: it is in the audit log, with the fingerprint.
"$N3CTL" audit -c "$CFG" --json -n 0 >audit.json || fail "n3ctl audit failed after hosts trust"
jq_eq audit.json '[.[] | select(.action == "hosts.trust")] | length' 1 "one hosts.trust record"
jq_eq audit.json '.[] | select(.action == "hosts.trust") | .targets | join(" ")' t2 "the trusted target"
jq_eq audit.json '.[] | select(.action == "hosts.trust") | .detail.fingerprint' "$FP2" "the fingerprint trusted"

run_n3 trusted exec -c "$CFG" -H t2 -- 'echo reached'
expect_rc 0
expect_grep out '^t2: reached$' "t2's output once its key is trusted"

cp "$FLEET/known_hosts" kh.after
run_n3_detached again hosts -c "$CFG" trust t2 --yes
expect_rc 0
expect_grep out 'trusted already' "t2 trusted already"
expect_fgrep out "$FP2" "t2's fingerprint"
expect_same_file kh.after "$FLEET/known_hosts" "$LAST_CMD"

run_n3_detached trustnosuch hosts -c "$CFG" trust nosuch --yes
expect_rc 2
expect_grep err 'no target "nosuch"' "a message naming the unknown target"
expect_same_file kh.after "$FLEET/known_hosts" "$LAST_CMD"

# A changed key is never replaced, even with --yes.
fleet rekey 3
P3=$(fleet_port 3)
line3=$(grep -n "^\[127\.0\.0\.1\]:$P3 " "$FLEET/known_hosts" | cut -d: -f1)
run_n3_detached changed hosts -c "$CFG" trust t3 --yes
expect_rc 3
expect_grep err 'HAS CHANGED' "a warning that t3's key HAS CHANGED"
expect_fgrep err "line $line3 of $FLEET/known_hosts" "the line with t3's old key (line $line3)"
expect_fgrep err "$(fleet_fingerprint 3)" "the fingerprint of t3's new key"
expect_same_file kh.after "$FLEET/known_hosts" "$LAST_CMD"

# ---- bad configurations: exit 2, the file, line and column, a suggestion ----

run_n3 nocfg hosts -c /nonexistent/n3.json
expect_rc 2
expect_fgrep err "/nonexistent/n3.json" "a message naming the missing file"
expect_empty out

# cfg_error NAME SED KEY WANT: a copy of n3.json edited by SED must be refused with
# NAME.json:LINE:COL (where KEY is, its opening quote) and WANT.
cfg_error() {
    local name=$1 where
    sed "$2" "$CFG" >"$name.json"
    where=$(awk -v k="\"$3\"" '{ i = index($0, k); if (i) { print NR ":" i; exit } }' "$name.json")
    [ -n "$where" ] || fail "the sed script '$2' did not put \"$3\" in $name.json"
    run_n3 "$name" hosts -c "$T/$name.json"
    expect_rc 2
    expect_fgrep err "$T/$name.json:$where:" "the file, line and column of \"$3\" ($name.json:$where)"
    expect_fgrep err "$4"
    expect_empty out
}
cfg_error agnet 's/"agent": false/"agnet": false/' agnet 'did you mean "agent"'
cfg_error pth '0,/"deploy_path"/s//"deploy_pth"/' deploy_pth 'did you mean "deploy_path"'
cfg_error zzz 's/"version": 1,/"version": 1, "zzzzzzqq": 3,/' zzzzzzqq 'unknown key'

# Not exactly JSON: a host with \u0000 was cut to "127.0.0.1" and reached; refused at the
# escape (as every JSON error, see test_bad_plans.sh and test_cfg.c).
sed '0,/"host": "127.0.0.1"/s//"host": "127.0.0.1\\u0000.example"/' "$CFG" >nulhost.json
where=$(awk '{ i = index($0, "\\u0000"); if (i) { print NR ":" i; exit } }' nulhost.json)
[ -n "$where" ] || fail "sed did not put \\u0000 in nulhost.json"
run_n3 nulhost hosts -c "$T/nulhost.json"
expect_rc 2
expect_fgrep err "$T/nulhost.json:$where: not valid JSON near" "the file, line and column of the \\u0000"
expect_fgrep err '\u0000 cannot be carried in this value'
expect_empty out

# The same for exec: refused before anything runs.
run_n3 execbad exec -c "$T/agnet.json" -- true
expect_rc 2
expect_fgrep err 'did you mean "agent"'
expect_empty out
