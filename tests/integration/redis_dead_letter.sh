#!/usr/bin/env bash
# redis_stream with on_error: dead_letter against the Redis of scripts/services:
#   1. entries whose kwh is not a number go to `src.dead_letter` — entry id, error, fields as
#      JSON equal to what was XADDed — the rest to the main sink; all acknowledged;
#   2. max_deliveries: entries delivered too often before (own pending after a restart, and a
#      dead consumer's, claimed) are routed instead of delivered again; the others are
#      delivered; nothing is left pending;
#   3. json_field: the columns come from one JSON field; an entry whose JSON is cut off or holds
#      a value of the wrong type is routed with the field as it was.
source "$(dirname "$0")/lib.sh"
require_services SLUICE_REDIS_URL
tag="dl$$"
cleanup() {
  rcli DEL "$tag-bad" "$tag-poison" "$tag-json" >/dev/null || echo "cleanup: DEL failed" >&2
  lib_cleanup
}
trap cleanup EXIT

reader() {  # reader STREAM GROUP CONSUMER [extra option lines]
  cat > "$2.yaml" <<YAML
pipeline: dl-$2
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $1
    group: $2
    consumer: $3
    start_id: "0"
    on_error: dead_letter
    schema: {meter_id: string, ts: timestamp, kwh: float64}
${4:-}
  out: {type: file, inputs: [src], path: "$2.jsonl", format: jsonl}
  dead: {type: file, inputs: [src.dead_letter], path: "$2-dead.jsonl", format: jsonl}
YAML
  echo "$2.yaml"
}

# --- 1. bad values ----------------------------------------------------------------------------
for i in $(seq 1 130); do
  kwh=$i.5
  if [ $((i % 13)) -eq 7 ]; then kwh="n/a"; elif [ $((i % 13)) -eq 3 ]; then kwh="1.5.2"; fi
  echo "XADD $tag-bad * meter_id m-$i ts 2026-01-01T00:00:00.000000Z kwh $kwh"
done | rcli > bad.ids
"$sluice" run --until-idle 2s --report bad.json "$(reader "$tag-bad" gb c1)" >bad.out 2>&1 \
  || fail "dead_letter run: $(tail -5 bad.out)"
check_eq "$(jq -r .meter_id gb.jsonl | sort | tr '\n' ' ')" \
  "$(seq 1 130 | awk '$1 % 13 != 7 && $1 % 13 != 3 {print "m-" $1}' | sort | tr '\n' ' ')" \
  "the good entries"
# Each dead letter: the entry's id, an error naming kwh, and its fields as XADDed.
want=$(seq 1 130 | awk '$1 % 13 == 7 || $1 % 13 == 3' | while read -r i; do
  kwh="1.5.2"; [ $((i % 13)) -eq 7 ] && kwh="n/a"
  printf '%s\t{"kwh":"%s","meter_id":"m-%s","ts":"2026-01-01T00:00:00.000000Z"}\n' \
    "$(sed -n "${i}p" bad.ids)" "$kwh" "$i"
done)
check_eq "$(jq -r '[.position, .record] | @tsv' gb-dead.jsonl)" "$want" \
  "dead letters: entry id and fields"
check_eq "$(jq -r .node gb-dead.jsonl | sort -u)" src "dead letters' node"
[ "$(grep -c "field 'kwh'" gb-dead.jsonl)" -eq 20 ] || fail "errors do not name kwh: $(head -2 gb-dead.jsonl)"
check_eq "$(rcli XPENDING "$tag-bad" gb | head -1)" 0 "entries pending after routing"
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.dead_letter_records' bad.json)" 20 \
  "dead_letter_records in the report"
check_eq "$(jq '.nodes[] | select(.id == "src") | .gauges.pending' bad.json)" 0 \
  "the group's pending gauge"

# --- 2. max_deliveries ------------------------------------------------------------------------
for i in $(seq 1 50); do echo "XADD $tag-poison * meter_id p-$i ts 2026-01-01T00:00:00Z kwh 1.5"; done \
  | rcli > poison.ids
