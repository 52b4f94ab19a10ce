#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# What is on disk and what state.json says, made one again by the next change: a push killed
# (SIGKILL) between the rename of its release into releases/ and writing state.json leaves the
# release there and the state without it; the next push of that release finds it "already
# there", and writes it into state.json and records that on the target (state.reconcile),
# although it has nothing else to do; so does the next push to a target whose first push was
# killed before any state.json was written, and the next prune after a release was removed by
# hand. Reading (release list, a dry-run prune) changes nothing.
# The kill comes from a fake mv first on n3ctl's PATH: it lets the release's rename through,
# then kills the n3ctl it runs under.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

REPO=$T/app
make_app_repo "$REPO"
mkdir -p "$T/t1" "$T/t2"
app_config "$T/n3.json" "$REPO" "$T/t1" "$T/t2"
CFG=$T/n3.json

FAKE=$T/fakebin
mkdir -p "$FAKE"
REAL_MV=$(command -v mv)
# The mv that renames a release into place (its last argument releases/VERSION): while
# kill-after-mv exists, it renames, then SIGKILLs the n3ctl above it (found by its name, up
# the process tree), as a crash right after the rename would.
cat >"$FAKE/mv" <<EOF
#!/bin/sh
for a; do last=\$a; done
case \$last in
releases/*)
    if [ -e '$T/kill-after-mv' ]; then
        $REAL_MV "\$@" || exit
        p=\$PPID
        while [ "\$p" -gt 1 ]; do
            if [ "\$(cat /proc/\$p/comm 2>/dev/null)" = n3ctl ]; then
                echo "\$p" >'$T/killed'
                kill -KILL "\$p"
                exit 0
            fi
            p=\$(ps -o ppid= -p "\$p" | tr -d ' ')
        done
        echo "no n3ctl above mv" >'$T/killed'
        exit 1
    fi ;;
esac
exec $REAL_MV "\$@"
EOF
chmod +x "$FAKE/mv"

# killed_push NAME ARGS...: n3ctl release push ARGS, killed right after its release's rename;
# then the lock it held is broken, as its holder is gone.
killed_push() {
    local name=$1
    shift
    rm -f "$T/killed"
    : >"$T/kill-after-mv"
    PATH=$FAKE:$PATH run_n3 "$name" release -c "$CFG" push "$@"
    rm -f "$T/kill-after-mv"
    [ "$rc" -eq 137 ] || fail "the push to be killed after its rename exited $rc, not by SIGKILL:
$(show "$T/$name.err")"
    ok
    grep -Eq '^[0-9]+$' "$T/killed" || fail "the fake mv killed nothing: $(cat "$T/killed" 2>&1)"
    ok
    run_n3 "${name}_break" lock -c "$CFG" release --force
    expect_rc 0
}

# releases_in STATE-FILE: the versions state.json lists.
releases_in() {
    jq -r '[.releases[].version] | join(" ")' "$1"
}

# ---- a push killed between the rename and the state write ----

run_n3 first release -c "$CFG" push v1.0.0 -H t1
expect_rc 0
killed_push killed v1.1.0 -H t1
expect_present "$T/t1/releases/v1.1.0" "the killed push's release"
expect_eq "state.json after the killed push" v1.0.0 "$(releases_in "$T/t1/.n3/state.json")"

# Reading changes nothing.
cp "$T/t1/.n3/state.json" "$T/state.before"
cp "$T/t1/.n3/audit.log" "$T/audit.before"
run_n3 list release -c "$CFG" list -H t1
expect_rc 0
expect_same_file "$T/state.before" "$T/t1/.n3/state.json" "state.json after release list"
expect_same_file "$T/audit.before" "$T/t1/.n3/audit.log" "t1's audit log after release list"

run_n3 again release -c "$CFG" push v1.1.0 -H t1
expect_rc 0
expect_grep err '^  t1: already there \([0-9.]+(ms|s)\): releases/v1\.1\.0 is on disk but not in state\.json: added it; \.n3/state\.json written \(recorded: state\.reconcile\)$' \
    "the push says it wrote the release into state.json"
expect_eq "state.json after the next push" "v1.1.0 v1.0.0" "$(releases_in "$T/t1/.n3/state.json")"
jq_eq "$T/t1/.n3/state.json" '.releases[] | select(.version == "v1.1.0") | .sha256' \
    "$(jq -r .sha256 "$T/cache/n3ctl/demo/v1.1.0.json")" "the release's sha256, from its REVISION"
jq_eq "$T/t1/.n3/state.json" '.history[-1].action' state.reconcile "state.json's history"
jq_eq <(tail -n 1 "$T/t1/.n3/audit.log") '[.action, .result, (.detail.added | join(" ")), (.detail.removed | length)] | map(tostring) | join(" ")' \
    "state.reconcile ok v1.1.0 0" "t1's audit log records the reconcile"
run_n3 verify audit -c "$CFG" verify --targets
expect_rc 0
expect_grep out '^t1:.n3/audit.log: ok, [0-9]+ records, the chain holds' "t1's chain holds"

# Once reconciled, a push of it again has nothing to write.
cp "$T/t1/.n3/audit.log" "$T/audit.before"
run_n3 third release -c "$CFG" push v1.1.0 -H t1
expect_rc 0
expect_grep err '^  t1: already there \([0-9.]+(ms|s)\)$' "nothing more to reconcile"
expect_same_file "$T/audit.before" "$T/t1/.n3/audit.log" "t1's audit log after a push with nothing to do"

# ---- the first push to a target killed before any state.json was written ----

killed_push first_killed v1.0.0 -H t2
expect_present "$T/t2/releases/v1.0.0" "the killed first push's release"
expect_absent "$T/t2/.n3/state.json" "a state.json after the killed first push"
run_n3 first_again release -c "$CFG" push v1.0.0 -H t2
expect_rc 0
expect_grep err '^  t2: already there \([0-9.]+(ms|s)\): no .*/t2/\.n3/state\.json; rebuilt it from what is on disk; \.n3/state\.json written \(recorded: state\.reconcile\)$' \
    "the push says it wrote the state it rebuilt"
