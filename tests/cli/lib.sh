# Helpers for the command-line tests of n3ctl; sourced, not run.
#
# make check exports N3CTL, TOP_SRCDIR and TOP_BUILDDIR; run by hand, a test
# takes N3CTL from the environment or finds _build/dev/n3ctl.
# Exit codes follow automake's test driver: 0 pass, 77 skip, 1 fail.

T_NAME=$(basename "$0" .sh)
T_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${TOP_SRCDIR:=$(cd "$T_LIBDIR/../.." && pwd)}"
: "${TOP_BUILDDIR:=$TOP_SRCDIR/_build/dev}"
: "${N3CTL:=$TOP_BUILDDIR/n3ctl}"
export PLANS="$TOP_SRCDIR/tests/data/plans" # the fixtures
# In the ASan build (scripts/check --asan, .ci/run), a leak fails the test: LeakSanitizer's
# report comes with an exit status of its own, which no test takes for n3ctl's 1 ("failed").
# A shim preloaded before the ASan runtime (faketime's LD_PRELOAD) is allowed.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:verify_asan_link_order=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}exitcode=23"

# Polling: every T_POLL seconds, for at most T_DEADLINE seconds.
T_POLL=0.05
T_DEADLINE=${T_DEADLINE:-10}

T=  # the test's temporary directory
T_CLEANUPS=()
T_CHECKS=0
T_BG=" " # background children not waited for yet: killed on exit

say() {
    printf '%s: %s\n' "$T_NAME" "$*"
}

fail() {
    printf '%s: FAIL: %s\n' "$T_NAME" "$*" >&2
    exit 1
}

skip() {
    printf '%s: SKIP: %s\n' "$T_NAME" "$*" >&2
    exit 77
}

ok() {
    T_CHECKS=$((T_CHECKS + 1))
}

# Show a file's content in a failure message, indented, at most 40 lines.
show() {
    if [ ! -e "$1" ]; then
        printf '    (%s does not exist)\n' "$1"
    elif [ ! -s "$1" ]; then
        printf '    (%s is empty)\n' "$1"
    else
        sed -n '1,40{s/\x1b/<ESC>/g;s/^/    | /;p}' "$1"
        [ "$(wc -l <"$1")" -le 40 ] || printf '    | ... (%s lines in all)\n' "$(wc -l <"$1")"
    fi
}

# kill_stray PID WORD: on exit, a step's process that n3ctl should have ended, if
# it still runs and its command line still has WORD (so not a reused pid).
kill_stray() {
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 0
    case "$cmd" in
    *"$2"*) kill -KILL "$1" 2>/dev/null || : ;;
    esac
}

# Commands to run on exit, last added first.
on_exit() {
    T_CLEANUPS+=("$*")
}

