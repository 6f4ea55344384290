#!/usr/bin/env bash
# The archiver against a real PostgreSQL (scripts/services): 100 k audit rows, half older than
# the cutoff. Checks, for both executors and after faults:
#   - every archived row is in exactly one file, and only rows older than the cutoff are gone;
#   - a sink failing mid-run, and the process dying mid-run (abort), delete nothing unwritten;
#   - a rerun finishes the job; two archivers at once never archive a row twice.
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] || fail "SLUICE_PG_DSN is not set: run scripts/services start and eval \"\$(scripts/services env)\""
psql -qAtc 'select 1' >/dev/null || fail "PostgreSQL at $PGHOST:$PGPORT does not answer"
table="archive_test_$$"
trap 'psql -qc "DROP TABLE IF EXISTS $table" >/dev/null 2>&1; rm -rf "$work"' EXIT

seed() {
  psql -q <<SQL
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text,
                     action text, payload jsonb);
INSERT INTO $table
SELECT g, timestamptz '2025-01-01' + (g % 365) * interval '1 day', 'user-' || (g % 97),
       (ARRAY['login','logout','read','update'])[1 + g % 4],
       jsonb_build_object('n', g, 'pad', repeat('x', 200))
FROM generate_series(1, 100000) g;
CREATE INDEX ON $table (created_at, id);
SQL
}
old_count() { psql -qAtc "SELECT count(*) FROM $table WHERE created_at < '2025-07-01'"; }
new_count() { psql -qAtc "SELECT count(*) FROM $table WHERE created_at >= '2025-07-01'"; }

cat > archive.yaml <<YAML
nodes:
  old:
    type: postgres_archive
    databases:
      main: {dsn: "\${SLUICE_PG_DSN}", tables: [$table], pool_size: 3}
    defaults: {timestamp_column: created_at, key_column: id, cutoff: "2025-07-01T00:00:00Z"}
    batch_size: 4000
    min_batch_size: 1000
    max_batch_size: 5000
  fault: {type: fault_inject, inputs: [old], fail_at_batch: -1}
  files: {type: file, inputs: [fault], path: "\${OUTDIR}/part-{n}.jsonl.gz", roll_rows: 4000}
YAML

check_no_loss() {
  local expect_old=$1 what=$2
  local remaining; remaining=$(old_count)
  local archived; archived=$(archived_ids out | sort -nu | wc -l)
  # Every old row is in the table or in a file (or both, after a crash between publish and
  # commit); the newer rows are untouched.
  [ $((remaining + archived)) -ge "$expect_old" ] || fail "$what: $remaining left + $archived archived < $expect_old"
  check_eq "$(new_count)" "$newer" "$what: newer rows"
  # Nothing deleted without its file: deleted rows must all be archived.
  deleted=$((expect_old - remaining))
  [ "$archived" -ge "$deleted" ] || fail "$what: $deleted deleted but only $archived archived"
}

for engine in parallel sequential; do
  seed
  old=$(old_count); newer=$(new_count)
  rm -rf out
  # 1. The sink path fails on batch 5: exit 1, no unwritten row deleted.
  set +e
  OUTDIR=out/a "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=5 archive.yaml 2>err
  code=$?; set -e
  check_eq "$code" 1 "$engine: failing run exit code"
  grep -q "injected fault" err || fail "$engine: $(cat err)"
  check_no_loss "$old" "$engine after failure"
  # 2. The process dies on batch 3.
  set +e
  OUTDIR=out/b "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=3 \
    --set nodes.fault.action=abort archive.yaml 2>/dev/null
  code=$?; set -e
  [ "$code" -ge 128 ] || fail "$engine: abort run exit $code"
  check_no_loss "$old" "$engine after abort"
  # 3. A clean rerun finishes: no old row left, each archived exactly once per successful run.
  OUTDIR=out/c "$sluice" run -q --engine $engine archive.yaml 2>log
  check_eq "$(old_count)" 0 "$engine: old rows left after rerun"
  check_no_loss "$old" "$engine after rerun"
  check_eq "$(archived_ids out/c | uniq -d | wc -l)" 0 "$engine: duplicates within one run"
  grep -q "database=main table=$table batch=1 records=" log || fail "$engine: no per-batch log line: $(head -3 log)"
done

# 4. Two archivers at once on the same table: SKIP LOCKED means no row is archived twice.
seed
old=$(old_count)
OUTDIR=out2/x "$sluice" run -q archive.yaml 2>/dev/null &
OUTDIR=out2/y "$sluice" run -q archive.yaml 2>/dev/null &
wait
check_eq "$(old_count)" 0 "two archivers: old rows left"
check_eq "$(archived_ids out2 | wc -l)" "$old" "two archivers: archived rows"
check_eq "$(archived_ids out2 | uniq -d | wc -l)" 0 "two archivers: rows archived twice"

# 5. Errors name the node and the system, exit 1 or 2, and never hang.
sed "s|\${SLUICE_PG_DSN}|host=127.0.0.1 port=1 user=postgres dbname=sluice connect_timeout=2|" archive.yaml > bad_dsn.yaml
set +e
OUTDIR=out/bad timeout 30 "$sluice" run -q bad_dsn.yaml 2>err; code=$?
set -e
[ "$code" = 1 ] || [ "$code" = 2 ] || fail "unreachable host: exit $code"
grep -q "node 'old'" err && grep -q "database 'main'" err || fail "unreachable host message: $(cat err)"
sed "s|tables: \[$table\]|tables: [no_such_table_$$]|" archive.yaml > bad_table.yaml
set +e
OUTDIR=out/bad timeout 30 "$sluice" run -q bad_table.yaml 2>err; code=$?
set -e
[ "$code" = 1 ] || [ "$code" = 2 ] || fail "missing table: exit $code"
grep -q "no_such_table_$$" err && grep -q "42P01" err || fail "missing table message: $(cat err)"
echo "pg archive: ok"
