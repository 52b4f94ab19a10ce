#!/usr/bin/env bash
# shellcheck disable=SC2016 # remote commands and jq filters in single quotes
# n3ctl exec against a fleet of real sshd on 127.0.0.1 (scripts/sshd-fleet): prefixed
# and streamed output, quoting, selectors, exit codes and --json, host keys and client
# keys refused, connections lost or refused, timeouts and Ctrl-C stopping the remote
# processes, bounded memory on large output, --repeat.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
fleet_start 5

CFG=$FLEET/n3.json
WHO=$(fleet_who) # sets $t (t1..t5) and $d ($FLEET/deploy/$t) on the target
ALL="t1 t2 t3 t4 t5"

# expect_target_lines WHICH ERE TARGETS WHAT: for each target, a line "tK: ..." of the
# last run's out or err matches ^tK: ERE$.
expect_target_lines() {
    local k
    for k in $3; do
        expect_grep "$1" "^$k: $2\$" "$4 from $k"
    done
}

# expect_markers NAME PRESENT ABSENT: $FLEET/deploy/tK/NAME exists for the targets in
# PRESENT and not for those in ABSENT.
expect_markers() {
    local k
    for k in $2; do
        expect_present "$FLEET/deploy/$k/$1" "$LAST_CMD: the command did not run on $k (no $FLEET/deploy/$k/$1)"
    done
    for k in $3; do
        expect_absent "$FLEET/deploy/$k/$1" "$LAST_CMD: the command ran on $k (it left $FLEET/deploy/$k/$1) although $k should have been refused"
    done
}

# ---- output on every target: prefixed lines, stdout and stderr apart, the summary ----

run_n3 all exec -c "$CFG" -- 'echo one two | tr a-z A-Z; echo "oops $(id -un)" >&2'
expect_rc 0
expect_target_lines out 'ONE TWO' "$ALL" "the piped output of the one-word command"
expect_target_lines err 'oops n3ssh' "$ALL" "stderr, run as the fleet's login user,"
expect_lines out 5
expect_no_grep out '^(t[1-5]: )?oops' "no stderr line on stdout"
expect_no_grep err '^t[1-5]: ONE TWO' "no stdout line on stderr"
expect_grep err '^n3ctl exec: 5 targets in [0-9.]+(ms|s): 5 ok$' "the summary: 5 targets, 5 ok"
if grep -Ev '^t[1-5]: oops n3ssh$' all.err | grep -Ev '^n3ctl exec: ' | grep -q .; then
    fail "$LAST_CMD: expected only 'tK: oops n3ssh' lines and the summary on stderr, got:
$(show all.err)"
fi
ok

# Several words are quoted one by one: each reaches the command intact.
run_n3 words exec -c "$CFG" -- printf '[%s]\n' '' 'a b' "it's \"quoted\"" '$HOME' '*' ';' \
    '$(touch pwned)' '`id`' 'back\slash' '  two  spaces  '
