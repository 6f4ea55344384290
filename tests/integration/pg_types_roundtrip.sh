#!/usr/bin/env bash
# Every PostgreSQL value comes back exactly (docs/ARCHIVE_FORMAT.md): a table with every kind of
# value that has been lost before — numerics beyond double, NaN and ±Infinity in floats and
# numerics, ±infinity timestamps and dates, the last date, json spelled oddly with duplicate
# keys, JSON null beside SQL NULL, unicode, bytea with zero bytes, a `_meta` column, types
# without a binary codec (inet, arrays, interval, time, money, ranges, enums, domains,
# composites, bit, xml, tsvector) and NULLs in every column — goes
#   postgres source -> file sink (jsonl.gz, csv.gz) -> file source -> postgres sink
# into an empty table of the same definition, and every row's text form (t::text) must equal
# the original's: md5 of all rows in id order, and EXCEPT both ways.
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] || fail "SLUICE_PG_DSN is not set: run scripts/services start and eval \"\$(scripts/services env)\""
psql -qAtc 'select 1' >/dev/null || fail "PostgreSQL at $PGHOST:$PGPORT does not answer"
t="types_rt_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $t, ${t}_jsonl, ${t}_csv; DROP TYPE IF EXISTS ${t}_mood, ${t}_pair;
            DROP DOMAIN IF EXISTS ${t}_pos" >/dev/null || echo "cleanup: could not drop the test objects" >&2
  rm -rf "$work"
}
trap cleanup EXIT

psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TYPE ${t}_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN ${t}_pos AS int CHECK (VALUE > 0);
CREATE TYPE ${t}_pair AS (a int, b text);
CREATE TABLE $t (
  id int PRIMARY KEY, n30 numeric(30,10), n numeric, f4 real, f8 float8, ts timestamp,
  tstz timestamptz, d date, j json, jb jsonb, tx text, by bytea, ip inet, net cidr, mac macaddr,
  arr int[], tarr text[], iv interval, tm time, tmtz timetz, m money, r int4range,
  tsr tstzrange, e ${t}_mood, dom ${t}_pos, comp ${t}_pair, bits bit(8), vb varbit, x xml,
  tsv tsvector, u uuid, bo bool, i2 int2, i8 int8, ch char(5), vc varchar(10), "_meta" text,
  "a.b" text);
