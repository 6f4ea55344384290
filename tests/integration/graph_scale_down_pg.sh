#!/usr/bin/env bash
# Workload 4 against PostgreSQL with foreign keys from relationships to resources: a scale-up
# whose relationships source waits (after:) for the resources' sink, on both executors (a
# relationship written before its resource would violate the key), and
# examples/graph-scale-down-pg.yaml deleting one scale operation's rows (the postgres sink's
# mode: delete, by id, a batch per transaction; resources after the relationships pointing at
# them). A template of 2,000 resources and 6,000 relationships, scaled up by two operations (3
# and 2 copies). Checks: exactly op-1's rows go; op-2's rows and the template stay byte for byte;
# a rerun deletes nothing (rows_deleted 0) and changes nothing; a run killed (-9) part way,
# then rerun, ends in the same state; a NULL id among the keys fails its batch, deleting none of
# it.
example="$(cd "$(dirname "$0")/../../examples" && pwd)/graph-scale-down-pg.yaml"
source "$(dirname "$0")/lib.sh"
require_services SLUICE_PG_DSN
export PGHOST PGPORT PGUSER PGDATABASE PGOPTIONS="-c client_min_messages=warning"
res="gsd_resources_$$" rel="gsd_relationships_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $res, $rel"
  lib_cleanup
}
trap cleanup EXIT
export PG_DSN="$SLUICE_PG_DSN" RESOURCES=$res RELATIONSHIPS=$rel

psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE $res (id bigint PRIMARY KEY, tenant_id text, type text, name text, properties jsonb,
  synthetic bool NOT NULL DEFAULT false, scale_operation_id text, template_source_id bigint,
  copy_number bigint);
CREATE TABLE $rel (id bigint PRIMARY KEY, source_id bigint REFERENCES $res (id),
  target_id bigint REFERENCES $res (id), type text,
  synthetic bool NOT NULL DEFAULT false, scale_operation_id text, template_source_id bigint,
  copy_number bigint);
INSERT INTO $res (id, tenant_id, type, name, properties)
SELECT i, 'tenant-a', 'vm', 'résource ' || i, jsonb_build_object('cpu', i % 8) FROM generate_series(1, 2000) i;
INSERT INTO $rel (id, source_id, target_id, type)
SELECT i, 1 + (i * 7) % 2000, 1 + (i * 13) % 2000, 'depends_on' FROM generate_series(1, 6000) i;
SQL

# scale_up OPERATION COPIES ENGINE [WRITES]: relationships (with foreign keys to resources) are
# read only after every resource copy is written (after: [ro]); WRITES: max_parallel_writes.
scale_up() {
  local writes=${4:-1}
  cat > up.yaml <<YAML
pipeline: gsd-up
nodes:
  resources: {type: postgres, dsn: "$PG_DSN", query: "SELECT id, tenant_id, type, name, properties FROM $res WHERE NOT synthetic"}
  relationships: {type: postgres, dsn: "$PG_DSN", query: "SELECT id, source_id, target_id, type FROM $rel WHERE NOT synthetic", after: [ro]}
  rc: {type: replicate, inputs: [resources], copies: $2, operation: $1, remap: [id]}
  lc: {type: replicate, inputs: [relationships], copies: $2, operation: $1, remap: [id, source_id, target_id]}
  ro: {type: postgres, inputs: [rc], dsn: "$PG_DSN", table: $res, mode: upsert, key: [id], on_conflict: keep, max_parallel_writes: $writes, batch_rows: 700}
  lo: {type: postgres, inputs: [lc], dsn: "$PG_DSN", table: $rel, mode: upsert, key: [id], on_conflict: keep, max_parallel_writes: $writes}
YAML
  "$sluice" run -q --engine "$3" up.yaml
}
scale_up op-1 3 parallel 3
scale_up op-2 2 sequential
check_eq "$(psql -qAtc "SELECT scale_operation_id, count(*) FROM $res GROUP BY 1 ORDER BY 1" | tr '\n' ' ')" \
  "op-1|6000 op-2|4000 |2000 " "resources by operation before"
# digest WHERE: every row of both tables matching WHERE, in id order.
digest() {
  psql -qAtc "SELECT md5(string_agg(r::text, E'\n' ORDER BY r.id)) FROM $res r WHERE $1"
  psql -qAtc "SELECT md5(string_agg(l::text, E'\n' ORDER BY l.id)) FROM $rel l WHERE $1"
}
kept=$(digest "scale_operation_id IS DISTINCT FROM 'op-1'")

OPERATION=op-1 "$sluice" run -q --report r1.json "$example"
check_eq "$(psql -qAtc "SELECT count(*) FROM $res WHERE scale_operation_id = 'op-1'")" 0 "op-1 resources left"
check_eq "$(psql -qAtc "SELECT count(*) FROM $rel WHERE scale_operation_id = 'op-1'")" 0 "op-1 relationships left"
check_eq "$(digest "true")" "$kept" "op-2's rows and the template"
check_eq "$(jq -r '[.nodes[] | .counters.rows_deleted // 0] | add' r1.json)" 24000 "rows_deleted"

# A rerun deletes nothing.
OPERATION=op-1 "$sluice" run -q --report r2.json "$example"
check_eq "$(jq -r '[.nodes[] | .counters.rows_deleted // 0] | add' r2.json)" 0 "rows_deleted by a rerun"
check_eq "$(digest "true")" "$kept" "tables after a rerun"

