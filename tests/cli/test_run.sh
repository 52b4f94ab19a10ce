#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# n3ctl run, help and version as a user drives them: exit codes, the table, --json,
# -p, --metrics, --traces, bad options, and Ctrl-C / SIGTERM / SIGHUP.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

# ---- plans (steps run in n3ctl's working directory, $T: relative paths) ----

cat >ok.json <<'EOF'
{
  "name": "greet",
  "steps": [
    {"name": "hello", "shell": "echo hello"},
    {"name": "world", "exec": ["echo", "world"], "depends_on": ["hello"]},
    {"name": "marker", "shell": "touch ok-ran", "depends_on": ["world"]}
  ]
}
EOF

cat >fail.json <<'EOF'
{"name": "broken", "steps": [
  {"name": "fine", "shell": "echo fine"},
  {"name": "boom", "shell": "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"err line $i\" >&2; done; echo some stdout; exit 3"},
  {"name": "later", "shell": "touch later-ran", "depends_on": ["boom"]}
]}
EOF

# Every strategy once, each in a nested block of an "all" block.
cat >strategies.json <<'EOF'
{"name": "strategies", "steps": [
  {"name": "sum", "parallel": {"strategy": "map_reduce", "reduce": "sum", "steps": [
    {"name": "x", "shell": "echo 2"}, {"name": "y", "shell": "echo 3"}, {"name": "z", "shell": "echo 37"}]}},
  {"name": "count", "parallel": {"strategy": "map_reduce", "reduce": "count", "steps": [
    {"name": "x", "shell": "true"}, {"name": "y", "shell": "true"}]}},
  {"name": "concat", "parallel": {"strategy": "map_reduce", "reduce": "concat", "steps": [
    {"name": "x", "shell": "echo '[1,2]'"}, {"name": "y", "shell": "echo '[3]'"}]}},
  {"name": "merge", "parallel": {"strategy": "map_reduce", "reduce": "merge", "steps": [
    {"name": "x", "shell": "echo '{\"a\":1,\"b\":1}'"}, {"name": "y", "shell": "echo '{\"b\":2}'"}]}},
  {"name": "first", "parallel": {"strategy": "any_success", "steps": [
    {"name": "nope", "shell": "exit 1"}, {"name": "yes", "shell": "echo winner"}]}},
  {"name": "race", "parallel": {"strategy": "race", "steps": [
    {"name": "slow", "shell": "exec sleep 1000"}, {"name": "fast", "shell": "echo fast"}]}},
  {"name": "gather", "parallel": {"strategy": "collect", "steps": [
    {"name": "good", "shell": "echo fine"}, {"name": "bad", "shell": "exit 4"}]}},
  {"name": "doc", "result": "json", "shell": "echo '{\"k\":[1,2]}'"}
]}
EOF

# flaky succeeds at its third attempt (exit 7 is transient here); spent never does.
cat >retry.json <<'EOF'
{"name": "retries",
 "retry": {"max_attempts": 5, "backoff": {"base_seconds": 0.01, "cap_seconds": 0.02}, "retry_on": ["exit:7"]},
 "steps": [
  {"name": "ok1", "shell": "echo 1"},
  {"name": "ok2", "shell": "echo 2"},
  {"name": "flaky", "shell": "n=$(cat flaky.count 2>/dev/null || echo 0); n=$((n + 1)); echo $n >flaky.count; [ $n -ge 3 ] || exit 7; echo ok"},
  {"name": "spent", "shell": "exit 7", "retry": {"max_attempts": 2}},
  {"name": "fatal", "shell": "exit 8"}
]}
EOF

# ---- a passing plan ----

run_n3 ok run ok.json
expect_rc 0
expect_grep out '^STEP +STATUS +ATTEMPTS +DURATION +EXIT +REASON$' "the table's header"
expect_grep out '^hello +succeeded +1 +[0-9.]+(ms|s) +0$' "a row for step hello"
expect_grep out '^world +succeeded +1 +[0-9.]+(ms|s) +0$' "a row for step world"
expect_grep out '^marker +succeeded +1 +[0-9.]+(ms|s) +0$' "a row for step marker"
expect_grep out '^plan greet succeeded in [0-9.]+(ms|s): 3 steps, 3 succeeded$' "the summary line"
expect_empty err # not a terminal: no progress
expect_present ok-ran "step marker of ok.json did not run (no ok-ran file)"

