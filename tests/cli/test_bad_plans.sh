#!/usr/bin/env bash
# Plans that must not load: n3ctl run exits 2 with one line "n3ctl: FILE:LINE:COL: ..."
# that points at the problem, runs no step and creates no file.
# The fixtures are in tests/data/plans/; each has a step "marker" that would
# create ran-marker if anything ran.
set -eu
. "$(dirname "$0")/lib.sh"
t_start

W="$T/w" # the working directory of each case: the plan, and nothing else afterwards

# new_case FILE: an empty $W holding only FILE (a fixture's name, or a file made by the caller).
new_case() {
    rm -rf "$W"
    mkdir "$W"
    if [ -f "$PLANS/$1" ]; then
        cp "$PLANS/$1" "$W/$1"
    fi
}

# check_refused PLAN ERE...: n3ctl run PLAN (in $W) exits 2, prints nothing on stdout
# and one line on stderr matching every ERE, runs nothing and creates nothing.
check_refused() {
    local plan=$1 want before after
    shift
    before=$(cd "$W" && ls -A)
    rc=0
    (cd "$W" && exec "$N3CTL" run "$plan" >"$T/case.out" 2>"$T/case.err" </dev/null) || rc=$?
    LAST=case
    LAST_CMD="n3ctl run $plan"
    expect_rc 2
    expect_empty out
    expect_lines err 1
    for want in "$@"; do
        expect_grep err "$want"
    done
    expect_absent "$W/ran-marker" "$LAST_CMD: a step ran (ran-marker exists) although the plan is refused"
    after=$(cd "$W" && ls -A)
    expect_eq "$LAST_CMD: files in its working directory afterwards" "$before" "$after"
}

# bad_plan FIXTURE POSITION PATH_AND_MESSAGE_ERE [ERE...]: a fixture refused with
# "n3ctl: FIXTURE:POSITION: " followed by PATH_AND_MESSAGE_ERE.
bad_plan() {
    local f=$1 pos=$2 msg=$3 fre
    shift 3
    new_case "$f"
    fre=$(printf '%s' "$f" | sed 's/[.[\*^$]/\\&/g')
    check_refused "$f" "^n3ctl: $fre:$pos: $msg" "$@"
}

# ---- files that are not there or not files ----

new_case missing.json
check_refused missing.json '^n3ctl: cannot open missing\.json: No such file or directory$'

new_case none
mkdir "$W/plan.d"
check_refused plan.d '^n3ctl: cannot read plan\.d: Is a directory$'

# ---- not a JSON object ----

bad_plan empty.json 1:1 'the file is empty'
bad_plan whitespace.json 1:1 'the file is empty \(only whitespace\)'
bad_plan not-json.json 1:1 'not valid JSON near "name: deploy"; expected a JSON object$'
bad_plan trailing-comma.json 5:3 'not valid JSON near "\]"; remove the trailing comma at 4:52$'
bad_plan truncated.json 5:38 'not valid JSON: the file ends inside the object opened at 5:5; is a \} missing\?$'
bad_plan truncated-string.json 4:44 'not valid JSON: the file ends inside the string that starts at 4:33$'

new_case array.json
printf '[\n  {"name": "marker", "shell": "touch ran-marker"}\n]\n' >"$W/array.json"
check_refused array.json '^n3ctl: array\.json:1:1: expected a JSON object at the top level, got an array$'

new_case comment.json
printf '{\n  // the plan\n  "steps": [{"name": "marker", "shell": "touch ran-marker"}]\n}\n' >"$W/comment.json"
check_refused comment.json '^n3ctl: comment\.json:2:3: not valid JSON near "// the plan"; JSON does not allow comments$'

# ---- not exactly JSON (RFC 8259): refused where it stands, never read as something else ----

