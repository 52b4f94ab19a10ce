#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# The load generator (tests/load/n3load) measured against real nginx on 127.0.0.1: what it
# reports must be what happened, checked against nginx's own access logs where nginx keeps
# them. The rate it keeps; the shares of a weighted router (90/10); an error fraction; a
# server that stops in the middle of a run (connection errors, with their times); a slow
# server (open loop: its latency shows, requests keep leaving on schedule, the pool stays
# bounded); the client itself falling behind (said so); marks on its clock and the time of a
# switch measured with them; SIGINT and SIGTERM (the summary of what it did); bad arguments.
. "$(dirname "$0")/lib.sh"

t_start
need_jq
: "${N3LOAD:=$TOP_BUILDDIR/tests/load/n3load}"
[ -x "$N3LOAD" ] || fail "no n3load binary at '$N3LOAD' (set N3LOAD, or build it: make -C _build/dev tests/load/n3load)"

run_load() { run_bin "$1" "$N3LOAD" "${@:2}"; }
bg_load() { bg_bin "$1" "$N3LOAD" "${@:2}"; }

# check_jq FILE FILTER WHAT: jq -e FILTER on FILE (slurped: an array of the records) is true.
check_jq() {
    local got
    got=$(jq -se "$2" "$1" 2>&1) || fail "$3: expected $2 on $1, got: $got
$(show "$1")"
    ok
}

# summary FILE FILTER: FILTER applied to the summary record (the last line) of FILE.
summary() {
    tail -n 1 "$1" | jq -r "select(.type == \"summary\") | $2"
}

# The records agree with the summary: every scheduled request has exactly one record, in
# order of seq with none missing, and the summary's counts are those of the records.
check_consistent() {
    local f=$1
    check_jq "$f" '.[-1].type == "summary" and .[0].type == "start"' "$f starts and ends right"
    check_jq "$f" '[.[] | select(.type == "request") | .seq] | sort == [range(0; length)]' \
        "$f has one record per scheduled request"
    check_jq "$f" '([.[] | select(.type == "request")] | length) == .[-1].scheduled' \
        "$f: as many records as the summary's scheduled requests"
    check_jq "$f" '([.[] | select(.type == "request" and .t_sent != null)] | length) == .[-1].sent' \
        "$f: the summary's sent requests are those with a t_sent"
    check_jq "$f" '([.[] | select(.type == "request" and .error == null)] | length) == .[-1].answered' \
        "$f: the summary's answered requests are those without an error"
    check_jq "$f" '([.[] | select(.type == "request" and (.error != null or .status < 200 or .status >= 400))] | length)
        == .[-1].errors_total' "$f: the summary's errors are those of the records"
    check_jq "$f" '([.[] | select(.type == "request" and .new_conn)] | length) == .[-1].new_connections' \
        "$f: the summary's new connections are those of the records"
    # The latency is from the time a request was due, to the microsecond the record gives.
    check_jq "$f" 'all(.[] | select(.type == "request");
        ((.t_done - .t_sched) * 1000 - .latency_ms | fabs) < 0.002)' \
        "$f: latency_ms is t_done - t_sched"
    check_jq "$f" 'all(.[] | select(.type == "request" and .t_sent != null);
        .t_sched <= .t_sent and (.t_wire == null or .t_sent <= .t_wire) and
        (.t_wire // .t_sent) <= .t_done)' "$f: each request was due, sent, dispatched, done, in order"
    # Per version: the counts of the records.
    check_jq "$f" '[.[] | select(.type == "request" and .error == null)] as $r
        | all(.[-1].versions[]; .version as $v | .count == ([$r[] | select(.version == $v)] | length)
            and .errors == ([$r[] | select(.version == $v and (.status < 200 or .status >= 400))] | length))' \
        "$f: each version's count and errors are those of its records"
    check_jq "$f" '.[-1].latency_ms | .p50 <= .p95 and .p95 <= .p99 and .p99 <= .max' \
        "$f: quantiles in order"
    check_jq "$f" '.[-1] | (.rate_kept and .behind == null) or ((.rate_kept | not) and (.behind | length) > 0)' \
        "$f: rate_kept false exactly when there is a reason"
}

