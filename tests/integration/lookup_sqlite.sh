#!/usr/bin/env bash
# The `lookup` transform with its reference in a SQLite file (no servers): every row gets exactly
# the columns SQLite's LEFT JOIN gives it — NULLs, unicode, quotes and backslashes, huge and
# negative values, timestamps, keys the reference lacks — with a table and with a query; a
# reference with two rows for one key fails the run naming the key columns; a missing file or
# column is a clear error.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is missing: run scripts/install-deps"
command -v jq >/dev/null || fail "jq is missing: run scripts/install-deps"

sqlite3 ref.db <<'SQL'
CREATE TABLE meters (id TEXT PRIMARY KEY, region TEXT, tariff TEXT, capacity_kw REAL,
                     since TIMESTAMP, phases INTEGER);
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 400)
INSERT INTO meters
SELECT printf('m-%06d', i), 'region-' || (i % 7),
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'tariff ' || (i % 5) END, i * 0.25,
       strftime('%Y-%m-%dT%H:%M:%SZ', '2020-01-01', '+' || i || ' hours'),
       CASE WHEN i % 2 = 0 THEN 3 END
  FROM g;
UPDATE meters SET region = 'Zürich "quoted" back\slash, {braces} ' || char(9) WHERE id = 'm-000001';
UPDATE meters SET capacity_kw = -1.7976931348623157e308, phases = -9223372036854775808
 WHERE id = 'm-000002';
UPDATE meters SET region = '', tariff = '' WHERE id = 'm-000003';
CREATE TABLE dup (id TEXT, region TEXT);
INSERT INTO dup VALUES ('m-000001', 'a'), ('m-000001', 'b');
SQL

# pipeline NAME FROM-OPTIONS [on_miss]
pipeline() {
  cat > "$1.yaml" <<YAML
pipeline: lookup-sqlite-$1
nodes:
  readings: {type: generate, shape: meter, rows: 5000, meters: 500, interval: 60s,
             end: "2026-01-01T00:00:00Z", seed: 9}
  enrich:
    type: lookup
    inputs: [readings]
    key: [meter_id]
    from: {sqlite: "$work/ref.db", $2}
    on_miss: "${3:-null}"
  out: {type: file, inputs: [enrich], path: "$work/$1.jsonl", fsync: false}
YAML
  echo "$1.yaml"
}

check_join() {  # check_join NAME: NAME.jsonl against SQLite's LEFT JOIN
  sqlite3 -json ref.db "SELECT id, region, tariff, capacity_kw, since, phases FROM meters" > ref.json
  python3 - "$1.jsonl" ref.json <<'PY' || fail "$1: enriched rows differ from SQLite's join"
import json, sys
ref = {r["id"]: r for r in json.load(open(sys.argv[2]))}
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += 1
    want = ref.get(r["meter_id"], {})
    for col in ("region", "tariff", "capacity_kw", "since", "phases"):
        assert r[col] == want.get(col), f"row {n} {r['meter_id']} {col}: {r[col]!r}, want {want.get(col)!r}"
assert n == 5000, n
print(f"{n} rows equal to the join", file=sys.stderr)
PY
}

"$sluice" run -q --report t.json "$(pipeline t "table: meters, key: [id]")"
check_join t
check_eq "$(jq -r '.nodes[] | select(.id == "enrich") | .counters.not_found' t.json)" 1000 \
  "rows of the 100 meters not in the table (10 each)"
"$sluice" run -q "$(pipeline q "query: \"SELECT id, region, tariff, capacity_kw, since, phases FROM meters WHERE id > ''\", key: [id]")"
cmp -s t.jsonl q.jsonl || fail "a query as the reference gave other rows than the table"

expect_failure 1 "more than one row for a key (key columns id)" "two reference rows for one key" \
  "$sluice" run -q "$(pipeline d "table: dup, key: [id]")"

expect_failure 2 "no column 'regoin'; the reference has: id, region" "a column the reference lacks" \
  "$sluice" run -q "$(pipeline c "table: meters, key: [id], columns: [regoin]")"

# A string key against an INTEGER reference key would match nothing, silently: refused.
sqlite3 ref.db "CREATE TABLE by_number (n INTEGER PRIMARY KEY, label TEXT); INSERT INTO by_number VALUES (1, 'one')"
expect_failure 2 "reference key 'n' is declared int64, but the input's key column 1 is string" "a string key against an INTEGER reference key" \
  "$sluice" run -q "$(pipeline n "table: by_number, key: [n]")"
