#!/usr/bin/env bash
# The archiver never deletes a row it did not archive, whatever the key column holds, against a
# real PostgreSQL (scripts/services). Every row carries a unique label; after each run the
# labels archived must be exactly the labels of the rows older than the cutoff, each once, and
# the table must keep exactly the others. Cases, under both executors:
#   - a nullable integer key: NULL ids (two of them), a duplicate id across an old and a new row,
#     a duplicate id among old rows, and a new row with id 0;
#   - keys of other types: timestamp (the timestamp column itself, duplicated), uuid, numeric;
#   - a row whose timestamp is NULL (never archived: its age is unknown);
#   - a user column named `_meta`, archived like any other;
#   - per-table settings: one table with its own cutoff (30d) beside the default (90d).
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] || fail "SLUICE_PG_DSN is not set: run scripts/services start"
psql -qAtc 'select 1' >/dev/null || fail "PostgreSQL at $PGHOST:$PGPORT does not answer"
p="keys_$$"
cleanup() {
  psql -qAtc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluice_test_locker'" >/dev/null || echo "cleanup: could not end the locking session" >&2
  psql -qc "DROP TABLE IF EXISTS ${p}_int, ${p}_ts, ${p}_uuid, ${p}_num" >/dev/null || echo "cleanup: could not drop the test tables" >&2
  rm -rf "$work"
}
trap cleanup EXIT

seed() {
  psql -q <<SQL
DROP TABLE IF EXISTS ${p}_int, ${p}_ts, ${p}_uuid, ${p}_num;
CREATE TABLE ${p}_int (id int, created_at timestamptz, label text NOT NULL, _meta text);
INSERT INTO ${p}_int VALUES
  (1,    now() - interval '100 days', 'int-old-1', 'm1'),
  (NULL, now() - interval '100 days', 'int-old-null-a', 'm2'),
  (NULL, now() - interval '120 days', 'int-old-null-b', NULL),
  (5,    now() - interval '200 days', 'int-old-dup5', 'm3'),
  (5,    now() - interval '2 days',   'int-new-dup5', 'm4'),
  (7,    now() - interval '95 days',  'int-old-dup7-a', 'm5'),
  (7,    now() - interval '95 days',  'int-old-dup7-b', 'm6'),
  (0,    now() - interval '1 day',    'int-new-zero', 'm7'),
  (NULL, now() - interval '3 days',   'int-new-null', 'm8'),
  (9,    NULL,                        'int-null-ts', 'm9');
INSERT INTO ${p}_int SELECT g, now() - (g % 200) * interval '1 day', 'int-gen-' || g, NULL
  FROM generate_series(100, 2099) g;
CREATE TABLE ${p}_ts (created_at timestamp, label text NOT NULL);
INSERT INTO ${p}_ts VALUES
  ('2020-01-01 00:00:00', 'ts-old-a'), ('2020-01-01 00:00:00', 'ts-old-b'),
  ('2020-01-01 00:00:00', 'ts-old-c'), (now()::timestamp, 'ts-new');
INSERT INTO ${p}_ts SELECT now()::timestamp - (g % 60) * interval '1 day', 'ts-gen-' || g
  FROM generate_series(1, 500) g;
CREATE TABLE ${p}_uuid (id uuid, at date, label text NOT NULL);
INSERT INTO ${p}_uuid SELECT md5(g::text)::uuid, current_date - (g % 200), 'uuid-' || g
  FROM generate_series(1, 700) g;
INSERT INTO ${p}_uuid VALUES (NULL, current_date - 365, 'uuid-null-old'),
  (md5('1')::uuid, current_date - 300, 'uuid-dup-of-1');
CREATE TABLE ${p}_num (id numeric(20,5), created_at timestamptz, label text NOT NULL);
INSERT INTO ${p}_num SELECT g / 7.0, now() - (g % 200) * interval '1 day', 'num-' || g
  FROM generate_series(1, 700) g;
SQL
}

