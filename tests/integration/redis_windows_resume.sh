#!/usr/bin/env bash
# A stop is not the end of a stream (scripts/services' Redis and PostgreSQL): 2,000 readings
# (100 meters, rounds a minute apart from 00:00) go into a stream; a worker folds them into
# 5-minute windows and stops with --until-idle. The window 00:15-00:20 is still open (no reading
# passed its end): it must not reach the table half-filled, and its entries must stay pending.
# Then 1,000 more readings (00:20-00:29) arrive and the worker runs again: 00:15-00:20 comes
# out complete (5 readings per meter), and so does 00:20-00:25. The table always equals
# PostgreSQL's GROUP BY over the readings of the windows that closed.
source "$(dirname "$0")/lib.sh"
require_services SLUICE_REDIS_URL SLUICE_PG_DSN
tag="r$$"
stream="$tag-readings"
table="resume_$tag"
cleanup() {
  rcli DEL "$stream" >/dev/null || echo "cleanup: DEL failed" >&2
  psql -qc "DROP TABLE IF EXISTS $table" >/dev/null || echo "cleanup: DROP failed" >&2
  lib_cleanup
}
trap cleanup EXIT

load() {  # load ROWS END
  cat > load.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, meters: 100, interval: 60s, rows: $1, seed: 9,
             end: "$2"}
  stream: {type: redis_stream, inputs: [readings], url: "\${SLUICE_REDIS_URL}", stream: $stream}
YAML
  "$sluice" run -q load.yaml 2>load.err || fail "load: $(tail -3 load.err)"
}
psql -qc "CREATE TABLE $table (meter_id text, window_start timestamptz, window_end timestamptz,
          readings int8, late_rows int8, PRIMARY KEY (meter_id, window_start))"
cat > worker.yaml <<YAML
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $stream
    group: resume
    consumer: the-worker   # a rerun reads its own pending entries (the open window's) first
    create_group: true
    start_id: "0"
    batch_rows: 130
    event_time: ts
    schema: {meter_id: string, ts: timestamp}
  win: {type: window, inputs: [src], time: ts, group_by: [meter_id], size: 5m,
        aggregates: [readings: count()]}
  db: {type: postgres, inputs: [win], dsn: "\${SLUICE_PG_DSN}", table: $table, mode: upsert,
       key: [meter_id, window_start], on_conflict: keep}
YAML
windows() {  # windows: "start readings rows" per window start in the table
  psql -qAtF ' ' -c "SELECT to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI'), min(readings),
                            max(readings), count(*) FROM $table GROUP BY 1 ORDER BY 1" | tr '\n' ';'
}

load 2000 "2026-02-01T00:00:00Z"
"$sluice" run -q --until-idle 2s --report run1.json worker.yaml 2>run1.err \
  || fail "first run: $(tail -3 run1.err)"
check_eq "$(windows)" "00:00 5 5 100;00:05 5 5 100;00:10 5 5 100;" \
  "windows after the first stop (00:15 still open)"
abandoned=$(jq '.nodes[] | select(.id == "win") | .counters.windows_abandoned' run1.json)
check_eq "$abandoned" 1 "windows abandoned at the first stop"
pending=$(rcli XPENDING "$stream" resume | head -1)
[ "$pending" -ge 500 ] || fail "only $pending entries pending: the open window's rows were acknowledged"

load 1000 "2026-02-01T00:20:00Z"
"$sluice" run -q --until-idle 2s worker.yaml 2>run2.err || fail "second run: $(tail -3 run2.err)"
check_eq "$(windows)" "00:00 5 5 100;00:05 5 5 100;00:10 5 5 100;00:15 5 5 100;00:20 5 5 100;" \
  "windows after the second stop (00:15 completed, 00:25 open)"
echo "redis windows resume: ok (open windows kept across stops, completed by the next run)"
