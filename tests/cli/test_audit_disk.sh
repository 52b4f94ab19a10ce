#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# A target's audit log on a full disk (a tmpfs the test mounts, of a few hundred KiB): an
# append is the whole record or nothing (no full disk leaves a torn record behind), and a change
# whose record could not be written fails on that target, saying that the change happened but
# is unaudited there; a log torn all the same (appended to on the full disk the way n3ctl did
# before, with printf >>) is said by `audit verify --targets`, and repaired by the next change:
# the torn line cut off and kept beside the log, the gap noted in the new record (audit_gap,
# "what": "torn"), one warning. On a local target whose deploy_path is on the small disk (the
# disk filled when the append takes its lock, by a flock(1) in front of the real one), and over
# SSH (scripts/sshd-fleet) with the target's log on a small disk that is full.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
command -v sha256sum >/dev/null 2>&1 || skip "sha256sum is not installed (Debian package coreutils)"
REAL_FLOCK=$(command -v flock) || skip "flock is not installed (Debian package util-linux)"

# small_disk DIR KIB [OPTIONS]: a tmpfs of KIB KiB on DIR, unmounted on exit. Skips the test
# where mounting is not possible.
small_disk() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=${2}k${3:+,$3}" n3ctl-test "$1" 2>"$T/mount.err" ||
        skip "cannot mount a tmpfs on $1 (needs root, and mounts allowed): $(cat "$T/mount.err")"
    on_exit "umount '$1' || umount -l '$1'"
}

# fill DISK PAGES: fill the tmpfs DISK so that exactly PAGES pages (4 KiB) stay free.
cat >"$T/fill" <<'EOF'
#!/bin/sh
set -u
disk=$1 pages=$2 i=0
rm -f "$disk/filler" "$disk"/spare.*
while [ "$i" -lt "$pages" ]; do
    head -c 4096 /dev/zero >"$disk/spare.$i" || exit 1
    i=$((i + 1))
done
head -c 1G /dev/zero >"$disk/filler" 2>/dev/null
rm -f "$disk"/spare.*
free=$(stat -f -c %a "$disk")
[ "$free" -eq "$pages" ] || { echo "fill: $free pages free on $disk, not $pages" >&2; exit 1; }
EOF
chmod +x "$T/fill"
fill() {
    "$T/fill" "$1" "$2" 2>"$T/fill.err" || fail "filling $1: $(cat "$T/fill.err")"
}
unfill() {
    rm -f "$1/filler"
}

# record LOG SEQ PAD: a valid record of "another writer" that follows LOG's last line, with seq
# SEQ and a detail padded with PAD.
record() {
    local prev
    prev=$(tail -n 1 "$1" | tr -d '\n' | sha256sum | cut -c1-64)
    printf '{"seq":%s,"time":"2026-01-01T00:00:00Z","actor":"other@elsewhere","pid":1,"action":"test.pad","targets":[],"result":"ok","detail":{"pad":"%s"},"prev":"%s"}\n' \
        "$2" "$3" "$prev"
}

# pad_log LOG ROOM: append a record of another writer to LOG, so long that ROOM bytes are left
# in the last 4 KiB page of the log: less than any record, so that the next one needs a page.
pad_log() {
    local log=$1 room=$2 seq len want
    seq=$(($(tail -n 1 "$log" | jq .seq) + 1))
    len=$(record "$log" "$seq" "" | wc -c)
    want=$(((4096 - ($(stat -c %s "$log") + room) % 4096) % 4096))
    while [ "$want" -lt "$len" ]; do want=$((want + 4096)); done
    record "$log" "$seq" "$(head -c $((want - len)) /dev/zero | tr '\0' x)" >>"$log"
    [ $((4096 - $(stat -c %s "$log") % 4096)) -eq "$room" ] || fail "pad_log: $log is $(stat -c %s "$log") bytes"
    ok
}

# tear LOG: append the next record to LOG with printf (as n3ctl did before), on a full disk:
# only what fits in the log's last page is written. The bytes written in $TORN.
tear() {
    local log=$1 size seq
    size=$(stat -c %s "$log")
    seq=$(($(tail -n 1 "$log" | jq .seq) + 1))
    record "$log" "$seq" "" >"$T/next.rec"
    ! sh -c 'printf "%s\n" "$(cat "$1")" >>"$2"' sh "$T/next.rec" "$log" 2>/dev/null ||
        fail "the append on the full disk went through whole"
    ok
    TORN=$(($(stat -c %s "$log") - size))
    [ "$TORN" -gt 0 ] && [ "$(tail -c 1 "$log" | od -An -c | tr -d ' ')" != '\n' ] ||
        fail "the append on the full disk did not tear $log ($TORN bytes written)"
    ok
    head -c "$TORN" "$T/next.rec" >"$T/torn.bytes"
}

REPO=$T/app
make_app_repo "$REPO"

# ---- a local target whose deploy_path is on a small disk ----

