#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and hook commands in single quotes
# The deploy lock's guarantees over SSH, on a fleet of real sshd (scripts/sshd-fleet):
#  - a push stopped (SIGSTOP) past its lease while another operator takes the lock over
#    changes nothing more once it goes on (SIGCONT): the targets refuse it by their fence, it
#    says what was done and what was not, the record says lock_lost, exit 1;
#  - an operator whose clock is an hour ahead (faketime) is not told a live holder's lease
#    ran out, and cannot take it over; a holder whose clock is behind keeps its lock;
#  - five forced acquires racing on a stale lock over SSH: one winner.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
command -v faketime >/dev/null 2>&1 || skip "faketime is not installed (scripts/check installs the Debian package faketime)"
# skewed OFFSET CMD...: CMD with its clock OFFSET away (libfaketime, preloaded: in an ASan
# build it comes before the sanitizer's runtime, which is then told not to mind).
skewed() {
    local offset=$1
    shift
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" faketime -f "$offset" "$@"
}
skewed '+1h' date +%s >"$T/ft" 2>&1 && [ "$(cat "$T/ft")" -gt "$(($(date +%s) + 3000))" ] ||
    skip "faketime does not move the clock here: $(cat "$T/ft")"
fleet_start 3

REPO=$T/app
make_app_repo "$REPO"
D=$FLEET/deploy
HOST=$(hostname)
ME=$(id -un)@$HOST
# after_unpack waits for $T/go-<target> (created by the test), after saying it runs.
CFG=$(fleet_config app '.app = {"name": "demo", "repository": "'"$REPO"'"} | .lock.lease_seconds = 3
    | .hooks.after_unpack = "touch '"$T"'/running-{target}; while [ ! -e '"$T"'/go-{target} ]; do sleep 0.05; done"')
chmod 0777 "$T" # the hooks, run as the login user, leave their marks here
on_exit "touch '$T/go-t1' '$T/go-t2' '$T/go-t3'"
LOCKDIR=$D/t1/.n3/lock

# ---- a holder stopped past its lease, taken over: it changes nothing more ----

bg_n3 stopped release -c "$CFG" push v1.0.0 -p 1
PUSH=$BG_PID
# t1 first (one at a time): its unpack (a command under the fence) is in flight.
wait_until "the push's after_unpack hook on t1" test -e "$T/running-t1"
kill -STOP "$PUSH"
# The unpack on t1 goes on without it and ends; the push does not know yet.
touch "$T/go-t1"
lease_ran_out() {
    "$N3CTL" lock -c "$CFG" status >"$T/stale.out" && grep -q 'ran out' "$T/stale.out"
}
wait_until "the stopped push's lease to run out (by t1's clock)" lease_ran_out
N3CTL_OPERATOR=bob run_n3 takeover lock -c "$CFG" acquire --force -m "the push is gone"
expect_rc 0
expect_grep err "^n3ctl: took the lock over from $ME \\(pid $PUSH\\) since .*: release push v1\\.0\\.0: its lease had run out\$" \
    "the takeover names the stopped push"
BOBFENCE=$(jq -r .fence "$LOCKDIR/info.json")
for k in 1 2 3; do
    expect_eq "t$k's fence after the takeover" "$BOBFENCE" "$(cat "$D/t$k/.n3/fence" 2>/dev/null || echo none)"
done
kill -CONT "$PUSH"
wait_exit "$PUSH" "the push that lost its lock"
expect_eq "the exit status of a push that lost its lock" 1 "$rc"
LAST=stopped LAST_CMD="n3ctl release push (stopped, taken over)"
expect_grep err '^  t1: FAILED \([0-9.]+(ms|s)\): .*(the deploy lock was taken over by bob@|refused on t1: the deploy lock is not ours any more)' \
    "t1, in flight, stopped at its next change"
expect_grep err '^  t2: FAILED: not started: the deploy lock was lost$' "t2 was not started"
expect_grep err '^  t3: FAILED: not started: the deploy lock was lost$' "t3 was not started"
expect_grep err '^n3ctl: the deploy lock was lost while working: ' "the loss is said"
expect_no_grep err 'could not give the deploy lock back' "it did not try to give back a lock that is not its own"
for k in 2 3; do
    expect_absent "$D/t$k/releases/v1.0.0" "t$k was pushed to under bob's lock"
done
# t1's unpack had been sent before the takeover: its release is there, but nothing after it
# (state.json, the record on t1) was done under bob's lock.
[ ! -e "$D/t1/.n3/state.json" ] || ! jq -e '.releases[] | select(.version == "v1.0.0")' "$D/t1/.n3/state.json" >/dev/null ||
    fail "t1's state was written after the lock was lost: $(show "$D/t1/.n3/state.json")"
ok
! grep -q '"action":"release.push"' "$D/t1/.n3/audit.log" ||
    fail "t1's audit log got the push's record after the lock was lost: $(show "$D/t1/.n3/audit.log")"
ok
jq_eq "$LOCKDIR/info.json" .who "bob@$HOST" "bob still holds the lock"
run_n3 local_audit audit -c "$CFG" --json -n 1
expect_rc 0
jq_eq local_audit.out '.[0] | [.action, .result, (.detail.lock_lost | test("taken over by bob@"))] | map(tostring) | join(" ")' \
    "release.push failed true" "the local record says the lock was lost"
jq_eq local_audit.out '.[0].detail.targets | map(.target + "=" + .result) | join(" ")' "t1=failed t2=failed t3=failed" \
    "the record says what was not done"
N3CTL_OPERATOR=bob run_n3 bob_gives lock -c "$CFG" release
expect_rc 0

# ---- a clock an hour ahead does not see a live lease run out ----

rm -f "$T"/running-* "$T"/go-*
bg_n3 live release -c "$CFG" push v1.1.0 -H t2
LIVE=$BG_PID
wait_until "the push's after_unpack hook on t2" test -e "$T/running-t2"
# Held past its first lease, by t1's clock, and renewed.
held_past_lease() {
    "$N3CTL" lock -c "$CFG" status --json >"$T/held.json" && [ "$(jq -r .held_seconds "$T/held.json")" -gt 4 ]
}
wait_until "the live push to hold the lock past its first lease" held_past_lease
rc=0
N3CTL_OPERATOR=carol skewed '+1h' "$N3CTL" lock -c "$CFG" status >"$T/ahead.out" 2>"$T/ahead.err" || rc=$?
LAST=ahead LAST_CMD="n3ctl lock status (clock an hour ahead)"
expect_rc 0
expect_grep out '^  lease of 3s, renewed [0-9]+s ago, runs out in [0-9]+s \(by t1.s clock\)$' "an hour ahead, the lease is live"
expect_no_grep out 'ran out' "an hour ahead, the lease is said to have run out"
rc=0
N3CTL_OPERATOR=carol skewed '+1h' "$N3CTL" lock -c "$CFG" acquire --force -m "an hour ahead" >"$T/ahead_take.out" 2>"$T/ahead_take.err" || rc=$?
LAST=ahead_take LAST_CMD="n3ctl lock acquire --force (clock an hour ahead)"
expect_rc 3
expect_grep err 'runs out in' "the live lease is not taken over"
touch "$T/go-t2"
wait_exit "$LIVE" "the live push"
expect_eq "the live push's exit status" 0 "$rc"
expect_present "$D/t2/releases/v1.1.0"
# A holder whose clock is an hour behind: its lease is not judged by its own clock either.
rm -f "$T"/running-* "$T"/go-*
rc=0
skewed '-1h' "$N3CTL" release -c "$CFG" push v1.10.0 -H t3 >"$T/behind.out" 2>"$T/behind.err" &
BEHIND=$!
T_BG="$T_BG$BEHIND "
wait_until "the push's after_unpack hook on t3" test -e "$T/running-t3"
held_past_lease2() {
    "$N3CTL" lock -c "$CFG" status --json >"$T/held2.json" && [ "$(jq -r .held_seconds "$T/held2.json")" -gt 4 ]
}
wait_until "the behind push to hold the lock past its first lease" held_past_lease2
jq_eq "$T/held2.json" .stale false "a holder an hour behind keeps its lease"
N3CTL_OPERATOR=bob run_n3 behind_take lock -c "$CFG" acquire --force -m "steal"
expect_rc 3
touch "$T/go-t3"
wait_exit "$BEHIND" "the push an hour behind"
expect_eq "the exit status of the push an hour behind" 0 "$rc"

# ---- five forced acquires racing on a stale lock over SSH: one winner ----

for ((round = 1; round <= 3; round++)); do
    rm -f "$T"/running-* "$T"/go-*
    bg_n3 "doomed$round" release -c "$CFG" push v2.0.0 -H t1
    DEAD=$BG_PID
    wait_until "the push's after_unpack hook on t1" test -e "$T/running-t1"
    kill -KILL "$DEAD"
    wait_exit "$DEAD" "the killed push"
    touch "$T/go-t1"
    wait_until "the killed push's lease to run out (by t1's clock)" lease_ran_out
    pids=()
    for k in 1 2 3 4 5; do
        N3CTL_OPERATOR=op$k bg_n3 "race${round}_$k" lock -c "$CFG" acquire --force -m "op$k"
        pids+=("$BG_PID")
    done
    n=0 W= k=0
    for p in "${pids[@]}"; do
        k=$((k + 1))
        wait_exit "$p" "a forced acquire (round $round)"
        case $rc in
        0) n=$((n + 1)) W=op$k ;;
        3) ;;
        *) fail "round $round: op$k exited $rc: $(show "$T/race${round}_$k.err")" ;;
        esac
    done
    expect_eq "round $round: winners over SSH" 1 "$n"
    jq_eq "$LOCKDIR/info.json" .who "$W@$HOST" "round $round: the lock is the winner's"
    tail -n 1 "$D/t1/.n3/audit.log" >"$T/last.json"
    jq_eq "$T/last.json" '.detail.taken_over.pid' "$DEAD" "round $round: the takeover names the killed push"
    N3CTL_OPERATOR=$W run_n3 "give$round" lock -c "$CFG" release
    expect_rc 0
    # The killed push is gone; its release never landed, or landed whole.
    [ ! -e "$D/t1/releases/v2.0.0" ] || [ -f "$D/t1/releases/v2.0.0/REVISION" ] ||
        fail "round $round: a half release on t1"
    ok
    rm -rf "$D/t1/releases/v2.0.0"
done
