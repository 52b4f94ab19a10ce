#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and hook commands in single quotes
# The deploy lock and the audit log, on local targets: status, acquire and release by hand;
# a second operator refused (exit 3) with who and since; your own lock lets you work; two
# processes racing, exactly one wins; a command's lease renewed while it works, given back
# when it ends, also when it fails or is interrupted; a lease whose holder died, taken over
# with --force and recorded; the hash-chained audit log, locally and on the targets, and
# `audit verify` finding a record changed or removed.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

REPO=$T/app
make_app_repo "$REPO"
export XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
mkdir -p "$T/t1" "$T/t2"
app_config "$T/n3.json" "$REPO" "$T/t1" "$T/t2"
CFG=$T/n3.json
HOST=$(hostname)
ME=$(id -un)@$HOST
LOCKDIR=$T/t1/.n3/lock

# ---- by hand ----

run_n3 free lock -c "$CFG" status
expect_rc 0
expect_grep out '^prod: not locked \(lock target t1\)$' "not locked, and where the lock lives"

run_n3 nomsg lock -c "$CFG" acquire
expect_rc 2
expect_grep err 'say why' "acquire needs a message"

run_n3 take lock -c "$CFG" acquire -m "migrating the db"
expect_rc 0
expect_grep out "^prod: locked on t1 by $ME: migrating the db\$" "taken"
expect_present "$LOCKDIR/info.json"
jq_eq "$LOCKDIR/info.json" .who "$ME" "the holder in info.json"
jq_eq "$LOCKDIR/info.json" .message "migrating the db" "the message in info.json"

run_n3 status lock -c "$CFG" status --json
expect_rc 0
jq_eq status.out .locked true "status --json: locked"
jq_eq status.out .who "$ME" "status --json: who"
jq_eq status.out .lease_seconds 0 "a lock taken by hand has no lease"

# Another operator is refused, with who and since, and nothing changes.
N3CTL_OPERATOR=bob run_n3 bob_take lock -c "$CFG" acquire -m "hotfix"
expect_rc 3
expect_grep err "^n3ctl: refused: prod: locked on t1 by $ME \\(pid [0-9]+\\) since [0-9-]+ [0-9:]+ UTC, [0-9]+s ago: migrating the db\$" "who holds it since when"
N3CTL_OPERATOR=bob run_n3 bob_push release -c "$CFG" push v1.0.0
expect_rc 3
expect_grep err "held by $ME \\(pid [0-9]+\\) since .*, [0-9]+s ago: migrating the db; not changing anything" "the push is refused with who and since"
expect_absent "$T/t1/releases/v1.0.0" "a refused push changed a target"
expect_absent "$T/t2/releases" "a refused push changed a target"
N3CTL_OPERATOR=bob run_n3 bob_release lock -c "$CFG" release
expect_rc 3
expect_grep err 'the lock is not yours' "bob cannot give back someone else's lock"
expect_present "$LOCKDIR/info.json"

# Your own lock taken by hand lets you work; it stays held.
run_n3 mypush release -c "$CFG" push v1.0.0
expect_rc 0
expect_grep err '^n3ctl: working under your deploy lock of prod \(on t1\): migrating the db$' "working under your own lock"
expect_present "$T/t2/releases/v1.0.0"
jq_eq "$LOCKDIR/info.json" .message "migrating the db" "the lock is still yours, as it was"

run_n3 give lock -c "$CFG" release
expect_rc 0
expect_grep out '^prod: released the lock on t1$' "given back"
expect_absent "$LOCKDIR"

N3CTL_OPERATOR='bob smith' run_n3 badop lock -c "$CFG" status
expect_rc 2
expect_grep err 'N3CTL_OPERATOR must be' "a bad operator name is refused"

# --force breaks a lock by hand, recorded.
N3CTL_OPERATOR=bob run_n3 bob_take2 lock -c "$CFG" acquire -m "bob's turn"
expect_rc 0
run_n3 force_live lock -c "$CFG" acquire --force -m "mine"
expect_rc 3
expect_grep err 'locked on t1 by bob@' "--force does not take a live lock"
run_n3 break lock -c "$CFG" release --force
expect_rc 0
expect_absent "$LOCKDIR"

# ---- racing: exactly one wins ----

lock_race 5 "$CFG" "$LOCKDIR/info.json"

