// The dashboard: four pages over the bridge's public routes, switched by the URL's hash.
import { html, render, useEffect, useState } from "../vendor/htm-preact-3.1.1.mjs";
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

function App() {
  const [page, setPage] = useState(currentPage());
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
