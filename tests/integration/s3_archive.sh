#!/usr/bin/env bash
# The archiver end to end against real servers: PostgreSQL -> gzip JSONL objects in S3
# (s3rver), verified, then deleted; checked with awscli + zcat, then restored and compared.
# A user column named `_meta` is archived and restored like any other; objects are named by
# database and table, and the run's one manifest is complete and records the column types.
# Also: S3 unreachable mid-run deletes nothing; a rerun completes exactly once; a missing
# bucket and a refused access key fail at once (no retries) with one line saying what to check.
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/lib.sh"
[ -n "${SLUICE_PG_DSN:-}" ] && [ -n "${SLUICE_S3_ENDPOINT:-}" ] \
  || fail "run scripts/services start and eval \"\$(scripts/services env)\" first"
aws() { /usr/bin/aws --endpoint-url "$SLUICE_S3_ENDPOINT" "$@"; }
tag="t$$"
trap 'psql -qc "DROP TABLE IF EXISTS audit_log_$tag, orig_$tag, restored_$tag" >/dev/null 2>&1; rm -rf "$work"' EXIT

psql -q <<SQL
CREATE TABLE audit_log_$tag (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text,
                             action text, payload jsonb, _meta text);
INSERT INTO audit_log_$tag
SELECT g, now() - (g % 365) * interval '1 day', 'user-' || (g % 97),
       (ARRAY['login','read','update'])[1 + g % 3],
       jsonb_build_object('n', g, 'quote', 'say "hi"', 'pad', repeat('z', 300)),
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'meta-' || g END
FROM generate_series(1, 100000) g;
CREATE INDEX ON audit_log_$tag (created_at, id);
CREATE TABLE orig_$tag AS SELECT * FROM audit_log_$tag WHERE created_at < now() - interval '90 days';
SQL
old=$(psql -qAtc "SELECT count(*) FROM orig_$tag")
newer=$(psql -qAtc "SELECT count(*) FROM audit_log_$tag") && newer=$((newer - old))

sed -e "s/tables: \[audit_log\]/tables: [audit_log_$tag]/" \
    -e "s|/archive|/$tag|" "$root/examples/archive-audit-logs.yaml" > archive.yaml
grep -q "audit_log_$tag" archive.yaml || fail "could not adapt the example"

# 1. S3 unreachable: every upload fails after its retries; nothing may be deleted.
set +e
timeout 120 "$sluice" run -q --set nodes.upload.endpoint=http://127.0.0.1:1 \
  --set nodes.upload.retry_initial=10ms --set nodes.upload.retry_max_attempts=2 archive.yaml 2>err
code=$?; set -e
check_eq "$code" 1 "unreachable S3: exit code"
grep -q "node 'upload'" err || fail "unreachable S3 message: $(cat err)"
check_eq "$(psql -qAtc "SELECT count(*) FROM audit_log_$tag")" "$((old + newer))" "rows after S3 failure"

# 1b. A bucket that does not exist, then an access key id S3 refuses (s3rver answers 403
#     InvalidAccessKeyId to a key it does not know): permanent errors, so no retry; exit 1 with
#     one line naming the node, the bucket and what to check; nothing deleted.
for case in bucket key; do
  set +e
  if [ "$case" = bucket ]; then
    timeout 60 "$sluice" run -q --report report.json \
      --set "nodes.upload.url=s3://sluice-no-bucket-$tag/archive" archive.yaml 2>err
  else
    AWS_ACCESS_KEY_ID=NOTAKEY timeout 60 "$sluice" run -q --report report.json archive.yaml 2>err
  fi
  code=$?; set -e
  check_eq "$code" 1 "$case: exit code"
  check_eq "$(grep -c '^sluice:' err)" 1 "$case: error lines ($(cat err))"
  grep '^sluice:' err | grep -q "node 'upload'" || fail "$case: node not named: $(cat err)"
  if [ "$case" = bucket ]; then
    grep -q "NoSuchBucket.*check that bucket 'sluice-no-bucket-$tag' exists at $SLUICE_S3_ENDPOINT" err \
      || fail "bucket: message: $(cat err)"
  else
    # (The sink's first request is a HEAD — is the key free? — whose answer has no error code.)
    grep -q "HTTP 403.*check the credentials.*may write to bucket '$SLUICE_S3_BUCKET'" err \
      || fail "key: message: $(cat err)"
  fi
  check_eq "$(jq '[.nodes[] | select(.id == "upload") | .counters.retries // 0] | add' report.json)" 0 \
    "$case: retries"
  check_eq "$(psql -qAtc "SELECT count(*) FROM audit_log_$tag")" "$((old + newer))" "$case: rows after the failure"
