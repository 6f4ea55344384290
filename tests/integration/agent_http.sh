#!/usr/bin/env bash
# sluice agent end to end. On a recorded /proc tree (tests/data/procfs): the JSON and Prometheus
# endpoints carry the recorded values exactly, /metrics passes promtool, the values follow the
# tree when it changes (the second recording, with rates), gzip, the HTTP limits (404, 405,
# 413), the pipeline's own sink gets every sample, bad configs exit 2 with file:line:col. On
# the real /proc with the built-in config: the live page renders its four charts in headless
# Chromium and shows different values in two captures taken seconds apart.
data=$(cd "$(dirname "$0")/../data/procfs" && pwd)  # before lib.sh moves to a temp dir
source "$(dirname "$0")/lib.sh"
for tool in promtool chromium curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps"
done

agent_pids=()
cleanup() {
  for p in "${agent_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p"; fi
  done
  lib_cleanup
}
trap cleanup EXIT

# start_agent NAME ARGS...: start `sluice agent` (or what agent_cmd holds) on a free loopback
# port, stderr in NAME.err; sets $pid and $url once it serves.
agent_cmd=("$sluice" agent)
start_agent() {
  local name=$1 port=""
  shift
  "${agent_cmd[@]}" --listen 127.0.0.1:0 "$@" 2>"$name.err" &
  pid=$!
  agent_pids+=("$pid")
  for _ in $(seq 300); do
    port=$(sed -n 's|.*serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$name.err")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "agent $name exited: $(cat "$name.err")"
    sleep 0.05
  done
  [ -n "$port" ] || fail "agent $name did not serve within 15 s: $(cat "$name.err")"
  url="http://127.0.0.1:$port"
}
# wait_for WHAT CODE: evaluate the shell CODE until it succeeds, at most 30 s.
wait_for() {
  for _ in $(seq 300); do
    if eval "$2" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "$1: not within 30 s"
}
# stop_agent: SIGTERM, then the exit code must be 0.
stop_agent() {
  local code=0
  kill -TERM "$pid"
  wait "$pid" || code=$?
  check_eq "$code" 0 "agent exit code after SIGTERM"
}
metric() {  # metric NAME [JQ-LABEL-TEST]: the value of the first row of NAME matching the test
  curl -sf "$url/api/v1/metrics" | jq -r --arg m "$1" \
    ".metrics[\$m] // [] | map(select(${2:-true})) | .[0].value // \"none\""
}

# 1. A recorded host, sampled every 200 ms, shipped to a file as well as served.
mkdir proc
cp -r "$data/a/." proc/
cat > agent.yaml <<YAML
pipeline: host-agent
agent:
  listen: 127.0.0.1:9108  # --listen wins
  workers: 2
nodes:
  host:
    type: procfs
    root: $work/proc
    interval: 200ms
  samples:
    type: file
    path: $work/samples.jsonl
    format: jsonl
    inputs: [host]
YAML
"$sluice" agent --config agent.yaml --check > check.out
grep -q "agent.yaml: ok (2 nodes; serving 'host' at http://127.0.0.1:9108/)" check.out \
  || fail "--check said: $(cat check.out)"
start_agent recorded --config agent.yaml
wait_for "/healthz 200" 'curl -sf "$url/healthz"'
check_eq "$(curl -sf "$url/healthz" | jq -r .status)" ok "healthz status"
check_eq "$(curl -sf "$url/api/v1/metrics" | jq -r .host)" recorded-host "host"
check_eq "$(curl -sf "$url/api/v1/metrics" | jq -r .interval_s)" 0.2 "interval"
# From the recorded files: (MemTotal - MemAvailable) kB, user ticks / 100, lo's bytes.
check_eq "$(metric memory_used_bytes)" 1103806464 "memory_used_bytes (a)"
check_eq "$(metric cpu_seconds_total '.labels.mode == "user"')" 37432 "cpu user seconds (a)"
check_eq "$(metric cpus)" 2 "cpus"
lo_bytes() { metric network_receive_bytes_total '.labels.device == "lo"'; }
lo_a=$(awk '$1 == "lo:" {print $2}' proc/net/dev)
check_eq "$(lo_bytes)" "$lo_a" "lo bytes (a)"
curl -sf "$url/metrics" -o metrics.txt
promtool check metrics < metrics.txt || fail "promtool rejected /metrics: $(head -5 metrics.txt)"
grep -qx 'host_memory_used_bytes 1103806464' metrics.txt || fail "no memory_used_bytes line"
grep -qx '# TYPE host_cpu_seconds_total counter' metrics.txt || fail "no counter TYPE"
grep -qx 'host_cpu_seconds_total{mode="user"} 37432' metrics.txt || fail "no cpu user line"
grep -qx 'host_filesystem_device_error{device="/dev/vdb",fstype="ext4",mountpoint="/mnt/my disk"} 1' \
  metrics.txt || fail "the recorded mount (not on this machine) is not a device error"

# The host moves on: the second recording. Its values, and rates between the two. The copy is
# not atomic: a sample taken while it ran may have some files of the second recording and some
# of the first (which come first is the directory's order, so it differs between machines), so
# each check of the second recording waits for a sample that has what it checks.
cp -r "$data/b/." proc/
wait_for "the second recording's memory" 'test "$(metric memory_used_bytes)" = 1044926464'
lo_b=$(awk '$1 == "lo:" {print $2}' proc/net/dev)
[ "$lo_b" != "$lo_a" ] || fail "the two recordings have the same lo bytes: the check shows nothing"
wait_for "the second recording's lo bytes ($lo_b)" 'test "$(lo_bytes)" = "$lo_b"'
# A process of the second recording only, whose name has blanks and parentheses.
wait_for "process 4242's name in the JSON" \
  'test "$(curl -sf "$url/api/v1/metrics" | jq -r ".metrics.process_resident_bytes[] | select(.labels.pid == \"4242\") | .labels.comm")" = "my (odd) name"'
wait_for "a series of process 4242 in /metrics" \
  "curl -sf \"\$url/metrics\" | grep -q '^host_process_resident_bytes{comm=\"my (odd) name\",pid=\"4242\",'"
curl -sf "$url/metrics" | promtool check metrics || fail "promtool rejected /metrics with rates"

# gzip when asked, the same text inflated; plain otherwise.
curl -sf -H 'Accept-Encoding: gzip' -D gz.headers "$url/metrics" -o metrics.gz
grep -qi '^content-encoding: gzip' gz.headers || fail "no gzip: $(cat gz.headers)"
gzip -dc metrics.gz > metrics.inflated
promtool check metrics < metrics.inflated || fail "promtool rejected the inflated /metrics"
grep -qx 'host_memory_used_bytes 1044926464' metrics.inflated || fail "inflated text differs"
curl -sf -D plain.headers "$url/metrics" -o /dev/null
grep -qi '^content-encoding' plain.headers && fail "encoded without Accept-Encoding"
# The HTTP limits: unknown path, method, a body over max_request_bytes (16 KiB).
check_eq "$(curl -s -o /dev/null -w '%{http_code}' "$url/nope")" 404 "unknown path"
check_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/metrics")" 405 "POST"
head -c 100000 /dev/zero > big.bin
check_eq "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @big.bin "$url/metrics")" 413 \
  "a body over the limit"
check_eq "$(curl -s -o /dev/null -w '%{http_code}' -I "$url/")" 200 "HEAD /"

# A second agent on the same port: exit 1, saying why.
port_in_use=${url##*:}
expect_failure 1 "cannot listen on '127.0.0.1:$port_in_use': Address already in use" \
  "port in use" "$sluice" agent --config agent.yaml --listen "$port_in_use"
stop_agent
# The file sink got the samples of both recordings.
check_eq "$(jq -r 'select(.metric == "memory_used_bytes") | .value' samples.jsonl | sort -u | tr '\n' ' ')" \
  "1044926464 1103806464 " "samples shipped to the file sink"
# The rates between the two recordings. Only the sample that first saw the second recording has
# them: the ones after it compare that recording with itself (no CPU ticks pass, so no busy
# ratio; lo receives nothing). Read from the file sink, which got every sample, rather than
# from the endpoint, which shows that sample for one 200 ms interval only.
check_eq "$(jq -r 'select(.metric == "cpu_busy_ratio") | .value' samples.jsonl | sort -u)" 1 \
  "cpu_busy_ratio between the recordings"
jq -se '[.[] | select(.metric == "network_receive_bytes_per_second" and .labels.device == "lo")
         | .value] | any(. > 0) and all(. >= 0)' samples.jsonl >/dev/null \
  || fail "lo receive rate: $(jq -c 'select(.metric == "network_receive_bytes_per_second")' samples.jsonl | head -5)"

# 2. Bad configs: exit 2, the file, line and column, and the nearest valid name.
sed 's/  workers: 2/  worker: 2/' agent.yaml > typo.yaml
expect_failure 2 "typo.yaml:4:3: option 'agent': unknown key 'worker' — did you mean 'workers'?" \
  "unknown agent key" "$sluice" agent --config typo.yaml
sed 's|  listen: 127.0.0.1:9108.*|  listen: localhost|' agent.yaml > listen.yaml
expect_failure 2 "listen.yaml:3:11: agent: option 'listen': listen address 'localhost' has no port" \
  "bad listen" "$sluice" agent --config listen.yaml --check
expect_failure 2 "\-\-listen: listen address 'nowhere' has no port" "bad --listen" \
  "$sluice" agent --listen nowhere --check
printf 'nodes:\n  g: {type: generate, rows: 1}\n  out: {type: "null", inputs: [g]}\n' > nosource.yaml
expect_failure 2 "nosource.yaml: the pipeline has no procfs source" "no procfs source" \
  "$sluice" agent --config nosource.yaml
expect_failure 2 "intervl" "a misspelt node option" \
  "$sluice" agent --set nodes.host.intervl=1s --check

# 3. The real host with the built-in config (a procfs source at 1 s): the live page.
start_agent real
wait_for "/healthz 200 (real host)" 'curl -sf "$url/healthz"'
check_eq "$(metric memory_bytes '.labels.field == "MemTotal"')" \
  "$(( $(awk '$1 == "MemTotal:" {print $2}' /proc/meminfo) * 1024 ))" "MemTotal of this host"
curl -sf "$url/metrics" | promtool check metrics || fail "promtool rejected the real host's /metrics"
capture() {  # capture N: the page's DOM after its scripts ran, and a screenshot
  timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=3000 \
    --dump-dom "$url/" 2>/dev/null > "dom$1.html" || fail "chromium could not render the page"
  timeout 120 chromium --headless --no-sandbox --disable-gpu --window-size=1200,560 \
    --virtual-time-budget=3000 --screenshot="$work/shot$1.png" "$url/" >/dev/null 2>&1 \
    || fail "chromium could not take a screenshot"
  for chart in cpu memory disk network; do
    grep -q "<svg id=\"chart-$chart\"[^>]*data-points=\"[1-9]" "dom$1.html" \
      || fail "capture $1: chart $chart has no points: $(grep -o "<svg id=\"chart-$chart\"[^>]*>" "dom$1.html")"
  done
  grep -q '<path d="M[0-9]' "dom$1.html" || fail "capture $1: no chart lines"
  [ "$(stat -c %s "$work/shot$1.png")" -gt 10000 ] || fail "capture $1: screenshot too small"
  grep -o 'id="value-[a-z]*" data-value="[^"]*"' "dom$1.html" > "values$1.txt"
  check_eq "$(grep -c 'data-value="[0-9]' "values$1.txt")" 4 "capture $1: values shown"
}
wait_for "a second sample (rates)" 'test "$(metric cpu_busy_ratio)" != none'
capture 1
first_sample=$(curl -sf "$url/api/v1/metrics" | jq .sample)
wait_for "two more samples" 'test "$(curl -sf "$url/api/v1/metrics" | jq .sample)" -ge $((first_sample + 2))'
capture 2
cmp -s values1.txt values2.txt && fail "the page showed the same values twice: $(cat values1.txt)"
cmp -s "$work/shot1.png" "$work/shot2.png" && fail "the two screenshots are identical"
grep -q 'id="host">[^<]' dom2.html || fail "no host name on the page"
stop_agent

