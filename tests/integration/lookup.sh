#!/usr/bin/env bash
# The `lookup` transform against real PostgreSQL and Redis: every row gets exactly the columns
# PostgreSQL's LEFT JOIN gives it (NULLs, unicode, quotes, NaN and infinities, keys the
# reference lacks); a second run is served by Redis (level 2) with the same output; Redis killed
# mid-run: the run goes on through the database and every row is still enriched correctly; a
# row changed in the database is seen once its TTL has passed, not before (and an absent key
# added later likewise, after the negative TTL); four instances sharing the cache fetch each
# key once; on_miss skip and fail; Redis hashes as the reference; an unreachable database is
# retried, then named in the error.
source "$(dirname "$0")/lib.sh"
require_services SLUICE_PG_DSN SLUICE_REDIS_URL
command -v jq >/dev/null || fail "jq is missing: run scripts/install-deps"
export PGHOST PGPORT PGUSER PGDATABASE

table="lookup_meters_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $table"
  lib_cleanup
}
trap cleanup EXIT
psql -qc "CREATE TABLE $table (id text PRIMARY KEY, region text, tariff text, capacity_kw float8,
                               since timestamptz, phases int)"
# 4,000 of the 5,000 meters; odd values on a few.
psql -qc "INSERT INTO $table SELECT format('m-%s', lpad(i::text, 6, '0')), 'region-' || (i % 7),
            CASE WHEN i % 3 = 0 THEN NULL ELSE 'tariff ' || (i % 5) END, i * 0.25,
            '2020-01-01'::timestamptz + i * interval '1 hour', CASE WHEN i % 2 = 0 THEN 3 END
          FROM generate_series(1, 4000) i"
psql -qc "UPDATE $table SET region = 'Zürich \"quoted\" back\\slash, {braces}' WHERE id = 'm-000001'"
psql -qc "UPDATE $table SET capacity_kw = 'NaN' WHERE id = 'm-000002'"
psql -qc "UPDATE $table SET capacity_kw = '-Infinity', tariff = '' WHERE id = 'm-000003'"
psql -qc "UPDATE $table SET capacity_kw = 1.7976931348623157e308 WHERE id = 'm-000004'"

redis_port=$(start_redis "$work/redis")
redis_url="redis://127.0.0.1:$redis_port"

# pipeline NAME ROWS [lookup options, one per line indented by 4] [batch rows] [engine]
pipeline() {
  cat > "$1.yaml" <<YAML
pipeline: lookup-$1
settings: {engine: ${5:-sequential}}
nodes:
  readings: {type: generate, shape: meter, rows: $2, meters: 5000, interval: 60s, end: "2026-01-01T00:00:00Z", seed: 4, batch_rows: ${4:-1000}}
  enrich:
    type: lookup
    inputs: [readings]
    key: [meter_id]
    from: {postgres: "$SLUICE_PG_DSN", table: $table, key: [id], columns: [region, tariff, capacity_kw, since, phases]}
    $3
  out: {type: file, inputs: [enrich], path: "$work/$1.jsonl", fsync: false}
YAML
  echo "$1.yaml"
}

# check_join NAME: every row of NAME.jsonl has the reference columns PostgreSQL's join gives.
check_join() {
  psql -qAtc "SELECT json_object_agg(id, json_build_array(region, tariff, capacity_kw::text,
                to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), phases))
              FROM $table" > "$work/ref.json"
  python3 - "$work/$1.jsonl" "$work/ref.json" <<'PY' || fail "$1: enriched rows differ from PostgreSQL's join"
import json, math, sys
ref = json.load(open(sys.argv[2]))
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += 1
    want = ref.get(r["meter_id"], [None, None, None, None, None])
    cap = r["capacity_kw"]
    if want[2] is None:
        cap_ok = cap is None
    elif isinstance(cap, str):
        cap_ok = cap == want[2]
    else:
        cap_ok = float(want[2]) == cap
    got = [r["region"], r["tariff"], r["since"], r["phases"]]
    exp = [want[0], want[1], want[3], want[4]]
    assert cap_ok and got == exp, f"row {n} {r['meter_id']}: {got} {cap!r}, want {exp} {want[2]!r}"
print(f"{n} rows equal to the join", file=sys.stderr)
PY
}
counter() { jq -r ".nodes[] | select(.id == \"enrich\") | (.counters + .gauges).$2 // 0" "$1"; }

# 1. From the database, filling Redis; then again from Redis: the same rows.
"$sluice" run -q --report a.json "$(pipeline a 20000 "redis: {url: \"$redis_url\", prefix: \"t$$:\"}")"
check_join a
check_eq "$(counter a.json db_keys)" 5000 "keys fetched from the database (each once)"
check_eq "$(counter a.json not_found)" 4000 "rows whose meter the reference lacks (1,000 meters x 4)"
"$sluice" run -q --report b.json "$(pipeline b 20000 "redis: {url: \"$redis_url\", prefix: \"t$$:\"}")"
cmp -s a.jsonl b.jsonl || fail "the run served by Redis differs from the run served by the database"
check_eq "$(counter b.json db_queries)" 0 "database queries of the run served by Redis"
check_eq "$(( $(counter b.json l1_hits) + $(counter b.json l2_hits) ))" 20000 "rows answered by the two cache levels"
check_eq "$(counter b.json not_found)" 4000 "rows without a meter, answered from Redis's negative entries"

