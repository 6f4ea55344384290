#!/usr/bin/env bash
# The `webhook` sink against a real HTTP receiver (webhook_receiver.py, started here; no
# services needed): every generated row arrives with its values, duplicates are only retries of
# one request (same Idempotency-Key, same body), 503s and a slow answer past `timeout` are
# retried and counted, header values reach the receiver; a 400 fails the run (exit 1) with the
# status and the host in the error; and no log line, error or report ever shows the URL's
# user-info, path or query, nor a header value — nor those of an `alerts:` webhook that fails.
receiver_py="$(cd "$(dirname "$0")" && pwd)/webhook_receiver.py"
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is missing: run scripts/install-deps"

receivers=()
cleanup() {
  # A receiver may have exited already (the test kills some); only live ones are stopped.
  for pid in "${receivers[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  done
  lib_cleanup
}
trap cleanup EXIT

# start_receiver NAME [receiver args...]: start one, wait (bounded) for its port; sets $port.
start_receiver() {
  local name=$1; shift
  /usr/bin/python3 "$receiver_py" "$name.port" "$name.requests.jsonl" "$@" &
  receivers+=($!)
  for _ in $(seq 200); do [ -s "$name.port" ] && break; sleep 0.05; done
  [ -s "$name.port" ] || fail "webhook receiver $name did not start"
  port=$(cat "$name.port")
}

# The secrets: a path and a query token in the URL, user-info, and a header value.
export HOOK_TOKEN="hdr-Tok3n-value"
secrets=(XYZsecret services token abc123 hookuser pw-S3cret "$HOOK_TOKEN")
# no_secrets FILE WHAT: fail when FILE shows any part of the URL beyond scheme and host.
no_secrets() {
  for s in "${secrets[@]}"; do
    if grep -q -- "$s" "$1"; then fail "$2 shows '$s': $(grep -m1 -- "$s" "$1")"; fi
  done
}

cat > hook.yaml <<'YAML'
pipeline: hook-rows
nodes:
  gen: {type: generate, shape: narrow, rows: 3000, batch_rows: 500, seed: 11}
  hook:
    type: webhook
    inputs: [gen]
    url: ${HOOK_URL}
    headers: {Authorization: "Bearer ${HOOK_TOKEN}", X-Source: sluice-test}
    timeout: 1s
    max_batch_rows: 200
    queue: 2
    max_attempts: 6
    backoff: 50ms
  # The same rows, as the reference the receiver's rows are compared with.
  ref: {type: file, inputs: [gen], path: ref.jsonl}
alerts:
  # Fires at the first evaluation; its webhook answers 400, which the notifier logs.
  - {name: rss, metric: rss_mb, above: 1, webhook: "${ALERT_URL}"}
YAML

start_receiver alert --status 400
alert_port=$port
export ALERT_URL="http://hookuser:pw-S3cret@127.0.0.1:$alert_port/services/XYZsecret?token=abc123"

