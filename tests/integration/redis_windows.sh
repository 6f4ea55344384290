#!/usr/bin/env bash
# Windows exactly once across a crash (scripts/services' Redis and PostgreSQL): 40,000 meter
# readings (200 meters every 20 s, 66 minutes) in a Redis stream; a worker reads them in batches
# of 170 (which do not divide a window's 9,000 readings, so some batches straddle two windows),
# folds them into 15-minute windows per meter and upserts each window's row into PostgreSQL
# keyed by (meter_id, window_start) with on_conflict: keep. The worker is killed with kill -9
# once some windows are in the table and it holds entries, then started again under the same
# consumer name. Afterwards the table equals PostgreSQL's own GROUP BY meter_id,
# date_bin('15 min', ts) over every reading (the ground truth): no window missing, none extra,
# every count, sum, min and max equal; nothing pending in the group.
# Beside the windows, the same readings go through `anomaly` (voltage per meter, z-score plus
# bounds, baselines in a SQLite state file) into an alerts table: afterwards the alerts are
# exactly the injected outliers (voltage > 260 V) and each meter's saved baseline holds each of
# its normal readings once — the restart neither forgot the baseline nor folded a redelivered
# reading twice.
# Why keep: a batch straddling a written window and an open one is redelivered after the crash,
# and recomputes the written window from its few rows; with on_conflict: update that partial row
# overwrote the complete one (160 of 1,000 windows wrong when this test was written).
source "$(dirname "$0")/lib.sh"
require_services SLUICE_REDIS_URL SLUICE_PG_DSN
tag="w$$"
stream="$tag-readings"
raw="raw_$tag"
agg="agg_$tag"
alerts="alerts_$tag"
worker_pid=""
cleanup() {
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then kill -9 "$worker_pid"; fi
  rcli DEL "$stream" >/dev/null || echo "cleanup: DEL $stream failed" >&2
  psql -qc "DROP TABLE IF EXISTS $raw, $agg, $alerts" >/dev/null || echo "cleanup: DROP failed" >&2
  lib_cleanup
}
trap cleanup EXIT

rows=40000
psql -qc "CREATE TABLE $raw (meter_id text, ts timestamptz, kwh float8, voltage float8,
          current float8, power_factor float8)"
cat > load.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, meters: 200, interval: 20s, rows: $rows, seed: 5,
             end: "2026-03-01T00:00:00Z", batch_rows: 5000, anomalies: 0.01}
  stream: {type: redis_stream, inputs: [readings], url: "\${SLUICE_REDIS_URL}", stream: $stream}
  raw: {type: postgres, inputs: [readings], dsn: "\${SLUICE_PG_DSN}", table: $raw}
YAML
"$sluice" run -q load.yaml 2>load.err || fail "load: $(tail -3 load.err)"
check_eq "$(rcli XLEN "$stream")" "$rows" "XLEN after the load"
psql -qc "CREATE TABLE $agg (meter_id text, window_start timestamptz, window_end timestamptz,
          readings int8, kwh float8, v_min float8, v_max float8, late_rows int8,
          PRIMARY KEY (meter_id, window_start))"
psql -qc "CREATE TABLE $alerts (meter_id text, ts timestamptz, kwh float8, voltage float8,
          current float8, power_factor float8, anomaly_score float8, anomaly_mean float8,
          anomaly_stddev float8, anomaly_samples int8, anomaly_reason text,
          PRIMARY KEY (meter_id, ts))"
outliers=$(psql -qAtc "SELECT count(*) FROM $raw WHERE voltage > 260")
[ "$outliers" -gt 100 ] || fail "the load injected only $outliers outliers"

cat > worker.yaml <<YAML
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $stream
    group: windows
    consumer: the-worker
    start_id: "0"
    batch_rows: 170
    linger: 20ms
    event_time: ts
    idle_timeout: 1s   # then the wall clock closes the last windows, before --until-idle stops
    schema: {meter_id: string, ts: timestamp, kwh: float64, voltage: float64, current: float64,
             power_factor: float64}
  slow: {type: fault_inject, inputs: [src], delay: 25ms}
  win:
    type: window
    inputs: [slow]
    time: ts
    group_by: [meter_id]
    size: 15m
    aggregates:
      - readings: count()
      - kwh: sum(kwh)
      - v_min: min(voltage)
      - v_max: max(voltage)
  db: {type: postgres, inputs: [win], dsn: "\${SLUICE_PG_DSN}", table: $agg, mode: upsert,
       key: [meter_id, window_start], on_conflict: keep}
  anom:
    type: anomaly
    inputs: [slow]
    value: voltage
    group_by: [meter_id]
    time: ts
    threshold: 5
    bounds: voltage > 260
    state: $work/baselines.db
    snapshot_every: 200ms
  alerts: {type: postgres, inputs: [anom], dsn: "\${SLUICE_PG_DSN}", table: $alerts,
           mode: upsert, key: [meter_id, ts], on_conflict: keep}
