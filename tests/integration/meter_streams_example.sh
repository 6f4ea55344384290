#!/usr/bin/env bash
# Workload 3 as the README runs it (scripts/services' Redis and PostgreSQL, a webhook receiver of
# its own): examples/meter-load.yaml fills a stream with 30,000 readings of 1,000 meters, 1 % of
# them outliers; examples/meter-streams.yaml reads them in a consumer group, writes 15-minute
# windows per meter into PostgreSQL and sends the anomalies to a Redis alerts stream and to the
# webhook, every reading enriched first with its meter's region, tariff and capacity from the
# meters table of examples/meters.sql (a lookup through a cache and Redis; m-001000 is not in
# it). Checks: the table equals GROUP BY meter_id, date_bin('15 min', ts) over the readings, and
# each window's region and tariff are its meter's (null for m-001000);
# the alerts stream and the webhook each got exactly the outliers (by meter and time, with their
# voltage); the webhook URL's token appears nowhere in the run's output; a later run's readings
# for windows the first run wrote are counted late (the window's state file), not lost.
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
require_services SLUICE_REDIS_URL SLUICE_PG_DSN
examples="$here/../../examples"
tag="e$$"
export STREAM="$tag-readings" ALERTS_STREAM="$tag-alerts" STATE_DIR="$work"
export METERS_TABLE="meters_$tag"
table="meter_15min_$tag"
receiver_pid=""
cleanup() {
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid"; fi
  rcli DEL "$STREAM" "$ALERTS_STREAM" >/dev/null || echo "cleanup: DEL failed" >&2
  psql -qc "DROP TABLE IF EXISTS $table, raw_$tag, $METERS_TABLE" >/dev/null \
    || echo "cleanup: DROP failed" >&2
  lib_cleanup
}
trap cleanup EXIT

python3 "$here/webhook_receiver.py" port hooks.jsonl &
receiver_pid=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
[ -s port ] || fail "the webhook receiver did not start"
export WEBHOOK_URL="http://127.0.0.1:$(cat port)/services/T0/B1/secret-token-$tag"

sed -e "s/TABLE IF NOT EXISTS meters /TABLE IF NOT EXISTS $METERS_TABLE /" \
    -e "s/^INSERT INTO meters$/INSERT INTO $METERS_TABLE/" "$examples/meters.sql" \
  | psql -q -v ON_ERROR_STOP=1 >/dev/null
check_eq "$(psql -qAtc "SELECT count(*) FROM $METERS_TABLE")" 999 "meters of examples/meters.sql"

rows=30000
ROWS=$rows "$sluice" run -q --set nodes.readings.anomalies=0.01 \
  --set 'nodes.readings.end="2026-05-01T00:00:00Z"' "$examples/meter-load.yaml" 2>load.err \
  || fail "load: $(tail -3 load.err)"
check_eq "$(rcli XLEN "$STREAM")" "$rows" "XLEN after the load"
# The same readings into a table of their own, for the ground truth.
psql -qc "CREATE TABLE raw_$tag (meter_id text, ts timestamptz, kwh float8, voltage float8,
          current float8, power_factor float8)"
cat > raw.yaml <<YAML
nodes:
  src: {type: redis_stream, url: "\${SLUICE_REDIS_URL}", stream: $STREAM, group: raw,
        create_group: true, start_id: "0",
        schema: {meter_id: string, ts: timestamp, kwh: float64, voltage: float64,
                 current: float64, power_factor: float64}}
  db: {type: postgres, inputs: [src], dsn: "\${SLUICE_PG_DSN}", table: raw_$tag}
YAML
"$sluice" run -q --until-idle 2s raw.yaml 2>raw.err || fail "raw copy: $(tail -3 raw.err)"
check_eq "$(psql -qAtc "SELECT count(*) FROM raw_$tag")" "$rows" "readings copied"

"$sluice" run --until-idle 8s --report report.json --set "nodes.meter_15min.table=$table" \
  "$examples/meter-streams.yaml" >run.out 2>&1 || fail "meter-streams: $(tail -5 run.out)"

