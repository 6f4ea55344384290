#!/usr/bin/env python3
"""Write run_v2.json: a rich version-2 run report for the report tests (deterministic)."""
import json
import math
import os
import random

rng = random.Random(4)
N = 60
t = [float(i + 1) for i in range(N)]


def rate(i):
    base = 20000.0 * min(1.0, (i + 1) / 5.0)
    if 30 <= i < 37:  # the object store throttled for a while
        base *= 0.55
    return base * (1 + 0.06 * math.sin(i / 2.0) + 0.04 * (rng.random() - 0.5))


def cumulative(rates):
    out, acc = [], 0.0
    for r in rates:
        acc += r
        out.append(round(acc))
    return out


src_rates = [rate(i) for i in range(N)]
src = cumulative(src_rates)
clean_in = src
clean_out = cumulative([r * 0.62 for r in src_rates])
enrich_out = src
sink_in = [a + b for a, b in zip(clean_out, enrich_out)]


def busy(util, par=1):
    return [round(util * par * x * (1 + 0.03 * math.sin(x)), 3) for x in t]


timeseries = {
    "interval_s": 1.0,
    "t": t,
    "rss_bytes": [int((80 + 170 * min(1, x / 12) + 8 * math.sin(x / 3)) * 2**20) for x in t],
    "cpu_percent": [round(140 + 25 * math.sin(x / 4) + (40 if 30 <= x < 37 else 0) * -1, 1)
                    for x in t],
    "memory_budget_bytes": [int((60 + 170 * min(1, x / 10) + 10 * math.sin(x / 2)) * 2**20)
                            for x in t],
    "nodes": {
        "orders": {"rows_in": [0] * N, "rows_out": src, "busy_s": busy(0.31),
                   "blocked_s": busy(0.5), "queue_depth": [0] * N},
        "clean": {"rows_in": clean_in, "rows_out": clean_out, "busy_s": busy(0.35),
                  "blocked_s": busy(0.42), "queue_depth": [rng.randint(0, 2) for _ in t]},
        "enrich": {"rows_in": src, "rows_out": enrich_out, "busy_s": busy(0.41),
                   "blocked_s": busy(0.33), "queue_depth": [rng.randint(0, 3) for _ in t]},
        "s3_archive": {"rows_in": sink_in, "rows_out": [0] * N, "busy_s": busy(0.96, 2),
                       "blocked_s": [0.0] * N, "queue_depth": [rng.randint(2, 4) for _ in t]},
    },
}


def hist(unit, buckets, p50, p95, p99, mn, mx):
    count = sum(c for _, c in buckets)
    mid = [(b if b != "+Inf" else mx, c) for b, c in buckets]
    return {"unit": unit, "count": count, "sum": round(sum(b * c for b, c in mid) * 0.7, 3),
            "min": mn, "max": mx, "p50": p50, "p95": p95, "p99": p99, "buckets": buckets}


