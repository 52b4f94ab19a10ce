#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# What targets hold that n3ctl reads is bounded or counted: an audit log with lines that are
# not records (counted and said, exit 1; the local log too), a REVISION of 100 MB (its first
# 4096 bytes are read, and that it was cut is said, by release list, push and the state
# rebuilt from the disk).
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq

# ---- an audit log with lines that are not records: counted, exit 1 ----

mkdir -p "$T/d/.n3"
cat >"$T/local.json" <<EOF
{"version": 1, "environments": {"prod": {"targets": [
  {"name": "t1", "transport": "local", "deploy_path": "$T/d"}]}}}
EOF
zeros=$(printf '%064d' 0)
for k in 1 2; do
    printf '{"seq":%d,"time":"2026-01-01T00:00:0%dZ","actor":"alice@h","pid":1,"action":"lock.acquire","targets":["t1"],"result":"ok","detail":{},"prev":"%s"}\n' \
        "$k" "$k" "$zeros"
done >"$T/d/.n3/audit.log"
run_n3 good audit -c "$T/local.json" -t t1
expect_rc 0
records=$(grep -c '^ *[0-9]' "$T/good.out")
expect_eq "$LAST_CMD: records listed" 2 "$records"
{
    printf 'not a record\n\n'
    printf '{"seq": 9}\n'
    printf '{"seq":10,' # torn: no newline
} >>"$T/d/.n3/audit.log"
run_n3 skipped audit -c "$T/local.json" -t t1
expect_rc 1
expect_eq "$LAST_CMD: records listed" "$records" "$(grep -c '^ *[0-9]' "$T/skipped.out")"
expect_fgrep err "n3ctl: t1:.n3/audit.log: 4 lines are not an audit record, not listed; \`n3ctl audit verify -t t1\` says what is wrong with them"
run_n3 skippedj audit -c "$T/local.json" -t t1 --json
expect_rc 1
jq_eq "$T/skippedj.out" length "$records" "$LAST_CMD: the records in the JSON"
expect_fgrep err "4 lines are not an audit record"
run_n3 verify audit -c "$T/local.json" verify -t t1
expect_rc 1
expect_fgrep out "BROKEN" "verify says what is wrong"

# ---- a REVISION of 100 MB: its first bytes are read, and that it was cut is said ----

REPO=$T/app
make_app_repo "$REPO"
app_config "$T/app.json" "$REPO" "$T/r1"
run_n3 push1 release -c "$T/app.json" push v1.0.0
expect_rc 0
REV=$T/r1/releases/v1.0.0/REVISION
cp "$REV" "$T/REVISION.ours"
truncate -s 100M "$REV" # n3ctl's three lines, then 100 MB of NUL bytes (sparse)
run_n3 list release -c "$T/app.json" list
expect_rc 0
expect_grep out '^t1 +v1\.0\.0 +[0-9a-f]{9} ' "v1.0.0 listed, with its commit"
expect_fgrep err "releases/v1.0.0/REVISION is larger than 4096 bytes (n3ctl writes three short lines): only its first 4096 bytes were read"
run_n3 push2 release -c "$T/app.json" push v1.0.0
expect_rc 0
expect_grep err '^  t1: already there ' "the release found there, from REVISION's first bytes"
expect_fgrep err "releases/v1.0.0/REVISION is larger than 4096 bytes"
# No state.json: the state is rebuilt from the disk, REVISION's commit and sha256 taken.
rm "$T/r1/.n3/state.json"
run_n3 listj release -c "$T/app.json" list --json
expect_rc 0
jq_eq "$T/listj.out" '.targets[0].releases[0] | "\(.version) \(.sha256 | length)"' "v1.0.0 64" "$LAST_CMD: rebuilt with REVISION's sha256"
expect_fgrep err "releases/v1.0.0/REVISION is larger than 4096 bytes"

# ---- the local audit log: the same (the pushes above wrote it) ----

printf 'garbage\n' >>"$T/state/n3ctl/audit.log"
run_n3 localskip audit
expect_rc 1
expect_fgrep err "n3ctl: $T/state/n3ctl/audit.log: 1 line is not an audit record, not listed; \`n3ctl audit verify\` says what is wrong with it"

# ---- hosts: a state.json of 3 MiB is read no further than a state can be ----

mkdir -p "$T/big/.n3"
cat >"$T/big.json" <<EOF
{"version": 1, "environments": {"prod": {"targets": [
  {"name": "t1", "transport": "local", "deploy_path": "$T/big"}]}}}
EOF
head -c $((3 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$T/big/.n3/state.json"
run_n3 bighosts hosts -c "$T/big.json" --json
expect_rc 0
jq_eq "$T/bighosts.out" '.targets[0] | "\(.cpus) \(.os)"' "$(nproc) $(uname -sr)" "$LAST_CMD: the facts, not pushed out by the state file"