expect_eq "t2's state.json" v1.0.0 "$(releases_in "$T/t2/.n3/state.json")"
jq_eq "$T/t2/.n3/audit.log" '[.action, (.detail.added | join(" "))] | join(" ")' "state.reconcile v1.0.0" \
    "t2's audit log: the reconcile is its only record"

# ---- a release removed by hand: the next prune writes it out, with nothing else to do ----

rm -rf "$T/t1/releases/v1.0.0"
cp "$T/t1/.n3/state.json" "$T/state.before"
run_n3 dry release -c "$CFG" prune --keep 5 --dry-run -H t1
expect_rc 0
expect_same_file "$T/state.before" "$T/t1/.n3/state.json" "state.json after a dry-run prune"
run_n3 prune release -c "$CFG" prune --keep 5 -H t1
expect_rc 0
expect_grep err '^  t1: unchanged \([0-9.]+(ms|s)\): releases/v1\.0\.0 is in state\.json but not on disk: dropped it; \.n3/state\.json written \(recorded: state\.reconcile\); kept: v1\.1\.0; removed: nothing$' \
    "the prune says it wrote the release out of state.json"
expect_eq "state.json after the prune" v1.1.0 "$(releases_in "$T/t1/.n3/state.json")"
jq_eq <(tail -n 1 "$T/t1/.n3/audit.log") '[.action, (.detail.removed | join(" ")), (.detail.added | length)] | map(tostring) | join(" ")' \
    "state.reconcile v1.0.0 0" "t1's audit log records the reconcile"
run_n3 verify2 audit -c "$CFG" verify --targets
expect_rc 0
expect_grep out '^t1:.n3/audit.log: ok, [0-9]+ records, the chain holds; seq [0-9]+, the last this machine wrote, is there$' \
    "t1's chain holds"
expect_grep out '^t2:.n3/audit.log: ok, 1 record, the chain holds; seq 1, the last this machine wrote, is there$' \
    "t2's chain holds"
