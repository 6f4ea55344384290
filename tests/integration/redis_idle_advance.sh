#!/usr/bin/env bash
# An idle stream still closes its windows (scripts/services' Redis and PostgreSQL): 2,000
# readings (100 meters, 20 rounds a minute apart) go into a stream; a worker with
# `idle_timeout: 1s` folds them into 5-minute windows. Once the stream has been idle for a
# second, the source's watermark follows the wall clock, so the last window — whose end no
# reading ever passed — fires while the worker is still running (it stops only after 30 s idle),
# not at the end of the run. Checked: every window row is in the table while the worker runs.
source "$(dirname "$0")/lib.sh"
require_services SLUICE_REDIS_URL SLUICE_PG_DSN
tag="i$$"
stream="$tag-readings"
table="idle_$tag"
worker_pid=""
cleanup() {
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then kill -9 "$worker_pid"; fi
  rcli DEL "$stream" >/dev/null || echo "cleanup: DEL failed" >&2
  psql -qc "DROP TABLE IF EXISTS $table" >/dev/null || echo "cleanup: DROP failed" >&2
  lib_cleanup
}
trap cleanup EXIT

cat > load.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, meters: 100, interval: 60s, rows: 2000, seed: 3,
             end: "2026-02-01T00:00:00Z"}
  stream: {type: redis_stream, inputs: [readings], url: "\${SLUICE_REDIS_URL}", stream: $stream}
YAML
"$sluice" run -q load.yaml 2>load.err || fail "load: $(tail -3 load.err)"
psql -qc "CREATE TABLE $table (meter_id text, window_start timestamptz, window_end timestamptz,
          readings int8, late_rows int8, PRIMARY KEY (meter_id, window_start))"
cat > worker.yaml <<YAML
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $stream
    group: idle
    create_group: true
    start_id: "0"
    event_time: ts
    idle_timeout: 1s
    schema: {meter_id: string, ts: timestamp, kwh: float64}
  win: {type: window, inputs: [src], time: ts, group_by: [meter_id], size: 5m,
        aggregates: [readings: count()]}
  db: {type: postgres, inputs: [win], dsn: "\${SLUICE_PG_DSN}", table: $table, mode: upsert,
       key: [meter_id, window_start], on_conflict: keep}
YAML
"$sluice" run -q --until-idle 30s worker.yaml 2>run.err &
worker_pid=$!
# 20 rounds from 00:00: windows 00:00, 00:05, 00:10, 00:15 for each of 100 meters. The last
# (00:15-00:20) holds the latest readings: no reading passes its end, only idle time can.
want=400
for _ in $(seq 300); do
  got=$(psql -qAtc "SELECT count(*) FROM $table")
  [ "$got" = "$want" ] && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker ended first: $(tail -3 run.err)"
  sleep 0.05
done
check_eq "$got" "$want" "window rows written while the worker runs"
kill -0 "$worker_pid" 2>/dev/null || fail "the worker had ended: the windows came from its end"
check_eq "$(psql -qAtc "SELECT sum(readings) FROM $table")" 2000 "readings over all windows"
check_eq "$(psql -qAtc "SELECT count(*) FROM $table WHERE window_start = '2026-02-01T00:15:00Z'")" \
  100 "last windows (closed by idle time)"
kill -TERM "$worker_pid"
wait "$worker_pid" || fail "the worker's graceful stop failed: $(tail -3 run.err)"
worker_pid=""
echo "redis idle advance: ok ($want windows, the last closed by the idle watermark)"
