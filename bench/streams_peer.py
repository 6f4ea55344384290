#!/usr/bin/env python3
"""bench/streams' peer: the consumer-group loop a person writes with python3-redis.

streams_peer.py PORT STREAM GROUP ROWS: creates GROUP at 0, then XREADGROUP COUNT 10000,
decodes the 6 meter fields to Python types (str, datetime, 4 floats), XACKs each batch, until
the stream is drained (a read that returns nothing). Fails unless it read ROWS entries.
"""
import sys
from datetime import datetime

import redis


def main():
    port, stream, group, want = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    r = redis.Redis(host="127.0.0.1", port=port)
    r.xgroup_create(stream, group, id="0", mkstream=True)
    n = 0
    kwh = 0.0
    while True:
        reply = r.xreadgroup(group, "py", {stream: ">"}, count=10000)
        if not reply or not reply[0][1]:
            break
        entries = reply[0][1]
        ids = []
        for entry_id, f in entries:
            row = (
                f[b"meter_id"].decode(),
                datetime.fromisoformat(f[b"ts"].decode().replace("Z", "+00:00")),
                float(f[b"kwh"]),
                float(f[b"voltage"]),
                float(f[b"current"]),
                float(f[b"power_factor"]),
            )
            kwh += row[2]
            ids.append(entry_id)
        r.xack(stream, group, *ids)
        n += len(entries)
    if n != want:
        sys.exit(f"streams_peer: read {n} entries, want {want}")
    print(f"streams_peer: {n} entries, kwh sum {kwh:.3f}", file=sys.stderr)


main()
