#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and remote commands in single quotes
# Targets whose login prints text of its own, on a fleet of real sshd (scripts/sshd-fleet):
# t2 runs every command through a ForceCommand wrapper that prints a banner on stdout and a
# line without a newline on stderr first; t3 through a wrapper that forks the command (it is
# not the session's process group leader) after a banner. n3ctl must find its own output
# wherever the noise ends: exec shows the commands' output only, and says once which target's
# login prints text; the lock on a noisy lock target is read right; a push to an empty
# releases/ there works; a timeout stops the command and what it started, also under the
# forking wrapper. And a target without SFTP: a push says so at once.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
fleet_start 3

SFTP_SERVER=/usr/lib/openssh/sftp-server
[ -x "$SFTP_SERVER" ] || skip "no $SFTP_SERVER (Debian package openssh-sftp-server)"
REPO=$T/app
make_app_repo "$REPO"
D=$FLEET/deploy
W=$FLEET/wrappers
mkdir -p "$W"
chmod 0755 "$W"
# SFTP goes to the real server (sftp-server, as "Subsystem sftp" would): a banner there would
# break SFTP itself, as it does with OpenSSH's own sftp.
cat >"$W/noisy" <<EOF
#!/bin/sh
case "\$SSH_ORIGINAL_COMMAND" in internal-sftp) exec $SFTP_SERVER ;; esac
printf 'Welcome to a noisy host\\n'
printf 'motd: maintenance at 02:00' >&2
exec /bin/sh -c "\$SSH_ORIGINAL_COMMAND"
EOF
cat >"$W/forking" <<EOF
#!/bin/sh
case "\$SSH_ORIGINAL_COMMAND" in internal-sftp) exec $SFTP_SERVER ;; esac
printf 'banner\\n'
/bin/sh -c "\$SSH_ORIGINAL_COMMAND"
exit \$?
EOF
# A wrapper that gives a shell when no command is asked for: SFTP never answers.
cat >"$W/shell" <<'EOF'
#!/bin/sh
[ "$SSH_ORIGINAL_COMMAND" = internal-sftp ] && exec /bin/sh
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
EOF
chmod 0755 "$W/noisy" "$W/forking" "$W/shell"
fleet configure 2 "ForceCommand $W/noisy"
fleet configure 3 "ForceCommand $W/forking"
CFG=$(fleet_config app '.app = {"name": "demo", "repository": "'"$REPO"'"}
    | .environments.fleet.lock_target = "t2"')
WHO=$(fleet_who)

# ---- exec: the commands' output, nothing of the logins' ----

run_n3 hi exec -c "$CFG" -- 'echo "out $(hostname)"; echo err >&2'
expect_rc 0
for k in 1 2 3; do
    expect_grep out "^t$k: out " "t$k's output"
    expect_grep err "^t$k: err\$" "t$k's stderr"
done
expect_lines out 3
expect_no_grep out 'Welcome|motd|banner|n3ctl:' "the logins' text or n3ctl's marker in the output"
expect_no_grep err '^t[0-9]: .*(Welcome|motd|banner|n3ctl:)' "the logins' text or n3ctl's marker in the stderr"
expect_grep err "^n3ctl: warning: t2's login shell prints output before each command \\([0-9]+ bytes, \"(Welcome to a noisy host\\?|motd: maintenance at 02:00)\"\\); fix its profile" \
    "the noisy login is said"
expect_grep err "^n3ctl: warning: t3's login shell prints output before each command" "the forking wrapper's banner is said"
[ "$(grep -c "t2's login shell prints output" "$T/hi.err")" -eq 1 ] || fail "the noise was said more than once: $(show "$T/hi.err")"
ok
expect_no_grep err "t1's login shell" "a quiet target is not said to be noisy"

# Output that starts with no newline, and binary: byte for byte after the noise.
run_n3 exact exec -c "$CFG" -H t2 -- "printf 'a\\036n3ctl:b'"
expect_rc 0
expect_grep out $'^t2: a\036n3ctl:b$' "output that looks like a marker is the command's own"

# ---- a timeout stops the command and its children, also under a wrapper that forks ----

for k in 2 3; do
    run_n3 "timeout$k" exec -c "$CFG" -H "t$k" -t 2 -- "${WHO}sleep 300 & echo \$! >\"\$d/child\"; echo \$\$ >\"\$d/shell\"; wait"
    expect_rc 1
    expect_grep err "t$k.*timeout" "t$k: the timeout is said"
    for f in child shell; do
        pid=$(cat "$D/t$k/$f")
        wait_until "t$k: the command's $f (pid $pid) to be stopped" pid_gone "$pid"
    done
done

# ---- the lock on a noisy lock target ----

run_n3 take lock -c "$CFG" acquire -m "noisy"
expect_rc 0
run_n3 status lock -c "$CFG" status
expect_rc 0
expect_grep out "^fleet: locked on t2 by $(id -un)@$(hostname) \\(pid [0-9]+\\) since .*: noisy\$" "the lock is read right"
run_n3 status_json lock -c "$CFG" status --json
expect_rc 0
jq_eq status_json.out '[.locked, .readable, .lease_seconds] | map(tostring) | join(" ")' "true true 0" "the lock's --json"
N3CTL_OPERATOR=bob run_n3 bob lock -c "$CFG" acquire -m "me too"
expect_rc 3
run_n3 give lock -c "$CFG" release
expect_rc 0
expect_absent "$D/t2/.n3/lock"

# ---- a push to the noisy targets ----

run_n3 push release -c "$CFG" push v1.0.0
expect_rc 0
expect_grep err '^3 targets: 3 done, 0 already there, 0 failed' "pushed to every target"
for k in 2 3; do
    grep -qx 'version v1.0.0' "$D/t$k/releases/v1.0.0/REVISION" || fail "t$k: no release: $(ls -la "$D/t$k/releases" 2>&1)"
    ok
    jq_eq "$D/t$k/.n3/state.json" '[.releases[].version] | join(" ")' v1.0.0 "t$k's state"
done
run_n3 again release -c "$CFG" push v1.0.0
expect_rc 0
expect_grep err '^3 targets: 0 done, 3 already there, 0 failed' "already there, on noisy targets too"
run_n3 verify audit -c "$CFG" verify --targets
expect_rc 0

# ---- a target without SFTP ----

fleet configure 1 --no-sftp
run_n3 nosftp release -c "$CFG" push v1.1.0 -H t1
expect_rc 1
expect_grep err '^  t1: FAILED .*SFTP is not available' "a target without SFTP is said to be one"
expect_absent "$D/t1/releases/v1.1.0"
fleet configure 1 "ForceCommand $W/shell"
run_n3 shellsftp release -c "$CFG" push v1.1.0 -H t1
expect_rc 1
expect_grep err '^  t1: FAILED .*SFTP is not available on t1: its sftp subsystem did not answer within 5s' \
    "SFTP that never answers is said to be missing"
expect_no_grep err 'made no progress' "it is not called a stalled upload"
fleet configure 1
run_n3 sftp_back release -c "$CFG" push v1.1.0 -H t1
expect_rc 0
