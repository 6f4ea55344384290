#!/usr/bin/env bash
# examples/graph-scale-up.yaml on SQLite (no servers): a template of 5,000 resources and 15,000
# relationships (1 % with no target) copied 7 times. Checks: exactly 7x the rows; every
# relationship's endpoints exist in the same copy and are the copies of its template
# relationship's endpoints; null targets stay null; every value but the ids is the template's;
# a rerun of the same operation leaves both tables byte for byte as they were; another
# operation adds another 7 copies and leaves the first ones alone.
example="$(cd "$(dirname "$0")/../../examples" && pwd)/graph-scale-up.yaml"
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is missing: run scripts/install-deps"
export TEMPLATE_DB="$work/template.db" OUT_DB="$work/graph.db" COPIES=7 OPERATION=op-1

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

"$sluice" run -q "$example"
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

before=$(digest)
"$sluice" run -q "$example"
check_eq "$(digest)" "$before" "tables after rerunning the same operation"

OPERATION=op-2 "$sluice" run -q "$example"
check_eq "$(q "SELECT count(*) FROM resources")" 70000 "resources after a second operation"
check_eq "$(q "SELECT count(*) FROM relationships WHERE scale_operation_id = 'op-1'")" 105000 \
  "the first operation's relationships after the second"
check_eq "$(sqlite3 graph.db "SELECT * FROM resources WHERE scale_operation_id = 'op-1' ORDER BY id;
                              SELECT * FROM relationships WHERE scale_operation_id = 'op-1' ORDER BY id" \
            | sha256sum)" "$before" "the first operation's rows after the second"
