# bench/switch: how long each switch took, from n3load's records of a series of switches.
#
#   jq -s --arg odd V1 --arg even V2 -f bench/switch-runs.jq FILE.jsonl
#
# Marks labelled "switch-N" (N from 1): switch N moves the traffic to V1 when N is odd, to V2
# when it is even. For each, the requests that left (t_wire, else t_sent, else t_sched) from its
# mark to the next mark (or the end), in that order; the switch is done at the first request of
# the last run that V answered with a 2xx or 3xx status, to the end of that window (the method
# waits long enough after each switch for the window to end on V). One object a switch:
#   run        N
#   version    V
#   requests   requests in the window
#   switch_ms  from the mark to the first request of that run, in ms; null: it never came
#   errors     requests in the window that failed (transport errors, statuses of 400 and up)
#   slowest_ms the longest latency of a request in the window (what a restart's gap costs the
#              requests that wait in HAProxy's retries instead of failing)
#   other      requests in the window after the switch answered by another version (0 by
#              construction; kept as a check of this file)
def left: .t_wire // .t_sent // .t_sched;
def on_version($v): .error == null and .version == $v and .status >= 200 and .status < 400;

([.[] | select(.type == "mark" and (.label | test("^switch-[0-9]+$")))] | sort_by(.t)) as $marks
| ([.[] | select(.type == "request")] | sort_by(left)) as $reqs
| [range(0; $marks | length) as $i
   | $marks[$i] as $m
   | (if $i + 1 < ($marks | length) then $marks[$i + 1].t else 1e300 end) as $stop
   | ($m.label | ltrimstr("switch-") | tonumber) as $n
   | (if $n % 2 == 1 then $odd else $even end) as $v
   | [$reqs[] | select(left >= $m.t and left < $stop)] as $w
   | ([range(0; $w | length) | select($w[.] | on_version($v) | not)] | last) as $last_other
   | (if $last_other == null then 0 else $last_other + 1 end) as $first
   | {
       run: $n,
       version: $v,
       requests: ($w | length),
       switch_ms: (if $first < ($w | length)
                   then ((($w[$first] | left) - $m.t) * 1e6 | round) / 1000 else null end),
       errors: ([$w[] | select(.error != null or .status >= 400)] | length),
       slowest_ms: ([$w[] | .latency_ms // 0] | max // 0),
       other: ([$w[$first:][] | select(on_version($v) | not)] | length)
     }]
