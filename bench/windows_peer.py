#!/usr/bin/env python3
"""bench/windows' peer: the tumbling-window loop a person writes in plain Python 3 (stdlib only).

windows_peer.py CSV ROWS [OUT]: reads meter readings (meter_id, ts, kwh, voltage, current,
power_factor; a header row) from CSV, as sluice's file sink writes them, and computes per
(meter_id, 15-minute window) what bench/windows asks of sluice's window node and of PostgreSQL:
count, sum(kwh), avg/min/max(voltage) and the 95th percentile of current (linear interpolation
between the closest ranks, as PostgreSQL's percentile_cont). Reading and parsing the CSV is part
of the loop timed. Fails unless it read ROWS readings. With OUT, writes the windows there as CSV
(meter_id, window_start in epoch seconds, count, kwh, voltage_avg, voltage_min, voltage_max,
current_p95), for the bench's correctness check. Prints the number of windows on stdout.
"""
import csv
import sys
import time
from datetime import datetime

WINDOW_S = 15 * 60


def p95(values):
    values.sort()
    pos = 0.95 * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def main():
    path, want = sys.argv[1], int(sys.argv[2])
    out_path = sys.argv[3] if len(sys.argv) > 3 else None
    t0 = time.perf_counter()
    windows = {}  # (meter_id, window start) -> [count, kwh, voltage sum, min, max, currents]
    n = 0
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for meter_id, ts, kwh, voltage, current, _pf in reader:
            epoch = datetime.fromisoformat(ts).timestamp()
            start = int(epoch // WINDOW_S) * WINDOW_S
            kwh, voltage, current = float(kwh), float(voltage), float(current)
            w = windows.get((meter_id, start))
            if w is None:
                windows[(meter_id, start)] = [1, kwh, voltage, voltage, voltage, [current]]
            else:
                w[0] += 1
                w[1] += kwh
                w[2] += voltage
                if voltage < w[3]:
                    w[3] = voltage
                if voltage > w[4]:
                    w[4] = voltage
                w[5].append(current)
            n += 1
    results = [
        (meter_id, start, w[0], w[1], w[2] / w[0], w[3], w[4], p95(w[5]))
        for (meter_id, start), w in windows.items()
    ]
    elapsed = time.perf_counter() - t0
    if n != want:
        sys.exit(f"windows_peer: read {n} readings, want {want}")
    if out_path:
        with open(out_path, "w", newline="") as f:
            csv.writer(f).writerows(results)
    print(f"windows_peer: {n} readings -> {len(results)} windows in {elapsed:.3f}s "
          f"(read + parse + aggregate)", file=sys.stderr)
    print(len(results))


main()
