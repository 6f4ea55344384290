#!/usr/bin/env bash
# The archiver reading a table it holds alone by ranges of heap blocks (read_order: physical),
# against a real PostgreSQL (scripts/services). The table's first half holds only new rows, its
# second half only old ones, so a lane crossing from one to the other has sized its pages on
# blocks without old rows: a page that finds more than max_batch_size rows must be rolled back
# and read again smaller. Checks: no batch over max_batch_size, the archived ids are exactly the
# old ones (each once), the table keeps exactly the new ones; then the same with the rows of
# the two halves interleaved on every page, and a table with no old row at all.
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] || fail "SLUICE_PG_DSN is not set: run scripts/services start"
psql -qAtc 'select 1' >/dev/null || fail "PostgreSQL at $PGHOST:$PGPORT does not answer"
table="blocks_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $table" >/dev/null || echo "cleanup: could not drop $table" >&2
  rm -rf "$work"
}
trap cleanup EXIT

cat > archive.yaml <<YAML
nodes:
  old:
    type: postgres_archive
    databases:
      main: {dsn: "\${SLUICE_PG_DSN}", tables: [$table], pool_size: 3}
    defaults: {timestamp_column: created_at, key_column: id, cutoff: "2025-07-01T00:00:00Z"}
    batch_size: 2000
    min_batch_size: 500
    max_batch_size: 2000
    read_lanes: 2
    vacuum: none
  files: {type: file, inputs: [old], path: "\${OUTDIR}/part-{n}.jsonl.gz", roll_rows: 100000}
YAML

seed() {  # seed SPREAD: "halves" (new rows, then old ones) or "mixed" (alternating)
  local old_when="g > 20000"
  [ "$1" = mixed ] && old_when="g % 2 = 0"
  [ "$1" = none ] && old_when="false"
  psql -q <<SQL
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (id bigint, created_at timestamptz, note text);
INSERT INTO $table
SELECT g, CASE WHEN $old_when THEN timestamptz '2025-01-01' + (g % 180) * interval '1 day'
               ELSE timestamptz '2025-08-01' + (g % 90) * interval '1 day' END,
       repeat('n', g % 50)
FROM generate_series(1, 40000) g;
ANALYZE $table;
SQL
  psql -qAtc "SELECT id FROM $table WHERE created_at < '2025-07-01' ORDER BY id" > old.ids
  psql -qAtc "SELECT id FROM $table WHERE created_at >= '2025-07-01' ORDER BY id" > new.ids
}

for spread in halves mixed none; do
  for engine in parallel sequential; do
    seed "$spread"
    rm -rf out
    OUTDIR=out "$sluice" run --engine "$engine" --report report.json archive.yaml 2>log \
      || fail "$spread/$engine: run failed: $(tail -3 log)"
    archived_ids out > archived.ids
    cmp -s archived.ids old.ids \
      || fail "$spread/$engine: archived ids differ from the old rows ($(wc -l < archived.ids) vs $(wc -l < old.ids))"
    psql -qAtc "SELECT id FROM $table ORDER BY id" > left.ids
    cmp -s left.ids new.ids || fail "$spread/$engine: the table does not hold exactly the new rows"
    if [ "$spread" != none ]; then
      grep -qE "batch=blocks[0-9]+-[0-9]+-[0-9a-f]+ records=" log \
        || fail "$spread/$engine: not read by blocks: $(grep -m3 batch= log)"
    fi
    biggest=$(awk -F' records=' 'NF > 1 { split($2, a, " "); if (a[1] + 0 > m) m = a[1] + 0 }
                                 END { print m + 0 }' log)
    again=$(jq '[.nodes[] | select(.id == "old") | .counters.pages_read_again // 0] | add' report.json)
    if [ "$spread" = halves ]; then
      [ "$again" -ge 1 ] || fail "$spread/$engine: no page was read again smaller"
    fi
    [ "$biggest" -le 2000 ] || fail "$spread/$engine: a batch of $biggest rows (max_batch_size 2000)"
  done
done
echo "archive blocks: ok (halves, mixed and none, both executors)"
