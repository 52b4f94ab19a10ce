#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters in single quotes
# What n3.json must not hold, refused when it loads (exit 2, file:line:column): hosts that
# known_hosts cannot name or OpenSSH would match as patterns ("*" crashed `hosts trust`, and
# `exec` connected to it), control characters in paths and users, "." and ".." as names.
# The [host]:port form is taken apart.
set -eu
. "$(dirname "$0")/lib.sh"
t_start
need_jq
fleet_start 1

CFG=$FLEET/n3.json
P1=$(fleet_port 1)
cp "$FLEET/known_hosts" "$T/kh.before"

# at FILE KEY: "LINE:COL" of the first value of KEY in FILE (jq writes one member a line); a
# KEY in double quotes is a value to find (an array's item, a key that is not the first).
at() {
    case $2 in
    \"*) awk -v k="$2" '{ i = index($0, k); if (i) { print NR ":" i; exit } }' "$1" ;;
    *) awk -v k="\"$2\": " '{ i = index($0, k); if (i) { print NR ":" i + length(k); exit } }' "$1" ;;
    esac
}

# refused NAME JQ-FILTER KEY KEY-PATH WANT: the fleet's n3.json edited by the filter is
# refused by hosts, hosts trust and exec, at KEY's value (NAME.json:LINE:COL), naming KEY-PATH
# and saying WANT; nothing is shown on stdout, known_hosts is not written.
refused() {
    local name=$1 cfg where
    cfg=$(fleet_config "$name" "$2")
    where=$(at "$cfg" "$3")
    [ -n "$where" ] || fail "the filter '$2' left no \"$3\" in $cfg"
    run_n3_detached "$name" hosts -c "$cfg"
    expect_rc 2
    expect_fgrep err "n3ctl: $cfg:$where: $4: $5" "$cfg:$where: $4: $5"
    expect_empty out
    run_n3_detached "$name-trust" hosts -c "$cfg" trust t1 --yes
    expect_rc 2
    expect_fgrep err "n3ctl: $cfg:$where: $4: $5" "hosts trust: $cfg:$where: $4: $5"
    expect_empty out
    run_n3_detached "$name-exec" exec -c "$cfg" -- true
    expect_rc 2
    expect_fgrep err "n3ctl: $cfg:$where: $4: $5" "exec: $cfg:$where: $4: $5"
    expect_same_file "$T/kh.before" "$FLEET/known_hosts" "known_hosts after $name"
}

HOST=environments.fleet.targets[0].host

# ---- hosts that known_hosts cannot hold, or OpenSSH would read as patterns ----

refused star '.environments.fleet.targets[0].host = "*"' host "$HOST" \
    'not a host name or address: "*" (character 1) is a pattern character in known_hosts'
refused question '.environments.fleet.targets[0].host = "127.0.0.?"' host "$HOST" \
    'not a host name or address: "?" (character 9) is a pattern character'
refused negated '.environments.fleet.targets[0].host = "!127.0.0.1"' host "$HOST" \
    'not a host name or address: "!" (character 1) is a pattern character'
refused comma '.environments.fleet.targets[0].host = "127.0.0.1,localhost"' host "$HOST" \
    'not a host name or address: "," (character 10) separates host names in known_hosts'
refused blank '.environments.fleet.targets[0].host = "127.0.0.1 x"' host "$HOST" \
    'not a host name or address: " " (character 10) is a blank'
refused bracket '.environments.fleet.targets[0].host = "[127.0.0.1"' host "$HOST" \
    'not a host name or address: "[" (character 1) is only for the [host]:port form'
refused ctl '.environments.fleet.targets[0].host = "127.0.0.1\u001b"' host "$HOST" \
    'not a host name or address: character 10 is a control character (U+001B)'
refused nonascii '.environments.fleet.targets[0].host = "h\u00e9te"' host "$HOST" \
    'not a host name or address: character 2 is not ASCII'
refused empty '.environments.fleet.targets[0].host = ""' host "$HOST" 'an empty host'
refused portclash ".environments.fleet.targets[0].host = \"[127.0.0.1]:$P1\" | .environments.fleet.targets[0].port = 22" \
    host "$HOST" "port $P1 here, but \"port\" says 22; give it once"