t_cleanup() {
    local rc=$? i
    trap - EXIT
    # Only children not reaped yet, whose pids cannot have been reused: TERM lets
    # n3ctl stop its steps; KILL if it has not exited within the deadline.
    for i in $T_BG; do
        kill -TERM "$i" 2>/dev/null || :
    done
    for i in $T_BG; do
        T_DEADLINE=5 wait_gone "$i" || kill -KILL "$i" 2>/dev/null || :
        wait "$i" 2>/dev/null || :
    done
    for ((i = ${#T_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${T_CLEANUPS[i]}" >/dev/null 2>&1 || :
    done
    [ -n "$T" ] && rm -rf "$T"
    if [ "$rc" -eq 0 ]; then
        say "PASS ($T_CHECKS checks)"
    fi
    exit "$rc"
}

# Start a test: check the binary, make the temporary directory, set the traps.
t_start() {
    [ -x "$N3CTL" ] || fail "no n3ctl binary at '$N3CTL' (set N3CTL, or build it: make -C _build/dev n3ctl)"
    T=$(mktemp -d "${TMPDIR:-/tmp}/n3ctl-$T_NAME.XXXXXX")
    trap t_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Plans written by the tests embed $T in JSON strings and shell commands.
    case "$T" in
    *[!A-Za-z0-9/._+-]*) skip "temporary directory '$T' has characters the plans cannot hold unquoted" ;;
    esac
    cd "$T" || fail "cannot enter $T"
    # The local audit log and the release cache live in the test's directory, not in $HOME.
    export XDG_STATE_HOME="$T/state" XDG_CACHE_HOME="$T/cache"
}

need_jq() {
    command -v jq >/dev/null 2>&1 || skip "jq is not installed (scripts/check installs the Debian package jq)"
}

# run_n3 NAME ARGS...: run n3ctl in $T, stdout to NAME.out, stderr to NAME.err, status in $rc.
run_n3() {
    run_bin "$1" "$N3CTL" "${@:2}"
}

# run_bin NAME PROGRAM ARGS...: run_n3 for another program of the build (tests/load/n3load).
run_bin() {
    local name=$1 prog=$2
    shift 2
    rc=0
    "$prog" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    LAST="$name"
    LAST_CMD="$(basename "$prog") $*"
}

# expect_rc WANT: the last run_n3 exited with WANT.
expect_rc() {
    if [ "$rc" -ne "$1" ]; then
        fail "$LAST_CMD: expected exit status $1, got $rc
  stdout:
$(show "$T/$LAST.out")
  stderr:
$(show "$T/$LAST.err")"
    fi
    ok
}

# expect_grep WHICH ERE [WHAT]: a line of the last run's out or err matches ERE.
expect_grep() {
    local f="$T/$LAST.$1"
    if ! grep -Eq -- "$2" "$f"; then
        fail "$LAST_CMD: expected ${3:-a line matching /$2/} on std$1, got:
$(show "$f")"
    fi
    ok
}

# expect_no_grep WHICH ERE [WHAT]: no line of the last run's out or err matches ERE.
expect_no_grep() {
    local f="$T/$LAST.$1"
    if grep -Eq -- "$2" "$f"; then
        fail "$LAST_CMD: expected ${3:-no line matching /$2/} on std$1, got:
$(show "$f")"
    fi
    ok
}

# expect_empty WHICH: the last run printed nothing on stdout (out) or stderr (err).
expect_empty() {
    if [ -s "$T/$LAST.$1" ]; then
        fail "$LAST_CMD: expected nothing on std$1, got:
$(show "$T/$LAST.$1")"
    fi
    ok
}

# expect_lines WHICH N: the last run printed exactly N lines there.
expect_lines() {
    local n
    n=$(wc -l <"$T/$LAST.$1")
    if [ "$n" -ne "$2" ]; then
        fail "$LAST_CMD: expected $2 line(s) on std$1, got $n:
$(show "$T/$LAST.$1")"
    fi
    ok
}

expect_absent() {
    if [ -e "$1" ]; then
        fail "${2:-$1 should not exist, but it does}"
    fi
    ok
}

expect_present() {
    if [ ! -e "$1" ]; then
        fail "${2:-$1 should exist, but it does not}"
    fi
    ok
}

# expect_eq WHAT WANT GOT
expect_eq() {
    if [ "$2" != "$3" ]; then
        fail "$1: expected '$2', got '$3'"
    fi
    ok
}

# jq_eq FILE FILTER WANT [WHAT]: jq -r FILTER on FILE prints WANT.
jq_eq() {
    local got
    got=$(jq -r "$2" "$1" 2>&1) || fail "jq '$2' failed on $1: $got
$(show "$1")"
    if [ "$got" != "$3" ]; then
        fail "${4:-$1}: expected $2 to be '$3', got '$got'"
    fi
    ok
}

# wait_until DESCRIPTION COMMAND...: poll COMMAND until it succeeds, up to the deadline.
wait_until() {
    local what=$1 i n
    shift
    n=$(awk -v d="$T_DEADLINE" -v p="$T_POLL" 'BEGIN { printf "%d", d / p }')
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep "$T_POLL"
    done
    "$@" && return 0
    fail "timed out after ${T_DEADLINE}s waiting for $what"
}

# A process that exists and is not a zombie.
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

pid_gone() {
    ! pid_alive "$1"
}

file_has() {
    [ -s "$1" ] && grep -Eq -- "$2" "$1"
}

# bg_n3 NAME ARGS...: start n3ctl in the background in $T (NAME.out, NAME.err); its pid in $BG_PID.
bg_n3() {
    bg_bin "$1" "$N3CTL" "${@:2}"
}

# bg_bin NAME PROGRAM ARGS...: bg_n3 for another program of the build.
bg_bin() {
    local name=$1 prog=$2
    shift 2
    "$prog" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
    BG_PID=$!
    T_BG="$T_BG$BG_PID "
    LAST="$name"
    LAST_CMD="$(basename "$prog") $*"
}

# wait_gone PID: poll until PID has exited, at most the deadline; 1 if it has not.
wait_gone() {
    local i n
    n=$(awk -v d="$T_DEADLINE" -v p="$T_POLL" 'BEGIN { printf "%d", d / p }')
    for ((i = 0; i < n; i++)); do
        pid_alive "$1" || return 0
        sleep "$T_POLL"
    done
    ! pid_alive "$1"
}

# wait_exit PID: wait for a background child, at most the deadline; its status in $rc.
# Past the deadline it is killed (we started it) and the test fails.
wait_exit() {
    local pid=$1
    if ! wait_gone "$pid"; then
        fail "${2:-process $pid} did not exit within ${T_DEADLINE}s"
    fi
    rc=0
    wait "$pid" || rc=$?
    T_BG=${T_BG/ $pid / }
}

# run_n3_detached NAME ARGS...: like run_n3, in a new session without a controlling
# terminal (setsid), so that n3ctl cannot ask on /dev/tty, even when make check runs
# from a terminal.
run_n3_detached() {
    local name=$1
    shift
    command -v setsid >/dev/null 2>&1 || skip "setsid is not installed (Debian package util-linux)"
    rc=0
    setsid -w "$N3CTL" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    LAST="$name"
    LAST_CMD="n3ctl $* (without a terminal)"
}

# expect_fgrep WHICH STRING [WHAT]: a line of the last run's out or err contains STRING.
expect_fgrep() {
    local f="$T/$LAST.$1"
    # shellcheck disable=SC2016 # '$2' is inside double quotes: it expands
    if ! grep -Fq -- "$2" "$f"; then
        fail "$LAST_CMD: expected ${3:-a line containing '$2'} on std$1, got:
$(show "$f")"
    fi
    ok
}

# expect_same_file WANT GOT WHAT: the two files are equal, byte for byte.
expect_same_file() {
    if ! cmp -s "$1" "$2"; then
        fail "$3: expected $2 to be unchanged, byte for byte; the difference:
$(diff "$1" "$2" | sed -n '1,40s/^/    | /p')"
    fi
    ok
}

# wait_lines FILE ERE N WHAT: poll until FILE has at least N lines matching ERE, up to the
# deadline; on timeout, fail showing the file.
wait_lines() {
    local i n got
    n=$(awk -v d="$T_DEADLINE" -v p="$T_POLL" 'BEGIN { printf "%d", d / p }')
    for ((i = 0; i <= n; i++)); do
        got=$(grep -Ec -- "$2" "$1" 2>/dev/null) || got=0
        [ "$got" -ge "$3" ] && return 0
        [ "$i" -eq "$n" ] || sleep "$T_POLL"
    done
    fail "timed out after ${T_DEADLINE}s waiting for $4: expected $3 line(s) matching /$2/ in $1, got $got:
$(show "$1")"
}

# expect_reported_everywhere REPORT METRICS SPANS: what `n3ctl run --json --metrics --traces`
# wrote agrees on every step, whether it ran or not: each step and block of the report has a
# span with its status and reason, n3_tasks_total{status} counts the report's commands,
# n3_task_duration_seconds only those that made an attempt, and nothing is left running.
expect_reported_everywhere() {
    local report=$1 prom=$2 spans=$3 st want got
    # shellcheck disable=SC2016 # jq filters in single quotes
    local steps='[.block | recurse(.steps[] | .block // empty) | .path as $p | .steps[]
        | "\($p) \(.name) \(.status) \(.reason // "")"] | sort | join("\n")'
    # shellcheck disable=SC2016
    local blocks='[.block | recurse(.steps[] | .block // empty)
        | "\(.path) \(.status) \(.reason)"] | sort | join("\n")'
    jq -s . "$spans" >"$spans.all" || fail "$spans is not JSON lines:
$(show "$spans")"
    want=$(jq -r "$steps" "$report")
    got=$(jq -r '[.[] | select(.attributes.kind)
        | "\(.attributes.block) \(.name) \(.status) \(.attributes.reason // "")"]
        | sort | join("\n")' "$spans.all")
    [ "$want" = "$got" ] || fail "$spans: the step spans are not the steps of $report; the difference:
$(diff <(echo "$want") <(echo "$got") | sed -n '1,40s/^/    | /p')"
    ok
    want=$(jq -r "$blocks" "$report")
    got=$(jq -r '[.[] | select(.attributes.strategy)
        | "\(.attributes.block) \(.status) \(.attributes.reason // "")"] | sort | join("\n")' \
        "$spans.all")
    [ "$want" = "$got" ] || fail "$spans: the block spans are not the blocks of $report; the difference:
$(diff <(echo "$want") <(echo "$got") | sed -n '1,40s/^/    | /p')"
    ok
    for st in succeeded failed timed_out cancelled; do
        want=$(jq "[.block | recurse(.steps[] | .block // empty) | .steps[]
            | select(.kind == \"exec\" and .status == \"$st\")] | length" "$report")
        got=$(sed -n "s/^n3_tasks_total{status=\"$st\"} //p" "$prom")
        [ "${got:-0}" = "$want" ] || fail "$prom: n3_tasks_total{status=\"$st\"} is ${got:-absent}, $report has $want such commands:
$(show "$prom")"
        ok
    done
    want=$(jq '[.block | recurse(.steps[] | .block // empty) | .steps[]
        | select(.kind == "exec" and .attempts > 0)] | length' "$report")
    got=$(sed -n 's/^n3_task_duration_seconds_count //p' "$prom")
    [ "${got:-0}" = "$want" ] || fail "$prom: n3_task_duration_seconds_count is ${got:-absent}, $want commands of $report ran:
$(show "$prom")"
    ok
    grep -qxF 'n3_active_tasks 0' "$prom" || fail "$prom: expected n3_active_tasks 0 at the end:
$(show "$prom")"
    ok
}

# ---- a fleet of real sshd on 127.0.0.1 (scripts/sshd-fleet) ----

FLEET_SCRIPT="$TOP_SRCDIR/scripts/sshd-fleet"
FLEET= # the fleet's directory, $T/fleet

# fleet_start N: start N sshd in $T/fleet, stopped (that fleet only) on exit. Skips the
# test when sshd-fleet cannot run here (it needs root).
fleet_start() {
    local rc=0
    FLEET="$T/fleet"
    # sshd reads $FLEET/authorized_keys as the login user: $T (0700 from mktemp) must be
    # searchable by others; not listable.
    chmod 0711 "$T" || fail "cannot chmod $T"
    on_exit "'$FLEET_SCRIPT' stop '$FLEET'"
    "$FLEET_SCRIPT" start "$FLEET" "$1" >"$T/fleet-start.out" 2>"$T/fleet-start.err" || rc=$?
    case $rc in
    0) ;;
    3) skip "sshd-fleet cannot run here: $(cat "$T/fleet-start.err")" ;;
    *) fail "sshd-fleet start $FLEET $1 failed (exit $rc):
