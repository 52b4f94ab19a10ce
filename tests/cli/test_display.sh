#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters and remote commands in single quotes
# Text from outside on the terminal and in pipes. A target whose uname, output, stderr, hook
# output and audit records hold an OSC 52 clipboard write, a screen clear, CSI as a raw 8-bit
# byte (0x9b) and as UTF-8 (U+009B) and a UTF-8 character cut in half; a repository whose tags,
# authors and subjects do; a lock message that does. Each reaches the terminal (a real one,
# tmux, with set-clipboard on: an OSC 52 that got through would make a paste buffer) and pipes
# with those shown as '?', cut between characters; exec passes output as it is into a pipe,
# escapes what takes over a terminal on one, and passes it all with --raw.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
command -v iconv >/dev/null 2>&1 || skip "iconv is not installed (Debian package libc-bin)"

# The hostile text, as printf's format: OSC 52 ("hi" to the clipboard), ESC [2J, 0x9b "1m",
# U+009B "H", then the first two bytes of the three of the euro sign.
EVIL='\033]52;c;aGk=\007\033[2J\2331m\302\233H\342\202'
# How it is shown: each control, each C1 and each byte that is not UTF-8 a '?'.
SHOWN='?]52;c;aGk=??[2J?1m?H??'
ESC=$(printf '\033')

# clean FILE...: nothing a terminal acts on: valid UTF-8, no C0 control but tab and newline,
# no DEL, no C1 (with valid UTF-8, a byte 0x80-0x9f is one only after 0xc2).
clean() {
    local f
    for f; do
        iconv -f UTF-8 -t UTF-8 "$T/$f" >/dev/null 2>&1 ||
            fail "$LAST_CMD: $f is not valid UTF-8 (raw bytes from outside got through):
$(show "$T/$f")"
        ! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$T/$f" ||
            fail "$LAST_CMD: $f holds raw control characters:
$(show "$T/$f")"
        ! LC_ALL=C grep -q $'\xc2[\x80-\x9f]' "$T/$f" ||
            fail "$LAST_CMD: $f holds C1 controls written as UTF-8:
$(show "$T/$f")"
        ok
    done
}

# A local target, and a fake uname first on n3ctl's PATH (the facts command runs it there).
mkdir -p "$T/bin" "$T/d"
printf '#!/bin/sh\nprintf %s\n' "'Linux $EVIL 6.1.0-long-kernel-name\\n'" >"$T/bin/uname"
chmod +x "$T/bin/uname"
"$T/bin/uname" -sr | LC_ALL=C grep -q $'^Linux \x1b\\]52;c;aGk=\x07\x1b\\[2J\x9b1m\xc2\x9bH\xe2\x82 6\\.1' ||
    fail "the fake uname does not print what the test needs: $("$T/bin/uname" | od -c | head -3)"
cat >"$T/n3.json" <<EOF
{"version": 1, "environments": {"prod": {"targets": [
  {"name": "evil", "transport": "local", "deploy_path": "$T/d"}]}}}
EOF
CFG=$T/n3.json

# ---- hosts: the OS cell, in a pipe ----

PATH="$T/bin:$PATH" run_n3 hosts hosts -c "$CFG"
expect_rc 0
clean hosts.out hosts.err
# "Linux ?]52;c;aGk=??[2J?1m?H?? 6.1..." is wider than the 24 columns of OS: 21 and "...",
# in the column under the header's OS, CPUS right after it.
hdr=$(sed -n 1p "$T/hosts.out")
row=$(grep '^evil ' "$T/hosts.out") || fail "no row for evil in: $(show "$T/hosts.out")"
os=$(awk -v h="$hdr" 'BEGIN { print index(h, "OS") }')
expect_eq "the OS cell, where the header's OS is" 'Linux ?]52;c;aGk=??[2...' "${row:os-1:24}"
cpus=$(awk -v h="$hdr" 'BEGIN { print index(h, "CPUS") }')
[[ ${row:cpus-1:4} =~ ^\ *[0-9]+$ ]] || fail "expected the CPUS under the header's, got '${row:cpus-1:4}' in:
$row"
ok

# --json keeps the value (escaped as JSON), and is safe to print on a terminal.
PATH="$T/bin:$PATH" run_n3 hostsj hosts -c "$CFG" --json
expect_rc 0
clean hostsj.out
jq_eq "$T/hostsj.out" '.targets[0].os | test("^Linux \u001b\\]52;c;aGk=\u0007\u001b\\[2J")' true "the OS in the JSON, as the target said it"
expect_fgrep out '\u009bH' "U+009B written as \\u009b in the JSON"

