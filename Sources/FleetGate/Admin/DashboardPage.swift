/// The live fleet dashboard: one self-contained HTML page (no CDN, no external file; it works offline).
///
/// It polls, every second, `/admin/cars` (cars by region and state), `/metrics` (active streams, output
/// tokens, TTFT histograms by zone, zone refusals) and `/dashboard/api/decisions` (the last routing
/// decisions and their reasons), and draws with plain DOM and SVG. Counts carry `data-` attributes so a
/// test can read them from the DOM.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>FleetGate — fleet</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body{font:14px system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
        h1{font-size:20px;margin:0 0 12px} h2{font-size:15px;margin:16px 0 6px}
        .row{display:flex;gap:16px;flex-wrap:wrap} .card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px}
        .big{font-size:26px;font-weight:600} table{border-collapse:collapse} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
        th:first-child,td:first-child{text-align:left} .muted{color:#888} svg{background:#fff;border:1px solid #ddd}
        </style></head><body>
        <h1>FleetGate — live fleet <span id="updated" class="muted"></span></h1>
        <div class="row">
          <div class="card">cars<div class="big" id="total-cars" data-value="0">0</div></div>
          <div class="card">active streams<div class="big" id="active-streams" data-value="0">0</div></div>
          <div class="card">output tokens/s<div class="big" id="tokens-per-second" data-value="0">0</div></div>
          <div class="card">zone refusals<div class="big" id="zone-refusals" data-value="0">0</div></div>
        </div>
        <h2>Cars by region and state</h2><table id="cars"></table>
        <h2>Streams and tokens/s, last 5 minutes</h2>
        <svg id="chart" width="720" height="160" viewBox="0 0 720 160"></svg>
        <div class="muted">blue: active streams · orange: output tokens/s (each scaled to its own maximum)</div>
        <h2>Time to first token by zone (last minute)</h2><table id="ttft"></table>
        <h2>Zone refusals</h2><table id="refusals"></table>
        <h2>Recent routing decisions</h2><table id="decisions"></table>
        <script>
        "use strict";
        const STATES = ["serving", "charging", "unplugged", "departing", "draining"];
        const history = []; // {t, streams, tokens}
        const snapshots = []; // {t, buckets: {zone: [[le, count]]}}
        function parseMetrics(text) {
          const out = [];
          for (const line of text.split("\n")) {
            if (!line || line[0] === "#") continue;
            const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
            if (!m) continue;
            const labels = {};
            if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
            out.push({name: m[1], labels, value: parseFloat(m[4])});
          }
          return out;
        }
        function el(tag, attrs, text) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
          if (text !== undefined) e.textContent = text;
          return e;
        }
        function row(table, cells, header) {
          const tr = el("tr");
          for (const c of cells) {
            const cell = el(header ? "th" : "td", c.attrs, c.text !== undefined ? c.text : c);
            tr.appendChild(cell);
          }
          table.appendChild(tr);
        }
        function setBig(id, value, shown) {
          const e = document.getElementById(id);
          e.dataset.value = String(value);
          e.textContent = shown !== undefined ? shown : String(value);
        }
        function stateOf(car) {
          if (car.draining) return "draining";
          if (car.departing) return "departing";
          return car.state || "serving";
        }
        function quantile(q, buckets) {
          const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
          if (total <= 0) return null;
          const rank = q * total;
          let prevLe = 0, prevCount = 0;
          for (const [le, count] of buckets) {
            if (count >= rank) {
              if (!isFinite(le)) return prevLe;
              return prevLe + (le - prevLe) * (count > prevCount ? (rank - prevCount) / (count - prevCount) : 0);
            }
            prevLe = le; prevCount = count;
          }
          return prevLe;
        }
        function drawChart() {
          const svg = document.getElementById("chart");
          while (svg.firstChild) svg.removeChild(svg.firstChild);
          if (history.length < 2) return;
          const t0 = history[history.length - 1].t - 300;
          const pts = history.filter(p => p.t >= t0);
          for (const [key, color] of [["streams", "#1f6feb"], ["tps", "#e8710a"]]) {
            const max = Math.max(1, ...pts.map(p => p[key]));
            const d = pts.map((p, i) => (i ? "L" : "M") + ((p.t - t0) / 300 * 720).toFixed(1) + " " + (155 - p[key] / max * 145).toFixed(1)).join(" ");
            svg.appendChild(Object.assign(document.createElementNS("http://www.w3.org/2000/svg", "path"), {}));
            const path = svg.lastChild;
            path.setAttribute("d", d); path.setAttribute("fill", "none"); path.setAttribute("stroke", color); path.setAttribute("stroke-width", "2");
            path.setAttribute("data-series", key);
          }
        }
        async function refresh() {
          const [carsRes, metricsRes, decisionsRes] = await Promise.all([
            fetch("/admin/cars", {credentials: "same-origin"}),
            fetch("/metrics", {credentials: "same-origin"}),
            fetch("/dashboard/api/decisions", {credentials: "same-origin"})]);
          const cars = await carsRes.json();
          const metrics = parseMetrics(await metricsRes.text());
          const decisions = decisionsRes.ok ? await decisionsRes.json() : [];
          const now = Date.now() / 1000;

          // Cars by region and state, from /admin/cars.
          const byRegion = {};
          for (const car of cars) {
            const r = byRegion[car.region] = byRegion[car.region] || {};
            const s = stateOf(car);
            r[s] = (r[s] || 0) + 1;
          }
          const carsTable = document.getElementById("cars");
          carsTable.textContent = "";
          row(carsTable, ["region", ...STATES, "total"], true);
          for (const region of Object.keys(byRegion).sort()) {
            const counts = byRegion[region];
            const total = Object.values(counts).reduce((a, b) => a + b, 0);
            row(carsTable, [region, ...STATES.map(s => ({attrs: {"data-region": region, "data-state": s}, text: String(counts[s] || 0)})),
              {attrs: {"data-region": region, "data-state": "total"}, text: String(total)}]);
          }
          setBig("total-cars", cars.length);

          // Streams and tokens, from /metrics.
          const streams = metrics.filter(m => m.name === "fleet_active_streams").reduce((a, m) => a + m.value, 0);
          setBig("active-streams", streams);
          const tokens = metrics.filter(m => m.name === "gen_ai_client_token_usage_sum" && m.labels.gen_ai_token_type === "output").reduce((a, m) => a + m.value, 0);
          const prev = history.length ? history[history.length - 1] : null;
          const tps = prev && now > prev.t ? Math.max(0, (tokens - prev.tokens) / (now - prev.t)) : 0;
          history.push({t: now, streams, tokens, tps});
          while (history.length && history[0].t < now - 300) history.shift();
          setBig("tokens-per-second", Math.round(tps), tps.toFixed(1));
          drawChart();

          // TTFT percentiles by zone over the last minute, from the GenAI histogram's buckets.
          const buckets = {};
          for (const m of metrics) {
            if (m.name !== "gen_ai_server_time_to_first_token_seconds_bucket" || !m.labels.zone) continue;
            const z = buckets[m.labels.zone] = buckets[m.labels.zone] || {};
            const le = m.labels.le === "+Inf" ? Infinity : parseFloat(m.labels.le);
            z[le] = (z[le] || 0) + m.value;
          }
          snapshots.push({t: now, buckets});
          while (snapshots.length > 1 && snapshots[1].t <= now - 60) snapshots.shift();
          const base = snapshots[0].buckets;
          const ttft = document.getElementById("ttft");
          ttft.textContent = "";
          row(ttft, ["zone", "requests", "p50", "p90", "p99"], true);
          for (const zone of Object.keys(buckets).sort()) {
            const les = Object.keys(buckets[zone]).map(Number).sort((a, b) => a - b);
            const delta = les.map(le => [le, buckets[zone][le] - ((base[zone] || {})[le] || 0)]);
            const n = delta.length ? delta[delta.length - 1][1] : 0;
            const fmt = q => { const v = quantile(q, delta); return v === null ? "–" : (v * 1000).toFixed(0) + " ms"; };
            row(ttft, [zone, {attrs: {"data-ttft-zone": zone}, text: String(n)}, fmt(0.5), fmt(0.9), fmt(0.99)]);
          }

          // Zone refusals.
          const refusals = metrics.filter(m => m.name === "fleet_zone_refusals_total");
          const refTable = document.getElementById("refusals");
          refTable.textContent = "";
          row(refTable, ["zone", "refused since start"], true);
          for (const m of refusals.sort((a, b) => a.labels.zone.localeCompare(b.labels.zone)))
            row(refTable, [m.labels.zone, {attrs: {"data-refusal-zone": m.labels.zone}, text: String(m.value)}]);
          setBig("zone-refusals", refusals.reduce((a, m) => a + m.value, 0));

          // Recent decisions (never prompt text: the gateway keeps none).
          const dec = document.getElementById("decisions");
          dec.textContent = "";
          row(dec, ["time", "zone", "origin", "route", "region", "vehicle", "attempts", "tokens", "status", "reason"], true);
          for (const d of decisions.slice(0, 25))
            row(dec, [new Date(d.time * 1000).toLocaleTimeString(), d.zone, d.originRegion, d.route, d.region, d.vehicle,
              String(d.attempts), String(d.tokens), String(d.status), d.reason]);
          document.getElementById("updated").textContent = "· updated " + new Date().toLocaleTimeString();
          document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
        }
        async function loop() {
          try { await refresh(); } catch (e) { document.getElementById("updated").textContent = "· " + e; }
          setTimeout(loop, 1000);
        }
        loop();
        </script></body></html>
        """#
}
