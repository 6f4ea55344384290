# Helpers shared by the integration scripts. Source it; it sets `sluice` and a temp `work` dir.
set -euo pipefail
sluice=$(realpath "${1:?usage: $0 path/to/sluice}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Runs record themselves in a history database: keep the tests' runs out of the user's.
export SLUICE_HISTORY="${SLUICE_HISTORY:-$work/runs.db}"

fail() { echo "FAIL: $*" >&2; exit 1; }
check_eq() { [ "$1" == "$2" ] || fail "$3: got '$1', want '$2'"; }

# require_services VAR...: fail unless scripts/services' variables (SLUICE_REDIS_URL,
# SLUICE_PG_DSN, ...) are set, saying how to set them.
require_services() {
  for v in "$@"; do
    [ -n "${!v:-}" ] || fail "$v is not set: run scripts/services start and eval \"\$(scripts/services env)\" first"
  done
}
# expect_failure CODE PATTERN WHAT CMD...: run CMD, its stderr kept; fail unless it exits with
# CODE and its stderr matches the grep PATTERN (the message a user would read).
expect_failure() {
  local want=$1 pattern=$2 what=$3 rc=0
  shift 3
  "$@" 2>"$work/expect.err" || rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit $rc, want $want: $(tail -3 "$work/expect.err")"
  grep -q -- "$pattern" "$work/expect.err" || fail "$what said: $(cat "$work/expect.err")"
}
# redis-cli against scripts/services' Redis.
rcli() { redis-cli -u "$SLUICE_REDIS_URL" "$@"; }

# ids archived in gzip JSONL files under $1, one per line, sorted (duplicates kept).
# A run that failed before publishing any file has no folder: that is zero rows, not an error.
archived_ids() {
  [ -d "$1" ] || return 0
  find "$1" -name '*.jsonl.gz' -print0 | sort -z | xargs -0 -r zcat | jq -r .id | sort -n
}

# Fail unless PostgreSQL table $1 holds exactly the meter readings of the JSONL file $2 (one row
# per (meter_id, ts), with kwh, voltage, current and power_factor equal to the file's).
check_readings_table() {
  python3 - "$1" "$2" <<'PY' || fail "the readings of table $1 differ from those of $2"
import datetime, json, subprocess, sys
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
want = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    want[(r["meter_id"], round(ts(r["ts"]) * 1e6))] = (r["kwh"], r["voltage"], r["current"],
                                                       r["power_factor"])
out = subprocess.run(["psql", "-qAtF", "\t", "-c",
                      "SELECT meter_id, (extract(epoch FROM ts) * 1e6)::bigint, kwh::text, "
                      f"voltage::text, current::text, power_factor::text FROM {sys.argv[1]}"],
                     check=True, capture_output=True, text=True).stdout
got = {}
for line in out.splitlines():
    m, us, *vals = line.split("\t")
    got[(m, int(us))] = tuple(float(v) for v in vals)
assert got == want, (len(got), len(want))
PY
}

# A Redis server of the test's own (scripts/services runs a shared one, $SLUICE_REDIS_URL), for
# tests that need other settings or must restart it:
#   port=$(start_redis DIR [redis-server args...])   e.g. --requirepass pw, --appendonly yes
#   stop_redis DIR
# Later arguments override the defaults (no persistence). A DIR that held a server before keeps
# its port, so stop_redis + start_redis is a restart at the same address (with --appendonly yes
# it reloads its data from DIR). Every server still running is stopped when the script exits.
# (The list of servers is a file: `port=$(start_redis ...)` runs in a subshell.)
# A script with a cleanup of its own calls lib_cleanup at its end (its trap replaces this one).
lib_cleanup() {
  if [ -f "$work/redis.dirs" ]; then
    while read -r d; do stop_redis "$d"; done <"$work/redis.dirs"
  fi
  rm -rf "$work"
}
trap lib_cleanup EXIT

start_redis() {
  local dir=$1 port; shift
  mkdir -p "$dir"
  if [ -f "$dir/redis.port" ]; then
    port=$(cat "$dir/redis.port")
  else
    # Below the kernel's ephemeral range (from 32768 by default): an outgoing connection's
    # local port cannot take it while the server is down for a restart on the same port.
    local low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for _ in $(seq 1 50); do
      port=$((20000 + RANDOM % (low > 21000 ? low - 20000 : 1000)))
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || break
    done
    echo "$port" > "$dir/redis.port"
  fi
  echo "$dir" >> "$work/redis.dirs"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" >&2 \
    || fail "redis-server did not start: $(tail -5 "$dir/redis.log")"
  # Up once it answers at all (with --requirepass, PING answers NOAUTH).
  for _ in $(seq 1 300); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q 'PONG\|NOAUTH'; then
      echo "$port"
      return 0
    fi
    sleep 0.1
  done
  fail "redis-server on port $port did not answer within 30s: $(tail -5 "$dir/redis.log")"
}

# Stop the server of start_redis DIR at once (SIGKILL when it does not exit within 10 s); a
# server already gone is fine. Its data stays in DIR.
stop_redis() {
  local dir=$1 pid
  [ -f "$dir/redis.pid" ] || return 0  # the server deletes it when it exits
  pid=$(cat "$dir/redis.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid"
}