# ---- bad arguments: exit 2, a message that says what is wrong, nothing written ----
bad_args() { # ERE ARGS...
    local re=$1
    shift
    run_load bad --out "$T/bad.jsonl" "$@"
    expect_rc 2
    expect_grep err "^n3load: $re"
    expect_empty out
    expect_absent "$T/bad.jsonl" "n3load $*: wrote $T/bad.jsonl although its arguments are bad"
}
bad_args '--url is required' --rate 10
bad_args '--rate is required' --url http://127.0.0.1:1/
bad_args "--rate: 'abc' is not a number" --url http://127.0.0.1:1/ --rate abc
bad_args '--rate: 0 is out of range' --url http://127.0.0.1:1/ --rate 0
bad_args '--duration: -1 is out of range' --url http://127.0.0.1:1/ --rate 1 --duration -1
bad_args "--connections: '1.5' is not a whole number" --url http://127.0.0.1:1/ --rate 1 --connections 1.5
bad_args '--connections: 0 is out of range' --url http://127.0.0.1:1/ --rate 1 --connections 0
bad_args "--timeout: '' is not a number" --url http://127.0.0.1:1/ --rate 1 --timeout ''
bad_args "--url: 'ftp://127.0.0.1/' is not an http:// or https:// URL" --url ftp://127.0.0.1/ --rate 1
bad_args "--url: 'http://\[' is not a URL" --url 'http://[' --rate 1
bad_args "unknown option '--bogus'" --url http://127.0.0.1:1/ --rate 1 --bogus
bad_args '--rate needs a value' --url http://127.0.0.1:1/ --rate
bad_args "unexpected argument 'extra'" --url http://127.0.0.1:1/ --rate 1 extra
bad_args "--header-version: 'X Bad' is not a header name" --url http://127.0.0.1:1/ --rate 1 --header-version 'X Bad'
bad_args '--max-inflight 2 is below --connections 4' --url http://127.0.0.1:1/ --rate 1 --connections 4 --max-inflight 2
: >"$T/plain"
bad_args "--mark-fifo: $T/plain exists and is not a FIFO" --url http://127.0.0.1:1/ --rate 1 --mark-fifo "$T/plain"
run_load bad --url http://127.0.0.1:1/ --rate 1 --out "$T/no/such/dir/x.jsonl"
expect_rc 2
expect_grep err "^n3load: --out: cannot write $T/no/such/dir/x.jsonl: No such file or directory"
run_load help --help
expect_rc 0
expect_grep out '^usage: n3load --url URL --rate R'

# ---- the servers: one nginx with the two versions, a 90/10 router of them, a server that
# fails 10 % of its requests, and a slow one (limit_rate: 1000 bytes a second, and an answer
# of more than that takes a second at least) ----
SLOW_BODY=$(printf 'x%.0s' $(seq 1500))
gen_main() { # DIR V1 V2 ROUTER FLAKY SLOW
    local d=$1
    cat <<EOF
    log_format n3upstream '\$upstream_addr \$status';
    log_format n3status '\$status';
    server { listen 127.0.0.1:$2; add_header X-N3-Version v1 always; add_header X-N3-Slot blue always;
             location / { return 200 "v1 blue\n"; } }
    server { listen 127.0.0.1:$3; add_header X-N3-Version v2 always; add_header X-N3-Slot green always;
             location / { return 200 "v2 green\n"; } }
    upstream slots { server 127.0.0.1:$2 weight=9; server 127.0.0.1:$3 weight=1; keepalive 16; }
    server { listen 127.0.0.1:$4; access_log $d/router.log n3upstream;
             location / { proxy_pass http://slots; proxy_http_version 1.1;
                          proxy_set_header Connection ""; } }
    split_clients "\${request_id}" \$n3fail { 10% 1; * ""; }
    server { listen 127.0.0.1:$5; access_log $d/flaky.log n3status;
             add_header X-N3-Version flaky always;
             location / { if (\$n3fail) { return 500 "failed\n"; } return 200 "ok\n"; } }
    server { listen 127.0.0.1:$6; add_header X-N3-Version slow always;
             location / { limit_rate 1000; return 200 "$SLOW_BODY\n"; } }
EOF
}
nginx_start main gen_main 5
V1=${NGINX_PORTS[0]} V2=${NGINX_PORTS[1]} ROUTER=${NGINX_PORTS[2]} FLAKY=${NGINX_PORTS[3]} SLOW=${NGINX_PORTS[4]}

