#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# The audit logs on targets: many n3ctl appending to one target log at once (pushes under the
# operator's own hand-held deploy lock) do not fork its chain; an append that finds the log
# changed since it read it reads again (forced here by a flock that lets another writer in
# first), and gives up after 16 tries with a clear message; the record this machine wrote last
# is found by its seq, not by its line, in a log whose front was removed.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
command -v sha256sum >/dev/null 2>&1 || skip "sha256sum is not installed (Debian package coreutils)"
# Without flock(1) on a target, appends at the very same moment can still fork its log.
command -v flock >/dev/null 2>&1 || skip "flock is not installed (Debian package util-linux)"

REPO=$T/app
make_app_repo "$REPO"
VERSIONS="v1.0.0 v1.1.0 v1.10.0 v2.0.0-alpha.1 v2.0.0-rc.2 v2.0.0-rc.10"

# seqs_ok LOG WHAT: the log's seqs are 1..N, each once (a forked chain repeats one).
seqs_ok() {
    local got
    got=$(jq -s -c '[.[].seq] == [range(1; length + 1)]' "$1") || fail "jq -s failed on $1:
$(show "$1")"
    [ "$got" = true ] || fail "$2: the seqs of $1 are not 1..N, each once: $(jq -s -c '[.[].seq]' "$1")"
    ok
}

# count LOG JQ-CONDITION: how many records of LOG match.
count() {
    jq -s "[.[] | select($2)] | length" "$1"
}

# ---- many appends at once: one chain ----

# A tail(1) in front of the real one, for the pushes: the reads of an audit log's end wait
# until $BARRIER of them have arrived (or 10 s have passed), so that the pushes read the log at
# the same moment and all try to append the same seq; later reads go straight on.
mkdir -p "$T/bin-barrier"
cat >"$T/bin-barrier/tail" <<EOF
#!/bin/sh
case " \$* " in
*" -n 2 -- "*"/.n3/audit.log ")
    for f; do :; done
    d='$T/barrier/'\$(printf '%s' "\$f" | sha256sum | cut -c1-16)
    mkdir -p "\$d" && mktemp "\$d/arrived.XXXXXX" >/dev/null || exit 1
    i=0
    while [ "\$(ls "\$d" | wc -l)" -lt "\$BARRIER" ] && [ \$i -lt 1000 ]; do
        sleep 0.01
        i=\$((i + 1))
    done ;;
esac
exec '$(command -v tail)' "\$@"
EOF
chmod +x "$T/bin-barrier/tail"

# The pushes do not take the deploy lock (it is the operator's own, taken by hand): only the
# audit log's lock and check keep their records apart. Each round pushes to new targets, so
# t2's log starts empty, t1's with the lock's record; the releases are built beforehand.
app_config "$T/build.json" "$REPO" "$T/unused"
for v in $VERSIONS; do
    run_n3 "build_$v" release -c "$T/build.json" build "$v"
    expect_rc 0
