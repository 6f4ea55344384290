#!/usr/bin/env bash
# Record the files the procfs source reads from this host's /proc into OUT/a and OUT/b, one
# second apart, for the procfs tests (tests/data/procfs/README.md says how the committed trees
# were trimmed afterwards). Between the two, a busy loop burns CPU, 8 MiB are written to disk
# and 4 MiB are sent over loopback TCP, so that the second sample has something to rate.
#
#   tests/data/procfs/record.sh OUT [PID ...]    # PIDs: more processes to record (default: 1)
set -euo pipefail
out=${1:?usage: record.sh OUT [PID ...]}
shift
sh -c 'while :; do :; done' &
busy=$!
trap 'kill "$busy"' EXIT
pids=("$busy" "${@:-1}")

record() {
  local d=$1
  mkdir -p "$d/net" "$d/sys/kernel"
  for f in stat meminfo diskstats loadavg mounts; do cat "/proc/$f" >"$d/$f"; done
  cat /proc/net/dev >"$d/net/dev"
  cat /proc/sys/kernel/hostname >"$d/sys/kernel/hostname"
  if [ -d /proc/pressure ]; then
    mkdir -p "$d/pressure"
    for r in cpu io memory; do cat "/proc/pressure/$r" >"$d/pressure/$r"; done
  fi
  for p in "${pids[@]}"; do
    mkdir -p "$d/$p"
    cat "/proc/$p/stat" >"$d/$p/stat"
    cat "/proc/$p/status" >"$d/$p/status"
  done
}

sleep 0.5  # let the busy loop run before the first sample
record "$out/a"
start=$(date +%s.%N)
dd if=/dev/zero of="$out/.io" bs=1M count=8 conv=fsync status=none
rm -f "$out/.io"
python3 - <<'PY'
import socket, threading
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
peer, _ = server.accept()
data = b"x" * (4 << 20)
sender = threading.Thread(target=client.sendall, args=(data,))
sender.start()
got = 0
while got < len(data):
    got += len(peer.recv(1 << 20))
sender.join()
PY
sleep "$(python3 -c "print(max(0.0, 1 - ($(date +%s.%N) - $start)))")"
record "$out/b"
echo "recorded $out/a and $out/b (busy loop: pid $busy)"
