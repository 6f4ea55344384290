#!/usr/bin/env bash
# kill -9 of the archiver (PostgreSQL -> gzip JSONL -> S3) at several points of a run, then a
# clean rerun. Afterwards, across every object any of the runs wrote: each old row is in exactly
# one object, none is left in the table, none was deleted without its object, and the newer rows
# are untouched. The points, made deterministic with table locks and a stalled endpoint:
#   1. while its first SELECT waits for a lock (nothing read yet);
#   2. while its upload hangs on an S3 endpoint that never answers;
#   3. after objects were uploaded and verified, while their DELETEs wait for a lock: the rows
#      stay, their objects exist, and the rerun must rewrite those objects, not add copies;
#   4. twice more in the middle of unhindered runs, after a given number of batches;
#   0. (first) holding the table alone, reading by heap blocks, after objects were verified
#      while their commits wait: the rerun redoes the batches its state table recorded by blocks.
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] && [ -n "${SLUICE_S3_ENDPOINT:-}" ] \
  || fail "run scripts/services start and eval \"\$(scripts/services env)\" first"
aws() { /usr/bin/aws --endpoint-url "$SLUICE_S3_ENDPOINT" "$@"; }
tag="k$$"
table="audit_log_$tag"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  psql -qc "DROP TABLE IF EXISTS $table, orig_$tag" >/dev/null 2>&1 || true
  psql -qc "DELETE FROM sluice_archive_batches WHERE table_name = '$table'" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql -q <<SQL
CREATE TABLE $table (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text,
                     action text, payload jsonb);
INSERT INTO $table
SELECT g, now() - (g % 365) * interval '1 day', 'user-' || (g % 97),
       (ARRAY['login','read','update'])[1 + g % 3],
       jsonb_build_object('n', g, 'pad', repeat('z', 200))
FROM generate_series(1, 60000) g;
CREATE INDEX ON $table (created_at, id);
CREATE TABLE orig_$tag AS SELECT id FROM $table WHERE created_at < now() - interval '90 days';
SQL
old=$(psql -qAtc "SELECT count(*) FROM orig_$tag")
newer=$(( $(psql -qAtc "SELECT count(*) FROM $table") - old ))

# Small fixed batches, so that every run has many batches in flight at once.
sed -e "s/tables: \[audit_log\]/tables: [$table]/" -e "s|/archive|/$tag|" \
  -e "s/batch_size: 10000/batch_size: 3000/" -e "s/max_batch_size: 50000/max_batch_size: 3000/" \
  -e "s/min_batch_size: 1000/min_batch_size: 3000/" \
  "$root/examples/archive-audit-logs.yaml" > archive.yaml
grep -q "$table" archive.yaml || fail "could not adapt the example"

# Hold a lock ($1, named $2 in pg_locks) on the table in a background session until the file
# `release` appears (or a minute passes).
hold_lock() {
  psql -q <<SQL &
BEGIN;
LOCK TABLE $table IN $1 MODE;
\! for i in \$(seq 600); do [ -e "$work/release" ] && break; sleep 0.1; done
COMMIT;
SQL
  locker=$!
  pids+=("$locker")
  # Wait until the lock is held: a backend of ours sits in the \! loop inside the transaction.
  for _ in $(seq 100); do
    [ "$(psql -qAtc "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                     WHERE c.relname = '$table' AND l.mode = '$2' AND l.granted" \
          | tr -d ' ')" -ge 1 ] && return 0
    sleep 0.1
  done
  fail "could not take the $1 lock"
}
release_lock() { touch "$work/release"; wait "$locker" || true; rm -f "$work/release"; }

# Wait until a statement of the archiver matching $1 waits for a lock on the table.
wait_for_blocked() {
  for _ in $(seq 300); do
    [ "$(psql -qAtc "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                     AND query LIKE '$1%' AND query LIKE '%$table%'")" -ge 1 ] && return 0
    sleep 0.1
  done
  fail "the archiver never blocked on: $1"
}

objects() { aws s3 ls --recursive "s3://$SLUICE_S3_BUCKET/$tag/" | grep -vc _manifests || true; }

start() { "$sluice" run -q "$@" archive.yaml 2>>runs.log & run_pid=$!; pids+=("$run_pid"); }
kill_run() {
  kill -9 "$run_pid" 2>/dev/null || fail "the run ended before the kill: $(tail -3 runs.log run.log 2>/dev/null)"
  wait "$run_pid" 2>/dev/null || true
}

# 0. Killed holding the table alone (its batches read by heap blocks and deleted as read),
#    after objects were uploaded and verified, while the commits that end their batches wait:
#    a trigger on the state table sleeps in each batch's transaction. The rows come back (the
#    transactions roll back); the state table remembers the batches by their blocks, and the
#    rerun below must rewrite those same objects, not add copies.
psql -q <<SQL
CREATE TABLE IF NOT EXISTS sluice_archive_batches (table_name text NOT NULL, first_key text NOT NULL,
  batch_date text NOT NULL, rows bigint NOT NULL, keys text NOT NULL, node text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), ctids text, PRIMARY KEY (table_name, first_key));