# Two pushes racing (each takes the lock with a lease): one pushes, the other is refused.
N3CTL_OPERATOR=alice bg_n3 rp_a release -c "$CFG" push v1.1.0
a=$BG_PID
N3CTL_OPERATOR=bob bg_n3 rp_b release -c "$CFG" push v1.10.0
b=$BG_PID
wait_exit "$a" "release push (alice)"
ra=$rc
wait_exit "$b" "release push (bob)"
rb=$rc
case "$ra $rb" in
"0 3") [ -d "$T/t1/releases/v1.1.0" ] && [ ! -e "$T/t1/releases/v1.10.0" ] ;;
"3 0") [ -d "$T/t1/releases/v1.10.0" ] && [ ! -e "$T/t1/releases/v1.1.0" ] ;;
"0 0") true ;; # one finished before the other started: both had the lock in turn
*) false ;;
esac || fail "racing pushes: expected one to push and the other to be refused, got alice $ra, bob $rb:
$(show "$T/rp_a.err")
$(show "$T/rp_b.err")
$(ls "$T/t1/releases")"
ok
expect_absent "$LOCKDIR" "the lock was not given back after the racing pushes"

# ---- a command's lease: renewed while it works, given back when it ends ----

jq '.lock.lease_seconds = 3
    | .hooks.after_unpack = "touch '"$T"'/hook-running; while [ ! -e '"$T"'/go ]; do sleep 0.05; done"' \
    "$CFG" >"$T/slow.json"
on_exit "touch '$T/go'"
bg_n3 slow release -c "$T/slow.json" push v2.0.0 -H t2
SLOW=$BG_PID
wait_until "the after_unpack hook to start" test -e "$T/hook-running"
"$N3CTL" lock -c "$T/slow.json" status --json >"$T/lease1.json"
jq_eq "$T/lease1.json" .who "$ME" "the push holds the lock"
jq_eq "$T/lease1.json" .pid "$SLOW" "the push's pid"
jq_eq "$T/lease1.json" .lease_seconds 3 "a command's lock has a lease"
# Held longer than its lease (by the lock target's clock), and still not stale: renewed.
held_past_lease() {
    "$N3CTL" lock -c "$T/slow.json" status --json >"$T/lease2.json" &&
        [ "$(jq -r .held_seconds "$T/lease2.json")" -gt 4 ]
}
wait_until "the lock to be held past its first lease" held_past_lease
jq_eq "$T/lease2.json" .stale false "a renewed lease has not run out"
jq_eq "$T/lease2.json" '.renewed_seconds_ago < .held_seconds' true "the lease was renewed"
N3CTL_OPERATOR=bob run_n3 renewed_force lock -c "$T/slow.json" acquire --force -m "steal"
expect_rc 3
expect_grep err 'runs out in' "a renewed lease is not taken over, even with --force"
touch "$T/go"
wait_exit "$SLOW" "the slow push"
expect_eq "the slow push's exit status" 0 "$rc"
expect_absent "$LOCKDIR" "the lease lock was not given back"
rm -f "$T/go" "$T/hook-running"

# A push that fails gives the lock back.
jq '.hooks.after_unpack = "exit 3"' "$CFG" >"$T/fail.json"
run_n3 failpush release -c "$T/fail.json" push v2.0.0-rc.2
expect_rc 1
expect_absent "$LOCKDIR" "a failed push kept the lock"

# Ctrl-C: what is in flight finishes, nothing more starts, the lock is given back, exit 130.
jq '.hooks.after_unpack = "touch '"$T"'/hook-running; while [ ! -e '"$T"'/go ]; do sleep 0.05; done"' \
    "$CFG" >"$T/slow1.json"
bg_n3 intr release -c "$T/slow1.json" push v2.0.0-rc.10 -p 1
INTR=$BG_PID
wait_until "the after_unpack hook to start" test -e "$T/hook-running"
kill -INT "$INTR"
wait_lines "$T/intr.err" 'SIGINT: finishing what is in flight' 1 "the interrupt's note"
touch "$T/go"
wait_exit "$INTR" "the interrupted push"
expect_eq "the interrupted push's exit status" 130 "$rc"
LAST=intr LAST_CMD="n3ctl release push (interrupted)"
expect_grep err '^  t1: done \([0-9.]+(ms|s)\)$' "the push in flight finished"
expect_grep err '^  t2: FAILED: not started: interrupted$' "the next target was not started"
expect_present "$T/t1/releases/v2.0.0-rc.10"
expect_absent "$T/t2/releases/v2.0.0-rc.10"
expect_absent "$LOCKDIR" "an interrupted push kept the lock"
rm -f "$T/go" "$T/hook-running"