# t1, the lock target, on the big disk (its lease is written while the pushes run); t2 on the
# small one.
DISK=$T/disk
small_disk "$DISK" 512
mkdir -p "$T/t1" "$DISK/t2"
app_config "$T/n3.json" "$REPO" "$T/t1" "$DISK/t2"
CFG=$T/n3.json
LOG=$DISK/t2/.n3/audit.log

# The flock of an append to t2's log (exclusive, on .n3/audit.log.lock, after the log's end was
# read): while $T/fill-at-append holds a number of pages, fills the small disk so that that many
# stay free, once.
mkdir -p "$T/bin"
cat >"$T/bin/flock" <<EOF
#!/bin/sh
lock=\$(readlink /proc/\$\$/fd/9 2>/dev/null || :)
case " \$* :\$lock" in
*" -x "*":$DISK/t2/.n3/audit.log.lock")
    if [ -e '$T/fill-at-append' ]; then
        '$T/fill' '$DISK' "\$(cat '$T/fill-at-append')" 2>'$T/fill.err' || exit 1
        rm -f '$T/fill-at-append'
    fi ;;
esac
exec '$REAL_FLOCK' "\$@"
EOF
chmod +x "$T/bin/flock"

run_n3 first release -c "$CFG" push v1.0.0 -H t2
expect_rc 0
pad_log "$LOG" 100
cp "$LOG" "$T/log.before"

# No page free: the record cannot even be written beside the log.
echo 0 >"$T/fill-at-append"
PATH=$T/bin:$PATH run_n3 full0 release -c "$CFG" push v1.1.0 -H t2
expect_rc 1
expect_absent "$T/fill-at-append" "the disk was not filled (the append never took its lock)"
expect_grep err '^  t2: FAILED \([0-9.]+(ms|s)\): releases/v1\.1\.0 is in place, but unaudited on t2 \(no audit record there\): audit log on t2: .*No space left on device.*the record could not be written to a temporary file beside .*/t2/\.n3/audit\.log \(a full disk\?\); nothing was appended$' \
    "t2 fails, and says the release is in place but unaudited"
expect_same_file "$T/log.before" "$LOG" "t2's log after an append on a full disk"
expect_present "$DISK/t2/releases/v1.1.0" "the release (the change happened)"
jq_eq <(tail -n 1 "$T/state/n3ctl/audit.log") '[.action, .result, (.detail.targets[0].message | test("unaudited on t2"))] | map(tostring) | join(" ")' \
    "release.push failed true" "the local record says the push failed, and why"
unfill "$DISK"

# One page free: the record is written beside the log, and the append stops part way (100
# bytes fit in the log's last page): cut back, here with dd (a truncate that fails stands for a
# target without one).
mkdir -p "$T/bin-notruncate"
printf '#!/bin/sh\n: >"%s/truncate-tried"\nexit 127\n' "$T" >"$T/bin-notruncate/truncate"
chmod +x "$T/bin-notruncate/truncate"
echo 1 >"$T/fill-at-append"
PATH=$T/bin:$T/bin-notruncate:$PATH run_n3 full1 release -c "$CFG" push v1.10.0 -H t2
expect_rc 1
expect_absent "$T/fill-at-append" "the disk was not filled (the append never took its lock)"
expect_grep err '^  t2: FAILED \([0-9.]+(ms|s)\): releases/v1\.10\.0 is in place, but unaudited on t2 \(no audit record there\): audit log on t2: .*No space left on device.*the record could not be appended to .*/t2/\.n3/audit\.log whole \(a full disk\?\); the part written was cut off again: nothing was appended$' \
    "an append that stopped part way is cut back, and said"
expect_same_file "$T/log.before" "$LOG" "t2's log after an append that stopped part way"
expect_present "$T/truncate-tried" "the fake truncate (the log was not cut back with dd)"
[ -z "$(find "$DISK/t2/.n3" -name 'audit.log.n3tmp.*')" ] || fail "the record's temporary file was left: $(ls "$DISK/t2/.n3")"
ok
unfill "$DISK"

# With room again, the next change is recorded, and the chain holds.
run_n3 roomy release -c "$CFG" push v2.0.0 -H t2
expect_rc 0
expect_no_grep err 'audit' "nothing said about the audit log"
jq_eq <(tail -n 1 "$LOG") '[.action, .detail.version, (.detail | has("audit_gap"))] | map(tostring) | join(" ")' \
    "release.push v2.0.0 false" "the next record follows"
run_n3 verify audit -c "$CFG" verify --targets -H t2
expect_rc 0
expect_grep out '^t2:.n3/audit.log: ok, 3 records, the chain holds; seq 3, the last this machine wrote, is there$' \
    "t2's chain holds"

