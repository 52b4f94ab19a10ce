#!/usr/bin/env bash
# n3ctl run on a real terminal, through a private tmux server: the live progress
# while steps run, erased before the final table; colours, and NO_COLOR; Ctrl-C;
# the status line of release push.
set -eu
. "$(dirname "$0")/lib.sh"
t_start

tty_start

# Both live lines at once, in the state the plan holds until "go" exists.
progress_shown() {
    capture "$1" &&
        grep -Eq -- "$LIVE_TOP" "$T/$1.pane" && grep -Eq -- "$LIVE_NESTED" "$T/$1.pane"
}

# ---- live progress, then the table in its place ----

cat >tty.json <<'EOF'
{"name": "deploy", "steps": [
  {"name": "prep", "shell": "true"},
  {"name": "fleet", "parallel": {"strategy": "collect", "steps": [
    {"name": "w1", "shell": "while [ ! -e go ]; do sleep 0.05; done; echo w1"},
    {"name": "w2", "shell": "while [ ! -e go ]; do sleep 0.05; done; echo w2"},
    {"name": "w3", "shell": "echo quick"}]}}
]}
EOF
# prep and w3 are done; fleet and its w1, w2 run until the test creates "go".
LIVE_TOP='^deploy \(all\) +\[#{10}\.{10}\] 1/2 done  1 running  [0-9.]+(ms|s)$'
LIVE_NESTED='^  fleet \(collect\) +\[#{6}\.{14}\] 1/3 done  2 running  [0-9.]+(ms|s)$'

