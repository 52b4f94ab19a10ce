#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# Traffic through a real nginx: `n3ctl traffic set` writes the upstream file, nginx -t tests
# it, nginx reloads, and what nginx loaded is read back (nginx -T); the shares are measured by
# the load generator through nginx, a switch under load loses no request, and when nginx -t
# fails (its config broken by someone else) the old upstream file is put back byte for byte,
# nginx is not reloaded and the traffic stays where it was.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
need_curl
: "${N3LOAD:=$TOP_BUILDDIR/tests/load/n3load}"
[ -x "$N3LOAD" ] || fail "no n3load binary at '$N3LOAD'"
T_DEADLINE=30

REPO=$T/app
make_sample_app_repo "$REPO"
D=$T/t1
mkdir -p "$D"
stop_instances "$D"
free_ports 2
BLUE=${FREE_PORTS[0]} GREEN=${FREE_PORTS[1]}
NG=$T/ngx
mkdir -p "$NG"
printf 'upstream app {\n    server 127.0.0.1:%s weight=100;\n    server 127.0.0.1:%s down;\n}\n' \
    "$BLUE" "$GREEN" >"$NG/upstream.conf"
: >"$NG/extra.conf"

gen() { # DIR PORT: the front end, to the upstream n3ctl writes
    printf '    include %s/upstream.conf;\n    include %s/extra.conf;\n' "$1" "$1"
    printf '    server {\n        listen 127.0.0.1:%s;\n' "$2"
    printf '        location / {\n            proxy_pass http://app;\n'
    printf '            proxy_http_version 1.1;\n            proxy_set_header Connection "";\n'
    printf '            proxy_next_upstream off;\n        }\n    }\n'
}
nginx_start ngx gen 1
FE=${NGINX_PORTS[0]}
NGINX="nginx -p $NG -c $NG/nginx.conf -e $NG/error.log"

CFG=$T/n3.json
sample_app_config "$CFG" "$REPO" "$D"
jq --argjson b "$BLUE" --argjson g "$GREEN" --arg f "$NG/upstream.conf" --arg n "$NGINX" '
    .service = {"ports": {"blue": $b, "green": $g},
                "start": "exec ./n3app --port {port} --slot {slot} --grace 5",
                "ready_timeout_seconds": 5, "stop_grace_seconds": 5}
  | .probes = [{"type": "http", "path": "/health", "interval_seconds": 0.2,
                "timeout_seconds": 0.2, "healthy_threshold": 2}]
  | .router = {"type": "nginx", "upstream_file": $f, "upstream": "app",
               "test_command": ($n + " -t"), "reload_command": ($n + " -s reload"),
               "dump_command": ($n + " -T")}' "$CFG" >"$CFG.new" && mv "$CFG.new" "$CFG"
export PATH="$PATH:/usr/sbin"

load() { # NAME: 1,200 requests through nginx; the summary (JSON) in $T/NAME.out
    run_bin "$1" "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate 400 --duration 3 --json
    [ "$rc" -eq 0 ] || fail "n3load $1 failed ($rc): $(show "$T/$1.err")"
}

run_n3 blue slot start -c "$CFG" t1 blue v1.0.0
expect_rc 0
run_n3 green slot start -c "$CFG" t1 green v2.0.0
expect_rc 0

run_n3 read traffic -c "$CFG" --json
expect_rc 0
jq_eq "$T/read.out" '[.servers[] | .weight] | join(" ")' "100 0"
jq_eq "$T/read.out" '.router' nginx
load l100
expect_share "$T/l100.out" v1.0.0 100

run_n3 canary traffic set -c "$CFG" blue=80 green=20
expect_rc 0
expect_grep out 'blue 80 %, green 20 %'
expect_fgrep out "127.0.0.1:$GREEN"
grep -q "server 127.0.0.1:$GREEN weight=20;" "$NG/upstream.conf" ||
    fail "the upstream file has not green at 20: $(show "$NG/upstream.conf")"
ok
load l80
expect_share "$T/l80.out" v2.0.0 20

# A switch under load: no request lost across nginx's reload.
bg_bin switch "$N3LOAD" --url "http://127.0.0.1:$FE/" --rate 400 --duration 4 --json \
    --out "$T/switch.jsonl"
SW=$BG_PID
wait_until "the load to start" file_has "$T/switch.jsonl" '"type":"request"'
run_n3 all-green traffic set -c "$CFG" green=100
expect_rc 0
wait_exit "$SW" "the load during the switch"
jq -e '.errors_total == 0 and .answered == .scheduled' "$T/switch.out" >/dev/null ||
    fail "requests lost in the switch: $(jq -c '{scheduled, answered, errors_total, errors}' "$T/switch.out")"
ok
load l0
expect_share "$T/l0.out" v2.0.0 100

# ---- nginx -t fails: nothing changes ----

printf 'this is not nginx configuration;\n' >"$NG/extra.conf"
cp -p "$NG/upstream.conf" "$T/upstream.before"
run_n3 broken traffic set -c "$CFG" blue=50 green=50
expect_rc 1
# nginx -T tests the config too: the read before the change fails already (the unit test
# covers a file that nginx -t refuses after it was written: it is put back).
expect_grep err 'nginx: configuration file .* test failed'
expect_grep err 'nothing was changed'
expect_same_file "$T/upstream.before" "$NG/upstream.conf"
cmp -s "$T/upstream.before" "$NG/upstream.conf" || fail "the upstream file changed"
ok
load lb
expect_share "$T/lb.out" v2.0.0 100
run_n3 audit audit -c "$CFG" --json
jq -e '[.[] | select(.action == "traffic.set")] | map(.result) == ["ok", "ok", "failed"]' \
    "$T/audit.out" >/dev/null ||
    fail "the local audit log has not the two changes and the failure: $(jq -c '[.[] | {action, result}]' "$T/audit.out")"
ok