# Level 2's keys are readable: prefix, fingerprint, then the meter id as text.
check_eq "$(redis-cli -p "$redis_port" --scan --pattern "t$$:*:m-000001" | wc -l)" 1 \
  "Redis keys of meter m-000001"

# A value in Redis that is not a row this lookup wrote (garbage under one of its keys) is not
# trusted: that key is read from the database, and counted.
python3 - "$redis_port" "t$$:" <<'PY' || fail "could not corrupt a Redis value"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*args):
    msg = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    s.sendall(msg)
    return s.recv(1 << 20)
reply = cmd(b"KEYS", sys.argv[2].encode() + b"*m-000007")
key = reply.split(b"\r\n")[2]
assert cmd(b"SET", key, b"V\x01\xff\xff\xff\x7fgarbage").startswith(b"+OK"), reply
PY
"$sluice" run -q --report b2.json "$(pipeline b2 20000 "redis: {url: \"$redis_url\", prefix: \"t$$:\"}")"
cmp -s a.jsonl b2.jsonl || fail "a corrupted Redis value changed the output"
check_eq "$(counter b2.json redis_bad_values)" 1 "Redis values refused"
check_eq "$(counter b2.json db_keys)" 1 "keys read from the database instead"

# 2. Redis killed mid-run: the breaker sends lookups to the database; nothing is lost or wrong.
#    A small level 1 (64 KiB) makes every batch ask level 2.
opts="cache: {max_bytes: 64KiB}
    redis: {url: \"$redis_url\", prefix: \"k$$:\", timeout: 100ms}"
"$sluice" run -q --report c.json "$(pipeline c 1000000 "$opts" 500)" &
run=$!
for _ in $(seq 300); do
  [ "$(redis-cli -p "$redis_port" dbsize)" -ge 5000 ] && break
  sleep 0.05
done
stop_redis "$work/redis"
wait $run || fail "the run with Redis killed mid-way failed"
[ "$(counter c.json redis_failures)" -ge 1 ] || fail "Redis was not killed while the run read it"
[ "$(counter c.json db_queries)" -ge 2 ] || fail "no database queries after Redis went away"
check_join c
check_eq "$(wc -l < c.jsonl)" 1000000 "rows of the run with Redis killed"
redis_port=$(start_redis "$work/redis")

# 3. A changed row and a new one are seen once their TTLs (Redis: 10 s) have passed, not before.
#    "Before" is run e, which must start within the TTL of what run d cached: the TTL is long
#    beside the two ASan runs and the psql calls in between (3 s was not, on a loaded machine).
opts="redis: {url: \"$redis_url\", prefix: \"x$$:\", ttl: 10s, negative_ttl: 10s}"
"$sluice" run -q "$(pipeline d 5000 "$opts")"
psql -qc "UPDATE $table SET region = 'moved' WHERE id = 'm-000010'"
psql -qc "INSERT INTO $table (id, region) VALUES ('m-004500', 'new')"
"$sluice" run -q "$(pipeline e 5000 "$opts")"
check_eq "$(jq -r 'select(.meter_id == "m-000010") | .region' e.jsonl | sort -u)" "region-3" "m-000010 within its TTL"
check_eq "$(jq -r 'select(.meter_id == "m-004500") | .region' e.jsonl | sort -u)" "null" "m-004500 within the negative TTL"
sleep 10.5  # past the TTL of everything run d (or e) put in Redis
"$sluice" run -q "$(pipeline f 5000 "$opts")"
check_eq "$(jq -r 'select(.meter_id == "m-000010") | .region' f.jsonl | sort -u)" "moved" "m-000010 after its TTL"
check_eq "$(jq -r 'select(.meter_id == "m-004500") | .region' f.jsonl | sort -u)" "new" "m-004500 after the negative TTL"
check_join f

# 4. Four instances share the node's cache: each key is fetched once (coalesced), whatever
#    instance asks first.
"$sluice" run -q --report g.json "$(pipeline g 40000 "parallelism: 4" 250 parallel)"
check_eq "$(counter g.json db_keys)" 5000 "keys fetched by four instances"
# The hit rate is the node's, over its four instances.
check_eq "$(jq -r '.nodes[] | select(.id == "enrich") | (.counters.l1_hits / (.counters.l1_hits
           + (.counters.l2_hits // 0) + .counters.db_hits) * 1e6 | round)' g.json)" \
  "$(jq -r '.nodes[] | select(.id == "enrich") | .gauges.l1_hit_rate * 1e6 | round' g.json)" \
  "l1_hit_rate of four instances"
sort g.jsonl > g.sorted
"$sluice" run -q "$(pipeline h 40000 "" 250)"
sort h.jsonl | cmp -s - g.sorted || fail "four instances enriched differently from one"

# 5. on_miss: skip drops (and counts) the rows without a reference row; fail stops the run.
"$sluice" run -q --report s.json "$(pipeline s 5000 "on_miss: skip")"
check_eq "$(counter s.json rows_skipped)" "$(counter s.json not_found)" "skipped rows"
check_eq "$(wc -l < s.jsonl)" "$(( 5000 - $(counter s.json not_found) ))" "rows kept by on_miss: skip"
[ "$(jq -r 'select(.region == null) | .meter_id' s.jsonl | wc -l)" -le 1 ] || fail "skip kept rows without a reference row"
expect_failure 1 "no reference row for meter_id = 'm-00....' (on_miss: fail" "on_miss: fail" \
  "$sluice" run -q "$(pipeline x 5000 "on_miss: fail")"

# 6. Redis hashes as the reference (one hash per meter, fields parsed by `schema`).
python3 - "$redis_port" "h$$:" > hashes.json <<'PY' || fail "could not write the hashes"
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*args):
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    assert s.recv(1 << 16)[:1] in (b":", b"+"), args
want = {}
for i in range(1, 301):
    m = f"m-{i:06d}"
    row = {"region": f"reg {i % 4} ünï \"q\"", "capacity_kw": i * 0.5, "phases": i % 3 or None}
    if i == 7:
        row["capacity_kw"] = float("inf")
    fields = [(k, v if k != "capacity_kw" or v != float("inf") else "inf")
              for k, v in row.items() if v is not None]
    cmd("HSET", sys.argv[2] + m, *[x for kv in fields for x in kv])
    want[m] = {**row, "capacity_kw": "Infinity" if i == 7 else row["capacity_kw"]}
print(json.dumps(want))
PY
cat > hashes.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, rows: 5000, meters: 500, interval: 60s,
             end: "2026-01-01T00:00:00Z", seed: 4}
  enrich:
    type: lookup
    inputs: [readings]
    key: [meter_id]
    from: {redis: "$redis_url", key_prefix: "h$$:", schema: {region: string, capacity_kw: float64, phases: int64}}
  out: {type: file, inputs: [enrich], path: "$work/hashes.jsonl", fsync: false}
