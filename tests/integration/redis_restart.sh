#!/usr/bin/env bash
# Redis restarted mid-run, as production runs it (appendonly yes, appendfsync always), on a server
# of the test's own (start_redis; stop_redis + start_redis is a restart at the same address):
#   1. source: a consumer group read into PostgreSQL (upsert by (meter_id, ts)) while the server
#      restarts after some batches were acknowledged: the run reconnects and exits 0, the table
#      holds every reading once with its values, nothing is pending, the group has no lag, and
#      the run says it reconnected. A server stopped by SIGTERM runs (and writes to its AOF)
#      the commands it read last but does not send their replies: in about one run of five that
#      is an XREADGROUP, whose entries then wait pending on this consumer. The source reads its
#      own pending entries again after a lost read (counted in reads_lost), so they are
#      delivered in this run: claim_idle is left at its 60 s, and nothing may be claimed;
#   2. sink: readings XADDed while the server restarts: the run reconnects and exits 0, every
#      reading is in the stream with its values. The rows whose replies the restart cut off are
#      sent again (counted in resent_entries), so those the server ran before it stopped are
#      there twice (at-least-once): only those, at most the one chunk in flight; printed.
# Before the fix the sink failed the run at the first lost connection, and the source gave up
# after about 1.5 s without the server (its breaker refused the last retries).
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] \
  || fail "SLUICE_PG_DSN is unset: run scripts/services start and eval \"\$(scripts/services env)\" first"
rdir="$work/redis"
redis_args=(--appendonly yes --appendfsync always)
port=$(start_redis "$rdir" "${redis_args[@]}")
export RESTART_URL="redis://127.0.0.1:$port/0"
rcli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
# A field of the group `loaders` of the stream `readings` (XINFO GROUPS); nothing before the
# reader created it.
group_field() {
  rcli XINFO GROUPS readings | awk -v f="$1" 'p { print; exit } $0 == f { p = 1 }'
}
table="restart_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; fi; done
  psql -qc "DROP TABLE IF EXISTS $table" >/dev/null || echo "cleanup: DROP $table failed" >&2
  lib_cleanup  # stops the server, removes $work
}
trap cleanup EXIT
rows=50000

# Restart the server while the run `$1` (a pid) is under way: stop it (SIGTERM: the AOF is
# flushed), leave the address dead for 1.5 s, start it again on the same dir, port and settings.
restart_redis() {
  kill -0 "$1" 2>/dev/null || fail "the run ended before the restart"
  stop_redis "$rdir"
  sleep 1.5
  start_redis "$rdir" "${redis_args[@]}" >/dev/null
  kill -0 "$1" 2>/dev/null || { wait "$1"; fail "the run ended (exit $?) while the server was down ($(tail -3 "$2"))"; }
}

# Compare the readings of redis-cli's XRANGE output $1 (raw: each entry as its id, then field,
# value, ... one per line) with the rows of the JSONL file $2. Print how many entries are
# duplicates (the same reading twice, with the same values); fail on any other difference.
compare_stream() {
  python3 - "$1" "$2" <<'PY'
import collections, datetime, json, sys
def ts(s):
    return round(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1e6)
cols = ("kwh", "voltage", "current", "power_factor")
want = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    want[(r["meter_id"], ts(r["ts"]))] = tuple(r[c] for c in cols)
lines = open(sys.argv[1]).read().split("\n")
got = collections.defaultdict(list)
i = 0
while i + 13 <= len(lines) and lines[i]:
    f = dict(zip(lines[i + 1:i + 13:2], lines[i + 2:i + 13:2]))
    got[(f["meter_id"], ts(f["ts"]))].append(tuple(float(f[c]) for c in cols))
    i += 13
missing = want.keys() - got.keys()
extra = got.keys() - want.keys()
assert not missing and not extra, f"{len(missing)} readings missing, {len(extra)} not loaded"
for k, vals in got.items():
    assert all(v == want[k] for v in vals), (k, vals, want[k])
print(sum(len(v) - 1 for v in got.values()))
PY
}

# --- load: the readings into the stream, and into a file to compare with --------------------
cat > load.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, meters: 500, interval: 1s, rows: $rows, seed: 17,
             batch_rows: 5000}
  stream: {type: redis_stream, inputs: [readings], url: "\${RESTART_URL}", stream: readings}
  copy: {type: file, inputs: [readings], path: loaded.jsonl, format: jsonl}
YAML
"$sluice" run -q load.yaml 2>load.err || fail "load: $(tail -3 load.err)"
check_eq "$(rcli XLEN readings)" "$rows" "XLEN after the load"

# --- 1. source: the group read into PostgreSQL across a restart -------------------------------
psql -qc "CREATE TABLE $table (meter_id text, ts timestamptz, kwh float8, voltage float8,
          current float8, power_factor float8, PRIMARY KEY (meter_id, ts))"
