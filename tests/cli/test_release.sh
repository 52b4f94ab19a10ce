#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and hook commands in single quotes
# Versions from a real git repository (semver order, pre-releases, annotated and lightweight
# tags, ignored tags, a tag with shell metacharacters), the changelog, reproducible release
# builds, pushes to local targets (atomic, idempotent), host state rebuilt when missing or
# corrupt, pruning that keeps what slots and the rollback need, and hooks.
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
commit_of() { git -C "$REPO" rev-parse "$1^{commit}"; }

# ---- versions: semver order, pre-releases, annotated and lightweight, ignored tags ----

run_n3 versions versions -c "$CFG" --local --json
expect_rc 0
jq_eq versions.out '[.versions[].version] | join(" ")' \
    "v2.0.0 v2.0.0-rc.10 v2.0.0-rc.2 v2.0.0-alpha.1 v1.10.0 v1.1.0 v1.0.0" "versions, newest first"
jq_eq versions.out '.versions[] | select(.version == "v1.0.0") | .annotated' true "v1.0.0 is annotated"
jq_eq versions.out '.versions[] | select(.version == "v1.1.0") | .annotated' false "v1.1.0 is lightweight"
jq_eq versions.out '.versions[] | select(.version == "v2.0.0-rc.2") | .prerelease' true "rc.2 is a pre-release"
jq_eq versions.out '.versions[] | select(.version == "v2.0.0") | .prerelease' false "v2.0.0 is a release"
jq_eq versions.out '.versions[] | select(.version == "v1.0.0") | .commit' "$(commit_of v1.0.0)" "v1.0.0's commit (through the annotated tag)"
jq_eq versions.out '.versions[] | select(.version == "v1.1.0") | .subject' two "v1.1.0's subject"
jq_eq versions.out '.versions[] | select(.version == "v1.1.0") | .author' "Ada Lovelace <ada@example.org>" "the author"
jq_eq versions.out '.versions[] | select(.version == "v1.1.0") | .date' "2026-01-02T10:00:00Z" "the commit date"
jq_eq versions.out '[.ignored[].tag] | sort | join(" ")' 'latest v2.1.0;touch${IFS}PWNED v3.0' "the ignored tags"
jq_eq versions.out '.ignored[] | select(.tag == "v3.0") | .reason' "a version has three numbers: MAJOR.MINOR.PATCH" "why v3.0 is ignored"
jq_eq versions.out '.ignored[] | select(.tag | startswith("v2.1.0")) | .reason | test("character 7 [(].;.[)] is not allowed")' true \
    "why the tag with shell metacharacters is refused"

run_n3 table versions -c "$CFG" --local
expect_rc 0
expect_grep out '^VERSION +COMMIT +DATE +AUTHOR +SUBJECT' "the header"
expect_grep out "^v2\.0\.0 +$(commit_of v2.0.0 | cut -c1-7) +2026-01-04 +Ada Lovelace +four" "v2.0.0's row"
expect_grep out '^ignored tag latest: ' "ignored tags, with why"

# The tag pattern selects tags; "v1.*" leaves the others out (not even as ignored).
jq '.app.tag_pattern = "v1.*"' "$CFG" >"$T/v1.json"
run_n3 pattern versions -c "$T/v1.json" --local --json
expect_rc 0
jq_eq pattern.out '[.versions[].version] | join(" ")' "v1.10.0 v1.1.0 v1.0.0" "versions matching v1.*"
jq_eq pattern.out '.ignored | length' 0 "no ignored tags outside the pattern"

# ---- the changelog ----

run_n3 changelog changelog -c "$CFG" v1.0.0 2.0.0
expect_rc 0
expect_lines out 3
expect_grep out "^$(commit_of v2.0.0 | cut -c1-7) four$" "the newest commit first"
expect_grep out "^$(commit_of v1.1.0 | cut -c1-7) two$" "the commit of v1.1.0"
expect_no_grep out ' one$' "not the commit of FROM itself"

run_n3 nochange changelog -c "$CFG" v1.10.0 v2.0.0
expect_rc 0
expect_empty out

# ---- hostile and wrong version names: refused, never used in a shell or a path ----

for bad in 'v2.1.0;touch${IFS}PWNED' '../../etc' 'v1.0.0 x' '-rf' "\$(touch PWNED)"; do
    run_n3 bad_build release -c "$CFG" build -- "$bad"
    expect_rc 2
    expect_grep err 'is not allowed in a version|not allowed|a version' "a clear refusal of '$bad'"
    run_n3 bad_push release -c "$CFG" push -- "$bad"
    expect_rc 2
    run_n3 bad_log changelog -c "$CFG" -- "$bad" v1.0.0
    expect_rc 2