# ---- a failing plan ----

run_n3 fail run fail.json
expect_rc 1
expect_grep out '^fine +succeeded +1 ' "a row for step fine"
expect_grep out '^boom +failed +1 +[0-9.]+(ms|s) +3 +exit 3$' "step boom failed, exit 3"
expect_grep out '^later +cancelled +0 .*depends on "boom"' "step later cancelled because of boom"
expect_grep out '^--- boom: last lines of stderr ---$' "the heading of boom's stderr"
for i in 5 6 7 8 9 10 11 12; do
    expect_grep out "^err line $i\$" "line $i of boom's stderr (one of its last 8 lines)"
done
for i in 1 2 3 4; do
    expect_no_grep out "^err line $i\$" "no line $i of boom's stderr (only the last 8 are shown)"
done
expect_no_grep out '^some stdout$' "no stdout of boom when it wrote to stderr"
expect_grep out '^plan broken failed in .*: 3 steps, 1 succeeded, 1 failed, 1 cancelled' "the summary line"
expect_absent later-ran "step later ran although the step it depends on failed"

# ---- --json ----

rm -f ok-ran
run_n3 okjson run --json ok.json
expect_rc 0
expect_eq "number of JSON documents from run --json" 1 "$(jq -s length okjson.out 2>&1)"
jq_eq okjson.out .status succeeded
jq_eq okjson.out '.run_id | test("^[0-9a-f]{16}$")' true
jq_eq okjson.out .plan ok.json
jq_eq okjson.out .block.name greet
jq_eq okjson.out .block.strategy all
jq_eq okjson.out '[.block.steps[] | "\(.name)=\(.status)/\(.attempts)/\(.exit_code)"] | join(" ")' \
    "hello=succeeded/1/0 world=succeeded/1/0 marker=succeeded/1/0"
jq_eq okjson.out '.block.result | tojson' '{"hello":"hello","world":"world","marker":""}'
jq_eq okjson.out '.block.steps[0].stdout.tail' hello
jq_eq okjson.out '.block.counts | "\(.total) \(.succeeded) \(.failed)"' "3 3 0"
expect_empty err

run_n3 failjson run --json fail.json
expect_rc 1
expect_eq "number of JSON documents from run --json" 1 "$(jq -s length failjson.out 2>&1)"
jq_eq failjson.out .status failed
jq_eq failjson.out '.block.steps[1] | "\(.name) \(.status) \(.attempts) \(.exit_code) \(.reason)"' "boom failed 1 3 exit 3"
jq_eq failjson.out '.block.steps[1].stderr.tail | split("\n") | .[-2]' "err line 12"
jq_eq failjson.out '.block.steps[2] | "\(.name) \(.status) \(.attempts) \(has("exit_code"))"' "later cancelled 0 false"

run_n3 strat run --json strategies.json
expect_rc 0
jq_eq strat.out .status succeeded
jq_eq strat.out '.block.steps[] | select(.name == "sum") | .block.result' 42
jq_eq strat.out '.block.steps[] | select(.name == "sum") | .block.strategy' map_reduce
jq_eq strat.out '.block.steps[] | select(.name == "count") | .block.result' 2
jq_eq strat.out '.block.steps[] | select(.name == "concat") | .block.result | tojson' '[1,2,3]'
jq_eq strat.out '.block.steps[] | select(.name == "merge") | .block.result | tojson' '{"a":1,"b":2}'
jq_eq strat.out '.block.steps[] | select(.name == "first") | .block.result' winner
jq_eq strat.out '.block.steps[] | select(.name == "race") | .block.result' fast
jq_eq strat.out '.block.steps[] | select(.name == "race") | .block.steps[] | select(.name == "slow") | .status' cancelled
jq_eq strat.out '.block.steps[] | select(.name == "gather") | .block.status' succeeded
jq_eq strat.out '.block.steps[] | select(.name == "gather") | .block.result | "\(.good.status) \(.good.result) \(.bad.status) \(.bad.error)"' \
    "succeeded fine failed exit 4"
jq_eq strat.out '.block.result.doc | tojson' '{"k":[1,2]}'
jq_eq strat.out '.block.result.sum' 42