$(show "$T/fleet-start.err")" ;;
    esac
    [ "$(wc -l <"$FLEET/ports")" -eq "$1" ] || fail "sshd-fleet start $FLEET $1 wrote $(wc -l <"$FLEET/ports") ports"
}

# fleet ACTION ARGS...: sshd-fleet ACTION $FLEET ARGS... (kill K, restart K, rekey K).
fleet() {
    local action=$1 out
    shift
    out=$("$FLEET_SCRIPT" "$action" "$FLEET" "$@" 2>&1) ||
        fail "sshd-fleet $action $FLEET $* failed:
$(printf '%s\n' "$out" | sed 's/^/    | /')"
}

# fleet_port K: the port of instance tK.
fleet_port() {
    cat "$FLEET/sshd-$1/port"
}

# fleet_fingerprint K: "SHA256:..." of tK's current host key, as ssh-keygen -l prints it.
fleet_fingerprint() {
    local fp
    fp=$(ssh-keygen -lf "$FLEET/sshd-$1/host_ed25519_key.pub" | awk '{ print $2 }')
    case $fp in
    SHA256:*) printf '%s\n' "$fp" ;;
    *) fail "ssh-keygen -lf $FLEET/sshd-$1/host_ed25519_key.pub printed no SHA256 fingerprint: '$fp'" ;;
    esac
}

