// Monitor: live charts of the last five minutes, from the server's stats stream (one sample a
// second). The series are fixed-length windows, so the page holds the same memory after an hour.
import { html, useEffect, useRef, useState } from "../vendor/htm-preact-3.1.1.mjs";
import { events } from "./api.js";

const WINDOW = 300; // samples kept: five minutes at one a second
const GB = 1e9;
const SERIES = ["time", "cpu", "memory", "rss", "tps", "running", "queued"];

function emptySeries() {
  return Object.fromEntries(SERIES.map((name) => [name, []]));
}

function push(series, s) {
  const values = [
    s.timestamp,
    s.cpu_percent,
    s.memory_used_bytes / GB,
    s.process_rss_bytes / GB,
    s.tokens_per_second,
    s.running_requests,
    s.queued_requests,
  ];
  SERIES.forEach((name, i) => {
    const column = series[name];
    column.push(values[i]);
    if (column.length > WINDOW) column.shift();
  });
}

export function useStats() {
  const [state, setState] = useState({ latest: null, series: emptySeries(), count: 0, error: "" });
  useEffect(() => {
    const controller = new AbortController();
    const series = emptySeries();
    (async () => {
      while (!controller.signal.aborted) {
        try {
          const url = "/osaurus/v1/system/stats?interval_seconds=1";
          for await (const sample of events(url, { signal: controller.signal })) {
            push(series, sample);
            setState((s) => ({ latest: sample, series, count: s.count + 1, error: "" }));
          }
        } catch (e) {
          if (controller.signal.aborted) return;
          setState((s) => ({ ...s, error: `stats stream: ${e.message}; retrying` }));
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    })();
    return () => controller.abort();
  }, []);
  return state;
}

function Chart({ testid, title, lines, columns, stats }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const width = Math.max(Math.min(window.innerWidth - 48, 900), 320);
    plot.current = new uPlot(
      {
        title,
        width,
        height: 180,
        series: [
          {},
          ...lines.map(([label, stroke]) => ({ label, stroke, width: 2, points: { show: false } })),
        ],
        axes: [{}, { size: 60 }],
        scales: { y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
      },
      [[], ...lines.map(() => [])],
      box.current,
    );
    return () => plot.current.destroy();
  }, []);
  useEffect(() => {
    const s = stats.series;
    plot.current.setData([s.time, ...columns.map((c) => s[c])]);
  }, [stats.count]);
  return html`<div class="chart" data-testid=${testid} data-points=${stats.series.time.length}
    ref=${box}></div>`;
}

export function MonitorPage({ stats }) {
  const now = stats.latest;
  return html`
    <h1>Monitor</h1>
    ${stats.error && html`<p class="error" data-testid="error">${stats.error}</p>`}
    <p class="muted">
      ${now
        ? `CPU ${now.cpu_percent.toFixed(0)} % · memory ${(now.memory_used_bytes / GB).toFixed(1)}
           of ${(now.memory_total_bytes / GB).toFixed(1)} GB · osaurus
           ${(now.process_rss_bytes / GB).toFixed(2)} GB · ${now.tokens_per_second.toFixed(1)}
           tok/s · ${now.running_requests} running, ${now.queued_requests} queued`
        : "Waiting for the first sample…"}
    </p>
    <${Chart} testid="monitor-cpu" title="CPU %" lines=${[["CPU %", "#d9480f"]]}
      columns=${["cpu"]} stats=${stats} />
    <${Chart} testid="monitor-memory" title="Memory (GB)"
      lines=${[["system used", "#1971c2"], ["osaurus", "#2f9e44"]]}
      columns=${["memory", "rss"]} stats=${stats} />
    <${Chart} testid="monitor-tokens" title="Tokens per second" lines=${[["tok/s", "#7048e8"]]}
      columns=${["tps"]} stats=${stats} />
    <${Chart} testid="monitor-requests" title="Requests"
      lines=${[["running", "#e8590c"], ["queued", "#868e96"]]}
      columns=${["running", "queued"]} stats=${stats} />
  `;
}
