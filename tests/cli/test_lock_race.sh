#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and hook commands in single quotes
# The deploy lock's guarantees on local targets (the lock target's shell and flock are this
# machine's): of five `lock acquire --force` racing on a stale lock, exactly one wins, 50
# rounds in a row, and the one told "locked" is the one whose info.json is there, with the
# takeover recorded with the holder it replaced; plain and forced acquires racing on a free
# lock, one winner; a lock whose info cannot be read (100 MB, not JSON, a \u0000 in who) is
# said to be that, refuses pushes, is not taken over, and `lock release --force` breaks it;
# an older n3ctl's half-made lock; a lock whose record cannot be written on the lock target is
# not taken (acquire) or not given back (release).
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

REPO=$T/app
make_app_repo "$REPO"
mkdir -p "$T/t1" "$T/t2"
app_config "$T/n3.json" "$REPO" "$T/t1" "$T/t2"
# The push that makes a stale lock: its after_unpack hook waits, then fails (the release never
# lands, so the next round's push has it to do again).
jq '.lock.lease_seconds = 3
    | .hooks.after_unpack = "touch '"$T"'/hook-running; while [ ! -e '"$T"'/go ]; do sleep 0.05; done; exit 9"' \
    "$T/n3.json" >"$T/slow.json"
CFG=$T/n3.json
SLOW=$T/slow.json
HOST=$(hostname)
ME=$(id -un)@$HOST
N3=$T/t1/.n3
LOCKDIR=$N3/lock
on_exit "touch '$T/go'"

# stale_lock: a push holding the lock (its after_unpack hook waiting) is killed with -9; the
# lock target's clock is then an hour past its last renewal (its lease file an hour old, as
# the clock would make it). Its pid in $DEAD.
stale_lock() {
    rm -f "$T/hook-running" "$T/go"
    bg_n3 doomed release -c "$SLOW" push v1.0.0 -H t2
    DEAD=$BG_PID
    wait_until "the push's after_unpack hook to start" test -e "$T/hook-running"
    kill -KILL "$DEAD"
    wait_exit "$DEAD" "the killed push"
    touch "$T/go" # its hook (left running on the target) ends
    touch -d "@$(($(date +%s) - 3600))" "$LOCKDIR/lease"
}

# ---- five forced acquires racing on a stale lock: exactly one wins, 50 rounds ----

ROUNDS=50
for ((round = 1; round <= ROUNDS; round++)); do
    stale_lock
    pids=()
    for k in 1 2 3 4 5; do
        N3CTL_OPERATOR=op$k bg_n3 "race${round}_$k" lock -c "$SLOW" acquire --force -m "round $round op$k"
        pids+=("$BG_PID")
    done
    winners=() k=0
    for p in "${pids[@]}"; do
        k=$((k + 1))
        wait_exit "$p" "lock acquire --force (round $round, op$k)"
        case $rc in
        0) winners+=("op$k") ;;
        3) grep -q '^n3ctl: refused: prod: locked on t1 by op[1-5]@' "$T/race${round}_$k.err" ||
            fail "round $round: op$k was refused without saying who holds the lock:
$(show "$T/race${round}_$k.err")" ;;
        *) fail "round $round: op$k exited $rc:
$(show "$T/race${round}_$k.err")" ;;
        esac
        ! grep -q 'cannot stat\|No such file' "$T/race${round}_$k.err" ||
            fail "round $round: op$k: $(show "$T/race${round}_$k.err")"
    done
    [ "${#winners[@]}" -eq 1 ] || fail "round $round: ${#winners[@]} winners (${winners[*]}), expected exactly one"
    ok
    W=${winners[0]}
    jq_eq "$LOCKDIR/info.json" .who "$W@$HOST" "round $round: the lock is the winner's"
    grep -qx "prod: locked on t1 by $W@$HOST: round $round $W" "$T/race${round}_${W#op}.out" ||
        fail "round $round: the winner was not told it holds the lock: $(show "$T/race${round}_${W#op}.out")"
    ok
    for k in 1 2 3 4 5; do
        [ "op$k" = "$W" ] || ! grep -q 'locked on' "$T/race${round}_$k.out" ||
            fail "round $round: op$k lost, and was told it holds the lock: $(show "$T/race${round}_$k.out")"
    done
    ok
    # The takeover is recorded on the lock target, with the holder it replaced.
    tail -n 1 "$N3/audit.log" >"$T/last.json"
    jq_eq "$T/last.json" '[.action, .actor, .detail.taken_over.who, .detail.taken_over.pid] | map(tostring) | join(" ")' \
        "lock.acquire $W@$HOST $ME $DEAD" "round $round: the takeover's record"
    N3CTL_OPERATOR=$W run_n3 "give$round" lock -c "$SLOW" release
    expect_rc 0
    leftovers=$(find "$N3" -maxdepth 1 -name 'lock.*.*' | head -3)
    [ -z "$leftovers" ] || fail "round $round: left in .n3: $leftovers"
    ok
done
say "$ROUNDS rounds of five forced acquires on a stale lock: one winner each"

# ---- plain and forced racing on a free lock: one winner ----

for ((round = 1; round <= 5; round++)); do
    pids=()
    for k in 1 2 3 4 5 6; do
        force=()
        [ $((k % 2)) -eq 0 ] || force=(--force)
        N3CTL_OPERATOR=op$k bg_n3 "free${round}_$k" lock -c "$CFG" acquire "${force[@]}" -m "free $round"
        pids+=("$BG_PID")
    done
    n=0 W=
    k=0
    for p in "${pids[@]}"; do
        k=$((k + 1))
        wait_exit "$p" "lock acquire (free lock, round $round)"
        case $rc in
        0) n=$((n + 1)) W=op$k ;;
        3) ;;
        *) fail "round $round: op$k exited $rc: $(show "$T/free${round}_$k.err")" ;;
        esac
    done
    expect_eq "round $round: winners of a free lock, plain and forced" 1 "$n"
    jq_eq "$LOCKDIR/info.json" .who "$W@$HOST" "round $round: the lock is the winner's"
    N3CTL_OPERATOR=$W run_n3 "free_give$round" lock -c "$CFG" release
    expect_rc 0