# A sum past the range where whole numbers are exact fails and says which step (it was
# "result": null and "succeeded" when the total overflowed to infinity).
cat >overflow.json <<'EOF'
{"name": "overflow", "strategy": "map_reduce", "reduce": "sum", "steps": [
  {"name": "a", "shell": "echo 9007199254740000"}, {"name": "b", "shell": "echo 1e308"}]}
EOF
run_n3 overflow run --json overflow.json
expect_rc 1
jq_eq overflow.out '"\(.status) \(.block.result)"' "failed null"
jq_eq overflow.out .block.reason \
    'reduce sum: step "b" printed 1e+308, past 9007199254740991 (2^53 - 1) in size, where whole numbers stop being exact'

run_n3 retry run --json retry.json
expect_rc 1
jq_eq retry.out '[.block.steps[] | "\(.name)=\(.status)/\(.attempts)"] | join(" ")' \
    "ok1=succeeded/1 ok2=succeeded/1 flaky=succeeded/3 spent=failed/2 fatal=failed/1"

# ---- -p 1: one process at a time in the whole plan, nested blocks included ----

# Each step checks, when it starts and before it ends, that every other step that
# started has also ended; it waits (at most 0.5 s) for another step to start, so
# that steps allowed to run together do overlap. The run without -p shows the
# check catches overlap.
cat >step.sh <<'EOF'
n=$1
check() {
    for f in started.*; do
        [ -e "$f" ] || continue
        o=${f#started.}
        [ "$o" = "$n" ] || [ -e "done.$o" ] || echo "$n and $o ran at the same time" >>overlap
    done
}
check
touch "started.$n"
i=0
while [ $i -lt 10 ] && [ "$(ls started.* | wc -l)" -lt 2 ]; do sleep 0.05; i=$((i + 1)); done
check
touch "done.$n"
EOF
cat >serial.json <<'EOF'
{"name": "serial", "steps": [
  {"name": "s1", "exec": ["sh", "step.sh", "s1"]},
  {"name": "s2", "exec": ["sh", "step.sh", "s2"]},
  {"name": "inner", "parallel": {"steps": [
    {"name": "s3", "exec": ["sh", "step.sh", "s3"]},
    {"name": "s4", "exec": ["sh", "step.sh", "s4"]}]}}
]}
EOF
run_n3 parallel run serial.json
expect_rc 0
expect_present overlap "without -p the steps of serial.json never overlapped, so the -p 1 check below proves nothing"
rm -f started.* done.* overlap

run_n3 serial run -p 1 serial.json
expect_rc 0
if [ -e overlap ]; then
    fail "n3ctl run -p 1: steps ran at the same time:
$(show overlap)"
fi
ok
expect_eq "steps that ran with -p 1" "done.s1 done.s2 done.s3 done.s4" "$(echo done.*)"

# ---- --metrics ----

rm -f flaky.count
run_n3 metrics run --metrics m.prom retry.json
expect_rc 1
expect_present m.prom "run --metrics m.prom wrote no m.prom"
grep -qx '# TYPE n3_tasks_total counter' m.prom ||
    fail "m.prom: expected '# TYPE n3_tasks_total counter', got:
$(show m.prom)"
ok
for want in 'n3_tasks_total{status="succeeded"} 3' 'n3_tasks_total{status="failed"} 2' \
    'n3_task_retries_total 3' 'n3_task_duration_seconds_count 5' 'n3_active_tasks 0' \
    'n3_blocks_total{strategy="all",status="failed"} 1'; do
    grep -qxF "$want" m.prom || fail "m.prom: expected the line '$want', got:
$(show m.prom)"
    ok
done
expect_grep out '^plan retries failed' "the table and summary with --metrics"
for f in m.prom.tmp.*; do
    [ ! -e "$f" ] || fail "temporary file $f left next to m.prom"
done
ok

# ---- --traces ----

cat >traced.json <<'EOF'
{"name": "traced", "steps": [
  {"name": "a", "shell": "true"},
  {"name": "b", "shell": "true", "depends_on": ["a"]},
  {"name": "inner", "parallel": {"strategy": "collect", "steps": [
    {"name": "c", "shell": "true"},
    {"name": "d", "shell": "exit 2"}]}}
]}
EOF
run_n3 traces run --json --traces t.jsonl traced.json
expect_rc 0
expect_present t.jsonl "run --traces t.jsonl wrote no t.jsonl"
n=0
while IFS= read -r line; do
    n=$((n + 1))
    printf '%s' "$line" | jq -e 'type == "object" and (.trace_id | type == "string") and
        (.span_id | type == "string") and (.name | type == "string") and
        (.status | type == "string") and has("parent_id")' >/dev/null 2>&1 ||
        fail "t.jsonl line $n is not one JSON span with trace_id, span_id, parent_id, name, status: $line"
    ok
done <t.jsonl
jq -s . t.jsonl >spans.json
# 5 steps (a, b, inner, c, d) and 2 blocks (traced, traced/inner).
expect_eq "spans in t.jsonl" 7 "$n"
jq_eq spans.json '[.[] | select(.attributes.kind) | .name] | sort | join(" ")' "a b c d inner"
jq_eq spans.json '[.[] | select(.attributes.strategy) | .attributes.block] | sort | join(" ")' "traced traced/inner"
jq_eq spans.json '[.[].trace_id] | unique | length' 1
jq_eq spans.json '.[0].trace_id | test("^[0-9a-f]{32}$")' true
jq_eq spans.json '[.[].span_id] | unique | length' 7
jq_eq spans.json '[.[] | select(.name == "d" and .attributes.kind) | .status] | join(" ")' failed
# Every step span's parent is the span of its block.
jq_eq spans.json '
    (map(select(.attributes.strategy) | {key: .attributes.block, value: .span_id}) | from_entries) as $blocks
    | [.[] | select(.attributes.kind) | select(.parent_id != $blocks[.attributes.block]) | .name]
    | join(" ")' "" "t.jsonl: step spans whose parent_id is not their block's span_id"
# The top block has no parent; the nested block's parent is the span of its step.
jq_eq spans.json '.[] | select(.attributes.block == "traced" and .attributes.strategy) | .parent_id' ""
jq_eq spans.json '
    (.[] | select(.name == "inner" and .attributes.kind) | .span_id) as $step
    | .[] | select(.attributes.block == "traced/inner" and .attributes.strategy) | .parent_id == $step' true
jq_eq spans.json '.[] | select(.parent_id == "") | .attributes.run_id' "$(jq -r .run_id traces.out)" \
    "t.jsonl: the run_id of the top span against the run_id of --json"

# ---- steps that never ran are in the metrics and the traces, as in the report ----

# b never starts (a failed), nor does the block of nest, nor never1 (fail_fast), never2
# (any_success already has its result) or never3 (its block's time is up while stuck runs).
cat >neverran.json <<'EOF'
{"name": "neverran", "steps": [
  {"name": "a", "shell": "exit 1"},
  {"name": "b", "depends_on": ["a"], "shell": "touch ran.b"},
  {"name": "nest", "depends_on": ["b"], "parallel": {"steps": [
    {"name": "x", "shell": "touch ran.x"}, {"name": "y", "shell": "touch ran.y"}]}},
  {"name": "ff", "parallel": {"fail_fast": true, "max_concurrency": 1, "steps": [
    {"name": "bad", "shell": "exit 2"}, {"name": "never1", "shell": "touch ran.never1"}]}},
  {"name": "first", "parallel": {"strategy": "any_success", "max_concurrency": 1, "steps": [
    {"name": "win", "shell": "echo won"}, {"name": "never2", "shell": "touch ran.never2"}]}},
  {"name": "late", "parallel": {"timeout_seconds": 0.2, "max_concurrency": 1, "steps": [
    {"name": "stuck", "shell": "exec sleep 1000"}, {"name": "never3", "shell": "touch ran.never3"}]}}
]}
EOF
run_n3 never run --json --metrics never.prom --traces never.jsonl neverran.json
expect_rc 1
for f in ran.*; do
    [ ! -e "$f" ] || fail "a step that must not run did: $f exists"
done
ok
jq_eq never.out '[.block | recurse(.steps[] | .block // empty) | .steps[] | select(.kind == "exec")
    | "\(.name)=\(.status)"] | join(" ")' \
    "a=failed b=cancelled x=cancelled y=cancelled bad=failed never1=cancelled win=succeeded never2=cancelled stuck=timed_out never3=cancelled"