# ---- hosts on a real terminal: no screen cleared, no clipboard written ----

tty_start
printf 'set -g set-clipboard on\n' >>"$T/tmux.conf"

# pane_path SESSION ARGS...: pane_open (no colours), with the fake uname first on PATH.
pane_path() {
    local s=$1
    shift
    tm new-session -d -s "$s" -x 120 -y 30 -c "$T" \
        env PATH="$T/bin:$PATH" N3CTL="$N3CTL" bash "$T/pane.sh" nocolor "$@"
}

# no_buffers: tmux got no OSC 52 from any pane.
no_buffers() {
    local b
    b=$(tm list-buffers 2>&1) || :
    [ -z "$b" ] || fail "a clipboard write reached the terminal (tmux made a paste buffer): $b"
    ok
}

pane_path hostst hosts -c "$CFG"
wait_until "hosts to finish in the pane" pane_has hostst '^rc=[0-9]+$'
capture hostst
grep -q '^rc=0$' "$T/hostst.pane" || fail_pane hostst "expected rc=0"
ok
sed -n 1p "$T/hostst.pane" | grep -q '^TARGET  ' || fail_pane hostst "expected the header on the first line: the screen was cleared"
ok
grep -Fq 'Linux ?]52;c;aGk=??[2...' "$T/hostst.pane" || fail_pane hostst "expected the OS with its escapes shown as ?"
ok
no_buffers

# ---- run: the tails of failed steps (stderr and stdout) ----

jq -n --arg boom "printf '$EVIL\\n' >&2; exit 3" --arg loud "printf 'out $EVIL\\n'; exit 4" \
    '{name: "p", steps: [{name: "boom", shell: $boom}, {name: "loud", shell: $loud}]}' >"$T/boom.json"
run_n3 run run "$T/boom.json"
expect_rc 1
clean run.out run.err
expect_fgrep out "$SHOWN" "the stderr tail of boom, shown"
expect_fgrep out "out $SHOWN" "the stdout tail of loud, shown"
run_n3 runj run --json "$T/boom.json"
clean runj.out
jq_eq "$T/runj.out" '.block.steps[0].stderr.tail | test("\u001b\\[2J")' true "the JSON report keeps the tail, escaped"

pane_open runt nocolor run "$T/boom.json"
wait_until "run to finish in the pane" pane_has runt '^rc=[0-9]+$'
capture runt
grep -Fq "$SHOWN" "$T/runt.pane" || fail_pane runt "expected the tail with its escapes shown as ?"
ok
sed -n 1p "$T/runt.pane" | grep -q '^STEP ' || fail_pane runt "expected the table's header on the first line: the screen was cleared"
ok
no_buffers

# ---- exec: as it is into a pipe, escaped on a terminal, as it is with --raw ----

run_n3 execp exec -c "$CFG" -- "printf '$EVIL\\n'; printf 'err $EVIL\\n' >&2"
expect_rc 0
{ printf 'evil: '; printf "$EVIL"; printf '\n'; } >"$T/exec.want"
expect_same_file "$T/exec.want" "$T/execp.out" "exec's stdout into a pipe: the target's bytes"
{ printf 'evil: err '; printf "$EVIL"; printf '\n'; } >"$T/exec.want-err"
grep -a '^evil: err ' "$T/execp.err" >"$T/execp.err-line" || :
expect_same_file "$T/exec.want-err" "$T/execp.err-line" "exec's stderr into a pipe: the target's bytes"

pane_open exect color exec -c "$CFG" -- "printf '\\033[31mred\\033[0m $EVIL\\n'; printf 'e \\033]0;title\\007\\n' >&2"
wait_until "exec to finish in the pane" pane_has exect '^rc=[0-9]+$'
capture exect -e
grep -Fq "evil: ${ESC}[31mred" "$T/exect.pane" || fail_pane exect "expected the colours to pass (SGR)"
ok
capture exect
grep -Fq 'evil: red ^[]52;c;aGk=^G^[[2J\x9b1m\u009bH' "$T/exect.pane" || fail_pane exect "expected the other escapes shown escaped"
ok
grep -Fq 'evil: e ^[]0;title^G' "$T/exect.pane" || fail_pane exect "expected the title sequence on stderr shown escaped"
ok
no_buffers

pane_open execr nocolor exec --raw -c "$CFG" -- "printf 'raw \\033]52;c;aGk=\\007\\n'"
wait_until "exec --raw to finish in the pane" pane_has execr '^rc=[0-9]+$'
b=$(tm list-buffers 2>&1) || :
[[ $b == *'"hi"'* ]] || fail "exec --raw: expected the OSC 52 to reach the terminal (a paste buffer \"hi\"), got: '$b'"
ok
tm delete-buffer 2>/dev/null || :
no_buffers

