#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# The deploy lock at its edges, on local targets: a second Ctrl-C while the lock is being taken
# (the command goes no further, and the lock the target may still make runs out); a forced
# release records whose lock it broke, on the lock target before the lock goes; the longest
# user@host there can be; a holder's who and message with terminal escapes shown as '?'; a
# release while a renewal of the lease is in flight.
# Slow steps on the target come from fakes of mkdir, mv and touch first on n3ctl's PATH: they
# wait for a file the test makes, or note what they see, and run the real program.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

REPO=$T/app
make_app_repo "$REPO"
mkdir -p "$T/t1" "$T/t2"
app_config "$T/n3.json" "$REPO" "$T/t1" "$T/t2"
CFG=$T/n3.json
jq '.lock.lease_seconds = 3' "$CFG" >"$T/short.json"
SHORT=$T/short.json
HOST=$(hostname)
ME=$(id -un)@$HOST
LOCKDIR=$T/t1/.n3/lock

# ---- the fakes ----

FAKE=$T/fakebin
mkdir -p "$FAKE"
REAL_MKDIR=$(command -v mkdir)
REAL_MV=$(command -v mv)
REAL_TOUCH=$(command -v touch)
# The mkdir of a new lock (made beside the lock, .../.n3/lock.new.PID, then renamed into
# place): while gate-mkdir exists, it writes its shell's pid and waits for go-mkdir.
cat >"$FAKE/mkdir" <<EOF
#!/bin/sh
for a; do last=\$a; done
case \$last in
*/.n3/lock.new.*)
    if [ -e $T/gate-mkdir ]; then
        echo "\$PPID" >$T/mkdir-shell
        : >$T/mkdir-waiting
        while [ ! -e $T/go-mkdir ]; do sleep 0.05; done
    fi ;;
esac
exec $REAL_MKDIR "\$@"
EOF
# The touch that renews the lease (.../.n3/lock/lease): while gate-touch exists, it waits for
# go-touch, then notes whether the lock directory is still there.
cat >"$FAKE/touch" <<EOF
#!/bin/sh
for a; do last=\$a; done
case \$last in
*/.n3/lock/lease)
    if [ -e $T/gate-touch ]; then
        : >$T/touch-waiting
        while [ ! -e $T/go-touch ]; do sleep 0.05; done
        if [ -d "\${last%/lease}" ]; then echo present; else echo gone; fi >>$T/touch-saw
    fi ;;
esac
exec $REAL_TOUCH "\$@"
EOF
# The mv that takes the lock away (to .../.n3/lock.gone.PID): while watch-mv exists, it notes
# the last record of the lock target's audit log at that moment.
cat >"$FAKE/mv" <<EOF
#!/bin/sh
for a; do last=\$a; done
case \$last in
*/.n3/lock.gone.*)
    if [ -e $T/watch-mv ]; then tail -n 1 "\${last%/lock.gone.*}/audit.log" >>$T/mv-saw; fi ;;
esac
exec $REAL_MV "\$@"
EOF
chmod +x "$FAKE/mkdir" "$FAKE/mv" "$FAKE/touch"
FPATH=$FAKE:$PATH
on_exit "touch '$T/go-mkdir' '$T/go-touch' '$T/go-hook'"

lease_ran_out() {
    "$N3CTL" lock -c "$SHORT" status >"$T/stale.out" && grep -q 'ran out' "$T/stale.out"
}

# abandon_acquire NAME ARGS...: n3ctl ARGS, held at the lock's mkdir, gets SIGINT twice; its
# exit status in $rc, the pid of the shell that still runs the acquire in $ACQ_SHELL.
abandon_acquire() {
    local name=$1 pid
    shift
    rm -f "$T/mkdir-waiting" "$T/mkdir-shell" "$T/go-mkdir"
    : >"$T/gate-mkdir"
    PATH=$FPATH bg_n3 "$name" "$@"
    pid=$BG_PID
    wait_until "n3ctl $* to reach the lock's mkdir" test -e "$T/mkdir-waiting"
    ACQ_SHELL=$(cat "$T/mkdir-shell")
    kill -INT "$pid"
    wait_lines "$T/$name.err" 'SIGINT: finishing what is in flight' 1 "the first interrupt's note"
    kill -INT "$pid"
    wait_lines "$T/$name.err" 'abandoning what is in flight' 1 "the second interrupt's note"
    wait_exit "$pid" "n3ctl $* (interrupted twice)"
    ABANDONED_PID=$pid
}

