#!/usr/bin/env bash
# Restore gives the table back (docs/ARCHIVE_FORMAT.md, "Restoring"): a table with every kind
# of PostgreSQL value is archived in full
#   postgres_archive -> encode (jsonl, gzip) -> object_store (verify)
# to s3rver, and the table is left empty. Then, with NO schema written in the restore pipeline
# (the object_store source takes each object's columns from its run's manifest),
#   object_store -> postgres
# restores it (a) into an empty table created LIKE a copy of the original and (b) into a table
# the postgres sink creates from the recorded PostgreSQL types. Each must equal the original
# row for row in PostgreSQL's own text form (md5 of t::text in id order, and EXCEPT ALL both
# ways), and (b) must have the original's column types. Under both executors. A restore read
# with a wrong type for one column must be caught by the same comparison.
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] && [ -n "${SLUICE_S3_ENDPOINT:-}" ] \
  || fail "run scripts/services start and eval \"\$(scripts/services env)\" first"
psql -qAtc 'select 1' >/dev/null || fail "PostgreSQL at $PGHOST:$PGPORT does not answer"
aws() { /usr/bin/aws --endpoint-url "$SLUICE_S3_ENDPOINT" "$@"; }
t="restore_rt_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $t, ${t}_copy, ${t}_like, ${t}_made, ${t}_wrong;
            DROP TYPE IF EXISTS ${t}_mood, ${t}_pair; DROP DOMAIN IF EXISTS ${t}_pos" >/dev/null || echo "cleanup: could not drop the test objects" >&2
  rm -rf "$work"
}
trap cleanup EXIT

psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TYPE ${t}_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN ${t}_pos AS int CHECK (VALUE > 0);
CREATE TYPE ${t}_pair AS (a int, b text);
CREATE TABLE $t (
  id int PRIMARY KEY, created_at timestamptz NOT NULL, i2 int2, i4 int4, i8 int8,
  n30 numeric(30,10), n numeric, f4 real, f8 float8, tx text, by bytea, bo bool, d date,
  ts timestamp, tstz timestamptz, tm time, tmtz timetz, iv interval, j json, jb jsonb, u uuid,
  ip inet, net cidr, mac macaddr, arr int[], tarr text[], r int4range, e ${t}_mood, dom ${t}_pos,
  comp ${t}_pair, bits bit(8), vb varbit, x xml, tsv tsvector, m money, "_meta" text);
