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

# ---- a build hook's checkout leaves the operator's repository as it was ----

git -C "$REPO" reset -q --hard v2.2.0
printf 'work in progress\n' >>"$REPO/README"
git -C "$REPO" add README
sum_index() { sha256sum "$REPO/.git/index" | cut -d' ' -f1; }
before=$(sum_index)
status_before=$(git -C "$REPO" status --porcelain)
jq '.hooks.build = "touch BUILT"' "$CFG" >"$T/hooked.json"
run_n3 hooked release -c "$T/hooked.json" build --rebuild v1.0.0
expect_rc 0
expect_eq "the repository's index after a build with a hook" "$before" "$(sum_index)"
expect_eq "git status after a build with a hook" "$status_before" "$(git -C "$REPO" status --porcelain)"
tar -tzf "$(cat "$T/hooked.out")" | grep -qx 'bin/app' || fail "the hooked build lacks bin/app"
ok

# ---- links as people write them: a trailing slash, current straight to a release, junk ----

run_n3 pushes release -c "$CFG" push v2.0.0
expect_rc 0
ln -sfn ../releases/v1.0.0/ "$T/t1/slots/blue"
run_n3 prune_slash release -c "$CFG" prune --keep 1 --dry-run
expect_rc 0
expect_grep err 'kept: .*v1\.0\.0\(in use\)' "a slot link with a trailing slash still protects its release"
rm -f "$T/t1/slots/blue" "$T/t1/current"
ln -sfn releases/v1.0.0 "$T/t1/current"
run_n3 prune_current release -c "$CFG" prune --keep 1 --dry-run
expect_rc 0
expect_grep err 'kept: .*v1\.0\.0\(in use\)' "current pointing straight at a release protects it"
ln -sfn "$T/t1/releases/v1.0.0
slot green ../releases/v2.0.0" "$T/t1/slots/green"
ln -sfn 'somewhere else' "$T/t1/current"
run_n3 prune_junk release -c "$CFG" prune --keep 1
expect_rc 1
expect_grep err 'not pruning while a slot or current link is not a release' "junk links stop a prune"
for v in v1.0.0 v2.0.0 v2.2.0; do
    expect_present "$T/t1/releases/$v" "a prune with junk links removed $v"
done
rm -f "$T/t1/slots/green" "$T/t1/current"

# ---- a shallow clone: the changelog says the history is missing, not "no commits" ----

git clone -q --depth 1 "file://$REPO" "$T/shallow" 2>"$T/clone.err" || fail "git clone --depth 1: $(show "$T/clone.err")"
git -C "$T/shallow" fetch -q --depth 1 origin tag v1.0.0 2>"$T/fetch.err" || fail "git fetch tag: $(show "$T/fetch.err")"
jq --arg r "$T/shallow" '.app.repository = $r' "$CFG" >"$T/shallow.json"
# libgit2 leaks on this error (tests/cli/lsan-libgit2.supp says where): suppressed for this run.
ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" \
    LSAN_OPTIONS="$LSAN_OPTIONS:suppressions=$T_LIBDIR/lsan-libgit2.supp:print_suppressions=0" \
    run_n3 shallow changelog -c "$T/shallow.json" v1.0.0 v2.2.0
expect_rc 1
expect_grep err 'cannot be read .*a shallow clone\? `git fetch --unshallow` there' "the shallow history is said"

# ---- hostile trees (made with git mktree, which checks nothing): refused, not packed ----

EVIL=$T/evil
git init -q "$EVIL"
blob=$(echo hi | git -C "$EVIL" hash-object -w --stdin)
sub=$(printf '100644 blob %s\tconfig\n' "$blob" | git -C "$EVIL" mktree)
evil_tag() { # TAG TREE-LINES
    local tree commit
    # shellcheck disable=SC2059 # the tree lines are the format
    tree=$(printf "$2" | git -C "$EVIL" mktree) || fail "git mktree for $1"
    commit=$(git_at "2026-01-06T10:00:00Z" -C "$EVIL" commit-tree "$tree" -m "$1") || fail "git commit-tree for $1"
    git -C "$EVIL" tag "$1" "$commit"
}
evil_tag v1.0.0 "040000 tree $sub\t.git\n100644 blob $blob\ta\n"
evil_tag v1.1.0 "040000 tree $sub\t.GiT\n100644 blob $blob\ta\n"
evil_tag v1.2.0 "100644 blob $blob\ta\n100644 blob $blob\ta\n"
evil_tag v1.3.0 "120000 blob $blob\tl\n040000 tree $sub\tl\n"
jq --arg r "$EVIL" '.app.repository = $r' "$CFG" >"$T/evil.json"
for v in v1.0.0 v1.1.0; do
    run_n3 "evil_$v" release -c "$T/evil.json" build "$v"
    expect_rc 1
    expect_grep err 'tree entry "\.[gG][iI][tT]" is not a valid path' "a .git in the tree ($v)"
