#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Request figures in `n3ctl slots` through the real pieces: the sample app's version with 5 %
# errors (v1.2.0-errors) started in a local target's blue slot, HAProxy in front of it, and the
# load generator sending 200 requests a second through HAProxy. The prometheus source (the
# app's /metrics) gives a rate near what was sent, an error rate near 5 % and a p95; the haproxy
# source (HAProxy's counters, through the router) the same rate and error rate and no p95
# (null, never 0); an idle instance has a rate of 0 and no error rate; a stopped one has no
# figures at all; and an instance restarted under a --watch (its counters start again from 0)
# never gives a negative rate.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
: "${N3LOAD:=$TOP_BUILDDIR/tests/load/n3load}"
[ -x "$N3LOAD" ] || fail "no n3load binary at '$N3LOAD'"
T_DEADLINE=30
RATE=200

REPO=$T/app
make_sample_app_repo "$REPO"
D=$T/t1
mkdir -p "$D"
stop_instances "$D"
free_ports 3
FE=${FREE_PORTS[0]} BLUE=${FREE_PORTS[1]} GREEN=${FREE_PORTS[2]}
sample_app_config "$T/plain.json" "$REPO" "$D"
jq --argjson b "$BLUE" --argjson g "$GREEN" --arg sock "$T/lb/admin.sock" --arg state "$T/lb/state" '
    .service = {"ports": {"blue": $b, "green": $g},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                "ready_timeout_seconds": 10, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2,
                "timeout_seconds": 0.2, "healthy_threshold": 2}]
  | .router = {"type": "haproxy", "socket": $sock, "backend": "app", "state_file": $state}' \
    "$T/plain.json" >"$T/plain.json.new" && mv "$T/plain.json.new" "$T/plain.json"
# The two sources (the haproxy one for the environment only), read every 250 ms.
PROM=$T/n3.json HAP=$T/hap.json
jq '.metrics = {"source": "prometheus", "window_s": 10, "interval_ms": 250}' "$T/plain.json" >"$PROM"
jq '.environments.prod.metrics = {"source": "haproxy", "window_s": 10, "interval_ms": 250}' \
    "$T/plain.json" >"$HAP"
haproxy_start lb "$FE" "t1_blue 127.0.0.1:$BLUE 100" "t1_green 127.0.0.1:$GREEN 0"

# between FILE FILTER LOW HIGH WHAT: jq's number is within [LOW, HIGH].
between() {
    local got
    got=$(jq -r "$2" "$1") || fail "jq '$2' failed on $1"
    awk -v v="$got" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v != "null" && v + 0 >= lo && v + 0 <= hi) }' ||
        fail "$5: expected $2 within [$3, $4], got $got: $(jq -c '.instances[0] | del(.reason)' "$1")"
    ok
}

# ---- no metric source: the figures are null, the table has no columns for them ----

run_n3 start-blue slot start -c "$PROM" t1 blue v1.2.0-errors
expect_rc 0
expect_grep err 't1: v1.2.0-errors started'
run_n3 plain slots -c "$T/plain.json" --json
expect_rc 0
jq_eq "$T/plain.out" '.metrics' null
jq_eq "$T/plain.out" '[.instances[] | has("req_s") and .req_s == null and .error_rate == null and
    .p95_ms == null and .samples == null] | all' true "without a metric source"
run_n3 plain-text slots -c "$T/plain.json"
expect_rc 0
expect_grep out '^TARGET +SLOT +VERSION +STATE +PID +PORT +HEALTH +WEIGHT +REASON$'

# ---- idle: a rate of 0 (known), no error rate, no latency; nothing for the stopped slot ----

run_n3 idle slots -c "$PROM" --json --rate-wait 0.5
expect_rc 0
jq_eq "$T/idle.out" '.metrics.source' prometheus
jq_eq "$T/idle.out" '.instances[0].req_s' 0 "an idle instance (probes and scrapes are not traffic)"
jq_eq "$T/idle.out" '.instances[0].samples' 0
jq_eq "$T/idle.out" '.instances[0].error_rate' null
jq_eq "$T/idle.out" '.instances[0].p95_ms' null
jq_eq "$T/idle.out" '.instances[1].state' stopped
jq_eq "$T/idle.out" '.instances[1].req_s' null "a stopped instance"
# Why: its scrape failed (refused, or, when another test's server took the free port since,
# whatever answered there), with its URL.
jq -e --arg url "http://127.0.0.1:$GREEN/metrics" \
    '.instances[1].metrics_why | startswith("the last read failed: " + $url + ": ")' "$T/idle.out" >/dev/null ||
    fail "the stopped instance's figures do not say why: $(jq -c '.instances[1]' "$T/idle.out")"
ok

# ---- under load: RATE requests a second through HAProxy, 5 % of them answered 500 ----

bg_bin load "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate "$RATE" --duration 60 --json \
    --out "$T/load.jsonl"
LOAD=$BG_PID
wait_until "the load to start" file_has "$T/load.jsonl" '"type":"request"'