# ---- the rate kept, and the shares of the router measured: 200 req/s for 5 s ----
run_load rate --url "http://127.0.0.1:$ROUTER/" --rate 200 --duration 5 --out "$T/rate.jsonl" --json
expect_rc 0
f=$T/rate.jsonl
check_consistent "$f"
check_jq "$f" '.[-1].scheduled == 1000 and .[-1].stopped_by == "duration"' "1000 requests due in 5 s at 200/s"
# Generous, as the machine is shared: at least 90 % of the requests left within the 5 s.
check_jq "$f" '[.[] | select(.type == "request" and .t_sent != null and .t_sent < 5)] | length >= 900' \
    "at least 900 requests sent within the 5 s"
check_jq "$f" '.[-1].achieved_rate >= 180' "an achieved rate of at least 180/s"
check_jq "$f" '.[-1].answered == 1000 and .[-1].errors_total == 0' "every request answered"
check_jq "$f" '.[-1].new_connections >= 1 and .[-1].new_connections <= 16' "at most 16 connections"
check_jq "$f" '.[-1].versions | map({(.version): .share}) | add
    | (.v1 - 0.9 | fabs) <= 0.03 and (.v2 - 0.1 | fabs) <= 0.03' "shares of 90/10 within 3 points"
check_jq "$f" 'all(.[] | select(.type == "request"); .slot == (if .version == "v1" then "blue" else "green" end))' \
    "the slot header recorded with the version"
# What nginx itself says it did: each version's count is the number of requests the router sent there.
want_v1=$(grep -c "^127.0.0.1:$V1 200\$" "$T/main/router.log") || :
want_v2=$(grep -c "^127.0.0.1:$V2 200\$" "$T/main/router.log") || :
expect_eq "the router's log: requests in all" 1000 "$(wc -l <"$T/main/router.log")"
expect_eq "v1's count against the router's log" "$want_v1" "$(summary "$f" '.versions[] | select(.version == "v1") | .count')"
expect_eq "v2's count against the router's log" "$want_v2" "$(summary "$f" '.versions[] | select(.version == "v2") | .count')"
# The summary on stdout is the record's, with --json.
expect_eq "the --json summary on stdout" "$(tail -n 1 "$f")" "$(cat "$T/rate.out")"

# ---- an error fraction measured: the flaky server, 1000 requests ----
# (A header's name is case-insensitive: nginx sends X-N3-Version, asked for in other letters.)
run_load flaky --url "http://127.0.0.1:$FLAKY/" --rate 500 --duration 2 --out "$T/flaky.jsonl" \
    --header-version x-n3-VERSION
expect_rc 0
f=$T/flaky.jsonl
check_consistent "$f"
check_jq "$f" '.[-1].versions | length == 1 and .[0].version == "flaky" and .[0].count == 1000' \
    "every answer counted for its version"
want=$(grep -c '^500$' "$T/main/flaky.log") || :
expect_eq "the flaky server's log: requests in all" 1000 "$(wc -l <"$T/main/flaky.log")"
expect_eq "5xx counted against the server's log" "$want" "$(summary "$f" '.errors.http_5xx')"
expect_eq "the version's errors" "$want" "$(summary "$f" '.versions[0].errors')"
check_jq "$f" '.[-1].errors.http_5xx as $e | $e >= 60 and $e <= 140' "about 10 % of 1000 failed"
expect_grep out 'http_5xx '"$want"'' "the error count in the text summary"

# ---- a server that stops in the middle of a run: connection errors, with their times ----
gen_victim() { # DIR PORT
    printf '    server { listen 127.0.0.1:%s; add_header X-N3-Version v1 always;\n' "$2"
    printf '             location / { return 200 "v1\\n"; } }\n'
}
nginx_start victim gen_victim 1
VICTIM=${NGINX_PORTS[0]}
f=$T/victim.jsonl
bg_load victim --url "http://127.0.0.1:$VICTIM/" --rate 100 --out "$f" --mark-fifo "$T/victim.fifo"
load_pid=$BG_PID
wait_lines "$f" '"status":200' 30 "30 answers before the server stops"
echo stopping >"$T/victim.fifo"
wait_lines "$f" '"label":"stopping"' 1 "the mark before the stop"
nginx_stop victim
echo stopped >"$T/victim.fifo"
wait_lines "$f" '"error":"connect"' 20 "connection errors after the server stopped"
kill -TERM "$load_pid"
wait_exit "$load_pid" "n3load"
expect_eq "n3load's exit status after SIGTERM" 0 "$rc"
check_consistent "$f"
check_jq "$f" '.[-1].stopped_by == "SIGTERM"' "stopped by SIGTERM"
check_jq "$f" '(map(select(.type == "mark" and .label == "stopping")) | first.t) as $m
    | all(.[] | select(.type == "request" and .error != null); .t_done >= $m)' \
    "no error before the server was stopped"