done
for round in 1 2; do
    mkdir -p "$T/r$round/t1" "$T/r$round/t2"
    app_config "$T/r$round.json" "$REPO" "$T/r$round/t1" "$T/r$round/t2"
    run_n3 "take$round" lock -c "$T/r$round.json" acquire -m "many pushes at once"
    expect_rc 0
    pids=
    for v in $VERSIONS; do
        BARRIER=6 PATH="$T/bin-barrier:$PATH" bg_n3 "push${round}_$v" release -c "$T/r$round.json" push "$v"
        pids="$pids $BG_PID:$v"
    done
    for p in $pids; do
        v=${p#*:}
        wait_exit "${p%%:*}" "release push $v (round $round)"
        [ "$rc" -eq 0 ] || fail "release push $v (round $round): exit status $rc:
$(show "$T/push${round}_$v.err")"
        ok
        ! grep -q 'audit log' "$T/push${round}_$v.err" ||
            fail "release push $v (round $round) said something about the audit log:
$(show "$T/push${round}_$v.err")"
        ok
    done
    for k in 1 2; do
        LOG=$T/r$round/t$k/.n3/audit.log
        seqs_ok "$LOG" "round $round: t$k's log"
        expect_eq "round $round: the pushes recorded on t$k" 6 "$(count "$LOG" '.action == "release.push"')"
        expect_eq "round $round: the versions recorded on t$k" "$(tr ' ' '\n' <<<"$VERSIONS" | LC_ALL=C sort | paste -sd ' ')" \
            "$(jq -s -r '[.[] | select(.action == "release.push") | .detail.version] | sort | join(" ")' "$LOG")"
    done
    # A push may find another one's release renamed into releases/ before that one wrote its
    # state.json: it writes it there itself, and records that (state.reconcile).
    expect_eq "round $round: t1's records beside the pushes" "lock.acquire" \
        "$(jq -s -r '[.[].action | select(. != "release.push" and . != "state.reconcile")] | join(" ")' "$T/r$round/t1/.n3/audit.log")"
    expect_eq "round $round: t2's records beside the pushes" "" \
        "$(jq -s -r '[.[].action | select(. != "release.push" and . != "state.reconcile")] | join(" ")' "$T/r$round/t2/.n3/audit.log")"
    run_n3 "verify$round" audit -c "$T/r$round.json" verify --targets
    expect_rc 0
    for k in 1 2; do
        expect_grep out "^t$k:.n3/audit.log: ok, $(wc -l <"$T/r$round/t$k/.n3/audit.log") records, the chain holds" \
            "round $round: t$k's chain holds"
    done
    run_n3 "give$round" lock -c "$T/r$round.json" release
    expect_rc 0
    rm -rf "$T/barrier"
done

# ---- the log changed between the read and the append: read again, up to 16 times ----

# A flock(1) in front of the real one: while $T/interpose counts above 0, an exclusive lock of an
# audit log's lock file first appends a record of "another writer" to that log (it runs after
# n3ctl read the log, before it checks and appends).
mkdir -p "$T/bin" "$T/c/t1" "$T/c/t2"
REAL_FLOCK=$(command -v flock)
cat >"$T/bin/other-writer" <<'EOF'
#!/bin/sh
# Append a valid record to the log $1, after its last one.
set -eu
last=$(tail -n 1 -- "$1")
if [ -z "$last" ]; then
    seq=1 prev=0000000000000000000000000000000000000000000000000000000000000000
else
    seq=$(($(printf '%s' "$last" | jq .seq) + 1))
    prev=$(printf '%s' "$last" | sha256sum | cut -c1-64)
fi
printf '{"seq":%s,"time":"2026-01-01T00:00:00Z","actor":"other@elsewhere","pid":1,"action":"test.other","targets":["t2"],"result":"ok","detail":{},"prev":"%s"}\n' \
    "$seq" "$prev" >>"$1"
EOF
cat >"$T/bin/flock" <<EOF
#!/bin/sh
lock=\$(readlink /proc/\$\$/fd/9 2>/dev/null || :)
case " \$* :\$lock" in
*" -x "*":"*/.n3/audit.log.lock)
    n=\$(cat '$T/interpose' 2>/dev/null || echo 0)
    if [ "\$n" -gt 0 ]; then
        echo \$((n - 1)) >'$T/interpose'
        '$T/bin/other-writer' "\${lock%.lock}" || exit 1
    fi ;;
esac
exec '$REAL_FLOCK' "\$@"
EOF
chmod +x "$T/bin/other-writer" "$T/bin/flock"
app_config "$T/c.json" "$REPO" "$T/c/t1" "$T/c/t2"
C2LOG=$T/c/t2/.n3/audit.log
run_n3 ctake lock -c "$T/c.json" acquire -m "retries"
expect_rc 0
run_n3 cfirst release -c "$T/c.json" push v1.0.0 -H t2
expect_rc 0

echo 3 >"$T/interpose"
PATH="$T/bin:$PATH" run_n3 retried release -c "$T/c.json" push v1.1.0 -H t2
expect_rc 0
expect_no_grep err 'audit log' "nothing said about the audit log"
expect_eq "the other writer's turns left" 0 "$(cat "$T/interpose")"
seqs_ok "$C2LOG" "after the retries"
expect_eq "the records on t2" "release.push test.other test.other test.other release.push" \
    "$(jq -s -r 'map(.action) | join(" ")' "$C2LOG")"
jq_eq <(tail -n 1 "$C2LOG") .detail.version v1.1.0 "the push, appended after the other writer's records"
jq_eq <(tail -n 1 "$C2LOG") '.detail | has("audit_gap")' false "no gap: the other records are in the chain"
run_n3 cverify audit -c "$T/c.json" verify --targets -H t2
expect_rc 0
expect_grep out '^t2:.n3/audit.log: ok, 5 records, the chain holds; seq 5, the last this machine wrote, is there$' \
    "the chain holds, with this machine's record last"

# After 16 tries it gives up: the log then holds the 5 records above and the 16 the other
# writer got in; this machine's record after them is seq $((N + 1)).
TRIES=16
N=$((5 + TRIES))
echo "$TRIES" >"$T/interpose"
PATH="$T/bin:$PATH" run_n3 gaveup release -c "$T/c.json" push v1.10.0 -H t2
# A change whose record could not be written is not a success: the target fails, and says
# that the change happened.
expect_rc 1
expect_grep err "^  t2: FAILED \([0-9.]+(ms|s)\): releases/v1\.10\.0 is in place, but unaudited on t2 \(no audit record there\): audit log on t2: it changed between reading its last record and appending $TRIES times in a row \(other n3ctl processes appending to it\); the record was not written" \
    "the append gives up after $TRIES tries, says why, and the target fails"
expect_eq "the other writer's turns left" 0 "$(cat "$T/interpose")"
expect_present "$T/c/t2/releases/v1.10.0" "the release is in place all the same"
expect_eq "the records on t2" "$N" "$(wc -l <"$C2LOG")"
expect_eq "the push records on t2" 2 "$(count "$C2LOG" '.action == "release.push"')"
seqs_ok "$C2LOG" "after giving up"
run_n3 cverify2 audit -c "$T/c.json" verify --targets -H t2
expect_rc 0
expect_grep out "^t2:.n3/audit.log: ok, $N records, the chain holds; seq 5, the last this machine wrote, is there\$" \
    "the chain holds; this machine's last record is still there"