# ---- a lease whose holder died: refused until it runs out, then taken over with --force ----

bg_n3 doomed release -c "$T/slow.json" push v2.0.0-alpha.1 -H t2
DOOMED=$BG_PID
wait_until "the after_unpack hook to start" test -e "$T/hook-running"
kill -KILL "$DOOMED"
wait_exit "$DOOMED" "the killed push"
N3CTL_OPERATOR=bob run_n3 dead_push release -c "$T/slow.json" push v1.0.0
expect_rc 3
expect_grep err "held by $ME \\(pid $DOOMED\\)" "the dead holder's lock refuses while its lease runs"
lease_ran_out() {
    "$N3CTL" lock -c "$T/slow.json" status >"$T/stale.out" && grep -q 'ran out' "$T/stale.out"
}
wait_until "the dead holder's lease to run out" lease_ran_out
N3CTL_OPERATOR=bob run_n3 noforce lock -c "$T/slow.json" acquire -m "after the crash"
expect_rc 3
expect_grep err 'ran out' "without --force, a stale lock is only described"
N3CTL_OPERATOR=bob run_n3 takeover lock -c "$T/slow.json" acquire --force -m "after the crash"
expect_rc 0
expect_grep err "^n3ctl: took the lock over from $ME \\(pid $DOOMED\\) since .*: release push v2\\.0\\.0-alpha\\.1: its lease had run out\$" \
    "the takeover is said"
jq_eq "$LOCKDIR/info.json" .who "bob@$HOST" "bob holds it now"
N3CTL_OPERATOR=bob run_n3 bob_done lock -c "$CFG" release
expect_rc 0
expect_absent "$T/t2/releases/v2.0.0-alpha.1" "the killed push left its release visible"
touch "$T/go"

# ---- the audit log ----

run_n3 audit audit -c "$CFG" --json -n 0
expect_rc 0
jq_eq audit.out '[.[] | select(.action == "lock.acquire" and .result == "ok" and .detail.taken_over != null)] | length' 1 \
    "the takeover is recorded, with whom it was taken from"
jq_eq audit.out '[.[] | select(.action == "lock.acquire" and .detail.taken_over != null)][0].detail.taken_over.pid' "$DOOMED" \
    "the takeover names the dead holder's pid"
jq_eq audit.out '[.[] | select(.action == "release.push" and .result == "refused")] | length > 0' true "refused pushes are recorded"
jq_eq audit.out '[.[] | select(.action == "release.push" and .result == "interrupted")] | length' 1 "the interrupted push is recorded"
jq_eq audit.out '[.[] | select(.action == "release.push" and .result == "ok")][0].detail.version' v1.0.0 "a push's version"
jq_eq audit.out '[.[] | select(.action == "lock.release" and .detail.force == true)] | length' 1 "the forced release"
jq_eq audit.out '[.[].seq] == [range(1; length + 1)]' true "records are numbered 1, 2, 3, ..."

run_n3 table audit -c "$CFG" -n 3
expect_rc 0
expect_grep out '^  SEQ  TIME +WHO +ACTION +RESULT +TARGETS +DETAIL$' "the header"
expect_lines out 4

run_n3 verify audit -c "$CFG" verify --targets
expect_rc 0
NLOCAL=$(wc -l <"$T/state/n3ctl/audit.log")
N1=$(wc -l <"$T/t1/.n3/audit.log")
expect_grep out "audit\\.log: ok, $NLOCAL records, the chain holds; seq $NLOCAL, the last this machine wrote, is there\$" "the local log holds"
expect_grep out "^t1:.n3/audit.log: ok, $N1 records, the chain holds; seq $N1, the last this machine wrote, is there\$" "t1's log holds"
expect_grep out '^t2:.n3/audit.log: ok, [0-9]+ records, the chain holds; seq [0-9]+, the last this machine wrote, is there$' "t2's log holds"