INSERT INTO $t VALUES
 (1, 12345678901234567890.1234567890, 99999999999999999999999999999999999999.5, 'NaN',
  'Infinity', 'infinity', '-infinity', '5874897-12-31', '{"a" :  1,  "a":2}',
  '{"b": [1, 2.50, 1e400]}', 'ünïcode ✓ 日本 😀', '\x00ff0000', '192.168.0.1/24', '10.0.0.0/8',
  '08:00:2b:01:02:03', '{1,NULL,3}', '{"a,b","c\\"d",NULL}', '-1 year 2 mons -3 days 04:05:06.789',
  '23:59:59.999999', '12:00:00+05:30', '-1234.56', '[1,10)', '[2024-01-01 00:00:00+00,infinity)',
  'happy', 7, ROW(1, 'x,y'), B'10100101', B'101', '<a b="c">d</a>', 'fat:1A cat:2',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, -32768, 9223372036854775807, 'ab', 'xyz', 'meta',
  'dot'),
 (2, -0.0000000001, 'NaN', '-Infinity', 'NaN', '-infinity', 'infinity', '-infinity', 'null',
  'null', '', '', '::1', '::/0', '00:00:00:00:00:00', '{}', '{}', '0', '00:00', '00:00:00-12', '0',
  'empty', '(,)', 'sad', 1, ROW(NULL, NULL), B'00000000', B'', '', '',
  '00000000-0000-0000-0000-000000000000', false, 0, 0, '', '', '', ''),
 (3, 0.0000000000, 'Infinity', 'Infinity', '-Infinity', '294247-01-10 04:00:54.775806',
  '4713-01-01 00:00:00+00 BC', '4714-11-24 BC', E'{\n  "k": "v\\\\tw"\n}', '[]',
  E'tab\tnew\nline "q" \\\\ back, comma', '\x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL),
 (4, NULL, '-Infinity', '-0', '-0', '2000-01-01 00:00:00.000001', '1970-01-01 00:00:00+00',
  'infinity', '"str"', '"str"', 'NULL', '\x00', NULL, NULL, NULL, '{{1,2},{3,4}}', '{NULL}',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL);
INSERT INTO $t (id) VALUES (5);
INSERT INTO $t (id, n30, f8, tstz, tx)
SELECT g, g * 1.0000000001, g / 7.0, timestamptz '2024-01-01' + g * interval '1 second', 'row ' || g
FROM generate_series(6, 3000) g;
SQL
want=$(psql -qAtc "SELECT md5(string_agg(t::text, E'\n' ORDER BY id)) FROM $t t")
rows=$(psql -qAtc "SELECT count(*) FROM $t")

# The file source's schema: the sluice type each column arrives as (docs/ARCHIVE_FORMAT.md),
# derived from the catalog (a domain has its base type's).
schema=$(psql -qAtc "
  SELECT string_agg(format('%s: %s', to_json(a.attname)::text,
           CASE format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, NULL)
             WHEN 'smallint' THEN 'int64' WHEN 'integer' THEN 'int64' WHEN 'bigint' THEN 'int64'
             WHEN 'real' THEN 'float64' WHEN 'double precision' THEN 'float64'
             WHEN 'boolean' THEN 'bool' WHEN 'bytea' THEN 'bytes'
             WHEN 'timestamp without time zone' THEN 'timestamp'
             WHEN 'timestamp with time zone' THEN 'timestamp'
             ELSE 'string' END), ', ' ORDER BY a.attnum)
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = '$t'::regclass AND a.attnum > 0 AND NOT a.attisdropped")

for fmt in jsonl csv; do
  mkdir -p "out_$fmt"
  cat > dump_$fmt.yaml <<YAML
pipeline: dump-$fmt
nodes:
  src:
    type: postgres
    dsn: \${SLUICE_PG_DSN}
    table: $t
    batch_rows: 700
  out:
    type: file
    inputs: [src]
    path: out_$fmt/rows-{n}.$fmt.gz
    roll_rows: 1000
YAML
  "$sluice" run -q dump_$fmt.yaml || fail "$fmt: dump failed"
  psql -qc "CREATE TABLE ${t}_$fmt (LIKE $t INCLUDING ALL)"
  cat > load_$fmt.yaml <<YAML
pipeline: load-$fmt
nodes:
  files:
    type: file
    path: out_$fmt/*.$fmt.gz
    schema: {$schema}
  dst:
    type: postgres
    inputs: [files]
    dsn: \${SLUICE_PG_DSN}
    table: ${t}_$fmt
YAML
  "$sluice" run -q load_$fmt.yaml || fail "$fmt: load failed"
  check_eq "$(psql -qAtc "SELECT count(*) FROM ${t}_$fmt")" "$rows" "$fmt: rows restored"
  got=$(psql -qAtc "SELECT md5(string_agg(t::text, E'\n' ORDER BY id)) FROM ${t}_$fmt t")
  if [ "$got" != "$want" ]; then
    psql -qAtc "(SELECT 'only in source: ' || t::text FROM $t t EXCEPT
                 SELECT 'only in source: ' || t::text FROM ${t}_$fmt t)
                UNION ALL
                (SELECT 'only restored:  ' || t::text FROM ${t}_$fmt t EXCEPT
                 SELECT 'only restored:  ' || t::text FROM $t t)" | head -20 >&2
    fail "$fmt: restored rows differ from the source (md5 $got, want $want)"
  fi
  for pair in "$t ${t}_$fmt" "${t}_$fmt $t"; do
    set -- $pair
    check_eq "$(psql -qAtc "SELECT count(*) FROM (SELECT t::text FROM $1 t EXCEPT ALL
                                                  SELECT t::text FROM $2 t) d")" 0 \
      "$fmt: rows of $1 missing from $2"
  done
done

# What the objects hold, looked at as a reader of the archive would (jq on the JSONL).
row() { zcat out_jsonl/*.jsonl.gz | jq -c "select(.id == $1)"; }
check_eq "$(row 1 | jq -r .n30)" "12345678901234567890.1234567890" "numeric(30,10) is an exact string"
check_eq "$(row 1 | jq -r .n)" "99999999999999999999999999999999999999.5" "numeric is an exact string"
check_eq "$(row 1 | jq -c '[.f4, .f8, .ts, .tstz, .d]')" \
  '["NaN","Infinity","infinity","-infinity","5874897-12-31"]' "non-finite values and the last date"
check_eq "$(row 1 | jq -r .j)" '{"a" :  1,  "a":2}' "json keeps its exact text"
check_eq "$(row 2 | jq -c '[.j, .jb]')" '["null","null"]' "JSON null is the string null"
check_eq "$(row 5 | jq -c '[.j, .jb, .n30, .ip]')" '[null,null,null,null]' "SQL NULL is null"
check_eq "$(row 1 | jq -c '[.ip, .arr, .iv, ._meta, .["a.b"], .by]')" \
  '["192.168.0.1/24","{1,NULL,3}","-10 mons -3 days +04:05:06.789","meta","dot","00ff0000"]' \
  "text forms, user columns named _meta and a.b, bytea as hex"
echo "pg types round trip: ok ($rows rows, jsonl.gz and csv.gz, md5 $want)"