rcli XGROUP CREATE "$tag-poison" gp 0 >/dev/null
# 'gone' took entries 1-20 and died; 'me' took 21-30 and was restarted. Entries 1-5 were
# delivered 5 times before, 21-23 four times (RETRYCOUNT sets the count).
rcli XREADGROUP GROUP gp gone COUNT 20 STREAMS "$tag-poison" '>' >/dev/null
rcli XREADGROUP GROUP gp me COUNT 10 STREAMS "$tag-poison" '>' >/dev/null
for i in 1 2 3 4 5; do rcli XCLAIM "$tag-poison" gp gone 0 "$(sed -n "${i}p" poison.ids)" RETRYCOUNT 5 JUSTID >/dev/null; done
for i in 21 22 23; do rcli XCLAIM "$tag-poison" gp me 0 "$(sed -n "${i}p" poison.ids)" RETRYCOUNT 4 JUSTID >/dev/null; done
check_eq "$(rcli XPENDING "$tag-poison" gp - + 50 | paste - - - - | awk '$4 > 1 {print $1 "/" $4}' | tr '\n' ' ')" \
  "$(for i in 1 2 3 4 5; do printf '%s/5 ' "$(sed -n "${i}p" poison.ids)"; done; for i in 21 22 23; do printf '%s/4 ' "$(sed -n "${i}p" poison.ids)"; done)" \
  "delivery counts before the run"
sleep 0.1  # idle past claim_idle
"$sluice" run --until-idle 2s --report poison.json \
  "$(reader "$tag-poison" gp me "    max_deliveries: 3
    claim_idle: 1ms")" >poison.out 2>&1 || fail "max_deliveries run: $(tail -5 poison.out)"
dead_ids="1 2 3 4 5 21 22 23"
check_eq "$(jq -r .meter_id gp.jsonl | sort | tr '\n' ' ')" \
  "$(seq 1 50 | grep -vxE '1|2|3|4|5|21|22|23' | sed 's/^/p-/' | sort | tr '\n' ' ')" \
  "entries delivered under max_deliveries"
check_eq "$(jq -r .position gp-dead.jsonl | sort | tr '\n' ' ')" \
  "$(for i in $dead_ids; do sed -n "${i}p" poison.ids; done | sort | tr '\n' ' ')" \
  "entries routed for too many deliveries"
check_eq "$(jq -r '.error | capture("delivered (?<n>[0-9]+) times").n' gp-dead.jsonl | sort | uniq -c \
             | awk '{print $1 "x" $2}' | tr '\n' ' ')" \
  "3x5 5x6 " "delivery counts named in the errors (own pending 4+1, claimed 5+1)"
check_eq "$(jq -r 'select(.position == "'"$(sed -n 1p poison.ids)"'") | .record' gp-dead.jsonl)" \
  '{"kwh":"1.5","meter_id":"p-1","ts":"2026-01-01T00:00:00Z"}' "a routed entry's fields"
check_eq "$(rcli XPENDING "$tag-poison" gp | head -1)" 0 "entries pending after the run"
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.over_max_deliveries' poison.json)" 8 \
  "over_max_deliveries in the report"

# --- 3. json_field: the columns in one JSON field; entries that are not such JSON are routed ----
{
  for i in 1 2 4 5 7; do
    printf 'XADD %s * payload "{\\"meter_id\\":\\"j-%s\\",\\"ts\\":\\"2026-01-01T00:00:00Z\\",\\"kwh\\":%s.25,\\"x\\":[1]}"\n' \
      "$tag-json" "$i" "$i"
  done
  printf 'XADD %s * payload "{\\"meter_id\\": \\"j-3\\", \\"kwh\\":"\n' "$tag-json"
  printf 'XADD %s * payload "{\\"meter_id\\":\\"j-6\\",\\"kwh\\":\\"lots\\"}"\n' "$tag-json"
} | rcli > json.ids
check_eq "$(rcli XLEN "$tag-json")" 7 "entries in the JSON stream"
"$sluice" run --until-idle 2s "$(reader "$tag-json" gj c1 "    json_field: payload")" >json.out 2>&1 \
  || fail "json_field run: $(tail -5 json.out)"
check_eq "$(jq -c '[.meter_id, .kwh]' gj.jsonl | tr '\n' ' ')" \
  '["j-1",1.25] ["j-2",2.25] ["j-4",4.25] ["j-5",5.25] ["j-7",7.25] ' "rows read from the JSON field"
check_eq "$(jq -r .position gj-dead.jsonl | tr '\n' ' ')" "$(sed -n '6p;7p' json.ids | tr '\n' ' ')" \
  "entries whose JSON field did not decode"
check_eq "$(jq -r '.record | fromjson | .payload' gj-dead.jsonl | sed -n 1p)" '{"meter_id": "j-3", "kwh":' \
  "a routed entry's field as it was"
check_eq "$(rcli XPENDING "$tag-json" gj | head -1)" 0 "entries pending after the JSON read"
echo "redis_dead_letter: OK"
