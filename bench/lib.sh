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

# wait_quiet: with QUIET=1, wait (up to 60 s) until the machine is idle — at least 95 % of both
# cores' time idle over half a second — so that other work (a build, another bench) does not
# land in a timing. Without QUIET it returns at once.
wait_quiet() {
  case "${QUIET:-0}" in
    0) return 0 ;;
    1) ;;
    *) echo "bench: QUIET must be 0 or 1, not '$QUIET'" >&2; exit 2 ;;
  esac
  local deadline=$((SECONDS + 60)) a b idle total i
  while [ "$SECONDS" -lt "$deadline" ]; do
    read -ra a < /proc/stat
    sleep 0.5
    read -ra b < /proc/stat
    idle=$((b[4] - a[4]))
    total=0
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    [ "$total" -gt 0 ] && [ $((idle * 100 / total)) -ge 95 ] && return 0
  done
  echo "bench: the machine did not go quiet within 60 s; timing anyway" >&2
}

# time_cmd VAR CMD...: run CMD, store wall seconds in VAR and peak RSS (MiB) in VAR_rss.
time_cmd() {
  local var=$1; shift
  local t0 t1
  wait_quiet
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/.rss" "$@"
  t1=$(date +%s.%N)
  printf -v "$var" '%.3f' "$(echo "$t1 - $t0" | bc -l)"
  printf -v "${var}_rss" '%.1f' "$(echo "$(cat "$work/.rss") / 1024" | bc -l)"
}

# runs: RUNS (default 3), checked to be a positive integer.
runs() {
  local n=${RUNS:-3}
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || {
    echo "bench: RUNS must be a positive integer, not '$n'" >&2
    exit 2
  }
  echo "$n"
}

# best VAR CMD...: the least wall time of RUNS (default 3) runs of CMD into VAR, and that run's
# peak RSS (MiB) into VAR_rss: this machine's timings are noisy.
best() {
  # Locals named so as not to shadow the caller's VAR (bash scopes dynamically).
  local _best_var=$1 _best_run _best_run_rss _best_t="" _best_rss="" _best_n; shift
  _best_n=$(runs)
  for _ in $(seq "$_best_n"); do
    time_cmd _best_run "$@"
    if [ -z "$_best_t" ] || [ "$(echo "$_best_run < $_best_t" | bc -l)" = 1 ]; then
      _best_t=$_best_run
      _best_rss=$_best_run_rss
    fi
  done
  printf -v "$_best_var" '%s' "$_best_t"
  printf -v "${_best_var}_rss" '%s' "$_best_rss"
}

# best_turns VAR1 CMD1 VAR2 CMD2 ...: as best, for several one-word commands (scripts) taking
# turns — run i of every one before run i+1 of any — so that a slow spell of this shared VM
# falls on all of them alike instead of on whichever was running then.
best_turns() {
  local _bt_n _bt_i _bt_k _bt_t
  _bt_n=$(runs)
  local -a _bt_vars=() _bt_cmds=()
  while [ $# -gt 0 ]; do
    _bt_vars+=("$1")
    _bt_cmds+=("$2")
    printf -v "$1" '%s' ""
    shift 2
  done
  for _bt_i in $(seq "$_bt_n"); do
    for _bt_k in "${!_bt_vars[@]}"; do
      time_cmd _bt_t "${_bt_cmds[$_bt_k]}"
      local -n _bt_best=${_bt_vars[$_bt_k]}
      if [ -z "$_bt_best" ] || [ "$(echo "$_bt_t < $_bt_best" | bc -l)" = 1 ]; then
        printf -v "${_bt_vars[$_bt_k]}" '%s' "$_bt_t"
        printf -v "${_bt_vars[$_bt_k]}_rss" '%s' "$_bt_t_rss"
      fi
      unset -n _bt_best
    done
  done
}

# result NAME ROWS SLUICE_S PEER PEER_S RSS_MB: the one JSON line every bench ends with.
# ratio = peer_s / sluice_s (above 1: sluice is faster).
result() {
  local ratio
  ratio=$(printf '%.3f' "$(echo "$5 / $3" | bc -l)")  # printf: 0.5, not bc's .5 (not JSON)
  printf '{"bench":"%s","rows":%s,"sluice_s":%s,"peer":"%s","peer_s":%s,"ratio":%s,"peak_rss_mb":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$ratio" "$6"
}
