#!/usr/bin/env bash
# examples/graph-scale-up-pg.yaml against PostgreSQL: a template of 2,000 resources and 6,000
# relationships (1 % without a target; 7's source and 8's target are no resource: dangling) in
# the same tables as its copies, copied 3 times. Checks: exactly 3x the resources and 3x the
# 5,998 relationships that are not dangling; each copy's endpoints are the copies, in its copy,
# of its template's endpoints; exactly 7 and 8 listed as dangling with the endpoint each lacks;
# the tag columns indexed after the load (indexes: [auto]) and counted in indexes_created; a
# rerun changes no row and makes no index; examples/graph-scale-down-pg.yaml then leaves the
# template exactly as it was.
examples="$(cd "$(dirname "$0")/../../examples" && pwd)"
source "$(dirname "$0")/lib.sh"
require_services SLUICE_PG_DSN
command -v jq >/dev/null || fail "jq is missing: run scripts/install-deps"
export PGHOST PGPORT PGUSER PGDATABASE PGOPTIONS="-c client_min_messages=warning"
res="gup_resources_$$" rel="gup_relationships_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $res, $rel"
  lib_cleanup
}
trap cleanup EXIT
export PG_DSN="$SLUICE_PG_DSN" RESOURCES=$res RELATIONSHIPS=$rel OPERATION=op-1 COPIES=3 \
  DANGLING="$work/dangling.jsonl"

psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE $res (id bigint PRIMARY KEY, tenant_id text, type text, name text, properties jsonb,
  synthetic bool NOT NULL DEFAULT false, scale_operation_id text, template_source_id bigint,
  copy_number bigint);
CREATE TABLE $rel (id bigint PRIMARY KEY, source_id bigint, target_id bigint, type text,
  properties jsonb, synthetic bool NOT NULL DEFAULT false, scale_operation_id text,
  template_source_id bigint, copy_number bigint);
INSERT INTO $res (id, tenant_id, type, name, properties)
SELECT i, 'tenant-a', 'vm', 'résource ' || i, jsonb_build_object('cpu', i % 8)
  FROM generate_series(1, 2000) i;
INSERT INTO $rel (id, source_id, target_id, type, properties)
SELECT i, CASE WHEN i = 7 THEN 99999 ELSE 1 + (i * 7) % 2000 END,
       CASE WHEN i = 8 THEN 88888 WHEN i % 100 = 0 THEN NULL ELSE 1 + (i * 13) % 2000 END,
       'depends_on', jsonb_build_object('w', i % 5)
  FROM generate_series(1, 6000) i;
SQL
digest() {
  psql -qAtc "SELECT md5(string_agg(r::text, E'\n' ORDER BY r.id)) FROM $res r WHERE $1"
  psql -qAtc "SELECT md5(string_agg(l::text, E'\n' ORDER BY l.id)) FROM $rel l WHERE $1"
}
template=$(digest "NOT synthetic")
counter() { jq -r --arg c "$2" '[.nodes[] | .counters[$c] // 0] | add' "$1"; }

"$sluice" run -q --report r1.json "$examples/graph-scale-up-pg.yaml"
check_eq "$(psql -qAtc "SELECT count(*), count(DISTINCT (template_source_id, copy_number)) FROM $res WHERE scale_operation_id = 'op-1'")" \
  "6000|6000" "resource copies"
check_eq "$(psql -qAtc "SELECT count(*), count(DISTINCT (template_source_id, copy_number)) FROM $rel WHERE scale_operation_id = 'op-1'")" \
  "17994|17994" "relationship copies"
check_eq "$(psql -qAtc "SELECT count(*) FROM $rel WHERE template_source_id IN (7, 8)")" 0 \
  "copies of dangling relationships"
check_eq "$(psql -qAtc "SELECT count(*) FROM $rel l JOIN $rel t ON t.id = l.template_source_id
                        JOIN $res s ON s.id = l.source_id
                        LEFT JOIN $res d ON d.id = l.target_id
                        WHERE l.scale_operation_id = 'op-1'
                          AND s.copy_number = l.copy_number AND s.template_source_id = t.source_id
                          AND ((t.target_id IS NULL AND l.target_id IS NULL)
                               OR (d.copy_number = l.copy_number AND d.template_source_id = t.target_id))")" \
  17994 "relationship copies wired to their copy's resources"
check_eq "$(jq -r '[(.record | fromjson | .id), .node, .error] | @tsv' dangling.jsonl | sort -n)" \
  "$(printf '%s\t%s\t%s\n' 7 known_sources "no reference row for source_id = 99999" \
                            8 known_targets "no reference row for target_id = 88888")" \
  "the dangling relationships listed"
check_eq "$(counter r1.json dead_letter_records) $(counter r1.json null_keys)" "2 60" \
  "dangling relationships and relationships without a target counted"
check_eq "$(psql -qAtc "SELECT string_agg(replace(indexname, '$res', 'res') || ' ' || substring(indexdef from '\((.*)\)$'), '; ' ORDER BY indexname)
                        FROM pg_indexes WHERE tablename = '$res' AND indexname NOT LIKE '%pkey'")" \
  "res_scale_operation_id_idx scale_operation_id; res_synthetic_scale_operation_id_idx synthetic, scale_operation_id; res_template_source_id_idx template_source_id; res_tenant_id_idx tenant_id" \
  "indexes on the resources"
check_eq "$(psql -qAtc "SELECT string_agg(replace(indexname, '$rel', 'rel'), ' ' ORDER BY indexname)
                        FROM pg_indexes WHERE tablename = '$rel' AND indexname NOT LIKE '%pkey'")" \
  "rel_scale_operation_id_idx rel_source_id_idx rel_synthetic_scale_operation_id_idx rel_target_id_idx rel_template_source_id_idx" \
  "indexes on the relationships"
check_eq "$(counter r1.json indexes_created)" 9 "indexes_created"

copies=$(digest "true")
"$sluice" run -q --report r2.json "$examples/graph-scale-up-pg.yaml"
check_eq "$(digest "true")" "$copies" "tables after a rerun of the same operation"
check_eq "$(counter r2.json indexes_created)" 0 "indexes_created by the rerun"

"$sluice" run -q --report r3.json "$examples/graph-scale-down-pg.yaml"
check_eq "$(counter r3.json rows_deleted)" $(( 6000 + 17994 )) "rows_deleted by the scale-down"
check_eq "$(digest "true")" "$template" "the tables after the scale-down: the template's rows"
echo "graph_scale_up_pg: ok"