check_jq "$f" '(map(select(.type == "mark" and .label == "stopped")) | first.t) as $m
    | [.[] | select(.type == "request" and .t_sched > $m)] | length >= 20 and
      all(.[]; .error == "connect" and .status == null and (.t_done | type) == "number"
          and (.detail | test("connect|refused"; "i")))' \
    "every request after the stop a connection error, with its time and why"
check_jq "$f" '.[-1].errors.connect == ([.[] | select(.type == "request" and .error == "connect")] | length)
    and .[-1].errors.connect >= 20' "the connection errors counted in the summary"
check_jq "$f" '.[-1].not_sent == 0' "every request sent: the errors are the server's, not the client's"

# ---- a slow server, open loop: 10 requests due in 0.5 s, 2 connections, >= 1 s an answer ----
f=$T/slow.jsonl
run_load slow --url "http://127.0.0.1:$SLOW/" --rate 20 --duration 0.5 --connections 2 \
    --timeout 30000 --out "$f"
expect_rc 0
check_consistent "$f"
check_jq "$f" '.[-1].answered == 10 and .[-1].new_connections == 2' "10 answers over 2 connections, no more"
# Open loop: all 10 were taken up before the first answer came back (>= 1 s after the first).
check_jq "$f" '[.[] | select(.type == "request")] | (map(.t_done) | min) as $first
    | all(.[]; .t_sent < $first)' "every request taken up on schedule, not after an answer"
# With 2 connections and 1 s an answer, the last ones waited 4 s for a connection: that wait
# is in their latency (from when they were due), and the reason the rate was not kept.
check_jq "$f" '.[-1].latency_ms.max >= 3000' "the wait for a connection in the latency"
check_jq "$f" '[.[] | select(.type == "request" and .t_wire - .t_sent >= 0.5)] | length >= 6' \
    "t_wire shows the wait for a connection"
check_jq "$f" '(.[-1].rate_kept | not) and (.[-1].behind | test("waited more than 10 ms for one of the 2 connections"))' \
    "the summary says the pool held the requests back"
expect_grep out 'target NOT kept: .*for one of the 2 connections'
# With enough connections the server's own second shows as it is.
f=$T/slow20.jsonl
run_load slow20 --url "http://127.0.0.1:$SLOW/" --rate 20 --duration 0.5 --connections 20 --out "$f"
expect_rc 0
check_consistent "$f"
check_jq "$f" '.[-1].answered == 10 and .[-1].latency_ms.p50 >= 900 and .[-1].queued == 0' \
    "a slow server's latency, with no wait for a connection"

# ---- the client itself falling behind: stopped (SIGSTOP) for 0.8 s, its timeout 0.3 s ----
f=$T/behind.jsonl
bg_load behind --url "http://127.0.0.1:$V1/" --rate 200 --duration 2 --timeout 300 --out "$f"
load_pid=$BG_PID
wait_lines "$f" '"status":200' 20 "answers before the client stops"
kill -STOP "$load_pid"
sleep 0.8 # the fault itself: the client does not run for this long
kill -CONT "$load_pid"
wait_exit "$load_pid" "n3load"
expect_eq "n3load's exit status" 0 "$rc"
check_consistent "$f"
check_jq "$f" '.[-1] | (.rate_kept | not) and .errors.behind >= 30 and .late >= 10 and .lag_ms.max >= 100' \
    "requests not sent and sent late, counted"
check_jq "$f" '.[-1].behind | test("not sent \\(.*the client was behind by more than the 300 ms timeout") and
    test("the client fell behind: [0-9]+ requests started more than 10 ms late")' "the summary says why"
check_jq "$f" 'all(.[] | select(.type == "request" and .error == "behind"); .t_sent == null and .t_done - .t_sched >= 0.3)' \
    "a request not sent has its time, and no send time"