diff_rows=$(psql -qAtc "
  WITH truth AS (
    SELECT meter_id, date_bin('15 minutes', ts, '1970-01-01 00:00:00+00') AS window_start,
           count(*) AS readings, sum(kwh) AS kwh, min(voltage) AS vmin, max(voltage) AS vmax
      FROM raw_$tag GROUP BY 1, 2)
  SELECT count(*) FROM truth FULL OUTER JOIN $table w USING (meter_id, window_start)
   WHERE truth.readings IS DISTINCT FROM w.readings OR w.kwh IS NULL
      OR abs(truth.kwh - w.kwh) > 1e-9 * abs(truth.kwh)
      OR truth.vmin IS DISTINCT FROM w.voltage_min OR truth.vmax IS DISTINCT FROM w.voltage_max")
check_eq "$diff_rows" 0 "window rows that differ from GROUP BY date_bin"
check_eq "$(psql -qAtc "SELECT count(*) FROM $table w LEFT JOIN $METERS_TABLE m ON m.id = w.meter_id
                        WHERE w.region IS DISTINCT FROM m.region OR w.tariff IS DISTINCT FROM m.tariff")" \
  0 "windows whose region or tariff is not their meter's"
check_eq "$(psql -qAtc "SELECT count(DISTINCT meter_id) FROM $table WHERE region IS NULL")" 1 \
  "meters without metadata (m-001000)"

psql -qAtF ' ' -c "SELECT meter_id, (extract(epoch FROM ts) * 1e6)::bigint, voltage FROM raw_$tag
                   WHERE voltage > 253 OR voltage < 207 ORDER BY 1, 2" > want_alerts.txt
outliers=$(wc -l < want_alerts.txt)
[ "$outliers" -gt 100 ] || fail "only $outliers outliers were injected"
# The alerts stream, read back by sluice itself into JSONL.
cat > alerts.yaml <<YAML
nodes:
  src: {type: redis_stream, url: "\${SLUICE_REDIS_URL}", stream: $ALERTS_STREAM, group: check,
        create_group: true, start_id: "0",
        schema: {meter_id: string, ts: timestamp, voltage: float64, anomaly_reason: string}}
  out: {type: file, inputs: [src], path: alerts.jsonl, format: jsonl}
YAML
"$sluice" run -q --until-idle 2s alerts.yaml 2>alerts.err || fail "alerts: $(tail -3 alerts.err)"
psql -qAtF ' ' -c "SELECT id, region FROM $METERS_TABLE" > regions.txt
python3 - want_alerts.txt alerts.jsonl hooks.jsonl regions.txt <<'PY' || fail "the alerts differ from the injected outliers"
import datetime, json, sys
def us(v):
    return round(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1e6)
want = sorted((m, int(t), float(v)) for m, t, v in (l.split() for l in open(sys.argv[1])))
stream = [json.loads(l) for l in open(sys.argv[2])]
assert all("bounds" in a["anomaly_reason"] for a in stream), stream[:3]
got = sorted((a["meter_id"], us(a["ts"]), a["voltage"]) for a in stream)
assert got == want, ("stream", len(got), len(want), got[:3], want[:3])
hooks = []
for line in open(sys.argv[3]):
    r = json.loads(line)
    assert r["status"] == 200, r
    hooks.extend(json.loads(r["body"]))
got = sorted((a["meter_id"], us(a["ts"]), a["voltage"]) for a in hooks)
assert got == want, ("webhook", len(got), len(want), got[:3], want[:3])
region = dict(l.split() for l in open(sys.argv[4]))
wrong = [a for a in hooks if a["region"] != region.get(a["meter_id"])]
assert not wrong, ("alerts whose region is not their meter's", wrong[:3])
PY
if grep -q "secret-token" run.out report.json; then fail "the webhook URL's token was printed"; fi
# A later run gets one more reading per meter for the windows the first run wrote: they are late
# (the window's state file kept how far the written windows go) — dropped and counted, not
# made into a window of one reading that the upsert would silently keep out.
before=$(psql -qAtc "SELECT sum(readings), count(*) FROM $table")
ROWS=1000 "$sluice" run -q --set nodes.readings.anomalies=0 \
  --set 'nodes.readings.end="2026-05-01T00:00:05Z"' "$examples/meter-load.yaml" 2>load2.err \
  || fail "second load: $(tail -3 load2.err)"
"$sluice" run --until-idle 8s --report report2.json --set "nodes.meter_15min.table=$table" \
  "$examples/meter-streams.yaml" >run2.out 2>&1 || fail "meter-streams, second run: $(tail -5 run2.out)"
check_eq "$(jq -r '.nodes[] | select(.id == "per_meter") | .counters.late_dropped' report2.json)" 1000 \
  "readings of already written windows, counted late in the second run"
check_eq "$(psql -qAtc "SELECT sum(readings), count(*) FROM $table")" "$before" "the table after the second run"

echo "meter-streams example: ok ($(psql -qAtc "SELECT count(*) FROM $table") windows equal GROUP BY; $outliers outliers in the alerts stream and at the webhook; 1000 readings of written windows late in a later run)"