jq_eq never.out '.block.steps[] | select(.name == "nest") | .block.steps[0].reason' \
    'cancelled: depends on "b", which was cancelled'
for want in 'n3_tasks_total{status="cancelled"} 6' 'n3_tasks_total{status="failed"} 2' \
    'n3_tasks_total{status="succeeded"} 1' 'n3_tasks_total{status="timed_out"} 1' \
    'n3_task_duration_seconds_count 4' 'n3_blocks_total{strategy="all",status="cancelled"} 1'; do
    grep -qxF "$want" never.prom || fail "never.prom: expected the line '$want', got:
$(show never.prom)"
    ok
done
expect_reported_everywhere never.out never.prom never.jsonl
jq_eq never.jsonl.all '.[] | select(.name == "b" and .attributes.kind)
    | "\(.status) \(.attributes.attempts) \(.attributes.reason)"' \
    'cancelled 0 cancelled: depends on "a", which failed'

# ---- output files that cannot be written: exit 2 before anything runs ----

rm -f ok-ran
run_n3 nodir run --metrics nodir/m.prom ok.json
expect_rc 2
expect_grep err 'cannot write nodir/m\.prom: No such file or directory' "a message naming nodir/m.prom"
expect_empty out
expect_absent ok-ran "run --metrics nodir/m.prom ran the plan (ok-ran exists) before failing"
expect_absent nodir

