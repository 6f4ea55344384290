#!/usr/bin/env bash
# No data loss: a SQLite source that deletes what it read must never delete a row whose file
# is not durable. A sink path that fails on its Nth batch, then a process killed mid-run
# (abort, as abrupt as kill -9 for the files on disk); after each, a rerun must finish with
# every old row archived, none left behind, and the newer rows untouched.
source "$(dirname "$0")/lib.sh"

cutoff_us=$(( $(date -d '2025-10-01T00:00:00Z' +%s) * 1000000 ))
cat > seed.yaml <<YAML
nodes:
  gen: {type: generate, shape: audit, rows: 20000, batch_rows: 1000, seed: 7,
        end: "2026-01-01T00:00:00Z", span: 200d}
  db: {type: sqlite, inputs: [gen], path: audit.db, table: audit_log, timestamp_format: micros}
YAML
"$sluice" run -q seed.yaml
sqlite3 audit.db "CREATE INDEX audit_id ON audit_log(id)"
# Id sets, one id a line in byte order (for comm and cmp).
ids_sorted() { LC_ALL=C sort "$@"; }
old_ids() { sqlite3 audit.db "SELECT id FROM audit_log WHERE created_at < $cutoff_us" | ids_sorted; }
new_ids() { sqlite3 audit.db "SELECT id FROM audit_log WHERE created_at >= $cutoff_us" | ids_sorted; }
same_ids() {  # same_ids GOT WANT WHAT: two id lists (files) must be equal, line for line
  cmp -s "$1" "$2" || fail "$3: ids differ ($(wc -l <"$1") got, $(wc -l <"$2") want; < only got, > only want): $(diff "$1" "$2" | grep '^[<>]' | head -5 | tr '\n' ' ')"
}
old_ids > old.ids
new_ids > new.ids
[ "$(wc -l < old.ids)" -gt 5000 ] || fail "seed produced too few old rows"

cat > archive.yaml <<YAML
nodes:
  old:
    type: sqlite
    path: audit.db
    table: audit_log
    where: "created_at < $cutoff_us"
    key: id
    delete_after_ack: true
    batch_rows: 500
  fault: {type: fault_inject, inputs: [old], fail_at_batch: -1}
  files: {type: file, inputs: [fault], path: "\${OUTDIR}/part-{n}.jsonl.gz", roll_rows: 500}
YAML

# Every old id is either still in the table or in a finished file (nothing lost), only old
# rows are in files, and the newer rows are all still in the table.
check_no_loss() {
  archived_ids out | ids_sorted -u > archived.ids
  [ -z "$(comm -23 archived.ids old.ids | head -3)" ] \
    || fail "$1: archived rows that were not older than the cutoff: $(comm -23 archived.ids old.ids | head -3 | tr '\n' ' ')"
  old_ids > remaining.ids
  ids_sorted -mu remaining.ids archived.ids > seen.ids
  same_ids seen.ids old.ids "$1: old rows in the table or in a file"
  new_ids > left_new.ids
  same_ids left_new.ids new.ids "$1: newer rows must be untouched"
}

for engine in parallel sequential; do
  rm -rf out && mkdir -p out
  # 1. A failing sink path on batch 6: exit 1, nothing from batch 6 on is deleted.
  set +e
  OUTDIR=out/run1 "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=6 archive.yaml 2>err
  code=$?
  set -e
  check_eq "$code" 1 "$engine: failing run exit code"
  grep -q "injected fault at batch 6" err || fail "$engine: error message: $(cat err)"
  deleted=$(( $(wc -l < old.ids) - $(old_ids | wc -l) ))
  [ "$deleted" -le 3000 ] || fail "$engine: $deleted rows deleted, but only 6 batches of 500 were written"
  check_no_loss "$engine after failure"

  # 2. The process dies abruptly on batch 4 of the rerun.
  set +e
  OUTDIR=out/run2 "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=4 \
    --set nodes.fault.action=abort archive.yaml 2>/dev/null
  code=$?
  set -e
  check_eq "$code" 134 "$engine: abort run exit code (128 + SIGABRT)"
  check_no_loss "$engine after abort"

  # 3. A clean rerun finishes the job: it archives exactly the old rows left, each once, and
  #    the table keeps exactly the newer rows.
  old_ids > left_before_rerun.ids
  set +e
  OUTDIR=out/run3 "$sluice" run -q --engine $engine archive.yaml 2>err
  code=$?
  set -e
  check_eq "$code" 0 "$engine: clean rerun exit code ($(tail -3 err))"
  archived_ids out/run3 | ids_sorted > rerun.ids
  same_ids rerun.ids left_before_rerun.ids "$engine: rows archived by the clean rerun"
  sqlite3 audit.db "SELECT id FROM audit_log" | ids_sorted > table.ids
  same_ids table.ids new.ids "$engine: rows in the table after the clean rerun"
  check_no_loss "$engine after rerun"
  # The failing run wrote nothing twice: its batches were either durable+deleted or kept.
  dups=$(archived_ids out/run1 | uniq -d | wc -l)
  check_eq "$dups" 0 "$engine: duplicate ids within the failing run"
  # Restore the table for the next engine.
  rm -f audit.db audit.db-wal audit.db-shm
  "$sluice" run -q seed.yaml
  sqlite3 audit.db "CREATE INDEX audit_id ON audit_log(id)"
  old_ids > reseeded_old.ids
  same_ids reseeded_old.ids old.ids "the reseeded table's old rows"
done
echo "ack safety: ok"
