#!/usr/bin/env bash
# The CLI's contract: versions, help, listing, validation, DOT output and exit codes.
source "$(dirname "$0")/lib.sh"

"$sluice" --version | grep -q '^sluice [0-9]' || fail "--version"
"$sluice" --help | grep -q 'run' || fail "--help lists subcommands"
"$sluice" run --help | grep -q -- '--dry-run' || fail "run --help"
"$sluice" nodes | grep -q '^generate' || fail "nodes lists generate"
"$sluice" nodes generate | grep -q 'batch_rows' || fail "nodes generate lists options"
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
"$sluice" validate p.yaml | grep -q "ok (3 nodes)" || fail "validate"
"$sluice" graph p.yaml | grep -q '"src" -> "even"' || fail "graph"
rows=$("$sluice" run -q p.yaml | wc -l); check_eq "$rows" 500 "stdout rows"
"$sluice" run -q --set nodes.src.rows=10 p.yaml | jq -c . > ten
check_eq "$(wc -l < ten)" 5 "--set override"
check_eq "$(head -1 ten)" '{"id":2,"value":247535}' "first row (deterministic generate)"
"$sluice" run p.yaml --report r.json > /dev/null 2> summary
grep -q "pipeline 'tiny': ok" summary || fail "summary: $(cat summary)"
check_eq "$(jq -r '.nodes[] | select(.id=="even") | .rows_out' r.json)" 500 "report rows_out"
check_eq "$(jq -r .status r.json)" ok "report status"
echo "cli basics: ok"