# ---- SIGINT: stops sending, prints the summary of what it did ----
f=$T/int.jsonl
bg_load int --url "http://127.0.0.1:$ROUTER/" --rate 100 --out "$f"
load_pid=$BG_PID
wait_lines "$f" '"status":200' 20 "answers before SIGINT"
kill -INT "$load_pid"
wait_exit "$load_pid" "n3load"
expect_eq "n3load's exit status after SIGINT" 0 "$rc"
check_consistent "$f"
check_jq "$f" '.[-1].stopped_by == "SIGINT" and .[-1].scheduled >= 20' "stopped by SIGINT"
check_jq "$f" '(map(select(.type == "mark" and .label == "SIGINT")) | first.t) as $m
    | $m != null and all(.[] | select(.type == "request"); .t_sched <= $m)' \
    "nothing scheduled after the SIGINT"
expect_grep out "^n3load: http://127.0.0.1:$ROUTER/ at 100 req/s .*stopped by SIGINT"
expect_grep out "^  requests: $(summary "$f" .scheduled) scheduled, $(summary "$f" .sent) sent, "
expect_grep out '^  v1 +[0-9]+ +[0-9.]+%'

# ---- marks, and a switch measured with them: a router on v1 only, moved to v2 ----
WEIGHTS="server 127.0.0.1:$V1; server 127.0.0.1:$V2 down;"
gen_switch() { # DIR PORT
    printf '    upstream slots { %s keepalive 16; }\n' "$WEIGHTS"
    printf '    server { listen 127.0.0.1:%s;\n' "$2"
    printf '             location / { proxy_pass http://slots; proxy_http_version 1.1;\n'
    printf '                          proxy_set_header Connection ""; } }\n'
}
nginx_start switch gen_switch 1
f=$T/switch.jsonl
bg_load switch --url "http://127.0.0.1:${NGINX_PORTS[0]}/" --rate 200 --out "$f" --mark-fifo "$T/switch.fifo"
load_pid=$BG_PID
wait_lines "$f" '"version":"v1"' 20 "answers from v1"
kill -USR1 "$load_pid"
wait_lines "$f" '"label":"SIGUSR1"' 1 "the SIGUSR1 mark"
echo "switch to v2" >"$T/switch.fifo"
wait_lines "$f" '"label":"switch to v2"' 1 "the FIFO mark"
WEIGHTS="server 127.0.0.1:$V1 down; server 127.0.0.1:$V2;"
nginx_reload switch
wait_lines "$f" '"version":"v2"' 100 "answers from v2 after the switch"
kill -TERM "$load_pid"
wait_exit "$load_pid" "n3load"
expect_eq "n3load's exit status" 0 "$rc"
check_consistent "$f"
check_jq "$f" '[.[] | select(.type == "mark")] | map(.label) == ["SIGUSR1", "switch to v2", "SIGTERM"]' \
    "the marks, in order"
check_jq "$f" '[.[] | select(.type == "mark")] | .[0].source == "signal" and .[1].source == "fifo"
    and .[0].t <= .[1].t' "the marks' sources and times"
# A mark's next_seq: the requests before it were due before it, the one after it, after.
check_jq "$f" '(map(select(.type == "mark" and .source == "fifo")) | first) as $m
    | all(.[] | select(.type == "request"); if .seq < $m.next_seq then .t_sched <= $m.t else .t_sched > $m.t end)' \
    "the mark between the requests due before and after it"
check_jq "$f" '(map(select(.type == "mark" and .source == "fifo")) | first.t) as $m
    | all(.[] | select(.type == "request" and .version == "v2"); .t_wire > $m)' \
    "no answer from v2 before the switch was asked"
jq -s --arg mark "switch to v2" --arg version v2 -f "$TOP_SRCDIR/tests/load/switch-time.jq" "$f" \
    >"$T/switch-time.json" || fail "switch-time.jq failed on $f:
$(show "$T/switch-time.json")"
check_jq "$T/switch-time.json" '.[0] | .switch_ms >= 0 and .after_mark >= 100
    and (.resolution_ms == null or .resolution_ms >= 0)' "the switch time measured from the mark"
# The definition holds on the records: from switched_at on, v2 only; just before it, not.
sw=$(jq -r .switched_at "$T/switch-time.json")
check_jq "$f" "all(.[] | select(.type == \"request\" and (.t_wire // .t_sent) >= $sw); .version == \"v2\")" \
    "only v2 from the switch on"
[ ! -e "$T/switch.fifo" ] || fail "n3load left its FIFO $T/switch.fifo behind"
ok