run_n3 nodir2 run --traces nodir/t.jsonl ok.json
expect_rc 2
expect_grep err 'cannot write nodir/t\.jsonl: No such file or directory' "a message naming nodir/t.jsonl"
expect_absent ok-ran "run --traces nodir/t.jsonl ran the plan (ok-ran exists) before failing"

# ---- bad options: exit 2, a message naming the problem, nothing runs ----

bad_option() {
    local want=$1
    shift
    rm -f ok-ran
    run_n3 badopt "$@"
    expect_rc 2
    expect_grep err "$want"
    expect_grep err "^usage: n3ctl run \[OPTIONS\] PLAN\.json" "the usage line"
    expect_empty out
    expect_absent ok-ran "n3ctl $*: the plan ran despite the bad command line"
}
bad_option '^n3ctl run: -p wants a whole number from 1 to 10000, not "0"$' run -p 0 ok.json
bad_option '^n3ctl run: -p wants a whole number from 1 to 10000, not "abc"$' run -p abc ok.json
bad_option '^n3ctl run: -p wants a whole number from 1 to 10000, not "-1"$' run -p -1 ok.json
bad_option '^n3ctl run: -p wants a whole number from 1 to 10000, not "10001"$' run -p 10001 ok.json
bad_option '^n3ctl run: -p wants a whole number from 1 to 10000, not "2x"$' run --parallel=2x ok.json
bad_option '^n3ctl run: option -p needs an argument$' run -p
bad_option '^n3ctl run: unknown option --bogus$' run --bogus ok.json
bad_option '^n3ctl run: unknown option -x$' run -x ok.json
bad_option '^n3ctl run: which plan\? give the path of a plan file' run
bad_option '^n3ctl run: which plan\?' run --json
bad_option '^n3ctl run: one plan at a time; unexpected "fail\.json"$' run ok.json fail.json

# ---- help ----

run_n3 help help
expect_rc 0
expect_grep out '^usage: n3ctl COMMAND \[OPTIONS\] \[ARGS\]$' "the overview's usage line"
for c in run version help; do
    expect_grep out "^  $c +[a-z]" "command $c in the overview"
done
cp help.out overview.txt

for args in "--help" "-h"; do
    run_n3 help2 $args
    expect_rc 0
    cmp -s overview.txt help2.out || fail "n3ctl $args and n3ctl help differ:
$(diff overview.txt help2.out)"
    ok
done

run_n3 runhelp run --help
expect_rc 0
expect_grep out '^usage: n3ctl run \[OPTIONS\] PLAN\.json$' "run's usage line"
for o in '-j, --json' '-p, --parallel N' '-m, --metrics FILE' '-t, --traces FILE' '-v, --verbose' \
    '-q, --quiet' '-h, --help'; do
    grep -qF -- "  $o " runhelp.out || fail "n3ctl run --help: expected the option '$o', got:
$(show runhelp.out)"
    ok