# The [host]:port form (as ssh and known_hosts write it) is the host and its port.
cfg=$(fleet_config brackets ".environments.fleet.targets[0].host = \"[127.0.0.1]:$P1\" | del(.environments.fleet.targets[0].port)")
run_n3 brackets exec -c "$cfg" -- 'echo reached'
expect_rc 0
expect_grep out '^t1: reached$' "t1 reached through [127.0.0.1]:$P1"
run_n3_detached brackets-trust hosts -c "$cfg" trust t1 --yes
expect_rc 0
expect_grep out "^t1 \\(127\\.0\\.0\\.1:$P1\\) is trusted already" "its key found under [127.0.0.1]:$P1"

# ---- control characters in paths and users ----

refused dpnl '.environments.fleet.targets[0].deploy_path = "/srv/app\nx"' deploy_path \
    environments.fleet.targets[0].deploy_path 'character 9 of deploy_path is a control character (U+000A)'
refused envdp '.environments.fleet.deploy_path = "/srv/\u0085app" | del(.environments.fleet.targets[0].deploy_path)' deploy_path \
    environments.fleet.deploy_path 'character 6 of deploy_path is a control character (U+0085)'
refused user '.environments.fleet.targets[0].user = "n3ssh\u0007"' user \
    environments.fleet.targets[0].user 'character 6 of user is a control character (U+0007)'
refused kh '.ssh.known_hosts = "/tmp/kh\tx"' known_hosts ssh.known_hosts \
    'character 8 of known_hosts is a control character (U+0009)'
refused repo '.app = {"repository": "/srv/r\u007f"}' repository app.repository \
    'character 7 of repository is a control character (U+007F)'
# Names that are looked up: their error would quote them.
refused defenv '.default_environment = "\u001b[2J"' default_environment default_environment \
    'character 1 of default_environment is a control character (U+001B)'
refused locktarget '.environments.fleet.lock_target = "t\u009b1"' lock_target environments.fleet.lock_target \
    'character 2 of lock_target is a control character (U+009B)'

# ---- "." and ".." as names ----

NAMES='1-100 characters from letters, digits and . _ : @ + -, and not . or ..'
refused appdot '.app = {"name": ".."}' '".."' app.name "not a valid name: $NAMES"
refused tdot '.environments.fleet.targets[0].name = "."' '"."' environments.fleet.targets[0].name \
    "not a valid name: $NAMES"
refused ldot '.environments.fleet.targets[0].labels = [".."]' '".."' environments.fleet.targets[0].labels[0] \
    'a label is a name'

# ---- the service: how each slot's instance starts and stops ----

SVC='{"ports": {"blue": 8001, "green": 8002}, "start": "exec ./app --port {port} --slot {slot}"}'
refused svcport '.service = '"$SVC"' | .service.ports.green = 8001' green service.ports.green \
    'green has the port of blue (8001): the two slots run at once, each needs a port of its own'
refused svcrange '.service = '"$SVC"' | .service.ports.blue = 70000' blue service.ports.blue \
    'expected an integer from 1 to 65535, got 70000'
refused svcslot '.service = '"$SVC"' | .service.ports.red = 8003' '"red"' service.ports.red \
    'unknown key; valid keys: blue, green'
refused svcvar '.service = '"$SVC"' | .service.start = "exec ./app --port {prot}"' start service.start \
    'unknown variable {prot}; did you mean {port}?'
refused svcmode '.service = '"$SVC"' | .service.mode = "sytemd"' mode service.mode \
    'unknown mode "sytemd"; did you mean "systemd"?'
refused svcstop '.service = '"$SVC"' | .service.mode = "systemd"' service service \
    '"stop" is missing: mode systemd stops a slot with your own command'
refused envsvc '.environments.fleet.service = ('"$SVC"' | del(.start))' service environments.fleet.service \
    '"start" is missing'
# A service that is whole loads (its environment's own, over the top level's).
cfg=$(fleet_config svcok '.service = '"$SVC"' | .environments.fleet.service = ('"$SVC"' | .mode = "systemd" | .stop = "systemctl stop app@{slot}")')
run_n3_detached svcok exec -c "$cfg" -- true
expect_rc 0

# ---- probes and the router: their kinds, and the kinds' own keys ----

refused probetype '.probes = [{"type": "htp"}]' type probes[0].type 'no probe type "htp"; did you mean "http"?'
refused probekey '.probes = [{"type": "http", "paht": "/health"}]' '"paht"' probes[0].paht \
    'unknown key; did you mean "path"?'
refused probepath '.probes = [{"type": "http", "path": "health"}]' path probes[0].path \
    'a path starts with "/" ("/health")'