done
expect_absent "$T/PWNED" "a hostile tag name ran as a command"
expect_absent "$REPO/PWNED" "a hostile tag name ran as a command in the repository"
[ -z "$(ls -A "$T/t1")" ] || fail "refused pushes touched the target: $(ls -A "$T/t1")"
ok

run_n3 unknown release -c "$CFG" build v9.9.9
expect_rc 2
expect_grep err 'no version v9\.9\.9 in .*app' "an unknown version names the repository"
run_n3 notversion release -c "$CFG" build latest
expect_rc 2
expect_grep err 'tag latest is not a version' "a tag that is not a version says so"

jq --arg r "$T/nowhere" '.app.repository = $r' "$CFG" >"$T/norepo.json"
run_n3 norepo versions -c "$T/norepo.json" --local
expect_rc 2
expect_grep err 'nowhere.* is not a git repository' "a missing repository is named"

# ---- reproducible builds ----

run_n3 build1 release -c "$CFG" build v2.0.0
expect_rc 0
ART=$(cat "$T/build1.out")
expect_eq "the artifact's path" "$T/cache/n3ctl/demo/v2.0.0.tar.gz" "$ART"
expect_grep err "^built v2\.0\.0 \(commit $(commit_of v2.0.0 | cut -c1-7)\) in " "the build summary"
cp "$ART" "$T/first.tar.gz"
jq_eq "$T/cache/n3ctl/demo/v2.0.0.json" .sha256 "$(sha256sum "$ART" | cut -d' ' -f1)" "the recorded sha256"

run_n3 build2 release -c "$CFG" build v2.0.0
expect_rc 0
expect_grep err '^v2\.0\.0 \(commit [0-9a-f]{7}\) from the cache' "the second build comes from the cache"

run_n3 build3 release -c "$CFG" build --rebuild 2.0.0
expect_rc 0
expect_grep err '^built v2\.0\.0' "--rebuild packs again ('2.0.0' finds the tag v2.0.0)"
expect_same_file "$T/first.tar.gz" "$ART" "a rebuild of the same tag"

# Another clone elsewhere, another cache, another umask and time zone: the same bytes.
git clone -q "$REPO" "$T/clone" && git -C "$T/clone" fetch -q --tags origin
jq --arg r "$T/clone" '.app.repository = $r' "$CFG" >"$T/clone.json"
(umask 077 && TZ=Asia/Tokyo XDG_CACHE_HOME=$T/cache2 "$N3CTL" release -c "$T/clone.json" build v2.0.0) \
    >"$T/clone.out" 2>"$T/clone.err" || fail "building from the clone failed: $(show "$T/clone.err")"
expect_same_file "$T/first.tar.gz" "$T/cache2/n3ctl/demo/v2.0.0.tar.gz" "the build from another clone"

# What is inside: sorted entries, owner 0, the commit's time, modes, symlinks kept.
tar --full-time -tvzf "$ART" >"$T/list" || fail "tar cannot list $ART"
awk '{ print $6 }' "$T/list" >"$T/names"
LC_ALL=C sort -c "$T/names" || fail "entries are not sorted: $(show "$T/names")"
ok
grep -q '^-rwxr-xr-x 0/0 .* 2026-01-04 10:00:00 bin/app$' "$T/list" || fail "bin/app is not 0755, 0/0, at the commit time: $(show "$T/list")"
ok
grep -q '^lrwxrwxrwx 0/0 .* app.conf -> conf/nested/app.conf$' "$T/list" || fail "the symlink is not kept: $(show "$T/list")"
ok
grep -q '^-rw-r--r-- 0/0 .* conf/with space.txt$' "$T/list" || fail "the file with a space is missing: $(show "$T/list")"
ok
[ "$(awk '{ print $4 " " $5 }' "$T/list" | sort -u)" = "2026-01-04 10:00:00" ] ||
    fail "not every entry has the commit's time: $(show "$T/list")"
ok

# ---- push to local targets ----

run_n3 push1 release -c "$CFG" push v1.0.0
expect_rc 0
expect_grep err '^  t1: done \([0-9.]+(ms|s)\)$' "t1 done"
expect_grep err '^  t2: done \([0-9.]+(ms|s)\)$' "t2 done"
expect_grep err '^2 targets: 2 done, 0 already there, 0 failed \([0-9.]+(ms|s)\)$' "the summary"
for k in 1 2; do
    R=$T/t$k/releases/v1.0.0
    [ -x "$R/bin/app" ] && [ -L "$R/app.conf" ] && [ "$(cat "$R/app.conf")" = port=8000 ] ||
        fail "t$k: releases/v1.0.0 is not the tree of v1.0.0: $(ls -lR "$R")"
    ok
    expect_eq "t$k REVISION" "version v1.0.0
