#!/usr/bin/env bash
# Derive the malformed trees from the recorded tree a/ (run from tests/data/procfs/):
#   truncated/  every file the collectors read cut in the middle of a line (no final newline)
#   huge/       one number beyond 64 bits in each file that has numbers
#   missing/    a line short of fields in each file; no diskstats and no pressure/ at all
# procfs_test expects the exact messages these produce.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf truncated huge missing
for v in truncated huge missing; do
  mkdir -p "$v"
  cp -r a/. "$v/"
  rm -rf "$v/8386" "$v/300"  # pid 1 is enough to break the processes collector
done

python3 - <<'PY'
import pathlib, re

def edit(path, fn):
    p = pathlib.Path(path)
    p.write_text(fn(p.read_text()))

def cut(line_prefix, keep):
    """Keep the file up to the first line starting with line_prefix, plus `keep` of its bytes."""
    def fn(text):
        i = text.index(line_prefix) if not text.startswith(line_prefix) else 0
        i = text.index("\n" + line_prefix) + 1 if i else 0
        return text[:i + keep]
    return fn

def sub(pattern, repl):
    def fn(text):
        out, n = re.subn(pattern, repl, text, count=1, flags=re.M)
        assert n == 1, pattern
        return out
    return fn

# truncated/
edit("truncated/stat", cut("cpu1 ", 15))
edit("truncated/meminfo", cut("MemAvailable:", 17))
edit("truncated/diskstats", cut(" 254 ", 30))
edit("truncated/net/dev", cut("  eth0:", 20))
edit("truncated/mounts", cut("/dev/vda ", 12))
edit("truncated/loadavg", lambda t: t[:8])
edit("truncated/pressure/cpu", lambda t: t[:20])
edit("truncated/1/stat", lambda t: t[:40])

# huge/
big = "18446744073709551616"  # 2^64
edit("huge/stat", sub(r"^(cpu1 )\d+", r"\g<1>" + big))
edit("huge/meminfo", sub(r"^(MemFree: +)\d+", r"\g<1>18014398509481984"))  # 2^64 / 1024 kB
edit("huge/diskstats", sub(r"^( 254 +0 vda )\d+", r"\g<1>99999999999999999999"))
edit("huge/net/dev", sub(r"^(  eth0: *)\d+", r"\g<1>" + big))
edit("huge/loadavg", sub(r"^[0-9.]+", "1" + "0" * 400 + ".00"))
edit("huge/pressure/cpu", sub(r"^(some .*total=)\d+", r"\g<1>" + big))
edit("huge/1/stat", sub(r"^((?:\S+ ){2}(?:\S+ ){11})\d+", r"\g<1>" + big))

# missing/
edit("missing/stat", sub(r"^(cpu1 \d+ \d+ \d+).*$", r"\g<1>"))
edit("missing/meminfo", sub(r"^(Buffers:).*$", r"\g<1>"))
edit("missing/net/dev", sub(r"^(  eth0: *\d+ +\d+ +\d+ +\d+).*$", r"\g<1>"))
edit("missing/mounts", sub(r"^(/dev/vdc /data).*$", r"\g<1>"))
edit("missing/loadavg", sub(r"^(\S+ \S+).*$", r"\g<1>"))
edit("missing/1/stat", sub(r"^(1 \(process_api\) S 0 0).*$", r"\g<1>"))
PY
rm -f missing/diskstats
rm -rf missing/pressure
echo "made truncated/, huge/ and missing/ from a/"