# A log torn all the same (an old writer, on the full disk): verify says so; the next change
# cuts the torn line off, keeps it, and notes it.
pad_log "$LOG" 100
cp "$LOG" "$T/log.before"
fill "$DISK" 0
tear "$LOG"
unfill "$DISK"
expect_eq "the bytes the old writer got in" 100 "$TORN"
run_n3 torn_verify audit -c "$CFG" verify --targets -H t2
expect_rc 1
expect_grep out '^t2:.n3/audit.log: TORN: line 5: the last record is cut short \(no newline at its end\): a write was interrupted, or the file was truncated; the 4 records before it hold the chain; the next change on t2 cuts the torn line off \(keeping it in a file beside the log\) and notes that in its record \(audit_gap\)$' \
    "verify says the log is torn, and that the next change repairs it"
run_n3 repair release -c "$CFG" push v2.0.0-rc.2 -H t2
expect_rc 0
expect_eq "warnings about the torn line" 1 "$(grep -c 'torn line' "$T/repair.err")"
expect_grep err '^  t2: done \([0-9.]+(ms|s)\): \(warning: the audit log on t2 ended with a torn line \(100 bytes after record 4, not a whole record: an append was interrupted, or something else wrote there\); it was cut off and kept in .*/t2/\.n3/audit\.log\.torn\.[0-9]{8}T[0-9]{6}Z\.5, and the new record notes it \(audit_gap\)\)$' \
    "the repair is said, once"
expect_same_file "$T/log.before" <(head -n 4 "$LOG") "the records before the torn line"
jq_eq <(tail -n 1 "$LOG") '[.seq, .detail.version, .detail.audit_gap.what, .detail.audit_gap.log_ends_at_seq, .detail.audit_gap.cut_bytes] | map(tostring) | join(" ")' \
    "5 v2.0.0-rc.2 torn 4 100" "the new record notes the torn line"
jq_eq <(tail -n 1 "$LOG") .detail.audit_gap.cut_sha256 "$(sha256sum <"$T/torn.bytes" | cut -c1-64)" "the sha256 of the bytes cut"
KEPT=$(jq -r .detail.audit_gap.kept_in <(tail -n 1 "$LOG"))
expect_same_file "$T/torn.bytes" "$KEPT" "the torn line, kept aside"
run_n3 repaired audit -c "$CFG" verify --targets -H t2
expect_rc 0
expect_grep out '^t2:.n3/audit.log: ok, 5 records, the chain holds; seq 5, the last this machine wrote, is there$' \
    "the chain holds after the repair"

# ---- over SSH: the target's log on a small disk, full ----

fleet_start 1
FCFG=$(fleet_config ssh '.app = {"name": "demo", "repository": "'"$REPO"'"}')
SDISK=$T/sshdisk
small_disk "$SDISK" 64 "uid=$(cat "$FLEET/user"),mode=0755"
FLOG=$FLEET/deploy/t1/.n3/audit.log
run_n3 ssh_first release -c "$FCFG" push v1.0.0
expect_rc 0
# The log moves to the small disk; .n3/audit.log points to it (so the record's temporary file,
# beside the link, has room, and the append itself stops part way).
mv "$FLOG" "$SDISK/audit.log"
ln -s "$SDISK/audit.log" "$FLOG"
chown -h "$(cat "$FLEET/user")" "$FLOG"
pad_log "$SDISK/audit.log" 100
cp "$SDISK/audit.log" "$T/slog.before"
fill "$SDISK" 0
run_n3 ssh_full release -c "$FCFG" push v1.1.0
expect_rc 1
expect_grep err '^  t1: FAILED \([0-9.]+(ms|s)\): releases/v1\.1\.0 is in place, but unaudited on t1 \(no audit record there\): audit log on t1: .*No space left on device.*the record could not be appended to .*/t1/\.n3/audit\.log whole \(a full disk\?\); the part written was cut off again: nothing was appended$' \
    "over SSH: an append that stopped part way is cut back, and said"
expect_same_file "$T/slog.before" "$SDISK/audit.log" "t1's log after an append that stopped part way"

# Torn all the same: repaired over SSH by the next change.
tear "$SDISK/audit.log"
unfill "$SDISK"
run_n3 ssh_repair release -c "$FCFG" push v1.10.0
expect_rc 0
expect_grep err "^  t1: done \\([0-9.]+(ms|s)\\): \\(warning: the audit log on t1 ended with a torn line \\($TORN bytes after record 2, " \
    "over SSH: the repair is said"
jq_eq <(tail -n 1 "$SDISK/audit.log") '[.seq, .detail.audit_gap.what, .detail.audit_gap.cut_bytes] | map(tostring) | join(" ")' \
    "3 torn $TORN" "over SSH: the new record notes the torn line"
expect_same_file "$T/torn.bytes" "$(jq -r .detail.audit_gap.kept_in <(tail -n 1 "$SDISK/audit.log"))" \
    "over SSH: the torn line, kept aside"
run_n3 ssh_verify audit -c "$FCFG" verify --targets
expect_rc 0
expect_grep out '^t1:.n3/audit.log: ok, 3 records, the chain holds; seq 3, the last this machine wrote, is there$' \
    "over SSH: the chain holds after the repair"