# An exec argument with \u0000 or \uZZZZ was cut to "abc" and run (touch made ran-marker).
new_case nul-escape.json
printf '{\n  "steps": [\n    {"name": "marker", "exec": ["touch", "ran-marker", "abc\\u0000def"]}\n  ]\n}\n' >"$W/nul-escape.json"
check_refused nul-escape.json '^n3ctl: nul-escape\.json:3:60: not valid JSON near ".*"; \\u0000 cannot be carried in this value'
new_case bad-escape.json
printf '{\n  "steps": [\n    {"name": "marker", "exec": ["touch", "ran-marker", "abc\\uZZZZdef"]}\n  ]\n}\n' >"$W/bad-escape.json"
check_refused bad-escape.json '^n3ctl: bad-escape\.json:3:60: not valid JSON near ".*"; invalid \\u escape: \\u takes four hex digits$'
new_case surrogate.json
printf '{\n  "steps": [\n    {"name": "marker", "exec": ["touch", "ran-marker", "x\\ud800"]}\n  ]\n}\n' >"$W/surrogate.json"
check_refused surrogate.json '^n3ctl: surrogate\.json:3:58: not valid JSON near ".*"; lone surrogate \\ud800: '
# A raw tab in a command (an editor's), a leading zero (read as 10), a control byte as space.
new_case raw-tab.json
printf '{\n  "steps": [\n    {"name": "marker", "shell": "touch ran-marker\tx"}\n  ]\n}\n' >"$W/raw-tab.json"
check_refused raw-tab.json '^n3ctl: raw-tab\.json:3:50: not valid JSON: raw tab inside a string: write \\t$'
new_case zero.json
printf '{\n  "max_concurrency": 010,\n  "steps": [{"name": "marker", "shell": "touch ran-marker"}]\n}\n' >"$W/zero.json"
check_refused zero.json '^n3ctl: zero\.json:2:22: not valid JSON near "010,"; leading zero in a number$'
new_case vtab.json
printf '{\n  "steps":\v[{"name": "marker", "shell": "touch ran-marker"}]\n}\n' >"$W/vtab.json"
check_refused vtab.json '^n3ctl: vtab\.json:2:11: not valid JSON near .*; control character 0x0B between tokens'
# A number longer than 63 bytes is read whole (it once ended in "internal error: the
# position index disagrees with cJSON").
new_case long-number.json
printf '{\n  "max_concurrency": 1%s,\n  "steps": [{"name": "marker", "shell": "touch ran-marker"}]\n}\n' \
    "$(printf '0%.0s' $(seq 70))" >"$W/long-number.json"
check_refused long-number.json '^n3ctl: long-number\.json:2:22: max_concurrency: expected an integer from 1 to 10000, got 1000000000000\.\.\.0{24}$'

# ---- valid JSON, not a valid plan: the position and the key path ----

bad_plan wrong-type.json 3:22 'max_concurrency: expected an integer, got a string$'
bad_plan unknown-key.json 6:7 'steps\[1\]\.parallel\.max_concurency: unknown key; did you mean "max_concurrency"\?$'
bad_plan unknown-strategy.json 3:15 'strategy: unknown strategy "any_sucess"; did you mean "any_success"\?$'
bad_plan exec-and-shell.json 5:5 'steps\[1\]: step "twice" has more than one of "exec", "shell", "parallel" and "remote"'
bad_plan no-command.json 5:5 'steps\[1\]: step "nothing" says nothing to run; give it one of "exec"'
bad_plan duplicate-names.json 6:14 'steps\[2\]\.name: duplicate step name "build" \(also steps\[1\]\)'
bad_plan unknown-dependency.json 6:66 'steps\[2\]\.depends_on\[1\]: no step "biuld" in this block; did you mean "build"\?$'
bad_plan cycle.json 3:12 'steps: depends_on has a cycle: a -> b -> a '
bad_plan map-reduce-no-reduce.json 5:35 'steps\[1\]\.parallel: strategy map_reduce needs "reduce"'

# ---- big and hostile files: refused with a clear message, quickly ----

# run_big PLAN ERE...: check_refused, with a guard against a hang (not a timing assert).
run_big() {
    local plan=$1 pid
    shift
    (cd "$W" && exec "$N3CTL" run "$plan" >"$T/big.out" 2>"$T/big.err" </dev/null) &
    pid=$!
    T_BG="$T_BG$pid "
    T_DEADLINE=60 wait_exit "$pid" "n3ctl run $plan"
    LAST=big
    LAST_CMD="n3ctl run $plan"
    expect_rc 2
    expect_empty out
    expect_lines err 1
    for want in "$@"; do
        expect_grep err "$want"
    done
    expect_absent "$W/ran-marker"
}