run_n3 prom slots -c "$PROM" --json --rate-wait 2
expect_rc 0
between "$T/prom.out" '.instances[0].req_s' $((RATE / 2)) $((RATE * 3 / 2)) "prometheus: the rate sent"
between "$T/prom.out" '.instances[0].error_rate' 0.015 0.10 "prometheus: the 5 % of errors"
between "$T/prom.out" '.instances[0].p95_ms' 0.001 2500 "prometheus: a p95"
between "$T/prom.out" '.instances[0].samples' $((RATE / 2)) $((RATE * 4)) "prometheus: the requests it rests on"
between "$T/prom.out" '.instances[0].metrics_span_s' 1.5 4 "prometheus: the span of the two reads"
jq_eq "$T/prom.out" '.instances[1].req_s' null "the stopped green slot"

run_n3 prom-text slots -c "$PROM"
expect_rc 0
expect_grep out '^TARGET +SLOT +VERSION +STATE +PID +PORT +HEALTH +WEIGHT +REQ/S +ERR% +P95 +REASON$'
expect_grep out '^t1 +blue( \*)? +v1.2.0-errors +running +[0-9]+ +[0-9]+ +healthy +100 +[0-9]+\.[0-9] +[0-9]+\.[0-9]% +[0-9.]+m?s'
expect_grep out "^t1 +green +- +stopped +- +$GREEN +- +0 +- +- +-"
expect_grep out '^Requests \(prometheus\): over 1 s between two reads \(--rate-wait\)$'

run_n3 hap slots -c "$HAP" --json --rate-wait 2
expect_rc 0
jq_eq "$T/hap.out" '.metrics.source' haproxy
between "$T/hap.out" '.instances[0].req_s' $((RATE / 2)) $((RATE * 3 / 2)) "haproxy: the rate sent"
between "$T/hap.out" '.instances[0].error_rate' 0.015 0.10 "haproxy: the 5 % of errors"
between "$T/hap.out" '.instances[0].samples' $((RATE / 2)) $((RATE * 4)) "haproxy: the requests it rests on"
jq_eq "$T/hap.out" '.instances[0].p95_ms' null "haproxy has no latencies: null, not 0"
jq -e '.instances[0].metrics_why | test("no latencies")' "$T/hap.out" >/dev/null ||
    fail "haproxy's unknown p95 does not say why: $(jq -c '.instances[0]' "$T/hap.out")"
ok
# HAProxy counts the green server too: no request, a rate of 0.
jq_eq "$T/hap.out" '.instances[1].req_s' 0 "haproxy: the green server"

# ---- a restart under a watch: the counters start again, the rate is never negative ----

bg_n3 watch slots -c "$PROM" --watch --json --interval 1
WATCH=$BG_PID
# watch_has N FILTER: the watch has printed N lines, and its last one matches FILTER.
watch_has() {
    [ "$(wc -l <"$T/watch.out")" -ge "$1" ] &&
        tail -n 1 "$T/watch.out" | jq -e "$2" >/dev/null 2>&1
}
wait_until "the watch to show the rate" watch_has 2 '.instances[0].req_s > 0'
OLD=$(cut -d' ' -f1 "$D/.n3/run/blue.pid")
kill -TERM "$OLD"
wait_until "the blue instance ($OLD) to stop" pid_gone "$OLD"
run_n3 restart slot start -c "$PROM" t1 blue
expect_rc 0
NEW=$(cut -d' ' -f1 "$D/.n3/run/blue.pid")
[ "$NEW" != "$OLD" ] || fail "the blue instance was not restarted (pid $NEW)"
ok
wait_until "the watch to see the restart" watch_has 1 \
    '.instances[0].metrics_resets >= 1 and .instances[0].req_s > 0'
wait_until "the watch to see the rate again" watch_has 1 \
    ".instances[0].req_s > $((RATE / 2)) and .instances[0].req_s < $((RATE * 3 / 2))"
kill -INT "$WATCH"
wait_exit "$WATCH" "the watch after Ctrl-C"
expect_eq "the watch's exit status after Ctrl-C" 0 "$rc"
# Every line of the watch: figures that are null or in range, never a negative rate.
jq -se 'length >= 3 and all(.[]; .instances | all(.[];
        (.req_s == null or .req_s >= 0) and (.samples == null or .samples >= 0) and
        (.error_rate == null or (.error_rate >= 0 and .error_rate <= 1))))' "$T/watch.out" >/dev/null ||
    fail "the watch printed figures out of range: $(jq -c '[.instances[0] | {req_s, samples, error_rate, metrics_resets}]' "$T/watch.out")"
ok

kill -TERM "$LOAD"
wait_exit "$LOAD" "n3load after TERM"
expect_eq "n3load's exit status" 0 "$rc"

# ---- bad input ----

run_n3 bad-wait slots -c "$PROM" --rate-wait abc
expect_rc 2
expect_grep err -- '--rate-wait wants seconds from 0 to 60'
jq '.metrics.source = "prometeus"' "$PROM" >"$T/typo.json"
run_n3 typo slots -c "$T/typo.json"
expect_rc 2
expect_grep err 'metrics.source: no metric source "prometeus"; did you mean "prometheus"\? \(the sources: prometheus, haproxy\)'