# fleet_config NAME JQ-FILTER: $T/NAME.json, a copy of the fleet's n3.json edited by the
# filter (e.g. '.ssh.identity = "..."'). Prints its path.
fleet_config() {
    jq "$2" "$FLEET/n3.json" >"$T/$1.json" || fail "jq '$2' failed on $FLEET/n3.json"
    printf '%s\n' "$T/$1.json"
}

# fleet_who: a shell prefix for remote commands: it sets t to the target's name (from the
# server port, the last field of SSH_CONNECTION) and d to $FLEET/deploy/$t, created (the
# login user owns $FLEET/deploy), so commands can leave markers and pids per target.
# shellcheck disable=SC2016 # $SSH_CONNECTION, $t and $d are for the target's shell
fleet_who() {
    local k=1 p s='case ${SSH_CONNECTION##* } in '
    while read -r p; do
        s="$s$p) t=t$k ;; "
        k=$((k + 1))
    done <"$FLEET/ports"
    printf '%s*) t=unknown ;; esac; d=%s/deploy/$t; mkdir -p "$d"; ' "$s" "$FLEET"
}

# closed_port: a local TCP port nothing uses (no listener: connecting is refused).
closed_port() {
    local p i used
    used=$(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }' | sort -un)
    for ((i = 0; i < 100; i++)); do
        p=$((40000 + RANDOM % 20000))
        grep -qx "$p" <<<"$used" || {
            printf '%s\n' "$p"
            return 0
        }
    done
    fail "found no unused local TCP port"
}

# ---- an app repository with versions (real git) ----

# git_at DATE ARGS...: git with fixed author and committer, at DATE (so commits, and the
# releases packed from them, are the same bytes in every run).
git_at() {
    local when=$1
    shift
    GIT_AUTHOR_NAME="Ada Lovelace" GIT_AUTHOR_EMAIL=ada@example.org \
        GIT_COMMITTER_NAME="Ada Lovelace" GIT_COMMITTER_EMAIL=ada@example.org \
        GIT_AUTHOR_DATE="$when" GIT_COMMITTER_DATE="$when" \
        git -c init.defaultBranch=main -c tag.gpgSign=false -c commit.gpgSign=false "$@"
}