# 10 MB of random bytes: the first byte that is not UTF-8, at its line and column.
new_case random.json
head -c 10000000 /dev/urandom >"$W/random.json"
run_big random.json '^n3ctl: random\.json:[0-9]+:[0-9]+: (not valid UTF-8 \(byte 0x[0-9A-F]{2} at offset [0-9]+\)|the file holds a NUL byte \(at offset [0-9]+\))'
off=$(sed -n 's/.*at offset \([0-9]*\)).*/\1/p' big.err)
pos=$(sed -n 's/^n3ctl: random\.json:\([0-9]*:[0-9]*\): .*/\1/p' big.err)
# LINE:COL of byte offset $off: newlines before it, and bytes since the last one.
want=$(head -c "$off" "$W/random.json" | od -An -v -tx1 | tr -s ' \n' '\n' | grep -v '^$' |
    awk -v off="$off" '$1 == "0a" { nl++; last = NR } END { printf "%d:%d", nl + 1, off + 1 - last }')
expect_eq "the position of the bad byte at offset $off of random.json" "$want" "$pos"

# 10 MB of printable garbage in a string that never ends: the position where it starts.
new_case garbage.json
{
    printf '{\n  "name": "'
    head -c 7500000 /dev/urandom | base64 -w 0
} >"$W/garbage.json"
run_big garbage.json '^n3ctl: garbage\.json:2:[0-9]+: not valid JSON: the file ends inside the string that starts at 2:11$'

# 10 MB of blank lines, then one wrong character: the line number is right.
new_case lines.json
{
    head -c 10000000 /dev/zero | tr '\0' '\n'
    printf '  x\n'
} >"$W/lines.json"
run_big lines.json '^n3ctl: lines\.json:10000001:3: not valid JSON near "x"; expected a JSON object$'

# Nested deeper than the parser's limit.
new_case deep.json
{
    printf '{"name": "deep", "steps": '
    head -c 5000 /dev/zero | tr '\0' '['
} >"$W/deep.json"
run_big deep.json '^n3ctl: deep\.json:1:[0-9]+: the document is nested more than [0-9]+ levels deep$'

# The size limit is 16 MiB: at the limit the file is read, past it refused unread.
new_case limit.json
head -c 16777216 /dev/zero | tr '\0' ' ' >"$W/limit.json"
run_big limit.json '^n3ctl: limit\.json:1:1: the file is empty \(only whitespace\)'
printf ' ' >>"$W/limit.json"
run_big limit.json '^n3ctl: limit\.json: the file is 16777217 bytes, more than the limit of 16777216 bytes$'

new_case huge.json
head -c 20000000 /dev/urandom >"$W/huge.json"
run_big huge.json '^n3ctl: huge\.json: the file is 20000000 bytes, more than the limit of 16777216 bytes$'

# Through a pipe the size is not known in advance: still bounded.
rc=0
head -c 20000000 /dev/zero | (cd "$W" && exec "$N3CTL" run /dev/stdin >"$T/pipe.out" 2>"$T/pipe.err") || rc=$?
LAST=pipe LAST_CMD="n3ctl run /dev/stdin (20 MB through a pipe)"
expect_rc 2
expect_lines err 1
expect_grep err '^n3ctl: /dev/stdin: the file is more than the limit of 16777216 bytes$'

# ---- limits ----

# One step more than the 100000 a plan may have: refused with the limit (this once
# crashed in plan_free).
new_case toomany.json
{
    printf '{"name": "toomany", "steps": [{"name": "marker", "shell": "touch ran-marker"}'
    seq 1 100000 | sed 's/.*/,{"name": "s&", "shell": "true"}/'
    printf ']}\n'
} | tr -d '\n' >"$W/toomany.json"
run_big toomany.json '^n3ctl: toomany\.json:1:[0-9]+: steps: a plan has at most 100000 steps, this one has more$'