commit $(commit_of v1.0.0)
sha256 $(jq -r .sha256 "$T/cache/n3ctl/demo/v1.0.0.json")" "$(cat "$R/REVISION")"
    jq_eq "$T/t$k/.n3/state.json" '[.releases[].version] | join(" ")' v1.0.0 "t$k's state"
    jq_eq "$T/t$k/.n3/state.json" '.releases[0].commit' "$(commit_of v1.0.0)" "t$k's state: the commit"
    [ -z "$(ls -A "$T/t$k/.n3/incoming")" ] || fail "t$k: the upload was left in .n3/incoming"
    ok
    [ -z "$(find "$T/t$k/releases" -maxdepth 1 -name '.n3tmp-*')" ] || fail "t$k: a temporary release was left"
    ok
done

# Pushing again does nothing: already there, nothing rewritten.
touch -d '2000-01-01' "$T/t1/releases/v1.0.0/README"
run_n3 push2 release -c "$CFG" push v1.0.0
expect_rc 0
expect_grep err '^2 targets: 0 done, 2 already there, 0 failed \([0-9.]+(ms|s)\)$' "already there"
[ "$(stat -c %Y "$T/t1/releases/v1.0.0/README")" = "$(date -d 2000-01-01 +%s)" ] || fail "an existing release was unpacked again"
ok

# A release of the same name that is another build is not replaced.
rm -rf "$T/t2/releases/v1.0.0"
mkdir -p "$T/t2/releases/v1.0.0" && printf 'version v1.0.0\ncommit 00\nsha256 %064d\n' 0 >"$T/t2/releases/v1.0.0/REVISION"
run_n3 other release -c "$CFG" push v1.0.0
expect_rc 1
expect_grep err '^  t2: FAILED \([0-9.]+(ms|s)\): .*releases/v1\.0\.0 is there but is not this build' "another build is not replaced"
expect_grep err '^  t1: already there \([0-9.]+(ms|s)\)$' "t1 is fine"
[ "$(ls "$T/t2/releases/v1.0.0")" = REVISION ] || fail "the other build was touched"
ok
rm -rf "$T/t2/releases/v1.0.0"
# ... and this push runs on a target without openssl: the checksum is sha256sum's.
mkdir "$T/nossl"
for f in /usr/bin/* /usr/sbin/*; do
    case ${f##*/} in openssl) ;; *) ln -s "$f" "$T/nossl/${f##*/}" 2>/dev/null || true ;; esac
done
! PATH=$T/nossl command -v openssl >/dev/null || fail "$T/nossl has an openssl"
ok
PATH=$T/nossl run_n3 repush release -c "$CFG" push v1.0.0
expect_rc 0
expect_grep err '^2 targets: 1 done, 1 already there, 0 failed \([0-9.]+(ms|s)\)$' "only t2 gets it again (no openssl there)"
[ -x "$T/t2/releases/v1.0.0/bin/app" ] || fail "t2: no v1.0.0 after the push without openssl"
ok

for v in v1.1.0 v1.10.0 v2.0.0-rc.2 v2.0.0; do
    run_n3 "push_$v" release -c "$CFG" push "$v"
    expect_rc 0
done

# release list: newest first, on every target; a release removed by hand is noticed.
run_n3 list release -c "$CFG" list --json
expect_rc 0
jq_eq list.out '.targets[0].releases | map(.version) | join(" ")' "v2.0.0 v2.0.0-rc.2 v1.10.0 v1.1.0 v1.0.0" "t1's releases, newest first"
jq_eq list.out '.targets[1].releases | map(.version) | join(" ")' "v2.0.0 v2.0.0-rc.2 v1.10.0 v1.1.0 v1.0.0" "t2's releases (v1.0.0 pushed again)"

run_n3 where versions -c "$CFG" --json
expect_rc 0
jq_eq where.out '.versions[] | select(.version == "v1.10.0") | .released_on | join(" ")' "t1 t2" "where v1.10.0 is"
jq_eq where.out '.versions[] | select(.version == "v2.0.0-rc.10") | .released_on | length' 0 "rc.10 is nowhere"

# ---- host state: missing or corrupt, reported and rebuilt from the disk ----