YAML
"$sluice" run -q --until-idle 3s worker.yaml 2>run1.err &
worker_pid=$!
# Kill it once windows are in the table and it holds entries it has not acknowledged.
for _ in $(seq 600); do
  held=$(rcli XPENDING "$stream" windows | head -1)
  [[ "$held" =~ ^[0-9]+$ ]] || held=0  # NOGROUP until the worker made the group
  done_rows=$(psql -qAtc "SELECT count(*) FROM $agg")
  [ "$held" -gt 0 ] && [ "$done_rows" -ge 400 ] && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker ended before it was killed: $(tail -3 run1.err)"
  sleep 0.05
done
[ "$done_rows" -ge 400 ] || fail "no window reached the table before the kill"
kill -9 "$worker_pid"
set +e
wait "$worker_pid"
set -e
worker_pid=""
pending=$(rcli XPENDING "$stream" windows | head -1)
[ "$pending" -gt 0 ] || fail "nothing was pending at the kill: the test proves nothing"
echo "killed with $done_rows window rows written and $pending entries pending"

"$sluice" run -q --until-idle 3s --report run2.json worker.yaml 2>run2.err \
  || fail "restart: $(tail -3 run2.err)"
check_eq "$(rcli XPENDING "$stream" windows | head -1)" 0 "entries pending after the restart"

# The ground truth, from every reading, against the table: count rows that differ either way.
diff_rows=$(psql -qAtc "
  WITH truth AS (
    SELECT meter_id, date_bin('15 minutes', ts, '1970-01-01 00:00:00+00') AS window_start,
           count(*) AS readings, sum(kwh) AS kwh, min(voltage) AS v_min, max(voltage) AS v_max
      FROM $raw GROUP BY 1, 2)
  SELECT count(*) FROM truth FULL OUTER JOIN $agg a USING (meter_id, window_start)
   WHERE truth.readings IS DISTINCT FROM a.readings
      OR a.window_end IS DISTINCT FROM truth.window_start + interval '15 minutes'
      OR abs(truth.kwh - a.kwh) > 1e-9 * abs(truth.kwh) OR a.kwh IS NULL
      OR truth.v_min IS DISTINCT FROM a.v_min OR truth.v_max IS DISTINCT FROM a.v_max")
check_eq "$diff_rows" 0 "window rows that differ from GROUP BY date_bin over all readings"
windows=$(psql -qAtc "SELECT count(*) FROM $agg")
check_eq "$windows" 1000 "window rows (200 meters x 5 windows)"
check_eq "$(psql -qAtc "SELECT sum(readings) FROM $agg")" "$rows" "readings over all windows"
# Anomalies: exactly the injected outliers (bounds), none of the normal readings (z-score).
check_eq "$(psql -qAtc "SELECT count(*) FROM $alerts")" "$outliers" "alerts (injected outliers)"
check_eq "$(psql -qAtc "SELECT count(*) FROM $alerts a JOIN $raw r USING (meter_id, ts)
                        WHERE r.voltage > 260 AND a.voltage = r.voltage")" "$outliers" \
  "alerts that are the injected outliers, with their values"
# Baselines: each meter's normal readings folded once each (none forgotten, none twice).
psql -qAtF ',' -c "SELECT meter_id, count(*), avg(voltage) FROM $raw WHERE voltage <= 260
                   GROUP BY 1 ORDER BY 1" > want_baselines.csv
python3 - "$work/baselines.db" want_baselines.csv <<'PY' || fail "saved baselines differ from the normal readings"
import csv, sqlite3, struct, sys
got = {}
for key, n, mean in sqlite3.connect(sys.argv[1]).execute(
        "SELECT key, n, mean FROM sluice_baselines WHERE node = 'anom'"):
    assert key[0] == 1, key
    (length,) = struct.unpack("<I", key[1:5])
    got[key[5:5 + length].decode()] = (n, mean)
want = {m: (int(n), float(a)) for m, n, a in csv.reader(open(sys.argv[2]))}
assert got.keys() == want.keys(), (len(got), len(want))
for m, (n, a) in want.items():
    assert got[m][0] == n, (m, got[m], n)
    assert abs(got[m][1] - a) <= 1e-9 * abs(a), (m, got[m], a)
PY
echo "redis windows: ok ($outliers anomalies = the injected outliers; baselines hold each normal reading once)"
echo "redis windows: ok ($windows windows equal the ground truth after kill -9 and restart)"
