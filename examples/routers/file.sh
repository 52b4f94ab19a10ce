#!/usr/bin/env bash
# file.sh: an n3ctl router plugin (router protocol 1, docs/plugins.md) that keeps the weights
# in a JSON file instead of a load balancer. It is the example to start from, and the plugin
# n3ctl's tests run. Needs bash and jq.
#
#   "router": {"type": "exec",
#              "command": ["/opt/n3ctl/examples/routers/file.sh", "/var/lib/app/weights.json"]}
#
# The file, written whole after every change (a temporary file renamed over it):
#   {"servers": {"web1_blue": {"weight": 100, "state": "ready"},
#                "web1_green": {"weight": 0, "state": "ready"}}}
# A server the hello names that the file does not have is added at weight 0.
set -u

state=${1:-}

# answer JSON: one line on stdout, the answer to the request being handled.
answer() {
    printf '%s\n' "$1"
}

# refuse ID MESSAGE: {"id": ID, "ok": false, "error": MESSAGE}
refuse() {
    jq -cn --argjson id "$1" --arg e "$2" '{id: $id, ok: false, error: $e}'
}

# save JSON: write the file whole, or fail (its error on stderr).
save() {
    local tmp
    tmp=$(mktemp -- "$state.XXXXXX") || return 1
    if printf '%s\n' "$1" >"$tmp" && mv -f -- "$tmp" "$state"; then
        return 0
    fi
    rm -f -- "$tmp"
    return 1
}

# ---- the hello: the protocol, and the servers ----

IFS= read -r hello || exit 0
proto=$(jq -r '.n3router // "none"' <<<"$hello" 2>/dev/null) || proto=unreadable
if [ "$proto" != 1 ]; then
    jq -cn --arg p "$proto" '{ok: false, error: "file.sh speaks router protocol 1, not \($p)"}'
    exit 1
fi
if [ -z "$state" ]; then
    jq -cn '{ok: false, error: "usage: file.sh WEIGHTS.json (the file that keeps the weights)"}'
    exit 1
fi
# The file as it is (or a new one), with every server of the hello in it.
if [ -e "$state" ]; then
    old=$(jq -c '.' -- "$state" 2>&1) || {
        jq -cn --arg f "$state" --arg e "$old" '{ok: false, error: "\($f) is not JSON: \($e)"}'
        exit 1
    }
else
    old='{"servers": {}}'
fi
new=$(jq -c --argjson hello "$hello" '
    if (.servers | type) != "object" then error("it has no \"servers\" object") else . end
    | reduce ($hello.servers[].name) as $n (.;
        if .servers[$n] == null then .servers[$n] = {weight: 0, state: "ready"} else . end)' \
    <<<"$old" 2>&1) || {
    jq -cn --arg f "$state" --arg e "$new" '{ok: false, error: "\($f): \($e)"}'
    exit 1
}
if [ "$new" != "$old" ] && ! err=$(save "$new" 2>&1); then
    jq -cn --arg f "$state" --arg e "$err" '{ok: false, error: "cannot write \($f): \($e)"}'
    exit 1
fi
answer '{"ok": true, "protocol": 1}'

# ---- the requests, one a line: the answer on one line, and the file's new content ----

# shellcheck disable=SC2016 # a jq program
program='
    def servers: {servers: .servers};
    . as $s
    | $req.id as $id
    | if $req.op == "read" then [{id: $id, ok: true} + servers, null]
      elif $req.op == "health" then [{id: $id, ok: true}, null]
      elif $req.op == "set" then
        ($req.weights | to_entries) as $w
        | [$w[] | select($s.servers[.key] == null) | .key] as $unknown
        | [$w[] | select((.value | type) != "number" or .value < 0 or .value > 100
                         or .value != (.value | floor)) | .key] as $bad
        | if ($unknown | length) > 0 then
            [{id: $id, ok: false, error: "no server \($unknown | join(", ")) in \($file)"}, null]
          elif ($bad | length) > 0 then
            [{id: $id, ok: false, error: "not a weight from 0 to 100: \($bad | join(", "))"}, null]
          else
            # A weight above 0 takes a drained server out of its drain.
            (reduce $w[] as $e (.;
                .servers[$e.key].weight = $e.value
                | if $e.value > 0 then .servers[$e.key].state = "ready" else . end)) as $new
            | [{id: $id, ok: true} + ($new | servers), $new]
          end
      elif $req.op == "drain" then
        if $s.servers[$req.server] != null then
            (.servers[$req.server].state = "drain") as $new
            | [{id: $id, ok: true} + ($new | servers), $new]
        else [{id: $id, ok: false, error: "no server \($req.server) in \($file)"}, null]
        end
      else [{id: $id, ok: false, error: "file.sh does not know the op \($req.op)"}, null]
      end
    | .[]'

while IFS= read -r req || [ -n "$req" ]; do
    id=$(jq -c '.id // null' <<<"$req" 2>/dev/null) || id=null
    if ! out=$(jq -c --argjson req "$req" --arg file "$state" "$program" -- "$state" 2>&1); then
        refuse "$id" "cannot read $state: $out"
        continue
    fi
    { IFS= read -r reply; IFS= read -r new; } <<<"$out"
    if [ "$new" != null ] && ! err=$(save "$new" 2>&1); then
        refuse "$id" "cannot write $state: $err"
        continue
    fi
    answer "$reply"
done
