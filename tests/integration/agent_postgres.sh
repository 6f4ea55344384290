#!/usr/bin/env bash
# Workload 5's storage: examples/agent-postgres.yaml ships the host's samples into PostgreSQL (a
# day-partitioned samples table, the next day's partition made ahead, partitions past the
# retention dropped, an index on (host, ts)), and `sluice report --samples` charts them. On the
# real /proc: four samples 300 ms apart. Checks: every sample's rows, each with one timestamp;
# today's and tomorrow's partitions; the (host, ts) index; an expired partition of the sink's
# naming dropped with its rows on the next run while one of another name stays; the report's four
# charts from the stored rows; a host that is not there, and a table of two hosts without --host,
# fail clearly.
example="$(cd "$(dirname "$0")/../../examples" && pwd)/agent-postgres.yaml"
source "$(dirname "$0")/lib.sh"
require_services SLUICE_PG_DSN
export PGHOST PGPORT PGUSER PGDATABASE PGOPTIONS="-c client_min_messages=warning"
table="samples_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $table"
  lib_cleanup
}
trap cleanup EXIT
export PG_DSN="$SLUICE_PG_DSN" SAMPLES_TABLE=$table INTERVAL=300ms RETENTION=30d

# Four samples, then the run ends (the agent itself samples until stopped).
sed -e 's/^    type: procfs$/    type: procfs\n    samples: 4\n    host: test-host/' "$example" > agent.yaml
grep -q "samples: 4" agent.yaml || fail "the example was not adapted: $(cat agent.yaml)"
"$sluice" run -q --report r1.json agent.yaml
check_eq "$(psql -qAtc "SELECT count(DISTINCT ts), count(DISTINCT host) FROM $table")" "4|1" "samples stored"
check_eq "$(psql -qAtc "SELECT count(*) FROM $table WHERE metric = 'memory_used_bytes'")" 4 \
  "one memory_used_bytes row per sample"
# Rates start with the second sample.
check_eq "$(psql -qAtc "SELECT count(*) FROM $table WHERE metric = 'cpu_busy_ratio'")" 3 \
  "cpu_busy_ratio rows (from the second sample)"
today=$(date -u +%Y%m%d) tomorrow=$(date -u -d tomorrow +%Y%m%d)
check_eq "$(psql -qAtc "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i
                        JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '$table'::regclass")" \
  "${table}_p$today,${table}_p$tomorrow" "partitions (today and one ahead)"
check_eq "$(psql -qAtc "SELECT count(*) FROM pg_indexes WHERE tablename = '$table' AND indexdef LIKE '%(host, ts)'")" \
  1 "the (host, ts) index"

# An expired partition of the sink's naming goes on the next run (with its rows); one named
# otherwise stays.
psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE ${table}_p20200101 PARTITION OF $table FOR VALUES FROM ('2020-01-01') TO ('2020-01-02');
CREATE TABLE ${table}_archive PARTITION OF $table FOR VALUES FROM ('2019-01-01') TO ('2019-02-01');
INSERT INTO $table (ts, host, metric, labels, value) VALUES
  ('2020-01-01 12:00+00', 'test-host', 'memory_used_bytes', '{}', 1),
  ('2019-01-05 12:00+00', 'test-host', 'memory_used_bytes', '{}', 2);
SQL
"$sluice" run -q --report r2.json agent.yaml
check_eq "$(psql -qAtc "SELECT to_regclass('${table}_p20200101') IS NULL, to_regclass('${table}_archive') IS NULL")" \
  "t|f" "the expired partition dropped, the foreign one kept"
check_eq "$(psql -qAtc "SELECT string_agg(value::text, ',') FROM $table WHERE ts < '2021-01-01'")" 2 \
  "rows left before 2021"
check_eq "$(jq -r '.nodes[] | select(.id == "samples") | .counters.partitions_dropped' r2.json)" 1 \
  "partitions_dropped"
check_eq "$(psql -qAtc "SELECT count(DISTINCT ts) FROM $table WHERE ts > '2021-01-01'")" 8 "samples of both runs"

# The report, from the stored rows.
"$sluice" report --samples "$SLUICE_PG_DSN" --table "$table" -o host.html 2>report.err
grep -q "wrote host.html: host test-host, " report.err || fail "report said: $(cat report.err)"
for chart in chart-cpu chart-memory chart-disk chart-network; do
  grep -q "id=\"$chart\"" host.html || fail "host.html lacks $chart"
done
grep -q "<path class=\"series\"" host.html || fail "host.html draws no line"
expect_failure 1 "no samples of host 'elsewhere'" "a host not in the table" \
  "$sluice" report --samples "$SLUICE_PG_DSN" --table "$table" --host elsewhere -o x.html
psql -qc "INSERT INTO $table (ts, host, metric, labels, value) VALUES (now(), 'other-host', 'memory_used_bytes', '{}', 1)"
expect_failure 2 "several hosts (other-host, test-host): name one with --host" "two hosts, no --host" \
  "$sluice" report --samples "$SLUICE_PG_DSN" --table "$table" -o x.html
expect_failure 2 "--since 'soon'" "a bad --since" \
  "$sluice" report --samples "$SLUICE_PG_DSN" --table "$table" --host test-host --since soon -o x.html
echo "agent_postgres: ok"