# ---- audit -t: a record with 0x9b, U+009B and escapes ----

mkdir -p "$T/d/.n3"
zeros=$(printf '%064d' 0)
printf '{"seq":1,"time":"2026-01-01T00:00:00Z","actor":"mallory\2332J","pid":1,"action":"x\302\2332J","targets":["evil"],"result":"ok","detail":{"note":"a\\u001b]0;t\\u0007b"},"prev":"%s"}\n' \
    "$zeros" >"$T/d/.n3/audit.log"
run_n3 audit audit -c "$CFG" -t evil
expect_rc 0
clean audit.out audit.err
expect_grep out '^ +1  2026-01-01T00:00:00Z +mallory\?2J +x\?2J +ok +evil +note=a\?\]0;t\?b$' "the record, its C1 and C0 shown as ?"
run_n3 auditj audit -c "$CFG" -t evil --json
expect_rc 0
clean auditj.out
jq_eq "$T/auditj.out" '.[0].action' $'x\xc2\x9b2J' "the JSON keeps U+009B"

# ---- versions and changelog: tags, authors and subjects from the repository ----

REPO=$T/app
make_app_repo "$REPO"
GIT_AUTHOR_NAME="$(printf 'Eve \2332J\302\233m')" GIT_AUTHOR_EMAIL=eve@example.org \
    GIT_COMMITTER_NAME=Eve GIT_COMMITTER_EMAIL=eve@example.org GIT_AUTHOR_DATE=2026-01-08T10:00:00Z \
    GIT_COMMITTER_DATE=2026-01-08T10:00:00Z git -C "$REPO" commit -q --allow-empty \
    -m "$(printf 'fix \2332J \302\233H \342\202 and then a subject that goes on past its column')" \
    2>/dev/null || fail "committing the hostile subject failed"
git_at "2026-01-08T10:00:00Z" -C "$REPO" tag v2.4.0
git_at "2026-01-08T10:00:00Z" -C "$REPO" tag "$(printf 'bad\233tag')" ||
    fail "tagging with a raw 0x9b in the name failed"
app_config "$T/app.json" "$REPO" "$T/d"
run_n3 versions versions -c "$T/app.json" --local
expect_rc 0
clean versions.out versions.err
# git stores the subject as UTF-8, reading the bytes that are not as Latin-1 (e2 82: U+00E2,
# then U+0082, a C1): "fix ?2J ?H â? and then a subj..." is 32 columns, 33 bytes.
expect_grep out '^v2\.4\.0 +[0-9a-f]{7} +2026-01-08  Eve \?2J\?m {13}fix \?2J \?H â\? and then a subj\.\.\.  - ' \
    "the author and subject shown, in their columns"
expect_grep out '^ignored tag bad\\x9btag: ' "the ignored tag's name shown"
run_n3 changelog changelog -c "$T/app.json" v2.0.0 v2.4.0
expect_rc 0
clean changelog.out changelog.err
expect_fgrep out 'fix ?2J ?H â? and then' "the changelog line shown"
run_n3 versionsj versions -c "$T/app.json" --local --json
expect_rc 0
clean versionsj.out

# ---- release push: a hook's output in the result ----

jq --arg e "printf '$EVIL\\n'; exit 1" '.hooks.after_unpack = $e' "$T/app.json" >"$T/hook.json"
run_n3 push release -c "$T/hook.json" push v2.4.0
expect_rc 1
clean push.out push.err
expect_fgrep err "$SHOWN" "the hook's output shown"

# ---- one remote case: a step on an sshd target, its stderr in run's report; exec there ----

fleet_start 1
jq -n --arg c "printf '$EVIL\\n' >&2; exit 5" \
    '{name: "r", steps: [{name: "far", remote: {targets: "all", command: $c}}]}' >"$T/remote.json"
run_n3 remote run -c "$FLEET/n3.json" "$T/remote.json"
expect_rc 1
clean remote.out remote.err
expect_fgrep out "$SHOWN" "the remote stderr shown"

pane_open remotex nocolor exec -c "$FLEET/n3.json" -- "printf 'far $EVIL\\n'"
wait_until "exec on t1 to finish in the pane" pane_has remotex '^rc=[0-9]+$'
capture remotex
grep -Fq 't1: far ^[]52;c;aGk=^G^[[2J\x9b1m\u009bH' "$T/remotex.pane" || fail_pane remotex "expected t1's escapes shown escaped"
ok
no_buffers