refused probetimeout '.probes = [{"type": "tcp", "interval_seconds": 1, "timeout_seconds": 3}]' timeout_seconds \
    probes[0].timeout_seconds 'a timeout of 3 s is longer than the interval (1 s): checks would overlap'
cfg=$(fleet_config probecmd '.environments.fleet.probes = [{"type": "command"}]')
run_n3_detached probecmd exec -c "$cfg" -- true
expect_rc 2
expect_grep err "^n3ctl: $cfg:[0-9]+:[0-9]+: environments\.fleet\.probes\[0\]: missing required key \"command\"\$" \
    "a command probe without its command"
refused routertype '.router = {"type": "haproxi", "socket": "/run/haproxy/admin.sock", "backend": "app"}' type \
    router.type 'no router "haproxi"; did you mean "haproxy"?'
refused routersock '.router = {"type": "haproxy", "backend": "app"}' router router \
    'give the admin socket: "socket" (a unix socket'"'"'s path) or "address"'
refused routerbackend '.router = {"type": "haproxy", "socket": "/run/h.sock", "backend": "a;b"}' backend router.backend \
    "a backend's name has no spaces, '/' or ';'"
# A slot on the router's own port, where they can meet (the router on this machine's loopback).
refused routerport '.service = '"$SVC"' | .router = {"type": "haproxy", "socket": "/run/h.sock", "backend": "app", "frontend": "127.0.0.1:8002"}' \
    green service.ports.green \
    'green'"'"'s port 8002 is the router'"'"'s (router.frontend "127.0.0.1:8002", environment fleet): the instance could not listen there, or would take the router'"'"'s traffic; give the slot a port of its own'
refused routerstats '.service = '"$SVC"' | .router = {"type": "haproxy", "address": "127.0.0.1:8001", "backend": "app"}' \
    blue service.ports.blue \
    'blue'"'"'s port 8001 is the router'"'"'s (router.address "127.0.0.1:8001", environment fleet)'
refused routerfe '.router = {"type": "haproxy", "socket": "/run/h.sock", "backend": "app", "frontend": "8080"}' \
    '"8080"' router.frontend 'HOST:PORT where the router takes the traffic ("127.0.0.1:8080"), a port from 1 to 65535'
refused svclisten '.service = '"$SVC"' | .service.listen = "loopbak"' listen service.listen \
    'unknown listen "loopbak"; did you mean "loopback"?'
# ---- the rollout: its strategy against the router ----
refused rolloutnorouter '.rollout = {"strategy": "canary"}' strategy rollout.strategy \
    'the canary strategy moves traffic by weights, and environment fleet has no router: give it one ("router", docs/config.md), or use canary-hosts or rolling'
refused rolloutnone '.router = {"type": "none"} | .rollout = {"strategy": "blue-green"}' strategy rollout.strategy \
    "the blue-green strategy moves traffic by weights, and environment fleet's router (none) cannot split it: use canary-hosts or rolling, or a router that sets weights"
refused rolloutkind '.rollout = {"strategy": "canry"}' strategy rollout.strategy \
    'unknown strategy "canry"; did you mean "canary"?'
refused rolloutstep '.router = {"type": "none"} | .rollout = {"strategy": "rolling", "steps": [{"set_weight": 10}]}' \
    '"set_weight"' rollout.steps[0].set_weight 'set_weight moves traffic through a router; the rolling strategy moves whole hosts: use set_hosts'
cfg=$(fleet_config rolloutok '.router = {"type": "none"} | .environments.fleet.rollout = {"strategy": "canary-hosts", "steps": [{"set_hosts": 1}, {"analysis": {"count": 2}}, {"set_hosts": "100%"}]}')
run_n3_detached rolloutok exec -c "$cfg" -- true
expect_rc 0

# The same port on a router elsewhere is no clash.
cfg=$(fleet_config routerfar '.service = '"$SVC"' | .router = {"type": "haproxy", "address": "192.0.2.1:8001", "backend": "app", "frontend": "192.0.2.1:8001"}')
run_n3_detached routerfar exec -c "$cfg" -- true
expect_rc 0
cfg=$(fleet_config routerok '.router = {"type": "haproxy", "socket": "/run/h.sock", "backend": "app"} | .probes = [{"type": "http", "path": "/health", "expect_status": [200, 204]}, {"type": "tcp", "name": "port"}]')
run_n3_detached routerok exec -c "$cfg" -- true
expect_rc 0
