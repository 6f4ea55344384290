#!/usr/bin/env bash
# The quickstart end to end at a small scale: seed, archive, then prove every archived row is in
# exactly one file, none of the archived rows remain, and only rows newer than 90 days remain.
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
export SLUICE_DEMO_DIR="$work" SLUICE_OUT_DIR="$work/out"
"$sluice" run -q --set nodes.audit.rows=50000 "$root/examples/quickstart-seed.yaml"
total=$(sqlite3 audit.db "SELECT count(*) FROM audit_log")
check_eq "$total" 50000 "seeded rows"
cutoff=$(( ($(date +%s) - 90 * 86400) * 1000000 ))
old=$(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at < $cutoff")
sqlite3 audit.db "SELECT id FROM audit_log" | LC_ALL=C sort > before.ids
"$sluice" run -q "$root/examples/quickstart.yaml"
sqlite3 audit.db "SELECT id FROM audit_log" | LC_ALL=C sort > after.ids
# Every deleted row is in a file, exactly once, and no row still in the table was archived:
# the archived ids (duplicates kept) are exactly the ids that left the table.
comm -23 before.ids after.ids > deleted.ids
archived_ids out | LC_ALL=C sort > archived.ids
cmp -s archived.ids deleted.ids ||
  fail "archived ids differ from deleted ids (< archived only, > deleted only): $(diff archived.ids deleted.ids | grep '^[<>]' | head -5 | tr '\n' ' ')"
archived=$(wc -l < archived.ids)
# The pipeline's cutoff is a few seconds later than ours: allow a handful more rows.
[ "$archived" -ge "$old" ] && [ "$archived" -le $((old + 10)) ] || fail "archived $archived, expected about $old"
# A minute of slack for the clock moving between the two cutoffs.
check_eq "$(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at < $cutoff - 60000000")" 0 "old rows left"
echo "quickstart: ok ($old of $total rows archived)"
