#!/usr/bin/env bash
# examples/graph-scale-up.yaml on SQLite (no servers): a template of 5,000 resources and 15,000
# relationships (1 % with no target) copied 7 times. Checks: exactly 7x the rows; every
# relationship's endpoints exist in the same copy and are the copies of its template
# relationship's endpoints; null targets stay null; every value but the ids is the template's;
# the tag columns indexed (indexes: [auto]) and indexes_created reporting them, none made by a
# rerun; a rerun of the same operation leaves both tables byte for byte as they were; another
# operation adds another 7 copies and leaves the first ones alone. Then relationships whose
# endpoint is not in the template (dangling): on_miss dead_letter (the example's) copies the
# others and lists exactly the dangling ones with their id and the endpoint each lacks; skip
# drops and counts them; fail stops the run before any relationship is loaded.
example="$(cd "$(dirname "$0")/../../examples" && pwd)/graph-scale-up.yaml"
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is missing: run scripts/install-deps"
export TEMPLATE_DB="$work/template.db" OUT_DB="$work/graph.db" COPIES=7 OPERATION=op-1 \
  DANGLING="$work/dangling.jsonl"

sqlite3 template.db <<'SQL'
CREATE TABLE resources (id INTEGER PRIMARY KEY, tenant_id TEXT, type TEXT, name TEXT,
                        properties JSON);
CREATE TABLE relationships (id INTEGER PRIMARY KEY, source_id INTEGER, target_id INTEGER,
                            type TEXT);
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 5000)
INSERT INTO resources
SELECT i, 'tenant-a', CASE i % 3 WHEN 0 THEN 'vm' WHEN 1 THEN 'disk' ELSE 'net' END,
       'résource ' || i, json_object('cpu', i % 8, 'tags', json_array('a', i))
  FROM g;
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 15000)
INSERT INTO relationships
SELECT i, 1 + (i * 7) % 5000, CASE WHEN i % 100 = 0 THEN NULL ELSE 1 + (i * 13) % 5000 END,
       'depends_on'
  FROM g;
SQL
q() { sqlite3 graph.db "ATTACH '$work/template.db' AS t; $1"; }
digest() { sqlite3 graph.db "SELECT * FROM resources ORDER BY id; SELECT * FROM relationships ORDER BY id" | sha256sum; }

"$sluice" run -q --report up1.json "$example"
check_eq "$(q 'SELECT count(*) FROM resources')" 35000 "resources after 7 copies"
check_eq "$(q 'SELECT count(*) FROM relationships')" 105000 "relationships after 7 copies"
check_eq "$(q 'SELECT count(DISTINCT id) FROM resources')" 35000 "distinct resource ids"
check_eq "$(q "SELECT count(*) FROM relationships WHERE target_id IS NULL")" 1050 "relationships without a target"
# Each copy of a relationship joins the copies, in its own copy, of its template's endpoints.
check_eq "$(q "SELECT count(*) FROM relationships r
                 JOIN t.relationships tr ON tr.id = r.template_source_id
                 LEFT JOIN resources s ON s.id = r.source_id
                 LEFT JOIN resources d ON d.id = r.target_id
                WHERE s.id IS NULL OR s.copy_number != r.copy_number
                   OR s.template_source_id != tr.source_id
                   OR (tr.target_id IS NULL) != (r.target_id IS NULL)
                   OR (r.target_id IS NOT NULL AND (d.id IS NULL OR d.copy_number != r.copy_number
                       OR d.template_source_id != tr.target_id))")" 0 "miswired relationships"
# Every other value is the template's; the tags are set.
check_eq "$(q "SELECT count(*) FROM resources c JOIN t.resources tr ON tr.id = c.template_source_id
                WHERE c.tenant_id IS tr.tenant_id AND c.type IS tr.type AND c.name IS tr.name
                  AND c.properties IS tr.properties AND c.synthetic = 1
                  AND c.scale_operation_id = 'op-1' AND c.copy_number BETWEEN 1 AND 7")" 35000 \
  "copies equal to their template"
check_eq "$(q "SELECT count(*) FROM (SELECT template_source_id FROM resources GROUP BY 1
                                       HAVING count(*) = 7 AND count(DISTINCT copy_number) = 7)")" \
  5000 "templates with one resource in each of the 7 copies"

[ ! -s dangling.jsonl ] || fail "dangling relationships listed for a template without any: $(head -3 dangling.jsonl)"

# indexes: [auto] (after the load): the tag columns, reported in indexes_created.
check_eq "$(sqlite3 graph.db "SELECT m.name || '(' || (SELECT group_concat(name) FROM pragma_index_info(m.name)) || ')'
                              FROM sqlite_master m WHERE type = 'index' ORDER BY name" | tr '\n' ' ')" \
  "relationships_scale_operation_id(scale_operation_id) relationships_source_id(source_id) relationships_synthetic_scale_operation_id(synthetic,scale_operation_id) relationships_target_id(target_id) relationships_template_source_id(template_source_id) resources_scale_operation_id(scale_operation_id) resources_synthetic_scale_operation_id(synthetic,scale_operation_id) resources_template_source_id(template_source_id) resources_tenant_id(tenant_id) " \
  "indexes after the scale-up"
