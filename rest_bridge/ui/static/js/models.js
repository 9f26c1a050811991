// Models: the local models (load, unload, delete), hub search and pulls with live progress,
// and GGUF import. Every failure shows the API's own message.
import { html, useState } from "../vendor/htm-preact-3.1.1.mjs";
import { events, getJson, request } from "./api.js";
import { bytes, duration } from "./format.js";
import { ErrorNote, usePolled } from "./status.js";

const API = "/osaurus/v1";

function LocalModels({ models, refresh, setError }) {
  const [busy, setBusy] = useState("");
  const act = async (id, label, method, path) => {
    setBusy(`${label} ${id}`);
    setError("");
    try {
      await request(`${API}/models/${id}${path}`, { method });
    } catch (e) {
      setError(`${label} ${id}: ${e.message}`);
    } finally {
      setBusy("");
      refresh();
    }
  };
  const remove = (id) => {
    if (window.confirm(`Delete ${id} and its files?`)) act(id, "Delete", "DELETE", "");
  };
  return html`
    <table>
      <thead>
        <tr><th>Model</th><th>Size</th><th>Quantization</th><th>Format</th><th>State</th>
          <th></th></tr>
      </thead>
      <tbody>
        ${models.map(
          (m) => html`<tr data-testid="model-row">
            <td>${m.id}</td>
            <td>${bytes(m.size_bytes)}</td>
            <td>${m.quantization || "none"}</td>
            <td>${m.capabilities.includes("embedding") ? "MLX (embedding)" : "MLX"}</td>
            <td>${m.loaded ? html`<b>loaded</b> · ${bytes(m.memory_bytes)}` : "on disk"}</td>
            <td class="actions">
              ${m.loaded
                ? html`<button onClick=${() => act(m.id, "Unload", "POST", "/unload")}>
                    Unload</button>`
                : html`<button onClick=${() => act(m.id, "Load", "POST", "/load")}>Load</button>`}
              <button class="danger" onClick=${() => remove(m.id)}>Delete</button>
            </td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${busy && html`<p class="muted">${busy}…</p>`}
  `;
}

function Pull({ pull, cancel }) {
  const p = pull.progress;
  const fraction = p && p.bytes_total ? p.bytes_done / p.bytes_total : 0;
  return html`<div class="pull" data-testid="pull-progress" data-state=${pull.state}>
    <div><b>${pull.repo}</b> <span class="muted">${pull.state}</span></div>
    <progress max="1" value=${pull.state === "done" ? 1 : fraction}></progress>
    <div class="muted">
      ${p && `${bytes(p.bytes_done)} of ${bytes(p.bytes_total)} · ${bytes(p.bytes_per_second)}/s
        · ETA ${duration(p.eta_seconds)} · ${p.current_file}`}
    </div>
    ${pull.message && html`<div>${pull.message}</div>`}
    ${pull.state === "pulling" &&
    html`<button data-testid="pull-cancel" onClick=${cancel}>Cancel</button>`}
  </div>`;
}

function Hub({ refresh }) {
  const [query, setQuery] = useState("");
  const [found, setFound] = useState(null);
  const [error, setError] = useState("");
  const [pulls, setPulls] = useState({});
  const update = (repo, change) => setPulls((all) => ({ ...all, [repo]: { ...all[repo], ...change } }));

  const search = async (event) => {
    event.preventDefault();
    setError("");
    try {
      setFound(await getJson(`${API}/hub/search?query=${encodeURIComponent(query)}`));
    } catch (e) {
      setError(e.message);
    }
  };
  const pull = async (repo) => {
    const controller = new AbortController();
    update(repo, { repo, state: "pulling", progress: null, message: "", controller });
    try {
      const body = { repo_id: repo };
      for await (const e of events(`${API}/hub/pull`, { method: "POST", body, signal: controller.signal })) {
        if (e.type === "progress") update(repo, { progress: e });
        if (e.type === "done") {
          const note = e.already_present ? "already here" : `as ${e.model.id}`;
          update(repo, { state: "done", message: `Pulled ${note}.` });
        }
      }
    } catch (e) {
      if (controller.signal.aborted) update(repo, { state: "cancelled", message: "Cancelled." });
      else update(repo, { state: "failed", message: e.message });
    }
    refresh();
  };
  return html`
    <h2>Hugging Face</h2>
    <form class="row" onSubmit=${search}>
      <input data-testid="search-input" placeholder="Search MLX models (e.g. qwen)"
        value=${query} onInput=${(e) => setQuery(e.target.value)} />
      <button data-testid="search-button" type="submit">Search</button>
    </form>
    <${ErrorNote} message=${error} />
    ${found && !found.hub_reachable && html`<p class="note" data-testid="hub-note">${found.note}</p>`}
    ${found && html`<table>
      <thead><tr><th>Repository</th><th>Size</th><th>Downloads</th><th></th></tr></thead>
      <tbody>
        ${found.models.map(
          (m) => html`<tr data-testid="hub-row">
            <td>${m.repo_id}${m.mlx_compatible ? "" : html` <span class="muted">(not MLX)</span>`}</td>
            <td>${found.hub_reachable ? "" : "≈ "}${bytes(m.size_bytes)}</td>
            <td>${m.downloads || "–"}</td>
            <td>${m.downloaded || pulls[m.repo_id]?.state === "done"
              ? html`<span class="muted">downloaded</span>`
              : html`<button data-testid="pull-button" onClick=${() => pull(m.repo_id)}
                  disabled=${pulls[m.repo_id]?.state === "pulling"}>Pull</button>`}</td>
          </tr>`,
        )}
      </tbody>
    </table>`}
    ${Object.values(pulls).map(
      (p) => html`<${Pull} pull=${p} cancel=${() => p.controller.abort()} />`,
    )}
  `;
}

function Import({ refresh }) {
  const [path, setPath] = useState("");
  const [name, setName] = useState("");
  const [state, setState] = useState({ busy: false, message: "", error: "" });
  const submit = async (event) => {
    event.preventDefault();
    setState({ busy: true, message: "Importing (converting the weights)…", error: "" });
    try {
      const body = { gguf_path: path, name };
      const { model } = await getJson(`${API}/models/import`, { method: "POST", body });
      setState({ busy: false, message: `Imported as ${model.id}.`, error: "" });
    } catch (e) {
      setState({ busy: false, message: "", error: e.message });
    }
    refresh();
  };
  return html`
    <h2>Import a GGUF file</h2>
    <form class="row" onSubmit=${submit}>
      <input data-testid="import-path" placeholder="/path/on/the/server/model.gguf" value=${path}
        onInput=${(e) => setPath(e.target.value)} />
      <input data-testid="import-name" placeholder="name (optional)" value=${name}
        onInput=${(e) => setName(e.target.value)} />
      <button data-testid="import-button" type="submit" disabled=${state.busy}>Import</button>
    </form>
    <${ErrorNote} message=${state.error} />
    ${state.message && html`<p class="muted">${state.message}</p>`}
  `;
}

export function ModelsPage({ visible }) {
  const [{ data, error }, refresh] = usePolled(`${API}/models`, 5000, visible);
  const [actionError, setActionError] = useState("");
  return html`
    <h1>Models</h1>
    <${ErrorNote} message=${actionError || error} />
    ${data ? html`<${LocalModels} models=${data.models} refresh=${refresh}
      setError=${setActionError} />` : html`<p>Asking the server…</p>`}
    <${Hub} refresh=${refresh} />
    <${Import} refresh=${refresh} />
  `;
}