# make_app_repo DIR: a git repository with a tree that has a symlink, an executable, a
# nested directory and a file with a space in its name, and these tags:
#   v1.0.0 (annotated, commit 1), v1.1.0 (lightweight, commit 2),
#   v2.0.0-alpha.1, v2.0.0-rc.2, v2.0.0-rc.10 (commit 3), v2.0.0 (annotated, commit 4),
#   v1.10.0 (commit 4, on purpose: newer than v1.1.0 by semver, not by bytes),
#   latest (not a version), v3.0 (not a version: two numbers),
#   'v2.1.0;touch${IFS}PWNED' (shell metacharacters: refused everywhere).
# The commit subjects are "one", "two", "three" and "four".
make_app_repo() {
    local r=$1
    command -v git >/dev/null 2>&1 || skip "git is not installed (scripts/check installs the Debian package git)"
    git_at "2026-01-01T10:00:00Z" init -q "$r" || fail "git init $r failed"
    (
        cd "$r" || exit 1
        mkdir -p bin conf/nested
        printf 'hello\n' >README
        printf '#!/bin/sh\necho "app $1"\n' >bin/app
        chmod 0755 bin/app
        printf 'port=8000\n' >conf/nested/app.conf
        printf 'spaced\n' >'conf/with space.txt'
        ln -s conf/nested/app.conf app.conf
        git_at "2026-01-01T10:00:00Z" add -A
        git_at "2026-01-01T10:00:00Z" commit -qm one
        git_at "2026-01-01T10:00:00Z" tag -a v1.0.0 -m "first release"
        printf 'two\n' >>README
        git_at "2026-01-02T10:00:00Z" commit -qam two
        git_at "2026-01-02T10:00:00Z" tag v1.1.0
        printf 'three\n' >>README
        git_at "2026-01-03T10:00:00Z" commit -qam three
        git_at "2026-01-03T10:00:00Z" tag v2.0.0-alpha.1
        git_at "2026-01-03T10:00:00Z" tag v2.0.0-rc.2
        git_at "2026-01-03T10:00:00Z" tag v2.0.0-rc.10
        printf 'four\n' >>README
        git_at "2026-01-04T10:00:00Z" commit -qam four
        git_at "2026-01-04T10:00:00Z" tag -a v2.0.0 -m "second major"
        git_at "2026-01-04T10:00:00Z" tag v1.10.0
        git_at "2026-01-04T10:00:00Z" tag latest
        git_at "2026-01-04T10:00:00Z" tag v3.0
        git_at "2026-01-04T10:00:00Z" tag 'v2.1.0;touch${IFS}PWNED'
    ) >"$T/make-app-repo.log" 2>&1 || fail "making the app repository $r failed:
$(show "$T/make-app-repo.log")"
}

# app_config FILE REPO TARGET-DIRS...: an n3.json with app "demo" from REPO and one local
# target tK a directory (environment "prod").
app_config() {
    local f=$1 repo=$2 k=1 d sep=
    shift 2
    {
        printf '{"version": 1,\n "app": {"name": "demo", "repository": "%s"},\n' "$repo"
        printf ' "environments": {"prod": {"targets": [\n'
        for d in "$@"; do
            printf '%s  {"name": "t%s", "transport": "local", "deploy_path": "%s"}' "$sep" "$k" "$d"
            sep=$',\n'
            k=$((k + 1))
        done
        printf '\n ]}},\n "default_environment": "prod"}\n'
    } >"$f"
}

# ---- the sample app (examples/app/: n3app, its repository of good and bad tags) ----

: "${N3APP:=$TOP_BUILDDIR/examples/n3app}" # the app as the project builds it (ASan there too)

need_curl() {
    command -v curl >/dev/null 2>&1 || skip "curl is not installed (scripts/check installs the Debian package curl)"
}

# make_sample_app_repo DIR [DEPLOY_PATH]: examples/app/make-repo DIR: the app's git repository
# with the tags v1.0.0, v1.1.0, v2.0.0 (good), v1.2.0-errors, v1.3.0-slow, v1.4.0-unhealthy,
# v1.5.0-crash and v1.6.0-slowstart (examples/app/README.md); its tags and kinds in $T/tags.
make_sample_app_repo() {
    command -v git >/dev/null 2>&1 || skip "git is not installed (scripts/check installs the Debian package git)"
    command -v make >/dev/null 2>&1 || skip "make is not installed (the sample app's build hook runs it)"
    "$TOP_SRCDIR/examples/app/make-repo" ${2:+--deploy-path "$2"} "$1" >"$T/tags" \
        2>"$T/make-repo.err" || fail "examples/app/make-repo $1 failed:
$(show "$T/make-repo.err")"
}

# sample_app_config FILE REPO TARGET-DIRS...: app_config's n3.json for the sample app's
# repository, with its build hook (make) and its tag pattern.
sample_app_config() {
    local f=$1
    app_config "$@"
    jq '.hooks.build = "make" | .app.tag_pattern = "v*"' "$f" >"$f.tmp" || fail "jq could not edit $f"
    mv "$f.tmp" "$f" || fail "cannot replace $f"
}

# app_spawn NAME BIN ARGS...: start the sample app (BIN: $N3APP or a release's n3app) in the
# background, stderr (its log) to $T/NAME.log; its pid in APP_PID. Ended (TERM) when the
# test ends, if it still runs.
app_spawn() {
    local name=$1 bin=$2
    shift 2
    "$bin" "$@" 2>"$T/$name.log" </dev/null >/dev/null &
    APP_PID=$!
    T_BG="$T_BG$APP_PID "
    APP_LOG="$T/$name.log"
}

