#!/usr/bin/env bash
# The archiver against a real PostgreSQL (scripts/services): 100 k audit rows, half older than
# the cutoff. Checks, for both executors and after faults:
#   - the archived ids are exactly the ids older than the cutoff (each in one file), and the
#     table keeps exactly the newer ids (id sets compared, not counts);
#   - a sink failing mid-run, and the process dying mid-run (abort), delete nothing unwritten;
#   - a rerun finishes the job; two archivers at once never archive a row twice;
#   - with a read replica (the same server under a read-only role), rows are read there and
#     locked and deleted on the primary: a row locked on the primary by another session is left
#     for the next run, a row the replica does not show yet too; every row archived once;
#   - max_parallel_databases: 2 archives two databases at once, their batches interleaved.
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] || fail "SLUICE_PG_DSN is not set: run scripts/services start and eval \"\$(scripts/services env)\""
psql -qAtc 'select 1' >/dev/null || fail "PostgreSQL at $PGHOST:$PGPORT does not answer"
table="archive_test_$$"
reader="archive_reader_$$"
db2="sluice_archive_db2_$$"
locker=""
cleanup() {
  [ -z "$locker" ] || kill "$locker" 2>/dev/null || true
  psql -qc "DROP TABLE IF EXISTS $table" >/dev/null 2>&1 || true
  psql -qc "DROP ROLE IF EXISTS $reader" >/dev/null 2>&1 || true
  psql -qc "DROP DATABASE IF EXISTS $db2 WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

seed() {  # seed [DATABASE [ID_OFFSET]]
  psql -q -d "${1:-$PGDATABASE}" <<SQL
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text,
                     action text, payload jsonb);
INSERT INTO $table
SELECT ${2:-0} + g, timestamptz '2025-01-01' + (g % 365) * interval '1 day', 'user-' || (g % 97),
       (ARRAY['login','logout','read','update'])[1 + g % 4],
       jsonb_build_object('n', g, 'pad', repeat('x', 200))
FROM generate_series(1, 100000) g;
CREATE INDEX ON $table (created_at, id);
SQL
}
# Id sets, one id a line in byte order (so that comm and cmp work on them).
ids_sorted() { LC_ALL=C sort "$@"; }
table_ids() {  # table_ids [CONDITION [DATABASE]]: the ids in the table
  psql -d "${2:-$PGDATABASE}" -qAtc "SELECT id FROM $table${1:+ WHERE $1}" | ids_sorted
}
old_ids() { table_ids "created_at < '2025-07-01'" "$@"; }
new_ids() { table_ids "created_at >= '2025-07-01'" "$@"; }
# archived ids under a folder in byte order, duplicates kept (so a row archived twice differs).
archived_id_list() { archived_ids "$1" | ids_sorted; }
same_ids() {  # same_ids GOT WANT WHAT: two id lists (files) must be equal, line for line
  cmp -s "$1" "$2" || fail "$3: ids differ ($(wc -l <"$1") got, $(wc -l <"$2") want; < only got, > only want): $(diff "$1" "$2" | grep '^[<>]' | head -5 | tr '\n' ' ')"
}
# Before the first run: the ids older than the cutoff (to be archived, each exactly once) and
# the newer ones (to be left in the table, all of them).
snapshot_ids() { old_ids "$@" > old.ids; new_ids "$@" > new.ids; }

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
    read_order: physical
  fault: {type: fault_inject, inputs: [old], fail_at_batch: -1}
  files: {type: file, inputs: [fault], path: "\${OUTDIR}/part-{n}.jsonl.gz", roll_rows: 4000}
YAML