done

# ---- a lock whose info cannot be read ----

# unreadable NAME WHY: a lock with that info.json (written by the caller) is said to be one
# whose info cannot be read (WHY, a regular expression), refuses pushes and takeovers, and
# --force breaks it (recorded).
unreadable() {
    local name=$1 why=$2
    run_n3 "${name}_status" lock -c "$CFG" status
    expect_rc 0
    expect_grep out "^prod: locked on t1, but its info cannot be read: \\($why\\)\$" "$name: said as a lock that cannot be read"
    expect_no_grep out 'not locked|1970' "$name: not misreported"
    run_n3 "${name}_json" lock -c "$CFG" status --json
    expect_rc 0
    jq_eq "$T/${name}_json.out" '[.locked, .readable] | map(tostring) | join(" ")' "true false" "$name: --json"
    N3CTL_OPERATOR=bob run_n3 "${name}_push" release -c "$CFG" push v1.1.0
    expect_rc 3
    expect_grep err "held by someone whose lock cannot be read \\($why\\); not changing anything" "$name: a push is refused, saying why"
    expect_absent "$T/t1/releases/v1.1.0" "$name: a refused push changed a target"
    N3CTL_OPERATOR=bob run_n3 "${name}_force" lock -c "$CFG" acquire --force -m "take it"
    expect_rc 3
    N3CTL_OPERATOR=bob run_n3 "${name}_release" lock -c "$CFG" release
    expect_rc 3
    N3CTL_OPERATOR=bob run_n3 "${name}_break" lock -c "$CFG" release --force
    expect_rc 0
    expect_grep out '^prod: broke the lock on t1$' "$name: --force breaks it"
    expect_absent "$LOCKDIR" "$name: the lock is still there"
    tail -n 1 "$N3/audit.log" >"$T/last.json"
    jq_eq "$T/last.json" '[.action, .detail.force, .detail.holder.readable] | map(tostring) | join(" ")' \
        "lock.release true false" "$name: the break is recorded, with an unreadable holder"
}

mkdir -p "$LOCKDIR"
head -c 100000000 /dev/zero | tr '\0' 'a' >"$LOCKDIR/info.json"
unreadable big 'info\.json is 100000000 bytes, more than the 4096 a lock.s info can be'
mkdir -p "$LOCKDIR"
printf 'garbage{' >"$LOCKDIR/info.json"
unreadable garbled 'info\.json is not JSON'
mkdir -p "$LOCKDIR"
printf '{"who":"%s\\u0000x","pid":1,"message":"","since":1,"lease_seconds":0,"token":"%s","fence":1}' \
    "$ME" "$(printf '0%.0s' $(seq 32))" >"$LOCKDIR/info.json"
unreadable nul_who 'info\.json is not JSON'

# An older n3ctl's half-made lock (a directory, nothing in it): taken over once it is older
# than a lease, recorded as half-made.
mkdir -p "$LOCKDIR"
run_n3 half_status lock -c "$SLOW" status
expect_rc 0
expect_grep out '^prod: locked on t1, left half-made by an older n3ctl \(no holder written\)' "a half-made lock"
touch -d "@$(($(date +%s) - 3600))" "$LOCKDIR"
N3CTL_OPERATOR=bob run_n3 half_take lock -c "$SLOW" acquire --force -m "after the old one"
expect_rc 0
tail -n 1 "$N3/audit.log" >"$T/last.json"
jq_eq "$T/last.json" '.detail.taken_over.half_made' true "the takeover of a half-made lock is recorded as such"
N3CTL_OPERATOR=bob run_n3 half_give lock -c "$SLOW" release
expect_rc 0

# ---- a lock whose record cannot be written on the lock target ----

mv "$N3/audit.log" "$T/audit.saved"
mkdir "$N3/audit.log" # appending to it fails, even as root
run_n3 unrecorded_take lock -c "$CFG" acquire -m "no record"
expect_rc 1
expect_grep err 'could not be recorded on t1, so it was given back: nothing is locked' "an unrecorded acquire is given back"
expect_absent "$LOCKDIR" "an acquire that could not be recorded kept the lock"
rmdir "$N3/audit.log"
mv "$T/audit.saved" "$N3/audit.log"
run_n3 recorded_take lock -c "$CFG" acquire -m "with a record"
expect_rc 0
mv "$N3/audit.log" "$T/audit.saved"
mkdir "$N3/audit.log"
run_n3 unrecorded_give lock -c "$CFG" release
expect_rc 1
expect_grep err 'the release could not be recorded on t1, so the lock was not given back' "an unrecorded release keeps the lock"
expect_present "$LOCKDIR/info.json" "a release that could not be recorded removed the lock"
rmdir "$N3/audit.log"
mv "$T/audit.saved" "$N3/audit.log"
run_n3 recorded_give lock -c "$CFG" release
expect_rc 0
expect_absent "$LOCKDIR"
run_n3 verify audit -c "$CFG" verify --targets -H t1
expect_rc 0
