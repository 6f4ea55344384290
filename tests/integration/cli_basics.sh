#!/usr/bin/env bash
# The CLI's contract: versions, help, listing, validation, DOT output and exit codes.
source "$(dirname "$0")/lib.sh"

# Outputs are captured whole before grep -q: grep leaving at its first match would close a pipe
# sluice is still writing to, and SIGPIPE would fail the pipeline (pipefail) now and then.
out=$("$sluice" --version)
grep -q '^sluice [0-9]' <<<"$out" || fail "--version"
out=$("$sluice" --help)
grep -q 'run' <<<"$out" || fail "--help lists subcommands"
out=$("$sluice" run --help)
grep -q -- '--dry-run' <<<"$out" || fail "run --help"
out=$("$sluice" nodes)
grep -q '^generate' <<<"$out" || fail "nodes lists generate"
out=$("$sluice" nodes generate)
grep -q 'batch_rows' <<<"$out" || fail "nodes generate lists options"
set +e
"$sluice" nodes genrate 2>err; check_eq $? 2 "unknown node type exit code"
grep -q "did you mean 'generate'" err || fail "nodes suggestion"
"$sluice" frobnicate 2>/dev/null; check_eq $? 2 "unknown subcommand exit code"
"$sluice" run 2>/dev/null; check_eq $? 2 "run without a file"
"$sluice" run does-not-exist.yaml 2>err; check_eq $? 2 "missing pipeline file"
grep -q "does-not-exist.yaml: cannot read" err || fail "missing file message: $(cat err)"
set -e

cat > p.yaml <<YAML
pipeline: tiny
nodes:
  src: {type: generate, shape: narrow, rows: 1000, batch_rows: 100}
  even: {type: filter, inputs: [src], where: "id % 2 = 0"}
  out: {type: stdout, inputs: [even]}
YAML
out=$("$sluice" validate p.yaml)
grep -q "ok (3 nodes)" <<<"$out" || fail "validate"
out=$("$sluice" graph p.yaml)
grep -q '"src" -> "even"' <<<"$out" || fail "graph"
rows=$("$sluice" run -q p.yaml | wc -l); check_eq "$rows" 500 "stdout rows"
"$sluice" run -q --set nodes.src.rows=10 p.yaml | jq -c . > ten
check_eq "$(wc -l < ten)" 5 "--set override"
check_eq "$(head -1 ten)" '{"id":2,"value":247535}' "first row (deterministic generate)"
"$sluice" run p.yaml --report r.json > /dev/null 2> summary
grep -q "pipeline 'tiny': ok" summary || fail "summary: $(cat summary)"
check_eq "$(jq -r '.nodes[] | select(.id=="even") | .rows_out' r.json)" 500 "report rows_out"
check_eq "$(jq -r .status r.json)" ok "report status"
# Signals: the first SIGTERM stops gracefully — the source ends, everything read is written and
# committed, exit 0; a second signal cancels at once (130). --until-idle needs a duration.
cat > slow.yaml <<YAML
pipeline: slow
nodes:
  src: {type: generate, shape: narrow, rows: 100000000, batch_rows: 100, rate: 20000}
  out: {type: file, inputs: [src], path: "out-{n}.jsonl", roll_rows: 1000}
YAML
"$sluice" run -q --report stop.json slow.yaml 2>stop.err & pid=$!
for _ in $(seq 200); do [ -s out-00001.jsonl ] && break; sleep 0.05; done
[ -s out-00001.jsonl ] || fail "the slow run wrote nothing"
kill -TERM "$pid"
set +e
wait "$pid"; code=$?
set -e
check_eq "$code" 0 "exit code after one SIGTERM ($(cat stop.err))"
check_eq "$(jq -r .stopped stop.json)" signal "report: stopped"
written=$(cat out-*.jsonl | wc -l)
[ "$written" -gt 0 ] || fail "nothing written before the stop"
check_eq "$(jq -r '.nodes[] | select(.id=="src") | .rows_out' stop.json)" "$written" \
  "rows read = rows written after a stop"