rm "$T/t1/.n3/state.json"
printf '{"version": 1, "releases": [' >"$T/t2/.n3/state.json"
run_n3 rebuilt release -c "$CFG" list --json
expect_rc 0
expect_grep err '^n3ctl: t1: no .*/t1/\.n3/state\.json; rebuilt it from what is on disk$' "a missing state file is reported"
expect_grep err '^n3ctl: t2: .*/t2/\.n3/state\.json cannot be read \(.*\); rebuilt it from what is on disk$' "a corrupt one too"
jq_eq rebuilt.out '.targets[0].releases | map(.version) | join(" ")' "v2.0.0 v2.0.0-rc.2 v1.10.0 v1.1.0 v1.0.0" "t1 rebuilt"
jq_eq rebuilt.out '.targets[1].releases[] | select(.version == "v1.1.0") | .commit' "$(commit_of v1.1.0)" "t2 rebuilt, with the commit from REVISION"

rm -rf "$T/t1/releases/v1.1.0"
run_n3 dropped release -c "$CFG" list --json -H t1
expect_rc 0
jq_eq dropped.out '.targets[0].releases | map(.version) | join(" ")' "v2.0.0 v2.0.0-rc.2 v1.10.0 v1.0.0" "a release removed by hand is gone from the list"

# ---- prune: the newest N, and never what a slot or the rollback needs ----

# What a rollout (issue 5) will have written: blue runs v1.0.0 (live), green v1.10.0, and
# the rollback goes to v1.1.0. No releases listed: prune adds what is on disk.
for k in 1 2; do
    jq -n --arg t "t$k" '{"version": 1, "target": $t, "releases": [],
        "slots": {"blue": {"version": "v1.0.0", "port": 8001}, "green": {"version": "v1.10.0", "port": 8002}},
        "live": "blue", "previous": {"slot": "green", "version": "v1.1.0"}, "history": []}' >"$T/t$k/.n3/state.json"
done
run_n3 prune_dry release -c "$CFG" prune --keep 1 --dry-run
expect_rc 0
expect_grep err 'would remove: v2\.0\.0-rc\.2$' "the dry run says what would go"
[ -d "$T/t2/releases/v2.0.0-rc.2" ] || fail "--dry-run removed a release"
ok

run_n3 prune release -c "$CFG" prune --keep 1
expect_rc 0
expect_grep err '^  t2: done \([0-9.]+(ms|s)\): .*releases/v1\.1\.0 is on disk but not in state\.json: added it; .*kept: v2\.0\.0 v1\.10\.0\(in use\) v1\.1\.0\(in use\) v1\.0\.0\(in use\); removed: v2\.0\.0-rc\.2$' \
    "t2 added what is on disk to its state, kept the newest and those in use, removed rc.2"
for k in 1 2; do
    have=$(cd "$T/t$k/releases" && ls | LC_ALL=C sort | tr '\n' ' ')
    case $k in
    1) want="v1.0.0 v1.10.0 v2.0.0 " ;; # v1.1.0 was removed by hand before
    2) want="v1.0.0 v1.1.0 v1.10.0 v2.0.0 " ;;
    esac
    expect_eq "t$k's releases after prune --keep 1 (newest, both slots, the rollback)" "$want" "$have"
    jq_eq "$T/t$k/.n3/state.json" '.slots.blue.version' v1.0.0 "prune keeps the slots in state.json"
done

run_n3 prune_bad release -c "$CFG" prune --keep 0
expect_rc 2
expect_grep err 'keep' "--keep 0 is refused"

# ---- hooks ----

# A build hook runs in a checkout of the tag; its files are in the release.
jq '.hooks.build = "printf \"%s|%s\" {version} \"$(pwd)\" > BUILT; test -x bin/app"' "$CFG" >"$T/hook.json"
run_n3 hbuild release -c "$T/hook.json" build v1.1.0
expect_rc 0
tar -xzOf "$(cat "$T/hbuild.out")" BUILT >"$T/built" || fail "the build hook's file is not in the release"
case $(cat "$T/built") in
"v1.1.0|$T/cache/n3ctl/demo/.build-v1.1.0-"*) ok ;;
*) fail "the build hook ran with the wrong version or directory: $(cat "$T/built")" ;;
esac

# A hook variable with no value at that point is refused at load, with where.
jq '.hooks.build = "echo {slot}"' "$CFG" >"$T/badhook.json"
run_n3 badhook release -c "$T/badhook.json" build v1.1.0
expect_rc 2
expect_grep err 'badhook\.json:[0-9]+:[0-9]+: hooks\.build: \{slot\} has no value when the build hook runs' "the hook, the variable, where"
jq '.hooks.after_switch = "echo {verison}"' "$CFG" >"$T/typo.json"
run_n3 typo release -c "$T/typo.json" list
expect_rc 2
expect_grep err 'unknown variable \{verison\}; did you mean \{version\}\?' "a typo in a variable"