pane_open live color run -v tty.json
wait_until "the live progress of tty.json in the pane (top block, nested block)" progress_shown live
cp live.pane live-progress.pane
# One line per running block, at the top of the pane, bars in one column.
top=$(sed -n 1p live-progress.pane)
nested=$(sed -n 2p live-progress.pane)
printf '%s\n' "$top" | grep -Eq -- "$LIVE_TOP" || fail_pane live "expected the top block on line 1"
printf '%s\n' "$nested" | grep -Eq -- "$LIVE_NESTED" || fail_pane live "expected the nested block, indented, on line 2"
ok
expect_eq "the column of the bars of the top and nested block" \
    "$(awk -v s="$top" 'BEGIN { print index(s, "[") }')" "$(awk -v s="$nested" 'BEGIN { print index(s, "[") }')"
expect_eq "lines in the pane while steps run" 2 "$(grep -c . live-progress.pane)"

touch go
wait_until "n3ctl to finish and the shell to print rc= in the pane" pane_has live '^rc=[0-9]+$'
capture live
grep -qx 'rc=0' live.pane || fail_pane live "expected rc=0 (the plan succeeds)"
ok
sed -n 1p live.pane | grep -Eq '^STEP +STATUS +ATTEMPTS +DURATION +EXIT +REASON$' ||
    fail_pane live "expected the table's header on the first line, where the progress was"
ok
for row in '^prep +succeeded +1 ' '^fleet +succeeded +- ' '^fleet/w1 +succeeded +1 ' \
    '^fleet/w2 +succeeded +1 ' '^fleet/w3 +succeeded +1 ' '^plan deploy succeeded in '; do
    grep -Eq -- "$row" live.pane || fail_pane live "expected a line matching /$row/"
    ok
done
if grep -Eq '\((all|collect)\)|running|\[[#.]{20}\]' live.pane; then
    fail_pane live "the live progress lines were not erased"
fi
ok

# ---- colours: status words coloured on a terminal, none with NO_COLOR ----

cat >small.json <<'EOF'
{"name": "small", "steps": [
  {"name": "good", "shell": "echo fine"},
  {"name": "boom", "shell": "echo broken >&2; exit 3"}
]}
EOF
ESC=$(printf '\033')

pane_open colored color run small.json
wait_until "n3ctl to finish in the colored pane" pane_has colored '^rc=[0-9]+$'
capture colored -e
grep -q "${ESC}\[1mSTEP " colored.pane || fail_pane colored "expected the header in bold"
ok
grep -q "good  *${ESC}\[32msucceeded *${ESC}\[" colored.pane || fail_pane colored "expected 'succeeded' in green"
ok
grep -q "boom  *${ESC}\[31mfailed *${ESC}\[" colored.pane || fail_pane colored "expected 'failed' in red"
ok
grep -q "${ESC}\[31mplan small failed${ESC}\[" colored.pane || fail_pane colored "expected the summary in red"
ok
grep -q '^rc=1$' colored.pane || fail_pane colored "expected rc=1"
ok

pane_open plain nocolor run small.json
wait_until "n3ctl to finish in the NO_COLOR pane" pane_has plain '^rc=[0-9]+$'
capture plain -e
grep -Eq '^boom +failed +1 .* exit 3$' plain.pane || fail_pane plain "expected the row of boom"
ok
grep -q '^plan small failed' plain.pane || fail_pane plain "expected the summary line"
ok
if grep -q "$ESC" plain.pane; then
    fail "NO_COLOR=1: expected no escape sequence in the pane, got:
$(show plain.pane)"
fi
ok

# ---- Ctrl-C on the terminal ----

cat >ctrlc.json <<'EOF'
{"name": "stoppable", "steps": [
  {"name": "fleet", "parallel": {"strategy": "all", "steps": [
    {"name": "hang", "shell": "echo $$ >hang.pid; exec sleep 1000"}]}}
]}
EOF
LIVE_TOP='^stoppable \(all\) +\[\.{20}\] 0/1 done  1 running  '
LIVE_NESTED='^  fleet \(all\) +\[\.{20}\] 0/1 done  1 running  '
pane_open ctrlc color run ctrlc.json
wait_until "the live progress of ctrlc.json" progress_shown ctrlc
wait_until "step hang to write hang.pid" file_has hang.pid '^[0-9]+$'
hpid=$(cat hang.pid)
on_exit "kill_stray $hpid sleep"
tm send-keys -t ctrlc C-c
wait_until "n3ctl to stop after Ctrl-C" pane_has ctrlc '^rc=[0-9]+$'
capture ctrlc
grep -qx 'rc=130' ctrlc.pane || fail_pane ctrlc "expected rc=130 after Ctrl-C"
ok
grep -q '^n3ctl: interrupted by SIGINT: stopped 1 running step (hang)' ctrlc.pane ||
    fail_pane ctrlc "expected the line saying Ctrl-C stopped step hang"
ok
grep -Eq '^fleet/hang +cancelled ' ctrlc.pane || fail_pane ctrlc "expected step hang cancelled in the table"
ok
if grep -Eq '\(all\) +\[|running  ' ctrlc.pane; then
    fail_pane ctrlc "the live progress lines were not erased after Ctrl-C"
fi
ok
pid_gone "$hpid" || fail "after Ctrl-C the step's process $hpid still runs"
ok

# ---- release push: a status line of what the targets are doing, erased at the end ----

need_jq
make_app_repo "$T/app"
app_config "$T/app.json" "$T/app" "$T/d1" "$T/d2"
jq --arg go "$T/go-push" '.hooks.after_unpack = "while [ ! -e \($go) ]; do sleep 0.05; done"' \
    "$T/app.json" >"$T/slowpush.json"
pane_open push color release -c slowpush.json push v1.0.0
wait_until "the push's status line (both targets in their after_unpack hook)" \
    pane_has push '^  \[0/2\] unpacking 2  [0-9.]+(ms|s)$'
touch "$T/go-push"
wait_until "the push to end" pane_has push '^rc=[0-9]+$'
capture push
grep -qx 'rc=0' push.pane || fail_pane push "expected rc=0 after the push"
ok
for k in 1 2; do
    grep -Eq "^  t$k: done \\([0-9.]+(ms|s)\\)\$" push.pane || fail_pane push "expected t$k done, with its time"
    ok
done
grep -Eq '^2 targets: 2 done, 0 already there, 0 failed \([0-9.]+(ms|s)\)$' push.pane ||
    fail_pane push "expected the summary with the total time"
ok
if grep -Eq '\[[0-9]/2\]' push.pane; then
    fail_pane push "the status line was not erased"
fi
ok

# ---- release build: what the build is doing, and for how long, until it is built ----

jq --arg go "$T/go-build" '.hooks.build = "while [ ! -e \($go) ]; do sleep 0.05; done"' \
    "$T/app.json" >"$T/slowbuild.json"
pane_open build color release -c slowbuild.json build v1.1.0
wait_until "the build's line (its hook running)" \
    pane_has build '^building v1\.1\.0: running the build hook\.\.\. [0-9.]+(ms|s)$'
touch "$T/go-build"
wait_until "the build to end" pane_has build '^rc=[0-9]+$'
capture build
grep -qx 'rc=0' build.pane || fail_pane build "expected rc=0 after the build"
ok
grep -Eq '^built v1\.1\.0 \(commit [0-9a-f]{7}\) in ' build.pane || fail_pane build "expected the built line"
ok
if grep -q '^building ' build.pane; then
    fail_pane build "the build's line was not erased"
fi
ok
