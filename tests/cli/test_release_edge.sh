#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and hook commands in single quotes
# Releases at their edges: two pushes at once on one target (under the operator's own lock),
# hooks that end in a comment or close their output early, a REVISION symlink in the tree,
# slot links that state.json does not know, a state.json that cannot be written, and a
# release cache that others could write to.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

REPO=$T/app
make_app_repo "$REPO"
export XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
mkdir -p "$T/t1"
app_config "$T/n3.json" "$REPO" "$T/t1"
CFG=$T/n3.json

# descendant_running PID REGEX: a process under PID whose command line matches REGEX.
descendant_running() {
    ps -e -o pid=,ppid=,args= | awk -v root="$1" -v re="$2" '
        { parent[$1] = $2; args = $0; sub(/^ *[0-9]+ +[0-9]+ +/, "", args); cmd[$1] = args }
        END {
            for (p in cmd) {
                if (cmd[p] !~ re) continue
                for (q = parent[p]; q > 1; q = parent[q]) if (q == root) { found = 1; break }
            }
            exit !found
        }'
}

# ---- two pushes at once on one target: they take turns where they touch releases/ ----

# The first push's after_unpack hook waits; the second push, meanwhile, waits for the push
# lock (flock) instead of removing the first one's temporary release as a leftover.
jq --arg m "$T/hook-running" --arg go "$T/go" \
    '.hooks.after_unpack = "touch \($m); while [ ! -e \($go) ]; do sleep 0.05; done"' \
    "$CFG" >"$T/slow.json"
run_n3 hand lock -c "$CFG" acquire -m "two pushes by hand"
expect_rc 0
bg_n3 first release -c "$T/slow.json" push v1.0.0
FIRST=$BG_PID
wait_until "the first push's after_unpack hook" test -e "$T/hook-running"
bg_n3 second release -c "$T/slow.json" push v1.1.0
SECOND=$BG_PID
if command -v flock >/dev/null 2>&1; then
    wait_until "the second push to wait for the push lock" descendant_running "$SECOND" '^flock 9$'
fi
touch "$T/go"
wait_exit "$FIRST" "the first push"
expect_eq "the first push's exit status" 0 "$rc"
wait_exit "$SECOND" "the second push"
expect_eq "the second push's exit status" 0 "$rc"
for v in v1.0.0 v1.1.0; do
    [ -x "$T/t1/releases/$v/bin/app" ] && grep -qx "version $v" "$T/t1/releases/$v/REVISION" ||
        fail "releases/$v is not whole after two pushes at once: $(ls -la "$T/t1/releases/$v" 2>&1)"
    ok
done
run_n3 hand_release lock -c "$CFG" release
expect_rc 0

# ---- hooks: a comment at the end; output closed early ----

jq '.hooks.after_unpack = "touch HOOKED # nothing else yet"' "$CFG" >"$T/comment.json"
run_n3 comment release -c "$T/comment.json" push v1.10.0
expect_rc 0
expect_present "$T/t1/releases/v1.10.0/HOOKED" "a hook ending in a comment did not run"
# A build hook that sends its output elsewhere and goes on working is waited for, not killed.
jq '.hooks.build = "exec >/dev/null 2>&1; sleep 0.3; touch BUILT_LATE"' "$CFG" >"$T/quiet.json"
run_n3 quiet release -c "$T/quiet.json" build v1.10.0
expect_rc 0
tar -tzf "$(cat "$T/quiet.out")" | grep -qx BUILT_LATE ||
    fail "the build hook was stopped when it closed its output: $(tar -tzf "$(cat "$T/quiet.out")")"
ok

# ---- a REVISION in the tree (here a symlink out of the release) is replaced, not written through ----

printf 'untouched\n' >"$T/victim"
(
    cd "$REPO" &&
        ln -s "$T/victim" REVISION &&
        git_at "2026-01-05T10:00:00Z" add REVISION &&
        git_at "2026-01-05T10:00:00Z" commit -qm "a REVISION symlink" &&
        git_at "2026-01-05T10:00:00Z" tag v2.2.0
) >"$T/git.log" 2>&1 || fail "tagging v2.2.0 failed: $(show "$T/git.log")"
run_n3 revlink release -c "$CFG" push v2.2.0
expect_rc 0
expect_eq "the file the tree's REVISION pointed to" untouched "$(cat "$T/victim")"
[ -f "$T/t1/releases/v2.2.0/REVISION" ] && [ ! -L "$T/t1/releases/v2.2.0/REVISION" ] ||
    fail "releases/v2.2.0/REVISION is not n3ctl's own file"
ok
expect_grep_file() { grep -qx -- "$2" "$1" || fail "$3: $(show "$1")"; ok; }
expect_grep_file "$T/t1/releases/v2.2.0/REVISION" "version v2.2.0" "REVISION names the version"

# ---- slot links that state.json does not know: prune keeps what they point to ----

mkdir -p "$T/t1/slots"
ln -sfn ../releases/v1.0.0 "$T/t1/slots/blue"
ln -sfn slots/blue "$T/t1/current"
jq '.slots.blue = null | .live = null' "$T/t1/.n3/state.json" >"$T/state.json" &&
    cat "$T/state.json" >"$T/t1/.n3/state.json"
run_n3 prune release -c "$CFG" prune --keep 1
expect_rc 0
expect_grep err 'slots/blue points to releases/v1\.0\.0, but state\.json says nothing: took the link' "the link wins, and it is said"
expect_present "$T/t1/releases/v1.0.0" "prune removed the release a slot link points to"
jq_eq "$T/t1/.n3/state.json" '.slots.blue.version' v1.0.0 "the state learned the slot from the link"

# ---- a state.json that cannot be written: the release is in place, and that is recorded ----

rm -f "$T/t1/.n3/state.json"
mkdir -p "$T/t1/.n3/state.json/in-the-way"
run_n3 nostate release -c "$CFG" push v2.0.0
expect_rc 1
expect_grep err '^  t1: FAILED \([0-9.]+(ms|s)\): releases/v2\.0\.0 is in place, but \.n3/state\.json could not be written: ' \
    "the push says what happened"
expect_present "$T/t1/releases/v2.0.0/REVISION" "the release"
jq_eq <(tail -n 1 "$T/t1/.n3/audit.log") '[.action, .result, .detail.version] | join(" ")' \
    "release.push partial v2.0.0" "the target's audit record of the partial push"
jq_eq <(tail -n 1 "$T/t1/.n3/audit.log") '.detail.state_not_written | length > 0' true "the record says why"
rm -rf "$T/t1/.n3/state.json"

# ---- the release cache must be the operator's alone ----

chmod 0777 "$T/cache/n3ctl/demo"
run_n3 opencache release -c "$CFG" build v1.0.0
expect_rc 1
expect_grep err "the release cache $T/cache/n3ctl/demo can be written by others \\(mode 0777\\)" "a cache others can write to is refused"
chmod 0700 "$T/cache/n3ctl/demo"
run_n3 okcache release -c "$CFG" build v1.0.0
expect_rc 0
