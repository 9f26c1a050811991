// Status: what runs, where, on which kernel; the loaded models; the requests and tokens now.
import { html, useEffect, useState } from "../vendor/htm-preact-3.1.1.mjs";
import { getJson } from "./api.js";
import { bytes, duration, rate, when } from "./format.js";

const POLL_MS = 2000;

export function usePolled(path, intervalMs, active = true) {
  const [state, setState] = useState({ data: null, error: "" });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!active) return undefined;
    let alive = true;
    getJson(path)
      .then((data) => alive && setState({ data, error: "" }))
      .catch((e) => alive && setState((s) => ({ ...s, error: e.message })));
    const timer = setTimeout(() => setTick((t) => t + 1), intervalMs);
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [path, tick, active]);
  return [state, () => setTick((t) => t + 1)];
}

export function ErrorNote({ message }) {
  return message ? html`<p class="error" data-testid="error">${message}</p>` : null;
}

export function StatusPage({ stats, visible }) {
  const [{ data: status, error }] = usePolled("/osaurus/v1/status", POLL_MS, visible);
  if (!status) return html`<${ErrorNote} message=${error} /><p>Asking the server…</p>`;
  const now = stats.latest;
  const running = now ? now.running_requests : status.running_requests;
  const queued = now ? now.queued_requests : status.queued_requests;
  return html`
    <${ErrorNote} message=${error} />
    <h1>Status</h1>
    <dl class="facts">
      <dt>Version</dt><dd data-testid="status-version">${status.version}</dd>
      <dt>Uptime</dt><dd>${duration(status.uptime_seconds)}</dd>
      <dt>HTTP</dt><dd>${location.origin}</dd>
      <dt>gRPC</dt><dd data-testid="status-grpc">${status.grpc_target}</dd>
      <dt>Engine</dt><dd>MLX ${status.mlx_version} on ${status.device}</dd>
      <dt>Kernel</dt><dd data-testid="status-kernel">${status.cpu_kernel || "MLX's own"}</dd>
      <dt>BLAS</dt><dd>${status.blas || "unknown"}</dd>
      <dt>Models dir</dt><dd>${status.models_dir}</dd>
      <dt>Requests</dt>
      <dd data-testid="status-requests">
        ${running} running, ${queued} queued (limit ${status.request_limit})
      </dd>
      <dt>Tokens now</dt><dd data-testid="status-tps">${rate(now?.tokens_per_second, "tok")}</dd>
      <dt>KV caches</dt>
      <dd>${bytes(status.kv_cache_bytes)} of ${bytes(status.kv_cache_budget_bytes)}</dd>
    </dl>
    <h2>Loaded models</h2>
    ${status.loaded_models.length
      ? html`<table>
          <thead><tr><th>Model</th><th>Memory</th><th>Precision</th><th>Unloads</th></tr></thead>
          <tbody>
            ${status.loaded_models.map(
              (m) => html`<tr data-testid="loaded-row">
                <td>${m.id}</td><td>${bytes(m.memory_bytes)}</td><td>${m.precision}</td>
                <td>${when(m.expires_at)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`
      : html`<p class="muted">None: a model loads on its first request (or from Models).</p>`}
  `;
}