# label sets in byte order; `when` is a condition on the table's own timestamp column.
labels() {  # labels TABLE [CONDITION]
  psql -qAtc "SELECT label FROM $1${2:+ WHERE $2}" | LC_ALL=C sort
}
archived_labels() {  # every label in the files under $1, duplicates kept (no folder: none)
  [ -d "$1" ] || return 0
  find "$1" -name '*.jsonl.gz' -print0 | sort -z | xargs -0 -r zcat | jq -r .label | LC_ALL=C sort
}
same() {  # same GOT WANT WHAT
  cmp -s "$1" "$2" || fail "$3: labels differ (< only got, > only want): $(diff "$1" "$2" | grep '^[<>]' | head -8 | tr '\n' ' ')"
}

cat > archive.yaml <<YAML
nodes:
  old:
    type: postgres_archive
    databases:
      main:
        dsn: "\${SLUICE_PG_DSN}"
        tables:
          ${p}_int: {}
          ${p}_ts: {key_column: created_at, cutoff: 30d}
          ${p}_uuid: {timestamp_column: at, key_column: id}
          ${p}_num: {}
    defaults: {timestamp_column: created_at, key_column: id, cutoff: 90d}
    batch_size: 3
    min_batch_size: 1
    max_batch_size: 200
  out:
    type: file
    inputs: [old]
    path: "\${OUTDIR}/{node}-{n}.jsonl.gz"
    roll_rows: 250
YAML

for engine in parallel sequential; do
  seed
  # What each table must give up (older than its own cutoff) and keep (the rest, NULL ages too).
  {
    labels ${p}_int "created_at < now() - interval '90 days'"
    labels ${p}_ts "created_at < now()::timestamp - interval '30 days'"
    labels ${p}_uuid "at < now() - interval '90 days'"
    labels ${p}_num "created_at < now() - interval '90 days'"
  } | LC_ALL=C sort > old.labels
  {
    labels ${p}_int "created_at >= now() - interval '90 days' OR created_at IS NULL"
    labels ${p}_ts "created_at >= now()::timestamp - interval '30 days'"
    labels ${p}_uuid "at >= now() - interval '90 days'"
    labels ${p}_num "created_at >= now() - interval '90 days'"
  } | LC_ALL=C sort > kept.labels
  grep -qx int-old-null-a old.labels || fail "seed: the NULL-key row is not among the old rows"
  rm -rf out
  OUTDIR=out "$sluice" run -q --engine $engine archive.yaml 2>log || fail "$engine: run failed: $(tail -5 log)"
  archived_labels out > archived.labels
  same archived.labels old.labels "$engine: archived rows (each exactly once)"
  {
    for t in int ts uuid num; do labels ${p}_$t; done
  } | LC_ALL=C sort > left.labels
  same left.labels kept.labels "$engine: rows left in the tables"
  # The user's `_meta` column is in the archive with its values (NULL stays null).
  meta=$(find out -name '*.jsonl.gz' -print0 | xargs -0 zcat |
         jq -r 'select(.label == "int-old-null-a" or .label == "int-old-null-b") | "\(.label)=\(._meta)"' | sort | tr '\n' ' ')
  check_eq "$meta" "int-old-null-a=m2 int-old-null-b=null " "$engine: _meta values"
  # Nothing is left in the state table once every batch is deleted.
  left=$(psql -qAtc "SELECT count(*) FROM sluice_archive_batches WHERE table_name LIKE '${p}_%'")
  check_eq "$left" 0 "$engine: state records left"
  # A second run finds nothing more to archive and deletes nothing.
  rm -rf out2
  OUTDIR=out2 "$sluice" run -q --engine $engine archive.yaml 2>log || fail "$engine: rerun failed: $(tail -5 log)"
  archived_labels out2 > rerun.labels
  [ ! -s rerun.labels ] || fail "$engine: the rerun archived again: $(head -3 rerun.labels | tr '\n' ' ')"
  { for t in int ts uuid num; do labels ${p}_$t; done; } | LC_ALL=C sort > left2.labels
  same left2.labels kept.labels "$engine: rows left after the rerun"
done
# A row another session holds locked (an application's open transaction) must not stall the
# run: the archiver gives the table up to locking reads (SKIP LOCKED) after lock_timeout, leaves
# that row, archives every other old row once; the next run archives the row.
seed
labels ${p}_int "created_at < now() - interval '90 days'" > old_int.labels
PGAPPNAME=sluice_test_locker psql -qAt >/dev/null 2>&1 <<SQL &
BEGIN;
SELECT label FROM ${p}_int WHERE label = 'int-old-1' FOR UPDATE;
SELECT pg_sleep(120);
SQL
locker=$!
for _ in $(seq 1 100); do
  held=$(psql -qAtc "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '${p}_int' AND l.mode = 'RowShareLock' AND l.granted")
  [ "$held" != 0 ] && break
  sleep 0.1