expect_rc 0
cat >words.want <<'EOF'
[]
[a b]
[it's "quoted"]
[$HOME]
[*]
[;]
[$(touch pwned)]
[`id`]
[back\slash]
[  two  spaces  ]
EOF
for k in $ALL; do
    sed -n "s/^$k: //p" words.out >"words.$k"
    cmp -s words.want "words.$k" || fail "$LAST_CMD: the arguments did not arrive intact on $k; expected:
$(show words.want)
  got:
$(show "words.$k")"
    ok
done

# ---- per-target order: each target's lines come whole and in order ----

run_n3 seq exec -c "$CFG" -- 'i=0; while [ $i -lt 200 ]; do i=$((i + 1)); echo $i; echo "e$i" >&2; done'
expect_rc 0
expect_lines out 1000
if grep -Evq '^t[1-5]: [0-9]+$' seq.out; then
    fail "$LAST_CMD: lines on stdout that are not 'tK: N' (mixed or cut lines):
$(grep -Ev '^t[1-5]: [0-9]+$' seq.out | sed -n '1,10s/^/    | /p')"
fi
ok
seq 1 200 >seq.want
sed 's/^/e/' seq.want >seq.ewant
for k in $ALL; do
    sed -n "s/^$k: //p" seq.out >"seq.$k"
    cmp -s seq.want "seq.$k" || fail "$LAST_CMD: $k's stdout lines are not exactly 1..200 in order:
$(diff seq.want "seq.$k" | sed -n '1,20s/^/    | /p')"
    ok
    sed -n "s/^$k: //p" seq.err | grep -v '^n3ctl exec' >"seq.e$k" || :
    cmp -s seq.ewant "seq.e$k" || fail "$LAST_CMD: $k's stderr lines are not exactly e1..e200 in order:
$(diff seq.ewant "seq.e$k" | sed -n '1,20s/^/    | /p')"
    ok
done

# ---- selectors ----

run_n3 sel exec -c "$CFG" -H t2 -H label:web -- 'echo selected'
expect_rc 0
expect_eq "$LAST_CMD: the targets that ran" "t1 t2 t3 t5" "$(sed 's/:.*//' sel.out | sort | paste -sd' ' -)"
expect_grep err '^n3ctl exec: 4 targets in .*: 4 ok$' "the summary: 4 targets, 4 ok"

run_n3 sel1 exec -c "$CFG" -H t4 -H t4 -H label:db -- "${WHO}echo \$t"
expect_rc 0
expect_eq "$LAST_CMD: the targets that ran (each once)" "t2: t2 t4: t4" "$(sort sel1.out | paste -sd' ' -)"

run_n3 nosuch exec -c "$CFG" -H nosuch -- "${WHO}touch \$d/nosuch-ran"
expect_rc 2
expect_grep err 'no target "nosuch" in environment "fleet"' "a message naming the unknown target and the environment"
expect_empty out
expect_markers nosuch-ran "" "$ALL"

run_n3 typo exec -c "$CFG" -H t22 -- true
expect_rc 2
expect_grep err 'no target "t22" in environment "fleet"; did you mean "t2"\?' "a did-you-mean for t22"

run_n3 nolabel exec -c "$CFG" -H label:nosuch -- true
expect_rc 2
expect_grep err 'label "nosuch"' "a message naming the label no target has"

run_n3 noenv exec -c "$CFG" -e nosuch -- "${WHO}touch \$d/noenv-ran"
expect_rc 2
expect_grep err 'no environment "nosuch" in .*; there are: fleet' "a message naming the environment and the ones there are"
expect_empty out
expect_markers noenv-ran "" "$ALL"

# ---- exit codes, the summary, --json ----

P2=$(fleet_port 2)
FAIL2='case $SSH_CONNECTION in *" '$P2'") exit 3 ;; esac; echo fine'
run_n3 exit3 exec -c "$CFG" -- "$FAIL2"
expect_rc 1
expect_grep err '^n3ctl exec: 5 targets in .*: 4 ok, 1 failed$' "the summary: 4 ok, 1 failed"
expect_grep err '^  t2: failed: exit 3$' "t2 named in the summary, failed: exit 3"
expect_no_grep err '^  t[1345]: ' "no other target in the summary's list"
expect_target_lines out fine "t1 t3 t4 t5" "the output"

run_n3 exit3j exec -c "$CFG" --json -- "$FAIL2"
expect_rc 1
expect_eq "$LAST_CMD: JSON documents on stdout" 1 "$(jq -s length exit3j.out 2>&1)"
jq_eq exit3j.out '[.targets[] | "\(.name)=\(.status)/\(.exit_code)"] | sort | join(" ")' \
    "t1=ok/0 t2=failed/3 t3=ok/0 t4=ok/0 t5=ok/0"
jq_eq exit3j.out '.targets[] | select(.name == "t2") | .error' "exit 3"
jq_eq exit3j.out '[.targets[] | select(.name != "t2") | .stdout == "fine\n"] | all' true \
    "$LAST_CMD: the stdout of t1 t3 t4 t5 in JSON (fine)"
jq_eq exit3j.out '.summary | "\(.ok) \(.failed) \(.unreachable) \(.refused) \(.timed_out) \(.cancelled)"' "4 1 0 0 0 0"
jq_eq exit3j.out '.environment' fleet
jq_eq exit3j.out '.command' "$FAIL2"
expect_no_grep err '^t[1-5]: ' "no streamed output with --json"

# ---- streaming: lines come out while the commands run, stdout as well as stderr ----

# Each command prints, then waits (at most 20 s) for the release file the test makes.
RELEASE=$FLEET/deploy/release
HOLD='i=0; while [ ! -e '$RELEASE' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done; '
bg_n3 stream exec -c "$CFG" -- "${WHO}echo started; echo started >&2; ${HOLD}echo finished"
pid=$BG_PID
wait_lines stream.err '^t[1-5]: started$' 5 "$LAST_CMD: stderr lines of all 5 targets while they run"
wait_lines stream.out '^t[1-5]: started$' 5 "$LAST_CMD: stdout lines of all 5 targets while they run (stdout is a file here, as in n3ctl exec ... | tee log)"
touch "$RELEASE"
wait_exit "$pid" "$LAST_CMD"
expect_rc 0
expect_target_lines out finished "$ALL" "the last line"
rm -f "$RELEASE"

# ---- host keys and client keys ----

# Unknown host key: t2 missing from known_hosts. Refused, with its fingerprint and the
# command that trusts it; the other targets run.
grep -v "^\[127\.0\.0\.1\]:$P2 " "$FLEET/known_hosts" >kh-no-t2
CFG_NO2=$(fleet_config no-t2 ".ssh.known_hosts = \"$T/kh-no-t2\"")
FP2=$(fleet_fingerprint 2)
run_n3 unknown exec -c "$CFG_NO2" -- "${WHO}touch \$d/unknown-ran; echo ran"
expect_rc 3
expect_grep err '^  t2: refused: .*unknown host key' "t2 refused: unknown host key"
expect_fgrep err "$FP2" "t2's fingerprint $FP2 (ssh-keygen -lf)"
expect_fgrep err "n3ctl hosts trust t2" "the command that trusts t2's key"
expect_grep err '^n3ctl exec: 5 targets in .*: 4 ok, 1 refused$' "the summary: 4 ok, 1 refused"
expect_target_lines out ran "t1 t3 t4 t5" "the output"
expect_markers unknown-ran "t1 t3 t4 t5" t2

# A key file others can read is refused, saying why and how to fix it.
cp "$FLEET/client_key" loose_key
chmod 0644 loose_key
CFG_LOOSE=$(fleet_config loose ".ssh.identity = \"$T/loose_key\"")
run_n3 loose exec -c "$CFG_LOOSE" -H t1 -- "${WHO}touch \$d/loose-ran"
expect_rc 3
expect_grep err '^  t1: refused: .*UNPROTECTED' "UNPROTECTED in t1's reason"
expect_fgrep err "chmod 600 $T/loose_key" "the fix: chmod 600 $T/loose_key"
expect_markers loose-ran "" t1

# A key the servers do not accept.
CFG_OTHER=$(fleet_config other ".ssh.identity = \"$FLEET/other_key\"")
run_n3 other exec -c "$CFG_OTHER" -- "${WHO}touch \$d/other-ran"
expect_rc 3
expect_grep err '^n3ctl exec: 5 targets in .*: 5 refused$' "the summary: 5 refused"
for k in $ALL; do
    expect_grep err "^  $k: refused: .*authentication as n3ssh refused" "$k refused: authentication as n3ssh refused"
done
expect_markers other-ran "" "$ALL"

# known_hosts with hashed names (ssh-keygen -H) works like a plain one.
CFG_HASHED=$(fleet_config hashed ".ssh.known_hosts = \"$FLEET/known_hosts_hashed\"")
run_n3 hashed exec -c "$CFG_HASHED" -- 'echo hashed-ok'
expect_rc 0
expect_target_lines out hashed-ok "$ALL" "the output"
expect_grep err ': 5 ok$' "the summary: 5 ok"

# ---- a host that dies during the command, a port with nothing listening ----

bg_n3 lost exec -c "$CFG" -- "${WHO}echo started; touch \$d/lost-started; ${HOLD}echo finished"
pid=$BG_PID
wait_until "the command to start on all 5 targets (markers lost-started)" \
    eval '[ "$(ls "$FLEET"/deploy/t*/lost-started 2>/dev/null | wc -l)" -eq 5 ]'
fleet kill 2
touch "$RELEASE"
wait_exit "$pid" "$LAST_CMD (sshd of t2 killed during the command)"
expect_rc 1
expect_grep err '^  t2: unreachable: .*connection lost' "t2 unreachable: connection lost"
expect_grep err '^n3ctl exec: 5 targets in .*: 4 ok, 1 unreachable$' "the summary: 4 ok, 1 unreachable"
expect_target_lines out finished "t1 t3 t4 t5" "the last line"
expect_no_grep out '^t2: finished$' "no 'finished' from t2, whose connection was cut"
rm -f "$RELEASE"
fleet restart 2

CLOSED=$(closed_port)
CFG_CLOSED=$(fleet_config closed ".environments.fleet.targets[4].port = $CLOSED")
bg_n3 closed exec -c "$CFG_CLOSED" -- 'echo up'
wait_exit "$BG_PID" "$LAST_CMD (t5 on port $CLOSED, where nothing listens)"
expect_rc 1
expect_grep err "^  t5: unreachable: .*127\\.0\\.0\\.1:$CLOSED.*Connection refused" "t5 unreachable: Connection refused, with its address"
expect_grep err '^n3ctl exec: 5 targets in .*: 4 ok, 1 unreachable$' "the summary: 4 ok, 1 unreachable"
expect_target_lines out up "t1 t2 t3 t4" "the output"

# ---- -t: a command past its timeout is stopped on the target ----

bg_n3 timeout exec -c "$CFG" -t 1 -- "${WHO}echo \$\$ >\$d/timeout.pid; exec sleep 100"
pid=$BG_PID
wait_exit "$pid" "$LAST_CMD (commands sleeping 100 s)"
expect_rc 1
for k in $ALL; do
    expect_grep err "^  $k: timed_out: " "$k timed_out in the summary"
done
expect_grep err '^n3ctl exec: 5 targets in .*: 5 timed_out$' "the summary: 5 timed_out"
for k in $ALL; do
    expect_present "$FLEET/deploy/$k/timeout.pid" "$LAST_CMD: the command never started on $k"
    rpid=$(cat "$FLEET/deploy/$k/timeout.pid")
    on_exit "kill_stray $rpid sleep"
    pid_gone "$rpid" || fail "$LAST_CMD: n3ctl exited but the timed-out command on $k (pid $rpid) still runs:
$(ps -o pid,user,stat,args -p "$rpid")"
    ok
done

# ---- 10 MB of output: kept bounded (the tail in --json), memory bounded ----

[ -x /usr/bin/time ] || skip "GNU time is not installed (Debian package time; scripts/check installs it)"
# Under AddressSanitizer, freed memory stays in its quarantine: the memory bound is checked in
# the plain build only (the bound on what is kept is checked in both).
RSS_LIMIT=40960
if ldd "$N3CTL" 2>/dev/null | grep -q 'libasan'; then
    RSS_LIMIT=1048576
fi
BIG="head -c 10000000 /dev/zero | tr '\\0' x; echo; echo END"
rc=0
/usr/bin/time -f %M -o bigj.rss "$N3CTL" exec -c "$CFG" -H t1 -H t2 --json -- "$BIG" >bigj.out 2>bigj.err </dev/null || rc=$?
LAST=bigj LAST_CMD="n3ctl exec -H t1 -H t2 --json -- \"$BIG\""
expect_rc 0
jq_eq bigj.out '[.targets[] | .name] | sort | join(" ")' "t1 t2"
jq_eq bigj.out '[.targets[] | .stdout | length <= 65536 and length > 1000] | all' true \
    "$LAST_CMD: each target's stdout in JSON, at most 65536 bytes (got $(jq -c '[.targets[].stdout | length]' bigj.out) bytes)"
jq_eq bigj.out '[.targets[] | .stdout | endswith("xxxx\nEND\n") and (rtrimstr("\nEND\n") | test("^x+$"))] | all' true \
    "$LAST_CMD: each target's stdout in JSON, the tail of the output (x...x then END)"
rss=$(tail -n 1 bigj.rss)
[ "$rss" -lt "$RSS_LIMIT" ] || fail "$LAST_CMD: expected n3ctl's max RSS under $RSS_LIMIT kB, got $rss kB"
ok

rc=0
/usr/bin/time -f %M -o bigt.rss "$N3CTL" exec -c "$CFG" -H t1 -H t2 -- "$BIG" >bigt.out 2>bigt.err </dev/null || rc=$?
LAST=bigt LAST_CMD="n3ctl exec -H t1 -H t2 -- \"$BIG\""
expect_rc 0
for k in t1 t2; do
    got=$(sed -n "s/^$k: //p" bigt.out | tr -d '\n' | wc -c)
    # 10000000 x and END
    expect_eq "$LAST_CMD: bytes of $k's output in the streamed lines" 10000003 "$got"
done
rss=$(tail -n 1 bigt.rss)
[ "$rss" -lt "$RSS_LIMIT" ] || fail "$LAST_CMD: expected n3ctl's max RSS under $RSS_LIMIT kB, got $rss kB"
ok
rm -f bigt.out

# ---- --repeat: rounds over the same connections ----

declare -A logins=()
for k in 1 2 3 4 5; do
    logins[$k]=$(grep -c 'Accepted publickey for n3ssh' "$FLEET/sshd-$k/sshd.log" || :)
done
run_n3 repeat exec -c "$CFG" --repeat 3 --json -- 'echo again'
expect_rc 0
jq_eq repeat.out '.rounds | length' 3
jq_eq repeat.out '[.rounds[] | .duration_ms | type == "number" and . > 0] | all' true
jq_eq repeat.out '.summary.ok' 5
jq_eq repeat.out '[.targets[] | .status] | unique | join(" ")' ok
for k in 1 2 3 4 5; do
    now=$(grep -c 'Accepted publickey for n3ssh' "$FLEET/sshd-$k/sshd.log" || :)
    expect_eq "$LAST_CMD: new SSH logins on t$k (3 rounds over one connection)" 1 "$((now - logins[$k]))"
done

# ---- Ctrl-C: n3ctl stops the remote commands, children included, and exits 130 ----

bg_n3 int exec -c "$CFG" -- "${WHO}sleep 100 & echo \$! >\$d/int.child; echo \$\$ >\$d/int.pid; wait"
pid=$BG_PID
wait_until "the command to start on all 5 targets (int.pid files)" \
    eval '[ "$(ls "$FLEET"/deploy/t*/int.pid 2>/dev/null | wc -l)" -eq 5 ]'
rpids=
for k in $ALL; do
    wait_until "$k's command to write int.child" file_has "$FLEET/deploy/$k/int.child" '^[0-9]+$'
    for f in int.pid int.child; do
        p=$(cat "$FLEET/deploy/$k/$f")
        on_exit "kill_stray $p sleep"
        pid_alive "$p" || fail "$k's remote process $p ($f) is not running before the SIGINT"
        rpids="$rpids $k:$p"
    done
done
kill -INT "$pid"
wait_exit "$pid" "$LAST_CMD (after SIGINT)"
LAST_CMD="$LAST_CMD (SIGINT)"
expect_rc 130
expect_grep err '^n3ctl: interrupted by SIGINT: stopped 5 running ' "a line saying it stopped the 5 running commands"
for kp in $rpids; do
    p=${kp#*:}
    pid_gone "$p" || fail "$LAST_CMD: n3ctl exited but the remote process $p on ${kp%%:*} still runs:
$(ps -o pid,user,stat,args -p "$p")"
    ok
done

# ---- ssh-agent: the key in an agent, no key file in n3.json ----

command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null ||
    fail "ssh-agent and ssh-add are needed (package openssh-client)"
agent_out=$(ssh-agent -a "$T/agent.sock" -s) || fail "ssh-agent would not start"
agent_pid=$(printf '%s\n' "$agent_out" | sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p')
[ -n "$agent_pid" ] || fail "no SSH_AGENT_PID in: $agent_out"
on_exit "kill $agent_pid"
SSH_AUTH_SOCK="$T/agent.sock" ssh-add -q "$FLEET/client_key" </dev/null ||
    fail "ssh-add $FLEET/client_key failed"
ACFG=$(fleet_config agent '.ssh.identity = [] | .ssh.agent = true')
rc=0
SSH_AUTH_SOCK="$T/agent.sock" "$N3CTL" exec -c "$ACFG" -- 'echo via-agent' \
    >"$T/agent.out" 2>"$T/agent.err" </dev/null || rc=$?
LAST=agent LAST_CMD="n3ctl exec (the key only in ssh-agent)"
expect_rc 0
[ "$(grep -c ': via-agent$' "$T/agent.out")" -eq 5 ] || fail "$LAST_CMD: not every target answered:
$(show "$T/agent.out")"
ok
# The same without the agent: nothing to authenticate with, refused, and the message says so.
rc=0
SSH_AUTH_SOCK= "$N3CTL" exec -c "$ACFG" -H t1 -- true >"$T/noagent.out" 2>"$T/noagent.err" </dev/null || rc=$?
LAST=noagent LAST_CMD="n3ctl exec (no agent, no key file)"
expect_rc 3
expect_grep err 'authentication as n3ssh refused; tried no key'

# ---- last, as it changes t3's host key for good: a changed host key ----

fleet rekey 3
P3=$(fleet_port 3)
line3=$(grep -n "^\[127\.0\.0\.1\]:$P3 " "$FLEET/known_hosts" | cut -d: -f1)
run_n3 changed exec -c "$CFG" -- "${WHO}touch \$d/changed-ran"
expect_rc 3
expect_grep err '^  t3: refused: .*HAS CHANGED' "t3 refused: HAS CHANGED"
expect_fgrep err "line $line3 of $FLEET/known_hosts" "the known_hosts line with t3's old key (line $line3)"
expect_fgrep err "$(fleet_fingerprint 3)" "the fingerprint of t3's new key"
expect_grep err '^n3ctl exec: 5 targets in .*: 4 ok, 1 refused$' "the summary: 4 ok, 1 refused"
expect_markers changed-ran "t1 t2 t4 t5" t3