check_no_loss() {  # check_no_loss WHAT: after a run that may have failed, files under out/
  local what=$1
  archived_id_list out | uniq > archived.ids
  old_ids > left_old.ids
  # Only old rows were archived; every old row is in the table or in a file (or both, after a
  # crash between publish and commit), so no row was deleted without its file; the newer rows
  # are all still there.
  [ -z "$(comm -23 archived.ids old.ids | head -3)" ] \
    || fail "$what: archived rows that were not older than the cutoff: $(comm -23 archived.ids old.ids | head -3 | tr '\n' ' ')"
  ids_sorted -mu left_old.ids archived.ids > kept.ids
  same_ids kept.ids old.ids "$what: old rows in the table or archived"
  new_ids > left_new.ids
  same_ids left_new.ids new.ids "$what: newer rows in the table"
}
# Each executor with one of the two read orders of a table held alone (heap blocks, timestamps).
for run in "parallel physical" "sequential time"; do
  read -r engine order <<< "$run"
  sed -i "s/^    read_order: .*/    read_order: $order/" archive.yaml
  grep -q "read_order: $order" archive.yaml || fail "could not set read_order"
  seed
  snapshot_ids
  rm -rf out
  # 1. The sink path fails on batch 5: exit 1, no unwritten row deleted.
  set +e
  OUTDIR=out/a "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=5 archive.yaml 2>err
  code=$?; set -e
  check_eq "$code" 1 "$engine: failing run exit code"
  grep -q "injected fault" err || fail "$engine: $(cat err)"
  check_no_loss "$engine after failure"
  # 2. The process dies on batch 3.
  set +e
  OUTDIR=out/b "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=3 \
    --set nodes.fault.action=abort archive.yaml 2>/dev/null
  code=$?; set -e
  [ "$code" -ge 128 ] || fail "$engine: abort run exit $code"
  check_no_loss "$engine after abort"
  # 3. A clean rerun finishes: it archives exactly the old rows left, each once, and the table
  #    holds exactly the newer rows.
  old_ids > left_before_rerun.ids
  OUTDIR=out/c "$sluice" run -q --engine $engine archive.yaml 2>log
  archived_id_list out/c > rerun.ids
  same_ids rerun.ids left_before_rerun.ids "$engine: rows archived by the rerun"
  table_ids > table.ids
  same_ids table.ids new.ids "$engine: rows in the table after the rerun"
  check_no_loss "$engine after rerun"
  grep -qE "database=main table=$table batch=[0-9a-z.-]+ records=" log || fail "$engine: no per-batch log line: $(head -3 log)"
  # 4. A run that finds no batch left unfinished holds the table alone and reads it in the
  #    order asked: by heap blocks (batch ids "blocks<first>-<end>-<run>") or by timestamps.
  seed
  snapshot_ids
  rm -rf out
  OUTDIR=out/d "$sluice" run -q --engine $engine archive.yaml 2>log
  if [ "$order" = physical ]; then
    grep -qE "batch=blocks[0-9]+-[0-9]+-[0-9a-f]+ records=" log || fail "$engine: not read by blocks: $(head -3 log)"
  else
    grep -qE "batch=[0-9]+-[0-9]+\.[0-9]+-[0-9a-f]+ records=" log || fail "$engine: not read by time: $(head -3 log)"
  fi
  archived_id_list out/d > all.ids
  same_ids all.ids old.ids "$engine $order: rows archived by a run holding the table"
  table_ids > table.ids
  same_ids table.ids new.ids "$engine $order: rows in the table after it"
done

# 5. Two archivers at once on the same table: SKIP LOCKED means no row is archived twice.
seed
snapshot_ids
OUTDIR=out2/x "$sluice" run -q archive.yaml 2>/dev/null &
first=$!
OUTDIR=out2/y "$sluice" run -q archive.yaml 2>/dev/null &
second=$!
wait "$first" || fail "two archivers: the first run failed"
wait "$second" || fail "two archivers: the second run failed"
archived_id_list out2 > both.ids
same_ids both.ids old.ids "two archivers: rows archived (each exactly once)"
table_ids > table.ids
same_ids table.ids new.ids "two archivers: rows in the table"

# 6. Errors name the node and the system, exit 1 or 2, and never hang.
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
sed "s|main: {dsn: \"\${SLUICE_PG_DSN}\",|main: {dsn: \"\${SLUICE_PG_DSN}\", replica_dsn: \"host=127.0.0.1 port=1 connect_timeout=2\",|" archive.yaml > bad_replica.yaml
set +e
OUTDIR=out/bad timeout 30 "$sluice" run -q bad_replica.yaml 2>err; code=$?
set -e
[ "$code" = 1 ] || [ "$code" = 2 ] || fail "unreachable replica: exit $code"
grep -q "node 'old'" err && grep -q "database 'main' (replica)" err || fail "unreachable replica message: $(cat err)"

