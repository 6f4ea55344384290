# Shared by the bench/ scripts: SCALE handling, timing, peak RSS, the JSON result line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${SCALE:-1}
sluice=${SLUICE:-$root/build/release/sluice}
[ -x "$sluice" ] || { echo "bench: build first (make release); no $sluice" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# scaled N: N * SCALE, at least 1.
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s); print (v < 1 ? 1 : v) }'; }

# time_cmd VAR CMD...: run CMD, store wall seconds in VAR and peak RSS (MiB) in VAR_rss.
time_cmd() {
  local var=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/.rss" "$@"
  t1=$(date +%s.%N)
  printf -v "$var" '%.3f' "$(echo "$t1 - $t0" | bc -l)"
  printf -v "${var}_rss" '%.1f' "$(echo "$(cat "$work/.rss") / 1024" | bc -l)"
}

# result NAME ROWS SLUICE_S PEER PEER_S RSS_MB: the one JSON line every bench ends with.
# ratio = peer_s / sluice_s (above 1: sluice is faster).
result() {
  local ratio
  ratio=$(printf '%.3f' "$(echo "$5 / $3" | bc -l)")  # printf: 0.5, not bc's .5 (not JSON)
  printf '{"bench":"%s","rows":%s,"sluice_s":%s,"peer":"%s","peer_s":%s,"ratio":%s,"peak_rss_mb":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$ratio" "$6"
}