INSERT INTO $t VALUES
 (1, now() - interval '10 days', -32768, 2147483647, 9223372036854775807,
  12345678901234567890.1234567890, 99999999999999999999999999999999999999.5, 'NaN', 'Infinity',
  'ünïcode ✓ 日本 😀', '\x00ff0000', true, '5874897-12-31', 'infinity', '-infinity',
  '23:59:59.999999', '12:00:00+05:30', '-1 year 2 mons -3 days 04:05:06.789',
  '{"a" :  1,  "a":2}', '{"b": [1, 2.50, 1e400]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '{1,NULL,3}', '{"a,b","c\\"d",NULL}',
  '[1,10)', 'happy', 7, ROW(1, 'x,y'), B'10100101', B'101', '<a b="c">d</a>', 'fat:1A cat:2',
  '-1234.56', 'meta'),
 (2, now() - interval '11 days', 0, 0, 0, -0.0000000001, 'NaN', '-Infinity', 'NaN', '', '',
  false, 'infinity', '-infinity', 'infinity', '00:00', '00:00:00-12', '0', 'null', 'null',
  '00000000-0000-0000-0000-000000000000', '::1', '::/0', '00:00:00:00:00:00', '{}', '{}',
  'empty', 'sad', 1, ROW(NULL, NULL), B'00000000', B'', '', '', '0', ''),
 (3, now() - interval '12 days', 1, -1, -9223372036854775808, 0.0000000000, 'Infinity',
  'Infinity', '-Infinity', E'tab\tnew\nline "q" \\\\ back, comma', '\x', NULL, '-infinity',
  '294247-01-10 04:00:54.775806', '4713-01-01 00:00:00+00 BC', NULL, NULL, NULL,
  E'{\n  "k": "v\\\\tw"\n}', '[]', NULL, NULL, NULL, NULL, '{{1,2},{3,4}}', '{NULL}', '(,)',
  'ok', 2, ROW(3, NULL), NULL, NULL, NULL, NULL, NULL, 'NULL'),
 (4, now() - interval '13 days', NULL, NULL, NULL, NULL, '-Infinity', '-0', '-0', 'NULL', '\x00',
  NULL, '4714-11-24 BC', '2000-01-01 00:00:00.000001', '1970-01-01 00:00:00+00', NULL, NULL,
  NULL, '"str"', '"str"', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, '_');
-- SQL NULL in every column but the key and the archive's timestamp.
INSERT INTO $t (id, created_at) VALUES (5, now() - interval '14 days');
INSERT INTO $t (id, created_at, n30, f4, f8, tstz, tx, d, iv, arr, e, m)
SELECT g, now() - interval '20 days' - g * interval '1 minute', g * 1.0000000001, g / 3.0,
       g / 7.0, timestamptz '2024-01-01' + g * interval '1.5 second', 'row ' || g,
       date '2000-01-01' + g, g * interval '1 hour 1 second', ARRAY[g, -g], 'ok', g * 0.01
FROM generate_series(6, 2500) g;
CREATE TABLE ${t}_copy AS SELECT * FROM $t;
SQL
digest() { psql -qAtc "SELECT md5(string_agg(t::text, E'\n' ORDER BY id)) FROM $1 t"; }
column_types() {
  psql -qAtc "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
              FROM pg_attribute WHERE attrelid = '$1'::regclass AND attnum > 0 AND NOT attisdropped"
}
want=$(digest ${t}_copy)
rows=$(psql -qAtc "SELECT count(*) FROM ${t}_copy")
check_eq "$want" "$(digest $t)" "the copy equals the original"
types=$(column_types $t)
check_eq "$(column_types ${t}_copy)" "$types" "the copy has the original's column types"

# Returns non-zero (and says why) unless table $1 holds exactly the copy's rows, by text form.
same_rows() {
  local got only_here only_there
  got=$(digest "$1")
  only_here=$(psql -qAtc "SELECT count(*) FROM (SELECT t::text FROM $1 t EXCEPT ALL SELECT t::text FROM ${t}_copy t) d")
  only_there=$(psql -qAtc "SELECT count(*) FROM (SELECT t::text FROM ${t}_copy t EXCEPT ALL SELECT t::text FROM $1 t) d")
  if [ "$got" != "$want" ] || [ "$only_here" != 0 ] || [ "$only_there" != 0 ]; then
    echo "$1: md5 $got (want $want); $only_here rows not in the original, $only_there original rows missing" >&2
    psql -qAtc "(SELECT 'restored: ' || t::text FROM $1 t EXCEPT ALL SELECT 'restored: ' || t::text FROM ${t}_copy t)
                UNION ALL
                (SELECT 'original: ' || t::text FROM ${t}_copy t EXCEPT ALL SELECT 'original: ' || t::text FROM $1 t)" \
      | head -6 >&2
    return 1
  fi
}

for engine in parallel sequential; do
  prefix="$t-$engine"
  psql -qc "SET client_min_messages = warning; TRUNCATE $t; INSERT INTO $t SELECT * FROM ${t}_copy; DROP TABLE IF EXISTS ${t}_like, ${t}_made, ${t}_wrong"
  cat > archive.yaml <<YAML
pipeline: restore-roundtrip-archive
nodes:
  old_rows:
    type: postgres_archive
    databases:
      main:
        dsn: \${SLUICE_PG_DSN}
        tables: [$t]
    defaults:
      timestamp_column: created_at
      key_column: id
      cutoff: 1d
    batch_size: 700
    min_batch_size: 100
    max_batch_size: 700
  encode:
    type: encode
    inputs: [old_rows]
    format: jsonl
    compression: gzip
  upload:
    type: object_store
    inputs: [encode]
    url: s3://\${SLUICE_S3_BUCKET}/$prefix
    endpoint: \${SLUICE_S3_ENDPOINT}
    key: "{database}/{table}/{date}/{batch_id}{ext}"
    verify: true
YAML
  "$sluice" run -q --engine "$engine" archive.yaml || fail "$engine: archive run failed"
  check_eq "$(psql -qAtc "SELECT count(*) FROM $t")" 0 "$engine: rows left in the archived table"
  rm -rf manifests && aws s3 cp --quiet --recursive "s3://$SLUICE_S3_BUCKET/$prefix/_manifests/" manifests/
  check_eq "$(cat manifests/*.json | jq -s '[.[].objects[].rows] | add')" "$rows" "$engine: rows listed in the manifest"
  check_eq "$(jq -r '.objects[0].columns | map(.name + " " + .pg_type) | join(", ")' manifests/*.json)" \
    "$types" "$engine: the manifest records every column's PostgreSQL type"

  # (a) into an empty table of the original's definition; (b) into a table the sink creates.
  # Neither restore pipeline declares a schema.
  psql -qc "CREATE TABLE ${t}_like (LIKE ${t}_copy INCLUDING ALL)"
  for case in like made; do
    cat > restore_$case.yaml <<YAML
pipeline: restore-roundtrip-$case
nodes:
  archived:
    type: object_store
    url: s3://\${SLUICE_S3_BUCKET}/$prefix
    endpoint: \${SLUICE_S3_ENDPOINT}
    batch_rows: 300
  restored:
    type: postgres
    inputs: [archived]
    dsn: \${SLUICE_PG_DSN}
    table: ${t}_$case
    create_table: $([ $case = made ] && echo true || echo false)
YAML
    grep -q "schema" restore_$case.yaml && fail "the restore pipeline must not declare a schema"
    "$sluice" run -q --engine "$engine" restore_$case.yaml || fail "$engine: restore ($case) failed"
    same_rows ${t}_$case || fail "$engine: restore ($case) differs from the original"
  done
  check_eq "$(column_types ${t}_made)" "$types" "$engine: column types of the table the sink created"

  # The comparison catches a changed value: the same objects read with bytea as a string (the
  # hex text is then stored as the bytes of its characters) must not pass.
  schema=$(jq -r '.objects[0].columns | map("\"" + .name + "\": " + (if .name == "by" then "string" else .type end)) | join(", ")' manifests/*.json)
  sed -e "s/restore-roundtrip-made/restore-roundtrip-wrong/" -e "s/table: ${t}_made/table: ${t}_wrong/" \
      -e "s/    batch_rows: 300/    batch_rows: 300\n    schema: {$schema}/" restore_made.yaml > restore_wrong.yaml
  grep -q '"by": string' restore_wrong.yaml || fail "could not write the wrong schema"
  "$sluice" run -q --engine "$engine" restore_wrong.yaml || fail "$engine: restore with a wrong schema failed to run"
  if same_rows ${t}_wrong 2>/dev/null; then fail "$engine: a restore with bytea read as text passed the comparison"; fi
  check_eq "$(psql -qAtc "SELECT count(*) FROM ${t}_wrong w JOIN ${t}_copy c USING (id) WHERE w.by IS DISTINCT FROM c.by")" \
    "$(psql -qAtc "SELECT count(*) FROM ${t}_copy WHERE by <> ''")" "$engine: values the wrong schema changed"
  echo "$engine: archived $rows rows, restored into LIKE and created tables: identical (md5 $want)"
done
echo "restore round trip: ok"
