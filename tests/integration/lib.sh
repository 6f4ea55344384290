# Helpers shared by the integration scripts. Source it; it sets `sluice` and a temp `work` dir.
set -euo pipefail
sluice=$(realpath "${1:?usage: $0 path/to/sluice}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Runs record themselves in a history database: keep the tests' runs out of the user's.
export SLUICE_HISTORY="${SLUICE_HISTORY:-$work/runs.db}"

fail() { echo "FAIL: $*" >&2; exit 1; }
check_eq() { [ "$1" == "$2" ] || fail "$3: got '$1', want '$2'"; }

# ids archived in gzip JSONL files under $1, one per line, sorted (duplicates kept).
# A run that failed before publishing any file has no folder: that is zero rows, not an error.
archived_ids() {
  [ -d "$1" ] || return 0
  find "$1" -name '*.jsonl.gz' -print0 | sort -z | xargs -0 -r zcat | jq -r .id | sort -n
}
