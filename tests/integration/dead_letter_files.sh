#!/usr/bin/env bash
# on_error: dead_letter without servers — the records a node rejects reach the sink that takes
# `<id>.dead_letter`, with the text they had, where they were and why; the rest go on:
#   1. a JSONL file with malformed lines and values that do not fit the schema;
#   2. a CSV file with rows of the wrong width and numbers that are not numbers;
#   3. `cast` of a string column to int64 — rows that do not convert, as JSON;
#   4. configurations the engine refuses (no consumer of the dead letters, a consumer without
#      on_error: dead_letter, a misspelt output).
source "$(dirname "$0")/lib.sh"

# --- 1. JSONL ---------------------------------------------------------------------------------
python3 - <<'PY'
import json, random
random.seed(11)
good, bad = [], []
with open("in.jsonl", "w", encoding="utf-8") as f:
    for i in range(1, 2001):
        r = random.random()
        if r < 0.02:
            line = '{"id": %d, "name": "cut' % i              # malformed JSON
        elif r < 0.04:
            line = json.dumps({"id": "n%d" % i, "name": "ünï"})  # id is not an int64
        else:
            line = json.dumps({"id": i, "name": "ü-%d\t\"q\"" % i}, ensure_ascii=False)
            good.append(i)
            print(line, file=f)
            continue
        bad.append((i, line))
        print(line, file=f)
open("good.ids", "w").write("".join(f"{i}\n" for i in good))
json.dump([{"line": n, "text": t} for n, t in bad], open("bad.json", "w"), ensure_ascii=False)
print(f"{len(good)} good, {len(bad)} bad lines")
PY
cat > jsonl.yaml <<'YAML'
pipeline: dl-jsonl
nodes:
  src: {type: file, path: in.jsonl, schema: {id: int64, name: string}, on_error: dead_letter,
        batch_rows: 300}
  out: {type: file, inputs: [src], path: out.jsonl, format: jsonl}
  dead: {type: file, inputs: [src.dead_letter], path: dead.jsonl, format: jsonl}
YAML
"$sluice" run --report jsonl.json jsonl.yaml >jsonl.out 2>&1 || fail "jsonl run: $(tail -5 jsonl.out)"
cmp -s good.ids <(jq -r .id out.jsonl) || fail "rows written differ from the good lines"
# Every bad line is in dead.jsonl once, with its text, its position (path:line) and an error
# naming the line; nothing else is.
python3 - <<'PY' || fail "dead letters of the JSONL file"
import json
bad = json.load(open("bad.json"))
dead = [json.loads(l) for l in open("dead.jsonl", encoding="utf-8")]
assert len(dead) == len(bad), (len(dead), len(bad))
for want, got in zip(bad, dead):
    assert got["node"] == "src", got
    assert got["position"] == f"in.jsonl:{want['line']}", (got, want)
    assert got["record"] == want["text"], (got, want)
    assert f"in.jsonl:{want['line']}:" in got["error"], got
print(f"{len(dead)} dead letters equal the bad lines")
PY
check_eq "$(jq '.nodes[] | select(.id == "src") | .counters.dead_letter_records' jsonl.json)" \
  "$(jq length bad.json)" "dead_letter_records of the JSONL source"

# A file of nothing but bad lines (3 MB: the source reads 1 MiB at a time): its dead letters go
# out as they are found rather than pile up in memory until the end of the file.
python3 -c '
for i in range(1, 2501):
    print("{\"id\": %d, \"pad\": \"%s\"," % (i, "x" * 1200))' > all_bad.jsonl
sed 's/in.jsonl/all_bad.jsonl/; s/out.jsonl/all_bad_out.jsonl/; s/dead.jsonl/all_bad_dead.jsonl/' \
  jsonl.yaml > all_bad.yaml
"$sluice" run --report all_bad.json all_bad.yaml >all_bad.out 2>&1 || fail "all-bad run: $(tail -5 all_bad.out)"
check_eq "$(jq -r .position all_bad_dead.jsonl | sed 's/.*://' | tr '\n' ' ')" "$(seq 1 2500 | tr '\n' ' ')" \
  "every line of the all-bad file, in order"
batches=$(jq '.nodes[] | select(.id == "dead") | .batches_in' all_bad.json)
[ "$batches" -ge 3 ] || fail "2,500 dead letters arrived in $batches batch(es): held back until the end?"
check_eq "$(jq '.nodes[] | select(.id == "src") | .discarded_rows' all_bad.json)" 0 \
  "routed records are not counted as discarded"

