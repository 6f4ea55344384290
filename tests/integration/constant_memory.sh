#!/usr/bin/env bash
# Constant memory: ten times the rows through the same pipeline keep peak RSS within 1.25x.
source "$(dirname "$0")/lib.sh"

cat > p.yaml <<YAML
settings:
  memory_limit: 32MiB
nodes:
  src: {type: generate, shape: audit, rows: 100000, batch_rows: 4096}
  recent: {type: filter, inputs: [src], where: "action != 'read'"}
  out: {type: file, inputs: [recent], path: "out/part-{n}.jsonl.gz", roll_rows: 200000}
YAML
peak() {
  rm -rf out
  "$sluice" run -q --set "nodes.src.rows=$1" --report r.json p.yaml
  jq -r .peak_rss_bytes r.json
}
# 200k rows is past the warm-up (allocator arenas per thread, codec buffers reaching their
# largest batch), so growth beyond it would be memory that scales with the input.
small=$(peak 200000)
large=$(peak 2000000)
echo "peak RSS: 200k rows $((small / 1048576)) MiB, 2M rows $((large / 1048576)) MiB"
awk -v s="$small" -v l="$large" 'BEGIN { exit !(l <= 1.25 * s) }' \
  || fail "peak RSS grew from $small to $large bytes (more than 1.25x)"
echo "constant memory: ok"