done
expect_grep out '130 interrupted' "the exit statuses in run --help"
expect_empty err

run_n3 runhelp2 help run
expect_rc 0
cmp -s runhelp.out runhelp2.out || fail "n3ctl help run and n3ctl run --help differ:
$(diff runhelp.out runhelp2.out)"
ok

run_n3 verhelp version --help
expect_rc 0
expect_grep out '^usage: n3ctl version \[OPTIONS\]$' "version's usage line"
expect_grep out '^  -j, --json ' "version's --json option"

run_n3 noargs
expect_rc 2
expect_grep err '^usage: n3ctl COMMAND' "the overview on stderr"
expect_empty out

run_n3 helpbad help bogus
expect_rc 2
expect_grep err 'no command "bogus"'

# ---- unknown commands ----

run_n3 rnu rnu
expect_rc 2
expect_grep err '^n3ctl: no command "rnu"; did you mean "run"\?$'
expect_empty out
run_n3 verison verison
expect_rc 2
expect_grep err '^n3ctl: no command "verison"; did you mean "version"\?$'
run_n3 zzz zzzzzzzz
expect_rc 2
expect_grep err '^n3ctl: no command "zzzzzzzz"' "the unknown command named"
expect_no_grep err 'did you mean' "no suggestion for a name like no command"

# ---- version ----

run_n3 version version
expect_rc 0
expect_grep out '^n3ctl [0-9]+\.[0-9]+\.[0-9]+' "n3ctl and its version"
expect_grep out '^libuv [0-9.]+, cJSON [0-9.]+$' "the libraries' versions"
version=$(awk 'NR == 1 { print $2 }' version.out)
if [ -f "$TOP_BUILDDIR/config.h" ]; then
    built=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$TOP_BUILDDIR/config.h")
    expect_eq "n3ctl version against PACKAGE_VERSION in config.h" "$built" "$version"
fi
run_n3 version2 --version
expect_rc 0
cmp -s version.out version2.out || fail "n3ctl --version and n3ctl version differ"
ok
run_n3 versionjson version --json
expect_rc 0
jq_eq versionjson.out .n3ctl "$version"
jq_eq versionjson.out '.libuv | type' string
run_n3 versionarg version extra
expect_rc 2
expect_grep err 'takes no arguments'

# ---- Ctrl-C, SIGTERM, SIGHUP ----

cat >interrupt.json <<'EOF'
{"name": "interrupt", "steps": [
  {"name": "sleeper", "shell": "echo $$ >sleeper.pid; exec sleep 1000"},
  {"name": "after", "shell": "touch after-ran", "depends_on": ["sleeper"]}
]}
EOF

# interrupt NAME SIGNAL [n3ctl options]: run interrupt.json in the background, send
# SIGNAL once the sleeper runs, wait for n3ctl; status in $rc, the sleeper's pid in $spid.
interrupt() {
    local name=$1 sig=$2 pid
    shift 2
    rm -f sleeper.pid after-ran
    bg_n3 "$name" run "$@" interrupt.json
    pid=$BG_PID
    wait_until "step sleeper of interrupt.json to write sleeper.pid" file_has sleeper.pid '^[0-9]+$'
    spid=$(cat sleeper.pid)
    on_exit "kill_stray $spid sleep"
    pid_alive "$spid" || fail "the sleeper ($spid) is not running"
    kill "-$sig" "$pid"
    wait_exit "$pid" "n3ctl run (after SIG$sig)"
    LAST_CMD="$LAST_CMD (SIG$sig)"
    pid_gone "$spid" || fail "$LAST_CMD: n3ctl exited but its step's process $spid still runs:
$(ps -o pid,stat,args -p "$spid")"
    ok
    expect_absent after-ran "$LAST_CMD: step after ran though the run was stopped"
}

interrupt intjson INT --json
expect_rc 130
expect_grep err '^n3ctl: interrupted by SIGINT: stopped 1 running step \(sleeper\)' \
    "a line saying it stopped 1 running step, sleeper"
jq_eq intjson.out .status cancelled
jq_eq intjson.out '.block.steps[0] | "\(.name) \(.status)"' "sleeper cancelled"
jq_eq intjson.out '.block.steps[0].reason | test("interrupted")' true
jq_eq intjson.out '.block.steps[1] | "\(.name) \(.status) \(.attempts) \(has("exit_code"))"' "after cancelled 0 false"