indexes_created() { jq -r '[.nodes[] | .counters.indexes_created // 0] | add' "$1"; }
check_eq "$(indexes_created up1.json)" 9 "indexes_created"

before=$(digest)
"$sluice" run -q --report up2.json "$example"
check_eq "$(digest)" "$before" "tables after rerunning the same operation"
check_eq "$(indexes_created up2.json)" 0 "indexes_created by the rerun"

OPERATION=op-2 "$sluice" run -q "$example"
check_eq "$(q "SELECT count(*) FROM resources")" 70000 "resources after a second operation"
check_eq "$(q "SELECT count(*) FROM relationships WHERE scale_operation_id = 'op-1'")" 105000 \
  "the first operation's relationships after the second"
check_eq "$(sqlite3 graph.db "SELECT * FROM resources WHERE scale_operation_id = 'op-1' ORDER BY id;
                              SELECT * FROM relationships WHERE scale_operation_id = 'op-1' ORDER BY id" \
            | sha256sum)" "$before" "the first operation's rows after the second"

# Dangling relationships: 7's source, 8's target and both of 9's endpoints are no resource of
# the template; 150 relationships have no target, which is not dangling.
cp template.db dangling.db
sqlite3 dangling.db "UPDATE relationships SET source_id = 99999 WHERE id = 7;
                     UPDATE relationships SET target_id = 88888 WHERE id = 8;
                     UPDATE relationships SET source_id = 77777, target_id = 77777 WHERE id = 9"
export TEMPLATE_DB="$work/dangling.db" OPERATION=op-d
OUT_DB="$work/d.db" "$sluice" run -q --report d.json "$example"
check_eq "$(sqlite3 d.db 'SELECT count(*) FROM relationships')" $(( (15000 - 3) * 7 )) \
  "relationships copied from a template with 3 dangling ones"
check_eq "$(sqlite3 d.db 'SELECT count(*) FROM resources')" 35000 "resources copied"
check_eq "$(sqlite3 d.db 'SELECT count(*) FROM relationships WHERE template_source_id IN (7, 8, 9)')" 0 \
  "copies of dangling relationships"
check_eq "$(jq -r '[(.record | fromjson | .id), .node, .error] | @tsv' dangling.jsonl | sort -n)" \
  "$(printf '%s\t%s\t%s\n' 7 known_sources "no reference row for source_id = 99999" \
                            8 known_targets "no reference row for target_id = 88888" \
                            9 known_sources "no reference row for source_id = 77777")" \
  "the dangling relationships listed, with the endpoint each lacks"
counter() { jq -r --arg n "$2" --arg c "$3" '.nodes[] | select(.id == $n) | .counters[$c] // 0' "$1"; }
check_eq "$(counter d.json known_sources dead_letter_records) $(counter d.json known_sources not_found)" \
  "2 2" "dangling sources counted"
check_eq "$(counter d.json known_targets dead_letter_records) $(counter d.json known_targets not_found) $(counter d.json known_targets null_keys)" \
  "1 1 150" "dangling targets counted, relationships without a target passed"

# skip and fail: the example with another on_miss and without the dead-letter file.
variant() { sed -e "s/on_miss: dead_letter/on_miss: $1/" -e '/^  # Last, so that a variant/,$d' "$example"; }
variant skip > skip.yaml
OUT_DB="$work/s.db" "$sluice" run -q --report s.json skip.yaml
check_eq "$(sqlite3 s.db 'SELECT count(*) FROM relationships')" $(( (15000 - 3) * 7 )) \
  "relationships copied with on_miss: skip"
check_eq "$(counter s.json known_sources rows_skipped) $(counter s.json known_targets rows_skipped)" \
  "2 1" "dangling relationships skipped"
check_eq "$(sqlite3 s.db "SELECT * FROM relationships ORDER BY id" | sha256sum)" \
  "$(sqlite3 d.db "SELECT * FROM relationships ORDER BY id" | sha256sum)" \
  "relationships copied with skip and with dead_letter"
variant fail > fail.yaml
expect_failure 1 "node 'known_sources': row 6: no reference row for source_id = 99999 (on_miss: fail" \
  "a dangling relationship with on_miss: fail" env OUT_DB="$work/f.db" "$sluice" run -q fail.yaml
check_eq "$(sqlite3 f.db "SELECT count(*) FROM sqlite_master WHERE name = 'relationships'")" 0 \
  "relationships loaded by the run that failed"
echo "graph_scale_up: ok"