# ---- a second Ctrl-C while a command takes the lock: it goes no further ----

abandon_acquire abandon release -c "$SHORT" push v1.0.0
expect_eq "the abandoned push's exit status" 130 "$rc"
expect_grep err '^n3ctl: taking the deploy lock of prod \(on t1\) was abandoned before its answer came; nothing was changed\. If it was taken all the same, no one holds it: its lease \(lock\.lease_seconds, 3\.00s\) runs out that long after, by t1.s clock, and `n3ctl lock acquire --force` takes it then' \
    "what became of the lock, and what to do"
expect_no_grep err '^pushing ' "the push went on without the lock"
expect_no_grep err 'working under' "the push thought it held the lock"
expect_absent "$T/t1/releases/v1.0.0" "the abandoned push changed a target"
expect_absent "$T/t2/releases/v1.0.0" "the abandoned push changed a target"
# The acquire it left on the target goes through once let go; its lease runs out, and it is
# taken over with --force.
: >"$T/go-mkdir"
wait_until "the abandoned acquire's shell to end" pid_gone "$ACQ_SHELL"
rm -f "$T/gate-mkdir"
run_n3 after_abandon lock -c "$SHORT" status
expect_rc 0
if grep -q 'not locked' "$T/after_abandon.out"; then
    ok
else
    expect_grep out "^prod: locked on t1 by $ME \\(pid $ABANDONED_PID\\) since .*: release push v1\\.0\\.0\$" \
        "the lock left behind names the abandoned push"
    expect_grep out '^  lease of 3s, renewed ' "the lock left behind has a lease"
    wait_until "the left lock's lease to run out" lease_ran_out
    N3CTL_OPERATOR=bob run_n3 after_abandon_force lock -c "$SHORT" acquire --force -m "after the abandoned push"
    expect_rc 0
    expect_grep err "^n3ctl: took the lock over from $ME \\(pid $ABANDONED_PID\\) since .*: release push v1\\.0\\.0: its lease had run out\$" \
        "the left lock is taken over"
    N3CTL_OPERATOR=bob run_n3 after_abandon_release lock -c "$SHORT" release
    expect_rc 0
fi
expect_absent "$LOCKDIR" "the lock was not given back after the abandoned push"

# The same by hand: `lock acquire` says nothing is locked and records the interruption.
abandon_acquire hand_abandon lock -c "$SHORT" acquire -m "by hand"
expect_eq "the abandoned lock acquire's exit status" 130 "$rc"
expect_grep err '^n3ctl: taking the deploy lock of prod \(on t1\) was abandoned before its answer came\. If it was taken all the same, it is yours, by hand \(no lease\): held until `n3ctl lock release`' \
    "what became of the lock taken by hand"
expect_no_grep out 'locked on' "the abandoned acquire said it locked"
: >"$T/go-mkdir"
wait_until "the abandoned acquire's shell to end" pid_gone "$ACQ_SHELL"
rm -f "$T/gate-mkdir"
run_n3 hand_status lock -c "$SHORT" status
expect_rc 0
if ! grep -q 'not locked' "$T/hand_status.out"; then
    expect_grep out "^prod: locked on t1 by $ME \\(pid $ABANDONED_PID\\) since .*: by hand\$" "the lock left behind is yours"
    run_n3 hand_release lock -c "$SHORT" release
    expect_rc 0
fi
expect_absent "$LOCKDIR" "the lock taken by hand was not given back"

run_n3 audit1 audit -c "$CFG" --json -n 0
expect_rc 0
jq_eq audit1.out '[.[] | select(.action == "release.push" and .result == "interrupted" and .detail.abandoned == "taking the deploy lock")] | length' 1 \
    "the abandoned push is recorded as interrupted"
jq_eq audit1.out '[.[] | select(.action == "lock.acquire" and .result == "interrupted")] | length' 1 \
    "the abandoned lock acquire is recorded as interrupted"
jq_eq audit1.out '[.[] | select(.action == "lock.acquire" and .result == "ok" and .actor == "'"$ME"'")] | length' 0 \
    "an abandoned acquire is not recorded as taken"

# ---- release --force records whose lock it broke, before the lock goes ----