# Killed part way (kill -9 once some of op-2's resources are deleted, not all), then rerun. The
# kill waits for the database to show a batch deleted: a kill at a fixed batch found none
# committed yet when the sink was slow (ASan, a loaded machine).
kept=$(digest "scale_operation_id IS DISTINCT FROM 'op-2'")
sed -e 's/^    inputs: \[resource_ids\]$/    inputs: [slow]/' "$example" > killed.yaml
cat >> killed.yaml <<'YAML'
  slow:
    type: fault_inject
    inputs: [resource_ids]
    delay: 1s   # before each batch of 500: op-2's 4000 resources take 8 s
YAML
grep -q "inputs: \[slow\]" killed.yaml || fail "the kill pipeline was not wired: $(cat killed.yaml)"
OPERATION=op-2 BATCH_ROWS=500 "$sluice" run -q killed.yaml 2>kill.err & pid=$!
for _ in $(seq 1200); do
  left=$(psql -qAtc "SELECT count(*) FROM $res WHERE scale_operation_id = 'op-2'")
  [ "$left" -lt 4000 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 137 ] || fail "the run was not killed mid-way (exit $rc): $(tail -3 kill.err)"
left=$(psql -qAtc "SELECT count(*) FROM $res WHERE scale_operation_id = 'op-2'")
[ "$left" -gt 0 ] && [ "$left" -lt 4000 ] || fail "the killed run should have deleted part of op-2's resources, left $left"
OPERATION=op-2 BATCH_ROWS=500 "$sluice" run -q "$example"
check_eq "$(psql -qAtc "SELECT count(*) FROM $res WHERE scale_operation_id = 'op-2'")" 0 "op-2 resources after the rerun"
check_eq "$(psql -qAtc "SELECT count(*) FROM $rel WHERE scale_operation_id = 'op-2'")" 0 "op-2 relationships after the rerun"
check_eq "$(digest "true")" "$kept" "the template after the rerun"

# A NULL key fails its batch: nothing of it is deleted.
psql -qc "UPDATE $rel SET scale_operation_id = 'op-3' WHERE id <= 10"
cat > nullkey.yaml <<YAML
pipeline: gsd-null
nodes:
  ids: {type: postgres, dsn: "$PG_DSN", query: "SELECT CASE WHEN id = 5 THEN NULL ELSE id END AS id FROM $rel WHERE scale_operation_id = 'op-3'"}
  gone: {type: postgres, inputs: [ids], dsn: "$PG_DSN", table: $rel, mode: delete, key: [id]}
YAML
expect_failure 1 "NULL" "a NULL id among the keys" "$sluice" run -q nullkey.yaml
check_eq "$(psql -qAtc "SELECT count(*) FROM $rel WHERE scale_operation_id = 'op-3'")" 10 "rows of the failed batch"
# A scale-up killed (SIGABRT) while three batches are written at once, then rerun: every copy's
# rows exactly once, the template untouched, every endpoint in its own copy.
template=$(digest "NOT synthetic")
scale_up op-4 3 parallel 3
sed -e 's/^  lo: {type: postgres, inputs: \[lc\],/  lo: {type: postgres, inputs: [die],/' \
    -e 's/after: \[ro\]}/after: [ro], batch_rows: 500}/' up.yaml > up-killed.yaml
cat >> up-killed.yaml <<'YAML'
  die: {type: fault_inject, inputs: [lc], fail_at_batch: 20, action: abort}
YAML
grep -q "inputs: \[die\]" up-killed.yaml && grep -q "batch_rows: 500}" up-killed.yaml \
  || fail "the killed scale-up was not wired: $(cat up-killed.yaml)"
psql -qc "DELETE FROM $rel WHERE scale_operation_id = 'op-4'; DELETE FROM $res WHERE scale_operation_id = 'op-4'"
rc=0
"$sluice" run -q up-killed.yaml 2>up-killed.err || rc=$?
[ "$rc" = 134 ] || fail "the killed scale-up: exit $rc, want 134 (SIGABRT): $(tail -3 up-killed.err)"
got=$(psql -qAtc "SELECT count(*) FROM $rel WHERE scale_operation_id = 'op-4'")
[ "$got" -lt 18000 ] || fail "the killed scale-up wrote every relationship ($got)"
"$sluice" run -q up.yaml
check_eq "$(psql -qAtc "SELECT count(*), count(DISTINCT id), count(DISTINCT (template_source_id, copy_number)) FROM $res WHERE scale_operation_id = 'op-4'")" \
  "6000|6000|6000" "op-4 resources after the rerun"
check_eq "$(psql -qAtc "SELECT count(*), count(DISTINCT id), count(DISTINCT (template_source_id, copy_number)) FROM $rel WHERE scale_operation_id = 'op-4'")" \
  "18000|18000|18000" "op-4 relationships after the rerun"
check_eq "$(psql -qAtc "SELECT count(*) FROM $rel l JOIN $res s ON s.id = l.source_id JOIN $res d ON d.id = l.target_id
                        WHERE l.scale_operation_id = 'op-4' AND s.copy_number = l.copy_number AND d.copy_number = l.copy_number")" \
  18000 "op-4 relationships whose endpoints are in their copy"
check_eq "$(digest "NOT synthetic")" "$template" "the template after the killed scale-up"
echo "graph_scale_down_pg: ok"
