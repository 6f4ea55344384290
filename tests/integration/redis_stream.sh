#!/usr/bin/env bash
# redis_stream sink and source against the Redis of scripts/services ($SLUICE_REDIS_URL):
#   1. meter readings XADDed and written to a JSONL file by one pipeline (fan-out): the stream
#      holds every row, and sampled entries equal the file's rows field by field;
#   2. a consumer group reads it into a file (--until-idle): every entry, nothing left pending;
#      with event_time, the source's watermark is the newest reading less the lateness;
#   3. a reader killed with kill -9 mid-run, then rerun under the same consumer name: its pending
#      entries come first, every entry is delivered, nothing left pending;
#   4. entries with a bad kwh: on_error skip counts and acknowledges them, fail names the entry;
#   5. entries left pending by a dead consumer are claimed after claim_idle (XAUTOCLAIM);
#   6. maxlen trims the stream to about that many entries;
#   7. a server with a password: taken from REDIS_PASSWORD, shown in no output or report;
#   8. SIGTERM mid-read: exit 0, everything read written and acknowledged, nothing pending.
source "$(dirname "$0")/lib.sh"
require_services SLUICE_REDIS_URL
tag="t$$"
streams=("$tag-load" "$tag-bad" "$tag-claim" "$tag-trim")
pids=()
cleanup() {
  for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; fi; done
  rcli DEL "${streams[@]}" >/dev/null || echo "cleanup: DEL ${streams[*]} failed" >&2
  lib_cleanup  # stops the servers start_redis started, removes $work
}
trap cleanup EXIT
schema='{meter_id: string, ts: timestamp, kwh: float64, voltage: float64, current: float64, power_factor: float64}'

# Rows of JSONL files (complete lines only: a file cut by kill -9 may end mid-line) as
# "meter_id|ts|kwh", sorted.
keys_of() {
  python3 - "$@" <<'PY'
import json, sys
rows = []
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        rows.append(f"{r['meter_id']}|{r['ts']}|{r['kwh']!r}")
print("\n".join(sorted(rows)))
PY
}

# --- 1. load: generate meter -> redis_stream + file --------------------------------------------
cat > load.yaml <<YAML
pipeline: meter-load-test
nodes:
  readings: {type: generate, shape: meter, meters: 1000, interval: 1s, rows: 20000, seed: 7,
             batch_rows: 3000}
  stream: {type: redis_stream, inputs: [readings], url: "\${SLUICE_REDIS_URL}", stream: $tag-load}
  copy: {type: file, inputs: [readings], path: loaded.jsonl, format: jsonl}
YAML
"$sluice" run load.yaml >load.out 2>&1 || fail "load run: $(tail -5 load.out)"
check_eq "$(rcli XLEN "$tag-load")" 20000 "XLEN after the load"
rcli XRANGE "$tag-load" - + > xrange.txt
python3 - <<'PY' || fail "sampled entries differ from the file's rows"
import json, datetime
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
lines = open("xrange.txt").read().split("\n")
entries = []  # redis-cli prints each entry as its id then field, value, ... one per line
i = 0
while i + 13 <= len(lines) and lines[i]:
    fields = dict(zip(lines[i + 1:i + 13:2], lines[i + 2:i + 13:2]))
    entries.append((lines[i], fields))
    i += 13
rows = [json.loads(l) for l in open("loaded.jsonl")]
assert len(entries) == 20000 == len(rows), (len(entries), len(rows))
for k in range(0, 20000, 400):  # 50 samples
    eid, f = entries[k]
    r = rows[k]
    assert sorted(f) == sorted(r), (eid, f, r)
    assert f["meter_id"] == r["meter_id"], (eid, f, r)
    assert ts(f["ts"]) == ts(r["ts"]), (eid, f, r)
    for c in ("kwh", "voltage", "current", "power_factor"):
        assert float(f[c]) == r[c], (eid, c, f[c], r[c])
print("50 sampled entries equal the file's rows")
PY
keys_of loaded.jsonl > all.keys
check_eq "$(wc -l < all.keys)" 20000 "distinct rows loaded"
check_eq "$(sort -u all.keys | wc -l)" 20000 "rows loaded are distinct (meter_id, ts)"