check_eq "$(jq -r '.nodes[] | select(.id=="src") | .abandoned_batches' stop.json)" 0 \
  "batches abandoned by a stop"
# Draining takes a while here (every batch waits 100 ms), so the second signal finds it running.
rm -f out-*.jsonl
cat > drain.yaml <<YAML
pipeline: drain
nodes:
  src: {type: generate, shape: narrow, rows: 100000000, batch_rows: 100}
  wait: {type: fault_inject, inputs: [src], delay: 100ms}
  out: {type: file, inputs: [wait], path: "out-{n}.jsonl", roll_rows: 100}
YAML
"$sluice" run -q drain.yaml 2>/dev/null & pid=$!
for _ in $(seq 200); do [ -s out-00001.jsonl ] && break; sleep 0.05; done
kill -INT "$pid"
sleep 0.2
kill -INT "$pid"
set +e
wait "$pid"; code=$?
"$sluice" run -q --until-idle soon slow.yaml 2>err; idle_code=$?
set -e
check_eq "$code" 130 "exit code after two SIGINTs"
check_eq "$idle_code" 2 "--until-idle with a bad duration"
grep -q "not a duration" err || fail "--until-idle message: $(cat err)"
# GEOS, PROJ, libcurl, libpq and libcrypto are opened by the nodes that need them, not at
# start-up (the first four were 10 of the 13 ms the loader took before main; libcrypto, 3 M of
# the 15 M instructions of a one-row run).
LD_DEBUG=libs "$sluice" --version 2>ld >/dev/null
grep -q 'libyaml-cpp' ld || fail "LD_DEBUG=libs listed no library loaded: $(head -3 ld)"
if grep -qE 'libproj|libgeos|libcurl|libpq|libcrypto' ld; then
  fail "--version loaded a connector's library: $(grep -oE '(libproj|libgeos|libcurl|libpq|libcrypto)[^ ]*' ld | sort -u | tr '\n' ' ')"
fi
# An object store opens libcrypto for its digests, and they are right.
cat > objects.yaml <<'YAML'
nodes:
  src: {type: generate, shape: narrow, rows: 10}
  out: {type: object_store, inputs: [src], url: objects, format: jsonl, compression: none}
YAML
LD_DEBUG=libs "$sluice" run -q --no-history objects.yaml 2>ld >/dev/null ||
  fail "the object_store run failed: $(grep -v '^ *[0-9]*:' ld | tail -3)"
grep -q 'libcrypto' ld || fail "an object_store sink ran without opening libcrypto"
object=$(find objects -name '*.jsonl' ! -path '*_manifests*' | head -1)
[ -n "$object" ] || fail "the object_store sink wrote no object: $(find objects)"
manifest_sha=$(cat objects/_manifests/*.json | jq -r '.objects[0].sha256')
check_eq "$manifest_sha" "$(sha256sum "$object" | cut -d' ' -f1)" "the manifest's SHA-256 of the object"
cat > places.geojson <<'JSON'
{"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"name": "a"}, "geometry": {"type": "Point", "coordinates": [1, 2]}}]}
JSON
cat > geo.yaml <<'YAML'
nodes:
  places: {type: file, path: places.geojson, format: geojson}
  ring: {type: buffer, inputs: [places], distance: 1}
  area: {type: area, inputs: [ring]}
  out: {type: stdout, inputs: [area]}
YAML
LD_DEBUG=libs "$sluice" run -q --no-history geo.yaml 2>ld >rows
grep -q 'libgeos_c' ld || fail "a buffer node ran without opening GEOS"
area=$(jq -r .area rows)
[[ $area == 3.12* ]] || fail "area of a 1-unit buffer of a point (8 segments a quadrant): $area"
echo "cli basics: ok"