CREATE FUNCTION stall_$tag() RETURNS trigger LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM pg_sleep(60); RETURN OLD; END \$\$;
CREATE TRIGGER stall_$tag AFTER DELETE ON sluice_archive_batches FOR EACH ROW
  WHEN (OLD.table_name = '$table') EXECUTE FUNCTION stall_$tag();
SQL
start
for _ in $(seq 300); do
  [ "$(objects)" -ge 2 ] && [ "$(psql -qAtc "SELECT count(*) FROM pg_stat_activity
                                  WHERE query LIKE 'DELETE FROM %sluice_archive_batches%'
                                  AND state = 'active'")" -ge 1 ] && break
  sleep 0.1
done
kill_run
# The server notices a lost client only when its statement ends: end the sleeping ones now.
psql -qAtc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE query LIKE 'DELETE FROM %sluice_archive_batches%' AND pid <> pg_backend_pid()" \
  > /dev/null
psql -qc "DROP TRIGGER stall_$tag ON sluice_archive_batches; DROP FUNCTION stall_$tag()"
before=$(objects)
[ "$before" -ge 2 ] || fail "point 0: fewer than 2 objects written before the kill"
check_eq "$(psql -qAtc "SELECT count(*) FROM $table")" "$((old + newer))" "point 0: rows after kill"
[ "$(psql -qAtc "SELECT count(*) FROM sluice_archive_batches WHERE table_name = '$table'
                 AND blocks IS NOT NULL")" -ge 2 ] || fail "point 0: no batch recorded by its blocks"

# 1. Killed while its first read waits for a lock: nothing read, nothing written.
hold_lock "ACCESS EXCLUSIVE" AccessExclusiveLock
start
wait_for_blocked "SELECT"
kill_run
release_lock
check_eq "$(objects)" "$before" "point 1: objects"

# 2. Killed while an upload hangs on an endpoint that accepts and never answers.
/usr/bin/python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open("stall.port", "w").write(str(s.getsockname()[1])); time.sleep(600)' &
pids+=("$!")
for _ in $(seq 50); do [ -s stall.port ] && break; sleep 0.1; done
start --set "nodes.upload.endpoint=http://127.0.0.1:$(cat stall.port)"
for _ in $(seq 100); do
  [ "$(psql -qAtc "SELECT count(*) FROM sluice_archive_batches WHERE table_name = '$table'" 2>/dev/null || echo 0)" -ge 1 ] && break
  sleep 0.1
done
sleep 0.5
kill_run
check_eq "$(psql -qAtc "SELECT count(*) FROM $table")" "$((old + newer))" "point 2: rows after kill"

# 3. Killed after objects were verified, while their DELETEs wait: the rows and objects stay.
#    Its batches are smaller than the rerun's (as when the adaptive size has moved), so only
#    redoing exactly the recorded batches gives the rerun the same object keys.
hold_lock SHARE ShareLock
start --set nodes.old_rows.batch_size=2000 --set nodes.old_rows.min_batch_size=2000 \
  --set nodes.old_rows.max_batch_size=2000
wait_for_blocked "DELETE"
kill_run
before=$(objects)
[ "$before" -ge 1 ] || fail "point 3: no object written before the kill"
release_lock
check_eq "$(psql -qAtc "SELECT count(*) FROM $table")" "$((old + newer))" "point 3: rows after kill"
pending=$(psql -qAtc "SELECT count(*) FROM sluice_archive_batches WHERE table_name = '$table'")
[ "$pending" -ge 1 ] || fail "point 3: no batch recorded as unfinished"

# 4. Killed mid-run, right after its 2nd and then its 4th batch was deleted, with later batches
#    being read, encoded, uploaded and verified meanwhile.
for k in 2 4; do
  : > run.log
  "$sluice" run archive.yaml 2>run.log & run_pid=$!; pids+=("$run_pid")
  for _ in $(seq 300); do
    [ "$(grep -c ' batch=' run.log || true)" -ge "$k" ] && break
    sleep 0.02
  done
  kill_run
  cat run.log >> runs.log
  [ "$(grep -c ' batch=' run.log || true)" -ge "$k" ] || fail "point 4: the run never reached batch $k"
done

# The clean rerun, then the proof.
"$sluice" run -q archive.yaml 2>>runs.log || fail "rerun failed: $(tail -5 runs.log)"
check_eq "$(psql -qAtc "SELECT count(*) FROM $table WHERE created_at < now() - interval '90 days'")" 0 "old rows left"
check_eq "$(psql -qAtc "SELECT count(*) FROM $table")" "$newer" "newer rows kept"
check_eq "$(psql -qAtc "SELECT count(*) FROM sluice_archive_batches WHERE table_name = '$table'")" 0 "unfinished batches left"
mkdir -p dl && aws s3 cp --quiet --recursive "s3://$SLUICE_S3_BUCKET/$tag/" dl/
find dl -path '*/_manifests/*' -delete
archived_ids dl > archived
check_eq "$(uniq -d archived | wc -l)" 0 "rows in more than one object"
psql -qAtc "SELECT id FROM orig_$tag ORDER BY id" > expected
cmp -s archived expected || fail "archived ids differ from the old rows: $(diff archived expected | head -5)"
grep -q "redoing" runs.log || fail "no run redid the batches left by point 3"
echo "archive kill: ok ($old rows archived exactly once over $(( $(find dl -type f | wc -l) )) objects after 5 kills)"
