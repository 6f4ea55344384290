#!/usr/bin/env bash
# Observability end to end: a run with a deliberately slow node serves Prometheus metrics that
# promtool accepts and a live JSON state that `sluice top` shows; an alert on the slow node's
# p95 batch latency fires, logs, posts to a real local HTTP receiver and, with --fail-on-alert,
# makes the exit code 3; the v2 report has the time series, histograms, alerts and the
# bottleneck; the run is recorded in the history; `sluice report` renders it and headless
# Chromium shows the charts. Bad input gets a clear message and exit code 2.
source "$(dirname "$0")/lib.sh"
for tool in promtool chromium curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps"
done
export SLUICE_HISTORY="$work/runs.db"

# A webhook receiver: appends each POST body as one line to hooks.jsonl.
/usr/bin/python3 - <<'PY' &
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("hooks.jsonl", "ab") as f: f.write(body + b"\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
with socketserver.TCPServer(("127.0.0.1", 0), H) as s:
    open("hook.port.tmp", "w").write(str(s.server_address[1]))
    import os; os.rename("hook.port.tmp", "hook.port")
    s.serve_forever()
PY
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s hook.port ] && break; sleep 0.05; done
[ -s hook.port ] || fail "webhook receiver did not start"
hook="http://127.0.0.1:$(cat hook.port)/hook"

cat > slow.yaml <<YAML
pipeline: slow-demo
nodes:
  gen:
    type: generate
    shape: narrow
    rows: 150000
    batch_rows: 1000
  slow:
    type: fault_inject
    inputs: [gen]
    delay: 40ms  # 150 batches: a 6 s run, long enough to scrape it on a slow machine
  sink:
    type: "null"
    inputs: [slow]
alerts:
  - name: slow_batches
    metric: batch_latency_p95_s
    node: slow
    above: 10ms
    for: 1s
    webhook: $hook
YAML

# 1. A run serving metrics on a port of its own (0: the kernel picks one the run holds from the
# start, where a port picked here and bound later could be taken meanwhile by another test's
# outgoing connection); scrape it while it runs.
# run.err exists before the run starts: the background shell may open it after sed first looks.
: >run.err
"$sluice" run --metrics-listen 0 --report run.json --fail-on-alert slow.yaml \
  >run.out 2>run.err & run_pid=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's|.*metrics at http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' run.err)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || fail "the run did not say where it serves metrics: $(cat run.err)"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/metrics" -o metrics.txt && break; sleep 0.05; done
[ -s metrics.txt ] || fail "no /metrics while running: $(cat run.err)"
sleep 0.5
curl -sf "http://127.0.0.1:$port/metrics" -o metrics.txt
promtool check metrics < metrics.txt || fail "promtool rejected /metrics"
grep -q '^sluice_node_rows_out_total{.*node="gen"' metrics.txt || fail "no rows_out for gen"
grep -q '^sluice_node_batch_latency_seconds_bucket{.*node="slow"' metrics.txt || fail "no latency histogram"
curl -sf "http://127.0.0.1:$port/api/v1/run" -o live.json || fail "no /api/v1/run"
check_eq "$(jq -r .status live.json)" running "live status"
check_eq "$(jq '.nodes | length' live.json)" 3 "live nodes"
"$sluice" top "127.0.0.1:$port" --iterations 2 --interval-ms 200 > top.txt || fail "sluice top failed"
grep -q "ROWS/S" top.txt && grep -q "^slow " top.txt || fail "sluice top output: $(cat top.txt)"
set +e; wait "$run_pid"; code=$?; set -e

# 2. The alert fired: exit code 3, a log line, one webhook POST.
check_eq "$code" 3 "exit code with --fail-on-alert"
grep -q "slow_batches" run.err || fail "no alert in the log: $(cat run.err)"
for _ in $(seq 50); do [ -s hooks.jsonl ] && break; sleep 0.1; done
check_eq "$(jq -r .name hooks.jsonl | head -1)" slow_batches "webhook alert name"
check_eq "$(jq -r .pipeline hooks.jsonl | head -1)" slow-demo "webhook pipeline"

# 3. The v2 report.
check_eq "$(jq .version run.json)" 2 "report version"
check_eq "$(jq .status run.json)" '"ok"' "report status"
[ "$(jq '.timeseries.t | length' run.json)" -ge 3 ] || fail "time series too short: $(jq -c .timeseries.t run.json); $(tail -3 run.err)"
check_eq "$(jq '.timeseries.nodes.gen.rows_out | last' run.json)" 150000 "last sample of gen rows_out"
jq -e '.nodes[] | select(.id == "slow") | .histograms.batch_latency.p95 > 0.015' run.json >/dev/null \
  || fail "slow node p95 batch latency: $(jq -c '.nodes[1].histograms' run.json)"
check_eq "$(jq -r '.nodes[] | select(.id == "slow") | .inputs[0]' run.json)" gen "edges"
check_eq "$(jq '.alerts | length' run.json)" 1 "alerts in report"
check_eq "$(jq -r .bottleneck.node run.json)" slow "bottleneck node"
grep -q "bottleneck: 'slow'" run.err || fail "no bottleneck in the summary"

# 4. Run history and the HTML report from it.
id=$(jq -r .run_id run.json)
"$sluice" runs --pipeline slow-demo > runs.txt
grep -q "$id" runs.txt || fail "run not listed: $(cat runs.txt)"
"$sluice" report --run "$id" -o report.html 2>/dev/null
timeout 120 chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$work/report.html" \
  2>/dev/null > dom.html || fail "chromium could not render the report"
for chart in chart-dag chart-throughput chart-memory chart-cpu chart-hist-slow-batch_latency; do
  grep -q "id=\"$chart\"" dom.html || fail "rendered report lacks $chart"
done
grep -q "<path" dom.html || fail "rendered report has no chart lines"

# 5. Bad input: clear messages, exit code 2 (1 when nothing is listening).
set +e
"$sluice" run --metrics-listen nonsense slow.yaml 2>err; code=$?
check_eq "$code" 2 "bad --metrics-listen"; grep -q "host:port" err || fail "message: $(cat err)"
"$sluice" report missing.json 2>err; check_eq "$?" 2 "report of a missing file"
"$sluice" report --run no-such-run 2>err; check_eq "$?" 2 "report of an unknown run"
grep -q "no-such-run" err || fail "message: $(cat err)"
"$sluice" top 127.0.0.1:1 --iterations 1 2>err; check_eq "$?" 1 "top with nothing listening"
grep -q "no sluice run" err || fail "message: $(cat err)"
sed 's/metric: batch_latency_p95_s/metric: batch_latncy_p95_s/' slow.yaml > typo.yaml
"$sluice" validate typo.yaml 2>err; code=$?
set -e
check_eq "$code" 2 "alert metric typo"
grep -q "typo.yaml:[0-9]*:[0-9]*" err && grep -q "batch_latency_p95_s" err || fail "typo message: $(cat err)"
echo "observability: ok (alert fired, $(jq '.timeseries.t | length' run.json) samples, report rendered)"
