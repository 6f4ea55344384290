#!/usr/bin/env bash
# Workload 2 against real PostGIS, through examples/geo-buffer-union.yaml: 5,000 places (points
# and small polygons in EPSG:32631) and 3 malformed features.
#  - The parallel and the sequential executors load the same rows: identical geometries
#    (digest of every row's EWKB), counts, ST_Area sums, all valid, SRID 32631, a GiST index.
#  - Each buffer matches PostGIS's own ST_Buffer of the same input, row by row.
#  - The malformed features go to the dead-letter file with their line and feature index.
#  - GeoJSON -> PostGIS -> GeoJSON keeps every geometry exactly, its SRID and its attributes.
#  - A GeoPackage written by ogr2ogr reads back (sqlite source) as the same features.
#  - A run that fails part way builds no index; the rerun completes and builds it.
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/lib.sh"
require_services SLUICE_PG_DSN
export PGHOST PGPORT PGUSER PGDATABASE PGOPTIONS="-c client_min_messages=warning"
example="$root/examples/geo-buffer-union.yaml"
par="geo_par_$$" seq="geo_seq_$$" raw="geo_raw_$$" ref="geo_ref_$$"
cleanup() {
  psql -qc "DROP TABLE IF EXISTS $par, $seq, $raw, $ref"
  lib_cleanup
}
trap cleanup EXIT
psql -qc "CREATE EXTENSION IF NOT EXISTS postgis"

"$root/scripts/gen-geojson" 5000 places.geojson --seed 7 --bad
export PG_DSN="$SLUICE_PG_DSN" GEO_INPUT="$work/places.geojson"

# digest TABLE: every row, geometry as EWKB, in a fixed order.
digest() {
  psql -qAtc "SELECT md5(string_agg(concat_ws('|', id, name, kind, rating, open, buffer_m,
                                             encode(ST_AsEWKB(geometry), 'hex')), E'\n'
                                    ORDER BY buffer_m, id)) FROM $1"
}

GEO_TABLE=$par GEO_REJECTED="$work/rej_par" "$sluice" run -q --engine parallel "$example"
GEO_TABLE=$seq GEO_REJECTED="$work/rej_seq" "$sluice" run -q --engine sequential "$example"
check_eq "$(psql -qAtc "SELECT count(*) FROM $par")" 10000 "rows loaded (5,000 places x 2 buffers)"
check_eq "$(digest $par)" "$(digest $seq)" "parallel and sequential rows"
check_eq "$(psql -qAtc "SELECT buffer_m, count(*), count(DISTINCT id), min(id), max(id) FROM $par
                        GROUP BY 1 ORDER BY 1" | tr '\n' ' ')" \
  "10|5000|5000|1|5000 50|5000|5000|1|5000 " "each place once in each buffer"
check_eq "$(psql -qAtc "SELECT bool_and(ST_IsValid(geometry)), min(ST_SRID(geometry)),
                               max(ST_SRID(geometry)), bool_and(GeometryType(geometry) = 'POLYGON')
                        FROM $par")" "t|32631|32631|t" "valid polygons in EPSG:32631"
check_eq "$(psql -qAtc "SELECT round(sum(ST_Area(geometry)))::text FROM $par")" \
  "$(psql -qAtc "SELECT round(sum(ST_Area(geometry)))::text FROM $seq")" "area sums"
check_eq "$(psql -qAtc "SELECT indexdef FROM pg_indexes WHERE tablename = '$par'")" \
  "CREATE INDEX ${par}_geometry_idx ON public.$par USING gist (geometry)" "GiST index after the load"

# PostGIS's own buffers of the same input: load the places as they are, buffer them in SQL.
cat > raw.yaml <<YAML
pipeline: geo-raw
nodes:
  places: {type: file, path: "$work/places.geojson", on_error: skip}
  load: {type: postgres, inputs: [places], dsn: "$SLUICE_PG_DSN", table: $raw, create_table: true}
YAML
"$sluice" run -q raw.yaml
psql -qc "CREATE TABLE $ref AS SELECT id, d AS buffer_m, ST_Buffer(geometry, d) AS geometry
          FROM $raw CROSS JOIN (VALUES (10), (50)) v(d)"
check_eq "$(psql -qAtc "SELECT count(*) FROM $par p JOIN $ref r USING (id, buffer_m)
                        WHERE ST_NPoints(p.geometry) = ST_NPoints(r.geometry)
                          AND ST_OrderingEquals(ST_SnapToGrid(p.geometry, 1e-6),
                                                ST_SnapToGrid(r.geometry, 1e-6))")" 10000 \
  "buffers equal to PostGIS's ST_Buffer, vertex for vertex (within 1e-6 m)"