# ---- a log whose front was removed: this machine's record is found by its seq ----

# seq 5 (this machine's head) is at line 3 once the first two lines are gone.
sed -i '1,2d' "$C2LOG"
run_n3 trimmed_verify audit -c "$T/c.json" verify --targets -H t2
expect_rc 1
expect_grep out '^t2:.n3/audit.log: BROKEN: line 1: the log starts at seq 3, not 1: the first 2 record\(s\) were removed' \
    "the removal is found"
run_n3 after_trim release -c "$T/c.json" push v2.0.0 -H t2
expect_rc 0
expect_no_grep err 'audit log|audit_gap' "no gap said: this machine's record is there (by its seq, at another line)"
jq_eq <(tail -n 1 "$C2LOG") '[.seq, .detail.version, (.detail | has("audit_gap"))] | map(tostring) | join(" ")' \
    "$((N + 1)) v2.0.0 false" "the new record follows, without audit_gap"
run_n3 trimmed_verify2 audit -c "$T/c.json" verify --targets -H t2
expect_rc 1
expect_grep out '^t2:.n3/audit.log: BROKEN: line 1: the log starts at seq 3, not 1' "the removal is still found"

# This machine's record (seq N + 1, at line N - 1) changed: the next append notes it.
sed -i "$((N - 1))"'s/"time":"[^"]*"/"time":"2020-01-01T00:00:00Z"/' "$C2LOG"
run_n3 changed_head release -c "$T/c.json" push v2.0.0-rc.2 -H t2
expect_rc 0
expect_grep err "the audit log on t2 was rewritten: its record $((N + 1)) is not the one this machine wrote there; the new record notes it \\(audit_gap\\)" \
    "a changed record, found by its seq, is said"
jq_eq <(tail -n 1 "$C2LOG") '.detail.audit_gap | [.what, .expected_seq, .log_ends_at_seq] | map(tostring) | join(" ")' \
    "rewritten $((N + 1)) $((N + 1))" "the new record notes the gap"

# ---- a torn last line is cut off by the next append, kept aside, and noted ----

# The last record without its newline (a write cut short): it is the record this machine
# wrote last, so the gap says the log was cut too.
cp "$C2LOG" "$T/c2.orig"
LASTLEN=$(tail -n 1 "$T/c2.orig" | wc -c)
head -c -1 "$T/c2.orig" >"$C2LOG"
run_n3 cutshort release -c "$T/c.json" push v2.0.0-rc.10 -H t2
expect_rc 0
expect_grep err "the audit log on t2 ended with a torn line \\($((LASTLEN - 1)) bytes after record $((N + 1)), not a whole record" \
    "the torn line is said"
jq_eq <(tail -n 1 "$C2LOG") '.detail.audit_gap | [.what, .expected_seq, .log_ends_at_seq, .cut_bytes] | map(tostring) | join(" ")' \
    "cut $((N + 2)) $((N + 1)) $((LASTLEN - 1))" "the new record notes the torn line, and the record cut with it"
KEPT=$(jq -r .detail.audit_gap.kept_in <(tail -n 1 "$C2LOG"))
expect_same_file <(tail -n 1 "$T/c2.orig" | head -c -1) "$KEPT" "the torn line, kept aside"
jq_eq <(tail -n 1 "$C2LOG") .seq $((N + 2)) "the new record takes the torn one's place"

# An empty last line: cut off too (one byte).
cp "$C2LOG" "$T/c2.orig"
printf '\n' >>"$C2LOG"
run_n3 blank release -c "$T/c.json" push v2.0.0-alpha.1 -H t2
expect_rc 0
expect_grep err "the audit log on t2 ended with a torn line \\(1 byte after record $((N + 2))" "an empty last line is said"
expect_same_file <(head -n -1 "$C2LOG") "$T/c2.orig" "the records before the empty line"
jq_eq <(tail -n 1 "$C2LOG") '.detail.audit_gap | [.what, .log_ends_at_seq, .cut_bytes] | map(tostring) | join(" ")' \
    "torn $((N + 2)) 1" "the new record notes the empty line"

# Two last lines that are not records: not continued, nothing written; the prune that could
# not record its change fails on t2, and says what it did.
printf 'not a record\nnor this\n' >>"$C2LOG"
cp "$C2LOG" "$T/c2.orig"
run_n3 garbage release -c "$T/c.json" prune --keep 1 -H t2
expect_rc 1
expect_grep err '^  t2: FAILED \([0-9.]+(ms|s)\): kept: .*; removed: .*; the releases were removed, but unaudited on t2 \(no audit record there\): audit log on t2: its last two lines are not records, so the chain cannot be continued' \
    "a log whose last two lines are not records: the prune fails on t2"
expect_same_file "$T/c2.orig" "$C2LOG" "a log whose last two lines are not records"

run_n3 cgive lock -c "$T/c.json" release
expect_rc 0
