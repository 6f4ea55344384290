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
sqlite3 audit.db "SELECT id FROM audit_log WHERE created_at < $cutoff_us ORDER BY id" > old_ids
newer=$(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at >= $cutoff_us")
[ "$(wc -l < old_ids)" -gt 5000 ] || fail "seed produced too few old rows"

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

# Every old id is either still in the table or in a finished file: nothing lost.
check_no_loss() {
  sqlite3 audit.db "SELECT id FROM audit_log WHERE created_at < $cutoff_us" > remaining
  { cat remaining; archived_ids out; } | sort -nu > seen
  missing=$(comm -23 <(sort old_ids) <(sort seen) | wc -l)
  check_eq "$missing" 0 "$1: old rows neither in the table nor in a file"
  check_eq "$(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at >= $cutoff_us")" \
    "$newer" "$1: newer rows must be untouched"
}

for engine in parallel sequential; do
  rm -rf out && mkdir -p out && cp audit.db pristine.db 2>/dev/null || true
  # 1. A failing sink path on batch 6: exit 1, nothing from batch 6 on is deleted.
  set +e
  OUTDIR=out/run1 "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=6 archive.yaml 2>err
  code=$?
  set -e
  check_eq "$code" 1 "$engine: failing run exit code"
  grep -q "injected fault at batch 6" err || fail "$engine: error message: $(cat err)"
  deleted=$(( $(wc -l < old_ids) - $(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at < $cutoff_us") ))
  [ "$deleted" -le 3000 ] || fail "$engine: $deleted rows deleted, but only 6 batches of 500 were written"
  check_no_loss "$engine after failure"

  # 2. The process dies abruptly on batch 4 of the rerun.
  set +e
  OUTDIR=out/run2 "$sluice" run -q --engine $engine --set nodes.fault.fail_at_batch=4 \
    --set nodes.fault.action=abort archive.yaml 2>/dev/null
  code=$?
  set -e
  [ "$code" -ge 128 ] || fail "$engine: abort run should die by signal, got $code"
  check_no_loss "$engine after abort"

  # 3. A clean rerun finishes the job: no old row left, every old row archived.
  OUTDIR=out/run3 "$sluice" run -q --engine $engine archive.yaml
  check_eq "$(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at < $cutoff_us")" 0 \
    "$engine: old rows left after the clean rerun"
  check_no_loss "$engine after rerun"
  # The failing run wrote nothing twice: its batches were either durable+deleted or kept.
  dups=$(archived_ids out/run1 | uniq -d | wc -l)
  check_eq "$dups" 0 "$engine: duplicate ids within the failing run"
  # Restore the table for the next engine.
  rm -f audit.db audit.db-wal audit.db-shm
  "$sluice" run -q seed.yaml
  sqlite3 audit.db "CREATE INDEX audit_id ON audit_log(id)"
done
echo "ack safety: ok"
