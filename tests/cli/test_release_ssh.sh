#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Releases over SSH, against a fleet of real sshd on 127.0.0.1 (scripts/sshd-fleet): a push
# to SSH targets and a local one at once, checked on the targets; `versions` reading where
# each version runs from the targets' state; a target killed in the middle of an upload
# leaves no release (and the next push completes it); an upload that stalls is dropped, and
# what libssh2 held for it is freed (LeakSanitizer, in the ASan build, fails a run that leaks);
# a release removed by hand is written out of state.json and recorded; the lock on an SSH
# target raced by two processes; the targets' audit logs read and verified over SSH.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
fleet_start 3

REPO=$T/app
make_app_repo "$REPO"
LOCAL=$T/local
mkdir -p "$LOCAL"
# The fleet's targets t1..t3, and a local one.
CFG=$(fleet_config app '.app = {"name": "demo", "repository": "'"$REPO"'"}
    | .environments.fleet.targets += [{"name": "here", "transport": "local", "deploy_path": "'"$LOCAL"'"}]')
D=$FLEET/deploy
SHA() { jq -r .sha256 "$T/cache/n3ctl/demo/$1.json"; }

# ---- a push to SSH and local targets at once ----

run_n3 push release -c "$CFG" push v1.1.0
expect_rc 0
expect_grep err '^4 targets: 4 done, 0 already there, 0 failed \([0-9.]+(ms|s)\)$' "four targets done"
for k in 1 2 3; do
    R=$D/t$k/releases/v1.1.0
    [ -x "$R/bin/app" ] && [ -L "$R/app.conf" ] && [ "$(cat "$R/conf/with space.txt")" = spaced ] ||
        fail "t$k: releases/v1.1.0 is not the tree of v1.1.0: $(ls -lR "$R" 2>&1 | head -20)"
    ok
    expect_eq "t$k: the release's owner (the login user)" n3ssh "$(stat -c %U "$R/README")"
    expect_eq "t$k: REVISION's sha256" "sha256 $(SHA v1.1.0)" "$(grep '^sha256 ' "$R/REVISION")"
    jq_eq "$D/t$k/.n3/state.json" '[.releases[].version] | join(" ")' v1.1.0 "t$k's state"
    jq_eq "$D/t$k/.n3/state.json" '.releases[0].by' "$(id -un)@$(hostname)" "t$k's state: who pushed"
done
[ -x "$LOCAL/releases/v1.1.0/bin/app" ] || fail "the local target has no release"
ok

run_n3 again release -c "$CFG" push v1.1.0
expect_rc 0
expect_grep err '^4 targets: 0 done, 4 already there, 0 failed \([0-9.]+(ms|s)\)$' "already there, everywhere"

# versions reads where each version runs from the targets' state (slots come with issue 5;
# here they are written as a rollout would).
jq '.slots.blue = {"version": "v1.1.0", "port": 8001} | .live = "blue"' "$D/t2/.n3/state.json" >"$T/st.json"
install -o n3ssh -m 0644 "$T/st.json" "$D/t2/.n3/state.json"
run_n3 where versions -c "$CFG" --json
expect_rc 0
jq_eq where.out '.versions[] | select(.version == "v1.1.0") | .released_on | join(" ")' "t1 t2 t3 here" "where v1.1.0 is"
jq_eq where.out '.versions[] | select(.version == "v1.1.0") | .running | map(.target + ":" + .slot + (if .live then "*" else "" end)) | join(" ")' "t2:blue*" \
    "where v1.1.0 runs"
run_n3 where_table versions -c "$CFG"
expect_rc 0
expect_grep out '^v1\.1\.0 .* 4/4 +t2:blue\*$' "the table says where it runs"
# hosts reads the host state too.
run_n3 hosts hosts -c "$CFG" --json
expect_rc 0
jq_eq hosts.out '.targets[] | select(.name == "t2") | .deploy.live_version + " " + .deploy.live_slot' "v1.1.0 blue" "hosts: what runs on t2"
jq_eq hosts.out '.targets[] | select(.name == "t1") | .deploy | [.releases, .live_version] | tostring' '[1,null]' "hosts: t1 has one release, nothing live"
run_n3 hosts_table hosts -c "$CFG"
expect_rc 0
expect_grep out '^t2 .* ok +[0-9.]+m?s +v1\.1\.0 \(blue\) ' "the hosts table says what runs on t2"

# An unreachable target: the others are read, and it is said.
fleet kill 3
run_n3 where_down versions -c "$CFG" --json
expect_rc 1
expect_grep err '^n3ctl: t3: what runs there is unknown: ' "the unreachable target is named"
jq_eq where_down.out '.unreadable_targets | map(.target) | join(" ")' t3 "t3 in the JSON too"
jq_eq where_down.out '.versions[] | select(.version == "v1.1.0") | .released_on | join(" ")' "t1 t2 here" "where v1.1.0 is, t3 down"
fleet restart 3

# ---- a target killed in the middle of an upload ----

# A release big enough to be caught mid-upload: 64 MiB that do not compress.
head -c $((64 * 1024 * 1024)) /dev/urandom >"$REPO/blob.bin"
git_at "2026-02-01T10:00:00Z" -C "$REPO" add blob.bin
git_at "2026-02-01T10:00:00Z" -C "$REPO" commit -qm "a big blob"
git_at "2026-02-01T10:00:00Z" -C "$REPO" tag v4.0.0
run_n3 big_build release -c "$CFG" build v4.0.0
expect_rc 0
SIZE=$(stat -c %s "$(cat "$T/big_build.out")")

bg_n3 big release -c "$CFG" push v4.0.0 -H t1 -H t2 -H t3
BIG=$BG_PID
# uploading: an upload to t2 under way (not the one in $LEFT); its file in $UPLOADING.
LEFT=
uploading() {
    local f
    for f in "$D"/t2/.n3/incoming/*.n3tmp.*; do
        [ -s "$f" ] && [ "$f" != "$LEFT" ] && UPLOADING=$f && return 0
    done
    return 1
}
T_POLL=0.01 wait_until "the upload to t2 to start" uploading
fleet pause 2
GOT=$(stat -c %s "$UPLOADING")
[ "$GOT" -lt "$SIZE" ] || fail "the upload to t2 finished ($GOT of $SIZE bytes) before t2 could be stopped"
ok
fleet kill 2
wait_exit "$BIG" "the push to a killed target"
expect_eq "the push's exit status with t2 killed" 1 "$rc"
LAST=big LAST_CMD="n3ctl release push v4.0.0 (t2 killed)"
expect_grep err '^  t2: FAILED \([0-9.]+(ms|s)\): ' "t2 failed"
expect_grep err '^  t1: done \([0-9.]+(ms|s)\)$' "t1 done"
expect_grep err '^  t3: done \([0-9.]+(ms|s)\)$' "t3 done"
expect_absent "$D/t2/releases/v4.0.0" "a target killed mid-upload has a release v4.0.0"
[ -z "$(find "$D/t2/releases" -maxdepth 1 -name '.n3tmp-*')" ] || fail "a temporary release was left on t2"
ok
jq_eq "$D/t2/.n3/state.json" '[.releases[].version] | join(" ")' v1.1.0 "t2's state does not list v4.0.0"
expect_absent "$D/t1/.n3/lock" "the lock was not given back after a failed push"
cmp -s "$D/t1/releases/v4.0.0/blob.bin" "$REPO/blob.bin" || fail "t1's v4.0.0 is not whole"
ok

# t2 is back: the next push completes it, and clears what the killed upload left. On a
# terminal (tmux), the status line says how far t2's upload is while t2 hangs, and goes.
fleet restart 2
tty_start
LEFT=$UPLOADING
[ -e "$LEFT" ] || fail "the killed upload left nothing in t2's .n3/incoming"
ok
pane_open big2 color release -c "$CFG" push v4.0.0 -H t1 -H t2 -H t3
T_POLL=0.01 wait_until "the upload to t2 to start again" uploading
fleet pause 2
wait_until "the status line with t2's upload, t1 and t3 done" \
    pane_has big2 '^  \[2/3\] uploading 1 \([0-9]{1,2}%\)  [0-9.]+(ms|s)$'
fleet resume 2
wait_until "the push to end" pane_has big2 '^rc=[0-9]+$'
capture big2
grep -qx 'rc=0' "$T/big2.pane" || fail_pane big2 "expected rc=0 after the push"
ok
grep -Eq '^3 targets: 1 done, 2 already there, 0 failed \([0-9.]+(ms|s)\)$' "$T/big2.pane" ||
    fail_pane big2 "expected only t2 to get it"
ok
if grep -Eq '\[[0-9]/3\]' "$T/big2.pane"; then
    fail_pane big2 "the status line was not erased"
fi
ok
cmp -s "$D/t2/releases/v4.0.0/blob.bin" "$REPO/blob.bin" || fail "t2's v4.0.0 is not whole"
ok
[ -z "$(ls -A "$D/t2/.n3/incoming")" ] || fail "the killed upload was left in t2's .n3/incoming: $(ls -A "$D/t2/.n3/incoming")"
ok

# A target that hangs mid-upload: the upload's timeout (ssh.command_timeout_seconds) counts
# from the last data that went out, and ends it; the others are not held up.
rm -rf "$D/t2/releases/v4.0.0"
jq '.ssh.command_timeout_seconds = 3 | .ssh.connect_timeout_seconds = 2' "$CFG" >"$T/stall.json"
bg_n3 stall release -c "$T/stall.json" push v4.0.0 -H t1 -H t2 -H t3
STALL=$BG_PID
LEFT=
T_POLL=0.01 wait_until "the upload to t2 to start" uploading
fleet pause 2
wait_exit "$STALL" "the push to a target that hangs"
expect_eq "the push's exit status with t2 hanging" 1 "$rc"
LAST=stall LAST_CMD="n3ctl release push v4.0.0 (t2 hanging)"
expect_grep err '^  t2: FAILED \([0-9.]+(ms|s)\): .*the upload to t2 made no progress for 3s and was stopped' \
    "the stalled upload is stopped, and says so"
expect_grep err '^3 targets: 0 done, 2 already there, 1 failed ' "t1 and t3 are not held up"
expect_absent "$D/t2/releases/v4.0.0" "a stalled upload left a release"
expect_absent "$D/t1/.n3/lock" "the lock was not given back after a stalled push"
# Before it stalled, the push wrote down that v4.0.0 was removed by hand (state.json listed
# it), and recorded that on t2.
jq_eq "$D/t2/.n3/state.json" '[.releases[].version] | join(" ")' v1.1.0 "t2's state, reconciled with the release removed"
jq_eq <(tail -n 1 "$D/t2/.n3/audit.log") '[.action, (.detail.removed | join(" ")), (.detail.added | length)] | map(tostring) | join(" ")' \
    "state.reconcile v4.0.0 0" "t2's audit log has the reconcile record"
fleet restart 2

# ---- the lock on an SSH target: two processes racing, exactly one wins ----

lock_race 3 "$CFG" "$D/t1/.n3/lock/info.json"

# ---- the audit logs on the targets, over SSH ----

run_n3 t1log audit -c "$CFG" --target t1 --json -n 0
expect_rc 0
jq_eq t1log.out '[.[] | select(.action == "release.push")] | map(.detail.version) | join(" ")' "v1.1.0 v4.0.0" "t1's pushes"
jq_eq t1log.out '[.[] | select(.action == "lock.acquire")] | length' 3 "t1 (the lock target) has the lock records"
run_n3 verify audit -c "$CFG" verify --targets
expect_rc 0
expect_grep out '^t2:.n3/audit.log: ok, 3 records, the chain holds; seq 3, the last this machine wrote, is there$' "t2's log holds, with this machine's head"
sed -i '1s/"actor":"/"actor":"mallory/' "$D/t3/.n3/audit.log"
run_n3 tampered audit -c "$CFG" verify --targets
expect_rc 1
expect_grep out '^t3:.n3/audit.log: BROKEN: line 2: ' "a record changed on t3"
