// The agent's live page: one HTML document with its style, script and SVG inline — nothing is
// fetched but api/v1/metrics, so it works offline, behind a proxy path and under a strict CSP.

#include "sluice/agent/agent.h"

namespace sluice::agent {

namespace {

constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sluice agent</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2430; }
  header { padding: 12px 20px; background: #1d2430; color: #fff; display: flex; gap: 24px;
           align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 16px; margin: 0; }
  header span { color: #b8c2d0; }
  #errors { color: #b00020; padding: 0 20px; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px;
         padding: 16px 20px; }
  section { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 10px 14px; }
  section h2 { font-size: 14px; margin: 0 0 2px; display: flex; justify-content: space-between; }
  .value { font-variant-numeric: tabular-nums; font-weight: 600; }
  .legend { font-size: 12px; color: #5a6678; }
  .legend i { display: inline-block; width: 10px; height: 3px; margin: 0 4px 3px 10px; }
  svg { width: 100%; height: auto; display: block; }
  svg text { font-size: 10px; fill: #5a6678; }
  svg .grid { stroke: #e8ecf1; stroke-width: 1; }
  svg path { fill: none; stroke-width: 1.6; }
</style>
</head>
<body>
<header><h1>sluice agent</h1><span id="host">–</span><span id="when">waiting for a sample</span>
<span id="sample"></span></header>
<div id="errors"></div>
<main>
  <section><h2>CPU busy <span class="value" id="value-cpu" data-value="">–</span></h2>
    <div class="legend" id="legend-cpu"></div><svg id="chart-cpu" viewBox="0 0 560 150"></svg></section>
  <section><h2>Memory used <span class="value" id="value-memory" data-value="">–</span></h2>
    <div class="legend" id="legend-memory"></div><svg id="chart-memory" viewBox="0 0 560 150"></svg></section>
  <section><h2>Disk <span class="value" id="value-disk" data-value="">–</span></h2>
    <div class="legend" id="legend-disk"></div><svg id="chart-disk" viewBox="0 0 560 150"></svg></section>
  <section><h2>Network <span class="value" id="value-network" data-value="">–</span></h2>
    <div class="legend" id="legend-network"></div><svg id="chart-network" viewBox="0 0 560 150"></svg></section>
</main>
<noscript><p style="padding:0 20px">The charts need JavaScript; the data is at
<a href="api/v1/metrics">api/v1/metrics</a> and <a href="metrics">metrics</a>.</p></noscript>
<script>
"use strict";
const KEEP = 300;  // points per series
const W = 560, H = 150, LEFT = 74, TOP = 8, BOTTOM = 18;
const CHARTS = {
  cpu: {unit: "%", fixedMax: 100, series: [["busy", "#2a6fdb"], ["iowait", "#e0912f"]]},
  memory: {unit: "B", series: [["used", "#7a4fd6"]]},
  disk: {unit: "B/s", series: [["read", "#1f9d74"], ["written", "#d6453d"]]},
  network: {unit: "B/s", series: [["receive", "#2a6fdb"], ["transmit", "#e0912f"]]},
};
const data = {};
for (const [id, c] of Object.entries(CHARTS)) {
  data[id] = c.series.map(() => []);
  document.getElementById("legend-" + id).innerHTML =
    c.series.map(([n, color]) => `<i style="background:${color}"></i>${n}`).join("");
}
let lastSample = -1, intervalMs = 1000, memTotal = null;

function rows(s, name) { return (s.metrics && s.metrics[name]) || []; }
function one(s, name, test) {
  const r = rows(s, name).find(r => !test || test(r.labels));
  return r && r.value !== null ? r.value : null;
}
function sum(s, name, test) {
  const rs = rows(s, name).filter(r => r.value !== null && (!test || test(r.labels)));
  return rs.length ? rs.reduce((a, r) => a + r.value, 0) : null;
}
function human(v, unit) {
  if (v === null || v === undefined) return "–";
  if (unit === "%") return v.toFixed(1) + " %";
  const steps = ["", "Ki", "Mi", "Gi", "Ti"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < steps.length - 1) { v /= 1024; i++; }
  return (i || (v !== 0 && Math.abs(v) < 10) ? v.toFixed(1) : v.toFixed(0)) + " " + steps[i] + unit;
}
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
function draw(id) {
  const c = CHARTS[id], svg = document.getElementById("chart-" + id);
  const series = data[id];
  let max = 0;
  for (const s of series) for (const p of s) if (p.v > max) max = p.v;
  if (!c.fixedMax && !(id === "memory" && memTotal)) {
    // A round full scale in the unit shown (KiB, MiB, ...), at least 1 KiB/s.
    max = Math.max(max, 1024);
    let scale = 1;
    while (max / scale >= 1024) scale *= 1024;
    max = niceMax(max / scale) * scale;
  } else {
    max = c.fixedMax || memTotal;
  }
  const n = Math.max(...series.map(s => s.length));
  // The samples kept span the width (the last KEEP of them once there are that many).
  const x = i => LEFT + (W - LEFT - 4) * (n <= 1 ? 1 : i / (n - 1));
  const y = v => TOP + (H - TOP - BOTTOM) * (1 - Math.min(v, max) / max);
  let out = "";
  for (const f of [0, 0.5, 1]) {
    out += `<line class="grid" x1="${LEFT}" x2="${W - 4}" y1="${y(f * max)}" y2="${y(f * max)}"/>`;
    out += `<text x="${LEFT - 4}" y="${y(f * max) + 3}" text-anchor="end">${human(f * max, c.unit)}</text>`;
  }
  series.forEach((s, k) => {
    let d = "", pen = "M";
    const offset = n - s.length, color = c.series[k][1];
    s.forEach((p, i) => {
      if (p.v === null) { pen = "M"; return; }
      const px = x(i + offset).toFixed(1), py = y(p.v).toFixed(1);
      d += `${pen}${px},${py} `;
      pen = "L";
      // A point without neighbours (the first sample, one after a gap) is drawn as a dot.
      const prev = s[i - 1], next = s[i + 1];
      if ((!prev || prev.v === null) && (!next || next.v === null)) {
        out += `<circle cx="${px}" cy="${py}" r="2.5" fill="${color}"/>`;
      }
    });
    out += `<path d="${d.trim()}" stroke="${color}" stroke-linejoin="round"` +
           ` data-series="${c.series[k][0]}"/>`;
  });
  out += `<text x="${W - 4}" y="${H - 4}" text-anchor="end">last ${n} samples</text>`;
  svg.innerHTML = out;
  svg.setAttribute("data-points", String(n));
}
function push(id, values) {
  data[id].forEach((s, k) => {
    s.push({v: values[k]});
    if (s.length > KEEP) s.shift();
  });
  const head = values[0];
  const el = document.getElementById("value-" + id);
  el.textContent = human(head, CHARTS[id].unit);
  el.setAttribute("data-value", head === null ? "" : String(head));
  draw(id);
}
function take(s) {
  const notLo = l => l.device !== "lo";
  const busy = one(s, "cpu_busy_ratio"), iowait = one(s, "cpu_usage_ratio", l => l.mode === "iowait");
  push("cpu", [busy === null ? null : 100 * busy, iowait === null ? null : 100 * iowait]);
  memTotal = one(s, "memory_bytes", l => l.field === "MemTotal");
  push("memory", [one(s, "memory_used_bytes")]);
  push("disk", [sum(s, "disk_read_bytes_per_second"), sum(s, "disk_written_bytes_per_second")]);
  push("network", [sum(s, "network_receive_bytes_per_second", notLo),
                   sum(s, "network_transmit_bytes_per_second", notLo)]);
  document.getElementById("host").textContent = s.host;
  document.getElementById("when").textContent = s.ts;
  document.getElementById("sample").textContent = "sample " + s.sample;
  const failed = rows(s, "collector_success").filter(r => r.value === 0);
  document.getElementById("errors").textContent =
    failed.map(r => `collector ${r.labels.collector} failed: ${r.error || "?"}`).join("; ");
}
function poll() {
  fetch("api/v1/metrics", {cache: "no-store"})
    .then(r => r.ok ? r.json() : null)
    .then(s => {
      if (!s) return;
      if (s.interval_s > 0) intervalMs = Math.max(100, 1000 * s.interval_s);
      if (s.sample !== lastSample) { lastSample = s.sample; take(s); }
    })
    .catch(() => { document.getElementById("when").textContent = "agent not answering"; })
    .finally(() => setTimeout(poll, intervalMs));
}
for (const id of Object.keys(CHARTS)) draw(id);
poll();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view LivePageHtml() { return kPage; }

}  // namespace sluice::agent