interrupt int INT
expect_rc 130
expect_grep err '^n3ctl: interrupted by SIGINT: stopped 1 running step \(sleeper\)'
expect_grep out '^sleeper +cancelled +1 ' "the sleeper cancelled in the table"
expect_grep out '^after +cancelled +0 ' "step after cancelled in the table"
expect_grep out '^plan interrupt cancelled' "the summary line"

interrupt term TERM
expect_rc 143
expect_grep err '^n3ctl: interrupted by SIGTERM: stopped 1 running step \(sleeper\)'
expect_grep out '^sleeper +cancelled ' "the sleeper cancelled in the table"

interrupt hup HUP
expect_rc 129
expect_grep err '^n3ctl: interrupted by SIGHUP: stopped 1 running step \(sleeper\)'

# A step ignores TERM: KILL after kill_grace_seconds.
cat >deaf.json <<'EOF'
{"name": "deaf", "kill_grace_seconds": 0.2, "steps": [
  {"name": "deaf", "shell": "trap '' TERM; echo $$ >deaf.pid; exec sleep 1000"}
]}
EOF
rm -f deaf.pid
bg_n3 deaf run deaf.json
pid=$BG_PID
wait_until "step deaf to write deaf.pid" file_has deaf.pid '^[0-9]+$'
dpid=$(cat deaf.pid)
on_exit "kill_stray $dpid sleep"
kill -INT "$pid"
wait_exit "$pid" "n3ctl run deaf.json (a step ignoring TERM, kill_grace_seconds 0.2)"
expect_rc 130
expect_grep out '^deaf +cancelled +1 +[0-9.]+(ms|s) +SIGKILL ' "step deaf killed with SIGKILL after the grace period"
pid_gone "$dpid" || fail "$LAST_CMD: the step's process $dpid still runs after n3ctl exited"
ok

# A second Ctrl-C kills at once, without waiting for a long grace period.
sed 's/"kill_grace_seconds": 0.2/"kill_grace_seconds": 600/' deaf.json >deaf600.json
rm -f deaf.pid
bg_n3 deaf600 run deaf600.json
pid=$BG_PID
wait_until "step deaf to write deaf.pid" file_has deaf.pid '^[0-9]+$'
dpid=$(cat deaf.pid)
on_exit "kill_stray $dpid sleep"
kill -INT "$pid"
wait_until "n3ctl to say it is stopping the step after the first SIGINT" \
    file_has deaf600.err '^n3ctl: SIGINT: stopping'
pid_alive "$dpid" || fail "the step ignoring TERM died after one SIGINT, before its 600 s grace period"
ok
kill -INT "$pid"
wait_exit "$pid" "n3ctl run deaf600.json after a second SIGINT"
expect_rc 130
expect_grep err 'killing every running command now' "the second SIGINT acknowledged"
expect_grep out '^deaf +cancelled .* SIGKILL ' "step deaf killed with SIGKILL"
pid_gone "$dpid" || fail "$LAST_CMD: the step's process $dpid still runs after n3ctl exited"
ok

# Stopping a step stops its whole process group, children included.
cat >group.json <<'EOF'
{"name": "group", "kill_grace_seconds": 2, "steps": [
  {"name": "spawner", "shell": "sleep 1000 & echo $! >child.pid; echo $$ >spawner.pid; wait"}
]}
EOF
bg_n3 group run group.json
pid=$BG_PID
wait_until "step spawner to write spawner.pid" file_has spawner.pid '^[0-9]+$'
cpid=$(cat child.pid)
on_exit "kill_stray $cpid sleep"
kill -TERM "$pid"
wait_exit "$pid" "n3ctl run group.json after SIGTERM"
expect_rc 143
pid_gone "$cpid" || fail "$LAST_CMD: the child $cpid that step spawner started still runs after n3ctl exited"
ok

# ---- output files that are directories or links ----

# An existing directory as --metrics FILE: refused before the plan runs, like a
# missing one.
mkdir -p adir
rm -f ok-ran
run_n3 adir run --metrics adir ok.json
expect_rc 2
expect_absent ok-ran "run --metrics adir (a directory) ran the plan before refusing the file"

