#!/usr/bin/env bash
# Scale-out on one Redis consumer group (scripts/services' Redis and PostgreSQL): three workers
# (`sluice run` processes, consumers w1..w3) read one stream of 60,000 meter readings and upsert
# them into PostgreSQL by (meter_id, ts). w2 is killed with kill -9 while it holds entries; w1
# and w3 claim them after claim_idle (XAUTOCLAIM) and finish. Afterwards: every reading is in
# the table exactly once with its values, nothing is pending in the group, and the survivors'
# reports count the claimed entries.
source "$(dirname "$0")/lib.sh"
require_services SLUICE_REDIS_URL SLUICE_PG_DSN
tag="s$$"
stream="$tag-readings"
table="readings_$tag"
pids=()
cleanup() {
  for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; fi; done
  rcli DEL "$stream" >/dev/null || echo "cleanup: DEL $stream failed" >&2
  psql -qc "DROP TABLE IF EXISTS $table" >/dev/null || echo "cleanup: DROP $table failed" >&2
  lib_cleanup
}
trap cleanup EXIT

rows=60000
cat > load.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, meters: 500, interval: 1s, rows: $rows, seed: 11,
             batch_rows: 5000}
  stream: {type: redis_stream, inputs: [readings], url: "\${SLUICE_REDIS_URL}", stream: $stream}
  copy: {type: file, inputs: [readings], path: loaded.jsonl, format: jsonl}
YAML
"$sluice" run -q load.yaml 2>load.err || fail "load: $(tail -3 load.err)"
check_eq "$(rcli XLEN "$stream")" "$rows" "XLEN after the load"
psql -qc "CREATE TABLE $table (meter_id text, ts timestamptz, kwh float8, voltage float8,
          current float8, power_factor float8, PRIMARY KEY (meter_id, ts))"

cat > worker.yaml <<YAML
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $stream
    group: workers
    consumer: \${WORKER}
    start_id: "0"
    batch_rows: 200
    linger: 50ms
    claim_idle: 2s
    schema: {meter_id: string, ts: timestamp, kwh: float64, voltage: float64, current: float64,
             power_factor: float64}
  slow: {type: fault_inject, inputs: [src], delay: 40ms}
  db: {type: postgres, inputs: [slow], dsn: "\${SLUICE_PG_DSN}", table: $table, mode: upsert,
       key: [meter_id, ts]}
YAML
start_worker() {
  WORKER=$1 "$sluice" run -q --until-idle 8s --report "$1.json" worker.yaml 2>"$1.err" &
  pids+=("$!")
  eval "pid_$1=$!"
}
start_worker w1
start_worker w2
start_worker w3
# Kill w2 once it holds entries (read, not yet acknowledged) and rows are arriving.
for _ in $(seq 300); do
  held=$(rcli XPENDING "$stream" workers - + 1000 w2 | awk '$0 == "w2" { n++ } END { print n + 0 }')
  in_table=$(psql -qAtc "SELECT count(*) FROM $table")
  [ "$held" -gt 0 ] && [ "$in_table" -gt 3000 ] && break
  sleep 0.1
done
[ "$held" -gt 0 ] || fail "w2 never held entries"
kill -9 "$pid_w2"
set +e
wait "$pid_w2"
wait "$pid_w1"; code1=$?
wait "$pid_w3"; code3=$?
set -e
check_eq "$code1" 0 "w1 exit code ($(tail -3 w1.err))"
check_eq "$code3" 0 "w3 exit code ($(tail -3 w3.err))"
check_eq "$(rcli XPENDING "$stream" workers | head -1)" 0 "entries pending after the survivors"
claimed=$(jq -s '[.[].nodes[] | select(.id == "src") | .counters.claimed_entries // 0] | add' \
  w1.json w3.json)
[ "$claimed" -gt 0 ] || fail "the survivors claimed nothing from the killed worker"
# Every reading exactly once, with its values (the primary key forbids twice).
check_eq "$(psql -qAtc "SELECT count(*) FROM $table")" "$rows" "rows in the table"
check_readings_table "$table" loaded.jsonl
echo "redis scale-out: ok ($rows readings once each over 3 workers, w2 killed, $claimed claimed)"
