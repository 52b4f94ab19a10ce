# How long after a mark the traffic was all on one version, from n3load's records:
#
#   jq -s --arg mark LABEL --arg version V -f tests/load/switch-time.jq FILE.jsonl
#
# The requests that left at or after the mark (t_wire: a connection was free for them; for
# those that never got one, when they were taken up), in that order; the switch is done at
# the first of the last run of requests that were all answered by V with a 2xx or 3xx
# status, through to the end of the file. Prints:
#   mark            the mark's time (seconds on n3load's clock)
#   switched_at     when the first request of that run left, or null (the run never came:
#                   the last request was not answered by V)
#   switch_ms       switched_at - mark, in ms, or null
#   resolution_ms   the gap before it, from the last request that was not answered by V
#                   (the switch happened in it), or null
#   after_mark      requests that left after the mark; of them, how many were answered by
#                   another version (other), by none (errors: transport errors, statuses
#                   of 400 and up)
# A missing mark is an error (jq exits 5).
def left: .t_wire // .t_sent // .t_sched;
def on_version($v): .error == null and .version == $v and .status >= 200 and .status < 400;

(map(select(.type == "mark" and .label == $mark)) | first) as $m
| if $m == null then error("no mark labelled \($mark) in the records") else . end
| [.[] | select(.type == "request" and left >= $m.t)] | sort_by(left) as $after
| ([range(0; $after | length) | select($after[.] | on_version($version) | not)] | last) as $last_other
| (if $last_other == null then 0 else $last_other + 1 end) as $first
| {
    mark: $m.t,
    switched_at: (if $first < ($after | length) then ($after[$first] | left) else null end),
    after_mark: ($after | length),
    other: ([$after[] | select(.error == null and .status < 400 and .version != $version)] | length),
    errors: ([$after[] | select(.error != null or .status >= 400)] | length)
  }
# Differences of times to the microsecond, in ms, without binary fractions' noise.
| def ms($a; $b): (($a - $b) * 1e6 | round) / 1000;
  .switch_ms = (if .switched_at == null then null else ms(.switched_at; .mark) end)
| .resolution_ms = (if .switched_at == null or $last_other == null then null
                    else ms(.switched_at; $after[$last_other] | left) end)