N3CTL_OPERATOR=bob run_n3 bob_hand lock -c "$CFG" acquire -m "bob's maintenance"
expect_rc 0
BOB_PID=$(jq -r .pid "$LOCKDIR/info.json")
BOB_SINCE=$(jq -r .since "$LOCKDIR/info.json")
: >"$T/watch-mv"
PATH=$FPATH run_n3 break lock -c "$CFG" release --force
expect_rc 0
expect_grep out '^prod: broke the lock on t1$' "the lock is broken"
expect_absent "$LOCKDIR"
rm -f "$T/watch-mv"
BROKEN="bob@$HOST|bob's maintenance|$BOB_PID|$BOB_SINCE|0"
HOLDER='.detail.holder | [.who, .message, .pid, .since, .lease_seconds] | map(tostring) | join("|")'
run_n3 audit2 audit -c "$CFG" --json -n 0
expect_rc 0
jq_eq audit2.out '[.[] | select(.action == "lock.release" and .detail.force == true)] | last | '"$HOLDER" "$BROKEN" \
    "the local record names the broken lock's holder"
jq -s . "$T/t1/.n3/audit.log" >"$T/t1-audit.json"
jq_eq "$T/t1-audit.json" '[.[] | select(.action == "lock.release" and .detail.force == true)] | last | '"$HOLDER" "$BROKEN" \
    "the lock target's record names the broken lock's holder"
jq_eq "$T/mv-saw" '.action + " " + (.detail.force | tostring) + " " + .detail.holder.who' "lock.release true bob@$HOST" \
    "the release was recorded on the lock target before the lock was removed"

# ---- the longest user@host: the longest N3CTL_OPERATOR and, where a host name can be set
# (unshare -u as root), the longest host name ----

LONGOP=$(printf 'o%.0s' $(seq 64))
LONGHOST=$(printf 'h%.0s' $(seq 64))
LONGN3=$N3CTL
LONGWHO=$LONGOP@$HOST
if unshare -u sh -c "hostname $LONGHOST" >/dev/null 2>&1; then
    LONGN3=$T/n3ctl-longhost
    printf '#!/bin/sh\nexec unshare -u sh -c '\''hostname "$0" && exec "$@"'\'' %s %s "$@"\n' \
        "$LONGHOST" "$N3CTL" >"$LONGN3"
    chmod +x "$LONGN3"
    LONGWHO=$LONGOP@$LONGHOST
else
    say "cannot set a host name here: the longest user@host is tried with this host's name"
fi
N3CTL=$LONGN3 N3CTL_OPERATOR=$LONGOP run_n3 long_push release -c "$CFG" push v1.1.0 -H t2
expect_rc 0
expect_absent "$LOCKDIR" "the push's lock was not given back"
N3CTL=$LONGN3 N3CTL_OPERATOR=$LONGOP run_n3 long_take lock -c "$CFG" acquire -m "a long name"
expect_rc 0
expect_grep out "^prod: locked on t1 by $LONGWHO: a long name\$" "taken, in the full name"
jq_eq "$LOCKDIR/info.json" .who "$LONGWHO" "the full name in info.json"
N3CTL=$LONGN3 N3CTL_OPERATOR=$LONGOP run_n3 long_status lock -c "$CFG" status --json
expect_rc 0
jq_eq long_status.out .who "$LONGWHO" "status reads the full name"
N3CTL=$LONGN3 N3CTL_OPERATOR=$LONGOP run_n3 long_under release -c "$CFG" push v1.10.0 -H t2
expect_rc 0
expect_grep err '^n3ctl: working under your deploy lock of prod \(on t1\): a long name$' "the long name's own lock lets it work"
N3CTL=$LONGN3 N3CTL_OPERATOR=$LONGOP run_n3 long_release lock -c "$CFG" release
expect_rc 0
expect_grep out '^prod: released the lock on t1$' "the long name gives its lock back"
expect_absent "$LOCKDIR"
N3CTL_OPERATOR=${LONGOP}o run_n3 too_long lock -c "$CFG" status
expect_rc 2
expect_grep err 'N3CTL_OPERATOR must be a name of 1 to 64' "a longer operator name is refused"

# ---- a holder's who and message with terminal escapes: shown with '?' ----