# 1. Under both executors: three 503s, then request 6 answered after 3 s (the sink's timeout is
# 1 s): all retried.
for engine in parallel sequential; do
  r=ok-$engine
  start_receiver $r --fail-first 3 --slow-request 6 --slow-seconds 3
  export HOOK_URL="http://hookuser:pw-S3cret@127.0.0.1:$port/services/T0/B1/XYZsecret?token=abc123"
  set +e
  "$sluice" run --engine $engine --report $r.report.json hook.yaml 2>$r.log
  code=$?
  set -e
  [ "$code" -eq 0 ] || fail "run 1 ($engine) exited $code: $(tail -5 $r.log)"
  req=$r.requests.jsonl
  [ -s "$req" ] || fail "the receiver got nothing"

  # Every request: the path and query of the URL, JSON content, the headers as configured.
  check_eq "$(jq -r '.path + "?" + .query' "$req" | sort -u)" "/services/T0/B1/XYZsecret?token=abc123" "request path"
  check_eq "$(jq -r '.headers["content-type"]' "$req" | sort -u)" "application/json" "content type"
  check_eq "$(jq -r '.headers.authorization' "$req" | sort -u)" "Bearer $HOOK_TOKEN" "authorization header"
  check_eq "$(jq -r '.headers["x-source"]' "$req" | sort -u)" "sluice-test" "x-source header"

  # Duplicates are only retries: one body per Idempotency-Key, and the key is the body's SHA-256.
  check_eq "$(jq -r '[.headers["idempotency-key"], .body] | @tsv' "$req" | sort -u | cut -f1 | uniq -d | wc -l)" 0 \
    "bodies per idempotency key"
  while IFS=$'\t' read -r key body; do
    check_eq "$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)" "$key" "idempotency key of a body"
  done < <(jq -r '[.headers["idempotency-key"], .body] | @tsv' "$req" | sort -u | head -3)
  total=$(wc -l < "$req")
  unique=$(jq -r '.headers["idempotency-key"]' "$req" | sort -u | wc -l)
  check_eq "$unique" 18 "distinct requests (6 batches of 500 rows: 200 + 200 + 100 each)"
  # 3 answered 503 and 1 timed out: at least 4 retries (the slow one may also time out again).
  [ $((total - unique)) -ge 4 ] || fail "expected >= 4 retried requests, got $((total - unique))"

  # Rows: one per generated row, equal to the reference (ids and values), after dropping retries.
  jq -c '.headers["idempotency-key"] as $k | {k: $k, rows: (.body | fromjson)}' "$req" \
    | jq -s -c 'unique_by(.k) | map(.rows[]) | sort_by(.id) | .[]' > got.jsonl
  jq -c . ref.jsonl | jq -s -c 'sort_by(.id) | .[]' > want.jsonl
  check_eq "$(wc -l < want.jsonl)" 3000 "reference rows"
  cmp -s got.jsonl want.jsonl || fail "rows differ from the reference: $(diff got.jsonl want.jsonl | head -4 | tr '\n' ' ')"
  check_eq "$(jq -s 'map(.rows | length) | max' <(jq -c '{rows: (.body | fromjson)}' "$req"))" 200 "rows per request"

  # Counters in the report: every request made, the retries (as many as the duplicates).
  hook_node='.nodes[] | select(.id == "hook")'
  check_eq "$(jq "$hook_node | .counters.requests" $r.report.json)" "$total" "requests counter"
  check_eq "$(jq "$hook_node | .counters.retries" $r.report.json)" "$((total - unique))" "retries counter"
  check_eq "$(jq "$hook_node | .counters.failures" $r.report.json)" "$((total - unique))" "failures counter"
  check_eq "$(jq "$hook_node | .counters.rows_delivered" $r.report.json)" 3000 "rows_delivered counter"
  check_eq "$(jq -r '.nodes[] | select(.id == "gen") | .committed_batches' $r.report.json)" 6 "batches committed"
  grep -q "alert webhook: HTTP 400 from http://127.0.0.1:$alert_port/…" $r.log \
    || fail "no warning about the failed alert webhook: $(grep -m2 alert $r.log)"
  check_eq "$(jq -r '.path' alert.requests.jsonl | sort -u)" /services/XYZsecret "alert webhook path"
  grep -q "webhook attempt 1 of 6 failed, retrying: HTTP 503 from http://127.0.0.1:[0-9]*/…" $r.log \
    || fail "no warning about a retried request: $(head -3 $r.log)"
  no_secrets $r.log "the log of run 1 ($engine)"
  no_secrets $r.report.json "the report of run 1 ($engine)"
done

# 2. A receiver that answers 400: the run fails, the batch is not committed, the error names
# the status and the host only.
start_receiver bad --status 400
export HOOK_URL="http://hookuser:pw-S3cret@127.0.0.1:$port/services/T0/B1/XYZsecret?token=abc123"
set +e
"$sluice" run --report bad.report.json hook.yaml 2>bad.log
code=$?
set -e
check_eq "$code" 1 "exit code of a run answered 400"
grep -q "HTTP 400 from http://127.0.0.1:$port/…" bad.log \
  || fail "the error does not name the status and host: $(tail -3 bad.log)"
grep -q "HTTP 400 from http://127.0.0.1:$port/…" <(jq -r .error bad.report.json) \
  || fail "the report's error does not name the status and host: $(jq -r .error bad.report.json)"
check_eq "$(wc -l < bad.requests.jsonl)" 1 "requests answered 400 (not retried; nothing after it)"
check_eq "$(jq -r '.nodes[] | select(.id == "gen") | .committed_batches' bad.report.json)" 0 "batches committed after a 400"
no_secrets bad.log "the log of run 2"
no_secrets bad.report.json "the report of run 2"

# 3. Validation: a bad URL or header is a config error (exit 2) that quotes neither.
set +e
HOOK_URL="ftp://hookuser:pw-S3cret@example.com/services/XYZsecret?token=abc123" \
  "$sluice" validate hook.yaml >val.out 2>val.err
check_eq "$?" 2 "exit code of validate with an ftp URL"
set -e
grep -q "expected an http:// or https:// URL, got ftp://example.com/…" val.err \
  || fail "validate: $(cat val.err)"
no_secrets val.err "validate's error"
set +e
ALERT_URL="ftp://hookuser:pw-S3cret@example.com/services/XYZsecret?token=abc123" \
  "$sluice" validate hook.yaml >val.out 2>val.err
check_eq "$?" 2 "exit code of validate with an ftp URL for an alert"
set -e
grep -q "alerts\[0\].webhook: expected an http:// or https:// URL, got ftp://example.com/…" val.err \
  || fail "validate: $(cat val.err)"
no_secrets val.err "validate's error about an alert"
sed 's/X-Source: sluice-test/X-Bad: "a\\r\\nInjected: ${HOOK_TOKEN}"/' hook.yaml > bad-header.yaml
set +e
HOOK_URL="http://127.0.0.1:1/services/XYZsecret" "$sluice" validate bad-header.yaml >val.out 2>val.err
check_eq "$?" 2 "exit code of validate with a header holding a line break"
set -e
grep -q "the value of 'X-Bad' holds a line break" val.err || fail "validate: $(cat val.err)"
no_secrets val.err "validate's error about a header"

echo "webhook_sink: ok ($total requests for $unique bodies, 3000 rows; the last run)"
