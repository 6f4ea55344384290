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
"$sluice" run -q "$root/examples/quickstart.yaml"
left=$(sqlite3 audit.db "SELECT count(*) FROM audit_log")
archived=$(archived_ids out | wc -l)
# Every deleted row is in a file, exactly once.
check_eq "$archived" "$((total - left))" "archived rows vs deleted rows"
check_eq "$(archived_ids out | uniq -d | wc -l)" 0 "duplicate archived rows"
# The pipeline's cutoff is a few seconds later than ours: allow a handful more rows.
[ "$archived" -ge "$old" ] && [ "$archived" -le $((old + 10)) ] || fail "archived $archived, expected about $old"
# A minute of slack for the clock moving between the two cutoffs.
check_eq "$(sqlite3 audit.db "SELECT count(*) FROM audit_log WHERE created_at < $cutoff - 60000000")" 0 "old rows left"
echo "quickstart: ok ($old of $total rows archived)"