no_controls() { # FILE: no control characters but newlines, and no C1 controls in UTF-8
    ! tr -d '\n' <"$1" | LC_ALL=C grep -q '[[:cntrl:]]' && ! LC_ALL=C grep -q $'\xc2[\x80-\x9f]' "$1"
}
run_n3 esc_take lock -c "$CFG" acquire -m $'red \e[31malert\e[0m'
expect_rc 0
jq_eq "$LOCKDIR/info.json" .message $'red \e[31malert\e[0m' "the message is kept as it was given"
run_n3 esc_status lock -c "$CFG" status
expect_rc 0
expect_fgrep out 'since' "the status"
expect_grep out ': red \?\[31malert\?\[0m$' "the escapes in the message shown as '?'"
no_controls "$T/esc_status.out" || fail "lock status printed control characters: $(show "$T/esc_status.out")"
ok
N3CTL_OPERATOR=bob run_n3 esc_refused lock -c "$CFG" acquire -m "hotfix"
expect_rc 3
expect_grep err ': red \?\[31malert\?\[0m$' "the refusal shows the escapes as '?'"
no_controls "$T/esc_refused.err" || fail "the refusal printed control characters: $(show "$T/esc_refused.err")"
ok
N3CTL_OPERATOR=bob run_n3 esc_push release -c "$CFG" push v1.0.0
expect_rc 3
expect_grep err 'ago: red \?\[31malert\?\[0m; not changing anything' "the refused push shows the escapes as '?'"
no_controls "$T/esc_push.err" || fail "the refused push printed control characters: $(show "$T/esc_push.err")"
ok
run_n3 esc_give lock -c "$CFG" release
expect_rc 0

# A hostile lock target: info.json written by hand, with a title-setting OSC in who and a C1
# CSI in the message.
mkdir -p "$LOCKDIR"
printf '{"who":"mallory\\u001b]0;pwned\\u0007@evil","pid":1,"message":"\\u009b31mhi\\u001b[2J","since":%s,"lease_until":0,"token":"x"}' \
    "$(date +%s)" >"$LOCKDIR/info.json"
run_n3 hostile_status lock -c "$CFG" status
expect_rc 0
expect_fgrep out 'locked on t1 by mallory?]0;pwned?@evil (pid 1)' "the escapes in who shown as '?'"
expect_fgrep out ': ?31mhi?[2J' "the C1 and C0 escapes in the message shown as '?'"
no_controls "$T/hostile_status.out" || fail "lock status printed control characters: $(show "$T/hostile_status.out")"
ok
run_n3 hostile_release lock -c "$CFG" release
expect_rc 3
expect_fgrep err 'by mallory?]0;pwned?@evil' "the refused release shows the escapes as '?'"
no_controls "$T/hostile_release.err" || fail "the refused release printed control characters: $(show "$T/hostile_release.err")"
ok
run_n3 hostile_push release -c "$CFG" push v1.0.0
expect_rc 3
no_controls "$T/hostile_push.err" || fail "the refused push printed control characters: $(show "$T/hostile_push.err")"
ok
run_n3 hostile_break lock -c "$CFG" release --force
expect_rc 0
expect_absent "$LOCKDIR"

# ---- a release while a renewal of the lease is in flight: it waits, the lock goes ----

jq '.lock.lease_seconds = 3
    | .hooks.after_unpack = "touch '"$T"'/hook-running; while [ ! -e '"$T"'/go-hook ]; do sleep 0.05; done"' \
    "$CFG" >"$T/slow.json"
PATH=$FPATH bg_n3 renew release -c "$T/slow.json" push v2.0.0 -H t2
RENEW=$BG_PID
wait_until "the after_unpack hook to start" test -e "$T/hook-running"
: >"$T/gate-touch"
wait_until "a renewal of the lease to be in flight" test -e "$T/touch-waiting"
: >"$T/go-hook"
wait_lines "$T/renew.err" '^1 target: 1 done' 1 "the push to be done"
: >"$T/go-touch"
wait_exit "$RENEW" "the push whose lease was being renewed"
expect_eq "the push's exit status" 0 "$rc"
rm -f "$T/gate-touch"
expect_no_grep err 'could not give the deploy lock back' "the lock was given back"
expect_absent "$LOCKDIR" "the lock was left behind by a release beside a renewal"
expect_eq "the lock directory when the renewal finished" present \
    "$(cat "$T/touch-saw" 2>/dev/null || echo "(the renewal never finished: the push ended before it)")"