# 7. A read replica: the same server, reached as a role that may only SELECT (so a lock or a
#    DELETE sent to the "replica" would fail), and for which row-level security hides row 40
#    (a replica that has not caught up with it yet). Another session holds rows 10, 20 and 30
#    FOR UPDATE on the primary during the first run.
seed
snapshot_ids
psql -q <<SQL
CREATE ROLE $reader LOGIN;
GRANT SELECT ON $table TO $reader;
ALTER TABLE $table ENABLE ROW LEVEL SECURITY;
CREATE POLICY lagging ON $table FOR SELECT TO $reader USING (id <> 40);
SQL
sed -e "s|main: {dsn: \"\${SLUICE_PG_DSN}\",|main: {dsn: \"\${SLUICE_PG_DSN}\", replica_dsn: \"\${SLUICE_PG_DSN} user=$reader application_name=replica\",|" archive.yaml > replica.yaml
grep -q "replica_dsn" replica.yaml || fail "could not add replica_dsn"
psql -q >/dev/null <<SQL &
BEGIN;
SELECT id FROM $table WHERE id IN (10, 20, 30) FOR UPDATE;
\! for i in \$(seq 600); do [ -e "$work/release" ] && break; sleep 0.1; done
COMMIT;
SQL
locker=$!
for _ in $(seq 100); do
  [ "$(psql -qAtc "SELECT count(*) FROM (SELECT id FROM $table WHERE id IN (10, 20, 30) FOR UPDATE SKIP LOCKED) l")" = 0 ] && break
  sleep 0.1
done
[ "$(psql -qAtc "SELECT count(*) FROM (SELECT id FROM $table WHERE id IN (10, 20, 30) FOR UPDATE SKIP LOCKED) l")" = 0 ] \
  || fail "replica: could not lock rows 10, 20, 30"
rm -rf out3
OUTDIR=out3/a "$sluice" run replica.yaml 2>log || fail "replica run: $(tail -3 log)"
grep -q "database 'main' is read on the replica .*$reader@" log || fail "replica: no log of the replica: $(head -3 log)"
check_eq "$(grep -c 'read on the replica' log)" 1 "replica: times its use is logged"
check_eq "$(psql -qAtc "SELECT string_agg(id::text, ',' ORDER BY id) FROM $table WHERE created_at < '2025-07-01'")" \
  "10,20,30,40" "replica: old rows left by the first run (locked elsewhere, not on the replica yet)"
grep -vxE '10|20|30|40' old.ids > want.ids
archived_id_list out3 > got.ids
same_ids got.ids want.ids "replica: rows archived by the first run (all old rows but 10, 20, 30, 40)"
touch "$work/release"; wait "$locker" || true; locker=""
# The replica catches up with row 40; the next run archives the rest.
psql -qc "DROP POLICY lagging ON $table"
psql -qc "CREATE POLICY caught_up ON $table FOR SELECT TO $reader USING (true)"
OUTDIR=out3/b "$sluice" run -q replica.yaml 2>log || fail "replica rerun: $(tail -3 log)"
table_ids > table.ids
same_ids table.ids new.ids "replica: rows in the table after the rerun"
check_eq "$(archived_ids out3/b | tr '\n' ',')" "10,20,30,40," "replica: rows archived by the rerun"
archived_id_list out3 > got.ids
same_ids got.ids old.ids "replica: rows archived in all (each exactly once)"
psql -qc "DROP TABLE $table" && psql -qc "DROP ROLE $reader"

# 8. Two databases at once (max_parallel_databases: 2), each with its own pool of 2; the ids of
#    the second are offset by a million so that the files tell them apart.
psql -qc "CREATE DATABASE $db2"
seed
seed "$db2" 1000000
snapshot_ids
old_ids "$db2" > old2.ids
new_ids "$db2" > new2.ids
cat > two.yaml <<YAML
nodes:
  old:
    type: postgres_archive
    max_parallel_databases: 2
    databases:
      main: {dsn: "\${SLUICE_PG_DSN}", tables: [$table], pool_size: 2}
      second: {dsn: "\${SLUICE_PG_DSN} dbname=$db2", tables: [$table], pool_size: 2}
    defaults: {timestamp_column: created_at, key_column: id, cutoff: "2025-07-01T00:00:00Z"}
    batch_size: 4000
    min_batch_size: 4000
    max_batch_size: 4000
  files: {type: file, inputs: [old], path: "\${OUTDIR}/part-{n}.jsonl.gz", roll_rows: 4000}
YAML
OUTDIR=out4 "$sluice" run two.yaml 2>log || fail "two databases: $(tail -3 log)"
table_ids > table.ids
same_ids table.ids new.ids "two databases: rows in main"
table_ids "" "$db2" > table2.ids
same_ids table2.ids new2.ids "two databases: rows in the second"
ids_sorted old.ids old2.ids > want.ids
archived_id_list out4 > got.ids
same_ids got.ids want.ids "two databases: rows archived from both (each exactly once)"
# Interleaved: the per-batch lines switch between the databases many times, not once.
switches=$(grep -o ' database=[a-z]* table=' log | uniq | wc -l)
[ "$switches" -ge 6 ] || fail "two databases: batches not interleaved: $(grep -o ' database=[a-z]*' log | uniq -c | tr '\n' ' ')"
echo "pg archive: ok (two databases: $switches runs of batches of one database in the log)"
