// The dashboard: four pages over the bridge's public routes, switched by the URL's hash.
import { html, render, useEffect, useState } from "../vendor/htm-preact-3.1.1.mjs";
import { onKeyWanted, saveKey } from "./api.js";
import { ChatPage } from "./chat.js";
import { MonitorPage, useStats } from "./monitor.js";
import { ModelsPage } from "./models.js";
import { StatusPage } from "./status.js";

const PAGES = [
  ["status", "Status", StatusPage],
  ["models", "Models", ModelsPage],
  ["monitor", "Monitor", MonitorPage],
  ["chat", "Chat", ChatPage],
];

function currentPage() {
  const id = location.hash.slice(1);
  return PAGES.some(([page]) => page === id) ? id : "status";
}

// Shown when the server asks for an API key: the key goes to this browser's storage and into
// a header of every call, never into a URL.
function KeyForm({ done, refused }) {
  const [key, setKey] = useState("");
  const submit = (event) => {
    event.preventDefault();
    if (!key.trim()) return;
    saveKey(key.trim());
    done(key.trim());
  };
  return html`<form class="key-form" onSubmit=${submit}>
    <p>This osaurus server needs an API key.</p>
    ${refused && html`<p class="error" data-testid="api-key-refused">That key was refused.</p>`}
    <input type="password" data-testid="api-key-input" placeholder="API key" autofocus
      value=${key} onInput=${(e) => setKey(e.target.value)} />
    <button type="submit" data-testid="api-key-save">Use this key</button>
  </form>`;
}

function App() {
  const [page, setPage] = useState(currentPage());
  // While set, the key form shows: { resolve, refused }; resolve lets the waiting calls go on.
  const [keyWanted, setKeyWanted] = useState(null);
  useEffect(() => onKeyWanted((resolve, refused) => setKeyWanted({ resolve, refused })), []);
  useEffect(() => {
    const follow = () => setPage(currentPage());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  const stats = useStats(); // one stream for the whole page: Status and Monitor read it
  // Every page stays mounted (hidden when not shown): a chat or a pull goes on meanwhile.
  return html`
    <header>
      <a class="brand" href="#status">osaurus</a>
      <nav>
        ${PAGES.map(
          ([id, label]) =>
            html`<a href="#${id}" class=${id === page ? "active" : ""} data-testid="nav-${id}"
              >${label}</a
            >`,
        )}
      </nav>
    </header>
    <main>
      ${keyWanted &&
      html`<${KeyForm}
        key=${keyWanted.refused ? "again" : "first"}
        refused=${keyWanted.refused}
        done=${(key) => {
          setKeyWanted(null);
          keyWanted.resolve(key);
        }}
      />`}
      ${PAGES.map(
        ([id, , Page]) =>
          html`<section id="page-${id}" hidden=${id !== page}>
            <${Page} stats=${stats} visible=${id === page} />
          </section>`,
      )}
    </main>
  `;
}

const root = document.getElementById("app");
root.textContent = ""; // the loading line
render(html`<${App} />`, root);