# --- 2. CSV -----------------------------------------------------------------------------------
python3 - <<'PY'
import random
random.seed(12)
good, bad = [], []
lines = ["id,amount,note"]
for i in range(1, 3001):
    r = random.random()
    if r < 0.01:
        line = f"{i},1.5"                      # a field short
    elif r < 0.02:
        line = f"{i},twelve,\"said \"\"no\"\"\""  # amount is not a number
    else:
        line = f"{i},{i * 0.25},\"a, b\""
        good.append(i)
        lines.append(line)
        continue
    bad.append((len(lines) + 1, line))
    lines.append(line)
open("in.csv", "w").write("\r\n".join(lines) + "\r\n")
open("good_csv.ids", "w").write("".join(f"{i}\n" for i in good))
open("bad_csv.tsv", "w").write("".join(f"{n}\t{t}\n" for n, t in bad))
PY
cat > csv.yaml <<'YAML'
pipeline: dl-csv
nodes:
  src: {type: file, path: in.csv, schema: {id: int64, amount: float64, note: string},
        on_error: dead_letter, batch_rows: 500}
  out: {type: file, inputs: [src], path: out_csv.jsonl, format: jsonl}
  dead: {type: file, inputs: [src.dead_letter], path: dead_csv.jsonl, format: jsonl}
YAML
"$sluice" run csv.yaml >csv.out 2>&1 || fail "csv run: $(tail -5 csv.out)"
cmp -s good_csv.ids <(jq -r .id out_csv.jsonl) || fail "CSV rows written differ from the good ones"
check_eq "$(jq -r '[.position, .record] | @tsv' dead_csv.jsonl | sed 's/^in.csv://' | sort -n)" \
  "$(jq -rR 'split("\t") | [.[0], .[1]] | @tsv' bad_csv.tsv | sort -n)" \
  "CSV dead letters: the line and text of every bad row"

# --- 3. cast ----------------------------------------------------------------------------------
printf '%s\n' '{"k":1,"n":"10"}' '{"k":2,"n":"ten"}' '{"k":3,"n":"-3"}' '{"k":4,"n":"9223372036854775808"}' \
  '{"k":5,"n":null}' '{"k":6,"n":"7"}' > cast.jsonl
cat > cast.yaml <<'YAML'
pipeline: dl-cast
nodes:
  src: {type: file, path: cast.jsonl, schema: {k: int64, n: string}}
  num: {type: cast, inputs: [src], columns: {n: int64}, on_error: dead_letter}
  out: {type: file, inputs: [num], path: cast_out.jsonl, format: jsonl}
  dead: {type: file, inputs: [num.dead_letter], path: cast_dead.jsonl, format: jsonl}
YAML
"$sluice" run cast.yaml >cast.out 2>&1 || fail "cast run: $(tail -5 cast.out)"
check_eq "$(jq -c . cast_out.jsonl | tr '\n' ' ')" \
  '{"k":1,"n":10} {"k":3,"n":-3} {"k":5,"n":null} {"k":6,"n":7} ' "rows cast"
check_eq "$(jq -r '[.node, .position, .record] | @tsv' cast_dead.jsonl)" \
  "$(printf 'num\trow 1\t{"k":2,"n":"ten"}\nnum\trow 3\t{"k":4,"n":"9223372036854775808"}')" \
  "rows that did not cast"
grep -q "cannot convert string 'ten' to int64" cast_dead.jsonl || fail "cast error text: $(head -1 cast_dead.jsonl)"

# --- 4. refused configurations: exit 2 naming the node and the fix ----------------------------
expect_config_error() {  # expect_config_error FILE TEXT
  "$sluice" validate "$1" >"$1.out" 2>&1 && code=0 || code=$?
  check_eq "$code" 2 "exit code of sluice validate $1"
  grep -qF "$2" "$1.out" || fail "$1: want '$2' in: $(cat "$1.out")"
}
sed '/dead:/d' jsonl.yaml > no_consumer.yaml
expect_config_error no_consumer.yaml "no node takes 'src.dead_letter' as input"
sed 's/on_error: dead_letter/on_error: skip/' jsonl.yaml > not_routing.yaml
expect_config_error not_routing.yaml "only with \`on_error: dead_letter\`"
sed 's/src.dead_letter/src.dead_leter/' jsonl.yaml > misspelt.yaml
expect_config_error misspelt.yaml "node 'src' has no output 'dead_leter'"
echo "dead_letter_files: OK"