# after_unpack runs in the new release before it is visible; its variables are quoted.
mkdir -p "$T/t3"
app_config "$T/hooks3.json" "$REPO" "$T/t3"
jq '.hooks.after_unpack = "printf \"%s|%s|%s\" {version} {target} {release_dir} > UNPACKED"' "$T/hooks3.json" >"$T/unpack.json"
run_n3 unpack release -c "$T/unpack.json" push v1.1.0
expect_rc 0
case $(cat "$T/t3/releases/v1.1.0/UNPACKED") in
"v1.1.0|t1|$T/t3/releases/.n3tmp-"*) ok ;;
*) fail "after_unpack ran with the wrong variables: $(cat "$T/t3/releases/v1.1.0/UNPACKED")" ;;
esac

# A failing hook fails the push of that target, shows its output, leaves no release.
jq '.hooks.after_unpack = "echo preparing {version}; echo cannot migrate >&2; exit 7"' "$T/hooks3.json" >"$T/failhook.json"
run_n3 failhook release -c "$T/failhook.json" push v1.10.0
expect_rc 1
expect_grep err '^  t1: FAILED \([0-9.]+(ms|s)\): hook after_unpack failed \(exit 7\); its output ends with:$' "the failure names the hook"
expect_grep err '^      preparing v1\.10\.0$' "the hook's stdout"
expect_grep err '^      cannot migrate$' "the hook's stderr"
expect_absent "$T/t3/releases/v1.10.0" "a release whose hook failed is visible"
[ -z "$(find "$T/t3/releases" -maxdepth 1 -name '.n3tmp-*')" ] || fail "the failed unpack left a temporary release"
ok
[ -z "$(ls -A "$T/t3/.n3/incoming")" ] || fail "the failed unpack left its upload"
ok
jq_eq "$T/t3/.n3/state.json" '[.releases[].version] | join(" ")' v1.1.0 "the state does not list the failed release"

# ---- a build stopped: Ctrl-C stops the build hook (TERM, then KILL) and changes nothing ----

# build_stopped NAME CONFIG: push v2.0.0 with CONFIG's build hook, SIGINT once the hook's
# child runs; exit 130, the hook's processes gone, nothing in the cache, nothing pushed.
build_stopped() {
    local name=$1 cfg=$2 p
    rm -f "$T/hook.pid"
    bg_n3 "$name" release -c "$cfg" push v2.0.0
    p=$BG_PID
    wait_until "the build hook to start" test -s "$T/hook.pid"
    kill -INT "$p"
    wait_exit "$p" "the interrupted build"
    expect_eq "the interrupted build's exit status" 130 "$rc"
    expect_grep err '^n3ctl: interrupted: the build of v2\.0\.0 was stopped; nothing was changed$' "says what happened"
    wait_gone "$(cat "$T/hook.pid")" || fail "the build hook's child $(cat "$T/hook.pid") is still running"
    ok
    [ -z "$(find "$T/cache/n3ctl/demo" -name '.build-*' -o -name '*.tmp.*')" ] ||
        fail "the interrupted build left files in the cache: $(ls -A "$T/cache/n3ctl/demo")"
    ok
    expect_absent "$T/t3/releases/v2.0.0" "an interrupted build pushed"
    expect_absent "$T/t3/.n3/lock" "an interrupted build took the lock"
}
rm -f "$T/cache/n3ctl/demo/v2.0.0."*
jq --arg p "$T/hook.pid" '.hooks.build = "sleep 60 & echo $! > \($p); wait"' "$T/hooks3.json" >"$T/slowbuild.json"
build_stopped stop_build "$T/slowbuild.json"
# A hook that ignores TERM is killed after the grace time.
jq --arg p "$T/hook.pid" '.hooks.build = "trap \"\" TERM; echo $$ > \($p); while :; do sleep 0.05; done"' \
    "$T/hooks3.json" >"$T/stubborn.json"
build_stopped stop_stubborn "$T/stubborn.json"

# A hook that prints without end still meets its timeout.
jq '.hooks.build = "while :; do echo building; done" | .hooks.timeout_seconds = 1' "$T/hooks3.json" >"$T/chatty.json"
bg_n3 chatty release -c "$T/chatty.json" build v2.0.0
wait_exit "$BG_PID" "the build whose hook prints without end"
expect_rc 1
expect_grep err 'hook build ran past its timeout of 1s and was killed' "the timeout of a hook that prints"