run_n3 t2log audit -c "$CFG" --target t2 --json -n 0
expect_rc 0
jq_eq t2log.out '[.[] | select(.action == "release.push")] | length > 0' true "t2's log has its pushes"
jq_eq t2log.out '[.[].targets[]] | unique | join(" ")' t2 "t2's log is about t2"

# A record changed, one removed, the last one cut: each is found.
LOG=$T/state/n3ctl/audit.log
cp "$LOG" "$T/audit.orig"
sed -i '3s/"result":"ok"/"result":"OK"/; 3s/"result":"refused"/"result":"ok"/' "$LOG"
cmp -s "$LOG" "$T/audit.orig" && sed -i '3s/"actor":"/"actor":"x/' "$LOG"
run_n3 changed audit -c "$CFG" verify
expect_rc 1
expect_grep out 'BROKEN: line 4: prev does not match line 3: line 3 was changed, or a record was removed between them' "a changed record"
cp "$T/audit.orig" "$LOG"
sed -i '5d' "$LOG"
run_n3 removed audit -c "$CFG" verify
expect_rc 1
expect_grep out 'BROKEN: line 5: seq jumps from 4 to 6' "a removed record"
cp "$T/audit.orig" "$LOG"
sed -i '2s/"time":"[^"]*"/"time":"2020-01-01T00:00:00Z"/' "$T/t2/.n3/audit.log"
run_n3 target_changed audit -c "$CFG" verify --targets
expect_rc 1
expect_grep out '^t2:.n3/audit.log: BROKEN: line 3: ' "a changed record on a target"
expect_grep out '^t1:.n3/audit.log: ok' "t1's log still holds"

# Records cut off the end leave a valid chain; the head this machine kept finds them.
head -n -2 "$LOG" >"$T/cut" && cat "$T/cut" >"$LOG"
run_n3 local_cut audit -c "$CFG" verify
expect_rc 1
expect_grep out "BROKEN: line $((NLOCAL - 1)): the log ends at seq $((NLOCAL - 2)), but seq $NLOCAL \\(sha256 [0-9a-f]{12}\\.\\.\\.\\) was written to it: 2 record\\(s\\) were cut off its end" \
    "the local log cut short"
cp "$T/audit.orig" "$LOG"
T1LOG=$T/t1/.n3/audit.log
cp "$T1LOG" "$T/t1log.orig"
head -n -3 "$T/t1log.orig" >"$T1LOG"
run_n3 target_cut audit -c "$CFG" verify --targets -H t1
expect_rc 1
expect_grep out "^t1:.n3/audit.log: BROKEN: line $((N1 - 2)): the log ends at seq $((N1 - 3)), but seq $N1 .* 3 record\\(s\\) were cut off its end" \
    "a target's log cut short"
# The next change on t1 still records itself, and notes the gap in its record and as a warning.
run_n3 after_cut lock -c "$CFG" acquire -m "after the cut"
expect_rc 0
expect_grep err "warning: the audit log on t1 was cut: it ends at record $((N1 - 3)), but this machine wrote record $N1 there; the new record notes it \\(audit_gap\\)" \
    "the gap is said"
jq_eq <(tail -n 1 "$T1LOG") '.detail.audit_gap | [.what, .expected_seq, .log_ends_at_seq] | map(tostring) | join(" ")' \
    "cut $N1 $((N1 - 3))" "the new record notes the gap"
run_n3 after_cut_verify audit -c "$CFG" verify --targets -H t1
expect_rc 0
expect_grep out "^t1:.n3/audit.log: ok, $((N1 - 2)) records, the chain holds; seq $((N1 - 2)), the last this machine wrote, is there\$" \
    "the gap, once recorded, is part of the chain"
run_n3 after_cut_release lock -c "$CFG" release
expect_rc 0
# The last record changed: the chain cannot tell (nothing follows it); the head can.
N1=$(wc -l <"$T1LOG")
sed -i "${N1}s/\"time\":\"[^\"]*\"/\"time\":\"2020-01-01T00:00:00Z\"/" "$T1LOG"
run_n3 last_changed audit -c "$CFG" verify --targets -H t1
expect_rc 1
expect_grep out "^t1:.n3/audit.log: BROKEN: line $N1: seq $N1 is not the record written there \\(its sha256 was [0-9a-f]{12}\\.\\.\\.\\): the log was rewritten" \
    "the last record changed"