# 4. sluice-agent, the lean executable beside $sluice: the same agent on the recorded tree,
# without the libraries of the connectors it does not register, nor an HTTP library (serve/
# speaks HTTP itself; cpp-httplib's .so loaded OpenSSL and brotli: 4 MB of RSS).
lean="$(dirname "$sluice")/sluice-agent"
[ -x "$lean" ] || fail "no $lean: build the sluice-agent target"
libs=$(ldd "$lean")
for lib in libpq libcurl libgeos libproj libsqlite3 libaws libhiredis libgnutls libcpp-httplib \
  libssl libcrypto libbrotli; do
  if grep -q "$lib" <<<"$libs"; then fail "sluice-agent links $lib: $(grep "$lib" <<<"$libs")"; fi
done
agent_cmd=("$lean")
"$lean" --config agent.yaml --check > lean-check.out
grep -q "agent.yaml: ok (2 nodes; serving 'host' at http://127.0.0.1:9108/)" lean-check.out \
  || fail "sluice-agent --check said: $(cat lean-check.out)"
start_agent lean --config agent.yaml
wait_for "/healthz 200 (sluice-agent)" 'curl -sf "$url/healthz"'
check_eq "$(curl -sf "$url/api/v1/metrics" | jq -r .host)" recorded-host "host (sluice-agent)"
mem_kb() { awk -v f="$1:" '$1 == f {print $2}' proc/meminfo; }
check_eq "$(metric memory_used_bytes)" "$(( ($(mem_kb MemTotal) - $(mem_kb MemAvailable)) * 1024 ))" \
  "memory_used_bytes (sluice-agent)"
curl -sf "$url/metrics" | promtool check metrics || fail "promtool rejected sluice-agent's /metrics"
stop_agent
# A node type it does not register: exit 2, naming the type.
sed 's/type: file/type: postgres/' agent.yaml > lean-pg.yaml
code=0
"$lean" --config lean-pg.yaml --check > /dev/null 2> lean-pg.err || code=$?
check_eq "$code" 2 "sluice-agent exit code for a postgres node"
grep -q "postgres" lean-pg.err || fail "sluice-agent did not name the postgres type: $(cat lean-pg.err)"
echo "agent_http: ok"