# --metrics through a symbolic link writes the file it points to and keeps the
# link (as root, --metrics /dev/stdout must not replace the /dev/stdout symlink).
rm -f real.prom link.prom
ln -s real.prom link.prom
run_n3 link run --metrics link.prom ok.json
expect_rc 0
[ -L link.prom ] || fail "run --metrics link.prom replaced the symbolic link link.prom by a file"
ok
expect_present real.prom "run --metrics link.prom did not write real.prom, the file link.prom points to"

# ---- the process n3ctl runs in ----

# SIGQUIT (Ctrl-\) stops the steps like SIGTERM does: nothing is orphaned.
interrupt quit QUIT
expect_rc 131
expect_grep err '^n3ctl: interrupted by SIGQUIT: stopped 1 running step \(sleeper\)'

# Started with SIGHUP ignored (nohup), n3ctl keeps it ignored: a hangup does not stop the run.
rm -f sleeper.pid after-ran
(trap '' HUP && exec "$N3CTL" run interrupt.json >nohup.out 2>nohup.err </dev/null) &
pid=$!
T_BG="$T_BG$pid "
wait_until "step sleeper of interrupt.json to write sleeper.pid" file_has sleeper.pid '^[0-9]+$'
spid=$(cat sleeper.pid)
on_exit "kill_stray $spid sleep"
kill -HUP "$pid"
kill -0 "$pid" 2>/dev/null || fail "n3ctl started with SIGHUP ignored died of SIGHUP"
pid_alive "$spid" || fail "a SIGHUP to n3ctl started with SIGHUP ignored stopped its step"
ok
kill -INT "$pid"
LAST=nohup LAST_CMD="n3ctl run interrupt.json (SIGHUP ignored, then SIGINT)"
wait_exit "$pid" "$LAST_CMD"
expect_rc 130
pid_gone "$spid" || fail "$LAST_CMD: the sleeper $spid still runs"
ok

# A reader that goes away early (| head -1) is not a reason to die: the metrics are still
# written in full, and no temporary file is left.
{
    printf '{"name": "wide", "steps": ['
    seq 1 300 | sed 's/.*/{"name": "s&", "exec": ["true"]}/' | paste -sd, -
    printf ']}\n'
} >wide.json
set +e
"$N3CTL" run -v --metrics wide.prom wide.json 2>wide.err | head -n 1 >wide.head
pipe_rc=("${PIPESTATUS[@]}")
set -e
LAST=wide LAST_CMD="n3ctl run -v --metrics wide.prom wide.json | head -n 1"
expect_eq "$LAST_CMD: n3ctl's exit status" 0 "${pipe_rc[0]}"
grep -q '^n3_tasks_total{status="succeeded"} 300$' wide.prom ||
    fail "$LAST_CMD: wide.prom does not count 300 steps:
$(show wide.prom)"
ok
ls wide.prom.tmp.* >/dev/null 2>&1 && fail "$LAST_CMD: a temporary metrics file was left behind"
ok

# Processes a step leaves behind get TERM when it ends; one that ignores TERM is waited for
# (the report comes first), and a Ctrl-C then kills it at once instead of after 600 s.
cat >leftover.json <<'EOF2'
{"name": "leftover", "kill_grace_seconds": 600, "steps": [
  {"name": "bg", "shell": "trap '' TERM; sleep 1000 >/dev/null 2>&1 & echo $! >leftover.pid"}
]}
EOF2
rm -f leftover.pid
bg_n3 leftover run leftover.json
pid=$BG_PID
wait_until "n3ctl to report the plan" file_has leftover.out '^plan leftover succeeded'
wait_until "n3ctl to say it waits for what the step left behind" \
    file_has leftover.err '^n3ctl: waiting up to .* for processes the steps left behind'
lpid=$(cat leftover.pid)
on_exit "kill_stray $lpid sleep"
pid_alive "$lpid" || fail "the process the step left behind (it ignores TERM) is gone before its grace period"
ok
kill -INT "$pid"
wait_exit "$pid" "n3ctl run leftover.json (SIGINT while waiting for leftovers)"
expect_rc 0
# KILL was sent as n3ctl left; on a busy machine the process may take a moment to be gone.
wait_until "the leftover $lpid to be killed after n3ctl left" pid_gone "$lpid"
ok