done

# 2. The real run.
"$sluice" run -q --report report.json archive.yaml 2>log
# The whole pipeline's phase split, summed over its nodes, is in the report.
for phase in query serialize compress upload verify delete vacuum; do
  jq -e ".phases_s.$phase > 0" report.json >/dev/null || fail "report lacks phase $phase: $(jq -c .phases_s report.json)"
done
check_eq "$(psql -qAtc "SELECT count(*) FROM audit_log_$tag WHERE created_at < now() - interval '90 days'")" 0 "old rows left"
check_eq "$(psql -qAtc "SELECT count(*) FROM audit_log_$tag")" "$newer" "newer rows kept"
mkdir -p dl && aws s3 cp --quiet --recursive "s3://$SLUICE_S3_BUCKET/$tag/" dl/
find dl -path '*/_manifests/*' -delete
ids=$(archived_ids dl | wc -l)
check_eq "$ids" "$old" "rows in objects (awscli + zcat)"
check_eq "$(archived_ids dl | uniq -d | wc -l)" 0 "rows in two objects"
# The user's `_meta` column is in the objects, value for value (NULL as null).
meta_archived=$(find dl -name '*.jsonl.gz' -print0 | xargs -0 zcat | jq -r '"\(.id) \(._meta // "NULL")"' | sort -n | md5sum)
meta_orig=$(psql -qAtc "SELECT id || ' ' || coalesce(_meta, 'NULL') FROM orig_$tag ORDER BY id" | md5sum)
check_eq "$meta_archived" "$meta_orig" "_meta values in the objects"
# Objects are named <database>/<table>/<date>/<batch id>.
check_eq "$(find dl -name '*.jsonl.gz' | grep -cv "^dl/main/audit_log_$tag/[0-9-]*/[^/]*\.jsonl\.gz\$")" 0 \
  "objects outside main/audit_log_$tag/<date>/"
# One manifest for the one run that stored objects (the failed runs above stored none): unique
# name, complete, listing every archived row, with the columns' PostgreSQL types.
aws s3 cp --quiet --recursive "s3://$SLUICE_S3_BUCKET/$tag/_manifests/" manifests/
check_eq "$(ls manifests | wc -l)" 1 "manifests"
m=manifests/$(ls manifests)
[[ "$(basename "$m")" =~ ^[0-9]{8}T[0-9]{6}Z-upload-[0-9a-f]{16}\.json$ ]] || fail "manifest name: $m"
check_eq "$(jq .complete "$m")" true "manifest complete"
check_eq "$(jq '[.objects[].rows] | add' "$m")" "$old" "rows listed in the manifest"
check_eq "$(jq '.objects | length' "$m")" "$(find dl -name '*.jsonl.gz' | wc -l)" "objects listed in the manifest"
check_eq "$(jq -c '[.objects[0].columns[] | [.name, .pg_type]]' "$m")" \
  '[["id","bigint"],["created_at","timestamp with time zone"],["actor","text"],["action","text"],["payload","jsonb"],["_meta","text"]]' \
  "columns in the manifest"

# 3. Restore into a fresh table: it equals the archived rows.
# The example declares no schema: the objects' columns and types come from the manifest.
sed -e "s|/archive|/$tag|" "$root/examples/restore-audit-logs.yaml" > restore.yaml
grep -q "/$tag" restore.yaml || fail "could not adapt the restore example"
RESTORE_TABLE=restored_$tag "$sluice" run -q restore.yaml
digest() { psql -qAtc "SELECT md5(string_agg(id || '|' || created_at || '|' || actor || '|' || action || '|' || payload::text || '|' || coalesce(_meta, 'NULL'), ',' ORDER BY id)) FROM $1"; }
check_eq "$(digest restored_$tag)" "$(digest orig_$tag)" "restored rows equal the originals"
check_eq "$(psql -qAtc "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
                        WHERE attrelid = 'restored_$tag'::regclass AND attnum > 0 AND NOT attisdropped")" \
  "bigint, timestamp with time zone, text, text, jsonb, text" "the restored table has the original's column types"
echo "s3 archive: ok ($old rows archived, verified, deleted and restored)"