# The three malformed features, each with its line and index.
check_eq "$(cat rej_par/*.jsonl | jq -r '.error' | sed 's/^.*places.geojson://' | sort | tr '\n' '|')" \
  "5002: feature 5000: geometry: Polygon coordinates: ring 0: a polygon ring is not closed (its last position is not its first)|5003: feature 5001: geometry: Point coordinates: a position needs 2 or more numbers, has 1|5004: feature 5002: geometry: Point coordinates: a coordinate must be a number, got string|" \
  "dead letters"
check_eq "$(cat rej_par/*.jsonl | jq -r '.record | fromjson | .id' | sort | tr '\n' ' ')" \
  "5001 5002 5003 " "dead-letter records are the input's features"

# GeoJSON -> PostGIS ($raw, above) -> GeoJSON: the same features, geometries, SRID.
cat > back.yaml <<YAML
pipeline: geo-back
nodes:
  rows: {type: postgres, dsn: "$SLUICE_PG_DSN", query: "SELECT id, name, kind, rating, open, geometry FROM $raw ORDER BY id"}
  out: {type: file, inputs: [rows], path: "$work/back/places-{n}.geojson"}
YAML
"$sluice" run -q back.yaml
# as_jsonl FILE: the features as JSONL rows, geometry as EWKT, sorted.
as_jsonl() {
  rm -rf "$work/jl"
  cat > jl.yaml <<YAML
pipeline: geo-jsonl
nodes:
  in: {type: file, path: "$1", format: geojson, on_error: skip}
  out: {type: file, inputs: [in], path: "$work/jl/rows-{n}.jsonl", geometry: wkt}
YAML
  "$sluice" run -q jl.yaml
  sort "$work"/jl/*.jsonl
}
as_jsonl "$work/places.geojson" > before.txt
as_jsonl "$work/back/*.geojson" > after.txt
check_eq "$(wc -l < after.txt)" 5000 "features back"
grep -q 'SRID=32631;POINT (' after.txt || fail "no EPSG:32631 point came back: $(head -2 after.txt)"
cmp -s before.txt after.txt || fail "GeoJSON -> PostGIS -> GeoJSON changed features: $(diff before.txt after.txt | head -4)"

# A GeoPackage written by GDAL, read by the sqlite source: the same features, geometries and SRID.
grep -v '"kind":"bad"' places.geojson > clean.geojson
ogr2ogr -f GPKG places.gpkg clean.geojson -nln places -lco GEOMETRY_NAME=geometry -lco FID=id
rm -rf "$work/jl"
cat > gpkg.yaml <<YAML
pipeline: geo-gpkg
nodes:
  in: {type: sqlite, path: "$work/places.gpkg", table: places}
  out: {type: file, inputs: [in], path: "$work/jl/rows-{n}.jsonl", geometry: wkt}
YAML
"$sluice" run -q gpkg.yaml
jq -S -c . "$work"/jl/*.jsonl | sort > from_gpkg.txt
jq -S -c . before.txt | sort > from_geojson.txt
check_eq "$(wc -l < from_gpkg.txt)" 5000 "features read from the GeoPackage"
cmp -s from_gpkg.txt from_geojson.txt ||
  fail "GeoPackage features differ from the GeoJSON's: $(diff from_gpkg.txt from_geojson.txt | head -4)"

# A run that fails part way builds no index (a fault injected after the union's tenth batch;
# fault nodes exist in the test binary only); the rerun completes and builds it.
"$root/scripts/gen-geojson" 100000 big.geojson --seed 8
sed -e 's/^    inputs: \[both\]$/    inputs: [faulty]/' "$example" > faulty.yaml
cat >> faulty.yaml <<'YAML'
  faulty:
    type: fault_inject
    inputs: [both]
    fail_at_batch: 10
YAML
export GEO_INPUT="$work/big.geojson"
psql -qc "DROP TABLE $par"
expect_failure 1 "fault" "a run failing part way" \
  env GEO_TABLE=$par GEO_REJECTED="$work/rej_fail" "$sluice" run -q faulty.yaml
[ "$(psql -qAtc "SELECT count(*) > 0 FROM $par")" = t ] || fail "the failed run loaded nothing"
check_eq "$(psql -qAtc "SELECT count(*) FROM pg_indexes WHERE tablename = '$par'")" 0 \
  "indexes after a failed run"
psql -qc "DROP TABLE $par"
GEO_TABLE=$par GEO_REJECTED="$work/rej_again" "$sluice" run -q "$example"
check_eq "$(psql -qAtc "SELECT count(*), count(DISTINCT (id, buffer_m)) FROM $par")" \
  "200000|200000" "rows after the rerun"
check_eq "$(psql -qAtc "SELECT count(*) FROM pg_indexes WHERE tablename = '$par'")" 1 "index after the rerun"
echo "geo_buffer_union: ok"