YAML
"$sluice" run -q hashes.yaml
python3 - hashes.jsonl hashes.json <<'PY' || fail "rows enriched from Redis hashes differ from the hashes"
import json, sys
want = json.load(open(sys.argv[2]))
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += 1
    w = want.get(r["meter_id"], {"region": None, "capacity_kw": None, "phases": None})
    got = {k: r[k] for k in ("region", "capacity_kw", "phases")}
    assert got == w, (r["meter_id"], got, w)
assert n == 5000, n
PY
redis-cli -p "$redis_port" HSET "h$$:m-000009" capacity_kw "lots" >/dev/null
expect_failure 1 "Redis hash 'h$$:m-000009', field 'capacity_kw': 'lots' is not a float64" "a hash field that is not a float64" \
  "$sluice" run -q hashes.yaml

# 7. Mistakes found before the first row: a missing table, a string key against an integer
#    reference key (exit 2, naming the option's place and what to do).
for bad in "table: no_such_table_$$, key: [id]|does not exist" \
           "query: \"SELECT id::int AS n, region FROM $table\", key: [n]|cast one of them"; do
  opts=${bad%|*}
  want=${bad#*|}
  cat > bad.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, rows: 10, meters: 5, seed: 4}
  enrich: {type: lookup, inputs: [readings], key: [meter_id],
           from: {postgres: "$SLUICE_PG_DSN", $opts}}
  out: {type: "null", inputs: [enrich]}
YAML
  expect_failure 2 "bad.yaml:[0-9]*:[0-9]*: node 'enrich': option 'from': .*$want" "exit code for: $opts" \
    "$sluice" run -q bad.yaml
done

# A char(n) reference key matches 'm-000001' but returns it padded: refused, not a silent miss.
psql -qc "CREATE TABLE padded_$$ (id char(12) PRIMARY KEY, region text);
          INSERT INTO padded_$$ VALUES ('m-000001', 'x')"
cat > padded.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, rows: 10, meters: 5, seed: 4}
  enrich: {type: lookup, inputs: [readings], key: [meter_id],
           from: {postgres: "$SLUICE_PG_DSN", table: padded_$$, key: [id]}}
  out: {type: "null", inputs: [enrich]}
YAML
expect_failure 1 "returned a key that is none of those asked for" "a char(n) reference key" \
  "$sluice" run -q padded.yaml
psql -qc "DROP TABLE padded_$$"

# 8. An unreachable database: retried (from.retries), then the run fails naming it.
sed "s/postgres: \"[^\"]*\"/postgres: \"host=127.0.0.1 port=1 connect_timeout=1\"/; s/key: \[id\],/key: [id], retries: 2,/" \
  "$(pipeline y 100 "")" > y2.yaml
expect_failure 1 "giving up after 3 attempts.*127.0.0.1:1" "the database unreachable" \
  "$sluice" run -q y2.yaml
