#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2059 # jq filters in single quotes; raw requests are printf formats
# The sample app (examples/app/) through the real pieces: its git repository of good and bad
# tags (make-repo), released with `n3ctl release push` and the build hook compiling it, the
# built binary started from the release directory, and curl (and raw sockets) against it:
# every endpoint and header, keep-alive, pipelining, HEAD, 404/405/400/408/414/431, the
# metrics text (counters, cumulative histograms, promtool), each bad tag really bad (errors
# over 1,000 requests, latency, health, crash, slow start), the graceful stop on TERM, HUP.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
[ -x "$N3APP" ] || fail "no sample app at '$N3APP' (set N3APP, or build it: make -C _build/dev examples/n3app)"
command -v timeout >/dev/null 2>&1 || skip "timeout is not installed (Debian package coreutils)"

REPO=$T/app
make_sample_app_repo "$REPO"
mkdir -p "$T/t1"
sample_app_config "$T/n3.json" "$REPO" "$T/t1"
CFG=$T/n3.json
REL=$T/t1/releases # as the app finds it from /proc/self/exe: no symbolic link in it
mkdir -p "$REL" && REL=$(cd "$REL" && pwd -P)

# ---- helpers ----

# http NAME URL [curl options...]: GET URL; headers in $T/NAME.h, body in $T/NAME.b, status
# in $code.
http() {
    local name=$1 url=$2
    shift 2
    code=$(curl -sS --max-time 20 -D "$T/$name.h" -o "$T/$name.b" -w '%{http_code}' "$@" "$url") ||
        fail "curl $* $url failed: $(cat "$T/$name.b" 2>/dev/null)"
}

# header NAME FIELD: the value of FIELD in $T/NAME.h (the first one, case-insensitive name).
header() {
    tr -d '\r' <"$T/$1.h" | awk -v f="$2" 'BEGIN { f = tolower(f) ": " }
        index(tolower($0), f) == 1 { print substr($0, length(f) + 1); exit }'
}

expect_code() { # WHAT WANT
    [ "$code" = "$2" ] || fail "$1: expected status $2, got $code; headers:
$(show "$T/$LASTH.h")
  body:
$(show "$T/$LASTH.b")"
    ok
}

# raw NAME PORT FORMAT: send printf FORMAT on a new connection, read until the server closes
# it (10 s at most: then the output is cut, and the checks on it fail); in $T/NAME.raw.
raw() {
    exec 3<>"/dev/tcp/127.0.0.1/$2" || fail "cannot connect to 127.0.0.1:$2"
    printf "$3" >&3
    timeout 10 cat <&3 | tr -d '\r' >"$T/$1.raw" || :
    exec 3<&- 3>&-
}

# metric FILE SERIES: the value of SERIES (name and labels as the text writes them), or empty.
metric() {
    awk -v k="$2" '$1 == k { print $2; exit }' "$1"
}