done
[ "$held" != 0 ] || fail "the locking session did not start"
sed "s/${p}_ts: {key_column: created_at, cutoff: 30d}//; s/${p}_uuid: {timestamp_column: at, key_column: id}//; s/${p}_num: {}//" archive.yaml > locked.yaml
rm -rf out3
OUTDIR=out3 timeout 120 "$sluice" run -q locked.yaml 2>log || fail "run with a locked row failed or hung: $(tail -5 log)"
grep -q "locked by another session" log || fail "no log line about the locked row: $(tail -3 log)"
archived_labels out3 > locked_run.labels
grep -vx int-old-1 old_int.labels > want.labels
same locked_run.labels want.labels "rows archived around a locked row"
check_eq "$(labels ${p}_int "label = 'int-old-1'")" int-old-1 "the locked row stays"
# End the locking session (its backend sleeps on without noticing its client is gone).
psql -qAtc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluice_test_locker'" >/dev/null
rc=0
wait "$locker" || rc=$?
[ "$rc" != 0 ] || fail "the locking session ended normally; it should have been terminated"
rm -rf out4
OUTDIR=out4 "$sluice" run -q locked.yaml 2>log || fail "rerun after the lock failed: $(tail -5 log)"
check_eq "$(archived_labels out4 | tr '\n' ' ')" "int-old-1 " "the rerun archives the row that was locked"

# A partitioned table is refused before anything is read or deleted: a ctid names a row only
# within one partition. Its partitions can be archived one by one.
psql -q <<SQL
DROP TABLE IF EXISTS ${p}_parted;
CREATE TABLE ${p}_parted (id int, created_at timestamptz, label text) PARTITION BY RANGE (created_at);
CREATE TABLE ${p}_parted_old PARTITION OF ${p}_parted FOR VALUES FROM ('2000-01-01') TO ('2024-01-01');
CREATE TABLE ${p}_parted_new PARTITION OF ${p}_parted FOR VALUES FROM ('2024-01-01') TO ('2100-01-01');
INSERT INTO ${p}_parted SELECT g, timestamptz '2023-06-01' + g * interval '1 day', 'p-' || g FROM generate_series(1, 400) g;
SQL
before=$(psql -qAtc "SELECT md5(string_agg(label, ',' ORDER BY label)) FROM ${p}_parted")
sed "s/tables:/tables:\n          ${p}_parted: {}/; s/          ${p}_int: {}//; s/${p}_ts: {key_column: created_at, cutoff: 30d}//; s/${p}_uuid: {timestamp_column: at, key_column: id}//; s/${p}_num: {}//" archive.yaml > parted.yaml
rc=0
OUTDIR=out5 "$sluice" run -q parted.yaml 2>log || rc=$?
[ "$rc" = 2 ] || fail "a partitioned table: exit $rc, want 2: $(tail -3 log)"
grep -q "list its partitions" log || fail "a partitioned table: no advice: $(tail -3 log)"
check_eq "$(psql -qAtc "SELECT md5(string_agg(label, ',' ORDER BY label)) FROM ${p}_parted")" "$before" "the partitioned table is untouched"
sed -i "s/${p}_parted: {}/${p}_parted_old: {}/" parted.yaml
psql -qAtc "SELECT label FROM ${p}_parted_old" | LC_ALL=C sort > parted_old.labels
OUTDIR=out6 "$sluice" run -q parted.yaml 2>log || fail "archiving a partition failed: $(tail -3 log)"
check_eq "$(psql -qAtc "SELECT count(*) FROM ${p}_parted_old")" 0 "the old partition is archived"
archived_labels out6 > parted_got.labels
same parted_got.labels parted_old.labels "rows archived from the old partition"
psql -qc "DROP TABLE ${p}_parted"

echo "archive keys: ok ($(wc -l <old.labels) rows archived, $(wc -l <kept.labels) kept, per engine)"