# app_wait_listening: wait for the app of the last app_spawn to log that it listens; its port
# in APP_PORT. Fails at once, with its log, if it exits instead.
app_wait_listening() {
    local i n
    n=$(awk -v d="$T_DEADLINE" -v p="$T_POLL" 'BEGIN { printf "%d", d / p }')
    for ((i = 0; i <= n; i++)); do
        if grep -q ': listening on ' "$APP_LOG" 2>/dev/null; then
            APP_PORT=$(sed -n 's/.*: listening on .*:\([0-9][0-9]*\): version .*/\1/p' "$APP_LOG" | head -n 1)
            [ -n "$APP_PORT" ] || fail "no port in the listening line of $APP_LOG:
$(show "$APP_LOG")"
            return 0
        fi
        pid_alive "$APP_PID" || fail "the app (pid $APP_PID) exited before it listened:
$(show "$APP_LOG")"
        [ "$i" -eq "$n" ] || sleep "$T_POLL"
    done
    fail "the app (pid $APP_PID) did not listen within ${T_DEADLINE}s:
$(show "$APP_LOG")"
}

# app_start NAME BIN ARGS...: app_spawn, then app_wait_listening (give --port 0 to let the
# kernel pick a free port).
app_start() {
    app_spawn "$@"
    app_wait_listening
}

# app_stop: TERM to the app of the last app_spawn; it must exit 0 within the deadline.
app_stop() {
    kill -TERM "$APP_PID" 2>/dev/null || :
    wait_exit "$APP_PID" "the app (pid $APP_PID) after TERM"
    [ "$rc" -eq 0 ] || fail "the app (pid $APP_PID) exited with $rc after TERM, not 0:
$(show "$APP_LOG")"
    ok
}

# lock_race ROUNDS CFG INFO: ROUNDS times, alice and bob run `n3ctl lock acquire` at the same
# moment; exactly one must win (0) and the other be refused (3); INFO (the lock's info.json)
# must name the winner, who then gives the lock back.
lock_race() {
    local i a b ra rb winner
    for ((i = 1; i <= $1; i++)); do
        N3CTL_OPERATOR=alice bg_n3 "race_a$i" lock -c "$2" acquire -m "alice $i"
        a=$BG_PID
        N3CTL_OPERATOR=bob bg_n3 "race_b$i" lock -c "$2" acquire -m "bob $i"
        b=$BG_PID
        wait_exit "$a" "lock acquire (alice)"
        ra=$rc
        wait_exit "$b" "lock acquire (bob)"
        rb=$rc
        case "$ra $rb" in
        "0 3") winner=alice ;;
        "3 0") winner=bob ;;
        *) fail "round $i: expected one lock acquire to win (0) and the other to be refused (3), got alice $ra, bob $rb:
$(show "$T/race_a$i.err")
$(show "$T/race_b$i.err")" ;;
        esac
        ok
        jq_eq "$3" .who "$winner@$(hostname)" "round $i: the holder is the winner"
        N3CTL_OPERATOR=$winner run_n3 "race_rel$i" lock -c "$2" release
        expect_rc 0
    done
}

# ---- the real terminal: n3ctl in panes of a private tmux server ----

# tty_start: the server's socket and config in $T, a pane script, and the helpers below; the
# server is killed when the test ends. Skips the test when tmux is missing.
tty_start() {
    command -v tmux >/dev/null 2>&1 || skip "tmux is not installed (scripts/check installs the Debian package tmux)"
    SOCK="$T/sock"
    printf 'set -g history-limit 5000\n' >"$T/tmux.conf"
    on_exit "tmux -S '$SOCK' kill-server"
    # The command run in each pane: n3ctl, then its exit status as the shell sees it;
    # then it waits for the end of input, so the pane stays as it is until kill-server
    # (tmux's "Pane is dead" line of remain-on-exit would scroll the screen).
    # bash goes on after a child that handled Ctrl-C and exited (it does not die with it).
    cat >"$T/pane.sh" <<'EOF'
color=$1
shift
if [ "$color" = nocolor ]; then
    export NO_COLOR=1
else
    unset NO_COLOR
fi
"$N3CTL" "$@"
echo "rc=$?"
read -r _ || :
EOF
}

tm() {
    tmux -S "$SOCK" -f "$T/tmux.conf" "$@"
}

# pane_open SESSION COLOR ARGS...: a 120x30 pane in $T running n3ctl ARGS.
pane_open() {
    local s=$1
    shift
    tm new-session -d -s "$s" -x 120 -y 30 -c "$T" env N3CTL="$N3CTL" bash "$T/pane.sh" "$@"
}

# capture SESSION [tmux capture-pane options]: the pane's text in $T/SESSION.pane.
capture() {
    local s=$1
    shift
    tm capture-pane -p "$@" -t "$s" >"$T/$s.pane"
}

pane_has() { # SESSION ERE [capture options]
    local s=$1 re=$2
    shift 2
    capture "$s" "$@" && grep -Eq -- "$re" "$T/$s.pane"
}

fail_pane() { # SESSION MESSAGE
    fail "$2; the pane shows:
$(show "$T/$1.pane")"
}

# ---- nginx on 127.0.0.1 (the load generator's tests, the routers' tests) ----

