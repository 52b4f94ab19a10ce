#!/usr/bin/env bash
# haproxy-socat.sh: an n3ctl router plugin (router protocol 1, docs/plugins.md) that drives a
# real HAProxy through its runtime API, one socat connection a request. An example of what a
# plugin for a load balancer looks like (n3ctl's own "haproxy" router does the same, kept
# connected); needs bash, jq and socat.
#
#   "router": {"type": "exec",
#              "command": ["/opt/n3ctl/examples/routers/haproxy-socat.sh",
#                          "/run/haproxy/admin.sock", "app"]}
#
# haproxy.cfg: `stats socket /run/haproxy/admin.sock mode 660 level admin`, and a backend
# "app" with one server a slot, named as n3ctl names them ("web1_blue", "web1_green").
set -u

sock=${1:-}
backend=${2:-}

# hap COMMAND: the runtime API's answer to COMMAND (several, separated by ';').
hap() {
    printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$sock"
}

# reply ID [ERROR]: the servers as HAProxy has them now (read back), or the error.
reply() {
    local id=$1 state
    if [ -n "${2:-}" ]; then
        jq -cn --argjson id "$id" --arg e "$2" '{id: $id, ok: false, error: $e}'
        return
    fi
    if ! state=$(hap "show servers state $backend" 2>&1); then
        jq -cn --argjson id "$id" --arg e "$state" '{id: $id, ok: false, error: "HAProxy: \($e)"}'
        return
    fi
    # "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...",
    # then a line a server: found by the header's names, not by position.
    # srv_admin_state's bits: 8 and 16 are a drain, 1, 2, 4, 32 and 64 maintenance.
    awk 'function bit(a, b) { return int(a / b) % 2 }
         /^#/ { for (i = 2; i <= NF; i++) col[$i] = i - 1; next }
         NF > 4 && col["srv_name"] {
             a = $col["srv_admin_state"]
             m = bit(a, 1) || bit(a, 2) || bit(a, 4) || bit(a, 32) || bit(a, 64)
             printf "%s %s %s %s\n", $col["srv_name"], $col["srv_uweight"],
                 m ? "maint" : bit(a, 8) || bit(a, 16) ? "drain" : "ready", $col["srv_op_state"]
         }' <<<"$state" |
        jq -cR --argjson id "$id" -s '
            [split("\n")[] | select(length > 0) | split(" ")
             | {(.[0]): {weight: (.[1] | tonumber), state: .[2], up: (.[3] == "2")}}]
            | {id: $id, ok: true, servers: (add // {})}'
}

IFS= read -r hello || exit 0
if [ "$(jq -r '.n3router' <<<"$hello")" != 1 ]; then
    echo '{"ok": false, "error": "haproxy-socat.sh speaks router protocol 1"}'
    exit 1
fi
if [ -z "$sock" ] || [ -z "$backend" ]; then
    echo '{"ok": false, "error": "usage: haproxy-socat.sh ADMIN_SOCKET BACKEND"}'
    exit 1
fi
echo '{"ok": true, "protocol": 1}'

while IFS= read -r req; do
    id=$(jq -c '.id' <<<"$req")
    case $(jq -r '.op' <<<"$req") in
    read) reply "$id" ;;
    health)
        # HAProxy answers `show info` when it is up and the socket is ours.
        if out=$(hap "show info" 2>&1) && grep -q '^Name:' <<<"$out"; then
            jq -cn --argjson id "$id" '{id: $id, ok: true}'
        else
            reply "$id" "HAProxy's admin socket $sock: ${out:-no answer}"
        fi
        ;;
    set)
        # One `set weight` a server; a weight above 0 takes a drained one out of its drain
        # (`set server ... state ready` on a server that is not drained changes nothing).
        cmds=$(jq -r --arg b "$backend" '.weights | to_entries
            | map((if .value > 0 then "set server \($b)/\(.key) state ready; " else "" end)
                  + "set weight \($b)/\(.key) \(.value)") | join("; ")' <<<"$req")
        # HAProxy says nothing when a command worked.
        out=$(hap "$cmds" 2>&1)
        if [ -n "$(tr -d '[:space:]' <<<"$out")" ]; then
            reply "$id" "HAProxy refused it: $(tr '\n' ' ' <<<"$out")"
        else
            reply "$id"
        fi
        ;;
    drain)
        server=$(jq -r '.server' <<<"$req")
        out=$(hap "set server $backend/$server state drain" 2>&1)
        if [ -n "$(tr -d '[:space:]' <<<"$out")" ]; then
            reply "$id" "HAProxy refused it: $(tr '\n' ' ' <<<"$out")"
        else
            reply "$id"
        fi
        ;;
    *) reply "$id" "unknown op" ;;
    esac
done