rows = src[-1]
duration = 60.4
nodes = [
    {"id": "orders", "type": "postgres_archive", "kind": "source", "parallelism": 1,
     "inputs": [], "rows_in": 0, "rows_out": rows, "bytes_in": 0, "bytes_out": rows * 410,
     "batches_in": 0, "batches_out": 120, "busy_s": 18.7, "blocked_s": 30.2,
     "utilization": 18.7 / duration, "errors": 0, "discarded_rows": 0,
     "committed_batches": 120, "abandoned_batches": 0,
     "phases_s": {"query": 12.1, "delete": 5.2, "vacuum": 0.7},
     "counters": {"deleted_rows": rows}, "queue_depth_max": 0,
     "histograms": {
         "batch_rows": hist("rows", [[1000, 0], [2500, 1], [5000, 1], [10000, 118]],
                            10000, 10000, 10000, 2113, 10000),
         "request_latency": hist("s", [[0.01, 0], [0.025, 2], [0.05, 9], [0.1, 31], [0.25, 52],
                                       [0.5, 19], [1, 6], [2.5, 1], ["+Inf", 0]],
                                 0.17, 0.52, 0.94, 0.014, 1.3)},
     "batch_close": {"rows": 118, "bytes": 0, "timeout": 2}},
    {"id": "clean", "type": "filter", "kind": "transform", "parallelism": 1,
     "inputs": ["orders"], "rows_in": rows, "rows_out": clean_out[-1],
     "bytes_in": rows * 410, "bytes_out": clean_out[-1] * 410, "batches_in": 120,
     "batches_out": 120, "busy_s": 21.1, "blocked_s": 25.4, "utilization": 21.1 / duration,
     "errors": 0, "discarded_rows": rows - clean_out[-1], "committed_batches": 0,
     "abandoned_batches": 0, "phases_s": {}, "counters": {}, "queue_depth_max": 2},
    {"id": "enrich", "type": "map", "kind": "transform", "parallelism": 1,
     "inputs": ["orders"], "rows_in": rows, "rows_out": rows, "bytes_in": rows * 410,
     "bytes_out": rows * 480, "batches_in": 120, "batches_out": 120, "busy_s": 24.8,
     "blocked_s": 19.9, "utilization": 24.8 / duration, "errors": 0, "discarded_rows": 0,
     "committed_batches": 0, "abandoned_batches": 0, "phases_s": {}, "counters": {},
     "queue_depth_max": 3},
    {"id": "s3_archive", "type": "object_store", "kind": "sink", "parallelism": 2,
     "inputs": ["clean", "enrich"], "rows_in": sink_in[-1], "rows_out": 0,
     "bytes_in": clean_out[-1] * 410 + rows * 480, "bytes_out": 0, "batches_in": 240,
     "batches_out": 0, "busy_s": 116.0, "blocked_s": 0.0, "utilization": 116.0 / duration / 2,
     "errors": 0, "discarded_rows": 0, "committed_batches": 240, "abandoned_batches": 0,
     "phases_s": {"serialize": 19.6, "compress": 34.8, "upload": 55.9, "verify": 5.7},
     "counters": {"objects": 240, "retries": 12}, "queue_depth_max": 4,
     "histograms": {
         "batch_latency": hist("s", [[0.05, 0], [0.1, 2], [0.25, 11], [0.5, 38], [1, 97],
                                     [2.5, 78], [5, 14], ["+Inf", 0]],
                               0.84, 2.31, 3.6, 0.081, 4.7),
         "request_latency": hist("s", [[0.01, 0], [0.025, 4], [0.05, 21], [0.1, 85],
                                       [0.25, 160], [0.5, 92], [1, 31], [2.5, 7], [5, 2],
                                       ["+Inf", 0]],
                                 0.19, 0.71, 1.9, 0.012, 3.2)},
     "batch_close": {"rows": 240}},
]

report = {
    "version": 2, "pipeline": "orders_archive", "run_id": "2026-11-24T22:36:40-5f1c09aa",
    "status": "ok", "engine": "parallel", "started_at": "2026-11-24T22:36:40Z",
    "ended_at": "2026-11-24T22:37:40Z", "duration_s": duration, "rows_read": rows,
    "rows_per_s": rows / duration, "peak_rss_bytes": 262 * 2**20,
    "memory_budget_peak_bytes": 240 * 2**20, "memory_budget_limit_bytes": 256 * 2**20,
    "memory_budget_waits": 14, "cpu_user_s": 78.4, "cpu_sys_s": 6.9, "nodes": nodes,
    "timeseries": timeseries,
    "alerts": [{"name": "slow_batches", "metric": "batch_latency_p95", "node": "s3_archive",
                "value": 2.31, "threshold": 2.0, "fired_at_s": 31.0, "resolved_at_s": None,
                "message": "p95 batch latency of 's3_archive' is 2.31 s > 2 s for 30 s"}],
}

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "run_v2.json"), "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")