cat > read.yaml <<YAML
nodes:
  src:
    type: redis_stream
    url: \${RESTART_URL}
    stream: readings
    group: loaders
    consumer: c1
    start_id: "0"
    batch_rows: 250
    linger: 50ms
    schema: {meter_id: string, ts: timestamp, kwh: float64, voltage: float64, current: float64,
             power_factor: float64}
  slow: {type: fault_inject, inputs: [src], delay: 40ms}
  db: {type: postgres, inputs: [slow], dsn: "\${SLUICE_PG_DSN}", table: $table, mode: upsert,
       key: [meter_id, ts]}
YAML
"$sluice" run -q --until-idle 8s --report read.json read.yaml 2>read.err &
pid=$!
pids+=("$pid")
# Restart once batches were acknowledged (entries-read less those pending) and most remain.
acked=0
for _ in $(seq 300); do
  read_n=$(group_field entries-read)
  pending=$(group_field pending)
  acked=$(( ${read_n:-0} - ${pending:-0} ))
  [ "$acked" -ge 5000 ] && break
  sleep 0.1
done
[ "$acked" -ge 5000 ] || fail "the reader acknowledged only $acked entries in 30 s ($(tail -3 read.err))"
restart_redis "$pid" read.err
check_eq "$(rcli XLEN readings)" "$rows" "XLEN after the restart (reloaded from the AOF)"
set +e
wait "$pid"
code=$?
set -e
check_eq "$code" 0 "reader exit code ($(tail -3 read.err))"
grep -q "127.0.0.1:$port/0: reconnected" read.err \
  || fail "the reader did not say it reconnected: $(tail -3 read.err)"
pending=$(rcli XPENDING readings loaders | head -1)
[ "$pending" == 0 ] || fail "$pending entries pending after the run, on: $(rcli XPENDING readings \
  loaders | sed -n 4p); $(psql -qAtc "SELECT count(*) FROM $table") of $rows rows in the table"
check_eq "$(group_field lag)" 0 "the group's lag after the run"
# Every reading exactly once (the primary key forbids twice), with its values.
check_eq "$(psql -qAtc "SELECT count(*) FROM $table")" "$rows" "rows in the table"
check_readings_table "$table" loaded.jsonl
# The upsert would hide a reading written twice: the sink must have been given each once.
check_eq "$(jq '.nodes[] | select(.id == "db") | .rows_in' read.json)" "$rows" \
  "rows the sink was given (a duplicate would show here, not in the table)"
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.claimed_entries // 0' read.json)" 0 \
  "entries claimed (none: what lost reads delivered is read again, not claimed)"
echo "source: $rows readings once each across a restart at $acked acknowledged," \
  "$(jq '.nodes[] | select(.id == "src") | .counters.reads_lost // 0' read.json) read(s) lost and read again"

# --- 2. sink: XADD across a restart -------------------------------------------------------------
cat > write.yaml <<YAML
nodes:
  readings: {type: generate, shape: meter, meters: 500, interval: 1s, rows: $rows, seed: 23,
             batch_rows: 500}
  slow: {type: fault_inject, inputs: [readings], delay: 40ms}
  stream: {type: redis_stream, inputs: [slow], url: "\${RESTART_URL}", stream: written}
  copy: {type: file, inputs: [readings], path: written.jsonl, format: jsonl}
YAML
"$sluice" run -q --report write.json write.yaml 2>write.err &
pid=$!
pids+=("$pid")
added=0
for _ in $(seq 300); do
  added=$(rcli XLEN written)
  [ "$added" -ge 5000 ] && break
  sleep 0.1
done
[ "$added" -ge 5000 ] || fail "the writer added only $added entries in 30 s ($(tail -3 write.err))"
restart_redis "$pid" write.err
set +e
wait "$pid"
code=$?
set -e
check_eq "$code" 0 "writer exit code ($(tail -3 write.err))"
counter() { jq "[.nodes[] | select(.id == \"stream\") | .counters.$1 // 0] | add" write.json; }
reconnects=$(counter reconnects)
resent=$(counter resent_entries)
[ "$reconnects" -ge 1 ] || fail "the sink's report counts no reconnect"
rcli XRANGE written - + >written.txt
dups=$(compare_stream written.txt written.jsonl) || fail "the stream's entries differ from the rows"
check_eq "$(rcli XLEN written)" "$((rows + dups))" "XLEN against distinct readings + duplicates"
# Only rows sent again (their replies cut off by the restart) can be there twice, and only of
# the one chunk (500 rows here) in flight: rows answered before the cut are not sent again.
[ "$dups" -le "$resent" ] && [ "$dups" -le 500 ] \
  || fail "$dups entries added twice, $resent sent again (at most the 500 of one chunk)"
echo "sink: $rows readings across a restart at $added entries, $reconnects reconnect(s)," \
  "$resent sent again, $dups of them twice in the stream"
echo "redis restart: ok"