# --- 2. a consumer group reads everything -------------------------------------------------------
reader() {  # reader GROUP CONSUMER OUTDIR [extra yaml lines for the source]
  cat > "read-$1-$2.yaml" <<YAML
pipeline: read-$1
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $tag-load
    group: $1
    consumer: $2
    start_id: "0"
    batch_rows: 500
    schema: $schema
${4:-}
  out: {type: file, inputs: [${5:-src}], path: "$3/part-{n}.jsonl", format: jsonl, roll_rows: 1000}
YAML
  echo "read-$1-$2.yaml"
}
"$sluice" run --until-idle 2s --report read.json "$(reader g1 c1 r1)" >read.out 2>&1 \
  || fail "reading run: $(tail -5 read.out)"
keys_of r1/*.jsonl > r1.keys
cmp -s all.keys r1.keys || fail "rows read differ from the rows loaded: $(diff all.keys r1.keys | head -5)"
check_eq "$(rcli XPENDING "$tag-load" g1 | head -1)" 0 "entries pending after the read"
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.entries_read' read.json)" 20000 \
  "entries_read in the report"
# What closed each batch is counted: every batch, most of them full (batch_rows 500).
closed=$(jq '.nodes[] | select(.id == "src") | [.counters | to_entries[]
             | select(.key | startswith("batches_closed_")) | .value] | add' read.json)
check_eq "$closed" "$(jq '.nodes[] | select(.id == "src") | .batches_out' read.json)" \
  "batches counted by what closed them"
[ "$(jq '.nodes[] | select(.id == "src") | .counters.batches_closed_rows' read.json)" -ge 30 ] \
  || fail "few batches closed full: $(jq -c '.nodes[] | select(.id == "src") | .counters' read.json)"

# --- 2b. event time: the source's watermark is the newest reading less the lateness -------------
"$sluice" run --until-idle 2s --report wm.json \
  "$(reader gw c1 rw "    event_time: ts
    lateness: 10s")" >wm.out 2>&1 || fail "watermark run: $(tail -5 wm.out)"
jq -r '.nodes[] | select(.id == "src") | .watermark' wm.json > wm.txt
python3 - <<'PY' || fail "watermark: $(cat wm.txt)"
import datetime, json
def ts(s):
    return datetime.datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
newest = max(ts(json.loads(l)["ts"]) for l in open("loaded.jsonl"))
got = ts(open("wm.txt").read())
assert got == newest - datetime.timedelta(seconds=10), (got, newest)
PY

# --- 3. kill -9 mid-read, rerun with the same consumer -------------------------------------------
# fault_inject slows the run down (40 batches of 500, 0.15 s each) so that it dies in the middle.
slow=$(reader g2 c1 k1 "" slow)
cat >> "$slow" <<YAML
  slow: {type: fault_inject, inputs: [src], delay: 150ms}
YAML
"$sluice" run --until-idle 2s "$slow" >kill.out 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ "$(find k1 -name '*.jsonl' 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.1
done
kill -9 "${pids[0]}"
wait "${pids[0]}" && code=0 || code=$?
pids=()
check_eq "$code" 137 "exit code of the killed reader"
rcli XPENDING "$tag-load" g2 - + 100000 c1 | awk 'NR % 4 == 1' > pending.ids
npending=$(wc -l < pending.ids)
[ "$npending" -gt 0 ] || fail "the killed reader left nothing pending (it should have died mid-read)"
[ "$npending" -lt 20000 ] || fail "the killed reader left every entry pending ($npending)"
# The pending entries' keys, in id order, from the XRANGE dump.
python3 - "$npending" <<'PY' > pending.keys
import sys
lines = open("xrange.txt").read().split("\n")
by_id = {}
i = 0
while i + 13 <= len(lines) and lines[i]:
    f = dict(zip(lines[i + 1:i + 13:2], lines[i + 2:i + 13:2]))
    by_id[lines[i]] = (f["meter_id"], f["ts"])
    i += 13
for eid in open("pending.ids").read().split():
    print("%s|%s" % by_id[eid])
PY
"$sluice" run --until-idle 2s "$(reader g2 c1 k2)" >rerun.out 2>&1 || fail "rerun: $(tail -5 rerun.out)"
# The rerun's first rows are the killed run's pending entries, in order.
python3 - "$npending" <<'PY' || fail "the rerun did not start with the killed run's pending entries"
import glob, json, sys, datetime
n = int(sys.argv[1])
def norm(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
rows = []
for path in sorted(glob.glob("k2/*.jsonl")):
    rows += [json.loads(l) for l in open(path)]
want = [l.split("|") for l in open("pending.keys").read().split("\n") if l]
got = [(r["meter_id"], r["ts"]) for r in rows[:n]]
assert len(want) == n and len(got) == n, (len(want), len(got), n)
for (wm, wt), (gm, gt) in zip(want, got):
    assert wm == gm and norm(wt) == norm(gt), (wm, wt, gm, gt)
print(f"the rerun's first {n} rows are the killed run's pending entries")
PY
keys_of k1/*.jsonl k2/*.jsonl | sort -u > k.keys
cmp -s all.keys k.keys || fail "rows of the killed run and the rerun differ from the rows loaded: $(diff all.keys k.keys | head -5)"
check_eq "$(rcli XPENDING "$tag-load" g2 | head -1)" 0 "entries pending after the rerun"

# --- 4. bad records: on_error skip and fail ------------------------------------------------------
for i in $(seq 1 130); do
  if [ $((i % 13)) -eq 0 ] || [ $((i % 13)) -eq 7 ] || [ $((i % 13)) -eq 3 ]; then kwh="bad-$i"; else kwh="0.$i"; fi
  echo "XADD $tag-bad * meter_id m-$i ts 2026-01-01T00:00:00.000000Z kwh $kwh"
done | rcli > bad.ids
check_eq "$(rcli XLEN "$tag-bad")" 130 "entries in the bad stream"
first_bad=$(sed -n 3p bad.ids)
bad_reader() {  # bad_reader GROUP ON_ERROR
  cat > "bad-$1.yaml" <<YAML
pipeline: bad-$1
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $tag-bad
    group: $1
    consumer: c1
    start_id: "0"
    on_error: $2
    schema: {meter_id: string, ts: timestamp, kwh: float64}
  out: {type: file, inputs: [src], path: "$1.jsonl", format: jsonl}
YAML
  echo "bad-$1.yaml"
}
"$sluice" run --until-idle 2s --report skip.json "$(bad_reader gs skip)" >skip.out 2>&1 \
  || fail "on_error skip run: $(tail -5 skip.out)"
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.skipped_records' skip.json)" 30 \
  "skipped_records in the report"
check_eq "$(jq -r .meter_id gs.jsonl | sort | tr '\n' ' ')" \
  "$(seq 1 130 | awk '$1 % 13 != 0 && $1 % 13 != 7 && $1 % 13 != 3 {print "m-" $1}' | sort | tr '\n' ' ')" \
  "the good entries written under on_error skip"
check_eq "$(rcli XPENDING "$tag-bad" gs | head -1)" 0 "entries pending after on_error skip"
"$sluice" run --until-idle 2s "$(bad_reader gf fail)" >fail.out 2>&1 && code=0 || code=$?
check_eq "$code" 1 "exit code under on_error fail ($(tail -3 fail.out))"
grep -q "entry $first_bad" fail.out || fail "the error does not name entry $first_bad: $(tail -3 fail.out)"
grep -q "field 'kwh'" fail.out || fail "the error does not name the field: $(tail -3 fail.out)"

# --- 5. a dead consumer's pending entries are claimed --------------------------------------------
rcli XGROUP CREATE "$tag-claim" gc 0 MKSTREAM >/dev/null
for i in $(seq 1 150); do echo "XADD $tag-claim * meter_id m-$i ts 2026-01-01T00:00:00Z kwh 1.5"; done \
  | rcli >/dev/null
# 'dead' takes the first 100 and never acknowledges them.
rcli XREADGROUP GROUP gc dead COUNT 100 STREAMS "$tag-claim" '>' >/dev/null
check_eq "$(rcli XPENDING "$tag-claim" gc | head -1)" 100 "entries pending on the dead consumer"
sleep 1.2
cat > claim.yaml <<YAML
pipeline: claim
nodes:
  src:
    type: redis_stream
    url: \${SLUICE_REDIS_URL}
    stream: $tag-claim
    group: gc
    consumer: alive
    claim_idle: 1s
    schema: {meter_id: string, ts: timestamp, kwh: float64}
  out: {type: file, inputs: [src], path: claim.jsonl, format: jsonl}
YAML
"$sluice" run --until-idle 2s --report claim.json claim.yaml >claim.out 2>&1 \
  || fail "claiming run: $(tail -5 claim.out)"
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.claimed_entries' claim.json)" 100 \
  "claimed_entries in the report"
check_eq "$(jq -r .meter_id claim.jsonl | sort | tr '\n' ' ')" \
  "$(seq 1 150 | sed 's/^/m-/' | sort | tr '\n' ' ')" "entries read by the claiming consumer"
check_eq "$(rcli XPENDING "$tag-claim" gc | head -1)" 0 "entries pending after the claim"

# --- 6. maxlen ----------------------------------------------------------------------------------
cat > trim.yaml <<YAML
pipeline: trim
nodes:
  readings: {type: generate, shape: meter, rows: 20000}
  stream: {type: redis_stream, inputs: [readings], url: "\${SLUICE_REDIS_URL}", stream: $tag-trim,
           maxlen: 1000}
YAML
"$sluice" run trim.yaml >trim.out 2>&1 || fail "maxlen run: $(tail -5 trim.out)"
len=$(rcli XLEN "$tag-trim")
[ "$len" -ge 1000 ] && [ "$len" -le 1200 ] || fail "XLEN with maxlen 1000: $len (want about 1000)"

# --- 7. a password from REDIS_PASSWORD, never shown ---------------------------------------------
secret="pw-$tag-s3cret"
port=$(start_redis "$work/redis-auth" --requirepass "$secret")
cat > auth.yaml <<YAML
pipeline: auth
nodes:
  readings: {type: generate, shape: meter, rows: 500}
  stream: {type: redis_stream, inputs: [readings], url: "redis://127.0.0.1:$port/0", stream: s}
YAML
REDIS_PASSWORD=$secret "$sluice" -v run --report auth.json auth.yaml >auth.out 2>&1 \
  || fail "run with REDIS_PASSWORD: $(tail -5 auth.out)"
check_eq "$(REDISCLI_AUTH=$secret redis-cli -p "$port" XLEN s)" 500 "entries written with the password"
if grep -q "$secret" auth.out auth.json; then fail "the password appears in the output or report"; fi
REDIS_PASSWORD=wrong "$sluice" run auth.yaml >noauth.out 2>&1 && code=0 || code=$?
[ "$code" -ne 0 ] || fail "a wrong password did not fail the run"
grep -q WRONGPASS noauth.out || fail "a wrong password failed otherwise: $(tail -3 noauth.out)"
if grep -q wrong noauth.out; then fail "the wrong password appears in the output"; fi

# --- 8. SIGTERM mid-read --------------------------------------------------------------------------
term=$(reader g3 c1 t1 "" slow)
cat >> "$term" <<YAML
  slow: {type: fault_inject, inputs: [src], delay: 100ms}
YAML
"$sluice" run "$term" >term.out 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ "$(find t1 -name '*.jsonl' 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.1
done
kill -TERM "${pids[0]}"
wait "${pids[0]}" && code=0 || code=$?
pids=()
check_eq "$code" 0 "exit code after SIGTERM ($(tail -3 term.out))"
check_eq "$(rcli XPENDING "$tag-load" g3 | head -1)" 0 "entries pending after SIGTERM"
delivered=$(rcli XINFO GROUPS "$tag-load" | awk 'prev == "name" {g = $0} prev == "entries-read" && g == "g3" {print} {prev = $0}')
[ "$delivered" -gt 0 ] && [ "$delivered" -lt 20000 ] \
  || fail "entries read before SIGTERM: '$delivered' (want some, not all)"
# What was read is exactly the stream's first $delivered entries, each written once.
python3 - "$delivered" <<'PY' || fail "rows written after SIGTERM are not the stream's first $delivered entries"
import datetime, glob, json, sys
n = int(sys.argv[1])
def key(meter, ts):
    return (meter, datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")))
lines = open("xrange.txt").read().split("\n")
want = []
for k in range(n):
    f = dict(zip(lines[13 * k + 1:13 * k + 13:2], lines[13 * k + 2:13 * k + 13:2]))
    want.append(key(f["meter_id"], f["ts"]))
got = []
for path in glob.glob("t1/*.jsonl"):
    got += [key(r["meter_id"], r["ts"]) for r in map(json.loads, open(path))]
assert sorted(got) == sorted(want), (len(got), len(want))
print(f"SIGTERM: the first {n} entries written once each, acknowledged")
PY

echo "redis_stream: OK"