done
run_n3 evil_dup release -c "$T/evil.json" build v1.2.0
expect_rc 1
expect_grep err 'the tree has a twice' "a path given twice"
run_n3 evil_dir release -c "$T/evil.json" build v1.3.0
expect_rc 1
expect_grep err 'the tree has l/ twice' "a symlink and a directory of the same name"
[ -z "$(find "$T/cache/n3ctl" -path '*demo/v1.[0-3].0.tar.gz' -newer "$T/evil.json")" ] ||
    fail "a hostile tree was packed into the cache"
ok

# ---- what the repository says reaches the terminal without its control characters ----

git -C "$REPO" reset -q --hard v2.2.0
git_at "2026-01-07T10:00:00Z" -C "$REPO" commit -q --allow-empty -m "$(printf 'red \033[31mALERT\033]0;title\007 end')" ||
    fail "committing the subject with escapes failed"
git_at "2026-01-07T10:00:00Z" -C "$REPO" tag v2.3.0
run_n3 esc_versions versions -c "$CFG" --local
expect_rc 0
expect_grep out '^v2\.3\.0 .* red \?\[31mALERT\?\]0;title\? end' "the subject, its control characters as ?"
run_n3 esc_changelog changelog -c "$CFG" v2.2.0 v2.3.0
expect_rc 0
expect_grep out ' red \?\[31mALERT' "the changelog line, its control characters as ?"
for f in esc_versions.out esc_changelog.out; do
    ! LC_ALL=C grep -q "$(printf '[\033\007]')" "$T/$f" || fail "$f holds raw control characters"
    ok
done

# ---- what an after_unpack hook leaves running does not hold the push lock ----

# The hook waits until its background process has left the group (setsid, then it writes its
# pid): n3ctl stops what is left in the command's group when it ends.
jq --arg p "$T/bg.pid" '.hooks.after_unpack = "setsid sh -c '"'"'echo $$ > \($p).tmp && mv \($p).tmp \($p) && exec sleep 300'"'"' >/dev/null 2>&1 </dev/null & while [ ! -s \($p) ]; do sleep 0.01; done"' \
    "$CFG" >"$T/bg.json"
run_n3 bg_hook release -c "$T/bg.json" push v1.10.0
expect_rc 0
BGP=$(cat "$T/bg.pid")
on_exit "kill $BGP 2>/dev/null || true"
pid_alive "$BGP" || fail "the hook's background process is not running (the test needs it)"
ok
if command -v flock >/dev/null 2>&1; then
    flock -n "$T/t1/.n3/push.lock" true || fail "the hook's background process holds the push lock"
    ok
fi
kill "$BGP"

# ---- a build abandoned (Ctrl-C twice) while its hook ignores TERM: the hook does not outlive it ----

jq --arg p "$T/stubborn.pid" '.hooks.build = "trap \"\" TERM; echo $$ > \($p); while :; do sleep 0.05; done"' \
    "$CFG" >"$T/stubborn.json"
bg_n3 abandon_build release -c "$T/stubborn.json" build --rebuild v1.10.0
AB=$BG_PID
wait_until "the stubborn build hook to start" test -s "$T/stubborn.pid"
kill -INT "$AB"
wait_lines "$T/abandon_build.err" 'SIGINT: finishing what is in flight' 1 "the first interrupt's note"
kill -INT "$AB"
wait_exit "$AB" "the abandoned build"
expect_eq "the abandoned build's exit status" 130 "$rc"
expect_grep err 'the build of v1\.10\.0 was abandoned \(its build hook was killed\)' "says the hook was killed"
wait_gone "$(cat "$T/stubborn.pid")" || fail "the build hook outlived the abandoned build"
ok
# What it left in the cache goes with the next build that has a hook.
run_n3 after_abandon release -c "$T/hooked.json" build --rebuild v1.10.0
expect_rc 0
[ -z "$(find "$T/cache/n3ctl/demo" -maxdepth 1 -name '.build-*')" ] ||
    fail "the abandoned build's directory is still in the cache: $(ls -A "$T/cache/n3ctl/demo")"
ok
