// Usage over time as a chart (uPlot, vendored; its stylesheet is linked by app.js, since the CSP
// allows no inline style). Buckets without usage are drawn as zero, so the time axis is even.
// The same numbers are in a table for screen readers and for copying.
import { loadUPlot, useEffect, useRef } from "../deps.js";
import { html } from "./ui.js";

const HOUR = 3600;
const DAY = 24 * HOUR;

/** Bucket start (unix seconds) of a `day` ("2026-11-25") or `hour` ("2026-11-25T04") key. */
export function bucketTime(key, groupBy) {
  return Date.parse(groupBy === "hour" ? `${key}:00:00Z` : `${key}T00:00:00Z`) / 1000;
}

/** Rows of GET /v1/usage?group_by=day|hour as chart columns over [since, until]. */
export function series(rows, groupBy, since, until) {
  const step = groupBy === "hour" ? HOUR : DAY;
  const floor = (t) => Math.floor(t / step) * step;
  const byTime = new Map(rows.map((row) => [bucketTime(row[groupBy], groupBy), row]));
  const xs = [];
  const tokens = [];
  const cost = [];
  for (let t = floor(Date.parse(since) / 1000); t <= floor(Date.parse(until) / 1000); t += step) {
    const row = byTime.get(t);
    xs.push(t);
    tokens.push(row ? row.input_tokens + row.output_tokens + row.cache_read_tokens + row.cache_write_tokens : 0);
    cost.push(row ? row.cost_usd : 0);
  }
  return [xs, tokens, cost];
}

function css(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function UsageChart({ data, label }) {
  const box = useRef(null);
  const plot = useRef(null);
  const latest = useRef(data);
  latest.current = data;
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    let live = true;
    let resize = null;
    loadUPlot().then((uPlot) => {
      if (live) resize = draw(uPlot, el);
    });
    return () => {
      live = false;
      if (resize) resize.disconnect();
      if (plot.current) plot.current.destroy();
      plot.current = null;
    };
  }, []);

  function draw(uPlot, el) {
    const fg = css("--fg-soft", "#5b6270");
    const grid = css("--line", "#e3e5ea");
    const axis = (scale, side, format) => ({ scale, side, stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: format });
    const options = {
      width: Math.max(280, el.clientWidth || 600),
      height: 240,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, tokens: { auto: true }, usd: { auto: true } },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        axis("tokens", 3, (u, values) => values.map((v) => (v >= 1000 ? `${v / 1000}k` : String(v)))),
        axis("usd", 1, (u, values) => values.map((v) => `$${v}`)),
      ],
      series: [
        {},
        { label: "Tokens", scale: "tokens", stroke: css("--accent", "#4f46e5"), width: 2, fill: "rgba(79,70,229,0.08)" },
        { label: "Cost (USD)", scale: "usd", stroke: css("--ok", "#1d7a3a"), width: 2, value: (u, v) => (v === null ? "–" : `$${v.toFixed(6)}`) },
      ],
    };
    plot.current = new uPlot(options, latest.current, el);
    const resize = new ResizeObserver(() => {
      if (plot.current && el.clientWidth) plot.current.setSize({ width: el.clientWidth, height: 240 });
    });
    resize.observe(el);
    return resize;
  }
  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);
  const points = data[0].length;
  const used = data[1].filter((v) => v > 0).length;
  return html`<figure class="usage-chart" aria-label=${label}>
    <div class="chart-box" ref=${box} data-points=${points} data-used=${used} aria-hidden="true"></div>
    <figcaption class="sr-only">${label}</figcaption>
    <details class="chart-table">
      <summary>As a table</summary>
      <table>
        <thead><tr><th scope="col">From</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
        <tbody>
          ${data[0].map((t, i) =>
            data[1][i] || data[2][i]
              ? html`<tr key=${t}><td>${new Date(t * 1000).toLocaleString()}</td><td>${data[1][i].toLocaleString()}</td><td>$${(data[2][i] || 0).toFixed(6)}</td></tr>`
              : null,
          )}
        </tbody>
      </table>
    </details>
  </figure>`;
}