# free_ports N: N TCP ports nothing listens on or connects from now, in FREE_PORTS (an
# array). Another process may take one before it is bound: nginx_start picks again then.
free_ports() {
    local -A busy=()
    local p n=$1
    for p in $(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }'); do busy[$p]=1; done
    FREE_PORTS=()
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    while [ ${#FREE_PORTS[@]} -lt "$n" ]; do
        [ -n "${busy[$p]:-}" ] || FREE_PORTS+=("$p")
        busy[$p]=1
        p=$((p + 1))
        [ "$p" -lt 60000 ] || p=20000
    done
}

# nginx_listening PORT...: something listens on each of 127.0.0.1:PORT.
nginx_listening() {
    local p
    for p in "$@"; do
        ss -Htln "sport = :$p" | grep -q . || return 1
    done
}

# nginx_start NAME GEN N: start nginx in the foreground (daemon off) with its prefix, logs
# and pid in $T/NAME, on N free ports of 127.0.0.1, and wait until it listens on all of them.
# GEN DIR PORT... prints what goes inside the config's http {} block (servers, upstreams,
# logs under DIR). The ports are then in NGINX_PORTS (an array) and $T/NAME/ports, the
# master's pid in $T/NAME/master.pid; it is stopped on exit, as a background child. A port
# taken by someone else meanwhile ("Address already in use") is replaced, up to 5 times.
# Skips the test when nginx is not installed.
nginx_start() {
    local name=$1 gen=$2 n=$3 dir="$T/$1" pid i
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] ||
        skip "nginx is not installed (scripts/check installs the Debian package nginx)"
    command -v ss >/dev/null 2>&1 || skip "ss is not installed (Debian package iproute2)"
    mkdir -p "$dir"
    printf '%s\n' "$gen" >"$dir/gen"
    for _ in 1 2 3 4 5; do
        free_ports "$n"
        printf '%s\n' "${FREE_PORTS[@]}" >"$dir/ports"
        nginx_write_conf "$name"
        : >"$dir/error.log"
        PATH="$PATH:/usr/sbin" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
            -g 'daemon off;' </dev/null >>"$dir/nginx.out" 2>&1 &
        pid=$!
        T_BG="$T_BG$pid "
        printf '%s\n' "$pid" >"$dir/master.pid"
        i=$(awk -v d="$T_DEADLINE" -v p="$T_POLL" 'BEGIN { printf "%d", d / p }')
        while pid_alive "$pid" && ! nginx_listening "${FREE_PORTS[@]}" && [ "$i" -gt 0 ]; do
            sleep "$T_POLL"
            i=$((i - 1))
        done
        if pid_alive "$pid" && nginx_listening "${FREE_PORTS[@]}"; then
            # shellcheck disable=SC2034 # for the test that called
            NGINX_PORTS=("${FREE_PORTS[@]}")
            return 0
        fi
        pid_alive "$pid" && fail "nginx $name (pid $pid) did not listen on ${FREE_PORTS[*]} within ${T_DEADLINE}s:
$(show "$dir/error.log")"
        wait "$pid" 2>/dev/null || :
        T_BG=${T_BG/ $pid / }
        grep -q 'Address already in use' "$dir/error.log" "$dir/nginx.out" 2>/dev/null || break
    done
    fail "nginx $name did not start:
$(show "$dir/error.log")
$(show "$dir/nginx.out")"
}

# nginx_write_conf NAME: (re)write $T/NAME/nginx.conf from its generator and ports.
nginx_write_conf() {
    local dir="$T/$1" ports
    mapfile -t ports <"$dir/ports"
    {
        printf 'worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log notice;\n' "$dir" "$dir"
        printf 'events { worker_connections 4096; }\nhttp {\n'
        printf '    access_log off;\n    keepalive_requests 1000000;\n'
        local t
        for t in client_body proxy fastcgi uwsgi scgi; do
            printf '    %s_temp_path %s/tmp-%s;\n' "$t" "$dir" "$t"
        done
        "$(cat "$dir/gen")" "$dir" "${ports[@]}"
        printf '}\n'
    } >"$dir/nginx.conf"
}

# nginx_reload NAME: write its config again (its generator may read variables that changed)
# and make nginx load it (SIGHUP to its master). nginx keeps the old config when the new one
# fails its test: the test sees that in $T/NAME/error.log.
nginx_reload() {
    local dir="$T/$1"
    nginx_write_conf "$1"
    kill -HUP "$(cat "$dir/master.pid")" || fail "nginx $1 (pid $(cat "$dir/master.pid")) is gone"
}

# nginx_stop NAME: stop it (SIGTERM to its master: the workers close their connections and
# exit, then the master) and wait until it is gone.
nginx_stop() {
    local dir="$T/$1" pid
    pid=$(cat "$dir/master.pid")
    kill -TERM "$pid" 2>/dev/null || :
    wait_exit "$pid" "nginx $1 (pid $pid)"
}

# ---- HAProxy (the Debian package haproxy), started by the test ----

# haproxy_start NAME FE_PORT SERVER...: HAProxy in the foreground (-db) with its files in
# $T/NAME: its admin socket admin.sock (level admin), its server-state-file state (loaded at
# start: a restart keeps what was saved), one frontend on 127.0.0.1:FE_PORT to the backend
# "app", whose servers are SERVER ("NAME ADDRESS:PORT WEIGHT"). Its pid in $T/NAME/pid; it is
# stopped on exit, as a background child. Skips the test when haproxy is not installed.
haproxy_start() {
    local name=$1 port=$2 dir="$T/$1" s
    shift 2
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] ||
        skip "haproxy is not installed (scripts/check installs the Debian package haproxy)"
    mkdir -p "$dir"
    {
        printf 'global\n    stats socket %s/admin.sock mode 600 level admin\n' "$dir"
        # HAPROXY_STATS_TCP=PORT: also an admin socket on TCP (a router reached over SSH)
        [ -z "${HAPROXY_STATS_TCP:-}" ] ||
            printf '    stats socket ipv4@127.0.0.1:%s level admin\n' "$HAPROXY_STATS_TCP"
        printf '    stats timeout 30s\n    server-state-file %s\n' "${HAPROXY_STATE:-$dir/state}"
        printf 'defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n'
        printf '    timeout server 30s\n    load-server-state-from-file global\n'
        printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend app\n' "$port"
        printf 'backend app\n    balance roundrobin\n'
        for s in "$@"; do
            set -- $s
            printf '    server %s %s weight %s\n' "$1" "$2" "$3"
        done
    } >"$dir/haproxy.cfg"
    haproxy_run "$name"
}