# check_exposition FILE: Prometheus text format 0.0.4: every family has HELP and TYPE before
# its samples, every sample is NAME{LABELS} VALUE, and promtool (the Prometheus server's own
# parser, Debian package prometheus) takes it.
check_exposition() {
    local f=$1 bad
    bad=$(awk '
        /^# HELP / { help[$3] = 1; next }
        /^# TYPE / { if (!help[$3]) { print "TYPE before HELP: " $0; exit } type[$3] = $4; next }
        /^#/ { next }
        !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? [-+0-9.eE]+(Inf)?$/ {
            print "not a sample: " $0; exit }
        { n = $1; sub(/\{.*/, "", n); base = n; sub(/_(bucket|sum|count)$/, "", base)
          if (!(n in type) && !(base in type && type[base] == "histogram")) {
              print "sample before its TYPE: " $0; exit } }' "$f")
    [ -z "$bad" ] || fail "$f is not valid exposition text: $bad"
    ok
    if command -v promtool >/dev/null 2>&1; then
        promtool check metrics <"$f" >"$f.promtool" 2>&1 || fail "promtool check metrics refuses $f:
$(show "$f.promtool")"
        ok
    else
        say "promtool is not installed (Debian package prometheus): its check of the text is skipped"
    fi
}

# check_histograms FILE: for each path, the duration buckets are cumulative (never less for a
# larger le), +Inf is _count, and _count is the sum of n3app_requests_total over the codes.
check_histograms() {
    local f=$1 bad
    bad=$(awk '
        match($0, /^n3app_request_duration_seconds_bucket\{path="[^"]*",le="[^"]*"\} /) {
            split($1, a, "\""); p = a[2]; le = a[4]
            if (le != "+Inf" && (p in last_le) && le + 0 <= last_le[p] + 0) { print p ": le " le " after " last_le[p]; exit }
            if ((p in last) && $2 + 0 < last[p] + 0) { print p ": bucket le=" le " has " $2 ", less than " last[p]; exit }
            last[p] = $2; last_le[p] = le; if (le == "+Inf") inf[p] = $2; next }
        /^n3app_request_duration_seconds_count\{/ { split($1, a, "\""); cnt[a[2]] = $2; next }
        /^n3app_requests_total\{/ { split($1, a, "\""); req[a[2]] += $2; next }
        END { for (p in cnt) {
                  if (!(p in inf)) { print p ": no +Inf bucket"; exit }
                  if (inf[p] != cnt[p]) { print p ": +Inf " inf[p] " but _count " cnt[p]; exit }
                  if (cnt[p] != req[p] + 0) { print p ": _count " cnt[p] " but requests_total " req[p] + 0; exit } } }' "$f")
    [ -z "$bad" ] || fail "$f: the histograms do not add up: $bad
$(show "$f")"
    ok
}

port_free() { # PORT: nothing listens there
    [ -z "$(ss -Htln sport = ":$1")" ]
}

# ---- the repository: its tags, their trees, as n3ctl sees them ----

expect_eq "make-repo's tags" \
    "v1.0.0 good v1.1.0 good v1.2.0-errors errors v1.3.0-slow slow v1.4.0-unhealthy unhealthy v1.5.0-crash crash v1.6.0-slowstart slowstart v2.0.0 good" \
    "$(tr '\t\n' '  ' <"$T/tags" | sed 's/ $//')"
run_n3 versions versions -c "$CFG" --local --json
expect_rc 0
jq_eq versions.out '[.versions[].version] | join(" ")' \
    "v2.0.0 v1.6.0-slowstart v1.5.0-crash v1.4.0-unhealthy v1.3.0-slow v1.2.0-errors v1.1.0 v1.0.0" \
    "the tags are versions, in semver order"
jq_eq versions.out '.ignored | length' 0 "no tag is ignored"
for f in Makefile main.c server.c n3.json VERSION n3app.faults README.md; do
    git -C "$REPO" cat-file -e "v1.2.0-errors:$f" 2>/dev/null || fail "the tag v1.2.0-errors has no $f"
    ok
done
expect_eq "v1.2.0-errors's faults" "error_rate 0.05     # 5 % of / answered 500" \
    "$(git -C "$REPO" show v1.2.0-errors:n3app.faults | grep -v '^#')"
expect_eq "the build hook of the repository's n3.json" make "$(jq -r .hooks.build "$REPO/n3.json")"
# make-repo refuses a directory that is not empty, and changes nothing there.
rc=0
"$TOP_SRCDIR/examples/app/make-repo" "$REPO" >"$T/again.out" 2>"$T/again.err" || rc=$?
expect_eq "make-repo into a repository again: exit status" 2 "$rc"
grep -q "is there and not empty" "$T/again.err" || fail "make-repo's refusal does not say why: $(cat "$T/again.err")"
ok

# ---- released through n3ctl: the build hook compiles it, the binary is in the release ----

while read -r tag _; do
    run_n3 "push-$tag" release -c "$CFG" push "$tag"
    expect_rc 0
    [ -x "$REL/$tag/n3app" ] || fail "release $tag has no executable n3app: $(ls -l "$REL/$tag")"
    ok
    grep -qx "version $tag" "$REL/$tag/REVISION" || fail "$REL/$tag/REVISION has no 'version $tag'"
    ok
done <"$T/tags"
tar -tzf "$T/cache/n3ctl/demo/v1.0.0.tar.gz" | grep -qx n3app || fail "the build hook's binary is not in the release archive"
ok

# ---- a good version, as a client sees it (the release's binary, then the project's own) ----

# endpoints NAME BIN ARGS...: v1.0.0 started as slot blue from BIN (its version from the
# release's REVISION), checked end to end.
endpoints() {
    local n=$1 bin=$2 u m1 m2 i urls=()
    shift 2
    app_start "$n" "$bin" --port 0 --slot blue "$@"
    u=http://127.0.0.1:$APP_PORT
    grep -q ": starting: version v1.0.0 (from REVISION), slot blue (from --slot), release $REL/v1.0.0," "$APP_LOG" ||
        fail "$n: the start line does not say where version and slot come from:
$(show "$APP_LOG")"
    ok
    [ -n "$(ss -Htln src "127.0.0.1:$APP_PORT")" ] || fail "$n: nothing listens on 127.0.0.1:$APP_PORT: $(ss -Htln)"
    ok

    LASTH=$n-root
    http "$LASTH" "$u/"
    expect_code "$n: GET /" 200
    expect_eq "$n: the body of /" "v1.0.0 blue" "$(cat "$T/$LASTH.b")"
    expect_eq "$n: / ends with a newline" 12 "$(wc -c <"$T/$LASTH.b")"
    expect_eq "$n: X-N3-Version" v1.0.0 "$(header "$LASTH" X-N3-Version)"
    expect_eq "$n: X-N3-Slot" blue "$(header "$LASTH" X-N3-Slot)"
    expect_eq "$n: Content-Length" 12 "$(header "$LASTH" Content-Length)"
    expect_eq "$n: Content-Type" "text/plain; charset=utf-8" "$(header "$LASTH" Content-Type)"
    [ -n "$(header "$LASTH" Date)" ] || fail "$n: no Date header"
    ok

    LASTH=$n-health
    http "$LASTH" "$u/health"
    expect_code "$n: GET /health" 200
    expect_eq "$n: the body of /health" ok "$(cat "$T/$LASTH.b")"

    LASTH=$n-version
    http "$LASTH" "$u/version"
    expect_code "$n: GET /version" 200
    expect_eq "$n: /version's Content-Type" application/json "$(header "$LASTH" Content-Type)"
    jq_eq "$T/$LASTH.b" .version v1.0.0 "$n: /version"
    jq_eq "$T/$LASTH.b" .slot blue "$n: /version"
    jq_eq "$T/$LASTH.b" .pid "$APP_PID" "$n: /version"
    jq_eq "$T/$LASTH.b" '.started | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")' true "$n: /version"

    LASTH=$n-404
    http "$LASTH" "$u/nope?x=1"
    expect_code "$n: GET /nope" 404
    expect_eq "$n: a 404 names the version too" v1.0.0 "$(header "$LASTH" X-N3-Version)"
    LASTH=$n-405
    http "$LASTH" "$u/" -X DELETE
    expect_code "$n: DELETE /" 405
    expect_eq "$n: Allow of a 405" "GET, HEAD" "$(header "$LASTH" Allow)"

    # Keep-alive: three requests on one connection; a POST's body is read past, and the
    # connection goes on after it.
    curl -sS --max-time 20 -w '%{num_connects} %{http_code}\n' -o /dev/null "$u/" -o /dev/null "$u/health" -o /dev/null "$u/version" \
        >"$T/$n-keep" || fail "curl with three URLs failed"
    expect_eq "$n: three requests on one connection (connects and statuses)" "1 200 0 200 0 200" "$(tr '\n' ' ' <"$T/$n-keep" | sed 's/ $//')"
    curl -sS --max-time 20 -o /dev/null -w '%{num_connects} %{http_code}\n' -d 'a body to skip' "$u/" \
        --next -o /dev/null -w '%{num_connects} %{http_code}\n' "$u/health" >"$T/$n-post" || fail "curl POST --next GET failed"
    expect_eq "$n: a POST with a body, then a GET on the same connection" "1 405 0 200" "$(tr '\n' ' ' <"$T/$n-post" | sed 's/ $//')"

    # HEAD: the head of GET, Content-Length included, and not one byte of body.
    raw "$n-head" "$APP_PORT" 'HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
    expect_eq "$n: HEAD's status line" "HTTP/1.1 200 OK" "$(head -n 1 "$T/$n-head.raw")"
    grep -qx "Content-Length: 12" "$T/$n-head.raw" || fail "$n: HEAD has not GET's Content-Length: $(show "$T/$n-head.raw")"
    ok
    expect_eq "$n: what follows HEAD's empty line" "" "$(sed '1,/^$/d' "$T/$n-head.raw")"

    # Pipelined requests are answered in order; Connection: close ends it after its answer.
    raw "$n-pipe" "$APP_PORT" 'GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n'
    expect_eq "$n: pipelined answers, in order, none after Connection: close" \
        "HTTP/1.1 200 OK|HTTP/1.1 200 OK|HTTP/1.1 404 Not Found" "$(grep '^HTTP/' "$T/$n-pipe.raw" | paste -sd '|')"
    expect_eq "$n: pipelined bodies" "v1.0.0 blue|ok|not found" "$(grep -E '^(v1\.0\.0 blue|ok|not found)$' "$T/$n-pipe.raw" | paste -sd '|')"
    expect_eq "$n: the last answer says Connection: close" "Connection: close" "$(grep '^Connection:' "$T/$n-pipe.raw" | paste -sd '|')"
    # HTTP/1.0 closes unless asked to keep alive.
    raw "$n-10" "$APP_PORT" 'GET / HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n'
    expect_eq "$n: HTTP/1.0 gets one answer, then the close" "HTTP/1.1 200 OK|Connection: close" "$(grep -E '^(HTTP/|Connection:)' "$T/$n-10.raw" | paste -sd '|')"
    raw "$n-10k" "$APP_PORT" 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n'
    expect_eq "$n: HTTP/1.0 with keep-alive" "HTTP/1.1 200 OK|Connection: keep-alive|HTTP/1.1 200 OK|Connection: close" \
        "$(grep -E '^(HTTP/|Connection:)' "$T/$n-10k.raw" | paste -sd '|')"

    # What is malformed or too big: its status, the reason, and the connection closed (raw
    # returns only because the server closed it; what was pipelined after is not answered).
    raw "$n-400" "$APP_PORT" 'garbage\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n'
    expect_eq "$n: a malformed request" "HTTP/1.1 400 Bad Request|Connection: close|malformed request line" \
        "$(grep -E '^(HTTP/|Connection:|malformed)' "$T/$n-400.raw" | paste -sd '|')"
    raw "$n-nohost" "$APP_PORT" 'GET / HTTP/1.1\r\n\r\n'
    expect_eq "$n: HTTP/1.1 without Host" "HTTP/1.1 400 Bad Request" "$(head -n 1 "$T/$n-nohost.raw")"
    raw "$n-431" "$APP_PORT" "GET / HTTP/1.1\r\nHost: t\r\nX-Big: $(printf 'x%.0s' {1..9000})\r\n\r\n"
    expect_eq "$n: a head past 8 KiB" "HTTP/1.1 431 Request Header Fields Too Large" "$(head -n 1 "$T/$n-431.raw")"
    raw "$n-414" "$APP_PORT" "GET /$(printf 'a%.0s' {1..9000})"
    expect_eq "$n: a request line past 8 KiB" "HTTP/1.1 414 URI Too Long" "$(head -n 1 "$T/$n-414.raw")"
    raw "$n-505" "$APP_PORT" 'GET / HTTP/2.0\r\nHost: t\r\n\r\n'
    expect_eq "$n: HTTP/2.0 in a request line" "HTTP/1.1 505 HTTP Version Not Supported" "$(head -n 1 "$T/$n-505.raw")"
    raw "$n-te" "$APP_PORT" 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc'
    expect_eq "$n: Transfer-Encoding with Content-Length" "HTTP/1.1 400 Bad Request" "$(head -n 1 "$T/$n-te.raw")"
    grep -q '^X-N3-Version: v1.0.0$' "$T/$n-te.raw" || fail "$n: a 400 does not name the version"
    ok

    # The metrics: a scrape, 20 requests to /, a second scrape.
    LASTH=$n-m1
    http "$LASTH" "$u/metrics"
    expect_code "$n: GET /metrics" 200
    expect_eq "$n: /metrics's Content-Type" "text/plain; version=0.0.4; charset=utf-8" "$(header "$LASTH" Content-Type)"
    m1=$T/$LASTH.b
    for ((i = 0; i < 20; i++)); do
        urls+=(-o /dev/null "$u/")
    done
    curl -sS --max-time 20 -w '%{http_code}\n' "${urls[@]}" >"$T/$n-20" || fail "20 requests to / failed"
    expect_eq "$n: 20 answers of /" 20 "$(grep -cx 200 "$T/$n-20")"
    LASTH=$n-m2
    http "$LASTH" "$u/metrics"
    m2=$T/$LASTH.b
    check_exposition "$m2"
    check_histograms "$m2"
    expect_eq "$n: requests of / counted" \
        $(($(metric "$m1" 'n3app_requests_total{path="/",code="200"}') + 20)) "$(metric "$m2" 'n3app_requests_total{path="/",code="200"}')"
    expect_eq "$n: the first scrape is counted by the second (and not by itself)" \
        $(($(metric "$m1" 'n3app_requests_total{path="/metrics",code="200"}') + 1)) "$(metric "$m2" 'n3app_requests_total{path="/metrics",code="200"}')"
    expect_eq "$n: the first scrape did not count itself" "" "$(metric "$m1" 'n3app_requests_total{path="/metrics",code="200"}')"
    expect_eq "$n: the 404s of other paths are labelled other" 2 "$(metric "$m2" 'n3app_requests_total{path="other",code="404"}')"
    expect_eq "$n: the 405s" 2 "$(metric "$m2" 'n3app_requests_total{path="/",code="405"}')"
    expect_eq "$n: /'s count" "$(metric "$m2" 'n3app_request_duration_seconds_count{path="/"}')" \
        "$(($(metric "$m2" 'n3app_requests_total{path="/",code="200"}') + 2))"
    expect_eq "$n: in flight during a scrape: the scrape" 1 "$(metric "$m2" n3app_in_flight)"
    expect_eq "$n: the info series" 1 "$(metric "$m2" 'n3app_info{version="v1.0.0",slot="blue"}')"
    awk -v t="$(metric "$m2" n3app_start_time_seconds)" -v now="$(date +%s)" 'BEGIN { exit !(t > now - 3600 && t <= now + 1) }' ||
        fail "$n: n3app_start_time_seconds is not the start: $(metric "$m2" n3app_start_time_seconds)"
    ok
    for fam in n3app_requests_total:counter n3app_request_duration_seconds:histogram n3app_in_flight:gauge \
        n3app_connections:gauge n3app_start_time_seconds:gauge n3app_info:gauge; do
        grep -qx "# TYPE ${fam%%:*} ${fam#*:}" "$m2" || fail "$n: no '# TYPE ${fam%%:*} ${fam#*:}' in $m2"
        grep -q "^# HELP ${fam%%:*} ." "$m2" || fail "$n: no HELP of ${fam%%:*} in $m2"
        ok
    done

    # A port in use is refused, with why, and exit 1; the first instance still answers.
    rc=0
    "$bin" --port "$APP_PORT" --slot green "$@" >"$T/$n-inuse.out" 2>"$T/$n-inuse.err" </dev/null || rc=$?
    expect_eq "$n: a second app on the same port: exit status" 1 "$rc"
    grep -q "cannot listen on 127.0.0.1 port $APP_PORT: the port is in use" "$T/$n-inuse.err" ||
        fail "$n: the refusal of a port in use does not say so: $(show "$T/$n-inuse.err")"
    ok
    LASTH=$n-still
    http "$LASTH" "$u/"
    expect_code "$n: the first instance, after the refused second" 200
    expect_eq "$n: and it is still blue" "v1.0.0 blue" "$(cat "$T/$LASTH.b")"
    app_stop
    port_free "$APP_PORT" || fail "$n: the port $APP_PORT is still in use after the stop"
    ok
    grep -q ': stopped: .* 0 not finished' "$APP_LOG" || fail "$n: no stop line: $(show "$APP_LOG")"
    ok

    # Slow clients: a head that trickles in is answered 408 once the header timeout is past,
    # though bytes still come; an idle connection is closed once the idle timeout is past.
    app_start "$n-slow" "$bin" --port 0 --header-timeout 0.5 --idle-timeout 0.5 "$@"
    exec 3<>"/dev/tcp/127.0.0.1/$APP_PORT" || fail "cannot connect to $APP_PORT"
    (
        for c in G E T ' ' / ' ' H T T P / 1 . 1; do
            printf '%s' "$c" || exit 0
            sleep 0.1 # the slow client's own pace, not a wait for the server
        done
        while printf 'X' 2>/dev/null; do sleep 0.1; done
    ) >&3 2>/dev/null &
    local trickle=$!
    timeout 10 cat <&3 | tr -d '\r' >"$T/$n-loris.raw" || :
    exec 3<&- 3>&-
    kill "$trickle" 2>/dev/null || :
    wait "$trickle" 2>/dev/null || :
    expect_eq "$n: a head that never ends" "HTTP/1.1 408 Request Timeout" "$(head -n 1 "$T/$n-loris.raw")"
    raw "$n-idle" "$APP_PORT" ''
    expect_eq "$n: an idle connection is closed with nothing said" "" "$(cat "$T/$n-idle.raw")"
    app_stop
}

endpoints release "$REL/v1.0.0/n3app"
# The project's build of the same source (the ASan build covers it), on the same release tree.
endpoints project "$N3APP" --release-dir "$REL/v1.0.0"

# A real Prometheus scrapes it: the target is up with no error, and the counters and the
# histogram read back as the app counted them.
if command -v prometheus >/dev/null 2>&1; then
    app_start scraped "$N3APP" --port 0 --slot blue --release-dir "$REL/v1.0.0"
    urls=()
    for ((i = 0; i < 10; i++)); do
        urls+=(-o /dev/null "http://127.0.0.1:$APP_PORT/")
    done
    curl -sS --max-time 20 "${urls[@]}" || fail "10 requests to / failed"
    PP=$(closed_port)
    printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: n3app\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' \
        "$APP_PORT" >"$T/prometheus.yml"
    prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prometheus" \
        --web.listen-address="127.0.0.1:$PP" >"$T/prometheus.log" 2>&1 </dev/null &
    PROM_PID=$!
    T_BG="$T_BG$PROM_PID "
    promq() { # QUERY: the first result's value, or nothing
        curl -sS --max-time 5 -G --data-urlencode "query=$1" "http://127.0.0.1:$PP/api/v1/query" 2>/dev/null |
            jq -r '.data.result[0].value[1] // empty' 2>/dev/null
    }
    scraped_10() {
        [ "$(promq 'n3app_requests_total{path="/",code="200"}')" = 10 ]
    }
    T_DEADLINE=60 wait_until "Prometheus to scrape the app (its log: $T/prometheus.log)" scraped_10
    curl -sS --max-time 5 "http://127.0.0.1:$PP/api/v1/targets" >"$T/targets.json" || fail "Prometheus's targets API did not answer"
    jq_eq "$T/targets.json" '.data.activeTargets[0].health' up "Prometheus's view of the app"
    jq_eq "$T/targets.json" '.data.activeTargets[0].lastError' "" "Prometheus's view of the app"
    expect_eq "n3app_info through Prometheus" 1 "$(promq 'n3app_info{version="v1.0.0",slot="blue"}')"
    expect_eq "the duration count through Prometheus" 10 "$(promq 'n3app_request_duration_seconds_count{path="/"}')"
    q=$(promq 'histogram_quantile(0.99, n3app_request_duration_seconds_bucket{path="/"})')
    awk -v q="$q" 'BEGIN { exit !(q ~ /^[0-9.e+-]+$/ && q > 0) }' || fail "Prometheus's p99 from the histogram is not a number: '$q'"
    ok
    kill -TERM "$PROM_PID"
    wait_exit "$PROM_PID" "prometheus after TERM"
    app_stop
else
    say "prometheus is not installed (Debian package prometheus): the scrape by a real Prometheus is skipped"
fi

# The version and slot from elsewhere: --version, N3_SLOT, a VERSION file; bad ones refused.
N3_SLOT=green app_start envslot "$N3APP" --port 0 --release-dir "$REL/v1.1.0"
LASTH=envslot
http "$LASTH" "http://127.0.0.1:$APP_PORT/"
expect_eq "N3_SLOT and v1.1.0's REVISION" "v1.1.0 green" "$(cat "$T/$LASTH.b")"
app_stop
mkdir -p "$T/tree"
printf 'v0.9.0\n' >"$T/tree/VERSION"
app_start vfile "$N3APP" --port 0 --release-dir "$T/tree"
LASTH=vfile
http "$LASTH" "http://127.0.0.1:$APP_PORT/"
expect_eq "a VERSION file without REVISION, and no slot" "v0.9.0 none" "$(cat "$T/$LASTH.b")"
app_stop
for bad in "--port 70000" "--port x" "" "--port 0 --slot a;b" "--port 0 --version ../x" \
    "--port 0 --grace 0" "--port 0 --faults $T/nowhere" "--port 0 --bind localhost" "--port 0 extra"; do
    rc=0
    # shellcheck disable=SC2086 # the words of $bad are the arguments
    "$N3APP" $bad --release-dir "$T/tree" >"$T/bad.out" 2>"$T/bad.err" </dev/null || rc=$?
    expect_eq "n3app $bad: exit status" 2 "$rc"
    grep -q '^n3app: ' "$T/bad.err" || fail "n3app $bad says nothing: $(show "$T/bad.err")"
    ok
done
printf 'error_rate 0.05\nlatncy_ms 100\n' >"$T/typo.faults"
rc=0
"$N3APP" --port 0 --faults "$T/typo.faults" >"$T/typo.out" 2>"$T/typo.err" </dev/null || rc=$?
expect_eq "a faults file with a typo: exit status" 2 "$rc"
expect_eq "a faults file with a typo: the message" \
    "n3app: $T/typo.faults:2: unknown key \"latncy_ms\"; did you mean \"latency_ms\"?" "$(cat "$T/typo.err")"

# ---- the bad versions are really bad (each its release's own binary) ----

# v1.2.0-errors: 5 % of 1,000 requests to / answered 500 (the same ones for the same seed),
# and counted so; its health is good.
errors_run() { # NAME: 1,000 requests of / to the errors release with seed 7; count of 500s
    local i urls=()
    app_start "$1" "$REL/v1.2.0-errors/n3app" --port 0 --seed 7
    for ((i = 0; i < 1000; i++)); do
        urls+=(-o /dev/null "http://127.0.0.1:$APP_PORT/")
    done
    curl -sS --max-time 60 -w '%{http_code}\n' "${urls[@]}" >"$T/$1.codes" || fail "1,000 requests to v1.2.0-errors failed"
    expect_eq "$1: answers" 1000 "$(grep -cE '^(200|500)$' "$T/$1.codes")"
    LASTH=$1-m
    http "$LASTH" "http://127.0.0.1:$APP_PORT/metrics"
    expect_eq "$1: the 500s counted" "$(grep -cx 500 "$T/$1.codes")" "$(metric "$T/$LASTH.b" 'n3app_requests_total{path="/",code="500"}')"
    LASTH=$1-h
    http "$LASTH" "http://127.0.0.1:$APP_PORT/health"
    expect_code "$1: /health" 200
    app_stop
}
errors_run errors1
errors=$(grep -cx 500 "$T/errors1.codes")
if [ "$errors" -lt 25 ] || [ "$errors" -gt 75 ]; then
    fail "v1.2.0-errors answered $errors of 1,000 with 500, not about 50 (5 %)"
fi
ok
errors_run errors2
expect_same_file "$T/errors1.codes" "$T/errors2.codes" "the same seed, the same requests failing"

# v1.3.0-slow: / is at least 2 s late (latency_ms 2000); /health is not held.
app_start slow "$REL/v1.3.0-slow/n3app" --port 0
took=$(curl -sS --max-time 20 -o "$T/slow.b" -w '%{time_total}' "http://127.0.0.1:$APP_PORT/") || fail "GET / of v1.3.0-slow failed"
awk -v t="$took" 'BEGIN { exit !(t >= 2.0) }' || fail "v1.3.0-slow answered / in ${took}s, under its 2 s latency"
ok
expect_eq "v1.3.0-slow's answer" "v1.3.0-slow none" "$(cat "$T/slow.b")"
LASTH=slow-h
http "$LASTH" "http://127.0.0.1:$APP_PORT/metrics"
awk -v s="$(metric "$T/$LASTH.b" 'n3app_request_duration_seconds_sum{path="/"}')" 'BEGIN { exit !(s >= 2.0) }' ||
    fail "v1.3.0-slow's duration sum does not hold the 2 s: $(show "$T/$LASTH.b")"
ok
expect_eq "v1.3.0-slow: its one request of / took more than 1 s" 0 "$(metric "$T/$LASTH.b" 'n3app_request_duration_seconds_bucket{path="/",le="1"}')"

# ---- the graceful stop (on the slow version): a request in flight is finished after TERM,
# new connections are refused at once, an idle keep-alive connection is closed, exit 0 ----

exec 4<>"/dev/tcp/127.0.0.1/$APP_PORT" || fail "cannot connect to $APP_PORT"
printf 'GET /health HTTP/1.1\r\nHost: t\r\n\r\n' >&4 # answered at once; then the connection idles
curl -sS --max-time 30 -D "$T/inflight.h" -o "$T/inflight.b" -w '%{http_code}' "http://127.0.0.1:$APP_PORT/" \
    >"$T/inflight.code" 2>"$T/inflight.err" &
inflight=$!
T_BG="$T_BG$inflight "
# In flight: a scrape sees two requests, itself and the slow one.
in_flight_2() {
    curl -sS --max-time 5 "http://127.0.0.1:$APP_PORT/metrics" 2>/dev/null | grep -qx 'n3app_in_flight 2'
}
wait_until "the slow request to be in flight" in_flight_2
kill -TERM "$APP_PID"
wait_lines "$APP_LOG" ': stopping on TERM: not listening any more; 1 request in flight' 1 "the stop to begin with the request in flight"
port_free "$APP_PORT" || fail "the port $APP_PORT is still listened on after 'not listening any more'"
ok
rc=0
curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$APP_PORT/health" 2>"$T/refused.err" || rc=$?
expect_eq "a new connection during the stop (curl's exit status: 7, refused)" 7 "$rc"
wait_exit "$APP_PID" "the slow app after TERM"
expect_eq "the slow app's exit status after TERM" 0 "$rc"
wait_exit "$inflight" "the request in flight"
expect_eq "curl of the request in flight" 0 "$rc"
expect_eq "the request in flight's status" 200 "$(cat "$T/inflight.code")"
expect_eq "the request in flight's answer" "v1.3.0-slow none" "$(cat "$T/inflight.b")"
grep -qi '^Connection: close' "$T/inflight.h" || fail "the answer finished during the stop does not say Connection: close: $(show "$T/inflight.h")"
ok
timeout 10 cat <&4 | tr -d '\r' >"$T/idle4.raw" || :
exec 4<&- 4>&-
expect_eq "the idle keep-alive connection: its one answer, then closed" "HTTP/1.1 200 OK" "$(grep '^HTTP/' "$T/idle4.raw" | paste -sd '|')"
grep -Eq ': stopped: [0-9]+ requests answered since the start, 0 not finished' "$APP_LOG" || fail "the stop line: $(show "$APP_LOG")"
ok

# v1.4.0-unhealthy: /health 503 with the reason; / still answers.
app_start unhealthy "$REL/v1.4.0-unhealthy/n3app" --port 0 --slot green
LASTH=unhealthy-h
http "$LASTH" "http://127.0.0.1:$APP_PORT/health"
expect_code "v1.4.0-unhealthy: /health" 503
expect_eq "v1.4.0-unhealthy: why" "unhealthy: health_fail is set in $REL/v1.4.0-unhealthy/n3app.faults" "$(cat "$T/$LASTH.b")"
LASTH=unhealthy-r
http "$LASTH" "http://127.0.0.1:$APP_PORT/"
expect_code "v1.4.0-unhealthy: /" 200
app_stop

# v1.5.0-crash: exits 70 at once, saying why, and never listens.
P=$(closed_port)
app_spawn crash "$REL/v1.5.0-crash/n3app" --port "$P"
wait_exit "$APP_PID" "v1.5.0-crash"
expect_eq "v1.5.0-crash's exit status" 70 "$rc"
grep -q ": crash_at_start is set in $REL/v1.5.0-crash/n3app.faults: exiting with status 70 before listening" "$APP_LOG" ||
    fail "v1.5.0-crash's log does not say why: $(show "$APP_LOG")"
ok
grep -q ': listening on ' "$APP_LOG" && fail "v1.5.0-crash listened: $(show "$APP_LOG")"
ok

# v1.6.0-slowstart: runs, refuses connections, and listens 3 s (slow_start_ms) after its start.
P=$(closed_port)
app_spawn slowstart "$REL/v1.6.0-slowstart/n3app" --port "$P"
wait_lines "$APP_LOG" ': slow_start_ms is 3000: listening in 3000 ms' 1 "the slow start to begin"
rc=0
curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$P/health" 2>/dev/null || rc=$?
if ! grep -q ': listening on ' "$APP_LOG"; then
    expect_eq "v1.6.0-slowstart before it listens (curl: 7, refused)" 7 "$rc"
    pid_alive "$APP_PID" || fail "v1.6.0-slowstart is not running during its slow start"
    ok
fi
app_wait_listening
expect_eq "v1.6.0-slowstart's port" "$P" "$APP_PORT"
ms() { # the log line matching ERE: its time, in ms of the day
    sed -n "/$1/{s/^[0-9-]*T\([0-9]*\):\([0-9]*\):\([0-9]*\)\.\([0-9]*\)Z.*/\1 \2 \3 \4/p;q}" "$APP_LOG" |
        awk '{ print (($1 * 60 + $2) * 60 + $3) * 1000 + $4 }'
}
waited=$(($(ms ': listening on ') - $(ms ': starting: ')))
[ "$waited" -ge 3000 ] || [ "$waited" -lt 0 ] || fail "v1.6.0-slowstart listened ${waited} ms after its start, not 3000"
ok
LASTH=slowstart-h
http "$LASTH" "http://127.0.0.1:$P/health"
expect_code "v1.6.0-slowstart once it listens" 200
app_stop
# TERM during the slow start: it ends at once, status 0, having never listened.
app_spawn slowstart2 "$REL/v1.6.0-slowstart/n3app" --port "$P"
wait_lines "$APP_LOG" ': slow_start_ms is 3000' 1 "the second slow start to begin"
app_stop
grep -q ': stopped on TERM during the slow start, before listening' "$APP_LOG" || fail "the stop during the slow start: $(show "$APP_LOG")"
ok

# ---- HUP reads the faults file again; a bad one is refused and the old faults stay ----

printf '# nothing yet\n' >"$T/live.faults"
app_start hup "$N3APP" --port 0 --faults "$T/live.faults" --release-dir "$REL/v2.0.0"
LASTH=hup0
http "$LASTH" "http://127.0.0.1:$APP_PORT/health"
expect_code "before HUP" 200
printf 'health_fail true\n' >"$T/live.faults"
kill -HUP "$APP_PID"
wait_lines "$APP_LOG" ": HUP: faults reloaded from $T/live.faults: error_rate=0 .*health_fail=true" 1 "the faults to be read again"
LASTH=hup1
http "$LASTH" "http://127.0.0.1:$APP_PORT/health"
expect_code "after HUP with health_fail true" 503
printf 'health_fail maybe\n' >"$T/live.faults"
kill -HUP "$APP_PID"
wait_lines "$APP_LOG" ": HUP: faults not reloaded: $T/live.faults:1: health_fail \"maybe\": give true or false; still in force: .*health_fail=true" 1 "the bad faults file to be refused"
LASTH=hup2
http "$LASTH" "http://127.0.0.1:$APP_PORT/health"
expect_code "after HUP with a bad file: the old faults" 503
app_stop
