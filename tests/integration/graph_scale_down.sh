#!/usr/bin/env bash
# examples/graph-scale-down.yaml on SQLite (no servers): a template of 2,000 resources and 6,000
# relationships scaled up (examples/graph-scale-up.yaml) by two operations, op-1 (3 copies) and
# op-2 (2 copies), then op-1 scaled down (the sqlite sink's mode: delete, by id, a batch per
# transaction; resources after the relationships). Checks: exactly op-1's rows go, op-2's rows
# and the template stay byte for byte; rows_deleted counts them; a rerun deletes nothing and
# changes nothing; a run killed part way (the process exits at the third batch of resource
# ids), then rerun, ends in the same state as a run that was never killed.
examples="$(cd "$(dirname "$0")/../../examples" && pwd)"
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is missing: run scripts/install-deps"
command -v jq >/dev/null || fail "jq is missing: run scripts/install-deps"
export TEMPLATE_DB="$work/template.db" OUT_DB="$work/graph.db"

sqlite3 template.db <<'SQL'
CREATE TABLE resources (id INTEGER PRIMARY KEY, tenant_id TEXT, type TEXT, name TEXT);
CREATE TABLE relationships (id INTEGER PRIMARY KEY, source_id INTEGER, target_id INTEGER,
                            type TEXT);
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
INSERT INTO resources SELECT i, 'tenant-a', 'vm', 'résource ' || i FROM g;
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 6000)
INSERT INTO relationships SELECT i, 1 + (i * 7) % 2000, 1 + (i * 13) % 2000, 'depends_on' FROM g;
SQL
# The template itself is in graph.db too (the graph a tenant has), untagged.
sqlite3 graph.db <<'SQL'
ATTACH 'template.db' AS t;
CREATE TABLE resources (id INTEGER PRIMARY KEY, tenant_id TEXT, type TEXT, name TEXT,
  synthetic BOOLEAN, scale_operation_id TEXT, template_source_id INTEGER, copy_number INTEGER);
CREATE TABLE relationships (id INTEGER PRIMARY KEY, source_id INTEGER, target_id INTEGER,
  type TEXT, synthetic BOOLEAN, scale_operation_id TEXT, template_source_id INTEGER,
  copy_number INTEGER);
INSERT INTO resources (id, tenant_id, type, name) SELECT * FROM t.resources;
INSERT INTO relationships (id, source_id, target_id, type) SELECT * FROM t.relationships;
SQL
OPERATION=op-1 COPIES=3 "$sluice" run -q "$examples/graph-scale-up.yaml"
OPERATION=op-2 COPIES=2 "$sluice" run -q "$examples/graph-scale-up.yaml"
q() { sqlite3 graph.db "$1"; }
check_eq "$(q "SELECT scale_operation_id, count(*) FROM resources GROUP BY 1 ORDER BY 1" | tr '\n' ' ')" \
  "|2000 op-1|6000 op-2|4000 " "resources by operation before"
check_eq "$(q "SELECT scale_operation_id, count(*) FROM relationships GROUP BY 1 ORDER BY 1" | tr '\n' ' ')" \
  "|6000 op-1|18000 op-2|12000 " "relationships by operation before"
# digest WHERE: every row of both tables matching WHERE, in id order.
digest() {
  q "SELECT * FROM resources WHERE $1 ORDER BY id; SELECT * FROM relationships WHERE $1 ORDER BY id" \
    | sha256sum
}
deleted() { jq -r '[.nodes[] | .counters.rows_deleted // 0] | add' "$1"; }
kept=$(digest "scale_operation_id IS NOT 'op-1'")

OPERATION=op-1 "$sluice" run -q --report r1.json "$examples/graph-scale-down.yaml"
check_eq "$(q "SELECT count(*) FROM resources WHERE scale_operation_id = 'op-1'")" 0 "op-1 resources left"
check_eq "$(q "SELECT count(*) FROM relationships WHERE scale_operation_id = 'op-1'")" 0 "op-1 relationships left"
check_eq "$(digest "true")" "$kept" "op-2's rows and the template after the scale-down"
check_eq "$(deleted r1.json)" 24000 "rows_deleted"
check_eq "$(jq -r '.nodes[] | select(.id == "relationships_gone") | .counters.rows_deleted' r1.json)" \
  18000 "relationships deleted"

# A rerun deletes nothing.
OPERATION=op-1 "$sluice" run -q --report r2.json "$examples/graph-scale-down.yaml"
check_eq "$(deleted r2.json)" 0 "rows_deleted by a rerun"
check_eq "$(digest "true")" "$kept" "tables after a rerun"

# Killed part way (the process exits at the third batch of resource ids, after the
# relationships are all gone), then rerun. The sequential executor writes each batch before it
# reads the next: the two batches before the third are exactly what the killed run deleted.
kept=$(digest "scale_operation_id IS NOT 'op-2'")
sed -e 's/^    inputs: \[resource_ids\]$/    inputs: [die]/' "$examples/graph-scale-down.yaml" > killed.yaml
cat >> killed.yaml <<'YAML'
  die:
    type: fault_inject
    inputs: [resource_ids]
    fail_at_batch: 2
    action: exit
YAML
grep -q "inputs: \[die\]" killed.yaml || fail "the kill pipeline was not wired: $(cat killed.yaml)"
rc=0
OPERATION=op-2 BATCH_ROWS=500 "$sluice" run -q --engine sequential killed.yaml 2>kill.err || rc=$?
check_eq "$rc" 137 "exit code of the killed run"
left=$(q "SELECT count(*) FROM resources WHERE scale_operation_id = 'op-2'")
check_eq "$left" 3000 "op-2 resources left by the killed run (two batches of 500 deleted)"
check_eq "$(q "SELECT count(*) FROM relationships WHERE scale_operation_id = 'op-2'")" 0 \
  "op-2 relationships left by the killed run"
OPERATION=op-2 BATCH_ROWS=500 "$sluice" run -q --report r3.json "$examples/graph-scale-down.yaml"
check_eq "$(deleted r3.json)" 3000 "rows_deleted by the rerun of the killed run"
check_eq "$(q "SELECT count(*) FROM resources WHERE scale_operation_id = 'op-2'")" 0 "op-2 resources after the rerun"
check_eq "$(digest "true")" "$kept" "the template after the rerun"
check_eq "$(q "SELECT count(*) FROM resources")" 2000 "resources: the template's alone"
echo "graph_scale_down: ok"