# haproxy_run NAME: start the HAProxy of haproxy_start again (after haproxy_stop).
haproxy_run() {
    local dir="$T/$1" pid
    rm -f "$dir/admin.sock"
    PATH="$PATH:/usr/sbin" haproxy -db -f "$dir/haproxy.cfg" </dev/null >>"$dir/haproxy.log" 2>&1 &
    pid=$!
    T_BG="$T_BG$pid "
    printf '%s\n' "$pid" >"$dir/pid"
    wait_until "HAProxy $1's admin socket" haproxy_up "$1" "$pid"
}

haproxy_up() { # NAME PID
    pid_alive "$2" || fail "HAProxy $1 exited:
$(show "$T/$1/haproxy.log")"
    [ -S "$T/$1/admin.sock" ]
}

# haproxy_stop NAME: TERM, and wait until it is gone.
haproxy_stop() {
    local pid
    pid=$(cat "$T/$1/pid")
    kill -TERM "$pid" 2>/dev/null || :
    wait_exit "$pid" "HAProxy $1 (pid $pid)"
}

# haproxy_cmd NAME COMMAND: a runtime API command on its admin socket (socat), the answer on
# stdout.
haproxy_cmd() {
    command -v socat >/dev/null 2>&1 || skip "socat is not installed (scripts/check installs the Debian package socat)"
    printf '%s\n' "$2" | socat - "UNIX-CONNECT:$T/$1/admin.sock"
}

# haproxy_weight NAME SERVER: the server's weight in backend app, as HAProxy has it now.
haproxy_weight() {
    haproxy_cmd "$1" "show servers state app" | awk -v s="$2" '$4 == s { print $8 }'
}

# ---- slots started by n3ctl: instances in sessions of their own ----

# share FILE VERSION: that version's share of the answered requests, in percent (0-100).
share() {
    jq -r --arg v "$2" '([.versions[] | select(.version == $v) | .count] | add // 0) * 100
        / (if .answered > 0 then .answered else 1 end) | round' "$1"
}

# expect_share FILE VERSION WANT: within 3 points over the load's requests (at least 1,000,
# none failed).
expect_share() {
    local got
    got=$(share "$1" "$2")
    jq -e '.answered >= 1000 and .errors_total == 0' "$1" >/dev/null ||
        fail "$1: fewer than 1,000 answers, or errors: $(jq -c '{answered, errors_total, errors}' "$1")"
    [ "$got" -ge $(($3 - 3)) ] && [ "$got" -le $(($3 + 3)) ] ||
        fail "$2 got $got % of the traffic through the router, not $3 % (+/- 3): $(jq -c .versions "$1")"
    ok
}

# stop_instances DEPLOY_PATH...: on exit, KILL the process group of every instance whose pid
# file is under DEPLOY_PATH/.n3/run (a test that failed may leave them running).
stop_instances() {
    on_exit "kill_instances $*"
}

kill_instances() {
    local d f pid start now
    for d in "$@"; do
        for f in "$d"/.n3/run/*.pid; do
            [ -f "$f" ] || continue
            read -r pid start <"$f" || continue
            # the same process (its start time), not a pid reused since
            now=$(awk '{ sub(/.*\) /, ""); split($0, a, " "); print a[20] }' "/proc/$pid/stat" 2>/dev/null) || continue
            [ "$now" = "$start" ] && kill -KILL -- "-$pid" 2>/dev/null
        done
    done
    return 0
}
